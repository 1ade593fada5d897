//! The assignment, step by step: each command as the learner types it
//! (`node2$ docker stop etcd2`), run on that node, and its real output.
//!
//! Each step's header says how much virtual time has passed since the cluster was
//! made, and the notes between commands say *why* at each decision: which scheduler
//! placed alpine and what it found on each node, who holds each leader lease and
//! since when, and how many etcd voters are left against the quorum. Those notes are
//! read from the cluster (container logs, Leases, the runtime), not written ahead.
//! [`replay`] is the whole run, as `cargo run --example assignment` prints it; with
//! the same seed it prints the same bytes.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use api::types::{Lease, Pod};

use crate::checker::{self, Check};
use crate::cluster::{Cluster, Options};
use crate::error::{Error, Result};
use crate::runtime::State;
use crate::shell::{self, Output};

/// `75.25 s` → `1m15.2s`; under a minute, `15.2s`.
pub fn virtual_time(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let minutes = (secs / 60.0).floor();
        format!("{minutes}m{:04.1}s", secs - minutes * 60.0)
    }
}

/// The etcd voters that run, against the quorum of all of them:
/// `2 of 3 voters run; a quorum is 2 — writes commit`.
pub async fn quorum(cluster: &Cluster) -> String {
    let voters = cluster.nodes.len();
    let mut running = 0;
    for (i, node) in cluster.nodes.iter().enumerate() {
        let state = node
            .runtime
            .info(&format!("etcd{}", i + 1))
            .await
            .map(|c| c.state);
        running += usize::from(matches!(state, Some(State::Running { .. })));
    }
    let quorum = voters / 2 + 1;
    let verdict = if running >= quorum {
        "a leader can be elected and writes commit"
    } else {
        "no leader can be elected: no writes, no linearizable reads"
    };
    format!("{running} of {voters} voters run; a quorum is {quorum} ({voters}/2+1) — {verdict}")
}

/// The whole run: makes the cluster under `root`, waits until it is up, replays the
/// assignment and the lessons into `out`, and hands the cluster back (still running)
/// with every check. `pause` is called before each step.
pub async fn replay<W: Write>(
    root: &Path,
    options: Options,
    mut out: W,
    pause: Box<dyn FnMut()>,
) -> Result<(Cluster, Vec<Check>)> {
    let _ = writeln!(
        out,
        "miniplane: the Kubernetes course assignment, replayed on three simulated nodes"
    );
    let _ = writeln!(out, "data root (every node's files): {}", root.display());
    let _ = writeln!(
        out,
        "seed {}: every ID, token and election timeout below comes from it",
        options.seed
    );
    let cluster = Cluster::create_with(root, options).await?;
    cluster.wait_ready(Duration::from_secs(300)).await?;
    let _ = writeln!(
        out,
        "cluster up after {} of virtual time: three nodes Ready, the control plane running",
        virtual_time(cluster.uptime())
    );
    let checks = {
        let mut scenario = Scenario::new(&cluster, &mut out);
        scenario.pause = pause;
        let mut checks = scenario.assignment().await?;
        checks.extend(scenario.lessons().await?);
        checks
    };
    let _ = writeln!(
        out,
        "\n(virtual time in all: {})",
        virtual_time(cluster.uptime())
    );
    Ok((cluster, checks))
}

/// A running transcript.
pub struct Scenario<'a, W: Write> {
    pub cluster: &'a Cluster,
    out: W,
    /// Called before each step (the example's `--step` waits for Enter there).
    pub pause: Box<dyn FnMut() + 'a>,
    /// Every command run, with its output (for tests).
    pub log: Vec<(String, String, Output)>,
}

impl<'a, W: Write> Scenario<'a, W> {
    pub fn new(cluster: &'a Cluster, out: W) -> Self {
        Scenario {
            cluster,
            out,
            pause: Box::new(|| {}),
            log: Vec::new(),
        }
    }

    fn say(&mut self, text: &str) {
        let _ = write!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn step(&mut self, n: usize, title: &str) {
        (self.pause)();
        let t = virtual_time(self.cluster.uptime());
        self.say(&format!("\n== Step {n}: {title}   [virtual time {t}]\n\n"));
    }

    /// Who holds lease `name` in kube-system, and the node of that instance.
    async fn holder(&self, name: &str) -> Option<(String, String)> {
        let lease: Lease = self
            .cluster
            .admin()
            .ok()?
            .get("kube-system", name)
            .await
            .ok()?;
        let holder = lease.spec.holder_identity?;
        let node = holder.split('_').next()?.to_string();
        Some((holder, node))
    }

    /// Prints the leader-election lines of component `name`'s container on each
    /// control-plane node: who acquired the lease when, and who lost it.
    async fn leases_from_logs(&mut self, name: &str) {
        let nodes: Vec<String> = self
            .cluster
            .nodes
            .iter()
            .filter(|n| n.control_plane)
            .map(|n| n.name().to_string())
            .collect();
        for node in nodes {
            self.sh(
                &node,
                &format!("docker logs k8s_{name}_{name}-{node}_kube-system | grep lease"),
            )
            .await;
        }
    }

    /// Runs a command on a node and prints it as a terminal would show it.
    pub async fn sh(&mut self, node: &str, line: &str) -> Output {
        self.say(&format!("{node}$ {line}\n"));
        let out = shell::run(self.cluster, node, line).await;
        self.say(&out.stdout);
        self.say(&out.stderr);
        self.log
            .push((node.to_string(), line.to_string(), out.clone()));
        out
    }

    fn note(&mut self, text: &str) {
        self.say(&format!("# {text}\n"));
    }

    /// Waits for `check` (deadline 2 min of virtual time, looking every half
    /// second), saying what it waits for.
    async fn wait<F, Fut>(&mut self, what: &str, check: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.note(&format!("waiting until {what}"));
        let clock = self.cluster.clock();
        let started = clock.now();
        let deadline = started + Duration::from_secs(120);
        while !check().await {
            if clock.now() > deadline {
                return Err(Error::Api(format!("gave up waiting until {what}")));
            }
            clock.sleep(Duration::from_millis(500)).await;
        }
        let waited = virtual_time(clock.elapsed(started));
        self.note(&format!("... {waited} later"));
        Ok(())
    }

    /// Steps 1–6 of the assignment, then the checker.
    pub async fn assignment(&mut self) -> Result<Vec<Check>> {
        let cluster = self.cluster;
        self.step(
            1,
            "a three-node cluster: control plane on node1 and node2, etcd on all three",
        );
        self.sh("node1", "kubectl get nodes -o wide").await;
        self.sh("node1", "kubectl get pods -n kube-system").await;
        self.sh("node1", "docker ps").await;
        self.sh("node1", "etcdctl member list").await;
        self.sh("node1", "etcdctl get --prefix --keys-only /registry | head")
            .await;
        self.note("two schedulers and two controller-managers run; each pair elects one leader with a Lease (15 s, renewed every 2 s):");
        self.sh("node1", "kubectl get leases -n kube-system").await;

        self.step(2, "back up etcd on node1");
        self.sh(
            "node1",
            &format!("etcdctl snapshot save {}", checker::BACKUP),
        )
        .await;
        self.sh(
            "node1",
            &format!("etcdctl snapshot status {} -w table", checker::BACKUP),
        )
        .await;

        self.step(
            3,
            "stop kube-apiserver on node2: delete its static pod manifest, restart the kubelet",
        );
        self.sh("node2", "ls /etc/kubernetes/manifests").await;
        self.sh("node2", "rm /etc/kubernetes/manifests/kube-apiserver.yaml")
            .await;
        self.sh("node2", "systemctl restart kubelet").await;
        let client = cluster.admin()?;
        self.wait(
            "the kubelet has removed the mirror pod kube-apiserver-node2",
            || async {
                client
                    .get::<Pod>("kube-system", "kube-apiserver-node2")
                    .await
                    .is_err()
            },
        )
        .await?;
        self.sh("node2", "docker ps").await;
        self.note("node2's kubectl still points at node2's own apiserver:");
        self.sh("node2", "kubectl get nodes").await;
        self.note("node2's scheduler and controller-manager talk to node2's apiserver too: from now on they cannot renew a lease");

        self.step(4, "point kubectl on node2 at node1");
        let node1 = cluster.ip("node1");
        self.sh(
            "node2",
            &format!("kubectl config set-cluster cluster.local --server=https://{node1}:6443"),
        )
        .await;
        self.sh("node2", "kubectl get nodes").await;
        self.sh("node2", "kubectl get pods -n kube-system -o wide")
            .await;

        self.step(5, "stop etcd on node2 (docker stop)");
        self.sh("node2", "docker stop etcd2").await;
        self.sh("node2", "docker ps -a").await;
        let q = quorum(cluster).await;
        self.note(&q);
        let status = "etcdctl endpoint status --cluster -w table";
        // If etcd2 led, the other two elect a new leader first (a fraction of a second).
        self.wait("the two members agree on a leader", || async {
            let out = shell::run(cluster, "node1", status).await;
            out.stdout.matches("|      true |").count() == 1
        })
        .await?;
        self.sh("node1", status).await;

        self.step(6, "from node2, run alpine with ping 8.8.8.8");
        self.sh("node2", "kubectl run alpine --image=alpine -- ping 8.8.8.8")
            .await;
        self.wait("alpine is Running", || async {
            let pod: Option<Pod> = client.get("default", "alpine").await.ok();
            pod.is_some_and(|p| {
                p.status.phase == "Running"
                    && p.status
                        .container_statuses
                        .iter()
                        .all(|c| c.state.running.is_some())
            })
        })
        .await?;
        self.sh("node2", "kubectl get pods -o wide").await;
        self.wait("alpine has printed two replies", || async {
            let out = shell::run(cluster, "node2", "kubectl logs alpine").await;
            out.stdout.matches("64 bytes from 8.8.8.8").count() >= 2
        })
        .await?;
        self.sh("node2", "kubectl logs alpine --tail=3").await;
        self.note("who placed it: the scheduler instance holding the lease (leader election)");
        self.sh("node2", "kubectl describe pod alpine").await;
        self.sh("node2", "kubectl get leases -n kube-system").await;
        if let Some((holder, node)) = self.holder("kube-scheduler").await {
            self.note(&format!(
                "why node3: {holder} on {node} wrote its decision to its log, one line per node"
            ));
            self.sh(
                &node,
                &format!("docker logs k8s_kube-scheduler_kube-scheduler-{node}_kube-system | grep -A 5 'scheduling default/alpine'"),
            )
            .await;
        }
        self.note(
            "when each instance took its lease (and, if node2's led, when it lost it to node1's):",
        );
        self.leases_from_logs("kube-scheduler").await;
        self.leases_from_logs("kube-controller-manager").await;

        self.step(7, "the checker");
        let checks = checker::grade(cluster).await;
        let verdict = checker::verdict(&checks);
        self.say(&verdict);
        Ok(checks)
    }

    /// Two lessons beyond the assignment: losing quorum, and restoring the backup.
    pub async fn lessons(&mut self) -> Result<Vec<Check>> {
        let cluster = self.cluster;
        let mut checks = Vec::new();
        self.say("\n== Lesson A: lose quorum — stop a second etcd member\n\n");
        self.sh("node3", "docker stop etcd3").await;
        let q = quorum(cluster).await;
        self.note(&q);
        let clock = self.cluster.clock();
        let started = clock.now();
        let out = self.sh("node1", "kubectl get pods").await;
        let took = clock.elapsed(started);
        checks.push(Check {
            requirement: "without quorum, kubectl fails with a clear error in bounded time",
            passed: out.code != 0
                && out.stderr.contains("etcdserver")
                && took < Duration::from_secs(10),
            detail: format!(
                "exit {} after {:.1} s: {}",
                out.code,
                took.as_secs_f64(),
                out.stderr.trim()
            ),
        });
        let ready = self.sh("node1", "kubectl get --raw /readyz").await;
        checks.push(Check {
            requirement: "without quorum, /readyz fails",
            passed: ready.code != 0 && ready.stderr.contains("etcd"),
            detail: ready.stderr.trim().to_string(),
        });
        self.sh("node3", "docker start etcd3").await;
        let q = quorum(cluster).await;
        self.note(&q);
        self.wait(
            "etcd has a leader again and the apiserver answers",
            || async { shell::run(cluster, "node1", "kubectl get pods").await.code == 0 },
        )
        .await?;
        let back = self.sh("node1", "kubectl get pods").await;
        checks.push(Check {
            requirement: "with quorum back, kubectl works again",
            passed: back.code == 0 && back.stdout.contains("alpine"),
            detail: back.stdout.lines().nth(1).unwrap_or("").to_string(),
        });

        self.say("\n== Lesson B: restore the backup into a new etcd\n\n");
        let n1 = cluster.ip("node1");
        let restore = format!(
            "etcdctl snapshot restore {} --name restore --data-dir /var/lib/etcd-restore \
             --initial-cluster restore=http://{n1}:12380 --initial-cluster-token restore \
             --initial-advertise-peer-urls http://{n1}:12380",
            checker::BACKUP
        );
        self.sh("node1", &restore).await;
        self.sh(
            "node1",
            &format!(
                "docker run -d --name etcd-restore quay.io/coreos/etcd:v3.5.16 etcd --name=restore \
                 --data-dir=/var/lib/etcd-restore --listen-client-urls=http://{n1}:12379 \
                 --advertise-client-urls=http://{n1}:12379 --listen-peer-urls=http://{n1}:12380 \
                 --initial-advertise-peer-urls=http://{n1}:12380 \
                 --initial-cluster=restore=http://{n1}:12380 --initial-cluster-token=restore"
            ),
        )
        .await;
        let get = format!(
            "etcdctl --endpoints=http://{n1}:12379 get --prefix --keys-only /registry/pods"
        );
        let get = get.as_str();
        self.wait("the restored member has elected itself", || async {
            shell::run(cluster, "node1", get).await.code == 0
        })
        .await?;
        self.note(
            "the pods saved before step 2 are back; alpine, created after the backup, is not:",
        );
        let pods = self.sh("node1", get).await;
        let has_static = pods
            .stdout
            .contains("/registry/pods/kube-system/kube-apiserver-node2");
        let has_alpine = pods.stdout.contains("/registry/pods/default/alpine");
        checks.push(Check {
            requirement: "the restored backup holds the state of step 2, not what came after",
            passed: pods.code == 0 && has_static && !has_alpine,
            detail: format!(
                "kube-apiserver-node2 restored: {has_static}; alpine present: {has_alpine}"
            ),
        });
        self.say(&checker::verdict(&checks));
        Ok(checks)
    }
}
