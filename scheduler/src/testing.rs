//! Small builders of nodes and pods, for the unit tests, the benchmark and the
//! simulator's examples.

use api::types::{Container, Node, NodeCondition, Pod, ResourceRequirements, Taint};

use crate::filters::NodeInfo;

/// A Ready node with `cpu` cores, 8Gi of memory, room for 110 pods, and these taints
/// (`(key, effect)`), nothing on it yet.
pub fn node(name: &str, cpu: &str, taints: &[(&str, &str)]) -> NodeInfo {
    let mut n = Node::default();
    n.metadata.name = name.into();
    n.status.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..NodeCondition::default()
    });
    for (k, v) in [("cpu", cpu), ("memory", "8Gi"), ("pods", "110")] {
        n.status.allocatable.insert(k.into(), v.into());
        n.status.capacity.insert(k.into(), v.into());
    }
    n.spec.taints = taints
        .iter()
        .map(|(key, effect)| Taint {
            key: key.to_string(),
            effect: effect.to_string(),
            ..Taint::default()
        })
        .collect();
    NodeInfo {
        node: n,
        requested_cpu: 0,
        requested_memory: 0,
        nonzero_cpu: 0,
        nonzero_memory: 0,
        pods: 0,
    }
}

/// A pending pod asking for `cpu` ("" for nothing), for the default scheduler.
pub fn pod(name: &str, cpu: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = name.into();
    p.spec.scheduler_name = "default-scheduler".into();
    let mut resources = ResourceRequirements::default();
    if !cpu.is_empty() {
        resources.requests.insert("cpu".into(), cpu.into());
    }
    p.spec.containers.push(Container {
        name: name.into(),
        image: "alpine".into(),
        resources,
        ..Container::default()
    });
    p
}

/// A pod already bound to `node`.
pub fn bound(name: &str, cpu: &str, node: &str) -> Pod {
    let mut p = pod(name, cpu);
    p.spec.node_name = node.into();
    p.status.phase = "Running".into();
    p
}
