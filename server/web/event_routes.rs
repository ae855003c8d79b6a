//! GET /api/v1/events (search the event log, newest first, keyset-paged) and
//! GET /api/v1/events/stream (every event as it is recorded, as server-sent events).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Authenticated, still_valid};
use super::error::ApiError;
use crate::app::state::AppState;
use crate::clock::utc;
use crate::entities::FieldErrors;
use crate::store::event_log::{EventFilter, EventKind, Recorded, recent};
use crate::store::rows::EventRow;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    pub person_id: Option<i64>,
    pub door_id: Option<i64>,
    /// `swipe`, `door_open`, `door_closed`, `forced_open`, `held_open`, `rex`, `tamper`,
    /// `tamper_cleared`, `reader_online`, `reader_offline`, `reader_fault`,
    /// `remote_unlock`, `pin_lockout` or `presence_reset`.
    pub kind: Option<String>,
    /// `granted`, `denied` or `pin_required`.
    pub result: Option<String>,
    /// From this instant (RFC 3339), inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Until this instant, exclusive.
    pub until: Option<DateTime<Utc>>,
    /// The page after the one that ended with this id (`next_before_id` of the last page).
    pub before_id: Option<i64>,
    /// 1 to 1000, default 100.
    pub limit: Option<i64>,
}

/// One recorded event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub reader_id: Option<String>,
    /// The reader's own number for the event.
    pub seq: Option<u64>,
    pub door_id: Option<i64>,
    pub person_id: Option<i64>,
    pub credential_id: Option<i64>,
    /// The credential as presented, kept only when it matched nobody.
    pub presented: Option<String>,
    pub result: Option<String>,
    pub deny_code: Option<String>,
    pub decision_id: Option<String>,
    /// The decision's reason (JSON) or the fault (text).
    pub detail: serde_json::Value,
    /// The site and zone the door was in when the event happened (doors move between
    /// zones); null on events recorded before they were kept.
    pub site_id: Option<i64>,
    pub zone_id: Option<i64>,
    /// The anti-passback zone a swipe's door counted for.
    pub antipassback_zone_id: Option<i64>,
    /// `in` or `out`: the swiped reader's direction.
    pub direction: Option<String>,
    /// Why a swipe was answered as it was, for grants as for denials: `entitled`,
    /// `door_unlocked`, `free_access_schedule`, `soft_antipassback`, `no_entitlement`,
    /// `outside_schedule`, `antipassback`, … (the `kind` of the reason in `detail`).
    pub reason_code: Option<String>,
    /// The policy version (audit sequence number) the swipe was decided under.
    pub policy_version: Option<i64>,
    /// The risk score (0-100) and its reasons (JSON: code, evidence, words); null until the
    /// risk engine has scored the event (the stream sends a `risk` frame when it has).
    pub risk_score: Option<f64>,
    pub risk_reasons: Option<serde_json::Value>,
}

fn detail(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

impl From<EventRow> for EventView {
    fn from(r: EventRow) -> Self {
        EventView {
            id: r.id,
            at: utc(r.at),
            kind: r.kind,
            reader_id: r.reader_id,
            seq: r.seq.map(crate::store::event_log::reader_seq),
            door_id: r.door_id,
            person_id: r.person_id,
            credential_id: r.credential_id,
            presented: r.presented,
            result: r.result,
            deny_code: r.deny_code,
            decision_id: r.decision_id,
            detail: detail(&r.detail),
            site_id: r.site_id,
            zone_id: r.zone_id,
            antipassback_zone_id: r.antipassback_zone_id,
            direction: r.direction,
            reason_code: r.reason_code,
            policy_version: r.policy_version,
            risk_score: r.risk_score,
            risk_reasons: r.risk_reasons.as_deref().map(detail),
        }
    }
}

impl From<&Recorded> for EventView {
    fn from(r: &Recorded) -> Self {
        let e = &r.event;
        EventView {
            id: r.id,
            at: e.at,
            kind: e.kind.as_str().to_owned(),
            reader_id: e.reader_id.clone(),
            seq: e.seq.map(crate::store::event_log::reader_seq),
            door_id: e.door_id,
            person_id: e.person_id,
            credential_id: e.credential_id,
            presented: e.presented.clone(),
            result: e.result.clone(),
            deny_code: e.deny_code.clone(),
            decision_id: e.decision_id.clone(),
            detail: detail(&e.detail),
            site_id: e.site_id,
            zone_id: e.zone_id,
            antipassback_zone_id: e.antipassback_zone_id,
            direction: e.direction.map(|d| d.as_str().to_owned()),
            reason_code: e.reason_code.clone(),
            policy_version: e.policy_version,
            risk_score: e.risk_score,
            risk_reasons: e.risk_reasons.as_deref().map(detail),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `before_id` for the next (older) page; absent on the last page.
    pub next_before_id: Option<i64>,
}

pub async fn list(
    state: web::Data<AppState>,
    _auth: Authenticated,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let mut errors = FieldErrors::default();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        errors.add("limit", "must be between 1 and 1000");
    }
    if let Some(kind) = &q.kind
        && !EventKind::ALL.iter().any(|k| k.as_str() == kind)
    {
        errors.add("kind", format!("'{kind}' is not an event kind"));
    }
    errors.into_result()?;
    let filter = EventFilter {
        person_id: q.person_id,
        door_id: q.door_id,
        kind: q.kind,
        result: q.result,
        from: q.from,
        until: q.until,
        before_id: q.before_id,
    };
    let rows = state
        .read(move |conn| Ok(recent(conn, &filter, limit)?))
        .await?;
    let full_page = i64::try_from(rows.len()).unwrap_or(i64::MAX) == limit;
    let next_before_id = if full_page {
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(EventPage {
        items: rows.into_iter().map(EventView::from).collect(),
        next_before_id,
    }))
}

/// The next score stored, or never when the risk engine is off.
async fn next_score(
    scores: &mut Option<
        tokio::sync::broadcast::Receiver<std::sync::Arc<crate::risk::live::Scored>>,
    >,
) -> Result<std::sync::Arc<crate::risk::live::Scored>, RecvError> {
    match scores {
        Some(scores) => scores.recv().await,
        None => std::future::pending().await,
    }
}

/// A `risk` frame: an event's score and reasons, once the risk engine has stored them.
fn risk_frame(scored: &crate::risk::live::Scored) -> String {
    let data = serde_json::json!({
        "id": scored.id,
        "risk_score": f64::from(scored.score.value),
        "risk_reasons": scored.score.reasons,
    });
    format!("event: risk\ndata: {data}\n\n")
}

/// How often an idle stream says it is alive, so proxies and browsers keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The last frame of a stream whose token stopped being valid (revoked, expired, its
/// admin disabled), before the stream ends.
const TOKEN_INVALID_FRAME: &str =
    "event: token_invalid\ndata: {\"error\":\"the token is no longer valid\"}\n\n";

/// What an open event stream holds between frames.
struct StreamWatch {
    receiver: tokio::sync::broadcast::Receiver<std::sync::Arc<Recorded>>,
    /// Scores as the risk engine stores them (None when it is off).
    scores: Option<tokio::sync::broadcast::Receiver<std::sync::Arc<crate::risk::live::Scored>>>,
    /// Wakes the stream when verified tokens were dropped (one revoked here, or the
    /// database changed elsewhere), so that even an idle stream checks at once.
    clears: tokio::sync::watch::Receiver<u64>,
    state: web::Data<AppState>,
    token: String,
}

pub async fn stream(state: web::Data<AppState>, auth: Authenticated) -> HttpResponse {
    let mut clears = state.tokens.watch_clears();
    clears.mark_unchanged();
    let watch = StreamWatch {
        receiver: state.events.watch(),
        scores: state.risk.as_ref().map(|r| r.watch_scores()),
        clears,
        token: auth.token,
        state,
    };
    let body = stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        loop {
            let mut score_frame = None;
            let received = tokio::select! {
                received = tokio::time::timeout(KEEPALIVE, watch.receiver.recv()) => Some(received),
                scored = next_score(&mut watch.scores) => {
                    match scored {
                        Ok(scored) => score_frame = Some(risk_frame(&scored)),
                        // A score missed here is in its event when that is read again.
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => watch.scores = None,
                    }
                    None
                }
                cleared = watch.clears.changed() => {
                    if cleared.is_err() {
                        return None;
                    }
                    None
                }
            };
            // Every wake checks the token: from the cache while it vouches for it (a
            // minute), else one read; so a revoked token streams not one more event.
            if !still_valid(&watch.state, &watch.token).await {
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from_static(
                        TOKEN_INVALID_FRAME.as_bytes(),
                    )),
                    None,
                ));
            }
            if let Some(frame) = score_frame {
                return Some((Ok(web::Bytes::from(frame)), Some(watch)));
            }
            let Some(received) = received else { continue };
            let frame = match received {
                Ok(Ok(recorded)) => {
                    let view = EventView::from(recorded.as_ref());
                    let data = serde_json::to_string(&view).unwrap_or_default();
                    format!("id: {}\nevent: {}\ndata: {data}\n\n", view.id, view.kind)
                }
                Ok(Err(RecvError::Lagged(missed))) => {
                    format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n")
                }
                Ok(Err(RecvError::Closed)) => return None,
                Err(_) => ": keepalive\n\n".to_owned(),
            };
            return Some((Ok(web::Bytes::from(frame)), Some(watch)));
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
