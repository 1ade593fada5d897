//! Client requests and responses as the member sees them, and their validation.
//!
//! A [`Request`] is one of etcd's KV calls, carried in the protobuf types of
//! `etcdserverpb`. Writes travel through Raft inside an `InternalRaftRequest` (see
//! [`encode_entry`]); reads never enter the log.

use prost::Message as _;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    compare, request_op, CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest,
    DeleteRangeResponse, InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberAttributes, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse,
};

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// One client request to the key-value store.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Read keys (linearizable unless `serializable` is set).
    Range(RangeRequest),
    /// Write one key.
    Put(PutRequest),
    /// Delete a key or a range.
    DeleteRange(DeleteRangeRequest),
    /// Compare-then-act, atomically.
    Txn(TxnRequest),
    /// Drop history older than a revision.
    Compact(CompactionRequest),
    /// Create a lease: keys attached to it vanish when it expires or is revoked.
    LeaseGrant(LeaseGrantRequest),
    /// End a lease now, deleting its keys.
    LeaseRevoke(LeaseRevokeRequest),
    /// Renew a lease for another TTL.
    LeaseKeepAlive(LeaseKeepAliveRequest),
    /// How long a lease has left (a local read).
    LeaseTimeToLive(LeaseTimeToLiveRequest),
    /// Every lease (a local read).
    LeaseLeases(LeaseLeasesRequest),
}

/// The answer to a [`Request`], same variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Answer to [`Request::Range`].
    Range(RangeResponse),
    /// Answer to [`Request::Put`].
    Put(PutResponse),
    /// Answer to [`Request::DeleteRange`].
    DeleteRange(DeleteRangeResponse),
    /// Answer to [`Request::Txn`].
    Txn(TxnResponse),
    /// Answer to [`Request::Compact`].
    Compact(CompactionResponse),
    /// Answer to [`Request::LeaseGrant`].
    LeaseGrant(LeaseGrantResponse),
    /// Answer to [`Request::LeaseRevoke`].
    LeaseRevoke(LeaseRevokeResponse),
    /// Answer to [`Request::LeaseKeepAlive`].
    LeaseKeepAlive(LeaseKeepAliveResponse),
    /// Answer to [`Request::LeaseTimeToLive`].
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    /// Answer to [`Request::LeaseLeases`].
    LeaseLeases(LeaseLeasesResponse),
}

impl Request {
    /// A read that may be served from this member's local state, without Raft.
    pub fn is_serializable_read(&self) -> bool {
        matches!(self, Request::Range(r) if r.serializable)
            || matches!(self, Request::LeaseTimeToLive(_) | Request::LeaseLeases(_))
    }

    /// A read that needs no log entry (served through ReadIndex or locally).
    pub fn is_read(&self) -> bool {
        matches!(self, Request::Range(_))
    }

    /// Checks what etcd checks before a request is proposed, so that a bad request is
    /// refused at once and never reaches the log.
    pub fn validate(&self) -> Result<()> {
        match self {
            Request::Range(r) => validate_key(&r.key),
            Request::Put(p) => validate_put(p),
            Request::DeleteRange(d) => validate_key(&d.key),
            Request::Txn(t) => validate_txn(t),
            Request::Compact(_)
            | Request::LeaseGrant(_)
            | Request::LeaseRevoke(_)
            | Request::LeaseKeepAlive(_)
            | Request::LeaseTimeToLive(_)
            | Request::LeaseLeases(_) => Ok(()),
        }
    }
}

/// Shorthands for the requests a learner types (`etcdctl put/get/del`) and the
/// compare-and-swap transaction the tests use.
impl Request {
    /// `etcdctl put KEY VALUE`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
    }

    /// `etcdctl get KEY` (linearizable).
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Request::Range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })
    }

    /// `etcdctl get --consistency=s KEY` (serializable: local, possibly stale).
    pub fn get_serializable(key: impl Into<Vec<u8>>) -> Self {
        Request::Range(RangeRequest {
            key: key.into(),
            serializable: true,
            ..Default::default()
        })
    }

    /// `etcdctl get --prefix PREFIX`: `range_end` is the prefix with its last byte
    /// incremented (`/registry` -> `/registrz`), or `\0` (all keys) for an empty one.
    pub fn get_prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key: Vec<u8> = prefix.into();
        let range_end = prefix_end(&key);
        let key = if key.is_empty() { vec![0] } else { key };
        Request::Range(RangeRequest {
            key,
            range_end,
            ..Default::default()
        })
    }

    /// `etcdctl del KEY`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Request::DeleteRange(DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        })
    }

    /// `if KEY == expect (None: absent) then put KEY=value`, one atomic transaction.
    pub fn cas(
        key: impl Into<Vec<u8>>,
        expect: Option<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        let key: Vec<u8> = key.into();
        let (target, target_union) = match expect {
            Some(v) => (
                compare::CompareTarget::Value,
                compare::TargetUnion::Value(v),
            ),
            None => (
                compare::CompareTarget::Version,
                compare::TargetUnion::Version(0),
            ),
        };
        Request::Txn(TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: target as i32,
                key: key.clone(),
                target_union: Some(target_union),
                range_end: vec![],
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key,
                    value: value.into(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        })
    }

    /// `etcdctl compaction REV`.
    pub fn compact(revision: i64) -> Self {
        Request::Compact(CompactionRequest {
            revision,
            physical: false,
        })
    }
}

/// The end of the range that holds every key starting with `prefix`, as etcdctl
/// computes it: drop trailing 0xff bytes, then add one to the last byte. A prefix of
/// only 0xff bytes (or none) means "to the end": `\0`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("not empty") += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

impl Response {
    /// The response header, whichever the variant.
    pub fn header(&self) -> Option<&ResponseHeader> {
        match self {
            Response::Range(r) => r.header.as_ref(),
            Response::Put(r) => r.header.as_ref(),
            Response::DeleteRange(r) => r.header.as_ref(),
            Response::Txn(r) => r.header.as_ref(),
            Response::Compact(r) => r.header.as_ref(),
            Response::LeaseGrant(r) => r.header.as_ref(),
            Response::LeaseRevoke(r) => r.header.as_ref(),
            Response::LeaseKeepAlive(r) => r.header.as_ref(),
            Response::LeaseTimeToLive(r) => r.header.as_ref(),
            Response::LeaseLeases(r) => r.header.as_ref(),
        }
    }

    /// Sets the response header, whichever the variant.
    pub fn set_header(&mut self, header: ResponseHeader) {
        let slot = match self {
            Response::Range(r) => &mut r.header,
            Response::Put(r) => &mut r.header,
            Response::DeleteRange(r) => &mut r.header,
            Response::Txn(r) => &mut r.header,
            Response::Compact(r) => &mut r.header,
            Response::LeaseGrant(r) => &mut r.header,
            Response::LeaseRevoke(r) => &mut r.header,
            Response::LeaseKeepAlive(r) => &mut r.header,
            Response::LeaseTimeToLive(r) => &mut r.header,
            Response::LeaseLeases(r) => &mut r.header,
        };
        *slot = Some(header);
    }
}

fn validate_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    Ok(())
}

fn validate_put(p: &PutRequest) -> Result<()> {
    validate_key(&p.key)?;
    if p.ignore_value && !p.value.is_empty() {
        return Err(Error::ValueProvided);
    }
    Ok(())
}

fn validate_txn(t: &TxnRequest) -> Result<()> {
    if t.compare.len() > MAX_TXN_OPS
        || t.success.len() > MAX_TXN_OPS
        || t.failure.len() > MAX_TXN_OPS
    {
        return Err(Error::TooManyOps);
    }
    for c in &t.compare {
        validate_key(&c.key)?;
    }
    for ops in [&t.success, &t.failure] {
        let mut written: Vec<(&[u8], &[u8])> = Vec::new();
        for op in ops.iter() {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => validate_key(&r.key)?,
                Some(request_op::Request::RequestPut(p)) => {
                    validate_put(p)?;
                    check_overlap(&mut written, &p.key, &[])?;
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    validate_key(&d.key)?;
                    check_overlap(&mut written, &d.key, &d.range_end)?;
                }
                Some(request_op::Request::RequestTxn(inner)) => validate_txn(inner)?,
                None => return Err(Error::EmptyKey),
            }
        }
    }
    Ok(())
}

/// etcd refuses a transaction branch that writes one key twice (a put and a delete
/// whose range covers it count too): the outcome would depend on op order.
fn check_overlap<'a>(
    written: &mut Vec<(&'a [u8], &'a [u8])>,
    key: &'a [u8],
    range_end: &'a [u8],
) -> Result<()> {
    for &(k, end) in written.iter() {
        if ranges_overlap(k, end, key, range_end) {
            return Err(Error::DuplicateKey);
        }
    }
    written.push((key, range_end));
    Ok(())
}

/// Whether two etcd key ranges share a key. An empty `end` means the single key;
/// `[0]` means "to the end of the keyspace".
pub fn ranges_overlap(a: &[u8], a_end: &[u8], b: &[u8], b_end: &[u8]) -> bool {
    // `a < end(b)` and `b < end(a)`, where a missing end is the key itself (+ \0).
    fn below_end(k: &[u8], start: &[u8], end: &[u8]) -> bool {
        match end {
            [] => k <= start,
            [0] => true,
            end => k < end,
        }
    }
    below_end(a, b, b_end) && below_end(b, a, a_end)
}

/// Encodes a write request into the bytes of one Raft log entry.
pub fn encode_entry(id: u64, request: &Request) -> Vec<u8> {
    let mut internal = InternalRaftRequest {
        id,
        ..Default::default()
    };
    match request.clone() {
        Request::Range(r) => internal.range = Some(r),
        Request::Put(p) => internal.put = Some(p),
        Request::DeleteRange(d) => internal.delete_range = Some(d),
        Request::Txn(t) => internal.txn = Some(t),
        Request::Compact(c) => internal.compaction = Some(c),
        Request::LeaseGrant(g) => internal.lease_grant = Some(g),
        Request::LeaseRevoke(r) => internal.lease_revoke = Some(r),
        Request::LeaseKeepAlive(k) => internal.lease_keep_alive = Some(k),
        // Local reads never enter the log.
        Request::LeaseTimeToLive(_) | Request::LeaseLeases(_) => {}
    }
    internal.encode_to_vec()
}

/// What a Raft log entry carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A client request, with the ID its proposer waits on.
    Client(u64, Request),
    /// A member announcing its name and client URLs.
    Attributes(MemberAttributes),
}

/// Encodes a member's announcement of itself into a Raft log entry.
pub fn encode_attributes(attributes: MemberAttributes) -> Vec<u8> {
    InternalRaftRequest {
        member_attributes: Some(attributes),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Decodes any entry we write. Entries only ever come from our own encoders, so a
/// failure here means a corrupted log: the caller panics.
pub fn decode_payload(data: &[u8]) -> Option<Payload> {
    let internal = InternalRaftRequest::decode(data).ok()?;
    if let Some(attributes) = internal.member_attributes {
        return Some(Payload::Attributes(attributes));
    }
    decode_internal(internal).map(|(id, r)| Payload::Client(id, r))
}

/// Decodes a client request entry written by [`encode_entry`].
pub fn decode_entry(data: &[u8]) -> Option<(u64, Request)> {
    decode_internal(InternalRaftRequest::decode(data).ok()?)
}

fn decode_internal(internal: InternalRaftRequest) -> Option<(u64, Request)> {
    let request = if let Some(p) = internal.put {
        Request::Put(p)
    } else if let Some(d) = internal.delete_range {
        Request::DeleteRange(d)
    } else if let Some(t) = internal.txn {
        Request::Txn(t)
    } else if let Some(c) = internal.compaction {
        Request::Compact(c)
    } else if let Some(g) = internal.lease_grant {
        Request::LeaseGrant(g)
    } else if let Some(r) = internal.lease_revoke {
        Request::LeaseRevoke(r)
    } else if let Some(k) = internal.lease_keep_alive {
        Request::LeaseKeepAlive(k)
    } else if let Some(r) = internal.range {
        Request::Range(r)
    } else {
        return None;
    };
    Some((internal.id, request))
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

    #[test]
    fn entries_round_trip() {
        let req = Request::Put(PutRequest {
            key: b"/registry/pods/default/alpine".to_vec(),
            value: b"{}".to_vec(),
            ..Default::default()
        });
        let bytes = encode_entry(42, &req);
        assert_eq!(decode_entry(&bytes), Some((42, req)));
        assert_eq!(decode_entry(b"\xff\xff"), None);
    }

    #[test]
    fn validation_refuses_what_etcd_refuses() {
        let empty = Request::Range(RangeRequest::default());
        assert_eq!(empty.validate(), Err(Error::EmptyKey));
        let dup = Request::Txn(TxnRequest {
            success: vec![put("a"), put("a")],
            ..Default::default()
        });
        assert_eq!(dup.validate(), Err(Error::DuplicateKey));
        let ok = Request::Txn(TxnRequest {
            success: vec![put("a"), put("b")],
            failure: vec![put("a")],
            ..Default::default()
        });
        assert_eq!(ok.validate(), Ok(()));
        let many = Request::Txn(TxnRequest {
            success: (0..=MAX_TXN_OPS).map(|i| put(&format!("k{i}"))).collect(),
            ..Default::default()
        });
        assert_eq!(many.validate(), Err(Error::TooManyOps));
    }

    #[test]
    fn prefix_end_like_etcdctl() {
        assert_eq!(prefix_end(b"/registry"), b"/registrz".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn overlap_of_ranges() {
        assert!(ranges_overlap(b"a", b"", b"a", b""));
        assert!(!ranges_overlap(b"a", b"", b"b", b""));
        assert!(ranges_overlap(b"a", b"c", b"b", b""));
        assert!(!ranges_overlap(b"a", b"c", b"c", b""));
        assert!(ranges_overlap(b"a", &[0], b"zzz", b""));
        assert!(!ranges_overlap(b"b", &[0], b"a", b""));
    }
}
