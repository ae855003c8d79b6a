//! Anti-passback state: the last direction each person passed in each anti-passback zone.
//! It changes with every swipe, so it lives beside the snapshot, not in it, keyed by ids.

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;

use super::decide::{Decision, Outcome};
use super::model::Direction;

/// Where a person was last seen passing in one anti-passback zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresenceEntry {
    pub direction: Direction,
    pub at: DateTime<Utc>,
    pub door_id: i64,
}

/// Keyed by database ids (not snapshot indexes) so it survives snapshot recompiles.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    last: FxHashMap<(i64, i64), PresenceEntry>,
}

impl Presence {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn last(&self, person_id: i64, zone_id: i64) -> Option<PresenceEntry> {
        self.last.get(&(person_id, zone_id)).copied()
    }

    /// Notes a granted swipe at a reader of an anti-passback zone; anything else (denials,
    /// PIN prompts, doors outside anti-passback) changes nothing. Returns whether it
    /// recorded. Call it only once the door was actually released to the person.
    pub fn record(&mut self, decision: &Decision, now: DateTime<Utc>) -> bool {
        let (Outcome::Grant { .. }, Some(person_id), Some(zone_id)) = (
            decision.outcome,
            decision.person_id,
            decision.antipassback_zone,
        ) else {
            return false;
        };
        self.last.insert(
            (person_id, zone_id),
            PresenceEntry {
                direction: decision.direction,
                at: now,
                door_id: decision.door_id,
            },
        );
        true
    }

    /// Forgets one person everywhere (an operator's anti-passback reset).
    pub fn forget_person(&mut self, person_id: i64) {
        self.last.retain(|(p, _), _| *p != person_id);
    }

    /// Forgets everyone (after an evacuation, say). No nightly reset is performed yet:
    /// nothing calls this, and presence lasts until the appliance restarts.
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
