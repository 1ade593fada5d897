//! The HTTP edge: hyper accepts connections, [`route`] turns a path into what it names,
//! and [`handle`] runs the verb and writes JSON (or a Table, or a watch stream).
//!
//! URL shapes, as kube-apiserver serves them:
//! - `/api/v1/namespaces/{ns}/pods[/{name}[/{subresource}]]` — a namespaced kind;
//! - `/api/v1/nodes[/{name}[/status]]` — a cluster-scoped kind;
//! - `/api/v1/pods` — one namespaced kind across all namespaces (`kubectl get -A`);
//! - `/apis/{group}/{version}/...` — the same for named groups (`apps`).

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

use crate::discovery;
use crate::error::{Error, Result};
use crate::registry::{self, ResourceType};
use crate::rest::{ListOptions, PatchType, Registry, Scope};
use crate::selectors::{parse_fields, parse_labels};
use crate::stream;

/// The largest request body accepted, as kube-apiserver's 3 MiB.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

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
}

/// What a path names.
#[derive(Debug, PartialEq)]
pub enum Route {
    Version,
    Health,
    Ready,
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
        ["healthz" | "livez", ..] => Route::Health,
        ["readyz", ..] => Route::Ready,
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

/// An error as a `Status` body.
pub fn error_response(e: &Error) -> Response<Body> {
    json_response(
        e.code(),
        &serde_json::to_value(e.to_status()).unwrap_or_default(),
    )
}

/// Accepts connections forever, one task per connection; with `tls`, each connection
/// is a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    server: Arc<ApiServer>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    // Connections live in a set owned by this loop: when the loop is aborted (the
    // server stops), every connection goes with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => accepted?.0,
            Some(_) = connections.join_next() => continue,
        };
        // Watch events and responses are small writes: send each at once (Go's net
        // package sets TCP_NODELAY on every connection of the real apiserver).
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(server, req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let served = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let io = hyper_util::rt::TokioIo::new(stream);
                        http.serve_connection(io, service).await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
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
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (accept, content_type) = (header("accept"), header("content-type"));
    let target = route(&path);
    if !server.tokens.is_empty() && !matches!(target, Some(Route::Health)) {
        let token = header("authorization");
        let token = token.strip_prefix("Bearer ").unwrap_or("");
        if !server.tokens.contains_key(token) {
            return error_response(&Error::Unauthorized);
        }
    }
    let body = match read_body(body).await {
        Ok(bytes) => bytes,
        Err(e) => return error_response(&e),
    };
    let request = ApiRequest {
        method: parts.method,
        query,
        accept,
        content_type,
        body,
    };
    match dispatch(&server, &request, target).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes. A larger one is read to its end
/// (up to 16× the limit) before the 413 goes back, so the client, still sending,
/// gets the answer rather than a broken connection.
async fn read_body(mut body: Incoming) -> Result<Bytes> {
    let mut bytes = bytes::BytesMut::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::BadRequest(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            if total <= MAX_BODY {
                bytes.extend_from_slice(&data);
            } else if total > 16 * MAX_BODY {
                break;
            }
        }
    }
    if total > MAX_BODY {
        return Err(Error::TooLarge(total, MAX_BODY));
    }
    Ok(bytes.freeze())
}

/// A request with its body read.
pub struct ApiRequest {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub accept: String,
    pub content_type: String,
    pub body: Bytes,
}

impl ApiRequest {
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
        let json = serde_json::from_slice(&self.body);
        if media == "application/apply-patch+yaml" {
            // kubectl sends JSON (which is YAML too); other clients may send YAML.
            if let Ok(v) = json {
                return Ok(v);
            }
            return serde_yaml_ng::from_slice(&self.body)
                .map_err(|e| Error::BadRequest(format!("the body is not valid YAML: {e}")));
        }
        json.map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))
    }

    fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
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
        Route::Health => text(200, "ok"),
        Route::Ready => match server.registry.store.health().await {
            Ok(()) => text(200, "ok"),
            Err(e) => text(500, &format!("[-]etcd failed: {e}\nreadyz check failed")),
        },
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

fn text(code: u16, s: &str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(s.to_string())).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
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
                let dry = req.query.get("dryRun").is_some_and(|d| d == "All");
                let created = registry.create(scope, req.json_body()?, dry).await?;
                Ok(json_response(201, &created))
            }
            Method::DELETE => {
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
                    match registry.delete(scope, &Default::default()).await {
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
        (None, &Method::PUT) => Ok(json_response(
            200,
            &registry.update(scope, req.json_body()?, false).await?,
        )),
        (Some("status"), &Method::PUT) => Ok(json_response(
            200,
            &registry.update(scope, req.json_body()?, true).await?,
        )),
        (None | Some("status"), &Method::PATCH) => {
            let kind = patch_type(&req.content_type)?;
            let status_only = sub.is_some();
            Ok(json_response(
                200,
                &registry
                    .patch(scope, kind, req.json_body()?, status_only)
                    .await?,
            ))
        }
        (None, &Method::DELETE) => {
            let mut opts: crate::types::DeleteOptions = if req.body.is_empty() {
                Default::default()
            } else {
                serde_json::from_slice(&req.body).map_err(|e| Error::BadRequest(e.to_string()))?
            };
            if let Some(g) = req.query.get("gracePeriodSeconds") {
                let g = g
                    .parse()
                    .map_err(|_| Error::BadRequest(format!("gracePeriodSeconds: {g}")))?;
                opts.grace_period_seconds = Some(g);
            }
            Ok(json_response(200, &registry.delete(scope, &opts).await?))
        }
        (Some("scale"), &Method::GET) => Ok(json_response(200, &registry.get_scale(scope).await?)),
        (Some("scale"), &Method::PUT) => Ok(json_response(
            200,
            &registry.update_scale(scope, req.json_body()?, None).await?,
        )),
        (Some("scale"), &Method::PATCH) => {
            let kind = patch_type(&req.content_type)?;
            Ok(json_response(
                200,
                &registry
                    .update_scale(scope, req.json_body()?, Some(kind))
                    .await?,
            ))
        }
        (Some("binding"), &Method::POST) => Ok(json_response(
            201,
            &registry.bind(scope, req.json_body()?).await?,
        )),
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
