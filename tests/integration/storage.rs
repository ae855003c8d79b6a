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
