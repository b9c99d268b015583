//! Glob patterns on paths: `watch` and `watch_ignore` (and, through [`fnmatch`], the
//! supervisord importer's `[include] files=`). Pure string matching, no file system access.
//!
//! Within one path component, `*` matches any run of characters (a leading `.` too),
//! `?` one character and `[abc]`, `[a-z]`, `[!abc]` one of a set, as Python's
//! `fnmatch.fnmatchcase` (a `[` without its `]` is a literal `[`). A component that is
//! exactly `**` matches any number of components, none included. A pattern that matches a
//! directory matches everything below it: `src` covers `src/app/main.py`, as `.gitignore`
//! and most file watchers read a directory name.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
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

/// Python's `fnmatch.fnmatchcase` on one name (no `/` handling of its own).
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let pieces = compile(pattern);
    let name: Vec<char> = name.chars().collect();
    matches_at(&pieces, &name)
}

/// Every piece but `*` takes exactly one character, so when a later `*` is reached, the
/// choices made for an earlier one no longer matter: only the last `*` is ever retried.
/// That keeps a pattern of many stars linear per retry (`*a*a*a*a*b` against a long name
/// would otherwise try every way of splitting the name, exponentially many).
fn matches_at(pieces: &[Piece], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // The last `*` seen, and where in the name its run ends so far.
    let mut retry: Option<(usize, usize)> = None;
    while n < name.len() {
        match pieces.get(p) {
            Some(Piece::Star) => {
                retry = Some((p, n));
                p += 1;
                continue;
            }
            Some(piece) if one_matches(piece, name[n]) => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        match retry {
            // The star takes one more character and the rest is tried again.
            Some((star, end)) => {
                retry = Some((star, end + 1));
                p = star + 1;
                n = end + 1;
            }
            None => return false,
        }
    }
    pieces[p..].iter().all(|piece| *piece == Piece::Star)
}

fn one_matches(piece: &Piece, c: char) -> bool {
    match piece {
        Piece::One => true,
        Piece::Char(p) => *p == c,
        Piece::Class { negate, items } => {
            // An empty class matches nothing; an empty negated one anything.
            items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
        }
        Piece::Star => false,
    }
}

/// Whether a pattern (or one of its components) uses `*`, `?` or `[`.
pub fn has_magic(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// `**`: any number of components.
    AnyDepth,
    /// A name without wildcards.
    Literal(String),
    Glob(Vec<Piece>),
}

/// An absolute path pattern, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct PathPattern {
    /// As written in the manifest (relative or absolute), for messages and exporters.
    pub written: String,
    /// Absolute, `.` and `..` resolved.
    pub absolute: PathBuf,
    parts: Vec<Part>,
}

/// How a path relates to a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The pattern matches the path, or a directory the path is in.
    Matches,
    /// Not yet: a path below this one could match (the path is a directory on the way).
    Below,
    /// Neither the path nor anything below it can match.
    Outside,
}

impl PathPattern {
    /// `written` resolved against `base` (absolute). Errors name what is wrong.
    pub fn new(written: &str, base: &Path) -> Result<PathPattern, String> {
        if written.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if written.contains('\0') {
            return Err("must not contain a NUL byte".into());
        }
        let joined = base.join(written);
        let mut absolute = PathBuf::from("/");
        for component in joined.components() {
            match component {
                Component::Normal(name) => absolute.push(name),
                Component::ParentDir => {
                    absolute.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        let mut parts = Vec::new();
        for component in absolute.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            let Some(name) = name.to_str() else {
                return Err("is not valid UTF-8".into());
            };
            let part = if name == "**" {
                // `a/**/**/b` is `a/**/b`.
                if parts.last() == Some(&Part::AnyDepth) {
                    continue;
                }
                Part::AnyDepth
            } else if has_magic(name) {
                Part::Glob(compile(name))
            } else {
                Part::Literal(name.to_string())
            };
            parts.push(part);
        }
        Ok(PathPattern {
            written: written.to_string(),
            absolute,
            parts,
        })
    }

    /// The longest leading directory without wildcards: where watching must start. For a
    /// pattern without any wildcard, its parent (the pattern may name a file).
    pub fn static_prefix(&self) -> PathBuf {
        let mut prefix = PathBuf::from("/");
        let literal: Vec<&str> = self
            .parts
            .iter()
            .map_while(|p| match p {
                Part::Literal(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        let keep = if literal.len() == self.parts.len() {
            literal.len().saturating_sub(1)
        } else {
            literal.len()
        };
        for name in &literal[..keep] {
            prefix.push(name);
        }
        prefix
    }

    /// Whether `path` (absolute) matches, or is in a directory that matches.
    pub fn matches(&self, path: &Path) -> bool {
        self.relation(path) == Relation::Matches
    }

    /// How `path` (absolute) relates to the pattern: see [`Relation`].
    pub fn relation(&self, path: &Path) -> Relation {
        let names: Vec<&str> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_str().unwrap_or("\u{FFFD}")),
                _ => None,
            })
            .collect();
        relate(&self.parts, &names)
    }
}

fn relate(parts: &[Part], names: &[&str]) -> Relation {
    // Each (part, name) position is settled once: with several `**` the plain recursion
    // would try the same tails again for every way of splitting the names between them.
    let mut memo = vec![None; (parts.len() + 1) * (names.len() + 1)];
    relate_from(parts, names, 0, 0, &mut memo)
}

/// How `names[n..]` relates to `parts[p..]`.
fn relate_from(
    parts: &[Part],
    names: &[&str],
    p: usize,
    n: usize,
    memo: &mut [Option<Relation>],
) -> Relation {
    let slot = p * (names.len() + 1) + n;
    if let Some(known) = memo[slot] {
        return known;
    }
    let relation = match parts.get(p) {
        // The whole pattern matched this path or a directory above it.
        None => Relation::Matches,
        // `dir/**` covers `dir` itself too: `**` may take no names.
        Some(_) if n == names.len() => {
            if parts[p..].iter().all(|part| *part == Part::AnyDepth) {
                Relation::Matches
            } else {
                Relation::Below
            }
        }
        Some(Part::AnyDepth) => {
            // `**` takes none, one, two, … of the names; the best outcome wins.
            let mut best = Relation::Outside;
            for next in n..=names.len() {
                match relate_from(parts, names, p + 1, next, memo) {
                    Relation::Matches => {
                        best = Relation::Matches;
                        break;
                    }
                    Relation::Below => best = Relation::Below,
                    Relation::Outside => {}
                }
            }
            best
        }
        Some(Part::Literal(literal)) => {
            if names[n] == literal {
                relate_from(parts, names, p + 1, n + 1, memo)
            } else {
                Relation::Outside
            }
        }
        Some(Part::Glob(pieces)) => {
            let name: Vec<char> = names[n].chars().collect();
            if matches_at(pieces, &name) {
                relate_from(parts, names, p + 1, n + 1, memo)
            } else {
                Relation::Outside
            }
        }
    };
    memo[slot] = Some(relation);
    relation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> PathPattern {
        PathPattern::new(text, Path::new("/app")).unwrap()
    }

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
        assert!(fnmatch("abcabd", "*ab?"));
        assert!(fnmatch("aab", "*a*b"));
        assert!(!fnmatch("aab", "*a*c"));
        assert!(fnmatch("", "*"));
        assert!(fnmatch("x", "**x"));
    }

    /// Found by fuzz/run (values): a name matched against many stars took exponential
    /// time, and so did a path against many `**`.
    #[test]
    fn many_stars_do_not_take_exponential_time() {
        let name = "a".repeat(200);
        let stars = format!("{}b", "*a".repeat(20));
        let started = std::time::Instant::now();
        assert!(!fnmatch(&name, &stars));
        assert!(fnmatch(&format!("{name}b"), &stars));
        let deep = format!("/app/{}", ["d"; 60].join("/"));
        let many = format!("{}x", "**/*/".repeat(15));
        assert_eq!(pattern(&many).relation(Path::new(&deep)), Relation::Below);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    /// The matcher as it was before the fix: every split of the name tried.
    fn naive(pieces: &[Piece], name: &[char]) -> bool {
        match pieces.split_first() {
            None => name.is_empty(),
            Some((Piece::Star, rest)) => (0..=name.len()).any(|skip| naive(rest, &name[skip..])),
            Some((piece, rest)) => match name.split_first() {
                Some((&c, tail)) => one_matches(piece, c) && naive(rest, tail),
                None => false,
            },
        }
    }

    proptest::proptest! {
        #[test]
        fn the_linear_matcher_agrees_with_trying_every_split(
            name in "[ab\\]\\[!-]{0,8}",
            pattern in "[ab*?\\]\\[!-]{0,8}",
        ) {
            let chars: Vec<char> = name.chars().collect();
            proptest::prop_assert_eq!(
                matches_at(&compile(&pattern), &chars),
                naive(&compile(&pattern), &chars)
            );
        }
    }

    #[test]
    fn stars_stay_within_a_component_and_double_stars_cross() {
        let p = pattern("src/**/*.py");
        assert!(p.matches(Path::new("/app/src/main.py")), "** takes none");
        assert!(p.matches(Path::new("/app/src/a/b/c.py")));
        assert!(!p.matches(Path::new("/app/src/main.rs")));
        assert!(!p.matches(Path::new("/app/lib/main.py")));
        assert!(p.matches(Path::new("/app/src/.hidden.py")), "* takes a dot");
        let p = pattern("src/*.py");
        assert!(p.matches(Path::new("/app/src/main.py")));
        assert!(!p.matches(Path::new("/app/src/a/main.py")));
        let p = pattern("**/node_modules");
        assert!(p.matches(Path::new("/app/node_modules/x/index.js")));
        assert!(p.matches(Path::new("/app/web/node_modules")));
        assert!(!p.matches(Path::new("/app/web/modules")));
        let p = pattern("**");
        assert!(p.matches(Path::new("/app/anything/at/all")));
        assert!(!p.matches(Path::new("/elsewhere/x")));
    }

    #[test]
    fn a_directory_covers_what_is_in_it() {
        let p = pattern("config");
        assert!(p.matches(Path::new("/app/config")));
        assert!(p.matches(Path::new("/app/config/db/local.toml")));
        assert!(!p.matches(Path::new("/app/configs")));
        assert_eq!(p.relation(Path::new("/app")), Relation::Below);
        assert_eq!(p.relation(Path::new("/")), Relation::Below);
        assert_eq!(p.relation(Path::new("/app/src")), Relation::Outside);
    }

    #[test]
    fn relations_say_which_directories_can_hold_a_match() {
        let p = pattern("src/*/handlers/*.py");
        assert_eq!(p.relation(Path::new("/app/src")), Relation::Below);
        assert_eq!(p.relation(Path::new("/app/src/api")), Relation::Below);
        assert_eq!(
            p.relation(Path::new("/app/src/api/handlers")),
            Relation::Below
        );
        assert_eq!(
            p.relation(Path::new("/app/src/api/models")),
            Relation::Outside
        );
        assert_eq!(
            p.relation(Path::new("/app/src/api/handlers/x.py")),
            Relation::Matches
        );
        let p = pattern("src/**/*.py");
        assert_eq!(p.relation(Path::new("/app/src/a/b")), Relation::Below);
        assert_eq!(p.relation(Path::new("/app/docs")), Relation::Outside);
    }

    #[test]
    fn prefixes_and_resolution() {
        assert_eq!(
            pattern("src/**/*.py").static_prefix(),
            Path::new("/app/src")
        );
        assert_eq!(pattern("*.py").static_prefix(), Path::new("/app"));
        assert_eq!(pattern("config.toml").static_prefix(), Path::new("/app"));
        assert_eq!(pattern("a/b/c").static_prefix(), Path::new("/app/a/b"));
        assert_eq!(
            pattern("./src/../lib/*.js").absolute,
            Path::new("/app/lib/*.js")
        );
        assert_eq!(
            pattern("/etc/app/*.conf").static_prefix(),
            Path::new("/etc/app")
        );
        let p = pattern("../shared/**");
        assert!(p.matches(Path::new("/shared/x/y")));
        assert_eq!(pattern("a/**/**/b").parts, pattern("a/**/b").parts);
        assert!(PathPattern::new(" ", Path::new("/app")).is_err());
        assert!(pattern("node_modules/**").matches(Path::new("/app/node_modules")));
    }
}
