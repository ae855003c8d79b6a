//! `gatehouse serve`: opens and migrates the database, loads the live policy, and runs the
//! HTTP server until a shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result};

use crate::app::live::LivePolicy;
use crate::app::routes::routes;
use crate::app::state::AppState;
use crate::clock::Clock;
use crate::config::Config;
use crate::readers::hub::Hub;
use crate::store::event_log::{BatchPolicy, EventLog};

/// How often the snapshot is rebuilt even without changes, so that precomputed schedule
/// windows always reach days ahead of the clock.
const SCHEDULE_REFRESH: Duration = Duration::from_secs(3600);
/// How often zones' daily anti-passback resets are looked for (`Hub::reset_presence_due`).
const PRESENCE_RESET_CHECK: Duration = Duration::from_secs(60);
/// How often old events are deleted, when a retention is set.
const RETENTION_SWEEP: Duration = Duration::from_secs(24 * 3600);

/// Blocking threads (database work) per HTTP worker, and of the main runtime
/// (`cli::serve`): a few more than the database pool has connections.
pub const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// How often the stored policy version is checked for changes made elsewhere (the CLI,
/// another instance): one indexed query.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// A started appliance: where it listens and the server to await or stop.
pub struct Running {
    pub addr: SocketAddr,
    /// The embedded MQTT broker's plain listener, when it runs with one.
    pub mqtt_broker: Option<SocketAddr>,
    /// The embedded MQTT broker's TLS listener, when it runs with one.
    pub mqtt_broker_tls: Option<SocketAddr>,
    /// The embedded broker's own loopback listener and the appliance's login there.
    pub mqtt_broker_local: Option<(SocketAddr, gatehouse_drivers::broker::ApplianceLogin)>,
    pub server: actix_web::dev::Server,
    pub state: web::Data<AppState>,
}

/// Starts everything and returns once the listener is bound.
pub async fn start(config: Config, clock: Clock) -> Result<Running> {
    // Where reader hosts may be, for every write of a reader and every device connection.
    let allowed_networks = config.readers.networks()?;
    crate::entities::readers::set_allowed_networks(allowed_networks.clone());
    let pool = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || crate::app::database::open_database(&config)).await??
    };
    let setup_code = {
        let (config, pool) = (config.clone(), pool.clone());
        tokio::task::spawn_blocking(move || crate::console::setup::prepare(&config, &pool))
            .await??
    };
    for warning in config.secret_file_warnings() {
        tracing::warn!("{warning}");
    }
    let unkeyed_pins = {
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || -> Result<i64> {
            Ok(crate::entities::credentials::count_unkeyed_pins(
                &mut *pool.get()?,
            )?)
        })
        .await??
    };
    if unkeyed_pins > 0 {
        tracing::warn!(
            "{unkeyed_pins} card PINs are hashed without the appliance key (set before this \
             version): they keep working, and are keyed when they are next changed"
        );
    }
    if let Some(code_file) = setup_code {
        tracing::warn!(
            "no admin user exists yet: open the console's /setup page and enter the one-time \
             code from {} (or run `gatehouse admin create NAME --role admin`)",
            code_file.display()
        );
    }
    let live = {
        let pool = pool.clone();
        let now = clock.now();
        Arc::new(
            tokio::task::spawn_blocking(move || LivePolicy::load(&pool, now))
                .await?
                .context("cannot load the access policy")?,
        )
    };
    let (log, writer) = EventLog::new(pool.clone(), BatchPolicy::default());
    tokio::spawn(writer.run());
    let hub =
        Hub::new(live.clone(), log.clone(), clock).with_pin_lockout(config.readers.pin_lockout());
    let console_hub = hub.clone();
    let resetter = hub.clone();
    tokio::spawn(async move {
        // The first tick is at once: a reset missed while the appliance was off is done now.
        let mut tick = tokio::time::interval(PRESENCE_RESET_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            resetter.reset_presence_due(clock.now()).await;
        }
    });
    let mqtt = crate::readers::mqtt::start(&config.mqtt, live.clone(), hub.clone())?;
    crate::readers::modbus::start(
        &config.modbus,
        allowed_networks.clone(),
        live.clone(),
        hub.clone(),
        pool.clone(),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            hub.check_held_open(clock.now()).await;
            hub.end_unlocks(clock.now());
            hub.report_suppressed_faults(clock.now()).await;
        }
    });
    let addr = config.listen_addr()?;
    // Read again here (Config::load checked them) because a Config built in code, as the
    // tests build theirs, has not been through load.
    let tls = config.http.server_tls()?;
    let proxies = config.http.proxies()?;
    let https = tls.is_some();
    let state = web::Data::new(AppState::new(
        config,
        pool,
        live,
        clock,
        log,
        console_hub,
        proxies,
    ));
    let app_state = state.clone();
    let server = HttpServer::new(move || {
        let headers = DefaultHeaders::new();
        // Only when this listener is HTTPS itself: behind a proxy the proxy decides, and
        // over plain HTTP browsers ignore the header anyway. A year, as usual; browsers
        // honour it only from a certificate they trust.
        let headers = if https {
            headers.add(("Strict-Transport-Security", "max-age=31536000"))
        } else {
            headers
        };
        App::new()
            .app_data(app_state.clone())
            // Innermost: what reaches a handler has a readable query string, and what the API
            // answers is JSON (the headers below still go on every answer).
            .wrap(actix_web::middleware::from_fn(crate::web::edge::guard))
            .wrap(
                headers
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("X-Frame-Options", "DENY"))
                    // same-origin, not no-referrer: with no-referrer browsers send `Origin: null`
                    // on the console's own form posts.
                    .add(("Referrer-Policy", "same-origin"))
                    // The console runs no inline script or style and loads nothing from
                    // elsewhere; the API's JSON is not affected.
                    .add((
                        "Content-Security-Policy",
                        crate::console::kit::CONTENT_SECURITY_POLICY,
                    ))
                    .add(("Cross-Origin-Opener-Policy", "same-origin"))
                    .add((
                        "Permissions-Policy",
                        "camera=(), microphone=(), geolocation=()",
                    ))
                    .add(("Cache-Control", "no-store")),
            )
            // The handler's time, for the load benchmark and a browser's developer tools:
            // from the request reaching the app to its response's head being ready.
            .wrap_fn(|req, srv| {
                let started = std::time::Instant::now();
                let response = srv.call(req);
                async move {
                    let mut response = response.await?;
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
                        response
                            .headers_mut()
                            .insert(HeaderName::from_static("server-timing"), value);
                    }
                    Ok(response)
                }
            })
            .configure(routes)
    })
    .workers(2)
    // Page and database work runs on these; argon2id runs on its own pool
    // (`secret::pool`). Bounded so that a flood of slow requests queues instead of
    // starting hundreds of threads.
    .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER);
    // With a certificate the port speaks only HTTPS: a plain-HTTP request to it fails its
    // TLS handshake and gets no answer (one port cannot offer both, so no redirect either).
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(addr, tls.rustls_config()),
        None => server.bind(addr),
    }
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr}: the port is in use by another program; \
                 set [http] listen in the config file or GATEHOUSE_HTTP_LISTEN"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}")
        }
    })?;
    let addr = server.addrs().first().copied().unwrap_or(addr);
    let server = server.run();
    let refresher = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SCHEDULE_REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = refresher
                .live
                .refresh(&refresher.db, refresher.clock.now())
                .await
            {
                tracing::error!(error = %e, "scheduled policy rebuild failed; the previous policy stays in force");
            }
        }
    });
    let follower = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A token revoked or an admin disabled through the CLI (or another instance)
            // must not live on in this process's caches: they are dropped when the
            // database moved. A failed rebuild is logged by `refresh` and shown in /healthz.
            let _ = follower
                .live
                .follow_database(&follower.db, follower.clock.now(), || {
                    follower.tokens.clear();
                    follower.sessions.recheck_all();
                })
                .await;
        }
    });
    let anchor = state.clone();
    tokio::spawn(async move {
        // The head goes to the log, outside the database, whenever it changes and daily:
        // what an auditor gives `audit verify --expect-head` later.
        let mut heads = crate::store::audit::HeadAnchor::default();
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let db = anchor.db.clone();
            let head = tokio::task::spawn_blocking(move || {
                crate::store::audit::head(&mut *db.get().ok()?)
                    .ok()
                    .flatten()
            })
            .await
            .ok()
            .flatten();
            if let Some(line) = heads.observe(head, anchor.clock.now()) {
                tracing::info!("{line}");
            }
        }
    });
    if let Some(days) = std::num::NonZeroU32::new(state.config.events.retention_days) {
        let sweeper = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RETENTION_SWEEP);
            loop {
                tick.tick().await;
                let cutoff = sweeper.clock.now() - chrono::TimeDelta::days(i64::from(days.get()));
                let db = sweeper.db.clone();
                let swept = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
                    let mut conn = db.get()?;
                    Ok(crate::store::event_log::delete_before(&mut conn, cutoff)?)
                })
                .await;
                match swept {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(deleted = n, %cutoff, "old events deleted (events.retention_days)")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "old events could not be deleted"),
                    Err(e) => tracing::error!(error = %e, "the retention sweep failed"),
                }
            }
        });
    }
    let scheme = if https { "https" } else { "http" };
    tracing::info!(%addr, scheme, "gatehouse is serving the admin console and API");
    Ok(Running {
        addr,
        mqtt_broker: mqtt.broker,
        mqtt_broker_tls: mqtt.broker_tls,
        mqtt_broker_local: mqtt.broker_local,
        server,
        state,
    })
}

pub async fn serve(config: Config, clock: Clock) -> Result<()> {
    let running = start(config, clock).await?;
    running
        .server
        .await
        .context("the HTTP server stopped with an error")
}
