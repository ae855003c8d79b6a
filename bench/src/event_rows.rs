//! Event rows in bulk, straight into SQLite: a fresh migrated database file, and the raw
//! multi-row INSERTs that the event-log benchmark uses as its floor and that the benchmarks
//! use to fill a log with millions of rows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use gatehouse::store::checkpoint::{Checkpointer, WalPolicy, WalShared, WalStats};
use gatehouse::store::event_log::{Event, EventColumns};
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
pub fn insert_rows(conn: &mut SqliteConnection, rows: &[Event]) -> QueryResult<()> {
    for rows in rows.chunks(ROWS_PER_INSERT) {
        let rows: Vec<EventColumns<'_>> = rows.iter().map(EventColumns::of).collect();
        diesel::insert_into(events::table)
            .values(&rows)
            .execute(conn)?;
    }
    Ok(())
}

/// Who checkpoints the WAL during a raw insert.
#[derive(Debug, Clone, Copy)]
pub enum Checkpoints {
    /// SQLite's default: the connection whose commit takes the log past 1,000 pages
    /// checkpoints it before the commit returns.
    Sqlite,
    /// As the event log does it: the rows go in on a connection set up like the event
    /// writer's (`store::sqlite_writer`: no automatic checkpoint, statement journals in
    /// memory, `cache_kib` of cache), and a checkpoint thread with its own connection
    /// checkpoints (`store::checkpoint`).
    Thread { wal: WalPolicy, cache_kib: i64 },
}

/// The same rows in transactions of `batch` (one fsync each: `synchronous = FULL`), in
/// multi-row INSERTs straight on a SQLite connection; returns the time and, with a
/// checkpoint thread, what it did.
pub fn raw_insert(
    pool: &DbPool,
    rows: &[Event],
    batch: usize,
    checkpoints: Checkpoints,
) -> Result<(Duration, Option<WalStats>)> {
    let wal = Arc::new(WalShared::default());
    let (mut conn, thread) = match checkpoints {
        Checkpoints::Sqlite => {
            let mut pooled = pool.get()?;
            if let DbConnection::Sqlite(conn) = &mut *pooled {
                // SQLite's default, which the pool's connections no longer have.
                conn.batch_execute("PRAGMA wal_autocheckpoint = 1000")?;
            }
            (Connection::Pooled(pooled), None)
        }
        Checkpoints::Thread {
            wal: policy,
            cache_kib,
        } => {
            let file = gatehouse::store::sqlite_file(pool)?.context("a database file")?;
            let own = gatehouse::store::sqlite_writer(&file, cache_kib)?;
            let thread = Checkpointer::start(&file, policy, wal.clone())?;
            (Connection::Own(Box::new(own)), Some(thread))
        }
    };
    let DbConnection::Sqlite(conn) = conn.get() else {
        anyhow::bail!("raw inserts are made on SQLite");
    };
    let started = Instant::now();
    for chunk in rows.chunks(batch.max(1)) {
        if thread.is_some() {
            wal.write(|| conn.immediate_transaction(|conn| insert_rows(conn, chunk)))?;
        } else {
            conn.immediate_transaction(|conn| insert_rows(conn, chunk))?;
        }
    }
    let elapsed = started.elapsed();
    if thread.is_none() {
        // The pool's own setting again, for whoever gets this connection next.
        conn.batch_execute(&format!(
            "PRAGMA wal_autocheckpoint = {}",
            gatehouse::store::checkpoint::POOL_AUTOCHECKPOINT_PAGES
        ))?;
    }
    let stats = thread.map(|t| {
        let stats = wal.stats();
        t.stop();
        stats
    });
    Ok((elapsed, stats))
}

enum Connection {
    Pooled(gatehouse::store::PooledDb),
    Own(Box<DbConnection>),
}

impl Connection {
    fn get(&mut self) -> &mut DbConnection {
        match self {
            Connection::Pooled(conn) => conn,
            Connection::Own(conn) => conn,
        }
    }
}
