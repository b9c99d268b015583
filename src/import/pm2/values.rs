//! JavaScript's and PM2's value conversions (truthiness, `String(x)`, `JSON.stringify`,
//! `parseFloat`, PM2's argument splitting and units), and how values are written for tend.

use super::js::{Js, JsValue, Member, Part, js_number};

/// JavaScript truthiness.
pub(crate) fn truthy(js: &Js) -> bool {
    match &js.value {
        JsValue::Undefined | JsValue::Null => false,
        JsValue::Bool(b) => *b,
        JsValue::Number(n) => *n != 0.0 && !n.is_nan(),
        JsValue::String(s) => !s.is_empty(),
        JsValue::Array(_) | JsValue::Object(_) | JsValue::EnvString(_) | JsValue::Code(_) => true,
    }
}

/// `String(value)` for literal values; None for code and environment reads.
pub(crate) fn js_string(js: &Js) -> Option<String> {
    Some(match &js.value {
        JsValue::Undefined => "undefined".into(),
        JsValue::Null => "null".into(),
        JsValue::Bool(b) => b.to_string(),
        JsValue::Number(n) => js_number(*n),
        JsValue::String(s) => s.clone(),
        // Array.prototype.join: null and undefined elements are empty.
        JsValue::Array(items) => items
            .iter()
            .map(|item| match item.value {
                JsValue::Undefined | JsValue::Null => Some(String::new()),
                _ => js_string(item),
            })
            .collect::<Option<Vec<_>>>()?
            .join(","),
        JsValue::Object(_) => "[object Object]".into(),
        JsValue::EnvString(_) | JsValue::Code(_) => return None,
    })
}

/// `JSON.stringify(value)`; None where it gives `undefined` or the value is not a literal.
/// Keys come out in JavaScript's property order: integer-like keys ascending, then the
/// others as first written (a repeated key keeps its first place and its last value).
pub(crate) fn json_stringify(js: &Js) -> Option<String> {
    let mut out = String::new();
    write_json(js, &mut out).then_some(out)
}

fn write_json(js: &Js, out: &mut String) -> bool {
    match &js.value {
        JsValue::Undefined | JsValue::EnvString(_) | JsValue::Code(_) => return false,
        JsValue::Null => out.push_str("null"),
        JsValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsValue::Number(n) if n.is_finite() => out.push_str(&js_number(*n)),
        JsValue::Number(_) => out.push_str("null"),
        JsValue::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        JsValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let mut element = String::new();
                if write_json(item, &mut element) {
                    out.push_str(&element);
                } else {
                    out.push_str("null");
                }
            }
            out.push(']');
        }
        JsValue::Object(members) => {
            let mut props: Vec<(&str, &Js)> = Vec::new();
            for member in members {
                let Member::Prop(prop) = member else {
                    return false;
                };
                match props.iter_mut().find(|(k, _)| *k == prop.key) {
                    Some(slot) => slot.1 = &prop.value,
                    None => props.push((&prop.key, &prop.value)),
                }
            }
            let index = |k: &str| k.parse::<u32>().ok().filter(|i| i.to_string() == k);
            props.sort_by_key(|(k, _)| index(k).map_or((1, 0), |i| (0, i)));
            out.push('{');
            let mut first = true;
            for (key, value) in props {
                let mut element = String::new();
                if !write_json(value, &mut element) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&serde_json::Value::String(key.to_string()).to_string());
                out.push(':');
                out.push_str(&element);
            }
            out.push('}');
        }
    }
    true
}

fn trim_js(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// `Number(text)`.
pub(crate) fn js_to_number(text: &str) -> f64 {
    let t = trim_js(text);
    if t.is_empty() {
        return 0.0;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = t.strip_prefix(prefix) {
            if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                return f64::NAN;
            }
            return digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |v, d| v * f64::from(radix) + f64::from(d));
        }
    }
    let decimal = decimal_prefix(t);
    if decimal.len() == t.len() {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// `parseFloat(text)`.
pub(crate) fn js_parse_float(text: &str) -> f64 {
    let t = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if unsigned.starts_with("Infinity") {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let prefix = decimal_prefix(t);
    prefix.parse().unwrap_or(f64::NAN)
}

/// `parseInt(String(value))` for a number, which truncates (and reads `1e21` as 1).
pub(crate) fn js_parse_int_number(n: f64) -> f64 {
    js_parse_int(&js_number(n))
}

/// `parseInt(text)` (radix 10, or 16 after `0x`).
pub(crate) fn js_parse_int(text: &str) -> f64 {
    let t = trim_js(text);
    let (negative, unsigned) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (digits, radix) = match unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        Some(hex) => (hex, 16),
        None => (unsigned, 10),
    };
    let len = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if len == 0 {
        return f64::NAN;
    }
    let value = digits[..len]
        .chars()
        .filter_map(|c| c.to_digit(radix))
        .fold(0.0, |v, d| v * f64::from(radix) + f64::from(d));
    if negative { -value } else { value }
}

/// The longest prefix of `t` that is a decimal number (`StrDecimalLiteral` without
/// Infinity): sign, digits, point, digits, exponent.
fn decimal_prefix(t: &str) -> &str {
    let bytes = t.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    if i < bytes.len() && bytes[i] == b'.' {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if digits > 0 || j > frac_start {
            digits += j - frac_start;
            i = j;
        }
    }
    if digits == 0 {
        return "";
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < bytes.len() && matches!(bytes[j], b'+' | b'-') {
            j += 1;
        }
        let exp_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    &t[..i]
}

/// PM2's split of a string given where an array is expected (`args`, `node_args`):
/// `/[^\s"'=]+="[^"]*"|[^\s"'=]+='[^']*'|"([^"]*)"|'([^']*)'|\S+/g`, then one pair of
/// surrounding quotes removed and empty words dropped. Not a shell: `--a="x y"` keeps its
/// quotes, and there are no escapes.
pub(crate) fn pm2_split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let plain = |c: char| !(c.is_whitespace() || c == '"' || c == '\'' || c == '=');
    let mut words = Vec::new();
    let mut i = 0;
    while i < n {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        // `name="…"` / `name='…'`
        let assignment = || {
            let mut j = i;
            while j < n && plain(chars[j]) {
                j += 1;
            }
            if j == i || j + 1 >= n || chars[j] != '=' || !matches!(chars[j + 1], '"' | '\'') {
                return None;
            }
            let quote = chars[j + 1];
            let close = (j + 2..n).find(|&k| chars[k] == quote)?;
            Some(close + 1)
        };
        let quoted = || {
            let quote = chars[i];
            if !matches!(quote, '"' | '\'') {
                return None;
            }
            let close = (i + 1..n).find(|&k| chars[k] == quote)?;
            Some(close + 1)
        };
        let end = assignment()
            .or_else(quoted)
            .unwrap_or_else(|| (i..n).find(|&k| chars[k].is_whitespace()).unwrap_or(n));
        let word: String = chars[i..end].iter().collect();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|&q| {
                (word.len() >= 2 && word.starts_with(q) && word.ends_with(q))
                    .then(|| word[1..word.len() - 1].to_string())
            })
            // A lone quote character is "quoted" too: it becomes empty and is dropped.
            .unwrap_or_else(|| {
                if word == "\"" || word == "'" {
                    String::new()
                } else {
                    word
                }
            });
        if !unquoted.trim().is_empty() {
            words.push(unquoted);
        }
        i = end;
    }
    words
}

/// Milliseconds as a tend duration: `"1s"`, `"1600ms"`.
pub(crate) fn duration(ms: f64) -> String {
    let ms = ms.max(0.0);
    if ms.fract() != 0.0 {
        return format!("{}ms", js_number(ms));
    }
    let whole = ms as u64;
    if whole != 0 && whole.is_multiple_of(1000) {
        format!("{}s", whole / 1000)
    } else {
        format!("{whole}ms")
    }
}

/// Escape text for a tend string that tend interpolates (`command`, `args`, `env`, `cwd`):
/// `${` would be a variable there.
pub(crate) fn escape_interpolation(text: &str) -> String {
    text.replace("${", "$${")
}

/// An environment read as tend interpolation: `${VAR:-default}` (a bare `process.env.X` is
/// `${X:-}`, so that an unset variable gives "" as it does in PM2 rather than failing).
/// None when a default holds `}`, which would close the expansion early.
pub(crate) fn env_interpolation(parts: &[Part]) -> Option<String> {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(&escape_interpolation(text)),
            Part::Env { var, default } => {
                let default = default.as_deref().unwrap_or("");
                if default.contains('}') || !valid_var_name(var) {
                    return None;
                }
                out.push_str(&format!("${{{var}:-{}}}", escape_interpolation(default)));
            }
        }
    }
    Some(out)
}

/// A name tend's `${…}` accepts.
fn valid_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// dayjs format tokens and the tend timestamp directive for each; None where tend has no
/// equivalent. tend's clock is UTC, so the zone tokens are written as text.
const DAYJS_TOKENS: &[(&str, Option<&str>)] = &[
    ("YYYY", Some("%Y")),
    ("YY", None),
    ("MMMM", None),
    ("MMM", None),
    ("MM", Some("%m")),
    ("M", None),
    ("DD", Some("%d")),
    ("D", None),
    ("dddd", None),
    ("ddd", None),
    ("dd", None),
    ("d", None),
    ("HH", Some("%H")),
    ("H", None),
    ("hh", None),
    ("h", None),
    ("mm", Some("%M")),
    ("m", None),
    ("ss", Some("%S")),
    ("s", None),
    ("SSS", Some("%3f")),
    ("ZZ", Some("+0000")),
    ("Z", Some("+00:00")),
    ("A", None),
    ("a", None),
];

/// A dayjs format (PM2's `log_date_format`) as a tend `timestamp_format`, or the first
/// token tend cannot write.
pub(crate) fn dayjs_to_tend(format: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            // `[text]` is literal text in dayjs.
            if let Some(close) = rest.find(']') {
                out.push_str(&rest[1..close].replace('%', "%%"));
                rest = &rest[close + 1..];
                continue;
            }
        }
        if let Some((token, directive)) = DAYJS_TOKENS.iter().find(|(t, _)| rest.starts_with(*t)) {
            match directive {
                Some(d) => out.push_str(d),
                None => return Err((*token).to_string()),
            }
            rest = &rest[token.len()..];
            continue;
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// Bytes as a tend size: `"200MiB"` when a whole number of KiB, MiB or GiB, else bytes.
pub(crate) fn size(bytes: u64) -> String {
    for (unit, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::js::read_expression;
    use super::*;

    #[test]
    fn pm2_splits_like_its_regex() {
        assert_eq!(pm2_split("run start"), ["run", "start"]);
        assert_eq!(pm2_split("  a   'b c'  \"d e\" "), ["a", "b c", "d e"]);
        assert_eq!(pm2_split("--name=\"x y\" z"), ["--name=\"x y\"", "z"]);
        assert_eq!(pm2_split("--name='x y'"), ["--name='x y'"]);
        assert_eq!(pm2_split("a\"b c\""), ["a\"b", "c\""]);
        assert_eq!(pm2_split("\" '"), Vec::<String>::new());
        assert_eq!(pm2_split("'' x"), ["x"]);
        assert_eq!(pm2_split("-r esm"), ["-r", "esm"]);
        assert_eq!(pm2_split("=\"a b\""), ["=\"a", "b\""]);
    }

    #[test]
    fn numbers_parse_like_javascript() {
        assert_eq!(js_to_number(" 12 "), 12.0);
        assert_eq!(js_to_number(""), 0.0);
        assert_eq!(js_to_number("0x10"), 16.0);
        assert!(js_to_number("12px").is_nan());
        assert!(js_to_number("inf").is_nan());
        assert_eq!(js_to_number("1e3"), 1000.0);
        assert_eq!(js_parse_float("200M"), 200.0);
        assert_eq!(js_parse_float(".5s"), 0.5);
        assert!(js_parse_float("M").is_nan());
        assert_eq!(js_parse_int("2.7"), 2.0);
        assert_eq!(js_parse_int("0x1f"), 31.0);
        assert!(js_parse_int("max").is_nan());
        assert_eq!(js_parse_int_number(-3.9), -3.0);
    }

    #[test]
    fn truthiness_and_strings() {
        let js = |t: &str| read_expression(t).unwrap();
        assert!(!truthy(&js("0")));
        assert!(!truthy(&js("''")));
        assert!(truthy(&js("[]")));
        assert_eq!(
            js_string(&js("[1, null, 'a', [2, 3]]")).unwrap(),
            "1,,a,2,3"
        );
        assert_eq!(js_string(&js("1.50")).unwrap(), "1.5");
        assert_eq!(
            json_stringify(&js(
                "{b: 1, 2: 'x', a: [1, undefined], 1: null, u: undefined, b: 3}"
            ))
            .unwrap(),
            r#"{"1":null,"2":"x","b":3,"a":[1,null]}"#
        );
    }

    #[test]
    fn units_and_formats() {
        assert_eq!(duration(1600.0), "1600ms");
        assert_eq!(duration(2000.0), "2s");
        assert_eq!(duration(0.0), "0ms");
        assert_eq!(size(200 << 20), "200MiB");
        assert_eq!(size(1 << 30), "1GiB");
        assert_eq!(size(160), "160");
        assert_eq!(size(1536 << 10), "1536KiB");
        assert_eq!(
            dayjs_to_tend("YYYY-MM-DD HH:mm:ss.SSS Z").unwrap(),
            "%Y-%m-%d %H:%M:%S.%3f +00:00"
        );
        assert_eq!(dayjs_to_tend("[at] HH:mm 100%").unwrap(), "at %H:%M 100%%");
        assert_eq!(dayjs_to_tend("DD/MM/YY").unwrap_err(), "YY");
        assert_eq!(dayjs_to_tend("hh:mm A").unwrap_err(), "hh");
        assert_eq!(escape_interpolation("a${b}"), "a$${b}");
        let parts = [
            Part::Text("x${".into()),
            Part::Env {
                var: "A".into(),
                default: Some("d".into()),
            },
            Part::Env {
                var: "B".into(),
                default: None,
            },
        ];
        assert_eq!(env_interpolation(&parts).unwrap(), "x$${${A:-d}${B:-}");
        let bad = [Part::Env {
            var: "A".into(),
            default: Some("}".into()),
        }];
        assert_eq!(env_interpolation(&bad), None);
    }
}
