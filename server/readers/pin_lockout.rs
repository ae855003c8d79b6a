//! PIN guessing at the doors: each card's wrong PINs in a row, and its block once they
//! reach the limit. Kept by the hub beside presence; the decision itself stays pure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeDelta, Utc};

/// How many wrong PINs in a row block a card, and for how long (`[readers]` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub attempts: u32,
    pub block_for: TimeDelta,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            attempts: 5,
            block_for: TimeDelta::minutes(15),
        }
    }
}

/// One card's count. `in_flight` are PINs being checked now: they count against the limit
/// before their answer is known, so that guesses sent at once cannot all be checked.
#[derive(Debug, Default)]
struct Tally {
    wrong: u32,
    in_flight: u32,
    blocked_until: Option<DateTime<Utc>>,
}

impl Tally {
    fn is_idle(&self) -> bool {
        self.wrong == 0 && self.in_flight == 0 && self.blocked_until.is_none()
    }
}

/// What a checked PIN turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinResult {
    Right,
    Wrong,
    /// The swipe was refused before its PIN was looked at, or not recorded (a resend).
    NotChecked,
}

/// Whether a card's PIN may be checked now.
pub enum Admission {
    /// Yes: the ticket holds its place among the attempts until it is settled.
    Check(PinTicket),
    /// No: the card is blocked until then (or, with `None`, as many PINs as are still
    /// allowed are being checked right now).
    Refused(Option<DateTime<Utc>>),
}

/// The cards' counts; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct PinLockout {
    policy: LockoutPolicy,
    cards: Arc<Mutex<HashMap<String, Tally>>>,
}

impl PinLockout {
    pub fn new(policy: LockoutPolicy) -> PinLockout {
        PinLockout {
            policy,
            cards: Arc::default(),
        }
    }

    pub fn policy(&self) -> LockoutPolicy {
        self.policy
    }

    fn cards(&self) -> MutexGuard<'_, HashMap<String, Tally>> {
        match self.cards.lock() {
            Ok(cards) => cards,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Until when `card` is blocked, if it is at `now`.
    pub fn blocked_until(&self, card: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cards()
            .get(card)
            .and_then(|t| t.blocked_until)
            .filter(|until| now < *until)
    }

    /// Asks to check a PIN of `card`. Counting and deciding happen under one lock, so no
    /// more than the allowed number of PINs is ever checked, however many arrive at once.
    pub fn admit(&self, card: &str, now: DateTime<Utc>) -> Admission {
        let mut cards = self.cards();
        let tally = cards.entry(card.to_owned()).or_default();
        if let Some(until) = tally.blocked_until {
            if now < until {
                return Admission::Refused(Some(until));
            }
            // The block is over: the card starts afresh.
            tally.blocked_until = None;
            tally.wrong = 0;
        }
        if tally.wrong.saturating_add(tally.in_flight) >= self.policy.attempts {
            return Admission::Refused(None);
        }
        tally.in_flight += 1;
        Admission::Check(PinTicket {
            lockout: self.clone(),
            card: card.to_owned(),
            settled: false,
        })
    }

    /// Settles one attempt: a wrong PIN counts, a right one clears the count. Returns the
    /// end of the block when this wrong PIN is the one that blocks the card.
    fn settle(&self, card: &str, result: PinResult, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut cards = self.cards();
        let tally = cards.get_mut(card)?;
        tally.in_flight = tally.in_flight.saturating_sub(1);
        let mut blocked = None;
        match result {
            PinResult::Right => tally.wrong = 0,
            PinResult::Wrong => {
                tally.wrong = tally.wrong.saturating_add(1);
                if tally.wrong >= self.policy.attempts && tally.blocked_until.is_none() {
                    let until = now + self.policy.block_for;
                    tally.blocked_until = Some(until);
                    blocked = Some(until);
                }
            }
            PinResult::NotChecked => {}
        }
        if tally.is_idle() {
            cards.remove(card);
        }
        blocked
    }
}

/// One PIN check's place among a card's attempts. Settle it with what the check found;
/// dropped unsettled (an error, a cancelled task), it gives its place back uncounted.
pub struct PinTicket {
    lockout: PinLockout,
    card: String,
    settled: bool,
}

impl PinTicket {
    /// Returns the end of the block when this attempt blocks the card.
    pub fn settle(mut self, result: PinResult, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.settled = true;
        self.lockout.settle(&self.card, result, now)
    }
}

impl Drop for PinTicket {
    fn drop(&mut self) {
        if !self.settled {
            self.lockout
                .settle(&self.card, PinResult::NotChecked, Utc::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + TimeDelta::minutes(minutes)
    }

    fn check(lockout: &PinLockout, result: PinResult, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match lockout.admit("card:04A1", now) {
            Admission::Check(ticket) => ticket.settle(result, now),
            Admission::Refused(until) => panic!("refused until {until:?}"),
        }
    }

    #[test]
    fn five_wrong_in_a_row_block_and_a_right_one_resets() {
        let lockout = PinLockout::new(LockoutPolicy::default());
        for _ in 0..4 {
            assert_eq!(check(&lockout, PinResult::Wrong, at(0)), None);
        }
        assert_eq!(check(&lockout, PinResult::Right, at(0)), None);
        for _ in 0..4 {
            assert_eq!(check(&lockout, PinResult::Wrong, at(1)), None);
        }
        assert_eq!(check(&lockout, PinResult::Wrong, at(1)), Some(at(16)));
        assert!(matches!(
            lockout.admit("card:04A1", at(10)),
            Admission::Refused(Some(until)) if until == at(16)
        ));
        assert_eq!(lockout.blocked_until("card:04A1", at(10)), Some(at(16)));
        assert_eq!(lockout.blocked_until("card:04A1", at(16)), None);
        // After the block the card starts afresh.
        assert_eq!(check(&lockout, PinResult::Right, at(16)), None);
        assert!(
            lockout.cards().is_empty(),
            "nothing kept for a settled card"
        );
    }

    #[test]
    fn guesses_sent_at_once_are_not_all_checked() {
        let lockout = PinLockout::new(LockoutPolicy::default());
        let tickets: Vec<PinTicket> = (0..20)
            .filter_map(|_| match lockout.admit("card:04A1", at(0)) {
                Admission::Check(ticket) => Some(ticket),
                Admission::Refused(_) => None,
            })
            .collect();
        assert_eq!(tickets.len(), 5, "only as many as the limit are checked");
        let blocks: Vec<_> = tickets
            .into_iter()
            .filter_map(|t| t.settle(PinResult::Wrong, at(0)))
            .collect();
        assert_eq!(blocks, [at(15)], "the fifth wrong PIN blocks, once");
    }

    #[test]
    fn an_unsettled_ticket_gives_its_place_back() {
        let lockout = PinLockout::new(LockoutPolicy {
            attempts: 1,
            block_for: TimeDelta::minutes(1),
        });
        let Admission::Check(ticket) = lockout.admit("card:04A1", at(0)) else {
            panic!("the first attempt is checked");
        };
        assert!(matches!(
            lockout.admit("card:04A1", at(0)),
            Admission::Refused(None)
        ));
        drop(ticket);
        assert!(matches!(
            lockout.admit("card:04A1", at(0)),
            Admission::Check(_)
        ));
    }
}
