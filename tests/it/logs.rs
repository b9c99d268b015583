use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::harness::*;

/// All files of one log (oldest rotated first, then the current one), concatenated.
fn all_of(p: &Project, base: &str) -> Vec<u8> {
    let dir = p.file(".tend/logs");
    let mut rotated: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&format!("{base}."))?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut all = Vec::new();
    for (_, path) in rotated {
        all.extend(std::fs::read(path).unwrap());
    }
    all.extend(std::fs::read(dir.join(base)).unwrap_or_default());
    all
}

fn expected_lines(n: usize) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| format!("line {i} payload payload payload payload payload\n").into_bytes())
        .collect()
}

#[test]
fn size_rotation_keeps_every_byte_and_never_splits_a_line() {
    let p = Project::new(
        r#"
[services.chatty]
command = "sh -c 'seq -f \"line %g payload payload payload payload payload\" 1 20000; exec sleep 1000'"
logs = { max_size = "64KiB", backups = 1000 }
"#,
    );
    let _d = p.up();
    let expected = expected_lines(20000);
    // Wait on the active file alone: reading the rotated ones while rotation renames them
    // races. Once the last line is in, the child writes nothing more and nothing rotates.
    wait_until(Duration::from_secs(20), "the last line written", || {
        std::fs::read(p.file(".tend/logs/chatty.out.log"))
            .unwrap_or_default()
            .ends_with(b"line 20000 payload payload payload payload payload\n")
    });
    assert_eq!(
        all_of(&p, "chatty.out.log"),
        expected,
        "the files hold exactly what the child wrote"
    );
    let dir = p.file(".tend/logs");
    let rotated = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("chatty.out.log.")
        })
        .count();
    assert!(rotated >= 10, "{rotated} rotated files");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{:?} ends inside a line",
            entry.path()
        );
        assert!(
            bytes.len() <= 64 * 1024,
            "{:?} is {} bytes",
            entry.path(),
            bytes.len()
        );
    }
}

#[test]
fn size_rotation_keeps_only_the_configured_backups() {
    let p = Project::new(
        r#"
[services.chatty]
command = "sh -c 'seq -f \"line %g payload payload payload payload payload\" 1 20000; exec sleep 1000'"
logs = { max_size = "64KiB", backups = 2 }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(20), "the last line written", || {
        std::fs::read(p.file(".tend/logs/chatty.out.log"))
            .unwrap_or_default()
            .ends_with(b"line 20000 payload payload payload payload payload\n")
    });
    let mut names: Vec<String> = std::fs::read_dir(p.file(".tend/logs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chatty.out"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["chatty.out.log", "chatty.out.log.1", "chatty.out.log.2"]
    );
}

#[test]
fn age_rotation() {
    let p = Project::new(
        r#"
[services.ticker]
command = "sh -c 'while true; do echo tick; sleep 0.1; done'"
logs = { rotate_every = "1s", max_size = 0 }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(20), "a rotation by age", || {
        p.file(".tend/logs/ticker.out.log.1").exists()
    });
}

#[test]
fn merged_streams_timestamps_and_json() {
    let p = Project::new(
        r#"
[services.merged]
command = "sh -c 'echo one; echo two >&2; echo three; exec sleep 1000'"
logs = { merge = true, timestamps = true }

[services.structured]
command = "sh -c 'printf \"say \\\"hi\\\"\\n\"; echo oops >&2; exec sleep 1000'"
logs = { format = "json" }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(10), "merged output", || {
        p.read(".tend/logs/merged.out.log").lines().count() == 3
    });
    assert!(
        !p.file(".tend/logs/merged.err.log").exists(),
        "merged: no separate stderr file"
    );
    let merged = p.read(".tend/logs/merged.out.log");
    let bodies: Vec<&str> = merged
        .lines()
        .map(|l| l.split_once(' ').unwrap().1)
        .collect();
    let mut sorted = bodies.clone();
    sorted.sort();
    assert_eq!(sorted, ["one", "three", "two"]);
    for line in merged.lines() {
        let stamp = line.split_once(' ').unwrap().0;
        // 2026-11-23T14:15:39.123Z
        assert_eq!(stamp.len(), 24, "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[19] == b'.',
            "{stamp}"
        );
    }
    wait_until(Duration::from_secs(10), "json output", || {
        !p.read(".tend/logs/structured.err.log").is_empty()
    });
    let out: serde_json::Value =
        serde_json::from_str(p.read(".tend/logs/structured.out.log").trim()).unwrap();
    assert_eq!(out["line"], "say \"hi\"");
    assert_eq!(out["service"], "structured");
    assert_eq!(out["instance"], 0);
    assert_eq!(out["stream"], "stdout");
    let err: serde_json::Value =
        serde_json::from_str(p.read(".tend/logs/structured.err.log").trim()).unwrap();
    assert_eq!(err["stream"], "stderr");
}

#[test]
fn long_lines_are_split_and_binary_passes_through() {
    let p = Project::new(
        r#"
[services.odd]
command = "sh -c 'head -c 3000 /dev/zero | tr \"\\0\" x; echo; printf \"\\033[31mred\\033[0m \\377\\376\\n\"; exec sleep 1000'"
logs = { max_line = "1KiB" }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(10), "output", || {
        std::fs::read(p.file(".tend/logs/odd.out.log"))
            .unwrap_or_default()
            .ends_with(b"\xff\xfe\n")
    });
    let bytes = std::fs::read(p.file(".tend/logs/odd.out.log")).unwrap();
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    assert_eq!(
        lines.len(),
        4,
        "3000 x's in three pieces, then the binary line"
    );
    let marker = b" [tend: line split]\n";
    assert!(lines[0].ends_with(marker) && lines[1].ends_with(marker));
    let rejoined: Vec<u8> = lines[..3]
        .iter()
        .flat_map(|l| l.strip_suffix(marker).unwrap_or(l).to_vec())
        .collect();
    assert_eq!(rejoined, [vec![b'x'; 3000], vec![b'\n']].concat());
    assert_eq!(
        lines[3], b"\x1b[31mred\x1b[0m \xff\xfe\n",
        "ANSI and invalid UTF-8 untouched"
    );
}

#[test]
fn tail_and_follow_survive_restarts() {
    let p = Project::new(
        r#"
[services.phoenix]
command = "sh -c 'echo run $$; sleep 0.3; exit 1'"
backoff = { initial = "100ms", max = "100ms" }
max_restarts = 1000
logs = { stdout = "null" }
"#,
    );
    let _d = p.up_allow_failure();
    let mut follower = p.spawn(&["logs", "-f", "-n", "0", "--no-prefix", "phoenix"]);
    let reader = BufReader::new(follower.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut runs = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while runs.len() < 3 && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            assert!(line.starts_with("run "), "{line}");
            runs.insert(line);
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        runs.len() >= 3,
        "follow saw lines from three runs: {runs:?}"
    );
    // The tail keeps output even though stdout goes to "null", across runs.
    let out = p.tend(&["logs", "-n", "2", "--no-prefix", "phoenix"]);
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_ne!(lines[0], lines[1], "two different runs");
}

#[test]
fn logs_merges_targets_in_time_order_with_prefixes() {
    let p = Project::new(
        r#"
[services.a]
command = "sh -c 'echo a1; sleep 0.2; echo a2; exec sleep 1000'"
[services.b]
command = "sh -c 'sleep 0.1; echo b1; sleep 0.2; echo b2; exec sleep 1000'"
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(10), "four lines", || {
        text(&p.tend(&["logs"]).stdout).lines().count() == 4
    });
    let out = text(&p.tend(&["logs", "a", "b"]).stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["a | a1", "b | b1", "a | a2", "b | b2"]);
    let only_a = text(&p.tend(&["logs", "-n", "1", "a"]).stdout);
    assert_eq!(only_a, "a | a2\n");
    let recent = text(&p.tend(&["logs", "--since", "1h", "b"]).stdout);
    assert_eq!(recent.lines().count(), 2);
}

#[test]
fn inherit_goes_to_tends_own_stdout() {
    let p = Project::new(
        r#"
[services.plain]
command = "sh -c 'echo straight through; exec sleep 1000'"
logs = { stdout = "inherit" }
"#,
    );
    let child = p.spawn(&["up"]);
    let _d = Daemon::attach(&p);
    wait_until(Duration::from_secs(10), "the line in the tail", || {
        p.file(".tend/tend.sock").exists()
            && text(&p.tend(&["logs", "--no-prefix"]).stdout).contains("straight through")
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = finish(child, Duration::from_secs(20), "tend up");
    let stdout = text(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == "straight through"),
        "raw, unprefixed: {stdout}"
    );
    assert!(!p.file(".tend/logs/plain.out.log").exists());
    // In the foreground tend's own messages go to stderr and to tend.log, timestamped there.
    assert!(
        text(&out.stderr).contains("tend: stopped"),
        "{}",
        text(&out.stderr)
    );
    let own = p.read(".tend/tend.log");
    let stopped = own
        .lines()
        .find(|l| l.ends_with(" stopped"))
        .unwrap_or_else(|| panic!("tend.log: {own}"));
    assert!(
        stopped.as_bytes()[..24]
            .iter()
            .filter(|b| b.is_ascii_digit())
            .count()
            == 17
            && stopped.as_bytes()[23] == b'Z',
        "an RFC 3339 stamp: {stopped}"
    );
}

#[test]
fn unwritable_log_dir_loses_nothing_in_memory_and_recovers() {
    let p = Project::new(
        r#"
[services.steady]
command = "sh -c 'i=0; while true; do i=$((i+1)); echo n$i; sleep 0.02; done'"
"#,
    );
    let _d = p.up();
    let logs = p.file(".tend/logs");
    wait_until(Duration::from_secs(10), "first lines on disk", || {
        !p.read(".tend/logs/steady.out.log").is_empty()
    });
    // Replace the directory by a file: every open and write fails, even for root.
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&logs, "not a directory").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let during = text(&p.tend(&["logs", "-n", "5", "--no-prefix", "steady"]).stdout);
    assert_eq!(during.lines().count(), 5, "the tail keeps going: {during}");
    let last_during: u64 = during
        .lines()
        .last()
        .unwrap()
        .trim_start_matches('n')
        .parse()
        .unwrap();
    std::fs::remove_file(&logs).unwrap();
    std::fs::create_dir(&logs).unwrap();
    wait_until(Duration::from_secs(10), "writing resumes", || {
        p.read(".tend/logs/steady.out.log")
            .lines()
            .filter_map(|l| l.trim_start_matches('n').parse::<u64>().ok())
            .any(|n| n > last_during)
    });
    wait_until(Duration::from_secs(10), "the loss is reported", || {
        p.read(".tend/tend.log").contains("could not be written")
    });
    let reports = p.read(".tend/tend.log").matches("cannot write").count()
        + p.read(".tend/tend.log").matches("cannot open").count();
    assert!(reports <= 2, "reported once, not per line: {reports}");
}

#[test]
fn a_stalled_log_target_never_blocks_the_child() {
    // The child writes its stdout into a FIFO that the test opens but does not read: the
    // writer's first write that fills it blocks, as on a hung disk. It writes 16 MB, well
    // past all tend can hold without dropping (the child's pipe grown to 1 MiB, 16 chunks in
    // flight of up to 256 KiB each when spliced, the FIFO's 64 KiB): with 3 MB, a loaded
    // machine that read in large spliced chunks kept it all, and no drop was reported.
    let p = Project::new(
        r#"
[services.flood]
command = """sh -c 'head -c 16000000 /dev/zero | tr "\\0" x | fold -w 99; touch wrote-all; \
  while true; do echo after-the-stall; sleep 0.1; done'"""
logs = { stdout = "stuck.fifo" }
"#,
    );
    let fifo = p.file("stuck.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let _d = p.up();
    wait_until(
        Duration::from_secs(60),
        "the child wrote everything while the log target was stuck",
        || p.file("wrote-all").exists(),
    );
    // Unstick it: everything read from here on is what tend wrote after recovering.
    let mut reader = reader;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    // Read on while waiting for the report too: the writer may still be in a write of its
    // backlog that only a reader lets finish, and tend.log comes after it.
    let mut drain = || {
        use std::io::Read;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.len() > 1 << 20 {
                seen.drain(..seen.len() - 4096);
            }
        }
        String::from_utf8_lossy(&seen).contains("after-the-stall")
    };
    wait_until(Duration::from_secs(30), "writing resumes", &mut drain);
    wait_until(Duration::from_secs(20), "the drop is reported", || {
        drain();
        let own = p.read(".tend/tend.log");
        own.contains("has not kept up") && own.contains("bytes of output were dropped")
    });
    let own = p.read(".tend/tend.log");
    assert_eq!(
        own.matches("has not kept up").count(),
        1,
        "reported once, not per chunk: {own}"
    );
}

#[test]
fn tends_own_log_rotates_and_keeps_its_stdout_current() {
    let p = Project::new(
        r#"
[tend]
log = { max_size = "2KiB", backups = 2 }

[services.crashy]
command = "sh -c 'exit 3'"
backoff = { initial = "20ms", max = "20ms", jitter = 0.0 }
max_restarts = 1000
restart_window = "1s"

[services.chatty]
command = "sh -c 'while true; do echo inherited-line; sleep 0.05; done'"
logs = { stdout = "inherit" }
"#,
    );
    let _d = p.up_allow_failure();
    wait_until(Duration::from_secs(30), "tend.log rotated twice", || {
        p.file(".tend/tend.log.2").exists()
    });
    assert!(
        !p.file(".tend/tend.log.3").exists(),
        "only the configured backups"
    );
    for name in [".tend/tend.log.1", ".tend/tend.log.2"] {
        let rotated = p.read(name);
        // Inherited output shares the file between two of tend's own messages, so a file may
        // pass max_size by what arrived in between, never by much.
        assert!(
            rotated.len() <= 4096,
            "{name} near max_size: {}",
            rotated.len()
        );
        assert!(rotated.ends_with('\n'), "{name} ends with a whole line");
    }
    // The detached daemon's stdout (where `inherit` goes) follows the rotation.
    wait_until(
        Duration::from_secs(10),
        "inherited output in the current file",
        || p.read(".tend/tend.log").contains("inherited-line"),
    );
}

#[test]
fn syslog_and_journal_get_every_line_instead_of_files() {
    use std::os::unix::net::UnixDatagram;
    let p = Project::new(
        r#"
[services.shipper]
command = "sh -c 'echo to-out; echo to-err >&2; exec sleep 1000'"
logs = { stdout = "null", syslog = true, syslog_socket = "syslog.sock", journal = true, journal_socket = "journal.sock" }
"#,
    );
    let syslog = UnixDatagram::bind(p.file("syslog.sock")).unwrap();
    let journal = UnixDatagram::bind(p.file("journal.sock")).unwrap();
    for socket in [&syslog, &journal] {
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
    }
    let _d = p.up();
    let receive = |socket: &UnixDatagram| {
        let mut buf = vec![0u8; 65536];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut messages = [receive(&syslog), receive(&syslog)];
    messages.sort_by_key(|m| m.contains("to-err"));
    // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG; user facility, info and warning.
    for (message, pri, msgid, line) in [
        (&messages[0], "<14>1 ", "stdout", "to-out"),
        (&messages[1], "<12>1 ", "stderr", "to-err"),
    ] {
        assert!(message.starts_with(pri), "{message}");
        let fields: Vec<&str> = message[pri.len()..].splitn(7, ' ').collect();
        assert_eq!(fields.len(), 7, "{message}");
        assert!(
            fields[0].ends_with('Z') && fields[0].len() == 24,
            "{message}"
        );
        assert_eq!(
            &fields[2..],
            ["shipper", "0", msgid, "-", line],
            "{message}"
        );
    }
    let mut entries = [receive(&journal), receive(&journal)];
    entries.sort_by_key(|m| m.contains("to-err"));
    for (entry, line, priority, stream) in [
        (&entries[0], "to-out", "6", "stdout"),
        (&entries[1], "to-err", "4", "stderr"),
    ] {
        let fields: Vec<&str> = entry.lines().collect();
        for field in [
            format!("MESSAGE={line}"),
            format!("PRIORITY={priority}"),
            "SYSLOG_IDENTIFIER=shipper".to_string(),
            format!("TEND_STREAM={stream}"),
            "TEND_INSTANCE=0".to_string(),
        ] {
            assert!(fields.contains(&field.as_str()), "{field} in {entry}");
        }
    }
    // "null" stdout writes no file; stderr still has its own; the tail keeps both.
    assert!(!p.file(".tend/logs/shipper.out.log").exists());
    assert_eq!(p.read(".tend/logs/shipper.err.log"), "to-err\n");
    let tail = text(&p.tend(&["logs", "--no-prefix", "shipper"]).stdout);
    assert!(tail.contains("to-out") && tail.contains("to-err"), "{tail}");
}

#[test]
fn a_missing_syslog_socket_is_reported_once_and_loses_nothing_else() {
    let p = Project::new(
        r#"
[services.talker]
command = "sh -c 'for i in 1 2 3 4 5; do echo line$i; done; exec sleep 1000'"
logs = { syslog = true, syslog_socket = "nobody-listens.sock" }
"#,
    );
    let _d = p.up();
    wait_until(Duration::from_secs(10), "the file has every line", || {
        p.read(".tend/logs/talker.out.log").lines().count() == 5
    });
    wait_until(Duration::from_secs(10), "the failure is reported", || {
        p.read(".tend/tend.log").contains("cannot send to syslog")
    });
    assert_eq!(
        p.read(".tend/tend.log")
            .matches("cannot send to syslog")
            .count(),
        1
    );
}

#[test]
fn big_plain_output_is_spliced_rotated_split_and_tailed_like_any_other() {
    // `cat` writes 128 KiB at a time, so tend finds its pipe full and splices; the output
    // must be what the copying path writes: every byte, lines whole in files within
    // max_size, the long line split with the marker, the last partial line ended.
    let p = Project::new(
        r#"
[services.bulk]
command = "sh -c 'cat input.txt; printf \"no newline\"; exec sleep 1000'"
logs = { max_size = "1MiB", backups = 1000 }
"#,
    );
    let numbered = |range: std::ops::Range<usize>| -> Vec<u8> {
        range
            .flat_map(|i| {
                let mut line = format!("line {i:08} ").into_bytes();
                line.resize(99, b'x');
                line.push(b'\n');
                line
            })
            .collect()
    };
    let long = vec![b'y'; 70 * 1024];
    let input = [
        numbered(0..40_000),
        long.clone(),
        b"\n".to_vec(),
        numbered(40_000..80_000),
    ]
    .concat();
    std::fs::write(p.file("input.txt"), &input).unwrap();
    let marker = b" [tend: line split]\n";
    let expected = [
        numbered(0..40_000),
        long[..64 * 1024].to_vec(),
        marker.to_vec(),
        long[64 * 1024..].to_vec(),
        b"\n".to_vec(),
        numbered(40_000..80_000),
        b"no newline\n".to_vec(),
    ]
    .concat();
    let _d = p.up();
    wait_until(Duration::from_secs(60), "the last line written", || {
        std::fs::read(p.file(".tend/logs/bulk.out.log"))
            .unwrap_or_default()
            .ends_with(b"no newline\n")
    });
    assert!(
        all_of(&p, "bulk.out.log") == expected,
        "the files hold what the copying path would have written"
    );
    for entry in std::fs::read_dir(p.file(".tend/logs")).unwrap().flatten() {
        let bytes = std::fs::read(entry.path()).unwrap();
        assert!(bytes.len() <= 1 << 20, "{:?}", entry.path());
        assert!(
            bytes.is_empty() || bytes.ends_with(b"\n"),
            "{:?}",
            entry.path()
        );
    }
    let tail = text(&p.tend(&["logs", "-n", "2", "--no-prefix", "bulk"]).stdout);
    let last = String::from_utf8(numbered(79_999..80_000)).unwrap();
    assert_eq!(tail, format!("{last}no newline\n"));
    let metrics = p.http("GET", "/metrics", "").body;
    let spliced: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("tend_log_spliced_bytes_total{service=\"bulk\",instance=\"bulk\"} ")
        })
        .expect("the spliced bytes metric")
        .parse()
        .unwrap();
    assert!(spliced > 0.0, "some of it went by splice: {spliced}");
}

#[test]
fn a_log_at_the_file_size_limit_is_counted_and_resumes_without_a_cut_line() {
    // RLIMIT_FSIZE makes the write that crosses it short and every later one fail with EFBIG
    // (SIGXFSZ would end tend): a full disk, on any filesystem and without root.
    const LINES: u64 = 20_000;
    const LINE: u64 = 96; // `line-` or `more-`, 90 digits, a newline
    let p = Project::new(
        r#"
[tend]
history = { enabled = false }

[services.filler]
command = """sh -c 'seq -f "line-%090g" 1 20000; touch phase1; \
  while [ ! -e go ]; do sleep 0.05; done; \
  i=0; while [ ! -e stop ]; do i=$((i+1)); printf "more-%090d\\n" $i; sleep 0.02; done; \
  echo $i > wrote; sleep 1000'"""
"#,
    );
    let limit = 256 * 1024;
    let up = {
        use std::os::unix::process::CommandExt;
        let mut command = p.command(&["up", "-d"]);
        unsafe {
            command.pre_exec(move || {
                // The soft limit only, so that the test may lift it again.
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: libc::RLIM_INFINITY,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        finish(command.spawn().unwrap(), Duration::from_secs(60), "up -d")
    };
    let d = Daemon::attach(&p);
    assert!(up.status.success(), "{}", text(&up.stderr));
    wait_until(
        Duration::from_secs(30),
        "the child wrote its first part",
        || p.file("phase1").exists(),
    );
    wait_until(Duration::from_secs(10), "the failure is reported", || {
        p.read(".tend/tend.log").contains("cannot write")
    });
    let tend = d.pid().expect("the daemon's pid");
    assert_eq!(p.state_of("filler"), "running", "tend and the child go on");
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    assert_eq!(
        unsafe { libc::prlimit(tend, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) },
        0
    );
    // The rest of a write cut at the limit goes out on the retry, or the next lines do: then
    // the loss is said, once.
    std::fs::write(p.file("go"), "").unwrap();
    wait_until(Duration::from_secs(30), "the loss is reported", || {
        p.read(".tend/tend.log").contains("could not be written")
    });
    wait_until(Duration::from_secs(30), "writing goes on", || {
        p.read(".tend/logs/filler.out.log")
            .lines()
            .filter(|l| l.starts_with("more-"))
            .count()
            >= 3
    });
    std::fs::write(p.file("stop"), "").unwrap();
    wait_until(Duration::from_secs(10), "the child counted", || {
        !p.read("wrote").is_empty()
    });
    let more: u64 = p.read("wrote").trim().parse().unwrap();
    let last = format!("more-{more:090}\n");
    wait_until(Duration::from_secs(10), "its last line lands", || {
        p.read(".tend/logs/filler.out.log").ends_with(&last)
    });
    let own = p.read(".tend/tend.log");
    let reports: Vec<u64> = own
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once("again; ")?;
            rest.split_once(" bytes")?.0.parse().ok()
        })
        .collect();
    assert_eq!(reports.len(), 1, "said once: {own}");
    assert_eq!(own.matches("cannot write").count(), 1, "said once: {own}");
    let file = p.read(".tend/logs/filler.out.log");
    for (at, line) in file.lines().enumerate() {
        assert_eq!(line.len() as u64, LINE - 1, "line {at} is whole: {line:?}");
        assert!(
            line.starts_with("line-") || line.starts_with("more-"),
            "{line:?}"
        );
    }
    assert!(
        file.len() as u64 >= limit,
        "everything below the limit landed"
    );
    assert_eq!(
        file.len() as u64 + reports[0],
        (LINES + more) * LINE,
        "every byte the child wrote is in the file or counted as lost"
    );
}
