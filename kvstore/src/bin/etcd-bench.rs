//! `etcd-bench`: drives any etcd v3 gRPC server — ours or the real etcd — with the same
//! workloads, so the two can be compared side by side (`scripts/bench-vs-etcd`).
//!
//! ```text
//! etcd-bench --endpoints http://127.0.0.1:2379,... put --clients 16 --conns 4 --total 20000
//! etcd-bench --endpoints ... range --clients 16 --serializable
//! etcd-bench --endpoints ... failover --pids 1234,1235,1236
//! etcd-bench --endpoints ... snapshot --keys 10000
//! ```
//!
//! Keys are 8 bytes, values 256 bytes, as in the reference measurements. Each run prints
//! one line of `key=value` figures: ops/s and exact latency percentiles from every
//! sample.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use kvstore::client::{Client, ClientConfig};
use kvstore::proto::etcdserverpb::{PutRequest, RangeRequest};

#[derive(Parser)]
#[command(name = "etcd-bench", about = "Benchmark an etcd v3 gRPC cluster")]
struct Args {
    /// Client URLs of the members.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// Also write every operation of `put` and `range` to this file, one line each:
    /// when it started and how long it took (ms since the run began), to see where a
    /// latency tail comes from.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    #[command(subcommand)]
    workload: Workload,
}

/// Which member a workload's clients talk to.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    Any,
    Leader,
    Follower,
}

#[derive(Subcommand)]
enum Workload {
    /// Puts of random keys.
    Put {
        /// Which member the clients send to: the first endpoint given (`any`), the
        /// leader, or a follower (the workload is then named `put-Nc-leader` or
        /// `put-Nc-follower`).
        #[arg(long, value_enum, default_value_t = Via::Any)]
        via: Via,
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 1)]
        conns: usize,
        #[arg(long, default_value_t = 5000)]
        total: usize,
        #[arg(long, default_value_t = 100_000)]
        key_space: u64,
    },
    /// Gets of one key, linearizable unless `--serializable`.
    Range {
        #[arg(long, default_value_t = 16)]
        clients: usize,
        #[arg(long, default_value_t = 4)]
        conns: usize,
        #[arg(long, default_value_t = 20_000)]
        total: usize,
        #[arg(long)]
        serializable: bool,
    },
    /// Kills the leader's process (`--pids` in endpoint order) and times the first
    /// successful put after it; reports what a put in flight at that moment got.
    Failover {
        #[arg(long, value_delimiter = ',', required = true)]
        pids: Vec<u32>,
    },
    /// Writes `keys` keys, then times a snapshot download.
    Snapshot {
        #[arg(long, default_value_t = 10_000)]
        keys: usize,
    },
}

fn client(endpoints: &[String], timeout: Duration) -> Client {
    let mut config = ClientConfig::new(endpoints.to_vec());
    config.timeout = timeout;
    Client::new(config).expect("endpoints were given")
}

/// A deterministic spread of 8-byte keys.
fn key(i: u64, space: u64) -> Vec<u8> {
    let k = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % space.max(1);
    format!("{k:08}").into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn report(name: &str, samples: &mut [Duration], elapsed: Duration, errors: usize) {
    samples.sort();
    println!(
        "workload={name} ops={} errors={errors} ops_per_sec={:.0} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3}",
        samples.len(),
        samples.len() as f64 / elapsed.as_secs_f64(),
        percentile(samples, 0.50),
        percentile(samples, 0.99),
        percentile(samples, 0.999),
        percentile(samples, 1.0),
    );
}

/// Writes `(start, latency)` of each operation, in order of start, as milliseconds.
fn write_trace(path: &std::path::Path, mut ops: Vec<(Duration, Duration)>) {
    use std::fmt::Write as _;
    ops.sort();
    let mut out = String::from("start_ms latency_ms\n");
    for (start, latency) in ops {
        let _ = writeln!(
            out,
            "{:.3} {:.3}",
            start.as_secs_f64() * 1e3,
            latency.as_secs_f64() * 1e3
        );
    }
    if let Err(e) = std::fs::write(path, out) {
        eprintln!("etcd-bench: cannot write the trace {}: {e}", path.display());
    }
}

/// Runs `clients` tasks over `conns` connections, `total` operations in all.
async fn drive<F, Fut>(
    name: &str,
    trace: Option<&std::path::Path>,
    endpoints: &[String],
    clients: usize,
    conns: usize,
    total: usize,
    op: F,
) where
    F: Fn(Client, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let pool: Vec<Client> = (0..conns.max(1))
        .map(|_| client(endpoints, Duration::from_secs(10)))
        .collect();
    let op = Arc::new(op);
    let per = total / clients.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients.max(1) {
        let cl = pool[c % pool.len()].clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per);
            let mut errors = 0;
            for i in 0..per {
                let t = Instant::now();
                if op(cl.clone(), (c * per + i) as u64).await {
                    samples.push((t - start, t.elapsed()));
                } else {
                    errors += 1;
                }
            }
            (samples, errors)
        }));
    }
    let mut ops = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (s, e) = t.await.expect("a client task");
        ops.extend(s);
        errors += e;
    }
    let elapsed = start.elapsed();
    let mut samples: Vec<Duration> = ops.iter().map(|&(_, latency)| latency).collect();
    report(name, &mut samples, elapsed, errors);
    if let Some(path) = trace {
        write_trace(path, ops);
    }
}

fn value() -> Vec<u8> {
    vec![b'v'; 256]
}

/// Which endpoint leads? Asks each; the leader is the one whose ID is the leader's.
/// Asks again (for up to 10 s) until every member answers and one says it leads.
async fn find_leader(endpoints: &[String]) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut leader = None;
        let mut answered = 0;
        for (i, ep) in endpoints.iter().enumerate() {
            let Ok(s) = client(std::slice::from_ref(ep), Duration::from_secs(2))
                .status()
                .await
            else {
                continue;
            };
            answered += 1;
            let me = s.header.map(|h| h.member_id).unwrap_or_default();
            if me == s.leader {
                leader = Some(i);
            }
        }
        if let Some(leader) = leader.filter(|_| answered == endpoints.len()) {
            return Ok(leader);
        }
        if Instant::now() > deadline {
            return leader.ok_or_else(|| "no member says it leads".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The endpoints, reordered so that the client talks first to the member `via` asks
/// for. A client of a follower pays for forwarding: the follower passes the proposal
/// to the leader and answers once the leader tells it the entry committed.
async fn order_endpoints(endpoints: &[String], via: Via) -> Result<Vec<String>, String> {
    let mut ordered = endpoints.to_vec();
    let first = match via {
        Via::Any => return Ok(ordered),
        Via::Leader => find_leader(endpoints).await?,
        Via::Follower => (find_leader(endpoints).await? + 1) % endpoints.len(),
    };
    ordered.rotate_left(first);
    Ok(ordered)
}

async fn failover(endpoints: &[String], pids: &[u32]) -> Result<(), String> {
    let c = client(endpoints, Duration::from_secs(30));
    // A member restarted by the previous round may still be starting: every round
    // kills a leader of a whole cluster.
    let leader = find_leader(endpoints).await?;
    let put = |k: &str| PutRequest {
        key: k.as_bytes().to_vec(),
        value: value(),
        ..Default::default()
    };
    c.put(put("warm")).await.map_err(|e| e.to_string())?;
    // Puts to the leader, back to back, while it dies: the one outstanding at the
    // kill is the put "in flight".
    let to_leader = client(
        std::slice::from_ref(&endpoints[leader]),
        Duration::from_secs(30),
    );
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(None::<Instant>);
    let inflight = tokio::spawn(async move {
        loop {
            let t = Instant::now();
            let req = PutRequest {
                key: b"inflight".to_vec(),
                value: vec![b'v'; 256],
                ..Default::default()
            };
            let r = to_leader.put(req).await;
            let killed_at = *kill_rx.borrow();
            if let Some(k) = killed_at.filter(|k| *k >= t) {
                // Started before the kill, answered after it.
                return (t.elapsed(), k - t, r.map(|_| ()).map_err(|e| e.to_string()));
            }
            if killed_at.is_some() {
                return (
                    Duration::ZERO,
                    Duration::ZERO,
                    Err("no put was in flight at the kill".into()),
                );
            }
        }
    });
    // Let the stream run a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The moment of death is taken just before the signal goes.
    let killed = Instant::now();
    let _ = kill_tx.send(Some(killed));
    let status = std::process::Command::new("kill")
        .args(["-9", &pids[leader].to_string()])
        .status();
    if !status.map(|s| s.success()).unwrap_or(false) {
        return Err(format!("could not kill pid {}", pids[leader]));
    }
    let survivors: Vec<String> = endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, e)| e.clone())
        .collect();
    let after = client(&survivors, Duration::from_millis(500));
    let first_put = loop {
        if after.put(put("after")).await.is_ok() {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(30) {
            return Err("no put succeeded within 30 s".into());
        }
    };
    let (inflight_took, before_kill, inflight_result) =
        inflight.await.map_err(|e| e.to_string())?;
    println!(
        "workload=failover first_put_after_kill_ms={:.0} inflight_answered_ms={:.0} inflight_sent_before_kill_ms={:.1} inflight_result={:?}",
        first_put.as_secs_f64() * 1e3,
        inflight_took.saturating_sub(before_kill).as_secs_f64() * 1e3,
        before_kill.as_secs_f64() * 1e3,
        inflight_result.err().unwrap_or_else(|| "ok".into()),
    );
    Ok(())
}

async fn snapshot(endpoints: &[String], keys: usize) -> Result<(), String> {
    let c = client(endpoints, Duration::from_secs(30));
    for i in 0..keys {
        let req = PutRequest {
            key: format!("snap{i:08}").into_bytes(),
            value: value(),
            ..Default::default()
        };
        c.put(req).await.map_err(|e| e.to_string())?;
    }
    let t = Instant::now();
    let bytes = c.snapshot().await.map_err(|e| e.to_string())?;
    println!(
        "workload=snapshot keys={keys} save_ms={:.0} bytes={}",
        t.elapsed().as_secs_f64() * 1e3,
        bytes.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let endpoints = args.endpoints.clone();
    let outcome = match args.workload {
        Workload::Put {
            via,
            clients,
            conns,
            total,
            key_space,
        } => 'put: {
            let name = match via {
                Via::Any => format!("put-{clients}c"),
                Via::Leader => format!("put-{clients}c-leader"),
                Via::Follower => format!("put-{clients}c-follower"),
            };
            let endpoints = match order_endpoints(&endpoints, via).await {
                Ok(ordered) => ordered,
                Err(e) => break 'put Err(e),
            };
            drive(
                &name,
                args.trace.as_deref(),
                &endpoints,
                clients,
                conns,
                total,
                move |c, i| async move {
                    let req = PutRequest {
                        key: key(i, key_space),
                        value: value(),
                        ..Default::default()
                    };
                    c.put(req).await.is_ok()
                },
            )
            .await;
            Ok(())
        }
        Workload::Range {
            clients,
            conns,
            total,
            serializable,
        } => {
            let seed = client(&endpoints, Duration::from_secs(10));
            let _ = seed
                .put(PutRequest {
                    key: b"bench-key".to_vec(),
                    value: value(),
                    ..Default::default()
                })
                .await;
            let name = if serializable {
                "range-serializable"
            } else {
                "range-linearizable"
            };
            drive(
                name,
                args.trace.as_deref(),
                &endpoints,
                clients,
                conns,
                total,
                move |c, _| async move {
                    let req = RangeRequest {
                        key: b"bench-key".to_vec(),
                        serializable,
                        ..Default::default()
                    };
                    c.range(req).await.is_ok()
                },
            )
            .await;
            Ok(())
        }
        Workload::Failover { pids } => {
            if pids.len() != endpoints.len() {
                Err("--pids needs one pid per endpoint, in the same order".to_string())
            } else {
                failover(&endpoints, &pids).await
            }
        }
        Workload::Snapshot { keys } => snapshot(&endpoints, keys).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
