//! The manifest: its model, loading from TOML/YAML/JSON, interpolation and validation.
//! This is the one source of truth for what tend supervises; it does no supervision itself.

pub mod model;
pub mod signal;

// TEMPORARY shims until the loader lands (replaced by the config branch).
use std::path::{Path, PathBuf};
pub struct ConfigErrors(pub Vec<String>);
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}
pub fn load(_path: &Path) -> Result<model::Manifest, ConfigErrors> {
    Err(ConfigErrors(vec!["not yet".into()]))
}
pub fn find_manifest(_start: &Path) -> Option<PathBuf> {
    None
}
pub fn schema() -> serde_json::Value {
    serde_json::Value::Null
}
pub fn start_order(m: &model::Manifest) -> Vec<String> {
    m.services.iter().map(|s| s.name.clone()).collect()
}
pub fn locate_state_dir(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join(".tend")
}
