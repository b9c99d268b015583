//! The part of Go's text/template that process-compose's `vars` are used with: `{{.NAME}}`
//! (with `{{-`/`-}}` trimming), string literals and comments. process-compose renders its
//! process fields with it at load time; the importer does the same, except that the
//! replica number stays a per-instance placeholder.
//!
//! Anything else (`if`, `range`, pipelines, functions) is not rendered: it is kept as
//! written and reported, rather than guessed.

/// What an action renders to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Out {
    Lit(String),
    /// `{{.PC_REPLICA_NUM}}`: the replica number, decided per instance.
    Replica,
}

/// A variable's value, as the importer knows it.
pub(crate) enum Lookup {
    Text(String),
    Replica,
    Missing,
}

/// An action that was kept as written, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub action: String,
    pub message: String,
    /// process-compose itself cannot load the file (a template that does not parse).
    pub fatal: bool,
}

/// Render the actions in `text`.
pub(crate) fn render(text: &str, lookup: &dyn Fn(&str) -> Lookup) -> (Vec<Out>, Vec<Problem>) {
    let mut out: Vec<Out> = Vec::new();
    let mut problems = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        let after_open = &rest[open + 2..];
        let Some(close) = closing(after_open) else {
            problems.push(Problem {
                action: shorten(&rest[open..]),
                message: "unclosed template action: process-compose cannot load this".into(),
                fatal: true,
            });
            push_lit(&mut out, before);
            push_lit(&mut out, &rest[open..]);
            return (out, problems);
        };
        let mut inner = &after_open[..close];
        let trim_before =
            inner.starts_with("- ") || inner.starts_with("-\t") || inner.starts_with("-\n");
        let trim_after = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_before {
            inner = &inner[1..];
            before = before.trim_end();
        }
        if trim_after {
            inner = &inner[..inner.len() - 1];
        }
        push_lit(&mut out, before);
        let whole = &rest[open..open + 2 + close + 2];
        match action(inner.trim(), lookup) {
            Ok(Some(Out::Lit(s))) => push_lit(&mut out, &s),
            Ok(Some(Out::Replica)) => out.push(Out::Replica),
            Ok(None) => {}
            Err(message) => {
                problems.push(Problem {
                    action: whole.to_string(),
                    message,
                    fatal: false,
                });
                push_lit(&mut out, whole);
            }
        }
        trim_next = trim_after;
        rest = &after_open[close + 2..];
    }
    push_lit(&mut out, if trim_next { rest.trim_start() } else { rest });
    (out, problems)
}

/// Where the action starting `text` ends: the first `}}` outside a quoted string.
fn closing(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), b) if b == q => quote = None,
            (None, b'"' | b'`') => quote = Some(bytes[i]),
            (None, b'}') if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn push_lit(out: &mut Vec<Out>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Out::Lit(t)) = out.last_mut() {
        t.push_str(s);
    } else {
        out.push(Out::Lit(s.to_string()));
    }
}

/// One action's inside. `Ok(None)` renders nothing (a comment).
fn action(inner: &str, lookup: &dyn Fn(&str) -> Lookup) -> Result<Option<Out>, String> {
    if inner.starts_with("/*") && inner.ends_with("*/") {
        return Ok(None);
    }
    if let Some(name) = inner.strip_prefix("$.").or_else(|| inner.strip_prefix('.'))
        && !name.is_empty()
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
    {
        return match lookup(name) {
            Lookup::Text(s) => Ok(Some(Out::Lit(s))),
            Lookup::Replica => Ok(Some(Out::Replica)),
            Lookup::Missing => Err(format!(
                "`{name}` is not in `vars`: process-compose renders it as `<no value>` (or fails on a field of it); kept as written"
            )),
        };
    }
    if let Some(raw) = inner.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
        return Ok(Some(Out::Lit(raw.to_string())));
    }
    if inner.len() >= 2
        && inner.starts_with('"')
        && inner.ends_with('"')
        && let Some(s) = unquote(&inner[1..inner.len() - 1])
    {
        return Ok(Some(Out::Lit(s)));
    }
    Err("only `{{.NAME}}` actions are translated (no functions, pipelines, `if` or `range`); kept as written".into())
}

/// A Go double-quoted string's inside, with the common escapes.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(30) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Lookup {
        match name {
            "PORT" => Lookup::Text("8080".into()),
            "PC_REPLICA_NUM" => Lookup::Replica,
            _ => Lookup::Missing,
        }
    }

    #[test]
    fn renders_variables_and_keeps_the_rest() {
        let (out, problems) = render("serve {{.PORT}} {{ .PC_REPLICA_NUM }}x", &vars);
        assert_eq!(
            out,
            [
                Out::Lit("serve 8080 ".into()),
                Out::Replica,
                Out::Lit("x".into())
            ]
        );
        assert!(problems.is_empty());
        let (out, _) = render("a  {{- .PORT -}}  b{{/* note */}}", &vars);
        assert_eq!(out, [Out::Lit("a8080b".into())]);
        let (out, _) = render(r#"{{"{{"}}x{{`}}`}}"#, &vars);
        assert_eq!(out, [Out::Lit("{{x}}".into())]);
    }

    #[test]
    fn unknown_and_unsupported_actions_are_kept_and_reported() {
        let (out, problems) = render("docker ps --format '{{.Names}}'", &vars);
        assert_eq!(out, [Out::Lit("docker ps --format '{{.Names}}'".into())]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("not in `vars`"));
        let (_, problems) = render("{{ if .PORT }}x{{ end }}", &vars);
        assert_eq!(problems.len(), 2);
        let (_, problems) = render("a {{ .PORT", &vars);
        assert!(problems[0].fatal);
    }
}
