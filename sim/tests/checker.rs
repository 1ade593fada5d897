//! The checker checks meaning, not files: wrong ways to do the assignment, typed into
//! the playground, each fail the requirement they break, saying why — the backup taken
//! too late, etcd stopped on the wrong node, the pod created from the wrong node.

use std::time::Duration;

use sim::cluster::Cluster;
use sim::playground::{Outcome, Playground};

/// Types each line (a `wait N` line lets N seconds of cluster time pass), then
/// `check`; returns the verdict.
async fn after(cluster: &Cluster, lines: &[&str]) -> String {
    let mut p = Playground::new(cluster);
    let node1 = cluster.ip("node1");
    for line in lines {
        if let Some(s) = line.strip_prefix("wait ") {
            cluster
                .clock()
                .sleep(Duration::from_secs(s.parse().unwrap()))
                .await;
            continue;
        }
        let line = line.replace("NODE1", &node1);
        if let Outcome::Output(out) = p.execute(&line).await {
            assert!(out.code == 0 || line.starts_with("ssh"), "{line}: {out:?}");
        }
    }
    match p.execute("check").await {
        Outcome::Output(out) => out.stdout,
        other => panic!("{other:?}"),
    }
}

/// The verdict's line for the requirement containing `about`.
fn line<'a>(verdict: &'a str, about: &str) -> &'a str {
    verdict
        .lines()
        .find(|l| l.contains(about))
        .unwrap_or_else(|| panic!("no {about:?} in\n{verdict}"))
}

async fn cluster(dir: &std::path::Path) -> Cluster {
    let cluster = Cluster::create(dir).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    cluster
}

const SET_CLUSTER: &str = "kubectl config set-cluster cluster.local --server=https://NODE1:6443";
const RUN: &str = "kubectl run alpine --image=alpine -- ping 8.8.8.8";

#[tokio::test(start_paused = true)]
async fn stopping_etcd_on_node3_instead_of_node2_fails_with_the_member_named() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let verdict = after(
        &cluster,
        &[
            "etcdctl snapshot save /tmp/node1.etcd.backup",
            "ssh node2",
            "rm /etc/kubernetes/manifests/kube-apiserver.yaml",
            "systemctl restart kubelet",
            SET_CLUSTER,
            "ssh node3",
            "docker stop etcd3",
            "exit",
            "wait 5",
            RUN,
            "wait 30",
        ],
    )
    .await;
    let etcd = line(&verdict, "etcd on node2 stopped");
    assert!(etcd.starts_with("[FAIL]"), "{verdict}");
    assert!(
        etcd.contains("etcd on node2 is running; the member stopped is etcd3 on node3"),
        "{etcd}"
    );
    // The rest was done right.
    assert_eq!(verdict.matches("[PASS]").count(), 4, "{verdict}");
}

#[tokio::test(start_paused = true)]
async fn a_backup_taken_after_etcd2_stopped_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let verdict = after(
        &cluster,
        &[
            "ssh node2",
            "docker stop etcd2",
            "exit",
            "wait 5",
            "etcdctl snapshot save /tmp/node1.etcd.backup",
            "ssh node2",
            "rm /etc/kubernetes/manifests/kube-apiserver.yaml",
            "systemctl restart kubelet",
            SET_CLUSTER,
            RUN,
            "wait 30",
        ],
    )
    .await;
    let backup = line(&verdict, "etcd backup");
    assert!(backup.starts_with("[FAIL]"), "{verdict}");
    assert!(
        backup.contains("the backup was taken after etcd on node2 stopped (at 09:00:")
            && backup.contains("a lease in it was renewed at 09:00:"),
        "{backup}"
    );
    assert_eq!(verdict.matches("[PASS]").count(), 4, "{verdict}");
}

#[tokio::test(start_paused = true)]
async fn a_backup_taken_after_the_apiserver_went_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let verdict = after(
        &cluster,
        &[
            "ssh node2",
            "rm /etc/kubernetes/manifests/kube-apiserver.yaml",
            "systemctl restart kubelet",
            "exit",
            "wait 5",
            "etcdctl snapshot save /tmp/node1.etcd.backup",
        ],
    )
    .await;
    let backup = line(&verdict, "etcd backup");
    assert!(
        backup.starts_with("[FAIL]")
            && backup.contains(
                "taken after node2's apiserver was stopped: it has no pod kube-apiserver-node2"
            ),
        "{verdict}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_created_from_node1_fails_and_the_audit_log_says_where_from() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let verdict = after(
        &cluster,
        &[
            "etcdctl snapshot save /tmp/node1.etcd.backup",
            "ssh node2",
            "rm /etc/kubernetes/manifests/kube-apiserver.yaml",
            "systemctl restart kubelet",
            SET_CLUSTER,
            "docker stop etcd2",
            "exit",
            RUN,
            "wait 30",
        ],
    )
    .await;
    let pod = line(&verdict, "pod alpine");
    let node1 = cluster.ip("node1");
    assert!(pod.starts_with("[FAIL]"), "{verdict}");
    assert!(
        pod.contains(&format!(
            "pod alpine was created from node1 ({node1}), not node2"
        )),
        "{pod}"
    );
    assert_eq!(verdict.matches("[PASS]").count(), 4, "{verdict}");
    // The learner can read the same log: one line per write, kubectl's among them.
    let log = std::fs::read_to_string(
        dir.path()
            .join("node1/var/log/audit/kube-apiserver-audit.log"),
    )
    .unwrap();
    let create = log
        .lines()
        .find(|l| l.contains("\"verb\":\"create\"") && l.contains("\"name\":\"alpine\""))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        create.contains(&format!("\"sourceIPs\":[\"{node1}\"]"))
            && create
                .contains("\"userAgent\":\"kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9\""),
        "{create}"
    );
    assert!(
        !log.contains("\"resource\":\"leases\""),
        "the policy leaves lease renewals out"
    );
}
