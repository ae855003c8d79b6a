//! The one error type of the HTTP edge, with the one place that maps errors to statuses.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::entities::{ChangeError, FieldErrors};
use crate::store::history::HistoryError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required: send 'Authorization: Bearer <token>'")]
    Unauthenticated,
    #[error("your role ({0}) may not do this")]
    Forbidden(&'static str),
    /// The token's scope does not allow this (a read-only token asked for a change).
    #[error(
        "this token's scope is {0}: it may read (GET) but not change anything; issue a token \
         with scope full for changes"
    )]
    TokenScope(crate::identity::admins::TokenScope),
    #[error("{0}")]
    NotFound(String),
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// A request the route cannot read at all (unknown or unreadable query parameters): 400.
    #[error("{0}")]
    BadRequest(String, FieldErrors),
    #[error("{0}")]
    Conflict(String),
    #[error("the database is not reachable right now; try again shortly")]
    Unavailable,
    /// Too many failed attempts from this client address lately; wait this long.
    #[error("too many failed attempts from this address; try again in {} seconds", .0.as_secs().max(1))]
    TooManyAttempts(std::time::Duration),
    /// Every password check worker is busy and its queue is full.
    #[error("the appliance is busy; try again in a moment")]
    Busy,
    #[error(
        "the change was saved, but the live policy could not be rebuilt, so doors still decide on the previous policy: {0}"
    )]
    PolicyNotLive(String),
    #[error("internal error; the appliance log has the details")]
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
    /// The token's scope, when that is what refused the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<crate::identity::admins::TokenScope>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::TokenScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable | ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PolicyNotLive(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthenticated) {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        match self {
            ApiError::TooManyAttempts(wait) => {
                response.insert_header(("Retry-After", wait.as_secs().max(1).to_string()));
            }
            ApiError::Busy => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
            fields: match self {
                ApiError::Invalid(fields) | ApiError::BadRequest(_, fields) => Some(fields),
                _ => None,
            },
            scope: match self {
                ApiError::TokenScope(scope) => Some(*scope),
                _ => None,
            },
        })
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Invalid(fields) => ApiError::Invalid(fields),
            ChangeError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            ChangeError::Conflict(message) => ApiError::Conflict(message),
            ChangeError::Db(db) => db.into(),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => ApiError::NotFound("not found".to_owned()),
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation,
                info,
            ) => ApiError::Conflict(format!(
                "the change conflicts with existing data: {}",
                info.message()
            )),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Database(db) => db.into(),
            HistoryError::NotPermitted { role, .. } => ApiError::Forbidden(role.as_str()),
            HistoryError::InsideTransaction | HistoryError::Unreadable(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<diesel::r2d2::PoolError> for ApiError {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        tracing::warn!(error = %e, "no database connection");
        ApiError::Unavailable
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Parses a JSON body into T, naming the field that failed (422) instead of a bare 400. The
/// body is one JSON value and nothing after it, and no string in it holds a NUL.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    from_json_value(parse_json_value(body)?)
}

fn body_error(message: String) -> ApiError {
    let mut fields = FieldErrors::default();
    fields.add("body", message);
    ApiError::Invalid(fields)
}

/// Reads a JSON body as one value with nothing after it and no NUL in any string (422).
pub fn parse_json_value(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_json::Value::deserialize(&mut de).map_err(|e| body_error(e.to_string()))?;
    de.end().map_err(|e| {
        body_error(format!(
            "only one JSON value may be sent, with nothing after it: {e}"
        ))
    })?;
    let nul = crate::input::nul_paths(&value);
    if !nul.is_empty() {
        let mut fields = FieldErrors::default();
        for path in nul {
            fields.add(path, crate::input::NUL);
        }
        return Err(ApiError::Invalid(fields));
    }
    Ok(value)
}

/// Turns a JSON value into T, naming the field that failed (422).
pub fn from_json_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        let mut fields = FieldErrors::default();
        fields.add(field, e.inner().to_string());
        ApiError::Invalid(fields)
    })
}
