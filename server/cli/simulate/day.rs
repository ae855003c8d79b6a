//! `gatehouse simulate --day DATE`: a working day of the site, sped up, against a private
//! appliance on a copy of the database whose clock runs as fast: people arrive at their
//! own doors, go to lunch and back, visit other doors, leave by the exit button; a few try
//! doors they may not open, come back late at night, or hold cards nobody issued.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use diesel::RunQueryDsl;
use gatehouse_drivers::message::WireCredential;
use gatehouse_drivers::sim::{ScaledClock, SimPresence};
use gatehouse_drivers::sim_modbus::SimDevice;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::{
    Answer, BrokerTarget, Expected, Player, Tally, fresh_first_seq, report, start_player, wire,
};
use crate::clock::Clock;
use crate::config::{BrokerChoice, Config};
use crate::policy::{CredentialStatus, Outcome, Presence, Request, Snapshot, decide};
use crate::store::load::{ReaderWire, load_policy};

/// What `--day` was asked for.
#[derive(Debug, Clone)]
pub struct DayOptions {
    pub date: NaiveDate,
    /// The part of the day to play, on the site's clock.
    pub from: NaiveTime,
    pub to: NaiveTime,
    /// How many times faster than real time.
    pub speed: u32,
    /// How many of the site's card holders come in (at most).
    pub people: usize,
    pub seed: u64,
    /// Where to keep the private database afterwards, to look at the day in the console.
    pub keep: Option<PathBuf>,
}

/// One thing that happens at a reader.
#[derive(Debug, Clone)]
enum Act {
    Swipe {
        credential: WireCredential,
        /// What a reader should hear; `None` within a moment of a schedule's edge, where
        /// the answer depends on how long the swipe took to arrive.
        expected: Option<Expected>,
    },
    /// Someone leaves by the exit button: the door opens and closes.
    Exit,
}

#[derive(Debug, Clone)]
struct Planned {
    at: DateTime<Utc>,
    /// Index into the played readers.
    reader: usize,
    act: Act,
    /// A credential to decide the swipe with (what the appliance will look up).
    key: Option<crate::policy::CredentialKey>,
}

/// How long a swipe may take to be decided, on the simulated clock, before the plan calls
/// its outcome uncertain: the network's few milliseconds, multiplied by the speed.
fn edge_margin(speed: u32) -> TimeDelta {
    TimeDelta::milliseconds(i64::from(speed) * 50).max(TimeDelta::seconds(1))
}

fn at_local(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    date.and_time(time)
        .and_local_timezone(tz)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// A time of the day, `minutes` after `hh:mm`.
fn local(tz: Tz, date: NaiveDate, hh: u32, mm: u32, minutes: f64) -> Option<DateTime<Utc>> {
    let base = at_local(tz, date, NaiveTime::from_hms_opt(hh, mm, 0)?)?;
    Some(base + TimeDelta::seconds((minutes * 60.0) as i64))
}

/// The day's plan: each chosen card holder's comings and goings at the site's readers.
fn plan_day(
    snapshot: &Snapshot,
    data: &crate::policy::PolicyData,
    readers: &[ReaderWire],
    tz: Tz,
    options: &DayOptions,
    rng: &mut impl Rng,
) -> Vec<Planned> {
    let date = options.date;
    let midday = local(tz, date, 10, 0, 0.0).unwrap_or_else(Utc::now);
    let presence = Presence::new();
    let direction = |reader_id: &str| {
        data.readers
            .iter()
            .find(|r| r.reader_id == reader_id)
            .map(|r| r.direction)
    };
    // Card holders with an active card: their first one is what they carry.
    let mut carriers: BTreeMap<i64, &crate::policy::CredentialKey> = BTreeMap::new();
    for c in &data.credentials {
        if c.status == CredentialStatus::Active {
            carriers.entry(c.person_id).or_insert(&c.key);
        }
    }
    let mut chosen: Vec<(i64, &crate::policy::CredentialKey)> = carriers.into_iter().collect();
    chosen = chosen
        .choose_multiple(rng, options.people)
        .cloned()
        .collect();
    let mut plan = Vec::new();
    let push = |plan: &mut Vec<Planned>,
                at: Option<DateTime<Utc>>,
                reader: usize,
                key: Option<&crate::policy::CredentialKey>,
                act: Act| {
        // The Modbus register map carries a card's UID, not a Wiegand number: such a
        // card is not presented at a Modbus reader.
        let unreadable = readers[reader].protocol == "modbus"
            && matches!(key, Some(crate::policy::CredentialKey::Wiegand { .. }));
        if let (Some(at), false) = (at, unreadable) {
            plan.push(Planned {
                at,
                reader,
                act,
                key: key.cloned(),
            });
        }
    };
    // Most people work on weekdays; on a weekend or one of the site's holidays only a few
    // come in, whatever their access would allow.
    let weekend = matches!(date.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
    let holiday = data.holidays.iter().any(|h| h.date == date);
    let attendance = if weekend || holiday { 0.05 } else { 0.92 };
    for (_, key) in chosen {
        if rng.random::<f64>() >= attendance {
            continue;
        }
        // The readers this card opens at ten in the morning: where this person works.
        let open: Vec<usize> = readers
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let request = Request {
                    reader_id: &r.reader_id,
                    credential: key,
                    pin: None,
                };
                matches!(
                    decide(snapshot, &presence, &request, midday).map(|d| d.outcome),
                    Ok(Outcome::Grant { .. } | Outcome::PinRequired)
                )
            })
            .map(|(i, _)| i)
            .collect();
        let entrances: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| direction(&readers[i].reader_id) != Some(crate::policy::Direction::Out))
            .collect();
        let swipe = |credential: &crate::policy::CredentialKey| Act::Swipe {
            credential: wire(credential),
            expected: None,
        };
        let Some(&home) = entrances.choose(rng).or(open.choose(rng)) else {
            // No door of theirs is open today: they try one anyway.
            {
                let reader = rng.random_range(0..readers.len());
                let at = local(tz, date, 9, 0, rng.random_range(0.0..480.0));
                push(&mut plan, at, reader, Some(key), swipe(key));
            }
            continue;
        };
        // Arrivals from 07:00, most by 09:30.
        let arrival = rng.random_range(0.0..150.0);
        push(
            &mut plan,
            local(tz, date, 7, 0, arrival),
            home,
            Some(key),
            swipe(key),
        );
        if rng.random::<f64>() < 0.35 {
            let out = rng.random_range(0.0..60.0);
            let back = out + rng.random_range(20.0..50.0);
            push(
                &mut plan,
                local(tz, date, 12, 0, out),
                home,
                None,
                Act::Exit,
            );
            push(
                &mut plan,
                local(tz, date, 12, 0, back),
                home,
                Some(key),
                swipe(key),
            );
        }
        if rng.random::<f64>() < 0.25 {
            // A visit elsewhere: often a door of their own, sometimes one they may not open.
            let reader = rng.random_range(0..readers.len());
            let at = local(tz, date, 10, 0, rng.random_range(0.0..360.0));
            push(&mut plan, at, reader, Some(key), swipe(key));
        }
        push(
            &mut plan,
            local(tz, date, 16, 0, rng.random_range(0.0..150.0)),
            home,
            None,
            Act::Exit,
        );
        if rng.random::<f64>() < 0.03 {
            // Back late for something forgotten: outside most schedules.
            let at = local(tz, date, 21, 0, rng.random_range(0.0..120.0));
            push(&mut plan, at, home, Some(key), swipe(key));
        }
    }
    // Cards nobody issued, one for every fifty people.
    for _ in 0..(options.people / 50).max(1) {
        let stranger = WireCredential::Card {
            uid: format!("FE{:012X}", rng.random::<u64>() & 0xFFFF_FFFF_FFFF),
        };
        let at = local(tz, date, 8, 0, rng.random_range(0.0..600.0));
        let reader = rng.random_range(0..readers.len());
        push(
            &mut plan,
            at,
            reader,
            None,
            Act::Swipe {
                credential: stranger,
                expected: Some(Expected::Deny),
            },
        );
    }
    let (from, to) = (
        at_local(tz, date, options.from),
        at_local(tz, date, options.to),
    );
    plan.retain(|p| from.is_none_or(|f| p.at >= f) && to.is_none_or(|t| p.at < t));
    plan.sort_by_key(|p| p.at);
    expect(snapshot, readers, &mut plan, options.speed);
    plan
}

/// What each swipe should hear, deciding them in the order they will happen with the
/// anti-passback state the appliance will have. Swipes whose answer differs a moment
/// later (a schedule opening or closing as they arrive) are left without an expectation.
fn expect(snapshot: &Snapshot, readers: &[ReaderWire], plan: &mut [Planned], speed: u32) {
    let mut presence = Presence::new();
    let margin = edge_margin(speed);
    for p in plan.iter_mut() {
        let (Some(key), Act::Swipe { expected, .. }) = (&p.key, &mut p.act) else {
            continue;
        };
        let request = Request {
            reader_id: &readers[p.reader].reader_id,
            credential: key,
            pin: None,
        };
        let now = decide(snapshot, &presence, &request, p.at);
        let later = decide(snapshot, &presence, &request, p.at + margin);
        let outcome = |d: &Result<crate::policy::Decision, crate::policy::DecideError>| match d {
            Ok(d) => match d.outcome {
                Outcome::Grant { .. } => Some(Expected::Grant),
                Outcome::Deny(_) => Some(Expected::Deny),
                Outcome::PinRequired => Some(Expected::PinRequired),
            },
            Err(_) => None,
        };
        let (a, b) = (outcome(&now), outcome(&later));
        *expected = if a == b { a } else { None };
        if let Ok(decision) = &now
            && let Some(passage) = decision.passage(p.at)
        {
            let _ = presence.pass(passage);
        }
    }
}

/// "8 min 30 s".
fn words(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// A folder of the private appliance's, removed when the day is over.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-day-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot make {} for the private appliance", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A consistent copy of a SQLite database (`VACUUM INTO`), taken while the appliance may
/// be running on it.
fn copy_database(config: &Config, to: &Path) -> Result<()> {
    let url = config.database_url();
    if !url.starts_with("sqlite://") {
        bail!(
            "--day plays on a private copy of a SQLite database; this appliance uses {}. \
             Export the site (gatehouse export) and import it into a SQLite file to play a day",
            url.split("://").next().unwrap_or("another database")
        );
    }
    let pool = crate::app::database::open_database(config)?;
    let mut conn = pool.get()?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<diesel::sql_types::Text, _>(to.display().to_string())
        .execute(&mut *conn)
        .with_context(|| format!("cannot copy the database to {}", to.display()))?;
    Ok(())
}

/// Plays the day and prints what happened; fails when a swipe went unanswered or heard
/// something else than planned.
pub async fn run(config: &Config, options: DayOptions) -> Result<()> {
    if options.from >= options.to {
        bail!("--from must be before --to");
    }
    if let Some(keep) = options.keep.as_ref().filter(|k| k.exists()) {
        bail!("{} exists already: --keep makes a new file", keep.display());
    }
    let work = Scratch::new()?;
    let db_path = work.0.join("day.db");
    copy_database(config, &db_path)?;
    let private = Config {
        data_dir: work.0.clone(),
        database: crate::config::DatabaseConfig {
            url: format!("sqlite://{}", db_path.display()),
            ..config.database.clone()
        },
        http: crate::config::HttpConfig {
            listen: "127.0.0.1:0".to_owned(),
            ..config.http.clone()
        },
        mqtt: crate::config::MqttConfig {
            broker: BrokerChoice::Embedded,
            listen: "127.0.0.1:0".to_owned(),
            topic_root: config.mqtt.topic_root.clone(),
            ..Default::default()
        },
        // Modbus devices are played by simulated devices on this machine, which the
        // private appliance polls in their place (`stand_in_devices`).
        modbus: crate::config::ModbusConfig {
            enabled: true,
            ..config.modbus.clone()
        },
        // The stand-in devices listen on loopback, whatever the installation allows.
        readers: crate::config::ReadersConfig {
            allowed_networks: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            ..config.readers.clone()
        },
        events: crate::config::EventsConfig { retention_days: 0 },
        jobs: config.jobs.clone(),
        entitlement_review: config.entitlement_review.clone(),
        risk: config.risk.clone(),
    };

    let (loaded, mut devices) = {
        let pool = crate::app::database::open_database(&private)?;
        let mut conn = pool.get()?;
        let registered = load_policy(&mut conn)?.readers;
        let devices = stand_in_devices(&mut conn, &registered).await?;
        (load_policy(&mut conn)?, devices)
    };
    let readers: Vec<ReaderWire> = loaded
        .readers
        .iter()
        .filter(|r| r.protocol == "mqtt" || r.protocol == "modbus")
        .cloned()
        .collect();
    if readers.is_empty() {
        bail!("the site has no readers to play a day with (register readers, or import a site)");
    }
    let tz: Tz = loaded
        .data
        .sites
        .first()
        .and_then(|s| s.timezone.parse().ok())
        .unwrap_or(Tz::UTC);
    let Some(day_start) = at_local(tz, options.date, options.from) else {
        bail!("{} {} does not exist in {tz}", options.date, options.from);
    };
    let snapshot = Snapshot::compile(&loaded.data, day_start)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let plan = plan_day(&snapshot, &loaded.data, &readers, tz, &options, &mut rng);

    // The appliance starts a little before the first event on the day's clock, so that
    // the readers are connected when the day begins.
    let lead = TimeDelta::seconds(i64::from(options.speed.max(1)) * 2);
    let clock = ScaledClock::starting_at(day_start - lead, options.speed);
    let running = crate::app::serve::start(private.clone(), Clock::Scaled(clock))
        .await
        .context("cannot start the private appliance")?;
    let handle = running.server.handle();
    let server = tokio::spawn(running.server);
    let Some(broker) = running.mqtt_broker else {
        bail!("the private appliance's broker did not start");
    };
    let target = BrokerTarget {
        host: broker.ip().to_string(),
        port: broker.port(),
        tls: None,
    };
    let length = at_local(tz, options.date, options.to).unwrap_or(day_start) - day_start;
    eprintln!(
        "a simulated day: {} {}–{} in {tz}, {}× faster ({} of wall time); {} events planned \
         at {} readers ({} over Modbus)",
        options.date.format("%A %Y-%m-%d"),
        options.from.format("%H:%M"),
        options.to.format("%H:%M"),
        options.speed,
        words(clock.wall_span(length.to_std().unwrap_or_default())),
        plan.len(),
        readers.len(),
        devices.len()
    );

    let first_seq = fresh_first_seq();
    let mut by_reader: Vec<Vec<Planned>> = vec![Vec::new(); readers.len()];
    for p in plan {
        by_reader[p.reader].push(p);
    }
    let mut tasks = Vec::new();
    for (i, acts) in by_reader.into_iter().enumerate() {
        if acts.is_empty() {
            continue;
        }
        let mut player = match devices.remove(&readers[i].reader_id) {
            Some(device) => {
                super::wait_until_polled(&private, &device).await?;
                Player::Modbus {
                    device,
                    hold: super::modbus_hold(&private),
                }
            }
            None => start_player(
                &private,
                &readers[i],
                Some(&target),
                false,
                SimPresence::Announced,
                first_seq,
            )
            .await
            .with_context(|| format!("reader {}", readers[i].reader_id))?,
        };
        if let Player::Mqtt(reader) = &mut player {
            reader.set_clock(clock);
        }
        tasks.push(tokio::spawn(play_day(player, acts, clock, tz)));
    }
    let mut total = Tally::default();
    let mut hours: BTreeMap<u32, (usize, usize, usize)> = BTreeMap::new();
    for task in tasks {
        let (tally, by_hour) = task.await.context("a simulated reader failed")?;
        total.add(tally);
        for (hour, (g, d, e)) in by_hour {
            let h = hours.entry(hour).or_default();
            h.0 += g;
            h.1 += d;
            h.2 += e;
        }
    }
    handle.stop(true).await;
    let _ = server.await;

    println!("hour  granted  denied  exits");
    for (hour, (g, d, e)) in &hours {
        println!("{hour:02}:00 {g:>8} {d:>7} {e:>6}");
    }
    print!("{}", report(&mut total));
    if let Some(keep) = &options.keep {
        // Through SQLite, not a file copy: the newest events may still be in the WAL.
        copy_database(&private, keep)?;
        println!(
            "kept the day's database at {} (GATEHOUSE_DATABASE_URL=sqlite://{} gatehouse serve \
             shows it in the console)",
            keep.display(),
            keep.display()
        );
    }
    if total.unanswered > 0 || total.unexpected > 0 {
        bail!(
            "{} swipes unanswered and {} answered otherwise than planned",
            total.unanswered,
            total.unexpected
        );
    }
    if total.latencies.is_empty() {
        println!("no swipe in this part of the day (widen --from/--to, or add --people)");
    }
    Ok(())
}

/// A simulated device for each Modbus reader, on a free loopback port, and the private
/// copy's reader moved to it: the appliance polls the stand-in instead of the device at
/// its real address (which may be on a network this machine is not on, or in service).
async fn stand_in_devices(
    conn: &mut crate::store::DbConnection,
    readers: &[ReaderWire],
) -> Result<BTreeMap<String, SimDevice>> {
    use crate::store::schema::readers as table;
    use diesel::prelude::*;
    let mut devices = BTreeMap::new();
    for reader in readers.iter().filter(|r| r.protocol == "modbus") {
        let unit = u8::try_from(reader.modbus_unit.unwrap_or(1)).unwrap_or(1);
        let device = SimDevice::start(([127, 0, 0, 1], 0).into(), unit)
            .await
            .context("cannot listen on loopback for a simulated Modbus device")?;
        diesel::update(table::table.filter(table::reader_id.eq(&reader.reader_id)))
            .set((
                table::modbus_host.eq("127.0.0.1"),
                table::modbus_port.eq(i32::from(device.addr().port())),
            ))
            .execute(conn)
            .context("cannot point the private copy at the simulated Modbus devices")?;
        devices.insert(reader.reader_id.clone(), device);
    }
    Ok(devices)
}

/// Plays one reader's part of the day on the day's clock; counts by hour of the site's
/// clock: granted, denied, exits.
async fn play_day(
    mut player: Player,
    acts: Vec<Planned>,
    clock: ScaledClock,
    tz: Tz,
) -> (Tally, BTreeMap<u32, (usize, usize, usize)>) {
    let mut tally = Tally::default();
    let mut hours: BTreeMap<u32, (usize, usize, usize)> = BTreeMap::new();
    // A door stays open a few seconds of the day's time.
    let dwell = clock.wall_span(Duration::from_secs(4));
    for planned in acts {
        tokio::time::sleep(clock.wall_time_until(planned.at)).await;
        let hour = planned.at.with_timezone(&tz).hour();
        match &planned.act {
            Act::Exit => {
                if player.rex().await {
                    tally.exits += 1;
                    tally.door_events += 1;
                    hours.entry(hour).or_default().2 += 1;
                    if player.door(true).await {
                        tokio::time::sleep(dwell).await;
                        if player.door(false).await {
                            tally.door_events += 2;
                        }
                    }
                }
            }
            Act::Swipe {
                credential,
                expected,
            } => {
                let answer = player
                    .swipe_and_pass(credential, expected.as_ref(), dwell, &mut tally)
                    .await;
                match answer {
                    Some(Answer::Grant) => hours.entry(hour).or_default().0 += 1,
                    Some(Answer::Deny) => hours.entry(hour).or_default().1 += 1,
                    _ => {}
                }
            }
        }
    }
    player.finish().await;
    (tally, hours)
}
