//! Swipe → command over MQTT on loopback at building scale: 1,000 simulated readers (one per
//! door, all connected throughout) swiping 1,000 times a second in total, every swipe
//! decided, recorded durably (SQLite, WAL, `synchronous = FULL`) and answered with a signed
//! command that the reader verifies. Run through the embedded broker and through a private
//! Mosquitto started with the shipped options, each beside the floor measured in the same
//! run on the same broker: one serial loop per sample of what a swipe cannot do without (a
//! reader publishes QoS 1 on its events topic, a client on the appliance's side publishes
//! it back QoS 1 on the reader's commands topic, then one durable commit of one event
//! row), whose percentiles are the floor's. Also printed, to show where the time goes: the
//! broker's round trip under the load, the event log alone at the same rate, and each swipe
//! split at the moment the appliance began handling it (from the time it recorded).
//!
//! cargo run --release -p gatehouse-bench --bin mqtt-bench -- --readers 1000 --rate 1000 --seconds 20
//!
//! Readers connect in waves of `--connect-batch` (all at once by default) before the load,
//! after `--settle` seconds. (Before commit "MQTT no longer stalls when a thousand readers
//! come online at once", all at once stalled the appliance's MQTT loop for good.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use diesel::prelude::*;
use gatehouse::clock::Clock;
use gatehouse::config::{BrokerChoice, Config, MqttConfig};
use gatehouse::entities::ChangeContext;
use gatehouse::store::event_log::{self, BatchPolicy, EventColumns, EventLog};
use gatehouse::store::schema::events;
use gatehouse_bench::appliance::{recorded_swipe, runtime, wait_online};
use gatehouse_bench::measure::{
    Stats, fmt_duration, load_average, machine, process_cpu, ratio, thread_cpu,
};
use gatehouse_drivers::message::{Command, WireCredential};
use gatehouse_drivers::sim::{SimReader, SimSettings};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

#[derive(Parser)]
struct Args {
    /// Simulated MQTT readers, one per door, all connected at once.
    #[arg(long, default_value_t = 1000)]
    readers: usize,
    /// Swipes per second across all readers: each reader swipes every readers/rate
    /// seconds, the readers staggered evenly over that period.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of the same load before the window, not measured.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Serial floor loops through each broker (publish, echo, durable commit), one at a
    /// time.
    #[arg(long, default_value_t = 2000)]
    floor_samples: usize,
    /// Pause after each floor loop, in milliseconds (paced, not flooded).
    #[arg(long, default_value_t = 3)]
    floor_pace_ms: u64,
    /// Which brokers to run.
    #[arg(long, value_enum, default_value_t = Brokers::Both)]
    brokers: Brokers,
    /// The Mosquitto binary (default: the first of /usr/sbin, /usr/bin, /usr/local/sbin).
    #[arg(long)]
    mosquitto: Option<PathBuf>,
    /// Readers connected at a time before the load; each wave is seen online by the
    /// appliance before the next connects.
    #[arg(long, default_value_t = 1000)]
    connect_batch: usize,
    /// Score every swipe for risk as the appliance does by default (`[risk] enabled`);
    /// `--risk off` measures the appliance without the scorer, for the ratio of the two.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    risk: Switch,
    /// Seconds between the appliance's start and the first reader's connection.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// Worker threads of the simulated readers' runtime.
    #[arg(long, default_value_t = 1)]
    reader_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Brokers {
    Both,
    Embedded,
    Mosquitto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Embedded,
    Mosquitto,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded broker (rumqttd, in the appliance)",
            Kind::Mosquitto => "Mosquitto (private, shipped options)",
        }
    }

    /// The label in the summary tables.
    fn short(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded",
            Kind::Mosquitto => "Mosquitto",
        }
    }
}

/// Thread names. Everything that is neither the simulated readers nor the echo clients is
/// the appliance: its runtime, its blocking pool, its HTTP workers, the r2d2 pool and, in
/// the embedded run, the broker.
const READERS: &str = "readers";
const ECHO: &str = "echo";
const APPLIANCE: &str = "appliance";
/// The embedded broker's threads: broker.rs names the one that starts it "mqtt-broker";
/// rumqttd names its router "router-0" and its listener thread after the server
/// ("gatehouse" in broker.rs), which serves every connection.
const EMBEDDED_BROKER: [&str; 3] = ["mqtt-broker", "router-", "gatehouse"];

/// The floor's echo travels the way a swipe does: a reader of its own (registered in the
/// site, its door apart) publishes on its events topic, and a client on the appliance's
/// side, logged in as the appliance is, publishes it back on that reader's commands topic.
/// One such reader for the floor with the readers idle, one for the echo under the load.
const ECHO_IDLE: &str = "echo-idle";
const ECHO_LOADED: &str = "echo-loaded";
const ECHO_SECRET: &str = "bench-echo-secret-0123456789";
const TOPIC_ROOT: &str = "gatehouse/v1";

/// How long a reader waits for the answer to a swipe before counting it unanswered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// People on the site, each with one card, entitled everywhere at all times.
const PEOPLE: usize = 1000;

const SHIPPED_CONF: &str = include_str!("../../../packaging/mosquitto/gatehouse.conf");
const SHIPPED_ACL: &str = include_str!("../../../packaging/mosquitto/gatehouse.acl");
/// The appliance's username in the shipped ACL.
const APPLIANCE_USER: &str = "gatehouse-appliance";

fn reader_id(i: usize) -> String {
    format!("r-{i}")
}

fn secret(i: usize) -> String {
    format!("bench-reader-secret-{i:06}")
}

fn card(p: usize) -> String {
    format!("0C{p:08X}")
}

/// The site: one door and one MQTT reader per simulated reader, a door for the echo
/// clients, and people entitled everywhere ("Always"), so that every swipe is granted.
fn site_file(readers: usize, people: usize) -> String {
    let mut s = String::from(
        "version = 1\n\n[[sites]]\nname = \"Bench\"\ntimezone = \"UTC\"\n\n\
         [[schedules]]\nname = \"Always\"\nholidays = \"ignore\"\nwindows = [{ cron = \"0 0 * * *\", duration_min = 1440 }]\n\n\
         [[zones]]\nsite = \"Bench\"\nname = \"Floor\"\n\n\
         [[levels]]\nname = \"Everyone\"\nitems = [{ site = \"Bench\", zone = \"Floor\", schedule = \"Always\" }]\n\n",
    );
    for i in 0..readers {
        s.push_str(&format!(
            "[[doors]]\nname = \"Door {i}\"\nsite = \"Bench\"\nzone = \"Floor\"\n\n\
             [[readers]]\nreader_id = \"{}\"\ndoor = \"Door {i}\"\nprotocol = \"mqtt\"\nsecret = \"{}\"\n\n",
            reader_id(i),
            secret(i)
        ));
    }
    s.push_str("[[doors]]\nname = \"Echo\"\nsite = \"Bench\"\nzone = \"Floor\"\n\n");
    for id in [ECHO_IDLE, ECHO_LOADED] {
        s.push_str(&format!(
            "[[readers]]\nreader_id = \"{id}\"\ndoor = \"Echo\"\nprotocol = \"mqtt\"\nsecret = \"{ECHO_SECRET}\"\n\n"
        ));
    }
    for p in 0..people {
        s.push_str(&format!(
            "[[people]]\nemployee_id = \"E{p}\"\nname = \"Person {p}\"\n\n\
             [[credentials]]\nemployee_id = \"E{p}\"\ncard_uid = \"{}\"\n\n\
             [[entitlements]]\nemployee_id = \"E{p}\"\nlevel = \"Everyone\"\n\n",
            card(p)
        ));
    }
    s
}

/// 1,000 readers connected to an in-process broker hold four descriptors each (every
/// connection's both ends, the reader's to the relay and the relay's to rumqttd, live in
/// this process), more than a default soft limit of 1,024.
/// Raises the soft limit up to the hard one; fails, saying what to do, if that is short.
fn raise_fd_limit(needed: u64) -> Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // None is "unlimited".
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= needed {
        return Ok(current);
    }
    let hard = limit.maximum.unwrap_or(u64::MAX);
    if hard < needed {
        bail!(
            "{needed} file descriptors are needed but the hard limit is {hard}: raise it \
             (ulimit -Hn {needed} as root) or run fewer --readers"
        );
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .context("raising the file descriptor limit")?;
    Ok(needed)
}

/// A private Mosquitto, killed when dropped.
struct Mosquitto {
    child: Child,
}

impl Mosquitto {
    fn find(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return p.exists().then(|| p.to_path_buf());
        }
        [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    }

    fn start(binary: &Path, config: &Path, ports: &[u16]) -> Result<Mosquitto> {
        let child = Process::new(binary)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mosquitto = Mosquitto { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if Instant::now() > deadline {
                    bail!("mosquitto did not listen on port {port} within 10 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(mosquitto)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// packaging/mosquitto/gatehouse.conf as shipped, but for what a benchmark on a private
/// instance must change: the listeners (the readers' and the appliance's, on free loopback
/// ports), the password file (there is none: clients are let in without a password, but
/// still give their usernames, so the shipped ACL's `%u` patterns apply to every reader
/// exactly as in production, and readers' client ids are their usernames), the ACL's path,
/// the persistence folder, and no cap on connections (1,000 readers).
fn mosquitto_conf(ports: MosquittoPorts, dir: &Path) -> String {
    let mut out = String::from("# packaging/mosquitto/gatehouse.conf, rewritten by mqtt-bench\n");
    for line in SHIPPED_CONF.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["listener", "1883", ..] => {
                out.push_str(&format!("listener {} 127.0.0.1\n", ports.readers))
            }
            ["listener", "1884", ..] => {
                out.push_str(&format!("listener {} 127.0.0.1\n", ports.appliance))
            }
            ["allow_anonymous", ..] => out.push_str("allow_anonymous true\n"),
            ["password_file", ..] => out.push_str("# password_file: none in the benchmark\n"),
            ["acl_file", ..] => out.push_str(&format!(
                "acl_file {}\n",
                dir.join("gatehouse.acl").display()
            )),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(&format!(
        "persistence_location {}/\nmax_connections -1\n",
        dir.display()
    ));
    out
}

/// The private Mosquitto's two listeners, as shipped: readers, and the appliance.
#[derive(Debug, Clone, Copy)]
struct MosquittoPorts {
    readers: u16,
    appliance: u16,
}

/// What an echo client does with a message on the topic it listens to.
enum OnMessage {
    /// Publish it again, QoS 1, on this topic: the broker's half of the round trip.
    Reply(String),
    /// Hand it to whoever measures.
    Forward(mpsc::UnboundedSender<Vec<u8>>),
}

/// Where and as whom an echo client logs in.
#[derive(Debug, Clone)]
struct Login {
    host: String,
    port: u16,
    username: String,
    password: String,
}

/// An MQTT client like the readers' (rumqttc, TCP_NODELAY, QoS 1), subscribed to `listen`.
/// Returns once the broker acknowledged the subscription.
async fn echo_client(
    login: &Login,
    client_id: String,
    listen: String,
    on_message: OnMessage,
) -> Result<(AsyncClient, tokio::task::AbortHandle)> {
    let mut options = MqttOptions::new(client_id, &login.host, login.port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_credentials(&login.username, &login.password);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    eventloop.set_network_options(gatehouse_drivers::mqtt::low_latency());
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let me = client.clone();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = me.try_subscribe(listen.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == listen => match &on_message {
                    OnMessage::Reply(topic) => {
                        let _ = me.try_publish(
                            topic.clone(),
                            QoS::AtLeastOnce,
                            false,
                            p.payload.to_vec(),
                        );
                    }
                    OnMessage::Forward(tx) => {
                        let _ = tx.send(p.payload.to_vec());
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(e.to_string()));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    let handle = task.abort_handle();
    let user = &login.username;
    match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
        Ok(Ok(Ok(()))) => Ok((client, handle)),
        Ok(Ok(Err(e))) => {
            handle.abort();
            bail!("echo client {user}: {e}")
        }
        _ => {
            handle.abort();
            bail!("echo client {user}: not subscribed within 10 s")
        }
    }
}

/// An echo along a swipe's path: `ping` is a reader publishing on its events topic, the
/// appliance-side client sends each message back on that reader's commands topic.
struct Echo {
    ping: AsyncClient,
    events_topic: String,
    replies: mpsc::UnboundedReceiver<Vec<u8>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One floor: each sample is one serial loop (the echo, then one durable commit), timed as
/// a whole; its two parts are kept to show where the time goes.
struct Floor {
    echo: Stats,
    commit: Stats,
    total: Stats,
    lost: usize,
}

impl Echo {
    /// `readers`: where readers connect (the reader logs in as `reader_id`); `appliance`:
    /// where and as whom the appliance connects.
    async fn connect(readers: &Login, appliance: &Login, reader_id: &str) -> Result<Echo> {
        let events_topic = format!("{TOPIC_ROOT}/readers/{reader_id}/events");
        let commands_topic = format!("{TOPIC_ROOT}/readers/{reader_id}/commands");
        let (_pong, pong_task) = echo_client(
            appliance,
            format!("bench-echo-appliance-{reader_id}"),
            events_topic.clone(),
            OnMessage::Reply(commands_topic.clone()),
        )
        .await?;
        let (tx, replies) = mpsc::unbounded_channel();
        let reader = Login {
            username: reader_id.to_owned(),
            password: ECHO_SECRET.to_owned(),
            ..readers.clone()
        };
        let (ping, ping_task) = echo_client(
            &reader,
            format!("bench-echo-{reader_id}"),
            commands_topic,
            OnMessage::Forward(tx),
        )
        .await?;
        Ok(Echo {
            ping,
            events_topic,
            replies,
            tasks: vec![pong_task, ping_task],
        })
    }

    /// `samples` serial loops, one at a time with `pace` between them: publish, wait for
    /// the echo (timed as a swipe is, from just before the publish to the moment the
    /// waiting task has the reply), then `after_reply` (one durable commit for the floor;
    /// nothing for the echo under the load). A loop whose echo got no reply within 2 s
    /// is counted as lost.
    async fn round_trips(
        &mut self,
        samples: usize,
        pace: Duration,
        mut after_reply: impl FnMut(usize) -> Result<()>,
    ) -> Result<Floor> {
        let mut echoes = Vec::with_capacity(samples);
        let mut commits = Vec::with_capacity(samples);
        let mut totals = Vec::with_capacity(samples);
        let mut lost = 0;
        for i in 0..samples {
            // A heartbeat, which the appliance (subscribed to every reader's events) takes
            // in without a row or an answer; unique, so that a late echo is told apart.
            let payload = format!(
                r#"{{"type":"heartbeat","seq":{},"ts":"{}","uptime_s":0}}"#,
                i + 1,
                Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
            )
            .into_bytes();
            let started = Instant::now();
            self.ping.try_publish(
                self.events_topic.clone(),
                QoS::AtLeastOnce,
                false,
                payload.clone(),
            )?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            let replied = loop {
                match tokio::time::timeout_at(deadline, self.replies.recv()).await {
                    Ok(Some(reply)) if reply == payload => break true,
                    // A late reply to an earlier message, or something the appliance sent.
                    Ok(Some(_)) => {}
                    Ok(None) => bail!("the echo client's connection ended"),
                    Err(_) => break false,
                }
            };
            if replied {
                let echoed = started.elapsed();
                after_reply(i)?;
                let total = started.elapsed();
                echoes.push(echoed);
                commits.push(total - echoed);
                totals.push(total);
            } else {
                lost += 1;
            }
            tokio::time::sleep(pace).await;
        }
        Ok(Floor {
            echo: Stats::of(echoes),
            commit: Stats::of(commits),
            total: Stats::of(totals),
            lost,
        })
    }
}

/// A swipe event row as the appliance records one for a grant.
fn swipe_row(i: usize, t0: DateTime<Utc>) -> event_log::Event {
    let at = t0 + TimeDelta::milliseconds(i64::try_from(i).unwrap_or(0));
    let index = |n: usize| i64::try_from(n).unwrap_or(0) + 1;
    recorded_swipe(
        i,
        at,
        reader_id(i % 1000),
        index(i % 1000),
        index(i % PEOPLE),
        false,
    )
}

/// The floor's commit: one event row per transaction (`BEGIN IMMEDIATE`, as the appliance's
/// writes), each commit durable, on a fresh SQLite file opened as the appliance opens its
/// own (`store::open`: WAL, `synchronous = FULL`) on the same disk.
struct FloorCommits {
    conn: gatehouse::store::PooledDb,
    t0: DateTime<Utc>,
}

impl FloorCommits {
    fn open(dir: &Path) -> Result<FloorCommits> {
        let url = format!("sqlite://{}", dir.join("floor.db").display());
        let pool = gatehouse::store::open(&url, 1)?;
        let mut conn = pool.get()?;
        gatehouse::store::migrate(&mut conn)?;
        Ok(FloorCommits {
            conn,
            t0: Utc::now(),
        })
    }

    fn commit(&mut self, i: usize) -> Result<()> {
        let row = swipe_row(i, self.t0);
        let gatehouse::store::DbConnection::Sqlite(conn) = &mut *self.conn else {
            bail!("the floor is measured on SQLite");
        };
        conn.immediate_transaction(|conn| {
            diesel::insert_into(events::table)
                .values(EventColumns::of(&row))
                .execute(conn)
        })?;
        Ok(())
    }
}

/// Not part of the floor, but where the time goes: the appliance's event log alone
/// (`EventLog::append`, group commit with its default batching) on a fresh file, fed
/// appends at the load's rate (each in a task of its own, as the hub's are) for a few
/// seconds, each timed to durable.
fn event_log_alone(dir: &Path, rate: f64, seconds: u64) -> Result<Stats> {
    let url = format!("sqlite://{}", dir.join("log-alone.db").display());
    let pool = gatehouse::store::open(&url, 4)?;
    {
        let mut conn = pool.get()?;
        gatehouse::store::migrate(&mut conn)?;
    }
    let rt = runtime("log-alone", 2)?;
    rt.block_on(async move {
        let (log, writer) = EventLog::new(pool, BatchPolicy::default());
        tokio::spawn(writer.run());
        let count = (rate * seconds as f64) as usize;
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let start = tokio::time::Instant::now();
        let t0 = Utc::now();
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
            let log = log.clone();
            let row = swipe_row(i, t0);
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                log.append(row).await.map(|_| started.elapsed())
            }));
        }
        let mut times = Vec::with_capacity(count);
        for task in tasks {
            times.push(task.await??);
        }
        Ok(Stats::of(times))
    })
}

/// What one reader saw during the load.
#[derive(Default)]
struct Played {
    /// Swipes scheduled inside the window and granted.
    granted: Vec<Timed>,
    /// Swipes scheduled inside the window.
    in_window: usize,
    unanswered: usize,
    /// Answered, but not with a grant (every card is entitled everywhere).
    not_granted: usize,
}

/// One granted swipe: which, when it was sent, and how long until the reader had the
/// verified grant.
struct Timed {
    reader: usize,
    seq: u64,
    sent_at: DateTime<Utc>,
    latency: Duration,
}

/// Swipes at `first`, then every `period`, until `end`; measures those scheduled from
/// `window_start` on. Latency runs from the moment the swipe is sent (a swipe sent late
/// because the previous one took longer than `period` is timed from when it was sent).
async fn play(
    mut reader: SimReader,
    index: usize,
    first: tokio::time::Instant,
    period: Duration,
    window_start: tokio::time::Instant,
    end: tokio::time::Instant,
) -> (SimReader, Played) {
    let mut played = Played::default();
    let mut scheduled = first;
    let mut person = index * 7;
    while scheduled < end {
        tokio::time::sleep_until(scheduled).await;
        person = (person + 1) % PEOPLE;
        let credential = WireCredential::Card { uid: card(person) };
        let sent_at = Utc::now();
        let started = Instant::now();
        let answer = reader.swipe(credential, None, ANSWER_TIMEOUT).await;
        let latency = started.elapsed();
        if scheduled >= window_start {
            played.in_window += 1;
            match answer {
                Ok((seq, Command::Grant { .. })) => played.granted.push(Timed {
                    reader: index,
                    seq,
                    sent_at,
                    latency,
                }),
                Ok(_) => played.not_granted += 1,
                Err(_) => played.unanswered += 1,
            }
        }
        scheduled += period;
    }
    (reader, played)
}

/// Latency buckets, in milliseconds (upper bounds).
const BUCKETS_MS: [u64; 8] = [1, 2, 5, 10, 20, 100, 500, u64::MAX];

fn histogram(granted: &[Timed]) -> Vec<usize> {
    let mut counts = vec![0; BUCKETS_MS.len()];
    for t in granted {
        let ms = u64::try_from(t.latency.as_millis()).unwrap_or(u64::MAX);
        if let Some(i) = BUCKETS_MS.iter().position(|upper| ms < *upper) {
            counts[i] += 1;
        }
    }
    counts
}

/// Where a swipe's time goes, from the appliance's own record of it: `at` is when the hub
/// began handling the event (its clock, the same system clock as the readers').
struct Legs {
    /// Reader sends → the appliance begins handling (broker in, the appliance's MQTT
    /// client, its per-reader queue).
    inbound: Stats,
    /// The appliance begins handling → the reader has the verified grant (decide, durable
    /// record, answer out through the broker).
    rest: Stats,
    /// Swipes over 10 ms, and the median of their inbound legs and of their totals.
    slow: usize,
    slow_inbound_p50: Duration,
    slow_total_p50: Duration,
    /// Swipes not found in the log (should be none).
    missing: usize,
}

fn legs(db: &gatehouse::store::DbPool, granted: &[Timed]) -> Result<Legs> {
    let Some(first) = granted.iter().map(|t| t.sent_at).min() else {
        bail!("no swipe was granted");
    };
    let mut pooled = db.get()?;
    let gatehouse::store::DbConnection::Sqlite(conn) = &mut *pooled else {
        bail!("the appliance runs on SQLite here");
    };
    let since = gatehouse::clock::stored(first - TimeDelta::seconds(1));
    let rows: Vec<(Option<String>, Option<i64>, chrono::NaiveDateTime)> = events::table
        .filter(events::kind.eq("swipe"))
        .filter(events::at.ge(since))
        .select((events::reader_id, events::seq, events::at))
        .load(conn)?;
    let at: std::collections::HashMap<(String, i64), DateTime<Utc>> = rows
        .into_iter()
        .filter_map(|(r, seq, at)| Some(((r?, seq?), at.and_utc())))
        .collect();
    let mut inbound = Vec::with_capacity(granted.len());
    let mut rest = Vec::with_capacity(granted.len());
    let mut slow = Vec::new();
    let mut missing = 0;
    for t in granted {
        let key = (
            reader_id(t.reader),
            i64::try_from(t.seq).unwrap_or(i64::MAX),
        );
        let Some(handled) = at.get(&key) else {
            missing += 1;
            continue;
        };
        // Never negative: the record's time is truncated to microseconds.
        let leg = (*handled - t.sent_at)
            .to_std()
            .unwrap_or_default()
            .min(t.latency);
        inbound.push(leg);
        rest.push(t.latency - leg);
        if t.latency > Duration::from_millis(10) {
            slow.push((leg, t.latency));
        }
    }
    let slow_inbound = Stats::of(slow.iter().map(|s| s.0).collect());
    let slow_total = Stats::of(slow.iter().map(|s| s.1).collect());
    Ok(Legs {
        inbound: Stats::of(inbound),
        rest: Stats::of(rest),
        slow: slow.len(),
        slow_inbound_p50: slow_inbound.p50,
        slow_total_p50: slow_total.p50,
        missing,
    })
}

/// A stretch of the window in which swipes took over 20 ms: a stall of everything in
/// flight, or slow swipes spread over the run.
struct Stall {
    /// Seconds into the window of its first slow swipe.
    at_s: f64,
    /// From its first slow swipe sent to its last.
    span: Duration,
    swipes: usize,
    worst: Duration,
}

/// Groups the swipes over 20 ms by when they were sent; a gap of more than a second
/// between two of them starts a new group.
fn stalls(granted: &[Timed]) -> Vec<Stall> {
    let Some(first) = granted.iter().map(|t| t.sent_at).min() else {
        return Vec::new();
    };
    let mut slow: Vec<(DateTime<Utc>, Duration)> = granted
        .iter()
        .filter(|t| t.latency > Duration::from_millis(20))
        .map(|t| (t.sent_at, t.latency))
        .collect();
    slow.sort_by_key(|s| s.0);
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>, usize, Duration)> = Vec::new();
    for (at, latency) in slow {
        match out.last_mut() {
            Some(last) if at - last.1 <= TimeDelta::seconds(1) => {
                last.1 = at;
                last.2 += 1;
                last.3 = last.3.max(latency);
            }
            _ => out.push((at, at, 1, latency)),
        }
    }
    out.into_iter()
        .map(|(from, to, swipes, worst)| Stall {
            at_s: (from - first).num_milliseconds() as f64 / 1000.0,
            span: (to - from).to_std().unwrap_or_default(),
            swipes,
            worst,
        })
        .collect()
}

/// The figures of one broker's run.
struct RunResult {
    kind: Kind,
    floor: Floor,
    echo_loaded: Stats,
    log_alone: Stats,
    swipes: Stats,
    buckets: Vec<usize>,
    legs: Legs,
    stalls: Vec<Stall>,
    in_window: usize,
    unanswered: usize,
    not_granted: usize,
    window: Duration,
    /// Everything but the readers and echo clients (the embedded broker included).
    appliance_cpu: Duration,
    /// The embedded broker's threads, or the Mosquitto process.
    broker_cpu: Duration,
    readers_cpu: Duration,
}

impl RunResult {
    /// The floor is measured as one loop (publish, echo, commit): its percentiles are
    /// the loop's, not sums of its parts' (adding two p99s overstates the p99 of the sum).
    fn floor_p50(&self) -> Duration {
        self.floor.total.p50
    }

    fn floor_p99(&self) -> Duration {
        self.floor.total.p99
    }

    fn within_twice_floor(&self) -> bool {
        self.swipes.p99 <= self.floor_p99() * 2
    }

    fn within_10ms(&self) -> bool {
        self.swipes.p99 <= Duration::from_millis(10)
    }

    fn cpu_pct(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.window.as_secs_f64().max(1e-9) * 100.0
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn run(
    args: &Args,
    kind: Kind,
    mosquitto_binary: Option<&Path>,
    readers_rt: &tokio::runtime::Runtime,
    echo_rt: &tokio::runtime::Runtime,
) -> Result<RunResult> {
    println!("\n== {} ==", kind.label());
    if let Some(load) = load_average() {
        println!("load average before the run: {load}");
    }
    let dir = tempfile::tempdir()?;

    // The broker (Mosquitto) first, then the appliance, as on a real host.
    let mut mosquitto = None;
    let mut mosquitto_readers_port = 0;
    let mqtt = match kind {
        Kind::Embedded => MqttConfig {
            broker: BrokerChoice::Embedded,
            listen: "127.0.0.1:0".to_owned(),
            ..MqttConfig::default()
        },
        Kind::Mosquitto => {
            let Some(binary) = mosquitto_binary else {
                bail!("no mosquitto binary");
            };
            // Both bound at once, so that they cannot be given the same port.
            let (readers, appliance) = (
                TcpListener::bind("127.0.0.1:0")?,
                TcpListener::bind("127.0.0.1:0")?,
            );
            let ports = MosquittoPorts {
                readers: readers.local_addr()?.port(),
                appliance: appliance.local_addr()?.port(),
            };
            drop((readers, appliance));
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(&conf, mosquitto_conf(ports, dir.path()))?;
            std::fs::write(dir.path().join("gatehouse.acl"), SHIPPED_ACL)?;
            println!("mosquitto options in force (packaging/mosquitto/gatehouse.conf, rewritten):");
            for line in mosquitto_conf(ports, dir.path()).lines() {
                if !line.trim().is_empty() && !line.starts_with('#') {
                    println!("  {line}");
                }
            }
            mosquitto = Some(Mosquitto::start(
                binary,
                &conf,
                &[ports.readers, ports.appliance],
            )?);
            mosquitto_readers_port = ports.readers;
            MqttConfig {
                broker: BrokerChoice::External,
                url: format!("mqtt://127.0.0.1:{}", ports.appliance),
                username: APPLIANCE_USER.to_owned(),
                // Not checked: the benchmark's Mosquitto has no password file.
                password: "unused".to_owned(),
                ..MqttConfig::default()
            }
        }
    };
    let config = Config {
        data_dir: dir.path().join("data"),
        http: gatehouse::config::HttpConfig {
            listen: "127.0.0.1:0".to_owned(),
            ..Default::default()
        },
        mqtt,
        risk: gatehouse::config::RiskConfig {
            enabled: args.risk == Switch::On,
            ..Default::default()
        },
        ..Config::default()
    };
    {
        let pool = gatehouse::app::database::open_database(&config)?;
        let mut conn = pool.get()?;
        let ctx = ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("bench"),
            now: Utc::now(),
        };
        let started = Instant::now();
        gatehouse::io::site_file::import(
            &mut conn,
            &site_file(args.readers, PEOPLE),
            &ctx,
            false,
            &|_, _| {},
        )
        .map_err(|e| anyhow::anyhow!("site import: {e:?}"))?;
        println!(
            "site imported: {} doors and MQTT readers, {PEOPLE} people ({})",
            args.readers,
            fmt_duration(started.elapsed())
        );
    }
    // Two workers, as `gatehouse serve` has on this 2-core machine.
    let appliance_rt = runtime(APPLIANCE, 2)?;
    let running = appliance_rt
        .block_on(gatehouse::app::serve::start(config, Clock::System))
        .context("the appliance starts")?;
    let server_handle = running.server.handle();
    appliance_rt.spawn(running.server);
    let health = running.state.health.clone();
    // Where readers connect, and where and as whom the appliance does (the floor's echo
    // goes the same ways).
    let (readers_side, appliance_side) = match kind {
        Kind::Embedded => {
            let (Some(addr), Some((local, login))) =
                (running.mqtt_broker, running.mqtt_broker_local.clone())
            else {
                bail!("the embedded broker has no plain listener");
            };
            (
                Login {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    username: String::new(),
                    password: String::new(),
                },
                Login {
                    host: local.ip().to_string(),
                    port: local.port(),
                    username: login.username,
                    password: login.password,
                },
            )
        }
        Kind::Mosquitto => {
            let (host, port) = running
                .state
                .config
                .mqtt
                .external_address()
                .map_err(anyhow::Error::msg)?;
            (
                Login {
                    host: host.clone(),
                    port: mosquitto_readers_port,
                    username: String::new(),
                    password: String::new(),
                },
                Login {
                    host,
                    port,
                    username: APPLIANCE_USER.to_owned(),
                    password: "unused".to_owned(),
                },
            )
        }
    };
    let (host, port) = (readers_side.host.clone(), readers_side.port);

    // Every reader connected before any swipe, in waves of `connect_batch`, each wave seen
    // online by the appliance before the next connects: a thousand readers coming online
    // at once stall the appliance's MQTT loop (see `--connect-batch`).
    // On connecting to its broker the appliance sends every registered reader its mode
    // (1,002 commands here): let that drain first.
    std::thread::sleep(Duration::from_secs(args.settle));
    let started = Instant::now();
    let mut readers = Vec::with_capacity(args.readers);
    let batch = args.connect_batch.max(1);
    while readers.len() < args.readers {
        let from = readers.len();
        let to = (from + batch).min(args.readers);
        readers.extend(readers_rt.block_on(connect_readers(&host, port, from..to))?);
        let ids: Vec<String> = (0..to).map(reader_id).collect();
        wait_online(&health, &ids, Duration::from_secs(60)).with_context(|| {
            format!("{to} readers are connected to the broker, but the appliance's MQTT connection has stalled")
        })?;
    }
    println!(
        "{} readers connected (in waves of {batch}) and seen online by the appliance in {}",
        args.readers,
        fmt_duration(started.elapsed())
    );
    // Let the `mode` commands sent to readers coming online drain.
    std::thread::sleep(Duration::from_secs(2));

    // The floor, on the same broker, with the readers connected and idle: one serial loop
    // per sample, the echo along a swipe's path and then one durable commit.
    let mut commits = FloorCommits::open(dir.path())?;
    let floor = echo_rt.block_on(async {
        let mut echo = Echo::connect(&readers_side, &appliance_side, ECHO_IDLE).await?;
        echo.round_trips(
            args.floor_samples,
            Duration::from_millis(args.floor_pace_ms),
            |i| commits.commit(i),
        )
        .await
    })?;
    drop(commits);
    println!(
        "floor: one loop of publish, echo and durable commit: p50 {}, p99 {}, max {} ({} samples{})",
        fmt_duration(floor.total.p50),
        fmt_duration(floor.total.p99),
        fmt_duration(floor.total.max),
        floor.total.n,
        if floor.lost > 0 {
            format!(", {} with no echo", floor.lost)
        } else {
            String::new()
        }
    );
    println!(
        "  of which the echo (reader → broker → appliance side → broker → reader): p50 {}, p99 {}; the commit: p50 {}, p99 {}",
        fmt_duration(floor.echo.p50),
        fmt_duration(floor.echo.p99),
        fmt_duration(floor.commit.p50),
        fmt_duration(floor.commit.p99)
    );

    let log_alone = event_log_alone(dir.path(), args.rate, 5)?;
    println!(
        "(not the floor) the event log alone, fed {} appends/s: p50 {}, p99 {}, max {}",
        args.rate,
        fmt_duration(log_alone.p50),
        fmt_duration(log_alone.p99),
        fmt_duration(log_alone.max)
    );

    // The load: each reader swipes every `period`, the readers staggered evenly.
    let period = Duration::from_secs_f64(args.readers as f64 / args.rate.max(0.001));
    let window = Duration::from_secs(args.seconds);
    let start = Instant::now() + Duration::from_secs(1);
    let window_start = start + Duration::from_secs(args.warmup);
    let end = window_start + window;
    let to_tokio = tokio::time::Instant::from_std;
    let count = readers.len();
    let mut tasks = Vec::with_capacity(count);
    for (i, reader) in readers.into_iter().enumerate() {
        let first = start + period.mul_f64(i as f64 / count as f64);
        tasks.push(readers_rt.spawn(play(
            reader,
            i,
            to_tokio(first),
            period,
            to_tokio(window_start),
            to_tokio(end),
        )));
    }
    // The broker's round trip under the same load, at a trickle (20/s), to tell the
    // broker's share of any queueing from the appliance's.
    let loaded_samples = usize::try_from(args.seconds * 20).unwrap_or(usize::MAX);
    let echo_under_load = echo_rt.spawn({
        let (readers_side, appliance_side) = (readers_side.clone(), appliance_side.clone());
        async move {
            let mut echo = Echo::connect(&readers_side, &appliance_side, ECHO_LOADED).await?;
            tokio::time::sleep_until(to_tokio(window_start)).await;
            echo.round_trips(loaded_samples, Duration::from_millis(50), |_| Ok(()))
                .await
        }
    });
    let pid = mosquitto.as_ref().map(Mosquitto::pid);
    let read_cpu = || {
        let (_, appliance) = thread_cpu(&[READERS, ECHO]);
        let (readers, _) = thread_cpu(&[READERS]);
        let broker = match pid {
            Some(pid) => process_cpu(pid).unwrap_or_default(),
            None => thread_cpu(&EMBEDDED_BROKER).0,
        };
        (appliance, broker, readers)
    };
    std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
    let cpu0 = read_cpu();
    let measured_from = Instant::now();
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let cpu1 = read_cpu();
    let measured = measured_from.elapsed();

    let mut granted = Vec::new();
    let mut in_window = 0;
    let mut unanswered = 0;
    let mut not_granted = 0;
    let mut readers = Vec::with_capacity(count);
    for task in tasks {
        let (reader, played) = readers_rt.block_on(task)?;
        granted.extend(played.granted);
        in_window += played.in_window;
        unanswered += played.unanswered;
        not_granted += played.not_granted;
        readers.push(reader);
    }
    let echo_loaded = echo_rt.block_on(echo_under_load)??.echo;
    let legs = legs(&running.state.db, &granted)?;
    let result = RunResult {
        kind,
        floor,
        echo_loaded,
        log_alone,
        swipes: Stats::of(granted.iter().map(|t| t.latency).collect()),
        buckets: histogram(&granted),
        stalls: stalls(&granted),
        legs,
        in_window,
        unanswered,
        not_granted,
        window: measured,
        appliance_cpu: cpu1.0.saturating_sub(cpu0.0),
        broker_cpu: cpu1.1.saturating_sub(cpu0.1),
        readers_cpu: cpu1.2.saturating_sub(cpu0.2),
    };
    report(&result);

    // Readers leave only now: one that left early would send its last will into the
    // window of the others.
    drop(readers);
    appliance_rt.block_on(server_handle.stop(false));
    appliance_rt.shutdown_timeout(Duration::from_secs(2));
    drop(mosquitto);
    Ok(result)
}

/// Connects the readers of `range`, 64 at a time, retrying a reader that fails (the broker may
/// refuse connections that arrive faster than it accepts them).
async fn connect_readers(
    host: &str,
    port: u16,
    range: std::ops::Range<usize>,
) -> Result<Vec<SimReader>> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(range.len());
    for i in range {
        let settings = SimSettings {
            host: host.to_owned(),
            port,
            reader_id: reader_id(i),
            secret: secret(i),
            username: Some(reader_id(i)),
            password: Some(secret(i)),
            topic_root: "gatehouse/v1".to_owned(),
            sign_events: false,
        };
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut tries = 0;
            loop {
                match SimReader::connect(settings.clone(), 1).await {
                    Ok(reader) => return Ok(reader),
                    Err(e) if tries >= 5 => {
                        return Err(anyhow::anyhow!("reader {}: {e}", settings.reader_id));
                    }
                    Err(_) => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }));
    }
    let mut readers = Vec::with_capacity(tasks.len());
    for task in tasks {
        readers.push(task.await??);
    }
    Ok(readers)
}

fn report(r: &RunResult) {
    let rate = r.in_window as f64 / r.window.as_secs_f64().max(1e-9);
    println!(
        "floor (one serial loop: publish, echo, commit): p50 {}, p99 {}",
        fmt_duration(r.floor_p50()),
        fmt_duration(r.floor_p99())
    );
    println!(
        "echo under the load (20/s beside it): p50 {}, p99 {}, max {} ({} samples)",
        fmt_duration(r.echo_loaded.p50),
        fmt_duration(r.echo_loaded.p99),
        fmt_duration(r.echo_loaded.max),
        r.echo_loaded.n
    );
    println!(
        "Gatehouse swipe → verified grant: {} swipes in {:.1} s ({rate:.0}/s), p50 {}, p99 {}, max {}; unanswered {}, not granted {}",
        r.in_window,
        r.window.as_secs_f64(),
        fmt_duration(r.swipes.p50),
        fmt_duration(r.swipes.p99),
        fmt_duration(r.swipes.max),
        r.unanswered,
        r.not_granted
    );
    let mut lower = 0;
    let mut histogram = Vec::new();
    for (upper, n) in BUCKETS_MS.iter().zip(&r.buckets) {
        histogram.push(if *upper == u64::MAX {
            format!("≥ {lower} ms: {n}")
        } else {
            format!("{lower}–{upper} ms: {n}")
        });
        lower = *upper;
    }
    println!("  {}", histogram.join(", "));
    let l = &r.legs;
    println!(
        "  reader sends → appliance begins handling: p50 {}, p99 {}, max {}; → reader has the grant: p50 {}, p99 {}, max {}",
        fmt_duration(l.inbound.p50),
        fmt_duration(l.inbound.p99),
        fmt_duration(l.inbound.max),
        fmt_duration(l.rest.p50),
        fmt_duration(l.rest.p99),
        fmt_duration(l.rest.max)
    );
    if l.slow > 0 {
        println!(
            "  {} swipes over 10 ms: median {} in all, of which {} before the appliance began handling them",
            l.slow,
            fmt_duration(l.slow_total_p50),
            fmt_duration(l.slow_inbound_p50)
        );
    }
    for st in &r.stalls {
        println!(
            "  swipes over 20 ms at {:.1} s into the window: {} within {}, the worst {}",
            st.at_s,
            st.swipes,
            fmt_duration(st.span),
            fmt_duration(st.worst)
        );
    }
    if l.missing > 0 {
        println!("  {} granted swipes not found in the event log", l.missing);
    }
    println!(
        "p99 / floor p99 = {:.2}; p99 ≤ 2× floor ({}): {}; p99 ≤ 10 ms: {}",
        ratio(r.swipes.p99, r.floor_p99()),
        fmt_duration(r.floor_p99() * 2),
        verdict(r.within_twice_floor()),
        verdict(r.within_10ms())
    );
    let broker = match r.kind {
        Kind::Embedded => format!(
            "of which the embedded broker {:.1} %",
            r.cpu_pct(r.broker_cpu)
        ),
        Kind::Mosquitto => format!(
            "Mosquitto (its own process) {:.1} %",
            r.cpu_pct(r.broker_cpu)
        ),
    };
    println!(
        "CPU (% of one core) over the window: appliance {:.1} % ({broker}); simulated readers {:.1} %",
        r.cpu_pct(r.appliance_cpu),
        r.cpu_pct(r.readers_cpu)
    );
}

fn summary(results: &[RunResult]) {
    if results.is_empty() {
        return;
    }
    println!(
        "\n| broker | floor loop: its echo p50 / p99 | floor loop: its commit p50 / p99 | floor loop p50 / p99 | Gatehouse p50 / p99 / max | p99 ÷ floor p99 | unanswered | CPU: appliance / broker / readers |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let (appliance, broker) = match r.kind {
            // The embedded broker's threads are part of the appliance.
            Kind::Embedded => (
                format!(
                    "{:.0} % (broker {:.0} % of it)",
                    r.cpu_pct(r.appliance_cpu),
                    r.cpu_pct(r.broker_cpu)
                ),
                "–".to_owned(),
            ),
            Kind::Mosquitto => (
                format!("{:.0} %", r.cpu_pct(r.appliance_cpu)),
                format!("{:.0} %", r.cpu_pct(r.broker_cpu)),
            ),
        };
        println!(
            "| {} | {} / {} ms | {} / {} ms | {} / {} ms | {} / {} / {} ms | {:.2} | {} of {} | {appliance} / {broker} / {:.0} % |",
            r.kind.short(),
            ms(r.floor.echo.p50),
            ms(r.floor.echo.p99),
            ms(r.floor.commit.p50),
            ms(r.floor.commit.p99),
            ms(r.floor_p50()),
            ms(r.floor_p99()),
            ms(r.swipes.p50),
            ms(r.swipes.p99),
            ms(r.swipes.max),
            ratio(r.swipes.p99, r.floor_p99()),
            r.unanswered,
            r.in_window,
            r.cpu_pct(r.readers_cpu)
        );
    }
    println!(
        "\n| broker | echo under the load p50 / p99 | event log alone p50 / p99 | reader → appliance handles it p50 / p99 | → reader has the grant p50 / p99 | swipes over 10 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for r in results {
        println!(
            "| {} | {} / {} ms | {} / {} ms | {} / {} ms | {} / {} ms | {} |",
            r.kind.short(),
            ms(r.echo_loaded.p50),
            ms(r.echo_loaded.p99),
            ms(r.log_alone.p50),
            ms(r.log_alone.p99),
            ms(r.legs.inbound.p50),
            ms(r.legs.inbound.p99),
            ms(r.legs.rest.p50),
            ms(r.legs.rest.p99),
            r.legs.slow
        );
    }
    for r in results {
        println!(
            "{}: p99 ≤ 2× floor: {}; p99 ≤ 10 ms: {}{}",
            r.kind.label(),
            verdict(r.within_twice_floor()),
            verdict(r.within_10ms()),
            if r.floor.lost > 0 {
                format!(" ({} floor loops got no echo)", r.floor.lost)
            } else {
                String::new()
            }
        );
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    println!("machine: {}", machine());
    println!(
        "{} MQTT readers, {} swipes/s in total (each reader every {:.2} s), {} s warm-up, {} s measured",
        args.readers,
        args.rate,
        args.readers as f64 / args.rate.max(0.001),
        args.warmup,
        args.seconds
    );
    // Through the embedded broker each reader holds four: its own end, the relay's two,
    // and rumqttd's.
    let needed = u64::try_from(args.readers).unwrap_or(u64::MAX) * 4 + 512;
    println!("open files limit: {}", raise_fd_limit(needed)?);

    let mut kinds = Vec::new();
    if args.brokers != Brokers::Mosquitto {
        kinds.push(Kind::Embedded);
    }
    let mosquitto = Mosquitto::find(args.mosquitto.as_deref());
    if args.brokers != Brokers::Embedded {
        match &mosquitto {
            Some(_) => kinds.push(Kind::Mosquitto),
            None => match &args.mosquitto {
                Some(path) => println!(
                    "Mosquitto run skipped: no mosquitto binary at {}",
                    path.display()
                ),
                None => println!(
                    "Mosquitto run skipped: no mosquitto binary (looked in /usr/sbin, /usr/bin, /usr/local/sbin; install mosquitto or pass --mosquitto PATH)"
                ),
            },
        }
    }
    let readers_rt = runtime(READERS, args.reader_threads)?;
    let echo_rt = runtime(ECHO, 1)?;
    let mut results = Vec::new();
    for kind in kinds {
        results.push(run(
            &args,
            kind,
            mosquitto.as_deref(),
            &readers_rt,
            &echo_rt,
        )?);
    }
    summary(&results);
    Ok(())
}
