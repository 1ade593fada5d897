//! The real `etcdctl` 3.4 (Debian's etcd-client; `scripts/test` installs it) against a
//! three-member cluster of ours: each command's output must be what etcd would print.
//! Without etcdctl on PATH each test skips, saying so (see `support/tools.rs`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::tools::{self, ETCDCTL};
use support::Cluster;

/// Runs etcdctl against `endpoint`; returns (exit code, stdout, stderr).
fn etcdctl(endpoint: &str, args: &[&str]) -> (i32, String, String) {
    etcdctl_with_input(endpoint, args, "")
}

fn etcdctl_with_input(endpoint: &str, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new("etcdctl")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=4s")
        .args(args)
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs (the test checked it is on PATH)");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("etcdctl reads its input");
    let out = child.wait_with_output().expect("etcdctl ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `etcdctl put` until it succeeds (the cluster may still be electing).
fn put_eventually(endpoint: &str, key: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = etcdctl(endpoint, &["put", key, value]);
        if code == 0 {
            assert_eq!(out, "OK\n");
            return;
        }
        assert!(Instant::now() < deadline, "put never succeeded: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_etcdctl_works_against_our_cluster() {
    if tools::skip_unless_installed(&ETCDCTL) {
        return;
    }
    let mut cluster = Cluster::start(3).await;
    let (e1, e2, e3) = (cluster.addr(1), cluster.addr(2), cluster.addr(3));
    tokio::task::block_in_place(|| {
        put_eventually(&e1, "/registry/namespaces/default", "ns");
        put_eventually(&e1, "/registry/pods/default/alpine", "pod");

        let (code, out, _) = etcdctl(&e2, &["get", "/registry/pods/default/alpine"]);
        assert_eq!(
            (code, out.as_str()),
            (0, "/registry/pods/default/alpine\npod\n")
        );

        // The course's command: every key, keys only (a blank line follows each key).
        let (_, out, _) = etcdctl(&e3, &["get", "--prefix", "--keys-only", ""]);
        assert_eq!(
            out,
            "/registry/namespaces/default\n\n/registry/pods/default/alpine\n\n"
        );

        let (_, out, _) = etcdctl(
            &e3,
            &["get", "--consistency=s", "/registry/namespaces/default"],
        );
        assert_eq!(out, "/registry/namespaces/default\nns\n");

        // A missing key prints nothing and succeeds.
        assert_eq!(
            etcdctl(&e1, &["get", "missing"]),
            (0, String::new(), String::new())
        );

        // Watch on one member sees a put through another.
        let mut watch = Command::new("etcdctl")
            .args([
                &format!("--endpoints={e3}"),
                "watch",
                "--prefix",
                "/watched/",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl watch starts");
        let mut lines = BufReader::new(watch.stdout.take().expect("piped")).lines();
        // The watch is open once a put made after it shows up; retry the put until then.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let seen: Vec<String> = (0..3).map_while(|_| lines.next()?.ok()).collect();
            let _ = tx.send(seen);
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let seen = loop {
            put_eventually(&e1, "/watched/a", "1");
            if let Ok(seen) = rx.recv_timeout(Duration::from_millis(500)) {
                break seen;
            }
            assert!(Instant::now() < deadline, "the watch never saw the put");
        };
        let _ = watch.kill();
        let _ = watch.wait();
        assert_eq!(seen, ["PUT", "/watched/a", "1"]);

        // An interactive compare-and-swap.
        let txn = "value(\"/registry/namespaces/default\") = \"ns\"\n\nput /registry/namespaces/default ns2\n\nput failed yes\n\n";
        let (code, out, _) = etcdctl_with_input(&e2, &["txn"], txn);
        assert_eq!((code, out.as_str()), (0, "SUCCESS\n\nOK\n"));
        let (code, out, _) = etcdctl_with_input(&e2, &["txn"], txn);
        assert_eq!((code, out.as_str()), (0, "FAILURE\n\nOK\n"));

        let (_, out, _) = etcdctl(&e1, &["del", "--prefix", "/watched/"]);
        assert_eq!(out, "1\n");

        // member list: ID, started, name, peer URLs, client URLs, learner. Each member
        // announces its client URL through Raft after it starts; wait until all have.
        let expected: Vec<String> = (1..=3)
            .map(|id| {
                let m = cluster.info.member(id).expect("a member");
                let urls = (&m.peer_urls[0], &m.client_urls[0]);
                format!(
                    "{:x}, started, {}, {}, {}, false",
                    m.id, m.name, urls.0, urls.1
                )
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, out, _) = etcdctl(&e1, &["member", "list"]);
            let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
            lines.sort();
            let mut want = expected.clone();
            want.sort();
            if lines == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member list:\n{out}\nwanted:\n{want:#?}"
            );
        }
        let (_, out, _) = etcdctl(&e1, &["member", "list", "-w", "table"]);
        assert!(
            out.contains("| STATUS  | NAME  |") && out.contains("| IS LEARNER |"),
            "{out}"
        );

        // Every member reports itself; exactly one of them is the leader.
        let mut leaders = 0;
        for e in [&e1, &e2, &e3] {
            let (code, out, _) = etcdctl(e, &["endpoint", "status"]);
            assert_eq!(code, 0, "{out}");
            let fields: Vec<&str> = out.trim_end().split(", ").collect();
            assert_eq!(fields[0], e.as_str());
            leaders += usize::from(fields[4] == "true");
        }
        assert_eq!(leaders, 1);
        // With --cluster, etcdctl asks the member list for every client URL and dials each
        // by its URL, sending `http://…` as the HTTP/2 :authority (server/authority.rs).
        let (code, out, err) = etcdctl(&e1, &["endpoint", "status", "--cluster"]);
        assert_eq!(code, 0, "{err}");
        let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split(", ").collect()).collect();
        assert_eq!(rows.len(), 3, "{out}");
        for row in &rows {
            assert!(row[0].starts_with("http://127.0.0.1:"), "{out}");
        }
        assert_eq!(rows.iter().filter(|r| r[4] == "true").count(), 1, "{out}");
        let (code, _, err) = etcdctl(&e1, &["endpoint", "health", "--cluster"]);
        assert_eq!(code, 0, "{err}");
        let healthy = err
            .lines()
            .filter(|l| l.contains("is healthy: successfully committed proposal"));
        assert_eq!(healthy.count(), 3, "{err}");
    });

    // Two members stop: a put fails with a timeout error instead of hanging; after one
    // restarts, puts work again.
    cluster.stop(2).await;
    cluster.stop(3).await;
    tokio::task::block_in_place(|| {
        let started = Instant::now();
        let (code, _, err) = etcdctl(&e1, &["put", "k", "v"]);
        assert_ne!(code, 0);
        assert!(
            err.contains("request timed out")
                || err.contains("context deadline exceeded")
                || err.contains("no leader")
                || err.contains("leader changed"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    });
    cluster.restart(2).await;
    tokio::task::block_in_place(|| put_eventually(&e1, "k", "v"));
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_etcdctl_leases() {
    if tools::skip_unless_installed(&ETCDCTL) {
        return;
    }
    let mut cluster = Cluster::start(3).await;
    let (e1, e2) = (cluster.addr(1), cluster.addr(2));
    tokio::task::block_in_place(|| {
        put_eventually(&e1, "warm", "up");
        let (code, out, _) = etcdctl(&e1, &["lease", "grant", "60"]);
        assert_eq!(code, 0);
        // "lease 0d34a210b0a43d00 granted with TTL(60s)"
        let id = out.split_whitespace().nth(1).expect("an ID").to_string();
        assert_eq!(out, format!("lease {id} granted with TTL(60s)\n"));
        let (_, out, _) = etcdctl(&e1, &["put", &format!("--lease={id}"), "/leased", "v"]);
        assert_eq!(out, "OK\n");
        let (_, out, _) = etcdctl(&e2, &["lease", "timetolive", &id, "--keys"]);
        assert!(
            out.starts_with(&format!("lease {id} granted with TTL(60s), remaining("))
                && out.ends_with("attached keys([/leased])\n"),
            "{out}"
        );
        let (_, out, _) = etcdctl(&e1, &["lease", "list"]);
        assert_eq!(out, format!("found 1 leases\n{id}\n"));
        let (_, out, _) = etcdctl(&e1, &["lease", "keep-alive", "--once", &id]);
        assert_eq!(out, format!("lease {id} keepalived with TTL(60)\n"));
        let (_, out, _) = etcdctl(&e1, &["lease", "revoke", &id]);
        assert_eq!(out, format!("lease {id} revoked\n"));
        assert_eq!(
            etcdctl(&e2, &["get", "/leased"]).1,
            "",
            "the key went with the lease"
        );
        let (_, out, _) = etcdctl(&e1, &["lease", "timetolive", &id]);
        assert_eq!(out, format!("lease {id} already expired\n"));

        // A short lease that nobody keeps alive expires, and its key with it.
        let (_, out, _) = etcdctl(&e1, &["lease", "grant", "1"]);
        let short = out.split_whitespace().nth(1).expect("an ID").to_string();
        etcdctl(&e1, &["put", &format!("--lease={short}"), "/short", "v"]);
        assert_eq!(
            etcdctl(&e2, &["get", "/short", "--print-value-only"]).1,
            "v\n"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while !etcdctl(&e2, &["get", "/short"]).1.is_empty() {
            assert!(Instant::now() < deadline, "the lease never expired");
        }
        let (code, _, err) = etcdctl(&e1, &["put", "--lease=123", "/x", "v"]);
        assert_ne!(code, 0);
        assert!(
            err.contains("etcdserver: requested lease not found"),
            "{err}"
        );
    });
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}

/// The version check reads every banner the tools print (kubectl's changed in 1.28).
#[test]
fn tool_versions_are_read_from_their_banners() {
    let v = tools::first_version;
    assert_eq!(
        v("Client Version: v1.32.0\nKustomize Version: v5.5.0\n"),
        Some((1, 32))
    );
    assert_eq!(
        v("Client Version: version.Info{Major:\"1\", Minor:\"20\", GitVersion:\"v1.20.11\"}"),
        Some((1, 20))
    );
    assert_eq!(
        v("etcdctl version: 3.4.30\nAPI version: 3.4\n"),
        Some((3, 4))
    );
    assert_eq!(v("no version here."), None);
}
