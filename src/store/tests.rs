use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tempfile::TempDir;

use super::writer::Msg;
use super::*;

const WAIT: Duration = Duration::from_secs(30);
const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<String>>>);

impl Reports {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn matching(&self, needle: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|r| r.contains(needle))
            .collect()
    }
}

/// Opened, and the database ready (or its problem reported), so that the tests can look at
/// the reports at once.
fn open_with(options: HistoryOptions) -> (History, Reports) {
    let (history, reports) = open_without_waiting(options);
    assert!(history.opened(WAIT), "the database never opened");
    (history, reports)
}

fn open_without_waiting(options: HistoryOptions) -> (History, Reports) {
    let reports = Reports::default();
    let sink = reports.clone();
    let history = History::open(options, move |m| sink.0.lock().unwrap().push(m));
    (history, reports)
}

fn open_at(path: &Path) -> (History, Reports) {
    open_with(HistoryOptions::new(path))
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("tend.db")
}

fn event(at_ms: i64, service: &str, instance: &str, kind: &str) -> EventRow {
    EventRow {
        id: None,
        at_ms,
        service: service.into(),
        instance: instance.into(),
        kind: kind.into(),
        from_state: None,
        to_state: None,
        reason: None,
        pid: None,
        exit_code: None,
        signal: None,
        probe: None,
        passing: None,
    }
}

fn state(at_ms: i64, instance: &str, from: Option<&str>, to: &str) -> EventRow {
    let service = instance.split(':').next().unwrap();
    EventRow {
        from_state: from.map(Into::into),
        to_state: Some(to.into()),
        ..event(at_ms, service, instance, "state")
    }
}

fn action(at_ms: i64, what: &str) -> ActionRow {
    ActionRow {
        id: None,
        at_ms,
        origin: "unix uid=1000".into(),
        who: "uid 1000".into(),
        action: what.into(),
        targets: "web".into(),
        ok: true,
        result: "restarted 2 instances".into(),
    }
}

fn sample(at_ms: i64, instance: &str, cpu: Option<f64>, rss: Option<u64>) -> SampleRow {
    SampleRow {
        at_ms,
        service: instance.split(':').next().unwrap().into(),
        instance: instance.into(),
        cpu_percent: cpu,
        rss_bytes: rss,
    }
}

fn all_events(history: &History) -> Vec<EventRow> {
    history.events(&EventFilter::default()).unwrap()
}

fn without_id(mut rows: Vec<EventRow>) -> Vec<EventRow> {
    for row in &mut rows {
        row.id = None;
    }
    rows
}

fn aside_files(dir: &Path, tag: &str) -> Vec<PathBuf> {
    let prefix = format!("tend.db.{tag}-");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .collect();
    found.sort();
    found
}

fn count(path: &Path, sql: &str) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn records_and_queries_made_while_the_database_opens_wait_for_it() {
    let dir = TempDir::new().unwrap();
    // A file with rows in it, so that the second open has something to check.
    let (first, _) = open_at(&db_path(&dir));
    for i in 0..500 {
        first.record(Record::Event(state(
            now_ms() - 10_000 + i,
            "web:1",
            None,
            "running",
        )));
    }
    assert!(first.flush(WAIT));
    first.close(WAIT);

    let (history, reports) = open_without_waiting(HistoryOptions::new(db_path(&dir)));
    history.record(Record::Event(state(now_ms(), "web:2", None, "running")));
    // Asked before the writer thread may have opened anything: the query waits for it (and
    // may already see the new row, if its batch was committed meanwhile).
    let seen = all_events(&history).len();
    assert!(seen == 500 || seen == 501, "{seen}");
    assert!(history.flush(WAIT));
    let events = all_events(&history);
    assert_eq!(events.len(), 501);
    assert_eq!(events.iter().filter(|e| e.instance == "web:2").count(), 1);
    assert!(reports.all().is_empty(), "{:?}", reports.all());
    assert_eq!(history.dropped(), 0);
}

#[test]
fn every_record_type_round_trips() {
    let dir = TempDir::new().unwrap();
    let (history, reports) = open_at(&db_path(&dir));
    let now = now_ms();
    let exit = EventRow {
        from_state: Some("running".into()),
        to_state: Some("backoff".into()),
        reason: Some("exited with code 3".into()),
        pid: Some(4_000_000_000),
        exit_code: Some(-3),
        signal: Some("SIGKILL".into()),
        ..event(now - 5000, "web", "web:2", "exit")
    };
    let probe = EventRow {
        probe: Some("readiness".into()),
        passing: Some(false),
        ..event(now - 4000, "web", "web:2", "probe")
    };
    let sampled = sample(
        now - 3000,
        "web:2",
        Some(12.34),
        Some(u64::from(u32::MAX) * 3),
    );
    let empty_sample = sample(now - 2000, "web:2", None, None);
    history.record(Record::Event(exit.clone()));
    history.record(Record::Event(probe.clone()));
    history.record(Record::Action(action(now - 1000, "restart")));
    history.record(Record::Sample(sampled.clone()));
    history.record(Record::Sample(empty_sample.clone()));
    assert!(history.flush(WAIT));

    let events = all_events(&history);
    assert!(events.iter().all(|e| e.id.is_some()));
    assert_eq!(without_id(events), vec![exit, probe]);
    let actions = history.actions(&ActionFilter::default()).unwrap();
    assert_eq!(actions.len(), 1);
    assert!(actions[0].id.is_some());
    assert_eq!(
        ActionRow {
            id: None,
            ..actions[0].clone()
        },
        action(now - 1000, "restart")
    );
    let samples = history.samples("web:2", now - 3_600_000, now).unwrap();
    assert_eq!(samples, vec![sampled, empty_sample]);
    assert!(reports.all().is_empty(), "{:?}", reports.all());
    assert_eq!(history.dropped(), 0);
    assert!(!history.in_memory());
}

#[test]
fn event_filters_select_and_limit() {
    let dir = TempDir::new().unwrap();
    let (history, _) = open_at(&db_path(&dir));
    let mut recorded = Vec::new();
    for i in 0..30i64 {
        let (service, instance) = match i % 3 {
            0 => ("web", "web:1"),
            1 => ("web", "web:2"),
            _ => ("worker", "worker"),
        };
        let kind = ["state", "exit", "probe", "spawn", "warning"][(i % 5) as usize];
        let row = event(1000 + i * 100, service, instance, kind);
        recorded.push(row.clone());
        history.record(Record::Event(row));
    }
    // Same instant as the last one: insertion order breaks the tie.
    let tied = event(1000 + 29 * 100, "web", "web:1", "warning");
    recorded.push(tied.clone());
    history.record(Record::Event(tied));
    assert!(history.flush(WAIT));

    let query = |filter: EventFilter| without_id(history.events(&filter).unwrap());
    let expect = |pred: &dyn Fn(&EventRow) -> bool| -> Vec<EventRow> {
        recorded.iter().filter(|e| pred(e)).cloned().collect()
    };

    assert_eq!(query(EventFilter::default()), recorded);
    assert_eq!(
        query(EventFilter {
            service: Some("web".into()),
            ..Default::default()
        }),
        expect(&|e| e.service == "web")
    );
    assert_eq!(
        query(EventFilter {
            instance: Some("web:2".into()),
            ..Default::default()
        }),
        expect(&|e| e.instance == "web:2")
    );
    assert_eq!(
        query(EventFilter {
            kinds: vec!["exit".into(), "probe".into()],
            ..Default::default()
        }),
        expect(&|e| e.kind == "exit" || e.kind == "probe")
    );
    assert_eq!(
        query(EventFilter {
            since_ms: Some(1500),
            until_ms: Some(2000),
            ..Default::default()
        }),
        expect(&|e| (1500..=2000).contains(&e.at_ms))
    );
    // The newest three, oldest first, with the tie in insertion order.
    assert_eq!(
        query(EventFilter {
            limit: 3,
            ..Default::default()
        }),
        recorded[recorded.len() - 3..].to_vec()
    );
    assert_eq!(
        query(EventFilter {
            service: Some("web".into()),
            kinds: vec!["state".into()],
            until_ms: Some(2500),
            limit: 2,
            ..Default::default()
        }),
        {
            let all = expect(&|e| e.service == "web" && e.kind == "state" && e.at_ms <= 2500);
            all[all.len() - 2..].to_vec()
        }
    );

    for i in 0..5 {
        history.record(Record::Action(action(100 * i, &format!("a{i}"))));
    }
    assert!(history.flush(WAIT));
    let actions = history
        .actions(&ActionFilter {
            since_ms: Some(100),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    let names: Vec<&str> = actions.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(names, ["a3", "a4"]);
}

#[test]
fn history_survives_reopen() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, _) = open_at(&path);
    // Recent: the open below runs retention.
    let now = now_ms();
    history.record(Record::Event(state(now - 2000, "web:1", None, "running")));
    history.record(Record::Action(action(now - 1000, "stop")));
    history.close(WAIT);
    // Closed: later records are counted as dropped, queries still answer.
    history.record(Record::Event(state(
        now,
        "web:1",
        Some("running"),
        "stopped",
    )));
    assert_eq!(history.dropped(), 1);
    assert_eq!(all_events(&history).len(), 1);
    drop(history);

    let (history, reports) = open_at(&path);
    assert_eq!(
        without_id(all_events(&history)),
        vec![state(now - 2000, "web:1", None, "running")]
    );
    assert_eq!(history.actions(&ActionFilter::default()).unwrap().len(), 1);
    assert!(reports.all().is_empty(), "{:?}", reports.all());
}

#[test]
fn garbage_file_is_moved_aside() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let garbage = b"not a database ".repeat(8192 / 15 + 1)[..8192].to_vec();
    fs::write(&path, &garbage).unwrap();

    let (history, reports) = open_at(&path);
    assert_eq!(reports.matching("corrupt").len(), 1, "{:?}", reports.all());
    let aside = aside_files(dir.path(), "corrupt");
    assert_eq!(aside.len(), 1);
    assert_eq!(fs::read(&aside[0]).unwrap(), garbage);
    assert!(reports.all()[0].contains(&*aside[0].to_string_lossy()));

    assert!(!history.in_memory());
    history.record(Record::Event(state(1000, "web:1", None, "running")));
    assert!(history.flush(WAIT));
    assert_eq!(all_events(&history).len(), 1);
}

#[test]
fn damaged_page_is_found_at_open() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, _) = open_at(&path);
    for i in 0..3000 {
        let mut row = state(i, "web:1", Some("starting"), "running");
        row.reason = Some(format!("{i:0>200}"));
        history.record(Record::Event(row));
    }
    assert!(history.flush(WAIT));
    history.close(WAIT);
    drop(history);
    assert!(
        !Path::new(&format!("{}-wal", path.display())).exists(),
        "the WAL was checkpointed on close"
    );

    let mut bytes = fs::read(&path).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    assert!(pages > 100, "{pages} pages");
    let middle = pages / 2 * page;
    let garbage = b"not a database ".repeat(page / 15 + 1);
    bytes[middle..middle + page].copy_from_slice(&garbage[..page]);
    fs::write(&path, &bytes).unwrap();

    let (history, reports) = open_at(&path);
    assert_eq!(reports.matching("corrupt").len(), 1, "{:?}", reports.all());
    assert_eq!(aside_files(dir.path(), "corrupt").len(), 1);
    assert!(all_events(&history).is_empty());
    history.record(Record::Event(state(1, "web:1", None, "running")));
    assert!(history.flush(WAIT));
    assert_eq!(all_events(&history).len(), 1);
}

#[test]
fn unknown_schema_is_moved_aside() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
        .unwrap();
    let (history, reports) = open_at(&path);
    assert_eq!(
        reports.matching("schema version 99").len(),
        1,
        "{:?}",
        reports.all()
    );
    assert_eq!(aside_files(dir.path(), "unknown").len(), 1);
    history.record(Record::Event(state(1, "web:1", None, "running")));
    assert!(history.flush(WAIT));
    assert_eq!(all_events(&history).len(), 1);
}

/// Used where permissions cannot stop us (root): a regular file where the directory should be.
#[test]
fn impossible_location_falls_back_to_memory() {
    let dir = TempDir::new().unwrap();
    let blocker = dir.path().join("state");
    fs::write(&blocker, "a file, not a directory").unwrap();
    let (history, reports) = open_at(&blocker.join("tend.db"));
    assert!(history.in_memory());
    assert_eq!(
        reports.matching("will not survive a restart").len(),
        1,
        "{:?}",
        reports.all()
    );
    history.record(Record::Event(state(
        now_ms() - 1000,
        "web:1",
        None,
        "running",
    )));
    history.record(Record::Sample(sample(
        now_ms(),
        "web:1",
        Some(1.0),
        Some(2),
    )));
    assert!(history.flush(WAIT));
    assert_eq!(all_events(&history).len(), 1);
    assert_eq!(
        history
            .samples("web:1", now_ms() - 60_000, now_ms())
            .unwrap()
            .len(),
        1
    );
    assert!(history.run_retention(now_ms()));
    assert_eq!(history.summary(0, now_ms()).unwrap().len(), 1);
}

#[test]
fn unwritable_directory_falls_back_to_memory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).unwrap();
    // Root (as in many CI containers) writes through 0500 anyway; then there is no fallback
    // to observe, only that history works.
    let privileged = fs::write(locked.join("probe"), "x").is_ok();
    let _ = fs::remove_file(locked.join("probe"));

    let (history, reports) = open_at(&locked.join("tend.db"));
    if !privileged {
        assert!(history.in_memory());
        assert_eq!(
            reports.matching("will not survive a restart").len(),
            1,
            "{:?}",
            reports.all()
        );
    }
    history.record(Record::Event(state(1, "web:1", None, "running")));
    assert!(history.flush(WAIT));
    assert_eq!(all_events(&history).len(), 1);
    history.close(WAIT);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn record_never_blocks_and_counts_drops() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let mut options = HistoryOptions::new(&path);
    options.queue_capacity = 64;
    let (history, reports) = open_with(options);

    // Another connection holds the write lock: every commit now waits on busy_timeout.
    let blocker = Connection::open(&path).unwrap();
    blocker.busy_timeout(WAIT).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let sent = 5000;
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..sent {
        let t = Instant::now();
        history.record(Record::Event(state(i, "web:1", None, "running")));
        slowest = slowest.max(t.elapsed());
    }
    let total = started.elapsed();
    assert!(
        slowest < Duration::from_millis(100),
        "one record() took {slowest:?}"
    );
    assert!(
        total < Duration::from_secs(1),
        "{sent} record() calls took {total:?}"
    );
    let dropped = history.dropped();
    assert!(dropped > 0);
    assert_eq!(
        reports.matching("queue full").len(),
        1,
        "{:?}",
        reports.all()
    );

    blocker.execute_batch("ROLLBACK").unwrap();
    assert!(history.flush(WAIT));
    assert_eq!(all_events(&history).len() as u64, sent as u64 - dropped);
    let caught_up = reports.matching("caught up");
    assert_eq!(caught_up.len(), 1, "{:?}", reports.all());
    assert!(
        caught_up[0].contains(&format!("{dropped} records dropped")),
        "{caught_up:?}"
    );
}

#[test]
fn readers_do_not_block_the_writer() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, _) = open_at(&path);
    history.record(Record::Event(state(1, "web:1", None, "running")));
    assert!(history.flush(WAIT));
    let reader = Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let seen: i64 = reader
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let started = Instant::now();
    history.record(Record::Event(state(2, "web:1", Some("running"), "stopped")));
    assert!(history.flush(WAIT));
    assert!(started.elapsed() < Duration::from_secs(1));
    // The open read transaction keeps its snapshot; new readers see the new row.
    let still: i64 = reader
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!((seen, still), (1, 1));
    assert_eq!(all_events(&history).len(), 2);
}

#[test]
fn corruption_while_writing_moves_the_file_and_keeps_the_batch() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, reports) = open_at(&path);
    history.record(Record::Event(state(1, "web:1", None, "starting")));
    assert!(history.flush(WAIT));
    assert!(history.inject(Msg::FailNextCommitAsCorrupt));
    history.record(Record::Event(state(
        2,
        "web:1",
        Some("starting"),
        "running",
    )));
    history.record(Record::Sample(sample(
        now_ms(),
        "web:1",
        Some(5.0),
        Some(10),
    )));
    assert!(history.flush(WAIT));

    assert_eq!(
        reports.matching("corrupt while writing").len(),
        1,
        "{:?}",
        reports.all()
    );
    let aside = aside_files(dir.path(), "corrupt");
    assert_eq!(aside.len(), 1);
    assert_eq!(count(&aside[0], "SELECT count(*) FROM events"), 1);
    // The batch that failed went to the new file; what was committed before is in the old one.
    assert_eq!(
        without_id(all_events(&history)),
        vec![state(2, "web:1", Some("starting"), "running")]
    );
    assert_eq!(
        history
            .samples("web:1", now_ms() - 60_000, now_ms())
            .unwrap()
            .len(),
        1
    );
    assert!(!history.in_memory());
}

#[test]
fn deleted_file_is_replaced() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, reports) = open_at(&path);
    history.record(Record::Event(state(1, "web:1", None, "starting")));
    assert!(history.flush(WAIT));
    fs::remove_file(&path).unwrap();
    history.record(Record::Event(state(
        2,
        "web:1",
        Some("starting"),
        "running",
    )));
    assert!(history.flush(WAIT));
    assert_eq!(
        reports.matching("removed or replaced").len(),
        1,
        "{:?}",
        reports.all()
    );
    assert!(path.exists());
    assert_eq!(count(&path, "SELECT count(*) FROM events"), 1);
    assert_eq!(all_events(&history).len(), 1);
}

#[test]
fn retention_deletes_old_rows_and_gives_space_back() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, _) = open_at(&path);
    let now = now_ms();
    let old = now - 8 * DAY_MS;
    for i in 0..2000 {
        let mut row = state(old + i, "web:1", Some("starting"), "running");
        row.reason = Some("x".repeat(300));
        history.record(Record::Event(row));
    }
    history.record(Record::Event(state(
        now - 3_600_000,
        "web:1",
        None,
        "running",
    )));
    history.record(Record::Action(action(old, "old")));
    history.record(Record::Action(action(now - 3_600_000, "new")));
    history.record(Record::Sample(sample(old, "gone:1", Some(1.0), Some(1))));
    assert!(history.flush(WAIT));
    let pages_before = count(&path, "PRAGMA page_count");

    assert!(history.run_retention(now));
    assert_eq!(
        without_id(all_events(&history)),
        vec![state(now - 3_600_000, "web:1", None, "running")]
    );
    let actions = history.actions(&ActionFilter::default()).unwrap();
    assert_eq!(
        actions
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        ["new"]
    );
    assert_eq!(count(&path, "SELECT count(*) FROM samples_minute"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM series"), 0);

    assert_eq!(count(&path, "PRAGMA auto_vacuum"), 2, "incremental");
    assert_eq!(count(&path, "PRAGMA freelist_count"), 0);
    let pages_after = count(&path, "PRAGMA page_count");
    assert!(
        pages_after * 4 < pages_before,
        "{pages_before} -> {pages_after} pages"
    );
}

#[test]
fn raw_samples_older_than_a_day_become_minutes() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, _) = open_at(&path);
    let now = now_ms();
    let base = floor_to(now - 2 * DAY_MS, MINUTE_MS);
    // Minute one: CPU 10..60 (average 35), RSS up to 600. Minute two: one CPU reading only.
    for i in 0..6 {
        let cpu = 10.0 * (i + 1) as f64;
        history.record(Record::Sample(sample(
            base + i * 10_000,
            "web:1",
            Some(cpu),
            Some(100 * (i as u64 + 1)),
        )));
    }
    history.record(Record::Sample(sample(
        base + 60_000,
        "web:1",
        Some(7.5),
        None,
    )));
    history.record(Record::Sample(sample(
        base + 70_000,
        "web:1",
        None,
        Some(42),
    )));
    let recent = sample(now - 600_000, "web:1", Some(3.0), Some(9));
    history.record(Record::Sample(recent.clone()));
    history.record(Record::Sample(sample(base, "web:2", Some(99.0), Some(1))));
    assert!(history.flush(WAIT));

    let minute = |at: i64, cpu: Option<f64>, rss: Option<u64>| sample(at, "web:1", cpu, rss);
    let expected = vec![
        minute(base, Some(35.0), Some(600)),
        minute(base + 60_000, Some(7.5), Some(42)),
    ];
    let old_range = || {
        history
            .samples("web:1", base - 60_000, base + 180_000)
            .unwrap()
    };
    // Not folded yet: the minute view is computed from the raw points.
    assert_eq!(old_range(), expected);

    assert!(history.run_retention(now));
    assert_eq!(
        count(
            &path,
            &format!(
                "SELECT count(*) FROM samples WHERE at_ms < {}",
                now - DAY_MS
            )
        ),
        0
    );
    assert_eq!(count(&path, "SELECT count(*) FROM samples_minute"), 3);
    assert_eq!(old_range(), expected);
    // The last day stays raw.
    assert_eq!(
        history.samples("web:1", now - 3_600_000, now).unwrap(),
        vec![recent.clone()]
    );
    // A range reaching back more than a day mixes minutes and (aggregated) recent points.
    let wide = history.samples("web:1", base - 60_000, now).unwrap();
    assert_eq!(wide.len(), 3);
    assert_eq!(
        wide[2],
        minute(floor_to(recent.at_ms, MINUTE_MS), Some(3.0), Some(9))
    );

    // A late point for a folded minute merges with it.
    history.record(Record::Sample(sample(
        base + 5_000,
        "web:1",
        Some(0.0),
        Some(1000),
    )));
    assert!(history.flush(WAIT));
    let merged = vec![minute(base, Some(30.0), Some(1000)), expected[1].clone()];
    assert_eq!(old_range(), merged);
    assert!(history.run_retention(now));
    assert_eq!(old_range(), merged);

    // Past retention everything goes, series included.
    assert!(history.run_retention(now + 8 * DAY_MS));
    assert_eq!(count(&path, "SELECT count(*) FROM samples_minute"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM samples"), 0);
    assert_eq!(count(&path, "SELECT count(*) FROM series"), 0);
}

#[test]
fn long_sample_ranges_are_widened_to_stay_under_the_cap() {
    let dir = TempDir::new().unwrap();
    let (history, _) = open_at(&db_path(&dir));
    let now = now_ms();
    let since = now - 7 * DAY_MS - 3_600_000;
    // One point an hour across 7 days and an hour: 10_141 minutes, too many for one-minute
    // buckets.
    for i in 0..=(7 * 24 + 1) {
        history.record(Record::Sample(sample(
            since + i * 3_600_000,
            "web:1",
            Some(1.0),
            Some(1),
        )));
    }
    assert!(history.flush(WAIT));
    let rows = history.samples("web:1", since, now).unwrap();
    assert_eq!(rows.len(), 7 * 24 + 2);
    assert!(
        rows.iter().all(|r| r.at_ms % (2 * MINUTE_MS) == 0),
        "two-minute buckets"
    );
    assert!(matches!(
        history.samples("web:1", 10, 5),
        Err(StoreError::InvalidRange {
            since_ms: 10,
            until_ms: 5
        })
    ));
}

#[test]
fn summary_counts_uptime_restarts_and_failures() {
    let dir = TempDir::new().unwrap();
    let (history, _) = open_at(&db_path(&dir));
    let (since, until) = (1000, 11_000);
    let failed_exit = |at: i64, code: Option<i32>, signal: Option<&str>| EventRow {
        exit_code: code,
        signal: signal.map(Into::into),
        ..event(at, "worker", "worker", "exit")
    };
    let events = vec![
        // web:1 was running before the window; down 3000..4500 with one restart.
        state(0, "web:1", Some("starting"), "running"),
        state(3000, "web:1", Some("running"), "backoff"),
        state(4000, "web:1", Some("backoff"), "starting"),
        state(4500, "web:1", Some("starting"), "running"),
        // web:2 has no history before the window: unknown until 6000, then running.
        state(6000, "web:2", None, "running"),
        // After the window: ignored.
        state(12_000, "web:1", Some("running"), "stopped"),
        // worker: no state changes at all, only exits.
        failed_exit(2000, Some(1), None),
        failed_exit(8000, None, Some("SIGKILL")),
        failed_exit(9000, Some(0), None),
        // db: fatal before the window, so known down throughout; the failure is not in the window.
        state(500, "db", Some("backoff"), "fatal"),
    ];
    for e in &events {
        history.record(Record::Event(e.clone()));
    }
    assert!(history.flush(WAIT));

    let summary = history.summary(since, until).unwrap();
    let names: Vec<&str> = summary.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(names, ["db", "web", "worker"]);
    let (db, web, worker) = (&summary[0], &summary[1], &summary[2]);

    // (2000 + 6500) running of 10000 known for web:1, 5000 of 5000 for web:2.
    assert_eq!(web.instances, 2);
    assert!(
        (web.uptime_percent.unwrap() - 90.0).abs() < 1e-9,
        "{:?}",
        web.uptime_percent
    );
    assert_eq!(web.restarts, 1);
    assert_eq!(web.last_failure, None);

    assert_eq!(worker.instances, 1);
    assert_eq!(worker.uptime_percent, None);
    assert_eq!(worker.restarts, 0);
    let failure = worker.last_failure.clone().unwrap();
    assert_eq!(
        EventRow {
            id: None,
            ..failure
        },
        failed_exit(8000, None, Some("SIGKILL"))
    );

    assert_eq!(db.instances, 1);
    assert_eq!(db.uptime_percent, Some(0.0));
    assert_eq!(db.last_failure, None);

    // A window that starts inside the outage.
    let later = history.summary(3500, 5500).unwrap();
    let web = later.iter().find(|s| s.service == "web").unwrap();
    // web:1: 1000 running of 2000; web:2 unknown.
    assert_eq!(web.uptime_percent, Some(50.0));
    assert_eq!(web.restarts, 1);
    assert!(history.summary(5, 1).is_err());
}

/// Not a check but a measurement, for the size figure in the module docs:
/// `cargo test size_for_200_instances -- --ignored --nocapture`.
#[test]
#[ignore]
fn size_for_200_instances_over_7_days() {
    let dir = TempDir::new().unwrap();
    let path = db_path(&dir);
    let (history, _) = open_at(&path);
    history.close(WAIT);
    drop(history);

    let now = now_ms();
    let instances = 200;
    let mut conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn.transaction().unwrap();
    for s in 0..instances {
        tx.execute(
            "INSERT INTO series (id, service, instance) VALUES (?1, ?2, ?3)",
            rusqlite::params![
                s + 1,
                format!("svc{}", s / 4),
                format!("svc{}:{}", s / 4, s % 4)
            ],
        )
        .unwrap();
    }
    {
        // Interleaved by time as the writer would insert them.
        let mut raw = tx
            .prepare("INSERT INTO samples VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        let start = now - DAY_MS;
        for t in (start..now).step_by(10_000) {
            for s in 0..instances {
                raw.execute(rusqlite::params![
                    s + 1,
                    t + s,
                    1234 + s,
                    150_000_000 + s * 4096
                ])
                .unwrap();
            }
        }
        let mut minutes = tx
            .prepare("INSERT INTO samples_minute VALUES (?1, ?2, ?3, 6, ?4)")
            .unwrap();
        for t in (now - 7 * DAY_MS..start).step_by(60_000) {
            for s in 0..instances {
                minutes
                    .execute(rusqlite::params![
                        s + 1,
                        t,
                        6 * (1234 + s),
                        150_000_000 + s * 4096
                    ])
                    .unwrap();
            }
        }
        // A busy system: every instance changes state 20 times a day.
        let mut events = tx
            .prepare("INSERT INTO events (at_ms, service, instance, kind, from_state, to_state, reason) VALUES (?1, ?2, ?3, 'state', 'running', 'backoff', 'exited with code 1')")
            .unwrap();
        for t in (now - 7 * DAY_MS..now).step_by(DAY_MS as usize / 20) {
            for s in 0..instances {
                events
                    .execute(rusqlite::params![
                        t + s,
                        format!("svc{}", s / 4),
                        format!("svc{}:{}", s / 4, s % 4)
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    drop(conn);
    let bytes = fs::metadata(&path).unwrap().len();
    println!("file: {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    for table in ["samples", "samples_minute", "events"] {
        println!(
            "{table}: {} rows",
            count(&path, &format!("SELECT count(*) FROM {table}"))
        );
    }

    let started = Instant::now();
    let (history, reports) = open_at(&path);
    println!("open (quick_check included): {:?}", started.elapsed());
    assert!(reports.all().is_empty(), "{:?}", reports.all());
    let started = Instant::now();
    let rows = history.samples("svc3:1", now - 7 * DAY_MS, now).unwrap();
    println!(
        "7-day chart, {} points: {:?}",
        rows.len(),
        started.elapsed()
    );
    let started = Instant::now();
    let rows = history
        .samples("svc3:1", now - DAY_MS + 60_000, now)
        .unwrap();
    println!(
        "1-day chart, {} points: {:?}",
        rows.len(),
        started.elapsed()
    );
    let started = Instant::now();
    let summary = history.summary(now - 7 * DAY_MS, now).unwrap();
    println!(
        "7-day summary of {} services: {:?}",
        summary.len(),
        started.elapsed()
    );
    let started = Instant::now();
    assert!(history.run_retention(now + 600_000));
    println!("one retention pass: {:?}", started.elapsed());
}

#[test]
fn history_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<History>();
}
