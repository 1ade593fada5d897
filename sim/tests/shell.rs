//! The commands a learner types, on a running simulated cluster: files, kubeconfig,
//! a Deployment scaled from 2 to 5 by the controllers, a crashing container, and
//! clear errors for bad input.

use std::time::{Duration, Instant};

use sim::cluster::Cluster;
use sim::shell::{run, Output};

/// Runs `line` on `node` until `done` holds (deadline 30 s).
async fn until(
    cluster: &Cluster,
    node: &str,
    line: &str,
    done: impl Fn(&Output) -> bool,
) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run(cluster, node, line).await;
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "{node}$ {line}\n{out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn rows(out: &Output, prefix: &str) -> usize {
    out.stdout.lines().filter(|l| l.starts_with(prefix)).count()
}

#[tokio::test(start_paused = true)]
async fn a_learners_commands_work_on_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();

    // Files and the kubeconfig.
    let out = run(
        &cluster,
        "node1",
        "cat /etc/kubernetes/manifests/kube-apiserver.yaml",
    )
    .await;
    assert!(
        out.stdout.contains(
            "- --etcd-servers=http://127.0.0.11:2379,http://127.0.0.12:2379,http://127.0.0.13:2379"
        ),
        "{out:?}"
    );
    let out = run(&cluster, "node3", "ls /etc/kubernetes/manifests").await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ""),
        "a worker has no static pods"
    );
    let out = run(&cluster, "node1", "kubectl config view").await;
    assert!(
        out.stdout
            .contains("certificate-authority-data: DATA+OMITTED")
            && out.stdout.contains("token: REDACTED"),
        "{out:?}"
    );
    let out = run(&cluster, "node1", "kubectl config current-context").await;
    assert_eq!(out.stdout, "kubernetes-admin@cluster.local\n");
    let out = run(&cluster, "node1", "docker logs etcd1").await;
    assert!(out.stdout.contains("\"msg\":\"started member\""), "{out:?}");

    // The controller-manager at work: a Deployment, scaled from 2 to 5.
    let out = run(
        &cluster,
        "node1",
        "kubectl create deployment web --image=nginx --replicas=2",
    )
    .await;
    assert_eq!(out.stdout, "deployment.apps/web created\n", "{out:?}");
    let out = until(&cluster, "node1", "kubectl get pods", |o| {
        o.stdout.matches("Running").count() == 2
    })
    .await;
    assert_eq!(rows(&out, "web-"), 2);
    let out = run(
        &cluster,
        "node1",
        "kubectl scale deployment/web --replicas=5",
    )
    .await;
    assert_eq!(out.stdout, "deployment.apps/web scaled\n", "{out:?}");
    let out = until(&cluster, "node1", "kubectl get pods -o wide", |o| {
        o.stdout.matches("Running").count() == 5
    })
    .await;
    assert_eq!(rows(&out, "web-"), 5);
    assert!(
        out.stdout.lines().skip(1).all(|l| l.contains("node3")),
        "workers only:\n{}",
        out.stdout
    );
    let out = run(&cluster, "node1", "kubectl get rs").await;
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("web-") && l.split_whitespace().nth(1) == Some("5")),
        "{out:?}"
    );
    let out = until(&cluster, "node1", "kubectl get deploy web", |o| {
        o.stdout.contains("5/5")
    })
    .await;
    assert!(
        out.stdout
            .starts_with("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{out:?}"
    );

    // A container whose command does not exist keeps crashing, with a back-off.
    run(
        &cluster,
        "node1",
        "kubectl run broken --image=alpine -- nosuchcommand",
    )
    .await;
    let out = until(&cluster, "node1", "kubectl get pod broken", |o| {
        o.stdout.contains("CrashLoopBackOff")
    })
    .await;
    assert!(
        out.stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("broken   0/1     CrashLoopBackOff"),
        "{out:?}"
    );
    let out = run(&cluster, "node1", "kubectl logs broken").await;
    assert!(
        out.stdout
            .contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{out:?}"
    );

    // Bad input: clear messages and exit codes, never a panic.
    let out = run(&cluster, "node1", "kubectl get widgets").await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            1,
            "error: the server doesn't have a resource type \"widgets\"\n"
        )
    );
    let out = run(&cluster, "node1", "kubectl get pod nope").await;
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let out = run(&cluster, "node1", "frobnicate").await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (127, "bash: frobnicate: command not found\n")
    );
    let out = run(&cluster, "node1", "etcdctl get").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("required"), "{out:?}");
    let out = run(&cluster, "node1", "docker stop nosuch").await;
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "Error response from daemon: No such container: nosuch\n")
    );
    let out = run(&cluster, "node1", "rm /etc/nothing").await;
    assert_eq!(
        out.stderr,
        "rm: cannot remove '/etc/nothing': No such file or directory\n"
    );
    cluster.shutdown().await;
}

/// A node's shell reaches the node's files and nothing else: `..` stops at the node's
/// `/` (as in a chroot), and a symbolic link that leads outside the node is refused,
/// for reading and for writing. A file next to the data root and one on another node
/// must survive everything a learner can type on node1.
#[tokio::test(start_paused = true)]
async fn the_shell_cannot_reach_outside_its_node() {
    use std::os::unix::fs::symlink;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cluster = Cluster::create(&data).await.unwrap();
    let node1 = data.join("node1");
    let outside = dir.path().join("x");
    std::fs::write(&outside, "the host's file\n").unwrap();
    let on_node2 = data.join("node2/tmp/x");
    std::fs::write(&on_node2, "node2's file\n").unwrap();

    // `..` past the node's root: node1's `/x`, which does not exist.
    for line in [
        "rm /../../x",
        "rm ../../x",
        "rm ../../../x",
        "rm /root/../../../x",
        "rm /../node2/tmp/x",
        "rm ../../node2/tmp/x",
    ] {
        let out = run(&cluster, "node1", line).await;
        assert_eq!(out.code, 1, "{line}: {out:?}");
        assert!(
            out.stderr.ends_with("No such file or directory\n"),
            "{line}: {out:?}"
        );
    }
    let out = run(&cluster, "node1", "cat /../../x").await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (1, "", "cat: /../../x: No such file or directory\n")
    );
    let out = run(&cluster, "node1", "ls /../..").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l == "etc") && !out.stdout.contains("data"),
        "ls /../.. lists node1's /: {out:?}"
    );
    // Inside the node, `..` works as usual.
    let out = run(
        &cluster,
        "node1",
        "ls /etc/kubernetes/../kubernetes/manifests",
    )
    .await;
    assert!(out.stdout.contains("kube-apiserver.yaml"), "{out:?}");

    // Symbolic links that lead outside: to a file, to a directory, and one whose
    // target does not exist yet (writing through it would create a file outside).
    symlink(&outside, node1.join("tmp/escape")).unwrap();
    symlink("../../..", node1.join("tmp/up")).unwrap();
    symlink(dir.path().join("new"), node1.join("tmp/new")).unwrap();
    let refused = |out: &Output, prefix: &str| {
        out.code != 0
            && out.stdout.is_empty()
            && out.stderr.starts_with(prefix)
            && out.stderr.contains("Permission denied")
            && out.stderr.contains("outside node1")
    };
    for (line, prefix) in [
        ("cat /tmp/escape", "cat: /tmp/escape: "),
        ("cat /tmp/up/x", "cat: /tmp/up/x: "),
        ("rm /tmp/up/x", "rm: cannot remove '/tmp/up/x': "),
        ("ls /tmp/up", "ls: cannot access '/tmp/up': "),
        (
            "etcdctl snapshot status /tmp/escape",
            "Error: /tmp/escape: ",
        ),
        (
            "etcdctl snapshot restore /tmp/escape --data-dir /tmp/restored",
            "Error: /tmp/escape: ",
        ),
        (
            "etcdctl snapshot restore /etc/kubernetes/pki/ca.crt --data-dir /tmp/up/restored",
            "Error: /tmp/up/restored: ",
        ),
        ("etcdctl snapshot save /tmp/new", "Error: /tmp/new: "),
        (
            "etcdctl snapshot save /tmp/up/backup",
            "Error: /tmp/up/backup: ",
        ),
    ] {
        let out = run(&cluster, "node1", line).await;
        assert!(refused(&out, prefix), "{line}: {out:?}");
    }
    // kubectl's kubeconfig, made a link to a file outside: neither read nor written.
    let kubeconfig = node1.join("root/.kube/config");
    std::fs::remove_file(&kubeconfig).unwrap();
    symlink(dir.path().join("kubeconfig"), &kubeconfig).unwrap();
    let out = run(
        &cluster,
        "node1",
        "kubectl config set-cluster evil --server=https://10.0.0.99:6443",
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("outside node1"), "{out:?}");
    assert!(!dir.path().join("kubeconfig").exists());
    // `rm` of a link removes the link (which is on the node), never its target.
    let out = run(&cluster, "node1", "rm /tmp/escape").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(node1.join("tmp/escape").symlink_metadata().is_err());

    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "the host's file\n"
    );
    assert_eq!(
        std::fs::read_to_string(&on_node2).unwrap(),
        "node2's file\n"
    );
    assert!(!dir.path().join("new").exists());
    assert!(!dir.path().join("restored").exists());
    cluster.shutdown().await;
}
