//! Routes for admin users, API tokens and the audit log. Managing admins takes the admin
//! role; the audit log is readable by every role.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::Authenticated;
use super::error::{ApiError, parse_json};
use crate::app::state::AppState;
use crate::clock::utc;
use crate::entities::{ChangeContext, Page};
use crate::identity::admins::{self, AdminInput, TokenScope};
use crate::identity::provenance::{Approval, Channel, Requester};
use crate::store::audit;

pub async fn list_admins(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let admins = state.read(|conn| Ok(admins::list_admins(conn)?)).await?;
    Ok(HttpResponse::Ok().json(admins))
}

pub async fn create_admin(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let provenance = auth.change_provenance()?;
    let input: AdminInput = parse_json(&body)?;
    let now = state.clock.now();
    let view = state
        .change(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            Ok(admins::create_admin(conn, &input, &ctx)?)
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The admin the token acts as.
    pub username: String,
    /// What the token is for, e.g. "HR sync".
    pub name: String,
    /// `read_only` (every GET, no change) or `full` (all the admin's role allows; the
    /// default, as tokens were before scopes).
    #[serde(default = "full_scope")]
    pub scope: TokenScope,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

fn full_scope() -> TokenScope {
    TokenScope::Full
}

pub async fn list_tokens(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let tokens = state
        .read(|conn| Ok(admins::list_tokens(conn, None)?))
        .await?;
    Ok(HttpResponse::Ok().json(tokens))
}

pub async fn issue_token(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let provenance = auth.change_provenance()?;
    let request: TokenRequest = parse_json(&body)?;
    let now = state.clock.now();
    let issued = state
        .change(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            Ok(admins::issue_token(
                conn,
                &request.username,
                &request.name,
                request.scope,
                request.expires_at,
                &ctx,
            )?)
        })
        .await?;
    Ok(HttpResponse::Created().json(issued))
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_admin()?;
    let provenance = auth.change_provenance()?;
    let id = id.into_inner();
    let now = state.clock.now();
    state
        .change(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            Ok(admins::revoke_token(conn, id, &ctx)?)
        })
        .await?;
    state.tokens.clear();
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only entries about this kind of entity, e.g. `person`.
    pub entity: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// Who asked, in one string as before provenance (an admin's username, `cli:USER`).
    pub actor: String,
    /// Who asked: `kind` is `admin`, `api_token`, `cli_user`, `setup_code`, `appliance`, or
    /// `recorded` (an entry from before provenance: its actor only).
    pub requested_by: Requester,
    /// Who approved the change, when it needed approval.
    pub approved_by: Option<Approval>,
    /// Through what: `channel` is `console`, `api`, `cli`, `import` (with its `file`), or
    /// `unknown` (before provenance).
    pub via: Channel,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub summary: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub hash: String,
}

pub async fn audit_list(
    state: web::Data<AppState>,
    _auth: Authenticated,
    page: web::Query<Page>,
    filter: web::Query<AuditFilter>,
) -> Result<HttpResponse, ApiError> {
    let page = page.into_inner().validate()?;
    let entity = filter.into_inner().entity;
    let rows = state
        .read(move |conn| {
            Ok(audit::list(
                conn,
                entity.as_deref(),
                page.offset,
                page.limit,
            )?)
        })
        .await?;
    let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
    let entries: Vec<AuditEntryView> = rows
        .into_iter()
        .map(|r| {
            let provenance = audit::provenance_of(&r);
            AuditEntryView {
                seq: r.seq,
                at: utc(r.at),
                actor: r.actor,
                requested_by: provenance.requested_by,
                approved_by: provenance.approved_by,
                via: provenance.via,
                action: r.action,
                entity: r.entity,
                entity_id: r.entity_id,
                summary: r.summary,
                before: json(r.before_json),
                after: json(r.after_json),
                hash: r.hash,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(entries))
}

pub async fn audit_verify(
    state: web::Data<AppState>,
    _auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let report = state.read(|conn| Ok(audit::verify(conn)?)).await?;
    Ok(HttpResponse::Ok().json(report))
}
