//! `[include] files=` patterns, matched as Python's `glob.glob` (non-recursive) matches
//! them, since that is what supervisord calls:
//! - `*`, `?` and `[...]` (`[!...]` negates) match within one path component; `**` is
//!   just two `*`; a `[` without its `]` is a literal `[`;
//! - a name starting with `.` is only matched by a pattern component starting with `.`;
//! - a pattern without wildcards matches the path if it exists (a dangling symlink too);
//! - the caller sorts the matches (supervisord reads them in sorted order).

use std::path::{Path, PathBuf};

/// Every existing path `pattern` (absolute, or relative to the current directory)
/// matches, in no particular order.
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    if !has_magic(pattern) {
        let path = Path::new(pattern);
        let exists = if pattern.ends_with('/') {
            path.is_dir()
        } else {
            path.symlink_metadata().is_ok()
        };
        return if exists {
            vec![PathBuf::from(pattern)]
        } else {
            vec![]
        };
    }
    let (dir, base) = split(pattern);
    let dirs: Vec<String> = if dir.is_empty() {
        vec![String::new()]
    } else if dir != pattern && has_magic(dir) {
        glob(dir)
            .into_iter()
            .filter(|p| p.is_dir())
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    } else {
        vec![dir.to_string()]
    };
    let mut out = Vec::new();
    for dir in dirs {
        let names: Vec<String> = if has_magic(base) {
            matching_names(&dir, base)
        } else if base.is_empty() {
            if Path::new(&dir).is_dir() {
                vec![String::new()]
            } else {
                vec![]
            }
        } else if Path::new(&dir).join(base).symlink_metadata().is_ok() {
            vec![base.to_string()]
        } else {
            vec![]
        };
        for name in names {
            out.push(if dir.is_empty() {
                PathBuf::from(name)
            } else {
                Path::new(&dir).join(name)
            });
        }
    }
    out
}

fn has_magic(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Python's `os.path.split`: the part after the last `/`, and the part before it without
/// its trailing slashes (unless it is all slashes).
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        None => ("", path),
        Some(i) => {
            let head = &path[..=i];
            let trimmed = head.trim_end_matches('/');
            (
                if trimmed.is_empty() { head } else { trimmed },
                &path[i + 1..],
            )
        }
    }
}

fn matching_names(dir: &str, pattern: &str) -> Vec<String> {
    let listing = if dir.is_empty() { "." } else { dir };
    let Ok(entries) = std::fs::read_dir(listing) else {
        return vec![];
    };
    let hidden_ok = pattern.starts_with('.');
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| hidden_ok || !name.starts_with('.'))
        .filter(|name| fnmatch(name, pattern))
        .collect()
}

#[derive(Debug)]
enum Piece {
    Star,
    One,
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
    Char(char),
}

fn compile(pattern: &str) -> Vec<Piece> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !matches!(pieces.last(), Some(Piece::Star)) {
                    pieces.push(Piece::Star);
                }
            }
            '?' => pieces.push(Piece::One),
            '[' => {
                // The class ends at the first `]` after an optional `!` and a leading `]`.
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    pieces.push(Piece::Char('['));
                    continue;
                }
                let mut body = &chars[i..j];
                i = j + 1;
                let negate = body.first() == Some(&'!');
                if negate {
                    body = &body[1..];
                }
                let mut items = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        items.push((body[k], body[k + 2]));
                        k += 3;
                    } else {
                        items.push((body[k], body[k]));
                        k += 1;
                    }
                }
                pieces.push(Piece::Class { negate, items });
            }
            c => pieces.push(Piece::Char(c)),
        }
    }
    pieces
}

/// Python's `fnmatch.fnmatchcase` on one name.
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let pieces = compile(pattern);
    let name: Vec<char> = name.chars().collect();
    matches_at(&pieces, &name)
}

fn matches_at(pieces: &[Piece], name: &[char]) -> bool {
    match pieces.split_first() {
        None => name.is_empty(),
        Some((Piece::Star, rest)) => (0..=name.len()).any(|skip| matches_at(rest, &name[skip..])),
        Some((piece, rest)) => {
            let Some((&c, tail)) = name.split_first() else {
                return false;
            };
            let ok = match piece {
                Piece::One => true,
                Piece::Char(p) => *p == c,
                Piece::Class { negate, items } => {
                    // An empty class matches nothing; an empty negated one anything.
                    items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
                }
                Piece::Star => unreachable!("handled above"),
            };
            ok && matches_at(rest, tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("a.conf", "*.conf"));
        assert!(!fnmatch("a.conf.bak", "*.conf"));
        assert!(fnmatch("x1", "x?"));
        assert!(fnmatch("b", "[abc]"));
        assert!(!fnmatch("d", "[abc]"));
        assert!(fnmatch("d", "[!abc]"));
        assert!(fnmatch("5", "[0-9]"));
        assert!(fnmatch("]", "[]]"));
        assert!(fnmatch("-", "[a-]"));
        assert!(fnmatch("[x", "[x"), "unclosed [ is literal");
        assert!(fnmatch("anything", "**"));
        assert!(!fnmatch("", "?"));
        assert!(
            !fnmatch("a", "[!]"),
            "`[!]` has no closing `]`: it is literal"
        );
        assert!(fnmatch("[!]", "[!]"));
        assert!(!fnmatch("m", "[z-a]"), "a reversed range matches nothing");
        assert!(fnmatch("-", "[a-c-e]"));
        assert!(!fnmatch("d", "[a-c-e]"));
    }

    #[test]
    fn globs_a_directory_like_python() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["a.conf", "b.conf", ".hidden.conf", "c.ini"] {
            std::fs::write(d.join(name), "").unwrap();
        }
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/x.conf"), "").unwrap();
        let root = d.to_str().unwrap();
        let mut found = glob(&format!("{root}/*.conf"));
        found.sort();
        assert_eq!(found, [d.join("a.conf"), d.join("b.conf")]);
        assert_eq!(glob(&format!("{root}/.*.conf")), [d.join(".hidden.conf")]);
        assert_eq!(glob(&format!("{root}/*/x.conf")), [d.join("sub/x.conf")]);
        assert_eq!(glob(&format!("{root}/**/*.conf")), [d.join("sub/x.conf")]);
        assert_eq!(glob(&format!("{root}/c.ini")), [d.join("c.ini")]);
        assert!(glob(&format!("{root}/missing.conf")).is_empty());
        assert!(glob(&format!("{root}/nope/*.conf")).is_empty());
    }
}
