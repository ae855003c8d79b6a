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
        // into the first on import, so the export would not import back to this state. An
        // all-sites holiday is every site's, so it and a site's own clash too. (The unique
        // index holidays_one_per_site_and_date is the last word on the same key.)
        if let Some(message) = clash(conn, id, input.site_id, input.date)? {
            errors.add("date", message);
        }
        errors.into_result()?;
        let values = (
            holidays::site_id.eq(input.site_id),
            holidays::name.eq(input.name.trim()),
            holidays::date.eq(input.date),
        );
        let written = match id {
            None => diesel::insert_into(holidays::table)
                .values(values)
                .returning(holidays::id)
                .get_result(conn),
            Some(id) => diesel::update(holidays::table.find(id))
                .set(values)
                .execute(conn)
                .map(|_| id),
        };
        match written {
            // Another admin's holiday on the same day was committed between the check and
            // this write.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Err(ChangeError::invalid(
                "date",
                format!("another holiday on {} was just added there", input.date),
            )),
            other => Ok(other?),
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(holidays::table.find(id)).execute(conn)
    }

    fn label(view: &HolidayView) -> String {
        format!("holiday '{}' on {}", view.name, view.date)
    }
}

/// Why a holiday at `site_id` (None: every site) on `date` cannot be stored beside those
/// already there (except `id`, the one being changed), naming the one it clashes with.
fn clash(
    conn: &mut DbConnection,
    id: Option<i64>,
    site_id: Option<i64>,
    date: NaiveDate,
) -> QueryResult<Option<String>> {
    let mut q = holidays::table
        .filter(holidays::date.eq(date))
        .select((holidays::name, holidays::site_id))
        .order(holidays::id)
        .into_boxed();
    if let Some(id) = id {
        q = q.filter(holidays::id.ne(id));
    }
    if let Some(site) = site_id {
        q = q.filter(holidays::site_id.eq(site).or(holidays::site_id.is_null()));
    }
    let Some((name, other_site)) = q.first::<(String, Option<i64>)>(conn).optional()? else {
        return Ok(None);
    };
    let site_name: Option<String> = match other_site {
        Some(site) => sites::table
            .find(site)
            .select(sites::name)
            .first(conn)
            .optional()?,
        None => None,
    };
    Ok(Some({
        match (site_id, other_site, site_name) {
            (Some(_), Some(_), Some(site)) => {
                format!("{site} already has a holiday on {date}: {name}")
            }
            (Some(_), None, _) => format!(
                "there is already a holiday at every site on {date} ({name}), which covers \
                 this site too"
            ),
            (None, None, _) => {
                format!("there is already a holiday at every site on {date}: {name}")
            }
            (None, _, site) => format!(
                "{} already has its own holiday on {date} ({name}): delete it first to \
                 make the day a holiday at every site",
                site.unwrap_or_else(|| "a site".to_owned())
            ),
            (Some(_), Some(other), None) => {
                format!("site {other} already has a holiday on {date}: {name}")
            }
        }
    }))
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
