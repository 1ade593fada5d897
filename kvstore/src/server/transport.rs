//! Raft messages between members: length-prefixed protobuf over the peer port.
//!
//! Each member listens on its peer URL (port 2380 by convention). For every other
//! member it keeps one outbound connection; a frame is a 4-byte big-endian length
//! followed by a raft-rs `Message` in protobuf. Raft does not need a reliable network
//! — it retransmits what matters — so the transport is allowed to be simple: when a
//! peer is down or too far behind in reading, messages are dropped, and the
//! connection is retried.
//!
//! Sending is done by the driver itself, in the middle of its Ready loop: all the
//! frames for a peer are written to the socket in one non-blocking system call
//! ([`Outbound::send`]). Only what the socket cannot take at once, or what is sent
//! while the connection is still being made, is left in the peer's backlog for its
//! connection task to write when it can. Nothing waits for another thread.
//!
//! Both ends go through the member's [`Network`](seams::net::Network): the peer
//! listener is one of its listeners ([`serve_peers`]), and every outbound connection is
//! dialed with it, so the same code runs over real TCP and over the simulator's network.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use seams::clock::SharedClock;
use seams::net::{BoxStream, Listener, SharedNetwork, Stream};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, Notify};

use super::driver::Handle;

/// The largest frame a peer may send (a batch of big entries).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Frames waiting for a peer may not grow past this (a bigger single message, such as
/// a snapshot, is still taken when nothing else waits).
const MAX_BACKLOG: usize = MAX_FRAME;

/// One peer's outbound connection. The driver writes to it directly, on its own
/// thread, the moment it has messages; the peer's connection task connects, notices a
/// closed connection, and writes whatever the socket could not take at once.
#[derive(Default)]
struct Link {
    /// The connection's write half; `None` while (re)connecting.
    writer: Option<tokio::io::WriteHalf<BoxStream>>,
    /// Frames not written yet: the socket was full, or is not connected yet.
    backlog: Vec<u8>,
}

impl Link {
    /// Writes the backlog until it is empty or the socket is full (`Pending`).
    fn poll_write_backlog(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.backlog.is_empty() {
            let Some(writer) = self.writer.as_mut() else {
                return Poll::Ready(Ok(())); // connecting: the task writes it later
            };
            match Pin::new(writer).poll_write(cx, &self.backlog) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.backlog.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn lock(link: &Mutex<Link>) -> MutexGuard<'_, Link> {
    link.lock().expect("no thread panicked holding a peer link")
}

/// The outbound side of the transport: one link per peer, and the channel on which
/// connection tasks report peers they could not reach.
#[derive(Default)]
pub struct Outbound {
    peers: BTreeMap<u64, (Arc<Mutex<Link>>, Arc<Notify>)>,
    unreachable: Option<mpsc::UnboundedReceiver<u64>>,
}

impl Outbound {
    /// Starts one connection task per peer (`id → host:port`) on the current runtime,
    /// dialing through `network` and waiting out its backoff on `clock`.
    pub fn start(network: SharedNetwork, clock: SharedClock, peers: BTreeMap<u64, String>) -> Self {
        let mut links = BTreeMap::new();
        let (report, unreachable) = mpsc::unbounded_channel();
        for (id, addr) in peers {
            let link = Arc::new(Mutex::new(Link::default()));
            let wake = Arc::new(Notify::new());
            tokio::spawn(connection_loop(
                (network.clone(), clock.clone()),
                (id, addr),
                link.clone(),
                wake.clone(),
                report.clone(),
            ));
            links.insert(id, (link, wake));
        }
        Outbound {
            peers: links,
            unreachable: Some(unreachable),
        }
    }

    /// Peers a sender could not reach since the last call. Raft must hear of them: a
    /// leader otherwise assumes what it sent arrived and waits for answers that never
    /// come (etcd's transport reports them the same way).
    pub fn unreachable(&mut self) -> Vec<u64> {
        let Some(rx) = self.unreachable.as_mut() else {
            return Vec::new();
        };
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// Writes messages to their peers now, one system call per peer for the lot,
    /// without waiting: what the socket cannot take at once (or a connection not up
    /// yet) is left to the peer's task. Drops what does not fit in the backlog.
    pub fn send(&self, messages: Vec<Message>) {
        let mut touched = Vec::new();
        for message in messages {
            let Some((link, _)) = self.peers.get(&message.to) else {
                continue;
            };
            let Ok(bytes) = message.write_to_bytes() else {
                continue;
            };
            let mut link = lock(link);
            if !link.backlog.is_empty() && link.backlog.len() + bytes.len() > MAX_BACKLOG {
                continue; // Raft resends what matters
            }
            link.backlog.extend((bytes.len() as u32).to_be_bytes());
            link.backlog.extend(bytes);
            if !touched.contains(&message.to) {
                touched.push(message.to);
            }
        }
        // Not inside a task: nothing to wake when the socket is full, so the peer's
        // task is told to finish the job.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for peer in touched {
            let (link, wake) = &self.peers[&peer];
            let mut link = lock(link);
            let done = link.poll_write_backlog(&mut cx);
            if !matches!(done, Poll::Ready(Ok(()))) || !link.backlog.is_empty() {
                wake.notify_one();
            }
        }
    }
}

/// The task that keeps one peer's connection: connects (with backoff), hands the write
/// half to the [`Link`], writes the backlog whenever told, and starts over when the
/// connection fails or the peer closes it.
async fn connection_loop(
    (network, clock): (SharedNetwork, SharedClock),
    (peer, addr): (u64, String),
    link: Arc<Mutex<Link>>,
    wake: Arc<Notify>,
    unreachable: mpsc::UnboundedSender<u64>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match network.connect(&addr).await {
            Ok(stream) => {
                backoff = Duration::from_millis(10);
                stream
            }
            Err(_) => {
                // Drop what piled up while the peer was unreachable: Raft resends.
                let dropped = !std::mem::take(&mut lock(&link).backlog).is_empty();
                if dropped && unreachable.send(peer).is_err() {
                    return; // the member stopped
                }
                clock.sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        // The peer never writes on this connection, so anything readable — its end of
        // the stream, above all — means the connection is over. Without this watch a
        // follower's idle connection to another follower would stay dead after that
        // peer restarted, and the first message on it (a vote request, in an
        // election) would be lost.
        let (mut closed, writer) = tokio::io::split(stream);
        lock(&link).writer = Some(writer);
        wake.notify_one(); // what was sent while connecting goes now
        let mut probe = [0u8; 1];
        loop {
            let written = tokio::select! {
                biased;
                () = wake.notified() => {
                    std::future::poll_fn(|cx| lock(&link).poll_write_backlog(cx)).await
                }
                _ = closed.read(&mut probe) => Err(io::ErrorKind::ConnectionReset.into()),
            };
            if written.is_err() {
                break;
            }
        }
        let mut link = lock(&link);
        link.writer = None;
        link.backlog.clear();
        drop(link);
        if unreachable.send(peer).is_err() {
            return; // the member stopped
        }
    }
}

/// Accepts peer connections on `listener` and hands every message to the member.
pub async fn serve_peers(mut listener: Box<dyn Listener>, member: Handle) {
    loop {
        let Ok(accepted) = listener.accept().await else {
            continue;
        };
        tokio::spawn(receive_loop(accepted.stream, member.clone()));
    }
}

/// Reads frames from one peer connection until it closes or sends garbage, then tells
/// the member which peer it lost (see [`crate::Member::peer_lost`]).
pub async fn receive_loop(stream: impl Stream, member: Handle) {
    let mut from = None;
    read_frames(stream, &member, &mut from).await;
    if let Some(peer) = from {
        member.peer_lost(peer).await;
    }
}

async fn read_frames(stream: impl Stream, member: &Handle, from: &mut Option<u64>) {
    // Buffered: a write of many frames is read with one system call, not two per frame.
    let mut stream = tokio::io::BufReader::with_capacity(64 * 1024, stream);
    let mut len = [0u8; 4];
    loop {
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME {
            return; // not one of ours
        }
        let mut buf = vec![0u8; n];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let mut message = Message::default();
        if message.merge_from_bytes(&buf).is_err() {
            return;
        }
        *from = Some(message.from);
        if member.step(message).await.is_err() {
            return; // the member stopped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seams::{SystemClock, Tcp};
    use tokio::net::{TcpListener, TcpStream};

    /// A peer that restarts closes our connection; the next message must not be
    /// written into the dead one and lost (it may be the only vote request of an
    /// election).
    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced_before_the_next_message() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let outbound = Outbound::start(
            Tcp::shared(),
            SystemClock::shared(),
            BTreeMap::from([(2, addr)]),
        );
        let deadline = Duration::from_secs(10);
        let (first, _) = tokio::time::timeout(deadline, listener.accept())
            .await
            .expect("the sender connects at once")
            .unwrap();
        drop(first); // the peer's process ends
        let (mut second, _) = tokio::time::timeout(deadline, listener.accept())
            .await
            .expect("the sender reconnects without waiting for a message to fail")
            .unwrap();
        let mut vote = Message::default();
        vote.set_msg_type(raft::eraftpb::MessageType::MsgRequestPreVote);
        vote.to = 2;
        vote.from = 1;
        vote.term = 7;
        outbound.send(vec![vote.clone()]);
        assert_eq!(read_messages(&mut second, 1).await, [vote]);
    }

    /// Reads `n` frames from `stream`.
    async fn read_messages(stream: &mut TcpStream, n: usize) -> Vec<Message> {
        let mut got = Vec::new();
        for _ in 0..n {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).await.unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut body).await.unwrap();
            let mut message = Message::default();
            message.merge_from_bytes(&body).unwrap();
            got.push(message);
        }
        got
    }

    /// Messages sent before the connection is up, and more than the socket can take
    /// at once, all arrive, in order: the connection task writes the backlog.
    #[tokio::test]
    async fn what_the_socket_cannot_take_at_once_follows_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let outbound = Outbound::start(
            Tcp::shared(),
            SystemClock::shared(),
            BTreeMap::from([(2, addr)]),
        );
        let append = |index: u64| {
            let mut m = Message::default();
            m.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
            m.to = 2;
            m.index = index;
            m.context = vec![7; 16 * 1024].into(); // 16 KiB each
            m
        };
        let deadline = Duration::from_secs(30);
        // Sent before the task has even connected.
        outbound.send((0..10).map(append).collect());
        let (mut peer, _) = tokio::time::timeout(deadline, listener.accept())
            .await
            .expect("the sender connects")
            .unwrap();
        let first = tokio::time::timeout(deadline, read_messages(&mut peer, 10))
            .await
            .expect("what was sent while connecting arrives");
        assert!(first.iter().map(|m| m.index).eq(0..10));
        // Now 32 MiB while the peer reads nothing: far more than the socket buffers
        // hold, so most of it is left to the (idle) connection task.
        for batch in 0..64 {
            outbound.send((0..32).map(|i| append(10 + batch * 32 + i)).collect());
        }
        let rest = tokio::time::timeout(deadline, read_messages(&mut peer, 64 * 32))
            .await
            .expect("every message arrives");
        assert!(rest.iter().map(|m| m.index).eq(10..10 + 64 * 32));
    }
}
