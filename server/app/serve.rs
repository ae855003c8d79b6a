//! `gatehouse serve`: opens and migrates the database, loads the live policy, and runs the
//! HTTP server until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpServer, web};
use anyhow::{Context, Result};

use crate::app::jobs::{Instances, JobSpec, Jobs, RunResult};
use crate::app::live::LivePolicy;
use crate::app::routes::routes;
use crate::app::state::AppState;
use crate::clock::Clock;
use crate::config::Config;
use crate::readers::hub::Hub;
use crate::store::event_log::{BatchPolicy, EventLog};

/// Blocking threads (database work) per HTTP worker, and of the main runtime
/// (`cli::serve`): a few more than the database pool has connections.
pub const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// When the stored policy version is checked for changes made elsewhere (the CLI, another
/// instance; one indexed query) and the audit head looked at: every second, so that a
/// revocation through the CLI takes a second. Not configurable for that reason.
const EVERY_SECOND: &str = "* * * * * *";
const EVERY_MINUTE: &str = "0 * * * * *";

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
    // The risk scorer follows the event log from here on; it scores once the baselines
    // are trained (the pass below, then the risk_retrain job).
    let risk = config.risk.enabled.then(|| {
        let engine = crate::risk::live::RiskEngine::new(config.risk_training_window());
        engine.start_scorer(&log, pool.clone());
        engine
    });
    if let Some(engine) = &risk {
        let (engine, pool, now) = (engine.clone(), pool.clone(), clock.now());
        tokio::task::spawn_blocking(move || match engine.retrain(&pool, now) {
            Ok(summary) => tracing::info!("risk: {summary}"),
            Err(e) => {
                tracing::error!(error = %e, "risk baselines not trained at start; swipes are scored after the next risk_retrain run")
            }
        });
    }
    let hub =
        Hub::new(live.clone(), log.clone(), clock).with_pin_lockout(config.readers.pin_lockout());
    let console_hub = hub.clone();
    // A zone's daily reset missed while the appliance was off is done now, before any
    // reader is heard; the presence_reset job does the ones that come due while it runs.
    hub.reset_presence_due(clock.now()).await;
    let mqtt = crate::readers::mqtt::start(&config.mqtt, live.clone(), hub.clone())?;
    crate::readers::modbus::start(
        &config.modbus,
        allowed_networks.clone(),
        live.clone(),
        hub.clone(),
        pool.clone(),
    );
    // The hub's own timers, not jobs: a momentary unlock must end on time and a held-open
    // door be reported within a second, whatever else is running. They are part of the
    // doors' behaviour, not upkeep an admin schedules or needs to see as a job.
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
    let jobs = Arc::new(Jobs::new(clock, config.jobs.tz()?, pool.clone()));
    let state = web::Data::new(AppState::new(
        config,
        pool,
        live,
        clock,
        log,
        console_hub,
        proxies,
        jobs,
        risk,
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
    // `serve` handles the stop signals itself (`stop_signal`), to end the live feeds first.
    .disable_signals()
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
    // The setup code only once the console can be reached: a start that fails leaves none
    // behind to be read or to mislead.
    let setup_code = {
        let (config, pool) = (state.config.clone(), state.db.clone());
        tokio::task::spawn_blocking(move || crate::console::setup::prepare(&config, &pool))
            .await??
    };
    if let Some(code_file) = setup_code {
        tracing::warn!(
            "no admin user exists yet: open the console's /setup page and enter the one-time \
             code from {} (or run `gatehouse admin create NAME --role admin`)",
            code_file.display()
        );
    }
    let server = server.run();
    register_jobs(&state)?;
    state.jobs.start();
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

/// A job's function on the application state. The job holds the state weakly: the state
/// holds the jobs, and a stopped appliance must free both (and its database connections).
fn on_state<F, Fut>(
    state: &web::Data<AppState>,
    job: F,
) -> impl Fn() -> Pin<Box<dyn Future<Output = RunResult> + Send>> + Send + Sync + 'static
where
    F: Fn(web::Data<AppState>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RunResult> + Send + 'static,
{
    let weak = Arc::downgrade(&state.clone().into_inner());
    move || {
        let run = weak.upgrade().map(web::Data::from).map(&job);
        let run: Pin<Box<dyn Future<Output = RunResult> + Send>> = Box::pin(async move {
            match run {
                Some(run) => run.await,
                None => Err("the appliance is stopping".to_owned()),
            }
        });
        run
    }
}

/// Runs blocking database work for a job on the runtime's blocking threads.
async fn on_database<T, F>(state: &AppState, work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&mut crate::store::DbConnection) -> Result<T, String> + Send + 'static,
{
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db.get().map_err(|e| e.to_string())?;
        work(&mut conn)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Every periodic thing the appliance does, as jobs (`jobs.rs`; the settings page and
/// `GET /api/v1/jobs` show them). A new one is one more `add` here.
fn register_jobs(state: &web::Data<AppState>) -> Result<()> {
    let jobs = &state.jobs;
    let schedules = &state.config.jobs;
    jobs.add(JobSpec::new(
        "follow_database",
        "Notices changes made outside this instance (the CLI, another instance) and loads \
         them; a revoked token or disabled admin is then checked again",
        EVERY_SECOND,
        Instances::Each,
        on_state(state, |state| async move {
            // A token revoked or an admin disabled through the CLI (or another instance)
            // must not live on in this process's caches: they are dropped when the
            // database moved. A failed rebuild is logged by `refresh` and shown in /healthz.
            let moved = state
                .live
                .follow_database(&state.db, state.clock.now(), || {
                    state.tokens.clear();
                    state.sessions.recheck_all();
                })
                .await
                .map_err(|e| format!("cannot read the stored policy version: {e}"))?;
            let version = state.live.version();
            match (moved, state.live.stale_because()) {
                (false, _) => Ok(format!("no change (policy version {version})")),
                (true, None) => Ok(format!("changed: policy version {version} loaded")),
                (true, Some(why)) => Err(format!(
                    "the database changed but its policy could not be compiled; version \
                     {version} stays in force: {why}"
                )),
            }
        }),
    ))?;
    jobs.add(JobSpec::new(
        "presence_reset",
        "Clears anti-passback presence in each zone whose daily reset time has come (the \
         zone's presence_reset, on its site's clock), recording a presence_reset event first",
        EVERY_MINUTE,
        // Presence is kept by each instance, so each clears its own.
        Instances::Each,
        on_state(state, |state| async move {
            let outcomes = state.hub.reset_presence_due(state.clock.now()).await;
            if outcomes.is_empty() {
                return Ok("no zone due".to_string());
            }
            let (mut done, mut failed) = (Vec::new(), Vec::new());
            for outcome in outcomes {
                match outcome {
                    Ok((zone, forgotten)) => {
                        done.push(format!("zone {zone} ({forgotten} forgotten)"))
                    }
                    Err((zone, why)) => failed.push(format!("zone {zone}: {why}")),
                }
            }
            if failed.is_empty() {
                Ok(format!("reset {}", done.join(", ")))
            } else {
                Err(format!(
                    "not recorded, so not reset (tried again next minute): {}{}",
                    failed.join("; "),
                    if done.is_empty() {
                        String::new()
                    } else {
                        format!("; reset {}", done.join(", "))
                    }
                ))
            }
        }),
    ))?;
    jobs.add(JobSpec::new(
        "policy_rebuild",
        "Rebuilds the live policy without a change, so that the precomputed schedule \
         windows keep reaching days ahead of the clock",
        &schedules.policy_rebuild,
        Instances::Each,
        on_state(state, |state| async move {
            state
                .live
                .refresh(&state.db, state.clock.now())
                .await
                .map_err(|e| format!("the previous policy stays in force: {e}"))?;
            Ok(format!("policy version {} compiled", state.live.version()))
        }),
    ))
    .context("setting jobs.policy_rebuild")?;
    // The head goes to the log, outside the database, whenever it changes and daily:
    // what an auditor gives `audit verify --expect-head` later.
    let heads = Arc::new(std::sync::Mutex::new(
        crate::store::audit::HeadAnchor::default(),
    ));
    jobs.add(JobSpec::new(
        "audit_head_log",
        "Writes the audit log's head (SEQ:HASH) to the appliance's log when it changes and \
         daily, for an auditor to record outside the database",
        EVERY_SECOND,
        Instances::Each,
        on_state(state, move |state| {
            let heads = heads.clone();
            async move {
                let head = on_database(&state, |conn| {
                    crate::store::audit::head(conn).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| format!("cannot read the audit log's head: {e}"))?;
                let Some((seq, _)) = head else {
                    return Ok("the audit log is empty".to_owned());
                };
                let line = match heads.lock() {
                    Ok(mut heads) => heads.observe(head, state.clock.now()),
                    Err(poisoned) => poisoned.into_inner().observe(head, state.clock.now()),
                };
                match line {
                    Some(line) => {
                        tracing::info!("{line}");
                        Ok(format!("logged the head, entry {seq}"))
                    }
                    None => Ok(format!("head unchanged at entry {seq}")),
                }
            }
        }),
    ))?;
    if state.risk.is_some() {
        jobs.add(JobSpec::new(
            "risk_retrain",
            "Retrains the risk baselines (who normally goes where and when) from the events \
             of the last risk.training_days",
            &schedules.risk_retrain,
            // Each instance scores with baselines of its own.
            Instances::Each,
            on_state(state, |state| async move {
                let engine = state.risk.clone().ok_or("the risk engine is off")?;
                let now = state.clock.now();
                let db = state.db.clone();
                tokio::task::spawn_blocking(move || engine.retrain(&db, now))
                    .await
                    .map_err(|e| format!("the training stopped: {e}"))?
                    .map(|summary| summary.to_string())
                    .map_err(|e| format!("the previous baselines stay in force: {e}"))
            }),
        ))
        .context("setting jobs.risk_retrain")?;
    }
    if let Some(days) = std::num::NonZeroU32::new(state.config.events.retention_days) {
        jobs.add(JobSpec::new(
            "event_retention",
            "Deletes events older than events.retention_days",
            &schedules.event_retention,
            // Deleting twice is harmless but doubles the load on a shared database.
            Instances::One,
            on_state(state, move |state| async move {
                let cutoff = state.clock.now() - chrono::TimeDelta::days(i64::from(days.get()));
                let deleted = on_database(&state, move |conn| {
                    crate::store::event_log::delete_before(conn, cutoff).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| format!("old events could not be deleted: {e}"))?;
                let before = cutoff.format("%Y-%m-%d %H:%M UTC");
                if deleted > 0 {
                    tracing::info!(deleted, %cutoff, "old events deleted (events.retention_days)");
                }
                Ok(match deleted {
                    0 => format!("no events from before {before}"),
                    1 => format!("deleted 1 event from before {before}"),
                    n => format!("deleted {n} events from before {before}"),
                })
            }),
        ))
        .context("setting jobs.event_retention")?;
    }
    Ok(())
}

pub async fn serve(config: Config, clock: Clock) -> Result<()> {
    let running = start(config, clock).await?;
    let (handle, state) = (running.server.handle(), running.state.clone());
    // SIGTERM (systemd's stop) or Ctrl-C: the live feeds end first, then the server stops
    // gracefully, so an open dashboard does not hold the stop for the shutdown timeout.
    tokio::spawn(async move {
        match stop_signal().await {
            Ok(signal) => tracing::info!(signal, "stopping"),
            Err(e) => {
                tracing::error!(error = %e, "cannot wait for a stop signal; stop with SIGKILL");
                return;
            }
        }
        state.stopping.send_replace(true);
        handle.stop(true).await;
    });
    running
        .server
        .await
        .context("the HTTP server stopped with an error")
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); says which.
async fn stop_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        })
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}
