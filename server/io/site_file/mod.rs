//! The site file: a whole site as one TOML document (docs/site-file.md), imported as an
//! all-or-nothing upsert by natural keys and exported back; plus the people CSV of HR.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::entities::{
    self, ChangeContext, ChangeError, Entity, Upserted,
    credentials::{CredentialInput, Credentials},
    doors::{DoorInput, Doors},
    entitlements::{EntitlementInput, Entitlements},
    holidays::{HolidayInput, Holidays},
    levels::{LevelInput, LevelItem, Levels},
    people::{People, PersonInput},
    readers::{ReaderInput, Readers},
    schedules::{ScheduleInput, Schedules, WindowSpec},
    sites::{SiteInput, Sites},
    zones::{ZoneInput, Zones},
};
use crate::store::DbConnection;
use crate::store::rows::*;
use crate::store::schema;

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
    /// entitlements and records the importer for new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "toml_time::instant"
    )]
    pub granted_at: Option<DateTime<Utc>>,
}

/// One entry of the file that cannot be imported, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub place: String,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Counts of what an import did, per section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub sections: Vec<(&'static str, usize, usize, usize)>,
}

impl ImportSummary {
    fn add(&mut self, section: &'static str, outcome: Upserted) {
        let entry = match self.sections.iter_mut().find(|s| s.0 == section) {
            Some(e) => e,
            None => {
                self.sections.push((section, 0, 0, 0));
                let last = self.sections.len() - 1;
                &mut self.sections[last]
            }
        };
        match outcome {
            Upserted::Created => entry.1 += 1,
            Upserted::Updated => entry.2 += 1,
            Upserted::Unchanged => entry.3 += 1,
        }
    }

    pub fn created(&self) -> usize {
        self.sections.iter().map(|s| s.1).sum()
    }

    pub fn updated(&self) -> usize {
        self.sections.iter().map(|s| s.2).sum()
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>8} {:>8} {:>10}",
            "section", "created", "updated", "unchanged"
        )?;
        for (section, c, u, n) in &self.sections {
            writeln!(f, "{section:<14} {c:>8} {u:>8} {n:>10}")?;
        }
        Ok(())
    }
}

/// The import's state: errors so far and the ids of natural keys seen.
struct Importer<'c, 'a> {
    conn: &'c mut DbConnection,
    ctx: &'c ChangeContext<'a>,
    errors: Vec<ImportError>,
    summary: ImportSummary,
    done: usize,
    total: usize,
    progress: &'c dyn Fn(usize, usize),
}

impl Importer<'_, '_> {
    fn fail(&mut self, place: &str, message: impl Into<String>) {
        self.errors.push(ImportError {
            place: place.to_owned(),
            message: message.into(),
        });
    }

    fn tick(&mut self) {
        self.done += 1;
        (self.progress)(self.done, self.total);
    }

    /// Upserts one entry through the same validation as the API, recording any failure.
    fn put<E: Entity>(
        &mut self,
        section: &'static str,
        place: &str,
        existing: Option<i64>,
        input: E::Input,
    ) -> Option<i64> {
        self.tick();
        match entities::upsert::<E>(self.conn, existing, input, self.ctx) {
            Ok((id, outcome)) => {
                self.summary.add(section, outcome);
                Some(id)
            }
            Err(ChangeError::Invalid(fields)) => {
                for (field, messages) in fields.0 {
                    for m in messages {
                        self.fail(place, format!("{field}: {m}"));
                    }
                }
                None
            }
            Err(e) => {
                self.fail(place, e.to_string());
                None
            }
        }
    }

    /// Looks up a natural key, recording an error naming the missing thing.
    fn need(
        &mut self,
        place: &str,
        what: &str,
        key: &str,
        found: QueryResult<Option<i64>>,
    ) -> Option<i64> {
        match found {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                self.fail(
                    place,
                    format!("{what} '{key}' is neither in this file nor in the database"),
                );
                None
            }
            Err(e) => {
                self.fail(place, e.to_string());
                None
            }
        }
    }
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

/// Imports a site file in one transaction: either every entry is applied, or (if any entry
/// is invalid) nothing is, and every problem is reported with its place in the file.
pub fn import(
    conn: &mut DbConnection,
    text: &str,
    ctx: &ChangeContext<'_>,
    dry_run: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<ImportSummary, Vec<ImportError>> {
    let file = parse(text)?;
    let total = file.sites.len()
        + file.schedules.len()
        + file.holidays.len()
        + file.zones.len()
        + file.doors.len()
        + file.readers.len()
        + file.levels.len()
        + file.people.len()
        + file.credentials.len()
        + file.entitlements.len();
    run_import(conn, ctx, dry_run, total, progress, |imp| apply(imp, &file))
}

fn run_import(
    conn: &mut DbConnection,
    ctx: &ChangeContext<'_>,
    dry_run: bool,
    total: usize,
    progress: &dyn Fn(usize, usize),
    body: impl FnOnce(&mut Importer<'_, '_>),
) -> Result<ImportSummary, Vec<ImportError>> {
    enum Abort {
        Invalid(Vec<ImportError>),
        DryRun(ImportSummary),
        Db(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Db(e)
        }
    }
    let result = crate::store::write_transaction::<ImportSummary, Abort, _>(conn, |conn| {
        let mut imp = Importer {
            conn,
            ctx,
            errors: Vec::new(),
            summary: ImportSummary::default(),
            done: 0,
            total,
            progress,
        };
        body(&mut imp);
        if !imp.errors.is_empty() {
            return Err(Abort::Invalid(imp.errors));
        }
        if dry_run {
            return Err(Abort::DryRun(imp.summary));
        }
        let summary = imp.summary;
        crate::audit::append(
            conn,
            &crate::audit::AuditEntry {
                actor: ctx.actor,
                action: "import",
                entity: "site_file",
                entity_id: None,
                summary: format!(
                    "import: {} created, {} updated",
                    summary.created(),
                    summary.updated()
                ),
                before: None,
                after: None,
            },
            ctx.now,
        )?;
        Ok(summary)
    });
    match result {
        Ok(summary) => Ok(summary),
        Err(Abort::DryRun(summary)) => Ok(summary),
        Err(Abort::Invalid(errors)) => Err(errors),
        Err(Abort::Db(e)) => Err(vec![ImportError {
            place: "database".to_owned(),
            message: e.to_string(),
        }]),
    }
}

/// Records an error for every entry whose key an earlier entry of the same list already
/// holds, naming both places: imported one after the other, the second would silently
/// overwrite the first (a card moving to another person).
fn refuse_repeats<T, K: Eq + std::hash::Hash>(
    imp: &mut Importer<'_, '_>,
    entries: &[T],
    what: &str,
    key: impl Fn(&T) -> Option<K>,
    place: impl Fn(usize, &T) -> String,
) {
    let mut first: HashMap<K, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(k) = key(entry) else {
            continue;
        };
        match first.entry(k) {
            std::collections::hash_map::Entry::Occupied(earlier) => {
                let earlier = *earlier.get();
                let message = format!(
                    "{what} as {}; each may appear once in a file",
                    place(earlier, &entries[earlier])
                );
                imp.fail(&place(i, entry), message);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
}

/// What identifies a credential entry: its card (UID as stored) or Wiegand pair.
fn credential_key(c: &CredentialEntry) -> Option<crate::policy::CredentialKey> {
    match c.kind.as_str() {
        "card" => c
            .card_uid
            .as_deref()
            .and_then(|uid| crate::policy::CredentialKey::card(uid).ok()),
        "wiegand" => Some(crate::policy::CredentialKey::Wiegand {
            facility: u32::try_from(c.facility?).ok()?,
            number: u32::try_from(c.card_number?).ok()?,
        }),
        _ => None,
    }
}

fn credential_place(i: usize, c: &CredentialEntry) -> String {
    let label = c
        .card_uid
        .clone()
        .unwrap_or_else(|| format!("{}:{}", c.facility.unwrap_or(0), c.card_number.unwrap_or(0)));
    format!("credentials[{i}] ({label})")
}

fn person_place(i: usize, p: &PersonEntry) -> String {
    format!("people[{i}] ({})", p.employee_id)
}

/// Every key that appears twice in one section of the file, each with both places.
fn refuse_repeated_keys(imp: &mut Importer<'_, '_>, file: &SiteFile) {
    let trimmed = |text: &str| Some(text.trim().to_owned());
    refuse_repeats(
        imp,
        &file.sites,
        "the same site name",
        |s| trimmed(&s.name),
        |i, s| format!("sites[{i}] ({})", s.name),
    );
    refuse_repeats(
        imp,
        &file.schedules,
        "the same schedule name",
        |s| trimmed(&s.name),
        |i, s| format!("schedules[{i}] ({})", s.name),
    );
    refuse_repeats(
        imp,
        &file.holidays,
        "the same site and date",
        |h| Some((h.site.as_deref().map(str::trim).map(str::to_owned), h.date)),
        |i, h| format!("holidays[{i}] ({} {})", h.name, h.date),
    );
    refuse_repeats(
        imp,
        &file.zones,
        "the same zone (site and name)",
        |z| Some((z.site.trim().to_owned(), z.name.trim().to_owned())),
        |i, z| format!("zones[{i}] ({})", z.name),
    );
    refuse_repeats(
        imp,
        &file.doors,
        "the same door name",
        |d| trimmed(&d.name),
        |i, d| format!("doors[{i}] ({})", d.name),
    );
    refuse_repeats(
        imp,
        &file.readers,
        "the same reader id",
        |r| trimmed(&r.reader_id),
        |i, r| format!("readers[{i}] ({})", r.reader_id),
    );
    refuse_repeats(
        imp,
        &file.levels,
        "the same access level name",
        |l| trimmed(&l.name),
        |i, l| format!("levels[{i}] ({})", l.name),
    );
    refuse_repeats(
        imp,
        &file.people,
        "the same employee id",
        |p| trimmed(&p.employee_id),
        person_place,
    );
    refuse_repeats(
        imp,
        &file.credentials,
        "the same card",
        credential_key,
        credential_place,
    );
    refuse_repeats(
        imp,
        &file.entitlements,
        "the same person and access level",
        |e| Some((e.employee_id.trim().to_owned(), e.level.trim().to_owned())),
        |i, e| format!("entitlements[{i}] ({} → {})", e.employee_id, e.level),
    );
}

fn apply(imp: &mut Importer<'_, '_>, file: &SiteFile) {
    refuse_repeated_keys(imp, file);
    let mut site_ids: HashMap<&str, i64> = HashMap::new();
    for (i, s) in file.sites.iter().enumerate() {
        let place = format!("sites[{i}] ({})", s.name);
        let existing = entities::sites::id_by_name(imp.conn, s.name.trim())
            .ok()
            .flatten();
        let input = SiteInput {
            name: s.name.clone(),
            timezone: s.timezone.clone(),
            lockdown: s.lockdown,
        };
        if let Some(id) = imp.put::<Sites>("sites", &place, existing, input) {
            site_ids.insert(&s.name, id);
        }
    }
    let site = |imp: &mut Importer<'_, '_>, place: &str, name: &str| -> Option<i64> {
        let found = entities::sites::id_by_name(imp.conn, name);
        imp.need(place, "site", name, found)
    };
    for (i, s) in file.schedules.iter().enumerate() {
        let place = format!("schedules[{i}] ({})", s.name);
        let existing = entities::schedules::id_by_name(imp.conn, s.name.trim())
            .ok()
            .flatten();
        let input = ScheduleInput {
            name: s.name.clone(),
            description: s.description.clone(),
            holidays: s.holidays.clone(),
            windows: s.windows.clone(),
        };
        imp.put::<Schedules>("schedules", &place, existing, input);
    }
    let schedule = |imp: &mut Importer<'_, '_>, place: &str, name: &str| -> Option<i64> {
        let found = entities::schedules::id_by_name(imp.conn, name);
        imp.need(place, "schedule", name, found)
    };
    for (i, h) in file.holidays.iter().enumerate() {
        let place = format!("holidays[{i}] ({} {})", h.name, h.date);
        let site_id = match &h.site {
            Some(name) => match site(imp, &place, name) {
                Some(id) => Some(id),
                None => continue,
            },
            None => None,
        };
        let existing = entities::holidays::id_by_date(imp.conn, site_id, h.date)
            .ok()
            .flatten();
        let input = HolidayInput {
            site_id,
            name: h.name.clone(),
            date: h.date,
        };
        imp.put::<Holidays>("holidays", &place, existing, input);
    }
    // Zones may name parents that come later in the file: write them parents first.
    parents_first(
        imp,
        &file.zones,
        |z| (z.site.clone(), z.name.trim().to_owned()),
        |z| {
            z.parent
                .as_ref()
                .map(|p| (z.site.clone(), p.trim().to_owned()))
        },
        |i, z| format!("zones[{i}] ({})", z.name),
        "its parent zones form a cycle",
        |imp, place, z| {
            let Some(site_id) = site(imp, place, &z.site) else {
                return;
            };
            let parent_id = match &z.parent {
                Some(parent) => {
                    let found = entities::zones::id_by_name(imp.conn, site_id, parent);
                    match imp.need(place, "parent zone", parent, found) {
                        Some(id) => Some(id),
                        None => return,
                    }
                }
                None => None,
            };
            let existing = entities::zones::id_by_name(imp.conn, site_id, z.name.trim())
                .ok()
                .flatten();
            let input = ZoneInput {
                site_id,
                parent_id,
                name: z.name.clone(),
                antipassback: z.antipassback.clone(),
            };
            imp.put::<Zones>("zones", place, existing, input);
        },
    );
    for (i, d) in file.doors.iter().enumerate() {
        let place = format!("doors[{i}] ({})", d.name);
        let Some(site_id) = site(imp, &place, &d.site) else {
            continue;
        };
        let found = entities::zones::id_by_name(imp.conn, site_id, &d.zone);
        let Some(zone_id) = imp.need(&place, "zone", &d.zone, found) else {
            continue;
        };
        let free_access_schedule_id = match &d.free_access_schedule {
            Some(name) => match schedule(imp, &place, name) {
                Some(id) => Some(id),
                None => continue,
            },
            None => None,
        };
        let existing = entities::doors::id_by_name(imp.conn, d.name.trim())
            .ok()
            .flatten();
        let input = DoorInput {
            zone_id,
            name: d.name.clone(),
            unlock_ms: d.unlock_ms,
            held_open_s: d.held_open_s,
            mode: d.mode.clone(),
            free_access_schedule_id,
            sensitivity: d.sensitivity.clone(),
        };
        imp.put::<Doors>("doors", &place, existing, input);
    }
    let door = |imp: &mut Importer<'_, '_>, place: &str, name: &str| -> Option<i64> {
        let found = entities::doors::id_by_name(imp.conn, name);
        imp.need(place, "door", name, found)
    };
    for (i, r) in file.readers.iter().enumerate() {
        let place = format!("readers[{i}] ({})", r.reader_id);
        let Some(door_id) = door(imp, &place, &r.door) else {
            continue;
        };
        let existing = schema::readers::table
            .filter(schema::readers::reader_id.eq(r.reader_id.trim()))
            .select(schema::readers::id)
            .first::<i64>(imp.conn)
            .optional()
            .ok()
            .flatten();
        let input = ReaderInput {
            reader_id: r.reader_id.clone(),
            door_id,
            protocol: r.protocol.clone(),
            direction: r.direction.clone(),
            secret: r.secret.clone(),
            require_signed_events: r.require_signed_events,
            legacy: r.legacy,
            modbus_host: r.modbus_host.clone(),
            modbus_port: r.modbus_port,
            modbus_unit: r.modbus_unit,
        };
        imp.put::<Readers>("readers", &place, existing, input);
    }
    for (i, l) in file.levels.iter().enumerate() {
        let place = format!("levels[{i}] ({})", l.name);
        let mut items = Vec::new();
        let mut ok = true;
        for (j, item) in l.items.iter().enumerate() {
            let item_place = format!("{place} items[{j}]");
            let schedule_id = schedule(imp, &item_place, &item.schedule);
            let target = match (&item.door, &item.zone) {
                (Some(d), None) => door(imp, &item_place, d).map(|id| (Some(id), None)),
                (None, Some(z)) => {
                    let Some(site_name) = &item.site else {
                        imp.fail(
                            &item_place,
                            "a zone item needs `site` too (zone names are unique per site)",
                        );
                        ok = false;
                        continue;
                    };
                    site(imp, &item_place, site_name).and_then(|site_id| {
                        let found = entities::zones::id_by_name(imp.conn, site_id, z);
                        imp.need(&item_place, "zone", z, found)
                            .map(|id| (None, Some(id)))
                    })
                }
                _ => {
                    imp.fail(&item_place, "name exactly one of `door` and `zone`");
                    None
                }
            };
            match (target, schedule_id) {
                (Some((door_id, zone_id)), Some(schedule_id)) => items.push(LevelItem {
                    door_id,
                    zone_id,
                    schedule_id,
                }),
                _ => ok = false,
            }
        }
        if !ok {
            continue;
        }
        let existing = entities::levels::id_by_name(imp.conn, l.name.trim())
            .ok()
            .flatten();
        let input = LevelInput {
            name: l.name.clone(),
            description: l.description.clone(),
            items,
        };
        imp.put::<Levels>("levels", &place, existing, input);
    }
    import_people(imp, &file.people, &person_place);
    let person = |imp: &mut Importer<'_, '_>, place: &str, employee_id: &str| -> Option<i64> {
        let found = entities::people::id_by_employee_id(imp.conn, employee_id);
        imp.need(place, "person", employee_id, found)
    };
    for (i, c) in file.credentials.iter().enumerate() {
        let place = credential_place(i, c);
        let Some(person_id) = person(imp, &place, &c.employee_id) else {
            continue;
        };
        if c.pin.is_some() && c.pin_hash.is_some() {
            imp.fail(&place, "give `pin` or `pin_hash`, not both");
            continue;
        }
        // A PIN or its hash goes through the same upsert as the rest of the card, which
        // tells a new PIN from the stored one (a PIN is in no view) and audits the change.
        let input = CredentialInput {
            person_id,
            kind: c.kind.clone(),
            card_uid: c.card_uid.clone(),
            facility: c.facility,
            card_number: c.card_number,
            pin: c.pin.clone(),
            pin_hash: c.pin_hash.clone(),
            status: c.status.clone(),
            valid_until: c.valid_until,
        };
        let mut errors = crate::entities::FieldErrors::default();
        let existing = crate::entities::credentials::key_of(&input, &mut errors)
            .and_then(|key| credential_id(imp.conn, &key).ok().flatten());
        imp.put::<Credentials>("credentials", &place, existing, input);
    }
    for (i, e) in file.entitlements.iter().enumerate() {
        let place = format!("entitlements[{i}] ({} → {})", e.employee_id, e.level);
        let person_id = person(imp, &place, &e.employee_id);
        let found = entities::levels::id_by_name(imp.conn, &e.level);
        let level_id = imp.need(&place, "access level", &e.level, found);
        let (Some(person_id), Some(level_id)) = (person_id, level_id) else {
            continue;
        };
        let existing = schema::entitlements::table
            .filter(schema::entitlements::person_id.eq(person_id))
            .filter(schema::entitlements::level_id.eq(level_id))
            .select(schema::entitlements::id)
            .first::<i64>(imp.conn)
            .optional()
            .ok()
            .flatten();
        let input = EntitlementInput {
            person_id,
            level_id,
            valid_until: e.valid_until,
            justification: e.justification.clone(),
        };
        imp.put::<Entitlements>("entitlements", &place, existing, input);
    }
}

fn credential_id(
    conn: &mut DbConnection,
    key: &crate::policy::CredentialKey,
) -> QueryResult<Option<i64>> {
    use schema::credentials::dsl as c;
    match key {
        crate::policy::CredentialKey::Card { uid } => c::credentials
            .filter(c::card_uid.eq(uid))
            .select(c::id)
            .first(conn)
            .optional(),
        crate::policy::CredentialKey::Wiegand { facility, number } => c::credentials
            .filter(c::facility.eq(i32::try_from(*facility).unwrap_or(i32::MAX)))
            .filter(c::card_number.eq(i64::from(*number)))
            .select(c::id)
            .first(conn)
            .optional(),
    }
}

/// People name their managers by employee id; managers are written before their reports.
fn import_people(
    imp: &mut Importer<'_, '_>,
    people: &[PersonEntry],
    place: &dyn Fn(usize, &PersonEntry) -> String,
) {
    parents_first(
        imp,
        people,
        |p| p.employee_id.trim().to_owned(),
        |p| {
            p.manager
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        },
        place,
        "its managers form a cycle",
        |imp, place, p| {
            let manager_id = match p.manager.as_deref().map(str::trim) {
                Some(m) if !m.is_empty() => {
                    let found = entities::people::id_by_employee_id(imp.conn, m);
                    match imp.need(place, "manager", m, found) {
                        Some(id) => Some(id),
                        None => return,
                    }
                }
                _ => None,
            };
            let existing = entities::people::id_by_employee_id(imp.conn, p.employee_id.trim())
                .ok()
                .flatten();
            let input = PersonInput {
                employee_id: p.employee_id.clone(),
                name: p.name.clone(),
                department: p.department.clone(),
                title: p.title.clone(),
                manager_id,
                person_type: p.person_type.clone(),
                status: p.status.clone(),
                valid_from: p.valid_from,
                valid_until: p.valid_until,
                notes: p.notes.clone(),
            };
            imp.put::<People>("people", place, existing, input);
        },
    );
}

/// Writes entries that may name a parent entry of the same list (a zone's parent, a
/// person's manager) so that every parent in the file is written before its children,
/// whatever the file's order; entries left waiting on each other form a cycle.
#[allow(clippy::too_many_arguments)]
fn parents_first<T, K: Eq + std::hash::Hash>(
    imp: &mut Importer<'_, '_>,
    entries: &[T],
    key: impl Fn(&T) -> K,
    parent: impl Fn(&T) -> Option<K>,
    place: impl Fn(usize, &T) -> String,
    cycle: &str,
    mut write: impl FnMut(&mut Importer<'_, '_>, &str, &T),
) {
    let in_file: HashSet<K> = entries.iter().map(&key).collect();
    let mut written: HashSet<K> = HashSet::new();
    let mut pending: Vec<(usize, &T)> = entries.iter().enumerate().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for (i, entry) in pending {
            let own = key(entry);
            let waits = parent(entry)
                .is_some_and(|p| p != own && in_file.contains(&p) && !written.contains(&p));
            if waits {
                waiting.push((i, entry));
                continue;
            }
            write(imp, &place(i, entry), entry);
            written.insert(own);
        }
        if waiting.len() == before {
            for (i, entry) in waiting {
                imp.fail(&place(i, entry), cycle);
            }
            return;
        }
        pending = waiting;
    }
}

/// One row of an HR export. Column names are the header line; order does not matter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonCsvRow {
    employee_id: String,
    name: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    manager_employee_id: String,
    #[serde(default)]
    person_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
}

fn csv_time(value: &str) -> Result<Option<DateTime<Utc>>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| format!("'{value}' is neither a date (2026-12-31) nor an RFC 3339 time"))
}

/// Imports people from a CSV with a header line, all or nothing, like a site file. Every
/// problem is reported at once, each with its line (the header is line 1).
pub fn import_people_csv(
    conn: &mut DbConnection,
    reader: impl std::io::Read,
    ctx: &ChangeContext<'_>,
    dry_run: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<ImportSummary, Vec<ImportError>> {
    let mut entries = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let line_error = |line: u64, message: String| ImportError {
        place: format!("line {line}"),
        message,
    };
    let headers = match csv.byte_headers() {
        Ok(h) => csv::StringRecord::from_byte_record(h.clone()).map_err(|e| {
            vec![line_error(
                1,
                format!("the header line is not UTF-8 text: {e}"),
            )]
        })?,
        Err(e) => return Err(vec![line_error(1, e.to_string())]),
    };
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                errors.push(line_error(line, e.to_string()));
                if io {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        let text = match csv::StringRecord::from_byte_record(record.clone()) {
            Ok(text) => text,
            Err(e) => {
                let column = headers.get(e.utf8_error().field()).unwrap_or("a field");
                errors.push(line_error(
                    line,
                    format!("{column}: {}", crate::input::NOT_UTF8),
                ));
                continue;
            }
        };
        if let Some(i) = text.iter().position(|field| field.contains('\0')) {
            let column = headers.get(i).unwrap_or("a field");
            errors.push(line_error(line, format!("{column}: {}", crate::input::NUL)));
            continue;
        }
        let row: PersonCsvRow = match text.deserialize(Some(&headers)) {
            Ok(row) => row,
            Err(e) => {
                errors.push(line_error(line, e.to_string()));
                continue;
            }
        };
        let (valid_from, valid_until) =
            match (csv_time(&row.valid_from), csv_time(&row.valid_until)) {
                (Ok(f), Ok(u)) => (f, u),
                (Err(m), _) | (_, Err(m)) => {
                    errors.push(line_error(line, m));
                    continue;
                }
            };
        let or = |v: String, d: &str| if v.is_empty() { d.to_owned() } else { v };
        entries.push(PersonEntry {
            employee_id: row.employee_id,
            name: row.name,
            department: row.department,
            title: row.title,
            manager: (!row.manager_employee_id.is_empty()).then_some(row.manager_employee_id),
            person_type: or(row.person_type, "employee"),
            status: or(row.status, "active"),
            valid_from,
            valid_until,
            notes: String::new(),
        });
        lines.push(line);
    }
    let place = |i: usize, p: &PersonEntry| {
        format!(
            "line {} ({})",
            lines.get(i).copied().unwrap_or(0),
            p.employee_id
        )
    };
    // The lines that could not be read are reported with everything the import finds in the
    // others, and make it change nothing.
    let total = entries.len();
    let result = run_import(conn, ctx, dry_run, total, progress, |imp| {
        imp.errors.append(&mut errors);
        refuse_repeats(
            imp,
            &entries,
            "the same employee id",
            |p| Some(p.employee_id.trim().to_owned()),
            place,
        );
        import_people(imp, &entries, &place);
    });
    result.map_err(|mut errors| {
        let line_of = |e: &ImportError| {
            e.place
                .strip_prefix("line ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        errors.sort_by_key(line_of);
        errors
    })
}

/// Writes the whole site as a site file that `import` reads back to the same state.
pub fn export(conn: &mut DbConnection) -> anyhow::Result<String> {
    use schema::*;
    let site_rows: Vec<SiteRow> = sites::table
        .order(sites::id)
        .select(SiteRow::as_select())
        .load(conn)?;
    let site_name: HashMap<i64, String> =
        site_rows.iter().map(|s| (s.id, s.name.clone())).collect();
    let zone_rows: Vec<ZoneRow> = zones::table
        .order(zones::id)
        .select(ZoneRow::as_select())
        .load(conn)?;
    let zone_by_id: HashMap<i64, &ZoneRow> = zone_rows.iter().map(|z| (z.id, z)).collect();
    let schedule_views = entities::list::<Schedules>(
        conn,
        &Default::default(),
        entities::Page {
            offset: 0,
            limit: 1000,
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut schedule_list = schedule_views.items;
    let mut offset = 1000;
    while (schedule_list.len() as i64) < schedule_views.total {
        let more = entities::list::<Schedules>(
            conn,
            &Default::default(),
            entities::Page {
                offset,
                limit: 1000,
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        schedule_list.extend(more.items);
        offset += 1000;
    }
    let schedule_name: HashMap<i64, String> = schedule_list
        .iter()
        .map(|s| (s.id, s.name.clone()))
        .collect();
    let door_rows: Vec<DoorRow> = doors::table
        .order(doors::id)
        .select(DoorRow::as_select())
        .load(conn)?;
    let door_name: HashMap<i64, String> =
        door_rows.iter().map(|d| (d.id, d.name.clone())).collect();
    let people_rows: Vec<PersonRow> = people::table
        .order(people::id)
        .select(PersonRow::as_select())
        .load(conn)?;
    let employee_id: HashMap<i64, String> = people_rows
        .iter()
        .map(|p| (p.id, p.employee_id.clone()))
        .collect();
    let level_rows: Vec<LevelRow> = access_levels::table
        .order(access_levels::id)
        .select(LevelRow::as_select())
        .load(conn)?;
    let level_name: HashMap<i64, String> =
        level_rows.iter().map(|l| (l.id, l.name.clone())).collect();
    let items: Vec<LevelItemRow> = access_level_items::table
        .order((access_level_items::level_id, access_level_items::id))
        .select(LevelItemRow::as_select())
        .load(conn)?;
    let name_of = |map: &HashMap<i64, String>, id: i64| map.get(&id).cloned().unwrap_or_default();
    let file = SiteFile {
        version: FORMAT_VERSION,
        sites: site_rows
            .iter()
            .map(|s| SiteEntry {
                name: s.name.clone(),
                timezone: s.timezone.clone(),
                lockdown: s.lockdown,
            })
            .collect(),
        schedules: schedule_list
            .into_iter()
            .map(|s| ScheduleEntry {
                name: s.name,
                description: s.description,
                holidays: s.holidays,
                windows: s.windows,
            })
            .collect(),
        holidays: holidays::table
            .order((holidays::date, holidays::id))
            .select(HolidayRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|h| HolidayEntry {
                site: h.site_id.map(|s| name_of(&site_name, s)),
                name: h.name,
                date: h.date,
            })
            .collect(),
        zones: zone_rows
            .iter()
            .map(|z| ZoneEntry {
                site: name_of(&site_name, z.site_id),
                name: z.name.clone(),
                parent: z
                    .parent_id
                    .and_then(|p| zone_by_id.get(&p))
                    .map(|p| p.name.clone()),
                antipassback: z.antipassback.clone(),
            })
            .collect(),
        doors: door_rows
            .iter()
            .map(|d| {
                let zone = zone_by_id.get(&d.zone_id);
                DoorEntry {
                    name: d.name.clone(),
                    site: zone
                        .map(|z| name_of(&site_name, z.site_id))
                        .unwrap_or_default(),
                    zone: zone.map(|z| z.name.clone()).unwrap_or_default(),
                    unlock_ms: d.unlock_ms,
                    held_open_s: d.held_open_s,
                    mode: d.mode.clone(),
                    free_access_schedule: d
                        .free_access_schedule_id
                        .map(|s| name_of(&schedule_name, s)),
                    sensitivity: d.sensitivity.clone(),
                }
            })
            .collect(),
        readers: readers::table
            .order(readers::id)
            .select(ReaderRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| ReaderEntry {
                reader_id: r.reader_id,
                door: name_of(&door_name, r.door_id),
                protocol: r.protocol,
                direction: r.direction,
                secret: Some(r.secret),
                require_signed_events: r.require_signed_events,
                legacy: r.legacy,
                modbus_host: r.modbus_host,
                modbus_port: r.modbus_port,
                modbus_unit: r.modbus_unit,
            })
            .collect(),
        levels: level_rows
            .iter()
            .map(|l| LevelEntry {
                name: l.name.clone(),
                description: l.description.clone(),
                items: items
                    .iter()
                    .filter(|i| i.level_id == l.id)
                    .map(|i| {
                        let zone = i.zone_id.and_then(|z| zone_by_id.get(&z));
                        LevelItemEntry {
                            door: i.door_id.map(|d| name_of(&door_name, d)),
                            site: zone.map(|z| name_of(&site_name, z.site_id)),
                            zone: zone.map(|z| z.name.clone()),
                            schedule: name_of(&schedule_name, i.schedule_id),
                        }
                    })
                    .collect(),
            })
            .collect(),
        people: people_rows
            .iter()
            .map(|p| PersonEntry {
                employee_id: p.employee_id.clone(),
                name: p.name.clone(),
                department: p.department.clone(),
                title: p.title.clone(),
                manager: p.manager_id.map(|m| name_of(&employee_id, m)),
                person_type: p.person_type.clone(),
                status: p.status.clone(),
                valid_from: p.valid_from.map(|t| t.and_utc()),
                valid_until: p.valid_until.map(|t| t.and_utc()),
                notes: p.notes.clone(),
            })
            .collect(),
        credentials: credentials::table
            .order(credentials::id)
            .select(CredentialRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|c| CredentialEntry {
                employee_id: name_of(&employee_id, c.person_id),
                kind: c.kind,
                card_uid: c.card_uid,
                facility: c.facility,
                card_number: c.card_number,
                pin: None,
                pin_hash: c.pin_hash,
                status: c.status,
                valid_until: c.valid_until.map(|t| t.and_utc()),
            })
            .collect(),
        entitlements: entitlements::table
            .order(entitlements::id)
            .select(EntitlementRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|e| EntitlementEntry {
                employee_id: name_of(&employee_id, e.person_id),
                level: name_of(&level_name, e.level_id),
                valid_until: e.valid_until.map(|t| t.and_utc()),
                justification: e.justification,
                granted_by: Some(e.granted_by),
                granted_at: Some(e.granted_at.and_utc()),
            })
            .collect(),
    };
    let body = toml::to_string(&file)?;
    Ok(format!(
        "# Gatehouse site file (format version {FORMAT_VERSION}), written by `gatehouse export`.\n\
         # It holds reader secrets and PIN hashes: keep it as safe as the appliance itself.\n\n{body}"
    ))
}
