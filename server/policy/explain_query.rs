//! "Why?" for admins: resolves who and which door from the names people use (employee id,
//! card UID, door name), runs `policy::explain`, and renders the answer as text.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::policy::{self, CheckStatus, CredentialKey, Explanation, Presence, Snapshot, Subject};

/// Whom the question is about, as an admin names them.
#[derive(Debug, Clone)]
pub enum SubjectQuery {
    PersonId(i64),
    EmployeeId(String),
    Credential(CredentialKey),
}

/// Which door, as an admin names it.
#[derive(Debug, Clone)]
pub enum DoorQuery {
    Id(i64),
    Name(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainQueryError {
    #[error("no person has employee id '{0}'")]
    UnknownEmployee(String),
    #[error("no door is named '{0}'")]
    UnknownDoorName(String),
    #[error(transparent)]
    Policy(#[from] policy::ExplainError),
}

/// Answers the question about time `at` against the live snapshot, asked at `present`
/// (the texts say "now" only when the two are the same).
pub fn answer(
    snapshot: &Snapshot,
    presence: &Presence,
    subject: &SubjectQuery,
    door: &DoorQuery,
    at: DateTime<Utc>,
    present: DateTime<Utc>,
) -> Result<Explanation, ExplainQueryError> {
    let door_id = match door {
        DoorQuery::Id(id) => *id,
        DoorQuery::Name(name) => snapshot
            .doors()
            .iter()
            .find(|d| d.name == *name)
            .map(|d| d.id)
            .ok_or_else(|| ExplainQueryError::UnknownDoorName(name.clone()))?,
    };
    let subject = match subject {
        SubjectQuery::PersonId(id) => Subject::Person(*id),
        SubjectQuery::EmployeeId(employee_id) => Subject::Person(
            snapshot
                .person_by_employee_id(employee_id)
                .map(|p| p.id)
                .ok_or_else(|| ExplainQueryError::UnknownEmployee(employee_id.clone()))?,
        ),
        SubjectQuery::Credential(key) => Subject::Credential(key),
    };
    Ok(policy::explain_at(
        snapshot, presence, subject, door_id, at, present,
    )?)
}

/// The explanation as an admin reads it in a terminal, with times on the clock of the
/// door's site. Checks that say the same thing one after another (skipped, or not
/// reached) share one line.
pub fn to_text(e: &Explanation) -> String {
    let tz: chrono_tz::Tz = e.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let when = |t: DateTime<Utc>| policy::when_at(t, tz);
    let moment = if e.at_present { "now" } else { "then" };
    let mut out = String::new();
    let _ = writeln!(out, "{}", e.summary);
    let _ = writeln!(
        out,
        "  door: {} ({}{})",
        e.door.name,
        when(e.at),
        if e.at_present { ", now" } else { "" }
    );
    if let Some(person) = &e.person {
        let _ = writeln!(out, "  person: {}", person.name);
    }
    let _ = writeln!(out, "\nchecks, in the order the appliance makes them:");
    let mut i = 0;
    while i < e.checks.len() {
        let c = &e.checks[i];
        let same = e.checks[i..]
            .iter()
            .take_while(|o| o.status == c.status && o.detail == c.detail)
            .count();
        let mark = match c.status {
            CheckStatus::Passed => "pass",
            CheckStatus::Failed => "FAIL",
            _ => " -- ",
        };
        if same > 1 {
            let names: Vec<&str> = e.checks[i..i + same]
                .iter()
                .map(|o| policy::explain::label(o.check))
                .collect();
            let _ = writeln!(out, "  [{mark}] {}: {}", names.join(", "), c.detail);
        } else {
            let _ = writeln!(out, "  [{mark}] {}", c.detail);
        }
        i += same;
    }
    if e.entitlements.is_empty() {
        let _ = writeln!(out, "\nno entitlement of this person covers this door");
    } else {
        let _ = writeln!(out, "\nevery entitlement that covers this door:");
        for c in &e.entitlements {
            let via = match &c.via {
                policy::Via::Door => "the door itself".to_owned(),
                policy::Via::Zone { zone_name, .. } => format!("zone '{zone_name}'"),
            };
            let state = if c.expired {
                "expired".to_owned()
            } else if c.schedule_open {
                match c.next_closes {
                    Some(t) => format!("open {moment}, closes {}", when(t)),
                    None => format!("open {moment}"),
                }
            } else {
                let why = match &c.holiday {
                    Some(h) => format!(" for the holiday {}", h.name),
                    None => String::new(),
                };
                match c.next_opens {
                    Some(t) => format!("closed {moment}{why}, opens {}", when(t)),
                    None => format!("closed {moment}{why}, and does not open within a year"),
                }
            };
            let decisive = if c.decisive {
                "  <- granted by this"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  - level '{}' via {via}, schedule '{}': {state}{decisive}",
                c.level.name, c.schedule.name
            );
        }
    }
    out
}
