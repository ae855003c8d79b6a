//! `gatehouse simulate`: virtual readers (MQTT clients, and Modbus TCP devices that the
//! appliance polls) playing traffic from an imported site against a running appliance:
//! people at their own doors, some refused, doors opening and closing, people leaving by
//! request-to-exit. Prints counts and the swipe-to-answer latency. Or plays one card at one
//! reader and prints what the reader was told (`--reader R --card UID`), for an installer
//! checking a door.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, TimeDelta, Utc};
use gatehouse_drivers::message::{Command, EventBody, WireCredential, valid_pin};
use gatehouse_drivers::modbus_map::Beeper;
use gatehouse_drivers::mqtt::ClientTls;
use gatehouse_drivers::sim::{EventFormat, SimError, SimPresence, SimReader, SimSettings};
use gatehouse_drivers::sim_modbus::SimDevice;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

mod day;

pub use day::DayOptions;

use crate::config::{BrokerChoice, Config};
use crate::policy::{CredentialKey, Outcome, PolicyData, Presence, Request, Snapshot, decide};
use crate::store::event_log::{EventFilter, EventKind};
use crate::store::load::{ReaderWire, load_policy};

/// Which of the site's readers to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocols {
    All,
    Mqtt,
    Modbus,
}

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub readers: usize,
    pub swipes: usize,
    /// Swipes per second across all readers.
    pub rate: f64,
    pub protocols: Protocols,
    /// mqtt://HOST:PORT or mqtts://HOST:PORT of the broker; default: the appliance's own
    /// from the config.
    pub broker: Option<String>,
    /// The CA to trust for a broker over TLS (default: [mqtt] tls_ca, or the system's).
    pub ca: Option<std::path::PathBuf>,
    /// Legacy readers (which send bare v1 events) add the v1 mac; sealed readers always
    /// authenticate their events.
    pub sign_events: bool,
    pub seed: u64,
    /// Play exactly this swipe instead of the site's traffic.
    pub one_swipe: Option<OneSwipe>,
    /// Play a day of the site on a private appliance instead.
    pub day: Option<DayOptions>,
}

/// One card presented at one reader (`gatehouse simulate --reader R --card UID`).
#[derive(Debug, Clone)]
pub struct OneSwipe {
    pub reader_id: String,
    /// The card's UID in hex, as the installer typed it.
    pub card: String,
    pub pin: Option<String>,
}

/// What the appliance should answer, by the policy as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Grant,
    Deny,
    PinRequired,
}

/// One planned swipe, and what follows it at the door.
struct Planned {
    credential: WireCredential,
    expected: Expected,
    /// Someone leaves first: REX, the door opens and closes.
    exit_before: bool,
}

fn wire(key: &CredentialKey) -> WireCredential {
    match key {
        CredentialKey::Card { uid } => WireCredential::Card { uid: uid.clone() },
        CredentialKey::Wiegand { facility, number } => WireCredential::Wiegand {
            facility: *facility,
            number: *number,
        },
    }
}

/// How many of the site's credentials are tried against each reader to find the people
/// who use its door; enough to find them on sites of any size in milliseconds.
const SAMPLE: usize = 4_000;

/// Plans a reader's swipes. About 85% come from people entitled to its door now (their own
/// door, in their schedule), 10% from people who are refused there (another team's door,
/// outside their hours, a withdrawn card), 5% from cards nobody holds.
fn plan(
    data: &PolicyData,
    snapshot: &Snapshot,
    reader: &ReaderWire,
    count: usize,
    rng: &mut impl Rng,
) -> Vec<Planned> {
    let presence = Presence::new();
    let now = Utc::now();
    // The Modbus register map carries card UIDs only.
    let cards_only = reader.protocol == "modbus";
    let mut own = Vec::new();
    let mut refused = Vec::new();
    let candidates: Vec<_> = data
        .credentials
        .choose_multiple(rng, SAMPLE)
        .filter(|c| !cards_only || matches!(c.key, CredentialKey::Card { .. }))
        .collect();
    for c in candidates {
        let request = Request {
            reader_id: &reader.reader_id,
            credential: &c.key,
            pin: None,
        };
        match decide(snapshot, &presence, &request, now).map(|d| d.outcome) {
            Ok(Outcome::Grant { .. }) => own.push((c.key.clone(), Expected::Grant)),
            Ok(Outcome::PinRequired) => own.push((c.key.clone(), Expected::PinRequired)),
            Ok(Outcome::Deny(_)) => refused.push((c.key.clone(), Expected::Deny)),
            Err(_) => {}
        }
    }
    (0..count)
        .map(|_| {
            let roll: f64 = rng.random();
            let pick = if roll < 0.85 && !own.is_empty() {
                own.choose(rng)
            } else if roll < 0.95 && !refused.is_empty() {
                refused.choose(rng)
            } else {
                None
            };
            let (credential, expected) = match pick {
                Some((key, expected)) => (wire(key), expected.clone()),
                None => (
                    WireCredential::Card {
                        uid: format!("FE{:012X}", rng.random::<u64>() & 0xFFFF_FFFF_FFFF),
                    },
                    Expected::Deny,
                ),
            };
            Planned {
                credential,
                expected,
                exit_before: rng.random::<f64>() < 0.1,
            }
        })
        .collect()
}

/// What the reader was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Grant,
    Deny,
    PinRequired,
    Error,
}

impl Answer {
    fn of_command(command: &Command) -> Answer {
        match command {
            Command::Grant { .. } => Answer::Grant,
            Command::Deny { .. } => Answer::Deny,
            Command::PinRequired { .. } => Answer::PinRequired,
            _ => Answer::Error,
        }
    }

    fn of_beeper(beeper: Beeper) -> Answer {
        match beeper {
            Beeper::Grant => Answer::Grant,
            Beeper::Deny => Answer::Deny,
            Beeper::PinNeeded => Answer::PinRequired,
            Beeper::Silent => Answer::Error,
        }
    }

    fn as_planned(self, expected: &Expected) -> bool {
        matches!(
            (self, expected),
            (Answer::Grant, Expected::Grant)
                | (Answer::Deny, Expected::Deny)
                | (Answer::PinRequired, Expected::PinRequired)
        )
    }
}

/// A virtual reader of either kind.
enum Player {
    Mqtt(Box<SimReader>),
    /// A Modbus device is seen only when polled: inputs are held for a few polls.
    Modbus {
        device: SimDevice,
        hold: Duration,
    },
}

const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a virtual reader heard back from one swipe.
struct Heard {
    answer: Answer,
    /// The command itself where the wire carries one (MQTT); a Modbus device hears only
    /// its beeper.
    command: Option<Command>,
    latency: Duration,
}

impl Player {
    async fn swipe(&mut self, credential: &WireCredential, pin: Option<&str>) -> Result<Heard> {
        match self {
            Player::Mqtt(reader) => {
                let started = Instant::now();
                let (_, command) = reader
                    .swipe(credential.clone(), pin, ANSWER_TIMEOUT)
                    .await
                    .map_err(|e| match e {
                        // Its own figure is what was left of the wait when it ran out.
                        SimError::Timeout(_) => anyhow!("no answer within {ANSWER_TIMEOUT:?}"),
                        other => other.into(),
                    })?;
                Ok(Heard {
                    answer: Answer::of_command(&command),
                    command: Some(command),
                    latency: started.elapsed(),
                })
            }
            Player::Modbus { device, .. } => {
                let WireCredential::Card { uid } = credential else {
                    bail!("the Modbus register map carries card UIDs only");
                };
                device.clear_writes();
                let Some(swiped) = device.swipe(uid, pin) else {
                    bail!(
                        "a Modbus reader's registers cannot hold this card or PIN (up to 16 bytes of UID, up to 9 PIN digits)"
                    );
                };
                let Some((beeper, at)) = device.answer(ANSWER_TIMEOUT).await else {
                    bail!("no answer within {ANSWER_TIMEOUT:?}");
                };
                Ok(Heard {
                    answer: Answer::of_beeper(beeper),
                    command: None,
                    latency: at.saturating_duration_since(swiped),
                })
            }
        }
    }

    /// Swipes, counts the answer in `tally` (against `expected`, when there is one), and
    /// after a grant opens the door for `dwell` and closes it. Returns the answer.
    async fn swipe_and_pass(
        &mut self,
        credential: &WireCredential,
        expected: Option<&Expected>,
        dwell: Duration,
        tally: &mut Tally,
    ) -> Option<Answer> {
        let Ok(Heard {
            answer, latency, ..
        }) = self.swipe(credential, None).await
        else {
            tally.unanswered += 1;
            return None;
        };
        tally.latencies.push(latency);
        let name = match answer {
            Answer::Grant => "granted",
            Answer::Deny => "denied",
            Answer::PinRequired => "pin required",
            Answer::Error => "errors",
        };
        *tally.answers.entry(name).or_default() += 1;
        if expected.is_some_and(|e| !answer.as_planned(e)) {
            tally.unexpected += 1;
        }
        if answer == Answer::Grant && self.door(true).await {
            tokio::time::sleep(dwell).await;
            tally.door_events += 1;
            if self.door(false).await {
                tally.door_events += 1;
            }
        }
        Some(answer)
    }

    async fn door(&mut self, open: bool) -> bool {
        match self {
            Player::Mqtt(reader) => {
                let body = EventBody::Door { open };
                if reader.send(&body, reader.now()).await.is_ok() {
                    return true;
                }
                // The client's queue is full: let it drain and try once more, so that a
                // door this reader opened is not left open on the appliance's books.
                reader.flush(ANSWER_TIMEOUT).await.is_ok()
                    && reader.send(&body, reader.now()).await.is_ok()
            }
            Player::Modbus { device, hold } => {
                device.set_door_open(open);
                tokio::time::sleep(*hold).await;
                true
            }
        }
    }

    /// Before the reader goes away (and the broker says so with its last will): waits
    /// until the broker has everything it sent, its last door closing too. A Modbus
    /// device held each input for a few polls already.
    async fn finish(&mut self) {
        if let Player::Mqtt(reader) = self
            && let Err(e) = reader.flush(ANSWER_TIMEOUT).await
        {
            eprintln!(
                "reader {}: its last events may not have reached the broker ({e})",
                reader.reader_id()
            );
        }
    }

    async fn rex(&mut self) -> bool {
        match self {
            Player::Mqtt(reader) => {
                let now = reader.now();
                reader.send(&EventBody::Rex, now).await.is_ok()
            }
            Player::Modbus { device, hold } => {
                device.set_rex_pressed(true);
                tokio::time::sleep(*hold).await;
                device.set_rex_pressed(false);
                true
            }
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    answers: BTreeMap<&'static str, usize>,
    unanswered: usize,
    unexpected: usize,
    door_events: usize,
    exits: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.answers {
            *self.answers.entry(k).or_default() += v;
        }
        self.unanswered += other.unanswered;
        self.unexpected += other.unexpected;
        self.door_events += other.door_events;
        self.exits += other.exits;
    }
}

/// Where simulated MQTT readers connect, and over TLS with which trust (None: plain).
struct BrokerTarget {
    host: String,
    port: u16,
    tls: Option<ClientTls>,
}

fn broker_address(
    config: &Config,
    explicit: Option<&str>,
    ca: Option<&std::path::Path>,
) -> Result<BrokerTarget> {
    let trust = |url: &str| -> Result<BrokerTarget> {
        let probe = crate::config::MqttConfig {
            url: url.to_owned(),
            tls_ca: ca.map(std::path::Path::to_path_buf).unwrap_or_default(),
            ..Default::default()
        };
        let (host, port) = probe.external_address().map_err(anyhow::Error::msg)?;
        let tls = probe.client_tls()?;
        Ok(BrokerTarget { host, port, tls })
    };
    if let Some(url) = explicit {
        return trust(url);
    }
    let local_host = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        }
    };
    match config.mqtt.broker {
        BrokerChoice::Embedded => {
            if let Some(addr) = config.mqtt.plain_listen()? {
                return Ok(BrokerTarget {
                    host: local_host(addr),
                    port: addr.port(),
                    tls: None,
                });
            }
            let Some(addr) = config.mqtt.tls_listen_addr()? else {
                bail!("the embedded broker has no listener in this configuration");
            };
            let Some(ca) = ca else {
                bail!(
                    "the embedded broker listens only over TLS ({addr}): pass --ca FILE, the CA that signed [mqtt] tls_cert"
                );
            };
            Ok(BrokerTarget {
                host: local_host(addr),
                port: addr.port(),
                tls: Some(ClientTls::from_ca_file(ca)?),
            })
        }
        BrokerChoice::External => match ca {
            Some(_) => trust(&config.mqtt.url),
            None => {
                let (host, port) = config.mqtt.external_address().map_err(anyhow::Error::msg)?;
                Ok(BrokerTarget {
                    host,
                    port,
                    tls: config.mqtt.client_tls()?,
                })
            }
        },
        BrokerChoice::Off => {
            bail!("MQTT is off in this configuration: pass --broker mqtt://HOST:PORT")
        }
    }
}

/// Plays one reader's plan: swipes at its pace; after a grant the door opens and closes.
async fn play(mut player: Player, planned: Vec<Planned>, interval: Duration) -> Tally {
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval(interval);
    // The door stays open for a moment, well inside the interval between swipes.
    let dwell = (interval / 3).min(Duration::from_millis(1500));
    for swipe in planned {
        tick.tick().await;
        if swipe.exit_before && player.rex().await {
            tally.exits += 1;
            tally.door_events += 1;
            if player.door(true).await && player.door(false).await {
                tally.door_events += 2;
            }
        }
        player
            .swipe_and_pass(&swipe.credential, Some(&swipe.expected), dwell, &mut tally)
            .await;
    }
    player.finish().await;
    tally
}

/// Whether this machine can listen on `host` (a simulated device takes the registered
/// address of its reader).
fn local_address(host: &str, port: u16) -> Option<SocketAddr> {
    let addr: SocketAddr = format!("{host}:{port}").parse().ok()?;
    std::net::TcpListener::bind(addr).ok().map(|_| addr)
}

/// A virtual reader for a registered reader: an MQTT client connected as that reader
/// (showing itself on the broker as `presence` says), or a Modbus device listening on the
/// reader's registered address (which must be one of this machine's).
async fn start_player(
    config: &Config,
    reader: &ReaderWire,
    mqtt_broker: Option<&BrokerTarget>,
    sign_events: bool,
    presence: SimPresence,
    first_seq: u64,
) -> Result<Player> {
    if reader.protocol == "modbus" {
        let host = reader.modbus_host.as_deref().unwrap_or_default();
        let port = u16::try_from(reader.modbus_port.unwrap_or(502)).unwrap_or(502);
        let unit = u8::try_from(reader.modbus_unit.unwrap_or(1)).unwrap_or(1);
        let Some(addr) = local_address(host, port) else {
            bail!("cannot listen on {host}:{port} here (not an address of this machine, or taken)");
        };
        let device = SimDevice::start(addr, unit)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        return Ok(Player::Modbus {
            device,
            hold: modbus_hold(config),
        });
    }
    let Some(broker) = mqtt_broker else {
        bail!("no MQTT broker to connect to");
    };
    let settings = SimSettings {
        host: broker.host.clone(),
        port: broker.port,
        reader_id: reader.reader_id.clone(),
        secret: reader.secret.clone(),
        username: Some(reader.reader_id.clone()),
        password: Some(reader.secret.clone()),
        topic_root: config.mqtt.topic_root.clone(),
        sign_events: sign_events || reader.require_signed_events,
    };
    let legacy = reader.legacy;
    let connected = SimReader::connect_as(settings, broker.tls.clone(), presence, first_seq).await;
    let mut reader = connected.with_context(|| {
        format!(
            "cannot connect to the MQTT broker at {}:{} (a broker that keeps readers to their own topics, as the embedded one does, also drops a reader whose topic root, here '{}', is not the appliance's)",
            broker.host, broker.port, config.mqtt.topic_root
        )
    })?;
    // Sealed events, as every reader not marked legacy must send; a legacy reader's are
    // bare, as its firmware would send them.
    if legacy {
        reader.set_event_format(EventFormat::Legacy);
    }
    Ok(Player::Mqtt(Box::new(reader)))
}

/// How long a simulated Modbus device holds an input: three polls, so that the appliance
/// sees every change.
fn modbus_hold(config: &Config) -> Duration {
    Duration::from_millis(config.modbus.poll_interval_ms) * 3
}

/// The first event number of a run's readers: later than any earlier run's, so that the
/// appliance takes no swipe of this run for a resend of an earlier one.
fn fresh_first_seq() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(1) * 1000
}

/// Plays one card at one registered reader and returns what the reader was told, as one
/// line: `main-entrance-in: granted (unlock 5000 ms), 3.2 ms`. Fails, saying what to
/// check, when the reader is not registered or no answer came.
async fn swipe_once(
    config: &Config,
    db: &crate::store::DbPool,
    options: &SimulateOptions,
    one: &OneSwipe,
) -> Result<String> {
    let card = CredentialKey::card(&one.card).context("--card takes the card's UID in hex")?;
    if let Some(pin) = &one.pin
        && !valid_pin(pin)
    {
        bail!("--pin takes 4 to 12 digits");
    }
    let readers = {
        let mut conn = db.get()?;
        load_policy(&mut conn)?.readers
    };
    let Some(reader) = readers.iter().find(|r| r.reader_id == one.reader_id) else {
        bail!(
            "no reader '{}' is registered in this appliance's database (it has {}; `gatehouse export` lists them)",
            one.reader_id,
            readers.len()
        );
    };
    let mqtt_broker = if reader.protocol == "modbus" {
        None
    } else {
        Some(broker_address(
            config,
            options.broker.as_deref(),
            options.ca.as_deref(),
        )?)
    };
    // A visitor: the real reader may be connected right now, and checking its door must
    // neither cut it off nor leave it looking offline afterwards.
    let mut player = start_player(
        config,
        reader,
        mqtt_broker.as_ref(),
        options.sign_events,
        SimPresence::Visitor,
        fresh_first_seq(),
    )
    .await
    .with_context(|| format!("reader {}", reader.reader_id))?;
    if let Player::Modbus { device, .. } = &player {
        wait_until_polled(config, device).await?;
    }
    let swiped_at = Utc::now();
    let heard = player
        .swipe(&wire(&card), one.pin.as_deref())
        .await
        .with_context(|| {
            format!(
                "reader {} got no answer (is the appliance running, on this database{}?)",
                reader.reader_id,
                match &mqtt_broker {
                    Some(b) => format!(
                        ", with the broker at {}:{} and topic root '{}'",
                        b.host, b.port, config.mqtt.topic_root
                    ),
                    None => String::new(),
                }
            )
        })?;
    let command = match heard.command {
        Some(command) => Some(command),
        None => recorded_answer(db, &reader.reader_id, swiped_at)
            .filter(|recorded| Answer::of_command(recorded) == heard.answer),
    };
    Ok(format!(
        "{}: {}, {:.1} ms",
        reader.reader_id,
        describe_answer(heard.answer, command.as_ref()),
        heard.latency.as_secs_f64() * 1000.0
    ))
}

/// Waits until the appliance has polled a simulated Modbus device twice: the first read of
/// a device's swipe counter is taken as its starting value, so a swipe made before it
/// would go unnoticed.
async fn wait_until_polled(config: &Config, device: &SimDevice) -> Result<()> {
    // The appliance may be waiting out its reconnection backoff for this address.
    let patience = Duration::from_millis(config.modbus.backoff_max_ms + config.modbus.timeout_ms)
        + ANSWER_TIMEOUT;
    let deadline = Instant::now() + patience;
    while device.polls() < 2 {
        if Instant::now() >= deadline {
            bail!(
                "the appliance did not poll the simulated device on {} within {patience:?} (is it running, with [modbus] enabled, on this database?)",
                device.addr()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The answer the appliance recorded for the newest swipe at `reader_id` since `since`.
/// A Modbus device hears only a beeper pattern; the event log has the deny code and the
/// unlock time. None when the log cannot tell (another database, clocks far apart).
fn recorded_answer(
    db: &crate::store::DbPool,
    reader_id: &str,
    since: DateTime<Utc>,
) -> Option<Command> {
    let mut conn = db.get().ok()?;
    let filter = EventFilter {
        kind: Some(EventKind::Swipe.as_str().to_owned()),
        // Room for the appliance's clock to be a little behind this machine's.
        from: Some(since - TimeDelta::seconds(30)),
        ..EventFilter::default()
    };
    crate::store::event_log::recent(&mut conn, &filter, 1000)
        .ok()?
        .into_iter()
        .find(|row| row.event.reader_id.as_deref() == Some(reader_id))?
        .event
        .command
        .and_then(|text| serde_json::from_str(&text).ok())
}

/// An answer in words: from the command where there is one, else from the beeper.
fn describe_answer(answer: Answer, command: Option<&Command>) -> String {
    match command {
        Some(Command::Grant { unlock_ms, .. }) => format!("granted (unlock {unlock_ms} ms)"),
        Some(Command::Deny { code, .. }) => format!("denied: {}", code.as_str()),
        Some(Command::PinRequired { .. }) => "PIN required (swipe again with --pin)".to_owned(),
        Some(Command::Error { code, .. }) => format!("refused the event: {}", code.as_str()),
        Some(Command::Mode { .. }) | None => match answer {
            Answer::Grant => "granted (relay unlocked)".to_owned(),
            Answer::Deny => "denied".to_owned(),
            Answer::PinRequired => "PIN required (swipe again with --pin)".to_owned(),
            Answer::Error => "refused the event".to_owned(),
        },
    }
}

/// Runs the simulation and prints the report; fails if no swipe was answered.
pub async fn run(
    config: &Config,
    db: &crate::store::DbPool,
    options: SimulateOptions,
) -> Result<()> {
    if let Some(day) = options.day {
        return day::run(config, day).await;
    }
    if let Some(one) = &options.one_swipe {
        let line = swipe_once(config, db, &options, one).await?;
        println!("{line}");
        return Ok(());
    }
    let loaded = {
        let mut conn = db.get()?;
        load_policy(&mut conn)?
    };
    let snapshot = Snapshot::compile(&loaded.data, Utc::now())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut readers: Vec<ReaderWire> = loaded
        .readers
        .iter()
        .filter(|r| match options.protocols {
            Protocols::All => true,
            Protocols::Mqtt => r.protocol == "mqtt",
            Protocols::Modbus => r.protocol == "modbus",
        })
        .cloned()
        .collect();
    readers.shuffle(&mut rng);
    readers.truncate(options.readers);
    if readers.is_empty() {
        bail!(
            "the site has no readers to play ({:?}): import a site first (gatehouse import FILE)",
            options.protocols
        );
    }
    let per_reader = options.swipes.div_ceil(readers.len());
    let interval = Duration::from_secs_f64(readers.len() as f64 / options.rate.max(0.001));
    let first_seq = fresh_first_seq();
    let mqtt_broker = if readers.iter().any(|r| r.protocol == "mqtt") {
        Some(broker_address(
            config,
            options.broker.as_deref(),
            options.ca.as_deref(),
        )?)
    } else {
        None
    };
    let mut players = Vec::new();
    let mut skipped = 0;
    for r in &readers {
        match start_player(
            config,
            r,
            mqtt_broker.as_ref(),
            options.sign_events,
            SimPresence::Announced,
            first_seq,
        )
        .await
        {
            Ok(player) => {
                let planned = plan(&loaded.data, &snapshot, r, per_reader, &mut rng);
                players.push((r.protocol.clone(), player, planned));
            }
            Err(e) => {
                eprintln!("reader {}: {e:#}; skipped", r.reader_id);
                skipped += 1;
            }
        }
    }
    let modbus = players.iter().filter(|p| p.0 == "modbus").count();
    eprintln!(
        "simulating {} readers ({} MQTT, {modbus} Modbus), {} swipes at {:.0}/s{}",
        players.len(),
        players.len() - modbus,
        per_reader * players.len(),
        options.rate,
        match &mqtt_broker {
            Some(b) => format!(
                " (MQTT via {}://{}:{})",
                if b.tls.is_some() { "mqtts" } else { "mqtt" },
                b.host,
                b.port
            ),
            None => String::new(),
        }
    );
    // A swipe made before the appliance has read a device's counter once would go
    // unnoticed, and a running appliance may be waiting out its reconnection backoff for a
    // device that was not there a moment ago: wait until every device has been polled.
    for (_, player, _) in &players {
        if let Player::Modbus { device, .. } = player {
            wait_until_polled(config, device).await?;
        }
    }
    let mut tasks = Vec::new();
    for (_, player, planned) in players {
        let start_delay = Duration::from_secs_f64(rng.random::<f64>() * interval.as_secs_f64());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(start_delay).await;
            play(player, planned, interval).await
        }));
    }
    let mut total = Tally {
        unanswered: skipped * per_reader,
        ..Tally::default()
    };
    let count = tasks.len();
    for (done, task) in tasks.into_iter().enumerate() {
        total.add(task.await.context("a simulated reader failed")?);
        eprint!("\r  {}/{count} readers finished", done + 1);
    }
    eprintln!();
    print!("{}", report(&mut total));
    if total.latencies.is_empty() {
        bail!("no swipe was answered: is the appliance running, and are these its readers?");
    }
    Ok(())
}

/// Latency buckets of the histogram, in milliseconds (upper bounds).
const BUCKETS_MS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0, f64::INFINITY];

fn report(t: &mut Tally) -> String {
    t.latencies.sort();
    let pick = |q: f64| -> Duration {
        if t.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((t.latencies.len() as f64 - 1.0) * q).round() as usize;
        t.latencies[i.min(t.latencies.len() - 1)]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let count = |name: &str| t.answers.get(name).copied().unwrap_or(0);
    let mut out = format!(
        "answered   {}\n  granted        {}\n  denied         {}\n  pin required   {}\n  errors         {}\nunanswered {}\nnot as planned {} (anti-passback after an earlier swipe, or the policy or the clock moved since planning)\n\
         door events sent {} (including {} exits by request-to-exit)\n\
         swipe → answer latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        t.latencies.len(),
        count("granted"),
        count("denied"),
        count("pin required"),
        count("errors"),
        t.unanswered,
        t.unexpected,
        t.door_events,
        t.exits,
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(pick(0.99)),
        ms(pick(1.0)),
    );
    let total = t.latencies.len().max(1);
    let mut lower = 0.0;
    for upper in BUCKETS_MS {
        let n = t
            .latencies
            .iter()
            .filter(|d| {
                let v = ms(**d);
                v >= lower && v < upper
            })
            .count();
        let label = if upper.is_infinite() {
            format!("≥ {lower} ms")
        } else {
            format!("{lower}–{upper} ms")
        };
        let bar = "#".repeat((n * 50).div_ceil(total).min(50));
        out.push_str(&format!("  {label:>14} {n:>8}  {bar}\n"));
        lower = upper;
    }
    out
}
