//! The real `kubectl` (1.32) against our apiserver over a 3-member kvstore: each
//! command must print what it prints against real Kubernetes (modulo ages and names).
//! Without kubectl on PATH the test skips, saying so (see `support/tools.rs`).

mod support;

use std::time::{Duration, Instant};

use kvstore::proto::etcdserverpb::RangeRequest;
use support::tools::{self, KUBECTL};
use support::Env;
use tokio::io::{AsyncBufReadExt, BufReader};

const NODE: &str = "
apiVersion: v1
kind: Node
metadata:
  name: node3
  labels:
    kubernetes.io/hostname: node3
status:
  conditions:
  - type: Ready
    status: 'True'
  addresses:
  - type: InternalIP
    address: 10.0.0.13
  nodeInfo:
    kubeletVersion: v1.32.0
";

const REPLICASET: &str = "
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: front
spec:
  replicas: 2
  selector:
    matchLabels:
      app: front
  template:
    metadata:
      labels:
        app: front
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
";

const EVENT: &str = "
apiVersion: v1
kind: Event
metadata:
  name: alpine.1
involvedObject:
  kind: Pod
  name: alpine
  namespace: default
  uid: POD_UID
reason: Scheduled
message: Successfully assigned default/alpine to node3
type: Normal
source:
  component: default-scheduler
";

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

/// The next line `kubectl get -w` prints (deadline 20 s).
async fn next_line(lines: &mut Lines) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("kubectl get -w printed in time")
        .unwrap()
        .expect("kubectl get -w is still running")
}

/// The first line of `text` that starts with `name`, split into columns.
fn row<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{text}"))
        .split_whitespace()
        .collect()
}

fn header(text: &str) -> Vec<&str> {
    text.lines()
        .next()
        .unwrap_or("")
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_kubectl_works_against_our_apiserver() {
    if tools::skip_unless_installed(&KUBECTL) {
        return;
    }
    let mut env = Env::start().await;

    let out = env.ok(&["version"]).await;
    assert!(out.contains("Server Version: v1.32.0-miniplane"), "{out}");
    let out = env.ok(&["cluster-info"]).await;
    let url = env.url();
    assert!(
        out.contains(&format!("Kubernetes control plane is running at {url}")),
        "{out}"
    );

    // TLS with the cluster CA and a bearer token; without the token, 401.
    let args = ["get", "pods", "--token=wrong"];
    let out = env.kubectl(&args).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("error: You must be logged in to the server (Unauthorized)"),
        "{out:?}"
    );

    let out = env.ok(&["get", "ns"]).await;
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert_eq!(row(&out, ns)[..2], [ns, "Active"]);
    }

    // A node, as a kubelet would register it; `kubectl apply` validates through our
    // OpenAPI document and creates it.
    let out = env.ok_with_input(&["apply", "-f", "-"], NODE).await;
    assert_eq!(out.trim(), "node/node3 created");
    let out = env.ok(&["get", "nodes"]).await;
    assert_eq!(header(&out), ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let r = row(&out, "node3");
    assert_eq!((r[1], r[2], r[4]), ("Ready", "<none>", "v1.32.0"));
    let out = env.ok(&["get", "nodes", "-o", "wide"]).await;
    assert!(row(&out, "node3").contains(&"10.0.0.13"), "{out}");

    // The assignment's command.
    let out = env
        .ok(&["run", "alpine", "--image=alpine", "--", "ping", "8.8.8.8"])
        .await;
    assert_eq!(out.trim(), "pod/alpine created");
    let out = env.ok(&["get", "pods"]).await;
    assert_eq!(header(&out), ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(row(&out, "alpine")[..4], ["alpine", "0/1", "Pending", "0"]);
    let out = env.ok(&["get", "pods", "-o", "wide"]).await;
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let out = env.ok(&["get", "pods", "-o", "json"]).await;
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["kind"], "List");
    let pod = &list["items"][0];
    assert_eq!(
        pod["spec"]["containers"][0]["args"],
        serde_json::json!(["ping", "8.8.8.8"])
    );
    assert_eq!(pod["spec"]["schedulerName"], "default-scheduler");
    assert_eq!(pod["metadata"]["labels"]["run"], "alpine");
    let out = env.ok(&["get", "pod", "alpine", "-o", "yaml"]).await;
    assert!(
        out.contains("  - args:\n    - ping\n    - 8.8.8.8\n"),
        "{out}"
    );
    let args = [
        "get",
        "pod",
        "alpine",
        "-o",
        "jsonpath={.spec.containers[0].args}",
    ];
    assert_eq!(env.ok(&args).await, r#"["ping","8.8.8.8"]"#);
    // `-- ping 8.8.8.8` sets args; the image's entrypoint stays, so command is empty.
    let args = [
        "get",
        "pod",
        "alpine",
        "-o",
        "jsonpath={.spec.containers[0].command}",
    ];
    assert_eq!(env.ok(&args).await, "");

    // `get -w` lists, then watches from the list's resourceVersion and prints changes.
    let mut watch = env.spawn(&["get", "pods", "-w"]);
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.starts_with("NAME"));
    assert!(next_line(&mut lines).await.starts_with("alpine"));
    let out = env.ok(&["label", "pod", "alpine", "tier=backend"]).await;
    assert_eq!(out.trim(), "pod/alpine labeled");
    assert!(next_line(&mut lines).await.starts_with("alpine"));
    watch.kill().await.unwrap();

    let out = env.ok(&["annotate", "pod", "alpine", "course=k8s"]).await;
    assert_eq!(out.trim(), "pod/alpine annotated");
    let out = env.ok(&["get", "pod", "alpine", "--show-labels"]).await;
    assert!(
        row(&out, "alpine").last().unwrap().contains("tier=backend"),
        "{out}"
    );

    // describe finds a pod's events by involvedObject name, namespace and uid.
    let uid = env
        .ok(&["get", "pod", "alpine", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let event = EVENT.replace("POD_UID", &uid);
    let out = env.ok_with_input(&["apply", "-f", "-"], &event).await;
    assert_eq!(out.trim(), "event/alpine.1 created");
    let out = env.ok(&["describe", "pod", "alpine"]).await;
    for want in [
        "Name:         alpine",
        "Namespace:    default",
        "Status:       Pending",
        "Args:",
        "8.8.8.8",
        "course: k8s",
    ] {
        assert!(out.contains(want), "describe lacks {want:?}:\n{out}");
    }
    assert!(
        out.contains("Successfully assigned default/alpine to node3"),
        "{out}"
    );
    let out = env.ok(&["get", "events"]).await;
    assert_eq!(
        header(&out),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(
        out.contains("Normal   Scheduled   pod/alpine   Successfully assigned"),
        "{out}"
    );

    // A typed command: kubectl sends this one as Kubernetes protobuf.
    let out = env
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
        ])
        .await;
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = env.ok(&["get", "deploy", "web", "-o", "wide"]).await;
    assert_eq!(
        header(&out),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let r = row(&out, "web");
    assert_eq!(
        (r[1], r[5], r[6], r[7]),
        ("0/2", "nginx", "nginx", "app=web")
    );

    // apply twice: created, then unchanged (the second is a no-op patch).
    let out = env.ok_with_input(&["apply", "-f", "-"], REPLICASET).await;
    assert_eq!(out.trim(), "replicaset.apps/front created");
    let rs_version = [
        "get",
        "rs",
        "front",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ];
    let rv = env.ok(&rs_version).await;
    let out = env.ok_with_input(&["apply", "-f", "-"], REPLICASET).await;
    assert_eq!(out.trim(), "replicaset.apps/front unchanged");
    let again = env.ok(&rs_version).await;
    assert_eq!(rv, again, "a no-op apply must not write");
    let out = env.ok(&["scale", "rs/front", "--replicas=5"]).await;
    assert_eq!(out.trim(), "replicaset.apps/front scaled");
    let out = env.ok(&["get", "rs", "front"]).await;
    assert_eq!(header(&out), ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]);
    assert_eq!(row(&out, "front")[1], "5");
    let generation = env
        .ok(&[
            "get",
            "rs",
            "front",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .await;
    assert_eq!(generation, "2");

    // Errors read as Kubernetes writes them.
    let out = env.kubectl(&["get", "pod", "nope"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        r#"Error from server (NotFound): pods "nope" not found"#
    );
    let out = env.kubectl(&["run", "alpine", "--image=alpine"]).await;
    assert_eq!(
        out.stderr.trim(),
        r#"Error from server (AlreadyExists): pods "alpine" already exists"#
    );
    let out = env.kubectl(&["run", "Bad_Name", "--image=alpine"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(r#"The Pod "Bad_Name" is invalid: "#),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains(r#"* metadata.name: Invalid value: "Bad_Name""#),
        "{out:?}"
    );

    let out = env.ok(&["get", "--raw", "/readyz"]).await;
    assert_eq!(out, "ok");

    // The etcd keys are kube-apiserver's layout.
    let store =
        kvstore::client::Client::new(kvstore::client::ClientConfig::new(env.etcd.endpoints()))
            .unwrap();
    let keys = store
        .range(RangeRequest {
            key: b"/registry/".to_vec(),
            range_end: b"/registry0".to_vec(),
            keys_only: true,
            ..RangeRequest::default()
        })
        .await
        .unwrap();
    let keys: Vec<String> = keys
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    for want in [
        "/registry/deployments/default/web",
        "/registry/events/default/alpine.1",
        "/registry/minions/node3",
        "/registry/namespaces/default",
        "/registry/pods/default/alpine",
        "/registry/replicasets/default/front",
    ] {
        assert!(keys.contains(&want.to_string()), "{want} not in {keys:#?}");
    }

    // Logs come from the kubelet of the pod's node, through the apiserver.
    let out = env.kubectl(&["logs", "alpine"]).await;
    assert!(
        out.stderr
            .contains("pod alpine does not have a host assigned"),
        "{out:?}"
    );
    let kubelet = support::fake_kubelet().await;
    let client = env.client(vec![env.url()]);
    let patch = serde_json::json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port()}}}});
    client
        .patch_status::<api::types::Node>("", "node3", &patch)
        .await
        .unwrap();
    client.bind("default", "alpine", "node3").await.unwrap();
    let out = env.ok(&["logs", "alpine", "--tail=1"]).await;
    assert!(
        out.starts_with("asked /containerLogs/default/alpine/alpine?"),
        "{out}"
    );
    assert!(out.contains("64 bytes from 8.8.8.8"), "{out}");

    // A pod on a node is only marked for deletion until its kubelet confirms; kubectl
    // (which would wait for that) shows it Terminating meanwhile.
    let out = env.ok(&["delete", "pod", "alpine", "--wait=false"]).await;
    assert_eq!(out.trim(), r#"pod "alpine" deleted"#);
    let out = env.ok(&["get", "pod", "alpine"]).await;
    assert_eq!(row(&out, "alpine")[2], "Terminating");
    let mut waiting = env.spawn(&["delete", "pod", "alpine"]);
    // kubectl prints this once its DELETE is answered, then waits for the pod to go.
    let mut said = BufReader::new(waiting.stdout.take().unwrap()).lines();
    assert_eq!(next_line(&mut said).await, r#"pod "alpine" deleted"#);
    let confirm = api::types::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    client
        .delete_with::<api::types::Pod>("default", "alpine", &confirm)
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), waiting.wait())
        .await
        .expect("kubectl delete returns once the pod is gone")
        .unwrap();
    assert!(status.success());
    let out = env.kubectl(&["get", "pod", "alpine"]).await;
    assert!(out.stderr.contains("NotFound"), "{out:?}");
    // An unscheduled pod has nothing to stop: it goes at once.
    env.ok(&["run", "lonely", "--image=alpine"]).await;
    let out = env.ok(&["delete", "pod", "lonely"]).await;
    assert_eq!(out.trim(), r#"pod "lonely" deleted"#);

    // Quorum lost: kubectl gets a clear error in bounded time, and works again when
    // a second member is back.
    env.etcd.stop(2).await;
    env.etcd.stop(3).await;
    let started = Instant::now();
    let out = env.kubectl(&["get", "pods"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("Error from server (ServiceUnavailable): etcdserver:"),
        "{out:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let out = env.kubectl(&["get", "--raw", "/readyz"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    env.etcd.restart(2).await.unwrap();
    let out = env.until(&["get", "rs"], |o| o.code == 0).await;
    assert!(out.stdout.contains("front"), "{out:?}");
}
