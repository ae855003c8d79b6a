//! Provenance of every change as an auditor reads it on the audit page and API (who asked,
//! who approved, through what), API token scopes, and tampering with provenance caught by
//! `audit verify`.

use diesel::connection::SimpleConnection;
use gatehouse::store::audit;
use serde_json::{Value, json};

use crate::app::{Backend, TestApp, backends, build_site};
use crate::console::signed_in;

/// The newest audit entry about `entity`, as the API shows it.
fn newest(app: &TestApp, entity: &str) -> Value {
    let entries = app.get(&format!("/api/v1/audit?entity={entity}&limit=1"));
    assert_eq!(entries.status, 200, "{}", entries.body);
    entries.body[0].clone()
}

/// What an entry says of its provenance, with the summary it belongs to.
fn provenance(entry: &Value) -> Value {
    json!({
        "summary": entry["summary"],
        "actor": entry["actor"],
        "requested_by": entry["requested_by"],
        "approved_by": entry["approved_by"],
        "via": entry["via"],
    })
}

/// Runs `gatehouse ARGS` on the appliance as the OS user alice (under sudo, as root).
fn as_alice(app: &TestApp, args: &[&str]) -> String {
    let out = app.command(args, &[("SUDO_USER", "alice"), ("USER", "root")]);
    assert!(
        out.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_change_records_who_asked_and_through_what_on_every_way_in() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let mut seen = Vec::new();

        // Through the API, with root's token: the token, and the admin it acts for.
        let r = app.put(
            &format!("/api/v1/people/{}", f.person),
            json!({"employee_id": "E1", "name": "Ada King"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        seen.push(provenance(&newest(&app, "person")));

        // Through the console, signed in as an operator.
        let mut browser = signed_in(&app, "operator");
        let person_page = format!("/people/{}", f.person);
        let page = browser.submit(&person_page, &format!("/people/{}/suspend", f.person), &[]);
        assert_eq!(page.status, 303, "{}", page.body);
        seen.push(provenance(&newest(&app, "person")));

        // Through the CLI, by the OS user who ran it.
        let issued = as_alice(
            &app,
            &[
                "admin",
                "token",
                "create",
                "root",
                "--name",
                "nightly",
                "--scope",
                "read_only",
            ],
        );
        assert!(issued.trim().starts_with("gh_"), "{issued}");
        seen.push(provenance(&newest(&app, "api_token")));

        // Through an import: the file, and who ran it.
        let csv = app.state.config.data_dir.join("people.csv");
        std::fs::write(
            &csv,
            "employee_id,name,department,title,manager_employee_id,person_type,status,valid_from,valid_until\n\
             E77,Grace Hopper,Navy,,,employee,active,,\n",
        )
        .unwrap();
        let csv_path = csv.display().to_string();
        as_alice(&app, &["import", "--people", &csv_path]);
        seen.push(provenance(&newest(&app, "person")));
        seen.push(provenance(&newest(&app, "site_file")));

        let data_dir = app.state.config.data_dir.display().to_string();
        let seen = serde_json::to_string_pretty(&seen)
            .unwrap()
            .replace(&data_dir, "[data]");
        insta::assert_snapshot!("provenance_of_each_way_in", seen);

        // The audit page reads the same, in words.
        let audit_page = browser.get("/audit");
        assert_eq!(audit_page.status, 200);
        let rows: Vec<&str> = audit_page
            .body
            .split("<tr>")
            .filter(|row| row.contains("<td>"))
            .collect();
        let row_of = |parts: &[&str]| {
            rows.iter()
                .find(|row| parts.iter().all(|part| row.contains(part)))
                .unwrap_or_else(|| panic!("no row with {parts:?} in {}", audit_page.body))
                .to_owned()
        };
        let api = row_of(&["update person E1", "Ada Lovelace"]);
        assert!(
            api.contains("(#1) of admin root</td>") && api.contains("<td>API</td>"),
            "{api}"
        );
        let console = row_of(&["update person E1", "suspended"]);
        assert!(
            console.contains("<td>admin operator</td>") && console.contains("<td>console</td>"),
            "{console}"
        );
        let cli = row_of(&["nightly"]);
        assert!(
            cli.contains("<td>CLI user alice</td>") && cli.contains("<td>CLI</td>"),
            "{cli}"
        );
        let import = row_of(&["create person E77"]);
        assert!(
            import.contains("<td>CLI user alice</td>")
                && import.contains(&format!("<td>import of {csv_path}</td>")),
            "{import}"
        );
        assert!(
            import.contains("not needed"),
            "no approval was needed: {import}"
        );
    }
}

#[test]
fn a_read_only_token_reads_everything_and_changes_nothing() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let issued = app.post(
            "/api/v1/tokens",
            json!({"username": "root", "name": "reporting", "scope": "read_only"}),
        );
        assert_eq!(issued.status, 201, "{}", issued.body);
        assert_eq!(issued.body["scope"], "read_only");
        let reader = issued.body["token"].as_str().unwrap().to_owned();
        let reader_id = issued.body["id"].as_i64().unwrap();
        assert!(
            newest(&app, "api_token")["summary"]
                .as_str()
                .unwrap()
                .contains("issue read-only token 'reporting'"),
            "the scope is on the audit log"
        );

        // Every GET, the event stream included.
        let person = format!("/api/v1/people/{}", f.person);
        for path in [
            "/api/v1/people",
            person.as_str(),
            "/api/v1/doors",
            "/api/v1/events",
            "/api/v1/readers/health",
            "/api/v1/audit",
            "/api/v1/audit/verify",
            "/api/v1/tokens",
            "/api/v1/admin-users",
            "/api/v1/explain?employee_id=E1&door=Main%20Entrance",
        ] {
            let r = app.get_as(Some(&reader), path);
            assert_eq!(r.status, 200, "GET {path}: {}", r.body);
        }
        let stream = app
            .agent_config()
            .build()
            .new_agent()
            .get(&app.url("/api/v1/events/stream"))
            .header("Authorization", &format!("Bearer {reader}"))
            .call()
            .unwrap();
        assert_eq!(stream.status().as_u16(), 200);
        drop(stream);

        // No change, of any kind.
        let head_before = audit::head(&mut app.db()).unwrap();
        let refused = [
            (
                "POST",
                "/api/v1/people".to_owned(),
                json!({"employee_id": "E9", "name": "Nobody"}),
            ),
            (
                "PUT",
                person.clone(),
                json!({"employee_id": "E1", "name": "Changed"}),
            ),
            ("DELETE", person.clone(), Value::Null),
            (
                "POST",
                "/api/v1/tokens".to_owned(),
                json!({"username": "root", "name": "more"}),
            ),
            ("DELETE", format!("/api/v1/tokens/{reader_id}"), Value::Null),
            (
                "POST",
                "/api/v1/admin-users".to_owned(),
                json!({"username": "eve", "password": "a long enough password", "role": "admin"}),
            ),
        ];
        for (method, path, body) in refused {
            let r = app.send_as(Some(&reader), method, &path, &body);
            assert_eq!(r.status, 403, "{method} {path}: {}", r.body);
            assert_eq!(r.body["scope"], "read_only", "{method} {path}: {}", r.body);
            let error = r.body["error"].as_str().unwrap();
            assert!(
                error.contains("scope is read_only") && error.contains("scope full"),
                "{error}"
            );
        }
        assert_eq!(
            audit::head(&mut app.db()).unwrap(),
            head_before,
            "nothing was changed or audited"
        );
        let ada = app.get(&person).body;
        assert_eq!(ada["name"], "Ada Lovelace");
        assert_eq!(app.get("/api/v1/people").body["total"], 1);
        assert_eq!(
            app.get_as(Some(&reader), &person).status,
            200,
            "the token still works"
        );

        // A full token stays within its admin's role: an operator's cannot manage tokens.
        let operator = app.token_for("olga", "operator");
        let r = app.send_as(
            Some(&operator),
            "POST",
            "/api/v1/tokens",
            &json!({"username": "olga", "name": "mine"}),
        );
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .contains("role (operator)")
        );
        assert_eq!(r.body.get("scope"), None);
        let r = app.send_as(
            Some(&operator),
            "PUT",
            &person,
            &json!({"employee_id": "E1", "name": "Ada King"}),
        );
        assert_eq!(r.status, 200, "an operator's full token changes policy");

        // Tokens are listed with their scope; those from before scopes are full.
        let tokens = app.get("/api/v1/tokens").body;
        let scope_of = |name: &str| {
            tokens
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .map(|t| t["scope"].clone())
        };
        assert_eq!(scope_of("reporting"), Some(json!("read_only")));
        assert_eq!(scope_of("tests"), Some(json!("full")));
    }
}

#[test]
fn the_console_issues_tokens_with_a_scope_and_lists_it() {
    let app = TestApp::new(Backend::Sqlite);
    let mut browser = signed_in(&app, "admin");
    let form = browser.get("/tokens");
    assert!(
        form.body
            .contains("<option value=\"read_only\" selected>read-only"),
        "a new token reads only unless full is chosen: {}",
        form.body
    );
    let page = browser.submit(
        "/tokens",
        "/tokens",
        &[
            ("token_name", "dashboard wall"),
            ("token_admin", "admin"),
            ("token_scope", "read_only"),
            ("token_expires", ""),
        ],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("(read-only) is issued"), "{}", page.body);
    let token = page
        .body
        .split("<code id=\"issued-token\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let row = page
        .body
        .split("<tr>")
        .find(|row| row.contains("<td>dashboard wall</td>"))
        .unwrap();
    assert!(row.contains("<td>read-only</td>"), "{row}");
    let r = app.send_as(
        Some(&token),
        "POST",
        "/api/v1/people",
        &json!({"employee_id": "E9", "name": "Nobody"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(app.get_as(Some(&token), "/api/v1/people").status, 200);

    let full = browser.submit(
        "/tokens",
        "/tokens",
        &[
            ("token_name", "hr sync"),
            ("token_admin", "admin"),
            ("token_scope", "full"),
        ],
    );
    assert!(full.body.contains("(full) is issued"), "{}", full.body);
    // A scope the form does not offer is refused beside the field.
    let bad = browser.submit(
        "/tokens",
        "/tokens",
        &[
            ("token_name", "odd"),
            ("token_admin", "admin"),
            ("token_scope", "scim"),
        ],
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(
        bad.body
            .contains("is not a token scope; use read_only or full"),
        "{}",
        bad.body
    );
}

#[test]
fn tampering_with_provenance_breaks_audit_verify() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        let mut conn = app.db();
        let report = audit::verify(&mut conn).unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        // A token's change made to look like a CLI user's; a file that was not imported; an
        // approval that was never given; an entry relabelled as hashed before provenance.
        conn.batch_execute(
            "UPDATE audit_log SET requested_by_kind = 'cli_user', requested_by_id = NULL, \
             requested_by_name = 'alice' WHERE seq = 4; \
             UPDATE audit_log SET via = 'import', via_detail = 'hr.csv' WHERE seq = 5; \
             UPDATE audit_log SET approved_by_id = 1, approved_by_name = 'root' WHERE seq = 6; \
             UPDATE audit_log SET hash_version = 1 WHERE seq = 7; \
             UPDATE audit_log SET hash_version = 3 WHERE seq = 8",
        )
        .unwrap();
        let report = audit::verify(&mut conn).unwrap();
        let problems: Vec<(i64, &str)> = report
            .problems
            .iter()
            .map(|p| (p.seq, p.problem.as_str()))
            .collect();
        let edited = "its content does not match its keyed hash (the entry was edited, or \
                      written by someone without the appliance key)";
        assert_eq!(
            problems,
            vec![
                (4, edited),
                (5, edited),
                (6, edited),
                (7, edited),
                (
                    8,
                    "is hashed as version 3, which this appliance does not know (a newer \
                     version wrote it, or it was edited)"
                ),
            ]
        );
        // `gatehouse audit verify` says so too, and fails.
        let out = app.command(&["audit", "verify"], &[]);
        assert_eq!(out.status.code(), Some(1));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("entry #4: its content does not match"),
            "{said}"
        );
    }
}
