//! Byte sizes as written in manifests: "50MB", "64KiB", "1.5GB", or a plain integer of bytes.
//! KB/MB/GB are decimal (1000), KiB/MiB/GiB binary (1024), as their names say.

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("kib", 1024),
    ("mib", 1024 * 1024),
    ("gib", 1024 * 1024 * 1024),
];

/// Parse a size string; the error says what is wrong.
pub fn parse(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size such as \"50MB\" or \"64KiB\""))?;
    let multiplier = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                format!(
                    "unknown unit `{unit}` in size `{text}` (units: B, KB, MB, GB, KiB, MiB, GiB)"
                )
            })?
    };
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("size `{text}` is too large"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_numbers() {
        assert_eq!(parse("50MB"), Ok(50_000_000));
        assert_eq!(parse("64KiB"), Ok(65_536));
        assert_eq!(parse("1.5 GiB"), Ok(1_610_612_736));
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("10b"), Ok(10));
        assert!(parse("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("MB").is_err());
        assert!(parse("").is_err());
        assert!(parse("-5MB").is_err());
    }
}
