//! The gRPC codec of every etcd service, server and client side: prost, except that
//! nested transactions are decoded by [`crate::request::nested`].
//!
//! tonic turns each gRPC message into a Rust value with a *codec*; the generated
//! services (`src/proto/generated/`, made by `tests/generated.rs`) use this one. It is
//! prost's own encoding and decoding, with one exception: a `TxnRequest` (and the
//! `TxnResponse` a client reads back) may nest deeper than prost's recursion limit allows, up to the depth etcd
//! accepts, and a deeper one is refused as etcd refuses it — `etcdserver: too many
//! operations in txn request` — not as a decoding failure. Why that matters is told in
//! [`crate::request::nested`].
//!
//! tonic asks for one codec type for all messages, so the exception is made by type:
//! [`decode`] checks whether the message it is asked for is one of the two nested
//! kinds (a `TypeId` comparison, decided at compile time in practice).

use std::any::{Any, TypeId};
use std::marker::PhantomData;

use bytes::Buf;
use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

use crate::proto::etcdserverpb::{TxnRequest, TxnResponse};
use crate::request::nested::{self, NestedError};
use crate::server::grpc::to_status;

/// prost for every message, with nested transactions decoded to etcd's depth.
#[derive(Debug, Clone)]
pub struct EtcdCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for EtcdCodec<T, U> {
    fn default() -> Self {
        EtcdCodec(PhantomData)
    }
}

impl<T, U> Codec for EtcdCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = EtcdDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        EtcdDecoder(PhantomData)
    }
}

/// The decoding half of [`EtcdCodec`].
#[derive(Debug, Clone)]
pub struct EtcdDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for EtcdDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode(buf).map(Some)
    }
}

/// Decodes one message of type `U`.
pub fn decode<U: Message + Default + 'static>(buf: &mut impl Buf) -> Result<U, Status> {
    let nested = if TypeId::of::<U>() == TypeId::of::<TxnRequest>() {
        boxed(nested::decode_txn_request(
            buf.copy_to_bytes(buf.remaining()),
        ))
    } else if TypeId::of::<U>() == TypeId::of::<TxnResponse>() {
        boxed(nested::decode_txn_response(
            buf.copy_to_bytes(buf.remaining()),
        ))
    } else {
        return U::decode(buf).map_err(malformed);
    };
    let value = nested.map_err(|e| match e {
        NestedError::TooDeep => to_status(crate::Error::TooManyOps),
        NestedError::Malformed(why) => malformed(why),
    })?;
    value
        .downcast::<U>()
        .map(|value| *value)
        .map_err(|_| Status::internal("kvstore: codec type mismatch"))
}

fn boxed<M: Any>(result: Result<M, NestedError>) -> Result<Box<dyn Any>, NestedError> {
    result.map(|m| Box::new(m) as Box<dyn Any>)
}

/// What grpc-go answers for a message it cannot unmarshal.
fn malformed(why: impl std::fmt::Display) -> Status {
    Status::internal(format!("grpc: error unmarshalling request: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{request_op, PutRequest, RequestOp};

    #[test]
    fn nested_transactions_decode_past_prosts_limit_and_others_as_prost() {
        let mut txn = TxnRequest::default();
        for _ in 0..100 {
            txn = TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(txn)),
                }],
                ..Default::default()
            };
        }
        let bytes = txn.encode_to_vec();
        assert_eq!(decode::<TxnRequest>(&mut bytes.as_slice()).unwrap(), txn);
        let put = PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        let bytes = put.encode_to_vec();
        assert_eq!(decode::<PutRequest>(&mut bytes.as_slice()).unwrap(), put);
        let status = decode::<PutRequest>(&mut &b"\x0a\x05k"[..]).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    #[test]
    fn too_deep_is_too_many_operations() {
        let mut txn = TxnRequest::default();
        for _ in 0..1000 {
            txn = TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestTxn(txn)),
                }],
                ..Default::default()
            };
        }
        let bytes = txn.encode_to_vec();
        let status = decode::<TxnRequest>(&mut bytes.as_slice()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "etcdserver: too many operations in txn request"
        );
    }
}
