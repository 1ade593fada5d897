//! A member's data directory: the Raft log in a write-ahead log, the store in sled.
//!
//! As in etcd, the directory has two parts. `wal/` is the Raft log, hard state and
//! conf state ([`super::wal`]): appended and `fdatasync`ed once per Ready. The rest is
//! a sled database, the *backend*, with two trees written in atomic batches:
//!
//! | tree   | key                                   | value                              |
//! |--------|---------------------------------------|------------------------------------|
//! | `raft` | `members`                             | names and URLs (`MemberListResponse`) |
//! | `raft` | `installing`                          | while a leader's snapshot replaces the store: its metadata |
//! | `mvcc` | `r` + main (8 BE) + `_` + sub (8 BE)  | tombstone flag (1 byte) + `mvccpb.KeyValue` |
//! | `mvcc` | `l` + lease ID (8 BE)                 | granted TTL in seconds (8 BE)      |
//! | `mvcc` | `m/applied`                           | last applied index (8 BE)          |
//! | `mvcc` | `m/compacted`                         | compaction revision (8 BE)         |
//!
//! The revision keys are etcd's own 17-byte layout (its bbolt `key` bucket), so the
//! history sorts by revision and a watch replay is a range scan. Big-endian numbers
//! sort the way the numbers do.
//!
//! Durability: [`Storage::sync`] syncs the WAL — the member calls it in a Ready that
//! wrote entries, a term or a vote, before the messages that depend on them leave. The store's changes are gathered and written as one sled
//! batch, with the applied index they reach, every 20 ms or 10 000 changes, on a
//! writer thread ([`super::backend`]; a sled batch costs two buffer writes however
//! small it is). They are not flushed on their own: if a crash loses them, it loses
//! the applied index in the same batch, and the member applies those entries again
//! from the durable log. The store *is* flushed before the log drops entries (a
//! compaction), so the log always reaches back to what the store on disk has applied.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState};

use super::backend::Backend;
use super::wal::Wal;
use super::Storage;
use crate::error::{Error, Result};
use crate::membership::{ClusterInfo, MemberInfo};
use crate::mvcc::{Mutation, MvccStore, Revision};
use crate::proto::etcdserverpb::{Member, MemberListResponse};
use crate::proto::mvccpb::KeyValue;

const MEMBERS: &[u8] = b"members";
const INSTALLING: &[u8] = b"installing";
const REVISION: u8 = b'r';
const LEASE: u8 = b'l';
const APPLIED: &[u8] = b"m/applied";
const COMPACTED: &[u8] = b"m/compacted";

/// A member's persistent state in a sled database.
#[derive(Clone)]
pub struct SledStorage {
    db: ::sled::Db,
    raft: ::sled::Tree,
    mvcc: ::sled::Tree,
    wal: Arc<Mutex<Wal>>,
    backend: Arc<Backend>,
    values: Arc<SledValues>,
}

/// The store's values as sled holds them: every version up to `written` is there.
#[derive(Debug)]
struct SledValues {
    mvcc: ::sled::Tree,
    written: AtomicI64,
}

impl crate::mvcc::values::ValueSource for SledValues {
    fn written_through(&self) -> i64 {
        self.written.load(Ordering::Acquire)
    }

    fn value(&self, revision: Revision) -> Option<Vec<u8>> {
        let bytes = fatal(self.mvcc.get(revision_key(revision)), "read the store")?;
        let (_, body) = bytes.split_first()?;
        Some(fatal(KeyValue::decode(body), "decode a stored revision").value)
    }
}

impl std::fmt::Debug for SledStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStorage")
            .field("hard_state", &self.hard_state())
            .finish()
    }
}

fn storage_error(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

/// A storage failure after start-up is fatal for a member, as it is for etcd.
fn fatal<T>(r: std::result::Result<T, impl std::fmt::Display>, doing: &str) -> T {
    r.unwrap_or_else(|e| panic!("kvstore: cannot {doing}: {e}"))
}

/// Opens the database. A member restarted in the same process may find the directory
/// still locked for a moment, while sled's threads for the previous instance finish:
/// wait for the lock, up to a deadline, before giving up.
fn open_db(dir: &Path) -> Result<::sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let opened = ::sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(16 * 1024 * 1024)
            .open();
        match opened {
            // sled reports the lock as an I/O error whose text says so.
            Err(::sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(storage_error),
        }
    }
}

/// etcd's revision key: 8 bytes main, `_`, 8 bytes sub, behind our tree prefix.
fn revision_key(r: Revision) -> [u8; 18] {
    let mut key = [0u8; 18];
    key[0] = REVISION;
    key[1..9].copy_from_slice(&r.main.to_be_bytes());
    key[9] = b'_';
    key[10..].copy_from_slice(&r.sub.to_be_bytes());
    key
}

fn lease_key(id: i64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = LEASE;
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

fn decode_revision_key(key: &[u8]) -> Option<Revision> {
    if key.len() != 18 || key[0] != REVISION {
        return None;
    }
    let main = i64::from_be_bytes(key[1..9].try_into().ok()?);
    let sub = i64::from_be_bytes(key[10..18].try_into().ok()?);
    Some(Revision { main, sub })
}

fn u64_value(v: Option<::sled::IVec>) -> u64 {
    v.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes)
}

impl SledStorage {
    /// Opens (or creates) the data directory `dir`. A new one is initialised for
    /// `cluster`'s members, like `--initial-cluster-state new`; an existing one keeps
    /// its own state.
    pub fn open(dir: &Path, cluster: &ClusterInfo) -> Result<Self> {
        // No background flusher: the store is flushed when the log is compacted, and
        // without that thread a closed database releases its directory lock at once, so
        // a member restarted in the same process can reopen it.
        let db = open_db(dir)?;
        let raft = db.open_tree("raft").map_err(storage_error)?;
        let mvcc = db.open_tree("mvcc").map_err(storage_error)?;
        let cs = ConfState::from((cluster.voter_ids(), vec![]));
        let mut wal = Wal::open(&dir.join("wal"), &cs)?;
        // A crash while installing a leader's snapshot, after the store was replaced
        // and before the log was reset: finish the reset.
        if let Some(bytes) = raft.get(INSTALLING).map_err(storage_error)? {
            let meta = SnapshotMetadata::parse_from_bytes(&bytes).map_err(storage_error)?;
            wal.reset(meta.index, meta.term, meta.get_conf_state())?;
            raft.remove(INSTALLING).map_err(storage_error)?;
            db.flush().map_err(storage_error)?;
        }
        let values = Arc::new(SledValues {
            mvcc: mvcc.clone(),
            written: AtomicI64::new(0),
        });
        let writer = values.clone();
        Ok(SledStorage {
            db,
            raft,
            mvcc: mvcc.clone(),
            wal: Arc::new(Mutex::new(wal)),
            backend: Arc::new(Backend::start(Box::new(move |mutations, applied_index| {
                let newest = mutations
                    .iter()
                    .filter_map(|m| match m {
                        Mutation::Put { revision, .. } => Some(revision.main),
                        _ => None,
                    })
                    .max();
                let batch = batch_of(mutations, applied_index);
                fatal(writer.mvcc.apply_batch(batch), "write the key-value store");
                if let Some(newest) = newest {
                    writer.written.fetch_max(newest, Ordering::AcqRel);
                }
            }))),
            values,
        })
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().expect("no thread panicked holding the wal")
    }

    fn flush_store(&self) {
        self.backend.wait();
        fatal(self.db.flush(), "flush the key-value store to disk");
    }
}

/// One atomic sled batch: the changes and the applied index they reach.
fn batch_of(mutations: Vec<Mutation>, applied_index: u64) -> ::sled::Batch {
    let mut batch = ::sled::Batch::default();
    for mutation in mutations {
        match mutation {
            Mutation::Put {
                revision,
                kv,
                tombstone,
            } => {
                let mut value = vec![u8::from(tombstone)];
                value.extend(kv.encode_to_vec());
                batch.insert(&revision_key(revision), value);
            }
            Mutation::Remove(revision) => batch.remove(&revision_key(revision)),
            Mutation::Compacted(at) => batch.insert(COMPACTED, &at.to_be_bytes()),
            Mutation::LeaseGranted { id, ttl } => batch.insert(&lease_key(id), &ttl.to_be_bytes()),
            Mutation::LeaseRevoked(id) => batch.remove(&lease_key(id)),
        }
    }
    batch.insert(APPLIED, &applied_index.to_be_bytes());
    batch
}

impl Storage for SledStorage {
    fn append(&self, entries: &[Entry]) {
        fatal(self.wal().append(entries), "append to the raft log");
    }

    fn set_hard_state(&self, hard_state: &HardState) {
        self.wal().set_hard_state(hard_state);
    }

    fn set_commit(&self, commit: u64) {
        let mut wal = self.wal();
        let mut hs = wal.log().hard_state.clone();
        hs.commit = commit;
        wal.set_hard_state(&hs);
    }

    fn set_conf_state(&self, conf_state: &ConfState) {
        self.wal().set_conf_state(conf_state);
    }

    fn sync(&self) {
        fatal(self.wal().sync(), "sync the raft log to disk");
    }

    fn save_applied(&self, applied_index: u64, mutations: Vec<Mutation>) {
        self.backend.save(applied_index, mutations);
        // Applied entries are read again only for a follower far behind: from disk.
        self.wal().release(applied_index);
    }

    fn save_members(&self, members: &[MemberInfo]) {
        let list = MemberListResponse {
            header: None,
            members: members.iter().map(Member::from).collect(),
        };
        let bytes = list.encode_to_vec();
        fatal(self.raft.insert(MEMBERS, bytes), "write the members");
    }

    fn load_members(&self) -> Vec<MemberInfo> {
        let Some(bytes) = fatal(self.raft.get(MEMBERS), "read the members") else {
            return Vec::new();
        };
        let list = MemberListResponse::decode(bytes.as_ref());
        let list = fatal(list, "decode the members");
        list.members.into_iter().map(MemberInfo::from).collect()
    }

    fn compact(&self, compact_to: u64) {
        // The log is about to lose entries: what the store applied must be on disk.
        self.flush_store();
        fatal(self.wal().compact(compact_to), "compact the raft log");
    }

    fn install_snapshot(&self, snapshot: &Snapshot, store: &MvccStore) {
        let meta = snapshot.get_metadata();
        // The store is replaced wholesale: drop every revision and lease, then write
        // the snapshot's, with the snapshot's index as the applied index.
        // Changes gathered before the snapshot are superseded by it.
        self.backend.discard();
        let mut mvcc = ::sled::Batch::default();
        for old in self.mvcc.iter() {
            mvcc.remove(fatal(old, "scan the store").0);
        }
        fatal(self.mvcc.apply_batch(mvcc), "clear the store");
        self.save_applied(meta.index, store.as_mutations());
        // Store first, then the log. A crash in between finds the marker and finishes
        // the reset at `open`; the marker goes (durably) only once the log is reset.
        let marker = fatal(meta.write_to_bytes(), "encode the snapshot metadata");
        fatal(self.raft.insert(INSTALLING, marker), "mark the install");
        self.flush_store();
        fatal(
            self.wal()
                .reset(meta.index, meta.term, meta.get_conf_state()),
            "reset the raft log",
        );
        fatal(self.raft.remove(INSTALLING), "unmark the install");
        fatal(self.db.flush(), "flush the key-value store to disk");
    }

    fn value_source(&self) -> Option<crate::mvcc::values::Source> {
        Some(self.values.clone())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.wal().size()
    }

    fn load_store(&self) -> (MvccStore, u64) {
        self.backend.wait();
        let revisions = self.mvcc.scan_prefix([REVISION]).map(|kv| {
            let (key, value) = fatal(kv, "read the key-value store");
            let revision = decode_revision_key(&key)
                .unwrap_or_else(|| panic!("kvstore: a corrupted revision key {key:?}"));
            let (flag, body) = value.split_first().expect("a stored revision has a flag");
            let kv = fatal(KeyValue::decode(body), "decode a stored revision");
            (revision, kv, *flag == 1)
        });
        let revisions: Vec<_> = revisions.collect();
        // Everything read here is on disk: the store may drop these values again.
        if let Some(newest) = revisions.iter().map(|(r, _, _)| r.main).max() {
            self.values.written.fetch_max(newest, Ordering::AcqRel);
        }
        // Absent until the first compaction: -1, "never compacted", as a new store.
        let compacted = fatal(self.mvcc.get(COMPACTED), "read the store")
            .map_or(-1, |v| u64_value(Some(v)) as i64);
        let applied = u64_value(fatal(self.mvcc.get(APPLIED), "read the store"));
        let leases: Vec<(i64, i64)> = self
            .mvcc
            .scan_prefix([LEASE])
            .map(|kv| {
                let (key, value) = fatal(kv, "read the leases");
                let id = i64::from_be_bytes(key[1..].try_into().expect("a 9-byte lease key"));
                let ttl = i64::from_be_bytes(value.as_ref().try_into().expect("an 8-byte TTL"));
                (id, ttl)
            })
            .collect();
        (
            MvccStore::restore(revisions, compacted).with_leases(leases),
            applied,
        )
    }
}

impl raft::Storage for SledStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let wal = self.wal();
        Ok(RaftState {
            hard_state: wal.log().hard_state.clone(),
            conf_state: wal.log().conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.wal().log().entries(low, high, max_size.into())
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        self.wal().log().term(index)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.wal().log().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.wal().log().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.snapshot_of_store(request_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A crash after a leader's snapshot replaced the store but before the log was
    /// reset leaves the `installing` marker: opening the directory finishes the reset.
    #[test]
    fn an_interrupted_install_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = ClusterInfo::local(3);
        let storage = SledStorage::open(dir.path(), &cluster).unwrap();
        let entries: Vec<Entry> = (1..=3)
            .map(|index| Entry {
                index,
                term: 1,
                ..Default::default()
            })
            .collect();
        storage.append(&entries);
        storage.sync();
        let mut meta = SnapshotMetadata {
            index: 40,
            term: 2,
            ..Default::default()
        };
        meta.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        storage
            .raft
            .insert(INSTALLING, meta.write_to_bytes().unwrap())
            .unwrap();
        drop(storage); // the crash

        let storage = SledStorage::open(dir.path(), &cluster).unwrap();
        use raft::Storage as _;
        assert_eq!(storage.first_index().unwrap(), 41);
        assert_eq!(storage.last_index().unwrap(), 40);
        assert_eq!(storage.term(40).unwrap(), 2);
        assert_eq!(storage.hard_state().commit, 40);
        assert!(
            storage.raft.get(INSTALLING).unwrap().is_none(),
            "marker gone"
        );
        drop(storage);
        // And it stays finished.
        let storage = SledStorage::open(dir.path(), &cluster).unwrap();
        assert_eq!(storage.last_index().unwrap(), 40);
    }
}
