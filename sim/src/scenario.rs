//! The assignment, step by step: each command as the learner types it
//! (`node2$ docker stop etcd2`), run on that node, and its real output.

use std::io::Write;
use std::time::Duration;

use apiserver::types::Pod;

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
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !check().await {
            if std::time::Instant::now() > deadline {
                return Err(Error::Api(format!("gave up waiting until {what}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
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
        self.sh("node1", "etcdctl endpoint status --cluster -w table")
            .await;

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
}
