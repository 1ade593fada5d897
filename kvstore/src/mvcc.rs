//! The MVCC store: etcd's key-value state machine, with history.
//!
//! ## Revisions
//! One counter, the **revision**, orders every change in the cluster. It starts at 1
//! (an empty store) and each write request that changes something takes the next one:
//! the first put gets revision 2. A transaction that writes three keys takes *one*
//! revision; its changes are told apart by a *sub*-revision 0, 1, 2 — together
//! `Revision { main, sub }`.
//!
//! Each version of a key carries three numbers. Follow one key through four writes:
//!
//! ```text
//! rev 2  put  foo=a   create_revision 2, mod_revision 2, version 1
//! rev 3  put  foo=b   create_revision 2, mod_revision 3, version 2
//! rev 4  del  foo     (a tombstone: the key is absent from revision 4 on)
//! rev 5  put  foo=c   create_revision 5, mod_revision 5, version 1   (a new life)
//! ```
//!
//! Kubernetes shows `mod_revision` as an object's `metadata.resourceVersion`, and uses
//! it for optimistic concurrency: "update only if mod_revision is still 3" is a
//! transaction compare.
//!
//! ## History, reads in the past, and watch
//! Nothing is overwritten: each change is stored under its own revision, like etcd's
//! bbolt `key` bucket, whose keys are the 17-byte `main_sub` revision and whose values
//! are `mvccpb.KeyValue`s. To find a key quickly, an index (etcd's `treeIndex`) maps
//! each key to the list of revisions at which it changed. Reading at revision R means:
//! for each key, take its last change at or before R; if that was a delete, the key is
//! absent. A watch that resumes at revision R replays every stored change from R on, in
//! revision order: that is how a Kubernetes informer catches up after a reconnect.
//!
//! ## Compaction
//! History costs space, so etcd (and the API server, every five minutes) *compacts*:
//! `compact(R)` forgets every version that is no longer the current one at R. Reads at
//! R and later still work; reads before R fail with "required revision has been
//! compacted", and a watch that wants to start before R is refused — in Kubernetes
//! that is the `410 Gone` that makes an informer list again.
//!
//! ## Memory
//! The index and the revision store are plain `BTreeMap`s. A real member also keeps
//! every version on disk (sled) and rebuilds the store from there at start-up, as etcd
//! rebuilds its index; once a version is on disk its value is dropped from memory and
//! read back when needed (`mvcc/values.rs`), so memory holds the index, not the data.
//!
//! ## What is left out
//! Physical compaction scheduling. Leases are in `mvcc/lease.rs`; `hashkv`, the
//! history's checksum, in `mvcc/hash.rs`.
//!
//! Transactions — and every write, which is just a one-operation transaction — live in
//! `mvcc/txn.rs`.

pub mod hash;
mod lease;
mod txn;
pub mod values;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    range_request::{SortOrder, SortTarget},
    CompactionRequest, CompactionResponse, RangeRequest, RangeResponse,
};
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::request::{Request, Response};

/// A point in the store's history: the revision of a write request and the index of a
/// change within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The cluster-wide revision of the request.
    pub main: i64,
    /// The change's position within that request (0 for a plain put).
    pub sub: i64,
}

/// One stored change: the version written, or a tombstone.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    /// The version; its `value` is empty once `evicted`.
    kv: KeyValue,
    tombstone: bool,
    /// The value is on disk only (see `mvcc/values.rs`).
    evicted: bool,
}

impl Stored {
    fn new(kv: KeyValue, tombstone: bool) -> Self {
        Stored {
            kv,
            tombstone,
            evicted: false,
        }
    }
}

/// A change to the stored history, as a [`crate::storage::Storage`] must persist it.
/// The store lists them as it applies entries; the member hands them to storage
/// together with the index of the last entry they cover.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// A version (or, with `tombstone`, a delete) was stored at `revision`.
    Put {
        /// Where in history.
        revision: Revision,
        /// The version; for a delete, the key and the delete's revision.
        kv: KeyValue,
        /// A delete rather than a put.
        tombstone: bool,
    },
    /// Compaction dropped this revision.
    Remove(Revision),
    /// The store was compacted at this revision.
    Compacted(i64),
    /// A lease was granted with this TTL (seconds).
    LeaseGranted {
        /// The lease.
        id: i64,
        /// Its granted time to live.
        ttl: i64,
    },
    /// A lease was revoked (or expired).
    LeaseRevoked(i64),
}

/// The key-value state machine every member applies the Raft log to.
#[derive(Debug, Clone)]
pub struct MvccStore {
    /// Every retained change, by revision (etcd's bbolt `key` bucket).
    revs: BTreeMap<Revision, Stored>,
    /// Every key's change revisions, ascending (etcd's `treeIndex`).
    index: BTreeMap<Vec<u8>, Vec<Revision>>,
    /// The revision of the last write (1 before any).
    current: i64,
    /// Reads before this revision are refused; -1 until the first compaction (etcd's
    /// `compactMainRev`), so that compacting at revision 0 succeeds once, as in etcd.
    compacted: i64,
    /// Changes not yet handed to storage (see [`MvccStore::take_mutations`]).
    unsaved: Vec<Mutation>,
    /// Leases and the keys attached to them.
    leases: lease::Leases,
    /// Where evicted values are read back from (none: everything stays in memory).
    source: Option<values::Source>,
    /// Values of revisions up to this one were evicted (those on disk).
    evicted_through: i64,
}

/// Whether `k` lies in etcd's range `[key, range_end)`: an empty `range_end` means just
/// `key`; `[0]` means every key from `key` on (with `key == [0]`: every key).
pub fn key_in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    match range_end {
        [] => k == key,
        [0] => k >= key,
        end => k >= key && k < end,
    }
}

impl Default for MvccStore {
    fn default() -> Self {
        MvccStore::new()
    }
}

impl MvccStore {
    /// An empty store at revision 1, as etcd starts.
    pub fn new() -> Self {
        MvccStore {
            revs: BTreeMap::new(),
            index: BTreeMap::new(),
            current: 1,
            compacted: -1,
            unsaved: Vec::new(),
            leases: lease::Leases::default(),
            source: None,
            evicted_through: 0,
        }
    }

    /// Lets the store drop values its disk already holds and read them back from
    /// there (see [`values`]). Values written so far are dropped at the next
    /// [`MvccStore::evict_written`].
    pub fn set_value_source(&mut self, source: values::Source) {
        self.source = Some(source);
        self.evicted_through = 0;
    }

    /// Drops from memory the value of every version the source has (no source: none).
    pub fn evict_written(&mut self) {
        let Some(through) = self.source.as_ref().map(|s| s.written_through()) else {
            return;
        };
        if through <= self.evicted_through {
            return;
        }
        let from = Revision {
            main: self.evicted_through + 1,
            sub: 0,
        };
        let to = Revision {
            main: through + 1,
            sub: 0,
        };
        for stored in self.revs.range_mut(from..to).map(|(_, s)| s) {
            if !stored.tombstone && !stored.evicted {
                stored.kv.value = Vec::new();
                stored.evicted = true;
            }
        }
        self.evicted_through = through;
    }

    /// How many values are held in memory (the rest are on disk).
    pub fn values_in_memory(&self) -> usize {
        self.revs
            .values()
            .filter(|s| !s.tombstone && !s.evicted)
            .count()
    }

    /// The version stored at `revision`, its value read back from disk if evicted.
    fn load(&self, revision: &Revision, stored: &Stored) -> KeyValue {
        let mut kv = stored.kv.clone();
        if stored.evicted {
            let source = self.source.as_ref().expect("evicted only with a source");
            kv.value = source.value(*revision).unwrap_or_else(|| {
                panic!("kvstore: revision {revision:?} is missing from the disk")
            });
        }
        kv
    }

    /// Adds persisted leases (ID, TTL) to a restored store, and re-derives which live
    /// keys are attached to which lease.
    pub fn with_leases(mut self, leases: impl IntoIterator<Item = (i64, i64)>) -> Self {
        self.leases.ttl = leases.into_iter().collect();
        let now = self.current_revision();
        let live: Vec<KeyValue> = self
            .index
            .keys()
            .filter_map(|k| self.visible_as(k, now, false))
            .collect();
        for kv in live {
            self.leases.reattach(&kv.key, 0, Some(&kv));
        }
        self
    }

    /// Rebuilds a store from its persisted history: every stored revision (any order)
    /// and the compaction point. The key index is derived, as etcd rebuilds its
    /// `treeIndex` from the backend at start-up.
    pub fn restore(
        revisions: impl IntoIterator<Item = (Revision, KeyValue, bool)>,
        compacted: i64,
    ) -> Self {
        let mut store = MvccStore::new();
        for (revision, kv, tombstone) in revisions {
            store.current = store.current.max(revision.main);
            store.revs.insert(revision, Stored::new(kv, tombstone));
        }
        for (revision, stored) in &store.revs {
            let key_revs = store.index.entry(stored.kv.key.clone()).or_default();
            key_revs.push(*revision); // `revs` iterates in revision order
        }
        store.compacted = compacted;
        store.current = store.current.max(compacted);
        store
    }

    /// Every retained change in revision order: what a snapshot carries.
    pub fn stored(&self) -> impl Iterator<Item = (Revision, KeyValue, bool)> + '_ {
        self.revs
            .iter()
            .map(|(r, s)| (*r, self.load(r, s), s.tombstone))
    }

    /// The mutations that rebuild this whole store from nothing: every retained
    /// version, the compaction point, every lease (for restoring a snapshot).
    pub fn as_mutations(&self) -> Vec<Mutation> {
        let versions = self
            .stored()
            .map(|(revision, kv, tombstone)| Mutation::Put {
                revision,
                kv,
                tombstone,
            });
        let leases = self
            .leases()
            .map(|(id, ttl)| Mutation::LeaseGranted { id, ttl });
        versions
            .chain([Mutation::Compacted(self.compact_revision())])
            .chain(leases)
            .collect()
    }

    /// Takes the changes made since the last call, for storage to persist.
    pub fn take_mutations(&mut self) -> Vec<Mutation> {
        std::mem::take(&mut self.unsaved)
    }

    /// The revision of the last change (1 for an empty store).
    pub fn current_revision(&self) -> i64 {
        self.current
    }

    /// The revision of the last compaction (-1 if never compacted, as etcd reports it).
    pub fn compact_revision(&self) -> i64 {
        self.compacted
    }

    /// How many keys exist now.
    pub fn key_count(&self) -> usize {
        let now = self.current_revision();
        self.index
            .keys()
            .filter(|k| self.visible_stored(k, now).is_some())
            .count()
    }

    /// The version of `key` visible at revision `at`: its last change at or before
    /// `at`, unless that change was a delete.
    fn visible(&self, key: &[u8], at: i64) -> Option<KeyValue> {
        self.visible_stored(key, at)
            .map(|(revision, stored)| self.load(revision, stored))
    }

    /// [`MvccStore::visible`] with its value only `if with_value`; without, `value` is
    /// left empty. A write needs the version, revisions and lease of what it replaces,
    /// rarely the value, and an evicted value is a read from disk (as etcd's put reads
    /// its in-memory index, not bbolt).
    fn visible_as(&self, key: &[u8], at: i64, with_value: bool) -> Option<KeyValue> {
        if with_value {
            return self.visible(key, at);
        }
        self.visible_stored(key, at).map(|(_, stored)| {
            let kv = &stored.kv;
            KeyValue {
                key: kv.key.clone(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                value: Vec::new(), // not copied only to be dropped
                lease: kv.lease,
            }
        })
    }

    /// The version an event's change replaced (`None` for a key's first version, or
    /// when compaction has removed it): what a watch with `prev_kv` sends with the
    /// event. Looked up when the event is sent to such a watch, as etcd does, so that
    /// a write reads no old value nobody asked for.
    pub fn version_before(&self, kv: &KeyValue) -> Option<KeyValue> {
        self.visible(&kv.key, kv.mod_revision - 1)
    }

    /// [`MvccStore::visible`] without reading the value.
    fn visible_stored(&self, key: &[u8], at: i64) -> Option<(&Revision, &Stored)> {
        let revs = self.index.get(key)?;
        let last = revs.iter().rev().find(|r| r.main <= at)?;
        let stored = &self.revs[last];
        (!stored.tombstone).then_some((last, stored))
    }

    /// The keys of the index inside etcd's range `[key, range_end)`, in order.
    fn keys_in_range<'a>(
        &'a self,
        key: &'a [u8],
        range_end: &'a [u8],
    ) -> Box<dyn Iterator<Item = &'a Vec<u8>> + 'a> {
        match range_end {
            [] => Box::new(self.index.get_key_value(key).into_iter().map(|(k, _)| k)),
            [0] => Box::new(self.index.range(key.to_vec()..).map(|(k, _)| k)),
            end if key < end => {
                Box::new(self.index.range(key.to_vec()..end.to_vec()).map(|(k, _)| k))
            }
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Checks that revision `at` can be read.
    fn check_readable(&self, at: i64) -> Result<()> {
        if at > self.current_revision() {
            return Err(Error::FutureRevision);
        }
        if at < self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        Ok(())
    }

    /// Serves a read at `req.revision` (0: now). The header is left for the member to
    /// fill in.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let at = if req.revision <= 0 {
            self.current_revision()
        } else {
            req.revision
        };
        self.check_readable(at)?;
        let with_values = range_reads_values(req);
        let kvs: Vec<KeyValue> = self
            .keys_in_range(&req.key, &req.range_end)
            .filter_map(|k| self.visible_as(k, at, with_values))
            .collect();
        Ok(shape_range(kvs, req))
    }

    /// Applies one request taken from the Raft log. Returns the response (header left
    /// empty) and the watch events it caused, in revision order. An error leaves the
    /// store unchanged; the same request on the same store always gives the same result.
    pub fn apply(&mut self, req: &Request) -> (Result<Response>, Vec<Event>) {
        match req {
            Request::Range(r) => (self.range(r).map(Response::Range), vec![]),
            Request::Compact(c) => (self.compact(c).map(Response::Compact), vec![]),
            Request::LeaseGrant(g) => (self.grant(g).map(Response::LeaseGrant), vec![]),
            Request::LeaseRevoke(r) => match self.revoke(r) {
                Ok((response, events)) => (Ok(Response::LeaseRevoke(response)), events),
                Err(e) => (Err(e), vec![]),
            },
            Request::LeaseKeepAlive(k) => {
                (self.keep_alive(k.id).map(Response::LeaseKeepAlive), vec![])
            }
            Request::LeaseTimeToLive(t) => {
                (Ok(Response::LeaseTimeToLive(self.time_to_live(t))), vec![])
            }
            Request::LeaseLeases(_) => (Ok(Response::LeaseLeases(self.lease_list())), vec![]),
            Request::Put(_) | Request::DeleteRange(_) | Request::Txn(_) => {
                let mut tx = txn::Tx::new(self);
                match tx.execute(req) {
                    Ok(response) => {
                        let changes = tx.into_changes();
                        (Ok(response), self.commit(changes))
                    }
                    Err(e) => (Err(e), vec![]),
                }
            }
        }
    }

    /// Stores the changes of one write request under the next revision and returns
    /// their events.
    fn commit(&mut self, changes: Vec<txn::Change>) -> Vec<Event> {
        if changes.is_empty() {
            return vec![];
        }
        let main = self.current_revision() + 1;
        let mut events = Vec::with_capacity(changes.len());
        for (sub, change) in changes.into_iter().enumerate() {
            let rev = Revision {
                main,
                sub: sub as i64,
            };
            let (kv, tombstone, kind) = match change.kv {
                Some(kv) => (kv, false, EventType::Put),
                None => (
                    KeyValue {
                        key: change.key.clone(),
                        mod_revision: main,
                        ..Default::default()
                    },
                    true,
                    EventType::Delete,
                ),
            };
            let new = (!tombstone).then_some(&kv);
            self.leases.reattach(&change.key, change.prev_lease, new);
            events.push(Event {
                r#type: kind as i32,
                kv: Some(kv.clone()),
                prev_kv: None, // filled in for the watches that ask (version_before)
            });
            self.unsaved.push(Mutation::Put {
                revision: rev,
                kv: kv.clone(),
                tombstone,
            });
            self.index.entry(change.key).or_default().push(rev);
            self.revs.insert(rev, Stored::new(kv, tombstone));
        }
        self.current = main;
        events
    }

    /// Forgets every version that is no longer current at `req.revision`.
    fn compact(&mut self, req: &CompactionRequest) -> Result<CompactionResponse> {
        let at = req.revision;
        if at > self.current_revision() {
            return Err(Error::FutureRevision);
        }
        if at <= self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        let revs = &mut self.revs;
        let unsaved = &mut self.unsaved;
        self.index.retain(|_, key_revs| {
            // The version visible at `at` is the last one at or before it; keep it
            // unless it is a delete, and keep everything after it.
            let visible_at = key_revs.iter().rposition(|r| r.main <= at);
            let keep_from = match visible_at {
                Some(i) if key_revs[i].main < at && revs[&key_revs[i]].tombstone => i + 1,
                Some(i) => i,
                None => 0,
            };
            for dropped in key_revs.drain(..keep_from) {
                revs.remove(&dropped);
                unsaved.push(Mutation::Remove(dropped));
            }
            !key_revs.is_empty()
        });
        self.compacted = at;
        self.unsaved.push(Mutation::Compacted(at));
        Ok(CompactionResponse { header: None })
    }

    /// Every retained change from `start_revision` on, as watch events in revision
    /// order (without `prev_kv`, as [`MvccStore::apply`]'s).
    pub fn events_since(&self, start_revision: i64) -> Result<Vec<Event>> {
        if start_revision < self.compacted {
            return Err(Error::Compacted {
                compact_revision: self.compacted,
            });
        }
        let from = Revision {
            main: start_revision,
            sub: 0,
        };
        let events = self
            .revs
            .range(from..)
            .map(|(rev, stored)| {
                let kind = if stored.tombstone {
                    EventType::Delete
                } else {
                    EventType::Put
                };
                Event {
                    r#type: kind as i32,
                    kv: Some(self.load(rev, stored)),
                    prev_kv: None,
                }
            })
            .collect();
        Ok(events)
    }

    /// A fingerprint of the current state (revision, compaction point, and every live
    /// key-value): equal on members that applied the same entries.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::default();
        h.write(&self.current_revision().to_be_bytes());
        h.write(&self.compacted.to_be_bytes());
        for (id, ttl) in self.leases() {
            h.write(&id.to_be_bytes());
            h.write(&ttl.to_be_bytes());
        }
        let now = self.current_revision();
        for key in self.index.keys() {
            if let Some(kv) = self.visible(key, now) {
                for part in [&kv.key[..], &kv.value[..]] {
                    h.write(&(part.len() as u64).to_be_bytes());
                    h.write(part);
                }
                for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
                    h.write(&n.to_be_bytes());
                }
            }
        }
        h.0
    }
}

/// FNV-1a, 64 bit: simple, stable across runs and platforms.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Whether a range needs the values (a count, or keys not sorted by value, do not).
fn range_reads_values(req: &RangeRequest) -> bool {
    !req.count_only && (!req.keys_only || req.sort_target == SortTarget::Value as i32)
}

/// Turns the keys found in a range into the response etcd gives: `count` is every key
/// in the range; then the min/max revision filters, the sort, the limit, and the
/// keys-only / count-only trimming.
fn shape_range(mut kvs: Vec<KeyValue>, req: &RangeRequest) -> RangeResponse {
    let count = kvs.len() as i64;
    if req.count_only {
        // Only the count: no kvs, so nothing was left out by the limit either.
        return RangeResponse {
            header: None,
            kvs: vec![],
            more: false,
            count,
        };
    }
    let bound = |min: i64, max: i64, v: i64| (min == 0 || v >= min) && (max == 0 || v <= max);
    kvs.retain(|kv| {
        bound(req.min_mod_revision, req.max_mod_revision, kv.mod_revision)
            && bound(
                req.min_create_revision,
                req.max_create_revision,
                kv.create_revision,
            )
    });
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if order == SortOrder::None && target != SortTarget::Key {
        order = SortOrder::Ascend; // etcd: a sort target without an order means ascending
    }
    if order != SortOrder::None {
        // Keys arrive in key order, and the sort is stable, so ties stay in key order.
        kvs.sort_by(|a, b| match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        });
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    RangeResponse {
        header: None,
        kvs,
        more,
        count,
    }
}

#[cfg(test)]
mod tests;
