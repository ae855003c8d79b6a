//! Checkpoints of SQLite's write-ahead log, off the event writer's path.
//!
//! In WAL mode a commit appends every page it changed to the log, and a checkpoint copies
//! the pages back into the database file (random writes, then an fsync of that file). By
//! default the connection whose commit takes the log past 1,000 pages runs the checkpoint
//! itself before its commit returns. For the event writer, whose group commits each change
//! hundreds of scattered index pages, that was a checkpoint every commit or two, paid by
//! every door's answer, and each one wrote back the pages of one or two commits only.
//!
//! Here the event writer never checkpoints (`wal_autocheckpoint = 0` on its connection);
//! a thread with a connection of its own does, sized by the log rather than by the commit:
//!
//! * after each of the writer's commits it reads the log's size (a `NOOP` checkpoint,
//!   which takes no lock and writes nothing);
//! * past [`WalPolicy::passive_pages`] not yet copied back, or when the writer has gone
//!   quiet, it runs a `PASSIVE` checkpoint beside the writer (it never blocks it). The
//!   bound is small (1 MiB): a checkpoint's fsync of the database file delays the
//!   writer's fsync of the log on the same disk, by as much as it has to flush;
//! * past [`WalPolicy::restart_pages`] in the log it copies back what it can beside the
//!   writer, then, holding the writer between two of its transactions, runs a `RESTART`
//!   checkpoint: the rest (what was committed meanwhile) is copied back and the next
//!   commit starts the log from its beginning again. Without this the log would never
//!   wrap while the writer is busy, since a passive checkpoint never quite catches up
//!   with it.
//! * a reader in the middle of a read of an older snapshot needs the log's pages after
//!   it: a restart would hold the writer until that reader is done. So while a passive
//!   checkpoint cannot copy everything back, the restart is put off to a later commit;
//!   past twice the bound it is tried anyway (readers that overlap one another could
//!   otherwise put it off for good), holding the writer at most
//!   [`WalPolicy::restart_wait`], and after one that gave up not again for
//!   [`WalPolicy::idle`]. The log stays bounded unless a reader holds on for good, which
//!   is logged.
//!
//! The appliance's other connections keep an automatic checkpoint, but only at
//! [`POOL_AUTOCHECKPOINT_PAGES`], well past where this thread restarts the log: it is a
//! backstop for processes without an event writer (the command line) and for a
//! checkpointer that stopped, not a second checkpointer competing with this one (a
//! console request that happened to commit would otherwise pay for the writer's
//! checkpoints, and hold the checkpoint lock when this thread wants it).
//!
//! Durability is unchanged: a commit is on disk when it returns (the log is fsynced,
//! `synchronous = FULL`), wherever its pages are later checkpointed to.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel::sqlite::SqliteConnection;

use super::OpenError;

/// When the checkpoint thread copies the log back and restarts it. Sizes are in pages
/// (log frames) of the database's page size, 4 KiB by default.
#[derive(Debug, Clone, Copy)]
pub struct WalPolicy {
    /// Copy the log back (beside the writer) once this many pages await it.
    pub passive_pages: i64,
    /// Restart the log once it holds this many pages.
    pub restart_pages: i64,
    /// How long a restart waits for other writers and for readers of old snapshots; the
    /// event writer waits as long (it is held while the restart runs).
    pub restart_wait: Duration,
    /// With no commit for this long, copy back whatever is left.
    pub idle: Duration,
}

impl Default for WalPolicy {
    fn default() -> Self {
        WalPolicy {
            // 1 MiB. A checkpoint ends with an fsync of the database file, and a commit's
            // fsync of the log waits behind it on the same disk: copying back 32 MiB at a
            // time held swipes for up to 1.4 s at 1,000 swipes/s, 1 MiB at a time not past
            // 19 ms (BENCHMARKS.md, "MQTT"). Ingest at saturation measured the same with
            // 256, 1,024 and 8,192 pages.
            passive_pages: 256,
            // 128 MiB on disk at most, plus what is committed while a restart waits.
            restart_pages: 32_768,
            restart_wait: Duration::from_millis(100),
            idle: Duration::from_secs(1),
        }
    }
}

/// The automatic checkpoint of the appliance's other connections: a backstop twice past
/// where the checkpoint thread restarts the log (see the module's documentation).
pub const POOL_AUTOCHECKPOINT_PAGES: i64 = 65_536;

/// What the checkpoint thread has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Whether a checkpoint thread runs (SQLite only).
    pub running: bool,
    /// The writer's transactions so far.
    pub commits: u64,
    /// Passive checkpoints run (beside the writer).
    pub passive: u64,
    /// Restarts of the log.
    pub restarts: u64,
    /// Restarts given up because another writer or a reader was in the way.
    pub restarts_busy: u64,
    /// Restarts put off because a reader still needed pages of the log.
    pub restarts_deferred: u64,
    /// The pages in the log when the thread last looked.
    pub log_pages: i64,
    /// The most pages seen in the log.
    pub largest_log_pages: i64,
    /// The longest the writer was held for a restart.
    pub longest_hold: Duration,
    /// Checkpoints that failed with an error (logged).
    pub errors: u64,
}

/// What the writer and the checkpoint thread share: the gate that keeps a restart between
/// two of the writer's transactions, the writer's nudges, and the statistics.
#[derive(Debug, Default)]
pub struct WalShared {
    gate: Mutex<Gate>,
    /// Signals a change of the gate.
    turn: Condvar,
    wake: Mutex<Wake>,
    signal: Condvar,
    stats: Mutex<WalStats>,
}

/// Who holds the log: a writer's transaction, or a restart. A restart that asked waits
/// only for the transaction under way; the writer's next one waits for the restart. (A
/// plain mutex would let a writer that commits back to back take it again and again.)
#[derive(Debug, Default)]
struct Gate {
    writing: bool,
    restart: bool,
}

#[derive(Debug, Default)]
struct Wake {
    written: bool,
    stopped: bool,
}

/// A poisoned lock only means another thread panicked while holding it; what it guards
/// (nothing, flags, counters) is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WalShared {
    /// Runs one of the writer's transactions: never while the log is being restarted, and
    /// the checkpoint thread looks at the log once it is committed.
    pub fn write<T>(&self, transaction: impl FnOnce() -> T) -> T {
        self.enter(|g| g.restart, |g| g.writing = true);
        let result = {
            let _leave = Leave(self, |g| g.writing = false);
            transaction()
        };
        self.update(|s| s.commits += 1);
        lock(&self.wake).written = true;
        self.signal.notify_one();
        result
    }

    /// A restart, between two of the writer's transactions.
    fn restart<T>(&self, restart: impl FnOnce() -> T) -> T {
        // Asking first keeps the writer from starting another transaction meanwhile.
        self.enter(|_| false, |g| g.restart = true);
        let _leave = Leave(self, |g| g.restart = false);
        self.enter(|g| g.writing, |_| {});
        restart()
    }

    fn enter(&self, wait_while: impl Fn(&Gate) -> bool, then: impl FnOnce(&mut Gate)) {
        let gate = lock(&self.gate);
        let mut gate = self
            .turn
            .wait_while(gate, |g| wait_while(g))
            .unwrap_or_else(PoisonError::into_inner);
        then(&mut gate);
    }

    pub fn stats(&self) -> WalStats {
        *lock(&self.stats)
    }

    fn update(&self, f: impl FnOnce(&mut WalStats)) {
        f(&mut lock(&self.stats));
    }

    /// Waits for a commit, a stop, or `idle`; returns (a commit came, stopped).
    fn wait(&self, idle: Duration) -> (bool, bool) {
        let wake = lock(&self.wake);
        let (mut wake, _) = self
            .signal
            .wait_timeout_while(wake, idle, |w| !w.written && !w.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        let seen = (wake.written, wake.stopped);
        wake.written = false;
        seen
    }

    fn stop(&self) {
        lock(&self.wake).stopped = true;
        self.signal.notify_one();
    }
}

/// Leaves the gate when dropped, so that a transaction or restart that panicked does not
/// keep the other side out for good.
struct Leave<'a>(&'a WalShared, fn(&mut Gate));

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        (self.1)(&mut lock(&self.0.gate));
        self.0.turn.notify_all();
    }
}

/// The checkpoint thread. Dropping it stops the thread (after the checkpoint under way).
pub struct Checkpointer {
    shared: Arc<WalShared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to the SQLite file at `path` and starts the thread.
    pub fn start(
        path: &Path,
        policy: WalPolicy,
        shared: Arc<WalShared>,
    ) -> Result<Checkpointer, OpenError> {
        let mut conn = SqliteConnection::establish(&path.to_string_lossy())
            .map_err(|e| OpenError::Connection(e.to_string()))?;
        let wait_ms = policy.restart_wait.as_millis().max(1);
        // synchronous = FULL: a checkpoint fsyncs the log before copying it back and the
        // database file after. The busy timeout bounds how long a restart holds the writer.
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {wait_ms}; PRAGMA synchronous = FULL;"
        ))
        .map_err(|e| OpenError::Connection(e.to_string()))?;
        // Confirms the file is in WAL mode and that this SQLite knows NOOP checkpoints.
        checkpoint(&mut conn, Mode::Noop).map_err(|e| OpenError::Connection(e.to_string()))?;
        shared.update(|s| s.running = true);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("wal-checkpoint".to_owned())
                .spawn(move || run(conn, policy, &shared))
                .map_err(|e| OpenError::Connection(e.to_string()))?
        };
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it: after a last passive checkpoint, the log holds
    /// nothing that is not also in the database file (unless a reader still needs it).
    pub fn stop(mut self) {
        self.shared.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Not joined here: the writer drops it on an async thread.
        self.shared.stop();
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Noop,
    Passive,
    Restart,
}

/// A checkpoint's answer: whether it was kept from finishing, the pages in the log, and
/// how many of them are in the database file.
#[derive(Debug, Clone, Copy, QueryableByName)]
struct Wal {
    #[diesel(sql_type = Integer)]
    busy: i32,
    #[diesel(sql_type = Integer)]
    log: i32,
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

fn checkpoint(conn: &mut SqliteConnection, mode: Mode) -> QueryResult<Wal> {
    let sql = match mode {
        Mode::Noop => "PRAGMA main.wal_checkpoint(NOOP)",
        Mode::Passive => "PRAGMA main.wal_checkpoint(PASSIVE)",
        Mode::Restart => "PRAGMA main.wal_checkpoint(RESTART)",
    };
    let wal: Wal = diesel::sql_query(sql).get_result(conn)?;
    if wal.log < 0 {
        // -1: the file is not in WAL mode, so there is nothing to checkpoint.
        return Err(diesel::result::Error::QueryBuilderError(
            "the database is not in WAL mode".into(),
        ));
    }
    Ok(wal)
}

/// What the thread remembers between steps.
#[derive(Default)]
struct Memory {
    /// The log size at the last restart that finished: until the writer commits again the
    /// log still reports that size, and restarting it again would only hold the writer.
    restarted_at: Option<i32>,
    /// No restart before this, after one that gave up.
    retry_at: Option<Instant>,
    /// When a log that cannot be restarted was last reported.
    warned: Option<Instant>,
}

fn run(mut conn: SqliteConnection, policy: WalPolicy, shared: &WalShared) {
    let mut memory = Memory::default();
    loop {
        let (written, stopped) = shared.wait(policy.idle);
        if stopped {
            if let Err(e) = checkpoint(&mut conn, Mode::Passive) {
                tracing::warn!(error = %e, "last WAL checkpoint failed");
            }
            shared.update(|s| s.running = false);
            return;
        }
        if let Err(e) = step(&mut conn, &policy, shared, written, &mut memory) {
            shared.update(|s| s.errors += 1);
            tracing::warn!(error = %e, "WAL checkpoint failed");
            // Not again at once: whatever failed is unlikely to be gone in a moment.
            std::thread::sleep(policy.idle);
        }
    }
}

fn step(
    conn: &mut SqliteConnection,
    policy: &WalPolicy,
    shared: &WalShared,
    written: bool,
    memory: &mut Memory,
) -> QueryResult<()> {
    let wal = checkpoint(conn, Mode::Noop)?;
    let log = i64::from(wal.log);
    let waiting = log - i64::from(wal.checkpointed);
    shared.update(|s| {
        s.log_pages = log;
        s.largest_log_pages = s.largest_log_pages.max(log);
    });
    if log >= policy.restart_pages && memory.restarted_at != Some(wal.log) {
        // The bulk beside the writer first, so that what the restart copies back while
        // it holds the writer is only what was committed in the meantime.
        let copied = if waiting > 0 {
            shared.update(|s| s.passive += 1);
            checkpoint(conn, Mode::Passive)?
        } else {
            wal
        };
        // Pages a passive checkpoint could not copy back are still needed by a reader of
        // an older snapshot. A restart would hold the writer until that reader is done
        // (or `restart_wait` passes), so it waits for a later commit, when the reader has
        // likely finished; unless the log is twice its bound, which overlapping readers
        // could otherwise keep it growing past for good. After a restart that gave up,
        // none for `idle`: a reader that outlasted one wait may outlast many, and each
        // would hold the writer.
        let held_back = copied.checkpointed < copied.log;
        let backing_off = memory.retry_at.is_some_and(|t| Instant::now() < t);
        if (held_back && log < 2 * policy.restart_pages) || backing_off {
            shared.update(|s| s.restarts_deferred += 1);
        } else {
            restart(conn, policy, shared, memory)?;
        }
        let quiet = memory
            .warned
            .is_some_and(|w| w.elapsed() < Duration::from_secs(60));
        if log >= 4 * policy.restart_pages && !quiet {
            memory.warned = Some(Instant::now());
            tracing::warn!(
                pages = log,
                "the WAL cannot be restarted: a reader holds an old snapshot"
            );
        }
    } else if waiting >= policy.passive_pages || (!written && waiting > 0) {
        checkpoint(conn, Mode::Passive)?;
        shared.update(|s| s.passive += 1);
    }
    Ok(())
}

/// Copies back what is left and restarts the log, holding the writer between two of its
/// transactions meanwhile.
fn restart(
    conn: &mut SqliteConnection,
    policy: &WalPolicy,
    shared: &WalShared,
    memory: &mut Memory,
) -> QueryResult<()> {
    let started = Instant::now();
    let restarted = shared.restart(|| checkpoint(conn, Mode::Restart))?;
    let held = started.elapsed();
    let done = restarted.busy == 0;
    memory.restarted_at = done.then_some(restarted.log);
    memory.retry_at = (!done).then(|| Instant::now() + policy.idle);
    shared.update(|s| {
        if done {
            s.restarts += 1;
        } else {
            s.restarts_busy += 1;
        }
        s.longest_hold = s.longest_hold.max(held);
    });
    Ok(())
}
