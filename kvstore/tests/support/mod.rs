//! A cluster of real members on loopback, shared by the server tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod tools;

use std::ops::{Deref, DerefMut};

use kvstore::proto::etcdserverpb::kv_client::KvClient;
use kvstore::server::local::{LocalCluster, Timing};
use tonic::transport::Channel;

/// Small, so the server tests exercise log compaction and snapshot catch-up.
pub const SNAPSHOT_COUNT: u64 = 20;

/// A [`LocalCluster`] in a temporary directory that goes away with it.
pub struct Cluster {
    inner: LocalCluster,
    _root: tempfile::TempDir,
}

impl Cluster {
    pub async fn start(n: u64) -> Cluster {
        let timing = Timing {
            snapshot_count: SNAPSHOT_COUNT,
            ..Timing::default()
        };
        Cluster::start_with(n, timing).await
    }

    pub async fn start_with(n: u64, timing: Timing) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let inner = LocalCluster::start(root.path(), n, timing).await.unwrap();
        Cluster { inner, _root: root }
    }

    pub async fn kv(&self, id: u64) -> KvClient<Channel> {
        KvClient::connect(self.endpoint(id)).await.unwrap()
    }

    pub async fn restart(&mut self, id: u64) {
        self.inner.restart(id).await.unwrap();
    }
}

impl Deref for Cluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.inner
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.inner
    }
}

/// Retries a put until it is acknowledged (the cluster may still be electing) or the
/// deadline; returns the revision it made. Only "unavailable" failures are retried.
pub async fn put_eventually(kv: &mut KvClient<Channel>, key: &str, value: &str) -> i64 {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = kvstore::proto::etcdserverpb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        match kv.put(request).await {
            Ok(r) => return r.into_inner().header.unwrap().revision,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), tonic::Code::Unavailable, "put {key}: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("put {key} never succeeded: {e}"),
        }
    }
}
