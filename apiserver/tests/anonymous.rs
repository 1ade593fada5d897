//! Who may ask what without a token, as kube-apiserver's defaults have it (issue 12,
//! item 9): `/version`, `/healthz`, `/livez` and `/readyz` (the paths of the
//! `system:public-info-viewer` role) answer anyone; every other path is `401
//! Unauthorized` without a valid bearer token; dot segments never reach the router or
//! the decision; the `Bearer` scheme is case-insensitive. Over real HTTPS.

mod harness;

use harness::{Server, TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_see_version_and_health_and_nothing_else() {
    let mut server = Server::start(|_| {}).await;

    let version = server.get("/version", None).await;
    assert_eq!(version.code, 200, "{version:?}");
    assert_eq!(version.json()["major"], "1");
    assert_eq!(server.get("/version/", None).await.code, 200);
    for path in ["/healthz", "/livez", "/readyz"] {
        let reply = server.get(path, None).await;
        assert_eq!((reply.code, reply.body.as_str()), (200, "ok"), "{path}");
    }
    // ?verbose lists each check by kube-apiserver's name for it.
    let reply = server.get("/healthz?verbose", None).await;
    assert_eq!(reply.body, "[+]ping ok\n[+]etcd ok\nhealthz check passed\n");
    let reply = server.get("/livez?verbose=true", None).await;
    assert_eq!(reply.body, "[+]ping ok\n[+]etcd ok\nlivez check passed\n");
    let reply = server.get("/readyz?verbose", None).await;
    assert_eq!(
        reply.body,
        "[+]ping ok\n[+]etcd ok\n[+]etcd-readiness ok\nreadyz check passed\n"
    );
    let reply = server.get("/readyz?verbose&exclude=etcd", None).await;
    assert_eq!(
        reply.body,
        "[+]ping ok\n[+]etcd excluded: ok\n[+]etcd-readiness ok\nreadyz check passed\n"
    );

    // Everything else needs a token: the API, discovery, OpenAPI, one check by name.
    for path in [
        "/api",
        "/apis",
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/pods",
        "/openapi/v3",
        "/healthz/etcd",
        "/readyz/ping",
        "/metrics",
        "/",
    ] {
        let reply = server.get(path, None).await;
        assert_eq!(reply.status(), (401, "Unauthorized".into()), "{path}");
        assert_eq!(reply.json()["message"], "Unauthorized");
    }
    let bearer = format!("Bearer {TOKEN}");
    let reply = server.get("/healthz/etcd", Some(&bearer)).await;
    assert_eq!((reply.code, reply.body.as_str()), (200, "ok"));
    assert_eq!(server.get("/healthz/nope", Some(&bearer)).await.code, 404);

    // A path with dot segments (raw or percent-encoded) is refused before it is routed
    // or authorised: it neither reaches the health check nor slips past the token.
    for path in [
        "/healthz/../api/v1/namespaces",
        "/healthz/%2e%2e/api/v1/namespaces",
        "/livez/%2E%2E/api/v1/namespaces",
        "/readyz/.%2e/api/v1/namespaces",
        "/version/./",
        "/api/v1/namespaces/default/pods/..",
    ] {
        for auth in [None, Some(bearer.as_str())] {
            let reply = server.get(path, auth).await;
            assert_eq!(
                reply.status(),
                (400, "BadRequest".into()),
                "{path} {auth:?}"
            );
            assert!(reply.body.contains("dot segment"), "{path}: {reply:?}");
        }
    }

    // The scheme is case-insensitive; a wrong token is refused even where anonymous
    // clients are let in (a bad token is not "anonymous"); another scheme is no token.
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = format!("{scheme} {TOKEN}");
        let reply = server.get("/api/v1/namespaces", Some(&auth)).await;
        assert_eq!(reply.code, 200, "{scheme}: {reply:?}");
    }
    for path in ["/healthz", "/api/v1/namespaces"] {
        let reply = server.get(path, Some("Bearer wrong-token")).await;
        assert_eq!(reply.status(), (401, "Unauthorized".into()), "{path}");
    }
    assert_eq!(
        server
            .get("/healthz", Some("Basic YWRtaW46eA=="))
            .await
            .code,
        200
    );
    let reply = server.get("/api", Some("Basic YWRtaW46eA==")).await;
    assert_eq!(reply.code, 401);

    // A failing check is `[-]` with its reason withheld, and a 500, verbose or not.
    server.etcd.stop(1).await;
    let reply = server.get("/healthz", None).await;
    assert_eq!(reply.code, 500, "{reply:?}");
    assert_eq!(
        reply.body,
        "[+]ping ok\n[-]etcd failed: reason withheld\nhealthz check failed\n"
    );
    let reply = server.get("/readyz?verbose", None).await;
    assert_eq!(reply.code, 500);
    assert_eq!(
        reply.body,
        "[+]ping ok\n[-]etcd failed: reason withheld\n\
         [-]etcd-readiness failed: reason withheld\nreadyz check failed\n"
    );
    // The reason itself is for those with a token, at the check's own path.
    let reply = server.get("/livez/etcd", Some(&bearer)).await;
    assert_eq!(reply.code, 500);
    assert!(
        reply.body.starts_with("internal server error: "),
        "{reply:?}"
    );
    assert_eq!(server.get("/livez/ping", Some(&bearer)).await.code, 200);
}
