//! A PM2 ecosystem file (the JS-literal / JSON5 reader and the app mapping) imported as
//! `tend import` reads it, with `--env production`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tend::import::{self, Source};

fuzz_target!(|data: &[u8]| {
    let (main, side) = tend_fuzz::split(data);
    let Ok(text) = std::str::from_utf8(main) else {
        return;
    };
    let file = Path::new("/nonexistent/fuzz/ecosystem.config.js");
    let read = tend_fuzz::side_import_file(file, main, side);
    let result = import::translate_text(
        file,
        text,
        Source::Pm2,
        Some("production"),
        &tend_fuzz::env,
        &read,
    );
    tend_fuzz::imported(result, file, main, side);
});
