//! `etcd-torture`: a fault harness for a three-member cluster of our `etcd`, run by
//! `scripts/torture`.
//!
//! ## What it proves
//! A database's first promise is durability: a write it acknowledged survives any
//! crash. This harness tries hard to break that promise and then checks it:
//!
//! 1. It starts three member processes on loopback and several writers (see
//!    [`writers`]) that put unique keys through all three members and write down
//!    every answer: acknowledged (with its revision), certainly not applied, or
//!    indeterminate.
//! 2. While they write, it `kill -9`s members every 1–3 s — half the time the
//!    current leader, found with `Maintenance.Status` — and restarts each after a
//!    short pause; a few times it kills all three at once.
//! 3. A second phase restarts the cluster with a small `--snapshot-count`, so the
//!    log is compacted often and a member that was down for a few seconds must be
//!    sent a snapshot (counted from the members' logs).
//! 4. A third phase damages a stopped member's write-ahead log (see [`wal`]): torn
//!    tails it must repair, then a flipped byte it must refuse to start on; the saved
//!    original is then restored.
//! 5. Finally it stops the writers and checks (see [`check`]) that every member holds
//!    every acknowledged write with its value, and that the members agree by
//!    `HashKV` at a common revision.
//!
//! It prints a summary and exits 1 on any loss, disagreement, or failed check.
//!
//! ## Repeating a run
//! Every random choice (whom to kill, how long to wait) comes from one seed, printed
//! at the start; `TORTURE_SEED=<n>` repeats the choices. The timing of the processes
//! is the machine's, so two runs with one seed are alike, not identical.
//!
//! Settings, from the environment: `TORTURE_SEED`, `TORTURE_PORT_BASE` (members use
//! base+1..3 for clients and base+11..13 for peers; a busy port is refused),
//! `TORTURE_PHASE_SECS` (each of the two kill phases, default 50), `TORTURE_WRITERS`
//! (default 4).

mod check;
mod cluster;
mod wal;
mod writers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kvstore::proto::etcdserverpb::CompactionRequest;
use kvstore::sim::SplitMix64;

use cluster::{Cluster, Start};
use writers::Ledger;

/// etcd's default `--snapshot-count`, for the first phase.
const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// The second phase's: small, so the log is compacted every few hundred writes.
const SMALL_SNAPSHOT_COUNT: u64 = 200;

/// A fault harness for three `etcd` members on loopback (see the module doc).
#[derive(Parser, Debug)]
struct Flags {
    /// The member binary (target/debug/etcd).
    #[arg(long)]
    etcd: PathBuf,
    /// A directory for the members' data and logs.
    #[arg(long)]
    dir: PathBuf,
}

/// One phase of kills.
struct Phase {
    name: &'static str,
    snapshot_count: u64,
    /// How long a killed member stays down, in milliseconds (low, high).
    down_ms: (u64, u64),
    /// When to kill the whole cluster, as fractions of the phase.
    whole_kills: &'static [f64],
}

/// What the harness did and saw along the way.
#[derive(Default)]
struct Tally {
    random: u32,
    leader: u32,
    whole: u32,
    wal: u32,
    /// Checks that failed, in words (members that did not come back, WAL checks).
    failures: Vec<String>,
    /// The WAL checks, in words, with whether each passed.
    wal_checks: Vec<(String, bool)>,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn main() -> ExitCode {
    let flags = Flags::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("etcd-torture: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match terminate.as_mut() {
                Some(t) => t.recv().await,
                None => std::future::pending().await,
            }
        };
        // Interrupted, the run is dropped: the cluster's Drop kills every member.
        tokio::select! {
            code = run(flags) => code,
            _ = tokio::signal::ctrl_c() => interrupted(),
            _ = terminated => interrupted(),
        }
    })
}

fn interrupted() -> ExitCode {
    eprintln!("etcd-torture: interrupted; members stopped");
    ExitCode::from(130)
}

async fn run(flags: Flags) -> ExitCode {
    let seed = env_number("TORTURE_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map_or(1, |d| d.as_micros() as u64)
    });
    let phase_length = Duration::from_secs(env_number("TORTURE_PHASE_SECS").unwrap_or(50));
    let writer_count = env_number("TORTURE_WRITERS").unwrap_or(4).max(1) as usize;
    let given = env_number("TORTURE_PORT_BASE").and_then(|b| u16::try_from(b).ok());
    let base = match cluster::choose_ports(given, seed) {
        Ok(base) => base,
        Err(e) => {
            eprintln!("etcd-torture: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("seed {seed} (TORTURE_SEED={seed} repeats these choices)");
    println!(
        "members m1-m3: clients on 127.0.0.1:{}-{}, peers {}-{}; data in {}",
        base + 1,
        base + 3,
        base + 11,
        base + 13,
        flags.dir.display()
    );
    let started = Instant::now();
    let mut rng = SplitMix64::new(seed);
    let mut tally = Tally::default();
    let mut cluster = Cluster::new(&flags.etcd, &flags.dir, base);
    for i in 0..3 {
        if let Err(e) = cluster.spawn(i, DEFAULT_SNAPSHOT_COUNT) {
            eprintln!("etcd-torture: {e}");
            return ExitCode::FAILURE;
        }
    }
    for i in 0..3 {
        check_start(
            &mut cluster,
            i,
            "first start",
            DEFAULT_SNAPSHOT_COUNT,
            &mut tally,
        )
        .await;
    }
    wait_for_leader(&cluster, &mut tally).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let compactions = Arc::new(AtomicU64::new(0));
    let mut tasks: Vec<_> = (0..writer_count)
        .map(|w| {
            let (endpoints, ledger, stop) = (cluster.endpoints(), ledger.clone(), stop.clone());
            tokio::spawn(writers::run(w, seed, endpoints, ledger, stop))
        })
        .collect();
    tasks.push(tokio::spawn(compactor(
        cluster.endpoints(),
        stop.clone(),
        compactions.clone(),
    )));

    let phases = [
        Phase {
            name: "kills",
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            down_ms: (200, 1500),
            whole_kills: &[0.33, 0.66],
        },
        Phase {
            name: "snapshots",
            snapshot_count: SMALL_SNAPSHOT_COUNT,
            down_ms: (2000, 4000),
            whole_kills: &[0.0, 0.5],
        },
    ];
    for phase in &phases {
        println!(
            "[{:>4}s] phase {}: --snapshot-count {}",
            started.elapsed().as_secs(),
            phase.name,
            phase.snapshot_count
        );
        chaos(&mut cluster, &mut rng, &mut tally, phase, phase_length).await;
    }
    println!("[{:>4}s] phase wal damage", started.elapsed().as_secs());
    wal_phase(&mut cluster, &mut rng, &mut tally).await;

    println!(
        "[{:>4}s] stopping the writers; checking",
        started.elapsed().as_secs()
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        // A writer finishes its request in flight: the client's 10 s timeout bounds it.
        if tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .is_err()
        {
            tally
                .failures
                .push("a writer did not stop within 30 s".into());
        }
    }
    let ledger = std::mem::take(&mut *ledger.lock().expect("the writers are done"));
    let findings = check::run(&cluster, &ledger).await;
    let installs = cluster.snapshot_installs();
    cluster.kill_all();
    summary(
        &tally,
        &ledger,
        &findings,
        installs,
        &compactions,
        seed,
        started,
    )
}

/// Kills members for `length`: one every 1–3 s (the leader half the time), the whole
/// cluster at the phase's planned moments.
async fn chaos(
    cluster: &mut Cluster,
    rng: &mut SplitMix64,
    tally: &mut Tally,
    phase: &Phase,
    length: Duration,
) {
    let start = Instant::now();
    let mut whole = phase.whole_kills.iter().map(|f| start + length.mul_f64(*f));
    let mut next_whole = whole.next();
    while start.elapsed() < length {
        if next_whole.is_some_and(|at| Instant::now() >= at) {
            next_whole = whole.next();
            cluster.kill_all();
            tally.whole += 1;
            println!("  kill -9 of all three members");
            pause(rng, 500, 1500).await;
            for i in 0..3 {
                let _ = cluster.spawn(i, phase.snapshot_count);
            }
            for i in 0..3 {
                check_start(
                    cluster,
                    i,
                    "whole-cluster kill",
                    phase.snapshot_count,
                    tally,
                )
                .await;
            }
            wait_for_leader(cluster, tally).await;
            continue;
        }
        pause(rng, 1000, 3000).await;
        let leader = cluster.leader().await;
        let victim = match leader {
            Some(l) if rng.below(2) == 0 => {
                tally.leader += 1;
                l
            }
            _ => {
                tally.random += 1;
                rng.below(3) as usize
            }
        };
        cluster.kill(victim);
        let role = if Some(victim) == leader {
            "leader"
        } else {
            "follower"
        };
        println!("  kill -9 of {} ({role})", cluster.members[victim].name);
        pause(rng, phase.down_ms.0, phase.down_ms.1).await;
        let _ = cluster.spawn(victim, phase.snapshot_count);
        check_start(cluster, victim, "restart", phase.snapshot_count, tally).await;
    }
}

/// Waits for member `i` to serve after a start; a member that exits or stays silent
/// is a failure, and is started once more so that the run can go on.
async fn check_start(
    cluster: &mut Cluster,
    i: usize,
    after: &str,
    snapshot_count: u64,
    tally: &mut Tally,
) {
    for attempt in 0..2 {
        let problem = match cluster.wait_serving(i).await {
            Start::Serving => return,
            Start::Exited(code) => format!("exited ({code:?})"),
            Start::Silent => "is running but did not answer within 30 s".to_string(),
        };
        let name = cluster.members[i].name.clone();
        let line = cluster.last_words(i);
        tally.failures.push(format!(
            "{name} {problem} after {after} (attempt {}): {line}",
            attempt + 1
        ));
        cluster.kill(i);
        let _ = cluster.spawn(i, snapshot_count);
    }
}

async fn wait_for_leader(cluster: &Cluster, tally: &mut Tally) {
    let deadline = Instant::now() + cluster::COME_BACK;
    while cluster.leader().await.is_none() {
        if Instant::now() > deadline {
            tally.failures.push("no leader within 30 s".into());
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // polling a condition
    }
}

async fn pause(rng: &mut SplitMix64, low_ms: u64, high_ms: u64) {
    let ms = low_ms + rng.below(high_ms - low_ms + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A follower (not the leader), chosen at random.
async fn follower(cluster: &Cluster, rng: &mut SplitMix64) -> usize {
    let leader = cluster.leader().await;
    let others: Vec<usize> = (0..3).filter(|i| Some(*i) != leader).collect();
    others[rng.below(others.len() as u64) as usize]
}

/// Damages the WAL of a stopped follower three times: two torn tails (it must come
/// back) and a flipped byte in the middle (it must refuse to start and leave the file
/// alone).
async fn wal_phase(cluster: &mut Cluster, rng: &mut SplitMix64, tally: &mut Tally) {
    let count = SMALL_SNAPSHOT_COUNT;
    for keep_zeros in [false, true] {
        let victim = follower(cluster, rng).await;
        cluster.kill(victim);
        tally.wal += 1;
        let dir = cluster.members[victim].data_dir.clone();
        match wal::newest_segment(&dir).and_then(|s| wal::tear_tail(&s, keep_zeros)) {
            Ok(what) => {
                println!("  torn tail: {what}");
                let _ = cluster.spawn(victim, count);
                let outcome = cluster.wait_serving(victim).await;
                let back = matches!(outcome, Start::Serving);
                let shape = if keep_zeros {
                    "zeros after it"
                } else {
                    "the file ends in it"
                };
                let check = if back {
                    format!("torn tail ({shape}): repaired, the member came back")
                } else {
                    let line = cluster.last_words(victim);
                    format!(
                        "torn tail ({shape}): expected the member back; got {outcome:?} ({line})"
                    )
                };
                tally.wal_checks.push((check, back));
                if !back {
                    check_start(cluster, victim, "a torn tail", count, tally).await;
                }
            }
            Err(e) => tally.failures.push(format!("torn tail: {e}")),
        }
        pause(rng, 2000, 3000).await; // let it catch up while the writers go on
    }

    let victim = follower(cluster, rng).await;
    cluster.kill(victim);
    tally.wal += 1;
    let dir = cluster.members[victim].data_dir.clone();
    let saved = dir.with_extension("saved");
    let damaged = wal::copy_dir(&dir, &saved)
        .and_then(|()| wal::newest_segment(&dir))
        .and_then(|s| wal::flip_middle_byte(&s).map(|(bytes, what)| (s, bytes, what)));
    let (segment, bytes, what) = match damaged {
        Ok(d) => d,
        Err(e) => {
            tally.failures.push(format!("flipped byte: {e}"));
            return;
        }
    };
    println!("  flipped byte: {what}");
    let _ = cluster.spawn(victim, count);
    let outcome = cluster.wait_serving(victim).await;
    cluster.kill(victim); // whatever it did, stop it before looking at the file
    let after = std::fs::read(&segment).unwrap_or_default();
    let untouched = after == bytes;
    let line = cluster.last_words(victim);
    let refused = matches!(outcome, Start::Exited(Some(code)) if code != 0);
    let file = if untouched {
        "file untouched".to_string()
    } else {
        format!("file changed: {} -> {} bytes", bytes.len(), after.len())
    };
    let check = format!("flipped byte: expected a refusal; got {outcome:?}, {file} ({line})");
    tally.wal_checks.push((check, refused && untouched));
    match wal::restore_dir(&saved, &dir) {
        Ok(()) => {
            let _ = cluster.spawn(victim, count);
            check_start(cluster, victim, "restoring the undamaged WAL", count, tally).await;
        }
        Err(e) => tally
            .failures
            .push(format!("restore after the flipped byte: {e}")),
    }
}

/// Compacts the history every 10 s to a few hundred revisions back, as kube-apiserver
/// compacts every five minutes: compaction and snapshots must work under the kills.
async fn compactor(endpoints: Vec<String>, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut turn = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        turn += 1;
        if turn % 10 != 0 {
            continue;
        }
        let mut client = writers::kv_client(&endpoints[(turn / 10) % endpoints.len()]);
        let read = kvstore::proto::etcdserverpb::RangeRequest {
            key: b"compactor".to_vec(),
            serializable: true,
            ..Default::default()
        };
        let Ok(now) = client.range(read).await else {
            continue;
        };
        let revision = now.into_inner().header.map_or(0, |h| h.revision) - 300;
        let request = CompactionRequest {
            revision,
            physical: false,
        };
        if revision > 1 && client.compact(request).await.is_ok() {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn summary(
    tally: &Tally,
    ledger: &Ledger,
    f: &check::Findings,
    installs: usize,
    compactions: &AtomicU64,
    seed: u64,
    started: Instant,
) -> ExitCode {
    let kills = tally.random + tally.leader + tally.whole * 3 + tally.wal;
    let keys = |writes: &[writers::Write]| writes.iter().map(|w| w.pairs.len()).sum::<usize>();
    println!("\n== etcd-torture summary ==");
    println!("seed                   {seed}");
    println!("wall time              {} s", started.elapsed().as_secs());
    println!(
        "kills (kill -9)        {kills}: random member {}, leader {}, whole cluster {} (x3), before WAL damage {}",
        tally.random, tally.leader, tally.whole, tally.wal
    );
    println!(
        "acked writes           {} requests ({} keys)",
        ledger.acked.len(),
        keys(&ledger.acked)
    );
    println!(
        "indeterminate writes   {} requests ({} of their keys found applied)",
        ledger.maybe.len(),
        f.maybe_applied
    );
    println!(
        "certainly not applied  {} requests",
        ledger.not_applied.len()
    );
    println!("lost writes            {} keys", f.lost);
    println!("wrong values           {} keys", f.wrong);
    println!("applied though refused {} keys", f.phantom);
    println!("snapshot installs      {installs} (the members' log lines)");
    println!(
        "compactions            {}",
        compactions.load(Ordering::Relaxed)
    );
    println!("WAL corruptions        {}", tally.wal_checks.len());
    for (check, ok) in &tally.wal_checks {
        println!("  {} {check}", if *ok { "PASS" } else { "FAIL" });
    }
    println!("HashKV at revision {}: {:?}", f.revision, f.hashes);
    println!("most frequent errors the writers saw:");
    let mut errors: Vec<_> = ledger.errors.iter().collect();
    errors.sort_by(|a, b| b.1.cmp(a.1));
    for (text, n) in errors.iter().take(6) {
        println!("  {n:>6}  {text}");
    }
    let mut problems: Vec<String> = tally.failures.clone();
    problems.extend(f.problems.iter().cloned());
    if installs == 0 {
        problems.push("no snapshot was installed: the snapshot phase proved nothing".into());
    }
    problems.extend(
        tally
            .wal_checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(c, _)| c.clone()),
    );
    for p in &problems {
        println!("problem: {p}");
    }
    let pass = problems.is_empty() && f.lost == 0 && f.wrong == 0 && f.phantom == 0;
    println!(
        "verdict                {}",
        if pass { "PASS" } else { "FAIL" }
    );
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
