//! `.env` dialects: foreman's (what a Procfile's `.env` meant) and tend's (what
//! `env_file` will read), and where the two read the same file differently.
//!
//! foreman takes only `KEY=VALUE` lines (`[A-Za-z0-9_]+`, no spaces around `=`, no
//! `export`), silently skipping anything else; it strips one pair of quotes, turns `\n` in
//! double quotes into a newline and drops other backslashes; unquoted values are kept raw,
//! `#` and all. tend's dialect is documented in tend's docs/config.md (`env_file`): it
//! accepts `export`, trims unquoted values and cuts ` # comments`, lets double quotes span
//! lines, and rejects lines it cannot read, which makes `tend check` fail.

use std::collections::BTreeMap;

pub(crate) use crate::config::envfile::Assignment;

/// foreman's reading: assignments in order; other lines are ignored.
pub(crate) fn foreman(text: &str) -> Vec<Assignment> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let value = if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
            value[1..value.len() - 1].to_string()
        } else if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            let inner = value[1..value.len() - 1].replace("\\n", "\n");
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some(next) => out.push(next),
                        None => out.push('\\'),
                    }
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            value.to_string()
        };
        out.push(Assignment {
            line: i + 1,
            key: key.to_string(),
            value,
        });
    }
    out
}

/// tend's reading (the env file reader tend itself uses): assignments, and the lines it
/// rejects with why.
pub(crate) fn tend(text: &str) -> (Vec<Assignment>, Vec<(usize, String)>) {
    let (assignments, errors) = crate::config::envfile::read(text);
    let errors = errors.into_iter().map(|e| (e.line, e.message)).collect();
    (assignments, errors)
}

/// Where foreman and tend read `text` differently: `(line, key, message)`.
pub(crate) fn differences(text: &str) -> Vec<(usize, String, String)> {
    let foreman = foreman(text);
    let (tend, errors) = tend(text);
    let tend_at: BTreeMap<usize, &Assignment> = tend.iter().map(|a| (a.line, a)).collect();
    let foreman_at: BTreeMap<usize, &Assignment> = foreman.iter().map(|a| (a.line, a)).collect();
    let error_at: BTreeMap<usize, &String> = errors.iter().map(|(l, m)| (*l, m)).collect();
    let raw: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut lines: Vec<usize> = foreman_at
        .keys()
        .chain(tend_at.keys())
        .chain(error_at.keys())
        .copied()
        .collect();
    lines.sort_unstable();
    lines.dedup();
    for line in lines {
        let key = |a: Option<&&Assignment>| a.map(|a| a.key.clone());
        match (foreman_at.get(&line), tend_at.get(&line), error_at.get(&line)) {
            (f, _, Some(why)) => out.push((
                line,
                key(f).unwrap_or_else(|| "line".into()),
                format!(
                    "tend cannot read this line ({why}); `tend check` fails until it is changed{}",
                    if f.is_some() { "" } else { " (foreman ignores it)" }
                ),
            )),
            (Some(f), Some(t), None) if f.value != t.value => {
                let raw_value = raw[line - 1].split_once('=').map_or("", |(_, v)| v);
                let why = if raw_value.starts_with('"') {
                    "double-quoted values are unescaped differently (tend knows \\n \\t \\r \\\" \\\\ \\$ and keeps other backslashes; foreman drops them), and tend lets quotes span lines"
                } else if raw_value.starts_with('\'') {
                    "tend lets quotes span lines and allows a comment after the closing quote"
                } else {
                    "tend trims unquoted values and cuts a ` # comment`; foreman keeps the value raw"
                };
                out.push((
                    line,
                    f.key.clone(),
                    format!("foreman and tend read different values here: {why}"),
                ));
            }
            (Some(f), None, None) => out.push((
                line,
                f.key.clone(),
                "tend reads this line as part of a quoted value begun on an earlier line; foreman sets it on its own".into(),
            )),
            (None, Some(t), None) => out.push((
                line,
                t.key.clone(),
                "foreman ignores this line (it takes only `KEY=VALUE`, without `export` or spaces around `=`); tend sets it".into(),
            )),
            _ => {}
        }
    }
    out
}

/// The variables a file defines, as tend reads it (for `${VAR}` lookups at import time).
pub(crate) fn tend_values(text: &str) -> BTreeMap<String, String> {
    tend(text).0.into_iter().map(|a| (a.key, a.value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreman_reading() {
        let text = "A=1\nexport B=2\nC = 3\nD='x # y'\nE=\"a\\nb\\qc\"\nF=raw # kept\n9G=ok\r\n";
        let got: Vec<(String, String)> = foreman(text)
            .into_iter()
            .map(|a| (a.key, a.value))
            .collect();
        assert_eq!(
            got,
            [
                ("A".into(), "1".into()),
                ("D".into(), "x # y".into()),
                ("E".into(), "a\nbqc".into()),
                ("F".into(), "raw # kept".into()),
                ("9G".into(), "ok".into()),
            ]
        );
    }

    #[test]
    fn tend_reading() {
        let text = "export A = 1 \nB=\"x\\ty\nz\"\nC=v # c\nbad line\n";
        let (values, errors) = tend(text);
        let got: Vec<(usize, String, String)> = values
            .into_iter()
            .map(|a| (a.line, a.key, a.value))
            .collect();
        assert_eq!(
            got,
            [
                (1, "A".into(), "1".into()),
                (2, "B".into(), "x\ty\nz".into()),
                (4, "C".into(), "v".into()),
            ]
        );
        assert_eq!(
            errors,
            [(5, "expected KEY=VALUE, found `bad line`".to_string())]
        );
    }

    #[test]
    fn differences_name_the_lines() {
        let text = "SAME=1\nexport X=1\nC=v # c\n9BAD=1\nQ=\"a\\qb\"\n";
        let diffs = differences(text);
        let lines: Vec<usize> = diffs.iter().map(|d| d.0).collect();
        assert_eq!(lines, [2, 3, 4, 5], "{diffs:?}");
        assert!(diffs[0].2.contains("foreman ignores"));
        assert!(diffs[1].2.contains("trims"));
        assert!(diffs[2].2.contains("tend cannot read"));
        assert!(diffs[3].2.contains("double-quoted"));
        assert!(differences("A=1\nB='two words'\n# c\n\n").is_empty());
    }
}
