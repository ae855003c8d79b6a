//! The MQTT transport of PROTOCOL.md over rumqttc: `connect` gives a cloneable `MqttLink`
//! (publish commands, acknowledge events) and an `MqttEvents` loop that its owner drives.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};

/// Where and as whom the appliance connects.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// Stable across restarts: with a persistent session the broker keeps events that
    /// arrive while the appliance is down and delivers them when it is back.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `gatehouse/v1` unless configured otherwise.
    pub topic_root: String,
}

/// Events larger than the protocol allows are still delivered (and reported by the hub as
/// faults) up to this size; the broker should refuse anything larger.
pub const MAX_INCOMING_PACKET: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("the MQTT client is gone: {0}")]
    Client(#[from] rumqttc::ClientError),
}

/// A handle to the connection: publish commands, acknowledge handled events.
#[derive(Clone)]
pub struct MqttLink {
    client: AsyncClient,
    root: String,
}

/// An event received for a reader; acknowledge it (`MqttLink::ack`) once it is handled, so
/// that the broker redelivers it if the appliance stops before that.
#[derive(Debug)]
pub struct Delivery {
    publish: Publish,
}

/// What the connection brings.
#[derive(Debug)]
pub enum Incoming {
    Event {
        reader_id: String,
        payload: bytes::Bytes,
        delivery: Delivery,
    },
    /// A reader's retained status (`online`/`offline`, the latter by its last will).
    Status {
        reader_id: String,
        online: bool,
        delivery: Delivery,
    },
    /// A publish on a topic that is not a reader's event or status.
    Stray {
        topic: String,
        delivery: Delivery,
    },
    Connected,
    Disconnected {
        error: String,
    },
}

/// The connection's event loop; `next` also reconnects, with backoff.
pub struct MqttEvents {
    eventloop: EventLoop,
    link: MqttLink,
    backoff: Duration,
}

/// TCP options for door traffic: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
/// hold each small MQTT packet back for up to 40 ms.
pub fn low_latency() -> rumqttc::NetworkOptions {
    let mut options = rumqttc::NetworkOptions::new();
    options.set_tcp_nodelay(true);
    options
}

pub fn connect(settings: &MqttSettings) -> (MqttLink, MqttEvents) {
    let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    options
        .set_keep_alive(Duration::from_secs(10))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 << 10);
    if let Some(user) = &settings.username {
        options.set_credentials(user, settings.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    eventloop.set_network_options(low_latency());
    let link = MqttLink {
        client,
        root: settings.topic_root.trim_end_matches('/').to_owned(),
    };
    let events = MqttEvents {
        eventloop,
        link: link.clone(),
        backoff: Duration::ZERO,
    };
    (link, events)
}

impl MqttLink {
    pub fn events_filter(&self) -> String {
        format!("{}/readers/+/events", self.root)
    }

    pub fn status_filter(&self) -> String {
        format!("{}/readers/+/status", self.root)
    }

    pub fn commands_topic(&self, reader_id: &str) -> String {
        format!("{}/readers/{reader_id}/commands", self.root)
    }

    /// Publishes a command to one reader: QoS 1 and never retained (a retained unlock
    /// would open the door again at every reconnect).
    pub async fn publish_command(
        &self,
        reader_id: &str,
        payload: Vec<u8>,
    ) -> Result<(), MqttError> {
        self.client
            .publish(
                self.commands_topic(reader_id),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await?;
        Ok(())
    }

    /// Acknowledges a handled delivery to the broker.
    pub async fn ack(&self, delivery: Delivery) -> Result<(), MqttError> {
        self.client.ack(&delivery.publish).await?;
        Ok(())
    }

    /// The reader id in a topic `{root}/readers/{id}/{leaf}`, if it is one.
    fn reader_topic<'t>(&self, topic: &'t str, leaf: &str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix("/readers/")?;
        let id = rest.strip_suffix(leaf)?.strip_suffix('/')?;
        (!id.is_empty() && !id.contains('/')).then_some(id)
    }
}

impl MqttEvents {
    pub fn link(&self) -> MqttLink {
        self.link.clone()
    }

    /// Waits for the next thing the connection brings, reconnecting as needed.
    pub async fn next(&mut self) -> Incoming {
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.backoff = Duration::ZERO;
                    // Subscriptions are requested on every connect: a broker that lost the
                    // session (restarted without persistence) would otherwise stay silent.
                    for filter in [self.link.events_filter(), self.link.status_filter()] {
                        if let Err(e) = self.link.client.try_subscribe(filter, QoS::AtLeastOnce) {
                            return Incoming::Disconnected {
                                error: e.to_string(),
                            };
                        }
                    }
                    return Incoming::Connected;
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    return self.classify(publish);
                }
                Ok(_) => {}
                Err(e) => {
                    self.backoff = (self.backoff * 2)
                        .clamp(Duration::from_millis(100), Duration::from_secs(5));
                    let error = e.to_string();
                    tokio::time::sleep(self.backoff).await;
                    return Incoming::Disconnected { error };
                }
            }
        }
    }

    fn classify(&self, publish: Publish) -> Incoming {
        if let Some(reader_id) = self.link.reader_topic(&publish.topic, "events") {
            return Incoming::Event {
                reader_id: reader_id.to_owned(),
                payload: publish.payload.clone(),
                delivery: Delivery { publish },
            };
        }
        if let Some(reader_id) = self.link.reader_topic(&publish.topic, "status") {
            let online = publish.payload.as_ref() == b"online";
            return Incoming::Status {
                reader_id: reader_id.to_owned(),
                online,
                delivery: Delivery { publish },
            };
        }
        Incoming::Stray {
            topic: publish.topic.clone(),
            delivery: Delivery { publish },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_their_reader() {
        let (link, _events) = connect(&MqttSettings {
            host: "127.0.0.1".into(),
            port: 1,
            client_id: "t".into(),
            username: None,
            password: None,
            topic_root: "gatehouse/v1/".into(),
        });
        assert_eq!(link.events_filter(), "gatehouse/v1/readers/+/events");
        assert_eq!(
            link.commands_topic("door-1"),
            "gatehouse/v1/readers/door-1/commands"
        );
        assert_eq!(
            link.reader_topic("gatehouse/v1/readers/door-1/events", "events"),
            Some("door-1")
        );
        assert_eq!(
            link.reader_topic("gatehouse/v1/readers/a/b/events", "events"),
            None
        );
        assert_eq!(
            link.reader_topic("gatehouse/v1/readers//events", "events"),
            None
        );
        assert_eq!(
            link.reader_topic("other/v1/readers/door-1/events", "events"),
            None
        );
        assert_eq!(
            link.reader_topic("gatehouse/v1/readers/door-1/status", "events"),
            None
        );
    }
}
