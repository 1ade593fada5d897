//! Values out of memory: where a stored version's value lives once it is on disk.
//!
//! etcd keeps only its index (key → revisions) in memory; the values are in bbolt and
//! read from there. The store here starts with everything in memory — which is all the
//! simulator needs — and can be given a [`ValueSource`]: the member's disk, which says
//! up to which revision it holds every version. [`super::MvccStore::evict_written`]
//! then drops the in-memory copy of each value the disk already has, and reads fetch
//! it back from the source when they need it. The history costs memory for its keys
//! and numbers only, not for its values.
//!
//! Only values go: keys, revisions, versions and tombstones stay in memory, so the
//! index, compaction, and "does this key exist" never touch the disk.

use std::sync::Arc;

use super::Revision;

/// Where evicted values are read back from.
pub trait ValueSource: Send + Sync + std::fmt::Debug {
    /// Every version at or below this revision can be read from the source.
    fn written_through(&self) -> i64;
    /// The value of the version stored at `revision` (None: not there).
    fn value(&self, revision: Revision) -> Option<Vec<u8>>;
}

/// A shared source, as the store holds it.
pub type Source = Arc<dyn ValueSource>;
