//! The notifier end to end: real TCP to a small recording HTTP receiver on 127.0.0.1, real
//! TLS, real shell commands; retry timing on tokio's paused clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use super::*;
use crate::engine::event::{Event, EventKind};
use crate::engine::lifecycle::ExitStatus;

// ---- a recording HTTP/1.1 receiver ----------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    method: String,
    target: String,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: String,
    /// The TLS server name the client asked for.
    sni: Option<String>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Debug, Clone)]
enum Answer {
    Status(u16, Vec<(&'static str, String)>, &'static str),
    /// Say nothing until `release`, then 200.
    Hang,
}

fn ok() -> Answer {
    Answer::Status(200, vec![], "ok")
}

fn status(code: u16) -> Answer {
    Answer::Status(code, vec![], "")
}

struct Script {
    plan: Mutex<VecDeque<Answer>>,
    then: Answer,
    log: Mutex<Vec<Received>>,
    release: watch::Receiver<bool>,
}

struct Receiver {
    addr: SocketAddr,
    script: Arc<Script>,
    release: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Answers each request with the next planned answer, then with `then` forever.
    async fn start(plan: Vec<Answer>, then: Answer) -> Receiver {
        Receiver::serve(plan, then, None).await
    }

    async fn start_tls(plan: Vec<Answer>, then: Answer, tls: TlsAcceptor) -> Receiver {
        Receiver::serve(plan, then, Some(tls)).await
    }

    async fn serve(plan: Vec<Answer>, then: Answer, tls: Option<TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (release, release_rx) = watch::channel(false);
        let script = Arc::new(Script {
            plan: Mutex::new(plan.into()),
            then,
            log: Mutex::new(Vec::new()),
            release: release_rx,
        });
        let serving = script.clone();
        let task = tokio::spawn(async move {
            // Dropped with the accept loop, so every connection ends with the receiver.
            let mut connections = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let script = serving.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => answer(tcp, None, &script).await,
                        Some(tls) => {
                            let Ok(stream) = tls.accept(tcp).await else {
                                return;
                            };
                            let sni = stream.get_ref().1.server_name().map(str::to_owned);
                            answer(stream, sni, &script).await
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            script,
            release,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Received> {
        self.script.log.lock().unwrap().clone()
    }

    fn release(&self) {
        self.release.send_replace(true);
    }

    /// Waits (boundedly) until `n` requests have arrived.
    async fn wait_for(&self, n: usize) {
        for _ in 0..2000 {
            if self.requests().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("expected {n} requests, got {}", self.requests().len());
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    sni: Option<String>,
    script: &Script,
) {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
        assert!(raw.len() < 1 << 20, "request head too large");
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    script.log.lock().unwrap().push(Received {
        at: Instant::now(),
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        sni,
    });
    let next = script.plan.lock().unwrap().pop_front();
    let (code, extra, text) = match next.unwrap_or_else(|| script.then.clone()) {
        Answer::Status(code, extra, text) => (code, extra, text),
        Answer::Hang => {
            let mut release = script.release.clone();
            let _ = release.wait_for(|released| *released).await;
            (200, vec![], "ok")
        }
    };
    let mut reply = format!(
        "HTTP/1.1 {code} Whatever\r\ncontent-length: {}\r\nconnection: close\r\n",
        text.len()
    );
    for (name, value) in extra {
        reply.push_str(&format!("{name}: {value}\r\n"));
    }
    reply.push_str("\r\n");
    reply.push_str(text);
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

// ---- helpers ---------------------------------------------------------------------------

/// Test-only runner: std::process inside spawn_blocking is fine here; tend's real runner
/// goes through its spawner, which owns all forking and reaping.
struct ShellRunner;

impl CommandRunner for ShellRunner {
    fn run(
        &self,
        command: &str,
        env: Vec<(String, String)>,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send>> {
        let command = command.to_owned();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                use std::os::unix::process::ExitStatusExt;
                let mut child = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&command)
                    .envs(env)
                    .spawn()
                    .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
                let deadline = std::time::Instant::now() + timeout;
                loop {
                    if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                        return Ok(status
                            .code()
                            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
                    }
                    if std::time::Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("timed out after {timeout:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

type Reports = Arc<Mutex<Vec<String>>>;

fn start(specs: Vec<NotifySpec>) -> (Notifier, Reports) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let notifier = Notifier::start(
        specs,
        Arc::new(ShellRunner),
        Arc::new(move |line| sink.lock().unwrap().push(line)),
    );
    (notifier, reports)
}

fn webhook(url: String, format: PayloadFormat) -> NotifySpec {
    NotifySpec {
        on: vec![],
        services: vec![],
        target: NotifyTarget::Webhook {
            url,
            format,
            headers: vec![],
            timeout: Duration::from_secs(5),
        },
    }
}

fn command(command: String, timeout: Duration) -> NotifySpec {
    NotifySpec {
        on: vec![],
        services: vec![],
        target: NotifyTarget::Command { command, timeout },
    }
}

fn event(instance: &str, kind: EventKind) -> Event {
    Event {
        at: SystemTime::now(),
        instance: instance.into(),
        service: instance.split(':').next().unwrap().into(),
        kind,
    }
}

fn fatal(instance: &str, reason: &str) -> Event {
    event(
        instance,
        EventKind::StateChanged {
            from: "running",
            to: "fatal",
            reason: reason.into(),
        },
    )
}

fn exited(instance: &str, status: ExitStatus) -> Event {
    event(instance, EventKind::Exited { pid: 7, status })
}

fn gaps(requests: &[Received]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

fn secs(list: &[u64]) -> Vec<Duration> {
    list.iter().map(|s| Duration::from_secs(*s)).collect()
}

const LONG: Duration = Duration::from_secs(600);

// ---- delivery ----------------------------------------------------------------------------

#[tokio::test]
async fn json_payload_with_our_and_the_users_headers() {
    let rx = Receiver::start(vec![], ok()).await;
    let mut spec = webhook(rx.url("/hook?token=1"), PayloadFormat::Json);
    if let NotifyTarget::Webhook { headers, .. } = &mut spec.target {
        headers.push(("X-Token".into(), "abc".into()));
    }
    let (notifier, reports) = start(vec![spec]);
    notifier.observe(&exited("web:2", ExitStatus::Code(3)));
    notifier.observe(&fatal(
        "web:2",
        "exited with code 3; 5 restarts in 1m, giving up",
    ));
    notifier.close(LONG).await;

    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/hook?token=1");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("tend/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.header("x-token"), Some("abc"));
    assert_eq!(r.header("host"), Some(rx.addr.to_string().as_str()));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let json = r.json();
    assert_eq!(json["event"], "fatal");
    assert_eq!(json["service"], "web");
    assert_eq!(json["instance"], "web:2");
    assert_eq!(
        json["reason"],
        "exited with code 3; 5 restarts in 1m, giving up"
    );
    assert_eq!(json["exit"], "exit code 3");
    assert_eq!(json["host"], hostname());
    let at = json["at"].as_str().unwrap();
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert!(reports.lock().unwrap().is_empty());
}

#[tokio::test]
async fn slack_discord_and_text_payloads() {
    let rx = Receiver::start(vec![], ok()).await;
    let (notifier, reports) = start(vec![
        webhook(rx.url("/slack"), PayloadFormat::Slack),
        webhook(rx.url("/discord"), PayloadFormat::Discord),
        webhook(rx.url("/text"), PayloadFormat::Text),
    ]);
    notifier.observe(&fatal("web:2", "exited with code 3"));
    notifier.close(LONG).await;

    let requests = rx.requests();
    assert_eq!(requests.len(), 3);
    let by = |target: &str| {
        requests
            .iter()
            .find(|r| r.target == target)
            .unwrap()
            .clone()
    };
    let line = format!("tend@{}: web:2 is fatal: exited with code 3", hostname());
    let slack = by("/slack");
    assert_eq!(slack.header("content-type"), Some("application/json"));
    assert_eq!(slack.json(), serde_json::json!({ "text": line }));
    let discord = by("/discord");
    assert_eq!(discord.json()["content"], line.as_str());
    let text = by("/text");
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(text.body, line);
    assert!(reports.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn retries_after_two_500s_then_delivers() {
    let rx = Receiver::start(vec![status(500), status(500)], ok()).await;
    let (notifier, reports) = start(vec![webhook(rx.url("/"), PayloadFormat::Json)]);
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;

    let requests = rx.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(gaps(&requests), secs(&[1, 2]));
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    assert!(reports.lock().unwrap().is_empty(), "{reports:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_up_to_a_cap() {
    let rx = Receiver::start(
        vec![
            Answer::Status(429, vec![("retry-after", "7".into())], "slow down"),
            Answer::Status(503, vec![("retry-after", "86400".into())], ""),
        ],
        ok(),
    )
    .await;
    let (notifier, reports) = start(vec![webhook(rx.url("/"), PayloadFormat::Json)]);
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;

    let requests = rx.requests();
    assert_eq!(
        gaps(&requests),
        vec![Duration::from_secs(7), RETRY_AFTER_CAP]
    );
    assert!(reports.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_400_is_reported_once_and_not_retried() {
    let rx = Receiver::start(vec![], Answer::Status(400, vec![], "invalid_payload")).await;
    let (notifier, reports) = start(vec![webhook(
        rx.url("/services/secret"),
        PayloadFormat::Slack,
    )]);
    notifier.observe(&fatal("web:2", "giving up"));
    notifier.close(LONG).await;

    assert_eq!(rx.requests().len(), 1);
    assert_eq!(
        *reports.lock().unwrap(),
        vec![format!(
            "notify: http://{}/… refused the fatal notice for web:2: HTTP 400 Bad Request: \
             invalid_payload",
            rx.addr
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_five_attempts_with_backoff() {
    let rx = Receiver::start(vec![], Answer::Status(500, vec![], "down")).await;
    let (notifier, reports) = start(vec![webhook(rx.url("/secret"), PayloadFormat::Json)]);
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;

    let requests = rx.requests();
    assert_eq!(requests.len(), MAX_ATTEMPTS);
    assert_eq!(gaps(&requests), secs(&[1, 2, 4, 8]));
    assert_eq!(
        *reports.lock().unwrap(),
        vec![format!(
            "notify: gave up on http://{}/… after 5 attempts: HTTP 500 Internal Server Error: down",
            rx.addr
        )]
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_receiver_times_out_per_attempt() {
    let rx = Receiver::start(vec![], Answer::Hang).await;
    let mut spec = webhook(rx.url("/"), PayloadFormat::Json);
    if let NotifyTarget::Webhook { timeout, .. } = &mut spec.target {
        *timeout = Duration::from_secs(2);
    }
    let (notifier, reports) = start(vec![spec]);
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;

    let requests = rx.requests();
    assert_eq!(requests.len(), MAX_ATTEMPTS);
    // Each attempt waits out its 2 s, then the backoff.
    assert_eq!(gaps(&requests), secs(&[3, 4, 6, 10]));
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0].ends_with("after 5 attempts: no reply within 2s"),
        "{reports:?}"
    );
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_and_reports_once() {
    let rx = Receiver::start(vec![], Answer::Hang).await;
    let (notifier, reports) = start(vec![webhook(rx.url("/"), PayloadFormat::Json)]);
    notifier.observe(&fatal("web", "n0"));
    rx.wait_for(1).await; // the worker holds n0; the queue is empty
    for n in 1..=QUEUE_CAPACITY + 2 {
        notifier.observe(&fatal("web", &format!("n{n}")));
    }
    assert_eq!(notifier.dropped(), 2);
    {
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].contains("not keeping up"), "{reports:?}");
    }
    rx.release();
    notifier.close(LONG).await;

    let delivered: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.json()["reason"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = std::iter::once(0)
        .chain(3..=QUEUE_CAPACITY + 2)
        .map(|n| format!("n{n}"))
        .collect();
    assert_eq!(delivered, expected, "n1 and n2, the oldest queued, went");
    assert_eq!(reports.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn observe_returns_at_once_while_the_receiver_hangs() {
    let rx = Receiver::start(vec![], Answer::Hang).await;
    let (notifier, reports) = start(vec![webhook(rx.url("/"), PayloadFormat::Json)]);
    let begun = std::time::Instant::now();
    for n in 0..1000 {
        notifier.observe(&fatal("web", &format!("n{n}")));
    }
    let took = begun.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "1000 observes took {took:?}"
    );
    // On this single-threaded runtime the worker has not run yet: 64 queued, the rest dropped.
    assert_eq!(notifier.dropped(), 1000 - QUEUE_CAPACITY as u64);
    rx.wait_for(1).await;
    notifier.close(Duration::from_millis(100)).await;
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(
        reports[1],
        format!("notify: {QUEUE_CAPACITY} notice(s) not delivered before shutdown")
    );
}

#[tokio::test]
async fn targets_get_only_the_kinds_and_services_they_asked_for() {
    let rx = Receiver::start(vec![], ok()).await;
    let mut restarts_only = webhook(rx.url("/restarts"), PayloadFormat::Json);
    restarts_only.on = vec![NoticeKind::Restarted];
    let mut db_only = webhook(rx.url("/db"), PayloadFormat::Json);
    db_only.services = vec!["db".into()];
    let (notifier, _reports) = start(vec![restarts_only, db_only]);

    notifier.observe(&fatal("web", "giving up"));
    for (from, to) in [("running", "backoff"), ("backoff", "starting")] {
        notifier.observe(&event(
            "web",
            EventKind::StateChanged {
                from,
                to,
                reason: "exited with code 1; restarting in 1s".into(),
            },
        ));
    }
    notifier.observe(&fatal("db", "giving up"));
    notifier.close(LONG).await;

    let mut got: Vec<(String, String, String)> = rx
        .requests()
        .iter()
        .map(|r| {
            let json = r.json();
            (
                r.target.clone(),
                json["event"].as_str().unwrap().to_owned(),
                json["service"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    let want = |t: &str, e: &str, s: &str| (t.to_owned(), e.to_owned(), s.to_owned());
    assert_eq!(
        got,
        vec![
            want("/db", "fatal", "db"),
            want("/restarts", "restarted", "web")
        ]
    );
}

// ---- https -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn https_with_nothing_listening_fails_cleanly() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}/hook");
    let (notifier, reports) = start(vec![webhook(url, PayloadFormat::Json)]);
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;

    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let prefix =
        format!("notify: gave up on https://127.0.0.1:{port}/… after 5 attempts: cannot connect");
    assert!(reports[0].starts_with(&prefix), "{reports:?}");
}

fn certificate(name: &str) -> (rustls::pki_types::CertificateDer<'static>, rcgen::KeyPair) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    (cert.der().clone(), signing_key)
}

fn acceptor(cert: rustls::pki_types::CertificateDer<'static>, key: &rcgen::KeyPair) -> TlsAcceptor {
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn notice() -> Notice {
    Notice {
        kind: NoticeKind::Fatal,
        at: SystemTime::now(),
        service: "web".into(),
        instance: "web:2".into(),
        reason: "giving up".into(),
        exit: None,
    }
}

#[tokio::test]
async fn https_end_to_end_with_sni() {
    let (cert, key) = certificate("localhost");
    let rx = Receiver::start_tls(vec![], ok(), acceptor(cert.clone(), &key)).await;
    let url = format!("https://localhost:{}/hook", rx.addr.port());
    let mut hook = webhook::Webhook::new(
        &url,
        PayloadFormat::Json,
        &[],
        Duration::from_secs(5),
        "box".into(),
    )
    .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    hook.tls = Some(webhook::client_config(roots).unwrap());
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    hook.deliver(&notice(), &move |line| sink.lock().unwrap().push(line))
        .await;

    assert!(reports.lock().unwrap().is_empty(), "{reports:?}");
    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].sni.as_deref(), Some("localhost"));
    assert_eq!(requests[0].target, "/hook");
    assert_eq!(
        requests[0].header("host"),
        Some(format!("localhost:{}", rx.addr.port()).as_str())
    );
    assert_eq!(requests[0].json()["host"], "box");
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_without_retries() {
    let (cert, key) = certificate("localhost");
    let rx = Receiver::start_tls(vec![], ok(), acceptor(cert, &key)).await;
    let url = format!("https://localhost:{}/hook", rx.addr.port());
    let mut hook = webhook::Webhook::new(
        &url,
        PayloadFormat::Json,
        &[],
        Duration::from_secs(5),
        "box".into(),
    )
    .unwrap();
    let (other, _) = certificate("localhost");
    let mut roots = RootCertStore::empty();
    roots.add(other).unwrap();
    hook.tls = Some(webhook::client_config(roots).unwrap());
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let begun = std::time::Instant::now();
    hook.deliver(&notice(), &move |line| sink.lock().unwrap().push(line))
        .await;

    assert!(begun.elapsed() < Duration::from_secs(1), "no backoff");
    assert!(rx.requests().is_empty());
    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains("refused the fatal notice"),
        "{reports:?}"
    );
    assert!(reports[0].contains("certificate"), "{reports:?}");
}

// ---- commands ----------------------------------------------------------------------------

#[tokio::test]
async fn a_command_gets_the_notice_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let (notifier, reports) = start(vec![command(
        format!("env > '{}'", out.display()),
        Duration::from_secs(10),
    )]);
    notifier.observe(&exited("web:2", ExitStatus::Signal(libc::SIGKILL)));
    notifier.observe(&fatal("web:2", "killed by SIGKILL; giving up"));
    notifier.close(LONG).await;
    assert!(reports.lock().unwrap().is_empty(), "{reports:?}");

    let written = std::fs::read_to_string(&out).unwrap();
    let var = |name: &str| {
        written
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    };
    assert_eq!(var("TEND_EVENT").as_deref(), Some("fatal"));
    assert_eq!(var("TEND_SERVICE").as_deref(), Some("web"));
    assert_eq!(var("TEND_INSTANCE").as_deref(), Some("web:2"));
    assert_eq!(
        var("TEND_REASON").as_deref(),
        Some("killed by SIGKILL; giving up")
    );
    assert_eq!(var("TEND_EXIT").as_deref(), Some("SIGKILL"));
    assert_eq!(var("TEND_HOST"), Some(hostname()));
    assert!(var("TEND_AT").unwrap().ends_with('Z'));
    assert!(
        var("PATH").is_some(),
        "the daemon's environment comes along"
    );
}

#[tokio::test]
async fn failing_and_hanging_commands_are_reported() {
    let (notifier, reports) = start(vec![
        command("exit 3".into(), Duration::from_secs(10)),
        command("sleep 5".into(), Duration::from_millis(200)),
    ]);
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;

    let mut reports = reports.lock().unwrap().clone();
    reports.sort();
    assert_eq!(
        reports,
        vec![
            "notify: command `exit 3` for the fatal notice of web: exited with code 3".to_owned(),
            "notify: command `sleep 5` for the fatal notice of web: timed out after 200ms"
                .to_owned(),
        ]
    );
}

// ---- configuration and formatting --------------------------------------------------------

#[tokio::test]
async fn invalid_targets_are_reported_and_left_out() {
    let (notifier, reports) = start(vec![
        webhook("ftp://example.com/".into(), PayloadFormat::Json),
        command("   ".into(), Duration::from_secs(1)),
        command("true".into(), Duration::ZERO),
    ]);
    assert_eq!(
        *reports.lock().unwrap(),
        vec![
            "notify: ignoring a target: a webhook URL must start with http:// or https://",
            "notify: ignoring a target: notify command is empty",
            "notify: ignoring a target: notify timeout must be more than 0s",
        ]
    );
    notifier.observe(&fatal("web", "giving up"));
    notifier.close(LONG).await;
    assert!(validate(&webhook("https://ntfy.sh/x".into(), PayloadFormat::Text)).is_ok());
}

#[test]
fn kinds_and_formats_read_as_the_manifest_spells_them() {
    let kinds: Vec<NoticeKind> =
        serde_json::from_str(r#"["fatal","unhealthy","restarted","recovered","flapping"]"#)
            .unwrap();
    assert_eq!(kinds, NoticeKind::ALL);
    for kind in NoticeKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
    let formats: Vec<PayloadFormat> =
        serde_json::from_str(r#"["json","slack","discord","text"]"#).unwrap();
    assert_eq!(
        formats,
        [
            PayloadFormat::Json,
            PayloadFormat::Slack,
            PayloadFormat::Discord,
            PayloadFormat::Text
        ]
    );
}

#[test]
fn timestamps_are_rfc3339_utc_millis() {
    let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    assert_eq!(rfc3339_millis(at(0)), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        rfc3339_millis(at(1_700_000_000_123)),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(
        rfc3339_millis(at(951_782_400_000)),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(
        rfc3339_millis(at(4_107_542_399_999)),
        "2100-02-28T23:59:59.999Z"
    );
    assert_eq!(
        rfc3339_millis(at(1_709_251_199_001)),
        "2024-02-29T23:59:59.001Z"
    );
    let before = SystemTime::UNIX_EPOCH - Duration::from_millis(1);
    assert_eq!(rfc3339_millis(before), "1969-12-31T23:59:59.999Z");
}

#[test]
fn summary_lines() {
    let mut n = notice();
    n.reason = "exited with code 3, 5 restarts in 60s".into();
    assert_eq!(
        n.summary("host"),
        "tend@host: web:2 is fatal: exited with code 3, 5 restarts in 60s"
    );
    n.kind = NoticeKind::Recovered;
    n.reason = String::new();
    assert_eq!(n.summary("host"), "tend@host: web:2 recovered");
    n.kind = NoticeKind::Restarted;
    n.exit = Some("SIGKILL".into());
    assert_eq!(n.summary("host"), "tend@host: web:2 restarted: SIGKILL");
    assert_eq!(human(Duration::from_secs(45)), "45s");
    assert_eq!(human(Duration::from_secs(250)), "4m10s");
    assert_eq!(human(Duration::from_secs(300)), "5m");
    assert_eq!(human(Duration::from_secs(7500)), "2h5m");
    assert_eq!(human(Duration::from_secs(7200)), "2h");
}
