//! The protobuf messages, generated from `kvstore/proto/` and checked in under
//! `src/proto/generated/` (`tests/generated.rs` fails when they are stale, and
//! `UPDATE_GENERATED=1 cargo test -p kvstore --test generated` rewrites them).
//!
//! `mvccpb` is etcd's data model (`KeyValue`, `Event`); `etcdserverpb` holds the
//! requests and responses of the KV API and `InternalRaftRequest`, the payload of one
//! Raft log entry. Names and field numbers are etcd's, so the same bytes mean the same
//! thing to the real `etcdctl`.

#![allow(missing_docs, clippy::all, rustdoc::all)]

/// etcd's MVCC data model: `KeyValue` and `Event`.
pub mod mvccpb {
    include!("proto/generated/mvccpb.rs");
}

/// etcd's KV requests and responses, and the Raft entry payload.
pub mod etcdserverpb {
    include!("proto/generated/etcdserverpb.rs");
}
