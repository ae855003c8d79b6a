//! `TestApp`: a running appliance on a free loopback port with a fresh database, and a
//! small JSON client for it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use actix_web::web;
use chrono::Utc;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use gatehouse::app::state::AppState;
use gatehouse::clock::Clock;
use gatehouse::config::Config;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins::{self, AdminInput};
use gatehouse::store::{DbConnection, PooledDb};
use serde_json::Value;

pub const POSTGRES_ENV: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// How long a test waits for something that should happen, before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run can test: SQLite always, PostgreSQL when its URL is given.
pub fn backends() -> Vec<Backend> {
    match service_url(
        POSTGRES_ENV,
        "postgres://postgres@127.0.0.1:5432/postgres",
        "PostgreSQL",
    ) {
        Some(_) => vec![Backend::Sqlite, Backend::Postgres],
        None => vec![Backend::Sqlite],
    }
}

/// Whether this run is CI's (`CI=true`, as CI services set it): there every service a
/// test needs must be present, since a skipped test would let CI pass without testing.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A service a test needs is missing (`reason` says which, and how to provide it): the
/// test, or its part that needs it, is skipped with the reason printed; under CI it fails.
pub fn skip_without_service(reason: &str) {
    missing_service(reason, under_ci());
}

pub fn missing_service(reason: &str, under_ci: bool) {
    assert!(
        !under_ci,
        "{reason} (CI=true: CI must run every test, so a missing service fails it)"
    );
    eprintln!("skipping {reason}");
}

/// The URL of a service from its environment variable `var` (e.g. `example`), or None
/// when it is unset: then what needs it is skipped, or fails under CI.
pub fn service_url(var: &str, example: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            skip_without_service(&format!("{what}: set {var}={example} to run it"));
            None
        }
    }
}

/// Waits until `done` holds, looking every 20 ms; fails naming `what` after WAIT.
pub fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_within(what, WAIT, done);
}

/// Waits until `done` holds, looking every 20 ms; fails naming `what` after `within`.
pub fn wait_until_within(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `host` (an address or a name) is this machine: 127.0.0.0/8, ::1 or
/// `localhost`. Tests may make the appliance contact nothing else.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host of a service URL (`scheme://user:password@host:port/path?query`); empty for
/// one without (SQLite's file URLs, PostgreSQL over its local socket).
fn url_host(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// Fails unless the service at `url` is on this machine (or reached without a host).
fn assert_loopback_url(what: &str, url: &str) {
    let host = url_host(url);
    assert!(
        host.is_empty() || is_loopback_host(host),
        "{what} is at {host}: tests may make the appliance contact only 127.0.0.0/8 and ::1"
    );
}

/// A throwaway PostgreSQL database, dropped with the test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = DbConnection::establish(&self.admin_url) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A new, empty PostgreSQL database on the server of GATEHOUSE_TEST_POSTGRES_URL: its URL,
/// and the guard that drops it.
pub fn fresh_postgres() -> (String, PgDatabase) {
    let admin_url = std::env::var(POSTGRES_ENV).unwrap();
    assert_loopback_url(POSTGRES_ENV, &admin_url);
    let name = format!(
        "gatehouse_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = DbConnection::establish(&admin_url).expect("connect to PostgreSQL");
    // One statement per call: PostgreSQL runs a multi-statement string as one transaction,
    // and DROP/CREATE DATABASE refuse to run inside one.
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    conn.batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    (format!("{base}/{name}"), PgDatabase { admin_url, name })
}

pub struct Response {
    pub status: u16,
    pub body: Value,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub mqtt_broker: Option<SocketAddr>,
    /// The embedded broker's TLS listener, when the config asks for one.
    pub mqtt_broker_tls: Option<SocketAddr>,
    pub state: web::Data<AppState>,
    _dir: tempfile::TempDir,
    /// A token of the admin `root` (role admin).
    pub token: String,
    handle: actix_web::dev::ServerHandle,
    runtime: Option<tokio::runtime::Runtime>,
    agent: ureq::Agent,
    /// Over HTTPS, the client side: the test CA trusted, on the ring provider.
    tls: Option<ureq::tls::TlsConfig>,
    /// Whether the appliance polls its Modbus readers (then, when the test is over, every
    /// reader host it was ever given must have been loopback).
    polls_modbus: bool,
    /// The clock the appliance runs on, for a restart.
    clock: Clock,
    _pg: Option<PgDatabase>,
}

/// HTTPS for a TestApp: the listener's certificate and key (`[http] tls_cert`,
/// `tls_key`), and the CA that signed the certificate, for the test's clients to trust.
pub struct Https<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub ca: &'a Path,
}

impl TestApp {
    pub fn new(backend: Backend) -> TestApp {
        TestApp::with_mqtt(backend, None)
    }

    /// A TestApp whose readers talk MQTT as configured (TestApp::new has MQTT off).
    pub fn with_mqtt(backend: Backend, mqtt: Option<gatehouse::config::MqttConfig>) -> TestApp {
        TestApp::start(backend, mqtt, None, Clock::System, true, &[])
    }

    /// As `with_mqtt`, on `clock` (a `Clock::Shifted` lets a test move time forward).
    pub fn with_mqtt_on(
        backend: Backend,
        mqtt: Option<gatehouse::config::MqttConfig>,
        clock: Clock,
    ) -> TestApp {
        TestApp::start(backend, mqtt, None, clock, true, &[])
    }

    /// A TestApp that believes X-Forwarded-For from these peers (`[http] trusted_proxies`).
    pub fn with_trusted_proxies(backend: Backend, proxies: &[&str]) -> TestApp {
        TestApp::start(backend, None, None, Clock::System, true, proxies)
    }

    /// A TestApp whose console and API listen for HTTPS only; `url`, `get` and the other
    /// requests go over HTTPS, trusting `https.ca`.
    pub fn with_https(backend: Backend, https: &Https) -> TestApp {
        TestApp::start(backend, None, Some(https), Clock::System, true, &[])
    }

    /// A TestApp that polls no Modbus reader (`[modbus] enabled = false`): for a test that
    /// stores a reader host outside loopback, which a polling appliance would contact.
    pub fn without_modbus_polling(backend: Backend) -> TestApp {
        TestApp::start(backend, None, None, Clock::System, false, &[])
    }

    fn start(
        backend: Backend,
        mqtt: Option<gatehouse::config::MqttConfig>,
        https: Option<&Https>,
        clock: Clock,
        polls_modbus: bool,
        trusted_proxies: &[&str],
    ) -> TestApp {
        // GATEHOUSE_LOG=debug shows the appliance's log lines beside a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("g.db").display()),
                None,
            ),
            Backend::Postgres => {
                let (url, db) = fresh_postgres();
                (url, Some(db))
            }
        };
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            database: gatehouse::config::DatabaseConfig {
                url: database_url,
                pool_size: 4,
            },
            http: gatehouse::config::HttpConfig {
                listen: "127.0.0.1:0".to_owned(),
                tls_cert: https.map(|h| h.cert.to_path_buf()).unwrap_or_default(),
                tls_key: https.map(|h| h.key.to_path_buf()).unwrap_or_default(),
                trusted_proxies: trusted_proxies.iter().map(|p| (*p).to_owned()).collect(),
                ..Default::default()
            },
            mqtt: mqtt.unwrap_or(gatehouse::config::MqttConfig {
                broker: gatehouse::config::BrokerChoice::Off,
                ..Default::default()
            }),
            // Polled briskly and given up on quickly, so that tests of Modbus faults
            // and recoveries take well under a second each.
            modbus: gatehouse::config::ModbusConfig {
                enabled: polls_modbus,
                poll_interval_ms: 20,
                timeout_ms: 200,
                backoff_max_ms: 500,
            },
            readers: Default::default(),
            events: Default::default(),
            jobs: Default::default(),
            entitlement_review: Default::default(),
            risk: Default::default(),
        };
        // Nothing a test starts may reach past this machine (`assert_readers_on_loopback`
        // checks the reader hosts when the test is over).
        assert_loopback_url("the database", &config.database.url);
        if config.mqtt.broker == gatehouse::config::BrokerChoice::External {
            assert_loopback_url("the MQTT broker", &config.mqtt.url);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime
            .block_on(gatehouse::app::serve::start(config, clock))
            .expect("appliance starts");
        let handle = running.server.handle();
        runtime.spawn(running.server);
        let tls = https.map(|h| {
            let pem = std::fs::read(h.ca).unwrap();
            let ca = ureq::tls::Certificate::from_pem(&pem).unwrap();
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build()
        });
        let agent = agent_config(tls.as_ref()).build().new_agent();
        let mut app = TestApp {
            addr: running.addr,
            mqtt_broker: running.mqtt_broker,
            mqtt_broker_tls: running.mqtt_broker_tls,
            state: running.state,
            _dir: dir,
            token: String::new(),
            handle,
            runtime: Some(runtime),
            agent,
            tls,
            polls_modbus,
            clock,
            _pg: pg,
        };
        app.token = app.token_for("root", "admin");
        app
    }

    /// Stops the appliance (HTTP, readers, event writer) and starts it again on the same
    /// database, data folder and clock, as after a power cut or an upgrade: what it knows
    /// after this it read from the database. Listeners get new ports (`addr`,
    /// `mqtt_broker`).
    pub fn restart(&mut self) {
        let config = self.state.config.clone();
        if let Some(runtime) = self.runtime.take() {
            runtime.block_on(self.handle.stop(false));
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime
            .block_on(gatehouse::app::serve::start(config, self.clock))
            .expect("appliance starts again");
        self.handle = running.server.handle();
        runtime.spawn(running.server);
        self.addr = running.addr;
        self.mqtt_broker = running.mqtt_broker;
        self.mqtt_broker_tls = running.mqtt_broker_tls;
        // The old state goes with its event log handle, which ends the old writer.
        self.state = running.state;
        self.runtime = Some(runtime);
    }

    /// The appliance's data folder (`data_dir`: its key, the SQLite file).
    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn db(&self) -> PooledDb {
        self.state.db.get().unwrap()
    }

    /// Creates an admin user with this role and returns a fresh API token of theirs.
    pub fn token_for(&self, username: &str, role: &str) -> String {
        let mut conn = self.db();
        let ctx = ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("test-setup"),
            now: Utc::now(),
        };
        admins::create_admin(
            &mut conn,
            &AdminInput {
                username: username.to_owned(),
                password: "a long enough password".to_owned(),
                role: role.to_owned(),
            },
            &ctx,
        )
        .unwrap();
        admins::issue_token(
            &mut conn,
            username,
            "tests",
            admins::TokenScope::Full,
            None,
            &ctx,
        )
        .unwrap()
        .token
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// A client config for this appliance, to build agents of other shapes from: statuses
    /// are answers, not errors, and over HTTPS the test CA is trusted.
    pub fn agent_config(&self) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
        agent_config(self.tls.as_ref())
    }

    fn finish(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Response {
        let mut response = result.expect("HTTP request");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Response { status, body }
    }

    pub fn get_as(&self, token: Option<&str>, path: &str) -> Response {
        let mut req = self.agent.get(&self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        Self::finish(req.call())
    }

    pub fn get(&self, path: &str) -> Response {
        self.get_as(Some(&self.token), path)
    }

    pub fn send_as(&self, token: Option<&str>, method: &str, path: &str, body: &Value) -> Response {
        let url = self.url(path);
        let text = body.to_string();
        let auth = token.map(|t| format!("Bearer {t}"));
        macro_rules! with_auth {
            ($req:expr) => {{
                let mut req = $req.header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req
            }};
        }
        let result = match method {
            "POST" => with_auth!(self.agent.post(&url)).send(text.as_bytes()),
            "PUT" => with_auth!(self.agent.put(&url)).send(text.as_bytes()),
            "DELETE" => with_auth!(self.agent.delete(&url)).call(),
            other => panic!("unsupported method {other}"),
        };
        Self::finish(result)
    }

    pub fn post(&self, path: &str, body: Value) -> Response {
        self.send_as(Some(&self.token), "POST", path, &body)
    }

    pub fn put(&self, path: &str, body: Value) -> Response {
        self.send_as(Some(&self.token), "PUT", path, &body)
    }

    pub fn delete(&self, path: &str) -> Response {
        self.send_as(Some(&self.token), "DELETE", path, &Value::Null)
    }

    /// A registered reader's secret, as the appliance holds it.
    pub fn reader_secret(&self, reader_id: &str) -> String {
        self.state
            .live
            .readers()
            .get(reader_id)
            .unwrap()
            .secret
            .clone()
    }

    /// The newest recorded events of one kind (all kinds with None), newest first.
    pub fn events(&self, kind: Option<&str>) -> Vec<gatehouse::store::event_log::Recorded> {
        let filter = gatehouse::store::event_log::EventFilter {
            kind: kind.map(str::to_owned),
            ..Default::default()
        };
        gatehouse::store::event_log::recent(&mut self.db(), &filter, 1000).unwrap()
    }

    /// Makes a reader a legacy one (bare v1 events) that must sign its events with the v1
    /// mac (through the API).
    pub fn require_signed_events(&self, reader_id: &str, door_id: i64) {
        let found = self.get(&format!("/api/v1/readers?q={reader_id}")).body;
        let id = found["items"][0]["id"].as_i64().unwrap();
        let r = self.put(
            &format!("/api/v1/readers/{id}"),
            serde_json::json!({"reader_id": reader_id, "door_id": door_id, "legacy": true, "require_signed_events": true}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Runs `gatehouse simulate` with `args` against this appliance's database (and the
    /// environment `env`), as an installer would.
    pub fn simulate(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut with_simulate = vec!["simulate"];
        with_simulate.extend_from_slice(args);
        self.command(&with_simulate, env)
    }

    /// Runs `gatehouse ARGS` on this appliance's database and data folder, as an installer
    /// on the appliance would.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env("GATEHOUSE_DATABASE_URL", self.state.config.database_url())
            // The same data folder, so that it reads the same appliance key.
            .env("GATEHOUSE_DATA_DIR", &self.state.config.data_dir)
            .env("GATEHOUSE_LOG", "off")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Every Modbus reader host this appliance was ever given that is not loopback: in
    /// the readers now registered, and in every audited reader before and after (a reader
    /// given an address and moved or removed again was polled there meanwhile).
    pub fn reader_hosts_outside_loopback(&self) -> Vec<String> {
        use gatehouse::store::schema::{audit_log, readers};
        fn hosts_in(value: &Value, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v) {
                            ("modbus_host", Value::String(host)) => found.push(host.clone()),
                            _ => hosts_in(v, found),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| hosts_in(v, found)),
                _ => {}
            }
        }
        let mut conn = self.db();
        let mut hosts: Vec<String> = readers::table
            .select(readers::modbus_host)
            .load::<Option<String>>(&mut conn)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        let audited: Vec<(Option<String>, Option<String>)> = audit_log::table
            .select((audit_log::before_json, audit_log::after_json))
            .load(&mut conn)
            .unwrap();
        for json in audited.into_iter().flat_map(|(b, a)| [b, a]).flatten() {
            hosts_in(&serde_json::from_str(&json).unwrap(), &mut hosts);
        }
        hosts.retain(|h| !is_loopback_host(h));
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// Fails if this appliance was ever given a Modbus reader outside loopback. Every
    /// TestApp that polls Modbus readers checks it when the test is over.
    pub fn assert_readers_on_loopback(&self) {
        let outside = self.reader_hosts_outside_loopback();
        assert!(
            outside.is_empty(),
            "the test appliance was given Modbus reader hosts outside loopback, which it polls: {outside:?}; tests may make it contact only 127.0.0.0/8 and ::1"
        );
    }

    /// Creates an entity through the API, asserting 201, and returns its id.
    pub fn create(&self, collection: &str, body: Value) -> i64 {
        let r = self.post(&format!("/api/v1/{collection}"), body);
        assert_eq!(r.status, 201, "create {collection}: {}", r.body);
        r.body["id"].as_i64().unwrap()
    }
}

fn agent_config(
    tls: Option<&ureq::tls::TlsConfig>,
) -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    let config = ureq::Agent::config_builder().http_status_as_error(false);
    match tls {
        Some(tls) => config.tls_config(tls.clone()),
        None => config,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.polls_modbus && !std::thread::panicking() {
            self.assert_readers_on_loopback();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.block_on(self.handle.stop(false));
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// A small site built through the API: HQ (Europe/Berlin) › Building › Server Room, two
/// doors, a business-hours schedule, a level and one entitled person with a card.
pub struct Fixture {
    pub site: i64,
    pub building: i64,
    pub server_room: i64,
    pub main_door: i64,
    pub server_door: i64,
    pub business_hours: i64,
    pub staff_level: i64,
    pub person: i64,
    pub card: &'static str,
}

pub fn build_site(app: &TestApp) -> Fixture {
    let site = app.create(
        "sites",
        serde_json::json!({"name": "HQ", "timezone": "Europe/Berlin"}),
    );
    let building = app.create(
        "zones",
        serde_json::json!({"site_id": site, "name": "Building"}),
    );
    let server_room = app.create(
        "zones",
        serde_json::json!({"site_id": site, "name": "Server Room", "parent_id": building}),
    );
    let main_door = app.create(
        "doors",
        serde_json::json!({"zone_id": building, "name": "Main Entrance"}),
    );
    let server_door = app.create("doors", serde_json::json!({"zone_id": server_room, "name": "Server Room Door", "sensitivity": "critical"}));
    app.create(
        "readers",
        serde_json::json!({"reader_id": "main-in", "door_id": main_door}),
    );
    let business_hours = app.create(
        "schedules",
        serde_json::json!({"name": "Business hours", "windows": [{"cron": "0 7 * * Mon-Fri", "duration_min": 660}]}),
    );
    app.create(
        "holidays",
        serde_json::json!({"site_id": site, "name": "Christmas Day", "date": "2026-12-25"}),
    );
    let staff_level = app.create(
        "access-levels",
        serde_json::json!({"name": "Staff", "items": [{"door_id": main_door, "schedule_id": business_hours}]}),
    );
    let person = app.create("people", serde_json::json!({"employee_id": "E1", "name": "Ada Lovelace", "department": "Engineering"}));
    app.create(
        "credentials",
        serde_json::json!({"person_id": person, "card_uid": "04a1b2c3"}),
    );
    app.create(
        "entitlements",
        serde_json::json!({"person_id": person, "level_id": staff_level, "justification": "staff"}),
    );
    Fixture {
        site,
        building,
        server_room,
        main_door,
        server_door,
        business_hours,
        staff_level,
        person,
        card: "04A1B2C3",
    }
}

/// Checks a `simulate` run that should have gone to plan: it succeeded, every one of
/// `swipes` was answered as planned, and it reported latency. Returns its report.
pub fn assert_simulated(out: &std::process::Output, swipes: usize) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("answered   {swipes}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("unanswered 0"), "{stdout}");
    assert!(stdout.contains("not as planned 0"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");
    stdout
}

/// Asserts that a PIN typed at a reader is on none of `rows`: no `pin` field in the
/// stored command or detail, and the digits as no stored value. Checked field by field,
/// not on the whole row's text, because four digits turn up by chance inside timestamps
/// and decision ids.
pub fn assert_pin_on_no_record(rows: &[gatehouse::store::event_log::Recorded], pin: &str) {
    fn holds_pin(value: &Value, pin: &str) -> bool {
        match value {
            Value::String(s) => s == pin,
            Value::Array(items) => items.iter().any(|v| holds_pin(v, pin)),
            Value::Object(map) => map.iter().any(|(key, v)| key == "pin" || holds_pin(v, pin)),
            _ => false,
        }
    }
    for row in rows {
        assert_ne!(row.event.presented.as_deref(), Some(pin), "{row:?}");
        for text in [Some(&row.event.detail), row.event.command.as_ref()]
            .into_iter()
            .flatten()
        {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(
                !holds_pin(&value, pin),
                "the PIN typed is on a record: {row:?}"
            );
        }
    }
}
