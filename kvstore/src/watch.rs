//! Watchers: a client's standing request for every change to a key range.
//!
//! In etcd a watch is served by the member the client is connected to. It starts at a
//! revision: either "from now on" or an older revision, in which case the member first
//! replays the history it still has (until the compaction point), then streams live
//! events as entries are applied. Because every member applies the same log, every
//! member can serve the same watch with the same events in the same revision order.
//!
//! Here a [`Watcher`] is only a filter and a cursor; the [`crate::Member`] feeds it the
//! events that `MvccStore::apply` returns and collects [`WatchEvents`] in its `Ready`.

use crate::mvcc::key_in_range;
use crate::proto::mvccpb::{Event, KeyValue};

/// What a client asks when it creates a watch (etcd's `WatchCreateRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchCreate {
    /// First key of the range.
    pub key: Vec<u8>,
    /// etcd range end: empty for one key, `[0]` for "every key >= key".
    pub range_end: Vec<u8>,
    /// Replay from this revision (inclusive); 0 means "only what happens next".
    pub start_revision: i64,
    /// Include the previous version of the key in each event.
    pub prev_kv: bool,
}

/// A batch of events for one watch, in revision order.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvents {
    /// The watch these belong to.
    pub watch_id: i64,
    /// The events, oldest first.
    pub events: Vec<Event>,
}

/// One registered watch on a member.
#[derive(Debug, Clone)]
pub struct Watcher {
    /// Chosen by the caller, unique on the member.
    pub id: i64,
    /// What was asked.
    pub create: WatchCreate,
    /// The lowest revision this watcher still has to see; events below it were already
    /// sent (protects against sending a replayed event twice).
    pub next_revision: i64,
}

impl Watcher {
    /// Keeps the events this watcher wants and has not seen, shaped as it asked: with
    /// `prev_kv`, each event gets the version it replaced from `version_before` (the
    /// store's [`crate::mvcc::MvccStore::version_before`]; events arrive without it).
    pub fn filter(
        &mut self,
        events: &[Event],
        version_before: impl Fn(&KeyValue) -> Option<KeyValue>,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        for event in events {
            let Some(kv) = &event.kv else { continue };
            if kv.mod_revision < self.next_revision
                || !key_in_range(&kv.key, &self.create.key, &self.create.range_end)
            {
                continue;
            }
            let mut event = event.clone();
            event.prev_kv = if self.create.prev_kv {
                version_before(kv)
            } else {
                None
            };
            out.push(event);
        }
        if let Some(last) = out.last().and_then(|e| e.kv.as_ref()) {
            // Every event of a revision arrives in one batch, so the next one to send is
            // strictly newer.
            self.next_revision = last.mod_revision + 1;
        }
        out
    }
}
