//! The controller-manager as a running component: one process, several control loops
//! over shared informers, acting only while it holds the Lease
//! `kube-system/kube-controller-manager`.
//!
//! Each pass runs every controller's pure `reconcile` over the caches and applies the
//! actions through the API. A pass runs on every cache change, and also every
//! `monitor_period` (time alone can make a node's lease stale).
//!
//! The ReplicaSet controller keeps *expectations*, as Kubernetes' does. After creating
//! three pods, it does not act on that ReplicaSet again until the pod cache shows all
//! three. Otherwise a pass that runs before the informer catches up would count two
//! pods, not five, and create three more.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use seams::clock::Instant;

use api::types::{Deployment, Lease, Node, Pod, ReplicaSet};
use client_go::client::{Client, ListParams};
use client_go::informer::{key_of, Informer};
use client_go::leaderelection::{self, Leadership};
use client_go::Error;
use seams::Clock;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{deployment, gc, nodelifecycle, replicaset};

/// How the controller-manager runs.
#[derive(Clone)]
pub struct Config {
    pub identity: String,
    /// `None` runs without leader election.
    pub leader_election: Option<leaderelection::Config>,
    /// A node whose lease is older than this is unreachable
    /// (`--node-monitor-grace-period`, 50 s in Kubernetes 1.32).
    pub node_grace_period: Duration,
    /// How often to look at the nodes even when nothing changed
    /// (`--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
}

impl Config {
    pub fn new(identity: &str) -> Self {
        Config {
            identity: identity.into(),
            leader_election: Some(leaderelection::Config::new(
                "kube-controller-manager",
                identity,
            )),
            node_grace_period: Duration::from_secs(50),
            monitor_period: Duration::from_secs(5),
        }
    }
}

/// A running controller-manager.
pub struct ControllerManager {
    pub is_leader: watch::Receiver<bool>,
    task: JoinHandle<()>,
    _leadership: Leadership,
}

impl Drop for ControllerManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControllerManager {
    pub fn start(client: Client, config: Config, clock: Arc<dyn Clock>) -> ControllerManager {
        let leadership = Leadership::start(
            client.clone(),
            config.leader_election.clone(),
            clock.clone(),
        );
        let is_leader = leadership.watch();
        let state = Loop {
            client,
            config,
            clock,
            expectations: BTreeMap::new(),
        };
        let task = tokio::spawn(state.run(is_leader.clone()));
        ControllerManager {
            is_leader,
            task,
            _leadership: leadership,
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }
}

/// Pods a ReplicaSet created or deleted that the cache has not shown yet.
#[derive(Default)]
struct Expectations {
    adds: BTreeSet<String>,
    deletes: BTreeSet<String>,
    since: Option<Instant>,
}

struct Loop {
    client: Client,
    config: Config,
    clock: Arc<dyn Clock>,
    expectations: BTreeMap<String, Expectations>,
}

struct Caches {
    pods: Informer<Pod>,
    replicasets: Informer<ReplicaSet>,
    deployments: Informer<Deployment>,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
}

impl Caches {
    fn synced(&self) -> bool {
        self.pods.cache.has_synced()
            && self.replicasets.cache.has_synced()
            && self.deployments.cache.has_synced()
            && self.nodes.cache.has_synced()
            && self.leases.cache.has_synced()
    }
}

impl Loop {
    async fn run(mut self, mut leader: watch::Receiver<bool>) {
        let all = ListParams::default();
        let c = &self.client;
        let caches = Caches {
            pods: Informer::start(c.clone(), None, all.clone()),
            replicasets: Informer::start(c.clone(), None, all.clone()),
            deployments: Informer::start(c.clone(), None, all.clone()),
            nodes: Informer::start(c.clone(), None, all.clone()),
            leases: Informer::start(c.clone(), Some("kube-node-lease".into()), all),
        };
        let mut changes = [
            caches.pods.changes.clone(),
            caches.replicasets.changes.clone(),
            caches.deployments.changes.clone(),
            caches.nodes.changes.clone(),
            caches.leases.changes.clone(),
        ];
        loop {
            let [a, b, d, n, l] = &mut changes;
            tokio::select! {
                biased; // the same order every time, so a replay is the same
                _ = a.changed() => {}
                _ = b.changed() => {}
                _ = d.changed() => {}
                _ = n.changed() => {}
                _ = l.changed() => {}
                _ = leader.changed() => {}
                _ = self.clock.sleep(self.config.monitor_period) => {}
            }
            if *leader.borrow() && caches.synced() {
                self.pass(&caches).await;
            }
        }
    }

    async fn pass(&mut self, caches: &Caches) {
        let pods = caches.pods.cache.list();
        let replicasets = caches.replicasets.cache.list();
        let deployments = caches.deployments.cache.list();
        for d in &deployments {
            for action in deployment::reconcile(d, &replicasets) {
                self.apply_deployment(d, action).await;
            }
        }
        for rs in &replicasets {
            if self.satisfied(rs, &pods) {
                for action in replicaset::reconcile(rs, &pods) {
                    self.apply_replicaset(rs, action).await;
                }
            }
        }
        let now = api::time::now(&*self.clock);
        let nodes = caches.nodes.cache.list();
        let leases = caches.leases.cache.list();
        let grace = self.config.node_grace_period;
        for action in nodelifecycle::reconcile(&nodes, &leases, &pods, now, grace) {
            self.apply_node(action).await;
        }
        for orphan in gc::orphans(&pods, &replicasets, &deployments) {
            self.collect(orphan).await;
        }
    }

    /// Whether the cache has caught up with what this ReplicaSet last did.
    fn satisfied(&mut self, rs: &ReplicaSet, pods: &[Pod]) -> bool {
        let key = key_of(rs);
        let Some(e) = self.expectations.get_mut(&key) else {
            return true;
        };
        let present: BTreeSet<String> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(key_of)
            .collect();
        e.adds.retain(|k| !present.contains(k));
        e.deletes.retain(|k| present.contains(k));
        // Expectations that never come true (a lost watch event) expire, as in Kubernetes.
        let expired = e
            .since
            .is_some_and(|t| self.clock.elapsed(t) > Duration::from_secs(60));
        if (e.adds.is_empty() && e.deletes.is_empty()) || expired {
            self.expectations.remove(&key);
            return true;
        }
        false
    }

    fn expect(&mut self, rs: &ReplicaSet) -> &mut Expectations {
        let now = self.clock.now();
        let e = self.expectations.entry(key_of(rs)).or_default();
        e.since.get_or_insert(now);
        e
    }

    async fn apply_replicaset(&mut self, rs: &ReplicaSet, action: replicaset::Action) {
        let ns = rs.metadata.namespace.clone();
        let outcome = match action {
            replicaset::Action::Create(pod) => match self.client.create(pod.as_ref()).await {
                Ok(created) => {
                    let key = key_of(&created);
                    self.expect(rs).adds.insert(key);
                    Ok(())
                }
                Err(e) => Err(e),
            },
            replicaset::Action::Delete { namespace, name } => {
                self.expect(rs)
                    .deletes
                    .insert(format!("{namespace}/{name}"));
                self.client
                    .delete::<Pod>(&namespace, &name)
                    .await
                    .map(|_| ())
            }
            replicaset::Action::Adopt {
                namespace,
                name,
                owner,
            } => {
                let patch = json!({"metadata": {"ownerReferences": [owner]}});
                self.client
                    .patch::<Pod>(&namespace, &name, &patch)
                    .await
                    .map(|_| ())
            }
            replicaset::Action::Status(status) => {
                let patch = json!({"status": status});
                let name = &rs.metadata.name;
                self.client
                    .patch_status::<ReplicaSet>(&ns, name, &patch)
                    .await
                    .map(|_| ())
            }
        };
        log_failure("replicaset", &key_of(rs), outcome);
    }

    async fn apply_deployment(&mut self, d: &Deployment, action: deployment::Action) {
        let ns = &d.metadata.namespace;
        let outcome = match action {
            deployment::Action::Create(rs) => self.client.create(rs.as_ref()).await.map(|_| ()),
            deployment::Action::Scale { name, replicas } => {
                let patch = json!({"spec": {"replicas": replicas}});
                self.client
                    .patch::<ReplicaSet>(ns, &name, &patch)
                    .await
                    .map(|_| ())
            }
            deployment::Action::Status(status) => {
                let patch = json!({"status": status});
                let name = &d.metadata.name;
                self.client
                    .patch_status::<Deployment>(ns, name, &patch)
                    .await
                    .map(|_| ())
            }
        };
        log_failure("deployment", &key_of(d), outcome);
    }

    async fn apply_node(&mut self, action: nodelifecycle::Action) {
        let outcome = match &action {
            nodelifecycle::Action::Conditions { node, conditions } => {
                tracing::info!(node = %node, "node stopped posting status: Ready=Unknown");
                let patch = json!({"status": {"conditions": conditions}});
                self.client
                    .patch_status::<Node>("", node, &patch)
                    .await
                    .map(|_| ())
            }
            nodelifecycle::Action::Taints { node, taints } => {
                let patch = json!({"spec": {"taints": taints}});
                self.client
                    .patch::<Node>("", node, &patch)
                    .await
                    .map(|_| ())
            }
            nodelifecycle::Action::Evict {
                namespace,
                name,
                node,
            } => {
                tracing::info!(pod = %name, node = %node, "evicting a pod from an unhealthy node");
                self.client.delete::<Pod>(namespace, name).await.map(|_| ())
            }
        };
        log_failure("node-lifecycle", &format!("{action:?}"), outcome);
    }

    /// Deletes an orphan after checking, live, that its owner is really gone (the
    /// caches of different kinds may lag one another).
    async fn collect(&mut self, orphan: gc::Orphan) {
        let ns = &orphan.namespace;
        let owner_alive = match orphan.owner_kind.as_str() {
            "ReplicaSet" => self
                .client
                .get::<ReplicaSet>(ns, &orphan.owner_name)
                .await
                .map(|o| o.metadata.uid),
            _ => self
                .client
                .get::<Deployment>(ns, &orphan.owner_name)
                .await
                .map(|o| o.metadata.uid),
        };
        match owner_alive {
            Ok(uid) if uid == orphan.owner_uid => return,
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(_) => return, // cannot tell now; next pass
        }
        let outcome = match orphan.resource {
            "pods" => self
                .client
                .delete::<Pod>(ns, &orphan.name)
                .await
                .map(|_| ()),
            _ => self
                .client
                .delete::<ReplicaSet>(ns, &orphan.name)
                .await
                .map(|_| ()),
        };
        log_failure("garbage-collector", &orphan.name, outcome);
    }
}

fn log_failure(controller: &str, what: &str, outcome: Result<(), Error>) {
    match outcome {
        Ok(()) | Err(Error::NotFound(_)) | Err(Error::Conflict(_)) => {}
        Err(e) => {
            tracing::warn!(controller, object = %what, error = %e, "action failed; retried next pass")
        }
    }
}
