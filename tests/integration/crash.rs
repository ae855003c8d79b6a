//! kill -9 of the appliance while readers swipe: every swipe a reader got an answer to is
//! on record exactly once, with the decision the reader was told, and swipes left
//! unanswered by a crash are answered once when the reader sends them again.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gatehouse_drivers::message::{Command, EventBody, WireCredential};
use gatehouse_drivers::sim::{SimReader, SimSettings, answers};

use crate::app::{
    Backend, PgDatabase, backends, fresh_postgres, skip_without_service, wait_until_within,
};
use crate::site_file::SMALL_SITE;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// A running appliance process, killed with SIGKILL when dropped, so that a failing
/// assertion never leaves one behind.
struct Running(Child);

impl Running {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL: no shutdown, no flush
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Appliance {
    dir: std::path::PathBuf,
    mqtt_port: u16,
    /// The database: a SQLite file in the folder, or a fresh PostgreSQL database.
    database_url: String,
    _pg: Option<PgDatabase>,
}

impl Appliance {
    /// An appliance of its own folder (and MQTT port) on `backend`, with `site` imported.
    fn with_site(dir: &tempfile::TempDir, backend: Backend, site: &str) -> Appliance {
        let mqtt_port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (database_url, pg) = match backend {
            Backend::Sqlite => (
                format!(
                    "sqlite://{}",
                    dir.path().join("data/gatehouse.db").display()
                ),
                None,
            ),
            Backend::Postgres => {
                let (url, db) = fresh_postgres();
                (url, Some(db))
            }
        };
        let appliance = Appliance {
            dir: dir.path().to_path_buf(),
            mqtt_port,
            database_url,
            _pg: pg,
        };
        std::fs::write(dir.path().join("site.toml"), site).unwrap();
        let import = appliance
            .command()
            .args(["import", "site.toml"])
            .status()
            .unwrap();
        assert!(import.success());
        appliance
    }

    /// The appliance's event log, read after it has stopped.
    fn swipes(&self) -> Vec<gatehouse::store::event_log::Recorded> {
        let pool = gatehouse::store::open(&self.database_url, 1).unwrap();
        let filter = gatehouse::store::event_log::EventFilter {
            kind: Some("swipe".into()),
            ..Default::default()
        };
        gatehouse::store::event_log::recent(&mut pool.get().unwrap(), &filter, 100_000).unwrap()
    }

    fn command(&self) -> Process {
        let mut c = Process::new(env!("CARGO_BIN_EXE_gatehouse"));
        c.current_dir(&self.dir)
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_DATA_DIR", self.dir.join("data"))
            .env("GATEHOUSE_HTTP_LISTEN", "127.0.0.1:0")
            .env(
                "GATEHOUSE_MQTT_LISTEN",
                format!("127.0.0.1:{}", self.mqtt_port),
            )
            .env("GATEHOUSE_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self._pg.is_some() {
            // On SQLite, the default: a file in the data folder.
            c.env("GATEHOUSE_DATABASE_URL", &self.database_url);
        }
        c
    }

    fn start(&self) -> Running {
        // What `serve` says on its way out, for a start that fails.
        let errors = self.dir.join("serve-errors.txt");
        let mut child = Running(
            self.command()
                .arg("serve")
                .stderr(std::fs::File::create(&errors).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_until_within("the appliance listening", Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!(
                    "the appliance did not come up ({status}): {}",
                    std::fs::read_to_string(&errors).unwrap_or_default()
                );
            }
            std::net::TcpStream::connect(("127.0.0.1", self.mqtt_port)).is_ok()
        });
        child
    }
}

/// What one simulated reader sent and was told.
#[derive(Default)]
struct Ledger {
    /// seq → the event's time (a resend repeats both).
    sent: BTreeMap<u64, DateTime<Utc>>,
    /// seq → the first answer received.
    answered: HashMap<u64, Command>,
}

impl Ledger {
    /// Swipes sent but not answered yet, with their original times.
    fn unanswered(&self) -> Vec<(u64, DateTime<Utc>)> {
        self.sent
            .iter()
            .filter(|(seq, _)| !self.answered.contains_key(seq))
            .map(|(s, t)| (*s, *t))
            .collect()
    }
}

async fn connect(port: u16) -> SimReader {
    let settings = SimSettings {
        host: "127.0.0.1".into(),
        port,
        reader_id: "main-in".into(),
        secret: SECRET.into(),
        username: Some("main-in".into()),
        password: Some(SECRET.into()),
        topic_root: "gatehouse/v1".into(),
        sign_events: false,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match SimReader::connect(settings.clone(), 1).await {
            Ok(r) => return r,
            Err(e) => {
                assert!(Instant::now() < deadline, "the reader cannot connect: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn body() -> EventBody {
    EventBody::Swipe {
        credential: WireCredential::Card {
            uid: "04A1B2C3".into(),
        },
        pin: None,
    }
}

/// Takes in whatever answers arrive within `wait`.
async fn collect(reader: &mut SimReader, ledger: &mut Ledger, wait: Duration) {
    while let Ok(Ok(command)) = reader.next_answer(wait).await {
        if let Some(seq) = ledger.sent.keys().copied().find(|s| answers(&command, *s)) {
            ledger.answered.entry(seq).or_insert(command);
        }
    }
}

#[test]
fn kill_9_loses_no_answered_swipe_and_answers_resends_once() {
    for backend in backends() {
        kill_9_loses_no_answered_swipe_and_answers_resends_once_on(backend);
    }
}

fn kill_9_loses_no_answered_swipe_and_answers_resends_once_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::with_site(&dir, backend, SMALL_SITE);
    let mqtt_port = appliance.mqtt_port;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut ledger = Ledger::default();
    let mut next_seq = 1u64;
    let mut cut_short = 0;
    for round in 0..5u64 {
        let child = std::sync::Arc::new(std::sync::Mutex::new(appliance.start()));
        // The crash comes while swipes are in flight, after a number of new swipes of its
        // own in each round (from 5 to 45 of the round's 60).
        let sent_this_round = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let killer = {
            let child = child.clone();
            let sent = sent_this_round.clone();
            std::thread::spawn(move || {
                wait_until_within(
                    "the round's swipes under way",
                    Duration::from_secs(30),
                    || sent.load(std::sync::atomic::Ordering::SeqCst) >= 5 + 10 * round,
                );
                child.lock().unwrap().kill();
            })
        };
        runtime.block_on(async {
            let mut reader = connect(mqtt_port).await;
            // First, what the last crash left unanswered is sent again, exactly as before.
            for (seq, ts) in ledger.unanswered() {
                let _ = reader.resend(seq, &body(), ts).await;
            }
            for _ in 0..60 {
                let ts = Utc::now();
                ledger.sent.insert(next_seq, ts);
                let _ = reader.resend(next_seq, &body(), ts).await;
                sent_this_round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                next_seq += 1;
                collect(&mut reader, &mut ledger, Duration::from_millis(4)).await;
            }
            collect(&mut reader, &mut ledger, Duration::from_millis(200)).await;
        });
        killer.join().unwrap();
        cut_short += ledger.sent.len() - ledger.answered.len();
    }
    assert!(
        cut_short > 0,
        "no crash ever caught a swipe in flight; the test proves nothing"
    );
    // A last start: the reader resends everything still unanswered until all is answered.
    let mut child = appliance.start();
    runtime.block_on(async {
        let mut reader = connect(mqtt_port).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while ledger.answered.len() < ledger.sent.len() {
            assert!(
                Instant::now() < deadline,
                "swipes never answered: {}",
                ledger.sent.len() - ledger.answered.len()
            );
            for (seq, ts) in ledger.unanswered() {
                reader.resend(seq, &body(), ts).await.unwrap();
            }
            collect(&mut reader, &mut ledger, Duration::from_millis(500)).await;
        }
        // Answers given before a crash are given again, unchanged, to a resend.
        for (seq, first) in ledger.answered.iter().take(10) {
            reader
                .resend(*seq, &body(), ledger.sent[seq])
                .await
                .unwrap();
            let again = loop {
                let c = reader
                    .next_answer(Duration::from_secs(5))
                    .await
                    .unwrap()
                    .unwrap();
                if answers(&c, *seq) {
                    break c;
                }
            };
            assert_eq!(
                &again, first,
                "seq {seq} got another answer after a restart"
            );
        }
    });
    child.kill();
    // The record: every swipe exactly once, with the decision the reader was told.
    let rows = appliance.swipes();
    let mut per_seq: HashMap<i64, usize> = HashMap::new();
    for r in &rows {
        *per_seq.entry(r.event.seq.unwrap()).or_default() += 1;
    }
    assert_eq!(rows.len(), ledger.sent.len(), "one row per swipe");
    assert!(per_seq.values().all(|n| *n == 1), "a swipe recorded twice");
    for r in &rows {
        let seq = u64::try_from(r.event.seq.unwrap()).unwrap();
        let told = match &ledger.answered[&seq] {
            Command::Grant { decision_id, .. }
            | Command::Deny { decision_id, .. }
            | Command::PinRequired { decision_id, .. } => decision_id.clone(),
            other => panic!("seq {seq} was answered with {other:?}"),
        };
        assert_eq!(
            r.event.decision_id.as_deref(),
            Some(told.as_str()),
            "seq {seq}"
        );
    }
}

/// A private Mosquitto on a port of its own, killed and restarted by the test.
struct Mosquitto {
    child: Child,
}

impl Mosquitto {
    fn binary() -> Option<std::path::PathBuf> {
        [
            "/usr/sbin/mosquitto",
            "/usr/bin/mosquitto",
            "/usr/local/sbin/mosquitto",
        ]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
    }

    fn start(binary: &std::path::Path, config: &std::path::Path, port: u16) -> Mosquitto {
        let child = Process::new(binary)
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_within("mosquitto listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Mosquitto { child }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_broker_crash_loses_nothing_and_doubles_nothing() {
    let Some(binary) = Mosquitto::binary() else {
        skip_without_service(
            "the broker restart test: it runs a Mosquitto of its own, and no mosquitto binary is installed (apt-get install mosquitto)",
        );
        return;
    };
    for backend in backends() {
        a_broker_crash_loses_nothing_and_doubles_nothing_on(&binary, backend);
    }
}

fn a_broker_crash_loses_nothing_and_doubles_nothing_on(binary: &std::path::Path, backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n"
        ),
    )
    .unwrap();
    let mut broker = Mosquitto::start(binary, &config, port);
    let site = crate::mqtt::site(
        crate::mqtt::Broker::External(format!("mqtt://127.0.0.1:{port}")),
        backend,
    );
    let mut ledger = Ledger::default();
    let mut reader = site.reader("main-in", false);
    let body = EventBody::Swipe {
        credential: site.card(),
        pin: None,
    };
    let mut next_seq = 1u64;
    for _round in 0..3 {
        site.runtime.block_on(async {
            for _ in 0..30 {
                let ts = Utc::now();
                ledger.sent.insert(next_seq, ts);
                let _ = reader.resend(next_seq, &body, ts).await;
                next_seq += 1;
                collect(&mut reader, &mut ledger, Duration::from_millis(3)).await;
            }
        });
        // The broker dies mid-traffic and comes back; everyone reconnects.
        broker.kill();
        broker = Mosquitto::start(binary, &config, port);
        site.runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            while ledger.answered.len() < ledger.sent.len() {
                assert!(
                    Instant::now() < deadline,
                    "swipes never answered after the restart"
                );
                for (seq, ts) in ledger.unanswered() {
                    let _ = reader.resend(seq, &body, ts).await;
                }
                collect(&mut reader, &mut ledger, Duration::from_millis(300)).await;
            }
        });
    }
    let rows = site.app.events(Some("swipe"));
    assert_eq!(
        rows.len(),
        ledger.sent.len(),
        "one row per swipe, none lost, none doubled"
    );
    let mut seqs: Vec<i64> = rows.iter().map(|r| r.event.seq.unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), rows.len());
}

/// The small site with a Modbus door that stays unlocked a minute after a grant, so that a
/// crash always finds it unlocked.
fn modbus_site(port: u16) -> String {
    format!(
        r#"{SMALL_SITE}
[[doors]]
name = "Dock"
site = "HQ"
zone = "Building"
unlock_ms = 60000

[[readers]]
reader_id = "dock-io"
door = "Dock"
protocol = "modbus"
modbus_host = "127.0.0.1"
modbus_port = {port}
modbus_unit = 1

[[levels]]
name = "Dock"
items = [{{ door = "Dock", schedule = "Always" }}]

[[entitlements]]
employee_id = "E1"
level = "Dock"
"#
    )
}

/// kill -9 of the appliance while a Modbus door it unlocked is open, five times: on restart
/// the door is locked again at once (the unlock died with the process), the swipe it
/// answered is not answered again (the device's counter is where the appliance left it),
/// nor is one the crash cut short, every answered swipe is on record exactly once, and
/// numbering continues past the crash.
#[test]
fn kill_9_with_a_modbus_door_unlocked_relocks_it_and_records_each_answer_once() {
    for backend in backends() {
        kill_9_with_a_modbus_door_unlocked_relocks_it_and_records_each_answer_once_on(backend);
    }
}

fn kill_9_with_a_modbus_door_unlocked_relocks_it_and_records_each_answer_once_on(backend: Backend) {
    use gatehouse_drivers::modbus_map::Beeper;
    use gatehouse_drivers::sim_modbus::{Output, SimDevice};
    const WAIT: Duration = Duration::from_secs(20);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut device = runtime
        .block_on(SimDevice::start("127.0.0.1:0".parse().unwrap(), 1))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::with_site(&dir, backend, &modbus_site(device.addr().port()));
    // The next relay write, skipping LED and beeper writes.
    let next_relay = |device: &mut SimDevice, within: Duration| {
        let deadline = Instant::now() + within;
        runtime.block_on(async {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match device.next_write(left).await?.output {
                    Output::Relay { unlocked } => return Some(unlocked),
                    _ => continue,
                }
            }
        })
    };
    let mut answered = 0;
    let mut cut_short = 0;
    for round in 0..5 {
        let mut running = appliance.start();
        // Connecting, the appliance puts the relay in its idle state: locked. After a
        // crash, that is what ends the unlock the dead process would have ended.
        assert_eq!(
            next_relay(&mut device, WAIT),
            Some(false),
            "round {round}: the door was not locked on (re)connecting"
        );
        assert!(!device.relay_unlocked(), "round {round}");
        // The swipe answered before the last crash is not answered again.
        assert_eq!(
            next_relay(&mut device, Duration::from_millis(500)),
            None,
            "round {round}: an old swipe was answered again after the restart"
        );
        device.clear_writes();
        for _ in 0..2 {
            device.swipe("04a1b2c3", None).unwrap();
            let (beeper, _) = runtime
                .block_on(device.answer(WAIT))
                .expect("the appliance answered the swipe");
            assert_eq!(beeper, Beeper::Grant, "round {round}");
            answered += 1;
        }
        assert!(device.relay_unlocked(), "the grant unlocked the door");
        // A third swipe, cut short by the crash at a moment of its own: it may or may not
        // be on record, but it is never answered later (a Modbus device does not resend).
        // The pause waits for nothing: it moves the crash to another moment each round.
        device.swipe("04a1b2c3", None).unwrap();
        std::thread::sleep(Duration::from_millis(7 * round));
        running.kill();
        cut_short += 1;
        assert!(
            device.relay_unlocked(),
            "nothing else locks the door while the appliance is down"
        );
        device.clear_writes();
    }
    // One last start settles the door, then the record is read.
    let mut running = appliance.start();
    assert_eq!(next_relay(&mut device, WAIT), Some(false));
    running.kill();
    let rows: Vec<_> = appliance
        .swipes()
        .into_iter()
        .filter(|r| r.event.reader_id.as_deref() == Some("dock-io"))
        .collect();
    assert!(
        (answered..=answered + cut_short).contains(&rows.len()),
        "{} rows for {answered} answered swipes and {cut_short} cut short",
        rows.len()
    );
    assert!(
        rows.iter()
            .all(|r| r.event.result.as_deref() == Some("granted"))
    );
    let mut seqs: Vec<i64> = rows.iter().map(|r| r.event.seq.unwrap()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), rows.len(), "event numbers reused after a crash");
}
