//! Raft's safety properties, checked while a simulation runs.
//!
//! Raft promises (Ongaro's thesis, figure 3.2):
//! - **Election safety**: at most one leader per term.
//! - **Log matching**: if two logs have an entry with the same index and term, the logs
//!   are identical up to that index.
//! - **State machine safety**: if a member applied an entry at an index, no member ever
//!   applies a different entry at that index.
//!
//! etcd adds: every member that applied the same prefix holds the same key-value state,
//! and a member's revision never goes back (not even across a crash, because the store
//! and its applied index are persisted together).
//!
//! [`Invariants`] watches each member's Ready output and status as they happen;
//! [`check_logs_match`] compares the persisted logs directly.

use std::collections::BTreeMap;

use raft::StateRole;

use raft::eraftpb::Entry;

use crate::member::{Applied, MemberStatus};

/// What the simulation has observed so far, and any violation found.
#[derive(Debug, Default, Clone)]
pub struct Invariants {
    /// The leader seen in each term.
    pub leaders: BTreeMap<u64, u64>,
    /// The first entry applied at each index: (term, request id, revision after).
    applied: BTreeMap<u64, (u64, Option<u64>, i64)>,
    /// The store digest of the first member seen at each applied index.
    digests: BTreeMap<u64, u64>,
    /// The highest revision seen on each member.
    revisions: BTreeMap<u64, i64>,
    violations: Vec<String>,
}

impl Invariants {
    /// A member applied an entry.
    pub fn on_applied(&mut self, member: u64, a: &Applied) {
        let now = (a.term, a.request_id, a.revision);
        match self.applied.get(&a.index) {
            None => {
                self.applied.insert(a.index, now);
            }
            Some(&first) if first != now => self.violations.push(format!(
                "state machine safety: member {member} applied (term, request, revision) \
                 {now:?} at index {}, another member applied {first:?}",
                a.index
            )),
            Some(_) => {}
        }
    }

    /// A member finished a Ready loop in this state; `digest` fingerprints its store
    /// when that Ready applied entries.
    pub fn on_status(&mut self, s: &MemberStatus, digest: Option<u64>) {
        if s.role == StateRole::Leader {
            let leader = *self.leaders.entry(s.term).or_insert(s.id);
            if leader != s.id {
                self.violations.push(format!(
                    "election safety: members {leader} and {} both led term {}",
                    s.id, s.term
                ));
            }
        }
        let last = self.revisions.entry(s.id).or_insert(s.revision);
        if s.revision < *last {
            self.violations.push(format!(
                "revision went back on member {}: {} after {}",
                s.id, s.revision, last
            ));
        }
        *last = (*last).max(s.revision);
        let Some(digest) = digest else { return };
        let first = *self.digests.entry(s.applied).or_insert(digest);
        if first != digest {
            self.violations.push(format!(
                "member {} holds a different store than another member at applied index {}",
                s.id, s.applied
            ));
        }
    }

    /// The number of distinct terms that had a leader.
    pub fn terms_with_leader(&self) -> usize {
        self.leaders.len()
    }

    /// The highest log index any member applied.
    pub fn highest_applied(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }

    /// The first violation seen, if any.
    pub fn check(&self) -> Result<(), String> {
        match self.violations.first() {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }
}

/// Log matching and committed-prefix agreement over every pair of persisted logs,
/// given as member ID -> (log entries, persisted commit index). Logs may start at
/// different indexes (after a snapshot); only the indexes both hold are compared.
pub fn check_logs_match(logs: &BTreeMap<u64, (Vec<Entry>, u64)>) -> Result<(), String> {
    let indexed: Vec<(u64, BTreeMap<u64, &Entry>, u64)> = logs
        .iter()
        .map(|(&id, (log, commit))| (id, log.iter().map(|e| (e.index, e)).collect(), *commit))
        .collect();
    for (i, (a, log_a, commit_a)) in indexed.iter().enumerate() {
        for (b, log_b, commit_b) in &indexed[i + 1..] {
            let shared: Vec<u64> = log_a
                .keys()
                .filter(|k| log_b.contains_key(k))
                .copied()
                .collect();
            let last_match = shared.iter().rev().find(|k| log_a[k].term == log_b[k].term);
            if let Some(&k) = last_match {
                if let Some(j) = shared
                    .iter()
                    .take_while(|&&j| j <= k)
                    .find(|j| log_a[j] != log_b[j])
                {
                    return Err(format!(
                        "log matching: members {a} and {b} agree on the term at index {k} \
                         but differ at index {j}"
                    ));
                }
            }
            let committed = (*commit_a).min(*commit_b);
            if let Some(j) = shared
                .iter()
                .take_while(|&&j| j <= committed)
                .find(|j| log_a[j] != log_b[j])
            {
                return Err(format!(
                    "committed entry {j} differs between members {a} and {b}"
                ));
            }
        }
    }
    Ok(())
}
