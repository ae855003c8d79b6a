//! Swipe counts of the history layer: swipes counted in SQL per local hour or day of a
//! site, folded into a weekday × hour grid (heatmaps) or a gap-free series (traffic).
//! `store::history` exposes them with a reader's `ReadScope`; the console draws them.
//!
//! How it is counted, and why it stays fast with tens of millions of events:
//!
//! - Rust cuts the window into buckets, each the UTC stretch of one local hour (or day) of
//!   the site, walking the window in 15-minute steps (every offset in use is a multiple of
//!   15 minutes). So DST changes, half-hour zones (India) and 23- or 25-hour days come out
//!   right without time zone rules in SQL, and no event row ever reaches Rust.
//! - One query counts every bucket: the bucket boundaries go in as one parameter (a JSON
//!   array on SQLite, a timestamp array on PostgreSQL), and each bucket is a range count on
//!   an index: `events_result_at` for the whole site (it covers the query, so no table row
//!   is read), `events_person_at` or `events_door_at` for a person or a door (one range
//!   per door for the doors of one site, which reads each swipe's row). Range counts
//!   per bucket avoid a GROUP BY over a computed hour, whose sort cost several times more
//!   on a site's month of swipes.
//! - A swipe counts when it was decided: `granted` or `denied`. A `pin_required` answer is
//!   not counted: it is the first half of a card+PIN swipe, whose second half (the card
//!   again, with the PIN) is.
//! - A window longer than [`MAX_BUCKETS`] buckets keeps its newest buckets.

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use diesel::QueryResult;
use diesel::sql_types::BigInt;

use crate::clock::stored;
use crate::store::DbConnection;

/// The most buckets one chart counts: 13 weeks of hours, or about six years of days. It
/// bounds both the query's work and the parameter that carries the boundaries.
pub const MAX_BUCKETS: usize = 24 * 7 * 13;

/// Every UTC offset in use is a whole number of quarter hours, so local hours and days
/// begin on a quarter hour in UTC.
const STEP: TimeDelta = TimeDelta::minutes(15);
const STEP_SECONDS: i64 = 15 * 60;

/// Whose swipes a chart counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwipesOf {
    /// Every door of the appliance.
    Site,
    Person(i64),
    Door(i64),
    /// Swipes at these doors: one site's, where sites keep different time.
    Doors(Vec<i64>),
    /// One person's swipes at these doors (the doors of one timezone), or with `except`,
    /// at any other door or none (so that a door since deleted is not lost).
    PersonAt {
        person: i64,
        doors: Vec<i64>,
        except: bool,
    },
}

/// How long one bar of a traffic chart is, on the site's wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

/// Swipes per local weekday and hour of day, Monday first, summed over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeekGrid {
    /// All decided swipes, granted and denied.
    pub counts: [[u32; 24]; 7],
    /// The denied ones among `counts`.
    pub denied: [[u32; 24]; 7],
}

impl WeekGrid {
    /// The largest count of any cell (0 for an empty grid).
    pub fn max(&self) -> u32 {
        self.counts.iter().flatten().copied().max().unwrap_or(0)
    }

    /// Adds another grid's counts cell by cell: a person's swipes counted on each
    /// site's clock make one grid of local hours.
    pub fn add(&mut self, other: &WeekGrid) {
        for (mine, theirs) in [
            (&mut self.counts, &other.counts),
            (&mut self.denied, &other.denied),
        ] {
            for (row, other_row) in mine.iter_mut().zip(theirs) {
                for (cell, n) in row.iter_mut().zip(other_row) {
                    *cell = cell.saturating_add(*n);
                }
            }
        }
    }

    /// Every swipe in the grid.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().map(|&n| u64::from(n)).sum()
    }

    /// The busiest cell as (weekday from Monday = 0, hour, count); the earliest in the
    /// week wins a tie. None when the grid is empty.
    pub fn busiest(&self) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        for (day, hours) in self.counts.iter().enumerate() {
            for (hour, &n) in hours.iter().enumerate() {
                if n > 0 && best.is_none_or(|(_, _, most)| n > most) {
                    best = Some((day, hour, n));
                }
            }
        }
        best
    }
}

/// One bar of a traffic chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficPoint {
    /// When the bucket's local hour or day begins, even if the window begins later in it
    /// (only swipes inside the window are counted).
    pub start: DateTime<Utc>,
    pub granted: u32,
    pub denied: u32,
}

/// Swipes from `from` (inclusive) to `until` (exclusive) per local weekday and hour of the
/// site's time zone `tz`.
pub(super) fn week_grid(
    conn: &mut DbConnection,
    swipes: SwipesOf,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    tz: Tz,
) -> QueryResult<WeekGrid> {
    let spans = local_spans(from, until, tz, Bucket::Hour);
    let counted = count_spans(conn, swipes, &spans)?;
    let mut grid = WeekGrid::default();
    for (span, (granted, denied)) in spans.iter().zip(counted) {
        let day = span.local_start.weekday().num_days_from_monday() as usize;
        let hour = span.local_start.hour() as usize;
        // The hour repeated when the clocks go back is two spans in one cell.
        grid.counts[day][hour] = grid.counts[day][hour]
            .saturating_add(granted)
            .saturating_add(denied);
        grid.denied[day][hour] = grid.denied[day][hour].saturating_add(denied);
    }
    Ok(grid)
}

/// Granted and denied swipes per local hour or day of a scope (a door, a site's doors, the
/// whole site), with a point for every bucket of the window, empty ones included.
pub(super) fn traffic(
    conn: &mut DbConnection,
    swipes: SwipesOf,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    bucket: Bucket,
    tz: Tz,
) -> QueryResult<Vec<TrafficPoint>> {
    let spans = local_spans(from, until, tz, bucket);
    let counted = count_spans(conn, swipes, &spans)?;
    Ok(spans
        .iter()
        .zip(counted)
        .enumerate()
        .map(|(i, (span, (granted, denied)))| TrafficPoint {
            // Only the first span can start inside its bucket (where the window starts).
            start: if i == 0 {
                bucket_start(span.start, tz, bucket)
            } else {
                span.start
            },
            granted,
            denied,
        })
        .collect())
}

/// A stretch of UTC time inside one local hour or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: DateTime<Utc>,
    stop: DateTime<Utc>,
    /// The local wall-clock time at which its hour or day begins.
    local_start: NaiveDateTime,
    /// The UTC offset in seconds, for hours: the hour repeated when the clocks go back is
    /// two buckets, so every hourly bar is an hour long.
    offset: i32,
}

/// Which local hour or day an instant falls in: its wall-clock start and (for hours) the
/// offset in force.
fn bucket_of(at: DateTime<Utc>, tz: Tz, bucket: Bucket) -> (NaiveDateTime, i32) {
    let local = at.with_timezone(&tz);
    let wall = local.naive_local();
    match bucket {
        Bucket::Hour => (
            wall.date().and_hms_opt(wall.hour(), 0, 0).unwrap_or(wall),
            local.offset().fix().local_minus_utc(),
        ),
        Bucket::Day => (wall.date().and_time(chrono::NaiveTime::MIN), 0),
    }
}

fn floor_to_step(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(STEP_SECONDS), 0).unwrap_or(at)
}

/// The UTC instant at which the local hour or day holding `at` begins.
fn bucket_start(at: DateTime<Utc>, tz: Tz, bucket: Bucket) -> DateTime<Utc> {
    let which = bucket_of(at, tz, bucket);
    let mut start = floor_to_step(at);
    // A day is at most 25 hours: 100 quarter hours (and a few to spare).
    for _ in 0..104 {
        match start.checked_sub_signed(STEP) {
            Some(earlier) if bucket_of(earlier, tz, bucket) == which => start = earlier,
            _ => break,
        }
    }
    start
}

/// The window cut into local hours or days, in order and without gaps; the first and last
/// are cut short by the window. At most `MAX_BUCKETS`, the newest kept.
fn local_spans(from: DateTime<Utc>, until: DateTime<Utc>, tz: Tz, bucket: Bucket) -> Vec<Span> {
    let longest = match bucket {
        Bucket::Hour => TimeDelta::hours(1),
        Bucket::Day => TimeDelta::hours(25),
    };
    // Walk no further back than the buckets that will be kept need.
    let limit = i32::try_from(MAX_BUCKETS + 1).unwrap_or(i32::MAX);
    let from = until
        .checked_sub_signed(longest * limit)
        .map_or(from, |earliest| from.max(earliest));
    let mut spans: Vec<Span> = Vec::new();
    let mut at = floor_to_step(from);
    while at < until {
        let Some(next) = at.checked_add_signed(STEP) else {
            break;
        };
        let (local_start, offset) = bucket_of(at, tz, bucket);
        let (start, stop) = (at.max(from), next.min(until));
        match spans.last_mut() {
            Some(last) if last.local_start == local_start && last.offset == offset => {
                last.stop = stop;
            }
            _ => spans.push(Span {
                start,
                stop,
                local_start,
                offset,
            }),
        }
        at = next;
    }
    let surplus = spans.len().saturating_sub(MAX_BUCKETS);
    spans.drain(..surplus);
    spans
}

/// One bucket's counts as the queries return them.
#[derive(diesel::QueryableByName)]
struct BucketCount {
    #[diesel(sql_type = BigInt)]
    bucket: i64,
    #[diesel(sql_type = BigInt)]
    granted: i64,
    #[diesel(sql_type = BigInt)]
    denied: i64,
}

/// The buckets as (index, start, stop) rows, from the JSON array of their boundaries.
const SQLITE_BUCKETS: &str = "WITH buckets(bucket, bucket_start, bucket_stop) AS (\
     SELECT key, value, lead(value) OVER (ORDER BY key) FROM json_each(?1))";

// Only swipes carry a result (see `event_log::Event::result`), so the whole site's
// counts need no `kind` test and read nothing but the covering index `events_result_at`.
const SQLITE_SITE: &str = "SELECT bucket, \
     (SELECT count(*) FROM events WHERE result = 'granted' \
        AND at >= buckets.bucket_start AND at < buckets.bucket_stop) AS granted, \
     (SELECT count(*) FROM events WHERE result = 'denied' \
        AND at >= buckets.bucket_start AND at < buckets.bucket_stop) AS denied \
     FROM buckets WHERE bucket_stop IS NOT NULL";

/// A scope's swipes in each bucket, given the condition that picks them (see
/// [`swipes_condition`]). Correlated subqueries fix the plan (the buckets outside, an index
/// range inside) whatever statistics the planner has.
fn sqlite_scoped(condition: &str) -> String {
    format!(
        "SELECT bucket, \
         (SELECT count(*) FROM events WHERE {condition} \
            AND at >= buckets.bucket_start AND at < buckets.bucket_stop \
            AND +kind = 'swipe' AND +result = 'granted') AS granted, \
         (SELECT count(*) FROM events WHERE {condition} \
            AND at >= buckets.bucket_start AND at < buckets.bucket_stop \
            AND +kind = 'swipe' AND +result = 'denied') AS denied \
         FROM buckets WHERE bucket_stop IS NOT NULL"
    )
}

/// What picks a scope's swipes, beside the bucket's time range: the person's or door's
/// indexed column, then anything else behind `unindexed` (SQLite's unary `+`, which keeps
/// it from choosing the kind, result or door index over the person's or door's, which
/// narrow far more). Ids are written into the SQL as the integers they are (nothing to
/// escape), since a list of doors has no fixed number of parameters. None for the whole
/// site.
fn swipes_condition(swipes: &SwipesOf, unindexed: &str) -> Option<String> {
    let list = |doors: &[i64]| {
        doors
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let among = |column: &str, doors: &[i64]| {
        if doors.is_empty() {
            "FALSE".to_owned()
        } else {
            format!("{column} IN ({})", list(doors))
        }
    };
    Some(match swipes {
        SwipesOf::Site => return None,
        SwipesOf::Person(id) => format!("person_id = {id}"),
        SwipesOf::Door(id) => format!("door_id = {id}"),
        SwipesOf::Doors(doors) => among("door_id", doors),
        SwipesOf::PersonAt {
            person,
            doors,
            except,
        } => {
            let door = format!("{unindexed}door_id");
            match (except, doors.is_empty()) {
                (false, _) => format!("person_id = {person} AND {}", among(&door, doors)),
                (true, true) => format!("person_id = {person}"),
                (true, false) => format!(
                    "person_id = {person} AND ({door} IS NULL OR {door} NOT IN ({}))",
                    list(doors)
                ),
            }
        }
    })
}

/// The buckets from the array of their boundaries; PostgreSQL counts both results in one
/// pass over each bucket's index range.
#[cfg(feature = "postgres")]
const POSTGRES_BUCKETS: &str = "WITH buckets AS (\
     SELECT n - 1 AS bucket, bucket_start, lead(bucket_start) OVER (ORDER BY n) AS bucket_stop \
     FROM unnest($1::timestamp[]) WITH ORDINALITY AS b(bucket_start, n)) \
     SELECT bucket, c.granted, c.denied FROM buckets CROSS JOIN LATERAL (\
     SELECT count(*) FILTER (WHERE result = 'granted') AS granted, \
            count(*) FILTER (WHERE result = 'denied') AS denied \
     FROM events WHERE at >= buckets.bucket_start AND at < buckets.bucket_stop";

#[cfg(feature = "postgres")]
const POSTGRES_SITE: &str = " AND result IN ('granted', 'denied')) c WHERE bucket_stop IS NOT NULL";

/// A scope's swipes in each bucket on PostgreSQL, given its [`swipes_condition`].
#[cfg(feature = "postgres")]
fn postgres_scoped(condition: &str) -> String {
    format!(
        "{POSTGRES_BUCKETS} AND {condition} AND kind = 'swipe' \
         AND result IN ('granted', 'denied')) c WHERE bucket_stop IS NOT NULL"
    )
}

/// Granted and denied swipes in each span, in the spans' order.
fn count_spans(
    conn: &mut DbConnection,
    swipes: SwipesOf,
    spans: &[Span],
) -> QueryResult<Vec<(u32, u32)>> {
    use diesel::RunQueryDsl;
    use diesel::sql_types::Text;

    let Some(first) = spans.first() else {
        return Ok(Vec::new());
    };
    // The spans are contiguous: their starts and the last stop are all the boundaries.
    let boundaries: Vec<NaiveDateTime> = std::iter::once(first.start)
        .chain(spans.iter().map(|s| s.stop))
        .map(stored)
        .collect();
    let rows: Vec<BucketCount> = match conn {
        DbConnection::Sqlite(conn) => {
            // Written exactly as diesel writes timestamps, so that SQLite's text
            // comparison orders them as the times they are.
            let texts: Vec<String> = boundaries
                .iter()
                .map(|t| t.format("%F %T%.f").to_string())
                .collect();
            let json = serde_json::to_string(&texts)
                .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
            let sql = match swipes_condition(&swipes, "+") {
                None => format!("{SQLITE_BUCKETS} {SQLITE_SITE}"),
                Some(condition) => format!("{SQLITE_BUCKETS} {}", sqlite_scoped(&condition)),
            };
            diesel::sql_query(sql).bind::<Text, _>(json).load(conn)?
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(conn) => {
            use diesel::sql_types::{Array, Timestamp};
            let sql = match swipes_condition(&swipes, "") {
                None => format!("{POSTGRES_BUCKETS}{POSTGRES_SITE}"),
                Some(condition) => postgres_scoped(&condition),
            };
            use diesel::Connection;
            use diesel::connection::SimpleConnection;
            let query = diesel::sql_query(sql).bind::<Array<Timestamp>, _>(boundaries);
            conn.transaction(|conn| {
                // The plan's estimated cost passes the JIT threshold, and compiling it took
                // longer (about 150 ms) than running it over a month of 10 million events.
                conn.batch_execute("SET LOCAL jit = off")?;
                query.load(conn)
            })?
        }
    };
    let mut counts = vec![(0, 0); spans.len()];
    for row in rows {
        let slot = usize::try_from(row.bucket)
            .ok()
            .and_then(|i| counts.get_mut(i));
        if let Some(slot) = slot {
            *slot = (saturate(row.granted), saturate(row.denied));
        }
    }
    Ok(counts)
}

fn saturate(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Europe::Berlin;

    use super::*;
    use crate::store::event_log::{Event, EventKind, SeqMarks, write_batch};
    use crate::store::history::test_databases::databases;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        at(Tz::UTC, y, mo, d, h, mi)
    }

    fn swipe(at: DateTime<Utc>, person: Option<i64>, door: i64, result: &str) -> Event {
        Event {
            person_id: person,
            door_id: Some(door),
            result: Some(result.to_owned()),
            ..Event::new(EventKind::Swipe, at)
        }
    }

    fn record(conn: &mut DbConnection, events: &[Event]) {
        write_batch(conn, events, &mut SeqMarks::default()).unwrap();
    }

    /// The cells that hold anything, as (weekday from Monday = 0, hour, count).
    fn cells(grid: &WeekGrid) -> Vec<(usize, u32, u32)> {
        let mut found = Vec::new();
        for (day, hours) in grid.counts.iter().enumerate() {
            for (hour, &n) in (0u32..).zip(hours) {
                if n > 0 {
                    found.push((day, hour, n));
                }
            }
        }
        found
    }

    const TUESDAY: usize = 1;
    const SUNDAY: usize = 6;

    #[test]
    fn a_swipe_lands_in_its_local_weekday_and_hour_across_dst_changes() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            // 09:30 on the Tuesdays before (CET, 08:30 UTC) and after (CEST, 07:30 UTC) the
            // clocks went forward on 29 March 2026; then 02:30 twice in the night the clocks
            // went back, 25 October (00:30 and 01:30 UTC).
            record(
                conn,
                &[
                    swipe(at(Berlin, 2026, 3, 24, 9, 30), Some(1), 10, "granted"),
                    swipe(at(Berlin, 2026, 3, 31, 9, 30), Some(1), 10, "denied"),
                    swipe(utc(2026, 10, 25, 0, 30), Some(1), 10, "granted"),
                    swipe(utc(2026, 10, 25, 1, 30), Some(1), 10, "granted"),
                ],
            );
            let spring = week_grid(
                conn,
                SwipesOf::Site,
                at(Berlin, 2026, 3, 23, 0, 0),
                at(Berlin, 2026, 4, 6, 0, 0),
                Berlin,
            )
            .unwrap();
            assert_eq!(cells(&spring), [(TUESDAY, 9, 2)], "{}", db.backend);
            assert_eq!(spring.denied[TUESDAY][9], 1, "{}", db.backend);
            assert_eq!((spring.max(), spring.total()), (2, 2), "{}", db.backend);
            assert_eq!(spring.busiest(), Some((TUESDAY, 9, 2)), "{}", db.backend);

            let autumn = week_grid(
                conn,
                SwipesOf::Site,
                at(Berlin, 2026, 10, 19, 0, 0),
                at(Berlin, 2026, 10, 26, 0, 0),
                Berlin,
            )
            .unwrap();
            assert_eq!(cells(&autumn), [(SUNDAY, 2, 2)], "{}", db.backend);
        }
    }

    #[test]
    fn half_hour_time_zones_count_in_their_own_hours() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            // 09:10 in India is 03:40 UTC: a UTC hour bucket would have put it at 08:30.
            record(
                conn,
                &[
                    swipe(at(Kolkata, 2026, 11, 24, 9, 10), Some(1), 10, "granted"),
                    swipe(at(Kolkata, 2026, 11, 24, 8, 50), Some(1), 10, "granted"),
                ],
            );
            let grid = week_grid(
                conn,
                SwipesOf::Site,
                at(Kolkata, 2026, 11, 23, 0, 0),
                at(Kolkata, 2026, 11, 30, 0, 0),
                Kolkata,
            )
            .unwrap();
            assert_eq!(
                cells(&grid),
                [(TUESDAY, 8, 1), (TUESDAY, 9, 1)],
                "{}",
                db.backend
            );
        }
    }

    #[test]
    fn scopes_count_only_their_own_decided_swipes() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            let t = utc(2026, 11, 24, 8, 0);
            let minutes = |m| t + TimeDelta::minutes(m);
            record(
                conn,
                &[
                    swipe(minutes(1), Some(1), 10, "granted"),
                    swipe(minutes(2), Some(1), 10, "granted"),
                    swipe(minutes(3), Some(2), 20, "denied"),
                    // An unknown card: nobody's, but the door's and the site's.
                    swipe(minutes(4), None, 20, "denied"),
                    // Asked for a PIN: the PIN entry that follows is the swipe counted.
                    swipe(minutes(5), Some(1), 10, "pin_required"),
                    Event {
                        door_id: Some(10),
                        ..Event::new(EventKind::DoorOpen, minutes(6))
                    },
                ],
            );
            let (from, until) = (utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0));
            let total = |conn: &mut DbConnection, scope| {
                week_grid(conn, scope, from, until, Berlin).unwrap().total()
            };
            assert_eq!(total(conn, SwipesOf::Site), 4, "{}", db.backend);
            assert_eq!(total(conn, SwipesOf::Person(1)), 2, "{}", db.backend);
            assert_eq!(total(conn, SwipesOf::Person(2)), 1, "{}", db.backend);
            assert_eq!(total(conn, SwipesOf::Person(3)), 0, "{}", db.backend);
            assert_eq!(total(conn, SwipesOf::Door(10)), 2, "{}", db.backend);
            assert_eq!(total(conn, SwipesOf::Door(20)), 2, "{}", db.backend);
            let door_20 = week_grid(conn, SwipesOf::Door(20), from, until, Berlin).unwrap();
            assert_eq!(door_20.denied[TUESDAY][9], 2, "{}", db.backend);

            let site = traffic(conn, SwipesOf::Site, from, until, Bucket::Day, Berlin).unwrap();
            let sums = site
                .iter()
                .fold((0, 0), |(g, d), p| (g + p.granted, d + p.denied));
            assert_eq!(sums, (2, 2), "{}", db.backend);
            let door = traffic(conn, SwipesOf::Door(10), from, until, Bucket::Day, Berlin).unwrap();
            let sums = door
                .iter()
                .fold((0, 0), |(g, d), p| (g + p.granted, d + p.denied));
            assert_eq!(sums, (2, 0), "{}", db.backend);
        }
    }

    #[test]
    fn a_sites_doors_and_a_persons_swipes_at_some_doors_or_elsewhere_are_scopes() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            let t = utc(2026, 11, 24, 8, 0);
            let minutes = |m| t + TimeDelta::minutes(m);
            record(
                conn,
                &[
                    swipe(minutes(1), Some(1), 10, "granted"),
                    swipe(minutes(2), Some(1), 20, "granted"),
                    swipe(minutes(3), Some(1), 30, "denied"),
                    swipe(minutes(4), Some(2), 20, "denied"),
                    // A swipe with no door: counted where doors are excepted.
                    Event {
                        person_id: Some(1),
                        result: Some("granted".to_owned()),
                        ..Event::new(EventKind::Swipe, minutes(5))
                    },
                ],
            );
            let (from, until) = (utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0));
            let total = |conn: &mut DbConnection, scope| {
                week_grid(conn, scope, from, until, Berlin).unwrap().total()
            };
            let at = |doors: &[i64], except| SwipesOf::PersonAt {
                person: 1,
                doors: doors.to_vec(),
                except,
            };
            assert_eq!(
                total(conn, SwipesOf::Doors(vec![10, 20])),
                3,
                "{}",
                db.backend
            );
            assert_eq!(total(conn, SwipesOf::Doors(vec![])), 0, "{}", db.backend);
            assert_eq!(total(conn, at(&[20, 30], false)), 2, "{}", db.backend);
            assert_eq!(total(conn, at(&[20, 30], true)), 2, "{}", db.backend);
            assert_eq!(total(conn, at(&[], false)), 0, "{}", db.backend);
            assert_eq!(total(conn, at(&[], true)), 4, "{}", db.backend);
            let site = traffic(
                conn,
                SwipesOf::Doors(vec![20, 30]),
                from,
                until,
                Bucket::Day,
                Berlin,
            )
            .unwrap();
            let sums = site
                .iter()
                .fold((0, 0), |(g, d), p| (g + p.granted, d + p.denied));
            assert_eq!(sums, (1, 2), "{}", db.backend);
        }
    }

    #[test]
    fn the_window_counts_from_its_start_up_to_but_not_at_its_end() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            // Bounds that are not on a quarter hour, with fractions of a second.
            let from = utc(2026, 11, 24, 9, 7) + TimeDelta::milliseconds(250);
            let until = utc(2026, 11, 24, 11, 52) + TimeDelta::milliseconds(250);
            let micro = TimeDelta::microseconds(1);
            record(
                conn,
                &[
                    swipe(from - micro, Some(1), 10, "granted"),
                    swipe(from, Some(1), 10, "granted"),
                    swipe(until - micro, Some(1), 10, "granted"),
                    swipe(until, Some(1), 10, "granted"),
                ],
            );
            let grid = week_grid(conn, SwipesOf::Person(1), from, until, Tz::UTC).unwrap();
            assert_eq!(
                cells(&grid),
                [(TUESDAY, 9, 1), (TUESDAY, 11, 1)],
                "{}",
                db.backend
            );
            let points =
                traffic(conn, SwipesOf::Door(10), from, until, Bucket::Hour, Tz::UTC).unwrap();
            let counts: Vec<u32> = points.iter().map(|p| p.granted).collect();
            assert_eq!(counts, [1, 0, 1], "{}", db.backend);
            // Each point starts at its hour, the first too, though the window starts later.
            assert_eq!(points[0].start, utc(2026, 11, 24, 9, 0), "{}", db.backend);
        }
    }

    #[test]
    fn traffic_has_a_point_for_every_local_day_even_empty_ones() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            record(
                conn,
                &[
                    // Monday 23:30 in Berlin, 22:30 UTC.
                    swipe(at(Berlin, 2026, 11, 23, 23, 30), Some(1), 10, "granted"),
                    // Thursday 00:30 in Berlin, still Wednesday in UTC.
                    swipe(at(Berlin, 2026, 11, 26, 0, 30), Some(1), 10, "denied"),
                ],
            );
            let points = traffic(
                conn,
                SwipesOf::Site,
                at(Berlin, 2026, 11, 23, 0, 0),
                at(Berlin, 2026, 11, 28, 0, 0),
                Bucket::Day,
                Berlin,
            )
            .unwrap();
            let expected: Vec<TrafficPoint> =
                [(23, 1, 0), (24, 0, 0), (25, 0, 0), (26, 0, 1), (27, 0, 0)]
                    .into_iter()
                    .map(|(day, granted, denied)| TrafficPoint {
                        start: at(Berlin, 2026, 11, day, 0, 0),
                        granted,
                        denied,
                    })
                    .collect();
            assert_eq!(points, expected, "{}", db.backend);
        }
    }

    #[test]
    fn traffic_follows_the_clock_change() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            record(
                conn,
                &[
                    // 23:30 on the 25-hour Sunday.
                    swipe(at(Berlin, 2026, 10, 25, 23, 30), Some(1), 10, "granted"),
                    // The second 02:30 of that night (CET).
                    swipe(utc(2026, 10, 25, 1, 30), Some(1), 10, "granted"),
                ],
            );
            let days = traffic(
                conn,
                SwipesOf::Site,
                at(Berlin, 2026, 10, 24, 0, 0),
                at(Berlin, 2026, 10, 27, 0, 0),
                Bucket::Day,
                Berlin,
            )
            .unwrap();
            let starts: Vec<_> = days.iter().map(|p| p.start).collect();
            assert_eq!(
                starts,
                [24, 25, 26].map(|d| at(Berlin, 2026, 10, d, 0, 0)),
                "{}",
                db.backend
            );
            let counts: Vec<u32> = days.iter().map(|p| p.granted).collect();
            assert_eq!(counts, [0, 2, 0], "{}", db.backend);

            // From midnight to 04:00 local that night is five hours, 02:00 twice.
            let hours = traffic(
                conn,
                SwipesOf::Site,
                at(Berlin, 2026, 10, 25, 0, 0),
                at(Berlin, 2026, 10, 25, 4, 0),
                Bucket::Hour,
                Berlin,
            )
            .unwrap();
            let local: Vec<String> = hours
                .iter()
                .map(|p| p.start.with_timezone(&Berlin).format("%H:%M%z").to_string())
                .collect();
            assert_eq!(
                local,
                [
                    "00:00+0200",
                    "01:00+0200",
                    "02:00+0200",
                    "02:00+0100",
                    "03:00+0100"
                ],
                "{}",
                db.backend
            );
            let counts: Vec<u32> = hours.iter().map(|p| p.granted).collect();
            assert_eq!(counts, [0, 0, 0, 1, 0], "{}", db.backend);
        }
    }

    #[test]
    fn long_windows_keep_their_newest_buckets() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            let until = utc(2026, 11, 24, 12, 0);
            record(
                conn,
                &[swipe(until - TimeDelta::minutes(1), Some(1), 10, "granted")],
            );
            let from = until - TimeDelta::days(365);
            let points = traffic(conn, SwipesOf::Site, from, until, Bucket::Hour, Berlin).unwrap();
            assert_eq!(points.len(), MAX_BUCKETS, "{}", db.backend);
            assert_eq!(
                points.last().map(|p| (p.start, p.granted)),
                Some((utc(2026, 11, 24, 11, 0), 1)),
                "{}",
                db.backend
            );
            let days = traffic(conn, SwipesOf::Site, from, until, Bucket::Day, Berlin).unwrap();
            assert_eq!(days.len(), 366, "{}", db.backend);
            assert_eq!(
                week_grid(conn, SwipesOf::Site, from, until, Berlin)
                    .unwrap()
                    .total(),
                1
            );
        }
    }

    #[test]
    fn an_empty_window_asks_nothing() {
        for db in databases() {
            let conn = &mut db.pool.get().unwrap();
            let t = utc(2026, 11, 24, 12, 0);
            assert_eq!(
                week_grid(conn, SwipesOf::Site, t, t, Berlin).unwrap(),
                WeekGrid::default()
            );
            assert!(
                traffic(
                    conn,
                    SwipesOf::Site,
                    t,
                    t - TimeDelta::hours(1),
                    Bucket::Day,
                    Berlin
                )
                .unwrap()
                .is_empty()
            );
        }
    }

    #[test]
    fn spans_cover_the_window_without_gaps_in_every_kind_of_zone() {
        let zones = [
            Berlin,
            Kolkata,
            chrono_tz::Australia::Lord_Howe,
            chrono_tz::Asia::Kathmandu,
        ];
        let from = utc(2026, 3, 20, 7, 3);
        let until = utc(2026, 4, 20, 7, 3);
        for tz in zones {
            for bucket in [Bucket::Hour, Bucket::Day] {
                let spans = local_spans(from, until, tz, bucket);
                assert_eq!(spans.first().map(|s| s.start), Some(from), "{tz}");
                assert_eq!(spans.last().map(|s| s.stop), Some(until), "{tz}");
                for pair in spans.windows(2) {
                    assert_eq!(pair[0].stop, pair[1].start, "{tz}");
                }
                for span in &spans {
                    let local = span.start.with_timezone(&tz).naive_local();
                    assert_eq!(
                        bucket_of(span.start, tz, bucket).0,
                        span.local_start,
                        "{tz}"
                    );
                    assert!(local >= span.local_start, "{tz}: {local} {span:?}");
                    if bucket == Bucket::Hour {
                        assert!(
                            span.stop - span.start <= TimeDelta::hours(1),
                            "{tz}: {span:?}"
                        );
                    }
                }
            }
        }
    }
}
