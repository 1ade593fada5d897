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
//!
//! That is checked at [`SledStorage::open`], before anything is written: the WAL is
//! read back ([`Wal::recover`]), the store is read and decoded, and the log must reach
//! from the entry after the store's applied index to the hard state's commit. If it
//! does not, entries were lost, and the open is refused with what does not fit.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState};
use seams::clock::SharedClock;

use super::backend::{Backend, Writer};
use super::wal::{Recovered, Wal, REFUSE};
use super::Storage;
use crate::error::{Error, Result};
use crate::membership::{ClusterInfo, MemberInfo};
use crate::mvcc::{Mutation, MvccStore, Revision};
use crate::proto::etcdserverpb::{Member, MemberListResponse};
use crate::proto::mvccpb::KeyValue;
use crate::snapshot::{self, SnapshotStatus};

const MEMBERS: &[u8] = b"members";
const INSTALLING: &[u8] = b"installing";
/// A random number drawn when the directory was created (`Storage::bootstrap_token`).
const BOOTSTRAP: &[u8] = b"bootstrap";
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
    /// The store as [`SledStorage::open`] read (and checked) it, for the first
    /// [`Storage::load_store`] — the member's start — so it is not read twice. Gone
    /// with the first write.
    opened: Arc<Mutex<Option<(MvccStore, u64)>>>,
    /// See [`Storage::bootstrap_token`].
    bootstrap: u64,
    /// Where the store's batches are written, and so how its size is told.
    mode: Writer,
}

/// The directory's bootstrap token: read, or drawn and made durable if it has none (a
/// new directory; one made before tokens existed gets one too, and its own earlier
/// announcements, which carry none, are not checked).
fn bootstrap_token(db: &::sled::Db, raft: &::sled::Tree) -> Result<u64> {
    if let Some(token) = raft.get(BOOTSTRAP).map_err(storage_error)? {
        return <[u8; 8]>::try_from(token.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::Storage("the bootstrap token is damaged".into()));
    }
    // The standard library's hasher keys are drawn from the OS's randomness: a new one
    // for each directory, without a clock or another crate. Never 0 ("none").
    use std::hash::{BuildHasher, RandomState};
    let token = RandomState::new().hash_one(BOOTSTRAP).max(1);
    raft.insert(BOOTSTRAP, &token.to_be_bytes())
        .map_err(storage_error)?;
    db.flush().map_err(storage_error)?;
    Ok(token)
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
/// wait for the lock, up to 500 tries 20 ms apart (10 s), before giving up. The wait is
/// counted in tries, not read off the member's clock: it waits for another thread to
/// let go of a file lock, which happens in real time whatever the clock says (a paused
/// clock would make a deadline wait forever), and it is the only wait in a synchronous
/// path.
fn open_db(dir: &Path) -> Result<::sled::Db> {
    const TRIES: u32 = 500;
    let mut tried = 0;
    loop {
        tried += 1;
        let opened = ::sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(16 * 1024 * 1024)
            .open();
        match opened {
            // sled reports the lock as an I/O error whose text says so.
            Err(::sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && tried < TRIES =>
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

/// A big-endian number kept under `key` (0 if absent). Any other length is damage.
fn stored_u64(tree: &::sled::Tree, key: &[u8]) -> Result<u64> {
    let Some(value) = tree.get(key).map_err(storage_error)? else {
        return Ok(0);
    };
    let bytes = <[u8; 8]>::try_from(value.as_ref()).map_err(|_| {
        Error::Storage(format!(
            "the key-value store's {} is {} bytes, not 8: the store is damaged",
            String::from_utf8_lossy(key),
            value.len()
        ))
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// Reads the store back: revisions, compaction, leases and the applied index.
/// Bytes that do not decode are an error naming what they are.
fn read_store(mvcc: &::sled::Tree, values: &SledValues) -> Result<(MvccStore, u64)> {
    let damaged = |what: String| Error::Storage(format!("the key-value store is damaged: {what}"));
    let mut revisions = Vec::new();
    for kv in mvcc.scan_prefix([REVISION]) {
        let (key, value) = kv.map_err(storage_error)?;
        let revision =
            decode_revision_key(&key).ok_or_else(|| damaged(format!("a revision key {key:?}")))?;
        let (flag, body) = value
            .split_first()
            .ok_or_else(|| damaged(format!("an empty value at revision {revision:?}")))?;
        let kv = KeyValue::decode(body)
            .map_err(|e| damaged(format!("revision {revision:?} does not decode: {e}")))?;
        revisions.push((revision, kv, *flag == 1));
    }
    // Everything read here is on disk: the store may drop these values again.
    if let Some(newest) = revisions.iter().map(|(r, _, _)| r.main).max() {
        values.written.fetch_max(newest, Ordering::AcqRel);
    }
    // Absent until the first compaction: -1, "never compacted", as a new store.
    let compacted = match mvcc.get(COMPACTED).map_err(storage_error)? {
        Some(_) => stored_u64(mvcc, COMPACTED)? as i64,
        None => -1,
    };
    let applied = stored_u64(mvcc, APPLIED)?;
    let mut leases = Vec::new();
    for kv in mvcc.scan_prefix([LEASE]) {
        let (key, value) = kv.map_err(storage_error)?;
        let id = key.get(1..).and_then(|id| <[u8; 8]>::try_from(id).ok());
        let ttl = <[u8; 8]>::try_from(value.as_ref()).ok();
        let (Some(id), Some(ttl)) = (id, ttl) else {
            return Err(damaged(format!("a lease {key:?} with a TTL of {value:?}")));
        };
        leases.push((i64::from_be_bytes(id), i64::from_be_bytes(ttl)));
    }
    Ok((
        MvccStore::restore(revisions, compacted).with_leases(leases),
        applied,
    ))
}

/// Reads what [`Storage::save_members`] saved.
fn read_members(raft: &::sled::Tree) -> Result<Vec<MemberInfo>> {
    let Some(bytes) = raft.get(MEMBERS).map_err(storage_error)? else {
        return Ok(Vec::new());
    };
    let list = MemberListResponse::decode(bytes.as_ref()).map_err(|e| {
        Error::Storage(format!("the members saved in the store do not decode: {e}"))
    })?;
    Ok(list.members.into_iter().map(MemberInfo::from).collect())
}

/// Checks that the log read back reaches the store on disk: replaying it from the entry
/// after the store's `applied` index must be possible. The log may be ahead of the
/// store (the store is written without waiting for the disk; the log replays what it
/// lost); the store may not be ahead of the log, and the log may not start after the
/// entry the store needs next. Either means entries were lost — a deleted or truncated
/// WAL, or a store replaced by an older copy — and raft-rs would panic on the indexes,
/// or the member would apply the log onto the wrong store.
fn check_log_reaches_store(wal: &Recovered, applied: u64) -> Result<()> {
    let path = wal.path();
    let path = path.display();
    let Some(log) = wal.log() else {
        if applied == 0 {
            return Ok(()); // a new member
        }
        return Err(Error::Storage(format!(
            "{path}: no write-ahead log, but the key-value store has applied entries up to \
             {applied}: the log was deleted or lost; {REFUSE}"
        )));
    };
    let (first, last) = (log.first_index(), log.last_index());
    let commit = log.hard_state.commit;
    if applied > last {
        return Err(Error::Storage(format!(
            "{path}: the log ends at entry {last}, but the key-value store has applied \
             entries up to {applied}: the log lost entries the store has (was the wal \
             deleted, truncated or replaced by an older copy?); {REFUSE}"
        )));
    }
    if applied + 1 < first {
        return Err(Error::Storage(format!(
            "{path}: the log starts at entry {first}, but the key-value store has applied \
             entries only up to {applied}: entries {} to {} are in neither (was the store \
             deleted or replaced by an older copy?); {REFUSE}",
            applied + 1,
            first - 1
        )));
    }
    if commit > last {
        return Err(Error::Storage(format!(
            "{path}: the hard state says entries up to {commit} are committed, but the log \
             ends at entry {last}: the log was truncated; {REFUSE}"
        )));
    }
    Ok(())
}

impl SledStorage {
    /// Opens (or creates) the data directory `dir`. A new one is initialised for
    /// `cluster`'s members, like `--initial-cluster-state new`; an existing one keeps
    /// its own state. The store's write batches are timed on `clock`.
    pub fn open(dir: &Path, cluster: &ClusterInfo, clock: SharedClock) -> Result<Self> {
        SledStorage::open_with(dir, cluster, clock, Writer::Thread)
    }

    /// [`SledStorage::open`], with the store's batches written where `writer` says.
    pub fn open_with(
        dir: &Path,
        cluster: &ClusterInfo,
        clock: SharedClock,
        mode: Writer,
    ) -> Result<Self> {
        // No background flusher: the store is flushed when the log is compacted, and
        // without that thread a closed database releases its directory lock at once, so
        // a member restarted in the same process can reopen it.
        let db = open_db(dir)?;
        let raft = db.open_tree("raft").map_err(storage_error)?;
        let mvcc = db.open_tree("mvcc").map_err(storage_error)?;
        // Everything is read and checked before anything is written: a start that is
        // refused leaves the log as it was, byte for byte.
        let recovered = Wal::recover(&dir.join("wal"))?;
        let installing = match raft.get(INSTALLING).map_err(storage_error)? {
            Some(bytes) => Some(SnapshotMetadata::parse_from_bytes(&bytes).map_err(|e| {
                Error::Storage(format!(
                    "{}: the marker of an interrupted snapshot install does not decode: {e}",
                    dir.display()
                ))
            })?),
            None => None,
        };
        let values = Arc::new(SledValues {
            mvcc: mvcc.clone(),
            written: AtomicI64::new(0),
        });
        // The store too, so that a damaged one is an error here rather than a panic
        // when the member starts (which takes what was read: it is not read twice).
        let store = read_store(&mvcc, &values)?;
        read_members(&raft)?;
        let applied = store.1;
        if installing.is_none() {
            check_log_reaches_store(&recovered, applied)?;
        }
        let cs = ConfState::from((cluster.voter_ids(), vec![]));
        let mut wal = recovered.open(&cs)?;
        // A crash while installing a leader's snapshot, after the store was replaced
        // and before the log was reset: finish the reset.
        if let Some(meta) = installing {
            wal.reset(meta.index, meta.term, meta.get_conf_state())?;
            raft.remove(INSTALLING).map_err(storage_error)?;
            db.flush().map_err(storage_error)?;
        }
        // An entry is applied only once it is committed, but a commit index alone is not
        // synced (see `Member::ready_sending`): after a crash the store can be ahead of
        // the commit in the log's hard state. The store's index is the better answer
        // (raft-rs would refuse an applied index above the commit).
        if applied > wal.log().hard_state.commit {
            let mut hs = wal.log().hard_state.clone();
            hs.commit = applied;
            wal.set_hard_state(&hs);
        }
        let bootstrap = bootstrap_token(&db, &raft)?;
        let writer = values.clone();
        Ok(SledStorage {
            mode,
            bootstrap,
            db,
            raft,
            mvcc: mvcc.clone(),
            wal: Arc::new(Mutex::new(wal)),
            backend: Arc::new(Backend::with(
                Box::new(move |mutations, applied_index| {
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
                }),
                clock,
                mode,
            )),
            values,
            opened: Arc::new(Mutex::new(Some(store))),
        })
    }

    /// `snapshot restore`: writes the store of a snapshot file ([`crate::snapshot`]) into
    /// a fresh data directory `dir` for a member of the new `cluster`, with an empty
    /// log, and says what the file held. Refuses a directory that already has data.
    pub fn restore(
        bytes: &[u8],
        dir: &Path,
        cluster: &ClusterInfo,
        clock: SharedClock,
    ) -> Result<SnapshotStatus> {
        let (store, status) = snapshot::decode(bytes)?;
        let used = dir.exists()
            && std::fs::read_dir(dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true);
        if used {
            return Err(Error::Snapshot(format!(
                "data-dir {} exists and is not empty",
                dir.display()
            )));
        }
        let storage = SledStorage::open(dir, cluster, clock)?;
        // Applied index 0: the new cluster's log starts empty, above this store.
        storage.save_applied(0, store.as_mutations());
        storage.save_members(&cluster.members);
        storage.sync();
        Ok(status)
    }

    fn opened_store(&self) -> MutexGuard<'_, Option<(MvccStore, u64)>> {
        self.opened
            .lock()
            .expect("no thread panicked holding the opened store")
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
    fn bootstrap_token(&self) -> u64 {
        self.bootstrap
    }

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
        // What `open` read is out of date from the first write on.
        self.opened_store().take();
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
        fatal(read_members(&self.raft), "read the members")
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

    /// sled's files and the log. With the store written inline (the simulator), the
    /// bytes of the store's keys and values instead of sled's files: how long those
    /// are depends on when sled's own I/O threads got to them, and a simulated run
    /// must print the same sizes every time.
    fn size_on_disk(&self) -> u64 {
        let store = match self.mode {
            Writer::Thread => self.db.size_on_disk().unwrap_or(0),
            Writer::Inline => self
                .mvcc
                .iter()
                .filter_map(|entry| entry.ok())
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum(),
        };
        store + self.wal().size()
    }

    fn load_store(&self) -> (MvccStore, u64) {
        self.backend.wait();
        if let Some(opened) = self.opened_store().take() {
            return opened;
        }
        fatal(
            read_store(&self.mvcc, &self.values),
            "read the key-value store",
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
    use seams::SystemClock;

    /// A crash after a leader's snapshot replaced the store but before the log was
    /// reset leaves the `installing` marker: opening the directory finishes the reset.
    #[test]
    fn an_interrupted_install_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = ClusterInfo::local(3);
        let storage = SledStorage::open(dir.path(), &cluster, SystemClock::shared()).unwrap();
        let entries: Vec<Entry> = (1..=3)
            .map(|index| Entry {
                index,
                term: 1,
                ..Default::default()
            })
            .collect();
        storage.append(&entries);
        storage.sync();
        // The leader's store is in place, applied up to the snapshot's index...
        storage.save_applied(40, Vec::new());
        storage.flush_store();
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

        let storage = SledStorage::open(dir.path(), &cluster, SystemClock::shared()).unwrap();
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
        let storage = SledStorage::open(dir.path(), &cluster, SystemClock::shared()).unwrap();
        assert_eq!(storage.last_index().unwrap(), 40);
    }

    #[test]
    fn restore_refuses_a_used_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"data").unwrap();
        let file = snapshot::encode(&MvccStore::new());
        let cluster = ClusterInfo::local(1);
        let err =
            SledStorage::restore(&file, dir.path(), &cluster, SystemClock::shared()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "untouched"
        );
    }

    /// Bytes in the store that do not decode are an error at open, not a panic when
    /// the member starts.
    #[test]
    fn a_damaged_store_is_an_error_at_open() {
        let cluster = ClusterInfo::local(1);
        let damages: [(&[u8], &[u8], &str); 3] = [
            (APPLIED, b"abc", "m/applied is 3 bytes, not 8"),
            (
                &revision_key(Revision { main: 2, sub: 0 }),
                b"\x00\xff\xff",
                "does not decode",
            ),
            (&lease_key(7), b"\x01", "a lease"),
        ];
        for (key, value, expected) in damages {
            let dir = tempfile::tempdir().unwrap();
            let storage = SledStorage::open(dir.path(), &cluster, SystemClock::shared()).unwrap();
            storage.mvcc.insert(key, value).unwrap();
            storage.flush_store();
            drop(storage);
            let err = SledStorage::open(dir.path(), &cluster, SystemClock::shared())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
