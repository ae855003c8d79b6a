//! The admin console over real HTTP, as a browser without JavaScript uses it: sign-in,
//! sessions, CSRF, roles, forms that validate, and the pages that run the building.

use std::collections::HashMap;

use chrono::Utc;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::admins::{self, AdminInput};
use gatehouse::store::event_log::{Event, EventKind};
use serde_json::json;

use crate::app::{Backend, Fixture, TestApp, build_site};

pub(crate) const PASSWORD: &str = "a long enough password";

/// A page as the browser got it.
pub(crate) struct Page {
    pub(crate) status: u16,
    headers: HashMap<String, String>,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn location(&self) -> &str {
        self.headers.get("location").map_or("", String::as_str)
    }

    /// The CSRF token the page's forms carry.
    pub(crate) fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }
}

/// A cookie-keeping HTTP client that does not follow redirects, like a browser's network
/// layer seen from the server.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    agent: ureq::Agent,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Browser<'a> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .new_agent();
        Browser {
            app,
            agent,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, mut response: ureq::http::Response<ureq::Body>) -> Page {
        let mut headers = HashMap::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or_default().to_owned();
            if name.as_str() == "set-cookie" {
                let pair = value.split(';').next().unwrap_or_default();
                let (k, v) = pair.split_once('=').unwrap();
                if v.is_empty() || value.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
            headers.insert(name.as_str().to_owned(), value);
        }
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Page {
        let response = self
            .agent
            .get(&self.app.url(path))
            .header("Cookie", &self.cookie_header())
            .call()
            .unwrap();
        self.keep(response)
    }

    pub(crate) fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.post_raw(path, body.as_bytes(), extra)
    }

    /// Posts a form body as it is (bytes a browser would not send, too).
    pub(crate) fn post_raw(&mut self, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Page {
        let mut request = self
            .agent
            .post(&self.app.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", &self.cookie_header());
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let response = request.send(body).unwrap();
        self.keep(response)
    }

    pub(crate) fn sign_in_as(&mut self, username: &str, password: &str) -> Page {
        self.sign_in_from(username, password, &[])
    }

    /// Fetches the sign-in form, waits at `barrier` (for other browsers to be as far), then
    /// signs in with these extra headers; returns the status.
    pub(crate) fn sign_in_at_once(
        &mut self,
        username: &str,
        password: &str,
        headers: &[(&str, &str)],
        barrier: &std::sync::Barrier,
    ) -> u16 {
        let form = self.get("/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        let mut extra = vec![("Sec-Fetch-Site", "same-origin")];
        extra.extend_from_slice(headers);
        barrier.wait();
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("next", "/"),
                ("username", username),
                ("password", password),
            ],
            &extra,
        )
        .status
    }

    /// Signs in with these extra request headers (an X-Forwarded-For).
    pub(crate) fn sign_in_from(
        &mut self,
        username: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> Page {
        let form = self.get("/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        let mut extra = vec![("Sec-Fetch-Site", "same-origin")];
        extra.extend_from_slice(headers);
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("next", "/"),
                ("username", username),
                ("password", password),
            ],
            &extra,
        )
    }

    /// Posts a console form with the CSRF token of the page at `from`.
    pub(crate) fn submit(&mut self, from: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all, &[("Sec-Fetch-Site", "same-origin")])
    }
}

pub(crate) fn add_admin(app: &TestApp, username: &str, role: &str) {
    admins::create_admin(
        &mut app.db(),
        &AdminInput {
            username: username.to_owned(),
            password: PASSWORD.to_owned(),
            role: role.to_owned(),
        },
        &ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("test-setup"),
            now: Utc::now(),
        },
    )
    .unwrap();
}

pub(crate) fn signed_in<'a>(app: &'a TestApp, role: &str) -> Browser<'a> {
    add_admin(app, role, role);
    let mut browser = Browser::new(app);
    let page = browser.sign_in_as(role, PASSWORD);
    assert_eq!(page.status, 303, "{}", page.body);
    browser
}

fn person_status(app: &TestApp, id: i64) -> String {
    app.get(&format!("/api/v1/people/{id}")).body["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn signing_in_opens_the_dashboard_and_wrong_passwords_lock_the_account() {
    let app = TestApp::new(Backend::Sqlite);
    add_admin(&app, "dana", "admin");
    let mut browser = Browser::new(&app);

    // Pages need a session: the browser is sent to sign in, and comes back after.
    let page = browser.get("/people?q=ada");
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/login?next=%2Fpeople%3Fq%3Dada");

    let page = browser.sign_in_as("dana", "not the password");
    assert_eq!(page.status, 401);
    assert!(
        page.body
            .contains("role=\"alert\">Wrong username or password."),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"dana\""),
        "the username stays typed"
    );

    let page = browser.sign_in_as("dana", PASSWORD);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/");
    let cookie = &page.headers["set-cookie"];
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let dashboard = browser.get("/");
    assert_eq!(dashboard.status, 200);
    assert!(dashboard.body.contains("<h1>Dashboard</h1>"));
    assert!(dashboard.body.contains("dana"));

    // Signing out ends the session on the server, not only in the browser.
    let stolen = browser.cookies.clone();
    let out = browser.submit("/", "/logout", &[]);
    assert_eq!(out.status, 303);
    browser.cookies = stolen;
    assert_eq!(browser.get("/").status, 303, "a signed-out session is dead");

    // Five wrong passwords in a row lock the account, even against the right one. The
    // page says so for any account, without telling whether this one exists or is locked.
    let mut other = Browser::new(&app);
    for _ in 0..5 {
        assert_eq!(other.sign_in_as("dana", "wrong wrong wrong").status, 401);
    }
    let locked = app.get("/api/v1/admin-users").body;
    let dana = locked
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "dana")
        .unwrap();
    assert!(dana["locked_until"].is_string(), "{dana}");
    let still = other.sign_in_as("dana", PASSWORD);
    assert_eq!(still.status, 401);
    assert!(
        still.body.contains(
            "Wrong username or password. After 5 wrong passwords in a row an account is \
             locked for 15 minutes; another admin can unlock it by setting a new password."
        ),
        "{}",
        still.body
    );
    // The lock is in the audit log, once: tries against a locked account add nothing.
    let locks: Vec<String> = app
        .get("/api/v1/audit?limit=1000")
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "lock")
        .map(|e| format!("{} | {}", e["actor"], e["summary"]))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(
        locks[0].contains("sign-in lockout") && locks[0].contains("lock admin 'dana' until"),
        "{locks:?}"
    );

    // Another admin unlocks it by setting a new password.
    admins::set_password(
        &mut app.db(),
        "dana",
        "a brand new long password",
        &ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("root"),
            now: Utc::now(),
        },
    )
    .unwrap();
    assert_eq!(
        other.sign_in_as("dana", "a brand new long password").status,
        303
    );

    // Sign-ins are on the audit log.
    let audit = app.get("/api/v1/audit?entity=session").body;
    assert!(
        audit.to_string().contains("dana signed in to the console"),
        "{audit}"
    );
}

#[test]
fn forms_without_their_csrf_token_or_from_another_site_change_nothing() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "admin");
    let suspend = format!("/people/{}/suspend", f.person);

    let page = browser.post(&suspend, &[], &[("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(page.status, 403);
    assert!(page.body.contains("This form has expired"), "{}", page.body);
    let page = browser.post(&suspend, &[("csrf", "0000")], &[]);
    assert_eq!(page.status, 403);
    // The right token, but the browser says another site sent it.
    let csrf = browser.get("/people").csrf();
    let page = browser.post(
        &suspend,
        &[("csrf", &csrf)],
        &[("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(page.status, 403);
    // The sign-in form has its own token.
    let mut stranger = Browser::new(&app);
    let page = stranger.post(
        "/login",
        &[("username", "admin"), ("password", PASSWORD)],
        &[],
    );
    assert_eq!(page.status, 403);
    assert_eq!(person_status(&app, f.person), "active");

    let page = browser.post(
        &suspend,
        &[("csrf", &csrf)],
        &[("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(person_status(&app, f.person), "suspended");
}

#[test]
fn an_auditor_sees_everything_and_changes_nothing() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut auditor = signed_in(&app, "auditor");
    let people = auditor.get("/people");
    assert_eq!(people.status, 200);
    assert!(!people.body.contains("Add person"), "{}", people.body);
    let person = auditor.get(&format!("/people/{}", f.person));
    assert_eq!(person.status, 200);
    assert!(!person.body.contains(">Suspend<"));
    assert_eq!(auditor.get("/people/new").status, 403);

    let page = auditor.submit("/people", &format!("/people/{}/suspend", f.person), &[]);
    assert_eq!(page.status, 403);
    assert!(
        page.body
            .contains("Your role (auditor) can look but not change this.")
    );
    let page = auditor.submit("/lockdown", "/lockdown/start", &[("confirm", "yes")]);
    assert_eq!(page.status, 403);
    assert_eq!(person_status(&app, f.person), "active");
    assert_eq!(
        app.get("/api/v1/sites").body["items"][0]["lockdown"],
        json!(false)
    );
}

fn level_of_main_door(f: &Fixture) -> i64 {
    f.staff_level
}

#[test]
fn a_person_added_with_a_card_and_access_can_open_the_door_until_suspended() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let level = level_of_main_door(&f).to_string();
    let mut browser = signed_in(&app, "operator");

    // A mistake brings the form back with what was typed and the message beside the field.
    let before = app.get("/api/v1/people").body["total"].as_i64().unwrap();
    let page = browser.submit(
        "/people/new",
        "/people",
        &[
            ("name", "Grace Hopper"),
            ("employee_id", ""),
            ("card", "not hex!"),
            ("level_id", &level),
            ("valid_until", "2031-02-30"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("value=\"Grace Hopper\""));
    assert!(page.body.contains("value=\"not hex!\""));
    assert!(
        page.body
            .contains("id=\"valid_until-error\">enter a date like 2027-03-31"),
        "{}",
        page.body
    );
    assert_eq!(
        app.get("/api/v1/people").body["total"].as_i64().unwrap(),
        before
    );

    let page = browser.submit(
        "/people/new",
        "/people",
        &[
            ("name", "Grace Hopper"),
            ("employee_id", "E9001"),
            ("card", "not hex!"),
            ("level_id", &level),
        ],
    );
    assert_eq!(page.status, 422);
    assert!(page.body.contains("id=\"card-error\""), "{}", page.body);
    assert_eq!(
        app.get("/api/v1/people").body["total"].as_i64().unwrap(),
        before,
        "a bad card undoes the whole person"
    );

    let page = browser.submit(
        "/people/new",
        "/people",
        &[
            ("name", "Grace Hopper"),
            ("employee_id", "E9001"),
            ("card", "04c0ffee"),
            ("level_id", &level),
            ("valid_until", "2031-12-31"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let id: i64 = page
        .location()
        .trim_start_matches("/people/")
        .parse()
        .unwrap();
    let shown = browser.get(page.location());
    assert!(shown.body.contains("<h1>Grace Hopper</h1>"));
    assert!(shown.body.contains("04C0FFEE"));

    let why = |browser: &mut Browser| {
        browser
            .get(&format!(
                "/why?person=E9001&door={}&when=2026-12-02T10:00",
                f.main_door
            ))
            .body
    };
    let answer = why(&mut browser);
    assert!(answer.contains("id=\"verdict\""), "{answer}");
    assert!(answer.contains("Granted: Grace Hopper"), "{answer}");

    let page = browser.submit(
        &format!("/people/{id}"),
        &format!("/people/{id}/suspend"),
        &[],
    );
    assert_eq!(page.status, 303);
    assert_eq!(person_status(&app, id), "suspended");
    assert!(why(&mut browser).contains("Denied: Grace Hopper"));
    let audit = app.get("/api/v1/audit?entity=person").body.to_string();
    assert!(
        audit.contains("operator"),
        "the change is on record with who made it"
    );
}

#[test]
fn lockdown_needs_confirming_and_shows_on_every_page_until_it_ends() {
    let app = TestApp::new(Backend::Sqlite);
    let _f = build_site(&app);
    let mut browser = signed_in(&app, "admin");
    let site = app.get("/api/v1/sites").body["items"][0]["id"]
        .as_i64()
        .unwrap()
        .to_string();

    let page = browser.submit(
        "/lockdown",
        "/lockdown/start",
        &[("site_id", site.as_str())],
    );
    assert_eq!(page.status, 422);
    assert!(page.body.contains("Tick the box to confirm the lockdown."));
    assert!(!browser.get("/people").body.contains("lockdown-banner"));

    let page = browser.submit(
        "/lockdown",
        "/lockdown/start",
        &[("site_id", site.as_str()), ("confirm", "yes")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(
        browser
            .get("/people")
            .body
            .contains("id=\"lockdown-banner\"")
    );
    assert!(
        browser
            .get("/events")
            .body
            .contains("id=\"lockdown-banner\"")
    );

    let page = browser.submit("/lockdown", "/lockdown/end", &[("site_id", site.as_str())]);
    assert_eq!(page.status, 303);
    assert!(!browser.get("/people").body.contains("lockdown-banner"));
}

#[test]
fn pages_carry_security_headers_and_assets_are_served_from_the_appliance() {
    let app = TestApp::new(Backend::Sqlite);
    let mut browser = Browser::new(&app);
    let page = browser.get("/login");
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    assert!(!page.body.contains("<script>"), "no inline script");
    for asset in [
        "/static/htmx.min.js",
        "/static/console.js",
        "/static/console.css",
    ] {
        let got = browser.get(asset);
        assert_eq!(got.status, 200, "{asset}");
        assert!(got.body.len() > 500, "{asset}");
    }
    assert_eq!(browser.get("/static/../Cargo.toml").status, 404);
}

#[test]
fn the_events_page_filters_pages_and_exports_what_it_shows() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let t0 = Utc::now() - chrono::TimeDelta::minutes(10);
    let events: Vec<Event> = (0..70i64)
        .map(|i| Event {
            reader_id: Some("main-in".to_owned()),
            seq: Some(i),
            reader_ts: Some(t0 + chrono::TimeDelta::seconds(i)),
            door_id: Some(f.main_door),
            person_id: Some(f.person),
            result: Some(if i % 7 == 0 { "denied" } else { "granted" }.to_owned()),
            deny_code: (i % 7 == 0).then(|| "schedule".to_owned()),
            ..Event::new(EventKind::Swipe, t0 + chrono::TimeDelta::seconds(i))
        })
        .chain(std::iter::once(Event {
            door_id: Some(f.main_door),
            ..Event::new(EventKind::ForcedOpen, t0)
        }))
        .collect();
    gatehouse::store::event_log::write_batch(&mut app.db(), &events, &mut Default::default())
        .unwrap();
    let mut browser = signed_in(&app, "auditor");

    let page = browser.get("/events?kind=swipe");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.body.matches("<tr class=").count(),
        50,
        "a page is 50 events"
    );
    let older = page.body.split("rel=\"next\" href=\"").nth(1).unwrap();
    let older = older[..older.find('"').unwrap()].replace("&#38;", "&");
    let next = browser.get(&older);
    assert_eq!(
        next.body.matches("<tr class=").count(),
        20,
        "the rest on the next page, {older}"
    );
    assert!(!next.body.contains("rel=\"next\""), "and no page after it");

    let denied = browser.get("/events?result=denied");
    assert_eq!(denied.body.matches("<tr class=\"denied\"").count(), 10);
    assert!(denied.body.contains("outside their schedule"));

    let bad = browser.get("/events?from=yesterday");
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("enter a date like 2026-12-01"));

    let csv = browser.get("/events.csv?kind=swipe");
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"].starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(lines[0].starts_with("id,at,kind,result"));
    assert_eq!(lines.len(), 71, "every swipe and the header");

    // The same swipes drawn: for the site, the person and the door.
    for page in [
        "/activity".to_owned(),
        format!("/people/{}", f.person),
        format!("/doors/{}", f.main_door),
    ] {
        let body = browser.get(&page).body;
        assert!(body.contains("role=\"img\""), "{page}: {body}");
        assert!(
            body.contains("; 70 in all"),
            "{page} counts every swipe: {body}"
        );
    }
}

#[test]
fn cards_and_access_are_managed_from_the_persons_page() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "operator");
    let person = format!("/people/{}", f.person);
    let cards = |app: &TestApp| {
        app.get(&format!("/api/v1/credentials?person_id={}", f.person))
            .body["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let before = cards(&app).len();

    let page = browser.submit(&person, &format!("{person}/cards"), &[("card", "zz")]);
    assert_eq!(page.status, 422);
    assert!(page.body.contains("id=\"card-error\""), "{}", page.body);
    assert!(page.body.contains("value=\"zz\""));
    assert_eq!(cards(&app).len(), before);

    let page = browser.submit(&person, &format!("{person}/cards"), &[("card", "0badcafe")]);
    assert_eq!(page.status, 303, "{}", page.body);
    let issued = cards(&app);
    let card = issued
        .iter()
        .find(|c| c["card_uid"] == "0BADCAFE")
        .expect("the new card");
    // A Wiegand card, typed as card lists show it; a facility code out of range is
    // refused with a message that says which half is wrong.
    let page = browser.submit(&person, &format!("{person}/cards"), &[("card", "70000:12")]);
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains("facility code is a whole number from 0 to 65535"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"70000:12\""));
    let page = browser.submit(
        &person,
        &format!("{person}/cards"),
        &[("card", " 12:34567 ")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let wiegand = cards(&app);
    assert!(
        wiegand
            .iter()
            .any(|c| c["kind"] == "wiegand" && c["facility"] == 12 && c["card_number"] == 34567),
        "{wiegand:?}"
    );
    assert!(browser.get(&person).body.contains("12:34567"));

    let page = browser.submit(
        &person,
        &format!("/cards/{}/status", card["id"]),
        &[("status", "lost")],
    );
    assert_eq!(page.status, 303);
    let lost = cards(&app);
    assert_eq!(
        lost.iter().find(|c| c["id"] == card["id"]).unwrap()["status"],
        "lost"
    );

    let level = app
        .create(
            "access-levels",
            json!({"name": "Server room", "items": [{"door_id": f.server_door, "schedule_id": f.business_hours}]}),
        )
        .to_string();
    let page = browser.submit(
        &person,
        &format!("{person}/access"),
        &[("level_id", &level), ("valid_until", "soon")],
    );
    assert_eq!(page.status, 422);
    assert!(page.body.contains("id=\"valid_until-error\""));
    let page = browser.submit(
        &person,
        &format!("{person}/access"),
        &[
            ("level_id", &level),
            ("valid_until", "2030-06-30"),
            ("justification", "summer project"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let shown = browser.get(&person).body;
    assert!(shown.contains("summer project"));
    assert!(
        shown.contains("2030-06-30</td>") && !shown.contains("2030-07-01"),
        "until the end of that day, shown as that day: {shown}"
    );
    let entitlements = app
        .get(&format!("/api/v1/entitlements?person_id={}", f.person))
        .body;
    let granted = entitlements["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["justification"] == "summer project")
        .unwrap()["id"]
        .clone();
    let page = browser.submit(&person, &format!("/access/{granted}/remove"), &[]);
    assert_eq!(page.status, 303);
    assert!(!browser.get(&person).body.contains("summer project"));

    let page = browser.submit(
        &format!("{person}/edit"),
        &format!("{person}/edit"),
        &[
            ("name", " "),
            ("employee_id", "E1001"),
            ("person_type", "employee"),
        ],
    );
    assert_eq!(page.status, 422);
    assert!(
        page.body.contains("id=\"name-error\">must not be empty"),
        "{}",
        page.body
    );
    let page = browser.submit(
        &format!("{person}/edit"),
        &format!("{person}/edit"),
        &[
            ("name", "Ada King"),
            ("employee_id", "E1001"),
            ("person_type", "contractor"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let api = app.get(&person.replace("/people", "/api/v1/people")).body;
    assert_eq!(api["name"], "Ada King");
    assert_eq!(api["person_type"], "contractor");
}

#[test]
fn doors_show_their_state_take_a_mode_and_register_readers_whose_secret_shows_once() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "admin");
    let list = browser.get("/doors");
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains(&format!("href=\"/doors/{}\"", f.main_door))
    );

    let door = format!("/doors/{}", f.main_door);
    let page = browser.submit(&door, &format!("{door}/mode"), &[("mode", "locked")]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        app.get(&format!("/api/v1/doors/{}", f.main_door)).body["mode"],
        "locked"
    );
    let page = browser.submit(&door, &format!("{door}/mode"), &[("mode", "open sesame")]);
    // The form only offers real modes: anything else is a tampered request.
    assert_eq!(page.status, 400, "a mode that does not exist is refused");
    assert!(page.body.contains("mode:"), "{}", page.body);

    let page = browser.submit(
        &door,
        &format!("{door}/readers"),
        &[
            ("reader_id", "bad id with spaces"),
            ("protocol", "mqtt"),
            ("direction", "in"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains("id=\"reader_id-error\""),
        "{}",
        page.body
    );

    let page = browser.submit(
        &door,
        &format!("{door}/readers"),
        &[
            ("reader_id", "lobby-east"),
            ("protocol", "mqtt"),
            ("direction", "in"),
        ],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = page
        .body
        .split("<code id=\"reader-secret\">")
        .nth(1)
        .unwrap();
    let secret = &secret[..secret.find('<').unwrap()];
    assert!(secret.len() >= 32, "a strong secret: {secret}");
    let again = browser.get(&door);
    assert!(again.body.contains("lobby-east"));
    assert!(
        !again.body.contains(secret),
        "the secret is never shown again"
    );
    let readers = app.get("/api/v1/readers").body.to_string();
    assert!(readers.contains("lobby-east"));
    assert!(!readers.contains(secret));

    // Everything above is on the audit log, with who did it; the chain holds.
    let audit = browser.get("/audit");
    assert_eq!(audit.status, 200);
    assert!(
        audit
            .body
            .contains("mode: &#34;normal&#34; → &#34;locked&#34;"),
        "{}",
        audit.body
    );
    let chain = browser.get("/audit/chain");
    assert!(chain.body.contains("The chain is intact"), "{}", chain.body);
    assert!(
        chain
            .body
            .contains("Every entry is sealed with the appliance key"),
        "{}",
        chain.body
    );
    let readers_only = browser.get("/audit?entity=reader");
    assert!(readers_only.body.contains("lobby-east"));
    assert!(!readers_only.body.contains("→ &#34;locked&#34;"));
}

#[test]
fn admins_are_managed_by_admins_only_and_disabling_ends_their_sessions() {
    let app = TestApp::new(Backend::Sqlite);
    let mut admin = signed_in(&app, "admin");

    let page = admin.submit(
        "/admins",
        "/admins",
        &[
            ("username", "olga"),
            ("role", "operator"),
            ("password", "short"),
        ],
    );
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains("id=\"password-error\">must be at least 12 characters")
    );
    assert!(page.body.contains("value=\"olga\""));
    assert!(
        !page.body.contains("value=\"short\""),
        "a password is never typed back"
    );

    let page = admin.submit(
        "/admins",
        "/admins",
        &[
            ("username", "olga"),
            ("role", "operator"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/admins");
    assert!(
        admin
            .get("/admins")
            .body
            .contains("olga can now sign in as operator.")
    );

    let mut olga = Browser::new(&app);
    assert_eq!(olga.sign_in_as("olga", PASSWORD).status, 303);
    assert_eq!(olga.get("/admins").status, 200, "operators may look");
    let page = olga.submit(
        "/admins",
        "/admins",
        &[
            ("username", "mallory"),
            ("role", "admin"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(page.status, 403, "but not make admins");

    // A token is shown once, works, and stops when revoked.
    let page = admin.submit(
        "/tokens",
        "/tokens",
        &[("token_name", "HR sync"), ("token_admin", "olga")],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page
        .body
        .split("<code id=\"issued-token\">")
        .nth(1)
        .unwrap();
    let token = token[..token.find('<').unwrap()].to_owned();
    assert_eq!(app.get_as(Some(&token), "/api/v1/people").status, 200);
    assert!(!admin.get("/tokens").body.contains(&token));
    let id = app
        .get("/api/v1/tokens")
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "HR sync")
        .unwrap()["id"]
        .clone();
    let page = admin.submit("/tokens", &format!("/tokens/{id}/revoke"), &[]);
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/tokens");
    assert_eq!(app.get_as(Some(&token), "/api/v1/people").status, 401);

    // Disabling olga ends the session she has open.
    let page = admin.submit("/admins", "/admins/olga/disable", &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(olga.get("/").status, 303, "her session is over");
    assert_eq!(olga.sign_in_as("olga", PASSWORD).status, 401);
    let page = admin.submit("/admins", "/admins/admin/disable", &[]);
    assert_eq!(page.status, 303, "nobody disables themselves");
    assert_eq!(
        page.location(),
        "/admins",
        "back to the list, which says why"
    );
    let back = admin.get("/admins").body;
    assert!(
        back.contains("<p class=\"notice refused\" role=\"alert\">You cannot disable yourself"),
        "{back}"
    );
}

#[test]
fn the_access_policy_reads_as_zones_schedules_with_their_week_and_levels_with_holders() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "auditor");

    let zones = browser.get("/zones");
    assert_eq!(zones.status, 200);
    assert!(
        zones
            .body
            .contains(&format!("href=\"/doors/{}\"", f.main_door))
    );

    let schedules = browser.get("/schedules");
    assert_eq!(schedules.status, 200, "{}", schedules.body);
    assert!(schedules.body.contains("<svg class=\"week\""));
    // The fixture's business hours are weekdays 07:00–18:00 (Europe/Berlin): five open
    // bars in the coming seven days, fewer if Christmas Day falls inside them.
    let bars = schedules.body.matches("class=\"open\"").count();
    assert!((4..=5).contains(&bars), "{bars} open bars");
    assert!(
        schedules.body.contains("open 07:00–18:00"),
        "{}",
        schedules.body
    );
    assert!(browser.get("/holidays").body.contains("Christmas Day"));

    let levels = browser.get("/levels");
    assert!(levels.body.contains("Staff"));
    assert!(levels.body.contains("1 person"));
    let level = browser.get(&format!("/levels/{}", f.staff_level));
    assert!(level.body.contains("Ada Lovelace"));
    assert!(level.body.contains("during"), "{}", level.body);
}

#[test]
fn alarms_wait_on_the_dashboard_until_someone_acknowledges_them() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let now = Utc::now();
    let alarms = vec![
        Event {
            door_id: Some(f.main_door),
            ..Event::new(EventKind::ForcedOpen, now - chrono::TimeDelta::minutes(3))
        },
        Event {
            door_id: Some(f.server_door),
            ..Event::new(EventKind::HeldOpen, now - chrono::TimeDelta::minutes(2))
        },
        // A week and more ago: history, not an open alarm.
        Event {
            door_id: Some(f.main_door),
            ..Event::new(EventKind::ForcedOpen, now - chrono::TimeDelta::days(8))
        },
    ];
    let ids: Vec<i64> =
        gatehouse::store::event_log::write_batch(&mut app.db(), &alarms, &mut Default::default())
            .unwrap()
            .into_iter()
            .map(|a| match a {
                gatehouse::store::event_log::Appended::New(id) => id,
                other => panic!("{other:?}"),
            })
            .collect();

    let mut auditor = signed_in(&app, "auditor");
    let panel = auditor.get("/dashboard/alarms").body;
    assert_eq!(
        panel.matches("<li class=\"event alarm\"").count(),
        2,
        "{panel}"
    );
    assert!(panel.contains("Door forced open") && panel.contains("Door held open"));
    assert!(
        !panel.contains("Acknowledge"),
        "auditors cannot acknowledge"
    );
    let page = auditor.submit("/", "/alarms/acknowledge", &[("ids", &ids[0].to_string())]);
    assert_eq!(page.status, 403);

    let mut operator = signed_in(&app, "operator");
    let page = operator.submit("/", "/alarms/acknowledge", &[("ids", &ids[0].to_string())]);
    assert_eq!(page.status, 303, "{}", page.body);
    let panel = operator.get("/dashboard/alarms").body;
    assert_eq!(panel.matches("<li class=\"event alarm\"").count(), 1);
    assert!(!panel.contains("Door forced open"));
    // Acknowledging again, or acknowledging what is not an alarm, changes nothing.
    operator.submit(
        "/",
        "/alarms/acknowledge",
        &[("ids", &format!("{},{}", ids[0], ids[2]))],
    );
    let audit = app.get("/api/v1/audit?entity=alarm").body;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["actor"], "operator");
}

/// Replaces what changes from run to run (64-hex tokens) so that a page can be a snapshot.
pub(crate) fn redacted(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let run = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if run == 64 {
            out.push_str("[token]");
        } else {
            out.push_str(&rest[..run]);
        }
        rest = &rest[run..];
    }
    out.push_str(rest);
    out
}

/// The element that starts with `start` (an opening tag) through its closing `end` tag.
pub(crate) fn fragment<'b>(html: &'b str, start: &str, end: &str) -> &'b str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {html}"));
    let to = from + html[from..].find(end).unwrap() + end.len();
    &html[from..to]
}

#[test]
fn the_sign_in_page_and_a_why_answer_render_as_recorded() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = Browser::new(&app);
    let refused = browser.sign_in_as("nobody", "wrong password");
    insta::assert_snapshot!("sign_in_refused", redacted(&refused.body));

    let mut browser = signed_in(&app, "auditor");
    // A Monday morning and a Saturday, in the site's time (Europe/Berlin).
    let granted = browser.get(&format!(
        "/why?person=E1&door={}&when=2026-11-23T10:00",
        f.main_door
    ));
    insta::assert_snapshot!(
        "why_granted",
        fragment(&granted.body, "<section id=\"verdict\"", "</section>")
    );
    let denied = browser.get(&format!(
        "/why?person=Ada&door={}&when=2026-11-28T10:00",
        f.main_door
    ));
    insta::assert_snapshot!(
        "why_denied_on_a_saturday",
        fragment(&denied.body, "<section id=\"verdict\"", "</section>")
    );
}

#[test]
fn an_address_that_keeps_failing_to_sign_in_is_made_to_wait() {
    let app = TestApp::new(Backend::Sqlite);
    add_admin(&app, "dana", "admin");
    let mut browser = Browser::new(&app);
    for i in 0..10 {
        let page = browser.sign_in_as(&format!("guess{i}"), "password123456");
        assert_eq!(page.status, 401);
    }
    // Even the right password of a real account waits now: the guesser is throttled, not
    // the accounts it guessed at.
    let page = browser.sign_in_as("dana", PASSWORD);
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(
        page.body
            .contains("Too many failed sign-ins from this computer. Try again in 10 minutes."),
        "{}",
        page.body
    );
}

#[test]
fn a_found_card_leads_to_its_holder_and_settings_show_the_configuration() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "auditor");
    let found = browser.get(&format!("/cards?uid={}", f.card.to_lowercase()));
    assert_eq!(found.status, 200);
    assert!(found.body.contains("1 card."), "{}", found.body);
    assert!(found.body.contains(&format!(
        "<a href=\"/people/{}\">Ada Lovelace</a>",
        f.person
    )));
    let lost = browser.get("/cards?status=lost");
    assert!(lost.body.contains("0 cards."));

    let settings = browser.get("/settings");
    assert_eq!(settings.status, 200);
    assert!(
        settings
            .body
            .contains("end after 30 minutes idle, 12 hours at most")
    );
    assert!(settings.body.contains("sqlite://"));
    assert!(
        settings
            .body
            .contains("<span class=\"badge active\">current</span>")
    );
}

#[test]
fn holidays_are_added_and_removed_beside_the_schedules_they_close() {
    let app = TestApp::new(Backend::Sqlite);
    let _f = build_site(&app);
    let mut operator = signed_in(&app, "operator");
    let page = operator.submit(
        "/holidays",
        "/holidays",
        &[
            ("name", "Boxing Day"),
            ("date", "26/12/2026"),
            ("site_id", ""),
        ],
    );
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains("id=\"date-error\">enter a date like 2026-12-26")
    );
    assert!(page.body.contains("value=\"Boxing Day\""));

    // Tomorrow, so that the week view marks it.
    let tomorrow = (Utc::now() + chrono::TimeDelta::days(1))
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive()
        .to_string();
    let page = operator.submit(
        "/holidays",
        "/holidays",
        &[
            ("name", "Staff party"),
            ("date", &tomorrow),
            ("site_id", ""),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(operator.get("/holidays").body.contains("Staff party"));
    let schedules = operator.get("/schedules").body;
    assert!(schedules.contains(" ★"), "the week view marks the holiday");
    let holidays = app.get("/api/v1/holidays").body;
    let id = holidays["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "Staff party")
        .unwrap()["id"]
        .clone();
    let page = operator.submit("/holidays", &format!("/holidays/{id}/delete"), &[]);
    assert_eq!(page.status, 303);
    let landed = operator.get("/holidays").body;
    assert!(landed.contains("role=\"status\">Staff party ("), "{landed}");
    assert!(!operator.get("/holidays").body.contains("Staff party"));
    let audit = app.get("/api/v1/audit?entity=holiday").body.to_string();
    assert!(
        audit.contains("Staff party") && audit.contains("operator"),
        "{audit}"
    );
}

#[test]
fn an_access_level_is_made_and_its_doors_added_and_removed_in_the_console() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let page = admin.submit(
        "/levels",
        "/levels",
        &[("name", "Night shift"), ("description", "for the cleaners")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let level = page.location().to_owned();
    let id: i64 = level.trim_start_matches("/levels/").parse().unwrap();

    let page = admin.submit(
        &level,
        &format!("{level}/items"),
        &[("target", ""), ("schedule_id", "")],
    );
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains("id=\"target-error\">choose a door or a zone")
    );

    let server_door = format!("door:{}", f.server_door);
    let schedule = f.business_hours.to_string();
    let page = admin.submit(
        &level,
        &format!("{level}/items"),
        &[("target", &server_door), ("schedule_id", &schedule)],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let api = app.get(&format!("/api/v1/access-levels/{id}")).body;
    assert_eq!(api["items"][0]["door_id"], f.server_door, "{api}");
    assert!(
        admin
            .get(&level)
            .body
            .contains("Server Room Door (door) during Business hours")
    );

    let page = admin.submit(
        &level,
        &format!("{level}/items/remove"),
        &[("target", &server_door), ("schedule_id", &schedule)],
    );
    assert_eq!(page.status, 303);
    let api = app.get(&format!("/api/v1/access-levels/{id}")).body;
    assert_eq!(api["items"], json!([]));
    let page = admin.submit(
        &level,
        &format!("{level}/items/remove"),
        &[("target", &server_door), ("schedule_id", &schedule)],
    );
    assert_eq!(page.status, 422, "what is gone cannot be removed again");
}

#[test]
fn pins_are_set_in_the_console_and_never_shown_back() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut operator = signed_in(&app, "operator");
    let person = format!("/people/{}", f.person);
    let page = operator.submit(
        &person,
        &format!("{person}/cards"),
        &[("card", "0a0b0c0d"), ("pin", "12")],
    );
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains("id=\"pin-error\">must be 4 to 12 digits"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"0a0b0c0d\""),
        "the card stays typed"
    );
    assert!(!page.body.contains("value=\"12\""), "the PIN does not");

    let page = operator.submit(
        &person,
        &format!("{person}/cards"),
        &[("card", "0a0b0c0d"), ("pin", "738291")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let cards = app
        .get(&format!("/api/v1/credentials?person_id={}", f.person))
        .body;
    let issued = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["card_uid"] == "0A0B0C0D")
        .unwrap()
        .clone();
    assert_eq!(issued["has_pin"], true);

    // The fixture's first card gets a PIN afterwards; a wrong shape is said beside it.
    let first = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["card_uid"] != "0A0B0C0D")
        .unwrap()["id"]
        .clone();
    let page = operator.submit(&person, &format!("/cards/{first}/pin"), &[("pin", "12ab")]);
    assert_eq!(page.status, 422);
    assert!(
        page.body
            .contains(&format!("id=\"pin-{first}-error\">must be 4 to 12 digits")),
        "{}",
        page.body
    );
    let page = operator.submit(&person, &format!("/cards/{first}/pin"), &[("pin", "0482")]);
    assert_eq!(page.status, 303);
    let card = app.get(&format!("/api/v1/credentials/{first}")).body;
    assert_eq!(card["has_pin"], true);
    assert_eq!(
        card["status"], "active",
        "setting a PIN keeps the card's status"
    );

    for text in [
        operator.get(&person).body,
        app.get("/api/v1/audit?entity=credential").body.to_string(),
    ] {
        assert!(
            !holds_digits(&text, "738291") && !holds_digits(&text, "0482"),
            "no PIN on a page or a record"
        );
    }
}

/// Whether `digits` stand on their own in `text`, not inside a longer run of hex digits
/// (the audit record's hashes may contain any four digits by chance).
fn holds_digits(text: &str, digits: &str) -> bool {
    text.match_indices(digits).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + digits.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_hexdigit())
            && !after.is_some_and(|c| c.is_ascii_hexdigit())
    })
}

/// The names in a people list page, in order.
fn listed_names(body: &str) -> Vec<String> {
    body.split("<tr><td><a href=\"/people/")
        .skip(1)
        .filter_map(|row| {
            let name = row.split_once("\">")?.1;
            Some(name.split_once("</a>")?.0.to_owned())
        })
        .collect()
}

/// The people list searches names and employee ids in any case, filters by status and
/// pages 50 at a time, from the live policy in memory; a change shows on the next load;
/// while the live policy cannot be rebuilt, the list reads the database instead and still
/// shows what changed.
#[test]
fn the_people_list_searches_filters_and_pages_and_shows_changes_at_once() {
    for backend in crate::app::backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        for i in 0..60 {
            app.create(
                "people",
                json!({
                    "employee_id": format!("P-{i:03}"),
                    "name": format!("Person {i:03}"),
                    "status": if i % 10 == 3 { "suspended" } else { "active" },
                }),
            );
        }
        app.create(
            "people",
            json!({"employee_id": "Z-1", "name": "Zoë Öztürk"}),
        );
        let mut browser = signed_in(&app, "auditor");

        let first = browser.get("/people?q=PERSON");
        assert!(first.body.contains("60 people matching"), "{}", first.body);
        let names = listed_names(&first.body);
        assert_eq!(names.len(), 50);
        assert_eq!(names[0], "Person 000");
        assert_eq!(names[49], "Person 049");
        let second = browser.get("/people?q=PERSON&page=2");
        let names = listed_names(&second.body);
        assert_eq!(names.first().map(String::as_str), Some("Person 050"));
        assert_eq!(names.len(), 10);

        let by_id = browser.get("/people?q=p-01");
        assert_eq!(
            listed_names(&by_id.body),
            (10..20)
                .map(|i| format!("Person {i:03}"))
                .collect::<Vec<_>>()
        );
        let suspended = browser.get("/people?q=person&status=suspended");
        assert_eq!(
            listed_names(&suspended.body),
            [
                "Person 003",
                "Person 013",
                "Person 023",
                "Person 033",
                "Person 043",
                "Person 053"
            ]
        );
        let folded = browser.get("/people?q=%C3%96ZT%C3%9C");
        assert_eq!(listed_names(&folded.body), ["Zoë Öztürk"]);
        let nobody = browser.get("/people?q=person&status=retired");
        assert!(nobody.body.contains("0 people matching"), "{}", nobody.body);

        // A person added a moment ago is found on the next load.
        app.create(
            "people",
            json!({"employee_id": "N-1", "name": "Newt Person"}),
        );
        let found = browser.get("/people?q=newt");
        assert_eq!(listed_names(&found.body), ["Newt Person"]);

        // The live policy cannot be rebuilt (a site's timezone was broken behind the
        // appliance's back): the list reads the database, and a person written since is
        // still listed.
        {
            use diesel::prelude::*;
            use gatehouse::entities::Entity;
            use gatehouse::store::schema::sites;
            let mut conn = app.db();
            diesel::update(sites::table)
                .set(sites::timezone.eq("Mars/Olympus_Mons"))
                .execute(&mut *conn)
                .unwrap();
            gatehouse::entities::people::People::write(
                &mut conn,
                None,
                serde_json::from_value(json!({"employee_id": "L-1", "name": "Late Person"}))
                    .unwrap(),
                &ChangeContext {
                    provenance: &gatehouse::identity::provenance::Provenance::cli("test-setup"),
                    now: Utc::now(),
                },
            )
            .unwrap();
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let rebuilt = runtime.block_on(app.state.live.refresh(&app.state.db, Utc::now()));
        assert!(
            rebuilt.is_err(),
            "the broken timezone must fail the rebuild"
        );
        assert!(app.state.live.stale_because().is_some());
        let late = browser.get("/people?q=late");
        assert_eq!(listed_names(&late.body), ["Late Person"]);
    }
}

/// A live feed held open as a browser's EventSource holds it, read on a thread of its own.
pub(crate) struct OpenFeed {
    chunks: std::sync::mpsc::Receiver<String>,
    pub(crate) sent: String,
}

impl OpenFeed {
    pub(crate) fn open(browser: &Browser) -> OpenFeed {
        use std::io::Read;
        let response = browser
            .agent
            .get(&browser.app.url("/live/feed"))
            .header("Cookie", &browser.cookie_header())
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let (tx, chunks) = std::sync::mpsc::channel();
        let mut body = response.into_body().into_reader();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends (dropping the sender) when the appliance ends the stream.
            while let Ok(n @ 1..) = body.read(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        OpenFeed {
            chunks,
            sent: String::new(),
        }
    }

    /// Whether the feed sent the event `id` within `wait`.
    pub(crate) fn sends(&mut self, id: i64, wait: std::time::Duration) -> bool {
        let frame = format!("id: {id}\nevent: feed\n");
        let deadline = std::time::Instant::now() + wait;
        while !self.sent.contains(&frame) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.sent.push_str(&chunk),
                Err(_) => return false,
            }
        }
        true
    }

    /// Whether the appliance ended the feed within `wait`.
    fn ends_within(&mut self, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.sent.push_str(&chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

/// The dashboard's live feed ends once its session does (signed out in another tab, the
/// admin disabled) and keeps going for everyone else.
#[test]
fn the_live_feed_ends_when_its_session_does() {
    // Feeds check their session at least every tick: a fifth of a second here instead of
    // 15 s, so the test is quick; the waits below are generous all the same.
    gatehouse::console::dashboard::set_feed_tick_for_tests(std::time::Duration::from_millis(200));
    let wait = std::time::Duration::from_secs(10);
    let app = TestApp::new(Backend::Sqlite);
    build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let auditor = signed_in(&app, "auditor");
    add_admin(&app, "olga", "operator");
    let mut olga = Browser::new(&app);
    assert_eq!(olga.sign_in_as("olga", PASSWORD).status, 303);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = || {
        let appended = runtime
            .block_on(
                app.state
                    .events
                    .append(Event::new(EventKind::Rex, Utc::now())),
            )
            .unwrap();
        match appended {
            gatehouse::store::event_log::Appended::New(id) => id,
            other => panic!("{other:?}"),
        }
    };

    let mut admin_feed = OpenFeed::open(&admin);
    let mut olga_feed = OpenFeed::open(&olga);
    let mut auditor_feed = OpenFeed::open(&auditor);
    let first = record();
    for feed in [&mut admin_feed, &mut olga_feed, &mut auditor_feed] {
        assert!(
            feed.sends(first, wait),
            "a live session's feed: {}",
            feed.sent
        );
    }

    let page = admin.submit("/admins", "/admins/olga/disable", &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(olga_feed.ends_within(wait), "disabled: {}", olga_feed.sent);
    // Signed out in another tab of the same browser.
    let page = admin.submit("/", "/logout", &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(
        admin_feed.ends_within(wait),
        "signed out: {}",
        admin_feed.sent
    );
    drop(olga);

    // The auditor's session lives on, and so does their feed.
    let second = record();
    assert!(auditor_feed.sends(second, wait), "{}", auditor_feed.sent);
    assert!(!auditor_feed.ends_within(std::time::Duration::from_secs(1)));
}

/// With no admin, the installer makes the first one in the browser with the one-time
/// code that `serve` wrote to the data folder; a wrong code, differing passwords or a
/// short password change nothing; once an admin exists the page is gone.
#[test]
fn the_first_admin_is_made_in_the_browser_with_the_setup_code() {
    use diesel::prelude::*;
    use gatehouse::store::schema::{admin_users, api_tokens, audit_log};
    let app = TestApp::new(Backend::Sqlite);
    // TestApp makes an admin `root` after the appliance started with none: take it away
    // again, as on a fresh install.
    {
        let mut conn = app.db();
        diesel::delete(api_tokens::table)
            .execute(&mut *conn)
            .unwrap();
        diesel::delete(admin_users::table)
            .execute(&mut *conn)
            .unwrap();
    }
    let code_file = app.state.config.data_dir.join("first-admin-code");
    let code = std::fs::read_to_string(&code_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(code.len(), 64, "a 256-bit code");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&code_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "only the appliance's user may read the code"
        );
    }
    let admins = |app: &TestApp| -> i64 {
        admin_users::table
            .count()
            .get_result(&mut *app.db())
            .unwrap()
    };

    let mut browser = Browser::new(&app);
    let login = browser.get("/login");
    assert!(login.body.contains("href=\"/setup\""), "{}", login.body);
    let form = browser.get("/setup");
    assert_eq!(form.status, 200);
    assert!(form.body.contains(&code_file.display().to_string()));
    assert!(!form.body.contains(&code), "the page never shows the code");

    let attempt = |browser: &mut Browser, code: &str, password: &str, again: &str| {
        browser.submit(
            "/setup",
            "/setup",
            &[
                ("code", code),
                ("username", "facilities"),
                ("password", password),
                ("password_again", again),
            ],
        )
    };
    let long = "correct horse battery staple";
    let wrong = attempt(&mut browser, "not-the-code", long, long);
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.body.contains("That is not the setup code"),
        "{}",
        wrong.body
    );
    assert!(
        wrong.body.contains("value=\"facilities\""),
        "the username stays typed"
    );
    let differ = attempt(&mut browser, &code, long, "correct horse battery stapler");
    assert_eq!(differ.status, 422);
    assert!(differ.body.contains("The two passwords differ"));
    let short = attempt(&mut browser, &code, "short", "short");
    assert_eq!(short.status, 422);
    assert!(short.body.contains("password"), "{}", short.body);
    assert_eq!(admins(&app), 0, "nothing was made");

    let made = attempt(&mut browser, &format!(" {code} "), long, long);
    assert_eq!(made.status, 303, "{}", made.body);
    assert_eq!(made.location(), "/");
    let dashboard = browser.get("/");
    assert_eq!(dashboard.status, 200, "signed in as the new admin");
    assert!(dashboard.body.contains("facilities"));
    let listed = browser.get("/admins");
    assert!(listed.status == 200, "with the admin role");
    assert!(
        !listed.body.contains("<td>never</td>"),
        "the setup's sign-in is their last sign-in: {}",
        listed.body
    );
    assert_eq!(admins(&app), 1);
    assert!(!code_file.exists(), "the code works once");
    let actors: Vec<String> = audit_log::table
        .select(audit_log::actor)
        .load(&mut *app.db())
        .unwrap();
    assert!(
        actors.iter().any(|a| a == "first-admin setup"),
        "{actors:?}"
    );
    // The setup signed the new admin in: audited like any console sign-in.
    let sign_ins: Vec<(String, String)> = audit_log::table
        .filter(audit_log::action.eq("sign_in"))
        .select((audit_log::actor, audit_log::summary))
        .load(&mut *app.db())
        .unwrap();
    assert_eq!(sign_ins.len(), 1, "{sign_ins:?}");
    assert_eq!(sign_ins[0].0, "facilities");
    assert!(sign_ins[0].1.contains("through /setup"), "{sign_ins:?}");

    // Done: the page sends people to sign in, and the old code makes no second admin.
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.get("/setup").status, 303);
    assert!(!stranger.get("/login").body.contains("href=\"/setup\""));
    let again = stranger.post(
        "/setup",
        &[
            ("csrf", "any"),
            ("code", &code),
            ("username", "intruder"),
            ("password", long),
            ("password_again", long),
        ],
        &[("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(again.status, 303);
    assert_eq!(again.location(), "/login");
    assert_eq!(admins(&app), 1);
}

/// The fields a browser would send from the form whose action is `action`, as the page
/// drew it: inputs with their values (checkboxes only when ticked) and each select's
/// selected option. Enough HTML reading for the console's own forms.
pub(crate) fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    fn attribute(tag: &str, name: &str) -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        let value = &tag[at..at + tag[at..].find('"')?];
        Some(
            value
                .replace("&quot;", "\"")
                .replace("&#34;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    }
    let start = html
        .find(&format!("action=\"{action}\""))
        .unwrap_or_else(|| panic!("no form to {action} in {html}"));
    let form = &html[start..start + html[start..].find("</form>").unwrap()];
    let mut fields = Vec::new();
    for piece in form.split("<input").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        let Some(name) = attribute(tag, "name") else {
            continue;
        };
        let kind = attribute(tag, "type").unwrap_or_default();
        if kind == "checkbox" && !tag.contains(" checked") {
            continue;
        }
        fields.push((name, attribute(tag, "value").unwrap_or_default()));
    }
    for piece in form.split("<select").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        let options = &piece[..piece.find("</select>").unwrap()];
        let chosen = options
            .split("<option")
            .skip(1)
            .find(|o| o[..o.find('>').unwrap()].contains(" selected"))
            .or_else(|| options.split("<option").nth(1))
            .unwrap();
        let value = attribute(&chosen[..chosen.find('>').unwrap()], "value").unwrap();
        fields.push((attribute(tag, "name").unwrap(), value));
    }
    fields
}

/// Whether the page answers "may Ada open the main door then" with a grant.
fn why_grants(browser: &mut Browser<'_>, f: &Fixture, when: &str) -> bool {
    let page = browser.get(&format!("/why?person=E1&door={}&when={when}", f.main_door));
    assert_eq!(page.status, 200, "{}", page.body);
    let verdict = fragment(&page.body, "<section id=\"verdict\"", "</section>");
    assert!(
        verdict.contains("class=\"verdict granted\"")
            || verdict.contains("class=\"verdict denied\""),
        "{verdict}"
    );
    verdict.contains("class=\"verdict granted\"")
}

#[test]
fn zones_are_added_moved_and_deleted_in_the_console_unless_something_is_in_them() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let (site, building, server_room) = (
        f.site.to_string(),
        f.building.to_string(),
        f.server_room.to_string(),
    );

    // Under the server room: the tree shows it two levels down, below its parent.
    let page = admin.submit(
        "/zones",
        "/zones",
        &[
            ("name", "Cage 1"),
            ("site_id", &site),
            ("parent_id", &server_room),
            ("antipassback", "hard"),
            ("presence_reset", "06:30"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let cage: i64 = page
        .location()
        .strip_prefix("/zones/")
        .unwrap()
        .parse()
        .unwrap();
    let tree = admin.get("/zones").body;
    let row = format!("<td class=\"depth-2\"><a href=\"/zones/{cage}\">Cage 1</a></td>");
    assert!(tree.contains(&row), "{tree}");
    assert!(
        tree.find(">Server Room<").unwrap() < tree.find(&row).unwrap(),
        "a zone is listed under its parent"
    );
    let zone = admin.get(&format!("/zones/{cage}")).body;
    assert!(
        zone.contains("HQ › Building › Server Room › Cage 1"),
        "{zone}"
    );
    assert!(zone.contains("<dt>Anti-passback</dt><dd>Hard: refused</dd>"));
    assert!(zone.contains("<dt>Daily reset</dt><dd>at 06:30,"), "{zone}");
    assert!(zone.contains("id=\"presence_reset\" name=\"presence_reset\" value=\"06:30\""));

    // Refused, with each message beside its field and what was typed kept.
    let page = admin.submit(
        "/zones",
        "/zones",
        &[
            ("name", "Cage 1"),
            ("site_id", &site),
            ("parent_id", &building),
            ("antipassback", "soft"),
            ("presence_reset", "6.30"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body
            .contains("id=\"presence_reset-error\">&#39;6.30&#39; is not a time of day"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("id=\"name-error\">this site already has a zone named &#39;Cage 1&#39;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"Cage 1\""));
    assert!(
        page.body
            .contains(&format!("<option value=\"{building}\" selected>"))
    );
    assert!(page.body.contains("<option value=\"soft\" selected>"));

    // Renamed and moved under the building; then the building cannot go inside it.
    let page = admin.submit(
        &format!("/zones/{cage}"),
        &format!("/zones/{cage}/edit"),
        &[
            ("name", "Cage A"),
            ("site_id", &site),
            ("parent_id", &building),
            ("antipassback", "soft"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), format!("/zones/{cage}"));
    let api = app.get(&format!("/api/v1/zones/{cage}")).body;
    assert_eq!(
        (&api["name"], &api["parent_id"], &api["antipassback"]),
        (&json!("Cage A"), &json!(f.building), &json!("soft")),
        "{api}"
    );
    let page = admin.submit(
        &format!("/zones/{}", f.building),
        &format!("/zones/{}/edit", f.building),
        &[
            ("name", "Building"),
            ("site_id", &site),
            ("parent_id", &cage.to_string()),
            ("antipassback", "off"),
        ],
    );
    assert_eq!(page.status, 422);
    assert!(
        page.body.contains(
            "id=\"parent_id-error\">a zone cannot be placed inside itself or one of its own zones"
        ),
        "{}",
        page.body
    );

    // The building has a door and zones in it: it stays, and the page says what keeps it.
    let page = admin.submit(
        &format!("/zones/{}", f.building),
        &format!("/zones/{}/delete", f.building),
        &[],
    );
    assert_eq!(page.status, 409, "{}", page.body);
    let refused = fragment(
        &page.body,
        "<p class=\"alert\" role=\"alert\" id=\"refused\">",
        "</p>",
    );
    assert!(
        refused.contains("Doors still in it: Main Entrance;")
            && refused.contains("Zones inside it: Cage A and Server Room;"),
        "{refused}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/zones/{}", f.building)).status,
        200
    );

    // An empty zone goes.
    let page = admin.submit(
        &format!("/zones/{cage}"),
        &format!("/zones/{cage}/delete"),
        &[],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/zones");
    assert_eq!(app.get(&format!("/api/v1/zones/{cage}")).status, 404);
    let landed = admin.get("/zones").body;
    assert!(
        landed.contains("role=\"status\">Zone Cage A deleted"),
        "{landed}"
    );
    assert!(!admin.get("/zones").body.contains("Cage A"));

    let audit = app.get("/api/v1/audit?entity=zone").body;
    let summaries: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "admin")
        .map(|e| (e["summary"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    for expected in [
        "create zone 'Cage 1'",
        "update zone 'Cage A'",
        "delete zone 'Cage A'",
    ] {
        assert!(
            summaries.iter().any(|(s, _)| *s == expected),
            "{expected}: {audit}"
        );
    }
    assert_eq!(
        summaries.len(),
        3,
        "refused changes leave no entry: {audit}"
    );
}

#[test]
fn a_schedule_made_of_days_and_times_governs_the_doors_that_use_it() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut operator = signed_in(&app, "operator");
    // 2026-11-23 is a Monday, 2026-11-22 a Sunday (Europe/Berlin, the site's clock).
    let (monday_8, monday_10, sunday_8) =
        ("2026-11-23T08:00", "2026-11-23T10:00", "2026-11-22T08:00");
    let weekdays = |start: &'static str, end: &'static str| {
        vec![
            ("name", "Office hours"),
            ("description", ""),
            ("holidays", "closed"),
            ("windows[0].kind", "simple"),
            ("windows[0].mon", "1"),
            ("windows[0].tue", "1"),
            ("windows[0].wed", "1"),
            ("windows[0].thu", "1"),
            ("windows[0].fri", "1"),
            ("windows[0].start", start),
            ("windows[0].end", end),
            ("windows[1].kind", "cron"),
            ("windows[1].cron", ""),
            ("windows[1].duration_min", ""),
        ]
    };

    let form = operator.get("/schedules/new");
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("name=\"windows[0].mon\""),
        "{}",
        form.body
    );
    let page = operator.submit("/schedules/new", "/schedules", &weekdays("07:00", "18:00"));
    assert_eq!(page.status, 303, "{}", page.body);
    let at = page.location().to_owned();
    let id: i64 = at.strip_prefix("/schedules/").unwrap().parse().unwrap();
    let api = app.get(&format!("/api/v1/schedules/{id}")).body;
    assert_eq!(
        api["windows"],
        json!([{"cron": "0 7 * * Mon-Fri", "duration_min": 660}]),
        "{api}"
    );
    // Where it was saved: its week, its window in words and as stored.
    let saved = operator.get(&at).body;
    assert!(saved.contains("<svg class=\"week\""), "{saved}");
    assert!(saved.contains("open 07:00–18:00"));
    assert!(saved.contains("Mon–Fri 07:00–18:00"));
    assert!(saved.contains("<code>0 7 * * Mon-Fri</code>"));

    // The main door now opens for Ada during this schedule only.
    let r = app.put(
        &format!("/api/v1/access-levels/{}", f.staff_level),
        json!({"name": "Staff", "items": [{"door_id": f.main_door, "schedule_id": id}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(why_grants(&mut operator, &f, monday_8));
    assert!(!why_grants(&mut operator, &f, sunday_8));
    assert!(
        operator
            .get(&at)
            .body
            .contains("Access level Staff: Main Entrance (door) during Office hours")
    );

    // Later mornings, and a night shift on Fridays that ends on Saturday.
    let mut edit = weekdays("09:00", "17:00");
    edit.extend([
        ("windows[2].kind", "simple"),
        ("windows[2].fri", "1"),
        ("windows[2].start", "22:00"),
        ("windows[2].end", "06:00"),
        ("windows[2].next_day", "1"),
    ]);
    let page = operator.submit(&at, &format!("{at}/edit"), &edit);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), at);
    let api = app.get(&format!("/api/v1/schedules/{id}")).body;
    assert_eq!(
        api["windows"],
        json!([
            {"cron": "0 9 * * Mon-Fri", "duration_min": 480},
            {"cron": "0 22 * * Fri", "duration_min": 480},
        ]),
        "{api}"
    );
    assert!(!why_grants(&mut operator, &f, monday_8));
    assert!(why_grants(&mut operator, &f, monday_10));
    assert!(
        why_grants(&mut operator, &f, "2026-11-28T05:30"),
        "Saturday 05:30, the night shift"
    );

    // What cannot be saved comes back with the message beside the field and the typed
    // values, and changes nothing.
    let backwards = operator.submit(&at, &format!("{at}/edit"), &weekdays("18:00", "07:00"));
    assert_eq!(backwards.status, 422, "{}", backwards.body);
    assert!(
        backwards
            .body
            .contains("id=\"w0-end-error\">it closes at 07:00 before it opens at 18:00"),
        "{}",
        backwards.body
    );
    assert!(
        backwards
            .body
            .contains("name=\"windows[0].start\" value=\"18:00\"")
    );
    assert!(
        backwards
            .body
            .contains("name=\"windows[0].end\" value=\"07:00\"")
    );
    assert!(
        backwards
            .body
            .contains("name=\"windows[0].mon\" value=\"1\" checked")
    );
    assert!(backwards.body.contains("value=\"Office hours\""));

    // The first window alone would save: the second, with no day ticked, undoes it.
    let no_days = operator.submit(
        &at,
        &format!("{at}/edit"),
        &[
            ("name", "Office hours"),
            ("holidays", "closed"),
            ("windows[0].kind", "simple"),
            ("windows[0].mon", "1"),
            ("windows[0].start", "07:00"),
            ("windows[0].end", "08:00"),
            ("windows[1].kind", "simple"),
            ("windows[1].start", "12:00"),
            ("windows[1].end", "13:00"),
        ],
    );
    assert_eq!(no_days.status, 422);
    assert!(
        no_days
            .body
            .contains("id=\"w1-days-error\">tick at least one day"),
        "{}",
        no_days.body
    );
    assert!(
        no_days
            .body
            .contains("name=\"windows[1].start\" value=\"12:00\"")
    );
    for fine in ["w0-days-error", "w0-start-error", "w0-end-error"] {
        assert!(!no_days.body.contains(fine), "the first row was fine");
    }

    let mut bad_cron = weekdays("07:00", "18:00");
    bad_cron.retain(|(k, _)| !k.starts_with("windows[1]"));
    bad_cron.extend([
        ("windows[1].kind", "cron"),
        ("windows[1].cron", "0 25 * * *"),
        ("windows[1].duration_min", "60"),
    ]);
    let page = operator.submit(&at, &format!("{at}/edit"), &bad_cron);
    assert_eq!(page.status, 422);
    assert!(
        page.body.contains(
            "id=\"w1-cron-error\">the time window &#39;0 25 * * *&#39; is not a valid cron expression"
        ),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("name=\"windows[1].cron\" value=\"0 25 * * *\"")
    );
    assert!(
        page.body
            .contains("name=\"windows[1].duration_min\" value=\"60\"")
    );
    assert_eq!(
        app.get(&format!("/api/v1/schedules/{id}")).body["windows"][0]["cron"],
        "0 9 * * Mon-Fri",
        "nothing refused was saved"
    );

    let audit = app.get("/api/v1/audit?entity=schedule").body;
    let mine: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "operator")
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        mine,
        [
            "update schedule 'Office hours'",
            "create schedule 'Office hours'"
        ],
        "{audit}"
    );
}

#[test]
fn a_window_days_and_times_cannot_say_stays_as_it_was_stored() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let windows = json!([
        {"cron": "0 22 * * 5", "duration_min": 600},
        {"cron": "0 0 1 * *", "duration_min": 1440},
        {"cron": "0 7 * * 1-5", "duration_min": 660},
    ]);
    let id = app.create(
        "schedules",
        json!({"name": "Odd hours", "holidays": "ignore", "windows": windows}),
    );
    let mut admin = signed_in(&app, "admin");
    let at = format!("/schedules/{id}");
    let page = admin.get(&at).body;
    // The night shift reads as days and times; the first of the month only as cron.
    assert!(
        page.contains("name=\"windows[0].fri\" value=\"1\" checked"),
        "{page}"
    );
    assert!(page.contains("name=\"windows[0].start\" value=\"22:00\""));
    assert!(page.contains("name=\"windows[0].end\" value=\"08:00\""));
    assert!(page.contains("name=\"windows[0].next_day\" value=\"1\" checked"));
    assert!(
        page.contains("name=\"windows[1].cron\" value=\"0 0 1 * *\""),
        "{page}"
    );
    assert!(page.contains("name=\"windows[1].duration_min\" value=\"1440\""));
    assert!(page.contains("Fri 22:00–08:00 next day"));

    // Saved as the page shows it, every window is stored exactly as before.
    let fields = form_fields(&page, &format!("{at}/edit"));
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let saved = admin.submit(&at, &format!("{at}/edit"), &fields);
    assert_eq!(saved.status, 303, "{}", saved.body);
    let api = app.get(&format!("/api/v1/schedules/{id}")).body;
    assert_eq!(api["windows"], windows);
    assert_eq!(api["holidays"], "ignore");

    // A schedule in use stays, and says by what; one nobody uses goes.
    let business = format!("/schedules/{}", f.business_hours);
    let page = admin.submit(&business, &format!("{business}/delete"), &[]);
    assert_eq!(page.status, 409, "{}", page.body);
    assert!(
        page.body.contains("Access levels that use it: Staff;"),
        "{}",
        page.body
    );
    let page = admin.submit(&at, &format!("{at}/delete"), &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(app.get(&format!("/api/v1/schedules/{id}")).status, 404);
    let audit = app.get("/api/v1/audit?entity=schedule").body.to_string();
    assert!(audit.contains("delete schedule 'Odd hours'"), "{audit}");
}

#[test]
fn auditors_read_zones_and_schedules_without_their_forms_and_cannot_post_them() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut auditor = signed_in(&app, "auditor");
    let zones = auditor.get("/zones");
    assert_eq!(zones.status, 200);
    assert!(
        !zones.body.contains("method=\"post\" action=\"/zones\""),
        "{}",
        zones.body
    );
    let zone = auditor.get(&format!("/zones/{}", f.building));
    assert_eq!(zone.status, 200);
    assert!(zone.body.contains("Main Entrance"));
    assert!(!zone.body.contains("/edit\"") && !zone.body.contains("Delete zone"));
    let schedules = auditor.get("/schedules");
    assert!(!schedules.body.contains("/schedules/new"));
    let schedule = auditor.get(&format!("/schedules/{}", f.business_hours));
    assert_eq!(schedule.status, 200);
    assert!(schedule.body.contains("<svg class=\"week\""));
    assert!(
        !schedule
            .body
            .contains("<form method=\"post\" action=\"/schedules")
    );
    assert_eq!(auditor.get("/schedules/new").status, 403);

    let site = f.site.to_string();
    let zone_fields = [
        ("name", "Loading Bay"),
        ("site_id", site.as_str()),
        ("parent_id", ""),
        ("antipassback", "off"),
    ];
    let schedule_fields = [
        ("name", "Night"),
        ("holidays", "closed"),
        ("windows[0].kind", "simple"),
        ("windows[0].mon", "1"),
        ("windows[0].start", "22:00"),
        ("windows[0].end", "06:00"),
        ("windows[0].next_day", "1"),
    ];
    let bh = f.business_hours;
    for (action, fields) in [
        ("/zones".to_owned(), &zone_fields[..]),
        (format!("/zones/{}/edit", f.server_room), &zone_fields[..]),
        (format!("/zones/{}/delete", f.server_room), &[][..]),
        ("/schedules".to_owned(), &schedule_fields[..]),
        (format!("/schedules/{bh}/edit"), &schedule_fields[..]),
        (format!("/schedules/{bh}/delete"), &[][..]),
    ] {
        let page = auditor.submit("/zones", &action, fields);
        assert_eq!(page.status, 403, "{action}: {}", page.body);
        assert!(
            page.body
                .contains("Your role (auditor) can look but not change this.")
        );
    }
    assert_eq!(app.get("/api/v1/zones").body["total"], 2);
    assert_eq!(app.get("/api/v1/schedules").body["total"], 1);
    assert_eq!(
        app.get(&format!("/api/v1/zones/{}", f.server_room)).body["name"],
        "Server Room"
    );
}

/// The access levels list is searched by name and paged 50 at a time, each level with how
/// many hold it.
#[test]
fn the_access_levels_list_searches_and_pages() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    for i in 0..55 {
        app.create(
            "access-levels",
            json!({"name": format!("Team {i:02}"), "items": [{"door_id": f.main_door, "schedule_id": f.business_hours}]}),
        );
    }
    let mut browser = signed_in(&app, "auditor");
    let names = |body: &str| -> Vec<String> {
        body.split("<td><a href=\"/levels/")
            .skip(1)
            .filter_map(|row| Some(row.split_once("\">")?.1.split_once("</a>")?.0.to_owned()))
            .collect()
    };
    let first = browser.get("/levels?q=team");
    assert!(
        first.body.contains("55 access levels matching"),
        "{}",
        first.body
    );
    assert_eq!(names(&first.body).len(), 50);
    let second = browser.get("/levels?q=team&page=2");
    assert_eq!(
        names(&second.body),
        ["Team 50", "Team 51", "Team 52", "Team 53", "Team 54"]
    );
    let staff = browser.get("/levels?q=STAFF");
    assert_eq!(names(&staff.body), ["Staff"]);
    // Staff is held by the fixture's one person.
    assert!(staff.body.contains("1 person"), "{}", staff.body);
}

/// Doors are added, renamed, given their times and deleted in the console: a form with
/// mistakes comes back with each message beside its field and what was typed; a door still
/// in use is not deleted and its page says what uses it; every change is audited.
#[test]
fn doors_are_added_edited_and_deleted_in_the_console_each_audited() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let building = f.building.to_string();

    let page = admin.submit(
        "/doors",
        "/doors",
        &[
            ("name", "Side Door"),
            ("zone_id", ""),
            ("unlock_s", "0"),
            ("held_open_s", "soon"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    for field in ["zone_id-error", "unlock_s-error", "held_open_s-error"] {
        assert!(page.body.contains(&format!("id=\"{field}\"")), "{field}");
    }
    assert!(page.body.contains("value=\"Side Door\""), "typed text kept");
    let page = admin.submit(
        "/doors",
        "/doors",
        &[
            ("name", "Main Entrance"),
            ("zone_id", &building),
            ("unlock_s", "5"),
            ("held_open_s", "30"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("already exists"), "{}", page.body);

    let page = admin.submit(
        "/doors",
        "/doors",
        &[
            ("name", "Side Door"),
            ("zone_id", &building),
            ("unlock_s", "2.5"),
            ("held_open_s", "45"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    let door = page.location().to_owned();
    let id: i64 = door.trim_start_matches("/doors/").parse().unwrap();
    let api = app.get(&format!("/api/v1/doors/{id}")).body;
    assert_eq!(api["name"], "Side Door");
    assert_eq!(api["zone_id"], f.building);
    assert_eq!(api["unlock_ms"], 2500);
    assert_eq!(api["held_open_s"], 45);
    assert_eq!(api["mode"], "normal");

    let edit = format!("{door}/edit");
    let settings = [
        ("name", "Side Door East"),
        ("unlock_s", "3"),
        ("held_open_s", "60"),
        ("sensitivity", "high"),
    ];
    let page = admin.submit(&door, &edit, &settings);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), door);
    let api = app.get(&format!("/api/v1/doors/{id}")).body;
    assert_eq!(api["name"], "Side Door East");
    assert_eq!(api["unlock_ms"], 3000);
    assert_eq!(api["held_open_s"], 60);
    assert_eq!(api["sensitivity"], "high");
    let page = admin.submit(&door, &edit, &settings);
    assert_eq!(page.location(), door);
    let page = admin.get(&door);
    assert!(page.body.contains("Nothing changed"), "{}", page.body);
    let page = admin.submit(
        &door,
        &edit,
        &[
            ("name", "Server Room Door"),
            ("unlock_s", "900"),
            ("held_open_s", "60"),
            ("sensitivity", "high"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("id=\"unlock_s-error\""), "{}", page.body);
    assert!(page.body.contains("value=\"900\""), "typed text kept");
    let page = admin.submit(
        &door,
        &edit,
        &[
            ("name", "Server Room Door"),
            ("unlock_s", "3"),
            ("held_open_s", "60"),
            ("sensitivity", "high"),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("id=\"name-error\""), "{}", page.body);
    assert_eq!(
        app.get(&format!("/api/v1/doors/{id}")).body["name"],
        "Side Door East"
    );

    // The main entrance has a reader and is in an access level: not deleted, and why.
    let main = format!("/doors/{}", f.main_door);
    let page = admin.submit(&main, &format!("{main}/delete"), &[]);
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains(
            "Main Entrance was not deleted: it still has 1 reader (remove it through the API \
             or the site file) and is in 1 access level"
        ),
        "{}",
        page.body
    );
    assert_eq!(
        app.get(&main.replace("/doors", "/api/v1/doors")).status,
        200
    );

    let page = admin.submit(&door, &format!("{door}/delete"), &[]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), "/doors");
    assert_eq!(app.get(&format!("/api/v1/doors/{id}")).status, 404);

    let audit = app.get("/api/v1/audit?entity=door").body.to_string();
    for summary in [
        "create door 'Side Door'",
        "update door 'Side Door East'",
        "delete door 'Side Door East'",
    ] {
        assert!(audit.contains(summary), "{summary}: {audit}");
    }
    // A door page's address edited to carry a refusal says nothing of it: refusals are
    // notices kept for the session, never text taken from the address.
    let page = admin.get(&format!("{main}?refused=%3Cb%3Ebogus"));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("bogus"), "{}", page.body);
    assert!(!page.body.contains("was not unlocked"), "{}", page.body);
    // An auditor sees neither form.
    let mut auditor = signed_in(&app, "auditor");
    let list = auditor.get("/doors").body;
    assert!(!list.contains("id=\"add-door\""));
    let page = auditor.get(&main).body;
    assert!(!page.contains("id=\"settings-form\""));
}
