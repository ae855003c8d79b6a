//! A generated building: sites, nested zones, doors with readers, schedules with holidays,
//! access levels, people with entitlements and credentials, shaped like a real deployment
//! and fully determined by a [`BuildingSpec`] and a seed.
//!
//! Shared by the benchmarks (decisions, event ingest, MQTT), so it only produces
//! [`PolicyData`]; anything a benchmark derives from it lives with that benchmark.
//!
//! Shape, beyond the counts in the spec:
//!
//! * Sites: `HQ` (Europe/Berlin), `Plant` (America/New_York), then more sites in other
//!   zones. Zones are split 70/30 between the first two sites (evenly beyond that).
//! * Zones nest 2–3 deep: one campus root per site, buildings under it, areas (floors,
//!   wings, labs) under the buildings. A few areas have hard or soft anti-passback.
//! * Every zone gets at least one door; the rest go mostly to areas. About 1% of doors
//!   are locked, 1% unlocked, 3% card-and-PIN, 3% have a free-access (lobby) schedule.
//!   Every door has an `in` reader, 60% also an `out` reader.
//! * Schedules: a fixed catalogue of realistic windows (office hours, shifts, night
//!   windows crossing midnight, weekends, first Monday of the month, 24/7), half of them
//!   closed on holidays. Holidays: national days of the reference year and the next at
//!   every site, plus one site holiday inside each site's snapshot horizon.
//! * Access levels cover 1–4 items (a zone or a door, each with a schedule) at one site;
//!   3% span two sites.
//! * People hold 1–5 entitlements (popular levels are chosen more often); 3% are
//!   suspended, 1% terminated, some contractors have expired, some start in the future.
//!   Credentials are distributed 1–4 per person to reach the requested total; 80% cards,
//!   20% Wiegand; about 6% lost, stolen or revoked, 3% expired. No PINs are set (a PIN
//!   hash is an argon2 computation; card-and-PIN doors answer `pin_required`).

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use gatehouse::policy::{
    AccessLevel, AntiPassback, Credential, CredentialKey, CredentialStatus, Direction, Door,
    DoorMode, Entitlement, Holiday, HolidayRule, LevelItem, Person, PersonStatus, PolicyData,
    Reader, Schedule, Sensitivity, Site, Target, Window, Zone,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

/// The counts of a generated building. `Default` is the decision benchmark's scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildingSpec {
    pub sites: usize,
    pub zones: usize,
    pub doors: usize,
    pub people: usize,
    /// Total credentials; spread 1–4 per person, so at least `people`.
    pub credentials: usize,
    pub schedules: usize,
    pub levels: usize,
    /// The instant validity dates are generated around: "expired" means before it, "not
    /// yet valid" after it. Benchmarks decide at (or near) this instant.
    pub reference: DateTime<Utc>,
}

/// Wednesday 2026-06-10 14:00 UTC: 16:00 in Berlin, 10:00 in New York, so both sites are
/// in working hours while night and early-shift windows are closed.
pub const REFERENCE: DateTime<Utc> = match DateTime::from_timestamp(1_781_100_000, 0) {
    Some(t) => t,
    None => panic!("bad reference timestamp"),
};

impl Default for BuildingSpec {
    fn default() -> Self {
        BuildingSpec {
            sites: 2,
            zones: 50,
            doors: 1_000,
            people: 100_000,
            credentials: 200_000,
            schedules: 20,
            levels: 1_000,
            reference: REFERENCE,
        }
    }
}

impl BuildingSpec {
    /// A building with `people` people and everything else scaled down from the default
    /// in proportion (at least a handful of each), for tests and quick runs.
    pub fn small(people: usize) -> Self {
        let scale = |full: usize, min: usize| (full * people / 100_000).max(min);
        BuildingSpec {
            people,
            credentials: 2 * people,
            zones: scale(50, 8),
            doors: scale(1_000, 24),
            levels: scale(1_000, 12),
            ..BuildingSpec::default()
        }
    }
}

const TIMEZONES: &[(&str, &str)] = &[
    ("HQ", "Europe/Berlin"),
    ("Plant", "America/New_York"),
    ("Lab", "Asia/Tokyo"),
    ("Depot", "Australia/Sydney"),
    ("Branch", "America/Sao_Paulo"),
];

/// The schedule catalogue: name, holiday rule, windows (5-field cron on the site's wall
/// clock, duration in minutes). Beyond its length, entries repeat shifted by an hour.
/// A window: a 5-field cron start and a duration in minutes.
type WindowSpec = (&'static str, u32);

const SCHEDULES: &[(&str, HolidayRule, &[WindowSpec])] = &[
    ("24/7", HolidayRule::Ignore, &[("0 0 * * Mon", 10_080)]),
    (
        "Office hours",
        HolidayRule::Closed,
        &[("0 7 * * Mon-Fri", 660)],
    ),
    (
        "Extended office",
        HolidayRule::Closed,
        &[("0 6 * * Mon-Fri", 900)],
    ),
    (
        "Night shift",
        HolidayRule::Ignore,
        &[("0 22 * * Sun-Thu", 540)],
    ),
    (
        "Early shift",
        HolidayRule::Ignore,
        &[("0 5 * * Mon-Sat", 540)],
    ),
    (
        "Late shift",
        HolidayRule::Ignore,
        &[("0 13 * * Mon-Sat", 600)],
    ),
    ("Weekend", HolidayRule::Closed, &[("0 8 * * Sat,Sun", 600)]),
    (
        "Cleaning evening",
        HolidayRule::Closed,
        &[("0 18 * * Mon-Fri", 300)],
    ),
    (
        "Cleaning morning",
        HolidayRule::Closed,
        &[("30 5 * * Mon-Fri", 120)],
    ),
    (
        "Lobby hours",
        HolidayRule::Closed,
        &[("0 7 * * Mon-Fri", 720)],
    ),
    (
        "Security patrol",
        HolidayRule::Ignore,
        &[("0 20 * * *", 720)],
    ),
    (
        "Contractors",
        HolidayRule::Closed,
        &[("0 8 * * Mon-Thu", 480), ("0 8 * * Fri", 300)],
    ),
    (
        "Deliveries",
        HolidayRule::Closed,
        &[("0 6 * * Mon-Fri", 180), ("0 13 * * Mon-Fri", 120)],
    ),
    ("Lunch", HolidayRule::Closed, &[("30 11 * * Mon-Fri", 150)]),
    (
        "Maintenance window",
        HolidayRule::Ignore,
        &[("0 1 * * Sun", 240)],
    ),
    (
        "Daily all day",
        HolidayRule::Closed,
        &[("0 0 * * *", 1_440)],
    ),
    (
        "Weeknights",
        HolidayRule::Ignore,
        &[("0 19 * * Mon-Fri", 720)],
    ),
    ("Visitors", HolidayRule::Closed, &[("0 9 * * Mon-Fri", 480)]),
    (
        "First Monday",
        HolidayRule::Closed,
        &[("0 9 1-7 * Mon", 240)],
    ),
    (
        "Plant shifts",
        HolidayRule::Ignore,
        &[
            ("0 6 * * Mon-Fri", 480),
            ("0 14 * * Mon-Fri", 480),
            ("0 22 * * Mon-Fri", 480),
        ],
    ),
];

/// Index in `SCHEDULES` of the schedule lobby doors use for free access.
const LOBBY_SCHEDULE: usize = 9;

const FIRST_NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karin",
    "Lukas", "Mia", "Noah", "Olga", "Paul", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Xenia",
    "Yusuf", "Zoe",
];
const LAST_NAMES: &[&str] = &[
    "Schmidt", "Garcia", "Nguyen", "Okafor", "Rossi", "Kowalski", "Tanaka", "Silva", "Jensen",
    "Müller", "Novak", "Haddad", "Kim", "Dubois", "Ivanova", "Smith", "Patel", "Cohen",
];

/// How deep a zone sits: the campus root, a building, or an area inside a building.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    Root,
    Building,
    Area,
}

/// Generates the building `spec` describes; the same spec and seed give the same data.
pub fn generate(spec: &BuildingSpec, seed: u64) -> PolicyData {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut data = PolicyData::default();
    let reference = spec.reference;
    let n_sites = spec.sites.clamp(1, spec.zones.max(1));
    let n_zones = spec.zones.max(n_sites);

    // Sites.
    for s in 0..n_sites {
        let (name, tz) = TIMEZONES[s % TIMEZONES.len()];
        let name = if s < TIMEZONES.len() {
            name.to_owned()
        } else {
            format!("{name} {}", s / TIMEZONES.len() + 1)
        };
        data.sites.push(Site {
            id: id(s),
            name,
            timezone: tz.to_owned(),
            lockdown: false,
        });
    }

    // Holidays: national days at every site, plus one per site inside its horizon (the
    // day before the reference at the first site, two days after at the others).
    let year = reference.year();
    for y in [year, year + 1] {
        for (m, d, name) in [
            (1, 1, "New Year"),
            (5, 1, "Labour Day"),
            (10, 3, "Unity Day"),
            (12, 25, "Christmas"),
            (12, 26, "Boxing Day"),
        ] {
            if let Some(date) = NaiveDate::from_ymd_opt(y, m, d) {
                data.holidays.push(Holiday {
                    id: id(data.holidays.len()),
                    site_id: None,
                    date,
                    name: format!("{name} {y}"),
                });
            }
        }
    }
    for (s, site) in data.sites.iter().enumerate() {
        let offset = if s == 0 {
            TimeDelta::days(-1)
        } else {
            TimeDelta::days(2)
        };
        data.holidays.push(Holiday {
            id: id(data.holidays.len()),
            site_id: Some(site.id),
            date: (reference + offset).date_naive(),
            name: format!("{} site holiday", site.name),
        });
    }

    // Schedules.
    for s in 0..spec.schedules {
        let (name, rule, windows) = SCHEDULES[s % SCHEDULES.len()];
        let round = s / SCHEDULES.len();
        data.schedules.push(Schedule {
            id: id(s),
            name: if round == 0 {
                name.to_owned()
            } else {
                format!("{name} (+{round}h)")
            },
            holidays: rule,
            windows: windows
                .iter()
                .map(|(cron, duration_min)| Window {
                    cron: shift_hour(cron, round),
                    duration_min: *duration_min,
                })
                .collect(),
        });
    }

    // Zones: per site a campus root, buildings under it, areas under the buildings.
    let mut zone_depth = Vec::with_capacity(n_zones);
    let mut site_zones: Vec<Vec<usize>> = vec![Vec::new(); n_sites];
    let shares = site_shares(n_zones, n_sites);
    for (s, &count) in shares.iter().enumerate() {
        let site_id = id(s);
        let root = data.zones.len();
        let buildings = if count <= 1 {
            0
        } else {
            (count / 7).clamp(1, count - 1)
        };
        for k in 0..count {
            let (depth, parent, name) = if k == 0 {
                (Depth::Root, None, format!("{} campus", data.sites[s].name))
            } else if k <= buildings {
                (
                    Depth::Building,
                    Some(root),
                    format!("{} building {k}", data.sites[s].name),
                )
            } else {
                let b = rng.random_range(1..=buildings);
                (
                    Depth::Area,
                    Some(root + b),
                    format!("{} building {b} area {k}", data.sites[s].name),
                )
            };
            site_zones[s].push(data.zones.len());
            zone_depth.push(depth);
            data.zones.push(Zone {
                id: id(data.zones.len()),
                site_id,
                parent_id: parent.map(id),
                name,
                antipassback: AntiPassback::Off,
                presence_reset: None,
            });
        }
    }
    let areas: Vec<usize> = (0..data.zones.len())
        .filter(|&z| zone_depth[z] == Depth::Area)
        .collect();
    for (k, &z) in areas.iter().take(5).enumerate() {
        data.zones[z].antipassback = if k < 2 {
            AntiPassback::Hard
        } else {
            AntiPassback::Soft
        };
    }

    // Doors: one per zone first, then weighted towards areas.
    let zone_weight = |z: &usize| match zone_depth[*z] {
        Depth::Root => 1.0,
        Depth::Building => 2.0,
        Depth::Area => 4.0,
    };
    let all_zones: Vec<usize> = (0..data.zones.len()).collect();
    let mut door_zone = Vec::with_capacity(spec.doors);
    for d in 0..spec.doors {
        let z = if d < all_zones.len() {
            all_zones[d]
        } else {
            all_zones
                .choose_weighted(&mut rng, zone_weight)
                .copied()
                .unwrap_or(0)
        };
        door_zone.push(z);
    }
    let free_schedule = data
        .schedules
        .get(LOBBY_SCHEDULE)
        .or(data.schedules.first())
        .map(|s| s.id);
    let mut site_doors: Vec<Vec<usize>> = vec![Vec::new(); n_sites];
    for (d, &z) in door_zone.iter().enumerate() {
        let roll: f64 = rng.random();
        let (mode, sensitivity) = if roll < 0.01 {
            (DoorMode::Locked, Sensitivity::Critical)
        } else if roll < 0.02 {
            (DoorMode::Unlocked, Sensitivity::Low)
        } else if roll < 0.05 {
            (DoorMode::CardAndPin, Sensitivity::High)
        } else if rng.random_bool(0.3) {
            (DoorMode::Normal, Sensitivity::Low)
        } else {
            (DoorMode::Normal, Sensitivity::Normal)
        };
        let free_access_schedule_id = if mode == DoorMode::Normal && rng.random_bool(0.03) {
            free_schedule
        } else {
            None
        };
        let zone = &data.zones[z];
        let site = (zone.site_id - 1) as usize;
        site_doors[site].push(d);
        data.doors.push(Door {
            id: id(d),
            zone_id: zone.id,
            name: format!("{} door {}", zone.name, d + 1),
            unlock_ms: rng.random_range(3..=8) * 1_000,
            held_open_s: 30,
            mode,
            free_access_schedule_id,
            sensitivity,
        });
        let directions: &[Direction] = if rng.random_bool(0.6) {
            &[Direction::In, Direction::Out]
        } else {
            &[Direction::In]
        };
        for &direction in directions {
            data.readers.push(Reader {
                id: id(data.readers.len()),
                reader_id: format!("r{}-{direction}", d + 1),
                door_id: id(d),
                direction,
            });
        }
    }

    // Access levels.
    let n_schedules = data.schedules.len();
    for l in 0..spec.levels {
        let home = if n_sites == 1 || rng.random_bool(0.7) {
            0
        } else {
            rng.random_range(1..n_sites)
        };
        let n_items = *[1, 1, 1, 2, 2, 2, 2, 3, 3, 4]
            .choose(&mut rng)
            .unwrap_or(&1);
        let mut items: Vec<LevelItem> = Vec::with_capacity(n_items);
        for k in 0..n_items {
            let site = if k > 0 && n_sites > 1 && rng.random_bool(0.03) {
                (home + 1) % n_sites
            } else {
                home
            };
            let target = if site_doors[site].is_empty() || rng.random_bool(0.5) {
                let zones = &site_zones[site];
                let pick = |depth: Depth, rng: &mut StdRng| {
                    let of: Vec<usize> = zones
                        .iter()
                        .copied()
                        .filter(|&z| zone_depth[z] == depth)
                        .collect();
                    of.choose(rng).copied()
                };
                let roll: f64 = rng.random();
                let z = if roll < 0.02 {
                    pick(Depth::Root, &mut rng)
                } else if roll < 0.25 {
                    pick(Depth::Building, &mut rng)
                } else {
                    pick(Depth::Area, &mut rng)
                };
                Target::Zone(id(z.or(zones.first().copied()).unwrap_or(0)))
            } else {
                Target::Door(id(site_doors[site].choose(&mut rng).copied().unwrap_or(0)))
            };
            let roll: f64 = rng.random();
            let schedule = if roll < 0.3 && n_schedules > 1 {
                1
            } else if roll < 0.4 {
                0
            } else {
                rng.random_range(0..n_schedules.max(1))
            };
            let item = LevelItem {
                target,
                schedule_id: id(schedule),
            };
            if !items.contains(&item) {
                items.push(item);
            }
        }
        let name = match items.first().map(|i| i.target) {
            Some(Target::Zone(z)) => data.zones[(z - 1) as usize].name.clone(),
            Some(Target::Door(d)) => data.doors[(d - 1) as usize].name.clone(),
            None => String::new(),
        };
        data.levels.push(AccessLevel {
            id: id(l),
            name: format!("L{:04} {name}", l + 1),
            items,
        });
    }

    // People.
    let days = |n: i64| TimeDelta::days(n);
    for p in 0..spec.people {
        let roll: f64 = rng.random();
        let status = if roll < 0.03 {
            PersonStatus::Suspended
        } else if roll < 0.04 {
            PersonStatus::Terminated
        } else {
            PersonStatus::Active
        };
        let valid_until = if rng.random_bool(0.08) {
            // Contractors: a quarter of them have run out.
            Some(if rng.random_bool(0.25) {
                reference - days(rng.random_range(1..400))
            } else {
                reference + days(rng.random_range(1..400))
            })
        } else {
            None
        };
        let valid_from = if rng.random_bool(0.01) {
            Some(reference + days(rng.random_range(1..30)))
        } else if rng.random_bool(0.2) {
            Some(reference - days(rng.random_range(30..3_000)))
        } else {
            None
        };
        let first = FIRST_NAMES.choose(&mut rng).copied().unwrap_or("Ann");
        let last = LAST_NAMES.choose(&mut rng).copied().unwrap_or("Lee");
        data.people.push(Person {
            id: id(p),
            employee_id: format!("E{:06}", p + 1),
            name: format!("{first} {last}"),
            status,
            valid_from,
            valid_until,
        });
    }

    // Entitlements: 1–5 distinct levels per person, popular levels more often.
    let n_levels = data.levels.len();
    if n_levels > 0 {
        for p in 0..data.people.len() {
            let want = *[1, 1, 1, 2, 2, 2, 3, 3, 4, 5]
                .choose(&mut rng)
                .unwrap_or(&1);
            let mut held: Vec<usize> = Vec::with_capacity(want);
            for _ in 0..want * 3 {
                if held.len() == want.min(n_levels) {
                    break;
                }
                let u: f64 = rng.random();
                let l = ((u * u * n_levels as f64) as usize).min(n_levels - 1);
                if !held.contains(&l) {
                    held.push(l);
                }
            }
            for l in held {
                let roll: f64 = rng.random();
                let valid_until = if roll < 0.03 {
                    Some(reference - days(rng.random_range(1..200)))
                } else if roll < 0.08 {
                    Some(reference + days(rng.random_range(1..200)))
                } else {
                    None
                };
                data.entitlements.push(Entitlement {
                    id: id(data.entitlements.len()),
                    person_id: id(p),
                    level_id: id(l),
                    valid_until,
                });
            }
        }
    }

    // Credentials: one per person, the rest spread at random (at most four each), in
    // person order so a person's cards have neighbouring ids.
    let mut per_person = vec![1u8; data.people.len()];
    let mut extra = spec.credentials.saturating_sub(data.people.len());
    let mut order: Vec<usize> = (0..data.people.len()).collect();
    while extra > 0 && !order.is_empty() {
        order.shuffle(&mut rng);
        let before = extra;
        for &p in &order {
            if extra == 0 {
                break;
            }
            if per_person[p] < 4 && rng.random_bool(0.6) {
                per_person[p] += 1;
                extra -= 1;
            }
        }
        if extra == before {
            break;
        }
    }
    let key_mix: u64 = rng.random::<u64>() & MASK_48;
    for (p, &count) in per_person.iter().enumerate() {
        for _ in 0..count {
            let n = data.credentials.len();
            let key = if rng.random_bool(0.8) {
                card_key(n, key_mix)
            } else {
                wiegand_key(n)
            };
            let roll: f64 = rng.random();
            let status = if roll < 0.045 {
                CredentialStatus::Lost
            } else if roll < 0.05 {
                CredentialStatus::Stolen
            } else if roll < 0.06 {
                CredentialStatus::Revoked
            } else {
                CredentialStatus::Active
            };
            let roll: f64 = rng.random();
            let valid_until = if roll < 0.03 {
                Some(reference - days(rng.random_range(1..700)))
            } else if roll < 0.08 {
                Some(reference + days(rng.random_range(1..700)))
            } else {
                None
            };
            data.credentials.push(Credential {
                id: id(n),
                person_id: id(p),
                key,
                pin_hash: None,
                status,
                valid_until,
            });
        }
    }
    data
}

const MASK_48: u64 = (1 << 48) - 1;

/// A 7-byte card uid starting `04` (as MIFARE uids do), unique per credential index:
/// multiplying by an odd constant modulo 2^48 is a bijection, as is the xor.
fn card_key(n: usize, mix: u64) -> CredentialKey {
    let v = ((n as u64).wrapping_mul(0x9E37_79B9_7F4B) ^ mix) & MASK_48;
    CredentialKey::Card {
        uid: format!("04{v:012X}"),
    }
}

/// Wiegand facility codes from 100 up, numbers 1–60,000 within each.
fn wiegand_key(n: usize) -> CredentialKey {
    CredentialKey::wiegand(100 + (n / 60_000) as u32, (n % 60_000) as u32 + 1)
}

/// A key that no generated credential has: cards here start `0F`, Wiegand keys use
/// facility 9 (generated facilities start at 100).
pub fn unknown_key(rng: &mut impl Rng) -> CredentialKey {
    if rng.random_bool(0.8) {
        let v = rng.random::<u64>() & MASK_48;
        CredentialKey::Card {
            uid: format!("0F{v:012X}"),
        }
    } else {
        CredentialKey::wiegand(9, rng.random_range(1..60_000))
    }
}

/// 1-based database id of the `i`-th row.
fn id(i: usize) -> i64 {
    i as i64 + 1
}

/// How many zones each site gets: 70/30 for two sites, even beyond, at least one each.
fn site_shares(zones: usize, sites: usize) -> Vec<usize> {
    let mut shares = vec![1usize; sites];
    let rest = zones - sites;
    if sites == 2 {
        let first = rest * 7 / 10;
        shares[0] += first;
        shares[1] += rest - first;
    } else {
        for (i, s) in shares.iter_mut().enumerate() {
            *s += rest / sites + usize::from(i < rest % sites);
        }
    }
    shares
}

/// Shifts the hour field of a 5-field cron expression by `hours` (wrapping at 24), for
/// the repeats of the schedule catalogue.
fn shift_hour(cron: &str, hours: usize) -> String {
    if hours == 0 {
        return cron.to_owned();
    }
    let mut fields: Vec<String> = cron.split_whitespace().map(str::to_owned).collect();
    if let Some(hour) = fields.get_mut(1).filter(|h| h.parse::<usize>().is_ok()) {
        let h = hour.parse::<usize>().unwrap_or(0);
        *hour = ((h + hours) % 24).to_string();
    }
    fields.join(" ")
}
