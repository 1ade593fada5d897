//! The kubelet on a running simulated cluster: it tells its containers apart by their
//! labels, and it reports a container it cannot start instead of calling it Running.

use std::time::{Duration, Instant};

use api::types::Pod;
use sim::cluster::{Cluster, Node};
use sim::runtime::{ContainerInfo, State};
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

/// Waits until the node's (new) kubelet has finished `rounds` rounds that knew the
/// apiserver's pods: by then it has decided about every container on the node.
async fn kubelet_synced(node: &Node, rounds: u64) {
    let mut syncs = node.kubelet_syncs().await.expect("the kubelet runs");
    tokio::time::timeout(
        Duration::from_secs(30),
        syncs.wait_for(|s| s.with_api_pods >= rounds),
    )
    .await
    .expect("the kubelet syncs within 30 s")
    .expect("the kubelet is still running");
}

async fn container(node: &Node, name: &str) -> ContainerInfo {
    node.runtime
        .info(name)
        .await
        .unwrap_or_else(|| panic!("no container {name} on {}", node.name()))
}

/// The bug: the kubelet took every `k8s_*_kube-system` container for a static pod's,
/// so it removed a user's pod in kube-system each time it started. Now it reads the
/// container's labels: the pod's container survives the restart untouched (same
/// container, never restarted), and so do the static pods' on a control-plane node.
#[tokio::test(start_paused = true)]
async fn a_user_pod_in_kube_system_survives_a_kubelet_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    let out = run(
        &cluster,
        "node1",
        "kubectl run keeper -n kube-system --image=nginx",
    )
    .await;
    assert_eq!(out.stdout, "pod/keeper created\n", "{out:?}");
    until(
        &cluster,
        "node1",
        "kubectl get pod keeper -n kube-system -o wide",
        |o| o.stdout.contains("Running") && o.stdout.contains("node3"),
    )
    .await;
    let (node1, node3) = (
        cluster.node("node1").unwrap(),
        cluster.node("node3").unwrap(),
    );
    let keeper = container(node3, "k8s_keeper_keeper_kube-system").await;
    let apiserver = "k8s_kube-apiserver_kube-apiserver-node1_kube-system";
    let static_before = container(node1, apiserver).await;
    assert_eq!(
        keeper.labels["annotation.kubernetes.io/config.source"], "api",
        "{keeper:?}"
    );
    assert_eq!(
        static_before.labels["annotation.kubernetes.io/config.source"],
        "file"
    );

    for node in ["node1", "node3"] {
        let out = run(&cluster, node, "systemctl restart kubelet").await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    kubelet_synced(node3, 3).await;
    kubelet_synced(node1, 3).await;

    let after = container(node3, "k8s_keeper_keeper_kube-system").await;
    assert_eq!(after.id, keeper.id, "the same container");
    assert_eq!(after.state, keeper.state, "never stopped: {after:?}");
    assert!(matches!(after.state, State::Running { .. }));
    assert_eq!(after.restarts, 0);
    let static_after = container(node1, apiserver).await;
    assert_eq!(
        (static_after.id, static_after.state),
        (static_before.id, static_before.state)
    );
    let pod: Pod = cluster
        .admin()
        .unwrap()
        .get("kube-system", "keeper")
        .await
        .unwrap();
    assert_eq!(pod.status.phase, "Running");
    cluster.shutdown().await;
}

/// A container the kubelet cannot create — its name is taken by one a user ran with
/// docker — waits with `CreateContainerError` and a Warning event with Docker's words,
/// instead of being reported Running. The kubelet does not touch the user's
/// container (it has none of its labels), and once it is gone, the next attempt after
/// the back-off starts the pod.
#[tokio::test(start_paused = true)]
async fn a_container_that_cannot_be_created_shows_in_get_pods_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    // node3 is the only node a pod can land on; take the name its kubelet will use.
    let out = run(
        &cluster,
        "node3",
        "docker run -d --name k8s_web_web_default alpine ping 10.0.0.1",
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let impostor = container(cluster.node("node3").unwrap(), "k8s_web_web_default").await;

    let out = run(&cluster, "node1", "kubectl run web --image=nginx").await;
    assert_eq!(out.stdout, "pod/web created\n", "{out:?}");
    let out = until(&cluster, "node1", "kubectl get pods", |o| {
        o.stdout.contains("CreateContainerError")
    })
    .await;
    let row = out.stdout.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(
        row.starts_with("web    0/1     CreateContainerError   0 "),
        "{}",
        out.stdout
    );
    let conflict = format!(
        "Error: Conflict. The container name \"/k8s_web_web_default\" is already in use by \
         container \"{}\"",
        impostor.id
    );
    let out = until(&cluster, "node1", "kubectl get events", |o| {
        o.stdout.contains("pod/web")
    })
    .await;
    let event = out
        .stdout
        .lines()
        .find(|l| l.contains("pod/web") && l.contains("Failed"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        event.contains("Warning") && event.contains(&conflict),
        "{event}"
    );
    let out = run(&cluster, "node1", "kubectl describe pod web").await;
    assert!(
        out.stdout.contains("Status:           Pending"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l.contains("Warning")
            && l.contains("Failed")
            && l.contains("kubelet (node3)")
            && l.contains(&conflict)),
        "{}",
        out.stdout
    );
    // The user's container is as it was: the kubelet leaves what is not its own.
    let still = container(cluster.node("node3").unwrap(), "k8s_web_web_default").await;
    assert_eq!((still.id, still.state), (impostor.id, impostor.state));

    // Remove it: the kubelet's next attempt makes the pod's own container.
    let out = run(&cluster, "node3", "docker rm k8s_web_web_default").await;
    assert!(out.stderr.contains("container is running"), "{out:?}");
    let out = run(&cluster, "node3", "docker rm -f k8s_web_web_default").await;
    assert_eq!(out.stdout, "k8s_web_web_default\n", "{out:?}");
    until(&cluster, "node1", "kubectl get pod web", |o| {
        o.stdout.contains("1/1     Running")
    })
    .await;
    let ours = container(cluster.node("node3").unwrap(), "k8s_web_web_default").await;
    assert_eq!(ours.labels["io.kubernetes.pod.name"], "web");
    cluster.shutdown().await;
}
