//! `TestApp`: a running appliance on a free loopback port with a fresh database, and a
//! small JSON client for it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use actix_web::web;
use chrono::Utc;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use gatehouse::admins::{self, AdminInput};
use gatehouse::clock::Clock;
use gatehouse::config::Config;
use gatehouse::entities::ChangeContext;
use gatehouse::store::{DbConnection, PooledDb};
use gatehouse::web::AppState;
use serde_json::Value;

pub const POSTGRES_ENV: &str = "GATEHOUSE_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run can test: SQLite always, PostgreSQL when its URL is given.
pub fn backends() -> Vec<Backend> {
    if std::env::var(POSTGRES_ENV).is_ok() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!(
            "skipping PostgreSQL: set {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/postgres to run it"
        );
        vec![Backend::Sqlite]
    }
}

/// A throwaway PostgreSQL database, dropped with the test.
struct PgDatabase {
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

fn fresh_postgres() -> (String, PgDatabase) {
    let admin_url = std::env::var(POSTGRES_ENV).unwrap();
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
        TestApp::start(backend, mqtt, None, Clock::System)
    }

    /// As `with_mqtt`, on `clock` (a `Clock::Shifted` lets a test move time forward).
    pub fn with_mqtt_on(
        backend: Backend,
        mqtt: Option<gatehouse::config::MqttConfig>,
        clock: Clock,
    ) -> TestApp {
        TestApp::start(backend, mqtt, None, clock)
    }

    /// A TestApp whose console and API listen for HTTPS only; `url`, `get` and the other
    /// requests go over HTTPS, trusting `https.ca`.
    pub fn with_https(backend: Backend, https: &Https) -> TestApp {
        TestApp::start(backend, None, Some(https), Clock::System)
    }

    fn start(
        backend: Backend,
        mqtt: Option<gatehouse::config::MqttConfig>,
        https: Option<&Https>,
        clock: Clock,
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
                ..Default::default()
            },
            mqtt: mqtt.unwrap_or(gatehouse::config::MqttConfig {
                broker: gatehouse::config::BrokerChoice::Off,
                ..Default::default()
            }),
            // Polled briskly and given up on quickly, so that tests of Modbus faults
            // and recoveries take well under a second each.
            modbus: gatehouse::config::ModbusConfig {
                enabled: true,
                poll_interval_ms: 20,
                timeout_ms: 200,
                backoff_max_ms: 500,
            },
            events: Default::default(),
            readers: Default::default(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime
            .block_on(gatehouse::serve::start(config, clock))
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
            _pg: pg,
        };
        app.token = app.token_for("root", "admin");
        app
    }

    pub fn db(&self) -> PooledDb {
        self.state.db.get().unwrap()
    }

    /// Creates an admin user with this role and returns a fresh API token of theirs.
    pub fn token_for(&self, username: &str, role: &str) -> String {
        let mut conn = self.db();
        let ctx = ChangeContext {
            actor: "test-setup",
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
        admins::issue_token(&mut conn, username, "tests", None, &ctx)
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
    pub fn events(&self, kind: Option<&str>) -> Vec<gatehouse::store::rows::EventRow> {
        let filter = gatehouse::event_log::EventFilter {
            kind: kind.map(str::to_owned),
            ..Default::default()
        };
        gatehouse::event_log::recent(&mut self.db(), &filter, 1000).unwrap()
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
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("simulate")
            .args(args)
            .env("GATEHOUSE_DATABASE_URL", self.state.config.database_url())
            .env("GATEHOUSE_LOG", "off")
            .envs(env.iter().copied())
            .output()
            .unwrap()
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
pub fn assert_pin_on_no_record(rows: &[gatehouse::store::rows::EventRow], pin: &str) {
    fn holds_pin(value: &Value, pin: &str) -> bool {
        match value {
            Value::String(s) => s == pin,
            Value::Array(items) => items.iter().any(|v| holds_pin(v, pin)),
            Value::Object(map) => map.iter().any(|(key, v)| key == "pin" || holds_pin(v, pin)),
            _ => false,
        }
    }
    for row in rows {
        assert_ne!(row.presented.as_deref(), Some(pin), "{row:?}");
        for text in [Some(&row.detail), row.command.as_ref()]
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
