//! Event history from a previous access system (`gatehouse import --events`): imported
//! swipes are read by the history layer like live ones, marked as imported, added once
//! however often the file comes in, and a file with a bad line writes nothing. Also a site
//! file's `granted_at`, kept for new entitlements.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use diesel::prelude::*;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins::Role;
use gatehouse::io::events_csv::{self, EventImportOptions, EventImportSummary};
use gatehouse::io::site_file::ImportError;
use gatehouse::store::history::{self, EventQuery, EventsOf, Period, ReadScope};
use gatehouse::store::schema::{events, people};

use crate::app::{TestApp, backends};
use crate::site_file::SMALL_SITE;

/// Midnight UTC `days` ago, plus `minutes`, as a CSV's `at`.
fn ago(days: i64, minutes: i64) -> String {
    let midnight = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    (midnight - TimeDelta::days(days) + TimeDelta::minutes(minutes))
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn import_events(
    app: &TestApp,
    text: &str,
    dry_run: bool,
) -> Result<EventImportSummary, Vec<ImportError>> {
    let provenance =
        gatehouse::identity::provenance::Provenance::import("import-test", "history.csv");
    let ctx = ChangeContext {
        provenance: &provenance,
        now: Utc::now(),
    };
    let options = EventImportOptions {
        dry_run,
        retention_days: 365,
    };
    events_csv::import(
        &mut app.db(),
        &mut std::io::Cursor::new(text.as_bytes()),
        &ctx,
        options,
        &|_| {},
    )
}

fn person_id(app: &TestApp, employee_id: &str) -> i64 {
    people::table
        .filter(people::employee_id.eq(employee_id))
        .select(people::id)
        .first(&mut app.db())
        .unwrap()
}

fn count_events(app: &TestApp) -> i64 {
    events::table.count().get_result(&mut app.db()).unwrap()
}

fn imported_count(app: &TestApp) -> i64 {
    events::table
        .filter(events::origin.eq("imported"))
        .count()
        .get_result(&mut app.db())
        .unwrap()
}

fn audit_summaries(app: &TestApp) -> Vec<String> {
    app.get("/api/v1/audit?limit=1000")
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap().to_owned())
        .collect()
}

/// Ada's two weeks ago: in by the main door (twice in one second: her card read twice),
/// refused at the server room, then in with her card alone; Grace at the main door.
fn history_csv() -> String {
    format!(
        "at,employee_id,card_uid,door,result,reason,direction\n\
         {t1},E1,,Main Entrance,granted,,in\n\
         {t1},E1,,Main Entrance,granted,,in\n\
         {t2},E1,,Server Room Door,denied,Outside time zone,\n\
         {t3},,04a1b2c3,Server Room Door,GRANTED,,in\n\
         {t4},E2,,Main Entrance,granted,,out\n",
        t1 = ago(14, 8 * 60),
        t2 = ago(14, 8 * 60 + 5),
        t3 = ago(13, 9 * 60),
        t4 = ago(13, 17 * 60),
    )
}

#[test]
fn imported_history_reads_like_live_events_and_a_second_import_adds_nothing() {
    for backend in backends() {
        let app = TestApp::new(backend);
        crate::site_file::import(&app, SMALL_SITE).unwrap();
        let before = count_events(&app);
        let csv = history_csv();

        // A dry run counts and writes nothing.
        let dry = import_events(&app, &csv, true).unwrap();
        assert_eq!((dry.rows, dry.added, dry.already_present), (5, 5, 0));
        assert_eq!(count_events(&app), before, "{backend:?}");

        let summary = import_events(&app, &csv, false).unwrap();
        assert_eq!(
            (summary.rows, summary.added, summary.already_present),
            (5, 5, 0),
            "{backend:?}"
        );
        assert_eq!((summary.people, summary.doors), (2, 2));
        assert_eq!(imported_count(&app), 5, "{backend:?}");

        // The history layer reads Ada's imported swipes with their place, card and result.
        let ada = person_id(&app, "E1");
        let query = EventQuery {
            of: EventsOf::Person(ada),
            period: Period::ALL,
            kind: None,
        };
        let mut conn = app.db();
        let rows: Vec<_> = history::event_chunks(&mut conn, ReadScope::of(Role::Auditor), query, 2)
            .flat_map(Result::unwrap)
            .collect();
        drop(conn);
        assert_eq!(rows.len(), 4, "{backend:?}: {rows:?}");
        assert!(rows.iter().all(|r| r.event.kind == "swipe"
            && r.event.site_id.is_some()
            && r.event.zone_id.is_some()));
        assert_eq!(
            rows[0].event.at, rows[1].event.at,
            "the double read stays two events"
        );
        assert_eq!(rows[2].event.result.as_deref(), Some("denied"));
        let detail: serde_json::Value = serde_json::from_str(&rows[2].event.detail).unwrap();
        assert_eq!(detail["origin"], "imported");
        assert!(
            rows.iter()
                .all(|r| r.event.origin == gatehouse::store::event_log::Origin::Imported),
            "every imported row is marked so"
        );
        assert_eq!(detail["reason"], "Outside time zone");
        assert_eq!(rows[3].event.result.as_deref(), Some("granted"));
        assert!(rows[3].event.credential_id.is_some(), "the card is kept");
        assert_eq!(rows[3].event.direction.map(|d| d.as_str()), Some("in"));
        // No anti-passback zone: history never leaves anyone "inside".
        assert!(rows.iter().all(|r| r.event.antipassback_zone_id.is_none()));

        let audited = audit_summaries(&app);
        let import_entries = |audited: &[String]| {
            audited
                .iter()
                .filter(|s| s.starts_with("import events"))
                .count()
        };
        assert_eq!(import_entries(&audited), 1, "{audited:?}");
        assert!(
            audited
                .iter()
                .any(|s| s.starts_with("import events: 5 added of 5")),
            "{audited:?}"
        );

        // The same file again, and an export overlapping it with one new line: only the new
        // line is added, and a re-import that adds nothing leaves no audit entry.
        let again = import_events(&app, &csv, false).unwrap();
        assert_eq!((again.added, again.already_present), (0, 5), "{backend:?}");
        assert_eq!(count_events(&app), before + 5);
        assert_eq!(import_entries(&audit_summaries(&app)), 1);
        let overlapping = format!("{csv}{},E2,,Main Entrance,granted,,in\n", ago(12, 8 * 60));
        let more = import_events(&app, &overlapping, false).unwrap();
        assert_eq!((more.added, more.already_present), (1, 5), "{backend:?}");
        assert_eq!(imported_count(&app), 6);
        let dry = import_events(&app, &overlapping, true).unwrap();
        assert_eq!((dry.added, dry.already_present), (0, 6));
    }
}

#[test]
fn a_bad_line_is_named_and_nothing_is_written() {
    for backend in backends() {
        let app = TestApp::new(backend);
        crate::site_file::import(&app, SMALL_SITE).unwrap();
        let before = count_events(&app);
        let future = (Utc::now() + TimeDelta::days(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let csv = format!(
            "at,employee_id,card_uid,door,result,reason,direction\n\
             {ok},E1,,Main Entrance,granted,,\n\
             {ok},E1,,Loading Dock,granted,,\n\
             {ok},E9,,Main Entrance,granted,,\n\
             yesterday,E1,,Main Entrance,granted,,\n\
             {ok},E1,,Main Entrance,maybe,,\n\
             {future},E1,,Main Entrance,granted,,\n\
             {ok},E2,04A1B2C3,Main Entrance,granted,,\n\
             {ok},,FFFF0000,Main Entrance,granted,,\n\
             {ok},E1,,Main Entrance,granted,,sideways\n\
             {old},E1,,Main Entrance,granted,,\n\
             {ok},,,Main Entrance,granted,,\n\
             {ok},E1,,Main Entrance,granted,held\u{0}open,\n",
            ok = ago(3, 600),
            old = ago(400, 0),
        );
        let errors = import_events(&app, &csv, false).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let expect = [
            "line 3: door: no door is named 'Loading Dock'",
            "line 4: employee_id: no person has employee id 'E9'",
            "line 5: at: 'yesterday' is not an RFC 3339 time",
            "line 6: result: 'maybe' is neither granted nor denied",
            "is in the future",
            "line 8: card_uid: the card 04A1B2C3 is E1's, not E2's",
            "line 9: card_uid: no card FFFF0000 is registered",
            "line 10: direction: 'sideways' is neither in nor out",
            "line 11: at: ",
            "line 12: employee_id or card_uid: one of them is needed",
            "line 13: reason: must not contain a NUL character",
        ];
        assert_eq!(text.len(), expect.len(), "{backend:?}: {text:#?}");
        for (got, want) in text.iter().zip(expect) {
            assert!(got.contains(want), "{got} should contain {want}");
        }
        assert!(text[4].starts_with("line 7: at: "), "{}", text[4]);
        assert!(
            text[8].contains("older than the event retention (365 days"),
            "{}",
            text[8]
        );
        assert_eq!(count_events(&app), before, "{backend:?}: nothing written");

        // A header the importer does not know is refused before any line is read.
        let errors = import_events(&app, "when,employee_id,door,result\n", false).unwrap_err();
        assert_eq!(errors[0].place, "line 1");
        assert!(
            errors[0].message.contains("unknown column 'when'"),
            "{errors:?}"
        );
        let errors = import_events(&app, "at,door,result\n", false).unwrap_err();
        assert!(
            errors[0].message.contains("'employee_id' or 'card_uid'"),
            "{errors:?}"
        );
        assert_eq!(count_events(&app), before);

        // A spreadsheet's export, with a byte-order mark before the header, is read.
        let excel = format!(
            "\u{feff}at,employee_id,door,result\r\n{},E1,Main Entrance,granted\r\n",
            ago(3, 600)
        );
        assert_eq!(import_events(&app, &excel, false).unwrap().added, 1);
    }
}

#[test]
fn a_new_entitlement_keeps_the_grant_time_of_the_site_file() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let granted: DateTime<Utc> = "2025-03-01T09:00:00Z".parse().unwrap();
        let with_grant_times = SMALL_SITE.replace(
            "employee_id = \"E1\"\nlevel = \"Staff\"",
            "employee_id = \"E1\"\nlevel = \"Staff\"\ngranted_at = 2025-03-01T09:00:00Z",
        );
        assert_ne!(with_grant_times, SMALL_SITE);
        crate::site_file::import(&app, &with_grant_times).unwrap();
        let entitlements = app.get("/api/v1/entitlements").body;
        let items = entitlements["items"].as_array().unwrap();
        let granted_at = |level_name: &str| -> DateTime<Utc> {
            let level = app.get("/api/v1/access-levels").body["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["name"] == level_name)
                .unwrap()["id"]
                .clone();
            let e = items.iter().find(|e| e["level_id"] == level).unwrap();
            e["granted_at"].as_str().unwrap().parse().unwrap()
        };
        assert_eq!(granted_at("Staff"), granted, "{backend:?}");
        // Without one in the file, a new entitlement is granted now.
        assert!(Utc::now() - granted_at("IT") < TimeDelta::minutes(5));

        // An existing entitlement keeps its own grant time: a file saying otherwise
        // changes nothing.
        let moved = with_grant_times.replace("2025-03-01T09:00:00Z", "2024-01-01T00:00:00Z");
        crate::site_file::import(&app, &moved).unwrap();
        let again = app.get("/api/v1/entitlements").body;
        assert_eq!(again, entitlements, "{backend:?}");

        // A grant in the future is refused with its place, and nothing is imported.
        let other = TestApp::new(backend);
        let future = SMALL_SITE.replace(
            "employee_id = \"E1\"\nlevel = \"Staff\"",
            "employee_id = \"E1\"\nlevel = \"Staff\"\ngranted_at = 2099-01-01T00:00:00Z",
        );
        let errors = crate::site_file::import(&other, &future).unwrap_err();
        assert!(
            errors.iter().any(|e| e.place.starts_with("entitlements[0]")
                && e.message.contains("granted_at: is in the future")),
            "{errors:?}"
        );
        assert_eq!(other.get("/api/v1/people").body["total"], 0);
    }
}

#[test]
fn the_command_line_imports_history_once_and_names_bad_lines() {
    let install = crate::cli::Install::new();
    let dir = install.dir.path();
    std::fs::write(dir.join("site.toml"), SMALL_SITE).unwrap();
    install.ok(&["import", "site.toml"], None);
    std::fs::write(dir.join("history.csv"), history_csv()).unwrap();
    let figure = |out: &str, label: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_default()
            .to_owned()
    };
    let first = install.ok(&["import", "--events", "history.csv"], None);
    assert_eq!(figure(&first, "added"), "5", "{first}");
    let again = install.ok(&["import", "--events", "history.csv"], None);
    assert_eq!(figure(&again, "added"), "0", "{again}");
    assert_eq!(figure(&again, "already present"), "5", "{again}");
    std::fs::write(
        dir.join("bad.csv"),
        format!(
            "at,employee_id,door,result\n{},E1,Nowhere,granted\n",
            ago(2, 0)
        ),
    )
    .unwrap();
    let out = install.run(&["import", "--events", "bad.csv"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: door: no door is named 'Nowhere'"),
        "{err}"
    );
    // Not a terminal: no progress line in the output.
    assert!(!err.contains("checking"), "{err}");
}
