//! The kubelet's HTTP endpoint (port 10250): `GET /containerLogs/{ns}/{pod}/{container}`
//! answers with the container's output — what `kubectl logs` shows, through the
//! apiserver. `tailLines=N` keeps the last N lines; `follow=true` keeps the answer
//! open and streams new lines as they come.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};

use crate::kubelet::types::{CONTAINER_NAME_LABEL, POD_NAMESPACE_LABEL, POD_NAME_LABEL};
use crate::kubelet::KUBELET_PORT;
use crate::node::NodeContext;
use crate::runtime::Runtime;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn text(code: StatusCode, s: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(s)).boxed());
    *r.status_mut() = code;
    r
}

/// Serves until aborted.
pub async fn serve(node: Arc<NodeContext>, runtime: Arc<Runtime>) {
    let address = format!("{}:{KUBELET_PORT}", node.ip);
    let mut listener = match seams::Network::listen(&*node.network, &address) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(node = %node.name, error = %e, "the kubelet cannot listen");
            return;
        }
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            biased;
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted.stream,
                Err(_) => continue,
            },
            Some(_) = connections.join_next() => continue,
        };
        let runtime = runtime.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let runtime = runtime.clone();
                async move { Ok::<_, Infallible>(handle(&runtime, req).await) }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            // No `Date` from the machine's clock in a simulated run.
            let _ = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(io, service)
                .await;
        });
    }
}

async fn handle(runtime: &Arc<Runtime>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts[..] else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    };
    // The pod's container, by its labels (the kubelet's own, not a look-alike name).
    let is_it = |labels: &std::collections::BTreeMap<String, String>| {
        let label = |k: &str| labels.get(k).map(String::as_str);
        label(POD_NAMESPACE_LABEL) == Some(ns)
            && label(POD_NAME_LABEL) == Some(pod)
            && label(CONTAINER_NAME_LABEL) == Some(container)
    };
    let name = runtime
        .list()
        .await
        .into_iter()
        .find(|c| is_it(&c.labels))
        .map(|c| c.name)
        .unwrap_or_default();
    let param = |k: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    let lines = match runtime.logs(&name).await {
        Ok(lines) => lines,
        Err(_) => {
            let message = format!("container \"{container}\" in pod \"{pod}\" is not available");
            return text(StatusCode::NOT_FOUND, message);
        }
    };
    let tail: Option<usize> = param("tailLines").and_then(|t| t.parse().ok());
    let start = tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = String::new();
    for line in &lines[start..] {
        out.push_str(line);
        out.push('\n');
    }
    if param("follow").as_deref() != Some("true") {
        return text(StatusCode::OK, out);
    }
    // Follow: what is there now, then each new line as it appears.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let runtime = runtime.clone();
    let mut seen = lines.len();
    tokio::spawn(async move {
        if tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
        loop {
            runtime.clock().sleep(Duration::from_millis(200)).await;
            let Ok(lines) = runtime.logs(&name).await else {
                return;
            };
            for line in &lines[seen.min(lines.len())..] {
                if tx.send(Bytes::from(format!("{line}\n"))).await.is_err() {
                    return;
                }
            }
            seen = lines.len();
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let frames = tokio_stream::StreamExt::map(stream, |b| Ok::<_, Infallible>(Frame::data(b)));
    Response::new(BodyExt::boxed(StreamBody::new(frames)))
}
