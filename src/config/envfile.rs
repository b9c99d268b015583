//! Env files (`env_file = ".env"`): the dotenv dialect tend reads. Values are literal:
//! tend does not interpolate inside env files, so what the file says is what the child gets.
//!
//! Syntax: `KEY=VALUE` lines, an optional `export ` prefix, `#` comment lines, blank lines.
//! `'single'` quotes are literal; `"double"` quotes know `\n \t \r \" \\ \$` and may span
//! lines; unquoted values are trimmed and lose a trailing ` # comment`.

/// A malformed line, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

/// One `KEY=VALUE` of an env file and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Parse an env file's text into `(KEY, VALUE)` pairs in file order (a later duplicate
/// overrides an earlier one when collected into a map). Reports every malformed line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Vec<EnvFileError>> {
    let (assignments, errors) = read(text);
    if errors.is_empty() {
        Ok(assignments.into_iter().map(|a| (a.key, a.value)).collect())
    } else {
        Err(errors)
    }
}

/// Every assignment that reads, with its line, and every line that does not: what an
/// importer compares with another dialect's reading of the same file.
pub fn read(text: &str) -> (Vec<Assignment>, Vec<EnvFileError>) {
    let lines: Vec<&str> = text.lines().collect();
    let mut assignments = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let line = lines[i].trim_start();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = strip_export(line);
        let Some((key, value)) = line.split_once('=') else {
            errors.push(EnvFileError {
                line: number,
                message: format!("expected KEY=VALUE, found `{}`", line.trim_end()),
            });
            continue;
        };
        let key = key.trim();
        if !is_valid_key(key) {
            errors.push(EnvFileError {
                line: number,
                message: format!(
                    "invalid variable name `{key}`: use letters, digits and `_`, not starting with a digit"
                ),
            });
            continue;
        }
        let value = value.trim_start_matches([' ', '\t']);
        let parsed = match value.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                quoted(quote, &value[1..], &lines, &mut i).map_err(|message| EnvFileError {
                    line: number,
                    message,
                })
            }
            _ => Ok(unquoted(value)),
        };
        match parsed {
            Ok(value) => assignments.push(Assignment {
                line: number,
                key: key.to_string(),
                value,
            }),
            Err(error) => errors.push(error),
        }
    }
    (assignments, errors)
}

fn strip_export(line: &str) -> &str {
    match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    }
}

fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// An unquoted value: trimmed, with an inline comment (` #...`) removed.
fn unquoted(value: &str) -> String {
    let mut end = value.len();
    let bytes = value.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            end = i;
            break;
        }
    }
    value[..end].trim().to_string()
}

/// A quoted value starting just after its opening `quote` in `first`, continuing onto the
/// following lines (advancing `next_line`) until the closing quote.
fn quoted(
    quote: char,
    first: &str,
    lines: &[&str],
    next_line: &mut usize,
) -> Result<String, String> {
    let mut out = String::new();
    let mut current = first;
    loop {
        let mut chars = current.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                return after_closing_quote(&current[i + 1..]).map(|()| out);
            }
            if c == '\\' && quote == '"' {
                match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, e @ ('"' | '\\' | '$'))) => out.push(e),
                    // Unknown escapes stay as written, as most dotenv readers do.
                    Some((_, other)) => {
                        out.push('\\');
                        out.push(other);
                    }
                    // A backslash at the end of a line keeps the newline, as in the file.
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        match lines.get(*next_line) {
            Some(line) => {
                out.push('\n');
                current = line;
                *next_line += 1;
            }
            None => {
                return Err(format!(
                    "unterminated {quote}quoted{quote} value: no closing {quote}"
                ));
            }
        }
    }
}

/// After a closing quote only blanks and a comment may follow.
fn after_closing_quote(rest: &str) -> Result<(), String> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(format!("unexpected `{rest}` after the closing quote"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn one(text: &str) -> String {
        let p = pairs(text);
        assert_eq!(p.len(), 1, "{p:?}");
        p[0].1.clone()
    }

    #[test]
    fn reads_plain_lines_comments_blanks_and_export() {
        let text = "# comment\n\nA=1\n  export B = two \nexport\tC=3\n   # indented comment\n";
        assert_eq!(
            pairs(text),
            [
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "3".into())
            ]
        );
    }

    #[test]
    fn unquoted_values_are_trimmed_and_lose_inline_comments() {
        assert_eq!(one("A=  hello world  "), "hello world");
        assert_eq!(one("A=value # a comment"), "value");
        assert_eq!(one("A=value\t# a comment"), "value");
        assert_eq!(one("A=pass#word"), "pass#word");
        assert_eq!(one("A="), "");
        assert_eq!(one("A=x=y"), "x=y");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            one(r"A='a \n $B # not a comment'"),
            r"a \n $B # not a comment"
        );
        assert_eq!(one("A='x' # comment"), "x");
    }

    #[test]
    fn double_quotes_know_escapes_and_span_lines() {
        assert_eq!(one(r#"A="a\nb\tc\"d\\e\$f""#), "a\nb\tc\"d\\e$f");
        assert_eq!(one(r#"A="keep \q""#), "keep \\q");
        let text = "A=\"line one\nline two\"\nB=after\n";
        assert_eq!(
            pairs(text),
            [
                ("A".into(), "line one\nline two".into()),
                ("B".into(), "after".into())
            ]
        );
    }

    #[test]
    fn export_alone_is_a_key_prefix_only_when_followed_by_blank() {
        assert_eq!(pairs("exported=1"), [("exported".into(), "1".into())]);
    }

    #[test]
    fn reports_every_malformed_line_with_its_number() {
        let text = "OK=1\nno equals sign\n1BAD=x\nQ=\"open\nstill open";
        let errors = parse(text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4], "{errors:?}");
        assert!(errors[0].message.contains("expected KEY=VALUE"));
        assert!(errors[1].message.contains("invalid variable name `1BAD`"));
        assert!(errors[2].message.contains("unterminated"));
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error() {
        let errors = parse("A='x' y\n").unwrap_err();
        assert_eq!(errors[0].line, 1);
        assert!(errors[0].message.contains("after the closing quote"));
    }

    #[test]
    fn line_numbers_count_continuation_lines() {
        let errors = parse("A=\"one\ntwo\"\nbroken\n").unwrap_err();
        assert_eq!(errors[0].line, 3);
    }
}
