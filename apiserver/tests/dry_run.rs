//! Server-side dry run changes nothing (issue 12, item 7): `kubectl delete deploy dr
//! --dry-run=server` printed "deleted (server dry run)" and deleted it, and `apply`,
//! `patch` and `scale` with `--dry-run=server` kept their changes. With `dryRun=All`
//! every verb and subresource validates, defaults and answers as a real write would,
//! and etcd's revision does not move. Checked with the real kubectl and with direct
//! HTTP requests for each verb.

mod harness;
mod support;

use serde_json::{json, Value};
use support::Env;

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dr
spec:
  replicas: 2
  selector:
    matchLabels:
      app: dr
  template:
    metadata:
      labels:
        app: dr
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

/// etcd's revision: it moves with every write, and only then.
async fn revision(endpoints: Vec<String>) -> i64 {
    let etcd = kvstore::client::Client::new(kvstore::client::ClientConfig::new(endpoints)).unwrap();
    etcd.status().await.unwrap().header.unwrap().revision
}

/// A request body and its Content-Type.
type Body = Option<(&'static str, Value)>;

/// A request as the admin: status code and JSON answer.
async fn call(server: &harness::Server, method: &str, path: &str, body: Body) -> (u16, Value) {
    let reply = match body {
        Some((ct, v)) => {
            let bytes = serde_json::to_vec(&v).unwrap();
            server.call(method, path, ct, &bytes).await
        }
        None => server.call(method, path, "", b"").await,
    };
    (reply.code, reply.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_dry_run_server_writes_nothing() {
    if support::tools::skip_unless_installed(&support::tools::KUBECTL) {
        return;
    }
    let env = Env::start().await;
    let out = env.ok_with_input(&["apply", "-f", "-"], DEPLOYMENT).await;
    assert_eq!(out.trim(), "deployment.apps/dr created");
    env.ok(&["run", "po", "--image=busybox"]).await;
    let before = revision(env.etcd.endpoints()).await;

    let dry = "--dry-run=server";
    let out = env.ok(&["delete", "deploy", "dr", dry]).await;
    assert_eq!(
        out.trim(),
        "deployment.apps \"dr\" deleted (server dry run)"
    );
    let out = env.ok(&["delete", "pod", "po", dry]).await;
    assert_eq!(out.trim(), "pod \"po\" deleted (server dry run)");
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 5");
    let out = env
        .ok_with_input(&["apply", "-f", "-", dry], &changed)
        .await;
    assert_eq!(out.trim(), "deployment.apps/dr configured (server dry run)");
    let out = env
        .ok_with_input(&["apply", "--server-side", "-f", "-", dry], &changed)
        .await;
    assert!(out.contains("serverside-applied (server dry run)"), "{out}");
    let other = DEPLOYMENT.replace("name: dr", "name: dr2");
    let out = env
        .ok_with_input(&["apply", "--server-side", "-f", "-", dry], &other)
        .await;
    assert!(
        out.contains("dr2 serverside-applied (server dry run)"),
        "{out}"
    );
    let out = env
        .ok(&[
            "patch",
            "deploy",
            "dr",
            "-p",
            r#"{"spec":{"replicas":7}}"#,
            dry,
            "-o",
            "json",
        ])
        .await;
    let patched: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        patched["spec"]["replicas"], 7,
        "the answer shows the change"
    );
    let out = env
        .ok(&["scale", "deploy", "dr", "--replicas=9", dry])
        .await;
    assert_eq!(out.trim(), "deployment.apps/dr scaled (server dry run)");
    let out = env.ok(&["label", "deploy", "dr", "tier=web", dry]).await;
    assert_eq!(out.trim(), "deployment.apps/dr labeled (server dry run)");
    let out = env.ok_with_input(&["create", "-f", "-", dry], &other).await;
    assert_eq!(out.trim(), "deployment.apps/dr2 created (server dry run)");
    let out = env
        .ok(&["run", "po2", "--image=busybox", dry, "-o", "json"])
        .await;
    let pod: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        pod["spec"]["schedulerName"], "default-scheduler",
        "defaulted"
    );
    // A dry run still validates: a dry create of what exists is refused.
    let out = env
        .kubectl(&["create", "deploy", "dr", "--image=nginx", dry])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("already exists"), "{out:?}");

    assert_eq!(
        revision(env.etcd.endpoints()).await,
        before,
        "a dry run wrote to etcd"
    );
    let out = env.ok(&["get", "deploy", "dr", "-o", "json"]).await;
    let dr: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dr["spec"]["replicas"], 2);
    assert!(dr["metadata"]["labels"].get("tier").is_none());
    let out = env.kubectl(&["get", "deploy", "dr2"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    env.ok(&["get", "pod", "po"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_honours_dry_run_all() {
    let server = harness::Server::start(|_| {}).await;
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let rs_path = "/apis/apps/v1/namespaces/default/replicasets";
    let pod_path = "/api/v1/namespaces/default/pods";
    let json_ct = "application/json";
    let (code, _) = call(&server, "POST", rs_path, Some((json_ct, rs.clone()))).await;
    assert_eq!(code, 201);
    let (code, _) = call(&server, "POST", pod_path, Some((json_ct, pod.clone()))).await;
    assert_eq!(code, 201);
    let before = revision(server.etcd.endpoints()).await;

    let web = "/apis/apps/v1/namespaces/default/replicasets/web";
    let p = "/api/v1/namespaces/default/pods/p";
    let mut bigger = rs.clone();
    bigger["spec"]["replicas"] = json!(4);
    let new_pod = json!({"metadata": {"name": "q"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let running = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
    let cases: Vec<(&str, String, Body, u16)> = vec![
        (
            "POST",
            pod_path.into(),
            Some((json_ct, new_pod.clone())),
            201,
        ),
        ("PUT", web.into(), Some((json_ct, bigger)), 200),
        (
            "PATCH",
            web.into(),
            Some((
                "application/merge-patch+json",
                json!({"spec": {"replicas": 5}}),
            )),
            200,
        ),
        (
            "PATCH",
            web.into(),
            Some((
                "application/strategic-merge-patch+json",
                json!({"metadata": {"labels": {"x": "y"}}}),
            )),
            200,
        ),
        (
            "PATCH",
            web.into(),
            Some((
                "application/apply-patch+yaml",
                json!({"spec": {"replicas": 6}}),
            )),
            200,
        ),
        (
            "PATCH",
            format!("{pod_path}/q"),
            Some(("application/apply-patch+yaml", new_pod.clone())),
            201,
        ),
        (
            "PUT",
            format!("{p}/status"),
            Some((json_ct, running.clone())),
            200,
        ),
        (
            "PATCH",
            format!("{p}/status"),
            Some((
                "application/merge-patch+json",
                json!({"status": {"phase": "Failed"}}),
            )),
            200,
        ),
        (
            "PUT",
            format!("{web}/scale"),
            Some((
                json_ct,
                json!({"metadata": {"name": "web"}, "spec": {"replicas": 8}}),
            )),
            200,
        ),
        (
            "PATCH",
            format!("{web}/scale"),
            Some((
                "application/merge-patch+json",
                json!({"spec": {"replicas": 9}}),
            )),
            200,
        ),
        (
            "POST",
            format!("{p}/binding"),
            Some((json_ct, json!({"target": {"name": "node1"}}))),
            201,
        ),
        ("DELETE", web.into(), None, 200),
        ("DELETE", p.into(), None, 200),
        ("DELETE", pod_path.into(), None, 200),
    ];
    for (method, path, body, want) in cases {
        let sep = if path.contains('?') { '&' } else { '?' };
        let dry = format!("{path}{sep}dryRun=All");
        let (code, answer) = call(&server, method, &dry, body).await;
        assert_eq!(code, want, "{method} {dry}: {answer}");
        assert_eq!(
            revision(server.etcd.endpoints()).await,
            before,
            "{method} {dry} wrote to etcd"
        );
    }
    // What a dry run answers is what the write would have stored, defaults included.
    let (_, answer) = call(
        &server,
        "POST",
        &format!("{pod_path}?dryRun=All"),
        Some((json_ct, new_pod.clone())),
    )
    .await;
    assert_eq!(answer["spec"]["restartPolicy"], "Always");
    assert_eq!(answer["metadata"]["namespace"], "default");
    let (_, answer) = call(
        &server,
        "PATCH",
        &format!("{web}/scale?dryRun=All"),
        Some((
            "application/merge-patch+json",
            json!({"spec": {"replicas": 9}}),
        )),
    )
    .await;
    assert_eq!(answer["spec"]["replicas"], 9);
    // DeleteOptions in the body say it too, as kubectl sends them.
    let (code, _) = call(
        &server,
        "DELETE",
        web,
        Some((
            json_ct,
            json!({"propagationPolicy": "Background", "dryRun": ["All"]}),
        )),
    )
    .await;
    assert_eq!(code, 200);
    // It still validates: an invalid object is refused as the write would be.
    let (code, _) = call(
        &server,
        "PATCH",
        &format!("{web}?dryRun=All"),
        Some((
            "application/merge-patch+json",
            json!({"spec": {"replicas": -1}}),
        )),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(revision(server.etcd.endpoints()).await, before);

    // An unknown dryRun value is refused as kube-apiserver refuses it.
    let (code, status) = call(
        &server,
        "POST",
        &format!("{pod_path}?dryRun=Maybe"),
        Some((json_ct, new_pod.clone())),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
    assert_eq!(
        status["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \
         []string{\"Maybe\"}: supported values: \"All\""
    );
    let (code, _) = call(&server, "DELETE", &format!("{p}?dryRun=yes"), None).await;
    assert_eq!(code, 422);
    assert_eq!(revision(server.etcd.endpoints()).await, before);
    // Without dryRun the same requests write.
    let (code, _) = call(&server, "DELETE", p, None).await;
    assert_eq!(code, 200);
    assert!(revision(server.etcd.endpoints()).await > before);
}
