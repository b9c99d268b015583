//! Errors found while loading a manifest: each one names the file, the line when known,
//! and the dotted key it concerns, so a person can go straight to the mistake.

use std::fmt;
use std::path::PathBuf;

/// One problem in a manifest (or in a file it refers to, such as an env file).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the problem can be tied to one.
    pub line: Option<usize>,
    /// Dotted key such as `services.web.backoff.initial`; empty when the error concerns
    /// the file as a whole.
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            file: file.into(),
            line,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// `FILE:LINE: KEY: MESSAGE`, leaving out `:LINE` and `KEY: ` when they are unknown.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, sorted by line; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Stable sort: by file (the manifest itself first), then by line. Errors without a line
    /// concern a whole file and come before that file's other errors.
    pub(crate) fn sorted(mut errors: Vec<ConfigError>, manifest: &std::path::Path) -> Self {
        errors.sort_by(|a, b| {
            let key = |e: &ConfigError| (e.file != manifest, e.file.clone(), e.line.unwrap_or(0));
            key(a).cmp(&key(b))
        });
        let mut seen = std::collections::HashSet::new();
        errors.retain(|e| seen.insert(e.clone()));
        ConfigErrors(errors)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let full = ConfigError::new("/m/tend.toml", Some(3), "services.web.command", "bad");
        assert_eq!(
            full.to_string(),
            "/m/tend.toml:3: services.web.command: bad"
        );
        let no_line = ConfigError::new("/m/tend.toml", None, "services", "bad");
        assert_eq!(no_line.to_string(), "/m/tend.toml: services: bad");
        let no_key = ConfigError::new("/m/tend.toml", Some(1), "", "syntax");
        assert_eq!(no_key.to_string(), "/m/tend.toml:1: syntax");
    }

    #[test]
    fn sorted_puts_the_manifest_first_then_lines_in_order() {
        let m = Path::new("/m/tend.toml");
        let errors = ConfigErrors::sorted(
            vec![
                ConfigError::new("/m/a.env", Some(1), "", "env"),
                ConfigError::new(m, Some(9), "", "nine"),
                ConfigError::new(m, Some(2), "", "two"),
                ConfigError::new(m, None, "", "file"),
            ],
            m,
        );
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["file", "two", "nine", "env"]);
        assert_eq!(
            errors.to_string(),
            "/m/tend.toml: file\n/m/tend.toml:2: two\n/m/tend.toml:9: nine\n/m/a.env:1: env"
        );
    }
}
