//! Resource quantities as Kubernetes writes them: `100m` CPU, `128Mi` of memory, `110`
//! pods. The scheduler adds them up, so they are parsed into integers: CPU in
//! millicores, everything else in whole units (bytes for memory).

use std::fmt;

/// A parsed quantity, in thousandths of the unit (`100m` = 100, `1` = 1000,
/// `1Ki` = 1 024 000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(pub i128);

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuantity(pub String);

impl fmt::Display for BadQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {:?}", self.0)
    }
}

const SUFFIXES: [(&str, i128, i128); 14] = [
    // (suffix, numerator, denominator) of the multiplier
    ("Ki", 1 << 10, 1),
    ("Mi", 1 << 20, 1),
    ("Gi", 1 << 30, 1),
    ("Ti", 1 << 40, 1),
    ("Pi", 1 << 50, 1),
    ("Ei", 1 << 60, 1),
    ("n", 1, 1_000_000_000),
    ("u", 1, 1_000_000),
    ("m", 1, 1_000),
    ("k", 1_000, 1),
    ("M", 1_000_000, 1),
    ("G", 1_000_000_000, 1),
    ("T", 1_000_000_000_000, 1),
    ("P", 1_000_000_000_000_000, 1),
];

impl Quantity {
    /// Parses `100m`, `0.5`, `128Mi`, `1G`, `2`.
    pub fn parse(s: &str) -> Result<Quantity, BadQuantity> {
        let bad = || BadQuantity(s.to_string());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(t.len());
        let (number, suffix) = t.split_at(split);
        let (num, den) = match suffix {
            "" => (1, 1),
            _ => SUFFIXES
                .iter()
                .find(|(name, _, _)| *name == suffix)
                .map(|(_, n, d)| (*n, *d))
                .ok_or_else(bad)?,
        };
        let negative = number.starts_with('-');
        let number = number.trim_start_matches(['+', '-']);
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let digits = |d: &str| -> Result<i128, BadQuantity> {
            if d.is_empty() {
                return Ok(0);
            }
            if d.len() > 30 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            d.parse().map_err(|_| bad())
        };
        // value = (whole + frac / 10^len) * num / den, in thousandths. A quantity too
        // large for this arithmetic is refused, not wrapped (or, in a debug build, a
        // panic on the client's say-so).
        let frac_len = frac.len();
        let (whole, frac) = (digits(whole)?, digits(frac)?);
        let thousandths = u32::try_from(frac_len)
            .ok()
            .and_then(|len| 10i128.checked_pow(len))
            .and_then(|scale| {
                let mantissa = whole.checked_mul(scale)?.checked_add(frac)?;
                Some(mantissa.checked_mul(1000)?.checked_mul(num)? / scale.checked_mul(den)?)
            })
            .ok_or_else(bad)?;
        Ok(Quantity(if negative { -thousandths } else { thousandths }))
    }

    /// Millicores (for CPU) or thousandths of the unit.
    pub fn milli(self) -> i128 {
        self.0
    }

    /// Whole units, rounded up (bytes for memory, a count for pods).
    pub fn value(self) -> i128 {
        (self.0 + 999).div_euclid(1000)
    }
}

impl fmt::Display for Quantity {
    /// `100m` for fractions, plain numbers otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 1000 == 0 {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_kubernetes_reads_them() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").milli(), 100);
        assert_eq!(q("0.5").milli(), 500);
        assert_eq!(q("2").milli(), 2000);
        assert_eq!(q("128Mi").value(), 128 * 1024 * 1024);
        assert_eq!(q("1G").value(), 1_000_000_000);
        // Too large for any integer: refused, never wrapped or a panic.
        for huge in [
            "99999999999999999999999999999Ei",
            "1.0000000000000000000000000000000000001",
        ] {
            assert!(Quantity::parse(huge).is_err(), "{huge}");
        }
        assert_eq!(q("1.5Gi").value(), 3 * 512 * 1024 * 1024);
        assert_eq!(q("110").value(), 110);
        assert_eq!(q("1k").value(), 1000);
        for bad in ["", "abc", "1Xi", "1.2.3", "m"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(q("250m").to_string(), "250m");
        assert_eq!(q("3").to_string(), "3");
    }
}
