use std::collections::BTreeMap;

use super::*;
use crate::proto::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, DeleteRangeResponse, PutRequest, RequestOp,
    TxnRequest,
};
use crate::request::prefix_end;

fn put(store: &mut MvccStore, key: &str, value: &str) -> (Response, Vec<Event>) {
    let (r, events) = store.apply(&Request::put(key, value));
    (r.expect("put succeeds"), events)
}

fn get_at(store: &MvccStore, key: &str, revision: i64) -> Result<Option<KeyValue>> {
    let r = store.range(&RangeRequest {
        key: key.into(),
        revision,
        ..Default::default()
    })?;
    Ok(r.kvs.into_iter().next())
}

fn get(store: &MvccStore, key: &str) -> Option<KeyValue> {
    get_at(store, key, 0).unwrap()
}

fn range(store: &MvccStore, req: RangeRequest) -> RangeResponse {
    store.range(&req).unwrap()
}

fn keys(r: &RangeResponse) -> Vec<String> {
    r.kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn op_get(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

fn cmp(
    key: &str,
    target: compare::CompareTarget,
    result: compare::CompareResult,
    u: compare::TargetUnion,
) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        target_union: Some(u),
        range_end: vec![],
    }
}

#[test]
fn revisions_start_at_one_and_the_first_put_gets_two() {
    let mut s = MvccStore::new();
    assert_eq!(s.current_revision(), 1);
    put(&mut s, "foo", "a");
    assert_eq!(s.current_revision(), 2);
    assert_eq!(get(&s, "foo").unwrap().mod_revision, 2);
}

#[test]
fn create_mod_version_through_put_put_delete_put() {
    let mut s = MvccStore::new();
    put(&mut s, "foo", "a");
    put(&mut s, "foo", "b");
    let kv = get(&s, "foo").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    let (r, events) = s.apply(&Request::delete("foo"));
    let Ok(Response::DeleteRange(d)) = r else {
        panic!("delete failed")
    };
    assert_eq!(d.deleted, 1);
    assert_eq!(events[0].r#type, EventType::Delete as i32);
    assert_eq!(events[0].kv.as_ref().unwrap().mod_revision, 4);
    let deleted = events[0].kv.as_ref().unwrap();
    assert_eq!(s.version_before(deleted).unwrap().value, b"b");
    assert!(get(&s, "foo").is_none());
    put(&mut s, "foo", "c");
    let kv = get(&s, "foo").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn prev_kv_on_put_and_delete() {
    let mut s = MvccStore::new();
    put(&mut s, "k", "1");
    let (r, events) = s.apply(&Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"2".to_vec(),
        prev_kv: true,
        ..Default::default()
    }));
    let Ok(Response::Put(p)) = r else { panic!() };
    assert_eq!(p.prev_kv.unwrap().value, b"1");
    assert!(events[0].prev_kv.is_none(), "a watch that asks looks it up");
    let replaced = s.version_before(events[0].kv.as_ref().unwrap()).unwrap();
    assert_eq!(
        (replaced.value.as_slice(), replaced.mod_revision),
        (&b"1"[..], 2)
    );
    let (r, _) = s.apply(&Request::DeleteRange(DeleteRangeRequest {
        key: b"k".to_vec(),
        prev_kv: true,
        ..Default::default()
    }));
    let Ok(Response::DeleteRange(d)) = r else {
        panic!()
    };
    assert_eq!(d.prev_kvs[0].value, b"2");
}

#[test]
fn deleting_nothing_does_not_bump_the_revision() {
    let mut s = MvccStore::new();
    put(&mut s, "a", "1");
    let (r, events) = s.apply(&Request::delete("missing"));
    assert!(matches!(
        r,
        Ok(Response::DeleteRange(DeleteRangeResponse {
            deleted: 0,
            ..
        }))
    ));
    assert!(events.is_empty());
    assert_eq!(s.current_revision(), 2);
}

#[test]
fn prefix_from_key_and_all_key_ranges() {
    let mut s = MvccStore::new();
    for k in [
        "/registry/pods/default/a",
        "/registry/minions/node1",
        "/registrz",
        "/other",
    ] {
        put(&mut s, k, "x");
    }
    let prefix = range(
        &s,
        RangeRequest {
            key: b"/registry".to_vec(),
            range_end: prefix_end(b"/registry"),
            ..Default::default()
        },
    );
    assert_eq!(
        keys(&prefix),
        ["/registry/minions/node1", "/registry/pods/default/a"]
    );
    let from = range(
        &s,
        RangeRequest {
            key: b"/registrz".to_vec(),
            range_end: vec![0],
            ..Default::default()
        },
    );
    assert_eq!(keys(&from), ["/registrz"]);
    let all = range(
        &s,
        RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        },
    );
    assert_eq!(all.count, 4);
    let backwards = range(
        &s,
        RangeRequest {
            key: b"z".to_vec(),
            range_end: b"a".to_vec(),
            ..Default::default()
        },
    );
    assert_eq!(backwards.count, 0);
}

#[test]
fn limit_more_count_keys_only_count_only() {
    let mut s = MvccStore::new();
    for k in ["a", "b", "c"] {
        put(&mut s, k, "value");
    }
    let all = |f: fn(&mut RangeRequest)| {
        let mut r = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            ..Default::default()
        };
        f(&mut r);
        range(&s, r)
    };
    let limited = all(|r| r.limit = 2);
    assert_eq!(
        (keys(&limited), limited.more, limited.count),
        (vec!["a".into(), "b".into()], true, 3)
    );
    let exact = all(|r| r.limit = 3);
    assert!(!exact.more);
    let keys_only = all(|r| r.keys_only = true);
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
    let count_only = all(|r| r.count_only = true);
    assert_eq!((count_only.kvs.len(), count_only.count), (0, 3));
    let counted = all(|r| {
        r.count_only = true;
        r.limit = 1;
    });
    assert!(
        !counted.more,
        "etcd: a count-only answer is never cut short"
    );
}

#[test]
fn sort_and_revision_filters() {
    let mut s = MvccStore::new();
    put(&mut s, "b", "1"); // rev 2
    put(&mut s, "a", "1"); // rev 3
    put(&mut s, "c", "1"); // rev 4
    let mut req = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        ..Default::default()
    };
    assert_eq!(keys(&range(&s, req.clone())), ["c", "a", "b"]);
    // A target without an order sorts ascending, as etcd does.
    req.sort_order = 0;
    assert_eq!(keys(&range(&s, req.clone())), ["b", "a", "c"]);
    req.min_mod_revision = 3;
    req.max_mod_revision = 3;
    let filtered = range(&s, req);
    assert_eq!((keys(&filtered), filtered.count), (vec!["a".into()], 3));
}

use crate::proto::etcdserverpb::range_request;

#[test]
fn old_revisions_stay_readable_and_future_ones_are_refused() {
    let mut s = MvccStore::new();
    put(&mut s, "k", "v2");
    put(&mut s, "k", "v3");
    s.apply(&Request::delete("k")).0.unwrap();
    assert_eq!(get_at(&s, "k", 2).unwrap().unwrap().value, b"v2");
    assert_eq!(get_at(&s, "k", 3).unwrap().unwrap().value, b"v3");
    assert_eq!(get_at(&s, "k", 4).unwrap(), None);
    assert_eq!(get_at(&s, "k", 1).unwrap(), None);
    assert_eq!(get_at(&s, "k", 5), Err(Error::FutureRevision));
}

#[test]
fn compaction_forgets_the_past_but_keeps_the_compact_revision() {
    let mut s = MvccStore::new();
    put(&mut s, "a", "1"); // 2
    put(&mut s, "a", "2"); // 3
    put(&mut s, "b", "1"); // 4
    s.apply(&Request::delete("b")).0.unwrap(); // 5
    put(&mut s, "a", "3"); // 6
    let (r, events) = s.apply(&Request::compact(5));
    assert!(r.is_ok() && events.is_empty());
    assert_eq!(s.compact_revision(), 5);
    assert_eq!(
        get_at(&s, "a", 4),
        Err(Error::Compacted {
            compact_revision: 5
        })
    );
    assert_eq!(get_at(&s, "a", 5).unwrap().unwrap().value, b"2");
    assert_eq!(get_at(&s, "b", 5).unwrap(), None);
    assert_eq!(get(&s, "a").unwrap().value, b"3");
    assert_eq!(
        s.apply(&Request::compact(5)).0,
        Err(Error::Compacted {
            compact_revision: 5
        })
    );
    assert_eq!(s.apply(&Request::compact(7)).0, Err(Error::FutureRevision));
    // History from the compact revision on is complete (the delete at 5 included).
    let events = s.events_since(5).unwrap();
    let revs: Vec<i64> = events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().mod_revision)
        .collect();
    assert_eq!(revs, [5, 6]);
    assert_eq!(events[0].r#type, EventType::Delete as i32);
    assert_eq!(
        s.events_since(4),
        Err(Error::Compacted {
            compact_revision: 5
        })
    );
    // A tombstone older than the compaction point is gone with its key.
    let (r, _) = s.apply(&Request::compact(6));
    assert!(r.is_ok());
    assert!(!s.index.contains_key(b"b".as_slice()));
    assert_eq!(s.key_count(), 1);
}

#[test]
fn events_since_replays_history_and_each_version_before_it() {
    let mut s = MvccStore::new();
    put(&mut s, "a", "1");
    put(&mut s, "a", "2");
    put(&mut s, "a", "3");
    let events = s.events_since(2).unwrap();
    assert_eq!(events.len(), 3);
    let before = |i: usize| s.version_before(events[i].kv.as_ref().unwrap());
    assert!(
        before(0).is_none(),
        "the key's first version replaced nothing"
    );
    assert_eq!(before(1).unwrap().value, b"1");
    assert_eq!(
        before(2).unwrap().value,
        b"2",
        "the one just before, not the first"
    );
    assert!(s.events_since(10).unwrap().is_empty());
}

#[test]
fn txn_takes_one_revision_with_increasing_sub_revisions() {
    let mut s = MvccStore::new();
    let (r, events) = s.apply(&Request::Txn(TxnRequest {
        compare: vec![],
        success: vec![op_put("a", "1"), op_put("b", "1"), op_get("a")],
        failure: vec![],
    }));
    let Ok(Response::Txn(t)) = r else {
        panic!("{r:?}")
    };
    assert!(t.succeeded);
    assert_eq!(s.current_revision(), 2);
    assert_eq!(events.len(), 2);
    assert!(events
        .iter()
        .all(|e| e.kv.as_ref().unwrap().mod_revision == 2));
    assert_eq!(
        s.revs.keys().map(|r| (r.main, r.sub)).collect::<Vec<_>>(),
        [(2, 0), (2, 1)]
    );
    // The read inside the txn saw the txn's own write.
    let Some(response_op::Response::ResponseRange(read)) = &t.responses[2].response else {
        panic!()
    };
    assert_eq!(read.kvs[0].value, b"1");
}

use crate::proto::etcdserverpb::response_op;

#[test]
fn txn_compares_choose_the_branch() {
    use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let mut s = MvccStore::new();
    put(&mut s, "k", "v"); // rev 2
    let txn = |c: Compare| {
        Request::Txn(TxnRequest {
            compare: vec![c],
            success: vec![op_put("ok", "yes")],
            failure: vec![op_put("ok", "no")],
        })
    };
    let outcome = |s: &mut MvccStore, c| {
        let (r, _) = s.apply(&txn(c));
        let Ok(Response::Txn(t)) = r else { panic!() };
        t.succeeded
    };
    assert!(outcome(
        &mut s,
        cmp("k", T::Value, R::Equal, U::Value(b"v".to_vec()))
    ));
    assert!(!outcome(
        &mut s,
        cmp("k", T::Value, R::Equal, U::Value(b"w".to_vec()))
    ));
    assert!(outcome(
        &mut s,
        cmp("k", T::Version, R::Equal, U::Version(1))
    ));
    assert!(outcome(
        &mut s,
        cmp("k", T::Create, R::Equal, U::CreateRevision(2))
    ));
    assert!(outcome(
        &mut s,
        cmp("k", T::Mod, R::Less, U::ModRevision(3))
    ));
    assert!(outcome(
        &mut s,
        cmp("k", T::Mod, R::NotEqual, U::ModRevision(3))
    ));
    assert!(!outcome(
        &mut s,
        cmp("k", T::Version, R::Greater, U::Version(1))
    ));
    // A missing key: version/create/mod compare as 0; a value compare always fails.
    assert!(outcome(
        &mut s,
        cmp("missing", T::Version, R::Equal, U::Version(0))
    ));
    assert!(outcome(
        &mut s,
        cmp("missing", T::Mod, R::Equal, U::ModRevision(0))
    ));
    assert!(!outcome(
        &mut s,
        cmp("missing", T::Value, R::Equal, U::Value(vec![]))
    ));
    assert!(!outcome(
        &mut s,
        cmp("missing", T::Value, R::NotEqual, U::Value(b"x".to_vec()))
    ));
    assert_eq!(get(&s, "ok").unwrap().value, b"no");
}

#[test]
fn a_failing_op_leaves_the_store_unchanged() {
    let mut s = MvccStore::new();
    put(&mut s, "a", "1");
    let (before_rev, before) = (s.current_revision(), s.digest());
    let ignore_missing = RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: b"missing".to_vec(),
            ignore_value: true,
            ..Default::default()
        })),
    };
    let (r, events) = s.apply(&Request::Txn(TxnRequest {
        compare: vec![],
        success: vec![op_put("a", "2"), ignore_missing],
        failure: vec![],
    }));
    assert_eq!(r, Err(Error::KeyNotFound));
    assert!(events.is_empty());
    assert_eq!((s.current_revision(), s.digest()), (before_rev, before));
    assert_eq!(get(&s, "a").unwrap().value, b"1");
}

#[test]
fn ignore_value_keeps_the_value() {
    let mut s = MvccStore::new();
    put(&mut s, "a", "1");
    let (r, _) = s.apply(&Request::Put(PutRequest {
        key: b"a".to_vec(),
        ignore_value: true,
        ..Default::default()
    }));
    assert!(r.is_ok());
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (b"1".as_slice(), 2));
}

#[test]
fn digest_follows_the_state() {
    let (mut a, mut b) = (MvccStore::new(), MvccStore::new());
    for s in [&mut a, &mut b] {
        put(s, "x", "1");
        put(s, "y", "2");
    }
    assert_eq!(a.digest(), b.digest());
    put(&mut a, "x", "changed");
    put(&mut b, "x", "other");
    assert_ne!(a.digest(), b.digest());
    assert_eq!(a.key_count(), 2);
}

#[test]
fn a_store_restored_from_its_mutations_is_the_same_store() {
    let mut s = MvccStore::new();
    put(&mut s, "a", "1");
    put(&mut s, "b", "1");
    s.apply(&Request::delete("a")).0.unwrap();
    put(&mut s, "a", "2");
    s.apply(&Request::compact(3)).0.unwrap();
    // Replay the mutations the way a storage backend would.
    let mut revs = BTreeMap::new();
    let mut compacted = 0;
    for m in s.take_mutations() {
        match m {
            Mutation::Put {
                revision,
                kv,
                tombstone,
            } => {
                revs.insert(revision, (kv, tombstone));
            }
            Mutation::Remove(revision) => {
                revs.remove(&revision);
            }
            Mutation::Compacted(at) => compacted = at,
            Mutation::LeaseGranted { .. } | Mutation::LeaseRevoked(_) => {}
        }
    }
    assert!(s.take_mutations().is_empty());
    let restored = MvccStore::restore(revs.into_iter().map(|(r, (kv, t))| (r, kv, t)), compacted);
    assert_eq!(restored.digest(), s.digest());
    assert_eq!(restored.current_revision(), 5);
    assert_eq!(restored.compact_revision(), 3);
    assert_eq!(
        restored.events_since(3).unwrap(),
        s.events_since(3).unwrap()
    );
    assert_eq!(
        get_at(&restored, "a", 2),
        Err(Error::Compacted {
            compact_revision: 3
        })
    );
}

fn grant(store: &mut MvccStore, id: i64, ttl: i64) {
    let g = crate::proto::etcdserverpb::LeaseGrantRequest { id, ttl };
    store.apply(&Request::LeaseGrant(g)).0.unwrap();
}

fn put_leased(store: &mut MvccStore, key: &str, lease: i64) -> Result<Response> {
    store
        .apply(&Request::Put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        }))
        .0
}

#[test]
fn revoking_a_lease_deletes_its_keys_at_one_revision() {
    let mut s = MvccStore::new();
    grant(&mut s, 7, 60);
    put_leased(&mut s, "a", 7).unwrap();
    put_leased(&mut s, "b", 7).unwrap();
    put(&mut s, "c", "not leased");
    assert_eq!(get(&s, "a").unwrap().lease, 7);
    // A put without the lease detaches the key from it.
    put(&mut s, "b", "detached");
    let revoke = crate::proto::etcdserverpb::LeaseRevokeRequest { id: 7 };
    let (r, events) = s.apply(&Request::LeaseRevoke(revoke));
    assert!(r.is_ok());
    assert_eq!(events.len(), 1, "only a was still attached");
    assert_eq!(events[0].r#type, EventType::Delete as i32);
    assert!(get(&s, "a").is_none());
    assert_eq!(get(&s, "b").unwrap().value, b"detached");
    assert!(!s.lease_exists(7));
    assert_eq!(
        s.apply(&Request::LeaseRevoke(revoke)).0,
        Err(Error::LeaseNotFound)
    );
}

#[test]
fn lease_errors_are_refused_without_changing_anything() {
    let mut s = MvccStore::new();
    assert_eq!(put_leased(&mut s, "a", 9), Err(Error::LeaseNotFound));
    assert_eq!(s.current_revision(), 1);
    grant(&mut s, 9, 5);
    let again = crate::proto::etcdserverpb::LeaseGrantRequest { id: 9, ttl: 5 };
    assert_eq!(
        s.apply(&Request::LeaseGrant(again)).0,
        Err(Error::LeaseExists)
    );
    let ka = crate::proto::etcdserverpb::LeaseKeepAliveRequest { id: 10 };
    assert_eq!(
        s.apply(&Request::LeaseKeepAlive(ka)).0,
        Err(Error::LeaseNotFound)
    );
    let ttl = s.time_to_live(&crate::proto::etcdserverpb::LeaseTimeToLiveRequest {
        id: 10,
        keys: false,
    });
    assert_eq!(ttl.ttl, -1, "an unknown lease reads as expired, as in etcd");
}

#[test]
fn leases_survive_a_restore_with_their_keys() {
    let mut s = MvccStore::new();
    grant(&mut s, 3, 30);
    put_leased(&mut s, "k", 3).unwrap();
    let mut revs = BTreeMap::new();
    let mut leases = BTreeMap::new();
    for m in s.take_mutations() {
        match m {
            Mutation::Put {
                revision,
                kv,
                tombstone,
            } => {
                revs.insert(revision, (kv, tombstone));
            }
            Mutation::LeaseGranted { id, ttl } => {
                leases.insert(id, ttl);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut restored =
        MvccStore::restore(revs.into_iter().map(|(r, (kv, t))| (r, kv, t)), -1).with_leases(leases);
    assert_eq!(restored.digest(), s.digest());
    let revoke = crate::proto::etcdserverpb::LeaseRevokeRequest { id: 3 };
    let (_, events) = restored.apply(&Request::LeaseRevoke(revoke));
    assert_eq!(
        events.len(),
        1,
        "the attachment was re-derived from the keys"
    );
}

/// A disk for evicted values: what the store handed over, readable up to `written`.
#[derive(Debug, Default)]
struct ValueDisk {
    values: std::sync::Mutex<BTreeMap<Revision, Vec<u8>>>,
    written: std::sync::atomic::AtomicI64,
    reads: std::sync::atomic::AtomicUsize,
}

impl values::ValueSource for ValueDisk {
    fn written_through(&self) -> i64 {
        self.written.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn value(&self, revision: Revision) -> Option<Vec<u8>> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.values.lock().unwrap().get(&revision).cloned()
    }
}

impl ValueDisk {
    /// Hands the store's changes to this disk, then lets the store drop what it has.
    fn take_from(&self, store: &mut MvccStore) {
        for mutation in store.take_mutations() {
            let mut values = self.values.lock().unwrap();
            match mutation {
                Mutation::Put { revision, kv, .. } => {
                    values.insert(revision, kv.value);
                }
                Mutation::Remove(revision) => {
                    values.remove(&revision);
                }
                _ => {}
            }
        }
        let now = store.current_revision();
        self.written.store(now, std::sync::atomic::Ordering::SeqCst);
        store.evict_written();
    }

    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn writes_read_an_old_value_from_disk_only_when_they_return_or_compare_it() {
    let disk = std::sync::Arc::new(ValueDisk::default());
    let mut s = MvccStore::new();
    s.set_value_source(disk.clone());
    put(&mut s, "k", "1");
    disk.take_from(&mut s);
    // Overwriting, deleting and comparing revisions need the old version's numbers,
    // which stay in memory, not its value.
    put(&mut s, "k", "2");
    disk.take_from(&mut s);
    let guarded = TxnRequest {
        compare: vec![cmp(
            "k",
            compare::CompareTarget::Mod,
            compare::CompareResult::Equal,
            compare::TargetUnion::ModRevision(3),
        )],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: b"3".to_vec(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    let (r, _) = s.apply(&Request::Txn(guarded));
    let Ok(Response::Txn(t)) = r else { panic!() };
    assert!(t.succeeded, "the compare saw revision 3");
    disk.take_from(&mut s);
    let (r, _) = s.apply(&Request::delete("k"));
    assert!(r.is_ok());
    assert_eq!(disk.reads(), 0, "no old value was read");
    // A put that returns the old value reads it, once.
    put(&mut s, "k", "5");
    disk.take_from(&mut s);
    let (r, _) = s.apply(&Request::Put(PutRequest {
        key: b"k".to_vec(),
        value: b"6".to_vec(),
        prev_kv: true,
        ..Default::default()
    }));
    let Ok(Response::Put(p)) = r else { panic!() };
    assert_eq!(p.prev_kv.unwrap().value, b"5");
    assert_eq!(disk.reads(), 1);
}

#[test]
fn values_dropped_from_memory_read_back_the_same() {
    let disk = std::sync::Arc::new(ValueDisk::default());
    let mut lean = MvccStore::new();
    lean.set_value_source(disk.clone());
    let mut full = MvccStore::new();
    let with_prev = |key: &str, value: &str| {
        Request::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            prev_kv: true,
            ..Default::default()
        })
    };
    let requests = [
        Request::put("a", "1"),
        Request::put("b", "2"),
        with_prev("a", "3"),
        Request::delete("b"),
        Request::put("c", "4"),
        Request::compact(3),
        with_prev("c", "5"),
        Request::put("b", "6"),
        Request::get_prefix(""),
    ];
    for request in &requests {
        let expected = full.apply(request);
        assert_eq!(lean.apply(request), expected, "{request:?}");
        full.take_mutations();
        disk.take_from(&mut lean);
    }
    assert_eq!(lean.values_in_memory(), 0, "every value is on disk only");
    assert!(full.values_in_memory() > 0);
    for at in lean.compact_revision()..=lean.current_revision() {
        let all = RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: at,
            ..Default::default()
        };
        assert_eq!(lean.range(&all), full.range(&all), "at revision {at}");
    }
    let since = lean.compact_revision();
    let events = lean.events_since(since).unwrap();
    assert_eq!(events, full.events_since(since).unwrap());
    for kv in events.iter().filter_map(|e| e.kv.as_ref()) {
        assert_eq!(lean.version_before(kv), full.version_before(kv));
    }
    assert_eq!(lean.digest(), full.digest());
    assert!(lean.stored().eq(full.stored()));
    // A store that is never told about a disk keeps its values.
    full.evict_written();
    assert!(full.values_in_memory() > 0);
}
