//! Holidays: dates on which schedules with `holidays = "closed"` stay shut, for one site or
//! (with no site) for every site.

use chrono::NaiveDate;
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower, require_ref,
};
use crate::store::DbConnection;
use crate::store::rows::HolidayRow;
use crate::store::schema::{holidays, sites};

pub struct Holidays;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct HolidayView {
    pub id: i64,
    /// None: a holiday at every site.
    pub site_id: Option<i64>,
    pub name: String,
    /// The local calendar day, in the site's timezone.
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayInput {
    #[serde(default)]
    pub site_id: Option<i64>,
    pub name: String,
    pub date: NaiveDate,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HolidayFilter {
    /// Only holidays whose name contains this text (any case).
    pub q: Option<String>,
    pub site_id: Option<i64>,
    /// Only holidays on or after this day.
    pub from: Option<NaiveDate>,
    /// Only holidays on or before this day.
    pub until: Option<NaiveDate>,
}

impl From<HolidayRow> for HolidayView {
    fn from(r: HolidayRow) -> Self {
        HolidayView {
            id: r.id,
            site_id: r.site_id,
            name: r.name,
            date: r.date,
        }
    }
}

impl Entity for Holidays {
    const NAME: &'static str = "holiday";
    const COLLECTION: &'static str = "holidays";
    type View = HolidayView;
    type Input = HolidayInput;
    type Filter = HolidayFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &HolidayFilter,
        page: Page,
    ) -> QueryResult<(Vec<HolidayView>, i64)> {
        let query = || {
            let mut q = holidays::table.into_boxed();
            if let Some(text) = &filter.q {
                q = q.filter(lower(holidays::name).like(like_pattern(text)).escape('\\'));
            }
            if let Some(site) = filter.site_id {
                q = q.filter(holidays::site_id.eq(site));
            }
            if let Some(from) = filter.from {
                q = q.filter(holidays::date.ge(from));
            }
            if let Some(until) = filter.until {
                q = q.filter(holidays::date.le(until));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order((holidays::date, holidays::id))
            .offset(page.offset)
            .limit(page.limit)
            .select(HolidayRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(HolidayView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<HolidayView>> {
        holidays::table
            .find(id)
            .select(HolidayRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(HolidayView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: HolidayInput,
        _ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("name", &input.name, 200);
        if let Some(site) = input.site_id {
            let found = diesel::select(exists(sites::table.find(site))).get_result(conn)?;
            require_ref(&mut errors, "site_id", "site", site, found);
        }
        // Site and date are a holiday's key in the site file: a second one would be merged
        // into the first on import, so the export would not import back to this state.
        if id_by_date(conn, input.site_id, input.date)?.is_some_and(|other| Some(other) != id) {
            errors.add(
                "date",
                match input.site_id {
                    Some(site) => format!("site {site} already has a holiday on {}", input.date),
                    None => format!("there is already an all-sites holiday on {}", input.date),
                },
            );
        }
        errors.into_result()?;
        let values = (
            holidays::site_id.eq(input.site_id),
            holidays::name.eq(input.name.trim()),
            holidays::date.eq(input.date),
        );
        match id {
            None => Ok(diesel::insert_into(holidays::table)
                .values(values)
                .returning(holidays::id)
                .get_result(conn)?),
            Some(id) => {
                diesel::update(holidays::table.find(id))
                    .set(values)
                    .execute(conn)?;
                Ok(id)
            }
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(holidays::table.find(id)).execute(conn)
    }

    fn label(view: &HolidayView) -> String {
        format!("holiday '{}' on {}", view.name, view.date)
    }
}

/// Finds a holiday by site and date (the site file's natural key).
pub fn id_by_date(
    conn: &mut DbConnection,
    site_id: Option<i64>,
    date: NaiveDate,
) -> QueryResult<Option<i64>> {
    let mut q = holidays::table
        .filter(holidays::date.eq(date))
        .select(holidays::id)
        .into_boxed();
    q = match site_id {
        Some(site) => q.filter(holidays::site_id.eq(site)),
        None => q.filter(holidays::site_id.is_null()),
    };
    q.first(conn).optional()
}
