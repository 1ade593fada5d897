//! `GET pods/{name}/log`: the apiserver does not have the logs; the kubelet of the pod's
//! node does. The apiserver finds the node (`spec.nodeName`), its address
//! (`status.addresses` InternalIP) and its kubelet's port
//! (`status.daemonEndpoints.kubeletEndpoint.Port`), asks the kubelet's
//! `/containerLogs/{namespace}/{pod}/{container}`, and streams the answer back — which
//! is why `kubectl logs` fails when the node's kubelet is down even though the
//! apiserver is fine.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use seams::net::SharedNetwork;

use crate::error::{Error, Result};
use crate::registry;
use crate::response::Body;
use crate::rest::{Registry, Scope};
use crate::types::{Node, Pod};

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Internal(e.to_string()))
}

/// Proxies a log request to the kubelet of the pod's node.
pub async fn proxy(
    registry: &Registry,
    network: &SharedNetwork,
    namespace: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>> {
    let pods = registry::find("", "v1", "pods").expect("pods are served");
    let nodes = registry::find("", "v1", "nodes").expect("nodes are served");
    let pod: Pod = decode(
        registry
            .get(Scope {
                rt: pods,
                namespace,
                name,
            })
            .await?,
    )?;
    let containers: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let container = match query.get("container").map(String::as_str) {
        Some(c) if !c.is_empty() => {
            if !containers.contains(&c) {
                return Err(Error::BadRequest(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        _ if containers.len() == 1 => containers[0].to_string(),
        _ => {
            return Err(Error::BadRequest(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
    };
    if pod.spec.node_name.is_empty() {
        return Err(Error::BadRequest(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let node_scope = Scope {
        rt: nodes,
        namespace: "",
        name: &pod.spec.node_name,
    };
    let node: Node = decode(registry.get(node_scope).await?)?;
    let host = node
        .status
        .addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .unwrap_or_default();
    let port = node.status.daemon_endpoints.kubelet_endpoint.port;
    let mut path = format!("/containerLogs/{namespace}/{name}/{container}");
    let passed: Vec<String> = ["follow", "tailLines", "previous", "timestamps"]
        .iter()
        .filter_map(|k| query.get(*k).map(|v| format!("{k}={v}")))
        .collect();
    if !passed.is_empty() {
        path = format!("{path}?{}", passed.join("&"));
    }
    let url = format!("http://{host}:{port}{path}");
    let unreachable = |why: String| Error::Internal(format!("Get \"{url}\": {why}"));
    // The node's address as its kubelet registered it: dialed through the network
    // seam (on the simulator's network `10.0.0.13:10250` is a loopback port).
    let tcp = network
        .connect(&format!("{host}:{port}"))
        .await
        .map_err(|e| unreachable(format!("dial tcp {host}:{port}: {e}")))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !answer.status().is_success() {
        let code = answer.status().as_u16();
        let body = answer
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(Error::Upstream {
            code,
            message: String::from_utf8_lossy(&body).trim().to_string(),
        });
    }
    // The kubelet's body streams through as it arrives (`kubectl logs -f`); a broken
    // kubelet connection ends it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let mut body = answer.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                if tx.send(data).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut response = crate::response::streamed(rx);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}
