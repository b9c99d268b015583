//! tend's history in SQLite (`state_dir/tend.db`): state changes, exits and probe transitions of
//! every instance, the operator audit trail, and downsampled resource samples. One writer thread
//! owns every write behind a bounded queue, so the supervisor never waits on the disk.

pub mod recorder;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Row, params, params_from_iter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use writer::Msg;

/// No query returns more rows than this, whatever `limit` asks.
pub const MAX_ROWS: usize = 10_000;
/// How long raw (10 s) samples are kept before they are folded into per-minute rows.
pub const RAW_SAMPLES_KEPT: Duration = Duration::from_secs(24 * 3600);
/// The most records the writer puts in one transaction.
const BATCH_MAX: usize = 1000;
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
const MINUTE_MS: i64 = 60_000;

/// Where the history lives and how it is kept.
#[derive(Clone, Debug)]
pub struct HistoryOptions {
    /// The database file, normally `state_dir/tend.db`.
    pub path: PathBuf,
    /// Events, actions and per-minute samples older than this are deleted. Default 7 days.
    pub retention: Duration,
    /// How long the writer gathers records before committing them. Default 250 ms.
    pub flush_every: Duration,
    /// Records that may wait for the writer before `record` starts dropping them. Default 8192.
    pub queue_capacity: usize,
}

impl HistoryOptions {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HistoryOptions {
            path: path.into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            flush_every: Duration::from_millis(250),
            queue_capacity: 8192,
        }
    }
}

/// One thing to remember.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Event(EventRow),
    Action(ActionRow),
    Sample(SampleRow),
}

/// A state change, spawn, exit, probe transition or warning of one instance, or a change of
/// a service's count.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct EventRow {
    /// Assigned by the store; ignored when recording.
    pub id: Option<i64>,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub service: String,
    /// `web` or `web:2`; the service's name for kind `scale`.
    pub instance: String,
    /// `state`, `spawn`, `exit`, `ready`, `probe`, `warning`, `reload`, or `scale` (a change
    /// of the count by `tend scale` or autoscale, with its reason).
    pub kind: String,
    pub from_state: Option<String>,
    /// For kind `state`, the new state; for kind `reload`, the step: `started`, `replaced`,
    /// `done`, `failed` or `signalled`.
    pub to_state: Option<String>,
    pub reason: Option<String>,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    /// `readiness`, `liveness` or `startup` for kind `probe`.
    pub probe: Option<String>,
    pub passing: Option<bool>,
}

/// One operator action, for the audit trail.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct ActionRow {
    /// Assigned by the store; ignored when recording.
    pub id: Option<i64>,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `unix uid=1000` or `tcp 10.0.0.2:51234`.
    pub origin: String,
    /// `uid 1000` or `token at tokens_file line 3`.
    pub who: String,
    pub action: String,
    pub targets: String,
    pub ok: bool,
    pub result: String,
}

/// One resource sample of one instance. Read back from the per-minute table, `at_ms` is the
/// start of the bucket, `cpu_percent` its average and `rss_bytes` its maximum.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct SampleRow {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub service: String,
    pub instance: String,
    /// Stored to a hundredth of a percent.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// Which events to return: all conditions must hold. `limit` picks the newest rows, which come
/// back oldest first; 0 or anything above [`MAX_ROWS`] means [`MAX_ROWS`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct EventFilter {
    pub service: Option<String>,
    pub instance: Option<String>,
    /// Any of these kinds; empty means every kind.
    pub kinds: Vec<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

/// Which audit rows to return; `limit` works as in [`EventFilter`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ActionFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

/// How one service fared over a window.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct ServiceSummary {
    pub service: String,
    /// Instances with a known state or any event in the window.
    pub instances: u32,
    /// Time in state `running` over the time whose state is known; `None` when none is.
    pub uptime_percent: Option<f64>,
    /// State changes from `backoff` to `starting`.
    pub restarts: u32,
    /// The newest failed exit (non-zero code or a signal) or change to `fatal` in the window.
    pub last_failure: Option<EventRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("history is unavailable: {0}")]
    Unavailable(String),
    #[error("invalid time range: since {since_ms} is after until {until_ms}")]
    InvalidRange { since_ms: i64, until_ms: i64 },
}

/// The handle every part of tend shares. Cloning is cheap.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    closed: AtomicBool,
    writer: Mutex<Option<JoinHandle<()>>>,
    capacity: usize,
}

/// What readers and the writer thread both see.
struct Shared {
    report: Box<dyn Fn(String) + Send + Sync>,
    dropped: AtomicU64,
    /// Records in the channel; the writer uses it to tell when it has caught up.
    queued: AtomicUsize,
    /// A drop episode is under way: it has been reported and its end has not.
    dropping: AtomicBool,
    episode_drops: AtomicU64,
    /// Where queries go. The writer takes it exclusively while it swaps the database, which
    /// waits out queries in flight: a reader left holding the old file could otherwise, on
    /// closing, delete the `-wal` that by then belongs to the new one.
    source: RwLock<ReadSource>,
    /// One reusable read connection; concurrent queries beyond it open their own.
    cached: Mutex<Option<(u64, Connection)>>,
    generation: AtomicU64,
    /// Set once the writer thread has opened the database (or found it unusable) and set
    /// `source`: queries wait for it rather than fail while tend starts.
    open_done: Mutex<bool>,
    open_signal: Condvar,
}

/// How long a query waits for the database to open (the check of a large file on a slow
/// disk) before it is answered that history is still opening.
const OPEN_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
enum ReadSource {
    File {
        path: PathBuf,
        generation: u64,
    },
    /// The in-memory fallback: a private database, so queries share the writer's connection.
    Memory(Arc<Mutex<Connection>>),
    Unavailable(String),
}

impl Shared {
    fn report(&self, message: String) {
        // A panicking reporter must not take the writer thread with it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.report)(message)));
    }

    fn set_source(&self, source: ReadSource) {
        let mut gate = self.source.write().unwrap_or_else(PoisonError::into_inner);
        *gate = source;
        *lock(&self.cached) = None;
    }

    fn mark_open(&self) {
        *lock(&self.open_done) = true;
        self.open_signal.notify_all();
    }

    /// Whether the database is open (or known unusable) within `within`.
    fn wait_open(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut done = lock(&self.open_done);
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = self
                .open_signal
                .wait_timeout(done, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn read<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        if !self.wait_open(OPEN_WAIT) {
            return Err(StoreError::Unavailable("history is still opening".into()));
        }
        let gate = self.source.read().unwrap_or_else(PoisonError::into_inner);
        match &*gate {
            ReadSource::Unavailable(why) => Err(StoreError::Unavailable(why.clone())),
            ReadSource::Memory(conn) => Ok(query(&lock(conn))?),
            ReadSource::File { path, generation } => {
                let mut slot = match self.cached.try_lock() {
                    Ok(slot) => slot,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => {
                        let conn = open_reader(path)?;
                        return Ok(query(&conn)?);
                    }
                };
                if !matches!(&*slot, Some((g, _)) if g == generation) {
                    *slot = None;
                    *slot = Some((*generation, open_reader(path)?));
                }
                let Some((_, conn)) = slot.as_ref() else {
                    return Err(StoreError::Unavailable("no read connection".into()));
                };
                let result = query(conn);
                if result.is_err() {
                    // Whatever went wrong, a fresh connection next time costs little.
                    *slot = None;
                }
                Ok(result?)
            }
        }
    }
}

fn open_reader(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Queries read recent rows by index; a small cache keeps the reader's memory small.
    conn.pragma_update(None, "cache_size", -256)?;
    Ok(conn)
}

/// Poison only means another thread panicked mid-query; the connection itself is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn floor_to(ms: i64, step: i64) -> i64 {
    ms - ms.rem_euclid(step)
}

fn clamp_limit(limit: usize) -> i64 {
    let limit = if limit == 0 {
        MAX_ROWS
    } else {
        limit.min(MAX_ROWS)
    };
    limit as i64
}

impl History {
    /// Starts the writer thread, which opens or creates the database and then writes: this
    /// returns at once, so that nothing waits for the check of the whole file but queries,
    /// and what is recorded meanwhile is queued. Never fails: a corrupt file (or one from a
    /// newer tend) is moved aside and replaced, and an unwritable location falls back to an
    /// in-memory database; each is told through `report`.
    pub fn open(
        options: HistoryOptions,
        report: impl Fn(String) + Send + Sync + 'static,
    ) -> History {
        let shared = Arc::new(Shared {
            report: Box::new(report),
            dropped: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
            dropping: AtomicBool::new(false),
            episode_drops: AtomicU64::new(0),
            source: RwLock::new(ReadSource::Unavailable("history is opening".into())),
            cached: Mutex::new(None),
            generation: AtomicU64::new(0),
            open_done: Mutex::new(false),
            open_signal: Condvar::new(),
        });
        let capacity = options.queue_capacity.max(1);
        let (tx, rx) = sync_channel(capacity);
        let opening = Arc::clone(&shared);
        let handle = crate::background::spawn("tend-history", move || {
            writer::open_and_serve(opening, options, rx)
        });
        let handle = match handle {
            Ok(handle) => Some(handle),
            Err(e) => {
                shared.report(format!(
                    "history: cannot start the writer thread ({e}); nothing will be recorded"
                ));
                shared.set_source(ReadSource::Unavailable(
                    "history is disabled: its writer thread could not start".into(),
                ));
                shared.mark_open();
                None
            }
        };
        History {
            inner: Arc::new(Inner {
                tx,
                shared,
                closed: AtomicBool::new(false),
                writer: Mutex::new(handle),
                capacity,
            }),
        }
    }

    /// Queues a record for the writer. Never blocks: with the queue full the record is
    /// dropped and counted, and the first drop of an episode is reported (from here, so the
    /// report does not wait for a writer that may be stuck on the disk).
    pub fn record(&self, record: Record) {
        let inner = &*self.inner;
        let shared = &*inner.shared;
        if inner.closed.load(Ordering::Relaxed) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Counted before sending so the writer's decrement can never run first.
        shared.queued.fetch_add(1, Ordering::Relaxed);
        match inner.tx.try_send(Msg::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.episode_drops.fetch_add(1, Ordering::Relaxed);
                if !shared.dropping.swap(true, Ordering::AcqRel) {
                    shared.report(format!(
                        "history: write queue full ({} records waiting); dropping records until the writer catches up",
                        inner.capacity
                    ));
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                shared.queued.fetch_sub(1, Ordering::Relaxed);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether the writer thread has opened the database (or found it unusable and said
    /// so) within `within`.
    pub fn opened(&self, within: Duration) -> bool {
        self.inner.shared.wait_open(within)
    }

    /// Records lost so far: queue full, writer gone, or writes failing for longer than the
    /// writer could hold them.
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }

    /// True when history went to the in-memory fallback and will not survive a restart.
    pub fn in_memory(&self) -> bool {
        self.opened(OPEN_WAIT);
        let gate = self
            .inner
            .shared
            .source
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        matches!(&*gate, ReadSource::Memory(_))
    }

    /// Commits everything queued before this call; false if that did not happen within
    /// `timeout` (or a write failed, or the writer is gone).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack, done) = sync_channel(1);
        if !self.send_control(Msg::Flush(ack), deadline) {
            return false;
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(false)
    }

    /// Runs the retention and downsampling pass now, as if the clock read `now_ms`, and waits
    /// for it. The writer does this by itself every 10 minutes; this is for tests.
    pub fn run_retention(&self, now_ms: i64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (ack, done) = sync_channel(1);
        if !self.send_control(Msg::Retention(now_ms, ack), deadline) {
            return false;
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(false)
    }

    /// Commits what is queued and stops the writer, waiting at most `timeout`. Later records
    /// are dropped; queries keep working.
    pub fn close(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.inner.closed.store(true, Ordering::Relaxed);
        let (ack, done) = sync_channel(1);
        if self.send_control(Msg::Close(ack), deadline) {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let mut slot = lock(&self.inner.writer);
        if slot.as_ref().is_some_and(|h| h.is_finished())
            && let Some(handle) = slot.take()
        {
            let _ = handle.join();
        }
        *lock(&self.inner.shared.cached) = None;
    }

    #[cfg(test)]
    fn inject(&self, msg: Msg) -> bool {
        self.send_control(msg, Instant::now() + Duration::from_secs(10))
    }

    /// Control messages share the records' queue so they are ordered after every record sent
    /// before them; when it is full they wait (these calls may block, `record` may not).
    fn send_control(&self, mut msg: Msg, deadline: Instant) -> bool {
        loop {
            match self.inner.tx.try_send(msg) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = back;
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// The newest `filter.limit` matching events, oldest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(service) = &filter.service {
            sql.push_str(" AND service = ?");
            args.push(Value::Text(service.clone()));
        }
        if let Some(instance) = &filter.instance {
            sql.push_str(" AND instance = ?");
            args.push(Value::Text(instance.clone()));
        }
        if !filter.kinds.is_empty() {
            let marks = vec!["?"; filter.kinds.len()].join(", ");
            sql.push_str(&format!(" AND kind IN ({marks})"));
            args.extend(filter.kinds.iter().cloned().map(Value::Text));
        }
        if let Some(since) = filter.since_ms {
            sql.push_str(" AND at_ms >= ?");
            args.push(Value::Integer(since));
        }
        if let Some(until) = filter.until_ms {
            sql.push_str(" AND at_ms <= ?");
            args.push(Value::Integer(until));
        }
        sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ?");
        args.push(Value::Integer(clamp_limit(filter.limit)));
        let mut rows = self.inner.shared.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), event_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// The newest `filter.limit` audit rows, oldest first.
    pub fn actions(&self, filter: &ActionFilter) -> Result<Vec<ActionRow>, StoreError> {
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let until = filter.until_ms.unwrap_or(i64::MAX);
        let limit = clamp_limit(filter.limit);
        let mut rows = self.inner.shared.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, at_ms, origin, who, action, targets, ok, result FROM actions
                 WHERE at_ms >= ?1 AND at_ms <= ?2 ORDER BY at_ms DESC, id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![since, until, limit], |row| {
                Ok(ActionRow {
                    id: row.get(0)?,
                    at_ms: row.get(1)?,
                    origin: row.get(2)?,
                    who: row.get(3)?,
                    action: row.get(4)?,
                    targets: row.get(5)?,
                    ok: row.get(6)?,
                    result: row.get(7)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// Samples of one instance over [since, until], oldest first. A range that starts within
    /// the last day gets the raw points; an older start gets per-minute aggregates (average
    /// CPU, maximum RSS), widened to whole multiples of a minute when the range would
    /// otherwise exceed [`MAX_ROWS`] points.
    pub fn samples(
        &self,
        instance: &str,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<SampleRow>, StoreError> {
        if until_ms < since_ms {
            return Err(StoreError::InvalidRange { since_ms, until_ms });
        }
        let raw_from = now_ms() - duration_ms(RAW_SAMPLES_KEPT);
        let limit = MAX_ROWS as i64;
        if since_ms >= raw_from {
            let mut rows = self.inner.shared.read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT s.at_ms, se.service, se.instance, s.cpu_centi, s.rss
                     FROM series se JOIN samples s ON s.series = se.id
                     WHERE se.instance = ?1 AND s.at_ms >= ?2 AND s.at_ms <= ?3
                     ORDER BY s.at_ms DESC LIMIT ?4",
                )?;
                let rows = stmt.query_map(
                    params![instance, since_ms, until_ms, limit],
                    sample_from_row,
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })?;
            rows.reverse();
            return Ok(rows);
        }
        let minutes = (until_ms - since_ms) / MINUTE_MS + 1;
        let bucket = MINUTE_MS * ((minutes + limit - 1) / limit).max(1);
        let minute_from = floor_to(since_ms, MINUTE_MS);
        self.inner.shared.read(|conn| {
            // The two tables never hold the same minute for long (folding deletes the raw
            // points), but a late raw point can overlap until the next pass: the outer
            // GROUP BY merges such a pair instead of returning the bucket twice.
            let mut stmt = conn.prepare_cached(
                "SELECT b, max(service), max(instance),
                        CASE WHEN sum(n) > 0 THEN sum(cs) * 1.0 / sum(n) END, max(rm)
                 FROM (
                     SELECT (m.at_ms / ?4) * ?4 AS b, se.service AS service, se.instance AS instance,
                            m.cpu_centi_sum AS cs, m.cpu_n AS n, m.rss_max AS rm
                     FROM series se JOIN samples_minute m ON m.series = se.id
                     WHERE se.instance = ?1 AND m.at_ms >= ?5 AND m.at_ms <= ?3
                     UNION ALL
                     SELECT (s.at_ms / ?4) * ?4, se.service, se.instance,
                            s.cpu_centi, s.cpu_centi IS NOT NULL, s.rss
                     FROM series se JOIN samples s ON s.series = se.id
                     WHERE se.instance = ?1 AND s.at_ms >= ?2 AND s.at_ms <= ?3
                 )
                 GROUP BY b ORDER BY b LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![instance, since_ms, until_ms, bucket, minute_from, limit],
                |row| {
                    Ok(SampleRow {
                        at_ms: row.get(0)?,
                        service: row.get(1)?,
                        instance: row.get(2)?,
                        cpu_percent: row.get::<_, Option<f64>>(3)?.map(|c| c / 100.0),
                        rss_bytes: row.get::<_, Option<i64>>(4)?.and_then(|r| u64::try_from(r).ok()),
                    })
                },
            )?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
    }

    /// Per service over [since, until] (clipped at now, so future time is not counted): uptime,
    /// restarts and the newest failure. An instance's state at `since` is that of its last
    /// state event before it; an instance with none is unknown until its first one, and unknown
    /// time counts neither way.
    pub fn summary(&self, since_ms: i64, until_ms: i64) -> Result<Vec<ServiceSummary>, StoreError> {
        if until_ms < since_ms {
            return Err(StoreError::InvalidRange { since_ms, until_ms });
        }
        let until_ms = until_ms.min(now_ms()).max(since_ms);
        let data = self.inner.shared.read(|conn| {
            // One snapshot for all four queries, so they agree with each other.
            let tx = conn.unchecked_transaction()?;
            let data = summary_data(&tx, since_ms, until_ms)?;
            tx.finish()?;
            Ok(data)
        })?;
        Ok(summarize(data, since_ms, until_ms))
    }
}

const EVENT_COLUMNS: &str = "id, at_ms, service, instance, kind, from_state, to_state, reason, pid, exit_code, signal, probe, passing";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        service: row.get(2)?,
        instance: row.get(3)?,
        kind: row.get(4)?,
        from_state: row.get(5)?,
        to_state: row.get(6)?,
        reason: row.get(7)?,
        pid: row
            .get::<_, Option<i64>>(8)?
            .and_then(|p| u32::try_from(p).ok()),
        exit_code: row
            .get::<_, Option<i64>>(9)?
            .and_then(|c| i32::try_from(c).ok()),
        signal: row.get(10)?,
        probe: row.get(11)?,
        passing: row.get(12)?,
    })
}

fn sample_from_row(row: &Row<'_>) -> rusqlite::Result<SampleRow> {
    Ok(SampleRow {
        at_ms: row.get(0)?,
        service: row.get(1)?,
        instance: row.get(2)?,
        cpu_percent: row.get::<_, Option<i64>>(3)?.map(|c| c as f64 / 100.0),
        rss_bytes: row
            .get::<_, Option<i64>>(4)?
            .and_then(|r| u64::try_from(r).ok()),
    })
}

/// (service, instance, at_ms, from_state, to_state)
type StateChange = (String, String, i64, Option<String>, Option<String>);

struct SummaryData {
    /// (service, instance, state at `since`)
    initial: Vec<(String, String, Option<String>)>,
    /// State events in the window, by instance then time.
    changes: Vec<StateChange>,
    /// Every (service, instance) with any event in the window.
    seen: Vec<(String, String)>,
    /// The newest failure per service.
    failures: Vec<EventRow>,
}

fn summary_data(conn: &Connection, since: i64, until: i64) -> rusqlite::Result<SummaryData> {
    let mut stmt = conn.prepare_cached(
        "SELECT service, instance, to_state FROM (
             SELECT service, instance, to_state,
                    row_number() OVER (PARTITION BY instance ORDER BY at_ms DESC, id DESC) AS rn
             FROM events WHERE kind = 'state' AND at_ms < ?1
         ) WHERE rn = 1",
    )?;
    let initial = stmt
        .query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = conn.prepare_cached(
        "SELECT service, instance, at_ms, from_state, to_state FROM events
         WHERE kind = 'state' AND at_ms >= ?1 AND at_ms <= ?2 ORDER BY instance, at_ms, id",
    )?;
    let changes = stmt
        .query_map([since, until], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT service, instance FROM events WHERE at_ms >= ?1 AND at_ms <= ?2",
    )?;
    let seen = stmt
        .query_map([since, until], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM (
             SELECT *, row_number() OVER (PARTITION BY service ORDER BY at_ms DESC, id DESC) AS rn
             FROM events
             WHERE at_ms >= ?1 AND at_ms <= ?2
               AND ((kind = 'exit' AND ((exit_code IS NOT NULL AND exit_code <> 0) OR signal IS NOT NULL))
                    OR to_state = 'fatal')
         ) WHERE rn = 1"
    ))?;
    let failures = stmt
        .query_map([since, until], event_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    Ok(SummaryData {
        initial,
        changes,
        seen,
        failures,
    })
}

fn summarize(data: SummaryData, since: i64, until: i64) -> Vec<ServiceSummary> {
    use std::collections::{BTreeMap, HashMap};

    #[derive(Default)]
    struct Acc {
        instances: std::collections::BTreeSet<String>,
        known_ms: i64,
        running_ms: i64,
        restarts: u32,
        last_failure: Option<EventRow>,
    }
    /// Adds the span [from, to) spent in `state` (unknown when `None`).
    fn span(acc: &mut Acc, state: &Option<String>, from: i64, to: i64) {
        if let Some(state) = state {
            acc.known_ms += to - from;
            if state == "running" {
                acc.running_ms += to - from;
            }
        }
    }

    let mut services: BTreeMap<String, Acc> = BTreeMap::new();
    let mut state_at_since: HashMap<&str, &Option<String>> = HashMap::new();
    for (service, instance, state) in &data.initial {
        services
            .entry(service.clone())
            .or_default()
            .instances
            .insert(instance.clone());
        state_at_since.insert(instance, state);
    }
    for (service, instance) in &data.seen {
        services
            .entry(service.clone())
            .or_default()
            .instances
            .insert(instance.clone());
    }

    // Instances whose window holds no state change keep their state at `since` throughout.
    let mut changed: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut i = 0;
    while i < data.changes.len() {
        let instance = data.changes[i].1.as_str();
        changed.insert(instance);
        let service = data.changes[i].0.clone();
        let acc = services.entry(service).or_default();
        let mut state: Option<String> = state_at_since.get(instance).and_then(|s| (*s).clone());
        let mut t = since;
        while i < data.changes.len() && data.changes[i].1 == instance {
            let (_, _, at, from, to) = &data.changes[i];
            span(acc, &state, t, *at);
            if from.as_deref() == Some("backoff") && to.as_deref() == Some("starting") {
                acc.restarts += 1;
            }
            state = to.clone();
            t = *at;
            i += 1;
        }
        span(acc, &state, t, until);
    }
    for (service, instance, state) in &data.initial {
        if !changed.contains(instance.as_str())
            && let Some(acc) = services.get_mut(service)
        {
            span(acc, state, since, until);
        }
    }
    for failure in data.failures {
        if let Some(acc) = services.get_mut(&failure.service) {
            acc.last_failure = Some(failure);
        }
    }

    services
        .into_iter()
        .map(|(service, acc)| ServiceSummary {
            service,
            instances: u32::try_from(acc.instances.len()).unwrap_or(u32::MAX),
            uptime_percent: (acc.known_ms > 0)
                .then(|| acc.running_ms as f64 * 100.0 / acc.known_ms as f64),
            restarts: acc.restarts,
            last_failure: acc.last_failure,
        })
        .collect()
}

/// Unix milliseconds, the history's time axis.
pub fn unix_ms(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
