//! The JSON API as an integrator uses it: every entity's routes, validation, roles.

use serde_json::json;

use crate::app::{TestApp, backends, build_site};

#[test]
fn every_entity_can_be_listed_read_replaced_and_deleted() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        for collection in gatehouse::web::entity_collections() {
            let list = app.get(&format!("/api/v1/{collection}"));
            assert_eq!(list.status, 200, "{collection}: {}", list.body);
            assert!(
                list.body["total"].as_i64().unwrap() >= 1,
                "{collection} is empty"
            );
            let first = &list.body["items"][0];
            let id = first["id"].as_i64().unwrap();
            let one = app.get(&format!("/api/v1/{collection}/{id}"));
            assert_eq!(one.status, 200);
            assert_eq!(&one.body, first, "{collection}: get and list agree");
        }
        // Replace: rename a door, narrow a schedule, suspend a person.
        let r = app.put(
            &format!("/api/v1/doors/{}", f.main_door),
            json!({"zone_id": f.building, "name": "Main Entrance North", "unlock_ms": 3000}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["name"], "Main Entrance North");
        assert_eq!(r.body["unlock_ms"], 3000);
        let r = app.put(
            &format!("/api/v1/schedules/{}", f.business_hours),
            json!({"name": "Business hours", "windows": [{"cron": "0 8 * * Mon-Fri", "duration_min": 540}]}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["windows"][0]["cron"], "0 8 * * Mon-Fri");
        // Delete: something still in use is refused with 409; unused things go.
        let r = app.delete(&format!("/api/v1/access-levels/{}", f.staff_level));
        assert_eq!(r.status, 409, "level held by a person: {}", r.body);
        let ent = app.get(&format!("/api/v1/entitlements?person_id={}", f.person));
        let ent_id = ent.body["items"][0]["id"].as_i64().unwrap();
        assert_eq!(
            app.delete(&format!("/api/v1/entitlements/{ent_id}")).status,
            204
        );
        assert_eq!(
            app.delete(&format!("/api/v1/access-levels/{}", f.staff_level))
                .status,
            204
        );
        assert_eq!(
            app.get(&format!("/api/v1/access-levels/{}", f.staff_level))
                .status,
            404
        );
        assert_eq!(app.delete("/api/v1/people/999999").status, 404);
    }
}

#[test]
fn lists_filter_and_page() {
    for backend in backends() {
        let app = TestApp::new(backend);
        for i in 0..25 {
            let dept = if i % 5 == 0 { "Security" } else { "Sales" };
            app.create("people", json!({"employee_id": format!("P{i:03}"), "name": format!("Person {i}"), "department": dept}));
        }
        let page = app.get("/api/v1/people?limit=10&offset=20");
        assert_eq!(page.body["total"], 25);
        assert_eq!(page.body["items"].as_array().unwrap().len(), 5);
        let security = app.get("/api/v1/people?department=Security");
        assert_eq!(security.body["total"], 5);
        let search = app.get("/api/v1/people?q=p01");
        assert_eq!(
            search.body["total"], 10,
            "P010..P019 match 'p01' case-insensitively"
        );
        let wildcard = app.get("/api/v1/people?q=%25");
        assert_eq!(
            wildcard.body["total"], 0,
            "a % typed by a user is not a wildcard"
        );
        let bad = app.get("/api/v1/people?limit=5000");
        assert_eq!(bad.status, 422);
        assert!(bad.body["fields"]["limit"].is_array(), "{}", bad.body);
    }
}

#[test]
fn invalid_input_gets_messages_per_field_and_changes_nothing() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let r = app.post(
            "/api/v1/doors",
            json!({"zone_id": 9999, "name": "", "mode": "open-sesame", "unlock_ms": 5}),
        );
        assert_eq!(r.status, 422);
        let fields = &r.body["fields"];
        for field in ["zone_id", "name", "mode", "unlock_ms"] {
            assert!(
                fields[field].is_array(),
                "no message for {field}: {}",
                r.body
            );
        }
        let r = app.post(
            "/api/v1/schedules",
            json!({"name": "Nights", "windows": [{"cron": "0 25 * * *", "duration_min": 60}]}),
        );
        assert_eq!(r.status, 422);
        assert!(r.body["fields"]["windows[0].cron"].is_array(), "{}", r.body);
        let r = app.post(
            "/api/v1/credentials",
            json!({"person_id": f.person, "card_uid": "04a1b2c3"}),
        );
        assert_eq!(r.status, 422, "a card is issued once: {}", r.body);
        let r = app.post(
            "/api/v1/credentials",
            json!({"person_id": f.person, "card_uid": "zz", "pin": "12"}),
        );
        assert!(
            r.body["fields"]["card_uid"].is_array() && r.body["fields"]["pin"].is_array(),
            "{}",
            r.body
        );
        // Wrong JSON types name the field.
        let r = app.post("/api/v1/sites", json!({"name": "X", "timezone": 5}));
        assert_eq!(r.status, 422);
        assert!(r.body["fields"]["timezone"].is_array(), "{}", r.body);
        let r = app.post(
            "/api/v1/sites",
            json!({"name": "X", "timezone": "UTC", "colour": "red"}),
        );
        assert_eq!(r.status, 422, "unknown fields are refused: {}", r.body);
        let r = app.put(
            &format!("/api/v1/zones/{}", f.building),
            json!({"site_id": f.site, "name": "Building", "parent_id": f.server_room}),
        );
        assert_eq!(
            r.status, 422,
            "a zone cannot move inside its own child: {}",
            r.body
        );
        let other_site = app.create(
            "sites",
            json!({"name": "Annex", "timezone": "Europe/London"}),
        );
        let r = app.put(
            &format!("/api/v1/zones/{}", f.building),
            json!({"site_id": other_site, "name": "Building"}),
        );
        assert_eq!(
            r.status, 422,
            "its child zone would be left in the old site: {}",
            r.body
        );
        assert!(r.body["fields"]["site_id"].is_array(), "{}", r.body);
        assert_eq!(app.get("/api/v1/sites").body["total"], 2);
        assert_eq!(app.get("/api/v1/doors").body["total"], 2);
    }
}

#[test]
fn roles_are_enforced_on_every_route() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let auditor = app.token_for("audrey", "auditor");
    let operator = app.token_for("otto", "operator");
    let person = json!({"employee_id": "E2", "name": "Grace Hopper"});
    // No token, or a made-up one: 401 everywhere under /api/v1.
    for collection in gatehouse::web::entity_collections() {
        assert_eq!(
            app.get_as(None, &format!("/api/v1/{collection}")).status,
            401
        );
        assert_eq!(
            app.get_as(Some("gh_1_forged"), &format!("/api/v1/{collection}"))
                .status,
            401
        );
        // Auditors read every collection and write none.
        assert_eq!(
            app.get_as(Some(&auditor), &format!("/api/v1/{collection}"))
                .status,
            200
        );
        let write = app.send_as(
            Some(&auditor),
            "POST",
            &format!("/api/v1/{collection}"),
            &json!({}),
        );
        assert_eq!(write.status, 403, "auditor wrote {collection}");
        let delete = app.send_as(
            Some(&auditor),
            "DELETE",
            &format!("/api/v1/{collection}/1"),
            &json!(null),
        );
        assert_eq!(delete.status, 403, "auditor deleted from {collection}");
    }
    assert_eq!(
        app.send_as(None, "POST", "/api/v1/people", &person).status,
        401
    );
    assert_eq!(app.get_as(Some(&auditor), "/api/v1/audit").status, 200);
    assert_eq!(
        app.get_as(
            Some(&auditor),
            &format!(
                "/api/v1/explain?person_id={}&door_id={}",
                f.person, f.main_door
            )
        )
        .status,
        200
    );
    // Operators run the building but cannot manage admins or tokens.
    assert_eq!(
        app.send_as(Some(&operator), "POST", "/api/v1/people", &person)
            .status,
        201
    );
    let admin =
        json!({"username": "mallory", "password": "a long enough password", "role": "admin"});
    assert_eq!(
        app.send_as(Some(&operator), "POST", "/api/v1/admin-users", &admin)
            .status,
        403
    );
    assert_eq!(
        app.get_as(Some(&operator), "/api/v1/admin-users").status,
        403
    );
    assert_eq!(
        app.send_as(
            Some(&operator),
            "POST",
            "/api/v1/tokens",
            &json!({"username": "otto", "name": "x"})
        )
        .status,
        403
    );
    // Admins can.
    assert_eq!(app.post("/api/v1/admin-users", admin).status, 201);
    let issued = app.post(
        "/api/v1/tokens",
        json!({"username": "mallory", "name": "cli"}),
    );
    assert_eq!(issued.status, 201);
    let token = issued.body["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_as(Some(&token), "/api/v1/people").status, 200);
    // A revoked token stops working at once.
    let id = issued.body["id"].as_i64().unwrap();
    assert_eq!(app.delete(&format!("/api/v1/tokens/{id}")).status, 204);
    assert_eq!(app.get_as(Some(&token), "/api/v1/people").status, 401);
    // Token listings never contain token text or hashes.
    let tokens = app.get("/api/v1/tokens").body.to_string();
    assert!(
        !tokens.contains(&token[10..]) && !tokens.contains("argon2"),
        "{tokens}"
    );
}

#[test]
fn reader_secret_is_shown_once() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let created = app.post(
            "/api/v1/readers",
            json!({"reader_id": "srv-in", "door_id": f.server_door}),
        );
        assert_eq!(created.status, 201);
        let secret = created.body["secret"].as_str().unwrap();
        assert_eq!(secret.len(), 64, "32 random bytes in hex");
        let id = created.body["id"].as_i64().unwrap();
        let read = app.get(&format!("/api/v1/readers/{id}"));
        assert!(read.body.get("secret").is_none(), "{}", read.body);
        let audit = app.get("/api/v1/audit").body.to_string();
        assert!(
            !audit.contains(secret),
            "the audit log must not hold reader secrets"
        );
        let modbus = app.post(
            "/api/v1/readers",
            json!({"reader_id": "dock-io", "door_id": f.main_door, "protocol": "modbus"}),
        );
        assert_eq!(modbus.status, 422);
        assert!(modbus.body["fields"]["modbus_host"].is_array());
    }
}

#[test]
fn openapi_document_and_health() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let doc = app.get_as(None, "/api/v1/openapi.json");
    assert_eq!(doc.status, 200);
    for collection in gatehouse::web::entity_collections() {
        assert!(
            doc.body["paths"][format!("/api/v1/{collection}")]["get"].is_object(),
            "{collection}"
        );
        assert!(
            doc.body["paths"][format!("/api/v1/{collection}/{{id}}")]["put"].is_object(),
            "{collection}"
        );
    }
    for (path, method) in [
        ("/api/v1/explain", "get"),
        ("/api/v1/admin-users", "post"),
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/audit", "get"),
        ("/api/v1/audit/verify", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/events/stream", "get"),
        ("/api/v1/readers/health", "get"),
        ("/api/v1/jobs", "get"),
    ] {
        assert!(
            doc.body["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    assert!(doc.body["components"]["schemas"]["PersonInput"].is_object());
    assert!(doc.body["components"]["schemas"]["JobView"].is_object());
    // The event a page lists is the log's one event type, as served: its id beside the
    // event's fields (flattened), the reader's internals (time, digest, answer) left out.
    let schemas = &doc.body["components"]["schemas"];
    let recorded = serde_json::to_string(&schemas["Recorded"]).unwrap();
    let event = serde_json::to_string(&schemas["Event"]).unwrap();
    for field in ["\"id\"", "Event"] {
        assert!(recorded.contains(field), "{field} missing in {recorded}");
    }
    for field in [
        "at",
        "kind",
        "seq",
        "zone_id",
        "direction",
        "reason_code",
        "policy_version",
        "risk_score",
        "risk_reasons",
    ] {
        assert!(
            event.contains(&format!("\"{field}\"")),
            "{field} missing in {event}"
        );
    }
    for internal in ["reader_ts", "content_digest", "command"] {
        assert!(
            !event.contains(&format!("\"{internal}\"")),
            "{internal} in {event}"
        );
    }
    let health = app.get_as(None, "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.body["database"], "ok");
}

/// A `PUT` of what an entity already holds changes nothing: 200 with the entity, no audit
/// entry, the update stamp kept. A real change after it is audited as before.
#[test]
fn a_put_that_changes_nothing_adds_no_audit_entry() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let audit_entries = |app: &TestApp| {
            app.get("/api/v1/audit?limit=1000")
                .body
                .as_array()
                .map_or(0, Vec::len)
        };
        let door = format!("/api/v1/doors/{}", f.main_door);
        let body = json!({"zone_id": f.building, "name": "Main Entrance", "unlock_ms": 4000});
        let first = app.put(&door, body.clone());
        assert_eq!(first.status, 200, "{}", first.body);
        let audited = audit_entries(&app);
        let again = app.put(&door, body);
        assert_eq!(again.status, 200, "{}", again.body);
        assert_eq!(again.body, first.body, "{backend:?}: the entity as it is");
        assert_eq!(
            audit_entries(&app),
            audited,
            "{backend:?}: nothing to audit"
        );
        let changed = app.put(
            &door,
            json!({"zone_id": f.building, "name": "Main Entrance", "unlock_ms": 5000}),
        );
        assert_eq!(changed.status, 200, "{}", changed.body);
        assert_eq!(audit_entries(&app), audited + 1, "{backend:?}: a change");
    }
}

/// The API unlocks a door for a moment or refuses with 409 and the reason in JSON (no
/// reader, a locked door without `override_locked`, a lockdown), and tells every door's
/// state: unknown until its contact reports, with the running unlock.
#[test]
fn the_api_unlocks_a_door_or_says_why_not_and_tells_each_doors_state() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let state_of = |door: i64| {
        let r = app.get("/api/v1/doors/states");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["door_id"] == door)
            .cloned()
            .unwrap()
    };
    let main = state_of(f.main_door);
    assert_eq!(main["contact"], "unknown", "{main}");
    assert_eq!(main["since"], serde_json::Value::Null);
    assert_eq!(main["unlocked_until"], serde_json::Value::Null);
    let unlock = |door: i64, body: serde_json::Value| {
        app.post(&format!("/api/v1/doors/{door}/unlock"), body)
    };

    let r = unlock(f.server_door, json!({}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("Server Room Door: the door has no reader"),
        "{}",
        r.body
    );
    let r = unlock(f.main_door, json!({"seconds": 0}));
    assert_eq!(r.status, 422, "{}", r.body);
    let r = unlock(f.main_door, json!({"seconds": 60, "open": "please"}));
    assert_eq!(r.status, 422, "{}", r.body);
    let auditor = app.token_for("audrey", "auditor");
    let r = app.send_as(
        Some(&auditor),
        "POST",
        &format!("/api/v1/doors/{}/unlock", f.main_door),
        &json!({}),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    let r = unlock(f.main_door, json!({"seconds": 60}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["seconds"], 60);
    assert_eq!(r.body["overrides_locked"], false);
    assert_eq!(state_of(f.main_door)["unlocked_until"], r.body["until"]);

    // A locked door: refused unless the override is sent, which ends the unlock above.
    let mut door = app.get(&format!("/api/v1/doors/{}", f.main_door)).body;
    door["mode"] = json!("locked");
    let r = app.put(&format!("/api/v1/doors/{}", f.main_door), door);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        state_of(f.main_door)["unlocked_until"],
        serde_json::Value::Null
    );
    let r = unlock(f.main_door, json!({"seconds": 30}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap()
            .contains("override_locked"),
        "{}",
        r.body
    );
    let r = unlock(f.main_door, json!({"seconds": 30, "override_locked": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["overrides_locked"], true);

    // A lockdown refuses every unlock, and ends the running one.
    let r = app.put(
        &format!("/api/v1/sites/{}", f.site),
        json!({"name": "HQ", "timezone": "Europe/Berlin", "lockdown": true}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        state_of(f.main_door)["unlocked_until"],
        serde_json::Value::Null
    );
    let r = unlock(f.main_door, json!({"override_locked": true}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["error"].as_str().unwrap().contains("lockdown"),
        "{}",
        r.body
    );

    assert_eq!(app.events(Some("remote_unlock")).len(), 2);
    let audit = app.get("/api/v1/audit?entity=door").body.to_string();
    assert!(
        audit.contains("unlock door 'Main Entrance' for 30 s, overriding its locked mode"),
        "{audit}"
    );
    assert!(
        app.get("/api/v1/openapi.json").body["paths"]["/api/v1/doors/{id}/unlock"]["post"]
            .is_object()
    );
}
