//! The access decision: a pure function of snapshot, anti-passback state, request and
//! time. The pipeline here is the only copy of the rules; `explain` watches it run.

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::model::{
    AntiPassback, Credential, CredentialKey, CredentialStatus, Direction, Door, DoorMode,
    Entitlement, Person, PersonStatus, Sensitivity, Site, Zone, string_enum,
};
use super::presence::{Passage, Presence, PresenceEntry};
use super::snapshot::{Cover, Snapshot};

/// One swipe, as a reader driver hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The reader's wire id.
    pub reader_id: &'a str,
    pub credential: &'a CredentialKey,
    pub pin: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The reader is not in the snapshot: a fault of the reader's registration, not a
    /// decision about a person.
    #[error("the reader is not registered")]
    UnknownReader,
}

string_enum!(
    /// The deny codes of the reader protocol (docs/protocol.md): which check failed, nothing
    /// about the person.
    DenyCode, "deny code" {
        UnknownCredential = "unknown_credential",
        Inactive = "inactive",
        Expired = "expired",
        NoEntitlement = "no_entitlement",
        Schedule = "schedule",
        Lockdown = "lockdown",
        Antipassback = "antipassback",
        PinWrong = "pin_wrong",
        Risk = "risk",
        DoorMode = "door_mode",
    }
);

string_enum!(
    /// The checks of the decision pipeline, in the order they run.
    Check, "check" {
        CredentialKnown = "credential_known",
        CredentialStatus = "credential_status",
        CredentialValidity = "credential_validity",
        PersonStatus = "person_status",
        PersonValidity = "person_validity",
        Lockdown = "lockdown",
        DoorMode = "door_mode",
        Entitlement = "entitlement",
        Pin = "pin",
        Antipassback = "antipassback",
    }
);

string_enum!(
    CheckStatus, "check status" {
        Passed = "passed",
        Failed = "failed",
        /// Passed, but noted (soft anti-passback).
        Flagged = "flagged",
        /// Does not apply here (no PIN needed, no anti-passback zone, no credential).
        Skipped = "skipped",
        /// Not evaluated because an earlier check already decided.
        NotReached = "not_reached",
    }
);

/// What the reader is told to do. Serialized like the protocol's commands:
/// `{"type":"grant","unlock_ms":5000}`, `{"type":"deny","code":"schedule"}`,
/// `{"type":"pin_required"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Grant { unlock_ms: u32 },
    Deny(DenyCode),
    PinRequired,
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Outcome::Grant { unlock_ms } => {
                map.serialize_entry("type", "grant")?;
                map.serialize_entry("unlock_ms", unlock_ms)?;
            }
            Outcome::Deny(code) => {
                map.serialize_entry("type", "deny")?;
                map.serialize_entry("code", code)?;
            }
            Outcome::PinRequired => map.serialize_entry("type", "pin_required")?,
        }
        map.end()
    }
}

/// The entitlement that let a person through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GrantedBy {
    pub entitlement_id: i64,
    pub level_id: i64,
    pub schedule_id: i64,
    /// The zone named in the level when the door is covered through it; `None` when the
    /// level names the door itself.
    pub via_zone: Option<i64>,
}

/// Why the outcome is what it is: the rule that granted, or the check that denied, with
/// the ids an auditor needs to follow it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    UnknownCredential,
    CredentialInactive {
        credential_id: i64,
        status: CredentialStatus,
    },
    CredentialExpired {
        credential_id: i64,
        valid_until: DateTime<Utc>,
    },
    PersonInactive {
        person_id: i64,
        status: PersonStatus,
    },
    PersonNotYetValid {
        person_id: i64,
        valid_from: DateTime<Utc>,
    },
    PersonExpired {
        person_id: i64,
        valid_until: DateTime<Utc>,
    },
    Lockdown {
        site_id: i64,
    },
    DoorLocked {
        door_id: i64,
    },
    /// Free access because the door is in `unlocked` mode.
    DoorUnlocked {
        door_id: i64,
    },
    /// Free access because the door's free-access schedule is open.
    FreeAccessSchedule {
        door_id: i64,
        schedule_id: i64,
    },
    NoEntitlement {
        person_id: i64,
        door_id: i64,
    },
    /// Every entitlement covering the door has expired; this one most recently.
    EntitlementExpired {
        entitlement_id: i64,
        level_id: i64,
        valid_until: DateTime<Utc>,
    },
    /// The first unexpired entitlement covering the door, whose schedule is closed (as
    /// are those of all the others).
    OutsideSchedule {
        entitlement_id: i64,
        level_id: i64,
        schedule_id: i64,
    },
    Entitled(GrantedBy),
    PinRequired {
        door_id: i64,
    },
    PinWrong {
        credential_id: i64,
    },
    /// A PIN was typed but the credential has none set.
    PinNotSet {
        credential_id: i64,
    },
    Antipassback {
        zone_id: i64,
        last_direction: Direction,
        last_at: DateTime<Utc>,
    },
    /// Granted despite a passback in a soft anti-passback zone: flag it.
    SoftAntipassback {
        zone_id: i64,
        last_direction: Direction,
        last_at: DateTime<Utc>,
        granted_by: GrantedBy,
    },
}

impl Reason {
    /// The reason's kind as stored with the event (`reason_code`) and serialized (`kind`):
    /// for grants (`entitled`, `door_unlocked`, `free_access_schedule`,
    /// `soft_antipassback`) as for denials and PIN prompts.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::UnknownCredential => "unknown_credential",
            Reason::CredentialInactive { .. } => "credential_inactive",
            Reason::CredentialExpired { .. } => "credential_expired",
            Reason::PersonInactive { .. } => "person_inactive",
            Reason::PersonNotYetValid { .. } => "person_not_yet_valid",
            Reason::PersonExpired { .. } => "person_expired",
            Reason::Lockdown { .. } => "lockdown",
            Reason::DoorLocked { .. } => "door_locked",
            Reason::DoorUnlocked { .. } => "door_unlocked",
            Reason::FreeAccessSchedule { .. } => "free_access_schedule",
            Reason::NoEntitlement { .. } => "no_entitlement",
            Reason::EntitlementExpired { .. } => "entitlement_expired",
            Reason::OutsideSchedule { .. } => "outside_schedule",
            Reason::Entitled(_) => "entitled",
            Reason::PinRequired { .. } => "pin_required",
            Reason::PinWrong { .. } => "pin_wrong",
            Reason::PinNotSet { .. } => "pin_not_set",
            Reason::Antipassback { .. } => "antipassback",
            Reason::SoftAntipassback { .. } => "soft_antipassback",
        }
    }

    /// The protocol deny code of a denying reason; `None` for grants and PIN prompts.
    pub fn deny_code(&self) -> Option<DenyCode> {
        Some(match self {
            Reason::UnknownCredential => DenyCode::UnknownCredential,
            Reason::CredentialInactive { .. }
            | Reason::PersonInactive { .. }
            | Reason::PersonNotYetValid { .. } => DenyCode::Inactive,
            Reason::CredentialExpired { .. }
            | Reason::PersonExpired { .. }
            | Reason::EntitlementExpired { .. } => DenyCode::Expired,
            Reason::Lockdown { .. } => DenyCode::Lockdown,
            Reason::DoorLocked { .. } => DenyCode::DoorMode,
            Reason::NoEntitlement { .. } => DenyCode::NoEntitlement,
            Reason::OutsideSchedule { .. } => DenyCode::Schedule,
            Reason::PinWrong { .. } | Reason::PinNotSet { .. } => DenyCode::PinWrong,
            Reason::Antipassback { .. } => DenyCode::Antipassback,
            Reason::DoorUnlocked { .. }
            | Reason::FreeAccessSchedule { .. }
            | Reason::Entitled(_)
            | Reason::SoftAntipassback { .. }
            | Reason::PinRequired { .. } => return None,
        })
    }
}

/// The answer to one swipe, with everything the event log and the risk scorer need.
/// Plain data: building one allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Reason,
    pub person_id: Option<i64>,
    pub credential_id: Option<i64>,
    pub door_id: i64,
    pub zone_id: i64,
    pub site_id: i64,
    /// The direction of the reader swiped.
    pub direction: Direction,
    pub sensitivity: Sensitivity,
    /// The anti-passback zone this door counts for, if any.
    pub antipassback_zone: Option<i64>,
    pub soft_antipassback_violation: bool,
}

impl Decision {
    pub fn granted(&self) -> bool {
        matches!(self.outcome, Outcome::Grant { .. })
    }

    /// The passage a granted swipe at a door under anti-passback makes (at `now`), which
    /// presence notes; `None` for denials, PIN prompts and doors outside anti-passback.
    pub fn passage(&self, now: DateTime<Utc>) -> Option<Passage> {
        match (self.outcome, self.person_id, self.antipassback_zone) {
            (Outcome::Grant { .. }, Some(person_id), Some(zone_id)) => Some(Passage {
                person_id,
                zone_id,
                entry: PresenceEntry {
                    direction: self.direction,
                    at: now,
                    door_id: self.door_id,
                },
            }),
            _ => None,
        }
    }

    fn deny(mut self, reason: Reason) -> Decision {
        // Every denying reason has a code; `Risk` is the neutral fallback should a new
        // reason ever be added without one.
        self.outcome = Outcome::Deny(reason.deny_code().unwrap_or(DenyCode::Risk));
        self.reason = reason;
        self
    }

    fn grant(mut self, reason: Reason, unlock_ms: u32) -> Decision {
        self.outcome = Outcome::Grant { unlock_ms };
        self.reason = reason;
        self
    }
}

/// Decides one swipe. Pure: no I/O, no clock, no allocation (except verifying a PIN).
pub fn decide(
    snapshot: &Snapshot,
    presence: &Presence,
    request: &Request<'_>,
    now: DateTime<Utc>,
) -> Result<Decision, DecideError> {
    let (door, direction) = snapshot
        .reader_index(request.reader_id)
        .ok_or(DecideError::UnknownReader)?;
    Ok(evaluate(
        snapshot,
        presence,
        Who::Credential(request.credential),
        request.pin,
        door,
        direction,
        now,
        &mut |_, _, _| {},
    ))
}

/// Who is asking: a presented credential, or (for explanations) a person directly.
#[derive(Debug, Clone, Copy)]
pub(super) enum Who<'a> {
    Credential(&'a CredentialKey),
    Person(u32),
}

/// The pipeline, in DESIGN.md's order. `observe` sees each check that runs with its
/// status and, when it has one, the reason it produced; `decide` passes a no-op.
#[allow(clippy::too_many_arguments)]
pub(super) fn evaluate(
    snap: &Snapshot,
    presence: &Presence,
    who: Who<'_>,
    pin: Option<&str>,
    door: u32,
    direction: Direction,
    now: DateTime<Utc>,
    observe: &mut impl FnMut(Check, CheckStatus, Option<Reason>),
) -> Decision {
    let view = snap.door_view_at(door);
    let mut d = Decision {
        outcome: Outcome::Deny(DenyCode::UnknownCredential),
        reason: Reason::UnknownCredential,
        person_id: None,
        credential_id: None,
        door_id: view.door.id,
        zone_id: view.zone.id,
        site_id: view.site.id,
        direction,
        sensitivity: view.door.sensitivity,
        antipassback_zone: view.antipassback_zone.map(|z| z.id),
        soft_antipassback_violation: false,
    };

    macro_rules! check {
        ($check:expr, $result:expr) => {
            match $result {
                Ok(()) => observe($check, CheckStatus::Passed, None),
                Err(reason) => {
                    observe($check, CheckStatus::Failed, Some(reason));
                    return d.deny(reason);
                }
            }
        };
    }

    let (credential, person) = match who {
        Who::Credential(key) => {
            let Some(c) = snap.credential_index_by_key(key) else {
                observe(
                    Check::CredentialKnown,
                    CheckStatus::Failed,
                    Some(Reason::UnknownCredential),
                );
                return d.deny(Reason::UnknownCredential);
            };
            let credential = snap.credential_at(c);
            let person = snap.credential_owner(c);
            d.credential_id = Some(credential.id);
            d.person_id = Some(snap.person_at(person).id);
            observe(Check::CredentialKnown, CheckStatus::Passed, None);
            check!(Check::CredentialStatus, check_credential_status(credential));
            check!(
                Check::CredentialValidity,
                check_credential_validity(credential, now)
            );
            (Some(credential), person)
        }
        Who::Person(person) => {
            d.person_id = Some(snap.person_at(person).id);
            for c in [
                Check::CredentialKnown,
                Check::CredentialStatus,
                Check::CredentialValidity,
            ] {
                observe(c, CheckStatus::Skipped, None);
            }
            (None, person)
        }
    };

    let p = snap.person_at(person);
    check!(Check::PersonStatus, check_person_status(p));
    check!(Check::PersonValidity, check_person_validity(p, now));
    check!(Check::Lockdown, check_lockdown(view.site));

    match check_door_mode(snap, door, now) {
        Err(reason) => {
            observe(Check::DoorMode, CheckStatus::Failed, Some(reason));
            return d.deny(reason);
        }
        Ok(Some(free)) => {
            observe(Check::DoorMode, CheckStatus::Passed, Some(free));
            return d.grant(free, view.door.unlock_ms);
        }
        Ok(None) => observe(Check::DoorMode, CheckStatus::Passed, None),
    }

    let granted_by = match check_entitlements(snap, person, door, now) {
        Ok(g) => {
            observe(
                Check::Entitlement,
                CheckStatus::Passed,
                Some(Reason::Entitled(g)),
            );
            g
        }
        Err(reason) => {
            observe(Check::Entitlement, CheckStatus::Failed, Some(reason));
            return d.deny(reason);
        }
    };

    match check_pin(view.door, credential, pin) {
        PinCheck::NotRequired => observe(Check::Pin, CheckStatus::Skipped, None),
        PinCheck::Verified => observe(Check::Pin, CheckStatus::Passed, None),
        PinCheck::Missing(reason) => {
            observe(Check::Pin, CheckStatus::Failed, Some(reason));
            d.outcome = Outcome::PinRequired;
            d.reason = reason;
            return d;
        }
        PinCheck::Wrong(reason) => {
            observe(Check::Pin, CheckStatus::Failed, Some(reason));
            return d.deny(reason);
        }
    }

    // Anti-passback comes last; the risk policy will follow it (score >= block threshold
    // denies with `risk`, >= step-up asks a PIN).
    let unlock_ms = view.door.unlock_ms;
    antipassback_step(
        view.antipassback_zone,
        presence,
        d,
        granted_by,
        unlock_ms,
        observe,
    )
}

/// The pipeline's last step, anti-passback, for a person the entitlement `granted_by` lets
/// through: a grant (flagged in a soft zone) or a hard zone's denial.
fn antipassback_step(
    zone: Option<&Zone>,
    presence: &Presence,
    mut d: Decision,
    granted_by: GrantedBy,
    unlock_ms: u32,
    observe: &mut impl FnMut(Check, CheckStatus, Option<Reason>),
) -> Decision {
    let person_id = d.person_id.unwrap_or_default();
    d.soft_antipassback_violation = false;
    let mut reason = Reason::Entitled(granted_by);
    match check_antipassback(zone, presence, person_id, d.direction) {
        Passback::NotApplicable => observe(Check::Antipassback, CheckStatus::Skipped, None),
        Passback::Clear => observe(Check::Antipassback, CheckStatus::Passed, None),
        Passback::Violation { zone, mode, last } => {
            if mode == AntiPassback::Hard {
                let r = Reason::Antipassback {
                    zone_id: zone,
                    last_direction: last.direction,
                    last_at: last.at,
                };
                observe(Check::Antipassback, CheckStatus::Failed, Some(r));
                return d.deny(r);
            }
            reason = Reason::SoftAntipassback {
                zone_id: zone,
                last_direction: last.direction,
                last_at: last.at,
                granted_by,
            };
            d.soft_antipassback_violation = true;
            observe(Check::Antipassback, CheckStatus::Flagged, Some(reason));
        }
    }
    d.grant(reason, unlock_ms)
}

/// Anti-passback again for a decision made a moment ago, against `presence` as it is now:
/// `decide` reads presence without holding it, so the one step that depends on it is
/// repeated under the lock that notes the passage (`LivePolicy::settle`). Only a grant by
/// entitlement went through that step; anything else is returned as it was.
pub fn recheck_antipassback(snap: &Snapshot, presence: &Presence, d: Decision) -> Decision {
    let Outcome::Grant { unlock_ms } = d.outcome else {
        return d;
    };
    let (Reason::Entitled(granted_by) | Reason::SoftAntipassback { granted_by, .. }) = d.reason
    else {
        return d;
    };
    let zone = snap
        .door_view(d.door_id)
        .and_then(|view| view.antipassback_zone);
    antipassback_step(zone, presence, d, granted_by, unlock_ms, &mut |_, _, _| {})
}

pub(super) fn check_credential_status(c: &Credential) -> Result<(), Reason> {
    match c.status {
        CredentialStatus::Active => Ok(()),
        status => Err(Reason::CredentialInactive {
            credential_id: c.id,
            status,
        }),
    }
}

pub(super) fn check_credential_validity(c: &Credential, now: DateTime<Utc>) -> Result<(), Reason> {
    match c.valid_until {
        Some(valid_until) if valid_until <= now => Err(Reason::CredentialExpired {
            credential_id: c.id,
            valid_until,
        }),
        _ => Ok(()),
    }
}

pub(super) fn check_person_status(p: &Person) -> Result<(), Reason> {
    match p.status {
        PersonStatus::Active => Ok(()),
        status => Err(Reason::PersonInactive {
            person_id: p.id,
            status,
        }),
    }
}

pub(super) fn check_person_validity(p: &Person, now: DateTime<Utc>) -> Result<(), Reason> {
    if let Some(valid_from) = p.valid_from.filter(|from| now < *from) {
        return Err(Reason::PersonNotYetValid {
            person_id: p.id,
            valid_from,
        });
    }
    match p.valid_until {
        Some(valid_until) if valid_until <= now => Err(Reason::PersonExpired {
            person_id: p.id,
            valid_until,
        }),
        _ => Ok(()),
    }
}

pub(super) fn check_lockdown(site: &Site) -> Result<(), Reason> {
    if site.lockdown {
        Err(Reason::Lockdown { site_id: site.id })
    } else {
        Ok(())
    }
}

/// `Ok(Some(reason))`: free access, grant now. `Ok(None)`: go on with the entitlements.
pub(super) fn check_door_mode(
    snap: &Snapshot,
    door: u32,
    now: DateTime<Utc>,
) -> Result<Option<Reason>, Reason> {
    let d = &snap.doors[door as usize];
    match d.mode {
        DoorMode::Locked => return Err(Reason::DoorLocked { door_id: d.id }),
        DoorMode::Unlocked => return Ok(Some(Reason::DoorUnlocked { door_id: d.id })),
        DoorMode::Normal | DoorMode::CardAndPin => {}
    }
    let info = &snap.door_info[door as usize];
    if let (Some(tl), Some(schedule_id)) = (info.free_access, d.free_access_schedule_id)
        && snap.timeline_open(tl, now)
    {
        return Ok(Some(Reason::FreeAccessSchedule {
            door_id: d.id,
            schedule_id,
        }));
    }
    Ok(None)
}

/// One of a person's entitlements whose level covers a door, with the ways it does.
#[derive(Debug, Clone, Copy)]
pub(super) struct Covering<'a> {
    pub entitlement: &'a Entitlement,
    pub level: u32,
    pub covers: &'a [Cover],
}

/// The person's entitlements that cover `door`, in the person's entitlement order.
pub(super) fn covering_entitlements(
    snap: &Snapshot,
    person: u32,
    door: u32,
) -> impl Iterator<Item = Covering<'_>> {
    let (entitlements, levels) = snap.person_entitlements(person);
    entitlements
        .iter()
        .zip(levels)
        .filter_map(move |(entitlement, &level)| {
            let covers = snap.covers(door, level);
            (!covers.is_empty()).then_some(Covering {
                entitlement,
                level,
                covers,
            })
        })
}

pub(super) fn entitlement_expired(e: &Entitlement, now: DateTime<Utc>) -> bool {
    e.valid_until.is_some_and(|until| until <= now)
}

pub(super) fn granted_by(snap: &Snapshot, covering: &Covering<'_>, cover: &Cover) -> GrantedBy {
    GrantedBy {
        entitlement_id: covering.entitlement.id,
        level_id: snap.levels[covering.level as usize].id,
        schedule_id: snap.schedules[cover.schedule as usize].id,
        via_zone: cover.via_zone.map(|z| snap.zones[z as usize].id),
    }
}

/// The first unexpired covering entitlement with an open schedule grants; otherwise the
/// most telling denial: `schedule` beats `expired` beats `no_entitlement`.
pub(super) fn check_entitlements(
    snap: &Snapshot,
    person: u32,
    door: u32,
    now: DateTime<Utc>,
) -> Result<GrantedBy, Reason> {
    let mut latest_expired: Option<(&Entitlement, u32, DateTime<Utc>)> = None;
    let mut first_closed: Option<Reason> = None;
    for covering in covering_entitlements(snap, person, door) {
        let e = covering.entitlement;
        if entitlement_expired(e, now) {
            let until = e.valid_until.unwrap_or(now);
            if latest_expired.is_none_or(|(_, _, u)| until > u) {
                latest_expired = Some((e, covering.level, until));
            }
            continue;
        }
        for cover in covering.covers {
            if snap.timeline_open(cover.timeline, now) {
                return Ok(granted_by(snap, &covering, cover));
            }
            if first_closed.is_none() {
                let g = granted_by(snap, &covering, cover);
                first_closed = Some(Reason::OutsideSchedule {
                    entitlement_id: g.entitlement_id,
                    level_id: g.level_id,
                    schedule_id: g.schedule_id,
                });
            }
        }
    }
    if let Some(reason) = first_closed {
        return Err(reason);
    }
    if let Some((e, level, valid_until)) = latest_expired {
        return Err(Reason::EntitlementExpired {
            entitlement_id: e.id,
            level_id: snap.levels[level as usize].id,
            valid_until,
        });
    }
    Err(Reason::NoEntitlement {
        person_id: snap.person_at(person).id,
        door_id: snap.doors[door as usize].id,
    })
}

pub(super) enum PinCheck {
    NotRequired,
    Verified,
    Missing(Reason),
    Wrong(Reason),
}

/// Only card+PIN doors ask. Without a credential (explaining a person) the PIN cannot
/// be checked, so the answer is what a reader would get without one: a PIN prompt.
pub(super) fn check_pin(
    door: &Door,
    credential: Option<&Credential>,
    pin: Option<&str>,
) -> PinCheck {
    if door.mode != DoorMode::CardAndPin {
        return PinCheck::NotRequired;
    }
    match (credential, pin) {
        (Some(c), Some(pin)) => match &c.pin_hash {
            None => PinCheck::Wrong(Reason::PinNotSet {
                credential_id: c.id,
            }),
            Some(hash)
                if crate::identity::secret::verify_pin(
                    crate::identity::appliance_key::installed(),
                    hash,
                    pin,
                ) =>
            {
                PinCheck::Verified
            }
            Some(_) => PinCheck::Wrong(Reason::PinWrong {
                credential_id: c.id,
            }),
        },
        _ => PinCheck::Missing(Reason::PinRequired { door_id: door.id }),
    }
}

pub(super) enum Passback {
    /// The door is in no anti-passback zone.
    NotApplicable,
    /// Allowed: no passage recorded, or the last one went the other way.
    Clear,
    Violation {
        zone: i64,
        mode: AntiPassback,
        last: super::presence::PresenceEntry,
    },
}

/// Entering when last seen entering, or leaving when last seen leaving, is a passback.
/// `zone` is the anti-passback zone the door counts for.
pub(super) fn check_antipassback(
    zone: Option<&Zone>,
    presence: &Presence,
    person_id: i64,
    direction: Direction,
) -> Passback {
    let Some(zone) = zone else {
        return Passback::NotApplicable;
    };
    match presence.last(person_id, zone.id) {
        Some(last) if last.direction == direction => Passback::Violation {
            zone: zone.id,
            mode: zone.antipassback,
            last,
        },
        _ => Passback::Clear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::fixtures::*;
    use crate::policy::model::{HolidayRule, Target};

    fn code(d: &Decision) -> Option<DenyCode> {
        match d.outcome {
            Outcome::Deny(c) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn unknown_reader_is_the_only_error() {
        let snap = building().compile(WED_10);
        let card = card("01");
        let req = Request {
            reader_id: "nope",
            credential: &card,
            pin: None,
        };
        assert_eq!(
            decide(&snap, &Presence::new(), &req, WED_10),
            Err(DecideError::UnknownReader)
        );
    }

    #[test]
    fn unknown_credential() {
        let snap = building().compile(WED_10);
        let d = swipe(&snap, "office-in", "DEADBEEF", WED_10);
        assert_eq!(code(&d), Some(DenyCode::UnknownCredential));
        assert_eq!(d.reason, Reason::UnknownCredential);
        assert_eq!((d.person_id, d.credential_id), (None, None));
        assert_eq!(d.door_id, OFFICE_DOOR);
    }

    #[test]
    fn card_uid_is_matched_normalised() {
        let snap = building()
            .person(1)
            .card(11, 1, "04a1b2")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        assert!(swipe(&snap, "office-in", "04A1B2", WED_10).granted());
        assert_eq!(snap.credential(&card("04A1B2")).map(|c| c.id), Some(11));
    }

    #[test]
    fn inactive_credentials_are_denied_before_anything_else() {
        for status in [
            CredentialStatus::Lost,
            CredentialStatus::Stolen,
            CredentialStatus::Revoked,
        ] {
            let snap = building()
                .person(1)
                .card(11, 1, "01")
                .grant(21, 1, STAFF, None)
                .with(|d| {
                    d.credentials[0].status = status;
                    d.sites[0].lockdown = true;
                })
                .compile(WED_10);
            let d = swipe(&snap, "office-in", "01", WED_10);
            assert_eq!(code(&d), Some(DenyCode::Inactive));
            assert_eq!(
                d.reason,
                Reason::CredentialInactive {
                    credential_id: 11,
                    status
                }
            );
            assert_eq!((d.person_id, d.credential_id), (Some(1), Some(11)));
        }
    }

    #[test]
    fn expired_credential() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .with(|d| d.credentials[0].valid_until = Some(WED_10))
            .compile(WED_10);
        let d = swipe(&snap, "office-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::Expired));
        assert_eq!(
            d.reason,
            Reason::CredentialExpired {
                credential_id: 11,
                valid_until: WED_10
            }
        );
        let earlier = WED_10 - chrono::TimeDelta::seconds(1);
        assert!(swipe(&snap, "office-in", "01", earlier).granted());
    }

    #[test]
    fn suspended_or_terminated_person_is_inactive() {
        for status in [PersonStatus::Suspended, PersonStatus::Terminated] {
            let snap = building()
                .person(1)
                .card(11, 1, "01")
                .grant(21, 1, STAFF, None)
                .with(|d| d.people[0].status = status)
                .compile(WED_10);
            let d = swipe(&snap, "office-in", "01", WED_10);
            assert_eq!(code(&d), Some(DenyCode::Inactive));
            assert_eq!(
                d.reason,
                Reason::PersonInactive {
                    person_id: 1,
                    status
                }
            );
        }
    }

    #[test]
    fn person_validity_window() {
        let later = WED_10 + chrono::TimeDelta::hours(1);
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .with(|d| d.people[0].valid_from = Some(later))
            .compile(WED_10);
        let d = swipe(&snap, "office-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::Inactive));
        assert_eq!(
            d.reason,
            Reason::PersonNotYetValid {
                person_id: 1,
                valid_from: later
            }
        );
        assert!(swipe(&snap, "office-in", "01", later).granted());

        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .with(|d| d.people[0].valid_until = Some(WED_10))
            .compile(WED_10);
        let d = swipe(&snap, "office-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::Expired));
        assert_eq!(
            d.reason,
            Reason::PersonExpired {
                person_id: 1,
                valid_until: WED_10
            }
        );
    }

    #[test]
    fn lockdown_denies_at_that_site_only() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .grant(22, 1, PLANT, None)
            .with(|d| d.sites[0].lockdown = true)
            .compile(WED_10);
        let d = swipe(&snap, "office-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::Lockdown));
        assert_eq!(d.reason, Reason::Lockdown { site_id: HQ });
        // Lockdown beats even an unlocked door.
        assert_eq!(
            code(&swipe(&snap, "cafeteria-in", "01", WED_10)),
            Some(DenyCode::Lockdown)
        );
        // 10:00 Berlin is 04:00 in New York: use the plant's own office hours.
        assert!(
            swipe(
                &snap,
                "plant-in",
                "01",
                WED_10 + chrono::TimeDelta::hours(6)
            )
            .granted()
        );
    }

    #[test]
    fn locked_door_is_door_mode() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        let d = swipe(&snap, "vault-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::DoorMode));
        assert_eq!(
            d.reason,
            Reason::DoorLocked {
                door_id: VAULT_DOOR
            }
        );
    }

    #[test]
    fn unlocked_door_grants_free_access_without_entitlement() {
        let snap = building().person(1).card(11, 1, "01").compile(WED_10);
        let d = swipe(&snap, "cafeteria-in", "01", WED_10);
        assert_eq!(d.outcome, Outcome::Grant { unlock_ms: 5000 });
        assert_eq!(
            d.reason,
            Reason::DoorUnlocked {
                door_id: CAFETERIA_DOOR
            }
        );
    }

    #[test]
    fn free_access_schedule_grants_only_while_open() {
        let snap = building().person(1).card(11, 1, "01").compile(WED_10);
        let d = swipe(&snap, "lobby-in", "01", WED_10);
        assert!(d.granted());
        assert_eq!(
            d.reason,
            Reason::FreeAccessSchedule {
                door_id: LOBBY_DOOR,
                schedule_id: LOBBY_HOURS
            }
        );
        let d = swipe(&snap, "lobby-in", "01", WED_22);
        assert_eq!(code(&d), Some(DenyCode::NoEntitlement));
        assert_eq!(
            d.reason,
            Reason::NoEntitlement {
                person_id: 1,
                door_id: LOBBY_DOOR
            }
        );
    }

    #[test]
    fn no_entitlement() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, GARAGE, None)
            .compile(WED_10);
        let d = swipe(&snap, "office-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::NoEntitlement));
    }

    #[test]
    fn expired_entitlements() {
        let past = WED_10 - chrono::TimeDelta::days(3);
        let older = WED_10 - chrono::TimeDelta::days(30);
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, Some(older))
            .grant(22, 1, LAB_24_7, Some(past))
            .compile(WED_10);
        let d = swipe(&snap, "lab-in", "01", WED_10);
        assert_eq!(code(&d), Some(DenyCode::Expired));
        assert_eq!(
            d.reason,
            Reason::EntitlementExpired {
                entitlement_id: 22,
                level_id: LAB_24_7,
                valid_until: past
            }
        );
        // Expiry is exclusive: valid until 10:00 means not at 10:00.
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, Some(WED_10))
            .compile(WED_10);
        assert_eq!(
            code(&swipe(&snap, "office-in", "01", WED_10)),
            Some(DenyCode::Expired)
        );
    }

    #[test]
    fn outside_schedule_beats_expired() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, LAB_24_7, Some(WED_10 - chrono::TimeDelta::days(1)))
            .grant(22, 1, STAFF, None)
            .compile(WED_10);
        let d = swipe(&snap, "lab-in", "01", WED_22);
        assert_eq!(code(&d), Some(DenyCode::Schedule));
        assert_eq!(
            d.reason,
            Reason::OutsideSchedule {
                entitlement_id: 22,
                level_id: STAFF,
                schedule_id: OFFICE_HOURS
            }
        );
    }

    #[test]
    fn grant_via_door_item() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, LAB_24_7, None)
            .compile(WED_10);
        let d = swipe(&snap, "lab-in", "01", WED_22);
        assert_eq!(d.outcome, Outcome::Grant { unlock_ms: 5000 });
        assert_eq!(
            d.reason,
            Reason::Entitled(GrantedBy {
                entitlement_id: 21,
                level_id: LAB_24_7,
                schedule_id: ALWAYS,
                via_zone: None
            })
        );
    }

    #[test]
    fn grant_via_nested_zone() {
        // Staff covers the Office zone; the Lab zone is its child.
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        let d = swipe(&snap, "lab-in", "01", WED_10);
        assert_eq!(
            d.reason,
            Reason::Entitled(GrantedBy {
                entitlement_id: 21,
                level_id: STAFF,
                schedule_id: OFFICE_HOURS,
                via_zone: Some(OFFICE_ZONE)
            })
        );
        // ...but not the Campus doors above it.
        assert_eq!(
            code(&swipe(&snap, "main-in", "01", WED_10)),
            Some(DenyCode::NoEntitlement)
        );
        assert_eq!(
            code(&swipe(&snap, "lab-in", "01", WED_22)),
            Some(DenyCode::Schedule)
        );
    }

    #[test]
    fn first_open_entitlement_grants() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .grant(22, 1, LAB_24_7, None)
            .compile(WED_10);
        let by = |d: Decision| match d.reason {
            Reason::Entitled(g) => g.entitlement_id,
            other => panic!("{other:?}"),
        };
        assert_eq!(by(swipe(&snap, "lab-in", "01", WED_10)), 21);
        assert_eq!(by(swipe(&snap, "lab-in", "01", WED_22)), 22);
    }

    #[test]
    fn holidays_close_the_site_they_belong_to() {
        // 2026-05-01 is a Friday: a holiday at HQ only; 2026-12-25 everywhere. 16:00 in
        // Berlin is 10:00 in New York: inside both sites' office hours.
        let may_day = at_berlin("2026-05-01 16:00");
        let christmas = at_berlin("2026-12-25 16:00");
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .grant(22, 1, PLANT, None)
            .holiday(1, Some(HQ), "2026-05-01")
            .holiday(2, None, "2026-12-25")
            .compile(may_day);
        assert_eq!(
            code(&swipe(&snap, "office-in", "01", may_day)),
            Some(DenyCode::Schedule)
        );
        assert!(swipe(&snap, "plant-in", "01", may_day).granted());
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(22, 1, PLANT, None)
            .holiday(2, None, "2026-12-25")
            .compile(christmas);
        assert_eq!(
            code(&swipe(&snap, "plant-in", "01", christmas)),
            Some(DenyCode::Schedule)
        );
        // An Ignore schedule stays open on holidays.
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, LAB_24_7, None)
            .holiday(2, None, "2026-12-25")
            .compile(christmas);
        assert!(swipe(&snap, "lab-in", "01", christmas).granted());
    }

    #[test]
    fn card_and_pin() {
        let pin_hash = crate::identity::secret::hash_secret("4821").unwrap();
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .person(2)
            .card(12, 2, "02")
            .grant(22, 2, STAFF, None)
            .with(|d| d.credentials[0].pin_hash = Some(pin_hash))
            .compile(WED_10);
        let d = swipe(&snap, "server-in", "01", WED_10);
        assert_eq!(d.outcome, Outcome::PinRequired);
        assert_eq!(
            d.reason,
            Reason::PinRequired {
                door_id: SERVER_DOOR
            }
        );
        let d = swipe_pin(&snap, "server-in", "01", "1234", WED_10);
        assert_eq!(code(&d), Some(DenyCode::PinWrong));
        assert_eq!(d.reason, Reason::PinWrong { credential_id: 11 });
        let d = swipe_pin(&snap, "server-in", "01", "4821", WED_10);
        assert_eq!(d.outcome, Outcome::Grant { unlock_ms: 5000 });
        // No PIN set: prompted, then any PIN is wrong.
        assert_eq!(
            swipe(&snap, "server-in", "02", WED_10).outcome,
            Outcome::PinRequired
        );
        let d = swipe_pin(&snap, "server-in", "02", "4821", WED_10);
        assert_eq!(code(&d), Some(DenyCode::PinWrong));
        assert_eq!(d.reason, Reason::PinNotSet { credential_id: 12 });
        // The PIN is asked for only once the person may pass at all.
        assert_eq!(
            code(&swipe(&snap, "server-in", "01", WED_22)),
            Some(DenyCode::Schedule)
        );
    }

    #[test]
    fn hard_antipassback() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, LAB_24_7, None)
            .grant(22, 1, STAFF, None)
            .grant(23, 1, GARAGE, None)
            .compile(WED_10);
        let mut presence = Presence::new();
        let go = |presence: &mut Presence, reader: &str, minutes: i64| {
            let t = WED_10 + chrono::TimeDelta::minutes(minutes);
            let d = swipe_with(&snap, presence, reader, "01", None, t);
            if let Some(passage) = d.passage(t) {
                let _ = presence.pass(passage);
            }
            d
        };
        let d = go(&mut presence, "lab-in", 0);
        assert!(d.granted());
        assert_eq!(d.antipassback_zone, Some(LAB_ZONE));
        // In, in again: refused.
        let d = go(&mut presence, "lab-in", 1);
        assert_eq!(code(&d), Some(DenyCode::Antipassback));
        assert_eq!(
            d.reason,
            Reason::Antipassback {
                zone_id: LAB_ZONE,
                last_direction: Direction::In,
                last_at: WED_10
            }
        );
        // In, out, in: fine; out twice: refused.
        assert!(go(&mut presence, "lab-out", 2).granted());
        assert_eq!(
            code(&go(&mut presence, "lab-out", 3)),
            Some(DenyCode::Antipassback)
        );
        assert!(go(&mut presence, "lab-in", 4).granted());
        // Other zones are independent: the garage (soft) has no record yet, the office none at all.
        let d = go(&mut presence, "garage-in", 5);
        assert!(d.granted() && !d.soft_antipassback_violation);
        assert_eq!(d.antipassback_zone, Some(GARAGE_ZONE));
        assert!(go(&mut presence, "office-in", 6).granted());
        let d = go(&mut presence, "office-in", 7);
        assert!(d.granted() && d.antipassback_zone.is_none());
        // Denials are not recorded: still inside the lab since minute 4.
        assert_eq!(
            presence.last(1, LAB_ZONE),
            Some(crate::policy::presence::PresenceEntry {
                direction: Direction::In,
                at: WED_10 + chrono::TimeDelta::minutes(4),
                door_id: LAB_DOOR
            })
        );
        presence.forget_person(1);
        assert!(go(&mut presence, "lab-in", 8).granted());
        presence.clear();
        assert!(presence.is_empty());
    }

    #[test]
    fn soft_antipassback_grants_with_a_flag() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, GARAGE, None)
            .compile(WED_10);
        let mut presence = Presence::new();
        let d = swipe_with(&snap, &presence, "garage-in", "01", None, WED_10);
        assert!(d.granted() && !d.soft_antipassback_violation);
        let passage = d
            .passage(WED_10)
            .expect("a grant in the garage is a passage");
        let _ = presence.pass(passage);
        let d = swipe_with(&snap, &presence, "garage-in", "01", None, WED_10);
        assert!(d.granted());
        assert!(d.soft_antipassback_violation);
        assert_eq!(
            d.reason,
            Reason::SoftAntipassback {
                zone_id: GARAGE_ZONE,
                last_direction: Direction::In,
                last_at: WED_10,
                granted_by: GrantedBy {
                    entitlement_id: 21,
                    level_id: GARAGE,
                    schedule_id: ALWAYS,
                    via_zone: Some(GARAGE_ZONE)
                }
            }
        );
        let _ = presence.pass(d.passage(WED_10).unwrap());
        let d = swipe_with(&snap, &presence, "garage-out", "01", None, WED_10);
        assert!(d.granted() && !d.soft_antipassback_violation);
    }

    #[test]
    fn decision_serializes_for_the_api() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, STAFF, None)
            .compile(WED_10);
        let v = serde_json::to_value(swipe(&snap, "office-in", "01", WED_10)).unwrap();
        assert_eq!(
            v["outcome"],
            serde_json::json!({"type": "grant", "unlock_ms": 5000})
        );
        assert_eq!(v["reason"]["kind"], "entitled");
        assert_eq!(v["reason"]["level_id"], STAFF);
        assert_eq!(v["direction"], "in");
        let v = serde_json::to_value(swipe(&snap, "office-in", "01", WED_22)).unwrap();
        assert_eq!(
            v["outcome"],
            serde_json::json!({"type": "deny", "code": "schedule"})
        );
        assert_eq!(v["reason"]["kind"], "outside_schedule");
        assert_eq!(
            serde_json::to_value(Outcome::PinRequired).unwrap(),
            serde_json::json!({"type": "pin_required"})
        );
    }

    #[test]
    fn deny_codes_are_exactly_the_protocol_ones() {
        let names: Vec<_> = DenyCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "unknown_credential",
                "inactive",
                "expired",
                "no_entitlement",
                "schedule",
                "lockdown",
                "antipassback",
                "pin_wrong",
                "risk",
                "door_mode"
            ]
        );
    }

    #[test]
    fn same_zone_item_twice_with_holiday_rules() {
        // A level naming both the door and its zone with different schedules: either opens it.
        let snap = building()
            .schedule(9, HolidayRule::Ignore, &[("0 21 * * *", 120)])
            .level(
                99,
                &[
                    (Target::Zone(OFFICE_ZONE), OFFICE_HOURS),
                    (Target::Door(OFFICE_DOOR), 9),
                ],
            )
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, 99, None)
            .compile(WED_10);
        assert!(swipe(&snap, "office-in", "01", WED_10).granted());
        let d = swipe(&snap, "office-in", "01", WED_22);
        assert_eq!(
            d.reason,
            Reason::Entitled(GrantedBy {
                entitlement_id: 21,
                level_id: 99,
                schedule_id: 9,
                via_zone: None
            })
        );
    }

    #[test]
    fn two_swipes_decided_at_once_pass_anti_passback_once() {
        let snap = building()
            .person(1)
            .card(11, 1, "01")
            .grant(21, 1, LAB_24_7, None)
            .grant(23, 1, GARAGE, None)
            .compile(WED_10);
        let mut presence = Presence::new();
        // Both decided against the same presence, as two readers' swipes in flight are.
        let first = swipe_with(&snap, &presence, "lab-in", "01", None, WED_10);
        let second = swipe_with(&snap, &presence, "lab-in", "01", None, WED_10);
        assert!(first.granted() && second.granted());
        // Settled one after the other: the first passes, the second finds it.
        let first = recheck_antipassback(&snap, &presence, first);
        let _ = presence.pass(first.passage(WED_10).unwrap());
        let second = recheck_antipassback(&snap, &presence, second);
        assert_eq!(code(&second), Some(DenyCode::Antipassback));
        assert_eq!(second.reason.code(), "antipassback");
        assert!(second.passage(WED_10).is_none());
        // In a soft zone the second passes too, flagged.
        let a = swipe_with(&snap, &presence, "garage-in", "01", None, WED_10);
        let b = swipe_with(&snap, &presence, "garage-in", "01", None, WED_10);
        let a = recheck_antipassback(&snap, &presence, a);
        let _ = presence.pass(a.passage(WED_10).unwrap());
        let b = recheck_antipassback(&snap, &presence, b);
        assert!(b.granted() && b.soft_antipassback_violation);
        assert_eq!(b.reason.code(), "soft_antipassback");
        // Denials and free access are returned as they were.
        let unknown = swipe_with(&snap, &presence, "lab-in", "99", None, WED_10);
        assert_eq!(recheck_antipassback(&snap, &presence, unknown), unknown);
    }

    #[test]
    fn reason_codes_are_the_serialized_kinds() {
        let granted_by = GrantedBy {
            entitlement_id: 1,
            level_id: 2,
            schedule_id: 3,
            via_zone: None,
        };
        let reasons = [
            Reason::UnknownCredential,
            Reason::CredentialInactive {
                credential_id: 1,
                status: CredentialStatus::Lost,
            },
            Reason::CredentialExpired {
                credential_id: 1,
                valid_until: WED_10,
            },
            Reason::PersonInactive {
                person_id: 1,
                status: PersonStatus::Suspended,
            },
            Reason::PersonNotYetValid {
                person_id: 1,
                valid_from: WED_10,
            },
            Reason::PersonExpired {
                person_id: 1,
                valid_until: WED_10,
            },
            Reason::Lockdown { site_id: 1 },
            Reason::DoorLocked { door_id: 1 },
            Reason::DoorUnlocked { door_id: 1 },
            Reason::FreeAccessSchedule {
                door_id: 1,
                schedule_id: 1,
            },
            Reason::NoEntitlement {
                person_id: 1,
                door_id: 1,
            },
            Reason::EntitlementExpired {
                entitlement_id: 1,
                level_id: 1,
                valid_until: WED_10,
            },
            Reason::OutsideSchedule {
                entitlement_id: 1,
                level_id: 1,
                schedule_id: 1,
            },
            Reason::Entitled(granted_by),
            Reason::PinRequired { door_id: 1 },
            Reason::PinWrong { credential_id: 1 },
            Reason::PinNotSet { credential_id: 1 },
            Reason::Antipassback {
                zone_id: 1,
                last_direction: Direction::In,
                last_at: WED_10,
            },
            Reason::SoftAntipassback {
                zone_id: 1,
                last_direction: Direction::In,
                last_at: WED_10,
                granted_by,
            },
        ];
        for reason in reasons {
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json["kind"], reason.code(), "{json}");
        }
    }
}
