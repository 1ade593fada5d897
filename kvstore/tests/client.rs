//! The client library against three real members: failover when the member it uses
//! goes away, typed errors when the majority is gone.

use std::time::{Duration, Instant};

use kvstore::client::{Client, ClientConfig};
use kvstore::proto::etcdserverpb::{PutRequest, RangeRequest, WatchCreateRequest};
use kvstore::Error;

mod support;
use support::Cluster;

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn get(key: &str) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_fails_over_and_reports_typed_errors() {
    let mut cluster = Cluster::start(3).await;
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.endpoint(id)).collect();
    let mut config = ClientConfig::new(endpoints.clone());
    config.timeout = Duration::from_secs(10);
    let client = Client::new(config).unwrap();

    client
        .put(put("/registry/pods/default/alpine", "v1"))
        .await
        .unwrap();

    let mut watch = client
        .watch(WatchCreateRequest {
            key: b"/registry/pods/".to_vec(),
            range_end: b"/registry/pods0".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();

    // The member the client uses goes away: the next calls go to another member.
    let used = endpoints
        .iter()
        .position(|e| e == client.current_endpoint())
        .unwrap() as u64
        + 1;
    cluster.stop(used).await;
    // A put the client never got to send (the connection was gone) goes to another
    // member by itself. One it sent may fail as indeterminate: it was on the connection
    // when the member went away, or the member was the leader and a write forwarded to
    // it before the others noticed is lost ("leader changed"). The client leaves that
    // retry to us; this put is the same whether it happened once or twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.put(put("/registry/pods/default/alpine", "v2")).await {
            Ok(_) => break,
            Err(e) if e.is_indeterminate() => {}
            Err(e) => panic!("unexpected error after failover: {e:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded after failover"
        );
    }
    assert_ne!(client.current_endpoint(), endpoints[used as usize - 1]);
    let got = client
        .range(get("/registry/pods/default/alpine"))
        .await
        .unwrap();
    assert_eq!(got.kvs[0].value, b"v2");

    // The watch was on the stopped member; its stream ends, and a new one resumes
    // from the next revision without missing anything.
    let mut last_seen = 0;
    while let Ok(Some(response)) = watch.message().await {
        for e in &response.events {
            last_seen = e.kv.as_ref().unwrap().mod_revision;
        }
    }
    let mut watch = client
        .watch(WatchCreateRequest {
            key: b"/registry/pods/".to_vec(),
            range_end: b"/registry/pods0".to_vec(),
            start_revision: last_seen + 1,
            ..Default::default()
        })
        .await
        .unwrap();
    let resumed = watch.message().await.unwrap().unwrap();
    let values: Vec<&[u8]> = resumed
        .events
        .iter()
        .map(|e| e.kv.as_ref().unwrap().value.as_slice())
        .collect();
    assert!(values.contains(&b"v2".as_slice()), "{values:?}");

    // A second member stops: no majority. Writes fail with a typed error, in time.
    let second = (1..=3)
        .find(|&id| id != used && cluster.endpoint(id) != client.current_endpoint())
        .unwrap();
    cluster.stop(second).await;
    let mut config = ClientConfig::new(endpoints);
    config.timeout = Duration::from_secs(4);
    let client = Client::new(config).unwrap();
    let started = Instant::now();
    let err = client.put(put("k", "v")).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout | Error::NoLeader | Error::LeaderChanged),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // Serializable reads still work from the surviving member.
    let mut local = get("/registry/pods/default/alpine");
    local.serializable = true;
    assert_eq!(client.range(local).await.unwrap().kvs[0].value, b"v2");
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}

/// Stops member `id` without letting this (current-thread) runtime run meanwhile: the
/// client's connection tasks, which live here, have not yet seen the connection close,
/// as on a loaded machine where they wait for a CPU.
fn stop_unnoticed(cluster: &mut Cluster, id: u64) {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(cluster.stop(id))
        })
        .join()
        .unwrap()
    });
}

/// What a loaded machine did to `the_client_fails_over_and_reports_typed_errors`,
/// step by step. The member in use stops; the client's connection tasks get 0, 1, 2
/// or 3 turns to notice before the next put. Depending on how far they got, the put
/// is written to the dead connection (sent: its outcome is unknown), queued on it and
/// handed back unsent by hyper ("operation was canceled"), or refused at connect. A
/// request that was never sent must go to another member and succeed; one that was
/// sent may only fail as indeterminate. Nothing else: no `Unavailable` for a put that
/// never left.
#[tokio::test(flavor = "current_thread")]
async fn a_put_the_client_never_sent_goes_to_another_member() {
    let mut cluster = Cluster::start(3).await;
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.endpoint(id)).collect();
    let mut outcomes = Vec::new();
    for turns in 0..4 {
        let mut config = ClientConfig::new(endpoints.clone());
        config.timeout = Duration::from_secs(20);
        let client = Client::new(config).unwrap();
        // Connected to the member in use (the first put may wait for an election).
        client.put(put("k", "before")).await.unwrap();
        let used = endpoints
            .iter()
            .position(|e| e == client.current_endpoint())
            .unwrap() as u64
            + 1;
        stop_unnoticed(&mut cluster, used);
        for _ in 0..turns {
            tokio::task::yield_now().await;
        }
        let outcome = client.put(put("k", &format!("after {turns}"))).await;
        match &outcome {
            Ok(_) => assert_ne!(client.current_endpoint(), endpoints[used as usize - 1]),
            Err(e) => assert!(
                e.is_indeterminate(),
                "{turns} turns: a put failed with a definite error: {e:?}"
            ),
        }
        outcomes.push(outcome.map(|_| ()));
        cluster.restart(used).await;
    }
    // At least one of the four was never sent (turns 1 to 3 on tokio 1.x: queued on the
    // closed connection, or refused at connect) and so must have succeeded elsewhere.
    assert!(outcomes.iter().any(Result::is_ok), "{outcomes:?}");
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}

/// A follower whose connection from the leader closes does not wait out the election
/// timeout: the survivors elect a new leader in a few ticks (`Member::peer_lost`).
///
/// No stopwatch: the followers run with an election timeout (60 s) longer than the
/// test's deadline (30 s), so a new leader within the deadline can only have come from
/// the lost connection, however slow the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_followers_elect_a_new_one_before_the_election_timeout() {
    // The members' role changes, shown if the test fails.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut cluster = Cluster::start(3).await;
    let endpoints: Vec<String> = (1..=3).map(|id| cluster.endpoint(id)).collect();
    let mut config = ClientConfig::new(endpoints.clone());
    config.timeout = Duration::from_secs(20);
    let client = Client::new(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.put(put("before", "1")).await {
            Ok(_) => break,
            Err(e) if e.is_indeterminate() => {}
            Err(e) => panic!("the first put failed: {e:?}"),
        }
        assert!(Instant::now() < deadline, "no leader at all");
    }
    let leader = client.status().await.unwrap().leader;
    let leader_index = (1..=3)
        .find(|&id| cluster.info.members[id as usize - 1].id == leader)
        .unwrap();
    // The followers come back with an election timeout the test will not wait out.
    cluster.timing.election_timeout = Duration::from_secs(60);
    for id in (1..=3).filter(|&id| id != leader_index) {
        cluster.stop(id).await;
        cluster.restart(id).await;
        // Back in the cluster (it hears the leader) before the next one goes.
        let mut config = ClientConfig::new(vec![cluster.endpoint(id)]);
        config.timeout = Duration::from_secs(20);
        let follower = Client::new(config).unwrap();
        while follower.status().await.map(|s| s.leader) != Ok(leader) {
            assert!(Instant::now() < deadline, "member {id} never rejoined");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    cluster.stop(leader_index).await;

    let survivor = (1..=3).find(|&id| id != leader_index).unwrap();
    let mut config = ClientConfig::new(vec![cluster.endpoint(survivor)]);
    config.timeout = Duration::from_secs(20);
    let client = Client::new(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.status().await.unwrap();
        if status.leader != 0 && status.leader != leader {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader within 30 s: the followers waited for their 60 s election timeout"
        );
        // Not a spin: on a busy machine that would take the CPU from the members.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.put(put("after", "2")).await.unwrap();
    for id in 1..=3 {
        cluster.stop(id).await;
    }
}

#[test]
fn errors_decode_from_etcd_messages() {
    use kvstore::client::from_status;
    let timeout = tonic::Status::unavailable("etcdserver: request timed out");
    assert_eq!(from_status(&timeout), Error::Timeout);
    let compacted =
        tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
    assert!(matches!(from_status(&compacted), Error::Compacted { .. }));
    let refused = tonic::Status::unavailable("tcp connect error: Connection refused");
    assert!(matches!(from_status(&refused), Error::Unavailable(_)));
}
