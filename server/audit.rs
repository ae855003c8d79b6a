//! The admin audit log: every admin change, written in the same transaction as the change,
//! each entry hash-chained to the one before so that `verify` finds edits and deletions.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::DbConnection;
use crate::store::rows::AuditRow;
use crate::store::schema::audit_log;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One admin change as the caller describes it; seq, time and hashes are added here.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<String>,
    pub summary: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct NewAuditRow<'a> {
    seq: i64,
    at: NaiveDateTime,
    actor: &'a str,
    action: &'a str,
    entity: &'a str,
    entity_id: Option<&'a str>,
    summary: &'a str,
    before_json: Option<&'a str>,
    after_json: Option<&'a str>,
    prev_hash: &'a str,
    hash: &'a str,
}

/// Appends one entry. Call inside the transaction that makes the change, so that the change
/// and its record commit or roll back together.
pub fn append(
    conn: &mut DbConnection,
    entry: &AuditEntry<'_>,
    now: DateTime<Utc>,
) -> QueryResult<i64> {
    #[cfg(feature = "postgres")]
    if matches!(conn, DbConnection::Postgres(_)) {
        // Several appliances may share one PostgreSQL database: hold a lock until this
        // transaction ends so that two of them never append the same sequence number.
        diesel::connection::SimpleConnection::batch_execute(
            conn,
            "SELECT pg_advisory_xact_lock(7263827361)",
        )?;
    }
    let last: Option<(i64, String)> = audit_log::table
        .select((audit_log::seq, audit_log::hash))
        .order(audit_log::seq.desc())
        .first(conn)
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    // Stored times keep microseconds on both backends; hash exactly what is stored.
    let at = now.naive_utc().trunc_subsecs(6);
    let before = entry.before.as_ref().map(|v| v.to_string());
    let after = entry.after.as_ref().map(|v| v.to_string());
    let hash = entry_hash(&HashedFields {
        seq,
        at,
        actor: entry.actor,
        action: entry.action,
        entity: entry.entity,
        entity_id: entry.entity_id.as_deref(),
        summary: &entry.summary,
        before_json: before.as_deref(),
        after_json: after.as_deref(),
        prev_hash: &prev_hash,
    });
    diesel::insert_into(audit_log::table)
        .values(NewAuditRow {
            seq,
            at,
            actor: entry.actor,
            action: entry.action,
            entity: entry.entity,
            entity_id: entry.entity_id.as_deref(),
            summary: &entry.summary,
            before_json: before.as_deref(),
            after_json: after.as_deref(),
            prev_hash: &prev_hash,
            hash: &hash,
        })
        .execute(conn)?;
    Ok(seq)
}

#[derive(Serialize)]
struct HashedFields<'a> {
    seq: i64,
    at: NaiveDateTime,
    actor: &'a str,
    action: &'a str,
    entity: &'a str,
    entity_id: Option<&'a str>,
    summary: &'a str,
    before_json: Option<&'a str>,
    after_json: Option<&'a str>,
    prev_hash: &'a str,
}

/// SHA-256 over a JSON array of the fields: unambiguous, and the same on every backend.
fn entry_hash(f: &HashedFields<'_>) -> String {
    let canonical = serde_json::json!([
        f.seq,
        f.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        f.actor,
        f.action,
        f.entity,
        f.entity_id,
        f.summary,
        f.before_json,
        f.after_json,
        f.prev_hash,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn row_hash(row: &AuditRow) -> String {
    entry_hash(&HashedFields {
        seq: row.seq,
        at: row.at,
        actor: &row.actor,
        action: &row.action,
        entity: &row.entity,
        entity_id: row.entity_id.as_deref(),
        summary: &row.summary,
        before_json: row.before_json.as_deref(),
        after_json: row.after_json.as_deref(),
        prev_hash: &row.prev_hash,
    })
}

/// One break in the chain, in words an auditor can act on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ChainProblem {
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    pub entries: i64,
    /// Hash of the newest entry: record it elsewhere to detect deletion of the newest entries.
    pub head_hash: String,
    pub head_seq: i64,
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the whole chain in order and reports every edited, inserted or deleted entry.
pub fn verify(conn: &mut DbConnection) -> QueryResult<ChainReport> {
    const PAGE: i64 = 2000;
    let mut problems = Vec::new();
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut entries = 0i64;
    let mut last_seq = 0i64;
    loop {
        let rows: Vec<AuditRow> = audit_log::table
            .filter(audit_log::seq.gt(last_seq))
            .order(audit_log::seq.asc())
            .limit(PAGE)
            .select(AuditRow::as_select())
            .load(conn)?;
        let Some(last) = rows.last() else { break };
        last_seq = last.seq;
        for row in &rows {
            entries += 1;
            if row.seq != expected_seq {
                problems.push(ChainProblem {
                    seq: row.seq,
                    problem: if row.seq > expected_seq {
                        format!(
                            "entries {} to {} are missing (deleted)",
                            expected_seq,
                            row.seq - 1
                        )
                    } else {
                        format!("sequence number {} repeats", row.seq)
                    },
                });
            }
            if row.prev_hash != prev_hash {
                problems.push(ChainProblem {
                    seq: row.seq,
                    problem: "does not link to the entry before it (an entry was inserted or deleted before it)".to_owned(),
                });
            }
            if row_hash(row) != row.hash {
                problems.push(ChainProblem {
                    seq: row.seq,
                    problem: "its content does not match its hash (the entry was edited)"
                        .to_owned(),
                });
            }
            expected_seq = row.seq + 1;
            prev_hash = row.hash.clone();
        }
    }
    Ok(ChainReport {
        entries,
        head_hash: prev_hash,
        head_seq: expected_seq - 1,
        problems,
    })
}

/// Checks a head recorded earlier (`seq` and `hash`, as `verify` reported them) against the
/// chain: deleting the newest entries leaves a shorter chain that is valid in itself, so
/// only a head kept elsewhere reveals it.
pub fn check_recorded_head(
    conn: &mut DbConnection,
    seq: i64,
    hash: &str,
) -> QueryResult<Option<ChainProblem>> {
    let stored: Option<String> = audit_log::table
        .filter(audit_log::seq.eq(seq))
        .select(audit_log::hash)
        .first(conn)
        .optional()?;
    Ok(match stored {
        Some(h) if h == hash => None,
        Some(_) => Some(ChainProblem {
            seq,
            problem: "differs from the head recorded earlier (entries up to it were rewritten)"
                .to_owned(),
        }),
        None => Some(ChainProblem {
            seq,
            problem: "the head recorded earlier is gone (the newest entries were deleted)"
                .to_owned(),
        }),
    })
}

/// Entries newest first, for the API and CLI.
pub fn list(
    conn: &mut DbConnection,
    entity: Option<&str>,
    offset: i64,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_log::table
        .select(AuditRow::as_select())
        .order(audit_log::seq.desc())
        .offset(offset)
        .limit(limit)
        .into_boxed();
    if let Some(entity) = entity {
        query = query.filter(audit_log::entity.eq(entity.to_owned()));
    }
    query.load(conn)
}
