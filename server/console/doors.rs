//! Doors and readers: each door's state, mode and readers (online or not); changing a
//! door's mode; moving it to another zone of its site; registering a reader, whose secret
//! is shown this once.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono_tz::Tz;
use serde::Deserialize;

use super::kit::listing::{ListQuery, Paged};
use super::kit::notice::{Notice, see_other_saying};
use super::kit::saved;
use super::kit::session::{Posted, Viewer};
use super::kit::{Chrome, PageError, Problems, Section, page, page_with_status};
use crate::app::state::AppState;
use crate::entities::doors::{DoorFilter, DoorInput, DoorView, Doors};
use crate::entities::readers::{ReaderFilter, ReaderInput, ReaderView, Readers};
use crate::entities::sites::{SiteView, Sites};
use crate::entities::zones::Zones;
use crate::entities::{self, Entity, FieldErrors, Page};
use crate::readers::health::ReaderHealth;
use crate::store::history::SwipesOf;
use crate::web::error::ApiError;

/// One door as the list shows it.
pub struct DoorLine {
    pub door: DoorView,
    pub zone: String,
    /// "open since 09:12:03", "open since 09:12:03, held open", or "closed".
    pub state: String,
    pub alarm: bool,
    pub readers_online: usize,
    pub readers: usize,
}

/// Doors per page of the list.
const PAGE_SIZE: i64 = 100;

#[derive(Template)]
#[template(path = "doors/list.html")]
struct ListPage {
    chrome: Chrome,
    list: Paged,
    doors: Vec<DoorLine>,
}

fn health_of(state: &AppState, reader_ids: &[String]) -> Vec<ReaderHealth> {
    state.health.of(reader_ids.iter().map(String::as_str))
}

/// The door's state in words, with the time it opened on its site's clock `tz`.
fn door_state(state: &AppState, door_id: i64, chrome: &Chrome, tz: Tz) -> (String, bool) {
    let open = state.doors.lock().ok().and_then(|doors| {
        doors
            .open_doors()
            .into_iter()
            .find(|d| d.door_id == door_id)
    });
    match open {
        Some(d) if d.held_open => (
            format!("open since {}, held open", chrome.clock_in(&d.since, &tz)),
            true,
        ),
        Some(d) => (
            format!("open since {}", chrome.clock_in(&d.since, &tz)),
            false,
        ),
        None => ("closed".to_owned(), false),
    }
}

/// GET /doors
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let filter = DoorFilter {
        q: query.search(),
        ..Default::default()
    };
    let paging = query.rows(PAGE_SIZE);
    let (doors, total, readers) = state
        .read(move |conn| {
            let (doors, total) = Doors::list(conn, &filter, paging)?;
            let mut readers = Vec::new();
            let mut offset = 0;
            // Every reader, however many: a building may have more than one page of them.
            loop {
                let (page, total) = Readers::list(
                    conn,
                    &ReaderFilter::default(),
                    Page {
                        offset,
                        limit: 1000,
                    },
                )?;
                offset += 1000;
                readers.extend(page);
                if offset >= total {
                    break;
                }
            }
            Ok((doors, total, readers))
        })
        .await?;
    let chrome = Chrome::new(&state, &viewer, Section::Doors);
    let snapshot = state.live.snapshot();
    let ids: Vec<String> = readers.iter().map(|r| r.reader_id.clone()).collect();
    let health = health_of(&state, &ids);
    let lines = doors
        .into_iter()
        .map(|door| {
            let tz = snapshot.door_timezone(door.id).unwrap_or(chrome.timezone);
            let (door_state, alarm) = door_state(&state, door.id, &chrome, tz);
            let mine: Vec<&ReaderView> = readers.iter().filter(|r| r.door_id == door.id).collect();
            let online = mine
                .iter()
                .filter(|r| {
                    health
                        .iter()
                        .any(|h| h.reader_id == r.reader_id && h.online == Some(true))
                })
                .count();
            DoorLine {
                zone: snapshot
                    .zone(door.zone_id)
                    .map_or_else(String::new, |z| z.name.clone()),
                state: door_state,
                alarm,
                readers_online: online,
                readers: mine.len(),
                door,
            }
        })
        .collect();
    page(&ListPage {
        chrome,
        list: Paged::new("/doors", &query, total, PAGE_SIZE),
        doors: lines,
    })
}

/// The register-a-reader form, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct ReaderForm {
    #[serde(default)]
    reader_id: String,
    #[serde(default)]
    protocol: String,
    #[serde(default)]
    direction: String,
    #[serde(default)]
    modbus_host: String,
    #[serde(default)]
    modbus_port: String,
    #[serde(default)]
    modbus_unit: String,
    /// The checkbox for a reader whose firmware sends bare (v1) events.
    #[serde(default)]
    legacy: Option<String>,
}

#[derive(Template)]
#[template(path = "doors/show.html")]
struct ShowPage {
    chrome: Chrome,
    door: DoorView,
    zone: String,
    state: String,
    alarm: bool,
    readers: Vec<(ReaderView, ReaderHealth)>,
    typed: ReaderForm,
    problems: Problems,
    /// A reader just registered, with its secret: shown on this page only.
    registered: Option<ReaderView>,
    /// The zones the door can move to (its site's, by path) and the one chosen: the
    /// door's own, or what was typed.
    zones: Vec<(i64, String)>,
    zone_chosen: String,
    /// Whether the appliance has other sites, whose zones the form does not offer.
    other_sites: bool,
    /// When the door is used (weekday × hour) and its daily traffic, as SVG.
    heatmap: String,
    traffic: String,
    /// The door's site's timezone: its times, and its charts' hours and days.
    door_tz: Tz,
}

/// What the door page's forms show besides the door: what was typed into them, their
/// messages, and a reader just registered.
struct Shown {
    reader: ReaderForm,
    /// The zone chosen in the move form, as typed; the door's own when None.
    zone_id: Option<String>,
    problems: Problems,
    registered: Option<ReaderView>,
}

impl Shown {
    /// The forms as a page first shows them.
    fn fresh() -> Shown {
        Shown {
            reader: ReaderForm {
                protocol: "mqtt".to_owned(),
                direction: "in".to_owned(),
                modbus_port: "502".to_owned(),
                modbus_unit: "1".to_owned(),
                ..Default::default()
            },
            zone_id: None,
            problems: Problems::default(),
            registered: None,
        }
    }
}

async fn render_door(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    shown: Shown,
) -> Result<HttpResponse, PageError> {
    let Shown {
        reader: typed,
        zone_id: zone_typed,
        problems,
        registered,
    } = shown;
    let (door, readers) = state
        .read(move |conn| {
            let door = Doors::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no door {id}.")))?;
            let (readers, _) = Readers::list(
                conn,
                &ReaderFilter {
                    door_id: Some(id),
                    ..Default::default()
                },
                Page {
                    offset: 0,
                    limit: 1000,
                },
            )?;
            Ok((door, readers))
        })
        .await?;
    let chrome = Chrome::new(state, viewer, Section::Doors);
    let ids: Vec<String> = readers.iter().map(|r| r.reader_id.clone()).collect();
    let health = health_of(state, &ids);
    let readers = readers
        .into_iter()
        .map(|r| {
            let h = health
                .iter()
                .find(|h| h.reader_id == r.reader_id)
                .cloned()
                .unwrap_or_default();
            (r, h)
        })
        .collect();
    let snapshot = state.live.snapshot();
    let door_tz = snapshot.door_timezone(id).unwrap_or(chrome.timezone);
    let (door_state, alarm) = door_state(state, id, &chrome, door_tz);
    let heatmap = super::activity_heatmap(
        state,
        chrome.history_scope(),
        SwipesOf::Door(id),
        &format!("When {} is used", door.name),
        door_tz,
    )
    .await?;
    let traffic = super::daily_traffic(
        state,
        chrome.history_scope(),
        SwipesOf::Door(id),
        &format!("{}: swipes per day", door.name),
        door_tz,
    )
    .await?;
    let zone = snapshot
        .zone(door.zone_id)
        .map_or_else(String::new, |z| z.name.clone());
    let (zones, other_sites) = {
        let snapshot = state.live.snapshot();
        let site = snapshot.zone(door.zone_id).map(|z| z.site_id);
        (
            site.map(|site| super::policy::zones::site_zones(&snapshot, site))
                .unwrap_or_default(),
            snapshot.sites().len() > 1,
        )
    };
    let zone_chosen = zone_typed.unwrap_or_else(|| door.zone_id.to_string());
    let status = Problems::status(problems.is_empty());
    page_with_status(
        status,
        &ShowPage {
            chrome,
            door,
            zone,
            state: door_state,
            alarm,
            readers,
            typed,
            problems,
            registered,
            zones,
            zone_chosen,
            other_sites,
            heatmap,
            traffic,
            door_tz,
        },
    )
}

/// GET /doors/{id}
pub async fn show(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    render_door(&state, &viewer, id.into_inner(), Shown::fresh()).await
}

#[derive(Deserialize)]
pub struct ZoneForm {
    #[serde(default)]
    zone_id: String,
}

/// Why a door may not move to `to`: a zone of another site. The site decides the clock
/// its schedules and holidays run on and the lockdown that holds it, so moving a door
/// there is a change of the building's layout, made in the site file or the API.
fn other_site(door: &str, from: &SiteView, to_zone: &str, to: &SiteView) -> FieldErrors {
    let mut problems = FieldErrors::default();
    problems.add(
        "zone_id",
        format!(
            "{to_zone} is at {}, and {door} is at {}. A door moves only between the zones of \
             its own site, whose clock, holidays and lockdown govern it; to move it to \
             another site, change it in the site file or the API.",
            to.name, from.name
        ),
    );
    problems
}

/// POST /doors/{id}/zone: moves the door to another zone of its site. Levels that open
/// the new zone open the door from the next swipe on; levels that open the old one no
/// longer do.
pub async fn move_to_zone(
    state: web::Data<AppState>,
    posted: Posted<ZoneForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    // Before validating: a role that may not move doors learns nothing from messages.
    posted.viewer.may_change_policy()?;
    let id = id.into_inner();
    let typed = posted.form.zone_id.trim().to_owned();
    let result = match typed.parse::<i64>() {
        Err(_) => {
            let mut problems = FieldErrors::default();
            problems.add("zone_id", "choose a zone from the list");
            Err(ApiError::Invalid(problems))
        }
        Ok(zone_id) => {
            posted
                .change_policy(&state, move |conn, ctx| {
                    let door = Doors::get(conn, id)?
                        .ok_or_else(|| ApiError::NotFound(format!("There is no door {id}.")))?;
                    // An unknown zone is the entity's to name; a zone of another site is
                    // refused here, on the same connection as the change.
                    let from = Zones::get(conn, door.zone_id)?;
                    let to = Zones::get(conn, zone_id)?;
                    if let (Some(from), Some(to)) = (from, to)
                        && from.site_id != to.site_id
                        && let (Some(from_site), Some(to_site)) = (
                            Sites::get(conn, from.site_id)?,
                            Sites::get(conn, to.site_id)?,
                        )
                    {
                        return Err(ApiError::Invalid(other_site(
                            &door.name, &from_site, &to.name, &to_site,
                        )));
                    }
                    let said = format!(
                        "{} moved to zone {}: levels that open that zone open it from the \
                         next swipe",
                        door.name,
                        Zones::get(conn, zone_id)?.map_or_else(String::new, |z| z.name)
                    );
                    let input = DoorInput {
                        zone_id,
                        name: door.name,
                        unlock_ms: door.unlock_ms,
                        held_open_s: door.held_open_s,
                        mode: door.mode,
                        free_access_schedule_id: door.free_access_schedule_id,
                        sensitivity: door.sensitivity,
                    };
                    Ok((saved::update::<Doors>(conn, id, input, ctx)?, said))
                })
                .await
        }
    };
    match result {
        Ok((saved, said)) => Ok(saved::see_page(
            &state,
            &posted.viewer,
            &format!("/doors/{id}"),
            saved,
            said,
        )),
        Err(ApiError::Invalid(fields)) => {
            let shown = Shown {
                zone_id: Some(typed),
                problems: Problems(fields),
                ..Shown::fresh()
            };
            render_door(&state, &posted.viewer, id, shown).await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct ModeForm {
    mode: String,
}

/// POST /doors/{id}/mode: normal, card and PIN, locked or unlocked; every reader of the
/// door is told at once.
pub async fn set_mode(
    state: web::Data<AppState>,
    posted: Posted<ModeForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let mode = posted.form.mode.clone();
    let (saved, name) = posted
        .change_policy(&state, move |conn, ctx| {
            let door = Doors::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no door {id}.")))?;
            let name = door.name.clone();
            let input = DoorInput {
                zone_id: door.zone_id,
                name: door.name,
                unlock_ms: door.unlock_ms,
                held_open_s: door.held_open_s,
                mode,
                free_access_schedule_id: door.free_access_schedule_id,
                sensitivity: door.sensitivity,
            };
            Ok((saved::update::<Doors>(conn, id, input, ctx)?, name))
        })
        .await?;
    let said = match posted.form.mode.as_str() {
        "locked" => format!("{name} is locked: no card opens it until its mode changes"),
        "unlocked" => format!("{name} is unlocked: it stays open to anyone until its mode changes"),
        "card_and_pin" => format!("{name} now asks for a card and its PIN"),
        _ => format!("{name} is back to normal: cards open it as their access allows"),
    };
    Ok(saved::see_page(
        &state,
        &posted.viewer,
        &format!("/doors/{id}"),
        saved,
        said,
    ))
}

#[derive(Deserialize)]
pub struct UnlockForm {
    /// How long; the door's own unlock time when absent.
    #[serde(default)]
    seconds: Option<i64>,
}

/// POST /doors/{id}/unlock: a momentary unlock; refused in lockdown.
pub async fn unlock(
    state: web::Data<AppState>,
    posted: Posted<UnlockForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let actor = posted.viewer.may_change_policy()?.username.clone();
    let provenance = posted.viewer.provenance();
    let id = id.into_inner();
    let door = state
        .live
        .snapshot()
        .door(id)
        .cloned()
        .ok_or_else(|| PageError::NotFound(format!("There is no door {id}.")))?;
    let seconds = posted
        .form
        .seconds
        .unwrap_or_else(|| i64::from(door.unlock_ms.div_ceil(1000)));
    if !(1..=3600).contains(&seconds) {
        return Err(PageError::BadForm(
            "an unlock lasts 1 second to 1 hour".to_owned(),
        ));
    }
    state
        .hub
        .unlock_for(id, chrono::Duration::seconds(seconds), &actor)
        .await
        .map_err(|e| match e {
            crate::readers::hub::UnlockError::Log(e) => PageError::Internal(e.to_string()),
            refused => PageError::Conflict(format!("{}: {refused}.", door.name)),
        })?;
    let said = format!("{} unlocked for {seconds} s", door.name);
    let now = state.clock.now();
    state
        .write(move |conn| {
            crate::store::audit::append(
                conn,
                &crate::store::audit::AuditEntry {
                    provenance: &provenance,
                    action: "unlock",
                    entity: "door",
                    entity_id: Some(id.to_string()),
                    summary: format!("unlock door '{}' for {seconds} s", door.name),
                    before: None,
                    after: None,
                },
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        &format!("/doors/{id}"),
        Notice::done(said),
    ))
}

/// A number typed into the form, or a message for the field.
fn number(problems: &mut crate::entities::FieldErrors, field: &str, text: &str) -> Option<i32> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<i32>() {
        Ok(n) => Some(n),
        Err(_) => {
            problems.add(field, "enter a whole number");
            None
        }
    }
}

/// POST /doors/{id}/readers: registers a reader at this door and shows its secret once.
pub async fn register_reader(
    state: web::Data<AppState>,
    posted: Posted<ReaderForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let door_id = id.into_inner();
    let form = posted.form.clone();
    let mut problems = crate::entities::FieldErrors::default();
    let modbus = form.protocol == "modbus";
    let port = number(&mut problems, "modbus_port", &form.modbus_port);
    let unit = number(&mut problems, "modbus_unit", &form.modbus_unit);
    let input = ReaderInput {
        reader_id: form.reader_id.trim().to_owned(),
        door_id,
        protocol: form.protocol.clone(),
        direction: form.direction.clone(),
        secret: None,
        require_signed_events: false,
        legacy: form.legacy.is_some(),
        modbus_host: modbus
            .then(|| form.modbus_host.trim().to_owned())
            .filter(|h| !h.is_empty()),
        modbus_port: if modbus { port } else { None },
        modbus_unit: if modbus { unit } else { None },
    };
    let result = if problems.is_empty() {
        posted
            .change_policy(&state, move |conn, ctx| {
                entities::create::<Readers>(conn, input, ctx).map_err(ApiError::from)
            })
            .await
    } else {
        Err(ApiError::Invalid(problems))
    };
    match result {
        // Rendered, not redirected: the secret must not travel in a URL or be shown again.
        Ok(reader) => {
            let shown = Shown {
                reader: ReaderForm::default(),
                registered: Some(reader),
                ..Shown::fresh()
            };
            render_door(&state, &posted.viewer, door_id, shown).await
        }
        Err(ApiError::Invalid(fields)) => {
            let shown = Shown {
                reader: posted.form,
                problems: Problems(fields),
                ..Shown::fresh()
            };
            render_door(&state, &posted.viewer, door_id, shown).await
        }
        Err(other) => Err(other.into()),
    }
}
