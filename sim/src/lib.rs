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
//! ([`runtime`], [`process`]). These are the real crates of this workspace, each
//! started from the command line in its manifest and parsed by the component's own
//! flag parser, as a real kubelet runs a manifest's command. The nodes' addresses are
//! `127.0.0.11`–`13` ([`network`]), and their timings are Kubernetes' and etcd's own
//! defaults.
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
//! real state and files, not from anything the scenario printed — and for what it
//! means: the backup must be this cluster's and older than the stops (its keys say
//! so), the pod must have been created from node2 (the apiserver's audit log says so).
//!
//! ## Doing it yourself: the playground
//!
//! `cargo run --example playground` runs the same cluster live and hands the learner
//! a prompt on node1 ([`playground`]): what they type runs on the node they are on
//! ([`shell`]: kubectl, etcdctl, docker, crictl, systemctl, the file commands of
//! [`shell::files`], pipes of [`shell::pipe`]; the commands that stream —
//! `kubectl get -w`, `logs -f`, `etcdctl watch` — run until Ctrl-C), `ssh` moves
//! between nodes, Tab completes from the node's files and the cluster's objects, and
//! `check` hands the work in to the same checker.
//!
//! ## One seed, one run: how the simulation is deterministic
//!
//! The whole cluster — three etcd members, two apiservers, two schedulers, two
//! controller-managers, three kubelets, the workloads, the shell's kubectl and
//! etcdctl — runs as tasks on **one thread**: a tokio current-thread runtime whose
//! clock is **paused** ([`cluster::runtime`]). Time does not pass while any task has
//! work; when every task waits, the clock jumps to the next timer. So a Raft
//! heartbeat of 100 ms, an election of 1 s, a 15 s leader lease and a 50 s node
//! grace period cost no wall time (the whole assignment and both lessons take about
//! 30 s of virtual time and a fifth of a second of real time), and a breakpoint or a
//! `--step` pause changes nothing in what happens next. What makes it repeatable:
//!
//! - **Bytes in memory.** Every connection is a pair of in-memory pipes
//!   (`seams::MemoryNetwork`), carrying the real HTTP/1.1, HTTP/2, TLS and gRPC
//!   bytes. What a read returns depends only on what was written.
//! - **One clock.** Every component reads time from `seams::SimClock` (virtual,
//!   with wall time counted from a fixed epoch, 2026-01-05 09:00 UTC), including
//!   hyper's header timeout, whose default would read the machine's clock; responses
//!   carry no `Date` from the machine's clock. The `seams` test of the workspace
//!   (`tests/seams.rs`) refuses a direct read of the machine's clocks in library
//!   code.
//! - **One seed.** Tokens, UIDs, container IDs, instance identities, election
//!   timeouts and the moments the three machines boot are drawn from the run's seed;
//!   tokio's own random choices are seeded from it too (`--cfg tokio_unstable`,
//!   `.cargo/config.toml`).
//! - **No other thread.** etcd members run as tasks of the same thread
//!   (`kvstore::server::MemberRuntime::Shared`), their store written inline; a
//!   stopped container's sockets all close at once (`seams::Scope`).
//! - **Ordered choices.** `select!`s are `biased;`, maps that are iterated are
//!   `BTreeMap`s, and the size etcd reports for its database is the size of its keys
//!   and values, not of sled's files (which depend on when sled's own threads wrote).
//!
//! `sim/tests/transcript.rs` holds the assignment's transcript as a golden file;
//! `sim/tests/determinism.rs` runs one seed twice with every crate's TRACE log on and
//! compares the logs byte for byte.
//!
//! **What would break it:** a library that reads the machine's clock behind the seam
//! and lets it reach behaviour (hyper did, twice, until told not to), a
//! `spawn_blocking` or thread whose result a task awaits, a `HashMap` iterated where
//! order reaches output, a `RUSTFLAGS` variable that drops `--cfg tokio_unstable`
//! (the transcript stays the same; the TRACE log may not).
//!
//! **Live mode** ([`cluster::Cluster::go_live`], `--keep`): the same cluster moves onto
//! this machine — every listener also takes real TCP connections on its loopback
//! address, so the real kubectl and etcdctl reach it at the addresses it advertises
//! — and time follows the wall clock, but never by more than 250 ms between two
//! readings: a process stopped for 30 s (SIGSTOP, a debugger) comes back with no
//! lease expired, no new election, no node NotReady (`sim/tests/sigstop.rs`).
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
//! - Deterministic keys: the CA and serving keys come from the operating system's
//!   randomness, so certificate bytes differ between runs (nothing printed depends on
//!   them). sled keeps I/O threads of its own, which the simulation waits on
//!   synchronously (no virtual time passes).
//! - Timeouts inside libraries that run on tokio's time rather than the clock seam
//!   (tonic's client timeouts, hyper-util's connection pool): virtual in a simulated
//!   run, but in live mode they count the 30 s a stopped process did not run.

pub mod checker;
pub mod cluster;
pub mod error;
pub mod kubelet;
pub mod kubelet_server;
pub mod manifests;
pub mod network;
pub mod node;
pub mod playground;
pub mod process;
pub mod runtime;
pub mod scenario;
pub mod shell;
pub mod workloads;
