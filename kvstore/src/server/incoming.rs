//! The client port as tonic sees it: the connections of a listener from the member's
//! network, one after another.
//!
//! tonic serves any stream of connections (`serve_with_incoming`), as long as each is a
//! tokio byte stream that can say who is on the other end (tonic's `Connected`). The
//! network hands out boxed streams ([`seams::net::BoxStream`]) and the peer's address
//! beside them, so [`ClientConnection`] puts the two together, and [`Incoming`] turns
//! the listener's `accept` into the stream tonic polls. Each connection also goes
//! through [`AuthorityFix`] (etcdctl 3.4's `:authority`, see `authority.rs`).
//!
//! Nagle's algorithm is the network's business: [`seams::Tcp`] turns it off on every
//! connection it accepts, which matters here. With it on, a small response written while
//! the previous one is unacknowledged waits for the client's delayed ACK, 40 ms on Linux
//! (measured: the p99.9 of puts fell from 43 ms to 7 ms without it).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use seams::net::{Accepted, BoxFuture, BoxStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_stream::Stream;

use super::authority::AuthorityFix;

/// Who a client connection came from, as tonic hands it to a request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address (`host:port`), as the network reported it.
    pub peer: String,
}

/// One accepted client connection.
pub struct ClientConnection {
    stream: BoxStream,
    info: ClientInfo,
}

impl From<Accepted> for ClientConnection {
    fn from(accepted: Accepted) -> Self {
        ClientConnection {
            stream: accepted.stream,
            info: ClientInfo {
                peer: accepted.peer,
            },
        }
    }
}

impl AsyncRead for ClientConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for ClientConnection {
    type ConnectInfo = ClientInfo;

    fn connect_info(&self) -> ClientInfo {
        self.info.clone()
    }
}

/// What an accept gives back: the listener (so the next accept can borrow it) and the
/// connection.
type Accepting = BoxFuture<'static, (Box<dyn Listener>, io::Result<Accepted>)>;

fn accept(mut listener: Box<dyn Listener>) -> Accepting {
    Box::pin(async move {
        let accepted = listener.accept().await;
        (listener, accepted)
    })
}

/// A listener's connections as a stream, for `serve_with_incoming`. An accept that
/// fails is an error item (tonic logs it and accepts again); the stream never ends.
/// Dropping it closes the listener.
pub struct Incoming {
    accepting: Accepting,
}

impl Incoming {
    /// The connections `listener` accepts from now on.
    pub fn new(listener: Box<dyn Listener>) -> Self {
        Incoming {
            accepting: accept(listener),
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<AuthorityFix<ClientConnection>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (listener, accepted) = ready!(self.accepting.as_mut().poll(cx));
        self.accepting = accept(listener);
        let connection = accepted.map(|a| AuthorityFix::new(ClientConnection::from(a)));
        Poll::Ready(Some(connection))
    }
}

/// Serves etcd's gRPC services (`routes`) on every connection `incoming` yields, each
/// in a task of its own, as HTTP/2 with prior knowledge (what gRPC clients speak). A
/// connection that fails is logged and dropped; the loop ends only with the listener.
///
/// tonic's own server would do the same, but hyper adds a `date` header to every
/// response from the machine's clock; etcd's Go gRPC server sends none, and a
/// simulated run must not read the machine's clock.
pub async fn serve(mut incoming: Incoming, routes: tonic::service::Routes) {
    use tokio_stream::StreamExt as _;
    let routes = routes.prepare();
    while let Some(connection) = incoming.next().await {
        let Ok(connection) = connection else {
            continue; // that accept failed; the listener still works
        };
        let service = hyper_util::service::TowerToHyperService::new(routes.clone());
        tokio::spawn(async move {
            let mut http =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            http.auto_date_header(false);
            let io = hyper_util::rt::TokioIo::new(connection);
            if let Err(e) = http.serve_connection(io, service).await {
                tracing::debug!(error = %e, "a gRPC connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seams::Tcp;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    /// Every connection the listener accepts comes out of the stream, in turn, as a
    /// working byte stream that knows its peer.
    #[tokio::test]
    async fn each_accepted_connection_comes_out_with_its_peer() {
        let net = Tcp::shared();
        let listener = net.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr();
        let mut incoming = Incoming::new(listener);
        for greeting in [b"one", b"two"] {
            let (served, dialed) = tokio::join!(incoming.next(), net.connect(&addr));
            let mut served = served.expect("the stream never ends").unwrap();
            let mut dialed = dialed.unwrap();
            let info = tonic::transport::server::Connected::connect_info(served.get_ref());
            assert!(info.peer.starts_with("127.0.0.1:"), "{info:?}");
            dialed.write_all(greeting).await.unwrap();
            let mut got = [0u8; 3];
            served.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, greeting);
        }
    }
}
