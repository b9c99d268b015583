//! `tend top` for real: the daemon and its children, the TUI in a detached tmux session of
//! a fixed size, keys sent with `send-keys` and the screen read with `capture-pane`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::*;

/// A tmux server of our own, its socket in the project's temp dir; dropping it kills the
/// server and whatever still runs in it.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        let child = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tmux (Debian package `tmux`; ./scripts/test installs it)");
        finish(
            child,
            Duration::from_secs(30),
            &format!("tmux {}", args.join(" ")),
        )
    }

    fn screen(&self) -> String {
        text(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout)
    }

    /// Poll the screen until `ready` holds; returns that screen.
    fn wait_screen(&self, what: &str, mut ready: impl FnMut(&str) -> bool) -> String {
        let mut last = String::new();
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            last = self.screen();
            if ready(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for the screen to show {what}; it shows:\n{last}");
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys: {}", text(&out.stderr));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The screen row of an instance, as words.
fn row<'a>(screen: &'a str, name: &str) -> Option<Vec<&'a str>> {
    screen
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|words| words.first() == Some(&name) && words.get(1) == Some(&"running"))
}

#[test]
fn top_restarts_by_key_survives_the_daemon_going_away_and_quits_leaving_the_terminal_as_it_was() {
    let p = Project::new(
        r#"
[services.web]
command = "sh -c 'echo web says hello; exec sleep 1000'"

[services.db]
command = "sleep 1000"
"#,
    );
    let _daemon = p.up_ready();
    let before = p.instance("web");
    let pid = before["pid"].as_u64().unwrap().to_string();
    let restarts = before["restarts"].as_u64().unwrap();

    let tmux = Tmux {
        socket: p.file("tmux.sock"),
    };
    // The terminal's settings before and after, to compare: raw mode must be undone.
    let script = format!(
        "stty -g > stty.before; '{BIN}' -c '{}' top; echo \"tend top exited $?\"; \
         stty -g > stty.after; exec cat",
        p.manifest().display()
    );
    let dir = p.path().to_str().unwrap();
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "100",
        "-y",
        "30",
        "-c",
        dir,
        &script,
    ]);
    assert!(out.status.success(), "tmux: {}", text(&out.stderr));

    // The table, with web (the first row, so selected) at its pid, and web's output in the
    // log pane.
    let screen = tmux.wait_screen("web and db running, web's output", |s| {
        row(s, "web").is_some_and(|w| w.contains(&pid.as_str()))
            && row(s, "db").is_some()
            && s.contains("web says hello")
    });
    assert!(screen.contains("tend top"), "{screen}");
    assert!(screen.contains("? help"), "{screen}");

    tmux.keys(&["r"]);
    wait_until(Duration::from_secs(60), "web restarted", || {
        let web = p.instance("web");
        web["state"] == "running"
            && web["pid"].as_u64().map(|p| p.to_string()) != Some(pid.clone())
            && web["restarts"].as_u64() == Some(restarts + 1)
    });
    let new_pid = p.instance("web")["pid"].as_u64().unwrap().to_string();
    let screen = tmux.wait_screen("web's new pid and the restart's answer", |s| {
        row(s, "web").is_some_and(|w| w.contains(&new_pid.as_str())) && s.contains("web: restarted")
    });
    let web = row(&screen, "web").unwrap();
    assert!(
        web.contains(&(restarts + 1).to_string().as_str()),
        "{screen}"
    );

    // The daemon goes away: the banner says so and the last rows stay; it comes back: so
    // does the table, with the new processes.
    let out = p.tend(&["down"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tmux.wait_screen("the disconnected banner", |s| s.contains("DISCONNECTED"));
    let _again = p.up_ready();
    let pid = p.instance("web")["pid"].as_u64().unwrap().to_string();
    tmux.wait_screen("web running again", |s| {
        !s.contains("DISCONNECTED") && row(s, "web").is_some_and(|w| w.contains(&pid.as_str()))
    });

    tmux.keys(&["q"]);
    let screen = tmux.wait_screen("tend top's exit", |s| s.contains("tend top exited"));
    assert!(screen.contains("tend top exited 0"), "{screen}");
    // Back on the normal screen, the cursor shown, the settings as they were.
    let state = tmux.run(&[
        "display-message",
        "-p",
        "-t",
        "top",
        "#{alternate_on} #{cursor_flag}",
    ]);
    assert_eq!(text(&state.stdout).trim(), "0 1");
    wait_until(Duration::from_secs(10), "stty.after", || {
        !p.read("stty.after").is_empty()
    });
    assert_eq!(p.read("stty.before"), p.read("stty.after"));
    assert!(
        !screen.contains("instances ("),
        "the TUI's screen is gone:\n{screen}"
    );
}

#[test]
fn top_needs_a_terminal_and_a_daemon() {
    let p = Project::new("[services.web]\ncommand = \"sleep 1000\"\n");
    // Not a terminal (the harness's stdin is /dev/null): said at once, nothing drawn.
    let out = p.tend(&["top"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("tend top needs a terminal"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    // A terminal but no daemon: one line, exit 1, as every client command.
    let tmux = Tmux {
        socket: p.file("tmux.sock"),
    };
    let script = format!(
        "'{BIN}' -c '{}' top; echo \"tend top exited $?\"; exec cat",
        p.manifest().display()
    );
    let dir = p.path().to_str().unwrap();
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "10",
        "-c",
        dir,
        &script,
    ]);
    assert!(out.status.success(), "tmux: {}", text(&out.stderr));
    let screen = tmux.wait_screen("tend top's exit", |s| s.contains("tend top exited"));
    assert!(
        screen.contains("tend: not running (no daemon at"),
        "{screen}"
    );
    assert!(screen.contains("tend top exited 1"), "{screen}");
}
