//! One holiday per site and date: the API, the console form and the database refuse a
//! second (an all-sites holiday is every site's), naming the one already there; and the
//! holidays a site has export and import back as they were.

use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::app::{Backend, TestApp, backends, build_site};
use crate::console::signed_in;

#[test]
fn a_second_holiday_on_a_sites_date_is_refused_naming_the_first() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        // HQ already has Christmas Day on 2026-12-25 (the fixture).
        let same = app.post(
            "/api/v1/holidays",
            json!({"site_id": f.site, "name": "Office closed", "date": "2026-12-25"}),
        );
        assert_eq!(same.status, 422, "{:?}", same.body);
        assert!(
            same.body
                .to_string()
                .contains("HQ already has a holiday on 2026-12-25: Christmas Day"),
            "{:?}",
            same.body
        );
        let everywhere = app.post(
            "/api/v1/holidays",
            json!({"name": "Company day", "date": "2026-12-25"}),
        );
        assert_eq!(everywhere.status, 422, "{:?}", everywhere.body);
        assert!(
            everywhere
                .body
                .to_string()
                .contains("HQ already has its own holiday on 2026-12-25 (Christmas Day)"),
            "{:?}",
            everywhere.body
        );
        app.create(
            "holidays",
            json!({"name": "New Year", "date": "2027-01-01"}),
        );
        let under = app.post(
            "/api/v1/holidays",
            json!({"site_id": f.site, "name": "HQ New Year", "date": "2027-01-01"}),
        );
        assert_eq!(under.status, 422, "{:?}", under.body);
        assert!(
            under
                .body
                .to_string()
                .contains("a holiday at every site on 2027-01-01 (New Year)"),
            "{:?}",
            under.body
        );

        // The database holds to it too, whatever writes to it.
        let sql = format!(
            "INSERT INTO holidays (site_id, name, date) VALUES ({}, 'Twice', '2026-12-25')",
            f.site
        );
        assert!(app.db().batch_execute(&sql).is_err(), "{backend:?}");
        let sql = "INSERT INTO holidays (site_id, name, date) VALUES (NULL, 'Twice', '2027-01-01')";
        assert!(app.db().batch_execute(sql).is_err(), "{backend:?}");
        assert_eq!(app.get("/api/v1/holidays").body["total"], 2);
    }
}

#[test]
fn the_holiday_form_says_which_holiday_is_already_on_that_day() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let page = admin.submit(
        "/holidays",
        "/holidays",
        &[
            ("name", "Office closed"),
            ("date", "2026-12-25"),
            ("site_id", &f.site.to_string()),
        ],
    );
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body
            .contains("HQ already has a holiday on 2026-12-25: Christmas Day"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"Office closed\""), "typed back");
}

#[test]
fn holidays_at_every_site_and_at_one_export_and_import_back() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        app.create(
            "holidays",
            json!({"name": "New Year", "date": "2027-01-01"}),
        );
        let exported = gatehouse::io::site_file::export(&mut app.db()).unwrap();
        let copy = TestApp::new(backend);
        crate::site_file::import(&copy, &exported).unwrap();
        let holidays = |app: &TestApp| {
            app.get("/api/v1/holidays").body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h["name"].as_str().unwrap().to_owned(),
                        h["date"].as_str().unwrap().to_owned(),
                        h["site_id"].is_null(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(holidays(&app), holidays(&copy));
        assert_eq!(holidays(&copy).len(), 2);
    }
}

/// "Why?" on Christmas Day names the holiday as the reason the schedule is closed, and
/// when it opens after it, beyond the days the policy is compiled for.
#[test]
fn why_on_a_holiday_says_it_is_one() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut auditor = signed_in(&app, "auditor");
    let page = auditor.get(&format!(
        "/why?person=E1&door={}&when=2026-12-25T10:00",
        f.main_door
    ));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("is closed at 2026-12-25 10:00 CET: 2026-12-25 is a holiday (Christmas Day)"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "Business hours (closed for the holiday Christmas Day; opens 2026-12-28 07:00"
        ),
        "{}",
        page.body
    );
    assert!(!page.body.contains("does not apply now"), "{}", page.body);
}
