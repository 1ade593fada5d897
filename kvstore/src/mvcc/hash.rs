//! `HashKV`: a fingerprint of a member's MVCC history, byte for byte as etcd makes it.
//!
//! Three members that applied the same log must hold the same history. `etcdctl
//! endpoint hashkv` asks each member for a checksum of that history and prints them
//! side by side: equal numbers mean equal histories, a different number means a member
//! diverged (a bug, a damaged disk). etcd's own corruption check compares these hashes
//! between members, and the fault harness (`scripts/torture`) uses them as its final
//! verdict.
//!
//! ## What etcd hashes
//! etcd keeps every version in bbolt's `key` bucket, keyed by revision. Its
//! `HashByRev(rev)` (etcd 3.4, `mvcc/kvstore.go`) feeds one CRC-32C (the Castagnoli
//! polynomial) with:
//!
//! 1. the bucket's name, the three bytes `key`;
//! 2. then, for each entry of the bucket in revision order with a main revision at or
//!    below `rev`: the entry's key — the **revision key**, 8 bytes big-endian main
//!    revision, `_`, 8 bytes big-endian sub-revision, and a trailing `t` for a
//!    tombstone (17 or 18 bytes) — followed by its value, the protobuf-encoded
//!    `mvccpb.KeyValue`. A tombstone's value is a `KeyValue` holding only the key.
//!
//! Entries at or below the compaction point are a special case. etcd deletes what a
//! compaction drops from bbolt in the background, a batch at a time, so the bucket may
//! still hold some of them. To get the same answer whenever it is asked, the hash takes
//! an entry at or below the compaction point only if it is in *keep*: for each key,
//! its last version at or before `rev`, unless that version is a tombstone. When keep
//! is empty (no key is alive at `rev`), etcd takes every such entry still in bbolt —
//! which, once the background deletion is done, is what the compaction kept.
//!
//! ## The same bytes here
//! [`MvccStore`]'s `revs` map *is* that bucket: the same revision keys in the same
//! order, holding the same `KeyValue`s (a value evicted to disk is read back). One
//! difference is accounted for: a compaction at revision R keeps here a tombstone made
//! *at* R, so a watch from R still sees that delete, while etcd drops it from bbolt.
//! With a non-empty keep the filter above skips it anyway; with an empty keep it is
//! skipped explicitly. With that, a member of ours and an etcd that applied the same
//! requests report the same hash (`kvstore/tests/hashkv.rs` checks it against the real
//! etcd 3.4).
//!
//! ## Errors, as etcd 3.4.23 answers
//! A revision at or below the compaction point: `required revision has been
//! compacted` (3.4.23 refuses the compaction revision itself; later releases accept
//! it). Above the current revision: `required revision is a future revision`. 0 means
//! the current revision; a negative one, like etcd, hashes nothing but the bucket name.

use std::collections::HashSet;

use prost::Message as _;

use super::{MvccStore, Revision, Stored};
use crate::error::{Error, Result};
use crate::proto::mvccpb::KeyValue;

/// The answer to a `HashKV` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    /// CRC-32C of the history up to the revision asked for.
    pub hash: u32,
    /// The store's revision when the hash was taken (the response header's).
    pub current_revision: i64,
    /// The store's compaction point when the hash was taken; -1 if it was never
    /// compacted, as etcd reports it (its compaction point starts at -1).
    pub compact_revision: i64,
}

impl MvccStore {
    /// Hashes the history up to `revision` (0: the current revision), as etcd's
    /// `HashByRev`.
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv> {
        let (current, compacted) = (self.current_revision(), self.compact_revision());
        if revision > 0 && revision <= compacted {
            return Err(Error::Compacted {
                compact_revision: compacted,
            });
        }
        if revision > current {
            return Err(Error::FutureRevision);
        }
        let at = if revision == 0 { current } else { revision };
        let keep = self.keep(at);
        let mut crc = Crc32c::new();
        crc.write(b"key");
        let upper = Revision {
            main: at.saturating_add(1),
            sub: 0,
        };
        for (rev, stored) in self.revs.range(..upper) {
            if rev.main <= compacted {
                let in_bucket = if keep.is_empty() {
                    !(stored.tombstone && rev.main == compacted)
                } else {
                    keep.contains(rev)
                };
                if !in_bucket {
                    continue;
                }
            }
            crc.write(&revision_key(*rev, stored.tombstone));
            crc.write(&self.bucket_value(rev, stored)?.encode_to_vec());
        }
        Ok(HashKv {
            hash: crc.finish(),
            current_revision: current,
            compact_revision: compacted,
        })
    }

    /// etcd's `treeIndex.Keep(at)`: for each key, its last change at or before `at`,
    /// unless that change was a delete.
    fn keep(&self, at: i64) -> HashSet<Revision> {
        self.index
            .values()
            .filter_map(|key_revs| key_revs.iter().rev().find(|r| r.main <= at))
            .filter(|rev| self.revs.get(rev).is_some_and(|s| !s.tombstone))
            .copied()
            .collect()
    }

    /// The `KeyValue` etcd stores in its bucket for this change: the version (its value
    /// read back from disk if evicted), or for a delete only the key.
    fn bucket_value(&self, rev: &Revision, stored: &Stored) -> Result<KeyValue> {
        if stored.tombstone {
            return Ok(KeyValue {
                key: stored.kv.key.clone(),
                ..KeyValue::default()
            });
        }
        let mut kv = stored.kv.clone();
        if stored.evicted {
            let missing = || {
                Error::Storage(format!(
                    "revision {}_{} is missing from the disk",
                    rev.main, rev.sub
                ))
            };
            let source = self.source.as_ref().ok_or_else(missing)?;
            kv.value = source.value(*rev).ok_or_else(missing)?;
        }
        Ok(kv)
    }
}

/// etcd's bbolt key for a change: main and sub revision, 8 bytes big-endian each,
/// joined by `_`; a tombstone's ends in `t`.
pub fn revision_key(rev: Revision, tombstone: bool) -> Vec<u8> {
    let mut key = Vec::with_capacity(18);
    key.extend_from_slice(&rev.main.to_be_bytes());
    key.push(b'_');
    key.extend_from_slice(&rev.sub.to_be_bytes());
    if tombstone {
        key.push(b't');
    }
    key
}

/// CRC-32C (Castagnoli), the checksum Go's `crc32.MakeTable(crc32.Castagnoli)` makes.
/// The crate's `crc32fast` only knows the IEEE polynomial, and a byte-at-a-time table
/// is a dozen lines: hashing is rare (an operator's check), not a hot path.
pub struct Crc32c(u32);

/// The reflected Castagnoli polynomial.
const CASTAGNOLI: u32 = 0x82F6_3B78;

/// The remainder of every byte value, computed at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ CASTAGNOLI
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c::new()
    }
}

impl Crc32c {
    /// A checksum of nothing yet.
    pub fn new() -> Self {
        Crc32c(!0)
    }

    /// Adds bytes; writing `a` then `b` is the same as writing `a ++ b`.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = TABLE[((self.0 ^ u32::from(b)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    /// The checksum of everything written.
    pub fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest};
    use crate::request::Request;

    fn put(store: &mut MvccStore, key: &str, value: &str) {
        let req = Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        });
        store.apply(&req).0.unwrap();
    }

    fn delete(store: &mut MvccStore, key: &str) {
        let req = Request::DeleteRange(DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        });
        store.apply(&req).0.unwrap();
    }

    fn compact(store: &mut MvccStore, revision: i64) {
        let req = Request::Compact(CompactionRequest {
            revision,
            physical: false,
        });
        store.apply(&req).0.unwrap();
    }

    /// The hash of explicit (revision key, value) entries, to compare against.
    fn expected(entries: &[(Revision, bool, KeyValue)]) -> u32 {
        let mut crc = Crc32c::new();
        crc.write(b"key");
        for (rev, tombstone, kv) in entries {
            crc.write(&revision_key(*rev, *tombstone));
            crc.write(&kv.encode_to_vec());
        }
        crc.finish()
    }

    fn rev(main: i64, sub: i64) -> Revision {
        Revision { main, sub }
    }

    fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: create,
            mod_revision: modified,
            version,
            lease: 0,
        }
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        let mut crc = Crc32c::new();
        crc.write(b"1234");
        crc.write(b"56789");
        assert_eq!(crc.finish(), 0xE306_9283);
    }

    #[test]
    fn a_revision_key_is_etcds_17_bytes_and_a_tombstone_mark() {
        let key = revision_key(rev(2, 1), false);
        assert_eq!(key, b"\0\0\0\0\0\0\0\x02_\0\0\0\0\0\0\0\x01");
        assert_eq!(revision_key(rev(2, 1), true).last(), Some(&b't'));
    }

    #[test]
    fn the_hash_covers_each_change_and_a_tombstone_holds_only_its_key() {
        let mut store = MvccStore::new();
        put(&mut store, "a", "1"); // rev 2
        delete(&mut store, "a"); // rev 3
        let tombstone = KeyValue {
            key: b"a".to_vec(),
            ..Default::default()
        };
        let all = expected(&[
            (rev(2, 0), false, kv("a", "1", 2, 2, 1)),
            (rev(3, 0), true, tombstone),
        ]);
        let h = store.hash_kv(0).unwrap();
        assert_eq!(
            (h.hash, h.current_revision, h.compact_revision),
            (all, 3, -1)
        );
        let first = expected(&[(rev(2, 0), false, kv("a", "1", 2, 2, 1))]);
        assert_eq!(store.hash_kv(2).unwrap().hash, first);
        assert_eq!(store.hash_kv(1).unwrap().hash, expected(&[]));
    }

    #[test]
    fn compacted_and_future_revisions_are_refused_as_etcd_3_4_does() {
        let mut store = MvccStore::new();
        for v in ["1", "2", "3"] {
            put(&mut store, "a", v); // revs 2, 3, 4
        }
        compact(&mut store, 3);
        assert_eq!(
            store.hash_kv(3),
            Err(Error::Compacted {
                compact_revision: 3
            })
        );
        assert_eq!(store.hash_kv(5), Err(Error::FutureRevision));
        // Kept at the compaction point: the version visible at 3 (keep at 4 is a@4, so
        // a@3 is skipped), then everything after it.
        let h = store.hash_kv(4).unwrap();
        assert_eq!(
            h.hash,
            expected(&[(rev(4, 0), false, kv("a", "3", 2, 4, 3))])
        );
        assert_eq!(h.compact_revision, 3);
    }

    #[test]
    fn with_no_live_key_the_versions_the_compaction_kept_are_hashed() {
        let mut store = MvccStore::new();
        put(&mut store, "a", "1"); // rev 2
        put(&mut store, "b", "1"); // rev 3
        delete(&mut store, "b"); // rev 4: a tombstone at the compaction point
        compact(&mut store, 4);
        delete(&mut store, "a"); // rev 5: no key is alive now, keep is empty
        let a_tombstone = KeyValue {
            key: b"a".to_vec(),
            ..Default::default()
        };
        // b's tombstone at 4 is kept by our store but not by etcd's bucket.
        let want = expected(&[
            (rev(2, 0), false, kv("a", "1", 2, 2, 1)),
            (rev(5, 0), true, a_tombstone),
        ]);
        assert_eq!(store.hash_kv(0).unwrap().hash, want);
    }

    #[test]
    fn a_negative_revision_hashes_only_the_bucket_name_as_etcd() {
        let mut store = MvccStore::new();
        put(&mut store, "a", "1");
        assert_eq!(store.hash_kv(-1).unwrap().hash, expected(&[]));
    }
}
