//! The audit log records every admin change with before and after, and `verify` finds any
//! entry that was edited, inserted or deleted behind the appliance's back.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use gatehouse::store::audit;
use gatehouse::store::rows::AuditRow;
use gatehouse::store::schema::audit_log;
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

/// The entry's hash as someone who can read the code and holds the appliance key (the
/// worst case: the database and the data folder both in hand) computes it: HMAC-SHA256,
/// under the key's audit subkey, over a JSON array of its fields and the previous entry's
/// hash (what `audit::append` does), with the provenance columns from version 2 on. An
/// entry forged without the key is caught by its own hash: `append_without_the_key`.
fn recomputed_hash(row: &AuditRow) -> String {
    let at = row.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let p = &row.provenance;
    let canonical = match row.hash_version {
        1 => json!([
            row.seq,
            at,
            row.actor,
            row.action,
            row.entity,
            row.entity_id,
            row.summary,
            row.before_json,
            row.after_json,
            row.prev_hash,
        ]),
        2 => json!([
            2,
            row.seq,
            at,
            row.actor,
            row.action,
            row.entity,
            row.entity_id,
            row.summary,
            row.before_json,
            row.after_json,
            p.requested_by_kind,
            p.requested_by_id,
            p.requested_by_name,
            p.on_behalf_of_id,
            p.on_behalf_of_name,
            p.approved_by_id,
            p.approved_by_name,
            p.via,
            p.via_detail,
            row.prev_hash,
        ]),
        other => panic!("hash version {other}"),
    };
    let key = gatehouse::identity::appliance_key::installed().expect("the test appliance's key");
    hex::encode(gatehouse::identity::appliance_key::hmac_sha256(
        key.audit_mac_key(),
        canonical.to_string().as_bytes(),
    ))
}

fn entry(conn: &mut gatehouse::store::DbConnection, seq: i64) -> AuditRow {
    audit_log::table
        .filter(audit_log::seq.eq(seq))
        .select(AuditRow::as_select())
        .first(conn)
        .unwrap()
}

/// Someone who can write the database edits an entry and stores the hash of the edited
/// content, or inserts an entry with a hash of its own that links to the one before: the
/// forged entry matches its hash, but the entry after it no longer links to it.
#[test]
fn a_forged_entry_with_a_recomputed_hash_still_breaks_the_chain() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        let mut conn = app.db();
        let mut edited = entry(&mut conn, 4);
        assert_eq!(
            recomputed_hash(&edited),
            edited.hash,
            "the forger computes the appliance's own hash"
        );
        edited.summary = "nothing happened".to_owned();
        edited.hash = recomputed_hash(&edited);
        diesel::update(audit_log::table.filter(audit_log::seq.eq(4)))
            .set((
                audit_log::summary.eq(&edited.summary),
                audit_log::hash.eq(&edited.hash),
            ))
            .execute(&mut conn)
            .unwrap();
        let report = audit::verify(&mut conn).unwrap();
        assert_eq!(
            report.problems,
            vec![audit::ChainProblem {
                seq: 5,
                problem: "does not link to the entry before it (an entry was inserted or deleted before it)".to_owned(),
            }],
            "the edited entry matches its new hash; the one after it gives it away"
        );

        // An entry inserted between 7 and 8, linked to 7 and hashed as the appliance would.
        conn.batch_execute("UPDATE audit_log SET seq = seq + 100000 WHERE seq >= 8")
            .unwrap();
        conn.batch_execute("UPDATE audit_log SET seq = seq - 99999 WHERE seq >= 100008")
            .unwrap();
        let seventh = entry(&mut conn, 7);
        let mut forged = seventh.clone();
        forged.seq = 8;
        forged.action = "delete".to_owned();
        forged.summary = "forged".to_owned();
        forged.prev_hash = seventh.hash.clone();
        forged.hash = recomputed_hash(&forged);
        diesel::insert_into(audit_log::table)
            .values((
                audit_log::seq.eq(forged.seq),
                audit_log::at.eq(forged.at),
                audit_log::actor.eq(&forged.actor),
                audit_log::action.eq(&forged.action),
                audit_log::entity.eq(&forged.entity),
                audit_log::entity_id.eq(&forged.entity_id),
                audit_log::summary.eq(&forged.summary),
                audit_log::before_json.eq(&forged.before_json),
                audit_log::after_json.eq(&forged.after_json),
                audit_log::prev_hash.eq(&forged.prev_hash),
                audit_log::hash.eq(&forged.hash),
                audit_log::keyed.eq(true),
                audit_log::hash_version.eq(forged.hash_version),
                forged.provenance.clone(),
            ))
            .execute(&mut conn)
            .unwrap();
        let report = audit::verify(&mut conn).unwrap();
        let at = |seq: i64| -> Vec<&str> {
            report
                .problems
                .iter()
                .filter(|p| p.seq == seq)
                .map(|p| p.problem.as_str())
                .collect()
        };
        assert_eq!(
            at(8),
            Vec::<&str>::new(),
            "the forged entry is valid in itself"
        );
        assert!(
            at(9).iter().any(|p| p.contains("does not link")),
            "the entry after the forged one no longer links: {:?}",
            report.problems
        );
    }
}

/// Inserts an entry after the head as someone who can write the database but has no
/// appliance key would: linked to the head, its hash SHA-256 over its fields as the chain
/// was hashed before it was keyed and before provenance (hash version 1, its provenance
/// as the migration that added it derived it from the actor). `keyed` is what the row
/// claims.
fn append_without_the_key(conn: &mut gatehouse::store::DbConnection, seq: i64, keyed: bool) {
    use diesel::prelude::*;
    use gatehouse::store::schema::audit_log;
    use sha2::Digest;
    let prev: String = audit_log::table
        .filter(audit_log::seq.eq(seq - 1))
        .select(audit_log::hash)
        .first(conn)
        .unwrap_or_else(|_| audit::GENESIS_HASH.to_owned());
    // Stored times keep microseconds.
    let at = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now().naive_utc(), 6);
    let canonical = json!([
        seq,
        at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "root",
        "delete",
        "person",
        "1",
        "forged",
        null,
        null,
        prev
    ]);
    let hash = hex::encode(sha2::Sha256::digest(canonical.to_string().as_bytes()));
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::seq.eq(seq),
            audit_log::at.eq(at),
            audit_log::actor.eq("root"),
            audit_log::action.eq("delete"),
            audit_log::entity.eq("person"),
            audit_log::entity_id.eq(Some("1")),
            audit_log::summary.eq("forged"),
            audit_log::prev_hash.eq(&prev),
            audit_log::hash.eq(&hash),
            audit_log::keyed.eq(keyed),
            audit_log::requested_by_name.eq("root"),
        ))
        .execute(conn)
        .unwrap();
}

#[test]
fn an_entry_appended_without_the_appliance_key_fails_verification() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        let mut conn = app.db();
        let before = audit::verify(&mut conn).unwrap();
        assert!(before.is_intact(), "{:?}", before.problems);
        assert_eq!(
            before.keyed_from,
            Some(1),
            "a new appliance keys from the start"
        );
        let next = before.head_seq + 1;
        // Claiming to be an entry from before the chain was keyed does not help.
        append_without_the_key(&mut conn, next, false);
        let report = audit::verify(&mut conn).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].seq, next);
        assert!(
            report.problems[0]
                .problem
                .contains("without the appliance key"),
            "{:?}",
            report.problems
        );
        // Nor does claiming to be keyed.
        conn.batch_execute(&format!(
            "UPDATE audit_log SET keyed = TRUE WHERE seq = {next}"
        ))
        .unwrap();
        let report = audit::verify(&mut conn).unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(
            report.problems[0].problem.contains("keyed hash"),
            "{:?}",
            report.problems
        );
    }
}

#[test]
fn entries_from_before_the_chain_was_keyed_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let pool = gatehouse::store::open(
        &format!("sqlite://{}", dir.path().join("g.db").display()),
        2,
    )
    .unwrap();
    let mut conn = pool.get().unwrap();
    gatehouse::store::migrate(&mut conn).unwrap();
    // Two entries as the appliance wrote them before the chain was keyed, as the migration
    // leaves them (keyed false).
    append_without_the_key(&mut conn, 1, false);
    append_without_the_key(&mut conn, 2, false);
    let key = gatehouse::identity::appliance_key::install_from(dir.path(), true).unwrap();
    audit::append(
        &mut conn,
        &audit::AuditEntry {
            provenance: &gatehouse::identity::provenance::Provenance::cli("root"),
            action: "update",
            entity: "person",
            entity_id: Some("1".to_owned()),
            summary: "update person E1".to_owned(),
            before: None,
            after: None,
        },
        chrono::Utc::now(),
    )
    .unwrap();
    let report = audit::verify_with(&mut conn, Some(key)).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!((report.entries, report.head_seq), (3, 3));
    assert_eq!(report.keyed_from, Some(3));
    // Without the key, the keyed entry cannot be checked, and says so.
    let report = audit::verify_with(&mut conn, None).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].seq, 3);
    assert!(report.problems[0].problem.contains("not loaded"));
    // The provenance of an entry from before it was recorded is what its actor gives: its
    // hash does not cover the columns, but an edit of them is caught all the same.
    conn.batch_execute(
        "UPDATE audit_log SET requested_by_kind = 'cli_user', via = 'cli' WHERE seq = 2",
    )
    .unwrap();
    let report = audit::verify_with(&mut conn, Some(key)).unwrap();
    assert_eq!(
        report.problems,
        vec![audit::ChainProblem {
            seq: 2,
            problem: "its content does not match its hash (the entry was edited)".to_owned(),
        }]
    );
}

#[test]
fn entries_numbered_below_1_are_refused_and_verify_reports_them() {
    for backend in backends() {
        let app = TestApp::new(backend);
        build_site(&app);
        let mut conn = app.db();
        let insert = |seq: i64| {
            format!(
                "INSERT INTO audit_log (seq, at, actor, action, entity, summary, prev_hash, hash) \
                 SELECT {seq}, at, 'root', 'delete', 'person', 'forged', prev_hash, hash \
                 FROM audit_log WHERE seq = 1"
            )
        };
        // The table refuses them.
        for seq in [0, -5] {
            assert!(
                conn.batch_execute(&insert(seq)).is_err(),
                "seq {seq} was stored"
            );
        }
        // Where the check is gone (a database edited by hand), verify reads them anyway.
        let lift = match backend {
            crate::app::Backend::Sqlite => "PRAGMA ignore_check_constraints = ON",
            crate::app::Backend::Postgres => {
                "ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_from_1"
            }
        };
        conn.batch_execute(lift).unwrap();
        conn.batch_execute(&insert(0)).unwrap();
        conn.batch_execute(&insert(-5)).unwrap();
        let report = audit::verify(&mut conn).unwrap();
        let seqs: Vec<i64> = report.problems.iter().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![-5, 0], "{:?}", report.problems);
        assert!(report.problems[0].problem.contains("numbered from 1"));
        // The rest of the chain is checked as before, and intact.
        let entries: i64 = diesel::RunQueryDsl::get_result(
            diesel::QueryDsl::count(gatehouse::store::schema::audit_log::table),
            &mut *conn,
        )
        .unwrap();
        assert_eq!(report.entries, entries);
        assert_eq!(report.head_seq, entries - 2);
        if matches!(backend, crate::app::Backend::Sqlite) {
            conn.batch_execute("PRAGMA ignore_check_constraints = OFF")
                .unwrap();
        }
    }
}
