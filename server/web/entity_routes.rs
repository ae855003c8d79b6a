//! The five routes of every entity collection (list, get, create, replace, delete), written
//! once over the `Entity` trait so that every collection behaves the same way.

use actix_web::{HttpResponse, web};

use super::auth::Authenticated;
use crate::app::state::AppState;
use std::collections::BTreeSet;

use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

use super::error::{ApiError, from_json_value, parse_json, parse_json_value};
use crate::entities::{self, ChangeContext, Entity, FieldErrors, Page};

/// Registers `/{collection}` and `/{collection}/{id}` for entity E.
pub fn resource<E: Entity>(cfg: &mut web::ServiceConfig) {
    let collection = format!("/{}", E::COLLECTION);
    let item = format!("/{}/{{id}}", E::COLLECTION);
    cfg.route(&collection, web::get().to(list::<E>))
        .route(&collection, web::post().to(create::<E>))
        .route(&item, web::get().to(get::<E>))
        .route(&item, web::put().to(replace::<E>))
        .route(&item, web::delete().to(delete::<E>));
}

async fn list<E: Entity>(
    state: web::Data<AppState>,
    _auth: Authenticated,
    page: web::Query<Page>,
    filter: web::Query<E::Filter>,
) -> Result<HttpResponse, ApiError> {
    let (page, filter) = (page.into_inner(), filter.into_inner());
    let listing = state
        .read(move |conn| Ok(entities::list::<E>(conn, &filter, page)?))
        .await?;
    Ok(HttpResponse::Ok().json(listing))
}

async fn get<E: Entity>(
    state: web::Data<AppState>,
    _auth: Authenticated,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let view = state
        .read(move |conn| Ok(entities::get::<E>(conn, id)?))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn create<E: Entity>(
    state: web::Data<AppState>,
    auth: Authenticated,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require_policy_writer()?;
    let provenance = auth.change_provenance()?;
    let input: E::Input = parse_json(&body)?;
    let now = state.clock.now();
    let view = state
        .change_people(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            let view = entities::create::<E>(conn, input, &ctx)?;
            let people = E::person_of(&view).map(|p| vec![p]);
            Ok((view, people))
        })
        .await?;
    Ok(HttpResponse::Created().json(view))
}

async fn replace<E: Entity>(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<i64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    auth.require_policy_writer()?;
    let provenance = auth.change_provenance()?;
    let id = id.into_inner();
    let input: E::Input = from_json_value(without_view_only::<E>(id, parse_json_value(&body)?)?)?;
    let now = state.clock.now();
    let view = state
        .change_people(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            // A card moved to another person changes both people's rows.
            let before = entities::get::<E>(conn, id).ok();
            let view = entities::update::<E>(conn, id, input, &ctx)?;
            let people = E::person_of(&view).map(|after| {
                let mut people = vec![after];
                people.extend(before.as_ref().and_then(E::person_of));
                people
            });
            Ok((view, people))
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn delete<E: Entity>(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    auth.require_policy_writer()?;
    let provenance = auth.change_provenance()?;
    let id = id.into_inner();
    let now = state.clock.now();
    state
        .change_people(move |conn| {
            let ctx = ChangeContext {
                provenance: &provenance,
                now,
            };
            let before = entities::get::<E>(conn, id)?;
            entities::delete::<E>(conn, id, &ctx)?;
            Ok(((), E::person_of(&before).map(|p| vec![p])))
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn property_names<T: ToSchema>() -> BTreeSet<String> {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// Takes out of a replacement what only the entity's view shows (its id, timestamps,
/// `has_pin`, ...), so that the body a GET returns can be sent back with a PUT as it is.
/// Those fields are read-only and ignored, except `id`, which must be the URL's.
fn without_view_only<E: Entity>(
    id: i64,
    mut body: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let Some(fields) = body.as_object_mut() else {
        return Ok(body);
    };
    if let Some(given) = fields.get("id")
        && given.as_i64() != Some(id)
    {
        let mut errors = FieldErrors::default();
        errors.add("id", format!("is {given}, but the URL names {id}"));
        return Err(ApiError::Invalid(errors));
    }
    let input = property_names::<E::Input>();
    for name in property_names::<E::View>() {
        if !input.contains(&name) {
            fields.remove(&name);
        }
    }
    Ok(body)
}
