//! Faults a test can inject: partitions and crashes, and their repair.
//!
//! A *partition* cuts links; messages on a cut link are lost (as a broken TCP
//! connection loses them), in both directions. A *crash* throws away everything the
//! member held in memory and keeps only its [`crate::MemDisk`]; a *restart* builds a new member
//! from that disk, as a process restarted on the same data directory would be.

use std::collections::BTreeSet;

use super::{Node, Outcome, SimCluster};
use crate::storage::Storage;

impl SimCluster {
    /// Cuts every link between `group` and the other members, both ways. Messages
    /// already queued on those links are lost when their turn comes.
    pub fn partition(&mut self, group: &[u64]) {
        let others: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|id| !group.contains(id))
            .collect();
        for &a in group {
            for &b in &others {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
        let names: Vec<String> = group.iter().map(|&id| self.name(id)).collect();
        let rest: Vec<String> = others.iter().map(|&id| self.name(id)).collect();
        self.say(format!(
            "partition: [{}] | [{}]",
            names.join(" "),
            rest.join(" ")
        ));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.say("network healed".to_string());
    }

    /// Whether `id` is up and can reach a majority of the cluster (itself included)
    /// over links that are not cut.
    pub fn in_majority(&self, id: u64) -> bool {
        if !self.is_up(id) {
            return false;
        }
        let mut seen = BTreeSet::from([id]);
        let mut frontier = vec![id];
        while let Some(a) = frontier.pop() {
            for b in self.ids() {
                let linked = !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a));
                if self.is_up(b) && linked && seen.insert(b) {
                    frontier.push(b);
                }
            }
        }
        seen.len() >= self.cluster.quorum()
    }

    /// Kills a member: its memory is gone (requests in flight are lost to their
    /// clients, watchers vanish, unpersisted entries disappear); its disk stays.
    pub fn crash(&mut self, id: u64) {
        if !self.is_up(id) {
            return; // already down (or unknown)
        }
        let Some(Node::Up(member)) = self.nodes.remove(&id) else {
            unreachable!("checked above")
        };
        self.nodes.insert(id, Node::Down(member.crash()));
        for queue in self.links.iter_mut().filter(|((_, to), _)| *to == id) {
            queue.1.clear();
        }
        self.clock += 1;
        let mut lost = 0;
        for record in self.records.iter_mut() {
            if record.member == id && record.outcome == Outcome::Pending {
                record.outcome = Outcome::Lost { at: self.clock };
                lost += 1;
            }
        }
        let line = format!(
            "{} crashed ({} request(s) in flight lost)",
            self.name(id),
            lost
        );
        self.say(line);
    }

    /// Starts a crashed member again from its disk.
    pub fn restart(&mut self, id: u64) {
        if !matches!(self.nodes.get(&id), Some(Node::Down(_))) {
            return; // running already (or unknown)
        }
        let Some(Node::Down(disk)) = self.nodes.remove(&id) else {
            unreachable!("checked above")
        };
        let hs = disk.hard_state();
        let applied = disk.applied_index();
        let member = self.start_member(id, disk);
        self.nodes.insert(id, Node::Up(Box::new(member)));
        self.last_status.remove(&id); // a new incarnation: no role change to report
        let line = format!(
            "{} restarted from disk: term {}, commit {}, applied {}",
            self.name(id),
            hs.term,
            hs.commit,
            applied
        );
        self.say(line);
        self.ready(id);
    }
}
