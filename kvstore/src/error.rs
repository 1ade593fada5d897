//! The one error type of the kvstore, worded the way etcd words it.
//!
//! Each variant's message is etcd's own (`etcdserver: request timed out`, ...), so that
//! when the gRPC edge maps an [`Error`] to a status, `etcdctl` prints what a learner
//! would see from a real etcd. The variants split in two families that a client must
//! tell apart:
//!
//! - *definite* failures: the request had no effect (bad input, no leader to propose to,
//!   a compacted revision). Retrying is always safe.
//! - *indeterminate* failures ([`Error::is_indeterminate`]): the request was handed to
//!   Raft (or sent on a connection that then broke) and we stopped waiting. It may
//!   still commit. A write that timed out must be treated as "maybe applied" — exactly
//!   what the linearizability checker does.

/// Everything that can go wrong with a kvstore request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request was proposed but did not complete before its deadline. Indeterminate.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The member knew of no leader until the deadline, so the request was never
    /// proposed. Definite: nothing happened.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// The request was proposed, then a new leader committed entries that do not include
    /// it. Almost always lost, but the outcome is not known for sure. Indeterminate.
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    /// The revision asked for is older than the last compaction.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted {
        /// The revision the store was compacted at.
        compact_revision: i64,
    },
    /// The revision asked for has not happened yet.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    /// A request named no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// A transaction writes the same key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// The request's log entry would be larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// A lease TTL above etcd's maximum (9 000 000 000 s).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// Bytes that are not a valid encoding of the message they should be (on the wire
    /// or in a log entry).
    #[error("kvstore: malformed request: {0}")]
    Malformed(String),
    /// A transaction has more operations than a member accepts.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// The lease does not exist (never granted, revoked or expired).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease with this ID exists already.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// The caller reused the ID of a request that is still in flight.
    #[error("kvstore: request id {0} is already in flight")]
    DuplicateRequestId(u64),
    /// A client could not get an answer from any member (connection refused, reset,
    /// an unexpected status); the text says what happened.
    #[error("kvstore: unavailable: {0}")]
    Unavailable(String),
    /// A snapshot file is not one of ours, or is damaged.
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A data directory could not be opened or read.
    #[error("kvstore: storage: {0}")]
    Storage(String),
    /// The member is down: the request never reached it. Definite.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// The leader says this member holds committed entries its log does not have: its
    /// data was lost (a wiped data directory). Fatal: the member must not go on.
    #[error("etcdserver: the leader has entry {commit} committed on this member, whose log ends at {last_index}: was the raft log corrupted, truncated, or lost? (remove the member and add it back with an empty data directory)")]
    LogLost {
        /// The commit index the leader sent.
        commit: u64,
        /// The last index of this member's log.
        last_index: u64,
    },
    /// This member's own announcement, from a previous start, came back through the
    /// log with another data directory's number: it was started before and lost its
    /// data directory since. Fatal.
    #[error("etcdserver: member {id:x} has already been bootstrapped, with a data directory it no longer has (remove the member and add it back with an empty data directory)")]
    AlreadyBootstrapped {
        /// This member's ID.
        id: u64,
    },
    /// A client sent the request, then its connection broke (reset, closed, cancelled)
    /// before an answer came: the member may have applied it or not. Indeterminate. Only
    /// a client reports this; no member ever answers with it.
    #[error("kvstore: connection lost before the answer came: {0}")]
    ConnectionLost(String),
}

impl Error {
    /// True when the request may or may not have taken effect (it reached Raft, or left
    /// on a connection that broke, and we stopped waiting). Clients must not assume a write failed after such an error.
    pub fn is_indeterminate(&self) -> bool {
        matches!(
            self,
            Error::Timeout | Error::LeaderChanged | Error::ConnectionLost(_)
        )
    }
}

/// The first line of a panic's message, for the one-line reason a failed member gives
/// (see `server/driver.rs`).
pub fn panic_reason(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    message.lines().next().unwrap_or_default().to_string()
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
