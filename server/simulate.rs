//! `gatehouse simulate`: virtual MQTT readers swiping the cards of an imported site against
//! a running appliance, mostly people at doors they may open now, some who may not, a few
//! unknown cards; prints counts and the swipe-to-answer latency.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use gatehouse_drivers::message::{Command, WireCredential};
use gatehouse_drivers::sim::{SimReader, SimSettings};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::config::{BrokerChoice, Config};
use crate::policy::{CredentialKey, Outcome, PolicyData, Presence, Request, Snapshot, decide};
use crate::store::load::{ReaderWire, load_policy};

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub readers: usize,
    pub swipes: usize,
    /// Swipes per second across all readers.
    pub rate: f64,
    /// mqtt://HOST:PORT of the broker; default: the appliance's own from the config.
    pub broker: Option<String>,
    pub sign_events: bool,
    pub seed: u64,
}

/// One planned swipe: which reader, which card, and what the appliance should answer.
struct Planned {
    credential: WireCredential,
    expect_grant: bool,
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

/// Picks swipes for a reader: about 80% granted cards (tried against the policy now), 15%
/// known cards that are refused, 5% cards nobody holds.
fn plan(
    data: &PolicyData,
    snapshot: &Snapshot,
    reader: &str,
    count: usize,
    rng: &mut impl Rng,
) -> Vec<Planned> {
    let presence = Presence::new();
    let now = Utc::now();
    let outcome = |key: &CredentialKey| {
        let request = Request {
            reader_id: reader,
            credential: key,
            pin: None,
        };
        decide(snapshot, &presence, &request, now).map(|d| d.outcome)
    };
    let mut granted = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..(count * 40).min(20_000) {
        let Some(c) = data.credentials.choose(rng) else {
            break;
        };
        match outcome(&c.key) {
            Ok(Outcome::Grant { .. }) if granted.len() < count => granted.push(c.key.clone()),
            Ok(Outcome::Deny(_)) if refused.len() < count => refused.push(c.key.clone()),
            _ => {}
        }
        if granted.len() >= count && refused.len() >= count {
            break;
        }
    }
    (0..count)
        .map(|_| {
            let roll: f64 = rng.random();
            if roll < 0.8 && !granted.is_empty() {
                let key = granted.choose(rng).cloned();
                key.map(|k| Planned {
                    credential: wire(&k),
                    expect_grant: true,
                })
            } else if roll < 0.95 && !refused.is_empty() {
                let key = refused.choose(rng).cloned();
                key.map(|k| Planned {
                    credential: wire(&k),
                    expect_grant: false,
                })
            } else {
                None
            }
            .unwrap_or_else(|| Planned {
                credential: WireCredential::Card {
                    uid: format!("FE{:012X}", rng.random::<u64>() & 0xFFFF_FFFF_FFFF),
                },
                expect_grant: false,
            })
        })
        .collect()
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    granted: usize,
    denied: usize,
    pin_required: usize,
    errors: usize,
    unanswered: usize,
    unexpected: usize,
}

fn broker_address(config: &Config, explicit: Option<&str>) -> Result<(String, u16)> {
    if let Some(url) = explicit {
        let probe = crate::config::MqttConfig {
            url: url.to_owned(),
            ..Default::default()
        };
        return probe.external_address().map_err(anyhow::Error::msg);
    }
    match config.mqtt.broker {
        BrokerChoice::Embedded => {
            let addr: std::net::SocketAddr = config.mqtt.listen.parse()?;
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            Ok((host, addr.port()))
        }
        BrokerChoice::External => config.mqtt.external_address().map_err(anyhow::Error::msg),
        BrokerChoice::Off => {
            bail!("MQTT is off in this configuration: pass --broker mqtt://HOST:PORT")
        }
    }
}

/// Runs the simulation and prints the report; fails if no reader could connect.
pub async fn run(
    config: &Config,
    db: &crate::store::DbPool,
    options: SimulateOptions,
) -> Result<()> {
    let loaded = {
        let mut conn = db.get()?;
        load_policy(&mut conn)?
    };
    let snapshot = Snapshot::compile(&loaded.data, Utc::now())?;
    let mqtt_readers: Vec<ReaderWire> = loaded
        .readers
        .iter()
        .filter(|r| r.protocol == "mqtt")
        .take(options.readers)
        .cloned()
        .collect();
    if mqtt_readers.is_empty() {
        bail!("the site has no MQTT readers: import a site first (gatehouse import FILE)");
    }
    let (host, port) = broker_address(config, options.broker.as_deref())?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let per_reader = options.swipes.div_ceil(mqtt_readers.len());
    let interval = Duration::from_secs_f64(mqtt_readers.len() as f64 / options.rate.max(0.001));
    eprintln!(
        "simulating {} readers, {} swipes at {:.0}/s against mqtt://{host}:{port}",
        mqtt_readers.len(),
        per_reader * mqtt_readers.len(),
        options.rate
    );
    let first_seq = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(1) * 1000;
    let mut tasks = Vec::new();
    for r in mqtt_readers {
        let planned = plan(&loaded.data, &snapshot, &r.reader_id, per_reader, &mut rng);
        let settings = SimSettings {
            host: host.clone(),
            port,
            reader_id: r.reader_id.clone(),
            secret: r.secret.clone(),
            username: Some(r.reader_id.clone()),
            password: Some(r.secret.clone()),
            topic_root: config.mqtt.topic_root.clone(),
            sign_events: options.sign_events || r.require_signed_events,
        };
        let start_delay = Duration::from_secs_f64(rng.random::<f64>() * interval.as_secs_f64());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut reader = match SimReader::connect(settings, first_seq).await {
                Ok(reader) => reader,
                Err(e) => {
                    eprintln!("reader {}: {e}", r.reader_id);
                    tally.unanswered = planned.len();
                    return tally;
                }
            };
            tokio::time::sleep(start_delay).await;
            let mut tick = tokio::time::interval(interval);
            for swipe in planned {
                tick.tick().await;
                let started = Instant::now();
                match reader
                    .swipe(swipe.credential, None, Duration::from_secs(5))
                    .await
                {
                    Ok((_, command)) => {
                        tally.latencies.push(started.elapsed());
                        let granted = matches!(command, Command::Grant { .. });
                        match command {
                            Command::Grant { .. } => tally.granted += 1,
                            Command::Deny { .. } => tally.denied += 1,
                            Command::PinRequired { .. } => tally.pin_required += 1,
                            _ => tally.errors += 1,
                        }
                        if granted != swipe.expect_grant {
                            tally.unexpected += 1;
                        }
                    }
                    Err(_) => tally.unanswered += 1,
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    let mut done = 0;
    for task in tasks {
        let t = task.await.context("a simulated reader failed")?;
        total.latencies.extend(t.latencies);
        total.granted += t.granted;
        total.denied += t.denied;
        total.pin_required += t.pin_required;
        total.errors += t.errors;
        total.unanswered += t.unanswered;
        total.unexpected += t.unexpected;
        done += 1;
        eprint!("\r  {done} readers finished");
    }
    eprintln!();
    print!("{}", report(&mut total));
    if total.latencies.is_empty() {
        bail!("no swipe was answered: is the appliance running, and are these its readers?");
    }
    Ok(())
}

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
    format!(
        "answered   {}\n  granted        {}\n  denied         {}\n  pin required   {}\n  errors         {}\nunanswered {}\nnot as planned {} (the policy or the clock moved since planning)\n\
         swipe → answer latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        t.latencies.len(),
        t.granted,
        t.denied,
        t.pin_required,
        t.errors,
        t.unanswered,
        t.unexpected,
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(pick(0.99)),
        ms(pick(1.0)),
    )
}
