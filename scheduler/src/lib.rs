//! # scheduler — kube-scheduler in miniature
//!
//! ## What kube-scheduler does
//!
//! `kubectl run alpine --image=alpine -- ping 8.8.8.8` only *records* a wish: a Pod
//! object with an empty `spec.nodeName`. Nothing runs until some node is chosen. The
//! scheduler watches for such pods, picks a node for each, and writes the choice back
//! through the API (`POST pods/alpine/binding`). The kubelet of that node sees a pod
//! bound to it and starts it. The scheduler never starts anything itself, and it never
//! talks to etcd: like every other component, it only reads and writes API objects.
//!
//! ## How a node is chosen
//!
//! [`schedule::schedule`] is a pure function of the pod, the nodes and the pods already
//! placed. This is the decision kube-scheduler's default plugins make:
//!
//! 1. **Filter** ([`filters`]). A node that fails any rule is out, and the rule says
//!    why in Kubernetes' words: not Ready; cordoned (`unschedulable`); a different
//!    `nodeName` was asked for; an untolerated taint (control-plane nodes carry
//!    `node-role.kubernetes.io/control-plane:NoSchedule`, which is why the assignment's
//!    pod lands on node3); the `nodeSelector` does not match; not enough cpu, memory or
//!    pod slots left after the requests of the pods already there.
//! 2. **Score** the nodes that pass. *Least allocated* prefers the emptiest node;
//!    *balanced* prefers a node whose cpu and memory stay equally used.
//! 3. **Pick** the highest total. Ties go to the first node name, so a given cluster
//!    always gives the same answer. (Kubernetes picks at random among equals.)
//!
//! When no node passes, the pod gets a `FailedScheduling` event with the message a
//! Kubernetes user knows — `0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
//! had untolerated taint {node-role.kubernetes.io/control-plane: }.` It is tried again
//! whenever a pod or a node changes. [`schedule::explain`] prints the per-node table
//! behind every decision.
//!
//! ## The control loop and leader election
//!
//! [`run`] keeps the pods and the nodes in informers: list once, then watch, so the
//! cache stays current without polling ([`client_go::informer`]). On every change it
//! tries the pending pods. Two schedulers run, one on node1 and one on node2, each
//! talking to its own node's apiserver. They must not both bind, so they elect a leader
//! through the Lease `kube-system/kube-scheduler` ([`client_go::leaderelection`]):
//!
//! - The holder renews the Lease every retry period.
//! - If the holder's apiserver dies, the holder cannot renew and steps down after the
//!   renew deadline.
//! - The other instance sees the Lease go stale and takes it over within one lease
//!   duration.
//!
//! ## Read next
//!
//! [`filters`], then [`schedule`], then [`run`]. `benches/schedule.rs` measures the
//! decisions.
//!
//! ## Left out
//!
//! - Preemption, pod affinity and anti-affinity, topology spread, volumes and ports.
//! - Scheduling profiles and extenders.
//! - The scheduling queue's backoff: pending pods are retried on every change.

pub mod filters;
pub mod flags;
pub mod run;
pub mod schedule;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
