//! The apiserver's one error type, and how each error becomes a `metav1.Status` with
//! the HTTP code and reason kube-apiserver would give (kubectl prints
//! `Error from server (<reason>): <message>`).

use crate::types::{ListMeta, Status, StatusCause, StatusDetails};

pub use api::Target;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Target),
    /// A path that names no resource at all.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Target),
    /// An update carried a resourceVersion that is no longer current.
    #[error("Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again", .0.qualified(), .0.name)]
    Conflict(Target),
    /// The object breaks a rule; each cause names a field. The message names the kind
    /// with its group, as kube-apiserver's does (`Deployment.apps "web" is invalid`).
    #[error("{}{} \"{name}\" is invalid: {}", .kind, group_suffix(.group), summary(.causes))]
    Invalid {
        group: String,
        kind: String,
        name: String,
        causes: Vec<StatusCause>,
    },
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the limit (in bytes), kube-apiserver's words.
    #[error("Request entity too large: limit is {0}")]
    TooLarge(usize),
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml")]
    UnsupportedMediaType,
    /// A watch or list asked for a revision etcd has compacted away.
    #[error("{0}")]
    Expired(String),
    #[error("Unauthorized")]
    Unauthorized,
    /// The in-flight budget is spent: retry after a second (`Retry-After: 1`).
    #[error("Too many requests, please try again later.")]
    TooManyRequests,
    /// The client did not send what it announced in time (a body that stopped short).
    #[error("Timeout: {0}")]
    Timeout(String),
    /// etcd did not answer (no quorum, timeout): kube-apiserver reports etcd's words.
    #[error("{0}")]
    StorageUnavailable(String),
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// A kubelet answered a proxied request (`kubectl logs`) with this failure; it is
    /// passed through as kube-apiserver passes it.
    #[error("{message}")]
    Upstream { code: u16, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.apps` after a kind of a named group; nothing for the core group.
fn group_suffix(group: &str) -> String {
    if group.is_empty() {
        String::new()
    } else {
        format!(".{group}")
    }
}

fn summary(causes: &[StatusCause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    }
}

impl Error {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound(_) | Error::NoSuchPath => 404,
            Error::AlreadyExists(_) | Error::Conflict(_) => 409,
            Error::Invalid { .. } => 422,
            Error::BadRequest(_) => 400,
            Error::TooLarge(_) => 413,
            Error::MethodNotAllowed => 405,
            Error::UnsupportedMediaType => 415,
            Error::Expired(_) => 410,
            Error::Unauthorized => 401,
            Error::TooManyRequests => 429,
            Error::Timeout(_) => 408,
            Error::StorageUnavailable(_) => 503,
            Error::Internal(_) => 500,
            Error::Upstream { code, .. } => *code,
        }
    }

    /// `metav1.StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotFound(_) | Error::NoSuchPath => "NotFound",
            Error::AlreadyExists(_) => "AlreadyExists",
            Error::Conflict(_) => "Conflict",
            Error::Invalid { .. } => "Invalid",
            Error::BadRequest(_) => "BadRequest",
            Error::TooLarge(_) => "RequestEntityTooLarge",
            Error::MethodNotAllowed => "MethodNotAllowed",
            Error::UnsupportedMediaType => "UnsupportedMediaType",
            Error::Expired(_) => "Expired",
            Error::Unauthorized => "Unauthorized",
            Error::TooManyRequests => "TooManyRequests",
            Error::Timeout(_) => "Timeout",
            Error::StorageUnavailable(_) => "ServiceUnavailable",
            Error::Internal(_) => "InternalError",
            Error::Upstream { .. } => "Unknown",
        }
    }

    /// The `Status` object sent as the response body.
    pub fn to_status(&self) -> Status {
        let details = match self {
            Error::NotFound(t) | Error::AlreadyExists(t) | Error::Conflict(t) => {
                Some(StatusDetails {
                    name: t.name.clone(),
                    group: t.group.clone(),
                    kind: t.resource.clone(),
                    ..StatusDetails::default()
                })
            }
            Error::Invalid {
                group,
                kind,
                name,
                causes,
            } => Some(StatusDetails {
                name: name.clone(),
                group: group.clone(),
                kind: kind.clone(),
                causes: causes.clone(),
                ..StatusDetails::default()
            }),
            Error::TooManyRequests => Some(StatusDetails {
                retry_after_seconds: 1,
                ..StatusDetails::default()
            }),
            _ => None,
        };
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: ListMeta::default(),
            status: "Failure".into(),
            message: self.to_string(),
            reason: self.reason().into(),
            details,
            code: self.code(),
        }
    }
}

impl From<api::selectors::ParseError> for Error {
    fn from(e: api::selectors::ParseError) -> Self {
        Error::BadRequest(e.0)
    }
}

impl From<kvstore::Error> for Error {
    fn from(e: kvstore::Error) -> Self {
        match e {
            kvstore::Error::Compacted { .. } => {
                Error::Expired("The resourceVersion for the provided list is too old.".into())
            }
            kvstore::Error::Timeout
            | kvstore::Error::NoLeader
            | kvstore::Error::LeaderChanged
            | kvstore::Error::Unavailable(_)
            | kvstore::Error::ConnectionLost(_)
            | kvstore::Error::Stopped => Error::StorageUnavailable(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// A field that is missing.
pub fn required(field: &str) -> StatusCause {
    StatusCause {
        reason: "FieldValueRequired".into(),
        message: "Required value".into(),
        field: field.into(),
    }
}

/// A field whose value breaks a rule.
pub fn invalid(field: &str, value: &str, why: &str) -> StatusCause {
    StatusCause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: \"{value}\": {why}"),
        field: field.into(),
    }
}

/// A field that may not change after creation.
pub fn immutable(field: &str) -> StatusCause {
    StatusCause {
        reason: "FieldValueInvalid".into(),
        message: "field is immutable".into(),
        field: field.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_kubernetes_writes_them() {
        let e = Error::NotFound(Target::new("", "pods", "nope"));
        let s = e.to_status();
        assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
        assert_eq!(s.message, "pods \"nope\" not found");
        let e = Error::Conflict(Target::new("apps", "replicasets", "web"));
        assert!(e.to_string().starts_with(
            "Operation cannot be fulfilled on replicasets.apps \"web\": the object has been modified"
        ));
        let e = Error::Invalid {
            group: String::new(),
            kind: "Pod".into(),
            name: "x".into(),
            causes: vec![required("spec.containers")],
        };
        assert_eq!(
            e.to_string(),
            "Pod \"x\" is invalid: spec.containers: Required value"
        );
        assert_eq!(e.to_status().details.unwrap().causes.len(), 1);
    }

    #[test]
    fn etcd_errors_become_unavailable_or_expired() {
        let e: Error = kvstore::Error::Timeout.into();
        assert_eq!(e.code(), 503);
        assert_eq!(e.to_string(), "etcdserver: request timed out");
        let e: Error = kvstore::Error::Compacted {
            compact_revision: 5,
        }
        .into();
        assert_eq!(e.code(), 410);
    }
}
