//! The grader: each requirement of the assignment, checked against the cluster's real
//! state and files — never against what the scenario printed.

use std::time::Duration;

use api::types::Pod;

use crate::cluster::{Cluster, ADMIN_CONF};
use crate::kubelet::MANIFESTS;
use crate::runtime::State;

/// One requirement and whether the cluster meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub requirement: &'static str,
    pub passed: bool,
    /// What was found.
    pub detail: String,
}

/// Where the backup must be (step 2).
pub const BACKUP: &str = "/tmp/node1.etcd.backup";

fn check(requirement: &'static str, result: Result<String, String>) -> Check {
    match result {
        Ok(detail) => Check {
            requirement,
            passed: true,
            detail,
        },
        Err(detail) => Check {
            requirement,
            passed: false,
            detail,
        },
    }
}

/// Runs every check.
pub async fn grade(cluster: &Cluster) -> Vec<Check> {
    let node1 = cluster.node("node1").expect("node1 exists");
    let node2 = cluster.node("node2").expect("node2 exists");
    let mut checks = Vec::new();

    checks.push(check(
        "an etcd backup on node1 at /tmp/node1.etcd.backup",
        {
            match std::fs::read(node1.ctx.path(BACKUP)) {
                Err(e) => Err(format!("{BACKUP}: {e}")),
                Ok(bytes) => kvstore::snapshot::status(&bytes)
                    .map(|s| {
                        format!(
                            "a valid snapshot: revision {}, {} keys",
                            s.revision, s.total_keys
                        )
                    })
                    .map_err(|e| format!("{BACKUP} is not a valid snapshot: {e}")),
            }
        },
    ));

    checks.push(check(
        "kube-apiserver stopped on node2 (manifest deleted)",
        {
            let manifest = format!("{MANIFESTS}/kube-apiserver.yaml");
            let running = node2.runtime.list().await.into_iter().any(|c| {
                c.name.contains("kube-apiserver") && matches!(c.state, State::Running { .. })
            });
            let address = format!("{}:6443", cluster.ip("node2"));
            let listening = seams::Network::connect(&*cluster.network, &address)
                .await
                .is_ok();
            if node2.ctx.path(&manifest).exists() {
                Err(format!(
                    "{manifest} still exists, so the kubelet runs the apiserver (a stopped \
                     container comes back): remove the manifest"
                ))
            } else if running || listening {
                Err("a kube-apiserver still runs on node2".into())
            } else {
                Ok(format!("{manifest} is gone; nothing answers on {address}"))
            }
        },
    ));

    checks.push(check("kubectl on node2 points at node1's apiserver", {
        let text = node2.ctx.read(ADMIN_CONF).unwrap_or_default();
        match client_go::kubeconfig::Kubeconfig::parse(&text).and_then(|k| k.target()) {
            Ok(t) if t.server == format!("https://{}:6443", cluster.ip("node1")) => {
                Ok(format!("server: {}", t.server))
            }
            Ok(t) => Err(format!("server: {}", t.server)),
            Err(e) => Err(e.to_string()),
        }
    }));

    checks.push(check("etcd on node2 stopped (docker stop)", {
        match node2.runtime.info("etcd2").await.map(|c| c.state) {
            Some(State::Exited { code, .. }) => Ok(format!("container etcd2 exited ({code})")),
            Some(State::Running { .. }) => Err("container etcd2 is running".into()),
            Some(State::Created) => Err("container etcd2 has never run".into()),
            None => Err("no container etcd2 on node2".into()),
        }
    }));

    checks.push(check(
        "pod alpine runs `ping 8.8.8.8`",
        alpine(cluster).await,
    ));
    checks
}

async fn alpine(cluster: &Cluster) -> Result<String, String> {
    let client = cluster.admin().map_err(|e| e.to_string())?;
    let clock = cluster.clock();
    let deadline = clock.now() + Duration::from_secs(20);
    loop {
        let pod: Pod = client
            .get("default", "alpine")
            .await
            .map_err(|e| e.to_string())?;
        let c = pod
            .spec
            .containers
            .first()
            .ok_or("alpine has no container")?;
        let command = crate::workloads::effective_command(&c.image, &c.command, &c.args);
        let running = pod.status.phase == "Running"
            && pod
                .status
                .container_statuses
                .iter()
                .all(|s| s.state.running.is_some());
        if running && command == ["ping", "8.8.8.8"] && c.image == "alpine" {
            return Ok(format!(
                "Running on {}, image alpine, command {:?}",
                pod.spec.node_name, command
            ));
        }
        if clock.now() > deadline {
            return Err(format!("phase {}, command {command:?}", pod.status.phase));
        }
        clock.sleep(Duration::from_millis(200)).await;
    }
}

/// The verdict as the example prints it.
pub fn verdict(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = if c.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!("[{mark}] {} — {}\n", c.requirement, c.detail));
    }
    let passed = checks.iter().filter(|c| c.passed).count();
    out.push_str(&format!(
        "{passed}/{} requirements met: {}\n",
        checks.len(),
        if passed == checks.len() {
            "PASSED"
        } else {
            "FAILED"
        }
    ));
    out
}
