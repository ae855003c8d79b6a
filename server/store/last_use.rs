//! Cards' last use: when each credential was last presented at a reader (granted or not),
//! kept on its row for the cards list, the person page, the API and the risk engine.
//! Written by the event log's writer in the batch that records the swipes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::clock::stored;
use crate::store::DbConnection;
use crate::store::schema::credentials;

/// Raises each credential's `last_used_at` to the latest of its `uses` (credential id,
/// time), never lowering it: one UPDATE per credential, however many times it was used.
/// In credential order, so that instances sharing a PostgreSQL database lock the rows in
/// the same order and cannot deadlock on them. A credential deleted meanwhile is skipped.
pub fn note_last_use(
    conn: &mut DbConnection,
    uses: impl IntoIterator<Item = (i64, DateTime<Utc>)>,
) -> QueryResult<()> {
    let mut latest: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    for (credential, at) in uses {
        let entry = latest.entry(credential).or_insert(at);
        *entry = (*entry).max(at);
    }
    for (credential, at) in latest {
        let at = stored(at);
        diesel::update(
            credentials::table.find(credential).filter(
                credentials::last_used_at
                    .is_null()
                    .or(credentials::last_used_at.lt(at)),
            ),
        )
        .set(credentials::last_used_at.eq(at))
        .execute(conn)?;
    }
    Ok(())
}
