//! Snapshots: the whole key-value store in one file, to back up and to restore from.
//!
//! `etcdctl snapshot save FILE` asks one member for its store; the member streams it
//! and then one last message holding the SHA-256 of everything before it. etcdctl
//! refuses a stream whose length is not 32 more than a multiple of 512 (bbolt files
//! are whole pages), so our file is laid out to pass that check:
//!
//! ```text
//! body:     "MPSNAP01"                       8-byte magic and format version
//!           revision, compact revision       8 bytes each, big-endian
//!           record count                     8 bytes
//!           hash of what follows             4 bytes: FNV-1a-32, what `status` prints
//!           records, in revision order:      main (8), sub (8), tombstone (1),
//!                                            length (4), mvccpb.KeyValue (length)
//!           leases:                          count (8), then ID (8) + TTL (8) each
//! padding:  zeros up to a multiple of 512
//! trailer:  SHA-256 of body + padding        32 bytes
//! ```
//!
//! It is our own format, not etcd's bbolt file: the real etcdctl saves it, but
//! `snapshot status` and `restore` are ours (`kvctl snapshot status|restore`). A
//! truncated or altered file fails the SHA-256 check; a file that is not a snapshot
//! fails the magic check — both with a clear error.
//!
//! This module is the file format and nothing else: it knows stores, not data
//! directories. Storage uses it — a member sends a follower that fell too far behind a
//! snapshot file of its store (`Storage::snapshot_of_store`), and
//! [`SledStorage::restore`](crate::storage::sled::SledStorage::restore) writes one into
//! a fresh data directory for a *new* cluster (new member IDs from
//! `--initial-cluster`), with an empty Raft log: every member restored from the same
//! file starts from the same store at the same revision, which is exactly etcd's
//! `snapshot restore` ([`crate::tools::restore_member`] takes its flags).

use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::mvcc::{MvccStore, Revision};
use crate::proto::mvccpb::KeyValue;

const MAGIC: &[u8; 8] = b"MPSNAP01";
const TRAILER: usize = 32;
const BLOCK: usize = 512;

/// What `snapshot status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// FNV-1a-32 of the records (`%x` in the output, like etcd's CRC).
    pub hash: u32,
    /// The store revision the snapshot was taken at.
    pub revision: i64,
    /// Stored versions (live and historical, tombstones included).
    pub total_keys: u64,
    /// Size of the file without its SHA-256 trailer.
    pub total_size: u64,
}

fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Serialises a store into the snapshot file format.
pub fn encode(store: &MvccStore) -> Vec<u8> {
    let mut records = Vec::new();
    let mut count: u64 = 0;
    for (revision, kv, tombstone) in store.stored() {
        let bytes = kv.encode_to_vec();
        records.extend(revision.main.to_be_bytes());
        records.extend(revision.sub.to_be_bytes());
        records.push(u8::from(tombstone));
        records.extend((bytes.len() as u32).to_be_bytes());
        records.extend(bytes);
        count += 1;
    }
    let leases: Vec<(i64, i64)> = store.leases().collect();
    records.extend((leases.len() as u64).to_be_bytes());
    for (id, ttl) in leases {
        records.extend(id.to_be_bytes());
        records.extend(ttl.to_be_bytes());
    }
    let mut out = Vec::with_capacity(records.len() + 64 + BLOCK);
    out.extend(MAGIC);
    out.extend(store.current_revision().to_be_bytes());
    out.extend(store.compact_revision().to_be_bytes());
    out.extend(count.to_be_bytes());
    out.extend(fnv32(&records).to_be_bytes());
    out.extend(&records);
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    let sha = Sha256::digest(&out);
    out.extend(sha);
    out
}

/// A cursor over the body that fails with a clear error instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::Snapshot("the file is truncated".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Checks the SHA-256 trailer and returns the body (with padding).
fn verified_body(bytes: &[u8]) -> Result<&[u8]> {
    if bytes.len() < BLOCK + TRAILER || !(bytes.len() - TRAILER).is_multiple_of(BLOCK) {
        return Err(Error::Snapshot(format!(
            "not a snapshot file: {} bytes is not a whole number of 512-byte blocks plus a 32-byte SHA-256",
            bytes.len()
        )));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER);
    let sha = Sha256::digest(body);
    if sha.as_slice() != trailer {
        return Err(Error::Snapshot(
            "SHA-256 mismatch: the file is damaged or truncated".into(),
        ));
    }
    Ok(body)
}

/// Reads a snapshot file back into a store, verifying it first.
pub fn decode(bytes: &[u8]) -> Result<(MvccStore, SnapshotStatus)> {
    let body = verified_body(bytes)?;
    let mut r = Reader { bytes: body, at: 0 };
    if r.take(8)? != MAGIC {
        return Err(Error::Snapshot("not a kvstore snapshot (bad magic)".into()));
    }
    let revision = r.i64()?;
    let compacted = r.i64()?;
    let count = r.u64()?;
    let hash = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes"));
    let records_start = r.at;
    let mut revisions = Vec::new();
    for _ in 0..count {
        let main = r.i64()?;
        let sub = r.i64()?;
        let tombstone = r.take(1)?[0] == 1;
        let len = u32::from_be_bytes(r.take(4)?.try_into().expect("4 bytes")) as usize;
        let kv = KeyValue::decode(r.take(len)?)
            .map_err(|e| Error::Snapshot(format!("a damaged record: {e}")))?;
        revisions.push((Revision { main, sub }, kv, tombstone));
    }
    let lease_count = r.u64()?;
    let mut leases = Vec::new();
    for _ in 0..lease_count {
        leases.push((r.i64()?, r.i64()?));
    }
    if fnv32(&body[records_start..r.at]) != hash {
        return Err(Error::Snapshot("the record hash does not match".into()));
    }
    let store = MvccStore::restore(revisions, compacted).with_leases(leases);
    if store.current_revision() != revision.max(1) {
        return Err(Error::Snapshot(format!(
            "records end at revision {}, the header says {revision}",
            store.current_revision()
        )));
    }
    let status = SnapshotStatus {
        hash,
        revision,
        total_keys: count,
        total_size: body.len() as u64,
    };
    Ok((store, status))
}

/// `snapshot status`: verifies the file and describes it.
pub fn status(bytes: &[u8]) -> Result<SnapshotStatus> {
    decode(bytes).map(|(_, status)| status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;

    fn sample() -> MvccStore {
        let mut s = MvccStore::new();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
            s.apply(&Request::put(k, v)).0.unwrap();
        }
        s.apply(&Request::delete("b")).0.unwrap();
        s.apply(&Request::compact(3)).0.unwrap();
        s
    }

    #[test]
    fn a_snapshot_round_trips_and_passes_etcdctls_size_check() {
        let store = sample();
        let file = encode(&store);
        assert_eq!(file.len() % 512, 32, "etcdctl's check");
        let (back, status) = decode(&file).unwrap();
        assert_eq!(back.digest(), store.digest());
        assert_eq!(back.compact_revision(), 3);
        assert_eq!(
            back.events_since(3).unwrap(),
            store.events_since(3).unwrap()
        );
        assert_eq!(status.revision, 5);
        assert_eq!(status.total_keys, store.stored().count() as u64);
        assert_eq!(status.total_size, file.len() as u64 - 32);
    }

    #[test]
    fn damaged_files_are_refused_with_clear_errors() {
        let file = encode(&sample());
        let truncated = &file[..file.len() - 100];
        assert!(decode(truncated)
            .unwrap_err()
            .to_string()
            .contains("512-byte blocks"));
        let mut flipped = file.clone();
        flipped[20] ^= 1;
        assert!(decode(&flipped)
            .unwrap_err()
            .to_string()
            .contains("SHA-256 mismatch"));
        let mut not_ours = vec![0u8; 512];
        not_ours.extend(Sha256::digest(&not_ours));
        assert!(decode(&not_ours)
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
        assert!(decode(b"hello").is_err());
    }

    #[test]
    fn an_empty_store_snapshots_too() {
        let (back, status) = decode(&encode(&MvccStore::new())).unwrap();
        assert_eq!((back.current_revision(), status.total_keys), (1, 0));
    }
}
