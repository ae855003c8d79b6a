//! The history layer: typed reads of what happened (events, passages through zones, swipe
//! counts) and of who changed what (the audit log), always as an admin role (`ReadScope`).
//!
//! Reads go in bounded chunks, each its own short transaction, resumed from a keyset
//! cursor: (`at`, `id`) for events and passages, `seq` for audit entries. So a long read
//! (the risk engine going through a quarter, the assistant through a person's year) never
//! holds one SQLite read transaction open, which would keep the WAL from being checkpointed
//! back (`store::checkpoint`), nor one PostgreSQL snapshot, which would hold back vacuum.
//! [`Chunks`] iterates over them for readers outside HTTP handlers. A chunk read inside a
//! transaction of the caller's is refused, since that transaction would pin the snapshot.
//!
//! What each role may read, decided from what it sees today (`ReadScope`): every role reads
//! the events with the people in them, presence and swipe counts (the console's events,
//! people and activity pages are open to every role); audit entries about admin identity
//! (admin users, API tokens, sign-ins) are read by admins and auditors only, as only admins
//! see the admin users and tokens themselves and an auditor's task is the whole log.
//!
//! Cursors are exact for the past. An event's `at` is its decision's time and becomes
//! visible only when its batch commits (on PostgreSQL its `id` too is taken before), so a
//! read that reaches the last seconds may pass a row that shows up later behind the cursor;
//! a reader that follows the log live reads up to a minute ago (as `event_log::DayTally`
//! settles).

mod counts;
mod usage;

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::connection::{Connection, TransactionManager};
use diesel::prelude::*;

pub use counts::{Bucket, MAX_BUCKETS, SwipesOf, TrafficPoint, WeekGrid};
pub use usage::{
    CredentialUse, DoorUse, HeldCredential, HeldDoor, HeldEntitlement, HeldLevelItem, HeldPerson,
    Holdings, UsageChunk, holdings, usage,
};

use crate::clock::stored;
use crate::identity::admins::Role;
use crate::policy::model::Direction;
use crate::store::event_log::EventKind;
use crate::store::event_log::Recorded;
use crate::store::rows::AuditRow;
use crate::store::schema::{access_level_items, audit_log, doors, events, readers, zones};
use crate::store::{DbConnection, read_consistently};

/// The most rows one chunk holds; a larger size asked for is cut to it.
pub const MAX_CHUNK: usize = 5_000;

/// What a chunked read uses when its caller has no reason to choose.
pub const DEFAULT_CHUNK: usize = 1_000;

/// Audit entries about admin identity: admin users, their API tokens, sign-ins and
/// sign-outs. Only the roles that may read them see them (`ReadScope::reads_admin_identity`).
pub const ADMIN_IDENTITY_ENTITIES: [&str; 3] = ["admin_user", "api_token", "session"];

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error("the {} role may not read {what}", .role.as_str())]
    NotPermitted { role: Role, what: String },
    #[error(
        "a history read was started inside a transaction: it reads in short transactions of its own, and an outer one would hold its snapshot open for the whole read"
    )]
    InsideTransaction,
    #[error("a stored value cannot be read: {0}")]
    Unreadable(String),
}

/// Who reads, and so what they may read. Every history query takes one: a read is always
/// made as an admin role (the viewer's, the API token's, or the role a background reader
/// such as the risk engine was given), never as "everything".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadScope {
    role: Role,
}

impl ReadScope {
    /// Reads as `role` may.
    pub const fn of(role: Role) -> ReadScope {
        ReadScope { role }
    }

    pub const fn role(self) -> Role {
        self.role
    }

    /// Events with the people in them, passages and swipe counts. Every role reads them
    /// today (events, people and activity pages, the events API); the match makes a new
    /// role decide.
    pub fn reads_events(self) -> bool {
        match self.role {
            Role::Admin | Role::Operator | Role::Auditor => true,
        }
    }

    /// Audit entries about admin users, API tokens and sign-ins. Operators may not manage
    /// or list admins and tokens, so they do not read them through history either.
    pub fn reads_admin_identity(self) -> bool {
        match self.role {
            Role::Admin | Role::Auditor => true,
            Role::Operator => false,
        }
    }

    fn require_events(self) -> Result<(), HistoryError> {
        if self.reads_events() {
            Ok(())
        } else {
            Err(self.refuse("events"))
        }
    }

    fn refuse(self, what: impl Into<String>) -> HistoryError {
        HistoryError::NotPermitted {
            role: self.role,
            what: what.into(),
        }
    }
}

/// A stretch of time: from `from` (inclusive) until `until` (exclusive); an open end
/// reaches to the first or the last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Period {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Period {
    /// All of history.
    pub const ALL: Period = Period {
        from: None,
        until: None,
    };

    pub fn between(from: DateTime<Utc>, until: DateTime<Utc>) -> Period {
        Period {
            from: Some(from),
            until: Some(until),
        }
    }
}

/// Where a chunk of events or passages ended: the next chunk starts after it. Ordering is
/// by time, then id, so events recorded in the same instant are neither lost nor repeated
/// at a chunk boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCursor {
    at: NaiveDateTime,
    id: i64,
}

impl EventCursor {
    /// A cursor kept from an earlier read (its `at` and `id`), to go on after it.
    pub fn resume(at: DateTime<Utc>, id: i64) -> EventCursor {
        EventCursor { at: stored(at), id }
    }

    /// The cursor just after this event.
    pub fn after(event: &Recorded) -> EventCursor {
        EventCursor {
            at: stored(event.event.at),
            id: event.id,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        self.at.and_utc()
    }

    pub fn id(&self) -> i64 {
        self.id
    }
}

/// One chunk of a read, oldest first, and where the next one starts (None: the read is
/// done).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<T, C> {
    pub rows: Vec<T>,
    pub next: Option<C>,
}

impl<T, C> Chunk<T, C> {
    fn of(rows: Vec<T>, size: usize, cursor: impl Fn(&T) -> C) -> Chunk<T, C> {
        let next = if rows.len() >= size {
            rows.last().map(cursor)
        } else {
            None
        };
        Chunk { rows, next }
    }
}

fn chunk_size(size: usize) -> usize {
    size.clamp(1, MAX_CHUNK)
}

fn sql_limit(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Runs one chunk's reads in one short transaction of their own (repeatable-read on
/// PostgreSQL, so that a level's doors and their events fit together).
fn short_read<T>(
    conn: &mut DbConnection,
    read: impl FnOnce(&mut DbConnection) -> Result<T, HistoryError>,
) -> Result<T, HistoryError> {
    let status = <<DbConnection as Connection>::TransactionManager as TransactionManager<
        DbConnection,
    >>::transaction_manager_status_mut(conn);
    if status.transaction_depth()?.is_some() {
        return Err(HistoryError::InsideTransaction);
    }
    read_consistently(conn, read)
}

// ---------------------------------------------------------------------------------------
// Events

/// Whose events a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsOf {
    /// Every event.
    All,
    /// One person's: their swipes (and alarms tied to them, such as a PIN lockout).
    Person(i64),
    /// Everything at one door.
    Door(i64),
    /// Everything at the doors an access level covers now: its doors, and the doors of its
    /// zones and of every zone inside them.
    Level(i64),
}

/// Which events to read: whose, when, and optionally of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    pub of: EventsOf,
    pub period: Period,
    pub kind: Option<EventKind>,
}

/// Up to `size` events of the query after `after` (from the start when None), oldest first.
pub fn events(
    conn: &mut DbConnection,
    scope: ReadScope,
    query: &EventQuery,
    after: Option<EventCursor>,
    size: usize,
) -> Result<Chunk<Recorded, EventCursor>, HistoryError> {
    scope.require_events()?;
    let size = chunk_size(size);
    let rows = short_read(conn, |conn| {
        let doors = match &query.of {
            EventsOf::All => return Ok(event_range(conn, On::All, query, after, size)?),
            EventsOf::Person(person) => {
                return Ok(event_range(conn, On::Person(*person), query, after, size)?);
            }
            EventsOf::Door(door) => {
                return Ok(event_range(conn, On::Door(*door), query, after, size)?);
            }
            EventsOf::Level(level) => level_doors(conn, *level)?,
        };
        // One index range per door, merged: each door's range is read in order from the
        // cursor, so a chunk costs at most `size` rows per door whatever the period holds.
        let mut rows = Vec::new();
        for door in doors {
            rows.extend(event_range(conn, On::Door(door), query, after, size)?);
        }
        rows.sort_unstable_by_key(|r: &Recorded| (r.event.at, r.id));
        rows.truncate(size);
        Ok(rows)
    })?;
    Ok(Chunk::of(rows, size, EventCursor::after))
}

/// Which index range an event read walks.
#[derive(Debug, Clone, Copy)]
enum On {
    All,
    Person(i64),
    Door(i64),
}

fn event_range(
    conn: &mut DbConnection,
    on: On,
    query: &EventQuery,
    after: Option<EventCursor>,
    size: usize,
) -> QueryResult<Vec<Recorded>> {
    let on_rows = tested_on_rows(conn);
    let mut q = events::table.select(Recorded::as_select()).into_boxed();
    match on {
        On::All => {}
        On::Person(person) => q = q.filter(events::person_id.eq(person)),
        On::Door(door) => q = q.filter(events::door_id.eq(door)),
    }
    if let Some(kind) = query.kind {
        let kind = kind.as_str();
        // Everyone's events of a kind walk the (kind, at) index; a person's or a door's
        // walk their own (…, at) index, which narrows far more, and test the kind on the
        // rows.
        q = match on {
            On::Person(_) | On::Door(_) if on_rows => q.filter(events::kind.concat("").eq(kind)),
            _ => q.filter(events::kind.eq(kind)),
        };
    }
    if let Some(from) = query.period.from {
        q = q.filter(events::at.ge(stored(from)));
    }
    if let Some(until) = query.period.until {
        q = q.filter(events::at.lt(stored(until)));
    }
    if let Some(c) = after {
        // (at, id) > (c.at, c.id), with `at >= c.at` for the index range to start at.
        q = q.filter(
            events::at
                .ge(c.at)
                .and(events::at.gt(c.at).or(events::id.gt(c.id))),
        );
    }
    q.order((events::at.asc(), events::id.asc()))
        .limit(sql_limit(size))
        .load(conn)
}

/// Whether a column that must not pick the index is written as an expression (`kind || ''`)
/// on this backend. SQLite, without statistics, takes the (kind, at) or (result, at) index
/// over a person's or a door's for `kind = 'swipe'`, and so walks every swipe of the
/// period; an expression is no indexed column. PostgreSQL plans by its statistics and
/// walks the person's or door's range in order by itself, while the expression would
/// hide the column's statistics from it (it then sorted a door's whole range per chunk).
fn tested_on_rows(conn: &DbConnection) -> bool {
    matches!(conn, DbConnection::Sqlite(_))
}

/// The doors an access level covers now, in id order: its doors, and the doors of its
/// zones and every zone inside them (as `Snapshot::compile` flattens them).
pub fn level_doors(conn: &mut DbConnection, level: i64) -> QueryResult<Vec<i64>> {
    let items: Vec<(Option<i64>, Option<i64>)> = access_level_items::table
        .filter(access_level_items::level_id.eq(level))
        .select((access_level_items::door_id, access_level_items::zone_id))
        .load(conn)?;
    let mut found: Vec<i64> = items.iter().filter_map(|(door, _)| *door).collect();
    let mut pending: Vec<i64> = items.iter().filter_map(|(_, zone)| *zone).collect();
    if !pending.is_empty() {
        let all_zones: Vec<(i64, Option<i64>)> = zones::table
            .select((zones::id, zones::parent_id))
            .load(conn)?;
        let all_doors: Vec<(i64, i64)> = doors::table
            .select((doors::id, doors::zone_id))
            .load(conn)?;
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for (zone, parent) in all_zones {
            if let Some(parent) = parent {
                children.entry(parent).or_default().push(zone);
            }
        }
        let mut doors_of: HashMap<i64, Vec<i64>> = HashMap::new();
        for (door, zone) in all_doors {
            doors_of.entry(zone).or_default().push(door);
        }
        let mut seen = std::collections::HashSet::new();
        while let Some(zone) = pending.pop() {
            // A zone met twice (nested items, or a loop edited in by hand) is walked once.
            if !seen.insert(zone) {
                continue;
            }
            found.extend(doors_of.get(&zone).into_iter().flatten());
            pending.extend(children.get(&zone).into_iter().flatten());
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Reads events in chunks of `size`, each chunk its own short read, until the query is
/// exhausted.
pub fn event_chunks(
    conn: &mut DbConnection,
    scope: ReadScope,
    query: EventQuery,
    size: usize,
) -> Chunks<'_, Recorded, EventCursor> {
    Chunks::new(conn, move |conn, after| {
        events(conn, scope, &query, after, size)
    })
}

// ---------------------------------------------------------------------------------------
// Presence

/// One granted swipe through a door of a zone, and which way it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passage {
    pub event_id: i64,
    pub at: DateTime<Utc>,
    pub person_id: i64,
    pub door_id: i64,
    pub zone_id: i64,
    /// `In` entered the zone, `Out` left it.
    pub direction: Direction,
}

impl Passage {
    fn cursor(&self) -> EventCursor {
        EventCursor {
            at: stored(self.at),
            id: self.event_id,
        }
    }
}

/// Who passed into or out of `zone` in `period` (granted swipes at the zone's own doors,
/// each with its reader's direction), oldest first, up to `size` after `after`.
///
/// A zone's doors are those whose zone it is, not those of the zones inside it: a door of
/// the server room inside the building leads into the server room, and leaving through it
/// leaves the server room, not the building.
pub fn passages(
    conn: &mut DbConnection,
    scope: ReadScope,
    zone: i64,
    period: Period,
    after: Option<EventCursor>,
    size: usize,
) -> Result<Chunk<Passage, EventCursor>, HistoryError> {
    scope.require_events()?;
    let size = chunk_size(size);
    let rows = short_read(conn, |conn| {
        let mut rows = passage_context::recorded_passages(conn, zone, period, after, size)?;
        for door in passage_context::zone_doors(conn, zone)? {
            rows.extend(passage_context::door_passages(
                conn, door, zone, period, after, size,
            )?);
        }
        rows.sort_unstable_by_key(Passage::cursor);
        rows.truncate(size);
        Ok(rows)
    })?;
    Ok(Chunk::of(rows, size, Passage::cursor))
}

/// Reads passages through `zone` in chunks of `size`, each its own short read.
pub fn passage_chunks(
    conn: &mut DbConnection,
    scope: ReadScope,
    zone: i64,
    period: Period,
    size: usize,
) -> Chunks<'_, Passage, EventCursor> {
    Chunks::new(conn, move |conn, after| {
        passages(conn, scope, zone, period, after, size)
    })
}

/// Someone inside a zone: the passage in by which they were last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inside {
    pub person_id: i64,
    /// When they passed in.
    pub since: DateTime<Utc>,
    pub door_id: i64,
    pub event_id: i64,
}

/// Who was inside `zone` as of `as_of` (inclusive): everyone whose last passage through
/// its doors from `since` on went in. Passages before `since` are not looked at: pass the
/// moment presence was last reset (anti-passback forgets everyone then), or as far back as
/// someone may stay inside. Ordered by when they came in.
pub fn inside(
    conn: &mut DbConnection,
    scope: ReadScope,
    zone: i64,
    since: DateTime<Utc>,
    as_of: DateTime<Utc>,
) -> Result<Vec<Inside>, HistoryError> {
    // Stored times have microseconds: the period ends just after `as_of`.
    let period = Period::between(since, as_of + TimeDelta::microseconds(1));
    let mut last: HashMap<i64, Passage> = HashMap::new();
    for chunk in passage_chunks(conn, scope, zone, period, DEFAULT_CHUNK) {
        for passage in chunk? {
            last.insert(passage.person_id, passage);
        }
    }
    let mut inside: Vec<Inside> = last
        .into_values()
        .filter(|p| p.direction == Direction::In)
        .map(|p| Inside {
            person_id: p.person_id,
            since: p.at,
            door_id: p.door_id,
            event_id: p.event_id,
        })
        .collect();
    inside.sort_unstable_by_key(|i| (i.since, i.event_id));
    Ok(inside)
}

/// Where a recorded swipe passed and which way. Events keep the zone and direction they
/// were decided with (`events.zone_id`, `events.direction`: doors move between zones);
/// events recorded before those columns existed (zone_id NULL) fall back to the door's
/// zone now and its reader's direction now, the best that can be known of them. Every
/// presence query reads through here.
mod passage_context {
    use super::*;

    /// Narrows a boxed events query to granted swipes in `period` after the cursor. The
    /// two passage queries differ in their joins, so their boxed types differ: a macro
    /// serves both.
    macro_rules! granted_swipes_in {
        ($q:expr, $on_rows:expr, $period:expr, $after:expr) => {{
            let mut q = if $on_rows {
                $q.filter(events::kind.concat("").eq(EventKind::Swipe.as_str()))
                    .filter(events::result.concat("").eq("granted"))
            } else {
                $q.filter(events::kind.eq(EventKind::Swipe.as_str()))
                    .filter(events::result.eq("granted"))
            };
            if let Some(from) = $period.from {
                q = q.filter(events::at.ge(stored(from)));
            }
            if let Some(until) = $period.until {
                q = q.filter(events::at.lt(stored(until)));
            }
            if let Some(c) = $after {
                q = q.filter(
                    events::at
                        .ge(c.at)
                        .and(events::at.gt(c.at).or(events::id.gt(c.id))),
                );
            }
            q
        }};
    }

    /// Granted swipes of known people whose recorded zone is `zone`, in (at, id) order
    /// from the cursor, at most `size` (the `events_zone_at` range).
    pub(super) fn recorded_passages(
        conn: &mut DbConnection,
        zone: i64,
        period: Period,
        after: Option<EventCursor>,
        size: usize,
    ) -> Result<Vec<Passage>, HistoryError> {
        let on_rows = tested_on_rows(conn);
        let q = events::table
            .filter(events::zone_id.eq(zone))
            .filter(events::person_id.is_not_null())
            .filter(events::direction.is_not_null())
            .select((
                events::id,
                events::at,
                events::person_id,
                events::door_id,
                events::direction,
            ))
            .into_boxed();
        let q = granted_swipes_in!(q, on_rows, period, after);
        type Row = (i64, NaiveDateTime, Option<i64>, Option<i64>, Option<String>);
        let rows: Vec<Row> = q
            .order((events::at.asc(), events::id.asc()))
            .limit(sql_limit(size))
            .load(conn)?;
        let mut passages = Vec::with_capacity(rows.len());
        for (event_id, at, person, door, direction) in rows {
            let (Some(person_id), Some(door_id), Some(direction)) = (person, door, direction)
            else {
                continue;
            };
            let direction = direction
                .parse::<Direction>()
                .map_err(|e| HistoryError::Unreadable(format!("event {event_id}: {e}")))?;
            passages.push(Passage {
                event_id,
                at: at.and_utc(),
                person_id,
                door_id,
                zone_id: zone,
                direction,
            });
        }
        Ok(passages)
    }

    /// The doors whose zone is `zone`, in id order.
    pub(super) fn zone_doors(conn: &mut DbConnection, zone: i64) -> QueryResult<Vec<i64>> {
        doors::table
            .filter(doors::zone_id.eq(zone))
            .select(doors::id)
            .order(doors::id)
            .load(conn)
    }

    /// Granted swipes recorded before events kept their zone (zone_id NULL), of known
    /// people at `door` through a reader still registered, in (at, id) order from the
    /// cursor, at most `size`.
    pub(super) fn door_passages(
        conn: &mut DbConnection,
        door: i64,
        zone: i64,
        period: Period,
        after: Option<EventCursor>,
        size: usize,
    ) -> Result<Vec<Passage>, HistoryError> {
        let on_rows = tested_on_rows(conn);
        let q = events::table
            .inner_join(readers::table.on(readers::reader_id.nullable().eq(events::reader_id)))
            .filter(events::door_id.eq(door))
            .filter(events::zone_id.is_null())
            .filter(events::person_id.is_not_null())
            .select((
                events::id,
                events::at,
                events::person_id,
                readers::direction,
            ))
            .into_boxed();
        // The door's (door_id, at) range is the one to walk: kind and result are tested on
        // its rows (see `tested_on_rows`).
        let q = granted_swipes_in!(q, on_rows, period, after);
        let rows: Vec<(i64, NaiveDateTime, Option<i64>, String)> = q
            .order((events::at.asc(), events::id.asc()))
            .limit(sql_limit(size))
            .load(conn)?;
        let mut passages = Vec::with_capacity(rows.len());
        for (event_id, at, person, direction) in rows {
            // Asked for in the query: a row without one would cut the chunk short.
            let Some(person_id) = person else { continue };
            let direction = direction
                .parse::<Direction>()
                .map_err(|e| HistoryError::Unreadable(format!("event {event_id}'s reader: {e}")))?;
            passages.push(Passage {
                event_id,
                at: at.and_utc(),
                person_id,
                door_id: door,
                zone_id: zone,
                direction,
            });
        }
        Ok(passages)
    }
}

// ---------------------------------------------------------------------------------------
// Swipe counts (the console's charts)

/// Decided swipes from `from` (inclusive) to `until` (exclusive) per local weekday and hour
/// of the time zone `tz` (see `counts`).
pub fn swipes_by_hour(
    conn: &mut DbConnection,
    scope: ReadScope,
    swipes: SwipesOf,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> Result<WeekGrid, HistoryError> {
    scope.require_events()?;
    Ok(counts::week_grid(conn, swipes, from, until, tz)?)
}

/// Granted and denied swipes per local hour or day of `tz`, a point for every bucket of
/// the window, empty ones included (see `counts`).
pub fn swipe_traffic(
    conn: &mut DbConnection,
    scope: ReadScope,
    swipes: SwipesOf,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
    tz: chrono_tz::Tz,
) -> Result<Vec<TrafficPoint>, HistoryError> {
    scope.require_events()?;
    Ok(counts::traffic(conn, swipes, from, until, bucket, tz)?)
}

// ---------------------------------------------------------------------------------------
// Changes (the audit log)

/// Whose changes a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangesOf {
    /// Every entry the scope may read.
    All,
    /// Entries about one kind of entity (`person`, `door`, `access_level`, …), or about
    /// one of them when `id` is given.
    Entity { entity: String, id: Option<String> },
    /// Entries made by one actor (an admin's username, or `cli`, `import` …).
    Actor(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeQuery {
    pub of: ChangesOf,
    pub period: Period,
}

/// Up to `size` audit entries of the query after the entry numbered `after`, oldest first.
/// Entries about admin identity are refused (asked for by entity) or left out (otherwise)
/// for a scope that may not read them.
pub fn changes(
    conn: &mut DbConnection,
    scope: ReadScope,
    query: &ChangeQuery,
    after: Option<i64>,
    size: usize,
) -> Result<Chunk<AuditRow, i64>, HistoryError> {
    let size = chunk_size(size);
    let mut q = audit_log::table.select(AuditRow::as_select()).into_boxed();
    match &query.of {
        ChangesOf::All => {}
        ChangesOf::Entity { entity, id } => {
            if !scope.reads_admin_identity() && ADMIN_IDENTITY_ENTITIES.contains(&entity.as_str()) {
                return Err(scope.refuse(format!("changes to {entity} entries")));
            }
            q = q.filter(audit_log::entity.eq(entity.clone()));
            if let Some(id) = id {
                q = q.filter(audit_log::entity_id.eq(id.clone()));
            }
        }
        ChangesOf::Actor(actor) => q = q.filter(audit_log::actor.eq(actor.clone())),
    }
    if !scope.reads_admin_identity() {
        q = q.filter(audit_log::entity.ne_all(ADMIN_IDENTITY_ENTITIES));
    }
    if let Some(from) = query.period.from {
        q = q.filter(audit_log::at.ge(stored(from)));
    }
    if let Some(until) = query.period.until {
        q = q.filter(audit_log::at.lt(stored(until)));
    }
    if let Some(seq) = after {
        q = q.filter(audit_log::seq.gt(seq));
    }
    // In the chain's order. An entity's entries come from (entity, entity_id) and are
    // sorted (a handful); everything else walks `seq` from the cursor. On SQLite a period
    // is taken from the `at` index and its entries sorted for each chunk: the audit log is
    // orders smaller than the event log, and `at` alone could not be a cursor (appends
    // from two instances can carry times out of `seq` order).
    let read = q.order(audit_log::seq.asc()).limit(sql_limit(size));
    let rows = short_read(conn, |conn| Ok(read.load(conn)?))?;
    Ok(Chunk::of(rows, size, |row: &AuditRow| row.seq))
}

/// Reads audit entries in chunks of `size`, each its own short read.
pub fn change_chunks(
    conn: &mut DbConnection,
    scope: ReadScope,
    query: ChangeQuery,
    size: usize,
) -> Chunks<'_, AuditRow, i64> {
    Chunks::new(conn, move |conn, after| {
        changes(conn, scope, &query, after, size)
    })
}

// ---------------------------------------------------------------------------------------
// Chunked iteration

type ReadChunk<'c, T, C> =
    Box<dyn FnMut(&mut DbConnection, Option<C>) -> Result<Chunk<T, C>, HistoryError> + 'c>;

/// A read in chunks: each `next` is one short read of the chunk after the last, so the
/// connection holds no transaction between chunks (the caller may take its time with
/// each). Ends after the last chunk, or after an error.
pub struct Chunks<'c, T, C> {
    conn: &'c mut DbConnection,
    read: ReadChunk<'c, T, C>,
    after: Option<C>,
    done: bool,
}

impl<'c, T, C> Chunks<'c, T, C> {
    fn new(
        conn: &'c mut DbConnection,
        read: impl FnMut(&mut DbConnection, Option<C>) -> Result<Chunk<T, C>, HistoryError> + 'c,
    ) -> Chunks<'c, T, C> {
        Chunks {
            conn,
            read: Box::new(read),
            after: None,
            done: false,
        }
    }
}

impl<T, C: Clone> Iterator for Chunks<'_, T, C> {
    type Item = Result<Vec<T>, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match (self.read)(self.conn, self.after.clone()) {
            Ok(chunk) => {
                match chunk.next {
                    Some(next) => self.after = Some(next),
                    None => self.done = true,
                }
                if chunk.rows.is_empty() {
                    self.done = true;
                    return None;
                }
                Some(Ok(chunk.rows))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod test_databases {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    use crate::store::{DbConnection, DbPool, migrate, open};

    const POSTGRES_ENV: &str = "GATEHOUSE_TEST_POSTGRES_URL";
    static DATABASES: AtomicUsize = AtomicUsize::new(0);

    /// A fresh, migrated database; a PostgreSQL one is dropped when the test is done.
    pub struct TestDb {
        pub backend: &'static str,
        pub pool: DbPool,
        _dir: Option<tempfile::TempDir>,
        /// The admin URL and the database's name, to drop it.
        postgres: Option<(String, String)>,
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            if let Some((admin_url, name)) = &self.postgres
                && let Ok(mut conn) = DbConnection::establish(admin_url)
            {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }

    /// SQLite always; PostgreSQL too when GATEHOUSE_TEST_POSTGRES_URL names a server.
    pub fn databases() -> Vec<TestDb> {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/g.db", dir.path().display());
        let pool = open(&url, 1).unwrap();
        migrate(&mut pool.get().unwrap()).unwrap();
        let mut dbs = vec![TestDb {
            backend: "sqlite",
            pool,
            _dir: Some(dir),
            postgres: None,
        }];
        match std::env::var(POSTGRES_ENV) {
            Ok(admin_url) if cfg!(feature = "postgres") => {
                let name = format!(
                    "gatehouse_history_{}_{}",
                    std::process::id(),
                    DATABASES.fetch_add(1, Ordering::SeqCst)
                );
                let mut admin = DbConnection::establish(&admin_url).unwrap();
                // One statement per call: CREATE DATABASE refuses to run in a transaction.
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                let pool = open(&format!("{base}/{name}"), 1).unwrap();
                migrate(&mut pool.get().unwrap()).unwrap();
                dbs.push(TestDb {
                    backend: "postgres",
                    pool,
                    _dir: None,
                    postgres: Some((admin_url, name)),
                });
            }
            // Under CI (CI=true) every service must be there: skipping would let it pass
            // without testing PostgreSQL (the rule of tests/integration/app.rs).
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL not tested: set {POSTGRES_ENV} (CI=true: CI must test it)")
            }
            _ => eprintln!("skipping PostgreSQL: set {POSTGRES_ENV} to test it too"),
        }
        dbs
    }
}
