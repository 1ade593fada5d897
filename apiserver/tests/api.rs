//! The API's rules, checked through our own client against a real apiserver over a
//! 3-member kvstore: optimistic concurrency, subresources, selectors, paging, bad
//! input, watch resumption and 410 after compaction, informers, and failover between
//! two apiservers.

mod support;

use std::time::{Duration, Instant};

use api::types::{Container, Node, Pod, ReplicaSet};
use client_go::client::ListParams;
use client_go::informer::{Event, Informer};
use client_go::Error;
use hyper::Method;
use kvstore::proto::etcdserverpb::RangeRequest;
use serde_json::json;
use support::Env;

/// A request body and its Content-Type.
type Body = Option<(&'static str, Vec<u8>)>;

fn pod(name: &str, labels: &[(&str, &str)]) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = name.into();
    p.metadata.namespace = "default".into();
    for (k, v) in labels {
        p.metadata.labels.insert(k.to_string(), v.to_string());
    }
    p.spec.containers.push(Container {
        name: "c".into(),
        image: "busybox".into(),
        args: vec!["sleep".into(), "3600".into()],
        ..Container::default()
    });
    p
}

/// Waits until `check` holds (deadline 10 s).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_kubernetes_rules() {
    let env = Env::start().await;
    let client = env.client(vec![env.url()]);

    // Create fills in what the server owns; resourceVersion is the etcd revision.
    let created = client.create(&pod("a", &[("app", "web")])).await.unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.uid.len(), 36);
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(created.status.phase, "Pending");
    let etcd =
        kvstore::client::Client::new(kvstore::client::ClientConfig::new(env.etcd.endpoints()))
            .unwrap();
    let kv = etcd
        .range(RangeRequest {
            key: b"/registry/pods/default/a".to_vec(),
            ..RangeRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(meta.resource_version, kv.kvs[0].mod_revision.to_string());

    // A stale update is refused with 409; a fresh one bumps the resourceVersion.
    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.metadata.labels.insert("tier".into(), "front".into());
    let updated = client.update(&fresh).await.unwrap();
    assert!(updated.metadata.resource_version > created.metadata.resource_version);
    stale.metadata.labels.insert("tier".into(), "back".into());
    let e = client.update(&stale).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(
        e.to_string().contains("the object has been modified"),
        "{e}"
    );

    // status is written only through /status, and /status writes only status.
    let mut with_status = updated.clone();
    with_status.status.phase = "Running".into();
    with_status.spec.node_name = "sneaky".into();
    let after = client.update_status(&with_status).await.unwrap();
    assert_eq!(after.status.phase, "Running");
    assert_eq!(after.spec.node_name, "");
    let mut main = after.clone();
    main.status.phase = "Failed".into();
    let after = client.update(&main).await.unwrap();
    assert_eq!(after.status.phase, "Running");

    // Binding sets nodeName once.
    client.bind("default", "a", "node3").await.unwrap();
    let bound: Pod = client.get("default", "a").await.unwrap();
    assert_eq!(bound.spec.node_name, "node3");
    assert!(bound
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled"));
    let e = client.bind("default", "a", "node1").await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");

    // Selectors and paging.
    for name in ["b", "c", "d"] {
        client.create(&pod(name, &[("app", "db")])).await.unwrap();
    }
    let by_label = ListParams {
        label_selector: "app=db".into(),
        ..ListParams::default()
    };
    let list = client
        .list::<Pod>(Some("default"), &by_label)
        .await
        .unwrap();
    let names: Vec<&str> = list
        .items
        .iter()
        .map(|p| p.metadata.name.as_str())
        .collect();
    assert_eq!(names, ["b", "c", "d"]);
    let by_node = ListParams {
        field_selector: "spec.nodeName=node3".into(),
        ..ListParams::default()
    };
    let list = client.list::<Pod>(None, &by_node).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let bad = ListParams {
        label_selector: "a b c".into(),
        ..ListParams::default()
    };
    let e = client.list::<Pod>(None, &bad).await.unwrap_err();
    assert_eq!(e.code(), 400, "{e:?}");
    let mut seen = Vec::new();
    let mut path = "/api/v1/namespaces/default/pods?limit=3".to_string();
    loop {
        let response = client.send(Method::GET, &path, None).await.unwrap();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                let token: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
                path = format!("/api/v1/namespaces/default/pods?limit=3&continue={token}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d"]);

    // Bad input gets a Status, never a panic.
    let mut homeless = pod("x", &[]);
    homeless.metadata.namespace.clear();
    let cases: [(Method, &str, Body, u16); 7] = [
        (
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(("application/json", b"{not json".to_vec())),
            400,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some(("application/json", vec![b' '; 4 * 1024 * 1024])),
            413,
        ),
        (Method::GET, "/api/v1/widgets", None, 404),
        (
            Method::PATCH,
            "/api/v1/namespaces/default/pods/a",
            Some(("text/plain", b"{}".to_vec())),
            415,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/default/pods",
            Some((
                "application/json",
                br#"{"metadata":{"name":"x"},"spec":{"containers":[]}}"#.to_vec(),
            )),
            422,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/nowhere/pods",
            Some(("application/json", serde_json::to_vec(&homeless).unwrap())),
            404,
        ),
        (
            Method::POST,
            "/api/v1/namespaces/kube-system/pods",
            Some((
                "application/json",
                serde_json::to_vec(&pod("x", &[])).unwrap(),
            )),
            400,
        ),
    ];
    for (method, path, body, want) in cases {
        let response = client.send(method.clone(), path, body).await.unwrap();
        let code = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (code, status["kind"].as_str()),
            (want, Some("Status")),
            "{method} {path}: {status}"
        );
    }

    // A ReplicaSet's selector is immutable; its generation counts spec changes.
    let mut rs = ReplicaSet::default();
    rs.metadata.name = "web".into();
    rs.metadata.namespace = "default".into();
    rs.spec
        .selector
        .match_labels
        .insert("app".into(), "web".into());
    rs.spec
        .template
        .metadata
        .labels
        .insert("app".into(), "web".into());
    rs.spec.template.spec.containers.push(Container {
        name: "nginx".into(),
        image: "nginx".into(),
        ..Container::default()
    });
    let rs = client.create(&rs).await.unwrap();
    assert_eq!((rs.metadata.generation, rs.spec.replicas), (1, Some(1)));
    let scaled: ReplicaSet = client
        .patch("default", "web", &json!({"spec": {"replicas": 3}}))
        .await
        .unwrap();
    assert_eq!(
        (scaled.metadata.generation, scaled.spec.replicas),
        (2, Some(3))
    );
    let e = client
        .patch::<ReplicaSet>(
            "default",
            "web",
            &json!({"spec": {"selector": {"matchLabels": {"app": "x"}}}}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), 422, "{e:?}");

    // deletecollection with a selector removes exactly the matching pods.
    let response = client
        .send(
            Method::DELETE,
            "/api/v1/namespaces/default/pods?labelSelector=app%3Ddb",
            None,
        )
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let left = client
        .list::<Pod>(Some("default"), &ListParams::default())
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    let e = client.delete::<Pod>("default", "b").await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");

    // A finalizer holds a deleted object until it is removed.
    let mut held = pod("held", &[]);
    held.metadata.finalizers.push("example.com/keep".into());
    client.create(&held).await.unwrap();
    let marked: Pod = client.delete("default", "held").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let still: Pod = client.get("default", "held").await.unwrap();
    assert_eq!(
        still.metadata.deletion_timestamp,
        marked.metadata.deletion_timestamp
    );
    client
        .patch::<Pod>(
            "default",
            "held",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await
        .unwrap();
    let e = client.get::<Pod>("default", "held").await.unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_from_a_revision_and_expire_after_compaction() {
    let env = Env::start().await;
    let client = env.client(vec![env.url()]);
    let first = client.create(&pod("w1", &[])).await.unwrap();
    client.create(&pod("w2", &[])).await.unwrap();

    // From w1's revision: w2's creation, then what follows, in order.
    let params = ListParams::default();
    let rv = first.metadata.resource_version.clone();
    let mut watch = client
        .watch::<Pod>(Some("default"), &params, &rv)
        .await
        .unwrap();
    let Some(Event::Added(p)) = watch.next().await.unwrap() else {
        panic!()
    };
    assert_eq!(p.metadata.name, "w2");
    client.delete::<Pod>("default", "w1").await.unwrap();
    let Some(Event::Deleted(p)) = watch.next().await.unwrap() else {
        panic!()
    };
    assert_eq!(p.metadata.name, "w1");

    // Compact etcd past w1's revision: resuming from it is 410 Expired.
    let etcd =
        kvstore::client::Client::new(kvstore::client::ClientConfig::new(env.etcd.endpoints()))
            .unwrap();
    let now = etcd.status().await.unwrap().header.unwrap().revision;
    etcd.compact(now).await.unwrap();
    let outcome = match client.watch::<Pod>(Some("default"), &params, &rv).await {
        Err(e) => Err(e),
        Ok(mut w) => w.next().await.map(|_| ()),
    };
    assert!(matches!(outcome, Err(Error::Expired(_))), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informer_follows_changes_and_survives_its_apiserver() {
    let env = Env::start().await;
    let second = env.second_apiserver().await;
    let client = env.client(vec![env.url(), format!("https://{}", second.addr)]);
    let mut node = Node::default();
    node.metadata.name = "node1".into();
    client.create(&node).await.unwrap();

    let nodes = Informer::<Node>::start(client.clone(), None, ListParams::default());
    eventually("the first list", || nodes.cache.get("node1").is_some()).await;
    let pods = Informer::<Pod>::start(
        client.clone(),
        Some("default".into()),
        ListParams::default(),
    );
    eventually("pods synced", || pods.cache.has_synced()).await;
    client.create(&pod("p1", &[])).await.unwrap();
    eventually("p1 in the cache", || pods.cache.get("default/p1").is_some()).await;

    // The first apiserver goes away: watches break, and resume on the second one from
    // the last resourceVersion seen, so no change is lost.
    env.apiserver.stop_serving();
    let via_second = env.client(vec![format!("https://{}", second.addr)]);
    via_second.create(&pod("p2", &[])).await.unwrap();
    via_second.delete::<Pod>("default", "p1").await.unwrap();
    eventually("p2 arrives and p1 goes", || {
        pods.cache.get("default/p2").is_some() && pods.cache.get("default/p1").is_none()
    })
    .await;
    // Reads fail over: the informers' client moved to the second apiserver.
    client
        .list::<Pod>(None, &ListParams::default())
        .await
        .unwrap();
    assert!(client.endpoint().ends_with(&second.addr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_proxied_to_the_kubelet_of_the_pods_node() {
    let env = Env::start().await;
    let client = env.client(vec![env.url()]);
    let kubelet = support::fake_kubelet().await;
    let mut node = Node::default();
    node.metadata.name = "node3".into();
    node.status.addresses.push(api::types::NodeAddress {
        type_: "InternalIP".into(),
        address: "127.0.0.1".into(),
    });
    node.status.daemon_endpoints.kubelet_endpoint.port = kubelet.port();
    client.create(&node).await.unwrap();
    client.create(&pod("pinger", &[])).await.unwrap();

    let read = |path: &'static str| {
        let client = client.clone();
        async move {
            let response = client.send(Method::GET, path, None).await.unwrap();
            let code = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (code, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (code, text) = read("/api/v1/namespaces/default/pods/pinger/log").await;
    assert_eq!(code, 400);
    assert!(
        text.contains("pod pinger does not have a host assigned"),
        "{text}"
    );

    client.bind("default", "pinger", "node3").await.unwrap();
    let (code, text) =
        read("/api/v1/namespaces/default/pods/pinger/log?tailLines=1&follow=false").await;
    assert_eq!(code, 200, "{text}");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("asked /containerLogs/default/pinger/c?follow=false&tailLines=1")
    );
    assert!(lines.next().unwrap().starts_with("64 bytes from 8.8.8.8"));

    let (code, text) = read("/api/v1/namespaces/default/pods/pinger/log?container=nope").await;
    assert_eq!(code, 400, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_informer_relists_when_its_revision_was_compacted() {
    let env = Env::start().await;
    let client = env.client(vec![env.url()]);
    client.create(&pod("p1", &[])).await.unwrap();
    let pods = Informer::<Pod>::start(
        client.clone(),
        Some("default".into()),
        ListParams::default(),
    );
    eventually("p1 in the cache", || pods.cache.get("default/p1").is_some()).await;

    // Its only apiserver goes away; meanwhile, through another one, p1 goes, p2 comes,
    // and etcd compacts away the history the informer would resume from.
    env.apiserver.stop_serving();
    let second = env.second_apiserver().await;
    let other = env.client(vec![format!("https://{}", second.addr)]);
    other.delete::<Pod>("default", "p1").await.unwrap();
    other.create(&pod("p2", &[])).await.unwrap();
    let etcd =
        kvstore::client::Client::new(kvstore::client::ClientConfig::new(env.etcd.endpoints()))
            .unwrap();
    let now = etcd.status().await.unwrap().header.unwrap().revision;
    etcd.compact(now).await.unwrap();

    // Back on the same address: resuming is 410 Expired, so the informer lists again.
    let _back = env.apiserver_on(&env.apiserver.addr).await;
    eventually("the relist replaced the cache", || {
        pods.cache.get("default/p2").is_some() && pods.cache.get("default/p1").is_none()
    })
    .await;
}
