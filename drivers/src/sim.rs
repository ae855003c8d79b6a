//! A simulated MQTT reader: on the wire exactly what PROTOCOL.md asks of a real one
//! (numbered events, optional MACs, commands verified before they are believed). Used by
//! `gatehouse simulate`, the tests and the benchmarks.

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
    /// The reader's secret: verifies commands, signs events when `sign_events`.
    pub secret: String,
    /// Broker credentials; readers use their id and secret on the embedded broker.
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic_root: String,
    pub sign_events: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the broker refused or dropped the reader: {0}")]
    Connection(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the MQTT client is gone: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// What arrived on the reader's command topic.
pub type Received = Result<Command, RejectedCommand>;

pub struct SimReader {
    settings: SimSettings,
    client: AsyncClient,
    commands: mpsc::Receiver<(Vec<u8>, DateTime<Utc>)>,
    next_seq: u64,
    /// The mode the appliance last set (a verified `mode` command).
    mode: Option<ReaderMode>,
    /// The connection's task: it reconnects forever, so it ends with the reader.
    connection: tokio::task::AbortHandle,
}

impl Drop for SimReader {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl SimReader {
    /// Connects, subscribes to its command topic, and returns once the broker accepted both.
    pub async fn connect(settings: SimSettings, first_seq: u64) -> Result<SimReader, SimError> {
        Self::open(settings, None, first_seq).await
    }

    /// As `connect`, over TLS: the broker's certificate must chain to a CA that `tls`
    /// trusts and be valid for `settings.host`. (A separate constructor rather than a
    /// field of `SimSettings`, so that plain readers are written as before.)
    pub async fn connect_tls(
        settings: SimSettings,
        tls: ClientTls,
        first_seq: u64,
    ) -> Result<SimReader, SimError> {
        Self::open(settings, Some(tls), first_seq).await
    }

    async fn open(
        settings: SimSettings,
        tls: Option<ClientTls>,
        first_seq: u64,
    ) -> Result<SimReader, SimError> {
        let mut options = MqttOptions::new(
            format!("sim-{}", settings.reader_id),
            &settings.host,
            settings.port,
        );
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
        options.set_last_will(rumqttc::LastWill::new(
            &status_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
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
        let connection = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
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
                        if matches!(e, ConnectionError::ConnectionRefused(_)) {
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
        client
            .publish(&status_topic, QoS::AtLeastOnce, true, "online")
            .await?;
        Ok(SimReader {
            settings,
            client,
            commands,
            next_seq: first_seq,
            mode: None,
            connection,
        })
    }

    pub fn reader_id(&self) -> &str {
        &self.settings.reader_id
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
        let secret = self
            .settings
            .sign_events
            .then_some(self.settings.secret.as_str());
        let payload = message::encode_event(&self.settings.reader_id, secret, seq, ts, body);
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
        Ok(())
    }

    /// Publishes on another reader's topic, as a misbehaving client would.
    pub async fn publish_as(&self, other_reader: &str, payload: Vec<u8>) -> Result<(), SimError> {
        let topic = format!("{}/readers/{other_reader}/events", self.settings.topic_root);
        // Never waits: while the broker is away the client's queue fills, and a reader
        // that blocked there would hang instead of sending again later.
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)?;
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
        Ok(())
    }

    /// The next command, verified as a reader would (MAC, time); waits at most `timeout`.
    pub async fn next_command(&mut self, timeout: Duration) -> Result<Received, SimError> {
        match tokio::time::timeout(timeout, self.commands.recv()).await {
            Ok(Some((payload, received_at))) => Ok(message::verify_command(
                &self.settings.reader_id,
                &self.settings.secret,
                &payload,
                received_at,
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
        let seq = self.send(&body, Utc::now()).await?;
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
