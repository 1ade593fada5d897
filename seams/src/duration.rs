//! Durations as flags write them: Go's `time.ParseDuration` syntax, which every
//! Kubernetes and etcd duration flag uses (`--leader-elect-lease-duration=15s`).

use std::time::Duration;

/// A duration as Go's `time.ParseDuration` reads it, the way Kubernetes' and etcd's
/// duration flags are written: `15s`, `1500ms`, `1m30s`, `1.5h`, `0`. Units are `ns`,
/// `us` (or `µs`), `ms`, `s`, `m` and `h`; a negative duration is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("{text:?}: a duration must not be negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        total += value * nanos;
        rest = after;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_reads_them() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("15s", ms(15_000)),
            ("1500ms", ms(1500)),
            ("1.5s", ms(1500)),
            ("1m30s", ms(90_000)),
            ("2h", ms(7_200_000)),
            ("0", Duration::ZERO),
            ("250us", Duration::from_micros(250)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        assert_eq!(
            parse_duration("15").unwrap_err(),
            "time: missing unit in duration \"15\""
        );
        for bad in ["", "s", "1x", "-1s", "1..5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
