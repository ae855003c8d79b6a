//! Times in the console on an appliance with sites in different timezones: each event,
//! door and reader on its own site's clock (marked when that is not the page's), the wall
//! clock times typed into forms read on the clock they are about, and a single-site
//! appliance rendered exactly as before.

use chrono::{DateTime, Utc};
use gatehouse::store::event_log::{Event, EventKind, write_batch};
use serde_json::json;

use crate::app::{Backend, Fixture, TestApp, build_site};
use crate::console::{OpenFeed, fragment, redacted, signed_in};

/// A Monday afternoon in Berlin (15:05 CET), the morning in New York (09:05 EST).
const MONDAY: &str = "2026-11-23T14:05:00Z";

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Swipes (granted and denied) and an alarm at the fixture's doors, at fixed times.
fn record_events(app: &TestApp, f: &Fixture) {
    let t = utc(MONDAY);
    let events = vec![
        Event {
            reader_id: Some("main-in".to_owned()),
            door_id: Some(f.main_door),
            person_id: Some(f.person),
            result: Some("granted".to_owned()),
            ..Event::new(EventKind::Swipe, t)
        },
        Event {
            reader_id: Some("main-in".to_owned()),
            door_id: Some(f.main_door),
            person_id: Some(f.person),
            result: Some("denied".to_owned()),
            deny_code: Some("schedule".to_owned()),
            ..Event::new(EventKind::Swipe, t + chrono::TimeDelta::minutes(1))
        },
        Event {
            door_id: Some(f.server_door),
            ..Event::new(EventKind::ForcedOpen, t + chrono::TimeDelta::minutes(2))
        },
        Event {
            reader_id: Some("main-in".to_owned()),
            ..Event::new(EventKind::ReaderOffline, t + chrono::TimeDelta::minutes(3))
        },
    ];
    write_batch(&mut app.db(), &events, &mut Default::default()).unwrap();
}

#[test]
fn a_single_site_appliance_shows_times_as_before() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    record_events(&app, &f);
    let visitors = app.create(
        "access-levels",
        json!({"name": "Visitors", "items": [{"door_id": f.main_door, "schedule_id": f.business_hours}]}),
    );
    let mut browser = signed_in(&app, "operator");
    let page = browser.submit(
        &format!("/people/{}", f.person),
        &format!("/people/{}/access", f.person),
        &[
            ("level_id", &visitors.to_string()),
            ("valid_until", "2027-03-31"),
            ("justification", "until spring"),
        ],
    );
    assert_eq!(page.status, 303, "{}", page.body);

    let events = browser.get("/events").body;
    insta::assert_snapshot!(
        "single_site_events",
        [
            fragment(
                &events,
                "<form method=\"get\" action=\"/events\"",
                "</form>"
            ),
            fragment(&events, "<table class=\"list events\">", "</table>"),
            fragment(&events, "<footer", "</footer>"),
        ]
        .join("\n")
    );
    let filtered = browser.get(&format!(
        "/events?door={}&from=2026-11-23&until=2026-11-23",
        f.main_door
    ));
    assert_eq!(filtered.body.matches("<tr class=").count(), 2);

    let dashboard = browser.get("/").body;
    insta::assert_snapshot!(
        "single_site_feed",
        fragment(&dashboard, "<ol id=\"live-feed\"", "</ol>")
    );

    let csv = browser.get("/events.csv").body;
    insta::assert_snapshot!("single_site_csv", csv);

    let person = browser.get(&format!("/people/{}", f.person)).body;
    let access = person.split("<h2>Access</h2>").nth(1).unwrap();
    insta::assert_snapshot!(
        "single_site_access",
        redacted(fragment(access, "<table class=\"list\">", "</table>"))
    );
    let stored = app
        .get(&format!("/api/v1/entitlements?person_id={}", f.person))
        .body;
    assert!(
        stored.to_string().contains("2027-03-31T22:00:00"),
        "until the end of the day in Berlin: {stored}"
    );
}

/// The fixture's HQ in Berlin and a New York office beside it: a door (reader `ny-in`)
/// in a lobby zone, open to the `NY staff` level in business hours on New York's clock.
struct NewYork {
    door: i64,
}

fn add_new_york(app: &TestApp, f: &Fixture) -> NewYork {
    let site = app.create(
        "sites",
        json!({"name": "New York", "timezone": "America/New_York"}),
    );
    let lobby = app.create("zones", json!({"site_id": site, "name": "NY Lobby"}));
    let door = app.create("doors", json!({"zone_id": lobby, "name": "NY Front Door"}));
    app.create("readers", json!({"reader_id": "ny-in", "door_id": door}));
    let level = app.create(
        "access-levels",
        json!({"name": "NY staff", "items": [{"door_id": door, "schedule_id": f.business_hours}]}),
    );
    app.create(
        "entitlements",
        json!({"person_id": f.person, "level_id": level, "justification": "visits New York"}),
    );
    NewYork { door }
}

/// A granted swipe by the fixture's person at `door` (read by `reader`) at `at`.
fn swipe_at(app: &TestApp, f: &Fixture, door: i64, reader: &str, at: &str) {
    let event = Event {
        reader_id: Some(reader.to_owned()),
        door_id: Some(door),
        person_id: Some(f.person),
        result: Some("granted".to_owned()),
        ..Event::new(EventKind::Swipe, utc(at))
    };
    write_batch(&mut app.db(), &[event], &mut Default::default()).unwrap();
}

#[test]
fn each_event_shows_on_its_own_sites_clock() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let ny = add_new_york(&app, &f);
    swipe_at(&app, &f, f.main_door, "main-in", MONDAY);
    swipe_at(&app, &f, ny.door, "ny-in", "2026-11-23T14:06:00Z");
    // A reader's word with no door: on its door's site's clock.
    let offline = Event {
        reader_id: Some("ny-in".to_owned()),
        ..Event::new(EventKind::ReaderOffline, utc("2026-11-23T14:07:00Z"))
    };
    write_batch(&mut app.db(), &[offline], &mut Default::default()).unwrap();
    let mut browser = signed_in(&app, "auditor");

    let page = browser.get("/events").body;
    let events = fragment(&page, "<table class=\"list events\">", "</table>");
    let row = |door: &str| {
        events
            .split("<tr class=")
            .find(|row| row.contains(door))
            .unwrap_or_else(|| panic!("no row of {door} in {events}"))
            .to_owned()
    };
    assert!(
        row("Main Entrance").contains(">2026-11-23 15:05:00</time>"),
        "Berlin's own clock, unmarked: {}",
        row("Main Entrance")
    );
    assert!(
        row("NY Front Door").contains(">2026-11-23 09:06:00 EST</time>"),
        "New York's clock, marked: {}",
        row("NY Front Door")
    );
    assert!(row("Reader offline").contains(">2026-11-23 09:07:00 EST</time>"));
    let footer = fragment(&page, "<footer", "</footer>");
    assert_eq!(
        footer,
        "<footer class=\"foot\">Times are Europe/Berlin, except at New York: \
         America/New_York, marked EST or EDT.</footer>"
    );

    let feed = browser.get("/").body;
    let feed = fragment(&feed, "<ol id=\"live-feed\"", "</ol>");
    assert!(feed.contains(">15:05:00</time>"), "{feed}");
    assert!(feed.contains(">09:06:00 EST</time>"), "{feed}");
    assert!(feed.contains(">09:07:00 EST</time>"), "{feed}");

    let csv = browser.get("/events.csv").body;
    assert!(
        csv.contains("\r\n1,2026-11-23T15:05:00+01:00,swipe,granted,,Ada Lovelace,"),
        "{csv}"
    );
    assert!(
        csv.contains("\r\n2,2026-11-23T09:06:00-05:00,swipe,granted,,Ada Lovelace,"),
        "{csv}"
    );
    assert!(
        csv.contains("\r\n3,2026-11-23T09:07:00-05:00,reader_offline,"),
        "{csv}"
    );

    // The live feed sends each new event on its site's clock too.
    let mut live = OpenFeed::open(&browser);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let appended = runtime
        .block_on(app.state.events.append(Event {
            door_id: Some(ny.door),
            ..Event::new(EventKind::ForcedOpen, utc("2026-11-23T14:08:00Z"))
        }))
        .unwrap();
    let gatehouse::store::event_log::Appended::New(id) = appended else {
        panic!("{appended:?}")
    };
    assert!(
        live.sends(id, std::time::Duration::from_secs(10)),
        "{}",
        live.sent
    );
    assert!(live.sent.contains(">09:08:00 EST</time>"), "{}", live.sent);

    // A door's page is on its site's clock and says which it is.
    let door = browser.get(&format!("/doors/{}", ny.door)).body;
    assert!(
        door.contains("<dt>Timezone</dt><dd>America/New_York</dd>"),
        "{door}"
    );
}

#[test]
fn an_events_filter_with_a_new_york_door_reads_its_days_in_new_york_time() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let ny = add_new_york(&app, &f);
    // Monday 22:30 in New York, already Tuesday 04:30 in Berlin.
    swipe_at(&app, &f, ny.door, "ny-in", "2026-11-24T03:30:00Z");
    let mut browser = signed_in(&app, "auditor");
    let rows = |page: &str| page.matches("<tr class=").count();

    let monday_in_new_york = browser.get(&format!(
        "/events?door={}&from=2026-11-23&until=2026-11-23",
        ny.door
    ));
    assert_eq!(
        rows(&monday_in_new_york.body),
        1,
        "{}",
        monday_in_new_york.body
    );
    assert!(
        monday_in_new_york
            .body
            .contains("From and until are days in America/New_York time, the door's site's."),
        "{}",
        monday_in_new_york.body
    );
    let tuesday_in_new_york = browser.get(&format!(
        "/events?door={}&from=2026-11-24&until=2026-11-24",
        ny.door
    ));
    assert_eq!(rows(&tuesday_in_new_york.body), 0);

    // With no door chosen, days are the page's (Berlin's): the swipe was on Tuesday there.
    let monday = browser.get("/events?from=2026-11-23&until=2026-11-23").body;
    assert_eq!(rows(&monday), 0);
    assert!(monday.contains("From and until are days in Europe/Berlin time; with a door chosen"));
    let tuesday = browser.get("/events?from=2026-11-24&until=2026-11-24").body;
    assert_eq!(rows(&tuesday), 1);

    // The export selects the same.
    let csv = browser.get(&format!(
        "/events.csv?door={}&from=2026-11-23&until=2026-11-23",
        ny.door
    ));
    assert_eq!(csv.body.lines().count(), 2, "{}", csv.body);
}

#[test]
fn typed_times_are_read_on_the_clock_of_the_door_or_level_they_are_about() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let ny = add_new_york(&app, &f);
    let mut browser = signed_in(&app, "operator");

    // Business hours end at 18:00 in New York: 19:00 there is closed, though it would be
    // 13:00 there if read on Berlin's clock.
    let why = browser
        .get(&format!(
            "/why?person=E1&door={}&when=2026-11-23T19:00",
            ny.door
        ))
        .body;
    assert!(
        why.contains("Denied: Ada Lovelace at NY Front Door, 2026-11-23 19:00:00 EST</h2>"),
        "{why}"
    );
    assert!(
        why.contains("On the clock of the door's site (America/New_York)"),
        "{why}"
    );
    let why = browser
        .get(&format!(
            "/why?person=E1&door={}&when=2026-11-23T17:00",
            ny.door
        ))
        .body;
    assert!(why.contains("Granted: Ada Lovelace at NY Front Door, 2026-11-23 17:00:00 EST"));
    // Where clocks differ an untouched "when" stays empty and means now.
    let form = browser.get("/why").body;
    assert!(
        form.contains("name=\"when\" type=\"datetime-local\" value=\"\""),
        "{form}"
    );

    // Access until a day ends at midnight where the level's doors are.
    let until = |app: &TestApp, level: i64| {
        let found = app
            .get(&format!("/api/v1/entitlements?person_id={}", f.person))
            .body;
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["level_id"] == level)
            .map(|e| e["valid_until"].as_str().unwrap_or_default().to_owned())
            .unwrap()
    };
    let remove_and_grant = |browser: &mut crate::console::Browser<'_>, level: i64| {
        let person = format!("/people/{}", f.person);
        let page = browser.submit(
            &person,
            &format!("{person}/access"),
            &[
                ("level_id", &level.to_string()),
                ("valid_until", "2027-03-31"),
            ],
        );
        assert_eq!(page.status, 303, "{}", page.body);
    };
    let visitors = app.create(
        "access-levels",
        json!({"name": "Visitors", "items": [{"door_id": f.main_door, "schedule_id": f.business_hours}]}),
    );
    let everywhere = app.create(
        "access-levels",
        json!({"name": "Everywhere", "items": [
            {"door_id": f.main_door, "schedule_id": f.business_hours},
            {"door_id": ny.door, "schedule_id": f.business_hours}]}),
    );
    let ny_only = app.create(
        "access-levels",
        json!({"name": "NY visitors", "items": [{"door_id": ny.door, "schedule_id": f.business_hours}]}),
    );
    remove_and_grant(&mut browser, ny_only);
    remove_and_grant(&mut browser, visitors);
    remove_and_grant(&mut browser, everywhere);
    assert!(
        until(&app, ny_only).starts_with("2027-04-01T04:00:00"),
        "{}",
        until(&app, ny_only)
    );
    assert!(until(&app, visitors).starts_with("2027-03-31T22:00:00"));
    assert!(
        until(&app, everywhere).starts_with("2027-03-31T22:00:00"),
        "sites differ: the page's"
    );
    let person = browser.get(&format!("/people/{}", f.person)).body;
    assert!(
        person.contains("<td>NY visitors</td><td>2027-03-31 EDT</td>"),
        "{person}"
    );
    assert!(person.contains("<td>Visitors</td><td>2027-03-31</td>"));
}

#[test]
fn charts_count_each_swipe_in_the_hour_of_its_own_sites_clock() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let ny = add_new_york(&app, &f);
    // 09:05 in New York and 09:05 in Berlin on the same day a week ago: one cell, that
    // weekday at 09:00, on both clocks.
    let day = (Utc::now() - chrono::TimeDelta::days(7)).date_naive();
    let local_nine = |tz: chrono_tz::Tz| {
        day.and_hms_opt(9, 5, 0)
            .unwrap()
            .and_local_timezone(tz)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
            .to_rfc3339()
    };
    swipe_at(
        &app,
        &f,
        ny.door,
        "ny-in",
        &local_nine(chrono_tz::America::New_York),
    );
    swipe_at(
        &app,
        &f,
        f.main_door,
        "main-in",
        &local_nine(chrono_tz::Europe::Berlin),
    );
    let mut browser = signed_in(&app, "auditor");

    let person = browser.get(&format!("/people/{}", f.person)).body;
    assert!(
        person.contains(" 09:00, 2 swipes; 2 in all"),
        "both in the 09:00 hour: {person}"
    );

    let door = browser.get(&format!("/doors/{}", ny.door)).body;
    assert!(door.contains(" 09:00, 1 swipe; 1 in all"), "{door}");

    let activity = browser.get("/activity").body;
    assert!(activity.contains("<h2>HQ <small class=\"muted\">(Europe/Berlin)</small></h2>"));
    assert!(
        activity.contains("<h2>New York <small class=\"muted\">(America/New_York)</small></h2>")
    );
    let new_york = activity.split("<h2>New York").nth(1).unwrap();
    assert!(new_york.contains(" 09:00, 1 swipe; 1 in all"), "{new_york}");
}

/// A schedule's form says that each site applies its times on its own clock, where sites
/// keep different time (and only the site's clock on a single site); a level's holders'
/// ends are on the level's clock, marked where that is not the page's.
#[test]
fn schedules_and_level_holders_name_the_clocks_they_are_kept_on() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut browser = signed_in(&app, "admin");
    let schedule = format!("/schedules/{}", f.business_hours);
    let single = browser.get(&schedule).body;
    assert!(
        single.contains(
            "then when it opens and closes, on the site's clock (Europe/Berlin). Closing at"
        ),
        "{single}"
    );
    let ny = add_new_york(&app, &f);
    let several = browser.get(&schedule).body;
    assert!(
        several.contains(
            "then when it opens and closes. Sites keep different time, and each applies these \
             times on its own clock (Europe/Berlin; America/New_York at New York): 08:00 opens \
             the doors at 08:00 at every site. Closing at"
        ),
        "{several}"
    );

    let ny_only = app.create(
        "access-levels",
        json!({"name": "NY visitors", "items": [{"door_id": ny.door, "schedule_id": f.business_hours}]}),
    );
    let visitors = app.create(
        "access-levels",
        json!({"name": "Visitors", "items": [{"door_id": f.main_door, "schedule_id": f.business_hours}]}),
    );
    for level in [ny_only, visitors] {
        app.create(
            "entitlements",
            json!({"person_id": f.person, "level_id": level, "valid_until": "2027-04-01T04:00:00Z"}),
        );
    }
    // Midnight at the end of 2027-03-31 in New York: that day, on New York's clock and marked.
    let level = browser.get(&format!("/levels/{ny_only}")).body;
    assert!(
        level.contains("<td>E1</td><td>2027-03-31 EDT</td>"),
        "{level}"
    );
    // A Berlin level's holders are on the page's clock, unmarked.
    let level = browser.get(&format!("/levels/{visitors}")).body;
    assert!(
        level.contains("<td>E1</td><td>2027-04-01 06:00</td>"),
        "{level}"
    );
}
