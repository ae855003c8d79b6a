//! Secrets at rest: the data folder and its files are the owner's alone, PIN hashes need
//! the appliance key kept outside the database, a reader's new secret is a change that is
//! audited, passwords in database URLs are never shown, and the audit head is logged.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use gatehouse::policy::Outcome;
use gatehouse::store::schema::{credentials, readers};
use serde_json::json;

use crate::app::{TestApp, backends, build_site};
use crate::site_file::{SMALL_SITE, import, server_room_swipe};

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The binary run by an installer on a data folder of its own, none of it there yet.
fn gatehouse(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .args(args)
        .current_dir(data.ancestors().find(|p| p.exists()).unwrap())
        .env_remove("GATEHOUSE_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("GATEHOUSE_DATA_DIR", data)
        .env("GATEHOUSE_MQTT_BROKER", "off")
        .env("GATEHOUSE_HTTP_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_LOG", "info")
        .envs(env.iter().copied());
    command
}

fn run(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = gatehouse(data, args, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What `--password-stdin` reads; other commands read nothing.
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(b"a long enough password\n");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running `gatehouse serve` whose log lines arrive on a channel; killed when dropped.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Serving {
    fn start(data: &Path) -> Serving {
        let mut child = gatehouse(data, &["serve"], &[])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Serving {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits up to 30 s for a log line containing `text`, and returns it.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with {text:?} in 30 s: {:#?}", self.seen);
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn migrate_and_serve_keep_the_data_folder_to_its_owner_and_log_the_audit_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("state").join("gatehouse");
    run(&data, &["migrate"], &[]);
    assert_eq!(mode_of(&data), 0o700, "the data folder");
    for file in ["gatehouse.db", "secret.key"] {
        assert_eq!(mode_of(&data.join(file)), 0o600, "{file}");
    }

    let mut serving = Serving::start(&data);
    serving.wait_for("gatehouse is serving");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode_of(&path), 0o600, "{}", path.display());
    }
    assert!(data.join("first-admin-code").exists());

    // A change made beside the running appliance (here by the CLI) puts the new head in
    // its log, as `audit verify` reports it.
    run(
        &data,
        &[
            "admin",
            "create",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &[],
    );
    let verified = String::from_utf8(run(&data, &["audit", "verify"], &[]).stdout).unwrap();
    let head = verified
        .split("head ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    assert!(head.starts_with("1:"), "{verified}");
    serving.wait_for(&format!("audit head {head}"));
}

#[test]
fn a_key_from_a_systemd_credential_is_used_and_never_copied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let key = "ab".repeat(32);
    std::fs::write(credentials.join("gatehouse.key"), format!("{key}\n")).unwrap();
    let cred = credentials.to_str().unwrap();
    run(&data, &["migrate"], &[("CREDENTIALS_DIRECTORY", cred)]);
    assert!(!data.join("secret.key").exists());
    run(
        &data,
        &[
            "admin",
            "create",
            "ada",
            "--role",
            "admin",
            "--password-stdin",
        ],
        &[("CREDENTIALS_DIRECTORY", cred)],
    );
    run(
        &data,
        &["audit", "verify"],
        &[("CREDENTIALS_DIRECTORY", cred)],
    );
    // Without the credential no other key is made: the database is keyed with one.
    let without = gatehouse(&data, &["audit", "verify"], &[])
        .output()
        .unwrap();
    assert!(!without.status.success());
    let err = String::from_utf8_lossy(&without.stderr);
    assert!(
        err.contains("appliance key") && err.contains("is missing"),
        "{err}"
    );
    assert!(!data.join("secret.key").exists());
    // A key of another appliance's does not verify the entry made with this one's.
    std::fs::write(data.join("secret.key"), format!("{}\n", "cd".repeat(32))).unwrap();
    let other = gatehouse(&data, &["audit", "verify"], &[])
        .output()
        .unwrap();
    assert!(!other.status.success());
    let text = String::from_utf8_lossy(&other.stdout);
    assert!(
        text.contains("entry #1") && text.contains("keyed hash"),
        "{text}"
    );
}

#[test]
fn check_config_warns_about_a_readable_tls_key_and_hides_database_passwords() {
    let pki = crate::mqtt::Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = dir.path().join("https.key");
    std::fs::copy(&pki.key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = [
        ("GATEHOUSE_HTTP_TLS_CERT", pki.cert.to_str().unwrap()),
        ("GATEHOUSE_HTTP_TLS_KEY", key.to_str().unwrap()),
        (
            "GATEHOUSE_DATABASE_URL",
            "postgres://gate:s3cret-one@127.0.0.1:1/g?sslmode=disable&password=s3cret-two",
        ),
    ];
    let out = run(&data, &["check-config"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("warning: http.tls_key") && stdout.contains("mode 644"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "{stdout}");
    assert!(
        stdout.contains("postgres://gate:***@127.0.0.1:1/g?sslmode=disable&password=***"),
        "{stdout}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stdout = String::from_utf8(run(&data, &["check-config"], &env).stdout).unwrap();
    assert!(!stdout.contains("warning"), "{stdout}");
}

fn stored_pin_hash(app: &TestApp) -> String {
    credentials::table
        .filter(credentials::card_uid.eq("04A1B2C3"))
        .select(credentials::pin_hash)
        .first::<Option<String>>(&mut *app.db())
        .unwrap()
        .unwrap()
}

const SERVER_READER: &str = "\n[[readers]]\nreader_id = \"server-in\"\ndoor = \"Server Room Door\"\nsecret = \"fedcba9876543210fedcba9876543210\"\n";

#[test]
fn pin_hashes_need_the_appliance_key_and_old_ones_keep_working() {
    let key = gatehouse::identity::appliance_key::installed;
    for backend in backends() {
        let app = TestApp::new(backend);
        let site =
            format!("{SMALL_SITE}{SERVER_READER}").replace("pin = \"4821\"", "pin = \"73914682\"");
        import(&app, &site).unwrap();
        let keyed = stored_pin_hash(&app);
        assert!(keyed.contains(",keyid="), "{keyed}");
        assert!(gatehouse::identity::secret::verify_pin(
            key(),
            &keyed,
            "73914682"
        ));
        // Someone with only the database cannot test guesses against it.
        assert!(!gatehouse::identity::secret::verify_pin(
            None, &keyed, "73914682"
        ));
        assert!(!gatehouse::identity::secret::verify_secret(
            &keyed, "73914682"
        ));
        assert_eq!(
            server_room_swipe(&app, "73914682"),
            Outcome::Grant { unlock_ms: 5000 }
        );

        // A hash made before PINs were keyed opens the door as before, and re-importing
        // the same PIN leaves it alone.
        let old = gatehouse::identity::secret::hash_secret("73914682").unwrap();
        diesel::update(credentials::table.filter(credentials::card_uid.eq("04A1B2C3")))
            .set(credentials::pin_hash.eq(Some(&old)))
            .execute(&mut *app.db())
            .unwrap();
        assert_eq!(
            server_room_swipe(&app, "73914682"),
            Outcome::Grant { unlock_ms: 5000 }
        );
        assert!(matches!(
            server_room_swipe(&app, "73914683"),
            Outcome::Deny(_)
        ));
        let again = import(&app, &site).unwrap();
        assert_eq!(again.updated(), 0, "{again}");
        assert_eq!(stored_pin_hash(&app), old);
        assert_eq!(
            gatehouse::entities::credentials::count_unkeyed_pins(&mut app.db()).unwrap(),
            1
        );
        // A new PIN is keyed.
        let changed = site.replace("pin = \"73914682\"", "pin = \"51840297\"");
        assert_eq!(import(&app, &changed).unwrap().updated(), 1);
        assert!(stored_pin_hash(&app).contains(",keyid="));
        assert_eq!(
            gatehouse::entities::credentials::count_unkeyed_pins(&mut app.db()).unwrap(),
            0
        );
        assert_eq!(
            server_room_swipe(&app, "51840297"),
            Outcome::Grant { unlock_ms: 5000 }
        );

        // A hash keyed on another appliance can match no PIN here: refused, by name.
        let foreign = gatehouse::identity::secret::hash_pin(
            Some(&gatehouse::identity::appliance_key::ApplianceKey::from_master(&[42u8; 32])),
            "51840297",
        )
        .unwrap();
        let with_foreign =
            changed.replace("pin = \"51840297\"", &format!("pin_hash = \"{foreign}\""));
        let errors = import(&app, &with_foreign).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.to_string().contains("another appliance's key")),
            "{errors:?}"
        );
    }
}

fn reader_audit(app: &TestApp) -> Vec<serde_json::Value> {
    app.get("/api/v1/audit?entity=reader&limit=1000")
        .body
        .as_array()
        .unwrap()
        .clone()
}

fn stored_secret(app: &TestApp, reader_id: &str) -> String {
    readers::table
        .filter(readers::reader_id.eq(reader_id))
        .select(readers::secret)
        .first(&mut *app.db())
        .unwrap()
}

#[test]
fn a_new_reader_secret_is_a_change_and_is_audited_without_the_secret() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let listed = app.get("/api/v1/readers?q=main-in").body;
        let id = listed["items"][0]["id"].as_i64().unwrap();
        let put = |body: serde_json::Value| {
            let r = app.put(&format!("/api/v1/readers/{id}"), body);
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(r.body.get("secret").is_none(), "{}", r.body);
        };
        let first = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
        put(json!({"reader_id": "main-in", "door_id": f.main_door, "secret": first}));
        assert_eq!(stored_secret(&app, "main-in"), first);
        let entries = reader_audit(&app).len();
        assert_eq!(
            reader_audit(&app)[0]["summary"],
            "update reader 'main-in' (secret changed)"
        );

        // The same secret again is no change.
        put(json!({"reader_id": "main-in", "door_id": f.main_door, "secret": first}));
        assert_eq!(reader_audit(&app).len(), entries);

        // A new secret with another change: both written, the entry says so.
        let second = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
        put(
            json!({"reader_id": "main-in", "door_id": f.main_door, "secret": second, "direction": "out"}),
        );
        assert_eq!(stored_secret(&app, "main-in"), second);
        let audit = reader_audit(&app);
        assert_eq!(audit.len(), entries + 1);
        assert_eq!(
            audit[0]["summary"],
            "update reader 'main-in' (secret changed)"
        );
        assert_eq!(audit[0]["after"]["direction"], "out");

        // Through a site file, too.
        let exported = gatehouse::io::site_file::export(&mut app.db()).unwrap();
        assert!(exported.contains(second));
        let third = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";
        let summary = import(&app, &exported.replace(second, third)).unwrap();
        assert_eq!(summary.updated(), 1, "{summary}");
        assert_eq!(stored_secret(&app, "main-in"), third);
        let audit = reader_audit(&app);
        assert_eq!(audit.len(), entries + 2);
        assert_eq!(
            audit[0]["summary"],
            "update reader 'main-in' (secret changed)"
        );
        let again = import(&app, &exported.replace(second, third)).unwrap();
        assert_eq!(again.updated(), 0, "{again}");

        let text = app.get("/api/v1/audit?limit=1000").body.to_string();
        for secret in [first, second, third] {
            assert!(!text.contains(secret), "{secret} in the audit log");
        }
    }
}
