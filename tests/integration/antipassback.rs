//! Anti-passback over real MQTT and real databases: two swipes of one card at once pass
//! once, presence survives a restart, a zone's daily reset lets everyone in again (and is
//! remembered across a restart), and each swipe keeps the context it was decided in.

use std::time::Duration;

use chrono::TimeDelta;
use gatehouse::clock::{Clock, ClockShift};
use gatehouse_drivers::message::{Command, DenyCode};
use gatehouse_drivers::sim::{ScaledClock, SimReader};
use serde_json::json;

use crate::app::{backends, wait_until};
use crate::mqtt::{Broker, Site, setups, site, site_on};

const WAIT: Duration = Duration::from_secs(10);

/// The lab: a hard anti-passback zone of the fixture's site (nested in the building), one
/// door with two entry readers and an exit reader, open to the fixture's person all day.
/// Returns the zone's id and the door's.
pub(crate) fn lab(site: &Site, presence_reset: Option<&str>) -> (i64, i64) {
    let app = &site.app;
    let zone = app.create(
        "zones",
        json!({"site_id": site.f.site, "parent_id": site.f.building, "name": "Lab",
               "antipassback": "hard", "presence_reset": presence_reset}),
    );
    let door = app.create("doors", json!({"zone_id": zone, "name": "Lab door"}));
    for (reader, direction) in [("lab-in-a", "in"), ("lab-in-b", "in"), ("lab-out", "out")] {
        app.create(
            "readers",
            json!({"reader_id": reader, "door_id": door, "direction": direction}),
        );
    }
    let always = app.create(
        "schedules",
        json!({"name": "Lab hours", "holidays": "ignore",
               "windows": [{"cron": "0 0 * * *", "duration_min": 1440}]}),
    );
    let level = app.create(
        "access-levels",
        json!({"name": "Lab", "items": [{"zone_id": zone, "schedule_id": always}]}),
    );
    app.create(
        "entitlements",
        json!({"person_id": site.f.person, "level_id": level}),
    );
    (zone, door)
}

fn swipe(site: &Site, reader: &mut SimReader) -> Command {
    site.runtime
        .block_on(reader.swipe(site.card(), None, WAIT))
        .unwrap()
        .1
}

fn is_antipassback(command: &Command) -> bool {
    matches!(
        command,
        Command::Deny {
            code: DenyCode::Antipassback,
            ..
        }
    )
}

#[test]
fn one_card_swiped_at_two_entry_readers_at_once_enters_once() {
    for (broker, backend) in setups() {
        let site = site(broker, backend);
        let (zone, door) = lab(&site, None);
        let mut a = site.reader("lab-in-a", false);
        let mut b = site.reader("lab-in-b", false);
        let mut out = site.reader("lab-out", false);
        for round in 0..5 {
            let (first, second) = site.runtime.block_on(async {
                tokio::join!(
                    a.swipe(site.card(), None, WAIT),
                    b.swipe(site.card(), None, WAIT)
                )
            });
            let answers = [first.unwrap().1, second.unwrap().1];
            let granted = answers
                .iter()
                .filter(|c| matches!(c, Command::Grant { .. }))
                .count();
            assert_eq!(granted, 1, "round {round}: {answers:?}");
            assert!(
                answers.iter().any(is_antipassback),
                "round {round}: {answers:?}"
            );
            // Out again, once: the next round starts outside.
            assert!(matches!(swipe(&site, &mut out), Command::Grant { .. }));
            assert!(is_antipassback(&swipe(&site, &mut out)));
        }
        // Each swipe keeps where and under which policy it was decided.
        // Scored once on record (the risk scorer follows the log).
        wait_until("every swipe is scored", || {
            let swipes = site.app.events(Some("swipe"));
            swipes.len() == 20 && swipes.iter().all(|s| s.event.risk_score.is_some())
        });
        let swipes = site.app.events(Some("swipe"));
        assert_eq!(swipes.len(), 20);
        // The snapshot's version: a person change laid over the compiled policy (the
        // card set up above) is newer than the compile.
        let version = site.app.state.live.snapshot().version();
        for s in &swipes {
            assert_eq!(s.event.door_id, Some(door));
            assert_eq!(s.event.zone_id, Some(zone));
            assert_eq!(s.event.site_id, Some(site.f.site));
            assert_eq!(s.event.antipassback_zone_id, Some(zone));
            assert_eq!(s.event.policy_version, Some(version));
            assert!(
                s.event
                    .risk_score
                    .is_some_and(|r| (0.0..=100.0).contains(&r)),
                "{s:?}"
            );
            let expected = match s.event.result.as_deref() {
                Some("granted") => "entitled",
                _ => "antipassback",
            };
            assert_eq!(s.event.reason_code.as_deref(), Some(expected), "{s:?}");
        }
        let ins = swipes
            .iter()
            .filter(|s| s.event.direction.map(|d| d.as_str()) == Some("in"))
            .count();
        assert_eq!(ins, 10);
    }
}

#[test]
fn presence_survives_a_restart() {
    for backend in backends() {
        let mut site = site(Broker::Embedded, backend);
        lab(&site, None);
        let mut a = site.reader("lab-in-a", false);
        assert!(matches!(swipe(&site, &mut a), Command::Grant { .. }));
        drop(a);
        site.restart();
        // Inside before the restart, inside after it: entering again is refused.
        let mut b = site.reader("lab-in-b", false);
        let again = swipe(&site, &mut b);
        assert!(is_antipassback(&again), "{again:?}");
        let mut out = site.reader("lab-out", false);
        assert!(matches!(swipe(&site, &mut out), Command::Grant { .. }));
        assert!(matches!(swipe(&site, &mut b), Command::Grant { .. }));
    }
}

#[test]
fn a_zones_daily_reset_lets_everyone_in_again_and_is_kept_across_a_restart() {
    for backend in backends() {
        let shift: &'static ClockShift = Box::leak(Box::default());
        let clock = Clock::Shifted(shift);
        let mut site = site_on(Broker::Embedded, backend, clock);
        // The reset ten minutes from now on the site's clock (Europe/Berlin).
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let reset_at = (clock.now() + TimeDelta::minutes(10)).with_timezone(&tz);
        let reset = reset_at.format("%H:%M").to_string();
        let (zone, _) = lab(&site, Some(&reset));
        let shown = site.app.get(&format!("/api/v1/zones/{zone}"));
        assert_eq!(
            shown.body["presence_reset"],
            reset.as_str(),
            "{}",
            shown.body
        );
        let hub = site.app.state.hub.clone();
        // The zone is watched from now (the 60 s tick does this in the running appliance):
        // nothing is due yet.
        assert!(
            site.runtime
                .block_on(hub.reset_presence_due(clock.now()))
                .is_empty()
        );
        let reader_clock = |site: &Site| ScaledClock::starting_at(site.app.state.clock.now(), 1);
        let mut a = site.reader("lab-in-a", false);
        a.set_clock(reader_clock(&site));
        assert!(matches!(swipe(&site, &mut a), Command::Grant { .. }));
        assert!(is_antipassback(&swipe(&site, &mut a)));
        // Past the reset time: the zone's presence is reset, once, and it says so.
        shift.advance(TimeDelta::minutes(11));
        let done = site.runtime.block_on(hub.reset_presence_due(clock.now()));
        assert_eq!(done, vec![Ok((zone, 1))]);
        assert!(
            site.runtime
                .block_on(hub.reset_presence_due(clock.now()))
                .is_empty()
        );
        let resets = site.app.events(Some("presence_reset"));
        assert_eq!(resets.len(), 1, "{resets:?}");
        assert_eq!(resets[0].event.zone_id, Some(zone));
        assert!(
            resets[0].event.detail.contains(&reset),
            "{}",
            resets[0].event.detail
        );
        // After a restart the passage before the reset still does not count.
        drop(a);
        site.restart();
        let mut b = site.reader("lab-in-b", false);
        b.set_clock(reader_clock(&site));
        let after = swipe(&site, &mut b);
        assert!(matches!(after, Command::Grant { .. }), "{after:?}");
        assert!(is_antipassback(&swipe(&site, &mut b)));
        // The next reset is tomorrow's: nothing is due again today, restart or not.
        let hub = site.app.state.hub.clone();
        assert!(
            site.runtime
                .block_on(hub.reset_presence_due(clock.now()))
                .is_empty()
        );
        // A day later it is, at start too: a reset missed while the appliance was off is
        // done when it starts (its first check is at once).
        shift.advance(TimeDelta::days(1));
        site.restart();
        wait_until("the missed reset is done at start", || {
            site.app.events(Some("presence_reset")).len() == 2
        });
        let mut b = site.reader("lab-in-b", false);
        b.set_clock(reader_clock(&site));
        assert!(matches!(swipe(&site, &mut b), Command::Grant { .. }));
    }
}

#[test]
fn a_reset_time_that_is_no_time_of_day_is_refused() {
    for backend in backends() {
        let app = crate::app::TestApp::new(backend);
        let f = crate::app::build_site(&app);
        for bad in ["25:00", "3:00", "03:00:00", "noon"] {
            let r = app.post(
                "/api/v1/zones",
                json!({"site_id": f.site, "name": "Lab", "presence_reset": bad}),
            );
            assert_eq!(r.status, 422, "{bad}: {}", r.body);
            assert!(
                r.body.to_string().contains("presence_reset"),
                "{bad}: {}",
                r.body
            );
        }
        let r = app.put(
            &format!("/api/v1/zones/{}", f.server_room),
            json!({"site_id": f.site, "parent_id": f.building, "name": "Server Room",
                   "antipassback": "hard", "presence_reset": "04:30"}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["presence_reset"], "04:30");
    }
}
