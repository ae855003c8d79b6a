//! The event log: the append-only record of every swipe, door change, alarm and reader
//! fault. One writer thread group-commits batches, so a burst of events costs one fsync.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};
use utoipa::ToSchema;

use crate::clock::stored;
use crate::policy::{Direction, Passage, PresenceEntry};
use crate::store::checkpoint::{Checkpointer, WalPolicy, WalShared, WalStats};
use crate::store::schema::{event_reader_marks, events};
use crate::store::{DbConnection, DbPool, PooledDb, write_transaction};

/// What happened. Stored and serialized as its `as_str()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Swipe,
    DoorOpen,
    DoorClosed,
    ForcedOpen,
    HeldOpen,
    Rex,
    Tamper,
    TamperCleared,
    ReaderOnline,
    ReaderOffline,
    ReaderFault,
    /// An admin unlocked the door for a moment from the console.
    RemoteUnlock,
    /// A card was blocked after too many wrong PINs in a row (an alarm).
    PinLockout,
    /// An anti-passback zone's presence was reset (its daily reset): everyone passed
    /// before it may enter again.
    PresenceReset,
}

impl EventKind {
    pub const ALL: [EventKind; 14] = [
        EventKind::Swipe,
        EventKind::DoorOpen,
        EventKind::DoorClosed,
        EventKind::ForcedOpen,
        EventKind::HeldOpen,
        EventKind::Rex,
        EventKind::Tamper,
        EventKind::TamperCleared,
        EventKind::ReaderOnline,
        EventKind::ReaderOffline,
        EventKind::ReaderFault,
        EventKind::RemoteUnlock,
        EventKind::PinLockout,
        EventKind::PresenceReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Swipe => "swipe",
            EventKind::DoorOpen => "door_open",
            EventKind::DoorClosed => "door_closed",
            EventKind::ForcedOpen => "forced_open",
            EventKind::HeldOpen => "held_open",
            EventKind::Rex => "rex",
            EventKind::Tamper => "tamper",
            EventKind::TamperCleared => "tamper_cleared",
            EventKind::ReaderOnline => "reader_online",
            EventKind::ReaderOffline => "reader_offline",
            EventKind::ReaderFault => "reader_fault",
            EventKind::RemoteUnlock => "remote_unlock",
            EventKind::PinLockout => "pin_lockout",
            EventKind::PresenceReset => "presence_reset",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for EventKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A kind name this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an event kind")]
pub struct UnknownEventKind(pub String);

impl std::str::FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

impl<DB: diesel::backend::Backend> Queryable<diesel::sql_types::Text, DB> for EventKind
where
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    type Row = String;

    fn build(row: String) -> diesel::deserialize::Result<Self> {
        Ok(row.parse()?)
    }
}

/// How long a reader's seq is remembered: an event within a day of the last with its seq
/// and among the reader's last `SEQ_WINDOW_EVENTS` numbers is that event again (a resend)
/// or a reused seq. Beyond both, the seq is a new event's (a reader that restarted its
/// numbering). docs/protocol.md promises "at least 24 hours or 10,000 events".
pub const SEQ_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);
pub const SEQ_WINDOW_EVENTS: u64 = 10_000;

/// A reader's seq (0 to 2^64−1) as stored in a BIGINT column: its bits, unchanged. Seqs
/// up to 2^63−1 keep their value (so every row written before reads the same); above it
/// they are negative in SQL, and compared as unsigned here.
pub fn stored_seq(seq: u64) -> i64 {
    i64::from_be_bytes(seq.to_be_bytes())
}

/// The seq a stored BIGINT holds (the inverse of `stored_seq`).
pub fn reader_seq(stored: i64) -> u64 {
    u64::from_be_bytes(stored.to_be_bytes())
}

/// One event of the log, the one type it flows as: built by the hub (or an import), written
/// by the writer, broadcast to live watchers and read back, with its id, as [`Recorded`].
/// `reader_id` and `seq` identify a reader's own event: the same pair again within its
/// window is a resend (recorded once) when `content_digest` is the same, else a reused seq
/// (not recorded). Serialized as the API shows it: the reader's time, digest and answer
/// stay inside; `seq` is the reader's number; `detail` and `risk_reasons` are JSON.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = events)]
pub struct Event {
    #[diesel(deserialize_as = StoredInstant)]
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub reader_id: Option<String>,
    /// The reader's seq as stored (`stored_seq`); the reader's own number in JSON.
    #[serde(serialize_with = "serialize_seq")]
    #[schema(value_type = Option<u64>)]
    pub seq: Option<i64>,
    #[diesel(deserialize_as = StoredInstantOrNull)]
    #[serde(skip)]
    pub reader_ts: Option<DateTime<Utc>>,
    /// What the reader's event said (`message::content_digest`); `None` compares by
    /// `reader_ts` alone.
    #[serde(skip)]
    pub content_digest: Option<i64>,
    pub door_id: Option<i64>,
    pub person_id: Option<i64>,
    pub credential_id: Option<i64>,
    /// The credential as presented, kept only for unknown cards (evidence of probing).
    pub presented: Option<String>,
    /// `granted`, `denied` or `pin_required` for swipes.
    pub result: Option<String>,
    pub deny_code: Option<String>,
    pub decision_id: Option<String>,
    /// The answer sent to the reader, so that a resend gets the very same answer.
    #[serde(skip)]
    pub command: Option<String>,
    /// The decision's reasons (JSON) or the fault (text).
    #[serde(serialize_with = "serialize_json_text")]
    #[schema(value_type = Object)]
    pub detail: String,
    /// The site and zone the door was in when the event happened (doors move between
    /// zones); null on events recorded before they were kept.
    pub site_id: Option<i64>,
    pub zone_id: Option<i64>,
    /// The anti-passback zone a swipe's door counted for: presence is rebuilt from the
    /// granted swipes that have one (`passages`).
    pub antipassback_zone_id: Option<i64>,
    /// `in` or `out`: the swiped reader's direction.
    #[diesel(deserialize_as = StoredDirection)]
    #[schema(value_type = Option<String>)]
    pub direction: Option<Direction>,
    /// Why a swipe was answered as it was, for grants as for denials: `entitled`,
    /// `door_unlocked`, `free_access_schedule`, `soft_antipassback`, `no_entitlement`,
    /// `outside_schedule`, `antipassback`, … (`Reason::code`, the `kind` of the reason in
    /// `detail`).
    pub reason_code: Option<String>,
    /// The policy version (audit sequence number) the swipe was decided under
    /// (`Snapshot::version`).
    pub policy_version: Option<i64>,
    /// None when recorded: the risk engine scores a swipe once it is on record
    /// (`risk::live`).
    pub risk_score: Option<f64>,
    #[serde(serialize_with = "serialize_json_text_or_null")]
    #[schema(value_type = Option<Object>)]
    pub risk_reasons: Option<String>,
    /// Recorded by this appliance (`live`), or brought in from a previous access system's
    /// history (`imported`, `gatehouse import --events`).
    pub origin: Origin,
    /// An imported row's identity (what the line said and how many identical lines came
    /// before it), so that importing a file twice adds nothing; None for live events.
    #[serde(skip)]
    pub import_key: Option<i64>,
}

/// Where an event comes from. Stored and serialized as its `as_str()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Live,
    Imported,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Live => "live",
            Origin::Imported => "imported",
        }
    }
}

impl<DB: diesel::backend::Backend> Queryable<diesel::sql_types::Text, DB> for Origin
where
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    type Row = String;

    fn build(row: String) -> diesel::deserialize::Result<Self> {
        match row.as_str() {
            "live" => Ok(Origin::Live),
            "imported" => Ok(Origin::Imported),
            other => Err(format!("'{other}' is not an event origin").into()),
        }
    }
}

/// A recorded event: its id in the log and the event. What reads of the log return, what
/// live watchers receive, and what the API serves (the id beside the event's fields).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = events)]
pub struct Recorded {
    pub id: i64,
    #[diesel(embed)]
    #[serde(flatten)]
    pub event: Event,
}

/// A stored timestamp (UTC without zone) read as the instant it is.
#[doc(hidden)]
pub struct StoredInstant(chrono::NaiveDateTime);

impl<DB: diesel::backend::Backend> Queryable<diesel::sql_types::Timestamp, DB> for StoredInstant
where
    chrono::NaiveDateTime: diesel::deserialize::FromSql<diesel::sql_types::Timestamp, DB>,
{
    type Row = chrono::NaiveDateTime;

    fn build(row: chrono::NaiveDateTime) -> diesel::deserialize::Result<Self> {
        Ok(StoredInstant(row))
    }
}

impl From<StoredInstant> for DateTime<Utc> {
    fn from(t: StoredInstant) -> Self {
        crate::clock::utc(t.0)
    }
}

/// A nullable stored timestamp, read like [`StoredInstant`].
#[doc(hidden)]
pub struct StoredInstantOrNull(Option<chrono::NaiveDateTime>);

impl<DB: diesel::backend::Backend>
    Queryable<diesel::sql_types::Nullable<diesel::sql_types::Timestamp>, DB> for StoredInstantOrNull
where
    chrono::NaiveDateTime: diesel::deserialize::FromSql<diesel::sql_types::Timestamp, DB>,
{
    type Row = Option<chrono::NaiveDateTime>;

    fn build(row: Option<chrono::NaiveDateTime>) -> diesel::deserialize::Result<Self> {
        Ok(StoredInstantOrNull(row))
    }
}

impl From<StoredInstantOrNull> for Option<DateTime<Utc>> {
    fn from(t: StoredInstantOrNull) -> Self {
        t.0.map(crate::clock::utc)
    }
}

/// A stored reader direction (`in`/`out`, or NULL for events that have none).
#[doc(hidden)]
pub struct StoredDirection(Option<Direction>);

impl<DB: diesel::backend::Backend>
    Queryable<diesel::sql_types::Nullable<diesel::sql_types::Text>, DB> for StoredDirection
where
    String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
{
    type Row = Option<String>;

    fn build(row: Option<String>) -> diesel::deserialize::Result<Self> {
        match row {
            None => Ok(StoredDirection(None)),
            Some(text) => Ok(StoredDirection(Some(text.parse()?))),
        }
    }
}

impl From<StoredDirection> for Option<Direction> {
    fn from(d: StoredDirection) -> Self {
        d.0
    }
}

fn serialize_seq<S: serde::Serializer>(seq: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    seq.map(reader_seq).serialize(s)
}

/// Text that holds JSON (a decision's reasons) as that JSON; other text (a fault's
/// message) as a string.
fn json_text(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

fn serialize_json_text<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    json_text(text).serialize(s)
}

fn serialize_json_text_or_null<S: serde::Serializer>(
    text: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    text.as_deref().map(json_text).serialize(s)
}

impl Event {
    /// An event of `kind` at `at`, with every other field empty.
    pub fn new(kind: EventKind, at: DateTime<Utc>) -> Event {
        Event {
            at,
            kind,
            reader_id: None,
            seq: None,
            reader_ts: None,
            content_digest: None,
            door_id: None,
            person_id: None,
            credential_id: None,
            presented: None,
            result: None,
            deny_code: None,
            decision_id: None,
            command: None,
            detail: String::new(),
            site_id: None,
            zone_id: None,
            antipassback_zone_id: None,
            direction: None,
            reason_code: None,
            policy_version: None,
            risk_score: None,
            risk_reasons: None,
            origin: Origin::Live,
            import_key: None,
        }
    }
}

/// Where an append ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Durable, with its id.
    New(i64),
    /// A resend of an event already recorded: its id and the answer it got.
    Duplicate { id: i64, command: Option<String> },
    /// Not recorded: the reader's seq is that of event `id`, which said something else.
    SeqReused { id: i64 },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    #[error("the event log is not running")]
    Closed,
    #[error("the event could not be written: {0}")]
    Write(String),
}

/// How the writer batches: at most `max_batch` events, waiting at most `linger` for more
/// after the first one arrives. The default waits not at all: a batch is what queued up
/// while the previous one was being committed, so an event reaching an idle writer is
/// committed at once, and under load the batches grow by themselves (after a batch of
/// `under_load` events or more, the next also takes in the appends of the callers that
/// batch answered, see `EventLogWriter::gather`). On SQLite the writer has a connection of
/// its own with `cache_kib` of page cache, and `wal` says when its checkpoint thread copies
/// the log back (`store::checkpoint`).
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub max_batch: usize,
    pub linger: Duration,
    pub under_load: usize,
    pub cache_kib: i64,
    pub wal: WalPolicy,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_batch: 2048,
            linger: Duration::ZERO,
            under_load: 64,
            cache_kib: 32_768,
            wal: WalPolicy::default(),
        }
    }
}

struct Pending {
    event: Event,
    done: oneshot::Sender<Result<Appended, LogError>>,
}

/// A cloneable handle for appending; the `EventLogWriter` does the writing.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::Sender<Pending>,
    live: broadcast::Sender<Arc<Recorded>>,
    wal: Arc<WalShared>,
}

/// The writer's state; its owner drives it with `run`, which writes on a thread of its own.
pub struct EventLogWriter {
    rx: mpsc::Receiver<Pending>,
    db: DbPool,
    policy: BatchPolicy,
    live: broadcast::Sender<Arc<Recorded>>,
    marks: SeqMarks,
    /// The connection kept between batches (opened once, and again after a failed batch).
    conn: Option<WriterConnection>,
    wal: Arc<WalShared>,
    /// The SQLite file and its checkpoint thread, once started (never on PostgreSQL).
    checkpoints: Option<(std::path::PathBuf, Checkpointer)>,
}

/// The writer's connection: on a SQLite file one of its own, which never checkpoints (its
/// checkpoint thread does), else one taken from the pool.
enum WriterConnection {
    Own(Box<DbConnection>),
    Pooled(PooledDb),
}

impl WriterConnection {
    fn get(&mut self) -> &mut DbConnection {
        match self {
            WriterConnection::Own(conn) => conn,
            WriterConnection::Pooled(conn) => conn,
        }
    }
}

/// The highest `seq` recorded per reader. A reader numbers its events upwards, so an event
/// above its mark cannot be a resend and needs no lookup; only events at or below it (a
/// resend, a reused seq, or a reader that restarted its numbering) are looked up. (With
/// several instances on one database, a mark another instance overtook costs one failed
/// batch, the readers resend, and the marks are read afresh.)
#[derive(Debug, Default)]
pub struct SeqMarks {
    highest: HashMap<String, Option<u64>>,
}

impl SeqMarks {
    fn highest(&mut self, conn: &mut DbConnection, reader: &str) -> QueryResult<Option<u64>> {
        if let Some(h) = self.highest.get(reader) {
            return Ok(*h);
        }
        let h = highest_seq(conn, reader)?;
        self.highest.insert(reader.to_owned(), h);
        Ok(h)
    }

    fn record(&mut self, reader: &str, seq: u64) {
        let h = self.highest.entry(reader.to_owned()).or_insert(Some(seq));
        *h = Some(h.map_or(seq, |h| h.max(seq)));
    }
}

impl EventLog {
    pub fn new(db: DbPool, policy: BatchPolicy) -> (EventLog, EventLogWriter) {
        let (tx, rx) = mpsc::channel(policy.max_batch.max(1) * 8);
        // Watchers that fall this far behind miss events (and are told so).
        let (live, _) = broadcast::channel(4096);
        let wal = Arc::new(WalShared::default());
        (
            EventLog {
                tx,
                live: live.clone(),
                wal: wal.clone(),
            },
            EventLogWriter {
                rx,
                db,
                policy,
                live,
                marks: SeqMarks::default(),
                conn: None,
                wal,
                checkpoints: None,
            },
        )
    }

    /// What the writer's checkpoint thread has done (SQLite; `running` is false otherwise).
    pub fn wal_stats(&self) -> WalStats {
        self.wal.stats()
    }

    /// Every event recorded from now on, as it is committed.
    pub fn watch(&self) -> broadcast::Receiver<Arc<Recorded>> {
        self.live.subscribe()
    }

    /// Appends an event and resolves once it is durable (or known to be a resend).
    pub async fn append(&self, event: Event) -> Result<Appended, LogError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { event, done })
            .await
            .map_err(|_| LogError::Closed)?;
        wait.await.map_err(|_| LogError::Closed)?
    }
}

impl EventLogWriter {
    /// Writes batches until every `EventLog` handle is dropped, on a thread of its own.
    ///
    /// The thread runs a single-threaded runtime for the channel and the timers and commits
    /// on it directly: an append wakes the writer, and the writer's answer wakes the caller,
    /// with no hop through the caller's runtime or its blocking pool in between (two
    /// thread hand-offs per batch, on the path of every door's answer).
    pub async fn run(self) {
        let (finished, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("event-writer".to_owned())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(self.write_batches()),
                    // Dropping the writer closes its channel: every append is refused.
                    Err(e) => tracing::error!(error = %e, "the event writer cannot start"),
                }
                let _ = finished.send(());
            });
        match thread {
            Ok(_) => {
                let _ = done.await;
            }
            Err(e) => tracing::error!(error = %e, "the event writer thread cannot start"),
        }
    }

    async fn write_batches(mut self) {
        self.start_checkpoints();
        let mut last_batch = 0;
        while let Some(first) = self.rx.recv().await {
            let mut batch = vec![first];
            self.take_queued(&mut batch);
            if last_batch >= self.policy.under_load {
                self.gather(&mut batch, last_batch).await;
            }
            last_batch = batch.len();
            let deadline = tokio::time::Instant::now() + self.policy.linger;
            while batch.len() < self.policy.max_batch && !self.policy.linger.is_zero() {
                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    Ok(None) | Err(_) => break,
                }
            }
            let (events, waiters): (Vec<Event>, Vec<_>) =
                batch.into_iter().map(|p| (p.event, p.done)).unzip();
            // A panic below (a bug, never bad input) fails this batch, not the writer: with
            // the writer gone, no door would be answered again until a restart.
            let committed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(&events)))
                    .unwrap_or_else(|_| {
                        self.conn = None;
                        self.marks = SeqMarks::default();
                        Err(LogError::Write("the event writer panicked".to_owned()))
                    });
            match committed {
                Ok(outcomes) => {
                    // The callers first: a door is waiting for its answer.
                    for (done, outcome) in waiters.into_iter().zip(&outcomes) {
                        let _ = done.send(Ok(outcome.clone()));
                    }
                    for (event, outcome) in events.into_iter().zip(outcomes) {
                        if let Appended::New(id) = outcome {
                            // No watcher is fine: the event is on record either way.
                            let _ = self.live.send(Arc::new(Recorded { id, event }));
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "event batch not written");
                    for done in waiters {
                        let _ = done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Writes one batch in one transaction on the writer's connection.
    fn commit(&mut self, events: &[Event]) -> Result<Vec<Appended>, LogError> {
        // The writer keeps its connection between batches: a checkout from the pool
        // costs a validity query, on the path of every door's answer.
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => {
                let file = self.checkpoints.as_ref().map(|(file, _)| file.as_path());
                open_writer(&self.db, file, self.policy.cache_kib)?
            }
        };
        let marks = &mut self.marks;
        let outcomes = if matches!(conn, WriterConnection::Own(_)) {
            // Never while its checkpoint thread restarts the log.
            self.wal.write(|| write_batch(conn.get(), events, marks))
        } else {
            write_batch(conn.get(), events, marks)
        };
        match outcomes {
            Ok(outcomes) => {
                self.conn = Some(conn);
                Ok(outcomes)
            }
            Err(e) => {
                // The batch rolled back: the marks it moved are no longer true, and the
                // next batch starts on a fresh connection.
                self.marks = SeqMarks::default();
                Err(LogError::Write(e.to_string()))
            }
        }
    }

    fn take_queued(&mut self, batch: &mut Vec<Pending>) {
        while batch.len() < self.policy.max_batch {
            match self.rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
    }

    /// Under load, gives the callers the last batch answered (`answered` of them) a moment
    /// to append again before this batch is closed: without it they form a batch of their
    /// own behind this one, and under steady load the batches settle into two halves (500
    /// and 500 with 1,000 appends in flight). One batch of N events commits faster than
    /// two of N/2: a commit writes each page it changed whole, and the indexes with
    /// scattered keys (person, door) change about a page per event in a small batch, fewer
    /// per event in a large one. Stops once a step brings nothing new and the batch is as
    /// large as the last, or after `GATHER_AT_MOST`; never when the writer is not under
    /// load, so an event reaching an idle writer is still committed at once.
    async fn gather(&mut self, batch: &mut Vec<Pending>, answered: usize) {
        // Tokio's timer rounds the step up to its tick (1 ms).
        const GATHER_STEP: Duration = Duration::from_micros(250);
        const GATHER_AT_MOST: Duration = Duration::from_millis(5);
        let started = std::time::Instant::now();
        while batch.len() < self.policy.max_batch && started.elapsed() < GATHER_AT_MOST {
            let before = batch.len();
            tokio::time::sleep(GATHER_STEP).await;
            self.take_queued(batch);
            if batch.len() == before && batch.len() >= answered {
                break;
            }
        }
    }

    /// On a SQLite file, starts the checkpoint thread; the writer then opens a connection
    /// of its own that leaves checkpoints to it. Without one (PostgreSQL, or a thread that
    /// could not start) the writer uses a pooled connection, which checkpoints itself.
    fn start_checkpoints(&mut self) {
        let started = crate::store::sqlite_file(&self.db).and_then(|file| match file {
            Some(file) => Checkpointer::start(&file, self.policy.wal, self.wal.clone())
                .map(|checkpointer| Some((file, checkpointer))),
            None => Ok(None),
        });
        match started {
            Ok(checkpoints) => self.checkpoints = checkpoints,
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint thread not started"),
        }
    }
}

/// The writer's connection: its own on a SQLite file with a checkpoint thread, else the
/// pool's.
fn open_writer(
    db: &DbPool,
    file: Option<&std::path::Path>,
    cache_kib: i64,
) -> Result<WriterConnection, LogError> {
    match file {
        Some(file) => crate::store::sqlite_writer(file, cache_kib)
            .map(|conn| WriterConnection::Own(Box::new(conn))),
        None => db
            .get()
            .map(WriterConnection::Pooled)
            .map_err(crate::store::OpenError::from),
    }
    .map_err(|e| LogError::Write(e.to_string()))
}

/// An [`Event`]'s columns as diesel inserts them, borrowed from the event. `None` is
/// written as NULL (rather than the column's default), which lets SQLite take many rows in
/// one INSERT. Not a second event type: a view of one, for the statements that write it
/// (the writer's, and the benchmarks' raw floor).
#[derive(Insertable)]
#[diesel(table_name = events, treat_none_as_null = true)]
pub struct EventColumns<'a> {
    at: chrono::NaiveDateTime,
    reader_id: Option<&'a str>,
    seq: Option<i64>,
    reader_ts: Option<chrono::NaiveDateTime>,
    content_digest: Option<i64>,
    kind: &'a str,
    door_id: Option<i64>,
    person_id: Option<i64>,
    credential_id: Option<i64>,
    presented: Option<&'a str>,
    result: Option<&'a str>,
    deny_code: Option<&'a str>,
    decision_id: Option<&'a str>,
    command: Option<&'a str>,
    detail: &'a str,
    site_id: Option<i64>,
    zone_id: Option<i64>,
    antipassback_zone_id: Option<i64>,
    direction: Option<&'static str>,
    reason_code: Option<&'a str>,
    policy_version: Option<i64>,
    risk_score: Option<f64>,
    risk_reasons: Option<&'a str>,
    origin: &'static str,
    import_key: Option<i64>,
}

impl<'a> EventColumns<'a> {
    pub fn of(e: &'a Event) -> EventColumns<'a> {
        EventColumns {
            at: stored(e.at),
            reader_id: e.reader_id.as_deref(),
            seq: e.seq,
            reader_ts: e.reader_ts.map(stored),
            content_digest: e.content_digest,
            kind: e.kind.as_str(),
            door_id: e.door_id,
            person_id: e.person_id,
            credential_id: e.credential_id,
            presented: e.presented.as_deref(),
            result: e.result.as_deref(),
            deny_code: e.deny_code.as_deref(),
            decision_id: e.decision_id.as_deref(),
            command: e.command.as_deref(),
            detail: &e.detail,
            site_id: e.site_id,
            zone_id: e.zone_id,
            antipassback_zone_id: e.antipassback_zone_id,
            direction: e.direction.map(Direction::as_str),
            reason_code: e.reason_code.as_deref(),
            policy_version: e.policy_version,
            risk_score: e.risk_score,
            risk_reasons: e.risk_reasons.as_deref(),
            origin: e.origin.as_str(),
            import_key: e.import_key,
        }
    }
}

/// The highest event number recorded for a reader, if any (kept in `event_reader_marks`
/// by `write_batch`: the resend key is ordered by time, so it cannot answer this).
pub fn highest_seq(conn: &mut DbConnection, reader: &str) -> QueryResult<Option<u64>> {
    let stored: Option<i64> = event_reader_marks::table
        .find(reader)
        .select(event_reader_marks::highest_seq)
        .first(conn)
        .optional()?;
    Ok(stored.map(reader_seq))
}

/// Raises each reader's highest event number to the batch's, where it is higher.
fn raise_marks(
    conn: &mut DbConnection,
    highest: &std::collections::BTreeMap<&str, u64>,
) -> QueryResult<()> {
    use diesel::dsl::case_when;
    use diesel::upsert::excluded;
    use event_reader_marks::{highest_seq, reader_id};
    let rows: Vec<_> = highest
        .iter()
        .map(|(reader, seq)| (reader_id.eq(*reader), highest_seq.eq(stored_seq(*seq))))
        .collect();
    // Never lowered: another instance on the same database may have gone higher. Compared
    // as unsigned (`stored_seq`): a negative stored seq is above every positive one.
    let new = excluded(highest_seq);
    let higher = case_when(new.lt(0i64).and(highest_seq.ge(0i64)), new)
        .when(
            new.lt(0i64)
                .eq(highest_seq.lt(0i64))
                .and(new.gt(highest_seq)),
            new,
        )
        .otherwise(highest_seq);
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        match conn {
            DbConnection::Sqlite(conn) => {
                diesel::insert_into(event_reader_marks::table)
                    .values(chunk)
                    .on_conflict(reader_id)
                    .do_update()
                    .set(highest_seq.eq(higher))
                    .execute(conn)?;
            }
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(conn) => {
                diesel::insert_into(event_reader_marks::table)
                    .values(chunk)
                    .on_conflict(reader_id)
                    .do_update()
                    .set(highest_seq.eq(higher))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

/// Writes a batch in one transaction; resends of recorded events are reported, not written.
pub fn write_batch(
    conn: &mut DbConnection,
    batch: &[Event],
    marks: &mut SeqMarks,
) -> QueryResult<Vec<Appended>> {
    write_transaction(conn, |conn| {
        // First, which events are resends or reuse a seq: of one on record, or of one
        // earlier in this batch.
        let mut outcomes: Vec<Option<Appended>> = vec![None; batch.len()];
        let mut same_as: Vec<(usize, usize)> = Vec::new();
        let mut reused_from: Vec<(usize, usize)> = Vec::new();
        let mut first_in_batch: HashMap<(&str, i64), usize> = HashMap::new();
        let mut fresh = Vec::with_capacity(batch.len());
        for (i, e) in batch.iter().enumerate() {
            if let (Some(reader), Some(seq)) = (&e.reader_id, e.seq) {
                if let Some(&first) = first_in_batch.get(&(reader.as_str(), seq)) {
                    if same_content(&batch[first], e) {
                        same_as.push((i, first));
                    } else {
                        reused_from.push((i, first));
                    }
                    continue;
                }
                if let Some(highest) = marks.highest(conn, reader)?
                    && reader_seq(seq) <= highest
                    && let Some(found) = find_recorded(conn, e, reader, seq, highest)?
                {
                    outcomes[i] = Some(found);
                    continue;
                }
                first_in_batch.insert((reader.as_str(), seq), i);
            }
            fresh.push(i);
        }
        // Then the new ones, many rows to a statement.
        let rows: Vec<EventColumns<'_>> =
            fresh.iter().map(|&i| EventColumns::of(&batch[i])).collect();
        let ids = insert_rows(conn, &rows)?;
        // The cards' last use, in the same transaction (`last_use`).
        super::last_use::note_last_use(
            conn,
            fresh.iter().filter_map(|&i| {
                let e = &batch[i];
                (e.kind == EventKind::Swipe).then_some((e.credential_id?, e.at))
            }),
        )?;
        // In reader order: instances sharing a PostgreSQL database then lock the readers'
        // rows in the same order, and cannot deadlock on them.
        let mut highest: std::collections::BTreeMap<&str, u64> = Default::default();
        for (&i, id) in fresh.iter().zip(ids) {
            outcomes[i] = Some(Appended::New(id));
            if let (Some(reader), Some(seq)) = (&batch[i].reader_id, batch[i].seq) {
                let h = highest.entry(reader.as_str()).or_insert(reader_seq(seq));
                *h = (*h).max(reader_seq(seq));
            }
        }
        // Only the readers that went past their mark (as far as this writer knows it).
        highest.retain(|reader, seq| {
            marks
                .highest
                .get(*reader)
                .is_none_or(|h| h.is_none_or(|h| *seq > h))
        });
        raise_marks(conn, &highest)?;
        for (reader, seq) in highest {
            marks.record(reader, seq);
        }
        for (i, first) in same_as {
            if let Some(Appended::New(id)) = outcomes[first] {
                outcomes[i] = Some(Appended::Duplicate {
                    id,
                    command: batch[first].command.clone(),
                });
            }
        }
        for (i, first) in reused_from {
            if let Some(Appended::New(id)) = outcomes[first] {
                outcomes[i] = Some(Appended::SeqReused { id });
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or(diesel::result::Error::NotFound))
            .collect()
    })
}

/// Whether two events under one reader's seq say the same: their content digests, or
/// where one has none (a row from before digests) their reader times.
fn same_content(a: &Event, b: &Event) -> bool {
    match (a.content_digest, b.content_digest) {
        (Some(x), Some(y)) => x == y,
        _ => a.reader_ts == b.reader_ts,
    }
}

/// What the log already holds under this event's reader and seq (as stored), which is at or
/// below the reader's highest (`highest`): the same event (a resend), another event within
/// the seq's window (a reused seq), or nothing that counts.
fn find_recorded(
    conn: &mut DbConnection,
    e: &Event,
    reader: &str,
    seq: i64,
    highest: u64,
) -> QueryResult<Option<Appended>> {
    // A resend repeats the reader's time too: one lookup on the resend key finds it.
    if let Some(ts) = e.reader_ts.map(stored) {
        let hit: Option<(i64, Option<String>, Option<i64>)> = events::table
            .filter(events::reader_ts.eq(ts))
            .filter(events::reader_id.eq(reader))
            .filter(events::seq.eq(seq))
            .select((events::id, events::command, events::content_digest))
            .first(conn)
            .optional()?;
        if let Some((id, command, digest)) = hit {
            // The same time, and the same digest where both have one (rows from before
            // digests are judged by their time). Another digest under this key is refused
            // even past the window: the key is unique, so it could not be recorded.
            let same = match (digest, e.content_digest) {
                (Some(old), Some(new)) => old == new,
                _ => true,
            };
            return Ok(Some(if same {
                Appended::Duplicate { id, command }
            } else {
                Appended::SeqReused { id }
            }));
        }
    }
    // Another time under the same seq: another event, if the seq is still remembered.
    // Looked up among the door's events of the last day (the index on door and time), so
    // that it costs a day of one door, not of the whole log.
    if highest - reader_seq(seq) >= SEQ_WINDOW_EVENTS {
        return Ok(None);
    }
    let since = stored(e.at - SEQ_WINDOW);
    let mut query = events::table
        .filter(events::reader_id.eq(reader))
        .filter(events::seq.eq(seq))
        .filter(events::at.ge(since))
        .select(events::id)
        .into_boxed();
    if let Some(door) = e.door_id {
        query = query.filter(events::door_id.eq(door));
    }
    let other: Option<i64> = query.first(conn).optional()?;
    Ok(other.map(|id| Appended::SeqReused { id }))
}

/// Rows in one statement: 23 values each, far below SQLite's limit of 32,766 per statement.
const ROWS_PER_INSERT: usize = 256;

/// Inserts rows in multi-row statements and returns their ids in order. On SQLite, which
/// holds the write lock for the whole transaction, one statement's rows take consecutive
/// ids ending at `last_insert_rowid()`; PostgreSQL returns them.
fn insert_rows(conn: &mut DbConnection, rows: &[EventColumns<'_>]) -> QueryResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        match conn {
            DbConnection::Sqlite(conn) => {
                let inserted = diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(conn)?;
                let last: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                    "last_insert_rowid()",
                ))
                .get_result(conn)?;
                let first = last - i64::try_from(inserted).unwrap_or(i64::MAX) + 1;
                ids.extend(first..=last);
            }
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(conn) => {
                let returned: Vec<i64> = diesel::insert_into(events::table)
                    .values(chunk)
                    .returning(events::id)
                    .get_results(conn)?;
                ids.extend(returned);
            }
        }
    }
    Ok(ids)
}

/// When each zone's presence was last reset: its newest `presence_reset` event.
pub fn presence_resets(conn: &mut DbConnection) -> QueryResult<HashMap<i64, DateTime<Utc>>> {
    let rows: Vec<(Option<i64>, Option<chrono::NaiveDateTime>)> = events::table
        .filter(events::kind.eq(EventKind::PresenceReset.as_str()))
        .group_by(events::zone_id)
        .select((events::zone_id, diesel::dsl::max(events::at)))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(zone, at)| Some((zone?, at?.and_utc())))
        .collect())
}

/// Passages read from the log at a time: short reads, whatever the log's size.
const PASSAGES_PER_READ: i64 = 10_000;

/// Hands `pass` every passage presence is rebuilt from, zone by zone and oldest first: the
/// granted swipes of people at doors under anti-passback, by the anti-passback zone stored
/// with each (the zone the door counted for then), since the zone's last reset (`resets`).
pub fn passages(
    conn: &mut DbConnection,
    resets: &HashMap<i64, DateTime<Utc>>,
    mut pass: impl FnMut(Passage),
) -> QueryResult<()> {
    use crate::store::schema::zones;
    // Every zone, not only those under anti-passback today: one whose anti-passback is
    // turned back on finds its people where they were.
    let zone_ids: Vec<i64> = zones::table.select(zones::id).load(conn)?;
    for zone_id in zone_ids {
        let since = resets.get(&zone_id).map(|at| stored(*at));
        let mut after: Option<(chrono::NaiveDateTime, i64)> = None;
        loop {
            let mut query = events::table
                .filter(events::antipassback_zone_id.eq(zone_id))
                .select((
                    events::id,
                    events::at,
                    events::person_id,
                    events::door_id,
                    events::direction,
                    events::result,
                ))
                .order((events::at.asc(), events::id.asc()))
                .limit(PASSAGES_PER_READ)
                .into_boxed();
            if let Some(since) = since {
                query = query.filter(events::at.ge(since));
            }
            if let Some((at, id)) = after {
                query = query.filter(
                    events::at
                        .gt(at)
                        .or(events::at.eq(at).and(events::id.gt(id))),
                );
            }
            type Row = (
                i64,
                chrono::NaiveDateTime,
                Option<i64>,
                Option<i64>,
                Option<String>,
                Option<String>,
            );
            let rows: Vec<Row> = query.load(conn)?;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) == PASSAGES_PER_READ;
            after = rows.last().map(|row| (row.1, row.0));
            for (_, at, person_id, door_id, direction, result) in rows {
                let (Some(person_id), Some(door_id), Some(direction), Some("granted")) = (
                    person_id,
                    door_id,
                    direction.and_then(|d| d.parse::<Direction>().ok()),
                    result.as_deref(),
                ) else {
                    continue;
                };
                pass(Passage {
                    person_id,
                    zone_id,
                    entry: PresenceEntry {
                        direction,
                        at: at.and_utc(),
                        door_id,
                    },
                });
            }
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// Which events to list; every field narrows the list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub person_id: Option<i64>,
    pub door_id: Option<i64>,
    pub kind: Option<String>,
    pub result: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only events older than this id (keyset paging: pass the last id of the page before).
    pub before_id: Option<i64>,
}

/// The newest events matching the filter, newest first.
pub fn recent(
    conn: &mut DbConnection,
    filter: &EventFilter,
    limit: i64,
) -> QueryResult<Vec<Recorded>> {
    let mut q = events::table.select(Recorded::as_select()).into_boxed();
    if let Some(p) = filter.person_id {
        q = q.filter(events::person_id.eq(p));
    }
    if let Some(d) = filter.door_id {
        q = q.filter(events::door_id.eq(d));
    }
    if let Some(k) = &filter.kind {
        q = q.filter(events::kind.eq(k.clone()));
    }
    if let Some(r) = &filter.result {
        q = q.filter(events::result.eq(r.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(events::at.ge(stored(from)));
    }
    if let Some(until) = filter.until {
        q = q.filter(events::at.lt(stored(until)));
    }
    if let Some(before) = filter.before_id {
        // Keyset paging in the list's own order (at, id): rows after the last one shown.
        // Bounding `at` lets the index on it start there instead of at the newest row, so
        // a page deep in the log costs what the first does.
        let at: Option<chrono::NaiveDateTime> = events::table
            .find(before)
            .select(events::at)
            .first(conn)
            .optional()?;
        q = match at {
            Some(at) => q.filter(
                events::at
                    .le(at)
                    .and(events::at.lt(at).or(events::id.lt(before))),
            ),
            None => q.filter(events::id.lt(before)),
        };
    }
    q.order((events::at.desc(), events::id.desc()))
        .limit(limit)
        .load(conn)
}

/// How many events of each kind and result were recorded from `from` on.
pub fn counts_since(
    conn: &mut DbConnection,
    from: DateTime<Utc>,
) -> QueryResult<Vec<(String, Option<String>, i64)>> {
    // Counted here rather than by GROUP BY: grouping tempts SQLite to walk the whole
    // table along the (kind, at) index instead of the range of `at` asked for.
    let rows: Vec<(String, Option<String>)> = events::table
        .filter(events::at.ge(stored(from)))
        .select((events::kind, events::result))
        .load(conn)?;
    let mut counts: std::collections::BTreeMap<(String, Option<String>), i64> =
        std::collections::BTreeMap::new();
    for key in rows {
        *counts.entry(key).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|((kind, result), n)| (kind, result, n))
        .collect())
}

/// Counts of events by (kind, result) since a moment (the dashboard's "today"), kept
/// between reads: each read asks only for the events written since the last, so the
/// dashboard costs the same at 23:59 as at 00:01 however busy the day was.
#[derive(Debug, Default)]
pub struct DayTally {
    inner: std::sync::Mutex<Option<Tally>>,
}

type Counts = std::collections::BTreeMap<(String, Option<String>), i64>;

#[derive(Debug)]
struct Tally {
    from: DateTime<Utc>,
    /// When this tally was started; it is recounted from scratch now and then.
    started: DateTime<Utc>,
    /// Every event with an id up to this one is in `settled`, or was before `from`.
    settled_id: i64,
    settled: Counts,
}

impl DayTally {
    /// How long an event's row must have been in the log before its id is taken as a
    /// floor: ids are handed out before commit, so on PostgreSQL a row with a lower id can
    /// become visible after a higher one. Rows newer than this are counted on every read.
    const SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
    /// A tally older than this is recounted, so that a row that did commit later than
    /// `SETTLE` after its time is counted within this long.
    const RECOUNT: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

    /// The counts by (kind, result) of the events at or after `from`, as
    /// [`counts_since`] gives them.
    pub fn counts_since(
        &self,
        conn: &mut DbConnection,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> QueryResult<Vec<(String, Option<String>, i64)>> {
        let mut guard = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let tally = match guard.take() {
            Some(t) if t.from == from && now - t.started < Self::RECOUNT => t,
            _ => Tally {
                from,
                started: now,
                settled_id: 0,
                settled: Counts::new(),
            },
        };
        let mut rows: Vec<(i64, chrono::NaiveDateTime, String, Option<String>)> = {
            let query = events::table
                .select((events::id, events::at, events::kind, events::result))
                .into_boxed();
            // The first read takes the range of `at` (an index range); later ones only
            // the ids past the floor (a rowid range). Neither is ordered in SQL: with
            // `ORDER BY id` SQLite walked all 10 million rows in id order to honour it
            // (3 s) instead of sorting the day's few thousand.
            if tally.settled_id == 0 {
                query.filter(events::at.ge(stored(from))).load(conn)?
            } else {
                query.filter(events::id.gt(tally.settled_id)).load(conn)?
            }
        };
        rows.sort_unstable_by_key(|row| row.0);
        let (mut tally, mut pending) = (tally, Counts::new());
        let settle_before = stored(now - Self::SETTLE);
        let mut settling = true;
        for (id, at, kind, result) in rows {
            settling = settling && at < settle_before;
            let counts = if settling {
                tally.settled_id = id;
                &mut tally.settled
            } else {
                &mut pending
            };
            if at >= stored(from) {
                *counts.entry((kind, result)).or_default() += 1;
            }
        }
        let mut all = tally.settled.clone();
        for (key, n) in pending {
            *all.entry(key).or_default() += n;
        }
        *guard = Some(tally);
        Ok(all
            .into_iter()
            .map(|((kind, result), n)| (kind, result, n))
            .collect())
    }
}

/// Deletes events older than `cutoff` (the retention setting); returns how many.
pub fn delete_before(conn: &mut DbConnection, cutoff: DateTime<Utc>) -> QueryResult<usize> {
    // In chunks, each its own transaction: a year's backlog deleted at once would hold the
    // write lock long enough to stall the event writer (and so the doors' answers).
    const CHUNK: i64 = 5_000;
    let mut deleted = 0;
    loop {
        let n = write_transaction(conn, |conn| {
            let oldest: Vec<i64> = events::table
                .filter(events::at.lt(stored(cutoff)))
                .select(events::id)
                .order(events::id)
                .limit(CHUNK)
                .load(conn)?;
            diesel::delete(events::table.filter(events::id.eq_any(&oldest))).execute(conn)
        })?;
        deleted += n;
        if n == 0 {
            return Ok(deleted);
        }
    }
}
