//! The audit log in the console: every admin change, newest first, with who asked, who
//! approved, through what, when and what changed, and the hash chain's status on request.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::kit::session::Viewer;
use super::kit::{Chrome, PageError, Section, page};
use crate::app::state::AppState;
use crate::clock::utc;
use crate::store::audit::{self, ChainReport};

const PAGE_SIZE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    entity: String,
    #[serde(default)]
    page: Option<i64>,
}

/// One entry as the page shows it.
pub struct AuditLine {
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// Who asked, in words ("admin root", "API token 'HR sync' (#3) of admin root").
    pub requested_by: String,
    /// Who approved, when the change needed approval.
    pub approved_by: Option<String>,
    /// Through what ("console", "API", "CLI", "import of office.toml").
    pub via: String,
    pub action: String,
    pub entity: String,
    pub summary: String,
    /// The changed fields, "field: before → after", for updates.
    pub changes: Vec<String>,
}

/// The fields whose values differ between two JSON objects, in words.
fn changes(before: Option<&str>, after: Option<&str>) -> Vec<String> {
    let parse = |t: Option<&str>| {
        t.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .and_then(|v| v.as_object().cloned())
    };
    let (Some(before), Some(after)) = (parse(before), parse(after)) else {
        return Vec::new();
    };
    after
        .iter()
        .filter(|(k, _)| k.as_str() != "updated_at")
        .filter_map(|(k, new)| {
            let old = before.get(k).unwrap_or(&serde_json::Value::Null);
            (old != new).then(|| format!("{k}: {old} → {new}"))
        })
        .collect()
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    entity: String,
    entities: Vec<&'static str>,
    lines: Vec<AuditLine>,
    page: i64,
    more: bool,
}

impl AuditPage {
    fn page_href(&self, page: &i64) -> String {
        format!(
            "/audit?entity={}&page={page}",
            super::kit::percent_encode_query(&self.entity)
        )
    }
}

/// GET /audit
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, PageError> {
    let AuditQuery { entity, page: n } = query.into_inner();
    let page_no = n.unwrap_or(1).max(1);
    let filter = Some(entity.clone()).filter(|e| !e.is_empty());
    let rows = state
        .read(move |conn| {
            Ok(audit::list(
                conn,
                filter.as_deref(),
                (page_no - 1).saturating_mul(PAGE_SIZE),
                PAGE_SIZE + 1,
            )?)
        })
        .await?;
    let more = rows.len() > PAGE_SIZE as usize;
    let lines = rows
        .into_iter()
        .take(PAGE_SIZE as usize)
        .map(|r| {
            let provenance = audit::provenance_of(&r);
            AuditLine {
                changes: changes(r.before_json.as_deref(), r.after_json.as_deref()),
                seq: r.seq,
                at: utc(r.at),
                requested_by: provenance.requester_text(),
                approved_by: provenance.approver_text(),
                via: provenance.channel_text(),
                action: r.action,
                entity: r.entity,
                summary: r.summary,
            }
        })
        .collect();
    page(&AuditPage {
        chrome: Chrome::new(&state, &viewer, Section::Audit),
        entity,
        entities: vec![
            "person",
            "credential",
            "entitlement",
            "access_level",
            "door",
            "reader",
            "zone",
            "site",
            "schedule",
            "holiday",
            "admin_user",
            "api_token",
            "session",
        ],
        lines,
        page: page_no,
        more,
    })
}

#[derive(Template)]
#[template(path = "partials/audit_chain.html")]
struct ChainPanel {
    report: ChainReport,
}

/// GET /audit/chain: walks the whole chain (on request: it reads every entry).
pub async fn chain(state: web::Data<AppState>, _viewer: Viewer) -> Result<HttpResponse, PageError> {
    let report = state.read(|conn| Ok(audit::verify(conn)?)).await?;
    page(&ChainPanel { report })
}

#[cfg(test)]
mod tests {
    use super::changes;

    #[test]
    fn changes_name_each_changed_field_once() {
        let before = r#"{"name":"Ada","status":"active","updated_at":"1"}"#;
        let after = r#"{"name":"Ada","status":"suspended","updated_at":"2"}"#;
        assert_eq!(
            changes(Some(before), Some(after)),
            vec![r#"status: "active" → "suspended""#.to_owned()]
        );
        assert!(changes(None, Some(after)).is_empty());
    }
}
