//! The console's remaining lists and forms, as a browser without JavaScript uses them:
//! schedules, holidays, admins and API tokens searched and paged, the zone tree searched, a door moved to
//! another zone, and saves that change nothing.

use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::app::{Backend, TestApp, backends, build_site};
use crate::console::signed_in;

/// The text of each link that follows `opening` (the start of its tag, up to the id), in
/// page order.
fn linked(body: &str, opening: &str) -> Vec<String> {
    body.split(opening)
        .skip(1)
        .filter_map(|rest| Some(rest.split_once("\">")?.1.split_once("</a>")?.0.to_owned()))
        .collect()
}

/// Where the pager's Next link goes, as a browser reads the attribute.
fn next_href(body: &str) -> Option<String> {
    let rest = body.split_once("rel=\"next\" href=\"")?.1;
    Some(
        rest[..rest.find('"')?]
            .replace("&amp;", "&")
            .replace("&#38;", "&"),
    )
}

/// The schedules list is searched by name, in any case, and paged 20 at a time (each
/// schedule draws its week).
#[test]
fn the_schedules_list_searches_names_and_pages_twenty_at_a_time() {
    let app = TestApp::new(Backend::Sqlite);
    build_site(&app);
    for i in 0..25 {
        app.create(
            "schedules",
            json!({"name": format!("Shift {i:02}"), "windows": [{"cron": "0 6 * * Mon-Fri", "duration_min": 480}]}),
        );
    }
    let mut browser = signed_in(&app, "auditor");
    let names = |body: &str| linked(body, "<h2><a href=\"/schedules/");

    let everything = browser.get("/schedules");
    assert_eq!(everything.status, 200, "{}", everything.body);
    assert!(
        everything.body.contains("26 schedules."),
        "{}",
        everything.body
    );
    assert!(
        everything.body.contains("<label for=\"q\">Search</label>"),
        "a labelled search box"
    );

    let first = browser.get("/schedules?q=SHIFT");
    assert!(
        first.body.contains("25 schedules matching “SHIFT”"),
        "{}",
        first.body
    );
    let shown = names(&first.body);
    assert_eq!(shown.len(), 20);
    assert_eq!(shown[0], "Shift 00");
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    let next = next_href(&first.body).expect("a Next link");
    assert_eq!(next, "/schedules?q=SHIFT&page=2", "the search is kept");

    let second = browser.get(&next);
    assert_eq!(
        names(&second.body),
        ["Shift 20", "Shift 21", "Shift 22", "Shift 23", "Shift 24"]
    );
    assert!(second.body.contains("rel=\"prev\""), "a Previous link");

    let business = browser.get("/schedules?q=business");
    assert_eq!(names(&business.body), ["Business hours"]);
    let none = browser.get("/schedules?q=nightwatch");
    assert!(none.body.contains("0 schedules matching"), "{}", none.body);
    assert!(names(&none.body).is_empty());
}

/// The holidays list has a page of its own, searched by name and paged 50 at a time in
/// date order.
#[test]
fn the_holidays_list_searches_names_and_pages_fifty_at_a_time() {
    let app = TestApp::new(Backend::Sqlite);
    build_site(&app);
    for i in 0..55 {
        let date = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + chrono::Days::new(i);
        app.create(
            "holidays",
            json!({"name": format!("Closure {i:02}"), "date": date.to_string()}),
        );
    }
    let mut browser = signed_in(&app, "auditor");
    let names = |body: &str| -> Vec<String> {
        body.split("<tr><td>")
            .skip(1)
            .filter_map(|row| row.split("</td><td>").nth(1).map(str::to_owned))
            .collect()
    };

    let everything = browser.get("/holidays");
    assert_eq!(everything.status, 200, "{}", everything.body);
    assert!(
        everything.body.contains("56 holidays."),
        "{}",
        everything.body
    );
    assert!(
        everything.body.contains("<label for=\"q\">Search</label>"),
        "a labelled search box"
    );
    assert_eq!(names(&everything.body)[0], "Christmas Day", "in date order");

    let first = browser.get("/holidays?q=CLOSURE");
    assert!(
        first.body.contains("55 holidays matching “CLOSURE”"),
        "{}",
        first.body
    );
    let shown = names(&first.body);
    assert_eq!(shown.len(), 50);
    assert_eq!(shown[0], "Closure 00");
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    let next = next_href(&first.body).expect("a Next link");
    assert_eq!(next, "/holidays?q=CLOSURE&page=2", "the search is kept");
    let second = browser.get(&next);
    assert_eq!(
        names(&second.body),
        [
            "Closure 50",
            "Closure 51",
            "Closure 52",
            "Closure 53",
            "Closure 54"
        ]
    );
    assert!(second.body.contains("rel=\"prev\""), "a Previous link");

    let christmas = browser.get("/holidays?q=christmas");
    assert_eq!(names(&christmas.body), ["Christmas Day"]);
    let none = browser.get("/holidays?q=carnival");
    assert!(none.body.contains("0 holidays matching"), "{}", none.body);
    assert!(names(&none.body).is_empty());
    assert!(
        !none.body.contains("Add holiday"),
        "an auditor gets no form"
    );
}

/// The admins list is searched by username and paged 50 at a time; whoever is not on the
/// page shown can still be given a token (on the tokens page).
#[test]
fn the_admins_list_searches_usernames_and_pages_fifty_at_a_time() {
    let app = TestApp::new(Backend::Sqlite);
    let mut browser = signed_in(&app, "admin");
    // 55 more admins, sharing the admin's password hash: argon2id 55 times would only
    // make the test slow.
    let mut sql = String::new();
    for i in 0..55 {
        sql.push_str(&format!(
            "INSERT INTO admin_users (username, password_hash, role, disabled, created_at, updated_at) \
             SELECT 'guard-{i:02}', password_hash, 'operator', disabled, created_at, updated_at \
             FROM admin_users WHERE username = 'admin';"
        ));
    }
    app.db().batch_execute(&sql).unwrap();
    let listed = |body: &str| -> Vec<String> {
        let list = body
            .split_once("id=\"admins-results\"")
            .expect("the admins list")
            .1;
        let table = &list[..list.find("</table>").unwrap()];
        table
            .split("<tr>")
            .skip(1)
            .filter_map(|row| {
                let cell = row.trim_start().strip_prefix("<td>")?;
                Some(cell[..cell.find("</td>")?].to_owned())
            })
            .collect()
    };

    let everyone = browser.get("/admins");
    assert_eq!(everyone.status, 200, "{}", everyone.body);
    assert!(everyone.body.contains("57 admins."), "{}", everyone.body);
    assert_eq!(listed(&everyone.body)[0], "admin");

    let first = browser.get("/admins?q=Guard");
    assert!(
        first.body.contains("55 admins matching “Guard”"),
        "{}",
        first.body
    );
    let names = listed(&first.body);
    assert_eq!(names.len(), 50);
    assert_eq!(names[0], "guard-00");
    assert_eq!(names[49], "guard-49");
    assert!(
        browser
            .get("/tokens")
            .body
            .contains("<option value=\"guard-54\""),
        "the token form offers every active admin, not only those listed"
    );
    let next = next_href(&first.body).expect("a Next link");
    assert_eq!(next, "/admins?q=Guard&page=2");
    assert_eq!(
        listed(&browser.get(&next).body),
        ["guard-50", "guard-51", "guard-52", "guard-53", "guard-54"]
    );
    assert_eq!(listed(&browser.get("/admins?q=ROO").body), ["root"]);
}

/// The API tokens have a page of their own, newest first, searched by token name and by
/// their admin's username and paged 50 at a time; a token issued there is shown once, a
/// revoked one comes back to the list, and an auditor reads the list without the forms.
#[test]
fn the_tokens_list_searches_names_and_admins_and_pages_fifty_at_a_time() {
    use diesel::prelude::*;
    use gatehouse::store::schema::{admin_users, api_tokens};
    for backend in backends() {
        let app = TestApp::new(backend);
        let mut admin = signed_in(&app, "admin");
        // root's token "tests" (the API client's), then kiosk-bot's, issued now: the newest.
        app.token_for("kiosk-bot", "operator");
        // 55 more of the admin's, older, a minute apart; no secret works for them.
        {
            let mut conn = app.db();
            let owner: i64 = admin_users::table
                .filter(admin_users::username.eq("admin"))
                .select(admin_users::id)
                .first(&mut *conn)
                .unwrap();
            let start = chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
                .unwrap()
                .and_hms_opt(8, 0, 0)
                .unwrap();
            for i in 0..55 {
                diesel::insert_into(api_tokens::table)
                    .values((
                        api_tokens::admin_user_id.eq(owner),
                        api_tokens::name.eq(format!("Sync {i:02}")),
                        api_tokens::token_hash.eq("not a hash"),
                        api_tokens::created_at.eq(start + chrono::Duration::minutes(i)),
                        api_tokens::revoked.eq(false),
                    ))
                    .execute(&mut *conn)
                    .unwrap();
            }
        }
        // Name and admin of each row of the list.
        let rows = |body: &str| -> Vec<(String, String)> {
            let list = body
                .split_once("id=\"tokens-results\"")
                .expect("the tokens list")
                .1;
            let list = &list[..list.find("</div>").unwrap_or(list.len())];
            list.split("<tr>")
                .skip(1)
                .filter_map(|row| {
                    let cells = row.trim_start().strip_prefix("<td>")?;
                    let (name, rest) = cells.split_once("</td><td>")?;
                    let (owner, _) = rest.split_once("</td>")?;
                    Some((name.to_owned(), owner.to_owned()))
                })
                .collect()
        };
        let names = |body: &str| -> Vec<String> { rows(body).into_iter().map(|r| r.0).collect() };

        let everything = admin.get("/tokens");
        assert_eq!(everything.status, 200, "{}", everything.body);
        assert!(
            everything.body.contains("57 tokens."),
            "{}",
            everything.body
        );
        assert!(
            everything.body.contains("<label for=\"q\">Search</label>"),
            "a labelled search box"
        );
        assert_eq!(
            rows(&everything.body)[0],
            ("tests".to_owned(), "kiosk-bot".to_owned()),
            "newest first"
        );
        assert!(
            admin.get("/admins").body.contains("href=\"/tokens\""),
            "the admins page links to the tokens"
        );

        let first = admin.get("/tokens?q=SYNC");
        assert!(
            first.body.contains("55 tokens matching “SYNC”"),
            "{}",
            first.body
        );
        let shown = names(&first.body);
        assert_eq!(shown.len(), 50);
        assert_eq!(shown[0], "Sync 54");
        assert_eq!(shown[49], "Sync 05");
        assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
        let next = next_href(&first.body).expect("a Next link");
        assert_eq!(next, "/tokens?q=SYNC&page=2", "the search is kept");
        let second = admin.get(&next);
        assert_eq!(
            names(&second.body),
            ["Sync 04", "Sync 03", "Sync 02", "Sync 01", "Sync 00"]
        );
        assert!(second.body.contains("rel=\"prev\""), "a Previous link");
        let none = admin.get("/tokens?q=payroll");
        assert!(none.body.contains("0 tokens matching"), "{}", none.body);
        assert!(rows(&none.body).is_empty());

        // Issued from the list's page: the secret is shown on this answer only.
        let page = admin.submit(
            "/tokens",
            "/tokens",
            &[("token_name", "Door display"), ("token_admin", "kiosk-bot")],
        );
        assert_eq!(page.status, 200, "{}", page.body);
        let secret = page
            .body
            .split("<code id=\"issued-token\">")
            .nth(1)
            .expect("the new token, shown once");
        let secret = secret[..secret.find('<').unwrap()].to_owned();
        assert_eq!(app.get_as(Some(&secret), "/api/v1/people").status, 200);
        assert_eq!(
            rows(&page.body)[0],
            ("Door display".to_owned(), "kiosk-bot".to_owned())
        );
        assert!(!admin.get("/tokens").body.contains(&secret), "shown once");
        // Searched by the admin who holds them.
        let kiosk = admin.get("/tokens?q=KIOSK");
        assert!(
            kiosk.body.contains("2 tokens matching “KIOSK”"),
            "{}",
            kiosk.body
        );
        assert_eq!(names(&kiosk.body), ["Door display", "tests"]);

        // Revoked from the list, back to the list.
        let id = app
            .get("/api/v1/tokens")
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "Door display")
            .unwrap()["id"]
            .clone();
        let page = admin.submit("/tokens?q=display", &format!("/tokens/{id}/revoke"), &[]);
        assert_eq!(page.status, 303, "{}", page.body);
        assert_eq!(page.location(), "/tokens");
        assert_eq!(app.get_as(Some(&secret), "/api/v1/people").status, 401);
        assert!(
            admin
                .get("/tokens?q=display")
                .body
                .contains("<span class=\"badge revoked\">revoked</span>")
        );

        // An auditor reads the list, without a way to issue or revoke.
        let mut auditor = signed_in(&app, "auditor");
        let read = auditor.get("/tokens");
        assert_eq!(read.status, 200, "{}", read.body);
        assert!(read.body.contains("58 tokens."), "{}", read.body);
        assert!(!read.body.contains("Issue token"), "no issue form");
        assert!(!read.body.contains("/revoke"), "no Revoke buttons");
        let refused = auditor.submit("/tokens", "/tokens/1/revoke", &[]);
        assert_eq!(refused.status, 403);
        let refused = auditor.submit(
            "/tokens",
            "/tokens",
            &[("token_name", "Mine"), ("token_admin", "auditor")],
        );
        assert_eq!(refused.status, 403);
    }
}

/// One row of the zone tree as drawn: name, depth, whether it is only there for context,
/// and the doors it shows.
#[derive(Debug, PartialEq)]
struct TreeRow {
    name: String,
    depth: usize,
    context: bool,
    doors: Vec<String>,
}

fn tree(body: &str) -> Vec<TreeRow> {
    let results = body
        .split_once("id=\"zones-results\"")
        .expect("the zone tree")
        .1;
    let tbody = &results[results.find("<tbody>").unwrap()..results.find("</tbody>").unwrap()];
    tbody
        .split("<tr")
        .skip(1)
        .map(|row| {
            let depth = row.split_once("class=\"depth-").unwrap().1[..1]
                .parse()
                .unwrap();
            TreeRow {
                name: linked(row, "<a href=\"/zones/").remove(0),
                depth,
                context: row.starts_with(" class=\"context\""),
                doors: linked(row, "<a href=\"/doors/"),
            }
        })
        .collect()
}

fn row(name: &str, depth: usize, context: bool, doors: &[&str]) -> TreeRow {
    TreeRow {
        name: name.to_owned(),
        depth,
        context,
        doors: doors.iter().map(|d| (*d).to_owned()).collect(),
    }
}

/// A search of the zone tree keeps the zones and doors whose names match, each below the
/// zones it lies in (marked as context), and nothing else: a zone that matches shows all
/// its doors, a zone shown for a matching door shows that door.
#[test]
fn the_zone_tree_is_searched_keeping_each_match_below_its_zones() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let annex = app.create("zones", json!({"site_id": f.site, "name": "Annex"}));
    app.create("doors", json!({"zone_id": annex, "name": "Annex Door"}));
    let bay = app.create(
        "zones",
        json!({"site_id": f.site, "name": "Loading Bay", "parent_id": annex}),
    );
    app.create("doors", json!({"zone_id": bay, "name": "Dock Door"}));
    app.create("doors", json!({"zone_id": bay, "name": "Bay Shutter"}));
    let mut browser = signed_in(&app, "auditor");

    let whole = browser.get("/zones");
    assert_eq!(whole.status, 200, "{}", whole.body);
    assert_eq!(
        tree(&whole.body),
        [
            row("Annex", 0, false, &["Annex Door"]),
            row("Loading Bay", 1, false, &["Bay Shutter", "Dock Door"]),
            row("Building", 0, false, &["Main Entrance"]),
            row("Server Room", 1, false, &["Server Room Door"]),
        ]
    );
    assert!(
        whole
            .body
            .contains("<form class=\"filters\" method=\"get\" action=\"/zones\""),
        "a search that works without script"
    );

    let server = browser.get("/zones?q=SERVER");
    assert_eq!(
        tree(&server.body),
        [
            row("Building", 0, true, &[]),
            row("Server Room", 1, false, &["Server Room Door"]),
        ]
    );
    assert!(
        server.body.contains("1 zone and 1 door matching “SERVER”"),
        "{}",
        server.body
    );
    assert!(server.body.contains("holds a match"));

    // A door alone: its zone shows it (not the other door there), below the zone above.
    let dock = browser.get("/zones?q=dock");
    assert_eq!(
        tree(&dock.body),
        [
            row("Annex", 0, true, &[]),
            row("Loading Bay", 1, false, &["Dock Door"]),
        ]
    );
    assert!(dock.body.contains("0 zones and 1 door matching"));

    // A zone that matches shows all its doors; the zones inside it are not matches.
    let annex_search = browser.get("/zones?q=annex");
    assert_eq!(
        tree(&annex_search.body),
        [row("Annex", 0, false, &["Annex Door"])]
    );

    let nothing = browser.get("/zones?q=nowhere");
    assert!(tree(&nothing.body).is_empty());
    assert!(nothing.body.contains("0 zones and 0 doors matching"));
    assert!(nothing.body.contains("Show every zone"));
}

/// Whether the Why? page answers "may Ada (E1) open this door then" with a grant.
fn why_grants(browser: &mut crate::console::Browser<'_>, door: i64, when: &str) -> bool {
    let page = browser.get(&format!("/why?person=E1&door={door}&when={when}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("class=\"verdict granted\"")
            || page.body.contains("class=\"verdict denied\""),
        "{}",
        page.body
    );
    page.body.contains("class=\"verdict granted\"")
}

/// The message beside the door page's zone field.
fn zone_error(body: &str) -> String {
    let rest = body
        .split_once("<p class=\"field-error\" id=\"zone_id-error\">")
        .unwrap_or_else(|| panic!("no message beside the zone field in {body}"))
        .1;
    rest[..rest.find("</p>").unwrap()].to_owned()
}

/// A door is moved to another zone of its site on its page: the move is in the audit log
/// with the zone before and after, and the next decision follows it (a level that opens
/// the new zone opens the door).
#[test]
fn a_door_moves_to_another_zone_of_its_site_audited_and_in_force_at_once() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let side = app.create("doors", json!({"zone_id": f.building, "name": "Side Door"}));
    let team = app.create(
        "access-levels",
        json!({"name": "Server room team", "items": [{"zone_id": f.server_room, "schedule_id": f.business_hours}]}),
    );
    app.create(
        "entitlements",
        json!({"person_id": f.person, "level_id": team, "justification": "on call"}),
    );
    let mut operator = signed_in(&app, "operator");
    // 2026-11-23 is a Monday: business hours at the site.
    let monday_10 = "2026-11-23T10:00";
    assert!(
        !why_grants(&mut operator, side, monday_10),
        "not in the zone yet"
    );

    let door_page = format!("/doors/{side}");
    let page = operator.get(&door_page);
    let fields: Vec<(String, String)> =
        crate::console::form_fields(&page.body, &format!("/doors/{side}/zone"))
            .into_iter()
            .filter(|(name, _)| name != "csrf")
            .collect();
    assert_eq!(
        fields,
        [("zone_id".to_owned(), f.building.to_string())],
        "the zone form starts at the door's zone"
    );
    assert!(page.body.contains("<label for=\"zone_id\">Zone</label>"));
    assert!(
        page.body.contains(">Building › Server Room</option>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("zone_id-hint"),
        "one site: nothing to say about other sites"
    );

    let moved = operator.submit(
        &door_page,
        &format!("/doors/{side}/zone"),
        &[("zone_id", &f.server_room.to_string())],
    );
    assert_eq!(moved.status, 303, "{}", moved.body);
    assert_eq!(moved.location(), door_page);
    let shown = operator.get(&door_page).body;
    assert!(
        shown.contains("<dt>Zone</dt><dd>Server Room</dd>"),
        "{shown}"
    );
    assert_eq!(
        app.state.live.snapshot().door(side).unwrap().zone_id,
        f.server_room,
        "the live policy has the door in its new zone"
    );
    assert!(
        why_grants(&mut operator, side, monday_10),
        "the level that opens the server room opens the door it now holds"
    );

    let audit = app.get("/api/v1/audit?entity=door&limit=1").body;
    let entry = &audit[0];
    assert_eq!(entry["actor"], "operator");
    assert_eq!(entry["action"], "update");
    assert_eq!(entry["summary"], "update door 'Side Door'");
    assert_eq!(entry["before"]["zone_id"], f.building);
    assert_eq!(entry["after"]["zone_id"], f.server_room);
    // The zone tree shows it there too.
    assert!(
        operator
            .get("/zones?q=side")
            .body
            .contains(&format!("<a href=\"/doors/{side}\">Side Door</a>"))
    );
}

/// A move to a zone of another site, to a zone that does not exist, or with no zone is
/// refused with a message beside the zone field, changes nothing and writes no audit
/// entry; an auditor cannot move a door at all.
#[test]
fn a_door_is_not_moved_to_another_site_or_an_unknown_zone() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let branch = app.create(
        "sites",
        json!({"name": "Branch", "timezone": "Europe/London"}),
    );
    let lobby = app.create("zones", json!({"site_id": branch, "name": "Branch Lobby"}));
    let mut admin = signed_in(&app, "admin");
    let door_page = format!("/doors/{}", f.main_door);
    let action = format!("/doors/{}/zone", f.main_door);
    let audit_entries = || {
        app.get("/api/v1/audit?limit=1000")
            .body
            .as_array()
            .unwrap()
            .len()
    };
    let before = audit_entries();

    let page = admin.get(&door_page);
    assert!(
        !page.body.contains(">Branch Lobby</option>"),
        "the form offers only the door's site's zones"
    );
    assert!(
        page.body
            .contains("a door moves to another site in the site file or the API"),
        "{}",
        page.body
    );

    let refused = admin.submit(&door_page, &action, &[("zone_id", &lobby.to_string())]);
    assert_eq!(refused.status, 422, "{}", refused.body);
    let message = zone_error(&refused.body);
    assert!(
        message.contains("Branch Lobby is at Branch, and Main Entrance is at HQ"),
        "{message}"
    );
    assert!(message.contains("site file or the API"), "{message}");
    assert!(refused.body.contains("aria-invalid=\"true\""));

    let unknown = admin.submit(&door_page, &action, &[("zone_id", "999999")]);
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert_eq!(zone_error(&unknown.body), "zone 999999 does not exist");

    let garbled = admin.submit(&door_page, &action, &[("zone_id", "lobby")]);
    assert_eq!(garbled.status, 422, "{}", garbled.body);
    assert_eq!(zone_error(&garbled.body), "choose a zone from the list");

    assert_eq!(
        app.get(&format!("/api/v1/doors/{}", f.main_door)).body["zone_id"],
        f.building
    );
    assert_eq!(
        audit_entries(),
        before,
        "nothing refused is in the audit log"
    );

    let mut auditor = signed_in(&app, "auditor");
    assert!(
        !auditor.get(&door_page).body.contains(&action),
        "an auditor sees no zone form"
    );
    let forbidden = auditor.submit(
        &door_page,
        &action,
        &[("zone_id", &f.server_room.to_string())],
    );
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        app.get(&format!("/api/v1/doors/{}", f.main_door)).body["zone_id"],
        f.building
    );
}

/// How many entries the audit log holds.
fn audit_entries(app: &TestApp) -> usize {
    app.get("/api/v1/audit?limit=1000")
        .body
        .as_array()
        .unwrap()
        .len()
}

/// Posts the form to `action` on the page at `page` as the page drew it, changing
/// `changes` (field, value) and adding those it lacks.
fn post_as_drawn(
    browser: &mut crate::console::Browser<'_>,
    page: &str,
    action: &str,
    changes: &[(&str, &str)],
) -> crate::console::Page {
    let html = browser.get(page).body;
    let mut fields: Vec<(String, String)> = crate::console::form_fields(&html, action)
        .into_iter()
        .filter(|(name, _)| name != "csrf")
        .collect();
    for (name, value) in changes {
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = (*value).to_owned(),
            None => fields.push(((*name).to_owned(), (*value).to_owned())),
        }
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.submit(page, action, &fields)
}

/// Saves the form to `action` on `page` unchanged: the browser lands on `lands`, told
/// that nothing changed, which says so; the audit log has nothing new.
fn saved_unchanged(
    app: &TestApp,
    browser: &mut crate::console::Browser<'_>,
    (page, action, lands): (&str, &str, &str),
    changes: &[(&str, &str)],
) {
    let before = audit_entries(app);
    let saved = post_as_drawn(browser, page, action, changes);
    assert_eq!(saved.status, 303, "{action}: {}", saved.body);
    assert_eq!(saved.location(), lands, "{action}");
    let landed = browser.get(saved.location());
    assert_eq!(landed.status, 200);
    assert!(
        landed
            .body
            .contains("<p class=\"notice unchanged\" role=\"status\">Nothing changed"),
        "{action}: {}",
        landed.body
    );
    assert_eq!(
        audit_entries(app),
        before,
        "{action}: an unchanged save is not audited"
    );
    assert!(
        !browser.get(lands).body.contains("Nothing changed"),
        "{action}: the page says it only right after the save"
    );
}

/// Every console form that replaces something (a zone, a schedule, an access level's
/// doors, a door's mode and zone, a person and their status), saved with nothing
/// changed, writes no audit entry and says "Nothing changed"; a real change after it is
/// saved and audited as before.
#[test]
fn a_save_that_changes_nothing_writes_no_audit_entry_and_says_nothing_changed() {
    let app = TestApp::new(Backend::Sqlite);
    let f = build_site(&app);
    let mut admin = signed_in(&app, "admin");

    let zone = format!("/zones/{}", f.server_room);
    let edit = format!("{zone}/edit");
    saved_unchanged(&app, &mut admin, (&zone, &edit, &zone), &[]);

    let schedule = format!("/schedules/{}", f.business_hours);
    let edit = format!("{schedule}/edit");
    saved_unchanged(&app, &mut admin, (&schedule, &edit, &schedule), &[]);

    // Adding a door the level already opens during that schedule changes nothing.
    let level = format!("/levels/{}", f.staff_level);
    let add = format!("{level}/items");
    let (door, hours) = (
        format!("door:{}", f.main_door),
        f.business_hours.to_string(),
    );
    saved_unchanged(
        &app,
        &mut admin,
        (&level, &add, &level),
        &[("target", &door), ("schedule_id", &hours)],
    );
    let items = &app
        .get(&format!("/api/v1/access-levels/{}", f.staff_level))
        .body["items"];
    assert_eq!(
        items.as_array().unwrap().len(),
        1,
        "the door is not named twice"
    );

    let door_page = format!("/doors/{}", f.main_door);
    for form in ["mode", "zone"] {
        let action = format!("{door_page}/{form}");
        saved_unchanged(&app, &mut admin, (&door_page, &action, &door_page), &[]);
    }

    // The edit form has a page of its own; the save lands on the person's page.
    let person = format!("/people/{}", f.person);
    let edit = format!("{person}/edit");
    saved_unchanged(&app, &mut admin, (&edit, &edit, &person), &[]);

    // Suspending someone already suspended (a page left open in another tab).
    let suspend = format!("{person}/suspend");
    let suspended = admin.submit(&person, &suspend, &[]);
    assert_eq!(
        suspended.location(),
        person,
        "the first suspend changes something"
    );
    let before = audit_entries(&app);
    let again = admin.submit(&person, &suspend, &[]);
    assert_eq!(again.location(), person);
    assert!(admin.get(again.location()).body.contains("Nothing changed"));
    assert_eq!(audit_entries(&app), before);

    // A real change is saved and audited as before, and says nothing of the kind.
    let before = audit_entries(&app);
    let zone_edit = format!("{zone}/edit");
    let renamed = post_as_drawn(&mut admin, &zone, &zone_edit, &[("name", "Server Hall")]);
    assert_eq!(renamed.status, 303, "{}", renamed.body);
    assert_eq!(renamed.location(), zone);
    assert_eq!(audit_entries(&app), before + 1);
    assert!(!admin.get(&zone).body.contains("Nothing changed"));
    let entry = &app.get("/api/v1/audit?entity=zone&limit=1").body[0];
    assert_eq!(entry["summary"], "update zone 'Server Hall'");
}
