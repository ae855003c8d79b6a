//! The compiled policy snapshot: an immutable, index-based view of [`PolicyData`] built
//! once per policy change, so that a decision is a few hash lookups and binary searches.

use std::fmt;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use super::directory::{DirectoryPage, PeopleDirectory, PeopleQuery};
use super::model::{
    AccessLevel, AntiPassback, Credential, CredentialKey, CredentialKeyError, CredentialStatus,
    Direction, Door, Entitlement, Holiday, HolidayRule, Person, PolicyData, Reader, Schedule, Site,
    Target, Zone,
};
use super::schedule::{self, Interval, ParsedSchedule, ScheduleError};

/// How far back the precomputed schedule intervals reach: decisions are made "now", but
/// replays and explanations of recent events look a little into the past.
pub const HORIZON_BEFORE: TimeDelta = TimeDelta::days(2);
/// How far ahead they reach; the server recompiles at least daily, so a snapshot never
/// has to answer beyond this from the slow path in practice.
pub const HORIZON_AFTER: TimeDelta = TimeDelta::days(9);

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("two {entity} rows have the same id {id}")]
    DuplicateId { entity: &'static str, id: i64 },
    #[error("{entity} {id} ('{name}') refers to {target} {target_id}, which does not exist")]
    Dangling {
        entity: &'static str,
        id: i64,
        name: String,
        target: &'static str,
        target_id: i64,
    },
    #[error(
        "site {id} ('{name}') has timezone '{timezone}', which is not an IANA timezone name \
         such as 'Europe/Berlin'"
    )]
    Timezone {
        id: i64,
        name: String,
        timezone: String,
    },
    #[error("schedule {id} ('{name}'): {source}")]
    Schedule {
        id: i64,
        name: String,
        #[source]
        source: ScheduleError,
    },
    #[error("zone {id} ('{name}') is inside itself: following its parent zones leads back to it")]
    ZoneCycle { id: i64, name: String },
    #[error(
        "zone {id} ('{name}') belongs to site {site_id} but its parent zone {parent_id} \
         belongs to site {parent_site_id}; nested zones must be in the same site"
    )]
    ZoneSite {
        id: i64,
        name: String,
        site_id: i64,
        parent_id: i64,
        parent_site_id: i64,
    },
    #[error("readers {first} and {second} both use the wire id '{reader_id}'")]
    DuplicateReaderId {
        reader_id: String,
        first: i64,
        second: i64,
    },
    #[error("people {first} and {second} both have employee id '{employee_id}'")]
    DuplicateEmployeeId {
        employee_id: String,
        first: i64,
        second: i64,
    },
    #[error("credentials {first} and {second} are both active with the same key {key}")]
    DuplicateCredentialKey {
        key: String,
        first: i64,
        second: i64,
    },
    #[error("credential {id}: {source}")]
    CredentialKey {
        id: i64,
        #[source]
        source: CredentialKeyError,
    },
}

/// How a level item reaches a door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cover {
    pub schedule: u32,
    pub timeline: u32,
    /// The zone named by the level item, when the door is covered through a zone.
    pub via_zone: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DoorInfo {
    pub zone: u32,
    pub site: u32,
    /// The door's zone or its nearest ancestor with anti-passback on.
    pub apb_zone: Option<u32>,
    /// Timeline of the door's free-access schedule at the door's site.
    pub free_access: Option<u32>,
    pub has_in_reader: bool,
    pub has_out_reader: bool,
}

/// One schedule's open intervals at one site (holidays and timezone are per site).
#[derive(Debug)]
pub(super) struct Timeline {
    pub schedule: u32,
    pub site: u32,
    pub intervals: Vec<Interval>,
}

/// Sizes of a snapshot, for health pages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub sites: usize,
    pub zones: usize,
    pub doors: usize,
    pub readers: usize,
    pub people: usize,
    pub credentials: usize,
    pub schedules: usize,
    pub holidays: usize,
    pub levels: usize,
    pub entitlements: usize,
    /// (door, level) pairs after flattening zones.
    pub door_level_pairs: usize,
    /// (schedule, site) pairs with precomputed intervals.
    pub timelines: usize,
}

/// A reader looked up by its wire id, with what the hub needs to answer it.
#[derive(Debug, Clone, Copy)]
pub struct ReaderView<'a> {
    pub reader: &'a Reader,
    pub door: &'a Door,
    pub zone: &'a Zone,
    pub site: &'a Site,
}

impl ReaderView<'_> {
    pub fn door_id(&self) -> i64 {
        self.door.id
    }

    pub fn direction(&self) -> Direction {
        self.reader.direction
    }

    pub fn unlock_ms(&self) -> u32 {
        self.door.unlock_ms
    }
}

/// A door with its place in the building.
#[derive(Debug, Clone, Copy)]
pub struct DoorView<'a> {
    pub door: &'a Door,
    pub zone: &'a Zone,
    pub site: &'a Site,
    pub antipassback_zone: Option<&'a Zone>,
}

/// The compiled, immutable policy. Cheap to share (`Arc`) and swap; never mutated. A
/// change to one person's own rows (the person, their cards, their entitlements) makes a
/// new snapshot that shares the compiled policy and lays the person's new rows over it
/// (`with_people`); a full `compile` folds them in again.
pub struct Snapshot {
    compiled: Arc<Compiled>,
    /// The people laid over `compiled` since it was compiled (none after `compile`).
    patch: Option<Arc<PeoplePatch>>,
    /// The stored policy version (audit sequence number) this snapshot holds: the one it
    /// was compiled from, or the newest its laid-over people were read at; 0 when built
    /// from data that was not read from a database.
    version: i64,
    /// How many people, credentials and entitlements are in force, with the patch.
    held: (usize, usize, usize),
    /// People in name order for the console's lists; built on first use, since decisions
    /// never need it. With a patch, from the people in force (a copy, made then).
    directory: OnceLock<(Option<Vec<Person>>, PeopleDirectory)>,
}

impl std::ops::Deref for Snapshot {
    type Target = Compiled;

    fn deref(&self) -> &Compiled {
        &self.compiled
    }
}

/// What `Snapshot::compile` builds: every table indexed. Only `Snapshot` reads its people,
/// cards and entitlements (through the patch laid over them).
pub struct Compiled {
    compiled_at: DateTime<Utc>,
    horizon_start: DateTime<Utc>,
    horizon_end: DateTime<Utc>,

    pub(super) sites: Vec<Site>,
    pub(super) site_tz: Vec<Tz>,
    pub(super) site_holidays: Vec<Vec<NaiveDate>>,
    /// Every holiday, for explanations that name the one that closed a schedule.
    holidays: Vec<Holiday>,
    site_index: FxHashMap<i64, u32>,
    holiday_count: usize,

    pub(super) zones: Vec<Zone>,
    zone_index: FxHashMap<i64, u32>,

    pub(super) doors: Vec<Door>,
    pub(super) door_info: Vec<DoorInfo>,
    door_index: FxHashMap<i64, u32>,

    readers: Vec<Reader>,
    reader_door: Vec<u32>,
    reader_index: FxHashMap<String, u32>,

    people: Vec<Person>,
    /// `entitlements[person_ents[p].0 .. person_ents[p].1]` are person `p`'s, in input order.
    person_ents: Vec<(u32, u32)>,
    person_index: FxHashMap<i64, u32>,
    employee_index: FxHashMap<String, u32>,

    credentials: Vec<Credential>,
    credential_person: Vec<u32>,
    /// `person_credentials[person_creds[p].0 .. person_creds[p].1]` are person `p`'s cards.
    person_creds: Vec<(u32, u32)>,
    person_credentials: Vec<u32>,
    credential_index: FxHashMap<i64, u32>,
    key_index: FxHashMap<CredentialKey, u32>,

    pub(super) schedules: Vec<Schedule>,
    parsed: Vec<ParsedSchedule>,
    schedule_index: FxHashMap<i64, u32>,

    pub(super) levels: Vec<AccessLevel>,
    level_index: FxHashMap<i64, u32>,

    entitlements: Vec<Entitlement>,
    entitlement_level: Vec<u32>,

    /// (door << 32 | level) -> range of `covers`, in level item order.
    coverage: FxHashMap<u64, (u32, u32)>,
    covers: Vec<Cover>,

    timelines: Vec<Timeline>,
    timeline_index: FxHashMap<(u32, u32), u32>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("compiled_at", &self.compiled_at)
            .field("horizon_end", &self.horizon_end)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

fn idx(i: usize) -> u32 {
    // Vec lengths beyond u32 are far past any building; saturate rather than panic.
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn pair_key(door: u32, level: u32) -> u64 {
    (u64::from(door) << 32) | u64::from(level)
}

fn map_with_capacity<K, V>(n: usize) -> FxHashMap<K, V> {
    FxHashMap::with_capacity_and_hasher(n, Default::default())
}

fn index_ids<T>(
    rows: &[T],
    entity: &'static str,
    id: impl Fn(&T) -> i64,
) -> Result<FxHashMap<i64, u32>, CompileError> {
    let mut map = map_with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        if map.insert(id(row), idx(i)).is_some() {
            return Err(CompileError::DuplicateId {
                entity,
                id: id(row),
            });
        }
    }
    Ok(map)
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// Builds the (schedule, site) timeline table on demand while covers are collected.
struct Timelines {
    index: FxHashMap<(u32, u32), u32>,
    pairs: Vec<(u32, u32)>,
}

impl Timelines {
    fn get(&mut self, schedule: u32, site: u32) -> u32 {
        let next = idx(self.pairs.len());
        *self.index.entry((schedule, site)).or_insert_with(|| {
            self.pairs.push((schedule, site));
            next
        })
    }
}

impl Snapshot {
    /// Validates `data` and compiles it for decisions made around `now`. Every error names
    /// the offending row by id and name.
    pub fn compile(data: &PolicyData, now: DateTime<Utc>) -> Result<Snapshot, CompileError> {
        let horizon_start = whole_seconds(now - HORIZON_BEFORE);
        let horizon_end = whole_seconds(now + HORIZON_AFTER);

        // Sites and their holidays.
        let site_index = index_ids(&data.sites, "site", |s| s.id)?;
        let site_tz = data
            .sites
            .iter()
            .map(|s| {
                s.timezone
                    .trim()
                    .parse::<Tz>()
                    .map_err(|_| CompileError::Timezone {
                        id: s.id,
                        name: s.name.clone(),
                        timezone: s.timezone.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        index_ids(&data.holidays, "holiday", |h| h.id)?;
        let mut site_holidays = vec![Vec::new(); data.sites.len()];
        for h in &data.holidays {
            match h.site_id {
                None => site_holidays.iter_mut().for_each(|v| v.push(h.date)),
                Some(site_id) => {
                    let s = *site_index
                        .get(&site_id)
                        .ok_or_else(|| CompileError::Dangling {
                            entity: "holiday",
                            id: h.id,
                            name: h.name.clone(),
                            target: "site",
                            target_id: site_id,
                        })?;
                    site_holidays[s as usize].push(h.date);
                }
            }
        }
        for v in &mut site_holidays {
            v.sort_unstable();
            v.dedup();
        }

        // Schedules.
        let schedule_index = index_ids(&data.schedules, "schedule", |s| s.id)?;
        let parsed = data
            .schedules
            .iter()
            .map(|s| {
                ParsedSchedule::parse(s).map_err(|source| CompileError::Schedule {
                    id: s.id,
                    name: s.name.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let schedule_of = |entity: &'static str, id: i64, name: &str, schedule_id: i64| {
            schedule_index
                .get(&schedule_id)
                .copied()
                .ok_or_else(|| CompileError::Dangling {
                    entity,
                    id,
                    name: name.to_owned(),
                    target: "schedule",
                    target_id: schedule_id,
                })
        };

        // Zones: sites, parents, no cycles, one site per tree.
        let zone_index = index_ids(&data.zones, "zone", |z| z.id)?;
        let mut zone_site = Vec::with_capacity(data.zones.len());
        let mut zone_parent = Vec::with_capacity(data.zones.len());
        for z in &data.zones {
            let dangling = |target, target_id| CompileError::Dangling {
                entity: "zone",
                id: z.id,
                name: z.name.clone(),
                target,
                target_id,
            };
            zone_site.push(
                *site_index
                    .get(&z.site_id)
                    .ok_or_else(|| dangling("site", z.site_id))?,
            );
            zone_parent.push(match z.parent_id {
                None => None,
                Some(p) => Some(*zone_index.get(&p).ok_or_else(|| dangling("zone", p))?),
            });
        }
        for (i, z) in data.zones.iter().enumerate() {
            let mut cur = zone_parent[i];
            let mut steps = 0;
            while let Some(p) = cur {
                steps += 1;
                if p as usize == i || steps > data.zones.len() {
                    return Err(CompileError::ZoneCycle {
                        id: z.id,
                        name: z.name.clone(),
                    });
                }
                cur = zone_parent[p as usize];
            }
            if let Some(p) = zone_parent[i]
                && zone_site[p as usize] != zone_site[i]
            {
                return Err(CompileError::ZoneSite {
                    id: z.id,
                    name: z.name.clone(),
                    site_id: z.site_id,
                    parent_id: data.zones[p as usize].id,
                    parent_site_id: data.zones[p as usize].site_id,
                });
            }
        }
        let mut zone_children: Vec<Vec<u32>> = vec![Vec::new(); data.zones.len()];
        for (i, p) in zone_parent.iter().enumerate() {
            if let Some(p) = p {
                zone_children[*p as usize].push(idx(i));
            }
        }

        let mut timelines = Timelines {
            index: FxHashMap::default(),
            pairs: Vec::new(),
        };

        // Doors.
        let door_index = index_ids(&data.doors, "door", |d| d.id)?;
        let mut door_info = Vec::with_capacity(data.doors.len());
        let mut zone_doors: Vec<Vec<u32>> = vec![Vec::new(); data.zones.len()];
        for (i, d) in data.doors.iter().enumerate() {
            let zone = *zone_index
                .get(&d.zone_id)
                .ok_or_else(|| CompileError::Dangling {
                    entity: "door",
                    id: d.id,
                    name: d.name.clone(),
                    target: "zone",
                    target_id: d.zone_id,
                })?;
            zone_doors[zone as usize].push(idx(i));
            let site = zone_site[zone as usize];
            let mut apb_zone = None;
            let mut cur = Some(zone);
            while let Some(z) = cur {
                if data.zones[z as usize].antipassback != AntiPassback::Off {
                    apb_zone = Some(z);
                    break;
                }
                cur = zone_parent[z as usize];
            }
            let free_access = match d.free_access_schedule_id {
                None => None,
                Some(s) => Some(timelines.get(schedule_of("door", d.id, &d.name, s)?, site)),
            };
            door_info.push(DoorInfo {
                zone,
                site,
                apb_zone,
                free_access,
                has_in_reader: false,
                has_out_reader: false,
            });
        }

        // Readers.
        let mut reader_index: FxHashMap<String, u32> = map_with_capacity(data.readers.len());
        let mut reader_door = Vec::with_capacity(data.readers.len());
        index_ids(&data.readers, "reader", |r| r.id)?;
        for (i, r) in data.readers.iter().enumerate() {
            let door = *door_index
                .get(&r.door_id)
                .ok_or_else(|| CompileError::Dangling {
                    entity: "reader",
                    id: r.id,
                    name: r.reader_id.clone(),
                    target: "door",
                    target_id: r.door_id,
                })?;
            if let Some(prev) = reader_index.insert(r.reader_id.clone(), idx(i)) {
                return Err(CompileError::DuplicateReaderId {
                    reader_id: r.reader_id.clone(),
                    first: data.readers[prev as usize].id,
                    second: r.id,
                });
            }
            reader_door.push(door);
            let info = &mut door_info[door as usize];
            match r.direction {
                Direction::In => info.has_in_reader = true,
                Direction::Out => info.has_out_reader = true,
            }
        }

        // People.
        let person_index = index_ids(&data.people, "person", |p| p.id)?;
        let mut employee_index: FxHashMap<String, u32> = map_with_capacity(data.people.len());
        for (i, p) in data.people.iter().enumerate() {
            // Visitors and service badges may have no employee id; only real ids must be unique.
            if p.employee_id.is_empty() {
                continue;
            }
            if let Some(prev) = employee_index.insert(p.employee_id.clone(), idx(i)) {
                return Err(CompileError::DuplicateEmployeeId {
                    employee_id: p.employee_id.clone(),
                    first: data.people[prev as usize].id,
                    second: p.id,
                });
            }
        }

        // Credentials.
        let credential_index = index_ids(&data.credentials, "credential", |c| c.id)?;
        let mut credentials = Vec::with_capacity(data.credentials.len());
        let mut credential_person = Vec::with_capacity(data.credentials.len());
        let mut key_index: FxHashMap<CredentialKey, u32> =
            map_with_capacity(data.credentials.len());
        for (i, c) in data.credentials.iter().enumerate() {
            let person = *person_index
                .get(&c.person_id)
                .ok_or_else(|| CompileError::Dangling {
                    entity: "credential",
                    id: c.id,
                    name: c.key.to_string(),
                    target: "person",
                    target_id: c.person_id,
                })?;
            let key = match &c.key {
                CredentialKey::Card { uid } => CredentialKey::card(uid)
                    .map_err(|source| CompileError::CredentialKey { id: c.id, source })?,
                k @ CredentialKey::Wiegand { .. } => k.clone(),
            };
            // A card found again after being reported lost may be reissued: the active
            // row owns the key; an old inactive row only keeps it if nothing else does.
            let i = idx(i);
            match key_index.get_mut(&key) {
                None => {
                    key_index.insert(key.clone(), i);
                }
                Some(prev) => {
                    let p: &Credential = &data.credentials[*prev as usize];
                    let active = |c: &Credential| c.status == CredentialStatus::Active;
                    if active(p) && active(c) {
                        return Err(CompileError::DuplicateCredentialKey {
                            key: key.to_string(),
                            first: p.id,
                            second: c.id,
                        });
                    }
                    if active(c) || (!active(p) && c.id > p.id) {
                        *prev = i;
                    }
                }
            }
            credentials.push(Credential { key, ..c.clone() });
            credential_person.push(person);
        }

        // Levels and the doors they cover.
        let level_index = index_ids(&data.levels, "access level", |l| l.id)?;
        let mut subtree_cache: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        let mut pairs: Vec<(u64, Cover)> = Vec::new();
        for (li, level) in data.levels.iter().enumerate() {
            let li = idx(li);
            for item in &level.items {
                let schedule =
                    schedule_of("access level", level.id, &level.name, item.schedule_id)?;
                let dangling = |target, target_id| CompileError::Dangling {
                    entity: "access level",
                    id: level.id,
                    name: level.name.clone(),
                    target,
                    target_id,
                };
                match item.target {
                    Target::Door(door_id) => {
                        let door = *door_index
                            .get(&door_id)
                            .ok_or_else(|| dangling("door", door_id))?;
                        let timeline = timelines.get(schedule, door_info[door as usize].site);
                        pairs.push((
                            pair_key(door, li),
                            Cover {
                                schedule,
                                timeline,
                                via_zone: None,
                            },
                        ));
                    }
                    Target::Zone(zone_id) => {
                        let zone = *zone_index
                            .get(&zone_id)
                            .ok_or_else(|| dangling("zone", zone_id))?;
                        let timeline = timelines.get(schedule, zone_site[zone as usize]);
                        let doors = subtree_cache
                            .entry(zone)
                            .or_insert_with(|| subtree_doors(zone, &zone_children, &zone_doors));
                        let cover = Cover {
                            schedule,
                            timeline,
                            via_zone: Some(zone),
                        };
                        pairs.extend(doors.iter().map(|d| (pair_key(*d, li), cover)));
                    }
                }
            }
        }
        // Stable, so a door's covers keep the level's item order.
        pairs.sort_by_key(|(k, _)| *k);
        pairs.dedup();
        let mut coverage: FxHashMap<u64, (u32, u32)> = map_with_capacity(pairs.len());
        let mut covers = Vec::with_capacity(pairs.len());
        for (key, cover) in pairs {
            let at = idx(covers.len());
            coverage
                .entry(key)
                .and_modify(|(_, end)| *end = at + 1)
                .or_insert((at, at + 1));
            covers.push(cover);
        }

        // Entitlements, grouped by person in input order.
        index_ids(&data.entitlements, "entitlement", |e| e.id)?;
        let mut counts = vec![0u32; data.people.len() + 1];
        let mut ent_person = Vec::with_capacity(data.entitlements.len());
        let mut ent_level = Vec::with_capacity(data.entitlements.len());
        for e in &data.entitlements {
            let dangling = |target, target_id| CompileError::Dangling {
                entity: "entitlement",
                id: e.id,
                name: format!("of person {}", e.person_id),
                target,
                target_id,
            };
            let p = *person_index
                .get(&e.person_id)
                .ok_or_else(|| dangling("person", e.person_id))?;
            let l = *level_index
                .get(&e.level_id)
                .ok_or_else(|| dangling("access level", e.level_id))?;
            counts[p as usize + 1] += 1;
            ent_person.push(p);
            ent_level.push(l);
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let person_ents: Vec<(u32, u32)> = counts.windows(2).map(|w| (w[0], w[1])).collect();
        let mut fill = counts;
        let mut slots: Vec<Option<(Entitlement, u32)>> = vec![None; data.entitlements.len()];
        for (i, e) in data.entitlements.iter().enumerate() {
            let p = ent_person[i] as usize;
            slots[fill[p] as usize] = Some((e.clone(), ent_level[i]));
            fill[p] += 1;
        }
        let (entitlements, entitlement_level): (Vec<_>, Vec<_>) =
            slots.into_iter().flatten().unzip();

        // Schedule intervals over the horizon, for each (schedule, site) in use.
        let timelines_vec = timelines
            .pairs
            .iter()
            .map(|&(schedule, site)| Timeline {
                schedule,
                site,
                intervals: schedule::open_intervals(
                    &parsed[schedule as usize],
                    site_tz[site as usize],
                    &site_holidays[site as usize],
                    horizon_start,
                    horizon_end,
                ),
            })
            .collect();

        let (person_creds, person_credentials) =
            group_by_person(&credential_person, data.people.len());
        let held = (data.people.len(), credentials.len(), entitlements.len());
        let compiled = Compiled {
            compiled_at: now,
            horizon_start,
            horizon_end,
            sites: data.sites.clone(),
            site_tz,
            site_holidays,
            holidays: data.holidays.clone(),
            site_index,
            holiday_count: data.holidays.len(),
            zones: data.zones.clone(),
            zone_index,
            doors: data.doors.clone(),
            door_info,
            door_index,
            readers: data.readers.clone(),
            reader_door,
            reader_index,
            people: data.people.clone(),
            person_ents,
            person_index,
            employee_index,
            credentials,
            credential_person,
            person_creds,
            person_credentials,
            credential_index,
            key_index,
            schedules: data.schedules.clone(),
            parsed,
            schedule_index,
            levels: data.levels.clone(),
            level_index,
            entitlements,
            entitlement_level,
            coverage,
            covers,
            timelines: timelines_vec,
            timeline_index: timelines.index,
        };
        Ok(Snapshot {
            compiled: Arc::new(compiled),
            patch: None,
            version: 0,
            held,
            directory: OnceLock::new(),
        })
    }

    pub fn compiled_at(&self) -> DateTime<Utc> {
        self.compiled_at
    }

    /// The stored policy version this snapshot was compiled from: what every decision made
    /// under it records as its `policy_version`.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The snapshot, marked as holding stored version `version` (compiled from it, or
    /// with people laid over it that were read at it).
    pub fn at_version(mut self, version: i64) -> Snapshot {
        self.version = version;
        self
    }

    /// Start of the precomputed schedule range; earlier instants use the slow path.
    pub fn horizon_start(&self) -> DateTime<Utc> {
        self.horizon_start
    }

    /// End of the precomputed schedule range: recompile before this.
    pub fn horizon_end(&self) -> DateTime<Utc> {
        self.horizon_end
    }

    pub fn counts(&self) -> Counts {
        Counts {
            sites: self.sites.len(),
            zones: self.zones.len(),
            doors: self.doors.len(),
            readers: self.readers.len(),
            people: self.held.0,
            credentials: self.held.1,
            schedules: self.schedules.len(),
            holidays: self.holiday_count,
            levels: self.levels.len(),
            entitlements: self.held.2,
            door_level_pairs: self.coverage.len(),
            timelines: self.timelines.len(),
        }
    }

    pub fn site(&self, site_id: i64) -> Option<&Site> {
        self.site_index
            .get(&site_id)
            .map(|&i| &self.sites[i as usize])
    }

    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    pub fn site_lockdown(&self, site_id: i64) -> Option<bool> {
        self.site(site_id).map(|s| s.lockdown)
    }

    pub fn site_timezone(&self, site_id: i64) -> Option<Tz> {
        self.site_index
            .get(&site_id)
            .map(|&i| self.site_tz[i as usize])
    }

    /// The timezone of the site a door is at: the clock its events are read on.
    pub fn door_timezone(&self, door_id: i64) -> Option<Tz> {
        self.door_index(door_id)
            .map(|i| self.site_tz[self.door_info[i as usize].site as usize])
    }

    /// The timezone of the site a zone is in.
    pub fn zone_timezone(&self, zone_id: i64) -> Option<Tz> {
        self.zone(zone_id)
            .and_then(|z| self.site_timezone(z.site_id))
    }

    /// The one timezone that every door and zone an access level opens is in, so that
    /// access "until 31 March" can end at midnight there. None when they are at sites
    /// in different timezones, or the level opens nothing.
    pub fn level_timezone(&self, level_id: i64) -> Option<Tz> {
        let mut zones = self
            .level(level_id)?
            .items
            .iter()
            .map(|item| match item.target {
                Target::Door(id) => self.door_timezone(id),
                Target::Zone(id) => self.zone_timezone(id),
            });
        let first = zones.next()??;
        zones.all(|tz| tz == Some(first)).then_some(first)
    }

    pub fn zone(&self, zone_id: i64) -> Option<&Zone> {
        self.zone_index
            .get(&zone_id)
            .map(|&i| &self.zones[i as usize])
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn door(&self, door_id: i64) -> Option<&Door> {
        self.door_index(door_id).map(|i| &self.doors[i as usize])
    }

    pub fn door_view(&self, door_id: i64) -> Option<DoorView<'_>> {
        self.door_index(door_id).map(|i| self.door_view_at(i))
    }

    pub fn doors(&self) -> &[Door] {
        &self.doors
    }

    /// The reader with this wire id, with its door, zone and site.
    pub fn reader(&self, wire_id: &str) -> Option<ReaderView<'_>> {
        let r = *self.reader_index.get(wire_id)?;
        let d = self.door_view_at(self.reader_door[r as usize]);
        Some(ReaderView {
            reader: &self.readers[r as usize],
            door: d.door,
            zone: d.zone,
            site: d.site,
        })
    }

    pub fn readers(&self) -> &[Reader] {
        &self.readers
    }

    /// People matching `query` in name order, from `offset`, at most `limit`, and how many
    /// match in all. The first call on a snapshot sorts its people (tens of milliseconds
    /// for 100,000); later calls scan them in memory.
    pub fn find_people(
        &self,
        query: PeopleQuery<'_>,
        offset: usize,
        limit: usize,
    ) -> DirectoryPage {
        let (own, directory) = self.directory.get_or_init(|| match &self.patch {
            None => (None, PeopleDirectory::build(&self.compiled.people)),
            Some(_) => {
                let people = self.people_in_force();
                let directory = PeopleDirectory::build(&people);
                (Some(people), directory)
            }
        });
        let people = own.as_deref().unwrap_or(&self.compiled.people);
        directory.find(people, query, offset, limit)
    }

    /// Every person in force: the compiled ones not laid over, then the patch's.
    fn people_in_force(&self) -> Vec<Person> {
        let holders = self.holders();
        let mut people: Vec<Person> = self
            .compiled
            .people
            .iter()
            .filter(|p| holders.patched(p.id).is_none())
            .cloned()
            .collect();
        if let Some(patch) = &self.patch {
            people.extend(
                patch
                    .person_ids
                    .values()
                    .flatten()
                    .map(|&p| holders.person_at(p).clone()),
            );
        }
        people
    }

    pub fn person(&self, person_id: i64) -> Option<&Person> {
        self.person_index(person_id).map(|i| self.person_at(i))
    }

    pub fn person_by_employee_id(&self, employee_id: &str) -> Option<&Person> {
        self.holders()
            .employee(employee_id)
            .map(|i| self.person_at(i))
    }

    /// The credential a reader's key belongs to (card uids compare normalised).
    pub fn credential(&self, key: &CredentialKey) -> Option<&Credential> {
        self.credential_index_by_key(key)
            .map(|i| self.credential_at(i))
    }

    pub fn credential_by_id(&self, credential_id: i64) -> Option<&Credential> {
        self.holders()
            .credential_by_id(credential_id)
            .map(|i| self.credential_at(i))
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    pub fn schedule(&self, schedule_id: i64) -> Option<&Schedule> {
        self.schedule_index
            .get(&schedule_id)
            .map(|&i| &self.schedules[i as usize])
    }

    pub fn level(&self, level_id: i64) -> Option<&AccessLevel> {
        self.level_index
            .get(&level_id)
            .map(|&i| &self.levels[i as usize])
    }

    /// A person's entitlements in input order (empty for an unknown person).
    pub fn entitlements_of(&self, person_id: i64) -> &[Entitlement] {
        match self.person_index(person_id) {
            Some(p) => self.person_entitlements(p).0,
            None => &[],
        }
    }

    /// Whether a schedule is open at a site at `t`: from the precomputed intervals inside
    /// the horizon, from the cron expressions outside it. `None` for an unknown id.
    pub fn is_schedule_open(
        &self,
        schedule_id: i64,
        site_id: i64,
        t: DateTime<Utc>,
    ) -> Option<bool> {
        let (s, site) = self.schedule_site(schedule_id, site_id)?;
        Some(match self.timeline_index.get(&(s, site)) {
            Some(&tl) => self.timeline_open(tl, t),
            None => self.exact_open(s, site, t),
        })
    }

    /// The same answer from the cron expressions alone (slow; for tests and tools).
    pub fn is_schedule_open_exact(
        &self,
        schedule_id: i64,
        site_id: i64,
        t: DateTime<Utc>,
    ) -> Option<bool> {
        let (s, site) = self.schedule_site(schedule_id, site_id)?;
        Some(self.exact_open(s, site, t))
    }

    /// When the schedule next opens (if closed at `t`) or closes (if open), within a year,
    /// when the pair is in use.
    pub fn schedule_next_change(
        &self,
        schedule_id: i64,
        site_id: i64,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let (s, site) = self.schedule_site(schedule_id, site_id)?;
        self.timeline_next_change(*self.timeline_index.get(&(s, site))?, t)
    }

    fn schedule_site(&self, schedule_id: i64, site_id: i64) -> Option<(u32, u32)> {
        Some((
            *self.schedule_index.get(&schedule_id)?,
            *self.site_index.get(&site_id)?,
        ))
    }

    fn exact_open(&self, schedule: u32, site: u32, t: DateTime<Utc>) -> bool {
        schedule::is_open_exact(
            &self.parsed[schedule as usize],
            self.site_tz[site as usize],
            &self.site_holidays[site as usize],
            t,
        )
    }

    fn in_horizon(&self, t: DateTime<Utc>) -> bool {
        self.horizon_start <= t && t < self.horizon_end
    }

    // ---- index-level access for decide and explain ----

    pub(super) fn door_index(&self, door_id: i64) -> Option<u32> {
        self.door_index.get(&door_id).copied()
    }

    pub(super) fn person_index(&self, person_id: i64) -> Option<u32> {
        self.holders().person_index(person_id)
    }

    /// The person at index `p` (an index `person_index` or `credential_owner` gave).
    pub(super) fn person_at(&self, p: u32) -> &Person {
        self.holders().person_at(p)
    }

    /// The credential at index `c` (an index `credential_index_by_key` gave).
    pub(super) fn credential_at(&self, c: u32) -> &Credential {
        self.holders().credential_at(c)
    }

    /// The index of the person credential `c` belongs to.
    pub(super) fn credential_owner(&self, c: u32) -> u32 {
        self.holders().credential_owner(c)
    }

    pub(super) fn reader_index(&self, wire_id: &str) -> Option<(u32, Direction)> {
        let r = *self.reader_index.get(wire_id)?;
        Some((
            self.reader_door[r as usize],
            self.readers[r as usize].direction,
        ))
    }

    pub(super) fn credential_index_by_key(&self, key: &CredentialKey) -> Option<u32> {
        self.holders().credential_by_key(key)
    }

    pub(super) fn door_view_at(&self, door: u32) -> DoorView<'_> {
        let info = &self.door_info[door as usize];
        DoorView {
            door: &self.doors[door as usize],
            zone: &self.zones[info.zone as usize],
            site: &self.sites[info.site as usize],
            antipassback_zone: info.apb_zone.map(|z| &self.zones[z as usize]),
        }
    }

    /// The entitlements held by person `p`, in id order, and the index of each one's level.
    pub(super) fn person_entitlements(&self, p: u32) -> (&[Entitlement], &[u32]) {
        self.holders().entitlements_of(p)
    }

    /// How level `level` reaches door `door` (empty: it doesn't).
    pub(super) fn covers(&self, door: u32, level: u32) -> &[Cover] {
        match self.coverage.get(&pair_key(door, level)) {
            Some(&(a, b)) => &self.covers[a as usize..b as usize],
            None => &[],
        }
    }

    /// The holiday that `t`'s day is on site `site`'s clock: the site's own, else one at
    /// every site. For explanations; a scan of the holidays.
    pub(super) fn holiday_on(&self, site: u32, t: DateTime<Utc>) -> Option<&Holiday> {
        let site_id = self.sites[site as usize].id;
        let day = t.with_timezone(&self.site_tz[site as usize]).date_naive();
        let on_day = || self.holidays.iter().filter(move |h| h.date == day);
        on_day()
            .find(|h| h.site_id == Some(site_id))
            .or_else(|| on_day().find(|h| h.site_id.is_none()))
    }

    /// The holiday that keeps timeline `tl` closed at `t`, when its schedule closes on
    /// holidays and one of its windows would be open then but for it.
    pub(super) fn timeline_closed_by_holiday(&self, tl: u32, t: DateTime<Utc>) -> Option<&Holiday> {
        let timeline = &self.timelines[tl as usize];
        self.closed_by_holiday(timeline.schedule, timeline.site, t)
    }

    /// As [`Snapshot::timeline_closed_by_holiday`], for schedule `schedule_id` at site
    /// index `site`.
    pub(super) fn schedule_closed_by_holiday(
        &self,
        schedule_id: i64,
        site: u32,
        t: DateTime<Utc>,
    ) -> Option<&Holiday> {
        let schedule = *self.schedule_index.get(&schedule_id)?;
        self.closed_by_holiday(schedule, site, t)
    }

    fn closed_by_holiday(&self, schedule: u32, site: u32, t: DateTime<Utc>) -> Option<&Holiday> {
        let parsed = &self.parsed[schedule as usize];
        if parsed.holidays != HolidayRule::Closed {
            return None;
        }
        let tz = self.site_tz[site as usize];
        let holiday = self.holiday_on(site, t)?;
        parsed
            .windows
            .iter()
            .any(|w| w.is_open_exact(tz, t))
            .then_some(holiday)
    }

    /// Whether timeline `tl` is open at `t`; the decision path's only schedule check.
    pub(super) fn timeline_open(&self, tl: u32, t: DateTime<Utc>) -> bool {
        let timeline = &self.timelines[tl as usize];
        if self.in_horizon(t) {
            schedule::intervals_contain(&timeline.intervals, t.timestamp())
        } else {
            self.exact_open(timeline.schedule, timeline.site, t)
        }
    }

    /// When timeline `tl` next opens or closes after `t`: from the precomputed intervals
    /// inside the horizon, else from the schedule itself, a fortnight at a time, up to a
    /// year ahead (a schedule that never changes in a year has no answer). For
    /// explanations and pages, never on the decision path.
    pub(super) fn timeline_next_change(&self, tl: u32, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let timeline = &self.timelines[tl as usize];
        if self.in_horizon(t)
            && let Some(ts) = schedule::next_change(&timeline.intervals, t.timestamp())
            && let Some(at) =
                DateTime::<Utc>::from_timestamp(ts, 0).filter(|c| *c < self.horizon_end)
        {
            return Some(at);
        }
        let from = if self.in_horizon(t) {
            self.horizon_end.max(t)
        } else {
            t
        };
        self.next_change_exact(timeline.schedule, timeline.site, t, from)
    }

    /// The first change of the schedule's state after `t`, looking from `from` (no change
    /// between `t` and `from`), computed from its windows and the site's holidays.
    fn next_change_exact(
        &self,
        schedule: u32,
        site: u32,
        t: DateTime<Utc>,
        from: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        const STEP: TimeDelta = TimeDelta::days(14);
        // Windows and holidays are cut at the ends of a range: a change found in its last
        // two days may be the cut, so each range reaches that far past the step.
        const MARGIN: TimeDelta = TimeDelta::days(2);
        let parsed = &self.parsed[schedule as usize];
        let (tz, holidays) = (
            self.site_tz[site as usize],
            &self.site_holidays[site as usize],
        );
        let open_at_t = self.exact_open(schedule, site, t);
        let mut start = from;
        while start < t + TimeDelta::days(366) {
            let intervals =
                schedule::open_intervals(parsed, tz, holidays, start, start + STEP + MARGIN);
            let ts = start.timestamp().max(t.timestamp());
            let change = if schedule::intervals_contain(&intervals, ts) == open_at_t {
                schedule::next_change(&intervals, ts)
            } else {
                // Already changed at the start of this range: it changed right there.
                Some(ts)
            };
            if let Some(at) = change
                .and_then(|c| DateTime::<Utc>::from_timestamp(c, 0))
                .filter(|c| *c < start + STEP)
            {
                return Some(at);
            }
            start += STEP;
        }
        None
    }
}

/// One person's own rows as stored now: what a change to that person, their cards or
/// their entitlements lays over a snapshot (`Snapshot::with_people`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRecord {
    pub person_id: i64,
    /// `None`: the person no longer exists.
    pub person: Option<Person>,
    pub credentials: Vec<Credential>,
    /// In id order, as `load_policy` reads them (the first open one grants).
    pub entitlements: Vec<Entitlement>,
}

/// Why a person's rows cannot be laid over a snapshot; the caller compiles the whole
/// policy instead, which judges them against everything else.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("entitlement {id} refers to access level {level_id}, which the snapshot lacks")]
    UnknownLevel { id: i64, level_id: i64 },
    #[error("credential {id}: its key {key} is another person's in the snapshot")]
    KeyTaken { id: i64, key: String },
    #[error("person {id}: employee id '{employee_id}' is another person's in the snapshot")]
    EmployeeIdTaken { id: i64, employee_id: String },
    #[error("{entity} {id} belongs to person {owner}, not to person {person}")]
    NotTheirs {
        entity: &'static str,
        id: i64,
        owner: i64,
        person: i64,
    },
}

/// The people laid over a compiled snapshot, with their cards and entitlements. Indexes
/// past the compiled tables' ends are the patch's: person `compiled.people.len() + k` is
/// `people[k]`, credential `compiled.credentials.len() + k` is `credentials[k]`. The maps
/// say, for every id and key a patched person had or has, where it is now (`None`: gone);
/// whatever they do not name is as compiled.
#[derive(Debug, Default, Clone)]
struct PeoplePatch {
    person_ids: FxHashMap<i64, Option<u32>>,
    employee_ids: FxHashMap<String, Option<u32>>,
    people: Vec<Person>,
    /// Per patched person: their range of `credentials` and of `entitlements`.
    creds: Vec<(u32, u32)>,
    ents: Vec<(u32, u32)>,
    keys: FxHashMap<CredentialKey, Option<u32>>,
    credential_ids: FxHashMap<i64, Option<u32>>,
    credentials: Vec<Credential>,
    credential_person: Vec<u32>,
    entitlements: Vec<Entitlement>,
    entitlement_level: Vec<u32>,
}

/// The people, cards and entitlements in force: the compiled tables under the patch.
#[derive(Clone, Copy)]
struct Holders<'a> {
    compiled: &'a Compiled,
    patch: Option<&'a PeoplePatch>,
}

impl<'a> Holders<'a> {
    fn base_people(&self) -> u32 {
        idx(self.compiled.people.len())
    }

    fn base_credentials(&self) -> u32 {
        idx(self.compiled.credentials.len())
    }

    /// What the patch says of a person id: `Some(Some(p))` laid over, `Some(None)` gone.
    fn patched(&self, person_id: i64) -> Option<Option<u32>> {
        self.patch
            .and_then(|patch| patch.person_ids.get(&person_id).copied())
    }

    fn person_index(&self, person_id: i64) -> Option<u32> {
        match self.patched(person_id) {
            Some(p) => p,
            None => self.compiled.person_index.get(&person_id).copied(),
        }
    }

    fn person_at(&self, p: u32) -> &'a Person {
        match p.checked_sub(self.base_people()) {
            None => &self.compiled.people[p as usize],
            Some(k) => &self.patch_ref().people[k as usize],
        }
    }

    fn employee(&self, employee_id: &str) -> Option<u32> {
        if let Some(found) = self
            .patch
            .and_then(|patch| patch.employee_ids.get(employee_id))
        {
            return *found;
        }
        let p = *self.compiled.employee_index.get(employee_id)?;
        // A person laid over is found only through the patch.
        self.patched(self.compiled.people[p as usize].id)
            .is_none()
            .then_some(p)
    }

    fn credential_by_key(&self, key: &CredentialKey) -> Option<u32> {
        if let Some(found) = self.patch.and_then(|patch| patch.keys.get(key)) {
            return *found;
        }
        let c = *self.compiled.key_index.get(key)?;
        self.base_credential_in_force(c).then_some(c)
    }

    fn credential_by_id(&self, credential_id: i64) -> Option<u32> {
        if let Some(found) = self
            .patch
            .and_then(|patch| patch.credential_ids.get(&credential_id))
        {
            return *found;
        }
        let c = *self.compiled.credential_index.get(&credential_id)?;
        self.base_credential_in_force(c).then_some(c)
    }

    /// A compiled credential counts only while neither it nor its holder is laid over.
    fn base_credential_in_force(&self, c: u32) -> bool {
        let Some(patch) = self.patch else {
            return true;
        };
        let credential = &self.compiled.credentials[c as usize];
        !patch.credential_ids.contains_key(&credential.id)
            && !patch.person_ids.contains_key(&credential.person_id)
    }

    fn credential_at(&self, c: u32) -> &'a Credential {
        match c.checked_sub(self.base_credentials()) {
            None => &self.compiled.credentials[c as usize],
            Some(k) => &self.patch_ref().credentials[k as usize],
        }
    }

    fn credential_owner(&self, c: u32) -> u32 {
        match c.checked_sub(self.base_credentials()) {
            None => self.compiled.credential_person[c as usize],
            Some(k) => self.patch_ref().credential_person[k as usize],
        }
    }

    /// Person `p`'s credentials, as indexes.
    fn credentials_of(&self, p: u32) -> std::ops::Range<u32> {
        match p.checked_sub(self.base_people()) {
            None => 0..0,
            Some(k) => {
                let (a, b) = self.patch_ref().creds[k as usize];
                self.base_credentials() + a..self.base_credentials() + b
            }
        }
    }

    /// Person `p`'s compiled credentials (none for a patched person: see `credentials_of`).
    fn compiled_credentials_of(&self, p: u32) -> &'a [u32] {
        if p >= self.base_people() {
            return &[];
        }
        let (a, b) = self.compiled.person_creds[p as usize];
        &self.compiled.person_credentials[a as usize..b as usize]
    }

    fn entitlements_of(&self, p: u32) -> (&'a [Entitlement], &'a [u32]) {
        match p.checked_sub(self.base_people()) {
            None => {
                let (a, b) = self.compiled.person_ents[p as usize];
                let range = a as usize..b as usize;
                (
                    &self.compiled.entitlements[range.clone()],
                    &self.compiled.entitlement_level[range],
                )
            }
            Some(k) => {
                let patch = self.patch_ref();
                let (a, b) = patch.ents[k as usize];
                let range = a as usize..b as usize;
                (
                    &patch.entitlements[range.clone()],
                    &patch.entitlement_level[range],
                )
            }
        }
    }

    /// Only called with an index past the compiled tables, which only a patch hands out.
    fn patch_ref(&self) -> &'a PeoplePatch {
        static EMPTY: std::sync::LazyLock<PeoplePatch> =
            std::sync::LazyLock::new(PeoplePatch::default);
        self.patch.unwrap_or(&EMPTY)
    }
}

impl Snapshot {
    fn holders(&self) -> Holders<'_> {
        Holders {
            compiled: &self.compiled,
            patch: self.patch.as_deref(),
        }
    }

    /// Whether people were laid over this snapshot since it was compiled.
    pub fn is_patched(&self) -> bool {
        self.patch.is_some()
    }

    /// This snapshot with the given people's own rows replaced by `records` (a person
    /// created, changed or deleted; their cards and entitlements as they are now), sharing
    /// everything else. Decisions on the result are those of compiling the policy with
    /// those rows (the tests compare them); where that cannot be told from the person
    /// alone (a key or employee id another person holds, a level the snapshot lacks) it
    /// refuses, and the caller compiles.
    pub fn with_people(&self, records: &[PersonRecord]) -> Result<Snapshot, PatchError> {
        let mut patch = self.patch.as_deref().cloned().unwrap_or_default();
        let (mut people, mut credentials, mut entitlements) = self.held;
        // First take out everything the people had, so that a card moving between two of
        // them is free for its new holder.
        for record in records {
            let view = Holders {
                compiled: &self.compiled,
                patch: Some(&patch),
            };
            let Some(p) = view.person_index(record.person_id) else {
                continue;
            };
            let person = view.person_at(p);
            let own_key = |key: &CredentialKey, c: u32| view.credential_by_key(key) == Some(c);
            // Only what is still theirs: a card that moved to another person laid over
            // earlier is that person's now.
            let owned: Vec<(u32, &Credential)> = view
                .compiled_credentials_of(p)
                .iter()
                .copied()
                .chain(view.credentials_of(p))
                .map(|c| (c, view.credential_at(c)))
                .filter(|(c, credential)| view.credential_by_id(credential.id) == Some(*c))
                .collect();
            let free_keys: Vec<CredentialKey> = owned
                .iter()
                .filter(|(c, credential)| own_key(&credential.key, *c))
                .map(|(_, credential)| credential.key.clone())
                .collect();
            let gone_ids: Vec<i64> = owned.iter().map(|(_, credential)| credential.id).collect();
            let employee_id = (!person.employee_id.is_empty()
                && view.employee(&person.employee_id) == Some(p))
            .then(|| person.employee_id.clone());
            let held = view.entitlements_of(p).0.len();
            people -= 1;
            credentials -= gone_ids.len();
            entitlements -= held;
            for key in free_keys {
                patch.keys.insert(key, None);
            }
            for id in gone_ids {
                patch.credential_ids.insert(id, None);
            }
            if let Some(employee_id) = employee_id {
                patch.employee_ids.insert(employee_id, None);
            }
            patch.person_ids.insert(record.person_id, None);
        }
        let base_people = idx(self.compiled.people.len());
        let base_credentials = idx(self.compiled.credentials.len());
        let mut added = FxHashSet::default();
        for record in records {
            let Some(person) = &record.person else {
                continue;
            };
            if !added.insert(record.person_id) {
                continue;
            }
            let not_theirs = |entity, id, owner| PatchError::NotTheirs {
                entity,
                id,
                owner,
                person: record.person_id,
            };
            if person.id != record.person_id {
                return Err(not_theirs("person", person.id, person.id));
            }
            let p = base_people + idx(patch.people.len());
            if !person.employee_id.is_empty() {
                let view = Holders {
                    compiled: &self.compiled,
                    patch: Some(&patch),
                };
                if view.employee(&person.employee_id).is_some() {
                    return Err(PatchError::EmployeeIdTaken {
                        id: person.id,
                        employee_id: person.employee_id.clone(),
                    });
                }
                patch
                    .employee_ids
                    .insert(person.employee_id.clone(), Some(p));
            }
            patch.person_ids.insert(person.id, Some(p));
            patch.people.push(person.clone());
            people += 1;
            let first = idx(patch.credentials.len());
            for c in &record.credentials {
                if c.person_id != person.id {
                    return Err(not_theirs("credential", c.id, c.person_id));
                }
                let view = Holders {
                    compiled: &self.compiled,
                    patch: Some(&patch),
                };
                if view.credential_by_key(&c.key).is_some() {
                    return Err(PatchError::KeyTaken {
                        id: c.id,
                        key: c.key.to_string(),
                    });
                }
                let at = base_credentials + idx(patch.credentials.len());
                patch.keys.insert(c.key.clone(), Some(at));
                patch.credential_ids.insert(c.id, Some(at));
                patch.credentials.push(c.clone());
                patch.credential_person.push(p);
                credentials += 1;
            }
            patch.creds.push((first, idx(patch.credentials.len())));
            let first = idx(patch.entitlements.len());
            let mut held: Vec<&Entitlement> = record.entitlements.iter().collect();
            held.sort_by_key(|e| e.id);
            for e in held {
                if e.person_id != person.id {
                    return Err(not_theirs("entitlement", e.id, e.person_id));
                }
                let level = *self.compiled.level_index.get(&e.level_id).ok_or(
                    PatchError::UnknownLevel {
                        id: e.id,
                        level_id: e.level_id,
                    },
                )?;
                patch.entitlements.push(e.clone());
                patch.entitlement_level.push(level);
                entitlements += 1;
            }
            patch.ents.push((first, idx(patch.entitlements.len())));
        }
        Ok(Snapshot {
            compiled: self.compiled.clone(),
            patch: Some(Arc::new(patch)),
            // The caller marks the version its rows were read at (`at_version`).
            version: self.version,
            held: (people, credentials, entitlements),
            directory: OnceLock::new(),
        })
    }
}

/// Groups item indexes by the person each belongs to: per person, a range of the second
/// vector, which lists item indexes person by person (each person's in item order).
fn group_by_person(owner: &[u32], people: usize) -> (Vec<(u32, u32)>, Vec<u32>) {
    let mut starts = vec![0u32; people + 1];
    for &p in owner {
        starts[p as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let ranges = starts.windows(2).map(|w| (w[0], w[1])).collect();
    let mut fill = starts;
    let mut items = vec![0u32; owner.len()];
    for (i, &p) in owner.iter().enumerate() {
        items[fill[p as usize] as usize] = idx(i);
        fill[p as usize] += 1;
    }
    (ranges, items)
}

/// Every door in `zone` and, recursively, in its child zones.
fn subtree_doors(zone: u32, children: &[Vec<u32>], doors: &[Vec<u32>]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut seen = FxHashSet::default();
    let mut stack = vec![zone];
    while let Some(z) = stack.pop() {
        if !seen.insert(z) {
            continue;
        }
        out.extend_from_slice(&doors[z as usize]);
        stack.extend_from_slice(&children[z as usize]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::decide::{DenyCode, Outcome};
    use crate::policy::fixtures::*;
    use crate::policy::model::{DoorMode, HolidayRule, Target};

    fn error(f: Fixture) -> String {
        Snapshot::compile(&f.data, WED_10).unwrap_err().to_string()
    }

    #[test]
    fn validation_errors_name_the_row() {
        let e = error(building().with(|d| d.doors[1].zone_id = 999));
        assert_eq!(
            e,
            "door 101 ('office') refers to zone 999, which does not exist"
        );
        let e = error(building().with(|d| d.sites[1].timezone = "America/New_Yrok".into()));
        assert!(
            e.contains("site 2 ('Plant')") && e.contains("'America/New_Yrok'"),
            "{e}"
        );
        let e = error(building().with(|d| d.schedules[0].windows[0].cron = "0 25 * * *".into()));
        assert!(
            e.starts_with("schedule 1 ('schedule 1'): the time window '0 25 * * *'"),
            "{e}"
        );
        let e = error(building().with(|d| d.zones[0].parent_id = Some(LAB_ZONE)));
        assert!(e.contains("zone 10 ('Campus') is inside itself"), "{e}");
        let e = error(building().with(|d| d.zones[4].parent_id = Some(CAMPUS_ZONE)));
        assert!(e.contains("nested zones must be in the same site"), "{e}");
        let e = error(building().with(|d| d.readers[3].reader_id = "main-in".into()));
        assert_eq!(e, "readers 1000 and 1011 both use the wire id 'main-in'");
        let e = error(building().level(STAFF, &[]));
        assert_eq!(e, "two access level rows have the same id 1");
        let e = error(building().level(9, &[(Target::Zone(77), ALWAYS)]));
        assert_eq!(
            e,
            "access level 9 ('level 9') refers to zone 77, which does not exist"
        );
        let e = error(building().person(1).grant(21, 1, 42, None));
        assert!(
            e.contains("entitlement 21") && e.contains("access level 42"),
            "{e}"
        );
        let e = error(
            building()
                .person(1)
                .person(2)
                .with(|d| d.people[1].employee_id = "E1".into()),
        );
        assert_eq!(e, "people 1 and 2 both have employee id 'E1'");
        let e = error(building().person(1).card(11, 1, "0x12"));
        assert!(e.starts_with("credential 11: card uid '0x12'"), "{e}");
        let e = error(building().person(1).card(11, 1, "ab").card(12, 1, "AB"));
        assert_eq!(
            e,
            "credentials 11 and 12 are both active with the same key AB"
        );
    }

    #[test]
    fn doors_zones_and_levels_know_their_sites_timezone() {
        use chrono_tz::America::New_York;
        use chrono_tz::Europe::Berlin;
        let snap = building()
            .level(
                9,
                &[
                    (Target::Door(MAIN_DOOR), ALWAYS),
                    (Target::Zone(PLANT_ZONE), ALWAYS),
                ],
            )
            .level(10, &[])
            .compile(WED_10);
        assert_eq!(snap.door_timezone(LAB_DOOR), Some(Berlin));
        assert_eq!(snap.door_timezone(PLANT_DOOR), Some(New_York));
        assert_eq!(snap.door_timezone(999), None);
        assert_eq!(snap.zone_timezone(LAB_ZONE), Some(Berlin));
        assert_eq!(snap.zone_timezone(PLANT_ZONE), Some(New_York));
        assert_eq!(snap.level_timezone(STAFF), Some(Berlin));
        assert_eq!(snap.level_timezone(PLANT), Some(New_York));
        assert_eq!(
            snap.level_timezone(9),
            None,
            "doors at sites in two timezones"
        );
        assert_eq!(snap.level_timezone(10), None, "opens nothing");
        assert_eq!(snap.level_timezone(99), None);
    }

    #[test]
    fn snapshot_can_be_shared_across_threads() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<Snapshot>();
        shared::<crate::policy::presence::Presence>();
    }

    #[test]
    fn a_reissued_card_belongs_to_its_active_row() {
        let snap = building()
            .person(1)
            .person(2)
            .card(11, 1, "AB")
            .card(12, 2, "ab")
            .with(|d| d.credentials[0].status = crate::policy::model::CredentialStatus::Lost)
            .compile(WED_10);
        assert_eq!(snap.credential(&card("AB")).map(|c| c.person_id), Some(2));
        assert_eq!(snap.credential_by_id(11).map(|c| c.id), Some(11));
    }

    #[test]
    fn accessors() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .with(|d| d.sites[1].lockdown = true)
            .compile(WED_10);
        let r = snap.reader("lab-out").unwrap();
        assert_eq!(
            (r.door_id(), r.direction(), r.unlock_ms()),
            (LAB_DOOR, Direction::Out, 5000)
        );
        assert_eq!((r.zone.id, r.site.id), (LAB_ZONE, HQ));
        assert!(snap.reader("lab-sideways").is_none());
        assert_eq!(snap.readers().len(), 18);
        assert_eq!(
            snap.door(VAULT_DOOR).map(|d| d.mode),
            Some(DoorMode::Locked)
        );
        assert_eq!(
            snap.door_view(SERVER_DOOR)
                .and_then(|v| v.antipassback_zone)
                .map(|z| z.id),
            Some(LAB_ZONE)
        );
        assert!(
            snap.door_view(OFFICE_DOOR)
                .is_some_and(|v| v.antipassback_zone.is_none())
        );
        assert_eq!(snap.person_by_employee_id("E1").map(|p| p.id), Some(1));
        assert_eq!(snap.person(1).map(|p| p.name.as_str()), Some("Person 1"));
        assert_eq!(snap.credential(&card("01")).map(|c| c.id), Some(11));
        assert_eq!(snap.site_lockdown(HQ), Some(false));
        assert_eq!(snap.site_lockdown(PLANT_SITE), Some(true));
        assert_eq!(snap.site_lockdown(99), None);
        assert_eq!(snap.entitlements_of(1).len(), 1);
        assert!(snap.entitlements_of(99).is_empty());
        assert_eq!(snap.compiled_at(), WED_10);
        assert_eq!(snap.horizon_end(), WED_10 + HORIZON_AFTER);
        assert_eq!(snap.horizon_start(), WED_10 - HORIZON_BEFORE);
        let c = snap.counts();
        assert_eq!(
            (
                c.people,
                c.credentials,
                c.doors,
                c.zones,
                c.levels,
                c.entitlements
            ),
            (1, 1, 9, 5, 5, 1)
        );
        // Staff covers the five doors of the office zone and its lab child zone.
        assert_eq!(
            c.door_level_pairs,
            5 + 2 + 1 + 1 + 1,
            "staff 5, lab 2, garage 1, plant 1, main 1"
        );
    }

    /// A building whose schedules exercise the awkward cases, at both sites.
    fn awkward_schedules() -> Fixture {
        let windows: [&[(&str, u32)]; 6] = [
            &[("0 22 * * *", 600)],
            &[("*/15 * * * *", 20)],
            &[("30 2 * * *", 60), ("0 1 * * *", 90)],
            &[("0 0 * * Mon", MAX_WEEK)],
            &[("0 8 * * Mon-Fri", 540), ("0 22 * * Fri", 600)],
            &[("59 23 * * *", 2)],
        ];
        let mut f = building()
            .holiday(1, Some(HQ), "2026-03-30")
            .holiday(2, None, "2026-10-26")
            .holiday(3, Some(PLANT_SITE), "2026-03-09")
            .holiday(4, None, "2026-11-02");
        for (i, w) in windows.iter().enumerate() {
            let id = 50 + i as i64;
            let rule = if i % 2 == 0 {
                HolidayRule::Closed
            } else {
                HolidayRule::Ignore
            };
            f = f.schedule(id, rule, w).level(
                id,
                &[
                    (Target::Zone(CAMPUS_ZONE), id),
                    (Target::Zone(PLANT_ZONE), id),
                ],
            );
        }
        f
    }

    const MAX_WEEK: u32 = crate::policy::schedule::MAX_WINDOW_MINUTES;

    #[test]
    fn fast_path_agrees_with_exact_path_over_the_horizon() {
        let f = awkward_schedules();
        for now in [
            at_berlin("2026-03-28 12:00"),
            at_berlin("2026-10-24 12:00"),
            at_berlin("2026-03-06 12:00"),
            at_berlin("2026-10-30 12:00"),
        ] {
            let snap = f.compile(now);
            assert!(snap.timelines.len() >= 12);
            for tl in &snap.timelines {
                let schedule_id = snap.schedules[tl.schedule as usize].id;
                let site_id = snap.sites[tl.site as usize].id;
                let mut t = snap.horizon_start();
                let mut opened = 0;
                while t < snap.horizon_end() {
                    let fast = snap.is_schedule_open(schedule_id, site_id, t).unwrap();
                    let exact = snap
                        .is_schedule_open_exact(schedule_id, site_id, t)
                        .unwrap();
                    assert_eq!(fast, exact, "schedule {schedule_id} at site {site_id}, {t}");
                    opened += usize::from(fast);
                    t += TimeDelta::minutes(7);
                }
                assert!(opened > 0, "schedule {schedule_id} never opened");
                // And at each edge of each interval, to the second.
                for iv in &tl.intervals {
                    for ts in [iv.start - 1, iv.start, iv.end - 1, iv.end] {
                        let t = DateTime::<Utc>::from_timestamp(ts, 0).unwrap();
                        if snap.in_horizon(t) {
                            assert_eq!(
                                snap.is_schedule_open(schedule_id, site_id, t),
                                snap.is_schedule_open_exact(schedule_id, site_id, t),
                                "edge of schedule {schedule_id} at site {site_id}, {t}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn outside_the_horizon_decisions_fall_back_to_the_exact_path() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        let later = WED_10 + TimeDelta::days(28);
        let earlier = WED_10 - TimeDelta::days(7);
        for t in [later, earlier] {
            assert!(!snap.in_horizon(t));
            assert_eq!(snap.is_schedule_open(OFFICE_HOURS, HQ, t), Some(true));
            assert_eq!(
                snap.is_schedule_open(OFFICE_HOURS, HQ, t + TimeDelta::hours(12)),
                Some(false)
            );
            assert!(swipe(&snap, "office-in", "01", t).granted());
            assert_eq!(
                swipe(&snap, "office-in", "01", t + TimeDelta::hours(12)).outcome,
                Outcome::Deny(DenyCode::Schedule)
            );
        }
        // Beyond the horizon the next change is worked out from the schedule itself.
        assert_eq!(
            snap.schedule_next_change(OFFICE_HOURS, HQ, later),
            Some(at_berlin("2026-07-08 17:00"))
        );
        assert_eq!(
            snap.schedule_next_change(OFFICE_HOURS, HQ, later + TimeDelta::hours(12)),
            Some(at_berlin("2026-07-09 08:00")),
            "{later}"
        );
        assert_eq!(
            snap.schedule_next_change(OFFICE_HOURS, HQ, WED_10),
            Some(at_berlin("2026-06-10 17:00"))
        );
    }

    /// The benchmark's scale: 100k people, 200k cards, 1,000 doors in 50 zones, 1,000
    /// levels, 20 schedules. Run with `--ignored`; timings in a debug build are upper bounds.
    #[test]
    #[ignore]
    fn benchmark_scale() {
        use crate::policy::decide::{Request, decide};
        use crate::policy::model::*;
        use crate::policy::presence::Presence;
        let mut data = PolicyData::default();
        data.sites.push(Site {
            id: 1,
            name: "HQ".into(),
            timezone: "Europe/Berlin".into(),
            lockdown: false,
        });
        for z in 0..50 {
            data.zones.push(Zone {
                id: z,
                site_id: 1,
                parent_id: (z > 0).then_some((z - 1) / 7),
                name: format!("zone {z}"),
                antipassback: if z % 10 == 3 {
                    AntiPassback::Hard
                } else {
                    AntiPassback::Off
                },
                presence_reset: None,
            });
        }
        for d in 0..1000 {
            data.doors.push(Door {
                id: d,
                zone_id: d % 50,
                name: format!("door {d}"),
                unlock_ms: 5000,
                held_open_s: 30,
                mode: DoorMode::Normal,
                free_access_schedule_id: None,
                sensitivity: Sensitivity::Normal,
            });
            for (n, direction) in [(0, Direction::In), (1, Direction::Out)] {
                data.readers.push(Reader {
                    id: d * 2 + n,
                    reader_id: format!("r{d}-{direction}"),
                    door_id: d,
                    direction,
                });
            }
        }
        for s in 0..20 {
            data.schedules.push(Schedule {
                id: s,
                name: format!("schedule {s}"),
                holidays: HolidayRule::Closed,
                windows: vec![Window {
                    cron: format!("0 {} * * Mon-Fri", s % 12),
                    duration_min: 600,
                }],
            });
        }
        for l in 0..1000 {
            data.levels.push(AccessLevel {
                id: l,
                name: format!("level {l}"),
                items: vec![
                    LevelItem {
                        target: Target::Zone(l % 50),
                        schedule_id: l % 20,
                    },
                    LevelItem {
                        target: Target::Door((l * 7) % 1000),
                        schedule_id: (l + 1) % 20,
                    },
                ],
            });
        }
        for p in 0..100_000 {
            data.people.push(Person {
                id: p,
                employee_id: format!("E{p}"),
                name: format!("Person {p}"),
                status: PersonStatus::Active,
                valid_from: None,
                valid_until: None,
            });
            for c in 0..2 {
                data.credentials.push(Credential {
                    id: p * 2 + c,
                    person_id: p,
                    key: CredentialKey::Card {
                        uid: format!("{:08X}", p * 2 + c),
                    },
                    pin_hash: None,
                    status: CredentialStatus::Active,
                    valid_until: None,
                });
            }
            for e in 0..3 {
                data.entitlements.push(Entitlement {
                    id: p * 3 + e,
                    person_id: p,
                    level_id: (p * 3 + e * 17) % 1000,
                    valid_until: None,
                });
            }
        }
        let started = std::time::Instant::now();
        let snap = Snapshot::compile(&data, WED_10).unwrap();
        let compile = started.elapsed();
        let presence = Presence::new();
        let keys: Vec<_> = (0..10_000)
            .map(|i| CredentialKey::Card {
                uid: format!("{:08X}", (i * 37) % 200_000),
            })
            .collect();
        let readers: Vec<_> = (0..10_000)
            .map(|i| format!("r{}-in", (i * 13) % 1000))
            .collect();
        let mut times = Vec::with_capacity(keys.len());
        let mut granted = 0;
        for (key, reader) in keys.iter().zip(&readers) {
            let req = Request {
                reader_id: reader,
                credential: key,
                pin: None,
            };
            let t = std::time::Instant::now();
            let d = decide(&snap, &presence, &req, WED_10).unwrap();
            times.push(t.elapsed());
            granted += usize::from(d.granted());
        }
        times.sort();
        println!(
            "compile {compile:?}, {:?}; decide p50 {:?} p99 {:?}; {granted} of {} granted",
            snap.counts(),
            times[times.len() / 2],
            times[times.len() * 99 / 100],
            times.len()
        );
    }
}
