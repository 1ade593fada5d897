//! The playground as a learner types into it: the assignment done line by line, with
//! `ssh` between nodes, then `check`; and a wrong way to do it, which `check` fails
//! with the reason. (The terminal around it, line editing and history, is the
//! example's; these drive the lines it hands over.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sim::cluster::Cluster;
use sim::playground::{Outcome, Playground};

/// Types `line` at the prompt and returns what it printed.
async fn typed(p: &mut Playground<'_>, line: &str) -> (String, i32) {
    match p.execute(line).await {
        Outcome::Output(out) => (out.stdout + &out.stderr, out.code),
        Outcome::Leave => ("(left)".into(), 0),
        Outcome::Reset => ("(reset)".into(), 0),
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
    // What needs a real container, the apiserver refuses in plain words.
    for line in [
        "kubectl exec -it alpine -- sh",
        "kubectl cp alpine:/etc/hosts /tmp/h",
    ] {
        let (out, code) = typed(&mut p, line).await;
        assert_eq!(code, 1, "{out}");
        assert!(
            out.starts_with(
                "Error from server (BadRequest): miniplane runs no real containers: exec"
            ),
            "{out}"
        );
    }
    let (out, _) = typed(&mut p, "exit").await;
    assert!(out.contains("Connection to node2 closed."), "{out}");
    assert_eq!(p.prompt(), "root@node1:~# ");

    let (verdict, code) = typed(&mut p, "check").await;
    assert_eq!(code, 0, "{verdict}");
    assert!(
        verdict.contains("5/5 requirements met: PASSED"),
        "{verdict}"
    );
    // The hand-in: the verdict and what was typed, saved in the data root.
    assert!(
        verdict.contains("What was typed:\n  hint\n  etcdctl snapshot save"),
        "{verdict}"
    );
    let handin = std::fs::read_to_string(dir.path().join(sim::playground::HANDIN)).unwrap();
    assert!(
        handin.contains("PASSED") && handin.contains("  docker stop etcd2\n"),
        "{handin}"
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
    let (out, code) = typed(&mut p, "vi /root/.kube/config").await;
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

/// What a streaming command printed so far.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<String>>);

impl Screen {
    fn writer(&self) -> impl FnMut(&str) + Send + 'static {
        let screen = self.0.clone();
        move |text| screen.lock().unwrap().push_str(text)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Waits, in the cluster's time, until the screen shows `what` (60 s at most).
    async fn shows(&self, cluster: &Cluster, what: &str) {
        let clock = cluster.clock();
        let deadline = clock.now() + Duration::from_secs(60);
        while !self.text().contains(what) {
            assert!(
                clock.now() < deadline,
                "the screen never showed {what:?}:\n{}",
                self.text()
            );
            clock.sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `kubectl get pods -w` prints the table, then a row for each change, and runs until
/// Ctrl-C (the terminal drops the command's future); the prompt then works as before.
#[tokio::test(start_paused = true)]
async fn a_watch_prints_each_change_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    let mut p = Playground::new(&cluster);
    let screen = Screen::default();
    {
        let watch = p.execute_to("kubectl get pods -w", screen.writer(), screen.writer());
        let meanwhile = async {
            cluster.clock().sleep(Duration::from_secs(2)).await;
            let out = sim::shell::run(&cluster, "node1", "kubectl run web --image=nginx").await;
            assert_eq!(out.code, 0, "{out:?}");
            screen.shows(&cluster, "Running").await;
        };
        tokio::select! {
            biased;
            _ = meanwhile => {}
            outcome = watch => panic!("the watch ended by itself: {outcome:?}"),
        }
        // Ctrl-C: the future is dropped here.
    }
    let text = screen.text();
    // An empty namespace says so (on stderr, at once), and the watch goes on; the
    // first row comes with the header.
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("No resources found in default namespace."),
        "{text}"
    );
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("STATUS"),
        "{text}"
    );
    assert!(
        text.lines().filter(|l| l.starts_with("web ")).count() >= 2,
        "a row per change (Pending, then Running):\n{text}"
    );
    assert_eq!(typed(&mut p, "hostname").await.0, "node1\n");

    // A pipe that has what it wants ends the watch by itself, as SIGPIPE would.
    let screen = Screen::default();
    let ended = cluster
        .clock()
        .timeout(
            Duration::from_secs(60),
            p.execute_to(
                "kubectl get pods -w | head -n 2",
                screen.writer(),
                screen.writer(),
            ),
        )
        .await;
    assert!(ended.is_ok(), "head -n 2 should close the watch");
    assert_eq!(screen.text().lines().count(), 2, "{}", screen.text());

    // Output through a pipe, for the playground's own commands too.
    // (As in bash, the history has the line being run too.)
    let (out, _) = typed(&mut p, "history | grep head").await;
    assert_eq!(out.lines().count(), 2, "{out}");
    let (out, code) = typed(&mut p, "kubectl get pods | grep nginx-not-here").await;
    assert_eq!((out.as_str(), code), ("", 1), "grep found nothing: exit 1");
}

/// `kubectl logs -f` follows the container's log and `etcdctl watch` prints the
/// writes under a prefix, each until Ctrl-C.
#[tokio::test(start_paused = true)]
async fn logs_follow_and_etcdctl_watch_stream_until_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    let mut p = Playground::new(&cluster);
    let screen = Screen::default();
    {
        let watch = p.execute_to(
            "etcdctl watch --prefix /registry/pods/default/",
            screen.writer(),
            screen.writer(),
        );
        let meanwhile = async {
            cluster.clock().sleep(Duration::from_secs(1)).await;
            let out = sim::shell::run(
                &cluster,
                "node1",
                "kubectl run alpine --image=alpine -- ping 8.8.8.8",
            )
            .await;
            assert_eq!(out.code, 0, "{out:?}");
            screen
                .shows(&cluster, "PUT\n/registry/pods/default/alpine\n")
                .await;
        };
        tokio::select! {
            biased;
            _ = meanwhile => {}
            outcome = watch => panic!("the watch ended by itself: {outcome:?}"),
        }
    }
    let value = screen.text();
    assert!(
        value.contains("\"kind\":\"Pod\""),
        "the value is the pod's JSON: {value}"
    );

    let screen = Screen::default();
    {
        let follow = p.execute_to("kubectl logs -f alpine", screen.writer(), screen.writer());
        let meanwhile = async {
            screen.shows(&cluster, "seq=").await;
            let first = screen.text().lines().count();
            // ping writes a line a second: ten more seconds, more lines.
            cluster.clock().sleep(Duration::from_secs(10)).await;
            let later = screen.text().lines().count();
            assert!(
                later >= first + 5,
                "the log grows: {first} then {later} lines"
            );
        };
        tokio::select! {
            biased;
            _ = meanwhile => {}
            outcome = follow => panic!("logs -f ended by itself: {outcome:?}\n{}", screen.text()),
        }
    }
    assert!(screen.text().contains("PING 8.8.8.8"), "{}", screen.text());
    assert_eq!(typed(&mut p, "reset").await.0, "(reset)");
}

/// `systemctl stop kubelet` as on a real node: the node goes NotReady once the
/// node-monitor grace period (50 s) has passed without a heartbeat, its containers keep
/// running (nothing stops them), and `systemctl start kubelet` brings it back.
#[tokio::test(start_paused = true)]
async fn stopping_a_kubelet_makes_its_node_not_ready_and_leaves_its_pods_running() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    let mut p = Playground::new(&cluster);
    typed(&mut p, "kubectl run alpine --image=alpine -- ping 8.8.8.8").await;
    cluster.clock().sleep(Duration::from_secs(20)).await;
    let (out, _) = typed(&mut p, "kubectl get pods -o wide").await;
    assert!(out.contains("Running") && out.contains("node3"), "{out}");
    typed(&mut p, "ssh node3").await;
    let (out, code) = typed(&mut p, "systemctl stop kubelet").await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        typed(&mut p, "systemctl is-active kubelet").await,
        ("inactive\n".into(), 3)
    );
    let (status, code) = typed(&mut p, "systemctl status kubelet").await;
    assert_eq!(code, 3, "{status}");
    assert!(
        status.starts_with("○ kubelet.service - Kubernetes Kubelet Server\n")
            && status.contains("Active: inactive (dead) since ")
            && status.contains("; 0s ago"),
        "{status}"
    );
    // node3 is a worker: no admin kubeconfig there. kubectl from node1.
    typed(&mut p, "exit").await;
    // Within the grace period the node is still Ready: nobody has noticed yet.
    cluster.clock().sleep(Duration::from_secs(20)).await;
    let (out, _) = typed(&mut p, "kubectl get nodes | grep node3").await;
    assert!(out.contains(" Ready "), "{out}");
    cluster.clock().sleep(Duration::from_secs(50)).await;
    let (out, _) = typed(&mut p, "kubectl get nodes | grep node3").await;
    assert!(out.contains("NotReady"), "{out}");
    typed(&mut p, "ssh node3").await;
    let (out, _) = typed(&mut p, "docker ps | grep alpine").await;
    assert!(out.contains("Up "), "the pod's container runs on: {out}");
    typed(&mut p, "systemctl start kubelet").await;
    typed(&mut p, "exit").await;
    let clock = cluster.clock();
    let deadline = clock.now() + Duration::from_secs(60);
    loop {
        let (out, _) = typed(&mut p, "kubectl get nodes | grep node3").await;
        if out.contains(" Ready ") {
            break;
        }
        assert!(clock.now() < deadline, "node3 never came back: {out}");
        clock.sleep(Duration::from_secs(1)).await;
    }
}

/// Tab on a node: paths on that node, object names from the apiserver, container
/// names from the node's runtime.
#[tokio::test(start_paused = true)]
async fn tab_completes_paths_object_names_and_containers_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::create(dir.path()).await.unwrap();
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    let mut p = Playground::new(&cluster);
    assert_eq!(
        p.complete("cat /etc/kub").await,
        (4, vec!["/etc/kubernetes/".to_string()])
    );
    assert_eq!(p.complete("cat ~/.ku").await.1, ["~/.kube/"]);
    assert_eq!(
        p.complete("ls /etc/kubernetes/manifests/kube-s").await.1,
        ["/etc/kubernetes/manifests/kube-scheduler.yaml"]
    );
    typed(&mut p, "etcdctl snapshot save /tmp/node1.etcd.backup").await;
    assert_eq!(
        p.complete("etcdctl snapshot status /tmp/no").await.1,
        ["/tmp/node1.etcd.backup"]
    );
    typed(&mut p, "kubectl run alpine --image=alpine -- ping 8.8.8.8").await;
    assert_eq!(
        p.complete("kubectl get pods al").await,
        (17, vec!["alpine".to_string()])
    );
    assert_eq!(p.complete("kubectl logs a").await.1, ["alpine"]);
    assert_eq!(
        p.complete("kubectl describe nodes node").await.1,
        ["node1", "node2", "node3"]
    );
    typed(&mut p, "ssh node2").await;
    assert_eq!(p.complete("docker stop et").await.1, ["etcd2"]);
    // The fixed words still complete, and a node without the apiserver offers no names.
    assert_eq!(p.complete("kubectl get no").await.1, ["nodes"]);
    typed(&mut p, "rm /etc/kubernetes/manifests/kube-apiserver.yaml").await;
    typed(&mut p, "systemctl restart kubelet").await;
    assert!(p.complete("kubectl get pods al").await.1.is_empty());
}
