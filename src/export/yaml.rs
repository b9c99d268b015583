//! A tiny YAML writer for what the exporters produce: block mappings and sequences whose
//! string scalars are always double-quoted.
//!
//! Why write YAML by hand rather than emit JSON documents: people read and edit these
//! files, and block YAML is what Kubernetes and Compose users expect. The risky part of
//! YAML is scalars (`no`, `1.10`, `0755`, `key: value`, `#`, leading spaces, newlines), and
//! that risk disappears when every string is double-quoted: inside double quotes only `"`,
//! `\` and non-printable characters need escaping, with JSON's escapes (`\"`, `\\`, `\n`,
//! `\t`, `\uXXXX`), which YAML 1.1 and 1.2 both read. Integers and booleans are written
//! plain on purpose. Keys are written plain only when they are plainly safe (identifier-like
//! and not a YAML 1.1 boolean or null), otherwise double-quoted too.

use std::fmt::Write as _;

/// A YAML node. Mappings keep their insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Str(String),
    Int(i64),
    Bool(bool),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A sequence of strings.
    pub fn strs<I, S>(items: I) -> Node
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Node::Seq(items.into_iter().map(|s| Node::Str(s.into())).collect())
    }
}

/// Builds a mapping in order: `Map::new().entry("a", x).opt("b", maybe)`.
#[derive(Debug, Clone, Default)]
pub struct Map(Vec<(String, Node)>);

impl Map {
    pub fn new() -> Map {
        Map(Vec::new())
    }

    pub fn entry(mut self, key: impl Into<String>, value: impl Into<Node>) -> Map {
        self.0.push((key.into(), value.into()));
        self
    }

    pub fn opt(self, key: impl Into<String>, value: Option<impl Into<Node>>) -> Map {
        match value {
            Some(v) => self.entry(key, v),
            None => self,
        }
    }

    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Node>) {
        self.0.push((key.into(), value.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Map> for Node {
    fn from(m: Map) -> Node {
        Node::Map(m.0)
    }
}

impl From<&str> for Node {
    fn from(s: &str) -> Node {
        Node::Str(s.to_string())
    }
}

impl From<String> for Node {
    fn from(s: String) -> Node {
        Node::Str(s)
    }
}

impl From<i64> for Node {
    fn from(n: i64) -> Node {
        Node::Int(n)
    }
}

impl From<u32> for Node {
    fn from(n: u32) -> Node {
        Node::Int(n.into())
    }
}

impl From<bool> for Node {
    fn from(b: bool) -> Node {
        Node::Bool(b)
    }
}

impl From<Vec<Node>> for Node {
    fn from(v: Vec<Node>) -> Node {
        Node::Seq(v)
    }
}

/// A double-quoted YAML scalar (also a valid JSON string).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => {
                // Characters outside the BMP are printable, so only BMP code points get here.
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What YAML does not allow raw in a stream (C0 and C1 controls, DEL, the non-characters
/// U+FFFE/U+FFFF), plus the byte order mark and the Unicode line separators, which some
/// parsers treat as line breaks.
fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20
        || (0x7F..=0x9F).contains(&u)
        || matches!(u, 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF)
}

/// A mapping key: plain when unambiguous, otherwise double-quoted.
pub fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { k.to_string() } else { quote(k) }
}

fn scalar(node: &Node) -> Option<String> {
    match node {
        Node::Str(s) => Some(quote(s)),
        Node::Int(n) => Some(n.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        Node::Seq(v) if v.is_empty() => Some("[]".into()),
        Node::Map(m) if m.is_empty() => Some("{}".into()),
        _ => None,
    }
}

/// Write `node` as a block, each line indented by `indent` spaces.
fn block(node: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                match scalar(v) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}{}: {s}", key(k));
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{}:", key(k));
                        block(v, indent + 2, out);
                    }
                }
            }
        }
        Node::Seq(items) if !items.is_empty() => {
            for item in items {
                match scalar(item) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    None => {
                        // The item as a block two columns further in, with its first line's
                        // indentation turned into the "- " marker.
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push_str(&pad);
                        out.push_str("- ");
                        out.push_str(&inner[indent + 2..]);
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other).unwrap_or_default());
        }
    }
}

/// One YAML document (without the `---` marker), ending in a newline.
pub fn to_string(node: &Node) -> String {
    let mut out = String::new();
    block(node, 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_yaml_needs() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("l1\nl2\tx"), r#""l1\nl2\tx""#);
        assert_eq!(quote("\u{1b}[0m\u{85}"), r#""\u001B[0m\u0085""#);
        assert_eq!(quote("no"), r#""no""#);
        assert_eq!(quote("héllo €"), "\"héllo €\"");
    }

    #[test]
    fn keys_are_plain_only_when_safe() {
        assert_eq!(key("app.kubernetes.io/name"), "app.kubernetes.io/name");
        assert_eq!(key("no"), r#""no""#);
        assert_eq!(key("1x"), r#""1x""#);
        assert_eq!(key("a b"), r#""a b""#);
        assert_eq!(key("a:b"), r#""a:b""#);
    }

    #[test]
    fn nested_blocks() {
        let doc: Node = Map::new()
            .entry("a", 1i64)
            .entry(
                "list",
                vec![
                    Map::new()
                        .entry("x", "1")
                        .entry("z", Node::strs(["p", "q"]))
                        .into(),
                    Node::strs(["inner"]),
                    Node::Seq(vec![]),
                ],
            )
            .entry("empty", Map::new())
            .into();
        assert_eq!(
            to_string(&doc),
            "a: 1\nlist:\n  - x: \"1\"\n    z:\n      - \"p\"\n      - \"q\"\n  - - \"inner\"\n  - []\nempty: {}\n"
        );
    }
}
