//! The playground as a learner types into it: the assignment done line by line, with
//! `ssh` between nodes, then `check`; and a wrong way to do it, which `check` fails
//! with the reason. (The terminal around it, line editing and history, is the
//! example's; these drive the lines it hands over.)

use std::time::Duration;

use sim::cluster::Cluster;
use sim::playground::{Outcome, Playground};

/// Types `line` at the prompt and returns what it printed.
async fn typed(p: &mut Playground<'_>, line: &str) -> (String, i32) {
    match p.execute(line).await {
        Outcome::Output(out) => (out.stdout + &out.stderr, out.code),
        Outcome::Leave => ("(left)".into(), 0),
    }
}

#[tokio::test(start_paused = true)]
async fn the_assignment_typed_into_the_playground_passes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    let mut p = Playground::new(&cluster);
    assert_eq!(p.prompt(), "root@node1:~# ");
    let (hint, _) = typed(&mut p, "hint").await;
    assert!(hint.contains("backup"), "{hint}");
    assert!(
        !hint.contains("etcdctl snapshot save"),
        "a hint, not the command: {hint}"
    );

    typed(&mut p, "etcdctl snapshot save /tmp/node1.etcd.backup").await;
    let (out, code) = typed(&mut p, "ssh node2").await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(p.prompt(), "root@node2:~# ");
    assert_eq!(typed(&mut p, "hostname").await.0, "node2\n");
    typed(&mut p, "rm /etc/kubernetes/manifests/kube-apiserver.yaml").await;
    typed(&mut p, "systemctl restart kubelet").await;
    let node1 = cluster.ip("node1");
    typed(
        &mut p,
        &format!("kubectl config set-cluster cluster.local --server=https://{node1}:6443"),
    )
    .await;
    typed(&mut p, "docker stop etcd2").await;
    let (out, code) = typed(&mut p, "kubectl run alpine --image=alpine -- ping 8.8.8.8").await;
    assert_eq!((out.as_str(), code), ("pod/alpine created\n", 0));
    // The learner looks around while the pod starts (time passes on the cluster).
    cluster.clock().sleep(Duration::from_secs(30)).await;
    let (out, _) = typed(&mut p, "kubectl get pods -o wide").await;
    assert!(out.contains("Running") && out.contains("node3"), "{out}");
    let (out, _) = typed(&mut p, "exit").await;
    assert!(out.contains("Connection to node2 closed."), "{out}");
    assert_eq!(p.prompt(), "root@node1:~# ");

    let (verdict, code) = typed(&mut p, "check").await;
    assert_eq!(code, 0, "{verdict}");
    assert!(
        verdict.contains("5/5 requirements met: PASSED"),
        "{verdict}"
    );
    let (history, _) = typed(&mut p, "history").await;
    assert!(history.contains("    3  ssh node2"), "{history}");
    assert_eq!(typed(&mut p, "exit").await.0, "(left)");
}

/// `docker stop` of the apiserver is not stopping it: the kubelet starts the static
/// pod's container again, and `check` says so.
#[tokio::test(start_paused = true)]
async fn stopping_the_apiserver_with_docker_stop_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    let mut p = Playground::new(&cluster);
    typed(&mut p, "ssh node2").await;
    typed(
        &mut p,
        "docker stop k8s_kube-apiserver_kube-apiserver-node2_kube-system",
    )
    .await;
    cluster.clock().sleep(Duration::from_secs(30)).await;
    let (verdict, code) = typed(&mut p, "check").await;
    assert_eq!(code, 1, "{verdict}");
    let line = verdict
        .lines()
        .find(|l| l.contains("kube-apiserver stopped on node2"))
        .unwrap_or_else(|| panic!("{verdict}"));
    assert!(line.starts_with("[FAIL]"), "{verdict}");
    let (status, _) = typed(&mut p, "status").await;
    assert!(
        status.contains("[todo] kube-apiserver stopped on node2"),
        "{status}"
    );
    let (out, _) = typed(&mut p, "ip a").await;
    assert!(
        out.contains(&format!("inet {}/24", cluster.ip("node2"))),
        "{out}"
    );
    let (out, code) = typed(&mut p, "cp a b").await;
    assert_eq!(code, 127);
    assert!(
        out.contains("a real node has it; this playground does not"),
        "{out}"
    );
    let (out, code) = typed(&mut p, "frobnicate").await;
    assert_eq!(
        (out.trim(), code),
        ("bash: frobnicate: command not found", 127)
    );
    let (out, code) = typed(&mut p, "ssh node9").await;
    assert_eq!(code, 255, "{out}");
    assert!(out.contains("Could not resolve hostname node9"), "{out}");
}
