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

/// Answers the question against the live snapshot.
pub fn answer(
    snapshot: &Snapshot,
    presence: &Presence,
    subject: &SubjectQuery,
    door: &DoorQuery,
    at: DateTime<Utc>,
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
    Ok(policy::explain(snapshot, presence, subject, door_id, at)?)
}

/// The explanation as an admin reads it in a terminal.
pub fn to_text(e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", e.summary);
    let _ = writeln!(
        out,
        "  door: {} ({})",
        e.door.name,
        e.at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if let Some(person) = &e.person {
        let _ = writeln!(out, "  person: {}", person.name);
    }
    let _ = writeln!(out, "\nchecks, in the order the appliance makes them:");
    for c in &e.checks {
        let mark = match c.status {
            CheckStatus::Passed => "pass",
            CheckStatus::Failed => "FAIL",
            _ => " -- ",
        };
        let _ = writeln!(out, "  [{mark}] {}", c.detail);
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
                "open now".to_owned()
            } else {
                "closed now".to_owned()
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
