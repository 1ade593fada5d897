//! One etcd member as a deterministic state machine: Raft (tikv's raft-rs) underneath,
//! the MVCC store on top, and the bookkeeping that turns client requests into log
//! entries and log entries back into client responses.
//!
//! A [`Member`] never reads a clock, opens a socket or spawns a thread. It moves only
//! when its owner calls one of four methods:
//!
//! - [`Member::tick`]: one unit of logical time passed (etcd's heartbeat interval);
//! - [`Member::step`]: a Raft message from a peer arrived;
//! - [`Member::request`] / [`Member::watch`]: a client asked for something;
//! - [`Member::ready`]: "do the work that is due and tell me what came of it".
//!
//! `ready` runs the Raft *Ready loop* the way raft-rs prescribes and reports it as a
//! [`Ready`]: the entries and hard state it wrote to storage, the messages to send, the
//! entries it applied, the requests that completed and the watch events. The order
//! inside is the one that keeps Raft safe: **persist first, then send** (a vote or an
//! append acknowledged over the network must survive a crash), then apply committed
//! entries, then tell raft-rs we are done (`advance`). The owner only delivers the
//! messages; it cannot get the order wrong because it never sees the unpersisted state.
//! One exception, as in etcd and the Raft thesis (§10.2.1): a *leader's* appends may
//! leave before its own write, so that its disk and its followers' work at the same
//! time; [`Member::ready_sending`] hands those out early. The leader counts its own
//! copy towards a majority only once it is written, so nothing unsafe can commit.
//!
//! In the simulator the owner is [`crate::sim::SimCluster`], which delivers messages
//! through queues it controls; in a real server it is [`crate::server::driver`], a
//! thread with a timer and sockets. Same core, different edges.
//!
//! ## Requests and their deadlines
//! Every request carries an ID chosen by the caller and a deadline counted in ticks. A
//! write is proposed to Raft as soon as the member knows a leader (raft-rs drops
//! proposals when there is none, so until then the request waits here). A linearizable
//! read asks Raft for a *read index* (see the crate essay) and is served once the member
//! has applied that far. When the deadline passes the request completes with an error:
//! [`Error::NoLeader`] if it never got to Raft (nothing happened), [`Error::Timeout`] if
//! it did (it may still commit: indeterminate). A proposal that a newer leader's entries
//! overtook completes early with [`Error::LeaderChanged`], also indeterminate.

use std::collections::BTreeMap;

use raft::eraftpb::{Entry, HardState, Message, MessageType};
use raft::{RawNode, StateRole};

use crate::error::{Error, Result};
use crate::membership::ClusterInfo;
use crate::mvcc::MvccStore;
use crate::proto::etcdserverpb::MemberAttributes;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::request::{encode_attributes, encode_entry, entry_len, validate, Request, Response};
use crate::storage::{MemDisk, Storage};
use crate::watch::{WatchCreate, WatchEvents, Watcher};
use snapshots::snapshot_targets;

/// Timing and identity of one member. Times are in ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// This member's Raft ID (must be in the cluster).
    pub id: u64,
    /// A follower that hears nothing from a leader for this long starts an election
    /// (etcd: 1000 ms = 10 ticks of 100 ms).
    pub election_tick: usize,
    /// A leader sends heartbeats this often (etcd: 100 ms = 1 tick).
    pub heartbeat_tick: usize,
    /// The actual election timeout is drawn from `[min_election_tick,
    /// max_election_tick)`, again at every change of role or term, from a generator
    /// seeded with `election_seed` (raft-rs's own draws are unseeded, and overridden:
    /// `member/elections.rs`). The simulator narrows the range to one value per member
    /// (`max = min + 1`) so its members never tie.
    pub min_election_tick: usize,
    /// See `min_election_tick`.
    pub max_election_tick: usize,
    /// Seeds this member's election timeouts: same seed, same timeouts. A server draws
    /// it from the generator in its config.
    pub election_seed: u64,
    /// How long a request may wait before it fails (etcd: 5 s plus two election
    /// timeouts).
    pub request_timeout_ticks: u64,
    /// A read index that got no answer is asked again after this many ticks (etcd
    /// retries every 500 ms).
    pub read_retry_ticks: u64,
    /// Announce this member's name and client URLs through Raft once it knows a
    /// leader, as etcd members do at start, so every member can list every other's
    /// client URLs. (The simulator's members all know each other already.)
    pub publish_attributes: bool,
    /// Ticks in one second of lease time (etcd: 10, one per 100 ms heartbeat).
    pub ticks_per_second: u64,
    /// Take a snapshot and compact the log every this many applied entries (etcd's
    /// `--snapshot-count`); the log keeps as many entries again behind the snapshot
    /// for followers that are only a little behind. 0: never.
    pub snapshot_count: u64,
    /// The largest log entry a client request may become (etcd's
    /// `--max-request-bytes`, 1.5 MiB by default): every member keeps each entry and
    /// the leader sends it to every follower.
    pub max_request_bytes: usize,
}

impl MemberConfig {
    /// etcd's defaults expressed in ticks of 100 ms, with raft-rs's randomised election
    /// window `[10, 20)`.
    pub fn etcd_defaults(id: u64) -> Self {
        MemberConfig {
            id,
            election_tick: 10,
            heartbeat_tick: 1,
            min_election_tick: 10,
            max_election_tick: 20,
            election_seed: id,
            request_timeout_ticks: 70,
            read_retry_ticks: 5,
            publish_attributes: false,
            ticks_per_second: 10,
            snapshot_count: 100_000,
            max_request_bytes: crate::request::MAX_REQUEST_BYTES,
        }
    }

    fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            min_election_tick: self.min_election_tick,
            max_election_tick: self.max_election_tick,
            applied,
            // Pre-vote: a member that was cut off asks "would you vote for me?" before
            // raising its term, so it cannot depose a healthy leader when it returns.
            pre_vote: true,
            // Check-quorum: a leader that has not heard from a majority for an election
            // timeout steps down, so a leader cut off in a minority stops acting as one.
            check_quorum: true,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            ..Default::default()
        }
    }
}

/// A client request completed, successfully or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The ID the caller gave to [`Member::request`].
    pub id: u64,
    /// The response, or why there is none.
    pub result: Result<Response>,
}

/// An entry this member applied to its state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its log index.
    pub index: u64,
    /// The term of the leader that appended it.
    pub term: u64,
    /// The client request it carried (`None` for a new leader's empty entry).
    pub request_id: Option<u64>,
    /// The store revision after applying it.
    pub revision: i64,
}

/// What one call of [`Member::ready`] did and produced.
#[derive(Debug, Default)]
pub struct Ready {
    /// Log entries written to storage, before any message was released.
    pub persisted_entries: Vec<Entry>,
    /// The new hard state written to storage, if it changed.
    pub persisted_hard_state: Option<HardState>,
    /// Raft messages for peers; send them in order.
    pub messages: Vec<Message>,
    /// Committed entries applied to the MVCC store, in log order.
    pub applied: Vec<Applied>,
    /// Client requests that completed.
    pub completions: Vec<Completion>,
    /// Events for this member's watchers.
    pub watch_events: Vec<WatchEvents>,
    /// The index of a snapshot from the leader installed in place of log entries.
    pub installed_snapshot: Option<u64>,
    /// Watches ended by the member: the history they still needed was compacted away
    /// (after installing a snapshot).
    pub canceled_watches: Vec<i64>,
}

impl Ready {
    /// True when nothing happened.
    pub fn is_empty(&self) -> bool {
        self.persisted_entries.is_empty()
            && self.persisted_hard_state.is_none()
            && self.messages.is_empty()
            && self.applied.is_empty()
            && self.completions.is_empty()
            && self.watch_events.is_empty()
            && self.installed_snapshot.is_none()
            && self.canceled_watches.is_empty()
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// No leader known yet; not handed to Raft.
    WaitingForLeader,
    /// A write in the log (or on its way to the leader), proposed in this term.
    Proposed { term: u64 },
    /// A linearizable read waiting for Raft to confirm a read index.
    ReadIndex { asked_at: u64 },
    /// The read index is known; serve once applied this far.
    ReadAt { index: u64 },
}

#[derive(Debug, Clone)]
struct Pending {
    request: Request,
    deadline: u64,
    stage: Stage,
}

/// Role and progress of a member, for transcripts and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Raft ID.
    pub id: u64,
    /// Leader, follower, candidate or pre-candidate.
    pub role: StateRole,
    /// Current Raft term.
    pub term: u64,
    /// The leader this member believes in (0: none).
    pub leader: u64,
    /// Highest log index known committed.
    pub commit: u64,
    /// Highest log index applied to the store.
    pub applied: u64,
    /// Highest log index in the log.
    pub last_index: u64,
    /// MVCC store revision.
    pub revision: i64,
}

/// One etcd member: a Raft node, its MVCC store and the requests in flight, over a
/// [`Storage`] (in memory by default; sled for a real member).
pub struct Member<S: Storage = MemDisk> {
    config: MemberConfig,
    cluster: ClusterInfo,
    raft: RawNode<S>,
    store: MvccStore,
    applied_index: u64,
    now: u64,
    pending: BTreeMap<u64, Pending>,
    watchers: BTreeMap<i64, Watcher>,
    /// The term in which this member last proposed its attributes, until they apply.
    publishing: Option<u64>,
    /// Lease deadlines (acted on by the leader).
    lessor: lessor::Lessor,
    /// The index of the last snapshot taken or installed.
    last_snapshot: u64,
    out: Ready,
    /// Why this member must not go on (its log was lost); it does nothing more.
    failed: Option<Error>,
    /// An election sooner than the timeout, after the leader's connection closed.
    fast_election: Option<elections::FastElection>,
    /// This member's seeded election timeouts.
    election_timeouts: elections::ElectionTimeouts,
}

impl<S: Storage> std::fmt::Debug for Member<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("status", &self.status())
            .finish()
    }
}

impl<S: Storage> Member<S> {
    /// Starts a member on `storage`: a fresh one, or what a crashed member left behind.
    /// On restart raft-rs restores term, vote and log, the store is read back, and only
    /// entries after the store's applied index are applied again.
    pub fn start(config: MemberConfig, cluster: ClusterInfo, storage: S) -> Self {
        assert!(
            cluster.member(config.id).is_some(),
            "member {} is not in the cluster",
            config.id
        );
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let (mut store, applied_index) = storage.load_store();
        if let Some(source) = storage.value_source() {
            store.set_value_source(source);
            store.evict_written();
        }
        let mut cluster = cluster;
        for saved in storage.load_members() {
            if let Some(m) = cluster.members.iter_mut().find(|m| m.id == saved.id) {
                m.client_urls = saved.client_urls;
            }
        }
        let publishing = config.publish_attributes.then_some(0);
        let raft_config = config.raft_config(applied_index);
        let window = (
            raft_config.min_election_tick(),
            raft_config.max_election_tick(),
        );
        let election_timeouts = elections::ElectionTimeouts::new(config.election_seed, window);
        let raft =
            RawNode::new(&raft_config, storage, &logger).expect("a valid raft config and storage");
        let mut member = Member {
            config,
            cluster,
            raft,
            store,
            applied_index,
            now: 0,
            pending: BTreeMap::new(),
            watchers: BTreeMap::new(),
            publishing,
            lessor: lessor::Lessor::default(),
            last_snapshot: applied_index,
            out: Ready::default(),
            failed: None,
            fast_election: None,
            election_timeouts,
        };
        member.pin_election_timeout();
        member
    }

    /// Stops the member the hard way: everything in memory is gone (requests in flight,
    /// watchers, unpersisted log entries); what was persisted is handed back.
    pub fn crash(self) -> S {
        self.raft.store().clone()
    }

    /// The members as this member knows them (with announced client URLs).
    pub fn cluster(&self) -> &ClusterInfo {
        &self.cluster
    }

    /// This member's Raft ID.
    pub fn id(&self) -> u64 {
        self.config.id
    }

    /// The applied MVCC store (for serializable reads and checks).
    pub fn store(&self) -> &MvccStore {
        &self.store
    }

    /// What this member has persisted.
    pub fn storage(&self) -> &S {
        self.raft.store()
    }

    /// Role, term, leader, indexes and revision.
    pub fn status(&self) -> MemberStatus {
        let r = &self.raft.raft;
        MemberStatus {
            id: self.config.id,
            role: r.state,
            term: r.term,
            leader: r.leader_id,
            commit: r.raft_log.committed,
            applied: self.applied_index,
            last_index: r.raft_log.last_index(),
            revision: self.store.current_revision(),
        }
    }

    /// One tick of logical time: Raft's election and heartbeat clocks advance, read
    /// indexes that went unanswered are asked again, and requests past their deadline
    /// fail.
    pub fn tick(&mut self) {
        self.now += 1;
        self.raft.tick();
        self.pin_election_timeout();
        self.fast_election_tick();
        self.expire_leases();
        let now = self.now;
        let leader_known = self.leader_known();
        let mut expired = Vec::new();
        let mut reask = Vec::new();
        for (&id, p) in self.pending.iter_mut() {
            if now >= p.deadline {
                expired.push(id);
            } else if let Stage::ReadIndex { asked_at } = p.stage {
                if now >= asked_at + self.config.read_retry_ticks {
                    reask.push(id);
                }
            }
        }
        for id in expired {
            let p = self.pending.remove(&id).expect("listed above");
            let error = match p.stage {
                Stage::WaitingForLeader => Error::NoLeader,
                Stage::Proposed { .. } | Stage::ReadIndex { .. } | Stage::ReadAt { .. } => {
                    Error::Timeout
                }
            };
            self.complete(id, Err(error));
        }
        for id in reask {
            if leader_known {
                self.ask_read_index(id);
            } else if let Some(p) = self.pending.get_mut(&id) {
                p.stage = Stage::WaitingForLeader;
            }
        }
    }

    /// Feeds a Raft message from a peer. Messages Raft rejects (from an unknown member,
    /// or a stale local type) are dropped, as a network would drop garbage.
    pub fn step(&mut self, message: Message) {
        if self.failed.is_some() {
            return;
        }
        // A leader's heartbeat carries the commit index it knows this member to hold.
        // Beyond this member's log, the entries it acknowledged are gone: its data was
        // lost. raft-rs would panic on the index; say it in words, and stop.
        let log = &self.raft.raft.raft_log;
        if message.get_msg_type() == MessageType::MsgHeartbeat
            && message.term >= self.raft.raft.term
            && message.commit > log.last_index()
        {
            self.failed = Some(Error::LogLost {
                commit: message.commit,
                last_index: log.last_index(),
            });
            return;
        }
        let _ = self.raft.step(message);
        self.pin_election_timeout();
    }

    /// Why this member cannot go on, once it cannot: the server ends it (etcd exits).
    pub fn failed(&self) -> Option<&Error> {
        self.failed.as_ref()
    }

    /// The transport could not deliver to `peer`: Raft stops assuming that the messages
    /// it sent there arrived, and probes the peer's log again once it answers.
    pub fn report_unreachable(&mut self, peer: u64) {
        self.raft.report_unreachable(peer);
    }

    /// Accepts a client request. Invalid requests are refused at once; everything else
    /// completes later through [`Member::ready`], at the latest by its deadline.
    pub fn request(&mut self, id: u64, mut request: Request) -> Result<()> {
        request.validate()?;
        if !request.is_read() {
            validate::check_size(entry_len(id, &request), self.config.max_request_bytes)?;
        }
        if let Request::LeaseGrant(grant) = &mut request {
            self.prepare_lease_grant(id, grant);
        }
        if self.pending.contains_key(&id) {
            return Err(Error::DuplicateRequestId(id));
        }
        if request.is_serializable_read() {
            // Served from whatever this member has applied: no leader, no quorum, no
            // log. Possibly stale; that is the contract of a serializable read.
            let result = self.serve_read(&request);
            self.complete(id, result);
            return Ok(());
        }
        let pending = Pending {
            request,
            deadline: self.now + self.config.request_timeout_ticks,
            stage: Stage::WaitingForLeader,
        };
        self.pending.insert(id, pending);
        if self.leader_known() {
            self.dispatch(id);
        }
        Ok(())
    }

    /// Registers a watch. Starting at an older revision replays history first; a
    /// compacted start revision is refused.
    pub fn watch(&mut self, watch_id: i64, create: WatchCreate) -> Result<()> {
        let mut watcher = Watcher {
            id: watch_id,
            next_revision: self.store.current_revision() + 1,
            create,
        };
        if watcher.create.start_revision > 0 {
            let history = self.store.events_since(watcher.create.start_revision)?;
            watcher.next_revision = watcher.create.start_revision;
            let events = watcher.filter(&history, |kv| self.store.version_before(kv));
            watcher.next_revision = watcher.next_revision.max(self.store.current_revision() + 1);
            if !events.is_empty() {
                self.out.watch_events.push(WatchEvents { watch_id, events });
            }
        }
        self.watchers.insert(watch_id, watcher);
        Ok(())
    }

    /// Removes a watch; returns whether it existed.
    pub fn cancel_watch(&mut self, watch_id: i64) -> bool {
        self.watchers.remove(&watch_id).is_some()
    }

    /// Runs the Raft Ready loop until raft-rs has nothing more to say, and returns what
    /// was persisted, what must be sent, what was applied and which requests completed.
    pub fn ready(&mut self) -> Ready {
        let mut early = Vec::new();
        let mut ready = self.ready_sending(|messages| early.extend(messages));
        early.append(&mut ready.messages);
        ready.messages = early;
        ready
    }

    /// [`Member::ready`], handing `send_now` the messages that may leave *before* this
    /// member's disk write: a leader's appends to its followers. The Raft paper allows
    /// it (the leader counts itself only once its own write is done), and etcd does it:
    /// the leader's fsync and its followers' then happen at the same time instead of
    /// one after the other. Votes and acknowledgements still wait for the disk.
    pub fn ready_sending(&mut self, mut send_now: impl FnMut(Vec<Message>)) -> Ready {
        loop {
            self.dispatch_waiting();
            if !self.raft.has_ready() {
                break;
            }
            let mut rd = self.raft.ready();
            let store = self.raft.store().clone();
            let applied_before = self.applied_index;
            let immediate = rd.take_messages();
            let snapshots_sent = snapshot_targets(&immediate);
            if !immediate.is_empty() {
                send_now(immediate);
            }

            // 0. A leader's appends may go now (see above).
            // 1. Persist. Nothing below may leave this member before this is done.
            if !rd.snapshot().is_empty() {
                // Too far behind for the leader's log: take its whole store instead.
                self.install_snapshot(rd.snapshot().clone());
            }
            if !rd.entries().is_empty() {
                store.append(rd.entries());
                self.out
                    .persisted_entries
                    .extend(rd.entries().iter().cloned());
            }
            // As etcd: wait for the disk only when entries, the term or the vote changed.
            // A commit index alone may be lost in a crash; the leader tells it again.
            // raft-rs works it out (`must_sync`).
            if let Some(hs) = rd.hs() {
                store.set_hard_state(hs);
                self.out.persisted_hard_state = Some(hs.clone());
            }
            if rd.must_sync() {
                store.sync();
            }

            // 2. Send: only now may votes and acknowledgements leave.
            self.out.messages.extend(rd.take_persisted_messages());

            // 3. Apply what is committed, then answer the reads that were waiting on it.
            let committed = rd.take_committed_entries();
            self.apply_entries(committed);
            for rs in rd.take_read_states() {
                self.on_read_state(&rs.request_ctx, rs.index);
            }

            // 4. Tell raft-rs this Ready is handled; it may hand back more of the same.
            let mut light = self.raft.advance(rd);
            if let Some(commit) = light.commit_index() {
                store.set_commit(commit);
            }
            self.out.messages.extend(light.take_messages());
            self.apply_entries(light.take_committed_entries());
            self.raft.advance_apply();
            self.snapshots_handed_over(snapshots_sent);
            // The store's changes and the applied index they reach, in one write.
            let mutations = self.store.take_mutations();
            if self.applied_index > applied_before {
                store.save_applied(self.applied_index, mutations);
                self.maybe_snapshot();
                // Values the disk already has need not stay in memory.
                self.store.evict_written();
            }
            self.serve_ready_reads();
        }
        self.pin_election_timeout();
        std::mem::take(&mut self.out)
    }

    /// Whether this member currently believes in a leader.
    fn leader_known(&self) -> bool {
        self.raft.raft.leader_id != raft::INVALID_ID
    }

    fn dispatch_waiting(&mut self) {
        if !self.leader_known() {
            return;
        }
        self.publish_attributes();
        let waiting: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.stage == Stage::WaitingForLeader)
            .map(|(&id, _)| id)
            .collect();
        for id in waiting {
            self.dispatch(id);
        }
    }

    /// Proposes this member's name and client URLs, once per term until they apply.
    fn publish_attributes(&mut self) {
        let term = self.raft.raft.term;
        if self.publishing.is_none_or(|proposed| proposed >= term) {
            return;
        }
        let me = self.cluster.member(self.config.id).expect("in the cluster");
        let attributes = MemberAttributes {
            id: me.id,
            name: me.name.clone(),
            client_urls: me.client_urls.clone(),
            bootstrap: self.raft.store().bootstrap_token(),
        };
        if self
            .raft
            .propose(vec![], encode_attributes(attributes))
            .is_ok()
        {
            self.publishing = Some(term);
        }
    }

    /// Hands a waiting request to Raft: a read asks for a read index, a write is
    /// proposed (forwarded to the leader by raft-rs if this member is a follower).
    fn dispatch(&mut self, id: u64) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        if p.request.is_read() {
            self.ask_read_index(id);
            return;
        }
        let data = encode_entry(id, &p.request);
        let term = self.raft.raft.term;
        if self.raft.propose(vec![], data).is_ok() {
            if let Some(p) = self.pending.get_mut(&id) {
                p.stage = Stage::Proposed { term };
            }
        }
        // A dropped proposal (e.g. during a leadership transfer) stays waiting.
    }

    /// A response header as of now: cluster, member, store revision, Raft term.
    pub fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster.cluster_id,
            member_id: self.config.id,
            revision: self.store.current_revision(),
            raft_term: self.raft.raft.term,
        }
    }

    fn complete(&mut self, id: u64, result: Result<Response>) {
        self.out.completions.push(Completion { id, result });
    }
}

mod apply;
mod elections;
mod lessor;
mod reads;
mod snapshots;
#[cfg(test)]
mod tests;
