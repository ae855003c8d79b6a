//! How many reader faults are recorded one by one: a client flooding bad messages (or
//! made-up reader ids) must not grow the event log without bound. Pure bookkeeping.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

/// Fault rows one reader id may add in a minute; the rest are counted.
pub const PER_READER: u32 = 20;
/// Fault rows all reader ids together may add in a minute (a flood of made-up ids).
pub const IN_ALL: u32 = 600;
const WINDOW: TimeDelta = TimeDelta::minutes(1);
/// Reader ids whose counted faults are told apart in a summary; the faults of any more are
/// told together, so that a flood of made-up ids costs a bounded number of rows and bytes.
pub const TOLD_APART: usize = 100;
/// The summary key of the ids beyond `TOLD_APART` (reader ids as recorded have no spaces).
pub const OTHER_IDS: &str = "other reader ids";

/// What to do with one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Record,
    /// Counted, not recorded: the budget of its minute is spent.
    Count,
}

/// Faults that were counted and not recorded in a minute that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub since: DateTime<Utc>,
    /// Per reader id, in id order.
    pub by_reader: Vec<(String, u64)>,
}

#[derive(Debug, Default)]
pub struct FaultBudget {
    window_start: Option<DateTime<Utc>>,
    recorded: HashMap<String, u32>,
    recorded_in_all: u32,
    counted: HashMap<String, u64>,
}

impl FaultBudget {
    /// Decides for one fault of `reader` at `now`; also returns what the minute before
    /// counted, if this fault is the first of a new minute.
    pub fn admit(&mut self, reader: &str, now: DateTime<Utc>) -> (Admission, Option<Suppressed>) {
        let closed = self.close(now);
        let mine = self.recorded.get(reader).copied().unwrap_or(0);
        let admission = if mine < PER_READER && self.recorded_in_all < IN_ALL {
            *self.recorded.entry(reader.to_owned()).or_default() += 1;
            self.recorded_in_all += 1;
            Admission::Record
        } else {
            let key = if self.counted.len() < TOLD_APART || self.counted.contains_key(reader) {
                reader
            } else {
                OTHER_IDS
            };
            *self.counted.entry(key.to_owned()).or_default() += 1;
            Admission::Count
        };
        (admission, closed)
    }

    /// Starts a new minute if the current one is over, and returns what it counted (for a
    /// caller that asks every second, so that the count of a flood that stopped is told).
    pub fn close(&mut self, now: DateTime<Utc>) -> Option<Suppressed> {
        if self.window_start.is_some_and(|start| now - start < WINDOW) {
            return None;
        }
        let since = self.window_start.replace(now);
        self.recorded.clear();
        self.recorded_in_all = 0;
        if self.counted.is_empty() {
            return None;
        }
        let mut by_reader: Vec<(String, u64)> = self.counted.drain().collect();
        by_reader.sort();
        since.map(|since| Suppressed { since, by_reader })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_flood_is_recorded_up_to_the_budget_then_counted() {
        let mut budget = FaultBudget::default();
        let admitted: Vec<_> = (0..25).map(|_| budget.admit("r1", t(0)).0).collect();
        assert_eq!(
            admitted.iter().filter(|a| **a == Admission::Record).count(),
            PER_READER as usize
        );
        // Another reader has its own budget.
        assert_eq!(budget.admit("r2", t(1)).0, Admission::Record);
        assert_eq!(budget.close(t(30)), None, "the minute is not over");
        let closed = budget.close(t(61)).unwrap();
        assert_eq!(closed.since, t(0));
        assert_eq!(closed.by_reader, vec![("r1".to_owned(), 5)]);
        assert_eq!(
            budget.admit("r1", t(62)).0,
            Admission::Record,
            "a new minute"
        );
        assert_eq!(budget.close(t(200)), None, "nothing counted");
        // A flood that goes on: the first fault of the next minute brings the count.
        for _ in 0..21 {
            budget.admit("r3", t(200));
        }
        let (admission, closed) = budget.admit("r3", t(261));
        assert_eq!(admission, Admission::Record);
        assert_eq!(closed.unwrap().by_reader, vec![("r3".to_owned(), 1)]);
    }

    #[test]
    fn made_up_reader_ids_share_one_budget() {
        let mut budget = FaultBudget::default();
        let recorded = (0..1000)
            .filter(|i| budget.admit(&format!("stranger-{i}"), t(0)).0 == Admission::Record)
            .count();
        assert_eq!(recorded, IN_ALL as usize);
        let closed = budget.close(t(60)).unwrap();
        assert_eq!(closed.by_reader.len(), TOLD_APART + 1, "a bounded summary");
        let total: u64 = closed.by_reader.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 400, "every fault counted");
        assert!(
            closed
                .by_reader
                .iter()
                .any(|(id, n)| id == OTHER_IDS && *n == 300)
        );
    }
}
