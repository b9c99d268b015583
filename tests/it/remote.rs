//! The remote API on TCP through the real daemon: bearer tokens and roles, the audit of who
//! acted, a tokens file that is too open, and the unix socket unaffected.

use std::time::Duration;

use crate::harness::{Answer, Project, http_over, text, wait_until};

const READ: &str = "read-token-0123456789abcdef";
const OPERATE: &str = "operate-token-0123456789abcdef";

fn project(mode: u32) -> Project {
    let project = Project::new(
        r#"
[tend.http]
listen = "127.0.0.1:0"
tokens_file = "tokens"

[services.web]
command = "sleep 300"
min_uptime = "100ms"
"#,
    );
    project.write_with_mode(
        "tokens",
        &format!("# who may do what\n{READ} read\n\n{OPERATE} operate  # the deploy bot\n"),
        mode,
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

fn tcp(address: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
    let stream = std::net::TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    http_over(stream, method, path, &headers, body)
}

#[test]
fn tokens_and_roles_on_the_tcp_listener() {
    let project = project(0o600);
    let _daemon = project.up_ready();
    let at = address(&project);

    let none = tcp(&at, "GET", "/api/v1/services", None, "");
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(
        none.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    assert!(none.json()["error"].is_string());
    let wrong = tcp(
        &at,
        "GET",
        "/api/v1/services",
        Some("not-a-token-at-all-xx"),
        "",
    );
    assert_eq!(wrong.status, 401);

    let read = tcp(&at, "GET", "/api/v1/services", Some(READ), "");
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()[0]["name"], "web");
    assert_eq!(tcp(&at, "GET", "/metrics", Some(READ), "").status, 200);
    assert_eq!(tcp(&at, "GET", "/metrics", None, "").status, 401);
    // Kubernetes probes carry no token.
    assert_eq!(tcp(&at, "GET", "/ready", None, "").status, 200);

    let forbidden = tcp(&at, "POST", "/api/v1/services/web/restart", Some(READ), "");
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert_eq!(project.instance("web")["restarts"], 0);

    let restart = tcp(
        &at,
        "POST",
        "/api/v1/services/web/restart",
        Some(OPERATE),
        "",
    );
    assert_eq!(restart.status, 200, "{}", restart.body);
    assert_eq!(project.instance("web")["restarts"], 1);

    wait_until(
        Duration::from_secs(10),
        "the remote restart in the audit",
        || {
            let audit = project.http("GET", "/api/v1/audit", "").json();
            audit.as_array().unwrap().iter().any(|a| {
                a["action"] == "restart"
                    && a["origin"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("tcp 127.0.0.1:")
                    && a["who"].as_str().unwrap_or("").contains("tokens:4")
                    && a["ok"] == true
            })
        },
    );
}

#[test]
fn guessing_tokens_is_slowed_down_and_the_socket_is_unaffected() {
    let project = project(0o600);
    let _daemon = project.up_ready();
    let at = address(&project);
    let mut limited = None;
    for i in 0..20 {
        let answer = tcp(
            &at,
            "GET",
            "/api/v1/services",
            Some(&format!("guess-{i:020}")),
            "",
        );
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status, 401);
    }
    let limited = limited.expect("a client guessing tokens gets 429");
    assert!(limited.header("retry-after").is_some());
    // While that address is held off, the unix socket answers as ever.
    assert_eq!(project.http("GET", "/api/v1/services", "").status, 200);
}

#[test]
fn a_tokens_file_others_can_read_is_refused() {
    let project = project(0o644);
    let out = project.tend(&["up", "-d"]);
    let _daemon = crate::harness::Daemon::attach(&project);
    assert!(
        !out.status.success(),
        "started with a world-readable tokens file"
    );
    let said =
        format!("{}{}", text(&out.stdout), text(&out.stderr)) + &project.read(".tend/tend.log");
    assert!(said.contains("chmod 600"), "the fix is named: {said}");
    assert!(!project.socket().exists());
}
