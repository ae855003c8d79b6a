//! What every request passes before its handler: a query string and console form of readable
//! text (no NUL, valid UTF-8); under /api, only the query parameters its route reads, errors as JSON.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::{Error, HttpRequest, HttpResponse, ResponseError};
use utoipa::IntoParams;
use utoipa::openapi::path::ParameterIn;

use super::error::ApiError;
use crate::entities::{
    Entity, FieldErrors, Page, credentials::Credentials, doors::Doors, entitlements::Entitlements,
    holidays::Holidays, levels::Levels, people::People, readers::Readers, schedules::Schedules,
    sites::Sites, zones::Zones,
};

/// The prefix of every JSON route.
const API: &str = "/api/";

fn names<T: IntoParams>() -> Vec<String> {
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

fn list_params<E: Entity>(table: &mut HashMap<String, BTreeSet<String>>) {
    let mut allowed: BTreeSet<String> = names::<Page>().into_iter().collect();
    allowed.extend(names::<E::Filter>());
    table.insert(format!("/api/v1/{}", E::COLLECTION), allowed);
}

/// The query parameters each GET route of the API reads, by route pattern, taken from the
/// very types its handler parses them into; every other route reads none.
static API_QUERIES: LazyLock<HashMap<String, BTreeSet<String>>> = LazyLock::new(|| {
    let mut table = HashMap::new();
    list_params::<Sites>(&mut table);
    list_params::<Zones>(&mut table);
    list_params::<Doors>(&mut table);
    list_params::<Readers>(&mut table);
    list_params::<People>(&mut table);
    list_params::<Credentials>(&mut table);
    list_params::<Schedules>(&mut table);
    list_params::<Holidays>(&mut table);
    list_params::<Levels>(&mut table);
    list_params::<Entitlements>(&mut table);
    let mut audit: BTreeSet<String> = names::<Page>().into_iter().collect();
    audit.extend(names::<super::admin_routes::AuditFilter>());
    table.insert("/api/v1/audit".to_owned(), audit);
    table.insert(
        "/api/v1/explain".to_owned(),
        names::<super::explain_routes::ExplainQuery>()
            .into_iter()
            .collect(),
    );
    table.insert(
        "/api/v1/risk/entitlements".to_owned(),
        names::<super::review_routes::ReviewQuery>()
            .into_iter()
            .collect(),
    );
    table.insert(
        "/api/v1/events".to_owned(),
        names::<super::event_routes::EventQuery>()
            .into_iter()
            .collect(),
    );
    table
});

/// The query parameters a GET of this API route pattern reads (for tests and the docs).
pub fn api_query_parameters(pattern: &str) -> Vec<String> {
    API_QUERIES
        .get(pattern)
        .map(|names| names.iter().cloned().collect())
        .unwrap_or_default()
}

/// Checks the query string: readable everywhere; under /api, only parameters the route reads.
fn check_query(req: &HttpRequest) -> Result<(), ApiError> {
    let pairs = crate::input::decode_urlencoded(req.query_string().as_bytes());
    let mut problems = FieldErrors::default();
    for pair in &pairs {
        if let Some(problem) = pair.problem {
            problems.add(pair.name.clone(), problem);
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(
            "the query string holds text that cannot be read".to_owned(),
            problems,
        ));
    }
    if !req.path().starts_with(API) || pairs.is_empty() {
        return Ok(());
    }
    let allowed = if req.method() == actix_web::http::Method::GET {
        req.match_pattern()
            .and_then(|pattern| API_QUERIES.get(&pattern))
    } else {
        None
    };
    let mut unknown = BTreeSet::new();
    for pair in &pairs {
        if !allowed.is_some_and(|names| names.contains(&pair.name)) {
            unknown.insert(pair.name.clone());
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    for name in &unknown {
        problems.add(name.clone(), "unknown query parameter");
    }
    let reads = match allowed {
        Some(names) if !names.is_empty() => format!(
            "this route reads {}",
            names.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        _ => "this route reads no query parameters".to_owned(),
    };
    Err(ApiError::BadRequest(
        format!(
            "unknown query parameter{} {}; {reads}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        ),
        problems,
    ))
}

/// The middleware: refuses unreadable (and, under /api, unknown) query parameters, and turns
/// every API error that is not yet JSON (a malformed path id, a body too large, a wrong
/// method) into the API's JSON error body, keeping its status and headers.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Err(e) = check_query(req.request()) {
        if req.path().starts_with(API) {
            return Ok(req.into_response(e.error_response()));
        }
        let message = match &e {
            ApiError::BadRequest(_, fields) => crate::console::kit::describe(fields),
            other => other.to_string(),
        };
        return Ok(
            req.into_response(crate::console::kit::PageError::BadForm(message).error_response())
        );
    }
    let api = req.path().starts_with(API);
    let mut req = req;
    if !api && is_small_form(&req) {
        let body = req.extract::<actix_web::web::Bytes>().await?;
        let mut unreadable = FieldErrors::default();
        for pair in crate::input::decode_urlencoded(&body) {
            if let Some(problem) = pair.problem {
                unreadable.add(pair.name, problem);
            }
        }
        req.set_payload(actix_web::dev::Payload::from(body));
        if !unreadable.is_empty() {
            let res = UNREADABLE_FORM.scope(unreadable, next.call(req)).await?;
            return Ok(res.map_into_boxed_body());
        }
    }
    let res = next.call(req).await?.map_into_boxed_body();
    if !api {
        return Ok(res);
    }
    Ok(as_json_error(res))
}

tokio::task_local! {
    /// The fields of the console form being handled whose text could not be read.
    static UNREADABLE_FORM: FieldErrors;
}

/// The fields of the console form this request posted that hold bytes that are not UTF-8 or
/// a NUL, with why; None when every field reads. `AppState::change` refuses to save such a
/// form (422, which the console shows beside each field), since the form's parser would
/// have stored U+FFFD in place of what was sent.
pub fn unreadable_form() -> Option<FieldErrors> {
    UNREADABLE_FORM
        .try_with(Clone::clone)
        .ok()
        .filter(|fields| !fields.is_empty())
}

/// The largest console form looked at here: the console's own limit (console/kit/session.rs).
const FORM_LIMIT: usize = 256 * 1024;

/// A console form post (urlencoded) no larger than the console accepts: what is checked.
fn is_small_form(req: &ServiceRequest) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    req.method() == actix_web::http::Method::POST
        && header(CONTENT_TYPE).is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
        && header(CONTENT_LENGTH)
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n <= FORM_LIMIT)
}

fn as_json_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (req, response) = res.into_parts();
    let message = response
        .error()
        .map(|e| e.to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let mut json = HttpResponse::build(status);
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            json.append_header((name.clone(), value.clone()));
        }
    }
    ServiceResponse::new(req, json.json(serde_json::json!({ "error": message })))
}

/// The answer to a path under /api that names no route: JSON, like every API answer.
pub async fn no_such_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no API route {} {}; /api/v1/openapi.json lists them",
        req.method(),
        req.path()
    )))
}
