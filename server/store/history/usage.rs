//! Who holds what, and how they used it: the aggregates the entitlement review
//! (`risk::entitlements`) judges from. `holdings` reads the people, their cards and
//! entitlements and the levels' doors in one consistent read; `usage` reads granted swipes
//! per person and door and per card, counted in SQL, for a chunk of people at a time (a
//! range of person ids, on the (person_id, at) index), each chunk its own short read.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::{HistoryError, ReadScope, short_read, sql_limit};
use crate::clock::stored;
use crate::store::DbConnection;
use crate::store::event_log::EventKind;
use crate::store::schema::{
    access_level_items, access_levels, credentials, doors, entitlements, events, people, zones,
};

/// A person as the review needs them: who, their peer group, whether active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPerson {
    pub id: i64,
    pub employee_id: String,
    pub name: String,
    pub department: String,
    pub title: String,
    pub status: String,
}

/// An entitlement: a person holding a level since `granted_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldEntitlement {
    pub id: i64,
    pub person_id: i64,
    pub level_id: i64,
    pub granted_at: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// A card or Wiegand credential (never its PIN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCredential {
    pub id: i64,
    pub person_id: i64,
    /// The card's UID, or `FACILITY:NUMBER`.
    pub label: String,
    pub status: String,
    pub valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One item of a level: a door or a zone (with every zone inside it), on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLevelItem {
    pub level_id: i64,
    pub door_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub schedule_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDoor {
    pub id: i64,
    pub zone_id: i64,
    pub name: String,
    /// `low`, `normal`, `high` or `critical`.
    pub sensitivity: String,
}

/// Everything the review reads of the policy, as one consistent read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    pub people: Vec<HeldPerson>,
    pub entitlements: Vec<HeldEntitlement>,
    pub credentials: Vec<HeldCredential>,
    /// (id, name)
    pub levels: Vec<(i64, String)>,
    pub level_items: Vec<HeldLevelItem>,
    pub doors: Vec<HeldDoor>,
    /// (id, parent id)
    pub zones: Vec<(i64, Option<i64>)>,
}

/// Reads who holds what. People and their grants are what every role sees on the people
/// pages, so every role that reads events reads these.
pub fn holdings(conn: &mut DbConnection, scope: ReadScope) -> Result<Holdings, HistoryError> {
    scope.require_events()?;
    short_read(conn, |conn| {
        type PersonCols = (i64, String, String, String, String, String);
        let people_rows: Vec<PersonCols> = people::table
            .select((
                people::id,
                people::employee_id,
                people::name,
                people::department,
                people::title,
                people::status,
            ))
            .order(people::id)
            .load(conn)?;
        type EntitlementCols = (i64, i64, i64, NaiveDateTime, Option<NaiveDateTime>);
        let entitlement_rows: Vec<EntitlementCols> = entitlements::table
            .select((
                entitlements::id,
                entitlements::person_id,
                entitlements::level_id,
                entitlements::granted_at,
                entitlements::valid_until,
            ))
            .order(entitlements::id)
            .load(conn)?;
        type CredentialCols = (
            i64,
            i64,
            Option<String>,
            Option<i32>,
            Option<i64>,
            String,
            Option<NaiveDateTime>,
            NaiveDateTime,
        );
        let credential_rows: Vec<CredentialCols> = credentials::table
            .select((
                credentials::id,
                credentials::person_id,
                credentials::card_uid,
                credentials::facility,
                credentials::card_number,
                credentials::status,
                credentials::valid_until,
                credentials::created_at,
            ))
            .order(credentials::id)
            .load(conn)?;
        let levels = access_levels::table
            .select((access_levels::id, access_levels::name))
            .order(access_levels::id)
            .load(conn)?;
        let item_rows: Vec<(i64, Option<i64>, Option<i64>, i64)> = access_level_items::table
            .select((
                access_level_items::level_id,
                access_level_items::door_id,
                access_level_items::zone_id,
                access_level_items::schedule_id,
            ))
            .order(access_level_items::id)
            .load(conn)?;
        let door_rows: Vec<(i64, i64, String, String)> = doors::table
            .select((doors::id, doors::zone_id, doors::name, doors::sensitivity))
            .order(doors::id)
            .load(conn)?;
        let zones = zones::table
            .select((zones::id, zones::parent_id))
            .order(zones::id)
            .load(conn)?;
        Ok(Holdings {
            people: people_rows
                .into_iter()
                .map(
                    |(id, employee_id, name, department, title, status)| HeldPerson {
                        id,
                        employee_id,
                        name,
                        department,
                        title,
                        status,
                    },
                )
                .collect(),
            entitlements: entitlement_rows
                .into_iter()
                .map(
                    |(id, person_id, level_id, granted_at, valid_until)| HeldEntitlement {
                        id,
                        person_id,
                        level_id,
                        granted_at: granted_at.and_utc(),
                        valid_until: valid_until.map(|t| t.and_utc()),
                    },
                )
                .collect(),
            credentials: credential_rows
                .into_iter()
                .map(
                    |(id, person_id, uid, facility, number, status, valid_until, created_at)| {
                        HeldCredential {
                            id,
                            person_id,
                            label: uid.unwrap_or_else(|| {
                                format!("{}:{}", facility.unwrap_or(0), number.unwrap_or(0))
                            }),
                            status,
                            valid_until: valid_until.map(|t| t.and_utc()),
                            created_at: created_at.and_utc(),
                        }
                    },
                )
                .collect(),
            levels,
            level_items: item_rows
                .into_iter()
                .map(|(level_id, door_id, zone_id, schedule_id)| HeldLevelItem {
                    level_id,
                    door_id,
                    zone_id,
                    schedule_id,
                })
                .collect(),
            doors: door_rows
                .into_iter()
                .map(|(id, zone_id, name, sensitivity)| HeldDoor {
                    id,
                    zone_id,
                    name,
                    sensitivity,
                })
                .collect(),
            zones,
        })
    })
}

/// A person's granted swipes at one door: in all, since the review's `since`, and the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorUse {
    pub person_id: i64,
    pub door_id: i64,
    pub uses: i64,
    pub uses_since: i64,
    pub last: DateTime<Utc>,
}

/// A credential's granted swipes, the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialUse {
    pub person_id: i64,
    pub credential_id: i64,
    pub uses: i64,
    pub uses_since: i64,
    pub last: DateTime<Utc>,
}

/// One chunk of usage: the rows of a range of people, and the person id the next chunk
/// starts after (None: the read is done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageChunk {
    pub doors: Vec<DoorUse>,
    pub credentials: Vec<CredentialUse>,
    pub next: Option<i64>,
}

/// The usage of the next `people` people (by id) after `after`: granted swipes, imported
/// or live, per person and door and per credential, counted in all and from `since`.
pub fn usage(
    conn: &mut DbConnection,
    scope: ReadScope,
    since: DateTime<Utc>,
    after: Option<i64>,
    people: usize,
) -> Result<UsageChunk, HistoryError> {
    scope.require_events()?;
    let people = super::chunk_size(people);
    short_read(conn, |conn| {
        let ids: Vec<i64> = people::table
            .filter(people::id.gt(after.unwrap_or(i64::MIN)))
            .select(people::id)
            .order(people::id)
            .limit(sql_limit(people))
            .load(conn)?;
        let (Some(&low), Some(&high)) = (ids.first(), ids.last()) else {
            return Ok(UsageChunk::default());
        };
        // Granted swipes of the range's people, on the (person_id, at) index: kind and
        // result are written as expressions so that SQLite does not take the (kind, at)
        // or (result, at) index instead (see `tested_on_rows`); PostgreSQL narrows by
        // the person range first either way.
        let granted = events::person_id
            .ge(low)
            .and(events::person_id.le(high))
            .and(events::kind.concat("").eq(EventKind::Swipe.as_str()))
            .and(events::result.concat("").eq("granted"));
        let from = stored(since);
        type Grouped = (Option<i64>, Option<i64>, i64, Option<NaiveDateTime>);
        let door_rows = |conn: &mut DbConnection, recent: bool| -> QueryResult<Vec<Grouped>> {
            let q = events::table
                .filter(granted)
                .filter(events::door_id.is_not_null())
                .group_by((events::person_id, events::door_id))
                .select((
                    events::person_id,
                    events::door_id,
                    diesel::dsl::count(events::id),
                    diesel::dsl::max(events::at),
                ));
            if recent {
                q.filter(events::at.ge(from)).load(conn)
            } else {
                q.load(conn)
            }
        };
        let credential_rows =
            |conn: &mut DbConnection, recent: bool| -> QueryResult<Vec<Grouped>> {
                let q = events::table
                    .filter(granted)
                    .filter(events::credential_id.is_not_null())
                    .group_by((events::person_id, events::credential_id))
                    .select((
                        events::person_id,
                        events::credential_id,
                        diesel::dsl::count(events::id),
                        diesel::dsl::max(events::at),
                    ));
                if recent {
                    q.filter(events::at.ge(from)).load(conn)
                } else {
                    q.load(conn)
                }
            };
        let merge =
            |all: Vec<Grouped>, recent: Vec<Grouped>| -> Vec<(i64, i64, i64, i64, DateTime<Utc>)> {
                let recent: std::collections::HashMap<(i64, i64), i64> = recent
                    .into_iter()
                    .filter_map(|(p, k, n, _)| Some(((p?, k?), n)))
                    .collect();
                let mut rows: Vec<_> = all
                    .into_iter()
                    .filter_map(|(p, k, n, last)| {
                        let (p, k, last) = (p?, k?, last?);
                        Some((
                            p,
                            k,
                            n,
                            recent.get(&(p, k)).copied().unwrap_or(0),
                            last.and_utc(),
                        ))
                    })
                    .collect();
                rows.sort_unstable_by_key(|r| (r.0, r.1));
                rows
            };
        let doors = merge(door_rows(conn, false)?, door_rows(conn, true)?)
            .into_iter()
            .map(|(person_id, door_id, uses, uses_since, last)| DoorUse {
                person_id,
                door_id,
                uses,
                uses_since,
                last,
            })
            .collect();
        let credentials = merge(credential_rows(conn, false)?, credential_rows(conn, true)?)
            .into_iter()
            .map(
                |(person_id, credential_id, uses, uses_since, last)| CredentialUse {
                    person_id,
                    credential_id,
                    uses,
                    uses_since,
                    last,
                },
            )
            .collect();
        Ok(UsageChunk {
            doors,
            credentials,
            next: (ids.len() >= people).then_some(high),
        })
    })
}
