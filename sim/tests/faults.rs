//! Whole-cluster fault tests: seeded random schedules of faults — etcd members stopped
//! and started (quorum loss included), apiserver manifests removed and restored,
//! kubelets restarted, partitions between nodes (full and one way), nodes crashing —
//! interleaved with client work through the apiservers (pods created, a Deployment
//! scaled), on the assignment's cluster in virtual time. After the schedule every
//! fault is healed, and these must hold:
//!
//! - no write the API acknowledged is lost: every acknowledged pod exists, and the
//!   Deployment's replicas are the last acknowledged value or one written after it;
//! - a watch sees resourceVersions strictly increasing;
//! - no pod is bound twice (at most one `Scheduled` event per pod, naming its node);
//! - within 5 minutes of virtual time the cluster converges: one etcd leader, the
//!   Deployment's pods all Running, both leader leases held;
//! - no client call hangs: each one answers (or fails) within its deadline.
//!
//! `FAULT_SCHEDULES=N` runs N schedules (default 64, in four tests of N/4 run side
//! by side). A failing schedule is shrunk by proptest, saved in
//! `faults.proptest-regressions` (replayed first next time) and printed with the
//! command that replays it alone: `FAULT_SCHEDULE='…' cargo test -p sim --test faults
//! replay`.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::types::{Deployment, Event, Pod};
use client_go::client::{Client, ListParams};
use proptest::prelude::*;
use sim::cluster::{Cluster, Options};
use sim::kubelet::MANIFESTS;
use sim::runtime::State;

/// One thing that happens to the cluster.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// `docker stop etcdN` on node N.
    StopEtcd(usize),
    /// `docker start etcdN`.
    StartEtcd(usize),
    /// Remove node N's apiserver manifest and restart its kubelet (N is 0 or 1).
    RemoveApiserver(usize),
    /// Put it back and restart the kubelet.
    RestoreApiserver(usize),
    /// `systemctl restart kubelet` on node N.
    RestartKubelet(usize),
    /// Cut nodes A and B apart.
    Partition(usize, usize),
    /// Hold what A sends to B.
    OneWay(usize, usize),
    /// Join every link again.
    Repair,
    /// Node N loses power: every process and connection of it dies at once.
    Crash(usize),
    /// A crashed node N comes back (its etcd member and kubelet start).
    Boot(usize),
    /// Create pod `wN` (through whichever apiserver answers).
    CreatePod(u8),
    /// Scale the Deployment `web` to N replicas.
    Scale(u8),
    /// Let N seconds of virtual time pass.
    Wait(u8),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::StopEtcd(n) => write!(f, "stop-etcd:{n}"),
            Step::StartEtcd(n) => write!(f, "start-etcd:{n}"),
            Step::RemoveApiserver(n) => write!(f, "remove-apiserver:{n}"),
            Step::RestoreApiserver(n) => write!(f, "restore-apiserver:{n}"),
            Step::RestartKubelet(n) => write!(f, "restart-kubelet:{n}"),
            Step::Partition(a, b) => write!(f, "partition:{a}:{b}"),
            Step::OneWay(a, b) => write!(f, "one-way:{a}:{b}"),
            Step::Repair => write!(f, "repair"),
            Step::Crash(n) => write!(f, "crash:{n}"),
            Step::Boot(n) => write!(f, "boot:{n}"),
            Step::CreatePod(n) => write!(f, "create-pod:{n}"),
            Step::Scale(n) => write!(f, "scale:{n}"),
            Step::Wait(n) => write!(f, "wait:{n}"),
        }
    }
}

impl std::str::FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Step, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let n = |i: usize| -> Result<usize, String> {
            parts
                .get(i)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("{s}: a number is missing"))
        };
        Ok(match parts[0] {
            "stop-etcd" => Step::StopEtcd(n(1)?),
            "start-etcd" => Step::StartEtcd(n(1)?),
            "remove-apiserver" => Step::RemoveApiserver(n(1)?),
            "restore-apiserver" => Step::RestoreApiserver(n(1)?),
            "restart-kubelet" => Step::RestartKubelet(n(1)?),
            "partition" => Step::Partition(n(1)?, n(2)?),
            "one-way" => Step::OneWay(n(1)?, n(2)?),
            "repair" => Step::Repair,
            "crash" => Step::Crash(n(1)?),
            "boot" => Step::Boot(n(1)?),
            "create-pod" => Step::CreatePod(n(1)? as u8),
            "scale" => Step::Scale(n(1)? as u8),
            "wait" => Step::Wait(n(1)? as u8),
            other => return Err(format!("{other}: not a step")),
        })
    }
}

/// A seed and the steps, written as the replay command takes them:
/// `seed=3;stop-etcd:1;wait:5;scale:3`.
#[derive(Debug, Clone)]
struct Schedule {
    seed: u64,
    steps: Vec<Step>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed={}", self.seed)?;
        for step in &self.steps {
            write!(f, ";{step}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Schedule, String> {
        let mut parts = s.split(';');
        let seed = parts
            .next()
            .and_then(|p| p.strip_prefix("seed="))
            .and_then(|p| p.parse().ok())
            .ok_or("a schedule starts with seed=N")?;
        let steps = parts.map(str::parse).collect::<Result<_, _>>()?;
        Ok(Schedule { seed, steps })
    }
}

fn step() -> impl Strategy<Value = Step> {
    let node = 0..3usize;
    prop_oneof![
        3 => node.clone().prop_map(Step::StopEtcd),
        3 => node.clone().prop_map(Step::StartEtcd),
        1 => (0..2usize).prop_map(Step::RemoveApiserver),
        1 => (0..2usize).prop_map(Step::RestoreApiserver),
        1 => node.clone().prop_map(Step::RestartKubelet),
        2 => (node.clone(), node.clone())
            .prop_filter("two nodes", |(a, b)| a != b)
            .prop_map(|(a, b)| Step::Partition(a, b)),
        1 => (node.clone(), node.clone())
            .prop_filter("two nodes", |(a, b)| a != b)
            .prop_map(|(a, b)| Step::OneWay(a, b)),
        2 => Just(Step::Repair),
        1 => node.clone().prop_map(Step::Crash),
        1 => node.prop_map(Step::Boot),
        3 => (0..20u8).prop_map(Step::CreatePod),
        3 => (0..4u8).prop_map(Step::Scale),
        4 => (1..20u8).prop_map(Step::Wait),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (any::<u64>(), prop::collection::vec(step(), 1..12))
        .prop_map(|(seed, steps)| Schedule { seed, steps })
}

/// What the client work wrote, and what it was told.
#[derive(Debug, Default)]
struct Ledger {
    /// Pods whose creation was acknowledged.
    pods: Vec<String>,
    /// Every replicas value written, in order, and whether it was acknowledged.
    scales: Vec<(i32, bool)>,
    /// Calls that did not answer within their deadline.
    hung: Vec<String>,
}

/// How long a client call may take before it counts as a hang: the client's own
/// timeout is 10 s per apiserver, failing over between two.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            }
        }
    }))
    .expect("a Deployment")
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "probe"}},
        "spec": {"containers": [{"name": "c", "image": "alpine", "command": ["sleep", "3600"]}]}
    }))
    .expect("a Pod")
}

/// Runs `call` within [`CALL_DEADLINE`]: `None` (and a note in the ledger) if it hung.
async fn bounded<T>(
    cluster: &Cluster,
    ledger: &Mutex<Ledger>,
    what: &str,
    call: impl std::future::Future<Output = T>,
) -> Option<T> {
    match cluster.clock().timeout(CALL_DEADLINE, call).await {
        Ok(out) => Some(out),
        Err(_) => {
            ledger.lock().unwrap().hung.push(what.to_string());
            None
        }
    }
}

async fn apply(cluster: &Cluster, client: &Client, ledger: &Mutex<Ledger>, step: &Step) {
    let ip = |n: usize| cluster.nodes[n].ctx.ip.clone();
    let node = |n: usize| &cluster.nodes[n];
    match step {
        Step::StopEtcd(n) => {
            let _ = node(*n).runtime.stop(&format!("etcd{}", n + 1)).await;
        }
        Step::StartEtcd(n) => {
            let _ = node(*n).runtime.start(&format!("etcd{}", n + 1)).await;
        }
        Step::RemoveApiserver(n) => move_manifest(node(*n), true).await,
        Step::RestoreApiserver(n) => move_manifest(node(*n), false).await,
        Step::RestartKubelet(n) => restart_kubelet(node(*n)).await,
        Step::Partition(a, b) => cluster.network.partition(&ip(*a), &ip(*b)),
        Step::OneWay(a, b) => cluster.network.partition_oneway(&ip(*a), &ip(*b)),
        Step::Repair => cluster.network.repair_all(),
        Step::Crash(n) => {
            node(*n).stop_kubelet().await;
            node(*n).runtime.stop_all().await;
            cluster.network.crash(&ip(*n));
        }
        Step::Boot(n) => boot(cluster, *n).await,
        Step::CreatePod(i) => {
            let name = format!("w{i}");
            let created = bounded(
                cluster,
                ledger,
                &format!("create pod {name}"),
                client.create(&pod(&name)),
            )
            .await;
            if let Some(Ok(_)) = created {
                ledger.lock().unwrap().pods.push(name);
            }
        }
        Step::Scale(n) => {
            let patch = serde_json::json!({"spec": {"replicas": n}});
            let call = client.patch::<Deployment>("default", "web", &patch);
            let done = bounded(cluster, ledger, &format!("scale web to {n}"), call).await;
            let acked = matches!(done, Some(Ok(_)));
            ledger.lock().unwrap().scales.push((i32::from(*n), acked));
        }
        Step::Wait(s) => {
            cluster
                .clock()
                .sleep(Duration::from_secs(u64::from(*s)))
                .await
        }
    }
}

/// Moves the node's apiserver manifest out of the manifest directory (`away`) or
/// back, and restarts its kubelet, which reads the directory when it starts.
async fn move_manifest(node: &sim::cluster::Node, away: bool) {
    let manifest = node.ctx.path(&format!("{MANIFESTS}/kube-apiserver.yaml"));
    let kept = node.ctx.path("/root/kube-apiserver.yaml");
    let (from, to) = if away {
        (manifest, kept)
    } else {
        (kept, manifest)
    };
    if std::fs::rename(from, to).is_ok() {
        restart_kubelet(node).await;
    }
}

/// `systemctl restart kubelet`, on a node whose kubelet runs (a crashed node's does
/// not).
async fn restart_kubelet(node: &sim::cluster::Node) {
    if node.kubelet_running().await {
        node.stop_kubelet().await;
        node.start_kubelet().await;
    }
}

/// A node that is down comes up: its etcd member starts, then its kubelet.
async fn boot(cluster: &Cluster, n: usize) {
    let node = &cluster.nodes[n];
    let _ = node.runtime.start(&format!("etcd{}", n + 1)).await;
    node.start_kubelet().await;
}

/// Every fault undone: links joined, members and kubelets started, manifests back.
async fn heal(cluster: &Cluster) {
    cluster.network.repair_all();
    for (n, node) in cluster.nodes.iter().enumerate() {
        let kept = node.ctx.path("/root/kube-apiserver.yaml");
        if kept.exists() {
            let path = node.ctx.path(&format!("{MANIFESTS}/kube-apiserver.yaml"));
            let _ = std::fs::rename(&kept, &path);
            node.stop_kubelet().await;
        }
        let etcd = format!("etcd{}", n + 1);
        if !matches!(
            node.runtime.info(&etcd).await.map(|c| c.state),
            Some(State::Running { .. })
        ) {
            let _ = node.runtime.start(&etcd).await;
        }
        node.start_kubelet().await;
    }
}

/// Whether the cluster has converged, or what it still lacks.
async fn converged(cluster: &Cluster, client: &Client, replicas: i32) -> Result<(), String> {
    let status = sim::shell::run(
        cluster,
        "node1",
        "etcdctl endpoint status --cluster -w table",
    )
    .await;
    let leaders = status.stdout.matches("|      true |").count();
    let members = status
        .stdout
        .lines()
        .filter(|l| l.starts_with("| http"))
        .count();
    if leaders != 1 || members != 3 {
        return Err(format!("etcd: {members} members answer, {leaders} leaders"));
    }
    let selector = ListParams {
        label_selector: "app=web".into(),
        ..ListParams::default()
    };
    let pods = client
        .list::<Pod>(Some("default"), &selector)
        .await
        .map_err(|e| e.to_string())?;
    let live: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let running = live.iter().filter(|p| p.status.phase == "Running").count();
    if live.len() != replicas as usize || running != live.len() {
        return Err(format!(
            "web: {} pods, {running} Running, want {replicas}",
            live.len()
        ));
    }
    for name in ["kube-scheduler", "kube-controller-manager"] {
        let lease: api::types::Lease = client
            .get("kube-system", name)
            .await
            .map_err(|e| e.to_string())?;
        if lease
            .spec
            .holder_identity
            .as_deref()
            .unwrap_or("")
            .is_empty()
        {
            return Err(format!("lease {name} is not held"));
        }
    }
    Ok(())
}

/// Watches pods and records every resourceVersion seen, per stream. Each watch starts
/// from a list's resourceVersion (or the last one seen), so what it sends are changes,
/// in order: a watch from `0` would begin with the current objects, in no order.
fn watch_pods(client: Client, seen: Arc<Mutex<Vec<Vec<i64>>>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rv = String::new();
        loop {
            if rv.is_empty() {
                match client
                    .list::<Pod>(Some("default"), &ListParams::default())
                    .await
                {
                    Ok(list) => rv = list.metadata.resource_version,
                    Err(_) => {
                        client.clock().sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let mut stream = match client
                .watch::<Pod>(Some("default"), &ListParams::default(), &rv)
                .await
            {
                Ok(stream) => stream,
                Err(client_go::error::Error::Expired(_)) => {
                    rv.clear(); // 410 Gone: list again
                    continue;
                }
                Err(_) => {
                    client.clock().sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            seen.lock().unwrap().push(Vec::new());
            while let Ok(Some(event)) = stream.next().await {
                use client_go::informer::Event as Watched;
                let at = match event {
                    Watched::Added(p) | Watched::Modified(p) | Watched::Deleted(p) => {
                        p.metadata.resource_version
                    }
                    Watched::Bookmark(rv) => rv,
                };
                if let Ok(n) = at.parse::<i64>() {
                    seen.lock()
                        .unwrap()
                        .last_mut()
                        .expect("pushed above")
                        .push(n);
                    rv = at;
                }
            }
        }
    })
}

/// Runs `schedule` on a fresh cluster; `Err` says which invariant broke.
fn run(schedule: &Schedule) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let options = Options {
        seed: schedule.seed,
        ..Options::default()
    };
    let runtime = sim::cluster::runtime(schedule.seed).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let cluster = Cluster::create_with(dir.path(), options).await.map_err(|e| e.to_string())?;
        cluster.wait_ready(Duration::from_secs(120)).await.map_err(|e| e.to_string())?;
        let client = cluster.admin().map_err(|e| e.to_string())?;
        client.create(&deployment(2)).await.map_err(|e| format!("create web: {e}"))?;
        let ledger = Mutex::new(Ledger {
            scales: vec![(2, true)],
            ..Ledger::default()
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let watcher = watch_pods(client.clone(), seen.clone());
        for step in &schedule.steps {
            apply(&cluster, &client, &ledger, step).await;
        }
        heal(&cluster).await;

        // Converge: the last replicas value the Deployment may hold is the last one
        // acknowledged or one written after it.
        let ledger = ledger.into_inner().unwrap();
        let last_acked = ledger.scales.iter().rposition(|s| s.1).unwrap_or(0);
        let allowed: Vec<i32> = ledger.scales[last_acked..].iter().map(|s| s.0).collect();
        let clock = cluster.clock();
        let until = clock.now() + Duration::from_secs(300);
        let verdict = loop {
            let replicas = client.get::<Deployment>("default", "web").await.ok().and_then(|d| d.spec.replicas);
            let outcome = match replicas {
                Some(r) if !allowed.contains(&r) => break Err(format!("web has {r} replicas; the writes since the last acknowledged one were {allowed:?}")),
                Some(r) => converged(&cluster, &client, r).await,
                None => Err("web cannot be read".to_string()),
            };
            match outcome {
                Ok(()) => break Ok(()),
                Err(e) if clock.now() > until => break Err(format!("not converged 5 min after healing: {e}")),
                Err(_) => clock.sleep(Duration::from_secs(1)).await,
            }
        };
        watcher.abort();
        if let Err(e) = verdict {
            // What a learner would look at first.
            let mut seen = String::new();
            for (node, line) in [
                ("node1", "kubectl get pods -A -o wide"),
                ("node1", "kubectl get nodes"),
                ("node3", "docker ps -a"),
            ] {
                let out = sim::shell::run(&cluster, node, line).await;
                seen.push_str(&format!("\n{node}$ {line}\n{}{}", out.stdout, out.stderr));
            }
            return Err(format!("{e}{seen}"));
        }
        if !ledger.hung.is_empty() {
            return Err(format!("calls that hung: {:?}", ledger.hung));
        }
        for name in &ledger.pods {
            client.get::<Pod>("default", name).await.map_err(|e| format!("acknowledged pod {name} lost: {e}"))?;
        }
        for stream in seen.lock().unwrap().iter() {
            if let Some(w) = stream.windows(2).find(|w| w[0] >= w[1]) {
                return Err(format!("a watch saw resourceVersion {} after {}", w[1], w[0]));
            }
        }
        let events = client.list::<Event>(Some("default"), &ListParams::default()).await.map_err(|e| e.to_string())?;
        let mut bound = std::collections::BTreeMap::<String, Vec<String>>::new();
        for e in events.items.iter().filter(|e| e.reason == "Scheduled") {
            bound.entry(e.involved_object.name.clone()).or_default().push(e.message.clone());
        }
        if let Some((pod, messages)) = bound.iter().find(|(_, m)| m.len() > 1) {
            return Err(format!("pod {pod} bound more than once: {messages:?}"));
        }
        cluster.shutdown().await;
        Ok(())
    })
}

/// Schedules per test: `FAULT_SCHEDULES` / 4 (four tests run side by side).
fn cases() -> u32 {
    let total: u32 = std::env::var("FAULT_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    total.div_ceil(4).max(1)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn check(schedule: &Schedule) -> Result<(), TestCaseError> {
    run(schedule).map_err(|e| {
        TestCaseError::fail(format!(
            "{e}\n  replay: FAULT_SCHEDULE='{schedule}' cargo test -p sim --test faults replay"
        ))
    })
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn faults_a(schedule in schedule()) { check(&schedule)?; }
    #[test]
    fn faults_b(schedule in schedule()) { check(&schedule)?; }
    #[test]
    fn faults_c(schedule in schedule()) { check(&schedule)?; }
    #[test]
    fn faults_d(schedule in schedule()) { check(&schedule)?; }
}

/// `FAULT_SCHEDULE='seed=…;…'`: runs that one schedule (what a failure prints).
#[test]
fn replay() {
    let Ok(text) = std::env::var("FAULT_SCHEDULE") else {
        return; // nothing to replay
    };
    let schedule: Schedule = text.parse().expect("a schedule as a failure prints it");
    // `FAULT_TRACE=1`: the components' logs too (at debug, stamped with nothing but
    // the order they came in).
    let _log = std::env::var_os("FAULT_TRACE").map(|_| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .without_time()
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    });
    if let Err(e) = run(&schedule) {
        panic!("{schedule}: {e}");
    }
}

/// Schedules that once failed, replayed on every run (proptest's own file keeps the
/// ones it finds from now on, `faults.proptest-regressions`).
const FOUND: &[&str] = &[
    // A kubelet's watch slept through the repair of a one-way partition
    // (seams::memory: bytes written across a cut did not mark the pipe as held).
    "seed=5442870367567734703;one-way:0:2;wait:6",
    "seed=2093852367385987815;one-way:1:2;boot:0;wait:1",
];

#[test]
fn schedules_that_once_failed_pass() {
    for text in FOUND {
        let schedule: Schedule = text.parse().unwrap();
        if let Err(e) = run(&schedule) {
            panic!("{schedule}: {e}");
        }
    }
}

#[test]
fn schedules_read_back_as_written() {
    let schedule = Schedule {
        seed: 7,
        steps: vec![
            Step::StopEtcd(1),
            Step::Partition(0, 2),
            Step::Wait(5),
            Step::Scale(3),
            Step::Repair,
        ],
    };
    let text = schedule.to_string();
    assert_eq!(
        text,
        "seed=7;stop-etcd:1;partition:0:2;wait:5;scale:3;repair"
    );
    let back: Schedule = text.parse().unwrap();
    assert_eq!(back.steps, schedule.steps);
    assert!("seed=1;explode:3".parse::<Schedule>().is_err());
}
