//! The controllers against a real apiserver over a 3-member kvstore.

use std::sync::Arc;
use std::time::Duration;

use api::types::{Deployment, Lease, Node, NodeCondition, Pod, ReplicaSet, Toleration};
use apiserver::local::{eventually, LocalControlPlane};
use client_go::client::{Client, ListParams};
use client_go::leaderelection::micro_time;
use controller_manager::run::{Config, ControllerManager};
use seams::SystemClock;
// uid and generation in the builder's objects are the server's to set on create.
use controller_manager::testing::replicaset;
use scheduler::run::Scheduler;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn config() -> Config {
    Config {
        leader_election: None,
        node_grace_period: Duration::from_millis(1500),
        monitor_period: Duration::from_millis(200),
        ..Config::new("kube-controller-manager-test")
    }
}

/// The active pods whose names start with `prefix`.
async fn pods_of(client: &Client, prefix: &str) -> Vec<Pod> {
    let pods = client
        .list::<Pod>(Some("default"), &ListParams::default())
        .await
        .unwrap();
    pods.items
        .into_iter()
        .filter(|p| p.metadata.name.starts_with(prefix) && p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Waits until exactly `n` pods of `prefix` exist and the ReplicaSet's status says so.
async fn settles_at(client: &Client, rs: &str, n: usize) -> Vec<Pod> {
    let what = format!("{rs} settles at {n} pods");
    eventually(&what, WAIT, || async {
        let pods = pods_of(client, &format!("{rs}-")).await;
        let status = client.get::<ReplicaSet>("default", rs).await.ok()?.status;
        (pods.len() == n && status.replicas == n as i32).then_some(pods)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicasets_scale_deployments_own_them_and_orphans_go() {
    let dir = tempfile::tempdir().unwrap();
    let plane = LocalControlPlane::start(dir.path(), 3).await.unwrap();
    let api = plane.apiserver().await.unwrap();
    let client = plane.client(&[&api]).unwrap();
    let _controllers = ControllerManager::start(client.clone(), config(), Arc::new(SystemClock));
    let rs = eventually("the namespace exists", WAIT, || async {
        client.create(&replicaset("web", 2)).await.ok()
    })
    .await;

    let pods = settles_at(&client, "web", 2).await;
    for p in &pods {
        assert_eq!(p.metadata.owner_references[0].uid, rs.metadata.uid);
        assert_eq!(p.metadata.owner_references[0].controller, Some(true));
        assert_eq!(
            p.metadata.labels.get("app").map(String::as_str),
            Some("web")
        );
        assert_eq!(p.metadata.name.len(), "web-".len() + 5);
    }
    // 2 → 5 creates exactly three; 5 → 1 leaves one.
    let scale = |n: i32| json!({"spec": {"replicas": n}});
    client
        .patch::<ReplicaSet>("default", "web", &scale(5))
        .await
        .unwrap();
    let five = settles_at(&client, "web", 5).await;
    assert!(pods
        .iter()
        .all(|p| five.iter().any(|q| q.metadata.uid == p.metadata.uid)));
    client
        .patch::<ReplicaSet>("default", "web", &scale(1))
        .await
        .unwrap();
    settles_at(&client, "web", 1).await;

    // A Deployment gets a ReplicaSet named by its template hash; scaling passes through.
    let mut d = Deployment::default();
    d.metadata.name = "app".into();
    d.metadata.namespace = "default".into();
    let template = replicaset("app", 2).spec;
    d.spec.replicas = Some(2);
    d.spec.selector = template.selector;
    d.spec.template = template.template;
    client.create(&d).await.unwrap();
    let owned = eventually("the deployment's replicaset", WAIT, || async {
        let all = client
            .list::<ReplicaSet>(Some("default"), &ListParams::default())
            .await
            .ok()?;
        all.items
            .into_iter()
            .find(|rs| rs.metadata.name.starts_with("app-"))
    })
    .await;
    let hash = owned
        .metadata
        .labels
        .get("pod-template-hash")
        .cloned()
        .unwrap();
    assert_eq!(owned.metadata.name, format!("app-{hash}"));
    settles_at(&client, &owned.metadata.name, 2).await;
    client
        .patch::<Deployment>("default", "app", &scale(3))
        .await
        .unwrap();
    settles_at(&client, &owned.metadata.name, 3).await;
    eventually("the deployment's status", WAIT, || async {
        let d: Deployment = client.get("default", "app").await.ok()?;
        (d.status.replicas == Some(3)).then_some(())
    })
    .await;

    // Deleting a ReplicaSet leaves its pods orphaned: the garbage collector removes them.
    client.delete::<ReplicaSet>("default", "web").await.unwrap();
    eventually("web's pod is collected", WAIT, || async {
        pods_of(&client, "web-").await.is_empty().then_some(())
    })
    .await;
}

/// A node as a kubelet registers it: Ready, with room.
fn node(name: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = name.into();
    n.status.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "True".into(),
        ..NodeCondition::default()
    });
    for (k, v) in [("cpu", "4"), ("memory", "8Gi"), ("pods", "110")] {
        n.status.allocatable.insert(k.into(), v.into());
    }
    n
}

/// Renews `kube-node-lease/<node>` as a kubelet does, until the task is aborted.
fn heartbeat(client: Client, node: &str) -> tokio::task::JoinHandle<()> {
    let node = node.to_string();
    tokio::spawn(async move {
        loop {
            let now = micro_time(api::time::now(&SystemClock));
            let mut lease = match client.get::<Lease>("kube-node-lease", &node).await {
                Ok(l) => l,
                Err(_) => {
                    let mut l = Lease::default();
                    l.metadata.name = node.clone();
                    l.metadata.namespace = "kube-node-lease".into();
                    l
                }
            };
            lease.spec.holder_identity = Some(node.clone());
            lease.spec.lease_duration_seconds = Some(1);
            lease.spec.renew_time = Some(now);
            let _ = if lease.metadata.uid.is_empty() {
                client.create(&lease).await
            } else {
                client.update(&lease).await
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_of_a_silent_node_move_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let plane = LocalControlPlane::start(dir.path(), 3).await.unwrap();
    let api = plane.apiserver().await.unwrap();
    let client = plane.client(&[&api]).unwrap();
    for name in ["node3", "node4"] {
        eventually("the node is registered", WAIT, || async {
            client.create(&node(name)).await.ok()
        })
        .await;
    }
    let beat3 = heartbeat(client.clone(), "node3");
    let _beat4 = heartbeat(client.clone(), "node4");
    let sched = scheduler::run::Config {
        identity: "kube-scheduler-test".into(),
        leader_election: None,
        log: None,
    };
    let _scheduler = Scheduler::start(client.clone(), sched, Arc::new(SystemClock));
    let _controllers = ControllerManager::start(client.clone(), config(), Arc::new(SystemClock));

    // Two replicas that tolerate an unreachable node for one second (not 300).
    let mut rs = replicaset("web", 2);
    rs.spec.template.spec.tolerations.push(Toleration {
        key: "node.kubernetes.io/unreachable".into(),
        operator: "Exists".into(),
        effect: "NoExecute".into(),
        toleration_seconds: Some(1),
        ..Toleration::default()
    });
    client.create(&rs).await.unwrap();
    let placed = eventually("both pods are placed, one per node", WAIT, || async {
        let pods = pods_of(&client, "web-").await;
        let mut nodes: Vec<String> = pods.iter().map(|p| p.spec.node_name.clone()).collect();
        nodes.sort();
        (nodes == ["node3", "node4"]).then_some(pods)
    })
    .await;
    let on_node3 = placed
        .iter()
        .find(|p| p.spec.node_name == "node3")
        .unwrap()
        .metadata
        .name
        .clone();

    // node3's kubelet goes silent.
    beat3.abort();
    let node3: Node = eventually("node3 is unreachable", WAIT, || async {
        let n: Node = client.get("", "node3").await.ok()?;
        let unknown = n
            .status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "Unknown");
        let tainted = n
            .spec
            .taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable");
        (unknown && tainted).then_some(n)
    })
    .await;
    assert_eq!(node3.spec.taints.len(), 2);
    // Its pod is evicted (Terminating: no kubelet confirms), and replaced on node4.
    eventually("the replacement runs on node4", WAIT, || async {
        let pods = pods_of(&client, "web-").await;
        let all_on_4 = pods.len() == 2 && pods.iter().all(|p| p.spec.node_name == "node4");
        all_on_4.then_some(())
    })
    .await;
    let evicted: Pod = client.get("default", &on_node3).await.unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_the_other_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let plane = LocalControlPlane::start(dir.path(), 3).await.unwrap();
    let (api1, api2) = (
        plane.apiserver().await.unwrap(),
        plane.apiserver().await.unwrap(),
    );
    let (c1, c2) = (
        plane.client(&[&api1]).unwrap(),
        plane.client(&[&api2]).unwrap(),
    );
    let elect = |identity: &str| Config {
        leader_election: Some(client_go::leaderelection::Config {
            lease_duration: Duration::from_millis(1500),
            renew_deadline: Duration::from_millis(1000),
            retry_period: Duration::from_millis(200),
            ..client_go::leaderelection::Config::new("kube-controller-manager", identity)
        }),
        ..config()
    };
    let m1 = ControllerManager::start(c1.clone(), elect("node1"), Arc::new(SystemClock));
    let m2 = ControllerManager::start(c2.clone(), elect("node2"), Arc::new(SystemClock));
    let leader = eventually("a leader", WAIT, || async {
        match (m1.is_leader(), m2.is_leader()) {
            (true, false) => Some(1),
            (false, true) => Some(2),
            _ => None,
        }
    })
    .await;
    // Two managers, one leader: exactly three pods, not six.
    eventually("the namespace exists", WAIT, || async {
        c1.create(&replicaset("web", 3)).await.ok()
    })
    .await;
    settles_at(&c1, "web", 3).await;

    let (old_api, survivor, new) = if leader == 1 {
        (&api1, &c2, &m2)
    } else {
        (&api2, &c1, &m1)
    };
    old_api.stop_serving();
    eventually("the other manager leads", WAIT, || async {
        new.is_leader().then_some(())
    })
    .await;
    let scale = json!({"spec": {"replicas": 4}});
    survivor
        .patch::<ReplicaSet>("default", "web", &scale)
        .await
        .unwrap();
    settles_at(survivor, "web", 4).await;
}
