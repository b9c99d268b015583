//! A tend manifest in TOML, loaded as `tend up` loads it (an `env_file` reads the input's
//! second part): no panic, errors at real lines, and an accepted manifest survives the trip
//! through the TOML `tend import` writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend::config::Format;

fuzz_target!(|data: &[u8]| tend_fuzz::manifest(data, Format::Toml, "tend.toml"));
