//! Explanations for people: would this person or card open this door now, and exactly why,
//! told by watching the decision pipeline run and listing every entitlement that applies.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::decide::{
    Check, CheckStatus, Decision, GrantedBy, Outcome, Reason, Who, covering_entitlements,
    entitlement_expired, evaluate, granted_by,
};
use super::model::{Credential, CredentialKey, Direction, DoorMode, Person};
use super::presence::Presence;
use super::snapshot::{DoorView, Snapshot};

/// Whom to explain: a person (whatever card they carry) or a presented credential.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Person(i64),
    Credential(&'a CredentialKey),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("there is no door with id {0}")]
    UnknownDoor(i64),
    #[error("there is no person with id {0}")]
    UnknownPerson(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

/// One step of the pipeline as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub check: Check,
    pub status: CheckStatus,
    /// Plain English for an admin.
    pub detail: String,
    pub reason: Option<Reason>,
}

/// How a level reaches the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Via {
    /// The level names the door itself.
    Door,
    /// The level names this zone, which contains the door (perhaps through child zones).
    Zone { zone_id: i64, zone_name: String },
}

/// One way one of the person's entitlements covers the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoveringEntitlement {
    pub entitlement_id: i64,
    pub level: Named,
    pub schedule: Named,
    pub via: Via,
    pub valid_until: Option<DateTime<Utc>>,
    pub expired: bool,
    pub schedule_open: bool,
    /// Unexpired with its schedule open: it would let the person through now, all else
    /// being equal.
    pub usable_now: bool,
    /// The one the decision granted by.
    pub decisive: bool,
    /// The holiday that keeps the schedule closed at the time explained (the schedule
    /// closes on holidays, and would be open but for it).
    pub holiday: Option<Named>,
    /// When the schedule next opens (if closed then), within a year.
    pub next_opens: Option<DateTime<Utc>>,
    /// When the schedule next closes (if open then), within a year.
    pub next_closes: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub granted: bool,
    /// One sentence: the outcome and what decided it.
    pub summary: String,
    /// Exactly what `decide` returns for this subject at this door (no PIN typed).
    pub decision: Decision,
    pub at: DateTime<Utc>,
    /// Whether `at` is the present (the texts say "now") or another time (they name it).
    pub at_present: bool,
    /// The clock of the door's site, on which the texts give times (IANA name).
    pub timezone: String,
    pub door: Named,
    /// The direction explained: entering, unless the door only has exit readers.
    pub direction: Direction,
    pub person: Option<Named>,
    pub credential_id: Option<i64>,
    /// Every check in pipeline order, including those not reached.
    pub checks: Vec<CheckResult>,
    /// Every entitlement of the person that covers the door, in entitlement order.
    pub entitlements: Vec<CoveringEntitlement>,
}

/// Explains whether `subject` may pass `door_id` now, given the anti-passback state.
pub fn explain(
    snapshot: &Snapshot,
    presence: &Presence,
    subject: Subject<'_>,
    door_id: i64,
    now: DateTime<Utc>,
) -> Result<Explanation, ExplainError> {
    explain_at(snapshot, presence, subject, door_id, now, now)
}

/// Explains whether `subject` may pass `door_id` at `now`, asked at `present`: when the
/// two differ (a time ahead or past), the texts name the time instead of saying "now".
pub fn explain_at(
    snapshot: &Snapshot,
    presence: &Presence,
    subject: Subject<'_>,
    door_id: i64,
    now: DateTime<Utc>,
    present: DateTime<Utc>,
) -> Result<Explanation, ExplainError> {
    let door = snapshot
        .door_index(door_id)
        .ok_or(ExplainError::UnknownDoor(door_id))?;
    let who = match subject {
        Subject::Person(id) => Who::Person(
            snapshot
                .person_index(id)
                .ok_or(ExplainError::UnknownPerson(id))?,
        ),
        Subject::Credential(key) => Who::Credential(key),
    };
    let info = snapshot.door_info[door as usize];
    let direction = if info.has_out_reader && !info.has_in_reader {
        Direction::Out
    } else {
        Direction::In
    };

    let mut steps: Vec<(Check, CheckStatus, Option<Reason>)> = Vec::with_capacity(Check::ALL.len());
    let decision = evaluate(
        snapshot,
        presence,
        who,
        None,
        door,
        direction,
        now,
        &mut |check, status, reason| steps.push((check, status, reason)),
    );

    let view = snapshot.door_view_at(door);
    let tz = snapshot.site_tz[info.site as usize];
    let person_idx = match who {
        Who::Person(p) => Some(p),
        Who::Credential(_) => decision.person_id.and_then(|id| snapshot.person_index(id)),
    };
    let person = person_idx.map(|p| snapshot.person_at(p));
    let credential = decision
        .credential_id
        .and_then(|id| snapshot.credential_by_id(id));
    let ctx = Context {
        snap: snapshot,
        presence,
        view,
        person,
        credential,
        subject,
        direction,
        now,
        tz,
        at_present: at_present(now, present),
        site: info.site,
    };

    let mut checks: Vec<CheckResult> = steps
        .iter()
        .map(|&(check, status, reason)| CheckResult {
            check,
            status,
            detail: ctx.detail(check, status, reason),
            reason,
        })
        .collect();
    let decided_at = steps
        .iter()
        .find(|(_, status, _)| *status == CheckStatus::Failed)
        .map(|(check, _, _)| *check);
    for check in Check::ALL.iter().skip(checks.len()) {
        checks.push(CheckResult {
            check: *check,
            status: CheckStatus::NotReached,
            detail: match decided_at {
                Some(at) => format!("not evaluated: the {} check already decided", label(at)),
                None => format!("not needed: the door is on free access {}", ctx.moment()),
            },
            reason: None,
        });
    }

    let entitlements = match person_idx {
        Some(p) => ctx.covering(p, door, &decision),
        None => Vec::new(),
    };

    let decisive_detail = checks
        .iter()
        .find(|c| c.reason == Some(decision.reason))
        .map(|c| c.detail.clone())
        .unwrap_or_default();
    let summary = match decision.outcome {
        Outcome::Grant { .. } => format!("Granted: {decisive_detail}."),
        Outcome::Deny(code) => format!("Denied ({code}): {decisive_detail}."),
        Outcome::PinRequired => format!("PIN required: {decisive_detail}."),
    };

    Ok(Explanation {
        granted: decision.granted(),
        summary,
        decision,
        at: now,
        at_present: ctx.at_present,
        timezone: tz.name().to_owned(),
        door: Named {
            id: view.door.id,
            name: view.door.name.clone(),
        },
        direction,
        person: person.map(|p| Named {
            id: p.id,
            name: p.name.clone(),
        }),
        credential_id: decision.credential_id,
        checks,
        entitlements,
    })
}

/// A check as the texts name it ("credential status").
pub fn label(check: Check) -> &'static str {
    match check {
        Check::CredentialKnown => "known credential",
        Check::CredentialStatus => "credential status",
        Check::CredentialValidity => "credential expiry",
        Check::PersonStatus => "person status",
        Check::PersonValidity => "person validity",
        Check::Lockdown => "lockdown",
        Check::DoorMode => "door mode",
        Check::Entitlement => "entitlement",
        Check::Pin => "PIN",
        Check::Antipassback => "anti-passback",
    }
}

/// A time as the texts give it: on the door's site's clock, with its zone's abbreviation.
pub fn when_at(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// Whether the time explained is the present: within the minute the question was asked.
fn at_present(at: DateTime<Utc>, present: DateTime<Utc>) -> bool {
    (at - present).num_seconds().abs() < 60
}

struct Context<'a> {
    snap: &'a Snapshot,
    presence: &'a Presence,
    view: DoorView<'a>,
    person: Option<&'a Person>,
    credential: Option<&'a Credential>,
    subject: Subject<'a>,
    direction: Direction,
    now: DateTime<Utc>,
    /// The door's site's clock.
    tz: Tz,
    at_present: bool,
    /// The door's site (an index).
    site: u32,
}

impl Context<'_> {
    fn when(&self, t: DateTime<Utc>) -> String {
        when_at(t, self.tz)
    }

    /// "now", or the time explained when that is not the present.
    fn moment(&self) -> String {
        if self.at_present {
            "now".to_owned()
        } else {
            format!("at {}", self.when(self.now))
        }
    }

    fn person_name(&self) -> String {
        match self.person {
            Some(p) if p.employee_id.is_empty() => p.name.clone(),
            Some(p) => format!("{} ({})", p.name, p.employee_id),
            None => "the holder".into(),
        }
    }

    fn credential_name(&self) -> String {
        match self.credential {
            Some(c) => format!("credential {} ({} {})", c.id, c.key.kind(), c.key),
            None => "the credential".into(),
        }
    }

    fn level_name(&self, id: i64) -> String {
        self.snap
            .level(id)
            .map_or_else(|| format!("level {id}"), |l| format!("level '{}'", l.name))
    }

    fn schedule_name(&self, id: i64) -> String {
        self.snap.schedule(id).map_or_else(
            || format!("schedule {id}"),
            |s| format!("schedule '{}'", s.name),
        )
    }

    fn zone_name(&self, id: i64) -> String {
        self.snap
            .zone(id)
            .map_or_else(|| format!("zone {id}"), |z| format!("zone '{}'", z.name))
    }

    fn door_name(&self) -> String {
        format!("door '{}'", self.view.door.name)
    }

    fn granted_by(&self, g: &GrantedBy) -> String {
        let via = match g.via_zone {
            Some(z) => format!("through {}", self.zone_name(z)),
            None => "naming the door".into(),
        };
        format!(
            "{} ({via}) grants access {} under {}",
            self.level_name(g.level_id),
            self.moment(),
            self.schedule_name(g.schedule_id)
        )
    }

    fn detail(&self, check: Check, status: CheckStatus, reason: Option<Reason>) -> String {
        if status == CheckStatus::Skipped {
            return match check {
                Check::CredentialKnown | Check::CredentialStatus | Check::CredentialValidity => {
                    "not checked: explaining a person rather than a presented credential".into()
                }
                Check::Pin => format!("{} does not require a PIN", self.door_name()),
                Check::Antipassback => {
                    format!("{} is not in an anti-passback zone", self.door_name())
                }
                _ => "not applicable".into(),
            };
        }
        if let Some(reason) = reason {
            return self.reason_detail(reason);
        }
        match check {
            Check::CredentialKnown => match (self.subject, self.credential, self.person) {
                (Subject::Credential(key), Some(c), _) => {
                    format!(
                        "{} {key} is credential {} of {}",
                        key.kind(),
                        c.id,
                        self.person_name()
                    )
                }
                _ => "the credential is known".into(),
            },
            Check::CredentialStatus => format!("{} is active", self.credential_name()),
            Check::CredentialValidity => match self.credential.and_then(|c| c.valid_until) {
                Some(until) => format!(
                    "{} is valid until {}",
                    self.credential_name(),
                    self.when(until)
                ),
                None => format!("{} does not expire", self.credential_name()),
            },
            Check::PersonStatus => format!("{} is active", self.person_name()),
            Check::PersonValidity => {
                let p = self.person;
                match (p.and_then(|p| p.valid_from), p.and_then(|p| p.valid_until)) {
                    (None, None) => format!("{} has no start or end date", self.person_name()),
                    (from, until) => format!(
                        "{} is within their validity ({} to {})",
                        self.person_name(),
                        from.map_or_else(|| "no start".into(), |t| self.when(t)),
                        until.map_or_else(|| "no end".into(), |t| self.when(t))
                    ),
                }
            }
            Check::Lockdown => format!("site '{}' is not in lockdown", self.view.site.name),
            Check::DoorMode => match self.view.door.mode {
                DoorMode::CardAndPin => format!("{} needs card and PIN", self.door_name()),
                mode => format!("{} is in {mode} mode", self.door_name()),
            },
            Check::Entitlement => format!("an entitlement covers the door {}", self.moment()),
            Check::Pin => "the PIN matches".into(),
            Check::Antipassback => {
                let zone = self.view.antipassback_zone;
                let zone_name = zone.map_or_else(String::new, |z| self.zone_name(z.id));
                let going = match self.direction {
                    Direction::In => "entering",
                    Direction::Out => "leaving",
                };
                match (zone, self.person) {
                    (Some(z), Some(p)) => match self.presence.last(p.id, z.id) {
                        Some(last) => format!(
                            "{going} {zone_name} is allowed: last recorded going {} at {}",
                            last.direction,
                            self.when(last.at)
                        ),
                        None => format!("{going} {zone_name} is allowed: no passage recorded yet"),
                    },
                    _ => format!("{going} {zone_name} is allowed"),
                }
            }
        }
    }

    fn reason_detail(&self, reason: Reason) -> String {
        match reason {
            Reason::UnknownCredential => match self.subject {
                Subject::Credential(key) => format!(
                    "no credential has the {} key {key}; the attempt is logged as possible probing",
                    key.kind()
                ),
                Subject::Person(_) => "the credential is not known".into(),
            },
            Reason::CredentialInactive { status, .. } => {
                format!("{} is marked {status}", self.credential_name())
            }
            Reason::CredentialExpired { valid_until, .. } => {
                format!(
                    "{} expired at {}",
                    self.credential_name(),
                    self.when(valid_until)
                )
            }
            Reason::PersonInactive { status, .. } => format!("{} is {status}", self.person_name()),
            Reason::PersonNotYetValid { valid_from, .. } => format!(
                "{} is not valid until {}",
                self.person_name(),
                self.when(valid_from)
            ),
            Reason::PersonExpired { valid_until, .. } => format!(
                "{}'s validity ended at {}",
                self.person_name(),
                self.when(valid_until)
            ),
            Reason::Lockdown { .. } => format!(
                "site '{}' is in lockdown: every door denies until it is lifted",
                self.view.site.name
            ),
            Reason::DoorLocked { .. } => {
                format!("{} is locked: nobody may pass", self.door_name())
            }
            Reason::DoorUnlocked { .. } => format!(
                "{} is unlocked (free access): anyone may pass",
                self.door_name()
            ),
            Reason::FreeAccessSchedule { schedule_id, .. } => format!(
                "{} is on free access {} ({} is open)",
                self.door_name(),
                self.moment(),
                self.schedule_name(schedule_id)
            ),
            Reason::NoEntitlement { .. } => format!(
                "none of {}'s access levels covers {}",
                self.person_name(),
                self.door_name()
            ),
            Reason::EntitlementExpired {
                entitlement_id,
                level_id,
                valid_until,
            } => format!(
                "every access level covering {} has expired; the last, {} (entitlement {entitlement_id}), ended at {}",
                self.door_name(),
                self.level_name(level_id),
                self.when(valid_until)
            ),
            Reason::OutsideSchedule {
                level_id,
                schedule_id,
                ..
            } => {
                let closed =
                    match self
                        .snap
                        .schedule_closed_by_holiday(schedule_id, self.site, self.now)
                    {
                        Some(holiday) => format!(
                            "closed {}: {} is a holiday ({}), and it closes on holidays",
                            self.moment(),
                            holiday.date,
                            holiday.name
                        ),
                        None => format!("closed {}", self.moment()),
                    };
                format!(
                    "{} covers {}, but {} is {closed} (and so are those of any other covering level)",
                    self.level_name(level_id),
                    self.door_name(),
                    self.schedule_name(schedule_id)
                )
            }
            Reason::Entitled(g) => self.granted_by(&g),
            Reason::PinRequired { .. } => match self.subject {
                Subject::Person(_) => format!(
                    "{} needs card and PIN; the reader asks for the PIN after the card",
                    self.door_name()
                ),
                Subject::Credential(_) => format!(
                    "{} needs card and PIN and none was typed; the reader asks for it",
                    self.door_name()
                ),
            },
            Reason::PinWrong { .. } => "the PIN typed does not match".into(),
            Reason::PinNotSet { .. } => format!(
                "{} has no PIN set, so no PIN can match",
                self.credential_name()
            ),
            Reason::Antipassback {
                zone_id,
                last_direction,
                last_at,
            } => format!(
                "hard anti-passback in {}: last recorded going {last_direction} at {}, so going {} again is refused",
                self.zone_name(zone_id),
                self.when(last_at),
                self.direction
            ),
            Reason::SoftAntipassback {
                zone_id,
                last_direction,
                last_at,
                granted_by,
            } => format!(
                "{}; flagged: soft anti-passback in {} (last recorded going {last_direction} at {})",
                self.granted_by(&granted_by),
                self.zone_name(zone_id),
                self.when(last_at)
            ),
        }
    }

    fn covering(&self, person: u32, door: u32, decision: &Decision) -> Vec<CoveringEntitlement> {
        let decisive = match decision.reason {
            Reason::Entitled(g) | Reason::SoftAntipassback { granted_by: g, .. }
                if decision.granted() =>
            {
                Some(g)
            }
            _ => None,
        };
        let mut out = Vec::new();
        for covering in covering_entitlements(self.snap, person, door) {
            let expired = entitlement_expired(covering.entitlement, self.now);
            for cover in covering.covers {
                let g = granted_by(self.snap, &covering, cover);
                let open = self.snap.timeline_open(cover.timeline, self.now);
                let next = self.snap.timeline_next_change(cover.timeline, self.now);
                let level = &self.snap.levels[covering.level as usize];
                let schedule = &self.snap.schedules[cover.schedule as usize];
                out.push(CoveringEntitlement {
                    entitlement_id: g.entitlement_id,
                    level: Named {
                        id: level.id,
                        name: level.name.clone(),
                    },
                    schedule: Named {
                        id: schedule.id,
                        name: schedule.name.clone(),
                    },
                    via: match cover.via_zone {
                        None => Via::Door,
                        Some(z) => Via::Zone {
                            zone_id: self.snap.zones[z as usize].id,
                            zone_name: self.snap.zones[z as usize].name.clone(),
                        },
                    },
                    valid_until: covering.entitlement.valid_until,
                    expired,
                    schedule_open: open,
                    usable_now: open && !expired,
                    decisive: decisive == Some(g),
                    holiday: if open {
                        None
                    } else {
                        self.snap
                            .timeline_closed_by_holiday(cover.timeline, self.now)
                            .map(|h| Named {
                                id: h.id,
                                name: h.name.clone(),
                            })
                    },
                    next_opens: if open { None } else { next },
                    next_closes: if open { next } else { None },
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::decide::{DenyCode, Request, decide};
    use crate::policy::fixtures::*;
    use crate::policy::model::PersonStatus;
    use chrono::TimeDelta;

    #[test]
    fn lists_every_covering_entitlement() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .grant(22, 1, GARAGE, None)
            .grant(23, 1, LAB_24_7, Some(WED_10 - TimeDelta::days(1)))
            .grant(24, 1, LAB_24_7, None)
            .compile(WED_10);
        let e = explain(
            &snap,
            &Presence::new(),
            Subject::Person(1),
            LAB_DOOR,
            WED_22,
        )
        .unwrap();
        assert!(e.granted);
        let rows: Vec<_> = e
            .entitlements
            .iter()
            .map(|c| {
                (
                    c.entitlement_id,
                    c.level.id,
                    c.expired,
                    c.schedule_open,
                    c.decisive,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (21, STAFF, false, false, false),
                (23, LAB_24_7, true, true, false),
                (24, LAB_24_7, false, true, true),
            ]
        );
        assert_eq!(e.entitlements[0].level.name, "Office staff");
        assert_eq!(
            e.entitlements[0].via,
            Via::Zone {
                zone_id: OFFICE_ZONE,
                zone_name: "Office".into()
            }
        );
        assert_eq!(e.entitlements[2].via, Via::Door);
        // Office hours reopen Thursday 08:00 Berlin.
        assert_eq!(
            e.entitlements[0].next_opens,
            Some(at_berlin("2026-06-11 08:00"))
        );
        assert_eq!(e.entitlements[0].next_closes, None);
        assert!(
            e.summary.starts_with("Granted: level 'Lab 24/7'"),
            "{}",
            e.summary
        );
    }

    #[test]
    fn person_subject_skips_credential_checks() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        let e = explain(
            &snap,
            &Presence::new(),
            Subject::Person(1),
            OFFICE_DOOR,
            WED_22,
        )
        .unwrap();
        let statuses: Vec<_> = e.checks.iter().map(|c| (c.check, c.status)).collect();
        assert_eq!(
            statuses,
            [
                (Check::CredentialKnown, CheckStatus::Skipped),
                (Check::CredentialStatus, CheckStatus::Skipped),
                (Check::CredentialValidity, CheckStatus::Skipped),
                (Check::PersonStatus, CheckStatus::Passed),
                (Check::PersonValidity, CheckStatus::Passed),
                (Check::Lockdown, CheckStatus::Passed),
                (Check::DoorMode, CheckStatus::Passed),
                (Check::Entitlement, CheckStatus::Failed),
                (Check::Pin, CheckStatus::NotReached),
                (Check::Antipassback, CheckStatus::NotReached),
            ]
        );
        assert!(e.checks[0].detail.contains("explaining a person"));
        assert_eq!(e.decision.outcome, Outcome::Deny(DenyCode::Schedule));
        assert!(
            e.summary.contains("schedule 'schedule 1' is closed now"),
            "{}",
            e.summary
        );
        assert_eq!(e.person.as_ref().map(|p| p.id), Some(1));
        assert_eq!(e.credential_id, None);
    }

    #[test]
    fn unknown_ids_are_errors_but_unknown_cards_are_explained() {
        let snap = building().person(1).compile(WED_10);
        let p = Presence::new();
        assert_eq!(
            explain(&snap, &p, Subject::Person(1), 9999, WED_10).unwrap_err(),
            ExplainError::UnknownDoor(9999)
        );
        assert_eq!(
            explain(&snap, &p, Subject::Person(7), MAIN_DOOR, WED_10).unwrap_err(),
            ExplainError::UnknownPerson(7)
        );
        let key = card("CAFE");
        let e = explain(&snap, &p, Subject::Credential(&key), MAIN_DOOR, WED_10).unwrap();
        assert_eq!(
            e.decision.outcome,
            Outcome::Deny(DenyCode::UnknownCredential)
        );
        assert!(e.summary.contains("CAFE"), "{}", e.summary);
        assert!(e.entitlements.is_empty());
    }

    #[test]
    fn serializes() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        let key = card("01");
        let e = explain(
            &snap,
            &Presence::new(),
            Subject::Credential(&key),
            OFFICE_DOOR,
            WED_10,
        )
        .unwrap();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["granted"], true);
        assert_eq!(v["checks"][0]["check"], "credential_known");
        assert_eq!(v["entitlements"][0]["via"]["kind"], "zone");
        assert_eq!(v["decision"]["outcome"]["type"], "grant");
    }

    /// Explain must tell the same story as decide, whatever the scenario.
    #[test]
    fn agrees_with_decide_everywhere() {
        let pin_hash = crate::identity::secret::hash_secret("4821").unwrap();
        let f = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .grant(22, 1, GARAGE, None)
            .person(2)
            .card(12, 2, "02")
            .grant(23, 2, LAB_24_7, None)
            .grant(24, 2, PLANT, Some(WED_22))
            .person(3)
            .card(13, 3, "03")
            .grant(25, 3, STAFF, Some(WED_10))
            .person(4)
            .card(14, 4, "04")
            .person(5)
            .card(15, 5, "05")
            .grant(26, 5, MAIN, None)
            .person(6)
            .card(16, 6, "06")
            .grant(27, 6, STAFF, None)
            .with(|d| {
                d.people[4].status = PersonStatus::Suspended;
                d.credentials[5].status = crate::policy::model::CredentialStatus::Lost;
                d.credentials[1].pin_hash = Some(pin_hash);
            });
        let mut presence = Presence::new();
        let snap = f.compile(WED_10);
        // Person 1 is inside the lab and the garage already.
        for reader in ["lab-in", "garage-in"] {
            let d = swipe_with(&snap, &presence, reader, "01", None, WED_10);
            if let Some(passage) = d.passage(WED_10) {
                let _ = presence.pass(passage);
            }
        }
        let times = [
            WED_10,
            WED_22,
            WED_10 + TimeDelta::hours(6),
            WED_10 + TimeDelta::days(20),
        ];
        let mut seen = std::collections::HashSet::new();
        for uid in ["01", "02", "03", "04", "05", "06", "99"] {
            for door in snap.doors() {
                let reader = format!("{}-in", door.name);
                for now in times {
                    let key = card(uid);
                    let req = Request {
                        reader_id: &reader,
                        credential: &key,
                        pin: None,
                    };
                    let d = decide(&snap, &presence, &req, now).unwrap();
                    let e =
                        explain(&snap, &presence, Subject::Credential(&key), door.id, now).unwrap();
                    assert_eq!(e.direction, Direction::In);
                    assert_eq!(e.decision, d, "{uid} at {} {now}", door.name);
                    assert_eq!(e.granted, d.granted());
                    let failed: Vec<_> = e
                        .checks
                        .iter()
                        .filter(|c| c.status == CheckStatus::Failed)
                        .collect();
                    assert_eq!(
                        failed.len(),
                        usize::from(!d.granted()),
                        "{uid} at {}",
                        door.name
                    );
                    seen.insert(format!("{:?}", d.outcome));
                    let Some(person) = d.person_id else { continue };
                    let ep =
                        explain(&snap, &presence, Subject::Person(person), door.id, now).unwrap();
                    let card_ok =
                        snap.credential_by_id(d.credential_id.unwrap())
                            .is_some_and(|c| {
                                c.status == crate::policy::model::CredentialStatus::Active
                            });
                    if card_ok {
                        assert_eq!(
                            ep.decision,
                            Decision {
                                credential_id: None,
                                ..d
                            },
                            "person {person} at {}",
                            door.name
                        );
                    }
                    // The entitlement that granted is listed and marked decisive.
                    if let Reason::Entitled(g) = d.reason {
                        assert!(
                            ep.entitlements
                                .iter()
                                .any(|c| c.decisive && c.entitlement_id == g.entitlement_id)
                        );
                        assert_eq!(ep.entitlements.iter().filter(|c| c.decisive).count(), 1);
                    }
                }
            }
        }
        // The sweep went through grants, PIN prompts and several kinds of denial.
        assert!(seen.len() >= 7, "{seen:?}");
    }
}
