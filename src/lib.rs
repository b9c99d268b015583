//! tend: a process supervisor. See ARCHITECTURE.md for the map of the code.

pub mod config;
