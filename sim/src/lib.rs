//! sim — the course assignment's cluster, in one process (essay to come with the scenario).
pub mod checker;
pub mod cluster;
pub mod error;
pub mod kubelet;
pub mod kubelet_server;
pub mod manifests;
pub mod network;
pub mod node;
pub mod process;
pub mod runtime;
pub mod scenario;
pub mod shell;
pub mod workloads;
