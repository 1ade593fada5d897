//! Back up a running three-member cluster with the real `etcdctl snapshot save`,
//! inspect the file with `kvctl snapshot status`, restore it into three new data
//! directories with `kvctl snapshot restore`, start a new cluster on them, and read
//! every key back at the same revision.

use std::process::Command;
use std::time::Duration;

use kvstore::client::{Client, ClientConfig};
use kvstore::proto::etcdserverpb::{PutRequest, RangeRequest};
use kvstore::server::{self, ServerConfig};
use kvstore::{snapshot, ClusterInfo, Request};
use seams::net::Listener;
use seams::Tcp;

mod support;
use support::tools::{self, ETCDCTL};
use support::Cluster;

fn all_keys() -> RangeRequest {
    RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_restore_and_read_back_at_the_same_revision() {
    if tools::skip_unless_installed(&ETCDCTL) {
        return;
    }
    let mut old = Cluster::start(3).await;
    let endpoints: Vec<String> = (1..=3).map(|id| old.endpoint(id)).collect();
    let client = Client::new(ClientConfig::new(endpoints)).unwrap();
    for (key, value) in [
        ("/registry/namespaces/default", "ns"),
        ("/registry/pods/default/a", "1"),
        ("/registry/pods/default/a", "2"),
        ("/registry/pods/default/b", "1"),
    ] {
        let put = PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        client.put(put).await.unwrap();
    }
    if let Request::DeleteRange(d) = Request::delete("/registry/pods/default/b") {
        client.delete_range(d).await.unwrap();
    }
    let before = client.range(all_keys()).await.unwrap();

    // The real etcdctl saves the file (it checks the 512-byte blocks + SHA-256 shape).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node1.etcd.backup");
    let out = tokio::task::block_in_place(|| {
        Command::new("etcdctl")
            .args([&format!("--endpoints={}", old.addr(1)), "snapshot", "save"])
            .arg(&file)
            .output()
            .expect("etcdctl runs (the test checked it is on PATH)")
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Snapshot saved at {}\n", file.display())
    );
    for id in 1..=3 {
        old.stop(id).await;
    }

    let bytes = std::fs::read(&file).unwrap();
    let status = snapshot::status(&bytes).unwrap();
    assert_eq!(status.revision, before.header.as_ref().unwrap().revision);
    let kvctl = env!("CARGO_BIN_EXE_kvctl");
    let out = Command::new(kvctl)
        .args(["snapshot", "status"])
        .arg(&file)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    let expected = format!(
        "{:x}, {}, {}, ",
        status.hash, status.revision, status.total_keys
    );
    assert!(
        printed.starts_with(&expected) && printed.ends_with(" B\n"),
        "{printed}"
    );

    // A new cluster, new addresses, restored from the file.
    let network = Tcp::shared();
    let listeners: Vec<(Box<dyn Listener>, Box<dyn Listener>)> = (0..3)
        .map(|_| {
            (
                network.listen("127.0.0.1:0").unwrap(),
                network.listen("127.0.0.1:0").unwrap(),
            )
        })
        .collect();
    let url = |l: &dyn Listener| format!("http://{}", l.local_addr());
    let spec: Vec<String> = listeners
        .iter()
        .enumerate()
        .map(|(i, (p, _))| format!("new{}={}", i + 1, url(p.as_ref())))
        .collect();
    let spec = spec.join(",");
    let mut servers = Vec::new();
    let mut endpoints = Vec::new();
    for (i, (peer, client_listener)) in listeners.into_iter().enumerate() {
        let name = format!("new{}", i + 1);
        let data_dir = dir.path().join(&name);
        let out = Command::new(kvctl)
            .args(["snapshot", "restore"])
            .arg(&file)
            .args([
                "--name",
                &name,
                "--initial-cluster",
                &spec,
                "--initial-cluster-token",
                "restored",
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client_url = url(client_listener.as_ref());
        let cluster = ClusterInfo::parse_initial_cluster(
            &spec,
            "restored",
            &name,
            std::slice::from_ref(&client_url),
        )
        .unwrap();
        let id = cluster.members.iter().find(|m| m.name == name).unwrap().id;
        let config = ServerConfig {
            id,
            cluster,
            data_dir,
            listen_client: client_url.clone(),
            listen_peer: String::new(),
            heartbeat: Duration::from_millis(10),
            election_timeout: Duration::from_millis(100),
            request_timeout: Duration::from_millis(1500),
            snapshot_count: 100_000,
            max_request_bytes: kvstore::request::MAX_REQUEST_BYTES,
            network: network.clone(),
            clock: seams::SystemClock::shared(),
            rng: seams::Rng::seeded(i as u64),
            runtime: kvstore::server::MemberRuntime::default(),
        };
        servers.push(
            server::start_on(config, peer, client_listener)
                .await
                .unwrap(),
        );
        endpoints.push(client_url);
    }

    let client = Client::new(ClientConfig::new(endpoints)).unwrap();
    let after = client.range(all_keys()).await.unwrap();
    assert_eq!(
        after.kvs, before.kvs,
        "every key, with its revisions and version"
    );
    assert_eq!(after.header.unwrap().revision, status.revision);
    // History came along too: the value before the last change is still readable.
    let mut old_read = all_keys();
    old_read.revision = 3;
    let past = client.range(old_read).await.unwrap();
    assert!(past.kvs.iter().any(|kv| kv.value == b"1"));
    // And the new cluster takes writes, continuing the revision sequence.
    let put = PutRequest {
        key: "after".into(),
        value: "restore".into(),
        ..Default::default()
    };
    let r = client.put(put).await.unwrap();
    assert_eq!(r.header.unwrap().revision, status.revision + 1);
    for s in servers {
        s.stop().await;
    }
}
