//! The admin audit log: every admin change with its provenance, written in the same
//! transaction as the change, each entry chained to the one before by an HMAC under the
//! appliance key (SHA-256 before the chain was keyed), so that `verify` finds edits,
//! deletions and forged appends.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::identity::appliance_key::{self, ApplianceKey};
use crate::identity::provenance::Provenance;
use crate::store::DbConnection;
use crate::store::rows::{AuditRow, ProvenanceColumns};
use crate::store::schema::audit_log;

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One admin change as the caller describes it; seq, time and hashes are added here.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who asked, who approved, through what. Its `actor()` is kept too.
    pub provenance: &'a Provenance,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<String>,
    pub summary: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Which fields an entry's hash covers. 1: the fields an entry had before provenance was
/// recorded (entries written then keep it); 2: those and the provenance columns.
pub const HASH_VERSION: i32 = 2;

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
    keyed: bool,
    #[diesel(embed)]
    provenance: ProvenanceColumns,
    hash_version: i32,
}

fn no_key_error() -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(Box::new(std::io::Error::other(
        "the audit log is keyed with the appliance key, which this process has not loaded",
    )))
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
    let last: Option<(i64, String, bool)> = audit_log::table
        .select((audit_log::seq, audit_log::hash, audit_log::keyed))
        .order(audit_log::seq.desc())
        .first(conn)
        .optional()?;
    let key = appliance_key::installed();
    // Once keyed, every later entry is: an unkeyed one would verify as forged.
    if key.is_none() && last.as_ref().is_some_and(|(_, _, keyed)| *keyed) {
        return Err(no_key_error());
    }
    let (seq, prev_hash) = match last {
        Some((seq, hash, _)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    // Stored times keep microseconds on both backends; hash exactly what is stored.
    let at = now.naive_utc().trunc_subsecs(6);
    let before = entry.before.as_ref().map(|v| v.to_string());
    let after = entry.after.as_ref().map(|v| v.to_string());
    let actor = entry.provenance.actor();
    let provenance = entry.provenance.columns();
    let hash = entry_hash(
        &HashedFields {
            version: HASH_VERSION,
            seq,
            at,
            actor: &actor,
            action: entry.action,
            entity: entry.entity,
            entity_id: entry.entity_id.as_deref(),
            summary: &entry.summary,
            before_json: before.as_deref(),
            after_json: after.as_deref(),
            provenance: &provenance,
            prev_hash: &prev_hash,
        },
        key,
    )
    .ok_or_else(|| {
        diesel::result::Error::QueryBuilderError(Box::new(std::io::Error::other(
            "the audit log's hash version is unknown",
        )))
    })?;
    diesel::insert_into(audit_log::table)
        .values(NewAuditRow {
            seq,
            at,
            actor: &actor,
            action: entry.action,
            entity: entry.entity,
            entity_id: entry.entity_id.as_deref(),
            summary: &entry.summary,
            before_json: before.as_deref(),
            after_json: after.as_deref(),
            prev_hash: &prev_hash,
            hash: &hash,
            keyed: key.is_some(),
            provenance,
            hash_version: HASH_VERSION,
        })
        .execute(conn)?;
    Ok(seq)
}

struct HashedFields<'a> {
    version: i32,
    seq: i64,
    at: NaiveDateTime,
    actor: &'a str,
    action: &'a str,
    entity: &'a str,
    entity_id: Option<&'a str>,
    summary: &'a str,
    before_json: Option<&'a str>,
    after_json: Option<&'a str>,
    provenance: &'a ProvenanceColumns,
    prev_hash: &'a str,
}

/// HMAC-SHA256 under the appliance key's audit subkey (plain SHA-256 for entries made
/// before the chain was keyed) over a JSON array of the fields of the entry's hash version:
/// unambiguous, and the same on every backend. None for a version this appliance does not
/// know.
fn entry_hash(f: &HashedFields<'_>, key: Option<&ApplianceKey>) -> Option<String> {
    let at = f.at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let canonical = match f.version {
        1 => serde_json::json!([
            f.seq,
            at,
            f.actor,
            f.action,
            f.entity,
            f.entity_id,
            f.summary,
            f.before_json,
            f.after_json,
            f.prev_hash,
        ]),
        // The version leads, so that an entry relabelled as another version cannot match.
        2 => {
            let p = f.provenance;
            serde_json::json!([
                2,
                f.seq,
                at,
                f.actor,
                f.action,
                f.entity,
                f.entity_id,
                f.summary,
                f.before_json,
                f.after_json,
                p.requested_by_kind,
                p.requested_by_id,
                p.requested_by_name,
                p.on_behalf_of_id,
                p.on_behalf_of_name,
                p.approved_by_id,
                p.approved_by_name,
                p.via,
                p.via_detail,
                f.prev_hash,
            ])
        }
        _ => return None,
    };
    let canonical = canonical.to_string();
    Some(match key {
        Some(key) => hex::encode(appliance_key::hmac_sha256(
            key.audit_mac_key(),
            canonical.as_bytes(),
        )),
        None => hex::encode(Sha256::digest(canonical.as_bytes())),
    })
}

fn row_hash(row: &AuditRow, key: Option<&ApplianceKey>) -> Option<String> {
    entry_hash(
        &HashedFields {
            version: row.hash_version,
            seq: row.seq,
            at: row.at,
            actor: &row.actor,
            action: &row.action,
            entity: &row.entity,
            entity_id: row.entity_id.as_deref(),
            summary: &row.summary,
            before_json: row.before_json.as_deref(),
            after_json: row.after_json.as_deref(),
            provenance: &row.provenance,
            prev_hash: &row.prev_hash,
        },
        key,
    )
}

/// Whether an entry's content is what its hash says. A version-1 entry's hash does not
/// cover its provenance columns, which the migration derived from its actor: they must
/// still be what its actor gives.
fn content_matches(row: &AuditRow, key: Option<&ApplianceKey>) -> bool {
    let derived_intact = row.hash_version != 1
        || Provenance::from_recorded_actor(&row.actor).columns() == row.provenance;
    derived_intact && row_hash(row, key).is_some_and(|hash| hash == row.hash)
}

/// An entry's provenance, as the audit page and API show it.
pub fn provenance_of(row: &AuditRow) -> Provenance {
    Provenance::from_columns(&row.provenance, &row.actor)
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
    /// The first entry chained with the appliance key; those before it were made before the
    /// chain was keyed (SHA-256 only). None when no entry is keyed.
    pub keyed_from: Option<i64>,
    pub problems: Vec<ChainProblem>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks every entry of the log in order and reports every edited, inserted, deleted or
/// forged one: entries numbered below 1, unkeyed entries after keyed ones, and a row count
/// that does not match what was walked.
pub fn verify(conn: &mut DbConnection) -> QueryResult<ChainReport> {
    verify_with(conn, appliance_key::installed())
}

/// `verify` with the key given (None: as a process without the appliance key sees it).
pub fn verify_with(
    conn: &mut DbConnection,
    key: Option<&ApplianceKey>,
) -> QueryResult<ChainReport> {
    // One consistent view of the table, so that the count matches the walk even while
    // entries are appended.
    crate::store::read_consistently(conn, |conn| walk_chain(conn, key))
}

fn walk_chain(conn: &mut DbConnection, key: Option<&ApplianceKey>) -> QueryResult<ChainReport> {
    const PAGE: i64 = 2000;
    let mut problems = Vec::new();
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut walked = 0i64;
    let mut keyed_from = None;
    // Every row, whatever its number: None reads from the very lowest.
    let mut after_seq: Option<i64> = None;
    loop {
        let mut query = audit_log::table
            .order(audit_log::seq.asc())
            .limit(PAGE)
            .select(AuditRow::as_select())
            .into_boxed();
        if let Some(after) = after_seq {
            query = query.filter(audit_log::seq.gt(after));
        }
        let rows: Vec<AuditRow> = query.load(conn)?;
        let Some(last) = rows.last() else { break };
        after_seq = Some(last.seq);
        for row in &rows {
            walked += 1;
            if row.seq < 1 {
                // Not part of the chain: say so and check the rest as if it were not there.
                problems.push(ChainProblem {
                    seq: row.seq,
                    problem: format!(
                        "is numbered {}, but entries are numbered from 1 (it was inserted behind \
                         the appliance's back)",
                        row.seq
                    ),
                });
                continue;
            }
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
            match (row.keyed, keyed_from, key) {
                (false, Some(_), _) => problems.push(ChainProblem {
                    seq: row.seq,
                    problem: "was added without the appliance key after the log was keyed \
                              (forged by someone who could write the database)"
                        .to_owned(),
                }),
                (true, _, None) => problems.push(ChainProblem {
                    seq: row.seq,
                    problem: "is keyed, and the appliance key is not loaded to check it".to_owned(),
                }),
                (_, _, _) if !matches!(row.hash_version, 1 | HASH_VERSION) => {
                    problems.push(ChainProblem {
                        seq: row.seq,
                        problem: format!(
                            "is hashed as version {}, which this appliance does not know (a \
                             newer version wrote it, or it was edited)",
                            row.hash_version
                        ),
                    })
                }
                (keyed, _, key) => {
                    if !content_matches(row, if keyed { key } else { None }) {
                        problems.push(ChainProblem {
                            seq: row.seq,
                            problem: if keyed {
                                "its content does not match its keyed hash (the entry was \
                                 edited, or written by someone without the appliance key)"
                                    .to_owned()
                            } else {
                                "its content does not match its hash (the entry was edited)"
                                    .to_owned()
                            },
                        });
                    }
                }
            }
            if row.keyed && keyed_from.is_none() {
                keyed_from = Some(row.seq);
            }
            expected_seq = row.seq + 1;
            prev_hash = row.hash.clone();
        }
    }
    let counted: i64 = audit_log::table.count().get_result(conn)?;
    if counted != walked {
        problems.push(ChainProblem {
            seq: expected_seq - 1,
            problem: format!(
                "the log holds {counted} entries, but {walked} could be read in order"
            ),
        });
    }
    Ok(ChainReport {
        entries: walked,
        head_hash: prev_hash,
        head_seq: expected_seq - 1,
        keyed_from,
        problems,
    })
}

/// True when any entry is chained with an appliance key.
pub fn is_keyed(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        audit_log::table.filter(audit_log::keyed.eq(true)),
    ))
    .get_result(conn)
}

/// The newest entry's number and hash: the head an auditor records.
pub fn head(conn: &mut DbConnection) -> QueryResult<Option<(i64, String)>> {
    audit_log::table
        .select((audit_log::seq, audit_log::hash))
        .order(audit_log::seq.desc())
        .first(conn)
        .optional()
}

/// Decides when the head is logged ("audit head SEQ:HASH"): whenever it changes, and once a
/// day even when it does not, so that the log kept outside the appliance (journal, syslog)
/// holds heads for `audit verify --expect-head`.
#[derive(Debug, Default)]
pub struct HeadAnchor {
    logged: Option<((i64, String), DateTime<Utc>)>,
}

impl HeadAnchor {
    /// How often an unchanged head is logged again.
    pub const DAILY: chrono::TimeDelta = chrono::TimeDelta::days(1);

    /// The line to log for the head read at `now`, if it is due.
    pub fn observe(&mut self, head: Option<(i64, String)>, now: DateTime<Utc>) -> Option<String> {
        let head = head?;
        let due = match &self.logged {
            None => true,
            Some((logged, at)) => *logged != head || now - *at >= Self::DAILY,
        };
        if !due {
            return None;
        }
        let line = format!("audit head {}:{}", head.0, head.1);
        self.logged = Some((head, now));
        Some(line)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_logged_when_it_changes_and_daily() {
        let start = DateTime::parse_from_rfc3339("2026-12-08T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut anchor = HeadAnchor::default();
        assert_eq!(
            anchor.observe(None, start),
            None,
            "an empty log has no head"
        );
        let first = Some((1, "aa".to_owned()));
        assert_eq!(
            anchor.observe(first.clone(), start).as_deref(),
            Some("audit head 1:aa")
        );
        let later = start + chrono::TimeDelta::hours(23);
        assert_eq!(anchor.observe(first.clone(), later), None);
        let second = Some((2, "bb".to_owned()));
        assert_eq!(
            anchor.observe(second.clone(), later).as_deref(),
            Some("audit head 2:bb")
        );
        let next_day = later + HeadAnchor::DAILY;
        assert_eq!(
            anchor.observe(second.clone(), next_day - chrono::TimeDelta::seconds(1)),
            None
        );
        assert_eq!(
            anchor.observe(second, next_day).as_deref(),
            Some("audit head 2:bb")
        );
    }
}
