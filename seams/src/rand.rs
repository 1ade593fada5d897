//! One seeded random generator per cluster.
//!
//! Kubernetes draws random numbers for a Pod's `metadata.uid` (a version-4 UUID), the
//! five characters a ReplicaSet appends to a Pod's name, container IDs, bootstrap
//! tokens, the identity a scheduler holds its leader lease under; etcd for member IDs
//! and each member's randomized election timeout. miniplane draws all of them from an
//! [`Rng`] that the cluster is built with, so one seed fixes every ID a run prints.
//! Components get their own stream with [`Rng::fork`]: a fork is seeded from its
//! parent, so it is as reproducible as the parent, and what one component draws does
//! not shift another's numbers.
//!
//! The generator is SplitMix64: one 64-bit state and a few multiply-xorshift rounds per
//! number. It is not cryptographic. miniplane's tokens protect a practice cluster on
//! loopback; a real cluster's come from the operating system.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

/// SplitMix64 (Steele, Lea, Flood 2014): the whole future of the numbers is fixed by
/// the seed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole future is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`). The modulo bias is below 2^-40 for the small `n`
    /// used here.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        self.next_u64() % n
    }
}

/// A shared handle on one generator: clones draw from the same stream.
#[derive(Debug, Clone)]
pub struct Rng(Arc<Mutex<SplitMix64>>);

/// The characters Kubernetes uses for generated name suffixes (no vowels, so no
/// words; no look-alike digits): `k8s.io/apimachinery/pkg/util/rand`.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Rng {
    /// A generator fixed by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Rng(Arc::new(Mutex::new(SplitMix64::new(seed))))
    }

    /// A generator seeded from the operating system's randomness (the per-process
    /// random keys of std's `HashMap`), for live runs that need no replay.
    pub fn from_entropy() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x6d69_6e69_706c_616e); // "miniplan"
        Rng::seeded(hasher.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        self.0
            .lock()
            .expect("no thread panics holding the rng")
            .next_u64()
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&self, n: u64) -> u64 {
        self.0
            .lock()
            .expect("no thread panics holding the rng")
            .below(n)
    }

    /// A new, independent generator seeded from this one.
    pub fn fork(&self) -> Rng {
        Rng::seeded(self.next_u64())
    }

    /// `n` random bytes.
    pub fn bytes(&self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// A version-4 UUID, as `metadata.uid` is: `8-4-4-4-12` lowercase hex digits with
    /// the version nibble 4 and the RFC 4122 variant bits.
    pub fn uuid(&self) -> String {
        let mut b = self.bytes(16);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex = hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    /// `n` lowercase hex digits (container IDs, tokens).
    pub fn hex(&self, n: usize) -> String {
        let mut s = hex(&self.bytes(n.div_ceil(2)));
        s.truncate(n);
        s
    }

    /// `n` characters for a generated name (`alpine-7d4b9c-x2kqz`).
    pub fn name_suffix(&self, n: usize) -> String {
        (0..n)
            .map(|_| NAME_ALPHABET[self.below(NAME_ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let (a, b) = (Rng::seeded(7), Rng::seeded(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], Rng::seeded(8).next_u64());
        assert_eq!(a.fork().uuid(), b.fork().uuid());
        assert!((0..100).all(|_| a.below(3) < 3));
    }

    #[test]
    fn forks_do_not_shift_each_other() {
        let root = Rng::seeded(1);
        let (x, y) = (root.fork(), root.fork());
        let first_of_y = Rng::seeded(1);
        first_of_y.next_u64();
        let y_again = first_of_y.fork();
        x.bytes(100); // x drawing does not move y
        assert_eq!(y.next_u64(), y_again.next_u64());
    }

    #[test]
    fn ids_have_their_shapes() {
        let rng = Rng::seeded(3);
        let uid = rng.uuid();
        let parts: Vec<&str> = uid.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{uid}");
        assert!("89ab".contains(&parts[3][..1]), "{uid}");
        assert_eq!(rng.hex(12).len(), 12);
        let suffix = rng.name_suffix(5);
        assert!(
            suffix.bytes().all(|c| NAME_ALPHABET.contains(&c)),
            "{suffix}"
        );
        assert_ne!(
            Rng::from_entropy().next_u64(),
            Rng::from_entropy().next_u64()
        );
    }
}
