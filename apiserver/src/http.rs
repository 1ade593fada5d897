//! The HTTP edge: hyper accepts connections, [`crate::request::route`] turns a path into what it names,
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

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use seams::net::Listener;
use serde_json::{json, Value};

use crate::authn::{self, Caller};
use crate::error::{Error, Result};
use crate::healthz::{self};
use crate::limits::{AcceptBackoff, Budget, InFlight, Limits};
use crate::registry::ResourceType;
use crate::request::{parse_query, route, ApiRequest, Route};
use crate::response::{error_response, json_response, json_typed, Body};
use crate::rest::{ListOptions, PatchType, Registry, Scope};
use crate::selectors::{parse_fields, parse_labels};
use crate::timer::ClockTimer;
use crate::{body, discovery, stream};

/// What the server needs to answer requests.
pub struct ApiServer {
    pub registry: Registry,
    /// `host:port` clients should use (discovery's serverAddressByClientCIDRs).
    pub advertise: String,
    /// Bearer token → user name; when empty, requests need no token.
    pub tokens: HashMap<String, String>,
    /// Dials a node's kubelet, for `pods/log`.
    pub network: seams::net::SharedNetwork,
    /// Bounds on connections, bodies and time.
    pub limits: Limits,
    /// The requests being served now, against `limits`' in-flight budgets.
    pub inflight: InFlight,
    /// `--audit-log-path` with its policy: who did what, from where.
    pub audit: Option<Arc<crate::audit::AuditLog>>,
}

/// Accepts connections until the task is aborted, one task per connection; with
/// `tls`, each connection is a TLS handshake first. A failed `accept()` (out of file
/// descriptors, most often) is counted in `accept_errors`, logged, and retried after a
/// growing pause; a connection past `max_connections` is closed at once; every
/// connection's handshake and request heads have `header_read_timeout`
/// ([`crate::limits`]).
pub async fn serve(
    mut listener: Box<dyn Listener>,
    server: Arc<ApiServer>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    accept_errors: Arc<std::sync::atomic::AtomicU64>,
) {
    let limits = server.limits.clone();
    let clock = server.registry.clock.clone();
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut backoff = AcceptBackoff::default();
    // Connections live in a set owned by this loop: when the loop is aborted (the
    // server stops), every connection goes with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let tcp = tokio::select! {
            biased; // the same order every time: a simulated run replays exactly
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.succeeded();
                    accepted
                }
                Err(e) => {
                    accept_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let wait = backoff.failed();
                    tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64,
                                   "accepting a connection failed; trying again after a pause");
                    clock.sleep(wait).await;
                    continue;
                }
            },
            Some(_) = connections.join_next() => continue,
        };
        let seams::net::Accepted { stream: tcp, peer } = tcp;
        // The client's address, without its port: an audit event's sourceIPs.
        let peer: Arc<str> = peer
            .rsplit_once(':')
            .map_or(peer.as_str(), |(ip, _)| ip)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .into();
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::debug!(
                max_connections = limits.max_connections,
                "too many connections: closing a new one"
            );
            continue; // dropping `tcp` closes it
        };
        // (Watch events and responses are small writes; the real network sends each
        // at once, TCP_NODELAY, as Go's net package does for the real apiserver.)
        let server = server.clone();
        let clock = clock.clone();
        let tls = tls.clone();
        let header_timeout = limits.header_read_timeout;
        connections.spawn(async move {
            let _place = place; // held for as long as the connection is served
            let dates = clock.clone();
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                let dates = dates.clone();
                let peer = peer.clone();
                async move {
                    let mut response = handle(server, req, &peer).await;
                    response
                        .headers_mut()
                        .entry(hyper::header::DATE)
                        .or_insert_with(|| http_date(&*dates));
                    Ok::<_, Infallible>(response)
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            // The `Date` of a response is the server's clock's, not the machine's
            // (which hyper would read).
            http.timer(ClockTimer(clock.clone()))
                .auto_date_header(false)
                .header_read_timeout(header_timeout);
            let served = match tls {
                Some(acceptor) => match clock.timeout(header_timeout, acceptor.accept(tcp)).await {
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
/// Answers one request from the client at `peer` (an address, for the audit log);
/// never fails (errors become `Status` responses).
pub async fn handle(server: Arc<ApiServer>, req: Request<Incoming>, peer: &str) -> Response<Body> {
    let received = api::time::now(&*server.registry.clock);
    let uri = parts_uri(&req);
    let agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Who is asking: checked once, for the request and for its audit event.
    let caller = authn::authenticate(
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        &server.tokens,
    );
    let user = match &caller {
        Caller::User(name) => name.clone(),
        _ => String::new(),
    };
    let method = req.method().clone();
    let (response, body) = serve_request(server.clone(), req, &caller).await;
    if let Some(log) = &server.audit {
        let request = crate::audit::Request {
            uri: &uri,
            method: &method,
            user: &user,
            peer,
            agent: &agent,
            body: body.as_deref().unwrap_or_default(),
        };
        if let Some(event) = request.event(
            log.policy(),
            &server.registry,
            received,
            response.status().as_u16(),
        ) {
            log.write(&event);
        }
    }
    response
}

fn parts_uri(req: &Request<Incoming>) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string())
}

/// Serves one request; returns the response and the request's body, once read (for
/// the audit log: a created object's name is in it).
async fn serve_request(
    server: Arc<ApiServer>,
    req: Request<Incoming>,
    caller: &Caller,
) -> (Response<Body>, Option<bytes::Bytes>) {
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
        return (error_response(&e), None);
    }
    let target = route(&path);
    if !server.tokens.is_empty() {
        match caller {
            Caller::User(_) => {}
            Caller::Anonymous if target.as_ref().is_some_and(authn::is_public) => {}
            Caller::Anonymous | Caller::BadToken => {
                return (error_response(&Error::Unauthorized), None)
            }
        }
    }
    let _place = match server
        .inflight
        .admit(budget(&parts.method, target.as_ref(), &query))
    {
        Ok(place) => place,
        Err(e) => return (error_response(&e), None),
    };
    let body = match crate::limits::read_body(body, &server.limits, &server.registry.clock).await {
        Ok(bytes) => bytes,
        Err(e) => return (error_response(&e), None),
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
    let response = match dispatch(&server, &request, target).await {
        Ok(response) => response,
        Err(e) => error_response(&e),
    };
    (response, Some(request.body.clone()))
}

/// What a pod's `exec`, `attach`, `portforward` or `proxy` answers: the simulator has
/// no processes to join and no pod network, and says so in words a learner reads as
/// "this is miniplane", not "my command is wrong" (kubectl prints it after
/// `Error from server (BadRequest):`; `kubectl cp` runs through exec).
fn not_simulated(sub: &str) -> String {
    let (what, why) = match sub {
        "exec" => (
            "exec (and kubectl cp, which runs tar through it)",
            "its containers are simulated programs, with no shell to run a command in",
        ),
        "attach" => (
            "attach",
            "its containers are simulated programs, with no terminal to attach to",
        ),
        "portforward" => (
            "port-forward",
            "its pods have no network to forward a port to",
        ),
        _ => ("the pod proxy", "its pods have no network to proxy to"),
    };
    let logs = if matches!(sub, "exec" | "attach") {
        "; `kubectl logs` shows what they print"
    } else {
        ""
    };
    format!("miniplane runs no real containers: {what} is not supported ({why}{logs})")
}

/// Which in-flight budget a request counts against: long-running requests (watches,
/// logs) and health checks count against none, as in kube-apiserver.
/// `Date: Mon, 05 Jan 2026 09:00:00 GMT` (RFC 9110's IMF-fixdate), on `clock`.
fn http_date(clock: &dyn seams::Clock) -> hyper::header::HeaderValue {
    let text = api::time::now(clock)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    hyper::header::HeaderValue::from_str(&text).unwrap_or_else(|_| {
        hyper::header::HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT")
    })
}

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
                    &stream::list_body(rt, list, table, registry.now()),
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
            json_response(200, &stream::table_of(rt, vec![v], None, registry.now()))
        } else {
            json_response(200, &v)
        }
    };
    match (sub.as_deref(), &req.method) {
        (Some(s @ ("exec" | "attach" | "portforward" | "proxy")), _) if rt.plural == "pods" => {
            Err(Error::BadRequest(not_simulated(s)))
        }
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
            crate::logs::proxy(registry, &server.network, &ns, &name, &req.query).await
        }
        _ => Err(Error::MethodNotAllowed),
    }
}
