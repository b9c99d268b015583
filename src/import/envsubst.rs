//! The `${...}` expansion process-compose applies to its whole file before parsing it: the
//! drone/envsubst rules (v1.0.3), after process-compose's own `$$` escape. Only the braced
//! form is expanded: `$VAR` is left for the shell. An undefined variable is an empty string.
//!
//! Parsed into pieces so the importer can rewrite each expansion into tend's `${VAR}` /
//! `${VAR:-default}` where tend has the same operator, and evaluate it now where not.

/// A piece of a string: literal text, or one `${...}` expansion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Var(Var),
}

/// One `${...}`: the variable, the operator as written (`""`, `":-"`, `"^^"`, `"#"`, ...)
/// and its arguments, themselves text with nested expansions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Var {
    pub name: String,
    pub op: String,
    pub args: Vec<Vec<Piece>>,
    /// The expansion as written, for messages.
    pub source: String,
}

impl Var {
    /// `${VAR}`.
    pub fn is_plain(&self) -> bool {
        self.op.is_empty()
    }

    /// The operators envsubst treats as "the default when empty", whatever they mean to a
    /// shell (`:+`, `:?` and `=` included): exactly tend's `${VAR:-default}`.
    pub fn is_default(&self) -> bool {
        matches!(self.op.as_str(), "=" | ":=" | ":-" | ":?" | ":+")
    }
}

/// Parse `text` into pieces. `$$` is a literal `$` (process-compose's escape). Errors are
/// what makes process-compose refuse the file.
pub(crate) fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser { chars, at: 0 };
    let mut out = Vec::new();
    while p.at < p.chars.len() {
        if p.starts("$$") {
            push_text(&mut out, "$");
            p.at += 2;
        } else if p.starts("${") {
            let var = p.func()?;
            out.push(Piece::Var(var));
        } else {
            let c = p.chars[p.at];
            push_text(&mut out, &c.to_string());
            p.at += 1;
        }
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Piece>, s: &str) {
    if let Some(Piece::Text(t)) = out.last_mut() {
        t.push_str(s);
    } else {
        out.push(Piece::Text(s.to_string()));
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn starts(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(i, c)| self.chars.get(self.at + i) == Some(&c))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn ident(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn expect_close(&mut self) -> Result<(), String> {
        if self.peek() == Some('}') {
            self.at += 1;
            Ok(())
        } else {
            Err("bad substitution: missing closing `}`".into())
        }
    }

    /// One `${...}`, starting at its `$`.
    fn func(&mut self) -> Result<Var, String> {
        let start = self.at;
        self.at += 2;
        let mut var = Var {
            name: String::new(),
            op: String::new(),
            args: Vec::new(),
            source: String::new(),
        };
        if self.peek() == Some('#') {
            self.at += 1;
            var.op = "#".into();
            var.name = self.ident();
            if var.name.is_empty() {
                return Err("bad substitution: `${#` needs a variable name".into());
            }
            self.expect_close()?;
        } else {
            var.name = self.ident();
            if var.name.is_empty() {
                return Err("unable to parse variable name".into());
            }
            match self.peek() {
                Some('}') => self.at += 1,
                Some(':')
                    if self
                        .chars
                        .get(self.at + 1)
                        .is_some_and(|c| "=-?+".contains(*c)) =>
                {
                    var.op = self.chars[self.at..self.at + 2].iter().collect();
                    self.at += 2;
                    var.args.push(self.param(&['}'], false)?);
                    self.expect_close()?;
                }
                Some('=') => {
                    var.op = "=".into();
                    self.at += 1;
                    var.args.push(self.param(&['}'], false)?);
                    self.expect_close()?;
                }
                Some(':') => {
                    var.op = ":".into();
                    self.at += 1;
                    var.args.push(self.param(&[':', '}'], false)?);
                    if self.peek() == Some(':') {
                        self.at += 1;
                        var.args.push(self.param(&['}'], false)?);
                    }
                    self.expect_close()?;
                }
                Some(c @ (',' | '^')) => {
                    var.op.push(c);
                    self.at += 1;
                    if let Some(c2 @ (',' | '^')) = self.peek() {
                        var.op.push(c2);
                        self.at += 1;
                    }
                    self.expect_close()?;
                }
                Some('/') => {
                    var.op.push('/');
                    self.at += 1;
                    if let Some(c2 @ ('/' | '#' | '%')) = self.peek() {
                        var.op.push(c2);
                        self.at += 1;
                    }
                    var.args.push(self.param(&['/'], true)?);
                    if self.peek() != Some('/') {
                        return Err(
                            "bad substitution: `${VAR/pattern/string}` needs its second `/`".into(),
                        );
                    }
                    self.at += 1;
                    if self.peek() != Some('}') {
                        var.args.push(self.param(&['}'], true)?);
                    }
                    self.expect_close()?;
                }
                Some(c @ ('#' | '%')) => {
                    var.op.push(c);
                    self.at += 1;
                    if self.peek() == Some(c) {
                        var.op.push(c);
                        self.at += 1;
                    }
                    var.args.push(self.param(&['}'], false)?);
                    self.expect_close()?;
                }
                _ => return Err("bad substitution: missing closing `}`".into()),
            }
        }
        var.source = self.chars[start..self.at].iter().collect();
        Ok(var)
    }

    /// An operator's argument: text up to one of `stop`, with nested `${...}`.
    fn param(&mut self, stop: &[char], escapes: bool) -> Result<Vec<Piece>, String> {
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("bad substitution: missing closing `}`".into());
            };
            if self.starts("$$") {
                push_text(&mut out, "$");
                self.at += 2;
            } else if self.starts("${") {
                out.push(Piece::Var(self.func()?));
            } else if stop.contains(&c) {
                return Ok(out);
            } else if escapes
                && c == '\\'
                && matches!(self.chars.get(self.at + 1), Some('/' | '\\'))
            {
                push_text(&mut out, &self.chars[self.at + 1].to_string());
                self.at += 2;
            } else {
                push_text(&mut out, &c.to_string());
                self.at += 1;
            }
        }
    }
}

/// Evaluate pieces now, as process-compose would when loading the file.
pub(crate) fn eval(pieces: &[Piece], lookup: &dyn Fn(&str) -> Option<String>) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.clone(),
            Piece::Var(v) => eval_var(v, lookup),
        })
        .collect()
}

pub(crate) fn eval_var(var: &Var, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let value = lookup(&var.name).unwrap_or_default();
    let args: Vec<String> = var.args.iter().map(|a| eval(a, lookup)).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match var.op.as_str() {
        "" => value,
        "," => first_char(&value, false),
        ",," => value.to_lowercase(),
        "^" => first_char(&value, true),
        "^^" => value.to_uppercase(),
        "#" if args.is_empty() => value.len().to_string(),
        "#" => trim_prefix(&value, &arg(0), false),
        "##" => trim_prefix(&value, &arg(0), true),
        "%" => trim_suffix(&value, &arg(0), false),
        "%%" => trim_suffix(&value, &arg(0), true),
        ":" => substring(&value, &args),
        "/" => value.replacen(&arg(0), &arg(1), 1),
        "//" => value.replace(&arg(0), &arg(1)),
        "/#" if args.len() == 2 && value.starts_with(&args[0]) => {
            format!("{}{}", args[1], &value[args[0].len()..])
        }
        "/%" if args.len() == 2 && value.ends_with(&args[0]) => {
            format!("{}{}", &value[..value.len() - args[0].len()], args[1])
        }
        "/#" | "/%" => value,
        // Every other operator is envsubst's "default when empty".
        _ if value.is_empty() => args.concat(),
        _ => value,
    }
}

fn first_char(s: &str, upper: bool) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if upper => c.to_uppercase().chain(chars).collect(),
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `${VAR:offset}` and `${VAR:offset:length}` on bytes, as envsubst does.
fn substring(s: &str, args: &[String]) -> String {
    let Some(Ok(mut pos)) = args.first().map(|a| a.trim().parse::<i64>()) else {
        return s.to_string();
    };
    let len = s.len() as i64;
    if pos < 0 {
        pos = (len + pos).max(0);
    }
    let slice = |from: i64, to: i64| {
        s.get(from as usize..to as usize)
            .map(str::to_string)
            .unwrap_or_default()
    };
    match args.get(1).map(|a| a.trim().parse::<i64>()) {
        None if pos < len => slice(pos, len),
        None => String::new(),
        Some(Err(_)) => s.to_string(),
        Some(Ok(n)) if pos + n >= len => {
            if pos < len {
                slice(pos, len)
            } else {
                String::new()
            }
        }
        Some(Ok(n)) => slice(pos, pos + n.max(0)),
    }
}

fn trim_prefix(s: &str, pattern: &str, longest: bool) -> String {
    let ends: Vec<usize> = (0..=s.len()).filter(|i| s.is_char_boundary(*i)).collect();
    let mut found = None;
    for &end in &ends {
        if end > 0 && glob(pattern, &s[..end]) {
            found = Some(end);
            if !longest {
                break;
            }
        }
    }
    match found {
        Some(end) => s[end..].to_string(),
        None => s.to_string(),
    }
}

fn trim_suffix(s: &str, pattern: &str, longest: bool) -> String {
    let starts: Vec<usize> = (0..s.len())
        .rev()
        .filter(|i| s.is_char_boundary(*i))
        .collect();
    let mut found = None;
    for &start in &starts {
        if glob(pattern, &s[start..]) {
            found = Some(start);
            if !longest {
                break;
            }
        }
    }
    match found {
        Some(start) => s[..start].to_string(),
        None => s.to_string(),
    }
}

/// Shell-style pattern match as Go's `path.Match`: `*` and `?` do not match `/`.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => (0..=t.len())
            .take_while(|i| *i == 0 || t[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &t[i..])),
        Some('?') => t.first().is_some_and(|c| *c != '/') && glob_at(&p[1..], &t[1..]),
        Some('[') => {
            let Some(close) = p.iter().skip(1).position(|c| *c == ']').map(|i| i + 1) else {
                return false;
            };
            let Some(&c) = t.first() else { return false };
            let mut class = &p[1..close];
            let negate = class.first() == Some(&'^');
            if negate {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob_at(&p[close + 1..], &t[1..])
        }
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && glob_at(&p[2..], &t[1..]),
        Some(c) => t.first() == Some(c) && glob_at(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("abcDEF".into()),
            "P" => Some("/home/bozo/ideas/thoughts.for.today".into()),
            "F" => Some("bash.string.txt".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(text: &str) -> String {
        eval(&parse(text).unwrap_or_else(|e| panic!("{text}: {e}")), &env)
    }

    #[test]
    fn only_braced_variables_expand() {
        assert_eq!(ok("$A ${A} $1 $"), "$A abcDEF $1 $");
        assert_eq!(ok("${NOPE}x"), "x");
        assert_eq!(ok("$${A} $$A"), "${A} $A");
        assert_eq!(ok("$$${A}"), "$abcDEF");
    }

    #[test]
    fn default_family_means_default_when_empty() {
        for op in ["=", ":=", ":-", ":?", ":+"] {
            assert_eq!(ok(&format!("${{NOPE{op}x y}}")), "x y", "{op}");
            assert_eq!(ok(&format!("${{EMPTY{op}d}}")), "d", "{op}");
            assert_eq!(ok(&format!("${{A{op}d}}")), "abcDEF", "{op}");
        }
        assert_eq!(ok("${NOPE:-${A}-suffix}"), "abcDEF-suffix");
        assert_eq!(ok("${NOPE:-$${lit}}"), "${lit}");
    }

    #[test]
    fn string_functions() {
        assert_eq!(ok("${A^^}"), "ABCDEF");
        assert_eq!(ok("${A,,}"), "abcdef");
        assert_eq!(ok("${A^}"), "AbcDEF");
        assert_eq!(ok("${#A}"), "6");
        assert_eq!(ok("${P:11}"), "ideas/thoughts.for.today");
        assert_eq!(ok("${P:11:5}"), "ideas");
        assert_eq!(ok("${P:-5}"), "/home/bozo/ideas/thoughts.for.today");
        assert_eq!(ok("${F#*.}"), "string.txt");
        assert_eq!(ok("${F##*.}"), "txt");
        assert_eq!(ok("${F%.*}"), "bash.string");
        assert_eq!(ok("${F%%.*}"), "bash");
        assert_eq!(ok("${A/bc/XY}"), "aXYDEF");
        assert_eq!(ok("${F//./_}"), "bash_string_txt");
        assert_eq!(ok("${F/#bash/zsh}"), "zsh.string.txt");
        assert_eq!(ok("${F/%txt/md}"), "bash.string.md");
        assert_eq!(ok("${A/c/}"), "abDEF");
    }

    #[test]
    fn malformed_expansions_are_errors() {
        for bad in ["${", "${A", "${}", "${ A}", "${A-x}", "${arr[@]}", "${A:-x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pieces_keep_the_source() {
        let pieces = parse("a ${B:-c} d").unwrap();
        let Piece::Var(v) = &pieces[1] else { panic!() };
        assert_eq!(v.source, "${B:-c}");
        assert_eq!(v.op, ":-");
        assert!(v.is_default());
        assert_eq!(pieces.len(), 3);
    }

    #[test]
    fn glob_matches_like_path_match() {
        assert!(glob("*.txt", "a.txt"));
        assert!(!glob("*.txt", "a/b.txt"));
        assert!(glob("[a-c]?", "bz"));
        assert!(!glob("[^a-c]?", "bz"));
        assert!(glob("\\*", "*"));
    }
}
