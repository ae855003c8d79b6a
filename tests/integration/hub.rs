//! The hub end to end below the transport: payloads in, signed answers out, every event on
//! record once.

use chrono::{DateTime, TimeDelta, Utc};
use gatehouse::clock::Clock;
use gatehouse::readers::hub::Hub;
use gatehouse::store::event_log::{BatchPolicy, EventLog};
use gatehouse_drivers::message::{Command, DenyCode, ErrorCode, seal, verify_command};
use serde_json::json;

use crate::app::{TestApp, backends, build_site};

/// Monday 2026-11-23, 10:00 in Berlin: inside the fixture's business hours.
fn monday_morning() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct Rig {
    app: TestApp,
    hub: Hub,
    runtime: tokio::runtime::Runtime,
}

impl Rig {
    fn new(app: TestApp, now: DateTime<Utc>) -> Rig {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (log, writer) = EventLog::new(app.state.db.clone(), BatchPolicy::default());
        runtime.spawn(writer.run());
        let hub = Hub::new(app.state.live.clone(), log, Clock::Fixed(now));
        Rig { app, hub, runtime }
    }

    /// Sends an event sealed with the reader's own secret, as every reader not marked
    /// legacy must; returns the verified answer.
    fn send(&self, reader: &str, event_json: &str) -> Option<Command> {
        let sealed = seal(reader, &self.app.reader_secret(reader), event_json);
        self.send_payload(reader, &sealed)
    }

    /// Sends a payload as it is (a bare event, or a forged seal).
    fn send_bare(&self, reader: &str, payload: &str) -> Option<Command> {
        self.send_payload(reader, payload.as_bytes())
    }

    fn send_payload(&self, reader: &str, payload: &[u8]) -> Option<Command> {
        let reply = self
            .runtime
            .block_on(self.hub.handle_mqtt(reader, payload))?;
        assert_eq!(reply.reader_id, reader);
        // What the reader does: verify the signed payload before acting on it.
        let wire = self.hub.encode(&reply).unwrap();
        let secret = self.app.reader_secret(reader);
        let command = verify_command(reader, &secret, &wire, monday_morning())
            .expect("a valid signed command");
        assert_eq!(command, reply.command);
        Some(command)
    }

    fn swipe(&self, reader: &str, seq: u64, uid: &str) -> Option<Command> {
        self.send(
            reader,
            &json!({"type": "swipe", "seq": seq, "ts": "2026-11-23T09:00:00.000Z", "credential": {"kind": "card", "uid": uid}})
                .to_string(),
        )
    }

    fn events(&self) -> Vec<gatehouse::store::event_log::Recorded> {
        self.app.events(None)
    }
}

#[test]
fn swipes_are_answered_recorded_and_never_twice() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let rig = Rig::new(app, monday_morning());
        let granted = rig.swipe("main-in", 1, f.card).unwrap();
        let Command::Grant {
            reference,
            unlock_ms,
            ref decision_id,
        } = granted
        else {
            panic!("expected a grant, got {granted:?}");
        };
        assert_eq!((reference, unlock_ms), (1, 5000));
        // The reader lost the answer and sends the same event again: same answer, same
        // decision id, one row.
        let again = rig.swipe("main-in", 1, f.card).unwrap();
        assert!(
            matches!(&again, Command::Grant { decision_id: d, .. } if d == decision_id),
            "{again:?}"
        );
        let unknown = rig.swipe("main-in", 2, "DEADBEEF").unwrap();
        assert!(
            matches!(
                unknown,
                Command::Deny {
                    reference: 2,
                    code: DenyCode::UnknownCredential,
                    ..
                }
            ),
            "{unknown:?}"
        );
        let events = rig.events();
        assert_eq!(events.len(), 2, "one row per event, not per message");
        let probe = events.iter().find(|e| e.event.seq == Some(2)).unwrap();
        assert_eq!(
            probe.event.presented.as_deref(),
            Some("DEADBEEF"),
            "unknown cards are evidence"
        );
        assert_eq!(probe.event.deny_code.as_deref(), Some("unknown_credential"));
        let grant = events.iter().find(|e| e.event.seq == Some(1)).unwrap();
        assert_eq!(
            (grant.event.person_id, grant.event.door_id),
            (Some(f.person), Some(f.main_door))
        );
        assert_eq!(
            grant.event.presented, None,
            "known cards are recorded by id, not by number"
        );
    }
}

#[test]
fn denials_reach_the_reader_with_their_code() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    // Sunday: outside business hours.
    let sunday = monday_morning() - TimeDelta::days(1);
    let rig = Rig::new(app, sunday);
    let reply = rig.runtime.block_on(rig.hub.handle_mqtt(
        "main-in",
        &seal(
            "main-in",
            &rig.app.reader_secret("main-in"),
            &json!({"type": "swipe", "seq": 5, "ts": "2026-11-22T09:00:00Z", "credential": {"kind": "card", "uid": f.card}})
                .to_string(),
        ),
    ));
    assert!(matches!(
        reply.unwrap().command,
        Command::Deny {
            code: DenyCode::Schedule,
            ..
        }
    ));
    let r = rig.app.put(
        &format!("/api/v1/people/{}", f.person),
        json!({"employee_id": "E1", "name": "Ada Lovelace", "status": "suspended"}),
    );
    assert_eq!(r.status, 200);
    let reply = rig.runtime.block_on(rig.hub.handle_mqtt(
        "main-in",
        &seal(
            "main-in",
            &rig.app.reader_secret("main-in"),
            &json!({"type": "swipe", "seq": 6, "ts": "2026-11-22T09:00:01Z", "credential": {"kind": "card", "uid": f.card}})
                .to_string(),
        ),
    ));
    assert!(matches!(
        reply.unwrap().command,
        Command::Deny {
            code: DenyCode::Inactive,
            ..
        }
    ));
}

#[test]
fn bad_input_is_a_reader_fault_and_changes_nothing_else() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let rig = Rig::new(app, monday_morning());
    assert_eq!(rig.send("main-in", "{not json"), None, "no seq, no answer");
    assert_eq!(
        rig.send(
            "main-in",
            r#"{"type":"teleport","seq":7,"ts":"2026-11-23T09:00:00Z"}"#
        ),
        Some(Command::Error {
            reference: Some(7),
            code: ErrorCode::BadEvent
        })
    );
    let huge = format!(
        r#"{{"type":"rex","seq":8,"ts":"2026-11-23T09:00:00Z","pad":"{}"}}"#,
        "x".repeat(1 << 20)
    );
    assert_eq!(rig.send("main-in", &huge), None);
    // A stranger publishing as an unregistered reader gets nothing.
    let stranger = rig.runtime.block_on(rig.hub.handle_mqtt(
        "intruder/../x",
        br#"{"type":"rex","seq":1,"ts":"2026-11-23T09:00:00Z"}"#,
    ));
    assert_eq!(stranger, None);
    let events = rig.events();
    assert_eq!(events.len(), 4);
    assert!(
        events.iter().all(|e| e.event.kind == "reader_fault"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.event.reader_id.as_deref() == Some("intruder?..?x"))
    );
    // The reader keeps being served.
    assert!(matches!(
        rig.swipe("main-in", 9, f.card),
        Some(Command::Grant { .. })
    ));
}

#[test]
fn a_modbus_reader_is_not_heard_over_mqtt() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    app.create(
        "readers",
        json!({"reader_id": "door-mb", "door_id": f.main_door, "protocol": "modbus", "modbus_host": "127.0.0.1", "modbus_port": 9}),
    );
    let rig = Rig::new(app, monday_morning());
    // Someone who learnt the Modbus reader's id (and secret) publishes a swipe as it.
    assert_eq!(rig.swipe("door-mb", 1, f.card), None);
    let events = rig.events();
    assert!(events.iter().all(|e| e.event.kind != "swipe"), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.event.kind == "reader_fault"
                && e.event.detail.contains("registered for Modbus")),
        "{events:?}"
    );
}

#[test]
fn a_flood_of_bad_messages_is_recorded_up_to_a_budget_then_counted() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let rig = Rig::new(app, monday_morning());
    for _ in 0..100 {
        rig.send("main-in", "{not json");
    }
    let faults = |rig: &Rig| {
        rig.events()
            .into_iter()
            .filter(|e| e.event.kind == "reader_fault")
            .collect::<Vec<_>>()
    };
    assert_eq!(faults(&rig).len(), 20, "a minute's budget of rows, not 100");
    // The reader is still served, and its health counts every fault.
    assert!(matches!(
        rig.swipe("main-in", 1, f.card),
        Some(Command::Grant { .. })
    ));
    let health = rig.hub.health().of(["main-in"].into_iter());
    assert_eq!(health[0].faults, 100);
    // Once the minute is over, what was counted is on record as one row.
    rig.runtime.block_on(
        rig.hub
            .report_suppressed_faults(monday_morning() + TimeDelta::seconds(61)),
    );
    let faults = faults(&rig);
    assert_eq!(faults.len(), 21);
    assert!(
        faults
            .iter()
            .any(|e| e.event.detail.starts_with("80 more fault(s)")),
        "{faults:?}"
    );
}

#[test]
fn a_reader_that_must_sign_cannot_be_impersonated() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    // A second reader, B, with its own secret; A is a legacy reader that must sign its
    // bare (v1) events.
    let b = app.post(
        "/api/v1/readers",
        json!({"reader_id": "side-in", "door_id": f.main_door}),
    );
    let b_secret = b.body["secret"].as_str().unwrap().to_owned();
    app.require_signed_events("main-in", f.main_door);
    let rig = Rig::new(app, monday_morning());
    let a_secret = rig.app.reader_secret("main-in");
    let body = |seq: u64, mac: Option<String>| {
        let mut v = json!({"type": "swipe", "seq": seq, "ts": "2026-11-23T09:00:00.000Z", "credential": {"kind": "card", "uid": f.card}});
        if let Some(m) = mac {
            v["mac"] = json!(m);
        }
        v.to_string()
    };
    let mac_input = |seq: u64| format!("main-in|swipe|{seq}|2026-11-23T09:00:00.000Z|{}|", f.card);
    // Unsigned: refused.
    assert_eq!(
        rig.send_bare("main-in", &body(1, None)),
        Some(Command::Error {
            reference: Some(1),
            code: ErrorCode::BadMac
        })
    );
    // Signed with B's secret, publishing as A: refused.
    let forged = gatehouse_drivers::mac::sign(&b_secret, &mac_input(2));
    assert_eq!(
        rig.send_bare("main-in", &body(2, Some(forged))),
        Some(Command::Error {
            reference: Some(2),
            code: ErrorCode::BadMac
        })
    );
    // Signed with A's secret: decided.
    let genuine = gatehouse_drivers::mac::sign(&a_secret, &mac_input(3));
    assert!(matches!(
        rig.send_bare("main-in", &body(3, Some(genuine))),
        Some(Command::Grant { reference: 3, .. })
    ));
    let events = rig.events();
    let swipes: Vec<_> = events.iter().filter(|e| e.event.kind == "swipe").collect();
    assert_eq!(swipes.len(), 1, "only the genuine swipe was decided");
    // And B's answers are signed with B's key, so they cannot open A's door.
    let b_reply = rig
        .hub
        .encode(&gatehouse::readers::hub::Reply {
            reader_id: "side-in".into(),
            command: Command::Grant {
                reference: 1,
                decision_id: "d-x".into(),
                unlock_ms: 5000,
            },
        })
        .unwrap();
    assert!(verify_command("main-in", &a_secret, &b_reply, monday_morning()).is_err());
}

#[test]
fn door_rex_and_tamper_are_recorded() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let rig = Rig::new(app, monday_morning());
    for (seq, payload) in [
        (
            1,
            json!({"type": "door", "seq": 1, "ts": "2026-11-23T09:00:00Z", "state": "open"}),
        ),
        (
            2,
            json!({"type": "door", "seq": 2, "ts": "2026-11-23T09:00:05Z", "state": "closed"}),
        ),
        (
            3,
            json!({"type": "rex", "seq": 3, "ts": "2026-11-23T09:01:00Z"}),
        ),
        (
            4,
            json!({"type": "tamper", "seq": 4, "ts": "2026-11-23T09:02:00Z", "active": true}),
        ),
        (
            5,
            json!({"type": "heartbeat", "seq": 5, "ts": "2026-11-23T09:03:00Z", "uptime_s": 86400}),
        ),
    ] {
        assert_eq!(
            rig.send("main-in", &payload.to_string()),
            None,
            "seq {seq} needs no answer"
        );
    }
    let kinds: Vec<String> = rig
        .events()
        .into_iter()
        .rev()
        .map(|e| {
            assert_eq!(e.event.door_id, Some(f.main_door));
            e.event.kind.as_str().to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["door_open", "forced_open", "door_closed", "rex", "tamper"],
        "the door opened with no grant before it: forced"
    );
}

#[test]
fn forced_and_held_open_doors_raise_alarms() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let rig = Rig::new(app, monday_morning());
    let door = |seq: u64, open: bool| {
        json!({"type": "door", "seq": seq, "ts": "2026-11-23T09:00:00Z", "state": if open { "open" } else { "closed" }}).to_string()
    };
    // Opened after a grant: fine.
    assert!(matches!(
        rig.swipe("main-in", 1, f.card),
        Some(Command::Grant { .. })
    ));
    rig.send("main-in", &door(2, true));
    rig.send("main-in", &door(3, false));
    // Opened with nobody let in: forced. The resend of that event is not a second alarm.
    rig.send("main-in", &door(4, true));
    rig.send("main-in", &door(4, true));
    rig.send("main-in", &door(5, false));
    // Someone pressed the exit button, then the door opened: fine.
    rig.send(
        "main-in",
        &json!({"type": "rex", "seq": 6, "ts": "2026-11-23T09:00:00Z"}).to_string(),
    );
    rig.send("main-in", &door(7, true));
    // ... and then it stays open past the door's 30 s threshold.
    rig.runtime.block_on(
        rig.hub
            .check_held_open(monday_morning() + TimeDelta::seconds(10)),
    );
    rig.runtime.block_on(
        rig.hub
            .check_held_open(monday_morning() + TimeDelta::seconds(45)),
    );
    rig.runtime.block_on(
        rig.hub
            .check_held_open(monday_morning() + TimeDelta::seconds(90)),
    );
    let events = rig.events();
    let count = |kind: &str| events.iter().filter(|e| e.event.kind == kind).count();
    assert_eq!(count("forced_open"), 1, "{events:?}");
    assert_eq!(count("held_open"), 1, "{events:?}");
    let held = events.iter().find(|e| e.event.kind == "held_open").unwrap();
    assert_eq!(held.event.door_id, Some(f.main_door));
    assert!(held.event.detail.contains("45 s"), "{}", held.event.detail);
}

fn swipe_json(seq: u64, ts: &str, uid: &str) -> String {
    json!({"type": "swipe", "seq": seq, "ts": ts, "credential": {"kind": "card", "uid": uid}})
        .to_string()
}

/// docs/protocol.md, "Sealed events": a reader not marked legacy is heard only through
/// seals made with its own secret over the exact bytes of the event.
#[test]
fn only_events_sealed_with_the_readers_own_secret_are_decided() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let b = app.post(
            "/api/v1/readers",
            json!({"reader_id": "side-in", "door_id": f.main_door}),
        );
        assert_eq!(b.body["legacy"], false, "new readers are sealed by default");
        let b_secret = b.body["secret"].as_str().unwrap().to_owned();
        let rig = Rig::new(app, monday_morning());
        let a_secret = rig.app.reader_secret("main-in");
        let ts = "2026-11-23T09:00:00.000Z";
        let bad_mac = |seq| {
            Some(Command::Error {
                reference: Some(seq),
                code: ErrorCode::BadMac,
            })
        };
        // Unsealed, from a reader not marked legacy (even with a valid v1 mac): refused.
        assert_eq!(
            rig.send_bare("main-in", &swipe_json(1, ts, f.card)),
            bad_mac(1)
        );
        let v1_mac =
            gatehouse_drivers::mac::sign(&a_secret, &format!("main-in|swipe|2|{ts}|{}|", f.card));
        let mut signed_v1: serde_json::Value =
            serde_json::from_str(&swipe_json(2, ts, f.card)).unwrap();
        signed_v1["mac"] = json!(v1_mac);
        assert_eq!(rig.send_bare("main-in", &signed_v1.to_string()), bad_mac(2));
        // Sealed with another reader's secret: refused.
        let with_b = seal("main-in", &b_secret, &swipe_json(3, ts, f.card));
        assert_eq!(rig.send_payload("main-in", &with_b), bad_mac(3));
        // Sealed by A for B's topic does not pass as A's either way round.
        let for_b = seal("side-in", &a_secret, &swipe_json(4, ts, f.card));
        assert_eq!(rig.send_payload("main-in", &for_b), bad_mac(4));
        // A genuine seal whose body was changed on the way (another card): refused.
        let genuine = seal("main-in", &a_secret, &swipe_json(5, ts, "DEADBEEF"));
        let tampered = String::from_utf8(genuine)
            .unwrap()
            .replace("DEADBEEF", f.card);
        assert_eq!(rig.send_bare("main-in", &tampered), bad_mac(5));
        // An unknown envelope version is no event at all.
        let v3 = json!({"v": 3, "body": swipe_json(6, ts, f.card), "mac": "00"}).to_string();
        assert_eq!(rig.send_bare("main-in", &v3), None);
        let swipes = rig.app.events(Some("swipe"));
        assert!(swipes.is_empty(), "nothing was decided: {swipes:?}");
        let faults = rig.app.events(Some("reader_fault"));
        assert_eq!(faults.len(), 6, "{faults:?}");
        // A's own seal is decided.
        assert!(matches!(
            rig.send("main-in", &swipe_json(7, ts, f.card)),
            Some(Command::Grant { reference: 7, .. })
        ));
    }
}

#[test]
fn a_legacy_readers_bare_events_are_still_decided() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let legacy = app.post(
            "/api/v1/readers",
            json!({"reader_id": "old-in", "door_id": f.main_door, "legacy": true}),
        );
        assert_eq!(legacy.status, 201, "{}", legacy.body);
        assert_eq!(legacy.body["legacy"], true);
        let rig = Rig::new(app, monday_morning());
        let ts = "2026-11-23T09:00:00.000Z";
        assert!(matches!(
            rig.send_bare("old-in", &swipe_json(1, ts, f.card)),
            Some(Command::Grant { reference: 1, .. })
        ));
        // It may seal its events too.
        assert!(matches!(
            rig.send("old-in", &swipe_json(2, ts, f.card)),
            Some(Command::Grant { reference: 2, .. })
        ));
        assert_eq!(rig.app.events(Some("swipe")).len(), 2);
    }
}

/// docs/protocol.md: a seq is handled once; the same seq with other content is a reader
/// fault, `seq_reused`, and decides nothing.
#[test]
fn a_reused_seq_is_a_fault_and_a_resend_gets_the_first_answer() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let rig = Rig::new(app, monday_morning());
        let ts = "2026-11-23T09:00:00.000Z";
        let first = rig
            .send("main-in", &swipe_json(40, ts, "DEADBEEF"))
            .unwrap();
        assert!(
            matches!(
                first,
                Command::Deny {
                    code: DenyCode::UnknownCredential,
                    ..
                }
            ),
            "{first:?}"
        );
        // The same event again (a resend): the same answer, one row.
        assert_eq!(
            rig.send("main-in", &swipe_json(40, ts, "DEADBEEF")),
            Some(first)
        );
        let reused = Some(Command::Error {
            reference: Some(40),
            code: ErrorCode::SeqReused,
        });
        // The same seq with another card, or at another time: refused, nothing decided.
        assert_eq!(rig.send("main-in", &swipe_json(40, ts, f.card)), reused);
        assert_eq!(
            rig.send(
                "main-in",
                &swipe_json(40, "2026-11-23T09:00:05.000Z", "DEADBEEF")
            ),
            reused
        );
        // Another kind of event under that seq: refused as well.
        let rex = json!({"type": "rex", "seq": 40, "ts": ts}).to_string();
        assert_eq!(rig.send("main-in", &rex), reused);
        let swipes = rig.app.events(Some("swipe"));
        assert_eq!(swipes.len(), 1, "{swipes:?}");
        assert_eq!(
            swipes[0].event.deny_code.as_deref(),
            Some("unknown_credential")
        );
        let faults = rig.app.events(Some("reader_fault"));
        assert_eq!(faults.len(), 3, "{faults:?}");
        assert!(
            faults.iter().all(|e| e.event.detail.contains("seq reused")),
            "{faults:?}"
        );
        assert!(rig.app.events(Some("rex")).is_empty());
        // The next seq is served as usual.
        assert!(matches!(
            rig.send("main-in", &swipe_json(41, ts, f.card)),
            Some(Command::Grant { .. })
        ));
    }
}

#[test]
fn the_largest_seq_is_accepted() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let rig = Rig::new(app, monday_morning());
        let ts = "2026-11-23T09:00:00.000Z";
        let top = u64::MAX;
        assert_eq!(top, 18_446_744_073_709_551_615);
        let granted = rig.send("main-in", &swipe_json(top, ts, f.card)).unwrap();
        assert!(
            matches!(granted, Command::Grant { reference, .. } if reference == top),
            "{granted:?}"
        );
        assert_eq!(
            rig.send("main-in", &swipe_json(top, ts, f.card)),
            Some(granted)
        );
        let swipes = rig.app.events(Some("swipe"));
        assert_eq!(swipes.len(), 1);
        assert_eq!(
            swipes[0]
                .event
                .seq
                .map(gatehouse::store::event_log::reader_seq),
            Some(top)
        );
    }
}

/// A door's state is only as good as the reader that reported it: once that reader is
/// offline, what it said last is stale, and an open door it reported raises no held-open
/// alarm however long it stays on the books. Back online, its word counts again.
#[test]
fn an_open_door_whose_reader_went_offline_raises_no_held_open_alarm() {
    let app = TestApp::new(crate::app::Backend::Sqlite);
    let f = build_site(&app);
    let rig = Rig::new(app, monday_morning());
    let offline = |reader: &str| {
        rig.hub
            .health()
            .of(std::iter::once(reader))
            .first()
            .is_some_and(|h| h.online == Some(false))
    };
    let status = || {
        let doors = rig.hub.doors();
        let doors = doors.lock().unwrap();
        doors.status(f.main_door, offline)
    };
    use gatehouse::readers::door_state::DoorState;
    assert_eq!(status().state, DoorState::Unknown, "never reported");
    rig.runtime.block_on(rig.hub.reader_status("main-in", true));
    assert!(matches!(
        rig.swipe("main-in", 1, f.card),
        Some(Command::Grant { .. })
    ));
    rig.send(
        "main-in",
        &json!({"type": "door", "seq": 2, "ts": "2026-11-23T09:00:00Z", "state": "open"})
            .to_string(),
    );
    assert!(status().open_now());
    // The reader goes away (its last will) with the door on the books as open.
    rig.runtime
        .block_on(rig.hub.reader_status("main-in", false));
    assert!(status().stale, "{:?}", status());
    assert!(!status().open_now());
    for minutes in [1, 10, 60] {
        rig.runtime.block_on(
            rig.hub
                .check_held_open(monday_morning() + TimeDelta::minutes(minutes)),
        );
    }
    assert!(
        rig.app.events(Some("held_open")).is_empty(),
        "a held-open alarm from what an offline reader said last"
    );
    // Back online and still open (it sends no close): now it is held open, once.
    rig.runtime.block_on(rig.hub.reader_status("main-in", true));
    rig.runtime.block_on(
        rig.hub
            .check_held_open(monday_morning() + TimeDelta::minutes(61)),
    );
    assert_eq!(rig.app.events(Some("held_open")).len(), 1);
}

/// Each card's last use is written with the swipes that used it (granted or refused), and
/// shown by the API; a card never presented has none.
#[test]
fn a_swipe_records_the_cards_last_use() {
    for backend in backends() {
        let app = TestApp::new(backend);
        let f = build_site(&app);
        let other = app.create(
            "credentials",
            json!({"person_id": f.person, "card_uid": "0BADCAFE"}),
        );
        let rig = Rig::new(app, monday_morning());
        let card = |uid: &str| {
            let r = rig.app.get(&format!("/api/v1/credentials?card_uid={uid}"));
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["items"][0].clone()
        };
        assert_eq!(card(f.card)["last_used_at"], serde_json::Value::Null);
        assert!(matches!(
            rig.swipe("main-in", 1, f.card),
            Some(Command::Grant { .. })
        ));
        assert_eq!(
            card(f.card)["last_used_at"],
            json!("2026-11-23T09:00:00Z"),
            "{backend:?}"
        );
        // A refused swipe is a use of the card too (a lost card tried at a door).
        let r = rig.app.put(
            &format!("/api/v1/credentials/{other}"),
            json!({"person_id": f.person, "card_uid": "0BADCAFE", "status": "lost"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(matches!(
            rig.swipe("main-in", 2, "0BADCAFE"),
            Some(Command::Deny { .. })
        ));
        assert_eq!(
            card("0BADCAFE")["last_used_at"],
            json!("2026-11-23T09:00:00Z")
        );
        assert_eq!(card("0BADCAFE")["id"], json!(other));

        // Many cards in one batch (one statement on SQLite): each gets its latest use in
        // the batch, and an older use never moves a card's last use back.
        let first = card(f.card)["id"].as_i64().unwrap();
        let at = |minute: i64| {
            chrono::DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
                .unwrap()
                .with_timezone(&chrono::Utc)
                + chrono::TimeDelta::minutes(minute)
        };
        let swipe = |credential: i64, minute: i64| gatehouse::store::event_log::Event {
            credential_id: Some(credential),
            result: Some("granted".to_owned()),
            ..gatehouse::store::event_log::Event::new(
                gatehouse::store::event_log::EventKind::Swipe,
                at(minute),
            )
        };
        gatehouse::store::event_log::write_batch(
            &mut rig.app.db(),
            &[
                swipe(other, 5),
                swipe(first, -30),
                swipe(other, 3),
                swipe(424_242, 1),
            ],
            &mut gatehouse::store::event_log::SeqMarks::default(),
        )
        .unwrap();
        assert_eq!(
            card("0BADCAFE")["last_used_at"],
            json!("2026-11-23T09:05:00Z")
        );
        assert_eq!(
            card(f.card)["last_used_at"],
            json!("2026-11-23T09:00:00Z"),
            "an older use leaves the last use where it is ({backend:?})"
        );
    }
}
