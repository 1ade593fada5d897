//! Where the server's "now" comes from (creationTimestamp, ages in tables): a seam, so
//! the simulator can run the apiserver on virtual time.

use jiff::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
