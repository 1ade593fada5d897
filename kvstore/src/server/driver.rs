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

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::transport::Outbound;
use crate::error::{Error, Result};
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

/// Starts the driver thread for `member`, ticking every `tick`, on `runtime` (a
/// current-thread runtime that already holds the member's sockets and their tasks:
/// they all run on this one thread). Returns the thread; it ends when `stop` fires
/// (`Server::stop`, or the server dropped): the member and its storage are dropped,
/// as in a clean shutdown, then the runtime with every connection in it.
pub fn spawn<S: Storage + Send + 'static>(
    runtime: tokio::runtime::Runtime,
    inbox: Inbox,
    member: Member<S>,
    tick: Duration,
    outbound: Outbound,
    stop: oneshot::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    let name = format!("member-{:x}", member.id());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    () = run(member, tick, inbox.0, outbound) => {}
                    _ = stop => {}
                }
            });
            drop(runtime);
        })
        .expect("a thread for the member")
}

/// Request IDs must never repeat, not even across restarts (an old entry replayed at
/// start-up must not complete a new request). Like etcd, mix the member ID and the
/// start time into the high bits and count in the low ones.
fn first_request_id(member_id: u64) -> u64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ((member_id & 0xffff) << 48) | ((millis & 0xff_ffff_ffff) << 8)
}

async fn run<S: Storage>(
    mut member: Member<S>,
    tick: Duration,
    mut inbox: mpsc::Receiver<Event>,
    mut outbound: Outbound,
) {
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_id = first_request_id(member.id());
    let mut next_watch = 1;
    let mut waiting: HashMap<u64, oneshot::Sender<Result<Response>>> = HashMap::new();
    let mut watches: HashMap<i64, mpsc::UnboundedSender<WatchDelivery>> = HashMap::new();
    let mut seen = (member.status().role, 0);
    loop {
        let first = tokio::select! {
            _ = ticker.tick() => {
                member.tick();
                None
            }
            event = inbox.recv() => match event {
                Some(event) => Some(event),
                None => return, // every handle is gone: shut down
            },
        };
        // Take everything already queued: one Ready (and one fsync) for the lot.
        let queued = std::iter::from_fn(|| inbox.try_recv().ok()).take(1024);
        for event in first.into_iter().chain(queued.collect::<Vec<_>>()) {
            match event {
                Event::Request { request, reply } => {
                    let id = next_id;
                    next_id += 1;
                    match member.request(id, request) {
                        Ok(()) => {
                            waiting.insert(id, reply);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                Event::Peer(message) => member.step(message),
                Event::PeerLost(peer) => {
                    tracing::info!(peer = %format!("{peer:x}"), "lost the connection from a peer");
                    member.peer_lost(peer);
                }
                Event::Watch {
                    create,
                    sink,
                    reply,
                } => {
                    let id = next_watch;
                    next_watch += 1;
                    let result = member.watch(id, create).map(|()| id);
                    if result.is_ok() {
                        watches.insert(id, sink);
                    }
                    let _ = reply.send(result);
                }
                Event::CancelWatch(id) => {
                    member.cancel_watch(id);
                    watches.remove(&id);
                }
                Event::Snapshot(reply) => {
                    let _ = reply.send(crate::snapshot::encode(member.store()));
                }
                Event::HashKv { revision, reply } => {
                    // A local read of the applied store, not linearized: as etcd.
                    let hashed = member.store().hash_kv(revision);
                    let _ = reply.send(hashed.map(|h| (h, member.header())));
                }
                Event::Status(reply) => {
                    let _ = reply.send(StatusReport {
                        status: member.status(),
                        header: member.header(),
                        db_size: member.storage().size_on_disk(),
                        members: member.cluster().members.clone(),
                    });
                }
            }
        }
        // Role and leader changes, as etcd's raft logs them.
        let status = member.status();
        if (status.role, status.leader) != seen {
            seen = (status.role, status.leader);
            tracing::info!(
                role = ?status.role,
                term = status.term,
                leader = %format!("{:x}", status.leader),
                "raft state changed"
            );
        }
        for peer in outbound.unreachable() {
            member.report_unreachable(peer);
        }
        let ready = member.ready_sending(|messages| outbound.send(messages));
        outbound.send(ready.messages);
        if let Some(index) = ready.installed_snapshot {
            // As etcd logs "applied snapshot": the one sign that a follower caught up
            // by snapshot rather than from the log (scripts/torture counts these).
            tracing::info!(index, "installed a snapshot from the leader");
        }
        for id in &ready.canceled_watches {
            watches.remove(id); // closing the sink ends the client's watch
        }
        for done in ready.completions {
            if let Some(reply) = waiting.remove(&done.id) {
                let _ = reply.send(done.result); // the client may have gone away
            }
        }
        if !ready.watch_events.is_empty() {
            let header = member.header();
            for batch in ready.watch_events {
                let delivered = watches.get(&batch.watch_id).map(|sink| {
                    sink.send(WatchDelivery {
                        header,
                        events: batch.events,
                    })
                });
                if let Some(Err(_)) = delivered {
                    // The stream is gone: stop watching for it.
                    member.cancel_watch(batch.watch_id);
                    watches.remove(&batch.watch_id);
                }
            }
        }
    }
}
