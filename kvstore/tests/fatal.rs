//! A member that fails ends its process, with a non-zero exit code and a one-line
//! reason, as etcd does: a process that stays alive but serves nothing (a "zombie") is
//! never restarted by anyone.
//!
//! Runs the real `etcd` binary of this crate; every wait has a deadline.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::{kv_client::KvClient, PutRequest};

/// A port nobody listens on now (the OS's choice for a socket bound to port 0).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One member, alone in its cluster, logging a snapshot every 10 entries.
fn start_member(data_dir: &std::path::Path) -> (Child, String) {
    let (client, peer) = (free_port(), free_port());
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new(env!("CARGO_BIN_EXE_etcd"))
        .args(["--name", "m1", "--snapshot-count", "10"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=m1={peer_url}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the etcd binary starts");
    (child, format!("http://127.0.0.1:{client}"))
}

/// Waits for the process to end by itself, or kills it at the deadline.
fn wait_for_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The member's data directory is deleted under it (an operator's bad day). Its next
/// log compaction cannot create a WAL segment: the member must end its process with
/// etcd's panic exit code, 2, and say why in its last line.
#[tokio::test]
async fn a_member_whose_data_dir_is_deleted_exits_with_a_reason() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("m1");
    let (mut child, endpoint) = start_member(&data_dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut kv = loop {
        match KvClient::connect(endpoint.clone()).await {
            Ok(kv) => break kv,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the member never listened: {e}"),
        }
    };
    let put = |i: usize| PutRequest {
        key: format!("k{i}").into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    while kv.put(put(0)).await.is_err() {
        assert!(Instant::now() < deadline, "the member never elected itself");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_dir_all(&data_dir).unwrap();
    // Enough writes for a snapshot (every 10 entries); the ones after the failure fail.
    for i in 1..=40 {
        let _ = kv.put(put(i)).await;
    }
    drop(kv);
    let status = wait_for_exit(&mut child, Duration::from_secs(60))
        .expect("the member exits instead of lingering without a data directory");
    assert_eq!(status.code(), Some(2), "{status}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("etcd: the member stopped: ") && last.contains("No such file"),
        "{stderr}"
    );
    // Nothing listens any more.
    assert!(KvClient::connect(endpoint).await.is_err());
}
