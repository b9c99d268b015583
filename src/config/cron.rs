//! Cron expressions (`cron_restart`, `schedule`): the five fields of Vixie cron and when
//! they next fire. Pure: the time zone comes in as a [`Zone`], so every rule, daylight
//! saving included, is tested without touching the machine's clock or zone.
//!
//! Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or `jan`-`dec`), day
//! of week (0-7, 0 and 7 are Sunday, or `sun`-`sat`). Each is `*`, a value, a range `a-b`,
//! a step `*/n`, `a-b/n` or `a/n` (from `a` to the end), or a comma list of those. Macros:
//! `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`).
//!
//! When both day fields are restricted (neither starts with `*`), a day matches when
//! *either* does, as in Vixie cron: `0 0 13 * 5` fires on the 13th and on every Friday.
//!
//! Time is the zone's local time. When the clock is set forward (a daylight saving gap),
//! the local times it skips fire at the first instant after the gap, once. When it is set
//! back, a local time that comes twice fires the first time only, unless the hour field
//! starts with `*`: such an expression runs by the clock's minutes, in both passes (Vixie
//! cron's rule for "wildcard" jobs).

use std::fmt;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// As written, for messages and exporters.
    written: String,
    /// The five fields after macro expansion, as text (exporters translate them).
    fields: [String; 5],
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday is 0.
    weekdays: u8,
    dom_star: bool,
    dow_star: bool,
    /// The hour field starts with `*`: in a repeated hour, fire in both passes.
    hour_star: bool,
}

/// One of the five fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Minute,
    Hour,
    Day,
    Month,
    Weekday,
}

/// A time zone: the offset from UTC, in seconds east, at a given instant.
pub trait Zone {
    fn offset(&self, utc: i64) -> i64;
}

/// Coordinated universal time.
pub struct Utc;

impl Zone for Utc {
    fn offset(&self, _: i64) -> i64 {
        0
    }
}

/// The local time of this process (`TZ`, else `/etc/localtime`), read with `localtime_r`.
pub struct LocalZone;

impl Zone for LocalZone {
    fn offset(&self, utc: i64) -> i64 {
        let time: libc::time_t = utc as libc::time_t;
        // SAFETY: localtime_r writes only into the tm we own; a zeroed tm is a valid value.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        let done = unsafe { libc::localtime_r(&time, &mut tm) };
        if done.is_null() {
            return 0;
        }
        tm.tm_gmtoff as i64
    }
}

struct FieldKind {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: FieldKind = FieldKind {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
const HOUR: FieldKind = FieldKind {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
const DAY: FieldKind = FieldKind {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
const MONTH: FieldKind = FieldKind {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const WEEKDAY: FieldKind = FieldKind {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// The macros and what they stand for.
pub const MACROS: [(&str, &str); 8] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    // Listed so that the error can say why it is refused.
    ("@reboot", ""),
];

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl std::str::FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Cron, String> {
        Cron::parse(text)
    }
}

impl Cron {
    /// Parse an expression; the error says which field is wrong and why, e.g.
    /// `bad minute field "61": 61 is not in 0-59`.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let written = text.trim();
        let expanded = if written.starts_with('@') {
            let lower = written.to_ascii_lowercase();
            match MACROS.iter().find(|(name, _)| *name == lower) {
                Some((_, "")) => {
                    return Err(
                        "`@reboot` is not a schedule: a service starts with tend when `autostart = true`".into(),
                    );
                }
                Some((_, fields)) => *fields,
                None => {
                    let known: Vec<&str> = MACROS[..7].iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "unknown macro `{written}`; known: {}",
                        known.join(", ")
                    ));
                }
            }
        } else {
            written
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            let hint = if fields.len() == 6 {
                " (tend's cron has no seconds field)"
            } else {
                ""
            };
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found {}{hint}",
                fields.len()
            ));
        }
        let minutes = parse_field(fields[0], &MINUTE)?;
        let hours = parse_field(fields[1], &HOUR)? as u32;
        let days = parse_field(fields[2], &DAY)? as u32;
        let months = parse_field(fields[3], &MONTH)? as u16;
        let weekdays_raw = parse_field(fields[4], &WEEKDAY)?;
        // 7 is Sunday too.
        let weekdays = ((weekdays_raw & 0x7f) | ((weekdays_raw >> 7) & 1)) as u8;
        let cron = Cron {
            written: written.to_string(),
            fields: [
                fields[0].to_string(),
                fields[1].to_string(),
                fields[2].to_string(),
                fields[3].to_string(),
                fields[4].to_string(),
            ],
            minutes,
            hours,
            days,
            months,
            weekdays,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
            hour_star: fields[1].starts_with('*'),
        };
        cron.check_possible()?;
        Ok(cron)
    }

    /// The five fields (macros expanded), as written.
    pub fn fields(&self) -> [&str; 5] {
        [
            &self.fields[0],
            &self.fields[1],
            &self.fields[2],
            &self.fields[3],
            &self.fields[4],
        ]
    }

    /// The values a field matches, in order: minutes 0-59, hours 0-23, days of the month
    /// 1-31, months 1-12, days of the week 0-6 (Sunday is 0). For exporters.
    pub fn values(&self, field: Field) -> Vec<u32> {
        let (bits, range) = match field {
            Field::Minute => (self.minutes, 0..=59),
            Field::Hour => (u64::from(self.hours), 0..=23),
            Field::Day => (u64::from(self.days), 1..=31),
            Field::Month => (u64::from(self.months), 1..=12),
            Field::Weekday => (u64::from(self.weekdays), 0..=6),
        };
        range.filter(|v| bits & (1 << v) != 0).collect()
    }

    /// Whether a day matches when *either* day field does: both are restricted (neither
    /// starts with `*`), Vixie cron's rule. Otherwise both must match.
    pub fn days_either(&self) -> bool {
        !self.dom_star && !self.dow_star
    }

    /// An expression that can never fire (`0 0 30 2 *`) is a mistake: say so.
    fn check_possible(&self) -> Result<(), String> {
        if !self.dom_star && !self.dow_star {
            // Either day field will do, and every weekday comes round.
            return Ok(());
        }
        let possible = (1..=12u32).any(|month| {
            self.months & (1 << month) != 0
                && (1..=max_days(month)).any(|day| self.days & (1 << day) != 0)
        });
        if possible {
            Ok(())
        } else {
            Err(format!(
                "never fires: no month in \"{}\" has a day in \"{}\"",
                self.fields[3], self.fields[2]
            ))
        }
    }

    /// Whether a local (naive) date and time, in seconds, matches all fields.
    fn matches_local(&self, local: i64) -> bool {
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (_, month, day) = civil_from_days(days);
        let hour = (secs / 3600) as u32;
        let minute = (secs / 60 % 60) as u32;
        self.months & (1 << month) != 0
            && self.day_matches(days, day)
            && self.hours & (1 << hour) != 0
            && self.minutes & (1 << minute) != 0
    }

    fn day_matches(&self, days: i64, day: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday(days)) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first local (naive) minute strictly after `local` that matches, if one comes
    /// within a few decades.
    fn next_local(&self, local: i64) -> Option<i64> {
        let mut t = local.div_euclid(60) * 60 + 60;
        let limit = t + 30 * 366 * 86_400;
        while t < limit {
            let days = t.div_euclid(86_400);
            let secs = t.rem_euclid(86_400);
            let (year, month, day) = civil_from_days(days);
            if self.months & (1 << month) == 0 {
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                t = days_from_civil(y, m, 1) * 86_400;
                continue;
            }
            if !self.day_matches(days, day) {
                t = (days + 1) * 86_400;
                continue;
            }
            let hour = (secs / 3600) as u32;
            if self.hours & (1 << hour) == 0 {
                t = days * 86_400 + (i64::from(hour) + 1) * 3600;
                continue;
            }
            let minute = (secs / 60 % 60) as u32;
            if self.minutes & (1 << minute) == 0 {
                t += 60;
                continue;
            }
            return Some(t);
        }
        None
    }

    /// Whether the expression fires at `t` (unix seconds, a whole minute) in `zone`. See
    /// the module's note on daylight saving.
    pub fn fires_at(&self, t: i64, zone: &dyn Zone) -> bool {
        let offset = zone.offset(t);
        let local = t + offset;
        if self.matches_local(local) {
            if self.hour_star {
                return true;
            }
            // The clock was set back within the last hours and this local time came
            // before: it fired then.
            let earlier_offset = zone.offset(t - 3 * 3600);
            if earlier_offset > offset {
                let earlier = local - earlier_offset;
                if earlier < t && zone.offset(earlier) == earlier_offset {
                    return false;
                }
            }
            return true;
        }
        // The first minute after the clock was set forward: the local times it skipped
        // fire now.
        let before = zone.offset(t - 60);
        if offset > before {
            let mut skipped = t - 60 + before + 60;
            while skipped < local {
                if self.matches_local(skipped) {
                    return true;
                }
                skipped += 60;
            }
        }
        false
    }

    /// The first instant strictly after `after` (unix seconds) at which the expression
    /// fires in `zone`; None if none comes within a few decades.
    pub fn next_after(&self, after: i64, zone: &dyn Zone) -> Option<i64> {
        let mut t = after.div_euclid(60) * 60 + 60;
        for _ in 0..10_000 {
            if self.fires_at(t, zone) {
                return Some(t);
            }
            let offset = zone.offset(t);
            let next = self.next_local(t + offset)?;
            let candidate = next - offset;
            if zone.offset(candidate) == offset {
                // No change of offset at either end: the local times between hold no match.
                t = candidate.max(t + 60);
                continue;
            }
            // The offset changes on the way: go to the change and look again from there.
            let (mut lo, mut hi) = (t, candidate);
            while hi - lo > 60 {
                let mid = lo + (hi - lo) / 2;
                if zone.offset(mid) == offset {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            t = hi.div_euclid(60) * 60;
            if t <= lo {
                t += 60;
            }
        }
        None
    }
}

fn parse_field(text: &str, kind: &FieldKind) -> Result<u64, String> {
    let bad = |why: String| format!("bad {} field \"{text}\": {why}", kind.name);
    let quartz = |item: &str| {
        let upper = item.to_ascii_uppercase();
        upper == "L"
            || upper == "LW"
            || (upper.ends_with('W') && upper[..upper.len() - 1].parse::<u32>().is_ok())
    };
    if text.contains(['?', '#']) || (kind.name == DAY.name && text.split(',').any(quartz)) {
        return Err(bad(
            "`?`, `L`, `W` and `#` are not standard cron; use `*`, values, ranges and steps".into(),
        ));
    }
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(bad("an empty list item".into()));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .map_err(|_| bad(format!("step \"{step}\" is not a number")))?;
                if step == 0 {
                    return Err(bad("a step of 0".into()));
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (kind.min, kind.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let lo = value(a, kind).map_err(&bad)?;
            let hi = value(b, kind).map_err(&bad)?;
            if lo > hi {
                return Err(bad(format!("the range {a}-{b} goes backwards")));
            }
            (lo, hi)
        } else {
            let v = value(range, kind).map_err(&bad)?;
            // `a/n`: from a to the end, n apart.
            (v, if step.is_some() { kind.max } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(text: &str, kind: &FieldKind) -> Result<u32, String> {
    if text.is_empty() {
        return Err("a range needs both ends".into());
    }
    if let Ok(n) = text.parse::<u32>() {
        if n < kind.min || n > kind.max {
            return Err(format!("{n} is not in {}-{}", kind.min, kind.max));
        }
        return Ok(n);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = kind.names.iter().position(|n| *n == lower) {
        // Months are named from 1, weekdays from 0 (Sunday).
        return Ok(i as u32 + kind.min);
    }
    if kind.names.is_empty() {
        Err(format!("\"{text}\" is not a number"))
    } else {
        Err(format!(
            "\"{text}\" is not a number or a name ({}-{})",
            kind.names[0],
            kind.names[kind.names.len() - 1]
        ))
    }
}

fn max_days(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 from a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// 0 for Sunday.
fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a UTC date and time.
    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60
    }

    fn next(expr: &str, after: i64) -> i64 {
        Cron::parse(expr).unwrap().next_after(after, &Utc).unwrap()
    }

    fn err(expr: &str) -> String {
        Cron::parse(expr).unwrap_err()
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in [-1000, 0, 59, 60, 11_016, 11_017, 20_000, 47_541] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(weekday(days_from_civil(2026, 5, 4)), 1, "a Monday");
    }

    #[test]
    fn each_field_kind_parses() {
        let c = Cron::parse("*/15 9-17 1,15 jan-mar,DEC mon-fri").unwrap();
        assert_eq!(c.minutes, 1 | 1 << 15 | 1 << 30 | 1 << 45);
        assert_eq!(c.hours, (9..=17).map(|h| 1u32 << h).sum::<u32>());
        assert_eq!(c.days, 1 << 1 | 1 << 15);
        assert_eq!(c.months, 1 << 1 | 1 << 2 | 1 << 3 | 1 << 12);
        assert_eq!(c.weekdays, 0b0111110);
        assert_eq!(c.to_string(), "*/15 9-17 1,15 jan-mar,DEC mon-fri");
        let c = Cron::parse("5/20 0-10/5 * * 7").unwrap();
        assert_eq!(c.minutes, 1 << 5 | 1 << 25 | 1 << 45);
        assert_eq!(c.hours, 1 | 1 << 5 | 1 << 10);
        assert_eq!(c.weekdays, 1, "7 is Sunday");
        let c = Cron::parse("0 0 * * 5-7").unwrap();
        assert_eq!(c.weekdays, 1 | 1 << 5 | 1 << 6);
        let c = Cron::parse("0 0 * * sun,SAT").unwrap();
        assert_eq!(c.weekdays, 1 | 1 << 6);
    }

    #[test]
    fn macros_expand() {
        for (text, fields) in [
            ("@hourly", "0 * * * *"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@weekly", "0 0 * * 0"),
            ("@monthly", "0 0 1 * *"),
            ("@yearly", "0 0 1 1 *"),
            ("@ANNUALLY", "0 0 1 1 *"),
        ] {
            let c = Cron::parse(text).unwrap();
            assert_eq!(c.fields().join(" "), fields);
            assert_eq!(c.to_string(), text);
            assert_eq!(Cron::parse(fields).unwrap().minutes, c.minutes, "{text}");
        }
        assert!(err("@reboot").contains("autostart"));
        assert!(err("@often").starts_with("unknown macro `@often`"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            err("61 * * * *"),
            r#"bad minute field "61": 61 is not in 0-59"#
        );
        assert_eq!(
            err("* 24 * * *"),
            r#"bad hour field "24": 24 is not in 0-23"#
        );
        assert_eq!(
            err("* * 0 * *"),
            r#"bad day-of-month field "0": 0 is not in 1-31"#
        );
        assert_eq!(
            err("* * * 13 *"),
            r#"bad month field "13": 13 is not in 1-12"#
        );
        assert_eq!(
            err("* * * * 8"),
            r#"bad day-of-week field "8": 8 is not in 0-7"#
        );
        assert!(err("* * * foo *").contains(r#""foo" is not a number or a name (jan-dec)"#));
        assert!(err("*/0 * * * *").contains("a step of 0"));
        assert!(err("*/x * * * *").contains(r#"step "x" is not a number"#));
        assert!(err("5-1 * * * *").contains("the range 5-1 goes backwards"));
        assert!(err("1,,2 * * * *").contains("an empty list item"));
        assert!(err("1- * * * *").contains("a range needs both ends"));
        assert!(err("* * * *").starts_with("expected 5 fields"));
        assert!(err("0 * * * * *").contains("no seconds field"));
        assert!(err("").starts_with("expected 5 fields"));
        assert!(err("0 0 ? * MON").contains("not standard cron"));
        assert!(err("0 0 L * *").contains("not standard cron"));
        assert!(err("0 0 30 2 *").starts_with("never fires"));
        assert!(err("0 0 31 4,6 *").starts_with("never fires"));
        // Either day field will do when both are restricted.
        assert!(Cron::parse("0 0 30 2 mon").is_ok());
        assert!(Cron::parse("0 0 29 2 *").is_ok(), "leap years have it");
    }

    #[test]
    fn next_fire_times() {
        let start = at(2026, 5, 4, 10, 7); // a Monday, 10:07 UTC
        assert_eq!(next("* * * * *", start), at(2026, 5, 4, 10, 8));
        assert_eq!(next("* * * * *", start + 30), at(2026, 5, 4, 10, 8));
        assert_eq!(next("*/5 * * * *", start), at(2026, 5, 4, 10, 10));
        assert_eq!(next("0 3 * * *", start), at(2026, 5, 5, 3, 0));
        assert_eq!(
            next("0 3 * * *", at(2026, 5, 5, 3, 0)),
            at(2026, 5, 6, 3, 0)
        );
        assert_eq!(next("@hourly", start), at(2026, 5, 4, 11, 0));
        assert_eq!(next("@weekly", start), at(2026, 5, 10, 0, 0), "Sunday");
        assert_eq!(
            next("30 9 * * mon-fri", at(2026, 5, 8, 10, 0)),
            at(2026, 5, 11, 9, 30)
        );
        assert_eq!(next("@yearly", start), at(2027, 1, 1, 0, 0));
    }

    #[test]
    fn month_ends_and_leap_years() {
        assert_eq!(
            next("0 0 31 * *", at(2026, 4, 1, 0, 0)),
            at(2026, 5, 31, 0, 0)
        );
        assert_eq!(
            next("0 0 31 * *", at(2026, 7, 31, 0, 0)),
            at(2026, 8, 31, 0, 0)
        );
        assert_eq!(
            next("0 0 29 2 *", at(2025, 3, 1, 0, 0)),
            at(2028, 2, 29, 0, 0)
        );
        // 2100 is not a leap year.
        assert_eq!(
            next("0 0 29 2 *", at(2096, 3, 1, 0, 0)),
            at(2104, 2, 29, 0, 0)
        );
        assert_eq!(
            next("59 23 28-29 2 *", at(2027, 2, 28, 23, 59)),
            at(2028, 2, 28, 23, 59)
        );
        assert_eq!(
            next("0 12 1 * *", at(2026, 12, 31, 23, 0)),
            at(2027, 1, 1, 12, 0)
        );
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // Both restricted: the 13th, or any Friday.
        let c = "0 0 13 * 5";
        assert_eq!(
            next(c, at(2026, 5, 4, 0, 0)),
            at(2026, 5, 8, 0, 0),
            "Friday the 8th"
        );
        assert_eq!(
            next(c, at(2026, 5, 8, 0, 0)),
            at(2026, 5, 13, 0, 0),
            "Wednesday the 13th"
        );
        // One is `*`: both must hold (so only Fridays here)...
        assert_eq!(
            next("0 0 * * 5", at(2026, 5, 8, 0, 0)),
            at(2026, 5, 15, 0, 0)
        );
        // ... and a day field starting with `*` counts as `*`, as in Vixie cron: odd days
        // that are Mondays.
        assert_eq!(
            next("0 0 */2 * 1", at(2026, 5, 4, 0, 0)),
            at(2026, 5, 11, 0, 0)
        );
        assert_eq!(
            next("0 0 */2 * 1", at(2026, 5, 11, 0, 0)),
            at(2026, 5, 25, 0, 0)
        );
    }

    /// A zone like America/New_York in 2026: UTC-5, UTC-4 from 8 March 07:00 UTC (02:00
    /// local becomes 03:00) until 1 November 06:00 UTC (02:00 local becomes 01:00).
    struct NewYork;

    impl Zone for NewYork {
        fn offset(&self, utc: i64) -> i64 {
            if (at(2026, 3, 8, 7, 0)..at(2026, 11, 1, 6, 0)).contains(&utc) {
                -4 * 3600
            } else {
                -5 * 3600
            }
        }
    }

    fn fires(expr: &str, from: i64, to: i64) -> Vec<i64> {
        let cron = Cron::parse(expr).unwrap();
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = cron.next_after(t, &NewYork) {
            if next > to {
                break;
            }
            out.push(next);
            t = next;
        }
        out
    }

    #[test]
    fn local_time_follows_the_zone() {
        // 03:00 New York is 08:00 UTC in winter, 07:00 in summer.
        assert_eq!(
            fires("0 3 * * *", at(2026, 3, 6, 0, 0), at(2026, 3, 10, 0, 0)),
            [
                at(2026, 3, 6, 8, 0),
                at(2026, 3, 7, 8, 0),
                at(2026, 3, 8, 7, 0),
                at(2026, 3, 9, 7, 0)
            ]
        );
    }

    #[test]
    fn a_time_the_clock_skips_fires_once_after_the_gap() {
        // 02:30 does not exist on 8 March: it fires at 03:00 EDT, the end of the gap.
        assert_eq!(
            fires("30 2 * * *", at(2026, 3, 7, 0, 0), at(2026, 3, 10, 0, 0)),
            [
                at(2026, 3, 7, 7, 30),
                at(2026, 3, 8, 7, 0),
                at(2026, 3, 9, 6, 30)
            ]
        );
        // Every 20 minutes: 01:40 EST, then the skipped 02:00/02:20/02:40 as one at 03:00
        // EDT, then 03:20 EDT.
        assert_eq!(
            fires("*/20 * * * *", at(2026, 3, 8, 6, 30), at(2026, 3, 8, 7, 30)),
            [
                at(2026, 3, 8, 6, 40),
                at(2026, 3, 8, 7, 0),
                at(2026, 3, 8, 7, 20)
            ]
        );
    }

    #[test]
    fn a_time_the_clock_repeats_fires_once_unless_the_hour_is_a_wildcard() {
        // 01:30 comes twice on 1 November (05:30 and 06:30 UTC): the first one only.
        assert_eq!(
            fires(
                "30 1 * * *",
                at(2026, 10, 31, 12, 0),
                at(2026, 11, 2, 12, 0)
            ),
            [at(2026, 11, 1, 5, 30), at(2026, 11, 2, 6, 30)]
        );
        // An hourly job runs every hour, the repeated one too.
        assert_eq!(
            fires("0 * * * *", at(2026, 11, 1, 4, 30), at(2026, 11, 1, 8, 0)),
            [
                at(2026, 11, 1, 5, 0), // 01:00 EDT
                at(2026, 11, 1, 6, 0), // 01:00 EST
                at(2026, 11, 1, 7, 0), // 02:00 EST
                at(2026, 11, 1, 8, 0),
            ]
        );
        // Looking from inside the second pass does not fire the first pass's times again.
        let cron = Cron::parse("45 1 * * *").unwrap();
        assert_eq!(
            cron.next_after(at(2026, 11, 1, 6, 10), &NewYork),
            Some(at(2026, 11, 2, 6, 45))
        );
    }

    #[test]
    fn local_zone_reads_an_offset() {
        // Whatever the machine's zone, an offset is within a day.
        let offset = LocalZone.offset(at(2026, 1, 1, 0, 0));
        assert!(offset.abs() < 86_400, "{offset}");
    }
}
