//! The on-disk layout of the history database and the steps that bring an older file up to
//! date. The version lives in `PRAGMA user_version`: 0 is a file tend has never written.
//!
//! Size: samples are nearly all of it. 200 instances over 7 days (one raw point per instance
//! every 10 s for the last day, one row per instance-minute for the six before, and 28,000
//! events) measured 87 MiB, about 0.45 MB per instance; the `size_for_200_instances_over_7_days`
//! test re-measures it. Retention deletes keep it there: the file is `auto_vacuum =
//! INCREMENTAL` and every retention pass runs `incremental_vacuum`, and the WAL is trimmed to
//! 8 MiB after checkpoints.

use rusqlite::{Connection, TransactionBehavior};

/// The layout this build writes.
pub(super) const VERSION: i64 = 1;

/// `MIGRATIONS[n]` takes a file from version `n` to `n + 1`. Append only: a released step is
/// never edited, because files in the field have already run it.
const MIGRATIONS: &[&str] = &[V1];

/// Samples are keyed by a small integer per instance (`series`) rather than by name, and CPU is
/// kept as an integer in hundredths of a percent: together that is most of the difference
/// between ~25 and ~60 bytes a row, and samples are nearly all of the file.
const V1: &str = "
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;

-- AUTOINCREMENT so ids never go back, even after retention empties the table: API clients may
-- use them as cursors.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    service TEXT NOT NULL,
    instance TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    reason TEXT,
    pid INTEGER,
    exit_code INTEGER,
    signal TEXT,
    probe TEXT,
    passing INTEGER
);
CREATE INDEX events_at ON events (at_ms);
CREATE INDEX events_service_at ON events (service, at_ms);
CREATE INDEX events_instance_at ON events (instance, at_ms);

CREATE TABLE actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    origin TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    targets TEXT NOT NULL,
    ok INTEGER NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX actions_at ON actions (at_ms);

CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    instance TEXT NOT NULL UNIQUE
);

-- Raw points, one per instance every ~10 s, kept for a day.
CREATE TABLE samples (
    series INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    cpu_centi INTEGER,
    rss INTEGER,
    PRIMARY KEY (series, at_ms)
) WITHOUT ROWID;

-- One row per instance and minute (at_ms is the minute's start). The CPU sum and count, not
-- the average, so a late point for an already-folded minute merges exactly.
CREATE TABLE samples_minute (
    series INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    cpu_centi_sum INTEGER,
    cpu_n INTEGER NOT NULL,
    rss_max INTEGER,
    PRIMARY KEY (series, at_ms)
) WITHOUT ROWID;
";

/// What the file's version says about it.
pub(super) enum Outcome {
    /// At [`VERSION`] now, after running whatever steps it lacked.
    Current,
    /// A version this build does not know, normally from a newer tend.
    Unknown(i64),
}

/// Brings the schema to [`VERSION`], one transaction per step so a crash mid-way leaves a file
/// at a well-defined earlier version.
pub(super) fn migrate(conn: &mut Connection) -> rusqlite::Result<Outcome> {
    let mut version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if !(0..=VERSION).contains(&version) {
        return Ok(Outcome::Unknown(version));
    }
    if version == 0 {
        // Only takes effect before the first table exists, which is exactly now; later it
        // would need a full VACUUM.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    while version < VERSION {
        let Some(step) = MIGRATIONS.get(version as usize) else {
            return Ok(Outcome::Unknown(version));
        };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(step)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        version += 1;
    }
    Ok(Outcome::Current)
}
