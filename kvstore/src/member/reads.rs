//! Reads: serializable ones from local state, linearizable ones through ReadIndex.
//!
//! A linearizable read must not return anything older than a write that completed
//! before it started. Serving it from the member's own copy is not enough: a member cut
//! off from the majority, or a leader that was replaced without knowing it, would
//! answer with stale data. So the member asks Raft for a *read index*: the leader notes
//! its commit index, confirms with a heartbeat round that a majority still follows it,
//! and answers with that index; once this member has applied that far, its state is at
//! least as new as any write that completed before the read began, and the read is
//! served. An unanswered request is asked again (the leader may have changed, or may
//! not yet have committed an entry in its term, in which case raft-rs drops it).

use super::{Member, Stage};
use crate::error::Result;
use crate::request::{Request, Response};
use crate::storage::Storage;

impl<S: Storage> Member<S> {
    pub(super) fn ask_read_index(&mut self, id: u64) {
        // The request ID is the read's context: Raft hands it back with the index.
        self.raft.read_index(id.to_be_bytes().to_vec());
        if let Some(p) = self.pending.get_mut(&id) {
            p.stage = Stage::ReadIndex { asked_at: self.now };
        }
    }

    pub(super) fn on_read_state(&mut self, ctx: &[u8], index: u64) {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        let id = u64::from_be_bytes(bytes);
        if let Some(p) = self.pending.get_mut(&id) {
            if matches!(p.stage, Stage::ReadIndex { .. }) {
                p.stage = Stage::ReadAt { index };
            }
        }
    }

    /// Serves every linearizable read whose read index has been applied: the state now
    /// is at least as new as the state when the read arrived, which is all
    /// linearizability asks.
    pub(super) fn serve_ready_reads(&mut self) {
        let applied = self.applied_index;
        let ready: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.stage, Stage::ReadAt { index } if index <= applied))
            .map(|(&id, _)| id)
            .collect();
        for id in ready {
            let p = self.pending.remove(&id).expect("listed above");
            let result = self.serve_read(&p.request);
            self.complete(id, result);
        }
    }

    pub(super) fn serve_read(&self, request: &Request) -> Result<Response> {
        let mut response = match request {
            Request::Range(range) => Response::Range(self.store.range(range)?),
            Request::LeaseTimeToLive(t) => {
                let mut answer = self.store.time_to_live(t);
                if answer.ttl >= 0 {
                    answer.ttl = self.remaining_ttl(t.id, answer.granted_ttl);
                }
                Response::LeaseTimeToLive(answer)
            }
            Request::LeaseLeases(_) => Response::LeaseLeases(self.store.lease_list()),
            _ => unreachable!("only reads are served as reads"),
        };
        response.set_header(self.header());
        Ok(response)
    }
}
