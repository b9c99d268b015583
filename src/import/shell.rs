//! Telling bash-only syntax apart from POSIX sh. process-compose runs commands with
//! `bash -c`; tend's `shell = true` uses `/bin/sh -c`, which is dash on Debian and Ubuntu
//! and busybox ash on Alpine. A command that needs bash keeps bash (`args = ["bash", "-c",
//! ...]`); every other one becomes an ordinary `command` with `shell = true`.
//!
//! The check looks only at unquoted text, for constructs a POSIX shell rejects or reads
//! differently. It can miss bash-isms (docs/migrating.md says so: "bash-only syntax keeps
//! bash" covers only what this finds); it should not flag POSIX commands.

/// The first bash-only construct in `command`, named for a message.
pub(crate) fn bash_only(command: &str) -> Option<&'static str> {
    let unquoted = unquoted_text(command);
    let words: Vec<&str> = unquoted
        .split(|c: char| c.is_whitespace() || ";&|()".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let checks: [(&str, bool); 11] = [
        ("`[[ ... ]]`", words.contains(&"[[")),
        ("`source`", command_words(&unquoted).any(|w| w == "source")),
        (
            "`function`",
            command_words(&unquoted).any(|w| w == "function"),
        ),
        (
            "process substitution `<(...)`",
            unquoted.contains("<(") || unquoted.contains(">("),
        ),
        ("`&>` redirection", unquoted.contains("&>")),
        ("`|&`", unquoted.contains("|&")),
        ("an array `=(...)`", unquoted.contains("=(")),
        ("`((...))` arithmetic", has_arith_command(&unquoted)),
        ("brace expansion `{a,b}`", has_brace_expansion(&unquoted)),
        ("`==` in a test", words.contains(&"==")),
        (
            "`pipefail`, `shopt` or `declare`",
            words
                .iter()
                .any(|w| matches!(*w, "pipefail" | "shopt" | "declare")),
        ),
    ];
    checks
        .into_iter()
        .find(|(_, hit)| *hit)
        .map(|(what, _)| what)
}

/// The first word of each simple command.
fn command_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', ';', '&', '|', '(', ')'])
        .filter_map(|part| part.split_whitespace().next())
}

fn has_arith_command(text: &str) -> bool {
    text.match_indices("((")
        .any(|(i, _)| !text[..i].ends_with('$'))
}

fn has_brace_expansion(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{'
            && (i == 0 || bytes[i - 1] != b'$')
            && let Some(len) = text[i + 1..].find('}')
        {
            let inner = &text[i + 1..i + 1 + len];
            if inner.contains(',') && !inner.contains(char::is_whitespace) {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// `text` with quoted parts (and comments) blanked out, so only shell syntax is left.
fn unquoted_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut at_word_start = true;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
                out.push(' ');
            }
            '"' => {
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        break;
                    }
                }
                out.push(' ');
            }
            '\\' => {
                chars.next();
                out.push(' ');
            }
            '#' if at_word_start => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            c => out.push(c),
        }
        at_word_start = out.ends_with(|c: char| c.is_whitespace() || ";&|(".contains(c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_commands_pass() {
        for cmd in [
            "npm run dev",
            "NV=$(nats-server -v) && echo Found NATS: ${NV}",
            "for i in 0 1 2; do\n  cat > n${i}.conf <<EOF\nx { y }\nEOF\ndone",
            "echo '{\"a\":1,\"b\":2}' | jq .",
            "set -e\n.venv/bin/ruff check .\ncd web && npm run lint",
            "echo $((1 + 2)) # a comment with [[ and {a,b}",
            "test \"$A\" = \"==\"",
            "[ -f x ] && . ./env.sh",
        ] {
            assert_eq!(bash_only(cmd), None, "{cmd}");
        }
    }

    #[test]
    fn bash_constructs_are_found() {
        for (cmd, what) in [
            ("if [[ -f x ]]; then y; fi", "`[[ ... ]]`"),
            ("source .venv/bin/activate && serve", "`source`"),
            ("diff <(a) <(b)", "process substitution `<(...)`"),
            ("serve &> log", "`&>` redirection"),
            ("mkdir -p dir/{a,b}", "brace expansion `{a,b}`"),
            ("set -o pipefail; a | b", "`pipefail`, `shopt` or `declare`"),
            ("arr=(a b); echo ${arr[0]}", "an array `=(...)`"),
            ("[ \"$X\" == y ]", "`==` in a test"),
            ("((i++))", "`((...))` arithmetic"),
        ] {
            assert_eq!(bash_only(cmd), Some(what), "{cmd}");
        }
    }
}
