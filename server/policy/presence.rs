//! Anti-passback state: the last direction each person passed in each anti-passback zone.
//! It changes with every swipe, so it lives beside the snapshot, not in it, keyed by ids.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::model::Direction;

/// Where a person was last seen passing in one anti-passback zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresenceEntry {
    pub direction: Direction,
    pub at: DateTime<Utc>,
    pub door_id: i64,
}

/// One person passing one anti-passback zone's door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passage {
    pub person_id: i64,
    pub zone_id: i64,
    pub entry: PresenceEntry,
}

/// A passage noted before it is on record: undone with [`Presence::undo`] if the event
/// cannot be recorded, so that a swipe nobody was let through for is not remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reservation is undone when its event is not recorded"]
pub struct Reservation {
    person_id: i64,
    zone_id: i64,
    /// What the passage replaced, put back by `undo`.
    previous: Option<PresenceEntry>,
    /// Which noting this was: `undo` puts `previous` back only while it is still the last.
    serial: u64,
}

/// Keyed by database ids (not snapshot indexes) so it survives snapshot recompiles.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    last: FxHashMap<(i64, i64), (PresenceEntry, u64)>,
    serial: u64,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn last(&self, person_id: i64, zone_id: i64) -> Option<PresenceEntry> {
        self.last
            .get(&(person_id, zone_id))
            .map(|(entry, _)| *entry)
    }

    /// Notes a passage and returns how to undo it. Whether the person may pass is
    /// `decide`'s question, asked under the same lock as this (see `LivePolicy::settle`).
    pub fn pass(&mut self, passage: Passage) -> Reservation {
        self.serial += 1;
        let previous = self
            .last
            .insert(
                (passage.person_id, passage.zone_id),
                (passage.entry, self.serial),
            )
            .map(|(entry, _)| entry);
        Reservation {
            person_id: passage.person_id,
            zone_id: passage.zone_id,
            previous,
            serial: self.serial,
        }
    }

    /// Takes back a passage whose event was not recorded: what it replaced is the person's
    /// last passage again, unless a later passage of theirs was noted since (which stays).
    pub fn undo(&mut self, reservation: Reservation) {
        let key = (reservation.person_id, reservation.zone_id);
        if self.last.get(&key).map(|(_, serial)| *serial) != Some(reservation.serial) {
            return;
        }
        match reservation.previous {
            Some(previous) => {
                self.last.insert(key, (previous, 0));
            }
            None => {
                self.last.remove(&key);
            }
        }
    }

    /// Forgets one person everywhere (an operator's anti-passback reset).
    pub fn forget_person(&mut self, person_id: i64) {
        self.last.retain(|(p, _), _| *p != person_id);
    }

    /// Forgets the passages of one zone made before `before` (its daily reset); returns
    /// how many people it forgot. Passages at or after `before` were made after the reset.
    pub fn reset_zone(&mut self, zone_id: i64, before: DateTime<Utc>) -> usize {
        let len = self.last.len();
        self.last
            .retain(|(_, z), (entry, _)| *z != zone_id || entry.at >= before);
        len - self.last.len()
    }

    /// Forgets everyone (after an evacuation, say); nothing calls it yet.
    pub fn clear(&mut self) {
        self.last.clear();
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(person_id: i64, direction: Direction, minute: i64) -> Passage {
        Passage {
            person_id,
            zone_id: 7,
            entry: PresenceEntry {
                direction,
                at: DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::minutes(minute),
                door_id: 1,
            },
        }
    }

    #[test]
    fn an_undone_passage_puts_the_previous_one_back() {
        let mut p = Presence::new();
        let _ = p.pass(passage(1, Direction::In, 0));
        let out = p.pass(passage(1, Direction::Out, 1));
        p.undo(out);
        assert_eq!(p.last(1, 7).map(|e| e.direction), Some(Direction::In));
        let first = p.pass(passage(2, Direction::In, 2));
        p.undo(first);
        assert_eq!(p.last(2, 7), None);
    }

    #[test]
    fn undo_leaves_a_later_passage_alone() {
        let mut p = Presence::new();
        let entered = p.pass(passage(1, Direction::In, 0));
        let _left = p.pass(passage(1, Direction::Out, 1));
        p.undo(entered);
        assert_eq!(p.last(1, 7).map(|e| e.direction), Some(Direction::Out));
    }

    #[test]
    fn the_last_passage_counts_and_a_reset_forgets_older_ones() {
        // Rebuilt from the log: its passages noted oldest first, the last one counts.
        let mut p = Presence::new();
        for passage in [
            passage(1, Direction::In, 0),
            passage(2, Direction::In, 3),
            passage(1, Direction::Out, 5),
            passage(3, Direction::In, 10),
        ] {
            let _ = p.pass(passage);
        }
        assert_eq!(p.last(1, 7).map(|e| e.direction), Some(Direction::Out));
        let before = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::minutes(6);
        assert_eq!(p.reset_zone(7, before), 2);
        assert_eq!(p.last(2, 7), None);
        assert!(p.last(3, 7).is_some(), "a passage after the reset stays");
        assert_eq!(p.reset_zone(8, before), 0);
    }
}
