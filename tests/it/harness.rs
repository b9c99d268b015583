//! The test harness: a temp dir with a manifest, the real `tend` binary, bounded polling, and
//! cleanup that leaves no process behind (the daemon and every process carrying its run id).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tend");

/// Poll `condition` every few milliseconds until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|i| !stat[i + 2..].starts_with('Z')),
        Err(_) => false,
    }
}

/// Pids of all processes whose environment holds `needle` (e.g. a run id).
pub fn pids_with_env(needle: &str) -> Vec<i32> {
    let mut pids = vec![];
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(environ) = fs::read(format!("/proc/{pid}/environ"))
            && environ.split(|b| *b == 0).any(|e| e == needle.as_bytes())
            && alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

pub struct Project {
    pub dir: tempfile::TempDir,
    /// The file `-c` names: `tend.toml`, or a foreign format's file.
    manifest_name: String,
}

impl Project {
    /// A temp dir holding `tend.toml` with this text.
    pub fn new(manifest: &str) -> Project {
        Project::with_manifest("tend.toml", manifest)
    }

    /// A temp dir holding the file `name` (a supervisord.conf, a Procfile...) as the manifest.
    pub fn with_manifest(name: &str, text: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("tend-it-")
            .tempdir()
            .expect("temp dir");
        fs::write(dir.path().join(name), text).unwrap();
        Project {
            dir,
            manifest_name: name.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn manifest(&self) -> PathBuf {
        self.path().join(&self.manifest_name)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// Write a file of the project with this mode (a tokens file must be 0600 or stricter).
    pub fn write_with_mode(&self, name: &str, text: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.file(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.file(name)).unwrap_or_default()
    }

    /// `tend -c MANIFEST ARGS...` in the project's directory, output piped, not started: for
    /// a test that sets more (an environment variable, a resource limit) before it runs.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("-c")
            .arg(self.manifest())
            .args(args)
            .current_dir(self.path())
            .env_remove("TEND_SOCKET")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Run `tend -c MANIFEST ARGS...` to completion (bounded: a hung command fails the test
    /// instead of hanging the suite).
    pub fn tend(&self, args: &[&str]) -> Output {
        let child = self.command(args).spawn().expect("run tend");
        finish(
            child,
            Duration::from_secs(60),
            &format!("tend {}", args.join(" ")),
        )
    }

    /// Start `tend -c MANIFEST ARGS...` without waiting, with its stdout and stderr piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(BIN)
            .arg("-c")
            .arg(self.manifest())
            .args(args)
            .env_remove("TEND_SOCKET")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tend")
    }

    /// `tend up -d`, asserting success, returning a guard that stops the daemon.
    pub fn up(&self) -> Daemon<'_> {
        let out = self.tend(&["up", "-d"]);
        let daemon = Daemon::attach(self);
        assert!(
            out.status.success(),
            "tend up -d failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        daemon
    }

    /// `tend up -d --wait`: returns once every instance is ready.
    pub fn up_ready(&self) -> Daemon<'_> {
        let out = self.tend(&["up", "-d", "--wait"]);
        let daemon = Daemon::attach(self);
        assert!(
            out.status.success(),
            "tend up -d --wait failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        daemon
    }

    /// `tend status --json` as JSON values.
    pub fn status(&self) -> Vec<Value> {
        let out = self.tend(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", text(&out.stderr));
        serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("status json")
    }

    pub fn instance(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|i| i["name"] == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    pub fn state_of(&self, name: &str) -> String {
        self.instance(name)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn wait_state(&self, name: &str, state: &str, limit: Duration) {
        wait_until(limit, &format!("{name} to be {state}"), || {
            self.state_of(name) == state
        });
    }
}

/// Wait for a child with a bound; kill it and fail when it does not finish in time. Its
/// output is collected on a thread, so a chatty child cannot fill its pipe and stall.
pub fn finish(child: std::process::Child, limit: Duration, what: &str) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("`{what}` did not finish within {limit:?}");
        }
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running daemon; dropping it stops the daemon and kills anything left with its run id.
pub struct Daemon<'a> {
    project: &'a Project,
    pub run_id: Option<String>,
}

impl<'a> Daemon<'a> {
    pub fn attach(project: &'a Project) -> Daemon<'a> {
        let run = fs::read_to_string(project.path().join(".tend/run.json")).ok();
        let run_id = run
            .and_then(|r| serde_json::from_str::<Value>(&r).ok())
            .and_then(|v| v["run_id"].as_str().map(String::from));
        Daemon { project, run_id }
    }

    pub fn pid(&self) -> Option<i32> {
        fs::read_to_string(self.project.path().join(".tend/tend.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Polls `done` every 10 ms for up to `limit`; whether it came true. Unlike [`wait_until`],
/// it does not panic: the guard below runs while a failed test unwinds.
fn settles_within(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        let pid = self.pid();
        // Bounded: a test that failed half-way may leave a service whose stop_timeout is
        // an hour, and the guard must not hold the whole suite for it.
        if let Ok(mut down) = Command::new(BIN)
            .arg("-c")
            .arg(self.project.manifest())
            .arg("down")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            settles_within(Duration::from_secs(30), || {
                !matches!(down.try_wait(), Ok(None))
            });
            let _ = down.kill();
            let _ = down.wait();
        }
        if let Some(pid) = pid
            && !settles_within(Duration::from_secs(15), || !alive(pid))
        {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(run_id) = &self.run_id {
            for pid in pids_with_env(&format!("TEND_RUN_ID={run_id}")) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

impl Project {
    /// `tend up -d` where some service is expected to fail: returns the guard either way.
    pub fn up_allow_failure(&self) -> Daemon<'_> {
        let _ = self.tend(&["up", "-d"]);
        Daemon::attach(self)
    }
}

/// An HTTP answer: status, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close` over any stream (the unix socket or TCP),
/// read to the end. A plain client on purpose: the tests see the bytes tend sends.
pub fn http_over<S: std::io::Read + std::io::Write>(
    stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let raw = exchange(stream, method, path, headers, body).expect("send request");
    parse_answer(&raw)
}

/// The request sent and the raw answer read to the end (empty when the connection closed
/// without one).
fn exchange<S: std::io::Read + std::io::Write>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Vec<u8>> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: tend\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    Ok(raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

impl Project {
    pub fn socket(&self) -> PathBuf {
        self.path().join(".tend/tend.sock")
    }

    /// A request on the daemon's unix socket.
    pub fn http(&self, method: &str, path: &str, body: &str) -> Answer {
        let stream = std::os::unix::net::UnixStream::connect(self.socket()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        http_over(stream, method, path, &[], body)
    }

    /// Like [`Project::http`], but `None` when the connection ends without an answer, as a
    /// request in flight at the moment of an upgrade's exec does (docs/cli.md).
    pub fn try_http(&self, method: &str, path: &str, body: &str) -> Option<Answer> {
        let stream = std::os::unix::net::UnixStream::connect(self.socket()).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let raw = exchange(stream, method, path, &[], body).ok()?;
        (!raw.is_empty()).then(|| parse_answer(&raw))
    }

    /// Open a streaming GET on the unix socket; lines of the body arrive on the channel.
    pub fn stream_lines(&self, path: &str) -> std::sync::mpsc::Receiver<String> {
        use std::io::{BufRead, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(self.socket()).expect("connect");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: tend\r\n\r\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let reader = std::io::BufReader::new(stream);
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    }
}

/// Wait for a line on a stream that satisfies `want`.
pub fn expect_line(
    lines: &std::sync::mpsc::Receiver<String>,
    limit: Duration,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
        }
    }
}
