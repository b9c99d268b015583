//! Helpers shared by the unit tests: a tiny deterministic RNG and a way to run CPython
//! when it is installed.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// xorshift64*: deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A CPython 3 interpreter with `xmlrpc.client`, or `None` (and a note on stderr saying
/// why the test is skipped). `$PYTHON` wins; then `python3` on PATH; then pyenv's shim.
pub fn python3() -> Option<String> {
    let candidates = std::env::var("PYTHON").into_iter().chain([
        "python3".to_string(),
        "/root/.pyenv/shims/python3".to_string(),
    ]);
    for py in candidates {
        let ok = Command::new(&py)
            .args([
                "-c",
                "import sys, xmlrpc.client; assert sys.version_info >= (3, 6)",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    eprintln!(
        "skipping the CPython cross-check: no python3 with xmlrpc.client found (set $PYTHON)"
    );
    None
}

/// Runs `script` with `input` on stdin; returns stdout; panics with stderr on failure.
pub fn run_python(py: &str, script: &str, input: &str) -> String {
    let mut child = Command::new(py)
        .args(["-c", script])
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to python");
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("python printed UTF-8")
}
