//! Small helpers shared by the importers: building tend's tree, collecting diagnostics,
//! naming services, and writing text that survives tend's `${VAR}` interpolation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::Diagnostic;
use crate::config::document::{Entry, Node, Value};
use crate::config::edit_distance;

pub(crate) fn string(line: usize, s: impl Into<String>) -> Node {
    Node::new(line, Value::String(s.into()))
}

pub(crate) fn integer(line: usize, i: i64) -> Node {
    Node::new(line, Value::Integer(i))
}

pub(crate) fn boolean(line: usize, b: bool) -> Node {
    Node::new(line, Value::Bool(b))
}

pub(crate) fn float(line: usize, f: f64) -> Node {
    Node::new(line, Value::Float(f))
}

pub(crate) fn array(line: usize, items: Vec<Node>) -> Node {
    Node::new(line, Value::Array(items))
}

pub(crate) fn table(line: usize) -> Node {
    Node::new(line, Value::Table(Vec::new()))
}

/// A duration tend reads: whole seconds with their unit (a bare number is an error there).
pub(crate) fn seconds(n: i64) -> String {
    format!("{n}s")
}

/// Set `key` in a table node, replacing an earlier value in place (its position kept, as a
/// TOML table written once would have it) or appending.
pub(crate) fn set(table: &mut Node, key: &str, line: usize, value: Node) {
    let Value::Table(entries) = &mut table.value else {
        return;
    };
    match entries.iter_mut().find(|e| e.key == key) {
        Some(entry) => {
            entry.line = line;
            entry.value = value;
        }
        None => entries.push(Entry {
            key: key.to_string(),
            line,
            value,
        }),
    }
}

pub(crate) fn get_mut<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Table(entries) => entries
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value),
        _ => None,
    }
}

pub(crate) fn remove(node: &mut Node, key: &str) {
    if let Value::Table(entries) = &mut node.value {
        entries.retain(|e| e.key != key);
    }
}

/// Warnings and errors for one source file, in the order found.
pub(crate) struct Report {
    pub file: PathBuf,
    pub warnings: Vec<Diagnostic>,
    pub errors: Vec<Diagnostic>,
}

impl Report {
    pub fn new(file: &Path) -> Report {
        Report {
            file: file.to_path_buf(),
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn diagnostic(&self, line: usize, key: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message,
        }
    }

    pub fn warn(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, key, message.into());
        // The same note from two paths to one value (an alias, a global entry merged into
        // each service) is said once.
        if !self.warnings.contains(&d) {
            self.warnings.push(d);
        }
    }

    /// A warning about another file (an env file beside the source).
    pub fn warn_in(&mut self, file: &Path, line: usize, key: &str, message: impl Into<String>) {
        let d = Diagnostic {
            file: file.to_path_buf(),
            line,
            key: key.to_string(),
            message: message.into(),
        };
        if !self.warnings.contains(&d) {
            self.warnings.push(d);
        }
    }

    pub fn error(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, key, message.into());
        if !self.errors.contains(&d) {
            self.errors.push(d);
        }
    }
}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let length = word.chars().count();
    let limit = (length / 3).max(1);
    candidates
        .iter()
        // No distance under the difference in length: a long word is not measured.
        .filter(|c| c.chars().count().abs_diff(length) <= limit)
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// " (did you mean `x`?)" or nothing.
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// Whether tend accepts `name` for a service or group: `[A-Za-z0-9][A-Za-z0-9_.-]*`, not `all`.
pub(crate) fn is_tend_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name != "all"
}

/// Hands out tend names: the source name when tend accepts it, otherwise the nearest name
/// it does accept, never the same one twice.
#[derive(Default)]
pub(crate) struct Names {
    taken: HashSet<String>,
}

impl Names {
    /// Reserve names that must not be handed out (service names, for groups).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string());
    }

    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }

    /// A tend name for `source`. The second value is true when it differs from `source`.
    pub fn assign(&mut self, source: &str) -> (String, bool) {
        let mut base: String = source
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        // Only the first character is stricter: strip what tend does not accept there.
        base = base
            .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_string();
        if base.is_empty() {
            base = "process".to_string();
        }
        if base == "all" {
            base = "all-process".to_string();
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        let changed = name != source;
        (name, changed)
    }
}

/// Text written into a string tend interpolates (`command`, `args`, `env` values, `cwd`)
/// so that it comes out exactly as given: tend expands `${...}` and writes `$${` for a
/// literal `${`; every other `$` (`$HOME`, `$1`, `$$`) already passes through untouched.
pub(crate) fn tend_literal(text: &str) -> String {
    text.replace("${", "$${")
}

/// The placeholders tend replaces per instance in commands, env values and probes. A source
/// that contains one literally would have it replaced.
pub(crate) fn placeholders_in(text: &str) -> Vec<&'static str> {
    ["{instance}", "{port}"]
        .into_iter()
        .filter(|p| text.contains(p))
        .collect()
}

/// Quote `s` for a POSIX shell when it needs it.
pub(crate) fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_text_survives_interpolation_rules() {
        assert_eq!(tend_literal("${PORT:-3000}"), "$${PORT:-3000}");
        assert_eq!(tend_literal("$PORT $$ $1"), "$PORT $$ $1");
        // A literal `$` right before `${`: `$$${` reads back as `$${`.
        assert_eq!(tend_literal("$${X}"), "$$${X}");
    }

    #[test]
    fn names_are_made_valid_and_unique() {
        let mut names = Names::default();
        assert_eq!(names.assign("web"), ("web".into(), false));
        assert_eq!(names.assign("_web"), ("web-2".into(), true));
        assert_eq!(names.assign("__pc_log"), ("pc_log".into(), true));
        assert_eq!(names.assign("my app/1"), ("my-app-1".into(), true));
        assert_eq!(names.assign("all"), ("all-process".into(), true));
        assert_eq!(names.assign("---"), ("process".into(), true));
        assert!(is_tend_name("a.b_c-1"));
        assert!(!is_tend_name("-a"));
        assert!(!is_tend_name("all"));
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        let keys = ["command", "working_dir", "environment"];
        assert_eq!(did_you_mean("comand", &keys), Some("command"));
        assert_eq!(did_you_mean("workdir", &keys), None);
        assert_eq!(did_you_mean("working-dir", &keys), Some("working_dir"));
        assert_eq!(did_you_mean("zzz", &keys), None);
        assert_eq!(hint("enviroment", &keys), "; did you mean `environment`?");
    }

    #[test]
    fn set_replaces_in_place() {
        let mut t = table(1);
        set(&mut t, "a", 1, integer(1, 1));
        set(&mut t, "b", 2, integer(2, 2));
        set(&mut t, "a", 3, integer(3, 3));
        assert_eq!(t.to_json(), serde_json::json!({"a": 3, "b": 2}));
        remove(&mut t, "a");
        assert!(get_mut(&mut t, "a").is_none());
        assert_eq!(sh_quote("/tmp"), "/tmp");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }
}
