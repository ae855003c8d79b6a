//! The entitlement review over a real database: a site whose grants date from a previous
//! system (site file `granted_at`) and whose history was imported (`import --events`),
//! judged on both backends; and `gatehouse risk entitlements` for scripts.

use std::collections::BTreeSet;

use chrono::{SecondsFormat, TimeDelta, Utc};
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins::Role;
use gatehouse::io::events_csv::{self, EventImportOptions};
use gatehouse::risk::entitlements::{Action, FindingKind, Review, Settings, review};
use gatehouse::store::history::ReadScope;

use crate::app::{TestApp, backends};

/// Engineers E1 to E5 (peers), a finance clerk F1; levels granted in 2025.
pub const REVIEWED_SITE: &str = r#"
version = 1

[[sites]]
name = "HQ"
timezone = "UTC"

[[schedules]]
name = "Always"
holidays = "ignore"
windows = [{ cron = "0 0 * * *", duration_min = 1440 }]

[[zones]]
site = "HQ"
name = "Building"

[[zones]]
site = "HQ"
name = "Labs"
parent = "Building"

[[doors]]
name = "Main Entrance"
site = "HQ"
zone = "Building"

[[doors]]
name = "Side Door"
site = "HQ"
zone = "Building"

[[doors]]
name = "Server Room Door"
site = "HQ"
zone = "Building"
sensitivity = "critical"

[[doors]]
name = "Loading Dock"
site = "HQ"
zone = "Building"
sensitivity = "high"

[[doors]]
name = "Cash Office"
site = "HQ"
zone = "Building"
sensitivity = "high"

[[doors]]
name = "Lab A"
site = "HQ"
zone = "Labs"

[[doors]]
name = "Lab B"
site = "HQ"
zone = "Labs"

[[doors]]
name = "Lab C"
site = "HQ"
zone = "Labs"

[[doors]]
name = "Lab D"
site = "HQ"
zone = "Labs"

[[levels]]
name = "Staff"
items = [{ door = "Main Entrance", schedule = "Always" }, { door = "Side Door", schedule = "Always" }]

[[levels]]
name = "Front door"
items = [{ door = "Main Entrance", schedule = "Always" }]

[[levels]]
name = "IT"
items = [{ door = "Server Room Door", schedule = "Always" }]

[[levels]]
name = "Labs"
items = [{ site = "HQ", zone = "Labs", schedule = "Always" }]

[[levels]]
name = "Dock"
items = [{ door = "Loading Dock", schedule = "Always" }]

[[levels]]
name = "Cash"
items = [{ door = "Cash Office", schedule = "Always" }]
"#;

/// The people, cards and grants (granted in 2025) appended to `REVIEWED_SITE`.
fn site_with_people() -> String {
    let mut text = REVIEWED_SITE.to_owned();
    let grant = |text: &mut String, who: &str, level: &str| {
        text.push_str(&format!(
            "\n[[entitlements]]\nemployee_id = \"{who}\"\nlevel = \"{level}\"\ngranted_at = 2025-06-01T08:00:00Z\n"
        ));
    };
    for i in 1..=5 {
        text.push_str(&format!(
            "\n[[people]]\nemployee_id = \"E{i}\"\nname = \"Engineer {i}\"\ndepartment = \"Engineering\"\ntitle = \"Engineer\"\n\
             \n[[credentials]]\nemployee_id = \"E{i}\"\ncard_uid = \"0E0{i}0001\"\n"
        ));
        grant(&mut text, &format!("E{i}"), "Staff");
        grant(&mut text, &format!("E{i}"), "Labs");
    }
    // E1 also holds the front door (Staff covers it) and IT, which no other engineer has.
    grant(&mut text, "E1", "Front door");
    grant(&mut text, "E1", "IT");
    // E5's spare card, last used long ago.
    text.push_str("\n[[credentials]]\nemployee_id = \"E5\"\ncard_uid = \"0E050002\"\n");
    text.push_str(
        "\n[[people]]\nemployee_id = \"F1\"\nname = \"Clerk\"\ndepartment = \"Finance\"\ntitle = \"Clerk\"\n\
         \n[[credentials]]\nemployee_id = \"F1\"\ncard_uid = \"0F010001\"\n",
    );
    grant(&mut text, "F1", "Dock");
    grant(&mut text, "F1", "Cash");
    text
}

fn ago(days: i64) -> String {
    (Utc::now() - TimeDelta::days(days) - TimeDelta::hours(1))
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Everyone's last weeks: the engineers through the main door and into Lab A, the clerk
/// at the dock and the cash office; E5's spare card once, 200 days ago.
fn history() -> String {
    let mut csv = String::from("at,card_uid,door,result\n");
    for day in [3, 10, 20] {
        for i in 1..=5 {
            csv.push_str(&format!("{},0E0{i}0001,Main Entrance,granted\n", ago(day)));
            csv.push_str(&format!("{},0E0{i}0001,Lab A,granted\n", ago(day)));
        }
        csv.push_str(&format!("{},0F010001,Loading Dock,granted\n", ago(day)));
        csv.push_str(&format!("{},0F010001,Cash Office,granted\n", ago(day)));
    }
    csv.push_str(&format!("{},0E050002,Main Entrance,granted\n", ago(200)));
    // A refusal is no use: E1 tried the server room once.
    csv.push_str(&format!("{},0E010001,Server Room Door,denied\n", ago(5)));
    csv
}

fn load(app: &TestApp) {
    crate::site_file::import(app, &site_with_people()).unwrap();
    let provenance = gatehouse::identity::provenance::Provenance::import("review-test", "h.csv");
    let ctx = ChangeContext {
        provenance: &provenance,
        now: Utc::now(),
    };
    let options = EventImportOptions {
        dry_run: false,
        retention_days: 365,
    };
    let summary = events_csv::import(
        &mut app.db(),
        &mut std::io::Cursor::new(history().into_bytes()),
        &ctx,
        options,
        &|_| {},
    )
    .unwrap();
    assert_eq!(summary.added, 38);
}

fn settings() -> Settings {
    Settings {
        toxic: vec![
            (
                "Cash handling".to_owned(),
                vec!["Loading Dock".to_owned(), "Cash Office".to_owned()],
            ),
            (
                "Typo".to_owned(),
                vec!["Loading Dock".to_owned(), "Vault".to_owned()],
            ),
        ],
        ..Settings::default()
    }
}

/// (kind, employee id, level or card) of every finding.
fn found(review: &Review) -> BTreeSet<(FindingKind, String, String)> {
    review
        .findings
        .iter()
        .map(|f| {
            (
                f.kind,
                f.person
                    .as_ref()
                    .map_or_else(String::new, |p| p.employee_id.clone()),
                f.level
                    .as_ref()
                    .map(|l| l.name.clone())
                    .or_else(|| f.credential.as_ref().map(|c| c.name.clone()))
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn the_review_finds_each_kind_over_imported_history() {
    for backend in backends() {
        let app = TestApp::new(backend);
        load(&app);
        let result = review(
            &mut app.db(),
            ReadScope::of(Role::Auditor),
            &settings(),
            Utc::now(),
        )
        .unwrap();
        let s = |x: &str| x.to_owned();
        let expected: BTreeSet<_> = [
            (FindingKind::UnusedEntitlement, s("E1"), s("IT")),
            (FindingKind::PeerOutlier, s("E1"), s("IT")),
            (FindingKind::PeerOutlier, s("E1"), s("Front door")),
            (FindingKind::RedundantGrant, s("E1"), s("Front door")),
            (FindingKind::DormantCredential, s("E5"), s("0E050002")),
            (FindingKind::OverbroadLevel, s(""), s("Labs")),
            (FindingKind::ToxicCombination, s("F1"), s("")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            found(&result),
            expected,
            "{backend:?}: {:#?}",
            result.findings
        );
        assert_eq!(result.notes.len(), 1, "{:?}", result.notes);
        assert!(result.notes[0].contains("'Vault'"), "{:?}", result.notes);

        let of = |kind: FindingKind, level: &str| {
            result
                .findings
                .iter()
                .find(|f| {
                    f.kind == kind
                        && (f.level.as_ref().is_some_and(|l| l.name == level)
                            || f.credential.as_ref().is_some_and(|c| c.name == level)
                            || level.is_empty())
                })
                .unwrap()
        };
        // The critical server room, never used since June 2025: the top score, judged from
        // the site file's grant time; the refused swipe is no use.
        let unused = of(FindingKind::UnusedEntitlement, "IT");
        assert_eq!(result.findings[0], *unused);
        assert_eq!(unused.factors.sensitivity, 1.0);
        assert_eq!(unused.factors.unusedness, 1.0);
        assert_eq!(unused.evidence.uses_in_window, Some(0));
        assert_eq!(unused.evidence.last_use, None);
        assert_eq!(
            unused.evidence.granted_at.unwrap().to_rfc3339(),
            "2025-06-01T08:00:00+00:00"
        );
        assert_eq!(unused.evidence.peer_share, Some(0.0));
        assert_eq!(unused.evidence.peers, Some(4));
        assert_eq!(unused.remediation.action, Action::Revoke);
        assert_eq!(unused.score, 100.0);

        // Used but rare among peers: an expiry, not a revocation.
        let rare = of(FindingKind::PeerOutlier, "Front door");
        assert_eq!(rare.remediation.action, Action::AddExpiry);
        assert_eq!(rare.evidence.uses_in_window, Some(3));
        let redundant = of(FindingKind::RedundantGrant, "Front door");
        assert_eq!(redundant.evidence.levels, vec!["Staff".to_owned()]);

        let dormant = of(FindingKind::DormantCredential, "0E050002");
        assert_eq!(dormant.evidence.uses_total, Some(1));
        assert!(dormant.evidence.idle_days.unwrap() >= 199);
        assert_eq!(dormant.remediation.action, Action::RevokeCredential);

        // Labs: four doors, the five holders use only Lab A.
        let broad = of(FindingKind::OverbroadLevel, "Labs");
        assert_eq!(broad.evidence.doors, Some(4));
        assert_eq!(broad.evidence.doors_used, Some(1));
        assert_eq!(broad.evidence.holders, Some(5));
        assert_eq!(broad.factors.unusedness, 0.75);
        assert_eq!(broad.remediation.action, Action::ReplaceLevel);
        assert!(
            broad.remediation.text.contains("Lab A"),
            "{}",
            broad.remediation.text
        );

        let toxic = of(FindingKind::ToxicCombination, "");
        assert_eq!(toxic.evidence.combination.as_deref(), Some("Cash handling"));
        assert_eq!(
            toxic.evidence.levels,
            vec!["Dock".to_owned(), "Cash".to_owned()]
        );

        // A shorter window: 7 days. The Labs and Staff uses of 10 and 20 days ago no
        // longer count; E1's IT stays unused. A window longer than the grants are old
        // (600 days) judges no entitlement as unused.
        let week = Settings {
            unused_days: 7,
            ..settings()
        };
        let weekly = review(&mut app.db(), ReadScope::of(Role::Admin), &week, Utc::now()).unwrap();
        assert!(found(&weekly).contains(&(FindingKind::UnusedEntitlement, s("E1"), s("IT"))));
        let long = Settings {
            unused_days: 600,
            ..settings()
        };
        let yearly = review(&mut app.db(), ReadScope::of(Role::Admin), &long, Utc::now()).unwrap();
        assert!(
            !yearly
                .findings
                .iter()
                .any(|f| f.kind == FindingKind::UnusedEntitlement),
            "{:#?}",
            yearly.findings
        );
    }
}

#[test]
fn the_command_line_prints_findings_as_a_table_and_as_json_lines() {
    let install = crate::cli::Install::new();
    let dir = install.dir.path();
    std::fs::write(dir.join("site.toml"), site_with_people()).unwrap();
    std::fs::write(dir.join("history.csv"), history()).unwrap();
    std::fs::write(
        dir.join("g.toml"),
        format!(
            "data_dir = \"{}\"\n\n[entitlement_review]\nunused_days = 90\n\n\
             [[entitlement_review.toxic]]\nname = \"Cash handling\"\ndoors = [\"Loading Dock\", \"Cash Office\"]\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    install.ok(&["--config", "g.toml", "import", "site.toml"], None);
    install.ok(
        &["--config", "g.toml", "import", "--events", "history.csv"],
        None,
    );
    let lines = install.ok(
        &[
            "--config",
            "g.toml",
            "risk",
            "entitlements",
            "--format",
            "jsonl",
        ],
        None,
    );
    let findings: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(findings.len(), 7, "{lines}");
    assert_eq!(findings[0]["kind"], "unused_entitlement");
    assert_eq!(findings[0]["person"]["employee_id"], "E1");
    assert_eq!(findings[0]["level"]["name"], "IT");
    assert_eq!(findings[0]["score"], 100.0);
    assert!(findings.iter().any(|f| f["kind"] == "toxic_combination"));
    let table = install.ok(
        &[
            "--config",
            "g.toml",
            "risk",
            "entitlements",
            "--min-score",
            "50",
        ],
        None,
    );
    assert!(table.starts_with("finding"), "{table}");
    assert!(table.contains("unused_entitlement"), "{table}");
    assert!(table.contains("revoke 'IT'"), "{table}");
    let shown = table.lines().count() - 2;
    let above: usize = findings
        .iter()
        .filter(|f| f["score"].as_f64().unwrap() >= 50.0)
        .count();
    assert_eq!(shown, above, "{table}");
    // A toxic combination of one door is refused when the config is read.
    std::fs::write(
        dir.join("bad.toml"),
        "[[entitlement_review.toxic]]\nname = \"One\"\ndoors = [\"Cash Office\"]\n",
    )
    .unwrap();
    let out = install.run(&["--config", "bad.toml", "check-config"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entitlement_review.toxic"), "{err}");
}

#[test]
fn the_api_serves_the_review_to_every_role_and_documents_it() {
    for backend in backends() {
        let app = TestApp::new(backend);
        load(&app);
        // The test appliance's config names no toxic combination: six findings.
        let all = app.get("/api/v1/risk/entitlements");
        assert_eq!(all.status, 200, "{}", all.body);
        let findings = all.body["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 6, "{backend:?}: {}", all.body);
        assert_eq!(findings[0]["kind"], "unused_entitlement");
        assert_eq!(findings[0]["evidence"]["uses_in_window"], 0);
        assert_eq!(findings[0]["remediation"]["action"], "revoke");
        assert!(all.body["window_from"].is_string());

        let dormant = app.get("/api/v1/risk/entitlements?kind=dormant_credential");
        let dormant = dormant.body["findings"].as_array().unwrap().clone();
        assert_eq!(dormant.len(), 1);
        assert_eq!(dormant[0]["credential"]["name"], "0E050002");
        let e1 = findings[0]["person"]["id"].as_i64().unwrap();
        let mine = app.get(&format!(
            "/api/v1/risk/entitlements?person_id={e1}&min_score=50"
        ));
        assert!(
            mine.body["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["person"]["id"] == e1 && f["score"].as_f64().unwrap() >= 50.0),
            "{}",
            mine.body
        );

        assert_eq!(
            app.get("/api/v1/risk/entitlements?min_score=500").status,
            422
        );
        assert_eq!(app.get("/api/v1/risk/entitlements?kind=bad").status, 422);
        assert_eq!(app.get("/api/v1/risk/entitlements?role=admin").status, 400);
        assert_eq!(app.get_as(None, "/api/v1/risk/entitlements").status, 401);
        let auditor = app.token_for("auditor", "auditor");
        let seen = app.get_as(Some(&auditor), "/api/v1/risk/entitlements");
        assert_eq!(seen.status, 200);
        assert_eq!(seen.body["findings"], all.body["findings"]);

        let doc = app.get_as(None, "/api/v1/openapi.json").body;
        let path = &doc["paths"]["/api/v1/risk/entitlements"]["get"];
        assert!(path["responses"]["200"].is_object(), "{path}");
        assert!(doc["components"]["schemas"]["Finding"].is_object());
    }
}
