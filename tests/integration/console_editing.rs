//! The console's remaining lists and forms, as a browser without JavaScript uses them:
//! schedules and admins searched and paged, the zone tree searched.

use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::app::{Backend, TestApp, build_site};
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
/// schedule draws its week); the holidays below it stay whatever the search.
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
    assert!(
        business.body.contains("Christmas Day"),
        "holidays are listed whatever the search"
    );
    let none = browser.get("/schedules?q=nightwatch");
    assert!(none.body.contains("0 schedules matching"), "{}", none.body);
    assert!(names(&none.body).is_empty());
}

/// The admins list is searched by username and paged 50 at a time; whoever is not on the
/// page shown can still be given a token.
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
        first.body.contains("<option value=\"guard-54\""),
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
