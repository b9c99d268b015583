//! A translated tree written out as a `tend.toml` people can read and keep: one table per
//! service, the warnings as comments beside the service they concern.

use std::fmt::Write as _;

use crate::config::ConfigError;
use crate::config::document::{Entry, Node, Value};

/// `tree` as TOML. `header` lines become comments at the top; `notes(service)` gives the
/// comment lines to put above a service's table.
pub fn render_toml(tree: &Node, header: &[String], notes: &dyn Fn(&str) -> Vec<String>) -> String {
    let mut out = String::new();
    for line in header {
        comment(&mut out, line);
    }
    let Some(entries) = tree.entries() else {
        return out;
    };
    for entry in entries.iter().filter(|e| !is_null(&e.value)) {
        match (entry.key.as_str(), entry.value.entries()) {
            ("services", Some(services)) => {
                for service in services {
                    out.push('\n');
                    for line in notes(&service.key) {
                        comment(&mut out, &line);
                    }
                    table(&mut out, &["services", &service.key], &service.value);
                }
            }
            (name, Some(_)) => {
                out.push('\n');
                table(&mut out, &[name], &entry.value);
            }
            (name, None) => {
                let _ = writeln!(out, "{} = {}", key(name), inline(&entry.value));
            }
        }
    }
    out
}

/// The comment lines for warnings, one per warning: `LINE: KEY: MESSAGE`, or with the file
/// when it is not `main`.
pub fn warning_lines(warnings: &[&ConfigError], main: &std::path::Path) -> Vec<String> {
    warnings
        .iter()
        .map(|w| {
            let mut text = String::new();
            if w.file != main {
                let _ = write!(text, "{}:", w.file.display());
            }
            if let Some(line) = w.line {
                let _ = write!(text, "line {line}: ");
            }
            if !w.key.is_empty() {
                let _ = write!(text, "{}: ", w.key);
            }
            text.push_str(&w.message);
            text
        })
        .collect()
}

/// `text` as comment lines. A comment may hold no control character but tab, and a
/// warning quotes the source, which may: those are written as `\uXXXX`.
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
            continue;
        }
        out.push_str("# ");
        for c in line.chars() {
            if c.is_control() && c != '\t' {
                let _ = write!(out, "\\u{:04X}", c as u32);
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
}

/// `[a.b]` with its plain keys, then its sub-tables and arrays of tables.
fn table(out: &mut String, path: &[&str], node: &Node) {
    let entries: Vec<&Entry> = node
        .entries()
        .unwrap_or(&[])
        .iter()
        .filter(|e| !is_null(&e.value))
        .collect();
    let header: Vec<String> = path.iter().map(|p| key(p)).collect();
    let nested = |e: &Entry| is_table(&e.value) || is_table_array(&e.value);
    let plain: Vec<&Entry> = entries.iter().copied().filter(|e| !nested(e)).collect();
    if !plain.is_empty() || entries.is_empty() {
        let _ = writeln!(out, "[{}]", header.join("."));
        for entry in plain {
            let _ = writeln!(out, "{} = {}", key(&entry.key), inline(&entry.value));
        }
    }
    for entry in entries.iter().copied().filter(|e| nested(e)) {
        let mut sub: Vec<&str> = path.to_vec();
        sub.push(&entry.key);
        if let Value::Array(items) = &entry.value.value {
            for item in items {
                let names: Vec<String> = sub.iter().map(|p| key(p)).collect();
                let _ = writeln!(out, "[[{}]]", names.join("."));
                for e in item
                    .entries()
                    .unwrap_or(&[])
                    .iter()
                    .filter(|e| !is_null(&e.value))
                {
                    let _ = writeln!(out, "{} = {}", key(&e.key), inline(&e.value));
                }
            }
        } else {
            table(out, &sub, &entry.value);
        }
    }
}

/// TOML has no null. A YAML or JSON `null` means what leaving the key out means (the
/// loader reads it as absent), so the key is left out.
fn is_null(node: &Node) -> bool {
    node.value == Value::Null
}

fn is_table(node: &Node) -> bool {
    matches!(node.value, Value::Table(_))
}

fn is_table_array(node: &Node) -> bool {
    matches!(&node.value, Value::Array(items) if !items.is_empty() && items.iter().all(is_table))
}

fn inline(node: &Node) -> String {
    match &node.value {
        Value::Null => "\"\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => format!("{f:.1}"),
        Value::Float(f) if f.is_nan() => "nan".into(),
        Value::Float(f) if f.is_infinite() => if *f > 0.0 { "inf" } else { "-inf" }.into(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Table(entries) => {
            let items: Vec<String> = entries
                .iter()
                .filter(|e| !is_null(&e.value))
                .map(|e| format!("{} = {}", key(&e.key), inline(&e.value)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { name.to_string() } else { string(name) }
}

/// A TOML basic string: every control character escaped, so any value survives.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::document::{Format, parse};

    #[test]
    fn rendered_toml_parses_back_to_the_same_tree() {
        let source = r#"
[tend]
state_dir = "/run/x"
[tend.log]
max_size = "1MiB"
[[tend.notify]]
url = "http://h/x"
on = ["fatal"]
[services."web app"]
command = "echo \"hi\"\tthere\u0001"
env = { A = "1", "B.C" = "two" }
backoff = { initial = "1s", factor = 1.0, jitter = 0.5 }
exit_codes = [0, 2]
[services.web.logs]
merge = true
[services.web.readiness.http]
url = "http://localhost/"
"#;
        let tree = parse(source, Format::Toml).unwrap();
        let text = render_toml(&tree, &["made by a test".into()], &|name| {
            vec![format!("about {name}")]
        });
        let back = parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(back.to_json(), tree.to_json(), "{text}");
        assert!(text.starts_with("# made by a test\n"), "{text}");
        assert!(
            text.contains("# about web app\n[services.\"web app\"]"),
            "{text}"
        );
    }

    /// Found by fuzz/run (pm2_ecosystem, supervisord_ini): a warning quoting a key with a
    /// control character in it was written raw into a comment, which TOML refuses.
    #[test]
    fn control_characters_in_comments_are_escaped() {
        let tree = parse("[services.web]\ncommand = \"x\"\n", Format::Toml).unwrap();
        let text = render_toml(
            &tree,
            &["line 6: apps[0].a\u{1}b\u{7f}: not a PM2 option\rx".into()],
            &|_| vec!["bell\u{7}\ttab".into()],
        );
        assert!(
            text.contains("# line 6: apps[0].a\\u0001b\\u007F: not a PM2 option\\u000Dx\n"),
            "{text}"
        );
        assert!(text.contains("# bell\\u0007\ttab\n"), "{text}");
        parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    }

    /// Found by fuzz/run (manifest_yaml): `services:` with nothing after it (null) loads
    /// as no services, but was written `services = ""`, which does not.
    #[test]
    fn null_values_are_left_out() {
        let source = "services:\ntend:\n  state_dir: ~\n  log: { max_size: null }\n";
        let tree = parse(source, Format::Yaml).unwrap();
        let text = render_toml(&tree, &[], &|_| Vec::new());
        assert!(!text.contains("services"), "{text}");
        assert!(!text.contains("state_dir"), "{text}");
        assert!(!text.contains("max_size"), "{text}");
        parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    }
}
