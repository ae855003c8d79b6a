//! Event history from a previous access system: a CSV of swipes (docs/site-file.md, "Event
//! history") checked whole before anything is written, then added marked `imported`, each
//! row once however often the file is imported (its natural key, `events.import_key`).
//!
//! Two passes over the file. The first reads and checks every line (every problem is
//! reported with its line, and any problem writes nothing); the second writes. On SQLite
//! the second writes in transactions of `SQLITE_ROWS_PER_TRANSACTION` rows, each a fraction
//! of a second, because one transaction of a million rows would hold the database's write
//! lock for longer than the live event log waits for it (5 s), and swipes would go
//! unanswered; on PostgreSQL, where inserts do not lock each other out, it is one
//! transaction. Should the database fail midway on SQLite (a full disk), the rows written
//! stay and importing the file again adds the rest: each row's key makes that safe.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use sha2::{Digest, Sha256};

use super::site_file::ImportError;
use crate::clock::stored;
use crate::entities::ChangeContext;
use crate::policy::CredentialKey;
use crate::policy::model::Direction;
use crate::store::event_log::{Event, EventColumns, EventKind, Origin};
use crate::store::schema::{credentials, doors, events, people, zones};
use crate::store::{DbConnection, write_transaction};

/// The columns a file may have; `at`, `door`, `result` and one of `employee_id` and
/// `card_uid` are required.
pub const COLUMNS: [&str; 7] = [
    "at",
    "employee_id",
    "card_uid",
    "door",
    "result",
    "reason",
    "direction",
];

/// The longest `reason` kept (the previous system's words for why, stored with the event).
pub const MAX_REASON_CHARS: usize = 200;

/// The most problems listed; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 1_000;

/// Rows in one INSERT: 12 values each, within SQLite's 32,766 and PostgreSQL's 65,535
/// parameters per statement.
const ROWS_PER_INSERT: usize = 500;

/// Rows in one write transaction on SQLite: a fraction of a second of the write lock, so
/// the live event log (which waits up to 5 s for it) gets in between.
const SQLITE_ROWS_PER_TRANSACTION: usize = 20_000;

/// What the import may accept, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct EventImportOptions {
    /// Check only; write nothing.
    pub dry_run: bool,
    /// `events.retention_days`: rows older than this would be deleted by the retention job
    /// at its next run, so they are refused (0: events are kept forever).
    pub retention_days: u32,
}

/// Which pass the import is in, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Checking,
    Writing,
}

/// How far the import is: rows and bytes read in the current pass, of `total_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: Phase,
    pub rows: u64,
    pub bytes: u64,
    pub total_bytes: u64,
}

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventImportSummary {
    /// Lines of events in the file.
    pub rows: u64,
    /// Rows added now (a dry run: that would be added).
    pub added: u64,
    /// Rows already in the event log from an earlier import of them.
    pub already_present: u64,
    /// The oldest and newest event in the file.
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    /// How many people and doors the file's events are of.
    pub people: usize,
    pub doors: usize,
}

impl fmt::Display for EventImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "events in the file  {:>10}", self.rows)?;
        writeln!(f, "added               {:>10}", self.added)?;
        writeln!(f, "already present     {:>10}", self.already_present)?;
        if let (Some(first), Some(last)) = (self.first, self.last) {
            writeln!(
                f,
                "from {} to {}, {} people at {} doors",
                first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                self.people,
                self.doors
            )?;
        }
        Ok(())
    }
}

/// Where a door is: what every event at it is stored with.
#[derive(Debug, Clone, Copy)]
struct DoorPlace {
    id: i64,
    zone_id: i64,
    site_id: i64,
}

/// The names a file may use, resolved once before the first line is read.
struct Directory {
    doors: HashMap<String, DoorPlace>,
    people: HashMap<String, i64>,
    /// A card's UID as stored (upper-case hex) → its id and holder.
    cards: HashMap<String, (i64, i64)>,
    employee_ids: HashMap<i64, String>,
}

impl Directory {
    fn load(conn: &mut DbConnection) -> QueryResult<Directory> {
        crate::store::read_consistently(conn, |conn| {
            let door_rows: Vec<(i64, String, i64, i64)> = doors::table
                .inner_join(zones::table)
                .select((doors::id, doors::name, doors::zone_id, zones::site_id))
                .load(conn)?;
            let people_rows: Vec<(i64, String)> = people::table
                .select((people::id, people::employee_id))
                .load(conn)?;
            let card_rows: Vec<(i64, i64, Option<String>)> = credentials::table
                .filter(credentials::card_uid.is_not_null())
                .select((
                    credentials::id,
                    credentials::person_id,
                    credentials::card_uid,
                ))
                .load(conn)?;
            Ok(Directory {
                doors: door_rows
                    .into_iter()
                    .map(|(id, name, zone_id, site_id)| {
                        (
                            name,
                            DoorPlace {
                                id,
                                zone_id,
                                site_id,
                            },
                        )
                    })
                    .collect(),
                employee_ids: people_rows.iter().map(|(id, e)| (*id, e.clone())).collect(),
                people: people_rows.into_iter().map(|(id, e)| (e, id)).collect(),
                cards: card_rows
                    .into_iter()
                    .filter_map(|(id, person, uid)| Some((uid?, (id, person))))
                    .collect(),
            })
        })
    }
}

/// Which column holds what, from the header line.
struct Columns {
    at: usize,
    employee_id: Option<usize>,
    card_uid: Option<usize>,
    door: usize,
    result: usize,
    reason: Option<usize>,
    direction: Option<usize>,
}

impl Columns {
    fn of(headers: &csv::StringRecord) -> Result<Columns, String> {
        let mut found: HashMap<&str, usize> = HashMap::new();
        for (i, name) in headers.iter().enumerate() {
            // A spreadsheet's "CSV UTF-8" starts with a byte-order mark.
            let name = name.trim_start_matches('\u{feff}').trim();
            if !COLUMNS.contains(&name) {
                return Err(format!(
                    "unknown column '{name}'; the columns are {}",
                    COLUMNS.join(", ")
                ));
            }
            if found.insert(name, i).is_some() {
                return Err(format!("the column '{name}' appears twice"));
            }
        }
        let required = |name: &str| {
            found
                .get(name)
                .copied()
                .ok_or_else(|| format!("the column '{name}' is missing"))
        };
        let columns = Columns {
            at: required("at")?,
            employee_id: found.get("employee_id").copied(),
            card_uid: found.get("card_uid").copied(),
            door: required("door")?,
            result: required("result")?,
            reason: found.get("reason").copied(),
            direction: found.get("direction").copied(),
        };
        if columns.employee_id.is_none() && columns.card_uid.is_none() {
            return Err("a column 'employee_id' or 'card_uid' is needed".to_owned());
        }
        Ok(columns)
    }
}

/// One line of the file, checked and resolved.
#[derive(Debug, Clone)]
struct Row {
    at: NaiveDateTime,
    person_id: i64,
    credential_id: Option<i64>,
    door: DoorPlace,
    granted: bool,
    reason: String,
    direction: Option<Direction>,
}

/// The times a row may have: not in the future, not older than the retention keeps.
struct Window {
    now: DateTime<Utc>,
    oldest: Option<DateTime<Utc>>,
    retention_days: u32,
}

fn field(record: &csv::StringRecord, column: Option<usize>) -> &str {
    column.and_then(|i| record.get(i)).unwrap_or("").trim()
}

/// Checks and resolves one line; the message names the column.
fn resolve(
    record: &csv::StringRecord,
    columns: &Columns,
    directory: &Directory,
    window: &Window,
) -> Result<Row, String> {
    let at_text = field(record, Some(columns.at));
    let at = DateTime::parse_from_rfc3339(at_text)
        .map_err(|_| {
            format!("at: '{at_text}' is not an RFC 3339 time such as 2026-03-02T08:15:00Z")
        })?
        .with_timezone(&Utc);
    if at > window.now {
        return Err(format!("at: {at_text} is in the future"));
    }
    if let Some(oldest) = window.oldest
        && at < oldest
    {
        return Err(format!(
            "at: {at_text} is older than the event retention ({} days, events.retention_days): \
             the retention job would delete it; raise the retention or leave such rows out",
            window.retention_days
        ));
    }
    let door_name = field(record, Some(columns.door));
    if door_name.is_empty() {
        return Err("door: empty; name the door as the appliance knows it".to_owned());
    }
    let door = *directory
        .doors
        .get(door_name)
        .ok_or_else(|| format!("door: no door is named '{door_name}'"))?;
    let employee_id = field(record, columns.employee_id);
    let card_uid = field(record, columns.card_uid);
    let person = if employee_id.is_empty() {
        None
    } else {
        Some(
            *directory
                .people
                .get(employee_id)
                .ok_or_else(|| format!("employee_id: no person has employee id '{employee_id}'"))?,
        )
    };
    let card = if card_uid.is_empty() {
        None
    } else {
        let key = CredentialKey::card(card_uid).map_err(|e| format!("card_uid: {e}"))?;
        let CredentialKey::Card { uid } = key else {
            return Err(format!("card_uid: '{card_uid}' is not a card UID"));
        };
        Some(
            *directory
                .cards
                .get(&uid)
                .ok_or_else(|| format!("card_uid: no card {uid} is registered"))?,
        )
    };
    let (person_id, credential_id) = match (person, card) {
        (None, None) => {
            return Err("employee_id or card_uid: one of them is needed".to_owned());
        }
        (Some(person), None) => (person, None),
        (None, Some((card, holder))) => (holder, Some(card)),
        (Some(person), Some((card, holder))) => {
            if person != holder {
                let holder = directory
                    .employee_ids
                    .get(&holder)
                    .map_or("someone else", String::as_str);
                return Err(format!(
                    "card_uid: the card {card_uid} is {holder}'s, not {employee_id}'s"
                ));
            }
            (person, Some(card))
        }
    };
    let result = field(record, Some(columns.result));
    let granted = match result.to_ascii_lowercase().as_str() {
        "granted" => true,
        "denied" => false,
        _ => return Err(format!("result: '{result}' is neither granted nor denied")),
    };
    let reason = field(record, columns.reason);
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(format!("reason: longer than {MAX_REASON_CHARS} characters"));
    }
    let direction_text = field(record, columns.direction);
    let direction = if direction_text.is_empty() {
        None
    } else {
        Some(
            direction_text
                .to_ascii_lowercase()
                .parse::<Direction>()
                .map_err(|_| format!("direction: '{direction_text}' is neither in nor out"))?,
        )
    };
    Ok(Row {
        at: stored(at),
        person_id,
        credential_id,
        door,
        granted,
        reason: reason.to_owned(),
        direction,
    })
}

/// A row's natural key: what it says, and how many rows saying the same came before it in
/// the file (two swipes in one second are two events, and stay two on every import).
/// 64 bits of SHA-256: a chance of about 3 in 10^8 that two different rows of a million
/// share one, in which case the second would be taken as already present.
struct Keys {
    seen: HashMap<i64, u32>,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            seen: HashMap::new(),
        }
    }

    fn of(&mut self, row: &Row) -> i64 {
        let mut hash = Sha256::new();
        hash.update(row.at.and_utc().timestamp_micros().to_be_bytes());
        hash.update(row.person_id.to_be_bytes());
        hash.update(row.credential_id.unwrap_or(-1).to_be_bytes());
        hash.update(row.door.id.to_be_bytes());
        hash.update([u8::from(row.granted)]);
        hash.update(match row.direction {
            None => b"-",
            Some(Direction::In) => b"i",
            Some(Direction::Out) => b"o",
        });
        hash.update(row.reason.as_bytes());
        let digest = hash.finalize();
        let base = first_64_bits(&digest);
        let occurrence = self.seen.entry(base).or_insert(0);
        let key = if *occurrence == 0 {
            base
        } else {
            let mut again = Sha256::new();
            again.update(digest);
            again.update(occurrence.to_be_bytes());
            first_64_bits(&again.finalize())
        };
        *occurrence += 1;
        key
    }
}

fn first_64_bits(digest: &[u8]) -> i64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The one place an imported line becomes an event: a swipe at its door, with the door's
/// site and zone as they are now (the previous system's layout is not known), the person
/// and card, the result and direction, marked imported, and in `detail` the previous
/// system's reason. No reader, decision, reason code (its reasons are not the appliance's)
/// or anti-passback zone, so that presence, rebuilt from live passages only, cannot be
/// left thinking someone from history is still inside.
fn imported_event(row: &Row, key: i64) -> Event {
    let mut detail = serde_json::json!({"origin": "imported"});
    if !row.reason.is_empty() {
        detail["reason"] = serde_json::Value::String(row.reason.clone());
    }
    Event {
        door_id: Some(row.door.id),
        site_id: Some(row.door.site_id),
        zone_id: Some(row.door.zone_id),
        person_id: Some(row.person_id),
        credential_id: row.credential_id,
        result: Some(if row.granted { "granted" } else { "denied" }.to_owned()),
        direction: row.direction,
        detail: detail.to_string(),
        origin: Origin::Imported,
        import_key: Some(key),
        ..Event::new(EventKind::Swipe, crate::clock::utc(row.at))
    }
}

/// Inserts the rows, skipping those whose key is already stored; returns how many were
/// added.
fn insert_new(conn: &mut DbConnection, rows: &[Event]) -> QueryResult<u64> {
    let mut added = 0u64;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let chunk: Vec<EventColumns<'_>> = chunk.iter().map(EventColumns::of).collect();
        let chunk = &chunk;
        let inserted = match conn {
            // INSERT OR IGNORE: diesel has no multi-row ON CONFLICT for SQLite. It also
            // skips rows that break NOT NULL or CHECK, which these rows cannot (every
            // NOT NULL column is set, `origin` is 'imported'), and the only other unique
            // key (reader, seq, reader time) is NULL on imported rows: what it skips is a
            // stored import key.
            DbConnection::Sqlite(conn) => diesel::insert_or_ignore_into(events::table)
                .values(chunk)
                .execute(conn)?,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(conn) => diesel::insert_into(events::table)
                .values(chunk)
                .on_conflict_do_nothing()
                .execute(conn)?,
        };
        added += inserted as u64;
    }
    Ok(added)
}

/// How many of `keys` are stored already (a dry run's count).
fn stored_keys(conn: &mut DbConnection, keys: &[i64]) -> QueryResult<u64> {
    let mut found = 0u64;
    for chunk in keys.chunks(ROWS_PER_INSERT) {
        let n: i64 = events::table
            .filter(events::import_key.eq_any(chunk))
            .count()
            .get_result(conn)?;
        found += u64::try_from(n).unwrap_or(0);
    }
    Ok(found)
}

fn line_error(line: u64, message: impl Into<String>) -> ImportError {
    ImportError {
        place: format!("line {line}"),
        message: message.into(),
    }
}

fn database_error(e: impl fmt::Display, added: u64) -> Vec<ImportError> {
    let message = if added == 0 {
        format!("{e}; nothing was imported")
    } else {
        format!(
            "{e}; {added} rows were added before the failure: importing the file again adds \
             the rest (rows already added are skipped)"
        )
    };
    vec![ImportError {
        place: "database".to_owned(),
        message,
    }]
}

/// One pass over the file: every line checked and resolved, handed to `each` with its
/// line number; problems collected (up to `MAX_LISTED_PROBLEMS`, then counted).
struct Pass<'p> {
    phase: Phase,
    total_bytes: u64,
    progress: &'p dyn Fn(&Progress),
}

struct PassOutcome {
    rows: u64,
    problems: Vec<ImportError>,
    unlisted: u64,
}

impl Pass<'_> {
    fn run<R: Read>(
        &self,
        source: R,
        directory: &Directory,
        window: &Window,
        mut each: impl FnMut(u64, Row) -> Result<(), Vec<ImportError>>,
    ) -> Result<PassOutcome, Vec<ImportError>> {
        let mut csv = csv::ReaderBuilder::new().from_reader(source);
        let mut outcome = PassOutcome {
            rows: 0,
            problems: Vec::new(),
            unlisted: 0,
        };
        let problem = |outcome: &mut PassOutcome, e: ImportError| {
            if outcome.problems.len() < MAX_LISTED_PROBLEMS {
                outcome.problems.push(e);
            } else {
                outcome.unlisted += 1;
            }
        };
        let headers = match csv.byte_headers() {
            Ok(h) => csv::StringRecord::from_byte_record(h.clone())
                .map_err(|_| vec![line_error(1, "the header line is not UTF-8 text")])?,
            Err(e) => return Err(vec![line_error(1, e.to_string())]),
        };
        let columns = Columns::of(&headers).map_err(|m| vec![line_error(1, m)])?;
        let mut record = csv::ByteRecord::new();
        loop {
            match csv.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map_or(0, csv::Position::line);
                    let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                    problem(&mut outcome, line_error(line, e.to_string()));
                    if io {
                        break;
                    }
                    continue;
                }
            }
            let line = record.position().map_or(0, csv::Position::line);
            outcome.rows += 1;
            if outcome.rows.is_multiple_of(10_000) {
                (self.progress)(&Progress {
                    phase: self.phase,
                    rows: outcome.rows,
                    bytes: record.position().map_or(0, csv::Position::byte),
                    total_bytes: self.total_bytes,
                });
            }
            let text = match csv::StringRecord::from_byte_record(record.clone()) {
                Ok(text) => text,
                Err(e) => {
                    let column = headers.get(e.utf8_error().field()).unwrap_or("a field");
                    problem(
                        &mut outcome,
                        line_error(line, format!("{column}: {}", crate::input::NOT_UTF8)),
                    );
                    continue;
                }
            };
            if let Some(i) = text.iter().position(|value| value.contains('\0')) {
                let column = headers.get(i).unwrap_or("a field").trim();
                problem(
                    &mut outcome,
                    line_error(line, format!("{column}: {}", crate::input::NUL)),
                );
                continue;
            }
            match resolve(&text, &columns, directory, window) {
                Ok(row) => each(line, row)?,
                Err(message) => problem(&mut outcome, line_error(line, message)),
            }
        }
        (self.progress)(&Progress {
            phase: self.phase,
            rows: outcome.rows,
            bytes: self.total_bytes,
            total_bytes: self.total_bytes,
        });
        Ok(outcome)
    }
}

/// Imports a CSV of swipes from a previous access system (docs/site-file.md): every line is
/// checked first, each problem reported with its line (the header is line 1), and a file
/// with any problem writes nothing. Rows already imported (by an earlier import of this
/// file or of one that overlaps it) are skipped. One audit entry records the import when
/// it added anything.
pub fn import<R: Read + Seek>(
    conn: &mut DbConnection,
    source: &mut R,
    ctx: &ChangeContext<'_>,
    options: EventImportOptions,
    progress: &dyn Fn(&Progress),
) -> Result<EventImportSummary, Vec<ImportError>> {
    let io_error = |e: std::io::Error| {
        vec![ImportError {
            place: "file".to_owned(),
            message: e.to_string(),
        }]
    };
    let total_bytes = source.seek(SeekFrom::End(0)).map_err(io_error)?;
    source.rewind().map_err(io_error)?;
    let directory = Directory::load(conn).map_err(|e| database_error(e, 0))?;
    let window = Window {
        now: ctx.now,
        oldest: (options.retention_days > 0)
            .then(|| ctx.now - TimeDelta::days(i64::from(options.retention_days))),
        retention_days: options.retention_days,
    };

    // The first pass: check everything; a dry run also looks up which rows are stored.
    let mut summary = EventImportSummary::default();
    let mut people = std::collections::HashSet::new();
    let mut doors = std::collections::HashSet::new();
    let mut keys = Keys::new();
    let mut pending_keys = Vec::new();
    let mut already = 0u64;
    let checking = Pass {
        phase: Phase::Checking,
        total_bytes,
        progress,
    };
    let checked = checking.run(&mut *source, &directory, &window, |_, row| {
        let at = row.at.and_utc();
        summary.first = Some(summary.first.map_or(at, |t| t.min(at)));
        summary.last = Some(summary.last.map_or(at, |t| t.max(at)));
        people.insert(row.person_id);
        doors.insert(row.door.id);
        if options.dry_run {
            pending_keys.push(keys.of(&row));
            if pending_keys.len() >= ROWS_PER_INSERT {
                already += stored_keys(conn, &pending_keys).map_err(|e| database_error(e, 0))?;
                pending_keys.clear();
            }
        }
        Ok(())
    })?;
    if !checked.problems.is_empty() {
        let mut problems = checked.problems;
        if checked.unlisted > 0 {
            problems.push(ImportError {
                place: "file".to_owned(),
                message: format!("… and {} more lines with problems", checked.unlisted),
            });
        }
        return Err(problems);
    }
    summary.rows = checked.rows;
    summary.people = people.len();
    summary.doors = doors.len();
    if options.dry_run {
        already += stored_keys(conn, &pending_keys).map_err(|e| database_error(e, 0))?;
        summary.already_present = already;
        summary.added = summary.rows - already.min(summary.rows);
        return Ok(summary);
    }

    // The second pass: write, in bounded transactions on SQLite.
    source.rewind().map_err(io_error)?;
    let writing = Pass {
        phase: Phase::Writing,
        total_bytes,
        progress,
    };
    let mut keys = Keys::new();
    let mut batch: Vec<Event> = Vec::new();
    let added = match conn {
        DbConnection::Sqlite(_) => {
            let mut added = 0u64;
            let outcome = writing.run(&mut *source, &directory, &window, |_, row| {
                let key = keys.of(&row);
                batch.push(imported_event(&row, key));
                if batch.len() >= SQLITE_ROWS_PER_TRANSACTION {
                    added += write_transaction(conn, |conn| insert_new(conn, &batch))
                        .map_err(|e| database_error(e, added))?;
                    batch.clear();
                }
                Ok(())
            })?;
            if !outcome.problems.is_empty() {
                return Err(changed_file(outcome.problems, added));
            }
            // The last rows and the audit entry together: the entry is written with the
            // import's last rows or not at all.
            let before = added;
            added += write_transaction(conn, |conn| {
                let n = insert_new(conn, &batch)?;
                if before + n > 0 {
                    audit_import(conn, ctx, &summary, before + n)?;
                }
                Ok::<u64, diesel::result::Error>(n)
            })
            .map_err(|e| database_error(e, before))?;
            added
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(_) => {
            // One transaction: any failure, or a file changed since it was checked, rolls
            // back every row.
            enum Abort {
                Problems(Vec<ImportError>),
                Db(diesel::result::Error),
            }
            impl From<diesel::result::Error> for Abort {
                fn from(e: diesel::result::Error) -> Self {
                    Abort::Db(e)
                }
            }
            let result = write_transaction::<u64, Abort, _>(conn, |conn| {
                let mut added = 0u64;
                let mut failed = None;
                let outcome = writing.run(&mut *source, &directory, &window, |_, row| {
                    let key = keys.of(&row);
                    batch.push(imported_event(&row, key));
                    if batch.len() >= ROWS_PER_INSERT {
                        match insert_new(conn, &batch) {
                            Ok(n) => added += n,
                            Err(e) => {
                                failed = Some(e);
                                return Err(Vec::new());
                            }
                        }
                        batch.clear();
                    }
                    Ok(())
                });
                if let Some(e) = failed {
                    return Err(Abort::Db(e));
                }
                let outcome = outcome.map_err(Abort::Problems)?;
                if !outcome.problems.is_empty() {
                    return Err(Abort::Problems(changed_file(outcome.problems, 0)));
                }
                added += insert_new(conn, &batch)?;
                if added > 0 {
                    audit_import(conn, ctx, &summary, added)?;
                }
                Ok(added)
            });
            match result {
                Ok(added) => added,
                Err(Abort::Problems(problems)) => return Err(problems),
                Err(Abort::Db(e)) => return Err(database_error(e, 0)),
            }
        }
    };
    summary.added = added;
    summary.already_present = summary.rows - added.min(summary.rows);
    Ok(summary)
}

/// A file whose lines were fine when checked and are not when written changed in between.
fn changed_file(mut problems: Vec<ImportError>, added: u64) -> Vec<ImportError> {
    let kept = if added == 0 {
        "nothing was imported".to_owned()
    } else {
        format!("{added} rows were added before; fix the file and import it again")
    };
    problems.insert(
        0,
        ImportError {
            place: "file".to_owned(),
            message: format!("the file changed while it was being imported: {kept}"),
        },
    );
    problems
}

fn audit_import(
    conn: &mut DbConnection,
    ctx: &ChangeContext<'_>,
    summary: &EventImportSummary,
    added: u64,
) -> QueryResult<()> {
    let span = match (summary.first, summary.last) {
        (Some(first), Some(last)) => format!(
            " from {} to {}",
            first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        _ => String::new(),
    };
    crate::store::audit::append(
        conn,
        &crate::store::audit::AuditEntry {
            provenance: ctx.provenance,
            action: "import",
            entity: "events",
            entity_id: None,
            summary: format!(
                "import events: {added} added of {} in the file{span}",
                summary.rows
            ),
            before: None,
            after: None,
        },
        ctx.now,
    )?;
    Ok(())
}
