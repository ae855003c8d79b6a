//! The readers' side of the embedded broker: an MQTT 3.1.1 relay that authenticates each
//! reader itself and lets it publish and subscribe only on its own topics, in front of a
//! rumqttd that listens on loopback for the relay and the appliance alone.
//!
//! rumqttd 0.20 has a connect hook and nothing per topic, so the relay reads every packet
//! a reader sends (rumqttc's MQTT codec, `mqttbytes::v4`) before the broker sees it. What
//! the broker sends back is copied through unread: it only ever sends a reader what the
//! reader was allowed to subscribe to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Publish, Subscribe};
use rumqttc::mqttbytes::{self, PacketType, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{MAX_PAYLOAD, OnRefusal, ReaderAuthenticate, Refusal};

/// How long a client may take to send its CONNECT once connected (after its TLS handshake,
/// over TLS). rumqttd allows the same.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest packet a reader may send, header aside: the broker's own limit, so that an
/// oversized event still reaches the appliance (and is reported as a fault) exactly as it
/// did before the relay.
const MAX_PACKET: usize = MAX_PAYLOAD;

/// The largest CONNECT the relay reads, before it knows who is connecting: an id, a login
/// and a last will (`offline`) fit many times over, and a flood of connections that never
/// authenticate cannot make it hold megabytes each.
const MAX_CONNECT: usize = 64 << 10;

/// The username under which the relay forwards readers to rumqttd. '@' is not allowed in
/// reader ids, so it names no reader.
pub(super) const RELAY_USER: &str = "@relay";

/// What every relayed connection shares.
pub(super) struct Relay {
    /// `{root}` of the reader topics, without a trailing '/'.
    pub topic_root: String,
    /// The appliance's client id: no reader may connect with it (the broker would drop the
    /// appliance's own connection for it).
    pub appliance_client_id: String,
    pub authenticate: ReaderAuthenticate,
    pub on_refusal: Option<OnRefusal>,
    /// rumqttd's loopback listener.
    pub broker: SocketAddr,
    /// The password of `RELAY_USER` at rumqttd: random, made at start, known to nobody else.
    pub relay_secret: String,
}

/// Why a connection ends early.
#[derive(Debug)]
enum Cut {
    /// The client went away, or broke the protocol: nothing to report.
    Closed,
    /// The reader reached outside its own topics.
    Forbidden { topic: String, subscribe: bool },
}

impl Relay {
    fn refused(&self, refusal: Refusal) {
        if let Some(on_refusal) = &self.on_refusal {
            on_refusal(refusal);
        }
    }

    /// Serves one reader's connection (plain, or TLS already terminated) until either side
    /// closes it.
    pub(super) async fn serve<S>(self: Arc<Self>, client: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut from_client, mut to_client) = tokio::io::split(client);
        let mut buffer = BytesMut::with_capacity(4096);
        let connect = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            read_connect(&mut from_client, &mut buffer),
        )
        .await
        {
            Ok(Ok(connect)) => connect,
            Ok(Err(ConnectProblem::Version)) => {
                let _ = refuse(&mut to_client, ConnectReturnCode::RefusedProtocolVersion).await;
                tracing::debug!(%peer, "MQTT: a client that does not speak MQTT 3.1.1 was refused");
                return;
            }
            Ok(Err(ConnectProblem::Malformed)) => {
                tracing::debug!(%peer, "MQTT: a connection that sent no valid CONNECT was closed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "MQTT: no CONNECT within 10 s; closed");
                return;
            }
        };
        let Some(login) = connect.login.as_ref().filter(|l| !l.username.is_empty()) else {
            let _ = refuse(&mut to_client, ConnectReturnCode::NotAuthorized).await;
            tracing::debug!(%peer, "MQTT: an anonymous client was refused");
            return;
        };
        let reader_id = login.username.clone();
        if !(self.authenticate)(&reader_id, &login.password) {
            let _ = refuse(&mut to_client, ConnectReturnCode::BadUserNamePassword).await;
            tracing::debug!(%peer, "MQTT: a client with a wrong reader id or secret was refused");
            self.refused(Refusal::BadCredentials {
                username: reader_id,
                peer,
            });
            return;
        }
        if connect.client_id == self.appliance_client_id {
            let _ = refuse(&mut to_client, ConnectReturnCode::BadClientId).await;
            tracing::warn!(reader = %reader_id, %peer, "MQTT: a reader tried to connect with the appliance's client id; refused");
            self.refused(Refusal::ApplianceClientId { reader_id, peer });
            return;
        }
        let topics = ReaderTopics::new(&self.topic_root, &reader_id);
        if let Some(will) = &connect.last_will
            && !topics.may_publish(&will.topic)
        {
            let _ = refuse(&mut to_client, ConnectReturnCode::NotAuthorized).await;
            self.forbidden(&reader_id, peer, &will.topic, false);
            return;
        }
        let mut upstream = match tokio::net::TcpStream::connect(self.broker).await {
            Ok(upstream) => upstream,
            Err(e) => {
                tracing::error!(%peer, error = %e, "MQTT: the embedded broker cannot be reached");
                let _ = refuse(&mut to_client, ConnectReturnCode::ServiceUnavailable).await;
                return;
            }
        };
        // Door traffic is small packets: without TCP_NODELAY each could wait up to 40 ms.
        let _ = upstream.set_nodelay(true);
        let (mut from_broker, mut to_broker) = upstream.split();
        let mut first = BytesMut::new();
        if self
            .forwarded_connect(connect, &reader_id)
            .write(&mut first)
            .is_err()
            || to_broker.write_all(&first).await.is_err()
        {
            return;
        }
        let cut = tokio::select! {
            cut = forward_checked(&mut from_client, &mut to_broker, buffer, &topics) => cut,
            _ = tokio::io::copy(&mut from_broker, &mut to_client) => Cut::Closed,
        };
        if let Cut::Forbidden { topic, subscribe } = cut {
            self.forbidden(&reader_id, peer, &topic, subscribe);
        }
        // Dropping both streams closes both connections: rumqttd then publishes the
        // reader's last will, as for any reader that drops off.
    }

    /// The client's CONNECT as rumqttd gets it: logged in as the relay, under a client id
    /// within the reader's own name, so that no reader can take over another's session
    /// (or the appliance's) by reusing its client id.
    fn forwarded_connect(&self, mut connect: Connect, reader_id: &str) -> Connect {
        if !connect.client_id.is_empty() {
            connect.client_id = format!("{reader_id}@{}", connect.client_id);
        }
        connect.set_login(RELAY_USER, self.relay_secret.as_str());
        connect
    }

    fn forbidden(&self, reader_id: &str, peer: SocketAddr, topic: &str, subscribe: bool) {
        // The topic is the client's: escaped and cut short for the log and the event log.
        let shown: String = format!("{topic:?}").chars().take(160).collect();
        let what = if subscribe {
            "subscribe to"
        } else {
            "publish on"
        };
        tracing::warn!(reader = %reader_id, %peer, topic = %shown, "MQTT: a reader tried to {what} a topic that is not its own; disconnected");
        self.refused(Refusal::ForbiddenTopic {
            reader_id: reader_id.to_owned(),
            peer,
            topic: shown,
            subscribe,
        });
    }
}

/// A reader's own topics: the only ones it may publish on (its events and status) and
/// subscribe to (its commands), exactly, with no wildcards.
struct ReaderTopics {
    events: String,
    status: String,
    commands: String,
}

impl ReaderTopics {
    fn new(root: &str, reader_id: &str) -> ReaderTopics {
        ReaderTopics {
            events: format!("{root}/readers/{reader_id}/events"),
            status: format!("{root}/readers/{reader_id}/status"),
            commands: format!("{root}/readers/{reader_id}/commands"),
        }
    }

    fn may_publish(&self, topic: &str) -> bool {
        topic == self.events || topic == self.status
    }

    fn may_subscribe(&self, filter: &str) -> bool {
        filter == self.commands
    }
}

enum ConnectProblem {
    /// Not MQTT 3.1.1 (MQTT 5, MQTT 3.1): refused with a CONNACK saying so.
    Version,
    /// Not a CONNECT, malformed, or the connection closed first.
    Malformed,
}

async fn read_connect<R: AsyncRead + Unpin>(
    from_client: &mut R,
    buffer: &mut BytesMut,
) -> Result<Connect, ConnectProblem> {
    loop {
        match mqttbytes::check(buffer.iter(), MAX_CONNECT) {
            Ok(header) => {
                if header.packet_type().ok() != Some(PacketType::Connect) {
                    return Err(ConnectProblem::Malformed);
                }
                let frame = buffer.split_to(header.frame_length()).freeze();
                // Asked before parsing the rest: an MQTT 5 CONNECT has properties that the
                // 3.1.1 codec would misread.
                if protocol_level(&frame) != Some(4) {
                    return Err(ConnectProblem::Version);
                }
                return match Connect::read(header, frame) {
                    Ok(connect) if connect.protocol == Protocol::V4 => Ok(connect),
                    Ok(_) => Err(ConnectProblem::Version),
                    Err(_) => Err(ConnectProblem::Malformed),
                };
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(_) => return Err(ConnectProblem::Malformed),
        }
        match from_client.read_buf(buffer).await {
            Ok(0) | Err(_) => return Err(ConnectProblem::Malformed),
            Ok(_) => {}
        }
    }
}

/// The protocol level of a whole CONNECT packet, if it names the MQTT protocol: 4 is MQTT
/// 3.1.1, 5 is MQTT 5; MQTT 3.1 (`MQIsdp`) gives `None`, as does anything malformed.
fn protocol_level(frame: &[u8]) -> Option<u8> {
    // The fixed header: the type byte, then the remaining length in 1 to 4 bytes.
    let length_bytes = frame.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
    let rest = frame.get(1 + length_bytes..)?;
    match rest {
        [0, 4, b'M', b'Q', b'T', b'T', level, ..] => Some(*level),
        _ => None,
    }
}

/// Answers a CONNECT with a refusal, which the client reads as the reason (rumqttc reports
/// `ConnectionRefused`), rather than a silent close.
async fn refuse<W: AsyncWrite + Unpin>(
    to_client: &mut W,
    code: ConnectReturnCode,
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(4);
    ConnAck::new(code, false)
        .write(&mut out)
        .map_err(std::io::Error::other)?;
    to_client.write_all(&out).await?;
    to_client.flush().await?;
    to_client.shutdown().await
}

/// Forwards the client's packets to the broker as they come, each checked first; returns
/// when the client closes, breaks the protocol or reaches outside its topics. Packets are
/// forwarded as the client sent them (the bytes it sent, not re-encoded).
async fn forward_checked<R, W>(
    from_client: &mut R,
    to_broker: &mut W,
    mut buffer: BytesMut,
    topics: &ReaderTopics,
) -> Cut
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        // Every whole packet that has arrived, checked, then written at once.
        let mut checked = BytesMut::new();
        loop {
            let header = match mqttbytes::check(buffer.iter(), MAX_PACKET) {
                Ok(header) => header,
                Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                Err(_) => return Cut::Closed,
            };
            let frame = buffer.split_to(header.frame_length()).freeze();
            if let Err(cut) = check_packet(header, frame.clone(), topics) {
                return cut;
            }
            if checked.is_empty() && buffer.is_empty() {
                // The usual case, one packet per read: no copy.
                if to_broker.write_all(&frame).await.is_err() {
                    return Cut::Closed;
                }
            } else {
                checked.extend_from_slice(&frame);
            }
        }
        if !checked.is_empty() && to_broker.write_all(&checked).await.is_err() {
            return Cut::Closed;
        }
        match from_client.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return Cut::Closed,
            Ok(_) => {}
        }
    }
}

/// Whether one packet from a reader may go to the broker.
fn check_packet(
    header: mqttbytes::FixedHeader,
    frame: Bytes,
    topics: &ReaderTopics,
) -> Result<(), Cut> {
    match header.packet_type() {
        Ok(PacketType::Publish) => match Publish::read(header, frame) {
            Ok(publish) if topics.may_publish(&publish.topic) => Ok(()),
            Ok(publish) => Err(Cut::Forbidden {
                topic: publish.topic,
                subscribe: false,
            }),
            Err(_) => Err(Cut::Closed),
        },
        Ok(PacketType::Subscribe) => match Subscribe::read(header, frame) {
            Ok(subscribe) => match subscribe
                .filters
                .into_iter()
                .find(|f| !topics.may_subscribe(&f.path))
            {
                None => Ok(()),
                Some(filter) => Err(Cut::Forbidden {
                    topic: filter.path,
                    subscribe: true,
                }),
            },
            Err(_) => Err(Cut::Closed),
        },
        // What a client sends after its CONNECT: acknowledgements, unsubscribing, pings.
        Ok(
            PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::Unsubscribe
            | PacketType::PingReq
            | PacketType::Disconnect,
        ) => Ok(()),
        // A second CONNECT, or what only a server sends.
        _ => Err(Cut::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_are_read_by_protocol_version() {
        let read = |bytes: Vec<u8>| async move {
            let mut buffer = BytesMut::new();
            read_connect(&mut bytes.as_slice(), &mut buffer).await
        };
        // MQTT 3.1.1, with a login.
        let mut v4 = BytesMut::new();
        let mut connect = Connect::new("door-a");
        connect.set_login("door-a", "secret");
        connect.write(&mut v4).unwrap();
        let connect = read(v4.to_vec()).await.ok().unwrap();
        assert_eq!(connect.login.unwrap().username, "door-a");
        // MQTT 5: keep-alive, then properties (none), then the client id "a".
        let v5 = vec![
            0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'a',
        ];
        assert!(matches!(read(v5).await, Err(ConnectProblem::Version)));
        // MQTT 3.1.
        let v3 = vec![
            0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 1, b'a',
        ];
        assert!(matches!(read(v3).await, Err(ConnectProblem::Version)));
        // Not a CONNECT first; a connection closed half way.
        assert!(matches!(
            read(vec![0xC0, 0]).await,
            Err(ConnectProblem::Malformed)
        ));
        assert!(matches!(
            read(vec![0x10, 14, 0, 4]).await,
            Err(ConnectProblem::Malformed)
        ));
    }

    #[test]
    fn a_reader_has_exactly_its_own_topics() {
        let topics = ReaderTopics::new("gatehouse/v1", "door-a");
        assert!(topics.may_publish("gatehouse/v1/readers/door-a/events"));
        assert!(topics.may_publish("gatehouse/v1/readers/door-a/status"));
        assert!(topics.may_subscribe("gatehouse/v1/readers/door-a/commands"));
        for other in [
            "gatehouse/v1/readers/door-b/events",
            "gatehouse/v1/readers/door-a/commands",
            "gatehouse/v1/readers/+/events",
            "gatehouse/v1/readers/door-a/#",
            "gatehouse/v1/readers/door-a/events/x",
            "#",
            "",
        ] {
            assert!(!topics.may_publish(other), "{other}");
        }
        for other in [
            "gatehouse/v1/readers/door-b/commands",
            "gatehouse/v1/readers/+/commands",
            "gatehouse/v1/readers/door-a/+",
            "gatehouse/v1/readers/door-a/events",
            "#",
            "+/+/+/+/+",
        ] {
            assert!(!topics.may_subscribe(other), "{other}");
        }
    }
}
