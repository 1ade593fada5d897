//! Election timeouts: drawn from a seeded generator, and cut short when the leader is
//! known to be gone.
//!
//! ## Seeded timeouts
//!
//! Raft breaks ties with randomness: each member waits a random time in `[election,
//! 2 * election)` ticks before it campaigns, so two members seldom start together.
//! raft-rs draws that time from the thread's unseeded generator whenever it resets a
//! member's election timer — in `Raft::reset`, which only `become_follower`,
//! `become_candidate` and `become_leader` call — and offers no hook to draw it
//! elsewhere. So a member has its own generator ([`ElectionTimeouts`], seeded from
//! `MemberConfig::election_seed`) and, after every call into raft-rs (start, tick,
//! step, Ready), looks whether raft-rs reset the timer: each of those three changes the
//! role or the term, and nothing else does both. If it did, the member draws the
//! timeout again from its own generator and pins it with
//! `Raft::set_randomized_election_timeout`, before the next tick can read it. raft-rs
//! still draws its own number; it is never used. Same seed, same calls: same
//! timeouts.
//!
//! ## Fast elections
//!
//! Elections sooner than the election timeout, when the leader is known to be gone.
//!
//! Raft finds a dead leader by silence: a follower that hears nothing for an election
//! timeout (one to two seconds by default) campaigns. But a member often *knows* its
//! leader is gone: the leader's connection closed (its process died, or restarts its
//! transport). Waiting out the timeout then only delays the inevitable, so the
//! follower stops honouring the leader's lease (it grants votes at once) and campaigns
//! after `1 + rank` ticks, where `rank` is its place among the other voters; the ranks
//! differ, so the survivors do not campaign together.
//!
//! Usually. On a busy machine two survivors' ticks can come close enough that both
//! campaign in the same term, each votes for itself, and nobody wins: a split vote.
//! Raft resolves it with its randomised timeout — a full timeout of waiting again,
//! exactly what this was to avoid. So a member whose fast election has produced no
//! leader a couple of ticks after its turn tries again with its stagger doubled
//! (`(1 + rank) * 2^attempt` ticks): the order by rank stays, the gap grows until the
//! machine's jitter cannot close it, and once the stagger is as long as the election
//! timeout (no quorum to be had, say) the member leaves it to Raft. It is always safe (an
//! election only decides who leads, never what is committed) and harmless when the
//! leader is in fact alive: pre-vote fails, and its next heartbeat makes this member a
//! follower again, ending the fast election. (Found with the client tests under three
//! busy loops: 1 run in 15 ended in a split vote and a 60 s wait.)

use raft::StateRole;
use seams::rand::SplitMix64;

use super::Member;
use crate::storage::Storage;

/// Where a member's election timeouts come from (see the module doc).
#[derive(Debug)]
pub(super) struct ElectionTimeouts {
    rng: SplitMix64,
    /// raft-rs's window, `[min, max)` ticks.
    window: (usize, usize),
    /// Role and term when the timeout was last drawn.
    drawn_at: Option<(StateRole, u64)>,
}

impl ElectionTimeouts {
    /// Timeouts in `[min, max)` ticks, drawn from a generator seeded with `seed`.
    pub(super) fn new(seed: u64, (min, max): (usize, usize)) -> Self {
        assert!(min < max, "an empty election window [{min}, {max})");
        ElectionTimeouts {
            rng: SplitMix64::new(seed),
            window: (min, max),
            drawn_at: None,
        }
    }
}

/// A fast election under way: this member's place in the order, how many times it
/// has been armed, and the tick it was last armed at.
#[derive(Debug, Clone, Copy)]
pub(super) struct FastElection {
    rank: usize,
    attempt: u32,
    armed_at: u64,
}

/// Ticks a campaign may take, after its turn, before it is tried again: a pre-vote and
/// a vote round trip, with a tick to spare.
const CAMPAIGN_TICKS: usize = 2;

impl<S: Storage> Member<S> {
    /// Draws the election timeout again if raft-rs has reset the election timer since
    /// the last draw (it did if the role or the term changed). Called after every call
    /// into raft-rs.
    pub(super) fn pin_election_timeout(&mut self) {
        let raft = &mut self.raft.raft;
        let now = (raft.state, raft.term);
        let timeouts = &mut self.election_timeouts;
        if timeouts.drawn_at == Some(now) {
            return;
        }
        timeouts.drawn_at = Some(now);
        let (min, max) = timeouts.window;
        let timeout = min + timeouts.rng.below((max - min) as u64) as usize;
        raft.set_randomized_election_timeout(timeout);
    }

    /// The connection from `peer` closed. If `peer` is this follower's leader, a fast
    /// election starts (see the module doc).
    pub fn peer_lost(&mut self, peer: u64) {
        let raft = &mut self.raft.raft;
        if raft.state != StateRole::Follower || raft.leader_id != peer {
            return;
        }
        let me = self.config.id;
        let rank = self
            .cluster
            .voter_ids()
            .into_iter()
            .filter(|&id| id != peer && id < me)
            .count();
        raft.leader_id = raft::INVALID_ID;
        let fast = FastElection {
            rank,
            attempt: 0,
            armed_at: self.now,
        };
        self.fast_election = Some(fast);
        self.campaign_in(fast.delay());
    }

    /// Follows a fast election each tick: over once a leader is known; armed again,
    /// further apart, when its campaign has produced no leader in time (a split vote
    /// leaves both candidates waiting, or back to leaderless followers).
    pub(super) fn fast_election_tick(&mut self) {
        let Some(mut fast) = self.fast_election else {
            return;
        };
        if self.raft.raft.leader_id != raft::INVALID_ID {
            self.fast_election = None;
            return;
        }
        if self.now >= fast.armed_at + (fast.delay() + CAMPAIGN_TICKS) as u64 {
            fast.attempt += 1;
            fast.armed_at = self.now;
            if fast.delay() >= self.raft.raft.randomized_election_timeout() {
                // No sooner than Raft's own timeout any more (no quorum, say): leave
                // it to Raft.
                self.fast_election = None;
                return;
            }
            self.campaign_in(fast.delay());
        }
        self.fast_election = Some(fast);
    }

    /// Makes this member's election timer run out `ticks` ticks from now (no later
    /// than it would anyway).
    fn campaign_in(&mut self, ticks: usize) {
        let raft = &mut self.raft.raft;
        let timeout = raft.randomized_election_timeout();
        raft.election_elapsed = raft
            .election_elapsed
            .max(timeout.saturating_sub(ticks.max(1)));
    }
}

impl FastElection {
    /// Ticks until this member campaigns: `(1 + rank) * 2^attempt`.
    fn delay(&self) -> usize {
        (1 + self.rank) << self.attempt.min(16)
    }
}
