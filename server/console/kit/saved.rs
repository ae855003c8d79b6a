//! Saving a console edit form. Every form that replaces something saves through
//! [`update`], which goes by `entities::upsert`: a save that changes nothing is rolled
//! back, leaves no audit entry, and the page it lands on says "Nothing changed"
//! (`?saved=unchanged`, so that reloading that page does not post the form again).

use actix_web::HttpResponse;
use serde::Deserialize;

use crate::entities::{self, ChangeContext, ChangeError, Entity, Upserted};
use crate::store::DbConnection;

/// What a page says after a save that changed nothing.
pub const NOTHING_CHANGED: &str =
    "Nothing changed: what was saved is what was already there, so nothing was recorded.";

/// Whether a save changed anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Changed,
    Unchanged,
}

/// Replaces entity `id` with `input` and audits it, unless that changes nothing: then
/// nothing is written and nothing audited. "Nothing" is judged on the entity's view,
/// with what the view does not show compared by `Entity::unseen_changes` (a card's PIN).
/// (`entities::update`, which the card forms and the API use, skips such a save too, but
/// answers with the entity instead of saying whether it changed.)
pub fn update<E: Entity>(
    conn: &mut DbConnection,
    id: i64,
    input: E::Input,
    ctx: &ChangeContext<'_>,
) -> Result<Saved, ChangeError> {
    Ok(match entities::upsert::<E>(conn, Some(id), input, ctx)?.1 {
        Upserted::Unchanged => Saved::Unchanged,
        Upserted::Created | Upserted::Updated => Saved::Changed,
    })
}

/// Where the browser goes after a save: `page` (a path without a query), told to say so
/// when nothing changed.
pub fn see_page(page: &str, saved: Saved) -> HttpResponse {
    match saved {
        Saved::Changed => super::see_other(page),
        Saved::Unchanged => super::see_other(&format!("{page}?saved=unchanged")),
    }
}

/// The query of a page that a save may have led to.
#[derive(Deserialize, Default)]
pub struct SavedQuery {
    #[serde(default)]
    saved: String,
}

impl SavedQuery {
    /// What the page says about the save that led to it, if anything.
    pub fn notice(&self) -> Option<&'static str> {
        (self.saved == "unchanged").then_some(NOTHING_CHANGED)
    }
}
