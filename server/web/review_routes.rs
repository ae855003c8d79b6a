//! `GET /api/v1/risk/entitlements`: the entitlement review (`risk::entitlements`), highest
//! score first, read as the token's role may read history.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Authenticated;
use super::error::ApiError;
use crate::app::state::AppState;
use crate::entities::FieldErrors;
use crate::risk::entitlements::{FindingKind, Settings, review};
use crate::store::history::ReadScope;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewQuery {
    /// Leave out findings scoring below this (0 to 100).
    pub min_score: Option<f64>,
    /// Only findings of this kind: `unused_entitlement`, `peer_outlier`, `redundant_grant`,
    /// `dormant_credential`, `overbroad_level` or `toxic_combination`.
    pub kind: Option<String>,
    /// Only findings about this person.
    pub person_id: Option<i64>,
}

const KINDS: [FindingKind; 6] = [
    FindingKind::UnusedEntitlement,
    FindingKind::PeerOutlier,
    FindingKind::RedundantGrant,
    FindingKind::DormantCredential,
    FindingKind::OverbroadLevel,
    FindingKind::ToxicCombination,
];

pub async fn entitlements(
    state: web::Data<AppState>,
    auth: Authenticated,
    query: web::Query<ReviewQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let mut errors = FieldErrors::default();
    if let Some(score) = q.min_score
        && !(0.0..=100.0).contains(&score)
    {
        errors.add("min_score", "must be between 0 and 100");
    }
    let kind = match &q.kind {
        Some(name) => match KINDS.iter().find(|k| k.as_str() == name) {
            Some(kind) => Some(*kind),
            None => {
                errors.add("kind", format!("'{name}' is not a kind of finding"));
                None
            }
        },
        None => None,
    };
    errors.into_result()?;
    let scope = ReadScope::of(auth.identity().role);
    let settings = Settings::from_config(&state.config.entitlement_review);
    let now = state.clock.now();
    let mut found = state
        .read(move |conn| Ok(review(conn, scope, &settings, now)?))
        .await?;
    found.findings.retain(|f| {
        q.min_score.is_none_or(|min| f.score >= min)
            && kind.is_none_or(|k| f.kind == k)
            && q.person_id
                .is_none_or(|id| f.person.as_ref().is_some_and(|p| p.id == id))
    });
    Ok(HttpResponse::Ok().json(found))
}
