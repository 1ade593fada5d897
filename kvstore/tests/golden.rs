//! Golden transcripts: one script per claim in `tests/golden/`, the file name being the
//! claim. Each script drives a [`SimCluster`] with commands a learner can read and
//! records what happened; `cargo test` fails if the run differs from the recorded
//! output. After changing behaviour on purpose, regenerate and review the diff:
//!
//! ```sh
//! UPDATE_GOLDENFILES=1 cargo test -p kvstore --test golden
//! ```
//!
//! Commands (NODE is `etcd1`, `etcd2`, ...; keys with `/` are quoted):
//!
//! ```text
//! cluster [members=3] [seed=1] [snapshot=N]
//!                                 start a fresh cluster (no leader yet); snapshot
//!                                 and compact the log every N entries
//! run N                           N x (tick every member, deliver every message)
//! tick [N]                        tick N times, messages stay queued
//! deliver                         deliver every queued message
//! flush                           run every member's Ready loop (send what is due)
//! deliver-one FROM TO             deliver the first message queued from FROM to TO
//! drop FROM TO                    lose the first message queued from FROM to TO
//! elect                           run until all running members follow one leader
//! trace on|off                    print raft messages as they are sent and delivered
//! put NODE KEY VALUE              etcdctl put, sent to NODE
//! get NODE KEY [serializable]     etcdctl get (linearizable unless serializable)
//! get NODE KEY rev=N              etcdctl get --rev=N
//! del NODE KEY                    etcdctl del
//! cas NODE KEY [expect=V] value=W txn: if KEY==V (absent if no expect) then put KEY=W
//! compact NODE REV                etcdctl compaction REV
//! watch NODE KEY [prefix] [rev=N] etcdctl watch
//! wait REQ... [max=N]             run until the requests complete (at most N ticks)
//! crash NODE / restart NODE       kill a member / start it again from its disk
//! partition NODE...               cut NODE... off from the others
//! heal                            restore every link
//! status                          a table of every member
//! log NODE                        the member's persisted raft log
//! check                           safety invariants + linearizability of the history
//! ```
//!
//! After every command the runner checks Raft's safety invariants and fails the test
//! on a violation, so every transcript is also an invariant test.

use std::error::Error;
use std::fmt::Write as _;

use goldenscript::{Argument, Command, Context};
use kvstore::linearizability;
use kvstore::sim::{history, SimCluster, SimConfig};
use kvstore::{Request, Storage, WatchCreate};

#[derive(Default)]
struct Runner {
    sim: Option<SimCluster>,
}

type Res<T> = Result<T, Box<dyn Error>>;

impl Runner {
    fn sim(&mut self) -> Res<&mut SimCluster> {
        self.sim
            .as_mut()
            .ok_or_else(|| "no cluster: run `cluster` first".into())
    }

    fn node(&mut self, name: Option<String>) -> Res<u64> {
        let name = name.ok_or("member name required")?;
        self.sim()?
            .id_of(&name)
            .ok_or_else(|| format!("unknown member {name}").into())
    }
}

impl goldenscript::Runner for Runner {
    type Command = Command;

    fn run(&mut self, command: &Command, _: &Context) -> Res<String> {
        let mut out = String::new();
        let mut args = Args::new(command);
        match command.name.as_str() {
            "cluster" => {
                let members = args.key("members")?.unwrap_or(3);
                let seed = args.key("seed")?.unwrap_or(1);
                let snapshot_count = args.key("snapshot")?.unwrap_or(0);
                args.done()?;
                let mut config = SimConfig::new(members, seed);
                config.snapshot_count = snapshot_count;
                self.sim = Some(SimCluster::new(config));
            }
            "run" => {
                let n: u64 = args.pos().ok_or("ticks required")?.parse()?;
                args.done()?;
                self.sim()?.run(n);
            }
            "tick" => {
                let n: u64 = args.pos().map(|a| a.parse()).transpose()?.unwrap_or(1);
                args.done()?;
                let sim = self.sim()?;
                for _ in 0..n {
                    sim.tick();
                }
            }
            "deliver" => {
                args.done()?;
                self.sim()?.deliver_all();
            }
            "flush" => {
                args.done()?;
                self.sim()?.flush();
            }
            "deliver-one" | "drop" => {
                let from = self.node(args.pos())?;
                let to = self.node(args.pos())?;
                args.done()?;
                let sim = self.sim()?;
                let (from_name, to_name) = (sim.name(from), sim.name(to));
                let done = if command.name == "drop" {
                    sim.drop_message(from, to)
                } else {
                    sim.deliver(from, to)
                };
                if !done {
                    writeln!(out, "(no message queued from {from_name} to {to_name})")?;
                } else if command.name == "drop" {
                    writeln!(out, "(lost one message from {from_name} to {to_name})")?;
                }
            }
            "elect" => {
                args.done()?;
                let sim = self.sim()?;
                let start = sim.ticks();
                if !sim.run_until(100, |s| s.stable_leader().is_some()) {
                    return Err("no settled leader after 100 ticks".into());
                }
                let (ticks, leader) = (sim.ticks() - start, sim.leader().unwrap_or(0));
                writeln!(out, "leader {} after {ticks} ticks", sim.name(leader))?;
            }
            "trace" => {
                let on = args.pos().ok_or("on|off")? == "on";
                args.done()?;
                self.sim()?.set_trace_messages(on);
            }
            "put" => {
                let node = self.node(args.pos())?;
                let key = args.pos().ok_or("KEY required")?;
                let value = args.pos().ok_or("VALUE required")?;
                args.done()?;
                self.request(&mut out, node, Request::put(key, value))?;
            }
            "get" => {
                let node = self.node(args.pos())?;
                let key = args.pos().ok_or("KEY required")?;
                let serializable = args.flag("serializable");
                let rev: Option<i64> = args.key("rev")?;
                args.done()?;
                let mut request = if serializable {
                    Request::get_serializable(key)
                } else {
                    Request::get(key)
                };
                if let (Some(rev), Request::Range(r)) = (rev, &mut request) {
                    r.revision = rev;
                }
                self.request(&mut out, node, request)?;
            }
            "del" => {
                let node = self.node(args.pos())?;
                let key = args.pos().ok_or("KEY required")?;
                args.done()?;
                self.request(&mut out, node, Request::delete(key))?;
            }
            "cas" => {
                let node = self.node(args.pos())?;
                let key = args.pos().ok_or("KEY required")?;
                let expect: Option<String> = args.key("expect")?;
                let value: String = args.key("value")?.ok_or("value= required")?;
                args.done()?;
                let request = Request::cas(key, expect.map(String::into_bytes), value);
                self.request(&mut out, node, request)?;
            }
            "compact" => {
                let node = self.node(args.pos())?;
                let rev: i64 = args.pos().ok_or("REV required")?.parse()?;
                args.done()?;
                self.request(&mut out, node, Request::compact(rev))?;
            }
            "watch" => {
                let node = self.node(args.pos())?;
                let key = args.pos().ok_or("KEY required")?;
                let prefix = args.flag("prefix");
                let rev: Option<i64> = args.key("rev")?;
                args.done()?;
                let create = WatchCreate {
                    range_end: if prefix {
                        kvstore::request::prefix_end(key.as_bytes())
                    } else {
                        vec![]
                    },
                    key: key.into_bytes(),
                    start_revision: rev.unwrap_or(0),
                    prev_kv: false,
                };
                match self.sim()?.watch(node, create) {
                    Ok(id) => writeln!(out, "watch {id} created")?,
                    Err(e) => writeln!(out, "watch refused: {e}")?,
                }
            }
            "wait" => {
                let max: u64 = args.key("max")?.unwrap_or(100);
                let ids: Vec<u64> = std::iter::from_fn(|| args.pos())
                    .map(|a| a.parse())
                    .collect::<Result<_, _>>()?;
                args.done()?;
                let sim = self.sim()?;
                let start = sim.ticks();
                let done = sim.run_until(max, |s| {
                    ids.iter().all(|&id| {
                        s.record(id)
                            .is_some_and(|r| r.outcome != history::Outcome::Pending)
                    })
                });
                let waited = sim.ticks() - start;
                let ticks = if waited == 1 { "tick" } else { "ticks" };
                if done {
                    writeln!(out, "(waited {waited} {ticks})")?;
                } else {
                    writeln!(out, "(still pending after {waited} {ticks})")?;
                }
            }
            "crash" | "restart" => {
                let node = self.node(args.pos())?;
                args.done()?;
                let sim = self.sim()?;
                if command.name == "crash" {
                    sim.crash(node);
                } else {
                    sim.restart(node);
                }
            }
            "partition" => {
                let mut group = Vec::new();
                while let Some(a) = args.pos() {
                    group.push(self.node(Some(a))?);
                }
                args.done()?;
                self.sim()?.partition(&group);
            }
            "heal" => {
                args.done()?;
                self.sim()?.heal();
            }
            "status" => {
                args.done()?;
                let table = self.sim()?.status_table();
                out.push_str(&table);
            }
            "log" => {
                let node = self.node(args.pos())?;
                args.done()?;
                let disk = self.sim()?.disks().remove(&node).ok_or("no such member")?;
                let hs = disk.hard_state();
                writeln!(
                    out,
                    "term {} vote {} commit {}",
                    hs.term, hs.vote, hs.commit
                )?;
                for e in disk.log_entries() {
                    let what = match kvstore::request::decode_entry(&e.data) {
                        Some((id, _)) => format!("req {id}"),
                        None if e.data.is_empty() => "(leader's empty entry)".to_string(),
                        None => "(not a request)".to_string(),
                    };
                    writeln!(out, "  {}@{} {what}", e.index, e.term)?;
                }
            }
            "check" => {
                args.done()?;
                let sim = self.sim()?;
                sim.check_invariants()?;
                let ops = history::to_operations(sim.records());
                linearizability::check(&ops)?;
                writeln!(
                    out,
                    "ok: invariants hold, {} operations linearizable",
                    ops.len()
                )?;
            }
            name => return Err(format!("unknown command {name}").into()),
        }
        // What happened first, then what the command itself reports.
        let mut transcript = String::new();
        if let Some(sim) = self.sim.as_mut() {
            for line in sim.take_transcript() {
                writeln!(transcript, "{line}")?;
            }
        }
        Ok(transcript + &out)
    }

    fn end_command(&mut self, _: &Command, _: &Context) -> Res<String> {
        if let Some(sim) = &self.sim {
            sim.check_invariants()?;
        }
        Ok(String::new())
    }
}

impl Runner {
    fn request(&mut self, _out: &mut String, node: u64, request: Request) -> Res<()> {
        self.sim()?.request(node, request);
        Ok(())
    }
}

/// The arguments of one command: positionals in order, `key=value` pairs by name.
struct Args {
    pos: std::collections::VecDeque<String>,
    keys: Vec<(String, String)>,
}

impl Args {
    fn new(command: &Command) -> Self {
        let mut args = Args {
            pos: Default::default(),
            keys: Vec::new(),
        };
        for arg in &command.args {
            match arg {
                Argument::Positional(v) => args.pos.push_back(v.clone()),
                Argument::KeyValue(k, v) => args.keys.push((k.clone(), v.clone())),
                _ => {}
            }
        }
        args
    }

    fn pos(&mut self) -> Option<String> {
        self.pos.pop_front()
    }

    fn key<T: std::str::FromStr>(&mut self, name: &str) -> Res<Option<T>>
    where
        T::Err: Error + 'static,
    {
        let Some(i) = self.keys.iter().position(|(k, _)| k == name) else {
            return Ok(None);
        };
        Ok(Some(self.keys.remove(i).1.parse()?))
    }

    fn flag(&mut self, name: &str) -> bool {
        let found = self.pos.iter().position(|p| p == name);
        found.map(|i| self.pos.remove(i)).is_some()
    }

    fn done(&self) -> Res<()> {
        match (self.pos.front(), self.keys.first()) {
            (Some(p), _) => Err(format!("unexpected argument {p}").into()),
            (_, Some((k, _))) => Err(format!("unexpected argument {k}=").into()),
            _ => Ok(()),
        }
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() -> std::io::Result<()> {
            goldenscript::run(
                &mut Runner::default(),
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/", stringify!($name)),
            )
        }
    )*};
}

golden!(
    leader_election,
    minority_loss_still_commits,
    majority_loss_stalls_then_times_out,
    recovery_after_heal,
    linearizable_read_refused_in_minority,
    serializable_read_served_stale,
    leader_change_with_inflight_writes,
    isolated_member_rejoins,
    watch_and_compaction,
    lagging_member_catches_up_from_snapshot,
    watch_on_a_lagging_member,
);
