//! A typed client of the API, what the scheduler, the controllers and the kubelets use
//! (client-go, in miniature): get/list/watch/create/update/patch/delete per kind, over
//! HTTPS with a bearer token, failing over between several apiserver endpoints.
//!
//! Failover is for connections only: an apiserver that answers — even with an error —
//! has spoken for the cluster, and its answer is returned. One that cannot be reached
//! is skipped for the next one, and every clone of the client remembers the move. A
//! write whose connection broke after it was sent is *not* sent again elsewhere: it may
//! have happened, and the caller must read to find out (as with etcd).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use seams::clock::SharedClock;
use seams::Host;

use crate::connect::Connector;
use crate::error::{Error, Result};
use crate::kubeconfig::Kubeconfig;
use api::types::{List, Resource, Status};

type Http = hyper_util::client::legacy::Client<HttpsConnector<Connector>, Full<Bytes>>;

/// Filters and paging of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: i64,
}

impl ListParams {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if !self.label_selector.is_empty() {
            q.push(("labelSelector", self.label_selector.clone()));
        }
        if !self.field_selector.is_empty() {
            q.push(("fieldSelector", self.field_selector.clone()));
        }
        if self.limit > 0 {
            q.push(("limit", self.limit.to_string()));
        }
        q
    }
}

#[derive(Clone)]
pub struct Client {
    endpoints: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    token: Option<String>,
    http: Http,
    clock: SharedClock,
    /// How long one request may take (watches excepted).
    pub timeout: Duration,
    /// Who is asking (User-Agent), e.g. `kube-scheduler/node1`.
    pub user_agent: String,
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `/api/v1/namespaces/default/pods` or `/apis/apps/v1/replicasets`.
pub fn collection_path<T: Resource>(namespace: Option<&str>) -> String {
    api::paths::collection_url(T::GROUP, T::VERSION, T::PLURAL, T::NAMESPACED, namespace)
}

fn object_path<T: Resource>(namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_path::<T>(Some(namespace)))
}

/// An error response's `Status`, as the crate's error.
fn status_error(code: StatusCode, body: &[u8]) -> Error {
    let status: Status = serde_json::from_slice(body).unwrap_or_else(|_| Status {
        message: String::from_utf8_lossy(body).into_owned(),
        ..Status::default()
    });
    let target = || {
        let d = status.details.clone().unwrap_or_default();
        api::Target::new(&d.group, &d.kind, &d.name)
    };
    match status.reason.as_str() {
        "NotFound" if status.details.is_some() => Error::NotFound(target()),
        "AlreadyExists" => Error::AlreadyExists(target()),
        "Conflict" => Error::Conflict(target()),
        "Expired" | "Gone" => Error::Expired(status.message),
        "Unauthorized" => Error::Unauthorized,
        _ => Error::Remote {
            code: code.as_u16(),
            reason: status.reason,
            message: status.message,
        },
    }
}

impl Client {
    /// A client of `endpoints` (`https://10.0.0.11:6443`, ...), trusting `ca_pem` and
    /// sending `token`.
    /// Every connection is dialed through `host`'s network, every timeout read from its
    /// clock.
    pub fn new(
        host: &Host,
        endpoints: Vec<String>,
        ca_pem: Option<&str>,
        token: Option<String>,
    ) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(Error::Config("no apiserver endpoints given".into()));
        }
        let tls = match ca_pem {
            Some(pem) => crate::tls::client_config(pem)?,
            None => crate::tls::client_config("")?,
        };
        // The network seam dials; TLS is layered on top. (The real network turns
        // Nagle's algorithm off, as Go's net package does for every client of the
        // real apiserver: a request written while the previous one is unacknowledged
        // would otherwise wait 40 ms for a delayed ACK.)
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(Connector::new(host.network.clone()));
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            // No idle timeout of its own: the apiserver closes idle connections (after 32 s),
            // and hyper-util would time this one by the machine's clock, not the client's.
            .pool_idle_timeout(None)
            .build(connector);
        Ok(Client {
            endpoints: Arc::new(endpoints),
            current: Arc::new(AtomicUsize::new(0)),
            token,
            http,
            clock: host.clock.clone(),
            timeout: Duration::from_secs(10),
            user_agent: "miniplane".into(),
        })
    }

    /// A client for the current context of a kubeconfig.
    pub fn from_kubeconfig(host: &Host, text: &str) -> Result<Self> {
        let target = Kubeconfig::parse(text)?.target()?;
        Client::new(
            host,
            vec![target.server],
            target.ca_pem.as_deref(),
            target.token,
        )
    }

    /// A client for the kubeconfig at `path` (a component's `--kubeconfig`).
    pub fn from_kubeconfig_file(host: &Host, path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading --kubeconfig {}: {e}", path.display())))?;
        Client::from_kubeconfig(host, &text)
    }

    /// The clock the client times with (informers and leader election use it too).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The endpoint in use.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current.load(Ordering::Relaxed) % self.endpoints.len()]
    }

    /// Sends one request, moving to the next endpoint when one cannot be reached.
    /// Returns the status and the response (its body still streaming).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        self.send_accepting(method, path_and_query, "application/json", body)
            .await
    }

    /// A request with its whole answer: status code and body. `accept` picks the form
    /// (kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io`).
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<(u16, Bytes)> {
        let response = self
            .send_accepting(method, path_and_query, accept, body)
            .await?;
        let code = response.status().as_u16();
        let bytes = self
            .clock
            .timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| Error::Unreachable(format!("{path_and_query}: the answer stalled")))?
            .map_err(|e| Error::Unreachable(format!("{path_and_query}: {e}")))?
            .to_bytes();
        Ok((code, bytes))
    }

    /// The decoded error of a failed answer.
    pub fn error_of(code: u16, body: &[u8]) -> Error {
        status_error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body,
        )
    }

    /// A request whose answer is read as it comes (a watch as a Table, a followed
    /// log): `accept` picks the form.
    pub async fn send_accepting(
        &self,
        method: Method,
        path_and_query: &str,
        accept: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let n = self.endpoints.len();
        let mut last = String::new();
        for _ in 0..n {
            let at = self.current.load(Ordering::Relaxed) % n;
            let url = format!("{}{path_and_query}", self.endpoints[at]);
            let mut req = Request::builder()
                .method(method.clone())
                .uri(&url)
                .header("accept", accept)
                .header("user-agent", &self.user_agent);
            if let Some(token) = &self.token {
                req = req.header("authorization", format!("Bearer {token}"));
            }
            let payload = match &body {
                Some((content_type, bytes)) => {
                    req = req.header("content-type", *content_type);
                    Bytes::from(bytes.clone())
                }
                None => Bytes::new(),
            };
            let req = req
                .body(Full::new(payload))
                .map_err(|e| Error::Config(format!("{url}: {e}")))?;
            match self
                .clock
                .timeout(self.timeout, self.http.request(req))
                .await
            {
                Ok(Ok(response)) => return Ok(response),
                // A write that reached the server may have happened: trying it on the
                // next apiserver could do it twice. Only reads, and requests that never
                // got a connection, move on.
                Ok(Err(e)) if method != Method::GET && !e.is_connect() => {
                    return Err(Error::Unreachable(format!(
                        "{url}: {e} (the outcome is unknown)"
                    )));
                }
                Ok(Err(e)) => last = format!("{url}: {e}"),
                Err(_) if method != Method::GET => {
                    return Err(Error::Unreachable(format!(
                        "{url}: no answer in {:?} (the outcome is unknown)",
                        self.timeout
                    )));
                }
                Err(_) => last = format!("{url}: no answer in {:?}", self.timeout),
            }
            let _ = self.current.compare_exchange(
                at,
                (at + 1) % n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Err(Error::Unreachable(last))
    }

    /// A request whose JSON answer is decoded as `R`.
    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<R> {
        let response = self.send(method, path, body).await?;
        let code = response.status();
        let bytes = self
            .clock
            .timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| Error::Unreachable(format!("{path}: the answer stalled")))?
            .map_err(|e| Error::Unreachable(format!("{path}: {e}")))?
            .to_bytes();
        if !code.is_success() {
            return Err(status_error(code, &bytes));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Decode(format!("{path}: unexpected answer: {e}")))
    }

    fn json<B: Serialize>(body: &B) -> Option<(&'static str, Vec<u8>)> {
        let bytes = serde_json::to_vec(body).expect("API objects always serialise");
        Some(("application/json", bytes))
    }

    pub async fn get<T: Resource>(&self, namespace: &str, name: &str) -> Result<T> {
        self.call(Method::GET, &object_path::<T>(namespace, name), None)
            .await
    }

    /// Lists objects of a kind in one namespace (or all of them, with `None`).
    pub async fn list<T: Resource>(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<List<T>> {
        let path = with_query(collection_path::<T>(namespace), &params.query());
        self.call(Method::GET, &path, None).await
    }

    pub async fn create<T: Resource>(&self, object: &T) -> Result<T> {
        let ns = object.metadata().namespace.clone();
        let path = collection_path::<T>(Some(if ns.is_empty() { "default" } else { &ns }));
        self.call(Method::POST, &path, Self::json(object)).await
    }

    /// Replaces an object; its `resourceVersion` makes this fail with `Conflict` if the
    /// object changed since it was read.
    pub async fn update<T: Resource>(&self, object: &T) -> Result<T> {
        let m = object.metadata();
        self.call(
            Method::PUT,
            &object_path::<T>(&m.namespace, &m.name),
            Self::json(object),
        )
        .await
    }

    /// Writes only the status (the `/status` subresource).
    pub async fn update_status<T: Resource>(&self, object: &T) -> Result<T> {
        let m = object.metadata();
        let path = format!("{}/status", object_path::<T>(&m.namespace, &m.name));
        self.call(Method::PUT, &path, Self::json(object)).await
    }

    /// A JSON merge patch (`application/merge-patch+json`).
    pub async fn patch<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<T> {
        self.merge_patch(object_path::<T>(namespace, name), patch)
            .await
    }

    /// A JSON merge patch of the status.
    pub async fn patch_status<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<T> {
        let path = format!("{}/status", object_path::<T>(namespace, name));
        self.merge_patch(path, patch).await
    }

    async fn merge_patch<T: Resource>(&self, path: String, patch: &Value) -> Result<T> {
        let body = Some((
            "application/merge-patch+json",
            patch.to_string().into_bytes(),
        ));
        self.call(Method::PATCH, &path, body).await
    }

    /// Deletes an object (a bound pod is only marked, until its kubelet confirms).
    pub async fn delete<T: Resource>(&self, namespace: &str, name: &str) -> Result<T> {
        self.call(Method::DELETE, &object_path::<T>(namespace, name), None)
            .await
    }

    /// Deletes with options: a kubelet confirms a pod's end with a grace period of 0.
    pub async fn delete_with<T: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &api::types::DeleteOptions,
    ) -> Result<T> {
        let path = object_path::<T>(namespace, name);
        self.call(Method::DELETE, &path, Self::json(options)).await
    }

    /// `POST pods/{name}/binding`: what the scheduler does to place a pod.
    pub async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<()> {
        let binding = serde_json::json!({
            "kind": "Binding", "apiVersion": "v1",
            "metadata": {"name": pod, "namespace": namespace},
            "target": {"kind": "Node", "apiVersion": "v1", "name": node},
        });
        let path = format!("{}/binding", object_path::<api::types::Pod>(namespace, pod));
        let _: Value = self.call(Method::POST, &path, Self::json(&binding)).await?;
        Ok(())
    }

    /// Opens a watch from `resource_version`: a stream of events, one per line.
    pub async fn watch<T: Resource>(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
        resource_version: &str,
    ) -> Result<crate::informer::WatchStream<T>> {
        let mut query = params.query();
        query.push(("watch", "true".into()));
        query.push(("resourceVersion", resource_version.into()));
        query.push(("allowWatchBookmarks", "true".into()));
        let path = with_query(collection_path::<T>(namespace), &query);
        let response = self.send(Method::GET, &path, None).await?;
        let code = response.status();
        if !code.is_success() {
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(status_error(code, &bytes));
        }
        Ok(crate::informer::WatchStream::new(response.into_body()))
    }
}

fn with_query(path: String, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return path;
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("{path}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::types::{Node, Pod, ReplicaSet};

    #[test]
    fn paths_are_built_per_kind() {
        assert_eq!(
            collection_path::<Pod>(Some("default")),
            "/api/v1/namespaces/default/pods"
        );
        assert_eq!(collection_path::<Pod>(None), "/api/v1/pods");
        assert_eq!(collection_path::<Node>(Some("ignored")), "/api/v1/nodes");
        assert_eq!(
            object_path::<ReplicaSet>("default", "web"),
            "/apis/apps/v1/namespaces/default/replicasets/web"
        );
        let params = ListParams {
            field_selector: "spec.nodeName=node3".into(),
            ..ListParams::default()
        };
        assert_eq!(
            with_query("/p".into(), &params.query()),
            "/p?fieldSelector=spec.nodeName%3Dnode3"
        );
    }

    #[test]
    fn error_statuses_become_typed_errors() {
        // A Status as kube-apiserver sends it with a 409.
        let body = br#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
            "message":"Operation cannot be fulfilled on pods \"x\": the object has been modified",
            "reason":"Conflict","details":{"name":"x","kind":"pods"},"code":409}"#;
        let e = status_error(StatusCode::CONFLICT, body);
        assert_eq!(e, Error::Conflict(api::Target::new("", "pods", "x")));
        let e = status_error(StatusCode::BAD_GATEWAY, b"plain text");
        assert!(matches!(e, Error::Remote { code: 502, .. }));
    }
}
