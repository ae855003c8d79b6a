//! The JSON API under /api/v1: route modules own their handlers, `ApiError` maps every
//! failure to an HTTP status once; bearer-token auth and the request edge.

pub mod admin_routes;
pub mod auth;
pub mod client_addr;
pub mod door_routes;
pub mod edge;
pub mod entity_routes;
pub mod error;
pub mod event_routes;
pub mod explain_routes;
pub mod health_routes;
pub mod job_routes;
pub mod openapi;
pub mod review_routes;

use crate::entities::{
    Entity, credentials::Credentials, doors::Doors, entitlements::Entitlements, holidays::Holidays,
    levels::Levels, people::People, readers::Readers, schedules::Schedules, sites::Sites,
    zones::Zones,
};

/// Every entity collection served under /api/v1, for the OpenAPI document.
pub fn entity_collections() -> [&'static str; 10] {
    [
        Sites::COLLECTION,
        Zones::COLLECTION,
        Doors::COLLECTION,
        Readers::COLLECTION,
        People::COLLECTION,
        Credentials::COLLECTION,
        Schedules::COLLECTION,
        Holidays::COLLECTION,
        Levels::COLLECTION,
        Entitlements::COLLECTION,
    ]
}
