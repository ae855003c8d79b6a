//! `gatehouse export`: the whole site written as a site file that `import` reads back to
//! the same state (reader secrets and PIN hashes included, so it is kept like the box).

use std::collections::HashMap;

use diesel::prelude::*;

use super::file::*;
use crate::entities::{self, schedules::Schedules};
use crate::store::DbConnection;
use crate::store::rows::*;
use crate::store::schema;

/// Writes the whole site as a site file that `import` reads back to the same state.
pub fn export(conn: &mut DbConnection) -> anyhow::Result<String> {
    use schema::*;
    let site_rows: Vec<SiteRow> = sites::table
        .order(sites::id)
        .select(SiteRow::as_select())
        .load(conn)?;
    let site_name: HashMap<i64, String> =
        site_rows.iter().map(|s| (s.id, s.name.clone())).collect();
    let zone_rows: Vec<ZoneRow> = zones::table
        .order(zones::id)
        .select(ZoneRow::as_select())
        .load(conn)?;
    let zone_by_id: HashMap<i64, &ZoneRow> = zone_rows.iter().map(|z| (z.id, z)).collect();
    let schedule_views = entities::list::<Schedules>(
        conn,
        &Default::default(),
        entities::Page {
            offset: 0,
            limit: 1000,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut schedule_list = schedule_views.items;
    let mut offset = 1000;
    while (schedule_list.len() as i64) < schedule_views.total {
        let more = entities::list::<Schedules>(
            conn,
            &Default::default(),
            entities::Page {
                offset,
                limit: 1000,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        schedule_list.extend(more.items);
        offset += 1000;
    }
    let schedule_name: HashMap<i64, String> = schedule_list
        .iter()
        .map(|s| (s.id, s.name.clone()))
        .collect();
    let door_rows: Vec<DoorRow> = doors::table
        .order(doors::id)
        .select(DoorRow::as_select())
        .load(conn)?;
    let door_name: HashMap<i64, String> =
        door_rows.iter().map(|d| (d.id, d.name.clone())).collect();
    let people_rows: Vec<PersonRow> = people::table
        .order(people::id)
        .select(PersonRow::as_select())
        .load(conn)?;
    let employee_id: HashMap<i64, String> = people_rows
        .iter()
        .map(|p| (p.id, p.employee_id.clone()))
        .collect();
    let level_rows: Vec<LevelRow> = access_levels::table
        .order(access_levels::id)
        .select(LevelRow::as_select())
        .load(conn)?;
    let level_name: HashMap<i64, String> =
        level_rows.iter().map(|l| (l.id, l.name.clone())).collect();
    let items: Vec<LevelItemRow> = access_level_items::table
        .order((access_level_items::level_id, access_level_items::id))
        .select(LevelItemRow::as_select())
        .load(conn)?;
    let name_of = |map: &HashMap<i64, String>, id: i64| map.get(&id).cloned().unwrap_or_default();
    let file = SiteFile {
        version: FORMAT_VERSION,
        sites: site_rows
            .iter()
            .map(|s| SiteEntry {
                name: s.name.clone(),
                timezone: s.timezone.clone(),
                lockdown: s.lockdown,
            })
            .collect(),
        schedules: schedule_list
            .into_iter()
            .map(|s| ScheduleEntry {
                name: s.name,
                description: s.description,
                holidays: s.holidays,
                windows: s.windows,
            })
            .collect(),
        holidays: holidays::table
            .order((holidays::date, holidays::id))
            .select(HolidayRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|h| HolidayEntry {
                site: h.site_id.map(|s| name_of(&site_name, s)),
                name: h.name,
                date: h.date,
            })
            .collect(),
        zones: zone_rows
            .iter()
            .map(|z| ZoneEntry {
                site: name_of(&site_name, z.site_id),
                name: z.name.clone(),
                parent: z
                    .parent_id
                    .and_then(|p| zone_by_id.get(&p))
                    .map(|p| p.name.clone()),
                antipassback: z.antipassback.clone(),
                presence_reset: z.presence_reset.clone(),
            })
            .collect(),
        doors: door_rows
            .iter()
            .map(|d| {
                let zone = zone_by_id.get(&d.zone_id);
                DoorEntry {
                    name: d.name.clone(),
                    site: zone
                        .map(|z| name_of(&site_name, z.site_id))
                        .unwrap_or_default(),
                    zone: zone.map(|z| z.name.clone()).unwrap_or_default(),
                    unlock_ms: d.unlock_ms,
                    held_open_s: d.held_open_s,
                    mode: d.mode.clone(),
                    free_access_schedule: d
                        .free_access_schedule_id
                        .map(|s| name_of(&schedule_name, s)),
                    sensitivity: d.sensitivity.clone(),
                }
            })
            .collect(),
        readers: readers::table
            .order(readers::id)
            .select(ReaderRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| ReaderEntry {
                reader_id: r.reader_id,
                door: name_of(&door_name, r.door_id),
                protocol: r.protocol,
                direction: r.direction,
                secret: Some(r.secret),
                require_signed_events: r.require_signed_events,
                legacy: r.legacy,
                modbus_host: r.modbus_host,
                modbus_port: r.modbus_port,
                modbus_unit: r.modbus_unit,
            })
            .collect(),
        levels: level_rows
            .iter()
            .map(|l| LevelEntry {
                name: l.name.clone(),
                description: l.description.clone(),
                items: items
                    .iter()
                    .filter(|i| i.level_id == l.id)
                    .map(|i| {
                        let zone = i.zone_id.and_then(|z| zone_by_id.get(&z));
                        LevelItemEntry {
                            door: i.door_id.map(|d| name_of(&door_name, d)),
                            site: zone.map(|z| name_of(&site_name, z.site_id)),
                            zone: zone.map(|z| z.name.clone()),
                            schedule: name_of(&schedule_name, i.schedule_id),
                        }
                    })
                    .collect(),
            })
            .collect(),
        people: people_rows
            .iter()
            .map(|p| PersonEntry {
                employee_id: p.employee_id.clone(),
                name: p.name.clone(),
                department: p.department.clone(),
                title: p.title.clone(),
                manager: p.manager_id.map(|m| name_of(&employee_id, m)),
                person_type: p.person_type.clone(),
                status: p.status.clone(),
                valid_from: p.valid_from.map(|t| t.and_utc()),
                valid_until: p.valid_until.map(|t| t.and_utc()),
                notes: p.notes.clone(),
            })
            .collect(),
        credentials: credentials::table
            .order(credentials::id)
            .select(CredentialRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|c| CredentialEntry {
                employee_id: name_of(&employee_id, c.person_id),
                kind: c.kind,
                card_uid: c.card_uid,
                facility: c.facility,
                card_number: c.card_number,
                pin: None,
                pin_hash: c.pin_hash,
                status: c.status,
                valid_until: c.valid_until.map(|t| t.and_utc()),
            })
            .collect(),
        entitlements: entitlements::table
            .order(entitlements::id)
            .select(EntitlementRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|e| EntitlementEntry {
                employee_id: name_of(&employee_id, e.person_id),
                level: name_of(&level_name, e.level_id),
                valid_until: e.valid_until.map(|t| t.and_utc()),
                justification: e.justification,
                granted_by: Some(e.granted_by),
                granted_at: Some(e.granted_at.and_utc()),
            })
            .collect(),
    };
    let body = toml::to_string(&file)?;
    Ok(format!(
        "# Gatehouse site file (format version {FORMAT_VERSION}), written by `gatehouse export`.\n\
         # It holds reader secrets and PIN hashes: keep it as safe as the appliance itself.\n\n{body}"
    ))
}
