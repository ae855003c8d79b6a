//! The Modbus TCP driver: polls one device on a cadence, turns a moved swipe counter and
//! changed discrete inputs into reader events, and turns commands into coil and register writes.
//!
//! Like the MQTT driver it is a cloneable [`DeviceHandle`] (send commands, read poll
//! statistics) and a [`DevicePoller`] that its owner drives by awaiting [`DevicePoller::next`].
//! Commands are written as soon as the owner calls `next` again, ahead of the next poll.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{Request, Response, Slave};

use crate::message::{Command, EventBody, ReaderEvent, ReaderMode, WireCredential};
use crate::modbus_map::{
    Beeper, COIL_LOCK_RELAY, DI_DOOR_OPEN, DI_REX, DI_TAMPER, DISCRETE_INPUTS, HR_LED, Led,
    SWIPE_REGISTERS, decode_swipe,
};

/// How long the LED shows a deny or an error before it returns to the mode's colour.
const DENY_FEEDBACK: Duration = Duration::from_secs(2);
/// How long the LED asks for a PIN (amber) before it gives up.
const PIN_FEEDBACK: Duration = Duration::from_secs(10);
/// The first wait before reconnecting; it doubles with each failure up to `backoff_max`.
const BACKOFF_START: Duration = Duration::from_millis(100);

/// Where a device is and how to poll it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettings {
    pub host: String,
    pub port: u16,
    pub unit: u8,
    pub poll_interval: Duration,
    /// How long one request (or the TCP connect) may take before the device counts as down.
    pub timeout: Duration,
    /// The longest wait between reconnection attempts.
    pub backoff_max: Duration,
    /// Where the host may resolve to: addresses outside are never connected to, whatever
    /// the name resolves to at the time (`[readers] allowed_networks`).
    pub allowed: crate::networks::Networks,
}

/// What the poller reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The device answered a poll after being unknown or down.
    Online,
    /// The device stopped answering (refused, timed out, or answered garbage). Reported once
    /// per outage; the poller keeps reconnecting with backoff.
    Offline { reason: String },
    /// A swipe, door contact change, REX press or tamper change, numbered from `first_seq`.
    Event(ReaderEvent),
    /// Something the device did that is not an event: swipe registers that do not decode,
    /// swipes it made while unreachable or faster than the poll, an answer that could not be
    /// written.
    Fault { reason: String },
}

/// Poll statistics of one device, for health pages and benchmarks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollStats {
    /// Polls answered in full since the poller started.
    pub polls: u64,
    /// Polls and connection attempts that failed.
    pub failures: u64,
    pub last_poll_at: Option<DateTime<Utc>>,
    /// Both requests of the last poll, in microseconds.
    pub last_round_trip_us: u64,
    /// A moving average of the time between poll starts, in milliseconds.
    pub mean_interval_ms: f64,
}

/// Sends commands to a device's poller and reads its statistics; cheap to clone.
#[derive(Clone)]
pub struct DeviceHandle {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<PollStats>>,
}

impl DeviceHandle {
    /// Queues a command; false once the poller is gone.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    pub fn stats(&self) -> PollStats {
        match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inputs {
    door_open: bool,
    rex: bool,
    tamper: bool,
}

/// Drives one device: connects, polls, writes, reconnects. See the module docs.
pub struct DevicePoller {
    settings: DeviceSettings,
    commands: mpsc::UnboundedReceiver<Command>,
    stats: Arc<Mutex<PollStats>>,
    context: Option<Context>,
    queue: VecDeque<DeviceEvent>,
    next_seq: u64,
    /// The swipe counter last read; kept across reconnects to tell missed swipes.
    counter: Option<u16>,
    /// Whether `counter` was read on the current connection.
    counter_current: bool,
    /// The discrete inputs last read; kept across reconnects so that changes made while the
    /// device was unreachable become events when it is back.
    inputs: Option<Inputs>,
    online: Option<bool>,
    failures_in_row: u32,
    retry_at: Option<Instant>,
    mode: ReaderMode,
    relock_at: Option<Instant>,
    feedback_until: Option<Instant>,
    ticker: Interval,
    last_poll_started: Option<Instant>,
}

/// A handle and its poller for one device; events are numbered from `first_seq` (the
/// owner continues where its records of this reader end, so numbers survive restarts).
pub fn device(settings: DeviceSettings, first_seq: u64) -> (DeviceHandle, DevicePoller) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(PollStats::default()));
    let mut ticker = tokio::time::interval(settings.poll_interval.max(Duration::from_millis(1)));
    // A poll that ran late is not made up for with a burst.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    (
        DeviceHandle {
            commands: tx,
            stats: stats.clone(),
        },
        DevicePoller {
            settings,
            commands: rx,
            stats,
            context: None,
            queue: VecDeque::new(),
            next_seq: first_seq,
            counter: None,
            counter_current: false,
            inputs: None,
            online: None,
            failures_in_row: 0,
            retry_at: None,
            mode: ReaderMode::Normal,
            relock_at: None,
            feedback_until: None,
            ticker,
            last_poll_started: None,
        },
    )
}

/// Why a request failed, in words for the fault record.
fn describe(error: tokio_modbus::Error) -> String {
    match error {
        // The codec reports frames it cannot parse as invalid data.
        tokio_modbus::Error::Transport(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            format!("answered garbage: {e}")
        }
        tokio_modbus::Error::Transport(e) => format!("connection failed: {e}"),
        tokio_modbus::Error::Protocol(e) => format!("answered garbage: {e}"),
    }
}

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The LED colour of a mode when no answer is showing.
fn idle_led(mode: ReaderMode) -> Led {
    match mode {
        ReaderMode::Normal | ReaderMode::CardAndPin => Led::Off,
        ReaderMode::Locked => Led::Red,
        ReaderMode::Unlocked => Led::Green,
    }
}

impl DevicePoller {
    /// The next thing to report. Between reports it polls, writes queued commands, ends
    /// unlocks and reconnects; cancelling this future between reports is safe.
    pub async fn next(&mut self) -> DeviceEvent {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return event;
            }
            if self.context.is_none() {
                // Modes queued before (re)connecting are applied by the connection itself.
                while let Ok(command) = self.commands.try_recv() {
                    self.execute(command).await;
                }
                if let Some(event) = self.queue.pop_front() {
                    return event;
                }
                if let Some(at) = self.retry_at {
                    tokio::select! {
                        biased;
                        Some(command) = self.commands.recv() => {
                            self.execute(command).await;
                            continue;
                        }
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                self.connect().await;
                continue;
            }
            let timer = match (self.relock_at, self.feedback_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                Some(command) = self.commands.recv() => self.execute(command).await,
                () = sleep_until_or_never(timer) => self.on_timer().await,
                _ = self.ticker.tick() => self.poll_once().await,
            }
        }
    }

    /// Locks the relay and turns the LED off, for a device the appliance stops driving
    /// (its reader was removed or moved): a door must not stay unlocked by a poller that is
    /// gone.
    pub async fn release(&mut self) {
        if self.context.is_some() {
            let _ = self.write_relay(false).await;
            let _ = self
                .write(Request::WriteSingleRegister(HR_LED, Led::Off as u16))
                .await;
        }
        self.context = None;
    }

    async fn connect(&mut self) {
        // An IPv6 address needs its brackets before the port.
        let target = match self.settings.host.parse::<std::net::IpAddr>() {
            Ok(ip) => std::net::SocketAddr::new(ip, self.settings.port).to_string(),
            Err(_) => format!("{}:{}", self.settings.host, self.settings.port),
        };
        let addrs = match tokio::time::timeout(
            self.settings.timeout,
            tokio::net::lookup_host(target.as_str()),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.collect::<Vec<_>>(),
            Ok(Err(e)) => return self.failed(format!("cannot resolve {target:?}: {e}")),
            Err(_) => return self.failed(format!("no address for {target:?} in time")),
        };
        // Checked on every connection, so a name that later resolves elsewhere is not followed.
        let allowed: Vec<std::net::SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.settings.allowed.contains(a.ip()))
            .collect();
        if allowed.is_empty() {
            let found: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            return self.failed(format!(
                "{target:?} resolves to {}, outside the allowed networks ({})",
                found.join(", "),
                self.settings.allowed
            ));
        }
        let stream = match tokio::time::timeout(
            self.settings.timeout,
            TcpStream::connect(allowed.as_slice()),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return self.failed(format!("cannot connect to {target:?}: {e}")),
            Err(_) => {
                return self.failed(format!(
                    "no connection to {target:?} within {} ms",
                    self.settings.timeout.as_millis()
                ));
            }
        };
        // Requests are tiny and answered one at a time: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        self.context = Some(tokio_modbus::client::tcp::attach_slave(
            stream,
            Slave(self.settings.unit),
        ));
        self.counter_current = false;
        // Whatever was unlocking before the outage is over: put the device in the state
        // its mode asks for (the relay locked unless the door is in unlocked mode).
        self.relock_at = None;
        self.feedback_until = None;
        if self.write_idle_state().await.is_ok() {
            self.ticker.reset_immediately();
        }
    }

    /// Drops the connection and schedules the next attempt; reports the first failure of an
    /// outage (later ones only count).
    fn failed(&mut self, reason: String) {
        self.context = None;
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        self.update_stats(|s| s.failures += 1);
        let doubling = 1u32 << self.failures_in_row.saturating_sub(1).min(16);
        let backoff = BACKOFF_START
            .saturating_mul(doubling)
            .min(self.settings.backoff_max);
        // Up to a quarter more, so that many devices lost together do not retry in step.
        let jitter_range = u64::try_from(backoff.as_millis() / 4).unwrap_or(0).max(1);
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        ) % jitter_range;
        self.retry_at = Some(Instant::now() + backoff + Duration::from_millis(jitter));
        if self.online != Some(false) {
            self.online = Some(false);
            self.queue.push_back(DeviceEvent::Offline { reason });
        } else {
            tracing::debug!(
                host = ?self.settings.host,
                port = self.settings.port,
                %reason,
                "Modbus device still unreachable"
            );
        }
    }

    fn update_stats(&self, f: impl FnOnce(&mut PollStats)) {
        match self.stats.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// One request with the timeout; the error in words.
    async fn call(&mut self, request: Request<'_>) -> Result<Response, String> {
        let Some(context) = self.context.as_mut() else {
            return Err("not connected".to_owned());
        };
        match tokio::time::timeout(self.settings.timeout, context.call(request)).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(exception))) => Err(format!("refused the request: {exception}")),
            Ok(Err(e)) => Err(describe(e)),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.settings.timeout.as_millis()
            )),
        }
    }

    async fn write(&mut self, request: Request<'_>) -> Result<(), String> {
        match self.call(request).await {
            Ok(_) => Ok(()),
            Err(reason) => {
                self.failed(reason.clone());
                Err(reason)
            }
        }
    }

    async fn write_relay(&mut self, unlocked: bool) -> Result<(), String> {
        self.write(Request::WriteSingleCoil(COIL_LOCK_RELAY, unlocked))
            .await
    }

    async fn write_led_and_beeper(&mut self, led: Led, beeper: Beeper) -> Result<(), String> {
        let words = [led as u16, beeper as u16];
        self.write(Request::WriteMultipleRegisters(HR_LED, words[..].into()))
            .await
    }

    async fn write_idle_state(&mut self) -> Result<(), String> {
        self.write_relay(self.mode == ReaderMode::Unlocked).await?;
        self.write(Request::WriteSingleRegister(
            HR_LED,
            idle_led(self.mode) as u16,
        ))
        .await
    }

    /// Writes a command to the device. An answer that cannot be written is a fault: the
    /// person at the door saw nothing, and the record says so.
    async fn execute(&mut self, command: Command) {
        let answer_to = match &command {
            Command::Grant { reference, .. }
            | Command::Deny { reference, .. }
            | Command::PinRequired { reference, .. } => Some(*reference),
            Command::Error { reference, .. } => *reference,
            Command::Mode { .. } => None,
        };
        if self.context.is_none() {
            if let Command::Mode { mode } = command {
                // Applied on reconnect.
                self.mode = mode;
            } else if let Some(seq) = answer_to {
                self.queue.push_back(DeviceEvent::Fault {
                    reason: format!(
                        "the answer to event {seq} was not written: the device is unreachable"
                    ),
                });
            }
            return;
        }
        let now = Instant::now();
        let written = match command {
            Command::Grant { unlock_ms, .. } => {
                // The relay first: it is what opens the door.
                let relay = self.write_relay(true).await;
                let until = now + Duration::from_millis(u64::from(unlock_ms));
                self.relock_at = Some(until);
                self.feedback_until = Some(until);
                match relay {
                    Ok(()) => self.write_led_and_beeper(Led::Green, Beeper::Grant).await,
                    Err(e) => Err(e),
                }
            }
            Command::Deny { .. } | Command::Error { .. } => {
                self.feedback_until = Some(now + DENY_FEEDBACK);
                self.write_led_and_beeper(Led::Red, Beeper::Deny).await
            }
            Command::PinRequired { .. } => {
                self.feedback_until = Some(now + PIN_FEEDBACK);
                self.write_led_and_beeper(Led::Amber, Beeper::PinNeeded)
                    .await
            }
            Command::Mode { mode } => {
                if mode == self.mode {
                    return;
                }
                self.mode = mode;
                // Locked and unlocked modes take the relay at once, cutting short an unlock
                // in progress (a lockdown must not wait for it); the others let it finish.
                let relay = match mode {
                    ReaderMode::Locked | ReaderMode::Unlocked => {
                        self.relock_at = None;
                        self.write_relay(mode == ReaderMode::Unlocked).await
                    }
                    ReaderMode::Normal | ReaderMode::CardAndPin if self.relock_at.is_none() => {
                        self.write_relay(false).await
                    }
                    _ => Ok(()),
                };
                match relay {
                    Ok(()) if self.feedback_until.is_none() => {
                        self.write(Request::WriteSingleRegister(HR_LED, idle_led(mode) as u16))
                            .await
                    }
                    other => other,
                }
            }
        };
        if let (Err(reason), Some(seq)) = (written, answer_to) {
            self.queue.push_back(DeviceEvent::Fault {
                reason: format!("the answer to event {seq} was not written: {reason}"),
            });
        }
    }

    /// Ends an unlock (the relay goes back to what the mode asks) or an answer's LED.
    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.relock_at.is_some_and(|at| at <= now) {
            self.relock_at = None;
            if self
                .write_relay(self.mode == ReaderMode::Unlocked)
                .await
                .is_err()
            {
                return;
            }
        }
        if self.feedback_until.is_some_and(|at| at <= now) {
            self.feedback_until = None;
            let _ = self
                .write(Request::WriteSingleRegister(
                    HR_LED,
                    idle_led(self.mode) as u16,
                ))
                .await;
        }
    }

    async fn poll_once(&mut self) {
        let started = Instant::now();
        let registers = match self
            .call(Request::ReadInputRegisters(0, SWIPE_REGISTERS))
            .await
        {
            Ok(Response::ReadInputRegisters(words))
                if words.len() == usize::from(SWIPE_REGISTERS) =>
            {
                words
            }
            Ok(other) => {
                return self.failed(format!(
                    "answered garbage: {other:?} to a read of {SWIPE_REGISTERS} input registers"
                ));
            }
            Err(reason) => return self.failed(reason),
        };
        let inputs = match self
            .call(Request::ReadDiscreteInputs(0, DISCRETE_INPUTS))
            .await
        {
            Ok(Response::ReadDiscreteInputs(bits))
                if bits.len() >= usize::from(DISCRETE_INPUTS) =>
            {
                Inputs {
                    door_open: bits[usize::from(DI_DOOR_OPEN)],
                    rex: bits[usize::from(DI_REX)],
                    tamper: bits[usize::from(DI_TAMPER)],
                }
            }
            Ok(other) => {
                return self.failed(format!(
                    "answered garbage: {other:?} to a read of {DISCRETE_INPUTS} discrete inputs"
                ));
            }
            Err(reason) => return self.failed(reason),
        };
        let round_trip = started.elapsed();
        let since_last = self.last_poll_started.map(|t| started - t);
        self.last_poll_started = Some(started);
        self.update_stats(|s| {
            s.polls += 1;
            s.last_poll_at = Some(Utc::now());
            s.last_round_trip_us = u64::try_from(round_trip.as_micros()).unwrap_or(u64::MAX);
            if let Some(gap) = since_last {
                let gap_ms = gap.as_secs_f64() * 1000.0;
                s.mean_interval_ms = if s.mean_interval_ms == 0.0 {
                    gap_ms
                } else {
                    s.mean_interval_ms * 0.9 + gap_ms * 0.1
                };
            }
        });
        self.failures_in_row = 0;
        self.retry_at = None;
        if self.online != Some(true) {
            self.online = Some(true);
            self.queue.push_back(DeviceEvent::Online);
        }
        self.on_registers(&registers).await;
        self.on_inputs(inputs);
    }

    async fn on_registers(&mut self, registers: &[u16]) {
        let counter = registers[0];
        let last = self.counter.replace(counter);
        let current = std::mem::replace(&mut self.counter_current, true);
        let Some(last) = last else {
            // First contact: whatever the counter says happened before we were watching.
            return;
        };
        if counter == last {
            return;
        }
        let moved = counter.wrapping_sub(last);
        if !current {
            // A swipe made while the device was unreachable is not answered late: the
            // person has likely walked away, and a door unlocking for nobody is worse.
            self.queue.push_back(DeviceEvent::Fault {
                reason: format!(
                    "{moved} swipe(s) made while the device was unreachable were not answered"
                ),
            });
            return;
        }
        if moved > 1 {
            self.queue.push_back(DeviceEvent::Fault {
                reason: format!(
                    "{} swipe(s) came between two polls and were missed; the latest is answered",
                    moved - 1
                ),
            });
        }
        match decode_swipe(registers) {
            Ok(swipe) => {
                let event = self.event(EventBody::Swipe {
                    credential: WireCredential::Card { uid: swipe.uid },
                    pin: swipe.pin,
                });
                self.queue.push_back(event);
            }
            Err(e) => {
                self.queue.push_back(DeviceEvent::Fault {
                    reason: format!("the swipe registers do not decode: {e}"),
                });
                // The person gets the deny signal rather than silence.
                self.feedback_until = Some(Instant::now() + DENY_FEEDBACK);
                let _ = self.write_led_and_beeper(Led::Red, Beeper::Deny).await;
            }
        }
    }

    fn on_inputs(&mut self, now: Inputs) {
        let before = self.inputs.replace(now);
        let mut bodies = Vec::new();
        match before {
            // First contact: the door's position is taken as it is, but an active tamper
            // is worth an event whenever it is first seen.
            None => {
                if now.tamper {
                    bodies.push(EventBody::Tamper { active: true });
                }
            }
            Some(before) => {
                // REX first: a door opened by someone leaving is not forced.
                if now.rex && !before.rex {
                    bodies.push(EventBody::Rex);
                }
                if now.door_open != before.door_open {
                    bodies.push(EventBody::Door {
                        open: now.door_open,
                    });
                }
                if now.tamper != before.tamper {
                    bodies.push(EventBody::Tamper { active: now.tamper });
                }
            }
        }
        for body in bodies {
            let event = self.event(body);
            self.queue.push_back(event);
        }
    }

    fn event(&mut self, body: EventBody) -> DeviceEvent {
        let ts = Utc::now();
        let seq = self.next_seq;
        self.next_seq = self.next_seq.saturating_add(1);
        DeviceEvent::Event(ReaderEvent {
            seq,
            ts,
            ts_raw: ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            body,
            mac: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::DenyCode;
    use crate::sim_modbus::{Behaviour, Output, SimDevice};

    const WAIT: Duration = Duration::from_secs(5);

    async fn pair(unit: u8) -> (SimDevice, DeviceHandle, DevicePoller) {
        let sim = SimDevice::start("127.0.0.1:0".parse().unwrap(), unit)
            .await
            .unwrap();
        let settings = DeviceSettings {
            host: "127.0.0.1".into(),
            port: sim.addr().port(),
            unit,
            poll_interval: Duration::from_millis(10),
            timeout: Duration::from_millis(200),
            backoff_max: Duration::from_millis(300),
            allowed: crate::networks::Networks::private(),
        };
        let (handle, poller) = device(settings, 100);
        (sim, handle, poller)
    }

    async fn next(poller: &mut DevicePoller) -> DeviceEvent {
        tokio::time::timeout(WAIT, poller.next())
            .await
            .expect("the poller reported nothing")
    }

    /// Drives the poller until `want` matches, returning what it saw on the way.
    async fn until(
        poller: &mut DevicePoller,
        want: impl Fn(&DeviceEvent) -> bool,
    ) -> Vec<DeviceEvent> {
        let mut seen = Vec::new();
        loop {
            let event = next(poller).await;
            let done = want(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    fn body(event: &DeviceEvent) -> Option<&EventBody> {
        match event {
            DeviceEvent::Event(e) => Some(&e.body),
            _ => None,
        }
    }

    /// Keeps the poller running in the background for tests that watch the device.
    fn drive(mut poller: DevicePoller) -> mpsc::UnboundedReceiver<DeviceEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                if tx.send(poller.next().await).is_err() {
                    return;
                }
            }
        });
        rx
    }

    #[tokio::test]
    async fn a_swipe_becomes_an_event_and_a_grant_unlocks_then_relocks() {
        let (mut sim, handle, mut poller) = pair(7).await;
        assert_eq!(next(&mut poller).await, DeviceEvent::Online);
        sim.swipe("04A1B2C3D4E5F6", Some("0482")).unwrap();
        let event = next(&mut poller).await;
        let DeviceEvent::Event(event) = event else {
            panic!("expected the swipe, got {event:?}");
        };
        assert_eq!(event.seq, 100, "numbered from first_seq");
        assert_eq!(
            event.body,
            EventBody::Swipe {
                credential: WireCredential::Card {
                    uid: "04A1B2C3D4E5F6".into()
                },
                pin: Some("0482".into()),
            }
        );
        sim.clear_writes();
        handle.send(Command::Grant {
            reference: event.seq,
            decision_id: "d-1".into(),
            unlock_ms: 150,
        });
        let mut events = drive(poller);
        let (beeper, _) = sim.answer(WAIT).await.unwrap();
        assert_eq!(beeper, Beeper::Grant);
        assert!(sim.relay_unlocked());
        assert_eq!(sim.led(), Some(Led::Green));
        let relocked = sim.next_write(WAIT).await.unwrap();
        assert_eq!(relocked.output, Output::Relay { unlocked: false });
        assert_eq!(
            sim.next_write(WAIT).await.unwrap().output,
            Output::Led(Led::Off)
        );
        assert!(!sim.relay_unlocked());
        assert!(events.try_recv().is_err(), "nothing else to report");
    }

    #[tokio::test]
    async fn deny_and_pin_required_reach_the_device() {
        let (mut sim, handle, poller) = pair(1).await;
        let mut events = drive(poller);
        assert_eq!(events.recv().await, Some(DeviceEvent::Online));
        sim.clear_writes();
        handle.send(Command::Deny {
            reference: 1,
            decision_id: "d".into(),
            code: DenyCode::Schedule,
        });
        assert_eq!(sim.answer(WAIT).await.unwrap().0, Beeper::Deny);
        assert_eq!(sim.led(), Some(Led::Red));
        assert!(!sim.relay_unlocked());
        handle.send(Command::PinRequired {
            reference: 2,
            decision_id: "d".into(),
        });
        assert_eq!(sim.answer(WAIT).await.unwrap().0, Beeper::PinNeeded);
        assert_eq!(sim.led(), Some(Led::Amber));
    }

    #[tokio::test]
    async fn modes_hold_the_relay_and_lockdown_cuts_an_unlock_short() {
        let (mut sim, handle, poller) = pair(1).await;
        let _events = drive(poller);
        handle.send(Command::Mode {
            mode: ReaderMode::Unlocked,
        });
        tokio::time::timeout(WAIT, async {
            while !sim.relay_unlocked() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert_eq!(sim.led(), Some(Led::Green));
        handle.send(Command::Mode {
            mode: ReaderMode::Normal,
        });
        handle.send(Command::Grant {
            reference: 9,
            decision_id: "d".into(),
            unlock_ms: 60_000,
        });
        sim.clear_writes();
        assert_eq!(sim.answer(WAIT).await.unwrap().0, Beeper::Grant);
        assert!(sim.relay_unlocked());
        handle.send(Command::Mode {
            mode: ReaderMode::Locked,
        });
        let relock = sim.next_write(WAIT).await.unwrap();
        assert_eq!(relock.output, Output::Relay { unlocked: false });
    }

    #[tokio::test]
    async fn inputs_become_events_in_order_and_only_on_change() {
        let (sim, _handle, mut poller) = pair(1).await;
        sim.set_tamper(true);
        let seen = until(&mut poller, |e| body(e).is_some()).await;
        assert_eq!(seen[0], DeviceEvent::Online);
        assert_eq!(
            body(&seen[1]),
            Some(&EventBody::Tamper { active: true }),
            "an active tamper is reported at first contact"
        );
        sim.set_rex_pressed(true);
        sim.set_door_open(true);
        let rex = next(&mut poller).await;
        let door = next(&mut poller).await;
        assert_eq!(body(&rex), Some(&EventBody::Rex), "REX before the door");
        assert_eq!(body(&door), Some(&EventBody::Door { open: true }));
        sim.set_rex_pressed(false);
        sim.set_door_open(false);
        sim.set_tamper(false);
        let closed = next(&mut poller).await;
        assert_eq!(body(&closed), Some(&EventBody::Door { open: false }));
        let cleared = next(&mut poller).await;
        assert_eq!(body(&cleared), Some(&EventBody::Tamper { active: false }));
        let seqs: Vec<u64> = [&seen[1], &rex, &door, &closed, &cleared]
            .iter()
            .filter_map(|e| match e {
                DeviceEvent::Event(e) => Some(e.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![100, 101, 102, 103, 104]);
    }

    #[tokio::test]
    async fn swipes_faster_than_the_poll_and_garbage_registers_are_faults() {
        let (sim, _handle, mut poller) = pair(1).await;
        assert_eq!(next(&mut poller).await, DeviceEvent::Online);
        sim.swipe_garbage();
        let fault = next(&mut poller).await;
        assert!(
            matches!(&fault, DeviceEvent::Fault { reason } if reason.contains("do not decode")),
            "{fault:?}"
        );
        sim.swipe_after_missed("0C0D", None, 2).unwrap();
        let seen = until(&mut poller, |e| body(e).is_some()).await;
        assert!(
            seen.iter()
                .any(|e| matches!(e, DeviceEvent::Fault { reason } if reason.contains("missed"))),
            "{seen:?}"
        );
        assert_eq!(
            body(seen.last().unwrap()),
            Some(&EventBody::Swipe {
                credential: WireCredential::Card { uid: "0C0D".into() },
                pin: None
            }),
            "the latest swipe is answered"
        );
    }

    #[tokio::test]
    async fn a_device_that_answers_garbage_or_nothing_goes_offline_and_comes_back() {
        for behaviour in [Behaviour::Garbage, Behaviour::Silent] {
            let (sim, _handle, mut poller) = pair(3).await;
            assert_eq!(next(&mut poller).await, DeviceEvent::Online);
            sim.set_behaviour(behaviour);
            let offline = next(&mut poller).await;
            let DeviceEvent::Offline { reason } = &offline else {
                panic!("{behaviour:?}: expected offline, got {offline:?}");
            };
            match behaviour {
                Behaviour::Garbage => assert!(reason.contains("garbage"), "{reason}"),
                _ => assert!(reason.contains("no answer within 200 ms"), "{reason}"),
            }
            // Reconnections meet the same behaviour (raw noise or silence) without a new
            // report each time: the poller is driven through three more failed attempts
            // and reports nothing. Then the device recovers.
            let stats = poller.stats.clone();
            let before = stats.lock().unwrap().failures;
            let three_more = async {
                while stats.lock().unwrap().failures < before + 3 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            tokio::time::timeout(WAIT, async {
                tokio::select! {
                    event = poller.next() => panic!("{behaviour:?}: a retry was reported: {event:?}"),
                    () = three_more => {}
                }
            })
            .await
            .expect("the poller retries");
            sim.set_behaviour(Behaviour::Normal);
            assert_eq!(next(&mut poller).await, DeviceEvent::Online);
        }
    }

    #[tokio::test]
    async fn swipes_while_unreachable_are_not_answered_late() {
        let (sim, handle, mut poller) = pair(1).await;
        assert_eq!(next(&mut poller).await, DeviceEvent::Online);
        sim.set_behaviour(Behaviour::Silent);
        assert!(matches!(
            next(&mut poller).await,
            DeviceEvent::Offline { .. }
        ));
        sim.swipe("0A0B", None).unwrap();
        handle.send(Command::Grant {
            reference: 5,
            decision_id: "d".into(),
            unlock_ms: 1000,
        });
        let undelivered = next(&mut poller).await;
        assert!(
            matches!(&undelivered, DeviceEvent::Fault { reason } if reason.contains("unreachable")),
            "{undelivered:?}"
        );
        sim.set_behaviour(Behaviour::Normal);
        assert_eq!(next(&mut poller).await, DeviceEvent::Online);
        let missed = next(&mut poller).await;
        assert!(
            matches!(&missed, DeviceEvent::Fault { reason } if reason.contains("while the device was unreachable")),
            "{missed:?}"
        );
        assert!(!sim.relay_unlocked());
    }

    #[tokio::test]
    async fn a_device_that_refuses_the_connection_is_offline_with_the_reason() {
        let (sim, _handle, mut poller) = pair(1).await;
        let addr = sim.addr();
        drop(sim);
        // Gone once its port refuses connections.
        tokio::time::timeout(WAIT, async {
            while tokio::net::TcpStream::connect(addr).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the device stops listening");
        let offline = next(&mut poller).await;
        assert!(
            matches!(&offline, DeviceEvent::Offline { reason } if reason.contains("cannot connect")),
            "{offline:?}"
        );
    }

    #[tokio::test]
    async fn a_host_outside_the_allowed_networks_is_never_connected_to() {
        let (sim, _handle, _poller) = pair(1).await;
        let settings = DeviceSettings {
            host: "localhost".into(),
            port: sim.addr().port(),
            unit: 1,
            poll_interval: Duration::from_millis(10),
            timeout: Duration::from_millis(200),
            backoff_max: Duration::from_millis(300),
            allowed: crate::networks::Networks(vec!["10.0.0.0/8".parse().unwrap()]),
        };
        let (_h, mut poller) = device(settings, 1);
        let offline = next(&mut poller).await;
        assert!(
            matches!(&offline, DeviceEvent::Offline { reason } if reason.contains("outside the allowed networks")),
            "{offline:?}"
        );
        assert_eq!(sim.polls(), 0, "the device was never reached");
    }

    #[tokio::test]
    async fn a_wrong_unit_id_is_refused() {
        let (sim, _handle, _poller) = pair(1).await;
        let settings = DeviceSettings {
            host: "127.0.0.1".into(),
            port: sim.addr().port(),
            unit: 2,
            poll_interval: Duration::from_millis(10),
            timeout: Duration::from_millis(200),
            backoff_max: Duration::from_millis(300),
            allowed: crate::networks::Networks::private(),
        };
        let (_h, mut other) = device(settings, 1);
        let offline = next(&mut other).await;
        assert!(
            matches!(&offline, DeviceEvent::Offline { reason } if reason.contains("refused")),
            "{offline:?}"
        );
    }
}
