//! # sim — the course assignment's cluster, in one process
//!
//! The course asks a student to build a three-node cluster with kubespray, back up
//! etcd, kill node2's kube-apiserver and etcd member, and still run
//! `kubectl run alpine --image=alpine -- ping 8.8.8.8` from node2. This crate builds
//! that cluster on one laptop, with no VMs and no docker, out of the real components of
//! this workspace, and replays the assignment (`cargo run --example assignment`).
//!
//! ## Walking through the assignment
//!
//! **Step 1, the cluster.** [`cluster::Cluster::create`] plays the installer. It writes
//! each node's files under the data root — certificates, kubeconfigs, the static pod
//! manifests of node1 and node2 — then starts an etcd container on every node and a
//! kubelet on every node. The kubelets ([`kubelet`]) read the manifests and start
//! kube-apiserver, kube-scheduler and kube-controller-manager as containers
//! ([`runtime`], [`process`]). These are the real crates of this workspace, talking
//! over real sockets, each started from the command line in its manifest and parsed
//! by the component's own flag parser, as a real kubelet runs a manifest's command. Node addresses such as `10.0.0.11:6443` are mapped to loopback
//! ports by [`network`].
//!
//! **Step 2, the backup.** `etcdctl snapshot save` ([`shell::etcdctl`]) streams a
//! snapshot from the member over gRPC and writes a real file under node1's `tmp/`.
//!
//! **Step 3, stop kube-apiserver on node2.** The kubelet is the only thing that starts
//! static pods, and it reads the manifests when it starts. So `rm` the manifest, then
//! `systemctl restart kubelet`: the new kubelet finds no manifest for the apiserver,
//! and its reconcile removes the container labelled as that static pod's
//! ([`kubelet::reconcile`]). Containers of other pods, in `kube-system` or not, stay.
//!
//! **Step 4, re-point kubectl.** `kubectl config set-cluster` edits node2's
//! `/root/.kube/config`, and [`shell::kubectl`] reads that file for every command.
//!
//! **Step 5, stop etcd on node2.** `docker stop etcd2` stops that member as a killed
//! process would. Two members of three are a quorum, so the kvstore still elects a
//! leader and commits writes (`etcdctl endpoint status --cluster`).
//!
//! **Step 6, run alpine.** kubectl on node2 posts the pod to node1's apiserver. The
//! scheduler holding the Lease binds it to node3: the control-plane nodes carry a
//! `NoSchedule` taint. If node2's scheduler held the Lease, it lost its apiserver and the
//! one on node1 took over. node3's kubelet reaches an apiserver through its local
//! load balancer ([`kubelet::client`]). It starts the container, whose simulated
//! `ping` prints a reply line every second ([`workloads`]), and `kubectl logs` reads
//! them through the apiserver from the kubelet.
//!
//! **Step 7, the checker.** [`checker`] verifies each requirement from the cluster's
//! real state and files, not from anything the scenario printed.
//!
//! ## Read next
//!
//! [`scenario`] (the steps), then [`kubelet`], then [`shell`]. The components
//! themselves are in the `kvstore`, `apiserver`, `scheduler` and `controller-manager`
//! crates, each with an essay of its own.
//!
//! ## Left out
//!
//! - Real containers, images and pod networking: a container is a command line the
//!   runtime knows how to simulate, and pod IPs are only addresses.
//! - TLS between etcd members, and between the apiserver and etcd (the manifests use
//!   `http://` for etcd).
//! - Virtual time. The cluster runs on the wall clock with short timings (leases of
//!   1.5 s, elections of 250 ms) so a run takes seconds; they are flags at the end of
//!   each component's command line ([`manifests`], [`cluster::etcd_container`]).

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
