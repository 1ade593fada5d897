//! Time as objects carry it. Kubernetes writes `metav1.Time` as RFC 3339 in whole
//! seconds (`2026-12-02T10:00:00Z`, a Pod's `creationTimestamp`) and `MicroTime` with
//! six decimals (a Lease's `renewTime`, an Event's `eventTime`). "Now" is always the
//! wall time of the component's [`Clock`], never the machine's directly.

use jiff::Timestamp;
use seams::Clock;

/// The clock's wall time as a timestamp.
pub fn now(clock: &dyn Clock) -> Timestamp {
    Timestamp::try_from(clock.wall()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `metav1.Time`: `2026-12-02T10:00:00Z`.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metav1.MicroTime`: `2026-12-02T10:00:00.123456Z`.
pub fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_kubernetes_writes_them() {
        let t: Timestamp = "2026-12-02T10:00:00.5Z".parse().unwrap();
        assert_eq!(rfc3339(t), "2026-12-02T10:00:00Z");
        assert_eq!(micro_time(t), "2026-12-02T10:00:00.500000Z");
    }
}
