//! Admin changes govern the very next decision: the live snapshot is rebuilt on commit.

use chrono::{DateTime, Utc};
use gatehouse::policy::{CredentialKey, DenyCode, Outcome, Presence, Request, Snapshot, decide};
use serde_json::json;

use crate::app::{TestApp, backends, build_site};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn swipe(app: &TestApp, card: &str, now: DateTime<Utc>) -> Outcome {
    let snapshot = app.state.live.snapshot();
    let key = CredentialKey::card(card).unwrap();
    let request = Request {
        reader_id: "main-in",
        credential: &key,
        pin: None,
    };
    app.state
        .live
        .read_presence(|presence| decide(&snapshot, presence, &request, now))
        .unwrap()
        .outcome
}

#[test]
fn suspending_a_person_denies_their_next_swipe() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        // Monday 2026-11-23, 10:00 in Berlin (09:00 UTC): inside business hours.
        let monday_morning = at("2026-11-23T09:00:00Z");
        assert_eq!(
            swipe(&app, f.card, monday_morning),
            Outcome::Grant { unlock_ms: 5000 }
        );
        assert_eq!(
            swipe(&app, f.card, at("2026-11-23T05:00:00Z")),
            Outcome::Deny(DenyCode::Schedule),
            "06:00 Berlin is before the 07:00 window opens"
        );
        assert_eq!(
            swipe(&app, "DEADBEEF", monday_morning),
            Outcome::Deny(DenyCode::UnknownCredential)
        );
        let r = app.put(
            &format!("/api/v1/people/{}", f.person),
            json!({"employee_id": "E1", "name": "Ada Lovelace", "status": "suspended"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            swipe(&app, f.card, monday_morning),
            Outcome::Deny(DenyCode::Inactive)
        );
        // Lockdown of the site wins over everything else.
        let r = app.put(
            &format!("/api/v1/people/{}", f.person),
            json!({"employee_id": "E1", "name": "Ada Lovelace"}),
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            swipe(&app, f.card, monday_morning),
            Outcome::Grant { unlock_ms: 5000 }
        );
        let r = app.put(
            &format!("/api/v1/sites/{}", f.site),
            json!({"name": "HQ", "timezone": "Europe/Berlin", "lockdown": true}),
        );
        assert_eq!(r.status, 200);
        assert_eq!(
            swipe(&app, f.card, monday_morning),
            Outcome::Deny(DenyCode::Lockdown)
        );
    }
}

#[test]
fn explain_lists_every_covering_entitlement() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    // A second level covering the main door through its zone, on a 24/7 schedule but expired.
    let always = app.create("schedules", json!({"name": "Always", "holidays": "ignore", "windows": [{"cron": "0 0 * * *", "duration_min": 1440}]}));
    let building = app.create("access-levels", json!({"name": "Whole building", "items": [{"zone_id": f.building, "schedule_id": always}]}));
    app.create("entitlements", json!({"person_id": f.person, "level_id": building, "valid_until": "2026-01-01T00:00:00Z", "justification": "project"}));
    let r = app.get("/api/v1/explain?employee_id=E1&door=Main%20Entrance&at=2026-11-23T05:00:00Z");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["granted"], false);
    assert_eq!(r.body["decision"]["outcome"]["code"], "schedule");
    let covering = r.body["entitlements"].as_array().unwrap();
    assert_eq!(covering.len(), 2, "both levels are shown: {}", r.body);
    let names: Vec<&str> = covering
        .iter()
        .map(|c| c["level"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Staff") && names.contains(&"Whole building"),
        "{names:?}"
    );
    let expired = covering
        .iter()
        .find(|c| c["level"]["name"] == "Whole building")
        .unwrap();
    assert_eq!(expired["expired"], true);
    assert_eq!(expired["via"]["kind"], "zone");
    // At 10:00 Berlin the staff level grants, and says so.
    // A Monday inside the live policy's horizon (when the schedule's next change is
    // known), whenever the test runs.
    let today = chrono::Utc::now().date_naive();
    let monday = (1..=7)
        .map(|d| today + chrono::Days::new(d))
        .find(|d| chrono::Datelike::weekday(d) == chrono::Weekday::Mon)
        .unwrap();
    let mut r = app.get(&format!(
        "/api/v1/explain?card_uid={}&door_id={}&at={monday}T09:00:00Z",
        f.card, f.main_door
    ));
    assert_eq!(r.body["granted"], true, "{}", r.body);
    let staff = r.body["entitlements"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["level"]["name"] == "Staff")
        .unwrap();
    assert_eq!(staff["next_closes"], format!("{monday}T17:00:00Z"));
    // The dates move with the calendar; everything else is pinned by the snapshot.
    staff["next_closes"] = json!("[Monday]T17:00:00Z");
    r.body["at"] = json!("[Monday]T09:00:00Z");
    // The texts give the time on the site's clock (CET or CEST, by the date).
    let at = monday.and_hms_opt(9, 0, 0).unwrap().and_utc();
    let said = gatehouse::policy::when_at(at, chrono_tz::Europe::Berlin);
    r.body = serde_json::from_str(
        &r.body
            .to_string()
            .replace(&said, "[Monday 09:00Z on Berlin's clock]"),
    )
    .unwrap();
    // Sorted keys: serde_json keeps insertion order when another crate of the workspace
    // enables its `preserve_order` feature, and the snapshot must not depend on that.
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_json_snapshot!("explain_granted_by_staff_level", r.body);
    });
    let bad = app.get("/api/v1/explain?door=Main%20Entrance");
    assert_eq!(bad.status, 422);
    let unknown = app.get("/api/v1/explain?employee_id=nobody&door=Main%20Entrance");
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_policy_that_cannot_compile_keeps_the_last_good_one_and_says_so() {
    use diesel::connection::SimpleConnection;
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let monday_morning = at("2026-11-23T09:00:00Z");
    // Someone edits the database by hand and breaks it.
    app.db()
        .batch_execute("UPDATE sites SET timezone = 'Mars/Olympus_Mons'")
        .unwrap();
    let r = app.post("/api/v1/zones", json!({"site_id": f.site, "name": "Annex"}));
    assert_eq!(r.status, 500);
    assert!(
        r.body["error"].as_str().unwrap().contains("saved"),
        "{}",
        r.body
    );
    let health = app.get_as(None, "/healthz");
    assert_eq!(health.status, 503);
    assert!(
        health.body["policy_stale"]
            .as_str()
            .unwrap()
            .contains("Mars/Olympus_Mons"),
        "{}",
        health.body
    );
    // Doors keep working on the last good policy, and a change to one person, which
    // needs nothing else of it, is laid over that policy and governs the next swipe.
    assert_eq!(
        swipe(&app, f.card, monday_morning),
        Outcome::Grant { unlock_ms: 5000 }
    );
    let r = app.put(
        &format!("/api/v1/people/{}", f.person),
        json!({"employee_id": "E1", "name": "Ada Lovelace", "status": "suspended"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        swipe(&app, f.card, monday_morning),
        Outcome::Deny(DenyCode::Inactive)
    );
    assert_eq!(app.get_as(None, "/healthz").status, 503);
    // Repairing the database heals the appliance at the next change.
    app.db()
        .batch_execute("UPDATE sites SET timezone = 'Europe/Berlin'")
        .unwrap();
    assert_eq!(
        app.post(
            "/api/v1/zones",
            json!({"site_id": f.site, "name": "Annex 2"})
        )
        .status,
        201
    );
    assert_eq!(app.get_as(None, "/healthz").status, 200);
    assert_eq!(
        swipe(&app, f.card, monday_morning),
        Outcome::Deny(DenyCode::Inactive)
    );
}

#[test]
fn changes_made_outside_the_api_reach_the_live_policy() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let monday_morning = at("2026-11-23T09:00:00Z");
        // What `gatehouse import` or another appliance instance does: write to the database
        // directly, through the same audited path, without telling this process.
        let mut conn = app.db();
        let ctx = gatehouse::entities::ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("elsewhere"),
            now: Utc::now(),
        };
        let person =
            gatehouse::entities::get::<gatehouse::entities::people::People>(&mut conn, f.person)
                .unwrap();
        let input = gatehouse::entities::people::PersonInput {
            employee_id: person.employee_id,
            name: person.name,
            department: person.department,
            title: person.title,
            manager_id: None,
            person_type: person.person_type,
            status: "terminated".to_owned(),
            valid_from: None,
            valid_until: None,
            notes: String::new(),
        };
        gatehouse::entities::update::<gatehouse::entities::people::People>(
            &mut conn, f.person, input, &ctx,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while swipe(&app, f.card, monday_morning) != Outcome::Deny(DenyCode::Inactive) {
            assert!(
                std::time::Instant::now() < deadline,
                "the live policy never saw the change"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The live snapshot decides every card at every reader as a compile of what is stored.
fn assert_live_is_stored(app: &TestApp, cards: &[&str], now: DateTime<Utc>, step: &str) {
    let loaded = gatehouse::store::load::load_policy(&mut app.db()).unwrap();
    let compiled = Snapshot::compile(&loaded.data, now).unwrap();
    let live = app.state.live.snapshot();
    assert_eq!(live.counts(), compiled.counts(), "{step}");
    let presence = Presence::new();
    for card in cards {
        let key = CredentialKey::card(card).unwrap();
        for reader in compiled.readers() {
            let request = Request {
                reader_id: &reader.reader_id,
                credential: &key,
                pin: None,
            };
            assert_eq!(
                decide(&live, &presence, &request, now),
                decide(&compiled, &presence, &request, now),
                "{step}: {card} at {}",
                reader.reader_id
            );
        }
    }
}

fn swipe_by(app: &TestApp, card: &str, now: DateTime<Utc>) -> (Outcome, Option<i64>) {
    let snapshot = app.state.live.snapshot();
    let key = CredentialKey::card(card).unwrap();
    let request = Request {
        reader_id: "main-in",
        credential: &key,
        pin: None,
    };
    let decision = decide(&snapshot, &Presence::new(), &request, now).unwrap();
    (decision.outcome, decision.person_id)
}

#[test]
fn each_change_to_a_person_governs_the_next_swipe_without_compiling_the_policy() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let monday = at("2026-11-23T09:00:00Z");
        let grant = Outcome::Grant { unlock_ms: 5000 };
        let deny = Outcome::Deny;
        let cards = [f.card, "0BADCAFE", "DEADBEEF"];
        let laid_before = app.state.live.rebuild_counts().laid_over;
        let ok = |r: crate::app::Response, step: &str| {
            assert!(r.status < 300, "{step}: {} {}", r.status, r.body);
            assert_live_is_stored(&app, &cards, monday, step);
        };
        let card_id = app.get("/api/v1/credentials?card_uid=04A1B2C3").body["items"][0]["id"]
            .as_i64()
            .unwrap();

        // The person's status.
        let r = app.put(
            &format!("/api/v1/people/{}", f.person),
            json!({"employee_id": "E1", "name": "Ada Lovelace", "status": "suspended"}),
        );
        assert_eq!(swipe_by(&app, f.card, monday).0, deny(DenyCode::Inactive));
        ok(r, "suspended");
        let r = app.put(
            &format!("/api/v1/people/{}", f.person),
            json!({"employee_id": "E1", "name": "Ada Lovelace"}),
        );
        assert_eq!(swipe_by(&app, f.card, monday).0, grant);
        ok(r, "active again");

        // A card: reported lost, found again.
        let card = |status: &str, person: i64| {
            app.put(
                &format!("/api/v1/credentials/{card_id}"),
                json!({"person_id": person, "card_uid": "04a1b2c3", "status": status}),
            )
        };
        let r = card("lost", f.person);
        assert_eq!(swipe_by(&app, f.card, monday).0, deny(DenyCode::Inactive));
        ok(r, "card lost");
        let r = card("active", f.person);
        assert_eq!(swipe_by(&app, f.card, monday).0, grant);
        ok(r, "card found");

        // A new person with a card but no access yet, then an entitlement.
        let grace = app.create(
            "people",
            json!({"employee_id": "E2", "name": "Grace Hopper"}),
        );
        let new_card = app.create(
            "credentials",
            json!({"person_id": grace, "card_uid": "0badcafe"}),
        );
        assert_eq!(
            swipe_by(&app, "0BADCAFE", monday).0,
            deny(DenyCode::NoEntitlement)
        );
        assert_live_is_stored(&app, &cards, monday, "new person and card");
        let entitlement = app.create(
            "entitlements",
            json!({"person_id": grace, "level_id": f.staff_level}),
        );
        assert_eq!(swipe_by(&app, "0BADCAFE", monday).0, grant);
        assert_live_is_stored(&app, &cards, monday, "entitlement granted");

        // Ada's card handed to Grace: it opens as Grace's at once.
        let r = card("active", grace);
        assert_eq!(swipe_by(&app, f.card, monday), (grant, Some(grace)));
        ok(r, "card moved");

        // Grace's access expires, then is withdrawn; her new card is withdrawn too.
        let r = app.put(
            &format!("/api/v1/entitlements/{entitlement}"),
            json!({"person_id": grace, "level_id": f.staff_level, "valid_until": "2026-11-01T00:00:00Z"}),
        );
        assert_eq!(
            swipe_by(&app, "0BADCAFE", monday).0,
            deny(DenyCode::Expired)
        );
        ok(r, "entitlement expired");
        let r = app.delete(&format!("/api/v1/entitlements/{entitlement}"));
        assert_eq!(
            swipe_by(&app, "0BADCAFE", monday).0,
            deny(DenyCode::NoEntitlement)
        );
        ok(r, "entitlement withdrawn");
        let r = app.delete(&format!("/api/v1/credentials/{new_card}"));
        assert_eq!(
            swipe_by(&app, "0BADCAFE", monday).0,
            deny(DenyCode::UnknownCredential)
        );
        ok(r, "card deleted");

        // A new employee id is found at once; the person's own rows were all that moved.
        let r = app.put(
            &format!("/api/v1/people/{grace}"),
            json!({"employee_id": "E2b", "name": "Grace Hopper"}),
        );
        assert!(
            app.state
                .live
                .snapshot()
                .person_by_employee_id("E2b")
                .is_some()
        );
        assert!(
            app.state
                .live
                .snapshot()
                .person_by_employee_id("E2")
                .is_none()
        );
        ok(r, "employee id");
        let r = app.delete(&format!("/api/v1/credentials/{card_id}"));
        ok(r, "card of grace deleted");
        let r = app.delete(&format!("/api/v1/people/{grace}"));
        assert!(app.state.live.snapshot().person(grace).is_none());
        ok(r, "person deleted");
        assert_eq!(
            app.state.live.rebuild_counts().laid_over - laid_before,
            14,
            "every change above was laid over the snapshot, none compiled the policy"
        );
    }
}
