//! A member's data directory, kept in a sled database.
//!
//! Two trees, each written with atomic batches:
//!
//! | tree   | key                                   | value                              |
//! |--------|---------------------------------------|------------------------------------|
//! | `raft` | `hs`                                  | the hard state (raft-rs protobuf)  |
//! | `raft` | `cs`                                  | the conf state                     |
//! | `raft` | `e` + index (8 bytes, big-endian)     | a log entry                        |
//! | `raft` | `members`                             | names and URLs (`MemberListResponse`) |
//! | `raft` | `snap`                                | the last raft snapshot (its data is a kvstore snapshot file) |
//! | `raft` | `installed`                           | index and term (8 BE each) of the last snapshot *installed*: the log starts after it |
//! | `mvcc` | `r` + main (8 BE) + `_` + sub (8 BE)  | tombstone flag (1 byte) + `mvccpb.KeyValue` |
//! | `mvcc` | `l` + lease ID (8 BE)                 | granted TTL in seconds (8 BE)      |
//! | `mvcc` | `m/applied`                           | last applied index (8 BE)          |
//! | `mvcc` | `m/compacted`                         | compaction revision (8 BE)         |
//!
//! The revision keys are etcd's own 17-byte layout (its bbolt `key` bucket), so the
//! history sorts by revision and a watch replay is a range scan. Big-endian numbers
//! sort the way the numbers do.
//!
//! Durability: [`Storage::sync`] flushes the database (an fsync) — the member calls it
//! once per Ready, before any message leaves. The store's batches are not flushed on
//! their own: if a crash loses them, it loses the applied index in the same batch, and
//! the member applies those entries again from the durable log.

use std::path::Path;

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::Storage;
use crate::error::{Error, Result};
use crate::membership::{ClusterInfo, MemberInfo};
use crate::mvcc::{Mutation, MvccStore, Revision};
use crate::proto::etcdserverpb::{Member, MemberListResponse};
use crate::proto::mvccpb::KeyValue;

const HARD_STATE: &[u8] = b"hs";
const MEMBERS: &[u8] = b"members";
const SNAPSHOT: &[u8] = b"snap";
const INSTALLED: &[u8] = b"installed";
const CONF_STATE: &[u8] = b"cs";
const ENTRY: u8 = b'e';
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
        let opened = ::sled::Config::new().path(dir).flush_every_ms(None).open();
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

fn entry_key(index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = ENTRY;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
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
        // No background flusher: the member flushes itself once per Ready (`sync`), and
        // without that thread a closed database releases its directory lock at once, so
        // a member restarted in the same process can reopen it.
        let db = open_db(dir)?;
        let raft = db.open_tree("raft").map_err(storage_error)?;
        let mvcc = db.open_tree("mvcc").map_err(storage_error)?;
        let storage = SledStorage { db, raft, mvcc };
        if storage
            .raft
            .get(CONF_STATE)
            .map_err(storage_error)?
            .is_none()
        {
            let cs = ConfState::from((cluster.voter_ids(), vec![]));
            storage.set_conf_state(&cs);
            storage.sync();
        }
        Ok(storage)
    }

    fn get_entry(&self, index: u64) -> Option<Entry> {
        let bytes = fatal(self.raft.get(entry_key(index)), "read the raft log")?;
        let mut entry = Entry::default();
        fatal(entry.merge_from_bytes(&bytes), "decode a raft log entry");
        Some(entry)
    }

    fn saved_snapshot(&self) -> Option<Snapshot> {
        let bytes = fatal(self.raft.get(SNAPSHOT), "read the snapshot")?;
        let mut snapshot = Snapshot::default();
        fatal(snapshot.merge_from_bytes(&bytes), "decode the snapshot");
        Some(snapshot)
    }

    /// Index and term of the last snapshot installed from a leader: the entry just
    /// before the log (0, 0 if none), as raft-rs's MemStorage tracks it.
    fn snapshot_index_term(&self) -> (u64, u64) {
        let Some(bytes) = fatal(self.raft.get(INSTALLED), "read the snapshot index") else {
            return (0, 0);
        };
        let index = u64::from_be_bytes(bytes[..8].try_into().expect("16 bytes"));
        let term = u64::from_be_bytes(bytes[8..16].try_into().expect("16 bytes"));
        (index, term)
    }

    fn bounds(&self) -> (u64, u64) {
        let index =
            |kv: Option<std::result::Result<(::sled::IVec, ::sled::IVec), ::sled::Error>>| {
                kv.map(|r| fatal(r, "scan the raft log"))
                    .and_then(|(k, _)| <[u8; 8]>::try_from(&k[1..]).ok())
                    .map(u64::from_be_bytes)
            };
        let mut entries = self.raft.scan_prefix([ENTRY]);
        let first = index(entries.next());
        let last = index(entries.next_back()).or(first);
        match (first, last) {
            (Some(first), Some(last)) => (first, last),
            // An empty log starts right after the last snapshot (index 0 if none).
            _ => {
                let (index, _) = self.snapshot_index_term();
                (index + 1, index)
            }
        }
    }
}

impl Storage for SledStorage {
    fn append(&self, entries: &[Entry]) {
        let Some(first_new) = entries.first().map(|e| e.index) else {
            return;
        };
        let mut batch = ::sled::Batch::default();
        // Entries at and after the first new index were overwritten by a new leader.
        for old in self.raft.range(entry_key(first_new)..) {
            let (key, _) = fatal(old, "scan the raft log");
            if key.first() == Some(&ENTRY) {
                batch.remove(key);
            }
        }
        for entry in entries {
            let bytes = fatal(entry.write_to_bytes(), "encode a raft log entry");
            batch.insert(&entry_key(entry.index), bytes);
        }
        fatal(self.raft.apply_batch(batch), "append to the raft log");
    }

    fn set_hard_state(&self, hard_state: &HardState) {
        let bytes = fatal(hard_state.write_to_bytes(), "encode the hard state");
        fatal(self.raft.insert(HARD_STATE, bytes), "write the hard state");
    }

    fn set_commit(&self, commit: u64) {
        let mut hs = self.hard_state();
        hs.commit = commit;
        self.set_hard_state(&hs);
    }

    fn set_conf_state(&self, conf_state: &ConfState) {
        let bytes = fatal(conf_state.write_to_bytes(), "encode the conf state");
        fatal(self.raft.insert(CONF_STATE, bytes), "write the conf state");
    }

    fn sync(&self) {
        fatal(self.db.flush(), "flush the data directory to disk");
    }

    fn save_applied(&self, applied_index: u64, mutations: Vec<Mutation>) {
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
                Mutation::LeaseGranted { id, ttl } => {
                    batch.insert(&lease_key(id), &ttl.to_be_bytes())
                }
                Mutation::LeaseRevoked(id) => batch.remove(&lease_key(id)),
            }
        }
        batch.insert(APPLIED, &applied_index.to_be_bytes());
        fatal(self.mvcc.apply_batch(batch), "write the key-value store");
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

    fn save_snapshot(&self, snapshot: Snapshot, compact_to: u64) {
        let bytes = fatal(snapshot.write_to_bytes(), "encode the snapshot");
        let mut batch = ::sled::Batch::default();
        batch.insert(SNAPSHOT, bytes);
        for old in self.raft.range(entry_key(0)..entry_key(compact_to)) {
            batch.remove(fatal(old, "scan the raft log").0);
        }
        fatal(self.raft.apply_batch(batch), "save the snapshot");
    }

    fn install_snapshot(&self, snapshot: &Snapshot, store: &MvccStore) {
        let meta = snapshot.get_metadata();
        let mut raft = ::sled::Batch::default();
        for old in self.raft.scan_prefix([ENTRY]) {
            raft.remove(fatal(old, "scan the raft log").0);
        }
        let mut hs = self.hard_state();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        raft.insert(
            HARD_STATE,
            fatal(hs.write_to_bytes(), "encode the hard state"),
        );
        let cs = fatal(
            meta.get_conf_state().write_to_bytes(),
            "encode the conf state",
        );
        raft.insert(CONF_STATE, cs);
        raft.insert(
            SNAPSHOT,
            fatal(snapshot.write_to_bytes(), "encode the snapshot"),
        );
        let mut installed = meta.index.to_be_bytes().to_vec();
        installed.extend(meta.term.to_be_bytes());
        raft.insert(INSTALLED, installed);
        fatal(self.raft.apply_batch(raft), "install the snapshot");
        // The store is replaced wholesale: drop every revision and lease, then write
        // the snapshot's, with the snapshot's index as the applied index.
        let mut mvcc = ::sled::Batch::default();
        for old in self.mvcc.iter() {
            mvcc.remove(fatal(old, "scan the store").0);
        }
        fatal(self.mvcc.apply_batch(mvcc), "clear the store");
        let mutations = store.as_mutations();
        self.save_applied(meta.index, mutations);
        self.sync();
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn load_store(&self) -> (MvccStore, u64) {
        let revisions = self.mvcc.scan_prefix([REVISION]).map(|kv| {
            let (key, value) = fatal(kv, "read the key-value store");
            let revision = decode_revision_key(&key)
                .unwrap_or_else(|| panic!("kvstore: a corrupted revision key {key:?}"));
            let (flag, body) = value.split_first().expect("a stored revision has a flag");
            let kv = fatal(KeyValue::decode(body), "decode a stored revision");
            (revision, kv, *flag == 1)
        });
        let revisions: Vec<_> = revisions.collect();
        let compacted = u64_value(fatal(self.mvcc.get(COMPACTED), "read the store")) as i64;
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
        let mut state = RaftState::default();
        if let Some(bytes) = fatal(self.raft.get(HARD_STATE), "read the hard state") {
            fatal(
                state.hard_state.merge_from_bytes(&bytes),
                "decode the hard state",
            );
        }
        if let Some(bytes) = fatal(self.raft.get(CONF_STATE), "read the conf state") {
            fatal(
                state.conf_state.merge_from_bytes(&bytes),
                "decode the conf state",
            );
        }
        Ok(state)
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let (first, last) = self.bounds();
        if low < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut entries: Vec<Entry> = self
            .raft
            .range(entry_key(low)..entry_key(high))
            .map(|kv| {
                let (_, bytes) = fatal(kv, "read the raft log");
                let mut entry = Entry::default();
                fatal(entry.merge_from_bytes(&bytes), "decode a raft log entry");
                entry
            })
            .collect();
        raft::util::limit_size(&mut entries, max_size.into());
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        // The entry just before the log is the last snapshot's (index 0, term 0 when
        // there is none yet: the empty log's "entry 0").
        let (snap_index, snap_term) = self.snapshot_index_term();
        if index == snap_index {
            return Ok(snap_term);
        }
        let (first, last) = self.bounds();
        if index < first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > last {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.get_entry(index).map_or(0, |e| e.term))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.bounds().0)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.bounds().1)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The last snapshot this member saved, for a follower behind the log's start.
        match self.saved_snapshot() {
            Some(s) if s.get_metadata().index >= request_index => Ok(s),
            _ => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}
