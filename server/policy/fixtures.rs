//! Test fixtures: a small two-site building and a builder to add people, cards and
//! grants in one line each, so policy tests read like the scenario they check.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::decide::{Decision, Request, decide};
use super::model::*;
use super::presence::Presence;
use super::snapshot::Snapshot;

pub const HQ: i64 = 1;
pub const PLANT_SITE: i64 = 2;

pub const CAMPUS_ZONE: i64 = 10;
pub const OFFICE_ZONE: i64 = 11;
/// Hard anti-passback; child of the office zone.
pub const LAB_ZONE: i64 = 12;
/// Soft anti-passback.
pub const GARAGE_ZONE: i64 = 13;
pub const PLANT_ZONE: i64 = 20;

pub const MAIN_DOOR: i64 = 100;
pub const OFFICE_DOOR: i64 = 101;
pub const LAB_DOOR: i64 = 102;
/// Card and PIN, in the lab zone.
pub const SERVER_DOOR: i64 = 103;
pub const GARAGE_DOOR: i64 = 104;
/// Free access during lobby hours.
pub const LOBBY_DOOR: i64 = 105;
/// Locked, in the office zone.
pub const VAULT_DOOR: i64 = 106;
/// Unlocked, in the office zone.
pub const CAFETERIA_DOOR: i64 = 107;
pub const PLANT_DOOR: i64 = 200;

/// `0 8 * * Mon-Fri` for 9 hours, closed on holidays.
pub const OFFICE_HOURS: i64 = 1;
/// Every day, all day, holidays too.
pub const ALWAYS: i64 = 2;
/// `0 7 * * Mon-Fri` for 12 hours, closed on holidays.
pub const LOBBY_HOURS: i64 = 3;

/// The office zone (so also the lab) in office hours.
pub const STAFF: i64 = 1;
/// The lab and server room doors, always.
pub const LAB_24_7: i64 = 2;
/// The garage zone, always.
pub const GARAGE: i64 = 3;
/// The plant zone in (New York) office hours.
pub const PLANT: i64 = 4;
/// The main door, always.
pub const MAIN: i64 = 5;

const fn utc(secs: i64) -> DateTime<Utc> {
    match DateTime::from_timestamp(secs, 0) {
        Some(t) => t,
        None => panic!("bad timestamp"),
    }
}

/// Wednesday 2026-06-10, 10:00 in Berlin (08:00 UTC).
pub const WED_10: DateTime<Utc> = utc(1_781_078_400);
/// The same Wednesday, 22:00 in Berlin.
pub const WED_22: DateTime<Utc> = utc(1_781_078_400 + 12 * 3600);

/// An unambiguous local time "YYYY-MM-DD HH:MM" in `tz`, as UTC.
pub fn at(tz: Tz, local: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&naive)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

pub fn at_berlin(local: &str) -> DateTime<Utc> {
    at(chrono_tz::Europe::Berlin, local)
}

pub fn card(uid: &str) -> CredentialKey {
    CredentialKey::card(uid).unwrap()
}

pub fn swipe_with(
    snap: &Snapshot,
    presence: &Presence,
    reader: &str,
    uid: &str,
    pin: Option<&str>,
    now: DateTime<Utc>,
) -> Decision {
    let key = card(uid);
    let request = Request {
        reader_id: reader,
        credential: &key,
        pin,
    };
    decide(snap, presence, &request, now).unwrap()
}

pub fn swipe(snap: &Snapshot, reader: &str, uid: &str, now: DateTime<Utc>) -> Decision {
    swipe_with(snap, &Presence::new(), reader, uid, None, now)
}

pub fn swipe_pin(
    snap: &Snapshot,
    reader: &str,
    uid: &str,
    pin: &str,
    now: DateTime<Utc>,
) -> Decision {
    swipe_with(snap, &Presence::new(), reader, uid, Some(pin), now)
}

/// Builds `PolicyData` one line at a time.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub data: PolicyData,
}

/// The building every policy test starts from (see the constants above); no people yet.
/// Every door `name` has readers `name-in` and `name-out`.
pub fn building() -> Fixture {
    let mut f = Fixture {
        data: PolicyData::default(),
    }
    .site(HQ, "HQ", "Europe/Berlin")
    .site(PLANT_SITE, "Plant", "America/New_York")
    .zone(CAMPUS_ZONE, HQ, None, "Campus", AntiPassback::Off)
    .zone(
        OFFICE_ZONE,
        HQ,
        Some(CAMPUS_ZONE),
        "Office",
        AntiPassback::Off,
    )
    .zone(LAB_ZONE, HQ, Some(OFFICE_ZONE), "Lab", AntiPassback::Hard)
    .zone(
        GARAGE_ZONE,
        HQ,
        Some(CAMPUS_ZONE),
        "Garage",
        AntiPassback::Soft,
    )
    .zone(
        PLANT_ZONE,
        PLANT_SITE,
        None,
        "Plant floor",
        AntiPassback::Off,
    )
    .door(MAIN_DOOR, CAMPUS_ZONE, "main", DoorMode::Normal)
    .door(OFFICE_DOOR, OFFICE_ZONE, "office", DoorMode::Normal)
    .door(LAB_DOOR, LAB_ZONE, "lab", DoorMode::Normal)
    .door(SERVER_DOOR, LAB_ZONE, "server", DoorMode::CardAndPin)
    .door(GARAGE_DOOR, GARAGE_ZONE, "garage", DoorMode::Normal)
    .door(LOBBY_DOOR, CAMPUS_ZONE, "lobby", DoorMode::Normal)
    .door(VAULT_DOOR, OFFICE_ZONE, "vault", DoorMode::Locked)
    .door(CAFETERIA_DOOR, OFFICE_ZONE, "cafeteria", DoorMode::Unlocked)
    .door(PLANT_DOOR, PLANT_ZONE, "plant", DoorMode::Normal)
    .schedule(
        OFFICE_HOURS,
        HolidayRule::Closed,
        &[("0 8 * * Mon-Fri", 540)],
    )
    .schedule(ALWAYS, HolidayRule::Ignore, &[("0 0 * * *", 1440)])
    .schedule(
        LOBBY_HOURS,
        HolidayRule::Closed,
        &[("0 7 * * Mon-Fri", 720)],
    )
    .level(STAFF, &[(Target::Zone(OFFICE_ZONE), OFFICE_HOURS)])
    .level(
        LAB_24_7,
        &[
            (Target::Door(LAB_DOOR), ALWAYS),
            (Target::Door(SERVER_DOOR), ALWAYS),
        ],
    )
    .level(GARAGE, &[(Target::Zone(GARAGE_ZONE), ALWAYS)])
    .level(PLANT, &[(Target::Zone(PLANT_ZONE), OFFICE_HOURS)])
    .level(MAIN, &[(Target::Door(MAIN_DOOR), ALWAYS)]);
    f.data.levels.iter_mut().for_each(|l| {
        l.name = match l.id {
            STAFF => "Office staff",
            LAB_24_7 => "Lab 24/7",
            GARAGE => "Garage",
            PLANT => "Plant floor",
            _ => "Main entrance",
        }
        .into()
    });
    if let Some(d) = f.data.doors.iter_mut().find(|d| d.id == LOBBY_DOOR) {
        d.free_access_schedule_id = Some(LOBBY_HOURS);
    }
    f
}

impl Fixture {
    pub fn site(mut self, id: i64, name: &str, timezone: &str) -> Self {
        self.data.sites.push(Site {
            id,
            name: name.into(),
            timezone: timezone.into(),
            lockdown: false,
        });
        self
    }

    pub fn zone(
        mut self,
        id: i64,
        site_id: i64,
        parent_id: Option<i64>,
        name: &str,
        apb: AntiPassback,
    ) -> Self {
        self.data.zones.push(Zone {
            id,
            site_id,
            parent_id,
            name: name.into(),
            antipassback: apb,
            presence_reset: None,
        });
        self
    }

    /// A door with an entry reader `{name}-in` (id = door id × 10) and an exit reader
    /// `{name}-out` (door id × 10 + 1).
    pub fn door(mut self, id: i64, zone_id: i64, name: &str, mode: DoorMode) -> Self {
        self.data.doors.push(Door {
            id,
            zone_id,
            name: name.into(),
            unlock_ms: 5000,
            held_open_s: 30,
            mode,
            free_access_schedule_id: None,
            sensitivity: Sensitivity::Normal,
        });
        for (n, direction) in [(0, Direction::In), (1, Direction::Out)] {
            self.data.readers.push(Reader {
                id: id * 10 + n,
                reader_id: format!("{name}-{direction}"),
                door_id: id,
                direction,
            });
        }
        self
    }

    pub fn schedule(mut self, id: i64, holidays: HolidayRule, windows: &[(&str, u32)]) -> Self {
        self.data.schedules.push(Schedule {
            id,
            name: format!("schedule {id}"),
            holidays,
            windows: windows
                .iter()
                .map(|(cron, duration_min)| Window {
                    cron: (*cron).into(),
                    duration_min: *duration_min,
                })
                .collect(),
        });
        self
    }

    pub fn holiday(mut self, id: i64, site_id: Option<i64>, date: &str) -> Self {
        self.data.holidays.push(Holiday {
            id,
            site_id,
            date: date.parse::<NaiveDate>().unwrap(),
            name: format!("holiday {id}"),
        });
        self
    }

    pub fn level(mut self, id: i64, items: &[(Target, i64)]) -> Self {
        self.data.levels.push(AccessLevel {
            id,
            name: format!("level {id}"),
            items: items
                .iter()
                .map(|(target, schedule_id)| LevelItem {
                    target: *target,
                    schedule_id: *schedule_id,
                })
                .collect(),
        });
        self
    }

    /// An active person "Person {id}" with employee id "E{id}".
    pub fn person(mut self, id: i64) -> Self {
        self.data.people.push(Person {
            id,
            employee_id: format!("E{id}"),
            name: format!("Person {id}"),
            status: PersonStatus::Active,
            valid_from: None,
            valid_until: None,
        });
        self
    }

    /// An active card without PIN.
    pub fn card(mut self, id: i64, person_id: i64, uid: &str) -> Self {
        self.data.credentials.push(Credential {
            id,
            person_id,
            key: CredentialKey::Card { uid: uid.into() },
            pin_hash: None,
            status: CredentialStatus::Active,
            valid_until: None,
        });
        self
    }

    pub fn grant(
        mut self,
        id: i64,
        person_id: i64,
        level_id: i64,
        valid_until: Option<DateTime<Utc>>,
    ) -> Self {
        self.data.entitlements.push(Entitlement {
            id,
            person_id,
            level_id,
            valid_until,
        });
        self
    }

    /// Any other tweak, straight on the data.
    pub fn with(mut self, f: impl FnOnce(&mut PolicyData)) -> Self {
        f(&mut self.data);
        self
    }

    pub fn compile(&self, now: DateTime<Utc>) -> Snapshot {
        Snapshot::compile(&self.data, now).unwrap()
    }
}
