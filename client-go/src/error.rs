//! The client's one error type: what the server answered (client-go's `StatusError`,
//! with the reasons callers branch on), or why no answer came.

pub use api::Target;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Target),
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Target),
    /// An update carried a resourceVersion that is no longer current: read and retry.
    #[error("Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again", .0.qualified(), .0.name)]
    Conflict(Target),
    /// A watch or list asked for a revision the server no longer has: list again.
    #[error("{0}")]
    Expired(String),
    #[error("Unauthorized")]
    Unauthorized,
    /// The apiserver answered with a failure the variants above do not name.
    #[error("{message}")]
    Remote {
        code: u16,
        reason: String,
        message: String,
    },
    /// No apiserver could be reached, or the answer stopped coming.
    #[error("unable to reach the API server: {0}")]
    Unreachable(String),
    /// The client was set up wrong: no endpoints, an unreadable kubeconfig or CA.
    #[error("{0}")]
    Config(String),
    /// The server's answer was not what the request promised.
    #[error("{0}")]
    Decode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status code, as the server gave it (or, for failures on this side, the
    /// one kubectl would report: 503 for an unreachable server).
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::AlreadyExists(_) | Error::Conflict(_) => 409,
            Error::Expired(_) => 410,
            Error::Unauthorized => 401,
            Error::Remote { code, .. } => *code,
            Error::Unreachable(_) => 503,
            Error::Config(_) => 400,
            Error::Decode(_) => 500,
        }
    }

    /// `metav1.StatusReason`, as kubectl prints it in `Error from server (<reason>)`.
    pub fn reason(&self) -> &str {
        match self {
            Error::NotFound(_) => "NotFound",
            Error::AlreadyExists(_) => "AlreadyExists",
            Error::Conflict(_) => "Conflict",
            Error::Expired(_) => "Expired",
            Error::Unauthorized => "Unauthorized",
            Error::Remote { reason, .. } if !reason.is_empty() => reason,
            Error::Remote { .. } => "Unknown",
            Error::Unreachable(_) => "ServiceUnavailable",
            Error::Config(_) => "BadRequest",
            Error::Decode(_) => "InternalError",
        }
    }
}
