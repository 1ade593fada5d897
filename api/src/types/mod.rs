//! The API objects, as serde structs with Kubernetes' JSON field names.
//!
//! [`Resource`] ties each struct to its place in the API: group, version, kind, plural
//! resource name and the etcd key prefix kube-apiserver stores it under. The scheduler,
//! controllers and kubelets use these same structs through the client.

pub mod apps;
pub mod core;
pub mod meta;
pub mod quantity;

pub use self::apps::{
    Deployment, DeploymentSpec, DeploymentStatus, Lease, LeaseSpec, PodTemplateSpec, ReplicaSet,
    ReplicaSetSpec, ReplicaSetStatus, Scale, ScaleSpec, ScaleStatus,
};
pub use self::core::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, DaemonEndpoint, EnvVar, Event, EventSource, Namespace,
    NamespaceStatus, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, ObjectReference, Pod, PodCondition, PodSpec, PodStatus, ResourceList,
    ResourceRequirements, Service, Taint, Toleration,
};
pub use self::meta::{
    DeleteOptions, LabelSelector, LabelSelectorRequirement, List, ListMeta, Map, ObjectMeta,
    OwnerReference, Status, StatusCause, StatusDetails, WatchEvent,
};
pub use self::quantity::Quantity;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A kind the API serves: where it lives in the URL space and in etcd.
pub trait Resource:
    Serialize + DeserializeOwned + Default + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// API group: `""` for the core group, `apps`, `coordination.k8s.io`.
    const GROUP: &'static str;
    const VERSION: &'static str;
    const KIND: &'static str;
    /// The resource name in URLs: `pods`.
    const PLURAL: &'static str;
    const SINGULAR: &'static str;
    const NAMESPACED: bool;
    const SHORT_NAMES: &'static [&'static str];
    /// Under `/registry/`: usually the plural, but nodes live under `minions`.
    const ETCD_PREFIX: &'static str;

    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// `v1` or `apps/v1`.
    fn api_version() -> String {
        if Self::GROUP.is_empty() {
            Self::VERSION.to_string()
        } else {
            format!("{}/{}", Self::GROUP, Self::VERSION)
        }
    }
}

macro_rules! resource {
    ($t:ty, $group:literal, $version:literal, $kind:literal, $plural:literal,
     $singular:literal, $namespaced:literal, [$($short:literal),*], $prefix:literal) => {
        impl Resource for $t {
            const GROUP: &'static str = $group;
            const VERSION: &'static str = $version;
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const SINGULAR: &'static str = $singular;
            const NAMESPACED: bool = $namespaced;
            const SHORT_NAMES: &'static [&'static str] = &[$($short),*];
            const ETCD_PREFIX: &'static str = $prefix;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource!(
    Namespace,
    "",
    "v1",
    "Namespace",
    "namespaces",
    "namespace",
    false,
    ["ns"],
    "namespaces"
);
resource!(Pod, "", "v1", "Pod", "pods", "pod", true, ["po"], "pods");
resource!(
    Node,
    "",
    "v1",
    "Node",
    "nodes",
    "node",
    false,
    ["no"],
    "minions"
);
resource!(
    Event,
    "",
    "v1",
    "Event",
    "events",
    "event",
    true,
    ["ev"],
    "events"
);
resource!(
    Service,
    "",
    "v1",
    "Service",
    "services",
    "service",
    true,
    ["svc"],
    "services/specs"
);
resource!(
    ReplicaSet,
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    "replicaset",
    true,
    ["rs"],
    "replicasets"
);
resource!(
    Deployment,
    "apps",
    "v1",
    "Deployment",
    "deployments",
    "deployment",
    true,
    ["deploy"],
    "deployments"
);
resource!(
    Lease,
    "coordination.k8s.io",
    "v1",
    "Lease",
    "leases",
    "lease",
    true,
    [],
    "leases"
);
