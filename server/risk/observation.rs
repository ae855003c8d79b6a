//! What the risk engine looks at in one swipe (`Observation`), and the one conversion from
//! a recorded event into it: the rest of `risk` never touches the event log's types.

use std::hash::{Hash, Hasher};

use chrono::{DateTime, Utc};

use crate::policy::DenyCode;
use crate::policy::model::Direction;
use crate::store::event_log::{Event, EventKind};

/// How the door answered the swipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    Denied,
    /// Asked for a PIN (a card+PIN door): not a denial, not yet a passage.
    PinRequired,
}

/// One swipe as the scorer and the baselines see it: places and people by id, the reader
/// and an unknown card's key by a hash (the raw key never enters the baselines).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub at: DateTime<Utc>,
    pub site: Option<i64>,
    pub zone: Option<i64>,
    pub door: Option<i64>,
    /// The reader's wire id, hashed (`key_hash`).
    pub reader: u64,
    pub direction: Option<Direction>,
    pub person: Option<i64>,
    pub credential: Option<i64>,
    /// An unknown card's presented key, hashed: repeated tries of one are evidence of
    /// probing, and the hash is all that is needed to count them.
    pub unknown_key: Option<u64>,
    pub outcome: Outcome,
    pub deny: Option<DenyCode>,
}

impl Observation {
    /// Whether it let someone through.
    pub fn granted(&self) -> bool {
        self.outcome == Outcome::Granted
    }

    /// Whose swipe this is for the short-term state: the credential, or an unknown key.
    pub fn card(&self) -> Option<CardKey> {
        match (self.credential, self.unknown_key) {
            (Some(id), _) => Some(CardKey::Known(id)),
            (None, Some(key)) => Some(CardKey::Unknown(key)),
            (None, None) => None,
        }
    }

    /// The swipe an event records (live or read back, recorded here or imported); `None`
    /// for other kinds of event and for swipes without a result.
    pub fn of_event(event: &Event) -> Option<Observation> {
        if event.kind != EventKind::Swipe {
            return None;
        }
        let outcome = match event.result.as_deref()? {
            "granted" => Outcome::Granted,
            "denied" => Outcome::Denied,
            "pin_required" => Outcome::PinRequired,
            _ => return None,
        };
        Some(Observation {
            at: event.at,
            site: event.site_id,
            zone: event.zone_id,
            door: event.door_id,
            reader: event.reader_id.as_deref().map_or(0, key_hash),
            direction: event.direction,
            person: event.person_id,
            credential: event.credential_id,
            unknown_key: match event.credential_id {
                Some(_) => None,
                None => event.presented.as_deref().map(key_hash),
            },
            outcome,
            deny: event.deny_code.as_deref().and_then(|d| d.parse().ok()),
        })
    }
}

/// A card as the short-term state tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardKey {
    Known(i64),
    Unknown(u64),
}

/// A stable 64-bit hash of a reader id or a presented key (FxHash: the same in every
/// process, so a scenario replays the same).
pub fn key_hash(text: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    text.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swipe_event_becomes_an_observation_and_other_kinds_do_not() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .to_utc();
        let mut e = Event::new(EventKind::Swipe, at);
        e.door_id = Some(3);
        e.person_id = Some(7);
        e.credential_id = Some(9);
        e.result = Some("denied".to_owned());
        e.deny_code = Some("schedule".to_owned());
        e.direction = Some(Direction::In);
        let o = Observation::of_event(&e).unwrap();
        assert_eq!(o.outcome, Outcome::Denied);
        assert_eq!(o.deny, Some(DenyCode::Schedule));
        assert_eq!(o.card(), Some(CardKey::Known(9)));
        assert!(Observation::of_event(&Event::new(EventKind::DoorOpen, at)).is_none());
        let mut unknown = Event::new(EventKind::Swipe, at);
        unknown.presented = Some("uid:04AABB".to_owned());
        unknown.result = Some("denied".to_owned());
        let o = Observation::of_event(&unknown).unwrap();
        assert_eq!(o.card(), Some(CardKey::Unknown(key_hash("uid:04AABB"))));
    }
}
