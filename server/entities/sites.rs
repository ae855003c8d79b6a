//! Sites: a building or campus with its own timezone and its lockdown switch.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower};
use crate::clock::utc;
use crate::store::DbConnection;
use crate::store::rows::SiteRow;
use crate::store::schema::sites;

pub struct Sites;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SiteView {
    pub id: i64,
    pub name: String,
    /// IANA timezone in which schedules of this site's doors are evaluated.
    pub timezone: String,
    /// While true every door of the site denies with `lockdown`.
    pub lockdown: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteInput {
    pub name: String,
    pub timezone: String,
    #[serde(default)]
    pub lockdown: bool,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteFilter {
    /// Case-insensitive part of the name.
    pub q: Option<String>,
}

impl From<SiteRow> for SiteView {
    fn from(r: SiteRow) -> Self {
        SiteView {
            id: r.id,
            name: r.name,
            timezone: r.timezone,
            lockdown: r.lockdown,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

impl Entity for Sites {
    const NAME: &'static str = "site";
    const COLLECTION: &'static str = "sites";
    type View = SiteView;
    type Input = SiteInput;
    type Filter = SiteFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &SiteFilter,
        page: Page,
    ) -> QueryResult<(Vec<SiteView>, i64)> {
        let query = || {
            let mut q = sites::table.into_boxed();
            if let Some(text) = &filter.q {
                q = q.filter(lower(sites::name).like(like_pattern(text)).escape('\\'));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(sites::name)
            .offset(page.offset)
            .limit(page.limit)
            .select(SiteRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(SiteView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<SiteView>> {
        sites::table
            .find(id)
            .select(SiteRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(SiteView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: SiteInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("name", &input.name, 200);
        if input.timezone.parse::<chrono_tz::Tz>().is_err() {
            errors.add(
                "timezone",
                format!(
                    "'{}' is not an IANA timezone such as Europe/Berlin or America/New_York",
                    input.timezone
                ),
            );
        }
        let name = input.name.trim().to_owned();
        let taken: Option<i64> = sites::table
            .filter(sites::name.eq(&name))
            .select(sites::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add("name", format!("a site named '{name}' already exists"));
        }
        errors.into_result()?;
        let now = ctx.stamp();
        match id {
            None => Ok(diesel::insert_into(sites::table)
                .values((
                    sites::name.eq(&name),
                    sites::timezone.eq(&input.timezone),
                    sites::lockdown.eq(input.lockdown),
                    sites::created_at.eq(now),
                    sites::updated_at.eq(now),
                ))
                .returning(sites::id)
                .get_result(conn)?),
            Some(id) => {
                diesel::update(sites::table.find(id))
                    .set((
                        sites::name.eq(&name),
                        sites::timezone.eq(&input.timezone),
                        sites::lockdown.eq(input.lockdown),
                        sites::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok(id)
            }
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(sites::table.find(id)).execute(conn)
    }

    fn label(view: &SiteView) -> String {
        format!("site '{}'", view.name)
    }
}

/// Finds a site id by its name (the site file's natural key).
pub fn id_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<i64>> {
    sites::table
        .filter(sites::name.eq(name))
        .select(sites::id)
        .first(conn)
        .optional()
}
