//! A cluster of real members on loopback, shared by the server tests.
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use kvstore::proto::etcdserverpb::kv_client::KvClient;
use kvstore::server::{self, Server, ServerConfig};
use kvstore::{ClusterInfo, MemberInfo};
use std::net::TcpListener;
use tonic::transport::Channel;

/// Small, so the server tests exercise log compaction and snapshot catch-up.
pub const SNAPSHOT_COUNT: u64 = 20;

pub struct Cluster {
    pub info: ClusterInfo,
    dirs: Vec<tempfile::TempDir>,
    servers: Vec<Option<Server>>,
}

/// A member's configuration. Like the real `etcd --initial-cluster`, it names every
/// member's peer URLs but only its own client URL: the others' arrive through Raft.
pub fn config(info: &ClusterInfo, id: u64, dir: &std::path::Path) -> ServerConfig {
    let me = info.member(id).expect("a member");
    let mut cluster = info.clone();
    for m in &mut cluster.members {
        if m.id != id {
            m.client_urls.clear();
        }
    }
    ServerConfig {
        id,
        cluster,
        data_dir: dir.to_path_buf(),
        listen_client: me.client_urls[0].clone(),
        listen_peer: me.peer_urls[0].clone(),
        heartbeat: Duration::from_millis(10),
        election_timeout: Duration::from_millis(100),
        request_timeout: Duration::from_millis(1500),
        snapshot_count: 0,
    }
}

impl Cluster {
    pub async fn start(n: u64) -> Cluster {
        let mut listeners = Vec::new();
        let mut members = Vec::new();
        for id in 1..=n {
            let peer = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpListener::bind("127.0.0.1:0").unwrap();
            members.push(MemberInfo {
                id,
                name: format!("etcd{id}"),
                peer_urls: vec![format!("http://{}", peer.local_addr().unwrap())],
                client_urls: vec![format!("http://{}", client.local_addr().unwrap())],
            });
            listeners.push((peer, client));
        }
        let info = ClusterInfo::new(members);
        let mut dirs = Vec::new();
        let mut servers = Vec::new();
        for (i, (peer, client)) in listeners.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let cfg = config(&info, i as u64 + 1, dir.path());
            servers.push(Some(server::start_on(cfg, peer, client).await.unwrap()));
            dirs.push(dir);
        }
        Cluster {
            info,
            dirs,
            servers,
        }
    }

    /// `host:port` of a member's client URL, as etcdctl's --endpoints wants it.
    pub fn addr(&self, id: u64) -> String {
        self.endpoint(id).trim_start_matches("http://").to_string()
    }

    pub fn endpoint(&self, id: u64) -> String {
        self.info.member(id).unwrap().client_urls[0].clone()
    }

    pub async fn kv(&self, id: u64) -> KvClient<Channel> {
        KvClient::connect(self.endpoint(id)).await.unwrap()
    }

    pub async fn stop(&mut self, id: u64) {
        if let Some(server) = self.servers[id as usize - 1].take() {
            server.stop().await;
        }
    }

    pub async fn restart(&mut self, id: u64) {
        let cfg = config(&self.info, id, self.dirs[id as usize - 1].path());
        let server = server::start(cfg).await.unwrap();
        self.servers[id as usize - 1] = Some(server);
    }
}
