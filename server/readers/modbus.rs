//! Polls the registered Modbus readers: one driver per device, each feeding the hub; started,
//! restarted and stopped as readers are registered, moved and removed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_drivers::message::Command;
use gatehouse_drivers::modbus::{self, DeviceEvent, DeviceHandle, DevicePoller, DeviceSettings};
use gatehouse_drivers::networks::Networks;
use tokio::sync::oneshot;

use crate::app::live::LivePolicy;
use crate::config::ModbusConfig;
use crate::readers::hub::Hub;
use crate::store::DbPool;
use crate::store::load::ReaderWire;

/// Where one reader's device is; a change restarts its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    unit: u8,
}

impl Target {
    fn of(reader: &ReaderWire) -> Option<Target> {
        if reader.protocol != "modbus" {
            return None;
        }
        Some(Target {
            host: reader.modbus_host.clone()?,
            port: u16::try_from(reader.modbus_port.unwrap_or(502)).ok()?,
            unit: u8::try_from(reader.modbus_unit.unwrap_or(1)).ok()?,
        })
    }
}

struct Running {
    target: Target,
    handle: DeviceHandle,
    /// Dropping it stops the driver, which first locks the relay.
    _stop: oneshot::Sender<()>,
}

/// Starts polling (unless `[modbus] enabled = false`); runs until the process ends.
pub fn start(
    config: &ModbusConfig,
    allowed: Networks,
    live: Arc<LivePolicy>,
    hub: Hub,
    db: DbPool,
) {
    if !config.enabled {
        tracing::info!("Modbus polling is off ([modbus] enabled = false)");
        return;
    }
    tokio::spawn(supervise(config.clone(), allowed, live, hub, db));
}

/// Keeps one driver per registered Modbus reader, and each told its door's mode.
async fn supervise(
    config: ModbusConfig,
    allowed: Networks,
    live: Arc<LivePolicy>,
    hub: Hub,
    db: DbPool,
) {
    let mut swaps = live.watch_swaps();
    let mut unlocks = hub.watch_mode_changes();
    let mut running: HashMap<String, Running> = HashMap::new();
    loop {
        let wanted: HashMap<String, Target> = live
            .readers()
            .iter()
            .filter_map(|r| Target::of(r).map(|t| (r.reader_id.clone(), t)))
            .collect();
        running.retain(|reader_id, r| {
            let keep = wanted.get(reader_id) == Some(&r.target);
            if !keep {
                tracing::info!(reader = %reader_id, "stopping the Modbus driver of a removed or moved reader");
                hub.health().forget_poller(reader_id);
            }
            keep
        });
        for (reader_id, target) in wanted {
            if running.contains_key(&reader_id) {
                continue;
            }
            let first_seq = next_seq(&db, &reader_id).await;
            let settings = DeviceSettings {
                host: target.host.clone(),
                port: target.port,
                unit: target.unit,
                poll_interval: Duration::from_millis(config.poll_interval_ms),
                timeout: Duration::from_millis(config.timeout_ms),
                backoff_max: Duration::from_millis(config.backoff_max_ms),
                allowed: allowed.clone(),
            };
            let (handle, poller) = modbus::device(settings, first_seq);
            let (stop, stopped) = oneshot::channel();
            hub.health().attach_poller(&reader_id, handle.clone());
            tracing::info!(
                reader = %reader_id,
                // Debug: quoted and escaped, so a stored host cannot forge log lines.
                host = ?target.host,
                port = target.port,
                unit = target.unit,
                "polling a Modbus reader"
            );
            tokio::spawn(drive(
                reader_id.clone(),
                handle.clone(),
                poller,
                hub.clone(),
                stopped,
            ));
            running.insert(
                reader_id,
                Running {
                    target,
                    handle,
                    _stop: stop,
                },
            );
        }
        // Every device gets its door's mode; a driver writes only what changed, so a
        // lockdown reaches every door in one pass.
        for (reader_id, mode) in hub.reader_modes() {
            if let Some(r) = running.get(&reader_id) {
                r.handle.send(Command::Mode { mode });
            }
        }
        // A policy change (readers, modes) or a momentary unlock starting or ending.
        let changed = tokio::select! {
            r = swaps.changed() => r.is_ok(),
            r = unlocks.changed() => r.is_ok(),
        };
        if !changed {
            return;
        }
    }
}

/// Where this reader's numbering continues: after the last event recorded for it, so that
/// numbers stay unique across restarts.
async fn next_seq(db: &DbPool, reader_id: &str) -> u64 {
    let (db, reader) = (db.clone(), reader_id.to_owned());
    let stored = tokio::task::spawn_blocking(move || {
        let mut conn = db.get().map_err(|e| e.to_string())?;
        crate::store::event_log::highest_seq(&mut conn, &reader).map_err(|e| e.to_string())
    })
    .await;
    let error = match stored {
        Ok(Ok(highest)) => return highest.map_or(1, |h| h.saturating_add(1)),
        Ok(Err(e)) => e,
        Err(e) => e.to_string(),
    };
    // Numbers from the clock are above any earlier ones, unless the clock went back.
    tracing::error!(reader = reader_id, %error, "cannot read the reader's last event number; numbering from the clock");
    u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1)
}

/// Runs one device's driver until it is stopped: its events go to the hub, the hub's
/// answers back to the device.
async fn drive(
    reader_id: String,
    handle: DeviceHandle,
    mut poller: DevicePoller,
    hub: Hub,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let event = tokio::select! {
            biased;
            _ = &mut stopped => {
                poller.release().await;
                return;
            }
            event = poller.next() => event,
        };
        match event {
            DeviceEvent::Online => {
                tracing::info!(reader = %reader_id, "Modbus reader online");
                hub.reader_status(&reader_id, true).await;
            }
            DeviceEvent::Offline { reason } => {
                tracing::warn!(reader = %reader_id, %reason, "Modbus reader offline");
                hub.driver_fault(&reader_id, &format!("offline: {reason}"))
                    .await;
                hub.reader_status(&reader_id, false).await;
            }
            DeviceEvent::Fault { reason } => {
                hub.driver_fault(&reader_id, &reason).await;
            }
            DeviceEvent::Event(event) => {
                if let Some(reply) = hub.handle_event(&reader_id, &event).await {
                    handle.send(reply.command);
                }
            }
        }
    }
}
