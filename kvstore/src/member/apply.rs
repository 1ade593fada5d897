//! Applying committed entries: every member runs the same entries through the same
//! store in the same order, so every member ends in the same state. Only the member
//! that proposed an entry has a client waiting for it.
//!
//! Applying is *total*: whatever bytes a committed entry holds, every member does the
//! same thing with it and none of them panics. A request is validated before it is
//! proposed, but an entry that still cannot be read or applied (a bug, a request from a
//! member of another version) must not stop the cluster: a panic here would repeat on
//! every member, and again after every restart, because the entry stays in the log.
//! Such an entry changes nothing, and its proposer's client gets the error.

use bytes::Bytes;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType};

use super::{Applied, Member, Pending, Stage};
use crate::error::Error;
use crate::proto::etcdserverpb::MemberAttributes;
use crate::request::{decode_payload, Payload};
use crate::storage::Storage;
use crate::watch::WatchEvents;

impl<S: Storage> Member<S> {
    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) {
        let newest_term = entries.last().map(|e| e.term);
        for mut entry in entries {
            if entry.index <= self.applied_index {
                continue;
            }
            if self.failed.is_some() {
                break; // nothing more is applied; the entry stays in the log
            }
            let request_id = match entry.get_entry_type() {
                EntryType::EntryNormal => self.apply_normal(std::mem::take(&mut entry.data)),
                EntryType::EntryConfChange => {
                    self.apply_conf_change::<ConfChange>(&entry.data);
                    None
                }
                EntryType::EntryConfChangeV2 => {
                    self.apply_conf_change::<ConfChangeV2>(&entry.data);
                    None
                }
            };
            if self.failed.is_some() {
                break;
            }
            self.applied_index = entry.index;
            self.out.applied.push(Applied {
                index: entry.index,
                term: entry.term,
                request_id,
                revision: self.store.current_revision(),
            });
        }
        if let Some(term) = newest_term {
            self.fail_overtaken_proposals(term);
        }
    }

    fn apply_conf_change<C>(&mut self, data: &[u8])
    where
        C: raft_proto::ConfChangeI + protobuf::Message,
    {
        // Membership changes are not proposed yet (`member add/remove` comes later);
        // applying them here keeps raft-rs's view and the stored conf state in step.
        // One that cannot be decoded or applied is skipped by every member alike.
        let mut cc = C::new();
        let applied = cc
            .merge_from_bytes(data)
            .map_err(|e| e.to_string())
            .and_then(|()| self.raft.apply_conf_change(&cc).map_err(|e| e.to_string()));
        match applied {
            Ok(cs) => self.raft.store().set_conf_state(&cs),
            Err(e) => {
                tracing::error!(error = %e, "skipped a configuration change that cannot be applied")
            }
        }
    }

    /// Applies one client entry on every member alike; only the member that proposed it
    /// has a client waiting.
    fn apply_normal(&mut self, data: Bytes) -> Option<u64> {
        if data.is_empty() {
            return None; // a new leader's empty entry: commits its term, changes nothing
        }
        let (id, request) = match decode_payload(data) {
            Payload::Client(id, request) => (id, request),
            Payload::Attributes(a) => {
                self.apply_attributes(a);
                return None;
            }
            Payload::Unreadable { id, error } => {
                tracing::error!(%error, "skipped a log entry that cannot be read");
                self.answer_proposer(id, Err(error));
                return Some(id);
            }
        };
        let (result, events) = self.store.apply(&request);
        self.on_lease_applied(&request, result.is_ok());
        if !events.is_empty() {
            let store = &self.store;
            for watcher in self.watchers.values_mut() {
                let mine = watcher.filter(&events, |kv| store.version_before(kv));
                if !mine.is_empty() {
                    self.out.watch_events.push(WatchEvents {
                        watch_id: watcher.id,
                        events: mine,
                    });
                }
            }
        }
        let header = self.header();
        let result = result.map(|mut response| {
            response.set_header(header);
            response
        });
        self.answer_proposer(id, result);
        Some(id)
    }

    /// Completes the client request waiting on entry `id`, if this member proposed it.
    fn answer_proposer(&mut self, id: u64, result: crate::error::Result<crate::Response>) {
        if matches!(
            self.pending.get(&id),
            Some(Pending {
                stage: Stage::Proposed { .. },
                ..
            })
        ) {
            self.pending.remove(&id);
            self.complete(id, result);
        }
    }

    /// Records a member's announced attributes, and persists the member list.
    ///
    /// Our own announcement with another data directory's token means this member ID
    /// was started before, from a data directory that is gone: a member that goes on
    /// would vote and acknowledge as if it still held what it acknowledged then. etcd
    /// refuses to start such a member ("has already been bootstrapped"); here it is
    /// found when the old announcement comes back through the log, and the member stops
    /// before applying it (so it is found again at every restart).
    fn apply_attributes(&mut self, a: MemberAttributes) {
        let mine = self.raft.store().bootstrap_token();
        if a.id == self.config.id && a.bootstrap != 0 && mine != 0 && a.bootstrap != mine {
            self.failed = Some(Error::AlreadyBootstrapped { id: a.id });
            return;
        }
        if a.id == self.config.id {
            self.publishing = None;
        }
        if let Some(m) = self.cluster.members.iter_mut().find(|m| m.id == a.id) {
            m.client_urls = a.client_urls;
        }
        self.raft.store().save_members(&self.cluster.members);
    }

    /// Once an entry from a later term is applied, a proposal made in an earlier term
    /// that has not been applied was (almost certainly) dropped by a deposed leader.
    /// Waiting for the full timeout would only make the client wait; answer now, as an
    /// indeterminate error, so the client knows to check or retry.
    fn fail_overtaken_proposals(&mut self, applied_term: u64) {
        let overtaken: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.stage, Stage::Proposed { term } if term < applied_term))
            .map(|(&id, _)| id)
            .collect();
        for id in overtaken {
            self.pending.remove(&id);
            self.complete(id, Err(Error::LeaderChanged));
        }
    }
}
