//! The simulator's errors: what a command prints on failure.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Bad input: a malformed manifest, flag or command line.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Io(String),
    /// A component answered with an error.
    #[error("{0}")]
    Api(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<apiserver::Error> for Error {
    fn from(e: apiserver::Error) -> Self {
        Error::Api(e.to_string())
    }
}

impl From<client_go::Error> for Error {
    fn from(e: client_go::Error) -> Self {
        Error::Api(e.to_string())
    }
}
