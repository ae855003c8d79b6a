//! The site file: an all-or-nothing, idempotent upsert by natural keys, and an export that
//! imports back to the same state. Also the HR people CSV.

use chrono::{DateTime, Utc};
use gatehouse::entities::ChangeContext;
use gatehouse::io::site_file::{self, ImportError};
use gatehouse::policy::{CredentialKey, Outcome, Presence, Request, Snapshot, decide};

use serde_json::json;

use crate::app::{TestApp, backends};

pub const SMALL_SITE: &str = r#"
version = 1

[[sites]]
name = "HQ"
timezone = "Europe/Berlin"

[[schedules]]
name = "Business hours"
windows = [{ cron = "0 7 * * Mon-Fri", duration_min = 660 }]

[[schedules]]
name = "Always"
holidays = "ignore"
windows = [{ cron = "0 0 * * *", duration_min = 1440 }]

[[holidays]]
site = "HQ"
name = "Christmas Day"
date = 2026-12-25

[[zones]]
site = "HQ"
name = "Server Room"
parent = "Building"
antipassback = "hard"
presence_reset = "03:00"

[[zones]]
site = "HQ"
name = "Building"

[[doors]]
name = "Main Entrance"
site = "HQ"
zone = "Building"

[[doors]]
name = "Server Room Door"
site = "HQ"
zone = "Server Room"
mode = "card_and_pin"
sensitivity = "critical"

[[readers]]
reader_id = "main-in"
door = "Main Entrance"
secret = "0123456789abcdef0123456789abcdef"

[[levels]]
name = "Staff"
items = [{ site = "HQ", zone = "Building", schedule = "Business hours" }]

[[levels]]
name = "IT"
items = [{ door = "Server Room Door", schedule = "Always" }]

[[people]]
employee_id = "E2"
name = "Grace Hopper"
manager = "E1"

[[people]]
employee_id = "E1"
name = "Ada Lovelace"
department = "Engineering"

[[credentials]]
employee_id = "E1"
card_uid = "04a1b2c3"
pin = "4821"

[[entitlements]]
employee_id = "E1"
level = "Staff"

[[entitlements]]
employee_id = "E1"
level = "IT"
valid_until = 2027-01-31T00:00:00Z
justification = "on-call rota"
"#;

pub(crate) fn import(
    app: &TestApp,
    text: &str,
) -> Result<site_file::ImportSummary, Vec<ImportError>> {
    let mut conn = app.db();
    let ctx = ChangeContext {
        provenance: &gatehouse::identity::provenance::Provenance::cli("import-test"),
        now: Utc::now(),
    };
    site_file::import(&mut conn, text, &ctx, false, &|_, _| {})
}

fn count(app: &TestApp, collection: &str) -> i64 {
    app.get(&format!("/api/v1/{collection}")).body["total"]
        .as_i64()
        .unwrap()
}

#[test]
fn import_is_idempotent_and_export_round_trips() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let first = import(&app, SMALL_SITE).unwrap();
        assert_eq!(first.created(), 16, "{first}");
        assert_eq!(count(&app, "people"), 2);
        assert_eq!(count(&app, "zones"), 2);
        let audit_entries = app
            .get("/api/v1/audit?limit=1000")
            .body
            .as_array()
            .unwrap()
            .len();
        let again = import(&app, SMALL_SITE).unwrap();
        assert_eq!((again.created(), again.updated()), (0, 0), "{again}");
        assert_eq!(
            app.get("/api/v1/audit?limit=1000")
                .body
                .as_array()
                .unwrap()
                .len(),
            audit_entries + 1,
            "a no-op import writes only its own summary entry"
        );
        let exported = site_file::export(&mut app.db()).unwrap();
        assert!(
            exported.contains("0123456789abcdef0123456789abcdef"),
            "reader secrets are exported"
        );
        assert!(
            exported.contains("$argon2id$"),
            "PINs are exported as hashes"
        );
        assert!(!exported.contains("4821"), "never the PIN itself");
        assert!(
            exported.contains("presence_reset = \"03:00\""),
            "a zone's daily reset is exported"
        );
        let copy = TestApp::new(crate::app::Backend::Sqlite);
        import(&copy, &exported).unwrap();
        let exported_again = site_file::export(&mut copy.db()).unwrap();
        assert_eq!(
            strip_granted_by(&exported),
            strip_granted_by(&exported_again)
        );
        // An update is applied in place, keyed by natural keys.
        let renamed = SMALL_SITE.replace("name = \"Grace Hopper\"", "name = \"Grace B. Hopper\"");
        let third = import(&app, &renamed).unwrap();
        assert_eq!((third.created(), third.updated()), (0, 1), "{third}");
    }
}

/// The Server Room Door (card and PIN) decides a swipe of card 04A1B2C3 with `pin`, on the
/// policy as stored now, at a time the IT level's "Always" covers.
pub(crate) fn server_room_swipe(app: &TestApp, pin: &str) -> Outcome {
    let now = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let loaded = gatehouse::store::load::load_policy(&mut app.db()).unwrap();
    let snapshot = Snapshot::compile(&loaded.data, now).unwrap();
    let key = CredentialKey::card("04a1b2c3").unwrap();
    let request = Request {
        reader_id: "server-in",
        credential: &key,
        pin: Some(pin),
    };
    decide(&snapshot, &Presence::new(), &request, now)
        .unwrap()
        .outcome
}

/// The audit entries about card 04A1B2C3, as the API gives them (newest first).
fn card_audit(app: &TestApp) -> Vec<serde_json::Value> {
    let entries = app.get("/api/v1/audit?limit=1000").body;
    entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entity"] == "credential")
        .cloned()
        .collect()
}

/// What the audit entries say: their summaries and before and after.
fn audit_text(entries: &[serde_json::Value]) -> String {
    entries
        .iter()
        .map(|e| format!("{} {} {}", e["summary"], e["before_json"], e["after_json"]))
        .collect()
}

#[test]
fn a_reimported_card_with_a_new_pin_takes_the_new_pin_and_audits_it() {
    const READER: &str = "\n[[readers]]\nreader_id = \"server-in\"\ndoor = \"Server Room Door\"\nsecret = \"fedcba9876543210fedcba9876543210\"\n";
    for backend in backends() {
        let app = TestApp::new(backend);
        // PINs long enough not to turn up by chance in the audit log's times.
        let site = format!("{SMALL_SITE}{READER}").replace("pin = \"4821\"", "pin = \"73914682\"");
        import(&app, &site).unwrap();
        assert_eq!(
            server_room_swipe(&app, "73914682"),
            Outcome::Grant { unlock_ms: 5000 }
        );
        let before = card_audit(&app).len();

        // Only the PIN differs: the card's view (has_pin) is the same, the PIN is not.
        let new_pin = site.replace("pin = \"73914682\"", "pin = \"51840297\"");
        let summary = import(&app, &new_pin).unwrap();
        assert_eq!((summary.created(), summary.updated()), (0, 1), "{summary}");
        assert_eq!(
            server_room_swipe(&app, "51840297"),
            Outcome::Grant { unlock_ms: 5000 }
        );
        assert!(
            matches!(server_room_swipe(&app, "73914682"), Outcome::Deny(_)),
            "the old PIN no longer opens the door"
        );
        let audit = card_audit(&app);
        assert_eq!(audit.len(), before + 1, "{audit:#?}");
        assert_eq!(audit[0]["action"], "update");
        assert_eq!(audit[0]["summary"], "update card 04A1B2C3 (PIN changed)");
        let text = audit_text(&audit);
        for secret in ["73914682", "51840297", "argon2"] {
            assert!(!text.contains(secret), "{secret} in the audit log: {text}");
        }

        // The same PIN again is no change: verified against the stored hash, not re-hashed.
        let again = import(&app, &new_pin).unwrap();
        assert_eq!((again.created(), again.updated()), (0, 0), "{again}");
        assert_eq!(card_audit(&app).len(), before + 1);
        assert_eq!(
            server_room_swipe(&app, "51840297"),
            Outcome::Grant { unlock_ms: 5000 }
        );

        // An exported hash is a PIN too: importing it back restores that PIN, audited.
        let exported = site_file::export(&mut app.db()).unwrap();
        import(&app, &site).unwrap();
        assert_eq!(
            server_room_swipe(&app, "73914682"),
            Outcome::Grant { unlock_ms: 5000 }
        );
        let summary = import(&app, &exported).unwrap();
        assert_eq!(summary.updated(), 1, "{summary}");
        assert_eq!(
            server_room_swipe(&app, "51840297"),
            Outcome::Grant { unlock_ms: 5000 }
        );
        assert!(matches!(
            server_room_swipe(&app, "73914682"),
            Outcome::Deny(_)
        ));
        let audit = card_audit(&app);
        assert_eq!(audit.len(), before + 3, "{audit:#?}");
        assert_eq!(audit[0]["summary"], "update card 04A1B2C3 (PIN changed)");
        let again = import(&app, &exported).unwrap();
        assert_eq!((again.created(), again.updated()), (0, 0), "{again}");

        // The API's PUT (and the console's Set PIN, the same `entities::update`) always
        // writes and audits; its summary names the PIN change too.
        let card = app.get("/api/v1/credentials?card_uid=04A1B2C3").body["items"][0].clone();
        let r = app.put(
            &format!("/api/v1/credentials/{}", card["id"]),
            json!({"person_id": card["person_id"], "card_uid": "04A1B2C3", "pin": "62094718"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["has_pin"], true);
        assert_eq!(
            server_room_swipe(&app, "62094718"),
            Outcome::Grant { unlock_ms: 5000 }
        );
        assert!(matches!(
            server_room_swipe(&app, "51840297"),
            Outcome::Deny(_)
        ));
        assert_eq!(
            card_audit(&app)[0]["summary"],
            "update card 04A1B2C3 (PIN changed)"
        );
        let text = audit_text(&card_audit(&app));
        for secret in ["73914682", "51840297", "62094718", "argon2"] {
            assert!(!text.contains(secret), "{secret} in the audit log: {text}");
        }
    }
}

/// Who granted an entitlement differs between the original and the copy (the importer).
fn strip_granted_by(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("granted_"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn one_bad_entry_names_its_place_and_nothing_is_imported() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let bad = format!(
            "{SMALL_SITE}\n[[people]]\nemployee_id = \"E3\"\nname = \"Mallory\"\nstatus = \"on-holiday\"\n\n[[entitlements]]\nemployee_id = \"E1\"\nlevel = \"Cleaners\"\n"
        );
        let errors = import(&app, &bad).unwrap_err();
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("people[2] (E3)") && e.contains("status")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("entitlements[2]") && e.contains("Cleaners")),
            "{text:?}"
        );
        for collection in ["sites", "people", "doors", "schedules", "access-levels"] {
            assert_eq!(
                count(&app, collection),
                0,
                "{collection} written despite errors"
            );
        }
        assert_eq!(
            gatehouse::store::audit::verify(&mut app.db())
                .unwrap()
                .entries,
            2,
            "only the test admin's setup entries"
        );
    }
}

/// The audit summaries written after `seq`, in order.
fn audit_since(app: &TestApp, seq: i64) -> Vec<String> {
    let mut entries: Vec<(i64, String)> = app
        .get("/api/v1/audit?limit=1000")
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["summary"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(s, _)| *s > seq)
        .collect();
    entries.sort();
    entries.into_iter().map(|(_, summary)| summary).collect()
}

fn audit_head(app: &TestApp) -> i64 {
    gatehouse::store::audit::verify(&mut app.db())
        .unwrap()
        .entries as i64
}

/// (created, updated, unchanged) of one section of an import.
fn section(summary: &site_file::ImportSummary, name: &str) -> (usize, usize, usize) {
    summary
        .sections
        .iter()
        .find(|s| s.0 == name)
        .map(|s| (s.1, s.2, s.3))
        .unwrap_or_default()
}

#[test]
fn a_reimport_writes_and_audits_only_what_changed() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let extra = "\n[[people]]\nemployee_id = \"E3\"\nname = \"Alan Turing\"\nstatus = \"suspended\"\n\n\
                     [[credentials]]\nemployee_id = \"E2\"\nkind = \"wiegand\"\nfacility = 12\ncard_number = 3456\n\n\
                     [[entitlements]]\nemployee_id = \"E2\"\nlevel = \"Staff\"\n";
        import(&app, &format!("{SMALL_SITE}{extra}")).unwrap();
        // The exported file holds every stored value (PIN hashes, grantors): imported back
        // unchanged, nothing is written and only the import itself is audited.
        let exported = site_file::export(&mut app.db()).unwrap();
        let head = audit_head(&app);
        let again = import(&app, &exported).unwrap();
        assert_eq!((again.created(), again.updated()), (0, 0), "{again}");
        assert_eq!(section(&again, "people"), (0, 0, 3), "{again}");
        assert_eq!(section(&again, "credentials"), (0, 0, 2), "{again}");
        assert_eq!(section(&again, "entitlements"), (0, 0, 3), "{again}");
        assert_eq!(audit_since(&app, head), ["import: 0 created, 0 updated"]);
        // A few changes, spelled as a person would type them (case, spaces), cost exactly
        // those writes and audit entries; what only looks different is left alone.
        let changed = exported
            .replace("name = \"Grace Hopper\"", "name = \"Grace B. Hopper\"")
            .replace("status = \"suspended\"", "status = \" Suspended \"")
            .replace(
                "justification = \"on-call rota\"",
                "justification = \"on-call rota 2027\"",
            )
            .replace(
                "card_number = 3456\nstatus = \"active\"",
                "card_number = 3456\nstatus = \"lost\"",
            );
        let changed = format!(
            "{changed}\n[[people]]\nemployee_id = \"E4\"\nname = \"Barbara Liskov\"\nmanager = \"E1\"\n\n\
             [[entitlements]]\nemployee_id = \"E4\"\nlevel = \"Staff\"\n"
        );
        let head = audit_head(&app);
        let third = import(&app, &changed).unwrap();
        assert_eq!(section(&third, "people"), (1, 1, 2), "{third}");
        assert_eq!(section(&third, "credentials"), (0, 1, 1), "{third}");
        assert_eq!(section(&third, "entitlements"), (1, 1, 2), "{third}");
        let written = audit_since(&app, head);
        assert_eq!(written.len(), 6, "{written:?}");
        assert!(
            written[..5].iter().any(|s| s == "update person E2"),
            "{written:?}"
        );
        assert!(
            written[..5].iter().any(|s| s == "create person E4"),
            "{written:?}"
        );
        assert!(
            written[..5].iter().any(|s| s == "update card 12:3456"),
            "{written:?}"
        );
        assert_eq!(written[5], "import: 2 created, 3 updated");
        let people = app.get("/api/v1/people?q=Grace").body;
        assert_eq!(people["items"][0]["name"], "Grace B. Hopper");
        let suspended = app.get("/api/v1/people?status=suspended").body;
        assert_eq!(suspended["total"], 1, "E3 stays suspended");
        // A change beside a bad entry is not applied: the import changes nothing.
        let head = audit_head(&app);
        let bad = changed
            .replace("Grace B. Hopper", "Grace M. Hopper")
            .replace(
                "name = \"Barbara Liskov\"",
                "name = \"Barbara Liskov\"\nperson_type = \"robot\"",
            );
        let errors = import(&app, &bad).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.place.contains("(E4)") && e.message.contains("person_type")),
            "{errors:?}"
        );
        assert_eq!(audit_since(&app, head), Vec::<String>::new());
        let people = app.get("/api/v1/people?q=Grace").body;
        assert_eq!(people["items"][0]["name"], "Grace B. Hopper");
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let errors = import(
        &app,
        "version = 1\n[[sites]]\nname = \"HQ\"\ntimezone = \"UTC\"\ncolour = 3\n",
    )
    .unwrap_err();
    assert!(errors[0].message.contains("colour"), "{:?}", errors);
    assert!(errors[0].message.contains("line 5"), "{:?}", errors);
    let errors = import(&app, "version = 7\n").unwrap_err();
    assert!(errors[0].message.contains("version 1"), "{:?}", errors);
}

#[test]
fn people_csv_from_hr() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let ctx = ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("hr"),
            now: Utc::now(),
        };
        let csv = "employee_id,name,department,title,manager_employee_id,person_type,status,valid_from,valid_until\n\
                   E10,Linus T,Kernel,Maintainer,,employee,active,,\n\
                   C20,Casey Contractor,Facilities,Electrician,E10,contractor,active,2026-11-01,2026-12-31\n";
        let summary = gatehouse::io::people_csv::import(
            &mut app.db(),
            csv.as_bytes(),
            &ctx,
            false,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(summary.created(), 2);
        // The nightly sync sends the same lines again: nothing is written; one changed
        // line (and one spelled differently but meaning the same) costs one update.
        let again = gatehouse::io::people_csv::import(
            &mut app.db(),
            csv.as_bytes(),
            &ctx,
            false,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(section(&again, "people"), (0, 0, 2), "{again}");
        let moved = csv
            .replace("Kernel,Maintainer", "Kernel,Lead Maintainer")
            .replace("contractor,active", "contractor, ACTIVE ");
        let moved = gatehouse::io::people_csv::import(
            &mut app.db(),
            moved.as_bytes(),
            &ctx,
            false,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(section(&moved, "people"), (0, 1, 1), "{moved}");
        let people = app.get("/api/v1/people?person_type=contractor").body;
        assert_eq!(people["items"][0]["valid_until"], "2026-12-31T00:00:00Z");
        let bad = "employee_id,name,valid_until\nE11,Someone,next tuesday\n";
        let errors = gatehouse::io::people_csv::import(
            &mut app.db(),
            bad.as_bytes(),
            &ctx,
            false,
            &|_, _| {},
        )
        .unwrap_err();
        assert_eq!(errors[0].place, "line 2");
        assert_eq!(count(&app, "people"), 2);
    }
}

#[test]
fn the_shipped_example_site_imports() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/examples/office.toml"
    ))
    .unwrap();
    let summary = import(&app, &text).unwrap();
    assert!(count(&app, "people") >= 200, "{summary}");
    assert!(count(&app, "doors") >= 24);
    assert_eq!(
        gatehouse::store::audit::verify(&mut app.db())
            .unwrap()
            .problems
            .len(),
        0
    );
}
