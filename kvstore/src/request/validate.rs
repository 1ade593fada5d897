//! What a member checks before it proposes a request: the checks etcd makes, in etcd's
//! order, with etcd's errors.
//!
//! Everything a member proposes is applied by *every* member, so a request that cannot
//! be applied must never reach the log: one bad entry would stop the whole cluster, not
//! one client. etcd makes these checks on the member the client talks to, before the
//! request is proposed:
//!
//! - keys: every key of a range, put, delete and compare is non-empty;
//! - puts: `ignore_value` with a value, or `ignore_lease` with a lease, is refused;
//! - transactions: at most `--max-txn-ops` (128) operations per branch, counted down
//!   through nested transactions — a child may use only what its parent left
//!   (`check_txn`) — and no key written twice where the outcome would depend on the
//!   order of the operations (`check_intervals`);
//! - leases: a TTL of at most [`MAX_LEASE_TTL`] seconds;
//! - size: the encoded log entry at most `--max-request-bytes` (1.5 MiB by default),
//!   because every member keeps it in its log and sends it to every follower
//!   (checked by the member, which knows its configured limit: [`check_size`]).
//!
//! Applying is made total as well (`member/apply.rs`): an entry that still fails is an
//! error for its client on every member alike, never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::Request;
use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// etcd's `lease.MaxLeaseTTL`: 9 000 000 000 seconds (about 285 years).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// The checks of this module, for one request, in etcd's order.
pub fn validate(request: &Request) -> Result<()> {
    match request {
        Request::Range(r) => check_range(r),
        Request::Put(p) => check_put(p),
        Request::DeleteRange(d) => check_delete(d),
        Request::Txn(t) => {
            check_txn(t, MAX_TXN_OPS)?;
            // etcd checks overlaps only once the size is known to be bounded: the
            // overlap check is not linear in the number of operations.
            check_intervals(&t.success)?;
            check_intervals(&t.failure)?;
            Ok(())
        }
        Request::LeaseGrant(g) if g.ttl > MAX_LEASE_TTL => Err(Error::LeaseTtlTooLarge),
        Request::Compact(_)
        | Request::LeaseGrant(_)
        | Request::LeaseRevoke(_)
        | Request::LeaseKeepAlive(_)
        | Request::LeaseTimeToLive(_)
        | Request::LeaseLeases(_) => Ok(()),
    }
}

/// Refuses a log entry of more than `max_bytes` (etcd: `request is too large`).
pub fn check_size(entry_len: usize, max_bytes: usize) -> Result<()> {
    if entry_len > max_bytes {
        return Err(Error::RequestTooLarge);
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

fn check_range(r: &RangeRequest) -> Result<()> {
    check_key(&r.key)
}

fn check_delete(d: &DeleteRangeRequest) -> Result<()> {
    check_key(&d.key)
}

fn check_put(p: &PutRequest) -> Result<()> {
    check_key(&p.key)?;
    if p.ignore_value && !p.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(Error::LeaseProvided);
    }
    Ok(())
}

/// etcd's operation count: a transaction may have `budget` operations in its largest
/// branch (compares count as a branch), and each nested transaction may use only what
/// its parent left over. A nesting of depth N so spends at least one operation per
/// level, which bounds the depth too.
fn check_txn(t: &TxnRequest, budget: usize) -> Result<()> {
    let ops = t.compare.len().max(t.success.len()).max(t.failure.len());
    if ops > budget {
        return Err(Error::TooManyOps);
    }
    for c in &t.compare {
        check_key(&c.key)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        check_op(op, budget - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, budget: usize) -> Result<()> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => check_range(r),
        Some(request_op::Request::RequestPut(p)) => check_put(p),
        Some(request_op::Request::RequestDeleteRange(d)) => check_delete(d),
        Some(request_op::Request::RequestTxn(t)) => check_txn(t, budget),
        // An empty operation: etcd answers "key not found".
        None => Err(Error::KeyNotFound),
    }
}

/// The keys one branch of a transaction writes: the keys it puts, and the ranges it
/// deletes, nested transactions included.
type Writes<'a> = (BTreeSet<&'a [u8]>, Deleted);

/// etcd refuses a transaction whose outcome would depend on the order of its writes: a
/// key put twice, or put and deleted. Deletes may overlap each other (deleting twice is
/// deleting once), and the two branches of a nested transaction may put the same key
/// (only one of them runs).
fn check_intervals(ops: &[RequestOp]) -> Result<Writes<'_>> {
    let mut deleted = Deleted::default();
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(d)) = &op.request {
            deleted.insert(&d.key, &d.range_end);
        }
    }
    let mut puts = BTreeSet::new();
    for op in ops {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, deleted_then) = check_intervals(&t.success)?;
        let (puts_else, deleted_else) = check_intervals(&t.failure)?;
        for &key in &puts_then {
            if puts.contains(key) || deleted.contains(key) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(key);
        }
        for &key in &puts_else {
            let clash = puts.contains(key) && !puts_then.contains(key);
            if clash || deleted.contains(key) {
                return Err(Error::DuplicateKey);
            }
            puts.insert(key);
        }
        deleted.absorb(deleted_then);
        deleted.absorb(deleted_else);
    }
    for op in ops {
        if let Some(request_op::Request::RequestPut(p)) = &op.request {
            if !puts.insert(&p.key) || deleted.contains(&p.key) {
                return Err(Error::DuplicateKey);
            }
        }
    }
    Ok((puts, deleted))
}

/// A union of deleted key ranges, kept as disjoint `[start, end)` ranges ordered by
/// start, so "is this key deleted?" is one lookup however many deletes there were
/// (etcd uses an interval tree for the same reason).
#[derive(Debug, Default)]
struct Deleted {
    /// start → end; `None` is "to the end of the keyspace".
    ranges: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// Whether `key` lies before `end` (`None`: the end of the keyspace).
fn before(key: &[u8], end: &Option<Vec<u8>>) -> bool {
    end.as_deref().is_none_or(|end| key < end)
}

/// The later of two ends.
fn later(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl Deleted {
    /// Adds a delete's range: one key (`range_end` empty), `[key, range_end)`, or every
    /// key from `key` on (`range_end` is `\0`).
    fn insert(&mut self, key: &[u8], range_end: &[u8]) {
        let end = match range_end {
            [] => Some([key, &[0]].concat()), // the key itself: [key, key\0)
            [0] => None,
            end => Some(end.to_vec()),
        };
        self.insert_range(key.to_vec(), end);
    }

    fn insert_range(&mut self, mut start: Vec<u8>, mut end: Option<Vec<u8>>) {
        if !before(&start, &end) {
            return; // an empty range deletes nothing
        }
        // A range that starts at or before `start` and reaches it takes it in.
        let below = (Bound::Unbounded, Bound::Included(start.as_slice()));
        if let Some((s, e)) = self.ranges.range::<[u8], _>(below).next_back() {
            if before(&start, e) || e.as_deref() == Some(start.as_slice()) {
                let (s, e) = (s.clone(), e.clone());
                self.ranges.remove(&s);
                start = s;
                end = later(end, e);
            }
        }
        // Ranges that start inside the new one are merged into it.
        loop {
            let from = (Bound::Included(start.as_slice()), Bound::Unbounded);
            let next = self.ranges.range::<[u8], _>(from).next();
            match next {
                Some((s, _)) if before(s, &end) || end.as_deref() == Some(s.as_slice()) => {
                    let s = s.clone();
                    let e = self.ranges.remove(&s).flatten();
                    end = later(end, e);
                }
                _ => break,
            }
        }
        self.ranges.insert(start, end);
    }

    fn contains(&self, key: &[u8]) -> bool {
        let below = (Bound::Unbounded, Bound::Included(key));
        self.ranges
            .range::<[u8], _>(below)
            .next_back()
            .is_some_and(|(_, end)| before(key, end))
    }

    fn absorb(&mut self, other: Deleted) {
        for (start, end) in other.ranges {
            self.insert_range(start, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }
    }

    fn del(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: key.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            success,
            failure,
            ..Default::default()
        }
    }

    fn nest(t: TxnRequest) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestTxn(t)),
        }
    }

    fn check(t: TxnRequest) -> Result<()> {
        validate(&Request::Txn(t))
    }

    #[test]
    fn operations_are_counted_down_through_nested_transactions() {
        // 99 puts and a child: the child may have 128 - 100 = 28 operations.
        let child = |n: usize| txn((0..n).map(|i| put(&format!("c{i}"))).collect(), vec![]);
        let parent = |child: TxnRequest| {
            let mut ops: Vec<RequestOp> = (0..99).map(|i| put(&format!("p{i}"))).collect();
            ops.push(nest(child));
            txn(ops, vec![])
        };
        assert_eq!(check(parent(child(28))), Ok(()));
        assert_eq!(check(parent(child(29))), Err(Error::TooManyOps));
        // Compares count as a branch of their own.
        let mut wide = txn(vec![put("a")], vec![]);
        wide.compare = (0..129)
            .map(|i| crate::proto::etcdserverpb::Compare {
                key: format!("k{i}").into(),
                ..Default::default()
            })
            .collect();
        assert_eq!(check(wide), Err(Error::TooManyOps));
    }

    #[test]
    fn nesting_deeper_than_the_count_allows_is_refused() {
        let nested = |depth: usize| {
            let mut t = txn(vec![put("deep")], vec![]);
            for _ in 1..depth {
                t = txn(vec![nest(t)], vec![]);
            }
            t
        };
        assert_eq!(check(nested(50)), Ok(()));
        assert_eq!(check(nested(128)), Ok(()));
        assert_eq!(check(nested(129)), Err(Error::TooManyOps));
        assert_eq!(check(nested(1000)), Err(Error::TooManyOps));
    }

    #[test]
    fn writes_that_depend_on_their_order_are_refused() {
        assert_eq!(
            check(txn(vec![put("a"), put("a")], vec![])),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check(txn(vec![put("b"), del("a", "c")], vec![])),
            Err(Error::DuplicateKey)
        );
        assert_eq!(
            check(txn(vec![put("z"), del("a", "\0")], vec![])),
            Err(Error::DuplicateKey)
        );
        // Deletes may overlap; the branches of a txn are checked apart.
        assert_eq!(
            check(txn(vec![del("a", "c"), del("b", "d")], vec![])),
            Ok(())
        );
        assert_eq!(check(txn(vec![put("a")], vec![put("a")])), Ok(()));
        // A child's two branches may put one key; the child and its parent may not.
        let child = txn(vec![put("k")], vec![put("k")]);
        assert_eq!(check(txn(vec![nest(child.clone())], vec![])), Ok(()));
        assert_eq!(
            check(txn(vec![nest(child), put("k")], vec![])),
            Err(Error::DuplicateKey)
        );
        // A child's delete covers a put of its parent.
        let child = txn(vec![del("a", "m")], vec![]);
        assert_eq!(
            check(txn(vec![nest(child), put("f")], vec![])),
            Err(Error::DuplicateKey)
        );
        // A parent's delete covers a child's put.
        let child = txn(vec![put("f")], vec![]);
        assert_eq!(
            check(txn(vec![del("a", "m"), nest(child)], vec![])),
            Err(Error::DuplicateKey)
        );
    }

    #[test]
    fn bad_operations_get_etcds_errors() {
        assert_eq!(
            check(txn(vec![RequestOp { request: None }], vec![])),
            Err(Error::KeyNotFound)
        );
        let lease_and_ignore = Request::Put(PutRequest {
            key: b"k".to_vec(),
            lease: 7,
            ignore_lease: true,
            ..Default::default()
        });
        assert_eq!(validate(&lease_and_ignore), Err(Error::LeaseProvided));
        let forever = Request::LeaseGrant(crate::proto::etcdserverpb::LeaseGrantRequest {
            ttl: MAX_LEASE_TTL + 1,
            id: 0,
        });
        assert_eq!(validate(&forever), Err(Error::LeaseTtlTooLarge));
        assert_eq!(check_size(MAX_REQUEST_BYTES, MAX_REQUEST_BYTES), Ok(()));
        assert_eq!(
            check_size(MAX_REQUEST_BYTES + 1, MAX_REQUEST_BYTES),
            Err(Error::RequestTooLarge)
        );
    }

    #[test]
    fn deleted_ranges_merge() {
        let mut d = Deleted::default();
        d.insert(b"b", b"d");
        d.insert(b"f", b"");
        d.insert(b"c", b"g");
        assert_eq!(d.ranges.len(), 1, "{d:?}");
        for (key, inside) in [
            ("a", false),
            ("b", true),
            ("e", true),
            ("f", true),
            ("f\0", true),
            ("g", false),
        ] {
            assert_eq!(d.contains(key.as_bytes()), inside, "{key}");
        }
        d.insert(b"x", b"\0");
        assert!(d.contains(b"zzzz") && !d.contains(b"w"));
        d.insert(b"a", b"z");
        assert_eq!(d.ranges.len(), 1, "{d:?}");
        assert!(d.contains(b"a") && d.contains(b"\xff\xff"));
    }
}
