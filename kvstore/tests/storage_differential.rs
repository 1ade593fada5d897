//! The sled storage against the in-memory one: the same operations must give the same
//! answers, and a member on either must survive crashes the same way.

use std::collections::BTreeMap;

use kvstore::member::MemberConfig;
use kvstore::request::encode_entry;
use kvstore::storage::sled::SledStorage;
use kvstore::{ClusterInfo, MemDisk, Member, MvccStore, Request, Storage};
use proptest::prelude::*;
use raft::eraftpb::{Entry, HardState};
use raft::{GetEntriesContext, Storage as _};
use seams::SystemClock;

#[derive(Debug, Clone)]
enum Op {
    /// Append `count` entries of `term` starting at an index chosen from the log's
    /// current extent (possibly overwriting a suffix, as after a leader change).
    Append {
        at: u8,
        count: u8,
        term: u8,
    },
    HardState {
        term: u8,
        vote: u8,
        commit: u8,
    },
    /// Apply writes to a store and save its mutations with an applied index.
    Apply {
        writes: Vec<(u8, u8)>,
        compact: bool,
    },
    Sync,
    /// Compact the log before an index in it.
    Compact {
        at: u8,
        compact: u8,
    },
    /// Install a snapshot from a leader, `ahead` entries past the end of the log.
    InstallSnapshot {
        ahead: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), 1u8..5, 1u8..6).prop_map(|(at, count, term)| Op::Append { at, count, term }),
        2 => (1u8..6, 0u8..4, any::<u8>()).prop_map(|(term, vote, commit)| Op::HardState { term, vote, commit }),
        3 => (prop::collection::vec((0u8..4, any::<u8>()), 0..4), any::<bool>())
            .prop_map(|(writes, compact)| Op::Apply { writes, compact }),
        1 => Just(Op::Sync),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(at, compact)| Op::Compact { at, compact }),
        1 => (1u8..5).prop_map(|ahead| Op::InstallSnapshot { ahead }),
    ]
}

/// Everything a reader can observe of a storage.
fn observe(s: &impl Storage) -> String {
    let first = s.first_index().unwrap();
    let last = s.last_index().unwrap();
    let mut out = format!(
        "first {first} last {last}\n{:?}\n",
        s.initial_state().unwrap()
    );
    for i in 0..=last + 1 {
        out.push_str(&format!("term({i}) = {:?}\n", s.term(i).ok()));
    }
    for low in first..=last {
        for high in low..=last + 1 {
            for max in [None, Some(0), Some(40)] {
                let got = s.entries(low, high, max, GetEntriesContext::empty(false));
                out.push_str(&format!("entries({low},{high},{max:?}) = {got:?}\n"));
            }
        }
    }
    let snapshot = s.snapshot(0, 0).ok().map(|snap| {
        let m = snap.get_metadata();
        (m.index, m.term, snap.data.len())
    });
    out.push_str(&format!("snapshot {snapshot:?}\n"));
    let (store, applied) = s.load_store();
    out.push_str(&format!(
        "applied {applied} revision {} compacted {} digest {:x} history {:?}\n",
        store.current_revision(),
        store.compact_revision(),
        store.digest(),
        store.events_since(store.compact_revision())
    ));
    out
}

/// A raft snapshot at `index` carrying `store`.
fn snapshot_at(index: u64, term: u64, store: &MvccStore) -> raft::eraftpb::Snapshot {
    let mut snap = raft::eraftpb::Snapshot::default();
    snap.set_data(kvstore::snapshot::encode(store).into());
    let meta = snap.mut_metadata();
    meta.index = index;
    meta.term = term;
    meta.set_conf_state(raft::eraftpb::ConfState::from((vec![1, 2, 3], vec![])));
    snap
}

fn run(ops: &[Op], dir: &std::path::Path) -> (String, String) {
    let cluster = ClusterInfo::local(3);
    let mem = MemDisk::new(&cluster);
    let sled = SledStorage::open(dir, &cluster, SystemClock::shared()).unwrap();
    let mut store = MvccStore::new();
    let mut applied = 0;
    for op in ops {
        match op {
            Op::Append { at, count, term } => {
                // Raft only overwrites entries it still has: start within [first, last + 1].
                let (first, last) = (mem.first_index().unwrap(), mem.last_index().unwrap());
                let first_new = first + u64::from(*at) % (last + 2 - first);
                let entries: Vec<Entry> = (0..u64::from(*count))
                    .map(|i| Entry {
                        index: first_new + i,
                        term: u64::from(*term),
                        data: format!("entry {} of term {term}", first_new + i)
                            .into_bytes()
                            .into(),
                        ..Default::default()
                    })
                    .collect();
                mem.append(&entries);
                sled.append(&entries);
            }
            Op::HardState { term, vote, commit } => {
                let hs = HardState {
                    term: u64::from(*term),
                    vote: u64::from(*vote),
                    commit: u64::from(*commit),
                    ..Default::default()
                };
                mem.set_hard_state(&hs);
                sled.set_hard_state(&hs);
            }
            Op::Apply { writes, compact } => {
                for (key, value) in writes {
                    let r = Request::put(format!("k{key}"), format!("v{value}"));
                    store.apply(&r).0.unwrap();
                }
                if *compact {
                    let _ = store.apply(&Request::compact(store.current_revision()));
                }
                applied += 1;
                let mutations = store.take_mutations();
                mem.save_applied(applied, mutations.clone());
                sled.save_applied(applied, mutations);
            }
            Op::Sync => {
                mem.sync();
                sled.sync();
            }
            Op::Compact { at, compact } => {
                let (first, last) = (mem.first_index().unwrap(), mem.last_index().unwrap());
                if last < first {
                    continue;
                }
                let index = first + u64::from(*at) % (last - first + 1);
                let compact_to = first + u64::from(*compact) % (index - first + 1);
                mem.compact(compact_to);
                sled.compact(compact_to);
            }
            Op::InstallSnapshot { ahead } => {
                let index = mem.last_index().unwrap() + u64::from(*ahead);
                let term = mem.hard_state().term.max(1);
                let snap = snapshot_at(index, term, &store);
                mem.install_snapshot(&snap, &store);
                sled.install_snapshot(&snap, &store);
                applied = index;
            }
        }
    }
    let seen_mem = observe(&mem);
    let seen_sled = observe(&sled);
    drop(sled);
    // Some of these operations leave a state no member leaves: a store ahead of its
    // log, a log that starts after the entry the store needs next, a commit beyond the
    // log. Entries were lost there, and opening the directory is refused.
    let (first, last) = (mem.first_index().unwrap(), mem.last_index().unwrap());
    let commit = mem.hard_state().commit;
    let reopened = SledStorage::open(dir, &cluster, SystemClock::shared());
    if applied > last || applied + 1 < first || commit > last {
        let err = reopened.expect_err("a data directory that lost entries is refused");
        assert!(err.to_string().contains("refusing to start"), "{err}");
        return (seen_mem, seen_sled);
    }
    // Otherwise reopening shows the same thing again, except that a commit index
    // behind the store's applied index (a commit alone is not synced) is raised to it.
    if applied > commit {
        mem.set_commit(applied);
    }
    assert_eq!(
        observe(&reopened.unwrap()),
        observe(&mem),
        "the data directory changed on reopen"
    );
    (seen_mem, seen_sled)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sled_and_memory_storage_agree(ops in prop::collection::vec(op(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let (mem, sled) = run(&ops, dir.path());
        prop_assert_eq!(mem, sled);
    }
}

/// A single-member cluster whose election timeout is short.
fn config() -> MemberConfig {
    MemberConfig {
        min_election_tick: 10,
        max_election_tick: 11,
        ..MemberConfig::etcd_defaults(1)
    }
}

/// Writes committed log entries (and no applied store) — the state a member leaves when
/// it crashes after persisting entries and before applying them.
fn persisted_but_not_applied(s: &impl Storage, puts: &[(&str, &str)]) {
    let entries: Vec<Entry> = puts
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Entry {
            index: i as u64 + 1,
            term: 1,
            data: encode_entry(100 + i as u64, &Request::put(*k, *v)).into(),
            ..Default::default()
        })
        .collect();
    s.append(&entries);
    let hs = HardState {
        term: 1,
        vote: 1,
        commit: puts.len() as u64,
        ..Default::default()
    };
    s.set_hard_state(&hs);
    s.sync();
}

/// After a crash between persist and apply, a restarted member applies each entry
/// exactly once; after a crash after apply, it applies nothing again.
fn crash_between_persist_and_apply<S: Storage>(open: impl Fn() -> S) {
    let cluster = ClusterInfo::local(1);
    let puts = [("a", "1"), ("b", "2"), ("a", "3")];
    persisted_but_not_applied(&open(), &puts);

    let mut member = Member::start(config(), cluster.clone(), open());
    let ready = member.ready();
    assert_eq!(ready.applied.len(), 3, "each committed entry applied once");
    assert_eq!(member.store().current_revision(), 4);
    let a = member
        .store()
        .range(&Request::get("a").into_range())
        .unwrap();
    assert_eq!(
        (a.kvs[0].value.as_slice(), a.kvs[0].version),
        (b"3".as_slice(), 2)
    );
    drop(member.crash());

    let mut member = Member::start(config(), cluster, open());
    assert!(member.ready().applied.is_empty(), "nothing applied twice");
    assert_eq!(member.store().current_revision(), 4);
}

trait IntoRange {
    fn into_range(self) -> kvstore::proto::etcdserverpb::RangeRequest;
}

impl IntoRange for Request {
    fn into_range(self) -> kvstore::proto::etcdserverpb::RangeRequest {
        match self {
            Request::Range(r) => r,
            other => panic!("not a range: {other:?}"),
        }
    }
}

#[test]
fn crash_between_persist_and_apply_in_memory() {
    let disk = MemDisk::new(&ClusterInfo::local(1));
    crash_between_persist_and_apply(|| disk.clone());
}

#[test]
fn crash_between_persist_and_apply_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterInfo::local(1);
    crash_between_persist_and_apply(|| {
        SledStorage::open(dir.path(), &cluster, SystemClock::shared()).unwrap()
    });
}

#[test]
fn a_member_on_sled_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = ClusterInfo::local(1);
    let open = || SledStorage::open(dir.path(), &cluster, SystemClock::shared()).unwrap();
    let mut member = Member::start(config(), cluster.clone(), open());
    let mut completed = BTreeMap::new();
    let mut run = |member: &mut Member<SledStorage>, ticks: usize| {
        for _ in 0..ticks {
            member.tick();
            for c in member.ready().completions {
                completed.insert(c.id, c.result.is_ok());
            }
        }
    };
    run(&mut member, 15);
    for (i, key) in [
        "/registry/namespaces/default",
        "/registry/pods/default/alpine",
    ]
    .iter()
    .enumerate()
    {
        member
            .request(i as u64 + 1, Request::put(*key, "{}"))
            .unwrap();
    }
    run(&mut member, 2);
    let revision = member.store().current_revision();
    let term = member.status().term;
    drop(member.crash());

    let mut member = Member::start(config(), cluster.clone(), open());
    assert_eq!(member.store().current_revision(), revision);
    assert_eq!(member.store().key_count(), 2);
    run(&mut member, 15);
    assert!(member.status().term > term, "a new term after the restart");
    member
        .request(3, Request::put("/registry/pods/default/web", "{}"))
        .unwrap();
    run(&mut member, 2);
    assert_eq!(member.store().current_revision(), revision + 1);
    assert_eq!(completed.get(&1), Some(&true));
    assert_eq!(completed.get(&3), Some(&true));
}

#[test]
fn opening_a_bad_data_dir_is_an_error_not_a_panic() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err =
        SledStorage::open(file.path(), &ClusterInfo::local(1), SystemClock::shared()).unwrap_err();
    assert!(err.to_string().starts_with("kvstore: storage:"), "{err}");
}
