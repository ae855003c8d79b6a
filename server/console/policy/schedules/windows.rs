//! The schedule form's windows. A facilities admin fills in a row per window (days ticked,
//! the time it opens, the time it closes); the appliance stores a cron expression for the
//! start plus a duration, and reads stored windows back into rows. A stored window that
//! the rows cannot express exactly (a day of the month, steps, the 6-field form, a window
//! that closes later than the day after it opens) comes back as a raw cron row instead,
//! so that editing a schedule never changes what one of its windows means.

use std::collections::BTreeMap;

use crate::entities::FieldErrors;
use crate::entities::schedules::{ScheduleView, WindowSpec};

/// The days of the form, Monday first: the form field's key and the label people read.
pub const DAYS: [(&str, &str); 7] = [
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
];

const DAY_MINUTES: u32 = 24 * 60;

/// A window as the rows say it: the days it opens on (Monday first), when it opens
/// (minutes after midnight) and for how long (minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simple {
    pub days: [bool; 7],
    pub start: u32,
    pub duration: u32,
}

impl Simple {
    /// When it closes (minutes after midnight) and whether that is on the next day; None
    /// when it closes later than the day after it opens (no row can say that).
    pub fn end(&self) -> Option<(u32, bool)> {
        let end = self.start + self.duration;
        if self.duration == 0 {
            None
        } else if end <= DAY_MINUTES {
            // Closing at midnight is "until 24:00", typed as 00:00 without "next day".
            Some((end % DAY_MINUTES, false))
        } else if end < 2 * DAY_MINUTES {
            Some((end - DAY_MINUTES, true))
        } else {
            None
        }
    }

    /// The cron expression for its start, in the standard 5-field form.
    pub fn cron(&self) -> String {
        format!(
            "{} {} * * {}",
            self.start % 60,
            self.start / 60,
            days_field(&self.days)
        )
    }

    /// In words: "Mon–Fri 07:00–18:00", "Fri 22:00–08:00 next day".
    pub fn words(&self) -> String {
        let (end, next_day) = self.end().unwrap_or((0, false));
        let end_text = if end == 0 && !next_day {
            "24:00".to_owned()
        } else {
            hhmm(end)
        };
        format!(
            "{} {}–{end_text}{}",
            days_words(&self.days),
            hhmm(self.start),
            if next_day { " next day" } else { "" }
        )
    }
}

/// A stored window read as days and times, when that reading means exactly what the
/// appliance does with it.
pub fn simple_of(cron: &str, duration_min: i32) -> Option<Simple> {
    let (days, start) = simple_start(cron)?;
    let simple = Simple {
        days,
        start,
        duration: u32::try_from(duration_min).ok()?,
    };
    simple.end().map(|_| simple)
}

/// The days and start time of a 5-field cron expression that has a single minute and
/// hour, every day of the month and month, and days of the week; None for anything else.
fn simple_start(cron: &str) -> Option<([bool; 7], u32)> {
    let fields: Vec<&str> = cron.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    let minute = small_number(minute).filter(|m| *m < 60)?;
    let hour = small_number(hour).filter(|h| *h < 24)?;
    if !matches!(*dom, "*" | "?") || *month != "*" {
        return None;
    }
    let days = days_of(dow)?;
    days.iter()
        .any(|d| *d)
        .then_some((days, hour * 60 + minute))
}

fn small_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 2 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A day-of-week field read as the policy engine reads it (0 or 7 = Sunday, names of three
/// letters or more, ranges, lists; `Fri-Sun` runs to the Sunday ending the week), Monday
/// first. Steps and anything unusual give None: such a window stays a raw cron row.
fn days_of(field: &str) -> Option<[bool; 7]> {
    fn day(token: &str) -> Option<u32> {
        if let Some(n) = small_number(token) {
            return (n <= 7).then_some(n);
        }
        let lower = token.to_ascii_lowercase();
        [
            "sunday",
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
        ]
        .iter()
        .position(|f| lower.len() >= 3 && f.starts_with(&lower))
        .and_then(|p| u32::try_from(p).ok())
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        let (first, last) = if item == "*" || item == "?" {
            (0, 6)
        } else if let Some((a, b)) = item.split_once('-') {
            let a = day(a)?;
            let mut b = day(b)?;
            if b == 0 && a > 0 {
                b = 7;
            }
            if a > b {
                return None;
            }
            (a, b)
        } else {
            let a = day(item)?;
            (a, a)
        };
        for d in first..=last {
            // Cron numbers Sunday 0 (and 7); the form starts its week on Monday.
            days[((d + 6) % 7) as usize] = true;
        }
    }
    Some(days)
}

/// The day-of-week field for ticked days: `*`, `Mon-Fri`, `Mon,Wed,Fri`, `Sat,Sun`.
/// Sunday is never the end of a range, so the field reads the same in classic cron.
fn days_field(days: &[bool; 7]) -> String {
    if days.iter().all(|d| *d) {
        return "*".to_owned();
    }
    let mut parts = runs(&days[..6], "-");
    if days[6] {
        parts.push(DAYS[6].1.to_owned());
    }
    parts.join(",")
}

/// Runs of three days or more as ranges joined by `dash`, shorter ones day by day.
fn runs(days: &[bool], dash: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < days.len() {
        if !days[i] {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < days.len() && days[j + 1] {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}{dash}{}", DAYS[i].1, DAYS[j].1));
        } else {
            parts.extend((i..=j).map(|d| DAYS[d].1.to_owned()));
        }
        i = j + 1;
    }
    parts
}

fn days_words(days: &[bool; 7]) -> String {
    if days.iter().all(|d| *d) {
        "Every day".to_owned()
    } else {
        runs(days, "–").join(", ")
    }
}

pub fn hhmm(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A time of day as typed (`07:00`, `7:00`, `07:00:00`), in minutes after midnight;
/// `24:00` too where `midnight_end` allows it (it means the same as 00:00 then).
fn parse_time(text: &str, midnight_end: bool) -> Option<u32> {
    let mut parts = text.trim().split(':');
    let hour = small_number(parts.next()?)?;
    let minute = parts.next().and_then(small_number)?;
    if let Some(seconds) = parts.next()
        && small_number(seconds) != Some(0)
    {
        return None;
    }
    if parts.next().is_some() || minute >= 60 {
        return None;
    }
    match hour {
        0..=23 => Some(hour * 60 + minute),
        24 if midnight_end && minute == 0 => Some(0),
        _ => None,
    }
}

/// How a row is filled in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowKind {
    /// Days, opens, closes.
    #[default]
    Simple,
    /// A raw cron expression and minutes, for advanced users and for windows that days
    /// and times cannot express.
    Cron,
}

/// One window row as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowForm {
    pub kind: RowKind,
    pub days: [bool; 7],
    pub start: String,
    pub end: String,
    pub next_day: bool,
    pub cron: String,
    pub duration_min: String,
    /// The stored cron this row was read from. Kept as it was written when the row still
    /// says the same days and time, so that saving an unchanged schedule changes nothing.
    pub was: String,
    pub remove: bool,
}

impl RowForm {
    /// A stored window as a row: days and times when they say exactly the same, else raw.
    pub fn from_stored(window: &WindowSpec) -> RowForm {
        match simple_of(&window.cron, window.duration_min) {
            Some(simple) => {
                let (end, next_day) = simple.end().unwrap_or((0, false));
                RowForm {
                    kind: RowKind::Simple,
                    days: simple.days,
                    start: hhmm(simple.start),
                    end: hhmm(end),
                    next_day,
                    was: window.cron.clone(),
                    ..RowForm::default()
                }
            }
            None => RowForm {
                kind: RowKind::Cron,
                cron: window.cron.clone(),
                duration_min: window.duration_min.to_string(),
                ..RowForm::default()
            },
        }
    }

    /// Nothing typed: a spare row, left out of the schedule.
    pub fn is_blank(&self) -> bool {
        match self.kind {
            RowKind::Simple => {
                !self.days.iter().any(|d| *d)
                    && self.start.trim().is_empty()
                    && self.end.trim().is_empty()
            }
            RowKind::Cron => self.cron.trim().is_empty() && self.duration_min.trim().is_empty(),
        }
    }

    /// The window this row asks for, or its messages keyed by the row's own fields
    /// (`days`, `start`, `end`, `cron`, `duration_min`). The cron expression itself is
    /// checked by the entity layer, as for the API.
    pub fn to_window(&self) -> Result<WindowSpec, Vec<(&'static str, String)>> {
        let mut problems = Vec::new();
        match self.kind {
            RowKind::Cron => {
                if self.cron.trim().is_empty() {
                    problems.push((
                        "cron",
                        "enter a cron expression, like 0 7 * * Mon-Fri".to_owned(),
                    ));
                }
                let duration = self.duration_min.trim().parse::<i32>().ok();
                if duration.is_none() {
                    problems.push((
                        "duration_min",
                        "enter how long it stays open, in whole minutes (1 to 10080)".to_owned(),
                    ));
                }
                match duration {
                    Some(duration_min) if problems.is_empty() => Ok(WindowSpec {
                        cron: self.cron.trim().to_owned(),
                        duration_min,
                    }),
                    _ => Err(problems),
                }
            }
            RowKind::Simple => {
                if !self.days.iter().any(|d| *d) {
                    problems.push(("days", "tick at least one day".to_owned()));
                }
                let start = parse_time(&self.start, false);
                if start.is_none() {
                    problems.push(("start", "enter the time it opens, like 07:00".to_owned()));
                }
                let end = parse_time(&self.end, true);
                if end.is_none() {
                    problems.push(("end", "enter the time it closes, like 18:00".to_owned()));
                }
                let duration = match (start, end) {
                    (Some(start), Some(end)) => {
                        let duration = if self.next_day {
                            Some(DAY_MINUTES - start + end)
                        } else if end == 0 {
                            Some(DAY_MINUTES - start)
                        } else if end > start {
                            Some(end - start)
                        } else {
                            None
                        };
                        if duration.is_none() {
                            problems.push((
                                "end",
                                format!(
                                    "it closes at {} before it opens at {}: tick \"next day\" \
                                     if it runs past midnight",
                                    hhmm(end),
                                    hhmm(start)
                                ),
                            ));
                        }
                        duration
                    }
                    _ => None,
                };
                match (start, duration) {
                    (Some(start), Some(duration)) if problems.is_empty() => {
                        let simple = Simple {
                            days: self.days,
                            start,
                            duration,
                        };
                        let cron = match simple_start(&self.was) {
                            Some((days, was_start)) if days == self.days && was_start == start => {
                                self.was.trim().to_owned()
                            }
                            _ => simple.cron(),
                        };
                        Ok(WindowSpec {
                            cron,
                            duration_min: i32::try_from(duration).unwrap_or(i32::MAX),
                        })
                    }
                    _ => Err(problems),
                }
            }
        }
    }
}

/// The schedule form as typed: its fields and its window rows, blank and removed rows
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleForm {
    pub name: String,
    pub description: String,
    pub holidays: String,
    pub rows: Vec<RowForm>,
    /// "Add another window": draw the form again with another row, saving nothing.
    pub more: bool,
}

impl ScheduleForm {
    /// A stored schedule as its form shows it.
    pub fn from_view(view: &ScheduleView) -> ScheduleForm {
        ScheduleForm {
            name: view.name.clone(),
            description: view.description.clone(),
            holidays: view.holidays.clone(),
            rows: view.windows.iter().map(RowForm::from_stored).collect(),
            more: false,
        }
    }

    /// Reads the posted fields: `name`, `description`, `holidays`, `action`, and each
    /// row's `windows[N].FIELD`.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> ScheduleForm {
        let mut form = ScheduleForm::default();
        let mut rows: BTreeMap<usize, RowForm> = BTreeMap::new();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value,
                "description" => form.description = value,
                "holidays" => form.holidays = value,
                "action" => form.more = value == "more",
                _ => {
                    let Some((index, field)) = row_key(&key) else {
                        continue;
                    };
                    let row = rows.entry(index).or_default();
                    match field {
                        "kind" => {
                            row.kind = if value == "cron" {
                                RowKind::Cron
                            } else {
                                RowKind::Simple
                            }
                        }
                        "start" => row.start = value,
                        "end" => row.end = value,
                        "next_day" => row.next_day = true,
                        "cron" => row.cron = value,
                        "duration_min" => row.duration_min = value,
                        "was" => row.was = value,
                        "remove" => row.remove = true,
                        day => {
                            if let Some(i) = DAYS.iter().position(|(k, _)| *k == day) {
                                row.days[i] = true;
                            }
                        }
                    }
                }
            }
        }
        form.rows = rows
            .into_values()
            .filter(|r| !r.remove && !r.is_blank())
            .collect();
        form
    }

    /// The windows to store, the row each came from, and the rows' own problems keyed
    /// `windows[ROW].FIELD`.
    pub fn windows(&self) -> (Vec<WindowSpec>, Vec<usize>, FieldErrors) {
        let mut windows = Vec::new();
        let mut rows_of = Vec::new();
        let mut problems = FieldErrors::default();
        for (r, row) in self.rows.iter().enumerate() {
            match row.to_window() {
                Ok(window) => {
                    windows.push(window);
                    rows_of.push(r);
                }
                Err(list) => {
                    for (field, message) in list {
                        problems.add(format!("windows[{r}].{field}"), message);
                    }
                }
            }
        }
        (windows, rows_of, problems)
    }

    /// The entity layer's messages about windows (`windows[I].cron`, by the index of the
    /// window stored) put beside the row and field they are about.
    pub fn to_rows(&self, errors: FieldErrors, rows_of: &[usize]) -> FieldErrors {
        let mut out = FieldErrors::default();
        for (field, messages) in errors.0 {
            let renamed = row_key(&field)
                .and_then(|(i, f)| {
                    let r = *rows_of.get(i)?;
                    let f = match (self.rows.get(r)?.kind, f) {
                        (RowKind::Cron, f) => f,
                        (RowKind::Simple, "duration_min") => "end",
                        (RowKind::Simple, _) => "start",
                    };
                    Some(format!("windows[{r}].{f}"))
                })
                .unwrap_or(field);
            for m in messages {
                out.add(renamed.clone(), m);
            }
        }
        out
    }
}

/// `windows[3].start` → (3, "start").
fn row_key(key: &str) -> Option<(usize, &str)> {
    let rest = key.strip_prefix("windows[")?;
    let (index, field) = rest.split_once("].")?;
    Some((index.parse().ok()?, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(cron: &str, duration_min: i32) -> WindowSpec {
        WindowSpec {
            cron: cron.to_owned(),
            duration_min,
        }
    }

    fn weekdays() -> [bool; 7] {
        [true, true, true, true, true, false, false]
    }

    fn row(days: [bool; 7], start: &str, end: &str, next_day: bool) -> RowForm {
        RowForm {
            days,
            start: start.to_owned(),
            end: end.to_owned(),
            next_day,
            ..RowForm::default()
        }
    }

    #[test]
    fn days_and_times_become_a_cron_start_and_a_duration() {
        let w = row(weekdays(), "07:00", "18:00", false)
            .to_window()
            .unwrap();
        assert_eq!(w, window("0 7 * * Mon-Fri", 660));
        let mut days = [false; 7];
        days[4] = true;
        let night = row(days, "22:30", "08:00", true).to_window().unwrap();
        assert_eq!(night, window("30 22 * * Fri", 570));
        let until_midnight = row([true; 7], "18:00", "00:00", false).to_window().unwrap();
        assert_eq!(until_midnight, window("0 18 * * *", 360));
        let all_day = row([true; 7], "00:00", "24:00", false).to_window().unwrap();
        assert_eq!(all_day, window("0 0 * * *", 1440));
        let weekend = [false, false, false, false, true, true, true];
        assert_eq!(
            row(weekend, "9:05", "12:00", false)
                .to_window()
                .unwrap()
                .cron,
            "5 9 * * Fri,Sat,Sun"
        );
        let odd = [true, false, true, false, true, false, true];
        assert_eq!(
            row(odd, "08:00", "09:00", false).to_window().unwrap().cron,
            "0 8 * * Mon,Wed,Fri,Sun"
        );
    }

    #[test]
    fn rows_that_mean_nothing_say_what_to_fix() {
        let backwards = row(weekdays(), "18:00", "07:00", false).to_window();
        let messages = backwards.unwrap_err();
        assert_eq!(messages[0].0, "end");
        assert!(messages[0].1.contains("before it opens"), "{messages:?}");
        assert_eq!(
            row(weekdays(), "07:00", "07:00", false)
                .to_window()
                .unwrap_err()[0]
                .0,
            "end"
        );
        let no_days = row([false; 7], "07:00", "18:00", false).to_window();
        assert_eq!(no_days.unwrap_err()[0].0, "days");
        let bad_time = row(weekdays(), "7am", "25:00", false)
            .to_window()
            .unwrap_err();
        let fields: Vec<&str> = bad_time.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["start", "end"]);
    }

    #[test]
    fn stored_windows_read_back_as_the_rows_that_wrote_them() {
        for (days, start, end, next_day) in [
            (weekdays(), "07:00", "18:00", false),
            ([true; 7], "00:00", "00:00", false),
            (
                [false, false, false, false, true, false, false],
                "22:00",
                "08:00",
                true,
            ),
            (
                [true, false, false, false, false, false, true],
                "18:30",
                "00:00",
                false,
            ),
            (
                [false, true, false, false, false, false, false],
                "07:00",
                "18:00",
                true,
            ),
        ] {
            let typed = row(days, start, end, next_day);
            let stored = typed.to_window().unwrap();
            let back = RowForm::from_stored(&stored);
            assert_eq!(back.kind, RowKind::Simple, "{stored:?}");
            assert_eq!(
                (
                    back.days,
                    back.start.as_str(),
                    back.end.as_str(),
                    back.next_day
                ),
                (days, start, end, next_day),
                "{stored:?}"
            );
            assert_eq!(
                back.to_window().unwrap(),
                stored,
                "saving again changes nothing"
            );
        }
    }

    #[test]
    fn stored_cron_in_another_spelling_is_kept_while_its_days_and_time_are() {
        let stored = window("0 7 * * 1-5", 660);
        let back = RowForm::from_stored(&stored);
        assert_eq!(back.days, weekdays());
        assert_eq!(back.to_window().unwrap(), stored);
        let mut moved = back.clone();
        moved.start = "08:00".to_owned();
        assert_eq!(moved.to_window().unwrap(), window("0 8 * * Mon-Fri", 600));
        // A forged "was" that says other days is not used.
        let mut forged = row(weekdays(), "07:00", "18:00", false);
        forged.was = "0 7 * * *".to_owned();
        assert_eq!(forged.to_window().unwrap().cron, "0 7 * * Mon-Fri");
    }

    #[test]
    fn windows_days_and_times_cannot_say_stay_raw_cron() {
        for (cron, duration) in [
            ("0 0 1 * *", 1440),
            ("*/15 7 * * *", 5),
            ("0 7 * Jan Mon", 60),
            ("0 7 * * Mon/2", 60),
            ("0 0 7 * * Mon-Fri", 60),
            ("@daily", 60),
            ("0 0 * * Mon", 10_080),
            ("0 7 * * Mon", 2 * 1440 - 7 * 60),
        ] {
            let back = RowForm::from_stored(&window(cron, duration));
            assert_eq!(back.kind, RowKind::Cron, "{cron} {duration}");
            assert_eq!(back.to_window().unwrap(), window(cron, duration));
        }
    }

    #[test]
    fn day_fields_are_read_as_the_policy_engine_reads_them() {
        // Monday first: Sunday is the last day of the form's week.
        assert_eq!(
            days_of("0"),
            Some([false, false, false, false, false, false, true])
        );
        assert_eq!(days_of("7"), days_of("Sun"));
        assert_eq!(days_of("Fri-Sun"), days_of("5,6,0"));
        assert_eq!(days_of("monday-wed"), days_of("1-3"));
        assert_eq!(days_of("*"), Some([true; 7]));
        assert_eq!(days_of("Sat-Mon"), None);
        assert_eq!(days_of("Mo"), None);
    }

    #[test]
    fn a_window_read_as_days_and_times_opens_exactly_when_the_policy_engine_opens_it() {
        use chrono::{Datelike, TimeDelta, TimeZone, Timelike, Utc};
        // Monday 2026-11-23, on a clock without DST so that a week is 10,080 minutes.
        let monday = Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
        for (cron, duration) in [
            ("0 7 * * Mon-Fri", 660),
            ("0 7 * * 1-5", 660),
            ("0 22 * * 5", 600),
            ("30 18 * * Mon,Sun", 330),
            ("0 7 * * Fri-Sun", 2100),
            ("0 0 * * *", 1440),
            ("15 9 * * 0", 60),
            ("0 7 ? * 7", 90),
        ] {
            let simple = simple_of(cron, duration).unwrap();
            let engine = crate::policy::parse_window(cron, duration as u32).unwrap();
            for step in 0..(2 * 7 * 24 * 4) {
                let t = monday + TimeDelta::minutes(step * 15);
                let minute_of_week = i64::from(t.weekday().num_days_from_monday()) * 1440
                    + i64::from(t.hour() * 60 + t.minute());
                let by_rows = (0..7).filter(|d| simple.days[*d]).any(|d| {
                    let opens = d as i64 * 1440 + i64::from(simple.start);
                    (minute_of_week - opens).rem_euclid(7 * 1440) < i64::from(simple.duration)
                });
                assert_eq!(
                    by_rows,
                    engine.is_open_exact(chrono_tz::UTC, t),
                    "{cron} + {duration} at {t}"
                );
            }
        }
    }

    #[test]
    fn the_form_reads_rows_by_index_and_drops_blank_and_removed_ones() {
        let pairs = [
            ("name", "Cleaners"),
            ("holidays", "ignore"),
            ("windows[0].kind", "simple"),
            ("windows[0].mon", "1"),
            ("windows[0].start", "06:00"),
            ("windows[0].end", "08:00"),
            ("windows[1].kind", "simple"),
            ("windows[2].kind", "cron"),
            ("windows[2].cron", "0 0 1 * *"),
            ("windows[2].duration_min", "60"),
            ("windows[3].kind", "simple"),
            ("windows[3].tue", "1"),
            ("windows[3].remove", "1"),
            ("windows[x].start", "junk"),
        ];
        let form = ScheduleForm::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        assert_eq!(form.name, "Cleaners");
        assert_eq!(form.rows.len(), 2);
        let (windows, rows_of, problems) = form.windows();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            windows,
            [window("0 6 * * Mon", 120), window("0 0 1 * *", 60)]
        );
        assert_eq!(rows_of, [0, 1]);
        let mut entity = FieldErrors::default();
        entity.add("windows[1].cron", "not a valid cron expression");
        entity.add("name", "taken");
        let placed = form.to_rows(entity, &rows_of);
        assert!(placed.0.contains_key("windows[1].cron"));
        assert!(placed.0.contains_key("name"));
    }

    #[test]
    fn windows_read_in_words() {
        assert_eq!(
            simple_of("0 7 * * Mon-Fri", 660).unwrap().words(),
            "Mon–Fri 07:00–18:00"
        );
        assert_eq!(
            simple_of("0 22 * * 5", 600).unwrap().words(),
            "Fri 22:00–08:00 next day"
        );
        assert_eq!(
            simple_of("0 0 * * *", 1440).unwrap().words(),
            "Every day 00:00–24:00"
        );
        assert_eq!(
            simple_of("0 9 * * Mon,Wed,Sat,Sun", 60).unwrap().words(),
            "Mon, Wed, Sat, Sun 09:00–10:00"
        );
    }
}
