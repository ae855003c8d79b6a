//! Access levels: named sets of (door or zone, schedule) that people are entitled to.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower};
use crate::clock::utc;
use crate::store::DbConnection;
use crate::store::rows::{LevelItemRow, LevelRow};
use crate::store::schema::{access_level_items, access_levels, doors, schedules, zones};

pub struct Levels;

/// One grant of a level: a door, or every door of a zone and its sub-zones, on a schedule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LevelItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<i64>,
    pub schedule_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LevelView {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub items: Vec<LevelItem>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub items: Vec<LevelItem>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LevelFilter {
    /// Case-insensitive part of the name.
    pub q: Option<String>,
    /// Levels that name this door directly.
    pub door_id: Option<i64>,
    /// Levels that name this zone directly.
    pub zone_id: Option<i64>,
}

fn with_items(conn: &mut DbConnection, rows: Vec<LevelRow>) -> QueryResult<Vec<LevelView>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let items: Vec<LevelItemRow> = access_level_items::table
        .filter(access_level_items::level_id.eq_any(&ids))
        .order((access_level_items::level_id, access_level_items::id))
        .select(LevelItemRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| LevelView {
            items: items
                .iter()
                .filter(|i| i.level_id == row.id)
                .map(|i| LevelItem {
                    door_id: i.door_id,
                    zone_id: i.zone_id,
                    schedule_id: i.schedule_id,
                })
                .collect(),
            id: row.id,
            name: row.name,
            description: row.description,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        })
        .collect())
}

impl Entity for Levels {
    const NAME: &'static str = "access_level";
    const COLLECTION: &'static str = "access-levels";
    type View = LevelView;
    type Input = LevelInput;
    type Filter = LevelFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &LevelFilter,
        page: Page,
    ) -> QueryResult<(Vec<LevelView>, i64)> {
        let query = || {
            let mut q = access_levels::table.into_boxed();
            if let Some(text) = &filter.q {
                q = q.filter(
                    lower(access_levels::name)
                        .like(like_pattern(text))
                        .escape('\\'),
                );
            }
            if let Some(door) = filter.door_id {
                q = q.filter(
                    access_levels::id.eq_any(
                        access_level_items::table
                            .filter(access_level_items::door_id.eq(door))
                            .select(access_level_items::level_id),
                    ),
                );
            }
            if let Some(zone) = filter.zone_id {
                q = q.filter(
                    access_levels::id.eq_any(
                        access_level_items::table
                            .filter(access_level_items::zone_id.eq(zone))
                            .select(access_level_items::level_id),
                    ),
                );
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(access_levels::name)
            .offset(page.offset)
            .limit(page.limit)
            .select(LevelRow::as_select())
            .load(conn)?;
        Ok((with_items(conn, rows)?, total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<LevelView>> {
        let row = access_levels::table
            .find(id)
            .select(LevelRow::as_select())
            .first(conn)
            .optional()?;
        Ok(match row {
            Some(row) => with_items(conn, vec![row])?.pop(),
            None => None,
        })
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: LevelInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("name", &input.name, 200);
        errors.optional_text("description", &input.description, 2000);
        if input.items.len() > 10_000 {
            errors.add("items", "a level has at most 10000 items");
        }
        for (i, item) in input.items.iter().enumerate() {
            let field = format!("items[{i}]");
            match (item.door_id, item.zone_id) {
                (Some(door), None) => {
                    if !diesel::select(exists(doors::table.find(door))).get_result::<bool>(conn)? {
                        errors.add(
                            format!("{field}.door_id"),
                            format!("door {door} does not exist"),
                        );
                    }
                }
                (None, Some(zone)) => {
                    if !diesel::select(exists(zones::table.find(zone))).get_result::<bool>(conn)? {
                        errors.add(
                            format!("{field}.zone_id"),
                            format!("zone {zone} does not exist"),
                        );
                    }
                }
                _ => errors.add(field.clone(), "name exactly one of door_id and zone_id"),
            }
            if !diesel::select(exists(schedules::table.find(item.schedule_id)))
                .get_result::<bool>(conn)?
            {
                errors.add(
                    format!("{field}.schedule_id"),
                    format!("schedule {} does not exist", item.schedule_id),
                );
            }
        }
        let name = input.name.trim().to_owned();
        let taken: Option<i64> = access_levels::table
            .filter(access_levels::name.eq(&name))
            .select(access_levels::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add(
                "name",
                format!("an access level named '{name}' already exists"),
            );
        }
        errors.into_result()?;
        let now = ctx.stamp();
        let values = (
            access_levels::name.eq(&name),
            access_levels::description.eq(&input.description),
            access_levels::updated_at.eq(now),
        );
        let id = match id {
            None => diesel::insert_into(access_levels::table)
                .values((values, access_levels::created_at.eq(now)))
                .returning(access_levels::id)
                .get_result(conn)?,
            Some(id) => {
                diesel::update(access_levels::table.find(id))
                    .set(values)
                    .execute(conn)?;
                diesel::delete(
                    access_level_items::table.filter(access_level_items::level_id.eq(id)),
                )
                .execute(conn)?;
                id
            }
        };
        for item in &input.items {
            diesel::insert_into(access_level_items::table)
                .values((
                    access_level_items::level_id.eq(id),
                    access_level_items::door_id.eq(item.door_id),
                    access_level_items::zone_id.eq(item.zone_id),
                    access_level_items::schedule_id.eq(item.schedule_id),
                ))
                .execute(conn)?;
        }
        Ok(id)
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(access_levels::table.find(id)).execute(conn)
    }

    fn label(view: &LevelView) -> String {
        format!("access level '{}'", view.name)
    }
}

/// Finds a level id by its name (the site file's natural key).
pub fn id_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<i64>> {
    access_levels::table
        .filter(access_levels::name.eq(name))
        .select(access_levels::id)
        .first(conn)
        .optional()
}
