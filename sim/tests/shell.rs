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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
            "- --etcd-servers=http://10.0.0.11:2379,http://10.0.0.12:2379,http://10.0.0.13:2379"
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
