//! The client's connections come from the [`Network`](seams::Network) it was given: a hyper connector
//! (a `Service<Uri>`) that dials `host:port` of the request's URL through the seam, so
//! the same client works over real TCP and over the simulator's network. TLS is layered
//! on top by hyper-rustls, as over any connector.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use seams::net::{BoxStream, SharedNetwork};

/// Dials through a [`Network`](seams::Network).
#[derive(Clone)]
pub struct Connector {
    network: SharedNetwork,
}

impl Connector {
    pub fn new(network: SharedNetwork) -> Self {
        Connector { network }
    }
}

/// One connection: the seam's byte stream, as hyper reads and writes it.
pub struct Conn(TokioIo<BoxStream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// `https://10.0.0.11:6443/...` → `10.0.0.11:6443` (the scheme's port when none is
/// written).
fn address(uri: &Uri) -> io::Result<String> {
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: no host")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Conn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let network = self.network.clone();
        Box::pin(async move {
            let stream = network.connect(&address(&uri)?).await?;
            Ok(Conn(TokioIo::new(stream)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_of_a_url() {
        let a = |s: &str| address(&s.parse().unwrap()).unwrap();
        assert_eq!(a("https://10.0.0.11:6443/api"), "10.0.0.11:6443");
        assert_eq!(a("https://kubernetes/api"), "kubernetes:443");
        assert_eq!(a("http://127.0.0.1/x"), "127.0.0.1:80");
        assert_eq!(a("https://[::1]:6443/"), "[::1]:6443");
    }
}
