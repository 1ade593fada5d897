//! kvstore (essay to come)
pub mod error;
pub mod proto;
pub mod request;

pub use error::{Error, Result};
pub use request::{Request, Response};
