//! tend: a process supervisor. See ARCHITECTURE.md for the map of the code.

pub mod api;
pub mod background;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod export;
pub mod import;
pub mod listeners;
pub mod logs;
pub mod notifications;
pub mod protocol;
pub mod store;
pub mod tui;

/// Test helpers shared by unit tests: a seeded generator and a CPython runner.
#[cfg(test)]
pub(crate) mod testutil;
