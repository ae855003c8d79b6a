//! The packaged Mosquitto configuration (packaging/mosquitto/), run for real: a private
//! mosquitto on free loopback ports with the shipped options and ACL, only its ports and
//! file paths changed. Skipped, saying why, where mosquitto is not installed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use gatehouse::config::{BrokerChoice, MqttConfig};
use gatehouse_drivers::message::WireCredential;
use gatehouse_drivers::sim::{SimReader, SimSettings};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::app::{Backend, TestApp, build_site};

const SHIPPED_CONF: &str = include_str!("../../packaging/mosquitto/gatehouse.conf");
const SHIPPED_ACL: &str = include_str!("../../packaging/mosquitto/gatehouse.acl");
const APPLIANCE_USER: &str = "gatehouse-appliance";
const APPLIANCE_CLIENT_ID: &str = "gatehouse-appliance";
const APPLIANCE_PASSWORD: &str = "appliance-password-for-tests";
const WAIT: Duration = Duration::from_secs(10);

/// A private mosquitto with the packaged configuration, stopped when dropped.
struct PackagedMosquitto {
    child: Child,
    /// The readers' listener (`listener 1883` as shipped).
    readers_port: u16,
    /// The appliance's listener (`listener 1884 127.0.0.1` as shipped).
    appliance_port: u16,
    dir: tempfile::TempDir,
}

fn installed(name: &str, places: &[&str]) -> Option<PathBuf> {
    places
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}

/// A listener on a free loopback port, to be let go just before the port is used.
fn free_port() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

impl PackagedMosquitto {
    /// Starts one whose password file holds `logins` (username, password); `None`, saying
    /// why, when mosquitto or mosquitto_passwd is not installed.
    fn start(logins: &[(&str, &str)]) -> Option<PackagedMosquitto> {
        let places = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"];
        let (Some(binary), Some(passwd)) = (
            installed("mosquitto", &places),
            installed("mosquitto_passwd", &places),
        ) else {
            eprintln!(
                "skipping the packaged Mosquitto test: mosquitto and mosquitto_passwd are not installed (apt install mosquitto mosquitto-clients)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // Run as root, mosquitto drops to its own user before reading the password file
        // and ACL: let it read them (they are a test's throwaway logins).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let persistence = dir.path().join("persistence");
        std::fs::create_dir(&persistence).unwrap();
        std::fs::set_permissions(&persistence, std::fs::Permissions::from_mode(0o777)).unwrap();
        let password_file = dir.path().join("gatehouse.passwd");
        for (i, (user, password)) in logins.iter().enumerate() {
            let mut command = Process::new(&passwd);
            if i == 0 {
                command.arg("-c");
            }
            let status = command
                .arg("-b")
                .arg(&password_file)
                .arg(user)
                .arg(password)
                .status()
                .unwrap();
            assert!(status.success(), "mosquitto_passwd failed for {user}");
        }
        let acl_file = dir.path().join("gatehouse.acl");
        std::fs::write(&acl_file, SHIPPED_ACL).unwrap();
        for file in [&password_file, &acl_file] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        // Both bound at once, so that they cannot be given the same port.
        let (readers, appliance) = (free_port(), free_port());
        let (readers_port, appliance_port) = (
            readers.local_addr().unwrap().port(),
            appliance.local_addr().unwrap().port(),
        );
        drop((readers, appliance));
        let mut conf = String::from(
            "# packaging/mosquitto/gatehouse.conf, ports and paths changed for a test\n",
        );
        for line in SHIPPED_CONF.lines() {
            let changed = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["listener", "1883"] => format!("listener {readers_port} 127.0.0.1"),
                ["listener", "1884", "127.0.0.1"] => format!("listener {appliance_port} 127.0.0.1"),
                ["listener", ..] => panic!("a listener this test does not know: {line}"),
                ["password_file", _] => format!("password_file {}", password_file.display()),
                ["acl_file", _] => format!("acl_file {}", acl_file.display()),
                _ => line.to_owned(),
            };
            conf.push_str(&changed);
            conf.push('\n');
        }
        conf.push_str(&format!(
            "persistence_location {}/\n",
            persistence.display()
        ));
        let conf_file = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_file, conf).unwrap();
        let child = Process::new(&binary)
            .arg("-c")
            .arg(&conf_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mosquitto = PackagedMosquitto {
            child,
            readers_port,
            appliance_port,
            dir,
        };
        let deadline = Instant::now() + WAIT;
        for port in [readers_port, appliance_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "mosquitto did not listen on {port} (config in {})",
                    mosquitto.dir.path().display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(mosquitto)
    }
}

impl Drop for PackagedMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Counts a client's connections and drops, driving it until the runtime ends.
struct Watched {
    _client: AsyncClient,
    connects: std::sync::Arc<std::sync::atomic::AtomicU32>,
    drops: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

fn watch(runtime: &tokio::runtime::Runtime, options: MqttOptions) -> Watched {
    use std::sync::atomic::Ordering;
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let connects = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (c, d) = (connects.clone(), drops.clone());
    runtime.spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                Ok(_) => {}
                Err(_) => {
                    d.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    Watched {
        _client: client,
        connects,
        drops,
    }
}

/// Issue 10: with the packaged config as it was, a reader that connected with the
/// appliance's client id knocked the appliance off (the broker drops the older of two
/// connections with one id), and the two took turns: swipes went unanswered. Readers'
/// client ids are now their usernames.
#[test]
fn a_reader_cannot_knock_the_appliance_off_with_its_client_id() {
    use std::sync::atomic::Ordering;
    let secret = "gate-in-secret-for-tests";
    let Some(mosquitto) = PackagedMosquitto::start(&[
        (APPLIANCE_USER, APPLIANCE_PASSWORD),
        ("gate-in", secret),
        ("side-in", "side-in-secret-for-tests"),
    ]) else {
        return;
    };
    // The appliance on its own listener, and the fixture site with a reader whose secret is
    // the one in the password file.
    let app = TestApp::with_mqtt(
        Backend::Sqlite,
        Some(MqttConfig {
            broker: BrokerChoice::External,
            url: format!("mqtt://127.0.0.1:{}", mosquitto.appliance_port),
            username: APPLIANCE_USER.to_owned(),
            password: APPLIANCE_PASSWORD.to_owned(),
            client_id: APPLIANCE_CLIENT_ID.to_owned(),
            ..MqttConfig::default()
        }),
    );
    let f = build_site(&app);
    let r = app.post(
        "/api/v1/readers",
        serde_json::json!({"reader_id": "gate-in", "door_id": f.main_door, "secret": secret}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    let runtime = runtime();
    let settings = SimSettings {
        host: "127.0.0.1".to_owned(),
        port: mosquitto.readers_port,
        reader_id: "gate-in".to_owned(),
        secret: secret.to_owned(),
        username: Some("gate-in".to_owned()),
        password: Some(secret.to_owned()),
        topic_root: "gatehouse/v1".to_owned(),
        sign_events: false,
    };
    let mut reader = runtime.block_on(SimReader::connect(settings, 1)).unwrap();
    let card = WireCredential::Card {
        uid: f.card.to_owned(),
    };
    // Answered (granted, denied or refused, whatever the policy says): the appliance is
    // connected and serving.
    runtime
        .block_on(reader.swipe(card.clone(), None, WAIT))
        .expect("the appliance answers through the packaged Mosquitto");

    // Another reader asks for the appliance's client id.
    let mut options = MqttOptions::new(APPLIANCE_CLIENT_ID, "127.0.0.1", mosquitto.readers_port);
    options.set_credentials("side-in", "side-in-secret-for-tests");
    options.set_keep_alive(Duration::from_secs(10));
    let intruder = watch(&runtime, options);
    let deadline = Instant::now() + WAIT;
    while intruder.connects.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the intruder never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Swipes keep being answered, and neither client is dropped: had the intruder taken
    // the appliance's id, the appliance's reconnection would drop it in turn.
    for _ in 0..20 {
        runtime
            .block_on(reader.swipe(card.clone(), None, WAIT))
            .expect("a swipe went unanswered while a reader used the appliance's client id");
    }
    assert_eq!(intruder.drops.load(Ordering::SeqCst), 0);
    assert_eq!(intruder.connects.load(Ordering::SeqCst), 1);
    assert_eq!(reader.connects(), 1);
}

/// Issue 10: while the appliance was away, Mosquitto kept 1,000 of its events (its default
/// `max_queued_messages`) and dropped the rest, although it had acknowledged them to the
/// readers. The packaged config keeps a day's worth.
#[test]
fn events_beyond_a_thousand_wait_for_the_appliance() {
    const SWIPES: u16 = 1_500;
    let Some(mosquitto) = PackagedMosquitto::start(&[
        (APPLIANCE_USER, APPLIANCE_PASSWORD),
        ("main-in", "main-in-secret-for-tests"),
    ]) else {
        return;
    };
    let runtime = runtime();
    let appliance_options = || {
        let mut options =
            MqttOptions::new(APPLIANCE_CLIENT_ID, "127.0.0.1", mosquitto.appliance_port);
        options
            .set_credentials(APPLIANCE_USER, APPLIANCE_PASSWORD)
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(10));
        options
    };
    runtime.block_on(async {
        // The appliance's persistent session, as it subscribes on every connect; then it
        // goes away.
        let (client, mut eventloop) = AsyncClient::new(appliance_options(), 16);
        client
            .subscribe("gatehouse/v1/readers/+/events", QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            match tokio::time::timeout(WAIT, eventloop.poll()).await.unwrap() {
                Ok(Event::Incoming(Packet::SubAck(_))) => break,
                Ok(_) => {}
                Err(e) => panic!("the appliance could not subscribe: {e}"),
            }
        }
        client.disconnect().await.unwrap();
        while !matches!(
            tokio::time::timeout(WAIT, eventloop.poll()).await.unwrap(),
            Err(_) | Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))
        ) {}
        drop(eventloop);

        // A reader swipes 1,500 times meanwhile; the broker acknowledges every one.
        let mut options = MqttOptions::new("main-in", "127.0.0.1", mosquitto.readers_port);
        options
            .set_credentials("main-in", "main-in-secret-for-tests")
            .set_keep_alive(Duration::from_secs(10));
        let (reader, mut eventloop) = AsyncClient::new(options, 2 * usize::from(SWIPES));
        for seq in 1..=SWIPES {
            let event = format!(
                r#"{{"type":"swipe","seq":{seq},"ts":"2026-12-08T08:00:00Z","credential":{{"kind":"card","uid":"04A1B2C3"}}}}"#
            );
            reader
                .publish("gatehouse/v1/readers/main-in/events", QoS::AtLeastOnce, false, event)
                .await
                .unwrap();
        }
        let mut acknowledged = 0;
        while acknowledged < SWIPES {
            match tokio::time::timeout(WAIT, eventloop.poll()).await.unwrap() {
                Ok(Event::Incoming(Packet::PubAck(_))) => acknowledged += 1,
                Ok(_) => {}
                Err(e) => panic!("the reader was dropped after {acknowledged} swipes: {e}"),
            }
        }

        // The appliance comes back to its session: every swipe is there, in order.
        let (_client, mut eventloop) = AsyncClient::new(appliance_options(), 16);
        let mut next = 1u16;
        while next <= SWIPES {
            let event = match tokio::time::timeout(Duration::from_secs(3), eventloop.poll()).await
            {
                Ok(event) => event,
                Err(_) => panic!(
                    "the appliance got {} of {SWIPES} acknowledged swipes",
                    next - 1
                ),
            };
            if let Ok(Event::Incoming(Packet::Publish(p))) = event {
                let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                assert_eq!(body["seq"], next, "out of order or missing");
                next += 1;
            }
        }
    });
}

/// `gatehouse simulate --card` through the appliance's listener of the packaged config:
/// the visitor keeps a client id of its own there (on the readers' listener every client
/// of one username has the same id), so the real reader stays connected.
#[test]
fn simulate_one_card_leaves_the_real_reader_connected() {
    let secret = "gate-in-secret-for-tests";
    let Some(mosquitto) =
        PackagedMosquitto::start(&[(APPLIANCE_USER, APPLIANCE_PASSWORD), ("gate-in", secret)])
    else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.appliance_port);
    let app = TestApp::with_mqtt(
        Backend::Sqlite,
        Some(MqttConfig {
            broker: BrokerChoice::External,
            url: url.clone(),
            username: APPLIANCE_USER.to_owned(),
            password: APPLIANCE_PASSWORD.to_owned(),
            client_id: APPLIANCE_CLIENT_ID.to_owned(),
            ..MqttConfig::default()
        }),
    );
    let f = build_site(&app);
    let r = app.post(
        "/api/v1/readers",
        serde_json::json!({"reader_id": "gate-in", "door_id": f.main_door, "secret": secret}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let runtime = runtime();
    let settings = SimSettings {
        host: "127.0.0.1".to_owned(),
        port: mosquitto.readers_port,
        reader_id: "gate-in".to_owned(),
        secret: secret.to_owned(),
        username: Some("gate-in".to_owned()),
        password: Some(secret.to_owned()),
        topic_root: "gatehouse/v1".to_owned(),
        sign_events: false,
    };
    let mut reader = runtime.block_on(SimReader::connect(settings, 1)).unwrap();
    let card = WireCredential::Card {
        uid: f.card.to_owned(),
    };
    runtime
        .block_on(reader.swipe(card.clone(), None, WAIT))
        .expect("the appliance answers through the packaged Mosquitto");

    let out = app.simulate(
        &["--reader", "gate-in", "--card", f.card, "--broker", &url],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("gate-in: "),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime
        .block_on(reader.swipe(card, None, WAIT))
        .expect("the real reader is still served");
    assert_eq!(reader.connects(), 1, "the check cut the real reader off");
}
