//! A whole etcd cluster in one process, with a network and a clock the caller controls.
//!
//! [`SimCluster`] owns N [`Member`]s and everything between them: one FIFO queue per
//! directed link (etcd's peer streams are TCP, so order per link is preserved), a set of
//! cut links (partitions), a tick counter, and a seeded random generator. Nothing
//! happens unless the caller says so: [`SimCluster::tick`] advances every live member's
//! clock, [`SimCluster::deliver`] hands one message across one link,
//! [`SimCluster::deliver_all`] drains the network, [`SimCluster::crash`] and
//! [`SimCluster::restart`] kill and revive a member from what it had persisted.
//!
//! Because there is no real time, no thread and no unseeded randomness, the same seed
//! and the same calls give the same run, byte for byte — so a failing fault schedule
//! found by a property test can be replayed and read.
//!
//! Every client request is recorded with when it was invoked and how it completed (see
//! [`history`]), so the history can be checked for linearizability afterwards, and
//! every notable thing is written to a transcript a learner can read (see
//! [`SimCluster::take_transcript`]). After every step the cluster checks Raft's safety
//! properties ([`SimCluster::check_invariants`]).

mod faults;
pub mod history;
mod invariants;
mod transcript;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use raft::eraftpb::Message;
use raft::StateRole;

use crate::error::Error;
use crate::member::{Member, MemberConfig, MemberStatus, Ready};
use crate::membership::ClusterInfo;
use crate::request::Request;
use crate::storage::{MemDisk, Storage};
use crate::watch::WatchCreate;

pub use history::{Outcome, Record};
pub use invariants::Invariants;
/// The seeded generator behind every random choice here: the one all of miniplane draws
/// from (`seams/src/rand.rs`), so a simulation is a pure function of its seed.
pub use seams::rand::SplitMix64;

/// Knobs of a simulated cluster. Ticks are abstract; think of one as etcd's 100 ms
/// heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// How many members (3 or 5 in the tests).
    pub members: u64,
    /// Seeds every random choice: election timeouts and random deliveries.
    pub seed: u64,
    /// Base election timeout; each member's actual one is drawn from
    /// `[election_tick, 2 * election_tick)` when it starts, different from every other
    /// member's (so at most `election_tick` members).
    pub election_tick: usize,
    /// Heartbeat interval.
    pub heartbeat_tick: usize,
    /// Request deadline.
    pub request_timeout_ticks: u64,
    /// Read-index retry interval.
    pub read_retry_ticks: u64,
    /// Snapshot and compact the log every this many entries (0: never).
    pub snapshot_count: u64,
}

impl SimConfig {
    /// etcd's proportions (heartbeat 1, election 10) with a request deadline of three
    /// election timeouts, so that stalls show within a short transcript.
    pub fn new(members: u64, seed: u64) -> Self {
        SimConfig {
            members,
            seed,
            election_tick: 10,
            heartbeat_tick: 1,
            request_timeout_ticks: 30,
            read_retry_ticks: 5,
            snapshot_count: 0,
        }
    }
}

/// A member is either running or lying on its disk.
#[derive(Debug)]
enum Node {
    Up(Box<Member>),
    Down(MemDisk),
}

/// N members, the network between them, their clients and the checks.
#[derive(Debug)]
pub struct SimCluster {
    config: SimConfig,
    cluster: ClusterInfo,
    rng: SplitMix64,
    nodes: BTreeMap<u64, Node>,
    links: BTreeMap<(u64, u64), VecDeque<Message>>,
    cut: BTreeSet<(u64, u64)>,
    /// Each member's pinned election timeout, all different.
    timeouts: BTreeMap<u64, usize>,
    ticks: u64,
    /// Logical time of the history: bumped at every invocation and completion.
    clock: u64,
    records: Vec<Record>,
    last_status: BTreeMap<u64, MemberStatus>,
    invariants: Invariants,
    transcript: Vec<String>,
    trace_messages: bool,
    next_watch_id: i64,
}

impl SimCluster {
    /// Creates and starts every member on a fresh disk. No leader yet: tick to get one.
    pub fn new(config: SimConfig) -> Self {
        assert!(
            config.members as usize <= config.election_tick,
            "each member needs its own election timeout in [election_tick, 2 * election_tick)"
        );
        let cluster = ClusterInfo::local(config.members);
        let mut sim = SimCluster {
            rng: SplitMix64::new(config.seed),
            config,
            nodes: BTreeMap::new(),
            links: BTreeMap::new(),
            cut: BTreeSet::new(),
            timeouts: BTreeMap::new(),
            ticks: 0,
            clock: 0,
            records: Vec::new(),
            last_status: BTreeMap::new(),
            invariants: Invariants::default(),
            transcript: Vec::new(),
            trace_messages: false,
            next_watch_id: 1,
            cluster,
        };
        for id in sim.cluster.voter_ids() {
            let member = sim.start_member(id, MemDisk::new(&sim.cluster));
            sim.nodes.insert(id, Node::Up(Box::new(member)));
        }
        sim
    }

    fn start_member(&mut self, id: u64, disk: MemDisk) -> Member {
        // Pin this incarnation's election timeout: raft-rs would draw a new one from an
        // unseeded RNG at every election, which no test could replay. A pinned timeout
        // must differ from every other member's, or members that start their timers
        // together would split the vote again and again, forever.
        let e = self.config.election_tick;
        let taken: Vec<usize> = self
            .timeouts
            .iter()
            .filter(|(&other, _)| other != id)
            .map(|(_, &t)| t)
            .collect();
        let free: Vec<usize> = (e..2 * e).filter(|t| !taken.contains(t)).collect();
        let timeout = free[self.rng.below(free.len() as u64) as usize];
        self.timeouts.insert(id, timeout);
        let config = MemberConfig {
            id,
            election_tick: e,
            heartbeat_tick: self.config.heartbeat_tick,
            min_election_tick: timeout,
            max_election_tick: timeout + 1,
            request_timeout_ticks: self.config.request_timeout_ticks,
            read_retry_ticks: self.config.read_retry_ticks,
            publish_attributes: false,
            ticks_per_second: 10,
            snapshot_count: self.config.snapshot_count,
            max_request_bytes: crate::request::MAX_REQUEST_BYTES,
        };
        Member::start(config, self.cluster.clone(), disk)
    }

    /// The membership (names, IDs, URLs).
    pub fn cluster(&self) -> &ClusterInfo {
        &self.cluster
    }

    /// The configuration this cluster was built with.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Ticks elapsed.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Member IDs, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// `etcd1`, `etcd2`, ... for an ID.
    pub fn name(&self, id: u64) -> String {
        self.cluster
            .member(id)
            .map_or_else(|| format!("#{id}"), |m| m.name.clone())
    }

    /// Looks an ID up by member name (`etcd2`) or number (`2`).
    pub fn id_of(&self, name: &str) -> Option<u64> {
        self.cluster
            .members
            .iter()
            .find(|m| m.name == name || m.id.to_string() == name)
            .map(|m| m.id)
    }

    /// The running member, if it is up.
    pub fn member(&self, id: u64) -> Option<&Member> {
        match self.nodes.get(&id) {
            Some(Node::Up(m)) => Some(m),
            _ => None,
        }
    }

    /// Whether the member is running.
    pub fn is_up(&self, id: u64) -> bool {
        self.member(id).is_some()
    }

    /// Each member's disk: what it persisted (a crashed member's is all that is left).
    pub fn disks(&self) -> BTreeMap<u64, MemDisk> {
        self.nodes
            .iter()
            .map(|(&id, node)| match node {
                Node::Up(m) => (id, m.storage().clone()),
                Node::Down(d) => (id, d.clone()),
            })
            .collect()
    }

    /// The member every live member agrees is leader in the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .filter_map(|n| match n {
                Node::Up(m) => Some(m.status()),
                Node::Down(_) => None,
            })
            .filter(|s| s.role == StateRole::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.id)
    }

    /// The leader, if every running member agrees on it in the same term (no election
    /// under way anywhere). This is "the cluster is settled".
    pub fn stable_leader(&self) -> Option<u64> {
        let leader = self.leader()?;
        let statuses: Vec<MemberStatus> = self
            .nodes
            .values()
            .filter_map(|n| match n {
                Node::Up(m) => Some(m.status()),
                Node::Down(_) => None,
            })
            .collect();
        let term = statuses.iter().find(|s| s.id == leader)?.term;
        statuses
            .iter()
            .all(|s| s.leader == leader && s.term == term)
            .then_some(leader)
    }

    /// Prints raft messages into the transcript as they are sent and delivered.
    pub fn set_trace_messages(&mut self, on: bool) {
        self.trace_messages = on;
    }

    /// Takes the transcript lines written since the last call.
    pub fn take_transcript(&mut self) -> Vec<String> {
        std::mem::take(&mut self.transcript)
    }

    /// Every request recorded so far, by ID (IDs start at 1).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// One recorded request.
    pub fn record(&self, id: u64) -> Option<&Record> {
        id.checked_sub(1).and_then(|i| self.records.get(i as usize))
    }

    /// The safety checks observed so far (leaders per term, applied entries).
    pub fn invariants(&self) -> &Invariants {
        &self.invariants
    }

    // ---- time and network ------------------------------------------------------

    /// One tick on every live member, then each runs its Ready loop. Messages they send
    /// wait in the link queues until delivered.
    pub fn tick(&mut self) {
        self.ticks += 1;
        for node in self.nodes.values_mut() {
            if let Node::Up(m) = node {
                m.tick();
            }
        }
        self.flush();
    }

    /// `n` rounds of: tick, then deliver everything. The "healthy network" mode.
    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick();
            self.deliver_all();
        }
    }

    /// Ticks (delivering everything after each) until `done` holds or `max_ticks`
    /// passed. Returns whether it held.
    pub fn run_until(&mut self, max_ticks: u64, mut done: impl FnMut(&SimCluster) -> bool) -> bool {
        for _ in 0..max_ticks {
            if done(self) {
                return true;
            }
            self.tick();
            self.deliver_all();
        }
        done(self)
    }

    /// Runs every live member's Ready loop (in ID order).
    pub fn flush(&mut self) {
        for id in self.ids() {
            self.ready(id);
        }
    }

    fn ready(&mut self, id: u64) {
        let Some(Node::Up(m)) = self.nodes.get_mut(&id) else {
            return;
        };
        let ready = m.ready();
        let status = m.status();
        // The store only changes when entries are applied; fingerprint it only then.
        let digest = (!ready.applied.is_empty()).then(|| m.store().digest());
        self.absorb(id, ready, status, digest);
    }

    /// Hands the first message queued on link `from → to` to `to`, which then runs its
    /// Ready loop. A message on a cut link, or to a member that is down, is lost.
    /// Returns false if the link was empty.
    pub fn deliver(&mut self, from: u64, to: u64) -> bool {
        let Some(message) = self
            .links
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return false;
        };
        if self.cut.contains(&(from, to)) || !self.is_up(to) {
            if self.trace_messages {
                let line = format!("  lost {}", self.describe_message(&message));
                self.transcript.push(line);
            }
            return true;
        }
        if self.trace_messages {
            let line = format!("  deliver {}", self.describe_message(&message));
            self.transcript.push(line);
        }
        if let Some(Node::Up(m)) = self.nodes.get_mut(&to) {
            m.step(message);
        }
        self.ready(to);
        true
    }

    /// Delivers until every queue is empty, one message per link per round (links in
    /// order). Raft is quiet between ticks, so this ends; the cap guards against a bug.
    pub fn deliver_all(&mut self) -> usize {
        self.flush();
        let mut delivered = 0;
        loop {
            let busy = self.busy_links();
            if busy.is_empty() {
                return delivered;
            }
            for (from, to) in busy {
                self.deliver(from, to);
                delivered += 1;
            }
            assert!(delivered < 1_000_000, "the network never went quiet");
        }
    }

    /// Delivers up to `n` messages, each from a link chosen by the seeded RNG: the
    /// reorderings a real network produces across links (never within one).
    pub fn deliver_random(&mut self, n: usize) -> usize {
        self.flush();
        let mut delivered = 0;
        for _ in 0..n {
            let busy = self.busy_links();
            if busy.is_empty() {
                break;
            }
            let (from, to) = busy[self.rng.below(busy.len() as u64) as usize];
            self.deliver(from, to);
            delivered += 1;
        }
        delivered
    }

    /// The links with messages waiting, in order.
    fn busy_links(&self) -> Vec<(u64, u64)> {
        self.links
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(&k, _)| k)
            .collect()
    }

    /// The first message queued on `from → to`, if any (for a test that picks which
    /// message to lose).
    pub fn peek(&self, from: u64, to: u64) -> Option<&Message> {
        self.links.get(&(from, to)).and_then(VecDeque::front)
    }

    /// Loses the first message queued on `from → to`. Returns whether there was one.
    pub fn drop_message(&mut self, from: u64, to: u64) -> bool {
        self.links
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
            .is_some()
    }

    /// Messages waiting in the network.
    pub fn in_flight(&self) -> usize {
        self.links.values().map(VecDeque::len).sum()
    }

    // ---- clients -----------------------------------------------------------------

    /// A client sends `request` to member `id`. Returns the request's ID; the outcome
    /// shows up in [`SimCluster::record`] once the member completes it. The member's
    /// Ready loop does not run yet: a crash right now loses the request unpersisted.
    pub fn request(&mut self, id: u64, request: Request) -> u64 {
        let request_id = self.records.len() as u64 + 1;
        self.clock += 1;
        let line = format!(
            "{} <- {} (req {})",
            self.name(id),
            transcript::request(&request),
            request_id
        );
        self.say(line);
        self.records.push(Record {
            id: request_id,
            member: id,
            request: request.clone(),
            invoked: self.clock,
            invoked_tick: self.ticks,
            outcome: Outcome::Pending,
        });
        let refused = match self.nodes.get_mut(&id) {
            Some(Node::Up(m)) => m.request(request_id, request).err(),
            _ => Some(Error::Stopped),
        };
        if let Some(error) = refused {
            self.complete(id, request_id, Err(error));
        }
        request_id
    }

    /// Opens a watch on member `id`; its events go to the transcript.
    pub fn watch(&mut self, id: u64, create: WatchCreate) -> Result<i64, Error> {
        let watch_id = self.next_watch_id;
        let Some(Node::Up(m)) = self.nodes.get_mut(&id) else {
            return Err(Error::Stopped);
        };
        m.watch(watch_id, create)?;
        self.next_watch_id += 1;
        self.ready(id);
        Ok(watch_id)
    }

    fn complete(&mut self, member: u64, id: u64, result: crate::Result<crate::Response>) {
        self.clock += 1;
        let line = format!(
            "{} -> req {}: {}",
            self.name(member),
            id,
            transcript::result(&result)
        );
        self.say(line);
        if let Some(record) = id
            .checked_sub(1)
            .and_then(|i| self.records.get_mut(i as usize))
        {
            if record.outcome == Outcome::Pending {
                record.outcome = Outcome::Completed {
                    at: self.clock,
                    at_tick: self.ticks,
                    result,
                };
            }
        }
    }

    // ---- what came out of a Ready ------------------------------------------------

    fn absorb(&mut self, id: u64, ready: Ready, status: MemberStatus, digest: Option<u64>) {
        for message in ready.messages {
            let to = message.to;
            if self.trace_messages {
                let line = format!("  send {}", self.describe_message(&message));
                self.transcript.push(line);
            }
            if self.cut.contains(&(id, to)) || !self.nodes.contains_key(&to) {
                continue;
            }
            self.links.entry((id, to)).or_default().push_back(message);
        }
        for applied in &ready.applied {
            self.invariants.on_applied(id, applied);
        }
        for c in ready.completions {
            self.complete(id, c.id, c.result);
        }
        for w in ready.watch_events {
            for event in &w.events {
                let line = format!(
                    "{} watch {}: {}",
                    self.name(id),
                    w.watch_id,
                    transcript::event(event)
                );
                self.say(line);
            }
        }
        for w in &ready.canceled_watches {
            let line = format!(
                "{} watch {w} canceled: the history it needs was compacted",
                self.name(id)
            );
            self.say(line);
        }
        if let Some(index) = ready.installed_snapshot {
            let line = format!(
                "{} installed a snapshot from the leader at index {index}",
                self.name(id)
            );
            self.say(line);
        }
        self.invariants.on_status(&status, digest);
        self.note_role_change(status);
    }

    /// Writes a line when a member's role changes, or when it starts following a new
    /// leader.
    fn note_role_change(&mut self, status: MemberStatus) {
        let id = status.id;
        let Some(before) = self.last_status.insert(id, status.clone()) else {
            return;
        };
        let name = self.name(id);
        let line = match status.role {
            StateRole::Leader if before.role != StateRole::Leader || before.term != status.term => {
                format!("{name} became leader at term {}", status.term)
            }
            StateRole::Candidate if before.role != StateRole::Candidate => {
                format!("{name} campaigns at term {}", status.term)
            }
            StateRole::PreCandidate if before.role != StateRole::PreCandidate => {
                format!("{name} asks for pre-votes (term stays {})", status.term)
            }
            StateRole::Follower if status.leader != 0 && status.leader != before.leader => {
                format!(
                    "{name} follows {} at term {}",
                    self.name(status.leader),
                    status.term
                )
            }
            StateRole::Follower if before.role == StateRole::Leader => {
                format!("{name} steps down at term {}", status.term)
            }
            _ => return,
        };
        self.say(line);
    }

    fn say(&mut self, line: String) {
        self.transcript.push(line);
    }

    fn describe_message(&self, m: &Message) -> String {
        format!(
            "{} -> {} {}",
            self.name(m.from),
            self.name(m.to),
            transcript::message(m)
        )
    }

    /// Checks every safety property over all members, live and crashed: at most one
    /// leader per term, matching logs, the same applied prefix and state everywhere,
    /// revisions that never go back. Returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.invariants.check()?;
        let logs = self
            .disks()
            .into_iter()
            .map(|(id, disk)| (id, (disk.log_entries(), disk.hard_state().commit)))
            .collect();
        invariants::check_logs_match(&logs)
    }

    /// A table of every member's role, term, leader, indexes and revision.
    pub fn status_table(&self) -> String {
        let rows: Vec<(String, Option<MemberStatus>)> = self
            .nodes
            .iter()
            .map(|(&id, node)| {
                let status = match node {
                    Node::Up(m) => Some(m.status()),
                    Node::Down(_) => None,
                };
                (self.name(id), status)
            })
            .collect();
        transcript::status_table(&rows, |id| self.name(id))
    }
}

#[cfg(test)]
mod tests;
