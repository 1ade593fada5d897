//! The node lifecycle controller: notice a node whose kubelet went silent, and move its
//! pods away.
//!
//! Every kubelet renews a Lease `kube-node-lease/<node>` every few seconds. When a
//! node's lease is older than the grace period (`--node-monitor-grace-period`), the
//! controller:
//! 1. sets the node's conditions to `Unknown` ("Kubelet stopped posting node status.");
//! 2. taints it `node.kubernetes.io/unreachable`, `NoSchedule` (no new pods) and
//!    `NoExecute` (running pods must go);
//! 3. evicts (deletes) its pods once they stop tolerating that taint. Every pod
//!    tolerates it for 300 s by default (the apiserver adds that toleration), so pods
//!    leave a dead node five minutes later. Their ReplicaSet then makes replacements,
//!    and the scheduler puts those elsewhere — the dead node's pods stay `Terminating`,
//!    since no kubelet is there to confirm.
//!
//! A node whose kubelet reports `Ready=False` gets `node.kubernetes.io/not-ready`
//! instead. Both taints go when the node is healthy again.

use std::time::Duration;

use api::types::{Lease, Node, NodeCondition, Pod, Taint};
use jiff::{SignedDuration, Timestamp};

use crate::replicaset::is_active;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Replace the node's conditions (all `Unknown`).
    Conditions {
        node: String,
        conditions: Vec<NodeCondition>,
    },
    /// Replace the node's taints.
    Taints { node: String, taints: Vec<Taint> },
    /// Delete a pod from a node it may no longer stay on.
    Evict {
        namespace: String,
        name: String,
        node: String,
    },
}

fn parse(t: Option<&String>) -> Option<Timestamp> {
    t.and_then(|s| s.parse().ok())
}

fn stamp(t: Timestamp) -> String {
    api::time::rfc3339(t)
}

/// When the node last showed a sign of life: its lease, else its Ready heartbeat, else
/// its creation.
fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let ready = node.status.conditions.iter().find(|c| c.type_ == "Ready");
    parse(lease.and_then(|l| l.spec.renew_time.as_ref()))
        .or_else(|| parse(ready.and_then(|c| c.last_heartbeat_time.as_ref())))
        .or_else(|| parse(node.metadata.creation_timestamp.as_ref()))
}

/// The taint a node should carry for its health, if any: unreachable when silent,
/// not-ready when it says so.
fn health_taint(node: &Node, silent: bool) -> Option<&'static str> {
    let ready = node.status.conditions.iter().find(|c| c.type_ == "Ready");
    if silent {
        Some(UNREACHABLE)
    } else if ready.is_some_and(|c| c.status == "False") {
        Some(NOT_READY)
    } else {
        None
    }
}

/// The seconds a pod may stay on a node with this NoExecute taint: `None` = forever,
/// `Some(0)` = not at all.
fn tolerated_for(pod: &Pod, taint: &Taint) -> Option<i64> {
    let matching: Vec<_> = pod
        .spec
        .tolerations
        .iter()
        .filter(|t| t.tolerates(taint))
        .collect();
    if matching.is_empty() {
        return Some(0);
    }
    if matching.iter().any(|t| t.toleration_seconds.is_none()) {
        return None;
    }
    matching.iter().filter_map(|t| t.toleration_seconds).min()
}

/// What to do about every node, its lease and its pods at `now`.
pub fn reconcile(
    nodes: &[Node],
    leases: &[Lease],
    pods: &[Pod],
    now: Timestamp,
    grace: Duration,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::from_secs(40));
    for node in nodes {
        let name = &node.metadata.name;
        let lease = leases.iter().find(|l| &l.metadata.name == name);
        let silent = last_heard(node, lease).is_some_and(|t| now > t + grace);
        if silent {
            let stale = node.status.conditions.iter().any(|c| c.status != "Unknown");
            if stale || node.status.conditions.is_empty() {
                let mut conditions = node.status.conditions.clone();
                if !conditions.iter().any(|c| c.type_ == "Ready") {
                    conditions.push(NodeCondition {
                        type_: "Ready".into(),
                        ..NodeCondition::default()
                    });
                }
                for c in &mut conditions {
                    if c.status != "Unknown" {
                        c.status = "Unknown".into();
                        c.reason = "NodeStatusUnknown".into();
                        c.message = "Kubelet stopped posting node status.".into();
                        c.last_transition_time = Some(stamp(now));
                    }
                }
                actions.push(Action::Conditions {
                    node: name.clone(),
                    conditions,
                });
            }
        }
        // Keep exactly the right health taints (NoSchedule keeps new pods away,
        // NoExecute evicts running ones); other taints stay as they are.
        let want = health_taint(node, silent);
        let is_health = |t: &Taint| t.key == UNREACHABLE || t.key == NOT_READY;
        let mut taints: Vec<Taint> = node
            .spec
            .taints
            .iter()
            .filter(|t| !is_health(t) || Some(t.key.as_str()) == want)
            .cloned()
            .collect();
        if let Some(key) = want {
            for effect in ["NoSchedule", "NoExecute"] {
                if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                    taints.push(Taint {
                        key: key.into(),
                        value: String::new(),
                        effect: effect.into(),
                        time_added: Some(stamp(now)),
                    });
                }
            }
        }
        if taints != node.spec.taints {
            actions.push(Action::Taints {
                node: name.clone(),
                taints: taints.clone(),
            });
        }
        // Evict what may no longer stay.
        for pod in pods
            .iter()
            .filter(|p| &p.spec.node_name == name && is_active(p))
        {
            let must_go = taints.iter().filter(|t| t.effect == "NoExecute").any(|t| {
                match tolerated_for(pod, t) {
                    None => false,
                    Some(seconds) => {
                        let added = parse(t.time_added.as_ref()).unwrap_or(now);
                        now >= added + SignedDuration::from_secs(seconds.max(0))
                    }
                }
            });
            if must_go {
                actions.push(Action::Evict {
                    namespace: pod.metadata.namespace.clone(),
                    name: pod.metadata.name.clone(),
                    node: name.clone(),
                });
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::types::Toleration;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn node(name: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = name.into();
        n.status.conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..NodeCondition::default()
        });
        n
    }

    fn lease(name: &str, renewed: i64) -> Lease {
        let mut l = Lease::default();
        l.metadata.name = name.into();
        l.spec.renew_time = Some(stamp(at(renewed)));
        l
    }

    fn pod_on(name: &str, node: &str, tolerate_seconds: Option<i64>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.namespace = "default".into();
        p.spec.node_name = node.into();
        if let Some(s) = tolerate_seconds {
            p.spec.tolerations.push(Toleration {
                key: UNREACHABLE.into(),
                operator: "Exists".into(),
                effect: "NoExecute".into(),
                toleration_seconds: Some(s),
                ..Toleration::default()
            });
        }
        p
    }

    const GRACE: Duration = Duration::from_secs(40);

    #[test]
    fn a_fresh_lease_changes_nothing() {
        let actions = reconcile(
            &[node("node3")],
            &[lease("node3", 0)],
            &[pod_on("a", "node3", Some(300))],
            at(30),
            GRACE,
        );
        assert!(actions.is_empty(), "{actions:?}");
    }

    #[test]
    fn a_silent_node_becomes_unknown_and_unreachable() {
        let actions = reconcile(&[node("node3")], &[lease("node3", 0)], &[], at(41), GRACE);
        let Action::Conditions { conditions, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(conditions[0].status, "Unknown");
        assert_eq!(
            conditions[0].message,
            "Kubelet stopped posting node status."
        );
        let Action::Taints { taints, .. } = &actions[1] else {
            panic!("{actions:?}")
        };
        let keys: Vec<(&str, &str)> = taints
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]
        );
    }

    #[test]
    fn pods_are_evicted_when_their_toleration_runs_out() {
        let mut n = node("node3");
        n.status.conditions[0].status = "Unknown".into();
        n.spec.taints.push(Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(stamp(at(41))),
            ..Taint::default()
        });
        let pods = [
            pod_on("patient", "node3", Some(300)),
            pod_on("quick", "node3", Some(5)),
            pod_on("bare", "node3", None),
        ];
        let evicted = |now| -> Vec<String> {
            reconcile(
                std::slice::from_ref(&n),
                &[lease("node3", 0)],
                &pods,
                now,
                GRACE,
            )
            .into_iter()
            .filter_map(|a| match a {
                Action::Evict { name, .. } => Some(name),
                _ => None,
            })
            .collect()
        };
        assert_eq!(evicted(at(42)), ["bare"]);
        assert_eq!(evicted(at(46)), ["quick", "bare"]);
        assert_eq!(evicted(at(341)), ["patient", "quick", "bare"]);
    }

    #[test]
    fn a_node_that_comes_back_loses_the_taint() {
        let mut n = node("node3");
        n.spec.taints.push(Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            ..Taint::default()
        });
        let actions = reconcile(&[n], &[lease("node3", 100)], &[], at(101), GRACE);
        assert_eq!(
            actions,
            [Action::Taints {
                node: "node3".into(),
                taints: vec![]
            }]
        );
    }
}
