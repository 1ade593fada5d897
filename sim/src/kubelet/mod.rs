//! The kubelet: the agent on every node that turns pods into running containers.
//!
//! On start it reads the **static pod manifests** in `/etc/kubernetes/manifests` and
//! runs them without asking anyone ([`config`]). That is how the control plane itself
//! starts: kube-apiserver is a static pod, so deleting its manifest and restarting the
//! kubelet stops it. Then, through the API, it:
//! - registers its Node (capacity, labels, the control-plane taint) and renews its
//!   Lease in `kube-node-lease` — the heartbeat the node lifecycle controller watches
//!   ([`node_status`]);
//! - creates a *mirror pod* for each static pod, so `kubectl get pods -n kube-system`
//!   shows them;
//! - runs the pods the scheduler bound to this node, restarts containers that exit
//!   (with a growing back-off: `CrashLoopBackOff`), and reports each pod's status —
//!   including why a container cannot run (`CreateContainerError`,
//!   `RunContainerError`, `InvalidImageName`), with a `Warning` event;
//! - serves container logs (`/containerLogs/...`) for `kubectl logs`, through the
//!   apiserver ([`crate::kubelet_server`]).
//!
//! Each round is a reconcile, like the controllers': observe the runtime's containers,
//! let the pure [`reconcile::reconcile`] decide, carry out its actions here. Which
//! container belongs to which pod is read from the container's labels
//! ([`types`]), never from its name.
//!
//! It reaches the apiservers like kubespray's nodes do: through a local load balancer
//! (`https://localhost:6443`, an nginx whose upstreams are every control-plane node,
//! listed in `/etc/nginx/nginx.conf`). Losing one apiserver therefore does not cut a
//! node off.
//!
//! Left out: the real kubelet also looks at the manifest directory every 20 s; this
//! one reads it when it starts (the assignment restarts it). A repeated failure is
//! counted on its event, but events are not aggregated further, and `Pulling`,
//! `Created`, `Started` events are not recorded.

pub mod config;
pub mod images;
pub mod node_status;
pub mod reconcile;
pub mod status;
pub mod types;

use std::sync::Arc;

use api::types::{DeleteOptions, Event, Pod};
use client_go::client::{Client, ListParams};
use client_go::informer::Informer;
use client_go::Error as ApiError;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::MANIFESTS;
use reconcile::{Action, Desired, Host, Memory, CREATE_CONTAINER_ERROR, RUN_CONTAINER_ERROR};

use crate::error::{Error, Result};
use crate::node::NodeContext;
use crate::runtime::Runtime;

pub const KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";
pub const KUBELET_PORT: u16 = 10250;

/// A running kubelet (`systemctl stop kubelet` drops it; its containers keep running).
pub struct Kubelet {
    tasks: Vec<JoinHandle<()>>,
    syncs: watch::Receiver<Syncs>,
}

/// The rounds a kubelet has finished, for a test to wait on instead of the clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Syncs {
    pub rounds: u64,
    /// Rounds that knew the apiserver's pods (the others decided on static pods only).
    pub with_api_pods: u64,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The kubelet's client: the kubeconfig's server, or — for `https://localhost:6443` —
/// every upstream of the local nginx.
pub fn client(node: &NodeContext) -> Result<Client> {
    let text = node.read(KUBECONFIG)?;
    let target = client_go::kubeconfig::Kubeconfig::parse(&text)
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
    Client::new(
        &node.host(),
        servers,
        target.ca_pem.as_deref(),
        target.token,
    )
    .map_err(Error::from)
}

impl Kubelet {
    pub fn start(node: Arc<NodeContext>, runtime: Arc<Runtime>, control_plane: bool) -> Kubelet {
        let (done, syncs) = watch::channel(Syncs::default());
        let logs = tokio::spawn(crate::kubelet_server::serve(node.clone(), runtime.clone()));
        let main = tokio::spawn(run(node, runtime, control_plane, done));
        Kubelet {
            tasks: vec![logs, main],
            syncs,
        }
    }

    /// The rounds it has finished.
    pub fn syncs(&self) -> watch::Receiver<Syncs> {
        self.syncs.clone()
    }
}

/// The node's number, for its pods' subnet: node3 → `10.244.3.x`.
fn node_index(name: &str) -> u32 {
    name.trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0)
}

async fn run(
    node: Arc<NodeContext>,
    runtime: Arc<Runtime>,
    control_plane: bool,
    done: watch::Sender<Syncs>,
) {
    let (statics, errors) = config::static_pods(&node, api::time::now(&*node.clock));
    for e in errors {
        tracing::warn!(node = %node.name, error = %e, "a static pod manifest is left out");
    }
    let host = Host {
        name: node.name.clone(),
        ip: node.ip.clone(),
        subnet: node_index(&node.name),
    };
    let mut memory = Memory::default();
    // Static pods first: they need no apiserver (they *are* the apiserver).
    sync(&node, &runtime, None, &host, &statics, None, &mut memory).await;
    done.send_modify(|s| s.rounds += 1);
    let client = match client(&node) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(node = %node.name, error = %e, "no kubeconfig; running static pods only");
            None
        }
    };
    let params = ListParams {
        field_selector: format!("spec.nodeName={}", node.name),
        ..ListParams::default()
    };
    let pods = client
        .clone()
        .map(|c| Informer::<Pod>::start(c, None, params));
    let mut registered = false;
    let mut changes = pods.as_ref().map(|p| p.changes.clone());
    let mut heartbeat_due = node.clock.now();
    loop {
        if let Some(client) = client
            .as_ref()
            .filter(|_| node.clock.now() >= heartbeat_due)
        {
            if !registered {
                registered = node_status::register(&node, client, control_plane)
                    .await
                    .is_ok();
            }
            // Renewed: the next in 10 s. Not renewed (no apiserver answers): again at
            // the next round.
            if registered && node_status::heartbeat(&node, client).await.is_ok() {
                heartbeat_due = node.clock.now() + node.timing.node_lease_renew;
            }
        }
        // The apiserver's pods count only once the kubelet is registered and has them all.
        let api = pods
            .as_ref()
            .filter(|p| registered && p.cache.has_synced())
            .map(|p| config::from_api(p.cache.list()));
        let sync_client = client.as_ref();
        let knew = api.is_some() && sync_client.is_some();
        sync(
            &node,
            &runtime,
            sync_client,
            &host,
            &statics,
            api.as_deref(),
            &mut memory,
        )
        .await;
        done.send_modify(|s| {
            s.rounds += 1;
            s.with_api_pods += u64::from(knew);
        });
        // The next round: when a pod bound here changes (the kubelet watches them),
        // at the next relist of the containers (the PLEG's, every second), or when
        // the node lease is due, whichever is first. Unregistered, it tries again
        // at the relist.
        let relist = node.clock.sleep(node.timing.relist);
        match changes.as_mut() {
            Some(changes) => {
                tokio::select! {
                    biased;
                    _ = changes.changed() => {}
                    () = relist => {}
                }
            }
            None => relist.await,
        }
    }
}

/// One round: observe, decide, act.
async fn sync(
    node: &NodeContext,
    runtime: &Runtime,
    client: Option<&Client>,
    host: &Host,
    statics: &[Pod],
    api_pods: Option<&[Pod]>,
    memory: &mut Memory,
) {
    let observed = runtime.list().await;
    let desired = Desired {
        static_pods: statics,
        api_pods: api_pods.filter(|_| client.is_some()),
    };
    let actions = reconcile::reconcile(
        host,
        &desired,
        &observed,
        memory,
        api::time::now(&*node.clock),
    );
    for action in actions {
        act(node, runtime, client, memory, action).await;
    }
}

/// Carries out one action; a runtime failure goes into `memory` (status and event
/// next round), an API failure is retried next round, since the decision is made
/// again from what is then observed.
async fn act(
    node: &NodeContext,
    runtime: &Runtime,
    client: Option<&Client>,
    memory: &mut Memory,
    action: Action,
) {
    match action {
        Action::RemoveContainer { name } => {
            if let Err(e) = runtime.remove(&name).await {
                tracing::debug!(node = %node.name, container = %name, error = %e, "remove");
            }
        }
        Action::CreateContainer { key, spec } => {
            let name = spec.name.clone();
            if let Err(e) = runtime.create(spec).await {
                memory.failed(
                    &key,
                    CREATE_CONTAINER_ERROR,
                    e.to_string(),
                    api::time::now(&*node.clock),
                );
            } else if let Err(e) = runtime.start(&name).await {
                memory.failed(
                    &key,
                    RUN_CONTAINER_ERROR,
                    e.to_string(),
                    api::time::now(&*node.clock),
                );
            }
        }
        Action::StartContainer { key, name } => {
            if let Err(e) = runtime.start(&name).await {
                memory.failed(
                    &key,
                    RUN_CONTAINER_ERROR,
                    e.to_string(),
                    api::time::now(&*node.clock),
                );
            }
        }
        Action::DeletePod { namespace, name } => {
            let Some(client) = client else { return };
            let now = DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            };
            let _ = client.delete_with::<Pod>(&namespace, &name, &now).await;
        }
        Action::CreateMirrorPod { pod } => {
            let Some(client) = client else { return };
            // The apiserver sets a new pod's status itself; the kubelet's comes after.
            if client.create(&pod).await.is_ok() {
                let m = &pod.metadata;
                let patch = json!({"status": pod.status});
                let _ = client
                    .patch_status::<Pod>(&m.namespace, &m.name, &patch)
                    .await;
            }
        }
        Action::PatchStatus {
            namespace,
            name,
            status,
        } => {
            let Some(client) = client else { return };
            let patch = json!({"status": status});
            let _ = client.patch_status::<Pod>(&namespace, &name, &patch).await;
        }
        Action::RecordEvent { event } => {
            let Some(client) = client else { return };
            record(client, &event).await;
        }
    }
}

/// Creates an event, or counts a repeat of it on the one recorded before.
async fn record(client: &Client, event: &Event) {
    let m = &event.metadata;
    if event.count > 1 {
        let patch = json!({"count": event.count, "lastTimestamp": event.last_timestamp});
        match client.patch::<Event>(&m.namespace, &m.name, &patch).await {
            Err(ApiError::NotFound(_)) => {}
            _ => return,
        }
    }
    if let Err(e) = client.create(event).await {
        tracing::debug!(error = %e, "could not record an event");
    }
}
