//! # kvstore: etcd in miniature
//!
//! Kubernetes keeps every object — every Pod, Node, Deployment — in etcd, and nowhere
//! else. The API server is stateless; kill it and start another, and the cluster is
//! still there. That is why the course assignment can take node2's kube-apiserver and
//! node2's etcd member away and still run a pod: as long as a *majority* of etcd members
//! can talk to each other, etcd keeps accepting writes, and any API server that reaches
//! it keeps working. This crate is that store, small enough to read.
//!
//! ## Raft: one log, replicated
//!
//! etcd does not replicate *data*; it replicates a *log of requests*. Every write
//! (`put /registry/pods/default/alpine ...`) becomes an entry in a log that all members
//! agree on, in the same order, and each member applies the entries one by one to its
//! own copy of the key-value store. Same log, same order, same store.
//!
//! Agreeing on the log is what Raft does (tikv's `raft-rs` here, the library TiKV runs
//! in production; [`member`] drives it):
//!
//! - **Leader election.** Time is counted in *ticks*. A follower that hears nothing from
//!   a leader for an election timeout becomes a candidate, raises the *term* (Raft's
//!   logical clock) and asks for votes. A member votes at most once per term, and only
//!   for a candidate whose log is at least as up to date as its own. A majority of
//!   votes makes a leader. Two majorities always share a member, so two leaders in one
//!   term are impossible.
//! - **Replication.** Clients' writes go to the leader (a follower forwards them). The
//!   leader appends the entry to its log and sends it to the followers; once a
//!   *majority* has written it to disk, it is *committed*: no future leader can lack it.
//!   Then every member applies it.
//! - **Quorum.** "Majority" is the whole story of fault tolerance: 3 members tolerate 1
//!   failure (2 of 3 remain), 5 tolerate 2. Lose the majority and the cluster does not
//!   lose data — it stops: no leader can be elected, nothing commits. Requests then fail
//!   with `etcdserver: request timed out` after their deadline instead of hanging.
//!
//! We switch on two Raft extensions. With **pre-vote**, a member that was cut off first
//! asks "would you vote for me?" without raising its term. Without it, an isolated
//! member keeps raising its term on every election timeout, and when it returns its
//! inflated term forces the healthy leader to step down — an election for nothing, and
//! a write outage while it runs. etcd 3.4 leaves pre-vote off unless `--pre-vote` is
//! given (3.5 turned it on by default). With **check-quorum**, a leader that has not
//! heard from a majority for an election timeout steps down, so a leader stranded in a
//! minority stops claiming to be one and its clients learn so quickly. The golden
//! transcript `isolated_member_rejoins` shows the first at work.
//!
//! ## MVCC: revisions, history, watch
//!
//! The store ([`mvcc`]) is *multi-version*. A single cluster-wide counter, the
//! **revision**, goes up by one with every write. Each key remembers the revision that
//! created it (`create_revision`), last modified it (`mod_revision`) and how many times
//! it was written since it was created (`version`). Old versions are kept, so a client
//! can read the store as it was at revision 5, and a *watch* can start at revision 5 and
//! replay every change since — that is how Kubernetes informers catch up after a broken
//! connection. `resourceVersion` in every Kubernetes object is exactly this revision.
//! History is dropped by **compaction**; reading a compacted revision is an error.
//! Keys can hang on a **lease**, a time limit the leader enforces: when nobody keeps
//! the lease alive, it is revoked and its keys are deleted (`mvcc/lease.rs`,
//! `member/lessor.rs`).
//!
//! ## Reads: linearizable or serializable
//!
//! A write is acknowledged once committed. A *read* never enters the log — but serving
//! it from "my local copy" is not enough: a member cut off from the others (or an old
//! leader that does not know it was replaced) would answer with stale data, and a
//! client could read a value older than one it already saw written. A **linearizable**
//! read (the default) asks the leader for a *read index*: the leader records its
//! commit index, confirms with a round of heartbeats to a majority that it is still the
//! leader, and answers; the member serves the read once it has applied up to that
//! index. In a minority partition no majority answers, so the read fails by its
//! deadline instead of lying. A **serializable** read (`--consistency=s`) skips all
//! that: it is served from the member's local state, fast and available even without a
//! leader, possibly stale.
//!
//! ## Persistence
//!
//! A member writes its Raft log and hard state to disk *before* it sends any message
//! that depends on them, and writes its key-value store together with the index of the
//! last entry applied to it, so a restart replays exactly the entries the store lacks.
//! [`storage`] explains the contract; [`storage::MemDisk`] keeps it in memory for the
//! simulator, [`storage::sled::SledStorage`] on disk for a real member: like etcd, the
//! log in a write-ahead log ([`storage::wal`], one `fdatasync` per Ready) and the
//! store in a database (sled, where etcd has bbolt), written in batches every 20 ms.
//!
//! ## How this crate is built
//!
//! The core is deterministic: no clock, no thread, no socket, no unseeded randomness
//! (raft-rs's randomised election timeouts are drawn again from the member's own seeded
//! generator, `member/elections.rs`).
//! A [`Member`] moves only when told to (`tick`, `step`, `request`, `ready`), which
//! makes it possible to test Raft's hardest cases — crashes, partitions, lost messages
//! — exactly and repeatably with [`sim::SimCluster`], and to check every recorded
//! history with the [`linearizability`] checker.
//!
//! Around it, thin edges make it a real etcd member ([`server`]): one thread that ticks
//! it on a timer, runs its Ready loop and serves its sockets — Raft messages between
//! peers, and etcd's v3 gRPC API, so the real `etcdctl` works against it
//! (`src/bin/etcd.rs` has etcd's flags). The edges touch the world only through the
//! three seams of the `seams` crate, given in the server's config: every socket comes
//! from its `Network` (real TCP, or the simulator's in-memory one), every time from
//! its `Clock`, every random number from its `Rng`. In the simulator the same member
//! runs as tasks of the one thread the whole cluster shares
//! (`server::MemberRuntime::Shared`), so a seed replays it exactly.
//! [`client`] is the other side: a client with failover, as kube-apiserver's
//! `--etcd-servers`. [`snapshot`] is the backup file of a store, which a data
//! directory is restored from; [`tools`] is etcdctl's side (its tables, its `snapshot
//! restore` flags), for our command-line tools, not for a member.
//!
//! ## What a member refuses, and when it stops
//!
//! Every member applies every entry, so one bad entry would stop the whole cluster:
//! a request is checked completely before it is proposed, with etcd's rules and errors
//! ([`request::validate`]; nested transactions are decoded to etcd's depth by
//! [`request::nested`], on the wire through [`codec`]), and applying an entry that
//! still cannot be read is an error for its client, never a panic. A member whose disk
//! fails, or who finds its log was lost, ends its process with a reason (etcd's exit
//! codes, `server/driver.rs`) rather than lingering; a damaged write-ahead log is
//! refused, only a torn tail repaired ([`storage::wal`]). `docs/RELIABILITY.md` has
//! each case and `scripts/torture` the harness that checks them.
//!
//! ## Read next
//!
//! 1. [`member`] — the Ready loop: persist, send, apply; requests and deadlines.
//! 2. [`mvcc`] — revisions, ranges, transactions, compaction, history.
//! 3. [`sim`] — the simulated cluster, and `tests/golden/*` for transcripts of each
//!    claim above.
//! 4. [`linearizability`] — how a history is checked.
//! 5. [`storage`] — what survives a crash, in memory and on disk (WAL + sled).
//! 6. [`server`] — the member as a process: driver, transport, gRPC; then [`client`]
//!    and [`snapshot`].
//!
//! ## Left out (for now)
//!
//! Auth, TLS and membership changes (`member add/remove`). Raft log compaction is in
//! (`member/snapshots.rs`): every `snapshot_count` entries a member drops old log
//! entries, and a member that fell behind catches up from a snapshot of the leader's
//! store, built when it is needed.

#![warn(missing_docs)]

pub mod client;
pub mod codec;
pub mod error;
pub mod flags;
pub mod linearizability;
pub mod member;
pub mod membership;
pub mod mvcc;
pub mod proto;
pub mod request;
pub mod server;
pub mod sim;
pub mod snapshot;
pub mod storage;
pub mod tools;
pub mod watch;

pub use error::{Error, Result};
pub use member::{Completion, Member, MemberConfig, MemberStatus, Ready};
pub use membership::{ClusterInfo, MemberInfo};
pub use mvcc::MvccStore;
pub use request::{Request, Response};
pub use storage::{MemDisk, Storage};
pub use watch::{WatchCreate, WatchEvents};
