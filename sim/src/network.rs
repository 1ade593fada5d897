//! The simulated network: node addresses (`10.0.0.11:6443`) mapped to real loopback
//! sockets.
//!
//! Every component listens and dials through this map, so configuration files, member
//! lists and kubeconfigs show the node addresses a learner expects, while the bytes go
//! over 127.0.0.1. A service keeps its loopback port across restarts, so a stopped etcd
//! member or apiserver comes back at the same address.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kvstore::server::transport::{BoxFuture, Network as PeerDialer, Stream};

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

    /// The same, as a tokio listener.
    pub fn listen_async(&self, ip: &str, port: u16) -> io::Result<tokio::net::TcpListener> {
        let listener = self.listen(ip, port)?;
        listener.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(listener)
    }

    /// Where `host:port` really is.
    pub fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        self.routes
            .lock()
            .expect("routes lock")
            .get(&(host.to_string(), port))
            .copied()
    }

    /// `https://10.0.0.11:6443/x` → `https://127.0.0.1:40213/x`; unknown addresses are
    /// left as they are (and will fail to connect, as an unreachable host does).
    pub fn resolve_url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let Some((host, port)) = authority.rsplit_once(':') else {
            return url.to_string();
        };
        let Some(addr) = port.parse().ok().and_then(|p| self.resolve(host, p)) else {
            return url.to_string();
        };
        if scheme.is_empty() {
            format!("{addr}{path}")
        } else {
            format!("{scheme}://{addr}{path}")
        }
    }
}

/// The kvstore members dial their peers through the map.
pub struct Dialer(pub Arc<Network>);

impl PeerDialer for Dialer {
    fn connect(&self, addr: String) -> BoxFuture<'static, io::Result<Box<dyn Stream>>> {
        let target = addr
            .rsplit_once(':')
            .and_then(|(h, p)| self.0.resolve(h, p.parse().ok()?));
        Box::pin(async move {
            let target = target.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::HostUnreachable,
                    format!("no route to {addr}"),
                )
            })?;
            let stream = tokio::net::TcpStream::connect(target).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Stream>)
        })
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
        assert_eq!(
            net.resolve_url("https://10.0.0.11:6443/api"),
            format!("https://{addr}/api")
        );
        assert_eq!(
            net.resolve_url("https://10.0.0.99:6443"),
            "https://10.0.0.99:6443"
        );
        drop(first);
        let again = net.listen("10.0.0.11", 6443).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr);
    }
}
