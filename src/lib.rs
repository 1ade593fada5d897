//! # miniplane
//!
//! A miniature Kubernetes control plane to run, read and break on one laptop. It replays
//! a course assignment — a three-node cluster that loses node2's API server and etcd
//! member and still runs a pod — with real components doing real work.
//!
//! This root crate re-exports the component crates and owns the runnable examples
//! (`examples/`). Start with [`kvstore`], the etcd of the cluster: everything else
//! stores its state there.

pub use api;
pub use apiserver;
pub use client_go;
pub use controller_manager;
pub use kvstore;
pub use scheduler;
pub use seams;
pub use sim;
