//! # controller-manager — kube-controller-manager in miniature
//!
//! ## What it does in Kubernetes
//!
//! Kubernetes works by *control loops*. A user writes the desired state ("three pods
//! like this"). A controller keeps comparing it with the actual state ("two pods
//! exist") and acts to close the gap ("create one"). kube-controller-manager is one
//! process running dozens of such loops. This one runs the four the course needs:
//!
//! - [`replicaset`] keeps `spec.replicas` pods matching a selector alive: it creates
//!   pods from the template, deletes surplus ones, and adopts matching orphans.
//!   `kubectl scale rs/web --replicas=5` from 2 creates exactly three pods.
//! - [`deployment`] gives a Deployment a ReplicaSet per version of its pod template
//!   (`web-<pod-template-hash>`) and passes scaling through to it.
//! - [`nodelifecycle`] notices a node whose kubelet stopped renewing its Lease. The
//!   node becomes `Ready=Unknown` and is tainted `unreachable`, and its pods are
//!   evicted when their toleration runs out. Their ReplicaSets replace them, and the
//!   scheduler places the replacements on healthy nodes.
//! - [`gc`] deletes objects whose controlling owner is gone: delete a ReplicaSet, and
//!   its pods follow.
//!
//! ## The shape of a controller
//!
//! Each controller is a pure `reconcile` function: a snapshot of the caches in, a list
//! of actions out. Unit tests call it directly, with no server. [`run`] is the only
//! part that does I/O:
//!
//! 1. Informers keep caches of pods, ReplicaSets, Deployments, nodes and node leases
//!    (list, then watch; see `client_go::informer`).
//! 2. On every change, and on a timer for time-based rules, a pass calls each
//!    `reconcile` and applies the actions through the API.
//!
//! An action that fails is simply not done. The next pass sees the same gap and tries
//! again. This is why controllers are *level-triggered*: they act on the state they
//! see, not on the events that led to it.
//!
//! ## Leader election
//!
//! Two controller-managers run, on node1 and node2. Only the holder of the Lease
//! `kube-system/kube-controller-manager` acts, or every pod would be created twice (see
//! `client_go::leaderelection`). When the leader's node loses its apiserver, the other
//! takes over within one lease duration.
//!
//! ## Read next
//!
//! [`replicaset`], then [`run`], then [`nodelifecycle`].
//!
//! ## Left out
//!
//! - Rolling updates: a new template replaces the old ReplicaSet at once, as
//!   `Recreate` does.
//! - Other controllers: Jobs, DaemonSets, StatefulSets, Services and Endpoints,
//!   namespaces, service accounts.
//! - `minReadySeconds` (a ready pod counts as available at once).
//! - Rate limits on evictions.

pub mod deployment;
pub mod flags;
pub mod gc;
pub mod nodelifecycle;
pub mod replicaset;
pub mod run;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
