//! Where the kubelet's pods come from (`pkg/kubelet/config`): the manifest directory
//! (static pods) and the apiserver (pods bound to this node). Each pod is marked with
//! its source, as the real kubelet marks it ([`super::types`]).
//!
//! A static pod is named after its node (`kube-apiserver` on node1 is
//! `kube-apiserver-node1`) and gets, since no apiserver gave it one, a UID: the hash
//! of its node, its file and its content. Editing a manifest therefore makes a new pod
//! (the old one's containers are removed, the new one's started), and a kubelet that
//! restarts finds the same UIDs on the containers it left running, so it keeps them.

use api::types::Pod;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::types::{API_SOURCE, CONFIG_HASH, CONFIG_SEEN, CONFIG_SOURCE, FILE_SOURCE};
use crate::node::NodeContext;

/// The static pod manifests' directory.
pub const MANIFESTS: &str = "/etc/kubernetes/manifests";

/// The static pods in the manifest directory, by file name; a file that is not a pod
/// is left out, and said why in the second list (the real kubelet logs it and goes on).
pub fn static_pods(node: &NodeContext, seen: Timestamp) -> (Vec<Pod>, Vec<String>) {
    let (mut pods, mut errors) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(node.path(MANIFESTS)) else {
        return (pods, errors);
    };
    let mut files: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    for file in files {
        let path = format!("{MANIFESTS}/{file}");
        let pod = node
            .read(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| static_pod(&node.name, &path, &text, seen));
        match pod {
            Ok(pod)
                if pods
                    .iter()
                    .any(|p: &Pod| p.metadata.name == pod.metadata.name) =>
            {
                errors.push(format!(
                    "{path}: another manifest is pod {}",
                    pod.metadata.name
                ));
            }
            Ok(pod) => pods.push(pod),
            Err(e) => errors.push(e),
        }
    }
    (pods, errors)
}

/// The static pod manifest `text` (the file `path` on node `node`) describes, with
/// the kubelet's defaults: the node's name appended to its own, `kube-system` if it
/// names no namespace, bound to the node, and its source, hash and first sighting in
/// annotations.
pub fn static_pod(node: &str, path: &str, text: &str, seen: Timestamp) -> Result<Pod, String> {
    let mut pod: Pod = serde_yaml_ng::from_str(text).map_err(|e| format!("{path}: {e}"))?;
    if pod.metadata.name.is_empty() {
        return Err(format!("{path}: the pod has no name"));
    }
    if pod.spec.containers.is_empty() {
        return Err(format!("{path}: the pod has no containers"));
    }
    let hash = config_hash(node, path, &pod);
    let m = &mut pod.metadata;
    m.name = format!("{}-{node}", m.name);
    if m.namespace.is_empty() {
        m.namespace = "kube-system".into();
    }
    m.uid = hash.clone();
    for (k, v) in [
        (CONFIG_SOURCE, FILE_SOURCE.to_string()),
        (CONFIG_HASH, hash),
        (CONFIG_SEEN, seen.to_string()),
    ] {
        m.annotations.insert(k.into(), v);
    }
    pod.spec.node_name = node.into();
    pod.status.phase = "Pending".into();
    Ok(pod)
}

/// A static pod's UID: the hash of where it comes from and what it says (the real
/// kubelet takes MD5 over the same; here SHA-256, cut to the same 32 hex digits).
fn config_hash(node: &str, path: &str, pod: &Pod) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("host:{node}"));
    hasher.update(format!("file:{path}"));
    hasher.update(serde_json::to_vec(pod).expect("a pod always serialises"));
    hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pods the apiserver has for this node, marked as coming from it (mirror pods
/// keep the source of the static pod they stand for).
pub fn from_api(pods: Vec<Pod>) -> Vec<Pod> {
    pods.into_iter()
        .map(|mut pod| {
            if !super::types::is_mirror(&pod) {
                pod.metadata
                    .annotations
                    .insert(CONFIG_SOURCE.into(), API_SOURCE.into());
            }
            pod
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.32.0\n    command: [kube-apiserver, --secure-port=6443]\n";
    const PATH: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

    #[test]
    fn a_static_pods_uid_is_the_hash_of_its_node_file_and_content() {
        let seen = Timestamp::UNIX_EPOCH;
        let pod = static_pod("node1", PATH, MANIFEST, seen).unwrap();
        assert_eq!(pod.metadata.name, "kube-apiserver-node1");
        assert_eq!(pod.spec.node_name, "node1");
        let a = &pod.metadata.annotations;
        assert_eq!(a[CONFIG_SOURCE], "file");
        assert_eq!(a[CONFIG_HASH], pod.metadata.uid);
        assert_eq!(a[CONFIG_SEEN], "1970-01-01T00:00:00Z");
        assert_eq!(pod.metadata.uid.len(), 32);
        // Seen later (a restarted kubelet): the same pod.
        let later = static_pod("node1", PATH, MANIFEST, Timestamp::MAX).unwrap();
        assert_eq!(later.metadata.uid, pod.metadata.uid);
        // Another node, another file, another content: another pod.
        let edited = MANIFEST.replace("6443", "6444");
        for other in [
            static_pod("node2", PATH, MANIFEST, seen),
            static_pod("node1", "/etc/kubernetes/manifests/x.yaml", MANIFEST, seen),
            static_pod("node1", PATH, &edited, seen),
        ] {
            assert_ne!(other.unwrap().metadata.uid, pod.metadata.uid);
        }
    }

    #[test]
    fn a_manifest_that_is_not_a_pod_says_why() {
        let seen = Timestamp::UNIX_EPOCH;
        let e = static_pod("node1", PATH, "kind: [", seen).unwrap_err();
        assert!(e.starts_with(PATH), "{e}");
        let e = static_pod("node1", PATH, "metadata:\n  name: x\n", seen).unwrap_err();
        assert!(e.ends_with("the pod has no containers"), "{e}");
    }

    #[test]
    fn pods_from_the_apiserver_are_marked_api_and_mirrors_stay_file() {
        let mut user = Pod::default();
        // Even a pod that claims to be from a file is the apiserver's.
        user.metadata
            .annotations
            .insert(CONFIG_SOURCE.into(), FILE_SOURCE.into());
        let mut mirror = static_pod("node1", PATH, MANIFEST, Timestamp::UNIX_EPOCH).unwrap();
        let hash = mirror.metadata.uid.clone();
        mirror
            .metadata
            .annotations
            .insert(super::super::types::CONFIG_MIRROR.into(), hash);
        let marked = from_api(vec![user, mirror]);
        assert_eq!(marked[0].metadata.annotations[CONFIG_SOURCE], "api");
        assert_eq!(marked[1].metadata.annotations[CONFIG_SOURCE], "file");
    }
}
