//! Human units shared by every report: durations, counts, percentages, rates,
//! parsing of duration arguments ("10s", "500ms"), and the saturating sum every view's
//! totals use (`SatSum`).

use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum UnitsError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration {0:?} (expected e.g. 10s, 500ms, 2m, 1.5s)")]
    Invalid(String),
    #[error("unknown duration unit {unit:?} in {input:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("duration {0:?} must be greater than zero")]
    Zero(String),
    #[error("duration {0:?} is too large")]
    TooLarge(String),
}

/// Sums of recorded counts and times. A recording may hold any u64 (a file from someone
/// else, or a counter near its end), so a sum stops at u64::MAX instead of panicking (overflow
/// checks) or wrapping into a wrong total; below that it is the plain sum.
pub trait SatSum: Iterator<Item = u64> + Sized {
    fn sat_sum(self) -> u64 {
        self.fold(0, u64::saturating_add)
    }
}

impl<I: Iterator<Item = u64>> SatSum for I {}

/// Formats nanoseconds: "812 ns", "3.4 µs", "12.3 ms", "4.20 s".
///
/// The unit is chosen after rounding so 999,960 ns prints "1.0 ms", not "1000.0 µs".
pub fn fmt_ns(ns: u64) -> String {
    // f64 loses precision only above 2^53 ns (~104 days): irrelevant at display precision.
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 999_950 {
        format!("{:.1} µs", v / 1e3)
    } else if ns < 999_950_000 {
        format!("{:.1} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// Formats a count with thousands separators: 1234567 -> "1,234,567".
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Formats a percentage given in percent (12.3 -> "12.3 %"; pass `100.0 * part / whole`).
/// Non-finite input (e.g. 0/0) prints "n/a".
pub fn fmt_pct(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1} %")
    } else {
        "n/a".to_string()
    }
}

/// Formats a byte count in decimal units: "812 B", "3.2 MB", "4.10 GB".
pub fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1e3 {
        format!("{b} B")
    } else if b < 1e6 {
        format!("{:.1} kB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.2} GB", b / 1e9)
    }
}

/// Formats a throughput in decimal gigabytes per second: "3.21 GB/s".
/// A zero, negative or non-finite interval prints "n/a".
pub fn fmt_rate_gbs(bytes: u64, secs: f64) -> String {
    if secs.is_finite() && secs > 0.0 {
        format!("{:.2} GB/s", bytes as f64 / secs / 1e9)
    } else {
        "n/a".to_string()
    }
}

/// Parses a duration argument: "10s", "500ms", "2m", "1.5s", "250us", "1h";
/// a bare number ("10") is seconds. Rejects zero, negative values and junk.
///
/// Parsed in integer nanoseconds (not f64) so "0.1s" is exactly 100 ms.
pub fn parse_duration(s: &str) -> Result<Duration, UnitsError> {
    let input = s.trim();
    if input.is_empty() {
        return Err(UnitsError::Empty);
    }
    let invalid = || UnitsError::Invalid(input.to_string());
    let num_end = input
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(input.len());
    let (num, unit) = input.split_at(num_end);
    let unit = unit.trim_start();
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    // Require at least one digit; a second '.' lands in frac_part and fails the check.
    if (int_part.is_empty() && frac_part.is_empty())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let unit_ns: u128 = match unit {
        "" | "s" | "sec" | "secs" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        "m" | "min" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ if unit.starts_with(|c: char| c.is_ascii_alphabetic() || c == 'µ') => {
            return Err(UnitsError::UnknownUnit {
                input: input.to_string(),
                unit: unit.to_string(),
            });
        }
        // Signs, exponents, inner junk: "-1s", "+1", "1e3", "1,5s".
        _ => return Err(invalid()),
    };
    let too_large = || UnitsError::TooLarge(input.to_string());
    let int_val: u128 = if int_part.is_empty() {
        0
    } else {
        // 30 digits of seconds overflows Duration anyway; this also keeps u128 math safe.
        if int_part.len() > 30 {
            return Err(too_large());
        }
        int_part.parse::<u128>().map_err(|_| invalid())?
    };
    // Digits beyond nanosecond resolution of the largest unit are irrelevant; truncate.
    let frac = &frac_part[..frac_part.len().min(18)];
    let mut frac_ns: u128 = 0;
    if !frac.is_empty() {
        let frac_val = frac.parse::<u128>().map_err(|_| invalid())?;
        frac_ns = frac_val * unit_ns / 10u128.pow(frac.len() as u32);
    }
    let total_ns = int_val
        .checked_mul(unit_ns)
        .and_then(|v| v.checked_add(frac_ns))
        .ok_or_else(too_large)?;
    if total_ns == 0 {
        return Err(UnitsError::Zero(input.to_string()));
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| too_large())?;
    // The remainder is < 1e9 and so always fits u32.
    let nanos = (total_ns % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate() {
        assert_eq!([1u64, 2, 3].into_iter().sat_sum(), 6);
        assert_eq!(std::iter::empty::<u64>().sat_sum(), 0);
        assert_eq!([u64::MAX, 1].into_iter().sat_sum(), u64::MAX);
        assert_eq!([u64::MAX - 1, 1].into_iter().sat_sum(), u64::MAX);
        assert_eq!([u64::MAX, u64::MAX, 5].into_iter().sat_sum(), u64::MAX);
    }

    #[test]
    fn ns_formats() {
        assert_eq!(fmt_ns(0), "0 ns");
        assert_eq!(fmt_ns(812), "812 ns");
        assert_eq!(fmt_ns(999), "999 ns");
        assert_eq!(fmt_ns(1_000), "1.0 µs");
        assert_eq!(fmt_ns(3_400), "3.4 µs");
        assert_eq!(fmt_ns(999_949), "999.9 µs");
        assert_eq!(fmt_ns(999_960), "1.0 ms");
        assert_eq!(fmt_ns(12_300_000), "12.3 ms");
        assert_eq!(fmt_ns(999_960_000), "1.00 s");
        assert_eq!(fmt_ns(4_200_000_000), "4.20 s");
        assert_eq!(fmt_ns(u64::MAX), "18446744073.71 s");
    }

    #[test]
    fn count_formats() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1_000), "1,000");
        assert_eq!(fmt_count(12_345), "12,345");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_count(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn pct_formats() {
        assert_eq!(fmt_pct(12.34), "12.3 %");
        assert_eq!(fmt_pct(0.0), "0.0 %");
        assert_eq!(fmt_pct(100.0), "100.0 %");
        assert_eq!(fmt_pct(f64::NAN), "n/a");
        assert_eq!(fmt_pct(f64::INFINITY), "n/a");
    }

    #[test]
    fn rate_formats() {
        assert_eq!(fmt_rate_gbs(3_210_000_000, 1.0), "3.21 GB/s");
        assert_eq!(fmt_rate_gbs(6_420_000_000, 2.0), "3.21 GB/s");
        assert_eq!(fmt_rate_gbs(0, 1.0), "0.00 GB/s");
        assert_eq!(fmt_rate_gbs(1, 0.0), "n/a");
        assert_eq!(fmt_rate_gbs(1, -1.0), "n/a");
        assert_eq!(fmt_rate_gbs(1, f64::NAN), "n/a");
    }

    #[test]
    fn parses_durations() {
        let ok = |s: &str| parse_duration(s).unwrap();
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok(" 10 s\n"), Duration::from_secs(10));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("0.1s"), Duration::from_millis(100));
        assert_eq!(ok(".5"), Duration::from_millis(500));
        assert_eq!(ok("2."), Duration::from_secs(2));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("250µs"), Duration::from_micros(250));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("1.5m"), Duration::from_secs(90));
    }

    #[test]
    fn rejects_bad_durations() {
        assert_eq!(parse_duration(""), Err(UnitsError::Empty));
        assert_eq!(parse_duration("0"), Err(UnitsError::Zero("0".into())));
        assert!(matches!(parse_duration("0ms"), Err(UnitsError::Zero(_))));
        assert!(matches!(
            parse_duration("0.0000000001s"),
            Err(UnitsError::Zero(_))
        ));
        for junk in [
            "-1s", "+1s", "s", ".", "1.2.3s", "1e3", "inf", "nan", "1,5s", "1 2",
        ] {
            assert!(parse_duration(junk).is_err(), "{junk:?} should be rejected");
        }
        assert!(matches!(
            parse_duration("10d"),
            Err(UnitsError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("10 sx"),
            Err(UnitsError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999999999h"),
            Err(UnitsError::TooLarge(_))
        ));
        assert!(matches!(
            parse_duration("1234567890123456789012345678901"),
            Err(UnitsError::TooLarge(_))
        ));
    }
}
