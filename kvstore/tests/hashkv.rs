//! `Maintenance.HashKV` (`etcdctl endpoint hashkv`): the history checksum members are
//! compared by.
//!
//! - Against the real etcd 3.4 (`etcd` on PATH): one etcd and one member of ours get
//!   the same requests from the real `etcdctl` — puts, deletes, a transaction with
//!   several changes, a prefix delete, compactions (one at a revision holding
//!   tombstones) — and must print the same hash at every revision, the same
//!   compaction point and the same errors. Skipped, with a line saying so, where
//!   etcd or etcdctl is not installed.
//! - Among our own members: three members that applied the same log (one of them
//!   caught up after a restart) agree; a member whose history differs disagrees,
//!   even when its current keys and values are identical.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::{
    maintenance_client::MaintenanceClient, CompactionRequest, HashKvRequest, RangeRequest,
    StatusRequest,
};

mod support;
use support::{put_eventually, Cluster};

/// The real etcd, found on PATH (Debian's `etcd-server` puts 3.4 in /usr/bin).
const REAL_ETCD: &str = "etcd";

/// A server process, killed (by its PID, through its handle) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now (the OS picks it).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts a single-member cluster of `binary` (etcd's flags); returns it and its
/// client address.
fn start_single(binary: &str, name: &str, dir: &Path) -> (Server, String) {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(binary)
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", dir.join(name).display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster={name}={peer_url}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (Server(child), format!("127.0.0.1:{client}"))
}

/// Runs etcdctl; returns (exit code, stdout, the stderr line that starts `Error:`).
fn etcdctl(endpoint: &str, args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=10s")
        .args(args)
        .env("ETCDCTL_API", "3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The warnings before it carry timestamps; the final line is what etcdctl decided.
    let error = stderr
        .lines()
        .find(|l| l.starts_with("Error:"))
        .unwrap_or("")
        .to_string();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        error,
    )
}

/// Waits until a put goes through (the member is elected and serving).
fn wait_until_serving(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while etcdctl(endpoint, &["endpoint", "health"], "").0 != 0 {
        assert!(Instant::now() < deadline, "{endpoint} never became healthy");
        std::thread::sleep(Duration::from_millis(100)); // polling a condition
    }
}

/// The number after `"name":` in etcdctl's JSON output (absent: 0, as protobuf's
/// JSON leaves zero fields out).
fn json_number(json: &str, name: &str) -> i64 {
    let pattern = format!("\"{name}\":");
    let Some(start) = json.find(&pattern) else {
        return 0;
    };
    let digits: String = json[start + pattern.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().unwrap()
}

/// What `endpoint hashkv` says at `revision`: exit code, the hash, compaction point
/// and header revision — or the error.
fn hashkv(endpoint: &str, revision: i64) -> (i32, i64, i64, i64, String) {
    let rev = format!("--rev={revision}");
    let (code, out, error) = etcdctl(endpoint, &["endpoint", "hashkv", &rev, "-w", "json"], "");
    (
        code,
        json_number(&out, "hash"),
        json_number(&out, "compact_revision"),
        json_number(&out, "revision"),
        error,
    )
}

#[test]
fn our_hashkv_equals_real_etcds_for_the_same_requests() {
    use support::tools::{skip_unless_installed, ETCD, ETCDCTL};
    if skip_unless_installed(&ETCD) || skip_unless_installed(&ETCDCTL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_etcd, real) = start_single(REAL_ETCD, "real", dir.path());
    let (_ours, ours) = start_single(env!("CARGO_BIN_EXE_etcd"), "ours", dir.path());
    wait_until_serving(&real);
    wait_until_serving(&ours);

    let both = |args: &[&str], input: &str| {
        let r = etcdctl(&real, args, input);
        let o = etcdctl(&ours, args, input);
        assert_eq!(
            o, r,
            "etcdctl {args:?}: ours (left) differs from etcd (right)"
        );
        assert_eq!(r.0, 0, "etcdctl {args:?} failed: {}", r.2);
    };
    // Every revision from `from` to the current one, and 0 (the current one).
    let same_hashes = |from: i64, to: i64, step: &str| {
        for rev in (from..=to).chain([0]) {
            let (r, o) = (hashkv(&real, rev), hashkv(&ours, rev));
            assert_eq!(
                o, r,
                "{step}: hashkv --rev={rev}: ours (left), etcd (right)"
            );
            assert_eq!(r.0, 0, "{step}: hashkv --rev={rev}: {}", r.4);
        }
    };

    both(&["put", "a", "1"], ""); // rev 2
    both(&["put", "b", "2"], ""); // 3
    both(&["put", "a", "3"], ""); // 4
    both(&["del", "b"], ""); // 5: a tombstone
                             // 6: three changes at one revision, sub-revisions 0, 1, 2 (a delete among them).
    let txn = "version(\"a\") = \"2\"\n\nput c 4\nput d 5\ndel a\n\nput x 0\n\n";
    both(&["txn"], txn);
    both(&["put", "e", "6"], ""); // 7
    both(&["put", "dir/1", "x"], ""); // 8
    both(&["put", "dir/2", "y"], ""); // 9
    both(&["del", "--prefix", "dir/"], ""); // 10: two tombstones, subs 0 and 1
    same_hashes(1, 10, "history");

    // A compaction at a revision that holds tombstones: etcd drops them, we keep them
    // (for watches); the hash must not see the difference.
    both(&["compaction", "--physical", "10"], "");
    same_hashes(11, 10, "compacted at 10");
    let compacted = (hashkv(&real, 10), hashkv(&ours, 10));
    assert_eq!(compacted.1, compacted.0);
    assert_eq!(
        compacted.0 .4,
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    let future = (hashkv(&real, 11), hashkv(&ours, 11));
    assert_eq!(future.1, future.0);
    assert_eq!(
        future.0 .4,
        "Error: etcdserver: mvcc: required revision is a future revision"
    );

    both(&["put", "f", "7"], ""); // 11
    both(&["put", "c", "8"], ""); // 12
    same_hashes(11, 12, "after the compaction");
    // 13: no key left alive, so etcd's "keep" is empty and everything the compaction
    // left at or below 10 counts.
    both(&["del", "--prefix", ""], "");
    same_hashes(11, 13, "all deleted");
    both(&["compaction", "--physical", "12"], "");
    same_hashes(13, 13, "compacted at 12");
    both(&["compaction", "--physical", "13"], "");
    same_hashes(14, 13, "compacted at 13");
}

/// Polls until every member reports the same revision and applied index.
async fn converged(cluster: &Cluster, ids: &[u64]) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut seen = Vec::new();
        for &id in ids {
            let Ok(mut m) = MaintenanceClient::connect(cluster.endpoint(id)).await else {
                continue;
            };
            if let Ok(s) = m.status(StatusRequest {}).await {
                let s = s.into_inner();
                seen.push((s.header.unwrap().revision, s.raft_applied_index));
            }
        }
        if seen.len() == ids.len() && seen.windows(2).all(|w| w[0] == w[1]) {
            return seen[0].0;
        }
        assert!(
            Instant::now() < deadline,
            "members never converged: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a condition
    }
}

async fn hash_of(cluster: &Cluster, id: u64, revision: i64) -> Result<(u32, i64), tonic::Status> {
    let mut m = MaintenanceClient::connect(cluster.endpoint(id))
        .await
        .unwrap();
    let h = m.hash_kv(HashKvRequest { revision }).await?.into_inner();
    Ok((h.hash, h.compact_revision))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_the_same_history_agree_and_a_different_history_disagrees() {
    let mut three = Cluster::start(3).await;
    let single = Cluster::start(1).await;
    let mut kv = three.kv(1).await;
    let mut other = single.kv(1).await;

    // The same key, value and revisions now, reached through a different history.
    put_eventually(&mut kv, "x", "old").await;
    put_eventually(&mut kv, "x", "new").await;
    put_eventually(&mut other, "x", "other").await;
    put_eventually(&mut other, "x", "new").await;
    let read = RangeRequest {
        key: b"x".to_vec(),
        ..Default::default()
    };
    let a = kv.range(read.clone()).await.unwrap().into_inner().kvs;
    let b = other.range(read).await.unwrap().into_inner().kvs;
    assert_eq!(a, b, "the current state is the same");
    let (ha, hb) = (hash_of(&three, 1, 0).await, hash_of(&single, 1, 0).await);
    assert_ne!(ha.unwrap().0, hb.unwrap().0, "the histories differ");

    // Member 3 misses enough entries to be sent a snapshot (support::SNAPSHOT_COUNT).
    three.stop(3).await;
    for i in 0..100 {
        put_eventually(&mut kv, &format!("k{i}"), &format!("v{i}")).await;
    }
    let compact_at = put_eventually(&mut kv, "k0", "again").await;
    kv.compact(CompactionRequest {
        revision: compact_at,
        physical: false,
    })
    .await
    .unwrap();
    three.restart(3).await;
    put_eventually(&mut kv, "after", "restart").await;

    let now = converged(&three, &[1, 2, 3]).await;
    let mut hashes = Vec::new();
    for id in 1..=3 {
        hashes.push(hash_of(&three, id, now).await.unwrap());
    }
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[0], hashes[2]);
    assert_eq!(hashes[0].1, compact_at);

    // The errors etcd gives, with etcd's gRPC code.
    let compacted = hash_of(&three, 2, compact_at).await.unwrap_err();
    assert_eq!(compacted.code(), tonic::Code::OutOfRange);
    assert_eq!(
        compacted.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    let future = hash_of(&three, 2, now + 1).await.unwrap_err();
    assert_eq!(
        future.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );
}
