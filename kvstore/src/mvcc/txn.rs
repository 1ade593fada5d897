//! Writes and transactions: everything that changes the store goes through a [`Tx`].
//!
//! A transaction `if <compares> then <ops> else <ops>` runs *atomically at one
//! revision*: its compares look at the store as it was when the transaction started,
//! its operations run in order, each seeing the writes of the ones before it, and all
//! its changes share the next revision (with sub-revisions 0, 1, 2...). A plain put or
//! delete is the same thing with no compares and one operation.
//!
//! Atomicity comes from staging: a [`Tx`] reads through the store but keeps its own
//! writes aside, as a list of [`Change`]s. Only if every operation succeeds does
//! [`super::MvccStore::apply`] commit them; if one fails (a put with `ignore_value` on
//! a missing key, a read of a compacted revision), the changes are dropped and the store
//! never saw them.
//!
//! Kubernetes uses exactly one shape of transaction for every update: "if
//! mod_revision(key) == the resourceVersion I read, then put key=new object, else get
//! key" — optimistic concurrency, and the source of `409 Conflict`.

use std::collections::BTreeMap;

use super::{key_in_range, range_reads_values, shape_range, MvccStore};
use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op, response_op, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;
use crate::request::{Request, Response};

/// One staged change: `kv` is the new version, or `None` for a delete.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub key: Vec<u8>,
    pub kv: Option<KeyValue>,
    /// The lease of the version it replaces (0: none), which the key leaves.
    pub prev_lease: i64,
}

/// A write in progress: reads see the store plus this transaction's own writes.
pub(super) struct Tx<'a> {
    store: &'a MvccStore,
    /// The revision the changes will get if they commit.
    main: i64,
    changes: Vec<Change>,
    /// The latest staged state of each written key (`None`: deleted).
    staged: BTreeMap<Vec<u8>, Option<KeyValue>>,
}

impl<'a> Tx<'a> {
    pub fn new(store: &'a MvccStore) -> Self {
        Tx {
            store,
            main: store.current_revision() + 1,
            changes: Vec::new(),
            staged: BTreeMap::new(),
        }
    }

    /// The staged changes, in the order they were made.
    pub fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    /// Runs a write request (put, delete, or transaction).
    pub fn execute(&mut self, req: &Request) -> Result<Response> {
        match req {
            Request::Put(p) => self.put(p).map(Response::Put),
            Request::DeleteRange(d) => self.delete_range(d).map(Response::DeleteRange),
            Request::Txn(t) => self.txn(t).map(Response::Txn),
            Request::Range(r) => self.range(r).map(Response::Range),
            _ => unreachable!("only puts, deletes, transactions and ranges run in a Tx"),
        }
    }

    /// The current version of `key`, as this transaction sees it; its value only if
    /// `with_value` (see `MvccStore::visible_as`: the value may be a disk read).
    fn get(&self, key: &[u8], with_value: bool) -> Option<KeyValue> {
        match self.staged.get(key) {
            Some(staged) => staged.clone(),
            None => self
                .store
                .visible_as(key, self.store.current_revision(), with_value),
        }
    }

    /// The current versions of every key in a range, as this transaction sees them;
    /// values only if `with_value`.
    fn scan(&self, key: &[u8], range_end: &[u8], with_value: bool) -> Vec<KeyValue> {
        let now = self.store.current_revision();
        let mut found: BTreeMap<Vec<u8>, KeyValue> = self
            .store
            .keys_in_range(key, range_end)
            .filter_map(|k| {
                let kv = self.store.visible_as(k, now, with_value)?;
                Some((k.clone(), kv))
            })
            .collect();
        for (k, staged) in &self.staged {
            if key_in_range(k, key, range_end) {
                match staged {
                    Some(kv) => found.insert(k.clone(), kv.clone()),
                    None => found.remove(k),
                };
            }
        }
        found.into_values().collect()
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        if req.revision > 0 {
            return self.store.range(req); // a read of the past: own writes are not there
        }
        let with_values = range_reads_values(req);
        Ok(shape_range(
            self.scan(&req.key, &req.range_end, with_values),
            req,
        ))
    }

    fn stage(&mut self, key: Vec<u8>, kv: Option<KeyValue>, prev: Option<&KeyValue>) {
        self.staged.insert(key.clone(), kv.clone());
        let prev_lease = prev.map_or(0, |p| p.lease);
        self.changes.push(Change {
            key,
            kv,
            prev_lease,
        });
    }

    fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        // The old value is read only if this put returns or keeps it.
        let prev = self.get(&req.key, req.prev_kv || req.ignore_value);
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(Error::KeyNotFound);
        }
        if req.lease != 0 && !self.store.lease_exists(req.lease) {
            return Err(Error::LeaseNotFound);
        }
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let value = match (&prev, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let kv = KeyValue {
            key: req.key.clone(),
            // A key that is absent starts a new life at this revision.
            create_revision: prev.as_ref().map_or(self.main, |p| p.create_revision),
            mod_revision: self.main,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        self.stage(req.key.clone(), Some(kv), prev.as_ref());
        Ok(PutResponse {
            header: None,
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    /// Deletes one key if it exists (a lease's keys when it ends).
    pub fn delete_key(&mut self, key: &[u8]) {
        if let Some(kv) = self.get(key, false) {
            self.stage(key.to_vec(), None, Some(&kv));
        }
    }

    fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let doomed = self.scan(&req.key, &req.range_end, req.prev_kv);
        let deleted = doomed.len() as i64;
        for kv in &doomed {
            self.stage(kv.key.clone(), None, Some(kv));
        }
        Ok(DeleteRangeResponse {
            header: None,
            deleted,
            prev_kvs: if req.prev_kv { doomed } else { vec![] },
        })
    }

    fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse> {
        let succeeded = req.compare.iter().all(|c| self.compare(c));
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    response_op::Response::ResponseRange(self.range(r)?)
                }
                Some(request_op::Request::RequestPut(p)) => {
                    response_op::Response::ResponsePut(self.put(p)?)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    response_op::Response::ResponseDeleteRange(self.delete_range(d)?)
                }
                Some(request_op::Request::RequestTxn(t)) => {
                    response_op::Response::ResponseTxn(self.txn(t)?)
                }
                None => return Err(Error::EmptyKey),
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(TxnResponse {
            header: None,
            succeeded,
            responses,
        })
    }

    /// etcd's compare: every key in the range must satisfy it. A missing key compares
    /// as a zero `KeyValue` (version 0, revisions 0) — except on its value, which a
    /// missing key never matches.
    fn compare(&self, c: &Compare) -> bool {
        let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
        let kvs = self.scan(&c.key, &c.range_end, target == CompareTarget::Value);
        if kvs.is_empty() {
            return target != CompareTarget::Value && compare_kv(c, target, &KeyValue::default());
        }
        kvs.iter().all(|kv| compare_kv(c, target, kv))
    }
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    // Each target reads its own field of the union; a mismatched field counts as zero,
    // as in etcd.
    let want = |field: Option<i64>| field.unwrap_or(0);
    let u = c.target_union.as_ref();
    let ordering = match target {
        CompareTarget::Value => {
            let v = match u {
                Some(TargetUnion::Value(v)) => v.as_slice(),
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Version => kv.version.cmp(&want(match u {
            Some(TargetUnion::Version(n)) => Some(*n),
            _ => None,
        })),
        CompareTarget::Create => kv.create_revision.cmp(&want(match u {
            Some(TargetUnion::CreateRevision(n)) => Some(*n),
            _ => None,
        })),
        CompareTarget::Mod => kv.mod_revision.cmp(&want(match u {
            Some(TargetUnion::ModRevision(n)) => Some(*n),
            _ => None,
        })),
        CompareTarget::Lease => kv.lease.cmp(&want(match u {
            Some(TargetUnion::Lease(n)) => Some(*n),
            _ => None,
        })),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ordering.is_eq(),
        CompareResult::NotEqual => ordering.is_ne(),
        CompareResult::Greater => ordering.is_gt(),
        CompareResult::Less => ordering.is_lt(),
    }
}
