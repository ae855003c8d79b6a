//! The storage layer under load from more than one process.

use chrono::Utc;
use gatehouse::entities::ChangeContext;

#[test]
fn two_processes_writing_one_sqlite_file_both_succeed() {
    // `gatehouse import` beside `gatehouse serve`: two pools, no shared lock in memory.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let setup = gatehouse::store::open(&url, 1).unwrap();
    gatehouse::store::migrate(&mut setup.get().unwrap()).unwrap();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let pool = gatehouse::store::open(&url, 1).unwrap();
                let mut conn = pool.get().unwrap();
                let ctx = ChangeContext {
                    provenance: &gatehouse::identity::provenance::Provenance::cli("writer"),
                    now: Utc::now(),
                };
                for i in 0..40 {
                    let input = gatehouse::entities::people::PersonInput {
                        employee_id: format!("W{w}-{i}"),
                        name: format!("Writer {w} person {i}"),
                        department: String::new(),
                        title: String::new(),
                        manager_id: None,
                        person_type: "employee".to_owned(),
                        status: "active".to_owned(),
                        valid_from: None,
                        valid_until: None,
                        notes: String::new(),
                    };
                    gatehouse::entities::create::<gatehouse::entities::people::People>(
                        &mut conn, input, &ctx,
                    )
                    .unwrap_or_else(|e| panic!("writer {w}, person {i}: {e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let report = gatehouse::store::audit::verify(&mut setup.get().unwrap()).unwrap();
    assert_eq!(report.entries, 80);
    assert!(report.is_intact(), "{:?}", report.problems);
}

#[test]
fn concurrent_writers_keep_one_unbroken_audit_chain() {
    // Two appliance instances on one PostgreSQL database (or two processes on SQLite).
    for backend in crate::app::backends() {
        let app = crate::app::TestApp::new(backend);
        let url = app.state.config.database_url();
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let url = url.clone();
                std::thread::spawn(move || {
                    let pool = gatehouse::store::open(&url, 1).unwrap();
                    let mut conn = pool.get().unwrap();
                    let ctx = ChangeContext {
                        provenance: &gatehouse::identity::provenance::Provenance::cli("instance"),
                        now: Utc::now(),
                    };
                    for i in 0..20 {
                        let input = gatehouse::entities::sites::SiteInput {
                            name: format!("Site {w}-{i}"),
                            timezone: "UTC".to_owned(),
                            lockdown: false,
                        };
                        gatehouse::entities::create::<gatehouse::entities::sites::Sites>(
                            &mut conn, input, &ctx,
                        )
                        .unwrap_or_else(|e| panic!("writer {w}, site {i}: {e}"));
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let report = gatehouse::store::audit::verify(&mut app.db()).unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(app.get("/api/v1/sites").body["total"], 60);
    }
}

/// Both migration trees must build exactly the tables and columns of the portable schema
/// (`server/store/schema.rs`), with the same nullability: a column missing on one backend,
/// or NULL allowed on one and not the other, would only show when a query touched it.
#[test]
fn both_migration_trees_produce_the_portable_schema() {
    use diesel::RunQueryDsl;
    use diesel::sql_types::{Bool, Text};
    use std::collections::BTreeSet;

    #[derive(diesel::QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Bool)]
        nullable: bool,
    }

    // The schema as written: each `table! { name (key) { column -> Type, … } }`.
    let mut expected = BTreeSet::new();
    let mut table: Option<String> = None;
    for line in include_str!("../../server/store/schema.rs").lines() {
        let line = line.trim();
        if line.starts_with("///") || line.starts_with("//") {
            continue;
        }
        if let Some(head) = line.strip_suffix('{')
            && let Some((name, _key)) = head.trim().split_once(" (")
        {
            table = Some(name.trim().to_owned());
            continue;
        }
        if line == "}" {
            table = None;
            continue;
        }
        if let (Some(t), Some((column, ty))) = (&table, line.split_once(" -> ")) {
            let nullable = ty.trim().starts_with("Nullable<");
            expected.insert((t.clone(), column.trim().to_owned(), nullable));
        }
    }
    assert!(expected.len() > 100, "the schema was read: {expected:?}");

    for backend in crate::app::backends() {
        let app = crate::app::TestApp::new(backend);
        let mut conn = app.state.db.get().unwrap();
        let query = match backend {
            crate::app::Backend::Sqlite => {
                "SELECT m.name AS table_name, p.name AS column_name, \
                 (p.\"notnull\" = 0 AND p.pk = 0) AS nullable \
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
                 AND m.name <> '__diesel_schema_migrations'"
            }
            crate::app::Backend::Postgres => {
                "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                 (is_nullable = 'YES') AS nullable FROM information_schema.columns \
                 WHERE table_schema = current_schema() \
                 AND table_name <> '__diesel_schema_migrations'"
            }
        };
        let built: BTreeSet<(String, String, bool)> = diesel::sql_query(query)
            .load::<Column>(&mut *conn)
            .unwrap()
            .into_iter()
            .map(|c| (c.table_name, c.column_name, c.nullable))
            .collect();
        let missing: Vec<_> = expected.difference(&built).collect();
        let extra: Vec<_> = built.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{backend:?}: in schema.rs but not built as written: {missing:?}; \
             built but not in schema.rs as written: {extra:?}"
        );
    }
}
