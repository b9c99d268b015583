//! The capture pipeline end to end inside the library: real pipes filled by the test, the
//! real reader task and writer thread, real files. The pipes are filled before capture
//! starts, so the first read finds more than `SPLICE_MIN` waiting and the spliced path runs
//! for certain; what follows may go either way, and the output must be the same.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::line::LineSplitter;
use super::*;

struct Setup {
    dir: tempfile::TempDir,
    sink: LogSink,
    service: ServiceSpec,
}

fn setup(logs: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("tend.toml");
    std::fs::write(
        &manifest,
        format!("[services.flood]\ncommand = \"true\"\nlogs = {{ {logs} }}\n"),
    )
    .unwrap();
    let service = crate::config::load(&manifest)
        .unwrap()
        .service("flood")
        .unwrap()
        .clone();
    let sink = LogSink::start(
        dir.path().join("logs"),
        None,
        OwnLogTarget {
            path: dir.path().join("tend.log"),
            rotation: LogSpec::default(),
            to_stderr: false,
            redirect_std: false,
        },
    )
    .unwrap();
    Setup { dir, sink, service }
}

/// A pipe as a child's stdout would be, big enough to hold what the test puts in it first.
fn pipe() -> (OwnedFd, std::fs::File) {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    assert!(splice::grow(&write, 1 << 20) >= 1 << 20);
    (read, std::fs::File::from(write))
}

fn numbered(from: usize, to: usize, tag: &str) -> Vec<u8> {
    (from..to)
        .flat_map(|i| {
            let mut line = format!("{tag} {i:08} ").into_bytes();
            line.resize(99, b'x');
            line.push(b'\n');
            line
        })
        .collect()
}

/// What the copying path makes of `input`: lines cut at `max_line` with the marker, and a
/// last partial line ended at EOF.
fn split(input: &[u8], max_line: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut splitter = LineSplitter::new(max_line);
    splitter.feed(input, |line| out.extend_from_slice(line));
    splitter.flush(|line| out.extend_from_slice(line));
    out
}

/// A log's files, oldest first, and their concatenation.
fn files(path: &Path) -> (Vec<PathBuf>, Vec<u8>) {
    let dir = path.parent().unwrap();
    let base = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&format!("{base}."))?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut paths: Vec<PathBuf> = rotated.into_iter().map(|r| r.1).collect();
    if path.exists() {
        paths.push(path.to_path_buf());
    }
    let all = paths
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    (paths, all)
}

/// Capture `first` (in the pipe before capture starts) then `rest` (written in 64 KiB writes
/// while it runs), until EOF and the writer has written everything out.
async fn capture(s: &Setup, first: &[u8], rest: Vec<u8>, stderr: Vec<u8>) {
    let (out_read, mut out_write) = pipe();
    let (err_read, mut err_write) = pipe();
    out_write.write_all(first).unwrap();
    s.sink.capture(&s.service, 0, out_read, err_read);
    let writer = std::thread::spawn(move || {
        for piece in rest.chunks(64 * 1024) {
            out_write.write_all(piece).unwrap();
        }
        // Line by line, as a program writing diagnostics would.
        for line in stderr.split_inclusive(|b| *b == b'\n') {
            err_write.write_all(line).unwrap();
        }
    });
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    s.sink.close(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spliced_output_rotates_at_line_boundaries_and_loses_nothing() {
    let s = setup(r#"max_size = "1MiB", backups = 1000"#);
    let first = numbered(0, 5000, "out");
    let rest = numbered(5000, 80_000, "out");
    capture(&s, &first, rest.clone(), Vec::new()).await;
    let log = s.sink.instance("flood").unwrap();
    assert!(log.spliced_bytes() > 0, "the spliced path ran");
    let (paths, all) = files(&s.dir.path().join("logs/flood.out.log"));
    assert!(all == [first, rest].concat(), "every byte, in order");
    assert!(paths.len() >= 8, "{} files", paths.len());
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        assert!(bytes.len() <= 1 << 20, "{path:?} is {} bytes", bytes.len());
        assert!(bytes.ends_with(b"\n"), "{path:?} ends inside a line");
    }
    let mut tail = log.tail();
    assert_eq!(
        tail.len(),
        1000,
        "the configured tail, read back from the files"
    );
    let last: Vec<Vec<u8>> = tail
        .last(2, None, None)
        .into_iter()
        .map(|l| l.bytes)
        .collect();
    assert_eq!(
        last,
        [
            numbered(79_998, 79_999, "out"),
            numbered(79_999, 80_000, "out")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spliced_output_holds_partial_lines_and_splits_long_ones() {
    let s = setup(r#"max_line = "8KiB""#);
    let mut first = numbered(0, 3000, "out");
    first.extend_from_slice(b"a line that the next write ends");
    let mut rest = b" here\n".to_vec();
    rest.extend(std::iter::repeat_n(b'y', 20_000));
    rest.push(b'\n');
    rest.extend(numbered(3000, 6000, "out"));
    rest.extend(std::iter::repeat_n(b'z', 8192));
    rest.extend_from_slice(b"\nno newline at the end");
    capture(&s, &first, rest.clone(), Vec::new()).await;
    let log = s.sink.instance("flood").unwrap();
    assert!(log.spliced_bytes() > 0, "the spliced path ran");
    let (_, all) = files(&s.dir.path().join("logs/flood.out.log"));
    let expected = split(&[first, rest].concat(), 8192);
    assert!(all == expected, "the same bytes as the copying path writes");
    let last = log.tail().last(1, None, None);
    assert_eq!(last[0].bytes, b"no newline at the end\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_streams_keep_each_line_whole_and_in_order() {
    let s = setup("merge = true");
    let first = numbered(0, 5000, "out");
    let rest = numbered(5000, 20_000, "out");
    let errors = numbered(0, 2000, "err");
    capture(&s, &first, rest.clone(), errors.clone()).await;
    assert!(s.sink.instance("flood").unwrap().spliced_bytes() > 0);
    let all = std::fs::read(s.dir.path().join("logs/flood.out.log")).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for line in all.split_inclusive(|b| *b == b'\n') {
        match &line[..4] {
            b"out " => out.extend_from_slice(line),
            b"err " => err.extend_from_slice(line),
            other => panic!("a line cut or mixed: {:?}", String::from_utf8_lossy(other)),
        }
    }
    assert!(out == [first, rest].concat(), "stdout whole and in order");
    assert!(err == errors, "stderr whole and in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_every_line_after_the_tail_it_read() {
    let s = setup("");
    let (out_read, mut out_write) = pipe();
    let (err_read, _err_write) = pipe();
    // One chunk pipe's worth, spliced at once; then fewer lines than a follower's buffer
    // holds, so that it cannot fall behind.
    let first = numbered(0, 2000, "out");
    out_write.write_all(&first).unwrap();
    s.sink.capture(&s.service, 0, out_read, err_read);
    let log = {
        let mut found = None;
        for _ in 0..2000 {
            found = s
                .sink
                .instance("flood")
                .filter(|l| l.spliced_bytes() == first.len() as u64);
            if found.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        found.expect("the first lines spliced")
    };
    // As `tend logs -f` does: the tail and the subscription under one lock.
    let (head, mut live) = {
        let mut tail = log.tail();
        (tail.last(usize::MAX, None, None), log.follow())
    };
    let rest = numbered(2000, 5000, "out");
    let expected = [first, rest.clone()].concat();
    let writer = std::thread::spawn(move || {
        for piece in rest.chunks(64 * 1024) {
            out_write.write_all(piece).unwrap();
        }
    });
    assert!(!head.is_empty(), "the tail has the spliced lines");
    let mut seen: Vec<u8> = head.into_iter().flat_map(|l| l.bytes).collect();
    let last_line = numbered(4999, 5000, "out");
    while !seen.ends_with(&last_line) {
        let line = tokio::time::timeout(Duration::from_secs(30), live.recv())
            .await
            .expect("lines keep coming")
            .expect("no line skipped");
        seen.extend_from_slice(&line.bytes);
    }
    // The lines are numbered: a gap or a line seen twice would break this.
    assert!(
        expected.ends_with(&seen),
        "the tail, then each later line once, in order"
    );
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_splices_gets_the_same_bytes_by_copy() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let s = setup(&format!("stdout = {:?}", fifo.display().to_string()));
    let first = numbered(0, 5000, "out");
    let rest = numbered(5000, 10_000, "out");
    let expected = [first.clone(), rest.clone()].concat();
    let total = expected.len();
    let drain = std::thread::spawn(move || {
        use std::io::Read;
        let mut reader = reader;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while got.len() < total && std::time::Instant::now() < deadline {
            match reader.read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    });
    capture(&s, &first, rest, Vec::new()).await;
    let got = tokio::task::spawn_blocking(move || drain.join().unwrap())
        .await
        .unwrap();
    assert!(got == expected, "every byte through the FIFO");
    assert_eq!(s.sink.instance("flood").unwrap().spliced_bytes(), 0);
}

#[test]
fn only_plain_output_to_files_is_spliced() {
    let spec = |logs: &str| {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("tend.toml");
        std::fs::write(
            &manifest,
            format!("[services.s]\ncommand = \"true\"\nlogs = {{ {logs} }}\n"),
        )
        .unwrap();
        crate::config::load(&manifest).unwrap().services[0]
            .logs
            .clone()
    };
    let both = |logs: &str| {
        let spec = spec(logs);
        [Stream::Out, Stream::Err].map(|s| may_splice(&spec, s))
    };
    assert_eq!(both(""), [true, true]);
    assert_eq!(both("merge = true"), [true, true]);
    assert_eq!(both(r#"stderr = "null""#), [true, false]);
    assert_eq!(both(r#"stdout = "inherit""#), [false, true]);
    assert_eq!(both("timestamps = true"), [false, false]);
    assert_eq!(both(r#"format = "json""#), [false, false]);
    assert_eq!(
        both(r#"max_line = "1KiB""#),
        [false, false],
        "below a probe block"
    );
    assert_eq!(
        both(r#"max_line = "2MiB""#),
        [false, false],
        "above the tail's bound"
    );
}

#[tokio::test]
async fn lines_spliced_while_someone_began_to_follow_reach_them_once() {
    use std::sync::Arc;
    use std::time::SystemTime;
    let s = setup("");
    let log = s.sink.register(&s.service, 0);
    let path = s.dir.path().join("spliced.log");
    let bytes = numbered(0, 50, "out");
    std::fs::write(&path, &bytes).unwrap();
    let span = || tail::Span {
        file: Arc::new(std::fs::File::open(&path).unwrap()),
        stream: Stream::Out,
        start: 0,
        reads: vec![(bytes.len() as u64, SystemTime::now())],
    };
    // Nobody follows: the lines stay in the file until the tail is read.
    assert!(writer::keep_spliced(&log, span()));
    assert!(log.tail().has_spans());
    assert_eq!(log.tail().last(1000, None, None).len(), 50);
    // A follower subscribed (under the tail lock) after the splice was decided: it missed
    // the tail's copy, so the lines come to it live, and to the tail as well.
    let mut live = {
        let _tail = log.tail();
        log.follow()
    };
    assert!(!writer::keep_spliced(&log, span()));
    let mut seen = Vec::new();
    while let Ok(line) = live.try_recv() {
        seen.extend_from_slice(&line.bytes);
    }
    assert!(seen == bytes, "every line once, in order");
    assert!(!log.tail().has_spans());
    assert_eq!(log.tail().last(1000, None, None).len(), 100);
}
