//! The hub: a reader's message → validation → decision → durable record → answer, once per
//! event. It knows no transport; the MQTT and Modbus drivers feed it payloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use gatehouse_drivers::message::{
    self, BadEvent, Command, DenyCode as WireDenyCode, Envelope, ErrorCode, EventBody, EventMac,
    ReaderEvent, ReaderMode, WireCredential,
};

use crate::app::live::LivePolicy;
use crate::clock::Clock;
use crate::policy::{self, CredentialKey, Outcome, Reason, Request, Snapshot};
use crate::readers::door_state::{Alarm, DoorStates};
use crate::readers::fault_budget::{Admission, FaultBudget, IN_ALL, PER_READER, Suppressed};
use crate::readers::health::HealthBoard;
use crate::readers::pin_lockout::{self, LockoutPolicy, PinLockout, PinResult};
use crate::store::event_log::{Appended, Event, EventKind, EventLog, LogError, stored_seq};
use crate::store::load::ReaderWire;

/// An answer for one reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub reader_id: String,
    pub command: Command,
}

/// The hub's shared state; cheap to clone into driver tasks.
#[derive(Clone)]
pub struct Hub {
    live: Arc<LivePolicy>,
    log: EventLog,
    clock: Clock,
    doors: Arc<Mutex<DoorStates>>,
    health: HealthBoard,
    faults: Arc<Mutex<FaultBudget>>,
    /// Doors unlocked by an admin's hand (momentary unlocks), by door.
    unlocks: Arc<Mutex<HashMap<i64, Unlock>>>,
    /// Bumped whenever the mode some reader should be in changes without a policy change
    /// (a momentary unlock starts or ends); the drivers re-send modes on it.
    mode_changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Wrong PINs in a row per card, and the cards they blocked.
    pins: PinLockout,
}

/// Why a payload is not an event the hub believes: what to record, and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refused {
    seq: Option<u64>,
    code: ErrorCode,
    reason: String,
}

impl From<BadEvent> for Refused {
    fn from(e: BadEvent) -> Refused {
        Refused {
            seq: e.seq,
            code: ErrorCode::BadEvent,
            reason: e.reason,
        }
    }
}

/// Opens one MQTT payload of a registered reader (docs/protocol.md): a sealed event's mac
/// is checked over the exact bytes of its body before the body is parsed; a bare event is
/// taken only from a reader marked legacy, with its v1 mac when the reader must sign.
fn open_event(reader_id: &str, wire: &ReaderWire, payload: &[u8]) -> Result<ReaderEvent, Refused> {
    let bad_mac = |seq: Option<u64>, reason: &str| Refused {
        seq,
        code: ErrorCode::BadMac,
        reason: reason.to_owned(),
    };
    match message::envelope(payload)? {
        Envelope::Sealed { body, mac } => {
            if !message::verify_sealed(reader_id, &wire.secret, &body, &mac) {
                // Its seq, if one can be read, only addresses the refusal.
                return Err(bad_mac(
                    message::readable_seq(body.as_bytes()),
                    "the sealed event's mac does not verify",
                ));
            }
            let mut event = message::parse_event(body.as_bytes())?;
            // Inside a seal a v1 mac adds nothing: the seal covers every byte.
            event.mac = None;
            Ok(event)
        }
        Envelope::Bare if !wire.legacy => Err(bad_mac(
            message::readable_seq(payload),
            "an unsealed event from a reader that must seal its events (not marked legacy)",
        )),
        Envelope::Bare => {
            let event = message::parse_event(payload)?;
            match message::check_event_mac(reader_id, &wire.secret, &event) {
                EventMac::Valid => Ok(event),
                EventMac::Absent if !wire.require_signed_events => Ok(event),
                EventMac::Absent => Err(bad_mac(
                    Some(event.seq),
                    "an unsigned event from a reader that must sign its events",
                )),
                EventMac::Invalid => {
                    Err(bad_mac(Some(event.seq), "the event's mac does not verify"))
                }
            }
        }
    }
}

/// How a reader's door, REX or tamper event was recorded.
enum Logged {
    /// New, at this door (if the reader has one).
    New(Option<i64>),
    /// A resend, or not recorded at all (the log is down): nothing moves.
    Nothing,
    /// Refused: its seq belongs to another event.
    SeqReused,
}

/// A momentary unlock by an admin's hand.
#[derive(Debug, Clone, Copy)]
struct Unlock {
    until: DateTime<Utc>,
    /// The admin confirmed unlocking a door whose mode is `locked`; an ordinary unlock
    /// ends when the door is set to `locked`.
    overrides_locked: bool,
}

/// Why a momentary unlock was refused.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error("there is no door {0}")]
    UnknownDoor(i64),
    #[error("the site is in lockdown: end the lockdown to unlock doors")]
    Lockdown,
    #[error(
        "the door's mode is locked: an unlock would override it, so it needs an explicit confirmation"
    )]
    DoorLocked,
    #[error("the door has no reader to unlock it")]
    NoReader,
    #[error("the unlock could not be recorded: {0}")]
    Log(#[from] LogError),
}

/// A reader id as received, made safe to record: ids of registered readers are plain, and
/// anything else (a topic a stranger chose) is cut short and stripped of odd characters.
fn sanitized(reader_id: &str) -> String {
    reader_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Sortable and unique enough to name one decision in logs and on the wire.
fn new_decision_id(now: DateTime<Utc>) -> String {
    format!(
        "d-{:011x}{:08x}",
        now.timestamp_millis(),
        rand::random::<u32>()
    )
}

/// The decision for one swipe against the live policy, and the snapshot it was made under.
/// Not yet settled: `LivePolicy::settle` checks anti-passback again as it notes the passage.
fn decide_now(
    live: &LivePolicy,
    reader_id: &str,
    credential: &CredentialKey,
    pin: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(policy::Decision, Arc<Snapshot>), policy::DecideError> {
    let snapshot = live.snapshot();
    let request = Request {
        reader_id,
        credential,
        pin,
    };
    let decision =
        live.read_presence(|presence| policy::decide(&snapshot, presence, &request, now))?;
    Ok((decision, snapshot))
}

/// Whether an admin's unlock of `door_id` holds at `now`: not over, the door's site not
/// in lockdown, and the door not set to `locked` since (unless the unlock overrode that).
fn in_force(snapshot: &Snapshot, door_id: i64, unlock: &Unlock, now: DateTime<Utc>) -> bool {
    unlock.until > now
        && snapshot.door_view(door_id).is_some_and(|view| {
            !view.site.lockdown
                && (unlock.overrides_locked || view.door.mode != policy::DoorMode::Locked)
        })
}

/// The site and zone a door is in now (`None`s for no door, or one no longer known).
fn place_of(snapshot: &Snapshot, door_id: Option<i64>) -> (Option<i64>, Option<i64>) {
    door_id
        .and_then(|door| snapshot.door_view(door))
        .map_or((None, None), |view| {
            (Some(view.site.id), Some(view.zone.id))
        })
}

fn wire_code(code: policy::DenyCode) -> WireDenyCode {
    // Both enums spell docs/protocol.md's codes; `risk` is the protocol's catch-all.
    WireDenyCode::parse(code.as_str()).unwrap_or(WireDenyCode::Risk)
}

/// What one zone's due daily reset came to: the zone and how many people it forgot, or
/// the zone and why its reset could not be recorded (it stays due: tried again next time).
pub type ZoneReset = Result<(i64, usize), (i64, String)>;

impl Hub {
    pub fn new(live: Arc<LivePolicy>, log: EventLog, clock: Clock) -> Hub {
        Hub {
            live,
            log,
            clock,
            doors: Arc::default(),
            health: HealthBoard::default(),
            faults: Arc::default(),
            unlocks: Arc::default(),
            mode_changes: Arc::new(tokio::sync::watch::channel(0).0),
            pins: PinLockout::default(),
        }
    }

    /// Blocks a card after `policy.attempts` wrong PINs in a row, for `policy.block_for`
    /// (`[readers]` settings; 5 and 15 minutes otherwise).
    pub fn with_pin_lockout(mut self, policy: LockoutPolicy) -> Hub {
        self.pins = PinLockout::new(policy);
        self
    }

    /// Changes when a momentary unlock starts or ends: readers' modes are to be re-sent.
    pub fn watch_mode_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.mode_changes.subscribe()
    }

    fn mode_changed(&self) {
        self.mode_changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Unlocks a door for `duration` by an admin's hand: its readers are told `unlocked`
    /// and then their usual mode again; the door opening meanwhile is not forced. Refused
    /// during a lockdown, and for a door whose mode is `locked` unless `override_locked`
    /// (the admin confirmed it). Recorded in the event log (the caller records the admin
    /// change). Returns when the unlock ends.
    pub async fn unlock_for(
        &self,
        door_id: i64,
        duration: chrono::Duration,
        override_locked: bool,
        by: &str,
    ) -> Result<DateTime<Utc>, UnlockError> {
        let now = self.clock.now();
        let snapshot = self.live.snapshot();
        let view = snapshot
            .door_view(door_id)
            .ok_or(UnlockError::UnknownDoor(door_id))?;
        if view.site.lockdown {
            return Err(UnlockError::Lockdown);
        }
        let locked = view.door.mode == policy::DoorMode::Locked;
        if locked && !override_locked {
            return Err(UnlockError::DoorLocked);
        }
        if !snapshot.readers().iter().any(|r| r.door_id == door_id) {
            return Err(UnlockError::NoReader);
        }
        let until = now + duration;
        let mut event = Event::new(EventKind::RemoteUnlock, now);
        event.door_id = Some(door_id);
        (event.site_id, event.zone_id) = (Some(view.site.id), Some(view.zone.id));
        event.detail = serde_json::json!({
            "by": by,
            "seconds": duration.num_seconds(),
            "overrides_locked": locked,
        })
        .to_string();
        self.log.append(event).await?;
        if let Ok(mut unlocked) = self.unlocks.lock() {
            unlocked.insert(
                door_id,
                Unlock {
                    until,
                    overrides_locked: locked,
                },
            );
        }
        let ms = u32::try_from(duration.num_milliseconds()).unwrap_or(u32::MAX);
        self.with_doors(|d| d.granted(door_id, ms, now));
        self.mode_changed();
        Ok(until)
    }

    /// The doors unlocked by an admin's hand now, with when each unlock ends: not during
    /// their site's lockdown, nor an ordinary unlock of a door set to `locked` since.
    pub fn unlocked_doors(&self) -> Vec<(i64, DateTime<Utc>)> {
        let snapshot = self.live.snapshot();
        let now = self.clock.now();
        let Ok(unlocked) = self.unlocks.lock() else {
            return Vec::new();
        };
        let mut doors: Vec<(i64, DateTime<Utc>)> = unlocked
            .iter()
            .filter(|(door_id, unlock)| in_force(&snapshot, **door_id, unlock, now))
            .map(|(door_id, unlock)| (*door_id, unlock.until))
            .collect();
        doors.sort_unstable();
        doors
    }

    /// When the admin's unlock of `door_id` ends, if one is in force
    /// ([`Hub::unlocked_doors`]).
    pub fn unlocked_until(&self, door_id: i64) -> Option<DateTime<Utc>> {
        let snapshot = self.live.snapshot();
        let now = self.clock.now();
        let unlocked = self.unlocks.lock().ok()?;
        unlocked
            .get(&door_id)
            .filter(|unlock| in_force(&snapshot, door_id, unlock, now))
            .map(|unlock| unlock.until)
    }

    /// Performs the daily anti-passback resets that have come due (`LivePolicy::
    /// presence_resets_due`): each is recorded as a `presence_reset` event first, then
    /// applied, so that a restart (which rebuilds presence from the passages after a
    /// zone's last recorded reset) agrees. One that cannot be recorded is not applied, and
    /// is due again at the next call. Returns what each due zone came to (`ZoneReset`).
    pub async fn reset_presence_due(&self, now: DateTime<Utc>) -> Vec<ZoneReset> {
        let mut done = Vec::new();
        for due in self.live.presence_resets_due(now) {
            let local = due.due.with_timezone(&due.timezone);
            let record = Event {
                zone_id: Some(due.zone_id),
                site_id: Some(due.site_id),
                detail: format!(
                    "daily anti-passback reset of {} {} ({}): everyone counted inside may enter again",
                    local.format("%Y-%m-%d"),
                    policy::format_reset_time(due.local_time),
                    due.timezone.name()
                ),
                ..Event::new(EventKind::PresenceReset, now)
            };
            if let Err(e) = self.log.append(record).await {
                tracing::error!(zone_id = due.zone_id, error = %e, "anti-passback reset not recorded; it is tried again in a minute");
                done.push(Err((due.zone_id, e.to_string())));
                continue;
            }
            let forgotten = self.live.reset_presence(due.zone_id, now);
            tracing::info!(
                zone_id = due.zone_id,
                forgotten,
                "daily anti-passback reset: the zone's presence was cleared"
            );
            done.push(Ok((due.zone_id, forgotten)));
        }
        done
    }

    /// Ends momentary unlocks whose time is up, and those a lockdown or the door's being
    /// set to `locked` ended meanwhile (so that they do not resume when it is over);
    /// called every second.
    pub fn end_unlocks(&self, now: DateTime<Utc>) {
        let snapshot = self.live.snapshot();
        let ended = match self.unlocks.lock() {
            Ok(mut unlocked) => {
                let before = unlocked.len();
                unlocked.retain(|door_id, unlock| in_force(&snapshot, *door_id, unlock, now));
                unlocked.len() != before
            }
            Err(_) => false,
        };
        if ended {
            self.mode_changed();
        }
    }

    /// Whether `reader_id` is a registered reader.
    pub fn knows_reader(&self, reader_id: &str) -> bool {
        self.live.readers().get(reader_id).is_some()
    }

    /// What the doors are doing, as their readers report it; the console reads it.
    pub fn doors(&self) -> Arc<Mutex<DoorStates>> {
        self.doors.clone()
    }

    /// The readers' health, as the hub sees their traffic.
    pub fn health(&self) -> HealthBoard {
        self.health.clone()
    }

    /// Handles one MQTT message from `reader_id` (as the topic names it) and returns the
    /// answer to send, if any. An answer is returned only once the event is durable.
    pub async fn handle_mqtt(&self, reader_id: &str, payload: &[u8]) -> Option<Reply> {
        let now = self.clock.now();
        let readers = self.live.readers();
        let Some(wire) = readers.get(reader_id) else {
            // Unregistered readers get no answer: the appliance does not talk to strangers.
            self.fault(
                reader_id,
                None,
                "a message from an unregistered reader",
                now,
            )
            .await;
            return None;
        };
        if wire.protocol != "mqtt" {
            self.fault(
                reader_id,
                None,
                "an MQTT message in the name of a reader registered for Modbus",
                now,
            )
            .await;
            return None;
        }
        let event = match open_event(reader_id, wire, payload) {
            Ok(event) => event,
            Err(Refused { seq, code, reason }) => {
                self.fault(reader_id, seq, &reason, now).await;
                return match code {
                    // A bad mac is answered even without a seq, so that a reader holding
                    // a wrong secret is told; a payload that is no event needs a seq.
                    ErrorCode::BadMac => Some(Reply {
                        reader_id: reader_id.to_owned(),
                        command: Command::Error {
                            reference: seq,
                            code,
                        },
                    }),
                    _ => seq.map(|seq| self.error(reader_id, seq, code)),
                };
            }
        };
        self.handle_event(reader_id, &event).await
    }

    /// Handles one event of a registered reader whose transport has vouched for it (an
    /// MQTT message that passed its checks, or a Modbus poll) and returns the answer.
    pub async fn handle_event(&self, reader_id: &str, event: &ReaderEvent) -> Option<Reply> {
        let now = self.clock.now();
        if self.live.readers().get(reader_id).is_none() {
            self.fault(reader_id, None, "an event from an unregistered reader", now)
                .await;
            return None;
        }
        self.health.seen(reader_id, now);
        match &event.body {
            EventBody::Swipe { credential, pin } => {
                self.swipe(reader_id, event, credential, pin.as_deref(), now)
                    .await
            }
            EventBody::Door { open } => {
                let kind = if *open {
                    EventKind::DoorOpen
                } else {
                    EventKind::DoorClosed
                };
                match self.record_reader_event(reader_id, event, kind, now).await {
                    Logged::New(Some(door_id)) => {
                        let alarm = self.with_doors(|d| d.contact(door_id, reader_id, *open, now));
                        if let Some(alarm) = alarm {
                            self.record_alarm(alarm, Some(reader_id), now).await;
                        }
                        None
                    }
                    Logged::New(None) | Logged::Nothing => None,
                    Logged::SeqReused => {
                        Some(self.error(reader_id, event.seq, ErrorCode::SeqReused))
                    }
                }
            }
            EventBody::Rex => {
                match self
                    .record_reader_event(reader_id, event, EventKind::Rex, now)
                    .await
                {
                    Logged::New(Some(door_id)) => {
                        self.with_doors(|d| d.rex(door_id, now));
                        None
                    }
                    Logged::New(None) | Logged::Nothing => None,
                    Logged::SeqReused => {
                        Some(self.error(reader_id, event.seq, ErrorCode::SeqReused))
                    }
                }
            }
            EventBody::Tamper { active } => {
                let kind = if *active {
                    EventKind::Tamper
                } else {
                    EventKind::TamperCleared
                };
                match self.record_reader_event(reader_id, event, kind, now).await {
                    Logged::SeqReused => {
                        Some(self.error(reader_id, event.seq, ErrorCode::SeqReused))
                    }
                    Logged::New(_) | Logged::Nothing => None,
                }
            }
            // Heartbeats keep a reader's health current; they are not worth a row each.
            EventBody::Heartbeat { uptime_s } => {
                self.health.heartbeat(reader_id, *uptime_s, now);
                None
            }
        }
    }

    /// The mode each registered reader should be in now: `locked` while its site is in
    /// lockdown, `unlocked` during a momentary unlock, otherwise its door's mode.
    pub fn reader_modes(&self) -> Vec<(String, ReaderMode)> {
        let snapshot = self.live.snapshot();
        let now = self.clock.now();
        // An unlock that a lockdown or the door's `locked` mode ended is forgotten here
        // too, where readers are told their modes: it must not resume when that is over.
        let unlocked: Vec<i64> = self
            .unlocks
            .lock()
            .map(|mut u| {
                u.retain(|door_id, unlock| in_force(&snapshot, *door_id, unlock, now));
                u.keys().copied().collect()
            })
            .unwrap_or_default();
        snapshot
            .readers()
            .iter()
            .filter_map(|r| {
                let view = snapshot.door_view(r.door_id)?;
                let mode = if view.site.lockdown {
                    ReaderMode::Locked
                } else if unlocked.contains(&r.door_id) {
                    ReaderMode::Unlocked
                } else {
                    match view.door.mode {
                        policy::DoorMode::Normal => ReaderMode::Normal,
                        policy::DoorMode::CardAndPin => ReaderMode::CardAndPin,
                        policy::DoorMode::Locked => ReaderMode::Locked,
                        policy::DoorMode::Unlocked => ReaderMode::Unlocked,
                    }
                };
                Some((r.reader_id.clone(), mode))
            })
            .collect()
    }

    /// Records a registered reader's retained status (its last will says `offline`).
    pub async fn reader_status(&self, reader_id: &str, online: bool) {
        if self.live.readers().get(reader_id).is_none() {
            return;
        }
        let now = self.clock.now();
        self.health.status(reader_id, online, now);
        let kind = if online {
            EventKind::ReaderOnline
        } else {
            EventKind::ReaderOffline
        };
        let snapshot = self.live.snapshot();
        let door_id = snapshot.reader(reader_id).map(|r| r.door_id());
        let (site_id, zone_id) = place_of(&snapshot, door_id);
        let record = Event {
            reader_id: Some(reader_id.to_owned()),
            door_id,
            site_id,
            zone_id,
            ..Event::new(kind, now)
        };
        if let Err(e) = self.log.append(record).await {
            tracing::error!(reader = reader_id, error = %e, "reader status not recorded");
        }
    }

    /// Signs a reply for the wire with the reader's secret; None if the reader is gone.
    pub fn encode(&self, reply: &Reply) -> Option<Vec<u8>> {
        let readers = self.live.readers();
        let wire = readers.get(&reply.reader_id)?;
        Some(
            reply
                .command
                .encode(&reply.reader_id, &wire.secret, self.clock.now()),
        )
    }

    fn error(&self, reader_id: &str, seq: u64, code: ErrorCode) -> Reply {
        Reply {
            reader_id: reader_id.to_owned(),
            command: Command::Error {
                reference: Some(seq),
                code,
            },
        }
    }

    async fn swipe(
        &self,
        reader_id: &str,
        event: &ReaderEvent,
        credential: &WireCredential,
        pin: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Reply> {
        let key = match credential {
            WireCredential::Card { uid } => match CredentialKey::card(uid) {
                Ok(key) => key,
                Err(e) => {
                    self.fault(reader_id, Some(event.seq), &e.to_string(), now)
                        .await;
                    return Some(self.error(reader_id, event.seq, ErrorCode::BadEvent));
                }
            },
            WireCredential::Wiegand { facility, number } => CredentialKey::Wiegand {
                facility: *facility,
                number: *number,
            },
        };
        let card = key.to_string();
        // A card blocked by wrong PINs is refused without its PIN being looked at; a PIN
        // is checked only while the card has attempts left (counted under one lock, so
        // guesses sent at once cannot all be checked).
        let (ticket, blocked) = match pin {
            Some(_) => match self.pins.admit(&card, now) {
                pin_lockout::Admission::Check(ticket) => (Some(ticket), None),
                pin_lockout::Admission::Refused(until) => (None, Some(until)),
            },
            None => (None, self.pins.blocked_until(&card, now).map(Some)),
        };
        let decided = match pin {
            // A PIN is checked with argon2id (tens of milliseconds of CPU, 19 MiB): on the
            // argon2id pool's door lane, off the async threads and never queued behind
            // console sign-ins.
            Some(pin) if blocked.is_none() => {
                let (live, reader, pin) = (self.live.clone(), reader_id.to_owned(), pin.to_owned());
                let key = key.clone();
                crate::identity::secret::pool()
                    .run(crate::identity::secret::Lane::Door, move || {
                        decide_now(&live, &reader, &key, Some(&pin), now).map_err(|e| e.to_string())
                    })
                    .await
                    // The door lane full or its worker gone: no answer, the reader resends.
                    .unwrap_or_else(|e| Err(format!("the PIN could not be checked: {e}")))
            }
            _ => decide_now(&self.live, reader_id, &key, None, now).map_err(|e| e.to_string()),
        };
        let (mut decision, snapshot) = match decided {
            Ok(decided) => decided,
            Err(e) => {
                self.fault(reader_id, Some(event.seq), &e, now).await;
                return None;
            }
        };
        if blocked.is_some() && !matches!(decision.outcome, Outcome::Deny(_)) {
            // Whatever else the card may do, it does nothing during its block.
            decision.outcome = Outcome::Deny(policy::DenyCode::PinWrong);
        }
        // Anti-passback checked again and the passage noted, in one step: of two swipes
        // of one card decided at once, only one passes.
        let (decision, passage) = self.live.settle(&snapshot, decision, now);
        let pin_result = self.pin_result(&decision, pin.is_some());
        let mut detail = serde_json::to_string(&decision.reason).unwrap_or_default();
        if let Some(until) = blocked {
            detail = serde_json::json!({
                "pin_lockout": {
                    "until": until,
                    "attempts": self.pins.policy().attempts,
                },
                "decision": decision.reason,
            })
            .to_string();
        }
        let decision_id = new_decision_id(now);
        let reference = event.seq;
        let (command, result, deny_code) = match decision.outcome {
            Outcome::Grant { unlock_ms } => (
                Command::Grant {
                    reference,
                    decision_id: decision_id.clone(),
                    unlock_ms,
                },
                "granted",
                None,
            ),
            Outcome::Deny(code) => (
                Command::Deny {
                    reference,
                    decision_id: decision_id.clone(),
                    code: wire_code(code),
                },
                "denied",
                Some(code.as_str().to_owned()),
            ),
            Outcome::PinRequired => (
                Command::PinRequired {
                    reference,
                    decision_id: decision_id.clone(),
                },
                "pin_required",
                None,
            ),
        };
        let record = Event {
            reader_id: Some(reader_id.to_owned()),
            seq: Some(stored_seq(event.seq)),
            reader_ts: Some(event.ts),
            content_digest: Some(message::content_digest(event)),
            door_id: Some(decision.door_id),
            person_id: decision.person_id,
            credential_id: decision.credential_id,
            // The presented key is kept only when it matched nobody: evidence of probing.
            presented: decision.credential_id.is_none().then(|| key.to_string()),
            result: Some(result.to_owned()),
            deny_code,
            decision_id: Some(decision_id),
            command: serde_json::to_string(&command).ok(),
            detail,
            site_id: Some(decision.site_id),
            zone_id: Some(decision.zone_id),
            antipassback_zone_id: decision.antipassback_zone,
            direction: Some(decision.direction),
            reason_code: Some(decision.reason.code().to_owned()),
            policy_version: Some(snapshot.version()),
            ..Event::new(EventKind::Swipe, now)
        };
        let appended = self.log.append(record).await;
        if let Some(passage) = passage
            && !matches!(appended, Ok(Appended::New(_)))
        {
            // Not on record (a resend of an event that is, a reused seq, or the log
            // down): nobody was let through by this swipe.
            self.live.undo(passage);
        }
        match appended {
            Ok(Appended::New(_)) => {
                if let Outcome::Grant { unlock_ms } = decision.outcome {
                    self.with_doors(|d| d.granted(decision.door_id, unlock_ms, now));
                }
                // Counted once the swipe is on record, so that a resend counts once.
                if let Some(ticket) = ticket
                    && let Some(until) = ticket.settle(pin_result, now)
                {
                    self.record_pin_lockout(reader_id, &decision, until, now)
                        .await;
                }
                Some(Reply {
                    reader_id: reader_id.to_owned(),
                    command,
                })
            }
            // A resend: the same answer as the first time, and nothing recorded or unlocked
            // twice.
            Ok(Appended::Duplicate { command, .. }) => command
                .and_then(|c| serde_json::from_str::<Command>(&c).ok())
                .map(|command| Reply {
                    reader_id: reader_id.to_owned(),
                    command,
                }),
            // Another event under a seq already used: a reader fault, and no decision.
            Ok(Appended::SeqReused { id }) => {
                Some(self.seq_reused(reader_id, event, id, now).await)
            }
            Err(e) => {
                // Unrecorded, unanswered: the reader resends and is answered once the
                // event is on record.
                tracing::error!(reader = reader_id, seq = event.seq, error = %e, "swipe not recorded; no answer sent");
                None
            }
        }
    }

    /// What a swipe's decision says of its PIN: wrong (it counts), right (checked at a
    /// card+PIN door and let through, which clears the count), or not looked at.
    fn pin_result(&self, decision: &policy::Decision, had_pin: bool) -> PinResult {
        if !had_pin {
            return PinResult::NotChecked;
        }
        match decision.reason {
            Reason::PinWrong { .. } | Reason::PinNotSet { .. } => PinResult::Wrong,
            // A grant at a door that asks for PINs passed its PIN check; a grant anywhere
            // else (a door open by schedule, or without PINs) never looked at the PIN.
            Reason::Entitled(_) | Reason::SoftAntipassback { .. }
                if self
                    .live
                    .snapshot()
                    .door(decision.door_id)
                    .is_some_and(|door| door.mode == policy::DoorMode::CardAndPin) =>
            {
                PinResult::Right
            }
            _ => PinResult::NotChecked,
        }
    }

    /// Records the alarm of a card blocked by wrong PINs (never the PINs themselves).
    async fn record_pin_lockout(
        &self,
        reader_id: &str,
        decision: &policy::Decision,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let attempts = self.pins.policy().attempts;
        tracing::warn!(
            reader = reader_id,
            credential_id = decision.credential_id,
            %until,
            "card blocked after {attempts} wrong PINs in a row"
        );
        let record = Event {
            reader_id: Some(reader_id.to_owned()),
            door_id: Some(decision.door_id),
            site_id: Some(decision.site_id),
            zone_id: Some(decision.zone_id),
            person_id: decision.person_id,
            credential_id: decision.credential_id,
            detail: format!(
                "{attempts} wrong PINs in a row: the card is refused everywhere until {}",
                until.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            ..Event::new(EventKind::PinLockout, now)
        };
        if let Err(e) = self.log.append(record).await {
            tracing::error!(reader = reader_id, error = %e, "PIN lockout alarm not recorded");
        }
    }

    /// Refuses an event whose seq belongs to another event, as a reader fault.
    async fn seq_reused(
        &self,
        reader_id: &str,
        event: &ReaderEvent,
        first: i64,
        now: DateTime<Utc>,
    ) -> Reply {
        self.fault(
            reader_id,
            Some(event.seq),
            &format!(
                "seq reused: event {first} already has this seq with other content; nothing decided"
            ),
            now,
        )
        .await;
        self.error(reader_id, event.seq, ErrorCode::SeqReused)
    }

    /// Records a reader's door, REX or tamper event; a new one at its door moves the door's
    /// state, once per event.
    async fn record_reader_event(
        &self,
        reader_id: &str,
        event: &ReaderEvent,
        kind: EventKind,
        now: DateTime<Utc>,
    ) -> Logged {
        let snapshot = self.live.snapshot();
        let door_id = snapshot.reader(reader_id).map(|r| r.door_id());
        let (site_id, zone_id) = place_of(&snapshot, door_id);
        let record = Event {
            reader_id: Some(reader_id.to_owned()),
            seq: Some(stored_seq(event.seq)),
            reader_ts: Some(event.ts),
            content_digest: Some(message::content_digest(event)),
            door_id,
            site_id,
            zone_id,
            ..Event::new(kind, now)
        };
        match self.log.append(record).await {
            Ok(Appended::New(_)) => Logged::New(door_id),
            Ok(Appended::Duplicate { .. }) => Logged::Nothing,
            Ok(Appended::SeqReused { id }) => {
                self.seq_reused(reader_id, event, id, now).await;
                Logged::SeqReused
            }
            Err(e) => {
                tracing::error!(reader = reader_id, seq = event.seq, error = %e, "reader event not recorded");
                Logged::Nothing
            }
        }
    }

    fn with_doors<T>(&self, f: impl FnOnce(&mut DoorStates) -> T) -> T {
        match self.doors.lock() {
            Ok(mut d) => f(&mut d),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    async fn record_alarm(&self, alarm: Alarm, reader_id: Option<&str>, now: DateTime<Utc>) {
        let (kind, door_id, detail) = match alarm {
            Alarm::ForcedOpen { door_id } => (
                EventKind::ForcedOpen,
                door_id,
                "the door opened without a grant or a request-to-exit".to_owned(),
            ),
            Alarm::HeldOpen { door_id, open_for } => (
                EventKind::HeldOpen,
                door_id,
                format!("the door has been open for {} s", open_for.num_seconds()),
            ),
        };
        tracing::warn!(door_id, alarm = kind.as_str(), "door alarm");
        let (site_id, zone_id) = place_of(&self.live.snapshot(), Some(door_id));
        let record = Event {
            reader_id: reader_id.map(str::to_owned),
            door_id: Some(door_id),
            site_id,
            zone_id,
            detail,
            ..Event::new(kind, now)
        };
        if let Err(e) = self.log.append(record).await {
            tracing::error!(door_id, error = %e, "door alarm not recorded");
        }
    }

    /// Records a held-open alarm for every door open past its threshold at `now`; `serve`
    /// calls this every second.
    pub async fn check_held_open(&self, now: DateTime<Utc>) {
        let snapshot = self.live.snapshot();
        let health = self.health.clone();
        let alarms = self.with_doors(|d| {
            d.held_open(
                now,
                |door_id| {
                    snapshot
                        .door(door_id)
                        .map(|door| chrono::TimeDelta::seconds(i64::from(door.held_open_s)))
                },
                |reader| health.is_offline(reader),
            )
        });
        for alarm in alarms {
            self.record_alarm(alarm, None, now).await;
        }
    }

    /// Records a fault a driver saw on a registered reader (a Modbus device that answers
    /// garbage, a swipe it could not deliver).
    pub async fn driver_fault(&self, reader_id: &str, what: &str) {
        self.fault(reader_id, None, what, self.clock.now()).await;
    }

    /// Records what a minute of faults over budget counted, now that it is over; `serve`
    /// asks every second, so that the count of a flood that stopped is told too.
    pub async fn report_suppressed_faults(&self, now: DateTime<Utc>) {
        let closed = match self.faults.lock() {
            Ok(mut budget) => budget.close(now),
            Err(poisoned) => poisoned.into_inner().close(now),
        };
        if let Some(closed) = closed {
            self.record_suppressed(closed, now).await;
        }
    }

    async fn record_suppressed(&self, closed: Suppressed, now: DateTime<Utc>) {
        for (reader, count) in closed.by_reader {
            let detail = format!(
                "{count} more fault(s) since {} were counted, not recorded one by one (over {PER_READER} a minute from this reader, or {IN_ALL} from all)",
                closed.since.format("%Y-%m-%dT%H:%M:%SZ")
            );
            tracing::warn!(reader = %reader, count, "reader faults over budget");
            self.append_fault_row(reader, detail, now).await;
        }
    }

    /// One `reader_fault` row; `reader` as made safe to record (registered ids are plain,
    /// so their door is found).
    async fn append_fault_row(&self, reader: String, detail: String, now: DateTime<Utc>) {
        let snapshot = self.live.snapshot();
        let door_id = snapshot.reader(&reader).map(|r| r.door_id());
        let (site_id, zone_id) = place_of(&snapshot, door_id);
        let record = Event {
            reader_id: Some(reader),
            door_id,
            site_id,
            zone_id,
            detail,
            ..Event::new(EventKind::ReaderFault, now)
        };
        if let Err(e) = self.log.append(record).await {
            tracing::error!(error = %e, "reader fault not recorded");
        }
    }

    /// Records a reader fault; the reader's own words are kept short and never parsed. A
    /// reader id's faults beyond its budget are counted and recorded as one summary.
    async fn fault(&self, reader_id: &str, seq: Option<u64>, what: &str, now: DateTime<Utc>) {
        let reader = sanitized(reader_id);
        let detail: String = match seq {
            Some(seq) => format!("seq {seq}: {what}"),
            None => what.to_owned(),
        }
        .chars()
        .take(300)
        .collect();
        if self.live.readers().get(reader_id).is_some() {
            self.health.fault(reader_id);
        }
        let (admission, closed) = match self.faults.lock() {
            Ok(mut budget) => budget.admit(&reader, now),
            Err(poisoned) => poisoned.into_inner().admit(&reader, now),
        };
        if let Some(closed) = closed {
            self.record_suppressed(closed, now).await;
        }
        if admission == Admission::Count {
            tracing::debug!(reader = %reader, fault = %detail, "reader fault (counted, not recorded)");
            return;
        }
        tracing::warn!(reader = %reader, fault = %detail, "reader fault");
        self.append_fault_row(reader, detail, now).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_deny_code_has_its_wire_code() {
        for code in policy::DenyCode::ALL {
            assert_eq!(wire_code(*code).as_str(), code.as_str());
        }
    }

    #[test]
    fn stranger_reader_ids_are_made_safe() {
        assert_eq!(sanitized("door-1.a_b"), "door-1.a_b");
        assert_eq!(sanitized("../x\n{\"a\"}"), "..?x???a??");
        assert_eq!(sanitized(&"x".repeat(500)).len(), 64);
    }
}
