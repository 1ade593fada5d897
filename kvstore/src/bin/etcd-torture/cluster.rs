//! The three member processes: starting them, killing them with SIGKILL, and asking
//! them who leads.
//!
//! Each member is a real `etcd` process of ours with etcd's flags, its own data
//! directory and a log file (appended to across restarts, with a marker line at each
//! start). Killing is `kill -9` of the member's PID (`Child::kill` sends SIGKILL): no
//! shutdown code runs, exactly like a power cut for the process. Every PID is also
//! written to `<name>.pid` so that `scripts/torture` can clean up if the harness itself
//! dies.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use kvstore::proto::etcdserverpb::{HashKvRequest, StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint};

/// How long a member may take to answer again after a start before it counts as a
/// failure (generous: two cores shared with compilers).
pub const COME_BACK: Duration = Duration::from_secs(30);

/// One member: its ports, directory, process (if running) and client channel.
pub struct Member {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// Status and HashKV go through this (it reconnects after a restart).
    maintenance: MaintenanceClient<Channel>,
}

/// What became of a member process that was started.
#[derive(Debug)]
pub enum Start {
    /// It answers Status.
    Serving,
    /// It exited, with this code (None: killed by a signal).
    Exited(Option<i32>),
    /// Still running, but not answering within [`COME_BACK`].
    Silent,
}

/// The cluster under test.
pub struct Cluster {
    pub members: Vec<Member>,
    binary: PathBuf,
    initial_cluster: String,
}

/// Picks six free loopback ports: `base+1..=base+3` for clients, `base+11..=base+13`
/// for peers. A given `base` that is busy is refused; without one, bases derived from
/// the seed are tried until one is free.
pub fn choose_ports(given: Option<u16>, seed: u64) -> Result<u16, String> {
    let ports = |base: u16| [1, 2, 3, 11, 12, 13].map(|d| base + d);
    let free = |base: u16| {
        ports(base)
            .iter()
            .all(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
    };
    if let Some(base) = given {
        return if free(base) {
            Ok(base)
        } else {
            Err(format!(
                "a port of {:?} is in use: choose another TORTURE_PORT_BASE",
                ports(base)
            ))
        };
    }
    // 21 000-28 990: away from etcd's 2379/2380 and from scripts/bench-vs-etcd's 4x379.
    (0..50)
        .map(|i| 21_000 + ((seed.wrapping_add(i * 7919) % 800) as u16) * 10)
        .find(|b| free(*b))
        .ok_or_else(|| "no free range of ports found between 21000 and 29000".into())
}

impl Cluster {
    /// Three members on the ports from `base`, in `dir`, none running yet.
    pub fn new(binary: &Path, dir: &Path, base: u16) -> Cluster {
        let members: Vec<Member> = (1..=3u16)
            .map(|i| {
                let client_url = format!("http://127.0.0.1:{}", base + i);
                let endpoint = Endpoint::from_shared(client_url.clone())
                    .expect("a valid URL")
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(5));
                Member {
                    name: format!("m{i}"),
                    peer_url: format!("http://127.0.0.1:{}", base + 10 + i),
                    data_dir: dir.join(format!("m{i}")),
                    log: dir.join(format!("m{i}.log")),
                    child: None,
                    maintenance: MaintenanceClient::new(endpoint.connect_lazy()),
                    client_url,
                }
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            members,
            binary: binary.to_path_buf(),
            initial_cluster,
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Starts member `i` (it must not be running) and returns at once.
    pub fn spawn(&mut self, i: usize, snapshot_count: u64) -> Result<(), String> {
        let m = &mut self.members[i];
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| format!("open {}: {e}", m.log.display()))?;
        let _ = writeln!(
            log,
            "=== etcd-torture: start (--snapshot-count {snapshot_count}) ==="
        );
        let child = Command::new(&self.binary)
            .arg(format!("--name={}", m.name))
            .arg(format!("--data-dir={}", m.data_dir.display()))
            .arg(format!("--listen-client-urls={}", m.client_url))
            .arg(format!("--advertise-client-urls={}", m.client_url))
            .arg(format!("--listen-peer-urls={}", m.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--initial-cluster-state=new")
            .arg(format!("--snapshot-count={snapshot_count}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.binary.display()))?;
        let pid_file = m.log.with_extension("pid");
        let _ = fs::write(pid_file, child.id().to_string());
        m.child = Some(child);
        Ok(())
    }

    /// `kill -9` of member `i`, and reaps it. Returns false if it was not running.
    pub fn kill(&mut self, i: usize) -> bool {
        let Some(mut child) = self.members[i].child.take() else {
            return false;
        };
        let _ = child.kill(); // SIGKILL by PID
        let _ = child.wait();
        let _ = fs::remove_file(self.members[i].log.with_extension("pid"));
        true
    }

    /// Member `i`'s exit code if its process has exited (reaping it), None while it runs.
    pub fn exit_code(&mut self, i: usize) -> Option<Option<i32>> {
        let child = self.members[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.code()),
            _ => None,
        }
    }

    /// Waits until member `i` answers Status, exits, or [`COME_BACK`] passes.
    pub async fn wait_serving(&mut self, i: usize) -> Start {
        let deadline = Instant::now() + COME_BACK;
        loop {
            if let Some(code) = self.exit_code(i) {
                self.members[i].child = None;
                return Start::Exited(code);
            }
            if self.status(i).await.is_some() {
                return Start::Serving;
            }
            if Instant::now() > deadline {
                return Start::Silent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // polling a condition
        }
    }

    /// Member `i`'s status, if it answers.
    pub async fn status(&self, i: usize) -> Option<StatusResponse> {
        let mut client = self.members[i].maintenance.clone();
        client
            .status(StatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }

    /// The index of the member that leads, as the members report it.
    pub async fn leader(&self) -> Option<usize> {
        let mut statuses = Vec::new();
        for i in 0..self.members.len() {
            statuses.push(self.status(i).await);
        }
        let leader = statuses
            .iter()
            .flatten()
            .map(|s| s.leader)
            .find(|&l| l != 0)?;
        statuses
            .iter()
            .position(|s| s.as_ref().and_then(|s| s.header).map(|h| h.member_id) == Some(leader))
    }

    /// Member `i`'s HashKV at `revision`: (hash, compact revision), or the error.
    pub async fn hash_kv(&self, i: usize, revision: i64) -> Result<(u32, i64), String> {
        let mut client = self.members[i].maintenance.clone();
        match client.hash_kv(HashKvRequest { revision }).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok((r.hash, r.compact_revision))
            }
            Err(e) => Err(e.message().to_string()),
        }
    }

    /// What member `i` said last since its latest start: the message of a panic if
    /// it panicked (the line after "panicked at"), else its last line; without the
    /// terminal colours.
    pub fn last_words(&self, i: usize) -> String {
        let text = fs::read_to_string(&self.members[i].log).unwrap_or_default();
        let run = text.rsplit("=== etcd-torture: start").next().unwrap_or("");
        let lines: Vec<&str> = run.lines().filter(|l| !l.trim().is_empty()).collect();
        let panic = lines.iter().position(|l| l.contains("panicked at"));
        let words = match panic {
            Some(p) => format!("panic: {}", lines.get(p + 1).unwrap_or(&"")),
            None => lines.last().unwrap_or(&"").to_string(),
        };
        without_colours(&words).chars().take(300).collect()
    }

    /// How many times the members' logs say a snapshot from the leader was installed.
    pub fn snapshot_installs(&self) -> usize {
        self.members
            .iter()
            .map(|m| fs::read_to_string(&m.log).unwrap_or_default())
            .map(|t| t.matches("installed a snapshot from the leader").count())
            .sum()
    }

    /// Kills every member that is still running.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Removes the ANSI colour sequences (`ESC [ ... m`) the members' logs carry.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic()); // skip to the final letter
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all(); // whatever happens to the harness, no member outlives it
    }
}
