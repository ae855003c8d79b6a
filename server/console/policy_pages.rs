//! The policy's shape, to read and to change: zones as a tree with their doors (add, edit,
//! delete), schedules with a week view of when each is open, holidays included (add, edit
//! with a row per window, delete), holidays (searched and paged; add, remove), and access levels with who holds them. Every change
//! goes through the same `entities` functions as the API, so validation and the audit log
//! are shared.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;

use serde::Deserialize;

use super::listing::{ListQuery, Paged};
use super::saved::{self, Saved, SavedQuery};
use super::session::{Posted, Viewer};
use super::{Chrome, PageError, Problems, Section, page, see_other};
use crate::entities::doors::{DoorFilter, Doors};
use crate::entities::entitlements::{EntitlementFilter, Entitlements};
use crate::entities::holidays::{HolidayFilter, HolidayInput, HolidayView, Holidays};
use crate::entities::levels::{LevelFilter, LevelInput, LevelItem, LevelView, Levels};
use crate::entities::schedules::{ScheduleFilter, ScheduleInput, ScheduleView, Schedules};
use crate::entities::zones::{ZoneFilter, ZoneInput, ZoneView, Zones};
use crate::entities::{self, ChangeError, Entity, FieldErrors, Page};
use crate::policy::{Snapshot, Zone};
use crate::web::AppState;
use crate::web::error::ApiError;

mod windows;

use windows::{RowForm, RowKind, ScheduleForm};

const EVERYTHING: Page = Page {
    offset: 0,
    limit: 1000,
};

/// One zone in the tree, indented by its depth, with its doors.
pub struct ZoneLine {
    pub id: i64,
    pub depth: usize,
    pub name: String,
    pub site: String,
    pub anti_passback: String,
    pub doors: Vec<(i64, String)>,
    /// Shown only because a zone or door that matches the search lies inside it.
    pub context: bool,
}

/// What a search of the zone tree found: how many zones and doors match.
pub struct ZoneSearch {
    pub zones: usize,
    pub doors: usize,
}

/// What the zone form offers: sites, the zones a zone can be put inside (by their path),
/// and the anti-passback settings in words.
pub struct ZoneChoices {
    pub sites: Vec<(i64, String)>,
    pub parents: Vec<(i64, String)>,
    pub antipassback: [(&'static str, &'static str); 3],
}

/// The add-a-zone and edit-a-zone form, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct ZoneForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    site_id: String,
    /// A zone's id, or empty for a top-level zone.
    #[serde(default)]
    parent_id: String,
    #[serde(default)]
    antipassback: String,
    /// `HH:MM`, or empty for no daily reset.
    #[serde(default)]
    presence_reset: String,
}

#[derive(Template)]
#[template(path = "policy/zones.html")]
struct ZonesPage {
    chrome: Chrome,
    /// The search typed; empty for the whole tree.
    q: String,
    /// What the search found; None when the whole tree is shown.
    found: Option<ZoneSearch>,
    zones: Vec<ZoneLine>,
    form: ZoneForm,
    choices: ZoneChoices,
    problems: Problems,
}

#[derive(Template)]
#[template(path = "policy/zone.html")]
struct ZonePage {
    chrome: Chrome,
    zone: ZoneView,
    /// "Building › Server Room".
    path: String,
    site: String,
    antipassback: &'static str,
    doors: Vec<(i64, String)>,
    children: Vec<(i64, String)>,
    levels: Vec<(i64, String)>,
    form: ZoneForm,
    choices: ZoneChoices,
    problems: Problems,
    /// Why a delete was refused, in words a person can act on.
    refused: Option<String>,
    /// "Nothing changed", after a save that changed nothing.
    notice: Option<&'static str>,
}

impl ZonePage {
    fn edit_action(&self) -> String {
        format!("/zones/{}/edit", self.zone.id)
    }
}

const ANTIPASSBACK: [(&str, &str); 3] = [
    ("off", "Off: not tracked"),
    ("soft", "Soft: let through, but flagged"),
    ("hard", "Hard: refused"),
];

fn antipassback_words(value: &str) -> &'static str {
    ANTIPASSBACK
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("unknown", |(_, words)| words)
}

/// The snapshot's zones depth-first from the roots, by name, each with its depth.
fn zone_tree(snapshot: &Snapshot) -> Vec<(&Zone, usize)> {
    let mut children: BTreeMap<Option<i64>, Vec<&Zone>> = BTreeMap::new();
    for z in snapshot.zones() {
        children.entry(z.parent_id).or_default().push(z);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut out = Vec::new();
    // A stack, not recursion, so a deep tree cannot overflow.
    let mut stack: Vec<(&Zone, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|z| (*z, 0)).collect())
        .unwrap_or_default();
    while let Some((zone, depth)) = stack.pop() {
        out.push((zone, depth));
        if let Some(kids) = children.get(&Some(zone.id)) {
            stack.extend(kids.iter().rev().map(|z| (*z, depth + 1)));
        }
    }
    out
}

/// A zone and the zones it lies in, innermost first (bounded: a corrupted cycle in the
/// database must not hang a page).
fn ancestry(snapshot: &Snapshot, zone_id: i64) -> Vec<&Zone> {
    let mut out = Vec::new();
    let mut current = snapshot.zone(zone_id);
    while let Some(zone) = current {
        if out.len() >= 1000 {
            break;
        }
        out.push(zone);
        current = zone.parent_id.and_then(|p| snapshot.zone(p));
    }
    out
}

/// "Building › Server Room".
fn zone_path(snapshot: &Snapshot, zone_id: i64) -> String {
    let names: Vec<&str> = ancestry(snapshot, zone_id)
        .iter()
        .rev()
        .map(|z| z.name.as_str())
        .collect();
    names.join(" › ")
}

/// A site's zones as a tree, each named by its path ("Building › Server Room"): where a
/// door of that site can be moved.
pub fn site_zones(snapshot: &Snapshot, site_id: i64) -> Vec<(i64, String)> {
    zone_tree(snapshot)
        .into_iter()
        .filter(|(z, _)| z.site_id == site_id)
        .map(|(z, _)| (z.id, zone_path(snapshot, z.id)))
        .collect()
}

/// The choices of the zone form. A zone cannot go inside itself or one of its own
/// zones, so the edit form does not offer those (`editing`).
fn zone_choices(snapshot: &Snapshot, editing: Option<i64>) -> ZoneChoices {
    let several_sites = snapshot.sites().len() > 1;
    let parents = zone_tree(snapshot)
        .into_iter()
        .filter(|(z, _)| {
            editing.is_none_or(|id| !ancestry(snapshot, z.id).iter().any(|a| a.id == id))
        })
        .map(|(z, _)| {
            let path = zone_path(snapshot, z.id);
            let label = match snapshot.site(z.site_id) {
                Some(site) if several_sites => format!("{} › {path}", site.name),
                _ => path,
            };
            (z.id, label)
        })
        .collect();
    ZoneChoices {
        sites: snapshot
            .sites()
            .iter()
            .map(|s| (s.id, s.name.clone()))
            .collect(),
        parents,
        antipassback: ANTIPASSBACK,
    }
}

/// The entity input a zone form asks for, or what is wrong with it (only a form that was
/// not sent by this page's selects has anything wrong here; the entity checks the rest).
fn zone_input(form: &ZoneForm) -> Result<ZoneInput, FieldErrors> {
    let mut problems = FieldErrors::default();
    let site_id = form.site_id.trim().parse::<i64>().ok();
    if site_id.is_none() {
        problems.add("site_id", "choose a site");
    }
    let parent_id = match form.parent_id.trim() {
        "" => None,
        text => text.parse::<i64>().ok().or_else(|| {
            problems.add("parent_id", "choose a zone from the list, or none");
            None
        }),
    };
    match site_id {
        Some(site_id) if problems.is_empty() => Ok(ZoneInput {
            site_id,
            parent_id,
            name: form.name.trim().to_owned(),
            antipassback: form.antipassback.trim().to_owned(),
            presence_reset: Some(form.presence_reset.trim().to_owned()),
        }),
        _ => Err(problems),
    }
}

/// GET /zones
pub async fn zones(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let snapshot = state.live.snapshot();
    let form = ZoneForm {
        site_id: snapshot
            .sites()
            .first()
            .map(|s| s.id.to_string())
            .unwrap_or_default(),
        antipassback: "off".to_owned(),
        ..ZoneForm::default()
    };
    render_zones(&state, &viewer, query.search(), form, Problems::default())
}

/// The zone tree with each zone's doors; with a search, only the zones whose name
/// matches (with all their doors), the zones holding a door whose name matches (with
/// those doors), and the zones these lie in, marked as context, so that every match is
/// seen where it is. Names match as the other lists search: any part, in any case.
fn zone_lines(snapshot: &Snapshot, search: Option<&str>) -> (Vec<ZoneLine>, Option<ZoneSearch>) {
    let needle = search.map(str::to_lowercase);
    let matches = |name: &str| {
        needle
            .as_ref()
            .is_some_and(|n| name.to_lowercase().contains(n))
    };
    let mut doors_of: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
    for d in snapshot.doors() {
        doors_of
            .entry(d.zone_id)
            .or_default()
            .push((d.id, d.name.clone()));
    }
    for list in doors_of.values_mut() {
        list.sort_by(|a, b| a.1.cmp(&b.1));
    }
    let tree = zone_tree(snapshot);
    let (mut found, mut context) = (HashSet::new(), HashSet::new());
    let mut found_zones = 0;
    if needle.is_some() {
        for (zone, _) in &tree {
            let name_matches = matches(&zone.name);
            found_zones += usize::from(name_matches);
            let door_matches = doors_of
                .get(&zone.id)
                .is_some_and(|doors| doors.iter().any(|(_, name)| matches(name)));
            if name_matches || door_matches {
                found.insert(zone.id);
                // Its ancestors, not itself: the first of `ancestry` is the zone.
                context.extend(ancestry(snapshot, zone.id).iter().skip(1).map(|z| z.id));
            }
        }
    }
    let lines: Vec<ZoneLine> = tree
        .into_iter()
        .filter_map(|(zone, depth)| {
            let all = doors_of.get(&zone.id).cloned().unwrap_or_default();
            let (doors, is_context) = match &needle {
                None => (all, false),
                Some(_) if matches(&zone.name) => (all, false),
                Some(_) if found.contains(&zone.id) => (
                    all.into_iter().filter(|(_, name)| matches(name)).collect(),
                    false,
                ),
                Some(_) if context.contains(&zone.id) => (Vec::new(), true),
                Some(_) => return None,
            };
            Some(ZoneLine {
                id: zone.id,
                depth,
                name: zone.name.clone(),
                site: snapshot
                    .site(zone.site_id)
                    .map_or_else(String::new, |s| s.name.clone()),
                anti_passback: zone.antipassback.as_str().to_owned(),
                doors,
                context: is_context,
            })
        })
        .collect();
    let summary = search.map(|_| ZoneSearch {
        zones: found_zones,
        doors: snapshot.doors().iter().filter(|d| matches(&d.name)).count(),
    });
    (lines, summary)
}

fn render_zones(
    state: &AppState,
    viewer: &Viewer,
    search: Option<String>,
    form: ZoneForm,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let snapshot = state.live.snapshot();
    let (lines, found) = zone_lines(&snapshot, search.as_deref());
    super::page_with_status(
        Problems::status(problems.is_empty()),
        &ZonesPage {
            chrome: Chrome::new(state, viewer, Section::Policy),
            q: search.unwrap_or_default(),
            found,
            zones: lines,
            form,
            choices: zone_choices(&snapshot, None),
            problems,
        },
    )
}

/// POST /zones: adds a zone, at the top of its site or inside another zone.
pub async fn create_zone(
    state: web::Data<AppState>,
    posted: Posted<ZoneForm>,
) -> Result<HttpResponse, PageError> {
    // Before validating: a role that may not change zones learns nothing from messages.
    posted.viewer.may_change_policy()?;
    let result = match zone_input(&posted.form) {
        Ok(input) => {
            posted
                .change_policy(&state, move |conn, ctx| {
                    Ok(entities::create::<Zones>(conn, input, ctx)?.id)
                })
                .await
        }
        Err(problems) => Err(ApiError::Invalid(problems)),
    };
    match result {
        Ok(id) => Ok(see_other(&format!("/zones/{id}"))),
        Err(ApiError::Invalid(fields)) => render_zones(
            &state,
            &posted.viewer,
            None,
            posted.form.clone(),
            Problems(fields),
        ),
        Err(other) => Err(other.into()),
    }
}

/// GET /zones/{id}: a zone, what is in it, and (for those who may) its form.
pub async fn zone(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
    query: web::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    render_zone(
        &state,
        &viewer,
        id.into_inner(),
        None,
        Problems::default(),
        None,
        query.notice(),
    )
    .await
}

async fn render_zone(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    typed: Option<ZoneForm>,
    problems: Problems,
    refused: Option<String>,
    notice: Option<&'static str>,
) -> Result<HttpResponse, PageError> {
    let (zone, doors, children, levels) = state
        .read(move |conn| {
            let zone = Zones::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no zone {id}.")))?;
            let (doors, _) = Doors::list(
                conn,
                &DoorFilter {
                    zone_id: Some(id),
                    ..DoorFilter::default()
                },
                EVERYTHING,
            )?;
            let (children, _) = Zones::list(
                conn,
                &ZoneFilter {
                    parent_id: Some(id),
                    ..ZoneFilter::default()
                },
                EVERYTHING,
            )?;
            let (levels, _) = Levels::list(
                conn,
                &LevelFilter {
                    zone_id: Some(id),
                    ..LevelFilter::default()
                },
                EVERYTHING,
            )?;
            Ok((zone, doors, children, levels))
        })
        .await?;
    let snapshot = state.live.snapshot();
    let doors: Vec<(i64, String)> = doors.into_iter().map(|d| (d.id, d.name)).collect();
    let children: Vec<(i64, String)> = children.into_iter().map(|z| (z.id, z.name)).collect();
    let levels: Vec<(i64, String)> = levels.into_iter().map(|l| (l.id, l.name)).collect();
    let refused = refused
        .map(|entity_says| zone_refusal(&zone.name, &entity_says, &doors, &children, &levels));
    let form = typed.unwrap_or_else(|| ZoneForm {
        name: zone.name.clone(),
        site_id: zone.site_id.to_string(),
        parent_id: zone.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        antipassback: zone.antipassback.clone(),
        presence_reset: zone.presence_reset.clone().unwrap_or_default(),
    });
    let status = if refused.is_some() {
        StatusCode::CONFLICT
    } else {
        Problems::status(problems.is_empty())
    };
    super::page_with_status(
        status,
        &ZonePage {
            chrome: Chrome::new(state, viewer, Section::Policy),
            path: zone_path(&snapshot, id),
            site: snapshot
                .site(zone.site_id)
                .map_or_else(String::new, |s| s.name.clone()),
            antipassback: antipassback_words(&zone.antipassback),
            zone,
            doors,
            children,
            levels,
            form,
            choices: zone_choices(&snapshot, Some(id)),
            problems,
            refused,
            notice,
        },
    )
}

/// Names a list: "Main Entrance", "Main Entrance and Lobby", "A, B and C".
fn and_list(items: &[(i64, String)]) -> String {
    match items {
        [] => String::new(),
        [one] => one.1.clone(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.1
        ),
    }
}

/// One kind of thing that keeps something from being deleted: what they are, which
/// (id and name), and what to do about them.
struct Keeping<'a> {
    what: &'a str,
    items: &'a [(i64, String)],
    remedy: &'a str,
}

/// Why something could not be deleted, naming what keeps it and what to do about each.
/// The entity layer decided; this only says it in the building's terms, or repeats the
/// entity's words when the console finds nothing.
fn refusal(name: &str, entity_says: &str, reasons: &[Keeping<'_>]) -> String {
    let named: Vec<String> = reasons
        .iter()
        .filter(|k| !k.items.is_empty())
        .map(|k| format!("{}: {}; {}.", k.what, and_list(k.items), k.remedy))
        .collect();
    if named.is_empty() {
        return format!("{name} was not deleted: {entity_says}.");
    }
    format!("{name} was not deleted. {}", named.join(" "))
}

fn zone_refusal(
    name: &str,
    entity_says: &str,
    doors: &[(i64, String)],
    children: &[(i64, String)],
    levels: &[(i64, String)],
) -> String {
    refusal(
        name,
        entity_says,
        &[
            Keeping {
                what: "Doors still in it",
                items: doors,
                remedy: "move each to another zone on its own page, or delete them in the site file or the API",
            },
            Keeping {
                what: "Zones inside it",
                items: children,
                remedy: "put them elsewhere on their own pages, or delete them",
            },
            Keeping {
                what: "Access levels that open it",
                items: levels,
                remedy: "take it out of them on each level's page",
            },
        ],
    )
}

/// POST /zones/{id}/edit: renames a zone, moves it, or changes its anti-passback.
pub async fn edit_zone(
    state: web::Data<AppState>,
    posted: Posted<ZoneForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let id = id.into_inner();
    let result = match zone_input(&posted.form) {
        Ok(input) => {
            posted
                .change_policy(&state, move |conn, ctx| {
                    Ok(saved::update::<Zones>(conn, id, input, ctx)?)
                })
                .await
        }
        Err(problems) => Err(ApiError::Invalid(problems)),
    };
    match result {
        Ok(saved) => Ok(saved::see_page(&format!("/zones/{id}"), saved)),
        Err(ApiError::Invalid(fields)) => {
            render_zone(
                &state,
                &posted.viewer,
                id,
                Some(posted.form.clone()),
                Problems(fields),
                None,
                None,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /zones/{id}/delete: deletes a zone that nothing is in and nothing refers to.
pub async fn delete_zone(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let result = posted
        .change_policy(&state, move |conn, ctx| {
            entities::delete::<Zones>(conn, id, ctx)?;
            Ok(())
        })
        .await;
    match result {
        Ok(()) => Ok(see_other("/zones")),
        Err(ApiError::Conflict(message)) => {
            render_zone(
                &state,
                &posted.viewer,
                id,
                None,
                Problems::default(),
                Some(message),
                None,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

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

#[derive(Template)]
#[template(path = "policy/holidays.html")]
struct HolidaysPage {
    chrome: Chrome,
    list: Paged,
    /// The page of holidays shown, each with where it applies.
    holidays: Vec<(HolidayView, String)>,
    sites: Vec<(i64, String)>,
    typed: HolidayForm,
    problems: Problems,
}

/// A stored window: in words where days and times can say it, and as stored.
pub struct WindowLine {
    pub words: String,
    pub cron: String,
    pub duration_min: i32,
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

/// Holidays per page of their list.
const HOLIDAYS_PAGE: i64 = 50;

/// GET /holidays
pub async fn holidays(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    render_holidays(
        &state,
        &viewer,
        query.into_inner(),
        HolidayForm::default(),
        Problems::default(),
    )
    .await
}

/// The holidays in date order, searched by name, with the add-a-holiday form.
async fn render_holidays(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
    typed: HolidayForm,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let filter = HolidayFilter {
        q: query.search(),
        ..HolidayFilter::default()
    };
    let paging = query.rows(HOLIDAYS_PAGE);
    let (holidays, total) = state
        .read(move |conn| Ok(Holidays::list(conn, &filter, paging)?))
        .await?;
    let snapshot = state.live.snapshot();
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
        &HolidaysPage {
            chrome: Chrome::new(state, viewer, Section::Policy),
            list: Paged::new("/holidays", &query, total, HOLIDAYS_PAGE),
            holidays,
            sites,
            typed,
            problems,
        },
    )
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
    /// "Nothing changed", after a save that changed nothing.
    notice: Option<&'static str>,
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
    render_schedule(&state, &viewer, None, None, Problems::default(), None, None).await
}

/// GET /schedules/{id}: a schedule's week, its windows, what uses it, and (for those who
/// may) its form.
pub async fn schedule(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
    query: web::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    render_schedule(
        &state,
        &viewer,
        Some(id.into_inner()),
        None,
        Problems::default(),
        None,
        query.notice(),
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
    notice: Option<&'static str>,
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
    super::page_with_status(
        status,
        &SchedulePage {
            chrome,
            saved,
            used_by,
            rows: row_views(&form.rows, &problems),
            form,
            problems,
            refused,
            notice,
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
        Ok((id, saved)) => Ok(saved::see_page(&format!("/schedules/{id}"), saved)),
        Err(ApiError::Invalid(fields)) => {
            render_schedule(
                state,
                &posted.viewer,
                id,
                Some(form),
                Problems(fields),
                None,
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
            entities::delete::<Schedules>(conn, id, ctx)?;
            Ok(())
        })
        .await;
    match result {
        Ok(()) => Ok(see_other("/schedules")),
        Err(ApiError::Conflict(message)) => {
            render_schedule(
                &state,
                &posted.viewer,
                Some(id),
                None,
                Problems::default(),
                Some(message),
                None,
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
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
        Ok(()) => Ok(see_other("/holidays")),
        Err(ApiError::Invalid(fields)) => {
            render_holidays(
                &state,
                &posted.viewer,
                ListQuery::default(),
                posted.form,
                Problems(fields),
            )
            .await
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
    Ok(see_other("/holidays"))
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
    list: Paged,
    levels: Vec<LevelLine>,
}

/// Access levels per page of the list.
const LEVELS_PAGE: i64 = 50;

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
pub async fn levels(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let filter = LevelFilter {
        q: query.search(),
        ..LevelFilter::default()
    };
    let paging = query.rows(LEVELS_PAGE);
    let (rows, total) = state
        .read(move |conn| {
            use crate::store::schema::entitlements;
            use diesel::prelude::*;
            let (levels, total) = Levels::list(conn, &filter, paging)?;
            // How many hold each level on this page, in one query rather than one each.
            let ids: Vec<i64> = levels.iter().map(|l| l.id).collect();
            let holders: std::collections::HashMap<i64, i64> = entitlements::table
                .filter(entitlements::level_id.eq_any(&ids))
                .group_by(entitlements::level_id)
                .select((entitlements::level_id, diesel::dsl::count_star()))
                .load::<(i64, i64)>(conn)?
                .into_iter()
                .collect();
            let rows: Vec<(LevelView, i64)> = levels
                .into_iter()
                .map(|level| {
                    let n = holders.get(&level.id).copied().unwrap_or(0);
                    (level, n)
                })
                .collect();
            Ok((rows, total))
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
        list: Paged::new("/levels", &query, total, LEVELS_PAGE),
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
    /// The clock the holders' ends are on: the level's doors' site's, or the page's
    /// for a level with doors at sites in different timezones (as on a person's page).
    zone: Tz,
    total: i64,
    page: i64,
    pages: i64,
    /// What the add-item form offers: doors and zones ("door:ID", "zone:ID"), schedules.
    doors: Vec<(i64, String)>,
    zones: Vec<(i64, String)>,
    schedules: Vec<(i64, String)>,
    problems: Problems,
    /// "Nothing changed", after a save that changed nothing.
    notice: Option<&'static str>,
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
    saved: web::Query<SavedQuery>,
) -> Result<HttpResponse, PageError> {
    let page_no = query.page.unwrap_or(1).max(1);
    render_level(
        &state,
        &viewer,
        id.into_inner(),
        page_no,
        Problems::default(),
        saved.notice(),
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
    notice: Option<&'static str>,
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
    let chrome = Chrome::new(state, viewer, Section::Policy);
    let zone = super::people::level_zone(&snapshot, Some(level.id), chrome.timezone);
    super::page_with_status(
        status,
        &LevelPage {
            chrome,
            zone,
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
            notice,
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
            Ok(saved::update::<Levels>(conn, id, input, ctx)?)
        })
        .await;
    match result {
        Ok(saved) => Ok(saved::see_page(&format!("/levels/{id}"), saved)),
        Err(ApiError::Invalid(fields)) => {
            render_level(state, &posted.viewer, id, 1, Problems(fields), None).await
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
        let item = LevelItem {
            door_id,
            zone_id,
            schedule_id: schedule_id.unwrap_or_default(),
        };
        // Already there: the level would only name it twice, so nothing changes.
        if !items.contains(&item) {
            items.push(item);
        }
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
