//! The short-term state the scorer needs beyond the baselines: each card's last few swipes
//! and where it was last seen, each reader's last denials. Small and bounded: entries
//! older than `FORGET_AFTER` are swept once the tables pass their capacity.

use chrono::{DateTime, TimeDelta, Utc};
use rustc_hash::FxHashMap;

use super::context::ScoringContext;
use super::observation::{CardKey, Observation, Outcome};
use crate::policy::model::Direction;

/// Swipes kept per card (and denials per reader): enough for any window below.
const KEPT: usize = 8;

/// Nothing older matters to any feature: an entry unseen this long may be forgotten.
pub const FORGET_AFTER: TimeDelta = TimeDelta::hours(24);

/// Cards and readers tracked before old entries are swept (about 200 bytes each).
pub const DEFAULT_CAPACITY: usize = 200_000;

/// One swipe as remembered: when (ms), where, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub at_ms: i64,
    pub site: Option<i64>,
    pub zone: Option<i64>,
    pub door: Option<i64>,
    pub denied: bool,
}

#[derive(Debug, Clone, Default)]
struct CardState {
    /// The last `KEPT` swipes, oldest first.
    swipes: Vec<Seen>,
    /// The last granted swipe, however long ago within `FORGET_AFTER`.
    last_granted: Option<Seen>,
    /// Zones with exit readers: the last granted direction there and when.
    inside: Vec<(i64, Direction, i64)>,
}

#[derive(Debug, Clone, Default)]
struct ReaderState {
    /// The last `KEPT` denials: when (ms) and which card.
    denials: Vec<(i64, CardKey)>,
}

/// Short-term state, updated by `record` after each swipe is scored.
#[derive(Debug, Clone)]
pub struct Recent {
    cards: FxHashMap<CardKey, CardState>,
    readers: FxHashMap<u64, ReaderState>,
    capacity: usize,
}

impl Default for Recent {
    fn default() -> Self {
        Recent::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Recent {
    pub fn with_capacity(capacity: usize) -> Recent {
        Recent {
            cards: FxHashMap::default(),
            readers: FxHashMap::default(),
            capacity: capacity.max(16),
        }
    }

    pub fn len(&self) -> usize {
        self.cards.len() + self.readers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The card's swipes (and denials among them) within `window` before `now`.
    pub fn card_swipes(&self, card: CardKey, now: DateTime<Utc>, window: TimeDelta) -> (u32, u32) {
        let since = now.timestamp_millis() - window.num_milliseconds();
        self.cards.get(&card).map_or((0, 0), |c| {
            c.swipes
                .iter()
                .filter(|s| s.at_ms >= since)
                .fold((0, 0), |(n, d), s| (n + 1, d + u32::from(s.denied)))
        })
    }

    /// The card's last swipe, granted or not.
    pub fn last_swipe(&self, card: CardKey) -> Option<Seen> {
        self.cards.get(&card).and_then(|c| c.swipes.last().copied())
    }

    pub fn last_granted(&self, card: CardKey) -> Option<Seen> {
        self.cards.get(&card).and_then(|c| c.last_granted)
    }

    /// The card's last granted direction in `zone` and when (ms), if one is remembered.
    pub fn last_direction(&self, card: CardKey, zone: i64) -> Option<(Direction, i64)> {
        self.cards.get(&card).and_then(|c| {
            c.inside
                .iter()
                .find(|(z, _, _)| *z == zone)
                .map(|(_, d, at)| (*d, *at))
        })
    }

    /// Distinct other cards denied at the reader within `window` before `now`.
    pub fn reader_denied_cards(
        &self,
        reader: u64,
        except: Option<CardKey>,
        now: DateTime<Utc>,
        window: TimeDelta,
    ) -> u32 {
        let since = now.timestamp_millis() - window.num_milliseconds();
        let Some(r) = self.readers.get(&reader) else {
            return 0;
        };
        let mut cards: Vec<CardKey> = r
            .denials
            .iter()
            .filter(|(at, card)| *at >= since && Some(*card) != except)
            .map(|(_, card)| *card)
            .collect();
        cards.sort_unstable_by_key(|c| match c {
            CardKey::Known(id) => (0, *id as u64),
            CardKey::Unknown(h) => (1, *h),
        });
        cards.dedup();
        cards.len() as u32
    }

    /// Takes a scored swipe in.
    pub fn record(&mut self, ctx: &ScoringContext, o: &Observation) {
        let Some(card) = o.card() else { return };
        let at_ms = o.at.timestamp_millis();
        let denied = o.outcome == Outcome::Denied;
        let seen = Seen {
            at_ms,
            site: o.site,
            zone: o.zone,
            door: o.door,
            denied,
        };
        if self.cards.len() + self.readers.len() >= self.capacity {
            self.sweep(at_ms);
        }
        let state = self.cards.entry(card).or_default();
        if state.swipes.len() >= KEPT {
            state.swipes.remove(0);
        }
        state.swipes.push(seen);
        if o.granted() {
            state.last_granted = Some(seen);
            if let (Some(zone), Some(direction)) = (o.zone, o.direction)
                && ctx.zone_has_exit(zone)
            {
                match state.inside.iter_mut().find(|(z, _, _)| *z == zone) {
                    Some(entry) => *entry = (zone, direction, at_ms),
                    None => {
                        if state.inside.len() >= 4 {
                            state.inside.remove(0);
                        }
                        state.inside.push((zone, direction, at_ms));
                    }
                }
            }
        }
        if denied {
            let reader = self.readers.entry(o.reader).or_default();
            if reader.denials.len() >= KEPT {
                reader.denials.remove(0);
            }
            reader.denials.push((at_ms, card));
        }
    }

    /// Forgets what no feature looks at any more; if the tables are still full (a flood of
    /// distinct unknown cards), forgets the older half of them.
    fn sweep(&mut self, now_ms: i64) {
        let horizon = now_ms - FORGET_AFTER.num_milliseconds();
        let last = |c: &CardState| c.swipes.last().map_or(i64::MIN, |s| s.at_ms);
        self.cards.retain(|_, c| last(c) >= horizon);
        self.readers
            .retain(|_, r| r.denials.last().is_some_and(|(at, _)| *at >= horizon));
        if self.cards.len() + self.readers.len() >= self.capacity {
            let mut times: Vec<i64> = self.cards.values().map(last).collect();
            times.sort_unstable();
            let median = times.get(times.len() / 2).copied().unwrap_or(i64::MAX);
            self.cards.retain(|_, c| last(c) > median);
            self.readers
                .retain(|_, r| r.denials.last().is_some_and(|(at, _)| *at > median));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::context::ContextBuilder;

    fn swipe(card: i64, secs: i64, outcome: Outcome) -> Observation {
        Observation {
            at: DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap(),
            site: Some(1),
            zone: Some(2),
            door: Some(3),
            reader: 99,
            direction: Some(Direction::In),
            person: Some(card),
            credential: Some(card),
            unknown_key: None,
            outcome,
            deny: None,
        }
    }

    #[test]
    fn counts_denials_in_a_window_and_stays_within_its_capacity() {
        let ctx = ContextBuilder::default().build();
        let mut r = Recent::with_capacity(16);
        for i in 0..5 {
            r.record(&ctx, &swipe(1, i * 60, Outcome::Denied));
        }
        let now = DateTime::from_timestamp(1_800_000_000 + 300, 0).unwrap();
        assert_eq!(
            r.card_swipes(CardKey::Known(1), now, TimeDelta::minutes(10)),
            (5, 5)
        );
        assert_eq!(
            r.card_swipes(CardKey::Known(1), now, TimeDelta::minutes(2)),
            (2, 2)
        );
        r.record(&ctx, &swipe(2, 301, Outcome::Denied));
        assert_eq!(
            r.reader_denied_cards(99, Some(CardKey::Known(2)), now, TimeDelta::minutes(10)),
            1
        );
        for card in 10..200 {
            r.record(&ctx, &swipe(card, 400 + card, Outcome::Granted));
        }
        assert!(r.len() <= 16, "{} entries", r.len());
        assert!(r.last_granted(CardKey::Known(199)).is_some());
    }
}
