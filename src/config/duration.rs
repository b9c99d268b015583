//! Durations as written in manifests: "500ms", "10s", "1m30s", "1.5h", "1d".
//! A unit is always required, so "10" is an error rather than a guess between s and ms.

use std::time::Duration;

const UNITS: &[(&str, u128)] = &[
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
];

const UNIT_LIST: &str = "ms, s, m, h, d";

/// Digits after the point that still matter: beyond nanoseconds of a day they cannot.
const MAX_FRACTION_DIGITS: usize = 18;

/// The message for a number written without a unit, shared with integers in the manifest.
pub fn missing_unit(number: &str) -> String {
    format!("`{number}` has no unit; write \"{number}s\" or \"{number}ms\" (units: {UNIT_LIST})")
}

/// Parse a duration: one or more `NUMBER UNIT` parts, e.g. "1m30s"; spaces around parts
/// are allowed. Returns a message suitable for a [`ConfigError`](super::ConfigError).
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"10s\"".into());
    }
    if s.starts_with('-') {
        return Err(format!("duration `{s}` cannot be negative"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(missing_unit(s));
    }

    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() {
            return Err(format!(
                "invalid duration `{s}`: expected a number, found `{after}` (e.g. \"1m30s\")"
            ));
        }
        // "10 s" reads like "10s"; without this, "10 seconds" would be "missing a unit".
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(missing_unit(number));
        }
        let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit `{unit}` in duration `{s}` (units: {UNIT_LIST})"
            ));
        };
        let nanos = number_nanos(number, unit_nanos)
            .ok_or_else(|| format!("invalid number `{number}` in duration `{s}`"))?;
        total = total
            .checked_add(nanos)
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
        rest = after.trim_start();
    }

    let secs =
        u64::try_from(total / 1_000_000_000).map_err(|_| format!("duration `{s}` is too large"))?;
    // The remainder is below 1e9, so it always fits.
    let subsec = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, subsec))
}

/// `number` (digits with at most one point) times `unit_nanos`, exactly, in nanoseconds.
fn number_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole_value.checked_mul(unit_nanos)?;
    let fraction = &fraction[..fraction.len().min(MAX_FRACTION_DIGITS)];
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        nanos = nanos.checked_add(digits.checked_mul(unit_nanos)? / scale)?;
    }
    Some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("10s"), Ok(ms(10_000)));
        assert_eq!(parse("5m"), Ok(ms(300_000)));
        assert_eq!(parse("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_compounds_decimals_and_spaces() {
        assert_eq!(parse("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse("1h 2m 3s 4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse("10 s"), Ok(ms(10_000)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("2.s"), Ok(ms(2000)));
        assert_eq!(parse(" 0.25m "), Ok(ms(15_000)));
        assert_eq!(parse("1.0000000001s"), Ok(Duration::new(1, 0)));
        assert_eq!(parse("1.000000001s"), Ok(Duration::new(1, 1)));
    }

    #[test]
    fn a_bare_number_asks_for_a_unit() {
        let err = parse("10").unwrap_err();
        assert!(err.contains("`10` has no unit"), "{err}");
        assert!(err.contains("\"10s\""), "{err}");
        assert!(parse("1m30").unwrap_err().contains("`30` has no unit"));
    }

    #[test]
    fn rejects_negative_empty_and_garbage() {
        assert!(parse("-1s").unwrap_err().contains("negative"));
        assert!(parse("").unwrap_err().contains("empty"));
        assert!(parse("   ").unwrap_err().contains("empty"));
        assert!(parse("10x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse("10sec").unwrap_err().contains("unknown unit `sec`"));
        assert!(
            parse("10 seconds")
                .unwrap_err()
                .contains("unknown unit `seconds`")
        );
        assert!(parse("s").unwrap_err().contains("expected a number"));
        assert!(parse("1..5s").unwrap_err().contains("invalid number"));
        assert!(parse(".s").unwrap_err().contains("invalid number"));
        assert!(parse("1s!").is_err());
        assert!(parse("١s").is_err());
    }

    #[test]
    fn rejects_overflow_without_panicking() {
        assert!(parse("99999999999999999999999999999999999999999d").is_err());
        assert!(
            parse("999999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
        let many = "9999999999999d".repeat(100);
        assert!(parse(&many).is_err());
    }
}
