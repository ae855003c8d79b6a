//! Connects MQTT readers to the hub: starts the embedded broker when configured, connects
//! the appliance's client, and turns each delivery into `Hub::handle` and its answer.

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_drivers::mqtt::{self, Incoming, MqttEvents, MqttLink, MqttSettings};
use rand::Rng;

use crate::config::{BrokerChoice, MqttConfig};
use crate::hub::Hub;
use crate::live::LivePolicy;

/// The appliance's own username at the embedded broker. '@' is not allowed in reader ids,
/// so no reader can take this name.
const APPLIANCE_USER: &str = "@gatehouse";

/// What was started: the embedded broker's address, if any.
pub struct MqttStarted {
    pub broker: Option<SocketAddr>,
}

/// Starts the broker (embedded) and the appliance's connection, and spawns the loop that
/// feeds the hub. Returns once the broker listens; the connection comes up in the loop.
pub fn start(config: &MqttConfig, live: Arc<LivePolicy>, hub: Hub) -> anyhow::Result<MqttStarted> {
    let (settings, broker) = match config.broker {
        BrokerChoice::Off => return Ok(MqttStarted { broker: None }),
        BrokerChoice::External => {
            let (host, port) = config.external_address().map_err(anyhow::Error::msg)?;
            let settings = MqttSettings {
                host,
                port,
                client_id: config.client_id.clone(),
                username: (!config.username.is_empty()).then(|| config.username.clone()),
                password: (!config.password.is_empty()).then(|| config.password.clone()),
                topic_root: config.topic_root.clone(),
            };
            (settings, None)
        }
        BrokerChoice::Embedded => {
            let listen: SocketAddr = config.listen.parse()?;
            let password = hex::encode(rand::rng().random::<[u8; 32]>());
            let appliance_password = password.clone();
            let authenticate: gatehouse_drivers::broker::Authenticate =
                Arc::new(move |_client_id, user, pass| {
                    if user == APPLIANCE_USER {
                        return pass == appliance_password;
                    }
                    live.readers().authenticates(user, pass)
                });
            let addr = gatehouse_drivers::broker::start(listen, authenticate)?;
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                addr.ip().to_string()
            };
            tracing::info!(%addr, "embedded MQTT broker is listening");
            let settings = MqttSettings {
                host,
                port: addr.port(),
                client_id: config.client_id.clone(),
                username: Some(APPLIANCE_USER.to_owned()),
                password: Some(password),
                topic_root: config.topic_root.clone(),
            };
            (settings, Some(addr))
        }
    };
    let (link, events) = mqtt::connect(&settings);
    tokio::spawn(serve_readers(events, link, hub));
    Ok(MqttStarted { broker })
}

/// Handles deliveries until the process ends. Events are handled concurrently (so that
/// their records share group commits), but acknowledged strictly in the order they arrived,
/// as MQTT requires, and each only after the hub has recorded it: a crash before that
/// makes the broker deliver it again.
async fn serve_readers(mut events: MqttEvents, link: MqttLink, hub: Hub) {
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
    loop {
        match events.next().await {
            Incoming::Event {
                reader_id,
                payload,
                delivery,
            } => {
                let (done, handled) = tokio::sync::oneshot::channel();
                let _ = ack_tx.send((delivery, handled));
                let (hub, link) = (hub.clone(), link.clone());
                tokio::spawn(async move {
                    if let Some(reply) = hub.handle(&reader_id, &payload).await
                        && let Some(bytes) = hub.encode(&reply)
                        && let Err(e) = link.publish_command(&reply.reader_id, bytes).await
                    {
                        tracing::error!(reader = %reply.reader_id, error = %e, "answer not published");
                    }
                    let _ = done.send(());
                });
            }
            Incoming::Status {
                reader_id,
                online,
                delivery,
            } => {
                let (done, handled) = tokio::sync::oneshot::channel();
                let _ = ack_tx.send((delivery, handled));
                hub.reader_status(&reader_id, online).await;
                let _ = done.send(());
            }
            Incoming::Stray { topic, delivery } => {
                tracing::debug!(%topic, "ignoring a publish outside the reader topics");
                let (done, handled) = tokio::sync::oneshot::channel();
                let _ = ack_tx.send((delivery, handled));
                let _ = done.send(());
            }
            Incoming::Connected => tracing::info!("connected to the MQTT broker"),
            Incoming::Disconnected { error } => {
                tracing::warn!(%error, "MQTT connection lost; reconnecting")
            }
        }
    }
}
