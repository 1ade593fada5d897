//! Decoding nested transactions without prost's recursion limit, and without trusting
//! the sender.
//!
//! A transaction's operations may themselves be transactions (`RequestOp.request_txn`),
//! so a `TxnRequest` is a tree of messages: `TxnRequest > RequestOp > TxnRequest > ...`,
//! two protobuf levels per nesting. prost decodes at most 100 levels below the
//! outermost message (its `RECURSION_LIMIT`, which keeps a hostile message from
//! overflowing the stack), so a transaction nested 50 deep, with a put inside, is the
//! most it decodes. etcd, written in Go, has no such limit: it decodes any depth and
//! then counts operations ([`super::validate`]), which allows up to 129 nested
//! transactions (128 operations, one per level, plus an empty innermost one).
//!
//! Before this module existed the gap was a cluster-killer: a transaction nested 50 deep
//! decoded at the gRPC edge (101 levels), was proposed, and then could not be decoded
//! from the log, where it sits one level deeper inside `InternalRaftRequest`. Every
//! member panicked applying it, and again after every restart.
//!
//! So the two recursive pairs — `TxnRequest`/`RequestOp` and `TxnResponse`/`ResponseOp`
//! — are decoded here by hand, with a depth count of our own: [`MAX_TXN_DEPTH`] levels
//! of transactions, deeper is [`Error::TooManyOps`], exactly the requests etcd refuses
//! by counting. Everything else (a `PutRequest`, a `Compare`, a `RangeResponse`) is a
//! shallow message and is decoded by prost, each with a fresh recursion budget. The same
//! decoder reads a request from the gRPC wire ([`crate::codec`]) and from the Raft log
//! ([`super::decode_payload`]), so a request the edge accepted always decodes from the
//! log.

use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::Message;

use crate::error::Error;
use crate::proto::etcdserverpb::{
    request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};

/// The deepest transaction tree etcd's operation count can accept: each level but the
/// last spends at least one of the 128 operations (`--max-txn-ops`) on its child.
pub const MAX_TXN_DEPTH: usize = super::validate::MAX_TXN_OPS + 1;

/// Why a nested message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NestedError {
    /// Deeper than [`MAX_TXN_DEPTH`]: etcd would refuse it as too many operations.
    TooDeep,
    /// Not a valid protobuf encoding of the message.
    Malformed(String),
}

impl From<prost::DecodeError> for NestedError {
    fn from(e: prost::DecodeError) -> Self {
        NestedError::Malformed(e.to_string())
    }
}

impl From<NestedError> for Error {
    fn from(e: NestedError) -> Self {
        match e {
            NestedError::TooDeep => Error::TooManyOps,
            NestedError::Malformed(why) => Error::Malformed(why),
        }
    }
}

type Result<T> = std::result::Result<T, NestedError>;

/// Decodes a `TxnRequest` of any depth up to [`MAX_TXN_DEPTH`].
pub fn decode_txn_request(buf: Bytes) -> Result<TxnRequest> {
    txn_request(buf, 1)
}

/// Decodes a `TxnResponse` of any depth up to [`MAX_TXN_DEPTH`] (a client reading the
/// answer to a nested transaction).
pub fn decode_txn_response(buf: Bytes) -> Result<TxnResponse> {
    txn_response(buf, 1)
}

fn txn_request(mut buf: Bytes, depth: usize) -> Result<TxnRequest> {
    if depth > MAX_TXN_DEPTH {
        return Err(NestedError::TooDeep);
    }
    let mut txn = TxnRequest::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => txn
                .compare
                .push(Compare::decode(delimited(wire_type, &mut buf)?)?),
            2 => txn
                .success
                .push(request_op(delimited(wire_type, &mut buf)?, depth)?),
            3 => txn
                .failure
                .push(request_op(delimited(wire_type, &mut buf)?, depth)?),
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(txn)
}

fn request_op(mut buf: Bytes, depth: usize) -> Result<RequestOp> {
    use request_op::Request as R;
    let mut op = RequestOp::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        // A oneof: when a sender sets several members, the last one wins, as in prost.
        op.request = Some(match tag {
            1 => R::RequestRange(RangeRequest::decode(delimited(wire_type, &mut buf)?)?),
            2 => R::RequestPut(PutRequest::decode(delimited(wire_type, &mut buf)?)?),
            3 => {
                R::RequestDeleteRange(DeleteRangeRequest::decode(delimited(wire_type, &mut buf)?)?)
            }
            4 => R::RequestTxn(txn_request(delimited(wire_type, &mut buf)?, depth + 1)?),
            _ => {
                skip(wire_type, tag, &mut buf)?;
                continue;
            }
        });
    }
    Ok(op)
}

fn txn_response(mut buf: Bytes, depth: usize) -> Result<TxnResponse> {
    if depth > MAX_TXN_DEPTH {
        return Err(NestedError::TooDeep);
    }
    let mut txn = TxnResponse::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => txn.header = Some(ResponseHeader::decode(delimited(wire_type, &mut buf)?)?),
            2 if wire_type == WireType::Varint => txn.succeeded = decode_varint(&mut buf)? != 0,
            3 => txn
                .responses
                .push(response_op(delimited(wire_type, &mut buf)?, depth)?),
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(txn)
}

fn response_op(mut buf: Bytes, depth: usize) -> Result<ResponseOp> {
    use response_op::Response as R;
    let mut op = ResponseOp::default();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        op.response = Some(match tag {
            1 => R::ResponseRange(RangeResponse::decode(delimited(wire_type, &mut buf)?)?),
            2 => R::ResponsePut(PutResponse::decode(delimited(wire_type, &mut buf)?)?),
            3 => R::ResponseDeleteRange(DeleteRangeResponse::decode(delimited(
                wire_type, &mut buf,
            )?)?),
            4 => R::ResponseTxn(txn_response(delimited(wire_type, &mut buf)?, depth + 1)?),
            _ => {
                skip(wire_type, tag, &mut buf)?;
                continue;
            }
        });
    }
    Ok(op)
}

/// The bytes of a length-delimited field (a sub-message), without copying them.
pub(super) fn delimited(wire_type: WireType, buf: &mut Bytes) -> Result<Bytes> {
    if wire_type != WireType::LengthDelimited {
        return Err(NestedError::Malformed(format!(
            "a message field with wire type {wire_type:?}"
        )));
    }
    let len = decode_varint(buf)?;
    if len > buf.remaining() as u64 {
        return Err(NestedError::Malformed(
            "a field longer than its message".into(),
        ));
    }
    Ok(buf.split_to(len as usize))
}

/// Skips a field we do not know, as protobuf requires (a newer sender may add fields).
/// prost's own skipping bounds nested groups by its recursion limit.
pub(super) fn skip(wire_type: WireType, tag: u32, buf: &mut Bytes) -> Result<()> {
    Ok(skip_field(wire_type, tag, buf, DecodeContext::default())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transaction nested `depth` deep (`depth` TxnRequests), with one put innermost.
    pub fn nested(depth: usize) -> TxnRequest {
        let mut txn = TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: b"deep".to_vec(),
                    value: b"v".to_vec(),
                    ..Default::default()
                })),
            }],
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
        txn
    }

    #[test]
    fn decodes_what_prost_would_and_deeper() {
        for depth in [1, 2, 50, 51, MAX_TXN_DEPTH] {
            let txn = nested(depth);
            let bytes = Bytes::from(txn.encode_to_vec());
            assert_eq!(
                decode_txn_request(bytes.clone()),
                Ok(txn.clone()),
                "{depth}"
            );
            if depth <= 50 {
                assert_eq!(TxnRequest::decode(bytes).unwrap(), txn);
            } else {
                assert!(TxnRequest::decode(bytes).is_err(), "prost's limit");
            }
        }
        assert_eq!(
            decode_txn_request(Bytes::from(nested(MAX_TXN_DEPTH + 1).encode_to_vec())),
            Err(NestedError::TooDeep)
        );
    }

    /// However deep the bytes nest, decoding stops at etcd's depth: the stack is never
    /// at the mercy of the sender. (The bytes are built directly: a `TxnRequest` this
    /// deep could not even be dropped without overflowing the stack.)
    #[test]
    fn a_hundred_thousand_levels_stop_at_etcds_depth() {
        // Built back to front, each level wrapping everything after it:
        // TxnRequest { success: [RequestOp { request_txn: ... }] }.
        let mut back_to_front: Vec<u8> = Vec::new();
        for _ in 0..100_000 {
            let txn_len = back_to_front.len();
            back_to_front.extend(varint(txn_len).iter().rev());
            back_to_front.push(0x22); // RequestOp.request_txn
            let op_len = back_to_front.len();
            back_to_front.extend(varint(op_len).iter().rev());
            back_to_front.push(0x12); // TxnRequest.success
        }
        back_to_front.reverse();
        let bytes = Bytes::from(back_to_front);
        assert_eq!(decode_txn_request(bytes.clone()), Err(NestedError::TooDeep));
        assert!(TxnRequest::decode(bytes).is_err(), "prost refuses it too");
    }

    fn varint(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    }

    #[test]
    fn responses_too() {
        let mut response = TxnResponse {
            succeeded: true,
            ..Default::default()
        };
        for _ in 1..MAX_TXN_DEPTH {
            response = TxnResponse {
                header: Some(ResponseHeader {
                    revision: 7,
                    ..Default::default()
                }),
                succeeded: true,
                responses: vec![ResponseOp {
                    response: Some(response_op::Response::ResponseTxn(response)),
                }],
            };
        }
        let bytes = Bytes::from(response.encode_to_vec());
        assert_eq!(decode_txn_response(bytes), Ok(response));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = nested(3).encode_to_vec();
        for cut in 0..good.len() {
            let _ = decode_txn_request(Bytes::copy_from_slice(&good[..cut]));
        }
        for bad in [
            &b"\x12\xff\xff\xff\xff\x0f"[..],
            b"\x12\x05\x22",
            b"\x10\x01",
            b"\x0b",
        ] {
            assert!(
                matches!(
                    decode_txn_request(Bytes::copy_from_slice(bad)),
                    Err(NestedError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // A million nested groups in an unknown field: refused by prost's limit.
        let groups: Vec<u8> = std::iter::repeat_n(0x7bu8, 1 << 20).collect(); // field 15, start group
        assert!(decode_txn_request(Bytes::from(groups)).is_err());
    }
}
