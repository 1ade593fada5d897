//! The simulated network: every node's sockets, in memory.
//!
//! Each node has an address on a loopback subnet, `127.0.N.11` to `127.0.N.13`, and
//! every component listens and dials through its node's view of one
//! [`MemoryNetwork`] ([`MemoryNetwork::host`]). The bytes are the real ones — HTTP/1.1,
//! HTTP/2, TLS, gRPC, Raft frames — carried by in-memory pipes, so a simulated run uses
//! no socket of the machine, and what a connection does depends only on what was
//! written to it: the same run replays exactly.
//!
//! Faults are the network's: a partition between two nodes holds their bytes (full or
//! one way), a crash resets every connection of a node.
//!
//! **Live mode** ([`crate::cluster::Cluster::go_live`]): every listener also accepts
//! real TCP connections on its own address, so the real `kubectl` and `etcdctl` of
//! this machine reach the cluster at the addresses it advertises (`127.0.N.11:6443`,
//! the etcd URLs of `member list`). Linux routes all of 127.0.0.0/8 to the loopback
//! interface, so those addresses need no set-up and reach nothing outside this machine.

pub use seams::memory::{HostNetwork, MemoryNetwork};

/// The address of the `i`-th node (from 0) on loopback subnet `subnet`:
/// `127.0.<subnet>.<11 + i>`.
pub fn node_ip(subnet: u8, i: usize) -> String {
    format!("127.0.{subnet}.{}", 11 + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_numbered_from_11_on_their_subnet() {
        assert_eq!(node_ip(0, 0), "127.0.0.11");
        assert_eq!(node_ip(7, 2), "127.0.7.13");
    }
}
