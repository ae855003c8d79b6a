//! The console benchmark's database: the example site (`packaging/examples/office.toml`)
//! plus generated people, each with a card and one access level, a year of events across
//! all people and the site's readers, and console admins.
//!
//! Building it takes minutes, so it is built once into a cache folder and reused while its
//! description (the [`Spec`] and the site file) matches. On reuse the log is topped up to
//! the present at the same rate and as many of the oldest events are deleted, so that the
//! log keeps its size and "today" on the dashboard always holds its share of the events.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Utc};
use diesel::prelude::*;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins::{self, AdminInput};
use gatehouse::store::event_log::{Event, EventKind};
use gatehouse::store::schema::{access_levels, credentials, entitlements, events, people, readers};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::appliance::recorded_swipe;
use crate::event_rows::insert_rows;

/// Bump when the generator changes what it writes: cached databases are then rebuilt.
const FORMAT: u32 = 1;

/// Rows per transaction while filling the log.
const EVENTS_PER_TRANSACTION: usize = 200_000;

/// What to build.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Generated people, beside the example site's own.
    pub people: usize,
    /// Events in the log.
    pub events: u64,
    /// The events cover this many days up to the present.
    pub days: u32,
    /// Console admins ([`admin_name`], password [`ADMIN_PASSWORD`]).
    pub admins: usize,
    pub seed: u64,
}

impl Spec {
    fn manifest(&self, site_text: &str) -> String {
        format!(
            "format {FORMAT}\npeople {}\nevents {}\ndays {}\nadmins {}\nseed {}\nsite {:016x}\n",
            self.people,
            self.events,
            self.days,
            self.admins,
            self.seed,
            fnv1a(site_text.as_bytes())
        )
    }
}

/// Every bench admin's password (argon2id-hashed like any other).
pub const ADMIN_PASSWORD: &str = "console bench password";

/// The username of bench admin `i` (from 0).
pub fn admin_name(i: usize) -> String {
    format!("bench-admin-{i:02}")
}

/// FNV-1a, to notice that the site file changed (stable across Rust versions, unlike
/// `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The database, ready.
#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    /// Built in this run (else reused).
    pub built: bool,
    /// How long building or topping up took.
    pub took: Duration,
    /// Events added (and as many oldest deleted) to bring a reused log up to the present.
    pub topped_up: u64,
}

/// The database of `spec` in `dir` (created if missing): reused when its manifest matches,
/// else built.
pub fn prepare(dir: &Path, site_file: &Path, spec: &Spec, now: DateTime<Utc>) -> Result<Prepared> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let site_text = std::fs::read_to_string(site_file)
        .with_context(|| format!("cannot read the site file {}", site_file.display()))?;
    let path = dir.join("console.db");
    let manifest_path = dir.join("console.manifest");
    let wanted = spec.manifest(&site_text);
    let started = Instant::now();
    let have = std::fs::read_to_string(&manifest_path).unwrap_or_default();
    if have == wanted && path.exists() {
        match top_up(&path, spec, now) {
            Ok(Some(topped_up)) => {
                return Ok(Prepared {
                    path,
                    built: false,
                    took: started.elapsed(),
                    topped_up,
                });
            }
            Ok(None) => eprintln!("the cached log is older than its span; rebuilding"),
            Err(e) => eprintln!("the cached database is not usable ({e:#}); rebuilding"),
        }
    } else if path.exists() {
        eprintln!("the cached database was built for another description; rebuilding");
    }
    let _ = std::fs::remove_file(&manifest_path);
    build(&path, &site_text, spec, now)?;
    std::fs::write(&manifest_path, wanted)
        .with_context(|| format!("cannot write {}", manifest_path.display()))?;
    Ok(Prepared {
        path,
        built: true,
        took: started.elapsed(),
        topped_up: 0,
    })
}

fn remove_database(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.display())),
        }
    }
    Ok(())
}

/// A connection for bulk writes: no fsync (a build that dies is rebuilt: the manifest is
/// written last) and a page cache large enough for the event indexes.
fn bulk_connection(path: &Path) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "PRAGMA busy_timeout = 5000; PRAGMA synchronous = OFF; \
         PRAGMA cache_size = -1048576; PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

fn build(path: &Path, site_text: &str, spec: &Spec, now: DateTime<Utc>) -> Result<()> {
    remove_database(path)?;
    let ctx = ChangeContext {
        provenance: &gatehouse::identity::provenance::Provenance::cli("console-bench"),
        now,
    };
    let url = format!("sqlite://{}", path.display());
    {
        let pool = gatehouse::store::open(&url, 1)?;
        let mut conn = pool.get()?;
        gatehouse::store::migrate(&mut conn)?;
        eprint!("importing the example site … ");
        let summary =
            gatehouse::io::site_file::import(&mut conn, site_text, &ctx, false, &|_, _| {})
                .map_err(|errors| {
                    anyhow!(
                        "the site file does not import: {}",
                        errors
                            .iter()
                            .map(|e| format!("{}: {}", e.place, e.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                })?;
        eprintln!("{} entries", summary.created());
        for i in 0..spec.admins {
            eprint!(
                "\rcreating console admins (argon2id each): {}/{}",
                i + 1,
                spec.admins
            );
            admins::create_admin(
                &mut conn,
                &AdminInput {
                    username: admin_name(i),
                    password: ADMIN_PASSWORD.to_owned(),
                    role: "admin".to_owned(),
                },
                &ctx,
            )
            .map_err(|e| anyhow!("cannot create admin {}: {e:?}", admin_name(i)))?;
        }
        eprintln!();
    }
    let mut conn = bulk_connection(path)?;
    let mut rng = StdRng::seed_from_u64(spec.seed);
    add_people(&mut conn, spec, stamp(now), &mut rng)?;
    let start = now - TimeDelta::days(i64::from(spec.days));
    let mut generator = EventGenerator::load(&mut conn, 0)?;
    let started = Instant::now();
    fill(
        &mut conn,
        &mut generator,
        &mut rng,
        start,
        now,
        spec.events,
        &started,
    )?;
    eprintln!();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "PRAGMA wal_checkpoint(TRUNCATE);",
    )?;
    Ok(())
}

fn stamp(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc().trunc_subsecs(6)
}

const FIRST: &str = "Ada Alan Grace Linus Margaret Dennis Barbara Ken Frances Edsger Radia Tim \
    Donald Hedy Katherine Claude John Sophie Annie Brian Niklaus Leslie Shafi Joan Vint Bjarne \
    Guido Yukihiro Anders James Carol Jean Mary Susan Karen Lynn Ivan Ole Kristen Robin Alex Sam \
    Jordan Taylor Morgan Casey Riley Jamie Avery Quinn Harper Rowan Elliot Noor Priya Wei Mei \
    Hiroshi Kenji Aiko Olu Amara Kwame Zara Omar Leila Yusuf Ines Mateo Lucia Diego Sofia Lars \
    Astrid Nils Freya";

/// Surnames; the benchmark searches the people list by their first letters.
pub const SURNAMES: &str = "Lovelace Turing Hopper Torvalds Hamilton Ritchie Liskov Thompson \
    Allen Dijkstra Perlman Berners-Lee Knuth Lamarr Johnson Shannon McCarthy Wilson Easley \
    Kernighan Wirth Lamport Goldwasser Clarke Cerf Stroustrup Rossum Matsumoto Hejlsberg Gosling \
    Shaw Sammet Keller Kare Jones Sutherland Dahl Nygaard Milner Hoare Backus Floyd Tarjan Rivest \
    Adleman Diffie Hellman Merkle Shamir Okafor Mensah Haddad Rahman Novak Kowalski Petrov \
    Nakamura Tanaka Chen Wang Singh Patel Garcia Fernandez Lindqvist Johansson Müller Schmidt \
    Weber Dubois Rossi Costa Silva";

/// Department, share of the generated people (per mille), title, the one access level.
const DEPARTMENTS: &[(&str, u32, &str, &str)] = &[
    ("Engineering", 300, "Software Engineer", "Engineering Floor"),
    ("Sales", 170, "Account Executive", "Sales Floor"),
    ("Finance", 80, "Financial Analyst", "Finance Suite"),
    ("People", 50, "HR Partner", "HR Records"),
    ("IT", 60, "IT Support", "Server Room"),
    (
        "Facilities",
        60,
        "Facilities Coordinator",
        "Facilities Access",
    ),
    ("Security", 30, "Security Officer", "Security 24/7"),
    ("Logistics", 70, "Warehouse Associate", "Loading Dock"),
    ("Operations", 180, "Operations Associate", "Office Staff"),
];

/// The employee id of generated person `i` (from 0).
pub fn employee_id(i: usize) -> String {
    format!("B{:06}", i + 1)
}

/// A card UID that no other generated person has: a bijection of `i` on 48 bits.
fn card_uid(i: usize) -> String {
    let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4B) & 0xFFFF_FFFF_FFFF;
    format!("08{x:012X}")
}

fn add_people(
    conn: &mut SqliteConnection,
    spec: &Spec,
    now: NaiveDateTime,
    rng: &mut StdRng,
) -> Result<()> {
    let first: Vec<&str> = FIRST.split_whitespace().collect();
    let last: Vec<&str> = SURNAMES.split_whitespace().collect();
    let levels: HashMap<String, i64> = access_levels::table
        .select((access_levels::name, access_levels::id))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let mut level_of = Vec::new();
    for (department, _, _, level) in DEPARTMENTS {
        let id = levels
            .get(*level)
            .with_context(|| format!("the site has no access level named {level}"))?;
        level_of.push((*department, *id));
    }
    let total: u32 = DEPARTMENTS.iter().map(|d| d.1).sum();
    let started = Instant::now();
    conn.immediate_transaction(|conn| -> Result<()> {
        const CHUNK: usize = 1_000;
        let mut done = 0;
        while done < spec.people {
            let n = CHUNK.min(spec.people - done);
            let mut person_rows = Vec::with_capacity(n);
            let mut picked = Vec::with_capacity(n);
            for i in done..done + n {
                let mut roll = rng.random_range(0..total);
                let department = DEPARTMENTS
                    .iter()
                    .position(|d| {
                        if roll < d.1 {
                            true
                        } else {
                            roll -= d.1;
                            false
                        }
                    })
                    .unwrap_or(0);
                let (dept, _, title, _) = DEPARTMENTS[department];
                let name = format!(
                    "{} {}",
                    first[rng.random_range(0..first.len())],
                    last[rng.random_range(0..last.len())]
                );
                let person_type = match rng.random_range(0..100) {
                    0..90 => "employee",
                    90..98 => "contractor",
                    _ => "visitor",
                };
                let status = match rng.random_range(0..100) {
                    0..96 => "active",
                    96..98 => "suspended",
                    _ => "terminated",
                };
                picked.push((employee_id(i), level_of[department].1, i));
                person_rows.push((
                    people::employee_id.eq(employee_id(i)),
                    people::name.eq(name),
                    people::department.eq(dept),
                    people::title.eq(title),
                    people::person_type.eq(person_type),
                    people::status.eq(status),
                    people::created_at.eq(now),
                    people::updated_at.eq(now),
                ));
            }
            diesel::insert_into(people::table)
                .values(&person_rows)
                .execute(conn)?;
            let ids: HashMap<String, i64> = people::table
                .filter(people::employee_id.eq_any(picked.iter().map(|p| p.0.as_str())))
                .select((people::employee_id, people::id))
                .load::<(String, i64)>(conn)?
                .into_iter()
                .collect();
            let mut cards = Vec::with_capacity(n);
            let mut grants = Vec::with_capacity(n);
            for (employee, level, i) in &picked {
                let person = *ids
                    .get(employee)
                    .with_context(|| format!("{employee} was not inserted"))?;
                let status = match rng.random_range(0..100) {
                    0..97 => "active",
                    97..99 => "lost",
                    _ => "revoked",
                };
                cards.push((
                    credentials::person_id.eq(person),
                    credentials::kind.eq("card"),
                    credentials::card_uid.eq(card_uid(*i)),
                    credentials::status.eq(status),
                    credentials::created_at.eq(now),
                    credentials::updated_at.eq(now),
                ));
                grants.push((
                    entitlements::person_id.eq(person),
                    entitlements::level_id.eq(*level),
                    entitlements::granted_by.eq("console-bench"),
                    entitlements::granted_at.eq(now),
                    entitlements::justification.eq("department standard access"),
                ));
            }
            diesel::insert_into(credentials::table)
                .values(&cards)
                .execute(conn)?;
            diesel::insert_into(entitlements::table)
                .values(&grants)
                .execute(conn)?;
            done += n;
            eprint!(
                "\rpeople, each with a card and an access level: {done}/{}",
                spec.people
            );
        }
        Ok(())
    })?;
    eprintln!(" ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Makes events like the appliance records them, across every person and reader.
struct EventGenerator {
    /// Every person's id and first card's id.
    people: Vec<(i64, Option<i64>)>,
    /// Every reader's id and door.
    readers: Vec<(String, i64)>,
    next_seq: i64,
}

impl EventGenerator {
    fn load(conn: &mut SqliteConnection, next_seq: i64) -> Result<EventGenerator> {
        let mut first_card: HashMap<i64, i64> = HashMap::new();
        for (person, card) in credentials::table
            .select((credentials::person_id, credentials::id))
            .order(credentials::id)
            .load::<(i64, i64)>(conn)?
        {
            first_card.entry(person).or_insert(card);
        }
        let people: Vec<(i64, Option<i64>)> = people::table
            .select(people::id)
            .order(people::id)
            .load::<i64>(conn)?
            .into_iter()
            .map(|id| (id, first_card.get(&id).copied()))
            .collect();
        let readers: Vec<(String, i64)> = readers::table
            .select((readers::reader_id, readers::door_id))
            .order(readers::id)
            .load(conn)?;
        if people.is_empty() || readers.is_empty() {
            bail!("the site has no people or no readers to make events with");
        }
        Ok(EventGenerator {
            people,
            readers,
            next_seq: next_seq.max(0),
        })
    }

    fn make(&mut self, rng: &mut StdRng, at: DateTime<Utc>) -> Event {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (reader, door) = self.readers[rng.random_range(0..self.readers.len())].clone();
        let roll = rng.random_range(0..1000);
        let door_event = |kind| Event {
            reader_id: Some(reader.clone()),
            seq: Some(seq),
            reader_ts: Some(at),
            door_id: Some(door),
            ..Event::new(kind, at)
        };
        match roll {
            0..740 => {
                let (person, card) = self.people[rng.random_range(0..self.people.len())];
                let outcome = rng.random_range(0..100);
                let denied = outcome >= 89;
                let mut event = recorded_swipe(
                    usize::try_from(seq).unwrap_or(0),
                    at,
                    reader.clone(),
                    door,
                    person,
                    denied,
                );
                event.credential_id = card;
                if outcome == 99 {
                    event.result = Some("pin_required".to_owned());
                    event.deny_code = None;
                } else if denied {
                    let code = [
                        "schedule",
                        "no_entitlement",
                        "no_entitlement",
                        "inactive",
                        "expired",
                        "unknown_credential",
                    ][rng.random_range(0..6)];
                    event.deny_code = Some(code.to_owned());
                    event.command = event.command.map(|c| c.replace("grant", "deny"));
                    if code == "unknown_credential" {
                        event.person_id = None;
                        event.credential_id = None;
                        event.presented =
                            Some(format!("card:04{:012X}", rng.random::<u64>() >> 16));
                    }
                }
                event
            }
            740..860 => door_event(EventKind::DoorOpen),
            860..980 => door_event(EventKind::DoorClosed),
            980..995 => door_event(EventKind::Rex),
            995..998 => Event {
                door_id: Some(door),
                ..Event::new(EventKind::HeldOpen, at)
            },
            _ => Event {
                door_id: Some(door),
                ..Event::new(EventKind::ForcedOpen, at)
            },
        }
    }
}

/// Appends `n` events spread evenly over (`from`, `to`], oldest first, in big transactions.
fn fill(
    conn: &mut SqliteConnection,
    generator: &mut EventGenerator,
    rng: &mut StdRng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    n: u64,
    started: &Instant,
) -> Result<()> {
    let span_us = (to - from).num_microseconds().unwrap_or(0).max(1);
    let n_i = i64::try_from(n).context("too many events")?.max(1);
    let mut done: u64 = 0;
    while done < n {
        let count = EVENTS_PER_TRANSACTION.min(usize::try_from(n - done).unwrap_or(usize::MAX));
        let mut rows = Vec::with_capacity(count);
        for k in 0..count as u64 {
            let index = i64::try_from(done + k + 1).unwrap_or(i64::MAX);
            let offset = i128::from(span_us) * i128::from(index) / i128::from(n_i);
            let at = from + TimeDelta::microseconds(i64::try_from(offset).unwrap_or(span_us));
            rows.push(generator.make(rng, at));
        }
        conn.immediate_transaction(|conn| insert_rows(conn, &rows))?;
        done += count as u64;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\revents: {done}/{n} ({:.0}/s, {:.0} s)",
            done as f64 / secs,
            secs
        );
        let _ = std::io::stderr().flush();
    }
    Ok(())
}

/// The lowest and highest event id. The log's ids have no gaps (it is only appended to, and
/// only its oldest rows are deleted), so they also give its size without counting 10 million
/// rows.
pub fn event_ids(conn: &mut SqliteConnection) -> QueryResult<(i64, i64)> {
    let low: Option<i64> = events::table
        .select(diesel::dsl::min(events::id))
        .first(conn)?;
    let high: Option<i64> = events::table
        .select(diesel::dsl::max(events::id))
        .first(conn)?;
    Ok((low.unwrap_or(1), high.unwrap_or(0)))
}

/// Brings a reused log up to `now` at its own rate, then deletes its oldest events down to
/// the size of the spec; `None` when the log is too old to top up (rebuild instead).
fn top_up(path: &Path, spec: &Spec, now: DateTime<Utc>) -> Result<Option<u64>> {
    // Migrations added since the build are applied as an upgrade would; one that fails (an
    // edited migration) makes the database unusable, and it is rebuilt.
    {
        let pool = gatehouse::store::open(&format!("sqlite://{}", path.display()), 1)?;
        gatehouse::store::migrate(&mut *pool.get()?)?;
    }
    let mut conn = bulk_connection(path)?;
    let generated: i64 = people::table
        .filter(people::employee_id.like("B%"))
        .count()
        .get_result(&mut conn)?;
    if usize::try_from(generated).ok() != Some(spec.people) {
        bail!("it holds {generated} generated people, not {}", spec.people);
    }
    let newest: Option<NaiveDateTime> = events::table
        .select(diesel::dsl::max(events::at))
        .first(&mut conn)?;
    let newest = newest.context("the log is empty")?.and_utc();
    let span = TimeDelta::days(i64::from(spec.days));
    if now - newest >= span / 2 {
        return Ok(None);
    }
    let gap = (now - newest).num_microseconds().unwrap_or(0).max(0);
    let span_us = span.num_microseconds().unwrap_or(1).max(1);
    let missing =
        u64::try_from(i128::from(gap) * i128::from(spec.events) / i128::from(span_us)).unwrap_or(0);
    if missing > 0 {
        // The generator numbers events in order; the newest thousand hold the highest `seq`
        // (no index leads with `seq`: max() over the table would read all of it).
        let recent_seqs: Vec<Option<i64>> = events::table
            .select(events::seq)
            .order(events::id.desc())
            .limit(1_000)
            .load(&mut conn)?;
        let max_seq = recent_seqs.into_iter().flatten().max().unwrap_or(0);
        let mut generator = EventGenerator::load(&mut conn, max_seq + 1)?;
        // Seeded by the time, so that each top-up differs from the last.
        let mut rng = StdRng::seed_from_u64(spec.seed ^ now.timestamp().unsigned_abs());
        let started = Instant::now();
        eprintln!("bringing the cached log up to now: {missing} events");
        fill(
            &mut conn,
            &mut generator,
            &mut rng,
            newest,
            now,
            missing,
            &started,
        )?;
        eprintln!();
    }
    let (oldest, newest_id) = event_ids(&mut conn)?;
    let keep = i64::try_from(spec.events)?;
    let cutoff = newest_id - keep; // delete ids up to and including this one
    let mut deleted = 0;
    let mut low = oldest;
    // In chunks, so that each transaction stays small.
    while low <= cutoff {
        let high = low.saturating_add(99_999).min(cutoff);
        deleted += conn.immediate_transaction(|conn| {
            diesel::delete(events::table.filter(events::id.between(low, high))).execute(conn)
        })?;
        low = high + 1;
    }
    if deleted > 0 {
        eprintln!("deleted the {deleted} oldest events");
    }
    let (oldest, newest_id) = event_ids(&mut conn)?;
    if newest_id - oldest + 1 != keep {
        bail!(
            "it holds events {oldest}..{newest_id}, not {} of them",
            spec.events
        );
    }
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "PRAGMA wal_checkpoint(TRUNCATE);",
    )?;
    Ok(Some(missing))
}
