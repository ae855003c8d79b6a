//! The admin console: server-rendered askama pages (htmx for the interactive parts); each
//! page module owns its handlers and forms, `kit/` what they share, `policy/` the policy's.

pub mod admins;
pub mod audit;
pub mod cards;
pub mod charts;
pub mod dashboard;
pub mod doors;
pub mod events;
pub mod kit;
pub mod lockdown;
pub mod people;
pub mod policy;
pub mod settings;
pub mod setup;
pub mod sign_in;
pub mod site_activity;
pub mod why;

use chrono_tz::Tz;

use crate::app::state::AppState;
use crate::store::history::{self, ReadScope, SwipesOf};
use kit::{PageError, site_clock};

/// Weeks of history the activity charts cover.
pub const ACTIVITY_WEEKS: i64 = 4;

/// A weekday × hour heatmap of swipes over the last [`ACTIVITY_WEEKS`] weeks, as SVG.
pub async fn activity_heatmap(
    state: &AppState,
    scope: ReadScope,
    swipes: SwipesOf,
    title: &str,
    tz: Tz,
) -> Result<String, PageError> {
    let until = state.clock.now();
    let from = until - chrono::TimeDelta::weeks(ACTIVITY_WEEKS);
    let grid = state
        .read(move |conn| {
            Ok(history::swipes_by_hour(
                conn, scope, swipes, from, until, tz,
            )?)
        })
        .await?;
    Ok(charts::heatmap(
        &grid,
        &format!("{title}, last {ACTIVITY_WEEKS} weeks"),
    ))
}

/// When a person badges, as [`activity_heatmap`] draws it, each swipe in the hour of the
/// clock where it happened: where sites keep different time, the person's swipes at each
/// timezone's doors are counted on that clock (those at no door, or a door since deleted,
/// on the page's clock `page`) and added up.
pub async fn person_heatmap(
    state: &AppState,
    scope: ReadScope,
    person: i64,
    title: &str,
    page: Tz,
) -> Result<String, PageError> {
    let until = state.clock.now();
    let from = until - chrono::TimeDelta::weeks(ACTIVITY_WEEKS);
    let clocks = site_clock::doors_by_clock(&state.live.snapshot());
    let elsewhere: Vec<i64> = clocks
        .iter()
        .filter(|(tz, _)| *tz != page)
        .flat_map(|(_, doors)| doors.iter().copied())
        .collect();
    let grid = state
        .read(move |conn| {
            let mut grid = history::swipes_by_hour(
                conn,
                scope,
                SwipesOf::PersonAt {
                    person,
                    doors: elsewhere,
                    except: true,
                },
                from,
                until,
                page,
            )?;
            for (tz, doors) in clocks.into_iter().filter(|(tz, _)| *tz != page) {
                let swipes = SwipesOf::PersonAt {
                    person,
                    doors,
                    except: false,
                };
                grid.add(&history::swipes_by_hour(
                    conn, scope, swipes, from, until, tz,
                )?);
            }
            Ok(grid)
        })
        .await?;
    Ok(charts::heatmap(
        &grid,
        &format!("{title}, last {ACTIVITY_WEEKS} weeks"),
    ))
}

/// Granted and denied swipes per day over the last [`ACTIVITY_WEEKS`] weeks, as SVG: one
/// door's, one site's doors', or the whole appliance's.
pub async fn daily_traffic(
    state: &AppState,
    scope: ReadScope,
    swipes: SwipesOf,
    title: &str,
    tz: Tz,
) -> Result<String, PageError> {
    let until = state.clock.now();
    let from = until - chrono::TimeDelta::weeks(ACTIVITY_WEEKS);
    let points = state
        .read(move |conn| {
            Ok(history::swipe_traffic(
                conn,
                scope,
                swipes,
                from,
                until,
                history::Bucket::Day,
                tz,
            )?)
        })
        .await?;
    Ok(charts::traffic(&points, tz, title))
}
