//! `cron_restart` / `schedule` expressions: the parser, and the next-fire search checked
//! against a minute-by-minute scan, in a zone with one daylight-saving-like shift.
//!
//! Input: 4 bytes of start time (seconds after 2020-01-01 UTC), 1 byte of base UTC
//! offset (quarter hours), 1 byte choosing the shift, 2 bytes of minutes until the shift,
//! then the expression.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend::config::cron::{Cron, Zone};

const EPOCH_2020: i64 = 1_577_836_800;
/// How far the scan looks: long enough for `0 0 * * *` in any zone, and around a shift.
const SCAN: i64 = 3 * 86_400;

struct Shifting {
    before: i64,
    after: i64,
    at: i64,
}

impl Zone for Shifting {
    fn offset(&self, utc: i64) -> i64 {
        if utc < self.at {
            self.before
        } else {
            self.after
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let Ok(text) = std::str::from_utf8(&data[8..]) else {
        return;
    };
    let Ok(cron) = Cron::parse(text) else {
        return;
    };
    // The fields, written back, are the same expression.
    let again = Cron::parse(&cron.fields().join(" ")).expect("its own fields parse");
    for field in [
        tend::config::cron::Field::Minute,
        tend::config::cron::Field::Hour,
        tend::config::cron::Field::Day,
        tend::config::cron::Field::Month,
        tend::config::cron::Field::Weekday,
    ] {
        assert_eq!(
            cron.values(field),
            again.values(field),
            "{field:?} of {text:?}"
        );
    }

    let start = EPOCH_2020 + i64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
    let before = (i64::from(data[4] % 105) - 48) * 900;
    let shift = match data[5] % 4 {
        0 => 0,
        1 => 3600,
        2 => -3600,
        _ => 1800,
    };
    let at = start + i64::from(u16::from_le_bytes([data[6], data[7]])) * 60;
    let zone = Shifting {
        before,
        after: before + shift,
        at,
    };
    let next = cron.next_after(start, &zone);
    if let Some(next) = next {
        assert!(next > start, "{text:?}: next {next} is not after {start}");
        assert_eq!(next % 60, 0, "{text:?}: next {next} is not a whole minute");
        assert!(
            cron.fires_at(next, &zone),
            "{text:?}: next {next} does not fire"
        );
    }
    let first_minute = start.div_euclid(60) * 60 + 60;
    let scanned = (first_minute..start + SCAN)
        .step_by(60)
        .find(|&t| cron.fires_at(t, &zone));
    match (scanned, next) {
        (Some(s), Some(n)) => assert_eq!(s, n, "{text:?} after {start} in {before}/{shift}@{at}"),
        (Some(s), None) => panic!("{text:?} fires at {s} but next_after found nothing"),
        (None, Some(n)) => assert!(n >= start + SCAN, "{text:?}: {n} was missed by the scan"),
        (None, None) => {}
    }
});
