//! # client-go: how components talk to the apiserver
//!
//! In Kubernetes, nothing but the kube-apiserver touches etcd. The scheduler, the
//! controller-manager and every kubelet are *clients*: they read and write objects over
//! the REST API like `kubectl` does, with the Go library `k8s.io/client-go`. This crate
//! is that library in miniature, and it knows nothing of the server's code — the
//! scheduler links no HTTP server, no certificate authority, no etcd client.
//!
//! - [`client`]: typed requests (get, list, watch, create, update, patch, delete) over
//!   HTTPS with a bearer token, failing over between apiserver endpoints. An answer,
//!   even an error, is the cluster's answer; only an unreachable server is skipped.
//! - [`informer`]: *list, then watch from the list's resourceVersion*, kept as a local
//!   cache; when the watch breaks it resumes, and when the server says the version is
//!   too old (`410 Expired`) it lists again. This is how every controller sees the
//!   cluster without polling it.
//! - [`leaderelection`]: a `coordination.k8s.io` Lease held by one of several
//!   replicas; the others wait and take over when it is not renewed in time. Two
//!   schedulers run on node1 and node2 in the assignment, and only the leader works.
//! - [`kubeconfig`]: the file `kubectl`, the scheduler and the controller-manager read
//!   to find the server, the CA to trust and the token to send.
//!
//! Every connection is made through the [`seams::Network`] the client is given, and every
//! timeout and lease time is read from its [`seams::Clock`].
//!
//! ## Read next
//! `informer.rs` (the list-watch loop), then `leaderelection.rs`.
//!
//! ## Left out
//! Protobuf (kubectl's typed commands send it; our components send JSON), HTTP/2,
//! client-side rate limiting and retries on 429, work queues with backoff (controllers
//! here reconcile on every change and on a resync).

pub mod client;
pub mod connect;
pub mod error;
pub mod informer;
pub mod kubeconfig;
pub mod leaderelection;
pub mod tls;

pub use client::Client;
pub use error::{Error, Result};
