//! The INI dialect supervisord reads: Python's `RawConfigParser` with
//! `inline_comment_prefixes=(';', '#')` and `strict=False`, re-implemented so that every
//! key and every line of a multi-line value keeps its line number.
//!
//! The rules, as Python applies them line by line:
//! - a line whose stripped text starts with `;` or `#` is a comment, even when indented;
//! - an inline `;` or `#` starts a comment only when whitespace precedes it (Python's
//!   search for it has a quirk, reproduced: each prefix advances to its next occurrence in
//!   turn, and the first round in which any occurrence qualifies wins);
//! - a line indented deeper than the line that started the current key continues its
//!   value (joined with `\n`); blank lines inside a value are kept, trailing ones dropped;
//! - `[name]` (anything up to the last `]`) opens a section; section names keep their
//!   case, keys are lowercased; `key = value` or `key: value`, split at the first `=`/`:`;
//! - a section or key seen again merges into the first one, the later value winning;
//! - `[DEFAULT]` holds values every section inherits.

/// A value as written, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    /// Index of the file (in read order).
    pub file: usize,
    /// The line of the key.
    pub line: usize,
    /// The line each `\n`-separated part of `text` came from (`lines[0] == line`).
    pub lines: Vec<usize>,
}

impl Value {
    /// The line holding char offset `offset` of `text` (for positions inside a
    /// multi-line value). Text added by expansions can shift this; it never panics.
    pub fn line_at(&self, text: &str, offset: usize) -> usize {
        let newlines = text.chars().take(offset).filter(|&c| c == '\n').count();
        self.lines
            .get(newlines)
            .or(self.lines.last())
            .copied()
            .unwrap_or(self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Where the section was first opened.
    pub file: usize,
    pub line: usize,
    /// Keys in the order first written.
    pub entries: Vec<(String, Value)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// What one file's reading found besides the values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadReport {
    pub errors: Vec<IniError>,
    /// Every section header in the file: (file, name, line).
    pub headers: Vec<(usize, String, usize)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniError {
    pub file: usize,
    pub line: usize,
    pub message: String,
}

/// Every section read so far, across files, merged as Python merges them.
#[derive(Debug, Default, Clone)]
pub struct Ini {
    pub sections: Vec<Section>,
    /// The `[DEFAULT]` section, when there is one.
    pub defaults: Option<Section>,
}

const DEFAULT_SECTION: &str = "DEFAULT";
const COMMENT_PREFIXES: [char; 2] = [';', '#'];

/// Where the current key's value is being collected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Defaults,
    Section(usize),
}

impl Ini {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// A key of `section`, or of `[DEFAULT]` when the section lacks it.
    pub fn get<'a>(&'a self, section: &'a Section, key: &str) -> Option<&'a Value> {
        section
            .get(key)
            .or_else(|| self.defaults.as_ref().and_then(|d| d.get(key)))
    }

    fn target_mut(&mut self, target: Target) -> &mut Section {
        match target {
            Target::Defaults => self.defaults.as_mut().expect("UNWRAP: opened before use"),
            Target::Section(i) => &mut self.sections[i],
        }
    }

    /// Read one file's text into the sections. Reports the errors found (a file without a
    /// section header stops at the first key; malformed lines are all reported) and the
    /// headers seen.
    pub fn read(&mut self, text: &str, file: usize) -> ReadReport {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // Python reads in text mode: \r\n and \r end lines too.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut errors = Vec::new();
        let mut headers = Vec::new();
        let mut current: Option<Target> = None;
        let mut key: Option<String> = None;
        let mut indent_level = 0usize;

        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let lineno = index + 1;
            let line: Vec<char> = raw.chars().collect();
            let comment_start = comment_start(&line);
            let value: String = line[..comment_start.unwrap_or(line.len())]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            if value.is_empty() {
                // A blank line inside a value is kept (unless it held a comment).
                if comment_start.is_none()
                    && let (Some(target), Some(k)) = (current, key.as_ref())
                {
                    append(self.target_mut(target), k, "", lineno);
                }
                continue;
            }
            let indent = line.iter().position(|c| !c.is_whitespace()).unwrap_or(0);
            if let (Some(target), Some(k)) = (current, key.as_ref())
                && indent > indent_level
            {
                append(self.target_mut(target), k, &value, lineno);
                continue;
            }
            indent_level = indent;
            if let Some(name) = section_header(&value) {
                headers.push((file, name.clone(), lineno));
                current = Some(
                    if let Some(i) = self.sections.iter().position(|s| s.name == name) {
                        Target::Section(i)
                    } else if name == DEFAULT_SECTION {
                        self.defaults.get_or_insert_with(|| Section {
                            name: name.clone(),
                            file,
                            line: lineno,
                            entries: Vec::new(),
                        });
                        Target::Defaults
                    } else {
                        self.sections.push(Section {
                            name,
                            file,
                            line: lineno,
                            entries: Vec::new(),
                        });
                        Target::Section(self.sections.len() - 1)
                    },
                );
                key = None;
                continue;
            }
            let Some(target) = current else {
                errors.push(IniError {
                    file,
                    line: lineno,
                    message: format!("`{}` comes before any [section] header", raw.trim_end()),
                });
                // Python stops reading the file here.
                break;
            };
            match split_option(&value) {
                Some((name, option_value)) if !name.is_empty() => {
                    let name = name.to_lowercase();
                    let section = self.target_mut(target);
                    let fresh = Value {
                        text: option_value.to_string(),
                        file,
                        line: lineno,
                        lines: vec![lineno],
                    };
                    match section.entries.iter_mut().find(|(k, _)| *k == name) {
                        Some((_, existing)) => *existing = fresh,
                        None => section.entries.push((name.clone(), fresh)),
                    }
                    key = Some(name);
                }
                Some(_) => errors.push(IniError {
                    file,
                    line: lineno,
                    message: format!("`{}` has no key before its `=`", raw.trim_end()),
                }),
                None => errors.push(IniError {
                    file,
                    line: lineno,
                    message: format!(
                        "`{}` is neither a [section] header nor a `key = value` line",
                        raw.trim_end()
                    ),
                }),
            }
        }

        // Join: Python strips trailing whitespace (and so trailing blank lines) of values.
        let finish = |section: &mut Section| {
            for (_, value) in section.entries.iter_mut().filter(|(_, v)| v.file == file) {
                let trimmed = value.text.trim_end().len();
                value.text.truncate(trimmed);
                let parts = value.text.matches('\n').count() + 1;
                value.lines.truncate(parts);
            }
        };
        self.sections.iter_mut().for_each(finish);
        if let Some(defaults) = self.defaults.as_mut() {
            finish(defaults);
        }
        ReadReport { errors, headers }
    }
}

fn append(section: &mut Section, key: &str, text: &str, line: usize) {
    if let Some((_, value)) = section.entries.iter_mut().find(|(k, _)| k == key) {
        value.text.push('\n');
        value.text.push_str(text);
        value.lines.push(line);
    }
}

/// Where a comment starts on `line`, if anywhere: the whole line when its stripped text
/// starts with a prefix, else an inline prefix preceded by whitespace, searched the way
/// Python's configparser searches.
fn comment_start(line: &[char]) -> Option<usize> {
    let first = line.iter().position(|c| !c.is_whitespace());
    if first.is_some_and(|i| COMMENT_PREFIXES.contains(&line[i])) {
        return Some(0);
    }
    // Each prefix's last position seen; None once it has no further occurrence.
    let mut positions: Vec<(char, Option<usize>)> =
        COMMENT_PREFIXES.iter().map(|&p| (p, None)).collect();
    let mut alive: Vec<bool> = vec![true; positions.len()];
    loop {
        let mut found: Option<usize> = None;
        for (slot, (prefix, last)) in positions.iter_mut().enumerate() {
            if !alive[slot] {
                continue;
            }
            let from = last.map_or(0, |i| i + 1);
            match line.iter().skip(from).position(|c| c == prefix) {
                None => alive[slot] = false,
                Some(offset) => {
                    let index = from + offset;
                    *last = Some(index);
                    if index == 0 || line[index - 1].is_whitespace() {
                        found = Some(found.map_or(index, |f: usize| f.min(index)));
                    }
                }
            }
        }
        if found.is_some() {
            return found;
        }
        if !alive.iter().any(|&a| a) {
            return None;
        }
    }
}

/// `[name]`: everything between the `[` and the last `]`, at least one character.
fn section_header(value: &str) -> Option<String> {
    let rest = value.strip_prefix('[')?;
    let close = rest.rfind(']')?;
    (close > 0).then(|| rest[..close].to_string())
}

/// `key = value` or `key: value`, split at the first `=` or `:`.
fn split_option(value: &str) -> Option<(&str, &str)> {
    let at = value.find(['=', ':'])?;
    Some((value[..at].trim_end(), value[at + 1..].trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Ini, Vec<IniError>) {
        let mut ini = Ini::default();
        let report = ini.read(text, 0);
        (ini, report.errors)
    }

    fn get<'a>(ini: &'a Ini, section: &str, key: &str) -> &'a Value {
        let s = ini
            .section(section)
            .unwrap_or_else(|| panic!("no [{section}]"));
        ini.get(s, key)
            .unwrap_or_else(|| panic!("no {key} in [{section}]"))
    }

    /// The same text Python 3.11's configparser read in the comments below.
    const SAMPLE: &str = "[s]
a = a#b #c ;d
b = x;y #z ;w
c = v ; c
d = multi
   line ; comment

   ; full comment
   third

e : colon = x
 [notsection]
[t] trailing junk
k=1
[t]
k=2
[DEFAULT]
dk=dv
[]]
x=1
";

    #[test]
    fn reads_like_python_configparser() {
        let (ini, errors) = read(SAMPLE);
        assert!(errors.is_empty(), "{errors:?}");
        // Python: {'a': 'a#b #c', 'b': 'x;y', 'c': 'v', 'd': 'multi\nline\n\nthird',
        //          'e': 'colon = x\n[notsection]'}
        assert_eq!(get(&ini, "s", "a").text, "a#b #c");
        assert_eq!(get(&ini, "s", "b").text, "x;y");
        assert_eq!(get(&ini, "s", "c").text, "v");
        let d = get(&ini, "s", "d");
        assert_eq!(d.text, "multi\nline\n\nthird");
        assert_eq!(d.lines, [5, 6, 7, 9]);
        assert_eq!(d.line_at(&d.text, d.text.find("third").unwrap()), 9);
        assert_eq!(get(&ini, "s", "e").text, "colon = x\n[notsection]");
        // Reopened sections merge, the later value winning; trailing junk after `]`.
        assert_eq!(get(&ini, "t", "k").text, "2");
        assert_eq!(get(&ini, "t", "k").line, 16);
        assert_eq!(ini.section("t").unwrap().line, 13);
        assert_eq!(get(&ini, "]", "x").text, "1");
        // [DEFAULT] values reach every section.
        assert_eq!(get(&ini, "s", "dk").text, "dv");
        assert_eq!(get(&ini, "t", "dk").text, "dv");
        let names: Vec<&str> = ini.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s", "t", "]"]);
    }

    #[test]
    fn keys_are_lowercased_sections_are_not() {
        let (ini, _) = read("[Program:X]\nCommand = a\n[program:x]\ncommand=b\n");
        assert_eq!(get(&ini, "Program:X", "command").text, "a");
        assert_eq!(get(&ini, "program:x", "command").text, "b");
    }

    #[test]
    fn inline_comments_need_whitespace_before_them() {
        let (ini, _) = read("[s]\na=bash -c 'x ; y'\nb=http://h/#frag\nc=x;y\nd=1\t# tab\n");
        assert_eq!(get(&ini, "s", "a").text, "bash -c 'x");
        assert_eq!(get(&ini, "s", "b").text, "http://h/#frag");
        assert_eq!(get(&ini, "s", "c").text, "x;y");
        assert_eq!(get(&ini, "s", "d").text, "1");
    }

    #[test]
    fn backslash_at_line_end_is_not_a_continuation() {
        let (ini, errors) = read("[s]\ncommand=a \\\nnext=1\n");
        assert!(errors.is_empty());
        assert_eq!(get(&ini, "s", "command").text, "a \\");
        assert_eq!(get(&ini, "s", "next").text, "1");
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        let (ini, errors) = read("[s]\r\na=1\r\nb=2");
        assert!(errors.is_empty());
        assert_eq!(get(&ini, "s", "a").text, "1");
        assert_eq!(get(&ini, "s", "b").line, 3);
    }

    #[test]
    fn malformed_lines_are_all_reported() {
        // Python: ParsingError for lines 2 and 3.
        let (_, errors) = read("[s]\nnoequals\n=x\nok=1\n");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3]);
        assert!(errors[0].message.contains("neither"));
        assert!(errors[1].message.contains("no key"));
    }

    #[test]
    fn a_key_before_any_section_stops_the_file() {
        // Python: MissingSectionHeaderError at line 3.
        let (ini, errors) = read("\n; c\nk=v\n[s]\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 3);
        assert!(ini.sections.is_empty());
    }

    #[test]
    fn later_files_merge_into_earlier_sections() {
        let mut ini = Ini::default();
        assert!(
            ini.read("[program:a]\ncommand=x\nuser=me\n", 0)
                .errors
                .is_empty()
        );
        let report = ini.read("[program:a]\ncommand=y\n", 1);
        assert!(report.errors.is_empty());
        assert_eq!(report.headers, [(1, "program:a".to_string(), 1)]);
        let a = ini.section("program:a").unwrap();
        assert_eq!((a.file, a.line), (0, 1));
        let command = a.get("command").unwrap();
        assert_eq!(
            (command.text.as_str(), command.file, command.line),
            ("y", 1, 2)
        );
        assert_eq!(a.get("user").unwrap().file, 0);
    }

    #[test]
    fn indented_header_continues_a_value_and_trailing_blanks_go() {
        let (ini, _) = read("[s]\nenv=A=1,\n  B=2\n\n\n[t]\n");
        let env = get(&ini, "s", "env");
        assert_eq!(env.text, "A=1,\nB=2");
        assert_eq!(env.lines, [2, 3]);
        assert!(ini.section("t").is_some());
    }
}
