//! The scheduler as a running component: informers for pods and nodes, leader
//! election, and the loop that binds pending pods and records why.
//!
//! The loop wakes whenever the pod or node cache changes (a new pod, a node that became
//! Ready, a pod that finished) and then tries every pending pod again — that is how an
//! unschedulable pod gets placed once room appears. A pod just bound is *assumed* on
//! its node until the pod informer shows the binding, so two pods scheduled in one pass
//! do not both count the same free CPU.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use api::types::{Event, Node, ObjectReference, Pod};
use client_go::client::{Client, ListParams};
use client_go::informer::{key_of, Informer};
use client_go::leaderelection::{self, Leadership};
use client_go::Error;
use seams::Clock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::schedule::{add_pod, explain, node_infos, schedule, Decision};

/// The name pods ask for in `spec.schedulerName`.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How one scheduler instance runs.
#[derive(Clone)]
pub struct Config {
    /// This instance's name (`kube-scheduler-node1`): the Lease holder and the
    /// `reportingInstance` of its events.
    pub identity: String,
    /// `None` runs without leader election (`--leader-elect=false`).
    pub leader_election: Option<leaderelection::Config>,
    /// Where the scheduler's log goes, a line at a time (a real kube-scheduler writes
    /// to stderr, which its container runtime keeps): each new decision's table, so
    /// `docker logs` on the node shows why a pod went where it went.
    pub log: Option<Log>,
}

/// A component's log: takes one line.
pub type Log = Arc<dyn Fn(String) + Send + Sync>;

/// What the scheduler did last for a pod: its decision table, for a learner to print.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub pod: String,
    pub explanation: String,
    pub bound_to: Option<String>,
}

/// A running scheduler.
pub struct Scheduler {
    /// Whether this instance leads (always true without leader election).
    pub is_leader: watch::Receiver<bool>,
    /// The latest decision per pod (`namespace/name`).
    pub records: Arc<Mutex<BTreeMap<String, Record>>>,
    task: JoinHandle<()>,
    _leadership: Leadership,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scheduler {
    /// Starts the informers, the election and the scheduling loop.
    pub fn start(client: Client, config: Config, clock: Arc<dyn Clock>) -> Scheduler {
        let leadership = Leadership::start(
            client.clone(),
            config.leader_election.clone(),
            clock.clone(),
        );
        let is_leader = leadership.watch();
        let records = Arc::new(Mutex::new(BTreeMap::new()));
        let state = Loop {
            client,
            identity: config.identity,
            clock,
            records: records.clone(),
            log: config.log,
            assumed: BTreeMap::new(),
            reported: BTreeMap::new(),
        };
        let task = tokio::spawn(state.run(is_leader.clone()));
        Scheduler {
            is_leader,
            records,
            task,
            _leadership: leadership,
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }
}

struct Loop {
    client: Client,
    identity: String,
    clock: Arc<dyn Clock>,
    records: Arc<Mutex<BTreeMap<String, Record>>>,
    log: Option<Log>,
    /// Pods bound by this loop that the informer has not shown bound yet.
    assumed: BTreeMap<String, String>,
    /// The last FailedScheduling message per pod, so an unchanged verdict is not
    /// reported again on every pass.
    reported: BTreeMap<String, String>,
}

impl Loop {
    async fn run(mut self, mut leader: watch::Receiver<bool>) {
        let all = ListParams::default();
        let pods = Informer::<Pod>::start(self.client.clone(), None, all.clone());
        let nodes = Informer::<Node>::start(self.client.clone(), None, all);
        let (mut pod_changes, mut node_changes) = (pods.changes.clone(), nodes.changes.clone());
        loop {
            tokio::select! {
                biased; // the same order every time, so a replay is the same
                r = pod_changes.changed() => if r.is_err() { return },
                r = node_changes.changed() => if r.is_err() { return },
                r = leader.changed() => if r.is_err() { return },
            }
            if !*leader.borrow() || !pods.cache.has_synced() || !nodes.cache.has_synced() {
                continue;
            }
            self.pass(&pods.cache.list(), &nodes.cache.list(), &leader)
                .await;
        }
    }

    /// Tries every pending pod once. Bindings go out concurrently (at most
    /// [`IN_FLIGHT`] at a time), as kube-scheduler's binding cycles do; each pod is
    /// assumed on its node at once, so the next decision already counts it.
    async fn pass(&mut self, pods: &[Pod], nodes: &[Node], leader: &watch::Receiver<bool>) {
        // Forget assumptions the cache has caught up with.
        let cached: BTreeMap<String, &Pod> = pods.iter().map(|p| (key_of(p), p)).collect();
        self.assumed
            .retain(|key, _| cached.get(key).is_some_and(|p| p.spec.node_name.is_empty()));
        let placed: Vec<Pod> = pods
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if let Some(node) = self.assumed.get(&key_of(&p)) {
                    p.spec.node_name = node.clone();
                }
                p
            })
            .collect();
        let mut pending: Vec<&Pod> = placed
            .iter()
            .filter(|p| {
                p.spec.node_name.is_empty()
                    && p.spec.scheduler_name == SCHEDULER_NAME
                    && p.metadata.deletion_timestamp.is_none()
            })
            .collect();
        pending.sort_by(|a, b| {
            (&a.metadata.creation_timestamp, key_of(*a))
                .cmp(&(&b.metadata.creation_timestamp, key_of(*b)))
        });
        let mut infos = node_infos(nodes, &placed);
        let mut bindings = tokio::task::JoinSet::new();
        for pod in pending {
            if !*leader.borrow() {
                break; // deposed: stop acting at once
            }
            let decision = schedule(pod, &infos);
            let key = key_of(pod);
            let explanation = explain(pod, &decision);
            tracing::debug!("{explanation}");
            match &decision {
                Decision::Bind { node, .. } => {
                    add_pod(&mut infos, pod, node);
                    self.assumed.insert(key.clone(), node.clone());
                    self.reported.remove(&key);
                    self.record(key, explanation, Some(node.clone()));
                    if bindings.len() >= IN_FLIGHT {
                        self.settle(bindings.join_next().await);
                    }
                    let (client, who, clock) = (
                        self.client.clone(),
                        self.identity.clone(),
                        self.clock.clone(),
                    );
                    let (pod, node) = (pod.clone(), node.clone());
                    bindings.spawn(async move {
                        bind(&client, &who, clock.as_ref(), &pod, &node).await
                    });
                }
                Decision::Unschedulable { message, .. } => {
                    if self.reported.get(&key) != Some(message) {
                        self.reported.insert(key.clone(), message.clone());
                        event(
                            &self.client,
                            &self.identity,
                            self.clock.as_ref(),
                            pod,
                            "Warning",
                            "FailedScheduling",
                            message,
                        )
                        .await;
                        self.mark_unschedulable(pod, message).await;
                    }
                    self.record(key, explanation, None);
                }
            }
        }
        while let Some(done) = bindings.join_next().await {
            self.settle(Some(done));
        }
    }

    /// A binding came back: a failed one is no longer assumed (the pod is tried again).
    fn settle(&mut self, done: Option<Result<Bound, tokio::task::JoinError>>) {
        if let Some(Ok((key, Err(e)))) = done {
            if !matches!(e, Error::Conflict(_) | Error::NotFound(_)) {
                tracing::warn!(pod = %key, error = %e, "binding failed");
            }
            self.assumed.remove(&key);
            self.records.lock().expect("records lock").remove(&key);
        }
    }

    fn record(&self, pod: String, explanation: String, bound_to: Option<String>) {
        let record = Record {
            pod: pod.clone(),
            explanation,
            bound_to,
        };
        let previous = self
            .records
            .lock()
            .expect("records lock")
            .insert(pod, record.clone());
        // A verdict is logged once, not on every pass that reaches it again.
        if let Some(log) = self
            .log
            .as_ref()
            .filter(|_| previous.as_ref() != Some(&record))
        {
            for line in record.explanation.lines() {
                log(line.to_string());
            }
        }
    }

    /// `PodScheduled=False, reason Unschedulable`, as kube-scheduler sets it.
    async fn mark_unschedulable(&self, pod: &Pod, message: &str) {
        let now = api::time::rfc3339(api::time::now(&*self.clock));
        let mut conditions: Vec<serde_json::Value> = pod
            .status
            .conditions
            .iter()
            .filter(|c| c.type_ != "PodScheduled")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        conditions.push(
            serde_json::json!({"type": "PodScheduled", "status": "False",
            "lastProbeTime": null, "lastTransitionTime": now,
            "reason": "Unschedulable", "message": message}),
        );
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        let (ns, name) = (&pod.metadata.namespace, &pod.metadata.name);
        if let Err(e) = self.client.patch_status::<Pod>(ns, name, &patch).await {
            tracing::debug!(pod = %name, error = %e, "could not mark the pod unschedulable");
        }
    }
}

/// A finished binding: the pod's key and whether it worked.
type Bound = (String, Result<(), Error>);

/// How many bindings may be in flight at once.
const IN_FLIGHT: usize = 16;

/// Binds one pod and records the `Scheduled` event: `(pod key, outcome)`.
async fn bind(client: &Client, identity: &str, clock: &dyn Clock, pod: &Pod, node: &str) -> Bound {
    let key = key_of(pod);
    let outcome = client
        .bind(&pod.metadata.namespace, &pod.metadata.name, node)
        .await;
    if outcome.is_ok() {
        let message = format!("Successfully assigned {key} to {node}");
        event(
            client,
            identity,
            clock,
            pod,
            "Normal",
            "Scheduled",
            &message,
        )
        .await;
    }
    (key, outcome)
}

/// Records a core/v1 Event about a pod, from `default-scheduler`.
async fn event(
    client: &Client,
    identity: &str,
    clock: &dyn Clock,
    pod: &Pod,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let now = api::time::now(clock);
    let stamp = api::time::rfc3339(now);
    let mut e = Event::default();
    e.metadata.name = format!("{}.{:x}", pod.metadata.name, now.as_nanosecond());
    e.metadata.namespace = pod.metadata.namespace.clone();
    e.involved_object = ObjectReference {
        kind: "Pod".into(),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        api_version: "v1".into(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: String::new(),
    };
    e.reason = reason.into();
    e.message = message.into();
    e.type_ = type_.into();
    e.source.component = SCHEDULER_NAME.into();
    e.first_timestamp = Some(stamp.clone());
    e.last_timestamp = Some(stamp);
    e.count = 1;
    e.reporting_component = SCHEDULER_NAME.into();
    e.reporting_instance = identity.into();
    if let Err(e) = client.create(&e).await {
        tracing::debug!(error = %e, "could not record an event");
    }
}
