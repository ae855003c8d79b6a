//! The live policy: the compiled `Snapshot` that decisions read, swapped atomically after
//! every committed change, and the anti-passback `Presence` kept beside it (rebuilt from
//! the event log at start, so a restart forgets nobody who is inside).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::ArcSwap;
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::policy::{
    CompileError, Decision, PersonRecord, Presence, Reservation, Snapshot, recheck_antipassback,
};
use crate::store::DbPool;
use crate::store::load::{LoadError, ReaderWire, load_people, load_policy, policy_version};

/// Registered readers by wire id, with their secrets: what the drivers and the hub need to
/// authenticate readers and sign commands. Swapped together with the snapshot.
#[derive(Debug, Default)]
pub struct ReaderDirectory {
    by_id: std::collections::HashMap<String, ReaderWire>,
}

impl ReaderDirectory {
    pub fn new(readers: Vec<ReaderWire>) -> ReaderDirectory {
        ReaderDirectory {
            by_id: readers
                .into_iter()
                .map(|r| (r.reader_id.clone(), r))
                .collect(),
        }
    }

    pub fn get(&self, reader_id: &str) -> Option<&ReaderWire> {
        self.by_id.get(reader_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ReaderWire> {
        self.by_id.values()
    }

    /// True when `secret` is this reader's secret (constant time in the secret's bytes).
    pub fn authenticates(&self, reader_id: &str, secret: &str) -> bool {
        self.get(reader_id)
            .is_some_and(|r| crate::identity::secret::constant_time_eq(&r.secret, secret))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("could not read the policy: {0}")]
    Load(#[from] LoadError),
    #[error("the stored policy does not compile: {0}")]
    Compile(#[from] CompileError),
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("the policy reload task failed: {0}")]
    Task(String),
    #[error("cannot rebuild anti-passback presence from the event log: {0}")]
    Presence(diesel::result::Error),
}

pub struct LivePolicy {
    current: ArcSwap<Snapshot>,
    readers: ArcSwap<ReaderDirectory>,
    /// Read by every decision; written when a passage is settled (`settle`), undone when
    /// its event could not be recorded, and by a zone's reset.
    presence: RwLock<Presence>,
    /// Bumped by every change that wants a reload; reloads cover all requests made before
    /// they started, so a burst of admin changes costs one or two reloads, not one each.
    requested: AtomicU64,
    loaded: tokio::sync::Mutex<u64>,
    /// Why the last rebuild failed, while the previous snapshot stays in force.
    last_error: Mutex<Option<String>>,
    /// The stored policy version the snapshot in force was compiled from.
    version: AtomicI64,
    /// The stored version the last rebuild attempt read, successful or not.
    attempted: AtomicI64,
    /// Tells watchers (the reader drivers) that a new snapshot is in force.
    swapped: tokio::sync::watch::Sender<i64>,
    /// When each zone's presence was last reset (from the log at start), or when this
    /// process first saw the zone's daily reset set: the next reset is the first one due
    /// after it.
    resets: Mutex<std::collections::HashMap<i64, DateTime<Utc>>>,
    /// People laid over the snapshot since it was compiled (`refresh_people`), held while
    /// a snapshot is stored so that a compile of an older version gets them laid again.
    laid: Mutex<LaidPeople>,
    /// Snapshots compiled from the whole policy, and person changes laid over one.
    compiled: AtomicU64,
    laid_over: AtomicU64,
}

/// A zone's daily anti-passback reset that has come due (`LivePolicy::presence_resets_due`).
#[derive(Debug, Clone, PartialEq)]
pub struct DueReset {
    pub zone_id: i64,
    pub site_id: i64,
    /// The reset's time of day, on `timezone`'s clock.
    pub local_time: NaiveTime,
    pub timezone: Tz,
    /// The instant the reset was due.
    pub due: DateTime<Utc>,
}

/// How the snapshots in force came about since start: what the health page and the
/// benchmark of an identity provider's pace report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RebuildCounts {
    /// Whole-policy compiles (after a change that is not one person's, a change made
    /// elsewhere, the hourly rebuild).
    pub compiled: u64,
    /// Changes to one person's rows laid over the snapshot in force.
    pub laid_over: u64,
}

/// How many person changes may be laid over one compiled snapshot. A compile follows
/// within a second, so only a policy that stopped compiling gets near it.
const MAX_LAID_CHANGES: usize = 2_000;

/// Every person-scoped change laid over the snapshot in force since its compile, with the
/// policy version its rows were read at.
#[derive(Default)]
struct LaidPeople {
    /// The version the snapshot under them was compiled from: rows read before it are
    /// older than what it holds.
    compiled: i64,
    changes: Vec<(i64, Vec<PersonRecord>)>,
}

impl LaidPeople {
    /// The version person `id`'s rows were last laid from, if they were.
    fn version_of(&self, person_id: i64) -> Option<i64> {
        self.changes
            .iter()
            .rev()
            .find(|(_, records)| records.iter().any(|r| r.person_id == person_id))
            .map(|(version, _)| *version)
    }
}

impl LivePolicy {
    /// Loads and compiles the stored policy; used once at start.
    pub fn load(db: &DbPool, now: DateTime<Utc>) -> Result<LivePolicy, RefreshError> {
        let (snapshot, readers, version) = compile_from(db, now)?;
        let (presence, resets) = rebuild_presence(db)?;
        Ok(LivePolicy {
            resets: Mutex::new(resets),
            readers: ArcSwap::from_pointee(readers),
            swapped: tokio::sync::watch::Sender::new(version),
            version: AtomicI64::new(version),
            attempted: AtomicI64::new(version),
            current: ArcSwap::from_pointee(snapshot),
            presence: RwLock::new(presence),
            requested: AtomicU64::new(0),
            loaded: tokio::sync::Mutex::new(0),
            last_error: Mutex::new(None),
            laid: Mutex::new(LaidPeople {
                compiled: version,
                changes: Vec::new(),
            }),
            compiled: AtomicU64::new(1),
            laid_over: AtomicU64::new(0),
        })
    }

    /// The snapshot in force now. Cheap: an atomic load of an Arc.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Wakes whenever a new snapshot is swapped in (its value: the policy version).
    pub fn watch_swaps(&self) -> tokio::sync::watch::Receiver<i64> {
        self.swapped.subscribe()
    }

    /// The registered readers in force now.
    pub fn readers(&self) -> Arc<ReaderDirectory> {
        self.readers.load_full()
    }

    /// Runs `f` with the anti-passback state (shared with other readers of it).
    pub fn read_presence<T>(&self, f: impl FnOnce(&Presence) -> T) -> T {
        match self.presence.read() {
            Ok(p) => f(&p),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Settles a swipe's decision (made against `snapshot` with `read_presence`) and notes
    /// its passage, in one step under the presence lock: anti-passback is checked again
    /// against presence as it is now, so of two swipes of one card decided at once only
    /// the first passes. The lock is taken only for a grant at a door under anti-passback,
    /// and held for a hash lookup and an insert, never across a database write: the
    /// passage is noted before its event is durable, and the returned reservation undoes
    /// it (`undo`) if the event is not recorded.
    pub fn settle(
        &self,
        snapshot: &Snapshot,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> (Decision, Option<Reservation>) {
        if decision.passage(now).is_none() {
            return (decision, None);
        }
        let mut presence = match self.presence.write() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let decision = recheck_antipassback(snapshot, &presence, decision);
        let reservation = decision.passage(now).map(|passage| presence.pass(passage));
        (decision, reservation)
    }

    /// The zones whose daily anti-passback reset (`presence_reset`, on their site's clock)
    /// has come due since their last reset: the last reset time of day at or before `now`
    /// is after it. A zone whose reset was only just set is due from its next one; a reset
    /// missed while the appliance was off is due at once. Resets nothing (it only starts
    /// watching a zone newly set): the caller records each reset, then applies it with
    /// `reset_presence`.
    pub fn presence_resets_due(&self, now: DateTime<Utc>) -> Vec<DueReset> {
        let snapshot = self.snapshot();
        let Ok(mut resets) = self.resets.lock() else {
            return Vec::new();
        };
        let mut due = Vec::new();
        for zone in snapshot.zones() {
            let Some(local_time) = zone.presence_reset else {
                continue;
            };
            let Some(timezone) = snapshot.site_timezone(zone.site_id) else {
                continue;
            };
            let Some(last_due) = last_local_time(local_time, timezone, now) else {
                continue;
            };
            match resets.get(&zone.id) {
                None => {
                    resets.insert(zone.id, now);
                }
                Some(last) if last_due > *last => due.push(DueReset {
                    zone_id: zone.id,
                    site_id: zone.site_id,
                    local_time,
                    timezone,
                    due: last_due,
                }),
                Some(_) => {}
            }
        }
        due
    }

    /// Forgets everyone counted inside `zone_id` by passages before `at` (a reset recorded
    /// at `at`); returns how many people that was.
    pub fn reset_presence(&self, zone_id: i64, at: DateTime<Utc>) -> usize {
        if let Ok(mut resets) = self.resets.lock() {
            resets.insert(zone_id, at);
        }
        match self.presence.write() {
            Ok(mut p) => p.reset_zone(zone_id, at),
            Err(poisoned) => poisoned.into_inner().reset_zone(zone_id, at),
        }
    }

    /// Takes back a passage noted by `settle` whose event was not recorded.
    pub fn undo(&self, reservation: Reservation) {
        match self.presence.write() {
            Ok(mut p) => p.undo(reservation),
            Err(poisoned) => poisoned.into_inner().undo(reservation),
        }
    }

    /// Rebuilds the snapshot from the database after a committed change; returns once a
    /// snapshot that includes that change is live.
    pub async fn refresh(&self, db: &DbPool, now: DateTime<Utc>) -> Result<(), RefreshError> {
        let wanted = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut loaded = self.loaded.lock().await;
        if *loaded >= wanted {
            return Ok(());
        }
        let target = self.requested.load(Ordering::SeqCst);
        let db = db.clone();
        let result = tokio::task::spawn_blocking(move || compile_from(&db, now))
            .await
            .map_err(|e| RefreshError::Task(e.to_string()))
            .and_then(|r| r);
        let stale = match result {
            Ok((snapshot, readers, version)) => {
                let snapshot = self.store_compiled(snapshot, version);
                self.compiled.fetch_add(1, Ordering::Relaxed);
                // The console's people list sorts a new snapshot's people on first use (tens
                // of milliseconds at 100,000): done now, off the request path.
                tokio::task::spawn_blocking(move || snapshot.find_people(Default::default(), 0, 0));
                self.readers.store(Arc::new(readers));
                self.version.store(version, Ordering::SeqCst);
                self.attempted.store(version, Ordering::SeqCst);
                self.swapped.send_replace(version);
                *loaded = target;
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "the live policy could not be rebuilt; the previous one stays in force");
                Some(e)
            }
        };
        if let Ok(mut last) = self.last_error.lock() {
            *last = stale.as_ref().map(|e| e.to_string());
        }
        stale.map_or(Ok(()), Err)
    }

    /// Stores a freshly compiled snapshot, with the people changes read after its version
    /// laid over it again (they were made while it compiled); those it holds are dropped.
    fn store_compiled(&self, compiled: Snapshot, version: i64) -> Arc<Snapshot> {
        let mut laid = self.laid.lock().unwrap_or_else(|p| p.into_inner());
        laid.compiled = laid.compiled.max(version);
        laid.changes.retain(|(read_at, _)| *read_at > version);
        let mut snapshot = compiled;
        for (read_at, records) in &laid.changes {
            match snapshot.with_people(records) {
                Ok(next) => snapshot = next.at_version(version.max(*read_at)),
                // Cannot happen for rows that were laid over the older snapshot; the next
                // compile (the database moved, so `follow_database` runs one) has them.
                Err(e) => {
                    tracing::warn!(error = %e, "a person change could not be laid over the new snapshot")
                }
            }
        }
        let snapshot = Arc::new(snapshot);
        self.current.store(snapshot.clone());
        snapshot
    }

    /// After a committed change to these people's own rows (the person, their cards, their
    /// entitlements): reads only their rows and lays them over the snapshot in force, so
    /// the change governs the very next swipe without compiling the whole policy (~90 ms
    /// at 100,000 people). The compile follows within a second, since the database moved
    /// (`follow_database`), and folds them in. Rows that cannot be laid over on their own
    /// (a card another person holds in the snapshot) are left to a full rebuild, now.
    pub async fn refresh_people(
        &self,
        db: &DbPool,
        person_ids: Vec<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), RefreshError> {
        let mut person_ids = person_ids;
        person_ids.sort_unstable();
        person_ids.dedup();
        let pool = db.clone();
        let (records, version) = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            load_people(&mut conn, &person_ids).map_err(RefreshError::Load)
        })
        .await
        .map_err(|e| RefreshError::Task(e.to_string()))??;
        let needs_compile = self.lay_over(records, version);
        if needs_compile {
            self.refresh(db, now).await
        } else {
            Ok(())
        }
    }

    /// Lays people's rows read at `version` over the snapshot in force; true when they need
    /// a compile instead.
    fn lay_over(&self, records: Vec<PersonRecord>, version: i64) -> bool {
        let mut laid = self.laid.lock().unwrap_or_else(|p| p.into_inner());
        // Rows read before the compile in force, or before a newer read of the same person
        // was laid, are older than what the snapshot holds.
        let records: Vec<PersonRecord> = records
            .into_iter()
            .filter(|r| {
                version >= laid.compiled
                    && laid.version_of(r.person_id).is_none_or(|v| v <= version)
            })
            .collect();
        if records.is_empty() {
            return false;
        }
        // While compiles fail (a database broken by hand), changes are not piled up
        // without end: past a bound each one waits for a compile again, as before.
        if laid.changes.len() >= MAX_LAID_CHANGES {
            return true;
        }
        let current = self.current.load();
        match current.with_people(&records) {
            Ok(next) => {
                // Decisions under it record the newest version it holds.
                let holds = current.version().max(version);
                self.current.store(Arc::new(next.at_version(holds)));
                laid.changes.push((version, records));
                self.laid_over.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "a person change needs a full rebuild");
                true
            }
        }
    }

    /// Rebuilds when the stored policy changed behind this process's back: another
    /// instance on the same PostgreSQL database, or the CLI. `on_change` runs first, for
    /// what else such a change may have made stale (cached tokens and sessions: a token
    /// revoked or an admin disabled through the CLI). Returns whether the database had
    /// changed; a failed rebuild is logged and shown by `stale_because`. A version whose
    /// rebuild already failed is not retried until the stored version moves again.
    pub async fn follow_database(
        &self,
        db: &DbPool,
        now: DateTime<Utc>,
        on_change: impl FnOnce(),
    ) -> Result<bool, RefreshError> {
        let pool = db.clone();
        let stored = tokio::task::spawn_blocking(move || -> Result<i64, RefreshError> {
            let mut conn = pool.get()?;
            policy_version(&mut conn).map_err(|e| RefreshError::Load(LoadError::Db(e)))
        })
        .await
        .map_err(|e| RefreshError::Task(e.to_string()))??;
        if stored == self.attempted.swap(stored, Ordering::SeqCst) {
            return Ok(false);
        }
        on_change();
        // Logged by `refresh` and kept for `stale_because`.
        let _ = self.refresh(db, now).await;
        Ok(true)
    }

    /// How many snapshots were compiled and how many person changes laid over one.
    pub fn rebuild_counts(&self) -> RebuildCounts {
        RebuildCounts {
            compiled: self.compiled.load(Ordering::Relaxed),
            laid_over: self.laid_over.load(Ordering::Relaxed),
        }
    }

    /// The stored policy version of the snapshot in force.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Why the live policy is older than the database, if the last rebuild failed.
    pub fn stale_because(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

fn compile_from(
    db: &DbPool,
    now: DateTime<Utc>,
) -> Result<(Snapshot, ReaderDirectory, i64), RefreshError> {
    let loaded = {
        let mut conn = db.get()?;
        load_policy(&mut conn)?
    };
    let snapshot = Snapshot::compile(&loaded.data, now)?.at_version(loaded.version);
    Ok((
        snapshot,
        ReaderDirectory::new(loaded.readers),
        loaded.version,
    ))
}

/// Presence as the event log leaves it: each person's last granted passage per
/// anti-passback zone since the zone's last reset, and when each zone was last reset.
/// Never "nobody inside": that would let everyone who is inside enter again.
type Rebuilt = (Presence, std::collections::HashMap<i64, DateTime<Utc>>);

fn rebuild_presence(db: &DbPool) -> Result<Rebuilt, RefreshError> {
    let mut conn = db.get()?;
    let resets =
        crate::store::event_log::presence_resets(&mut conn).map_err(RefreshError::Presence)?;
    let mut presence = Presence::new();
    crate::store::event_log::passages(&mut conn, &resets, |passage| {
        let _ = presence.pass(passage);
    })
    .map_err(RefreshError::Presence)?;
    Ok((presence, resets))
}

/// The last instant at or before `now` when `tz`'s clock read `time` (today's or
/// yesterday's). A time the clock skips (a DST gap) comes when the clock jumps past it; a
/// time it reads twice, the first time.
fn last_local_time(time: NaiveTime, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = now.with_timezone(&tz).date_naive();
    for date in [Some(today), today.pred_opt()].into_iter().flatten() {
        let naive = date.and_time(time);
        // In a gap, the first minute the clock does read after `time` (gaps last hours at
        // most).
        let at = (0..=180)
            .find_map(|minutes| {
                (naive + TimeDelta::minutes(minutes))
                    .and_local_timezone(tz)
                    .earliest()
            })
            .map(|at| at.with_timezone(&Utc));
        if let Some(at) = at
            && at <= now
        {
            return Some(at);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn the_last_reset_time_is_on_the_sites_clock() {
        let three = NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 03:00 in Berlin in winter is 02:00 UTC.
        assert_eq!(
            last_local_time(three, berlin, utc("2026-12-08T02:00:00Z")),
            Some(utc("2026-12-08T02:00:00Z"))
        );
        assert_eq!(
            last_local_time(three, berlin, utc("2026-12-08T01:59:59Z")),
            Some(utc("2026-12-07T02:00:00Z"))
        );
        // 02:30 does not exist on the night clocks go forward (02:00 → 03:00): the reset
        // comes as the clock jumps, at 01:00 UTC.
        let half_past_two = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
        assert_eq!(
            last_local_time(half_past_two, berlin, utc("2026-03-29T05:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // 02:30 happens twice the night clocks go back: the first one counts.
        assert_eq!(
            last_local_time(half_past_two, berlin, utc("2026-10-25T05:00:00Z")),
            Some(utc("2026-10-25T00:30:00Z"))
        );
    }
}
