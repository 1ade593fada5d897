//! The Deployment controller: a Deployment owns one ReplicaSet per version of its pod
//! template, and passes its replica count to the current one.
//!
//! The current ReplicaSet is named `<deployment>-<pod-template-hash>`: a hash of the
//! template, so a new template means a new ReplicaSet. Its selector and template carry
//! the label `pod-template-hash`, so the pods of different versions never mix. When the
//! template changes, the new ReplicaSet is scaled up to the full count and the old ones
//! down to zero at once (Kubernetes' `Recreate` strategy; the rolling update that
//! overlaps them is left out).

use api::types::{Deployment, DeploymentStatus, OwnerReference, ReplicaSet};

use crate::replicaset::controller_of;

/// The label that tells a Deployment's ReplicaSets apart.
pub const HASH_LABEL: &str = "pod-template-hash";

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create(Box<ReplicaSet>),
    /// Set `spec.replicas` of the ReplicaSet `name`.
    Scale {
        name: String,
        replicas: i32,
    },
    Status(DeploymentStatus),
}

/// The characters Kubernetes' generated names use (no vowels: no accidental words).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `pod-template-hash`: FNV-1a (32 bit) of the template's JSON, its decimal digits
/// spelled in the safe alphabet, as Kubernetes spells its hash.
pub fn template_hash(d: &Deployment) -> String {
    let json = serde_json::to_vec(&d.spec.template).unwrap_or_default();
    let mut hash: u32 = 0x811c_9dc5;
    for byte in json {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

fn owner_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone(),
        uid: d.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The ReplicaSet for the Deployment's current template.
pub fn new_replicaset(d: &Deployment) -> ReplicaSet {
    let hash = template_hash(d);
    let mut rs = ReplicaSet::default();
    rs.metadata.name = format!("{}-{hash}", d.metadata.name);
    rs.metadata.namespace = d.metadata.namespace.clone();
    rs.metadata.labels = d.spec.template.metadata.labels.clone();
    rs.metadata.labels.insert(HASH_LABEL.into(), hash.clone());
    rs.metadata.owner_references = vec![owner_ref(d)];
    rs.spec.replicas = Some(d.spec.replicas.unwrap_or(1));
    rs.spec.selector = d.spec.selector.clone();
    rs.spec
        .selector
        .match_labels
        .insert(HASH_LABEL.into(), hash.clone());
    rs.spec.template = d.spec.template.clone();
    rs.spec
        .template
        .metadata
        .labels
        .insert(HASH_LABEL.into(), hash);
    rs
}

/// What to do for `d`, given every ReplicaSet in its namespace.
pub fn reconcile(d: &Deployment, replicasets: &[ReplicaSet]) -> Vec<Action> {
    let mut actions = Vec::new();
    if d.metadata.deletion_timestamp.is_some() {
        return actions;
    }
    let owned: Vec<&ReplicaSet> = replicasets
        .iter()
        .filter(|rs| rs.metadata.namespace == d.metadata.namespace)
        .filter(|rs| {
            controller_of(&rs.metadata.owner_references).is_some_and(|o| o.uid == d.metadata.uid)
        })
        .collect();
    let want = d.spec.replicas.unwrap_or(1);
    let current = new_replicaset(d);
    match owned
        .iter()
        .find(|rs| rs.metadata.name == current.metadata.name)
    {
        None => actions.push(Action::Create(Box::new(current.clone()))),
        Some(rs) if rs.spec.replicas != Some(want) => actions.push(Action::Scale {
            name: rs.metadata.name.clone(),
            replicas: want,
        }),
        Some(_) => {}
    }
    for old in owned
        .iter()
        .filter(|rs| rs.metadata.name != current.metadata.name)
    {
        if old.spec.replicas != Some(0) {
            actions.push(Action::Scale {
                name: old.metadata.name.clone(),
                replicas: 0,
            });
        }
    }
    let sum = |f: fn(&ReplicaSet) -> i32| owned.iter().map(|rs| f(rs)).sum::<i32>();
    let updated = owned
        .iter()
        .find(|rs| rs.metadata.name == current.metadata.name)
        .map(|rs| rs.status.replicas)
        .unwrap_or(0);
    let status = DeploymentStatus {
        observed_generation: Some(d.metadata.generation),
        replicas: Some(sum(|rs| rs.status.replicas)),
        updated_replicas: Some(updated),
        ready_replicas: Some(sum(|rs| rs.status.ready_replicas.unwrap_or(0))),
        available_replicas: Some(sum(|rs| rs.status.available_replicas.unwrap_or(0))),
        conditions: d.status.conditions.clone(),
    };
    if status != d.status {
        actions.push(Action::Status(status));
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::deployment;

    #[test]
    fn a_deployment_gets_a_replicaset_named_by_its_template_hash() {
        let d = deployment("web", 2);
        let actions = reconcile(&d, &[]);
        let Some(Action::Create(rs)) = actions.first() else {
            panic!("{actions:?}")
        };
        let hash = template_hash(&d);
        assert_eq!(rs.metadata.name, format!("web-{hash}"));
        assert!(
            hash.bytes().all(|b| ALPHANUMS.contains(&b)) && hash.len() >= 6,
            "{hash}"
        );
        assert_eq!(rs.spec.selector.match_labels.get(HASH_LABEL), Some(&hash));
        assert_eq!(
            rs.spec.template.metadata.labels.get(HASH_LABEL),
            Some(&hash)
        );
        assert_eq!(rs.spec.replicas, Some(2));
    }

    #[test]
    fn scaling_passes_through_and_a_new_template_replaces_the_old_set() {
        let mut d = deployment("web", 2);
        let rs = new_replicaset(&d);
        d.spec.replicas = Some(5);
        let actions = reconcile(&d, std::slice::from_ref(&rs));
        assert!(actions.contains(&Action::Scale {
            name: rs.metadata.name.clone(),
            replicas: 5
        }));

        d.spec.template.spec.containers[0].image = "nginx:1.27".into();
        let actions = reconcile(&d, std::slice::from_ref(&rs));
        assert!(
            matches!(&actions[0], Action::Create(new) if new.metadata.name != rs.metadata.name)
        );
        assert!(actions.contains(&Action::Scale {
            name: rs.metadata.name.clone(),
            replicas: 0
        }));
    }

    #[test]
    fn status_sums_the_replicasets() {
        let d = deployment("web", 2);
        let mut rs = new_replicaset(&d);
        rs.status.replicas = 2;
        rs.status.ready_replicas = Some(1);
        let actions = reconcile(&d, &[rs]);
        let Some(Action::Status(s)) = actions.last() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (s.replicas, s.updated_replicas, s.ready_replicas),
            (Some(2), Some(2), Some(1))
        );
    }
}
