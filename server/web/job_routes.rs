//! `GET /api/v1/jobs`: the appliance's periodic jobs (`crate::app::jobs`) with their schedules,
//! last runs, next runs and skips, for any role.

use actix_web::{HttpResponse, web};

use super::auth;
use super::error::ApiError;
use crate::app::state::AppState;

/// GET /api/v1/jobs: every periodic job with its schedule, last run, next run and skips.
pub async fn list_jobs(
    state: web::Data<AppState>,
    _auth: auth::Authenticated,
) -> Result<HttpResponse, ApiError> {
    let stored = state
        .read(|conn| Ok(crate::app::jobs::stored_runs(conn)?))
        .await?;
    Ok(HttpResponse::Ok().json(state.jobs.views(&stored)))
}
