//! The site's activity: when people badge across the whole site (weekday × hour) and the
//! daily granted and denied swipes, over the last weeks. Where sites keep different time,
//! each site has its own pair of charts on its own clock, counted over its doors.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono_tz::Tz;

use super::kit::session::Viewer;
use super::kit::{Chrome, PageError, Section, page, site_clock};
use super::{activity_heatmap, daily_traffic};
use crate::app::state::AppState;
use crate::store::history::SwipesOf;

/// One site's charts, where sites keep different time.
struct SiteCharts {
    name: String,
    tz: Tz,
    heatmap: String,
    traffic: String,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    /// The whole appliance's charts, where every site keeps the same time.
    heatmap: String,
    traffic: String,
    /// Each site's charts otherwise (and then `heatmap` and `traffic` are empty).
    sites: Vec<SiteCharts>,
}

/// GET /activity
pub async fn show(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let chrome = Chrome::new(&state, &viewer, Section::Activity);
    let tz = chrome.timezone;
    let scope = chrome.history_scope();
    if !chrome.clocks_differ() {
        let heatmap =
            activity_heatmap(&state, scope, SwipesOf::Site, "When people badge", tz).await?;
        let traffic = daily_traffic(
            &state,
            scope,
            SwipesOf::Site,
            "Swipes per day, whole site",
            tz,
        )
        .await?;
        return page(&ActivityPage {
            chrome,
            heatmap,
            traffic,
            sites: Vec::new(),
        });
    }
    let snapshot = state.live.snapshot();
    let mut sites = Vec::new();
    for (site_id, tz, doors) in site_clock::doors_by_site(&snapshot) {
        let name = snapshot
            .site(site_id)
            .map_or_else(|| format!("site {site_id}"), |s| s.name.clone());
        let heatmap = activity_heatmap(
            &state,
            scope,
            SwipesOf::Doors(doors.clone()),
            &format!("When people badge at {name}"),
            tz,
        )
        .await?;
        let traffic = daily_traffic(
            &state,
            scope,
            SwipesOf::Doors(doors),
            &format!("Swipes per day, {name}"),
            tz,
        )
        .await?;
        sites.push(SiteCharts {
            name,
            tz,
            heatmap,
            traffic,
        });
    }
    page(&ActivityPage {
        chrome,
        heatmap: String::new(),
        traffic: String::new(),
        sites,
    })
}
