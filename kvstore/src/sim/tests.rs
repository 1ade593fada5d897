use super::*;

fn settled(seed: u64) -> SimCluster {
    let mut sim = SimCluster::new(SimConfig::new(3, seed));
    assert!(sim.run_until(100, |s| s.stable_leader().is_some()));
    sim
}

#[test]
fn crashing_twice_or_restarting_a_running_member_changes_nothing() {
    let mut sim = settled(1);
    sim.crash(2);
    sim.crash(2);
    assert_eq!(sim.ids(), vec![1, 2, 3]);
    assert!(!sim.is_up(2));
    sim.restart(2);
    sim.restart(2);
    assert!(sim.is_up(2));
    sim.run(5);
    sim.check_invariants().unwrap();
}

#[test]
fn majority_follows_partitions_and_crashes() {
    let mut sim = settled(1);
    assert!(sim.ids().iter().all(|&id| sim.in_majority(id)));
    sim.partition(&[1]);
    assert!(!sim.in_majority(1));
    assert!(sim.in_majority(2) && sim.in_majority(3));
    sim.crash(3);
    assert!(!sim.in_majority(2), "2 alone with 1 cut off and 3 down");
    sim.heal();
    assert!(sim.in_majority(1) && sim.in_majority(2));
}

#[test]
fn messages_on_a_cut_link_are_lost() {
    let mut sim = settled(1);
    let leader = sim.leader().unwrap();
    let follower = sim.ids().into_iter().find(|&id| id != leader).unwrap();
    sim.tick(); // heartbeats queued
    assert!(sim.in_flight() > 0);
    sim.partition(&[follower]);
    sim.deliver_all();
    assert_eq!(sim.in_flight(), 0);
    assert!(!sim.drop_message(leader, follower));
}

#[test]
fn a_request_to_a_down_member_fails_at_once() {
    let mut sim = settled(1);
    sim.crash(1);
    let id = sim.request(1, Request::put("k", "v"));
    assert_eq!(sim.record(id).unwrap().error(), Some(&Error::Stopped));
}

#[test]
fn a_crash_loses_the_requests_in_flight() {
    let mut sim = settled(1);
    let id = sim.request(2, Request::put("k", "v"));
    sim.crash(2);
    assert!(matches!(
        sim.record(id).unwrap().outcome,
        Outcome::Lost { .. }
    ));
}
