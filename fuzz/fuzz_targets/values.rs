//! The small value parsers a manifest's strings go through: durations, sizes, signals,
//! `${VAR}` interpolation, supervisord event names, `watch` globs and the `fnmatch` of
//! `[include]`, log timestamp patterns. Each gets the whole input (a glob matches the
//! part before the first NUL against the part after it).
#![no_main]

use std::path::Path;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use tend::config::glob::{PathPattern, fnmatch};
use tend::config::signal::Signal;
use tend::config::{duration, events, interpolate, size};
use tend::logs::line::TimestampFormat;

fuzz_target!(|data: &[u8]| {
    let (first, second) = tend_fuzz::split(data);
    let (Ok(text), Ok(other)) = (std::str::from_utf8(first), std::str::from_utf8(second)) else {
        return;
    };
    if let Ok(d) = duration::parse(text) {
        // Written back in its smallest unit, it reads the same.
        let ms = d.as_millis();
        if Duration::from_millis(ms as u64) == d {
            assert_eq!(duration::parse(&format!("{ms}ms")), Ok(d), "{text:?}");
        }
    }
    if let Ok(bytes) = size::parse(text) {
        assert_eq!(size::parse(&bytes.to_string()), Ok(bytes), "{text:?}");
    }
    if let Ok(signal) = text.parse::<Signal>() {
        assert_eq!(signal.name().parse::<Signal>(), Ok(signal), "{text:?}");
        assert_eq!(
            Signal::from_number(signal.number()),
            Some(signal),
            "{text:?}"
        );
    }
    let _ = interpolate::interpolate(text, &tend_fuzz::env);
    let _ = events::parse_subscription(text);
    let _ = fnmatch(other, text);
    if let Ok(pattern) = PathPattern::new(text, Path::new("/srv/app")) {
        let _ = pattern.static_prefix();
        let _ = pattern.relation(&Path::new("/srv/app").join(other));
    }
    if let Ok(format) = TimestampFormat::parse(text) {
        let mut out = Vec::new();
        format.write(
            &mut out,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600),
        );
    }
});
