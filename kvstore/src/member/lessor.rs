//! The lessor: the leader's clock for leases.
//!
//! Which leases exist is replicated state (see `mvcc/lease.rs`); *when* they run out is
//! not — there is no shared clock. Every member notes a deadline (in ticks) whenever it
//! applies a grant or a keep-alive, but only the leader acts on them: when a deadline
//! passes it proposes a revoke, which every member applies, deleting the lease's keys.
//! A member that becomes leader restarts every lease's full TTL, because the old
//! leader's clock died with it; a lease may live a little longer than asked after a
//! leader change, never shorter (etcd does the same).

use std::collections::BTreeMap;

use raft::StateRole;

use super::Member;
use crate::proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest};
use crate::request::{encode_entry, Request};
use crate::storage::Storage;

/// Lease deadlines and the revokes in flight.
#[derive(Debug, Default)]
pub(super) struct Lessor {
    /// Lease ID → the tick at which it expires.
    deadlines: BTreeMap<i64, u64>,
    /// Lease ID → the term in which this member proposed its revoke.
    revoking: BTreeMap<i64, u64>,
    /// Whether this member was leader at the last check.
    was_leader: bool,
}

impl<S: Storage> Member<S> {
    fn lease_ticks(&self, ttl_seconds: i64) -> u64 {
        ttl_seconds.max(0) as u64 * self.config.ticks_per_second.max(1)
    }

    /// etcd's shortest lease: one and a half election timeouts, in whole seconds, so a
    /// lease cannot expire during an ordinary leader election.
    pub fn min_lease_ttl(&self) -> i64 {
        let ticks = (3 * self.config.election_tick as u64).div_ceil(2);
        ticks.div_ceil(self.config.ticks_per_second.max(1)) as i64
    }

    /// Fills in what a grant needs before it is proposed: an ID if the client left it
    /// to us (unique: this member's ID and the request's), and at least the minimum TTL.
    pub(super) fn prepare_lease_grant(&self, request_id: u64, grant: &mut LeaseGrantRequest) {
        if grant.id == 0 {
            let member = self.config.id & 0xffff;
            grant.id = ((member << 47) | (request_id & 0x7fff_ffff_ffff)).max(1) as i64;
        }
        grant.ttl = grant.ttl.max(self.min_lease_ttl());
    }

    /// Notes deadlines as lease entries apply on this member.
    pub(super) fn on_lease_applied(&mut self, request: &Request, applied: bool) {
        if !applied {
            return;
        }
        let renew = match request {
            Request::LeaseGrant(g) => Some(g.id),
            Request::LeaseKeepAlive(k) => Some(k.id),
            Request::LeaseRevoke(r) => {
                self.lessor.deadlines.remove(&r.id);
                self.lessor.revoking.remove(&r.id);
                None
            }
            _ => None,
        };
        if let Some(id) = renew {
            let ttl = self
                .store
                .leases()
                .find(|(l, _)| *l == id)
                .map_or(0, |(_, t)| t);
            let deadline = self.now + self.lease_ticks(ttl);
            self.lessor.deadlines.insert(id, deadline);
        }
    }

    /// On the leader, once per tick: revoke every lease whose deadline has passed.
    pub(super) fn expire_leases(&mut self) {
        self.check_leadership();
        if !self.lessor.was_leader {
            return;
        }
        let term = self.raft.raft.term;
        let expired: Vec<i64> = self
            .lessor
            .deadlines
            .iter()
            .filter(|(id, deadline)| {
                **deadline <= self.now && self.lessor.revoking.get(id) != Some(&term)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            // Request ID 0: nobody waits for the answer.
            let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id });
            if self.raft.propose(vec![], encode_entry(0, &revoke)).is_ok() {
                self.lessor.revoking.insert(id, term);
            }
        }
    }

    /// A new leader gives every lease a full TTL from now.
    pub(super) fn check_leadership(&mut self) {
        let leader = self.raft.raft.state == StateRole::Leader;
        if leader && !self.lessor.was_leader {
            let leases: Vec<(i64, i64)> = self.store.leases().collect();
            self.lessor.deadlines = leases
                .into_iter()
                .map(|(id, ttl)| (id, self.now + self.lease_ticks(ttl)))
                .collect();
            self.lessor.revoking.clear();
        }
        self.lessor.was_leader = leader;
    }

    /// Seconds a lease has left by this member's clock (its granted TTL if this member
    /// has no deadline for it).
    pub(super) fn remaining_ttl(&self, id: i64, granted: i64) -> i64 {
        match self.lessor.deadlines.get(&id) {
            Some(&deadline) => {
                let ticks = deadline.saturating_sub(self.now);
                ticks.div_ceil(self.config.ticks_per_second.max(1)) as i64
            }
            None => granted,
        }
    }
}
