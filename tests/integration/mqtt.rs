//! Readers over MQTT end to end, on real sockets: the embedded broker always, Mosquitto
//! when GATEHOUSE_TEST_MQTT_URL is set (CI sets it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gatehouse::clock::{Clock, ClockShift};
use gatehouse::config::{BrokerChoice, MqttConfig};
use gatehouse::store::event_log::EventFilter;
use gatehouse_drivers::message::{Command, DenyCode, ErrorCode, EventBody, WireCredential};
use gatehouse_drivers::mqtt::ClientTls;
use gatehouse_drivers::sim::{ScaledClock, SimReader, SimSettings};
use serde_json::json;

use crate::app::{
    Backend, Fixture, TestApp, assert_pin_on_no_record, assert_simulated, backends, build_site,
    service_url,
};

const WAIT: Duration = Duration::from_secs(10);
pub const MQTT_ENV: &str = "GATEHOUSE_TEST_MQTT_URL";

/// The brokers this run can test, with how readers log in to each.
#[derive(Clone)]
pub enum Broker {
    Embedded,
    /// An external broker that lets clients in without credentials (the CI's Mosquitto).
    External(String),
}

fn brokers() -> Vec<Broker> {
    match service_url(MQTT_ENV, "mqtt://127.0.0.1:1883", "Mosquitto") {
        Some(url) => vec![Broker::Embedded, Broker::External(url)],
        None => vec![Broker::Embedded],
    }
}

/// Every broker this run can test, each with every database backend it can test: what
/// comes over MQTT is recorded and answered the same on SQLite and PostgreSQL.
pub(crate) fn setups() -> Vec<(Broker, Backend)> {
    let backends = backends();
    brokers()
        .into_iter()
        .flat_map(|broker| {
            backends
                .iter()
                .map(move |backend| (broker.clone(), *backend))
        })
        .collect()
}

pub struct Site {
    pub app: TestApp,
    pub f: Fixture,
    broker: Broker,
    host: String,
    port: u16,
    topic_root: String,
    pub runtime: tokio::runtime::Runtime,
}

/// The fixture site on an appliance of `backend` whose readers talk MQTT through `broker`.
pub fn site(broker: Broker, backend: Backend) -> Site {
    site_on(broker, backend, gatehouse::clock::Clock::System)
}

/// As `site`, with the appliance on `clock`.
pub fn site_on(broker: Broker, backend: Backend, clock: gatehouse::clock::Clock) -> Site {
    // A topic root and client id of its own, so tests sharing Mosquitto do not cross.
    let unique = format!("{}-{}", std::process::id(), rand_suffix());
    let topic_root = format!("gatehouse-test/{unique}/v1");
    let config = match &broker {
        Broker::Embedded => MqttConfig {
            broker: BrokerChoice::Embedded,
            listen: "127.0.0.1:0".to_owned(),
            topic_root: topic_root.clone(),
            ..MqttConfig::default()
        },
        Broker::External(url) => MqttConfig {
            broker: BrokerChoice::External,
            url: url.clone(),
            topic_root: topic_root.clone(),
            client_id: format!("gatehouse-test-{unique}"),
            ..MqttConfig::default()
        },
    };
    let (host, port) = match &broker {
        Broker::Embedded => (String::new(), 0),
        Broker::External(_) => config.external_address().unwrap(),
    };
    let app = TestApp::with_mqtt_on(backend, Some(config), clock);
    let (host, port) = match app.mqtt_broker {
        Some(addr) => (addr.ip().to_string(), addr.port()),
        None => (host, port),
    };
    open_site(app, broker, host, port, topic_root)
}

/// The fixture site on a started appliance, with the main door open all the time.
fn open_site(app: TestApp, broker: Broker, host: String, port: u16, topic_root: String) -> Site {
    let f = build_site(&app);
    // The fixture's business hours must not decide these tests: open the door all the time.
    let always = app.create("schedules", json!({"name": "Always", "holidays": "ignore", "windows": [{"cron": "0 0 * * *", "duration_min": 1440}]}));
    let level = app.create(
        "access-levels",
        json!({"name": "Always main", "items": [{"door_id": f.main_door, "schedule_id": always}]}),
    );
    app.create(
        "entitlements",
        json!({"person_id": f.person, "level_id": level}),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Site {
        app,
        f,
        broker,
        host,
        port,
        topic_root,
        runtime,
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

impl Site {
    /// Restarts the appliance on the same database (`TestApp::restart`); readers connect
    /// again with `reader`, to the embedded broker's new port where it has one.
    pub fn restart(&mut self) {
        self.app.restart();
        if let Some(addr) = self.app.mqtt_broker {
            (self.host, self.port) = (addr.ip().to_string(), addr.port());
        }
    }

    fn secret(&self, reader: &str) -> String {
        self.app.reader_secret(reader)
    }

    fn settings(&self, reader: &str, secret: &str, sign: bool) -> SimSettings {
        let embedded = matches!(self.broker, Broker::Embedded);
        SimSettings {
            host: self.host.clone(),
            port: self.port,
            reader_id: reader.to_owned(),
            secret: secret.to_owned(),
            username: embedded.then(|| reader.to_owned()),
            password: embedded.then(|| secret.to_owned()),
            topic_root: self.topic_root.clone(),
            sign_events: sign,
        }
    }

    pub fn reader(&self, reader: &str, sign: bool) -> SimReader {
        let settings = self.settings(reader, &self.secret(reader), sign);
        self.runtime
            .block_on(SimReader::connect(settings, 1))
            .expect("the reader connects")
    }

    pub fn card(&self) -> WireCredential {
        WireCredential::Card {
            uid: self.f.card.to_owned(),
        }
    }
}

#[test]
fn a_swipe_over_mqtt_opens_the_door_once() {
    for (broker, backend) in setups() {
        let site = site(broker, backend);
        let mut reader = site.reader("main-in", false);
        let (seq, answer) = site
            .runtime
            .block_on(reader.swipe(site.card(), None, WAIT))
            .unwrap();
        let Command::Grant {
            unlock_ms,
            decision_id,
            ..
        } = answer
        else {
            panic!("expected a grant, got {answer:?}");
        };
        assert_eq!(unlock_ms, 5000);
        // The answer was lost; the reader sends the same event again: same decision.
        let body = EventBody::Swipe {
            credential: site.card(),
            pin: None,
        };
        let again = site.runtime.block_on(async {
            // Same seq and the original's time: a true resend.
            let rows = gatehouse::store::event_log::recent(
                &mut site.app.db(),
                &EventFilter::default(),
                10,
            )
            .unwrap();
            let ts = rows[0].event.reader_ts.unwrap();
            reader.resend(seq, &body, ts).await.unwrap();
            reader.next_answer(WAIT).await.unwrap().unwrap()
        });
        assert!(
            matches!(&again, Command::Grant { decision_id: d, .. } if *d == decision_id),
            "{again:?}"
        );
        let unknown = site.runtime.block_on(reader.swipe(
            WireCredential::Card {
                uid: "DEADBEEF".into(),
            },
            None,
            WAIT,
        ));
        assert!(
            matches!(
                unknown,
                Ok((
                    _,
                    Command::Deny {
                        code: DenyCode::UnknownCredential,
                        ..
                    }
                ))
            ),
            "{unknown:?}"
        );
        let swipes = site.app.events(Some("swipe"));
        assert_eq!(swipes.len(), 2, "the resend was not recorded again");
    }
}

/// Where the broker lets one reader publish on another's topics (the CI's Mosquitto, which
/// has no ACL), the MACs keep the doors shut. The embedded broker does not let it get that
/// far: `the_embedded_broker_keeps_each_reader_to_its_own_topics`.
#[test]
fn forged_commands_and_impersonation_do_not_open_doors() {
    let external: Vec<(Broker, Backend)> = setups()
        .into_iter()
        .filter(|(b, _)| matches!(b, Broker::External(_)))
        .collect();
    for (broker, backend) in external {
        let site = site(broker, backend);
        // Reader B exists with its own secret; A seals its events (the default).
        let b = site.app.post(
            "/api/v1/readers",
            json!({"reader_id": "side-in", "door_id": site.f.main_door}),
        );
        assert_eq!(b.status, 201);
        let mut a = site.reader("main-in", true);
        let b = site.reader("side-in", false);
        // B, holding only its own secret, forges a grant for A: A does not believe it.
        let forged = Command::Grant {
            reference: 1,
            decision_id: "d-forged".into(),
            unlock_ms: 60_000,
        }
        .encode("main-in", &site.secret("side-in"), chrono::Utc::now());
        site.runtime
            .block_on(b.publish_command_to("main-in", forged))
            .unwrap();
        let received = site.runtime.block_on(a.next_answer(WAIT)).unwrap();
        assert!(
            received.is_err(),
            "a forged grant was accepted: {received:?}"
        );
        // B publishes a swipe as A, unsealed, or sealed with B's key: no decision, bad_mac.
        // (Where the broker keeps B to its own topics, these do not even arrive.)
        let swipe = EventBody::Swipe {
            credential: site.card(),
            pin: None,
        };
        let unsealed = gatehouse_drivers::message::encode_event(
            "main-in",
            Some(&site.secret("side-in")),
            500,
            chrono::Utc::now(),
            &swipe,
        );
        let with_b_key = gatehouse_drivers::message::encode_sealed_event(
            "main-in",
            &site.secret("side-in"),
            501,
            chrono::Utc::now(),
            &swipe,
        );
        for (seq, payload) in [(500, unsealed), (501, with_b_key)] {
            if site
                .runtime
                .block_on(b.publish_as("main-in", payload))
                .is_err()
            {
                continue;
            }
            match site.runtime.block_on(a.next_answer(Duration::from_secs(2))) {
                Ok(answer) => assert_eq!(
                    answer,
                    Ok(Command::Error {
                        reference: Some(seq),
                        code: ErrorCode::BadMac
                    })
                ),
                // The broker refused B's publish on A's topic: nothing reached the hub.
                Err(gatehouse_drivers::sim::SimError::Timeout(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        // A's own signed swipe is decided.
        let (_, answer) = site
            .runtime
            .block_on(a.swipe(site.card(), None, WAIT))
            .unwrap();
        assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
        let swipes = site.app.events(Some("swipe"));
        assert_eq!(swipes.len(), 1, "only the genuine swipe was decided");
    }
}

/// How the broker answers a bare MQTT client's CONNECT: the CONNACK's refusal code, or
/// `None` when it lets the client in.
fn refusal(
    site: &Site,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Option<rumqttc::ConnectReturnCode> {
    site.runtime.block_on(async {
        let mut options = rumqttc::MqttOptions::new(client_id, &site.host, site.port);
        if let Some((user, pass)) = login {
            options.set_credentials(user, pass);
        }
        let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
        match tokio::time::timeout(WAIT, eventloop.poll())
            .await
            .expect("an answer to CONNECT")
        {
            Ok(_) => None,
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Some(code),
            Err(other) => panic!("no CONNACK: {other}"),
        }
    })
}

/// Waits until a reader fault whose detail contains `words` is on record for `reader`.
fn wait_for_fault(site: &Site, reader: &str, words: &str) -> gatehouse::store::event_log::Recorded {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let faults = site.app.events(Some("reader_fault"));
        if let Some(fault) = faults.iter().find(|f| {
            f.event.reader_id.as_deref() == Some(reader) && f.event.detail.contains(words)
        }) {
            return fault.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fault of {reader} saying {words:?}: {faults:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_embedded_broker_refuses_strangers() {
    for backend in backends() {
        the_embedded_broker_refuses_strangers_on(backend);
    }
}

fn the_embedded_broker_refuses_strangers_on(backend: Backend) {
    use rumqttc::ConnectReturnCode;
    let site = site(Broker::Embedded, backend);
    let secret = site.secret("main-in");
    // A wrong secret is told so (CONNACK "bad user name or password"), not dropped in
    // silence, and the refusal is a fault of that reader.
    assert_eq!(
        refusal(&site, "main-in", Some(("main-in", "not-the-secret-at-all"))),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    let fault = wait_for_fault(&site, "main-in", "wrong secret");
    assert!(
        !fault.event.detail.contains("not-the-secret-at-all"),
        "{fault:?}"
    );
    assert_eq!(fault.event.door_id, Some(site.f.main_door));
    assert_eq!(
        refusal(&site, "someone", None),
        Some(ConnectReturnCode::NotAuthorized),
        "an anonymous client was let in"
    );
    // A reader may not take the appliance's client id (that would cut the appliance off).
    assert_eq!(
        refusal(&site, "gatehouse-appliance", Some(("main-in", &secret))),
        Some(ConnectReturnCode::BadClientId),
        "a reader took the appliance's client id"
    );
    wait_for_fault(&site, "main-in", "appliance's client id");
    // A username that is no reader's is refused, and records nothing (anyone could send
    // made-up names by the thousand).
    assert_eq!(
        refusal(&site, "ghost", Some(("ghost", "whatever-secret-1234"))),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    // The appliance still serves: its connection was never dropped.
    let mut reader = site.reader("main-in", false);
    let (_, answer) = site
        .runtime
        .block_on(reader.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
    let faults = site.app.events(Some("reader_fault"));
    assert!(
        faults
            .iter()
            .all(|f| f.event.reader_id.as_deref() == Some("main-in")),
        "{faults:?}"
    );
    assert_eq!(faults.len(), 2, "{faults:?}");
}

/// Issue 10: a client holding reader A's secret published a swipe on reader B's events
/// topic and B was sent a grant. The embedded broker now cuts such a client off before
/// anything reaches the appliance, and lets it subscribe to nothing but A's commands.
#[test]
fn the_embedded_broker_keeps_each_reader_to_its_own_topics() {
    for backend in backends() {
        the_embedded_broker_keeps_each_reader_to_its_own_topics_on(backend);
    }
}

fn the_embedded_broker_keeps_each_reader_to_its_own_topics_on(backend: Backend) {
    let site = site(Broker::Embedded, backend);
    let b = site.app.post(
        "/api/v1/readers",
        json!({"reader_id": "side-in", "door_id": site.f.main_door}),
    );
    assert_eq!(b.status, 201);
    let mut b = site.reader("side-in", false);
    let a = site.reader("main-in", false);
    // A, with its own secret, publishes a swipe as B.
    let as_b = gatehouse_drivers::message::encode_event(
        "side-in",
        None,
        77,
        chrono::Utc::now(),
        &EventBody::Swipe {
            credential: site.card(),
            pin: None,
        },
    );
    site.runtime
        .block_on(a.publish_as("side-in", as_b))
        .unwrap();
    let fault = wait_for_fault(&site, "main-in", "not its own topic");
    assert!(
        fault.event.detail.contains("readers/side-in/events"),
        "{fault:?}"
    );
    assert!(
        !fault.event.detail.contains("credential"),
        "no payload in the record: {fault:?}"
    );
    // B was told nothing, and nothing was decided.
    let told = site.runtime.block_on(b.next_answer(Duration::from_secs(1)));
    assert!(
        matches!(told, Err(gatehouse_drivers::sim::SimError::Timeout(_))),
        "B heard {told:?}"
    );
    assert!(site.app.events(Some("swipe")).is_empty());
    // A forged command for B goes nowhere either.
    site.runtime
        .block_on(a.publish_command_to("side-in", b"{\"type\":\"grant\"}".to_vec()))
        .unwrap();
    wait_for_fault(&site, "main-in", "readers/side-in/commands");

    // Listening in on B, or on everything, ends A's connection before anything arrives.
    let secret = site.secret("main-in");
    for filter in [
        format!("{}/readers/side-in/commands", site.topic_root),
        format!("{}/readers/+/events", site.topic_root),
        "#".to_owned(),
    ] {
        let cut = site.runtime.block_on(async {
            let mut options = rumqttc::MqttOptions::new("eavesdropper", &site.host, site.port);
            options.set_credentials("main-in", secret.as_str());
            let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
            client
                .subscribe(&filter, rumqttc::QoS::AtLeastOnce)
                .await
                .unwrap();
            tokio::time::timeout(WAIT, async {
                loop {
                    match eventloop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                            return Err("subscribed");
                        }
                        Ok(_) => {}
                        Err(_) => return Ok(()),
                    }
                }
            })
            .await
        });
        assert_eq!(cut, Ok(Ok(())), "A subscribed to {filter}");
        wait_for_fault(&site, "main-in", &format!("subscribe to {filter:?}"));
    }

    // Both readers' own traffic is served as before.
    let (_, answer) = site
        .runtime
        .block_on(b.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
    let mut a = site.reader("main-in", false);
    let (_, answer) = site
        .runtime
        .block_on(a.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
    assert_eq!(site.app.events(Some("swipe")).len(), 2);
}

#[test]
fn bad_input_over_mqtt_is_a_fault_and_the_reader_keeps_being_served() {
    for (broker, backend) in setups() {
        let external = matches!(broker, Broker::External(_));
        let site = site(broker, backend);
        let mut reader = site.reader("main-in", false);
        site.runtime
            .block_on(reader.publish_raw(b"{broken".to_vec()))
            .unwrap();
        site.runtime
            .block_on(reader.publish_raw(gatehouse_drivers::message::seal(
                "main-in",
                &site.secret("main-in"),
                r#"{"type":"teleport","seq":900,"ts":"2026-11-24T08:00:00Z"}"#,
            )))
            .unwrap();
        let answer = site
            .runtime
            .block_on(reader.next_answer(WAIT))
            .unwrap()
            .unwrap();
        assert_eq!(
            answer,
            Command::Error {
                reference: Some(900),
                code: ErrorCode::BadEvent
            }
        );
        site.runtime
            .block_on(reader.publish_raw(vec![b'x'; 1 << 20]))
            .unwrap();
        // An unknown reader id on the topic (a stranger on Mosquitto, which lets anyone in;
        // the embedded broker lets nobody publish there).
        if external {
            site.runtime
                .block_on(reader.publish_as(
                    "ghost",
                    br#"{"type":"rex","seq":1,"ts":"2026-11-24T08:00:00Z"}"#.to_vec(),
                ))
                .unwrap();
        }
        let (_, answer) = site
            .runtime
            .block_on(reader.swipe(site.card(), None, WAIT))
            .unwrap();
        assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
        // Every fault is on record (they may land just after the grant).
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let faults = site.app.events(Some("reader_fault"));
            if faults.len() == if external { 4 } else { 3 } {
                assert_eq!(
                    faults
                        .iter()
                        .any(|f| f.event.reader_id.as_deref() == Some("ghost")),
                    external
                );
                assert!(faults.iter().any(|f| f.event.detail.contains("limit")));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "faults on record: {faults:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn swipes_are_searchable_and_streamed_live() {
    for backend in backends() {
        swipes_are_searchable_and_streamed_live_on(backend);
    }
}

fn swipes_are_searchable_and_streamed_live_on(backend: Backend) {
    use std::io::BufRead;
    let site = site(Broker::Embedded, backend);
    let auditor = site.app.token_for("audrey", "auditor");
    // Someone watching the live stream (auditors may).
    let url = format!("http://{}/api/v1/events/stream", site.app.addr);
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let (connected_tx, connected) = std::sync::mpsc::channel::<()>();
    let watcher = std::thread::spawn(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .new_agent();
        let mut response = agent
            .get(&url)
            .header("Authorization", &format!("Bearer {auditor}"))
            .call()
            .unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        // The appliance subscribed this client before it answered: from now on it is sent
        // every event.
        let _ = connected_tx.send(());
        let reader = std::io::BufReader::new(response.body_mut().as_reader());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    connected
        .recv_timeout(WAIT)
        .expect("the event stream answered");
    let mut reader = site.reader("main-in", false);
    let (_, answer) = site
        .runtime
        .block_on(reader.swipe(site.card(), None, WAIT))
        .unwrap();
    let Command::Grant { decision_id, .. } = answer else {
        panic!("{answer:?}")
    };
    let deadline = std::time::Instant::now() + WAIT;
    let mut saw = (false, false, false);
    while !(saw.0 && saw.1 && saw.2) {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("a frame");
        saw.0 |= line == "event: swipe";
        saw.1 |= line.starts_with("data: ")
            && line.contains(&decision_id)
            && line.contains("\"granted\"");
        // Then its anomaly score, once the risk engine has stored it.
        saw.2 |= saw.1
            && line.starts_with("data: ")
            && line.contains("\"risk_score\":")
            && !line.contains("\"kind\"");
    }
    drop(lines);
    drop(watcher);
    // The same swipe in the searchable log, with keyset paging.
    site.runtime
        .block_on(reader.swipe(
            WireCredential::Card {
                uid: "DEADBEEF".into(),
            },
            None,
            WAIT,
        ))
        .unwrap();
    let page = site.app.get("/api/v1/events?kind=swipe&limit=1");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body["items"][0]["deny_code"], "unknown_credential");
    let next = page.body["next_before_id"].as_i64().unwrap();
    let older = site.app.get(&format!(
        "/api/v1/events?kind=swipe&limit=1&before_id={next}"
    ));
    assert_eq!(older.body["items"][0]["decision_id"], decision_id.as_str());
    assert_eq!(older.body["items"][0]["person_id"], site.f.person);
    let bad = site.app.get("/api/v1/events?kind=teleport");
    assert_eq!(bad.status, 422);
    assert_eq!(site.app.get_as(None, "/api/v1/events/stream").status, 401);
}

#[test]
fn simulate_plays_readers_against_a_running_appliance() {
    for backend in backends() {
        simulate_plays_readers_against_a_running_appliance_on(backend);
    }
}

fn simulate_plays_readers_against_a_running_appliance_on(backend: Backend) {
    let site = site(Broker::Embedded, backend);
    for reader in ["side-in", "lobby-in"] {
        let r = site.app.post(
            "/api/v1/readers",
            json!({"reader_id": reader, "door_id": site.f.main_door}),
        );
        assert_eq!(r.status, 201);
    }
    let broker = format!("mqtt://{}:{}", site.host, site.port);
    let out = site.app.simulate(
        &[
            "--readers",
            "3",
            "--swipes",
            "30",
            "--rate",
            "200",
            "--broker",
            &broker,
        ],
        &[("GATEHOUSE_MQTT_TOPIC_ROOT", &site.topic_root)],
    );
    assert_simulated(&out, 30);
    let swipes = site.app.events(Some("swipe"));
    assert_eq!(swipes.len(), 30);
}

#[test]
fn lockdown_reaches_every_reader_at_once() {
    for backend in backends() {
        lockdown_reaches_every_reader_at_once_on(backend);
    }
}

fn lockdown_reaches_every_reader_at_once_on(backend: Backend) {
    use gatehouse_drivers::message::ReaderMode;
    let site = site(Broker::Embedded, backend);
    let side = site.app.post(
        "/api/v1/readers",
        json!({"reader_id": "side-in", "door_id": site.f.server_door}),
    );
    assert_eq!(side.status, 201);
    let mut main = site.reader("main-in", false);
    let mut other = site.reader("side-in", false);
    // On connecting, each reader is told its mode.
    site.runtime
        .block_on(main.wait_for_mode(ReaderMode::Normal, WAIT))
        .unwrap();
    site.runtime
        .block_on(other.wait_for_mode(ReaderMode::Normal, WAIT))
        .unwrap();
    let lock = |on: bool| {
        let r = site.app.put(
            &format!("/api/v1/sites/{}", site.f.site),
            json!({"name": "HQ", "timezone": "Europe/Berlin", "lockdown": on}),
        );
        assert_eq!(r.status, 200);
    };
    lock(true);
    site.runtime
        .block_on(main.wait_for_mode(ReaderMode::Locked, WAIT))
        .unwrap();
    site.runtime
        .block_on(other.wait_for_mode(ReaderMode::Locked, WAIT))
        .unwrap();
    let (_, answer) = site
        .runtime
        .block_on(main.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(
        matches!(
            answer,
            Command::Deny {
                code: DenyCode::Lockdown,
                ..
            }
        ),
        "{answer:?}"
    );
    lock(false);
    site.runtime
        .block_on(main.wait_for_mode(ReaderMode::Normal, WAIT))
        .unwrap();
    site.runtime
        .block_on(other.wait_for_mode(ReaderMode::Normal, WAIT))
        .unwrap();
    let (_, answer) = site
        .runtime
        .block_on(main.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
}

/// The server room door made card+PIN, Ada's card given PIN 4821 and the IT level there,
/// and a reader `server-in` at the door.
fn card_and_pin_door(site: &Site) {
    let f = &site.f;
    // The server room door wants card and PIN; Ada's card gets a PIN and the IT level.
    let r = site.app.put(
        &format!("/api/v1/doors/{}", f.server_door),
        json!({"zone_id": f.server_room, "name": "Server Room Door", "mode": "card_and_pin"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let cards = site
        .app
        .get(&format!("/api/v1/credentials?person_id={}", f.person))
        .body;
    let card_id = cards["items"][0]["id"].as_i64().unwrap();
    let r = site.app.put(
        &format!("/api/v1/credentials/{card_id}"),
        json!({"person_id": f.person, "card_uid": f.card, "pin": "4821"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["has_pin"], true);
    let always = site.app.get("/api/v1/schedules?q=Always").body["items"][0]["id"]
        .as_i64()
        .unwrap();
    let it = site.app.create(
        "access-levels",
        json!({"name": "IT", "items": [{"door_id": f.server_door, "schedule_id": always}]}),
    );
    site.app.create(
        "entitlements",
        json!({"person_id": f.person, "level_id": it}),
    );
    let r = site.app.post(
        "/api/v1/readers",
        json!({"reader_id": "server-in", "door_id": f.server_door}),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn card_and_pin_asks_for_the_pin_then_checks_it() {
    for backend in backends() {
        card_and_pin_asks_for_the_pin_then_checks_it_on(backend);
    }
}

fn card_and_pin_asks_for_the_pin_then_checks_it_on(backend: Backend) {
    let site = site(Broker::Embedded, backend);
    card_and_pin_door(&site);
    let mut reader = site.reader("server-in", false);
    let (_, first) = site
        .runtime
        .block_on(reader.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(first, Command::PinRequired { .. }), "{first:?}");
    let (_, wrong) = site
        .runtime
        .block_on(reader.swipe(site.card(), Some("0000"), WAIT))
        .unwrap();
    assert!(
        matches!(
            wrong,
            Command::Deny {
                code: DenyCode::PinWrong,
                ..
            }
        ),
        "{wrong:?}"
    );
    let (_, right) = site
        .runtime
        .block_on(reader.swipe(site.card(), Some("4821"), WAIT))
        .unwrap();
    assert!(matches!(right, Command::Grant { .. }), "{right:?}");
    // The PIN typed is on no record.
    let swipes = site.app.events(Some("swipe"));
    assert_pin_on_no_record(&swipes, "4821");
}

/// A reader's health as the API reports it.
pub(crate) fn reader_health(app: &crate::app::TestApp, reader_id: &str) -> serde_json::Value {
    let r = app.get("/api/v1/readers/health");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["reader_id"] == reader_id)
        .cloned()
        .unwrap()
}

#[test]
fn reader_health_follows_status_heartbeats_and_the_last_will() {
    for (broker, backend) in setups() {
        let site = site(broker, backend);
        let health = |site: &Site| reader_health(&site.app, "main-in");
        assert_eq!(
            health(&site)["online"],
            serde_json::Value::Null,
            "not heard from yet"
        );
        let mut reader = site.reader("main-in", false);
        site.runtime
            .block_on(reader.send(
                &EventBody::Heartbeat { uptime_s: 86_400 },
                chrono::Utc::now(),
            ))
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while !(health(&site)["online"] == true && health(&site)["uptime_s"] == 86_400) {
            assert!(std::time::Instant::now() < deadline, "{}", health(&site));
            std::thread::sleep(Duration::from_millis(50));
        }
        // The reader loses power: its last will says offline.
        drop(reader);
        while health(&site)["online"] != false {
            assert!(
                std::time::Instant::now() < deadline + WAIT,
                "{}",
                health(&site)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // ... and it is on record (just after the health board heard it).
        while site.app.events(Some("reader_offline")).len() != 1 {
            assert!(
                std::time::Instant::now() < deadline + WAIT,
                "no reader_offline event"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Throwaway PEM files made for each test: a CA, a server certificate it signed for
/// localhost and 127.0.0.1 with the server's key, and a second CA that signed nothing.
/// (The HTTPS tests use it too.)
pub(crate) struct Pki {
    /// Holds the files until the test ends.
    _dir: tempfile::TempDir,
    pub(crate) ca: PathBuf,
    pub(crate) other_ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let (ca_pem, issuer) = ca("Gatehouse test CA");
        let (other_pem, _) = ca("Somebody else's CA");
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let path = |name: &str| dir.path().join(name);
        let pki = Pki {
            ca: path("ca.pem"),
            other_ca: path("other-ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            _dir: dir,
        };
        std::fs::write(&pki.ca, ca_pem).unwrap();
        std::fs::write(&pki.other_ca, other_pem).unwrap();
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }

    fn trust(&self) -> ClientTls {
        ClientTls::from_ca_file(&self.ca).unwrap()
    }
}

/// The fixture site on an appliance whose embedded broker listens for TLS on a free port,
/// and for plain MQTT too when `plain` is set. Returns the site (its host and port are the
/// plain listener's, if any) and the TLS listener's address.
fn tls_site(pki: &Pki, plain: bool) -> (Site, SocketAddr) {
    let unique = format!("{}-{}", std::process::id(), rand_suffix());
    let topic_root = format!("gatehouse-test/{unique}/v1");
    let config = MqttConfig {
        broker: BrokerChoice::Embedded,
        listen: if plain { "127.0.0.1:0" } else { "" }.to_owned(),
        tls_listen: "127.0.0.1:0".to_owned(),
        tls_cert: pki.cert.clone(),
        tls_key: pki.key.clone(),
        topic_root: topic_root.clone(),
        ..MqttConfig::default()
    };
    let app = TestApp::with_mqtt(Backend::Sqlite, Some(config));
    let tls = app
        .mqtt_broker_tls
        .expect("the broker reports its TLS listener");
    assert_ne!(tls.port(), 0, "the real port, not the one asked for");
    assert_eq!(app.mqtt_broker.is_some(), plain);
    let (host, port) = match app.mqtt_broker {
        Some(addr) => (addr.ip().to_string(), addr.port()),
        None => (String::new(), 0),
    };
    (
        open_site(app, Broker::Embedded, host, port, topic_root),
        tls,
    )
}

impl Site {
    /// A reader's settings for the TLS listener at `tls`.
    fn tls_settings(&self, tls: SocketAddr, reader: &str) -> SimSettings {
        SimSettings {
            host: tls.ip().to_string(),
            port: tls.port(),
            ..self.settings(reader, &self.secret(reader), false)
        }
    }
}

#[test]
fn a_swipe_over_tls_gets_a_verified_grant() {
    let pki = Pki::new();
    let (site, tls) = tls_site(&pki, false);
    let settings = site.tls_settings(tls, "main-in");
    site.runtime.block_on(async {
        // A client that connects and never starts its handshake must hold up nobody.
        let _silent = tokio::net::TcpStream::connect(tls).await.unwrap();
        let mut reader = SimReader::connect_tls(settings.clone(), pki.trust(), 1)
            .await
            .expect("a reader that trusts the CA connects over TLS with its id and secret");
        // `swipe` returns only an answer whose mac verified under the reader's secret.
        let (_, answer) = reader.swipe(site.card(), None, WAIT).await.unwrap();
        assert!(
            matches!(
                answer,
                Command::Grant {
                    unlock_ms: 5000,
                    ..
                }
            ),
            "{answer:?}"
        );
    });
    assert_eq!(site.app.events(Some("swipe")).len(), 1);

    // A client that does not trust the CA fails the handshake.
    let stranger = ClientTls::from_ca_file(&pki.other_ca).unwrap();
    let untrusted = site
        .runtime
        .block_on(SimReader::connect_tls(settings.clone(), stranger, 1))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(untrusted.contains("certificate"), "{untrusted:?}");
    // Over TLS, the broker still wants the reader's own secret.
    let wrong = SimSettings {
        password: Some("not-the-secret-at-all".to_owned()),
        ..settings.clone()
    };
    assert!(
        site.runtime
            .block_on(SimReader::connect_tls(wrong, pki.trust(), 1))
            .is_err(),
        "a wrong secret was let in over TLS"
    );
    // Plain MQTT on the TLS port gets nowhere.
    assert!(
        site.runtime
            .block_on(SimReader::connect(settings, 1))
            .is_err()
    );
}

#[test]
fn plain_and_tls_readers_are_served_side_by_side() {
    let pki = Pki::new();
    let (site, tls) = tls_site(&pki, true);
    site.app.create(
        "readers",
        json!({"reader_id": "side-in", "door_id": site.f.main_door}),
    );
    let mut plain = site.reader("main-in", false);
    let mut secure = site
        .runtime
        .block_on(SimReader::connect_tls(
            site.tls_settings(tls, "side-in"),
            pki.trust(),
            1,
        ))
        .unwrap();
    site.runtime.block_on(async {
        let (_, granted) = plain.swipe(site.card(), None, WAIT).await.unwrap();
        assert!(matches!(granted, Command::Grant { .. }), "{granted:?}");
        let stranger = WireCredential::Card {
            uid: "DEADBEEF".into(),
        };
        let (_, denied) = secure.swipe(stranger, None, WAIT).await.unwrap();
        assert!(
            matches!(
                denied,
                Command::Deny {
                    code: DenyCode::UnknownCredential,
                    ..
                }
            ),
            "{denied:?}"
        );
    });
}

#[test]
fn a_busy_tls_port_stops_the_start_and_names_the_setting() {
    let pki = Pki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("GATEHOUSE_DATA_DIR", data.path().display().to_string()),
        ("GATEHOUSE_HTTP_LISTEN", "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_MQTT_LISTEN", "127.0.0.1:0".to_owned()),
        ("GATEHOUSE_MQTT_TLS_LISTEN", busy.clone()),
        ("GATEHOUSE_MQTT_TLS_CERT", pki.cert.display().to_string()),
        ("GATEHOUSE_MQTT_TLS_KEY", pki.key.display().to_string()),
    ];
    let config =
        gatehouse::config::Config::load(None, env.iter().map(|(k, v)| (k.to_string(), v.clone())))
            .expect("the settings are valid");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = runtime.block_on(gatehouse::app::serve::start(
        config,
        gatehouse::clock::Clock::System,
    ));
    let err = format!("{:#}", started.err().expect("the port is taken"));
    assert!(
        err.contains(&busy) && err.contains("GATEHOUSE_MQTT_TLS_LISTEN"),
        "{err}"
    );
}

#[test]
fn simulate_reaches_a_broker_that_listens_only_over_tls() {
    let pki = Pki::new();
    let (site, tls) = tls_site(&pki, false);
    let broker = format!("mqtts://127.0.0.1:{}", tls.port());
    let run = |ca: &std::path::Path| {
        let ca = ca.to_string_lossy();
        site.app.simulate(
            &[
                "--protocol",
                "mqtt",
                "--readers",
                "1",
                "--swipes",
                "5",
                "--rate",
                "50",
                "--broker",
                &broker,
                "--ca",
                &ca,
            ],
            &[("GATEHOUSE_MQTT_TOPIC_ROOT", &site.topic_root)],
        )
    };
    assert_simulated(&run(&pki.ca), 5);
    // Without the site's CA the simulated readers cannot trust the broker, and say so.
    let refused = run(&pki.other_ca);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn a_readers_events_are_judged_in_the_order_it_sent_them() {
    for backend in backends() {
        a_readers_events_are_judged_in_the_order_it_sent_them_on(backend);
    }
}

fn a_readers_events_are_judged_in_the_order_it_sent_them_on(backend: Backend) {
    let site = site(Broker::Embedded, backend);
    let mut reader = site.reader("main-in", false);
    // People leaving: REX, the door opens, the door closes, sent back to back. Judged out
    // of order, an opening would come before its REX and look forced.
    site.runtime.block_on(async {
        for _ in 0..30 {
            for body in [
                EventBody::Rex,
                EventBody::Door { open: true },
                EventBody::Door { open: false },
            ] {
                reader.send(&body, chrono::Utc::now()).await.unwrap();
            }
        }
    });
    let deadline = std::time::Instant::now() + WAIT;
    while site.app.events(Some("door_closed")).len() < 30 {
        assert!(std::time::Instant::now() < deadline, "events not recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(site.app.events(Some("rex")).len(), 30);
    assert!(
        site.app.events(Some("forced_open")).is_empty(),
        "a REX was judged after its door opened"
    );
}

#[test]
fn a_thousand_readers_coming_online_at_once_do_not_stall_the_appliance() {
    for backend in backends() {
        a_thousand_readers_coming_online_at_once_do_not_stall_the_appliance_on(backend);
    }
}

fn a_thousand_readers_coming_online_at_once_do_not_stall_the_appliance_on(backend: Backend) {
    let site = site(Broker::Embedded, backend);
    // 1,100 more readers: more than the MQTT client's queue of 1,024 requests holds.
    let mut file = String::from("version = 1\n");
    for i in 0..1100 {
        file.push_str(&format!(
            "[[readers]]\nreader_id = \"bulk-{i}\"\ndoor = \"Main Entrance\"\n\n"
        ));
    }
    let ctx = gatehouse::entities::ChangeContext {
        provenance: &gatehouse::identity::provenance::Provenance::cli("test-setup"),
        now: chrono::Utc::now(),
    };
    gatehouse::io::site_file::import(&mut site.app.db(), &file, &ctx, false, &|_, _| {}).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while site.app.state.live.readers().get("bulk-1099").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the readers never went live"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // All of them say `online` at once (a power cut ends): each is recorded and sent its
    // mode. Each reader connects as itself (the embedded broker lets a reader publish
    // only its own status), all first, then every status is sent at the same moment.
    // 4 descriptors per reader in this process (client, relay's two, rumqttd's).
    let readers: Vec<(String, String)> = (0..1100)
        .map(|i| {
            let id = format!("bulk-{i}");
            let secret = site.secret(&id);
            (id, secret)
        })
        .collect();
    let addr: SocketAddr = format!("{}:{}", site.host, site.port).parse().unwrap();
    site.runtime.block_on(async {
        let (go_tx, go) = tokio::sync::watch::channel(false);
        let (connected_tx, mut connected) = tokio::sync::mpsc::unbounded_channel();
        let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let root = site.topic_root.clone();
        for chunk in readers.chunks(100) {
            for (id, secret) in chunk {
                let (id, secret) = (id.clone(), secret.clone());
                let (go, connected_tx, sent_tx, root) = (
                    go.clone(),
                    connected_tx.clone(),
                    sent_tx.clone(),
                    root.clone(),
                );
                tokio::spawn(async move {
                    let result = announce_online(addr, &id, &secret, &root, go, connected_tx).await;
                    let _ = sent_tx.send(result.map_err(|e| format!("{id}: {e}")));
                });
            }
            // Connected in waves, so that the listener's backlog never overflows.
            for _ in chunk {
                connected.recv().await.unwrap();
            }
        }
        go_tx.send(true).unwrap();
        for _ in &readers {
            let result = sent.recv().await.unwrap();
            assert!(result.is_ok(), "{result:?}");
        }
    });
    let deadline = std::time::Instant::now() + WAIT * 3;
    while site.app.events(Some("reader_online")).len() < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} readers seen online",
            site.app.events(Some("reader_online")).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the appliance still answers swipes.
    let mut reader = site.reader("main-in", false);
    let (_, answer) = site
        .runtime
        .block_on(reader.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(answer, Command::Grant { .. }), "{answer:?}");
}

/// A reader that connects (and says so on `connected`), then on `go` publishes its retained
/// `online` and waits for the broker's PUBACK; bare MQTT on a socket, so that a thousand of
/// them cost a thousand sockets and no more.
async fn announce_online(
    addr: SocketAddr,
    reader_id: &str,
    secret: &str,
    root: &str,
    mut go: tokio::sync::watch::Receiver<bool>,
    connected: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<(), String> {
    use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut out = bytes::BytesMut::new();
    let mut connect = Connect::new(reader_id);
    connect.keep_alive = 60;
    connect.set_login(reader_id, secret);
    connect.write(&mut out).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    let mut input = bytes::BytesMut::new();
    let mut next_packet = async |stream: &mut tokio::net::TcpStream| loop {
        match Packet::read(&mut input, 1 << 16) {
            Ok(packet) => return Ok(packet),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        if stream
            .read_buf(&mut input)
            .await
            .map_err(|e| e.to_string())?
            == 0
        {
            return Err("closed".to_owned());
        }
    };
    match next_packet(&mut stream).await? {
        Packet::ConnAck(ack) if ack.code == rumqttc::mqttbytes::v4::ConnectReturnCode::Success => {}
        other => return Err(format!("refused: {other:?}")),
    }
    let _ = connected.send(());
    go.wait_for(|go| *go).await.map_err(|e| e.to_string())?;
    let mut publish = Publish::new(
        format!("{root}/readers/{reader_id}/status"),
        rumqttc::QoS::AtLeastOnce,
        "online",
    );
    publish.retain = true;
    publish.pkid = 1;
    out.clear();
    publish.write(&mut out).map_err(|e| e.to_string())?;
    stream.write_all(&out).await.map_err(|e| e.to_string())?;
    loop {
        if let Packet::PubAck(_) = next_packet(&mut stream).await? {
            return Ok(());
        }
    }
}

fn is_pin_wrong(answer: &Command) -> bool {
    matches!(
        answer,
        Command::Deny {
            code: DenyCode::PinWrong,
            ..
        }
    )
}

/// Five wrong PINs in a row block the card: the right PIN is refused during the block, an
/// alarm is open, and once the block's time has passed (on the appliance's clock) the
/// right PIN opens the door again.
#[test]
fn wrong_pins_in_a_row_block_the_card_until_the_block_ends() {
    for backend in backends() {
        wrong_pins_in_a_row_block_the_card_until_the_block_ends_on(backend);
    }
}

fn wrong_pins_in_a_row_block_the_card_until_the_block_ends_on(backend: Backend) {
    let shift: &'static ClockShift = Box::leak(Box::default());
    let site = site_on(Broker::Embedded, backend, Clock::Shifted(shift));
    card_and_pin_door(&site);
    let mut reader = site.reader("server-in", false);
    let swipe = |reader: &mut SimReader, pin: &str| {
        site.runtime
            .block_on(reader.swipe(site.card(), Some(pin), WAIT))
            .unwrap()
            .1
    };
    // Four wrong, then the right one: the count starts over.
    for _ in 0..4 {
        assert!(is_pin_wrong(&swipe(&mut reader, "0000")));
    }
    assert!(matches!(swipe(&mut reader, "4821"), Command::Grant { .. }));
    assert!(site.app.events(Some("pin_lockout")).is_empty());
    for _ in 0..5 {
        assert!(is_pin_wrong(&swipe(&mut reader, "1111")));
    }
    // The sixth attempt, with the right PIN, is refused: the card is blocked.
    let sixth = swipe(&mut reader, "4821");
    assert!(is_pin_wrong(&sixth), "{sixth:?}");
    // Also without a PIN at a door that asks for none.
    let mut main = site.reader("main-in", false);
    let (_, at_main) = site
        .runtime
        .block_on(main.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(is_pin_wrong(&at_main), "{at_main:?}");
    // One alarm, open on the dashboard's list, naming the card's holder and the door.
    let lockouts = site.app.events(Some("pin_lockout"));
    assert_eq!(lockouts.len(), 1, "{lockouts:?}");
    assert_eq!(lockouts[0].event.person_id, Some(site.f.person));
    assert_eq!(lockouts[0].event.door_id, Some(site.f.server_door));
    let open = gatehouse::readers::alarms::open(
        &mut site.app.db(),
        chrono::Utc::now() + shift.ahead(),
        10,
    )
    .unwrap();
    assert!(
        open.iter().any(|e| e.event.kind == "pin_lockout"),
        "{open:?}"
    );
    let listed = site.app.get("/api/v1/events?kind=pin_lockout");
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_pin_on_no_record(&site.app.events(Some("swipe")), "4821");
    assert_pin_on_no_record(&site.app.events(Some("swipe")), "1111");
    assert!(
        !lockouts[0].event.detail.contains("1111"),
        "{}",
        lockouts[0].event.detail
    );
    // 15 minutes later (the default block) the right PIN opens the door again. The
    // reader's clock moves with the appliance's: commands are believed within 30 s.
    shift.advance(chrono::TimeDelta::minutes(15) + chrono::TimeDelta::seconds(1));
    reader.set_clock(ScaledClock::starting_at(
        chrono::Utc::now() + shift.ahead(),
        1,
    ));
    let after = swipe(&mut reader, "4821");
    assert!(matches!(after, Command::Grant { .. }), "{after:?}");
}

/// Wrong PINs sent at once from two readers are not all checked: no more than the limit
/// of them reach the PIN check, and the card is blocked once.
#[test]
fn wrong_pins_sent_at_once_are_not_all_checked() {
    for backend in backends() {
        wrong_pins_sent_at_once_are_not_all_checked_on(backend);
    }
}

fn wrong_pins_sent_at_once_are_not_all_checked_on(backend: Backend) {
    let site = site(Broker::Embedded, backend);
    card_and_pin_door(&site);
    let r = site.app.post(
        "/api/v1/readers",
        json!({"reader_id": "server-in-2", "door_id": site.f.server_door}),
    );
    assert_eq!(r.status, 201);
    let mut readers = [
        site.reader("server-in", false),
        site.reader("server-in-2", false),
    ];
    let body = EventBody::Swipe {
        credential: site.card(),
        pin: Some("9999".to_owned()),
    };
    site.runtime.block_on(async {
        for _ in 0..10 {
            for reader in readers.iter_mut() {
                let now = reader.now();
                reader.send(&body, now).await.unwrap();
            }
        }
        for reader in readers.iter_mut() {
            for _ in 0..10 {
                let answer = reader.next_answer(WAIT).await.unwrap().unwrap();
                assert!(is_pin_wrong(&answer), "{answer:?}");
            }
        }
    });
    let swipes = site.app.events(Some("swipe"));
    assert_eq!(swipes.len(), 20);
    let checked = swipes
        .iter()
        .filter(|e| !e.event.detail.contains("pin_lockout"))
        .count();
    assert!(checked <= 5, "{checked} PINs were checked: {swipes:?}");
    assert_eq!(site.app.events(Some("pin_lockout")).len(), 1);
}

/// `simulate` closes every door it opens, and its readers leave only once the broker has
/// their last events: each door opening on record is followed by its closing, before the
/// reader's going offline, and no door is left looking open.
#[test]
fn simulate_closes_every_door_it_opens_before_its_readers_go_offline() {
    let site = site(Broker::Embedded, Backend::Sqlite);
    let broker = format!("mqtt://{}:{}", site.host, site.port);
    let out = site.app.simulate(
        &[
            "--readers",
            "1",
            "--swipes",
            "20",
            "--rate",
            "100",
            "--broker",
            &broker,
        ],
        &[("GATEHOUSE_MQTT_TOPIC_ROOT", &site.topic_root)],
    );
    assert_simulated(&out, 20);
    crate::app::wait_until("the simulated reader's going offline on record", || {
        !site.app.events(Some("reader_offline")).is_empty()
    });
    // Oldest first.
    let mut events: Vec<_> = site
        .app
        .events(None)
        .into_iter()
        .filter(|e| e.event.reader_id.as_deref() == Some("main-in"))
        .collect();
    events.reverse();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    let opens = kinds.iter().filter(|k| **k == "door_open").count();
    assert!(opens > 0, "{kinds:?}");
    assert_eq!(
        opens,
        kinds.iter().filter(|k| **k == "door_closed").count(),
        "{kinds:?}"
    );
    let offline = kinds.iter().position(|k| *k == "reader_offline").unwrap();
    let last_door = kinds.iter().rposition(|k| k.starts_with("door_")).unwrap();
    assert!(last_door < offline, "{kinds:?}");
    assert_eq!(kinds[last_door], "door_closed", "{kinds:?}");
    assert!(site.app.events(Some("forced_open")).is_empty());
    // The console shows the door closed, not open or held open.
    let mut admin = crate::console::signed_in(&site.app, "admin");
    let list = admin.get("/doors").body;
    assert!(!list.contains("open since"), "{list}");
}
