//! The scheduler: every periodic piece of upkeep (`serve` registers them) as a named job
//! with a cron schedule, run one at a time, its last run kept for the settings page and API.
//!
//! A job is a name, a sentence for admins, a cron expression (read in `[jobs] timezone`,
//! in the forms `policy::schedule::parse_cron` takes, seconds allowed) and an async
//! function returning what it did or why it failed. Each job has a task of its own that
//! waits on the appliance's `Clock` (so tests can move time and `simulate --day` runs it
//! faster). A run still going when the next is due makes that next one skipped and
//! counted, never overlapped; a run that fails or panics is recorded and logged, and the
//! job and every other go on. Due times missed while the task was busy are not caught up.
//!
//! Instances sharing a database: a job is either run by every instance (it keeps that
//! process's own state: its live policy, its log lines) or by one instance per due time
//! ([`Instances::One`], e.g. deleting old events). Such a run is claimed on PostgreSQL with
//! a session advisory lock per job, held while it runs, and recorded in `job_runs` with the
//! due time it was for; an instance that finds the lock taken or its due time recorded
//! leaves it (counted as run elsewhere). The stored run survives a restart, and a due time
//! missed while no instance ran (a first start, a night switched off) is run once at start.
//! On SQLite one `serve` owns the file, so there is no lock: the record alone is checked.
//!
//! Not jobs: the door timers (ending momentary unlocks, held-open checks, the fault
//! summaries) are the hub's own per-second bookkeeping and stay a loop in `serve`; the
//! dashboard's day tally recounts lazily when it is read; the SQLite checkpointer follows
//! the writer, not the clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::{Clock, stored, utc};
use crate::store::rows::JobRunRow;
use crate::store::schema::job_runs;
use crate::store::{DbConnection, DbPool, PooledDb, write_transaction};

/// What a run says: what it did (`Ok`), or why it failed. Shown to every admin role and
/// logged, so it names counts and versions, never secrets or personal data.
pub type RunResult = Result<String, String>;

type RunFuture = Pin<Box<dyn Future<Output = RunResult> + Send>>;
type RunFn = Arc<dyn Fn() -> RunFuture + Send + Sync>;

/// The longest the scheduler sleeps before looking at the clock again: the appliance's
/// clock may be moved (tests) or run faster (`simulate --day`) than the timer it sleeps on.
const CLOCK_LOOK: Duration = Duration::from_secs(1);

/// The first key of every job's PostgreSQL advisory lock ("jobs" in ASCII). Locks taken
/// with two keys never collide with one-key locks such as the audit chain's.
const LOCK_CLASS: i32 = 0x6a6f_6273;

/// Which instances run a job when several share one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Instances {
    /// Every instance: the job keeps that process's own state.
    Each,
    /// One instance per due time: the first to claim it; its last run is stored.
    One,
}

/// A job that cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job {name}: '{expression}' is not a cron expression: {reason}")]
    Schedule {
        name: &'static str,
        expression: String,
        reason: String,
    },
    #[error("job {name}: '{expression}' never comes due")]
    NeverDue {
        name: &'static str,
        expression: String,
    },
    #[error("a job named {0} is already registered")]
    Duplicate(&'static str),
}

/// A job to register: its name (`snake_case`, stable: the API and the stored runs use
/// it), what it does in one sentence for admins, when, where, and the function.
pub struct JobSpec {
    name: &'static str,
    about: &'static str,
    schedule: String,
    instances: Instances,
    run: RunFn,
}

impl JobSpec {
    pub fn new<F, Fut>(
        name: &'static str,
        about: &'static str,
        schedule: &str,
        instances: Instances,
        run: F,
    ) -> JobSpec
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RunResult> + Send + 'static,
    {
        JobSpec {
            name,
            about,
            schedule: schedule.to_owned(),
            instances,
            run: Arc::new(move || Box::pin(run())),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Ok,
    Failed,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LastRun {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub result: RunOutcome,
    /// What the run did, or why it failed.
    pub detail: String,
    /// The instance that ran it: its host name and process id.
    pub instance: String,
}

/// A job as the settings page and `GET /api/v1/jobs` show it. The counts are this
/// instance's since it started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub name: String,
    pub about: String,
    /// The cron expression, read in `timezone`.
    pub schedule: String,
    pub timezone: String,
    pub instances: Instances,
    /// When the run going on now started, if one is.
    pub running_since: Option<DateTime<Utc>>,
    pub last_run: Option<LastRun>,
    /// When it is next due; null when its schedule has no further date.
    pub next_run: Option<DateTime<Utc>>,
    /// Runs this instance started.
    pub runs: u64,
    /// Due times skipped because the previous run was still going.
    pub skipped: u64,
    /// Due times another instance ran (or was running) instead ([`Instances::One`] only).
    pub run_elsewhere: u64,
}

struct Job {
    name: &'static str,
    about: &'static str,
    schedule_text: String,
    schedule: cron::Schedule,
    instances: Instances,
    run: RunFn,
    state: Mutex<JobState>,
}

#[derive(Default)]
struct JobState {
    running_since: Option<DateTime<Utc>>,
    last: Option<LastRun>,
    next: Option<DateTime<Utc>>,
    runs: u64,
    skipped: u64,
    skipped_this_run: u64,
    run_elsewhere: u64,
}

impl Job {
    fn state(&self) -> MutexGuard<'_, JobState> {
        // The state is plain counters and copies, consistent after any panic.
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// What every job's task needs besides its job: cheap to clone.
#[derive(Clone)]
struct Runner {
    clock: Clock,
    timezone: Tz,
    db: DbPool,
    instance: Arc<str>,
}

/// The appliance's jobs: registered at start (and later, one call each), visible through
/// [`Jobs::views`].
pub struct Jobs {
    runner: Runner,
    list: Mutex<Vec<Arc<Job>>>,
    runtime: OnceLock<tokio::runtime::Handle>,
}

impl Jobs {
    /// Jobs whose schedules are read in `timezone` on `clock`; one-instance jobs are
    /// claimed and recorded in `db`.
    pub fn new(clock: Clock, timezone: Tz, db: DbPool) -> Jobs {
        Jobs {
            runner: Runner {
                clock,
                timezone,
                db,
                instance: instance_name().into(),
            },
            list: Mutex::new(Vec::new()),
            runtime: OnceLock::new(),
        }
    }

    fn list(&self) -> MutexGuard<'_, Vec<Arc<Job>>> {
        match self.list.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Registers a job; once [`Jobs::start`] has run it is scheduled at once.
    pub fn add(&self, spec: JobSpec) -> Result<(), JobError> {
        let schedule = crate::policy::schedule::parse_cron(&spec.schedule).map_err(|reason| {
            JobError::Schedule {
                name: spec.name,
                expression: spec.schedule.clone(),
                reason,
            }
        })?;
        if schedule.after(&Utc::now()).next().is_none() {
            return Err(JobError::NeverDue {
                name: spec.name,
                expression: spec.schedule,
            });
        }
        let mut list = self.list();
        if list.iter().any(|job| job.name == spec.name) {
            return Err(JobError::Duplicate(spec.name));
        }
        let job = Arc::new(Job {
            name: spec.name,
            about: spec.about,
            schedule_text: spec.schedule,
            schedule,
            instances: spec.instances,
            run: spec.run,
            state: Mutex::default(),
        });
        list.push(job.clone());
        if let Some(runtime) = self.runtime.get() {
            runtime.spawn(drive(job, self.runner.clone()));
        }
        Ok(())
    }

    /// Starts scheduling every job registered so far (and, from now on, those added
    /// later) on the current tokio runtime. Starting twice changes nothing.
    pub fn start(&self) {
        let list = self.list();
        if self.runtime.set(tokio::runtime::Handle::current()).is_err() {
            return;
        }
        for job in list.iter() {
            tokio::spawn(drive(job.clone(), self.runner.clone()));
        }
    }

    /// Every job in registration order. `stored` is [`stored_runs`]: the last run of a
    /// one-instance job is the newer of the stored one (perhaps another instance's, or
    /// from before a restart) and this instance's.
    pub fn views(&self, stored: &[JobRunRow]) -> Vec<JobView> {
        let timezone = self.runner.timezone.name().to_owned();
        self.list()
            .iter()
            .map(|job| {
                let state = job.state();
                let stored = stored
                    .iter()
                    .find(|row| row.job == job.name)
                    .map(last_run_of);
                let last_run = match (state.last.clone(), stored) {
                    (Some(mine), Some(theirs)) if theirs.started_at > mine.started_at => {
                        Some(theirs)
                    }
                    (Some(mine), _) => Some(mine),
                    (None, stored) => stored,
                };
                JobView {
                    name: job.name.to_owned(),
                    about: job.about.to_owned(),
                    schedule: job.schedule_text.clone(),
                    timezone: timezone.clone(),
                    instances: job.instances,
                    running_since: state.running_since,
                    last_run,
                    next_run: state.next,
                    runs: state.runs,
                    skipped: state.skipped,
                    run_elsewhere: state.run_elsewhere,
                }
            })
            .collect()
    }
}

/// The stored last runs of the one-instance jobs.
pub fn stored_runs(conn: &mut DbConnection) -> QueryResult<Vec<JobRunRow>> {
    job_runs::table
        .select(JobRunRow::as_select())
        .order(job_runs::job)
        .load(conn)
}

fn last_run_of(row: &JobRunRow) -> LastRun {
    LastRun {
        started_at: utc(row.started_at),
        duration_ms: row.duration_ms,
        result: if row.succeeded {
            RunOutcome::Ok
        } else {
            RunOutcome::Failed
        },
        detail: row.detail.clone(),
        instance: row.instance.clone(),
    }
}

/// This process as other instances see it in a stored run.
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".to_owned());
    format!("{host} (pid {})", std::process::id())
}

/// One job's task: waits for each due time and starts a run unless one is still going.
async fn drive(job: Arc<Job>, runner: Runner) {
    if job.instances == Instances::One
        && let Some(missed) = runner.missed(&job).await
    {
        fire(&job, &runner, missed);
    }
    loop {
        let now = runner.clock.now().with_timezone(&runner.timezone);
        let next = job
            .schedule
            .after(&now)
            .next()
            .map(|t| t.with_timezone(&Utc));
        job.state().next = next;
        let Some(due) = next else {
            return;
        };
        runner.wait_until(due).await;
        fire(&job, &runner, due);
    }
}

/// Starts a run for `due`, or counts it skipped while the previous run is still going.
fn fire(job: &Arc<Job>, runner: &Runner, due: DateTime<Utc>) {
    {
        let mut state = job.state();
        if let Some(since) = state.running_since {
            state.skipped += 1;
            state.skipped_this_run += 1;
            // Info, not a warning: following the database right after a large import
            // takes longer than its second, and that is expected.
            if state.skipped_this_run == 1 {
                tracing::info!(
                    job = job.name,
                    running_since = %since,
                    "a job is still running at its next due time; that run is skipped"
                );
            }
            return;
        }
        state.running_since = Some(runner.clock.now());
        state.skipped_this_run = 0;
    }
    tokio::spawn(run(job.clone(), runner.clone(), due));
}

async fn run(job: Arc<Job>, runner: Runner, due: DateTime<Utc>) {
    // In whole milliseconds, as stored on either backend, so that this instance's copy
    // and the stored one of the same run compare equal.
    let started_at = runner.clock.now().trunc_subsecs(3);
    let started = Instant::now();
    let claimed = match job.instances {
        Instances::Each => Ok(None),
        Instances::One => runner.claim(job.name, due).await.map(|held| match held {
            Claim::Mine(conn) => Some(conn),
            Claim::Elsewhere => None,
        }),
    };
    let (result, held) = match claimed {
        Ok(None) if job.instances == Instances::One => {
            let mut state = job.state();
            state.run_elsewhere += 1;
            state.running_since = None;
            return;
        }
        Ok(held) => {
            // On a task of its own, so that a panic ends the run, not the scheduler.
            let result = match tokio::spawn((job.run)()).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(format!(
                    "the job panicked: {}",
                    panic_text(e.into_panic().as_ref())
                )),
                Err(e) => Err(format!("the job was cancelled: {e}")),
            };
            (result, held)
        }
        Err(e) => (
            Err(format!(
                "could not tell whether another instance runs it, so it did not run: {e}"
            )),
            None,
        ),
    };
    let (outcome, detail) = match result {
        Ok(detail) => (RunOutcome::Ok, detail),
        Err(detail) => (RunOutcome::Failed, detail),
    };
    let last = LastRun {
        started_at,
        duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        result: outcome,
        detail,
        instance: runner.instance.to_string(),
    };
    let previous = job.state().last.clone();
    match (&previous, outcome) {
        (Some(before), RunOutcome::Ok) if before.result == RunOutcome::Failed => {
            tracing::info!(job = job.name, "the job succeeded again");
        }
        // A job that fails every second logs when its reason changes, not every second.
        (Some(before), RunOutcome::Failed)
            if before.result == RunOutcome::Failed && before.detail == last.detail => {}
        (_, RunOutcome::Failed) => {
            tracing::error!(job = job.name, error = %last.detail, "the job failed");
        }
        _ => {}
    }
    let last = match held {
        Some(conn) => runner.record(conn, job.name, due, last).await,
        None => last,
    };
    let mut state = job.state();
    state.last = Some(last);
    state.runs += 1;
    state.running_since = None;
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Who runs a one-instance job's due time.
enum Claim {
    /// This instance: the connection holds the job's advisory lock (PostgreSQL).
    Mine(PooledDb),
    /// Another instance is running it or has run it.
    Elsewhere,
}

/// The job's advisory lock key: a stable hash of its name.
fn lock_key(job: &str) -> i32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(job.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn try_lock(conn: &mut DbConnection, job: &str) -> QueryResult<bool> {
    #[cfg(feature = "postgres")]
    if let DbConnection::Postgres(pg) = conn {
        return diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_try_advisory_lock({LOCK_CLASS}, {})",
            lock_key(job)
        )))
        .get_result(pg);
    }
    Ok(true)
}

#[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
fn unlock(conn: &mut DbConnection, job: &str) -> QueryResult<()> {
    #[cfg(feature = "postgres")]
    if let DbConnection::Postgres(pg) = conn {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_advisory_unlock({LOCK_CLASS}, {})",
            lock_key(job)
        )))
        .get_result::<bool>(pg)?;
    }
    Ok(())
}

/// The claim, on a blocking thread: the lock, then whether `due` is already recorded.
fn claim_blocking(db: &DbPool, job: &str, due: DateTime<Utc>) -> Result<Claim, String> {
    let mut conn = db.get().map_err(|e| e.to_string())?;
    if !try_lock(&mut conn, job).map_err(|e| e.to_string())? {
        return Ok(Claim::Elsewhere);
    }
    let recorded: QueryResult<Option<chrono::NaiveDateTime>> = job_runs::table
        .filter(job_runs::job.eq(job))
        .select(job_runs::due_at)
        .first(&mut *conn)
        .optional();
    match recorded {
        Ok(Some(done)) if done >= stored(due) => {
            unlock(&mut conn, job).map_err(|e| e.to_string())?;
            Ok(Claim::Elsewhere)
        }
        Ok(_) => Ok(Claim::Mine(conn)),
        Err(e) => {
            // Unlocked before the connection goes back to the pool; if that fails too the
            // connection is broken, and PostgreSQL drops its locks with it.
            let _ = unlock(&mut conn, job);
            Err(e.to_string())
        }
    }
}

/// Stores the run and releases the lock, on a blocking thread.
fn record_blocking(
    conn: &mut DbConnection,
    job: &str,
    due: DateTime<Utc>,
    last: &LastRun,
) -> QueryResult<()> {
    let row = JobRunRow {
        job: job.to_owned(),
        due_at: stored(due),
        started_at: stored(last.started_at),
        duration_ms: last.duration_ms,
        succeeded: last.result == RunOutcome::Ok,
        detail: last.detail.clone(),
        instance: last.instance.clone(),
    };
    let stored = write_transaction(conn, |conn| {
        let updated = diesel::update(job_runs::table.filter(job_runs::job.eq(job)))
            .set(&row)
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(job_runs::table)
                .values(&row)
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    });
    let unlocked = unlock(conn, job);
    stored.and(unlocked)
}

impl Runner {
    /// Sleeps until the clock reads `due`, looking at it at least every [`CLOCK_LOOK`].
    async fn wait_until(&self, due: DateTime<Utc>) {
        loop {
            let left = due - self.clock.now();
            if left <= TimeDelta::zero() {
                return;
            }
            let left = left.to_std().unwrap_or(Duration::ZERO);
            tokio::time::sleep(left.min(CLOCK_LOOK)).await;
        }
    }

    /// The latest due time before now, if no instance has run it (nor a later one).
    async fn missed(&self, job: &Job) -> Option<DateTime<Utc>> {
        let now = self.clock.now().with_timezone(&self.timezone);
        let previous = job.schedule.after(&now).next_back()?.with_timezone(&Utc);
        let (db, name) = (self.db.clone(), job.name);
        let recorded = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut conn = db.get().map_err(|e| e.to_string())?;
            job_runs::table
                .filter(job_runs::job.eq(name))
                .select(job_runs::due_at)
                .first::<chrono::NaiveDateTime>(&mut *conn)
                .optional()
                .map_err(|e| e.to_string())
        })
        .await;
        match recorded {
            Ok(Ok(Some(done))) if done >= stored(previous) => None,
            Ok(Ok(_)) => Some(previous),
            // Unknown: the run at the next due time will tell (and report the problem).
            Ok(Err(_)) | Err(_) => None,
        }
    }

    async fn claim(&self, job: &'static str, due: DateTime<Utc>) -> Result<Claim, String> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || claim_blocking(&db, job, due))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Stores a one-instance job's run; a run that cannot be stored says so in its detail
    /// (another instance may then run the same due time again).
    async fn record(
        &self,
        mut conn: PooledDb,
        job: &'static str,
        due: DateTime<Utc>,
        last: LastRun,
    ) -> LastRun {
        let run = last.clone();
        let stored =
            tokio::task::spawn_blocking(move || record_blocking(&mut conn, job, due, &run)).await;
        let problem = match stored {
            Ok(Ok(())) => return last,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!(job, error = %problem, "the job's run could not be stored");
        LastRun {
            result: RunOutcome::Failed,
            detail: format!(
                "{} (and the run could not be stored: {problem})",
                last.detail
            ),
            ..last
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("event_retention"), lock_key("event_retention"));
        assert_ne!(lock_key("event_retention"), lock_key("policy_rebuild"));
    }

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        assert_eq!(panic_text(&"static text"), "static text");
        assert_eq!(panic_text(&String::from("owned text")), "owned text");
        assert_eq!(panic_text(&42_u8), "(no message)");
    }
}
