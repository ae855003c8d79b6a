//! Loads the whole access policy from the database as plain `PolicyData`, the input of
//! `Snapshot::compile`. Rows that no longer parse are reported, never skipped silently.

use diesel::prelude::*;

use super::DbConnection;
use super::rows::*;
use super::schema::*;
use crate::policy::{self, CredentialKey, PolicyData};

/// A stored value that the policy cannot use (only possible if the database was edited by hand).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("{table} row {id}: {message}")]
    BadRow {
        table: &'static str,
        id: i64,
        message: String,
    },
}

fn bad(table: &'static str, id: i64, message: impl ToString) -> LoadError {
    LoadError::BadRow {
        table,
        id,
        message: message.to_string(),
    }
}

fn parse<T>(table: &'static str, id: i64, text: &str) -> Result<T, LoadError>
where
    T: std::str::FromStr,
    T::Err: ToString,
{
    text.parse::<T>().map_err(|e| bad(table, id, e))
}

fn non_negative(table: &'static str, id: i64, v: i32) -> Result<u32, LoadError> {
    u32::try_from(v).map_err(|_| bad(table, id, format!("negative value {v}")))
}

/// What the reader drivers need of a registered reader beyond the policy: how to reach
/// it and the secret that keys its messages. The decision engine never sees these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderWire {
    pub reader_id: String,
    pub secret: String,
    pub require_signed_events: bool,
    /// May send bare (v1) events; every other MQTT reader must seal them.
    pub legacy: bool,
    pub protocol: String,
    pub modbus_host: Option<String>,
    pub modbus_port: Option<i32>,
    pub modbus_unit: Option<i32>,
}

/// The policy as stored, and the version it was read at.
pub struct LoadedPolicy {
    pub data: PolicyData,
    pub readers: Vec<ReaderWire>,
    /// The audit log's newest sequence number: every admin change appends to the audit log
    /// in its own transaction, so this number moves exactly when the stored policy may have.
    pub version: i64,
}

/// The stored policy's version now (see `LoadedPolicy::version`); one indexed lookup.
pub fn policy_version(conn: &mut DbConnection) -> QueryResult<i64> {
    audit_log::table
        .select(diesel::dsl::max(audit_log::seq))
        .first::<Option<i64>>(conn)
        .map(|v| v.unwrap_or(0))
}

/// Reads every policy table in one consistent snapshot of the database.
pub fn load_policy(conn: &mut DbConnection) -> Result<LoadedPolicy, LoadError> {
    // The policy must be read as of one moment so that every reference resolves.
    super::read_consistently(conn, |conn| {
        let version = policy_version(conn)?;
        let sites = sites::table
            .select(SiteRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| policy::Site {
                id: r.id,
                name: r.name,
                timezone: r.timezone,
                lockdown: r.lockdown,
            })
            .collect();
        let zones = zones::table
            .select(ZoneRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| {
                Ok(policy::Zone {
                    antipassback: parse("zones", r.id, &r.antipassback)?,
                    presence_reset: r
                        .presence_reset
                        .as_deref()
                        .map(|t| policy::parse_reset_time(t).map_err(|e| bad("zones", r.id, e)))
                        .transpose()?,
                    id: r.id,
                    site_id: r.site_id,
                    parent_id: r.parent_id,
                    name: r.name,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        let doors = doors::table
            .select(DoorRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| {
                Ok(policy::Door {
                    unlock_ms: non_negative("doors", r.id, r.unlock_ms)?,
                    held_open_s: non_negative("doors", r.id, r.held_open_s)?,
                    mode: parse("doors", r.id, &r.mode)?,
                    sensitivity: parse("doors", r.id, &r.sensitivity)?,
                    id: r.id,
                    zone_id: r.zone_id,
                    name: r.name,
                    free_access_schedule_id: r.free_access_schedule_id,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        let reader_rows: Vec<ReaderRow> =
            readers::table.select(ReaderRow::as_select()).load(conn)?;
        let wires = reader_rows
            .iter()
            .map(|r| ReaderWire {
                reader_id: r.reader_id.clone(),
                secret: r.secret.clone(),
                require_signed_events: r.require_signed_events,
                legacy: r.legacy,
                protocol: r.protocol.clone(),
                modbus_host: r.modbus_host.clone(),
                modbus_port: r.modbus_port,
                modbus_unit: r.modbus_unit,
            })
            .collect();
        let readers = reader_rows
            .into_iter()
            .map(|r| {
                Ok(policy::Reader {
                    direction: parse("readers", r.id, &r.direction)?,
                    id: r.id,
                    reader_id: r.reader_id,
                    door_id: r.door_id,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        let people = people::table
            .select(PersonRow::as_select())
            .load(conn)?
            .into_iter()
            .map(person)
            .collect::<Result<_, LoadError>>()?;
        let credentials = credentials::table
            .select(CredentialRow::as_select())
            .load(conn)?
            .into_iter()
            .map(credential)
            .collect::<Result<_, LoadError>>()?;
        let windows: Vec<WindowRow> = schedule_windows::table
            .order((schedule_windows::schedule_id, schedule_windows::position))
            .select(WindowRow::as_select())
            .load(conn)?;
        let schedules = schedules::table
            .select(ScheduleRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| {
                Ok(policy::Schedule {
                    holidays: parse("schedules", r.id, &r.holidays)?,
                    windows: windows
                        .iter()
                        .filter(|w| w.schedule_id == r.id)
                        .map(|w| {
                            Ok(policy::Window {
                                cron: w.cron.clone(),
                                duration_min: non_negative(
                                    "schedule_windows",
                                    w.id,
                                    w.duration_min,
                                )?,
                            })
                        })
                        .collect::<Result<_, LoadError>>()?,
                    id: r.id,
                    name: r.name,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        let holidays = holidays::table
            .select(HolidayRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| policy::Holiday {
                id: r.id,
                site_id: r.site_id,
                date: r.date,
                name: r.name,
            })
            .collect();
        let items: Vec<LevelItemRow> = access_level_items::table
            .order((access_level_items::level_id, access_level_items::id))
            .select(LevelItemRow::as_select())
            .load(conn)?;
        let levels = access_levels::table
            .select(LevelRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| {
                Ok(policy::AccessLevel {
                    items: items
                        .iter()
                        .filter(|i| i.level_id == r.id)
                        .map(|i| {
                            let target = match (i.door_id, i.zone_id) {
                                (Some(door), None) => policy::Target::Door(door),
                                (None, Some(zone)) => policy::Target::Zone(zone),
                                _ => {
                                    return Err(bad(
                                        "access_level_items",
                                        i.id,
                                        "names neither or both of a door and a zone",
                                    ));
                                }
                            };
                            Ok(policy::LevelItem {
                                target,
                                schedule_id: i.schedule_id,
                            })
                        })
                        .collect::<Result<_, LoadError>>()?,
                    id: r.id,
                    name: r.name,
                })
            })
            .collect::<Result<_, LoadError>>()?;
        // Ordered by id: the first open entitlement grants, so the order must be stable.
        let entitlements = entitlements::table
            .order(entitlements::id)
            .select(EntitlementRow::as_select())
            .load(conn)?
            .into_iter()
            .map(entitlement)
            .collect();
        let data = PolicyData {
            sites,
            zones,
            doors,
            readers,
            people,
            credentials,
            schedules,
            holidays,
            levels,
            entitlements,
        };
        Ok(LoadedPolicy {
            data,
            readers: wires,
            version,
        })
    })
}

/// These people's own rows as stored now (each with their cards and entitlements, or as
/// gone), and the policy version they were read at, in one consistent read: what a change
/// to them lays over the live snapshot (`Snapshot::with_people`).
pub fn load_people(
    conn: &mut DbConnection,
    person_ids: &[i64],
) -> Result<(Vec<policy::PersonRecord>, i64), LoadError> {
    super::read_consistently(conn, |conn| {
        let version = policy_version(conn)?;
        let mut records = Vec::with_capacity(person_ids.len());
        for &person_id in person_ids {
            let found = people::table
                .find(person_id)
                .select(PersonRow::as_select())
                .first(conn)
                .optional()?;
            let credentials = credentials::table
                .filter(credentials::person_id.eq(person_id))
                .order(credentials::id)
                .select(CredentialRow::as_select())
                .load(conn)?
                .into_iter()
                .map(credential)
                .collect::<Result<_, LoadError>>()?;
            let entitlements = entitlements::table
                .filter(entitlements::person_id.eq(person_id))
                .order(entitlements::id)
                .select(EntitlementRow::as_select())
                .load(conn)?
                .into_iter()
                .map(entitlement)
                .collect();
            records.push(policy::PersonRecord {
                person_id,
                person: found.map(person).transpose()?,
                credentials,
                entitlements,
            });
        }
        Ok((records, version))
    })
}

fn person(r: PersonRow) -> Result<policy::Person, LoadError> {
    Ok(policy::Person {
        status: parse("people", r.id, &r.status)?,
        id: r.id,
        employee_id: r.employee_id,
        name: r.name,
        valid_from: r.valid_from.map(|t| t.and_utc()),
        valid_until: r.valid_until.map(|t| t.and_utc()),
    })
}

fn credential(r: CredentialRow) -> Result<policy::Credential, LoadError> {
    Ok(policy::Credential {
        key: credential_key(&r)?,
        status: parse("credentials", r.id, &r.status)?,
        id: r.id,
        person_id: r.person_id,
        pin_hash: r.pin_hash,
        valid_until: r.valid_until.map(|t| t.and_utc()),
    })
}

fn entitlement(r: EntitlementRow) -> policy::Entitlement {
    policy::Entitlement {
        id: r.id,
        person_id: r.person_id,
        level_id: r.level_id,
        valid_until: r.valid_until.map(|t| t.and_utc()),
    }
}

fn credential_key(r: &CredentialRow) -> Result<CredentialKey, LoadError> {
    match (r.kind.as_str(), &r.card_uid, r.facility, r.card_number) {
        ("card", Some(uid), _, _) => {
            CredentialKey::card(uid).map_err(|e| bad("credentials", r.id, e))
        }
        ("wiegand", _, Some(facility), Some(number)) => Ok(CredentialKey::Wiegand {
            facility: u32::try_from(facility).map_err(|e| bad("credentials", r.id, e))?,
            number: u32::try_from(number).map_err(|e| bad("credentials", r.id, e))?,
        }),
        (kind, _, _, _) => Err(bad(
            "credentials",
            r.id,
            format!("kind '{kind}' without the fields it needs"),
        )),
    }
}
