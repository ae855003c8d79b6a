//! Plain policy input types as the storage layer loads them from the database, before
//! compilation: no I/O, no indexes, database ids (`i64`) everywhere.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Everything `Snapshot::compile` needs, as plain rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyData {
    pub sites: Vec<Site>,
    pub zones: Vec<Zone>,
    pub doors: Vec<Door>,
    pub readers: Vec<Reader>,
    pub people: Vec<Person>,
    pub credentials: Vec<Credential>,
    pub schedules: Vec<Schedule>,
    pub holidays: Vec<Holiday>,
    pub levels: Vec<AccessLevel>,
    pub entitlements: Vec<Entitlement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub id: i64,
    pub name: String,
    /// IANA name such as `Europe/Berlin`; every schedule at this site runs on its wall clock.
    pub timezone: String,
    pub lockdown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    pub id: i64,
    pub site_id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub antipassback: AntiPassback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Door {
    pub id: i64,
    pub zone_id: i64,
    pub name: String,
    pub unlock_ms: u32,
    pub held_open_s: u32,
    pub mode: DoorMode,
    pub free_access_schedule_id: Option<i64>,
    pub sensitivity: Sensitivity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reader {
    pub id: i64,
    /// The id the reader uses on the wire (MQTT topic, Modbus device name).
    pub reader_id: String,
    pub door_id: i64,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: i64,
    pub employee_id: String,
    pub name: String,
    pub status: PersonStatus,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: i64,
    pub person_id: i64,
    pub key: CredentialKey,
    /// argon2id PHC string (see `crate::identity::secret`); never the PIN itself.
    pub pin_hash: Option<String>,
    pub status: CredentialStatus,
    pub valid_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: i64,
    pub name: String,
    pub holidays: HolidayRule,
    pub windows: Vec<Window>,
}

/// One recurring opening: `cron` says when it starts (site wall clock), `duration_min`
/// how long it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub cron: String,
    pub duration_min: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub id: i64,
    /// `None`: a holiday at every site.
    pub site_id: Option<i64>,
    pub date: NaiveDate,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLevel {
    pub id: i64,
    pub name: String,
    pub items: Vec<LevelItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LevelItem {
    pub target: Target,
    pub schedule_id: i64,
}

/// What a level item opens. A zone covers its own doors and, recursively, those of its
/// child zones, so moving a door between zones moves its access with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Door(i64),
    Zone(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entitlement {
    pub id: i64,
    pub person_id: i64,
    pub level_id: i64,
    pub valid_until: Option<DateTime<Utc>>,
}

/// A string did not name a value of one of the policy enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {what}; expected one of: {}", allowed.join(", "))]
pub struct ParseEnumError {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

/// Declares a fieldless enum with its snake_case wire names: `as_str`, `ALL`, `Display`,
/// `FromStr` (trimmed, ASCII case-insensitive, because values also arrive from CSV files
/// typed by people) and serde under the same names.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            const NAMES: &'static [&'static str] = &[$($text),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::policy::model::ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($text) {
                    return Ok($name::$variant);
                })+
                Err($crate::policy::model::ParseEnumError {
                    what: $what,
                    value: s.to_owned(),
                    allowed: Self::NAMES,
                })
            }
        }
    };
}

pub(super) use string_enum;

string_enum!(
    /// Anti-passback of a zone: whether entering twice without leaving (or the reverse)
    /// is refused (`Hard`), let through but flagged (`Soft`), or not tracked (`Off`).
    AntiPassback, "anti-passback setting" {
        Off = "off",
        Soft = "soft",
        Hard = "hard",
    }
);

string_enum!(
    /// The operating mode of a door, as sent to readers in `mode` commands.
    DoorMode, "door mode" {
        Normal = "normal",
        CardAndPin = "card_and_pin",
        Locked = "locked",
        Unlocked = "unlocked",
    }
);

string_enum!(
    /// How much a door matters; the risk policy picks its thresholds by it.
    Sensitivity, "door sensitivity" {
        Low = "low",
        Normal = "normal",
        High = "high",
        Critical = "critical",
    }
);

string_enum!(
    /// Which way a reader lets people through.
    Direction, "reader direction" {
        In = "in",
        Out = "out",
    }
);

string_enum!(
    PersonStatus, "person status" {
        Active = "active",
        Suspended = "suspended",
        Terminated = "terminated",
    }
);

string_enum!(
    CredentialStatus, "credential status" {
        Active = "active",
        Lost = "lost",
        Stolen = "stolen",
        Revoked = "revoked",
    }
);

string_enum!(
    /// What a holiday does to a schedule.
    HolidayRule, "holiday rule" {
        /// No access during a holiday's whole local calendar day.
        Closed = "closed",
        /// Holidays don't matter (24/7 security, plant operators).
        Ignore = "ignore",
    }
);

/// What a reader read: the key credentials are looked up by.
///
/// Serialized like the protocol's `credential` member: `{"kind":"card","uid":"04A1…"}` or
/// `{"kind":"wiegand","facility":12,"number":3456}`. Deserializing normalises the uid the
/// same way as [`CredentialKey::card`], so equal cards always compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawCredentialKey")]
pub enum CredentialKey {
    /// Upper-case hex of the card's UID (1 to 16 bytes).
    Card {
        uid: String,
    },
    Wiegand {
        facility: u32,
        number: u32,
    },
}

/// Longest card UID accepted, in bytes (the Modbus register map has room for 16).
pub const MAX_UID_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialKeyError {
    #[error("card uid is empty")]
    Empty,
    #[error("card uid '{0}' is not hexadecimal (digits 0-9 and A-F only)")]
    NotHex(String),
    #[error("card uid '{0}' has an odd number of hex digits; a uid is whole bytes")]
    OddLength(String),
    #[error("card uid '{0}' is longer than {MAX_UID_BYTES} bytes")]
    TooLong(String),
}

impl CredentialKey {
    /// A card key from a uid as typed or read: surrounding whitespace is trimmed and hex
    /// letters upper-cased, so `" 04a1b2 "` and `"04A1B2"` are the same card.
    pub fn card(uid: &str) -> Result<Self, CredentialKeyError> {
        let t = uid.trim();
        if t.is_empty() {
            return Err(CredentialKeyError::Empty);
        }
        if !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CredentialKeyError::NotHex(t.to_owned()));
        }
        if !t.len().is_multiple_of(2) {
            return Err(CredentialKeyError::OddLength(t.to_owned()));
        }
        if t.len() > 2 * MAX_UID_BYTES {
            return Err(CredentialKeyError::TooLong(t.to_owned()));
        }
        Ok(CredentialKey::Card {
            uid: t.to_ascii_uppercase(),
        })
    }

    pub const fn wiegand(facility: u32, number: u32) -> Self {
        CredentialKey::Wiegand { facility, number }
    }

    /// `card` or `wiegand`, as in the protocol's `credential.kind`.
    pub const fn kind(&self) -> &'static str {
        match self {
            CredentialKey::Card { .. } => "card",
            CredentialKey::Wiegand { .. } => "wiegand",
        }
    }
}

/// The protocol's MAC form: the uid, or `facility:number`.
impl fmt::Display for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialKey::Card { uid } => f.write_str(uid),
            CredentialKey::Wiegand { facility, number } => write!(f, "{facility}:{number}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RawCredentialKey {
    Card { uid: String },
    Wiegand { facility: u32, number: u32 },
}

impl TryFrom<RawCredentialKey> for CredentialKey {
    type Error = CredentialKeyError;

    fn try_from(raw: RawCredentialKey) -> Result<Self, Self::Error> {
        match raw {
            RawCredentialKey::Card { uid } => CredentialKey::card(&uid),
            RawCredentialKey::Wiegand { facility, number } => {
                Ok(CredentialKey::Wiegand { facility, number })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_names() {
        for m in DoorMode::ALL {
            assert_eq!(m.as_str().parse::<DoorMode>().unwrap(), *m);
            assert_eq!(
                serde_json::to_string(m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        assert_eq!(
            " Card_And_PIN ".parse::<DoorMode>().unwrap(),
            DoorMode::CardAndPin
        );
        assert_eq!("hard".parse::<AntiPassback>().unwrap(), AntiPassback::Hard);
        assert_eq!(
            "stolen".parse::<CredentialStatus>().unwrap(),
            CredentialStatus::Stolen
        );
        assert_eq!(
            "ignore".parse::<HolidayRule>().unwrap(),
            HolidayRule::Ignore
        );
    }

    #[test]
    fn enum_parse_error_names_the_value_and_the_choices() {
        let err = "open".parse::<DoorMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "'open' is not a valid door mode; expected one of: normal, card_and_pin, locked, unlocked"
        );
        let err = "sideways".parse::<Direction>().unwrap_err();
        assert!(err.to_string().contains("'sideways'") && err.to_string().contains("in, out"));
    }

    #[test]
    fn card_uids_are_normalised_and_validated() {
        assert_eq!(
            CredentialKey::card(" 04a1b2c3d4e5f6 ").unwrap(),
            CredentialKey::Card {
                uid: "04A1B2C3D4E5F6".into()
            }
        );
        assert_eq!(
            CredentialKey::card("").unwrap_err(),
            CredentialKeyError::Empty
        );
        assert!(matches!(
            CredentialKey::card("04A1G2"),
            Err(CredentialKeyError::NotHex(_))
        ));
        assert!(matches!(
            CredentialKey::card("04A"),
            Err(CredentialKeyError::OddLength(_))
        ));
        assert!(CredentialKey::card(&"AB".repeat(16)).is_ok());
        assert!(matches!(
            CredentialKey::card(&"AB".repeat(17)),
            Err(CredentialKeyError::TooLong(_))
        ));
    }

    #[test]
    fn credential_keys_display_and_serialize_like_the_protocol() {
        let card = CredentialKey::card("04a1").unwrap();
        assert_eq!(card.to_string(), "04A1");
        assert_eq!(CredentialKey::wiegand(12, 3456).to_string(), "12:3456");
        assert_eq!(
            serde_json::to_string(&card).unwrap(),
            r#"{"kind":"card","uid":"04A1"}"#
        );
        let parsed: CredentialKey =
            serde_json::from_str(r#"{"kind":"card","uid":"04a1b2"}"#).unwrap();
        assert_eq!(parsed, CredentialKey::card("04A1B2").unwrap());
        let parsed: CredentialKey =
            serde_json::from_str(r#"{"kind":"wiegand","facility":12,"number":3456}"#).unwrap();
        assert_eq!(parsed, CredentialKey::wiegand(12, 3456));
        assert!(serde_json::from_str::<CredentialKey>(r#"{"kind":"card","uid":"xyz"}"#).is_err());
    }
}
