//! The names the kubelet writes on pods and containers, as the real kubelet spells them
//! (`pkg/kubelet/types`), and how it tells its containers apart from anyone else's.
//!
//! A pod says where it came from in an annotation: `kubernetes.io/config.source` is
//! `file` for a static pod (a manifest in `/etc/kubernetes/manifests`) and `api` for a
//! pod the apiserver bound here. A static pod's UID is the hash of its manifest, also
//! in `kubernetes.io/config.hash`; its mirror pod in the apiserver carries that hash in
//! `kubernetes.io/config.mirror`.
//!
//! Every container the kubelet creates carries its pod's identity in its labels:
//! `io.kubernetes.pod.name`, `.namespace`, `.uid` and `io.kubernetes.container.name`,
//! plus the pod's source (`annotation.kubernetes.io/config.source`: dockershim kept a
//! pod's annotations as labels with the `annotation.` prefix). The kubelet decides from
//! these labels, never from the shape of a container's name: a user's pod in
//! `kube-system` is not a static pod, and a container someone ran by hand with a
//! kubelet-looking name is not the kubelet's.

use std::collections::BTreeMap;

use api::types::Pod;

/// Where a pod came from: `file` or `api`.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// A static pod's hash (its UID).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// When the kubelet first saw the pod.
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// On a mirror pod: the hash of the static pod it stands for.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
/// [`CONFIG_SOURCE`] of a static pod.
pub const FILE_SOURCE: &str = "file";
/// [`CONFIG_SOURCE`] of a pod from the apiserver.
pub const API_SOURCE: &str = "api";

/// Container labels.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// The pod's [`CONFIG_SOURCE`], as a container label.
pub const SOURCE_LABEL: &str = "annotation.kubernetes.io/config.source";

/// One container of one pod: what the kubelet's memory is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerKey {
    pub pod_uid: String,
    pub container: String,
}

/// The pod's source (`file`, `api`), from its annotation.
pub fn source(pod: &Pod) -> &str {
    pod.metadata
        .annotations
        .get(CONFIG_SOURCE)
        .map_or(API_SOURCE, String::as_str)
}

/// Whether the apiserver's pod is a mirror pod (the kubelet does not run those).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata.annotations.contains_key(CONFIG_MIRROR)
}

/// The docker name of a pod's container, as the kubelet names them.
pub fn container_name(pod: &Pod, container: &str) -> String {
    docker_name(&pod.metadata.namespace, &pod.metadata.name, container)
}

/// `k8s_<container>_<pod>_<namespace>`.
pub fn docker_name(namespace: &str, pod: &str, container: &str) -> String {
    format!("k8s_{container}_{pod}_{namespace}")
}

/// The labels of the kubelet's container `container` of `pod`.
pub fn container_labels(pod: &Pod, container: &str) -> BTreeMap<String, String> {
    let m = &pod.metadata;
    [
        (POD_NAME_LABEL, m.name.as_str()),
        (POD_NAMESPACE_LABEL, m.namespace.as_str()),
        (POD_UID_LABEL, m.uid.as_str()),
        (CONTAINER_NAME_LABEL, container),
        (SOURCE_LABEL, source(pod)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Whose container this is, if the kubelet made it: its pod's UID and its name in the
/// pod, from its labels.
pub fn key_of(labels: &BTreeMap<String, String>) -> Option<ContainerKey> {
    let pod_uid = labels.get(POD_UID_LABEL).filter(|u| !u.is_empty())?;
    let container = labels.get(CONTAINER_NAME_LABEL)?;
    Some(ContainerKey {
        pod_uid: pod_uid.clone(),
        container: container.clone(),
    })
}
