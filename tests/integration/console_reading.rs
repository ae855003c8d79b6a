//! How the console reads to a newcomer: one convention for end dates, no empty rows or
//! headings said twice on a person's page.

use serde_json::json;

use crate::app::{Backend, TestApp, build_site};
use crate::console::signed_in;

/// Access granted "until 2027-03-31" reads "2027-03-31" wherever it is shown, not the
/// midnight that ends it (2027-04-01 00:00).
#[test]
fn an_end_date_is_shown_as_the_last_day_it_is_good_for() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let person = format!("/people/{}", f.person);
    let level = app.create(
        "access-levels",
        json!({"name": "Contractors", "items": [{"door_id": f.main_door, "schedule_id": f.business_hours}]}),
    );
    let granted = admin.submit(
        &person,
        &format!("{person}/access"),
        &[
            ("level_id", &level.to_string()),
            ("valid_until", "2027-03-31"),
            ("justification", "contract"),
        ],
    );
    assert_eq!(granted.status, 303, "{}", granted.body);
    let page = admin.get(&person).body;
    assert!(
        page.contains("<td>Contractors</td><td>2027-03-31</td>"),
        "{page}"
    );
    assert!(!page.contains("2027-04-01"), "{page}");
    let holders = admin.get(&format!("/levels/{level}")).body;
    assert!(holders.contains("<td>2027-03-31</td>"), "{holders}");
    assert!(!holders.contains("2027-04-01"), "{holders}");
    // The API keeps the instant: the midnight at the end of that day, on the site's clock.
    let stored = &app
        .get(&format!("/api/v1/entitlements?person_id={}", f.person))
        .body;
    assert!(
        stored.to_string().contains("2027-03-31T22:00:00Z"),
        "{stored}"
    );
}

/// A person's page says each thing once: no Department row for a person without one, and
/// the activity chart's title is not repeated by a heading above it.
#[test]
fn a_persons_page_has_no_empty_rows_or_repeated_headings() {
    let app = TestApp::new(Backend::Sqlite);
    build_site(&app);
    let visitor = app.create(
        "people",
        json!({"employee_id": "V1", "name": "Grace Hopper"}),
    );
    let mut auditor = signed_in(&app, "auditor");
    let page = auditor.get(&format!("/people/{visitor}")).body;
    assert!(!page.contains("<dt>Department</dt>"), "{page}");
    assert!(!page.contains("<h2>When Grace Hopper badges"), "{page}");
    assert_eq!(
        page.matches("class=\"chart-title\">When Grace Hopper badges")
            .count(),
        1,
        "said once, by the chart: {page}"
    );
}

/// The dashboard's "alarms today" counts every kind of alarm the panel beside it lists (a
/// reader going offline too), and each listed alarm says its date as well as its time.
#[test]
fn alarms_today_counts_what_the_panel_lists_and_alarms_carry_their_date() {
    use gatehouse::store::event_log::{Event, EventKind};
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let now = chrono::Utc::now();
    let events = vec![
        Event {
            door_id: Some(f.main_door),
            ..Event::new(EventKind::ForcedOpen, now - chrono::TimeDelta::seconds(20))
        },
        Event {
            reader_id: Some("main-in".to_owned()),
            ..Event::new(
                EventKind::ReaderOffline,
                now - chrono::TimeDelta::seconds(10),
            )
        },
        Event {
            door_id: Some(f.main_door),
            ..Event::new(EventKind::HeldOpen, now - chrono::TimeDelta::days(3))
        },
    ];
    gatehouse::store::event_log::write_batch(&mut app.db(), &events, &mut Default::default())
        .unwrap();
    let mut auditor = signed_in(&app, "auditor");
    let status = auditor.get("/dashboard/status").body;
    assert!(
        status.contains("<span class=\"n\">2</span> alarms today"),
        "{status}"
    );
    let panel = auditor.get("/dashboard/alarms").body;
    assert_eq!(
        panel.matches("<li class=\"event alarm\"").count(),
        3,
        "{panel}"
    );
    let three_days_ago = (now - chrono::TimeDelta::days(3))
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m-%d ")
        .to_string();
    assert!(panel.contains(&three_days_ago), "{panel}");
}
