//! The manifest as parsed, before any meaning is given to it: a small format-neutral tree
//! in which every value and every table key knows its 1-based line. TOML, YAML and JSON all
//! become this tree, so everything after parsing reports lines the same way for each.
//!
//! JSON is read by the YAML parser (YAML 1.2 is a superset of JSON), which gives JSON errors
//! lines too and makes `tend.json` accept comments and the rest of YAML as a side effect.
//! YAML is read as YAML 1.2: `yes`, `no`, `on` and `off` are strings, not booleans.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use saphyr::{Scalar, ScalarStyle};
use saphyr_parser::{Event, Parser, Span, Tag};

/// The formats a manifest can be written in, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
    Json,
}

impl Format {
    pub const EXTENSIONS: &'static str = ".toml, .yaml, .yml or .json";

    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// A value and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(String),
    Array(Vec<Node>),
    /// Entries in file order; keys are unique (duplicates are rejected while parsing).
    Table(Vec<Entry>),
}

/// One `key = value` of a table; `line` is where the key is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub line: usize,
    pub value: Node,
}

/// One step into the tree: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Renders a path the way errors name keys: `services.web.args[2]`.
pub struct Dotted<'a>(pub &'a [Segment]);

impl fmt::Display for Dotted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A syntax error: the file could not be turned into a tree at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: Option<usize>,
    pub message: String,
}

impl Node {
    pub fn new(line: usize, value: Value) -> Node {
        Node { line, value }
    }

    /// The entries when this is a table.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Table(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|e| &e.value)
    }

    /// What kind of value this is, for messages ("expected a table, found an integer").
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }

    /// The line that best locates `path`: the key (or element) it names, or the deepest
    /// part of it that exists when the rest is missing.
    pub fn line_of(&self, path: &[Segment]) -> usize {
        let mut node = self;
        let mut line = self.line;
        for segment in path {
            match (segment, &node.value) {
                (Segment::Key(key), Value::Table(entries)) => {
                    match entries.iter().find(|e| &e.key == key) {
                        Some(entry) => {
                            line = entry.line;
                            node = &entry.value;
                        }
                        None => break,
                    }
                }
                (Segment::Index(index), Value::Array(items)) => match items.get(*index) {
                    Some(item) => {
                        line = item.line;
                        node = item;
                    }
                    None => break,
                },
                _ => break,
            }
        }
        line
    }

    /// Remove the table entry `path` names; false when there is no such entry.
    pub fn remove(&mut self, path: &[Segment]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut node = self;
        for segment in parents {
            let next = match (segment, &mut node.value) {
                (Segment::Key(key), Value::Table(entries)) => entries
                    .iter_mut()
                    .find(|e| &e.key == key)
                    .map(|e| &mut e.value),
                (Segment::Index(index), Value::Array(items)) => items.get_mut(*index),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => return false,
            }
        }
        match (last, &mut node.value) {
            (Segment::Key(key), Value::Table(entries)) => {
                let before = entries.len();
                entries.retain(|e| &e.key != key);
                entries.len() != before
            }
            _ => false,
        }
    }

    /// The same data as JSON, for serde. Non-finite floats have no JSON form and become
    /// their text, which the typed fields then reject with a clear type error.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Integer(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or_else(|| J::String(f.to_string())),
            Value::String(s) => J::String(s.clone()),
            Value::Array(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Table(entries) => J::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parse `text` in `format` into a tree. On failure, every syntax error found.
pub fn parse(text: &str, format: Format) -> Result<Node, Vec<SyntaxError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Toml => toml::parse(text),
        Format::Yaml => yaml::parse(text),
        // JSON allows a tab wherever it allows a space, YAML does not (`"a":<TAB>1`). Valid
        // JSON has tabs only as whitespace (strings must escape them), so this changes
        // nothing else, and keeps every line and column where it was.
        Format::Json => yaml::parse(&text.replace('\t', " ")),
    }
}

/// Byte offsets to 1-based lines and columns.
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }

    /// 1-based column in characters.
    fn column(&self, offset: usize) -> usize {
        let line_start = self.starts[self.line(offset) - 1];
        let end = offset.min(self.text.len());
        self.text
            .get(line_start..end)
            .map_or(end.saturating_sub(line_start), |s| s.chars().count())
            + 1
    }
}

mod toml {
    //! TOML through the toml crate's spanned document parser.

    use super::*;
    use ::toml::Spanned;
    use ::toml::de::{DeTable, DeValue};

    pub(super) fn parse(text: &str) -> Result<Node, Vec<SyntaxError>> {
        let index = LineIndex::new(text);
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return Err(errors
                .iter()
                .map(|e| match e.span() {
                    Some(span) => SyntaxError {
                        line: Some(index.line(span.start)),
                        message: format!(
                            "{} (column {})",
                            e.message().trim_end(),
                            index.column(span.start)
                        ),
                    },
                    None => SyntaxError {
                        line: None,
                        message: e.message().trim_end().to_string(),
                    },
                })
                .collect());
        }
        let mut errors = Vec::new();
        let node = Node::new(1, table(root.get_ref(), &index, &mut errors));
        if errors.is_empty() {
            Ok(node)
        } else {
            Err(errors)
        }
    }

    fn table(table: &DeTable<'_>, index: &LineIndex<'_>, errors: &mut Vec<SyntaxError>) -> Value {
        // The toml crate keeps tables sorted by key; the spans give back file order.
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        Value::Table(
            entries
                .into_iter()
                .map(|(key, value)| Entry {
                    key: key.get_ref().to_string(),
                    line: index.line(key.span().start),
                    value: node(value, index, errors),
                })
                .collect(),
        )
    }

    fn node(
        value: &Spanned<DeValue<'_>>,
        index: &LineIndex<'_>,
        errors: &mut Vec<SyntaxError>,
    ) -> Node {
        let line = index.line(value.span().start);
        let value = match value.get_ref() {
            DeValue::String(s) => Value::String(s.to_string()),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(i) => Value::Integer(i),
                Err(_) => {
                    errors.push(SyntaxError {
                        line: Some(line),
                        message: format!("integer `{i}` is out of range"),
                    });
                    Value::Null
                }
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                Ok(f) => Value::Float(f),
                Err(_) => {
                    errors.push(SyntaxError {
                        line: Some(line),
                        message: format!("invalid float `{f}`"),
                    });
                    Value::Null
                }
            },
            DeValue::Boolean(b) => Value::Bool(*b),
            // No manifest key takes a date; as text, a typed key rejects it with a type error.
            DeValue::Datetime(d) => Value::String(d.to_string()),
            DeValue::Array(items) => {
                Value::Array(items.iter().map(|item| node(item, index, errors)).collect())
            }
            DeValue::Table(t) => table(t, index, errors),
        };
        Node::new(line, value)
    }
}

mod yaml {
    //! YAML (and JSON) through saphyr's event parser, resolving scalars with saphyr's
    //! YAML 1.2 core schema.

    use super::*;

    /// Anchors can make a small file expand into a huge tree ("billion laughs"); this bounds
    /// the nodes that aliases may copy in one document.
    const ALIAS_BUDGET: usize = 100_000;

    /// Block collections can nest without limit in YAML; the tree is dropped and converted
    /// recursively, so deep input is refused before it could exhaust the stack. A manifest
    /// needs about five levels.
    const MAX_DEPTH: usize = 64;

    enum Frame {
        Sequence {
            line: usize,
            anchor: usize,
            items: Vec<Node>,
        },
        Mapping {
            line: usize,
            anchor: usize,
            entries: Vec<Entry>,
            /// The key read and awaiting its value (None: a key that is not a string).
            key: Option<(Option<String>, usize)>,
            /// Where each key was first written, to report duplicates with both lines.
            seen: HashMap<String, usize>,
        },
    }

    impl Frame {
        fn line(&self) -> usize {
            match self {
                Frame::Sequence { line, .. } | Frame::Mapping { line, .. } => *line,
            }
        }
    }

    #[derive(Default)]
    struct Builder {
        stack: Vec<Frame>,
        anchors: HashMap<usize, Node>,
        root: Option<Node>,
        documents: usize,
        alias_budget: usize,
        errors: Vec<SyntaxError>,
        /// The line the text ends on: see [`within`].
        last_line: usize,
    }

    pub(super) fn parse(text: &str) -> Result<Node, Vec<SyntaxError>> {
        let mut builder = Builder {
            alias_budget: ALIAS_BUDGET,
            last_line: last_line(text),
            ..Builder::default()
        };
        for event in Parser::new_from_str(text) {
            match event {
                Ok((event, span)) => builder.on_event(event, span),
                Err(e) => {
                    let (line, column) = within(text, e.marker().line(), e.marker().col() + 1);
                    builder.errors.push(SyntaxError {
                        line: Some(line),
                        message: format!("{} (column {column})", e.info()),
                    });
                    break;
                }
            }
            if builder.stack.len() > MAX_DEPTH {
                builder.error(
                    builder.stack.last().map_or(1, Frame::line),
                    &format!("values are nested more than {MAX_DEPTH} levels deep"),
                );
                break;
            }
        }
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        Ok(builder
            .root
            .unwrap_or_else(|| Node::new(1, Value::Table(Vec::new()))))
    }

    /// The line `text` ends on. saphyr's line breaks are LF, CRLF and a lone CR.
    fn last_line(text: &str) -> usize {
        text.replace("\r\n", "\n").matches(['\n', '\r']).count() + 1
    }

    /// A line and column that exist in `text`. At the end of a text with no final line
    /// break, saphyr places what it finds there (an error, an implied null) on the line
    /// after the last; the end of the last line is where the unfinished value is.
    fn within(text: &str, line: usize, column: usize) -> (usize, usize) {
        let last = last_line(text);
        if line <= last {
            return (line, column);
        }
        let end = text.rsplit(['\n', '\r']).next().unwrap_or("");
        (last, end.chars().count() + 1)
    }

    impl Builder {
        fn on_event(&mut self, event: Event<'_>, span: Span) {
            let line = span.start.line().min(self.last_line);
            match event {
                Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents == 2 {
                        self.error(
                            line,
                            "a manifest is one YAML document; found a second `---`",
                        );
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let value = scalar(text, style, tag.as_ref());
                    match value {
                        Some(value) => self.push(Node::new(line, value), anchor),
                        None => {
                            self.error(line, "value does not match its `!!` tag");
                            self.push(Node::new(line, Value::Null), anchor);
                        }
                    }
                }
                Event::SequenceStart(anchor, _tag) => self.stack.push(Frame::Sequence {
                    line,
                    anchor,
                    items: Vec::new(),
                }),
                Event::MappingStart(anchor, _tag) => self.stack.push(Frame::Mapping {
                    line,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                }),
                Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                    Some(Frame::Sequence {
                        line,
                        anchor,
                        items,
                    }) => self.push(Node::new(line, Value::Array(items)), anchor),
                    Some(Frame::Mapping {
                        line,
                        anchor,
                        entries,
                        ..
                    }) => self.push(Node::new(line, Value::Table(entries)), anchor),
                    None => self.error(line, "unbalanced collection end"),
                },
                Event::Alias(id) => {
                    let Some(target) = self.anchors.get(&id) else {
                        self.error(line, "alias to an unknown anchor");
                        return;
                    };
                    let size = count(target);
                    if size > self.alias_budget {
                        self.error(line, "aliases expand to too many values");
                        self.alias_budget = 0;
                        return;
                    }
                    self.alias_budget -= size;
                    let mut node = target.clone();
                    node.line = line;
                    self.push(node, 0);
                }
            }
        }

        fn error(&mut self, line: usize, message: &str) {
            self.errors.push(SyntaxError {
                line: Some(line),
                message: message.to_string(),
            });
        }

        /// Attach a finished node to the collection being built (or make it the root).
        fn push(&mut self, node: Node, anchor: usize) {
            if anchor != 0 {
                self.anchors.insert(anchor, node.clone());
            }
            let mut problem = None;
            match self.stack.last_mut() {
                None => {
                    if self.root.is_none() {
                        self.root = Some(node);
                    }
                }
                Some(Frame::Sequence { items, .. }) => items.push(node),
                Some(Frame::Mapping {
                    entries, key, seen, ..
                }) => match key.take() {
                    None => {
                        let text = key_text(&node);
                        if text.is_none() {
                            problem = Some((
                                node.line,
                                format!("table keys must be strings, found {}", node.kind()),
                            ));
                        }
                        // A rejected key still takes its value, keeping the mapping in step.
                        *key = Some((text, node.line));
                    }
                    Some((None, _)) => {}
                    Some((Some(text), line)) => {
                        if let Some(first) = seen.get(&text) {
                            problem = Some((
                                line,
                                format!("duplicate key `{text}` (first defined on line {first})"),
                            ));
                        } else {
                            seen.insert(text.clone(), line);
                            entries.push(Entry {
                                key: text,
                                line,
                                value: node,
                            });
                        }
                    }
                },
            }
            if let Some((line, message)) = problem {
                self.error(line, &message);
            }
        }
    }

    /// A scalar's value under the YAML 1.2 core schema: only `true`/`false` (any case
    /// style) are booleans, so `yes`, `no`, `on` and `off` stay strings, as YAML 1.2 says.
    /// A plain number with a leading zero such as `022` is kept as text: YAML 1.1 read it
    /// as octal and 1.2 as decimal, and a umask must not silently become the other one.
    fn scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Cow<'_, Tag>>) -> Option<Value> {
        if style == ScalarStyle::Plain && tag.is_none() && has_leading_zero(&text) {
            return Some(Value::String(text.into_owned()));
        }
        Some(
            match Scalar::parse_from_cow_and_metadata(text, style, tag)? {
                Scalar::Null => Value::Null,
                Scalar::Boolean(b) => Value::Bool(b),
                Scalar::Integer(i) => Value::Integer(i),
                Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
                Scalar::String(s) => Value::String(s.into_owned()),
            },
        )
    }

    fn has_leading_zero(text: &str) -> bool {
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
    }

    /// Mapping keys are names; scalars other than null read as their text.
    fn key_text(node: &Node) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Null | Value::Array(_) | Value::Table(_) => None,
        }
    }

    /// How many nodes copying `node` creates.
    fn count(node: &Node) -> usize {
        1 + match &node.value {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Table(entries) => entries.iter().map(|e| count(&e.value)).sum(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.to_string())
    }

    fn parse_ok(text: &str, format: Format) -> Node {
        parse(text, format).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    fn keys(node: &Node) -> Vec<&str> {
        node.entries()
            .unwrap_or_default()
            .iter()
            .map(|e| e.key.as_str())
            .collect()
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/tend.toml")),
            Some(Format::Toml)
        );
        assert_eq!(Format::from_path(Path::new("tend.yml")), Some(Format::Yaml));
        assert_eq!(
            Format::from_path(Path::new("tend.yaml")),
            Some(Format::Yaml)
        );
        assert_eq!(
            Format::from_path(Path::new("tend.json")),
            Some(Format::Json)
        );
        assert_eq!(Format::from_path(Path::new("tend.ini")), None);
        assert_eq!(Format::from_path(Path::new("tend")), None);
    }

    #[test]
    fn toml_keeps_file_order_and_lines() {
        let text = "[services.zeta]\ncommand = \"z\"\n\n[services.alpha]\nargs = [\n  \"a\",\n  \"b\",\n]\n";
        let root = parse_ok(text, Format::Toml);
        let services = root.get("services").unwrap();
        assert_eq!(keys(services), ["zeta", "alpha"]);
        let path = [
            key("services"),
            key("alpha"),
            key("args"),
            Segment::Index(1),
        ];
        assert_eq!(root.line_of(&path), 7);
        assert_eq!(root.line_of(&[key("services"), key("alpha")]), 4);
        assert_eq!(
            root.line_of(&[key("services"), key("zeta"), key("command")]),
            2
        );
        // A missing key resolves to its deepest existing parent.
        assert_eq!(
            root.line_of(&[key("services"), key("alpha"), key("nope")]),
            4
        );
    }

    #[test]
    fn toml_values_convert() {
        let text =
            "a = 1\nb = 0o22\nc = 1.5\nd = true\ne = 'x'\nf = 1979-05-27\ng = { h = [1, 2] }\n";
        let root = parse_ok(text, Format::Toml);
        assert_eq!(root.get("a").unwrap().value, Value::Integer(1));
        assert_eq!(root.get("b").unwrap().value, Value::Integer(0o22));
        assert_eq!(root.get("c").unwrap().value, Value::Float(1.5));
        assert_eq!(root.get("d").unwrap().value, Value::Bool(true));
        assert_eq!(root.get("e").unwrap().value, Value::String("x".into()));
        assert_eq!(
            root.get("f").unwrap().value,
            Value::String("1979-05-27".into())
        );
        assert_eq!(
            root.get("g").unwrap().to_json(),
            serde_json::json!({ "h": [1, 2] })
        );
    }

    #[test]
    fn toml_syntax_errors_have_lines_and_columns() {
        let errors = parse("a = 1\nb = \n", Format::Toml).unwrap_err();
        assert_eq!(errors[0].line, Some(2), "{errors:?}");
        assert!(errors[0].message.contains("column"), "{errors:?}");
    }

    #[test]
    fn toml_duplicate_keys_are_rejected_by_the_toml_parser() {
        let errors = parse("a = 1\nb = 2\na = 3\n", Format::Toml).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, Some(3));
        assert!(errors[0].message.contains("duplicate key"), "{errors:?}");
    }

    #[test]
    fn yaml_keeps_order_lines_and_core_schema() {
        let text = "zeta: 1\nalpha:\n  - yes\n  - on\n  - true\n  - 022\n  - 0o22\n  - ~\n  - '1'\n  - 1.5\n";
        let root = parse_ok(text, Format::Yaml);
        assert_eq!(keys(&root), ["zeta", "alpha"]);
        let Value::Array(items) = &root.get("alpha").unwrap().value else {
            panic!("not an array")
        };
        let values: Vec<&Value> = items.iter().map(|n| &n.value).collect();
        assert_eq!(
            values,
            [
                &Value::String("yes".into()),
                &Value::String("on".into()),
                &Value::Bool(true),
                &Value::String("022".into()),
                &Value::Integer(0o22),
                &Value::Null,
                &Value::String("1".into()),
                &Value::Float(1.5),
            ]
        );
        assert_eq!(items[3].line, 6);
        assert_eq!(root.line_of(&[key("alpha")]), 2);
    }

    #[test]
    fn yaml_duplicate_keys_name_both_lines_everywhere() {
        let text = "a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\na: 2\n";
        let errors = parse(text, Format::Yaml).unwrap_err();
        assert_eq!(
            errors,
            [
                SyntaxError {
                    line: Some(5),
                    message: "duplicate key `x` (first defined on line 3)".into()
                },
                SyntaxError {
                    line: Some(6),
                    message: "duplicate key `a` (first defined on line 1)".into()
                },
            ]
        );
    }

    #[test]
    fn json_reads_through_the_yaml_parser_with_lines() {
        let text =
            "{\n  \"services\": {\n    \"web\": {\"args\": [\"a\", 1, true, null, 2.5]}\n  }\n}\n";
        let root = parse_ok(text, Format::Json);
        assert_eq!(
            root.to_json(),
            serde_json::json!({"services": {"web": {"args": ["a", 1, true, null, 2.5]}}})
        );
        assert_eq!(root.line_of(&[key("services"), key("web")]), 3);

        let tabs = "{\n\t\"a\":\t1,\n\t\"b\":\t\"x\\ty\"\n}";
        assert_eq!(
            parse_ok(tabs, Format::Json).to_json(),
            serde_json::json!({"a": 1, "b": "x\ty"})
        );

        let dup = "{\n\"a\": 1,\n\"a\": 2\n}";
        let errors = parse(dup, Format::Json).unwrap_err();
        assert_eq!(errors[0].line, Some(3));
        assert!(errors[0].message.contains("first defined on line 2"));

        let broken = "{\n  \"a\": [1, 2\n}\n";
        let errors = parse(broken, Format::Json).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].line.is_some());
    }

    #[test]
    fn yaml_syntax_errors_and_odd_documents() {
        let errors = parse("a: [1, 2\nb: 3\n", Format::Yaml).unwrap_err();
        assert!(errors[0].line.is_some(), "{errors:?}");
        let errors = parse("a: 1\n---\nb: 2\n", Format::Yaml).unwrap_err();
        assert!(
            errors[0].message.contains("one YAML document"),
            "{errors:?}"
        );
        let errors = parse("? [1, 2]\n: x\n", Format::Yaml).unwrap_err();
        assert!(
            errors[0].message.contains("keys must be strings"),
            "{errors:?}"
        );
        // Empty files are empty tables, not errors.
        assert_eq!(parse_ok("", Format::Yaml).value, Value::Table(Vec::new()));
        assert_eq!(
            parse_ok("# only a comment\n", Format::Yaml).value,
            Value::Table(Vec::new())
        );
        assert_eq!(parse_ok("", Format::Toml).value, Value::Table(Vec::new()));
        let bom = parse_ok("\u{feff}a = 1\n", Format::Toml);
        assert_eq!(bom.to_json(), serde_json::json!({"a": 1}));
    }

    /// Found by fuzz/run (manifest_json, manifest_yaml, process_compose): an error at the
    /// end of a text without a final newline named the line after the last.
    #[test]
    fn an_error_at_the_end_names_the_last_line() {
        let text = "{\n  \"services\": {\n    \"web\": [\n   ";
        let errors = parse(text, Format::Json).unwrap_err();
        assert_eq!(errors[0].line, Some(4), "{errors:?}");
        assert!(errors[0].message.ends_with("(column 4)"), "{errors:?}");
        let errors = parse("a:\n  b: c\n  working_di\u{1}", Format::Yaml).unwrap_err();
        assert_eq!(errors[0].line, Some(3), "{errors:?}");
        // With a final newline the end is on the line after it, which is reported as is.
        let errors = parse("a: [1, 2\n", Format::Yaml).unwrap_err();
        assert!(errors[0].line.is_some_and(|l| l <= 2), "{errors:?}");
        // So are the values saphyr implies there (a null document, a null key).
        assert_eq!(parse_ok("---", Format::Json).line, 1);
        let errors = parse("? ", Format::Yaml).unwrap_err();
        assert_eq!(errors[0].line, Some(1), "{errors:?}");
    }

    #[test]
    fn yaml_anchors_and_aliases_copy_values_within_a_budget() {
        let root = parse_ok("base: &b {x: 1}\ncopy: *b\n", Format::Yaml);
        assert_eq!(
            root.get("copy").unwrap().to_json(),
            serde_json::json!({"x": 1})
        );
        assert_eq!(root.get("copy").unwrap().line, 2);

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (name, prev) in ["b", "c", "d", "e", "f", "g"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f"])
        {
            bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        let errors = parse(&bomb, Format::Yaml).unwrap_err();
        assert!(errors[0].message.contains("too many"), "{errors:?}");
    }

    #[test]
    fn deep_yaml_is_refused_not_a_stack_overflow() {
        let deep = format!("{}x\n", "- ".repeat(100_000));
        let errors = parse(&deep, Format::Yaml).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains("nested more than 64"),
            "{errors:?}"
        );
        let flow = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&flow, Format::Json).is_err());
        let toml = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&toml, Format::Toml).is_err());
    }

    #[test]
    fn remove_deletes_one_entry() {
        let mut root = parse_ok("a = 1\n[b]\nc = 2\nd = 3\n", Format::Toml);
        assert!(root.remove(&[key("b"), key("c")]));
        assert!(!root.remove(&[key("b"), key("c")]));
        assert!(!root.remove(&[]));
        assert_eq!(root.to_json(), serde_json::json!({"a": 1, "b": {"d": 3}}));
    }

    #[test]
    fn dotted_paths_render_keys_and_indices() {
        let path = [key("services"), key("web"), key("args"), Segment::Index(2)];
        assert_eq!(Dotted(&path).to_string(), "services.web.args[2]");
        assert_eq!(Dotted(&[]).to_string(), "");
    }

    #[test]
    fn line_index_maps_offsets() {
        let index = LineIndex::new("ab\ncdé\n\nx");
        assert_eq!(index.line(0), 1);
        assert_eq!(index.line(2), 1);
        assert_eq!(index.line(3), 2);
        assert_eq!(index.column(7), 4);
        assert_eq!(index.line(9), 4);
        assert_eq!(index.line(100), 4);
    }
}
