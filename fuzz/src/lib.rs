//! What the fuzz targets share: how an input is split into files, the environment they
//! pretend to run in, and the properties checked on what a parser accepts or refuses.
//!
//! Nothing here touches the network or starts a process. The only files written are the
//! supervisord target's, in a directory of its own under `$TMPDIR` (`scratch_dir`).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tend::config::{ConfigErrors, Format, Manifest};
use tend::import::{self, Source, Translation};

/// An input is a file and, after the first NUL byte, a second file the first may read:
/// an `env_file`, the `.env` beside a Procfile, a supervisord include. A NUL never
/// belongs in any of these formats' text, so the split costs the fuzzer nothing.
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The environment every target interpolates from: small and fixed, so a run is
/// reproducible and `${HOME}` or `%(ENV_HOME)s` never names a real directory.
pub fn env(name: &str) -> Option<String> {
    env_with_home(name, "/nonexistent/fuzz-home")
}

pub fn env_with_home(name: &str, home: &str) -> Option<String> {
    match name {
        "HOME" => Some(home.to_string()),
        "USER" => Some("fuzz".into()),
        "PORT" => Some("5000".into()),
        "HOSTNAME" => Some("fuzzhost".into()),
        _ => None,
    }
}

/// A reader for a manifest's `env_file`s: `main` for `file` itself (a manifest may name
/// itself), `side` for any other path.
pub fn side_file<'a>(
    file: &'a Path,
    main: &'a [u8],
    side: &'a [u8],
) -> impl Fn(&Path) -> io::Result<String> + 'a {
    move |path| {
        let bytes = if path == file { main } else { side };
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    }
}

/// The same for an importer's files.
pub fn side_import_file<'a>(
    file: &'a Path,
    main: &'a [u8],
    side: &'a [u8],
) -> impl Fn(&Path) -> Option<String> + 'a {
    let read = side_file(file, main, side);
    move |path| read(path).ok()
}

/// Every error that names a line names one that exists in its file: `main` (the text at
/// `file`) or, for an error about any other file, `side`. A line just past the last one
/// is allowed (the end of the file).
pub fn check_lines(errors: &ConfigErrors, file: &Path, main: &[u8], side: &[u8]) {
    assert!(!errors.0.is_empty(), "an error result with no error in it");
    for error in &errors.0 {
        assert!(
            !error.message.is_empty(),
            "an error without a message: {error:?}"
        );
        let Some(line) = error.line else { continue };
        assert!(line >= 1, "line 0 in {error}");
        let text = if error.file == file { main } else { side };
        let last = line_breaks(text) + 1;
        assert!(line <= last, "line {line} of a {last}-line file in {error}");
    }
}

/// Line breaks as the parsers count them: LF, CRLF, and a lone CR (YAML's).
fn line_breaks(text: &[u8]) -> usize {
    let mut count = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && text.get(i + 1) != Some(&b'\n')) {
            count += 1;
        }
    }
    count
}

/// A tend manifest: loading it never panics, its errors point at real lines, and when it
/// is accepted, what `tend import` writes for it (TOML) loads as the same manifest.
pub fn manifest(data: &[u8], format: Format, name: &str) {
    let (main, side) = split(data);
    let Ok(text) = std::str::from_utf8(main) else {
        return;
    };
    let file = Path::new("/nonexistent/fuzz").join(name);
    let read = side_file(&file, main, side);
    match tend::config::from_text(&file, text, format, &env, &read) {
        Err(errors) => check_lines(&errors, &file, main, side),
        Ok(manifest) => {
            let no_files = |_: &Path| None;
            let translation =
                import::translate_text(&file, text, Source::Tend, None, &env, &no_files)
                    .expect("a manifest that loads also parses");
            same_through_toml(&manifest, &translation, &read);
        }
    }
}

/// A foreign file (`main`, at `file`) translated: its errors point at real lines and, when the tree
/// validates, the TOML `tend import` writes for it loads as the same manifest.
pub fn imported(result: Result<Translation, ConfigErrors>, file: &Path, main: &[u8], side: &[u8]) {
    let translation = match result {
        Ok(translation) => translation,
        Err(errors) => return check_lines(&errors, file, main, side),
    };
    let read = side_file(file, main, side);
    match translation.clone().validate_with(&env, false, &read) {
        Err(errors) => check_lines(&errors, file, main, side),
        Ok(loaded) => same_through_toml(&loaded.manifest, &translation, &read),
    }
}

/// `translation.to_toml()`, read back beside the original, gives `manifest` again.
fn same_through_toml(
    manifest: &Manifest,
    translation: &Translation,
    read: &dyn Fn(&Path) -> io::Result<String>,
) {
    let toml = translation.to_toml();
    let file = translation.file.with_file_name("tend.toml");
    let no_files = |_: &Path| None;
    let again = import::translate_text(&file, &toml, Source::Tend, None, &env, &no_files)
        .and_then(|t| t.validate_with(&env, false, read))
        .unwrap_or_else(|errors| {
            panic!("the TOML written for it does not load: {errors:?}\n{toml}")
        })
        .manifest;
    // The file and the lines of warnings differ by nature; what is supervised may not.
    assert_eq!(
        manifest.daemon, again.daemon,
        "[tend] changed through\n{toml}"
    );
    assert_eq!(
        manifest.services, again.services,
        "services changed through\n{toml}"
    );
    assert_eq!(
        manifest.sockets, again.sockets,
        "sockets changed through\n{toml}"
    );
}

/// A directory for the files a target must write, one per process, under `$TMPDIR`.
pub fn scratch_dir(name: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tend-fuzz-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    })
}
