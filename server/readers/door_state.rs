//! What each door is doing, from its readers' events: unknown until a reader reports its
//! contact, then open or closed since when, whether it was opened without a grant or a
//! request-to-exit (forced) or left open past its threshold (held open), and which reader
//! said so, so that a door whose reporting reader is offline reads as stale rather than as
//! fact. Pure bookkeeping; the hub records the alarms.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

/// A door opened this soon after a request-to-exit was pressed is someone leaving.
pub const REX_WINDOW: TimeDelta = TimeDelta::seconds(10);
/// Grace after a grant's unlock time for the door to start opening.
pub const GRANT_GRACE: TimeDelta = TimeDelta::seconds(2);

/// What a door's contact last said.
#[derive(Debug, Clone)]
struct Contact {
    open: bool,
    since: DateTime<Utc>,
    /// The reader that reported it: while that reader is offline, this is only the last
    /// thing known.
    reader: String,
    /// It opened without a grant or a request-to-exit.
    forced: bool,
}

#[derive(Debug, Clone, Default)]
struct Door {
    /// Until when a grant makes opening the door legitimate.
    granted_until: Option<DateTime<Utc>>,
    last_rex: Option<DateTime<Utc>>,
    /// None until a reader reports the door's contact (since the appliance started).
    contact: Option<Contact>,
    held_open_reported: bool,
}

/// An alarm the hub should record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    ForcedOpen { door_id: i64 },
    HeldOpen { door_id: i64, open_for: TimeDelta },
}

/// A door's state as its contact last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorState {
    /// No reader has reported the door's contact since the appliance started.
    Unknown,
    Closed {
        since: DateTime<Utc>,
    },
    Open {
        since: DateTime<Utc>,
        /// It opened without a grant or a request-to-exit.
        forced: bool,
        /// Open past its threshold (a held-open alarm was raised).
        held_open: bool,
    },
}

/// What is known of one door: its state, and whether that is stale (the reader that
/// reported it is offline now, so the door may have changed unseen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorStatus {
    pub state: DoorState,
    pub stale: bool,
}

impl DoorStatus {
    /// The state to alarm on: open, reported by a reader that is still online.
    pub fn open_now(&self) -> bool {
        matches!(self.state, DoorState::Open { .. }) && !self.stale
    }
}

/// A door whose contact says it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenDoor {
    pub door_id: i64,
    pub since: DateTime<Utc>,
    /// Open past its threshold (a held-open alarm was raised).
    pub held_open: bool,
    /// It opened without a grant or a request-to-exit.
    pub forced: bool,
    /// The reader that reported it open is offline: the door may have closed unseen.
    pub stale: bool,
}

#[derive(Debug, Default)]
pub struct DoorStates {
    doors: HashMap<i64, Door>,
}

impl DoorStates {
    /// Every door reported open, longest open first; `offline` says whether a reader is
    /// offline now (its reports are then stale).
    pub fn open_doors(&self, offline: impl Fn(&str) -> bool) -> Vec<OpenDoor> {
        let mut open: Vec<OpenDoor> = self
            .doors
            .iter()
            .filter_map(|(door_id, door)| {
                let contact = door.contact.as_ref().filter(|c| c.open)?;
                Some(OpenDoor {
                    door_id: *door_id,
                    since: contact.since,
                    held_open: door.held_open_reported,
                    forced: contact.forced,
                    stale: offline(&contact.reader),
                })
            })
            .collect();
        open.sort_by_key(|d| (d.since, d.door_id));
        open
    }

    /// What is known of one door; `offline` as for [`DoorStates::open_doors`].
    pub fn status(&self, door_id: i64, offline: impl Fn(&str) -> bool) -> DoorStatus {
        let Some((door, contact)) = self
            .doors
            .get(&door_id)
            .and_then(|door| Some((door, door.contact.as_ref()?)))
        else {
            return DoorStatus {
                state: DoorState::Unknown,
                stale: false,
            };
        };
        let state = if contact.open {
            DoorState::Open {
                since: contact.since,
                forced: contact.forced,
                held_open: door.held_open_reported,
            }
        } else {
            DoorState::Closed {
                since: contact.since,
            }
        };
        DoorStatus {
            state,
            stale: offline(&contact.reader),
        }
    }

    pub fn granted(&mut self, door_id: i64, unlock_ms: u32, now: DateTime<Utc>) {
        let until = now + TimeDelta::milliseconds(i64::from(unlock_ms)) + GRANT_GRACE;
        let door = self.doors.entry(door_id).or_default();
        door.granted_until = Some(door.granted_until.map_or(until, |u| u.max(until)));
    }

    pub fn rex(&mut self, door_id: i64, now: DateTime<Utc>) {
        self.doors.entry(door_id).or_default().last_rex = Some(now);
    }

    /// `reader` says the door's contact is open or closed; returns an alarm when it was
    /// forced.
    pub fn contact(
        &mut self,
        door_id: i64,
        reader: &str,
        open: bool,
        now: DateTime<Utc>,
    ) -> Option<Alarm> {
        let door = self.doors.entry(door_id).or_default();
        if let Some(contact) = door.contact.as_mut()
            && contact.open == open
        {
            // A repeated report: the state stands since it began, now vouched for by
            // this reader.
            reader.clone_into(&mut contact.reader);
            return None;
        }
        if !open {
            door.contact = Some(Contact {
                open,
                since: now,
                reader: reader.to_owned(),
                forced: false,
            });
            door.held_open_reported = false;
            return None;
        }
        let granted = door.granted_until.is_some_and(|until| now <= until);
        let leaving = door
            .last_rex
            .is_some_and(|at| now - at <= REX_WINDOW && now >= at);
        // One grant lets the door open once.
        door.granted_until = None;
        let forced = !granted && !leaving;
        door.contact = Some(Contact {
            open,
            since: now,
            reader: reader.to_owned(),
            forced,
        });
        door.held_open_reported = false;
        forced.then_some(Alarm::ForcedOpen { door_id })
    }

    /// Doors open longer than their threshold, each reported once per opening.
    /// `threshold` gives a door's held-open time (None: unknown door, skipped); a door
    /// whose reporting reader is `offline` is skipped: its state is only the last known,
    /// and an alarm needs a door known to be open.
    pub fn held_open(
        &mut self,
        now: DateTime<Utc>,
        threshold: impl Fn(i64) -> Option<TimeDelta>,
        offline: impl Fn(&str) -> bool,
    ) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        for (door_id, door) in &mut self.doors {
            let Some(contact) = door.contact.as_ref().filter(|c| c.open) else {
                continue;
            };
            if door.held_open_reported || offline(&contact.reader) {
                continue;
            }
            if let Some(limit) = threshold(*door_id)
                && now - contact.since > limit
            {
                door.held_open_reported = true;
                alarms.push(Alarm::HeldOpen {
                    door_id: *door_id,
                    open_for: now - contact.since,
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

    fn none_offline(_: &str) -> bool {
        false
    }

    #[test]
    fn opening_after_a_grant_or_rex_is_fine_otherwise_forced() {
        let mut doors = DoorStates::default();
        doors.granted(1, 5000, t(0));
        assert_eq!(
            doors.contact(1, "r1", true, t(3)),
            None,
            "opened within the unlock time"
        );
        assert_eq!(doors.contact(1, "r1", false, t(8)), None);
        assert_eq!(
            doors.contact(1, "r1", true, t(9)),
            Some(Alarm::ForcedOpen { door_id: 1 }),
            "the grant was used"
        );
        doors.contact(1, "r1", false, t(10));
        assert_eq!(
            doors.contact(1, "r1", true, t(30)),
            Some(Alarm::ForcedOpen { door_id: 1 })
        );
        doors.contact(1, "r1", false, t(31));
        doors.rex(1, t(40));
        assert_eq!(doors.contact(1, "r1", true, t(42)), None, "someone leaving");
        doors.contact(1, "r1", false, t(43));
        doors.granted(2, 5000, t(0));
        assert_eq!(
            doors.contact(2, "r2", true, t(8)),
            Some(Alarm::ForcedOpen { door_id: 2 }),
            "too late for the grant"
        );
        assert_eq!(
            doors.contact(2, "r2", true, t(9)),
            None,
            "a repeated open is not a second alarm"
        );
        assert_eq!(
            doors.status(2, none_offline).state,
            DoorState::Open {
                since: t(8),
                forced: true,
                held_open: false
            },
            "open since it first opened, and forced"
        );
    }

    #[test]
    fn held_open_is_reported_once_per_opening() {
        let mut doors = DoorStates::default();
        doors.granted(1, 5000, t(0));
        doors.contact(1, "r1", true, t(1));
        let limit = |_| Some(TimeDelta::seconds(30));
        assert!(doors.held_open(t(20), limit, none_offline).is_empty());
        assert_eq!(
            doors.held_open(t(40), limit, none_offline),
            vec![Alarm::HeldOpen {
                door_id: 1,
                open_for: TimeDelta::seconds(39)
            }]
        );
        assert!(
            doors.held_open(t(50), limit, none_offline).is_empty(),
            "once"
        );
        doors.contact(1, "r1", false, t(60));
        assert!(
            doors.held_open(t(200), limit, none_offline).is_empty(),
            "closed"
        );
    }

    #[test]
    fn a_door_never_reported_is_unknown_not_closed() {
        let mut doors = DoorStates::default();
        assert_eq!(doors.status(1, none_offline).state, DoorState::Unknown);
        // A grant or a REX says nothing of the contact.
        doors.granted(1, 5000, t(0));
        doors.rex(1, t(1));
        assert_eq!(doors.status(1, none_offline).state, DoorState::Unknown);
        assert!(doors.open_doors(none_offline).is_empty());
        doors.contact(1, "r1", false, t(2));
        assert_eq!(
            doors.status(1, none_offline),
            DoorStatus {
                state: DoorState::Closed { since: t(2) },
                stale: false
            }
        );
    }

    #[test]
    fn a_door_whose_reporting_reader_is_offline_is_stale_and_raises_no_held_open_alarm() {
        let mut doors = DoorStates::default();
        doors.granted(1, 5000, t(0));
        doors.contact(1, "r1", true, t(1));
        let limit = |_| Some(TimeDelta::seconds(30));
        let r1_offline = |reader: &str| reader == "r1";
        let status = doors.status(1, r1_offline);
        assert!(status.stale);
        assert!(!status.open_now());
        assert!(doors.open_doors(r1_offline)[0].stale);
        assert!(
            doors.held_open(t(100), limit, r1_offline).is_empty(),
            "no alarm from what an offline reader said last"
        );
        // Another reader of the door is no witness of its contact: still stale.
        assert!(doors.status(1, |reader: &str| reader != "r2").stale);
        // Back online, the door is known open again, and has been for long enough.
        assert!(doors.status(1, none_offline).open_now());
        assert_eq!(doors.held_open(t(101), limit, none_offline).len(), 1);
        // A report from another reader makes that reader its witness.
        doors.contact(1, "r2", true, t(102));
        assert!(!doors.status(1, r1_offline).stale);
    }
}
