//! Doors and readers: each door's state, mode and readers (online or not); changing a
//! door's mode; moving it to another zone of its site; registering a reader, whose secret
//! is shown this once.

use actix_web::{HttpResponse, web};
use askama::Template;
use std::collections::HashSet;

use chrono_tz::Tz;
use serde::Deserialize;

use super::kit::listing::{ListQuery, Paged};
use super::kit::notice::{Notice, see_other_saying};
use super::kit::saved;
use super::kit::session::{Posted, Viewer};
use super::kit::{Chrome, PageError, Problems, Section, page_with_status};
use crate::app::state::AppState;
use crate::entities::doors::{DoorFilter, DoorInput, DoorView, Doors};
use crate::entities::readers::{ReaderFilter, ReaderInput, ReaderView, Readers};
use crate::entities::sites::{SiteView, Sites};
use crate::entities::zones::Zones;
use crate::entities::{self, Entity, FieldErrors, Page};
use crate::readers::door_state::DoorState;
use crate::readers::health::ReaderHealth;
use crate::store::history::SwipesOf;
use crate::web::error::ApiError;

/// One door as the list shows it.
pub struct DoorLine {
    pub door: DoorView,
    pub zone: String,
    pub state: StateShown,
    pub readers_online: usize,
    pub readers: usize,
}

/// A door's state as a page shows it: in words, and how it is marked.
pub struct StateShown {
    /// "unknown", "closed", "open since 09:12:03", "forced open since 09:12:03, held
    /// open", each with "last known: its reader is offline" when that is so.
    pub words: String,
    /// Live and alarming: forced or held open, reported by a reader that is online.
    pub alarm: bool,
    /// Only the last known: the reader that reported it is offline.
    pub stale: bool,
    /// Nothing known yet.
    pub unknown: bool,
    /// "unlocked until 14:05:00": an admin's unlock in force, on the door's site's clock.
    pub unlocked_until: Option<String>,
}

impl StateShown {
    /// The CSS class of the state's cell or row: `alarm`, `stale`, `unknown` or none.
    pub fn class(&self) -> &'static str {
        if self.alarm {
            "alarm"
        } else if self.stale {
            "stale"
        } else if self.unknown {
            "unknown"
        } else {
            ""
        }
    }
}

/// Doors per page of the list.
const PAGE_SIZE: i64 = 100;

#[derive(Template)]
#[template(path = "doors/list.html")]
struct ListPage {
    chrome: Chrome,
    list: Paged,
    doors: Vec<DoorLine>,
    /// The zones a new door can go in (id, "Site › Zone › Zone").
    zones: Vec<(i64, String)>,
    typed: NewDoorForm,
    problems: Problems,
}

fn health_of(state: &AppState, reader_ids: &[String]) -> Vec<ReaderHealth> {
    state.health.of(reader_ids.iter().map(String::as_str))
}

/// The door's state in words, its times on its site's clock `tz`; `offline` are the
/// readers offline now, whose last reports are stale.
fn door_state(
    state: &AppState,
    door_id: i64,
    chrome: &Chrome,
    tz: Tz,
    offline: &HashSet<String>,
) -> StateShown {
    let status = match state.doors.lock() {
        Ok(doors) => doors.status(door_id, |r| offline.contains(r)),
        Err(poisoned) => poisoned
            .into_inner()
            .status(door_id, |r| offline.contains(r)),
    };
    let mut words = match status.state {
        DoorState::Unknown => "unknown".to_owned(),
        DoorState::Closed { .. } => "closed".to_owned(),
        DoorState::Open {
            since,
            forced,
            held_open,
        } => format!(
            "{}open since {}{}",
            if forced { "forced " } else { "" },
            chrome.clock_in(&since, &tz),
            if held_open { ", held open" } else { "" }
        ),
    };
    if status.stale {
        words.push_str(" (last known: its reader is offline)");
    }
    StateShown {
        alarm: status.open_now()
            && matches!(
                status.state,
                DoorState::Open { forced: true, .. }
                    | DoorState::Open {
                        held_open: true,
                        ..
                    }
            ),
        stale: status.stale,
        unknown: status.state == DoorState::Unknown,
        unlocked_until: state
            .hub
            .unlocked_until(door_id)
            .map(|until| format!("unlocked until {}", chrome.clock_in(&until, &tz))),
        words,
    }
}

/// GET /doors
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    render_list(
        &state,
        &viewer,
        query.into_inner(),
        NewDoorForm::default(),
        Problems::default(),
    )
    .await
}

/// The doors list, with the add-a-door form as typed and its problems.
async fn render_list(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
    typed: NewDoorForm,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
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
    let chrome = Chrome::new(state, viewer, Section::Doors);
    let snapshot = state.live.snapshot();
    let ids: Vec<String> = readers.iter().map(|r| r.reader_id.clone()).collect();
    let health = health_of(state, &ids);
    let offline = state.health.offline();
    let lines = doors
        .into_iter()
        .map(|door| {
            let tz = snapshot.door_timezone(door.id).unwrap_or(chrome.timezone);
            let door_state = door_state(state, door.id, &chrome, tz, &offline);
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
                readers_online: online,
                readers: mine.len(),
                door,
            }
        })
        .collect();
    // Every zone, by site and path, for the add-a-door form.
    let several_sites = snapshot.sites().len() > 1;
    let zones = snapshot
        .sites()
        .iter()
        .flat_map(|site| {
            super::policy::zones::site_zones(&snapshot, site.id)
                .into_iter()
                .map(move |(id, path)| {
                    if several_sites {
                        (id, format!("{} › {path}", site.name))
                    } else {
                        (id, path)
                    }
                })
        })
        .collect();
    page_with_status(
        Problems::status(problems.is_empty()),
        &ListPage {
            chrome,
            list: Paged::new("/doors", &query, total, PAGE_SIZE),
            doors: lines,
            zones,
            typed,
            problems,
        },
    )
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
    state: StateShown,
    /// The site the door is at, when it is in lockdown: no Unlock is offered then.
    lockdown: Option<String>,
    /// The settings form: the door's own, or as typed when it came back.
    settings: SettingsForm,
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
    /// The settings form as typed, when it came back with problems.
    settings: Option<SettingsForm>,
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
            settings: None,
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
        settings,
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
    let door_state = door_state(state, id, &chrome, door_tz, &state.health.offline());
    let lockdown = snapshot
        .door_view(id)
        .filter(|view| view.site.lockdown)
        .map(|view| view.site.name.clone());
    let settings = settings.unwrap_or_else(|| SettingsForm::of(&door));
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
            lockdown,
            settings,
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

/// Why the console did not unlock a door: the door page says so after the redirect (a
/// refused notice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The door's site is in lockdown.
    Lockdown,
    /// The door's mode is `locked`, and the override was not confirmed.
    Locked,
    /// The door has no reader to unlock it.
    NoReader,
}

impl Refused {
    /// The reason in words, for the door `door` at a site in lockdown `lockdown` (if it is).
    fn words(self, door: &str, lockdown: Option<&str>) -> String {
        match self {
            Refused::Lockdown => format!(
                "{door} was not unlocked: {} is in lockdown. End the lockdown to unlock doors.",
                lockdown.unwrap_or("its site")
            ),
            Refused::Locked => format!(
                "{door} was not unlocked: its mode is locked. To open it anyway for the time \
                 chosen, tick \u{201c}Unlock although the door is locked\u{201d} and unlock again, \
                 or change its mode."
            ),
            Refused::NoReader => format!(
                "{door} was not unlocked: it has no reader to unlock it. Register one below."
            ),
        }
    }
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
    /// The checkbox that confirms unlocking a door whose mode is `locked`.
    #[serde(default)]
    override_locked: Option<String>,
}

/// POST /doors/{id}/unlock: a momentary unlock. Refused in lockdown, and for a door whose
/// mode is `locked` unless the form confirms the override; a refusal goes back to the door
/// page, which says why.
pub async fn unlock(
    state: web::Data<AppState>,
    posted: Posted<UnlockForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    use crate::readers::hub::UnlockError;
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
    let override_locked = posted.form.override_locked.is_some();
    let until = match state
        .hub
        .unlock_for(
            id,
            chrono::Duration::seconds(seconds),
            override_locked,
            &actor,
        )
        .await
    {
        Ok(until) => until,
        Err(e) => {
            let refused = match e {
                UnlockError::Lockdown => Refused::Lockdown,
                UnlockError::DoorLocked => Refused::Locked,
                UnlockError::NoReader => Refused::NoReader,
                UnlockError::UnknownDoor(_) => {
                    return Err(PageError::NotFound(format!("There is no door {id}.")));
                }
                UnlockError::Log(e) => return Err(PageError::Internal(e.to_string())),
            };
            let lockdown = state
                .live
                .snapshot()
                .door_view(id)
                .filter(|view| view.site.lockdown)
                .map(|view| view.site.name.clone());
            return Ok(see_other_saying(
                &state,
                &posted.viewer,
                &format!("/doors/{id}"),
                Notice::refused(refused.words(&door.name, lockdown.as_deref())),
            ));
        }
    };
    let said = format!("{} unlocked for {seconds} s", door.name);
    let now = state.clock.now();
    state
        .write(move |conn| {
            Ok(crate::entities::doors::record_unlock(
                conn,
                &provenance,
                &door,
                seconds,
                until,
                now,
            )?)
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

/// Seconds as typed ("5", "2.5") in milliseconds, within `min_ms..=max_ms`; else a message
/// for `field` in `problems`.
fn seconds_ms(
    problems: &mut FieldErrors,
    field: &str,
    text: &str,
    (min_ms, max_ms): (i32, i32),
) -> Option<i32> {
    let parsed = text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite())
        .map(|s| (s * 1000.0).round())
        .filter(|ms| (f64::from(min_ms)..=f64::from(max_ms)).contains(ms));
    match parsed {
        // A whole number within an i32 range, so the cast is exact.
        Some(ms) => Some(ms as i32),
        None => {
            let (min, max) = (f64::from(min_ms) / 1000.0, f64::from(max_ms) / 1000.0);
            problems.add(
                field,
                format!("enter a number of seconds from {min} to {max}"),
            );
            None
        }
    }
}

/// A door's settings form (name, unlock time, held-open time, sensitivity), as typed.
#[derive(Deserialize, Default, Clone)]
pub struct SettingsForm {
    #[serde(default)]
    name: String,
    /// Seconds, "5" or "2.5".
    #[serde(default)]
    unlock_s: String,
    #[serde(default)]
    held_open_s: String,
    #[serde(default)]
    sensitivity: String,
}

impl SettingsForm {
    /// The form filled with the door's own settings.
    fn of(door: &DoorView) -> SettingsForm {
        SettingsForm {
            name: door.name.clone(),
            unlock_s: (f64::from(door.unlock_ms) / 1000.0).to_string(),
            held_open_s: door.held_open_s.to_string(),
            sensitivity: door.sensitivity.clone(),
        }
    }
}

/// The range of a door's unlock time in milliseconds, and of its held-open time in
/// seconds (the entity's).
const UNLOCK_MS: (i32, i32) = (100, 600_000);
const HELD_OPEN_S: (i32, i32) = (1, 86_400);

/// Whole seconds as typed, within `min..=max`; else a message for `field` in `problems`.
fn whole_seconds(
    problems: &mut FieldErrors,
    field: &str,
    text: &str,
    (min, max): (i32, i32),
) -> Option<i32> {
    let parsed = text
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|s| (min..=max).contains(s));
    if parsed.is_none() {
        problems.add(
            field,
            format!("enter a whole number of seconds from {min} to {max}"),
        );
    }
    parsed
}

/// POST /doors/{id}/edit: renames the door and sets its unlock time, held-open time and
/// sensitivity; audited, and in force from the next swipe.
pub async fn edit(
    state: web::Data<AppState>,
    posted: Posted<SettingsForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let id = id.into_inner();
    let form = posted.form.clone();
    let mut problems = FieldErrors::default();
    let unlock_ms = seconds_ms(&mut problems, "unlock_s", &form.unlock_s, UNLOCK_MS);
    let held_open_s = whole_seconds(&mut problems, "held_open_s", &form.held_open_s, HELD_OPEN_S);
    let result = match (unlock_ms, held_open_s) {
        (Some(unlock_ms), Some(held_open_s)) if problems.is_empty() => {
            let (name, sensitivity) = (form.name.clone(), form.sensitivity.clone());
            posted
                .change_policy(&state, move |conn, ctx| {
                    let door = Doors::get(conn, id)?
                        .ok_or_else(|| ApiError::NotFound(format!("There is no door {id}.")))?;
                    let input = DoorInput {
                        zone_id: door.zone_id,
                        name,
                        unlock_ms,
                        held_open_s,
                        mode: door.mode,
                        free_access_schedule_id: door.free_access_schedule_id,
                        sensitivity,
                    };
                    Ok(saved::update::<Doors>(conn, id, input, ctx)?)
                })
                .await
        }
        _ => Err(ApiError::Invalid(problems)),
    };
    match result {
        Ok(saved) => Ok(saved::see_page(
            &state,
            &posted.viewer,
            &format!("/doors/{id}"),
            saved,
            format!(
                "{} saved: its name, times and sensitivity",
                form.name.trim()
            ),
        )),
        Err(ApiError::Invalid(fields)) => {
            let shown = Shown {
                settings: Some(posted.form),
                problems: Problems(fields),
                ..Shown::fresh()
            };
            render_door(&state, &posted.viewer, id, shown).await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /doors/{id}/delete: deletes a door that nothing refers to any more (no reader, in
/// no access level); otherwise the door page says what still does. Its events stay.
pub async fn delete(
    state: web::Data<AppState>,
    posted: Posted<super::policy::NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    use crate::store::schema::{access_level_items, readers};
    use diesel::prelude::*;
    posted.viewer.may_change_policy()?;
    let id = id.into_inner();
    let result = posted
        .change_policy(&state, move |conn, ctx| {
            let door = Doors::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no door {id}.")))?;
            let readers: i64 = readers::table
                .filter(readers::door_id.eq(id))
                .count()
                .get_result(conn)?;
            let levels = access_level_items::table
                .filter(access_level_items::door_id.eq(id))
                .select(access_level_items::level_id)
                .distinct()
                .load::<i64>(conn)?
                .len();
            if readers > 0 || levels > 0 {
                let mut uses = Vec::new();
                if readers > 0 {
                    uses.push(format!(
                        "{readers} reader{} (remove {} through the API or the site file)",
                        if readers == 1 { "" } else { "s" },
                        if readers == 1 { "it" } else { "them" }
                    ));
                }
                if levels > 0 {
                    uses.push(format!(
                        "{levels} access level{} (remove the door from {} on the level's page)",
                        if levels == 1 { "" } else { "s" },
                        if levels == 1 { "it" } else { "each" }
                    ));
                }
                return Err(ApiError::Conflict(format!(
                    "{} was not deleted: it still has {}.",
                    door.name,
                    uses.join(" and is in ")
                )));
            }
            entities::delete::<Doors>(conn, id, ctx)?;
            Ok(door.name)
        })
        .await;
    match result {
        Ok(name) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/doors",
            Notice::done(format!("{name} deleted")),
        )),
        Err(ApiError::Conflict(message)) => {
            let mut problems = FieldErrors::default();
            problems.add("delete", message);
            let shown = Shown {
                problems: Problems(problems),
                ..Shown::fresh()
            };
            render_door(&state, &posted.viewer, id, shown).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The add-a-door form of the doors list, as typed.
#[derive(Deserialize, Clone)]
pub struct NewDoorForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    zone_id: String,
    #[serde(default)]
    unlock_s: String,
    #[serde(default)]
    held_open_s: String,
}

impl Default for NewDoorForm {
    fn default() -> NewDoorForm {
        NewDoorForm {
            name: String::new(),
            zone_id: String::new(),
            unlock_s: "5".to_owned(),
            held_open_s: "30".to_owned(),
        }
    }
}

/// POST /doors: adds a door in a zone, normal mode, with its unlock and held-open times;
/// its page comes next, to register its readers.
pub async fn create(
    state: web::Data<AppState>,
    posted: Posted<NewDoorForm>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let form = posted.form.clone();
    let mut problems = FieldErrors::default();
    let unlock_ms = seconds_ms(&mut problems, "unlock_s", &form.unlock_s, UNLOCK_MS);
    let held_open_s = whole_seconds(&mut problems, "held_open_s", &form.held_open_s, HELD_OPEN_S);
    let zone_id = form.zone_id.trim().parse::<i64>().ok();
    if zone_id.is_none() {
        problems.add("zone_id", "choose a zone from the list");
    }
    let result = match (unlock_ms, held_open_s, zone_id) {
        (Some(unlock_ms), Some(held_open_s), Some(zone_id)) if problems.is_empty() => {
            let input = DoorInput {
                zone_id,
                name: form.name.clone(),
                unlock_ms,
                held_open_s,
                mode: crate::entities::doors::default_mode(),
                free_access_schedule_id: None,
                sensitivity: "normal".to_owned(),
            };
            posted
                .change_policy(&state, move |conn, ctx| {
                    Ok(entities::create::<Doors>(conn, input, ctx)?)
                })
                .await
        }
        _ => Err(ApiError::Invalid(problems)),
    };
    match result {
        Ok(door) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            &format!("/doors/{}", door.id),
            Notice::done(format!(
                "Door {} added; register its readers below",
                door.name
            )),
        )),
        Err(ApiError::Invalid(fields)) => {
            render_list(
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
