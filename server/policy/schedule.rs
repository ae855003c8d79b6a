//! Schedule windows (a cron start plus a duration on the site's wall clock) and holidays:
//! parsing with admin-readable errors, the exact evaluator, and the UTC open intervals.
//!
//! Semantics, as an admin would read a window such as `0 22 * * Fri` + 600 minutes:
//!
//! * Cron fields are read on the site's local wall clock. The standard 5-field form
//!   `minute hour day-of-month month day-of-week` is accepted with the usual day-of-week
//!   numbers (0 or 7 = Sunday, 1 = Monday … 6 = Saturday) or names (`Mon-Fri`). The `cron`
//!   crate's own 6/7-field form (leading seconds, optional trailing year) is accepted as
//!   the crate defines it, where day-of-week numbers run 1 = Sunday … 7 = Saturday.
//!   `@daily`, `@weekly`, … shorthands are accepted too.
//! * When both day-of-month and day-of-week are restricted, both must match (the `cron`
//!   crate's rule; classic Unix cron would accept either).
//! * The end is the start's wall-clock time plus the duration, so `22:00` + 600 minutes
//!   ends at `08:00` local the next morning even across a DST change (the window is then
//!   9 or 11 real hours long).
//! * A start that falls in a spring-forward gap does not happen: the `cron` crate skips
//!   local times that do not exist, so a `30 2 * * *` window does not open on that night.
//!   A start in an autumn fold (a local time that happens twice) opens at the first
//!   occurrence; both occurrences share one wall-clock end.
//! * An end that falls in a gap is the moment the clocks jump (the window closes once the
//!   wall clock has passed its end); an end in a fold is its second, later occurrence.
//! * With [`HolidayRule::Closed`], a schedule is closed for every instant whose local date
//!   is a holiday of the site, from local midnight to local midnight.
//! * Windows start at whole minutes; durations run from 1 minute to 7 days.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::model::{HolidayRule, Schedule};

/// Longest window: a week, so a schedule can express "all week" with one weekly start.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;

/// The largest clock change (fold or gap) the evaluators allow for. Real zones change by
/// at most an hour today (30 minutes on Lord Howe Island); double summer time was two.
const MAX_CLOCK_SHIFT_S: i64 = 3 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "the time window '{expression}' is not a valid cron expression: {reason}. Expected \
         'minute hour day-of-month month day-of-week', for example '0 8 * * Mon-Fri'"
    )]
    InvalidCron { expression: String, reason: String },
    #[error(
        "the time window '{expression}' lasts {minutes} minutes; a window must last from \
         1 minute to 7 days ({MAX_WINDOW_MINUTES} minutes)"
    )]
    Duration { expression: String, minutes: u32 },
    #[error(
        "the time window '{expression}' starts more than once a minute; windows start at \
         whole minutes, so give the seconds field a single value (or use the 5-field form)"
    )]
    SubMinute { expression: String },
    #[error("the time window '{expression}' never starts (no date matches it)")]
    NeverStarts { expression: String },
}

/// One validated window of a schedule.
#[derive(Debug, Clone)]
pub struct ParsedWindow {
    source: String,
    cron: cron::Schedule,
    duration: TimeDelta,
}

/// A schedule whose windows have all been parsed.
#[derive(Debug, Clone)]
pub struct ParsedSchedule {
    pub holidays: HolidayRule,
    pub windows: Vec<ParsedWindow>,
}

/// A half-open span `[start, end)` of UTC time in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

impl Interval {
    pub fn contains(&self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// Validates one window: its cron expression (see the module docs for the accepted forms)
/// and its duration in minutes (1 to 10080).
pub fn parse_window(expression: &str, duration_min: u32) -> Result<ParsedWindow, ScheduleError> {
    let cron = parse_cron(expression).map_err(|reason| ScheduleError::InvalidCron {
        expression: expression.to_owned(),
        reason,
    })?;
    if !(1..=MAX_WINDOW_MINUTES).contains(&duration_min) {
        return Err(ScheduleError::Duration {
            expression: expression.to_owned(),
            minutes: duration_min,
        });
    }
    // At most one start per minute bounds the work of precomputing intervals.
    if cron::TimeUnitSpec::count(cron.seconds()) != 1 {
        return Err(ScheduleError::SubMinute {
            expression: expression.to_owned(),
        });
    }
    if cron.after(&DateTime::<Utc>::UNIX_EPOCH).next().is_none() {
        return Err(ScheduleError::NeverStarts {
            expression: expression.to_owned(),
        });
    }
    Ok(ParsedWindow {
        source: expression.to_owned(),
        cron,
        duration: TimeDelta::minutes(i64::from(duration_min)),
    })
}

/// Reads a cron expression in the forms the module docs describe (standard 5 fields,
/// the `cron` crate's 6/7 fields with seconds, `@daily` …); the error is the reason alone,
/// for the caller to say what the expression was for. The appliance's jobs use it too.
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let crate_form = match fields.as_slice() {
        [] => return Err("it is empty".into()),
        [shorthand] if shorthand.starts_with('@') => (*shorthand).to_owned(),
        [minute, hour, dom, month, dow] => {
            let dow = standard_days_of_week(dow)?;
            format!("0 {minute} {hour} {dom} {month} {dow}")
        }
        [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => fields.join(" "),
        other => {
            return Err(format!(
                "it has {} fields, expected 5 (or the 6/7-field form with seconds and year)",
                other.len()
            ));
        }
    };
    crate_form.parse().map_err(|e: cron::error::Error| {
        // The crate's text repeats the expression (in its own 6-field form, which the
        // admin did not type) over a caret line; its last line says what is wrong.
        let text = e.to_string();
        let reason = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
        reason.unwrap_or(&text).to_owned()
    })
}

/// Rewrites a standard cron day-of-week field (0/7 = Sunday, names, ranges, lists, steps)
/// as the `cron` crate's day names, whose numbers mean something else (1 = Sunday).
fn standard_days_of_week(field: &str) -> Result<String, String> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    fn day(token: &str) -> Result<u32, String> {
        if let Ok(n) = token.parse::<u32>() {
            return if n <= 7 {
                Ok(n)
            } else {
                Err(format!(
                    "day of week {n} is out of range (0-7, 0 and 7 are Sunday)"
                ))
            };
        }
        let lower = token.to_ascii_lowercase();
        let full = [
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
        ];
        full.iter()
            .position(|f| lower.len() >= 3 && f.starts_with(&lower))
            .map(|p| p as u32)
            .ok_or_else(|| format!("'{token}' is not a day of the week (use 0-7 or Sun-Sat)"))
    }

    let mut days = [false; 7];
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("'{step}' is not a valid step in '{item}'"))?;
                (base, step)
            }
            None => (item, 1),
        };
        let (first, last) = if base == "*" || base == "?" {
            (0, 6)
        } else if let Some((a, b)) = base.split_once('-') {
            let a = day(a)?;
            let mut b = day(b)?;
            // `Fri-Sun` means up to the Sunday that ends the week.
            if b == 0 && a > 0 {
                b = 7;
            }
            if a > b {
                return Err(format!("the day range '{base}' runs backwards"));
            }
            (a, b)
        } else {
            let a = day(base)?;
            (a, if item.contains('/') { 6 } else { a })
        };
        let mut d = first;
        while d <= last {
            days[(d % 7) as usize] = true;
            d += step;
        }
    }
    if days.iter().all(|d| *d) {
        return Ok("*".into());
    }
    let names: Vec<&str> = days
        .iter()
        .zip(NAMES)
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    Ok(names.join(","))
}

impl ParsedWindow {
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn duration_min(&self) -> u32 {
        u32::try_from(self.duration.num_minutes()).unwrap_or(u32::MAX)
    }

    /// When a window that started at `start` ends: the start's wall-clock time plus the
    /// duration, resolved to the latest valid instant.
    fn end_of(&self, start: &DateTime<Tz>) -> DateTime<Utc> {
        resolve_latest(start.timezone(), start.naive_local() + self.duration)
    }

    /// Whether this window is open at `t`, evaluated from the cron expression directly.
    pub fn is_open_exact(&self, tz: Tz, t: DateTime<Utc>) -> bool {
        // Ends are monotonic in the start's wall-clock time, and the cron iterator walks
        // wall-clock time backwards, so the first start at or before `t` that it yields has
        // the latest end of all of them and alone decides. In an autumn fold a later start
        // can have an earlier wall-clock time than `t`'s, so the walk begins from the
        // latest wall-clock time reached before `t`, skipping starts after `t`.
        let lead =
            (offset_s(tz, t - TimeDelta::seconds(MAX_CLOCK_SHIFT_S)) - offset_s(tz, t)).max(0);
        let from = (t + TimeDelta::seconds(lead + 1)).with_timezone(&tz);
        for start in self.cron.after(&from).rev() {
            if start.with_timezone(&Utc) <= t {
                return self.end_of(&start) > t;
            }
        }
        false
    }

    /// Appends the `[start, end)` spans of every run of this window that overlaps
    /// `[from, to)`.
    fn push_intervals(
        &self,
        tz: Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        out: &mut Vec<Interval>,
    ) {
        let margin = TimeDelta::seconds(2 * MAX_CLOCK_SHIFT_S);
        let begin = (from - self.duration - margin).with_timezone(&tz);
        let stop = to + margin;
        for start in self.cron.after(&begin) {
            let s = start.with_timezone(&Utc);
            if s > stop {
                break;
            }
            let e = self.end_of(&start);
            if e > s && e > from && s < to {
                out.push(Interval {
                    start: s.timestamp(),
                    end: e.timestamp(),
                });
            }
        }
    }
}

impl ParsedSchedule {
    pub fn parse(schedule: &Schedule) -> Result<ParsedSchedule, ScheduleError> {
        let windows = schedule
            .windows
            .iter()
            .map(|w| parse_window(&w.cron, w.duration_min))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ParsedSchedule {
            holidays: schedule.holidays,
            windows,
        })
    }
}

/// Whether `schedule` is open at `t` at a site in `tz` whose holidays (site-specific and
/// global, any order) are `holidays`. Slow but exact: it walks the cron expressions.
pub fn is_open_exact(
    schedule: &ParsedSchedule,
    tz: Tz,
    holidays: &[NaiveDate],
    t: DateTime<Utc>,
) -> bool {
    if schedule.holidays == HolidayRule::Closed
        && holidays.contains(&t.with_timezone(&tz).date_naive())
    {
        return false;
    }
    schedule.windows.iter().any(|w| w.is_open_exact(tz, t))
}

/// The sorted, disjoint UTC spans during which `schedule` is open, covering at least
/// `[from, to)`; agrees with [`is_open_exact`] at every instant of that range.
pub fn open_intervals(
    schedule: &ParsedSchedule,
    tz: Tz,
    holidays: &[NaiveDate],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Interval> {
    let mut raw = Vec::new();
    for w in &schedule.windows {
        w.push_intervals(tz, from, to, &mut raw);
    }
    let open = merge(raw);
    if schedule.holidays == HolidayRule::Ignore {
        return open;
    }
    let first = from.with_timezone(&tz).date_naive() - TimeDelta::days(1);
    let last = to.with_timezone(&tz).date_naive() + TimeDelta::days(1);
    let closed = merge(
        holidays
            .iter()
            .filter(|d| (first..=last).contains(*d))
            .filter_map(|d| {
                let next = d.succ_opt()?;
                Some(Interval {
                    start: local_day_start(tz, *d).timestamp(),
                    end: local_day_start(tz, next).timestamp(),
                })
            })
            .collect(),
    );
    subtract(&open, &closed)
}

/// Whether the sorted, disjoint `intervals` contain `ts` (Unix seconds).
pub fn intervals_contain(intervals: &[Interval], ts: i64) -> bool {
    let i = intervals.partition_point(|iv| iv.start <= ts);
    i > 0 && intervals[i - 1].end > ts
}

/// When the open/closed state at `ts` next changes, if that happens inside `intervals`'
/// range.
pub fn next_change(intervals: &[Interval], ts: i64) -> Option<i64> {
    let i = intervals.partition_point(|iv| iv.start <= ts);
    match i.checked_sub(1).map(|j| intervals[j]) {
        Some(iv) if iv.end > ts => Some(iv.end),
        _ => intervals.get(i).map(|iv| iv.start),
    }
}

fn merge(mut spans: Vec<Interval>) -> Vec<Interval> {
    spans.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// `open` minus `closed`; both sorted and disjoint.
fn subtract(open: &[Interval], closed: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::with_capacity(open.len());
    let mut c = 0;
    for iv in open {
        let mut start = iv.start;
        while c < closed.len() && closed[c].end <= start {
            c += 1;
        }
        let mut k = c;
        while k < closed.len() && closed[k].start < iv.end {
            if closed[k].start > start {
                out.push(Interval {
                    start,
                    end: closed[k].start,
                });
            }
            start = start.max(closed[k].end);
            k += 1;
        }
        if start < iv.end {
            out.push(Interval { start, end: iv.end });
        }
    }
    out
}

fn offset_s(tz: Tz, t: DateTime<Utc>) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// The instant a wall-clock time ends at: its later occurrence in a fold; in a gap, the
/// moment the clocks jump past it.
pub(crate) fn resolve_latest(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
        LocalResult::None => gap_end(tz, local),
    }
}

/// The first instant of a local calendar day (midnight, or when the clocks jump past it).
pub(crate) fn local_day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => gap_end(tz, midnight),
    }
}

/// For a wall-clock time inside a spring-forward gap: the instant the clocks jump, i.e.
/// the first instant whose wall-clock time is past `local`.
fn gap_end(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let as_utc = local.and_utc();
    let before = offset_s(tz, as_utc - TimeDelta::days(1));
    let after = offset_s(tz, as_utc + TimeDelta::days(1));
    let naive_s = as_utc.timestamp();
    // The jump lies in (local - after, local - before]; wall-clock time is monotonic there.
    let (mut lo, mut hi) = (naive_s - after, naive_s - before);
    let past = |u: i64| {
        DateTime::<Utc>::from_timestamp(u, 0)
            .is_some_and(|d| d.timestamp() + offset_s(tz, d) > naive_s)
    };
    if lo >= hi || !past(hi) {
        return DateTime::<Utc>::from_timestamp(hi, 0).unwrap_or(as_utc);
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if past(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    DateTime::<Utc>::from_timestamp(hi, 0).unwrap_or(as_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::Window;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    /// The UTC instant of an unambiguous local wall-clock time "YYYY-MM-DD HH:MM".
    fn at(tz: Tz, local: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        tz.from_local_datetime(&naive)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn utc(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
    }

    fn sched(rule: HolidayRule, windows: &[(&str, u32)]) -> ParsedSchedule {
        ParsedSchedule::parse(&Schedule {
            id: 1,
            name: "test".into(),
            holidays: rule,
            windows: windows
                .iter()
                .map(|(c, d)| Window {
                    cron: (*c).into(),
                    duration_min: *d,
                })
                .collect(),
        })
        .unwrap()
    }

    /// Checks the exact evaluator and the precomputed intervals give `expected` at `t`.
    fn check(s: &ParsedSchedule, tz: Tz, holidays: &[NaiveDate], t: DateTime<Utc>, expected: bool) {
        assert_eq!(
            is_open_exact(s, tz, holidays, t),
            expected,
            "exact at {t} ({})",
            t.with_timezone(&tz)
        );
        let iv = open_intervals(
            s,
            tz,
            holidays,
            t - TimeDelta::days(2),
            t + TimeDelta::days(2),
        );
        assert_eq!(
            intervals_contain(&iv, t.timestamp()),
            expected,
            "intervals at {t}"
        );
    }

    fn office() -> ParsedSchedule {
        sched(HolidayRule::Closed, &[("0 8 * * Mon-Fri", 540)])
    }

    #[test]
    fn office_hours_around_the_berlin_and_new_york_dst_changes() {
        let days: [(Tz, &[&str]); 2] = [
            (
                Berlin,
                &["2026-03-27", "2026-03-30", "2026-10-23", "2026-10-26"],
            ),
            (
                New_York,
                &["2026-03-06", "2026-03-09", "2026-10-30", "2026-11-02"],
            ),
        ];
        let s = office();
        for (tz, days) in days {
            for day in days {
                check(&s, tz, &[], at(tz, &format!("{day} 07:30")), false);
                check(&s, tz, &[], at(tz, &format!("{day} 08:30")), true);
                check(&s, tz, &[], at(tz, &format!("{day} 16:59")), true);
                check(&s, tz, &[], at(tz, &format!("{day} 17:00")), false);
            }
        }
        // The change days are Sundays: a daily window follows the local clock there too.
        let daily = sched(HolidayRule::Closed, &[("0 8 * * *", 540)]);
        for (tz, day) in [
            (Berlin, "2026-03-29"),
            (Berlin, "2026-10-25"),
            (New_York, "2026-03-08"),
            (New_York, "2026-11-01"),
        ] {
            check(&daily, tz, &[], at(tz, &format!("{day} 07:30")), false);
            check(&daily, tz, &[], at(tz, &format!("{day} 08:30")), true);
            check(&daily, tz, &[], at(tz, &format!("{day} 17:00")), false);
        }
    }

    #[test]
    fn night_window_on_dst_nights_ends_at_local_eight() {
        let s = sched(HolidayRule::Ignore, &[("0 22 * * *", 600)]);
        for (tz, evening, morning, real_hours) in [
            (Berlin, "2026-03-28", "2026-03-29", 9),
            (Berlin, "2026-10-24", "2026-10-25", 11),
            (New_York, "2026-03-07", "2026-03-08", 9),
            (New_York, "2026-10-31", "2026-11-01", 11),
        ] {
            let start = at(tz, &format!("{evening} 22:00"));
            let end = at(tz, &format!("{morning} 08:00"));
            assert_eq!(end - start, TimeDelta::hours(real_hours));
            check(&s, tz, &[], start - TimeDelta::minutes(1), false);
            check(&s, tz, &[], start, true);
            check(&s, tz, &[], at(tz, &format!("{morning} 07:59")), true);
            check(&s, tz, &[], end, false);
        }
    }

    #[test]
    fn friday_night_into_saturday() {
        let s = sched(HolidayRule::Closed, &[("0 22 * * Fri", 600)]);
        let tz = Berlin;
        // 2026-06-05 is a Friday.
        check(&s, tz, &[], at(tz, "2026-06-05 21:59"), false);
        check(&s, tz, &[], at(tz, "2026-06-05 23:30"), true);
        check(&s, tz, &[], at(tz, "2026-06-06 00:00"), true);
        check(&s, tz, &[], at(tz, "2026-06-06 07:59"), true);
        check(&s, tz, &[], at(tz, "2026-06-06 08:00"), false);
        check(&s, tz, &[], at(tz, "2026-06-06 23:00"), false);
        check(&s, tz, &[], at(tz, "2026-06-04 23:00"), false);
    }

    #[test]
    fn start_in_spring_gap_is_skipped_like_the_cron_crate_does() {
        let s = sched(HolidayRule::Ignore, &[("30 2 * * *", 60)]);
        let tz = Berlin;
        check(&s, tz, &[], at(tz, "2026-03-28 02:45"), true);
        // 02:30 does not exist on 2026-03-29 (02:00 CET -> 03:00 CEST): no opening that night.
        check(&s, tz, &[], utc("2026-03-29 00:59:59"), false);
        check(&s, tz, &[], utc("2026-03-29 01:15:00"), false);
        check(&s, tz, &[], at(tz, "2026-03-29 03:15"), false);
        check(&s, tz, &[], at(tz, "2026-03-30 02:45"), true);
        let crate_starts: Vec<_> = s.windows[0]
            .cron
            .after(&at(tz, "2026-03-28 12:00").with_timezone(&tz))
            .take(2)
            .map(|d| d.with_timezone(&Utc))
            .collect();
        assert_eq!(
            crate_starts,
            [at(tz, "2026-03-30 02:30"), at(tz, "2026-03-31 02:30")]
        );
    }

    #[test]
    fn start_in_autumn_fold_opens_at_first_occurrence_and_ends_on_the_wall_clock() {
        let s = sched(HolidayRule::Ignore, &[("30 2 * * *", 60)]);
        let tz = Berlin;
        // 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET); 03:30 CET is 02:30 UTC.
        check(&s, tz, &[], utc("2026-10-25 00:29:59"), false);
        check(&s, tz, &[], utc("2026-10-25 00:30:00"), true);
        check(&s, tz, &[], utc("2026-10-25 01:10:00"), true);
        check(&s, tz, &[], utc("2026-10-25 01:45:00"), true);
        check(&s, tz, &[], utc("2026-10-25 02:29:59"), true);
        check(&s, tz, &[], utc("2026-10-25 02:30:00"), false);
    }

    #[test]
    fn ends_in_gap_or_fold_resolve_to_the_latest_valid_instant() {
        let s = sched(HolidayRule::Ignore, &[("0 1 * * *", 90)]);
        let tz = Berlin;
        // Ends at 02:30 local, which does not exist on 2026-03-29: closes when clocks jump.
        check(&s, tz, &[], utc("2026-03-29 00:59:59"), true);
        check(&s, tz, &[], utc("2026-03-29 01:00:00"), false);
        // Ends at 02:30 local, which happens twice on 2026-10-25: closes at the second.
        check(&s, tz, &[], utc("2026-10-25 00:45:00"), true);
        check(&s, tz, &[], utc("2026-10-25 01:29:59"), true);
        check(&s, tz, &[], utc("2026-10-25 01:30:00"), false);
        assert_eq!(
            resolve_latest(
                New_York,
                NaiveDateTime::parse_from_str("2026-03-08 02:10", "%Y-%m-%d %H:%M").unwrap()
            ),
            utc("2026-03-08 07:00:00")
        );
    }

    #[test]
    fn holidays_close_exactly_their_local_day_only_with_closed_rule() {
        let tz = New_York;
        let christmas = [NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()];
        let closed = sched(HolidayRule::Closed, &[("0 0 * * *", 1440)]);
        let ignore = sched(HolidayRule::Ignore, &[("0 0 * * *", 1440)]);
        check(&closed, tz, &christmas, at(tz, "2026-12-24 23:59"), true);
        check(&closed, tz, &christmas, at(tz, "2026-12-25 00:00"), false);
        // 03:00 UTC on the 26th is still the 25th in New York.
        check(&closed, tz, &christmas, utc("2026-12-26 03:00:00"), false);
        check(&closed, tz, &christmas, at(tz, "2026-12-25 23:59"), false);
        check(&closed, tz, &christmas, at(tz, "2026-12-26 00:00"), true);
        check(&ignore, tz, &christmas, at(tz, "2026-12-25 12:00"), true);
        check(&closed, tz, &[], at(tz, "2026-12-25 12:00"), true);
    }

    #[test]
    fn standard_day_of_week_numbers_mean_what_unix_cron_means() {
        let tz = Berlin;
        // 2026-06-07 is a Sunday, 2026-06-08 a Monday, 2026-06-13 a Saturday.
        let numeric = sched(HolidayRule::Ignore, &[("0 8 * * 1-5", 60)]);
        check(&numeric, tz, &[], at(tz, "2026-06-08 08:30"), true);
        check(&numeric, tz, &[], at(tz, "2026-06-07 08:30"), false);
        check(&numeric, tz, &[], at(tz, "2026-06-13 08:30"), false);
        for sunday in [
            "0 8 * * 0",
            "0 8 * * 7",
            "0 8 * * sun",
            "0 8 * * Sat-Sun",
            "0 8 * * 6,0",
        ] {
            let s = sched(HolidayRule::Ignore, &[(sunday, 60)]);
            check(&s, tz, &[], at(tz, "2026-06-07 08:30"), true);
            check(&s, tz, &[], at(tz, "2026-06-08 08:30"), false);
        }
        assert_eq!(standard_days_of_week("*/2").unwrap(), "SUN,TUE,THU,SAT");
        assert_eq!(
            standard_days_of_week("Mon-Fri").unwrap(),
            "MON,TUE,WED,THU,FRI"
        );
        assert_eq!(standard_days_of_week("0-7").unwrap(), "*");
        // The crate's own 6-field form keeps the crate's numbering (1 = Sunday).
        let six = sched(HolidayRule::Ignore, &[("0 0 8 * * 1", 60)]);
        check(&six, tz, &[], at(tz, "2026-06-07 08:30"), true);
    }

    #[test]
    fn parse_errors_name_the_expression_and_the_problem() {
        let err = parse_window("0 25 * * *", 60).unwrap_err();
        assert!(matches!(err, ScheduleError::InvalidCron { .. }));
        assert!(err.to_string().contains("'0 25 * * *'"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        let err = parse_window("0 8 * *", 60).unwrap_err();
        assert!(err.to_string().contains("4 fields"), "{err}");
        let err = parse_window("0 8 * * Mon-Fry", 60).unwrap_err();
        assert!(
            err.to_string().contains("'Fry' is not a day of the week"),
            "{err}"
        );
        let err = parse_window("0 8 * * 8", 60).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let err = parse_window("0 8 * * Fri-Mon", 60).unwrap_err();
        assert!(err.to_string().contains("backwards"), "{err}");
        assert_eq!(
            parse_window("0 8 * * *", 0).unwrap_err(),
            ScheduleError::Duration {
                expression: "0 8 * * *".into(),
                minutes: 0
            }
        );
        assert!(parse_window("0 8 * * *", MAX_WINDOW_MINUTES + 1).is_err());
        assert!(parse_window("0 8 * * *", MAX_WINDOW_MINUTES).is_ok());
        assert!(matches!(
            parse_window("* * 8 * * *", 1),
            Err(ScheduleError::SubMinute { .. })
        ));
        assert!(matches!(
            parse_window("0 0 31 2 *", 60),
            Err(ScheduleError::NeverStarts { .. })
        ));
        assert!(parse_window("0 0 8 * * Mon-Fri 2026", 60).is_ok());
        assert!(parse_window("@daily", 60).is_ok());
        assert!(parse_window("", 60).is_err());
    }

    #[test]
    fn exact_and_intervals_agree_on_a_fine_sweep_through_dst_weeks() {
        let schedules = [
            sched(
                HolidayRule::Closed,
                &[("0 8 * * Mon-Fri", 540), ("0 22 * * Fri", 600)],
            ),
            sched(
                HolidayRule::Ignore,
                &[("*/20 * * * *", 7), ("30 2 * * *", 90)],
            ),
            sched(
                HolidayRule::Closed,
                &[("15 1 * * *", 95), ("0 0 * * Mon", MAX_WINDOW_MINUTES)],
            ),
        ];
        let holidays = [
            NaiveDate::from_ymd_opt(2026, 3, 30).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 26).unwrap(),
        ];
        let tz_lord_howe: Tz = "Australia/Lord_Howe".parse().unwrap();
        for (tz, from) in [
            (Berlin, utc("2026-03-27 00:00:00")),
            (Berlin, utc("2026-10-23 00:00:00")),
            (New_York, utc("2026-11-01 00:00:00")),
            (tz_lord_howe, utc("2026-04-04 00:00:00")),
        ] {
            let to = from + TimeDelta::days(4);
            for s in &schedules {
                let iv = open_intervals(s, tz, &holidays, from, to);
                let mut t = from;
                while t < to {
                    assert_eq!(
                        is_open_exact(s, tz, &holidays, t),
                        intervals_contain(&iv, t.timestamp()),
                        "{tz} at {t}"
                    );
                    t += TimeDelta::seconds(173);
                }
                for edge in iv.iter().flat_map(|i| [i.start, i.end]) {
                    for ts in [edge - 1, edge] {
                        let t = DateTime::<Utc>::from_timestamp(ts, 0).unwrap();
                        if t >= from && t < to {
                            assert_eq!(
                                is_open_exact(s, tz, &holidays, t),
                                intervals_contain(&iv, ts),
                                "{tz} edge {t}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn next_change_finds_the_next_edge() {
        let iv = [
            Interval { start: 10, end: 20 },
            Interval { start: 30, end: 40 },
        ];
        assert_eq!(next_change(&iv, 5), Some(10));
        assert_eq!(next_change(&iv, 10), Some(20));
        assert_eq!(next_change(&iv, 20), Some(30));
        assert_eq!(next_change(&iv, 40), None);
        assert_eq!(
            subtract(
                &[Interval { start: 0, end: 100 }],
                &[
                    Interval { start: 10, end: 20 },
                    Interval {
                        start: 90,
                        end: 200
                    }
                ]
            ),
            [
                Interval { start: 0, end: 10 },
                Interval { start: 20, end: 90 }
            ]
        );
    }
}
