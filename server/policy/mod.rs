//! The access decision, pure: the policy model, its compiled snapshot and schedules,
//! anti-passback state, `decide`, its trace `explain`, and "why?" asked by names.

pub mod decide;
pub mod directory;
pub mod explain;
pub mod explain_query;
pub mod model;
pub mod presence;
pub mod schedule;
pub mod snapshot;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod patch_tests;

pub use decide::{
    Check, CheckStatus, DecideError, Decision, DenyCode, GrantedBy, Outcome, Reason, Request,
    decide, recheck_antipassback,
};
pub use directory::{DirectoryPage, PeopleQuery};
pub use explain::{
    CheckResult, CoveringEntitlement, ExplainError, Explanation, Named, Subject, Via, explain,
    explain_at, when_at,
};
pub use model::{
    AccessLevel, AntiPassback, Credential, CredentialKey, CredentialKeyError, CredentialStatus,
    Direction, Door, DoorMode, Entitlement, Holiday, HolidayRule, LevelItem, ParseEnumError,
    Person, PersonStatus, PolicyData, Reader, Schedule, Sensitivity, Site, Target, Window, Zone,
    format_reset_time, parse_reset_time,
};
pub use presence::{Passage, Presence, PresenceEntry, Reservation};
pub use schedule::{ParsedSchedule, ParsedWindow, ScheduleError, is_open_exact, parse_window};
pub use snapshot::{
    CompileError, Counts, DoorView, PatchError, PersonRecord, ReaderView, Snapshot,
};
