//! # Authentication: who is asking, and what anyone may ask
//!
//! kube-apiserver looks at each request's credentials before anything else. Here there
//! is one kind, the bearer token of a `--token-auth-file`
//! (`Authorization: Bearer <token>`), and the outcome is one of three:
//!
//! - **a user**: the token is in the file;
//! - **anonymous**: the request carries no bearer token at all (no `Authorization`
//!   header, another scheme such as `Basic`, or an empty token);
//! - **refused**: it carries a bearer token that is not in the file. kube-apiserver does
//!   not fall back to anonymous here ("don't consider a bad bearer token anonymous"),
//!   so a wrong token is `401` even on `/healthz`.
//!
//! The scheme is compared without regard to case (`bearer`, `BEARER`), as
//! kube-apiserver's bearer-token authenticator does.
//!
//! An anonymous caller may read exactly what kube-apiserver's default
//! `system:public-info-viewer` role grants everyone: `GET /version`, `/version/`,
//! `/healthz`, `/livez` and `/readyz` — the roots only: `/healthz/etcd` names one check
//! and needs a user. Everything else is `401 Unauthorized` (kube-apiserver, which goes
//! on to authorise the anonymous user, answers `403` there; with no authoriser here,
//! "not authenticated" is the honest answer).
//!
//! ## One path, one meaning
//!
//! The decision is made on the *route* the path resolves to, the same one the request
//! is then served by, never on the raw string: a check such as "does the path start
//! with `/healthz`" would let `/healthz/../api/v1/secrets` through. And a path with a
//! dot segment (`.` or `..`, also spelled `%2e`) is refused with `400` before either
//! step: no client sends one (they resolve dot segments themselves before sending), so
//! one that arrives is a mistake or an attack, and refusing it means nothing downstream
//! has to agree on what it would have meant.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::request::Route;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A known bearer token's user.
    User(String),
    /// No bearer token at all.
    Anonymous,
    /// A bearer token that is not known.
    BadToken,
}

/// Reads the `Authorization` header as kube-apiserver's bearer-token authenticator does.
pub fn authenticate(authorization: &str, tokens: &HashMap<String, String>) -> Caller {
    let mut parts = authorization.trim().splitn(3, ' ');
    let scheme = parts.next().unwrap_or("");
    let token = parts.next().unwrap_or("");
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Caller::Anonymous;
    }
    match tokens.get(token) {
        Some(user) => Caller::User(user.clone()),
        None => Caller::BadToken,
    }
}

/// What `system:public-info-viewer` lets anyone read.
pub fn is_public(route: &Route) -> bool {
    matches!(route, Route::Version | Route::Health(_, None))
}

/// `400` for a path with a `.` or `..` segment, written plainly or percent-encoded.
pub fn refuse_dot_segments(path: &str) -> Result<()> {
    for segment in path.split('/') {
        let decoded = segment.replace("%2e", ".").replace("%2E", ".");
        if decoded == "." || decoded == ".." {
            return Err(Error::BadRequest(format!(
                "the path {path:?} has a dot segment ({segment:?}); send the path with dot \
                 segments resolved"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_read_as_kube_apiserver_reads_them() {
        let tokens = [("t0k".to_string(), "admin".to_string())].into();
        let who = |h: &str| authenticate(h, &tokens);
        for ok in ["Bearer t0k", "bearer t0k", "BEARER t0k", "  Bearer t0k  "] {
            assert_eq!(who(ok), Caller::User("admin".into()), "{ok:?}");
        }
        assert_eq!(who("Bearer nope"), Caller::BadToken);
        for anonymous in [
            "",
            "Basic YTpi",
            "Bearer",
            "Bearer ",
            "Bearer  t0k",
            "Token t0k",
        ] {
            assert_eq!(who(anonymous), Caller::Anonymous, "{anonymous:?}");
        }
    }

    #[test]
    fn dot_segments_are_refused_however_they_are_spelled() {
        for bad in [
            "/healthz/../api",
            "/healthz/%2e%2e/api",
            "/a/%2E%2e",
            "/a/.%2E/b",
            "/./version",
            "/api/..",
        ] {
            assert!(refuse_dot_segments(bad).is_err(), "{bad}");
        }
        for good in [
            "/api/v1/namespaces/a.b/pods",
            "/healthz",
            "/a/...",
            "/a/.b",
            "/",
        ] {
            assert!(refuse_dot_segments(good).is_ok(), "{good}");
        }
    }
}
