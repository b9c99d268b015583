//! The two ways supervisord cuts text into words, both Python's `shlex` in POSIX mode:
//!
//! - `command=` is split with `shlex.split`: whitespace separates words, quotes group,
//!   a backslash escapes, and there are no comments;
//! - `environment=` is read by a shlex lexer in its *default* mode, where only word
//!   characters (letters, digits, `_`, Latin-1 letters, plus `/.+-():` that supervisord
//!   adds) form words, every other character is a word of its own, and `#` starts a
//!   comment that runs to the end of the line.
//!
//! This is a re-implementation of that state machine, not of a POSIX shell: inside double
//! quotes a backslash only escapes `"` and `\` (so `"\$"` stays `\$`, unlike `sh`).

/// One word and where it starts (in chars from the start of the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub start: usize,
}

const WHITESPACE: &[char] = &[' ', '\t', '\r', '\n'];
const LATIN1_LETTERS: &str = "ßàáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Between,
    Word,
    Quote(char),
    Escape,
    End,
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    state: State,
    /// `shlex.split` mode: any character that is not whitespace continues a word.
    whitespace_split: bool,
    /// `#` starts a comment (default mode only).
    comments: bool,
    /// Characters added to the word characters.
    extra_word: &'static str,
    /// A punctuation character read while finishing a word: the next token.
    pending: Option<Token>,
}

impl Lexer {
    fn is_word(&self, c: char) -> bool {
        c.is_ascii_alphanumeric()
            || c == '_'
            || LATIN1_LETTERS.contains(c)
            || self.extra_word.contains(c)
    }

    fn skip_line(&mut self) {
        while let Some(&c) = self.chars.get(self.pos) {
            self.pos += 1;
            if c == '\n' {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, String> {
        if let Some(token) = self.pending.take() {
            return Ok(Some(token));
        }
        let mut quoted = false;
        let mut text = String::new();
        let mut start: Option<usize> = None;
        // Where an escape returns to: a word, or the double quotes it was found in.
        let mut after_escape = State::Word;
        loop {
            let at = self.pos;
            let next = self.chars.get(at).copied();
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
                    Some('#') if self.comments => self.skip_line(),
                    Some('\\') => {
                        start.get_or_insert(at);
                        after_escape = State::Word;
                        self.state = State::Escape;
                    }
                    Some(c) if self.is_word(c) => {
                        start.get_or_insert(at);
                        text.push(c);
                        self.state = State::Word;
                    }
                    Some(c @ ('\'' | '"')) => {
                        start.get_or_insert(at);
                        self.state = State::Quote(c);
                    }
                    Some(c) if self.whitespace_split => {
                        start.get_or_insert(at);
                        text.push(c);
                        self.state = State::Word;
                    }
                    Some(c) => {
                        // A punctuation character is a token by itself.
                        start.get_or_insert(at);
                        text.push(c);
                        break;
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
                    Some('#') if self.comments => {
                        self.skip_line();
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
                    Some(c) if self.whitespace_split || self.is_word(c) => text.push(c),
                    Some(c) => {
                        self.pending = Some(Token {
                            text: c.to_string(),
                            start: at,
                        });
                        self.state = State::Between;
                        if !text.is_empty() || quoted {
                            break;
                        }
                    }
                },
            }
        }
        if text.is_empty() && !quoted {
            return Ok(None);
        }
        Ok(Some(Token {
            text,
            start: start.unwrap_or(0),
        }))
    }

    fn tokens(mut self) -> Result<Vec<Token>, String> {
        let mut out = Vec::new();
        while let Some(token) = self.next_token()? {
            out.push(token);
        }
        Ok(out)
    }
}

/// `shlex.split(text)`: the argv supervisord executes for `command=`.
pub fn split_command(text: &str) -> Result<Vec<String>, String> {
    Lexer {
        chars: text.chars().collect(),
        pos: 0,
        state: State::Between,
        whitespace_split: true,
        comments: false,
        extra_word: "",
        pending: None,
    }
    .tokens()
    .map(|tokens| tokens.into_iter().map(|t| t.text).collect())
}

/// The tokens supervisord's `environment=` parser sees.
pub fn key_value_tokens(text: &str) -> Result<Vec<Token>, String> {
    Lexer {
        chars: text.chars().collect(),
        pos: 0,
        state: State::Between,
        whitespace_split: false,
        comments: true,
        extra_word: "/.+-():",
        pending: None,
    }
    .tokens()
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

/// `KEY=val,KEY2="v a l"` as supervisord reads it: tokens in threes (key, `=`, value),
/// skipping one token between pairs whatever it is. Later duplicates replace earlier
/// values (in the earlier position), as in a Python dict.
pub fn key_value_pairs(text: &str) -> Result<Vec<Pair>, String> {
    let tokens = key_value_tokens(text)?;
    let mut pairs: Vec<Pair> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if i + 3 > tokens.len() || tokens[i + 1].text != "=" {
            let rest: Vec<&str> = tokens[i..].iter().map(|t| t.text.as_str()).collect();
            return Err(format!(
                "expected KEY=value pairs separated by commas, found `{}`",
                rest.join(" ")
            ));
        }
        let odd_separator = tokens
            .get(i + 3)
            .filter(|t| t.text != ",")
            .map(|t| t.text.clone());
        let pair = Pair {
            key: tokens[i].text.clone(),
            value: tokens[i + 2].text.clone(),
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
    fn key_value_tokens_follow_python_shlex_default_mode() {
        assert_eq!(texts("A=1,B=2"), ["A", "=", "1", ",", "B", "=", "2"]);
        assert_eq!(
            texts(r#"foo="",bar=a"#),
            ["foo", "=", "", ",", "bar", "=", "a"]
        );
        // `)` is one of the word characters supervisord adds, so this is one word.
        assert_eq!(texts("'')abc"), [")abc"]);
        assert_eq!(texts("PATH=/usr/bin:/bin"), ["PATH", "=", "/usr/bin:/bin"]);
        assert_eq!(
            texts("U=http://x?y=1"),
            ["U", "=", "http://x", "?", "y", "=", "1"]
        );
        assert_eq!(texts("A=x#y,B=2\nC=3"), ["A", "=", "x", "C", "=", "3"]);
        assert_eq!(texts("A=é€"), ["A", "=", "é", "€"]);
        assert_eq!(
            texts(r#"A="a,b" , B='c d'"#),
            ["A", "=", "a,b", ",", "B", "=", "c d"]
        );
        assert_eq!(texts(r"A=a\ b"), ["A", "=", "a b"]);
        let starts: Vec<usize> = key_value_tokens("A=1,\n  BB=2")
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
    }
}
