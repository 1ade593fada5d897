//! # Health checks: `/healthz`, `/livez`, `/readyz`
//!
//! Load balancers, kubelets and people ask an API server whether it is well. It has
//! three endpoints for three questions — is it healthy (the old endpoint), is the
//! process alive (should it be restarted), is it ready (should traffic be sent to it)
//! — each the sum of named checks. The text is kube-apiserver's, which tools read:
//!
//! ```text
//! GET /readyz            ok
//! GET /readyz?verbose    [+]ping ok
//!                        [+]etcd ok
//!                        [+]etcd-readiness ok
//!                        readyz check passed
//! ```
//!
//! When a check fails the answer is `500` and the list is always printed, the failure
//! as `[-]etcd failed: reason withheld`: these endpoints are open to anyone (see
//! [`crate::authn`]), so the reason is not. It is in the log, and at the check's own
//! path (`/readyz/etcd`: `internal server error: <reason>`), which needs a token.
//! `?exclude=etcd` skips a check (`[+]etcd excluded: ok`).
//!
//! The checks are those of kube-apiserver that this server has: `ping` (the server
//! answers at all) and `etcd` (a quorum read through the store); `/readyz` adds
//! `etcd-readiness`, which kube-apiserver runs with its own timeout and which here is
//! the same read. kube-apiserver's `log`, `informer-sync`, `shutdown` and post-start
//! hook checks have nothing to check here and are left out.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::error::{Error, Result};
use crate::request::query_values;
use crate::response::Body;
use crate::store::Store;

/// The three health endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Healthz,
    Livez,
    Readyz,
}

impl Endpoint {
    /// The endpoint for a path's first segment.
    pub fn from_segment(s: &str) -> Option<Endpoint> {
        Some(match s {
            "healthz" => Endpoint::Healthz,
            "livez" => Endpoint::Livez,
            "readyz" => Endpoint::Readyz,
            _ => return None,
        })
    }

    /// `healthz`, as the last line says it (`healthz check passed`).
    fn name(self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }

    /// The checks, in kube-apiserver's order.
    fn checks(self) -> &'static [&'static str] {
        match self {
            Endpoint::Healthz | Endpoint::Livez => &["ping", "etcd"],
            Endpoint::Readyz => &["ping", "etcd", "etcd-readiness"],
        }
    }
}

/// Runs one check: `Err` carries the reason.
async fn run(check: &str, store: &Store) -> std::result::Result<(), String> {
    match check {
        "ping" => Ok(()),
        // kube-apiserver's etcd check, and its readiness twin: a quorum read.
        _ => store.health().await.map_err(|e| e.to_string()),
    }
}

/// Answers `GET /{endpoint}[/{check}]?{query}`.
pub async fn serve(
    endpoint: Endpoint,
    check: Option<&str>,
    raw_query: &str,
    store: &Store,
) -> Result<Response<Body>> {
    if let Some(check) = check {
        if !endpoint.checks().contains(&check) {
            return Err(Error::NoSuchPath);
        }
        return Ok(match run(check, store).await {
            Ok(()) => text(200, "ok".into()),
            Err(why) => text(500, format!("internal server error: {why}\n")),
        });
    }
    let mut excluded = query_values(raw_query, "exclude");
    let mut lines = String::new();
    let mut failed = false;
    let mut etcd = None; // the quorum read, made once for `etcd` and `etcd-readiness`
    for &name in endpoint.checks() {
        if let Some(at) = excluded.iter().position(|e| e == name) {
            excluded.remove(at);
            lines.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        let outcome = match name {
            "ping" => run(name, store).await,
            _ => match &etcd {
                Some(done) => Clone::clone(done),
                None => {
                    let done = run(name, store).await;
                    etcd = Some(done.clone());
                    done
                }
            },
        };
        match outcome {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(why) => {
                tracing::warn!(check = name, endpoint = endpoint.name(), reason = %why, "health check failed");
                lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
                failed = true;
            }
        }
    }
    if !excluded.is_empty() {
        let names: Vec<String> = excluded.iter().map(|e| format!("{e:?}")).collect();
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            names.join(",")
        ));
    }
    let name = endpoint.name();
    Ok(if failed {
        text(500, format!("{lines}{name} check failed\n"))
    } else if !has_key(raw_query, "verbose") {
        text(200, "ok".into())
    } else {
        text(200, format!("{lines}{name} check passed\n"))
    })
}

/// Whether `key` is in the query at all (`?verbose` has no value).
fn has_key(raw_query: &str, key: &str) -> bool {
    raw_query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == key)
}

fn text(code: u16, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = r.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}
