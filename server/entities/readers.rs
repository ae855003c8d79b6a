//! Readers: the card readers and I/O modules at a door, with their wire id, protocol,
//! direction (for anti-passback) and the secret that keys their message authentication.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower, require_ref,
};
use crate::clock::utc;
use std::sync::RwLock;

use gatehouse_drivers::networks::Networks;

use crate::policy::Direction;
use crate::store::DbConnection;
use crate::store::rows::ReaderRow;
use crate::store::schema::{doors, readers};

pub struct Readers;

/// How a reader talks to the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Mqtt,
    Modbus,
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mqtt" => Ok(Protocol::Mqtt),
            "modbus" => Ok(Protocol::Modbus),
            other => Err(format!("'{other}' is not a protocol; use mqtt or modbus")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReaderView {
    pub id: i64,
    /// The id the reader uses on the wire (MQTT topic segment and broker username).
    pub reader_id: String,
    pub door_id: i64,
    /// `mqtt` or `modbus`.
    pub protocol: String,
    /// `in` or `out` of the door's zone.
    pub direction: String,
    /// A legacy reader's bare (v1) events without a valid mac are refused when true.
    pub require_signed_events: bool,
    /// May send bare (v1) events; every other MQTT reader must seal them (v2,
    /// docs/protocol.md). Readers registered before sealed events are legacy.
    pub legacy: bool,
    pub modbus_host: Option<String>,
    pub modbus_port: Option<i32>,
    pub modbus_unit: Option<i32>,
    /// Shown once, in the answer that registers the reader; never again.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReaderInput {
    pub reader_id: String,
    pub door_id: i64,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(default = "default_direction")]
    pub direction: String,
    /// Leave out to have a strong secret generated (on create) or kept (on update).
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub require_signed_events: bool,
    /// Leave out (false) for a reader that seals its events; true lets it send bare (v1)
    /// events, which only a broker keeping each reader to its own topics protects.
    #[serde(default)]
    pub legacy: bool,
    #[serde(default)]
    pub modbus_host: Option<String>,
    #[serde(default)]
    pub modbus_port: Option<i32>,
    #[serde(default)]
    pub modbus_unit: Option<i32>,
}

fn default_protocol() -> String {
    "mqtt".to_owned()
}
fn default_direction() -> String {
    Direction::In.as_str().to_owned()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReaderFilter {
    pub door_id: Option<i64>,
    /// `mqtt` or `modbus`.
    pub protocol: Option<String>,
    /// Case-insensitive part of the wire id.
    pub q: Option<String>,
}

impl From<ReaderRow> for ReaderView {
    fn from(r: ReaderRow) -> Self {
        ReaderView {
            id: r.id,
            reader_id: r.reader_id,
            door_id: r.door_id,
            protocol: r.protocol,
            direction: r.direction,
            require_signed_events: r.require_signed_events,
            legacy: r.legacy,
            modbus_host: r.modbus_host,
            modbus_port: r.modbus_port,
            modbus_unit: r.modbus_unit,
            secret: None,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

/// 32 random bytes as hex: what a reader is given when none is supplied.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Where reader hosts may be (`[readers] allowed_networks`). The entity layer has no config
/// of its own, so `serve` and the CLI set this once at start from theirs; until then (and in
/// a process that never sets it) it is the default: loopback and the private ranges.
static ALLOWED_NETWORKS: RwLock<Option<Networks>> = RwLock::new(None);

/// Holds every later reader write to these ranges (see [`ALLOWED_NETWORKS`]).
pub fn set_allowed_networks(networks: Networks) {
    match ALLOWED_NETWORKS.write() {
        Ok(mut slot) => *slot = Some(networks),
        Err(poisoned) => *poisoned.into_inner() = Some(networks),
    }
}

fn allowed_networks() -> Networks {
    let slot = match ALLOWED_NETWORKS.read() {
        Ok(slot) => slot.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    slot.unwrap_or_else(Networks::private)
}

/// A reader's host: an IP address inside the allowed networks, or a DNS name (letters,
/// digits, '-' and '.', labels of 1 to 63 characters, 253 in all), whose addresses the
/// Modbus driver checks against the same networks each time it connects. No port, spaces
/// or control characters: a host is written into logs and connection attempts.
pub fn check_host(host: &str, allowed: &Networks) -> Result<(), String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        if ip.is_unspecified() || ip.is_multicast() || !allowed.contains(ip) {
            return Err(format!(
                "{ip} is outside the networks readers may be on ([readers] allowed_networks: {allowed})"
            ));
        }
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{host:?} is neither an IP address nor a DNS name (letters, digits, '-' and '.'; \
             the port goes in modbus_port)"
        ));
    }
    // All digits and dots is an IPv4 address mistyped, not a name.
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{host:?} is not a valid IPv4 address"));
    }
    Ok(())
}

/// A reader id is an MQTT topic segment and a broker username: keep it plain.
pub fn valid_reader_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Entity for Readers {
    const NAME: &'static str = "reader";
    const COLLECTION: &'static str = "readers";
    type View = ReaderView;
    type Input = ReaderInput;
    type Filter = ReaderFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &ReaderFilter,
        page: Page,
    ) -> QueryResult<(Vec<ReaderView>, i64)> {
        let query = || {
            let mut q = readers::table.into_boxed();
            if let Some(door) = filter.door_id {
                q = q.filter(readers::door_id.eq(door));
            }
            if let Some(protocol) = &filter.protocol {
                q = q.filter(readers::protocol.eq(protocol.clone()));
            }
            if let Some(text) = &filter.q {
                q = q.filter(
                    lower(readers::reader_id)
                        .like(like_pattern(text))
                        .escape('\\'),
                );
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(readers::reader_id)
            .offset(page.offset)
            .limit(page.limit)
            .select(ReaderRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(ReaderView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<ReaderView>> {
        readers::table
            .find(id)
            .select(ReaderRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(ReaderView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: ReaderInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        let reader_id = input.reader_id.trim().to_owned();
        if !valid_reader_id(&reader_id) {
            errors.add(
                "reader_id",
                "must be 1 to 64 letters, digits, '-', '_' or '.' (it is an MQTT topic segment)",
            );
        }
        let protocol = errors.parse::<Protocol>("protocol", &input.protocol);
        let direction = errors.canonical::<Direction>("direction", &input.direction);
        if let Some(secret) = &input.secret
            && (secret.len() < 16 || secret.len() > 256)
        {
            errors.add(
                "secret",
                "must be 16 to 256 characters; leave it out to have one generated",
            );
        }
        if protocol == Some(Protocol::Modbus) {
            match input.modbus_host.as_deref().map(str::trim) {
                None | Some("") => errors.add(
                    "modbus_host",
                    "a Modbus reader needs the host of its I/O module",
                ),
                Some(host) => {
                    if let Err(message) = check_host(host, &allowed_networks()) {
                        errors.add("modbus_host", message);
                    }
                }
            }
            if let Some(port) = input.modbus_port
                && !(1..=65535).contains(&port)
            {
                errors.add("modbus_port", "must be between 1 and 65535");
            }
            if let Some(unit) = input.modbus_unit
                && !(0..=255).contains(&unit)
            {
                errors.add("modbus_unit", "must be between 0 and 255");
            }
            if input.require_signed_events {
                errors.add(
                    "require_signed_events",
                    "Modbus has no message authentication: only MQTT readers can sign events",
                );
            }
            if input.legacy {
                errors.add(
                    "legacy",
                    "Modbus readers send no events on the wire: only an MQTT reader can be legacy",
                );
            }
        }
        let door_exists =
            diesel::select(exists(doors::table.find(input.door_id))).get_result(conn)?;
        require_ref(&mut errors, "door_id", "door", input.door_id, door_exists);
        let taken: Option<i64> = readers::table
            .filter(readers::reader_id.eq(&reader_id))
            .select(readers::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add(
                "reader_id",
                format!("a reader '{reader_id}' is already registered"),
            );
        }
        errors.into_result()?;
        let modbus = protocol == Some(Protocol::Modbus);
        let now = ctx.stamp();
        let values = (
            readers::reader_id.eq(&reader_id),
            readers::door_id.eq(input.door_id),
            readers::protocol.eq(if modbus { "modbus" } else { "mqtt" }),
            readers::direction.eq(&direction),
            readers::require_signed_events.eq(input.require_signed_events),
            readers::legacy.eq(input.legacy),
            readers::modbus_host.eq(input
                .modbus_host
                .map(|h| h.trim().to_owned())
                .filter(|_| modbus)),
            readers::modbus_port.eq(modbus.then(|| input.modbus_port.unwrap_or(502))),
            readers::modbus_unit.eq(modbus.then(|| input.modbus_unit.unwrap_or(1))),
            readers::updated_at.eq(now),
        );
        match id {
            None => {
                let secret = input.secret.unwrap_or_else(generate_secret);
                Ok(diesel::insert_into(readers::table)
                    .values((
                        values,
                        readers::secret.eq(secret),
                        readers::created_at.eq(now),
                    ))
                    .returning(readers::id)
                    .get_result(conn)?)
            }
            Some(id) => {
                diesel::update(readers::table.find(id))
                    .set(values)
                    .execute(conn)?;
                if let Some(secret) = input.secret {
                    diesel::update(readers::table.find(id))
                        .set(readers::secret.eq(secret))
                        .execute(conn)?;
                }
                Ok(id)
            }
        }
    }

    /// A reader's secret is in no view: one given that differs from the stored one is a
    /// change ("secret changed", never the secret), and one that is already the reader's
    /// is taken out of the input, so that rewriting it is no change.
    fn unseen_changes(
        conn: &mut DbConnection,
        id: i64,
        input: &mut ReaderInput,
    ) -> Result<Vec<&'static str>, ChangeError> {
        let Some(given) = input.secret.as_deref() else {
            return Ok(Vec::new());
        };
        let stored: Option<String> = readers::table
            .find(id)
            .select(readers::secret)
            .first(conn)
            .optional()?;
        match stored {
            Some(stored) if crate::identity::secret::constant_time_eq(&stored, given) => {
                input.secret = None;
                Ok(Vec::new())
            }
            _ => Ok(vec!["secret changed"]),
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(readers::table.find(id)).execute(conn)
    }

    fn label(view: &ReaderView) -> String {
        format!("reader '{}'", view.reader_id)
    }

    fn reveal_on_create(
        conn: &mut DbConnection,
        id: i64,
        view: &mut ReaderView,
    ) -> QueryResult<()> {
        view.secret = Some(
            readers::table
                .find(id)
                .select(readers::secret)
                .first(conn)?,
        );
        Ok(())
    }
}

/// The stored secret of a reader, for the site file export and the drivers.
pub fn secret_of(conn: &mut DbConnection, id: i64) -> QueryResult<String> {
    readers::table.find(id).select(readers::secret).first(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_host_is_an_allowed_address_or_a_plain_name() {
        let private = Networks::private();
        for good in [
            "127.0.0.1",
            "10.20.0.64",
            "fe80::1",
            "plc-1",
            "io.plant.example.",
            "x1.lan",
        ] {
            assert_eq!(check_host(good, &private), Ok(()), "{good}");
        }
        for bad in [
            "8.8.8.8",
            "0.0.0.0",
            "10.0.0.5\nforged log line",
            "10.0.0.5:502",
            "plc 1",
            "-plc",
            "plc..lan",
            "999.1.1.1",
            "\u{0}",
            "http://plc",
        ] {
            assert!(check_host(bad, &private).is_err(), "{bad:?}");
        }
        let err = check_host("8.8.8.8", &private).unwrap_err();
        assert!(err.contains("allowed_networks"), "{err}");
    }
}
