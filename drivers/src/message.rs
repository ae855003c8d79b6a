//! The MQTT messages of docs/protocol.md: reader events (parsed and validated, never trusted)
//! and appliance commands (encoded with `ts` and `mac`; decoded and verified by readers).

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mac;

/// Events larger than this are refused unread (docs/protocol.md).
pub const MAX_EVENT_BYTES: usize = 4096;
/// How far a command's `ts` may be from the reader's clock.
pub const COMMAND_MAX_SKEW: TimeDelta = TimeDelta::seconds(30);

/// A credential as a reader presents it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WireCredential {
    /// The card's UID, upper-case hex as sent.
    Card {
        uid: String,
    },
    Wiegand {
        facility: u32,
        number: u32,
    },
}

impl WireCredential {
    /// The credential field of the event MAC: the uid, or `facility:number`.
    pub fn mac_field(&self) -> String {
        match self {
            WireCredential::Card { uid } => uid.clone(),
            WireCredential::Wiegand { facility, number } => format!("{facility}:{number}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    Swipe {
        credential: WireCredential,
        pin: Option<String>,
    },
    Door {
        open: bool,
    },
    Rex,
    Tamper {
        active: bool,
    },
    Heartbeat {
        uptime_s: u64,
    },
}

impl EventBody {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::Swipe { .. } => "swipe",
            EventBody::Door { .. } => "door",
            EventBody::Rex => "rex",
            EventBody::Tamper { .. } => "tamper",
            EventBody::Heartbeat { .. } => "heartbeat",
        }
    }
}

/// A valid event from a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderEvent {
    pub seq: u64,
    pub ts: DateTime<Utc>,
    /// `ts` exactly as sent: the MAC covers these characters.
    pub ts_raw: String,
    pub body: EventBody,
    pub mac: Option<String>,
}

/// Why a payload is not a valid event. `seq` is set when it could be read, so the reader
/// can be told which of its events was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad event{}: {reason}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct BadEvent {
    pub seq: Option<u64>,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum RawCredential {
    Card { uid: String },
    Wiegand { facility: u32, number: u32 },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawDoorState {
    Open,
    Closed,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RawEvent {
    Swipe {
        seq: u64,
        ts: String,
        credential: RawCredential,
        #[serde(default)]
        pin: Option<String>,
        #[serde(default)]
        mac: Option<String>,
    },
    Door {
        seq: u64,
        ts: String,
        state: RawDoorState,
        #[serde(default)]
        mac: Option<String>,
    },
    Rex {
        seq: u64,
        ts: String,
        #[serde(default)]
        mac: Option<String>,
    },
    Tamper {
        seq: u64,
        ts: String,
        active: bool,
        #[serde(default)]
        mac: Option<String>,
    },
    Heartbeat {
        seq: u64,
        ts: String,
        uptime_s: u64,
        #[serde(default)]
        mac: Option<String>,
    },
}

/// A reason fit for logs and records: runs of four or more digits, which could be a PIN or
/// a card number echoed back by the JSON parser, are replaced by `…`.
pub fn redacted(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.len() >= 4 {
            out.push('…');
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in reason.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            flush(&mut digits, &mut out);
            out.push(c);
        }
    }
    flush(&mut digits, &mut out);
    out
}

/// A card UID is 1 to 16 bytes of hex.
pub fn valid_uid(uid: &str) -> bool {
    (2..=32).contains(&uid.len())
        && uid.len().is_multiple_of(2)
        && uid.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A PIN is 4 to 12 digits.
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The payload as JSON, if it is within the protocol's size limit and is JSON at all (the
/// first checks of a bare event and of a sealed event's envelope alike).
fn json_within_limit(payload: &[u8]) -> Result<Value, BadEvent> {
    if payload.len() > MAX_EVENT_BYTES {
        return Err(BadEvent {
            seq: None,
            reason: format!(
                "{} bytes is over the {MAX_EVENT_BYTES}-byte limit",
                payload.len()
            ),
        });
    }
    serde_json::from_slice(payload).map_err(|e| BadEvent {
        seq: None,
        reason: redacted(&format!("not JSON: {e}")),
    })
}

/// Parses and validates one event payload. Never panics, whatever the bytes.
pub fn parse_event(payload: &[u8]) -> Result<ReaderEvent, BadEvent> {
    let value = json_within_limit(payload)?;
    let seq = value.get("seq").and_then(Value::as_u64);
    let bad = |reason: String| BadEvent { seq, reason };
    let raw: RawEvent = serde_json::from_value(value).map_err(|e| bad(redacted(&e.to_string())))?;
    let (seq, ts_raw, body, mac) = match raw {
        RawEvent::Swipe {
            seq,
            ts,
            credential,
            pin,
            mac,
        } => {
            let credential = match credential {
                RawCredential::Card { uid } => {
                    if !valid_uid(&uid) {
                        return Err(bad("credential uid is not 1 to 16 bytes of hex".to_owned()));
                    }
                    WireCredential::Card { uid }
                }
                RawCredential::Wiegand { facility, number } => {
                    WireCredential::Wiegand { facility, number }
                }
            };
            if let Some(p) = &pin
                && !valid_pin(p)
            {
                return Err(bad("pin must be 4 to 12 digits".to_owned()));
            }
            (seq, ts, EventBody::Swipe { credential, pin }, mac)
        }
        RawEvent::Door {
            seq,
            ts,
            state,
            mac,
        } => (
            seq,
            ts,
            EventBody::Door {
                open: matches!(state, RawDoorState::Open),
            },
            mac,
        ),
        RawEvent::Rex { seq, ts, mac } => (seq, ts, EventBody::Rex, mac),
        RawEvent::Tamper {
            seq,
            ts,
            active,
            mac,
        } => (seq, ts, EventBody::Tamper { active }, mac),
        RawEvent::Heartbeat {
            seq,
            ts,
            uptime_s,
            mac,
        } => (seq, ts, EventBody::Heartbeat { uptime_s }, mac),
    };
    let ts = DateTime::parse_from_rfc3339(&ts_raw)
        .map_err(|_| bad(format!("ts '{ts_raw}' is not an RFC 3339 time")))?
        .with_timezone(&Utc);
    Ok(ReaderEvent {
        seq,
        ts,
        ts_raw,
        body,
        mac,
    })
}

/// The string an event's MAC covers: `{reader_id}|{type}|{seq}|{ts}|{credential}|{pin}`.
pub fn event_mac_input(reader_id: &str, event: &ReaderEvent) -> String {
    let (credential, pin) = match &event.body {
        EventBody::Swipe { credential, pin } => {
            (credential.mac_field(), pin.clone().unwrap_or_default())
        }
        _ => (String::new(), String::new()),
    };
    format!(
        "{reader_id}|{}|{}|{}|{credential}|{pin}",
        event.body.type_name(),
        event.seq,
        event.ts_raw
    )
}

/// The JSON payload of an event as a reader sends it; signed when a secret is given.
pub fn encode_event(
    reader_id: &str,
    secret: Option<&str>,
    seq: u64,
    ts: DateTime<Utc>,
    body: &EventBody,
) -> Vec<u8> {
    let ts_raw = ts.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut json = serde_json::json!({"type": body.type_name(), "seq": seq, "ts": ts_raw});
    match body {
        EventBody::Swipe { credential, pin } => {
            json["credential"] = match credential {
                WireCredential::Card { uid } => serde_json::json!({"kind": "card", "uid": uid}),
                WireCredential::Wiegand { facility, number } => {
                    serde_json::json!({"kind": "wiegand", "facility": facility, "number": number})
                }
            };
            if let Some(pin) = pin {
                json["pin"] = Value::from(pin.as_str());
            }
        }
        EventBody::Door { open } => {
            json["state"] = Value::from(if *open { "open" } else { "closed" })
        }
        EventBody::Rex => {}
        EventBody::Tamper { active } => json["active"] = Value::from(*active),
        EventBody::Heartbeat { uptime_s } => json["uptime_s"] = Value::from(*uptime_s),
    }
    if let Some(secret) = secret {
        let event = ReaderEvent {
            seq,
            ts,
            ts_raw,
            body: body.clone(),
            mac: None,
        };
        json["mac"] = Value::from(mac::sign(secret, &event_mac_input(reader_id, &event)));
    }
    serde_json::to_vec(&json).unwrap_or_default()
}

/// The version number of a sealed event's envelope (docs/protocol.md, "Sealed events").
pub const SEALED_VERSION: u64 = 2;

/// What an event payload is, before anything in it is believed: a sealed event (v2),
/// whose `body` is to be parsed only once its `mac` verifies, or a bare event (v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    Sealed { body: String, mac: String },
    Bare,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSealed {
    v: u64,
    body: String,
    mac: String,
}

/// Tells a sealed event from a bare one, checking only the outer layer (size, JSON, and
/// for a sealed event its three members). Nothing inside `body` is read.
pub fn envelope(payload: &[u8]) -> Result<Envelope, BadEvent> {
    let value = json_within_limit(payload)?;
    if value.get("v").is_none() {
        return Ok(Envelope::Bare);
    }
    let bad = |reason: String| BadEvent {
        seq: None,
        reason: redacted(&reason),
    };
    let sealed: RawSealed =
        serde_json::from_value(value).map_err(|e| bad(format!("not a sealed event: {e}")))?;
    if sealed.v != SEALED_VERSION {
        return Err(bad(format!(
            "sealed event version {} is not {SEALED_VERSION}",
            sealed.v
        )));
    }
    Ok(Envelope::Sealed {
        body: sealed.body,
        mac: sealed.mac,
    })
}

/// The string a sealed event's MAC covers: `{reader_id}|{body}`.
pub fn sealed_mac_input(reader_id: &str, body: &str) -> String {
    format!("{reader_id}|{body}")
}

/// True when `mac` is the reader's MAC over exactly these bytes of `body`.
pub fn verify_sealed(reader_id: &str, secret: &str, body: &str, mac: &str) -> bool {
    mac::verify(secret, &sealed_mac_input(reader_id, body), mac)
}

/// Seals an event's JSON text as a reader does: `{"v":2,"body":…,"mac":…}`.
pub fn seal(reader_id: &str, secret: &str, body: &str) -> Vec<u8> {
    /// The envelope's members in the order docs/protocol.md shows them.
    #[derive(Serialize)]
    struct Sealed<'a> {
        v: u64,
        body: &'a str,
        mac: String,
    }
    let sealed = Sealed {
        v: SEALED_VERSION,
        body,
        mac: mac::sign(secret, &sealed_mac_input(reader_id, body)),
    };
    serde_json::to_vec(&sealed).unwrap_or_default()
}

/// The payload of a sealed event (v2): the bare event's JSON, sealed under the secret.
pub fn encode_sealed_event(
    reader_id: &str,
    secret: &str,
    seq: u64,
    ts: DateTime<Utc>,
    body: &EventBody,
) -> Vec<u8> {
    let bare = encode_event(reader_id, None, seq, ts, body);
    seal(reader_id, secret, &String::from_utf8_lossy(&bare))
}

/// The `seq` of a payload that is not to be believed (an unsealed event, or a sealed one
/// whose mac failed), read only to address the `error` that refuses it.
pub fn readable_seq(payload: &[u8]) -> Option<u64> {
    if payload.len() > MAX_EVENT_BYTES {
        return None;
    }
    serde_json::from_slice::<Value>(payload)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// What identifies an event's content, to tell a resend (the same content again) from a
/// reused seq (other content under the same seq). Every field but the PIN's digits is
/// covered: only whether there was a PIN, so that nothing from which a PIN could be
/// recovered is kept. The first 8 bytes of a SHA-256, as a signed integer for storage.
pub fn content_digest(event: &ReaderEvent) -> i64 {
    use sha2::{Digest, Sha256};
    let ts = event.ts.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let fields = match &event.body {
        EventBody::Swipe { credential, pin } => format!(
            "{}|{}",
            match credential {
                WireCredential::Card { uid } => format!("card:{}", uid.to_ascii_uppercase()),
                WireCredential::Wiegand { facility, number } =>
                    format!("wiegand:{facility}:{number}"),
            },
            if pin.is_some() { "pin" } else { "" }
        ),
        EventBody::Door { open } => open.to_string(),
        EventBody::Rex => String::new(),
        EventBody::Tamper { active } => active.to_string(),
        EventBody::Heartbeat { uptime_s } => uptime_s.to_string(),
    };
    let digest = Sha256::digest(format!("{}|{ts}|{fields}", event.body.type_name()).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// What an event's MAC says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventMac {
    Absent,
    Valid,
    Invalid,
}

pub fn check_event_mac(reader_id: &str, secret: &str, event: &ReaderEvent) -> EventMac {
    match &event.mac {
        None => EventMac::Absent,
        Some(m) if mac::verify(secret, &event_mac_input(reader_id, event), m) => EventMac::Valid,
        Some(_) => EventMac::Invalid,
    }
}

/// The deny codes of docs/protocol.md: which check failed, nothing about the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyCode {
    UnknownCredential,
    Inactive,
    Expired,
    NoEntitlement,
    Schedule,
    Lockdown,
    Antipassback,
    PinWrong,
    Risk,
    DoorMode,
}

impl DenyCode {
    pub const ALL: [DenyCode; 10] = [
        DenyCode::UnknownCredential,
        DenyCode::Inactive,
        DenyCode::Expired,
        DenyCode::NoEntitlement,
        DenyCode::Schedule,
        DenyCode::Lockdown,
        DenyCode::Antipassback,
        DenyCode::PinWrong,
        DenyCode::Risk,
        DenyCode::DoorMode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyCode::UnknownCredential => "unknown_credential",
            DenyCode::Inactive => "inactive",
            DenyCode::Expired => "expired",
            DenyCode::NoEntitlement => "no_entitlement",
            DenyCode::Schedule => "schedule",
            DenyCode::Lockdown => "lockdown",
            DenyCode::Antipassback => "antipassback",
            DenyCode::PinWrong => "pin_wrong",
            DenyCode::Risk => "risk",
            DenyCode::DoorMode => "door_mode",
        }
    }

    pub fn parse(text: &str) -> Option<DenyCode> {
        DenyCode::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// The reader modes of docs/protocol.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaderMode {
    Normal,
    CardAndPin,
    Locked,
    Unlocked,
}

impl ReaderMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReaderMode::Normal => "normal",
            ReaderMode::CardAndPin => "card_and_pin",
            ReaderMode::Locked => "locked",
            ReaderMode::Unlocked => "unlocked",
        }
    }
}

/// Why an event was refused, as the `error` command names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadEvent,
    BadMac,
    /// The seq of an event already handled, carrying a different event.
    SeqReused,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadEvent => "bad_event",
            ErrorCode::BadMac => "bad_mac",
            ErrorCode::SeqReused => "seq_reused",
        }
    }
}

/// A command from the appliance to one reader. Its serde form (without `ts` and `mac`) is
/// how the appliance records the answer it gave, to give it again to a resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Grant {
        #[serde(rename = "ref")]
        reference: u64,
        decision_id: String,
        unlock_ms: u32,
    },
    Deny {
        #[serde(rename = "ref")]
        reference: u64,
        decision_id: String,
        code: DenyCode,
    },
    PinRequired {
        #[serde(rename = "ref")]
        reference: u64,
        decision_id: String,
    },
    Mode {
        mode: ReaderMode,
    },
    Error {
        #[serde(rename = "ref")]
        reference: Option<u64>,
        code: ErrorCode,
    },
}

#[derive(Serialize, Deserialize)]
struct WireCommand {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    reference: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decision_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unlock_ms: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    ts: String,
    mac: String,
}

impl WireCommand {
    fn mac_input(&self, reader_id: &str) -> String {
        let field = |v: Option<String>| v.unwrap_or_default();
        format!(
            "{reader_id}|{}|{}|{}|{}|{}|{}",
            self.kind,
            field(self.reference.map(|r| r.to_string())),
            field(self.decision_id.clone()),
            field(self.unlock_ms.map(|u| u.to_string())),
            field(self.mode.clone()),
            self.ts
        )
    }
}

impl Command {
    pub fn type_name(&self) -> &'static str {
        match self {
            Command::Grant { .. } => "grant",
            Command::Deny { .. } => "deny",
            Command::PinRequired { .. } => "pin_required",
            Command::Mode { .. } => "mode",
            Command::Error { .. } => "error",
        }
    }

    fn to_wire(&self, ts: String) -> WireCommand {
        let mut w = WireCommand {
            kind: self.type_name().to_owned(),
            reference: None,
            decision_id: None,
            unlock_ms: None,
            code: None,
            mode: None,
            ts,
            mac: String::new(),
        };
        match self {
            Command::Grant {
                reference,
                decision_id,
                unlock_ms,
            } => {
                w.reference = Some(*reference);
                w.decision_id = Some(decision_id.clone());
                w.unlock_ms = Some(*unlock_ms);
            }
            Command::Deny {
                reference,
                decision_id,
                code,
            } => {
                w.reference = Some(*reference);
                w.decision_id = Some(decision_id.clone());
                w.code = Some(code.as_str().to_owned());
            }
            Command::PinRequired {
                reference,
                decision_id,
            } => {
                w.reference = Some(*reference);
                w.decision_id = Some(decision_id.clone());
            }
            Command::Mode { mode } => w.mode = Some(mode.as_str().to_owned()),
            Command::Error { reference, code } => {
                w.reference = *reference;
                w.code = Some(code.as_str().to_owned());
            }
        }
        w
    }

    /// The JSON payload for `reader_id`, with the appliance's time and the MAC under the
    /// reader's secret.
    pub fn encode(&self, reader_id: &str, secret: &str, now: DateTime<Utc>) -> Vec<u8> {
        let mut wire = self.to_wire(now.to_rfc3339_opts(SecondsFormat::Millis, true));
        wire.mac = mac::sign(secret, &wire.mac_input(reader_id));
        serde_json::to_vec(&wire).unwrap_or_default()
    }
}

/// Why a reader must not act on a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectedCommand {
    #[error("not a command: {0}")]
    Malformed(String),
    #[error("the mac does not verify under this reader's secret")]
    BadMac,
    #[error("ts {0} is more than 30 s from the reader's clock")]
    Stale(String),
}

/// What a reader does with a command payload: verify the MAC and the time, then decode.
pub fn verify_command(
    reader_id: &str,
    secret: &str,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<Command, RejectedCommand> {
    let wire: WireCommand =
        serde_json::from_slice(payload).map_err(|e| RejectedCommand::Malformed(e.to_string()))?;
    if !mac::verify(secret, &wire.mac_input(reader_id), &wire.mac) {
        return Err(RejectedCommand::BadMac);
    }
    let ts = DateTime::parse_from_rfc3339(&wire.ts)
        .map_err(|_| RejectedCommand::Malformed(format!("ts '{}'", wire.ts)))?
        .with_timezone(&Utc);
    if (now - ts).abs() > COMMAND_MAX_SKEW {
        return Err(RejectedCommand::Stale(wire.ts));
    }
    let missing = |what: &str| RejectedCommand::Malformed(format!("{} without {what}", wire.kind));
    let reference = wire.reference;
    let decision_id = || {
        wire.decision_id
            .clone()
            .ok_or_else(|| missing("decision_id"))
    };
    Ok(match wire.kind.as_str() {
        "grant" => Command::Grant {
            reference: reference.ok_or_else(|| missing("ref"))?,
            decision_id: decision_id()?,
            unlock_ms: wire.unlock_ms.ok_or_else(|| missing("unlock_ms"))?,
        },
        "deny" => Command::Deny {
            reference: reference.ok_or_else(|| missing("ref"))?,
            decision_id: decision_id()?,
            code: wire
                .code
                .as_deref()
                .and_then(DenyCode::parse)
                .ok_or_else(|| missing("a known code"))?,
        },
        "pin_required" => Command::PinRequired {
            reference: reference.ok_or_else(|| missing("ref"))?,
            decision_id: decision_id()?,
        },
        "mode" => Command::Mode {
            mode: match wire.mode.as_deref() {
                Some("normal") => ReaderMode::Normal,
                Some("card_and_pin") => ReaderMode::CardAndPin,
                Some("locked") => ReaderMode::Locked,
                Some("unlocked") => ReaderMode::Unlocked,
                _ => return Err(missing("a known mode")),
            },
        },
        "error" => Command::Error {
            reference,
            code: match wire.code.as_deref() {
                Some("bad_event") => ErrorCode::BadEvent,
                Some("bad_mac") => ErrorCode::BadMac,
                Some("seq_reused") => ErrorCode::SeqReused,
                _ => return Err(missing("a known code")),
            },
        },
        other => {
            return Err(RejectedCommand::Malformed(format!(
                "unknown type '{other}'"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_event_of_the_protocol_parses() {
        let cases = [
            (
                r#"{"type":"swipe","seq":1042,"ts":"2026-11-24T08:01:02.123Z","credential":{"kind":"card","uid":"04A1B2C3D4E5F6"}}"#,
                EventBody::Swipe {
                    credential: WireCredential::Card {
                        uid: "04A1B2C3D4E5F6".into(),
                    },
                    pin: None,
                },
            ),
            (
                r#"{"type":"swipe","seq":1043,"ts":"2026-11-24T08:01:09.000Z","credential":{"kind":"card","uid":"04A1B2C3D4E5F6"},"pin":"4821"}"#,
                EventBody::Swipe {
                    credential: WireCredential::Card {
                        uid: "04A1B2C3D4E5F6".into(),
                    },
                    pin: Some("4821".into()),
                },
            ),
            (
                r#"{"type":"swipe","seq":7,"ts":"2026-11-24T08:01:09Z","credential":{"kind":"wiegand","facility":12,"number":34567}}"#,
                EventBody::Swipe {
                    credential: WireCredential::Wiegand {
                        facility: 12,
                        number: 34567,
                    },
                    pin: None,
                },
            ),
            (
                r#"{"type":"door","seq":1044,"ts":"2026-11-24T08:01:03.000Z","state":"open"}"#,
                EventBody::Door { open: true },
            ),
            (
                r#"{"type":"door","seq":1045,"ts":"2026-11-24T08:01:08.000Z","state":"closed"}"#,
                EventBody::Door { open: false },
            ),
            (
                r#"{"type":"rex","seq":1046,"ts":"2026-11-24T08:02:00.000Z"}"#,
                EventBody::Rex,
            ),
            (
                r#"{"type":"tamper","seq":1047,"ts":"2026-11-24T08:03:00.000Z","active":true}"#,
                EventBody::Tamper { active: true },
            ),
            (
                r#"{"type":"heartbeat","seq":1048,"ts":"2026-11-24T08:05:00.000Z","uptime_s":86400}"#,
                EventBody::Heartbeat { uptime_s: 86400 },
            ),
        ];
        for (json, body) in cases {
            let event = parse_event(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(event.body, body, "{json}");
        }
    }

    #[test]
    fn bad_events_say_why_and_keep_the_seq_when_readable() {
        let cases: [(&[u8], Option<u64>); 9] = [
            (b"not json", None),
            (br#"{"type":"teleport","seq":5,"ts":"2026-11-24T08:00:00Z"}"#, Some(5)),
            (br#"{"type":"swipe","seq":6,"ts":"2026-11-24T08:00:00Z"}"#, Some(6)),
            (br#"{"type":"swipe","seq":7,"ts":"yesterday","credential":{"kind":"card","uid":"04A1"}}"#, Some(7)),
            (br#"{"type":"swipe","seq":8,"ts":"2026-11-24T08:00:00Z","credential":{"kind":"card","uid":"XYZ"}}"#, Some(8)),
            (br#"{"type":"swipe","seq":9,"ts":"2026-11-24T08:00:00Z","credential":{"kind":"card","uid":"04A1"},"pin":"12"}"#, Some(9)),
            (br#"{"type":"door","seq":10,"ts":"2026-11-24T08:00:00Z","state":"ajar"}"#, Some(10)),
            (br#"{"type":"rex","seq":-1,"ts":"2026-11-24T08:00:00Z"}"#, None),
            (br#"[1,2,3]"#, None),
        ];
        for (payload, seq) in cases {
            let err = parse_event(payload).unwrap_err();
            assert_eq!(err.seq, seq, "{}: {err}", String::from_utf8_lossy(payload));
            assert!(!err.reason.is_empty());
        }
        let huge = vec![b' '; 1 << 20];
        let err = parse_event(&huge).unwrap_err();
        assert!(err.reason.contains("limit"), "{err}");
    }

    #[test]
    fn encoded_events_parse_back_and_verify() {
        let now = at("2026-11-24T08:01:02.123Z");
        let body = EventBody::Swipe {
            credential: WireCredential::Wiegand {
                facility: 12,
                number: 34567,
            },
            pin: Some("0042".into()),
        };
        let payload = encode_event("r1", Some("s"), 77, now, &body);
        let event = parse_event(&payload).unwrap();
        assert_eq!((event.seq, &event.body, event.ts), (77, &body, now));
        assert_eq!(check_event_mac("r1", "s", &event), EventMac::Valid);
        let unsigned = parse_event(&encode_event("r1", None, 78, now, &EventBody::Rex)).unwrap();
        assert_eq!(check_event_mac("r1", "s", &unsigned), EventMac::Absent);
    }

    #[test]
    fn bad_event_reasons_never_echo_a_pin_or_card_number() {
        let with_numeric_pin = br#"{"type":"swipe","seq":9,"ts":"2026-11-24T08:00:00Z","credential":{"kind":"card","uid":"04A1"},"pin":48213}"#;
        let err = parse_event(with_numeric_pin).unwrap_err();
        assert!(!err.reason.contains("48213"), "{}", err.reason);
        let bad_uid = br#"{"type":"swipe","seq":9,"ts":"2026-11-24T08:00:00Z","credential":{"kind":"card","uid":"0412345678ZZ"}}"#;
        let err = parse_event(bad_uid).unwrap_err();
        assert!(!err.reason.contains("12345678"), "{}", err.reason);
        assert_eq!(
            redacted("seq 12: pin 4821 at line 1 column 120"),
            "seq 12: pin … at line 1 column 120"
        );
    }

    #[test]
    fn event_mac_covers_the_protocol_fields() {
        let secret = "reader-secret";
        let json = r#"{"type":"swipe","seq":1043,"ts":"2026-11-24T08:01:09.000Z","credential":{"kind":"card","uid":"04A1B2C3D4E5F6"},"pin":"4821"}"#;
        let mut event = parse_event(json.as_bytes()).unwrap();
        assert_eq!(
            event_mac_input("r1", &event),
            "r1|swipe|1043|2026-11-24T08:01:09.000Z|04A1B2C3D4E5F6|4821"
        );
        assert_eq!(check_event_mac("r1", secret, &event), EventMac::Absent);
        event.mac = Some(mac::sign(secret, &event_mac_input("r1", &event)));
        assert_eq!(check_event_mac("r1", secret, &event), EventMac::Valid);
        assert_eq!(
            check_event_mac("r2", secret, &event),
            EventMac::Invalid,
            "signed as another reader"
        );
        assert_eq!(check_event_mac("r1", "other", &event), EventMac::Invalid);
    }

    #[test]
    fn commands_round_trip_and_forgeries_are_rejected() {
        let now = at("2026-11-24T08:01:02.131Z");
        let commands = [
            Command::Grant {
                reference: 1042,
                decision_id: "d-1".into(),
                unlock_ms: 5000,
            },
            Command::Deny {
                reference: 1042,
                decision_id: "d-2".into(),
                code: DenyCode::Schedule,
            },
            Command::PinRequired {
                reference: 1042,
                decision_id: "d-3".into(),
            },
            Command::Mode {
                mode: ReaderMode::Locked,
            },
            Command::Error {
                reference: Some(9),
                code: ErrorCode::BadEvent,
            },
            Command::Error {
                reference: None,
                code: ErrorCode::BadMac,
            },
        ];
        for c in commands {
            let payload = c.encode("door-a", "secret-a", now);
            let json: Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(json["ts"], "2026-11-24T08:01:02.131Z");
            assert_eq!(
                verify_command("door-a", "secret-a", &payload, now),
                Ok(c.clone())
            );
            // Someone holding another reader's secret cannot make door A act.
            let forged = c.encode("door-a", "secret-b", now);
            assert_eq!(
                verify_command("door-a", "secret-a", &forged, now),
                Err(RejectedCommand::BadMac)
            );
            // A command for reader B is not valid for reader A, even under A's secret.
            let other = c.encode("door-b", "secret-a", now);
            assert_eq!(
                verify_command("door-a", "secret-a", &other, now),
                Err(RejectedCommand::BadMac)
            );
            // A replayed command is stale after 30 s.
            let later = now + TimeDelta::seconds(31);
            assert!(matches!(
                verify_command("door-a", "secret-a", &payload, later),
                Err(RejectedCommand::Stale(_))
            ));
        }
    }

    #[test]
    fn command_mac_input_matches_the_protocol() {
        let now = at("2026-11-24T08:01:02.131Z");
        let payload = Command::Grant {
            reference: 1042,
            decision_id: "d-01J".into(),
            unlock_ms: 5000,
        }
        .encode("r1", "s", now);
        let json: Value = serde_json::from_slice(&payload).unwrap();
        let expected = mac::sign("s", "r1|grant|1042|d-01J|5000||2026-11-24T08:01:02.131Z");
        assert_eq!(json["mac"], expected);
        let mode = Command::Mode {
            mode: ReaderMode::CardAndPin,
        }
        .encode("r1", "s", now);
        let json: Value = serde_json::from_slice(&mode).unwrap();
        assert_eq!(
            json["mac"],
            mac::sign("s", "r1|mode||||card_and_pin|2026-11-24T08:01:02.131Z")
        );
        assert!(json.get("ref").is_none());
    }

    #[test]
    fn sealed_events_open_only_under_the_readers_secret() {
        let now = at("2026-11-24T08:01:02.123Z");
        let body = EventBody::Swipe {
            credential: WireCredential::Card {
                uid: "04A1B2C3".into(),
            },
            pin: Some("4821".into()),
        };
        let payload = encode_sealed_event("r1", "secret-1", u64::MAX, now, &body);
        let Ok(Envelope::Sealed { body: text, mac }) = envelope(&payload) else {
            panic!("not sealed: {}", String::from_utf8_lossy(&payload));
        };
        assert!(verify_sealed("r1", "secret-1", &text, &mac));
        assert!(
            !verify_sealed("r1", "secret-2", &text, &mac),
            "another secret"
        );
        assert!(
            !verify_sealed("r2", "secret-1", &text, &mac),
            "another reader"
        );
        let tampered = text.replace("04A1B2C3", "04A1B2C4");
        assert!(
            !verify_sealed("r1", "secret-1", &tampered, &mac),
            "a changed body"
        );
        let event = parse_event(text.as_bytes()).unwrap();
        assert_eq!((event.seq, &event.body), (u64::MAX, &body));
        // Bare events are told apart; broken envelopes are bad events.
        let bare = encode_event("r1", None, 1, now, &EventBody::Rex);
        assert_eq!(envelope(&bare), Ok(Envelope::Bare));
        for broken in [
            r#"{"v":3,"body":"{}","mac":"00"}"#,
            r#"{"v":2,"body":"{}"}"#,
            r#"{"v":2,"body":{},"mac":"00"}"#,
            r#"{"v":2,"body":"{}","mac":"00","seq":1}"#,
            r#"{"v":"2","body":"{}","mac":"00"}"#,
        ] {
            assert!(envelope(broken.as_bytes()).is_err(), "{broken}");
        }
        assert!(envelope(&vec![b' '; MAX_EVENT_BYTES + 1]).is_err());
        assert_eq!(readable_seq(br#"{"type":"rex","seq":12}"#), Some(12));
        assert_eq!(readable_seq(b"nonsense"), None);
    }

    #[test]
    fn the_content_digest_tells_events_apart_but_keeps_no_pin() {
        let now = at("2026-11-24T08:01:02.123Z");
        let swipe = |uid: &str, pin: Option<&str>, ts: DateTime<Utc>| ReaderEvent {
            seq: 7,
            ts,
            ts_raw: String::new(),
            body: EventBody::Swipe {
                credential: WireCredential::Card { uid: uid.into() },
                pin: pin.map(str::to_owned),
            },
            mac: None,
        };
        let base = content_digest(&swipe("04A1", None, now));
        assert_eq!(base, content_digest(&swipe("04a1", None, now)), "one card");
        assert_ne!(base, content_digest(&swipe("04A2", None, now)));
        assert_ne!(
            base,
            content_digest(&swipe("04A1", None, now + TimeDelta::seconds(1)))
        );
        assert_ne!(base, content_digest(&swipe("04A1", Some("1234"), now)));
        assert_eq!(
            content_digest(&swipe("04A1", Some("1234"), now)),
            content_digest(&swipe("04A1", Some("9999"), now)),
            "only whether there was a PIN"
        );
        let rex = ReaderEvent {
            body: EventBody::Rex,
            ..swipe("04A1", None, now)
        };
        assert_ne!(base, content_digest(&rex));
    }

    /// Every value of docs/protocol.md's worked examples is what the code computes.
    #[test]
    fn the_protocol_docs_examples_are_right() {
        let doc = include_str!("../../docs/protocol.md");
        let mut values: Vec<(&str, &str)> = Vec::new();
        let mut in_text = false;
        for line in doc.lines() {
            if line.starts_with("```") {
                in_text = line == "```text";
                continue;
            }
            if in_text && let Some((key, value)) = line.split_once(':') {
                values.push((key.trim(), value.trim()));
            }
        }
        let all = |key: &str| -> Vec<&str> {
            values
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .collect()
        };
        let one = |key: &str| -> &str {
            let found = all(key);
            assert_eq!(found.len(), 1, "one '{key}:' line in docs/protocol.md");
            found[0]
        };
        let (reader, secret, body, mac_hex) =
            (one("reader id"), one("secret"), one("body"), one("mac"));
        let inputs = all("mac input");
        assert_eq!(inputs.len(), 2, "{inputs:?}");
        // The sealed event.
        assert_eq!(inputs[0], sealed_mac_input(reader, body));
        assert_eq!(mac::sign(secret, inputs[0]), mac_hex);
        let payload = one("payload");
        assert_eq!(
            envelope(payload.as_bytes()),
            Ok(Envelope::Sealed {
                body: body.to_owned(),
                mac: mac_hex.to_owned()
            })
        );
        assert_eq!(seal(reader, secret, body), payload.as_bytes());
        assert!(parse_event(body.as_bytes()).is_ok());
        // The command.
        let command = one("command");
        let ts = serde_json::from_str::<Value>(command).unwrap()["ts"]
            .as_str()
            .unwrap()
            .to_owned();
        let verified = verify_command(reader, secret, command.as_bytes(), at(&ts)).unwrap();
        assert_eq!(verified.encode(reader, secret, at(&ts)), command.as_bytes());
        let wire: WireCommand = serde_json::from_str(command).unwrap();
        assert_eq!(wire.mac_input(reader), inputs[1]);
        // The legacy (v1) mac.
        let event = parse_event(body.as_bytes()).unwrap();
        assert_eq!(event_mac_input(reader, &event), one("v1 mac input"));
        assert_eq!(mac::sign(secret, one("v1 mac input")), one("v1 mac"));
    }
}
