//! Lines out of a child's raw output bytes, and their formatting for log files.
//! Owns the splitting rules (partial lines, the length limit and its marker) and the on-disk
//! line formats (plain, timestamped, JSON), with UTC timestamps computed by hand.

use std::cell::Cell;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Marker appended to the pieces of a line longer than the limit (the piece ends with it, then a newline).
pub const SPLIT_MARKER: &[u8] = b" [tend: line split]";

/// Cuts a byte stream into lines, holding at most one partial line between calls.
pub struct LineSplitter {
    /// The partial line; between calls never longer than `max_line`. Also the scratch space for
    /// a split piece, which needs its marker contiguous with it.
    partial: Vec<u8>,
    max_line: usize,
}

impl fmt::Debug for LineSplitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The partial bytes themselves would only flood a debug print.
        f.debug_struct("LineSplitter")
            .field("max_line", &self.max_line)
            .field("partial_len", &self.partial.len())
            .finish()
    }
}

impl LineSplitter {
    /// `max_line` is the longest line, newline excluded, written in one piece (e.g. 64 KiB).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            partial: Vec::new(),
            // Zero would never make progress on a long line; a log thread must not panic over it.
            max_line: max_line.max(1),
        }
    }

    /// Feed raw bytes; call `emit` once per complete line, WITH its trailing '\n'. A line longer than
    /// max_line (excluding the newline) is emitted in pieces of max_line bytes, each piece except the last
    /// followed by SPLIT_MARKER and '\n' (so every emitted line ends in '\n'). Bytes after the last
    /// newline are held as a partial line. Invalid UTF-8 and ANSI escapes pass through untouched.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut rest = bytes;
        if !self.partial.is_empty() {
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                self.hold(rest, &mut emit);
                return;
            };
            self.hold(&rest[..newline], &mut emit);
            self.partial.push(b'\n');
            emit(&self.partial);
            self.release_partial();
            rest = &rest[newline + 1..];
        }

        // Nothing is held from here on, so every complete line is a slice of the input.
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', rest) {
            let line = &rest[start..=newline];
            if line.len() - 1 <= self.max_line {
                emit(line);
            } else {
                let last = self.emit_pieces(&line[..line.len() - 1], &mut emit);
                emit(&line[line.len() - 1 - last..]);
            }
            start = newline + 1;
        }
        let tail = &rest[start..];
        if !tail.is_empty() {
            let kept = self.emit_pieces(tail, &mut emit);
            self.partial.extend_from_slice(&tail[tail.len() - kept..]);
        }
    }

    /// Emit the held partial line (a '\n' is appended) — used after an idle timeout or at EOF.
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if self.partial.is_empty() {
            return;
        }
        self.partial.push(b'\n');
        emit(&self.partial);
        self.release_partial();
    }

    /// Whether bytes of an unfinished line are held: the caller's cue to arm an idle flush.
    pub fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// The unfinished line held, as it is (an upgrade hands it to the next image; the
    /// spliced path writes it before the bytes it splices).
    pub fn partial(&self) -> &[u8] {
        &self.partial
    }

    /// Hold `bytes` as the unfinished line, as if they had just been fed: the partial line
    /// the previous image of tend held (an upgrade). Longer than `max_line`, it is cut as
    /// `feed` would.
    pub fn resume_partial(&mut self, bytes: &[u8], emit: impl FnMut(&[u8])) {
        self.partial.clear();
        let mut emit = emit;
        self.hold(bytes, &mut emit);
    }

    /// Hold `bytes` (newline-free, at most `max_line`) as the unfinished line, in place of
    /// what was held: the caller wrote that out itself, completed by the bytes it spliced.
    pub fn replace_partial(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.max_line && !bytes.contains(&b'\n'));
        self.release_partial();
        self.partial.extend_from_slice(bytes);
    }

    /// Appends newline-free `bytes` to the partial line. A piece is cut only once a byte beyond
    /// `max_line` has arrived: a line of exactly `max_line` bytes must stay whole even when its
    /// newline comes in a later chunk.
    fn hold(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&[u8])) {
        loop {
            let room = self.max_line - self.partial.len();
            if bytes.len() <= room {
                self.partial.extend_from_slice(bytes);
                return;
            }
            self.partial.extend_from_slice(&bytes[..room]);
            self.partial.extend_from_slice(SPLIT_MARKER);
            self.partial.push(b'\n');
            emit(&self.partial);
            self.partial.clear();
            bytes = &bytes[room..];
        }
    }

    /// Emits full pieces of newline-free `content` (nothing held) while more than `max_line`
    /// bytes remain, and returns how many trailing bytes (1..=max_line) were left for the caller.
    fn emit_pieces(&mut self, content: &[u8], emit: &mut impl FnMut(&[u8])) -> usize {
        debug_assert!(self.partial.is_empty());
        let mut rest = content;
        if rest.len() <= self.max_line {
            return rest.len();
        }
        while rest.len() > self.max_line {
            let (piece, after) = rest.split_at(self.max_line);
            self.partial.extend_from_slice(piece);
            self.partial.extend_from_slice(SPLIT_MARKER);
            self.partial.push(b'\n');
            emit(&self.partial);
            self.partial.clear();
            rest = after;
        }
        self.release_partial();
        rest.len()
    }

    /// Empties the buffer at the end of a line. One long line must not pin `max_line` bytes
    /// for the life of the instance: the daemon's resident set counts, times every stream.
    fn release_partial(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > RETAINED_CAPACITY {
            self.partial.shrink_to(RETAINED_CAPACITY);
        }
    }
}

/// What the partial buffer may keep allocated between lines: ordinary partial lines (prompts,
/// progress output) fit without reallocating.
const RETAINED_CAPACITY: usize = 4096;

/// How each line is written to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineFormat {
    Plain,
    Timestamped(TimestampFormat),
    Json,
}

/// How the timestamp before a line is written; always UTC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimestampFormat {
    #[default]
    Rfc3339Millis,
    Pattern(Vec<Piece>),
}

/// One element of a parsed timestamp pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is, `%%` already turned into `%`.
    Literal(String),
    /// `%Y`: at least four digits.
    Year,
    /// `%m`: 01-12.
    Month,
    /// `%d`: 01-31.
    Day,
    /// `%H`: 00-23.
    Hour,
    /// `%M`: 00-59.
    Minute,
    /// `%S`: 00-59.
    Second,
    /// `%3f`: milliseconds, 000-999.
    Millis,
    /// `%6f`: microseconds, 000000-999999.
    Micros,
    /// `%z`: always `+0000`, times being UTC.
    Offset,
}

const SUPPORTED: &str = "%Y %m %d %H %M %S %3f %6f %z %%";

impl TimestampFormat {
    /// Parse a strftime-like pattern supporting %Y %m %d %H %M %S %3f (millis) %6f (micros) %z (+0000) %% and literal text;
    /// an unknown %x is an error naming it (the config validator will report it).
    pub fn parse(pattern: &str) -> Result<TimestampFormat, String> {
        if pattern.is_empty() {
            return Err("the timestamp pattern is empty".to_string());
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let piece = match chars.next() {
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('Y') => Piece::Year,
                Some('m') => Piece::Month,
                Some('d') => Piece::Day,
                Some('H') => Piece::Hour,
                Some('M') => Piece::Minute,
                Some('S') => Piece::Second,
                Some('z') => Piece::Offset,
                // A digit is a width: name it with what follows, `%4f` rather than `%4`.
                Some(digit) if digit.is_ascii_digit() => match (digit, chars.next()) {
                    ('3', Some('f')) => Piece::Millis,
                    ('6', Some('f')) => Piece::Micros,
                    (_, Some(other)) => return Err(unknown(&format!("%{digit}{other}"))),
                    (_, None) => return Err(unknown(&format!("%{digit}"))),
                },
                Some(other) => return Err(unknown(&format!("%{other}"))),
                None => {
                    return Err(format!(
                        "the timestamp pattern ends with a lone `%` (write `%%` for a percent sign; supported: {SUPPORTED})"
                    ));
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(TimestampFormat::Pattern(pieces))
    }

    pub fn write(&self, out: &mut Vec<u8>, time: SystemTime) {
        match self {
            TimestampFormat::Rfc3339Millis => rfc3339_millis(out, time),
            TimestampFormat::Pattern(pieces) => {
                let (t, nanos) = civil_and_nanos(time);
                for piece in pieces {
                    match piece {
                        Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
                        Piece::Year => push_year(out, t.year),
                        Piece::Month => push_2(out, t.month),
                        Piece::Day => push_2(out, t.day),
                        Piece::Hour => push_2(out, t.hour),
                        Piece::Minute => push_2(out, t.minute),
                        Piece::Second => push_2(out, t.second),
                        Piece::Millis => push_fixed(out, nanos / 1_000_000, 3),
                        Piece::Micros => push_fixed(out, nanos / 1_000, 6),
                        Piece::Offset => out.extend_from_slice(b"+0000"),
                    }
                }
            }
        }
    }
}

fn unknown(directive: &str) -> String {
    format!("unknown directive `{directive}` in the timestamp pattern (supported: {SUPPORTED})")
}

/// Append one formatted line to `out`. `line` includes its trailing '\n'. Times are UTC.
/// Plain: the line as is. Timestamped: `"<timestamp> " + line`. Json: one object per line:
/// `{"time":"2026-11-23T14:15:39.123Z","service":"web","instance":0,"stream":"stdout","line":"..."}\n`
/// where "line" has the trailing newline removed and is a valid JSON string: valid UTF-8 is kept
/// (escaping ", \\, and control characters as \n \t \u001b etc.), invalid UTF-8 bytes become U+FFFD.
///
/// Each maximal invalid sequence becomes one U+FFFD, as `String::from_utf8_lossy` does.
pub fn format_line(
    out: &mut Vec<u8>,
    format: &LineFormat,
    time: SystemTime,
    service: &str,
    instance: u32,
    stream: &str,
    line: &[u8],
) {
    match format {
        LineFormat::Plain => out.extend_from_slice(line),
        LineFormat::Timestamped(timestamp) => {
            timestamp.write(out, time);
            out.push(b' ');
            out.extend_from_slice(line);
        }
        LineFormat::Json => {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            // One reservation for the common case of nothing to escape.
            out.reserve(line.len() + service.len() + stream.len() + 96);
            out.extend_from_slice(b"{\"time\":\"");
            rfc3339_millis(out, time);
            out.extend_from_slice(b"\",\"service\":");
            push_json_string(out, service.as_bytes());
            out.extend_from_slice(b",\"instance\":");
            push_u64(out, u64::from(instance));
            out.extend_from_slice(b",\"stream\":");
            push_json_string(out, stream.as_bytes());
            out.extend_from_slice(b",\"line\":");
            push_json_string(out, line);
            out.extend_from_slice(b"}\n");
        }
    }
}

/// RFC 3339 with milliseconds in UTC: 2026-11-23T14:15:39.123Z (hand-written civil-from-days conversion; no chrono/jiff).
pub fn rfc3339_millis(out: &mut Vec<u8>, time: SystemTime) {
    let text = LAST_STAMP.with(|last| {
        if last.time.get() == Some(time) {
            Some(last.text.get())
        } else {
            last.update(time).then(|| last.text.get())
        }
    });
    match text {
        Some(text) => out.extend_from_slice(&text),
        None => {
            let (secs, nanos) = unix_parts(time);
            Civil::from_unix(secs).push_date_time(out);
            out.push(b'.');
            push_fixed(out, nanos / 1_000_000, 3);
            out.push(b'Z');
        }
    }
}

/// Seconds whose year has four digits (0000-9999), so that their RFC 3339 text has the fixed
/// length `RFC3339_LEN` and fits the cache.
const CACHEABLE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;
const DATE_TIME_LEN: usize = "YYYY-MM-DDTHH:MM:SS".len();
const RFC3339_LEN: usize = "YYYY-MM-DDTHH:MM:SS.mmmZ".len();

/// The last instant formatted on this thread, broken down and as RFC 3339 text. A writer that
/// stamps all the lines of a chunk with one clock reading makes the common case a comparison
/// and a copy; when only the sub-second part moved, the calendar work is still reused.
/// Separate cells keep that common case from copying the rest.
struct StampCache {
    /// `None` until the first instant inside `CACHEABLE`; the other fields describe it.
    time: Cell<Option<SystemTime>>,
    secs: Cell<i64>,
    nanos: Cell<u32>,
    civil: Cell<Civil>,
    text: Cell<[u8; RFC3339_LEN]>,
}

thread_local! {
    static LAST_STAMP: StampCache = const {
        StampCache {
            time: Cell::new(None),
            secs: Cell::new(0),
            nanos: Cell::new(0),
            civil: Cell::new(Civil { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 }),
            text: Cell::new([0; RFC3339_LEN]),
        }
    };
}

impl StampCache {
    /// Makes the cache describe `time`; false, leaving it as it was, outside `CACHEABLE`,
    /// where the fixed-width text would be wrong.
    #[cold]
    #[inline(never)]
    fn update(&self, time: SystemTime) -> bool {
        let (secs, nanos) = unix_parts(time);
        if !CACHEABLE.contains(&secs) {
            return false;
        }
        let mut text = self.text.get();
        if self.time.get().is_none() || self.secs.get() != secs {
            let civil = Civil::from_unix(secs);
            text[..DATE_TIME_LEN].copy_from_slice(&civil.fixed_text());
            self.civil.set(civil);
            self.secs.set(secs);
        }
        text[DATE_TIME_LEN..].copy_from_slice(b".000Z");
        put_digits(
            &mut text[DATE_TIME_LEN + 1..DATE_TIME_LEN + 4],
            nanos / 1_000_000,
        );
        self.text.set(text);
        self.nanos.set(nanos);
        self.time.set(Some(time));
        true
    }
}

/// `time` as calendar fields and nanoseconds, through the cache when it covers `time`.
fn civil_and_nanos(time: SystemTime) -> (Civil, u32) {
    let cached = LAST_STAMP.with(|last| {
        (last.time.get() == Some(time) || last.update(time))
            .then(|| (last.civil.get(), last.nanos.get()))
    });
    cached.unwrap_or_else(|| {
        let (secs, nanos) = unix_parts(time);
        (Civil::from_unix(secs), nanos)
    })
}

/// Whole seconds since the epoch (floored, so negative before 1970) and the nanoseconds past them.
fn unix_parts(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_nanos(),
        ),
        Err(before) => {
            let before = before.duration();
            let secs = -i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (secs, 0),
                nanos => (secs - 1, 1_000_000_000 - nanos),
            }
        }
    }
}

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    fn from_unix(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS`, for years 0-9999 only.
    fn fixed_text(&self) -> [u8; DATE_TIME_LEN] {
        debug_assert!((0..=9999).contains(&self.year));
        let mut text = *b"0000-00-00T00:00:00";
        put_digits(&mut text[0..4], self.year as u32);
        put_digits(&mut text[5..7], self.month);
        put_digits(&mut text[8..10], self.day);
        put_digits(&mut text[11..13], self.hour);
        put_digits(&mut text[14..16], self.minute);
        put_digits(&mut text[17..19], self.second);
        text
    }

    /// `YYYY-MM-DDTHH:MM:SS` for any year.
    fn push_date_time(&self, out: &mut Vec<u8>) {
        push_year(out, self.year);
        out.push(b'-');
        push_2(out, self.month);
        out.push(b'-');
        push_2(out, self.day);
        out.push(b'T');
        push_2(out, self.hour);
        out.push(b':');
        push_2(out, self.minute);
        out.push(b':');
        push_2(out, self.second);
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar: Howard
/// Hinnant's algorithm, which counts from 0000-03-01 so that the leap day ends each 400-year era.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // `days` comes from whole seconds / 86400, so this cannot overflow.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn push_2(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&[b'0' + (value / 10 % 10) as u8, b'0' + (value % 10) as u8]);
}

/// `value` zero-padded to `width` (at most 10) digits.
fn push_fixed(out: &mut Vec<u8>, value: u32, width: usize) {
    let mut digits = [0; 10];
    put_digits(&mut digits[..width], value);
    out.extend_from_slice(&digits[..width]);
}

/// The low `slot.len()` decimal digits of `value`, zero-padded, into `slot`.
fn put_digits(slot: &mut [u8], mut value: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Four digits for years 0-9999, as RFC 3339 requires; beyond that the ISO 8601 expanded form
/// (more digits, a sign before year 0) rather than a wrong date.
fn push_year(out: &mut Vec<u8>, year: i64) {
    if (0..=9999).contains(&year) {
        push_fixed(out, year as u32, 4);
        return;
    }
    if year < 0 {
        out.push(b'-');
    }
    let magnitude = year.unsigned_abs();
    if magnitude < 1000 {
        push_fixed(out, magnitude as u32, 4);
    } else {
        push_u64(out, magnitude);
    }
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// For each byte: 0 to copy it as is, `u` for a `\u00XX` escape, else the letter after `\`.
static JSON_ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// `bytes` as a quoted JSON string; invalid UTF-8 becomes U+FFFD so the file stays valid JSON.
fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    // Validation only starts at the first non-ASCII byte, which most lines never have.
    let ascii = push_json_escaped::<true>(out, bytes);
    if ascii == bytes.len() {
        out.push(b'"');
        return;
    }
    for chunk in bytes[ascii..].utf8_chunks() {
        push_json_escaped::<false>(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out.push(b'"');
}

/// Escapes `text`, copying the runs between escapes in bulk, and returns how many bytes it
/// consumed. With `ASCII_ONLY` it stops before the first byte >= 0x80; without, `text` must be
/// valid UTF-8, whose multi-byte characters never need escaping (all their bytes are >= 0x80).
fn push_json_escaped<const ASCII_ONLY: bool>(out: &mut Vec<u8>, text: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut run_start = 0;
    let mut at = 0;
    while at < text.len() {
        // Most log text has nothing to escape: skip it eight bytes at a time.
        if let Some(word) = text.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let stop = word_needs_escape(word) || (ASCII_ONLY && word & HIGH != 0);
            if !stop {
                at += 8;
                continue;
            }
        }
        let end = (at + 8).min(text.len());
        for (offset, &byte) in text[at..end].iter().enumerate() {
            if ASCII_ONLY && !byte.is_ascii() {
                out.extend_from_slice(&text[run_start..at + offset]);
                return at + offset;
            }
            let escape = JSON_ESCAPE[usize::from(byte)];
            if escape != 0 {
                out.extend_from_slice(&text[run_start..at + offset]);
                push_escape(out, byte, escape);
                run_start = at + offset + 1;
            }
        }
        at = end;
    }
    out.extend_from_slice(&text[run_start..]);
    text.len()
}

/// Whether any byte of `word` is a control character, `"` or `\` (the SWAR tests from "Bit
/// Twiddling Hacks": exact about whether some byte matches, which is all that is asked).
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    control | quote | backslash != 0
}

fn push_escape(out: &mut Vec<u8>, byte: u8, escape: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// xorshift64*: the tests need reproducible noise, not a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn collect_chunks(max: usize, chunks: &[&[u8]], flush: bool) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::new(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, |line| lines.push(line.to_vec()));
        }
        if flush {
            splitter.flush(|line| lines.push(line.to_vec()));
        }
        lines
    }

    fn collect(max: usize, input: &[u8]) -> Vec<Vec<u8>> {
        collect_chunks(max, &[input], true)
    }

    fn split_piece(piece: &[u8]) -> Vec<u8> {
        [piece, SPLIT_MARKER, b"\n"].concat()
    }

    /// The rules stated plainly, over the whole input at once.
    fn reference(max: usize, input: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for line in input.split_inclusive(|b| *b == b'\n') {
            let mut content = line.strip_suffix(b"\n").unwrap_or(line);
            while content.len() > max {
                lines.push(split_piece(&content[..max]));
                content = &content[max..];
            }
            lines.push([content, b"\n"].concat());
        }
        lines
    }

    fn random_input(rng: &mut Rng, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match rng.below(10) {
                0 => b'\n',
                1 => b'\r',
                2 => 0x1b,
                3 => 0xff,
                _ => b'a' + rng.below(26) as u8,
            })
            .collect()
    }

    #[test]
    fn random_chunking_gives_the_same_lines_as_one_feed() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let max = 1 + rng.below(24);
            let len = rng.below(400);
            let mut input = random_input(&mut rng, len);
            // Some long lines and some runs of newlines.
            if round % 3 == 0 {
                input.extend(std::iter::repeat_n(b'x', rng.below(100)));
            }
            if round % 5 == 0 {
                input.extend_from_slice(b"\n\n\n");
            }
            let whole = collect(max, &input);
            assert_eq!(whole, reference(max, &input), "max {max}");

            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(rng.below(rest.len().min(40)) + 1);
                chunks.push(chunk);
                rest = after;
            }
            // Empty feeds must change nothing.
            chunks.insert(rng.below(chunks.len() + 1), b"");
            assert_eq!(collect_chunks(max, &chunks, true), whole, "max {max}");
        }
    }

    #[test]
    fn complete_lines_are_slices_of_the_input() {
        let input = b"one\ntwo\nthree\n";
        let range = input.as_ptr_range();
        let mut splitter = LineSplitter::new(64);
        let mut count = 0;
        splitter.feed(input, |line| {
            assert!(range.contains(&line.as_ptr()));
            count += 1;
        });
        assert_eq!(count, 3);
    }

    #[test]
    fn partial_line_is_held_then_flushed() {
        let mut splitter = LineSplitter::new(64);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        splitter.feed(b"abc", |line| lines.push(line.to_vec()));
        assert!(lines.is_empty());
        assert!(splitter.has_partial());
        splitter.feed(b"def\nxy", |line| lines.push(line.to_vec()));
        assert_eq!(lines, [b"abcdef\n".to_vec()]);
        assert!(splitter.has_partial());
        splitter.flush(|line| lines.push(line.to_vec()));
        assert_eq!(lines, [b"abcdef\n".to_vec(), b"xy\n".to_vec()]);
        assert!(!splitter.has_partial());
        splitter.flush(|_| panic!("nothing is held"));
        // After an idle flush the rest of the line starts a new one.
        splitter.feed(b"z", |_| panic!("still partial"));
        splitter.feed(b"\n", |line| lines.push(line.to_vec()));
        assert_eq!(lines.last().unwrap(), b"z\n");
    }

    #[test]
    fn empty_lines_are_lines() {
        assert_eq!(collect(8, b"\n\na\n"), [&b"\n"[..], b"\n", b"a\n"]);
    }

    #[test]
    fn crlf_is_kept_as_is() {
        assert_eq!(collect(64, b"a\r\nb\r\n"), [b"a\r\n", b"b\r\n"]);
        assert_eq!(
            collect_chunks(64, &[b"a\r", b"\nb\r", b"\n"], false),
            [b"a\r\n", b"b\r\n"]
        );
        // A lone CR (progress bars) is not a line end.
        assert_eq!(collect(64, b"10%\r20%\r\n"), [b"10%\r20%\r\n"]);
    }

    #[test]
    fn exact_max_line_is_not_split() {
        assert_eq!(collect(4, b"abcd\n"), [b"abcd\n"]);
        assert_eq!(collect_chunks(4, &[b"abcd", b"\n"], false), [b"abcd\n"]);
        assert_eq!(
            collect_chunks(4, &[b"ab", b"cd", b"\n"], false),
            [b"abcd\n"]
        );
        assert_eq!(collect(4, b"abcd"), [b"abcd\n"]);
        let split = vec![split_piece(b"abcd"), b"e\n".to_vec()];
        assert_eq!(collect(4, b"abcde\n"), split);
        assert_eq!(collect_chunks(4, &[b"abcd", b"e\n"], false), split);
        // A multiple of the limit ends in a full piece, never an empty one.
        assert_eq!(
            collect(4, b"abcdefgh\n"),
            [split_piece(b"abcd"), b"efgh\n".to_vec()]
        );
        assert_eq!(
            collect_chunks(4, &[b"abcdefgh"], true),
            [split_piece(b"abcd"), b"efgh\n".to_vec()]
        );
        assert_eq!(collect(1, b"ab\n"), [split_piece(b"a"), b"b\n".to_vec()]);
    }

    #[test]
    fn a_limit_of_zero_is_taken_as_one() {
        assert_eq!(collect(0, b"ab\n"), [split_piece(b"a"), b"b\n".to_vec()]);
    }

    #[test]
    fn very_long_line_is_split_into_marked_pieces() {
        let max = 64 * 1024;
        let mut rng = Rng(7);
        let original: Vec<u8> = (0..3 * max + 12_345)
            .map(|_| b' ' + rng.below(95) as u8)
            .collect();
        let input = [&original[..], b"\nafter\n"].concat();
        for chunk_len in [input.len(), 65_536, 4096, 1000, 7] {
            let chunks: Vec<&[u8]> = input.chunks(chunk_len).collect();
            let lines = collect_chunks(max, &chunks, false);
            assert_eq!(lines.len(), 5, "chunk {chunk_len}");
            let mut joined = Vec::new();
            for piece in &lines[..3] {
                let content = piece
                    .strip_suffix(b"\n")
                    .and_then(|p| p.strip_suffix(SPLIT_MARKER))
                    .expect("a split piece ends with the marker");
                assert_eq!(content.len(), max);
                joined.extend_from_slice(content);
            }
            assert!(!lines[3].ends_with(&split_piece(b"")));
            joined.extend_from_slice(lines[3].strip_suffix(b"\n").unwrap());
            assert_eq!(joined, original);
            assert_eq!(lines[4], b"after\n");
        }
    }

    #[test]
    fn a_long_line_does_not_pin_its_buffer() {
        let mut splitter = LineSplitter::new(64 * 1024);
        let long = vec![b'x'; 200 * 1024];
        splitter.feed(&long, |_| {});
        splitter.feed(b"\n", |_| {});
        assert!(splitter.partial.capacity() <= RETAINED_CAPACITY);
        splitter.feed(&[&long[..], b"\n"].concat(), |_| {});
        assert!(splitter.partial.capacity() <= RETAINED_CAPACITY);
        splitter.feed(&long, |_| {});
        splitter.flush(|_| {});
        assert!(splitter.partial.capacity() <= RETAINED_CAPACITY);
    }

    #[test]
    fn binary_and_invalid_utf8_pass_through_plain() {
        let content: Vec<u8> = (0..=255u8).filter(|b| *b != b'\n').collect();
        let input = [&content[..], b"\n"].concat();
        let lines = collect(1024, &input);
        assert_eq!(lines, [&input[..]]);
        let mut out = Vec::new();
        format_line(
            &mut out,
            &LineFormat::Plain,
            SystemTime::now(),
            "web",
            0,
            "stdout",
            &lines[0],
        );
        assert_eq!(out, input);
    }

    #[test]
    fn ansi_escapes_pass_through() {
        let input = b"\x1b[31mred\x1b[0m \x1b]0;title\x07\n";
        assert_eq!(collect(64, input), [input]);
        let mut out = Vec::new();
        let format = LineFormat::Timestamped(TimestampFormat::Rfc3339Millis);
        format_line(&mut out, &format, UNIX_EPOCH, "web", 0, "stdout", input);
        assert_eq!(out, [&b"1970-01-01T00:00:00.000Z "[..], input].concat());
    }

    fn at(secs: i64, millis: u32) -> SystemTime {
        let offset = Duration::from_secs(secs.unsigned_abs());
        let base = if secs >= 0 {
            UNIX_EPOCH + offset
        } else {
            UNIX_EPOCH - offset
        };
        base + Duration::from_millis(u64::from(millis))
    }

    fn rfc(time: SystemTime) -> String {
        let mut out = Vec::new();
        rfc3339_millis(&mut out, time);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc(at(1_709_164_800, 0)), "2024-02-29T00:00:00.000Z");
        assert_eq!(
            rfc(at(1_709_164_800 + 86_399, 999)),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            rfc(at(1_709_164_800 + 86_400, 0)),
            "2024-03-01T00:00:00.000Z"
        );
        assert_eq!(rfc(at(1_795_443_339, 123)), "2026-11-23T14:15:39.123Z");
        assert_eq!(rfc(at(951_868_800, 0)), "2000-03-01T00:00:00.000Z");
        assert_eq!(rfc(at(253_402_300_799, 999)), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc(at(253_402_300_800, 0)), "10000-01-01T00:00:00.000Z");
        assert_eq!(rfc(at(-2_208_988_800, 0)), "1900-01-01T00:00:00.000Z");
        assert_eq!(rfc(at(-1, 500)), "1969-12-31T23:59:59.500Z");
        assert_eq!(rfc(at(-62_167_219_200, 0)), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc(at(-62_167_219_201, 0)), "-0001-12-31T23:59:59.000Z");
        // Milliseconds are truncated: rounding could carry into the next second.
        assert_eq!(
            rfc(UNIX_EPOCH + Duration::from_nanos(999_999_999)),
            "1970-01-01T00:00:00.999Z"
        );
    }

    #[test]
    fn rfc3339_cache_never_serves_a_stale_second() {
        let times = [
            at(1_795_443_339, 1),
            at(1_795_443_339, 2),
            at(1_795_443_340, 3),
            at(1_795_443_339, 4),
            at(-62_167_219_201, 5),
            at(1_795_443_339, 6),
        ];
        let expected = [
            "2026-11-23T14:15:39.001Z",
            "2026-11-23T14:15:39.002Z",
            "2026-11-23T14:15:40.003Z",
            "2026-11-23T14:15:39.004Z",
            "-0001-12-31T23:59:59.005Z",
            "2026-11-23T14:15:39.006Z",
        ];
        for (time, expected) in times.into_iter().zip(expected) {
            assert_eq!(rfc(time), expected);
        }
        // Appends, never overwrites.
        let mut out = b"x".to_vec();
        rfc3339_millis(&mut out, UNIX_EPOCH);
        rfc3339_millis(&mut out, UNIX_EPOCH);
        assert_eq!(out, b"x1970-01-01T00:00:00.000Z1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn civil_from_days_matches_counting_day_by_day() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let (mut year, mut month, mut day) = (1600i64, 1u32, 1u32);
        let start = -135_140; // 1600-01-01
        for days in start..start + 366 * 600 {
            assert_eq!(civil_from_days(days), (year, month, day), "day {days}");
            let month_len = match month {
                2 if leap(year) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            day += 1;
            if day > month_len {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
        }
    }

    #[test]
    fn extreme_times_do_not_panic() {
        for time in [
            UNIX_EPOCH + Duration::from_secs(i64::MAX as u64),
            UNIX_EPOCH - Duration::from_secs(i64::MAX as u64),
        ] {
            let mut out = Vec::new();
            rfc3339_millis(&mut out, time);
            let everything = TimestampFormat::parse("%Y-%m-%d %H:%M:%S.%6f%z").unwrap();
            everything.write(&mut out, time);
            assert!(!out.is_empty());
        }
    }

    fn pattern(pattern: &str, time: SystemTime) -> String {
        let mut out = Vec::new();
        TimestampFormat::parse(pattern)
            .unwrap()
            .write(&mut out, time);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pattern_parsing_and_formatting() {
        let time = at(1_795_443_339, 123) + Duration::from_micros(456);
        assert_eq!(
            pattern("%Y-%m-%d %H:%M:%S.%3f %z", time),
            "2026-11-23 14:15:39.123 +0000"
        );
        assert_eq!(pattern("%H:%M:%S.%6f", time), "14:15:39.123456");
        assert_eq!(pattern("[%d/%m/%Y] 100%% é", time), "[23/11/2026] 100% é");
        assert_eq!(pattern("%6f", UNIX_EPOCH), "000000");
        assert_eq!(
            TimestampFormat::parse("at %H%%h").unwrap(),
            TimestampFormat::Pattern(vec![
                Piece::Literal("at ".into()),
                Piece::Hour,
                Piece::Literal("%h".into()),
            ])
        );
        assert_eq!(
            TimestampFormat::parse("%%").unwrap(),
            TimestampFormat::Pattern(vec![Piece::Literal("%".into())])
        );
    }

    #[test]
    fn pattern_errors_name_the_directive() {
        let error = |p: &str| TimestampFormat::parse(p).unwrap_err();
        assert!(error("%Y %q").contains("`%q`"), "{}", error("%Y %q"));
        assert!(error("%3x").contains("`%3x`"));
        assert!(error("%6").contains("`%6`"));
        assert!(error("%4f").contains("`%4f`"));
        assert!(error("%é").contains("`%é`"));
        assert!(error("%Y%").contains("lone `%`"));
        assert!(error("").contains("empty"));
        assert!(error("%q").contains("supported: %Y"));
    }

    fn json(service: &str, instance: u32, stream: &str, line: &[u8]) -> String {
        let mut out = Vec::new();
        let time = at(1_795_443_339, 123);
        format_line(
            &mut out,
            &LineFormat::Json,
            time,
            service,
            instance,
            stream,
            line,
        );
        String::from_utf8(out).expect("JSON output is UTF-8")
    }

    #[test]
    fn json_exact_output() {
        assert_eq!(
            json("web", 0, "stdout", b"hello\n"),
            "{\"time\":\"2026-11-23T14:15:39.123Z\",\"service\":\"web\",\"instance\":0,\
             \"stream\":\"stdout\",\"line\":\"hello\"}\n"
        );
        let line = json(
            "web",
            4_000_000_000,
            "stderr",
            b"a\"b\\c\td\re\x1b[0m\x00\x7f\x08\x0c\n",
        );
        assert!(line.contains("\"instance\":4000000000,"));
        assert!(
            line.ends_with("\"line\":\"a\\\"b\\\\c\\td\\re\\u001b[0m\\u0000\x7f\\b\\f\"}\n"),
            "{line}"
        );
        // Only the one trailing newline is removed; inner and earlier ones are escaped.
        assert!(json("w", 0, "stdout", b"a\n\n").ends_with("\"line\":\"a\\n\"}\n"));
        assert!(json("w", 0, "stdout", b"no newline").ends_with("\"line\":\"no newline\"}\n"));
        assert!(json("w", 0, "stdout", b"\n").ends_with("\"line\":\"\"}\n"));
        // Service and stream names are escaped too.
        assert!(json("a\"b", 0, "stdout", b"x\n").contains("\"service\":\"a\\\"b\""));
    }

    #[test]
    fn json_keeps_valid_utf8_and_replaces_invalid_bytes() {
        let line = json("web", 0, "stdout", "héllo ✓ 😀\n".as_bytes());
        assert!(line.ends_with("\"line\":\"héllo ✓ 😀\"}\n"));
        let line = json("web", 0, "stdout", b"a\xffb\xe2\x9c\n");
        assert!(
            line.ends_with("\"line\":\"a\u{FFFD}b\u{FFFD}\"}\n"),
            "{line}"
        );
    }

    #[test]
    fn json_escapes_at_every_position_of_a_word() {
        let naive = |text: &str| -> String {
            let mut escaped = String::new();
            for c in text.chars() {
                match c {
                    '"' => escaped.push_str("\\\""),
                    '\\' => escaped.push_str("\\\\"),
                    '\n' => escaped.push_str("\\n"),
                    '\r' => escaped.push_str("\\r"),
                    '\t' => escaped.push_str("\\t"),
                    '\u{8}' => escaped.push_str("\\b"),
                    '\u{c}' => escaped.push_str("\\f"),
                    c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
                    c => escaped.push(c),
                }
            }
            escaped
        };
        let specials = [
            '"', '\\', '\0', '\x1f', '\n', '\x1b', ' ', '!', '#', '[', ']', '\x7f', 'é',
        ];
        for len in 0..26 {
            for at in 0..len {
                for special in specials {
                    for second in [None, Some((at * 7 + 3) % len)] {
                        let mut chars: Vec<char> =
                            (0..len).map(|i| (b'a' + i as u8) as char).collect();
                        chars[at] = special;
                        if let Some(other) = second {
                            chars[other] = '"';
                        }
                        let text: String = chars.into_iter().collect();
                        let mut out = Vec::new();
                        push_json_string(&mut out, text.as_bytes());
                        assert_eq!(
                            String::from_utf8(out).unwrap(),
                            format!("\"{}\"", naive(&text)),
                            "{text:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn word_test_matches_the_table() {
        for byte in 0..=255u8 {
            for lane in 0..8 {
                let mut word = [b'a'; 8];
                word[lane] = byte;
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(word)),
                    JSON_ESCAPE[usize::from(byte)] != 0,
                    "byte {byte:#x} in lane {lane}"
                );
            }
        }
        // Neighbouring lanes must not mask or fake a match (borrows cross lanes).
        let mut rng = Rng(99);
        let interesting = [
            0x00, 0x01, 0x1f, 0x20, 0x21, b'"', 0x23, 0x5b, b'\\', 0x5d, 0x7f, 0x80, 0xa2, 0xdc,
            0xff,
        ];
        for _ in 0..200_000 {
            let word: [u8; 8] = std::array::from_fn(|_| interesting[rng.below(interesting.len())]);
            let expected = word.iter().any(|b| JSON_ESCAPE[usize::from(*b)] != 0);
            assert_eq!(
                word_needs_escape(u64::from_le_bytes(word)),
                expected,
                "{word:x?}"
            );
        }
    }

    /// A minimal JSON reader for the one shape written: an object of string and integer values.
    /// Returns (key, value) pairs, the strings decoded.
    fn parse_object(text: &str) -> Result<Vec<(String, String)>, String> {
        let mut chars = text.chars().peekable();
        let mut fields = Vec::new();
        let expect =
            |chars: &mut std::iter::Peekable<std::str::Chars>, want: char| match chars.next() {
                Some(c) if c == want => Ok(()),
                other => Err(format!("expected {want:?}, got {other:?}")),
            };
        let string = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<String, String> {
            expect(chars, '"')?;
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated string")? {
                    '"' => return Ok(value),
                    '\\' => match chars.next().ok_or("unterminated escape")? {
                        '"' => value.push('"'),
                        '\\' => value.push('\\'),
                        '/' => value.push('/'),
                        'n' => value.push('\n'),
                        'r' => value.push('\r'),
                        't' => value.push('\t'),
                        'b' => value.push('\u{8}'),
                        'f' => value.push('\u{c}'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                            let code = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                            value.push(char::from_u32(code).ok_or("surrogate")?);
                        }
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    c if (c as u32) < 0x20 => return Err(format!("raw control {c:?}")),
                    c => value.push(c),
                }
            }
        };
        expect(&mut chars, '{')?;
        loop {
            let key = string(&mut chars)?;
            expect(&mut chars, ':')?;
            let value = if chars.peek() == Some(&'"') {
                string(&mut chars)?
            } else {
                let mut digits = String::new();
                while let Some(c) = chars.next_if(char::is_ascii_digit) {
                    digits.push(c);
                }
                if digits.is_empty() {
                    return Err("expected a value".into());
                }
                digits
            };
            fields.push((key, value));
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => return Err(format!("expected , or }}, got {other:?}")),
            }
        }
        expect(&mut chars, '\n')?;
        match chars.next() {
            None => Ok(fields),
            Some(c) => Err(format!("trailing {c:?}")),
        }
    }

    #[test]
    fn json_lines_parse_back_to_the_lossy_line() {
        let mut rng = Rng(42);
        for _ in 0..500 {
            let mut line: Vec<u8> = (0..rng.below(60))
                .map(|_| match rng.below(8) {
                    0 => rng.below(0x20) as u8,
                    1 => 0x80 + rng.below(0x80) as u8,
                    2 => b'"',
                    3 => b'\\',
                    _ => b' ' + rng.below(95) as u8,
                })
                .collect();
            if rng.below(4) == 0 {
                line.extend_from_slice("é✓😀".as_bytes());
            }
            line.push(b'\n');
            let text = json("web", 3, "stderr", &line);
            let fields = parse_object(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            let expected = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let want = [
                ("time", "2026-11-23T14:15:39.123Z"),
                ("service", "web"),
                ("instance", "3"),
                ("stream", "stderr"),
                ("line", expected.as_str()),
            ];
            let got: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn timestamped_prefixes_the_line() {
        let mut out = Vec::new();
        let format = LineFormat::Timestamped(TimestampFormat::parse("%H:%M:%S").unwrap());
        format_line(
            &mut out,
            &format,
            at(1_795_443_339, 0),
            "web",
            0,
            "stdout",
            b"hi\n",
        );
        assert_eq!(out, b"14:15:39 hi\n");
    }

    /// `cargo test --release -- --ignored --nocapture bench_`: feeds 100 MiB of 100-byte lines
    /// in 64 KiB reads (the log reader's chunk size), one clock reading per read.
    #[test]
    #[ignore]
    fn bench_throughput() {
        use std::hint::black_box;
        use std::time::Instant;

        const TOTAL: usize = 100 * 1024 * 1024;
        const CHUNK: usize = 64 * 1024;
        let line: Vec<u8> = (0..99)
            .map(|i| b'a' + (i % 26) as u8)
            .chain([b'\n'])
            .collect();
        let input: Vec<u8> = line.iter().copied().cycle().take(TOTAL).collect();

        let formats: [(&str, Option<LineFormat>); 4] = [
            ("feed alone", None),
            (
                "feed + rfc3339 timestamp",
                Some(LineFormat::Timestamped(TimestampFormat::Rfc3339Millis)),
            ),
            (
                "feed + pattern timestamp",
                Some(LineFormat::Timestamped(
                    TimestampFormat::parse("%Y-%m-%d %H:%M:%S.%3f%z").unwrap(),
                )),
            ),
            ("feed + json", Some(LineFormat::Json)),
        ];
        for (name, format) in &formats {
            let mut best = f64::MAX;
            let mut written = 0;
            for _ in 0..3 {
                let mut splitter = LineSplitter::new(64 * 1024);
                let mut out = Vec::with_capacity(4 * CHUNK);
                let started = Instant::now();
                written = 0;
                for chunk in input.chunks(CHUNK) {
                    let now = SystemTime::now();
                    out.clear();
                    splitter.feed(black_box(chunk), |line| match format {
                        None => {
                            black_box(line);
                        }
                        Some(format) => {
                            format_line(&mut out, format, now, "web", 0, "stdout", line)
                        }
                    });
                    written += out.len();
                    black_box(&out);
                }
                best = best.min(started.elapsed().as_secs_f64());
            }
            let mb = TOTAL as f64 / 1e6;
            println!(
                "{name:>26}: {:>8.0} MB/s of input ({:.1} ns/line, {written} bytes out)",
                mb / best,
                best * 1e9 / (TOTAL / 100) as f64
            );
        }
    }
}
