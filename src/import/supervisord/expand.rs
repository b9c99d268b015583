//! supervisord's `%(name)s` expansions: every value it reads goes through Python's
//! `value % names`, so this is a small implementation of Python's printf-style formatting
//! with a mapping: `%(name)` followed by optional flags (`-+ #0`), width, precision, a
//! length modifier (`h`, `l`, `L`, ignored) and a conversion (`s r a d i u o x X c e E f F
//! g G`). `%%` is a literal `%`; anything else after a `%` is an error, as in supervisord.

use std::fmt::Write;

/// A value a name expands to: text (`here`, `program_name`, `ENV_*`) or a number
/// (`process_num`, `numprocs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Int(i64),
    /// Inserted as it is whatever the conversion says: the `{instance}` placeholder used
    /// to build a per-instance template (it is checked against the real values after).
    Verbatim(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `%(name)s` where nothing is called `name`.
    Unknown(String),
    /// A malformed or unsupported format, in words.
    Format(String),
}

#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

/// Expand every `%(name)...` in `text`, looking names up with `lookup`.
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<Arg>) -> Result<String, ExpandError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let incomplete = || {
        ExpandError::Format(
            "incomplete format: a `%` ends the value (write `%%` for a literal `%`)".into(),
        )
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        let percent_at = i;
        i += 1;
        match chars.get(i) {
            None => return Err(incomplete()),
            Some('%') => {
                out.push('%');
                i += 1;
                continue;
            }
            Some('(') => {}
            Some(_) => {
                let shown: String = chars[percent_at..(i + 1).min(chars.len())].iter().collect();
                return Err(ExpandError::Format(format!(
                    "`{shown}` is not an expansion: expansions are written `%(name)s`; write `%%` for a literal `%`"
                )));
            }
        }
        // The key: up to the matching `)`, counting nested parentheses as Python does.
        i += 1;
        let key_start = i;
        let mut depth = 1;
        while i < chars.len() {
            match chars[i] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if i >= chars.len() {
            return Err(ExpandError::Format(
                "incomplete format key: `%(` without its `)`".into(),
            ));
        }
        let name: String = chars[key_start..i].iter().collect();
        i += 1;
        let value = lookup(&name).ok_or_else(|| ExpandError::Unknown(name.clone()))?;

        let mut spec = Spec::default();
        while let Some(&flag) = chars.get(i) {
            match flag {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                '0' => spec.zero = true,
                _ => break,
            }
            i += 1;
        }
        let star = || {
            ExpandError::Format(format!(
                "`%({name})*`: a `*` width or precision needs an argument list, not names"
            ))
        };
        if chars.get(i) == Some(&'*') {
            return Err(star());
        }
        spec.width = digits(&chars, &mut i).ok_or_else(too_wide)?.unwrap_or(0);
        if chars.get(i) == Some(&'.') {
            i += 1;
            if chars.get(i) == Some(&'*') {
                return Err(star());
            }
            spec.precision = Some(digits(&chars, &mut i).ok_or_else(too_wide)?.unwrap_or(0));
        }
        if matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conversion) = chars.get(i) else {
            return Err(incomplete());
        };
        i += 1;
        let piece = convert(conversion, &value, &spec).map_err(|message| {
            ExpandError::Format(format!("`%({name})…{conversion}`: {message}"))
        })?;
        out.push_str(&piece);
    }
    Ok(out)
}

fn too_wide() -> ExpandError {
    ExpandError::Format("width or precision too big".into())
}

/// Read decimal digits at `i`: None inside means "no digits", the outer None an overflow.
fn digits(chars: &[char], i: &mut usize) -> Option<Option<usize>> {
    let start = *i;
    let mut value: usize = 0;
    while let Some(d) = chars.get(*i).and_then(|c| c.to_digit(10)) {
        value = value.checked_mul(10)?.checked_add(d as usize)?;
        if value > 1 << 20 {
            return None;
        }
        *i += 1;
    }
    Some((*i > start).then_some(value))
}

fn convert(conversion: char, value: &Arg, spec: &Spec) -> Result<String, String> {
    if let Arg::Verbatim(text) = value {
        return Ok(text.clone());
    }
    match conversion {
        's' | 'r' | 'a' => {
            let text = match (conversion, value) {
                (_, Arg::Int(n)) => n.to_string(),
                ('s', Arg::Text(t)) => t.clone(),
                (_, Arg::Text(t)) => python_repr(t, conversion == 'a'),
                (_, Arg::Verbatim(_)) => unreachable!("handled above"),
            };
            let text: String = match spec.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            Ok(pad_text(&text, spec))
        }
        'd' | 'i' | 'u' | 'o' | 'x' | 'X' => {
            let n = number(value, conversion)?;
            let (base_digits, prefix) = match conversion {
                'o' => (format!("{:o}", n.unsigned_abs()), "0o"),
                'x' => (format!("{:x}", n.unsigned_abs()), "0x"),
                'X' => (format!("{:X}", n.unsigned_abs()), "0X"),
                _ => (n.unsigned_abs().to_string(), ""),
            };
            let mut body = base_digits;
            if let Some(p) = spec.precision
                && body.len() < p
            {
                body = format!("{}{body}", "0".repeat(p - body.len()));
            }
            let prefix = if spec.alt { prefix } else { "" };
            Ok(pad_number(sign(n < 0, spec), prefix, &body, spec))
        }
        'c' => {
            let c = match value {
                Arg::Int(n) => u32::try_from(*n)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or("%c needs a number in range(0x110000)")?,
                Arg::Text(t) if t.chars().count() == 1 => t.chars().next().unwrap_or_default(),
                _ => return Err("%c needs a number or a single character".into()),
            };
            Ok(pad_text(&c.to_string(), spec))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let n = match value {
                Arg::Int(n) => *n as f64,
                _ => return Err(format!("%{conversion} needs a number, not text")),
            };
            let precision = spec.precision.unwrap_or(6);
            let body = match conversion.to_ascii_lowercase() {
                'f' => fixed(n.abs(), precision, spec.alt),
                'e' => scientific(n.abs(), precision, spec.alt),
                _ => general(n.abs(), precision, spec.alt),
            };
            let body = if conversion.is_ascii_uppercase() {
                body.to_ascii_uppercase()
            } else {
                body
            };
            Ok(pad_number(sign(n < 0.0, spec), "", &body, spec))
        }
        other => Err(format!(
            "unsupported format character `{other}` (use s, d, i, u, o, x, X, c, e, f, g or r)"
        )),
    }
}

fn number(value: &Arg, conversion: char) -> Result<i64, String> {
    match value {
        Arg::Int(n) => Ok(*n),
        _ => Err(format!(
            "%{conversion} needs a number, but this name is text (use `s`)"
        )),
    }
}

fn sign(negative: bool, spec: &Spec) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn pad_text(text: &str, spec: &Spec) -> String {
    let len = text.chars().count();
    if len >= spec.width {
        return text.to_string();
    }
    let fill = " ".repeat(spec.width - len);
    if spec.left {
        format!("{text}{fill}")
    } else {
        format!("{fill}{text}")
    }
}

fn pad_number(sign: &str, prefix: &str, body: &str, spec: &Spec) -> String {
    let len = sign.len() + prefix.len() + body.len();
    if len >= spec.width {
        return format!("{sign}{prefix}{body}");
    }
    let fill = spec.width - len;
    if spec.left {
        format!("{sign}{prefix}{body}{}", " ".repeat(fill))
    } else if spec.zero {
        format!("{sign}{prefix}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{sign}{prefix}{body}", " ".repeat(fill))
    }
}

fn fixed(n: f64, precision: usize, alt: bool) -> String {
    let mut text = format!("{n:.precision$}");
    if alt && precision == 0 {
        text.push('.');
    }
    text
}

/// `1.500000e+01`: Python's exponent has a sign and at least two digits.
fn scientific(n: f64, precision: usize, alt: bool) -> String {
    let text = format!("{n:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut mantissa = mantissa.to_string();
    if alt && precision == 0 {
        mantissa.push('.');
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// `%g`: scientific when the exponent is below -4 or not below the precision, fixed
/// otherwise; trailing zeros removed unless `#`.
fn general(n: f64, precision: usize, alt: bool) -> String {
    let p = precision.max(1);
    let probe = format!("{n:.prec$e}", prec = p - 1);
    let exponent: i64 = probe
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let text = if exponent < -4 || exponent >= p as i64 {
        scientific(n, p - 1, alt)
    } else {
        fixed(n, (p as i64 - 1 - exponent) as usize, alt)
    };
    if alt {
        return text;
    }
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m.to_string(), format!("e{e}")),
        None => (text.clone(), String::new()),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        mantissa
    };
    format!("{mantissa}{exponent}")
}

/// Python's `repr()` of a string (`ascii()` when `ascii_only`).
fn python_repr(text: &str, ascii_only: bool) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if ascii_only && !c.is_ascii() => {
                let code = c as u32;
                let _ = if code <= 0xff {
                    write!(out, "\\x{code:02x}")
                } else if code <= 0xffff {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(name: &str) -> Option<Arg> {
        match name {
            "a" => Some(Arg::Int(1)),
            "n" => Some(Arg::Int(7)),
            "neg" => Some(Arg::Int(-42)),
            "big" => Some(Arg::Int(123456789)),
            "s" => Some(Arg::Text("str".into())),
            "q" => Some(Arg::Text("it's".into())),
            "u" => Some(Arg::Text("é\n".into())),
            "here" => Some(Arg::Text("/etc/supervisor".into())),
            "process_num" => Some(Arg::Verbatim("{instance}".into())),
            "a(b)c" => Some(Arg::Text("nested".into())),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        expand(text, &names).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn err(text: &str) -> ExpandError {
        expand(text, &names).expect_err(text)
    }

    /// Every expected value here is what Python 3.11 prints for `text % names`.
    #[test]
    fn formats_like_python() {
        let cases = [
            ("plain", "plain"),
            ("%(n)02d", "07"),
            ("%(n)-4d|", "7   |"),
            ("%(n)+d", "+7"),
            ("%(n) d", " 7"),
            ("%(n)#x", "0x7"),
            ("%(n)#o", "0o7"),
            ("%(n)r", "7"),
            ("%(s)r", "'str'"),
            ("%(q)r", "\"it's\""),
            ("%(u)r", "'é\\n'"),
            ("%(u)a", "'\\xe9\\n'"),
            ("%(s)a", "'str'"),
            ("%(n)f", "7.000000"),
            ("%(n).2e", "7.00e+00"),
            ("%(n)g", "7"),
            ("%(big)g", "1.23457e+08"),
            ("%(big)G", "1.23457E+08"),
            ("%(n)5.3d", "  007"),
            ("%(s).2s", "st"),
            ("%(s)5s", "  str"),
            ("%(n)s", "7"),
            ("%(a)hd", "1"),
            ("%(a)ld", "1"),
            ("%(n)i", "7"),
            ("%(n)u", "7"),
            ("%(n).0f", "7"),
            ("%(n)#.0f", "7."),
            ("%(n)010.3f", "000007.000"),
            ("%(n)-08d|", "7       |"),
            ("%(s)-8s|", "str     |"),
            ("%(n)x", "7"),
            ("%(big)X", "75BCD15"),
            ("%%(a)s", "%(a)s"),
            ("%(n)e", "7.000000e+00"),
            ("%(a)08.3s", "       1"),
            ("%(neg)05d", "-0042"),
            ("%(neg)x", "-2a"),
            ("%(neg)+.1f", "-42.0"),
            ("%(a(b)c)s", "nested"),
            ("100%% %(here)s/x", "100% /etc/supervisor/x"),
            ("%(n)05.3d", "00007"),
            ("%(n)-+5d|", "+7   |"),
            ("%(n)#5x", "  0x7"),
            ("%(n)#05x", "0x007"),
            ("%(n).0e", "7e+00"),
            ("%(n)#.0e", "7.e+00"),
            ("%(n).3g", "7"),
            ("%(big).3g", "1.23e+08"),
            ("%(n)#g", "7.00000"),
        ];
        for (text, expected) in cases {
            assert_eq!(ok(text), expected, "{text}");
        }
    }

    #[test]
    fn verbatim_values_ignore_the_format() {
        assert_eq!(ok("w%(process_num)02d"), "w{instance}");
        assert_eq!(ok("%(process_num)s"), "{instance}");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(err("%(nope)s"), ExpandError::Unknown("nope".into()));
        assert!(matches!(err("100%"), ExpandError::Format(m) if m.contains("incomplete")));
        assert!(matches!(err("%z"), ExpandError::Format(m) if m.contains("literal `%`")));
        assert!(matches!(err("%s"), ExpandError::Format(_)));
        assert!(matches!(err("%(a)z"), ExpandError::Format(m) if m.contains("unsupported")));
        assert!(matches!(err("%(a)"), ExpandError::Format(m) if m.contains("incomplete")));
        assert!(matches!(err("%(a)%"), ExpandError::Format(_)));
        assert!(matches!(err("%(a)*d"), ExpandError::Format(_)));
        assert!(matches!(err("%(a"), ExpandError::Format(m) if m.contains("`)`")));
        assert!(matches!(err("%(s)d"), ExpandError::Format(m) if m.contains("needs a number")));
        assert!(matches!(err("%(s)f"), ExpandError::Format(_)));
        assert!(matches!(err("% (a)s"), ExpandError::Format(_)));
        assert!(matches!(err("%(s)c"), ExpandError::Format(_)));
    }
}
