//! The real `kubectl` and `etcdctl` against a simulated cluster gone live: made in
//! virtual time, then moved onto this machine's loopback addresses with time following
//! the wall clock (what `--keep` does). Every address the cluster advertises — the
//! kubeconfig's server, node InternalIPs, etcd's client and peer URLs in `member
//! list` — must be one the real tools reach here. Without kubectl or etcdctl on PATH
//! the test skips, saying so.

use std::process::Command;
use std::time::{Duration, Instant};

use sim::cluster::{free_subnet, Cluster, Options};

/// Finding kubectl, or skipping visibly: one copy for the workspace's tests.
#[path = "../../kvstore/tests/support/tools.rs"]
mod tools;

struct Kubectl {
    kubeconfig: std::path::PathBuf,
    home: std::path::PathBuf,
}

/// Runs `program` off the async runtime (the cluster serves it on this thread);
/// returns (exit code, stdout, stderr).
async fn tool(
    program: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, std::path::PathBuf)>,
) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(program)
            .args(&args)
            .envs(env)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (the test checked it is on PATH): {e}"));
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(out.stdout),
            text(out.stderr),
        )
    })
    .await
    .unwrap()
}

impl Kubectl {
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let env = vec![
            ("KUBECONFIG", self.kubeconfig.clone()),
            ("HOME", self.home.clone()),
        ];
        tool("kubectl", args.iter().map(|a| a.to_string()).collect(), env).await
    }

    /// Runs until `done` holds (deadline 30 s).
    async fn until(&self, args: &[&str], done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, out, err) = self.run(args).await;
            if done(&out) {
                return out;
            }
            assert!(Instant::now() < deadline, "kubectl {args:?}: {out}{err}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `etcdctl ARGS` off the runtime: (exit code, stdout, stderr).
async fn etcdctl(args: Vec<String>) -> (i32, String, String) {
    tool("etcdctl", args, vec![("ETCDCTL_API", "3".into())]).await
}

#[tokio::test(start_paused = true)]
async fn the_real_kubectl_and_etcdctl_work_against_the_cluster_gone_live() {
    if tools::skip_unless_installed(&tools::KUBECTL)
        || tools::skip_unless_installed(&tools::ETCDCTL)
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A subnet of its own, so tests running at once do not meet.
    let subnet = free_subnet((std::process::id() % 200) as u8 + 20).expect("a free subnet");
    let options = Options {
        subnet,
        ..Options::default()
    };
    let cluster = Cluster::create_with(&dir.path().join("root"), options)
        .await
        .unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    cluster.go_live().unwrap();

    // etcd: the member list's URLs are the nodes' loopback addresses, and etcdctl
    // reaches every member at them (`--cluster` dials the advertised client URLs).
    let ips = cluster.ips();
    let node1 = format!("--endpoints=http://{}:2379", ips[0]);
    let (code, out, err) = etcdctl(vec![node1.clone(), "member".into(), "list".into()]).await;
    assert_eq!(code, 0, "{err}");
    for ip in &ips {
        assert!(
            out.contains(&format!("http://{ip}:2380, http://{ip}:2379")),
            "{out}"
        );
    }
    let status = vec![
        node1,
        "endpoint".into(),
        "status".into(),
        "--cluster".into(),
    ];
    let (code, out, err) = etcdctl(status).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), 3, "{out}{err}");
    assert_eq!(
        out.matches(", true, false, ").count(),
        1,
        "one leader: {out}"
    );

    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.host_kubeconfig()).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let k = Kubectl { kubeconfig, home };

    let (code, out, err) = k.run(&["get", "nodes", "-o", "wide"]).await;
    assert_eq!(code, 0, "{err}");
    for (node, ip) in ["node1", "node2", "node3"].iter().zip(&ips) {
        let row = out
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(row.split_whitespace().nth(1) == Some("Ready"), "{out}");
        assert!(row.contains(ip.as_str()), "InternalIP {ip}: {out}");
    }
    let (code, out, err) = k
        .run(&["run", "pinger", "--image=alpine", "--", "ping", "8.8.8.8"])
        .await;
    assert_eq!((code, out.trim()), (0, "pod/pinger created"), "{err}");
    k.until(
        &["get", "pod", "pinger", "-o", "jsonpath={.status.phase}"],
        |o| o == "Running",
    )
    .await;
    let out = k
        .until(&["get", "pods", "-o", "wide"], |o| o.contains("pinger"))
        .await;
    let row = out.lines().find(|l| l.starts_with("pinger")).unwrap();
    assert!(
        row.contains("1/1") && row.contains("Running") && row.contains("node3"),
        "{out}"
    );
    let logs = k
        .until(&["logs", "pinger"], |o| o.contains("64 bytes from 8.8.8.8"))
        .await;
    assert!(
        logs.starts_with("PING 8.8.8.8 (8.8.8.8): 56 data bytes"),
        "{logs}"
    );
    // What needs real containers says plainly that this is the simulator (issue 16,
    // item 10), through kubectl's own error path (a websocket try, then SPDY).
    for (args, what) in [
        (&["exec", "pinger", "--", "ls"][..], "exec (and kubectl cp"),
        (
            &["cp", "pinger:/etc/hosts", "/tmp/x"][..],
            "exec (and kubectl cp",
        ),
        (&["attach", "pinger"][..], "attach is not supported"),
        (
            &["port-forward", "pod/pinger", "18080:80"][..],
            "port-forward is not supported",
        ),
    ] {
        let (code, out, err) = k.run(args).await;
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(
            err.contains("miniplane runs no real containers: ") && err.contains(what),
            "{args:?}: {err}"
        );
    }
    let (code, out, err) = k.run(&["delete", "pod", "pinger"]).await;
    assert_eq!((code, out.trim()), (0, "pod \"pinger\" deleted"), "{err}");
    let (code, _, err) = k.run(&["get", "pod", "pinger"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("NotFound"), "{err}");
    cluster.shutdown().await;
}
