//! What a member keeps on disk, behind one small trait.
//!
//! An etcd member persists two things:
//!
//! - the **Raft log** and **hard state** (term, vote, commit) — its WAL. Raft's safety
//!   rests on these being durable *before* the member tells anyone about them: a vote
//!   forgotten in a crash could be cast twice in the same term; an entry acknowledged
//!   and then lost could vanish from a majority.
//! - the **key-value store** with the index of the last entry applied to it — its
//!   backend (bbolt in etcd, where it is called the *consistent index*). The two are
//!   written in the same batch, so after a crash the member knows exactly which entries
//!   its store already contains and replays the log from the next one: nothing is
//!   applied twice, nothing is skipped.
//!
//! The store need not be synced to disk at every apply: if the last applies are lost
//! in a crash, their applied index is lost with them, and the entries are applied again
//! from the durable log.
//!
//! [`Storage`] is that contract. [`MemDisk`] keeps everything in memory (the simulator's
//! disk: it survives a simulated crash because the simulator keeps it); [`sled`] keeps
//! it in a data directory for real members: the log in a write-ahead log ([`wal`]), the
//! store in a sled database. A test runs both side
//! by side and requires identical answers (`tests/storage_differential.rs`).
//!
//! What is on disk is checked when a data directory is opened, and anything wrong with
//! it is an error from [`sled::SledStorage::open`] — the binary prints it and exits 1 —
//! never a panic: a damaged WAL (anything but a torn tail, [`wal`] explains the
//! difference), a store that does not decode, or a log and a store that do not fit
//! together (the WAL deleted while the store is ahead of it, a log behind the store, a
//! log that starts after the entry the store needs next). A log *ahead* of the store is
//! normal: the entries the store lacks are applied again. A refused open changes
//! nothing in the WAL. Only one lost-data start cannot be seen at open: a data
//! directory wiped entirely looks like a new member's; only the leader's first
//! heartbeat (entries up to N are committed, and this log is empty) can tell, in the
//! member's Raft layer.
//!
//! A storage failure after start (a full disk, an I/O error) is fatal for a member, as
//! in etcd: it panics with the cause rather than carrying on with state it could not
//! save.

pub mod backend;
pub mod sled;
pub mod wal;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RaftState};

use crate::membership::{ClusterInfo, MemberInfo};
use crate::mvcc::{Mutation, MvccStore, Revision};
use crate::proto::mvccpb::KeyValue;

/// Everything a [`crate::Member`] persists. Reads come through raft-rs's own
/// [`raft::Storage`]; the writes are these.
pub trait Storage: raft::Storage + Clone {
    /// Appends log entries, first dropping any entries at or after the first new index
    /// (a new leader overwrote them).
    fn append(&self, entries: &[Entry]);
    /// Records term, vote and commit index.
    fn set_hard_state(&self, hard_state: &HardState);
    /// Records the commit index alone.
    fn set_commit(&self, commit: u64);
    /// Records the cluster configuration.
    fn set_conf_state(&self, conf_state: &ConfState);
    /// Makes everything written so far durable. The member calls it at most once per
    /// Ready — when entries, the term or the vote changed — after writing them and
    /// before releasing any message that depends on them (a leader's appends do not:
    /// see [`crate::Member::ready_sending`]).
    fn sync(&self);
    /// Records the store's changes and the index of the last entry they cover, as one
    /// atomic write.
    fn save_applied(&self, applied_index: u64, mutations: Vec<Mutation>);
    /// Reads the store back and the index of the last entry applied to it.
    fn load_store(&self) -> (MvccStore, u64);

    /// Drops log entries before `compact_to`. A follower that needs them gets a
    /// snapshot instead ([`Storage::snapshot_of_store`]).
    fn compact(&self, compact_to: u64);
    /// Installs a snapshot sent by the leader: the log restarts after its index and the
    /// store becomes `store`, applied up to that index.
    fn install_snapshot(&self, snapshot: &Snapshot, store: &MvccStore);

    /// Records what the members announced about themselves (names, client URLs).
    fn save_members(&self, members: &[MemberInfo]);
    /// Reads back what [`Storage::save_members`] saved (empty if nothing yet).
    fn load_members(&self) -> Vec<MemberInfo>;

    /// Where the store may read values back from once it dropped them from memory
    /// (see [`crate::mvcc::values`]); none keeps every value in memory.
    fn value_source(&self) -> Option<crate::mvcc::values::Source> {
        None
    }

    /// A random number drawn when the data directory was created, and kept with it: a
    /// member announces it with its attributes, so that a member whose data directory
    /// was wiped and created again recognises its own announcement from before (see
    /// `Member::apply_attributes`). 0: none (memory, or a directory made before there
    /// was one), and nothing is checked.
    fn bootstrap_token(&self) -> u64 {
        0
    }

    /// Bytes the data directory takes (etcdctl's "DB SIZE"); 0 where not meaningful.
    fn size_on_disk(&self) -> u64 {
        0
    }

    /// A Raft snapshot of the store as persisted: its data is a snapshot file of the
    /// whole store, its index the last entry applied to it. Built only when a follower
    /// needs one, as etcd sends its backend file then; keeping one ready at every
    /// compaction would cost a copy of the store each time.
    fn snapshot_of_store(&self, request_index: u64) -> raft::Result<Snapshot> {
        let unavailable = || raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable);
        let (store, applied) = self.load_store();
        if applied < request_index {
            return Err(unavailable());
        }
        let term = self.term(applied).map_err(|_| unavailable())?;
        let conf_state = self.initial_state()?.conf_state;
        let mut snapshot = Snapshot::default();
        snapshot.set_data(crate::snapshot::encode(&store).into());
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(conf_state);
        Ok(snapshot)
    }

    /// Every entry in the log.
    fn log_entries(&self) -> Vec<Entry> {
        let first = self.first_index().unwrap_or(1);
        let last = self.last_index().unwrap_or(0);
        if last < first {
            return Vec::new();
        }
        self.entries(first, last + 1, None, GetEntriesContext::empty(false))
            .unwrap_or_default()
    }

    /// The persisted hard state.
    fn hard_state(&self) -> HardState {
        self.initial_state()
            .map(|s| s.hard_state)
            .unwrap_or_default()
    }
}

/// The persisted key-value history of a [`MemDisk`].
#[derive(Debug)]
struct MemBackend {
    revisions: BTreeMap<Revision, (KeyValue, bool)>,
    compacted: i64,
    applied_index: u64,
    members: Vec<MemberInfo>,
    leases: BTreeMap<i64, i64>,
}

impl Default for MemBackend {
    fn default() -> Self {
        MemBackend {
            revisions: BTreeMap::new(),
            compacted: -1, // never compacted, as a new store
            applied_index: 0,
            members: Vec::new(),
            leases: BTreeMap::new(),
        }
    }
}

/// An in-memory disk: raft-rs's `MemStorage` for the log, and a map of revisions for
/// the store. Cloning shares it, which is how the simulator keeps a member's disk
/// across a crash.
#[derive(Clone)]
pub struct MemDisk {
    raft: MemStorage,
    backend: Arc<Mutex<MemBackend>>,
}

impl std::fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemDisk")
            .field("hard_state", &self.hard_state())
            .field("applied_index", &self.backend().applied_index)
            .finish()
    }
}

impl MemDisk {
    /// A fresh data directory for a member of `cluster` (`--initial-cluster-state new`).
    pub fn new(cluster: &ClusterInfo) -> Self {
        let conf_state = ConfState::from((cluster.voter_ids(), vec![]));
        MemDisk {
            raft: MemStorage::new_with_conf_state(conf_state),
            backend: Arc::default(),
        }
    }

    fn backend(&self) -> std::sync::MutexGuard<'_, MemBackend> {
        self.backend
            .lock()
            .expect("no thread panicked holding the disk")
    }

    /// The index of the last entry the persisted store covers.
    pub fn applied_index(&self) -> u64 {
        self.backend().applied_index
    }
}

impl Storage for MemDisk {
    fn append(&self, entries: &[Entry]) {
        self.raft.wl().append(entries).expect("append to memory");
    }

    fn set_hard_state(&self, hard_state: &HardState) {
        self.raft.wl().set_hardstate(hard_state.clone());
    }

    fn set_commit(&self, commit: u64) {
        self.raft.wl().mut_hard_state().set_commit(commit);
    }

    fn set_conf_state(&self, conf_state: &ConfState) {
        self.raft.wl().set_conf_state(conf_state.clone());
    }

    fn sync(&self) {}

    fn save_applied(&self, applied_index: u64, mutations: Vec<Mutation>) {
        let mut backend = self.backend();
        for mutation in mutations {
            match mutation {
                Mutation::Put {
                    revision,
                    kv,
                    tombstone,
                } => {
                    backend.revisions.insert(revision, (kv, tombstone));
                }
                Mutation::Remove(revision) => {
                    backend.revisions.remove(&revision);
                }
                Mutation::Compacted(at) => backend.compacted = at,
                Mutation::LeaseGranted { id, ttl } => {
                    backend.leases.insert(id, ttl);
                }
                Mutation::LeaseRevoked(id) => {
                    backend.leases.remove(&id);
                }
            }
        }
        backend.applied_index = applied_index;
    }

    fn compact(&self, compact_to: u64) {
        self.raft
            .wl()
            .compact(compact_to)
            .expect("compact the log in memory");
    }

    fn install_snapshot(&self, snapshot: &Snapshot, store: &MvccStore) {
        self.raft
            .wl()
            .apply_snapshot(snapshot.clone())
            .expect("a snapshot newer than the log");
        let mut backend = self.backend();
        backend.revisions = store.stored().map(|(r, kv, t)| (r, (kv, t))).collect();
        backend.compacted = store.compact_revision();
        backend.leases = store.leases().collect();
        backend.applied_index = snapshot.get_metadata().index;
    }

    fn save_members(&self, members: &[MemberInfo]) {
        self.backend().members = members.to_vec();
    }

    fn load_members(&self) -> Vec<MemberInfo> {
        self.backend().members.clone()
    }

    fn load_store(&self) -> (MvccStore, u64) {
        let backend = self.backend();
        let revisions = backend
            .revisions
            .iter()
            .map(|(r, (kv, t))| (*r, kv.clone(), *t));
        let store = MvccStore::restore(revisions, backend.compacted)
            .with_leases(backend.leases.iter().map(|(&id, &ttl)| (id, ttl)));
        (store, backend.applied_index)
    }
}

impl raft::Storage for MemDisk {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.raft.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.raft.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.raft.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.raft.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.raft.last_index()
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.snapshot_of_store(request_index)
    }
}
