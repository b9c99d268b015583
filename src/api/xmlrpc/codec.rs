//! XML-RPC as supervisord and Python's `xmlrpc.client` speak it: a request parser and a
//! response writer. No I/O; the HTTP layer hands in the request body and sends back the
//! string.
//!
//! The parser reads the subset of XML that XML-RPC needs with a small hand-written reader
//! (see NOTES.md for why not `quick-xml`): elements, character data, the five predefined
//! entities, numeric character references, CDATA sections, comments and processing
//! instructions (both skipped). Attributes are read and ignored. Any `<!DOCTYPE` or other
//! markup declaration is refused, so entity expansion (the "billion laughs" family) cannot
//! happen. Container nesting is capped at [`MAX_DEPTH`]. Bounding the body size is the
//! caller's job.
//!
//! The writer produces byte for byte what `xmlrpc.client.dumps(..., methodresponse=True)`
//! produces in CPython 3.11, except that characters XML 1.0 forbids are dropped from every
//! string (see [`xml_safe`]); supervisord ships them raw and breaks its own client.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Deepest nesting of arrays and structs [`parse_call`] accepts. A parameter that is an
/// array of arrays has depth 2.
pub const MAX_DEPTH: usize = 64;

/// One XML-RPC value. `Struct` keeps its members in the order they were inserted (or
/// parsed); duplicate names are kept as they came.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i32),
    Bool(bool),
    String(String),
    Double(f64),
    /// The text of a `<dateTime.iso8601>`, as sent (Python sends `20250102T03:04:05`).
    DateTime(String),
    Base64(Vec<u8>),
    Array(Vec<Value>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// The XML-RPC type name, for error messages (`INCORRECT_PARAMETERS`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "boolean",
            Value::String(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
        }
    }

    pub fn as_int(&self) -> Option<i32> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The first member called `key`, if this is a struct.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}

/// A parsed `<methodCall>`.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub method: String,
    pub params: Vec<Value>,
}

/// Why a request body could not be read. supervisord answers HTTP 400 for all of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the decoded document where the problem was noticed.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid XML-RPC request at byte {}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for ParseError {}

type PResult<T> = Result<T, ParseError>;

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Parses an XML-RPC request body.
///
/// Accepts what Python's `xmlrpc.client` sends and the usual variants: an XML declaration
/// (UTF-8, US-ASCII or ISO-8859-1), whitespace between elements, comments, a bare
/// `<value>text</value>` (a string, whitespace kept), `<value/>` (empty string), `<int>`
/// and `<i4>`, `<boolean>` (`1`/`0`, also `true`/`false`), `<string>`, `<double>`,
/// `<dateTime.iso8601>`, `<base64>`, `<array><data>`, `<struct><member><name>`, empty
/// elements written either way, and `<params/>` or no `<params>` at all.
///
/// Refused: a DOCTYPE or any other `<!` declaration, `<nil/>`, `<i8>` and other types
/// supervisord does not decode, ints outside the signed 32-bit range, an empty method
/// name (supervisord answers 400 for that too), nesting deeper than [`MAX_DEPTH`], and
/// anything that is not well formed. Never panics.
pub fn parse_call(body: &[u8]) -> Result<MethodCall, ParseError> {
    let text = decode_document(body)?;
    let mut p = Parser {
        lx: Lexer::new(&text),
        peeked: None,
    };
    p.parse_call()
}

/// Turns the body into text: strips a UTF-8 byte order mark and honours the encoding in
/// the XML declaration (UTF-8 when there is none).
fn decode_document(body: &[u8]) -> PResult<Cow<'_, str>> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let latin1 = match declared_encoding(body)? {
        None => false,
        Some(enc) => match enc.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" | "us-ascii" | "ascii" => false,
            "iso-8859-1" | "latin-1" | "latin1" | "iso8859-1" => true,
            _ => return Err(err(0, format!("unsupported encoding {enc:?}"))),
        },
    };
    if latin1 {
        return Ok(Cow::Owned(body.iter().map(|&b| char::from(b)).collect()));
    }
    match std::str::from_utf8(body) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(e) => Err(err(e.valid_up_to(), "the body is not valid UTF-8".into())),
    }
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>`, if any.
fn declared_encoding(body: &[u8]) -> PResult<Option<String>> {
    let Some(rest) = body.strip_prefix(b"<?xml") else {
        return Ok(None);
    };
    if !rest.first().is_some_and(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    let Some(end) = rest.windows(2).position(|w| w == b"?>") else {
        return Err(err(0, "unterminated XML declaration".into()));
    };
    let decl = &rest[..end];
    let Some(at) = decl.windows(8).position(|w| w == b"encoding") else {
        return Ok(None);
    };
    let after = decl[at + 8..].trim_ascii_start();
    let after = after.strip_prefix(b"=").map(<[u8]>::trim_ascii_start);
    let value = after.and_then(|a| {
        let q = *a.first()?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let len = a[1..].iter().position(|&b| b == q)?;
        std::str::from_utf8(&a[1..1 + len]).ok()
    });
    match value {
        Some(v) => Ok(Some(v.to_owned())),
        None => Err(err(0, "malformed encoding in the XML declaration".into())),
    }
}

fn err(offset: usize, message: String) -> ParseError {
    ParseError { offset, message }
}

#[derive(Debug)]
enum Tok<'a> {
    /// A start tag; `true` when it was written `<name/>`.
    Open(&'a str, bool),
    Close(&'a str),
    Text(Cow<'a, str>),
    Eof,
}

/// Splits the document into tags and character data. Comments and processing
/// instructions are skipped here; declarations are refused.
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn fail<T>(&self, message: impl Into<String>) -> PResult<T> {
        Err(err(self.pos, message.into()))
    }

    /// Moves past `delim`, which must occur in the rest of the input; returns what came
    /// before it.
    fn take_until(&mut self, delim: &str, what: &str) -> PResult<&'a str> {
        match self.rest().find(delim) {
            Some(i) => {
                let s = &self.rest()[..i];
                self.pos += i + delim.len();
                Ok(s)
            }
            None => self.fail(format!("unterminated {what}")),
        }
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start_matches(is_xml_ws).len();
    }

    fn name(&mut self) -> PResult<&'a str> {
        let r = self.rest();
        let len = r
            .find(|c: char| is_xml_ws(c) || matches!(c, '/' | '>' | '<' | '=' | '"' | '\'' | '&'))
            .unwrap_or(r.len());
        if len == 0 {
            return self.fail("expected a tag name");
        }
        self.pos += len;
        Ok(&r[..len])
    }

    fn next(&mut self) -> PResult<Tok<'a>> {
        loop {
            let r = self.rest();
            if r.is_empty() {
                return Ok(Tok::Eof);
            }
            if !r.starts_with('<') {
                let len = r.find('<').unwrap_or(r.len());
                let start = self.pos;
                self.pos += len;
                return decode_text(&r[..len], start).map(Tok::Text);
            }
            if r.starts_with("<!--") {
                self.pos += 4;
                self.take_until("-->", "comment")?;
            } else if r.starts_with("<![CDATA[") {
                self.pos += 9;
                let data = self.take_until("]]>", "CDATA section")?;
                return Ok(Tok::Text(normalize_newlines(data)));
            } else if r.starts_with("<!") {
                return self.fail("DOCTYPE and other markup declarations are not allowed");
            } else if r.starts_with("<?") {
                self.pos += 2;
                self.take_until("?>", "processing instruction")?;
            } else if r.starts_with("</") {
                self.pos += 2;
                let name = self.name()?;
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return self.fail(format!("expected '>' to close </{name}"));
                }
                self.pos += 1;
                return Ok(Tok::Close(name));
            } else {
                self.pos += 1;
                let name = self.name()?;
                return self.attributes_then_end(name);
            }
        }
    }

    /// Reads (and ignores) attributes up to the end of a start tag.
    fn attributes_then_end(&mut self, name: &'a str) -> PResult<Tok<'a>> {
        loop {
            let before = self.pos;
            self.skip_ws();
            let r = self.rest();
            if r.starts_with('>') {
                self.pos += 1;
                return Ok(Tok::Open(name, false));
            }
            if r.starts_with("/>") {
                self.pos += 2;
                return Ok(Tok::Open(name, true));
            }
            if self.pos == before {
                return self.fail(format!("expected '>' or whitespace in <{name}>"));
            }
            self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return self.fail("expected '=' after an attribute name");
            }
            self.pos += 1;
            self.skip_ws();
            let quote = match self.rest().chars().next() {
                Some(q @ ('"' | '\'')) => q,
                _ => return self.fail("expected a quoted attribute value"),
            };
            self.pos += 1;
            let value =
                self.take_until(if quote == '"' { "\"" } else { "'" }, "attribute value")?;
            if value.contains('<') {
                return self.fail("'<' in an attribute value");
            }
        }
    }
}

fn is_xml_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// XML end-of-line handling: `\r\n` and a lone `\r` become `\n` (as expat does, so a
/// string reaches us as it reaches supervisord).
fn normalize_newlines(s: &str) -> Cow<'_, str> {
    if !s.contains('\r') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Character data: newlines normalized, entity and character references replaced.
fn decode_text(raw: &str, start: usize) -> PResult<Cow<'_, str>> {
    if !raw.contains('&') {
        return Ok(normalize_newlines(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&normalize_newlines(&rest[..amp]));
        let after = &rest[amp + 1..];
        let offset = start + (raw.len() - after.len());
        let semi = after
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i)
            .ok_or_else(|| err(offset, "'&' that does not start a reference".into()))?;
        out.push(reference(&after[..semi]).ok_or_else(|| {
            err(
                offset,
                format!("unknown or invalid reference &{};", &after[..semi]),
            )
        })?);
        rest = &after[semi + 1..];
    }
    out.push_str(&normalize_newlines(rest));
    Ok(Cow::Owned(out))
}

/// The character for the reference `&name;` (name given without `&` and `;`).
fn reference(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                Some(_) => return None,
                None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => {
                    num.parse().ok()?
                }
                None => return None,
            };
            // NUL is not a character XML can carry, even as a reference.
            if code == 0 {
                return None;
            }
            char::from_u32(code)?
        }
    })
}

struct Parser<'a> {
    lx: Lexer<'a>,
    peeked: Option<Tok<'a>>,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> PResult<Tok<'a>> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lx.next(),
        }
    }

    fn peek(&mut self) -> PResult<&Tok<'a>> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lx.next()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    fn fail<T>(&self, message: impl Into<String>) -> PResult<T> {
        self.lx.fail(message)
    }

    /// Skips whitespace-only character data between elements.
    fn skip_ws(&mut self) -> PResult<()> {
        loop {
            match self.peek()? {
                Tok::Text(t) if t.chars().all(is_xml_ws) => {
                    self.peeked = None;
                }
                Tok::Text(_) => return self.fail("unexpected text between elements"),
                _ => return Ok(()),
            }
        }
    }

    /// Expects `<name>` (after optional whitespace); returns whether it was `<name/>`.
    fn open(&mut self, name: &str) -> PResult<bool> {
        self.skip_ws()?;
        match self.next()? {
            Tok::Open(n, empty) if n == name => Ok(empty),
            other => self.fail(format!("expected <{name}>, found {}", describe(&other))),
        }
    }

    fn close(&mut self, name: &str) -> PResult<()> {
        self.skip_ws()?;
        match self.next()? {
            Tok::Close(n) if n == name => Ok(()),
            other => self.fail(format!("expected </{name}>, found {}", describe(&other))),
        }
    }

    fn at_close(&mut self, name: &str) -> PResult<bool> {
        self.skip_ws()?;
        Ok(matches!(self.peek()?, Tok::Close(n) if *n == name))
    }

    /// The character data of an element whose start tag was just read, up to its end tag.
    fn text_of(&mut self, name: &str, empty: bool) -> PResult<String> {
        let mut out = String::new();
        if empty {
            return Ok(out);
        }
        loop {
            match self.next()? {
                Tok::Text(t) => out.push_str(&t),
                Tok::Close(n) if n == name => return Ok(out),
                other => {
                    return self.fail(format!(
                        "expected text or </{name}>, found {}",
                        describe(&other)
                    ));
                }
            }
        }
    }

    fn parse_call(&mut self) -> PResult<MethodCall> {
        if self.open("methodCall")? {
            return self.fail("empty <methodCall/>");
        }
        let empty = self.open("methodName")?;
        let method = self.text_of("methodName", empty)?;
        if method.is_empty() {
            return self.fail("empty method name");
        }
        let mut params = Vec::new();
        self.skip_ws()?;
        if matches!(self.peek()?, Tok::Open("params", _)) {
            let Tok::Open(_, empty) = self.next()? else {
                unreachable!("peeked")
            };
            if !empty {
                while !self.at_close("params")? {
                    if self.open("param")? {
                        return self.fail("empty <param/>");
                    }
                    params.push(self.parse_value(0)?);
                    self.close("param")?;
                }
                self.close("params")?;
            }
        }
        self.close("methodCall")?;
        self.skip_ws()?;
        match self.next()? {
            Tok::Eof => Ok(MethodCall { method, params }),
            other => self.fail(format!("{} after </methodCall>", describe(&other))),
        }
    }

    /// `<value>…</value>`; `depth` counts the arrays and structs around it.
    fn parse_value(&mut self, depth: usize) -> PResult<Value> {
        if self.open("value")? {
            return Ok(Value::String(String::new()));
        }
        let mut text = String::new();
        let mut typed = None;
        loop {
            match self.next()? {
                Tok::Text(t) => text.push_str(&t),
                Tok::Open(name, empty) => {
                    if typed.is_some() {
                        return self.fail("more than one element in <value>");
                    }
                    typed = Some(self.parse_typed(name, empty, depth)?);
                }
                Tok::Close("value") => break,
                other => {
                    return self.fail(format!("expected </value>, found {}", describe(&other)));
                }
            }
        }
        match typed {
            Some(v) if text.chars().all(is_xml_ws) => Ok(v),
            Some(_) => self.fail("text beside a typed element in <value>"),
            // An untyped value is a string, whitespace and all.
            None => Ok(Value::String(text)),
        }
    }

    fn parse_typed(&mut self, name: &str, empty: bool, depth: usize) -> PResult<Value> {
        let scalar = |p: &mut Self| p.text_of(name, empty);
        Ok(match name {
            "int" | "i4" => {
                let t = scalar(self)?;
                match t
                    .trim_matches(is_xml_ws)
                    .parse::<i64>()
                    .ok()
                    .map(i32::try_from)
                {
                    Some(Ok(i)) => Value::Int(i),
                    Some(Err(_)) => {
                        return self.fail(format!("int {t:?} is outside the 32-bit range"));
                    }
                    None => return self.fail(format!("bad int {t:?}")),
                }
            }
            "boolean" => {
                let t = scalar(self)?;
                match t.trim_matches(is_xml_ws) {
                    "1" => Value::Bool(true),
                    "0" => Value::Bool(false),
                    s if s.eq_ignore_ascii_case("true") => Value::Bool(true),
                    s if s.eq_ignore_ascii_case("false") => Value::Bool(false),
                    _ => return self.fail(format!("bad boolean {t:?}")),
                }
            }
            "string" => Value::String(scalar(self)?),
            "double" => {
                let t = scalar(self)?;
                match t.trim_matches(is_xml_ws).parse::<f64>() {
                    Ok(d) => Value::Double(d),
                    Err(_) => return self.fail(format!("bad double {t:?}")),
                }
            }
            "dateTime.iso8601" => Value::DateTime(scalar(self)?.trim_matches(is_xml_ws).to_owned()),
            "base64" => {
                let t = scalar(self)?;
                match base64_decode(&t) {
                    Some(b) => Value::Base64(b),
                    None => return self.fail("bad base64"),
                }
            }
            "array" | "struct" if depth >= MAX_DEPTH => {
                return self.fail(format!("values nested deeper than {MAX_DEPTH}"));
            }
            "array" => {
                let mut items = Vec::new();
                if !empty {
                    if !self.open("data")? {
                        while !self.at_close("data")? {
                            items.push(self.parse_value(depth + 1)?);
                        }
                        self.close("data")?;
                    }
                    self.close("array")?;
                }
                Value::Array(items)
            }
            "struct" => {
                let mut members = Vec::new();
                if !empty {
                    while !self.at_close("struct")? {
                        if self.open("member")? {
                            return self.fail("empty <member/>");
                        }
                        let empty_name = self.open("name")?;
                        let key = self.text_of("name", empty_name)?;
                        let value = self.parse_value(depth + 1)?;
                        self.close("member")?;
                        members.push((key, value));
                    }
                    self.close("struct")?;
                }
                Value::Struct(members)
            }
            other => return self.fail(format!("unsupported value type <{other}>")),
        })
    }
}

fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Open(n, _) => format!("<{n}>"),
        Tok::Close(n) => format!("</{n}>"),
        Tok::Text(_) => "text".into(),
        Tok::Eof => "the end of the document".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------

/// `s` without the characters XML 1.0 cannot carry: C0 controls other than TAB, LF and CR,
/// and U+FFFE, U+FFFF. (A Rust `str` holds no lone surrogates, the remaining forbidden
/// class.) Borrows when there is nothing to drop.
pub fn xml_safe(s: &str) -> Cow<'_, str> {
    if s.chars().all(xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| xml_char(c)).collect())
    }
}

fn xml_char(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        '\u{FFFE}' | '\u{FFFF}' => false,
        c => c >= ' ',
    }
}

/// Appends `s` with forbidden characters dropped and `&`, `<`, `>` escaped, as Python's
/// `xmlrpc.client.escape` does (quotes are left alone).
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

const DECLARATION: &str = "<?xml version='1.0'?>\n";

/// A successful `<methodResponse>` carrying `value`, exactly as
/// `xmlrpc.client.dumps((value,), methodresponse=True)` writes it.
pub fn response(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(DECLARATION);
    out.push_str("<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out
}

/// A fault `<methodResponse>`, exactly as `xmlrpc.client.dumps(Fault(code, message))`
/// writes it.
pub fn fault(code: i32, message: &str) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(DECLARATION);
    out.push_str("<methodResponse>\n<fault>\n");
    write_struct(
        &mut out,
        [
            ("faultCode", &Value::Int(code)),
            ("faultString", &Value::String(message.into())),
        ],
    );
    out.push_str("</fault>\n</methodResponse>\n");
    out
}

/// A `<methodCall>`, exactly as `xmlrpc.client.dumps(params, methodname=method)` writes
/// it. tend does not need to send calls; this is for tests and tools.
pub fn call(method: &str, params: &[Value]) -> String {
    let mut out = String::with_capacity(128);
    out.push_str(DECLARATION);
    out.push_str("<methodCall>\n<methodName>");
    push_escaped(&mut out, method);
    out.push_str("</methodName>\n<params>\n");
    for p in params {
        out.push_str("<param>\n");
        write_value(&mut out, p);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Int(i) => {
            let _ = writeln!(out, "<value><int>{i}</int></value>");
        }
        Value::Bool(b) => {
            let _ = writeln!(out, "<value><boolean>{}</boolean></value>", u8::from(*b));
        }
        Value::String(s) => {
            out.push_str("<value><string>");
            push_escaped(out, s);
            out.push_str("</string></value>\n");
        }
        Value::Double(d) => {
            out.push_str("<value><double>");
            push_python_float(out, *d);
            out.push_str("</double></value>\n");
        }
        Value::DateTime(s) => {
            out.push_str("<value><dateTime.iso8601>");
            push_escaped(out, s);
            out.push_str("</dateTime.iso8601></value>\n");
        }
        Value::Base64(bytes) => {
            out.push_str("<value><base64>\n");
            push_base64_lines(out, bytes);
            out.push_str("</base64></value>\n");
        }
        Value::Array(items) => {
            out.push_str("<value><array><data>\n");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array></value>\n");
        }
        Value::Struct(members) => write_struct(out, members.iter().map(|(k, v)| (k.as_str(), v))),
    }
}

fn write_struct<'v>(out: &mut String, members: impl IntoIterator<Item = (&'v str, &'v Value)>) {
    out.push_str("<value><struct>\n");
    for (k, v) in members {
        out.push_str("<member>\n<name>");
        push_escaped(out, k);
        out.push_str("</name>\n");
        write_value(out, v);
        out.push_str("</member>\n");
    }
    out.push_str("</struct></value>\n");
}

/// `repr(float)` as CPython writes it: the shortest digits that round-trip, positional
/// notation for decimal exponents -4 < e < 16, otherwise `d.ddde+XX`.
fn push_python_float(out: &mut String, d: f64) {
    if d.is_nan() {
        out.push_str("nan");
        return;
    }
    if d.is_infinite() {
        out.push_str(if d > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if d == 0.0 {
        out.push_str(if d.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // Rust's `{:e}` gives the shortest digits that round-trip ("-1.2345e17", "5e-324").
    // When two such strings are equally near, Rust rounds the tie up and CPython to even
    // (1370894162916916.25 is "...916.3" in Rust, "...916.2" in CPython), so take the
    // correctly rounded string of that length when it round-trips too.
    let shortest = format!("{d:e}");
    let len = shortest
        .split_once('e')
        .map_or(0, |(m, _)| m.bytes().filter(u8::is_ascii_digit).count());
    let rounded = format!("{d:.prec$e}", prec = len.saturating_sub(1));
    let sci = if rounded.parse::<f64>() == Ok(d) {
        rounded
    } else {
        shortest
    };
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("LowerExp always has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    if neg {
        out.push('-');
    }
    // Position of the decimal point relative to the start of `digits`.
    let point = exp + 1;
    if !(-4 < point && point <= 16) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 as Python's `base64.encodebytes`: lines of at most 76 characters, each ending
/// in `\n`; nothing at all for empty input.
fn push_base64_lines(out: &mut String, bytes: &[u8]) {
    // 57 input bytes make one 76-character line.
    for line in bytes.chunks(57) {
        for chunk in line.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    out.push('=');
                }
            }
        }
        out.push('\n');
    }
}

/// Decodes base64, ignoring whitespace; padding may be present or not. Also what the remote
/// listener reads HTTP Basic credentials with.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for b in s.bytes() {
        if b.is_ascii_whitespace() {
            continue;
        }
        if b == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None; // data after padding
        }
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits cannot encode a byte; at most two '=' are meaningful.
    if bits >= 6 || padding > 2 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
