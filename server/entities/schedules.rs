//! Schedules: named sets of time windows (a cron expression for each window's start plus a
//! duration), evaluated in the site's timezone; holidays close them unless told otherwise.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower};
use crate::clock::utc;
use crate::policy::HolidayRule;
use crate::store::DbConnection;
use crate::store::rows::{ScheduleRow, WindowRow};
use crate::store::schema::{schedule_windows, schedules};

pub struct Schedules;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WindowSpec {
    /// When the window starts, as cron: `0 8 * * Mon-Fri` (minute hour day month weekday).
    pub cron: String,
    /// How long it stays open, in minutes (wall-clock, so 22:00 + 600 ends at 08:00).
    pub duration_min: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ScheduleView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// `closed` (no access on holidays) or `ignore`.
    pub holidays: String,
    pub windows: Vec<WindowSpec>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_holidays")]
    pub holidays: String,
    pub windows: Vec<WindowSpec>,
}

fn default_holidays() -> String {
    HolidayRule::Closed.as_str().to_owned()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleFilter {
    /// Case-insensitive part of the name.
    pub q: Option<String>,
}

fn view(row: ScheduleRow, windows: Vec<WindowRow>) -> ScheduleView {
    ScheduleView {
        id: row.id,
        name: row.name,
        description: row.description,
        holidays: row.holidays,
        windows: windows
            .into_iter()
            .map(|w| WindowSpec {
                cron: w.cron,
                duration_min: w.duration_min,
            })
            .collect(),
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    }
}

fn with_windows(conn: &mut DbConnection, rows: Vec<ScheduleRow>) -> QueryResult<Vec<ScheduleView>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut windows: Vec<WindowRow> = schedule_windows::table
        .filter(schedule_windows::schedule_id.eq_any(&ids))
        .order((schedule_windows::schedule_id, schedule_windows::position))
        .select(WindowRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<WindowRow>, Vec<WindowRow>) =
                windows.drain(..).partition(|w| w.schedule_id == row.id);
            windows = rest;
            view(row, mine)
        })
        .collect())
}

/// Checks every window; errors are keyed `windows[i].cron` / `windows[i].duration_min`.
pub fn validate_windows(windows: &[WindowSpec], errors: &mut FieldErrors) {
    if windows.is_empty() {
        errors.add("windows", "a schedule needs at least one window");
    }
    if windows.len() > 100 {
        errors.add("windows", "a schedule has at most 100 windows");
    }
    for (i, w) in windows.iter().enumerate() {
        let duration = u32::try_from(w.duration_min).unwrap_or(0);
        if let Err(e) = crate::policy::parse_window(&w.cron, duration) {
            let field = if duration == 0 || w.duration_min > 10_080 {
                "duration_min"
            } else {
                "cron"
            };
            errors.add(format!("windows[{i}].{field}"), e.to_string());
        }
    }
}

impl Entity for Schedules {
    const NAME: &'static str = "schedule";
    const COLLECTION: &'static str = "schedules";
    type View = ScheduleView;
    type Input = ScheduleInput;
    type Filter = ScheduleFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &ScheduleFilter,
        page: Page,
    ) -> QueryResult<(Vec<ScheduleView>, i64)> {
        let query = || {
            let mut q = schedules::table.into_boxed();
            if let Some(text) = &filter.q {
                q = q.filter(lower(schedules::name).like(like_pattern(text)).escape('\\'));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(schedules::name)
            .offset(page.offset)
            .limit(page.limit)
            .select(ScheduleRow::as_select())
            .load(conn)?;
        Ok((with_windows(conn, rows)?, total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<ScheduleView>> {
        let row = schedules::table
            .find(id)
            .select(ScheduleRow::as_select())
            .first(conn)
            .optional()?;
        Ok(match row {
            Some(row) => with_windows(conn, vec![row])?.pop(),
            None => None,
        })
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: ScheduleInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("name", &input.name, 200);
        errors.optional_text("description", &input.description, 2000);
        let holidays = errors.canonical::<HolidayRule>("holidays", &input.holidays);
        validate_windows(&input.windows, &mut errors);
        let name = input.name.trim().to_owned();
        let taken: Option<i64> = schedules::table
            .filter(schedules::name.eq(&name))
            .select(schedules::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add("name", format!("a schedule named '{name}' already exists"));
        }
        errors.into_result()?;
        let now = ctx.stamp();
        let values = (
            schedules::name.eq(&name),
            schedules::description.eq(&input.description),
            schedules::holidays.eq(&holidays),
            schedules::updated_at.eq(now),
        );
        let id = match id {
            None => diesel::insert_into(schedules::table)
                .values((values, schedules::created_at.eq(now)))
                .returning(schedules::id)
                .get_result(conn)?,
            Some(id) => {
                diesel::update(schedules::table.find(id))
                    .set(values)
                    .execute(conn)?;
                diesel::delete(
                    schedule_windows::table.filter(schedule_windows::schedule_id.eq(id)),
                )
                .execute(conn)?;
                id
            }
        };
        for (position, w) in input.windows.iter().enumerate() {
            diesel::insert_into(schedule_windows::table)
                .values((
                    schedule_windows::schedule_id.eq(id),
                    schedule_windows::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
                    schedule_windows::cron.eq(w.cron.trim()),
                    schedule_windows::duration_min.eq(w.duration_min),
                ))
                .execute(conn)?;
        }
        Ok(id)
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(schedules::table.find(id)).execute(conn)
    }

    fn label(view: &ScheduleView) -> String {
        format!("schedule '{}'", view.name)
    }
}

/// Finds a schedule id by its name (the site file's natural key).
pub fn id_by_name(conn: &mut DbConnection, name: &str) -> QueryResult<Option<i64>> {
    schedules::table
        .filter(schedules::name.eq(name))
        .select(schedules::id)
        .first(conn)
        .optional()
}
