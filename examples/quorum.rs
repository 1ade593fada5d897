//! `cargo run --example quorum`
//!
//! Three etcd members in one process, on a simulated network and clock: they elect a
//! leader, lose one member and keep committing, lose a second and stall (requests fail
//! by their deadline instead of hanging), then recover without losing anything that
//! was acknowledged. Everything printed is what the members actually did.
//!
//! Pass a number to change the seed: `cargo run --example quorum -- 42`.

use kvstore::sim::{history, Outcome, SimCluster, SimConfig};
use kvstore::{linearizability, Request};

/// The key the story writes: where kube-apiserver keeps the pod `alpine`.
const POD: &str = "/registry/pods/default/alpine";

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut sim = SimCluster::new(SimConfig::new(3, seed));
    let cfg = sim.config().clone();
    println!("miniplane kvstore: a 3-member etcd cluster on a simulated network (seed {seed})");
    println!(
        "1 tick = one heartbeat (etcd: 100 ms); election timeouts {}..{} ticks; request deadline {} ticks",
        cfg.election_tick,
        2 * cfg.election_tick - 1,
        cfg.request_timeout_ticks
    );

    step(
        &mut sim,
        "1. Three members start; none is leader yet",
        |_| {},
    );
    step(
        &mut sim,
        "2. The first election timeout fires; a leader is elected",
        |sim| {
            sim.run_until(100, |s| s.stable_leader().is_some());
        },
    );
    let leader = sim.leader().expect("a leader after step 2");
    let followers: Vec<u64> = sim.ids().into_iter().filter(|&id| id != leader).collect();
    let (writer, victim) = (followers[0], followers[1]);

    step(
        &mut sim,
        "3. A write through a follower: forwarded, replicated, committed",
        |sim| {
            let id = sim.request(
                writer,
                Request::put("/registry/namespaces/default", "Active"),
            );
            wait(sim, &[id]);
        },
    );

    step(
        &mut sim,
        "4. One member crashes: 2 of 3 is still a majority",
        |sim| {
            sim.crash(victim);
            let id = sim.request(leader, Request::put(POD, "Pending"));
            wait(sim, &[id]);
        },
    );

    step(
        &mut sim,
        "5. A second member crashes: no majority, nothing commits",
        |sim| {
            sim.crash(writer);
            let put = sim.request(leader, Request::put(POD, "ContainerCreating"));
            let get = sim.request(leader, Request::get(POD));
            wait(sim, &[put, get]);
        },
    );
    say("The leader stepped down once it had not heard from a majority for an election");
    say("timeout (check-quorum). Its write timed out: the outcome is unknown, not failed.");

    step(
        &mut sim,
        "6. A serializable read still answers, from local state",
        |sim| {
            let id = sim.request(leader, Request::get_serializable(POD));
            wait(sim, &[id]);
        },
    );

    step(
        &mut sim,
        "7. One member returns: a majority again, a leader, writes commit",
        |sim| {
            sim.restart(writer);
            sim.run_until(100, |s| s.stable_leader().is_some());
            let put = sim.request(writer, Request::put(POD, "Running"));
            wait(sim, &[put]);
            let get = sim.request(writer, Request::get(POD));
            wait(sim, &[get]);
        },
    );
    // Did the write that timed out in step 5 take effect after all? Look in the history.
    let current = sim.leader().and_then(|id| sim.member(id));
    let history = current.map(|m| m.store().events_since(1).unwrap_or_default());
    let resurrected = history.unwrap_or_default().iter().any(|e| {
        e.kv.as_ref()
            .is_some_and(|kv| kv.value == b"ContainerCreating")
    });
    if resurrected {
        say("The step-5 write that \"timed out\" was in the old leader's log and committed");
        say("once a majority was back (see the version): a timeout means \"unknown\".");
    } else {
        say("The step-5 write that timed out is gone: \"unknown\" allowed that too.");
    }

    step(
        &mut sim,
        "8. The last member returns and catches up from the leader's log",
        |sim| {
            sim.restart(victim);
            sim.run(10);
            let get = sim.request(victim, Request::get(POD));
            wait(sim, &[get]);
        },
    );

    println!("\n== Checks");
    match sim.check_invariants() {
        Ok(()) => {
            println!("Raft safety: one leader per term, matching logs, same applied state: ok")
        }
        Err(e) => println!("Raft safety VIOLATED: {e}"),
    }
    let ops = history::to_operations(sim.records());
    match linearizability::check(&ops) {
        Ok(()) => println!("History of {} client operations: linearizable", ops.len()),
        Err(v) => println!("History NOT linearizable: {v}"),
    }
}

/// A line of commentary under a step.
fn say(text: &str) {
    println!("   > {text}");
}

/// Runs one step of the story: a heading, the work, then what happened and the table.
fn step(sim: &mut SimCluster, title: &str, work: impl FnOnce(&mut SimCluster)) {
    println!("\n== {title}");
    let start = sim.ticks();
    work(sim);
    for line in sim.take_transcript() {
        println!("   {line}");
    }
    let ticks = sim.ticks() - start;
    println!("   [{ticks} tick{}]", if ticks == 1 { "" } else { "s" });
    for line in sim.status_table().lines() {
        println!("   {line}");
    }
}

/// Lets time pass until the requests are answered (they always are, by their deadline).
fn wait(sim: &mut SimCluster, ids: &[u64]) {
    let limit = sim.config().request_timeout_ticks + 1;
    sim.run_until(limit, |s| {
        ids.iter()
            .all(|&id| s.record(id).is_some_and(|r| r.outcome != Outcome::Pending))
    });
}
