//! The driver: the one thread that owns a [`Member`] and turns real time and real
//! messages into calls on it.
//!
//! Everything that wants something from the member — a gRPC handler, the peer
//! transport — sends an [`Event`] down one channel. The driver loop waits for either
//! the next tick of its timer or the next event, takes every event that is already
//! queued as well (batching: many requests, one Ready, one fsync), then runs the Ready
//! loop and distributes what came out: messages to the transport, responses to the
//! waiting handlers, watch events to the watch streams.
//!
//! ## One thread per member
//!
//! The driver runs on a thread of its own with a single-threaded tokio runtime, and
//! everything else of the member runs on that same runtime: the gRPC server and its
//! connections, the peer listener, the peer connection tasks. So a client request
//! goes from its socket to the member, and a Raft message from the member to its
//! socket ([`Outbound::send`] writes it there and then), without handing anything to
//! another thread. Each such hand-off is a wake-up of a sleeping thread, and on two
//! cores shared by three members and their clients the wake-ups were where the time
//! went (issue 7, measured with `etcd-bench`: moving the sockets from a second thread
//! onto this one gave 16 % more puts with one client, 17 % with 16, 11 % with 64).
//!
//! The price: the Ready loop's `fdatasync` blocks the thread, so while it waits for
//! the disk this member reads no socket. Requests that arrive meanwhile wait in the
//! kernel and are taken together in the next round: one Ready and one fsync for all
//! of them. A leader's appends are written to the sockets *before* its fsync
//! ([`Member::ready_sending`]), so its followers' disks work while its own does.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use seams::clock::SharedClock;
use tokio::sync::{mpsc, oneshot, watch};

use super::transport::Outbound;
use crate::error::{panic_reason, Error, Result};
use crate::member::{Member, MemberStatus};
use crate::mvcc::hash::HashKv;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::mvccpb;
use crate::request::{Request, Response};
use crate::storage::Storage;
use crate::watch::WatchCreate;

/// A batch of watch events with the header they are sent under.
#[derive(Debug, Clone)]
pub struct WatchDelivery {
    /// Cluster, member, revision and term at delivery.
    pub header: ResponseHeader,
    /// The events, oldest first.
    pub events: Vec<mvccpb::Event>,
}

/// What the member reports about itself (for `endpoint status`).
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// Role, term, leader, indexes, revision.
    pub status: MemberStatus,
    /// A response header as of now.
    pub header: ResponseHeader,
    /// Bytes on disk.
    pub db_size: u64,
    /// The members as this one knows them (names, announced client URLs).
    pub members: Vec<crate::membership::MemberInfo>,
}

/// Something for the member to do.
pub enum Event {
    /// A client request; the answer goes back on `reply`.
    Request {
        /// What is asked.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Response>>,
    },
    /// A Raft message from a peer.
    Peer(raft::eraftpb::Message),
    /// The connection from a peer closed.
    PeerLost(u64),
    /// Open a watch; its events go to `sink` until it is cancelled or `sink` closes.
    Watch {
        /// What to watch.
        create: WatchCreate,
        /// Where events go.
        sink: mpsc::UnboundedSender<WatchDelivery>,
        /// The member's watch ID, or why the watch was refused.
        reply: oneshot::Sender<Result<i64>>,
    },
    /// Close a watch.
    CancelWatch(i64),
    /// Report status.
    Status(oneshot::Sender<StatusReport>),
    /// Serialise the applied store as a snapshot file.
    Snapshot(oneshot::Sender<Vec<u8>>),
    /// Hash the applied history up to a revision (0: now), for `endpoint hashkv`.
    HashKv {
        /// The revision to hash up to.
        revision: i64,
        /// The hash and a header as of now, or why not.
        reply: oneshot::Sender<Result<(HashKv, ResponseHeader)>>,
    },
}

/// A cheap, cloneable way to talk to a running member.
#[derive(Clone)]
pub struct Handle {
    events: mpsc::Sender<Event>,
}

impl Handle {
    /// Sends a request and waits for its answer (the member enforces the deadline).
    pub async fn request(&self, request: Request) -> Result<Response> {
        let (reply, answer) = oneshot::channel();
        self.send(Event::Request { request, reply }).await?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Opens a watch; returns the member's watch ID.
    pub async fn watch(
        &self,
        create: WatchCreate,
        sink: mpsc::UnboundedSender<WatchDelivery>,
    ) -> Result<i64> {
        let (reply, answer) = oneshot::channel();
        self.send(Event::Watch {
            create,
            sink,
            reply,
        })
        .await?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Closes a watch.
    pub async fn cancel_watch(&self, id: i64) {
        let _ = self.events.send(Event::CancelWatch(id)).await;
    }

    /// The member's status.
    pub async fn status(&self) -> Result<StatusReport> {
        let (reply, answer) = oneshot::channel();
        self.send(Event::Status(reply)).await?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// The member's store as a snapshot file (see [`crate::snapshot`]).
    pub async fn snapshot(&self) -> Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.send(Event::Snapshot(reply)).await?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// The member's history hash up to `revision` (see [`crate::mvcc::hash`]).
    pub async fn hash_kv(&self, revision: i64) -> Result<(HashKv, ResponseHeader)> {
        let (reply, answer) = oneshot::channel();
        self.send(Event::HashKv { revision, reply }).await?;
        answer.await.map_err(|_| Error::Stopped)?
    }

    /// Hands a Raft message from a peer to the member.
    pub async fn step(&self, message: raft::eraftpb::Message) -> Result<()> {
        self.send(Event::Peer(message)).await
    }

    /// Tells the member that the connection from `peer` closed.
    pub async fn peer_lost(&self, peer: u64) {
        let _ = self.events.send(Event::PeerLost(peer)).await;
    }

    async fn send(&self, event: Event) -> Result<()> {
        self.events.send(event).await.map_err(|_| Error::Stopped)
    }
}

/// The events a driver will take, before it runs.
pub struct Inbox(mpsc::Receiver<Event>);

/// A handle and the inbox it sends to.
pub fn channel() -> (Handle, Inbox) {
    let (events, inbox) = mpsc::channel(4096);
    (Handle { events }, Inbox(inbox))
}

/// Why a member ended by itself, and the exit code a process should end with: 2 after a
/// panic (a Go program's exit when it panics: etcd's when its Raft loop or its disk
/// fails), 1 when the member found it must not go on (etcd's fatal log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The process exit code.
    pub code: i32,
    /// One line: what went wrong.
    pub reason: String,
}

/// Starts the driver thread for `member`, ticking every `tick` of `clock`, on `runtime`
/// (a current-thread runtime that already holds the member's sockets and their tasks:
/// they all run on this one thread). Returns the thread; it ends when `stop` fires
/// (`Server::stop`, or the server dropped): the member and its storage are dropped,
/// as in a clean shutdown, then the runtime with every connection in it.
///
/// If the member fails — a panic in its Raft loop, its store or its disk — the thread
/// ends too, with every socket closed, and `exit` says why. A member must not linger
/// as a zombie: a process that is alive but serves nothing is never restarted by
/// anyone, so the `etcd` binary exits when `exit` is set.
pub fn spawn<S: Storage + Send + 'static>(
    runtime: tokio::runtime::Runtime,
    inbox: Inbox,
    member: Member<S>,
    (clock, tick): (SharedClock, Duration),
    outbound: Outbound,
    stop: oneshot::Receiver<()>,
    exit: watch::Sender<Option<Exit>>,
) -> std::thread::JoinHandle<()> {
    let name = format!("member-{:x}", member.id());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let exit_on_panic = exit.clone();
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(async move {
                    tokio::select! {
                        biased;
                        _ = stop => {}
                        () = run(member, (clock, tick), inbox.0, outbound, exit) => {}
                    }
                })
            }));
            drop(runtime); // closes every socket of the member
            if let Err(panic) = ran {
                // A panic outside a round (one inside is caught there, with the member
                // kept from flushing a failed disk).
                let _ = exit_on_panic.send(Some(Exit {
                    code: 2,
                    reason: panic_reason(panic.as_ref()),
                }));
            }
        })
        .expect("a thread for the member")
}

/// [`spawn`], as a task on the runtime that calls it instead of a thread of its own
/// (the simulator runs every member of a cluster on one thread). The member's sockets
/// are the caller's to close; a panic outside a round ends the task, and `exit` says
/// why.
pub fn spawn_task<S: Storage + Send + 'static>(
    inbox: Inbox,
    member: Member<S>,
    (clock, tick): (SharedClock, Duration),
    outbound: Outbound,
    stop: oneshot::Receiver<()>,
    exit: watch::Sender<Option<Exit>>,
) -> tokio::task::JoinHandle<()> {
    let exit_on_panic = exit.clone();
    let member = tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = stop => {}
            () = run(member, (clock, tick), inbox.0, outbound, exit) => {}
        }
    });
    tokio::spawn(async move {
        if let Err(e) = member.await {
            if e.is_panic() {
                let _ = exit_on_panic.send(Some(Exit {
                    code: 2,
                    reason: panic_reason(e.into_panic().as_ref()),
                }));
            }
        }
    })
}

/// Request IDs must never repeat, not even across restarts (an old entry replayed at
/// start-up must not complete a new request). Like etcd, mix the member ID and the
/// start time (`now`, the clock's wall time) into the high bits and count in the low
/// ones.
fn first_request_id(member_id: u64, now: SystemTime) -> u64 {
    let millis = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ((member_id & 0xffff) << 48) | ((millis & 0xff_ffff_ffff) << 8)
}

/// The member and what the driver keeps about its clients, between rounds.
struct Driver<S: Storage> {
    member: Member<S>,
    outbound: Outbound,
    next_id: u64,
    next_watch: i64,
    waiting: BTreeMap<u64, oneshot::Sender<Result<Response>>>,
    watches: BTreeMap<i64, mpsc::UnboundedSender<WatchDelivery>>,
    seen: (raft::StateRole, u64),
}

async fn run<S: Storage>(
    member: Member<S>,
    (clock, tick): (SharedClock, Duration),
    mut inbox: mpsc::Receiver<Event>,
    outbound: Outbound,
    exit: watch::Sender<Option<Exit>>,
) {
    // The clock's interval does not burst: a member that was stopped (a breakpoint, a
    // busy machine) sees one late tick, not every tick it missed, which would run its
    // election timer out at once.
    let mut ticker = clock.clone().interval(tick);
    let mut driver = Driver {
        next_id: first_request_id(member.id(), clock.wall()),
        next_watch: 1,
        waiting: BTreeMap::new(),
        watches: BTreeMap::new(),
        seen: (member.status().role, 0),
        member,
        outbound,
    };
    loop {
        // `biased`: the branches are tried in this order, not at random, so that the
        // same run makes the same choices (the simulator's determinism).
        let first = tokio::select! {
            biased;
            _ = ticker.tick() => None,
            event = inbox.recv() => match event {
                Some(event) => Some(event),
                None => return, // every handle is gone: shut down
            },
        };
        // Take everything already queued: one Ready (and one fsync) for the lot.
        let queued: Vec<Event> = std::iter::from_fn(|| inbox.try_recv().ok())
            .take(1024)
            .collect();
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            driver.round(first, queued);
        }));
        if let Ok(()) = round {
            if let Some(e) = driver.member.failed() {
                // The member found it must not go on (its log was lost): etcd's fatal
                // log line, exit code 1. Its storage is sound and closes as usual.
                let _ = exit.send(Some(Exit {
                    code: 1,
                    reason: e.to_string(),
                }));
                return;
            }
        }
        if let Err(panic) = round {
            let _ = exit.send(Some(Exit {
                code: 2,
                reason: panic_reason(panic.as_ref()),
            }));
            // The member failed half-way through a round: what it holds in memory is
            // not to be trusted, and its disk may be what failed. It is not dropped,
            // because dropping its storage flushes it, and a store whose disk failed
            // can wait for that flush forever. The process ends now (the `etcd` binary
            // exits on `exit`); the restarted member starts from what is on disk.
            std::mem::forget(driver);
            return;
        }
    }
}

impl<S: Storage> Driver<S> {
    /// One round: a tick (no event) or the events that woke the driver, then the Ready
    /// loop, and what came out of it handed to the sockets and the waiting clients.
    fn round(&mut self, first: Option<Event>, queued: Vec<Event>) {
        if first.is_none() {
            self.member.tick();
        }
        for event in first.into_iter().chain(queued) {
            match event {
                Event::Request { request, reply } => {
                    let id = self.next_id;
                    self.next_id += 1;
                    match self.member.request(id, request) {
                        Ok(()) => {
                            self.waiting.insert(id, reply);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Event::Peer(message) => self.member.step(message),
                Event::PeerLost(peer) => {
                    tracing::info!(peer = %format!("{peer:x}"), "lost the connection from a peer");
                    self.member.peer_lost(peer);
                }
                Event::Watch {
                    create,
                    sink,
                    reply,
                } => {
                    let id = self.next_watch;
                    self.next_watch += 1;
                    let result = self.member.watch(id, create).map(|()| id);
                    if result.is_ok() {
                        self.watches.insert(id, sink);
                    }
                    let _ = reply.send(result);
                }
                Event::CancelWatch(id) => {
                    self.member.cancel_watch(id);
                    self.watches.remove(&id);
                }
                Event::Snapshot(reply) => {
                    let _ = reply.send(crate::snapshot::encode(self.member.store()));
                }
                Event::HashKv { revision, reply } => {
                    // A local read of the applied store, not linearized: as etcd.
                    let hashed = self.member.store().hash_kv(revision);
                    let _ = reply.send(hashed.map(|h| (h, self.member.header())));
                }
                Event::Status(reply) => {
                    let _ = reply.send(StatusReport {
                        status: self.member.status(),
                        header: self.member.header(),
                        db_size: self.member.storage().size_on_disk(),
                        members: self.member.cluster().members.clone(),
                    });
                }
            }
        }
        // Role and leader changes, as etcd's raft logs them.
        let status = self.member.status();
        if (status.role, status.leader) != self.seen {
            self.seen = (status.role, status.leader);
            tracing::info!(
                role = ?status.role,
                term = status.term,
                leader = %format!("{:x}", status.leader),
                "raft state changed"
            );
        }
        for peer in self.outbound.unreachable() {
            self.member.report_unreachable(peer);
        }
        let ready = self
            .member
            .ready_sending(|messages| self.outbound.send(messages));
        self.outbound.send(ready.messages);
        if let Some(index) = ready.installed_snapshot {
            // As etcd logs "applied snapshot": the one sign that a follower caught up
            // by snapshot rather than from the log (scripts/torture counts these).
            tracing::info!(index, "installed a snapshot from the leader");
        }
        for id in &ready.canceled_watches {
            self.watches.remove(id); // closing the sink ends the client's watch
        }
        for done in ready.completions {
            if let Some(reply) = self.waiting.remove(&done.id) {
                let _ = reply.send(done.result); // the client may have gone away
            }
        }
        if !ready.watch_events.is_empty() {
            let header = self.member.header();
            for batch in ready.watch_events {
                let delivered = self.watches.get(&batch.watch_id).map(|sink| {
                    sink.send(WatchDelivery {
                        header,
                        events: batch.events,
                    })
                });
                if let Some(Err(_)) = delivered {
                    // The stream is gone: stop watching for it.
                    self.member.cancel_watch(batch.watch_id);
                    self.watches.remove(&batch.watch_id);
                }
            }
        }
    }
}
