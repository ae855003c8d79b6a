//! `AppState`: everything a request handler may use (config, pool, live policy, clock,
//! caches, the hub's boards), built once at start; reads, writes and admin changes.

use std::sync::{Arc, Mutex};

use actix_web::web;

use crate::app::live::LivePolicy;
use crate::clock::Clock;
use crate::config::Config;
use crate::identity::throttle;
use crate::store::{DbConnection, DbPool};
use crate::web::auth::{self, TokenCache};
use crate::web::error::ApiError;
use crate::web::{client_addr, edge};

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
    pub sessions: crate::identity::sessions::Sessions,
    /// What console changes did, waiting for the next page of their session.
    pub notices: Arc<crate::console::kit::notice::Notices>,
    /// Set when the appliance is stopping: long-lived answers (the dashboard's live feed)
    /// end, so that a graceful stop does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The event log, for the event stream.
    pub events: crate::store::event_log::EventLog,
    /// The readers' health, as the hub sees it.
    pub health: crate::readers::health::HealthBoard,
    /// What the doors are doing, as the hub sees it.
    pub doors: Arc<Mutex<crate::readers::door_state::DoorStates>>,
    /// The hub, for what the console sends readers (a momentary unlock).
    pub hub: crate::readers::hub::Hub,
    /// Today's counts on the dashboard, kept between loads.
    pub day_tally: Arc<crate::store::event_log::DayTally>,
    /// The periodic jobs and their last runs.
    pub jobs: Arc<crate::app::jobs::Jobs>,
    /// The risk engine's baselines and live scores; None when `[risk] enabled = false`.
    pub risk: Option<Arc<crate::risk::live::RiskEngine>>,
    /// Serialises admin write transactions in this process: SQLite allows one writer, and
    /// the audit chain needs its entries appended one after another.
    write_lock: Arc<Mutex<()>>,
}

impl AppState {
    // Each part is built (and its configuration checked) by `serve` before the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        db: DbPool,
        live: Arc<LivePolicy>,
        clock: Clock,
        events: crate::store::event_log::EventLog,
        hub: crate::readers::hub::Hub,
        trusted_proxies: client_addr::TrustedProxies,
        jobs: Arc<crate::app::jobs::Jobs>,
        risk: Option<Arc<crate::risk::live::RiskEngine>>,
    ) -> AppState {
        let sessions = crate::identity::sessions::Sessions::new(
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
            notices: Default::default(),
            stopping: tokio::sync::watch::channel(false).0,
            day_tally: Arc::default(),
            jobs,
            risk,
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
