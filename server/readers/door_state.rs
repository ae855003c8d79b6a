//! What each door is doing, from its readers' events: open or closed, for how long, and
//! whether it was opened without a grant or a request-to-exit (forced) or left open past
//! its threshold (held open). Pure bookkeeping; the hub records the alarms.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

/// A door opened this soon after a request-to-exit was pressed is someone leaving.
pub const REX_WINDOW: TimeDelta = TimeDelta::seconds(10);
/// Grace after a grant's unlock time for the door to start opening.
pub const GRANT_GRACE: TimeDelta = TimeDelta::seconds(2);

#[derive(Debug, Clone, Default)]
struct Door {
    /// Until when a grant makes opening the door legitimate.
    granted_until: Option<DateTime<Utc>>,
    last_rex: Option<DateTime<Utc>>,
    open_since: Option<DateTime<Utc>>,
    held_open_reported: bool,
}

/// An alarm the hub should record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    ForcedOpen { door_id: i64 },
    HeldOpen { door_id: i64, open_for: TimeDelta },
}

/// A door whose contact says it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenDoor {
    pub door_id: i64,
    pub since: DateTime<Utc>,
    /// Open past its threshold (a held-open alarm was raised).
    pub held_open: bool,
}

#[derive(Debug, Default)]
pub struct DoorStates {
    doors: HashMap<i64, Door>,
}

impl DoorStates {
    /// Every door open now, longest open first.
    pub fn open_doors(&self) -> Vec<OpenDoor> {
        let mut open: Vec<OpenDoor> = self
            .doors
            .iter()
            .filter_map(|(door_id, door)| {
                door.open_since.map(|since| OpenDoor {
                    door_id: *door_id,
                    since,
                    held_open: door.held_open_reported,
                })
            })
            .collect();
        open.sort_by_key(|d| (d.since, d.door_id));
        open
    }

    pub fn granted(&mut self, door_id: i64, unlock_ms: u32, now: DateTime<Utc>) {
        let until = now + TimeDelta::milliseconds(i64::from(unlock_ms)) + GRANT_GRACE;
        let door = self.doors.entry(door_id).or_default();
        door.granted_until = Some(door.granted_until.map_or(until, |u| u.max(until)));
    }

    pub fn rex(&mut self, door_id: i64, now: DateTime<Utc>) {
        self.doors.entry(door_id).or_default().last_rex = Some(now);
    }

    /// The door's contact says open or closed; returns an alarm when it was forced.
    pub fn contact(&mut self, door_id: i64, open: bool, now: DateTime<Utc>) -> Option<Alarm> {
        let door = self.doors.entry(door_id).or_default();
        if !open {
            door.open_since = None;
            door.held_open_reported = false;
            return None;
        }
        if door.open_since.is_some() {
            return None; // already open: a repeated report
        }
        door.open_since = Some(now);
        let granted = door.granted_until.is_some_and(|until| now <= until);
        let leaving = door
            .last_rex
            .is_some_and(|at| now - at <= REX_WINDOW && now >= at);
        // One grant lets the door open once.
        door.granted_until = None;
        (!granted && !leaving).then_some(Alarm::ForcedOpen { door_id })
    }

    /// Doors open longer than their threshold, each reported once per opening.
    /// `threshold` gives a door's held-open time (None: unknown door, skipped).
    pub fn held_open(
        &mut self,
        now: DateTime<Utc>,
        threshold: impl Fn(i64) -> Option<TimeDelta>,
    ) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        for (door_id, door) in &mut self.doors {
            let (Some(since), false) = (door.open_since, door.held_open_reported) else {
                continue;
            };
            if let Some(limit) = threshold(*door_id)
                && now - since > limit
            {
                door.held_open_reported = true;
                alarms.push(Alarm::HeldOpen {
                    door_id: *door_id,
                    open_for: now - since,
                });
            }
        }
        alarms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn opening_after_a_grant_or_rex_is_fine_otherwise_forced() {
        let mut doors = DoorStates::default();
        doors.granted(1, 5000, t(0));
        assert_eq!(
            doors.contact(1, true, t(3)),
            None,
            "opened within the unlock time"
        );
        assert_eq!(doors.contact(1, false, t(8)), None);
        assert_eq!(
            doors.contact(1, true, t(9)),
            Some(Alarm::ForcedOpen { door_id: 1 }),
            "the grant was used"
        );
        doors.contact(1, false, t(10));
        assert_eq!(
            doors.contact(1, true, t(30)),
            Some(Alarm::ForcedOpen { door_id: 1 })
        );
        doors.contact(1, false, t(31));
        doors.rex(1, t(40));
        assert_eq!(doors.contact(1, true, t(42)), None, "someone leaving");
        doors.contact(1, false, t(43));
        doors.granted(2, 5000, t(0));
        assert_eq!(
            doors.contact(2, true, t(8)),
            Some(Alarm::ForcedOpen { door_id: 2 }),
            "too late for the grant"
        );
        assert_eq!(
            doors.contact(2, true, t(9)),
            None,
            "a repeated open is not a second alarm"
        );
    }

    #[test]
    fn held_open_is_reported_once_per_opening() {
        let mut doors = DoorStates::default();
        doors.granted(1, 5000, t(0));
        doors.contact(1, true, t(1));
        let limit = |_| Some(TimeDelta::seconds(30));
        assert!(doors.held_open(t(20), limit).is_empty());
        assert_eq!(
            doors.held_open(t(40), limit),
            vec![Alarm::HeldOpen {
                door_id: 1,
                open_for: TimeDelta::seconds(39)
            }]
        );
        assert!(doors.held_open(t(50), limit).is_empty(), "once");
        doors.contact(1, false, t(60));
        assert!(doors.held_open(t(200), limit).is_empty(), "closed");
    }
}
