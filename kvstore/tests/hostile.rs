//! No request crashes a member: what a hostile or careless client sends is answered
//! with etcd's error, or applied as etcd applies it, and the cluster keeps serving.
//!
//! Three real members on loopback, driven through the generated etcd client. Every
//! wait polls a condition with a deadline.

use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::kv_client::KvClient;
use kvstore::proto::etcdserverpb::{
    compare, lease_client::LeaseClient, request_op, watch_client::WatchClient, watch_request,
    CompactionRequest, Compare, LeaseGrantRequest, LeaseTimeToLiveRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
};
use tonic::Code;

mod support;
use support::{put_eventually, Cluster};

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

/// `depth` transactions one inside the other, the innermost putting `key`.
fn nested_txn(depth: usize, key: &str) -> TxnRequest {
    let mut txn = TxnRequest {
        success: vec![put_op(key, "deep")],
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

/// The value of `key` as member `id` has applied it, once it has (serializable reads,
/// polled until the deadline).
async fn value_on(cluster: &Cluster, id: u64, key: &str) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut kv = match KvClient::connect(cluster.endpoint(id)).await {
            Ok(kv) => kv,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("member {id} does not answer: {e}"),
        };
        let read = RangeRequest {
            key: key.into(),
            serializable: true,
            ..Default::default()
        };
        match kv.range(read).await {
            Ok(r) if !r.get_ref().kvs.is_empty() => {
                return Some(r.into_inner().kvs[0].value.clone());
            }
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => return None,
        }
    }
}

/// A transaction nested 50 deep once killed every member: it was accepted, replicated,
/// and then could not be decoded from the log, so every member's Raft thread panicked
/// applying it, and again after every restart. etcd applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_nested_50_deep_is_applied_by_every_member() {
    let mut cluster = Cluster::start(3).await;
    let mut kv = cluster.kv(1).await;
    put_eventually(&mut kv, "before", "1").await;
    let response = kv
        .txn(nested_txn(50, "deep50"))
        .await
        .expect("etcd applies depth 50");
    assert!(response.get_ref().succeeded);
    for id in 1..=3 {
        assert_eq!(
            value_on(&cluster, id, "deep50").await.as_deref(),
            Some(&b"deep"[..])
        );
    }
    // The cluster still writes, on every member, and a member that restarts replays
    // the entry from its log.
    put_eventually(&mut kv, "after", "2").await;
    cluster.restart(2).await;
    for id in 1..=3 {
        assert_eq!(
            value_on(&cluster, id, "after").await.as_deref(),
            Some(&b"2"[..])
        );
    }
    // As deep as etcd's operation count allows: 128 levels with a put innermost.
    let response = kv.txn(nested_txn(128, "deep128")).await.expect("depth 128");
    assert!(response.get_ref().succeeded);
    assert_eq!(
        value_on(&cluster, 3, "deep128").await.as_deref(),
        Some(&b"deep"[..])
    );
    cluster.stop_all().await;
}

/// Deeper or wider than `--max-txn-ops` allows is refused before it is proposed, with
/// etcd's error, however deep the nesting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_operations_are_counted_as_etcd_counts_them() {
    let mut cluster = Cluster::start(3).await;
    let mut kv = cluster.kv(1).await;
    put_eventually(&mut kv, "before", "1").await;
    for depth in [129, 1000] {
        let err = kv.txn(nested_txn(depth, "deep")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "depth {depth}: {err}");
        assert_eq!(
            err.message(),
            "etcdserver: too many operations in txn request"
        );
    }
    // 99 puts and a nested transaction leave it 28 operations; 29 is too many.
    let wide = |inner: usize| {
        let mut success: Vec<RequestOp> = (0..99).map(|i| put_op(&format!("p{i}"), "v")).collect();
        success.push(RequestOp {
            request: Some(request_op::Request::RequestTxn(TxnRequest {
                success: (0..inner).map(|i| put_op(&format!("c{i}"), "v")).collect(),
                ..Default::default()
            })),
        });
        TxnRequest {
            success,
            ..Default::default()
        }
    };
    assert!(kv.txn(wide(28)).await.is_ok());
    let err = kv.txn(wide(29)).await.unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: too many operations in txn request"
    );
    // An empty operation, as etcd answers it; and a put of one key in two places.
    let empty = TxnRequest {
        success: vec![RequestOp { request: None }],
        ..Default::default()
    };
    assert_eq!(
        kv.txn(empty).await.unwrap_err().message(),
        "etcdserver: key not found"
    );
    let twice = TxnRequest {
        compare: vec![Compare {
            key: b"before".to_vec(),
            target: compare::CompareTarget::Version as i32,
            target_union: Some(compare::TargetUnion::Version(0)),
            ..Default::default()
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    success: vec![put_op("k", "1")],
                    ..Default::default()
                })),
            },
            put_op("k", "2"),
        ],
        failure: vec![],
    };
    let err = kv.txn(twice).await.unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: duplicate key given in txn request"
    );
    put_eventually(&mut kv, "after", "2").await;
    cluster.stop_all().await;
}

/// etcd's size limits: a request whose log entry exceeds `--max-request-bytes` (1.5
/// MiB) is refused by the member, and a gRPC message over the limit plus 512 KiB is
/// refused by the gRPC server before it is decoded. Neither reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_larger_than_etcd_allows_are_refused() {
    let mut cluster = Cluster::start(3).await;
    let mut kv = cluster.kv(1).await;
    let revision = put_eventually(&mut kv, "before", "1").await;
    let big = |len: usize| PutRequest {
        key: b"big".to_vec(),
        value: vec![b'a'; len],
        ..Default::default()
    };
    let err = kv.put(big(1_600_000)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert_eq!(err.message(), "etcdserver: request is too large");
    let mut kv = kv.max_encoding_message_size(8 << 20);
    let err = kv.put(big(3_000_000)).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err}"
    );
    let mut kv = cluster.kv(1).await;
    kv.put(big(1_500_000)).await.expect("under the limit");
    let after = put_eventually(&mut kv, "after", "2").await;
    assert_eq!(
        after,
        revision + 2,
        "only the put under the limit was written"
    );
    cluster.stop_all().await;
}

/// A lease TTL above etcd's maximum is refused, as etcd refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ttl_above_etcds_maximum_is_refused() {
    let mut cluster = Cluster::start(3).await;
    let mut kv = cluster.kv(1).await;
    put_eventually(&mut kv, "before", "1").await;
    let mut lease = LeaseClient::connect(cluster.endpoint(1)).await.unwrap();
    let grant = |ttl: i64| LeaseGrantRequest { ttl, id: 0 };
    let err = lease.lease_grant(grant(1 << 62)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err}");
    assert_eq!(err.message(), "etcdserver: too large lease TTL");
    let granted = lease
        .lease_grant(grant(9_000_000_000))
        .await
        .unwrap()
        .into_inner();
    let left = lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: granted.id,
            keys: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(left.granted_ttl, 9_000_000_000);
    cluster.stop_all().await;
}

/// A watch from a revision that has not happened yet stays open, and delivers the
/// change that makes it, as etcd's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_future_revision_waits_for_it() {
    let mut cluster = Cluster::start(3).await;
    let mut kv = cluster.kv(1).await;
    let now = put_eventually(&mut kv, "w", "0").await;
    let mut watch = WatchClient::connect(cluster.endpoint(2)).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"w".to_vec(),
                start_revision: now + 3,
                ..Default::default()
            },
        )),
    })
    .await
    .unwrap();
    let mut stream = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created && !created.canceled, "{created:?}");
    for i in 1..=3 {
        put_eventually(&mut kv, "w", &i.to_string()).await;
    }
    let event = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .expect("the watch delivers its revision")
        .unwrap()
        .unwrap();
    assert!(!event.canceled, "{event:?}");
    let kvs: Vec<_> = event.events.iter().map(|e| e.kv.clone().unwrap()).collect();
    assert_eq!(kvs[0].mod_revision, now + 3, "{kvs:?}");
    assert_eq!(kvs[0].value, b"3");
    cluster.stop_all().await;
}

/// `etcdctl compaction 0` on a store never compacted succeeds (etcd: "compacted
/// revision 0"); asked again, revision 0 is compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_at_revision_0_is_answered_as_etcd_answers_it() {
    let mut cluster = Cluster::start(3).await;
    let mut kv = cluster.kv(1).await;
    put_eventually(&mut kv, "a", "1").await;
    let compact = |revision| CompactionRequest {
        revision,
        physical: false,
    };
    kv.compact(compact(0))
        .await
        .expect("the first compaction at 0");
    let err = kv.compact(compact(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert_eq!(
        err.message(),
        "etcdserver: mvcc: required revision has been compacted"
    );
    kv.compact(compact(1)).await.expect("a later revision");
    put_eventually(&mut kv, "b", "2").await;
    cluster.stop_all().await;
}
