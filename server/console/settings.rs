//! Settings: how this appliance is configured (listeners, database, brokers, retention,
//! sessions; no secrets), what it runs (its jobs and their last runs), and how an
//! installer changes it.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};

use super::kit::session::Viewer;
use super::kit::{Chrome, PageError, Section, page};
use crate::app::jobs::{Instances, JobView, RunOutcome};
use crate::app::state::AppState;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    chrome: Chrome,
    version: &'static str,
    settings: Vec<(&'static str, String)>,
    policy_compiled_at: DateTime<Utc>,
    policy_stale: Option<String>,
    people: usize,
    doors: usize,
    readers: usize,
    sites: Vec<(String, String, bool)>,
    jobs: Vec<JobView>,
}

/// GET /settings
pub async fn show(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let stored = state
        .read(|conn| Ok(crate::app::jobs::stored_runs(conn)?))
        .await?;
    let snapshot = state.live.snapshot();
    let counts = snapshot.counts();
    page(&SettingsPage {
        chrome: Chrome::new(&state, &viewer, Section::Settings),
        version: env!("CARGO_PKG_VERSION"),
        settings: state.config.summary(),
        policy_compiled_at: snapshot.compiled_at(),
        policy_stale: state.live.stale_because(),
        people: counts.people,
        doors: counts.doors,
        readers: counts.readers,
        sites: snapshot
            .sites()
            .iter()
            .map(|s| (s.name.clone(), s.timezone.clone(), s.lockdown))
            .collect(),
        jobs: state.jobs.views(&stored),
    })
}
