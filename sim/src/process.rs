//! What a container runs: its command line decides. `etcd`, `kube-apiserver`,
//! `kube-scheduler` and `kube-controller-manager` start the real components; anything
//! else is a simulated image ([`crate::workloads`]).
//!
//! A component's flags are parsed by that component's own parser — the struct its
//! binary parses (`kvstore::flags::Config`, `apiserver::flags::ServerRunOptions`,
//! `scheduler::flags::Options`,
//! `controller_manager::flags::KubeControllerManagerOptions`) — exactly as a real
//! kubelet runs a manifest's command: same flags, same defaults, same errors. Only
//! what a machine would provide differs: paths in flags (`--data-dir=/var/lib/etcd`,
//! `--kubeconfig=/etc/kubernetes/...`) are the node's own files under its directory in
//! the data root, and addresses are the simulated network's.

use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use kvstore::server;
use seams::scope::Scope;

use crate::error::{Error, Result};
use crate::node::{Follow, NodeContext};
use crate::runtime::{log, BoxFuture, Exec, Logs, Process};
use crate::workloads;

/// A running component.
pub enum Component {
    Etcd(server::Server),
    Apiserver(apiserver::server::Running),
    Scheduler(scheduler::run::Scheduler),
    ControllerManager(controller_manager::run::ControllerManager),
}

/// A component and every socket it has: stopping it closes them all at once, as the
/// kernel closes a killed process's, even connections its libraries made.
pub struct Running {
    component: Component,
    sockets: Arc<Scope>,
}

impl Process for Running {
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Running { component, sockets } = *self;
            match component {
                Component::Etcd(s) => s.stop().await,
                Component::Apiserver(a) => a.stop_serving(),
                Component::Scheduler(s) => drop(s),
                Component::ControllerManager(c) => drop(c),
            }
            sockets.kill();
        })
    }

    /// An etcd member that failed ends (2, etcd's exit on a fatal error); the others
    /// run until stopped.
    fn exit_code(&self) -> Option<i32> {
        match &self.component {
            Component::Etcd(server) => server.exit().map(|exit| exit.code),
            _ => None,
        }
    }
}

/// What runs a node's containers: its programs, on its files and its addresses.
pub struct Programs {
    node: Arc<NodeContext>,
}

impl Programs {
    pub fn new(node: Arc<NodeContext>) -> Arc<Programs> {
        Arc::new(Programs { node })
    }
}

impl Exec for Programs {
    fn start<'a>(
        &'a self,
        command: &'a [String],
        logs: Logs,
    ) -> BoxFuture<'a, Result<Box<dyn Process>>> {
        Box::pin(start(&self.node, command, logs))
    }
}

/// Starts what `command` says.
async fn start(
    node: &Arc<NodeContext>,
    command: &[String],
    logs: Logs,
) -> Result<Box<dyn Process>> {
    let Some(program) = command.first() else {
        return Err(Error::Invalid("an empty command".into()));
    };
    // The process's own view of the node: its sockets in a scope of their own.
    let sockets = Scope::new(node.network.clone());
    let host = seams::Host {
        network: sockets.clone(),
        clock: node.clock.clone(),
        rng: node.rng.fork(),
    };
    let component = match program.as_str() {
        "etcd" => etcd(node, &host, command, &logs).await?,
        "kube-apiserver" => kube_apiserver(node, &host, command, &logs).await?,
        "kube-scheduler" => kube_scheduler(node, &host, command, &logs)?,
        "kube-controller-manager" => kube_controller_manager(node, &host, command, &logs)?,
        _ => {
            return Ok(Box::new(workloads::start(
                command.to_vec(),
                logs,
                node.clock.clone(),
            )))
        }
    };
    Ok(Box::new(Running { component, sockets }))
}

/// The component's flags, parsed by its own parser.
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

/// A path a flag names, on the node.
fn node_path(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

async fn etcd(
    node: &Arc<NodeContext>,
    host: &seams::Host,
    command: &[String],
    logs: &Logs,
) -> Result<Component> {
    let f: kvstore::flags::Config = flags(command)?;
    let mut config = f.server_config().map_err(Error::Invalid)?;
    config.data_dir = node.path(&node_path(&config.data_dir));
    // The member listens on its node address and dials its peers through the
    // simulated network, keeps the node's time, and draws its election timeouts from
    // the node's share of the cluster's random numbers. It runs as tasks of the
    // simulator's one thread, as every component does.
    config.network = host.network.clone();
    config.clock = host.clock.clone();
    config.rng = host.rng.fork();
    config.runtime = server::MemberRuntime::Shared;
    let id = config.id;
    // A listen URL without a port is a bad flag, said as one (the network would only
    // say it cannot listen there).
    host_port(&f.listen_client_urls)?;
    host_port(&f.listen_peer_urls)?;
    let server = server::start(config)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    log(logs, format!(
        "{{\"level\":\"info\",\"msg\":\"serving client traffic insecurely; this is strongly discouraged!\",\"address\":\"{}\"}}",
        f.advertise_client()
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
    Ok(Component::Etcd(server))
}

fn io(e: std::io::Error) -> Error {
    Error::Invalid(e.to_string())
}

async fn kube_apiserver(
    node: &Arc<NodeContext>,
    host: &seams::Host,
    command: &[String],
    logs: &Logs,
) -> Result<Component> {
    let f: apiserver::flags::ServerRunOptions = flags(command)?;
    let read = |p: &Path| {
        node.read(&node_path(p))
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    let mut config = f.config(read).map_err(Error::Invalid)?;
    // The audit log is a file on the node.
    if let Some(audit) = &mut config.audit {
        audit.path = node
            .resolve(&node_path(&audit.path), Follow::All)
            .map_err(io)?;
    }
    // The node's network (etcd members and kubelets by node address) and clock.
    config.host = host.clone();
    // A node's address is where it listens (there is no 0.0.0.0 on the simulated network).
    let address = if f.advertise_address.is_empty() {
        node.ip.clone()
    } else {
        f.advertise_address.clone()
    };
    if config.advertise.is_empty() {
        config.advertise = format!("{address}:{}", f.secure_port);
    }
    let listener = host
        .network
        .listen(&format!("{address}:{}", f.secure_port))
        .map_err(io)?;
    let running = apiserver::server::start(listener, config)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    log(
        logs,
        format!("Serving securely on {address}:{}", f.secure_port),
    );
    Ok(Component::Apiserver(running))
}

/// A client from a component's kubeconfig on `node`, through `host`'s network.
pub fn client_from_kubeconfig(
    node: &NodeContext,
    host: &seams::Host,
    path: &str,
) -> Result<client_go::client::Client> {
    let text = node.read(path)?;
    let target = client_go::kubeconfig::Kubeconfig::parse(&text)
        .and_then(|k| k.target())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    client_go::client::Client::new(
        host,
        vec![target.server],
        target.ca_pem.as_deref(),
        target.token,
    )
    .map_err(|e| Error::Invalid(e.to_string()))
}

/// The instance's name: the node's, plus a unique suffix (the Lease holder).
fn identity(node: &NodeContext) -> String {
    format!("{}_{}", node.name, node.rng.uuid())
}

/// A line as klog writes it (`I0105 09:00:03.000000       1 file] message`), stamped
/// with the node's clock.
fn klog(node: &NodeContext, severity: char, file: &str, message: &str) -> String {
    let t = api::time::now(&*node.clock);
    format!(
        "{severity}{}       1 {file}] {message}",
        t.strftime("%m%d %H:%M:%S%.6f")
    )
}

/// Writes the election for `lease` into the container's log, as client-go's leader
/// election logs it: the candidate `identity` trying, then each time it gains or
/// loses the lease.
fn log_leadership(
    node: &Arc<NodeContext>,
    lease: &'static str,
    identity: &str,
    mut is_leader: tokio::sync::watch::Receiver<bool>,
    logs: &Logs,
) {
    let trying = format!("attempting to acquire leader lease {lease}... (as {identity})");
    log(logs, klog(node, 'I', "leaderelection.go", &trying));
    let (node, logs) = (node.clone(), logs.clone());
    tokio::spawn(async move {
        let mut leading = false;
        while is_leader.changed().await.is_ok() {
            let now = *is_leader.borrow_and_update();
            if now == leading {
                continue;
            }
            leading = now;
            let line = if now {
                klog(
                    &node,
                    'I',
                    "leaderelection.go",
                    &format!("successfully acquired lease {lease}"),
                )
            } else {
                klog(
                    &node,
                    'E',
                    "leaderelection.go",
                    &format!("failed to renew lease {lease}: lost the lease; stepping down"),
                )
            };
            log(&logs, line);
        }
    });
}

fn kube_scheduler(
    node: &Arc<NodeContext>,
    host: &seams::Host,
    command: &[String],
    logs: &Logs,
) -> Result<Component> {
    let f: scheduler::flags::Options = flags(command)?;
    let identity = identity(node);
    let mut config = f.config(&identity).map_err(Error::Invalid)?;
    let client = client_from_kubeconfig(node, host, &node_path(&f.kubeconfig))?;
    let sink = logs.clone();
    config.log = Some(Arc::new(move |line| log(&sink, line)));
    let scheduler = scheduler::run::Scheduler::start(client, config, node.clock.clone());
    log_leadership(
        node,
        "kube-system/kube-scheduler",
        &identity,
        scheduler.is_leader.clone(),
        logs,
    );
    Ok(Component::Scheduler(scheduler))
}

fn kube_controller_manager(
    node: &Arc<NodeContext>,
    host: &seams::Host,
    command: &[String],
    logs: &Logs,
) -> Result<Component> {
    let f: controller_manager::flags::KubeControllerManagerOptions = flags(command)?;
    let identity = identity(node);
    let config = f.config(&identity).map_err(Error::Invalid)?;
    let client = client_from_kubeconfig(node, host, &node_path(&f.kubeconfig))?;
    let manager =
        controller_manager::run::ControllerManager::start(client, config, node.clock.clone());
    log_leadership(
        node,
        "kube-system/kube-controller-manager",
        &identity,
        manager.is_leader.clone(),
        logs,
    );
    Ok(Component::ControllerManager(manager))
}
