//! The apiserver's only door to etcd: a handful of operations on keys under
//! `/registry`, built from the kvstore client's Range, Txn and Watch.
//!
//! Two ideas carry the whole API:
//! - an object's `resourceVersion` is its key's etcd `mod_revision`, and a list's is the
//!   revision the range was read at;
//! - every write is a transaction guarded by a comparison, so "create only if absent"
//!   and "update only if nobody changed it since I read it" are atomic in etcd.

use std::time::Duration;

use kvstore::client::{Client, ClientConfig};
use kvstore::proto::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest, WatchCreateRequest, WatchResponse,
};
use kvstore::request::prefix_end;

use crate::error::Result;

/// One stored object: its key, JSON bytes and the revision it was last written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    /// The revision the page was read at.
    pub revision: i64,
    /// More keys follow the last item.
    pub more: bool,
}

/// The outcome of a guarded write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written at this revision.
    Done(i64),
    /// The guard failed: the key existed (create) or changed (update, delete).
    Refused,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
}

impl Store {
    /// A store over etcd members, like `--etcd-servers=http://a:2379,http://b:2379`.
    /// Connections to the members are dialed through `host`'s network.
    pub fn new(endpoints: Vec<String>, timeout: Duration, host: &seams::Host) -> Result<Self> {
        let mut config = ClientConfig::new(endpoints);
        config.timeout = timeout;
        config.network = host.network.clone();
        Ok(Store {
            client: Client::new(config)?,
        })
    }

    /// A linearizable read of one key.
    pub async fn get(&self, key: &str) -> Result<Option<Item>> {
        let response = self
            .client
            .range(RangeRequest {
                key: key.as_bytes().to_vec(),
                ..RangeRequest::default()
            })
            .await?;
        Ok(response.kvs.into_iter().next().map(|kv| Item {
            key: String::from_utf8_lossy(&kv.key).into_owned(),
            value: kv.value,
            mod_revision: kv.mod_revision,
        }))
    }

    /// Keys from `start` (inclusive) up to the end of `prefix`, at `revision` (0 = now),
    /// at most `limit` of them (0 = all).
    pub async fn list(&self, prefix: &str, start: &str, revision: i64, limit: i64) -> Result<Page> {
        let response = self
            .client
            .range(RangeRequest {
                key: start.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                revision,
                limit,
                ..RangeRequest::default()
            })
            .await?;
        let revision = response.header.map(|h| h.revision).unwrap_or_default();
        let items = response
            .kvs
            .into_iter()
            .map(|kv| Item {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                value: kv.value,
                mod_revision: kv.mod_revision,
            })
            .collect();
        Ok(Page {
            items,
            revision,
            more: response.more,
        })
    }

    /// Writes `value` if `key` does not exist.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<Write> {
        let guard = Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: key.as_bytes().to_vec(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Compare::default()
        };
        self.guarded_put(guard, key, value).await
    }

    /// Writes `value` if `key` is still at `mod_revision`.
    pub async fn update(&self, key: &str, value: Vec<u8>, mod_revision: i64) -> Result<Write> {
        self.guarded_put(unchanged(key, mod_revision), key, value)
            .await
    }

    /// Deletes `key` if it is still at `mod_revision`.
    pub async fn delete(&self, key: &str, mod_revision: i64) -> Result<Write> {
        let op = request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..DeleteRangeRequest::default()
        });
        self.txn(unchanged(key, mod_revision), op).await
    }

    async fn guarded_put(&self, guard: Compare, key: &str, value: Vec<u8>) -> Result<Write> {
        let op = request_op::Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
            ..PutRequest::default()
        });
        self.txn(guard, op).await
    }

    async fn txn(&self, guard: Compare, op: request_op::Request) -> Result<Write> {
        let response = self
            .client
            .txn(TxnRequest {
                compare: vec![guard],
                success: vec![RequestOp { request: Some(op) }],
                failure: vec![],
            })
            .await?;
        if !response.succeeded {
            return Ok(Write::Refused);
        }
        let revision = response.header.map(|h| h.revision).unwrap_or_default();
        Ok(Write::Done(revision))
    }

    /// Watches every key under `prefix` from `start_revision` (inclusive), with each
    /// event's previous value.
    pub async fn watch(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<tonic::Streaming<WatchResponse>> {
        Ok(self
            .client
            .watch(WatchCreateRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                start_revision,
                prev_kv: true,
                ..WatchCreateRequest::default()
            })
            .await?)
    }

    /// What kube-apiserver's etcd health check does: a quorum read.
    pub async fn health(&self) -> Result<()> {
        self.get("health").await.map(|_| ())
    }
}

fn unchanged(key: &str, mod_revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Mod as i32,
        key: key.as_bytes().to_vec(),
        target_union: Some(compare::TargetUnion::ModRevision(mod_revision)),
        ..Compare::default()
    }
}
