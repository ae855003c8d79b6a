//! The policy's shape for reading: zones as a tree with their doors, schedules with a week
//! view of when each is open (holidays included), and access levels with who holds them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;

use serde::Deserialize;

use super::session::{Posted, Viewer};
use super::{Chrome, PageError, Problems, Section, page, see_other};
use crate::entities::entitlements::{EntitlementFilter, Entitlements};
use crate::entities::holidays::{HolidayFilter, HolidayInput, HolidayView, Holidays};
use crate::entities::levels::{LevelFilter, LevelInput, LevelItem, LevelView, Levels};
use crate::entities::schedules::{ScheduleFilter, ScheduleView, Schedules};
use crate::entities::{self, Entity, FieldErrors, Page};
use crate::policy::Snapshot;
use crate::web::AppState;
use crate::web::error::ApiError;

const EVERYTHING: Page = Page {
    offset: 0,
    limit: 1000,
};

/// One zone in the tree, indented by its depth, with its doors.
pub struct ZoneLine {
    pub depth: usize,
    pub name: String,
    pub site: String,
    pub anti_passback: String,
    pub doors: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "policy/zones.html")]
struct ZonesPage {
    chrome: Chrome,
    zones: Vec<ZoneLine>,
}

/// GET /zones
pub async fn zones(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let snapshot = state.live.snapshot();
    let zones = snapshot.zones();
    let mut children: BTreeMap<Option<i64>, Vec<&crate::policy::Zone>> = BTreeMap::new();
    for z in zones {
        children.entry(z.parent_id).or_default().push(z);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut lines = Vec::new();
    // Depth-first from the roots; a stack, not recursion, so a deep tree cannot overflow.
    let mut stack: Vec<(&crate::policy::Zone, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|z| (*z, 0)).collect())
        .unwrap_or_default();
    while let Some((zone, depth)) = stack.pop() {
        let mut doors: Vec<(i64, String)> = snapshot
            .doors()
            .iter()
            .filter(|d| d.zone_id == zone.id)
            .map(|d| (d.id, d.name.clone()))
            .collect();
        doors.sort_by(|a, b| a.1.cmp(&b.1));
        lines.push(ZoneLine {
            depth,
            name: zone.name.clone(),
            site: snapshot
                .site(zone.site_id)
                .map_or_else(String::new, |s| s.name.clone()),
            anti_passback: zone.antipassback.as_str().to_owned(),
            doors,
        });
        if let Some(kids) = children.get(&Some(zone.id)) {
            stack.extend(kids.iter().rev().map(|z| (*z, depth + 1)));
        }
    }
    page(&ZonesPage {
        chrome: Chrome::new(&state, &viewer, Section::Policy),
        zones: lines,
    })
}

/// A schedule with its week drawn.
pub struct ScheduleLine {
    pub schedule: ScheduleView,
    /// The coming seven days as an SVG (server-rendered; no script).
    pub week_svg: String,
    /// In words: "open now, closes 18:00" or "closed now, opens Mon 07:00".
    pub now: String,
}

#[derive(Template)]
#[template(path = "policy/schedules.html")]
struct SchedulesPage {
    chrome: Chrome,
    schedules: Vec<ScheduleLine>,
    holidays: Vec<(HolidayView, String)>,
    sites: Vec<(i64, String)>,
    typed: HolidayForm,
    problems: Problems,
}

/// The add-a-holiday form, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct HolidayForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    date: String,
    /// A site's id, or empty for every site.
    #[serde(default)]
    site_id: String,
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
        super::charts::escape(name),
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
            super::charts::escape(label),
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
                super::charts::escape(label),
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

/// GET /schedules
pub async fn schedules(
    state: web::Data<AppState>,
    viewer: Viewer,
) -> Result<HttpResponse, PageError> {
    render_schedules(&state, &viewer, HolidayForm::default(), Problems::default()).await
}

async fn render_schedules(
    state: &AppState,
    viewer: &Viewer,
    typed: HolidayForm,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let (schedules, holidays) = state
        .read(|conn| {
            let (schedules, _) = Schedules::list(conn, &ScheduleFilter::default(), EVERYTHING)?;
            let (holidays, _) = Holidays::list(conn, &HolidayFilter::default(), EVERYTHING)?;
            Ok((schedules, holidays))
        })
        .await?;
    let chrome = Chrome::new(state, viewer, Section::Policy);
    let snapshot = state.live.snapshot();
    let site = snapshot.sites().first().map(|s| s.id);
    let now = state.clock.now();
    let start = local_midnight(now, chrome.timezone);
    let labels: Vec<String> = (0..7)
        .map(|d| {
            let day =
                (start + Duration::days(d) + Duration::hours(12)).with_timezone(&chrome.timezone);
            let holiday = holidays
                .iter()
                .find(|h| h.date == day.date_naive())
                .map(|_| " ★")
                .unwrap_or_default();
            format!("{} {}{holiday}", day.weekday(), day.format("%d %b"))
        })
        .collect();
    let lines = schedules
        .into_iter()
        .map(|schedule| {
            let (week_svg, now_text) = match site {
                Some(site) => {
                    let days = week_intervals(&snapshot, schedule.id, site, start);
                    let open = snapshot
                        .is_schedule_open(schedule.id, site, now)
                        .unwrap_or(false);
                    let change = snapshot
                        .schedule_next_change(schedule.id, site, now)
                        .map(|t| {
                            t.with_timezone(&chrome.timezone)
                                .format("%a %H:%M")
                                .to_string()
                        });
                    let text = match (open, change) {
                        (true, Some(at)) => format!("open now, closes {at}"),
                        (true, None) => "open now".to_owned(),
                        (false, Some(at)) => format!("closed now, opens {at}"),
                        (false, None) => "closed now".to_owned(),
                    };
                    (week_svg(&days, &labels, &schedule.name), text)
                }
                None => (String::new(), "no site to run it at".to_owned()),
            };
            ScheduleLine {
                schedule,
                week_svg,
                now: now_text,
            }
        })
        .collect();
    let holidays = holidays
        .into_iter()
        .map(|h| {
            let site = h
                .site_id
                .and_then(|id| snapshot.site(id))
                .map_or_else(|| "every site".to_owned(), |s| s.name.clone());
            (h, site)
        })
        .collect();
    let sites = snapshot
        .sites()
        .iter()
        .map(|s| (s.id, s.name.clone()))
        .collect();
    let status = Problems::status(problems.is_empty());
    super::page_with_status(
        status,
        &SchedulesPage {
            chrome,
            schedules: lines,
            holidays,
            sites,
            typed,
            problems,
        },
    )
}

/// POST /holidays: adds a holiday (a day the doors treat as closed for schedules that
/// close on holidays), at one site or every site.
pub async fn add_holiday(
    state: web::Data<AppState>,
    posted: Posted<HolidayForm>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let form = posted.form.clone();
    let mut problems = FieldErrors::default();
    let date = chrono::NaiveDate::parse_from_str(form.date.trim(), "%Y-%m-%d").ok();
    if date.is_none() {
        problems.add("date", "enter a date like 2026-12-26");
    }
    let site_id = match form.site_id.trim() {
        "" => None,
        id => id.parse::<i64>().ok().or_else(|| {
            problems.add("site_id", "choose a site from the list");
            None
        }),
    };
    let result = match date {
        Some(date) if problems.is_empty() => {
            let input = HolidayInput {
                site_id,
                name: form.name.trim().to_owned(),
                date,
            };
            posted
                .change_policy(&state, move |conn, ctx| {
                    entities::create::<Holidays>(conn, input, ctx)?;
                    Ok(())
                })
                .await
        }
        _ => Err(ApiError::Invalid(problems)),
    };
    match result {
        Ok(()) => Ok(see_other("/schedules")),
        Err(ApiError::Invalid(fields)) => {
            render_schedules(&state, &posted.viewer, posted.form, Problems(fields)).await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct NoFields {}

/// POST /holidays/{id}/delete
pub async fn delete_holiday(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    posted
        .change_policy(&state, move |conn, ctx| {
            entities::delete::<Holidays>(conn, id, ctx)?;
            Ok(())
        })
        .await?;
    Ok(see_other("/schedules"))
}

/// An access level with its items in words and how many hold it.
pub struct LevelLine {
    pub level: LevelView,
    /// "Main Entrance (door) during Business hours".
    pub items: Vec<String>,
    pub holders: i64,
}

#[derive(Template)]
#[template(path = "policy/levels.html")]
struct LevelsPage {
    chrome: Chrome,
    levels: Vec<LevelLine>,
}

fn describe_items(level: &LevelView, snapshot: &Snapshot) -> Vec<String> {
    level
        .items
        .iter()
        .map(|item| {
            let target = match (item.door_id, item.zone_id) {
                (Some(id), _) => snapshot
                    .door(id)
                    .map_or_else(|| format!("door {id}"), |d| format!("{} (door)", d.name)),
                (None, Some(id)) => snapshot.zone(id).map_or_else(
                    || format!("zone {id}"),
                    |z| format!("{} (zone, all its doors)", z.name),
                ),
                (None, None) => "nothing".to_owned(),
            };
            let schedule = snapshot.schedule(item.schedule_id).map_or_else(
                || format!("schedule {}", item.schedule_id),
                |s| s.name.clone(),
            );
            format!("{target} during {schedule}")
        })
        .collect()
}

/// GET /levels
pub async fn levels(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let rows = state
        .read(|conn| {
            let (levels, _) = Levels::list(conn, &LevelFilter::default(), EVERYTHING)?;
            let mut out = Vec::with_capacity(levels.len());
            for level in levels {
                let (_, holders) = Entitlements::list(
                    conn,
                    &EntitlementFilter {
                        person_id: None,
                        level_id: Some(level.id),
                    },
                    Page {
                        offset: 0,
                        limit: 1,
                    },
                )?;
                out.push((level, holders));
            }
            Ok(out)
        })
        .await?;
    let snapshot = state.live.snapshot();
    let levels = rows
        .into_iter()
        .map(|(level, holders)| LevelLine {
            items: describe_items(&level, &snapshot),
            level,
            holders,
        })
        .collect();
    page(&LevelsPage {
        chrome: Chrome::new(&state, &viewer, Section::Policy),
        levels,
    })
}

/// Someone who holds a level.
pub struct Holder {
    pub person_id: i64,
    pub name: String,
    pub employee_id: String,
    pub until: Option<DateTime<Utc>>,
    pub granted_by: String,
}

#[derive(Template)]
#[template(path = "policy/level.html")]
struct LevelPage {
    chrome: Chrome,
    level: LevelView,
    /// Each item: its form key (`door:ID`), its schedule, and in words.
    items: Vec<(String, i64, String)>,
    holders: Vec<Holder>,
    total: i64,
    page: i64,
    pages: i64,
    /// What the add-item form offers: doors and zones ("door:ID", "zone:ID"), schedules.
    doors: Vec<(i64, String)>,
    zones: Vec<(i64, String)>,
    schedules: Vec<(i64, String)>,
    problems: Problems,
}

impl LevelPage {
    fn page_href(&self, page: &i64) -> String {
        format!("/levels/{}?page={page}", self.level.id)
    }
}

/// The forms of the access-level pages, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct LevelForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// `door:ID` or `zone:ID`.
    #[serde(default)]
    target: String,
    #[serde(default)]
    schedule_id: String,
}

/// How a level item is named in a form: `door:ID` or `zone:ID`.
fn target_key(item: &LevelItem) -> String {
    match (item.door_id, item.zone_id) {
        (Some(id), _) => format!("door:{id}"),
        (None, Some(id)) => format!("zone:{id}"),
        (None, None) => String::new(),
    }
}

/// GET /levels/{id}: what the level opens and who holds it.
pub async fn level(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
    query: web::Query<HoldersQuery>,
) -> Result<HttpResponse, PageError> {
    let page_no = query.page.unwrap_or(1).max(1);
    render_level(
        &state,
        &viewer,
        id.into_inner(),
        page_no,
        Problems::default(),
    )
    .await
}

#[derive(Deserialize)]
pub struct HoldersQuery {
    page: Option<i64>,
}

/// Holders listed per page of a level.
const HOLDERS_PAGE: i64 = 100;

async fn render_level(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    page_no: i64,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let (level, entitlements, total) = state
        .read(move |conn| {
            let level = Levels::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no access level {id}.")))?;
            let (entitlements, total) = Entitlements::list(
                conn,
                &EntitlementFilter {
                    person_id: None,
                    level_id: Some(id),
                },
                Page {
                    offset: (page_no - 1).saturating_mul(HOLDERS_PAGE),
                    limit: HOLDERS_PAGE,
                },
            )?;
            Ok((level, entitlements, total))
        })
        .await?;
    let snapshot = state.live.snapshot();
    let holders = entitlements
        .into_iter()
        .map(|e| {
            let (name, employee) = snapshot.person(e.person_id).map_or_else(
                || (format!("person {}", e.person_id), String::new()),
                |p| (p.name.clone(), p.employee_id.clone()),
            );
            Holder {
                person_id: e.person_id,
                name,
                employee_id: employee,
                until: e.valid_until,
                granted_by: e.granted_by,
            }
        })
        .collect();
    let sorted = |mut v: Vec<(i64, String)>| {
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    };
    let status = Problems::status(problems.is_empty());
    super::page_with_status(
        status,
        &LevelPage {
            chrome: Chrome::new(state, viewer, Section::Policy),
            items: level
                .items
                .iter()
                .map(target_key)
                .zip(level.items.iter().map(|i| i.schedule_id))
                .zip(describe_items(&level, &snapshot))
                .map(|((key, schedule), words)| (key, schedule, words))
                .collect(),
            level,
            holders,
            total,
            page: page_no,
            pages: ((total + HOLDERS_PAGE - 1) / HOLDERS_PAGE).max(1),
            doors: sorted(
                snapshot
                    .doors()
                    .iter()
                    .map(|d| (d.id, d.name.clone()))
                    .collect(),
            ),
            zones: sorted(
                snapshot
                    .zones()
                    .iter()
                    .map(|z| (z.id, z.name.clone()))
                    .collect(),
            ),
            schedules: sorted(
                snapshot
                    .schedules()
                    .iter()
                    .map(|s| (s.id, s.name.clone()))
                    .collect(),
            ),
            problems,
        },
    )
}

/// POST /levels: a new, empty access level; doors are added on its page.
pub async fn create_level(
    state: web::Data<AppState>,
    posted: Posted<LevelForm>,
) -> Result<HttpResponse, PageError> {
    let input = LevelInput {
        name: posted.form.name.trim().to_owned(),
        description: posted.form.description.trim().to_owned(),
        items: Vec::new(),
    };
    let created = posted
        .change_policy(&state, move |conn, ctx| {
            Ok(entities::create::<Levels>(conn, input, ctx)?)
        })
        .await;
    match created {
        Ok(level) => Ok(see_other(&format!("/levels/{}", level.id))),
        Err(ApiError::Invalid(fields)) => {
            Err(PageError::BadForm(Problems(fields).others(&[]).join("; ")))
        }
        Err(other) => Err(other.into()),
    }
}

/// Replaces a level's items with what `edit` makes of them, keeping its name.
async fn edit_items(
    state: &AppState,
    posted: &Posted<LevelForm>,
    id: i64,
    edit: impl FnOnce(&mut Vec<LevelItem>) -> Result<(), FieldErrors> + Send + 'static,
) -> Result<HttpResponse, PageError> {
    let result = posted
        .change_policy(state, move |conn, ctx| {
            let level = Levels::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no access level {id}.")))?;
            let mut items = level.items;
            edit(&mut items).map_err(ApiError::Invalid)?;
            let input = LevelInput {
                name: level.name,
                description: level.description,
                items,
            };
            entities::update::<Levels>(conn, id, input, ctx)?;
            Ok(())
        })
        .await;
    match result {
        Ok(()) => Ok(see_other(&format!("/levels/{id}"))),
        Err(ApiError::Invalid(fields)) => {
            render_level(state, &posted.viewer, id, 1, Problems(fields)).await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /levels/{id}/items: adds a door or zone, during a schedule, to the level.
pub async fn add_item(
    state: web::Data<AppState>,
    posted: Posted<LevelForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let (target, schedule) = (posted.form.target.clone(), posted.form.schedule_id.clone());
    edit_items(&state, &posted, id.into_inner(), move |items| {
        let mut errors = FieldErrors::default();
        let (door_id, zone_id) = match target.split_once(':') {
            Some(("door", id)) => (id.parse().ok(), None),
            Some(("zone", id)) => (None, id.parse().ok()),
            _ => (None, None),
        };
        if door_id.is_none() && zone_id.is_none() {
            errors.add("target", "choose a door or a zone");
        }
        let schedule_id = schedule.parse::<i64>().ok();
        if schedule_id.is_none() {
            errors.add("schedule_id", "choose a schedule");
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        items.push(LevelItem {
            door_id,
            zone_id,
            schedule_id: schedule_id.unwrap_or_default(),
        });
        Ok(())
    })
    .await
}

/// POST /levels/{id}/items/remove: takes one door or zone out of the level.
pub async fn remove_item(
    state: web::Data<AppState>,
    posted: Posted<LevelForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let (target, schedule) = (posted.form.target.clone(), posted.form.schedule_id.clone());
    edit_items(&state, &posted, id.into_inner(), move |items| {
        // Named by what it is, not where it stands: another admin may have changed the
        // list since this page was drawn.
        let found = items
            .iter()
            .position(|i| target_key(i) == target && i.schedule_id.to_string() == schedule);
        match found {
            Some(i) => {
                items.remove(i);
                Ok(())
            }
            None => {
                let mut errors = FieldErrors::default();
                errors.add(
                    "item",
                    "that item is no longer in the level; reload the page",
                );
                Err(errors)
            }
        }
    })
    .await
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
