//! The pages that shape the policy, one module per thing they manage: zones (a tree with
//! their doors), schedules (a week view; `schedules/windows.rs`), holidays, access levels.

pub mod holidays;
pub mod levels;
pub mod schedules;
pub mod zones;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;

use serde::Deserialize;

use crate::app::state::AppState;
use crate::console::kit::listing::{ListQuery, Paged};
use crate::console::kit::saved::{self, Saved, SavedQuery};
use crate::console::kit::session::{Posted, Viewer};
use crate::console::kit::{Chrome, PageError, Problems, Section, page, see_other};
use crate::entities::doors::{DoorFilter, Doors};
use crate::entities::entitlements::{EntitlementFilter, Entitlements};
use crate::entities::holidays::{HolidayFilter, HolidayInput, HolidayView, Holidays};
use crate::entities::levels::{LevelFilter, LevelInput, LevelItem, LevelView, Levels};
use crate::entities::schedules::{ScheduleFilter, ScheduleInput, ScheduleView, Schedules};
use crate::entities::zones::{ZoneFilter, ZoneInput, ZoneView, Zones};
use crate::entities::{self, ChangeError, Entity, FieldErrors, Page};
use crate::policy::{Snapshot, Zone};
use crate::web::error::ApiError;

const EVERYTHING: Page = Page {
    offset: 0,
    limit: 1000,
};

/// Names a list: "Main Entrance", "Main Entrance and Lobby", "A, B and C".
fn and_list(items: &[(i64, String)]) -> String {
    match items {
        [] => String::new(),
        [one] => one.1.clone(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.1
        ),
    }
}

/// One kind of thing that keeps something from being deleted: what they are, which
/// (id and name), and what to do about them.
struct Keeping<'a> {
    what: &'a str,
    items: &'a [(i64, String)],
    remedy: &'a str,
}

/// Why something could not be deleted, naming what keeps it and what to do about each.
/// The entity layer decided; this only says it in the building's terms, or repeats the
/// entity's words when the console finds nothing.
fn refusal(name: &str, entity_says: &str, reasons: &[Keeping<'_>]) -> String {
    let named: Vec<String> = reasons
        .iter()
        .filter(|k| !k.items.is_empty())
        .map(|k| format!("{}: {}; {}.", k.what, and_list(k.items), k.remedy))
        .collect();
    if named.is_empty() {
        return format!("{name} was not deleted: {entity_says}.");
    }
    format!("{name} was not deleted. {}", named.join(" "))
}

#[derive(Deserialize)]
pub struct NoFields {}
