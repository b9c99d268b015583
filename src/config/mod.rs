//! The manifest: its model, loading from TOML/YAML/JSON, interpolation and validation.
//! This is the one source of truth for what tend supervises; it does no supervision itself.
//!
//! Loading runs in stages, each in its own module: [`document`] parses any format into a
//! tree that knows every line, [`raw`] gives it serde types (also the JSON Schema), and
//! `validate` turns those into the [`model`], reporting every mistake at once.

pub mod document;
pub mod duration;
pub mod envfile;
pub mod error;
pub mod graph;
pub mod interpolate;
pub mod model;
pub mod raw;
pub mod signal;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors};
pub use graph::start_order;
pub use model::Manifest;

use document::Format;

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
    let root = document::parse(&text, format).map_err(|errors| {
        let errors = errors
            .into_iter()
            .map(|e| ConfigError::new(&file, e.line, "", e.message))
            .collect();
        ConfigErrors::sorted(errors, &file)
    })?;
    validate::validate(&file, &root, env).map_err(|errors| ConfigErrors::sorted(errors, &file))
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

/// A JSON Schema (draft 2020-12) of the manifest, generated from the same serde types the
/// loader parses with, for editor completion and checking of TOML, YAML and JSON manifests.
pub fn schema() -> serde_json::Value {
    schemars::schema_for!(raw::RawManifest).to_value()
}

#[cfg(test)]
mod tests;

/// The state directory a manifest names, for clients that only need to find the socket: read
/// leniently, so a manifest with unrelated errors still leads to its running daemon.
pub fn locate_state_dir(path: &Path) -> PathBuf {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let base = absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let named = std::fs::read_to_string(&absolute).ok().and_then(|text| {
        let format = document::Format::from_path(&absolute)?;
        let doc = document::parse(&text, format).ok()?;
        match &doc.get("tend")?.get("state_dir")?.value {
            document::Value::String(dir) => Some(PathBuf::from(dir)),
            _ => None,
        }
    });
    match named {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => base.join(dir),
        None => base.join(".tend"),
    }
}
