//! tend: a process supervisor. See ARCHITECTURE.md for the map of the code.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod import;
pub mod logs;
pub mod notifications;
pub mod protocol;
pub mod store;
