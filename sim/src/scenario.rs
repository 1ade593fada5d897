//! The assignment, step by step: each command as the learner types it
//! (`node2$ docker stop etcd2`), run on that node, and its real output.

use std::io::Write;
use std::time::Duration;

use api::types::Pod;

use crate::checker::{self, Check};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::shell::{self, Output};

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
        self.say(&format!("\n== Step {n}: {title}\n\n"));
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

    /// Waits for `check` (deadline 30 s), saying what it waits for.
    async fn wait<F, Fut>(&mut self, what: &str, check: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.note(&format!("waiting until {what}"));
        let clock = self.cluster.clock();
        let deadline = clock.now() + Duration::from_secs(30);
        while !check().await {
            if clock.now() > deadline {
                return Err(Error::Api(format!("gave up waiting until {what}")));
            }
            clock.sleep(Duration::from_millis(100)).await;
        }
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

        self.step(4, "point kubectl on node2 at node1");
        self.sh(
            "node2",
            "kubectl config set-cluster cluster.local --server=https://10.0.0.11:6443",
        )
        .await;
        self.sh("node2", "kubectl get nodes").await;
        self.sh("node2", "kubectl get pods -n kube-system -o wide")
            .await;

        self.step(5, "stop etcd on node2 (docker stop)");
        self.sh("node2", "docker stop etcd2").await;
        self.sh("node2", "docker ps -a").await;
        self.note("two of three members are left: a quorum, so etcd still has a leader");
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
        self.note("one member of three is left: no quorum, so no leader and no writes or linearizable reads");
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
        let restore = format!(
            "etcdctl snapshot restore {} --name restore --data-dir /var/lib/etcd-restore \
             --initial-cluster restore=http://10.0.0.11:12380 --initial-cluster-token restore \
             --initial-advertise-peer-urls http://10.0.0.11:12380",
            checker::BACKUP
        );
        self.sh("node1", &restore).await;
        self.sh(
            "node1",
            "docker run -d --name etcd-restore quay.io/coreos/etcd:v3.5.16 etcd --name=restore \
             --data-dir=/var/lib/etcd-restore --listen-client-urls=http://10.0.0.11:12379 \
             --advertise-client-urls=http://10.0.0.11:12379 --listen-peer-urls=http://10.0.0.11:12380 \
             --initial-advertise-peer-urls=http://10.0.0.11:12380 \
             --initial-cluster=restore=http://10.0.0.11:12380 --initial-cluster-token=restore \
             --heartbeat-interval=25 --election-timeout=250",
        )
        .await;
        let get =
            "etcdctl --endpoints=http://10.0.0.11:12379 get --prefix --keys-only /registry/pods";
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
