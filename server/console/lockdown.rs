//! Lockdown: every door of the site locks and cards stop opening them until it ends.
//! Starting it is confirmed; the change reaches every reader at once through the hub.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::kit::notice::{Notice, see_other_saying};
use super::kit::session::{Posted, Viewer};
use super::kit::{Chrome, PageError, Section, page};
use crate::app::state::AppState;
use crate::entities::sites::{SiteFilter, SiteInput, SiteView, Sites};
use crate::entities::{self, ChangeContext, Entity, Page};
use crate::identity::provenance::Provenance;
use crate::web::error::ApiError;

#[derive(Template)]
#[template(path = "lockdown.html")]
struct LockdownPage {
    chrome: Chrome,
    sites: Vec<SiteView>,
    /// Set when the start form came back without its confirmation.
    unconfirmed: bool,
}

async fn sites(state: &AppState) -> Result<Vec<SiteView>, PageError> {
    Ok(state
        .read(|conn| {
            let (sites, _) = Sites::list(
                conn,
                &SiteFilter::default(),
                Page {
                    offset: 0,
                    limit: 1000,
                },
            )?;
            Ok(sites)
        })
        .await?)
}

/// GET /lockdown
pub async fn show(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    page(&LockdownPage {
        chrome: Chrome::new(&state, &viewer, Section::Lockdown),
        sites: sites(&state).await?,
        unconfirmed: false,
    })
}

#[derive(Deserialize)]
pub struct LockdownForm {
    /// One site, or every site when absent.
    #[serde(default)]
    site_id: Option<i64>,
    /// The confirmation checkbox; only starting needs it.
    #[serde(default)]
    confirm: Option<String>,
}

async fn set_lockdown(
    state: &AppState,
    provenance: Provenance,
    site_id: Option<i64>,
    on: bool,
) -> Result<Vec<String>, PageError> {
    let now = state.clock.now();
    let changed = state
        .change(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            let (sites, _) = Sites::list(
                conn,
                &SiteFilter::default(),
                Page {
                    offset: 0,
                    limit: 1000,
                },
            )?;
            // A site that does not exist (or, for every site, none at all) is refused: a
            // lockdown that locks nothing must not be reported, or logged, as started.
            if let Some(id) = site_id
                && !sites.iter().any(|site| site.id == id)
            {
                return Err(ApiError::NotFound(format!("site {id} does not exist")));
            }
            if sites.is_empty() {
                return Err(ApiError::NotFound(
                    "there is no site to lock down or release yet".to_owned(),
                ));
            }
            crate::store::write_transaction(conn, |conn| {
                let mut changed = Vec::new();
                for site in sites {
                    if site_id.is_some_and(|id| id != site.id) || site.lockdown == on {
                        continue;
                    }
                    changed.push(site.name.clone());
                    let input = SiteInput {
                        name: site.name,
                        timezone: site.timezone,
                        lockdown: on,
                    };
                    entities::update::<Sites>(conn, site.id, input, &ctx)?;
                }
                Ok::<_, ApiError>(changed)
            })
        })
        .await?;
    Ok(changed)
}

/// What a lockdown change says it did, for the sites it changed.
fn lockdown_words(changed: &[String], on: bool) -> Notice {
    match (changed.is_empty(), on) {
        (true, true) => Notice::unchanged_because("Lockdown was already on there."),
        (true, false) => Notice::unchanged_because("There was no lockdown to end there."),
        (false, true) => Notice::done(format!(
            "Lockdown started at {}: every door there stays locked and cards do not open them",
            changed.join(", ")
        )),
        (false, false) => Notice::done(format!(
            "Lockdown ended at {}: doors are back to their modes and schedules",
            changed.join(", ")
        )),
    }
}

/// POST /lockdown/start
pub async fn start(
    state: web::Data<AppState>,
    posted: Posted<LockdownForm>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let provenance = posted.viewer.provenance();
    if posted.form.confirm.is_none() {
        return super::kit::page_with_status(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            &LockdownPage {
                chrome: Chrome::new(&state, &posted.viewer, Section::Lockdown),
                sites: sites(&state).await?,
                unconfirmed: true,
            },
        );
    }
    let changed = set_lockdown(&state, provenance, posted.form.site_id, true).await?;
    tracing::warn!("lockdown started from the console");
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        "/lockdown",
        lockdown_words(&changed, true),
    ))
}

/// POST /lockdown/end
pub async fn end(
    state: web::Data<AppState>,
    posted: Posted<LockdownForm>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let provenance = posted.viewer.provenance();
    let changed = set_lockdown(&state, provenance, posted.form.site_id, false).await?;
    tracing::warn!("lockdown ended from the console");
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        "/lockdown",
        lockdown_words(&changed, false),
    ))
}
