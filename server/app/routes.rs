//! The one URL map of the appliance: console pages (HTML) and the JSON API under
//! /api/v1 alike. Route modules own their handlers; this file only says where they answer.

use actix_web::web;

use crate::entities::{
    credentials::Credentials, doors::Doors, entitlements::Entitlements, holidays::Holidays,
    levels::Levels, people::People, readers::Readers, schedules::Schedules, sites::Sites,
    zones::Zones,
};
use crate::web::error::ApiError;
use crate::web::{
    admin_routes, door_routes, edge, entity_routes, event_routes, explain_routes, health_routes,
    job_routes, openapi,
};

/// The whole URL map of the appliance.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::console::kit::static_files;
    use crate::console::policy::{holidays, levels, schedules, zones};
    use crate::console::{
        admins, audit, cards, dashboard, doors, events, lockdown, people, settings, sign_in,
        site_activity, why,
    };
    cfg.route("/healthz", web::get().to(health_routes::healthz));
    // The admin console (HTML).
    cfg.route("/static/{name}", web::get().to(static_files::serve))
        .route("/login", web::get().to(sign_in::form))
        .route("/login", web::post().to(sign_in::submit))
        .route("/setup", web::get().to(crate::console::setup::form))
        .route("/setup", web::post().to(crate::console::setup::submit))
        .route("/logout", web::post().to(sign_in::sign_out))
        .route("/", web::get().to(dashboard::show))
        .route("/dashboard/status", web::get().to(dashboard::status))
        .route("/dashboard/alarms", web::get().to(dashboard::alarms))
        .route(
            "/alarms/acknowledge",
            web::post().to(dashboard::acknowledge),
        )
        .route("/live/feed", web::get().to(dashboard::feed))
        .route("/people", web::get().to(people::list))
        .route("/people", web::post().to(people::create))
        .route("/people/new", web::get().to(people::new_form))
        .route("/people/{id}", web::get().to(people::show))
        .route("/people/{id}/suspend", web::post().to(people::suspend))
        .route("/people/{id}/reinstate", web::post().to(people::reinstate))
        .route("/people/{id}/terminate", web::post().to(people::terminate))
        .route("/people/{id}/edit", web::get().to(people::edit_form))
        .route("/people/{id}/edit", web::post().to(people::edit))
        .route("/people/{id}/cards", web::post().to(people::add_card))
        .route("/people/{id}/access", web::post().to(people::grant_access))
        .route(
            "/cards/{id}/status",
            web::post().to(people::set_card_status),
        )
        .route("/cards/{id}/pin", web::post().to(people::set_card_pin))
        .route("/access/{id}/remove", web::post().to(people::remove_access))
        .route("/doors", web::get().to(doors::list))
        .route("/doors", web::post().to(doors::create))
        .route("/doors/{id}", web::get().to(doors::show))
        .route("/doors/{id}/edit", web::post().to(doors::edit))
        .route("/doors/{id}/delete", web::post().to(doors::delete))
        .route("/doors/{id}/mode", web::post().to(doors::set_mode))
        .route("/doors/{id}/zone", web::post().to(doors::move_to_zone))
        .route("/doors/{id}/unlock", web::post().to(doors::unlock))
        .route(
            "/doors/{id}/readers",
            web::post().to(doors::register_reader),
        )
        .route("/admins", web::get().to(admins::show))
        .route("/admins", web::post().to(admins::create))
        .route(
            "/admins/{username}/disable",
            web::post().to(admins::disable),
        )
        .route("/admins/{username}/enable", web::post().to(admins::enable))
        .route(
            "/admins/{username}/password",
            web::post().to(admins::set_password),
        )
        .route("/tokens", web::get().to(admins::tokens))
        .route("/tokens", web::post().to(admins::issue_token))
        .route("/tokens/{id}/revoke", web::post().to(admins::revoke_token))
        .route("/zones", web::get().to(zones::zones))
        .route("/zones", web::post().to(zones::create_zone))
        .route("/zones/{id}", web::get().to(zones::zone))
        .route("/zones/{id}/edit", web::post().to(zones::edit_zone))
        .route("/zones/{id}/delete", web::post().to(zones::delete_zone))
        .route("/schedules", web::get().to(schedules::schedules))
        .route("/schedules", web::post().to(schedules::create_schedule))
        // Before `/schedules/{id}`, which would take "new" for an id.
        .route("/schedules/new", web::get().to(schedules::new_schedule))
        .route("/schedules/{id}", web::get().to(schedules::schedule))
        .route(
            "/schedules/{id}/edit",
            web::post().to(schedules::edit_schedule),
        )
        .route(
            "/schedules/{id}/delete",
            web::post().to(schedules::delete_schedule),
        )
        .route("/holidays", web::get().to(holidays::holidays))
        .route("/holidays", web::post().to(holidays::add_holiday))
        .route(
            "/holidays/{id}/delete",
            web::post().to(holidays::delete_holiday),
        )
        .route("/levels", web::get().to(levels::levels))
        .route("/levels", web::post().to(levels::create_level))
        .route("/levels/{id}", web::get().to(levels::level))
        .route("/levels/{id}/items", web::post().to(levels::add_item))
        .route(
            "/levels/{id}/items/remove",
            web::post().to(levels::remove_item),
        )
        .route("/cards", web::get().to(cards::list))
        .route("/settings", web::get().to(settings::show))
        .route("/audit", web::get().to(audit::list))
        .route("/audit/chain", web::get().to(audit::chain))
        .route("/why", web::get().to(why::show))
        .route("/events", web::get().to(events::list))
        .route("/activity", web::get().to(site_activity::show))
        .route("/events.csv", web::get().to(events::export))
        .route("/lockdown", web::get().to(lockdown::show))
        .route("/lockdown/start", web::post().to(lockdown::start))
        .route("/lockdown/end", web::post().to(lockdown::end));
    // The JSON API. `edge::guard` (wrapped around the whole app in serve.rs) refuses query
    // parameters a route does not read and answers every error here as JSON.
    let api_v1 = web::scope("/v1")
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            let mut fields = crate::entities::FieldErrors::default();
            fields.add("query", err.to_string());
            ApiError::Invalid(fields).into()
        }))
        .app_data(
            web::PathConfig::default()
                .error_handler(|err, _| ApiError::NotFound(format!("no such item: {err}")).into()),
        )
        .route("/openapi.json", web::get().to(openapi::serve))
        .route("/explain", web::get().to(explain_routes::explain))
        .route("/events", web::get().to(event_routes::list))
        .route("/events/stream", web::get().to(event_routes::stream))
        // Before the readers collection, whose `/readers/{id}` would take "health".
        .route(
            "/readers/health",
            web::get().to(health_routes::reader_health),
        )
        // Before the doors collection, whose `/doors/{id}` would take "states".
        .route("/doors/states", web::get().to(door_routes::states))
        .route("/doors/{id}/unlock", web::post().to(door_routes::unlock))
        .route("/jobs", web::get().to(job_routes::list_jobs))
        .route(
            "/risk/entitlements",
            web::get().to(crate::web::review_routes::entitlements),
        )
        .route("/audit", web::get().to(admin_routes::audit_list))
        .route("/audit/verify", web::get().to(admin_routes::audit_verify))
        .route("/admin-users", web::get().to(admin_routes::list_admins))
        .route("/admin-users", web::post().to(admin_routes::create_admin))
        .route("/tokens", web::get().to(admin_routes::list_tokens))
        .route("/tokens", web::post().to(admin_routes::issue_token))
        .route("/tokens/{id}", web::delete().to(admin_routes::revoke_token))
        .configure(entity_routes::resource::<Sites>)
        .configure(entity_routes::resource::<Zones>)
        .configure(entity_routes::resource::<Doors>)
        .configure(entity_routes::resource::<Readers>)
        .configure(entity_routes::resource::<People>)
        .configure(entity_routes::resource::<Credentials>)
        .configure(entity_routes::resource::<Schedules>)
        .configure(entity_routes::resource::<Holidays>)
        .configure(entity_routes::resource::<Levels>)
        .configure(entity_routes::resource::<Entitlements>)
        .default_service(web::to(edge::no_such_route));
    cfg.service(
        web::scope("/api")
            .service(api_v1)
            .default_service(web::to(edge::no_such_route)),
    );
}
