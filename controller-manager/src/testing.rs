//! Builders of ReplicaSets, Deployments, pods and nodes for the unit tests.

use api::types::{Container, Deployment, Pod, PodCondition, ReplicaSet};

use crate::replicaset::owner_ref;

/// A ReplicaSet `name` selecting `app=<name>`, with a one-container template.
pub fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    let mut rs = ReplicaSet::default();
    rs.metadata.name = name.into();
    rs.metadata.namespace = "default".into();
    rs.metadata.uid = format!("uid-{name}");
    rs.metadata.generation = 1;
    rs.spec.replicas = Some(replicas);
    rs.spec
        .selector
        .match_labels
        .insert("app".into(), name.into());
    rs.spec
        .template
        .metadata
        .labels
        .insert("app".into(), name.into());
    rs.spec.template.spec.containers.push(Container {
        name: "nginx".into(),
        image: "nginx".into(),
        ..Container::default()
    });
    rs
}

/// A Deployment `name` selecting `app=<name>`.
pub fn deployment(name: &str, replicas: i32) -> Deployment {
    let rs = replicaset(name, replicas);
    let mut d = Deployment {
        metadata: rs.metadata.clone(),
        ..Deployment::default()
    };
    d.spec.replicas = Some(replicas);
    d.spec.selector = rs.spec.selector.clone();
    d.spec.template = rs.spec.template.clone();
    d
}

/// A pod of `rs`: Running and Ready on `node`, or Pending when `node` is empty.
pub fn owned_pod(name: &str, rs: &ReplicaSet, node: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = name.into();
    p.metadata.namespace = rs.metadata.namespace.clone();
    p.metadata.uid = format!("uid-{name}");
    p.metadata.labels = rs.spec.template.metadata.labels.clone();
    p.metadata.owner_references = vec![owner_ref(rs)];
    p.spec = rs.spec.template.spec.clone();
    p.spec.node_name = node.into();
    if node.is_empty() {
        p.status.phase = "Pending".into();
    } else {
        p.status.phase = "Running".into();
        p.status.conditions.push(PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..PodCondition::default()
        });
    }
    p
}
