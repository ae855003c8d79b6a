//! What the appliance knows of each reader's health: online or offline (its retained
//! status and last will), when it was last heard from, its last heartbeat, its faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use gatehouse_drivers::modbus::{DeviceHandle, PollStats};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct ReaderHealth {
    pub reader_id: String,
    /// From the reader's retained status; None until it has said.
    pub online: Option<bool>,
    /// The last valid event or status from the reader.
    pub last_seen: Option<DateTime<Utc>>,
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// The reader's uptime in its last heartbeat.
    pub uptime_s: Option<u64>,
    /// Reader faults since the appliance started.
    pub faults: u64,
    /// How polling goes, for Modbus readers.
    pub poll: Option<PollHealth>,
}

/// A Modbus reader's polling since the appliance started.
#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
pub struct PollHealth {
    /// Polls the device answered in full.
    pub polls: u64,
    /// Polls and connection attempts that failed.
    pub failures: u64,
    pub last_poll_at: Option<DateTime<Utc>>,
    /// The two requests of the last poll, in microseconds.
    pub last_round_trip_us: u64,
    /// The time between polls, averaged: the achieved cadence.
    pub mean_interval_ms: f64,
}

impl From<PollStats> for PollHealth {
    fn from(s: PollStats) -> PollHealth {
        PollHealth {
            polls: s.polls,
            failures: s.failures,
            last_poll_at: s.last_poll_at,
            last_round_trip_us: s.last_round_trip_us,
            mean_interval_ms: (s.mean_interval_ms * 10.0).round() / 10.0,
        }
    }
}

/// Shared between the hub, which updates it, and the API, which reads it.
#[derive(Clone, Default)]
pub struct HealthBoard {
    readers: Arc<Mutex<HashMap<String, ReaderHealth>>>,
    /// The Modbus drivers, whose poll statistics are read when health is asked for.
    pollers: Arc<Mutex<HashMap<String, DeviceHandle>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl HealthBoard {
    fn update(&self, reader_id: &str, f: impl FnOnce(&mut ReaderHealth)) {
        let mut readers = locked(&self.readers);
        let entry = readers
            .entry(reader_id.to_owned())
            .or_insert_with(|| ReaderHealth {
                reader_id: reader_id.to_owned(),
                ..ReaderHealth::default()
            });
        f(entry);
    }

    pub fn seen(&self, reader_id: &str, now: DateTime<Utc>) {
        self.update(reader_id, |h| h.last_seen = Some(now));
    }

    pub fn heartbeat(&self, reader_id: &str, uptime_s: u64, now: DateTime<Utc>) {
        self.update(reader_id, |h| {
            h.last_seen = Some(now);
            h.last_heartbeat = Some(now);
            h.uptime_s = Some(uptime_s);
        });
    }

    pub fn status(&self, reader_id: &str, online: bool, now: DateTime<Utc>) {
        self.update(reader_id, |h| {
            h.online = Some(online);
            if online {
                h.last_seen = Some(now);
            }
        });
    }

    pub fn fault(&self, reader_id: &str) {
        self.update(reader_id, |h| h.faults += 1);
    }

    /// Whether the reader has said it is offline (its status or last will, or its Modbus
    /// device unreachable); a reader that never said either way is not.
    pub fn is_offline(&self, reader_id: &str) -> bool {
        locked(&self.readers)
            .get(reader_id)
            .is_some_and(|h| h.online == Some(false))
    }

    /// The readers offline now ([`HealthBoard::is_offline`]).
    pub fn offline(&self) -> std::collections::HashSet<String> {
        locked(&self.readers)
            .values()
            .filter(|h| h.online == Some(false))
            .map(|h| h.reader_id.clone())
            .collect()
    }

    pub fn attach_poller(&self, reader_id: &str, handle: DeviceHandle) {
        locked(&self.pollers).insert(reader_id.to_owned(), handle);
    }

    pub fn forget_poller(&self, reader_id: &str) {
        locked(&self.pollers).remove(reader_id);
    }

    /// The health of each of these readers (registered ones), in the order given.
    pub fn of<'a>(&self, reader_ids: impl Iterator<Item = &'a str>) -> Vec<ReaderHealth> {
        let readers = locked(&self.readers);
        let pollers = locked(&self.pollers);
        reader_ids
            .map(|id| {
                let mut health = readers.get(id).cloned().unwrap_or_else(|| ReaderHealth {
                    reader_id: id.to_owned(),
                    ..ReaderHealth::default()
                });
                health.poll = pollers.get(id).map(|p| PollHealth::from(p.stats()));
                health
            })
            .collect()
    }
}
