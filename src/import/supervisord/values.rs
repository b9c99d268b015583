//! How supervisord reads each kind of value (booleans, integers, sizes, octal modes,
//! signals, exit codes, names, addresses), with its accepted spellings, and the
//! conversions into what tend's manifest takes.

use crate::config::document::Value;

/// `true/false`, `yes/no`, `on/off`, `1/0`, any case (no surrounding spaces, as in Python).
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "`{text}` is not a boolean (true/false, yes/no, on/off, 1/0)"
        )),
    }
}

/// Python's `int(text, base)` for bases 8 and 10: surrounding whitespace, a sign, digits
/// with single `_` between them, and for base 8 an optional `0o` prefix.
fn python_int(text: &str, base: u32) -> Option<i64> {
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let t = if base == 8 {
        t.strip_prefix("0o")
            .or_else(|| t.strip_prefix("0O"))
            .map_or(t, |rest| {
                // Python allows one `_` right after the prefix.
                rest.strip_prefix('_').unwrap_or(rest)
            })
    } else {
        t
    };
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let mut value: i64 = 0;
    for c in t.chars().filter(|&c| c != '_') {
        let digit = c.to_digit(base)?;
        value = value.checked_mul(base as i64)?.checked_add(digit as i64)?;
    }
    Some(if negative { -value } else { value })
}

pub fn integer(text: &str) -> Result<i64, String> {
    python_int(text, 10).ok_or_else(|| format!("`{text}` is not an integer"))
}

/// An integer that must be at least `min`.
pub fn integer_at_least(text: &str, min: i64) -> Result<i64, String> {
    let n = integer(text)?;
    if n < min {
        return Err(format!("must be at least {min}, not {n}"));
    }
    Ok(n)
}

/// supervisord sizes: a number of bytes, or with `KB`, `MB`, `GB` (any case) meaning
/// 1024, 1024², 1024³.
pub fn byte_size(text: &str) -> Result<i64, String> {
    let lower = text.to_lowercase();
    let (number, multiplier) = [("kb", 1024i64), ("mb", 1 << 20), ("gb", 1 << 30)]
        .iter()
        .find_map(|&(suffix, m)| lower.strip_suffix(suffix).map(|n| (n, m)))
        .unwrap_or((lower.as_str(), 1));
    let bad = || format!("`{text}` is not a size (bytes, or a number with KB, MB or GB)");
    let n = python_int(number, 10).ok_or_else(bad)?;
    if n < 0 {
        return Err(format!("size `{text}` cannot be negative"));
    }
    n.checked_mul(multiplier).ok_or_else(bad)
}

/// A size for tend's manifest: exact binary units where they fit (supervisord's `MB` is
/// tend's `MiB`), else a plain number of bytes.
pub fn tend_size(bytes: i64) -> Value {
    const UNITS: [(i64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    if bytes > 0 {
        for (unit, name) in UNITS {
            if bytes % unit == 0 {
                return Value::String(format!("{}{name}", bytes / unit));
            }
        }
    }
    Value::Integer(bytes)
}

/// An octal mode or umask such as `022` or `0700` (Python's `int(text, 8)`).
pub fn octal(text: &str) -> Result<u32, String> {
    let n = python_int(text, 8)
        .ok_or_else(|| format!("`{text}` is not an octal number such as 022"))?;
    u32::try_from(n)
        .ok()
        .filter(|&n| n <= 0o7777)
        .ok_or_else(|| format!("octal `{text}` is out of range"))
}

/// `0,2`: exit codes from 0 to 255.
pub fn exit_codes(text: &str) -> Result<Vec<i64>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| match python_int(part, 10) {
            Some(n) if (0..=255).contains(&n) => Ok(n),
            Some(n) => Err(format!("exit code {n} is outside 0..=255")),
            None => Err(format!(
                "`{text}` is not a comma-separated list of exit codes"
            )),
        })
        .collect()
}

/// `a, b,c`: comma-separated, each part stripped (empty parts kept, as in supervisord).
pub fn list_of_strings(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(',').map(|s| s.trim().to_string()).collect()
}

/// Linux signals as Python's `signal` module names them (aliases included).
const SIGNALS: &[(&str, i64)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
    ("RTMIN", 34),
    ("RTMAX", 64),
];

/// The signals tend can send (its `stop_signal` names).
const TEND_SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ABRT", "KILL", "USR1", "USR2", "PIPE", "ALRM", "TERM", "CONT", "STOP",
    "TSTP", "TTIN", "TTOU", "WINCH",
];

#[derive(Debug, PartialEq, Eq)]
pub enum SignalError {
    /// supervisord would refuse it too.
    Invalid(String),
    /// supervisord accepts it; tend cannot send it.
    Unsupported(String),
}

/// supervisord's `stopsignal`: a name with or without `SIG`, any case, or a number; as the
/// name tend uses.
pub fn signal(text: &str) -> Result<&'static str, SignalError> {
    let number = match python_int(text, 10) {
        Some(n) => n,
        None => {
            let upper = text.trim().to_uppercase();
            let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
            SIGNALS
                .iter()
                .find(|(name, _)| *name == bare)
                .map(|&(_, n)| n)
                .ok_or_else(|| SignalError::Invalid(format!("`{text}` is not a signal name")))?
        }
    };
    let name = SIGNALS
        .iter()
        .filter(|&&(_, n)| n == number)
        .map(|&(name, _)| name)
        .find(|name| TEND_SIGNALS.contains(name));
    match name {
        Some(name) => Ok(name),
        None if SIGNALS.iter().any(|&(_, n)| n == number) => {
            Err(SignalError::Unsupported(format!(
                "signal `{text}` is valid for supervisord but tend can only send {}",
                TEND_SIGNALS.join(", ")
            )))
        }
        None => Err(SignalError::Invalid(format!(
            "`{text}` is not a valid signal number"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoRestart {
    Always,
    Never,
    Unexpected,
}

pub fn auto_restart(text: &str) -> Result<AutoRestart, String> {
    match text.to_lowercase().as_str() {
        "unexpected" => Ok(AutoRestart::Unexpected),
        _ => match boolean(text) {
            Ok(true) => Ok(AutoRestart::Always),
            Ok(false) => Ok(AutoRestart::Never),
            Err(_) => Err(format!(
                "`{text}` is not an autorestart value (true, false or unexpected)"
            )),
        },
    }
}

/// Program, group and process names: stripped, without space, `:` or `/`.
pub fn process_or_group_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    for bad in [' ', ':', '/'] {
        if name.contains(bad) {
            return Err(format!("`{name}` is not a valid name: it contains `{bad}`"));
        }
    }
    Ok(name.to_string())
}

/// A `*_logfile` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    Auto,
    None,
    Syslog,
    Path(String),
}

pub fn logfile(text: &str) -> LogFile {
    match text.to_lowercase().as_str() {
        "none" | "off" => LogFile::None,
        "auto" => LogFile::Auto,
        "syslog" => LogFile::Syslog,
        _ => LogFile::Path(text.to_string()),
    }
}

/// `[inet_http_server] port`: `host:port`, `:port`, `*:port` or `port`.
pub fn inet_address(text: &str) -> Result<(String, u16), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host.to_lowercase(), port),
        None => (String::new(), text),
    };
    if port.is_empty() {
        return Err(format!("no port number in `{text}`"));
    }
    let port = python_int(port, 10)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("`{text}` does not end in a port number (1 to 65535)"))?;
    let host = if host == "*" { String::new() } else { host };
    Ok((host, port))
}

/// supervisord's log levels.
pub fn log_level(text: &str) -> Result<(), String> {
    match text.to_lowercase().as_str() {
        "critical" | "error" | "warn" | "info" | "debug" | "trace" | "blather" => Ok(()),
        _ => Err(format!(
            "`{text}` is not a log level (critical, error, warn, info, debug, trace, blather)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        for t in ["true", "TRUE", "yes", "On", "1"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for t in ["false", "No", "off", "0"] {
            assert_eq!(boolean(t), Ok(false), "{t}");
        }
        assert!(boolean("maybe").is_err());
        assert!(boolean(" true").is_err(), "no stripping, as in Python");
    }

    #[test]
    fn integers_like_python_int() {
        assert_eq!(integer("10"), Ok(10));
        assert_eq!(integer(" 007 "), Ok(7));
        assert_eq!(integer("-3"), Ok(-3));
        assert_eq!(integer("1_000"), Ok(1000));
        assert!(integer("1__0").is_err());
        assert!(integer("_1").is_err());
        assert!(integer("1.5").is_err());
        assert!(integer("").is_err());
        assert!(integer("99999999999999999999").is_err());
        assert_eq!(
            integer_at_least("0", 1),
            Err("must be at least 1, not 0".into())
        );
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(byte_size("50MB"), Ok(50 * 1024 * 1024));
        assert_eq!(byte_size("1kb"), Ok(1024));
        assert_eq!(byte_size("2GB"), Ok(2 << 30));
        assert_eq!(byte_size("0"), Ok(0));
        assert_eq!(byte_size("50 MB"), Ok(50 << 20));
        assert_eq!(byte_size("123"), Ok(123));
        assert!(byte_size("50MiB").is_err());
        assert!(byte_size("-1MB").unwrap_err().contains("negative"));
        assert!(byte_size("é").is_err());
        assert_eq!(tend_size(50 << 20), Value::String("50MiB".into()));
        assert_eq!(tend_size(1 << 30), Value::String("1GiB".into()));
        assert_eq!(tend_size(1536), Value::Integer(1536));
        assert!(byte_size("€").is_err());
        assert_eq!(tend_size(1000), Value::Integer(1000));
        assert_eq!(tend_size(0), Value::Integer(0));
    }

    #[test]
    fn octal_modes() {
        assert_eq!(octal("022"), Ok(0o22));
        assert_eq!(octal("0700"), Ok(0o700));
        assert_eq!(octal("0o77"), Ok(0o77));
        assert!(octal("8").is_err());
        assert!(octal("-1").is_err());
    }

    #[test]
    fn exit_code_lists() {
        assert_eq!(exit_codes("0,2"), Ok(vec![0, 2]));
        assert_eq!(exit_codes(" 0 , 1 "), Ok(vec![0, 1]));
        assert!(exit_codes("256").is_err());
        assert!(exit_codes("0,").is_err());
        assert!(exit_codes("a").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(signal("TERM"), Ok("TERM"));
        assert_eq!(signal("sigint"), Ok("INT"));
        assert_eq!(signal("9"), Ok("KILL"));
        assert_eq!(signal("IOT"), Ok("ABRT"));
        assert!(matches!(signal("SYS"), Err(SignalError::Unsupported(_))));
        assert!(matches!(signal("31"), Err(SignalError::Unsupported(_))));
        assert!(matches!(signal("BOGUS"), Err(SignalError::Invalid(_))));
        assert!(matches!(signal("40"), Err(SignalError::Invalid(_))));
    }

    #[test]
    fn autorestart_values() {
        assert_eq!(auto_restart("true"), Ok(AutoRestart::Always));
        assert_eq!(auto_restart("Unexpected"), Ok(AutoRestart::Unexpected));
        assert_eq!(auto_restart("off"), Ok(AutoRestart::Never));
        assert!(auto_restart("sometimes").is_err());
    }

    #[test]
    fn names_addresses_levels() {
        assert_eq!(process_or_group_name(" web "), Ok("web".into()));
        assert!(process_or_group_name("a b").is_err());
        assert!(process_or_group_name("a:b").is_err());
        assert_eq!(
            inet_address("127.0.0.1:9001"),
            Ok(("127.0.0.1".into(), 9001))
        );
        assert_eq!(inet_address("*:9001"), Ok((String::new(), 9001)));
        assert_eq!(inet_address("9001"), Ok((String::new(), 9001)));
        assert!(inet_address("host:").is_err());
        assert!(inet_address("host:70000").is_err());
        assert_eq!(logfile("AUTO"), LogFile::Auto);
        assert_eq!(logfile("off"), LogFile::None);
        assert_eq!(logfile("/x"), LogFile::Path("/x".into()));
        assert!(log_level("warn").is_ok());
        assert!(log_level("warning").is_err());
    }
}
