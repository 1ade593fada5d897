//! The kubelet: the agent on every node that turns pods into running containers.
//!
//! On start it reads the **static pod manifests** in `/etc/kubernetes/manifests` and
//! runs them without asking anyone. That is how the control plane itself starts:
//! kube-apiserver is a static pod, so deleting its manifest and restarting the kubelet
//! stops it. Then, through the API, it:
//! - registers its Node (capacity, labels, the control-plane taint) and renews its
//!   Lease in `kube-node-lease` — the heartbeat the node lifecycle controller watches;
//! - creates a *mirror pod* for each static pod, so `kubectl get pods -n kube-system`
//!   shows them;
//! - runs the pods the scheduler bound to this node, restarts containers that exit
//!   (with a growing back-off: `CrashLoopBackOff`), and reports each pod's status;
//! - serves container logs (`/containerLogs/...`) for `kubectl logs`, through the
//!   apiserver.
//!
//! It reaches the apiservers like kubespray's nodes do: through a local load balancer
//! (`https://localhost:6443`, an nginx whose upstreams are every control-plane node,
//! listed in `/etc/nginx/nginx.conf`). Losing one apiserver therefore does not cut a
//! node off.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use apiserver::client::{Client, ListParams};
use apiserver::informer::Informer;
use apiserver::types::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, DeleteOptions, Lease, Node, NodeAddress, NodeCondition, Pod, PodCondition,
    Taint,
};
use apiserver::Error as ApiError;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::node::NodeContext;
use crate::runtime::{ContainerSpec, Runtime, State};
use crate::workloads::effective_command;

pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub const KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";
pub const KUBELET_PORT: u16 = 10250;
const MIRROR: &str = "kubernetes.io/config.mirror";

/// A running kubelet (`systemctl stop kubelet` drops it; its containers keep running).
pub struct Kubelet {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The docker name of a pod's container, as the kubelet names them.
pub fn container_name(pod: &Pod, container: &str) -> String {
    docker_name(&pod.metadata.namespace, &pod.metadata.name, container)
}

/// `k8s_<container>_<pod>_<namespace>`.
pub fn docker_name(namespace: &str, pod: &str, container: &str) -> String {
    format!("k8s_{container}_{pod}_{namespace}")
}

/// The static pods in the manifests directory, by pod name (`kube-apiserver-node1`).
pub fn static_pods(node: &NodeContext) -> Result<BTreeMap<String, Pod>> {
    let mut pods = BTreeMap::new();
    let dir = node.path(MANIFESTS);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(pods);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let mut pod: Pod = serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        pod.metadata.name = format!("{}-{}", pod.metadata.name, node.name);
        if pod.metadata.namespace.is_empty() {
            pod.metadata.namespace = "kube-system".into();
        }
        pod.spec.node_name = node.name.clone();
        pods.insert(pod.metadata.name.clone(), pod);
    }
    Ok(pods)
}

/// The kubelet's client: the kubeconfig's server, or — for `https://localhost:6443` —
/// every upstream of the local nginx.
pub fn client(node: &NodeContext) -> Result<Client> {
    let text = node.read(KUBECONFIG)?;
    let target = apiserver::kubeconfig::Kubeconfig::parse(&text)
        .and_then(|k| k.target())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut servers = vec![target.server.clone()];
    if target.server.contains("://localhost:") {
        let conf = node.read(NGINX_CONF).unwrap_or_default();
        servers = conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("server "))
            .map(|s| format!("https://{}", s.trim_end_matches(';').trim()))
            .collect();
    }
    let servers = servers
        .iter()
        .map(|s| node.network.resolve_url(s))
        .collect();
    Client::new(servers, target.ca_pem.as_deref(), target.token).map_err(Error::from)
}

impl Kubelet {
    pub fn start(node: Arc<NodeContext>, runtime: Arc<Runtime>, control_plane: bool) -> Kubelet {
        let logs = tokio::spawn(crate::kubelet_server::serve(node.clone(), runtime.clone()));
        let main = tokio::spawn(run(node, runtime, control_plane));
        Kubelet {
            tasks: vec![logs, main],
        }
    }
}

async fn run(node: Arc<NodeContext>, runtime: Arc<Runtime>, control_plane: bool) {
    // Static pods first: they need no apiserver (they *are* the apiserver).
    let statics = match static_pods(&node) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(node = %node.name, error = %e, "unreadable manifests");
            BTreeMap::new()
        }
    };
    sync_static(&runtime, &statics).await;
    let client = match client(&node) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(node = %node.name, error = %e, "no kubeconfig; running static pods only");
            return;
        }
    };
    let params = ListParams {
        field_selector: format!("spec.nodeName={}", node.name),
        ..ListParams::default()
    };
    let pods = Informer::<Pod>::start(client.clone(), None, params);
    let mut state = PodState::default();
    let mut registered = false;
    loop {
        if !registered {
            registered = register(&node, &client, control_plane).await.is_ok();
        }
        if registered {
            let _ = heartbeat(&node, &client).await;
            sync_mirrors(&node, &client, &statics, &pods.cache.list()).await;
            if pods.cache.has_synced() {
                sync_pods(&node, &client, &runtime, &pods.cache.list(), &mut state).await;
            }
        }
        tokio::time::sleep(node.timing.node_lease_renew).await;
    }
}

/// Starts static pods that are not running, removes those whose manifest is gone.
async fn sync_static(runtime: &Runtime, statics: &BTreeMap<String, Pod>) {
    let mut wanted = HashMap::new();
    for pod in statics.values() {
        for c in &pod.spec.containers {
            let command = effective_command(&c.image, &c.command, &c.args);
            wanted.insert(container_name(pod, &c.name), (c.image.clone(), command));
        }
    }
    for info in runtime.list().await {
        let is_static = info.name.starts_with("k8s_") && info.name.ends_with("_kube-system");
        if is_static && !wanted.contains_key(&info.name) {
            let _ = runtime.remove(&info.name).await;
        }
    }
    for (name, (image, command)) in wanted {
        match runtime.info(&name).await {
            Some(c) if matches!(c.state, State::Running { .. }) => {}
            Some(_) => {
                let _ = runtime.start(&name).await;
            }
            None => {
                let spec = ContainerSpec {
                    name,
                    image,
                    command,
                    ..ContainerSpec::default()
                };
                if let Err(e) = runtime.run(spec).await {
                    tracing::warn!(error = %e, "a static pod did not start");
                }
            }
        }
    }
}

fn now(node: &NodeContext) -> String {
    node.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn node_object(node: &NodeContext, control_plane: bool) -> Node {
    let mut n = Node::default();
    n.metadata.name = node.name.clone();
    let labels = &mut n.metadata.labels;
    for (k, v) in [
        ("kubernetes.io/hostname", node.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
    ] {
        labels.insert(k.into(), v.into());
    }
    if control_plane {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
        n.spec.taints.push(Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    }
    for (k, v) in [
        ("cpu", "2"),
        ("memory", "4023596Ki"),
        ("pods", "110"),
        ("ephemeral-storage", "30Gi"),
    ] {
        n.status.capacity.insert(k.into(), v.into());
        n.status.allocatable.insert(k.into(), v.into());
    }
    n.status.conditions = ready_conditions(node);
    n.status.addresses = vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: node.ip.clone(),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: node.name.clone(),
        },
    ];
    n.status.daemon_endpoints.kubelet_endpoint.port = KUBELET_PORT;
    let info = &mut n.status.node_info;
    info.kubelet_version = "v1.32.0".into();
    info.os_image = "Ubuntu 22.04.4 LTS".into();
    info.kernel_version = "5.15.0-miniplane".into();
    info.container_runtime_version = "docker://24.0.7".into();
    info.operating_system = "linux".into();
    info.architecture = "amd64".into();
    n
}

fn ready_conditions(node: &NodeContext) -> Vec<NodeCondition> {
    let t = now(node);
    let c = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        last_heartbeat_time: Some(t.clone()),
        last_transition_time: Some(t.clone()),
        reason: reason.into(),
        message: message.into(),
    };
    vec![
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
    ]
}

/// Creates the Node, or (after a restart) reports it Ready again.
async fn register(node: &NodeContext, client: &Client, control_plane: bool) -> Result<()> {
    let object = node_object(node, control_plane);
    match client.create(&object).await {
        Ok(_) => Ok(()),
        Err(ApiError::AlreadyExists(_)) => {
            let patch = json!({"status": {"conditions": object.status.conditions}});
            client.patch_status::<Node>("", &node.name, &patch).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Renews `kube-node-lease/<node>`; reports Ready if the node was marked Unknown.
async fn heartbeat(node: &NodeContext, client: &Client) -> Result<()> {
    let renew = apiserver::leaderelection::micro_time(node.clock.now());
    match client.get::<Lease>("kube-node-lease", &node.name).await {
        Ok(mut lease) => {
            lease.spec.renew_time = Some(renew);
            client.update(&lease).await?;
        }
        Err(ApiError::NotFound(_)) => {
            let mut lease = Lease::default();
            lease.metadata.name = node.name.clone();
            lease.metadata.namespace = "kube-node-lease".into();
            lease.spec.holder_identity = Some(node.name.clone());
            lease.spec.lease_duration_seconds = Some(40);
            lease.spec.renew_time = Some(renew);
            client.create(&lease).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let current: Node = client.get("", &node.name).await?;
    let ready = current
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        let patch = json!({"status": {"conditions": ready_conditions(node)}});
        client.patch_status::<Node>("", &node.name, &patch).await?;
    }
    Ok(())
}

/// Mirror pods: one per static pod, none for a manifest that is gone.
async fn sync_mirrors(
    node: &NodeContext,
    client: &Client,
    statics: &BTreeMap<String, Pod>,
    pods: &[Pod],
) {
    for pod in pods
        .iter()
        .filter(|p| p.metadata.annotations.contains_key(MIRROR))
    {
        if !statics.contains_key(&pod.metadata.name) {
            confirm_deletion(client, pod).await;
        }
    }
    for (name, pod) in statics {
        if pods.iter().any(|p| &p.metadata.name == name) {
            continue;
        }
        let mut mirror = pod.clone();
        mirror
            .metadata
            .annotations
            .insert(MIRROR.into(), "file".into());
        mirror
            .metadata
            .annotations
            .insert("kubernetes.io/config.source".into(), "file".into());
        if client.create(&mirror).await.is_ok() {
            let status = running_status(node, &mirror, &node.ip, 0);
            let patch = json!({"status": status});
            let _ = client
                .patch_status::<Pod>("kube-system", name, &patch)
                .await;
        }
    }
}

fn running_status(
    node: &NodeContext,
    pod: &Pod,
    pod_ip: &str,
    restarts: i32,
) -> apiserver::types::PodStatus {
    let t = now(node);
    let cond = |type_: &str| PodCondition {
        type_: type_.into(),
        status: "True".into(),
        last_probe_time: None,
        last_transition_time: Some(t.clone()),
        ..PodCondition::default()
    };
    apiserver::types::PodStatus {
        phase: "Running".into(),
        conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
            .map(cond)
            .to_vec(),
        host_ip: node.ip.clone(),
        pod_ip: pod_ip.into(),
        start_time: Some(t.clone()),
        container_statuses: pod
            .spec
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                ready: true,
                restart_count: restarts,
                image: c.image.clone(),
                image_id: format!("docker-pullable://{}", c.image),
                container_id: format!("docker://{}", container_name(pod, &c.name)),
                started: Some(true),
                state: ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(t.clone()),
                    }),
                    ..ContainerState::default()
                },
                last_state: ContainerState::default(),
            })
            .collect(),
        qos_class: pod.status.qos_class.clone(),
        ..Default::default()
    }
}

/// What the kubelet remembers about the pods it runs.
#[derive(Default)]
struct PodState {
    /// Pod key → its IP.
    ips: HashMap<String, String>,
    next_ip: u32,
    /// Container name → restarts so far, and when it may be started again.
    backoff: HashMap<String, (i32, std::time::Instant)>,
}

/// Runs the pods bound here, stops the ones being deleted, reports statuses.
async fn sync_pods(
    node: &NodeContext,
    client: &Client,
    runtime: &Runtime,
    pods: &[Pod],
    state: &mut PodState,
) {
    let mut keep = Vec::new();
    for pod in pods
        .iter()
        .filter(|p| !p.metadata.annotations.contains_key(MIRROR))
    {
        let key = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
        if pod.metadata.deletion_timestamp.is_some() {
            for c in &pod.spec.containers {
                let _ = runtime.remove(&container_name(pod, &c.name)).await;
            }
            confirm_deletion(client, pod).await;
            continue;
        }
        let ip = state
            .ips
            .entry(key)
            .or_insert_with(|| {
                state.next_ip += 1;
                format!("10.244.{}.{}", node_index(&node.name), state.next_ip + 1)
            })
            .clone();
        let mut statuses = Vec::new();
        for c in &pod.spec.containers {
            let name = container_name(pod, &c.name);
            keep.push(name.clone());
            let status = sync_container(node, runtime, pod, c, &name, state).await;
            statuses.push(status);
        }
        report(node, client, pod, &ip, statuses).await;
    }
    // Containers of pods that are gone.
    for info in runtime.list().await {
        let ours = info.name.starts_with("k8s_") && !info.name.ends_with("_kube-system");
        if ours && !keep.contains(&info.name) {
            let _ = runtime.remove(&info.name).await;
            state.backoff.remove(&info.name);
        }
    }
}

fn node_index(name: &str) -> u32 {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0)
}

/// Starts, watches and restarts one container; returns its status.
async fn sync_container(
    node: &NodeContext,
    runtime: &Runtime,
    pod: &Pod,
    c: &apiserver::types::Container,
    name: &str,
    state: &mut PodState,
) -> ContainerStatus {
    let t = now(node);
    let (restarts, retry_at) = state
        .backoff
        .get(name)
        .copied()
        .unwrap_or((0, std::time::Instant::now()));
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: format!("docker-pullable://{}", c.image),
        container_id: format!("docker://{name}"),
        restart_count: restarts,
        ..ContainerStatus::default()
    };
    match runtime.info(name).await {
        None => {
            let command = effective_command(&c.image, &c.command, &c.args);
            let spec = ContainerSpec {
                name: name.into(),
                image: c.image.clone(),
                command,
                ..ContainerSpec::default()
            };
            let _ = runtime.run(spec).await;
            status.state.running = Some(ContainerStateRunning {
                started_at: Some(t),
            });
            status.ready = true;
            status.started = Some(true);
        }
        Some(info) => match info.state {
            State::Running { since } => {
                status.state.running = Some(ContainerStateRunning {
                    started_at: Some(since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                });
                status.ready = true;
                status.started = Some(true);
            }
            State::Created => {
                let _ = runtime.start(name).await;
            }
            State::Exited { code, .. } => {
                let always =
                    pod.spec.restart_policy.is_empty() || pod.spec.restart_policy == "Always";
                let restart = always || (pod.spec.restart_policy == "OnFailure" && code != 0);
                if restart && std::time::Instant::now() >= retry_at {
                    let _ = runtime.start(name).await;
                    // Kubernetes doubles the back-off from 10 s up to 5 min; here seconds.
                    let wait = Duration::from_millis(500 * 2u64.pow(restarts.min(6) as u32));
                    state.backoff.insert(
                        name.into(),
                        (restarts + 1, std::time::Instant::now() + wait),
                    );
                    status.restart_count = restarts + 1;
                    status.state.running = Some(ContainerStateRunning {
                        started_at: Some(t),
                    });
                } else if restart {
                    status.state.waiting = Some(ContainerStateWaiting {
                        reason: "CrashLoopBackOff".into(),
                        message: format!(
                            "back-off restarting failed container {} in pod {}",
                            c.name, pod.metadata.name
                        ),
                    });
                } else {
                    status.state.terminated = Some(ContainerStateTerminated {
                        exit_code: code,
                        reason: if code == 0 { "Completed" } else { "Error" }.into(),
                        ..ContainerStateTerminated::default()
                    });
                }
            }
        },
    }
    status
}

/// Deletes a pod for good (grace period 0): the kubelet's confirmation that its
/// containers are stopped.
async fn confirm_deletion(client: &Client, pod: &Pod) {
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    let _ = client
        .delete_with::<Pod>(&pod.metadata.namespace, &pod.metadata.name, &now)
        .await;
}

/// Writes the pod's status if it changed.
async fn report(
    node: &NodeContext,
    client: &Client,
    pod: &Pod,
    ip: &str,
    statuses: Vec<ContainerStatus>,
) {
    let mut status = running_status(node, pod, ip, 0);
    let all_running = statuses.iter().all(|s| s.state.running.is_some());
    let all_done = statuses.iter().all(|s| s.state.terminated.is_some());
    status.phase = if all_running || !all_done {
        "Running".into()
    } else if statuses.iter().all(|s| {
        s.state
            .terminated
            .as_ref()
            .is_some_and(|t| t.exit_code == 0)
    }) {
        "Succeeded".into()
    } else {
        "Failed".into()
    };
    let ready = if all_running { "True" } else { "False" };
    for c in &mut status.conditions {
        if c.type_ == "Ready" || c.type_ == "ContainersReady" {
            c.status = ready.into();
        }
    }
    status.container_statuses = statuses;
    // Keep the times of an unchanged status, so nothing is written when nothing changed.
    let same = |a: &apiserver::types::PodStatus, b: &apiserver::types::PodStatus| {
        let strip = |s: &apiserver::types::PodStatus| {
            let mut s = s.clone();
            s.start_time = None;
            for c in &mut s.conditions {
                c.last_transition_time = None;
            }
            for c in &mut s.container_statuses {
                if let Some(r) = &mut c.state.running {
                    r.started_at = None;
                }
            }
            s
        };
        strip(a) == strip(b)
    };
    if same(&status, &pod.status) {
        return;
    }
    status.qos_class = pod.status.qos_class.clone();
    let patch = json!({"status": status});
    let _ = client
        .patch_status::<Pod>(&pod.metadata.namespace, &pod.metadata.name, &patch)
        .await;
}
