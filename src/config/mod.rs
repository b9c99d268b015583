//! The manifest: its model, loading from TOML/YAML/JSON, interpolation and validation.
//! This is the one source of truth for what tend supervises; it does no supervision itself.
//!
//! Loading runs in stages, each in its own module: `document` parses any format into a
//! tree that knows every line, `raw` gives it serde types (also the JSON Schema), and
//! `validate` turns those into the [`model`], reporting every mistake at once.

pub mod cron;
pub(crate) mod document;
pub mod duration;
pub mod envfile;
pub mod error;
pub mod events;
pub mod glob;
pub mod graph;
pub mod interpolate;
pub mod model;
pub mod plan;
pub(crate) mod raw;
pub mod signal;
pub mod size;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors};
pub use graph::start_order;
pub use model::Manifest;
pub(crate) use validate::{did_you_mean, edit_distance};

pub use document::Format;

/// File names [`find_manifest`] looks for, in order of preference.
pub const MANIFEST_NAMES: [&str; 4] = ["tend.toml", "tend.yaml", "tend.yml", "tend.json"];

/// Load and validate the manifest at `path`, interpolating `${VAR}` from tend's environment.
pub fn load(path: &Path) -> Result<Manifest, ConfigErrors> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load`] with `env` standing in for tend's environment (tests, or a caller that wants
/// to control interpolation). Every error found is returned, sorted by line.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Manifest, ConfigErrors> {
    let whole_file =
        |message: String| ConfigErrors::from(ConfigError::new(path, None, "", message));
    let Some(format) = Format::from_path(path) else {
        return Err(whole_file(format!(
            "unsupported manifest format: the file name must end in {}",
            Format::EXTENSIONS
        )));
    };
    let file = std::fs::canonicalize(path)
        .map_err(|e| whole_file(format!("cannot read manifest: {e}")))?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| whole_file(format!("cannot read manifest: {e}")))?;
    from_text(&file, &text, format, env, &read_from_disk)
}

/// Reads a file a manifest refers to (an `env_file`). [`load`] reads the disk; a caller
/// that must not (the fuzz targets, tests) passes its own.
pub type ReadText<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

pub fn read_from_disk(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// The manifest `text`, written in `format`, as if it were the file `file` (absolute:
/// relative paths resolve against its directory, errors name it). The disk is touched only
/// through `read`, and to check that a `tokens_file` exists and users exist.
pub fn from_text(
    file: &Path,
    text: &str,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
    read: ReadText<'_>,
) -> Result<Manifest, ConfigErrors> {
    let root = document::parse(text, format).map_err(|errors| {
        let errors = errors
            .into_iter()
            .map(|e| ConfigError::new(file, e.line, "", e.message))
            .collect();
        ConfigErrors::sorted(errors, file)
    })?;
    validate::validate(file, &root, env, read, true)
        .map_err(|errors| ConfigErrors::sorted(errors, file))
}

/// Validate a tree that did not come from a manifest file (an importer built it from a
/// foreign format at `file`): relative paths resolve against `file`'s directory and errors
/// name `file` with the tree's lines; the caller may relocate them. Without
/// `this_machine`, user and group names are taken as written (a translation for another
/// machine).
pub(crate) fn validate_tree(
    file: &Path,
    root: &document::Node,
    env: &dyn Fn(&str) -> Option<String>,
    read: ReadText<'_>,
    this_machine: bool,
) -> Result<Manifest, Vec<ConfigError>> {
    validate::validate(file, root, env, read, this_machine)
}

/// The manifest that applies in `start_dir`: the first of [`MANIFEST_NAMES`] found there or
/// in the nearest parent directory that has one.
pub fn find_manifest(start_dir: &Path) -> Option<PathBuf> {
    let start = std::path::absolute(start_dir).ok()?;
    start.ancestors().find_map(|dir| {
        MANIFEST_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// The state directory (pid file, logs) of the manifest at `path`, for commands that only
/// talk to a running daemon: only `[tend] state_dir` is read, so a mistake elsewhere in the
/// manifest does not stop `tend stop`. Falls back to `.tend` beside the manifest when the
/// file cannot be read or `state_dir` is not a plain string.
pub fn locate_state_dir(path: &Path) -> PathBuf {
    let (base_dir, tend) = daemon_table(path);
    state_dir_in(&base_dir, tend.as_ref())
}

fn state_dir_in(base_dir: &Path, tend: Option<&document::Node>) -> PathBuf {
    match tend.and_then(|t| plain_string(t, "state_dir")) {
        Some(dir) => validate::clean(&base_dir.join(dir)),
        None => base_dir.join(".tend"),
    }
}

/// The control socket of the manifest at `path`, read as leniently as [`locate_state_dir`].
pub fn locate_socket(path: &Path) -> PathBuf {
    let (base_dir, tend) = daemon_table(path);
    match tend.as_ref().and_then(|t| plain_string(t, "socket")) {
        Some(socket) => validate::clean(&base_dir.join(socket)),
        None => state_dir_in(&base_dir, tend.as_ref()).join("tend.sock"),
    }
}

/// The manifest's directory and its `[tend]` table, if it can be read at all.
fn daemon_table(path: &Path) -> (PathBuf, Option<document::Node>) {
    let file = std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let base_dir = file
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let tend = Format::from_path(path).and_then(|format| {
        let mut file = std::fs::File::open(&file).ok()?;
        let size = file.metadata().map_or(0, |m| m.len());
        if !may_set_the_daemon_paths(&mut file, size).ok()? {
            return None;
        }
        std::io::Seek::rewind(&mut file).ok()?;
        let text = std::io::read_to_string(file).ok()?;
        let root = document::parse(&text, format).ok()?;
        root.get("tend").cloned()
    });
    (base_dir, tend)
}

/// Whether the manifest read from `file` can set `tend.socket` or `tend.state_dir`, the
/// only keys read here: it must name `tend` and one of them in letters, or hold an escape
/// (`\u0074end`, YAML's `\x74`) that could spell them. Most manifests set neither, and a
/// command that only needs the socket then neither parses thousands of services nor
/// copies them whole: the file is looked through in pieces, because a fresh process pays
/// a page fault for every 4 KiB of a megabytes-long copy (0.6 ms a megabyte here). `size`,
/// the file's length as far as known, keeps the piece no larger than a small file.
fn may_set_the_daemon_paths(mut file: impl std::io::Read, size: u64) -> std::io::Result<bool> {
    const WORDS: [&[u8]; 3] = [b"tend", b"socket", b"state_dir"];
    // A word may straddle two pieces: each piece starts with the last bytes of the one
    // before, as many as the longest word has, less one.
    const CARRY: usize = 8;
    let length = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let mut piece = vec![0u8; length.clamp(2 * CARRY, 64 * 1024)];
    let mut kept = 0;
    let mut seen = [false; 3];
    loop {
        let read = match file.read(&mut piece[kept..]) {
            Ok(0) => return Ok(false),
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let filled = &piece[..kept + read];
        if memchr::memchr(b'\\', filled).is_some() {
            return Ok(true);
        }
        for (word, seen) in WORDS.iter().zip(seen.iter_mut()) {
            *seen = *seen || memchr::memmem::find(filled, word).is_some();
        }
        if seen[0] && (seen[1] || seen[2]) {
            return Ok(true);
        }
        kept = CARRY.min(filled.len());
        let tail = filled.len() - kept;
        piece.copy_within(tail..tail + kept, 0);
    }
}

fn plain_string(table: &document::Node, key: &str) -> Option<String> {
    match &table.get(key)?.value {
        document::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A JSON Schema (draft 2020-12) of the manifest, generated from the same serde types the
/// loader parses with, for editor completion and checking of TOML, YAML and JSON manifests.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(raw::RawManifest).to_value()
}

#[cfg(test)]
mod tests;
