//! The holidays page: holidays searched and paged, each with where it applies; add one,
//! delete one.

use actix_web::{HttpResponse, web};
use askama::Template;

use serde::Deserialize;

use super::NoFields;
use crate::app::state::AppState;
use crate::console::kit::listing::{ListQuery, Paged};
use crate::console::kit::notice::{Notice, see_other_saying};
use crate::console::kit::session::{Posted, Viewer};
use crate::console::kit::{Chrome, PageError, Problems, Section};
use crate::entities::holidays::{HolidayFilter, HolidayInput, HolidayView, Holidays};
use crate::entities::sites::Sites;
use crate::entities::{self, Entity, FieldErrors};
use crate::web::error::ApiError;

#[derive(Template)]
#[template(path = "policy/holidays.html")]
struct HolidaysPage {
    chrome: Chrome,
    list: Paged,
    /// The page of holidays shown, each with where it applies.
    holidays: Vec<(HolidayView, String)>,
    sites: Vec<(i64, String)>,
    typed: HolidayForm,
    problems: Problems,
}

/// The add-a-holiday form, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct HolidayForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    date: String,
    /// A site's id, or empty for every site.
    #[serde(default)]
    site_id: String,
}

/// Holidays per page of their list.
const HOLIDAYS_PAGE: i64 = 50;

/// GET /holidays
pub async fn holidays(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    render_holidays(
        &state,
        &viewer,
        query.into_inner(),
        HolidayForm::default(),
        Problems::default(),
    )
    .await
}

/// The holidays in date order, searched by name, with the add-a-holiday form.
async fn render_holidays(
    state: &AppState,
    viewer: &Viewer,
    query: ListQuery,
    typed: HolidayForm,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let filter = HolidayFilter {
        q: query.search(),
        ..HolidayFilter::default()
    };
    let paging = query.rows(HOLIDAYS_PAGE);
    let (holidays, total) = state
        .read(move |conn| Ok(Holidays::list(conn, &filter, paging)?))
        .await?;
    let snapshot = state.live.snapshot();
    let holidays = holidays
        .into_iter()
        .map(|h| {
            let site = h
                .site_id
                .and_then(|id| snapshot.site(id))
                .map_or_else(|| "every site".to_owned(), |s| s.name.clone());
            (h, site)
        })
        .collect();
    let sites = snapshot
        .sites()
        .iter()
        .map(|s| (s.id, s.name.clone()))
        .collect();
    let status = Problems::status(problems.is_empty());
    crate::console::kit::page_with_status(
        status,
        &HolidaysPage {
            chrome: Chrome::new(state, viewer, Section::Policy),
            list: Paged::new("/holidays", &query, total, HOLIDAYS_PAGE),
            holidays,
            sites,
            typed,
            problems,
        },
    )
}

/// POST /holidays: adds a holiday (a day the doors treat as closed for schedules that
/// close on holidays), at one site or every site.
pub async fn add_holiday(
    state: web::Data<AppState>,
    posted: Posted<HolidayForm>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let form = posted.form.clone();
    let mut problems = FieldErrors::default();
    let date = chrono::NaiveDate::parse_from_str(form.date.trim(), "%Y-%m-%d").ok();
    if date.is_none() {
        problems.add("date", "enter a date like 2026-12-26");
    }
    let site_id = match form.site_id.trim() {
        "" => None,
        id => id.parse::<i64>().ok().or_else(|| {
            problems.add("site_id", "choose a site from the list");
            None
        }),
    };
    let result = match date {
        Some(date) if problems.is_empty() => {
            let input = HolidayInput {
                site_id,
                name: form.name.trim().to_owned(),
                date,
            };
            posted
                .change_policy(&state, move |conn, ctx| {
                    let holiday = entities::create::<Holidays>(conn, input, ctx)?;
                    holiday_words(&holiday.name, holiday.date, holiday.site_id, conn)
                })
                .await
        }
        _ => Err(ApiError::Invalid(problems)),
    };
    match result {
        Ok(words) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            "/holidays",
            Notice::done(format!("{words} added")),
        )),
        Err(ApiError::Invalid(fields)) => {
            render_holidays(
                &state,
                &posted.viewer,
                ListQuery::default(),
                posted.form,
                Problems(fields),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /holidays/{id}/delete
pub async fn delete_holiday(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let words = posted
        .change_policy(&state, move |conn, ctx| {
            let holiday = Holidays::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no holiday {id}.")))?;
            entities::delete::<Holidays>(conn, id, ctx)?;
            holiday_words(&holiday.name, holiday.date, holiday.site_id, conn)
        })
        .await?;
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        "/holidays",
        Notice::done(format!("{words} deleted")),
    ))
}

/// "Christmas Day (2026-12-25, at every site)", for what a change says it did.
fn holiday_words(
    name: &str,
    date: chrono::NaiveDate,
    site_id: Option<i64>,
    conn: &mut crate::store::DbConnection,
) -> Result<String, ApiError> {
    let at = match site_id {
        None => "at every site".to_owned(),
        Some(site) => match Sites::get(conn, site)? {
            Some(site) => format!("at {}", site.name),
            None => format!("at site {site}"),
        },
    };
    Ok(format!("{name} ({date}, {at})"))
}
