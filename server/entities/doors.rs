//! Doors: what a person is let through. Each belongs to a zone and carries its unlock time,
//! held-open threshold, mode (normal, card+PIN, locked, unlocked) and sensitivity.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower, require_ref,
};
use crate::clock::utc;
use crate::policy::{DoorMode, Sensitivity};
use crate::store::DbConnection;
use crate::store::rows::DoorRow;
use crate::store::schema::{doors, schedules, zones};

pub struct Doors;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DoorView {
    pub id: i64,
    pub zone_id: i64,
    /// Unique across the appliance, e.g. "HQ Main Entrance".
    pub name: String,
    /// How long a grant unlocks the door.
    pub unlock_ms: i32,
    /// Open longer than this raises a held-open alarm.
    pub held_open_s: i32,
    /// `normal`, `card_and_pin`, `locked` or `unlocked`.
    pub mode: String,
    /// During this schedule the door is free access (unlocked).
    pub free_access_schedule_id: Option<i64>,
    /// `low`, `normal`, `high` or `critical`.
    pub sensitivity: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DoorInput {
    pub zone_id: i64,
    pub name: String,
    #[serde(default = "default_unlock_ms")]
    pub unlock_ms: i32,
    #[serde(default = "default_held_open_s")]
    pub held_open_s: i32,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub free_access_schedule_id: Option<i64>,
    #[serde(default = "default_sensitivity")]
    pub sensitivity: String,
}

pub fn default_unlock_ms() -> i32 {
    5000
}
pub fn default_held_open_s() -> i32 {
    30
}
pub fn default_mode() -> String {
    DoorMode::Normal.as_str().to_owned()
}
pub fn default_sensitivity() -> String {
    Sensitivity::Normal.as_str().to_owned()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DoorFilter {
    pub zone_id: Option<i64>,
    /// `normal`, `card_and_pin`, `locked` or `unlocked`.
    pub mode: Option<String>,
    /// Case-insensitive part of the name.
    pub q: Option<String>,
}

impl From<DoorRow> for DoorView {
    fn from(r: DoorRow) -> Self {
        DoorView {
            id: r.id,
            zone_id: r.zone_id,
            name: r.name,
            unlock_ms: r.unlock_ms,
            held_open_s: r.held_open_s,
            mode: r.mode,
            free_access_schedule_id: r.free_access_schedule_id,
            sensitivity: r.sensitivity,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

impl Entity for Doors {
    const NAME: &'static str = "door";
    const COLLECTION: &'static str = "doors";
    type View = DoorView;
    type Input = DoorInput;
    type Filter = DoorFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &DoorFilter,
        page: Page,
    ) -> QueryResult<(Vec<DoorView>, i64)> {
        let query = || {
            let mut q = doors::table.into_boxed();
            if let Some(zone) = filter.zone_id {
                q = q.filter(doors::zone_id.eq(zone));
            }
            if let Some(mode) = &filter.mode {
                q = q.filter(doors::mode.eq(mode.clone()));
            }
            if let Some(text) = &filter.q {
                q = q.filter(lower(doors::name).like(like_pattern(text)).escape('\\'));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(doors::name)
            .offset(page.offset)
            .limit(page.limit)
            .select(DoorRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(DoorView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<DoorView>> {
        doors::table
            .find(id)
            .select(DoorRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(DoorView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: DoorInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("name", &input.name, 200);
        let mode = errors.canonical::<DoorMode>("mode", &input.mode);
        let sensitivity = errors.canonical::<Sensitivity>("sensitivity", &input.sensitivity);
        if !(100..=600_000).contains(&input.unlock_ms) {
            errors.add("unlock_ms", "must be between 100 and 600000 (10 minutes)");
        }
        if !(1..=86_400).contains(&input.held_open_s) {
            errors.add("held_open_s", "must be between 1 and 86400 (a day)");
        }
        let zone_exists =
            diesel::select(exists(zones::table.find(input.zone_id))).get_result(conn)?;
        require_ref(&mut errors, "zone_id", "zone", input.zone_id, zone_exists);
        if let Some(schedule) = input.free_access_schedule_id {
            let found = diesel::select(exists(schedules::table.find(schedule))).get_result(conn)?;
            require_ref(
                &mut errors,
                "free_access_schedule_id",
                "schedule",
                schedule,
                found,
            );
        }
        let name = input.name.trim().to_owned();
        let taken: Option<i64> = doors::table
            .filter(doors::name.eq(&name))
            .select(doors::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add("name", format!("a door named '{name}' already exists"));
        }
        errors.into_result()?;
        let now = ctx.stamp();
        let values = (
            doors::zone_id.eq(input.zone_id),
            doors::name.eq(&name),
            doors::unlock_ms.eq(input.unlock_ms),
            doors::held_open_s.eq(input.held_open_s),
            doors::mode.eq(&mode),
            doors::free_access_schedule_id.eq(input.free_access_schedule_id),
            doors::sensitivity.eq(&sensitivity),
            doors::updated_at.eq(now),
        );
        match id {
            None => Ok(diesel::insert_into(doors::table)
                .values((values, doors::created_at.eq(now)))
                .returning(doors::id)
                .get_result(conn)?),
            Some(id) => {
                diesel::update(doors::table.find(id))
                    .set(values)
                    .execute(conn)?;
                Ok(id)
            }
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(doors::table.find(id)).execute(conn)
    }

    fn label(view: &DoorView) -> String {
        format!("door '{}'", view.name)
    }
}

/// Finds a door id by its name (the site file's natural key).
pub fn id_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<i64>> {
    doors::table
        .filter(doors::name.eq(name))
        .select(doors::id)
        .first(conn)
        .optional()
}

/// Records an admin's momentary unlock of `door` (as the live policy has it) in the audit
/// log: for `seconds`, until `until`, and whether it overrode the door's `locked` mode.
/// The unlock itself is the hub's (`Hub::unlock_for`), which records it as an event.
pub fn record_unlock(
    conn: &mut DbConnection,
    provenance: &crate::identity::provenance::Provenance,
    door: &crate::policy::Door,
    seconds: i64,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let overriding = door.mode == DoorMode::Locked;
    crate::store::audit::append(
        conn,
        &crate::store::audit::AuditEntry {
            provenance,
            action: "unlock",
            entity: "door",
            entity_id: Some(door.id.to_string()),
            summary: format!(
                "unlock door '{}' for {seconds} s{}",
                door.name,
                if overriding {
                    ", overriding its locked mode"
                } else {
                    ""
                }
            ),
            before: None,
            after: Some(serde_json::json!({
                "until": until,
                "seconds": seconds,
                "overrides_locked": overriding,
            })),
        },
        now,
    )?;
    Ok(())
}
