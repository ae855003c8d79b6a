//! The OpenAPI document of /api/v1, generated from the code: entity routes from the
//! `Entity` trait's types, the others from their request and response types.

use actix_web::HttpResponse;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, Schema};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    PathsBuilder, Ref, RefOr, ResponseBuilder, Type,
};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::entities::{
    Entity, FieldErrors, Page, credentials::Credentials, doors::Doors, entitlements::Entitlements,
    holidays::Holidays, levels::Levels, people::People, readers::Readers, schedules::Schedules,
    sites::Sites, zones::Zones,
};

const JSON: &str = "application/json";

struct DocBuilder {
    paths: PathsBuilder,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl DocBuilder {
    fn schema_ref<T: ToSchema>(&mut self) -> Ref {
        self.schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(&mut self.schemas);
        Ref::from_schema_name(T::name())
    }

    fn route(&mut self, path: &str, method: HttpMethod, operation: Operation) {
        let paths = std::mem::take(&mut self.paths);
        self.paths = paths.path(path, PathItem::new(method, operation));
    }
}

fn json_response(description: &str, schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

fn operation(tag: &str, summary: String) -> OperationBuilder {
    OperationBuilder::new()
        .tag(tag)
        .summary(Some(summary))
        .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
        .response(
            "401",
            ResponseBuilder::new().description("no or invalid bearer token"),
        )
        .response(
            "403",
            ResponseBuilder::new().description("the token's role may not do this"),
        )
}

fn id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(utoipa::openapi::Required::True)
        .schema(Some(i64::schema()))
        .build()
}

fn entity<E: Entity>(doc: &mut DocBuilder) {
    let view = doc.schema_ref::<E::View>();
    let input = doc.schema_ref::<E::Input>();
    let errors = doc.schema_ref::<FieldErrors>();
    let tag = E::COLLECTION;
    let collection = format!("/api/v1/{}", E::COLLECTION);
    let item = format!("/api/v1/{}/{{id}}", E::COLLECTION);
    let body = || {
        Some(
            RequestBodyBuilder::new()
                .content(
                    JSON,
                    ContentBuilder::new().schema(Some(input.clone())).build(),
                )
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        )
    };
    let invalid = json_response("invalid input: messages per field", errors.clone());
    let mut list = operation(tag, format!("List {} (paged, filtered)", E::COLLECTION));
    for p in Page::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .chain(E::Filter::into_params(|| Some(ParameterIn::Query)))
    {
        list = list.parameter(p);
    }
    let page_schema = utoipa::openapi::ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(view.clone()))
        .property(
            "total",
            utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer),
        )
        .property(
            "offset",
            utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer),
        )
        .property(
            "limit",
            utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer),
        )
        .build();
    doc.route(
        &collection,
        HttpMethod::Get,
        list.response("200", json_response("one page", page_schema))
            .build(),
    );
    doc.route(
        &collection,
        HttpMethod::Post,
        operation(tag, format!("Create a {}", E::NAME))
            .request_body(body())
            .response("201", json_response("created", view.clone()))
            .response("422", invalid.clone())
            .build(),
    );
    doc.route(
        &item,
        HttpMethod::Get,
        operation(tag, format!("Get a {}", E::NAME))
            .parameter(id_param())
            .response("200", json_response("found", view.clone()))
            .response("404", ResponseBuilder::new().description("no such id"))
            .build(),
    );
    doc.route(
        &item,
        HttpMethod::Put,
        operation(tag, format!("Replace a {}", E::NAME))
            .parameter(id_param())
            .request_body(body())
            .response("200", json_response("replaced", view))
            .response("404", ResponseBuilder::new().description("no such id"))
            .response("422", invalid)
            .build(),
    );
    doc.route(
        &item,
        HttpMethod::Delete,
        operation(tag, format!("Delete a {}", E::NAME))
            .parameter(id_param())
            .response("204", ResponseBuilder::new().description("deleted"))
            .response("404", ResponseBuilder::new().description("no such id"))
            .response("409", ResponseBuilder::new().description("still in use"))
            .build(),
    );
}

/// The event log, its live stream, and the readers' health.
fn event_paths(doc: &mut DocBuilder) {
    let health = doc.schema_ref::<crate::readers::health::ReaderHealth>();
    doc.route(
        "/api/v1/readers/health",
        HttpMethod::Get,
        operation(
            "readers",
            "Every registered reader: online, last heard from, last heartbeat, faults".to_owned(),
        )
        .response(
            "200",
            json_response("the readers", ArrayBuilder::new().items(health).build()),
        )
        .build(),
    );
    use super::event_routes::{EventPage, EventQuery};
    let page = doc.schema_ref::<EventPage>();
    let mut list = operation("events", "Search the event log, newest first".to_owned());
    for p in EventQuery::into_params(|| Some(ParameterIn::Query)) {
        list = list.parameter(p);
    }
    doc.route(
        "/api/v1/events",
        HttpMethod::Get,
        list.response("200", json_response("one page", page))
            .build(),
    );
    doc.route(
        "/api/v1/events/stream",
        HttpMethod::Get,
        operation(
            "events",
            "Every event as it is recorded (text/event-stream: `event` is the kind, `data` a Recorded event)"
                .to_owned(),
        )
        .response(
            "200",
            ResponseBuilder::new()
                .description("server-sent events")
                .content("text/event-stream", ContentBuilder::new().build()),
        )
        .build(),
    );
}

/// The entitlement review.
fn risk_paths(doc: &mut DocBuilder) {
    use super::review_routes::ReviewQuery;
    let review = doc.schema_ref::<crate::risk::entitlements::Review>();
    let mut op = operation(
        "risk",
        "Entitlement findings (unused, peer outliers, redundant, dormant cards, over-broad \
         levels, toxic combinations), highest score first, each with its evidence and a \
         suggested remediation"
            .to_owned(),
    );
    for p in ReviewQuery::into_params(|| Some(ParameterIn::Query)) {
        op = op.parameter(p);
    }
    doc.route(
        "/api/v1/risk/entitlements",
        HttpMethod::Get,
        op.response("200", json_response("the review", review))
            .response(
                "422",
                ResponseBuilder::new().description("a parameter is out of range"),
            )
            .build(),
    );
}

/// The doors' states and momentary unlocks.
fn door_paths(doc: &mut DocBuilder) {
    use super::door_routes::{DoorStateView, UnlockRequest, UnlockView};
    let state = doc.schema_ref::<DoorStateView>();
    let request = doc.schema_ref::<UnlockRequest>();
    let done = doc.schema_ref::<UnlockView>();
    let errors = doc.schema_ref::<FieldErrors>();
    doc.route(
        "/api/v1/doors/states",
        HttpMethod::Get,
        operation(
            "doors",
            "Every door's state as its readers report it: unknown, closed or open (forced, \
             held open), stale while the reporting reader is offline, and an admin's unlock"
                .to_owned(),
        )
        .response(
            "200",
            json_response("the doors", ArrayBuilder::new().items(state).build()),
        )
        .build(),
    );
    doc.route(
        "/api/v1/doors/{id}/unlock",
        HttpMethod::Post,
        operation(
            "doors",
            "Unlock a door for a moment (1 to 3600 s; the door's unlock time by default)"
                .to_owned(),
        )
        .parameter(id_param())
        .request_body(Some(
            RequestBodyBuilder::new()
                .content(JSON, ContentBuilder::new().schema(Some(request)).build())
                .build(),
        ))
        .response("200", json_response("unlocked until `until`", done))
        .response("404", ResponseBuilder::new().description("no such door"))
        .response(
            "409",
            ResponseBuilder::new().description(
                "refused, with the reason in `error`: the site is in lockdown, the door's \
                 mode is locked and `override_locked` was not sent, or it has no reader",
            ),
        )
        .response("422", json_response("invalid input", errors))
        .build(),
    );
}

/// The periodic jobs.
fn job_paths(doc: &mut DocBuilder) {
    let job = doc.schema_ref::<crate::app::jobs::JobView>();
    doc.route(
        "/api/v1/jobs",
        HttpMethod::Get,
        operation(
            "jobs",
            "Every periodic job: schedule, last run (start, duration, result, detail), next \
             run, runs skipped"
                .to_owned(),
        )
        .response(
            "200",
            json_response("the jobs", ArrayBuilder::new().items(job).build()),
        )
        .build(),
    );
}

/// Admin users, tokens and the audit log.
fn admin_paths(doc: &mut DocBuilder) {
    use super::admin_routes::{AuditEntryView, AuditFilter, TokenRequest};
    use crate::identity::admins::{AdminInput, AdminView, IssuedToken, TokenView};
    use crate::store::audit::ChainReport;
    let admin = doc.schema_ref::<AdminView>();
    let admin_input = doc.schema_ref::<AdminInput>();
    let token = doc.schema_ref::<TokenView>();
    let issued = doc.schema_ref::<IssuedToken>();
    let token_request = doc.schema_ref::<TokenRequest>();
    let entry = doc.schema_ref::<AuditEntryView>();
    let report = doc.schema_ref::<ChainReport>();
    let errors = doc.schema_ref::<FieldErrors>();
    let body = |schema: Ref| {
        Some(
            RequestBodyBuilder::new()
                .content(JSON, ContentBuilder::new().schema(Some(schema)).build())
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        )
    };
    let list_of = |schema: Ref| ArrayBuilder::new().items(schema).build();
    doc.route(
        "/api/v1/admin-users",
        HttpMethod::Get,
        operation("admin", "List admin users (admin role)".to_owned())
            .response("200", json_response("admins", list_of(admin.clone())))
            .build(),
    );
    doc.route(
        "/api/v1/admin-users",
        HttpMethod::Post,
        operation("admin", "Create an admin user (admin role)".to_owned())
            .request_body(body(admin_input))
            .response("201", json_response("created", admin))
            .response("422", json_response("invalid input", errors.clone()))
            .build(),
    );
    doc.route(
        "/api/v1/tokens",
        HttpMethod::Get,
        operation(
            "admin",
            "List API tokens, never their text (admin role)".to_owned(),
        )
        .response("200", json_response("tokens", list_of(token)))
        .build(),
    );
    doc.route(
        "/api/v1/tokens",
        HttpMethod::Post,
        operation(
            "admin",
            "Issue an API token; its text is in this answer only (admin role)".to_owned(),
        )
        .request_body(body(token_request))
        .response("201", json_response("issued", issued))
        .response("422", json_response("invalid input", errors))
        .build(),
    );
    doc.route(
        "/api/v1/tokens/{id}",
        HttpMethod::Delete,
        operation("admin", "Revoke an API token (admin role)".to_owned())
            .parameter(id_param())
            .response("204", ResponseBuilder::new().description("revoked"))
            .response("404", ResponseBuilder::new().description("no such token"))
            .build(),
    );
    let mut audit = operation("audit", "Audit log entries, newest first".to_owned());
    for p in Page::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .chain(AuditFilter::into_params(|| Some(ParameterIn::Query)))
    {
        audit = audit.parameter(p);
    }
    doc.route(
        "/api/v1/audit",
        HttpMethod::Get,
        audit
            .response("200", json_response("entries", list_of(entry)))
            .build(),
    );
    doc.route(
        "/api/v1/audit/verify",
        HttpMethod::Get,
        operation("audit", "Check the audit log's hash chain".to_owned())
            .response(
                "200",
                json_response("the report; problems is empty when intact", report),
            )
            .build(),
    );
}

/// Builds the whole document.
pub fn document() -> OpenApi {
    let mut doc = DocBuilder {
        paths: PathsBuilder::new(),
        schemas: Vec::new(),
    };
    entity::<Sites>(&mut doc);
    entity::<Zones>(&mut doc);
    entity::<Doors>(&mut doc);
    entity::<Readers>(&mut doc);
    entity::<People>(&mut doc);
    entity::<Credentials>(&mut doc);
    entity::<Schedules>(&mut doc);
    entity::<Holidays>(&mut doc);
    entity::<Levels>(&mut doc);
    entity::<Entitlements>(&mut doc);
    super::explain_routes::document(&mut |path, method, op| doc.route(path, method, op));
    admin_paths(&mut doc);
    event_paths(&mut doc);
    job_paths(&mut doc);
    risk_paths(&mut doc);
    door_paths(&mut doc);
    let mut components = ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (name, schema) in doc.schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Gatehouse API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Admin API of the Gatehouse access control appliance. Authenticate with \
                     'Authorization: Bearer <token>' (tokens: `gatehouse admin token`).",
                ))
                .build(),
        )
        .paths(doc.paths.build())
        .components(Some(components.build()))
        .build()
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}
