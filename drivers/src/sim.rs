//! A simulated MQTT reader: on the wire exactly what docs/protocol.md asks of a real one
//! (numbered events, sealed unless told to be a legacy reader, commands verified before
//! they are believed). Used by `gatehouse simulate`, the tests and the benchmarks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};

use crate::message::{self, Command, EventBody, ReaderMode, RejectedCommand, WireCredential};
use crate::mqtt::ClientTls;

#[derive(Debug, Clone)]
pub struct SimSettings {
    pub host: String,
    pub port: u16,
    pub reader_id: String,
    /// The reader's secret: verifies commands and seals events (see `EventFormat`).
    pub secret: String,
    /// Broker credentials; readers use their id and secret on the embedded broker.
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic_root: String,
    /// As a legacy reader (`EventFormat::Legacy`), add the optional v1 `mac` to events.
    /// Sealed events (the default) are always authenticated, whatever this says.
    pub sign_events: bool,
}

/// How a simulated reader sends its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    /// Sealed (v2): what every reader not marked legacy must send.
    #[default]
    Sealed,
    /// Bare (v1), with the v1 mac when `SimSettings::sign_events`: a reader marked legacy.
    Legacy,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the broker refused or dropped the reader: {0}")]
    Connection(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the MQTT client is gone: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("the system's random source failed")]
    Random,
}

/// What arrived on the reader's command topic.
pub type Received = Result<Command, RejectedCommand>;

/// How a simulated reader shows itself on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimPresence {
    /// As the reader itself (the many-reader simulation, the tests): client id
    /// `sim-{reader_id}`, a retained `online` on connecting and a retained `offline` as its
    /// last will, so the appliance sees it come and go.
    #[default]
    Announced,
    /// A brief visitor under the reader's id (`gatehouse simulate --reader R --card UID`):
    /// a client id of its own, no status and no last will. A real reader connected at the
    /// same time is neither cut off (a broker drops the older of two connections sharing a
    /// client id) nor reported offline when the visitor leaves. (A broker that makes every
    /// client's id its username, as the packaged Mosquitto's readers' listener does, gives
    /// the visitor the reader's id all the same: the visitor then takes the reader's
    /// connection for the moment of its swipe, and never reconnects once dropped.)
    Visitor,
}

pub struct SimReader {
    settings: SimSettings,
    client: AsyncClient,
    commands: mpsc::Receiver<(Vec<u8>, DateTime<Utc>)>,
    next_seq: u64,
    /// The mode the appliance last set (a verified `mode` command).
    mode: Option<ReaderMode>,
    /// The connection's task: it reconnects forever, so it ends with the reader.
    connection: tokio::task::AbortHandle,
    /// How many times the broker has accepted the connection: more than once means it was
    /// dropped (or cut off by another client with the same client id) and came back.
    connects: Arc<AtomicU32>,
    /// The reader's clock when it is not the wall clock (a simulated day).
    clock: Option<ScaledClock>,
    format: EventFormat,
    /// QoS 1 publishes handed to the client, and the broker's acknowledgements of them:
    /// `flush` waits until the second catches up with the first.
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
}

/// A clock that runs `speed` times faster than the wall clock from `origin` (at the wall
/// clock's `real_origin`): a simulated day, which the appliance and its simulated readers
/// must keep alike, since readers believe only commands within 30 s of their own time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaledClock {
    pub real_origin: DateTime<Utc>,
    pub origin: DateTime<Utc>,
    pub speed: u32,
}

impl ScaledClock {
    /// Starts now (on the wall clock) at `origin`.
    pub fn starting_at(origin: DateTime<Utc>, speed: u32) -> ScaledClock {
        ScaledClock {
            real_origin: Utc::now(),
            origin,
            speed: speed.max(1),
        }
    }

    /// This clock's time at the wall clock's `real`.
    pub fn at(&self, real: DateTime<Utc>) -> DateTime<Utc> {
        let speed = i32::try_from(self.speed).unwrap_or(i32::MAX);
        self.origin + (real - self.real_origin) * speed
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.at(Utc::now())
    }

    /// How long on the wall clock until this clock shows `t` (zero once it has).
    pub fn wall_time_until(&self, t: DateTime<Utc>) -> Duration {
        let ahead = (t - self.now()).to_std().unwrap_or_default();
        ahead / self.speed.max(1)
    }

    /// A span of this clock's time, on the wall clock.
    pub fn wall_span(&self, span: Duration) -> Duration {
        span / self.speed.max(1)
    }
}

impl Drop for SimReader {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl SimReader {
    /// Connects, subscribes to its command topic, and returns once the broker accepted both.
    pub async fn connect(settings: SimSettings, first_seq: u64) -> Result<SimReader, SimError> {
        Self::open(settings, None, SimPresence::Announced, first_seq).await
    }

    /// As `connect`, over TLS: the broker's certificate must chain to a CA that `tls`
    /// trusts and be valid for `settings.host`. (A separate constructor rather than a
    /// field of `SimSettings`, so that plain readers are written as before.)
    pub async fn connect_tls(
        settings: SimSettings,
        tls: ClientTls,
        first_seq: u64,
    ) -> Result<SimReader, SimError> {
        Self::open(settings, Some(tls), SimPresence::Announced, first_seq).await
    }

    /// As `connect` (plain when `tls` is `None`, else as `connect_tls`), showing itself on
    /// the broker as `presence` says. (A parameter rather than a field of `SimSettings`,
    /// for the same reason as `connect_tls`.)
    pub async fn connect_as(
        settings: SimSettings,
        tls: Option<ClientTls>,
        presence: SimPresence,
        first_seq: u64,
    ) -> Result<SimReader, SimError> {
        Self::open(settings, tls, presence, first_seq).await
    }

    async fn open(
        settings: SimSettings,
        tls: Option<ClientTls>,
        presence: SimPresence,
        first_seq: u64,
    ) -> Result<SimReader, SimError> {
        let client_id = match presence {
            SimPresence::Announced => format!("sim-{}", settings.reader_id),
            // Random, so that two installers checking one reader at once do not cut each
            // other off either; the broker still authenticates it as the reader (by its
            // username and secret, not its client id).
            SimPresence::Visitor => format!(
                "sim-{}-visit-{}",
                settings.reader_id,
                hex::encode(random_bytes::<6>()?)
            ),
        };
        let mut options = MqttOptions::new(client_id, &settings.host, settings.port);
        // Room to send oversized events on purpose: refusing them is the appliance's job.
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(64 << 10, 4 << 20);
        if let Some(user) = &settings.username {
            options.set_credentials(user, settings.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &tls {
            options.set_transport(tls.transport());
        }
        let status_topic = format!(
            "{}/readers/{}/status",
            settings.topic_root, settings.reader_id
        );
        let announced = presence == SimPresence::Announced;
        if announced {
            options.set_last_will(rumqttc::LastWill::new(
                &status_topic,
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        eventloop.set_network_options(crate::mqtt::low_latency());
        let commands_topic = format!(
            "{}/readers/{}/commands",
            settings.topic_root, settings.reader_id
        );
        let (tx, commands) = mpsc::channel(256);
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let subscriber = client.clone();
        let topic = commands_topic.clone();
        let connects = Arc::new(AtomicU32::new(0));
        let counted = connects.clone();
        let published = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(AtomicU64::new(0));
        let acks = acked.clone();
        let connection = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                        if subscriber
                            .subscribe(&topic, QoS::AtLeastOnce)
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == topic => {
                        if tx.send((p.payload.to_vec(), Utc::now())).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(e.to_string()));
                            break;
                        }
                        // A visitor that was dropped does not come back: where the broker
                        // gives every client of one username the same client id (the
                        // packaged Mosquitto's readers' listener), it was the real reader
                        // taking its connection back, and coming back would drop it again.
                        if matches!(e, ConnectionError::ConnectionRefused(_)) || !announced {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let connection = connection.abort_handle();
        let failed = |e: SimError| {
            connection.abort();
            Err(e)
        };
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return failed(SimError::Connection(e)),
            Ok(Err(_)) => return failed(SimError::Connection("the connection task ended".into())),
            Err(_) => return failed(SimError::Timeout(Duration::from_secs(10))),
        }
        if announced {
            client
                .publish(&status_topic, QoS::AtLeastOnce, true, "online")
                .await?;
            published.fetch_add(1, Ordering::Relaxed);
        }
        Ok(SimReader {
            settings,
            client,
            commands,
            next_seq: first_seq,
            mode: None,
            connection,
            connects,
            clock: None,
            format: EventFormat::default(),
            published,
            acked,
        })
    }

    /// Waits until the broker has acknowledged everything this reader published, at most
    /// `timeout`: what a reader does before it goes away, so that its last events (a door
    /// closing) are not lost with its connection.
    pub async fn flush(&self, timeout: Duration) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.published.load(Ordering::Relaxed) {
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Timeout(timeout));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Sends events as `format` from now on (sealed until told otherwise).
    pub fn set_event_format(&mut self, format: EventFormat) {
        self.format = format;
    }

    pub fn reader_id(&self) -> &str {
        &self.settings.reader_id
    }

    /// How many times the broker has accepted this reader's connection (1 while it has
    /// never been dropped).
    pub fn connects(&self) -> u32 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Publishes the next event and returns its seq.
    pub async fn send(&mut self, body: &EventBody, now: DateTime<Utc>) -> Result<u64, SimError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.resend(seq, body, now).await?;
        Ok(seq)
    }

    /// Publishes an event with a given seq and time (a resend after a lost answer).
    pub async fn resend(
        &self,
        seq: u64,
        body: &EventBody,
        ts: DateTime<Utc>,
    ) -> Result<(), SimError> {
        let (reader_id, secret) = (&self.settings.reader_id, self.settings.secret.as_str());
        let payload = match self.format {
            EventFormat::Sealed => message::encode_sealed_event(reader_id, secret, seq, ts, body),
            EventFormat::Legacy => {
                let secret = self.settings.sign_events.then_some(secret);
                message::encode_event(reader_id, secret, seq, ts, body)
            }
        };
        self.publish_raw(payload).await
    }

    /// Publishes any bytes on the reader's event topic (for tests of bad input).
    pub async fn publish_raw(&self, payload: Vec<u8>) -> Result<(), SimError> {
        let topic = format!(
            "{}/readers/{}/events",
            self.settings.topic_root, self.settings.reader_id
        );
        // Never waits: while the broker is away the client's queue fills, and a reader
        // that blocked there would hang instead of sending again later.
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Publishes on another reader's topic, as a misbehaving client would.
    pub async fn publish_as(&self, other_reader: &str, payload: Vec<u8>) -> Result<(), SimError> {
        let topic = format!("{}/readers/{other_reader}/events", self.settings.topic_root);
        // Never waits: while the broker is away the client's queue fills, and a reader
        // that blocked there would hang instead of sending again later.
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Publishes raw bytes on another reader's command topic (a forgery attempt).
    pub async fn publish_command_to(
        &self,
        other_reader: &str,
        payload: Vec<u8>,
    ) -> Result<(), SimError> {
        let topic = format!(
            "{}/readers/{other_reader}/commands",
            self.settings.topic_root
        );
        // Never waits: while the broker is away the client's queue fills, and a reader
        // that blocked there would hang instead of sending again later.
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The next command, verified as a reader would (MAC, time); waits at most `timeout`.
    pub async fn next_command(&mut self, timeout: Duration) -> Result<Received, SimError> {
        match tokio::time::timeout(timeout, self.commands.recv()).await {
            Ok(Some((payload, received_at))) => Ok(message::verify_command(
                &self.settings.reader_id,
                &self.settings.secret,
                &payload,
                self.clock.map_or(received_at, |c| c.at(received_at)),
            )),
            Ok(None) => Err(SimError::Connection("the connection task ended".into())),
            Err(_) => Err(SimError::Timeout(timeout)),
        }
    }

    /// The mode the appliance last set for this reader.
    pub fn mode(&self) -> Option<ReaderMode> {
        self.mode
    }

    /// The next command that is not a `mode` change (those are taken in, as a reader
    /// would); waits at most `timeout`.
    pub async fn next_answer(&mut self, timeout: Duration) -> Result<Received, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_command(left).await? {
                Ok(Command::Mode { mode }) => self.mode = Some(mode),
                other => return Ok(other),
            }
        }
    }

    /// Waits until the appliance has set this reader's mode to `mode`.
    pub async fn wait_for_mode(
        &mut self,
        mode: ReaderMode,
        timeout: Duration,
    ) -> Result<(), SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.mode != Some(mode) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Ok(Command::Mode { mode }) = self.next_command(left).await? {
                self.mode = Some(mode);
            }
        }
        Ok(())
    }

    /// Keeps `clock` instead of the wall clock: its events carry that time, and commands are
    /// judged against it.
    pub fn set_clock(&mut self, clock: ScaledClock) {
        self.clock = Some(clock);
    }

    /// The reader's time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.map_or_else(Utc::now, |c| c.now())
    }

    /// Swipes and waits for the verified answer to that swipe, ignoring anything else.
    pub async fn swipe(
        &mut self,
        credential: WireCredential,
        pin: Option<&str>,
        timeout: Duration,
    ) -> Result<(u64, Command), SimError> {
        let body = EventBody::Swipe {
            credential,
            pin: pin.map(str::to_owned),
        };
        let seq = self.send(&body, self.now()).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_command(left).await? {
                Ok(Command::Mode { mode }) => self.mode = Some(mode),
                Ok(command) if answers(&command, seq) => return Ok((seq, command)),
                _ => {}
            }
        }
    }
}

/// `N` bytes from the system's secure random source (through the TLS backend, which this
/// crate has anyway).
fn random_bytes<const N: usize>() -> Result<[u8; N], SimError> {
    let mut bytes = [0u8; N];
    crate::mqtt::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| SimError::Random)?;
    Ok(bytes)
}

/// True when `command` answers the event `seq`.
pub fn answers(command: &Command, seq: u64) -> bool {
    match command {
        Command::Grant { reference, .. }
        | Command::Deny { reference, .. }
        | Command::PinRequired { reference, .. } => *reference == seq,
        Command::Error { reference, .. } => *reference == Some(seq),
        Command::Mode { .. } => false,
    }
}
