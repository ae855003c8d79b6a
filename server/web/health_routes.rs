//! The health endpoints: `/healthz` for monitoring (database and live policy) and
//! `/api/v1/readers/health`, every registered reader as the hub sees it.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use super::auth;
use super::error::ApiError;
use crate::app::state::AppState;

/// GET /api/v1/readers/health: every registered reader, online or not, last heard.
pub async fn reader_health(state: web::Data<AppState>, _auth: auth::Authenticated) -> HttpResponse {
    let readers = state.live.readers();
    let mut ids: Vec<&str> = readers.iter().map(|r| r.reader_id.as_str()).collect();
    ids.sort_unstable();
    HttpResponse::Ok().json(state.health.of(ids.into_iter()))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    policy_compiled_at: chrono::DateTime<chrono::Utc>,
    /// Set when the last policy rebuild failed: the appliance decides on an older policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_stale: Option<String>,
    people: usize,
    doors: usize,
    readers: usize,
}

/// Liveness and readiness for monitoring: 200 when the database answers and the live
/// policy is current, 503 otherwise.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = state
        .read(|conn| {
            use diesel::RunQueryDsl;
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .get_result::<i32>(conn)
                .map_err(ApiError::from)
        })
        .await
        .is_ok();
    let snapshot = state.live.snapshot();
    let counts = snapshot.counts();
    let policy_stale = state.live.stale_because();
    let healthy = db_ok && policy_stale.is_none();
    let body = Health {
        status: if healthy { "ok" } else { "degraded" },
        database: if db_ok { "ok" } else { "unreachable" },
        policy_compiled_at: snapshot.compiled_at(),
        policy_stale,
        people: counts.people,
        doors: counts.doors,
        readers: counts.readers,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
