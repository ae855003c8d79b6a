//! The site's activity: when people badge across the whole site (weekday × hour) and the
//! daily granted and denied swipes, over the last weeks.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::activity::Scope;
use super::session::Viewer;
use super::{Chrome, PageError, Section, activity_heatmap, daily_traffic, page};
use crate::web::AppState;

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    heatmap: String,
    traffic: String,
}

/// GET /activity
pub async fn show(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let chrome = Chrome::new(&state, &viewer, Section::Activity);
    let tz = chrome.timezone;
    let heatmap = activity_heatmap(&state, Scope::Site, "When people badge", tz).await?;
    let traffic = daily_traffic(&state, None, "Swipes per day, whole site", tz).await?;
    page(&ActivityPage {
        chrome,
        heatmap,
        traffic,
    })
}
