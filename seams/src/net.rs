//! One network for every socket.
//!
//! A component never opens a socket itself. It is handed a [`Network`] and asks it to
//! *listen on* or *connect to* an address written as in its flags (`10.0.0.11:2380`,
//! `127.0.0.1:6443`). What comes back is a byte stream — tokio's `AsyncRead +
//! AsyncWrite` — so the protocols above it are the real ones: the apiserver serves
//! HTTP/1.1 and TLS with hyper and rustls on it, etcd serves gRPC with tonic on it, and
//! Raft messages are framed on it by `kvstore::server::transport`.
//!
//! [`Tcp`] is the real network: it binds and dials exactly the address given, and
//! turns Nagle's algorithm off on every connection (as Go does by default), because
//! small requests and Raft heartbeats must not wait 40 ms for a delayed ACK. The
//! simulator's network (`sim::network`) maps node addresses to loopback ports behind
//! the same trait.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream in both directions: one connection.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A connection as the network hands it out.
pub type BoxStream = Box<dyn Stream>;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An accepted connection and who it came from (`host:port`).
pub struct Accepted {
    pub stream: BoxStream,
    pub peer: String,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .finish()
    }
}

/// A listening socket.
pub trait Listener: Send + 'static {
    /// The next connection. An error (out of file descriptors, say) is for this
    /// accept only; the listener still works.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;
    /// The address the listener answers to (with the port the system chose, if it was
    /// asked for port 0).
    fn local_addr(&self) -> String;
}

/// Where every listener and connection comes from.
pub trait Network: Send + Sync + 'static {
    /// Listens on `addr` (`host:port`). Needs no runtime; the first accept does.
    fn listen(&self, addr: &str) -> io::Result<Box<dyn Listener>>;
    /// Connects to `addr` (`host:port`).
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>>;
}

/// The network as components hold it.
pub type SharedNetwork = Arc<dyn Network>;

impl fmt::Debug for dyn Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Network")
    }
}

/// `https://10.0.0.11:6443/api` → `10.0.0.11:6443`: the address part of a URL (a bare
/// `host:port` is returned as it is).
pub fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find('/').unwrap_or(rest.len());
    &rest[..end]
}

/// The machine's TCP/IP.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

impl Tcp {
    /// The real network, shared.
    pub fn shared() -> SharedNetwork {
        Arc::new(Tcp)
    }
}

impl Network for Tcp {
    fn listen(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Box::new(TcpListener {
            local: listener.local_addr()?.to_string(),
            std: Some(listener),
            tokio: None,
        }))
    }

    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move { Ok(Box::new(dial(&addr).await?) as BoxStream) })
    }
}

/// A TCP connection with Nagle's algorithm off.
async fn dial(addr: &str) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// An accepted TCP connection with Nagle's algorithm off.
async fn accept(listener: &tokio::net::TcpListener) -> io::Result<(tokio::net::TcpStream, String)> {
    let (stream, peer) = listener.accept().await?;
    stream.set_nodelay(true)?;
    Ok((stream, peer.to_string()))
}

/// A bound TCP socket; it becomes a tokio listener at the first accept, inside the
/// runtime that serves it.
struct TcpListener {
    local: String,
    std: Option<std::net::TcpListener>,
    tokio: Option<tokio::net::TcpListener>,
}

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            if let Some(std) = self.std.take() {
                self.tokio = Some(tokio::net::TcpListener::from_std(std)?);
            }
            let listener = self.tokio.as_ref().expect("converted above");
            let (stream, peer) = accept(listener).await?;
            Ok(Accepted {
                stream: Box::new(stream),
                peer,
            })
        })
    }

    fn local_addr(&self) -> String {
        self.local.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn host_port_takes_the_address_out_of_a_url() {
        assert_eq!(host_port("https://10.0.0.11:6443/api/v1"), "10.0.0.11:6443");
        assert_eq!(host_port("http://127.0.0.1:2380"), "127.0.0.1:2380");
        assert_eq!(host_port("10.0.0.12:2379"), "10.0.0.12:2379");
    }

    #[tokio::test]
    async fn tcp_listens_and_connects() {
        let net = Tcp::shared();
        let mut listener = net.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr();
        assert!(
            addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
            "{addr}"
        );
        let (accepted, dialed) = tokio::join!(listener.accept(), net.connect(&addr));
        let (mut server, mut client) = (accepted.unwrap().stream, dialed.unwrap());
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    /// Both ends of a connection send small writes at once (no 40 ms wait for a
    /// delayed ACK): Raft heartbeats and watch events are small.
    #[tokio::test]
    async fn both_ends_turn_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (accepted, dialed) = tokio::join!(accept(&listener), dial(&addr));
        assert!(accepted.unwrap().0.nodelay().unwrap());
        assert!(dialed.unwrap().nodelay().unwrap());
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_not_a_hang() {
        let net = Tcp::shared();
        let addr = net.listen("127.0.0.1:0").unwrap().local_addr(); // dropped: closed
        let err = net.connect(&addr).await.err().expect("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
