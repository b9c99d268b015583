//! `env_file`s in tend's dotenv dialect: no panic, every assignment and error at a line of
//! the file, and `parse` agreeing with `read`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tend::config::envfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count().max(1);
    let (assignments, errors) = envfile::read(text);
    for a in &assignments {
        assert!(
            (1..=lines).contains(&a.line),
            "{a:?} in a {lines}-line file"
        );
    }
    for e in &errors {
        assert!(
            (1..=lines).contains(&e.line),
            "{e:?} in a {lines}-line file"
        );
    }
    match envfile::parse(text) {
        Ok(pairs) => {
            assert!(errors.is_empty());
            let read: Vec<(String, String)> =
                assignments.into_iter().map(|a| (a.key, a.value)).collect();
            assert_eq!(pairs, read);
        }
        Err(parse_errors) => assert_eq!(parse_errors, errors),
    }
});
