//! The grader: each requirement of the assignment, checked against the cluster's real
//! state and files — never against what the scenario printed — and for what it means,
//! not only that a file exists:
//!
//! - the backup is a snapshot of *this* cluster (its kube-system namespace has this
//!   cluster's uid), taken while node2's apiserver still ran (its mirror pod is in it)
//!   and before etcd2 stopped (no lease in it was renewed after etcd2's container
//!   exited: the leaders renew theirs every 2 s);
//! - node2's apiserver is gone for good: its manifest removed, nothing listening;
//! - node2's kubeconfig names node1's apiserver, and a request with it from node2 is
//!   answered;
//! - etcd2 was stopped, not another member, and the two left still have a leader
//!   (asked as `etcdctl endpoint status` asks);
//! - alpine runs `ping 8.8.8.8` on a worker, and the apiserver's audit log says
//!   kubectl created it from node2's address.

use std::time::Duration;

use api::types::Pod;
use jiff::Timestamp;
use kvstore::client::{Client, ClientConfig};
use kvstore::proto::etcdserverpb::RangeRequest;
use serde_json::Value;

use crate::cluster::{Cluster, Node, ADMIN_CONF};
use crate::kubelet::MANIFESTS;
use crate::manifests::AUDIT_LOG;
use crate::process::client_from_kubeconfig;
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
    vec![
        check(
            "an etcd backup of this cluster on node1 at /tmp/node1.etcd.backup, taken before node2's apiserver and etcd were stopped",
            backup(cluster).await,
        ),
        check(
            "kube-apiserver stopped on node2 (manifest deleted)",
            apiserver_removed(cluster).await,
        ),
        check(
            "kubectl on node2 reaches node1's apiserver",
            kubectl_on_node2(cluster).await,
        ),
        check(
            "etcd on node2 stopped (docker stop); the other two members keep a leader",
            etcd2_stopped(cluster).await,
        ),
        check(
            "pod alpine runs `ping 8.8.8.8` on a worker, created from node2",
            alpine(cluster).await,
        ),
    ]
}

fn node<'a>(cluster: &'a Cluster, name: &str) -> Result<&'a Node, String> {
    cluster.node(name).ok_or_else(|| format!("no {name}"))
}

/// The newest value of `key` in a store.
fn value_in(store: &kvstore::mvcc::MvccStore, key: &str) -> Option<Value> {
    let request = RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    };
    let kv = store.range(&request).ok()?.kvs.into_iter().next()?;
    serde_json::from_slice(&kv.value).ok()
}

/// Every value under `prefix` in a store.
fn values_under(store: &kvstore::mvcc::MvccStore, prefix: &str) -> Vec<Value> {
    let request = RangeRequest {
        key: prefix.as_bytes().to_vec(),
        range_end: kvstore::request::prefix_end(prefix.as_bytes()),
        ..Default::default()
    };
    store.range(&request).map_or(Vec::new(), |r| {
        r.kvs
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect()
    })
}

fn clock_time(t: Timestamp) -> String {
    t.strftime("%H:%M:%S").to_string()
}

/// The backup: a snapshot etcd can restore, of this cluster (its kube-system
/// namespace is this cluster's, same uid), taken while node2's apiserver still ran
/// (its mirror pod is in it: the kubelet deletes that pod when the manifest goes) and
/// before etcd2 stopped (no lease in it was renewed after etcd2's container exited —
/// the leaders renew theirs every 2 s, so a later backup holds a later renewal).
async fn backup(cluster: &Cluster) -> Result<String, String> {
    let node1 = node(cluster, "node1")?;
    let bytes = std::fs::read(node1.ctx.path(BACKUP)).map_err(|e| format!("{BACKUP}: {e}"))?;
    let (store, status) = kvstore::snapshot::decode(&bytes)
        .map_err(|e| format!("{BACKUP} is not a valid snapshot: {e}"))?;
    let uid = |v: Option<Value>| v.and_then(|v| v["metadata"]["uid"].as_str().map(String::from));
    let kept = uid(value_in(&store, KUBE_SYSTEM)).ok_or(
        "the backup holds no /registry/namespaces/kube-system: it is not a Kubernetes cluster's etcd",
    )?;
    match uid(live_value(cluster, KUBE_SYSTEM).await) {
        Some(live) if live != kept => {
            return Err(format!(
                "the backup is of another cluster: its kube-system namespace has uid {kept}, this cluster's {live}"
            ))
        }
        _ => {}
    }
    if value_in(&store, "/registry/pods/kube-system/kube-apiserver-node2").is_none() {
        return Err("the backup was taken after node2's apiserver was stopped: it has no pod kube-apiserver-node2 (back up first, then stop)".into());
    }
    let node2 = node(cluster, "node2")?;
    if let Some(State::Exited { at, .. }) = node2.runtime.info("etcd2").await.map(|c| c.state) {
        let renewed = values_under(&store, "/registry/leases/")
            .iter()
            .filter_map(|l| l["spec"]["renewTime"].as_str()?.parse::<Timestamp>().ok())
            .max();
        if let Some(renewed) = renewed.filter(|r| *r > at) {
            return Err(format!(
                "the backup was taken after etcd on node2 stopped (at {}): a lease in it was renewed at {} (back up first, then stop)",
                clock_time(at),
                clock_time(renewed)
            ));
        }
    }
    Ok(format!(
        "a snapshot of this cluster at revision {}, {} keys, with node2's apiserver still in it",
        status.revision, status.total_keys
    ))
}

const KUBE_SYSTEM: &str = "/registry/namespaces/kube-system";

/// A key's value as the running members hold it now (None when they cannot answer).
async fn live_value(cluster: &Cluster, key: &str) -> Option<Value> {
    let node1 = cluster.node("node1")?;
    let endpoints = cluster
        .ips()
        .iter()
        .map(|ip| format!("http://{ip}:2379"))
        .collect();
    let mut config = ClientConfig::new(endpoints);
    config.network = node1.ctx.network.clone();
    config.clock = node1.ctx.clock.clone();
    config.timeout = Duration::from_secs(3);
    let client = Client::new(config).ok()?;
    let request = RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    };
    let kv = client.range(request).await.ok()?.kvs.into_iter().next()?;
    serde_json::from_slice(&kv.value).ok()
}

async fn apiserver_removed(cluster: &Cluster) -> Result<String, String> {
    let node2 = node(cluster, "node2")?;
    let manifest = format!("{MANIFESTS}/kube-apiserver.yaml");
    let running = node2
        .runtime
        .list()
        .await
        .into_iter()
        .any(|c| c.name.contains("kube-apiserver") && matches!(c.state, State::Running { .. }));
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
}

/// node2's kubeconfig names node1's apiserver, and a request with it, from node2,
/// gets an answer.
async fn kubectl_on_node2(cluster: &Cluster) -> Result<String, String> {
    let node2 = node(cluster, "node2")?;
    let text = node2.ctx.read(ADMIN_CONF).unwrap_or_default();
    let target = client_go::kubeconfig::Kubeconfig::parse(&text)
        .and_then(|k| k.target())
        .map_err(|e| format!("{ADMIN_CONF} on node2: {e}"))?;
    let wanted = format!("https://{}:6443", cluster.ip("node1"));
    if target.server != wanted {
        return Err(format!(
            "{ADMIN_CONF} on node2 names server {}, not node1's {wanted}",
            target.server
        ));
    }
    let client = client_from_kubeconfig(&node2.ctx, &node2.ctx.host(), ADMIN_CONF)
        .map_err(|e| e.to_string())?;
    match client
        .raw(
            hyper::Method::GET,
            "/api/v1/namespaces/default",
            "application/json",
            None,
        )
        .await
    {
        Ok((200, _)) => Ok(format!("server: {wanted}, and it answers from node2")),
        Ok((code, body)) => Err(format!(
            "{wanted} answered {code}: {}",
            client_go::client::Client::error_of(code, &body)
        )),
        Err(e) => Err(format!("kubectl on node2 cannot reach {wanted}: {e}")),
    }
}

/// etcd2's container exited; etcd1 and etcd3 run, and one of them leads.
async fn etcd2_stopped(cluster: &Cluster) -> Result<String, String> {
    let mut stopped = Vec::new();
    for (name, _) in crate::cluster::NODES {
        let n = node(cluster, name)?;
        let member = format!("etcd{}", &name[4..]);
        match n.runtime.info(&member).await.map(|c| c.state) {
            Some(State::Running { .. }) => {}
            Some(State::Exited { code, .. }) => stopped.push((member, name, code)),
            Some(State::Created) | None => stopped.push((member, name, -1)),
        }
    }
    let names = |list: &[(String, &str, i32)]| {
        list.iter()
            .map(|(m, n, _)| format!("{m} on {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match stopped.as_slice() {
        [] => return Err("container etcd2 on node2 is running".into()),
        [(m, _, _)] if m != "etcd2" => {
            return Err(format!(
                "etcd on node2 is running; the member stopped is {}: the task stops node2's",
                names(&stopped)
            ))
        }
        [_] => {}
        _ => {
            return Err(format!(
                "{} are stopped: {} of 3 members run, and 3 need 2 for a quorum",
                names(&stopped),
                3 - stopped.len()
            ))
        }
    }
    let code = stopped[0].2;
    // The two that run: one of them leads (a status call to each, as etcdctl's).
    let node1 = node(cluster, "node1")?;
    let mut leaders = Vec::new();
    for ip in [cluster.ip("node1"), cluster.ip("node3")] {
        let mut config = ClientConfig::new(vec![format!("http://{ip}:2379")]);
        config.network = node1.ctx.network.clone();
        config.clock = node1.ctx.clock.clone();
        config.timeout = Duration::from_secs(2);
        let Ok(client) = Client::new(config) else {
            continue;
        };
        if let Ok(s) = client.status().await {
            let me = s.header.map_or(0, |h| h.member_id);
            if s.leader != 0 && s.leader == me {
                leaders.push(ip.to_string());
            }
        }
    }
    match leaders.as_slice() {
        [one] => Ok(format!(
            "container etcd2 exited ({code}); the member at {one} leads the other two"
        )),
        [] => Err("etcd2 is stopped, but neither etcd1 nor etcd3 is a leader".into()),
        _ => Err(format!("two leaders at once: {}", leaders.join(", "))),
    }
}

/// The audit events of the pod's creation, in the control-plane nodes' audit logs.
fn creations(cluster: &Cluster, pod: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for n in cluster.nodes.iter().filter(|n| n.control_plane) {
        let text = n.ctx.read(AUDIT_LOG).unwrap_or_default();
        for line in text.lines() {
            let Ok(e) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let o = &e["objectRef"];
            if e["verb"] == "create"
                && o["resource"] == "pods"
                && o["namespace"] == "default"
                && o["name"] == pod
                && o.get("subresource").is_none()
                && e["responseStatus"]["code"] == 201
            {
                found.push(e);
            }
        }
    }
    found.sort_by_key(|e| e["stageTimestamp"].as_str().unwrap_or("").to_string());
    found
}

async fn alpine(cluster: &Cluster) -> Result<String, String> {
    let client = cluster.admin().map_err(|e| e.to_string())?;
    let clock = cluster.clock();
    let deadline = clock.now() + Duration::from_secs(20);
    let pod = loop {
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
            break pod;
        }
        if clock.now() > deadline {
            return Err(format!("phase {}, command {command:?}", pod.status.phase));
        }
        clock.sleep(Duration::from_millis(200)).await;
    };
    let on = pod.spec.node_name.clone();
    if cluster.node(&on).is_some_and(|n| n.control_plane) {
        return Err(format!(
            "alpine runs on {on}, a control-plane node, not a worker"
        ));
    }
    // Who created it, and from where: the apiserver's audit log.
    let Some(created) = creations(cluster, "alpine").pop() else {
        return Err(format!(
            "no audit event in {AUDIT_LOG} on the control-plane nodes records the creation of pod alpine"
        ));
    };
    let from = created["sourceIPs"][0].as_str().unwrap_or("").to_string();
    let agent = created["userAgent"].as_str().unwrap_or("");
    let node2 = cluster.ip("node2");
    if from != node2 {
        let by = cluster
            .nodes
            .iter()
            .find(|n| n.ctx.ip == from)
            .map_or(format!("{from}, not a node of the cluster"), |n| {
                format!("{} ({from})", n.name())
            });
        return Err(format!(
            "pod alpine was created from {by}, not node2 ({node2}): run kubectl on node2"
        ));
    }
    if !agent.starts_with("kubectl/") {
        return Err(format!("pod alpine was created by {agent:?}, not kubectl"));
    }
    Ok(format!(
        "Running on {on} (a worker), ping 8.8.8.8; created from node2 ({node2}) by {}",
        agent.split(' ').next().unwrap_or(agent)
    ))
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
