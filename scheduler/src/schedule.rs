//! The scheduling decision for one pod: a pure function of the pod, the nodes and the
//! pods already placed. Filter every node, score the ones left, pick the best (ties go
//! to the first name, so the same cluster always gives the same answer), and keep a
//! row per node saying why — the table a learner can print.

use std::collections::BTreeMap;
use std::fmt::Write;

use api::types::{Node, Pod};

use crate::filters::{allocatable, filter, requests, NodeInfo};

/// One node's fate for one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResult {
    pub node: String,
    /// Why it was filtered out; empty if it passed.
    pub reasons: Vec<String>,
    /// NodeResourcesFit (least allocated) and NodeResourcesBalancedAllocation, 0–100.
    pub least_allocated: i64,
    pub balanced: i64,
}

impl NodeResult {
    pub fn passed(&self) -> bool {
        self.reasons.is_empty()
    }

    pub fn total(&self) -> i64 {
        self.least_allocated + self.balanced
    }
}

/// The outcome, with the per-node table that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind {
        node: String,
        table: Vec<NodeResult>,
    },
    /// `message` is Kubernetes' FailedScheduling text.
    Unschedulable {
        message: String,
        table: Vec<NodeResult>,
    },
}

impl Decision {
    pub fn table(&self) -> &[NodeResult] {
        match self {
            Decision::Bind { table, .. } | Decision::Unschedulable { table, .. } => table,
        }
    }
}

/// What kube-scheduler counts for a pod that asks for nothing: 100m cpu, 200Mi memory
/// (scoring only, so empty pods still spread out).
const DEFAULT_CPU: i128 = 100;
const DEFAULT_MEMORY: i128 = 200 * 1024 * 1024 * 1000;

/// A pod's requests for scoring: zero becomes the defaults above.
fn nonzero(pod: &Pod) -> (i128, i128) {
    let r = requests(pod);
    let cpu = if r.cpu == 0 { DEFAULT_CPU } else { r.cpu };
    let memory = if r.memory == 0 {
        DEFAULT_MEMORY
    } else {
        r.memory
    };
    (cpu, memory)
}

/// Whether a pod still holds its node's resources (not finished).
fn holds_resources(pod: &Pod) -> bool {
    !pod.spec.node_name.is_empty() && !matches!(pod.status.phase.as_str(), "Succeeded" | "Failed")
}

/// Each node with what its pods already ask of it, in node-name order.
pub fn node_infos(nodes: &[Node], pods: &[Pod]) -> Vec<NodeInfo> {
    let mut infos: Vec<NodeInfo> = nodes
        .iter()
        .map(|n| NodeInfo {
            node: n.clone(),
            requested_cpu: 0,
            requested_memory: 0,
            nonzero_cpu: 0,
            nonzero_memory: 0,
            pods: 0,
        })
        .collect();
    infos.sort_by(|a, b| a.node.metadata.name.cmp(&b.node.metadata.name));
    for pod in pods.iter().filter(|p| holds_resources(p)) {
        let node = pod.spec.node_name.clone();
        add_pod(&mut infos, pod, &node);
    }
    infos
}

/// Counts `pod` on `node` (after a binding), so the next decision of the same pass
/// sees the room it took.
pub fn add_pod(infos: &mut [NodeInfo], pod: &Pod, node: &str) {
    let Ok(at) = infos.binary_search_by(|i| i.node.metadata.name.as_str().cmp(node)) else {
        return;
    };
    let info = &mut infos[at];
    let r = requests(pod);
    let (cpu, memory) = nonzero(pod);
    info.requested_cpu += r.cpu;
    info.requested_memory += r.memory;
    info.nonzero_cpu += cpu;
    info.nonzero_memory += memory;
    info.pods += 1000;
}

/// `(allocatable - requested) * 100 / allocatable`, 0 when over.
fn free_share(requested: i128, allocatable: i128) -> i64 {
    if allocatable <= 0 || requested > allocatable {
        return 0;
    }
    ((allocatable - requested) * 100 / allocatable) as i64
}

/// NodeResourcesFit's LeastAllocated and NodeResourcesBalancedAllocation scores.
fn scores(pod: &Pod, info: &NodeInfo) -> (i64, i64) {
    let (cpu, memory, _) = allocatable(&info.node);
    let (want_cpu, want_memory) = nonzero(pod);
    let used_cpu = info.nonzero_cpu + want_cpu;
    let used_memory = info.nonzero_memory + want_memory;
    let least = (free_share(used_cpu, cpu) + free_share(used_memory, memory)) / 2;
    // Balanced: 100 × (1 − standard deviation of the two fractions used) = 100 − 50·|a−b|.
    let fraction = |used: i128, total: i128| {
        if total <= 0 {
            1.0
        } else {
            (used as f64 / total as f64).min(1.0)
        }
    };
    let spread = (fraction(used_cpu, cpu) - fraction(used_memory, memory)).abs() / 2.0;
    let balanced = ((1.0 - spread) * 100.0) as i64;
    (least, balanced)
}

/// Decides where `pod` goes.
pub fn schedule(pod: &Pod, nodes: &[NodeInfo]) -> Decision {
    let table: Vec<NodeResult> = nodes
        .iter()
        .map(|info| {
            let reasons = filter(pod, info);
            let (least_allocated, balanced) = if reasons.is_empty() {
                scores(pod, info)
            } else {
                (0, 0)
            };
            NodeResult {
                node: info.node.metadata.name.clone(),
                reasons,
                least_allocated,
                balanced,
            }
        })
        .collect();
    // Highest total wins; among equals, the first name (the table is in name order).
    let best =
        table
            .iter()
            .filter(|r| r.passed())
            .fold(None::<&NodeResult>, |best, r| match best {
                Some(b) if b.total() >= r.total() => Some(b),
                _ => Some(r),
            });
    match best {
        Some(r) => Decision::Bind {
            node: r.node.clone(),
            table,
        },
        None => Decision::Unschedulable {
            message: unschedulable_message(&table),
            table,
        },
    }
}

/// `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint
/// {node-role.kubernetes.io/control-plane: }.` — reasons counted, then sorted as
/// strings, as kube-scheduler's FitError does.
pub fn unschedulable_message(table: &[NodeResult]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for reason in table.iter().flat_map(|r| &r.reasons) {
        *counts.entry(reason).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    let mut message = format!("0/{} nodes are available", table.len());
    if !parts.is_empty() {
        message.push_str(": ");
        message.push_str(&parts.join(", "));
    }
    message.push('.');
    message
}

/// The table a learner reads: one line per node, the filter verdict and the scores.
pub fn explain(pod: &Pod, decision: &Decision) -> String {
    let mut out = String::new();
    let name = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
    let _ = writeln!(out, "scheduling {name}");
    let _ = writeln!(
        out,
        "{:<10} {:<70} {:>6} {:>8} {:>5}",
        "NODE", "FILTERS", "LEAST", "BALANCED", "TOTAL"
    );
    for r in decision.table() {
        let verdict = if r.passed() {
            "passed".to_string()
        } else {
            r.reasons.join("; ")
        };
        let score = |n: i64| {
            if r.passed() {
                n.to_string()
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            out,
            "{:<10} {:<70} {:>6} {:>8} {:>5}",
            r.node,
            verdict,
            score(r.least_allocated),
            score(r.balanced),
            score(r.total())
        );
    }
    let _ = match decision {
        Decision::Bind { node, .. } => writeln!(out, "=> bind {name} to {node}"),
        Decision::Unschedulable { message, .. } => writeln!(out, "=> {message}"),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{bound, node, pod};

    const CP: (&str, &str) = ("node-role.kubernetes.io/control-plane", "NoSchedule");

    #[test]
    fn the_assignments_pod_lands_on_the_worker() {
        let nodes = vec![
            node("node1", "2", &[CP]),
            node("node2", "2", &[CP]),
            node("node3", "2", &[]),
        ];
        let d = schedule(&pod("alpine", ""), &nodes);
        assert!(
            matches!(&d, Decision::Bind { node, .. } if node == "node3"),
            "{d:?}"
        );
        let text = explain(&pod("alpine", ""), &d);
        assert!(text.contains("=> bind /alpine to node3"), "{text}");
        assert!(
            text.contains(
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
            ),
            "{text}"
        );
    }

    #[test]
    fn failed_scheduling_reads_like_kubernetes() {
        let mut worker = node("node3", "1", &[]);
        worker.requested_cpu = 900;
        let nodes = vec![node("node1", "2", &[CP]), node("node2", "2", &[CP]), worker];
        let d = schedule(&pod("big", "500m"), &nodes);
        let Decision::Unschedulable { message, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(
            message,
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
        );
        assert_eq!(unschedulable_message(&[]), "0/0 nodes are available.");
    }

    #[test]
    fn the_emptier_node_wins_and_ties_go_to_the_first_name() {
        let pods = vec![bound("a", "500m", "node1")];
        let nodes = [node("node1", "2", &[]).node, node("node2", "2", &[]).node];
        let infos = node_infos(&nodes, &pods);
        assert_eq!(infos[0].requested_cpu, 500);
        let d = schedule(&pod("p", "100m"), &infos);
        assert!(
            matches!(&d, Decision::Bind { node, .. } if node == "node2"),
            "{d:?}"
        );
        let infos = node_infos(&nodes, &[]);
        let d = schedule(&pod("p", "100m"), &infos);
        assert!(
            matches!(&d, Decision::Bind { node, .. } if node == "node1"),
            "{d:?}"
        );
    }

    #[test]
    fn finished_pods_free_their_resources() {
        let mut done = bound("a", "2", "node1");
        done.status.phase = "Succeeded".into();
        let infos = node_infos(&[node("node1", "2", &[]).node], &[done]);
        assert_eq!(infos[0].requested_cpu, 0);
        assert!(matches!(
            schedule(&pod("p", "1"), &infos),
            Decision::Bind { .. }
        ));
    }

    #[test]
    fn scores_prefer_balance() {
        let info = node("n", "4", &[]);
        let (least, balanced) = scores(&pod("p", "1"), &info);
        assert!(least > 0 && least < 100, "{least}");
        assert!(balanced <= 100);
    }
}
