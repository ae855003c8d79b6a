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
use crate::entities::FieldErrors;
use crate::store::event_log::{EventFilter, EventKind, Recorded, recent};

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

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Recorded>,
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
        items: rows,
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
                    let data = serde_json::to_string(recorded.as_ref()).unwrap_or_default();
                    format!(
                        "id: {}\nevent: {}\ndata: {data}\n\n",
                        recorded.id, recorded.event.kind
                    )
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
