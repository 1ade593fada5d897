//! What a container runs: its command line decides. `etcd`, `kube-apiserver`,
//! `kube-scheduler` and `kube-controller-manager` start the real components (their
//! flags parsed as the real binaries parse them); anything else is a simulated image
//! ([`crate::workloads`]).
//!
//! Paths in flags (`--data-dir=/var/lib/etcd`, `--kubeconfig=/etc/kubernetes/...`) are
//! the node's own files, under its directory in the data root.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use kvstore::server::{self, ServerConfig};
use kvstore::ClusterInfo;

use crate::error::{Error, Result};
use crate::node::NodeContext;
use crate::runtime::Logs;
use crate::workloads;

/// A running component or workload.
pub enum Process {
    Etcd(server::Server),
    Apiserver(apiserver::server::Running),
    Scheduler(scheduler::run::Scheduler),
    ControllerManager(controller_manager::run::ControllerManager),
    /// A simulated workload; `exit` is set when it ends by itself.
    Task {
        handle: tokio::task::JoinHandle<()>,
        exit: Arc<Mutex<Option<i32>>>,
    },
}

impl Process {
    /// Stops it like `kill`: sockets close, files stay.
    pub async fn stop(self) {
        match self {
            Process::Etcd(s) => s.stop().await,
            Process::Apiserver(a) => a.stop_serving(),
            Process::Scheduler(s) => drop(s),
            Process::ControllerManager(c) => drop(c),
            Process::Task { handle, .. } => handle.abort(),
        }
    }

    /// The exit code of a process that ended by itself: a workload that finished, or
    /// an etcd member that failed (2, etcd's exit on a fatal error).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Process::Task { exit, .. } => *exit.lock().expect("exit lock"),
            Process::Etcd(server) => server.exit().map(|exit| exit.code),
            _ => None,
        }
    }
}

fn log(logs: &Logs, line: String) {
    logs.lock().expect("logs lock").push(line);
}

/// Starts what `command` says.
pub async fn start(node: &Arc<NodeContext>, command: &[String], logs: Logs) -> Result<Process> {
    let Some(program) = command.first() else {
        return Err(Error::Invalid("an empty command".into()));
    };
    match program.as_str() {
        "etcd" => etcd(node, command, &logs).await,
        "kube-apiserver" => kube_apiserver(node, command, &logs).await,
        "kube-scheduler" => kube_scheduler(node, command, &logs),
        "kube-controller-manager" => kube_controller_manager(node, command, &logs),
        _ => Ok(workloads::start(command.to_vec(), logs)),
    }
}

fn flags<T: Parser>(command: &[String]) -> Result<T> {
    T::try_parse_from(command).map_err(|e| Error::Invalid(e.to_string()))
}

/// `host:port` of a URL.
fn host_port(url: &str) -> Result<(String, u16)> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| Error::Invalid(format!("{url}: no port")))?;
    let port = port
        .parse()
        .map_err(|_| Error::Invalid(format!("{url}: bad port")))?;
    Ok((host.to_string(), port))
}

#[derive(Parser)]
struct EtcdFlags {
    #[arg(long)]
    name: String,
    #[arg(long)]
    data_dir: String,
    #[arg(long)]
    listen_client_urls: String,
    #[arg(long)]
    advertise_client_urls: String,
    #[arg(long)]
    listen_peer_urls: String,
    #[arg(long)]
    initial_advertise_peer_urls: String,
    #[arg(long)]
    initial_cluster: String,
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    #[arg(long, default_value = "new")]
    initial_cluster_state: String,
    /// Milliseconds.
    #[arg(long, default_value_t = 100)]
    heartbeat_interval: u64,
    /// Milliseconds.
    #[arg(long, default_value_t = 1000)]
    election_timeout: u64,
}

async fn etcd(node: &Arc<NodeContext>, command: &[String], logs: &Logs) -> Result<Process> {
    let f: EtcdFlags = flags(command)?;
    let clients = vec![f.advertise_client_urls.clone()];
    let cluster = ClusterInfo::parse_initial_cluster(
        &f.initial_cluster,
        &f.initial_cluster_token,
        &f.name,
        &clients,
    )
    .map_err(Error::Invalid)?;
    let id = cluster
        .members
        .iter()
        .find(|m| m.name == f.name)
        .map(|m| m.id)
        .ok_or_else(|| Error::Invalid(format!("no member {}", f.name)))?;
    // A listen URL without a port is a bad flag, said as one (the network would only
    // say it cannot listen there).
    host_port(&f.listen_client_urls)?;
    host_port(&f.listen_peer_urls)?;
    let heartbeat = Duration::from_millis(f.heartbeat_interval);
    let election = Duration::from_millis(f.election_timeout);
    let config = ServerConfig {
        id,
        cluster,
        data_dir: node.path(&f.data_dir),
        listen_client: f.listen_client_urls.clone(),
        listen_peer: f.listen_peer_urls.clone(),
        heartbeat,
        election_timeout: election,
        request_timeout: Duration::from_secs(2).max(4 * election),
        snapshot_count: 10_000,
        max_request_bytes: kvstore::request::MAX_REQUEST_BYTES,
        network: node.network.clone(),
    };
    let server = server::start(config)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    log(logs, format!(
        "{{\"level\":\"info\",\"msg\":\"serving client traffic insecurely; this is strongly discouraged!\",\"address\":\"{}\"}}",
        f.advertise_client_urls
    ));
    log(logs, format!(
        "{{\"level\":\"info\",\"msg\":\"started member\",\"name\":\"{}\",\"member-id\":\"{id:x}\",\"initial-cluster-state\":\"{}\"}}",
        f.name, f.initial_cluster_state
    ));
    // A member that fails says why in its log, as etcd's last line before it exits.
    let exited = server.exited();
    let logs = logs.clone();
    tokio::spawn(async move {
        let exit = exited.await;
        let line = serde_json::json!({"level": "panic", "msg": exit.reason});
        log(&logs, line.to_string());
    });
    Ok(Process::Etcd(server))
}

fn io(e: std::io::Error) -> Error {
    Error::Invalid(e.to_string())
}

#[derive(Parser)]
struct ApiserverFlags {
    #[arg(long)]
    advertise_address: String,
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: String,
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    #[arg(long)]
    tls_cert_file: String,
    #[arg(long)]
    tls_private_key_file: String,
    #[arg(long)]
    token_auth_file: String,
}

async fn kube_apiserver(
    node: &Arc<NodeContext>,
    command: &[String],
    logs: &Logs,
) -> Result<Process> {
    let f: ApiserverFlags = flags(command)?;
    let read = |p: &str| node.read(p);
    let mut config = apiserver::server::Config::new(f.etcd_servers.clone());
    config.etcd_timeout = Duration::from_secs(2);
    config.advertise = format!("{}:{}", f.advertise_address, f.secure_port);
    config.tls = Some((read(&f.tls_cert_file)?, read(&f.tls_private_key_file)?));
    config.tokens = apiserver::server::parse_token_file(&read(&f.token_auth_file)?)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    config.host = node.host();
    let listener = seams::Network::listen(
        &*node.network,
        &format!("{}:{}", f.advertise_address, f.secure_port),
    )
    .map_err(io)?;
    let running = apiserver::server::start(listener, config)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    log(
        logs,
        format!(
            "Serving securely on {}:{}",
            f.advertise_address, f.secure_port
        ),
    );
    Ok(Process::Apiserver(running))
}

#[derive(Parser)]
struct ComponentFlags {
    #[arg(long)]
    kubeconfig: String,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
}

/// A client from a component's kubeconfig, through the simulated network.
pub fn client_from_kubeconfig(node: &NodeContext, path: &str) -> Result<client_go::client::Client> {
    let text = node.read(path)?;
    let target = client_go::kubeconfig::Kubeconfig::parse(&text)
        .and_then(|k| k.target())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    client_go::client::Client::new(
        &node.host(),
        vec![target.server],
        target.ca_pem.as_deref(),
        target.token,
    )
    .map_err(|e| Error::Invalid(e.to_string()))
}

fn kube_scheduler(node: &Arc<NodeContext>, command: &[String], logs: &Logs) -> Result<Process> {
    let f: ComponentFlags = flags(command)?;
    let client = client_from_kubeconfig(node, &f.kubeconfig)?;
    let identity = format!("{}_{}", node.name, uuid::Uuid::new_v4());
    let config = scheduler::run::Config {
        leader_election: f
            .leader_elect
            .then(|| node.timing.election("kube-scheduler", &identity)),
        identity: identity.clone(),
    };
    log(
        logs,
        format!("attempting to acquire leader lease kube-system/kube-scheduler... (as {identity})"),
    );
    Ok(Process::Scheduler(scheduler::run::Scheduler::start(
        client,
        config,
        node.clock.clone(),
    )))
}

fn kube_controller_manager(
    node: &Arc<NodeContext>,
    command: &[String],
    logs: &Logs,
) -> Result<Process> {
    let f: ComponentFlags = flags(command)?;
    let client = client_from_kubeconfig(node, &f.kubeconfig)?;
    let identity = format!("{}_{}", node.name, uuid::Uuid::new_v4());
    let mut config = controller_manager::run::Config::new(&identity);
    config.leader_election = f
        .leader_elect
        .then(|| node.timing.election("kube-controller-manager", &identity));
    config.node_grace_period = node.timing.node_grace_period;
    config.monitor_period = node.timing.node_monitor_period;
    log(logs, format!("attempting to acquire leader lease kube-system/kube-controller-manager... (as {identity})"));
    Ok(Process::ControllerManager(
        controller_manager::run::ControllerManager::start(client, config, node.clock.clone()),
    ))
}
