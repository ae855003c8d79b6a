//! The audit log records every admin change with before and after, and `verify` finds any
//! entry that was edited, inserted or deleted behind the appliance's back.

use diesel::connection::SimpleConnection;
use gatehouse::audit;
use serde_json::json;

use crate::app::{TestApp, backends, build_site};

#[test]
fn every_change_is_recorded_with_before_and_after() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    app.put(
        &format!("/api/v1/people/{}", f.person),
        json!({"employee_id": "E1", "name": "Ada King", "status": "suspended"}),
    );
    let entries = app.get("/api/v1/audit?entity=person&limit=1");
    let newest = &entries.body[0];
    assert_eq!(newest["actor"], "root");
    assert_eq!(newest["action"], "update");
    assert_eq!(newest["before"]["name"], "Ada Lovelace");
    assert_eq!(newest["after"]["name"], "Ada King");
    assert_eq!(newest["after"]["status"], "suspended");
    // Creating an admin and a token is audited too, without their secrets.
    let all = app.get("/api/v1/audit?limit=1000").body;
    let text = all.to_string();
    assert!(text.contains("create admin 'root'"), "{text}");
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "no secrets in the audit log"
    );
    let report = app.get("/api/v1/audit/verify").body;
    assert_eq!(report["problems"], json!([]));
    assert_eq!(report["entries"], all.as_array().unwrap().len());
}

#[test]
fn verify_names_edited_and_deleted_entries() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        let mut conn = app.db();
        let before = audit::verify(&mut conn).unwrap();
        assert!(before.is_intact(), "{:?}", before.problems);
        assert!(before.entries >= 10);
        // Someone edits entry 4 to hide what was done.
        conn.batch_execute("UPDATE audit_log SET summary = 'nothing happened' WHERE seq = 4")
            .unwrap();
        let report = audit::verify(&mut conn).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].seq, 4);
        assert!(report.problems[0].problem.contains("edited"));
        // Someone deletes entry 7.
        conn.batch_execute("DELETE FROM audit_log WHERE seq = 7")
            .unwrap();
        let report = audit::verify(&mut conn).unwrap();
        let seqs: Vec<i64> = report.problems.iter().map(|p| p.seq).collect();
        assert!(
            seqs.contains(&4) && seqs.contains(&8),
            "{:?}",
            report.problems
        );
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.problem.contains("7 to 7 are missing")),
            "{:?}",
            report.problems
        );
    }
}

#[test]
fn a_forged_entry_with_a_recomputed_hash_still_breaks_the_chain() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    build_site(&app);
    let mut conn = app.db();
    // Insert a fake entry between 2 and 3 by renumbering: the link of the next entry breaks.
    conn.batch_execute(
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 3; \
         UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1003; \
         INSERT INTO audit_log (seq, at, actor, action, entity, entity_id, summary, prev_hash, hash) \
         SELECT 3, at, 'root', 'delete', 'person', '1', 'forged', hash, hash FROM audit_log WHERE seq = 2;",
    )
    .unwrap();
    let report = audit::verify(&mut conn).unwrap();
    let seqs: Vec<i64> = report.problems.iter().map(|p| p.seq).collect();
    assert!(seqs.contains(&3), "the forged entry: {:?}", report.problems);
    assert!(
        seqs.contains(&4),
        "the entry after it no longer links: {:?}",
        report.problems
    );
}
