//! The history layer over events recorded by the real hub and changes made through the
//! API: what a person, a door, a level, a zone or a period holds, read in chunks that
//! return every row once, as each admin role may read it.

use chrono::{DateTime, TimeDelta, Utc};
use gatehouse::clock::Clock;
use gatehouse::identity::admins::Role;
use gatehouse::policy::model::Direction;
use gatehouse::readers::hub::Hub;
use gatehouse::store::DbConnection;
use gatehouse::store::event_log::Recorded;
use gatehouse::store::event_log::{BatchPolicy, EventKind, EventLog};
use gatehouse::store::history::{
    self, ChangeQuery, ChangesOf, EventQuery, EventsOf, HistoryError, Inside, Period, ReadScope,
};
use gatehouse::store::rows::AuditRow;
use gatehouse_drivers::message::{Command, seal};
use serde_json::json;

use crate::app::{Backend, Fixture, TestApp, backends, build_site};

const ADMIN: ReadScope = scope(Role::Admin);
const OPERATOR: ReadScope = scope(Role::Operator);
const AUDITOR: ReadScope = scope(Role::Auditor);

const fn scope(role: Role) -> ReadScope {
    ReadScope::of(role)
}

/// Monday 2026-11-23, 09:00 UTC, and minutes after it.
fn minute(m: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + TimeDelta::minutes(m)
}

/// The fixture site with doors both ways and two people, and a hub to swipe through.
struct Building {
    app: TestApp,
    f: Fixture,
    grace: i64,
    everywhere: i64,
    main_only: i64,
    log: EventLog,
    runtime: tokio::runtime::Runtime,
    seq: std::cell::Cell<u64>,
}

const ADA: &str = "04A1B2C3";
const GRACE: &str = "0A0B0C0D";

impl Building {
    fn new(backend: Backend) -> Building {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        // main-in exists (direction in); the way out, and the server room both ways.
        app.create(
            "readers",
            json!({"reader_id": "main-out", "door_id": f.main_door, "direction": "out"}),
        );
        app.create(
            "readers",
            json!({"reader_id": "server-in", "door_id": f.server_door}),
        );
        app.create(
            "readers",
            json!({"reader_id": "server-out", "door_id": f.server_door, "direction": "out"}),
        );
        let always = app.create("schedules", json!({"name": "Always", "holidays": "ignore", "windows": [{"cron": "0 0 * * *", "duration_min": 1440}]}));
        // The building zone: its main door, and the server room's door inside it.
        let everywhere = app.create(
            "access-levels",
            json!({"name": "Everywhere", "items": [{"zone_id": f.building, "schedule_id": always}]}),
        );
        let main_only = app.create(
            "access-levels",
            json!({"name": "Main door", "items": [{"door_id": f.main_door, "schedule_id": always}]}),
        );
        app.create(
            "entitlements",
            json!({"person_id": f.person, "level_id": everywhere}),
        );
        let grace = app.create(
            "people",
            json!({"employee_id": "E2", "name": "Grace Hopper", "department": "Engineering"}),
        );
        app.create(
            "credentials",
            json!({"person_id": grace, "card_uid": GRACE}),
        );
        app.create(
            "entitlements",
            json!({"person_id": grace, "level_id": main_only}),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (log, writer) = EventLog::new(app.state.db.clone(), BatchPolicy::default());
        runtime.spawn(writer.run());
        Building {
            app,
            f,
            grace,
            everywhere,
            main_only,
            log,
            runtime,
            seq: std::cell::Cell::new(0),
        }
    }

    /// A card swiped at a reader at `at` (the hub's clock), through the hub as a reader
    /// sends it; returns the answer.
    fn swipe(&self, at: DateTime<Utc>, reader: &str, uid: &str) -> Command {
        let hub = Hub::new(
            self.app.state.live.clone(),
            self.log.clone(),
            Clock::Fixed(at),
        );
        self.seq.set(self.seq.get() + 1);
        let event = json!({
            "type": "swipe",
            "seq": self.seq.get(),
            "ts": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "credential": {"kind": "card", "uid": uid},
        })
        .to_string();
        let sealed = seal(reader, &self.app.reader_secret(reader), &event);
        let reply = self
            .runtime
            .block_on(hub.handle_mqtt(reader, &sealed))
            .expect("an answer");
        reply.command
    }

    fn granted(&self, at: DateTime<Utc>, reader: &str, uid: &str) {
        let answer = self.swipe(at, reader, uid);
        assert!(
            matches!(answer, Command::Grant { .. }),
            "{reader} {uid}: {answer:?}"
        );
    }

    fn denied(&self, at: DateTime<Utc>, reader: &str, uid: &str) {
        let answer = self.swipe(at, reader, uid);
        assert!(
            matches!(answer, Command::Deny { .. }),
            "{reader} {uid}: {answer:?}"
        );
    }

    /// The day the tests read: Ada and Grace come in together, Ada goes into the server
    /// room and out again, Grace is refused there and leaves; then seven swipes of Ada's
    /// in one instant.
    fn play_the_day(&self) {
        self.granted(minute(1), "main-in", ADA);
        self.granted(minute(1), "main-in", GRACE);
        self.denied(minute(1), "main-in", "DEADBEEF");
        self.granted(minute(2), "server-in", ADA);
        self.denied(minute(3), "server-in", GRACE);
        self.granted(minute(4), "server-out", ADA);
        self.granted(minute(5), "main-out", GRACE);
        for _ in 0..7 {
            self.granted(minute(6), "main-in", ADA);
        }
    }

    /// Every swipe recorded, in history's order.
    fn swipes(&self) -> Vec<Recorded> {
        let mut rows = self.app.events(Some("swipe"));
        rows.sort_by_key(|r| (r.event.at, r.id));
        rows
    }
}

fn ids(rows: &[Recorded]) -> Vec<i64> {
    rows.iter().map(|r| r.id).collect()
}

/// Everything a query returns, read in chunks of `size`; also checks that no chunk is
/// larger than asked.
fn read_all(app: &TestApp, scope: ReadScope, query: &EventQuery, size: usize) -> Vec<Recorded> {
    let mut conn = app.db();
    let mut rows = Vec::new();
    for chunk in history::event_chunks(&mut conn, scope, query.clone(), size) {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= size, "{}", chunk.len());
        rows.extend(chunk);
    }
    rows
}

fn query(of: EventsOf) -> EventQuery {
    EventQuery {
        of,
        period: Period::ALL,
        kind: None,
    }
}

#[test]
fn a_person_a_door_a_level_and_a_period_hold_what_happened_there() {
    for backend in backends() {
        let site = Building::new(backend);
        site.play_the_day();
        let swipes = site.swipes();
        assert_eq!(swipes.len(), 14, "{backend:?}");
        let of = |test: &dyn Fn(&Recorded) -> bool| -> Vec<i64> {
            swipes.iter().filter(|r| test(r)).map(|r| r.id).collect()
        };
        let read = |of: EventsOf| ids(&read_all(&site.app, ADMIN, &query(of), 1000));

        let ada = of(&|r| r.event.person_id == Some(site.f.person));
        assert_eq!(ada.len(), 10, "{backend:?}");
        assert_eq!(read(EventsOf::Person(site.f.person)), ada, "{backend:?}");
        let grace = of(&|r| r.event.person_id == Some(site.grace));
        assert_eq!(grace.len(), 3, "{backend:?}");
        assert_eq!(read(EventsOf::Person(site.grace)), grace, "{backend:?}");

        // The server room door: Ada in, Grace refused, Ada out.
        let server = read(EventsOf::Door(site.f.server_door));
        assert_eq!(server, of(&|r| r.event.door_id == Some(site.f.server_door)));
        assert_eq!(server.len(), 3, "{backend:?}");

        // The building zone's level covers the server room's door inside it too; the main
        // door's level only the main door (the unknown card's refusal included).
        assert_eq!(
            read(EventsOf::Level(site.everywhere)),
            ids(&swipes),
            "{backend:?}"
        );
        let main = of(&|r| r.event.door_id == Some(site.f.main_door));
        assert_eq!(main.len(), 11, "{backend:?}");
        assert_eq!(read(EventsOf::Level(site.main_only)), main, "{backend:?}");
        assert_eq!(read(EventsOf::Level(9_999)), Vec::<i64>::new());

        // From the second minute until the fourth: Ada into the server room, Grace refused.
        let period = EventQuery {
            of: EventsOf::All,
            period: Period::between(minute(2), minute(4)),
            kind: Some(EventKind::Swipe),
        };
        let between = ids(&read_all(&site.app, ADMIN, &period, 1000));
        assert_eq!(
            between,
            of(&|r| r.event.at >= minute(2) && r.event.at < minute(4)),
            "{backend:?}"
        );
        assert_eq!(between.len(), 2, "{backend:?}");
        // A kind narrows a person's events as it does everyone's.
        let ada_faults = EventQuery {
            of: EventsOf::Person(site.f.person),
            period: Period::ALL,
            kind: Some(EventKind::ReaderFault),
        };
        assert!(read_all(&site.app, ADMIN, &ada_faults, 10).is_empty());

        // Every role reads events, with the people in them, as on the console today.
        for scope in [OPERATOR, AUDITOR] {
            assert_eq!(
                ids(&read_all(&site.app, scope, &query(EventsOf::All), 1000)),
                ids(&read_all(&site.app, ADMIN, &query(EventsOf::All), 1000)),
                "{backend:?}"
            );
        }
    }
}

#[test]
fn chunks_return_every_event_once_across_ties_on_time() {
    for backend in backends() {
        let site = Building::new(backend);
        site.play_the_day();
        let swipes = site.swipes();
        // Three swipes share the first minute and seven the sixth.
        let sixth = swipes.iter().filter(|r| r.event.at == minute(6)).count();
        assert_eq!(sixth, 7, "{backend:?}");
        for of in [
            EventsOf::All,
            EventsOf::Person(site.f.person),
            EventsOf::Level(site.everywhere),
            EventsOf::Level(site.main_only),
        ] {
            let whole = read_all(&site.app, ADMIN, &query(of.clone()), 1000);
            assert!(!whole.is_empty());
            for size in 1..=whole.len() + 1 {
                let chunked = read_all(&site.app, ADMIN, &query(of.clone()), size);
                assert_eq!(
                    ids(&chunked),
                    ids(&whole),
                    "{backend:?} {of:?} in chunks of {size}"
                );
            }
        }
        // A cursor in the middle of a tie resumes inside it.
        let mut conn = site.app.db();
        let first = history::events(&mut conn, ADMIN, &query(EventsOf::All), None, 5).unwrap();
        assert_eq!(ids(&first.rows), ids(&swipes[..5]), "{backend:?}");
        let cursor = first.next.unwrap();
        assert_eq!(cursor.id(), swipes[4].id);
        // A cursor kept as its time and id (by a reader that stopped) resumes the same.
        assert_eq!(
            history::EventCursor::resume(cursor.at(), cursor.id()),
            cursor
        );
        let rest =
            history::events(&mut conn, ADMIN, &query(EventsOf::All), Some(cursor), 100).unwrap();
        assert_eq!(ids(&rest.rows), ids(&swipes[5..]), "{backend:?}");
        assert_eq!(rest.next, None, "a short chunk is the last");
    }
}

#[test]
fn presence_follows_the_doors_of_a_zone_and_their_readers_directions() {
    for backend in backends() {
        let site = Building::new(backend);
        site.play_the_day();
        let ada = site.f.person;
        let mut pooled = site.app.db();
        let conn: &mut DbConnection = &mut pooled;
        let passages = |conn: &mut DbConnection, zone: i64, size: usize| {
            history::passage_chunks(conn, ADMIN, zone, Period::ALL, size)
                .flat_map(|chunk| chunk.unwrap())
                .map(|p| (p.at, p.person_id, p.direction))
                .collect::<Vec<_>>()
        };
        // The server room: Ada in and out; Grace, refused, never passed.
        assert_eq!(
            passages(&mut *conn, site.f.server_room, 1000),
            [
                (minute(2), ada, Direction::In),
                (minute(4), ada, Direction::Out)
            ],
            "{backend:?}"
        );
        // The building: its own door only (the server room's door leads into the server
        // room). Ada and Grace in together, Grace out, Ada in seven times in one instant.
        let building = passages(&mut *conn, site.f.building, 1000);
        let mut expected = vec![
            (minute(1), ada, Direction::In),
            (minute(1), site.grace, Direction::In),
            (minute(5), site.grace, Direction::Out),
        ];
        expected.extend([(minute(6), ada, Direction::In); 7]);
        assert_eq!(building, expected, "{backend:?}");
        for size in 1..=building.len() {
            assert_eq!(
                passages(&mut *conn, site.f.building, size),
                building,
                "{size}"
            );
        }

        let inside = |conn: &mut DbConnection, zone: i64, at: DateTime<Utc>| {
            history::inside(conn, ADMIN, zone, minute(0), at)
                .unwrap()
                .iter()
                .map(|i: &Inside| (i.person_id, i.since))
                .collect::<Vec<_>>()
        };
        let building_zone = site.f.building;
        assert_eq!(inside(&mut *conn, building_zone, minute(0)), []);
        // As of the very instant they came in, they are inside.
        assert_eq!(
            inside(&mut *conn, building_zone, minute(1)),
            [(ada, minute(1)), (site.grace, minute(1))],
            "{backend:?}"
        );
        assert_eq!(
            inside(&mut *conn, building_zone, minute(5)),
            [(ada, minute(1))],
            "{backend:?}"
        );
        // Last seen coming in again at minute 6.
        assert_eq!(
            inside(&mut *conn, building_zone, minute(60)),
            [(ada, minute(6))],
            "{backend:?}"
        );
        let server_room = site.f.server_room;
        assert_eq!(
            inside(&mut *conn, server_room, minute(3)),
            [(ada, minute(2))]
        );
        assert_eq!(inside(&mut *conn, server_room, minute(4)), []);
        // Passages before `since` are not looked at.
        assert_eq!(
            history::inside(&mut *conn, ADMIN, building_zone, minute(2), minute(5)).unwrap(),
            []
        );
    }
}

fn changes(app: &TestApp, scope: ReadScope, of: ChangesOf, size: usize) -> Vec<AuditRow> {
    let mut conn = app.db();
    let query = ChangeQuery {
        of,
        period: Period::ALL,
    };
    history::change_chunks(&mut conn, scope, query, size)
        .flat_map(|chunk| chunk.unwrap())
        .collect()
}

fn seqs(rows: &[AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

#[test]
fn changes_are_read_by_entity_actor_and_period_as_each_role_may() {
    for backend in backends() {
        let site = Building::new(backend);
        // An operator's token: audited as an admin user and a token made by test-setup.
        let operator = site.app.token_for("olive", "operator");
        let renamed = site.app.send_as(
            Some(&operator),
            "PUT",
            &format!("/api/v1/people/{}", site.grace),
            &json!({"employee_id": "E2", "name": "Grace B. Hopper", "department": "Engineering"}),
        );
        assert_eq!(renamed.status, 200, "{}", renamed.body);

        let everything = changes(&site.app, ADMIN, ChangesOf::All, 1000);
        assert!(everything.len() > 20, "{backend:?}");
        // Chunks of any size return each entry once, in order.
        for size in [1, 2, 7] {
            assert_eq!(
                seqs(&changes(&site.app, ADMIN, ChangesOf::All, size)),
                seqs(&everything)
            );
        }
        assert!(everything.windows(2).all(|w| w[0].seq < w[1].seq));

        // Grace's history: created by root through the API, renamed by olive.
        let grace = ChangesOf::Entity {
            entity: "person".to_owned(),
            id: Some(site.grace.to_string()),
        };
        let hers: Vec<(String, String)> = changes(&site.app, OPERATOR, grace, 1)
            .into_iter()
            .map(|r| (r.actor, r.action))
            .collect();
        assert_eq!(
            hers,
            [
                ("root".to_owned(), "create".to_owned()),
                ("olive".to_owned(), "update".to_owned())
            ],
            "{backend:?}"
        );
        let by_olive = changes(&site.app, AUDITOR, ChangesOf::Actor("olive".to_owned()), 10);
        assert_eq!(by_olive.len(), 1, "{backend:?}");
        assert_eq!(by_olive[0].entity, "person");

        // Admin identity: admins and auditors read it, operators are refused it when they
        // ask for it and do not get it among everything else.
        let identity = history::ADMIN_IDENTITY_ENTITIES;
        let admin_users = ChangesOf::Entity {
            entity: "admin_user".to_owned(),
            id: None,
        };
        for scope in [ADMIN, AUDITOR] {
            let users = changes(&site.app, scope, admin_users.clone(), 100);
            assert!(
                users.iter().any(|r| r.summary.contains("olive")),
                "{backend:?}"
            );
        }
        let mut conn = site.app.db();
        let refused = history::changes(
            &mut conn,
            OPERATOR,
            &ChangeQuery {
                of: admin_users,
                period: Period::ALL,
            },
            None,
            100,
        );
        assert!(
            matches!(
                refused,
                Err(HistoryError::NotPermitted {
                    role: Role::Operator,
                    ..
                })
            ),
            "{refused:?}"
        );
        let operators_view = changes(&site.app, OPERATOR, ChangesOf::All, 3);
        assert!(
            operators_view
                .iter()
                .all(|r| !identity.contains(&r.entity.as_str())),
            "{backend:?}"
        );
        let not_identity: Vec<i64> = everything
            .iter()
            .filter(|r| !identity.contains(&r.entity.as_str()))
            .map(|r| r.seq)
            .collect();
        assert!(not_identity.len() < everything.len());
        assert_eq!(seqs(&operators_view), not_identity, "{backend:?}");
        assert_eq!(
            seqs(&changes(&site.app, AUDITOR, ChangesOf::All, 1000)),
            seqs(&everything)
        );

        // A period: only what was changed in it.
        let last = everything.last().unwrap();
        let from = last.at.and_utc();
        let in_period = history::changes(
            &mut conn,
            ADMIN,
            &ChangeQuery {
                of: ChangesOf::All,
                period: Period::between(from, from + TimeDelta::microseconds(1)),
            },
            None,
            100,
        )
        .unwrap();
        assert!(in_period.rows.iter().any(|r| r.seq == last.seq));
        assert!(in_period.rows.iter().all(|r| r.at == last.at));
    }
}

#[test]
fn a_history_read_refuses_to_run_inside_a_transaction() {
    use diesel::Connection;
    for backend in backends() {
        let app = TestApp::new(backend);
        let mut pooled = app.db();
        let conn: &mut DbConnection = &mut pooled;
        let inside = conn.transaction(|conn| {
            Ok::<_, diesel::result::Error>(history::events(
                conn,
                ADMIN,
                &query(EventsOf::All),
                None,
                10,
            ))
        });
        assert!(
            matches!(inside, Ok(Err(HistoryError::InsideTransaction))),
            "{backend:?}: {inside:?}"
        );
        // Outside one it reads (an appliance without events has none).
        let outside = history::events(&mut *conn, ADMIN, &query(EventsOf::All), None, 10);
        assert!(outside.unwrap().rows.is_empty());
    }
}
