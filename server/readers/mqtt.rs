//! Connects MQTT readers to the hub: starts the embedded broker when configured, connects
//! the appliance's client, and turns each delivery into `Hub::handle_mqtt` and its answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_drivers::mqtt::{self, Incoming, MqttEvents, MqttLink, MqttSettings};

use crate::app::live::LivePolicy;
use crate::config::{BrokerChoice, MqttConfig};
use crate::readers::hub::{Hub, Reply};
use gatehouse_drivers::message::{Command, ReaderMode};

/// Refused reader connections waiting to be recorded; beyond this they are dropped (a flood
/// of bad connections must not queue without bound). The hub's fault budget then limits
/// what is recorded.
const REFUSALS_QUEUED: usize = 64;

/// What was started: the embedded broker's listeners, if it runs.
pub struct MqttStarted {
    /// The plain listener for readers (none when readers must use TLS).
    pub broker: Option<SocketAddr>,
    /// The TLS listener for readers.
    pub broker_tls: Option<SocketAddr>,
    /// rumqttd's own loopback listener and the appliance's login there, past the readers'
    /// relay (the MQTT benchmark measures its floor through it, as the appliance talks).
    pub broker_local: Option<(SocketAddr, gatehouse_drivers::broker::ApplianceLogin)>,
}

/// Starts the broker (embedded) and the appliance's connection, and spawns the loop that
/// feeds the hub. Returns once the broker listens; the connection comes up in the loop.
pub fn start(config: &MqttConfig, live: Arc<LivePolicy>, hub: Hub) -> anyhow::Result<MqttStarted> {
    let (settings, started) = match config.broker {
        BrokerChoice::Off => {
            return Ok(MqttStarted {
                broker: None,
                broker_tls: None,
                broker_local: None,
            });
        }
        BrokerChoice::External => {
            let (host, port) = config.external_address().map_err(anyhow::Error::msg)?;
            let settings = MqttSettings {
                host,
                port,
                client_id: config.client_id.clone(),
                username: (!config.username.is_empty()).then(|| config.username.clone()),
                password: (!config.password.is_empty()).then(|| config.password.clone()),
                topic_root: config.topic_root.clone(),
                tls: config.client_tls()?,
            };
            let started = MqttStarted {
                broker: None,
                broker_tls: None,
                broker_local: None,
            };
            (settings, started)
        }
        BrokerChoice::Embedded => {
            let listeners = gatehouse_drivers::broker::Listeners {
                plain: config.plain_listen()?,
                tls: match (config.tls_listen_addr()?, config.server_tls()?) {
                    (Some(addr), Some(tls)) => Some((addr, tls)),
                    _ => None,
                },
            };
            let readers = live.clone();
            let (refusals, refused) = tokio::sync::mpsc::channel(REFUSALS_QUEUED);
            let access = gatehouse_drivers::broker::Access {
                topic_root: config.topic_root.clone(),
                appliance_client_id: config.client_id.clone(),
                authenticate: Arc::new(move |reader_id, secret| {
                    readers.readers().authenticates(reader_id, secret)
                }),
                // Never waits: a flood of bad connections must not slow the broker down,
                // and what does not fit is only the event log's copy of it.
                on_refusal: Some(Arc::new(move |refusal| {
                    let _ = refusals.try_send(refusal);
                })),
            };
            tokio::spawn(record_refusals(refused, hub.clone()));
            let bound = gatehouse_drivers::broker::start(listeners, access)?;
            if let Some(addr) = bound.plain {
                tracing::info!(%addr, "embedded MQTT broker is listening");
            }
            if let Some(addr) = bound.tls {
                tracing::info!(%addr, "embedded MQTT broker is listening for TLS");
            }
            // The appliance talks plain MQTT to rumqttd itself on loopback, past the
            // readers' relay (which would keep it to one reader's topics).
            let settings = MqttSettings {
                host: bound.local.ip().to_string(),
                port: bound.local.port(),
                client_id: config.client_id.clone(),
                username: Some(bound.appliance.username.clone()),
                password: Some(bound.appliance.password.clone()),
                topic_root: config.topic_root.clone(),
                tls: None,
            };
            let started = MqttStarted {
                broker: bound.plain,
                broker_tls: bound.tls,
                broker_local: Some((bound.local, bound.appliance.clone())),
            };
            (settings, started)
        }
    };
    let (link, events) = mqtt::connect(&settings);
    let modes = ModeSender::default();
    tokio::spawn(send_modes_on_policy_change(
        live.watch_swaps(),
        link.clone(),
        hub.clone(),
        modes.clone(),
    ));
    tokio::spawn(serve_readers(events, link, hub, modes));
    Ok(started)
}

/// Records the embedded broker's refusals of registered readers as their faults (a wrong
/// secret, a reach for another reader's topics). Usernames that are no reader's are only
/// logged by the broker: recording them would let anyone fill the event log.
async fn record_refusals(
    mut refused: tokio::sync::mpsc::Receiver<gatehouse_drivers::broker::Refusal>,
    hub: Hub,
) {
    while let Some(refusal) = refused.recv().await {
        if hub.knows_reader(refusal.reader_id()) {
            hub.driver_fault(refusal.reader_id(), &refusal.describe())
                .await;
        }
    }
}

/// Handles deliveries until the process ends. Each reader's are handled in the order they
/// arrived, different readers' side by side (so that their records share group commits);
/// all are acknowledged strictly in arrival order, as MQTT requires, and each only after
/// the hub has recorded it: a crash before that makes the broker deliver it again.
async fn serve_readers(mut events: MqttEvents, link: MqttLink, hub: Hub, modes: ModeSender) {
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<(
        gatehouse_drivers::mqtt::Delivery,
        tokio::sync::oneshot::Receiver<()>,
    )>();
    let acker = link.clone();
    tokio::spawn(async move {
        while let Some((delivery, handled)) = ack_rx.recv().await {
            // A handler that panicked drops its sender: acknowledge anyway, the event was
            // reported; holding every later ack back would stall the reader traffic.
            let _ = handled.await;
            let _ = acker.ack(delivery).await;
        }
    });
    let mut queues: HashMap<String, tokio::sync::mpsc::UnboundedSender<Job>> = HashMap::new();
    // This loop is the only thing that drives the MQTT client, so it never waits on a
    // publish (or on the database): the client's request queue is freed only by this loop,
    // and a loop that waited for room in it would stop for good. Work goes to tasks.
    loop {
        let (reader_id, work, delivery) = match events.next().await {
            Incoming::Event {
                reader_id,
                payload,
                delivery,
            } => (reader_id, Work::Event(payload), delivery),
            Incoming::Status {
                reader_id,
                online,
                delivery,
            } => (reader_id, Work::Status(online), delivery),
            Incoming::Stray { topic, delivery } => {
                tracing::debug!(%topic, "ignoring a publish outside the reader topics");
                let (done, handled) = tokio::sync::oneshot::channel();
                let _ = ack_tx.send((delivery, handled));
                let _ = done.send(());
                continue;
            }
            Incoming::Connected => {
                tracing::info!("connected to the MQTT broker");
                let (modes, link, hub) = (modes.clone(), link.clone(), hub.clone());
                tokio::spawn(async move { modes.send(&link, &hub, None).await });
                continue;
            }
            Incoming::Disconnected { error } => {
                tracing::warn!(%error, "MQTT connection lost; reconnecting");
                continue;
            }
        };
        let (done, handled) = tokio::sync::oneshot::channel();
        let _ = ack_tx.send((delivery, handled));
        let job = Job { work, done };
        let handler = Handler {
            reader_id: reader_id.clone(),
            hub: hub.clone(),
            link: link.clone(),
            modes: modes.clone(),
        };
        if !hub.knows_reader(&reader_id) {
            // Strangers get no queue of their own: their messages are faults.
            tokio::spawn(async move { handler.run(job).await });
            continue;
        }
        let queue = queues
            .entry(reader_id.clone())
            .or_insert_with(|| handler.clone().queue());
        if let Err(tokio::sync::mpsc::error::SendError(job)) = queue.send(job) {
            let fresh = handler.queue();
            let _ = fresh.send(job);
            queues.insert(reader_id, fresh);
        }
    }
}

/// What a reader sent.
enum Work {
    Event(bytes::Bytes),
    /// Its retained status: `online`, or `offline` (its last will).
    Status(bool),
}

/// One delivery, and the signal that it was handled (so it may be acknowledged).
struct Job {
    work: Work,
    done: tokio::sync::oneshot::Sender<()>,
}

/// Handles one reader's deliveries.
#[derive(Clone)]
struct Handler {
    reader_id: String,
    hub: Hub,
    link: MqttLink,
    modes: ModeSender,
}

impl Handler {
    async fn run(&self, job: Job) {
        match job.work {
            Work::Event(payload) => {
                if let Some(reply) = self.hub.handle_mqtt(&self.reader_id, &payload).await
                    && let Some(bytes) = self.hub.encode(&reply)
                    && let Err(e) = self.link.publish_command(&reply.reader_id, bytes).await
                {
                    tracing::error!(reader = %reply.reader_id, error = %e, "answer not published");
                }
                let _ = job.done.send(());
            }
            Work::Status(online) => {
                self.hub.reader_status(&self.reader_id, online).await;
                let _ = job.done.send(());
                if online {
                    // A reader that (re)connects is told its mode: it may have missed a change.
                    self.modes
                        .send(&self.link, &self.hub, Some(&self.reader_id))
                        .await;
                }
            }
        }
    }

    /// A registered reader's deliveries, handled one after another in the order they
    /// arrived: a door that opens just after a request-to-exit must not be judged before
    /// the REX (it would look forced). Different readers are handled side by side, so their
    /// records still share group commits.
    fn queue(self) -> tokio::sync::mpsc::UnboundedSender<Job> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                self.run(job).await;
            }
        });
        tx
    }
}

/// The mode last sent to each reader, so that a policy change sends `mode` only to the
/// readers whose mode it changed, all at once (a lockdown reaches every reader of the site).
#[derive(Clone, Default)]
struct ModeSender {
    sent: Arc<tokio::sync::Mutex<HashMap<String, ReaderMode>>>,
}

impl ModeSender {
    /// Sends modes that changed since last sent; `only` one reader, unconditionally.
    async fn send(&self, link: &MqttLink, hub: &Hub, only: Option<&str>) {
        let mut sent = self.sent.lock().await;
        for (reader_id, mode) in hub.reader_modes() {
            let wanted = match only {
                Some(one) => one == reader_id,
                None => sent.get(&reader_id) != Some(&mode),
            };
            if !wanted {
                continue;
            }
            let reply = Reply {
                reader_id: reader_id.clone(),
                command: Command::Mode { mode },
            };
            if let Some(bytes) = hub.encode(&reply) {
                match link.publish_command(&reader_id, bytes).await {
                    Ok(()) => {
                        sent.insert(reader_id, mode);
                    }
                    Err(e) => {
                        tracing::error!(reader = %reader_id, error = %e, "mode not published")
                    }
                }
            }
        }
    }
}

async fn send_modes_on_policy_change(
    mut swaps: tokio::sync::watch::Receiver<i64>,
    link: MqttLink,
    hub: Hub,
    modes: ModeSender,
) {
    let mut unlocks = hub.watch_mode_changes();
    loop {
        // A policy change or a momentary unlock starting or ending: send what changed.
        let changed = tokio::select! {
            r = swaps.changed() => r.is_ok(),
            r = unlocks.changed() => r.is_ok(),
        };
        if !changed {
            return;
        }
        modes.send(&link, &hub, None).await;
    }
}
