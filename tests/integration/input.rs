//! Input that must be refused whole, wherever it comes in: manager cycles, a key held twice
//! in one file, NUL and undecodable text, trailing JSON, unknown query parameters, reader
//! hosts outside the allowed networks; and errors the API answers as JSON.

use chrono::Utc;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::provenance::Provenance;
use gatehouse::io::site_file::{self, ImportError};
use serde_json::{Value, json};

use crate::app::{Backend, TestApp, backends, build_site};
use crate::console::signed_in;

/// A request sent as it is: status, content type and body (JSON when it parses).
fn raw(app: &TestApp, method: &str, path: &str, body: &[u8]) -> (u16, String, Value) {
    let agent = app.agent_config().build().new_agent();
    let url = app.url(path);
    let auth = format!("Bearer {}", app.token);
    let result = match method {
        "GET" => agent.get(&url).header("Authorization", &auth).call(),
        "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
        "POST" => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body),
        "PUT" => agent
            .put(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body),
        other => panic!("unsupported method {other}"),
    };
    let mut response = result.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, body)
}

fn ctx() -> ChangeContext<'static> {
    static TEST_SETUP: std::sync::LazyLock<Provenance> =
        std::sync::LazyLock::new(|| Provenance::cli("input-test"));
    ChangeContext {
        provenance: &TEST_SETUP,
        now: Utc::now(),
    }
}

fn import(app: &TestApp, text: &str) -> Result<site_file::ImportSummary, Vec<ImportError>> {
    site_file::import(&mut app.db(), text, &ctx(), false, &|_, _| {})
}

fn total(app: &TestApp, collection: &str) -> i64 {
    app.get(&format!("/api/v1/{collection}")).body["total"]
        .as_i64()
        .unwrap()
}

fn audit_entries(app: &TestApp) -> i64 {
    gatehouse::store::audit::verify(&mut app.db())
        .unwrap()
        .entries as i64
}

#[test]
fn manager_cycles_of_any_length_are_refused() {
    for backend in backends() {
        let app = TestApp::without_modbus_polling(backend);
        let a = app.create("people", json!({"employee_id": "A", "name": "Ann"}));
        let b = app.create(
            "people",
            json!({"employee_id": "B", "name": "Bob", "manager_id": a}),
        );
        let c = app.create(
            "people",
            json!({"employee_id": "C", "name": "Cy", "manager_id": b}),
        );
        for manager in [b, c, a] {
            let r = app.put(
                &format!("/api/v1/people/{a}"),
                json!({"employee_id": "A", "name": "Ann", "manager_id": manager}),
            );
            assert_eq!(r.status, 422, "Ann managed by {manager}: {}", r.body);
            assert!(r.body["fields"]["manager_id"].is_array(), "{}", r.body);
        }
        assert_eq!(
            app.get(&format!("/api/v1/people/{a}")).body["manager_id"],
            Value::Null
        );
        // What the API accepted exports to a file that an empty appliance imports.
        let file = site_file::export(&mut app.db()).unwrap();
        let empty = TestApp::without_modbus_polling(backend);
        import(&empty, &file).unwrap();
        assert_eq!(total(&empty, "people"), 3);
    }
}

/// A small deterministic generator (xorshift), so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }
    fn maybe(&mut self, items: &[i64]) -> Value {
        if self.below(3) == 0 {
            Value::Null
        } else {
            self.pick(items).map_or(Value::Null, |id| json!(id))
        }
    }
}

fn ids(app: &TestApp, collection: &str) -> Vec<i64> {
    app.get(&format!("/api/v1/{collection}?limit=1000")).body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// One random API operation, valid or not; the appliance must answer it without a 5xx.
/// Returns whether it was a manager change refused as a cycle.
fn random_operation(app: &TestApp, rng: &mut Rng) -> bool {
    let sites = ids(app, "sites");
    let zones = ids(app, "zones");
    let doors = ids(app, "doors");
    let people = ids(app, "people");
    let schedules = ids(app, "schedules");
    let levels = ids(app, "access-levels");
    let employee = |rng: &mut Rng| format!("E{}", rng.below(6));
    let (method, path, body) = match rng.below(16) {
        0 => (
            "POST",
            "/api/v1/sites".to_owned(),
            json!({
                "name": rng.pick(&["HQ", "Annex", "Depot"]).unwrap(),
                "timezone": rng.pick(&["UTC", "Europe/Berlin", "Mars/Olympus"]).unwrap(),
            }),
        ),
        1 => (
            "POST",
            "/api/v1/zones".to_owned(),
            json!({
                "site_id": rng.pick(&sites).copied().unwrap_or(1),
                "name": rng.pick(&["Building", "Lab", "Vault"]).unwrap(),
                "parent_id": rng.maybe(&zones),
            }),
        ),
        2 => {
            let zone = rng.pick(&zones).copied().unwrap_or(1);
            let Some(site) = app.get(&format!("/api/v1/zones/{zone}")).body["site_id"].as_i64()
            else {
                return false;
            };
            (
                "PUT",
                format!("/api/v1/zones/{zone}"),
                json!({
                    "site_id": site,
                    "name": rng.pick(&["Building", "Lab", "Vault", "Yard"]).unwrap(),
                    "parent_id": rng.maybe(&zones),
                }),
            )
        }
        3 => (
            "POST",
            "/api/v1/doors".to_owned(),
            json!({
                "zone_id": rng.pick(&zones).copied().unwrap_or(1),
                "name": rng.pick(&["Main", "Back", "Gate"]).unwrap(),
                "mode": rng.pick(&["normal", "locked", "card_and_pin", "bogus"]).unwrap(),
                "free_access_schedule_id": rng.maybe(&schedules),
            }),
        ),
        4 => {
            let modbus = rng.below(2) == 0;
            (
                "POST",
                "/api/v1/readers".to_owned(),
                json!({
                    "reader_id": rng.pick(&["r1", "r2", "r3", "bad id"]).unwrap(),
                    "door_id": rng.pick(&doors).copied().unwrap_or(1),
                    "protocol": if modbus { "modbus" } else { "mqtt" },
                    "modbus_host": if modbus { json!(rng.pick(&outside_hosts()).unwrap()) } else { Value::Null },
                }),
            )
        }
        5 | 6 => (
            "POST",
            "/api/v1/people".to_owned(),
            json!({
                "employee_id": employee(rng),
                "name": "Someone",
                "manager_id": rng.maybe(&people),
            }),
        ),
        7..=10 => {
            let Some(&id) = rng.pick(&people) else {
                return false;
            };
            let current = app.get(&format!("/api/v1/people/{id}")).body;
            (
                "PUT",
                format!("/api/v1/people/{id}"),
                json!({
                    "employee_id": current["employee_id"],
                    "name": current["name"],
                    "manager_id": rng.maybe(&people),
                }),
            )
        }
        11 => (
            "POST",
            "/api/v1/credentials".to_owned(),
            json!({
                "person_id": rng.pick(&people).copied().unwrap_or(1),
                "card_uid": rng.pick(&["04a1", "04A1", "04a2", "zz"]).unwrap(),
                "pin": if rng.below(2) == 0 { json!("4821") } else { Value::Null },
            }),
        ),
        12 => (
            "POST",
            "/api/v1/schedules".to_owned(),
            json!({
                "name": rng.pick(&["Always", "Days"]).unwrap(),
                "windows": [{"cron": "0 8 * * Mon-Fri", "duration_min": 540}],
            }),
        ),
        13 => (
            "POST",
            "/api/v1/access-levels".to_owned(),
            json!({
                "name": rng.pick(&["Staff", "IT"]).unwrap(),
                "items": [{"door_id": rng.pick(&doors).copied().unwrap_or(1), "schedule_id": rng.pick(&schedules).copied().unwrap_or(1)}],
            }),
        ),
        14 => match rng.below(2) {
            0 => (
                "POST",
                "/api/v1/entitlements".to_owned(),
                json!({
                    "person_id": rng.pick(&people).copied().unwrap_or(1),
                    "level_id": rng.pick(&levels).copied().unwrap_or(1),
                }),
            ),
            _ => (
                "POST",
                "/api/v1/holidays".to_owned(),
                json!({
                    "site_id": rng.maybe(&sites),
                    "name": "Day off",
                    "date": rng.pick(&["2026-12-25", "2027-01-01"]).unwrap(),
                }),
            ),
        },
        _ => {
            let collection = *rng
                .pick(&[
                    "people",
                    "zones",
                    "doors",
                    "credentials",
                    "access-levels",
                    "sites",
                ])
                .unwrap();
            let Some(&id) = rng.pick(&ids(app, collection)) else {
                return false;
            };
            ("DELETE", format!("/api/v1/{collection}/{id}"), Value::Null)
        }
    };
    let (status, _, answer) = raw(app, method, &path, body.to_string().as_bytes());
    assert!(
        status < 500,
        "{method} {path} {body} was answered {status}: {answer}"
    );
    status == 422
        && answer["fields"]["manager_id"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m.as_str().unwrap_or("").contains("cycle")))
}

#[test]
fn any_state_the_api_accepts_exports_to_a_file_that_an_empty_appliance_imports() {
    let collections = [
        "sites",
        "zones",
        "doors",
        "readers",
        "people",
        "credentials",
        "schedules",
        "holidays",
        "access-levels",
        "entitlements",
    ];
    for seed in [
        0x9E37_79B9_7F4A_7C15_u64,
        0xD1B5_4A32_D192_ED03,
        0x2545_F491_4F6C_DD1D,
    ] {
        let app = TestApp::without_modbus_polling(Backend::Sqlite);
        let mut rng = Rng(seed);
        let mut cycles_refused = 0;
        for _ in 0..200 {
            cycles_refused += usize::from(random_operation(&app, &mut rng));
        }
        let file = site_file::export(&mut app.db()).unwrap();
        let empty = TestApp::without_modbus_polling(Backend::Sqlite);
        if let Err(errors) = import(&empty, &file) {
            panic!("seed {seed:#x}: the export does not import: {errors:?}\n{file}");
        }
        // The walk must have tried what once broke the export, or it proves nothing.
        assert!(
            cycles_refused > 0,
            "seed {seed:#x}: no manager cycle was tried"
        );
        for collection in collections {
            assert_eq!(
                total(&empty, collection),
                total(&app, collection),
                "seed {seed:#x}: {collection}"
            );
        }
    }
}

#[test]
fn a_key_held_twice_in_a_site_file_names_both_places_and_imports_nothing() {
    let app = TestApp::new(Backend::Sqlite);
    let file = format!(
        "{}\n[[credentials]]\nemployee_id = \"E2\"\ncard_uid = \"04A1B2C3\"\n\n\
         [[readers]]\nreader_id = \"main-in\"\ndoor = \"Server Room Door\"\n\n\
         [[people]]\nemployee_id = \"E1\"\nname = \"Someone Else\"\n",
        crate::site_file::SMALL_SITE
    );
    let errors = import(&app, &file).unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for (second, first) in [
        ("credentials[1] (04A1B2C3)", "credentials[0] (04a1b2c3)"),
        ("readers[1] (main-in)", "readers[0] (main-in)"),
        ("people[2] (E1)", "people[1] (E1)"),
    ] {
        assert!(
            text.iter()
                .any(|e| e.starts_with(second) && e.contains(first)),
            "no error at {second} naming {first}: {text:?}"
        );
    }
    assert_eq!(total(&app, "people"), 0, "nothing imported");
    assert_eq!(total(&app, "credentials"), 0);
}

#[test]
fn every_problem_of_a_people_csv_is_listed_with_its_line_and_nothing_is_imported() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let mut csv = b"employee_id,name,valid_until,manager_employee_id\n\
            E1,Ada,,\n\
            E2,Grace,next tuesday,\n\
            E1,Ada Again,,\n\
            E3,"
        .to_vec();
        csv.extend_from_slice(
            b"Bad \xFF name,,\nE4,Nul\0l,,\nE5,Cyclist,,E6\nE6,Cyclist Two,,E5\n",
        );
        let errors =
            gatehouse::io::people_csv::import(&mut app.db(), &csv[..], &ctx(), false, &|_, _| {})
                .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for (line, says) in [
            ("line 3", "next tuesday"),
            ("line 4 (E1)", "line 2 (E1)"),
            ("line 5", "name: is not valid UTF-8"),
            ("line 6", "name: must not contain a NUL"),
            ("line 7 (E5)", "cycle"),
            ("line 8 (E6)", "cycle"),
        ] {
            assert!(
                text.iter().any(|e| e.starts_with(line) && e.contains(says)),
                "no error at {line} saying {says}: {text:?}"
            );
        }
        assert_eq!(total(&app, "people"), 0, "nothing imported");
    }
}

#[test]
fn json_with_trailing_data_or_nul_is_refused() {
    for backend in backends() {
        let app = TestApp::new(backend);
        for body in [
            &br#"{"name": "X", "timezone": "UTC"} {"name": "Y", "timezone": "UTC"}"#[..],
            br#"{"name": "X", "timezone": "UTC"} 5"#,
            br#"{"name": "X", "timezone": "UTC"}]"#,
        ] {
            let (status, _, answer) = raw(&app, "POST", "/api/v1/sites", body);
            assert_eq!(status, 422, "{}: {answer}", String::from_utf8_lossy(body));
            assert!(answer["fields"]["body"].is_array(), "{answer}");
        }
        let (status, _, answer) = raw(
            &app,
            "POST",
            "/api/v1/sites",
            br#"{"name": "H\u0000Q", "timezone": "UTC"}"#,
        );
        assert_eq!(status, 422, "{answer}");
        assert!(
            answer["fields"]["name"][0]
                .as_str()
                .unwrap()
                .contains("NUL"),
            "{answer}"
        );
        assert_eq!(total(&app, "sites"), 0);
        app.create("people", json!({"employee_id": "E1", "name": "Ada"}));
        let (status, _, answer) = raw(&app, "GET", "/api/v1/people?q=%00", b"");
        assert_eq!(status, 400, "a NUL matched everything once: {answer}");
        assert!(answer["fields"]["q"].is_array(), "{answer}");
        // The site file: TOML's \u0000.
        let errors = import(
            &app,
            "version = 1\n[[sites]]\nname = \"H\\u0000Q\"\ntimezone = \"UTC\"\n",
        )
        .unwrap_err();
        assert!(
            errors[0].place == "sites[0].name" && errors[0].message.contains("NUL"),
            "{errors:?}"
        );
    }
}

#[test]
fn every_api_error_is_json() {
    let app = TestApp::new(Backend::Sqlite);
    for (method, path, want) in [
        ("GET", "/api/v1/people/abc", 404),
        ("PUT", "/api/v1/people/12x", 404),
        ("GET", "/api/v1/no-such-thing", 404),
        ("GET", "/api/v2/people", 404),
        ("GET", "/api/", 404),
        ("DELETE", "/api/v1/people", 404),
        ("GET", "/api/v1/people?limit=many", 422),
    ] {
        let (status, content_type, body) = raw(&app, method, path, b"{}");
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(
            content_type.starts_with("application/json") && body["error"].is_string(),
            "{method} {path}: {content_type} {body}"
        );
    }
}

#[test]
fn unknown_query_parameters_are_refused_by_name() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    for path in [
        "/api/v1/people?colour=red".to_owned(),
        format!("/api/v1/people/{}?colour=red", f.person),
        "/api/v1/audit?colour=red&limit=5".to_owned(),
        "/api/v1/events?colour=red".to_owned(),
        "/api/v1/readers/health?colour=red".to_owned(),
    ] {
        let (status, content_type, body) = raw(&app, "GET", &path, b"");
        assert_eq!(status, 400, "{path}: {body}");
        assert!(content_type.starts_with("application/json"), "{path}");
        assert!(
            body["error"].as_str().unwrap().contains("colour"),
            "{path}: {body}"
        );
        assert!(body["fields"]["colour"].is_array(), "{path}: {body}");
    }
    let (status, _, body) = raw(
        &app,
        "POST",
        "/api/v1/sites?dry_run=1",
        br#"{"name": "X", "timezone": "UTC"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(total(&app, "sites"), 1, "nothing created");
    for path in [
        "/api/v1/people?q=ada&department=Engineering&limit=5&offset=0&status=active",
        "/api/v1/audit?entity=person&limit=5",
        "/api/v1/events?kind=swipe&limit=5",
    ] {
        let (status, _, body) = raw(&app, "GET", path, b"");
        assert_eq!(status, 200, "{path}: {body}");
    }
    let explain = format!(
        "/api/v1/explain?person_id={}&door_id={}",
        f.person, f.main_door
    );
    assert_eq!(raw(&app, "GET", &explain, b"").0, 200);
    assert_eq!(
        raw(&app, "GET", &format!("{explain}&verbose=1"), b"").0,
        400
    );
}

#[test]
fn a_put_of_the_body_its_get_returns_succeeds_and_changes_nothing() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        let pin_card = app.create(
            "credentials",
            json!({"person_id": ids(&app, "people")[0], "card_uid": "0badcafe", "pin": "4821"}),
        );
        let entries = audit_entries(&app);
        for collection in gatehouse::web::entity_collections() {
            for id in ids(&app, collection) {
                let path = format!("/api/v1/{collection}/{id}");
                let before = app.get(&path).body;
                let r = app.put(&path, before.clone());
                assert_eq!(r.status, 200, "PUT {path} {before}: {}", r.body);
                assert_eq!(r.body, before, "PUT {path} changed it");
                assert_eq!(app.get(&path).body, before, "{path}");
            }
        }
        assert_eq!(
            audit_entries(&app),
            entries,
            "nothing was audited: nothing changed"
        );
        assert_eq!(
            app.get(&format!("/api/v1/credentials/{pin_card}")).body["has_pin"],
            true
        );
        // The id in the body must be the URL's.
        let site = ids(&app, "sites")[0];
        let mut body = app.get(&format!("/api/v1/sites/{site}")).body;
        body["id"] = json!(site + 1000);
        let r = app.put(&format!("/api/v1/sites/{site}"), body);
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body["fields"]["id"].is_array(), "{}", r.body);
    }
}

#[test]
fn lockdown_of_a_site_that_does_not_exist_is_refused() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "admin");
    let page = browser.submit(
        "/lockdown",
        "/lockdown/start",
        &[("site_id", "999999"), ("confirm", "yes")],
    );
    assert_eq!(page.status, 404, "{}", page.body);
    assert_eq!(
        app.get(&format!("/api/v1/sites/{}", f.site)).body["lockdown"],
        false
    );
    let r = app.put(
        "/api/v1/sites/999999",
        json!({"name": "Nowhere", "timezone": "UTC", "lockdown": true}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    // The real site still locks down.
    let page = browser.submit(
        "/lockdown",
        "/lockdown/start",
        &[("site_id", &f.site.to_string()), ("confirm", "yes")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        app.get(&format!("/api/v1/sites/{}", f.site)).body["lockdown"],
        true
    );
}

#[test]
fn the_same_origin_check_trusts_host_not_x_forwarded_host() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "admin");
    let suspend = format!("/people/{}/suspend", f.person);
    let csrf = browser.get("/people").csrf();
    // Another site's page, claiming through X-Forwarded-Host to be this one.
    let page = browser.post(
        &suspend,
        &[("csrf", &csrf)],
        &[
            ("Origin", "http://evil.example"),
            ("X-Forwarded-Host", "evil.example"),
        ],
    );
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(
        app.get(&format!("/api/v1/people/{}", f.person)).body["status"],
        "active"
    );
    // This appliance's own origin, whatever a proxy header says.
    let own = format!("http://{}", app.addr);
    let page = browser.post(
        &suspend,
        &[("csrf", &csrf)],
        &[("Origin", &own), ("X-Forwarded-Host", "elsewhere.example")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        app.get(&format!("/api/v1/people/{}", f.person)).body["status"],
        "suspended"
    );
}

#[test]
fn console_forms_with_undecodable_text_or_nul_are_refused_beside_the_field() {
    let app = TestApp::new(Backend::Sqlite);
    let mut browser = signed_in(&app, "admin");
    for (name, says) in [
        ("Ada%FF%FELovelace", "not valid UTF-8"),
        ("Ada%00Lovelace", "NUL"),
    ] {
        let csrf = browser.get("/people/new").csrf();
        let body = format!("csrf={csrf}&employee_id=E9&name={name}&person_type=employee");
        let page = browser.post_raw(
            "/people",
            body.as_bytes(),
            &[("Sec-Fetch-Site", "same-origin")],
        );
        assert_eq!(page.status, 422, "{}", page.body);
        let beside = page
            .body
            .find("id=\"name-error\"")
            .unwrap_or_else(|| panic!("no message beside the name: {}", page.body));
        assert!(page.body[beside..].contains(says), "{}", page.body);
        assert_eq!(total(&app, "people"), 0);
    }
    let page = browser.get("/people?q=%00");
    assert_eq!(page.status, 400, "{}", page.body);
}

#[test]
fn reader_hosts_are_addresses_in_the_allowed_networks_or_plain_names() {
    let private = std::net::Ipv4Addr::new(10, 0, 0, 5).to_string();
    let public = std::net::Ipv4Addr::new(8, 8, 8, 8).to_string();
    for backend in backends() {
        // Hosts outside loopback are stored here, never contacted: the appliance polls none.
        let app = TestApp::without_modbus_polling(backend);
        let f = build_site(&app);
        for (host, ok) in [
            (format!("{private}\nGatehouse: forged log line"), false),
            (public.clone(), false),
            (format!("{private}:502"), false),
            ("plc 1".to_owned(), false),
            ("127.0.0.1".to_owned(), true),
            ("plc-1.plant.lan".to_owned(), true),
        ] {
            let r = app.post(
                "/api/v1/readers",
                json!({"reader_id": format!("m{}", host.len()), "door_id": f.main_door, "protocol": "modbus", "modbus_host": host}),
            );
            if ok {
                assert_eq!(r.status, 201, "{host:?}: {}", r.body);
            } else {
                assert_eq!(r.status, 422, "{host:?}: {}", r.body);
                assert!(r.body["fields"]["modbus_host"].is_array(), "{}", r.body);
            }
        }
    }
}

/// Modbus hosts the generated operations try: loopback, a private address, a plain name and
/// a public address (built from numbers: no address outside loopback is written out in
/// tests, see `harness`). The test appliances store them but poll no Modbus reader.
fn outside_hosts() -> [String; 4] {
    [
        "127.0.0.1".to_owned(),
        std::net::Ipv4Addr::new(10, 0, 0, 7).to_string(),
        "plc-1".to_owned(),
        std::net::Ipv4Addr::new(8, 8, 8, 8).to_string(),
    ]
}
