//! Raft messages between members: length-prefixed protobuf over TCP.
//!
//! Each member listens on its peer URL (port 2380 by convention). For every other
//! member it keeps one outbound connection fed by a queue; a frame is a 4-byte
//! big-endian length followed by a raft-rs `Message` in protobuf. Raft does not need a
//! reliable network — it retransmits what matters — so the transport is allowed to be
//! simple: when a peer is down or its queue is full, messages are dropped, and the
//! connection is retried.
//!
//! Outbound connections are made through the [`Network`] seam, and listening sockets
//! are handed in by the caller (`server::start_on`), so the same code can later run
//! over an in-memory network (the simulator) instead of real TCP.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::driver::Handle;

/// A byte stream in either direction.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A boxed future, as the seam's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where sockets come from: real TCP, or (in the simulator) something else.
pub trait Network: Send + Sync + 'static {
    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Stream>>>;
}

/// The real network.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

impl Network for Tcp {
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
    }
}

/// `http://10.0.0.11:2380` → `10.0.0.11:2380`.
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
}

/// The largest frame a peer may send (a batch of big entries).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Outbound queues, one per peer, and the channel on which sender tasks report peers
/// they could not reach.
#[derive(Default)]
pub struct Outbound {
    peers: HashMap<u64, mpsc::Sender<Message>>,
    unreachable: Option<mpsc::UnboundedReceiver<u64>>,
}

impl Outbound {
    /// Starts one sender task per peer (`id → host:port`) on the current runtime.
    pub fn start(network: std::sync::Arc<dyn Network>, peers: HashMap<u64, String>) -> Self {
        let mut queues = HashMap::new();
        let (report, unreachable) = mpsc::unbounded_channel();
        for (id, addr) in peers {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(send_loop(network.clone(), id, addr, rx, report.clone()));
            queues.insert(id, tx);
        }
        Outbound {
            peers: queues,
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

    /// Queues messages for their peers; drops what cannot be queued.
    pub fn send(&self, messages: Vec<Message>) {
        for message in messages {
            if let Some(queue) = self.peers.get(&message.to) {
                let _ = queue.try_send(message);
            }
        }
    }
}

async fn send_loop(
    network: std::sync::Arc<dyn Network>,
    peer: u64,
    addr: String,
    mut queue: mpsc::Receiver<Message>,
    unreachable: mpsc::UnboundedSender<u64>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = match network.connect(addr.clone()).await {
            Ok(stream) => {
                backoff = Duration::from_millis(10);
                stream
            }
            Err(_) => {
                // Drop what piled up while the peer was unreachable: Raft will resend.
                let mut dropped = false;
                while queue.try_recv().is_ok() {
                    dropped = true;
                }
                if dropped && unreachable.send(peer).is_err() {
                    return; // the member stopped
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        // The peer never writes on this connection, so anything readable — its end of
        // the stream, above all — means the connection is over. Without this watch a
        // follower's idle connection to another follower would stay dead after that
        // peer restarted, and the first message on it (a vote request, in an
        // election) would be lost.
        let (mut closed, mut writer) = tokio::io::split(stream);
        let mut probe = [0u8; 1];
        let mut frames = Vec::new();
        loop {
            let message = tokio::select! {
                message = queue.recv() => message,
                _ = closed.read(&mut probe) => {
                    let _ = unreachable.send(peer);
                    break; // reconnect
                }
            };
            let Some(message) = message else {
                return; // the member stopped
            };
            // Everything already queued goes out in one write: one system call, and
            // one wake-up of the peer, for a whole Ready's worth of messages.
            frames.clear();
            let queued = std::iter::from_fn(|| queue.try_recv().ok()).take(255);
            for message in std::iter::once(message).chain(queued) {
                let Ok(bytes) = message.write_to_bytes() else {
                    continue;
                };
                frames.extend((bytes.len() as u32).to_be_bytes());
                frames.extend(bytes);
            }
            if writer.write_all(&frames).await.is_err() {
                let _ = unreachable.send(peer);
                break; // reconnect
            }
        }
    }
}

/// Accepts peer connections on `listener` and hands every message to the member.
pub async fn serve_peers(listener: TcpListener, member: Handle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(receive_loop(stream, member.clone()));
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

    /// A peer that restarts closes our connection; the next message must not be
    /// written into the dead one and lost (it may be the only vote request of an
    /// election).
    #[tokio::test]
    async fn a_connection_the_peer_closed_is_replaced_before_the_next_message() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let outbound = Outbound::start(std::sync::Arc::new(Tcp), HashMap::from([(2, addr)]));
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
        let mut len = [0u8; 4];
        second.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        second.read_exact(&mut body).await.unwrap();
        let mut got = Message::default();
        got.merge_from_bytes(&body).unwrap();
        assert_eq!(got, vote);
    }

    #[test]
    fn urls_become_socket_addresses() {
        assert_eq!(host_port("http://10.0.0.11:2380"), "10.0.0.11:2380");
        assert_eq!(host_port("https://127.0.0.1:2379/"), "127.0.0.1:2379");
        assert_eq!(host_port("127.0.0.1:2380"), "127.0.0.1:2380");
    }
}
