//! What the doors are doing and unlocking one by an admin's hand, over the API: each door's
//! state as its readers report it (`GET /api/v1/doors/states`) and a momentary unlock
//! (`POST /api/v1/doors/{id}/unlock`), refused with 409 and the reason.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, parse_json};
use crate::app::state::AppState;
use crate::entities::FieldErrors;
use crate::readers::door_state::DoorState;
use crate::readers::hub::UnlockError;

/// One door's state (docs/console.md, "Door states").
#[derive(Debug, Serialize, ToSchema)]
pub struct DoorStateView {
    pub door_id: i64,
    /// `unknown` (no report of its contact since the appliance started), `closed` or
    /// `open`.
    pub contact: String,
    /// Since when it is so (none when unknown).
    pub since: Option<DateTime<Utc>>,
    /// Opened without a grant or a request-to-exit.
    pub forced: bool,
    /// Open past its held-open time (a held-open alarm was raised).
    pub held_open: bool,
    /// The reader that reported it is offline: this is only the last known.
    pub stale: bool,
    /// The end of an admin's unlock in force, if one is.
    pub unlocked_until: Option<DateTime<Utc>>,
}

/// GET /api/v1/doors/states: every door of the live policy, in id order.
pub async fn states(state: web::Data<AppState>, _auth: Authenticated) -> HttpResponse {
    let snapshot = state.live.snapshot();
    let offline = state.health.offline();
    let unlocked = state.hub.unlocked_doors();
    let mut ids: Vec<i64> = snapshot.doors().iter().map(|d| d.id).collect();
    ids.sort_unstable();
    let statuses: Vec<_> = {
        let doors = match state.doors.lock() {
            Ok(doors) => doors,
            Err(poisoned) => poisoned.into_inner(),
        };
        ids.iter()
            .map(|id| (*id, doors.status(*id, |r| offline.contains(r))))
            .collect()
    };
    let views: Vec<DoorStateView> = statuses
        .into_iter()
        .map(|(door_id, status)| {
            let (contact, since, forced, held_open) = match status.state {
                DoorState::Unknown => ("unknown", None, false, false),
                DoorState::Closed { since } => ("closed", Some(since), false, false),
                DoorState::Open {
                    since,
                    forced,
                    held_open,
                } => ("open", Some(since), forced, held_open),
            };
            DoorStateView {
                door_id,
                contact: contact.to_owned(),
                since,
                forced,
                held_open,
                stale: status.stale,
                unlocked_until: unlocked
                    .iter()
                    .find(|(door, _)| *door == door_id)
                    .map(|(_, until)| *until),
            }
        })
        .collect();
    HttpResponse::Ok().json(views)
}

/// A momentary unlock, as asked for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    /// How long, 1 to 3600 seconds; the door's own unlock time when left out.
    #[serde(default)]
    pub seconds: Option<i64>,
    /// Confirms unlocking a door whose mode is `locked` (refused with 409 otherwise).
    #[serde(default)]
    pub override_locked: bool,
}

/// A momentary unlock, as done.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnlockView {
    pub door_id: i64,
    pub seconds: i64,
    /// When the door goes back to its mode.
    pub until: DateTime<Utc>,
    /// It overrode the door's `locked` mode.
    pub overrides_locked: bool,
}

/// POST /api/v1/doors/{id}/unlock: unlocks the door for a moment (admins and operators);
/// 409 with the reason during a lockdown, for a `locked` door without `override_locked`,
/// and for a door with no reader. Audited, and recorded as a `remote_unlock` event.
pub async fn unlock(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require_policy_writer()?;
    let provenance = auth.change_provenance()?;
    let id = id.into_inner();
    let request: UnlockRequest = if body.iter().all(u8::is_ascii_whitespace) {
        UnlockRequest::default()
    } else {
        parse_json(&body)?
    };
    let door = state
        .live
        .snapshot()
        .door(id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("door {id} does not exist")))?;
    let seconds = request
        .seconds
        .unwrap_or_else(|| i64::from(door.unlock_ms.div_ceil(1000)));
    if !(1..=3600).contains(&seconds) {
        let mut fields = FieldErrors::default();
        fields.add("seconds", "an unlock lasts 1 to 3600 seconds");
        return Err(ApiError::Invalid(fields));
    }
    let until = state
        .hub
        .unlock_for(
            id,
            chrono::Duration::seconds(seconds),
            request.override_locked,
            &provenance.actor(),
        )
        .await
        .map_err(|e| match e {
            UnlockError::UnknownDoor(_) => ApiError::NotFound(format!("door {id} does not exist")),
            UnlockError::Log(e) => ApiError::Internal(e.to_string()),
            UnlockError::DoorLocked => ApiError::Conflict(format!(
                "{}: {e}; send \"override_locked\": true to unlock it anyway",
                door.name
            )),
            refused => ApiError::Conflict(format!("{}: {refused}", door.name)),
        })?;
    let now = state.clock.now();
    let recorded = door.clone();
    state
        .write(move |conn| {
            Ok(crate::entities::doors::record_unlock(
                conn,
                &provenance,
                &recorded,
                seconds,
                until,
                now,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(UnlockView {
        door_id: id,
        seconds,
        until,
        overrides_locked: door.mode == crate::policy::DoorMode::Locked,
    }))
}
