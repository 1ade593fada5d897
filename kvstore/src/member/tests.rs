//! The member core on its own, without the simulator: the Ready contract, deadlines,
//! and what survives a crash.

use super::*;
use crate::membership::ClusterInfo;
use crate::storage::MemDisk;
use raft::eraftpb::MessageType;

/// A member of an `n`-member cluster with a pinned election timeout of 10 ticks.
fn member(id: u64, n: u64) -> Member {
    let cluster = ClusterInfo::local(n);
    let config = MemberConfig {
        min_election_tick: 10,
        max_election_tick: 11,
        request_timeout_ticks: 30,
        ..MemberConfig::etcd_defaults(id)
    };
    let disk = MemDisk::new(&cluster);
    Member::start(config, cluster, disk)
}

/// Ticks a lone member until it has elected itself; returns what completed meanwhile.
fn elect_alone(m: &mut Member) -> Vec<Completion> {
    let mut done = Vec::new();
    for _ in 0..20 {
        m.tick();
        done.extend(m.ready().completions);
        if m.status().role == StateRole::Leader {
            return done;
        }
    }
    panic!("a single member must elect itself: {:?}", m.status());
}

#[test]
fn a_lone_member_elects_itself_and_commits() {
    let mut m = member(1, 1);
    m.request(7, Request::put("k", "v")).unwrap();
    assert!(
        m.ready().completions.is_empty(),
        "no leader yet: the put waits"
    );
    // The put is proposed as soon as a leader exists.
    let mut done = elect_alone(&mut m);
    for _ in 0..3 {
        done.extend(m.ready().completions);
        m.tick();
    }
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, 7);
    let header = *done[0].result.as_ref().unwrap().header().unwrap();
    assert_eq!((header.revision, header.member_id), (2, 1));
}

#[test]
fn bad_requests_are_refused_at_once() {
    let mut m = member(1, 1);
    assert_eq!(m.request(1, Request::put("", "v")), Err(Error::EmptyKey));
    m.request(2, Request::put("k", "v")).unwrap();
    assert_eq!(
        m.request(2, Request::put("k", "w")),
        Err(Error::DuplicateRequestId(2))
    );
    assert!(m.ready().completions.is_empty());
}

#[test]
fn without_a_leader_a_request_fails_with_no_leader_at_its_deadline() {
    // Member 1 of 3 never hears from the others: it can never learn of a leader.
    let mut m = member(1, 3);
    m.request(1, Request::put("k", "v")).unwrap();
    m.request(2, Request::get("k")).unwrap();
    for tick in 1..=30 {
        m.tick();
        let done = m.ready().completions;
        if tick < 30 {
            assert!(done.is_empty(), "completed early at tick {tick}: {done:?}");
        } else {
            let errors: Vec<_> = done.iter().map(|c| c.result.clone().unwrap_err()).collect();
            assert_eq!(errors, [Error::NoLeader, Error::NoLeader]);
        }
    }
}

#[test]
fn serializable_reads_need_no_leader() {
    let mut m = member(1, 3);
    m.request(1, Request::get_serializable("k")).unwrap();
    let done = m.ready().completions;
    assert_eq!(done.len(), 1);
    assert!(matches!(&done[0].result, Ok(Response::Range(r)) if r.kvs.is_empty()));
}

#[test]
fn votes_wait_for_the_disk_and_a_leaders_appends_do_not() {
    // Member 1 campaigns; give it the votes by hand so it becomes leader of three.
    let mut m = member(1, 3);
    for _ in 0..10 {
        m.tick();
    }
    let ready = m.ready();
    let asks: Vec<&Message> = ready
        .messages
        .iter()
        .filter(|msg| msg.get_msg_type() == MessageType::MsgRequestPreVote)
        .collect();
    assert_eq!(asks.len(), 2);
    let grant = |t, term| {
        let mut r = Message::default();
        r.set_msg_type(t);
        r.from = 2;
        r.to = 1;
        r.term = term;
        r
    };
    m.step(grant(MessageType::MsgRequestPreVoteResponse, 1));
    // Pre-vote won: it votes for itself, and that vote is on disk before any
    // RequestVote leaves (else a crash could let it vote twice in term 1).
    let disk = m.storage().clone();
    let mut early = Vec::new();
    let ready = m.ready_sending(|msgs| early.extend(msgs));
    assert!(
        early.is_empty(),
        "a candidate sends nothing before its write"
    );
    assert!(ready
        .messages
        .iter()
        .any(|msg| msg.get_msg_type() == MessageType::MsgRequestVote));
    let hs = ready.persisted_hard_state.expect("term and vote persisted");
    assert_eq!((hs.term, hs.vote), (1, 1));
    assert_eq!(m.storage().hard_state().vote, 1);
    m.step(grant(MessageType::MsgRequestVoteResponse, 1));
    // Elected: the leader appends an empty entry of its term and sends it out. A
    // leader's appends may leave *before* its own write (they are handed out early,
    // while the entry is not on its disk yet); it counts itself only once written.
    let mut early = Vec::new();
    let mut on_disk_when_sent = Vec::new();
    let ready = m.ready_sending(|msgs| {
        on_disk_when_sent = disk.log_entries();
        early.extend(msgs);
    });
    assert_eq!(m.status().role, StateRole::Leader);
    let append = early
        .iter()
        .find(|msg| msg.get_msg_type() == MessageType::MsgAppend && !msg.entries.is_empty())
        .expect("the new leader replicates its first entry at once");
    for e in &append.entries {
        assert!(!on_disk_when_sent.contains(e), "sent while being written");
    }
    // By the end of the Ready it is on disk all the same.
    let on_disk = m.storage().log_entries();
    for e in &append.entries {
        assert!(
            on_disk.contains(e),
            "entry {} sent before it was persisted",
            e.index
        );
        assert!(ready.persisted_entries.contains(e));
    }
}

#[test]
fn a_crash_loses_what_was_not_persisted_and_keeps_what_was() {
    let mut m = member(1, 1);
    elect_alone(&mut m);
    m.request(1, Request::put("a", "1")).unwrap();
    m.ready();
    m.tick();
    m.ready();
    let applied = m.status().applied;
    // Proposed, but the Ready loop never ran: only in raft-rs's memory.
    m.request(2, Request::put("b", "2")).unwrap();
    let disk = m.crash();
    assert_eq!(disk.applied_index(), applied);
    assert_eq!(disk.log_entries().len() as u64, applied);
    assert_eq!(disk.load_store().0.current_revision(), 2);

    // A restart replays nothing twice: the store and its applied index go together.
    let cluster = ClusterInfo::local(1);
    let config = MemberConfig {
        min_election_tick: 10,
        max_election_tick: 11,
        ..MemberConfig::etcd_defaults(1)
    };
    let mut m = Member::start(config, cluster, disk);
    let ready = m.ready();
    assert!(ready.applied.is_empty(), "re-applied {:?}", ready.applied);
    assert_eq!(m.store().current_revision(), 2);
    assert_eq!(m.status().applied, applied);
}

#[test]
fn a_watch_with_prev_kv_gets_the_version_each_event_replaced() {
    let mut m = member(1, 1);
    elect_alone(&mut m);
    m.request(1, Request::put("a", "1")).unwrap();
    m.request(2, Request::put("a", "2")).unwrap();
    m.tick();
    m.ready();
    let watch = |prev_kv| WatchCreate {
        key: b"a".to_vec(),
        start_revision: 3, // replays the put of "2", then live
        prev_kv,
        ..Default::default()
    };
    m.watch(7, watch(true)).unwrap();
    m.watch(8, watch(false)).unwrap();
    m.request(3, Request::put("a", "3")).unwrap();
    m.request(4, Request::delete("a")).unwrap();
    m.tick();
    let mut seen: Vec<(i64, Option<Vec<u8>>)> = m
        .ready()
        .watch_events
        .iter()
        .flat_map(|w| {
            let id = w.watch_id;
            w.events
                .iter()
                .map(move |e| (id, e.prev_kv.clone().map(|p| p.value)))
        })
        .collect();
    seen.sort_by_key(|&(id, _)| id); // stable: each watch's events stay in order
    let prev = |v: &str| Some(v.as_bytes().to_vec());
    assert_eq!(
        seen,
        [
            (7, prev("1")), // replayed: the put of "2" replaced "1"
            (7, prev("2")),
            (7, prev("3")), // the delete's previous version is what was deleted
            (8, None),
            (8, None),
            (8, None),
        ]
    );
}

#[test]
fn a_watch_replays_history_then_follows_live_writes() {
    let mut m = member(1, 1);
    elect_alone(&mut m);
    m.request(1, Request::put("a", "1")).unwrap();
    m.tick();
    m.ready();
    m.watch(
        5,
        WatchCreate {
            key: b"a".to_vec(),
            start_revision: 1,
            ..Default::default()
        },
    )
    .unwrap();
    m.request(2, Request::put("a", "2")).unwrap();
    m.tick();
    let events: Vec<i64> = m
        .ready()
        .watch_events
        .iter()
        .flat_map(|w| w.events.iter().map(|e| e.kv.as_ref().unwrap().mod_revision))
        .collect();
    assert_eq!(events, [2, 3]);

    m.request(3, Request::compact(3)).unwrap();
    m.tick();
    m.ready();
    let refused = m.watch(
        6,
        WatchCreate {
            key: b"a".to_vec(),
            start_revision: 2,
            ..Default::default()
        },
    );
    assert_eq!(
        refused,
        Err(Error::Compacted {
            compact_revision: 3
        })
    );
    assert!(m.cancel_watch(5));
    assert!(!m.cancel_watch(5));
}

#[test]
fn the_leader_revokes_an_expired_lease_and_its_keys_vanish() {
    let mut m = member(1, 1);
    elect_alone(&mut m);
    let grant = crate::proto::etcdserverpb::LeaseGrantRequest { id: 0, ttl: 1 };
    m.request(1, Request::LeaseGrant(grant)).unwrap();
    let mut done = Vec::new();
    for _ in 0..3 {
        m.tick();
        done.extend(m.ready().completions);
    }
    let Some(Ok(Response::LeaseGrant(granted))) = done.first().map(|c| c.result.clone()) else {
        panic!("no grant: {done:?}");
    };
    assert!(granted.id > 0);
    assert_eq!(granted.ttl, m.min_lease_ttl(), "raised to the minimum");
    let put = crate::proto::etcdserverpb::PutRequest {
        key: b"/registry/events/default/e1".to_vec(),
        value: b"{}".to_vec(),
        lease: granted.id,
        ..Default::default()
    };
    m.request(2, Request::Put(put)).unwrap();
    m.tick();
    m.ready();
    assert_eq!(m.store().key_count(), 1);
    // Run past the TTL (10 ticks a second here): the leader revokes; the key is gone.
    let ticks = granted.ttl as u64 * 10 + 3;
    for _ in 0..ticks {
        m.tick();
        m.ready();
    }
    assert_eq!(m.store().key_count(), 0);
    assert!(!m.store().lease_exists(granted.id));
}

/// Applying is total: a committed entry that cannot be read (here: bytes no encoder of
/// ours wrote) is skipped, its proposer's client gets the reason, and the member goes on
/// applying. Before, decoding such an entry panicked the member, on every restart.
#[test]
fn an_entry_that_cannot_be_read_is_skipped_and_its_client_told() {
    let mut m = member(1, 1);
    elect_alone(&mut m);
    m.ready();
    let revision = m.store().current_revision();
    // A proposal waiting on ID 9, whose entry holds ID 9 and then a broken field.
    m.pending.insert(
        9,
        Pending {
            request: Request::put("k", "v"),
            deadline: m.now + 100,
            stage: Stage::Proposed {
                term: m.status().term,
            },
        },
    );
    m.raft
        .propose(vec![], vec![0x08, 9, 0x22, 0x7f, 0x01])
        .unwrap();
    m.raft.propose(vec![], vec![0xff; 5]).unwrap();
    let mut done = Vec::new();
    for _ in 0..3 {
        done.extend(m.ready().completions);
    }
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0].id, 9);
    assert!(
        matches!(done[0].result, Err(Error::Malformed(_))),
        "{done:?}"
    );
    assert_eq!(
        m.store().current_revision(),
        revision,
        "nothing was applied"
    );
    // And the member goes on.
    m.request(10, Request::put("k", "v")).unwrap();
    let mut done = Vec::new();
    for _ in 0..3 {
        done.extend(m.ready().completions);
    }
    assert_eq!(done[0].id, 10);
    assert!(done[0].result.is_ok(), "{done:?}");
}

/// A member whose log was lost (a wiped data directory) hears from the leader that it
/// holds entries it does not have. raft-rs panics on that index; the member instead
/// stops with the reason, for its server to end it.
#[test]
fn a_heartbeat_committing_entries_this_member_lacks_stops_it_with_the_reason() {
    let mut m = member(3, 3);
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = 1;
    heartbeat.to = 3;
    heartbeat.term = 4;
    heartbeat.commit = 34;
    m.step(heartbeat.clone());
    assert_eq!(
        m.failed(),
        Some(&Error::LogLost {
            commit: 34,
            last_index: 0
        })
    );
    // It does nothing more, whatever it is sent.
    m.step(heartbeat);
    assert!(m.ready().messages.is_empty());
}

/// A fast election that ends in a split vote (the other survivor campaigned in the same
/// term and voted for itself) is tried again within a few ticks, not after the election
/// timeout: under load, the survivors of a dead leader can campaign together.
#[test]
fn a_fast_election_split_by_the_other_survivor_is_tried_again_soon() {
    let cluster = ClusterInfo::local(3);
    let config = MemberConfig {
        min_election_tick: 50,
        max_election_tick: 51,
        request_timeout_ticks: 500,
        ..MemberConfig::etcd_defaults(2)
    };
    let mut m = Member::start(config, cluster.clone(), MemDisk::new(&cluster));
    let message = |t: MessageType, from: u64, term: u64, reject: bool| {
        let mut msg = Message::default();
        msg.set_msg_type(t);
        msg.from = from;
        msg.to = 2;
        msg.term = term;
        msg.reject = reject;
        msg
    };
    // Member 1 leads at term 1; then its connection closes.
    m.step(message(MessageType::MsgHeartbeat, 1, 1, false));
    m.ready();
    assert_eq!(m.status().leader, 1);
    m.peer_lost(1);
    let campaigns = |m: &mut Member| {
        m.ready()
            .messages
            .iter()
            .filter(|msg| msg.get_msg_type() == MessageType::MsgRequestPreVote)
            .count()
    };
    m.tick();
    assert!(campaigns(&mut m) > 0, "the fast election starts at once");
    // Member 3 grants the pre-vote, then refuses the vote: it voted for itself.
    m.step(message(MessageType::MsgRequestPreVoteResponse, 3, 2, false));
    m.ready();
    assert_eq!(m.status().role, StateRole::Candidate);
    m.step(message(MessageType::MsgRequestVoteResponse, 3, 2, true));
    m.ready();
    // Raft alone would wait its election timeout (50 ticks) as a candidate.
    let mut again = None;
    for tick in 1..=10 {
        m.tick();
        if campaigns(&mut m) > 0 {
            again = Some(tick);
            break;
        }
    }
    assert!(
        again.is_some(),
        "no new campaign within 10 ticks: {:?}",
        m.status()
    );
}

/// A member of three with raft-rs's randomised window `[10, 20)` and `seed`.
fn seeded_member(id: u64, seed: u64) -> Member {
    let cluster = ClusterInfo::local(3);
    let config = MemberConfig {
        election_seed: seed,
        ..MemberConfig::etcd_defaults(id)
    };
    Member::start(config, cluster.clone(), MemDisk::new(&cluster))
}

/// The draws a seed gives in the window `[10, 20)`.
fn draws(seed: u64, n: usize) -> Vec<usize> {
    let mut rng = seams::rand::SplitMix64::new(seed);
    (0..n).map(|_| 10 + rng.below(10) as usize).collect()
}

/// A follower campaigns on the very tick its timeout, drawn from its seed, runs out —
/// not on one raft-rs drew.
#[test]
fn a_follower_campaigns_when_its_seeded_timeout_runs_out() {
    for seed in 0..20 {
        let mut m = seeded_member(1, seed);
        let expected = draws(seed, 1)[0];
        let mut campaigned_at = None;
        for tick in 1..=20 {
            m.tick();
            let pre_votes = m
                .ready()
                .messages
                .iter()
                .any(|msg| msg.get_msg_type() == MessageType::MsgRequestPreVote);
            if pre_votes {
                campaigned_at = Some(tick);
                break;
            }
        }
        assert_eq!(campaigned_at, Some(expected), "seed {seed}");
    }
}

/// Every time raft-rs resets the election timer (here: a leader of a newer term is
/// heard from, so the member becomes its follower), the timeout is drawn again, from
/// the seed: the same seed gives the same timeouts, term after term.
#[test]
fn election_timeouts_are_drawn_again_from_the_seed_at_every_new_term() {
    let heartbeat = |term: u64| {
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgHeartbeat);
        msg.from = 2;
        msg.to = 1;
        msg.term = term;
        msg
    };
    let timeouts = |seed: u64| {
        let mut m = seeded_member(1, seed);
        let mut seen = vec![m.raft.raft.randomized_election_timeout()];
        for term in 1..=12 {
            m.step(heartbeat(term));
            m.ready();
            assert_eq!((m.status().term, m.status().leader), (term, 2));
            seen.push(m.raft.raft.randomized_election_timeout());
        }
        seen
    };
    assert_eq!(timeouts(7), draws(7, 13), "one draw at start, one per term");
    assert_eq!(timeouts(7), timeouts(7));
    assert_ne!(timeouts(7), timeouts(8));
}
