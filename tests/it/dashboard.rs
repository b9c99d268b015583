//! The web dashboard through the real daemon: its files and their headers, the token login
//! and its cookie, CSRF and role checks on a session's actions, the unix socket's page, and a
//! real browser (Debian's chromium driven by playwright-core) doing what a user does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Answer, Project, text, wait_until};

const READ: &str = "dashboard-read-0123456789abcdef";
const OPERATE: &str = "dashboard-operate-0123456789abcdef";

fn project() -> Project {
    let project = Project::new(
        r#"
[tend.http]
listen = "127.0.0.1:0"
tokens_file = "tokens"

[services.web]
command = "sh -c 'echo web is up; exec sleep 300'"
min_uptime = "100ms"

[services.worker]
command = "sh -c 'echo hello from the worker; echo the worker complains >&2; exec sleep 300'"
min_uptime = "100ms"
"#,
    );
    project.write_with_mode(
        "tokens",
        &format!("{READ} read\n{OPERATE} operate\n"),
        0o600,
    );
    project
}

fn address(project: &Project) -> String {
    let info = project.http("GET", "/api/v1/info", "").json();
    info["http_listen"]
        .as_str()
        .unwrap_or_else(|| panic!("no http_listen in {info}"))
        .to_string()
}

/// A request on the TCP listener with these headers, `Host` the address as a browser sends
/// it, and a body as JSON.
fn tcp(at: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = headers.to_vec();
    if !body.is_empty() {
        all.push(("Content-Type", "application/json"));
    }
    raw(at, method, path, &all, body)
}

/// A request written as is on the TCP listener: no header added but Host and Content-Length.
fn raw(at: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let stream = std::net::TcpStream::connect(at).expect("connect");
    raw_over(stream, at, method, path, headers, body)
}

fn raw_over<S: std::io::Read + std::io::Write>(
    mut stream: S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let _ = stream.write_all(request.as_bytes());
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
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
    // The answers here are small, or chunked only when streamed, which no test reads.
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn login(at: &str, token: &str) -> Answer {
    tcp(
        at,
        "POST",
        "/api/v1/session",
        &[],
        &format!(r#"{{"token": "{token}"}}"#),
    )
}

/// The session cookie a login set, as a `Cookie` header value.
fn cookie_of(answer: &Answer) -> String {
    let set = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {}", answer.body));
    set.split(';').next().unwrap().trim().to_string()
}

#[test]
fn the_page_and_its_files_are_served_with_types_csp_and_etags() {
    let project = project();
    let _daemon = project.up_ready();
    let at = address(&project);

    // No token: the page is public on TCP (it asks for one), the API is not.
    let page = tcp(&at, "GET", "/", &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(
        page.body
            .contains(r#"<script type="module" src="/ui/app.js">"#)
    );
    assert!(page.body.contains(r#"<label for="token">"#));
    let mut weight = page.body.len();

    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let answer = tcp(&at, "GET", &format!("/ui/{file}"), &[], "");
        assert_eq!(answer.status, 200, "{file}: {}", answer.body);
        assert_eq!(answer.header("content-type"), Some(kind), "{file}");
        assert!(answer.header("content-security-policy").is_some());
        weight += answer.body.len();
        // Asked again with its ETag: not modified, no body.
        let tag = answer.header("etag").unwrap().to_string();
        assert!(tag.starts_with('"') && tag.len() > 10, "{tag}");
        let again = tcp(
            &at,
            "GET",
            &format!("/ui/{file}"),
            &[("If-None-Match", &tag)],
            "",
        );
        assert_eq!(again.status, 304, "{file}");
        assert!(again.body.is_empty());
    }
    assert!(weight < 200 * 1024, "the page weighs {weight} bytes");
    // The page, nothing else: other files and the API still need a token.
    assert_eq!(tcp(&at, "GET", "/ui/nothing.js", &[], "").status, 404);
    assert_eq!(tcp(&at, "GET", "/ui/index.html", &[], "").status, 404);
    assert_eq!(tcp(&at, "GET", "/api/v1/services", &[], "").status, 401);
    assert_eq!(tcp(&at, "GET", "/api/v1/session", &[], "").status, 401);
    assert_eq!(tcp(&at, "POST", "/", &[], "").status, 401);
}

#[test]
fn a_token_buys_a_session_cookie_and_the_session_acts_only_with_its_csrf_token() {
    let project = project();
    let _daemon = project.up_ready();
    let at = address(&project);

    let wrong = login(&at, "not-the-token-0123456789");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none());

    let ok = login(&at, OPERATE);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let set = ok.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS, no Secure: {set}");
    let session = ok.json();
    assert_eq!(session["role"], "operate");
    assert_eq!(session["via"], "session");
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    let cookie = cookie_of(&ok);
    let origin = format!("http://{at}");

    // The cookie reads everything, and says who it is.
    let services = tcp(&at, "GET", "/api/v1/services", &[("Cookie", &cookie)], "");
    assert_eq!(services.status, 200, "{}", services.body);
    let me = tcp(&at, "GET", "/api/v1/session", &[("Cookie", &cookie)], "").json();
    assert_eq!(
        (&me["role"], &me["csrf_token"]),
        (&session["role"], &session["csrf_token"])
    );

    // An action with the cookie alone is what another site could make the browser send.
    let restart = "/api/v1/services/web/restart";
    let forged = [
        vec![("Cookie", cookie.as_str())],
        vec![("Cookie", cookie.as_str()), ("X-CSRF-Token", "0000")],
        vec![
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", csrf.as_str()),
            ("Origin", "http://evil.example"),
        ],
        vec![
            ("Cookie", cookie.as_str()),
            ("X-CSRF-Token", csrf.as_str()),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    ];
    for headers in &forged {
        let answer = tcp(&at, "POST", restart, headers, "");
        assert_eq!(answer.status, 403, "{headers:?}: {}", answer.body);
    }
    assert_eq!(
        project.instance("web")["restarts"],
        0,
        "nothing forged acted"
    );

    let pid = project.instance("web")["pid"].clone();
    let done = tcp(
        &at,
        "POST",
        restart,
        &[
            ("Cookie", &cookie),
            ("X-CSRF-Token", &csrf),
            ("Origin", &origin),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        "",
    );
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(project.instance("web")["restarts"], 1);
    assert_ne!(project.instance("web")["pid"], pid);
    wait_until(
        Duration::from_secs(10),
        "the session's restart in the audit",
        || {
            let audit = project.http("GET", "/api/v1/audit", "").json();
            audit.as_array().unwrap().iter().any(|a| {
                a["action"] == "restart"
                    && a["who"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("(dashboard session)")
            }) && audit
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["action"] == "login")
        },
    );

    // A bearer token needs no CSRF token, as before.
    let bearer = format!("Bearer {OPERATE}");
    let answer = tcp(&at, "POST", restart, &[("Authorization", &bearer)], "");
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Logging out ends the session for good.
    let out = tcp(
        &at,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "",
    );
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(out.json()["ended"], true);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = tcp(&at, "GET", "/api/v1/services", &[("Cookie", &cookie)], "");
    assert_eq!(after.status, 401, "{}", after.body);
}

#[test]
fn a_read_session_cannot_act() {
    let project = project();
    let _daemon = project.up_ready();
    let at = address(&project);
    let ok = login(&at, READ);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["role"], "read");
    let csrf = ok.json()["csrf_token"].as_str().unwrap().to_string();
    let cookie = cookie_of(&ok);
    let origin = format!("http://{at}");
    let same_origin = [
        ("Cookie", cookie.as_str()),
        ("X-CSRF-Token", csrf.as_str()),
        ("Origin", origin.as_str()),
    ];
    for (path, body) in [
        ("/api/v1/services/web/restart", ""),
        ("/api/v1/actions/stop", r#"{"targets": ["all"]}"#),
        (
            "/api/v1/actions/scale",
            r#"{"service": "web", "instances": 2}"#,
        ),
        ("/api/v1/shutdown", ""),
    ] {
        let answer = tcp(&at, "POST", path, &same_origin, body);
        assert_eq!(answer.status, 403, "{path}: {}", answer.body);
        assert!(answer.body.contains("`read`"), "{}", answer.body);
    }
    assert_eq!(project.instance("web")["restarts"], 0);
    assert_eq!(project.state_of("web"), "running");
    let logs = tcp(
        &at,
        "GET",
        "/api/v1/logs?targets=worker",
        &[("Cookie", &cookie)],
        "",
    );
    assert!(logs.body.contains("hello from the worker"), "{}", logs.body);
    // A read session may still end itself.
    let out = tcp(&at, "DELETE", "/api/v1/session", &same_origin, "");
    assert_eq!(out.status, 200, "{}", out.body);
}

#[test]
fn malformed_logins_get_4xx_and_the_daemon_carries_on() {
    let project = project();
    let _daemon = project.up_ready();
    let at = address(&project);
    let json = [("Content-Type", "application/json")];
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, &str, u16); 7] = [
        (&[], "", 415),
        (&[("Content-Type", "text/plain")], r#"{"token": "x"}"#, 415),
        (&json, "{", 400),
        (&json, r#"{"token": 12}"#, 400),
        (&json, r#"{"token": "x", "role": "operate"}"#, 400),
        (&json, r#"["token"]"#, 400),
        (&json, &"x".repeat(20_000), 413),
    ];
    for (headers, body, status) in cases {
        let answer = raw(&at, "POST", "/api/v1/session", headers, body);
        assert_eq!(answer.status, status, "{body:.40}: {}", answer.body);
        assert!(answer.header("set-cookie").is_none());
        assert!(answer.json()["error"].is_string());
    }
    // A login from a page of another origin.
    let answer = raw(
        &at,
        "POST",
        "/api/v1/session",
        &[
            ("Content-Type", "application/json"),
            ("Origin", "http://evil.example"),
        ],
        &format!(r#"{{"token": "{OPERATE}"}}"#),
    );
    assert_eq!(answer.status, 403, "{}", answer.body);
    // A cookie that names no session (tend restarted, or made up) is a 401, not a crash.
    let stale = tcp(
        &at,
        "GET",
        "/api/v1/services",
        &[("Cookie", "tend_session=0123; other=1")],
        "",
    );
    assert_eq!(stale.status, 401);
    // Guesses are slowed down like bad bearer tokens, and the page stays public meanwhile.
    let mut blocked = false;
    for _ in 0..20 {
        let answer = login(&at, "guess-guess-guess-guess");
        if answer.status == 429 {
            blocked = true;
            break;
        }
        assert_eq!(answer.status, 401);
    }
    assert!(blocked, "repeated wrong logins were never blocked");
    assert_eq!(tcp(&at, "GET", "/", &[], "").status, 200);
    assert_eq!(project.http("GET", "/health", "").status, 200);
    // On the unix socket there is nothing to log in to.
    let unix = project.http(
        "POST",
        "/api/v1/session",
        &format!(r#"{{"token": "{OPERATE}"}}"#),
    );
    assert_eq!(unix.status, 404, "{}", unix.body);
}

#[test]
fn the_unix_socket_serves_the_page_without_a_login() {
    let project = project();
    let _daemon = project.up_ready();
    let page = project.http("GET", "/", "");
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
    assert!(page.body.contains("/ui/app.js"));
    let me = project.http("GET", "/api/v1/session", "").json();
    assert_eq!(me["role"], "operate", "{me}");
    assert_eq!(me["via"], "unix");
    assert!(me["csrf_token"].is_null());

    // Through `ssh -L`, the browser's own page acts; a page of another origin, or a host name
    // that DNS could rebind, does not.
    let on_socket = |host: &str, headers: &[(&str, &str)]| {
        let stream = std::os::unix::net::UnixStream::connect(project.socket()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        raw_over(
            stream,
            host,
            "POST",
            "/api/v1/services/web/restart",
            headers,
            "",
        )
    };
    let forged = on_socket(
        "localhost:9000",
        &[
            ("Origin", "http://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    let rebound = on_socket(
        "rebound.example:9000",
        &[
            ("Origin", "http://rebound.example:9000"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert_eq!(project.instance("web")["restarts"], 0);
    let own = on_socket(
        "localhost:9000",
        &[
            ("Origin", "http://localhost:9000"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(project.instance("web")["restarts"], 1);
}

/// Where a tool the tests drive lives: an environment variable, or its default place.
fn tool(variable: &str, default: PathBuf, what: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or(default);
    assert!(
        path.exists(),
        "{what} not found at {} (./scripts/test installs it; or set {variable})",
        path.display()
    );
    path
}

/// Debian's chromium, driven by playwright-core from Node, does what a user does: logs in
/// with an operate token, sees the services, restarts one and watches its pid change, reads
/// a service's logs, searches them and filters a stream, sees a restart made elsewhere
/// arrive live, scales a service; then with a read token finds no button, and a request it
/// forges from the page is refused. Screenshots are kept under
/// target/ (CARGO_TARGET_TMPDIR/dashboard-screenshots).
#[test]
fn a_real_browser_logs_in_restarts_a_service_and_a_read_token_cannot_act() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let playwright = tool(
        "TEND_PLAYWRIGHT_CORE",
        manifest_dir.join("target/tools/node/node_modules/playwright-core"),
        "playwright-core (npm)",
    );
    let chromium = tool(
        "TEND_CHROMIUM",
        PathBuf::from("/usr/bin/chromium"),
        "chromium (Debian package `chromium`)",
    );
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).unwrap();

    let project = project();
    let _daemon = project.up_ready();
    let at = address(&project);
    // The browser's profile and temporary files stay in the test's directory.
    let scratch = project.file("browser");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut command = Command::new("node");
    command
        .arg(manifest_dir.join("tests/browser/dashboard.mjs"))
        .arg(format!("http://{at}/"))
        .arg(OPERATE)
        .arg(READ)
        .arg(&screenshots)
        .env("TEND_PLAYWRIGHT_CORE", &playwright)
        .env("TEND_CHROMIUM", &chromium)
        .env("TMPDIR", &scratch)
        .env("HOME", &scratch)
        .current_dir(project.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_in_own_group(command, Duration::from_secs(240));
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{report}",
        screenshots.display()
    );
    assert!(report.contains("dashboard: all checks passed"), "{report}");
    for shot in [
        "login",
        "overview",
        "restarted",
        "service",
        "read-only",
        "phone",
    ] {
        let file = screenshots.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "no screenshot {}",
            file.display()
        );
    }
    // What the browser did is in the audit, under the session.
    let audit = project.http("GET", "/api/v1/audit", "").json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["action"] == "restart"
                && a["ok"] == true
                && a["who"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("(dashboard session)")),
        "{audit}"
    );
}

/// Runs a command in a process group of its own and waits for it with a bound; the whole
/// group is killed afterwards either way, so no browser outlives a failed or hung run.
fn run_in_own_group(mut command: Command, limit: Duration) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    let child = command.spawn().expect("run node (Debian package `nodejs`)");
    let group = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let started = Instant::now();
    let result = rx.recv_timeout(limit);
    // SAFETY: a plain kill(2) of the group this test made; ESRCH when it is already gone.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    match result {
        Ok(output) => output.expect("node's output"),
        Err(_) => panic!(
            "the browser test did not finish within {:?}",
            started.elapsed()
        ),
    }
}
