//! The zones pages: zones as a tree with their doors, made, edited, moved and deleted
//! (a refusal names what keeps a zone).

use std::collections::{BTreeMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use serde::Deserialize;

use super::{EVERYTHING, Keeping, NoFields, refusal};
use crate::app::state::AppState;
use crate::console::kit::listing::ListQuery;
use crate::console::kit::notice::{Notice, see_other_saying};
use crate::console::kit::saved;
use crate::console::kit::session::{Posted, Viewer};
use crate::console::kit::{Chrome, PageError, Problems, Section};
use crate::entities::doors::{DoorFilter, Doors};
use crate::entities::levels::{LevelFilter, Levels};
use crate::entities::zones::{ZoneFilter, ZoneInput, ZoneView, Zones};
use crate::entities::{self, Entity, FieldErrors};
use crate::policy::{Snapshot, Zone};
use crate::web::error::ApiError;

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
    crate::console::kit::page_with_status(
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
        Ok(id) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            &format!("/zones/{id}"),
            Notice::done(format!("Zone {} added", posted.form.name.trim())),
        )),
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
) -> Result<HttpResponse, PageError> {
    render_zone(
        &state,
        &viewer,
        id.into_inner(),
        None,
        Problems::default(),
        None,
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
    crate::console::kit::page_with_status(
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
        },
    )
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
        Ok(saved) => Ok(saved::see_page(
            &state,
            &posted.viewer,
            &format!("/zones/{id}"),
            saved,
            format!("Zone {} saved", posted.form.name.trim()),
        )),
        Err(ApiError::Invalid(fields)) => {
            render_zone(
                &state,
                &posted.viewer,
                id,
                Some(posted.form.clone()),
                Problems(fields),
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
            let name = Zones::get(conn, id)?.map(|zone| zone.name);
            entities::delete::<Zones>(conn, id, ctx)?;
            Ok(name.unwrap_or_default())
        })
        .await;
    match result {
        Ok(name) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/zones",
            Notice::done(format!("Zone {name} deleted")),
        )),
        Err(ApiError::Conflict(message)) => {
            render_zone(
                &state,
                &posted.viewer,
                id,
                None,
                Problems::default(),
                Some(message),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}
