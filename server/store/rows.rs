//! Row types: one struct per table, read with `Selectable` so that column order never
//! matters. The web and site-file layers turn these into their own views.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sites)]
pub struct SiteRow {
    pub id: i64,
    pub name: String,
    pub timezone: String,
    pub lockdown: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = schedules)]
pub struct ScheduleRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub holidays: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = schedule_windows)]
pub struct WindowRow {
    pub id: i64,
    pub schedule_id: i64,
    pub position: i32,
    pub cron: String,
    pub duration_min: i32,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = holidays)]
pub struct HolidayRow {
    pub id: i64,
    pub site_id: Option<i64>,
    pub name: String,
    pub date: NaiveDate,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = zones)]
pub struct ZoneRow {
    pub id: i64,
    pub site_id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub antipassback: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub presence_reset: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = doors)]
pub struct DoorRow {
    pub id: i64,
    pub zone_id: i64,
    pub name: String,
    pub unlock_ms: i32,
    pub held_open_s: i32,
    pub mode: String,
    pub free_access_schedule_id: Option<i64>,
    pub sensitivity: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = readers)]
pub struct ReaderRow {
    pub id: i64,
    pub reader_id: String,
    pub door_id: i64,
    pub protocol: String,
    pub direction: String,
    pub secret: String,
    pub require_signed_events: bool,
    pub modbus_host: Option<String>,
    pub modbus_port: Option<i32>,
    pub modbus_unit: Option<i32>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub legacy: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = people)]
pub struct PersonRow {
    pub id: i64,
    pub employee_id: String,
    pub name: String,
    pub department: String,
    pub title: String,
    pub manager_id: Option<i64>,
    pub person_type: String,
    pub status: String,
    pub valid_from: Option<NaiveDateTime>,
    pub valid_until: Option<NaiveDateTime>,
    pub notes: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct CredentialRow {
    pub id: i64,
    pub person_id: i64,
    pub kind: String,
    pub card_uid: Option<String>,
    pub facility: Option<i32>,
    pub card_number: Option<i64>,
    pub pin_hash: Option<String>,
    pub status: String,
    pub valid_until: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_levels)]
pub struct LevelRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = access_level_items)]
pub struct LevelItemRow {
    pub id: i64,
    pub level_id: i64,
    pub door_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub schedule_id: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = entitlements)]
pub struct EntitlementRow {
    pub id: i64,
    pub person_id: i64,
    pub level_id: i64,
    pub granted_by: String,
    pub granted_at: NaiveDateTime,
    pub valid_until: Option<NaiveDateTime>,
    pub justification: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = admin_users)]
pub struct AdminUserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
    pub failed_logins: i32,
    pub locked_until: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    pub id: i64,
    pub admin_user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked: bool,
    /// `read_only` or `full` (`admins::TokenScope`).
    pub scope: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    pub seq: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub summary: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub prev_hash: String,
    pub hash: String,
    /// Chained with the appliance key (HMAC-SHA256); false for entries made before.
    pub keyed: bool,
    #[diesel(embed)]
    pub provenance: ProvenanceColumns,
    /// Which fields the hash covers: 1 before provenance was recorded, 2 with it
    /// (`audit::HASH_VERSION`).
    pub hash_version: i32,
}

/// An audit entry's provenance as stored (`provenance::Provenance` is the typed value):
/// who asked (a kind, and the id and name that kind has), on whose behalf (a token's
/// admin), who approved it, and through what.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct ProvenanceColumns {
    pub requested_by_kind: String,
    pub requested_by_id: Option<i64>,
    pub requested_by_name: String,
    pub on_behalf_of_id: Option<i64>,
    pub on_behalf_of_name: Option<String>,
    pub approved_by_id: Option<i64>,
    pub approved_by_name: Option<String>,
    pub via: String,
    pub via_detail: Option<String>,
}

/// The last run of a job that runs once for all instances (`jobs.rs`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = job_runs, primary_key(job))]
pub struct JobRunRow {
    pub job: String,
    /// The scheduled time this run was for.
    pub due_at: NaiveDateTime,
    pub started_at: NaiveDateTime,
    pub duration_ms: i64,
    pub succeeded: bool,
    /// What the run did, or why it failed.
    pub detail: String,
    /// Which appliance instance ran it (host and process id).
    pub instance: String,
}
