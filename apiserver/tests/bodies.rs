//! Nothing a client sends can panic a handler or hold a core (issue 12, item 6): bodies
//! that are not objects, bodies nested 50 000 deep, protobuf envelopes of the wrong
//! kind, quantities and revisions that overflow. Each gets a `400`-class `Status` over
//! real HTTPS, and the server goes on answering.

mod harness;

use harness::Server;

const APPLY: &str = "application/apply-patch+yaml";

fn pod(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},
            "spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    )
}

/// `what` was answered with a `400` Status whose message contains `because`.
fn refused(what: &str, reply: &harness::Reply, because: &str) {
    assert_eq!(reply.code, 400, "{what}: {reply:?}");
    assert_eq!(reply.json()["kind"], "Status", "{what}: {reply:?}");
    let message = reply.json()["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains(because), "{what}: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_objects_are_a_400_not_a_dropped_connection() {
    let server = Server::start(|_| {}).await;
    let created = server
        .call(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            pod("there").as_bytes(),
        )
        .await;
    assert_eq!(created.code, 201, "{created:?}");
    let scalars: [&[u8]; 6] = [b"[]", b"123", b"\"s\"", b"true", b"null", b"- a\n- b\n"];
    for body in scalars {
        let shown = String::from_utf8_lossy(body).into_owned();
        // Server-side apply of a new object (this panicked the handler), and of an
        // existing one.
        for name in ["new", "there"] {
            let path = format!("/api/v1/namespaces/default/pods/{name}");
            let reply = server.call("PATCH", &path, APPLY, body).await;
            refused(
                &format!("apply {shown} to {name}"),
                &reply,
                "must be a JSON object",
            );
        }
        // Every other verb and subresource that reads a body.
        let cases = [
            (
                "POST",
                "/api/v1/namespaces/default/pods",
                "application/json",
            ),
            (
                "PUT",
                "/api/v1/namespaces/default/pods/there",
                "application/json",
            ),
            (
                "PUT",
                "/api/v1/namespaces/default/pods/there/status",
                "application/json",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/default/pods/there",
                "application/merge-patch+json",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/default/pods/there/status",
                "application/strategic-merge-patch+json",
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods/there/binding",
                "application/json",
            ),
        ];
        for (method, path, content_type) in cases {
            if body.starts_with(b"-") {
                continue; // YAML is for apply only
            }
            let reply = server.call(method, path, content_type, body).await;
            assert!(
                matches!(reply.code, 400 | 422),
                "{method} {path} {shown}: {reply:?}"
            );
            assert_eq!(reply.json()["kind"], "Status", "{method} {path}: {reply:?}");
        }
    }
    // Not JSON and not YAML either: the parser's reason is in the answer.
    let reply = server
        .call(
            "PATCH",
            "/api/v1/namespaces/default/pods/new",
            APPLY,
            b"{\"a\": [}",
        )
        .await;
    refused("broken apply", &reply, "is not valid YAML");
    let reply = server
        .call(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            b"{\"a\":",
        )
        .await;
    refused("broken JSON", &reply, "is not valid JSON");
    assert_eq!(server.get("/healthz", None).await.code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_bodies_are_refused_before_they_are_parsed() {
    let server = Server::start(|_| {}).await;
    // 300 KB of JSON nested 50 000 deep, twice at once, and a health check beside them.
    let deep = "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000);
    let path = "/api/v1/namespaces/default/pods/deep";
    let (one, two, health) = tokio::join!(
        server.call("PATCH", path, APPLY, deep.as_bytes()),
        server.call("PATCH", path, APPLY, deep.as_bytes()),
        server.get("/healthz", None),
    );
    refused("deep JSON apply", &one, "nested deeper than 100");
    refused("deep JSON apply", &two, "nested deeper than 100");
    assert_eq!(health.code, 200, "{health:?}");
    // The same for every JSON body, and for YAML that is not JSON: flow or block.
    let reply = server
        .call(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            deep.as_bytes(),
        )
        .await;
    refused("deep JSON create", &reply, "nested deeper than 100");
    let flow = "a: ".to_string() + &"[".repeat(50_000);
    let reply = server.call("PATCH", path, APPLY, flow.as_bytes()).await;
    refused("deep YAML flow", &reply, "nested deeper than 100");
    let block = "- ".repeat(200) + "x\n";
    let reply = server.call("PATCH", path, APPLY, block.as_bytes()).await;
    refused("deep YAML block", &reply, "nested deeper than 100");

    // An ordinary YAML manifest is applied.
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: yaml\nspec:\n  containers:\n  - name: c\n    image: busybox\n    args: [\"sleep\", \"1\"]\n";
    let reply = server
        .call(
            "PATCH",
            "/api/v1/namespaces/default/pods/yaml",
            APPLY,
            yaml.as_bytes(),
        )
        .await;
    assert_eq!(reply.code, 201, "{reply:?}");
}

/// A protobuf body (`k8s\0` + a `runtime.Unknown`) whose typeMeta names `kind`.
fn protobuf(kind: &str, raw: &[u8]) -> Vec<u8> {
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let mut type_meta = field(1, b"v1");
    type_meta.extend(field(2, kind.as_bytes()));
    let mut body = b"k8s\0".to_vec();
    body.extend(field(1, &type_meta));
    body.extend(field(2, raw));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_protobuf_quantities_and_revisions_are_refused_not_a_panic() {
    let server = Server::start(|_| {}).await;
    // A protobuf "object" of a kind that is a JSON string or number.
    for kind in ["Quantity", "IntOrString", "Time"] {
        let reply = server
            .call(
                "POST",
                "/api/v1/namespaces/default/pods",
                "application/vnd.kubernetes.protobuf",
                &protobuf(kind, b"\x0a\x011"),
            )
            .await;
        assert!(matches!(reply.code, 400 | 415), "{kind}: {reply:?}");
        assert_eq!(reply.json()["kind"], "Status", "{kind}: {reply:?}");
    }
    // Quantities too large for any integer.
    for cpu in [
        "1.0000000000000000000000000000000000000001",
        "99999999999999999999999999999Ei",
    ] {
        let body = format!(
            r#"{{"metadata":{{"name":"big"}},"spec":{{"containers":[{{"name":"c","image":"b",
                "resources":{{"requests":{{"cpu":"{cpu}"}}}}}}]}}}}"#
        );
        let reply = server
            .call(
                "POST",
                "/api/v1/namespaces/default/pods",
                "application/json",
                body.as_bytes(),
            )
            .await;
        assert_eq!(reply.code, 422, "{cpu}: {reply:?}");
    }
    // A watch from the last revision there could ever be.
    let reply = server
        .call(
            "GET",
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion=9223372036854775807",
            "",
            b"",
        )
        .await;
    assert_eq!(reply.code, 400, "{reply:?}");
    assert_eq!(server.get("/healthz", None).await.code, 200);
}
