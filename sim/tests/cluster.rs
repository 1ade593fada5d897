//! The simulated cluster comes up from its files.

use std::time::Duration;

use api::types::Pod;
use client_go::client::ListParams;
use sim::cluster::Cluster;

#[tokio::test(start_paused = true)]
async fn the_cluster_comes_up_with_its_control_plane_as_static_pods() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let client = cluster.admin().unwrap();
    let mirrors = apiserver::local::eventually("mirror pods", Duration::from_secs(20), || async {
        let pods = client
            .list::<Pod>(Some("kube-system"), &ListParams::default())
            .await
            .ok()?;
        let names: Vec<String> = pods.items.iter().map(|p| p.metadata.name.clone()).collect();
        (names.len() == 6).then_some(names)
    })
    .await;
    assert!(
        mirrors.contains(&"kube-apiserver-node1".to_string()),
        "{mirrors:?}"
    );
    assert!(
        mirrors.contains(&"kube-scheduler-node2".to_string()),
        "{mirrors:?}"
    );
    assert!(dir
        .path()
        .join("node2/etc/kubernetes/manifests/kube-apiserver.yaml")
        .exists());
    cluster.shutdown().await;
}

/// An etcd member whose data directory is deleted under it fails at its next write to
/// the store and ends, as a real etcd process does: `docker ps -a` shows its container
/// `Exited (2)`, `docker logs` says why, and the other two members keep a quorum.
#[tokio::test(start_paused = true)]
async fn an_etcd_member_that_fails_shows_exited_2() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    std::fs::remove_dir_all(dir.path().join("node2/var/lib/etcd")).unwrap();
    // A value big enough that the store writes a file of its own for it.
    let big = "x".repeat(1 << 20);
    let _ = sim::shell::run(&cluster, "node2", &format!("etcdctl put /big {big}")).await;
    let line = apiserver::local::eventually("etcd2 exits", Duration::from_secs(30), || async {
        let ps = sim::shell::run(&cluster, "node2", "docker ps -a")
            .await
            .stdout;
        ps.lines()
            .find(|l| l.ends_with("etcd2") && l.contains("Exited"))
            .map(str::to_string)
    })
    .await;
    assert!(line.contains("Exited (2)"), "{line}");
    let logs = sim::shell::run(&cluster, "node2", "docker logs etcd2")
        .await
        .stdout;
    let last = logs.lines().last().unwrap_or_default();
    assert!(last.contains("\"level\":\"panic\""), "{logs}");
    // The other two keep a quorum (once they have elected a leader, if etcd2 led).
    apiserver::local::eventually("a put on node1", Duration::from_secs(30), || async {
        let put = sim::shell::run(&cluster, "node1", "etcdctl put /after quorum").await;
        (put.stdout.trim() == "OK").then_some(())
    })
    .await;
    cluster.shutdown().await;
}
