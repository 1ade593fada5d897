//! Client requests and responses as the member sees them, and their validation.
//!
//! A [`Request`] is one of etcd's KV calls, carried in the protobuf types of
//! `etcdserverpb`. Writes travel through Raft inside an `InternalRaftRequest` (see
//! [`encode_entry`]); reads never enter the log.

pub mod nested;
pub mod validate;

use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, decode_varint, WireType};
use prost::Message;

pub use validate::{MAX_LEASE_TTL, MAX_REQUEST_BYTES, MAX_TXN_OPS};

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    compare, request_op, CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest,
    DeleteRangeResponse, InternalRaftRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberAttributes, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse,
};

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
    /// refused at once and never reaches the log ([`validate`]).
    pub fn validate(&self) -> Result<()> {
        validate::validate(self)
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

/// The length of [`encode_entry`]'s bytes, without encoding them: what a member
/// compares with `--max-request-bytes` before it accepts a write.
pub fn entry_len(id: u64, request: &Request) -> usize {
    use prost::encoding::{encoded_len_varint, key_len, message};
    let id_len = if id == 0 {
        0
    } else {
        key_len(1) + encoded_len_varint(id)
    };
    id_len
        + match request {
            Request::Range(r) => message::encoded_len(3, r),
            Request::Put(p) => message::encoded_len(4, p),
            Request::DeleteRange(d) => message::encoded_len(5, d),
            Request::Txn(t) => message::encoded_len(6, t),
            Request::Compact(c) => message::encoded_len(7, c),
            Request::LeaseGrant(g) => message::encoded_len(8, g),
            Request::LeaseRevoke(r) => message::encoded_len(9, r),
            Request::LeaseKeepAlive(k) => message::encoded_len(51, k),
            Request::LeaseTimeToLive(_) | Request::LeaseLeases(_) => 0,
        }
}

/// What a Raft log entry carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A client request, with the ID its proposer waits on.
    Client(u64, Request),
    /// A member announcing its name and client URLs.
    Attributes(MemberAttributes),
    /// An entry no member can read. Every member skips it alike (the same bytes fail
    /// the same way everywhere, so the stores stay identical); the member that
    /// proposed it answers its client with `error`. `id` is 0 if even it was unreadable.
    Unreadable {
        /// The proposal's ID, as far as it could be read.
        id: u64,
        /// Why the entry could not be read.
        error: Error,
    },
}

/// Encodes a member's announcement of itself into a Raft log entry.
pub fn encode_attributes(attributes: MemberAttributes) -> Vec<u8> {
    InternalRaftRequest {
        member_attributes: Some(attributes),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Decodes a log entry, whatever its bytes: applying must be total, so an entry that
/// cannot be read is [`Payload::Unreadable`], never a panic.
///
/// The fields of `InternalRaftRequest` are read one by one rather than by prost in one
/// go, so that a transaction is decoded by [`nested`] with the same depth limit as on
/// the gRPC edge: a transaction one level deeper inside the entry than on the wire
/// must still decode.
pub fn decode_payload(data: Bytes) -> Payload {
    let mut id = 0;
    match decode_fields(data, &mut id) {
        Ok(Some(payload)) => payload,
        Ok(None) => Payload::Unreadable {
            id,
            error: Error::Malformed("a log entry with no request".into()),
        },
        Err(e) => Payload::Unreadable {
            id,
            error: e.into(),
        },
    }
}

/// The fields of one entry; `id` is set as soon as it is read, so that even an entry
/// whose request is unreadable can be answered.
fn decode_fields(mut buf: Bytes, id: &mut u64) -> Result<Option<Payload>, nested::NestedError> {
    let mut request = None;
    let mut attributes = None;
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if tag == 1 && wire_type == WireType::Varint {
            *id = decode_varint(&mut buf)?;
            continue;
        }
        if !matches!(tag, 3..=9 | 50 | 51) {
            nested::skip(wire_type, tag, &mut buf)?;
            continue;
        }
        let field = nested::delimited(wire_type, &mut buf)?;
        request = Some(match tag {
            3 => Request::Range(RangeRequest::decode(field)?),
            4 => Request::Put(PutRequest::decode(field)?),
            5 => Request::DeleteRange(DeleteRangeRequest::decode(field)?),
            6 => Request::Txn(nested::decode_txn_request(field)?),
            7 => Request::Compact(CompactionRequest::decode(field)?),
            8 => Request::LeaseGrant(LeaseGrantRequest::decode(field)?),
            9 => Request::LeaseRevoke(LeaseRevokeRequest::decode(field)?),
            51 => Request::LeaseKeepAlive(LeaseKeepAliveRequest::decode(field)?),
            _ => {
                attributes = Some(MemberAttributes::decode(field)?);
                continue;
            }
        });
    }
    Ok(match (attributes, request) {
        (Some(a), _) => Some(Payload::Attributes(a)),
        (None, Some(r)) => Some(Payload::Client(*id, r)),
        (None, None) => None,
    })
}

/// Decodes a client request entry written by [`encode_entry`].
pub fn decode_entry(data: &[u8]) -> Option<(u64, Request)> {
    match decode_payload(Bytes::copy_from_slice(data)) {
        Payload::Client(id, request) => Some((id, request)),
        _ => None,
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

    /// A transaction nested 50 deep is 100 protobuf levels on the wire, and 101 in a log
    /// entry: past prost's limit, which once made every member panic applying it.
    #[test]
    fn nested_transactions_decode_from_the_log_as_deep_as_etcd_allows() {
        for depth in [50, nested::MAX_TXN_DEPTH] {
            let mut txn = TxnRequest {
                success: vec![put("deep")],
                ..Default::default()
            };
            for _ in 1..depth {
                txn = TxnRequest {
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestTxn(txn)),
                    }],
                    ..Default::default()
                };
            }
            let request = Request::Txn(txn);
            let bytes = encode_entry(7, &request);
            assert_eq!(entry_len(7, &request), bytes.len());
            assert_eq!(decode_entry(&bytes), Some((7, request)), "depth {depth}");
        }
    }

    #[test]
    fn an_unreadable_entry_is_reported_with_its_id() {
        let mut bytes = encode_entry(42, &Request::put("k", "v"));
        bytes.truncate(bytes.len() - 1);
        match decode_payload(Bytes::from(bytes)) {
            Payload::Unreadable {
                id: 42,
                error: Error::Malformed(_),
            } => {}
            other => panic!("{other:?}"),
        }
        match decode_payload(Bytes::from_static(b"\x08\x2a")) {
            Payload::Unreadable { id: 42, .. } => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn entry_len_is_the_encoded_length() {
        for request in [
            Request::put("/registry/pods/default/alpine", vec![7; 300]),
            Request::delete("k"),
            Request::compact(9),
            Request::cas("k", Some(b"a".to_vec()), "b"),
            Request::get("k"),
        ] {
            for id in [0, 1, u64::MAX] {
                assert_eq!(entry_len(id, &request), encode_entry(id, &request).len());
            }
        }
    }

    #[test]
    fn prefix_end_like_etcdctl() {
        assert_eq!(prefix_end(b"/registry"), b"/registrz".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
