//! What a member's log lines are stamped with: its clock's wall time.
//!
//! A log line says when something happened, and the member's clock is what says what
//! time it is, so the `etcd` binary stamps its lines ([`tracing_subscriber`]'s
//! `timestamp`, etcd's zap `ts`) with [`ClockTime`] over the same clock it gives the
//! member. With the machine's clock the lines read as they always did — RFC 3339 in
//! UTC with microseconds, `2025-01-31T09:15:02.123456Z`, tracing-subscriber's own
//! format — and a member on another clock logs that clock's time.

use std::fmt;

use seams::clock::SharedClock;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// A [`FormatTime`] that reads the clock's wall time.
#[derive(Debug, Clone)]
pub struct ClockTime(pub SharedClock);

impl FormatTime for ClockTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_rfc3339(w, self.0.wall())
    }
}

/// `2025-01-31T09:15:02.123456Z`: RFC 3339 in UTC, microseconds (truncated).
fn write_rfc3339(w: &mut impl fmt::Write, wall: std::time::SystemTime) -> fmt::Result {
    match jiff::Timestamp::try_from(wall) {
        Ok(ts) => write!(w, "{ts:.6}"),
        Err(_) => w.write_str("<time out of range>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn wall_time_prints_as_rfc3339_with_microseconds() {
        let at = |secs: u64, nanos: u32| {
            let mut out = String::new();
            write_rfc3339(
                &mut out,
                SystemTime::UNIX_EPOCH + Duration::new(secs, nanos),
            )
            .unwrap();
            out
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2025-01-31 09:15:02 UTC; the nanoseconds past the microsecond are cut.
        assert_eq!(
            at(1_738_314_902, 123_456_789),
            "2025-01-31T09:15:02.123456Z"
        );
        // A leap day.
        assert_eq!(at(951_782_400, 5_000), "2000-02-29T00:00:00.000005Z");
    }
}
