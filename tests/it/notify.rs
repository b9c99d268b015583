//! Notifications through the real daemon: a webhook delivered to a local receiver, retried
//! after a 500, and a command run with the event in its environment.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{Project, wait_until};

/// A receiver that answers 500 to its first request and 200 after, keeping every body.
fn receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let first = {
                let mut bodies = seen.lock().unwrap();
                bodies.push(String::from_utf8_lossy(&body).into_owned());
                bodies.len() == 1
            };
            let status = if first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (address, bodies)
}

#[test]
fn a_webhook_is_retried_until_delivered_and_a_command_sees_the_event() {
    let (address, bodies) = receiver();
    let project = Project::new(&format!(
        r#"
[[tend.notify]]
on = ["restarted"]
services = ["crashy"]
webhook = "http://{address}/hook"
headers = {{ X-Test = "yes" }}

[[tend.notify]]
on = ["fatal"]
command = "echo \"$TEND_EVENT $TEND_INSTANCE $TEND_EXIT\" >> notices.txt"

[services.crashy]
command = "sh -c 'sleep 0.3; exit 3'"
min_uptime = "100ms"
backoff = {{ initial = "100ms", max = "100ms" }}
max_restarts = 1

[services.steady]
command = "sleep 300"
"#
    ));
    let _daemon = project.up_allow_failure();
    wait_until(
        Duration::from_secs(20),
        "the restarted notice delivered after a 500",
        || bodies.lock().unwrap().len() >= 2,
    );
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies[0], bodies[1], "the retry carries the same notice");
    let notice: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(notice["event"], "restarted");
    assert_eq!(notice["service"], "crashy");
    assert_eq!(notice["instance"], "crashy");
    assert!(
        notice["exit"].as_str().unwrap_or_default().contains('3'),
        "{notice}"
    );

    wait_until(Duration::from_secs(20), "the fatal command", || {
        project.read("notices.txt").contains("fatal crashy")
    });
    assert!(!project.read("notices.txt").contains("steady"));
}

/// A critical service going fatal ends the daemon; the notice of that failure is still
/// delivered (the command runs to its end) before tend exits.
#[test]
fn the_notice_that_ends_the_daemon_is_delivered_before_it_exits() {
    let project = Project::new(
        r#"
[[tend.notify]]
on = ["fatal"]
command = "sleep 0.5; echo \"$TEND_EVENT $TEND_INSTANCE\" >> done.txt"

[services.core]
command = "sh -c 'exit 4'"
critical = true
max_restarts = 0
"#,
    );
    let daemon = project.up_allow_failure();
    let pid = daemon.pid();
    wait_until(Duration::from_secs(20), "the daemon to end", || {
        pid.is_none_or(|p| !crate::harness::alive(p))
    });
    assert_eq!(project.read("done.txt").trim(), "fatal core");
}
