//! `Baselines`: the compiled picture of who normally swipes where and when. Aggregates
//! only (counts per hour of the week, doors with their first and last use, zone
//! transitions, rates), never copies of events: memory grows with people × the doors and
//! zones they use, not with the number of events. Trained by replaying history in time
//! order through `observe`, and kept up to date the same way, one swipe at a time.

use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use rustc_hash::FxHashMap;

use super::context::ScoringContext;
use super::observation::{Observation, Outcome};
use crate::policy::model::Direction;

/// Hours in a week: the time-of-day × weekday grid (Monday 00:00 is bin 0, on the site's
/// wall clock).
pub const HOURS_OF_WEEK: usize = 168;

/// Two swipes of one person further apart than this are not a transfer between places.
pub const MAX_TRANSFER: TimeDelta = TimeDelta::hours(12);

/// An entry counts as a re-entry without exit only this soon after the previous entry:
/// a day's entry after last night's missed exit reader is a habit, not a card passed back.
pub const REENTRY_WINDOW: TimeDelta = TimeDelta::hours(12);

/// The hour-of-week bin of `at` on the wall clock of `tz`.
pub fn hour_of_week(at: DateTime<Utc>, tz: Tz) -> usize {
    let local = at.with_timezone(&tz);
    local.weekday().num_days_from_monday() as usize * 24 + local.hour() as usize
}

/// A door a person has used: how often, first and last time (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorUse {
    pub door: i64,
    pub count: u32,
    pub first: i64,
    pub last: i64,
}

/// One person's habits.
#[derive(Debug, Clone, Default)]
pub struct PersonProfile {
    /// Every swipe, granted or not.
    pub swipes: u32,
    /// Granted swipes: what the habits below count.
    pub granted: u32,
    pub denials: u32,
    /// Granted entries into zones that have exit readers, and how many of them came with
    /// no exit since the previous entry (a habit of some: tailgating out).
    pub entries: u32,
    pub reentries: u32,
    /// Per zone, granted swipes per hour of the week (saturating).
    zones: Vec<(i64, Box<[u16; HOURS_OF_WEEK]>)>,
    /// Sorted by door.
    doors: Vec<DoorUse>,
    /// (from zone, to zone, count) of consecutive granted swipes in different zones.
    transitions: Vec<(i64, i64, u32)>,
    /// The last granted swipe: where and when (for transitions, transfers and dormancy).
    last: Option<Place>,
    /// The last direction seen per zone with exit readers, and when (Unix seconds).
    inside: Vec<(i64, Direction, i64)>,
    /// The longest time between two consecutive swipes, in seconds.
    pub longest_gap: i64,
    pub first_seen: Option<i64>,
}

/// Where and when a person last swiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub at: i64,
    pub site: Option<i64>,
    pub zone: Option<i64>,
    pub door: Option<i64>,
}

impl PersonProfile {
    pub fn door(&self, door: i64) -> Option<&DoorUse> {
        self.doors
            .binary_search_by_key(&door, |d| d.door)
            .ok()
            .map(|i| &self.doors[i])
    }

    pub fn doors(&self) -> &[DoorUse] {
        &self.doors
    }

    /// Granted swipes in `zone` at hour-of-week `bin` (all zones when `zone` is None).
    pub fn hour_count(&self, zone: Option<i64>, bin: usize) -> u32 {
        self.zones
            .iter()
            .filter(|(z, _)| zone.is_none_or(|zone| *z == zone))
            .map(|(_, g)| u32::from(g[bin % HOURS_OF_WEEK]))
            .sum()
    }

    /// Granted swipes in `zone` (all zones when None).
    pub fn zone_total(&self, zone: Option<i64>) -> u32 {
        match zone {
            None => self.granted,
            Some(zone) => self
                .zones
                .iter()
                .find(|(z, _)| *z == zone)
                .map_or(0, |(_, g)| g.iter().map(|c| u32::from(*c)).sum()),
        }
    }

    pub fn transitions(&self) -> &[(i64, i64, u32)] {
        &self.transitions
    }

    pub fn last(&self) -> Option<Place> {
        self.last
    }

    fn note_hour(&mut self, zone: i64, bin: usize) {
        let grid = match self.zones.iter().position(|(z, _)| *z == zone) {
            Some(i) => &mut self.zones[i].1,
            None => {
                self.zones.push((zone, Box::new([0; HOURS_OF_WEEK])));
                let last = self.zones.len() - 1;
                &mut self.zones[last].1
            }
        };
        grid[bin] = grid[bin].saturating_add(1);
    }

    fn note_door(&mut self, door: i64, at: i64) {
        match self.doors.binary_search_by_key(&door, |d| d.door) {
            Ok(i) => {
                let d = &mut self.doors[i];
                d.count = d.count.saturating_add(1);
                d.first = d.first.min(at);
                d.last = d.last.max(at);
            }
            Err(i) => self.doors.insert(
                i,
                DoorUse {
                    door,
                    count: 1,
                    first: at,
                    last: at,
                },
            ),
        }
    }

    fn note_transition(&mut self, from: i64, to: i64) {
        match self
            .transitions
            .iter_mut()
            .find(|(f, t, _)| *f == from && *t == to)
        {
            Some(t) => t.2 = t.2.saturating_add(1),
            None => self.transitions.push((from, to, 1)),
        }
    }

    /// Records a granted swipe's direction in a zone with exit readers; true when it is an
    /// entry with no exit since the previous entry, within `REENTRY_WINDOW` of it.
    fn note_direction(&mut self, zone: i64, direction: Direction, at: i64) -> bool {
        match self.inside.iter_mut().find(|(z, _, _)| *z == zone) {
            Some(entry) => {
                let again = entry.1 == Direction::In
                    && direction == Direction::In
                    && at - entry.2 < REENTRY_WINDOW.num_seconds();
                *entry = (zone, direction, at);
                again
            }
            None => {
                self.inside.push((zone, direction, at));
                false
            }
        }
    }
}

/// A group's (a peer group's, or everyone's) aggregate habits.
#[derive(Debug, Clone, Default)]
pub struct GroupProfile {
    pub swipes: u64,
    pub granted: u64,
    pub denials: u64,
    pub entries: u64,
    pub reentries: u64,
    hours: FxHashMap<i64, Box<[u32; HOURS_OF_WEEK]>>,
    all_hours: Option<Box<[u32; HOURS_OF_WEEK]>>,
    doors: FxHashMap<i64, u32>,
}

impl GroupProfile {
    pub fn hour_count(&self, zone: Option<i64>, bin: usize) -> u64 {
        let grid = match zone {
            None => self.all_hours.as_deref(),
            Some(zone) => self.hours.get(&zone).map(|g| &**g),
        };
        grid.map_or(0, |g| u64::from(g[bin % HOURS_OF_WEEK]))
    }

    pub fn zone_total(&self, zone: Option<i64>) -> u64 {
        match zone {
            None => self.granted,
            Some(zone) => self
                .hours
                .get(&zone)
                .map_or(0, |g| g.iter().map(|c| u64::from(*c)).sum()),
        }
    }

    pub fn door_count(&self, door: i64) -> u64 {
        self.doors.get(&door).map_or(0, |c| u64::from(*c))
    }

    /// Doors anyone in the group has been let through.
    pub fn doors_used(&self) -> usize {
        self.doors.len()
    }

    fn note(&mut self, o: &Observation, bin: usize, reentry: Option<bool>) {
        self.swipes += 1;
        if o.outcome == Outcome::Denied {
            self.denials += 1;
        }
        if !o.granted() {
            return;
        }
        self.granted += 1;
        if let Some(zone) = o.zone {
            let g = self
                .hours
                .entry(zone)
                .or_insert_with(|| Box::new([0; HOURS_OF_WEEK]));
            g[bin] = g[bin].saturating_add(1);
        }
        let all = self
            .all_hours
            .get_or_insert_with(|| Box::new([0; HOURS_OF_WEEK]));
        all[bin] = all[bin].saturating_add(1);
        if let Some(door) = o.door {
            let c = self.doors.entry(door).or_default();
            *c = c.saturating_add(1);
        }
        if let Some(again) = reentry {
            self.entries += 1;
            if again {
                self.reentries += 1;
            }
        }
    }
}

/// How long people take between two places: a histogram of gaps in powers of two seconds
/// (bucket i holds gaps in [2^(i-1), 2^i) s; bucket 0 holds gaps under a second).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferTimes {
    buckets: [u32; 18],
    pub count: u32,
}

impl TransferTimes {
    fn note(&mut self, gap_s: i64) {
        let i = if gap_s <= 0 {
            0
        } else {
            (64 - gap_s.leading_zeros()) as usize
        };
        let i = i.min(self.buckets.len() - 1);
        self.buckets[i] = self.buckets[i].saturating_add(1);
        self.count = self.count.saturating_add(1);
    }

    /// The fastest routine transfer: the lower edge of the bucket holding the `q`-quantile
    /// of gaps (q = 0.01: one transfer in a hundred is faster), in seconds.
    pub fn quantile(&self, q: f64) -> Option<i64> {
        if self.count == 0 {
            return None;
        }
        let target = (f64::from(self.count) * q).ceil().max(1.0);
        let mut seen = 0.0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += f64::from(*c);
            if seen >= target {
                return Some(if i == 0 { 0 } else { 1i64 << (i - 1) });
            }
        }
        None
    }
}

/// Between which two places a transfer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// From one zone to another (or between two doors of one zone) on one site.
    Zones(i64, i64),
    /// From one site to another.
    Sites(i64, i64),
}

/// The compiled baselines: per person, per peer group and global aggregates, and the
/// transfer times between places. Read by `score`; changed only by `observe`.
#[derive(Debug, Clone, Default)]
pub struct Baselines {
    people: FxHashMap<i64, PersonProfile>,
    groups: FxHashMap<Arc<str>, GroupProfile>,
    global: GroupProfile,
    transfers: FxHashMap<Route, TransferTimes>,
    /// Swipes observed, and the time span they covered.
    pub observed: u64,
    pub first_at: Option<DateTime<Utc>>,
    pub last_at: Option<DateTime<Utc>>,
}

impl Baselines {
    pub fn person(&self, id: i64) -> Option<&PersonProfile> {
        self.people.get(&id)
    }

    pub fn group(&self, name: &str) -> Option<&GroupProfile> {
        self.groups.get(name)
    }

    pub fn global(&self) -> &GroupProfile {
        &self.global
    }

    pub fn transfer(&self, route: Route) -> Option<&TransferTimes> {
        self.transfers.get(&route)
    }

    pub fn people_count(&self) -> usize {
        self.people.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// An estimate of the memory held, in bytes: what the retraining job reports.
    pub fn approximate_bytes(&self) -> usize {
        let person: usize = self
            .people
            .values()
            .map(|p| {
                std::mem::size_of::<PersonProfile>()
                    + p.zones.len() * (16 + 2 * HOURS_OF_WEEK)
                    + p.doors.capacity() * std::mem::size_of::<DoorUse>()
                    + p.transitions.capacity() * 24
                    + p.inside.capacity() * 24
            })
            .sum();
        let group: usize = self
            .groups
            .values()
            .chain(std::iter::once(&self.global))
            .map(|g| (g.hours.len() + 1) * (16 + 4 * HOURS_OF_WEEK) + g.doors.len() * 16)
            .sum();
        person + group + self.transfers.len() * 96
    }

    /// Takes one swipe into the baselines (training replays history through this, in time
    /// order; online, each swipe after it has been scored).
    pub fn observe(&mut self, ctx: &ScoringContext, o: &Observation) {
        self.observed += 1;
        self.first_at = Some(self.first_at.map_or(o.at, |f| f.min(o.at)));
        self.last_at = Some(self.last_at.map_or(o.at, |l| l.max(o.at)));
        let bin = hour_of_week(o.at, ctx.timezone(o.site));
        let Some(person_id) = o.person else {
            self.global.note(o, bin, None);
            return;
        };
        let at = o.at.timestamp();
        let person = self.people.entry(person_id).or_default();
        person.swipes = person.swipes.saturating_add(1);
        if let Some(previous) = person.last {
            person.longest_gap = person.longest_gap.max(at - previous.at);
        }
        person.first_seen.get_or_insert(at);
        let mut reentry = None;
        if o.outcome == Outcome::Denied {
            person.denials = person.denials.saturating_add(1);
        }
        if o.granted() {
            person.granted = person.granted.saturating_add(1);
            if let Some(zone) = o.zone {
                person.note_hour(zone, bin);
                if let Some(direction) = o.direction
                    && ctx.zone_has_exit(zone)
                {
                    let again = person.note_direction(zone, direction, at);
                    if direction == Direction::In {
                        person.entries = person.entries.saturating_add(1);
                        person.reentries += u32::from(again);
                        reentry = Some(again);
                    }
                }
            }
            if let Some(door) = o.door {
                person.note_door(door, at);
            }
            let here = Place {
                at,
                site: o.site,
                zone: o.zone,
                door: o.door,
            };
            if let Some(previous) = person.last
                && let Some(route) = route(&previous, &here)
            {
                if let Route::Zones(from, to) = route
                    && from != to
                {
                    person.note_transition(from, to);
                }
                if at - previous.at <= MAX_TRANSFER.num_seconds() {
                    self.transfers
                        .entry(route)
                        .or_default()
                        .note(at - previous.at);
                }
            }
            person.last = Some(here);
        } else if let Some(last) = person.last.as_mut() {
            // A denied swipe still says the person was there: dormancy counts from it.
            last.at = last.at.max(at);
        }
        self.global.note(o, bin, reentry);
        if let Some(pc) = ctx.person(person_id) {
            self.groups
                .entry(pc.peer_group.clone())
                .or_default()
                .note(o, bin, reentry);
            if pc.department != pc.peer_group {
                self.groups
                    .entry(pc.department.clone())
                    .or_default()
                    .note(o, bin, reentry);
            }
        }
    }
}

/// The route between two granted swipes at different doors, if they were at different
/// doors (a second swipe at the same door is no transfer).
pub fn route(from: &Place, to: &Place) -> Option<Route> {
    if from.door == to.door {
        return None;
    }
    match (from.site, to.site) {
        (Some(a), Some(b)) if a != b => Some(Route::Sites(a, b)),
        _ => match (from.zone, to.zone) {
            (Some(a), Some(b)) => Some(Route::Zones(a, b)),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::context::ContextBuilder;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn swipe(person: i64, door: i64, zone: i64, when: &str, outcome: Outcome) -> Observation {
        Observation {
            at: at(when),
            site: Some(1),
            zone: Some(zone),
            door: Some(door),
            reader: door as u64,
            direction: Some(Direction::In),
            person: Some(person),
            credential: Some(person * 10),
            unknown_key: None,
            outcome,
            deny: None,
        }
    }

    #[test]
    fn observing_swipes_counts_habits_per_person_group_and_globally() {
        let mut b = ContextBuilder::default();
        b.site(1, "Europe/Berlin".parse().unwrap());
        for id in 1..=3 {
            b.person(id, "Ops", "Tech");
        }
        let ctx = b.build();
        let mut base = Baselines::default();
        base.observe(
            &ctx,
            &swipe(1, 5, 50, "2026-12-07T07:00:00Z", Outcome::Granted),
        );
        base.observe(
            &ctx,
            &swipe(1, 6, 60, "2026-12-07T07:05:00Z", Outcome::Granted),
        );
        base.observe(
            &ctx,
            &swipe(1, 7, 60, "2026-12-07T07:06:00Z", Outcome::Denied),
        );
        let p = base.person(1).unwrap();
        assert_eq!((p.swipes, p.granted, p.denials), (3, 2, 1));
        // Monday 08:00 in Berlin.
        assert_eq!(p.hour_count(Some(50), 8), 1);
        assert_eq!(p.hour_count(None, 8), 2);
        assert_eq!(p.door(5).unwrap().count, 1);
        assert!(p.door(7).is_none(), "a denied door is not a door used");
        assert_eq!(p.transitions(), &[(50, 60, 1)]);
        let t = base.transfer(Route::Zones(50, 60)).unwrap();
        assert_eq!(t.count, 1);
        assert_eq!(t.quantile(0.01), Some(256));
        let g = base.group("Ops / Tech").unwrap();
        assert_eq!((g.swipes, g.granted, g.door_count(6)), (3, 2, 1));
        assert_eq!(base.global().denials, 1);
        assert_eq!(base.observed, 3);
    }
}
