//! What the console says after a change: every form says what it did (or why it did
//! not), once, on the page it redirects to, to the session that made it, with no name in
//! the URL; and cards returned to a pool are issued again.

use crate::app::{Backend, TestApp, build_site};
use crate::console::{Browser, Page, signed_in};

/// The notice a page shows with `text`, in the form a screen reader announces.
fn says(page: &Page, tone: &str, text: &str) -> bool {
    let role = if tone == "refused" { "alert" } else { "status" };
    page.body.contains(&format!(
        "<p class=\"notice {tone}\" role=\"{role}\">{text}"
    ))
}

/// Submits `fields` to `action` from `from`: the browser is sent to `lands`, with no
/// personal data in the address, where the page says `text` once; a reload says nothing.
fn said_once(
    browser: &mut Browser<'_>,
    (from, action, lands): (&str, &str, &str),
    fields: &[(&str, &str)],
    text: &str,
) {
    let posted = browser.submit(from, action, fields);
    assert_eq!(posted.status, 303, "{action}: {}", posted.body);
    assert_eq!(posted.location(), lands, "{action}");
    assert!(
        !posted.location().contains("Ada") && !posted.location().contains('?'),
        "nothing of the notice is in the URL"
    );
    let landed = browser.get(lands);
    assert_eq!(landed.status, 200, "{action}");
    assert!(says(&landed, "done", text), "{action}: {}", landed.body);
    let again = browser.get(lands);
    assert!(
        !again.body.contains("class=\"notice"),
        "{action}: said once only: {}",
        again.body
    );
}

#[test]
fn every_console_change_says_what_it_did_once_after_the_redirect() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let person = format!("/people/{}", f.person);

    said_once(
        &mut admin,
        (&person, &format!("{person}/cards"), &person),
        &[("card", "04c0ffee")],
        "Card 04C0FFEE issued to Ada Lovelace",
    );
    let night = format!("/levels/{}", f.staff_level + 1);
    said_once(
        &mut admin,
        ("/levels", "/levels", &night),
        &[("name", "Night shift")],
        "Access level Night shift added",
    );
    said_once(
        &mut admin,
        (&person, &format!("{person}/access"), &person),
        &[
            ("level_id", &(f.staff_level + 1).to_string()),
            ("valid_until", "2027-03-31"),
            ("justification", "nights"),
        ],
        "Night shift granted to Ada Lovelace until 2027-03-31",
    );
    said_once(
        &mut admin,
        (&person, &format!("{person}/suspend"), &person),
        &[],
        "Ada Lovelace suspended: denied at every door from the next swipe",
    );
    let card = app.get("/api/v1/credentials?card_uid=04C0FFEE").body["items"][0]["id"].clone();
    said_once(
        &mut admin,
        (&person, &format!("/cards/{card}/status"), &person),
        &[("status", "lost")],
        "Card 04C0FFEE of Ada Lovelace marked lost: it opens nothing",
    );
    let door = format!("/doors/{}", f.main_door);
    said_once(
        &mut admin,
        (&door, &format!("{door}/mode"), &door),
        &[("mode", "locked")],
        "Main Entrance is locked",
    );
    said_once(
        &mut admin,
        ("/holidays", "/holidays", "/holidays"),
        &[
            ("name", "Boxing Day"),
            ("date", "2026-12-26"),
            ("site_id", &f.site.to_string()),
        ],
        "Boxing Day (2026-12-26, at HQ) added",
    );
    said_once(
        &mut admin,
        ("/zones", "/zones", &format!("/zones/{}", f.server_room + 1)),
        &[
            ("name", "Loading Bay"),
            ("site_id", &f.site.to_string()),
            ("antipassback", "off"),
        ],
        "Zone Loading Bay added",
    );
    said_once(
        &mut admin,
        ("/lockdown", "/lockdown/start", "/lockdown"),
        &[("confirm", "yes")],
        "Lockdown started at HQ",
    );
    said_once(
        &mut admin,
        ("/lockdown", "/lockdown/end", "/lockdown"),
        &[],
        "Lockdown ended at HQ",
    );
}

/// A notice is for the admin who made the change: another admin's page does not show it,
/// and it does not wait for a later page of theirs either.
#[test]
fn a_notice_is_shown_only_to_the_session_that_made_the_change() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");
    let mut operator = signed_in(&app, "operator");
    let person = format!("/people/{}", f.person);
    let posted = admin.submit(&person, &format!("{person}/cards"), &[("card", "04AA")]);
    assert_eq!(posted.status, 303, "{}", posted.body);
    let theirs = operator.get(&person);
    assert!(
        theirs.body.contains("04AA"),
        "the card is there for everyone"
    );
    assert!(
        !theirs.body.contains("class=\"notice"),
        "but the notice is the admin's: {}",
        theirs.body
    );
    // The notice waits for the admin's next page, whichever it is.
    assert!(says(
        &admin.get("/people"),
        "done",
        "Card 04AA issued to Ada Lovelace"
    ));
}

/// A card handed back (revoked) is issued to the next holder: the same card, moved to
/// them and active, audited as a change from the last holder. A card still held, lost or
/// stolen is refused with the holder's name.
#[test]
fn a_returned_card_is_issued_again_and_a_held_one_names_its_holder() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let grace = app.create(
        "people",
        serde_json::json!({"employee_id": "V7", "name": "Grace Hopper", "person_type": "visitor"}),
    );
    let mut admin = signed_in(&app, "admin");
    let (ada, grace_page) = (format!("/people/{}", f.person), format!("/people/{grace}"));
    let issue = format!("{grace_page}/cards");

    let refused = admin.submit(&grace_page, &issue, &[("card", f.card)]);
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("this card is already issued to Ada Lovelace and active"),
        "{}",
        refused.body
    );

    let card = app
        .get(&format!("/api/v1/credentials?card_uid={}", f.card))
        .body["items"][0]["id"]
        .clone();
    let stolen = admin.submit(
        &ada,
        &format!("/cards/{card}/status"),
        &[("status", "stolen")],
    );
    assert_eq!(stolen.status, 303);
    let refused = admin.submit(&grace_page, &issue, &[("card", f.card)]);
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .body
            .contains("this card is Ada Lovelace&#39;s and reported stolen"),
        "{}",
        refused.body
    );

    let returned = admin.submit(
        &ada,
        &format!("/cards/{card}/status"),
        &[("status", "revoked")],
    );
    assert_eq!(returned.status, 303);
    assert!(says(
        &admin.get(&ada),
        "done",
        "Card 04A1B2C3 of Ada Lovelace revoked"
    ));
    said_once(
        &mut admin,
        (&grace_page, &issue, &grace_page),
        &[("card", "04a1b2c3"), ("pin", "4321")],
        "Card 04A1B2C3 issued to Grace Hopper (returned by Ada Lovelace, issued again)",
    );
    let now = &app.get(&format!("/api/v1/credentials/{card}")).body;
    assert_eq!(now["person_id"], grace, "the same card, moved: {now}");
    assert_eq!(now["status"], "active");
    assert_eq!(now["has_pin"], true, "with the new holder's PIN");
    assert!(
        !admin.get(&ada).body.contains("04A1B2C3"),
        "no longer on the last holder's page"
    );
    let entry = &app.get("/api/v1/audit?entity=credential&limit=1").body[0];
    assert_eq!(entry["action"], "update", "{entry}");
    assert_eq!(entry["before"]["person_id"], f.person);
    assert_eq!(entry["after"]["person_id"], grace);
}
