//! The schedules pages: each schedule's windows in words and its coming week drawn as SVG,
//! made and edited as days and times (`windows.rs` turns rows into cron windows and back).

use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;

use super::{EVERYTHING, Keeping, NoFields, refusal};
use crate::app::state::AppState;
use crate::console::kit::listing::{ListQuery, Paged};
use crate::console::kit::notice::{Notice, see_other_saying};
use crate::console::kit::saved::{self, Saved};
use crate::console::kit::session::{Posted, Viewer};
use crate::console::kit::{Chrome, PageError, Problems, Section, page};
use crate::entities::holidays::{HolidayFilter, HolidayView, Holidays};
use crate::entities::levels::{LevelFilter, Levels};
use crate::entities::schedules::{ScheduleFilter, ScheduleInput, ScheduleView, Schedules};
use crate::entities::{self, ChangeError, Entity};
use crate::policy::Snapshot;
use crate::web::error::ApiError;

use super::levels::describe_items;

mod windows;

use windows::{RowForm, RowKind, ScheduleForm};

/// A schedule with its week drawn.
pub struct ScheduleLine {
    pub schedule: ScheduleView,
    /// Its windows in words ("Mon–Fri 07:00–18:00"; empty for a window only cron can say).
    pub windows: Vec<WindowLine>,
    /// The coming seven days as an SVG (server-rendered; no script).
    pub week_svg: String,
    /// In words: "open now, closes 18:00" or "closed now, opens Mon 07:00".
    pub now: String,
}

#[derive(Template)]
#[template(path = "policy/schedules.html")]
struct SchedulesPage {
    chrome: Chrome,
    list: Paged,
    schedules: Vec<ScheduleLine>,
}

/// A stored window: in words where days and times can say it, and as stored.
pub struct WindowLine {
    pub words: String,
    pub cron: String,
    pub duration_min: i32,
}

/// Minutes per cell of the week view: fine enough for 07:30 to show as 07:30.
const SLOT_MIN: i64 = 15;

/// Open intervals of a schedule at a site over 7 local days from `start`, per day, in
/// minutes since that day's midnight.
fn week_intervals(
    snapshot: &Snapshot,
    schedule_id: i64,
    site_id: i64,
    start: DateTime<Utc>,
) -> Vec<Vec<(i64, i64)>> {
    let slots = 24 * 60 / SLOT_MIN;
    (0..7)
        .map(|day| {
            let mut intervals: Vec<(i64, i64)> = Vec::new();
            for slot in 0..slots {
                let at = start + Duration::days(day) + Duration::minutes(slot * SLOT_MIN);
                if snapshot
                    .is_schedule_open(schedule_id, site_id, at)
                    .unwrap_or(false)
                {
                    let from = slot * SLOT_MIN;
                    match intervals.last_mut() {
                        Some(last) if last.1 == from => last.1 = from + SLOT_MIN,
                        _ => intervals.push((from, from + SLOT_MIN)),
                    }
                }
            }
            intervals
        })
        .collect()
}

fn hhmm(minutes: i64) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The week as SVG: one row per day, a bar where the schedule is open, hour ticks.
fn week_svg(days: &[Vec<(i64, i64)>], labels: &[String], name: &str) -> String {
    const LEFT: i64 = 90;
    const WIDTH: i64 = 24 * 30;
    const ROW: i64 = 22;
    let height = ROW * days.len() as i64 + 24;
    let x = |minutes: i64| LEFT + minutes * WIDTH / (24 * 60);
    let mut svg = String::new();
    let open_minutes: i64 = days.iter().flatten().map(|(a, b)| b - a).sum();
    let _ = write!(
        svg,
        "<svg class=\"week\" viewBox=\"0 0 {} {height}\" role=\"img\" aria-label=\"{}: open {} hours in the coming week\" xmlns=\"http://www.w3.org/2000/svg\">",
        LEFT + WIDTH + 10,
        crate::console::charts::escape(name),
        open_minutes / 60
    );
    for hour in (0..=24).step_by(3) {
        let _ = write!(
            svg,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"0\" y2=\"{1}\" class=\"tick\"/><text x=\"{0}\" y=\"{2}\" class=\"hour\" text-anchor=\"middle\">{3:02}</text>",
            x(hour * 60),
            height - 18,
            height - 4,
            hour
        );
    }
    for (row, (intervals, label)) in days.iter().zip(labels).enumerate() {
        let y = row as i64 * ROW;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"day\">{}</text><rect x=\"{LEFT}\" y=\"{}\" width=\"{WIDTH}\" height=\"{}\" class=\"closed\"/>",
            y + 15,
            crate::console::charts::escape(label),
            y + 3,
            ROW - 6
        );
        for (from, to) in intervals {
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"open\"><title>{}: open {}–{}</title></rect>",
                x(*from),
                y + 3,
                (x(*to) - x(*from)).max(1),
                ROW - 6,
                crate::console::charts::escape(label),
                hhmm(*from),
                hhmm(*to)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn local_midnight(now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    now.with_timezone(&tz)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(tz).earliest())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// Schedules per page of the list: each draws its week, so fewer than other lists.
const SCHEDULES_PAGE: i64 = 20;

/// GET /schedules
pub async fn schedules(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    render_schedules(&state, &viewer, query.into_inner()).await
}

/// What the week views of a page share: the first local midnight, each day's label
/// (holidays starred), the site whose clock and holidays they follow, and now.
struct Week {
    start: DateTime<Utc>,
    labels: Vec<String>,
    site: Option<i64>,
    now: DateTime<Utc>,
    tz: Tz,
}

impl Week {
    fn new(state: &AppState, snapshot: &Snapshot, tz: Tz, holidays: &[HolidayView]) -> Week {
        let now = state.clock.now();
        let start = local_midnight(now, tz);
        let labels = (0..7)
            .map(|d| {
                let day = (start + Duration::days(d) + Duration::hours(12)).with_timezone(&tz);
                let holiday = holidays
                    .iter()
                    .find(|h| h.date == day.date_naive())
                    .map(|_| " ★")
                    .unwrap_or_default();
                format!("{} {}{holiday}", day.weekday(), day.format("%d %b"))
            })
            .collect();
        Week {
            start,
            labels,
            site: snapshot.sites().first().map(|s| s.id),
            now,
            tz,
        }
    }

    /// A schedule with its coming week drawn and its state now in words.
    fn line(&self, snapshot: &Snapshot, schedule: ScheduleView) -> ScheduleLine {
        let (week_svg, now_text) = match self.site {
            Some(site) => {
                let days = week_intervals(snapshot, schedule.id, site, self.start);
                let open = snapshot
                    .is_schedule_open(schedule.id, site, self.now)
                    .unwrap_or(false);
                let change = snapshot
                    .schedule_next_change(schedule.id, site, self.now)
                    .map(|t| t.with_timezone(&self.tz).format("%a %H:%M").to_string());
                let text = match (open, change) {
                    (true, Some(at)) => format!("open now, closes {at}"),
                    (true, None) => "open now".to_owned(),
                    (false, Some(at)) => format!("closed now, opens {at}"),
                    (false, None) => "closed now".to_owned(),
                };
                (week_svg(&days, &self.labels, &schedule.name), text)
            }
            None => (String::new(), "no site to run it at".to_owned()),
        };
        let windows = schedule
            .windows
            .iter()
            .map(|w| WindowLine {
                words: windows::simple_of(&w.cron, w.duration_min)
                    .map(|s| s.words())
                    .unwrap_or_default(),
                cron: w.cron.clone(),
                duration_min: w.duration_min,
            })
            .collect();
        ScheduleLine {
            schedule,
            windows,
            week_svg,
            now: now_text,
        }
    }
}

async fn render_schedules(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
) -> Result<HttpResponse, PageError> {
    let filter = ScheduleFilter { q: query.search() };
    let paging = query.rows(SCHEDULES_PAGE);
    let (schedules, total, holidays) = state
        .read(move |conn| {
            let (schedules, total) = Schedules::list(conn, &filter, paging)?;
            let (holidays, _) = Holidays::list(conn, &HolidayFilter::default(), EVERYTHING)?;
            Ok((schedules, total, holidays))
        })
        .await?;
    let chrome = Chrome::new(state, viewer, Section::Policy);
    let snapshot = state.live.snapshot();
    let week = Week::new(state, &snapshot, chrome.timezone, &holidays);
    let lines = schedules
        .into_iter()
        .map(|schedule| week.line(&snapshot, schedule))
        .collect();
    page(&SchedulesPage {
        chrome,
        list: Paged::new("/schedules", &query, total, SCHEDULES_PAGE),
        schedules: lines,
    })
}

/// One day's tick box of a window row.
pub struct DayBox {
    pub key: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

/// A window row of the schedule form as drawn: its field names (`windows[N].FIELD`), what
/// was typed, and each field's message.
pub struct RowView {
    /// 1-based, for labels people read.
    pub number: usize,
    /// `windows[N]`, the prefix of the row's field names.
    pub prefix: String,
    /// `wN`, the prefix of the row's element ids.
    pub id: String,
    /// A raw cron row (cron and minutes) rather than days and times.
    pub cron_row: bool,
    /// An empty row to fill in; left out of the schedule when left empty.
    pub spare: bool,
    pub days: Vec<DayBox>,
    pub start: String,
    pub end: String,
    pub next_day: bool,
    pub cron: String,
    pub duration_min: String,
    pub was: String,
    /// What a days-and-times row is stored as: "0 7 * * Mon-Fri, 660 min".
    pub stored: String,
    pub days_error: Option<String>,
    pub start_error: Option<String>,
    pub end_error: Option<String>,
    pub cron_error: Option<String>,
    pub duration_error: Option<String>,
}

/// The rows as typed, then a spare row of each kind to add a window with.
fn row_views(rows: &[RowForm], problems: &Problems) -> Vec<RowView> {
    let spare_simple = RowForm::default();
    let spare_cron = RowForm {
        kind: RowKind::Cron,
        ..RowForm::default()
    };
    rows.iter()
        .map(|r| (r, false))
        .chain([(&spare_simple, true), (&spare_cron, true)])
        .enumerate()
        .map(|(i, (row, spare))| {
            let prefix = format!("windows[{i}]");
            let error = |field: &str| problems.of(&format!("{prefix}.{field}"));
            let stored = match (row.kind, spare, row.to_window()) {
                (RowKind::Simple, false, Ok(w)) => format!("{}, {} min", w.cron, w.duration_min),
                _ => String::new(),
            };
            RowView {
                number: i + 1,
                id: format!("w{i}"),
                cron_row: row.kind == RowKind::Cron,
                spare,
                days: windows::DAYS
                    .iter()
                    .zip(row.days)
                    .map(|(&(key, label), checked)| DayBox {
                        key,
                        label,
                        checked,
                    })
                    .collect(),
                start: row.start.clone(),
                end: row.end.clone(),
                next_day: row.next_day,
                cron: row.cron.clone(),
                duration_min: row.duration_min.clone(),
                was: row.was.clone(),
                stored,
                days_error: error("days"),
                start_error: error("start"),
                end_error: error("end"),
                cron_error: error("cron"),
                duration_error: error("duration_min"),
                prefix,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "policy/schedule.html")]
struct SchedulePage {
    chrome: Chrome,
    /// The schedule as saved, with its week; None on the new-schedule page.
    saved: Option<ScheduleLine>,
    /// What uses it: (link, words).
    used_by: Vec<(String, String)>,
    form: ScheduleForm,
    rows: Vec<RowView>,
    problems: Problems,
    /// Why a delete was refused, in words a person can act on.
    refused: Option<String>,
}

impl SchedulePage {
    fn action(&self) -> String {
        match &self.saved {
            Some(line) => format!("/schedules/{}/edit", line.schedule.id),
            None => "/schedules".to_owned(),
        }
    }

    fn cancel(&self) -> String {
        match &self.saved {
            Some(line) => format!("/schedules/{}", line.schedule.id),
            None => "/schedules".to_owned(),
        }
    }

    /// Messages about no field the form shows, so that none goes unsaid.
    fn other_problems(&self) -> Vec<String> {
        self.problems
            .0
            .0
            .iter()
            .filter(|(field, _)| {
                !["name", "description", "holidays", "windows"].contains(&field.as_str())
                    && !self
                        .rows
                        .iter()
                        .any(|r| field.starts_with(&format!("{}.", r.prefix)))
            })
            .map(|(field, messages)| format!("{field}: {}", messages.join("; ")))
            .collect()
    }
}

/// GET /schedules/new
pub async fn new_schedule(
    state: web::Data<AppState>,
    viewer: Viewer,
) -> Result<HttpResponse, PageError> {
    viewer.may_change_policy()?;
    render_schedule(&state, &viewer, None, None, Problems::default(), None).await
}

/// GET /schedules/{id}: a schedule's week, its windows, what uses it, and (for those who
/// may) its form.
pub async fn schedule(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    render_schedule(
        &state,
        &viewer,
        Some(id.into_inner()),
        None,
        Problems::default(),
        None,
    )
    .await
}

async fn render_schedule(
    state: &AppState,
    viewer: &Viewer,
    id: Option<i64>,
    typed: Option<ScheduleForm>,
    problems: Problems,
    refused: Option<String>,
) -> Result<HttpResponse, PageError> {
    let (saved, holidays, levels) = state
        .read(move |conn| {
            let saved = match id {
                Some(id) => Some(
                    Schedules::get(conn, id)?
                        .ok_or_else(|| ApiError::NotFound(format!("There is no schedule {id}.")))?,
                ),
                None => None,
            };
            let (holidays, _) = Holidays::list(conn, &HolidayFilter::default(), EVERYTHING)?;
            let levels = match id {
                Some(_) => Levels::list(conn, &LevelFilter::default(), EVERYTHING)?.0,
                None => Vec::new(),
            };
            Ok((saved, holidays, levels))
        })
        .await?;
    let chrome = Chrome::new(state, viewer, Section::Policy);
    let snapshot = state.live.snapshot();
    let form = typed.unwrap_or_else(|| match &saved {
        Some(view) => ScheduleForm::from_view(view),
        None => ScheduleForm {
            holidays: "closed".to_owned(),
            ..ScheduleForm::default()
        },
    });
    let mut using_levels: Vec<(i64, String)> = Vec::new();
    let mut using_doors: Vec<(i64, String)> = Vec::new();
    let mut used_by = Vec::new();
    if let Some(id) = id {
        for level in levels {
            if level.items.iter().any(|i| i.schedule_id == id) {
                let opens: Vec<String> = describe_items(&level, &snapshot)
                    .into_iter()
                    .zip(&level.items)
                    .filter(|(_, item)| item.schedule_id == id)
                    .map(|(words, _)| words)
                    .collect();
                used_by.push((
                    format!("/levels/{}", level.id),
                    format!("Access level {}: {}", level.name, opens.join("; ")),
                ));
                using_levels.push((level.id, level.name));
            }
        }
        for door in snapshot.doors() {
            if door.free_access_schedule_id == Some(id) {
                used_by.push((
                    format!("/doors/{}", door.id),
                    format!("Door {}: open to anyone during it (free access)", door.name),
                ));
                using_doors.push((door.id, door.name.clone()));
            }
        }
    }
    let refused = match (refused, &saved) {
        (Some(entity_says), Some(view)) => Some(refusal(
            &view.name,
            &entity_says,
            &[
                Keeping {
                    what: "Access levels that use it",
                    items: &using_levels,
                    remedy: "choose another schedule for those doors on each level's page",
                },
                Keeping {
                    what: "Doors open to anyone during it",
                    items: &using_doors,
                    remedy: "give them another free-access schedule, or none, in the site file or the API",
                },
            ],
        )),
        (refused, _) => refused,
    };
    let saved = saved
        .map(|view| Week::new(state, &snapshot, chrome.timezone, &holidays).line(&snapshot, view));
    let status = if refused.is_some() {
        StatusCode::CONFLICT
    } else {
        Problems::status(problems.is_empty())
    };
    crate::console::kit::page_with_status(
        status,
        &SchedulePage {
            chrome,
            saved,
            used_by,
            rows: row_views(&form.rows, &problems),
            form,
            problems,
            refused,
        },
    )
}

/// POST /schedules: adds a schedule with its windows.
pub async fn create_schedule(
    state: web::Data<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    // Before validating: a role that may not change schedules learns nothing from messages.
    posted.viewer.may_change_policy()?;
    save_schedule(&state, &posted, None).await
}

/// POST /schedules/{id}/edit: replaces a schedule's name, windows and holiday rule.
pub async fn edit_schedule(
    state: web::Data<AppState>,
    posted: Posted<Vec<(String, String)>>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    save_schedule(&state, &posted, Some(id.into_inner())).await
}

async fn save_schedule(
    state: &AppState,
    posted: &Posted<Vec<(String, String)>>,
    id: Option<i64>,
) -> Result<HttpResponse, PageError> {
    let form = ScheduleForm::from_pairs(posted.form.clone());
    if form.more {
        // "Add another window": the same form again, with a fresh spare row; nothing saved.
        return render_schedule(
            state,
            &posted.viewer,
            id,
            Some(form),
            Problems::default(),
            None,
        )
        .await;
    }
    let (windows, rows_of, row_problems) = form.windows();
    let input = ScheduleInput {
        name: form.name.trim().to_owned(),
        description: form.description.trim().to_owned(),
        holidays: form.holidays.trim().to_owned(),
        windows,
    };
    let rows = form.clone();
    let result = posted
        .change_policy(state, move |conn, ctx| {
            // The entity validates what the rows could say, so that every message comes
            // back at once; a row that could not be read undoes the save.
            crate::store::write_transaction(conn, |conn| {
                let saved = match id {
                    None => entities::create::<Schedules>(conn, input, ctx)
                        .map(|v| (v.id, Saved::Changed)),
                    Some(id) => {
                        saved::update::<Schedules>(conn, id, input, ctx).map(|saved| (id, saved))
                    }
                };
                match saved {
                    Ok(saved) if row_problems.is_empty() => Ok(saved),
                    Ok(_) => Err(ChangeError::Invalid(row_problems)),
                    Err(ChangeError::Invalid(fields)) => {
                        let mut all = rows.to_rows(fields, &rows_of);
                        if !row_problems.is_empty() {
                            // "needs at least one window": it has one, with a problem.
                            all.0.remove("windows");
                        }
                        for (field, messages) in row_problems.0 {
                            for m in messages {
                                all.add(field.clone(), m);
                            }
                        }
                        Err(ChangeError::Invalid(all))
                    }
                    Err(other) => Err(other),
                }
            })
            .map_err(ApiError::from)
        })
        .await;
    match result {
        Ok((saved_id, saved)) => Ok(saved::see_page(
            state,
            &posted.viewer,
            &format!("/schedules/{saved_id}"),
            saved,
            format!(
                "Schedule {} {}",
                form.name.trim(),
                if id.is_some() { "saved" } else { "added" }
            ),
        )),
        Err(ApiError::Invalid(fields)) => {
            render_schedule(
                state,
                &posted.viewer,
                id,
                Some(form),
                Problems(fields),
                None,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /schedules/{id}/delete: deletes a schedule that no level or door uses.
pub async fn delete_schedule(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let result = posted
        .change_policy(&state, move |conn, ctx| {
            let name = Schedules::get(conn, id)?.map(|schedule| schedule.name);
            entities::delete::<Schedules>(conn, id, ctx)?;
            Ok(name.unwrap_or_default())
        })
        .await;
    match result {
        Ok(name) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/schedules",
            Notice::done(format!("Schedule {name} deleted")),
        )),
        Err(ApiError::Conflict(message)) => {
            render_schedule(
                &state,
                &posted.viewer,
                Some(id),
                None,
                Problems::default(),
                Some(message),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_week_view_draws_each_open_interval_and_escapes_names() {
        let days = vec![
            vec![(7 * 60, 18 * 60)],
            vec![],
            vec![(0, 30), (22 * 60, 24 * 60)],
        ];
        let labels = vec!["Mon".to_owned(), "Tue".to_owned(), "Wed <b>".to_owned()];
        let svg = week_svg(&days, &labels, "Night & <day>");
        assert_eq!(svg.matches("class=\"open\"").count(), 3);
        assert!(svg.contains("Mon: open 07:00–18:00"));
        assert!(svg.contains("Wed &lt;b&gt;: open 22:00–24:00"));
        assert!(svg.contains("aria-label=\"Night &amp; &lt;day&gt;: open 13 hours"));
        assert!(!svg.contains("style="), "the CSP forbids inline style");
    }
}
