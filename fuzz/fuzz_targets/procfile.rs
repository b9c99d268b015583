//! A Procfile imported as `tend import` reads it; the input's second part is the `.env`
//! beside it (foreman's dotenv dialect).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tend::import::{self, Source};

fuzz_target!(|data: &[u8]| {
    let (main, side) = tend_fuzz::split(data);
    let Ok(text) = std::str::from_utf8(main) else {
        return;
    };
    let file = Path::new("/nonexistent/fuzz/Procfile");
    let read = tend_fuzz::side_import_file(file, main, side);
    let result = import::translate_text(file, text, Source::Procfile, None, &tend_fuzz::env, &read);
    tend_fuzz::imported(result, file, main, side);
});
