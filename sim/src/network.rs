//! The simulated network: node addresses (`10.0.0.11:6443`) mapped to real loopback
//! sockets.
//!
//! Every component listens and dials through this map, so configuration files, member
//! lists and kubeconfigs show the node addresses a learner expects, while the bytes go
//! over 127.0.0.1. A service keeps its loopback port across restarts, so a stopped etcd
//! member or apiserver comes back at the same address.
//!
//! The map is a [`seams::net::Network`]: a component handed it listens on
//! `10.0.0.11:2380` and dials `10.0.0.12:2380` exactly as it would on real TCP (the
//! etcd members do), as does every other component, tool and check of the sim. The
//! inherent methods are the map itself: reserving an address's port before anything
//! listens there, and looking up the loopback port for this machine's real tools.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use seams::net::{Accepted, BoxFuture, BoxStream, Listener};
use seams::Tcp;

/// `host:port` → loopback socket.
#[derive(Default)]
pub struct Network {
    routes: Mutex<HashMap<(String, u16), SocketAddr>>,
}

impl Network {
    pub fn new() -> Arc<Network> {
        Arc::new(Network::default())
    }

    /// Gives `ip:port` its loopback port now, before anything listens there, so
    /// clients made earlier (a kubelet starting before the apiservers) resolve it.
    pub fn reserve(&self, ip: &str, port: u16) -> io::Result<()> {
        drop(self.listen(ip, port)?);
        Ok(())
    }

    /// A listener for `ip:port`: the same loopback port every time it is asked for.
    pub fn listen(&self, ip: &str, port: u16) -> io::Result<std::net::TcpListener> {
        let key = (ip.to_string(), port);
        let known = self.routes.lock().expect("routes lock").get(&key).copied();
        let listener = match known {
            Some(addr) => std::net::TcpListener::bind(addr)?,
            None => std::net::TcpListener::bind("127.0.0.1:0")?,
        };
        let addr = listener.local_addr()?;
        self.routes.lock().expect("routes lock").insert(key, addr);
        Ok(listener)
    }

    /// Where `host:port` really is.
    pub fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.routes
            .lock()
            .expect("routes lock")
            .get(&(host.to_string(), port))
            .copied()
    }
}

/// `host:port` → host and port.
fn split_addr(addr: &str) -> io::Result<(&str, u16)> {
    addr.rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse().ok()?)))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr}: not host:port"),
            )
        })
}

impl seams::net::Network for Network {
    /// Listens on a node address: the same loopback port every time it is asked for.
    fn listen(&self, addr: &str) -> io::Result<Box<dyn Listener>> {
        let (host, port) = split_addr(addr)?;
        let listener = Network::listen(self, host, port)?;
        listener.set_nonblocking(true)?;
        Ok(Box::new(NodeListener {
            addr: addr.to_string(),
            std: Some(listener),
            tokio: None,
        }))
    }

    /// Dials a node address; one nothing ever listened on has no route.
    fn connect(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let target = split_addr(addr)
            .ok()
            .and_then(|(host, port)| self.resolve(host, port));
        let addr = addr.to_string();
        Box::pin(async move {
            let target = target.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::HostUnreachable,
                    format!("no route to {addr}"),
                )
            })?;
            Tcp.connect(&target.to_string()).await
        })
    }
}

/// A loopback socket that answers to a node address. It becomes a tokio listener at
/// the first accept, inside the runtime that serves it (as `seams::Tcp`'s do).
struct NodeListener {
    addr: String,
    std: Option<std::net::TcpListener>,
    tokio: Option<tokio::net::TcpListener>,
}

impl Listener for NodeListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            if let Some(std) = self.std.take() {
                self.tokio = Some(tokio::net::TcpListener::from_std(std)?);
            }
            let listener = self.tokio.as_ref().expect("converted above");
            let (stream, peer) = listener.accept().await?;
            stream.set_nodelay(true)?; // as seams::Tcp: small writes go at once
            Ok(Accepted {
                stream: Box::new(stream),
                peer: peer.to_string(),
            })
        })
    }

    /// The node address, not the loopback port behind it.
    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_the_same_loopback_port_across_restarts() {
        let net = Network::new();
        let first = net.listen("10.0.0.11", 6443).unwrap();
        let addr = first.local_addr().unwrap();
        assert_eq!(net.resolve("10.0.0.11", 6443), Some(addr));
        assert_eq!(net.resolve("10.0.0.99", 6443), None);
        drop(first);
        let again = net.listen("10.0.0.11", 6443).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr);
    }

    /// Through the seam: a listener on a node address keeps its loopback port across
    /// restarts and answers dials to the node address; an address nobody listens on
    /// has no route.
    #[tokio::test]
    async fn the_seam_listens_and_dials_node_addresses() {
        use seams::net::Network as _;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let net = Network::new();
        let mut listener = seams::net::Network::listen(&*net, "10.0.0.12:2380").unwrap();
        assert_eq!(listener.local_addr(), "10.0.0.12:2380");
        let port = net.resolve("10.0.0.12", 2380).expect("routed");
        drop(listener);
        listener = seams::net::Network::listen(&*net, "10.0.0.12:2380").unwrap();
        assert_eq!(
            net.resolve("10.0.0.12", 2380),
            Some(port),
            "same port again"
        );

        let (accepted, dialed) = tokio::join!(listener.accept(), net.connect("10.0.0.12:2380"));
        let (mut server, mut client) = (accepted.unwrap().stream, dialed.unwrap());
        client.write_all(b"vote").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"vote");

        let err = net.connect("10.0.0.99:2380").await.err().expect("no route");
        assert_eq!(err.kind(), io::ErrorKind::HostUnreachable);
        assert_eq!(err.to_string(), "no route to 10.0.0.99:2380");
    }
}
