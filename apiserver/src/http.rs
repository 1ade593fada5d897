//! The HTTP edge: hyper accepts connections, [`route`] turns a path into what it names,
//! and [`handle`] runs the verb and writes JSON (or a Table, or a watch stream).
//!
//! URL shapes, as kube-apiserver serves them:
//! - `/api/v1/namespaces/{ns}/pods[/{name}[/{subresource}]]` — a namespaced kind;
//! - `/api/v1/nodes[/{name}[/status]]` — a cluster-scoped kind;
//! - `/api/v1/pods` — one namespaced kind across all namespaces (`kubectl get -A`);
//! - `/apis/{group}/{version}/...` — the same for named groups (`apps`).
//!
//! Before a request reaches its verb it passes, in order: the dot-segment and token
//! checks ([`crate::authn`]), the in-flight budget, and the bounded read of its body
//! ([`crate::limits`]); its connection was bounded by the same module when it was
//! accepted ([`serve`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::authn::{self, Caller};
use crate::error::{Error, Result};
use crate::healthz::{self, Endpoint};
use crate::limits::{AcceptBackoff, Budget, InFlight, Limits};
use crate::registry::{self, ResourceType};
use crate::rest::{ListOptions, PatchType, Registry, Scope};
use crate::selectors::{parse_fields, parse_labels};
use crate::{body, discovery, stream};

pub type Body = BoxBody<Bytes, Infallible>;

/// What the server needs to answer requests.
pub struct ApiServer {
    pub registry: Registry,
    /// `host:port` clients should use (discovery's serverAddressByClientCIDRs).
    pub advertise: String,
    /// Bearer token → user name; when empty, requests need no token.
    pub tokens: HashMap<String, String>,
    /// Where a node's kubelet is, for `pods/log`.
    pub kubelets: crate::logs::Resolver,
    /// Bounds on connections, bodies and time.
    pub limits: Limits,
    /// The requests being served now, against `limits`' in-flight budgets.
    pub inflight: InFlight,
}

/// What a path names.
#[derive(Debug, PartialEq)]
pub enum Route {
    Version,
    /// `/healthz`, `/livez`, `/readyz`, or one of their checks (`/readyz/etcd`).
    Health(Endpoint, Option<String>),
    Api,
    Apis,
    ApiGroup(String),
    GroupVersion(String, String),
    OpenApiIndex,
    OpenApi(String),
    Resource {
        rt: &'static ResourceType,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

/// Parses a path (without the query) into a route.
pub fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    Some(match segs[..] {
        ["version"] => Route::Version,
        [first, ref check @ ..] if check.len() <= 1 && Endpoint::from_segment(first).is_some() => {
            let endpoint = Endpoint::from_segment(first)?;
            Route::Health(endpoint, check.first().map(|c| c.to_string()))
        }
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["api", "v1"] => Route::GroupVersion(String::new(), "v1".into()),
        ["apis", g] => Route::ApiGroup(g.into()),
        ["apis", g, v] => Route::GroupVersion(g.into(), v.into()),
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", ..] => Route::OpenApi(segs[2..].join("/")),
        ["api", "v1", ref rest @ ..] => resource_route("", "v1", rest)?,
        ["apis", g, v, ref rest @ ..] => resource_route(g, v, rest)?,
        _ => return None,
    })
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let namespaced = match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            registry::find(group, version, plural)
                .filter(|rt| rt.namespaced)
                .map(|rt| (rt, Some(ns.to_string()), tail))
        }
        _ => None,
    };
    let (rt, namespace, tail) = match namespaced {
        Some(found) => found,
        None => {
            let (plural, tail) = rest.split_first()?;
            let rt = registry::find(group, version, plural)?;
            if rt.namespaced && !tail.is_empty() {
                return None;
            }
            (rt, None, tail)
        }
    };
    if tail.len() > 2 {
        return None;
    }
    Some(Route::Resource {
        rt,
        namespace,
        name: tail.first().map(|s| s.to_string()),
        sub: tail.get(1).map(|s| s.to_string()),
    })
}

/// `a=b&c=d%3De` → a map, percent-decoded.
pub fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Every value of `key` in a query, percent-decoded (`exclude=a&exclude=b`).
pub fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A JSON response.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_typed(code, v, "application/json")
}

fn json_typed(code: u16, v: &Value, content_type: &'static str) -> Response<Body> {
    let body = serde_json::to_vec(v).expect("a JSON value always serialises");
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An error as a `Status` body (with `Retry-After` when the client should retry).
pub fn error_response(e: &Error) -> Response<Body> {
    let mut r = json_response(
        e.code(),
        &serde_json::to_value(e.to_status()).unwrap_or_default(),
    );
    if let Error::TooManyRequests = e {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

/// Accepts connections until the task is aborted, one task per connection; with
/// `tls`, each connection is a TLS handshake first. A failed `accept()` (out of file
/// descriptors, most often) is counted in `accept_errors`, logged, and retried after a
/// growing pause; a connection past `max_connections` is closed at once; every
/// connection's handshake and request heads have `header_read_timeout`
/// ([`crate::limits`]).
pub async fn serve(
    listener: TcpListener,
    server: Arc<ApiServer>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    accept_errors: Arc<std::sync::atomic::AtomicU64>,
) {
    let limits = server.limits.clone();
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    // Connections live in a set owned by this loop: when the loop is aborted (the
    // server stops), every connection goes with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    backoff.succeeded();
                    tcp
                }
                Err(e) => {
                    accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let wait = backoff.failed();
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64,
                                   "accepting a connection failed; trying again after a pause");
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
            Some(_) = connections.join_next() => continue,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::debug!(
                max_connections = limits.max_connections,
                "too many connections: closing a new one"
            );
            continue; // dropping `tcp` closes it
        };
        // Watch events and responses are small writes: send each at once (Go's net
        // package sets TCP_NODELAY on every connection of the real apiserver).
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        let header_timeout = limits.header_read_timeout;
        connections.spawn(async move {
            let _place = place; // held for as long as the connection is served
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(server, req).await) }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let served = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let io = hyper_util::rt::TokioIo::new(stream);
                            http.serve_connection(io, service).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    http.serve_connection(io, service).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

/// Answers one request; never fails (errors become `Status` responses).
pub async fn handle(server: Arc<ApiServer>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = parse_query(&raw_query);
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (accept, content_type) = (header("accept"), header("content-type"));
    if let Err(e) = authn::refuse_dot_segments(&path) {
        return error_response(&e);
    }
    let target = route(&path);
    if !server.tokens.is_empty() {
        match authn::authenticate(&header("authorization"), &server.tokens) {
            Caller::User(_) => {}
            Caller::Anonymous if target.as_ref().is_some_and(authn::is_public) => {}
            Caller::Anonymous | Caller::BadToken => return error_response(&Error::Unauthorized),
        }
    }
    let _place = match server
        .inflight
        .admit(budget(&parts.method, target.as_ref(), &query))
    {
        Ok(place) => place,
        Err(e) => return error_response(&e),
    };
    let body = match crate::limits::read_body(body, &server.limits).await {
        Ok(bytes) => bytes,
        Err(e) => return error_response(&e),
    };
    let _turn = server.inflight.large_body_turn(body.len()).await;
    let request = ApiRequest {
        method: parts.method,
        query,
        raw_query,
        accept,
        content_type,
        body,
    };
    match dispatch(&server, &request, target).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

/// Which in-flight budget a request counts against: long-running requests (watches,
/// logs) and health checks count against none, as in kube-apiserver.
fn budget(method: &Method, target: Option<&Route>, query: &HashMap<String, String>) -> Budget {
    let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    match target {
        Some(Route::Health(..)) => Budget::Exempt,
        Some(Route::Resource { sub: Some(s), .. }) if s == "log" => Budget::Exempt,
        _ if watch => Budget::Exempt,
        _ if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) => Budget::ReadOnly,
        _ => Budget::Mutating,
    }
}

/// A request with its body read.
pub struct ApiRequest {
    pub method: Method,
    pub query: HashMap<String, String>,
    /// The query as sent, for parameters that may repeat (`dryRun`).
    pub raw_query: String,
    pub accept: String,
    pub content_type: String,
    pub body: Bytes,
}

impl ApiRequest {
    /// The body as JSON, whatever it was sent as ([`crate::body`]).
    fn json_body(&self) -> Result<Value> {
        let media = self.content_type.split(';').next().unwrap_or("").trim();
        if media == "application/vnd.kubernetes.protobuf" {
            return crate::protobuf::decode(&self.body);
        }
        if media.contains("protobuf") || media.contains("cbor") {
            return Err(Error::UnsupportedMediaType);
        }
        if self.body.is_empty() {
            return Err(Error::BadRequest("the request has no body".into()));
        }
        if media == "application/apply-patch+yaml" {
            return body::apply_yaml(&self.body);
        }
        body::json(&self.body)
    }

    fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
    }

    /// `dryRun=All`: validate and answer, write nothing. `options` is the kind of
    /// options the verb takes (`CreateOptions`, ...), named in the error for any other
    /// value, as kube-apiserver answers it; `more` are values from the body (a
    /// DeleteOptions' `dryRun`).
    fn dry_run(&self, options: &str, more: &[String]) -> Result<bool> {
        let mut values = query_values(&self.raw_query, "dryRun");
        values.extend(more.iter().cloned());
        if values.iter().all(|v| v == "All") {
            return Ok(!values.is_empty());
        }
        let shown: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
        Err(Error::Invalid {
            group: "meta.k8s.io".into(),
            kind: options.into(),
            name: String::new(),
            causes: vec![crate::types::StatusCause {
                reason: "FieldValueNotSupported".into(),
                message: format!(
                    "Unsupported value: []string{{{}}}: supported values: \"All\"",
                    shown.join(", ")
                ),
                field: "dryRun".into(),
            }],
        })
    }
}

async fn dispatch(
    server: &Arc<ApiServer>,
    req: &ApiRequest,
    route: Option<Route>,
) -> Result<Response<Body>> {
    let route = route.ok_or(Error::NoSuchPath)?;
    let get_only = !matches!(route, Route::Resource { .. });
    if get_only && req.method != Method::GET {
        return Err(Error::MethodNotAllowed);
    }
    Ok(match route {
        Route::Version => json_response(200, &discovery::version()),
        Route::Health(endpoint, check) => {
            let store = &server.registry.store;
            healthz::serve(endpoint, check.as_deref(), &req.raw_query, store).await?
        }
        Route::Api if req.accept.contains("as=APIGroupDiscoveryList") => {
            json_typed(200, &discovery::aggregated(true), discovery::AGGREGATED)
        }
        Route::Apis if req.accept.contains("as=APIGroupDiscoveryList") => {
            json_typed(200, &discovery::aggregated(false), discovery::AGGREGATED)
        }
        Route::Api => json_response(200, &discovery::api_versions(&server.advertise)),
        Route::Apis => json_response(200, &discovery::api_group_list()),
        Route::ApiGroup(g) => {
            json_response(200, &discovery::api_group(&g).ok_or(Error::NoSuchPath)?)
        }
        Route::GroupVersion(g, v) => json_response(
            200,
            &discovery::api_resource_list(&g, &v).ok_or(Error::NoSuchPath)?,
        ),
        Route::OpenApiIndex => json_response(200, &discovery::openapi_index()),
        Route::OpenApi(p) => json_response(
            200,
            &discovery::openapi_group_version(&p).ok_or(Error::NoSuchPath)?,
        ),
        Route::Resource {
            rt,
            namespace,
            name,
            sub,
        } => resource(server, req, rt, namespace, name, sub).await?,
    })
}

fn list_options(req: &ApiRequest) -> Result<ListOptions> {
    let get = |k: &str| req.query.get(k).cloned().unwrap_or_default();
    Ok(ListOptions {
        labels: parse_labels(&get("labelSelector"))?,
        fields: parse_fields(&get("fieldSelector"))?,
        limit: get("limit").parse().unwrap_or(0),
        continue_: get("continue"),
    })
}

fn patch_type(content_type: &str) -> Result<PatchType> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/merge-patch+json" | "" | "application/json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" => Ok(PatchType::Apply),
        _ => Err(Error::UnsupportedMediaType),
    }
}

/// A DELETE's options: its body (kubectl sends `{"propagationPolicy":...,"dryRun":
/// ["All"]}`), then the query's `gracePeriodSeconds`; and whether it is a dry run.
fn delete_options(req: &ApiRequest) -> Result<(crate::types::DeleteOptions, bool)> {
    let mut opts: crate::types::DeleteOptions = if req.body.is_empty() {
        Default::default()
    } else {
        serde_json::from_value(body::object(body::json(&req.body)?, "DeleteOptions")?)
            .map_err(|e| Error::BadRequest(format!("the body is not DeleteOptions: {e}")))?
    };
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        let g = g
            .parse()
            .map_err(|_| Error::BadRequest(format!("gracePeriodSeconds: {g}")))?;
        opts.grace_period_seconds = Some(g);
    }
    let dry = req.dry_run("DeleteOptions", &opts.dry_run)?;
    Ok((opts, dry))
}

async fn resource(
    server: &Arc<ApiServer>,
    req: &ApiRequest,
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
) -> Result<Response<Body>> {
    let registry = &server.registry;
    let ns = namespace.clone().unwrap_or_default();
    let table = req.wants_table();
    let Some(name) = name else {
        return match req.method {
            Method::GET if req.flag("watch") => {
                stream::watch(registry.clone(), rt, namespace, req, list_options(req)?).await
            }
            Method::GET => {
                let list = registry
                    .list(rt, namespace.as_deref(), &list_options(req)?)
                    .await?;
                Ok(json_response(
                    200,
                    &stream::list_body(rt, list, table, registry.clock.now()),
                ))
            }
            Method::POST if rt.namespaced && namespace.is_none() => Err(Error::MethodNotAllowed),
            Method::POST => {
                let scope = Scope {
                    rt,
                    namespace: &ns,
                    name: "",
                };
                let dry = req.dry_run("CreateOptions", &[])?;
                let created = registry.create(scope, req.json_body()?, dry).await?;
                Ok(json_response(201, &created))
            }
            Method::DELETE => {
                let (opts, dry) = delete_options(req)?;
                let list = registry
                    .list(rt, namespace.as_deref(), &list_options(req)?)
                    .await?;
                let mut deleted = Vec::new();
                for item in list.items {
                    let n = item["metadata"]["name"].as_str().unwrap_or("").to_string();
                    let item_ns = item["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let scope = Scope {
                        rt,
                        namespace: &item_ns,
                        name: &n,
                    };
                    match registry.delete(scope, &opts, dry).await {
                        Ok(v) => deleted.push(v),
                        Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                let body = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                                  "metadata": {}, "items": deleted});
                Ok(json_response(200, &body))
            }
            _ => Err(Error::MethodNotAllowed),
        };
    };
    let scope = Scope {
        rt,
        namespace: &ns,
        name: &name,
    };
    let one = |v: Value| {
        if table {
            json_response(
                200,
                &stream::table_of(rt, vec![v], None, registry.clock.now()),
            )
        } else {
            json_response(200, &v)
        }
    };
    match (sub.as_deref(), &req.method) {
        (Some(s), _) if !rt.has_subresource(s) => Err(Error::NoSuchPath),
        (None | Some("status"), &Method::GET) => Ok(one(registry.get(scope).await?)),
        (None | Some("status"), &Method::PUT) => {
            let dry = req.dry_run("UpdateOptions", &[])?;
            let status_only = sub.is_some();
            let body = req.json_body()?;
            let updated = registry.update(scope, body, status_only, dry).await?;
            Ok(json_response(200, &updated))
        }
        (None | Some("status"), &Method::PATCH) => {
            let kind = patch_type(&req.content_type)?;
            let dry = req.dry_run("PatchOptions", &[])?;
            let status_only = sub.is_some();
            let body = req.json_body()?;
            let (patched, created) = registry.patch(scope, kind, body, status_only, dry).await?;
            Ok(json_response(if created { 201 } else { 200 }, &patched))
        }
        (None, &Method::DELETE) => {
            let (opts, dry) = delete_options(req)?;
            Ok(json_response(
                200,
                &registry.delete(scope, &opts, dry).await?,
            ))
        }
        (Some("scale"), &Method::GET) => Ok(json_response(200, &registry.get_scale(scope).await?)),
        (Some("scale"), &Method::PUT) => {
            let dry = req.dry_run("UpdateOptions", &[])?;
            let body = req.json_body()?;
            let scaled = registry.update_scale(scope, body, None, dry).await?;
            Ok(json_response(200, &scaled))
        }
        (Some("scale"), &Method::PATCH) => {
            let kind = patch_type(&req.content_type)?;
            let dry = req.dry_run("PatchOptions", &[])?;
            let body = req.json_body()?;
            let scaled = registry.update_scale(scope, body, Some(kind), dry).await?;
            Ok(json_response(200, &scaled))
        }
        (Some("binding"), &Method::POST) => {
            let dry = req.dry_run("CreateOptions", &[])?;
            let body = req.json_body()?;
            Ok(json_response(201, &registry.bind(scope, body, dry).await?))
        }
        (Some("log"), &Method::GET) => {
            crate::logs::proxy(registry, &server.kubelets, &ns, &name, &req.query).await
        }
        _ => Err(Error::MethodNotAllowed),
    }
}

/// A streamed body from a channel of chunks (a watch).
pub fn streamed(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let frames = tokio_stream::StreamExt::map(stream, |b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> (String, Option<String>, Option<String>, Option<String>) {
        match route(path) {
            Some(Route::Resource {
                rt,
                namespace,
                name,
                sub,
            }) => (rt.plural.to_string(), namespace, name, sub),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_route_like_kube_apiserver() {
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            res("/api/v1/namespaces/default/pods"),
            ("pods".into(), s("default"), None, None)
        );
        assert_eq!(
            res("/api/v1/namespaces/default/pods/alpine/status"),
            ("pods".into(), s("default"), s("alpine"), s("status"))
        );
        assert_eq!(res("/api/v1/pods"), ("pods".into(), None, None, None));
        assert_eq!(
            res("/api/v1/nodes/node1"),
            ("nodes".into(), None, s("node1"), None)
        );
        assert_eq!(
            res("/api/v1/namespaces/kube-system"),
            ("namespaces".into(), None, s("kube-system"), None)
        );
        assert_eq!(
            res("/apis/apps/v1/namespaces/default/replicasets/web/scale"),
            ("replicasets".into(), s("default"), s("web"), s("scale"))
        );
        assert_eq!(
            route("/apis/apps/v1"),
            Some(Route::GroupVersion("apps".into(), "v1".into()))
        );
        assert_eq!(route("/api/v1/pods/alpine"), None);
        assert_eq!(route("/api/v1/widgets"), None);
        assert_eq!(route("/nope"), None);
    }

    #[test]
    fn queries_are_percent_decoded() {
        let q = parse_query("fieldSelector=metadata.name%3Dalpine&limit=500&x");
        assert_eq!(q["fieldSelector"], "metadata.name=alpine");
        assert_eq!(q["limit"], "500");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
