//! A process-compose file imported as `tend import` reads it: YAML, `${}` substitution, Go
//! templates, the mapping; the input's second part is every env file it reads (`.env`,
//! `env_file`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tend::import::{self, Source};

fuzz_target!(|data: &[u8]| {
    let (main, side) = tend_fuzz::split(data);
    let Ok(text) = std::str::from_utf8(main) else {
        return;
    };
    let file = Path::new("/nonexistent/fuzz/process-compose.yaml");
    let read = tend_fuzz::side_import_file(file, main, side);
    let result = import::translate_text(
        file,
        text,
        Source::ProcessCompose,
        None,
        &tend_fuzz::env,
        &read,
    );
    tend_fuzz::imported(result, file, main, side);
});
