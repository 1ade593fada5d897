//! The scheduler against a real apiserver over a 3-member kvstore.

mod support;

use std::sync::Arc;
use std::time::Duration;

use api::types::{Event, Lease, Pod};
use apiserver::local::LocalControlPlane;
use client_go::client::{Client, ListParams};
use client_go::leaderelection;
use scheduler::run::{Config, Scheduler};
use scheduler::testing::pod;
use seams::SystemClock;
use support::{eventually, node};

async fn bound_to(client: &Client, name: &str) -> Option<String> {
    let p: Pod = client.get("default", name).await.ok()?;
    Some(p.spec.node_name).filter(|n| !n.is_empty())
}

async fn events_about(client: &Client, name: &str) -> Vec<Event> {
    let params = ListParams {
        field_selector: format!("involvedObject.name={name}"),
        ..ListParams::default()
    };
    client
        .list::<Event>(Some("default"), &params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn in_default(mut p: Pod) -> Pod {
    p.metadata.namespace = "default".into();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_to_nodes_that_fit_and_failures_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let env = LocalControlPlane::start(dir.path(), 3).await.unwrap();
    let api = env.apiserver().await.unwrap();
    let client = env.client(&[&api]).unwrap();
    for n in [
        node("node1", "2", true),
        node("node2", "2", true),
        node("node3", "2", false),
    ] {
        eventually("the node is created", || async {
            client.create(&n).await.ok()
        })
        .await;
    }
    let logged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = logged.clone();
    let config = Config {
        identity: "kube-scheduler-test".into(),
        leader_election: None,
        log: Some(Arc::new(move |line| sink.lock().unwrap().push(line))),
    };
    let scheduler = Scheduler::start(client.clone(), config, Arc::new(SystemClock));

    client.create(&in_default(pod("alpine", ""))).await.unwrap();
    let placed = eventually("alpine is bound", || bound_to(&client, "alpine")).await;
    assert_eq!(placed, "node3");
    let scheduled = eventually("the Scheduled event", || async {
        events_about(&client, "alpine")
            .await
            .into_iter()
            .find(|e| e.reason == "Scheduled")
    })
    .await;
    assert_eq!(
        scheduled.message,
        "Successfully assigned default/alpine to node3"
    );
    assert_eq!(scheduled.reporting_instance, "kube-scheduler-test");
    assert_eq!(scheduled.source.component, "default-scheduler");
    let record = scheduler
        .records
        .lock()
        .unwrap()
        .get("default/alpine")
        .cloned()
        .unwrap();
    assert!(
        record
            .explanation
            .contains("=> bind default/alpine to node3"),
        "{}",
        record.explanation
    );

    // Too big for the worker: a FailedScheduling event in Kubernetes' words, and the
    // pod's PodScheduled condition says why.
    client.create(&in_default(pod("big", "3"))).await.unwrap();
    let failed = eventually("the FailedScheduling event", || async {
        events_about(&client, "big")
            .await
            .into_iter()
            .find(|e| e.reason == "FailedScheduling")
    })
    .await;
    assert_eq!(
        failed.message,
        "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
    );
    assert_eq!(failed.type_, "Warning");
    let big: Pod = eventually("the condition", || async {
        let p: Pod = client.get("default", "big").await.ok()?;
        p.status
            .conditions
            .iter()
            .any(|c| c.reason == "Unschedulable")
            .then_some(p)
    })
    .await;
    assert_eq!(big.spec.node_name, "");

    // A node with room appears: the pending pod is retried and placed.
    client.create(&node("node4", "8", false)).await.unwrap();
    let placed = eventually("big is bound", || bound_to(&client, "big")).await;
    assert_eq!(placed, "node4");
    // Each decision's table reached the scheduler's log, once per verdict.
    let log = logged.lock().unwrap().clone();
    let binds: Vec<&String> = log.iter().filter(|l| l.starts_with("=> bind")).collect();
    assert_eq!(
        binds,
        [
            "=> bind default/alpine to node3",
            "=> bind default/big to node4"
        ],
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("node3") && l.contains("passed")),
        "{log:#?}"
    );
}

fn elect(identity: &str) -> Config {
    Config {
        identity: identity.into(),
        leader_election: Some(leaderelection::Config {
            lease_duration: Duration::from_millis(1500),
            renew_deadline: Duration::from_millis(1000),
            retry_period: Duration::from_millis(200),
            ..leaderelection::Config::new("kube-scheduler", identity)
        }),
        log: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_scheduler_takes_over_when_the_leaders_apiserver_dies() {
    let dir = tempfile::tempdir().unwrap();
    let env = LocalControlPlane::start(dir.path(), 3).await.unwrap();
    let (api1, api2) = (
        env.apiserver().await.unwrap(),
        env.apiserver().await.unwrap(),
    );
    let (c1, c2) = (env.client(&[&api1]).unwrap(), env.client(&[&api2]).unwrap());
    for n in [
        node("node1", "2", true),
        node("node2", "2", true),
        node("node3", "2", false),
    ] {
        eventually("the node is created", || async { c2.create(&n).await.ok() }).await;
    }
    // Each scheduler talks only to its own node's apiserver, as a static pod does.
    let s1 = Scheduler::start(
        c1.clone(),
        elect("kube-scheduler-node1"),
        Arc::new(SystemClock),
    );
    let s2 = Scheduler::start(
        c2.clone(),
        elect("kube-scheduler-node2"),
        Arc::new(SystemClock),
    );
    let leader = eventually("a leader", || async {
        match (s1.is_leader(), s2.is_leader()) {
            (true, false) => Some(1),
            (false, true) => Some(2),
            _ => None,
        }
    })
    .await;
    let (old, new, survivor, old_api, new_name) = if leader == 1 {
        (&s1, &s2, &c2, &api1, "kube-scheduler-node2")
    } else {
        (&s2, &s1, &c1, &api2, "kube-scheduler-node1")
    };

    old_api.stop_serving();
    eventually("the other instance leads", || async {
        new.is_leader().then_some(())
    })
    .await;
    eventually("the deposed leader stops", || async {
        (!old.is_leader()).then_some(())
    })
    .await;
    let lease: Lease = survivor.get("kube-system", "kube-scheduler").await.unwrap();
    assert_eq!(lease.spec.holder_identity.as_deref(), Some(new_name));
    assert!(lease.spec.lease_transitions.unwrap_or(0) >= 1);

    survivor
        .create(&in_default(pod("alpine", "")))
        .await
        .unwrap();
    let placed = eventually("alpine is bound", || bound_to(survivor, "alpine")).await;
    assert_eq!(placed, "node3");
    let scheduled = eventually("the Scheduled event", || async {
        events_about(survivor, "alpine")
            .await
            .into_iter()
            .find(|e| e.reason == "Scheduled")
    })
    .await;
    assert_eq!(scheduled.reporting_instance, new_name);
}
