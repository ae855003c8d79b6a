//! A seeded scenario generator: months of ordinary swipes by department routines (day
//! staff, part-timers, a night shift, guards on rounds, people who travel between two
//! sites, joiners, holidays and vacations) with labelled incidents of every kind the
//! scorer looks for. The tests and the `risk-eval` benchmark run the scorer over it.
//!
//! The same seed gives the same scenario. Two sites an hour's drive apart on Berlin time:
//! HQ (lobby with exit readers, offices, lab, server room, cash office, warehouse) and a
//! plant (lobby with exit readers, production floor, server room, warehouse).

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::context::{ContextBuilder, ScoringContext};
use super::observation::{Observation, Outcome, key_hash};
use crate::policy::DenyCode;
use crate::policy::model::Direction;

/// The kinds of incident injected: one per feature family of the scorer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IncidentKind {
    /// A day worker's card at their own door at 3 in the morning.
    OffHours,
    /// A door the person never used (used by other departments).
    FirstDoorUse,
    /// A sensitive door (server room, cash office) nobody in their peer group uses.
    DoorPeersNeverUse,
    /// An entry through the lobby with no exit since the last entry (a card passed back).
    ReentryWithoutExit,
    /// The card at the other site far sooner than the trip takes.
    ImpossibleTravel,
    /// The card at two doors of one site seconds apart (a clone).
    CloneCard,
    /// A card refused again and again at a door it has no access to.
    DenialBurst,
    /// An unknown card tried repeatedly.
    UnknownCardRepeated,
    /// A card used the day after its holder's status changed (suspended).
    AfterStatusChange,
    /// A card used again after months unused.
    AfterDormancy,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 10] = [
        IncidentKind::OffHours,
        IncidentKind::FirstDoorUse,
        IncidentKind::DoorPeersNeverUse,
        IncidentKind::ReentryWithoutExit,
        IncidentKind::ImpossibleTravel,
        IncidentKind::CloneCard,
        IncidentKind::DenialBurst,
        IncidentKind::UnknownCardRepeated,
        IncidentKind::AfterStatusChange,
        IncidentKind::AfterDormancy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::OffHours => "off_hours",
            IncidentKind::FirstDoorUse => "first_door_use",
            IncidentKind::DoorPeersNeverUse => "door_peers_never_use",
            IncidentKind::ReentryWithoutExit => "reentry_without_exit",
            IncidentKind::ImpossibleTravel => "impossible_travel",
            IncidentKind::CloneCard => "clone_card",
            IncidentKind::DenialBurst => "denial_burst",
            IncidentKind::UnknownCardRepeated => "unknown_card_repeated",
            IncidentKind::AfterStatusChange => "after_status_change",
            IncidentKind::AfterDormancy => "after_dormancy",
        }
    }
}

/// How people work; what makes their swipes routine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routine {
    /// Office hours, Monday to Friday.
    Day,
    /// Mornings only, three days a week.
    PartTime,
    /// 22:00 to 06:00 at the plant, Sunday night to Thursday night.
    NightShift,
    /// Rounds through many doors, alternating day and night weeks.
    Guard,
    /// Between both sites: some days at each, some days both.
    Traveller,
    /// Worked the first weeks, then stopped swiping (left on leave).
    Dormant,
}

/// One simulated person.
#[derive(Debug, Clone)]
pub struct SimPerson {
    pub id: i64,
    pub credential: i64,
    pub department: &'static str,
    pub title: &'static str,
    pub routine: Routine,
    /// The first day they swipe (joiners start later).
    pub start_day: u32,
}

/// A swipe and, for an injected one, the incident it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Labelled {
    pub observation: Observation,
    pub incident: Option<(IncidentKind, u32)>,
    /// The person whose routine produced it (for incidents, the card's holder).
    pub routine: Option<Routine>,
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioSpec {
    pub seed: u64,
    pub people: usize,
    /// Days of history before the evaluation period (the baselines train on them).
    pub training_days: u32,
    /// Days scored, with incidents in them.
    pub evaluation_days: u32,
    /// Incidents of each kind.
    pub incidents_per_kind: usize,
}

impl Default for ScenarioSpec {
    fn default() -> Self {
        ScenarioSpec {
            seed: 12,
            people: 200,
            training_days: 60,
            evaluation_days: 30,
            incidents_per_kind: 8,
        }
    }
}

/// A generated scenario: the context, the swipes in time order, and where the evaluation
/// period starts.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub context: ScoringContext,
    pub people: Vec<SimPerson>,
    pub events: Vec<Labelled>,
    pub evaluation_from: DateTime<Utc>,
    pub days: u32,
}

/// The shortest walk between two doors in the scenario's buildings, in seconds.
pub const MIN_WALK_S: i64 = 15;

pub const TZ: Tz = chrono_tz::Europe::Berlin;
pub const HQ: i64 = 1;
pub const PLANT: i64 = 2;

/// Zones: (id, site, has exit readers).
const ZONES: [(i64, i64, bool); 10] = [
    (11, HQ, true),
    (12, HQ, false),
    (13, HQ, false),
    (14, HQ, false),
    (15, HQ, false),
    (16, HQ, false),
    (21, PLANT, true),
    (22, PLANT, false),
    (24, PLANT, false),
    (26, PLANT, false),
];
const HQ_LOBBY: [i64; 2] = [101, 102];
const PLANT_LOBBY: i64 = 201;
const OFFICES: [i64; 2] = [103, 104];
const LAB: i64 = 105;
const HQ_SERVER_ROOM: i64 = 106;
const CASH_OFFICE: i64 = 107;
const HQ_WAREHOUSE: [i64; 2] = [108, 109];
const FLOOR: [i64; 2] = [202, 203];
const PLANT_SERVER_ROOM: i64 = 204;
const PLANT_WAREHOUSE: i64 = 205;

fn zone_of(door: i64) -> i64 {
    match door {
        101 | 102 => 11,
        103 | 104 => 12,
        105 => 13,
        106 => 14,
        107 => 15,
        108 | 109 => 16,
        201 => 21,
        202 | 203 => 22,
        204 => 24,
        _ => 26,
    }
}

fn site_of(door: i64) -> i64 {
    if door >= 200 { PLANT } else { HQ }
}

/// Departments: (department, title, routine, share of people).
const DEPARTMENTS: [(&str, &str, Routine, f64); 9] = [
    ("Sales", "Account manager", Routine::Day, 0.16),
    ("Finance", "Accountant", Routine::Day, 0.10),
    ("Engineering", "Engineer", Routine::Day, 0.18),
    ("Support", "Agent", Routine::PartTime, 0.10),
    ("Operations", "Operator", Routine::NightShift, 0.16),
    ("Security", "Guard", Routine::Guard, 0.06),
    ("IT", "Administrator", Routine::Traveller, 0.08),
    ("Sales", "Field engineer", Routine::Traveller, 0.10),
    ("Engineering", "Researcher", Routine::Dormant, 0.06),
];

/// Public holidays (day numbers from the start) when day staff stay home.
const HOLIDAYS: [u32; 3] = [25, 46, 81];

/// The first day of every scenario: a Monday.
fn start_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default()
}

/// The instant `hours` after local midnight of day `day` (hours may pass 24).
pub fn local(day: u32, hours: f64) -> DateTime<Utc> {
    let midnight =
        start_date().and_hms_opt(0, 0, 0).unwrap_or_default() + TimeDelta::days(i64::from(day));
    let naive = midnight + TimeDelta::milliseconds((hours * 3_600_000.0) as i64);
    TZ.from_local_datetime(&naive)
        .earliest()
        .map_or_else(|| naive.and_utc(), |t| t.to_utc())
}

fn weekday(day: u32) -> Weekday {
    (start_date() + TimeDelta::days(i64::from(day))).weekday()
}

/// A normal deviate (Box-Muller).
fn normal(rng: &mut StdRng, sd: f64) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-12);
    let v: f64 = rng.random();
    sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

struct Builder {
    rng: StdRng,
    events: Vec<Labelled>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn swipe(
        &mut self,
        person: Option<&SimPerson>,
        at: DateTime<Utc>,
        door: i64,
        direction: Direction,
        outcome: Outcome,
        deny: Option<DenyCode>,
        incident: Option<(IncidentKind, u32)>,
    ) {
        let dir = direction.as_str();
        self.events.push(Labelled {
            observation: Observation {
                at,
                site: Some(site_of(door)),
                zone: Some(zone_of(door)),
                door: Some(door),
                reader: key_hash(&format!("reader-{door}-{dir}")),
                direction: Some(direction),
                person: person.map(|p| p.id),
                credential: person.map(|p| p.credential),
                unknown_key: None,
                outcome,
                deny,
            },
            incident,
            routine: person.map(|p| p.routine),
        });
    }

    fn granted(&mut self, p: &SimPerson, at: DateTime<Utc>, door: i64, direction: Direction) {
        // Now and then a card is misread first: one refusal, then the same door again.
        if self.rng.random::<f64>() < 0.005 {
            self.swipe(
                Some(p),
                at - TimeDelta::seconds(3),
                door,
                direction,
                Outcome::Denied,
                Some(DenyCode::Schedule),
                None,
            );
        }
        self.swipe(Some(p), at, door, direction, Outcome::Granted, None, None);
    }

    /// One visit to a site: in through the lobby, the person's doors, maybe a lunch break,
    /// out through the lobby (now and then without badging out).
    fn visit(
        &mut self,
        p: &SimPerson,
        day: u32,
        from: f64,
        until: f64,
        doors: &[i64],
        lunch: bool,
    ) {
        let lobby = if site_of(doors[0]) == PLANT {
            PLANT_LOBBY
        } else {
            HQ_LOBBY[self.rng.random_range(0..HQ_LOBBY.len())]
        };
        self.granted(p, local(day, from), lobby, Direction::In);
        let mut t = from + 0.005 + self.rng.random::<f64>() * 0.06;
        let first = doors[self.rng.random_range(0..doors.len())];
        self.granted(p, local(day, t), first, Direction::In);
        let moves = self.rng.random_range(0..4);
        for _ in 0..moves {
            t += (until - t) * self.rng.random::<f64>() * 0.5;
            let door = doors[self.rng.random_range(0..doors.len())];
            self.granted(p, local(day, t), door, Direction::In);
        }
        if lunch && self.rng.random::<f64>() < 0.6 {
            let out = 12.0 + normal(&mut self.rng, 0.4);
            if out > from + 0.5 && out + 1.0 < until {
                self.granted(p, local(day, out), lobby, Direction::Out);
                let back = out + 0.4 + self.rng.random::<f64>() * 0.5;
                self.granted(p, local(day, back), lobby, Direction::In);
                let door = doors[self.rng.random_range(0..doors.len())];
                let walk = 0.005 + self.rng.random::<f64>() * 0.03;
                self.granted(p, local(day, back + walk), door, Direction::In);
            }
        }
        // Some leave without badging out (held door): a habit the baselines learn.
        if self.rng.random::<f64>() > 0.03 {
            self.granted(p, local(day, until), lobby, Direction::Out);
        }
    }
}

fn usual_doors(routine: Routine, department: &str, rng: &mut StdRng) -> Vec<i64> {
    match (routine, department) {
        (Routine::NightShift, _) => vec![FLOOR[0], FLOOR[1], PLANT_WAREHOUSE],
        (Routine::Guard, _) => vec![
            OFFICES[0],
            LAB,
            HQ_SERVER_ROOM,
            CASH_OFFICE,
            HQ_WAREHOUSE[0],
            HQ_WAREHOUSE[1],
        ],
        (_, "Engineering") => vec![OFFICES[rng.random_range(0..2)], LAB],
        (_, "Finance") => vec![OFFICES[rng.random_range(0..2)], CASH_OFFICE],
        (_, "IT") => vec![OFFICES[0], HQ_SERVER_ROOM],
        _ => vec![OFFICES[rng.random_range(0..2)]],
    }
}

impl Scenario {
    /// Generates the scenario `spec` describes.
    pub fn generate(spec: &ScenarioSpec) -> Scenario {
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let days = spec.training_days + spec.evaluation_days;
        let people = make_people(spec, &mut rng);
        let mut b = Builder {
            rng: StdRng::seed_from_u64(spec.seed ^ 0x5eed),
            events: Vec::new(),
        };
        // Who stops when: dormant people after two weeks; those whose status changes
        // (suspended) on an evaluation day.
        let eval_day = |rng: &mut StdRng| {
            spec.training_days + rng.random_range(0..spec.evaluation_days.max(1))
        };
        let day_staff: Vec<usize> = people
            .iter()
            .enumerate()
            .filter(|(_, p)| p.routine == Routine::Day)
            .map(|(i, _)| i)
            .collect();
        let mut stops: Vec<Option<u32>> = people
            .iter()
            .map(|p| (p.routine == Routine::Dormant).then_some(14))
            .collect();
        let mut suspended = Vec::new();
        for _ in 0..spec.incidents_per_kind {
            if day_staff.is_empty() {
                break;
            }
            let i = day_staff[rng.random_range(0..day_staff.len())];
            if stops[i].is_none() {
                let day = eval_day(&mut rng);
                stops[i] = Some(day);
                suspended.push((i, day));
            }
        }
        let mut worked: rustc_hash::FxHashSet<(usize, u32)> = Default::default();
        for (i, p) in people.iter().enumerate() {
            let offset = normal(&mut rng, 0.6);
            let vacation_start = rng.random_range(0..days.max(1));
            let vacation = vacation_start..vacation_start + rng.random_range(7..17);
            let part_days: [Weekday; 3] = if p.id % 2 == 0 {
                [Weekday::Mon, Weekday::Tue, Weekday::Wed]
            } else {
                [Weekday::Wed, Weekday::Thu, Weekday::Fri]
            };
            let doors = usual_doors(p.routine, p.department, &mut rng);
            let plant_doors = if p.department == "IT" {
                vec![PLANT_SERVER_ROOM, FLOOR[0]]
            } else {
                vec![FLOOR[0]]
            };
            for day in p.start_day..days {
                if stops[i].is_some_and(|s| day >= s) || vacation.contains(&day) {
                    continue;
                }
                let wd = weekday(day);
                let workday = !matches!(wd, Weekday::Sat | Weekday::Sun);
                let holiday = HOLIDAYS.contains(&day);
                let jitter = |rng: &mut StdRng, sd: f64| normal(rng, sd);
                let went = match p.routine {
                    Routine::Day | Routine::Dormant if workday && !holiday => {
                        let from = 8.0 + offset + jitter(&mut b.rng, 0.3);
                        let until = 17.0 + offset + jitter(&mut b.rng, 0.5);
                        b.visit(p, day, from, until, &doors, true);
                        true
                    }
                    Routine::PartTime if part_days.contains(&wd) && !holiday => {
                        let from = 8.5 + offset * 0.5 + jitter(&mut b.rng, 0.3);
                        b.visit(p, day, from, from + 4.5, &doors, false);
                        true
                    }
                    Routine::NightShift
                        if matches!(
                            wd,
                            Weekday::Sun
                                | Weekday::Mon
                                | Weekday::Tue
                                | Weekday::Wed
                                | Weekday::Thu
                        ) =>
                    {
                        let from = 21.8 + jitter(&mut b.rng, 0.2);
                        let until = 30.1 + jitter(&mut b.rng, 0.2);
                        b.visit(p, day, from, until, &doors, false);
                        true
                    }
                    Routine::Guard if (day + p.id as u32) % 7 < 5 => {
                        let night = (day / 7 + p.id as u32) % 2 == 1;
                        let from = if night { 19.0 } else { 7.0 } + jitter(&mut b.rng, 0.1);
                        guard_shift(&mut b, p, day, from, &doors);
                        true
                    }
                    Routine::Traveller if workday && !holiday => {
                        let at_plant = matches!(wd, Weekday::Tue | Weekday::Thu);
                        let from = 8.5 + offset + jitter(&mut b.rng, 0.4);
                        if b.rng.random::<f64>() < 0.15 {
                            // Both sites in one day: the drive takes over an hour.
                            b.visit(p, day, from, 11.0, &doors, false);
                            let there = 12.5 + b.rng.random::<f64>();
                            b.visit(p, day, there, 17.0 + offset, &plant_doors, false);
                        } else if at_plant {
                            b.visit(p, day, from, 16.5 + offset, &plant_doors, false);
                        } else {
                            b.visit(p, day, from, 17.0 + offset, &doors, true);
                        }
                        true
                    }
                    _ => false,
                };
                if went {
                    worked.insert((i, day));
                }
            }
        }
        // Visitors with the wrong card, once (one in ten tries twice), and wrong doors.
        for day in 0..days {
            for _ in 0..b.rng.random_range(0..4) {
                let at = local(day, 9.0 + b.rng.random::<f64>() * 7.0);
                let key = b.rng.random::<u64>();
                let tries = if b.rng.random::<f64>() < 0.1 { 2 } else { 1 };
                for t in 0..tries {
                    unknown(
                        &mut b,
                        at + TimeDelta::seconds(10 * t),
                        HQ_LOBBY[0],
                        key,
                        None,
                    );
                }
            }
        }
        let mut next_incident = 0u32;
        let mut id = || {
            next_incident += 1;
            next_incident
        };
        let working_on =
            |rng: &mut StdRng, wanted: &dyn Fn(&SimPerson) -> bool| -> Option<(usize, u32)> {
                for _ in 0..10_000 {
                    let i = rng.random_range(0..people.len());
                    let day = spec.training_days + rng.random_range(0..spec.evaluation_days.max(1));
                    if wanted(&people[i]) && worked.contains(&(i, day)) {
                        return Some((i, day));
                    }
                }
                None
            };
        let office_worker = |p: &SimPerson| p.routine == Routine::Day;
        let not_cleared =
            |p: &SimPerson| p.routine == Routine::Day && !matches!(p.department, "Finance" | "IT");
        for kind in IncidentKind::ALL {
            for _ in 0..spec.incidents_per_kind {
                let n = id();
                let label = Some((kind, n));
                match kind {
                    IncidentKind::OffHours => {
                        if let Some((i, day)) = working_on(&mut rng, &office_worker) {
                            let p = &people[i];
                            let door = usual_doors(p.routine, p.department, &mut b.rng)[0];
                            let t = 2.0 + b.rng.random::<f64>() * 2.0;
                            b.swipe(
                                Some(p),
                                local(day, t),
                                HQ_LOBBY[1],
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                            b.swipe(
                                Some(p),
                                local(day, t + 0.02),
                                door,
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                        }
                    }
                    IncidentKind::FirstDoorUse | IncidentKind::DoorPeersNeverUse => {
                        let wanted =
                            |p: &SimPerson| not_cleared(p) && p.department != "Engineering";
                        if let Some((i, day)) = working_on(&mut rng, &wanted) {
                            let door = if kind == IncidentKind::FirstDoorUse {
                                LAB
                            } else if b.rng.random::<bool>() {
                                HQ_SERVER_ROOM
                            } else {
                                CASH_OFFICE
                            };
                            let t = local(day, 13.5 + b.rng.random::<f64>() * 2.0);
                            b.swipe(
                                Some(&people[i]),
                                t,
                                door,
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                        }
                    }
                    IncidentKind::ReentryWithoutExit => {
                        if let Some((i, day)) = working_on(&mut rng, &office_worker) {
                            let t = local(day, 15.0 + b.rng.random::<f64>() * 0.5);
                            b.swipe(
                                Some(&people[i]),
                                t,
                                HQ_LOBBY[0],
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                        }
                    }
                    IncidentKind::ImpossibleTravel => {
                        if let Some((i, day)) = working_on(&mut rng, &office_worker) {
                            let t = local(day, 10.5 + b.rng.random::<f64>());
                            b.swipe(
                                Some(&people[i]),
                                t,
                                PLANT_LOBBY,
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                        }
                    }
                    IncidentKind::CloneCard => {
                        if let Some((i, day)) = working_on(&mut rng, &office_worker) {
                            let p = &people[i];
                            let t = local(day, 11.0 + b.rng.random::<f64>());
                            b.swipe(
                                Some(p),
                                t,
                                OFFICES[0],
                                Direction::In,
                                Outcome::Granted,
                                None,
                                None,
                            );
                            let later = t + TimeDelta::milliseconds(b.rng.random_range(500..4_000));
                            b.swipe(
                                Some(p),
                                later,
                                HQ_WAREHOUSE[0],
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                        }
                    }
                    IncidentKind::DenialBurst => {
                        if let Some((i, day)) = working_on(&mut rng, &not_cleared) {
                            let door = if b.rng.random::<bool>() {
                                HQ_SERVER_ROOM
                            } else {
                                CASH_OFFICE
                            };
                            let mut t = local(day, 14.0 + b.rng.random::<f64>());
                            for _ in 0..b.rng.random_range(3..6) {
                                b.swipe(
                                    Some(&people[i]),
                                    t,
                                    door,
                                    Direction::In,
                                    Outcome::Denied,
                                    Some(DenyCode::NoEntitlement),
                                    label,
                                );
                                t += TimeDelta::seconds(b.rng.random_range(15..60));
                            }
                        }
                    }
                    IncidentKind::UnknownCardRepeated => {
                        let day =
                            spec.training_days + rng.random_range(0..spec.evaluation_days.max(1));
                        let key = b.rng.random::<u64>();
                        let door =
                            [HQ_LOBBY[1], HQ_SERVER_ROOM, PLANT_LOBBY][b.rng.random_range(0..3)];
                        let mut t = local(day, b.rng.random::<f64>() * 24.0);
                        for _ in 0..b.rng.random_range(3..7) {
                            unknown(&mut b, t, door, key, label);
                            t += TimeDelta::seconds(b.rng.random_range(20..240));
                        }
                    }
                    IncidentKind::AfterStatusChange => {
                        if let Some(&(i, day)) =
                            suspended.get((n as usize) % suspended.len().max(1))
                        {
                            let t = local(day, 10.0 + b.rng.random::<f64>() * 6.0);
                            b.swipe(
                                Some(&people[i]),
                                t,
                                HQ_LOBBY[0],
                                Direction::In,
                                Outcome::Denied,
                                Some(DenyCode::Inactive),
                                label,
                            );
                        }
                    }
                    IncidentKind::AfterDormancy => {
                        let dormant: Vec<&SimPerson> = people
                            .iter()
                            .filter(|p| p.routine == Routine::Dormant)
                            .collect();
                        if !dormant.is_empty() {
                            // Each incident wakes a different card (a second one soon after
                            // would no longer be after a dormancy).
                            let p = dormant[(n as usize) % dormant.len()];
                            let day = spec.training_days
                                + rng.random_range(0..spec.evaluation_days.max(1));
                            let t = 9.0 + b.rng.random::<f64>() * 6.0;
                            b.swipe(
                                Some(p),
                                local(day, t),
                                HQ_LOBBY[0],
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                            b.swipe(
                                Some(p),
                                local(day, t + 0.03),
                                LAB,
                                Direction::In,
                                Outcome::Granted,
                                None,
                                label,
                            );
                        }
                    }
                }
            }
        }
        let mut events = b.events;
        events.sort_by_key(|e| e.observation.at);
        // Routine plans drawn independently (a move and a lunch break) can put one card at
        // two doors seconds apart, which nobody can walk: such a routine swipe is dropped.
        let mut last: rustc_hash::FxHashMap<i64, (DateTime<Utc>, Option<i64>)> = Default::default();
        events.retain(|e| {
            let o = &e.observation;
            let Some(card) = o.credential else {
                return true;
            };
            let walkable = last.get(&card).is_none_or(|(at, door)| {
                *door == o.door || o.at - *at >= TimeDelta::seconds(MIN_WALK_S)
            });
            if walkable || e.incident.is_some() {
                last.insert(card, (o.at, o.door));
            }
            walkable || e.incident.is_some()
        });
        let mut ctx = ContextBuilder::default();
        ctx.site(HQ, TZ).site(PLANT, TZ);
        for (zone, _, exit) in ZONES {
            if exit {
                ctx.zone_with_exit(zone);
            }
        }
        for p in &people {
            ctx.person(p.id, p.department, p.title);
        }
        for (i, day) in &suspended {
            ctx.status_change(people[*i].id, local(*day, 9.0));
        }
        Scenario {
            context: ctx.build(),
            people,
            events,
            evaluation_from: local(spec.training_days, 0.0),
            days,
        }
    }

    /// The swipes before the evaluation period (what the baselines train on).
    pub fn training(&self) -> &[Labelled] {
        let split = self
            .events
            .partition_point(|e| e.observation.at < self.evaluation_from);
        &self.events[..split]
    }

    /// The swipes of the evaluation period.
    pub fn evaluation(&self) -> &[Labelled] {
        let split = self
            .events
            .partition_point(|e| e.observation.at < self.evaluation_from);
        &self.events[split..]
    }
}

fn make_people(spec: &ScenarioSpec, rng: &mut StdRng) -> Vec<SimPerson> {
    let mut people = Vec::with_capacity(spec.people);
    for (d, (department, title, routine, share)) in DEPARTMENTS.iter().enumerate() {
        let count = ((spec.people as f64 * share).round() as usize).max(3);
        for _ in 0..count {
            let id = people.len() as i64 + 1;
            // One in twenty joins during the scenario and starts from the peer baseline.
            let joiner = *routine != Routine::Dormant && rng.random::<f64>() < 0.05;
            let start_day = if joiner {
                rng.random_range(
                    spec.training_days / 2..spec.training_days + spec.evaluation_days / 2,
                )
            } else {
                0
            };
            people.push(SimPerson {
                id,
                credential: 10_000 + id * 10 + d as i64 % 10,
                department,
                title,
                routine: *routine,
                start_day,
            });
        }
    }
    people
}

fn guard_shift(b: &mut Builder, p: &SimPerson, day: u32, from: f64, doors: &[i64]) {
    b.granted(p, local(day, from), HQ_LOBBY[0], Direction::In);
    let mut round = from + 0.25;
    while round < from + 11.5 {
        let mut t = round;
        for _ in 0..b.rng.random_range(3..6) {
            let door = doors[b.rng.random_range(0..doors.len())];
            b.granted(p, local(day, t), door, Direction::In);
            t += (2.0 + b.rng.random::<f64>() * 3.0) / 60.0;
        }
        round += 2.0 + normal(&mut b.rng, 0.2);
    }
    b.granted(p, local(day, from + 12.0), HQ_LOBBY[0], Direction::Out);
}

fn unknown(
    b: &mut Builder,
    at: DateTime<Utc>,
    door: i64,
    key: u64,
    incident: Option<(IncidentKind, u32)>,
) {
    b.events.push(Labelled {
        observation: Observation {
            at,
            site: Some(site_of(door)),
            zone: Some(zone_of(door)),
            door: Some(door),
            reader: key_hash(&format!("reader-{door}-in")),
            direction: Some(Direction::In),
            person: None,
            credential: None,
            unknown_key: Some(key),
            outcome: Outcome::Denied,
            deny: Some(DenyCode::UnknownCredential),
        },
        incident,
        routine: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::evaluation::{measure_replay, measure_threshold, replay, routine_alert_share};

    fn small() -> ScenarioSpec {
        ScenarioSpec {
            seed: 7,
            people: 300,
            training_days: 45,
            evaluation_days: 14,
            incidents_per_kind: 4,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_scenario() {
        let spec = ScenarioSpec {
            people: 40,
            training_days: 10,
            evaluation_days: 5,
            ..small()
        };
        let (a, b) = (Scenario::generate(&spec), Scenario::generate(&spec));
        assert_eq!(a.events.len(), b.events.len());
        assert!(
            a.events
                .iter()
                .zip(&b.events)
                .all(|(x, y)| x.observation == y.observation)
        );
        assert!(
            a.events
                .windows(2)
                .all(|w| w[0].observation.at <= w[1].observation.at)
        );
    }

    #[test]
    fn every_incident_type_ranks_in_the_top_one_percent() {
        let s = Scenario::generate(&small());
        let r = replay(&s);
        let at = measure_replay(&s, &r, 0.01);
        eprintln!("{at:#?}");
        for kind in IncidentKind::ALL {
            let (caught, total) = at.recall.get(&kind).copied().unwrap_or((0, 0));
            assert!(total > 0, "{} was not injected", kind.as_str());
            assert!(
                caught * 5 >= total * 4,
                "{}: only {caught} of {total} incidents in the top 1% of scores",
                kind.as_str()
            );
        }
        let at = measure_replay(&s, &r, 0.001);
        assert!(at.precision >= 0.9, "precision at 0.1%: {at:#?}");
    }

    #[test]
    fn night_shift_guards_and_travellers_are_not_flagged_for_their_own_routine() {
        let s = Scenario::generate(&small());
        let r = replay(&s);
        for routine in [
            Routine::NightShift,
            Routine::Guard,
            Routine::Traveller,
            Routine::PartTime,
        ] {
            let (flagged, total) = routine_alert_share(&s, &r.value, routine, 50);
            assert!(total > 100, "{routine:?}: {total} swipes");
            assert!(
                flagged * 1000 <= total,
                "{routine:?}: {flagged} of {total} routine swipes scored 50 or more"
            );
        }
        let alerts = measure_threshold(&s, &r.value, 50);
        assert!(
            alerts.false_alerts_per_1000_people_day <= 1.0,
            "{} false alerts per 1,000 people per day",
            alerts.false_alerts_per_1000_people_day
        );
    }
}
