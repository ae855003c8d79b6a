//! Zones: areas of a site that nest (building › floor › server room); doors belong to one,
//! and anti-passback is set per zone.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower, require_ref,
};
use crate::clock::utc;
use crate::policy::AntiPassback;
use crate::store::DbConnection;
use crate::store::rows::ZoneRow;
use crate::store::schema::{sites, zones};

pub struct Zones;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ZoneView {
    pub id: i64,
    pub site_id: i64,
    /// The enclosing zone; none for a top-level zone.
    pub parent_id: Option<i64>,
    pub name: String,
    /// `off`, `soft` (grant and flag) or `hard` (deny).
    pub antipassback: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneInput {
    pub site_id: i64,
    #[serde(default)]
    pub parent_id: Option<i64>,
    pub name: String,
    #[serde(default = "default_antipassback")]
    pub antipassback: String,
}

fn default_antipassback() -> String {
    AntiPassback::Off.as_str().to_owned()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ZoneFilter {
    pub site_id: Option<i64>,
    pub parent_id: Option<i64>,
    /// Case-insensitive part of the name.
    pub q: Option<String>,
}

impl From<ZoneRow> for ZoneView {
    fn from(r: ZoneRow) -> Self {
        ZoneView {
            id: r.id,
            site_id: r.site_id,
            parent_id: r.parent_id,
            name: r.name,
            antipassback: r.antipassback,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

impl Entity for Zones {
    const NAME: &'static str = "zone";
    const COLLECTION: &'static str = "zones";
    type View = ZoneView;
    type Input = ZoneInput;
    type Filter = ZoneFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &ZoneFilter,
        page: Page,
    ) -> QueryResult<(Vec<ZoneView>, i64)> {
        let query = || {
            let mut q = zones::table.into_boxed();
            if let Some(site) = filter.site_id {
                q = q.filter(zones::site_id.eq(site));
            }
            if let Some(parent) = filter.parent_id {
                q = q.filter(zones::parent_id.eq(parent));
            }
            if let Some(text) = &filter.q {
                q = q.filter(lower(zones::name).like(like_pattern(text)).escape('\\'));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order((zones::site_id, zones::name))
            .offset(page.offset)
            .limit(page.limit)
            .select(ZoneRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(ZoneView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<ZoneView>> {
        zones::table
            .find(id)
            .select(ZoneRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(ZoneView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: ZoneInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("name", &input.name, 200);
        let antipassback = errors.canonical::<AntiPassback>("antipassback", &input.antipassback);
        let site_exists =
            diesel::select(exists(sites::table.find(input.site_id))).get_result(conn)?;
        require_ref(&mut errors, "site_id", "site", input.site_id, site_exists);
        if let Some(parent) = input.parent_id {
            match zones::table
                .find(parent)
                .select(zones::site_id)
                .first::<i64>(conn)
                .optional()?
            {
                None => errors.add("parent_id", format!("zone {parent} does not exist")),
                Some(site) if site != input.site_id => {
                    errors.add("parent_id", "the parent zone belongs to another site")
                }
                Some(_) => {
                    if let Some(id) = id
                        && is_within(conn, parent, id)?
                    {
                        errors.add(
                            "parent_id",
                            "a zone cannot be placed inside itself or one of its own zones",
                        );
                    }
                }
            }
        }
        if let Some(id) = id {
            let current_site: Option<i64> = zones::table
                .find(id)
                .select(zones::site_id)
                .first(conn)
                .optional()?;
            let has_children: bool =
                diesel::select(exists(zones::table.filter(zones::parent_id.eq(id))))
                    .get_result(conn)?;
            if current_site.is_some_and(|s| s != input.site_id) && has_children {
                errors.add(
                    "site_id",
                    "this zone has zones inside it; move or delete them before moving it to another site",
                );
            }
        }
        let name = input.name.trim().to_owned();
        let taken: Option<i64> = zones::table
            .filter(zones::site_id.eq(input.site_id))
            .filter(zones::name.eq(&name))
            .select(zones::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add(
                "name",
                format!("this site already has a zone named '{name}'"),
            );
        }
        errors.into_result()?;
        let now = ctx.stamp();
        let values = (
            zones::site_id.eq(input.site_id),
            zones::parent_id.eq(input.parent_id),
            zones::name.eq(&name),
            zones::antipassback.eq(&antipassback),
            zones::updated_at.eq(now),
        );
        match id {
            None => Ok(diesel::insert_into(zones::table)
                .values((values, zones::created_at.eq(now)))
                .returning(zones::id)
                .get_result(conn)?),
            Some(id) => {
                diesel::update(zones::table.find(id))
                    .set(values)
                    .execute(conn)?;
                Ok(id)
            }
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(zones::table.find(id)).execute(conn)
    }

    fn label(view: &ZoneView) -> String {
        format!("zone '{}'", view.name)
    }
}

/// True when `zone` is `ancestor` or lies somewhere inside it.
fn is_within(conn: &mut DbConnection, zone: i64, ancestor: i64) -> QueryResult<bool> {
    let mut current = Some(zone);
    // Bounded walk: a corrupted cycle in the table must not hang the request.
    for _ in 0..1000 {
        match current {
            None => return Ok(false),
            Some(z) if z == ancestor => return Ok(true),
            Some(z) => {
                current = zones::table
                    .find(z)
                    .select(zones::parent_id)
                    .first::<Option<i64>>(conn)
                    .optional()?
                    .flatten();
            }
        }
    }
    Ok(true)
}

/// Finds a zone id by site and name (the site file's natural key).
pub fn id_by_name(conn: &mut DbConnection, site_id: i64, name: &str) -> QueryResult<Option<i64>> {
    zones::table
        .filter(zones::site_id.eq(site_id))
        .filter(zones::name.eq(name))
        .select(zones::id)
        .first(conn)
        .optional()
}
