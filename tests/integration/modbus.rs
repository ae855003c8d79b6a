//! Readers over Modbus TCP end to end: the appliance polls simulated devices (real
//! tokio-modbus servers on loopback) and answers through their relay, LED and beeper.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gatehouse_drivers::modbus_map::{Beeper, Led};
use gatehouse_drivers::sim_modbus::{Behaviour, Output, SimDevice};
use serde_json::{Value, json};

use crate::app::{
    Backend, Fixture, TestApp, WAIT, assert_pin_on_no_record, assert_simulated, backends,
    build_site, wait_until,
};

struct Rig {
    app: TestApp,
    f: Fixture,
    runtime: tokio::runtime::Runtime,
}

fn rig(backend: Backend) -> Rig {
    let app = TestApp::new(backend);
    let f = build_site(&app);
    // The fixture's business hours must not decide these tests: open the door all the time.
    let always = app.create("schedules", json!({"name": "Always", "holidays": "ignore", "windows": [{"cron": "0 0 * * *", "duration_min": 1440}]}));
    let level = app.create(
        "access-levels",
        json!({"name": "Always", "items": [{"door_id": f.main_door, "schedule_id": always}, {"door_id": f.server_door, "schedule_id": always}]}),
    );
    app.create(
        "entitlements",
        json!({"person_id": f.person, "level_id": level}),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    Rig { app, f, runtime }
}

impl Rig {
    fn start_device(&self, bind: SocketAddr) -> SimDevice {
        self.runtime
            .block_on(SimDevice::start(bind, 1))
            .expect("the simulated device listens")
    }

    /// A simulated device on a free loopback port, registered as `reader_id` at `door_id`.
    fn device(&self, reader_id: &str, door_id: i64) -> SimDevice {
        let device = self.start_device("127.0.0.1:0".parse().unwrap());
        self.app.create(
            "readers",
            json!({
                "reader_id": reader_id,
                "door_id": door_id,
                "protocol": "modbus",
                "modbus_host": "127.0.0.1",
                "modbus_port": device.addr().port(),
                "modbus_unit": 1,
            }),
        );
        device
    }

    fn health(&self, reader_id: &str) -> Value {
        let r = self.app.get("/api/v1/readers/health");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["reader_id"] == reader_id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn wait_online(&self, reader_id: &str, online: bool) {
        wait_until(&format!("{reader_id} online = {online}"), || {
            self.health(reader_id)["online"] == online
        });
    }

    fn answer(&self, device: &mut SimDevice) -> Beeper {
        self.runtime
            .block_on(device.answer(WAIT))
            .expect("the appliance answered the swipe")
            .0
    }

    /// This reader's recorded events of one kind, oldest first.
    fn events_of(&self, reader_id: &str, kind: &str) -> Vec<gatehouse::store::event_log::Recorded> {
        let mut events: Vec<_> = self
            .app
            .events(Some(kind))
            .into_iter()
            .filter(|e| e.event.reader_id.as_deref() == Some(reader_id))
            .collect();
        events.reverse();
        events
    }

    fn wait_events(&self, reader_id: &str, kind: &str, count: usize) {
        wait_until(&format!("{count} {kind} event(s) of {reader_id}"), || {
            self.events_of(reader_id, kind).len() >= count
        });
    }

    fn door(&self, door_id: i64, zone_id: i64, name: &str, extra: Value) {
        let mut body = json!({"zone_id": zone_id, "name": name});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let r = self.app.put(&format!("/api/v1/doors/{door_id}"), body);
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Waits until the appliance has polled `device` `more` times from now: time in which
    /// anything it was going to do again (answer, record) would have been done.
    fn wait_polled(&self, device: &SimDevice, more: u64) {
        let target = device.polls() + more;
        wait_until(&format!("{more} more polls of {}", device.addr()), || {
            device.polls() >= target
        });
    }

    /// The poll failures counted for a reader (connections refused, garbage, timeouts).
    fn poll_failures(&self, reader_id: &str) -> u64 {
        self.health(reader_id)["poll"]["failures"]
            .as_u64()
            .unwrap_or(0)
    }

    fn wait_relay(&self, device: &mut SimDevice, unlocked: bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let written = self
                .runtime
                .block_on(device.next_write(left))
                .unwrap_or_else(|| panic!("the relay was not set to unlocked = {unlocked}"));
            if written.output == (Output::Relay { unlocked }) {
                return;
            }
        }
    }
}

#[test]
fn a_swipe_over_modbus_unlocks_the_door_for_its_time_and_is_recorded_once() {
    for backend in backends() {
        let rig = rig(backend);
        let f = &rig.f;
        rig.door(
            f.main_door,
            f.building,
            "Main Entrance",
            json!({"unlock_ms": 300}),
        );
        let mut device = rig.device("main-mb", f.main_door);
        rig.wait_online("main-mb", true);
        device.clear_writes();

        let swiped = device.swipe(f.card, None).unwrap();
        let (beeper, unlocked_at) = rig.runtime.block_on(device.answer(WAIT)).unwrap();
        assert_eq!(beeper, Beeper::Grant);
        assert!(device.relay_unlocked());
        assert_eq!(device.led(), Some(Led::Green));
        assert!(unlocked_at >= swiped);
        // The relay goes back after the door's unlock time, and the LED to idle.
        rig.wait_relay(&mut device, false);
        wait_until("the LED back to off", || device.led() == Some(Led::Off));

        device.swipe("DEADBEEF", None).unwrap();
        assert_eq!(rig.answer(&mut device), Beeper::Deny);
        assert_eq!(device.led(), Some(Led::Red));
        assert!(!device.relay_unlocked());

        rig.wait_events("main-mb", "swipe", 2);
        // Polls go on (ten more of them); nothing is answered or recorded twice.
        rig.wait_polled(&device, 10);
        let swipes = rig.events_of("main-mb", "swipe");
        assert_eq!(swipes.len(), 2, "{swipes:?}");
        assert_eq!(swipes[0].event.result.as_deref(), Some("granted"));
        assert_eq!(swipes[0].event.person_id, Some(f.person));
        assert_eq!(swipes[0].event.door_id, Some(f.main_door));
        assert_eq!(swipes[1].event.result.as_deref(), Some("denied"));
        assert_eq!(
            swipes[1].event.deny_code.as_deref(),
            Some("unknown_credential")
        );
        assert_eq!(
            swipes.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
            vec![Some(1), Some(2)],
            "a Modbus reader's events are numbered by the appliance"
        );
        assert_eq!(rig.events_of("main-mb", "reader_online").len(), 1);
        assert!(
            rig.runtime
                .block_on(device.next_write(Duration::from_millis(100)))
                .is_none_or(|w| w.output != Output::Relay { unlocked: true }),
            "no second unlock"
        );
        let poll = &rig.health("main-mb")["poll"];
        assert!(poll["polls"].as_u64().unwrap() > 5, "{poll}");
        assert_eq!(poll["failures"], 0, "{poll}");
    }
}

#[test]
fn door_contact_rex_and_tamper_raise_the_right_events_and_alarms() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    rig.door(
        f.main_door,
        f.building,
        "Main Entrance",
        json!({"held_open_s": 1, "unlock_ms": 300}),
    );
    let device = rig.device("main-mb", f.main_door);
    rig.wait_online("main-mb", true);

    // The door opens with no grant and no REX: forced open.
    device.set_door_open(true);
    rig.wait_events("main-mb", "door_open", 1);
    wait_until("a forced-open alarm", || {
        rig.app.events(Some("forced_open")).len() == 1
    });
    device.set_door_open(false);
    rig.wait_events("main-mb", "door_closed", 1);

    // Someone leaves: REX, then the door opens. Not forced; but left open it is held open.
    device.set_rex_pressed(true);
    rig.wait_events("main-mb", "rex", 1);
    device.set_door_open(true);
    rig.wait_events("main-mb", "door_open", 2);
    device.set_rex_pressed(false);
    wait_until("a held-open alarm", || {
        rig.app.events(Some("held_open")).len() == 1
    });
    assert_eq!(
        rig.app.events(Some("forced_open")).len(),
        1,
        "REX made the second opening legitimate"
    );
    device.set_door_open(false);
    rig.wait_events("main-mb", "door_closed", 2);

    device.set_tamper(true);
    rig.wait_events("main-mb", "tamper", 1);
    device.set_tamper(false);
    rig.wait_events("main-mb", "tamper_cleared", 1);
    let held = &rig.app.events(Some("held_open"))[0];
    assert_eq!(held.event.door_id, Some(f.main_door));
}

#[test]
fn card_and_pin_over_modbus_asks_for_the_pin_then_checks_it() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    rig.door(
        f.server_door,
        f.server_room,
        "Server Room Door",
        json!({"mode": "card_and_pin"}),
    );
    let cards = rig
        .app
        .get(&format!("/api/v1/credentials?person_id={}", f.person))
        .body;
    let card_id = cards["items"][0]["id"].as_i64().unwrap();
    let r = rig.app.put(
        &format!("/api/v1/credentials/{card_id}"),
        json!({"person_id": f.person, "card_uid": f.card, "pin": "0482"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut device = rig.device("server-mb", f.server_door);
    rig.wait_online("server-mb", true);
    device.clear_writes();

    device.swipe(f.card, None).unwrap();
    assert_eq!(rig.answer(&mut device), Beeper::PinNeeded);
    assert_eq!(device.led(), Some(Led::Amber));
    device.swipe(f.card, Some("0000")).unwrap();
    assert_eq!(rig.answer(&mut device), Beeper::Deny);
    assert!(!device.relay_unlocked());
    // A leading zero survives the register map (digit count beside the value).
    device.swipe(f.card, Some("0482")).unwrap();
    assert_eq!(rig.answer(&mut device), Beeper::Grant);
    assert!(device.relay_unlocked());

    rig.wait_events("server-mb", "swipe", 3);
    let swipes = rig.events_of("server-mb", "swipe");
    let results: Vec<_> = swipes
        .iter()
        .map(|e| (e.event.result.clone(), e.event.deny_code.clone()))
        .collect();
    assert_eq!(
        results,
        vec![
            (Some("pin_required".into()), None),
            (Some("denied".into()), Some("pin_wrong".into())),
            (Some("granted".into()), None),
        ]
    );
    assert_pin_on_no_record(&swipes, "0482");
}

#[test]
fn lockdown_and_door_modes_reach_every_modbus_device() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    let mut main = rig.device("main-mb", f.main_door);
    let server = rig.device("server-mb", f.server_door);
    rig.wait_online("main-mb", true);
    rig.wait_online("server-mb", true);
    let lock = |on: bool| {
        let r = rig.app.put(
            &format!("/api/v1/sites/{}", f.site),
            json!({"name": "HQ", "timezone": "Europe/Berlin", "lockdown": on}),
        );
        assert_eq!(r.status, 200);
    };
    lock(true);
    wait_until("every LED red in lockdown", || {
        main.led() == Some(Led::Red) && server.led() == Some(Led::Red)
    });
    main.clear_writes();
    main.swipe(f.card, None).unwrap();
    assert_eq!(rig.answer(&mut main), Beeper::Deny);
    assert!(!main.relay_unlocked());
    rig.wait_events("main-mb", "swipe", 1);
    assert_eq!(
        rig.events_of("main-mb", "swipe")[0]
            .event
            .deny_code
            .as_deref(),
        Some("lockdown")
    );
    lock(false);
    wait_until("the LEDs back to normal", || {
        main.led() == Some(Led::Off) && server.led() == Some(Led::Off)
    });

    // A door in unlocked mode holds its relay on until it goes back to normal.
    rig.door(
        f.main_door,
        f.building,
        "Main Entrance",
        json!({"mode": "unlocked"}),
    );
    wait_until("the relay held unlocked and the LED green", || {
        main.relay_unlocked() && main.led() == Some(Led::Green)
    });
    assert!(!server.relay_unlocked(), "other doors keep their mode");
    rig.door(
        f.main_door,
        f.building,
        "Main Entrance",
        json!({"mode": "normal"}),
    );
    wait_until("the relay locked again", || !main.relay_unlocked());
}

#[test]
fn devices_that_answer_garbage_or_nothing_are_faults_and_the_others_keep_being_served() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    let mut good = rig.device("good-mb", f.main_door);
    let noisy = rig.start_device("127.0.0.1:0".parse().unwrap());
    noisy.set_behaviour(Behaviour::Garbage);
    rig.app.create(
        "readers",
        json!({"reader_id": "noisy-mb", "door_id": f.main_door, "protocol": "modbus",
               "modbus_host": "127.0.0.1", "modbus_port": noisy.addr().port()}),
    );
    let quiet = rig.device("quiet-mb", f.server_door);
    rig.wait_online("good-mb", true);
    rig.wait_online("quiet-mb", true);
    quiet.set_behaviour(Behaviour::Silent);

    // Each misbehaving device is one fault (with the reason) and offline, not a flood.
    rig.wait_events("noisy-mb", "reader_fault", 1);
    rig.wait_events("quiet-mb", "reader_fault", 1);
    rig.wait_online("noisy-mb", false);
    rig.wait_online("quiet-mb", false);
    let noisy_fault = &rig.events_of("noisy-mb", "reader_fault")[0];
    assert!(
        noisy_fault.event.detail.contains("garbage"),
        "{}",
        noisy_fault.event.detail
    );
    let quiet_fault = &rig.events_of("quiet-mb", "reader_fault")[0];
    assert!(
        quiet_fault.event.detail.contains("no answer within 200 ms"),
        "{}",
        quiet_fault.event.detail
    );
    rig.wait_events("quiet-mb", "reader_offline", 1);

    // Meanwhile the good device is served as ever.
    good.clear_writes();
    for _ in 0..3 {
        good.swipe(f.card, None).unwrap();
        assert_eq!(rig.answer(&mut good), Beeper::Grant);
    }
    // A swipe counter that moves over registers that make no sense: a fault, and the
    // person gets the deny signal rather than silence.
    good.swipe_garbage();
    assert_eq!(rig.answer(&mut good), Beeper::Deny);
    rig.wait_events("good-mb", "reader_fault", 1);
    assert!(
        rig.events_of("good-mb", "reader_fault")[0]
            .event
            .detail
            .contains("do not decode")
    );
    // The appliance goes on retrying both (three more failed attempts at the noisy one),
    // and the retries are counted, not recorded one by one.
    let noisy_failures = rig.poll_failures("noisy-mb");
    wait_until("three more retries of the noisy device", || {
        rig.poll_failures("noisy-mb") >= noisy_failures + 3
    });
    wait_until("retries of the quiet device", || {
        rig.poll_failures("quiet-mb") >= 2
    });
    assert!(
        rig.events_of("noisy-mb", "reader_fault").len() <= 2,
        "retries back off and are not recorded one by one"
    );

    // The quiet device comes back: online again, and on record.
    quiet.set_behaviour(Behaviour::Normal);
    rig.wait_online("quiet-mb", true);
    rig.wait_events("quiet-mb", "reader_online", 2);

    // The good device power-cycles on the same address: the appliance reconnects.
    let addr = good.addr();
    drop(good);
    rig.wait_online("good-mb", false);
    let mut good = rig.start_device(addr);
    rig.wait_online("good-mb", true);
    good.clear_writes();
    good.swipe(f.card, None).unwrap();
    assert_eq!(rig.answer(&mut good), Beeper::Grant);
    rig.wait_events("good-mb", "swipe", 4);
    rig.wait_polled(&good, 10);
    assert_eq!(
        rig.events_of("good-mb", "swipe").len(),
        4,
        "nothing lost or doubled"
    );
}

#[test]
fn a_removed_modbus_reader_is_no_longer_polled_and_its_door_is_locked() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    let mut device = rig.device("main-mb", f.main_door);
    // A device that stays registered: while it is polled on, the removed one would be too.
    let witness = rig.device("server-mb", f.server_door);
    rig.wait_online("main-mb", true);
    device.clear_writes();
    device.swipe(f.card, None).unwrap();
    assert_eq!(rig.answer(&mut device), Beeper::Grant);
    assert!(device.relay_unlocked());
    let found = rig.app.get("/api/v1/readers?q=main-mb").body;
    let id = found["items"][0]["id"].as_i64().unwrap();
    assert_eq!(rig.app.delete(&format!("/api/v1/readers/{id}")).status, 204);
    wait_until("the relay locked by the departing driver", || {
        !device.relay_unlocked()
    });
    let polls = device.polls();
    rig.wait_polled(&witness, 10);
    assert_eq!(device.polls(), polls, "no longer polled");
}

#[test]
fn a_modbus_reader_cannot_require_signed_events() {
    let rig = rig(Backend::Sqlite);
    let r = rig.app.post(
        "/api/v1/readers",
        json!({"reader_id": "x-mb", "door_id": rig.f.main_door, "protocol": "modbus",
               "modbus_host": "127.0.0.1", "require_signed_events": true}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.to_string().contains("require_signed_events"),
        "{}",
        r.body
    );
    // Nor be legacy: it sends no events on the wire to seal or not.
    let r = rig.app.post(
        "/api/v1/readers",
        json!({"reader_id": "x-mb", "door_id": rig.f.main_door, "protocol": "modbus",
               "modbus_host": "127.0.0.1", "legacy": true}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.to_string().contains("legacy"), "{}", r.body);
}

#[test]
fn simulate_plays_modbus_devices_that_the_appliance_polls() {
    let rig = rig(Backend::Sqlite);
    for (reader, door) in [
        ("main-mb", rig.f.main_door),
        ("server-mb", rig.f.server_door),
    ] {
        // A free port for the simulated device, which `simulate` will listen on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        rig.app.create(
            "readers",
            json!({"reader_id": reader, "door_id": door, "protocol": "modbus",
                   "modbus_host": "127.0.0.1", "modbus_port": port}),
        );
    }
    // Nothing listens there until `simulate` starts: the appliance keeps failing to reach
    // the devices and waits out its longest backoff between attempts, as a running
    // appliance does before an installer starts `simulate` (the README's first steps).
    for reader in ["main-mb", "server-mb"] {
        wait_until(&format!("{reader} tried and backed off from"), || {
            rig.poll_failures(reader) >= 4
        });
    }
    let out = rig.app.simulate(
        &[
            "--protocol",
            "modbus",
            "--readers",
            "2",
            "--swipes",
            "20",
            "--rate",
            "10",
        ],
        // The appliance under test polls every 20 ms; the devices hold inputs for 3 polls.
        &[("GATEHOUSE_MODBUS_POLL_INTERVAL_MS", "20")],
    );
    let stdout = assert_simulated(&out, 20);
    let swipes = rig.app.events(Some("swipe"));
    assert_eq!(swipes.len(), 20);
    let granted = swipes
        .iter()
        .filter(|e| e.event.result.as_deref() == Some("granted"))
        .count();
    assert!(granted > 0, "{stdout}");
    // Every grant was followed by the door opening and closing, and none of it is an alarm.
    wait_until("the doors' openings on record", || {
        rig.app.events(Some("door_closed")).len() >= granted
    });
    assert!(rig.app.events(Some("forced_open")).is_empty());
}

#[test]
fn a_momentary_unlock_from_the_console_opens_the_relay_for_its_time_but_not_in_lockdown() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    let main = rig.device("main-mb", f.main_door);
    rig.wait_online("main-mb", true);
    let mut operator = crate::console::signed_in(&rig.app, "operator");
    let door = format!("/doors/{}", f.main_door);

    let page = operator.submit(&door, &format!("{door}/unlock"), &[("seconds", "1")]);
    assert_eq!(page.status, 303, "{}", page.body);
    wait_until("the relay unlocked", || main.relay_unlocked());
    wait_until("the relay locked again after a second", || {
        !main.relay_unlocked()
    });
    let unlocks = rig.app.events(Some("remote_unlock"));
    assert_eq!(unlocks.len(), 1);
    assert!(unlocks[0].event.detail.contains("\"by\":\"operator\""));
    // The door opening during the unlock is not forced.
    main.set_door_open(true);
    rig.wait_events("main-mb", "door_open", 1);
    assert!(rig.app.events(Some("forced_open")).is_empty());
    main.set_door_open(false);

    let r = rig.app.put(
        &format!("/api/v1/sites/{}", f.site),
        json!({"name": "HQ", "timezone": "Europe/Berlin", "lockdown": true}),
    );
    assert_eq!(r.status, 200);
    // During the lockdown the door page offers no Unlock; a form posted from a page
    // loaded before it started goes back to the door page, which says why.
    let page = operator.get(&door);
    assert!(!page.body.contains("id=\"unlock-form\""), "{}", page.body);
    assert!(
        page.body.contains("No unlock during the lockdown of HQ"),
        "{}",
        page.body
    );
    let page = operator.submit(&door, &format!("{door}/unlock"), &[("seconds", "60")]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), door);
    let page = operator.get(page.location());
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Main Entrance was not unlocked: HQ is in lockdown."),
        "{}",
        page.body
    );
    assert!(!main.relay_unlocked());
    assert_eq!(rig.app.events(Some("remote_unlock")).len(), 1);
    let audit = rig.app.get("/api/v1/audit?entity=door").body.to_string();
    assert!(
        audit.contains("unlock door 'Main Entrance' for 1 s"),
        "{audit}"
    );
}

/// A door whose mode is `locked` is not unlocked by a click: the form asks to confirm the
/// override, and without it the door page says why nothing happened. A running unlock is
/// shown with its end on the door, the doors list and the dashboard; an ordinary unlock
/// ends when the door is set to `locked`.
#[test]
fn unlocking_a_locked_door_needs_a_confirmation_and_a_running_unlock_shows_until_when() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    let main = rig.device("main-mb", f.main_door);
    rig.wait_online("main-mb", true);
    let mut admin = crate::console::signed_in(&rig.app, "admin");
    let door = format!("/doors/{}", f.main_door);
    let unlock = format!("{door}/unlock");
    let page = admin.submit(&door, &format!("{door}/mode"), &[("mode", "locked")]);
    assert_eq!(page.status, 303, "{}", page.body);
    let page = admin.get(&door);
    assert!(
        page.body.contains("id=\"override_locked\""),
        "{}",
        page.body
    );

    // Without the confirmation: refused, back on the door page with the reason.
    let page = admin.submit(&door, &unlock, &[("seconds", "60")]);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), door);
    let page = admin.get(page.location());
    assert!(
        page.body
            .contains("Main Entrance was not unlocked: its mode is locked."),
        "{}",
        page.body
    );
    rig.wait_polled(&main, 5);
    assert!(!main.relay_unlocked(), "a locked door unlocked silently");
    assert!(rig.app.events(Some("remote_unlock")).is_empty());

    // Confirmed: unlocked for its time, and shown so with its end.
    let page = admin.submit(
        &door,
        &unlock,
        &[("seconds", "60"), ("override_locked", "on")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), door);
    wait_until("the relay unlocked", || main.relay_unlocked());
    let page = admin.get(&door);
    assert!(page.body.contains("id=\"door-unlocked\""), "{}", page.body);
    assert!(page.body.contains("unlocked until "), "{}", page.body);
    assert!(
        admin.get("/doors").body.contains("unlocked until "),
        "the doors list shows the running unlock"
    );
    let status = admin.get("/dashboard/status").body;
    assert!(
        status.contains("Main Entrance: unlocked until "),
        "{status}"
    );
    let audit = rig.app.get("/api/v1/audit?entity=door").body.to_string();
    assert!(
        audit.contains("unlock door 'Main Entrance' for 60 s, overriding its locked mode"),
        "{audit}"
    );
    let unlocks = rig.app.events(Some("remote_unlock"));
    assert!(
        unlocks[0]
            .event
            .detail
            .contains("\"overrides_locked\":true"),
        "{}",
        unlocks[0].event.detail
    );

    // An ordinary unlock of a normal door ends when the door is set to locked.
    let page = admin.submit(&door, &format!("{door}/mode"), &[("mode", "normal")]);
    assert_eq!(page.status, 303, "{}", page.body);
    let server = rig.device("server-mb", f.server_door);
    rig.wait_online("server-mb", true);
    let server_door = format!("/doors/{}", f.server_door);
    let page = admin.submit(
        &server_door,
        &format!("{server_door}/unlock"),
        &[("seconds", "600")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    wait_until("the server room relay unlocked", || server.relay_unlocked());
    let page = admin.submit(
        &server_door,
        &format!("{server_door}/mode"),
        &[("mode", "locked")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    wait_until("the server room relay locked by its mode", || {
        !server.relay_unlocked()
    });
    let page = admin.get(&server_door);
    assert!(!page.body.contains("id=\"door-unlocked\""), "{}", page.body);
    // Ended, not paused: set back to normal within its ten minutes, the door stays locked.
    let page = admin.submit(
        &server_door,
        &format!("{server_door}/mode"),
        &[("mode", "normal")],
    );
    assert_eq!(page.status, 303, "{}", page.body);
    rig.wait_polled(&server, 10);
    assert!(!server.relay_unlocked(), "the ended unlock came back");
    let page = admin.get(&server_door);
    assert!(!page.body.contains("id=\"door-unlocked\""), "{}", page.body);
}

/// The doors list and the dashboard tell a door never reported (unknown) from a closed
/// one, and a door whose reporting reader went offline (stale: the last known) from one
/// known open now.
#[test]
fn door_states_are_unknown_until_reported_and_stale_while_their_reader_is_offline() {
    let rig = rig(Backend::Sqlite);
    let f = &rig.f;
    let mut admin = crate::console::signed_in(&rig.app, "admin");
    let row = |html: &str, door: &str| -> String {
        let at = html.find(&format!(">{door}</a>")).expect(door);
        let start = html[..at].rfind("<tr").unwrap();
        let end = at + html[at..].find("</tr>").unwrap();
        html[start..end].to_owned()
    };
    let list = admin.get("/doors").body;
    for door in ["Main Entrance", "Server Room Door"] {
        let line = row(&list, door);
        assert!(line.contains("unknown"), "{line}");
        assert!(!line.contains("closed"), "{line}");
    }

    let main = rig.device("main-mb", f.main_door);
    rig.wait_online("main-mb", true);
    main.set_door_open(true);
    rig.wait_events("main-mb", "door_open", 1);
    main.set_door_open(false);
    rig.wait_events("main-mb", "door_closed", 1);
    let list = admin.get("/doors").body;
    let line = row(&list, "Main Entrance");
    assert!(line.contains("<td>closed"), "{line}");
    assert!(row(&list, "Server Room Door").contains("unknown"));

    // Opened with nobody let in: forced, and an alarm while its reader is online.
    main.set_door_open(true);
    rig.wait_events("main-mb", "door_open", 2);
    let line = row(&admin.get("/doors").body, "Main Entrance");
    assert!(line.contains("class=\"alarm\""), "{line}");
    assert!(line.contains("forced open since"), "{line}");

    // The device stops answering: the door is only known as it was, and says so.
    main.set_behaviour(gatehouse_drivers::sim_modbus::Behaviour::Silent);
    rig.wait_online("main-mb", false);
    let line = row(&admin.get("/doors").body, "Main Entrance");
    assert!(line.contains("class=\"stale\""), "{line}");
    assert!(
        line.contains("forced open since") && line.contains("last known"),
        "{line}"
    );
    let status = admin.get("/dashboard/status").body;
    assert!(
        status.contains("(last known: its reader is offline)"),
        "{status}"
    );
    let page = admin.get(&format!("/doors/{}", f.main_door)).body;
    assert!(
        page.contains("<dd id=\"door-state\" class=\"stale\">"),
        "{page}"
    );
}
