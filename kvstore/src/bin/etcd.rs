//! `etcd`: one kvstore member as a process, with etcd's flags.
//!
//! ```sh
//! cargo run -p kvstore --bin etcd -- --name etcd1 --data-dir /tmp/etcd1 \
//!   --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
//!   --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
//!   --initial-cluster etcd1=http://127.0.0.1:2380,etcd2=http://127.0.0.1:12380,etcd3=http://127.0.0.1:22380 \
//!   --initial-cluster-state new
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use kvstore::server::{self, ServerConfig};
use kvstore::ClusterInfo;

/// A kvstore member: etcd's v3 API over Raft and sled.
#[derive(Parser, Debug)]
#[command(name = "etcd", version)]
struct Flags {
    /// Human-readable name of this member.
    #[arg(long, default_value = "default")]
    name: String,
    /// Path to the data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// URL to listen on for client traffic.
    #[arg(long, default_value = "http://localhost:2379")]
    listen_client_urls: String,
    /// This member's client URL, as advertised to the cluster.
    #[arg(long)]
    advertise_client_urls: Option<String>,
    /// URL to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380")]
    listen_peer_urls: String,
    /// This member's peer URL, as advertised to the cluster.
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Initial cluster configuration: NAME=PEER_URL,...
    #[arg(long)]
    initial_cluster: Option<String>,
    /// `new` for a new cluster (`existing` is not supported yet).
    #[arg(long, default_value = "new")]
    initial_cluster_state: String,
    /// Distinguishes clusters made from the same --initial-cluster.
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    election_timeout: u64,
    /// Number of committed transactions to trigger a snapshot (and compact the log).
    #[arg(long, default_value_t = 100_000)]
    snapshot_count: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = kvstore::request::MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
    /// `zap` for etcd-style JSON log lines, `capnslog` for plain text.
    #[arg(long, default_value = "capnslog")]
    logger: String,
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    if flags.logger == "zap" {
        tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .init();
    }
    // A panic prints one line, where and what, instead of a backtrace; if it was the
    // member's, `run` then ends the process with the reason.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let first = kvstore::error::panic_reason(info.payload());
        eprintln!(
            "etcd: panic in thread {}{location}: {first}",
            thread.name().unwrap_or("?")
        );
    }));
    match run(flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stopped::Error(e)) => {
            eprintln!("etcd: {e}");
            ExitCode::FAILURE
        }
        Err(Stopped::Fatal(exit)) => {
            eprintln!("etcd: the member stopped: {}", exit.reason);
            ExitCode::from(u8::try_from(exit.code).unwrap_or(1))
        }
    }
}

/// Why `run` ended.
enum Stopped {
    /// The member could not start (bad flags, a data directory it must not open).
    Error(String),
    /// The member failed while serving; the process must end so that it can be
    /// restarted, as etcd's does.
    Fatal(server::Exit),
}

impl From<String> for Stopped {
    fn from(e: String) -> Self {
        Stopped::Error(e)
    }
}

impl From<&str> for Stopped {
    fn from(e: &str) -> Self {
        Stopped::Error(e.to_string())
    }
}

fn run(flags: Flags) -> Result<(), Stopped> {
    if flags.initial_cluster_state != "new" {
        return Err(Stopped::Error(format!(
            "--initial-cluster-state {} is not supported (only new)",
            flags.initial_cluster_state
        )));
    }
    if flags.heartbeat_interval == 0 || flags.election_timeout < 2 * flags.heartbeat_interval {
        return Err("--election-timeout must be at least twice --heartbeat-interval".into());
    }
    let advertise_peer = flags
        .initial_advertise_peer_urls
        .clone()
        .unwrap_or_else(|| flags.listen_peer_urls.clone());
    let advertise_client = flags
        .advertise_client_urls
        .clone()
        .unwrap_or_else(|| flags.listen_client_urls.clone());
    let spec = flags
        .initial_cluster
        .clone()
        .unwrap_or_else(|| format!("{}={advertise_peer}", flags.name));
    let cluster = ClusterInfo::parse_initial_cluster(
        &spec,
        &flags.initial_cluster_token,
        &flags.name,
        &[advertise_client],
    )?;
    let id = cluster
        .members
        .iter()
        .find(|m| m.name == flags.name)
        .map(|m| m.id)
        .ok_or("this member is not in --initial-cluster")?;
    let data_dir = flags
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", flags.name)));
    let election_timeout = Duration::from_millis(flags.election_timeout);
    let config = ServerConfig {
        id,
        cluster,
        data_dir,
        listen_client: flags.listen_client_urls.clone(),
        listen_peer: flags.listen_peer_urls.clone(),
        heartbeat: Duration::from_millis(flags.heartbeat_interval),
        election_timeout,
        request_timeout: ServerConfig::etcd_request_timeout(election_timeout),
        snapshot_count: flags.snapshot_count,
        max_request_bytes: flags.max_request_bytes,
        network: seams::Tcp::shared(),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let server = server::start(config).await.map_err(|e| e.to_string())?;
        tracing::info!(
            name = %flags.name,
            member_id = %format!("{id:x}"),
            client = %server.client_addr,
            peer = %server.peer_addr,
            "ready to serve client requests"
        );
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => {
                interrupted.map_err(|e| e.to_string())?;
                tracing::info!("received interrupt, stopping");
                server.stop().await;
                Ok(())
            }
            exit = server.exited() => Err(Stopped::Fatal(exit)),
        }
    })
}
