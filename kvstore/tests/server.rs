//! Three real members on loopback — sled data directories, TCP between them, the gRPC
//! API — driven through the generated etcd client. Timings are short (10 ms heartbeat)
//! so elections take a fraction of a second; every wait polls a condition with a
//! deadline.

use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::{
    kv_client::KvClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
    watch_request, PutRequest, RangeRequest, StatusRequest, WatchCreateRequest, WatchRequest,
};
use tonic::transport::Channel;

mod support;
use support::{put_eventually, Cluster};

/// A linearizable read of the pod key the test writes first.
async fn get_alpine(kv: &mut KvClient<Channel>) -> kvstore::proto::etcdserverpb::RangeResponse {
    let request = RangeRequest {
        key: b"/registry/pods/default/alpine".to_vec(),
        ..Default::default()
    };
    kv.range(request).await.unwrap().into_inner()
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_serve_lose_quorum_and_recover() {
    let mut cluster = Cluster::start(3).await;
    let mut kv1 = cluster.kv(1).await;
    let revision = put_eventually(&mut kv1, "/registry/pods/default/alpine", "{}").await;
    assert!(revision >= 2);

    // A linearizable read on another member sees it.
    let mut kv2 = cluster.kv(2).await;
    let got = get_alpine(&mut kv2).await;
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.header.unwrap().member_id, 2);

    // A watch on member 3 sees a later put made through member 1. It starts after the
    // first put, as an informer watches from the revision it listed at: member 3 may
    // not have applied that put yet, and a watch from "now" there would deliver it.
    let mut watch = WatchClient::connect(cluster.endpoint(3)).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"/registry/pods/".to_vec(),
                range_end: b"/registry/pods0".to_vec(),
                start_revision: revision + 1,
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
    assert!(created.created);
    put_eventually(&mut kv1, "/registry/pods/default/web", "{}").await;
    let event = stream.message().await.unwrap().unwrap();
    assert_eq!(
        event.events[0].kv.as_ref().unwrap().key,
        b"/registry/pods/default/web"
    );

    // Status names a leader that is a member.
    let mut maintenance = MaintenanceClient::connect(cluster.endpoint(1))
        .await
        .unwrap();
    let status = maintenance
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!((1..=3).contains(&status.leader), "{status:?}");

    // Two members stop: a put on the last one fails with a timeout, it does not hang.
    cluster.stop(2).await;
    cluster.stop(3).await;
    let started = Instant::now();
    let err = kv1.put(put("k", "v")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(
        [
            "etcdserver: request timed out",
            "etcdserver: no leader",
            "etcdserver: leader changed"
        ]
        .contains(&err.message()),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // One comes back from its data directory: a majority again, writes work.
    cluster.restart(2).await;
    put_eventually(&mut kv1, "after", "restart").await;
    let mut kv2 = cluster.kv(2).await;
    let got = get_alpine(&mut kv2).await;
    assert_eq!(
        got.kvs.len(),
        1,
        "member 2 kept its data across the restart"
    );
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}

/// Members snapshot every `SNAPSHOT_COUNT` entries and drop older log entries; a member
/// that was down meanwhile catches up from the leader's snapshot, over TCP, into sled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_missed_compacted_entries_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3).await;
    let mut kv1 = cluster.kv(1).await;
    put_eventually(&mut kv1, "first", "1").await;
    cluster.stop(3).await;
    let writes = 3 * support::SNAPSHOT_COUNT;
    for i in 0..writes {
        put_eventually(&mut kv1, &format!("/registry/k{i:03}"), "v").await;
    }
    cluster.restart(3).await;
    let mut kv3 = cluster.kv(3).await;
    let all = RangeRequest {
        key: b"/registry/".to_vec(),
        range_end: b"/registry0".to_vec(),
        count_only: true,
        serializable: true,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let count = kv3.range(all.clone()).await.map(|r| r.into_inner().count);
        if count.as_ref().is_ok_and(|&c| c == writes as i64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member 3 never caught up: {count:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}
