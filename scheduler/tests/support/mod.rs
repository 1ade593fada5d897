//! A 3-member kvstore and apiservers over it, for the scheduler's tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use apiserver::client::Client;
use apiserver::pki::Ca;
use apiserver::server::{start_local, Running};
use apiserver::types::{Node, NodeCondition, Taint};
use kvstore::server::local::{LocalCluster, Timing};

pub const TOKEN: &str = "admin-token";

pub struct Env {
    pub etcd: LocalCluster,
    pub ca: Ca,
    _dir: tempfile::TempDir,
}

impl Env {
    pub async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let etcd = LocalCluster::start(dir.path(), 3, Timing::default())
            .await
            .unwrap();
        Env {
            etcd,
            ca: Ca::generate().unwrap(),
            _dir: dir,
        }
    }

    /// One more apiserver over the cluster's etcd.
    pub async fn apiserver(&self) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tokens = [(TOKEN.to_string(), "admin".to_string())].into();
        start_local(listener, self.etcd.endpoints(), &self.ca, &[], tokens)
            .await
            .unwrap()
    }

    pub fn client(&self, apiservers: &[&Running]) -> Client {
        let urls = apiservers
            .iter()
            .map(|a| format!("https://{}", a.addr))
            .collect();
        Client::new(urls, Some(&self.ca.cert_pem), Some(TOKEN.into())).unwrap()
    }
}

/// A Ready node with `cpu` cores; control-plane nodes carry the role label and taint.
pub fn node(name: &str, cpu: &str, control_plane: bool) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.into();
    n.status.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..NodeCondition::default()
    });
    for (k, v) in [("cpu", cpu), ("memory", "8Gi"), ("pods", "110")] {
        n.status.allocatable.insert(k.into(), v.into());
    }
    if control_plane {
        let role = "node-role.kubernetes.io/control-plane";
        n.metadata.labels.insert(role.into(), String::new());
        n.spec.taints.push(Taint {
            key: role.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    }
    n
}

/// Polls `check` until it returns `Some` (deadline 15 s).
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
