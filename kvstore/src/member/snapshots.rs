//! Raft snapshots: how the log stays short, and how a member that fell far behind
//! catches up.
//!
//! Every applied entry stays in the Raft log until something removes it. Every
//! `snapshot_count` entries the member drops the log entries more than
//! [`CATCH_UP_ENTRIES`] (or `snapshot_count`, if smaller) behind what it applied: a
//! follower only a little behind still catches up from the log.
//! When a follower needs entries the leader no longer has — it was down for a long
//! time, or it is new — raft-rs asks the leader's storage for a snapshot and sends it
//! instead. The storage builds it then, from the store it has on disk
//! ([`crate::storage::Storage::snapshot_of_store`]: the same file format as `etcdctl
//! snapshot save`, see [`crate::snapshot`]), as etcd sends its backend file; the
//! follower replaces its store with the snapshot's and continues from there with the
//! log.

use raft::eraftpb::{Message, MessageType, Snapshot};

use super::Member;
use crate::storage::Storage;
use crate::watch::WatchEvents;

/// Entries kept behind a snapshot for slow followers (etcd's `snapshotCatchUpEntries`).
pub const CATCH_UP_ENTRIES: u64 = 5000;

impl<S: Storage> Member<S> {
    /// Compacts the log if `snapshot_count` entries were applied since the last time.
    pub(super) fn maybe_snapshot(&mut self) {
        let every = self.config.snapshot_count;
        if every == 0 || self.applied_index < self.last_snapshot + every {
            return;
        }
        let keep = every.min(CATCH_UP_ENTRIES);
        let compact_to = self.applied_index.saturating_sub(keep).max(1);
        self.raft.store().compact(compact_to);
        self.last_snapshot = self.applied_index;
    }

    /// Replaces this member's store with the one in a snapshot from the leader.
    pub(super) fn install_snapshot(&mut self, snapshot: Snapshot) {
        let (mut store, _) =
            crate::snapshot::decode(&snapshot.data).expect("a snapshot made by a member");
        let index = snapshot.get_metadata().index;
        self.raft.store().install_snapshot(&snapshot, &store);
        if let Some(source) = self.raft.store().value_source() {
            store.set_value_source(source);
            store.evict_written();
        }
        self.store = store;
        self.applied_index = index;
        self.last_snapshot = index;
        self.out.installed_snapshot = Some(index);
        self.resume_watchers();
    }

    /// The store jumped ahead: feed each watcher what it missed from the installed
    /// store's history (a snapshot carries it), or end the watch if that history was
    /// compacted away — the client must then re-read and watch again, as after a
    /// `410 Gone` in Kubernetes.
    fn resume_watchers(&mut self) {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            let Some(watcher) = self.watchers.get_mut(&id) else {
                continue;
            };
            match self.store.events_since(watcher.next_revision) {
                Ok(history) => {
                    let store = &self.store;
                    let events = watcher.filter(&history, |kv| store.version_before(kv));
                    if !events.is_empty() {
                        self.out.watch_events.push(WatchEvents {
                            watch_id: id,
                            events,
                        });
                    }
                }
                Err(_) => {
                    self.watchers.remove(&id);
                    self.out.canceled_watches.push(id);
                }
            }
        }
    }
}

/// The followers a batch of messages sends a snapshot to.
pub(super) fn snapshot_targets(messages: &[Message]) -> Vec<u64> {
    messages
        .iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
        .map(|m| m.to)
        .collect()
}

impl<S: Storage> Member<S> {
    /// Tells raft-rs that the snapshots it sent are on their way.
    ///
    /// A leader that sends a follower its snapshot stops replicating to it until it is
    /// told how the sending went (`report_snapshot`) — forever, if nobody tells it. The
    /// transport cannot say whether a snapshot arrived (a connection breaks, a full
    /// backlog drops it), so the leader is told at once that it was handed over, as
    /// etcd reports it once written: the leader goes back to probing the follower. If
    /// the snapshot arrived, the probe's answer confirms it; if it was lost, the
    /// follower's refusal makes the leader send another. (Found by `scripts/torture`:
    /// a follower restored from a copy of its data directory never caught up again.)
    pub(super) fn snapshots_handed_over(&mut self, followers: Vec<u64>) {
        for follower in followers {
            self.raft
                .report_snapshot(follower, raft::SnapshotStatus::Finish);
        }
    }
}
