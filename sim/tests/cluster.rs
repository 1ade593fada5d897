//! The simulated cluster comes up from its files.

use std::time::Duration;

use apiserver::client::ListParams;
use apiserver::types::Pod;
use sim::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
