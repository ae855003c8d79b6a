//! The HTTP edge: application state, the one URL map (`routes`), and the handlers of the
//! JSON API under /api/v1. Route modules own their handlers; errors map to HTTP once.

pub mod admin_routes;
pub mod auth;
pub mod client_addr;
pub mod edge;
pub mod entity_routes;
pub mod error;
pub mod event_routes;
pub mod explain_routes;
pub mod openapi;
pub mod throttle;

use std::sync::{Arc, Mutex};

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::clock::Clock;
use crate::config::Config;
use crate::entities::{
    Entity, credentials::Credentials, doors::Doors, entitlements::Entitlements, holidays::Holidays,
    levels::Levels, people::People, readers::Readers, schedules::Schedules, sites::Sites,
    zones::Zones,
};
use crate::live::LivePolicy;
use crate::store::{DbConnection, DbPool};
use auth::TokenCache;
use error::ApiError;

/// Everything a request handler may use; built once at start and shared.
pub struct AppState {
    pub config: Config,
    pub db: DbPool,
    pub live: Arc<LivePolicy>,
    pub clock: Clock,
    pub tokens: TokenCache,
    /// Failed bearer tokens per client address.
    pub token_throttle: throttle::Throttle,
    /// Console passwords checked with argon2id since start (sign-ins, right or wrong).
    pub password_checks: std::sync::atomic::AtomicU64,
    /// Whose X-Forwarded-For names the client (`[http] trusted_proxies`).
    pub trusted_proxies: client_addr::TrustedProxies,
    /// Console sign-in sessions.
    pub sessions: crate::console::session::Sessions,
    /// The event log, for the event stream.
    pub events: crate::event_log::EventLog,
    /// The readers' health, as the hub sees it.
    pub health: crate::reader_health::HealthBoard,
    /// What the doors are doing, as the hub sees it.
    pub doors: Arc<Mutex<crate::door_state::DoorStates>>,
    /// The hub, for what the console sends readers (a momentary unlock).
    pub hub: crate::hub::Hub,
    /// Today's counts on the dashboard, kept between loads.
    pub day_tally: Arc<crate::event_log::DayTally>,
    /// Serialises admin write transactions in this process: SQLite allows one writer, and
    /// the audit chain needs its entries appended one after another.
    write_lock: Arc<Mutex<()>>,
}

impl AppState {
    pub fn new(
        config: Config,
        db: DbPool,
        live: Arc<LivePolicy>,
        clock: Clock,
        events: crate::event_log::EventLog,
        hub: crate::hub::Hub,
        trusted_proxies: client_addr::TrustedProxies,
    ) -> AppState {
        let sessions = crate::console::session::Sessions::new(
            config.http.session_idle_minutes,
            config.http.session_max_hours,
        );
        AppState {
            config,
            db,
            live,
            clock,
            events,
            health: hub.health(),
            doors: hub.doors(),
            hub,
            tokens: TokenCache::default(),
            token_throttle: throttle::Throttle::new(
                auth::TOKEN_FAILURES,
                auth::TOKEN_FAILURE_WINDOW,
            ),
            password_checks: Default::default(),
            trusted_proxies,
            sessions,
            day_tally: Arc::default(),
            write_lock: Arc::new(Mutex::new(())),
        }
    }

    /// Runs a read on a pooled connection off the async executor.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let db = self.db.clone();
        web::block(move || {
            let mut conn = db.get()?;
            f(&mut conn)
        })
        .await?
    }

    /// Runs a write that does not touch policy (a sign-in's audit entry, a session) on a
    /// pooled connection, one writer at a time: SQLite allows one writer, and the audit
    /// chain needs its entries appended one after another.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let (db, write_lock) = (self.db.clone(), self.write_lock.clone());
        web::block(move || {
            let mut conn = db.get()?;
            let _writer = write_lock
                .lock()
                .map_err(|_| ApiError::Internal("write lock poisoned".to_owned()))?;
            f(&mut conn)
        })
        .await?
    }

    /// Runs an admin change like [`AppState::write`], then rebuilds the live policy so
    /// that the change governs the very next swipe.
    pub async fn change<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        // A console form with text that could not be read is never saved (edge.rs).
        if let Some(fields) = edge::unreadable_form() {
            return Err(ApiError::Invalid(fields));
        }
        let result = self.write(f).await?;
        self.live
            .refresh(&self.db, self.clock.now())
            .await
            .map_err(|e| ApiError::PolicyNotLive(e.to_string()))?;
        Ok(result)
    }

    /// Runs an admin change like [`AppState::change`]; when `f` names the people whose own
    /// rows (person, cards, entitlements) are all it changed, only their rows are read
    /// again and laid over the live snapshot (`LivePolicy::refresh_people`), so an
    /// identity provider's stream of single-person changes does not compile the whole
    /// policy for each; otherwise the policy is rebuilt. Either way the change governs the
    /// very next swipe.
    pub async fn change_people<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<(T, Option<Vec<i64>>), ApiError> + Send + 'static,
    {
        if let Some(fields) = edge::unreadable_form() {
            return Err(ApiError::Invalid(fields));
        }
        let (result, people) = self.write(f).await?;
        let now = self.clock.now();
        match people {
            Some(people) => self.live.refresh_people(&self.db, people, now).await,
            None => self.live.refresh(&self.db, now).await,
        }
        .map_err(|e| ApiError::PolicyNotLive(e.to_string()))?;
        Ok(result)
    }
}

/// The whole URL map of the appliance.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::console::{
        admins, audit, cards, dashboard, doors, events, lockdown, people, policy_pages, settings,
        sign_in, site_activity, static_files, why,
    };
    cfg.route("/healthz", web::get().to(healthz));
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
        .route("/doors/{id}", web::get().to(doors::show))
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
        .route("/zones", web::get().to(policy_pages::zones))
        .route("/zones", web::post().to(policy_pages::create_zone))
        .route("/zones/{id}", web::get().to(policy_pages::zone))
        .route("/zones/{id}/edit", web::post().to(policy_pages::edit_zone))
        .route(
            "/zones/{id}/delete",
            web::post().to(policy_pages::delete_zone),
        )
        .route("/schedules", web::get().to(policy_pages::schedules))
        .route("/schedules", web::post().to(policy_pages::create_schedule))
        // Before `/schedules/{id}`, which would take "new" for an id.
        .route("/schedules/new", web::get().to(policy_pages::new_schedule))
        .route("/schedules/{id}", web::get().to(policy_pages::schedule))
        .route(
            "/schedules/{id}/edit",
            web::post().to(policy_pages::edit_schedule),
        )
        .route(
            "/schedules/{id}/delete",
            web::post().to(policy_pages::delete_schedule),
        )
        .route("/holidays", web::get().to(policy_pages::holidays))
        .route("/holidays", web::post().to(policy_pages::add_holiday))
        .route(
            "/holidays/{id}/delete",
            web::post().to(policy_pages::delete_holiday),
        )
        .route("/levels", web::get().to(policy_pages::levels))
        .route("/levels", web::post().to(policy_pages::create_level))
        .route("/levels/{id}", web::get().to(policy_pages::level))
        .route("/levels/{id}/items", web::post().to(policy_pages::add_item))
        .route(
            "/levels/{id}/items/remove",
            web::post().to(policy_pages::remove_item),
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
        .route("/readers/health", web::get().to(reader_health))
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

/// GET /api/v1/readers/health: every registered reader, online or not, last heard.
async fn reader_health(state: web::Data<AppState>, _auth: auth::Authenticated) -> HttpResponse {
    let readers = state.live.readers();
    let mut ids: Vec<&str> = readers.iter().map(|r| r.reader_id.as_str()).collect();
    ids.sort_unstable();
    HttpResponse::Ok().json(state.health.of(ids.into_iter()))
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    policy_compiled_at: chrono::DateTime<chrono::Utc>,
    /// Set when the last policy rebuild failed: the appliance decides on an older policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_stale: Option<String>,
    people: usize,
    doors: usize,
    readers: usize,
}

/// Liveness and readiness for monitoring: 200 when the database answers and the live
/// policy is current, 503 otherwise.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = state
        .read(|conn| {
            use diesel::RunQueryDsl;
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                .get_result::<i32>(conn)
                .map_err(ApiError::from)
        })
        .await
        .is_ok();
    let snapshot = state.live.snapshot();
    let counts = snapshot.counts();
    let policy_stale = state.live.stale_because();
    let healthy = db_ok && policy_stale.is_none();
    let body = Health {
        status: if healthy { "ok" } else { "degraded" },
        database: if db_ok { "ok" } else { "unreachable" },
        policy_compiled_at: snapshot.compiled_at(),
        policy_stale,
        people: counts.people,
        doors: counts.doors,
        readers: counts.readers,
    };
    if healthy {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
