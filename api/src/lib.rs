//! # api: the objects, as every component sees them
//!
//! In Kubernetes the API is a contract shared by programs that never share memory: the
//! kube-apiserver stores a Pod, the scheduler reads it through a watch and writes a
//! Binding, the kubelet reads it again and reports its status. They agree because they
//! compile against the same definitions — Go's `k8s.io/api` (the kinds: `core/v1`
//! Pod, `apps/v1` Deployment, …) and `k8s.io/apimachinery` (what every kind has:
//! `ObjectMeta`, `Status`, label selectors, list and watch envelopes).
//!
//! This crate is that contract for miniplane. It has no server code and no client
//! code, only data and the rules every side must read the same way:
//!
//! - [`types`]: serde structs with Kubernetes' JSON field names, and the [`Resource`]
//!   trait that ties each to its group, version, kind and plural (`pods`).
//! - [`selectors`]: `app=web,tier!=db` and `matchExpressions`, parsed and matched the
//!   same way by the apiserver (list filtering) and the ReplicaSet controller.
//! - [`paths`]: where a kind lives in the URL space (`/api/v1/namespaces/x/pods`).
//! - [`time`]: "now" from the component's clock, written as objects carry it.
//! - [`Target`]: which object an error is about, as `Status.details` names it.
//!
//! The three crates above it split as Kubernetes' do: `apiserver` serves these objects,
//! `client-go` (crate `client_go`) reads and writes them for the scheduler, the
//! controller-manager and the kubelets, and neither knows the other's code.
//!
//! ## Read next
//! `types/meta.rs` (ObjectMeta, Status), then `types/core.rs` (Pod, Node).
//!
//! ## Left out
//! Only the fields miniplane's components read or kubectl shows are typed; the rest of
//! an object is kept as JSON by the apiserver. No protobuf here: the apiserver decodes
//! kubectl's protobuf with a descriptor of its own.

pub mod paths;
pub mod selectors;
pub mod time;
pub mod types;

pub use types::Resource;

/// Which object an error is about: `pods` "alpine" in group "".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    /// The plural resource, as kube-apiserver puts it in messages (`pods "x" not found`).
    pub resource: String,
    pub name: String,
}

impl Target {
    pub fn new(group: &str, resource: &str, name: &str) -> Self {
        Target {
            group: group.to_string(),
            resource: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// `pods` or `replicasets.apps`, as messages name a resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}
