//! How fast the scheduler places pods: 1 000 pods on 100 nodes.
//!
//! `cargo bench -p scheduler --bench schedule` prints two measurements:
//! 1. the decision alone (the pure core), pod after pod, each seeing the ones before it
//!    placed — where the CPU time of scheduling goes;
//! 2. the whole path: a 3-member kvstore, an apiserver, the scheduler; 100 nodes and
//!    1 000 pods created through the API; the time until every pod is bound. Bindings
//!    per second, and how long one binding round trip takes on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::types::Pod;
use apiserver::local::LocalControlPlane;
use client_go::client::ListParams;
use scheduler::run::{Config, Scheduler};
use scheduler::schedule::{add_pod, node_infos, schedule, Decision};
use scheduler::testing::{node, pod};
use seams::SystemClock;

const NODES: usize = 100;
const PODS: usize = 1000;

fn core() {
    let nodes: Vec<_> = (0..NODES)
        .map(|i| node(&format!("node{i:03}"), "64", &[]).node)
        .collect();
    // As the scheduler's pass does: sum the nodes' pods once, then count each pod on
    // its node as it is placed.
    let start = Instant::now();
    let t = Instant::now();
    let mut infos = node_infos(&nodes, &[]);
    let infos_time = t.elapsed();
    let mut decide_time = Duration::ZERO;
    for i in 0..PODS {
        let p = pod(&format!("pod{i:04}"), "100m");
        let t = Instant::now();
        let decision = schedule(&p, &infos);
        decide_time += t.elapsed();
        let Decision::Bind { node, .. } = decision else {
            panic!("a pod did not fit")
        };
        add_pod(&mut infos, &p, &node);
    }
    let total = start.elapsed();
    println!(
        "core: {PODS} decisions over {NODES} nodes in {:.1} ms = {:.0} decisions/s \
         (summing pods per node {:.1} ms, filter+score {:.1} ms)",
        total.as_secs_f64() * 1e3,
        PODS as f64 / total.as_secs_f64(),
        infos_time.as_secs_f64() * 1e3,
        decide_time.as_secs_f64() * 1e3,
    );
}

async fn end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let plane = LocalControlPlane::start(dir.path(), 3).await.unwrap();
    let api = plane.apiserver().await.unwrap();
    let client = plane.client(&[&api]).unwrap();
    for i in 0..NODES {
        let n = node(&format!("node{i:03}"), "64", &[]).node;
        loop {
            if client.create(&n).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // One binding round trip, measured alone.
    let mut probe = pod("probe", "");
    probe.metadata.namespace = "default".into();
    probe.spec.scheduler_name = "nobody".into();
    client.create(&probe).await.unwrap();
    let t = Instant::now();
    client.bind("default", "probe", "node000").await.unwrap();
    let one_bind = t.elapsed();

    // The pods first (the API's write path alone), then the scheduler binds them all.
    let start = Instant::now();
    for i in 0..PODS {
        let mut p = pod(&format!("pod{i:04}"), "100m");
        p.metadata.namespace = "default".into();
        client.create(&p).await.unwrap();
    }
    let created = start.elapsed();
    let config = Config {
        identity: "bench".into(),
        leader_election: None,
        log: None,
    };
    let start = Instant::now();
    let _scheduler = Scheduler::start(client.clone(), config, Arc::new(SystemClock));
    loop {
        let pods = client
            .list::<Pod>(Some("default"), &ListParams::default())
            .await
            .unwrap();
        let bound = pods
            .items
            .iter()
            .filter(|p| !p.spec.node_name.is_empty())
            .count();
        if bound == PODS + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = start.elapsed();
    println!(
        "end to end: {PODS} pods created one by one in {:.2} s ({:.1} ms each); \
         the scheduler then bound all of them in {:.2} s = {:.0} pods bound/s \
         (one bind round trip alone: {:.2} ms; each binding also writes a Scheduled event)",
        created.as_secs_f64(),
        created.as_secs_f64() * 1e3 / PODS as f64,
        total.as_secs_f64(),
        PODS as f64 / total.as_secs_f64(),
        one_bind.as_secs_f64() * 1e3,
    );
}

fn main() {
    core();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(end_to_end());
}
