//! The assignment scenario end to end, then its two lessons: every checker requirement
//! met, and the key lines of the transcript there (not ages, ids or random suffixes).

use sim::cluster::Cluster;
use sim::scenario::Scenario;

#[tokio::test(start_paused = true)]
async fn the_assignment_passes_the_checker() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster
        .wait_ready(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let mut transcript = Vec::new();
    let (checks, lessons) = {
        let mut scenario = Scenario::new(&cluster, &mut transcript);
        let checks = scenario.assignment().await.unwrap();
        (checks, scenario.lessons().await.unwrap())
    };
    let text = String::from_utf8(transcript).unwrap();
    for c in &checks {
        assert!(c.passed, "{}: {}\n{text}", c.requirement, c.detail);
    }
    assert_eq!(checks.len(), 5);
    // The lessons: quorum loss shows as etcd's own words, and the backup restores.
    for c in &lessons {
        assert!(c.passed, "{}: {}\n{text}", c.requirement, c.detail);
    }
    assert!(
        text.contains(
            "node1$ kubectl get pods\nError from server (ServiceUnavailable): etcdserver: "
        ),
        "{text}"
    );
    assert!(
        text.contains("/registry/pods/kube-system/kube-apiserver-node2"),
        "{text}"
    );
    for line in [
        "node1$ etcdctl member list",
        ", started, etcd2, http://127.0.0.12:2380, http://127.0.0.12:2379, false",
        "etcdctl get --prefix --keys-only /registry | head\n/registry/",
        "Snapshot saved at /tmp/node1.etcd.backup",
        "node2$ rm /etc/kubernetes/manifests/kube-apiserver.yaml",
        "The connection to the server 127.0.0.12:6443 was refused - did you specify the right host or port?",
        "Cluster \"cluster.local\" set.",
        "node2$ docker stop etcd2\netcd2\n",
        "pod/alpine created",
        "64 bytes from 8.8.8.8: seq=",
        "Successfully assigned default/alpine to node3",
        "5/5 requirements met: PASSED",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    // endpoint status --cluster: the two members left, exactly one of them the leader.
    let status: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| http://127.0.0.1"))
        .collect();
    assert_eq!(status.len(), 2, "{text}");
    assert_eq!(
        status
            .iter()
            .filter(|l| l.contains("|      true |"))
            .count(),
        1,
        "{text}"
    );
    // alpine runs on the worker.
    let row = text.lines().find(|l| l.starts_with("alpine ")).unwrap();
    assert!(row.contains("Running") && row.contains("node3"), "{row}");
    // The files are real files.
    assert!(dir.path().join("node1/tmp/node1.etcd.backup").exists());
    assert!(!dir
        .path()
        .join("node2/etc/kubernetes/manifests/kube-apiserver.yaml")
        .exists());
    cluster.shutdown().await;
}
