//! The `gatehouse` binary as an installer uses it: config checks, migrate, admin, import,
//! explain, audit verify and one swipe from `simulate`, with their exit codes and messages.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::site_file::SMALL_SITE;

pub(crate) struct Install {
    pub(crate) dir: tempfile::TempDir,
}

impl Install {
    pub(crate) fn new() -> Install {
        Install {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_DATA_DIR", self.dir.path().join("data"))
            .env("GATEHOUSE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    pub(crate) fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "gatehouse {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

#[test]
fn check_config_reports_the_bad_setting() {
    let install = Install::new();
    let valid = install.ok(&["check-config"], None);
    assert!(valid.contains("configuration is valid"), "{valid}");
    assert!(
        valid.contains("embedded broker: plain MQTT on 0.0.0.0:1883"),
        "{valid}"
    );
    assert!(valid.contains("modbus        polls every 50 ms"), "{valid}");
    assert!(valid.contains("kept 365 days"), "{valid}");
    let path = install.dir.path().join("g.toml");
    std::fs::write(
        &path,
        "[http]\nlisten = \"0.0.0.0:8080\"\n[database]\npool_size = 500\n",
    )
    .unwrap();
    let out = install.run(&["--config", path.to_str().unwrap(), "check-config"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database.pool_size"), "{err}");
    std::fs::write(&path, "[htp]\nlisten = 1\n").unwrap();
    let out = install.run(&["--config", path.to_str().unwrap(), "check-config"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("htp"));
    let out = install.run(&["--config", "/nonexistent/g.toml", "check-config"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/g.toml"));
}

#[test]
fn a_busy_port_is_a_clear_startup_error() {
    let install = Install::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let serve = |env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("serve")
            .current_dir(install.dir.path())
            .env("GATEHOUSE_DATA_DIR", install.dir.path().join("data"))
            .env("GATEHOUSE_LOG", "off")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(&[
        ("GATEHOUSE_HTTP_LISTEN", &busy),
        ("GATEHOUSE_MQTT_BROKER", "off"),
    ]);
    assert!(
        err.contains("in use") && err.contains("GATEHOUSE_HTTP_LISTEN"),
        "{err}"
    );
    let code = install
        .dir
        .path()
        .join("data")
        .join(gatehouse::console::setup::SETUP_CODE_FILE);
    assert!(
        !code.exists(),
        "a start that failed wrote no setup code for nobody to use"
    );
    let err = serve(&[
        ("GATEHOUSE_HTTP_LISTEN", "127.0.0.1:0"),
        ("GATEHOUSE_MQTT_LISTEN", &busy),
    ]);
    assert!(
        err.contains(&busy) && err.contains("GATEHOUSE_MQTT_LISTEN"),
        "{err}"
    );
    let reason = std::io::Error::from(std::io::ErrorKind::AddrInUse).to_string();
    let os_reason = std::net::TcpListener::bind(&busy).unwrap_err().to_string();
    assert_eq!(
        err.matches(&os_reason).count(),
        1,
        "the OS's reason once ({reason}): {err}"
    );
    assert!(!code.exists(), "nor one that failed on the MQTT port");

    // check-config sees the busy port before a start fails on it.
    let checked = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("check-config")
        .current_dir(install.dir.path())
        .env("GATEHOUSE_DATA_DIR", install.dir.path().join("data"))
        .env("GATEHOUSE_HTTP_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_MQTT_LISTEN", &busy)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(
        out.contains(&format!(
            "warning: [mqtt] listen {busy} cannot be listened on now"
        )),
        "{out}"
    );
    assert!(out.contains("GATEHOUSE_MQTT_LISTEN"), "{out}");
}

#[test]
fn installer_flow_import_explain_and_audit() {
    let install = Install::new();
    install.ok(&["migrate"], None);
    let short = install.run(
        &["admin", "create", "alice", "--password-stdin"],
        Some("short\n"),
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));
    // `< /dev/null`: no password at all, and the way to give one.
    let none = install.run(&["admin", "create", "bob"], Some(""));
    assert_eq!(none.status.code(), Some(2));
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        err.contains("no password was given") && err.contains("admin create bob --password-stdin"),
        "{err}"
    );
    install.ok(
        &[
            "admin",
            "create",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    let token = install.ok(&["admin", "token", "create", "alice", "--name", "ci"], None);
    assert!(token.trim().starts_with("gh_"), "{token}");
    let site = install.dir.path().join("site.toml");
    std::fs::write(&site, SMALL_SITE).unwrap();
    let dry = install.ok(&["import", "--dry-run", site.to_str().unwrap()], None);
    assert!(dry.contains("dry run"), "{dry}");
    let people = install.ok(&["export"], None);
    assert!(!people.contains("Ada Lovelace"), "a dry run writes nothing");
    let report = install.ok(&["import", site.to_str().unwrap()], None);
    assert!(report.contains("people"), "{report}");
    // Monday 2026-11-23 06:30 Berlin: before business hours.
    let denied = install.run(
        &[
            "explain",
            "--person",
            "E1",
            "--door",
            "Main Entrance",
            "--at",
            "2026-11-23T05:30:00Z",
        ],
        None,
    );
    assert_eq!(denied.status.code(), Some(1), "denied exits 1");
    let text = String::from_utf8(denied.stdout).unwrap();
    assert!(text.contains("level 'Staff'"), "{text}");
    assert!(
        text.contains("closed then, opens 2026-11-23 07:00 CET"),
        "{text}"
    );
    let json = install.ok(
        &[
            "explain",
            "--card",
            "04A1B2C3",
            "--door",
            "Main Entrance",
            "--at",
            "2026-11-23T09:30:00Z",
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["granted"], true, "{json}");
    let unknown = install.run(
        &["explain", "--person", "E404", "--door", "Main Entrance"],
        None,
    );
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("E404"));
    assert_eq!(unknown.status.code(), Some(2), "an error exits 2");
    let verified = install.ok(&["audit", "verify"], None);
    assert!(verified.contains("intact"), "{verified}");
    let head = verified
        .split_whitespace()
        .find(|w| w.contains(':') && w.len() > 60)
        .unwrap()
        .to_owned();
    // Deleting the newest entry leaves a valid, shorter chain; the recorded head catches it.
    let db = install.dir.path().join("data").join("gatehouse.db");
    {
        use diesel::connection::SimpleConnection;
        let pool = gatehouse::store::open(&format!("sqlite://{}", db.display()), 1).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
            .unwrap();
    }
    assert!(install.ok(&["audit", "verify"], None).contains("intact"));
    let out = install.run(&["audit", "verify", "--expect-head", &head], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("newest entries were deleted"));
    // Tamper with the database behind the appliance's back.
    let conn_url = format!("sqlite://{}", db.display());
    {
        use diesel::connection::SimpleConnection;
        let pool = gatehouse::store::open(&conn_url, 1).unwrap();
        pool.get()
            .unwrap()
            .batch_execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = 3")
            .unwrap();
    }
    let out = install.run(&["audit", "verify"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("entry #3"));
}

#[test]
fn bad_site_file_exits_nonzero_and_imports_nothing() {
    let install = Install::new();
    let site = install.dir.path().join("site.toml");
    std::fs::write(
        &site,
        SMALL_SITE.replace("cron = \"0 7 * * Mon-Fri\"", "cron = \"at seven\""),
    )
    .unwrap();
    let out = install.run(&["import", site.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schedules[0] (Business hours)") && err.contains("windows[0].cron"),
        "{err}"
    );
    assert!(err.contains("nothing was imported"));
    let export = install.ok(&["export"], None);
    assert!(!export.contains("[[sites]]"), "{export}");
}

#[test]
fn simulate_one_card_at_one_reader_prints_its_answer() {
    let site = crate::mqtt::site(crate::mqtt::Broker::Embedded, crate::app::Backend::Sqlite);
    let broker = format!("mqtt://{}", site.app.mqtt_broker.unwrap());
    let topic_root = site.app.state.config.mqtt.topic_root.clone();
    // A Modbus reader at the same door, on a free port where `simulate` will listen.
    let modbus_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    site.app.create(
        "readers",
        serde_json::json!({"reader_id": "main-mb", "door_id": site.f.main_door,
               "protocol": "modbus", "modbus_host": "127.0.0.1", "modbus_port": modbus_port}),
    );
    let once = |reader: &str, card: &str, topic_root: &str| {
        site.app.simulate(
            &["--reader", reader, "--card", card, "--broker", &broker],
            &[("GATEHOUSE_MQTT_TOPIC_ROOT", topic_root)],
        )
    };
    let answered = |out: &Output| {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
        assert!(stdout.trim_end().ends_with(" ms"), "{stdout}");
        stdout
    };

    // The card as typed by hand, in lower case.
    let granted = answered(&once("main-in", "04a1b2c3", &topic_root));
    assert!(
        granted.starts_with("main-in: granted (unlock 5000 ms), "),
        "{granted}"
    );
    // A Modbus device hears only its beeper; the deny code and unlock time come from the
    // event log.
    let granted = answered(&once("main-mb", "04A1B2C3", &topic_root));
    assert!(
        granted.starts_with("main-mb: granted (unlock 5000 ms), "),
        "{granted}"
    );

    let suspend = site.app.put(
        &format!("/api/v1/people/{}", site.f.person),
        serde_json::json!({"employee_id": "E1", "name": "Ada Lovelace", "status": "suspended"}),
    );
    assert_eq!(suspend.status, 200, "{}", suspend.body);
    let denied = answered(&once("main-in", "04A1B2C3", &topic_root));
    assert!(
        denied.starts_with("main-in: denied: inactive, "),
        "{denied}"
    );
    let denied = answered(&once("main-mb", "04A1B2C3", &topic_root));
    assert!(
        denied.starts_with("main-mb: denied: inactive, "),
        "{denied}"
    );

    // Newest first: the four swipes, each at its reader, for the person, as printed.
    let swipes = site.app.events(Some("swipe"));
    let recorded: Vec<_> = swipes
        .iter()
        .map(|e| {
            assert_eq!(e.event.person_id, Some(site.f.person), "{e:?}");
            (
                e.event.reader_id.as_deref().unwrap(),
                e.event.result.as_deref().unwrap(),
                e.event.deny_code.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            ("main-mb", "denied", Some("inactive")),
            ("main-in", "denied", Some("inactive")),
            ("main-mb", "granted", None),
            ("main-in", "granted", None),
        ]
    );

    let unknown = once("main-out", "04A1B2C3", &topic_root);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("no reader 'main-out' is registered"), "{err}");

    // On a topic root the appliance does not use, the embedded broker lets the reader
    // neither subscribe nor publish: the check says so, and nothing is decided.
    let elsewhere = once("main-in", "04A1B2C3", "nobody-listens/v1");
    assert!(!elsewhere.status.success());
    assert!(elsewhere.stdout.is_empty());
    let err = String::from_utf8_lossy(&elsewhere.stderr);
    assert!(
        err.contains("cannot connect to the MQTT broker") && err.contains("'nobody-listens/v1'"),
        "{err}"
    );
    assert_eq!(site.app.events(Some("swipe")).len(), 4);

    let bad_card = once("main-in", "not-hex", &topic_root);
    assert!(!bad_card.status.success());
    let err = String::from_utf8_lossy(&bad_card.stderr);
    assert!(
        err.contains("--card") && err.contains("not hexadecimal"),
        "{err}"
    );
}

#[test]
fn simulate_one_card_leaves_the_real_reader_connected_and_online() {
    use gatehouse_drivers::message::Command as ReaderCommand;
    use std::time::{Duration, Instant};

    const WAIT: Duration = Duration::from_secs(10);
    let site = crate::mqtt::site(crate::mqtt::Broker::Embedded, crate::app::Backend::Sqlite);
    let broker = format!("mqtt://{}", site.app.mqtt_broker.unwrap());
    let topic_root = site.app.state.config.mqtt.topic_root.clone();
    let online = || crate::mqtt::reader_health(&site.app, "main-in")["online"].clone();
    // The reader at the door is connected, and the appliance shows it online.
    let mut reader = site.reader("main-in", false);
    let deadline = Instant::now() + WAIT;
    while online() != true {
        assert!(Instant::now() < deadline, "never online: {}", online());
        std::thread::sleep(Duration::from_millis(50));
    }

    // An installer checks the door with the reader's id while the reader is connected.
    let out = site.app.simulate(
        &[
            "--reader",
            "main-in",
            "--card",
            site.f.card,
            "--broker",
            &broker,
        ],
        &[("GATEHOUSE_MQTT_TOPIC_ROOT", &topic_root)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("main-in: granted (unlock 5000 ms), "),
        "{stdout}"
    );

    // The real reader is still served, over the connection it had before the check: the
    // check neither cut it off (a shared client id) nor reported it offline (a last will).
    // Its answer comes after anything the check left behind for the reader, since the
    // appliance handles one reader's messages in order.
    let (_, answer) = site
        .runtime
        .block_on(reader.swipe(site.card(), None, WAIT))
        .unwrap();
    assert!(matches!(answer, ReaderCommand::Grant { .. }), "{answer:?}");
    assert_eq!(reader.connects(), 1, "the check cut the reader off");
    assert_eq!(online(), true, "the check left the reader looking offline");
    assert!(site.app.events(Some("reader_offline")).is_empty());
}

/// `simulate --day` plays part of a day of the example office on a private appliance whose
/// clock runs as fast: on a Monday morning people come in and are let in; on a Sunday
/// morning the few who try are refused; every swipe is answered as planned; the kept
/// database holds the day's events at the day's times, and the installer's own database
/// gets none of them.
#[test]
fn simulate_a_day_plays_the_site_on_its_own_clock() {
    let install = Install::new();
    let office = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/examples/office.toml"
    );
    install.ok(&["import", office], None);
    let kept = install.dir.path().join("monday.db");
    let day = |date: &str, keep: Option<&str>| {
        let mut args = vec![
            "simulate", "--day", date, "--from", "07:30", "--to", "09:00", "--speed", "600",
            "--people", "80",
        ];
        if let Some(path) = keep {
            args.extend(["--keep", path]);
        }
        install.ok(&args, None)
    };
    let hour_counts = |report: &str| -> (u64, u64) {
        report
            .lines()
            .filter(|l| l.len() > 5 && l.as_bytes()[2] == b':' && l.starts_with('0'))
            .map(|l| {
                let n: Vec<u64> = l
                    .split_whitespace()
                    .skip(1)
                    .map(|w| w.parse().unwrap())
                    .collect();
                (n[0], n[1])
            })
            .fold((0, 0), |(g, d), (g2, d2)| (g + g2, d + d2))
    };

    let monday = day("2026-12-07", Some(kept.to_str().unwrap()));
    assert!(monday.contains("unanswered 0"), "{monday}");
    assert!(monday.contains("not as planned 0"), "{monday}");
    assert!(
        monday.contains("07:00") && monday.contains("08:00"),
        "{monday}"
    );
    let (granted, denied) = hour_counts(&monday);
    assert!(
        granted > 30 && granted > denied * 5,
        "a working morning: {monday}"
    );

    let sunday = day("2026-12-06", None);
    assert!(sunday.contains("not as planned 0"), "{sunday}");
    let (sunday_granted, sunday_denied) = hour_counts(&sunday);
    assert!(
        (sunday_granted + sunday_denied) * 4 < granted + denied,
        "a quiet Sunday morning: {sunday}"
    );

    // The kept database holds the morning at its own times; the real one is untouched.
    let count = |db: &std::path::Path, from: &str, to: &str| -> i64 {
        use diesel::prelude::*;
        let mut conn = diesel::SqliteConnection::establish(db.to_str().unwrap()).unwrap();
        diesel::sql_query(format!(
            "SELECT count(*) AS n FROM events WHERE kind = 'swipe' AND at >= '{from}' AND at < '{to}'"
        ))
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
    };
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    // 07:30–09:00 in Europe/Berlin is 06:30–08:00 UTC in December.
    let swipes = count(&kept, "2026-12-07 06:30:00", "2026-12-07 08:00:00");
    assert!(swipes as u64 >= granted, "{swipes} swipes kept");
    // The loading dock's two Modbus doors were played too (by stand-in devices the
    // private appliance polled), and answered as planned like every other reader.
    let at_the_dock = {
        use diesel::prelude::*;
        let mut conn = diesel::SqliteConnection::establish(kept.to_str().unwrap()).unwrap();
        diesel::sql_query(
            "SELECT count(*) AS n FROM events WHERE kind = 'swipe' \
             AND reader_id LIKE 'loading-dock-%'",
        )
        .get_result::<Count>(&mut conn)
        .unwrap()
        .n
    };
    assert!(at_the_dock > 0, "no swipe at the Modbus doors: {monday}");
    let real = install.dir.path().join("data").join("gatehouse.db");
    assert_eq!(
        count(&real, "2000-01-01", "2100-01-01"),
        0,
        "the site's own log is untouched"
    );
}

/// `gatehouse explain` answers with the presence the appliance has (rebuilt from the event
/// log), so it gives the answer the reader got: a card inside a hard anti-passback zone is
/// told it may not enter again.
#[test]
fn explain_knows_who_is_inside() {
    use crate::mqtt::{Broker, site};
    for backend in crate::app::backends() {
        let site = site(Broker::Embedded, backend);
        crate::antipassback::lab(&site, None);
        let mut reader = site.reader("lab-in-a", false);
        let (_, entered) = site
            .runtime
            .block_on(reader.swipe(site.card(), None, std::time::Duration::from_secs(10)))
            .unwrap();
        assert!(
            matches!(entered, gatehouse_drivers::message::Command::Grant { .. }),
            "{entered:?}"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["explain", "--card", site.f.card, "--door", "Lab door"])
            .current_dir(site.app.data_dir())
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_DATA_DIR", site.app.data_dir())
            .env(
                "GATEHOUSE_DATABASE_URL",
                &site.app.state.config.database.url,
            )
            .env("GATEHOUSE_LOG", "warn")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "denied: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("Denied (antipassback)"), "{text}");
        assert!(text.contains("[FAIL]"), "{text}");
    }
}

/// `explain` about Christmas Day at a time given on the site's clock: the holiday is
/// named, the time is said (not "now"), the next opening lies beyond the compiled days,
/// times are on the site's clock, a card is explained by its number, repeated skipped
/// checks share a line, and the exit code is the answer; a closed pipe is no panic.
#[test]
fn explain_names_holidays_and_times_on_the_sites_clock_and_exits_with_the_answer() {
    let install = Install::new();
    install.ok(&["migrate"], None);
    let site = install.dir.path().join("site.toml");
    std::fs::write(&site, SMALL_SITE).unwrap();
    install.ok(&["import", site.to_str().unwrap()], None);
    let explain = |args: &[&str]| {
        let mut all = vec!["explain", "--door", "Main Entrance"];
        all.extend_from_slice(args);
        let out = install.run(&all, None);
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    // Friday 2026-12-25, 10:00 in Berlin: business hours, but Christmas Day.
    let (code, text, err) = explain(&["--person", "E1", "--at", "2026-12-25 10:00"]);
    assert_eq!(code, Some(1), "{text}{err}");
    assert!(
        text.contains("is closed at 2026-12-25 10:00 CET: 2026-12-25 is a holiday (Christmas Day)"),
        "{text}"
    );
    assert!(
        text.contains("door: Main Entrance (2026-12-25 10:00 CET)"),
        "{text}"
    );
    assert!(
        text.contains("closed then for the holiday Christmas Day, opens 2026-12-28 07:00 CET"),
        "the next opening, found past the compiled days: {text}"
    );
    assert!(!text.contains(" now"), "a time that is not now: {text}");
    assert!(!text.contains("UTC"), "the site's clock: {text}");
    assert_eq!(
        text.matches("explaining a person rather than a presented credential")
            .count(),
        1,
        "the three skipped card checks share a line: {text}"
    );
    assert!(
        text.contains("known credential, credential status, credential expiry: not checked"),
        "{text}"
    );

    let (code, text, err) = explain(&["--card", "04a1b2c3", "--at", "2026-11-23 10:30"]);
    assert_eq!(code, Some(0), "granted exits 0: {text}{err}");
    assert!(text.starts_with("Granted"), "{text}");
    let (code, text, _) = explain(&["--card", "12:34567", "--at", "2026-11-23 10:30"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no credential has the wiegand key 12:34567"),
        "{text}"
    );
    let (code, _, err) = explain(&["--card", "04a1b2c3", "--at", "Christmas"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("2026-12-25 10:00"), "{err}");

    // `| head -c1`: the reader is gone before the answer is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "explain",
            "--person",
            "E1",
            "--door",
            "Main Entrance",
            "--at",
            "2026-12-25 10:00",
            "--json",
        ])
        .current_dir(install.dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_DATA_DIR", install.dir.path().join("data"))
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
}

/// Into a log or a pipe, `import` writes plain lines: no colour codes, no carriage
/// returns; its progress is a line now and then.
#[test]
fn import_into_a_pipe_writes_plain_lines() {
    // A fresh database: the import migrates it first, and logs that.
    let install = Install::new();
    let mut text = SMALL_SITE.to_owned();
    for i in 0..1200 {
        text.push_str(&format!(
            "\n[[people]]\nemployee_id = \"P{i}\"\nname = \"Person {i}\"\n"
        ));
    }
    let site = install.dir.path().join("big.toml");
    std::fs::write(&site, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["import", site.to_str().unwrap()])
        .current_dir(install.dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_DATA_DIR", install.dir.path().join("data"))
        .env("GATEHOUSE_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r'), "{err:?}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        err.contains("entries\n"),
        "progress, a line at a time: {err:?}"
    );
    assert!(err.contains("INFO"), "the log is there, plain: {err:?}");
}

/// SIGTERM (systemd's stop) while a dashboard's live feed is open: the feed ends and the
/// appliance exits at once, not after the 30 s the server would wait for the feed.
#[test]
fn sigterm_with_a_live_feed_open_stops_at_once() {
    use std::io::Read;
    let install = Install::new();
    install.ok(
        &[
            "admin",
            "create",
            "dana",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("correct horse battery staple\n"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("serve")
        .current_dir(install.dir.path())
        .env_remove("GATEHOUSE_CONFIG")
        .env("GATEHOUSE_DATA_DIR", install.dir.path().join("data"))
        .env("GATEHOUSE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEHOUSE_MQTT_BROKER", "off")
        .env("GATEHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while agent.get(format!("{base}/healthz")).call().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the appliance did not start"
        );
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let cookie = |response: &ureq::http::Response<ureq::Body>| -> String {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut form = agent.get(format!("{base}/login")).call().unwrap();
    let sign_in_cookie = cookie(&form);
    let body = form.body_mut().read_to_string().unwrap();
    let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap();
    let csrf = &csrf[..csrf.find('"').unwrap()];
    let signed_in = agent
        .post(format!("{base}/login"))
        .header("Cookie", &sign_in_cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Sec-Fetch-Site", "same-origin")
        .send(
            serde_urlencoded::to_string([
                ("csrf", csrf),
                ("next", "/"),
                ("username", "dana"),
                ("password", "correct horse battery staple"),
            ])
            .unwrap(),
        )
        .unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    let session = cookie(&signed_in);

    let (opened, ended) = (
        std::sync::mpsc::channel::<u16>(),
        std::sync::mpsc::channel::<()>(),
    );
    let feed_url = format!("{base}/live/feed");
    let feed = std::thread::spawn(move || {
        let response = agent
            .get(feed_url)
            .header("Cookie", &session)
            .call()
            .unwrap();
        opened.0.send(response.status().as_u16()).unwrap();
        let mut sink = Vec::new();
        let _ = response.into_body().into_reader().read_to_end(&mut sink);
        ended.0.send(()).unwrap();
    });
    let wait = std::time::Duration::from_secs(10);
    assert_eq!(
        opened.1.recv_timeout(wait).unwrap(),
        200,
        "the feed is open"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Well inside the server's 30 s shutdown timeout that an open feed used to take.
    let deadline = std::time::Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve was still running 10 s after SIGTERM with a feed open");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "a stop on SIGTERM is a clean exit: {status}"
    );
    ended.1.recv_timeout(wait).expect("the feed ended");
    feed.join().unwrap();
}

/// `gatehouse risk roles` on the HP matrix hc.txt (its known minimum is 14 roles), in
/// both formats and with a tolerance, and on bad files.
#[test]
fn risk_roles_prints_the_cover_and_names_bad_lines() {
    let install = Install::new();
    let hc = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rolemining/hc.txt");

    let table = install.ok(&["risk", "roles", "--matrix", hc], None);
    assert!(
        table.contains("46 people, 46 permissions, 1486 assignments"),
        "{table}"
    );
    assert!(table.contains("roles:        14\n"), "{table}");
    assert!(table.contains("exact cover:  yes"), "{table}");
    assert!(table.contains("coverage:     100.00%"), "{table}");
    assert!(table.contains("time:"), "{table}");

    let jsonl = install.ok(
        &["risk", "roles", "--matrix", hc, "--format", "jsonl"],
        None,
    );
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["kind"], "summary");
    assert_eq!(lines[0]["roles"], 14);
    assert_eq!(lines[0]["exact"], true);
    assert_eq!(lines[0]["mode"], "exact");
    let roles: Vec<&serde_json::Value> = lines[1..].iter().collect();
    assert_eq!(roles.len(), 14);
    // Every role is one line with its permissions and the people it fits, and together
    // they grant each of the 1,486 assignments.
    let mut granted = std::collections::HashSet::new();
    for role in &roles {
        assert_eq!(role["kind"], "role");
        for person in role["people"].as_array().unwrap() {
            for permission in role["permissions"].as_array().unwrap() {
                granted.insert((person.as_str().unwrap(), permission.as_str().unwrap()));
            }
        }
    }
    assert_eq!(granted.len(), 1486);

    let loose = install.ok(
        &[
            "risk",
            "roles",
            "--matrix",
            hc,
            "--tolerance",
            "0.05",
            "--format",
            "jsonl",
        ],
        None,
    );
    let lines: Vec<serde_json::Value> = loose
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines[0];
    assert_eq!(summary["mode"], "tolerant");
    assert_eq!(summary["exact"], false);
    assert!(summary["roles"].as_u64().unwrap() < 14, "{summary}");
    let exceptions = summary["exceptions"].as_u64().unwrap();
    assert!(
        exceptions > 0 && exceptions as f64 <= 0.05 * 1486.0,
        "{summary}"
    );
    let listed = lines.iter().filter(|l| l["kind"] == "exception").count();
    assert_eq!(listed as u64, exceptions);

    let bad = install.dir.path().join("bad.txt");
    std::fs::write(&bad, "1 2\n1 3\n1 x\n").unwrap();
    let out = install.run(&["risk", "roles", "--matrix", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 3: the permission must be a positive whole number, not 'x'"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = install.run(&["risk", "roles", "--matrix", "missing.txt"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read missing.txt"));

    let out = install.run(
        &["risk", "roles", "--matrix", hc, "--tolerance", "1.5"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("share of the assignments"));
}
