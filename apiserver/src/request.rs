//! A request as the handlers see it (kube-apiserver's `RequestInfo` and the decoded
//! query): method, query parameters, media types and the body, already read within
//! its limits. Below both the HTTP edge and the streaming handlers, so neither needs
//! the other.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::Method;
use serde_json::Value;

use crate::body;
use crate::error::{Error, Result};
use crate::healthz::Endpoint;
use crate::registry::{self, ResourceType};

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
    pub fn json_body(&self) -> Result<Value> {
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

    pub fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    pub fn flag(&self, name: &str) -> bool {
        matches!(self.query.get(name).map(String::as_str), Some("true" | "1"))
    }

    /// `dryRun=All`: validate and answer, write nothing. `options` is the kind of
    /// options the verb takes (`CreateOptions`, ...), named in the error for any other
    /// value, as kube-apiserver answers it; `more` are values from the body (a
    /// DeleteOptions' `dryRun`).
    pub fn dry_run(&self, options: &str, more: &[String]) -> Result<bool> {
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
