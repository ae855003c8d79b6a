//! Cards: find a card by its number (a found card: whose is it?) or by status, with its
//! holder; lost and stolen cards at a glance. Changes happen on the holder's page.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::kit::session::Viewer;
use super::kit::{Chrome, PageError, Section, page};
use crate::app::state::AppState;
use crate::entities::credentials::{CredentialFilter, CredentialView, Credentials};
use crate::entities::{Entity, Page};

const PAGE_SIZE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct CardsQuery {
    #[serde(default)]
    uid: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: Option<i64>,
}

#[derive(Template)]
#[template(path = "cards.html")]
struct CardsPage {
    chrome: Chrome,
    uid: String,
    status: String,
    /// Each card with its holder's name.
    cards: Vec<(CredentialView, String)>,
    total: i64,
    page: i64,
    pages: i64,
}

impl CardsPage {
    fn page_href(&self, page: &i64) -> String {
        format!(
            "/cards?uid={}&status={}&page={page}",
            super::kit::percent_encode_query(&self.uid),
            super::kit::percent_encode_query(&self.status)
        )
    }
}

/// GET /cards
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<CardsQuery>,
) -> Result<HttpResponse, PageError> {
    let CardsQuery {
        uid,
        status,
        page: n,
    } = query.into_inner();
    let page_no = n.unwrap_or(1).max(1);
    let filter = CredentialFilter {
        person_id: None,
        status: Some(status.clone()).filter(|s| !s.is_empty()),
        card_uid: Some(uid.trim().to_owned()).filter(|u| !u.is_empty()),
    };
    let paging = Page {
        offset: (page_no - 1).saturating_mul(PAGE_SIZE),
        limit: PAGE_SIZE,
    };
    let (cards, total) = state
        .read(move |conn| Ok(Credentials::list(conn, &filter, paging)?))
        .await?;
    let snapshot = state.live.snapshot();
    let cards = cards
        .into_iter()
        .map(|c| {
            let holder = snapshot
                .person(c.person_id)
                .map_or_else(|| format!("person {}", c.person_id), |p| p.name.clone());
            (c, holder)
        })
        .collect();
    page(&CardsPage {
        chrome: Chrome::new(&state, &viewer, Section::People),
        uid,
        status,
        cards,
        total,
        page: page_no,
        pages: ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1),
    })
}
