//! A reader for the data in PM2 ecosystem files: JSON, JSON5 and the object literal of a
//! `module.exports = {…}` JavaScript module, with the line of every value and key.
//!
//! PM2 itself evaluates all of these as JavaScript (a `.json` file is run as `(TEXT)`), so
//! one reader for JavaScript literals covers them all: JSON and JSON5 are subsets of them.
//! What is not a literal (a call, a variable, a spread, a template with `${}`) is not
//! evaluated: it becomes a [`JsValue::Code`] in the tree, with a description of what it is,
//! so the importer can report exactly that key and go on with the rest. The one exception is
//! reading the environment (`process.env.X`, optionally `|| "default"`, also inside a
//! template), which tend can express itself (`${X:-default}`).

use std::fmt;

/// A value and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Js {
    pub line: usize,
    pub value: JsValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JsValue {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Js>),
    /// Members in file order; a key written twice appears twice (JavaScript keeps the last).
    Object(Vec<Member>),
    /// A string PM2 builds from its environment when it loads the file.
    EnvString(Vec<Part>),
    /// JavaScript that would have to run to give a value.
    Code(Code),
}

/// A piece of an [`JsValue::EnvString`].
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    /// `process.env.VAR`, with the literal after `||` or `??` when there is one.
    Env {
        var: String,
        default: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Member {
    Prop(Prop),
    /// A member whose key is itself code: a spread `...x` or a computed key `[k]: v`.
    Code(Code),
}

/// `key: value`; `line` is where the key is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    pub key: String,
    pub line: usize,
    pub value: Js,
}

/// Code found where a literal was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub line: usize,
    /// What it is, for messages: `path.join(...)`, `a spread (...common)`.
    pub what: String,
}

/// The file cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What a module file exports, and remarks about the code around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub value: Js,
    /// (line, message): things that may make the literal differ from what Node would export.
    pub notes: Vec<(usize, String)>,
}

impl Js {
    pub fn kind(&self) -> &'static str {
        match self.value {
            JsValue::Undefined => "undefined",
            JsValue::Null => "null",
            JsValue::Bool(_) => "a boolean",
            JsValue::Number(_) => "a number",
            JsValue::String(_) => "a string",
            JsValue::Array(_) => "an array",
            JsValue::Object(_) => "an object",
            JsValue::EnvString(_) => "a string from the environment",
            JsValue::Code(_) => "code",
        }
    }

    /// The value as `JSON.stringify` would give it (None where it drops the value:
    /// `undefined`), for comparing with Node. None also for code and environment reads,
    /// which only Node can evaluate.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match &self.value {
            JsValue::Undefined => return None,
            JsValue::Null => J::Null,
            JsValue::Bool(b) => J::Bool(*b),
            JsValue::Number(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
            JsValue::String(s) => J::String(s.clone()),
            JsValue::Array(items) => J::Array(
                items
                    .iter()
                    .map(|item| match &item.value {
                        JsValue::Undefined => Some(J::Null),
                        _ => item.to_json(),
                    })
                    .collect::<Option<_>>()?,
            ),
            JsValue::Object(members) => {
                let mut map = serde_json::Map::new();
                for member in members {
                    let Member::Prop(prop) = member else {
                        return None;
                    };
                    if let JsValue::Undefined = prop.value.value {
                        map.remove(&prop.key);
                        continue;
                    }
                    map.insert(prop.key.clone(), prop.value.to_json()?);
                }
                J::Object(map)
            }
            JsValue::EnvString(_) | JsValue::Code(_) => return None,
        })
    }
}

/// Read `text` as one JavaScript value (a `.json` or `.json5` file: PM2 evaluates `(TEXT)`).
pub fn read_expression(text: &str) -> Result<Js, SyntaxError> {
    let lines = LineIndex::new(text);
    let tokens = Lexer::new(text).run().map_err(|e| e.at(&lines))?;
    let mut parser = Parser::new(&tokens, text, &lines);
    if tokens.is_empty() {
        return Err(SyntaxError {
            line: 1,
            message: "the file is empty".into(),
        });
    }
    let value = parser.value(false).map_err(|e| e.at(&lines))?;
    if let Some(extra) = parser.peek_token() {
        return Err(SyntaxError {
            line: lines.line(extra.start),
            message: format!(
                "unexpected {} after the value that ends on line {}",
                extra.tok,
                lines.line(tokens[parser.i - 1].end.saturating_sub(1))
            ),
        });
    }
    Ok(value)
}

/// Read the value a CommonJS or ES module exports: `module.exports = VALUE` or
/// `export default VALUE` at the top level. Statements before it are skipped (they only
/// matter when the value refers to them, and such a reference is code in the tree).
pub fn read_module(text: &str) -> Result<Module, SyntaxError> {
    let lines = LineIndex::new(text);
    let tokens = Lexer::new(text).run().map_err(|e| e.at(&lines))?;
    let mut notes = Vec::new();

    // Every top-level export, and any nested one (to say why it cannot be read).
    let mut exports = Vec::new();
    let mut nested = None;
    let mut depth = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        match &token.tok {
            Tok::Punct(p) if matches!(*p, "(" | "[" | "{") => depth += 1,
            Tok::Punct(p) if matches!(*p, ")" | "]" | "}") => depth = depth.saturating_sub(1),
            _ => {}
        }
        let after = if is_ident(&token.tok, "module")
            && matches!(tokens.get(i + 1), Some(t) if t.tok == Tok::Punct("."))
            && matches!(tokens.get(i + 2), Some(t) if is_ident(&t.tok, "exports"))
            && matches!(tokens.get(i + 3), Some(t) if t.tok == Tok::Punct("="))
            && !matches!(tokens.get(i.wrapping_sub(1)), Some(t) if t.tok == Tok::Punct("."))
        {
            Some(i + 4)
        } else if is_ident(&token.tok, "export")
            && matches!(tokens.get(i + 1), Some(t) if is_ident(&t.tok, "default"))
        {
            Some(i + 2)
        } else {
            None
        };
        match after {
            Some(at) if depth == 0 => exports.push(at),
            Some(_) => nested = nested.or(Some(lines.line(token.start))),
            None => {}
        }
    }
    let Some(&start) = exports.last() else {
        return Err(SyntaxError {
            line: nested.unwrap_or(1),
            message: match nested {
                Some(_) => "`module.exports` is assigned inside a function or block; tend reads only a top-level `module.exports = { … }`".into(),
                None => "no `module.exports = { … }` (or `export default { … }`) found".into(),
            },
        });
    };
    if exports.len() > 1 {
        let first = lines.line(tokens[exports[0] - 1].start);
        notes.push((
            lines.line(tokens[start - 1].start),
            format!("`module.exports` is assigned more than once (first on line {first}); the last assignment is read, as Node would"),
        ));
    }

    let mut parser = Parser::new(&tokens, text, &lines);
    parser.i = start;
    if parser.peek_token().is_none() {
        return Err(SyntaxError {
            line: lines.line(tokens[start - 1].start),
            message: "nothing is assigned to `module.exports`".into(),
        });
    }
    let value = parser.value(true).map_err(|e| e.at(&lines))?;
    // Whatever follows the export, apart from `;`, may change the exported object.
    while parser.peek() == Some(&Tok::Punct(";")) {
        parser.i += 1;
    }
    if let Some(token) = parser.peek_token() {
        notes.push((
            lines.line(token.start),
            "code after the exported object may change it; tend reads only the object literal"
                .into(),
        ));
    }
    Ok(Module { value, notes })
}

fn is_ident(tok: &Tok, name: &str) -> bool {
    matches!(tok, Tok::Ident(s) if s == name)
}

// ---------------------------------------------------------------------------------------
// Lines

struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        // JavaScript's line terminators: \n, \r (alone or before \n), U+2028, U+2029.
        let mut starts = vec![0];
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\r' if matches!(chars.peek(), Some((_, '\n'))) => {}
                '\n' | '\r' | '\u{2028}' | '\u{2029}' => starts.push(i + c.len_utf8()),
                _ => {}
            }
        }
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(&'static str),
    /// Identifiers and keywords, escapes resolved.
    Ident(String),
    Str(String),
    Num(f64),
    BigInt,
    Template(Vec<TemplatePart>),
    Regex,
}

#[derive(Debug, Clone, PartialEq)]
enum TemplatePart {
    Text(String),
    /// The tokens of one `${…}` substitution.
    Expr(Vec<Token>),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Punct(p) => write!(f, "`{p}`"),
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Str(s) => write!(f, "the string {s:?}"),
            Tok::Num(n) => write!(f, "the number {}", js_number(*n)),
            Tok::BigInt => f.write_str("a BigInt"),
            Tok::Template(_) => f.write_str("a template literal"),
            Tok::Regex => f.write_str("a regular expression"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
    /// A line terminator separates this token from the one before (for semicolon insertion).
    newline_before: bool,
}

/// A lexing or parsing error at a byte offset.
#[derive(Debug)]
struct PosError {
    pos: usize,
    message: String,
}

impl PosError {
    fn at(self, lines: &LineIndex) -> SyntaxError {
        SyntaxError {
            line: lines.line(self.pos),
            message: self.message,
        }
    }
}

/// Punctuators, longest first so that `===` is not read as `==` and `=`.
const PUNCTUATORS: &[&str] = &[
    ">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=", "=>", "==", "!=",
    "<=", ">=", "&&", "||", "??", "?.", "**", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=",
    "^=", "<<", ">>", "{", "}", "[", "]", "(", ")", ".", ";", ",", ":", "?", "~", "!", "<", ">",
    "=", "+", "-", "*", "/", "%", "&", "|", "^", "@", "#",
];

/// Keywords after which a `/` starts a regular expression rather than a division.
const REGEX_AFTER: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_id_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_alphabetic()
}

fn is_id_continue(c: char) -> bool {
    is_id_start(c) || c.is_alphanumeric() || c == '\u{200c}' || c == '\u{200d}'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        let mut pos = 0;
        if src.starts_with('\u{feff}') {
            pos = '\u{feff}'.len_utf8();
        }
        // Node drops a `#!` line at the top of a module.
        if src[pos..].starts_with("#!") {
            pos = src[pos..]
                .find(is_line_terminator)
                .map_or(src.len(), |n| pos + n);
        }
        Lexer { src, pos }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, PosError> {
        Err(PosError {
            pos,
            message: message.into(),
        })
    }

    fn run(mut self) -> Result<Vec<Token>, PosError> {
        let mut tokens: Vec<Token> = Vec::new();
        while let Some(token) = self.next_token(tokens.last())? {
            tokens.push(token);
        }
        Ok(tokens)
    }

    /// Skip blanks and comments; true when a line terminator was crossed.
    fn skip_trivia(&mut self) -> Result<bool, PosError> {
        let mut newline = false;
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                return Ok(newline);
            };
            if is_line_terminator(c) {
                newline = true;
                self.pos += c.len_utf8();
            } else if c.is_whitespace() || c == '\u{feff}' {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find(is_line_terminator).unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                let start = self.pos;
                let Some(end) = body.find("*/") else {
                    return self.error(start, "unclosed `/*` comment");
                };
                newline |= body[..end].contains(is_line_terminator);
                self.pos += end + 4;
            } else {
                return Ok(newline);
            }
        }
    }

    fn next_token(&mut self, prev: Option<&Token>) -> Result<Option<Token>, PosError> {
        let newline_before = self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(None);
        };
        let tok = if c == '"' || c == '\'' {
            self.bump();
            Tok::Str(self.string(c, start)?)
        } else if c == '`' {
            self.bump();
            self.template(start)?
        } else if c.is_ascii_digit()
            || (c == '.' && self.rest()[1..].starts_with(|d: char| d.is_ascii_digit()))
        {
            self.number(start)?
        } else if is_id_start(c) || c == '\\' {
            Tok::Ident(self.identifier(start)?)
        } else if c == '/' && regex_allowed(prev) {
            self.regex(start)?;
            Tok::Regex
        } else if let Some(p) = PUNCTUATORS.iter().find(|p| self.rest().starts_with(**p)) {
            self.pos += p.len();
            Tok::Punct(p)
        } else {
            return self.error(start, format!("unexpected character {c:?}"));
        };
        Ok(Some(Token {
            tok,
            start,
            end: self.pos,
            newline_before,
        }))
    }

    fn identifier(&mut self, start: usize) -> Result<String, PosError> {
        let mut name = String::new();
        while let Some(c) = self.peek_char() {
            if c == '\\' {
                self.bump();
                if self.bump() != Some('u') {
                    return self.error(start, "invalid escape in an identifier");
                }
                let escaped = self.unicode_escape(start)?;
                match char::from_u32(escaped) {
                    Some(ch) if is_id_continue(ch) => name.push(ch),
                    _ => return self.error(start, "invalid escape in an identifier"),
                }
            } else if is_id_continue(c) {
                name.push(c);
                self.bump();
            } else {
                break;
            }
        }
        Ok(name)
    }

    /// After `\u`: `XXXX` or `{X…}`; the code unit or point.
    fn unicode_escape(&mut self, start: usize) -> Result<u32, PosError> {
        let (digits, braced) = if self.rest().starts_with('{') {
            let Some(close) = self.rest().find('}') else {
                return self.error(start, "unclosed `\\u{` escape");
            };
            (&self.rest()[1..close], true)
        } else {
            (self.rest().get(..4).unwrap_or(""), false)
        };
        let valid = !digits.is_empty()
            && (braced || digits.len() == 4)
            && digits.chars().all(|d| d.is_ascii_hexdigit());
        let value = u32::from_str_radix(digits, 16).ok().filter(|_| valid);
        match value {
            Some(v) if v <= 0x10ffff => {
                self.pos += digits.len() + if braced { 2 } else { 0 };
                Ok(v)
            }
            _ => self.error(start, "invalid `\\u` escape"),
        }
    }

    /// The escape after a backslash, appended to `out` as UTF-16 (so that surrogate pairs
    /// written as two `\u` escapes join up). `template`: legacy octal escapes are errors.
    fn escape(&mut self, out: &mut Vec<u16>, start: usize, template: bool) -> Result<(), PosError> {
        let Some(c) = self.bump() else {
            return self.error(start, "unterminated string");
        };
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch as u16);
            return Ok(());
        }
        match c {
            // A line continuation: backslash and line terminator vanish.
            '\r' => {
                if self.peek_char() == Some('\n') {
                    self.bump();
                }
            }
            '\n' | '\u{2028}' | '\u{2029}' => {}
            '0' if !self.peek_char().is_some_and(|d| d.is_ascii_digit()) => out.push(0),
            '0'..='7' => {
                if template {
                    return self.error(start, "octal escapes are not allowed in template literals");
                }
                // Legacy octal: up to three digits, at most \377.
                let mut value = c.to_digit(8).unwrap_or(0);
                let max_digits = if c <= '3' { 2 } else { 1 };
                for _ in 0..max_digits {
                    match self.peek_char().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                out.push(value as u16);
            }
            '8' | '9' if template => {
                return self.error(
                    start,
                    "`\\8` and `\\9` are not allowed in template literals",
                );
            }
            'x' => {
                let digits = self.rest().get(..2).unwrap_or("");
                match u8::from_str_radix(digits, 16) {
                    Ok(v) if digits.chars().all(|d| d.is_ascii_hexdigit()) => {
                        self.pos += 2;
                        out.push(u16::from(v));
                    }
                    _ => return self.error(start, "invalid `\\x` escape"),
                }
            }
            'u' => {
                let v = self.unicode_escape(start)?;
                match char::from_u32(v) {
                    Some(ch) => {
                        let mut buf = [0u16; 2];
                        out.extend_from_slice(ch.encode_utf16(&mut buf));
                    }
                    // A lone surrogate half (`\uD83D`): kept as a code unit.
                    None => out.push(v as u16),
                }
            }
            other => {
                let mut buf = [0u16; 2];
                out.extend_from_slice(other.encode_utf16(&mut buf));
            }
        }
        Ok(())
    }

    fn string(&mut self, quote: char, start: usize) -> Result<String, PosError> {
        let mut out: Vec<u16> = Vec::new();
        loop {
            match self.peek_char() {
                None => return self.error(start, "unterminated string"),
                Some('\n' | '\r') => {
                    return self.error(
                        start,
                        "unterminated string (a line break inside quotes needs `\\n`)",
                    );
                }
                Some('\\') => {
                    self.bump();
                    self.escape(&mut out, start, false)?;
                }
                Some(c) if c == quote => {
                    self.bump();
                    return Ok(String::from_utf16_lossy(&out));
                }
                Some(c) => {
                    self.bump();
                    let mut buf = [0u16; 2];
                    out.extend_from_slice(c.encode_utf16(&mut buf));
                }
            }
        }
    }

    fn template(&mut self, start: usize) -> Result<Tok, PosError> {
        let mut parts = Vec::new();
        let mut text: Vec<u16> = Vec::new();
        loop {
            match self.peek_char() {
                None => return self.error(start, "unterminated template literal"),
                Some('`') => {
                    self.bump();
                    break;
                }
                Some('\\') => {
                    self.bump();
                    self.escape(&mut text, start, true)?;
                }
                Some('$') if self.rest().starts_with("${") => {
                    self.pos += 2;
                    parts.push(TemplatePart::Text(String::from_utf16_lossy(&text)));
                    text.clear();
                    parts.push(TemplatePart::Expr(self.substitution(start)?));
                }
                Some('\r') => {
                    // Template text normalises \r\n and \r to \n.
                    self.bump();
                    if self.peek_char() == Some('\n') {
                        self.bump();
                    }
                    text.push(u16::from(b'\n'));
                }
                Some(c) => {
                    self.bump();
                    let mut buf = [0u16; 2];
                    text.extend_from_slice(c.encode_utf16(&mut buf));
                }
            }
        }
        parts.push(TemplatePart::Text(String::from_utf16_lossy(&text)));
        Ok(Tok::Template(parts))
    }

    /// The tokens of a `${…}` up to its closing brace, which is consumed.
    fn substitution(&mut self, start: usize) -> Result<Vec<Token>, PosError> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut depth = 0usize;
        loop {
            let Some(token) = self.next_token(tokens.last())? else {
                return self.error(start, "unterminated `${` in a template literal");
            };
            match token.tok {
                Tok::Punct("{") => depth += 1,
                Tok::Punct("}") if depth == 0 => return Ok(tokens),
                Tok::Punct("}") => depth -= 1,
                _ => {}
            }
            tokens.push(token);
        }
    }

    fn regex(&mut self, start: usize) -> Result<(), PosError> {
        self.bump();
        let mut in_class = false;
        loop {
            match self.bump() {
                None => return self.error(start, "unterminated regular expression"),
                Some(c) if is_line_terminator(c) => {
                    return self.error(start, "unterminated regular expression");
                }
                Some('\\') => {
                    self.bump();
                }
                Some('[') => in_class = true,
                Some(']') => in_class = false,
                Some('/') if !in_class => break,
                Some(_) => {}
            }
        }
        while self.peek_char().is_some_and(is_id_continue) {
            self.bump();
        }
        Ok(())
    }

    fn number(&mut self, start: usize) -> Result<Tok, PosError> {
        let rest = self.rest();
        let radix = match rest.get(..2).map(str::to_ascii_lowercase).as_deref() {
            Some("0x") => 16,
            Some("0o") => 8,
            Some("0b") => 2,
            _ => 10,
        };
        let value = if radix != 10 {
            self.pos += 2;
            let digits = self.take_while(|c| c.is_digit(radix) || c == '_');
            if digits.is_empty() {
                return self.error(start, "a number prefix without digits");
            }
            let mut value = 0f64;
            for d in digits.chars().filter_map(|c| c.to_digit(radix)) {
                value = value * f64::from(radix) + f64::from(d);
            }
            value
        } else if rest.len() > 1
            && rest.starts_with('0')
            && rest[1..].starts_with(|c: char| c.is_ascii_digit())
        {
            // Legacy `010` (octal, as in sloppy-mode JavaScript) or `019` (decimal).
            let digits = self.take_while(|c| c.is_ascii_digit());
            if digits.chars().all(|c| c < '8') {
                digits
                    .chars()
                    .filter_map(|c| c.to_digit(8))
                    .fold(0f64, |v, d| v * 8.0 + f64::from(d))
            } else {
                digits.parse().unwrap_or(f64::NAN)
            }
        } else {
            let mut text = self.take_while(|c| c.is_ascii_digit() || c == '_');
            if self.peek_char() == Some('.') {
                self.bump();
                text.push('.');
                text.push_str(&self.take_while(|c| c.is_ascii_digit() || c == '_'));
            }
            if matches!(self.peek_char(), Some('e' | 'E')) {
                let save = self.pos;
                self.bump();
                let mut exponent = String::from("e");
                if let Some(sign @ ('+' | '-')) = self.peek_char() {
                    self.bump();
                    exponent.push(sign);
                }
                let digits = self.take_while(|c| c.is_ascii_digit() || c == '_');
                if digits.is_empty() {
                    self.pos = save;
                    return self.error(start, "a number with an empty exponent");
                }
                text.push_str(&exponent);
                text.push_str(&digits);
            }
            let cleaned: String = text.chars().filter(|&c| c != '_').collect();
            let cleaned = if cleaned.starts_with('.') {
                format!("0{cleaned}")
            } else {
                cleaned
            };
            match cleaned.parse::<f64>() {
                Ok(v) => v,
                Err(_) => return self.error(start, format!("invalid number `{text}`")),
            }
        };
        if self.peek_char() == Some('n') {
            self.bump();
            return Ok(Tok::BigInt);
        }
        if self.peek_char().is_some_and(is_id_start) {
            return self.error(start, "an identifier starts right after a number");
        }
        Ok(Tok::Num(value))
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        rest[..len].to_string()
    }
}

fn regex_allowed(prev: Option<&Token>) -> bool {
    match prev.map(|t| &t.tok) {
        None => true,
        Some(Tok::Punct(p)) => !matches!(*p, ")" | "]" | "}"),
        Some(Tok::Ident(word)) => REGEX_AFTER.contains(&word.as_str()),
        Some(_) => false,
    }
}

// ---------------------------------------------------------------------------------------
// Values

struct Parser<'t> {
    tokens: &'t [Token],
    src: &'t str,
    lines: &'t LineIndex,
    i: usize,
}

/// Tokens that, after a complete literal, make it part of a larger expression.
fn continues_expression(token: &Token) -> bool {
    match &token.tok {
        Tok::Punct(p) => !matches!(*p, "," | "}" | "]" | ")" | ";" | ":" | "{"),
        Tok::Ident(word) => matches!(word.as_str(), "in" | "instanceof"),
        Tok::Template(_) => !token.newline_before,
        _ => false,
    }
}

impl<'t> Parser<'t> {
    fn new(tokens: &'t [Token], src: &'t str, lines: &'t LineIndex) -> Parser<'t> {
        Parser {
            tokens,
            src,
            lines,
            i: 0,
        }
    }

    fn peek_token(&self) -> Option<&'t Token> {
        self.tokens.get(self.i)
    }

    fn peek(&self) -> Option<&'t Tok> {
        self.peek_token().map(|t| &t.tok)
    }

    fn peek_at(&self, ahead: usize) -> Option<&'t Tok> {
        self.tokens.get(self.i + ahead).map(|t| &t.tok)
    }

    fn line_of(&self, index: usize) -> usize {
        let pos = self.tokens.get(index).map_or(self.src.len(), |t| t.start);
        self.lines.line(pos)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, PosError> {
        Err(PosError {
            pos: self.peek_token().map_or(self.src.len(), |t| t.start),
            message: message.into(),
        })
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "the end of the file".to_string(), |t| t.to_string())
    }

    /// One value. `top`: the exported value of a module, which a line break or `;` ends.
    fn value(&mut self, top: bool) -> Result<Js, PosError> {
        let start = self.i;
        let line = self.line_of(start);
        let literal = match self.peek() {
            None => return self.error("expected a value, found the end of the file"),
            Some(Tok::Punct("{")) => Some(self.object()?),
            Some(Tok::Punct("[")) => Some(self.array()?),
            Some(Tok::Punct("(")) => self.parenthesized(),
            Some(_) => self.scalar(),
        };
        let complete = match self.peek_token() {
            None => true,
            Some(next) => !continues_expression(next) || (top && next.newline_before),
        };
        match literal {
            Some(value) if complete => Ok(Js { line, value }),
            _ => {
                self.i = start;
                self.skip_expression(top);
                if self.i == start {
                    return self.error(format!("expected a value, found {}", self.found()));
                }
                Ok(Js {
                    line,
                    value: JsValue::Code(self.code(start)),
                })
            }
        }
    }

    /// `( value )`, which JavaScript allows around any literal. Anything else in
    /// parentheses (an arrow function's parameters, a comma expression) is code.
    fn parenthesized(&mut self) -> Option<JsValue> {
        let start = self.i;
        self.i += 1;
        let inner = self.value(false).ok()?;
        if matches!(inner.value, JsValue::Code(_)) || self.peek() != Some(&Tok::Punct(")")) {
            self.i = start;
            return None;
        }
        self.i += 1;
        Some(inner.value)
    }

    /// A string, number, keyword literal or environment read; None for anything else.
    fn scalar(&mut self) -> Option<JsValue> {
        let value = match self.peek()? {
            Tok::Str(s) => JsValue::String(s.clone()),
            Tok::Num(n) => JsValue::Number(*n),
            Tok::Template(parts) => return self.template(parts),
            Tok::Punct(sign @ ("+" | "-")) => {
                let magnitude = match self.peek_at(1)? {
                    Tok::Num(n) => *n,
                    Tok::Ident(w) if w == "Infinity" => f64::INFINITY,
                    Tok::Ident(w) if w == "NaN" => f64::NAN,
                    _ => return None,
                };
                self.i += 1;
                JsValue::Number(if *sign == "-" { -magnitude } else { magnitude })
            }
            Tok::Ident(word) => match word.as_str() {
                "true" => JsValue::Bool(true),
                "false" => JsValue::Bool(false),
                "null" => JsValue::Null,
                "undefined" => JsValue::Undefined,
                "NaN" => JsValue::Number(f64::NAN),
                "Infinity" => JsValue::Number(f64::INFINITY),
                "process" => {
                    let (var, default) = self.env_read()?;
                    return Some(JsValue::EnvString(vec![Part::Env { var, default }]));
                }
                _ => return None,
            },
            _ => return None,
        };
        self.i += 1;
        Some(value)
    }

    fn template(&mut self, parts: &[TemplatePart]) -> Option<JsValue> {
        let mut out = Vec::new();
        for part in parts {
            match part {
                TemplatePart::Text(text) if text.is_empty() => {}
                TemplatePart::Text(text) => out.push(Part::Text(text.clone())),
                TemplatePart::Expr(tokens) => {
                    let mut inner = Parser::new(tokens, self.src, self.lines);
                    let (var, default) = inner.env_read()?;
                    if inner.i != tokens.len() {
                        return None;
                    }
                    out.push(Part::Env { var, default });
                }
            }
        }
        self.i += 1;
        Some(match out.as_slice() {
            [] => JsValue::String(String::new()),
            [Part::Text(text)] => JsValue::String(text.clone()),
            _ => JsValue::EnvString(out),
        })
    }

    /// `process.env.X` or `process.env["X"]`, then optionally `|| literal` or `?? literal`.
    /// Leaves the position after it on success; unchanged on failure.
    fn env_read(&mut self) -> Option<(String, Option<String>)> {
        let start = self.i;
        let result = self.env_read_inner();
        if result.is_none() {
            self.i = start;
        }
        result
    }

    fn env_read_inner(&mut self) -> Option<(String, Option<String>)> {
        let word = |tok: Option<&Tok>, w: &str| matches!(tok, Some(Tok::Ident(s)) if s == w);
        if !word(self.peek(), "process")
            || self.peek_at(1) != Some(&Tok::Punct("."))
            || !word(self.peek_at(2), "env")
        {
            return None;
        }
        self.i += 3;
        let var = match (self.peek()?, self.peek_at(1), self.peek_at(2)) {
            (Tok::Punct("."), Some(Tok::Ident(name)), _) => {
                self.i += 2;
                name.clone()
            }
            (Tok::Punct("["), Some(Tok::Str(name)), Some(Tok::Punct("]"))) => {
                self.i += 3;
                name.clone()
            }
            _ => return None,
        };
        if !matches!(self.peek(), Some(Tok::Punct("||" | "??"))) {
            return Some((var, None));
        }
        self.i += 1;
        let default = match self.peek()? {
            Tok::Str(s) => s.clone(),
            Tok::Num(n) => js_number(*n),
            Tok::Template(parts) => match parts.as_slice() {
                [TemplatePart::Text(text)] => text.clone(),
                _ => return None,
            },
            Tok::Ident(w) if w == "true" || w == "false" => w.clone(),
            // `|| null`: unset either way; tend's `${X:-}` gives "".
            Tok::Ident(w) if w == "null" || w == "undefined" => String::new(),
            _ => return None,
        };
        self.i += 1;
        Some((var, Some(default)))
    }

    fn object(&mut self) -> Result<JsValue, PosError> {
        let open = self.line_of(self.i);
        self.i += 1;
        let mut members = Vec::new();
        loop {
            match self.peek() {
                None => return self.error(format!("unclosed `{{` (opened on line {open})")),
                Some(Tok::Punct("}")) => {
                    self.i += 1;
                    return Ok(JsValue::Object(members));
                }
                Some(_) => {}
            }
            members.push(self.member()?);
            match self.peek() {
                Some(Tok::Punct(",")) => self.i += 1,
                Some(Tok::Punct("}")) => {}
                None => return self.error(format!("unclosed `{{` (opened on line {open})")),
                Some(_) => {
                    let after = match members.last() {
                        Some(Member::Prop(p)) => format!("the value of `{}`", p.key),
                        _ => "a member".to_string(),
                    };
                    return self.error(format!(
                        "expected `,` or `}}` after {after}, found {}",
                        self.found()
                    ));
                }
            }
        }
    }

    fn member(&mut self) -> Result<Member, PosError> {
        let start = self.i;
        let line = self.line_of(start);
        let key = match self.peek() {
            Some(Tok::Punct("..." | "[")) => {
                self.skip_expression(false);
                return Ok(Member::Code(self.code(start)));
            }
            Some(Tok::Ident(s) | Tok::Str(s)) => s.clone(),
            Some(Tok::Num(n)) => js_number(*n),
            _ => return self.error(format!("expected a key, found {}", self.found())),
        };
        self.i += 1;
        match self.peek() {
            Some(Tok::Punct(":")) => {
                self.i += 1;
                let value = self.value(false)?;
                Ok(Member::Prop(Prop { key, line, value }))
            }
            // `{ name }`: shorthand for `{ name: name }`, a variable.
            Some(Tok::Punct("," | "}")) => Ok(Member::Prop(Prop {
                key: key.clone(),
                line,
                value: Js {
                    line,
                    value: JsValue::Code(Code {
                        line,
                        what: format!("`{key}`, a variable (shorthand for `{key}: {key}`)"),
                    }),
                },
            })),
            // A method `key() {}`, or `get key() {}` / `async key() {}`.
            Some(_) => {
                self.skip_expression(false);
                let code = self.code(start);
                Ok(Member::Prop(Prop {
                    key,
                    line,
                    value: Js {
                        line,
                        value: JsValue::Code(Code {
                            line,
                            what: format!("a method ({})", code.what),
                        }),
                    },
                }))
            }
            None => self.error("unexpected end of the file after a key"),
        }
    }

    fn array(&mut self) -> Result<JsValue, PosError> {
        let open = self.line_of(self.i);
        self.i += 1;
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None => return self.error(format!("unclosed `[` (opened on line {open})")),
                Some(Tok::Punct("]")) => {
                    self.i += 1;
                    return Ok(JsValue::Array(items));
                }
                // A hole, `[a, , b]`: an empty slot (null in JSON).
                Some(Tok::Punct(",")) => {
                    items.push(Js {
                        line: self.line_of(self.i),
                        value: JsValue::Undefined,
                    });
                    self.i += 1;
                    continue;
                }
                Some(Tok::Punct("...")) => {
                    let start = self.i;
                    self.skip_expression(false);
                    items.push(Js {
                        line: self.line_of(start),
                        value: JsValue::Code(self.code(start)),
                    });
                }
                Some(_) => items.push(self.value(false)?),
            }
            match self.peek() {
                Some(Tok::Punct(",")) => self.i += 1,
                Some(Tok::Punct("]")) => {}
                None => return self.error(format!("unclosed `[` (opened on line {open})")),
                Some(_) => {
                    return self.error(format!(
                        "expected `,` or `]` in the array opened on line {open}, found {}",
                        self.found()
                    ));
                }
            }
        }
    }

    /// Move past one expression: to the next `,`, or closing bracket, outside brackets.
    /// `top`: also stop at `;` and at a line break before a new statement.
    fn skip_expression(&mut self, top: bool) {
        let start = self.i;
        let mut depth = 0usize;
        while let Some(token) = self.peek_token() {
            if depth == 0 {
                match &token.tok {
                    Tok::Punct("," | "}" | "]" | ")") => return,
                    Tok::Punct(";") if top => return,
                    Tok::Ident(_) if top && token.newline_before && self.i > start => {
                        let previous = &self.tokens[self.i - 1].tok;
                        if !matches!(previous, Tok::Punct(p) if !matches!(*p, ")" | "]" | "}")) {
                            return;
                        }
                    }
                    _ => {}
                }
            }
            match &token.tok {
                Tok::Punct("(" | "[" | "{") => depth += 1,
                Tok::Punct(")" | "]" | "}") => depth -= 1,
                _ => {}
            }
            self.i += 1;
        }
    }

    /// The code between token `start` and the current position, described.
    fn code(&self, start: usize) -> Code {
        let tokens = &self.tokens[start..self.i];
        Code {
            line: self.line_of(start),
            what: describe(tokens, self.snippet(tokens)),
        }
    }

    /// The source of `tokens`, on one line, shortened.
    fn snippet(&self, tokens: &[Token]) -> String {
        let (Some(first), Some(last)) = (tokens.first(), tokens.last()) else {
            return String::new();
        };
        shorten(&self.src[first.start..last.end])
    }
}

/// Source text on one line, at most about 60 characters.
fn shorten(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        let cut: String = one_line.chars().take(57).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// Say what a piece of code is, naming the construct that makes it code.
fn describe(tokens: &[Token], snippet: String) -> String {
    let ident = |i: usize, w: &str| tokens.get(i).is_some_and(|t| is_ident(&t.tok, w));
    let punct = |i: usize, p: &str| {
        tokens
            .get(i)
            .is_some_and(|t| matches!(t.tok, Tok::Punct(q) if q == p))
    };
    if punct(0, "...") {
        return format!("a spread ({snippet})");
    }
    if punct(0, "[") {
        return format!("a computed key ({snippet})");
    }
    if tokens
        .iter()
        .any(|t| is_ident(&t.tok, "function") || t.tok == Tok::Punct("=>"))
    {
        return format!("a function ({snippet})");
    }
    if ident(0, "new") {
        return format!("a constructor call ({snippet})");
    }
    // A depth-0 `?` makes the whole thing a conditional.
    let mut depth = 0i32;
    for token in tokens {
        match token.tok {
            Tok::Punct("(" | "[" | "{") => depth += 1,
            Tok::Punct(")" | "]" | "}") => depth -= 1,
            Tok::Punct("?") if depth == 0 => return format!("a conditional ({snippet})"),
            _ => {}
        }
    }
    // A dotted name, then what follows it.
    let mut i = 0;
    let mut name = String::new();
    while let Some(Tok::Ident(word)) = tokens.get(i).map(|t| &t.tok) {
        name.push_str(word);
        if punct(i + 1, ".") && matches!(tokens.get(i + 2).map(|t| &t.tok), Some(Tok::Ident(_))) {
            name.push('.');
            i += 2;
        } else {
            i += 1;
            break;
        }
    }
    if !name.is_empty() {
        if punct(i, "(") {
            let mut depth = 0;
            let close = tokens[i..].iter().position(|t| {
                match t.tok {
                    Tok::Punct("(") => depth += 1,
                    Tok::Punct(")") => depth -= 1,
                    _ => {}
                }
                depth == 0
            });
            let call = format!("{name}(...)");
            return match close {
                Some(c) if i + c + 1 == tokens.len() => {
                    if name == "require" {
                        format!("require(...) ({snippet})")
                    } else {
                        call
                    }
                }
                _ => format!("an expression with {call} ({snippet})"),
            };
        }
        if i == tokens.len() {
            return match name.as_str() {
                "__dirname" | "__filename" => {
                    format!("`{name}`, the file's location, known only when Node runs it")
                }
                _ if name.starts_with("process.env") => format!("`{name}`, an environment read"),
                _ => format!("`{name}`, a variable"),
            };
        }
    }
    if tokens
        .iter()
        .any(|t| matches!(&t.tok, Tok::Template(parts) if parts.len() > 1))
        && tokens.len() == 1
    {
        return format!("a template literal with `${{…}}` ({snippet})");
    }
    if tokens.iter().any(|t| t.tok == Tok::BigInt) && tokens.len() == 1 {
        return format!("a BigInt ({snippet})");
    }
    format!("an expression ({snippet})")
}

/// A number as JavaScript's `String(n)` writes it.
pub fn js_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if n == 0.0 {
        return "0".into();
    }
    // Shortest round-trip digits and exponent, then JavaScript's layout rules.
    let sci = format!("{:e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let point = exponent + 1; // position of the decimal point after the first `point` digits
    let body = if k <= point && point <= 21 {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        format!(
            "{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let sign = if point > 0 { "+" } else { "-" };
        let exp = (point - 1).abs();
        if k == 1 {
            format!("{digits}e{sign}{exp}")
        } else {
            format!("{}.{}e{sign}{exp}", &digits[..1], &digits[1..])
        }
    };
    if n < 0.0 { format!("-{body}") } else { body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Js {
        read_expression(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn json(text: &str) -> serde_json::Value {
        read(text).to_json().expect("a literal")
    }

    fn prop<'a>(value: &'a Js, key: &str) -> &'a Prop {
        let JsValue::Object(members) = &value.value else {
            panic!("not an object: {value:?}")
        };
        members
            .iter()
            .rev()
            .find_map(|m| match m {
                Member::Prop(p) if p.key == key => Some(p),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {key}"))
    }

    fn code_what(value: &Js) -> &str {
        match &value.value {
            JsValue::Code(code) => &code.what,
            other => panic!("not code: {other:?}"),
        }
    }

    #[test]
    fn json_is_read_with_lines() {
        let text = "{\n  \"apps\": [\n    {\"name\": \"a\", \"n\": 1.5e3, \"ok\": true, \"x\": null}\n  ]\n}\n";
        let root = read(text);
        assert_eq!(
            root.to_json().unwrap(),
            serde_json::json!({"apps": [{"name": "a", "n": 1500.0, "ok": true, "x": null}]})
        );
        let apps = prop(&root, "apps");
        assert_eq!(apps.line, 2);
        let JsValue::Array(items) = &apps.value.value else {
            panic!()
        };
        assert_eq!(items[0].line, 3);
        assert_eq!(prop(&items[0], "n").line, 3);
    }

    #[test]
    fn json5_and_js_literal_syntax() {
        let text = r#"// comment
        {
          unquoted: 'single',   /* block
          comment */ "double": "d",
          trailing: [1, 2, 3,],
          hex: 0xFF, octal: 0o17, binary: 0b101, legacy: 010, notOctal: 019,
          pos: +1, neg: -.5, point: 5., exp: 1e3, sep: 1_000,
          inf: Infinity, ninf: -Infinity,
          template: `no ${"$"}{} here`,
          plain: `multi
line`,
          esc: 'a\'b\x41\u0042\u{1F600}\
c',
          'quoted-key': 1, 42: 'numeric key', $dollar: 1, _under: 2,
          und: undefined, nested: {deep: [{a: []}]},
        }"#;
        // The template above has a substitution, so it is not a literal: check it alone.
        let root = read(text);
        assert_eq!(
            prop(&root, "unquoted").value.value,
            JsValue::String("single".into())
        );
        assert_eq!(prop(&root, "double").line, 4);
        assert_eq!(prop(&root, "hex").value.value, JsValue::Number(255.0));
        assert_eq!(prop(&root, "octal").value.value, JsValue::Number(15.0));
        assert_eq!(prop(&root, "binary").value.value, JsValue::Number(5.0));
        assert_eq!(prop(&root, "legacy").value.value, JsValue::Number(8.0));
        assert_eq!(prop(&root, "notOctal").value.value, JsValue::Number(19.0));
        assert_eq!(prop(&root, "neg").value.value, JsValue::Number(-0.5));
        assert_eq!(prop(&root, "point").value.value, JsValue::Number(5.0));
        assert_eq!(prop(&root, "sep").value.value, JsValue::Number(1000.0));
        assert_eq!(
            prop(&root, "ninf").value.value,
            JsValue::Number(f64::NEG_INFINITY)
        );
        assert!(code_what(&prop(&root, "template").value).contains("template literal"));
        assert_eq!(
            prop(&root, "plain").value.value,
            JsValue::String("multi\nline".into())
        );
        assert_eq!(
            prop(&root, "esc").value.value,
            JsValue::String("a'bAB😀c".into())
        );
        assert_eq!(
            prop(&root, "42").value.value,
            JsValue::String("numeric key".into())
        );
        assert_eq!(prop(&root, "und").value.value, JsValue::Undefined);
        assert_eq!(
            prop(&root, "trailing").value.to_json().unwrap(),
            serde_json::json!([1.0, 2.0, 3.0])
        );
        assert_eq!(json("[1,,2]"), serde_json::json!([1.0, null, 2.0]));
    }

    #[test]
    fn code_is_described_and_the_rest_is_read() {
        let text = "{\n a: path.join(__dirname, 'x'),\n b: __dirname,\n c: require('./x'),\n d: [...list, 1],\n ...base,\n e: cond ? 'x' : 'y',\n f: `x${y}`,\n g: 3000 + 1,\n h: () => 1,\n name,\n m() { return 1 },\n [k]: 1,\n i: new Date(),\n j: os.cpus().length,\n k: 'ok',\n}";
        let root = read(text);
        assert_eq!(code_what(&prop(&root, "a").value), "path.join(...)");
        assert_eq!(prop(&root, "a").value.line, 2);
        assert!(code_what(&prop(&root, "b").value).contains("__dirname"));
        assert!(code_what(&prop(&root, "c").value).starts_with("require(...)"));
        let JsValue::Array(items) = &prop(&root, "d").value.value else {
            panic!()
        };
        assert!(code_what(&items[0]).starts_with("a spread (...list)"));
        assert_eq!(items[1].value, JsValue::Number(1.0));
        let JsValue::Object(members) = &root.value else {
            panic!()
        };
        assert!(members.iter().any(
            |m| matches!(m, Member::Code(c) if c.what == "a spread (...base)" && c.line == 6)
        ));
        assert!(code_what(&prop(&root, "e").value).starts_with("a conditional"));
        assert!(code_what(&prop(&root, "f").value).starts_with("a template literal"));
        assert_eq!(
            code_what(&prop(&root, "g").value),
            "an expression (3000 + 1)"
        );
        assert!(code_what(&prop(&root, "h").value).starts_with("a function"));
        assert!(code_what(&prop(&root, "name").value).contains("a variable"));
        assert!(code_what(&prop(&root, "m").value).starts_with("a method"));
        assert!(
            members
                .iter()
                .any(|m| matches!(m, Member::Code(c) if c.what.starts_with("a computed key")))
        );
        assert!(code_what(&prop(&root, "i").value).starts_with("a constructor call"));
        assert!(code_what(&prop(&root, "j").value).contains("os.cpus(...)"));
        assert_eq!(prop(&root, "k").value.value, JsValue::String("ok".into()));
        assert_eq!(root.to_json(), None);
    }

    #[test]
    fn environment_reads_become_env_strings() {
        let root = read(
            "{a: process.env.A, b: process.env['B'] || 'x', c: process.env.C ?? 3000, d: `http://${process.env.H}:${process.env.P || 80}/`, e: process.env.E === 'x', f: process.env.F || other}",
        );
        let env = |var: &str, default: Option<&str>| Part::Env {
            var: var.into(),
            default: default.map(String::from),
        };
        assert_eq!(
            prop(&root, "a").value.value,
            JsValue::EnvString(vec![env("A", None)])
        );
        assert_eq!(
            prop(&root, "b").value.value,
            JsValue::EnvString(vec![env("B", Some("x"))])
        );
        assert_eq!(
            prop(&root, "c").value.value,
            JsValue::EnvString(vec![env("C", Some("3000"))])
        );
        assert_eq!(
            prop(&root, "d").value.value,
            JsValue::EnvString(vec![
                Part::Text("http://".into()),
                env("H", None),
                Part::Text(":".into()),
                env("P", Some("80")),
                Part::Text("/".into()),
            ])
        );
        assert!(code_what(&prop(&root, "e").value).starts_with("an expression"));
        assert!(code_what(&prop(&root, "f").value).starts_with("an expression"));
    }

    #[test]
    fn syntax_errors_have_lines() {
        let cases = [
            (
                "{\n a: 1\n b: 2\n}",
                3,
                "expected `,` or `}` after the value of `a`",
            ),
            ("{\n a: 'open\n}", 2, "unterminated string"),
            ("{\n a: [1, 2\n", 3, "unclosed `[` (opened on line 2)"),
            ("{\n /* never closed\n a: 1 }", 2, "unclosed `/*` comment"),
            ("{a: 1} {b: 2}", 1, "unexpected `{` after the value"),
            ("", 1, "the file is empty"),
            ("{\n\n a: 1x }", 3, "identifier starts right after a number"),
            ("{ : 1 }", 1, "expected a key, found `:`"),
        ];
        for (text, line, message) in cases {
            let err = read_expression(text).unwrap_err();
            assert_eq!(err.line, line, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn modules_export_a_literal() {
        let text = "#!/usr/bin/env node\n'use strict';\nconst path = require('path');\nconst re = /\\/}/g; // a regex with a brace\nfunction f() { module.exports = 1 }\nmodule.exports = {\n  apps: [{ name: 'a', script: 'a.js' }],\n}\n";
        let module = read_module(text).unwrap();
        assert_eq!(module.value.line, 6);
        assert_eq!(
            module.value.to_json().unwrap(),
            serde_json::json!({"apps": [{"name": "a", "script": "a.js"}]})
        );
        assert!(module.notes.is_empty(), "{:?}", module.notes);

        let esm = read_module("export default {\n apps: [],\n};\n").unwrap();
        assert_eq!(
            esm.value.to_json().unwrap(),
            serde_json::json!({"apps": []})
        );

        let after =
            read_module("module.exports = { apps: [] }\nmodule.exports.apps.push(x)\n").unwrap();
        assert!(after.notes[0].1.contains("code after"), "{:?}", after.notes);
        assert_eq!(after.notes[0].0, 2);

        let twice = read_module("module.exports = {a: 1};\nmodule.exports = {b: 2};\n").unwrap();
        assert_eq!(
            twice.value.to_json().unwrap(),
            serde_json::json!({"b": 2.0})
        );
        assert!(twice.notes[0].1.contains("more than once"));

        let call =
            read_module("const base = {};\nmodule.exports = merge(base, {\n apps: []\n});\n")
                .unwrap();
        assert!(code_what(&call.value).contains("merge(...)"));

        let err = read_module("const apps = [];\n").unwrap_err();
        assert!(err.message.contains("no `module.exports"), "{err}");
        let err = read_module("if (x) {\n  module.exports = {}\n}\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("inside a function or block"), "{err}");
    }

    #[test]
    fn numbers_print_like_javascript() {
        for (n, text) in [
            (1.0, "1"),
            (1.5, "1.5"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::NAN, "NaN"),
            (-f64::INFINITY, "-Infinity"),
            (-42.0, "-42"),
        ] {
            assert_eq!(js_number(n), text);
        }
    }
}
