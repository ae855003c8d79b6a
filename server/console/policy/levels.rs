//! The access levels pages: each level's doors and zones in words and who holds it; made,
//! items added and removed.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use serde::Deserialize;

use crate::app::state::AppState;
use crate::console::kit::listing::{ListQuery, Paged};
use crate::console::kit::notice::{Notice, see_other_saying};
use crate::console::kit::saved;
use crate::console::kit::session::{Posted, Viewer};
use crate::console::kit::{Chrome, PageError, Problems, Section, page};
use crate::entities::entitlements::{EntitlementFilter, Entitlements};
use crate::entities::levels::{LevelFilter, LevelInput, LevelItem, LevelView, Levels};
use crate::entities::{self, Entity, FieldErrors, Page};
use crate::policy::Snapshot;
use crate::web::error::ApiError;

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

pub(super) fn describe_items(level: &LevelView, snapshot: &Snapshot) -> Vec<String> {
    level
        .items
        .iter()
        .map(|item| item_words(item, snapshot))
        .collect()
}

/// One item of a level in words: "Main entrance (door) during Business hours".
fn item_words(item: &LevelItem, snapshot: &Snapshot) -> String {
    {
        {
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
        }
    }
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
    let chrome = Chrome::new(state, viewer, Section::Policy);
    let zone = crate::console::people::level_zone(&snapshot, Some(level.id), chrome.timezone);
    crate::console::kit::page_with_status(
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
        Ok(level) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            &format!("/levels/{}", level.id),
            Notice::done(format!(
                "Access level {} added: it opens nothing until you add doors or zones",
                level.name
            )),
        )),
        Err(ApiError::Invalid(fields)) => {
            Err(PageError::BadForm(Problems(fields).others(&[]).join("; ")))
        }
        Err(other) => Err(other.into()),
    }
}

/// Replaces a level's items with what `edit` makes of them, keeping its name; the page
/// then says which item was `done` ("added to", "taken out of") the level.
async fn edit_items(
    state: &AppState,
    posted: &Posted<LevelForm>,
    id: i64,
    done: &'static str,
    edit: impl FnOnce(&mut Vec<LevelItem>) -> Result<LevelItem, FieldErrors> + Send + 'static,
) -> Result<HttpResponse, PageError> {
    let result = posted
        .change_policy(state, move |conn, ctx| {
            let level = Levels::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no access level {id}.")))?;
            let mut items = level.items;
            let item = edit(&mut items).map_err(ApiError::Invalid)?;
            let name = level.name.clone();
            let input = LevelInput {
                name: level.name,
                description: level.description,
                items,
            };
            Ok((saved::update::<Levels>(conn, id, input, ctx)?, item, name))
        })
        .await;
    match result {
        Ok((saved, item, name)) => {
            let words = item_words(&item, &state.live.snapshot());
            Ok(saved::see_page(
                state,
                &posted.viewer,
                &format!("/levels/{id}"),
                saved,
                format!("{words} {done} {name}"),
            ))
        }
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
    edit_items(&state, &posted, id.into_inner(), "added to", move |items| {
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
            items.push(item.clone());
        }
        Ok(item)
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
    edit_items(
        &state,
        &posted,
        id.into_inner(),
        "taken out of",
        move |items| {
            // Named by what it is, not where it stands: another admin may have changed the
            // list since this page was drawn.
            let found = items
                .iter()
                .position(|i| target_key(i) == target && i.schedule_id.to_string() == schedule);
            match found {
                Some(i) => Ok(items.remove(i)),
                None => {
                    let mut errors = FieldErrors::default();
                    errors.add(
                        "item",
                        "that item is no longer in the level; reload the page",
                    );
                    Err(errors)
                }
            }
        },
    )
    .await
}
