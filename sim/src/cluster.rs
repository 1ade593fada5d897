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
use std::time::Duration;

use api::types::Node as NodeObject;
use apiserver::pki::Ca;
use client_go::client::{Client, ListParams};
use client_go::kubeconfig::Kubeconfig;
use seams::{Clock, SystemClock};

use crate::error::{Error, Result};
use crate::kubelet::{Kubelet, KUBECONFIG, MANIFESTS, NGINX_CONF};
use crate::manifests;
use crate::network::Network;
use crate::node::{NodeContext, Timing};
use crate::runtime::{ContainerSpec, Runtime};

/// The nodes: name, address, control plane or not.
pub const NODES: [(&str, &str, bool); 3] = [
    ("node1", "10.0.0.11", true),
    ("node2", "10.0.0.12", true),
    ("node3", "10.0.0.13", false),
];

/// The admin kubeconfig on the control-plane nodes (kubeadm's, copied for root).
pub const ADMIN_CONF: &str = "/root/.kube/config";

/// One simulated machine.
pub struct Node {
    pub ctx: Arc<NodeContext>,
    pub runtime: Arc<Runtime>,
    pub control_plane: bool,
    kubelet: tokio::sync::Mutex<Option<Kubelet>>,
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
        }
    }

    /// `systemctl stop kubelet` (its containers keep running, as with docker).
    pub async fn stop_kubelet(&self) {
        self.kubelet.lock().await.take();
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
    pub network: Arc<Network>,
    pub nodes: Vec<Node>,
    pub ca: Arc<Ca>,
    pub admin_token: String,
}

/// A bearer token: 32 hex digits.
fn token(rng: &seams::Rng) -> String {
    rng.hex(32)
}

/// The etcd container of `name` (kubespray's `etcd_deployment_type: docker`). Its last
/// flags shorten etcd's timings so the assignment runs in seconds: a heartbeat of
/// 25 ms and elections of 250 ms (etcd: 100 ms and 1 s), requests that give up after
/// 2 s (etcd: 5 s plus two election timeouts), and a snapshot every 10 000 entries
/// (etcd 3.4: 100 000).
pub fn etcd_container(name: &str, ip: &str) -> ContainerSpec {
    let cluster: Vec<String> = NODES
        .iter()
        .enumerate()
        .map(|(i, (_, ip, _))| format!("etcd{}=http://{ip}:2380", i + 1))
        .collect();
    let command = [
        "etcd".to_string(),
        format!("--name={name}"),
        "--data-dir=/var/lib/etcd".into(),
        format!("--listen-client-urls=http://{ip}:2379"),
        format!("--advertise-client-urls=http://{ip}:2379"),
        format!("--listen-peer-urls=http://{ip}:2380"),
        format!("--initial-advertise-peer-urls=http://{ip}:2380"),
        format!("--initial-cluster={}", cluster.join(",")),
        "--initial-cluster-token=k8s_etcd".into(),
        "--initial-cluster-state=new".into(),
        "--heartbeat-interval=25".into(),
        "--election-timeout=250".into(),
        "--request-timeout=2s".into(),
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
    /// Installs the cluster under `root` and starts it.
    pub async fn create(root: &Path) -> Result<Cluster> {
        Cluster::create_seeded(root, seams::Rng::from_entropy()).await
    }

    /// The same, with every token, UID, container ID and identity drawn from `rng`.
    pub async fn create_seeded(root: &Path, rng: seams::Rng) -> Result<Cluster> {
        let network = Network::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ca = Arc::new(Ca::generate().map_err(Error::from)?);
        let admin_token = token(&rng);
        let control_planes: Vec<&str> = NODES.iter().filter(|n| n.2).map(|n| n.1).collect();
        let component_tokens = [
            (admin_token.clone(), "kubernetes-admin"),
            (token(&rng), "system:kube-scheduler"),
            (token(&rng), "system:kube-controller-manager"),
        ];
        let mut kubelet_tokens = Vec::new();
        for (name, _, _) in NODES {
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
        // Every service gets its address up front (as machines have their IPs).
        for (_, ip, control_plane) in NODES {
            for port in [2379, 2380, crate::kubelet::KUBELET_PORT] {
                network.reserve(ip, port)?;
            }
            if control_plane {
                network.reserve(ip, 6443)?;
            }
        }
        let mut nodes = Vec::new();
        for (i, (name, ip, control_plane)) in NODES.into_iter().enumerate() {
            let ctx = Arc::new(NodeContext {
                name: name.into(),
                ip: ip.into(),
                root: root.join(name),
                network: network.clone(),
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
                for (file, text) in manifests::control_plane(ip, &NODES.map(|n| n.1)) {
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
            });
        }
        let cluster = Cluster {
            root: root.to_path_buf(),
            network,
            nodes,
            ca,
            admin_token,
        };
        for (i, node) in cluster.nodes.iter().enumerate() {
            let spec = etcd_container(&format!("etcd{}", i + 1), &node.ctx.ip);
            node.runtime.run(spec).await?;
        }
        for node in &cluster.nodes {
            node.start_kubelet().await;
        }
        Ok(cluster)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The cluster's clock (every node shares it).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.nodes[0].ctx.clock.clone()
    }

    /// The admin's client, through every control-plane apiserver.
    pub fn admin(&self) -> Result<Client> {
        let urls = NODES
            .iter()
            .filter(|n| n.2)
            .map(|n| format!("https://{}:6443", n.1))
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

    /// A kubeconfig for *this* machine's real `kubectl`: the admin, talking to node1's
    /// apiserver at its loopback address.
    pub fn host_kubeconfig(&self) -> String {
        // The real tools cannot use the simulated network: they get the loopback port
        // behind node1's address.
        let url = match self.network.resolve("10.0.0.11", 6443) {
            Some(addr) => format!("https://{addr}"),
            None => "https://10.0.0.11:6443".to_string(),
        };
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
