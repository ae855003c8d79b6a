//! GET /api/v1/explain: may this person or card open this door at this time, and why.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::HttpMethod;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterIn};

use super::auth::Authenticated;
use super::error::ApiError;
use crate::app::state::AppState;
use crate::entities::FieldErrors;
use crate::policy::CredentialKey;
use crate::policy::explain_query::{DoorQuery, ExplainQueryError, SubjectQuery, answer};

/// Name the subject by exactly one of person_id, employee_id, card_uid or facility+number,
/// and the door by door_id or door (its name).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    pub person_id: Option<i64>,
    pub employee_id: Option<String>,
    /// Card UID in hex.
    pub card_uid: Option<String>,
    /// Wiegand facility code (with `number`).
    pub facility: Option<u32>,
    /// Wiegand card number (with `facility`).
    pub number: Option<u32>,
    pub door_id: Option<i64>,
    /// The door's name.
    pub door: Option<String>,
    /// RFC 3339 time to ask about; default now.
    pub at: Option<DateTime<Utc>>,
}

fn resolve(q: ExplainQuery) -> Result<(SubjectQuery, DoorQuery, Option<DateTime<Utc>>), ApiError> {
    let mut errors = FieldErrors::default();
    let mut subjects = Vec::new();
    if let Some(id) = q.person_id {
        subjects.push(SubjectQuery::PersonId(id));
    }
    if let Some(e) = q.employee_id {
        subjects.push(SubjectQuery::EmployeeId(e));
    }
    if let Some(uid) = q.card_uid {
        match CredentialKey::card(&uid) {
            Ok(key) => subjects.push(SubjectQuery::Credential(key)),
            Err(e) => errors.add("card_uid", e.to_string()),
        }
    }
    match (q.facility, q.number) {
        (Some(facility), Some(number)) => {
            subjects.push(SubjectQuery::Credential(CredentialKey::Wiegand {
                facility,
                number,
            }))
        }
        (None, None) => {}
        _ => errors.add("number", "give facility and number together"),
    }
    if subjects.len() != 1 && errors.is_empty() {
        errors.add(
            "subject",
            "name exactly one of person_id, employee_id, card_uid or facility+number",
        );
    }
    let door = match (q.door_id, q.door) {
        (Some(id), None) => Some(DoorQuery::Id(id)),
        (None, Some(name)) => Some(DoorQuery::Name(name)),
        _ => {
            errors.add("door", "name exactly one of door_id or door");
            None
        }
    };
    errors.into_result().map_err(ApiError::from)?;
    match (subjects.pop(), door) {
        (Some(subject), Some(door)) => Ok((subject, door, q.at)),
        _ => Err(ApiError::Internal("explain query resolution".to_owned())),
    }
}

pub async fn explain(
    state: web::Data<AppState>,
    _auth: Authenticated,
    query: web::Query<ExplainQuery>,
) -> Result<HttpResponse, ApiError> {
    let (subject, door, at) = resolve(query.into_inner())?;
    let present = state.clock.now();
    let at = at.unwrap_or(present);
    let snapshot = state.live.snapshot();
    let result = state
        .live
        .read_presence(|presence| answer(&snapshot, presence, &subject, &door, at, present));
    match result {
        Ok(explanation) => Ok(HttpResponse::Ok().json(explanation)),
        Err(e @ ExplainQueryError::UnknownEmployee(_))
        | Err(e @ ExplainQueryError::UnknownDoorName(_))
        | Err(e @ ExplainQueryError::Policy(_)) => Err(ApiError::NotFound(e.to_string())),
    }
}

/// Adds this route to the OpenAPI document.
pub fn document(add: &mut dyn FnMut(&str, HttpMethod, Operation)) {
    let mut op = OperationBuilder::new()
        .tag("explain")
        .summary(Some(
            "May this person or card open this door at this time, and exactly why",
        ))
        .description(Some(
            "Returns every check of the decision pipeline with its outcome and every \
             entitlement of the person that covers the door, not only the one that wins.",
        ))
        .security(utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        ))
        .response(
            "200",
            utoipa::openapi::ResponseBuilder::new().description("the explanation"),
        )
        .response(
            "404",
            utoipa::openapi::ResponseBuilder::new().description("unknown person or door"),
        )
        .response(
            "422",
            utoipa::openapi::ResponseBuilder::new().description("the question is incomplete"),
        );
    for p in ExplainQuery::into_params(|| Some(ParameterIn::Query)) {
        op = op.parameter(p);
    }
    add("/api/v1/explain", HttpMethod::Get, op.build());
}
