//! # seams: where a component meets the world
//!
//! A Kubernetes control plane is a handful of programs that talk over TCP and keep
//! time: etcd members tick Raft every 100 ms and dial their peers on port 2380, the
//! kube-apiserver listens on 6443 and stamps `creationTimestamp`, the scheduler and the
//! controller-manager renew their leader leases every two seconds, a kubelet reports
//! its node every ten. Everything those programs *decide* depends on two things from
//! outside: what arrived on a socket, and what time it is. (And, for IDs and election
//! timeouts, a few random numbers.)
//!
//! miniplane keeps those three at thin edges, each behind one seam handed to every
//! component when it is built:
//!
//! - [`net::Network`] — *listen on an address, connect to an address*. Every socket of
//!   every component comes from it: etcd's client and peer ports, the apiservers, the
//!   apiserver's dial to a kubelet for `kubectl logs`, kubelets, the scheduler and the
//!   controller-manager as clients, the shell's tools. The streams it yields are plain
//!   tokio byte streams, which hyper, tonic and the Raft transport all accept, so real
//!   HTTP/1.1, HTTP/2, TLS and gRPC bytes flow over whatever the network is. [`net::Tcp`]
//!   is the real one; the simulator maps node addresses (`10.0.0.11:6443`) to loopback
//!   ports behind the same trait. [`memory::MemoryNetwork`] carries the bytes in memory
//!   instead, and can cut hosts apart or crash them; [`scope::Scope`] closes every
//!   socket of one process at once, as the kernel does when the process is killed.
//! - [`clock::Clock`] — *what time is it, and wake me at*. Monotonic time (sleeps,
//!   intervals, timeouts, Raft ticks, lease checks) and wall time (timestamps in
//!   objects, lease renew times, events, log lines) both come from it, and wall time
//!   is read from the same clock, so the two never disagree. [`clock::SystemClock`] is
//!   the machine's clock. Because every sleep goes through the trait, a clock can
//!   also decide how fast time runs: a simulated clock jumps to the next timer, and a
//!   paced one can refuse to count the 30 s a learner spent at a breakpoint, so the
//!   cluster does not wake to a burst of missed ticks and expired leases.
//! - [`rand::Rng`] — one seeded generator a cluster is built with, from which UIDs,
//!   member IDs, container IDs, tokens and election timeouts are drawn. The same seed
//!   gives the same IDs.
//!
//! ## Read next
//! `clock.rs` (the trait and the helpers every component uses: `sleep`, `timeout`,
//! `interval`), then `net.rs`, `memory.rs` and `scope.rs`, then `rand.rs`. After that,
//! `kvstore/src/server` shows a component built on all three.
//!
//! ## Left out
//! There is no DNS: addresses are `host:port` strings, as in the components' flags.
//! The simulator's clock ([`clock::SimClock`]) is virtual time on a paused tokio
//! runtime: it cannot virtualise a library that reads the machine's clock itself.

pub mod clock;
pub mod duration;
pub mod memory;
pub mod net;
pub mod rand;
pub mod scope;

pub use clock::{Clock, SimClock, SystemClock};
pub use memory::MemoryNetwork;
pub use net::{Network, Tcp};
pub use rand::Rng;
pub use scope::Scope;

use std::sync::Arc;

/// The three seams together, as a component is handed them: the machine it runs on,
/// as far as its code can tell. A real process gets [`Host::real`]; each simulated node
/// hands its components the node's own.
#[derive(Clone)]
pub struct Host {
    pub network: net::SharedNetwork,
    pub clock: clock::SharedClock,
    pub rng: Rng,
}

impl Host {
    /// The machine's TCP, the machine's clock, randomness from the operating system.
    pub fn real() -> Host {
        Host {
            network: Arc::new(Tcp),
            clock: Arc::new(SystemClock),
            rng: Rng::from_entropy(),
        }
    }

    /// The same host with a stream of random numbers of its own (for one component).
    pub fn fork(&self) -> Host {
        Host {
            network: self.network.clone(),
            clock: self.clock.clone(),
            rng: self.rng.fork(),
        }
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Host")
    }
}
