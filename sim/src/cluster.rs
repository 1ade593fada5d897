//! The cluster the assignment asks for, laid out as kubespray lays it out: three nodes,
//! control plane on node1 and node2, an etcd member on every node (run by docker), a
//! kubelet everywhere, node3 the worker.
//!
//! [`Cluster::create`] is "running the installer": it writes every node's files —
//! certificates, kubeconfigs, static pod manifests, the nginx upstreams — then starts
//! the etcd containers and the kubelets. From then on the files drive what runs: the
//! kubelets start the control plane from the manifests, exactly as on real nodes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use api::types::Node as NodeObject;
use apiserver::pki::Ca;
use client_go::client::{Client, ListParams};
use client_go::kubeconfig::Kubeconfig;
use seams::{Clock, SimClock};

use crate::error::{Error, Result};
use crate::kubelet::{Kubelet, KUBECONFIG, MANIFESTS, NGINX_CONF};
use crate::manifests;
use crate::network::{node_ip, MemoryNetwork};
use crate::node::{NodeContext, Timing};
use crate::runtime::{ContainerSpec, Runtime};

/// The nodes: name, control plane or not. Their addresses are `127.0.N.11` to
/// `127.0.N.13` ([`node_ip`]), on the subnet the [`Options`] name.
pub const NODES: [(&str, bool); 3] = [("node1", true), ("node2", true), ("node3", false)];

/// The seed of a run that names none (`--seed`'s default).
pub const DEFAULT_SEED: u64 = 1;

/// Wall time at the start of a simulated run: 2026-01-05 09:00:00 UTC, a Monday
/// morning of the course. Every timestamp of the run counts from here.
pub const EPOCH_SECS: u64 = 1_767_603_600;

/// The runtime a simulated cluster runs on: one thread, its clock paused (time moves
/// only when every task waits, and then straight to the next timer), and tokio's own
/// random choices seeded from `seed` where tokio allows it (`--cfg tokio_unstable`,
/// set in `.cargo/config.toml`).
pub fn runtime(seed: u64) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    #[cfg(not(tokio_unstable))]
    let _ = seed;
    builder.build()
}

/// The ports a node's components listen on (etcd client and peer, kube-apiserver,
/// kubelet).
pub const PORTS: [u16; 4] = [2379, 2380, 6443, crate::kubelet::KUBELET_PORT];

/// The first loopback subnet `127.0.N.0`, counting from `from` (and round), whose node
/// addresses have every one of [`PORTS`] free on this machine, for a cluster that
/// will go live. Nothing stops another process from taking one of them before the
/// cluster binds it: [`Cluster::go_live`] then fails, saying which.
pub fn free_subnet(from: u8) -> Option<u8> {
    (0..=254u8)
        .map(|i| from.wrapping_add(i) % 255)
        .find(|&subnet| {
            (0..NODES.len()).all(|i| {
                let ip = node_ip(subnet, i);
                PORTS
                    .iter()
                    .all(|port| std::net::TcpListener::bind(format!("{ip}:{port}")).is_ok())
            })
        })
}

/// How a cluster is made.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where every token, UID, container ID, member's election timeout and instance
    /// identity comes from: the same seed makes the same cluster.
    pub seed: u64,
    /// `N` of the nodes' addresses `127.0.N.11`–`13`.
    pub subnet: u8,
    /// Wall time when the cluster starts.
    pub epoch: SystemTime,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: DEFAULT_SEED,
            subnet: 0,
            epoch: SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_SECS),
        }
    }
}

/// The admin kubeconfig on the control-plane nodes (kubeadm's, copied for root).
pub const ADMIN_CONF: &str = "/root/.kube/config";

/// One simulated machine.
pub struct Node {
    pub ctx: Arc<NodeContext>,
    pub runtime: Arc<Runtime>,
    pub control_plane: bool,
    kubelet: tokio::sync::Mutex<Option<Kubelet>>,
    /// When the kubelet unit last started or stopped (`systemctl status`'s "since").
    kubelet_since: std::sync::Mutex<Option<jiff::Timestamp>>,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    /// `systemctl start kubelet`.
    pub async fn start_kubelet(&self) {
        let mut k = self.kubelet.lock().await;
        if k.is_none() {
            *k = Some(Kubelet::start(
                self.ctx.clone(),
                self.runtime.clone(),
                self.control_plane,
            ));
            self.mark_kubelet();
        }
    }

    fn mark_kubelet(&self) {
        *self.kubelet_since.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(api::time::now(&*self.ctx.clock));
    }

    /// When the kubelet last started (running) or stopped.
    pub fn kubelet_since(&self) -> Option<jiff::Timestamp> {
        *self.kubelet_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `systemctl stop kubelet` (its containers keep running, as with docker).
    pub async fn stop_kubelet(&self) {
        if self.kubelet.lock().await.take().is_some() {
            self.mark_kubelet();
        }
    }

    pub async fn kubelet_running(&self) -> bool {
        self.kubelet.lock().await.is_some()
    }

    /// The running kubelet's count of finished rounds, to wait on.
    pub async fn kubelet_syncs(
        &self,
    ) -> Option<tokio::sync::watch::Receiver<crate::kubelet::Syncs>> {
        self.kubelet.lock().await.as_ref().map(Kubelet::syncs)
    }
}

pub struct Cluster {
    /// Where every node's files live: `<root>/node1/etc/kubernetes/...`.
    pub root: PathBuf,
    /// Every node's sockets, and the faults between them.
    pub network: Arc<MemoryNetwork>,
    /// The cluster's time: virtual, until [`Cluster::go_live`].
    pub sim_clock: Arc<SimClock>,
    /// When it was made, on that clock.
    pub started: seams::clock::Instant,
    pub nodes: Vec<Node>,
    pub ca: Arc<Ca>,
    pub admin_token: String,
}

/// A bearer token: 32 hex digits.
fn token(rng: &seams::Rng) -> String {
    rng.hex(32)
}

/// `etcd1=http://127.0.0.11:2380,...`: every member by its peer URL.
fn initial_cluster(ips: &[String]) -> String {
    let members: Vec<String> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| format!("etcd{}=http://{ip}:2380", i + 1))
        .collect();
    members.join(",")
}

/// The etcd container of `name` (kubespray's `etcd_deployment_type: docker`), with
/// etcd's own timings (a heartbeat of 100 ms, elections of 1 s) and kubespray's
/// snapshot count, 10 000 entries (etcd 3.4's default is 100 000).
pub fn etcd_container(name: &str, ip: &str, ips: &[String]) -> ContainerSpec {
    let command = [
        "etcd".to_string(),
        format!("--name={name}"),
        "--data-dir=/var/lib/etcd".into(),
        format!("--listen-client-urls=http://{ip}:2379"),
        format!("--advertise-client-urls=http://{ip}:2379"),
        format!("--listen-peer-urls=http://{ip}:2380"),
        format!("--initial-advertise-peer-urls=http://{ip}:2380"),
        format!("--initial-cluster={}", initial_cluster(ips)),
        "--initial-cluster-token=k8s_etcd".into(),
        "--initial-cluster-state=new".into(),
        "--snapshot-count=10000".into(),
    ];
    ContainerSpec {
        name: name.into(),
        image: "quay.io/coreos/etcd:v3.5.16".into(),
        command: command.to_vec(),
        ..ContainerSpec::default()
    }
}

impl Cluster {
    /// Installs the cluster under `root` with the default [`Options`] and starts it.
    pub async fn create(root: &Path) -> Result<Cluster> {
        Cluster::create_with(root, Options::default()).await
    }

    /// Installs the cluster under `root` and starts it. Call it on a current-thread
    /// runtime whose clock is paused (`start_paused`): the cluster's time is that
    /// runtime's, virtual until [`Cluster::go_live`].
    pub async fn create_with(root: &Path, options: Options) -> Result<Cluster> {
        let rng = seams::Rng::seeded(options.seed);
        let network = MemoryNetwork::new();
        let sim_clock = SimClock::new(options.epoch);
        let clock: Arc<dyn Clock> = sim_clock.clone();
        let ca = Arc::new(Ca::generate().map_err(Error::from)?);
        let admin_token = token(&rng);
        let ips: Vec<String> = (0..NODES.len())
            .map(|i| node_ip(options.subnet, i))
            .collect();
        let control_planes: Vec<&str> = NODES
            .iter()
            .zip(&ips)
            .filter(|(n, _)| n.1)
            .map(|(_, ip)| ip.as_str())
            .collect();
        let component_tokens = [
            (admin_token.clone(), "kubernetes-admin"),
            (token(&rng), "system:kube-scheduler"),
            (token(&rng), "system:kube-controller-manager"),
        ];
        let mut kubelet_tokens = Vec::new();
        for (name, _) in NODES {
            kubelet_tokens.push((token(&rng), format!("system:node:{name}")));
        }
        let mut csv = String::new();
        for (t, user) in component_tokens
            .iter()
            .map(|(t, u)| (t.clone(), u.to_string()))
            .chain(kubelet_tokens.clone())
        {
            csv.push_str(&format!("{t},{user},{user},\"system:masters\"\n"));
        }
        let mut nodes = Vec::new();
        for (i, (name, control_plane)) in NODES.into_iter().enumerate() {
            let ip = ips[i].as_str();
            let ctx = Arc::new(NodeContext {
                name: name.into(),
                ip: ip.into(),
                root: root.join(name),
                network: network.host(ip),
                clock: clock.clone(),
                rng: rng.fork(),
                timing: Timing::default(),
            });
            for dir in [MANIFESTS, "/var/lib/etcd", "/tmp", "/root"] {
                std::fs::create_dir_all(ctx.path(dir))?;
            }
            ctx.write("/etc/kubernetes/pki/ca.crt", &ca.cert_pem)?;
            let kubelet = Kubeconfig::new(
                "cluster.local",
                "https://localhost:6443",
                &ca.cert_pem,
                &format!("system:node:{name}"),
                &kubelet_tokens[i].0,
            );
            ctx.write(KUBECONFIG, &kubelet.to_yaml())?;
            let upstreams: String = control_planes
                .iter()
                .map(|ip| format!("    server {ip}:6443;\n"))
                .collect();
            ctx.write(NGINX_CONF, &format!("# kubespray's nginx-proxy: localhost:6443 -> every control-plane node\nstream {{\n  upstream kube_apiserver {{\n{upstreams}  }}\n}}\n"))?;
            if control_plane {
                let own = format!("https://{ip}:6443");
                ctx.write("/etc/kubernetes/pki/ca.key", &ca.key_pem)?;
                let hosts = vec![
                    ip.to_string(),
                    "127.0.0.1".into(),
                    "localhost".into(),
                    "kubernetes".into(),
                    "kubernetes.default".into(),
                ];
                let (cert, key) = ca
                    .issue_serving("kube-apiserver", &hosts)
                    .map_err(Error::from)?;
                ctx.write("/etc/kubernetes/pki/apiserver.crt", &cert)?;
                ctx.write("/etc/kubernetes/pki/apiserver.key", &key)?;
                ctx.write("/etc/kubernetes/tokens.csv", &csv)?;
                ctx.write(manifests::AUDIT_POLICY, &manifests::audit_policy())?;
                let admin = Kubeconfig::new(
                    "cluster.local",
                    &own,
                    &ca.cert_pem,
                    "kubernetes-admin",
                    &admin_token,
                );
                ctx.write("/etc/kubernetes/admin.conf", &admin.to_yaml())?;
                ctx.write(ADMIN_CONF, &admin.to_yaml())?;
                for (file, user, t) in [
                    (
                        "scheduler.conf",
                        "system:kube-scheduler",
                        &component_tokens[1].0,
                    ),
                    (
                        "controller-manager.conf",
                        "system:kube-controller-manager",
                        &component_tokens[2].0,
                    ),
                ] {
                    let k = Kubeconfig::new("cluster.local", &own, &ca.cert_pem, user, t);
                    ctx.write(&format!("/etc/kubernetes/{file}"), &k.to_yaml())?;
                }
                let etcd: Vec<&str> = ips.iter().map(String::as_str).collect();
                for (file, text) in manifests::control_plane(ip, &etcd) {
                    ctx.write(&format!("{MANIFESTS}/{file}"), &text)?;
                }
            }
            let runtime = Runtime::new(
                clock.clone(),
                ctx.rng.fork(),
                crate::process::Programs::new(ctx.clone()),
            );
            nodes.push(Node {
                ctx,
                runtime,
                control_plane,
                kubelet: tokio::sync::Mutex::new(None),
                kubelet_since: std::sync::Mutex::new(None),
            });
        }
        let cluster = Cluster {
            root: root.to_path_buf(),
            network,
            started: sim_clock.now(),
            sim_clock,
            nodes,
            ca,
            admin_token,
        };
        for (i, node) in cluster.nodes.iter().enumerate() {
            let spec = etcd_container(&format!("etcd{}", i + 1), &node.ctx.ip, &ips);
            node.runtime.run(spec).await?;
        }
        // The machines do not come up at the same instant: each kubelet starts within
        // two seconds, at a moment drawn from the seed. Which scheduler and
        // controller-manager win their first election follows from that.
        let mut boots: Vec<(Duration, usize)> = (0..cluster.nodes.len())
            .map(|i| (Duration::from_millis(rng.below(2000)), i))
            .collect();
        boots.sort();
        let boot = clock.now();
        for (at, i) in boots {
            clock.sleep_until(boot + at).await;
            cluster.nodes[i].start_kubelet().await;
        }
        Ok(cluster)
    }

    /// How much of the cluster's time has passed since it was made.
    pub fn uptime(&self) -> Duration {
        self.clock().elapsed(self.started)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The cluster's clock (every node shares it).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.nodes[0].ctx.clock.clone()
    }

    /// The node addresses, in node order.
    pub fn ips(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.ctx.ip.clone()).collect()
    }

    /// The address of node `name` (`""` if there is none).
    pub fn ip(&self, name: &str) -> String {
        self.node(name)
            .map(|n| n.ctx.ip.clone())
            .unwrap_or_default()
    }

    /// The admin's client, through every control-plane apiserver.
    pub fn admin(&self) -> Result<Client> {
        let urls = self
            .nodes
            .iter()
            .filter(|n| n.control_plane)
            .map(|n| format!("https://{}:6443", n.ctx.ip))
            .collect();
        // The admin sits at node1's console: the cluster's network, node1's clock.
        Client::new(
            &self.nodes[0].ctx.host(),
            urls,
            Some(&self.ca.cert_pem),
            Some(self.admin_token.clone()),
        )
        .map_err(Error::from)
    }

    /// Moves the cluster onto this machine: every listener also takes real TCP
    /// connections on its own (loopback) address, and time follows the wall clock,
    /// one step at most per reading, so a stopped process comes back to the cluster
    /// as it left it. Call it on the cluster's runtime; once live, it stays live.
    pub fn go_live(&self) -> Result<()> {
        self.network.bridge_tcp()?;
        if !self.sim_clock.is_live() {
            self.sim_clock.go_live();
            tokio::spawn(self.sim_clock.clone().pace());
        }
        Ok(())
    }

    /// A kubeconfig for *this* machine's real `kubectl`: the admin, talking to node1's
    /// apiserver at its address (reachable once the cluster is live).
    pub fn host_kubeconfig(&self) -> String {
        let url = format!("https://{}:6443", self.ip("node1"));
        Kubeconfig::new(
            "cluster.local",
            &url,
            &self.ca.cert_pem,
            "kubernetes-admin",
            &self.admin_token,
        )
        .to_yaml()
    }

    /// Waits until every node is registered and Ready, and every static pod shows.
    pub async fn wait_ready(&self, deadline: Duration) -> Result<()> {
        let client = self.admin()?;
        let clock = self.clock();
        let until = clock.now() + deadline;
        loop {
            if let Ok(list) = client
                .list::<NodeObject>(None, &ListParams::default())
                .await
            {
                let ready = list
                    .items
                    .iter()
                    .filter(|n| {
                        n.status
                            .conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                    .count();
                // Every static pod reported (two control-plane nodes, three each).
                let mirrors = client
                    .list::<api::types::Pod>(Some("kube-system"), &ListParams::default())
                    .await
                    .map(|l| l.items.len())
                    .unwrap_or(0);
                if ready == NODES.len() && mirrors == 6 {
                    return Ok(());
                }
            }
            if clock.now() > until {
                return Err(Error::Api(format!(
                    "the cluster was not Ready within {deadline:?}"
                )));
            }
            clock.sleep(Duration::from_millis(100)).await;
        }
    }

    /// Powers everything off: kubelets, then every container.
    pub async fn shutdown(&self) {
        for node in &self.nodes {
            node.stop_kubelet().await;
        }
        for node in &self.nodes {
            node.runtime.stop_all().await;
        }
    }
}
