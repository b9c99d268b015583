//! `[include] files=` patterns, matched as Python's `glob.glob` (non-recursive) matches
//! them, since that is what supervisord calls:
//! - `*`, `?` and `[...]` (`[!...]` negates) match within one path component; `**` is
//!   just two `*`; a `[` without its `]` is a literal `[`;
//! - a name starting with `.` is only matched by a pattern component starting with `.`;
//! - a pattern without wildcards matches the path if it exists (a dangling symlink too);
//! - the caller sorts the matches (supervisord reads them in sorted order).

use std::path::{Path, PathBuf};

use crate::config::glob::{fnmatch, has_magic};

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

#[cfg(test)]
mod tests {
    use super::*;

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
