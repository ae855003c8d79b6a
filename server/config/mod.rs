//! The appliance's settings: a typed TOML file with GATEHOUSE_* environment overrides,
//! validated once at start and then carried in the application state.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the installer's config file lives when no --config or GATEHOUSE_CONFIG names one.
pub const SYSTEM_CONFIG: &str = "/etc/gatehouse/gatehouse.toml";
/// Environment variables with this prefix override settings: GATEHOUSE_HTTP_LISTEN sets
/// `[http] listen`, GATEHOUSE_DATA_DIR sets `data_dir`.
pub const ENV_PREFIX: &str = "GATEHOUSE_";
/// GATEHOUSE_* variables that are not settings.
const ENV_NOT_SETTINGS: &[&str] = &["GATEHOUSE_CONFIG", "GATEHOUSE_LOG"];
const ENV_NOT_SETTINGS_PREFIX: &str = "GATEHOUSE_TEST_";

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder for the SQLite database and other state; created at start if missing.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub mqtt: MqttConfig,
    pub modbus: ModbusConfig,
    pub readers: ReadersConfig,
    pub events: EventsConfig,
    pub jobs: JobsConfig,
    pub entitlement_review: EntitlementReviewConfig,
    pub risk: RiskConfig,
}

/// The risk engine (`server/risk/`, docs/risk.md): anomaly scores of every swipe.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Whether swipes are scored at all (baselines trained, scores stored).
    pub enabled: bool,
    /// How many days of history the baselines are trained on; never more than
    /// `events.retention_days` keeps.
    pub training_days: u32,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            enabled: true,
            training_days: 90,
        }
    }
}

impl Config {
    /// The stretch of history the risk baselines are trained on: `risk.training_days`, cut
    /// to `events.retention_days` when that keeps less.
    pub fn risk_training_window(&self) -> chrono::TimeDelta {
        let days = match self.events.retention_days {
            0 => self.risk.training_days,
            kept => self.risk.training_days.min(kept),
        };
        chrono::TimeDelta::days(i64::from(days))
    }
}

/// The readers: where they may be, and what the appliance does about their traffic beyond
/// deciding it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReadersConfig {
    /// Where readers may be: a reader's host (a Modbus reader's `modbus_host`) must be, or
    /// resolve to, an address in one of these CIDR ranges (`10.0.0.0/8`, `fe80::/10`, or one
    /// address); a list in the file, or comma-separated in GATEHOUSE_READERS_ALLOWED_NETWORKS.
    #[serde(deserialize_with = "list_or_commas")]
    pub allowed_networks: Vec<String>,
    /// Wrong PINs in a row after which a card is blocked (and an alarm raised).
    pub pin_attempts: u32,
    /// How long a card stays blocked after its last allowed wrong PIN, in minutes.
    pub pin_lockout_minutes: u32,
}

impl Default for ReadersConfig {
    /// Readers on loopback and the private ranges: I/O modules sit on the building's own
    /// network, and `gatehouse simulate` serves stand-in devices on loopback; a public
    /// address is never a door's I/O module, and reaching one would let an operator use the
    /// appliance to probe the internet.
    fn default() -> Self {
        ReadersConfig {
            allowed_networks: gatehouse_drivers::networks::Networks::private()
                .0
                .iter()
                .map(ToString::to_string)
                .collect(),
            pin_attempts: 5,
            pin_lockout_minutes: 15,
        }
    }
}

impl ReadersConfig {
    /// The PIN lockout these settings ask for.
    pub fn pin_lockout(&self) -> crate::readers::pin_lockout::LockoutPolicy {
        crate::readers::pin_lockout::LockoutPolicy {
            attempts: self.pin_attempts,
            block_for: chrono::TimeDelta::minutes(i64::from(self.pin_lockout_minutes)),
        }
    }

    /// The ranges, parsed (validated at load, so an error here names the bad one).
    pub fn networks(&self) -> Result<gatehouse_drivers::networks::Networks, ConfigError> {
        let mut ranges = Vec::new();
        for text in &self.allowed_networks {
            ranges.push(text.parse().map_err(|message| ConfigError::Invalid {
                key: "readers.allowed_networks",
                message,
            })?);
        }
        if ranges.is_empty() {
            return Err(ConfigError::Invalid {
                key: "readers.allowed_networks",
                message: "must name at least one range (no reader host could be reached)"
                    .to_owned(),
            });
        }
        Ok(gatehouse_drivers::networks::Networks(ranges))
    }
}

/// A list of strings, or one string of comma-separated items (as an environment variable).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrText::deserialize(d)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModbusConfig {
    /// Poll the registered Modbus readers at all.
    pub enabled: bool,
    /// Time between two polls of one device, in milliseconds.
    pub poll_interval_ms: u64,
    /// How long one request may take before the device counts as offline.
    pub timeout_ms: u64,
    /// The longest wait between reconnection attempts to a device that is down.
    pub backoff_max_ms: u64,
}

impl Default for ModbusConfig {
    fn default() -> Self {
        ModbusConfig {
            enabled: true,
            poll_interval_ms: 50,
            timeout_ms: 250,
            backoff_max_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events older than this many days are deleted (daily); 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention_days: 365,
        }
    }
}

/// What the entitlement review (`risk::entitlements`, `gatehouse risk entitlements`) calls
/// unused, rare and toxic (docs/risk.md, "Entitlement findings").
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EntitlementReviewConfig {
    /// An entitlement (or card) with no use in this many days is unused (dormant); one
    /// granted more recently is not judged yet.
    pub unused_days: u32,
    /// An entitlement held by fewer than this percentage of the person's peers (same
    /// department and title) is a peer outlier.
    pub peer_share_percent: u32,
    /// Peer groups smaller than this (not counting the person) are not compared.
    pub min_peers: u32,
    /// Doors no one person should be able to open together (`[[entitlement_review.toxic]]`
    /// with a `name` and two or more door `doors` by name).
    pub toxic: Vec<ToxicCombination>,
}

impl Default for EntitlementReviewConfig {
    fn default() -> Self {
        EntitlementReviewConfig {
            unused_days: 90,
            peer_share_percent: 30,
            min_peers: 3,
            toxic: Vec::new(),
        }
    }
}

/// Doors that together make a toxic combination (the loading dock and the cash office).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToxicCombination {
    pub name: String,
    /// Door names, as in the site file.
    pub doors: Vec<String>,
}

impl EntitlementReviewConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid { key, message };
        if !(1..=3650).contains(&self.unused_days) {
            return Err(invalid(
                "entitlement_review.unused_days",
                format!("{} is outside 1..=3650 days", self.unused_days),
            ));
        }
        if !(1..=100).contains(&self.peer_share_percent) {
            return Err(invalid(
                "entitlement_review.peer_share_percent",
                format!("{} is outside 1..=100 percent", self.peer_share_percent),
            ));
        }
        if !(1..=1000).contains(&self.min_peers) {
            return Err(invalid(
                "entitlement_review.min_peers",
                format!("{} is outside 1..=1000 people", self.min_peers),
            ));
        }
        for (i, combination) in self.toxic.iter().enumerate() {
            if combination.name.trim().is_empty() {
                return Err(invalid(
                    "entitlement_review.toxic",
                    format!("combination {} has no name", i + 1),
                ));
            }
            let mut doors: Vec<&str> = combination.doors.iter().map(|d| d.trim()).collect();
            doors.sort_unstable();
            doors.dedup();
            if doors.len() < 2 || doors.iter().any(|d| d.is_empty()) {
                return Err(invalid(
                    "entitlement_review.toxic",
                    format!(
                        "'{}' must name two or more different doors",
                        combination.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// When the periodic jobs that an installer may want at another time run (`server/app/jobs.rs`).
/// Following the database and logging the audit head run every second and are not set here:
/// slower, they would let CLI changes and revocations wait.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// The timezone the schedules below are read in (an IANA name).
    pub timezone: String,
    /// When old events are deleted (`events.retention_days`): a cron expression.
    pub event_retention: String,
    /// When the live policy is rebuilt without a change, so that the precomputed schedule
    /// windows keep reaching days ahead of the clock: a cron expression.
    pub policy_rebuild: String,
    /// When the risk baselines are retrained from history (`risk.training_days`): a cron
    /// expression.
    pub risk_retrain: String,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            timezone: "UTC".to_owned(),
            event_retention: "30 3 * * *".to_owned(),
            policy_rebuild: "0 * * * *".to_owned(),
            risk_retrain: "15 2 * * *".to_owned(),
        }
    }
}

impl JobsConfig {
    /// The timezone the schedules are read in.
    pub fn tz(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone.parse().map_err(|_| ConfigError::Invalid {
            key: "jobs.timezone",
            message: format!(
                "'{}' is not an IANA timezone name such as UTC or Europe/Berlin",
                self.timezone
            ),
        })
    }

    /// Checks every schedule, naming the key of the first that is not a cron expression.
    fn validate(&self) -> Result<(), ConfigError> {
        self.tz()?;
        for (key, expression) in [
            ("jobs.event_retention", &self.event_retention),
            ("jobs.policy_rebuild", &self.policy_rebuild),
            ("jobs.risk_retrain", &self.risk_retrain),
        ] {
            crate::policy::schedule::parse_cron(expression).map_err(|reason| {
                ConfigError::Invalid {
                    key,
                    message: format!(
                        "'{expression}' is not a cron expression: {reason}. Expected 'minute \
                         hour day-of-month month day-of-week', for example '30 3 * * *'"
                    ),
                }
            })?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address the admin console and API listen on.
    pub listen: String,
    /// A console session ends after this many minutes without a request.
    pub session_idle_minutes: u32,
    /// A console session ends this many hours after sign-in, however busy.
    pub session_max_hours: u32,
    /// PEM certificate chain for HTTPS (the server's certificate first). With `tls_key`
    /// the listener speaks only HTTPS; with neither, plain HTTP.
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`.
    pub tls_key: PathBuf,
    /// Reverse proxies (addresses or networks, `10.0.0.5`, `10.0.0.0/24`) whose
    /// X-Forwarded-For names the client; from any other peer the header is ignored. A list,
    /// or one comma-separated string (as GATEHOUSE_HTTP_TRUSTED_PROXIES gives it).
    #[serde(deserialize_with = "list_or_commas")]
    pub trusted_proxies: Vec<String>,
}

impl HttpConfig {
    /// `trusted_proxies`, read and checked.
    pub fn proxies(&self) -> Result<crate::web::client_addr::TrustedProxies, ConfigError> {
        crate::web::client_addr::TrustedProxies::parse(&self.trusted_proxies).map_err(|message| {
            ConfigError::Invalid {
                key: "http.trusted_proxies",
                message,
            }
        })
    }

    /// True when the listener speaks HTTPS (only meaningful once validated: both files
    /// or neither).
    pub fn https(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }

    /// The HTTPS certificate and key, read and checked (they must belong together);
    /// `None` for plain HTTP.
    pub fn server_tls(&self) -> Result<Option<gatehouse_drivers::broker::ServerTls>, ConfigError> {
        match (
            self.tls_cert.as_os_str().is_empty(),
            self.tls_key.as_os_str().is_empty(),
        ) {
            (true, true) => Ok(None),
            // One without the other is a half-finished setup: refuse it rather than serve
            // plain HTTP to someone who meant HTTPS.
            (false, true) => Err(ConfigError::Invalid {
                key: "http.tls_key",
                message: format!(
                    "is empty, but http.tls_cert is set ({}): HTTPS needs the certificate \
                     and its private key; set both, or neither for plain HTTP",
                    self.tls_cert.display()
                ),
            }),
            (true, false) => Err(ConfigError::Invalid {
                key: "http.tls_cert",
                message: format!(
                    "is empty, but http.tls_key is set ({}): HTTPS needs the certificate \
                     and its private key; set both, or neither for plain HTTP",
                    self.tls_key.display()
                ),
            }),
            (false, false) => load_server_tls(
                ("http.tls_cert", &self.tls_cert),
                ("http.tls_key", &self.tls_key),
            )
            .map(Some),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// sqlite://PATH or postgres://USER@HOST/DB. Empty means `{data_dir}/gatehouse.db`.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: u32,
}

/// Which MQTT broker readers talk to.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BrokerChoice {
    /// The appliance runs its own broker on `listen`.
    Embedded,
    /// The appliance connects to the broker at `url` (Mosquitto, EMQX, …).
    External,
    /// No MQTT readers.
    Off,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub broker: BrokerChoice,
    /// Where the embedded broker listens for plain MQTT; empty: readers must use TLS.
    pub listen: String,
    /// Where the embedded broker listens for MQTT over TLS; empty: no TLS listener.
    pub tls_listen: String,
    /// PEM certificate chain of the TLS listener (the server's certificate first).
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`.
    pub tls_key: PathBuf,
    /// The external broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].
    pub url: String,
    /// PEM CA certificates to trust for an mqtts:// broker; empty: the system's.
    pub tls_ca: PathBuf,
    /// Credentials at the external broker (the embedded one needs none).
    pub username: String,
    pub password: String,
    /// Topic root of docs/protocol.md.
    pub topic_root: String,
    /// The appliance's client id; keep it stable so the broker keeps its session.
    pub client_id: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: BrokerChoice::Embedded,
            listen: "0.0.0.0:1883".to_owned(),
            tls_listen: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            url: String::new(),
            tls_ca: PathBuf::new(),
            username: String::new(),
            password: String::new(),
            topic_root: "gatehouse/v1".to_owned(),
            client_id: "gatehouse-appliance".to_owned(),
        }
    }
}

impl MqttConfig {
    /// Host and port of `url` (mqtt://HOST[:PORT], port 1883 by default, or
    /// mqtts://HOST[:PORT], port 8883 by default).
    pub fn external_address(&self) -> Result<(String, u16), String> {
        let (rest, default_port) = if let Some(rest) = self
            .url
            .strip_prefix("mqtt://")
            .or_else(|| self.url.strip_prefix("tcp://"))
        {
            (rest, 1883)
        } else if let Some(rest) = self
            .url
            .strip_prefix("mqtts://")
            .or_else(|| self.url.strip_prefix("ssl://"))
        {
            (rest, 8883)
        } else {
            return Err(format!(
                "'{}' is not an mqtt://HOST[:PORT] or mqtts://HOST[:PORT] URL",
                self.url
            ));
        };
        let rest = rest.trim_end_matches('/');
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => port
                .parse::<u16>()
                .map(|p| (host.to_owned(), p))
                .map_err(|_| format!("'{port}' in '{}' is not a port", self.url)),
            _ if !rest.is_empty() => Ok((rest.to_owned(), default_port)),
            _ => Err(format!("'{}' names no host", self.url)),
        }
    }

    /// True when `url` asks for MQTT over TLS (mqtts://).
    pub fn external_tls(&self) -> bool {
        self.url.starts_with("mqtts://") || self.url.starts_with("ssl://")
    }

    /// The plain listener of the embedded broker, if any (`listen` not empty).
    pub fn plain_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        parse_listen("mqtt.listen", &self.listen, "0.0.0.0:1883")
    }

    /// The TLS listener of the embedded broker, if any (`tls_listen` not empty).
    pub fn tls_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        parse_listen("mqtt.tls_listen", &self.tls_listen, "0.0.0.0:8883")
    }

    /// The embedded broker's listeners in words, for `check-config`: "plain MQTT on
    /// 0.0.0.0:1883, MQTT over TLS on 0.0.0.0:8883 (certificate /etc/…)".
    pub fn listeners_summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.listen.is_empty() {
            parts.push(format!("plain MQTT on {}", self.listen));
        }
        if !self.tls_listen.is_empty() {
            parts.push(format!(
                "MQTT over TLS on {} (certificate {})",
                self.tls_listen,
                self.tls_cert.display()
            ));
        }
        parts.join(", ")
    }

    /// The embedded broker's TLS certificate and key, read and checked (they must belong
    /// together); `None` without a TLS listener.
    pub fn server_tls(&self) -> Result<Option<gatehouse_drivers::broker::ServerTls>, ConfigError> {
        if self.tls_listen.is_empty() {
            for (key, path) in [
                ("mqtt.tls_cert", &self.tls_cert),
                ("mqtt.tls_key", &self.tls_key),
            ] {
                if !path.as_os_str().is_empty() {
                    // Almost certainly meant to turn TLS on: say so rather than serve plain.
                    return Err(ConfigError::Invalid {
                        key: "mqtt.tls_listen",
                        message: format!(
                            "{key} is set but tls_listen is empty, so nothing would use it; \
                             set tls_listen (for example 0.0.0.0:8883) or remove {key}"
                        ),
                    });
                }
            }
            return Ok(None);
        }
        for (key, path) in [
            ("mqtt.tls_cert", &self.tls_cert),
            ("mqtt.tls_key", &self.tls_key),
        ] {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must name a PEM file: the TLS listener (mqtt.tls_listen) needs a \
                              certificate and its private key"
                        .to_owned(),
                });
            }
        }
        load_server_tls(
            ("mqtt.tls_cert", &self.tls_cert),
            ("mqtt.tls_key", &self.tls_key),
        )
        .map(Some)
    }

    /// The trust for an external mqtts:// broker: `tls_ca`, or the system's CAs; `None`
    /// for plain mqtt://.
    pub fn client_tls(&self) -> Result<Option<gatehouse_drivers::mqtt::ClientTls>, ConfigError> {
        use gatehouse_drivers::mqtt::ClientTls;
        if !self.external_tls() {
            if !self.tls_ca.as_os_str().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "mqtt.tls_ca",
                    message: format!(
                        "is set but url '{}' is plain MQTT; use mqtts://HOST[:PORT] for TLS",
                        self.url
                    ),
                });
            }
            return Ok(None);
        }
        let tls = if self.tls_ca.as_os_str().is_empty() {
            ClientTls::system_roots()
        } else {
            ClientTls::from_ca_file(&self.tls_ca)
        };
        tls.map(Some).map_err(|e| ConfigError::Invalid {
            key: "mqtt.tls_ca",
            message: e.to_string(),
        })
    }
}

/// A TLS listener's certificate chain and key, read and checked by the one loader the
/// broker's TLS listener and the HTTPS listener share; an error names the setting of the
/// file at fault (`cert_setting` or `key_setting`).
fn load_server_tls(
    (cert_setting, cert): (&'static str, &Path),
    (key_setting, key): (&'static str, &Path),
) -> Result<gatehouse_drivers::broker::ServerTls, ConfigError> {
    use gatehouse_drivers::broker::{BrokerError, ServerTls};
    ServerTls::load(cert, key).map_err(|e| match e {
        BrokerError::TlsKey { .. } => ConfigError::Invalid {
            key: key_setting,
            message: e.to_string(),
        },
        _ => ConfigError::Invalid {
            key: cert_setting,
            message: e.to_string(),
        },
    })
}

/// An optional listen address: empty is none.
fn parse_listen(
    key: &'static str,
    value: &str,
    example: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse::<SocketAddr>()
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            key,
            message: format!("'{value}' is not an address like {example} ({e})"),
        })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("gatehouse-data"),
            http: HttpConfig::default(),
            database: DatabaseConfig::default(),
            mqtt: MqttConfig::default(),
            modbus: ModbusConfig::default(),
            readers: ReadersConfig::default(),
            events: EventsConfig::default(),
            jobs: JobsConfig::default(),
            entitlement_review: EntitlementReviewConfig::default(),
            risk: RiskConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".to_owned(),
            session_idle_minutes: 30,
            session_max_hours: 12,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: String::new(),
            pool_size: 8,
        }
    }
}

/// A setting that could not be read or is out of range, with where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Loads the file (if any), applies environment overrides from `env`, validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (source_name, text) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                (path.display().to_string(), text)
            }
            None => ("(built-in defaults)".to_owned(), String::new()),
        };
        // Checked on its own first, so that errors in the file carry their line and column.
        toml::from_str::<Config>(&text).map_err(|e| ConfigError::Parse {
            path: source_name.clone(),
            message: e.to_string(),
        })?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: source_name.clone(),
            message: e.to_string(),
        })?;
        let mut env_vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with(ENV_PREFIX)
                    && !k.starts_with(ENV_NOT_SETTINGS_PREFIX)
                    && !ENV_NOT_SETTINGS.contains(&k.as_str())
            })
            .collect();
        env_vars.sort();
        for (var, raw) in &env_vars {
            apply_env_override(&mut table, var, raw)?;
        }
        let config: Config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
                path: format!("{source_name} with GATEHOUSE_* overrides"),
                message: e.to_string(),
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.http
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| ConfigError::Invalid {
                key: "http.listen",
                message: format!(
                    "'{}' is not an address like 0.0.0.0:8080 ({e})",
                    self.http.listen
                ),
            })?;
        // Read now, like the broker's files: a wrong path or a key that does not match
        // stops the start (and check-config) with the setting's name.
        self.http.server_tls()?;
        self.http.proxies()?;
        if !(1..=24 * 60).contains(&self.http.session_idle_minutes) {
            return Err(ConfigError::Invalid {
                key: "http.session_idle_minutes",
                message: "must be between 1 and 1440 minutes".to_owned(),
            });
        }
        if !(1..=24 * 7).contains(&self.http.session_max_hours) {
            return Err(ConfigError::Invalid {
                key: "http.session_max_hours",
                message: "must be between 1 and 168 hours".to_owned(),
            });
        }
        if self.mqtt.broker == BrokerChoice::Embedded {
            let plain = self.mqtt.plain_listen()?;
            let tls = self.mqtt.tls_listen_addr()?;
            match (plain, tls) {
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        key: "mqtt.listen",
                        message: "the embedded broker needs a listener: set listen (plain \
                                  MQTT), tls_listen (MQTT over TLS) or both"
                            .to_owned(),
                    });
                }
                (Some(plain), Some(tls)) if plain == tls && plain.port() != 0 => {
                    return Err(ConfigError::Invalid {
                        key: "mqtt.tls_listen",
                        message: format!(
                            "'{tls}' is also the plain listener (mqtt.listen); TLS needs a port \
                             of its own, usually 8883"
                        ),
                    });
                }
                _ => {}
            }
            // The files are read now, so that a wrong path or a key that does not match
            // stops the start with the setting's name, not later at every reader.
            self.mqtt.server_tls()?;
        }
        if self.mqtt.broker == BrokerChoice::External {
            self.mqtt
                .external_address()
                .map_err(|message| ConfigError::Invalid {
                    key: "mqtt.url",
                    message,
                })?;
            self.mqtt.client_tls()?;
        }
        let root = &self.mqtt.topic_root;
        if root.is_empty() || root.contains(['+', '#']) || root.starts_with('/') {
            return Err(ConfigError::Invalid {
                key: "mqtt.topic_root",
                message: format!("'{root}' must be a plain topic such as gatehouse/v1 (no + or #)"),
            });
        }
        for (key, value, range) in [
            (
                "modbus.poll_interval_ms",
                self.modbus.poll_interval_ms,
                10..=60_000,
            ),
            ("modbus.timeout_ms", self.modbus.timeout_ms, 10..=60_000),
            (
                "modbus.backoff_max_ms",
                self.modbus.backoff_max_ms,
                100..=3_600_000,
            ),
        ] {
            if !range.contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!(
                        "{value} ms is outside {}..={} ms",
                        range.start(),
                        range.end()
                    ),
                });
            }
        }
        self.readers.networks()?;
        if self.events.retention_days > 36_500 {
            return Err(ConfigError::Invalid {
                key: "events.retention_days",
                message: format!(
                    "{} days is over 100 years; use 0 to keep events forever",
                    self.events.retention_days
                ),
            });
        }
        self.jobs.validate()?;
        self.entitlement_review.validate()?;
        if !(1..=3_650).contains(&self.risk.training_days) {
            return Err(ConfigError::Invalid {
                key: "risk.training_days",
                message: format!(
                    "{} days is outside 1..=3650; the default is 90",
                    self.risk.training_days
                ),
            });
        }
        if !(1..=100).contains(&self.readers.pin_attempts) {
            return Err(ConfigError::Invalid {
                key: "readers.pin_attempts",
                message: format!(
                    "{} is outside 1..=100 wrong PINs in a row",
                    self.readers.pin_attempts
                ),
            });
        }
        if !(1..=7 * 24 * 60).contains(&self.readers.pin_lockout_minutes) {
            return Err(ConfigError::Invalid {
                key: "readers.pin_lockout_minutes",
                message: format!(
                    "{} minutes is outside 1..=10080 (a week)",
                    self.readers.pin_lockout_minutes
                ),
            });
        }
        if !(1..=64).contains(&self.database.pool_size) {
            return Err(ConfigError::Invalid {
                key: "database.pool_size",
                message: format!("{} is outside 1..=64", self.database.pool_size),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid {
                key: "data_dir",
                message: "must name a folder".to_owned(),
            });
        }
        crate::store::Backend::from_url(&self.database_url()).map_err(|e| {
            ConfigError::Invalid {
                key: "database.url",
                message: e.to_string(),
            }
        })?;
        Ok(())
    }

    /// The database URL in force: the configured one, or the SQLite file in data_dir.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("gatehouse.db").display())
        } else {
            self.database.url.clone()
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http
            .listen
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                key: "http.listen",
                message: e.to_string(),
            })
    }
}

/// A URL with its passwords replaced by `***`: fit for a log or a page. Both places a
/// database URL can hold one are covered: the userinfo (`postgres://user:pw@host/db`) and
/// a `password=` parameter (`postgres://host/db?password=pw`, or libpq's `password=pw` form).
pub fn redact_url(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    redact_password_parameters(&url)
}

/// Replaces the value of every `password=` parameter, wherever it stands (after `?`, `&`,
/// a space, or at the start), up to the next `&` or space.
fn redact_password_parameters(text: &str) -> String {
    const NAME: &str = "password=";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.to_ascii_lowercase().find(NAME) {
        let starts_parameter = found == 0
            || matches!(
                rest.as_bytes().get(found - 1),
                Some(b'?' | b'&' | b' ' | b';')
            );
        let value_start = found + NAME.len();
        out.push_str(&rest[..value_start]);
        rest = &rest[value_start..];
        if starts_parameter {
            let value_end = rest.find(['&', ' ', ';']).unwrap_or(rest.len());
            if value_end > 0 {
                out.push_str("***");
            }
            rest = &rest[value_end..];
        }
    }
    out.push_str(rest);
    out
}

impl Config {
    /// Warnings about files holding private keys that group or others may read: the HTTPS
    /// and MQTT TLS keys. `check-config` prints them and `serve` logs them at start.
    pub fn secret_file_warnings(&self) -> Vec<String> {
        [
            ("http.tls_key", &self.http.tls_key),
            ("mqtt.tls_key", &self.mqtt.tls_key),
        ]
        .into_iter()
        .filter(|(_, path)| !path.as_os_str().is_empty())
        .filter_map(|(setting, path)| {
            crate::identity::appliance_key::others_may_access(path).map(|mode| {
                format!(
                    "{setting} {} is readable by other users (mode {mode:o}); it is a \
                         private key: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                )
            })
        })
        .collect()
    }

    /// The settings that matter to an installer, in words, secrets left out: what
    /// `check-config` prints and the console's settings page shows.
    pub fn summary(&self) -> Vec<(&'static str, String)> {
        let mqtt = match self.mqtt.broker {
            BrokerChoice::Embedded => format!("embedded broker: {}", self.mqtt.listeners_summary()),
            BrokerChoice::External => format!("external broker {}", redact_url(&self.mqtt.url)),
            BrokerChoice::Off => "off".to_owned(),
        };
        vec![
            ("data_dir", self.data_dir.display().to_string()),
            (
                "http.listen",
                if self.http.https() {
                    format!(
                        "{}, HTTPS only (certificate {})",
                        self.http.listen,
                        self.http.tls_cert.display()
                    )
                } else {
                    format!("{}, plain HTTP", self.http.listen)
                },
            ),
            (
                "sessions",
                format!(
                    "end after {} minutes idle, {} hours at most",
                    self.http.session_idle_minutes, self.http.session_max_hours
                ),
            ),
            (
                "http.trusted_proxies",
                self.http
                    .proxies()
                    .map_or_else(|e| e.to_string(), |p| p.summary()),
            ),
            ("database", redact_url(&self.database_url())),
            (
                "mqtt",
                format!("{mqtt}, topics under {}", self.mqtt.topic_root),
            ),
            (
                "modbus",
                if self.modbus.enabled {
                    format!(
                        "polls every {} ms, timeout {} ms",
                        self.modbus.poll_interval_ms, self.modbus.timeout_ms
                    )
                } else {
                    "off".to_owned()
                },
            ),
            (
                "readers",
                format!("hosts only in {}", self.readers.allowed_networks.join(", ")),
            ),
            (
                "events",
                match self.events.retention_days {
                    0 => "kept forever".to_owned(),
                    days => format!("kept {days} days"),
                },
            ),
            (
                "jobs",
                format!(
                    "old events deleted at '{}', policy rebuilt at '{}' (cron, {})",
                    self.jobs.event_retention, self.jobs.policy_rebuild, self.jobs.timezone
                ),
            ),
            (
                "risk",
                if self.risk.enabled {
                    format!(
                        "swipes scored; baselines trained on {} days at '{}' (cron, {})",
                        self.risk_training_window().num_days(),
                        self.jobs.risk_retrain,
                        self.jobs.timezone
                    )
                } else {
                    "off".to_owned()
                },
            ),
            (
                "readers",
                format!(
                    "a card is blocked for {} minutes after {} wrong PINs in a row",
                    self.readers.pin_lockout_minutes, self.readers.pin_attempts
                ),
            ),
        ]
    }
}

/// Sections of the config file; a variable GATEHOUSE_{SECTION}_{KEY} sets `[section] key`.
const SECTIONS: &[&str] = &[
    "http",
    "database",
    "mqtt",
    "events",
    "modbus",
    "readers",
    "jobs",
    "entitlement_review",
    "risk",
];

fn apply_env_override(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let name = var[ENV_PREFIX.len()..].to_ascii_lowercase();
    let value = parse_env_value(raw);
    let section = SECTIONS.iter().find(|s| name.starts_with(&format!("{s}_")));
    match section {
        Some(section) => {
            let key = name[section.len() + 1..].to_owned();
            let entry = table
                .entry((*section).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => {
                    t.insert(key, value);
                }
                _ => {
                    return Err(ConfigError::Env {
                        var: var.to_owned(),
                        message: format!("the config file's '{section}' is not a table"),
                    });
                }
            }
        }
        None => {
            table.insert(name, value);
        }
    }
    Ok(())
}

/// Numbers and booleans keep their type; anything else is a string.
fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(
            Some(&path),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.database_url(), "sqlite://gatehouse-data/gatehouse.db");
        assert_eq!(c.http.listen, "0.0.0.0:8080");
    }

    #[test]
    fn env_overrides_file() {
        let c = load_str(
            "[http]\nlisten = \"127.0.0.1:1\"\n",
            &[
                ("GATEHOUSE_HTTP_LISTEN", "127.0.0.1:9000"),
                ("GATEHOUSE_DATABASE_POOL_SIZE", "3"),
                ("GATEHOUSE_TEST_POSTGRES_URL", "postgres://x"),
                ("OTHER", "1"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:9000");
        assert_eq!(c.database.pool_size, 3);
    }

    #[test]
    fn trusted_proxies_are_a_list_or_commas_and_checked() {
        let c = load_str(
            "[http]\ntrusted_proxies = [\"10.0.0.5\", \"fd00::/8\"]\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.http.trusted_proxies, ["10.0.0.5", "fd00::/8"]);
        let c = load_str(
            "",
            &[("GATEHOUSE_HTTP_TRUSTED_PROXIES", "10.0.0.5, 10.1.0.0/16")],
        )
        .unwrap();
        assert_eq!(c.http.trusted_proxies, ["10.0.0.5", "10.1.0.0/16"]);
        let summary = c.summary();
        let (_, proxies) = summary
            .iter()
            .find(|(k, _)| *k == "http.trusted_proxies")
            .unwrap();
        assert!(proxies.starts_with("10.0.0.5/32, 10.1.0.0/16"), "{proxies}");
        let err = load_str("[http]\ntrusted_proxies = [\"10.0.0.300\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("setting http.trusted_proxies:") && err.contains("'10.0.0.300'"),
            "{err}"
        );
        let defaults = Config::load(None, Vec::new()).unwrap();
        assert!(defaults.http.trusted_proxies.is_empty());
    }

    #[test]
    fn unknown_key_names_itself_and_its_line() {
        let err = load_str("[http]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn unknown_env_setting_is_an_error() {
        let err = load_str("", &[("GATEHOUSE_HTTP_LISTN", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn mqtt_settings() {
        let c = load_str(
            "[mqtt]\nbroker = \"external\"\nurl = \"mqtt://10.0.0.5\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.mqtt.external_address(), Ok(("10.0.0.5".to_owned(), 1883)));
        let c = load_str(
            "",
            &[
                ("GATEHOUSE_MQTT_BROKER", "external"),
                ("GATEHOUSE_MQTT_URL", "mqtt://broker:8883"),
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.external_address(), Ok(("broker".to_owned(), 8883)));
        let err = load_str("[mqtt]\nbroker = \"external\"\nurl = \"http://x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mqtt.url"), "{err}");
        let err = load_str("[mqtt]\nbroker = \"cloud\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cloud"), "{err}");
        let err = load_str("[mqtt]\ntopic_root = \"gatehouse/#\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("mqtt.topic_root"), "{err}");
    }

    /// A self-signed certificate for localhost and its key, as PEM files in `dir`.
    fn cert_and_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    fn tls_config(cert: &Path, key: &Path) -> String {
        format!(
            "[mqtt]\ntls_listen = \"127.0.0.1:8883\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        )
    }

    #[test]
    fn mqtt_tls_settings() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key(dir.path(), "server");
        let c = load_str(&tls_config(&cert, &key), &[]).unwrap();
        assert_eq!(
            c.mqtt.tls_listen_addr().unwrap(),
            "127.0.0.1:8883".parse().ok()
        );
        assert!(
            c.mqtt.plain_listen().unwrap().is_some(),
            "plain stays on beside TLS"
        );
        // TLS only, set from the environment.
        let c = load_str(
            "",
            &[
                ("GATEHOUSE_MQTT_LISTEN", ""),
                ("GATEHOUSE_MQTT_TLS_LISTEN", "0.0.0.0:8883"),
                ("GATEHOUSE_MQTT_TLS_CERT", &cert.display().to_string()),
                ("GATEHOUSE_MQTT_TLS_KEY", &key.display().to_string()),
            ],
        )
        .unwrap();
        assert_eq!(c.mqtt.plain_listen().unwrap(), None);
        // An external broker over TLS, trusting a given CA (here the self-signed cert).
        let c = load_str(
            &format!(
                "[mqtt]\nbroker = \"external\"\nurl = \"mqtts://broker.lan\"\ntls_ca = \"{}\"\n",
                cert.display()
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            c.mqtt.external_address(),
            Ok(("broker.lan".to_owned(), 8883))
        );
        assert!(c.mqtt.client_tls().unwrap().is_some());
    }

    #[test]
    fn bad_tls_files_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key(dir.path(), "server");
        let (_, other_key) = cert_and_key(dir.path(), "other");
        let err_of = |text: String| load_str(&text, &[]).unwrap_err().to_string();

        let missing = dir.path().join("missing.pem");
        let err = err_of(tls_config(&missing, &key));
        assert!(
            err.starts_with("setting mqtt.tls_cert:")
                && err.contains("missing.pem")
                && err.contains("no such file"),
            "{err}"
        );
        let not_pem = dir.path().join("notes.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let err = err_of(tls_config(&not_pem, &key));
        assert!(
            err.starts_with("setting mqtt.tls_cert:") && err.contains("not a PEM file"),
            "{err}"
        );
        let err = err_of(tls_config(&cert, &not_pem));
        assert!(
            err.starts_with("setting mqtt.tls_key:") && err.contains("not a PEM file"),
            "{err}"
        );
        let err = err_of(tls_config(&cert, &other_key));
        assert!(
            err.starts_with("setting mqtt.tls_key:") && err.contains("does not belong"),
            "{err}"
        );
        let err = err_of("[mqtt]\ntls_listen = \"0.0.0.0:8883\"\n".to_owned());
        assert!(err.starts_with("setting mqtt.tls_cert:"), "{err}");
        let err = err_of(format!("[mqtt]\ntls_cert = \"{}\"\n", cert.display()));
        assert!(err.starts_with("setting mqtt.tls_listen:"), "{err}");
        let err = err_of("[mqtt]\nlisten = \"\"\n".to_owned());
        assert!(err.starts_with("setting mqtt.listen:"), "{err}");
        let err = err_of(format!(
            "[mqtt]\nlisten = \"0.0.0.0:8883\"\n{}",
            tls_config(&cert, &key)
                .replace("[mqtt]\n", "")
                .replace("127.0.0.1:8883", "0.0.0.0:8883")
        ));
        assert!(err.starts_with("setting mqtt.tls_listen:"), "{err}");
        let err = err_of(format!(
            "[mqtt]\nbroker = \"external\"\nurl = \"mqtts://b\"\ntls_ca = \"{}\"\n",
            missing.display()
        ));
        assert!(err.starts_with("setting mqtt.tls_ca:"), "{err}");
        let err = err_of(format!(
            "[mqtt]\nbroker = \"external\"\nurl = \"mqtt://b\"\ntls_ca = \"{}\"\n",
            cert.display()
        ));
        assert!(
            err.starts_with("setting mqtt.tls_ca:") && err.contains("mqtts://"),
            "{err}"
        );
    }

    fn https_config(cert: &Path, key: &Path) -> String {
        format!(
            "[http]\nlisten = \"127.0.0.1:8443\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        )
    }

    #[test]
    fn https_needs_a_certificate_and_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = cert_and_key(dir.path(), "console");
        let (_, other_key) = cert_and_key(dir.path(), "other");
        let c = load_str(&https_config(&cert, &key), &[]).unwrap();
        assert!(c.http.https());
        assert!(c.http.server_tls().unwrap().is_some());
        let summary = c.summary();
        let (_, listen) = summary.iter().find(|(k, _)| *k == "http.listen").unwrap();
        assert!(listen.contains("HTTPS only"), "{listen}");
        // The same from the environment, as the other settings.
        let c = load_str(
            "",
            &[
                ("GATEHOUSE_HTTP_TLS_CERT", &cert.display().to_string()),
                ("GATEHOUSE_HTTP_TLS_KEY", &key.display().to_string()),
            ],
        )
        .unwrap();
        assert!(c.http.https());
        let plain = load_str("", &[]).unwrap();
        assert!(!plain.http.https());
        assert_eq!(plain.http.server_tls().unwrap().map(|_| ()), None);

        let err_of = |text: String| load_str(&text, &[]).unwrap_err().to_string();
        let err = err_of(https_config(&cert, &other_key));
        assert!(
            err.starts_with("setting http.tls_key:") && err.contains("does not belong"),
            "{err}"
        );
        let missing = dir.path().join("missing.pem");
        let err = err_of(https_config(&missing, &key));
        assert!(
            err.starts_with("setting http.tls_cert:") && err.contains("no such file"),
            "{err}"
        );
        let err = err_of(https_config(&cert, &missing));
        assert!(
            err.starts_with("setting http.tls_key:") && err.contains("no such file"),
            "{err}"
        );
        // A key where the certificate belongs, and the other way round.
        let err = err_of(https_config(&key, &key));
        assert!(
            err.starts_with("setting http.tls_cert:") && err.contains("CERTIFICATE"),
            "{err}"
        );
        let err = err_of(https_config(&cert, &cert));
        assert!(
            err.starts_with("setting http.tls_key:") && err.contains("PRIVATE KEY"),
            "{err}"
        );
        let err = err_of(format!("[http]\ntls_cert = \"{}\"\n", cert.display()));
        assert!(
            err.starts_with("setting http.tls_key:") && err.contains("neither"),
            "{err}"
        );
        let err = err_of(format!("[http]\ntls_key = \"{}\"\n", key.display()));
        assert!(err.starts_with("setting http.tls_cert:"), "{err}");
    }

    #[test]
    fn bad_values_say_which_setting() {
        let err = load_str("[http]\nlisten = \"nowhere\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.listen"), "{err}");
        let err = load_str("[database]\nurl = \"mysql://x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.url"), "{err}");
        let err = load_str("[events]\nretention_days = 40000\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("events.retention_days"), "{err}");
        let err = load_str("[database]\npool_size = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.pool_size"), "{err}");
    }

    #[test]
    fn risk_training_is_set_by_file_or_environment_and_never_outlasts_retention() {
        let c = load_str("", &[]).unwrap();
        assert!(c.risk.enabled);
        assert_eq!(c.risk_training_window().num_days(), 90);
        assert_eq!(c.jobs.risk_retrain, "15 2 * * *");
        let c = load_str(
            "[risk]\ntraining_days = 120\n[events]\nretention_days = 30\n",
            &[("GATEHOUSE_JOBS_RISK_RETRAIN", "0 4 * * *")],
        )
        .unwrap();
        assert_eq!(c.risk_training_window().num_days(), 30);
        assert_eq!(c.jobs.risk_retrain, "0 4 * * *");
        let c = load_str("", &[("GATEHOUSE_RISK_ENABLED", "false")]).unwrap();
        assert!(!c.risk.enabled);
        let err = load_str("[risk]\ntraining_days = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("risk.training_days"), "{err}");
        let err = load_str("", &[("GATEHOUSE_JOBS_RISK_RETRAIN", "nightly")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("jobs.risk_retrain"), "{err}");
    }

    #[test]
    fn job_schedules_are_checked_at_load_and_name_their_key() {
        let config = load_str(
            "[jobs]\ntimezone = \"Europe/Berlin\"\nevent_retention = \"15 2 * * Sun\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(config.jobs.event_retention, "15 2 * * Sun");
        assert_eq!(config.jobs.policy_rebuild, "0 * * * *");
        let err = load_str("[jobs]\nevent_retention = \"30 25 * * *\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("setting jobs.event_retention: '30 25 * * *' is not a cron"),
            "{err}"
        );
        let err = load_str("", &[("GATEHOUSE_JOBS_POLICY_REBUILD", "hourly")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("setting jobs.policy_rebuild:"), "{err}");
        let err = load_str("[jobs]\ntimezone = \"Mars/Olympus\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("setting jobs.timezone:"), "{err}");
        // A job that is not set here (following the database) is a typo, not a setting.
        let err = load_str("[jobs]\nfollow_database = \"* * * * *\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("follow_database"), "{err}");
    }

    #[test]
    fn reader_networks_are_ranges_from_the_file_or_the_environment() {
        let c = Config::load(None, Vec::new()).unwrap();
        let private = c.readers.networks().unwrap();
        assert!(private.contains("192.168.4.20".parse().unwrap()));
        assert!(!private.contains("8.8.8.8".parse().unwrap()));
        let c = load_str("[readers]\nallowed_networks = [\"10.20.0.0/16\"]\n", &[]).unwrap();
        let narrow = c.readers.networks().unwrap();
        assert!(narrow.contains("10.20.0.64".parse().unwrap()));
        assert!(!narrow.contains("10.21.0.1".parse().unwrap()));
        let c = load_str(
            "",
            &[(
                "GATEHOUSE_READERS_ALLOWED_NETWORKS",
                "127.0.0.0/8, 10.0.0.0/8",
            )],
        )
        .unwrap();
        assert_eq!(c.readers.allowed_networks, ["127.0.0.0/8", "10.0.0.0/8"]);
        for bad in [
            "[readers]\nallowed_networks = [\"10.0.0.1/8\"]\n",
            "[readers]\nallowed_networks = [\"the office\"]\n",
            "[readers]\nallowed_networks = []\n",
        ] {
            let err = load_str(bad, &[]).unwrap_err().to_string();
            assert!(err.contains("readers.allowed_networks"), "{bad}: {err}");
        }
        let summary = Config::default().summary();
        assert!(
            summary
                .iter()
                .any(|(k, v)| *k == "readers" && v.contains("192.168.0.0/16")),
            "{summary:?}"
        );
    }

    #[test]
    fn database_passwords_never_reach_the_summary() {
        for (url, shown) in [
            (
                "postgres://gate:s3cret@db.local/gatehouse",
                "postgres://gate:***@db.local/gatehouse",
            ),
            (
                "postgres://gate@db.local/gatehouse?sslmode=require&password=s3cret",
                "postgres://gate@db.local/gatehouse?sslmode=require&password=***",
            ),
            (
                "postgres://db.local/gatehouse?PASSWORD=s3cret&user=gate",
                "postgres://db.local/gatehouse?PASSWORD=***&user=gate",
            ),
            (
                "host=db.local password=s3cret dbname=gatehouse",
                "host=db.local password=*** dbname=gatehouse",
            ),
            (
                "postgres://u:p%40ss@h/db?password=two",
                "postgres://u:***@h/db?password=***",
            ),
            ("sqlite://data/gatehouse.db", "sqlite://data/gatehouse.db"),
            (
                "postgres://h/db?mypassword=kept",
                "postgres://h/db?mypassword=kept",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let c = Config {
            database: DatabaseConfig {
                url: "postgres://gate:s3cret@127.0.0.1/g?password=s3cret".to_owned(),
                pool_size: 4,
            },
            ..Config::default()
        };
        let summary = format!("{:?}", c.summary());
        assert!(!summary.contains("s3cret"), "{summary}");
    }

    #[test]
    fn a_tls_key_that_others_may_read_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = Config::default();
        c.http.tls_key = key.clone();
        c.mqtt.tls_key = key.clone();
        let warnings = c.secret_file_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("http.tls_key") && warnings[0].contains("644"));
        assert!(warnings[1].starts_with("mqtt.tls_key"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.secret_file_warnings().is_empty());
    }
}
