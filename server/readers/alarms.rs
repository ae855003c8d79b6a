//! Alarms: the forced-open, held-open, tamper, reader-offline and PIN-lockout events of the last week
//! that nobody has acknowledged yet, and acknowledging them (audited; events never change).

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use crate::entities::ChangeContext;
use crate::store::DbConnection;
use crate::store::audit::{self, AuditEntry};
use crate::store::event_log::{EventKind, Recorded};
use crate::store::schema::{alarm_acks, events};

/// The kinds of event that need someone to look.
pub const ALARM_KINDS: [EventKind; 5] = [
    EventKind::ForcedOpen,
    EventKind::HeldOpen,
    EventKind::Tamper,
    EventKind::ReaderOffline,
    EventKind::PinLockout,
];

/// How far back an unacknowledged alarm stays open: older ones are history, in the log.
pub const OPEN_FOR: Duration = Duration::days(7);

fn kinds() -> Vec<&'static str> {
    ALARM_KINDS.iter().map(|k| k.as_str()).collect()
}

/// Unacknowledged alarms, newest first, at most `limit`.
pub fn open(conn: &mut DbConnection, now: DateTime<Utc>, limit: i64) -> QueryResult<Vec<Recorded>> {
    let since = (now - OPEN_FOR).naive_utc();
    events::table
        .filter(events::kind.eq_any(kinds()))
        .filter(events::at.ge(since))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            alarm_acks::table.filter(alarm_acks::event_id.eq(events::id)),
        )))
        .order((events::at.desc(), events::id.desc()))
        .limit(limit)
        .select(Recorded::as_select())
        .load(conn)
}

/// Acknowledges alarms by event id; ids that are not open alarms are skipped. Returns how
/// many were acknowledged, and records that in the audit log.
pub fn acknowledge(
    conn: &mut DbConnection,
    event_ids: &[i64],
    ctx: &ChangeContext<'_>,
) -> QueryResult<usize> {
    crate::store::write_transaction(conn, |conn| {
        let open: Vec<(i64, String, Option<i64>)> = events::table
            .filter(events::id.eq_any(event_ids))
            .filter(events::kind.eq_any(kinds()))
            .filter(events::at.ge((ctx.now - OPEN_FOR).naive_utc()))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                alarm_acks::table.filter(alarm_acks::event_id.eq(events::id)),
            )))
            .select((events::id, events::kind, events::door_id))
            .load(conn)?;
        for (id, _, _) in &open {
            diesel::insert_into(alarm_acks::table)
                .values((
                    alarm_acks::event_id.eq(id),
                    alarm_acks::acked_by.eq(ctx.provenance.actor()),
                    alarm_acks::acked_at.eq(ctx.stamp()),
                ))
                .execute(conn)?;
        }
        if !open.is_empty() {
            let summary = match open.as_slice() {
                [(id, kind, _)] => format!("acknowledge alarm {id} ({})", kind.replace('_', " ")),
                many => format!("acknowledge {} alarms", many.len()),
            };
            audit::append(
                conn,
                &AuditEntry {
                    provenance: ctx.provenance,
                    action: "acknowledge",
                    entity: "alarm",
                    entity_id: (open.len() == 1).then(|| open[0].0.to_string()),
                    summary,
                    before: None,
                    after: serde_json::to_value(
                        open.iter().map(|(id, _, _)| id).collect::<Vec<_>>(),
                    )
                    .ok(),
                },
                ctx.now,
            )?;
        }
        Ok(open.len())
    })
}
