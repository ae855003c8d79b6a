//! Event rows in bulk, straight into SQLite: a fresh migrated database file, and the raw
//! multi-row INSERTs that the event-log benchmark uses as its floor and that the benchmarks
//! use to fill a log with millions of rows.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use diesel::prelude::*;
use gatehouse::event_log::{EventInsert, NewEvent};
use gatehouse::store::schema::events;
use gatehouse::store::{DbConnection, DbPool};

/// Rows per INSERT statement: what the event log writes at once (256 rows of 14 columns
/// stay far below SQLite's limit of bound parameters).
pub const ROWS_PER_INSERT: usize = 256;

/// A new SQLite file `name` in `dir`, opened by `store::open` (the appliance's pragmas)
/// and migrated.
pub fn fresh_database(dir: &Path, name: &str) -> Result<DbPool> {
    let url = format!("sqlite://{}", dir.join(name).display());
    let pool = gatehouse::store::open(&url, 4)?;
    let mut conn = pool.get()?;
    gatehouse::store::migrate(&mut conn)?;
    Ok(pool)
}

/// Inserts `rows` in multi-row INSERTs of [`ROWS_PER_INSERT`], in the caller's transaction
/// (or each statement in its own, without one). No resend check.
pub fn insert_rows(conn: &mut SqliteConnection, rows: &[NewEvent]) -> QueryResult<()> {
    for rows in rows.chunks(ROWS_PER_INSERT) {
        let rows: Vec<EventInsert<'_>> = rows.iter().map(EventInsert::of).collect();
        diesel::insert_into(events::table)
            .values(&rows)
            .execute(conn)?;
    }
    Ok(())
}

/// The same rows in transactions of `batch` (one fsync each, as the pool's connections
/// are set up), in multi-row INSERTs straight on the SQLite connection; returns the time.
pub fn raw_insert(pool: &DbPool, rows: &[NewEvent], batch: usize) -> Result<Duration> {
    let mut pooled = pool.get()?;
    let DbConnection::Sqlite(conn) = &mut *pooled else {
        anyhow::bail!("raw inserts are made on SQLite");
    };
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        conn.immediate_transaction(|conn| insert_rows(conn, chunk))?;
    }
    Ok(started.elapsed())
}
