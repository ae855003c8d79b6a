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
/// time), never lowering it. A credential deleted meanwhile is skipped.
///
/// On SQLite (one writer) in a few statements for the whole batch, `UPDATE … FROM
/// (VALUES …)`: a statement per card cost the event writer a sixth of its pace with a
/// thousand cards to a batch (BENCHMARKS.md, event log). On PostgreSQL one UPDATE per
/// credential in credential order, so that instances sharing the database lock the rows
/// in the same order and cannot deadlock on them.
pub fn note_last_use(
    conn: &mut DbConnection,
    uses: impl IntoIterator<Item = (i64, DateTime<Utc>)>,
) -> QueryResult<()> {
    let mut latest: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    for (credential, at) in uses {
        let entry = latest.entry(credential).or_insert(at);
        *entry = (*entry).max(at);
    }
    if latest.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Sqlite(conn) => {
            let latest: Vec<(i64, DateTime<Utc>)> = latest.into_iter().collect();
            for chunk in latest.chunks(CARDS_PER_STATEMENT) {
                let values = vec!["(?, ?)"; chunk.len()].join(", ");
                let mut query = diesel::sql_query(format!(
                    "UPDATE credentials SET last_used_at = u.column2 \
                     FROM (VALUES {values}) AS u \
                     WHERE credentials.id = u.column1 \
                     AND (credentials.last_used_at IS NULL OR credentials.last_used_at < u.column2)"
                ))
                .into_boxed::<diesel::sqlite::Sqlite>();
                for (credential, at) in chunk {
                    query = query
                        .bind::<diesel::sql_types::BigInt, _>(*credential)
                        .bind::<diesel::sql_types::Timestamp, _>(stored(*at));
                }
                query.execute(conn)?;
            }
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(conn) => {
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
        }
    }
    Ok(())
}

/// Cards to one SQLite statement: two values each, far below its limit of 32,766.
const CARDS_PER_STATEMENT: usize = 500;
