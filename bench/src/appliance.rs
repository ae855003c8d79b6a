//! The appliance inside a benchmark's process: runtimes named so their CPU can be told
//! apart, waiting for its readers to come online, and event rows like the ones it records.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use gatehouse::readers::health::HealthBoard;
use gatehouse::store::event_log::{Event, EventKind};

/// A multi-threaded runtime whose threads are named `name` (see `measure::thread_cpu`).
pub fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()?)
}

/// Waits until the appliance has seen every one of `reader_ids` online; after `timeout`,
/// fails saying how many it saw.
pub fn wait_online(health: &HealthBoard, reader_ids: &[String], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let online = health
            .of(reader_ids.iter().map(String::as_str))
            .iter()
            .filter(|h| h.online == Some(true))
            .count();
        if online == reader_ids.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "after {timeout:?} the appliance has seen only {online} of {} readers online",
                reader_ids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A swipe as the appliance records one: event `i` of `reader` at `at`, with its decision,
/// answer and reasons in their usual sizes.
pub fn recorded_swipe(
    i: usize,
    at: DateTime<Utc>,
    reader: String,
    door: i64,
    person: i64,
    denied: bool,
) -> Event {
    Event {
        reader_id: Some(reader),
        seq: Some(i64::try_from(i).unwrap_or(i64::MAX)),
        reader_ts: Some(at),
        door_id: Some(door),
        person_id: Some(person),
        credential_id: Some(person * 2),
        result: Some(if denied { "denied" } else { "granted" }.to_owned()),
        deny_code: denied.then(|| "schedule".to_owned()),
        decision_id: Some(format!("d-{i:019x}")),
        command: Some(format!(
            "{{\"type\":\"grant\",\"ref\":{i},\"decision_id\":\"d-{i:019x}\",\"unlock_ms\":5000}}"
        )),
        detail:
            r#"{"kind":"entitled","entitlement_id":1,"level_id":1,"schedule_id":1,"via_zone":null}"#
                .to_owned(),
        ..Event::new(EventKind::Swipe, at)
    }
}
