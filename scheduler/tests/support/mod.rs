//! Builders and waits for the scheduler's tests.
#![allow(dead_code)]

use std::time::Duration;

use api::types::{Node, NodeCondition, Taint};

/// A Ready node with `cpu` cores; control-plane nodes carry the role label and taint.
pub fn node(name: &str, cpu: &str, control_plane: bool) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.into();
    n.status.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..NodeCondition::default()
    });
    for (k, v) in [("cpu", cpu), ("memory", "8Gi"), ("pods", "110")] {
        n.status.allocatable.insert(k.into(), v.into());
    }
    if control_plane {
        let role = "node-role.kubernetes.io/control-plane";
        n.metadata.labels.insert(role.into(), String::new());
        n.spec.taints.push(Taint {
            key: role.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
    }
    n
}

/// Waits (15 s at most) until `check` gives `Some`.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    apiserver::local::eventually(what, Duration::from_secs(15), check).await
}
