//! Health probes of a supervised instance: the HTTP, TCP and exec checks, one attempt with its
//! optional fallback, and the scheduler that runs a probe on its interval, applies its
//! thresholds and reports each attempt plus the passing/failing transitions.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

/// Enough for any health page; a check must not buffer an arbitrarily large body.
const BODY_LIMIT: usize = 64 * 1024;
/// The exec runner enforces the timeout itself (it kills the process group); this extra time
/// lets it finish that before our backstop gives up on a runner that never answers.
const EXEC_GRACE: Duration = Duration::from_secs(1);
/// A zero interval would turn the scheduler into a busy loop.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// `http://host[:port][/path]`; https is not supported.
    pub url: String,
    pub method: String,
    /// Inclusive range of statuses that pass.
    pub status: (u16, u16),
    /// When set, the first 64 KiB of the body must contain it.
    pub body_contains: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl HttpCheck {
    /// A GET that passes on 200..=399, the defaults of a manifest's `http:` probe.
    pub fn new(url: impl Into<String>) -> Self {
        HttpCheck {
            url: url.into(),
            method: "GET".into(),
            status: (200, 399),
            body_contains: None,
            headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Http(HttpCheck),
    /// `host:port`; passes when a connection is accepted.
    Tcp(String),
    /// A command line, run by the caller's [`ExecRunner`]; passes on exit code 0.
    Exec(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    pub check: Check,
    /// Asked only when `check` fails.
    pub fallback: Option<Check>,
    pub initial_delay: Duration,
    pub interval: Duration,
    /// Applies to each check separately, so an attempt with a fallback may take twice as long.
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The outcome of one attempt.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub ok: bool,
    /// The kind of check whose verdict this is: "http", "tcp" or "exec".
    pub by: &'static str,
    /// The primary failed and the fallback ran; `ok` and `by` are the fallback's.
    pub fallback: bool,
    /// e.g. "http 503", "tcp: connection refused", "exec exit 2", "timed out after 1s";
    /// with a fallback, "<primary detail>; fallback <fallback detail>".
    pub detail: String,
    pub took: Duration,
    /// When the attempt started.
    pub at: SystemTime,
}

/// Runs exec checks (the supervisor spawns them with the service's env and cwd and kills the
/// group on timeout).
pub trait ExecRunner: Send + Sync + 'static {
    fn run(
        &self,
        command: &str,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send>>;
}

/// What the scheduler tells its owner. `Result` comes for every attempt; a transition comes
/// right after the `Result` of the attempt that caused it.
#[derive(Debug, Clone)]
pub enum ProbeEvent {
    /// `success_threshold` consecutive successes while not already passing.
    Passing(ProbeResult),
    /// `failure_threshold` consecutive failures while not already failing.
    Failing {
        result: ProbeResult,
        reason: String,
    },
    Result(ProbeResult),
}

/// Runs one check under `timeout`; never fails, every problem becomes a failed result.
pub async fn check_once(check: &Check, timeout: Duration, exec: &dyn ExecRunner) -> ProbeResult {
    let at = SystemTime::now();
    let start = Instant::now();
    let (by, outcome) = match check {
        Check::Http(http) => ("http", within(timeout, timeout, http_check(http)).await),
        Check::Tcp(addr) => ("tcp", within(timeout, timeout, tcp_check(addr)).await),
        Check::Exec(command) => {
            let run = exec_check(exec, command, timeout);
            ("exec", within(timeout + EXEC_GRACE, timeout, run).await)
        }
    };
    let ok = outcome.is_ok();
    ProbeResult {
        ok,
        by,
        fallback: false,
        detail: outcome.unwrap_or_else(|failure| failure),
        took: start.elapsed(),
        at,
    }
}

/// Runs the primary check and, only if it fails in any way, the fallback.
pub async fn attempt(settings: &ProbeSettings, exec: &dyn ExecRunner) -> ProbeResult {
    let primary = check_once(&settings.check, settings.timeout, exec).await;
    let Some(fallback) = settings.fallback.as_ref().filter(|_| !primary.ok) else {
        return primary;
    };
    let second = check_once(fallback, settings.timeout, exec).await;
    ProbeResult {
        ok: second.ok,
        by: second.by,
        fallback: true,
        // Even when the fallback passes, `tend health` should show that the primary did not.
        detail: format!("{}; fallback {}", primary.detail, second.detail),
        took: primary.took + second.took,
        at: primary.at,
    }
}

/// Runs the probe until the receiver of `events` is dropped: waits `initial_delay`, then starts
/// an attempt every `interval` counted from the start of the previous one. An attempt that
/// overruns the interval is followed at once by the next, without a burst to catch up.
pub async fn run(
    settings: ProbeSettings,
    exec: Arc<dyn ExecRunner>,
    events: UnboundedSender<ProbeEvent>,
) {
    let interval = settings.interval.max(MIN_INTERVAL);
    let mut thresholds = Thresholds::new(settings.success_threshold, settings.failure_threshold);
    let mut next = Instant::now() + settings.initial_delay;
    loop {
        // Watching for the receiver while waiting lets an instance's probe end with it,
        // instead of lingering until its next send.
        let result = tokio::select! {
            () = events.closed() => return,
            result = async {
                sleep_until(next).await;
                attempt(&settings, &*exec).await
            } => result,
        };
        // From the scheduled start, not the observed one, so timer lateness does not add up.
        next = (next + interval).max(Instant::now());
        let transition = thresholds.record(&result);
        if events.send(ProbeEvent::Result(result)).is_err() {
            return;
        }
        if let Some(event) = transition
            && events.send(event).is_err()
        {
            return;
        }
    }
}

/// Consecutive-result counting. The verdict starts unknown, so the first transition either
/// way needs a full streak, exactly like every later one.
struct Thresholds {
    success: u32,
    failure: u32,
    passing: Option<bool>,
    successes: u32,
    failures: u32,
}

impl Thresholds {
    fn new(success: u32, failure: u32) -> Self {
        // A threshold of 0 cannot be reached by counting; treat it as "one result decides".
        Thresholds {
            success: success.max(1),
            failure: failure.max(1),
            passing: None,
            successes: 0,
            failures: 0,
        }
    }

    fn record(&mut self, result: &ProbeResult) -> Option<ProbeEvent> {
        if result.ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.passing == Some(true) || self.successes < self.success {
                return None;
            }
            self.passing = Some(true);
            Some(ProbeEvent::Passing(result.clone()))
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.passing == Some(false) || self.failures < self.failure {
                return None;
            }
            self.passing = Some(false);
            let reason = format!("{} {}", result.detail, times(self.failures));
            Some(ProbeEvent::Failing {
                result: result.clone(),
                reason,
            })
        }
    }
}

fn times(n: u32) -> String {
    const WORDS: [&str; 8] = [
        "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        3..=10 => format!("{} times", WORDS[n as usize - 3]),
        _ => format!("{n} times"),
    }
}

/// Compact duration for details: 1s, 500ms, 1m30s, 1h5m.
fn compact(d: Duration) -> String {
    let ms = d.as_millis();
    if d.is_zero() {
        return "0s".into();
    } else if ms == 0 {
        return format!("{}µs", d.as_micros());
    }
    let mut out = String::new();
    let parts = [
        (ms / 3_600_000, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
        let _ = write!(out, "{n}{unit}");
    }
    out
}

/// A check's verdict: `Ok(detail)` passes, `Err(detail)` fails.
type Outcome = Result<String, String>;

async fn within(
    limit: Duration,
    stated: Duration,
    check: impl Future<Output = Outcome>,
) -> Outcome {
    tokio::time::timeout(limit, check)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {}", compact(stated))))
}

async fn tcp_check(addr: &str) -> Outcome {
    match TcpStream::connect(addr).await {
        Ok(_) => Ok("tcp connected".into()),
        Err(e) => Err(format!("tcp: {}", io_reason(&e))),
    }
}

async fn exec_check(exec: &dyn ExecRunner, command: &str, timeout: Duration) -> Outcome {
    let code = exec.run(command, timeout).await?;
    let detail = format!("exec exit {code}");
    if code == 0 { Ok(detail) } else { Err(detail) }
}

/// Where a plain `http://` URL sends us.
struct Target {
    connect: String,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let unsupported = || format!("unsupported URL {url}: expected http://host[:port]/path");
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(format!("https is not supported: {url}"));
        }
        _ => return Err(unsupported()),
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return Err(unsupported());
    }
    // An IPv6 literal has colons of its own; only one after its closing bracket is a port.
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end + 1..].starts_with(':'),
        None => authority.contains(':'),
    };
    let connect = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let path = path.split('#').next().unwrap_or_default();
    let path = match path.chars().next() {
        None => "/".to_string(),
        Some('?') => format!("/{path}"),
        Some(_) => path.to_string(),
    };
    Ok(Target {
        connect,
        host: authority.to_string(),
        path,
    })
}

/// Aborts the connection driver when the attempt ends, however it ends (answer, error or
/// timeout), so its socket closes with it instead of waiting for the peer.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn http_check(check: &HttpCheck) -> Outcome {
    let target = parse_url(&check.url).map_err(|e| format!("http: {e}"))?;
    let request = build_request(check, &target).map_err(|e| format!("http: {e}"))?;
    let stream = TcpStream::connect(&target.connect)
        .await
        .map_err(|e| format!("http: {}", io_reason(&e)))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http: {}", hyper_reason(&e)))?;
    let _driver = AbortOnDrop(tokio::spawn(conn));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("http: {}", hyper_reason(&e)))?;
    let status = response.status().as_u16();
    let detail = format!("http {status}");
    if !(check.status.0..=check.status.1).contains(&status) {
        return Err(detail);
    }
    match &check.body_contains {
        None => Ok(detail),
        Some(needle) if body_contains(response.into_body(), needle.as_bytes()).await? => Ok(detail),
        Some(needle) => Err(format!("{detail} without {needle:?}")),
    }
}

fn build_request(check: &HttpCheck, target: &Target) -> Result<Request<Empty<Bytes>>, String> {
    let mut request = Request::new(Empty::new());
    *request.method_mut() = Method::from_bytes(check.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", check.method))?;
    *request.uri_mut() = target
        .path
        .parse()
        .map_err(|_| format!("invalid path in {}", check.url))?;
    let headers = request.headers_mut();
    for (name, value) in &check.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name}"))?;
        headers.append(name, value);
    }
    // A configured Host (a virtual host behind a proxy) wins over the one from the URL.
    if !headers.contains_key(HOST) {
        let host = HeaderValue::from_str(&target.host)
            .map_err(|_| format!("invalid host in {}", check.url))?;
        headers.insert(HOST, host);
    }
    Ok(request)
}

async fn body_contains(mut body: Incoming, needle: &[u8]) -> Result<bool, String> {
    let mut seen = Vec::new();
    while seen.len() < BODY_LIMIT {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| format!("http: {}", hyper_reason(&e)))?;
        if let Ok(data) = frame.into_data() {
            let room = BODY_LIMIT - seen.len();
            seen.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(needle.is_empty() || seen.windows(needle.len()).any(|w| w == needle))
}

/// "connection refused" rather than "Connection refused (os error 111)": details are read
/// side by side in `tend health`, where the errno adds nothing.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let mut chars = text.split(" (os error").next().unwrap_or_default().chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase());
    first.into_iter().chain(chars).collect()
}

/// hyper's own message is generic ("connection error"); the cause is what helps.
fn hyper_reason(e: &hyper::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => match cause.downcast_ref::<io::Error>() {
            Some(io) => format!("{e}: {}", io_reason(io)),
            None => format!("{e}: {cause}"),
        },
        None => e.to_string(),
    }
}
