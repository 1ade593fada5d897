//! Property tests of quorum loss: random fault schedules against a simulated cluster.
//!
//! proptest generates schedules of client requests (put, get, delete, compare-and-swap
//! on random members), time (ticks), network behaviour (deliver all, deliver in random
//! order, drop a message, partition, heal) and crashes/restarts, over 3 and 5 members.
//! While a schedule runs, after every step:
//!
//! - Raft safety holds: at most one leader per term, logs match, every member applied
//!   the same entries at the same indexes and holds the same store there, and no
//!   member's revision ever goes back ([`SimCluster::check_invariants`]);
//! - no request outlives its deadline;
//! - a write or linearizable read sent to a member cut off from the majority (and not
//!   rescued by a heal or restart before it completed) fails with an error.
//!
//! At the end the network heals and every member restarts; then:
//!
//! - a leader is elected and new writes on every member commit within a bounded number
//!   of ticks (liveness with a connected majority);
//! - every acknowledged write is still there: reading its key at its revision returns
//!   its value, on every member;
//! - the whole recorded history is linearizable.
//!
//! `PROPTEST_CASES=5000 cargo test --release -p kvstore --test quorum_props` runs a
//! larger budget; failing cases are saved in `tests/quorum_props.regressions` and
//! replayed first on the next run.

use std::collections::BTreeMap;

use kvstore::linearizability;
use kvstore::proto::etcdserverpb::RangeRequest;
use kvstore::sim::{history, Outcome, SimCluster, SimConfig};
use kvstore::{Error, Request, Response};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};

const KEYS: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        member: u8,
        key: u8,
    },
    Get {
        member: u8,
        key: u8,
        serializable: bool,
    },
    Delete {
        member: u8,
        key: u8,
    },
    Cas {
        member: u8,
        key: u8,
        expect: u8,
    },
    Tick(u8),
    Run(u8),
    DeliverAll,
    DeliverRandom(u8),
    Drop {
        from: u8,
        to: u8,
    },
    Crash(u8),
    Restart(u8),
    Partition(u8),
    Heal,
}

fn op() -> impl Strategy<Value = Op> {
    let m = 0u8..5;
    let k = 0u8..3;
    prop_oneof![
        6 => (m.clone(), k.clone()).prop_map(|(member, key)| Op::Put { member, key }),
        4 => (m.clone(), k.clone(), any::<bool>())
            .prop_map(|(member, key, serializable)| Op::Get { member, key, serializable }),
        1 => (m.clone(), k.clone()).prop_map(|(member, key)| Op::Delete { member, key }),
        2 => (m.clone(), k.clone(), 0u8..4)
            .prop_map(|(member, key, expect)| Op::Cas { member, key, expect }),
        3 => (1u8..6).prop_map(Op::Tick),
        5 => (1u8..12).prop_map(Op::Run),
        3 => Just(Op::DeliverAll),
        3 => (1u8..20).prop_map(Op::DeliverRandom),
        1 => (m.clone(), m.clone()).prop_map(|(from, to)| Op::Drop { from, to }),
        2 => m.clone().prop_map(Op::Crash),
        2 => m.clone().prop_map(Op::Restart),
        2 => any::<u8>().prop_map(Op::Partition),
        2 => Just(Op::Heal),
    ]
}

/// What a request promised about its outcome when it was invoked.
struct Expectation {
    /// Sent to a member outside any majority: must fail unless the network got better
    /// (heal/restart) before it completed.
    minority: bool,
    /// The "network got better" counter at invocation.
    epoch: u64,
}

struct Harness {
    sim: SimCluster,
    n: u64,
    next_value: u64,
    written: BTreeMap<&'static str, Vec<String>>,
    expectations: BTreeMap<u64, Expectation>,
    /// Bumped on every heal and restart; partitions and crashes only ever make things
    /// worse, so they do not count.
    epoch: u64,
    /// Epoch at each request completion, to know whether it was rescued.
    completion_epoch: BTreeMap<u64, u64>,
}

impl Harness {
    fn new(n: u64, seed: u64) -> Self {
        Self::with_snapshots(n, seed, 0)
    }

    /// A cluster whose members snapshot and compact their logs every `every` entries
    /// (0: never), so lagging members catch up from snapshots.
    fn with_snapshots(n: u64, seed: u64, every: u64) -> Self {
        let mut config = SimConfig::new(n, seed);
        config.snapshot_count = every;
        Harness {
            sim: SimCluster::new(config),
            n,
            next_value: 0,
            written: BTreeMap::new(),
            expectations: BTreeMap::new(),
            epoch: 0,
            completion_epoch: BTreeMap::new(),
        }
    }

    fn member(&self, m: u8) -> u64 {
        u64::from(m) % self.n + 1
    }

    fn request(&mut self, member: u64, request: Request) {
        let needs_quorum = !request.is_serializable_read();
        let minority = needs_quorum && !self.sim.in_majority(member) && self.sim.is_up(member);
        let id = self.sim.request(member, request);
        self.expectations.insert(
            id,
            Expectation {
                minority,
                epoch: self.epoch,
            },
        );
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Put { member, key } => {
                self.next_value += 1;
                let value = format!("v{}", self.next_value);
                let key = KEYS[key as usize];
                self.written.entry(key).or_default().push(value.clone());
                let m = self.member(member);
                self.request(m, Request::put(key, value));
            }
            Op::Get {
                member,
                key,
                serializable,
            } => {
                let key = KEYS[key as usize];
                let m = self.member(member);
                let r = if serializable {
                    Request::get_serializable(key)
                } else {
                    Request::get(key)
                };
                self.request(m, r);
            }
            Op::Delete { member, key } => {
                let m = self.member(member);
                self.request(m, Request::delete(KEYS[key as usize]));
            }
            Op::Cas {
                member,
                key,
                expect,
            } => {
                let key = KEYS[key as usize];
                self.next_value += 1;
                let value = format!("v{}", self.next_value);
                let history = self.written.entry(key).or_default();
                let expect = match (expect, history.len()) {
                    (0, _) | (_, 0) => None,
                    (e, len) => Some(
                        history[len - 1 - (e as usize - 1) % len]
                            .clone()
                            .into_bytes(),
                    ),
                };
                history.push(value.clone());
                let m = self.member(member);
                self.request(m, Request::cas(key, expect, value));
            }
            Op::Tick(n) => (0..n).for_each(|_| self.sim.tick()),
            Op::Run(n) => self.sim.run(u64::from(n)),
            Op::DeliverAll => {
                self.sim.deliver_all();
            }
            Op::DeliverRandom(n) => {
                self.sim.deliver_random(n as usize);
            }
            Op::Drop { from, to } => {
                let (from, to) = (self.member(from), self.member(to));
                self.sim.drop_message(from, to);
            }
            Op::Crash(m) => {
                let m = self.member(m);
                self.sim.crash(m);
            }
            Op::Restart(m) => {
                let m = self.member(m);
                if !self.sim.is_up(m) {
                    self.sim.restart(m);
                    self.epoch += 1;
                }
            }
            Op::Partition(mask) => {
                let group: Vec<u64> = (1..=self.n)
                    .filter(|i| mask & (1 << (i - 1)) != 0)
                    .collect();
                if !group.is_empty() && group.len() < self.n as usize {
                    self.sim.partition(&group);
                }
            }
            Op::Heal => {
                self.sim.heal();
                self.epoch += 1;
            }
        }
        self.note_completions();
    }

    fn note_completions(&mut self) {
        for r in self.sim.records() {
            if r.outcome != Outcome::Pending {
                self.completion_epoch.entry(r.id).or_insert(self.epoch);
            }
        }
    }

    /// Checks that hold after every step.
    fn check_step(&self) -> Result<(), TestCaseError> {
        self.sim.check_invariants().map_err(TestCaseError::fail)?;
        let timeout = self.sim.config().request_timeout_ticks;
        for r in self.sim.records() {
            match &r.outcome {
                Outcome::Pending => prop_assert!(
                    self.sim.ticks() <= r.invoked_tick + timeout,
                    "request {} outlived its deadline",
                    r.id
                ),
                Outcome::Completed {
                    at_tick, result, ..
                } => {
                    prop_assert!(
                        *at_tick <= r.invoked_tick + timeout,
                        "request {} answered late",
                        r.id
                    );
                    // Requests made by `finish` itself carry no expectation.
                    let Some(e) = self.expectations.get(&r.id) else {
                        continue;
                    };
                    let rescued = self
                        .completion_epoch
                        .get(&r.id)
                        .is_some_and(|&c| c != e.epoch);
                    if e.minority && !rescued {
                        prop_assert!(
                            matches!(
                                result,
                                Err(Error::Timeout | Error::NoLeader | Error::LeaderChanged)
                            ),
                            "request {} to a member in a minority did not fail as it must: {:?}",
                            r.id,
                            result
                        );
                    }
                }
                Outcome::Lost { .. } => {}
            }
        }
        Ok(())
    }

    /// Heal, restart everyone, and check liveness, durability and linearizability.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        self.sim.heal();
        for id in self.sim.ids() {
            if !self.sim.is_up(id) {
                self.sim.restart(id);
            }
        }
        self.epoch += 1;
        // Settle: a leader that everyone follows, and that stays leader for a whole
        // election timeout of healthy heartbeats. (Messages the schedule held back can
        // leave election timers nearly run out, so one more election right after the
        // heal is normal; it must not go on forever.)
        let e = self.sim.config().election_tick as u64;
        let mut settled = false;
        for _ in 0..10 {
            self.sim.run_until(10 * e, |s| s.stable_leader().is_some());
            let leader = self.sim.stable_leader();
            self.sim.run(e);
            if leader.is_some() && self.sim.stable_leader() == leader {
                settled = true;
                break;
            }
        }
        prop_assert!(settled, "no stable leader after the network healed");
        // Liveness: with everyone up and connected, a write on every member commits
        // within a bound.
        let writes: Vec<u64> = self
            .sim
            .ids()
            .into_iter()
            .map(|m| {
                self.sim
                    .request(m, Request::put("final", format!("from-{m}")))
            })
            .collect();
        let bound = 3 * self.sim.config().election_tick as u64;
        let done = self.sim.run_until(bound, |s| {
            writes
                .iter()
                .all(|&id| s.record(id).is_some_and(|r| r.outcome != Outcome::Pending))
        });
        prop_assert!(done, "writes did not complete within {bound} ticks");
        for &id in &writes {
            let r = self.sim.record(id).expect("recorded");
            prop_assert!(
                r.succeeded(),
                "write {id} failed on a healthy cluster: {:?}",
                r.outcome
            );
        }
        // Let every request still in flight finish, and every member catch up.
        let timeout = self.sim.config().request_timeout_ticks;
        self.sim.run(timeout + 1);
        self.note_completions();
        self.check_step()?;
        for r in self.sim.records() {
            prop_assert!(
                r.outcome != Outcome::Pending,
                "request {} never completed",
                r.id
            );
        }
        // Every member now holds the same store.
        let digests: Vec<(u64, i64)> = self
            .sim
            .ids()
            .into_iter()
            .map(|id| {
                let m = self.sim.member(id).expect("up");
                (m.store().digest(), m.store().current_revision())
            })
            .collect();
        prop_assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "members diverged: {digests:?}"
        );
        // Durability: every acknowledged put is readable at its revision everywhere.
        for r in self.sim.records() {
            let (
                Request::Put(put),
                Outcome::Completed {
                    result: Ok(Response::Put(resp)),
                    ..
                },
            ) = (&r.request, &r.outcome)
            else {
                continue;
            };
            let revision = resp.header.as_ref().map_or(0, |h| h.revision);
            for id in self.sim.ids() {
                let store = self.sim.member(id).expect("up").store();
                let got = store
                    .range(&RangeRequest {
                        key: put.key.clone(),
                        revision,
                        ..Default::default()
                    })
                    .map_err(|e| TestCaseError::fail(format!("read at {revision}: {e}")))?;
                let value = got.kvs.first().map(|kv| kv.value.clone());
                prop_assert_eq!(
                    value,
                    Some(put.value.clone()),
                    "acknowledged put {} lost",
                    r.id
                );
            }
        }
        // Final linearizable reads join the history, then the whole history is checked.
        let reads: Vec<u64> = KEYS
            .iter()
            .flat_map(|k| self.sim.ids().into_iter().map(move |m| (m, *k)))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(m, k)| self.sim.request(m, Request::get(k)))
            .collect();
        let done = self.sim.run_until(bound, |s| {
            reads
                .iter()
                .all(|&id| s.record(id).is_some_and(|r| r.outcome != Outcome::Pending))
        });
        prop_assert!(done, "final reads did not complete");
        let ops = history::to_operations(self.sim.records());
        if let Err(v) = linearizability::check(&ops) {
            return Err(TestCaseError::fail(v.to_string()));
        }
        Ok(())
    }
}

fn schedule() -> impl Strategy<Value = (u64, u64, u64, Vec<Op>)> {
    (
        prop_oneof![Just(3u64), Just(5u64)],
        any::<u64>(),
        prop_oneof![Just(0u64), 2u64..8],
        prop::collection::vec(op(), 10..80),
    )
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        // Failing cases are saved beside this file and replayed first next time.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    })]

    #[test]
    fn quorum_loss_never_loses_acknowledged_writes((n, seed, every, ops) in schedule()) {
        let mut h = Harness::with_snapshots(n, seed, every);
        // Start from a cluster with a leader, as a real one would be.
        h.sim.run_until(100, |s| s.leader().is_some());
        for op in &ops {
            h.apply(op);
            h.check_step()?;
        }
        h.finish()?;
    }
}

/// A hand-written schedule that must hit the interesting path: the majority is lost,
/// requests fail by their deadline, and after recovery nothing acknowledged is gone.
#[test]
fn majority_down_requests_fail_then_recover() {
    let mut h = Harness::new(3, 7);
    assert!(h.sim.run_until(100, |s| s.leader().is_some()));
    let ops = [
        Op::Put { member: 0, key: 0 },
        Op::Run(5),
        Op::Crash(1),
        Op::Crash(2),
        Op::Put { member: 0, key: 0 },
        Op::Get {
            member: 0,
            key: 0,
            serializable: false,
        },
        Op::Run(40),
    ];
    for op in &ops {
        h.apply(op);
        h.check_step().unwrap();
    }
    let records = h.sim.records();
    assert!(records[0].succeeded());
    assert!(
        records[1].error().is_some(),
        "write without quorum must fail: {:?}",
        records[1].outcome
    );
    assert!(
        records[2].error().is_some(),
        "read without quorum must fail: {:?}",
        records[2].outcome
    );
    h.finish().unwrap();
}

/// The property test is only as good as the schedules it explores. This replays the
/// generator deterministically and checks that a fair share of schedules reach the
/// situations the properties are about — else they would pass vacuously.
#[test]
fn schedules_reach_the_interesting_states() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

    let cases = 256;
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let (mut minority_failures, mut restarts, mut leader_changes, mut unknown) = (0, 0, 0, 0);
    for _ in 0..cases {
        let (n, seed, every, ops) = schedule()
            .new_tree(&mut runner)
            .expect("a schedule")
            .current();
        let mut h = Harness::with_snapshots(n, seed, every);
        h.sim.run_until(100, |s| s.leader().is_some());
        for op in &ops {
            h.apply(op);
        }
        h.finish().expect("the properties hold");
        let records = h.sim.records();
        if records
            .iter()
            .any(|r| h.expectations.get(&r.id).is_some_and(|e| e.minority) && r.error().is_some())
        {
            minority_failures += 1;
        }
        if ops.iter().any(|op| matches!(op, Op::Restart(_)))
            && ops.iter().any(|op| matches!(op, Op::Crash(_)))
        {
            restarts += 1;
        }
        if h.sim.invariants().terms_with_leader() > 1 {
            leader_changes += 1;
        }
        if records.iter().any(|r| {
            matches!(r.outcome, Outcome::Lost { .. })
                || r.error().is_some_and(Error::is_indeterminate)
        }) {
            unknown += 1;
        }
    }
    eprintln!(
        "of {cases} schedules: {minority_failures} had requests fail in a minority, \
         {restarts} crashed and restarted members, {leader_changes} changed leader, \
         {unknown} had writes of unknown outcome"
    );
    for (what, count) in [
        ("minority failures", minority_failures),
        ("crash and restart", restarts),
        ("leader changes", leader_changes),
        ("unknown outcomes", unknown),
    ] {
        assert!(
            count * 10 >= cases,
            "only {count} of {cases} schedules had {what}"
        );
    }
}
