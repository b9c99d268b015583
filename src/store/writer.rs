//! The one thread that writes: batching, retention and downsampling, and getting back on its
//! feet when the file goes bad under it.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};

use super::schema::{self, Outcome};
use super::{
    ActionRow, BATCH_MAX, BUSY_TIMEOUT, EventRow, HistoryOptions, MINUTE_MS, RAW_SAMPLES_KEPT,
    ReadSource, Record, SampleRow, Shared, duration_ms, floor_to, lock, now_ms,
};

const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// After a failed commit, how long before trying again: a full disk does not empty itself in
/// 250 ms, and each try costs a report-free but real attempt.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) enum Msg {
    /// Boxed: the channel preallocates every slot, and 8192 slots of a 240-byte enum would be
    /// 2 MB of resident memory for an idle queue.
    Record(Box<Record>),
    Flush(SyncSender<bool>),
    Retention(i64, SyncSender<bool>),
    Close(SyncSender<()>),
    /// Makes the next commit fail as if SQLite had found the file corrupt.
    #[cfg(test)]
    FailNextCommitAsCorrupt,
}

/// An open database the writer owns. In memory it is shared with readers, hence the mutex.
pub(super) struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Device and inode of the file, to notice it being deleted or replaced under us; `None`
    /// for the in-memory fallback.
    file: Option<Option<(u64, u64)>>,
}

/// The writer thread: opens the database (the whole file is checked, which can take a
/// while), makes it the queries' source, and then writes what was queued meanwhile and
/// after. Queries wait for the first part.
pub(super) fn open_and_serve(shared: Arc<Shared>, options: HistoryOptions, rx: Receiver<Msg>) {
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let db = open_db(&options.path, &|m| shared.report(m));
        shared.set_source(read_source(&shared, &options.path, db.as_ref()));
        db
    }));
    match opened {
        Ok(db) => {
            shared.mark_open();
            Writer::new(Arc::clone(&shared), options, db).run(rx);
        }
        Err(_) => {
            shared.set_source(ReadSource::Unavailable(
                "history is disabled: opening it failed".into(),
            ));
            shared.mark_open();
            shared.report(
                "history: opening the database stopped after an internal error; nothing will be recorded"
                    .into(),
            );
        }
    }
}

/// Where queries should go for `db`.
pub(super) fn read_source(shared: &Shared, path: &Path, db: Option<&Db>) -> ReadSource {
    match db {
        Some(Db { file: Some(_), .. }) => ReadSource::File {
            path: path.to_path_buf(),
            generation: shared.next_generation(),
        },
        Some(Db { file: None, conn }) => ReadSource::Memory(Arc::clone(conn)),
        None => ReadSource::Unavailable("history is disabled: no database could be opened".into()),
    }
}

enum OpenError {
    Corrupt(String),
    Unknown(i64),
    Unusable(String),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        if is_corrupt(&e) {
            OpenError::Corrupt(e.to_string())
        } else {
            OpenError::Unusable(e.to_string())
        }
    }
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Opens the file, or whatever can stand in for it; `None` only if not even memory works.
pub(super) fn open_db(path: &Path, report: &dyn Fn(String)) -> Option<Db> {
    let shown = path.display();
    let problem = match open_file(path) {
        Ok(conn) => return Some(file_db(path, conn)),
        Err(OpenError::Unusable(why)) => {
            report(format!(
                "history: cannot write {shown} ({why}); keeping history in memory, it will not survive a restart"
            ));
            return open_memory(report);
        }
        Err(OpenError::Corrupt(why)) => ("corrupt", format!("is corrupt ({why})")),
        Err(OpenError::Unknown(v)) => (
            "unknown",
            format!("has schema version {v}, unknown to this tend (written by a newer one?)"),
        ),
    };
    let (tag, what) = problem;
    match move_aside(path, tag) {
        Ok(to) => report(format!(
            "history: {shown} {what}; moved it to {} and started a new one",
            to.display()
        )),
        Err(e) => {
            report(format!(
                "history: {shown} {what} and could not be moved aside ({e}); keeping history in memory, it will not survive a restart"
            ));
            return open_memory(report);
        }
    }
    match open_file(path) {
        Ok(conn) => Some(file_db(path, conn)),
        Err(OpenError::Corrupt(why) | OpenError::Unusable(why)) => {
            report(format!(
                "history: cannot create a new {shown} ({why}); keeping history in memory, it will not survive a restart"
            ));
            open_memory(report)
        }
        Err(OpenError::Unknown(_)) => open_memory(report),
    }
}

fn file_db(path: &Path, conn: Connection) -> Db {
    Db {
        conn: Arc::new(Mutex::new(conn)),
        file: Some(file_identity(path)),
    }
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn open_file(path: &Path) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|e| OpenError::Unusable(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Reads every page's b-tree structure (not the index contents, which is what the full
    // integrity_check adds): a damaged page is found now, not in the middle of some query.
    let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(OpenError::Corrupt(verdict));
    }
    // Before WAL: a new file's auto_vacuum mode is only settable until its first page is
    // written, and switching to WAL writes it.
    if let Outcome::Unknown(v) = schema::migrate(&mut conn)? {
        return Err(OpenError::Unknown(v));
    }
    // On a file system without shared memory WAL is refused and the old mode comes back; the
    // store still works, readers then just wait for commits.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The writer appends and deletes old rows: a small page cache serves that as well as
    // SQLite's default 2 MiB, which would otherwise fill up and stay resident.
    conn.pragma_update(None, "cache_size", -256)?;
    // The WAL file keeps its high-water size after checkpoints; this trims it back, so a burst
    // (or a slow reader holding a checkpoint off) does not leave the file large for good.
    let _limit: i64 = conn.query_row("PRAGMA journal_size_limit = 8388608", [], |r| r.get(0))?;
    // A real write, so a read-only file or directory shows up here and not at the first commit.
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('opened_ms', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [now_ms()],
    )?;
    Ok(conn)
}

fn open_memory(report: &dyn Fn(String)) -> Option<Db> {
    let opened = Connection::open_in_memory().and_then(|mut conn| {
        schema::migrate(&mut conn)?;
        Ok(conn)
    });
    match opened {
        Ok(conn) => Some(Db {
            conn: Arc::new(Mutex::new(conn)),
            file: None,
        }),
        Err(e) => {
            report(format!(
                "history: disabled, not even an in-memory database opens ({e})"
            ));
            None
        }
    }
}

/// Renames `path` and its `-wal`/`-shm` to `path.TAG-<unix seconds>` (+ the same suffixes, so
/// the sqlite3 shell opens the set together). Returns the new name of the main file.
fn move_aside(path: &Path, tag: &str) -> io::Result<PathBuf> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = format!("{}.{tag}-{secs}", path.display());
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    match fs::rename(path, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        let to = PathBuf::from(format!("{}{suffix}", target.display()));
        match fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(target)
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    options: HistoryOptions,
    db: Option<Db>,
    /// instance → (service, series id). Only trusted after a commit: cleared on any failure,
    /// because a rolled-back transaction can take a freshly inserted series with it.
    series: HashMap<String, (String, i64)>,
    batch: Vec<Record>,
    batch_since: Option<Instant>,
    /// Set while writes fail: the batch is kept and retried then.
    retry_at: Option<Instant>,
    failing: bool,
    lost_while_failing: u64,
    /// The last retention pass failed and that was reported.
    cleanup_failing: bool,
    #[cfg(test)]
    fail_next_as_corrupt: bool,
}

impl Writer {
    pub(super) fn new(shared: Arc<Shared>, options: HistoryOptions, db: Option<Db>) -> Writer {
        Writer {
            shared,
            options,
            db,
            series: HashMap::new(),
            batch: Vec::new(),
            batch_since: None,
            retry_at: None,
            failing: false,
            lost_while_failing: 0,
            cleanup_failing: false,
            #[cfg(test)]
            fail_next_as_corrupt: false,
        }
    }

    pub(super) fn run(self, rx: Receiver<Msg>) {
        let shared = Arc::clone(&self.shared);
        let mut writer = self;
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || writer.serve(rx)));
        if outcome.is_err() {
            shared.report("history: the writer stopped after an internal error; nothing more will be recorded".into());
        }
    }

    fn serve(&mut self, rx: Receiver<Msg>) {
        self.retention(now_ms());
        let mut next_retention = Instant::now() + RETENTION_EVERY;
        loop {
            let wake = match self.commit_due() {
                Some(due) => due.min(next_retention),
                None => next_retention,
            };
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(Msg::Record(record)) => {
                    self.shared.queued.fetch_sub(1, Ordering::Relaxed);
                    self.push(*record);
                }
                Ok(Msg::Flush(ack)) => {
                    let ok = self.commit();
                    let _ = ack.try_send(ok);
                }
                Ok(Msg::Retention(at, ack)) => {
                    let ok = self.commit() & self.retention(at);
                    let _ = ack.try_send(ok);
                }
                Ok(Msg::Close(ack)) => {
                    self.shut_down();
                    let _ = ack.try_send(());
                    return;
                }
                #[cfg(test)]
                Ok(Msg::FailNextCommitAsCorrupt) => self.fail_next_as_corrupt = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.shut_down();
                    return;
                }
            }
            let now = Instant::now();
            if self.commit_due().is_some_and(|due| due <= now) {
                self.commit();
            }
            if next_retention <= now {
                self.commit();
                self.retention(now_ms());
                next_retention = Instant::now() + RETENTION_EVERY;
            }
        }
    }

    fn shut_down(&mut self) {
        self.commit();
        if !self.batch.is_empty() {
            self.lose(self.batch.len());
            self.batch.clear();
        }
        self.db = None;
        *lock(&self.shared.cached) = None;
    }

    fn commit_due(&self) -> Option<Instant> {
        if self.batch.is_empty() {
            return None;
        }
        self.retry_at.or_else(|| {
            self.batch_since
                .map(|since| since + self.options.flush_every)
        })
    }

    fn push(&mut self, record: Record) {
        if self.batch.is_empty() {
            self.batch_since = Some(Instant::now());
        }
        self.batch.push(record);
        if self.retry_at.is_none() && self.batch.len() >= BATCH_MAX {
            self.commit();
        }
        // While writes fail the batch is all the buffer there is; keep it as long as the queue.
        let cap = self.options.queue_capacity.max(BATCH_MAX);
        if self.batch.len() > cap {
            let excess = self.batch.len() - cap;
            self.batch.drain(..excess);
            self.lose(excess);
        }
    }

    fn lose(&mut self, n: usize) {
        self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
        self.lost_while_failing += n as u64;
    }

    /// Commits the batch; true when everything asked of it so far is on disk (or in memory).
    fn commit(&mut self) -> bool {
        if self.batch.is_empty() {
            self.end_drop_episode();
            return self.db.is_some();
        }
        self.check_file_still_there();
        let result = self.write_batch();
        let result = match result {
            Err(e) if is_corrupt(&e) => {
                self.shared.report(format!(
                    "history: {} turned out corrupt while writing ({e}); moving it aside and starting a new one",
                    self.options.path.display()
                ));
                self.replace_database(true);
                // The batch was rolled back with the failed transaction: it goes to the new file.
                self.write_batch()
            }
            other => other,
        };
        match result {
            Ok(()) => {
                self.batch.clear();
                self.batch_since = None;
                self.retry_at = None;
                if self.failing {
                    self.failing = false;
                    let lost = std::mem::take(&mut self.lost_while_failing);
                    self.shared.report(format!(
                        "history: writing works again ({lost} records were lost meanwhile)"
                    ));
                }
                self.end_drop_episode();
                true
            }
            Err(e) => {
                self.series.clear();
                if !self.failing {
                    self.failing = true;
                    self.shared.report(format!(
                        "history: cannot write to {} ({e}); holding up to {} records and retrying",
                        self.options.path.display(),
                        self.options.queue_capacity.max(BATCH_MAX)
                    ));
                }
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                false
            }
        }
    }

    fn end_drop_episode(&self) {
        let shared = &*self.shared;
        if shared.queued.load(Ordering::Relaxed) == 0
            && shared.dropping.swap(false, Ordering::AcqRel)
        {
            let n = shared.episode_drops.swap(0, Ordering::AcqRel);
            if n > 0 {
                shared.report(format!(
                    "history: writer caught up; {n} records dropped while the queue was full"
                ));
            }
        }
    }

    fn write_batch(&mut self) -> rusqlite::Result<()> {
        let Some(db) = &self.db else {
            return Err(rusqlite::Error::InvalidPath(self.options.path.clone()));
        };
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_as_corrupt) {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some("injected by a test".into()),
            ));
        }
        let mut conn = lock(&db.conn);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcome = (|| {
            for record in &self.batch {
                match record {
                    Record::Event(e) => insert_event(&tx, e)?,
                    Record::Action(a) => insert_action(&tx, a)?,
                    Record::Sample(s) => {
                        let series = series_id(&tx, &mut self.series, s)?;
                        insert_sample(&tx, series, s)?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = outcome {
            self.series.clear();
            return Err(e);
        }
        tx.commit().inspect_err(|_| self.series.clear())
    }

    /// SQLite keeps writing to a deleted file without complaint, so deletion is looked for:
    /// one stat per batch.
    fn check_file_still_there(&mut self) {
        let Some(Db {
            file: Some(Some(known)),
            ..
        }) = &self.db
        else {
            return;
        };
        let now = match fs::metadata(&self.options.path) {
            Ok(m) => (m.dev(), m.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, 0),
            Err(_) => return,
        };
        if now != *known {
            self.shared.report(format!(
                "history: {} was removed or replaced while in use; starting a new one",
                self.options.path.display()
            ));
            self.replace_database(false);
        }
    }

    /// Closes the current file and opens a fresh one at the same path (moving the old one
    /// aside first when it is corrupt). Readers are shut out meanwhile.
    fn replace_database(&mut self, corrupt: bool) {
        self.shared.set_source(ReadSource::Unavailable(
            "the history database is being replaced".into(),
        ));
        self.series.clear();
        let in_memory = matches!(&self.db, Some(Db { file: None, .. }));
        // Closing checkpoints and removes the -wal/-shm of a deleted file; anything left over
        // must not be replayed into the new file, so it goes aside too.
        self.db = None;
        let path = self.options.path.clone();
        if !in_memory {
            let tag = if corrupt { "corrupt" } else { "orphan" };
            let leftovers = corrupt
                || ["-wal", "-shm"]
                    .iter()
                    .any(|s| Path::new(&format!("{}{s}", path.display())).exists());
            if leftovers && let Err(e) = move_aside(&path, tag) {
                self.shared.report(format!(
                    "history: could not move {} aside: {e}",
                    path.display()
                ));
            }
        }
        let shared = Arc::clone(&self.shared);
        self.db = if in_memory {
            open_memory(&|m| shared.report(m))
        } else {
            open_db(&path, &|m| shared.report(m))
        };
        self.shared
            .set_source(read_source(&self.shared, &path, self.db.as_ref()));
    }

    /// Deletes what is past retention, folds raw samples older than a day into per-minute rows,
    /// and hands freed pages back to the file system.
    ///
    /// Folding happens here, from rows already on disk, rather than as each minute closes: the
    /// writer keeps no per-instance state that a restart would lose, and a minute is folded
    /// once, whole, whatever order its points arrived in.
    fn retention(&mut self, now_ms: i64) -> bool {
        let keep_from = now_ms.saturating_sub(duration_ms(self.options.retention));
        let raw_kept = duration_ms(RAW_SAMPLES_KEPT).min(duration_ms(self.options.retention));
        // Minute-aligned, so a minute is always wholly raw or wholly folded.
        let raw_from = floor_to(now_ms.saturating_sub(raw_kept), MINUTE_MS);
        let minute_from = floor_to(keep_from, MINUTE_MS);
        let result = match &self.db {
            None => return false,
            Some(db) => prune(&mut lock(&db.conn), keep_from, raw_from, minute_from),
        };
        // Series rows may be gone now.
        self.series.clear();
        match result {
            Ok(()) => {
                self.cleanup_failing = false;
                true
            }
            Err(e) if is_corrupt(&e) => {
                self.shared.report(format!(
                    "history: {} turned out corrupt during cleanup ({e}); moving it aside and starting a new one",
                    self.options.path.display()
                ));
                self.replace_database(true);
                false
            }
            Err(e) => {
                if !self.cleanup_failing {
                    self.cleanup_failing = true;
                    self.shared.report(format!(
                        "history: cleanup failed ({e}); old rows stay until a later pass succeeds"
                    ));
                }
                false
            }
        }
    }
}

fn prune(
    conn: &mut Connection,
    keep_from: i64,
    raw_from: i64,
    minute_from: i64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM events WHERE at_ms < ?1", [keep_from])?;
    tx.execute("DELETE FROM actions WHERE at_ms < ?1", [keep_from])?;
    // `series IN (SELECT id ...)` lets SQLite walk the (series, at_ms) key per series instead
    // of scanning the whole table.
    tx.execute(
        "INSERT INTO samples_minute (series, at_ms, cpu_centi_sum, cpu_n, rss_max)
         SELECT series, (at_ms / 60000) * 60000, sum(cpu_centi), count(cpu_centi), max(rss)
         FROM samples WHERE series IN (SELECT id FROM series) AND at_ms < ?1
         GROUP BY series, at_ms / 60000
         ON CONFLICT (series, at_ms) DO UPDATE SET
             cpu_centi_sum = CASE
                 WHEN excluded.cpu_centi_sum IS NULL THEN cpu_centi_sum
                 WHEN cpu_centi_sum IS NULL THEN excluded.cpu_centi_sum
                 ELSE cpu_centi_sum + excluded.cpu_centi_sum END,
             cpu_n = cpu_n + excluded.cpu_n,
             rss_max = max(coalesce(rss_max, excluded.rss_max), coalesce(excluded.rss_max, rss_max))",
        [raw_from],
    )?;
    tx.execute(
        "DELETE FROM samples WHERE series IN (SELECT id FROM series) AND at_ms < ?1",
        [raw_from],
    )?;
    tx.execute(
        "DELETE FROM samples_minute WHERE series IN (SELECT id FROM series) AND at_ms < ?1",
        [minute_from],
    )?;
    tx.execute(
        "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.series = series.id)
         AND NOT EXISTS (SELECT 1 FROM samples_minute m WHERE m.series = series.id)",
        [],
    )?;
    tx.commit()?;
    // Each step frees pages; run it to the end.
    let mut stmt = conn.prepare_cached("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn insert_event(conn: &Connection, e: &EventRow) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (at_ms, service, instance, kind, from_state, to_state, reason, pid,
                             exit_code, signal, probe, passing)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    stmt.execute(params![
        e.at_ms,
        e.service,
        e.instance,
        e.kind,
        e.from_state,
        e.to_state,
        e.reason,
        e.pid.map(i64::from),
        e.exit_code,
        e.signal,
        e.probe,
        e.passing,
    ])?;
    Ok(())
}

fn insert_action(conn: &Connection, a: &ActionRow) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO actions (at_ms, origin, who, action, targets, ok, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        a.at_ms, a.origin, a.who, a.action, a.targets, a.ok, a.result
    ])?;
    Ok(())
}

fn series_id(
    conn: &Connection,
    cache: &mut HashMap<String, (String, i64)>,
    s: &SampleRow,
) -> rusqlite::Result<i64> {
    if let Some((service, id)) = cache.get(&s.instance)
        && *service == s.service
    {
        return Ok(*id);
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO series (service, instance) VALUES (?1, ?2)
         ON CONFLICT (instance) DO UPDATE SET service = excluded.service
         RETURNING id",
    )?;
    let id: i64 = stmt.query_row(params![s.service, s.instance], |r| r.get(0))?;
    cache.insert(s.instance.clone(), (s.service.clone(), id));
    Ok(id)
}

fn insert_sample(conn: &Connection, series: i64, s: &SampleRow) -> rusqlite::Result<()> {
    let cpu_centi = s
        .cpu_percent
        .filter(|c| c.is_finite())
        .map(|c| (c * 100.0).round() as i64);
    let rss = s.rss_bytes.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
    let mut stmt = conn.prepare_cached(
        "INSERT INTO samples (series, at_ms, cpu_centi, rss) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (series, at_ms) DO UPDATE SET cpu_centi = excluded.cpu_centi, rss = excluded.rss",
    )?;
    stmt.execute(params![series, s.at_ms, cpu_centi, rss])?;
    Ok(())
}
