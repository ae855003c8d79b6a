//! The site file's format: one TOML document whose sections hold the site's entities by
//! their natural keys (names, employee ids, card UIDs), and `parse`, which checks it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::ImportError;
use crate::entities::schedules::WindowSpec;

pub const FORMAT_VERSION: u32 = 1;

/// TOML has its own date and date-time values (`date = 2026-12-25`); these read them (or an
/// RFC 3339 string) into chrono types and write them back as TOML values.
mod toml_time {
    use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Toml(toml::value::Datetime),
        Text(String),
    }

    fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Raw>::deserialize(d)?.map(|raw| match raw {
            Raw::Toml(t) => t.to_string(),
            Raw::Text(s) => s,
        }))
    }

    fn toml_value<S: Serializer>(s: S, text: &str) -> Result<S::Ok, S::Error> {
        match text.parse::<toml::value::Datetime>() {
            Ok(t) => serde::Serialize::serialize(&t, s),
            Err(_) => s.serialize_str(text),
        }
    }

    pub mod instant {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match text(d)? {
                None => Ok(None),
                Some(t) => DateTime::parse_from_rfc3339(&t)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|_| D::Error::custom(format!("'{t}' is not a date and time with an offset, such as 2026-12-31T17:00:00Z"))),
            }
        }
        pub fn serialize<S: Serializer>(
            v: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(t) => toml_value(s, &t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
                None => s.serialize_none(),
            }
        }
    }

    pub mod date {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
            let t = text(d)?.ok_or_else(|| D::Error::custom("a date is required"))?;
            NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                .map_err(|_| D::Error::custom(format!("'{t}' is not a date such as 2026-12-25")))
        }
        pub fn serialize<S: Serializer>(v: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
            toml_value(s, &v.format("%Y-%m-%d").to_string())
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<HolidayEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub doors: Vec<DoorEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<ReaderEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<LevelEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub people: Vec<PersonEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<EntitlementEntry>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    pub name: String,
    pub timezone: String,
    #[serde(default)]
    pub lockdown: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default = "closed")]
    pub holidays: String,
    pub windows: Vec<WindowSpec>,
}

fn closed() -> String {
    "closed".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HolidayEntry {
    /// Leave out for a holiday at every site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub name: String,
    #[serde(with = "toml_time::date")]
    pub date: NaiveDate,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneEntry {
    pub site: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default = "off")]
    pub antipassback: String,
    /// The daily anti-passback reset, "HH:MM" on the site's clock; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_reset: Option<String>,
}

fn off() -> String {
    "off".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DoorEntry {
    pub name: String,
    pub site: String,
    pub zone: String,
    #[serde(default = "crate::entities::doors::default_unlock_ms")]
    pub unlock_ms: i32,
    #[serde(default = "crate::entities::doors::default_held_open_s")]
    pub held_open_s: i32,
    #[serde(default = "crate::entities::doors::default_mode")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_access_schedule: Option<String>,
    #[serde(default = "crate::entities::doors::default_sensitivity")]
    pub sensitivity: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReaderEntry {
    pub reader_id: String,
    pub door: String,
    #[serde(default = "mqtt")]
    pub protocol: String,
    #[serde(default = "inward")]
    pub direction: String,
    /// Leave out on import to have one generated; export always writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default)]
    pub require_signed_events: bool,
    /// May send bare (v1) events; left out, the reader must seal them (docs/protocol.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legacy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modbus_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modbus_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modbus_unit: Option<i32>,
}

fn mqtt() -> String {
    "mqtt".to_owned()
}
fn inward() -> String {
    "in".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LevelEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub items: Vec<LevelItemEntry>,
}

/// A door (by name), or a zone (by site and name), on a schedule (by name).
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LevelItemEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub schedule: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PersonEntry {
    pub employee_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub department: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The manager's employee id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    #[serde(default = "employee")]
    pub person_type: String,
    #[serde(default = "active")]
    pub status: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "toml_time::instant"
    )]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "toml_time::instant"
    )]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

fn employee() -> String {
    "employee".to_owned()
}
fn active() -> String {
    "active".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialEntry {
    pub employee_id: String,
    #[serde(default = "card")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_number: Option<i64>,
    /// A PIN in clear, hashed on import. Export never writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// An argon2id PHC string, as export writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_hash: Option<String>,
    #[serde(default = "active")]
    pub status: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "toml_time::instant"
    )]
    pub valid_until: Option<DateTime<Utc>>,
}

fn card() -> String {
    "card".to_owned()
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementEntry {
    pub employee_id: String,
    pub level: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "toml_time::instant"
    )]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub justification: String,
    /// Written by export for the record; import keeps the original grantor of existing
    /// entitlements and records the importer for new ones. `granted_at` is kept for a new
    /// entitlement (the real grant time, from a previous system); an existing one keeps its
    /// own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "toml_time::instant"
    )]
    pub granted_at: Option<DateTime<Utc>>,
}

/// Parses a site file, naming the line of any syntax or type error.
pub fn parse(text: &str) -> Result<SiteFile, Vec<ImportError>> {
    let file: SiteFile = toml::from_str(text).map_err(|e| {
        vec![ImportError {
            place: "site file".to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        }]
    })?;
    // TOML's `\u0000` is the one way a NUL gets in: refused wherever it is, with its path.
    if let Ok(value) = serde_json::to_value(&file) {
        let nul = crate::input::nul_paths(&value);
        if !nul.is_empty() {
            return Err(nul
                .into_iter()
                .map(|place| ImportError {
                    place,
                    message: crate::input::NUL.to_owned(),
                })
                .collect());
        }
    }
    if file.version != FORMAT_VERSION {
        return Err(vec![ImportError {
            place: "version".to_owned(),
            message: format!(
                "this gatehouse reads site file version {FORMAT_VERSION}, the file says {}",
                file.version
            ),
        }]);
    }
    Ok(file)
}
