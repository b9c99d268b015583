//! A supervisord configuration imported as `tend import` / `tend up -c` read it: the INI
//! dialect, `%(...)s` expansions, value types, `[include]` (the input's second part is
//! `conf.d/extra.conf`, beside the main file in a scratch directory), and the mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend::import::{self, Reading, Source};

fuzz_target!(|data: &[u8]| {
    // An include may name any file; one that left the scratch directory could read
    // /dev/zero or block on a FIFO. Inputs that could do so are skipped: any `..`, and
    // any `/` not written right after an expansion (`%(here)s/conf.d/*.conf`), whenever
    // the word include appears at all.
    if escapes(data) {
        return;
    }
    let (main, side) = tend_fuzz::split(data);
    let dir = tend_fuzz::scratch_dir("supervisord");
    let file = dir.join("supervisord.conf");
    std::fs::create_dir_all(dir.join("conf.d")).expect("scratch conf.d");
    std::fs::write(&file, main).expect("write the main file");
    std::fs::write(dir.join("conf.d/extra.conf"), side).expect("write the include");
    let home = dir.to_string_lossy().into_owned();
    let env = |name: &str| tend_fuzz::env_with_home(name, &home);
    let reading = Reading {
        source: Some(Source::Supervisord),
        environment: None,
        socket: None,
    };
    let result = import::translate(&file, &reading, &env);
    tend_fuzz::imported(result, &file, main, side);
});

fn escapes(data: &[u8]) -> bool {
    let lower = data.to_ascii_lowercase();
    if !lower.windows(7).any(|w| w == b"include") {
        return false;
    }
    lower.windows(2).any(|w| w == b"..")
        || lower
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'/' && !lower[..i].ends_with(b")s"))
}
