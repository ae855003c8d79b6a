//! Writes a parsed site file section by section, in the order entries refer to each other
//! (sites, schedules, holidays, zones, doors, readers, levels, people, cards, entitlements),
//! each entry through `entities::upsert` unless it equals what is stored.

use diesel::prelude::*;

use super::file::*;
use super::importer::{Importer, parents_first, refuse_repeats};
use super::stored::Stored;
use crate::entities::{
    self, FieldErrors,
    credentials::{CredentialInput, Credentials},
    doors::{DoorInput, Doors},
    entitlements::{EntitlementInput, Entitlements},
    holidays::{HolidayInput, Holidays},
    levels::{LevelInput, LevelItem, Levels},
    people::{People, PersonInput},
    readers::{ReaderInput, Readers},
    schedules::{ScheduleInput, Schedules},
    sites::{SiteInput, Sites},
    zones::{ZoneInput, Zones},
};
use crate::store::schema;

/// What identifies a credential entry: its card (UID as stored) or Wiegand pair.
fn credential_key(c: &CredentialEntry) -> Option<crate::policy::CredentialKey> {
    match c.kind.as_str() {
        "card" => c
            .card_uid
            .as_deref()
            .and_then(|uid| crate::policy::CredentialKey::card(uid).ok()),
        "wiegand" => Some(crate::policy::CredentialKey::Wiegand {
            facility: u32::try_from(c.facility?).ok()?,
            number: u32::try_from(c.card_number?).ok()?,
        }),
        _ => None,
    }
}

fn credential_place(i: usize, c: &CredentialEntry) -> String {
    let label = c
        .card_uid
        .clone()
        .unwrap_or_else(|| format!("{}:{}", c.facility.unwrap_or(0), c.card_number.unwrap_or(0)));
    format!("credentials[{i}] ({label})")
}

fn person_place(i: usize, p: &PersonEntry) -> String {
    format!("people[{i}] ({})", p.employee_id)
}

/// Every key that appears twice in one section of the file, each with both places.
fn refuse_repeated_keys(imp: &mut Importer<'_, '_>, file: &SiteFile) {
    let trimmed = |text: &str| Some(text.trim().to_owned());
    refuse_repeats(
        imp,
        &file.sites,
        "the same site name",
        |s| trimmed(&s.name),
        |i, s| format!("sites[{i}] ({})", s.name),
    );
    refuse_repeats(
        imp,
        &file.schedules,
        "the same schedule name",
        |s| trimmed(&s.name),
        |i, s| format!("schedules[{i}] ({})", s.name),
    );
    refuse_repeats(
        imp,
        &file.holidays,
        "the same site and date",
        |h| Some((h.site.as_deref().map(str::trim).map(str::to_owned), h.date)),
        |i, h| format!("holidays[{i}] ({} {})", h.name, h.date),
    );
    refuse_repeats(
        imp,
        &file.zones,
        "the same zone (site and name)",
        |z| Some((z.site.trim().to_owned(), z.name.trim().to_owned())),
        |i, z| format!("zones[{i}] ({})", z.name),
    );
    refuse_repeats(
        imp,
        &file.doors,
        "the same door name",
        |d| trimmed(&d.name),
        |i, d| format!("doors[{i}] ({})", d.name),
    );
    refuse_repeats(
        imp,
        &file.readers,
        "the same reader id",
        |r| trimmed(&r.reader_id),
        |i, r| format!("readers[{i}] ({})", r.reader_id),
    );
    refuse_repeats(
        imp,
        &file.levels,
        "the same access level name",
        |l| trimmed(&l.name),
        |i, l| format!("levels[{i}] ({})", l.name),
    );
    refuse_repeats(
        imp,
        &file.people,
        "the same employee id",
        |p| trimmed(&p.employee_id),
        person_place,
    );
    refuse_repeats(
        imp,
        &file.credentials,
        "the same card",
        credential_key,
        credential_place,
    );
    refuse_repeats(
        imp,
        &file.entitlements,
        "the same person and access level",
        |e| Some((e.employee_id.trim().to_owned(), e.level.trim().to_owned())),
        |i, e| format!("entitlements[{i}] ({} → {})", e.employee_id, e.level),
    );
}

pub(super) fn apply(imp: &mut Importer<'_, '_>, file: &SiteFile) {
    refuse_repeated_keys(imp, file);
    sites(imp, &file.sites);
    schedules(imp, &file.schedules);
    holidays(imp, &file.holidays);
    zones(imp, &file.zones);
    doors(imp, &file.doors);
    readers(imp, &file.readers);
    levels(imp, &file.levels);
    // The big sections are compared with what is stored, read once here: after the levels
    // (entitlements name them) and inside the import's transaction.
    let mut stored = match Stored::load(imp.conn) {
        Ok(stored) => stored,
        Err(e) => {
            imp.fail("database", e.to_string());
            return;
        }
    };
    import_people(imp, &mut stored, &file.people, &person_place);
    credentials(imp, &mut stored, &file.credentials);
    entitlements(imp, &mut stored, &file.entitlements);
}

fn site(imp: &mut Importer<'_, '_>, place: &str, name: &str) -> Option<i64> {
    let found = entities::sites::id_by_name(imp.conn, name);
    imp.need(place, "site", name, found)
}

fn schedule(imp: &mut Importer<'_, '_>, place: &str, name: &str) -> Option<i64> {
    let found = entities::schedules::id_by_name(imp.conn, name);
    imp.need(place, "schedule", name, found)
}

fn door(imp: &mut Importer<'_, '_>, place: &str, name: &str) -> Option<i64> {
    let found = entities::doors::id_by_name(imp.conn, name);
    imp.need(place, "door", name, found)
}

fn sites(imp: &mut Importer<'_, '_>, entries: &[SiteEntry]) {
    for (i, s) in entries.iter().enumerate() {
        let place = format!("sites[{i}] ({})", s.name);
        let existing = entities::sites::id_by_name(imp.conn, s.name.trim())
            .ok()
            .flatten();
        let input = SiteInput {
            name: s.name.clone(),
            timezone: s.timezone.clone(),
            lockdown: s.lockdown,
        };
        imp.put::<Sites>("sites", &place, existing, input);
    }
}

fn schedules(imp: &mut Importer<'_, '_>, entries: &[ScheduleEntry]) {
    for (i, s) in entries.iter().enumerate() {
        let place = format!("schedules[{i}] ({})", s.name);
        let existing = entities::schedules::id_by_name(imp.conn, s.name.trim())
            .ok()
            .flatten();
        let input = ScheduleInput {
            name: s.name.clone(),
            description: s.description.clone(),
            holidays: s.holidays.clone(),
            windows: s.windows.clone(),
        };
        imp.put::<Schedules>("schedules", &place, existing, input);
    }
}

fn holidays(imp: &mut Importer<'_, '_>, entries: &[HolidayEntry]) {
    for (i, h) in entries.iter().enumerate() {
        let place = format!("holidays[{i}] ({} {})", h.name, h.date);
        let site_id = match &h.site {
            Some(name) => match site(imp, &place, name) {
                Some(id) => Some(id),
                None => continue,
            },
            None => None,
        };
        let existing = entities::holidays::id_by_date(imp.conn, site_id, h.date)
            .ok()
            .flatten();
        let input = HolidayInput {
            site_id,
            name: h.name.clone(),
            date: h.date,
        };
        imp.put::<Holidays>("holidays", &place, existing, input);
    }
}

/// Zones may name parents that come later in the file: they are written parents first.
fn zones(imp: &mut Importer<'_, '_>, entries: &[ZoneEntry]) {
    parents_first(
        imp,
        entries,
        |z| (z.site.clone(), z.name.trim().to_owned()),
        |z| {
            z.parent
                .as_ref()
                .map(|p| (z.site.clone(), p.trim().to_owned()))
        },
        |i, z| format!("zones[{i}] ({})", z.name),
        "its parent zones form a cycle",
        |imp, place, z| {
            let Some(site_id) = site(imp, place, &z.site) else {
                return;
            };
            let parent_id = match &z.parent {
                Some(parent) => {
                    let found = entities::zones::id_by_name(imp.conn, site_id, parent);
                    match imp.need(place, "parent zone", parent, found) {
                        Some(id) => Some(id),
                        None => return,
                    }
                }
                None => None,
            };
            let existing = entities::zones::id_by_name(imp.conn, site_id, z.name.trim())
                .ok()
                .flatten();
            let input = ZoneInput {
                site_id,
                parent_id,
                name: z.name.clone(),
                antipassback: z.antipassback.clone(),
                presence_reset: z.presence_reset.clone(),
            };
            imp.put::<Zones>("zones", place, existing, input);
        },
    );
}

fn doors(imp: &mut Importer<'_, '_>, entries: &[DoorEntry]) {
    for (i, d) in entries.iter().enumerate() {
        let place = format!("doors[{i}] ({})", d.name);
        let Some(site_id) = site(imp, &place, &d.site) else {
            continue;
        };
        let found = entities::zones::id_by_name(imp.conn, site_id, &d.zone);
        let Some(zone_id) = imp.need(&place, "zone", &d.zone, found) else {
            continue;
        };
        let free_access_schedule_id = match &d.free_access_schedule {
            Some(name) => match schedule(imp, &place, name) {
                Some(id) => Some(id),
                None => continue,
            },
            None => None,
        };
        let existing = entities::doors::id_by_name(imp.conn, d.name.trim())
            .ok()
            .flatten();
        let input = DoorInput {
            zone_id,
            name: d.name.clone(),
            unlock_ms: d.unlock_ms,
            held_open_s: d.held_open_s,
            mode: d.mode.clone(),
            free_access_schedule_id,
            sensitivity: d.sensitivity.clone(),
        };
        imp.put::<Doors>("doors", &place, existing, input);
    }
}

fn readers(imp: &mut Importer<'_, '_>, entries: &[ReaderEntry]) {
    for (i, r) in entries.iter().enumerate() {
        let place = format!("readers[{i}] ({})", r.reader_id);
        let Some(door_id) = door(imp, &place, &r.door) else {
            continue;
        };
        let existing = schema::readers::table
            .filter(schema::readers::reader_id.eq(r.reader_id.trim()))
            .select(schema::readers::id)
            .first::<i64>(imp.conn)
            .optional()
            .ok()
            .flatten();
        let input = ReaderInput {
            reader_id: r.reader_id.clone(),
            door_id,
            protocol: r.protocol.clone(),
            direction: r.direction.clone(),
            secret: r.secret.clone(),
            require_signed_events: r.require_signed_events,
            legacy: r.legacy,
            modbus_host: r.modbus_host.clone(),
            modbus_port: r.modbus_port,
            modbus_unit: r.modbus_unit,
        };
        imp.put::<Readers>("readers", &place, existing, input);
    }
}

fn levels(imp: &mut Importer<'_, '_>, entries: &[LevelEntry]) {
    for (i, l) in entries.iter().enumerate() {
        let place = format!("levels[{i}] ({})", l.name);
        let mut items = Vec::new();
        let mut ok = true;
        for (j, item) in l.items.iter().enumerate() {
            let item_place = format!("{place} items[{j}]");
            let schedule_id = schedule(imp, &item_place, &item.schedule);
            let target = match (&item.door, &item.zone) {
                (Some(d), None) => door(imp, &item_place, d).map(|id| (Some(id), None)),
                (None, Some(z)) => {
                    let Some(site_name) = &item.site else {
                        imp.fail(
                            &item_place,
                            "a zone item needs `site` too (zone names are unique per site)",
                        );
                        ok = false;
                        continue;
                    };
                    site(imp, &item_place, site_name).and_then(|site_id| {
                        let found = entities::zones::id_by_name(imp.conn, site_id, z);
                        imp.need(&item_place, "zone", z, found)
                            .map(|id| (None, Some(id)))
                    })
                }
                _ => {
                    imp.fail(&item_place, "name exactly one of `door` and `zone`");
                    None
                }
            };
            match (target, schedule_id) {
                (Some((door_id, zone_id)), Some(schedule_id)) => items.push(LevelItem {
                    door_id,
                    zone_id,
                    schedule_id,
                }),
                _ => ok = false,
            }
        }
        if !ok {
            continue;
        }
        let existing = entities::levels::id_by_name(imp.conn, l.name.trim())
            .ok()
            .flatten();
        let input = LevelInput {
            name: l.name.clone(),
            description: l.description.clone(),
            items,
        };
        imp.put::<Levels>("levels", &place, existing, input);
    }
}

/// Looks a person up by employee id among those stored or written by this import.
fn person(
    imp: &mut Importer<'_, '_>,
    stored: &Stored,
    place: &str,
    employee_id: &str,
) -> Option<i64> {
    let found = Ok(stored.person_id(employee_id));
    imp.need(place, "person", employee_id, found)
}

/// People name their managers by employee id; managers are written before their reports.
/// A person equal to their stored row is counted and left alone.
pub(in crate::io) fn import_people(
    imp: &mut Importer<'_, '_>,
    stored: &mut Stored,
    people: &[PersonEntry],
    place: &dyn Fn(usize, &PersonEntry) -> String,
) {
    parents_first(
        imp,
        people,
        |p| p.employee_id.trim().to_owned(),
        |p| {
            p.manager
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        },
        place,
        "its managers form a cycle",
        |imp, place, p| {
            let manager_id = match p.manager.as_deref().map(str::trim) {
                Some(m) if !m.is_empty() => {
                    let found = Ok(stored.person_id(m));
                    match imp.need(place, "manager", m, found) {
                        Some(id) => Some(id),
                        None => return,
                    }
                }
                _ => None,
            };
            let employee_id = p.employee_id.trim();
            let existing = stored.person_id(employee_id);
            let input = PersonInput {
                employee_id: p.employee_id.clone(),
                name: p.name.clone(),
                department: p.department.clone(),
                title: p.title.clone(),
                manager_id,
                person_type: p.person_type.clone(),
                status: p.status.clone(),
                valid_from: p.valid_from,
                valid_until: p.valid_until,
                notes: p.notes.clone(),
            };
            let same = existing
                .and_then(|id| stored.person(id))
                .is_some_and(|row| entities::people::unchanged(row, &input));
            if same {
                imp.keep("people");
            } else if let Some(id) = imp.put::<People>("people", place, existing, input) {
                stored.person_written(employee_id, id);
            }
        },
    );
}

fn credentials(imp: &mut Importer<'_, '_>, stored: &mut Stored, entries: &[CredentialEntry]) {
    for (i, c) in entries.iter().enumerate() {
        let place = credential_place(i, c);
        let Some(person_id) = person(imp, stored, &place, &c.employee_id) else {
            continue;
        };
        if c.pin.is_some() && c.pin_hash.is_some() {
            imp.fail(&place, "give `pin` or `pin_hash`, not both");
            continue;
        }
        // A PIN or its hash goes through the same upsert as the rest of the card, which
        // tells a new PIN from the stored one (a PIN is in no view) and audits the change.
        let input = CredentialInput {
            person_id,
            kind: c.kind.clone(),
            card_uid: c.card_uid.clone(),
            facility: c.facility,
            card_number: c.card_number,
            pin: c.pin.clone(),
            pin_hash: c.pin_hash.clone(),
            status: c.status.clone(),
            valid_until: c.valid_until,
        };
        let key = entities::credentials::key_of(&input, &mut FieldErrors::default());
        let existing = key.as_ref().and_then(|key| stored.credential_id(key));
        let same = existing
            .and_then(|id| stored.credential(id))
            .is_some_and(|row| entities::credentials::unchanged(row, &input));
        if same {
            imp.keep("credentials");
        } else if let Some(id) = imp.put::<Credentials>("credentials", &place, existing, input)
            && let Some(key) = key
        {
            stored.credential_written(key, id);
        }
    }
}

fn entitlements(imp: &mut Importer<'_, '_>, stored: &mut Stored, entries: &[EntitlementEntry]) {
    for (i, e) in entries.iter().enumerate() {
        let place = format!("entitlements[{i}] ({} → {})", e.employee_id, e.level);
        let person_id = person(imp, stored, &place, &e.employee_id);
        let found = Ok(stored.level_id(&e.level));
        let level_id = imp.need(&place, "access level", &e.level, found);
        let (Some(person_id), Some(level_id)) = (person_id, level_id) else {
            continue;
        };
        let existing = stored.entitlement_id(person_id, level_id);
        let input = EntitlementInput {
            person_id,
            level_id,
            valid_until: e.valid_until,
            justification: e.justification.clone(),
            // Kept only when the entitlement is new: the grant's real time, from the
            // previous system, against which "unused for 90 days" is judged.
            granted_at: e.granted_at,
        };
        let same = existing
            .and_then(|id| stored.entitlement(id))
            .is_some_and(|row| entities::entitlements::unchanged(row, &input));
        if same {
            imp.keep("entitlements");
        } else if let Some(id) = imp.put::<Entitlements>("entitlements", &place, existing, input) {
            stored.entitlement_written(person_id, level_id, id);
        }
    }
}
