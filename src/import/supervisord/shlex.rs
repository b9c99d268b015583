//! The two ways supervisord cuts text into words, both Python's `shlex`, in two modes:
//!
//! - `command=` is split with `shlex.split`, in POSIX mode: whitespace separates words,
//!   quotes group (and are removed), a backslash escapes, and there are no comments;
//! - `environment=` is read by `shlex.shlex(text)`, whose default is *non-POSIX* mode:
//!   only word characters (ASCII letters and digits, `_`, plus `/.+-():` that supervisord
//!   adds) form words; a quote starts a token that runs to the matching quote and keeps
//!   both quotes; a quote inside a word is an ordinary character of it; there are no
//!   escapes (a backslash is a token of its own, and does nothing inside quotes); every
//!   other character is a token of its own; `#` starts a comment that runs to the end of
//!   the line (inside a word, the word goes on after it).
//!
//! These are re-implementations of those state machines, not of a POSIX shell: inside
//! double quotes `shlex.split` only lets a backslash escape `"` and `\` (so `"\$"` stays
//! `\$`, unlike `sh`).

/// One word and where it starts (in chars from the start of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub start: usize,
}

const WHITESPACE: &[char] = &[' ', '\t', '\r', '\n'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Between,
    Word,
    Quote(char),
    Escape,
    End,
}

/// `shlex.split`'s lexer: POSIX mode with `whitespace_split`, no comments.
struct Lexer {
    chars: Vec<char>,
    pos: usize,
    state: State,
}

impl Lexer {
    fn next_token(&mut self) -> Result<Option<String>, String> {
        let mut quoted = false;
        let mut text = String::new();
        // Where an escape returns to: a word, or the double quotes it was found in.
        let mut after_escape = State::Word;
        loop {
            let next = self.chars.get(self.pos).copied();
            if next.is_some() {
                self.pos += 1;
            }
            match self.state {
                State::End => {
                    text.clear();
                    break;
                }
                State::Between => match next {
                    None => {
                        self.state = State::End;
                        break;
                    }
                    Some(c) if WHITESPACE.contains(&c) => {
                        if !text.is_empty() || quoted {
                            break;
                        }
                    }
                    Some('\\') => {
                        after_escape = State::Word;
                        self.state = State::Escape;
                    }
                    Some(c @ ('\'' | '"')) => self.state = State::Quote(c),
                    Some(c) => {
                        text.push(c);
                        self.state = State::Word;
                    }
                },
                State::Quote(quote) => {
                    quoted = true;
                    match next {
                        None => return Err("no closing quotation".into()),
                        Some(c) if c == quote => self.state = State::Word,
                        Some('\\') if quote == '"' => {
                            after_escape = State::Quote(quote);
                            self.state = State::Escape;
                        }
                        Some(c) => text.push(c),
                    }
                }
                State::Escape => match next {
                    None => return Err("no character after the final backslash".into()),
                    Some(c) => {
                        // Inside quotes only the quote itself and the backslash are escaped.
                        if let State::Quote(quote) = after_escape
                            && c != '\\'
                            && c != quote
                        {
                            text.push('\\');
                        }
                        text.push(c);
                        self.state = after_escape;
                    }
                },
                State::Word => match next {
                    None => {
                        self.state = State::End;
                        break;
                    }
                    Some(c) if WHITESPACE.contains(&c) => {
                        self.state = State::Between;
                        if !text.is_empty() || quoted {
                            break;
                        }
                    }
                    Some(c @ ('\'' | '"')) => self.state = State::Quote(c),
                    Some('\\') => {
                        after_escape = State::Word;
                        self.state = State::Escape;
                    }
                    Some(c) => text.push(c),
                },
            }
        }
        if text.is_empty() && !quoted {
            return Ok(None);
        }
        Ok(Some(text))
    }
}

/// `shlex.split(text)`: the argv supervisord executes for `command=`.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        state: State::Between,
    };
    let mut out = Vec::new();
    while let Some(word) = lexer.next_token()? {
        out.push(word);
    }
    Ok(out)
}

/// A word character of supervisord's `environment=` lexer: non-POSIX shlex's
/// `wordchars` (ASCII only: the Latin-1 letters are added in POSIX mode alone) plus the
/// `/.+-():` supervisord adds.
fn is_env_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || "/.+-():".contains(c)
}

/// The tokens supervisord's `environment=` parser sees: Python's
/// `shlex.shlex(text)` (non-POSIX) with `/.+-():` added to its word characters.
/// Quoted tokens keep their quotes, as Python's do.
pub fn key_value_tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut pos = 0;
    // `#`: skip the rest of the line, its line break included.
    let skip_line = |pos: &mut usize| {
        while let Some(&c) = chars.get(*pos) {
            *pos += 1;
            if c == '\n' {
                break;
            }
        }
    };
    while let Some(&c) = chars.get(pos) {
        let start = pos;
        pos += 1;
        if WHITESPACE.contains(&c) {
            continue;
        }
        if c == '#' {
            skip_line(&mut pos);
            continue;
        }
        let mut text = String::from(c);
        if c == '\'' || c == '"' {
            // To the matching quote, both kept; nothing is escaped.
            loop {
                let Some(&next) = chars.get(pos) else {
                    return Err("no closing quotation".into());
                };
                pos += 1;
                text.push(next);
                if next == c {
                    break;
                }
            }
        } else if is_env_word(c) {
            // Word characters and quotes, across comments, up to anything else.
            while let Some(&next) = chars.get(pos) {
                if next == '#' {
                    pos += 1;
                    skip_line(&mut pos);
                } else if is_env_word(next) || next == '\'' || next == '"' {
                    pos += 1;
                    text.push(next);
                } else {
                    break;
                }
            }
        }
        // Anything else is a token of one character.
        tokens.push(Token { text, start });
    }
    Ok(tokens)
}

/// One `KEY=value` of an `environment=` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    pub value: String,
    /// Char offset of the key in the text.
    pub start: usize,
    /// What stood where a `,` belongs after this pair, when it was something else
    /// (supervisord skips that token unread, which usually means a value was cut short).
    pub odd_separator: Option<String>,
}

/// `KEY=val,KEY2="v a l"` as supervisord reads it (`datatypes.dict_of_key_value_pairs`):
/// tokens in threes (key, `=`, value), skipping one token between pairs whatever it is,
/// and `'` and `"` stripped from both ends of each value (not of keys). Later duplicates
/// replace earlier values (in the earlier position), as in a Python dict.
pub fn key_value_pairs(text: &str) -> Result<Vec<Pair>, String> {
    let tokens = key_value_tokens(text)?;
    let mut pairs: Vec<Pair> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i + 3 > tokens.len() || tokens[i + 1].text != "=" {
            let rest: Vec<&str> = tokens[i..].iter().map(|t| t.text.as_str()).collect();
            let mut message = format!(
                "supervisord refuses it (\"Unexpected end of key/value pairs\"): it reads KEY=value pairs separated by commas, and finds `{}` where the next pair belongs",
                rest.join(" ")
            );
            if let Some(previous) = i.checked_sub(4).map(|p| &tokens[p..p + 4])
                && previous[3].text != ","
            {
                message.push_str(&format!(
                    " (`{}` after the value of `{}` is a token of its own: a value is one quoted string, or only ASCII letters, digits and `_/.+-():`)",
                    previous[3].text, previous[0].text
                ));
            }
            return Err(message);
        }
        let odd_separator = tokens
            .get(i + 3)
            .filter(|t| t.text != ",")
            .map(|t| t.text.clone());
        let pair = Pair {
            key: tokens[i].text.clone(),
            value: tokens[i + 2].text.trim_matches(['\'', '"']).to_string(),
            start: tokens[i].start,
            odd_separator,
        };
        match pairs.iter_mut().find(|p| p.key == pair.key) {
            Some(existing) => {
                existing.value = pair.value;
                existing.odd_separator = pair.odd_separator;
            }
            None => pairs.push(pair),
        }
        i += 4;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<String> {
        split_command(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn texts(text: &str) -> Vec<String> {
        key_value_tokens(text)
            .unwrap()
            .into_iter()
            .map(|t| t.text)
            .collect()
    }

    fn pairs(text: &str) -> Vec<(String, String)> {
        key_value_pairs(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // Expected values below were produced with Python 3.11's shlex.
    #[test]
    fn split_follows_python_shlex_split() {
        assert_eq!(split("a b  c"), ["a", "b", "c"]);
        assert_eq!(
            split("bash -c 'echo $HOME; ls'"),
            ["bash", "-c", "echo $HOME; ls"]
        );
        assert_eq!(split(r#"a "b c" d"#), ["a", "b c", "d"]);
        assert_eq!(split(r#"a"b"'c'd"#), ["abcd"]);
        assert_eq!(split(r#"x "" y"#), ["x", "", "y"]);
        assert_eq!(split(r"a\ b"), ["a b"]);
        assert_eq!(split(r#""a\"b" "\$x" "\\""#), [r#"a"b"#, r"\$x", r"\"]);
        assert_eq!(split(r"'a\b'"), [r"a\b"]);
        assert_eq!(split("a #b c"), ["a", "#b", "c"], "no comments in split");
        assert_eq!(split("one\ntwo\tthree"), ["one", "two", "three"]);
        assert_eq!(split("  "), Vec::<String>::new());
        assert_eq!(
            split("--hostname 'main@%h' x=1,2"),
            ["--hostname", "main@%h", "x=1,2"]
        );
        assert!(split_command("a 'b").unwrap_err().contains("closing"));
        assert!(split_command("a \"b").unwrap_err().contains("closing"));
        assert!(split_command("a \\").unwrap_err().contains("backslash"));
    }

    #[test]
    fn key_value_tokens_follow_python_non_posix_shlex() {
        assert_eq!(texts("A=1,B=2"), ["A", "=", "1", ",", "B", "=", "2"]);
        // Quoted tokens keep their quotes.
        assert_eq!(
            texts(r#"foo="",bar=a"#),
            ["foo", "=", r#""""#, ",", "bar", "=", "a"]
        );
        // A quoted token ends at its closing quote: `)` then starts a word (it is one of
        // the word characters supervisord adds).
        assert_eq!(texts("'')abc"), ["''", ")abc"]);
        assert_eq!(texts("PATH=/usr/bin:/bin"), ["PATH", "=", "/usr/bin:/bin"]);
        assert_eq!(
            texts("U=http://x?y=1"),
            ["U", "=", "http://x", "?", "y", "=", "1"]
        );
        // A comment inside a word skips the line and the word goes on after it.
        assert_eq!(texts("A=x#y,B=2\nC=3"), ["A", "=", "xC", "=", "3"]);
        assert_eq!(texts("A=x #y,B=2\nC=3"), ["A", "=", "x", "C", "=", "3"]);
        assert_eq!(
            texts(r#"A="x#y",B=2"#),
            ["A", "=", r#""x#y""#, ",", "B", "=", "2"]
        );
        // Only ASCII letters are word characters (Latin-1 ones are added in POSIX mode).
        assert_eq!(texts("A=é€"), ["A", "=", "é", "€"]);
        assert_eq!(texts("A=aé,B=1"), ["A", "=", "a", "é", ",", "B", "=", "1"]);
        assert_eq!(
            texts(r#"A="a,b" , B='c d'"#),
            ["A", "=", r#""a,b""#, ",", "B", "=", "'c d'"]
        );
        // No escapes: a backslash is a token of its own, and plain text inside quotes.
        assert_eq!(texts(r"A=a\ b"), ["A", "=", "a", r"\", "b"]);
        assert_eq!(texts(r#"A="it's \\""#), ["A", "=", r#""it's \\""#]);
        assert_eq!(texts(r#"A="it's \""#), ["A", "=", r#""it's \""#]);
        // Quotes inside a word are characters of it.
        assert_eq!(texts(r#"A=a'b"c"#), ["A", "=", r#"a'b"c"#]);
        assert_eq!(texts("A=a'b c'"), ["A", "=", "a'b", "c'"]);
        assert_eq!(texts(r#"A=a"b#c""#), ["A", "=", r#"a"b"#]);
        // Two quoted strings side by side are two tokens.
        assert_eq!(
            texts(r#"A="a"'b',B=1"#),
            ["A", "=", r#""a""#, "'b'", ",", "B", "=", "1"]
        );
        assert_eq!(
            key_value_tokens("A='x").unwrap_err(),
            "no closing quotation"
        );
        assert_eq!(
            key_value_tokens(r#"A=1,B="x"#).unwrap_err(),
            "no closing quotation"
        );
        assert_eq!(texts(r#"A=x""#), ["A", "=", r#"x""#]);
        let starts: Vec<usize> = key_value_tokens("A=1,\n  BB=\"2\"")
            .unwrap()
            .iter()
            .map(|t| t.start)
            .collect();
        assert_eq!(starts, [0, 1, 2, 3, 7, 9, 10]);
    }

    #[test]
    fn pairs_are_read_in_threes() {
        assert_eq!(pairs("A=1,B=2"), kv(&[("A", "1"), ("B", "2")]));
        assert_eq!(
            pairs(r#"UWSGI_DEB_CONFNAME="weblate",UWSGI_DEB_CONFNAMESPACE="app""#),
            kv(&[
                ("UWSGI_DEB_CONFNAME", "weblate"),
                ("UWSGI_DEB_CONFNAMESPACE", "app")
            ])
        );
        assert_eq!(pairs(""), kv(&[]));
        assert_eq!(pairs("A=1,"), kv(&[("A", "1")]));
        assert_eq!(pairs("A=1,A=2"), kv(&[("A", "2")]));
        assert_eq!(pairs("A=\"\""), kv(&[("A", "")]));
        assert_eq!(pairs("A==1"), kv(&[("A", "=")]));
        // The token after a pair is skipped whatever it is: Python's supervisord reads
        // {'U': 'http://x', 'y': '1'} here.
        let cut = key_value_pairs("U=http://x?y=1").unwrap();
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[0].value, "http://x");
        assert_eq!(cut[0].odd_separator.as_deref(), Some("?"));
        assert_eq!((cut[1].key.as_str(), cut[1].value.as_str()), ("y", "1"));
        assert!(key_value_pairs("A=").is_err());
        assert!(key_value_pairs("A").is_err());
        assert!(key_value_pairs("A:1").is_err());
        assert!(key_value_pairs("A='x").is_err());
        assert!(key_value_pairs("A=1 B=2").is_err());
    }

    /// Every expected value here is what supervisord 4.3.0's
    /// `datatypes.dict_of_key_value_pairs` returns (or that it raises ValueError).
    #[test]
    fn pairs_are_what_supervisord_reads() {
        // Quote characters are stripped from both ends of a value, however many.
        assert_eq!(pairs(r#"A="it's \\""#), kv(&[("A", r"it's \\")]));
        assert_eq!(pairs(r#"A="it's \""#), kv(&[("A", r"it's \")]));
        assert_eq!(pairs(r#"A=a'b"c"#), kv(&[("A", r#"a'b"c"#)]));
        assert_eq!(pairs(r#"A="'x'""#), kv(&[("A", "x")]));
        assert_eq!(pairs(r#"A='a"b'"#), kv(&[("A", r#"a"b"#)]));
        assert_eq!(pairs(r"A=\"), kv(&[("A", r"\")]));
        assert_eq!(pairs(r#"A=''"""#), kv(&[("A", "")]));
        assert_eq!(pairs("A=a'b c'"), kv(&[("A", "a'b")]));
        assert_eq!(pairs("A=é€"), kv(&[("A", "é")]));
        // ...but not from keys.
        assert_eq!(pairs("A=1,'B'=2"), kv(&[("A", "1"), ("'B'", "2")]));
        // Refused: "Unexpected end of key/value pairs".
        for text in [
            r#"A="a"'b',B=1"#,
            "A=aé,B=1",
            "A=x#y,B=2\nC=3",
            r"A=a\ b",
            "'')abc",
        ] {
            let message = key_value_pairs(text).expect_err(text);
            assert!(
                message.contains("Unexpected end of key/value pairs"),
                "{text}: {message}"
            );
        }
        let message = key_value_pairs("A=aé,B=1").unwrap_err();
        assert!(message.contains("finds `, B = 1`"), "{message}");
        assert!(
            message.contains("`é` after the value of `A` is a token of its own"),
            "{message}"
        );
    }
}
