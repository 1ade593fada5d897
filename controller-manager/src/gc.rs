//! The garbage collector: objects whose controlling owner is gone are deleted.
//!
//! Deleting a ReplicaSet does not delete its pods by itself; the pods still name it in
//! their `ownerReferences`. The garbage collector notices that the owner no longer
//! exists and deletes the dependents: Deployment → its ReplicaSets → their pods.

use std::collections::HashSet;

use api::types::{Deployment, Pod, ReplicaSet};

use crate::replicaset::controller_of;

/// An object to delete, and the owner it has lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// `pods` or `replicasets`.
    pub resource: &'static str,
    pub namespace: String,
    pub name: String,
    pub owner_kind: String,
    pub owner_name: String,
    pub owner_uid: String,
}

/// Pods whose controlling ReplicaSet, and ReplicaSets whose controlling Deployment, no
/// longer exist (by uid: a new object with the same name is not the owner).
pub fn orphans(
    pods: &[Pod],
    replicasets: &[ReplicaSet],
    deployments: &[Deployment],
) -> Vec<Orphan> {
    let rs_uids: HashSet<&str> = replicasets
        .iter()
        .map(|r| r.metadata.uid.as_str())
        .collect();
    let d_uids: HashSet<&str> = deployments
        .iter()
        .map(|d| d.metadata.uid.as_str())
        .collect();
    let mut out = Vec::new();
    let mut check = |resource: &'static str,
                     meta: &api::types::ObjectMeta,
                     kind: &str,
                     alive: &HashSet<&str>| {
        if let Some(owner) = controller_of(&meta.owner_references) {
            if owner.kind == kind && !alive.contains(owner.uid.as_str()) {
                out.push(Orphan {
                    resource,
                    namespace: meta.namespace.clone(),
                    name: meta.name.clone(),
                    owner_kind: owner.kind.clone(),
                    owner_name: owner.name.clone(),
                    owner_uid: owner.uid.clone(),
                });
            }
        }
    };
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        check("pods", &p.metadata, "ReplicaSet", &rs_uids);
    }
    for r in replicasets {
        check("replicasets", &r.metadata, "Deployment", &d_uids);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{deployment, owned_pod, replicaset};

    #[test]
    fn dependents_of_missing_owners_are_orphans() {
        let rs = replicaset("web", 1);
        let pod = owned_pod("web-aaaaa", &rs, "node3");
        assert!(orphans(std::slice::from_ref(&pod), std::slice::from_ref(&rs), &[]).is_empty());
        let gone = orphans(&[pod], &[], &[]);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (gone[0].resource, gone[0].owner_name.as_str()),
            ("pods", "web")
        );

        let d = deployment("app", 1);
        let mut owned_rs = replicaset("app-abc", 1);
        owned_rs.metadata.owner_references = vec![api::types::OwnerReference {
            kind: "Deployment".into(),
            name: "app".into(),
            uid: d.metadata.uid.clone(),
            controller: Some(true),
            ..Default::default()
        }];
        assert!(orphans(
            &[],
            std::slice::from_ref(&owned_rs),
            std::slice::from_ref(&d)
        )
        .is_empty());
        assert_eq!(orphans(&[], &[owned_rs], &[])[0].resource, "replicasets");
    }
}
