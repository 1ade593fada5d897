//! Filters: may this pod run on this node at all? Each filter is one rule of
//! kube-scheduler's default plugins, in their order, with their words for "no" — the
//! words that end up in `0/3 nodes are available: ...`.

use api::types::{Node, Pod, Quantity, Taint};

/// What a node has and what is already asked of it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Node,
    /// Sum of the requests of the pods bound to the node, in thousandths
    /// (millicores for cpu, milli-bytes for memory).
    pub requested_cpu: i128,
    pub requested_memory: i128,
    /// The same sums with kube-scheduler's defaults for pods that request nothing
    /// (used for scoring only).
    pub nonzero_cpu: i128,
    pub nonzero_memory: i128,
    /// Pods on the node, in thousandths (like the other quantities).
    pub pods: i128,
}

/// A pod's requests, in thousandths of their units, summed over its containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu: i128,
    pub memory: i128,
}

fn quantity(list: &api::types::ResourceList, name: &str) -> i128 {
    list.get(name)
        .and_then(|q| Quantity::parse(q).ok())
        .map(Quantity::milli)
        .unwrap_or(0)
}

/// What a pod asks for (its containers' `resources.requests`).
pub fn requests(pod: &Pod) -> Requests {
    pod.spec
        .containers
        .iter()
        .fold(Requests::default(), |sum, c| Requests {
            cpu: sum.cpu + quantity(&c.resources.requests, "cpu"),
            memory: sum.memory + quantity(&c.resources.requests, "memory"),
        })
}

/// A node's allocatable cpu, memory and pod count, in thousandths.
pub fn allocatable(node: &Node) -> (i128, i128, i128) {
    let a = &node.status.allocatable;
    (
        quantity(a, "cpu"),
        quantity(a, "memory"),
        quantity(a, "pods"),
    )
}

/// The taints that keep this pod off the node (NoSchedule and NoExecute ones).
pub fn untolerated<'a>(pod: &Pod, node: &'a Node) -> Vec<&'a Taint> {
    node.spec
        .taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .filter(|t| !pod.spec.tolerations.iter().any(|tol| tol.tolerates(t)))
        .collect()
}

/// Why a node is out, in kube-scheduler's words. Several reasons can come from one
/// filter (a node short of both cpu and memory).
pub fn filter(pod: &Pod, info: &NodeInfo) -> Vec<String> {
    let node = &info.node;
    let ready = node
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    if !ready {
        return vec!["node(s) were not ready".into()];
    }
    let unschedulable_tolerated = pod.spec.tolerations.iter().any(|t| {
        (t.key == "node.kubernetes.io/unschedulable" || t.key.is_empty()) && t.operator == "Exists"
    });
    if node.spec.unschedulable && !unschedulable_tolerated {
        return vec!["node(s) were unschedulable".into()];
    }
    if !pod.spec.node_name.is_empty() && pod.spec.node_name != node.metadata.name {
        return vec!["node(s) didn't match the requested node name".into()];
    }
    if let Some(taint) = untolerated(pod, node).first() {
        return vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key, taint.value
        )];
    }
    let selected = pod
        .spec
        .node_selector
        .iter()
        .all(|(k, v)| node.metadata.labels.get(k) == Some(v));
    if !selected {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let (cpu, memory, pods) = allocatable(node);
    let want = requests(pod);
    let mut reasons = Vec::new();
    if info.pods + 1000 > pods {
        reasons.push("Too many pods".into());
    }
    if want.cpu > 0 && info.requested_cpu + want.cpu > cpu {
        reasons.push("Insufficient cpu".into());
    }
    if want.memory > 0 && info.requested_memory + want.memory > memory {
        reasons.push("Insufficient memory".into());
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod};
    use api::types::Toleration;

    #[test]
    fn a_ready_worker_with_room_passes() {
        assert!(filter(&pod("p", "100m"), &node("node3", "2", &[])).is_empty());
    }

    #[test]
    fn each_filter_says_no_in_kubernetes_words() {
        let p = pod("p", "100m");
        let mut n = node(
            "node1",
            "2",
            &[("node-role.kubernetes.io/control-plane", "NoSchedule")],
        );
        assert_eq!(
            filter(&p, &n),
            ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"]
        );
        n.node.spec.taints.clear();
        n.node.spec.unschedulable = true;
        assert_eq!(filter(&p, &n), ["node(s) were unschedulable"]);
        n.node.spec.unschedulable = false;
        n.node.status.conditions[0].status = "Unknown".into();
        assert_eq!(filter(&p, &n), ["node(s) were not ready"]);

        let mut small = node("node3", "1", &[]);
        small.requested_cpu = 950;
        assert_eq!(filter(&p, &small), ["Insufficient cpu"]);
        let mut full = node("node3", "2", &[]);
        full.pods = 110_000;
        assert_eq!(filter(&p, &full), ["Too many pods"]);

        let mut picky = pod("p", "100m");
        picky.spec.node_selector.insert("disk".into(), "ssd".into());
        assert_eq!(
            filter(&picky, &node("node3", "2", &[])),
            ["node(s) didn't match Pod's node affinity/selector"]
        );
        let mut named = pod("p", "100m");
        named.spec.node_name = "node2".into();
        assert_eq!(
            filter(&named, &node("node3", "2", &[])),
            ["node(s) didn't match the requested node name"]
        );
    }

    #[test]
    fn tolerations_match_like_kubernetes() {
        let taint = Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let exists = Toleration {
            key: taint.key.clone(),
            operator: "Exists".into(),
            ..Toleration::default()
        };
        assert!(exists.tolerates(&taint));
        let other_effect = Toleration {
            effect: "NoExecute".into(),
            ..exists.clone()
        };
        assert!(!other_effect.tolerates(&taint));
        let everything = Toleration {
            operator: "Exists".into(),
            ..Toleration::default()
        };
        assert!(everything.tolerates(&taint));
        let mut p = pod("p", "100m");
        p.spec.tolerations.push(exists);
        let n = node(
            "node1",
            "2",
            &[("node-role.kubernetes.io/control-plane", "NoSchedule")],
        );
        assert!(filter(&p, &n).is_empty());
    }
}
