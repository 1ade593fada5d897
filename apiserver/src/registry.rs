//! The table of kinds the server knows, one [`ResourceType`] each: where the kind lives
//! in URLs and etcd, and its behaviour (decode, defaults, validation, fields, printing)
//! as plain function pointers, so the REST code is written once for every kind.

use std::sync::OnceLock;

use jiff::Timestamp;
use serde_json::Value;

use api::paths::collection_url;

use crate::strategy::Strategy;
use crate::table::{Column, Printer};
use crate::types::{
    Deployment, Event, Lease, Namespace, Node, Pod, ReplicaSet, Resource, Service, StatusCause,
};

/// One kind the API serves.
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub etcd_prefix: &'static str,
    pub has_status: bool,
    pub name_is_label: bool,
    /// JSON → the kind's struct → JSON: rejects wrong shapes, normalises the rest.
    pub decode: fn(Value) -> Result<Value, String>,
    pub defaults: fn(Value) -> Result<Value, String>,
    /// Validation of a new object, or of an update against the stored one.
    pub validate: fn(&Value, Option<&Value>) -> Vec<StatusCause>,
    /// Field selector values beyond `metadata.name`/`metadata.namespace`.
    pub field: fn(&Value, &str) -> Option<String>,
    pub columns: fn() -> Vec<Column>,
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
}

fn typed<T: Resource>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

fn decode<T: Resource>(v: Value) -> Result<Value, String> {
    let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

fn defaults<T: Strategy>(v: Value) -> Result<Value, String> {
    let mut t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
    t.defaults();
    serde_json::to_value(t).map_err(|e| e.to_string())
}

fn validate<T: Strategy>(v: &Value, old: Option<&Value>) -> Vec<StatusCause> {
    let Ok(t) = typed::<T>(v) else {
        return Vec::new();
    };
    let mut causes = t.validate();
    if let Some(Ok(old)) = old.map(typed::<T>) {
        causes.extend(t.validate_update(&old));
    }
    causes
}

fn field<T: Strategy>(v: &Value, name: &str) -> Option<String> {
    typed::<T>(v).ok()?.field(name)
}

fn cells<T: Resource + Printer>(v: &Value, now: Timestamp) -> Vec<Value> {
    typed::<T>(v).map(|t| t.cells(now)).unwrap_or_default()
}

impl ResourceType {
    fn of<T: Strategy + Printer>() -> Self {
        ResourceType {
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            plural: T::PLURAL,
            singular: T::SINGULAR,
            namespaced: T::NAMESPACED,
            short_names: T::SHORT_NAMES,
            etcd_prefix: T::ETCD_PREFIX,
            has_status: T::HAS_STATUS,
            name_is_label: T::NAME_IS_LABEL,
            decode: decode::<T>,
            defaults: defaults::<T>,
            validate: validate::<T>,
            field: field::<T>,
            columns: T::columns,
            cells: cells::<T>,
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The etcd key of one object: `/registry/pods/default/alpine`,
    /// `/registry/minions/node1`.
    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("/registry/{}/{namespace}/{name}", self.etcd_prefix)
        } else {
            format!("/registry/{}/{name}", self.etcd_prefix)
        }
    }

    /// The etcd prefix of a list: one namespace, or all of them.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("/registry/{}/{ns}/", self.etcd_prefix),
            _ => format!("/registry/{}/", self.etcd_prefix),
        }
    }

    /// The URL of a collection (`name` = `None`) or of one object:
    /// `/api/v1/namespaces/default/pods/alpine`.
    pub fn url(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let collection = collection_url(
            self.group,
            self.version,
            self.plural,
            self.namespaced,
            namespace,
        );
        match name {
            Some(n) => format!("{collection}/{n}"),
            None => collection,
        }
    }

    /// Subresources served for this kind.
    pub fn subresources(&self) -> Vec<&'static str> {
        let mut subs = Vec::new();
        if self.has_status {
            subs.push("status");
        }
        match self.plural {
            "pods" => subs.extend(["binding", "log"]),
            "replicasets" | "deployments" => subs.push("scale"),
            _ => {}
        }
        subs
    }

    /// Whether a subresource name is served.
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources().contains(&name)
    }
}

/// A kind prints as its plural (`pods`).
impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.plural)
    }
}

/// There is one `ResourceType` per kind, in [`all`]: the same kind is the same entry.
impl PartialEq for ResourceType {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// Every kind, in discovery order.
pub fn all() -> &'static [ResourceType] {
    static ALL: OnceLock<Vec<ResourceType>> = OnceLock::new();
    ALL.get_or_init(|| {
        vec![
            ResourceType::of::<Namespace>(),
            ResourceType::of::<Node>(),
            ResourceType::of::<Pod>(),
            ResourceType::of::<Event>(),
            ResourceType::of::<Service>(),
            ResourceType::of::<ReplicaSet>(),
            ResourceType::of::<Deployment>(),
            ResourceType::of::<Lease>(),
        ]
    })
}

/// The kind served at `/{group}/{version}/{plural}`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    all()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The API groups and their versions, core group first.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for r in all() {
        if !groups.contains(&(r.group, r.version)) {
            groups.push((r.group, r.version));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kube_apiservers_layout() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key("default", "alpine"),
            "/registry/pods/default/alpine"
        );
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key("", "node1"), "/registry/minions/node1");
        let rs = find("apps", "v1", "replicasets").unwrap();
        assert_eq!(rs.prefix(Some("default")), "/registry/replicasets/default/");
        assert_eq!(rs.prefix(None), "/registry/replicasets/");
        let leases = find("coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(
            leases.key("kube-system", "kube-scheduler"),
            "/registry/leases/kube-system/kube-scheduler"
        );
        assert!(find("apps", "v1", "pods").is_none());
    }

    #[test]
    fn decode_rejects_wrong_shapes_and_keeps_unknown_spec_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let bad = serde_json::json!({"spec": {"containers": "nope"}});
        assert!((pods.decode)(bad).is_err());
        let ok = serde_json::json!({"spec": {"containers": [], "volumes": [{"name": "v"}]}});
        let out = (pods.decode)(ok).unwrap();
        assert_eq!(out["spec"]["volumes"][0]["name"], "v");
    }
}
