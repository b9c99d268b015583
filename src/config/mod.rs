//! The manifest: its model, loading from TOML/YAML/JSON, interpolation and validation.
//! This is the one source of truth for what tend supervises; it does no supervision itself.

pub mod model;
pub mod signal;
