//! Saving a console edit form. Every form that replaces something saves through
//! [`update`], which goes by `entities::upsert`: a save that changes nothing is rolled
//! back, leaves no audit entry, and the page it lands on says "Nothing changed" (a
//! notice, `kit/notice.rs`; the redirect means reloading that page does not post again).

use actix_web::HttpResponse;

use super::notice::{Notice, see_other_saying};
use super::session::Viewer;
use crate::app::state::AppState;

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

/// Where the browser goes after a save: `page`, which says `done` (what the save did)
/// or, when nothing changed, that nothing did.
pub fn see_page(
    state: &AppState,
    viewer: &Viewer,
    page: &str,
    saved: Saved,
    done: impl Into<String>,
) -> HttpResponse {
    let notice = match saved {
        Saved::Changed => Notice::done(done),
        Saved::Unchanged => Notice::unchanged(),
    };
    see_other_saying(state, viewer, page, notice)
}
