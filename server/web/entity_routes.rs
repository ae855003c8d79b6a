//! The five routes of every entity collection (list, get, create, replace, delete), written
//! once over the `Entity` trait so that every collection behaves the same way.

use actix_web::{HttpResponse, web};

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, parse_json};
use crate::entities::{self, ChangeContext, Entity, Page};

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
    let actor = auth.require_policy_writer()?.username.clone();
    let input: E::Input = parse_json(&body)?;
    let now = state.clock.now();
    let view = state
        .change(move |conn| {
            let ctx = ChangeContext { actor: &actor, now };
            Ok(entities::create::<E>(conn, input, &ctx)?)
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
    let actor = auth.require_policy_writer()?.username.clone();
    let input: E::Input = parse_json(&body)?;
    let id = id.into_inner();
    let now = state.clock.now();
    let view = state
        .change(move |conn| {
            let ctx = ChangeContext { actor: &actor, now };
            Ok(entities::update::<E>(conn, id, input, &ctx)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

async fn delete<E: Entity>(
    state: web::Data<AppState>,
    auth: Authenticated,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let actor = auth.require_policy_writer()?.username.clone();
    let id = id.into_inner();
    let now = state.clock.now();
    state
        .change(move |conn| {
            let ctx = ChangeContext { actor: &actor, now };
            Ok(entities::delete::<E>(conn, id, &ctx)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
