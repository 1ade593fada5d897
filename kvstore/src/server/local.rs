//! A whole cluster of real members on loopback, in one process: what the tests, the
//! apiserver's tests and the simulator start instead of three `etcd` processes.
//!
//! Each member is a real server (its own runtime, TCP sockets, data directory
//! under `root/etcd<N>`), so stopping one is like killing its process, and restarting
//! it recovers from its data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use seams::clock::SharedClock;
use seams::net::SharedNetwork;
use seams::rand::Rng;
use seams::{SystemClock, Tcp};

use crate::error::{Error, Result};
use crate::membership::{ClusterInfo, MemberInfo};
use crate::server::{self, Server, ServerConfig};

/// Timings of a local cluster: short, so elections take a tenth of a second.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between heartbeats (etcd's `--heartbeat-interval`).
    pub heartbeat: Duration,
    /// etcd's `--election-timeout`.
    pub election_timeout: Duration,
    /// How long a request may wait to commit.
    pub request_timeout: Duration,
    /// Entries between raft snapshots (etcd's `--snapshot-count`).
    pub snapshot_count: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat: Duration::from_millis(10),
            election_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_millis(1500),
            snapshot_count: 100_000,
        }
    }
}

/// Members `etcd1..etcdN`, all on 127.0.0.1 with ports the OS picked, over real TCP
/// and the machine's clock, with election timeouts drawn from one generator seeded
/// from the OS.
pub struct LocalCluster {
    /// The members, their IDs and URLs.
    pub info: ClusterInfo,
    /// The timings every member runs with.
    pub timing: Timing,
    root: PathBuf,
    servers: Vec<Option<Server>>,
    network: SharedNetwork,
    clock: SharedClock,
    rng: Rng,
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(e.to_string())
}

impl LocalCluster {
    /// Starts `n` members with data directories under `root`.
    pub async fn start(root: &Path, n: u64, timing: Timing) -> Result<LocalCluster> {
        let network = Tcp::shared();
        let mut listeners = Vec::new();
        let mut members = Vec::new();
        for id in 1..=n {
            let peer = network.listen("127.0.0.1:0").map_err(io)?;
            let client = network.listen("127.0.0.1:0").map_err(io)?;
            members.push(MemberInfo {
                id,
                name: format!("etcd{id}"),
                peer_urls: vec![format!("http://{}", peer.local_addr())],
                client_urls: vec![format!("http://{}", client.local_addr())],
            });
            listeners.push((peer, client));
        }
        let mut cluster = LocalCluster {
            info: ClusterInfo::new(members),
            timing,
            root: root.to_path_buf(),
            servers: Vec::new(),
            network,
            clock: SystemClock::shared(),
            // Live timings, real sockets: nothing here replays, so fresh randomness.
            rng: Rng::from_entropy(),
        };
        for (i, (peer, client)) in listeners.into_iter().enumerate() {
            let config = cluster.config(i as u64 + 1);
            cluster
                .servers
                .push(Some(server::start_on(config, peer, client).await?));
        }
        Ok(cluster)
    }

    /// A member's configuration. Like the real `etcd --initial-cluster`, it names every
    /// member's peer URLs but only its own client URL: the others' arrive through Raft.
    pub fn config(&self, id: u64) -> ServerConfig {
        let me = self.info.member(id).expect("a member of this cluster");
        let mut cluster = self.info.clone();
        for m in &mut cluster.members {
            if m.id != id {
                m.client_urls.clear();
            }
        }
        ServerConfig {
            id,
            cluster,
            data_dir: self.data_dir(id),
            listen_client: me.client_urls[0].clone(),
            listen_peer: me.peer_urls[0].clone(),
            heartbeat: self.timing.heartbeat,
            election_timeout: self.timing.election_timeout,
            request_timeout: self.timing.request_timeout,
            snapshot_count: self.timing.snapshot_count,
            max_request_bytes: crate::request::MAX_REQUEST_BYTES,
            network: self.network.clone(),
            clock: self.clock.clone(),
            rng: self.rng.clone(),
            runtime: super::MemberRuntime::default(),
        }
    }

    /// Where member `id` keeps its data.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("etcd{id}"))
    }

    /// A member's client URL (`http://127.0.0.1:port`).
    pub fn endpoint(&self, id: u64) -> String {
        self.info.member(id).expect("a member").client_urls[0].clone()
    }

    /// `host:port` of a member's client URL, as etcdctl's `--endpoints` wants it.
    pub fn addr(&self, id: u64) -> String {
        self.endpoint(id).trim_start_matches("http://").to_string()
    }

    /// Every member's client URL, as `--etcd-servers` wants them.
    pub fn endpoints(&self) -> Vec<String> {
        self.info
            .members
            .iter()
            .map(|m| m.client_urls[0].clone())
            .collect()
    }

    /// Whether member `id` is running (started, not stopped, and not failed).
    pub fn is_running(&self, id: u64) -> bool {
        self.servers
            .get(id as usize - 1)
            .is_some_and(|s| s.as_ref().is_some_and(|s| s.exit().is_none()))
    }

    /// Stops a member, like killing its process; its data directory stays.
    pub async fn stop(&mut self, id: u64) {
        if let Some(server) = self.servers[id as usize - 1].take() {
            server.stop().await;
        }
    }

    /// Starts a stopped member again from its data directory.
    pub async fn restart(&mut self, id: u64) -> Result<()> {
        if self.is_running(id) {
            return Ok(());
        }
        self.stop(id).await; // a failed member's thread is gone; this forgets it
        let server = server::start(self.config(id)).await?;
        self.servers[id as usize - 1] = Some(server);
        Ok(())
    }

    /// Stops every member.
    pub async fn stop_all(&mut self) {
        for id in 1..=self.servers.len() as u64 {
            self.stop(id).await;
        }
    }
}
