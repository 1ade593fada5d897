//! What the server does to each kind beyond storing it: defaults it fills in, rules it
//! checks, and the fields selectors can match — kube-apiserver's "strategies"
//! (`pkg/registry/<group>/<kind>/strategy.go`).
//!
//! Everything here is a pure function of the object; the REST layer calls it.

use crate::error::{immutable, invalid, required};
use crate::types::{
    Deployment, Event, Lease, Namespace, Node, Pod, ReplicaSet, Resource, Service, StatusCause,
    Toleration,
};

/// A kind's server-side behaviour.
pub trait Strategy: Resource {
    /// Whether `status` is written only through the `/status` subresource (a plain
    /// update keeps the stored status; a status update keeps everything else).
    const HAS_STATUS: bool = false;
    /// The name rule: namespaces must be DNS-1123 labels, most others subdomains.
    const NAME_IS_LABEL: bool = false;

    /// What the server fills in when the object is created.
    fn defaults(&mut self) {}

    /// Rules beyond the JSON shape and the name.
    fn validate(&self) -> Vec<StatusCause> {
        Vec::new()
    }

    /// Rules about what an update may change.
    fn validate_update(&self, _old: &Self) -> Vec<StatusCause> {
        Vec::new()
    }

    /// A field selector's value for this object (`spec.nodeName`), beyond
    /// `metadata.name` and `metadata.namespace`, which every kind has.
    fn field(&self, _name: &str) -> Option<String> {
        None
    }
}

impl Strategy for Namespace {
    const NAME_IS_LABEL: bool = true;
    fn defaults(&mut self) {
        let status = self.status.get_or_insert_with(Default::default);
        if status.phase.is_empty() {
            status.phase = "Active".into();
        }
        self.metadata
            .labels
            .entry("kubernetes.io/metadata.name".into())
            .or_insert_with(|| self.metadata.name.clone());
    }
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "status.phase" => Some(self.status.clone().unwrap_or_default().phase),
            _ => None,
        }
    }
}

/// Tolerations every pod gets from kube-apiserver's DefaultTolerationSeconds admission
/// plugin: stay 300 s on a node that went NotReady or unreachable, then be evicted.
fn default_tolerations() -> [Toleration; 2] {
    [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    .map(|key| Toleration {
        key: key.into(),
        operator: "Exists".into(),
        effect: "NoExecute".into(),
        toleration_seconds: Some(300),
        ..Toleration::default()
    })
}

impl Strategy for Pod {
    const HAS_STATUS: bool = true;
    fn defaults(&mut self) {
        let spec = &mut self.spec;
        for (field, value) in [
            (&mut spec.restart_policy, "Always"),
            (&mut spec.dns_policy, "ClusterFirst"),
            (&mut spec.scheduler_name, "default-scheduler"),
        ] {
            if field.is_empty() {
                *field = value.into();
            }
        }
        spec.termination_grace_period_seconds.get_or_insert(30);
        spec.priority.get_or_insert(0);
        for c in &mut spec.containers {
            if c.termination_message_path.is_empty() {
                c.termination_message_path = "/dev/termination-log".into();
            }
            if c.termination_message_policy.is_empty() {
                c.termination_message_policy = "File".into();
            }
            if c.image_pull_policy.is_empty() {
                // No tag or `:latest` means "always pull", as Kubernetes defaults it.
                let tagged = c
                    .image
                    .rsplit('/')
                    .next()
                    .is_some_and(|last| last.contains(':'));
                let latest = c.image.ends_with(":latest");
                c.image_pull_policy = if !tagged || latest {
                    "Always"
                } else {
                    "IfNotPresent"
                }
                .into();
            }
            for p in &mut c.ports {
                if p.protocol.is_empty() {
                    p.protocol = "TCP".into();
                }
            }
        }
        for t in default_tolerations() {
            if !spec.tolerations.iter().any(|have| have.key == t.key) {
                spec.tolerations.push(t);
            }
        }
        if self.status.phase.is_empty() {
            self.status.phase = "Pending".into();
        }
        if self.status.qos_class.is_empty() {
            self.status.qos_class = qos_class(self).into();
        }
    }

    fn validate(&self) -> Vec<StatusCause> {
        let mut causes = Vec::new();
        if self.spec.containers.is_empty() {
            causes.push(required("spec.containers"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.spec.containers.iter().enumerate() {
            let field = format!("spec.containers[{i}]");
            if c.name.is_empty() {
                causes.push(required(&format!("{field}.name")));
            } else if let Some(why) = crate::names::check_label(&c.name) {
                causes.push(invalid(&format!("{field}.name"), &c.name, &why));
            } else if !seen.insert(c.name.as_str()) {
                causes.push(StatusCause {
                    reason: "FieldValueDuplicate".into(),
                    message: format!("Duplicate value: \"{}\"", c.name),
                    field: format!("{field}.name"),
                });
            }
            if c.image.is_empty() {
                causes.push(required(&format!("{field}.image")));
            }
            let resources = [
                ("requests", &c.resources.requests),
                ("limits", &c.resources.limits),
            ];
            for (kind, list) in resources {
                for (name, value) in list {
                    if let Err(e) = crate::types::Quantity::parse(value) {
                        let at = format!("{field}.resources.{kind}[{name}]");
                        causes.push(invalid(&at, value, &e.to_string()));
                    }
                }
            }
        }
        let policy = self.spec.restart_policy.as_str();
        if !["", "Always", "OnFailure", "Never"].contains(&policy) {
            causes.push(StatusCause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: \"{policy}\": supported values: \"Always\", \"OnFailure\", \"Never\""
                ),
                field: "spec.restartPolicy".into(),
            });
        }
        causes
    }

    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        let mut causes = Vec::new();
        // A pod's containers are fixed once it exists, except for their images.
        let strip = |p: &Pod| {
            let mut spec = p.spec.clone();
            for c in &mut spec.containers {
                c.image.clear();
            }
            spec.tolerations.clear();
            spec
        };
        if strip(self) != strip(old) {
            causes.push(StatusCause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.tolerations` (only additions to existing tolerations)".into(),
                field: "spec".into(),
            });
        }
        causes
    }

    fn field(&self, name: &str) -> Option<String> {
        match name {
            "spec.nodeName" => Some(self.spec.node_name.clone()),
            "spec.schedulerName" => Some(self.spec.scheduler_name.clone()),
            "spec.restartPolicy" => Some(self.spec.restart_policy.clone()),
            "status.phase" => Some(self.status.phase.clone()),
            "status.podIP" => Some(self.status.pod_ip.clone()),
            _ => None,
        }
    }
}

/// `BestEffort` without requests or limits, `Guaranteed` when every container's limits
/// equal its requests for cpu and memory, `Burstable` otherwise.
fn qos_class(pod: &Pod) -> &'static str {
    let containers = &pod.spec.containers;
    if containers
        .iter()
        .all(|c| c.resources.requests.is_empty() && c.resources.limits.is_empty())
    {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = c.resources.limits.get(*r);
            limit.is_some()
                && c.resources
                    .requests
                    .get(*r)
                    .is_none_or(|req| Some(req) == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

impl Strategy for Node {
    const HAS_STATUS: bool = true;
    fn field(&self, name: &str) -> Option<String> {
        match name {
            "spec.unschedulable" => Some(self.spec.unschedulable.to_string()),
            _ => None,
        }
    }
}

impl Strategy for Event {
    fn field(&self, name: &str) -> Option<String> {
        let o = &self.involved_object;
        Some(match name {
            "involvedObject.kind" => o.kind.clone(),
            "involvedObject.namespace" => o.namespace.clone(),
            "involvedObject.name" => o.name.clone(),
            "involvedObject.uid" => o.uid.clone(),
            "involvedObject.apiVersion" => o.api_version.clone(),
            "involvedObject.resourceVersion" => o.resource_version.clone(),
            "involvedObject.fieldPath" => o.field_path.clone(),
            "reason" => self.reason.clone(),
            "type" => self.type_.clone(),
            "source" => self.source.component.clone(),
            _ => return None,
        })
    }
}

impl Strategy for Service {}
impl Strategy for Lease {}

/// Rules ReplicaSets and Deployments share: a selector that matches the template.
fn validate_replicated(
    replicas: Option<i32>,
    selector: &crate::types::LabelSelector,
    template: &crate::types::PodTemplateSpec,
) -> Vec<StatusCause> {
    let mut causes = Vec::new();
    if let Some(n) = replicas.filter(|n| *n < 0) {
        causes.push(invalid(
            "spec.replicas",
            &n.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        causes.push(required("spec.selector"));
    } else if !crate::selectors::matches_selector(selector, &template.metadata.labels) {
        causes.push(invalid(
            "spec.template.metadata.labels",
            &crate::selectors::format_labels(&template.metadata.labels),
            "`selector` does not match template `labels`",
        ));
    }
    if template.spec.containers.is_empty() {
        causes.push(required("spec.template.spec.containers"));
    }
    for (i, c) in template.spec.containers.iter().enumerate() {
        if c.image.is_empty() {
            causes.push(required(&format!(
                "spec.template.spec.containers[{i}].image"
            )));
        }
    }
    causes
}

/// A controller's selector may not change: its pods would be orphaned.
fn selector_unchanged(
    new: &crate::types::LabelSelector,
    old: &crate::types::LabelSelector,
) -> Vec<StatusCause> {
    if new == old {
        Vec::new()
    } else {
        vec![immutable("spec.selector")]
    }
}

impl Strategy for ReplicaSet {
    const HAS_STATUS: bool = true;
    fn defaults(&mut self) {
        self.spec.replicas.get_or_insert(1);
    }
    fn validate(&self) -> Vec<StatusCause> {
        validate_replicated(self.spec.replicas, &self.spec.selector, &self.spec.template)
    }
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        selector_unchanged(&self.spec.selector, &old.spec.selector)
    }
}

impl Strategy for Deployment {
    const HAS_STATUS: bool = true;
    fn defaults(&mut self) {
        self.spec.replicas.get_or_insert(1);
        self.spec.revision_history_limit.get_or_insert(10);
        self.spec.progress_deadline_seconds.get_or_insert(600);
        self.spec.strategy.get_or_insert_with(|| {
            serde_json::json!({"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        });
    }
    fn validate(&self) -> Vec<StatusCause> {
        validate_replicated(self.spec.replicas, &self.spec.selector, &self.spec.template)
    }
    fn validate_update(&self, old: &Self) -> Vec<StatusCause> {
        selector_unchanged(&self.spec.selector, &old.spec.selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Container, ResourceRequirements};

    fn pod(image: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = "alpine".into();
        p.spec.containers.push(Container {
            name: "alpine".into(),
            image: image.into(),
            ..Container::default()
        });
        p
    }

    #[test]
    fn pods_get_kubernetes_defaults() {
        let mut p = pod("alpine");
        p.defaults();
        assert_eq!(p.spec.scheduler_name, "default-scheduler");
        assert_eq!(p.spec.restart_policy, "Always");
        assert_eq!(p.spec.termination_grace_period_seconds, Some(30));
        assert_eq!(p.spec.containers[0].image_pull_policy, "Always");
        assert_eq!(p.spec.tolerations.len(), 2);
        assert_eq!(p.status.phase, "Pending");
        assert_eq!(p.status.qos_class, "BestEffort");
        let mut p = pod("nginx:1.25");
        p.spec.containers[0].resources = ResourceRequirements {
            requests: [("cpu".to_string(), "100m".to_string())].into(),
            ..Default::default()
        };
        p.defaults();
        assert_eq!(p.spec.containers[0].image_pull_policy, "IfNotPresent");
        assert_eq!(p.status.qos_class, "Burstable");
    }

    #[test]
    fn a_pod_without_image_or_containers_is_invalid() {
        let causes = pod("").validate();
        assert_eq!(causes[0].field, "spec.containers[0].image");
        assert_eq!(Pod::default().validate()[0].field, "spec.containers");
        assert!(pod("alpine").validate().is_empty());
    }

    #[test]
    fn a_pods_command_cannot_change_but_its_image_can() {
        let old = pod("alpine");
        let mut new = old.clone();
        new.spec.containers[0].image = "alpine:3.20".into();
        assert!(new.validate_update(&old).is_empty());
        new.spec.containers[0].args = vec!["sleep".into()];
        assert_eq!(new.validate_update(&old)[0].reason, "FieldValueForbidden");
    }

    #[test]
    fn a_replicaset_selector_must_match_its_template() {
        let mut rs = ReplicaSet::default();
        rs.spec
            .selector
            .match_labels
            .insert("app".into(), "web".into());
        rs.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "db".into());
        rs.spec.template.spec.containers.push(Container {
            name: "c".into(),
            image: "nginx".into(),
            ..Container::default()
        });
        let causes = rs.validate();
        assert_eq!(causes[0].field, "spec.template.metadata.labels");
        rs.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        assert!(rs.validate().is_empty());
    }

    #[test]
    fn events_answer_involved_object_selectors() {
        let mut e = Event::default();
        e.involved_object.name = "alpine".into();
        assert_eq!(e.field("involvedObject.name").as_deref(), Some("alpine"));
        assert_eq!(e.field("nope"), None);
    }
}
