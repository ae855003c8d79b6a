//! What the appliance knows of each reader's health: online or offline (its retained
//! status and last will), when it was last heard from, its last heartbeat, its faults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq, Eq)]
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
}

/// Shared between the hub, which updates it, and the API, which reads it.
#[derive(Clone, Default)]
pub struct HealthBoard {
    readers: Arc<Mutex<HashMap<String, ReaderHealth>>>,
}

impl HealthBoard {
    fn update(&self, reader_id: &str, f: impl FnOnce(&mut ReaderHealth)) {
        let mut readers = match self.readers.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
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

    /// The health of each of these readers (registered ones), in the order given.
    pub fn of<'a>(&self, reader_ids: impl Iterator<Item = &'a str>) -> Vec<ReaderHealth> {
        let readers = match self.readers.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        reader_ids
            .map(|id| {
                readers.get(id).cloned().unwrap_or_else(|| ReaderHealth {
                    reader_id: id.to_owned(),
                    ..ReaderHealth::default()
                })
            })
            .collect()
    }
}
