//! The MQTT transport of docs/protocol.md over rumqttc: `connect` gives a cloneable `MqttLink`
//! (publish commands, acknowledge events) and an `MqttEvents` loop that its owner drives.
//! `ClientTls` is the client side of MQTT over TLS (the appliance to an external `mqtts://`
//! broker, simulated readers to the embedded broker's TLS listener).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::{self, PemObject};

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
    /// MQTT over TLS, trusting these CAs; `None` is plain MQTT.
    pub tls: Option<ClientTls>,
}

/// Events larger than the protocol allows are still delivered (and reported by the hub as
/// faults) up to this size; the broker should refuse anything larger.
pub const MAX_INCOMING_PACKET: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("the MQTT client is gone: {0}")]
    Client(#[from] rumqttc::ClientError),
    /// A PEM file for TLS (certificate, key or CA) that cannot be used, and why.
    #[error("{}: {reason}", path.display())]
    TlsFile { path: PathBuf, reason: String },
    #[error("the system's CA certificates could not be loaded: {0}")]
    SystemRoots(String),
}

/// The TLS backend of every MQTT connection: rustls on ring (see drivers/Cargo.toml for why
/// not aws-lc-rs). Named explicitly rather than taken from a process-wide default, so that
/// no other crate's choice of provider can change it.
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side of MQTT over TLS: which CAs to trust. The broker's certificate must be
/// valid for the host name (or IP address) the client connects to.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Trusts exactly the CA certificates in a PEM file: a private CA, or a self-signed
    /// broker certificate.
    pub fn from_ca_file(path: &Path) -> Result<ClientTls, MqttError> {
        let fail = |reason: String| MqttError::TlsFile {
            path: path.to_owned(),
            reason,
        };
        let certs = read_certificates(path).map_err(fail)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| fail(format!("a certificate in it is not a usable CA: {e}")))?;
        }
        Self::with_roots(roots).map_err(fail)
    }

    /// Trusts the operating system's CA certificates (a broker with a public certificate).
    pub fn system_roots() -> Result<ClientTls, MqttError> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(MqttError::SystemRoots(format!(
                "none found{why}; name the broker's CA in [mqtt] tls_ca"
            )));
        }
        Self::with_roots(roots).map_err(MqttError::SystemRoots)
    }

    fn with_roots(roots: rustls::RootCertStore) -> Result<ClientTls, String> {
        let config = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// rumqttc's transport for this trust.
    pub(crate) fn transport(&self) -> rumqttc::Transport {
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(self.config.clone()))
    }
}

/// Reads a file for its bytes, saying plainly whether it is missing or unreadable.
fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => {
            "cannot be read by the appliance's user (permission denied)".to_owned()
        }
        _ => format!("cannot be read: {e}"),
    })
}

/// The certificates of a PEM file, in file order; an error unless there is at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not valid PEM: {}", pem_error(e)))?;
    if certs.is_empty() {
        return Err(not_pem_hint(&bytes, "CERTIFICATE"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
#[cfg(feature = "embedded-broker")]
pub(crate) fn read_private_key(
    path: &Path,
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    let bytes = read_file(path)?;
    if contains(&bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        // The appliance starts unattended: there is nobody to type a passphrase.
        return Err(
            "holds an encrypted private key, which the appliance cannot unlock at start; \
             decrypt it (openssl pkey -in KEY -out KEY.plain) and protect the file with its \
             permissions instead"
                .to_owned(),
        );
    }
    match rustls::pki_types::PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(not_pem_hint(&bytes, "PRIVATE KEY")),
        Err(e) => Err(format!("is not valid PEM: {}", pem_error(e))),
    }
}

fn pem_error(e: pem::Error) -> String {
    match e {
        // The default rendering prints the line as a list of byte values.
        pem::Error::IllegalSectionStart { line } => {
            format!("bad BEGIN line '{}'", String::from_utf8_lossy(&line))
        }
        pem::Error::MissingSectionEnd { end_marker } => {
            format!("missing '{}'", String::from_utf8_lossy(&end_marker))
        }
        other => other.to_string(),
    }
}

/// Why a file holds no PEM block of the wanted kind, with the likely fix.
fn not_pem_hint(bytes: &[u8], wanted: &str) -> String {
    if !contains(bytes, b"-----BEGIN ") {
        // DER, the other common encoding, starts with a SEQUENCE tag.
        let der = if bytes.first() == Some(&0x30) {
            "; it looks like DER: convert it with `openssl x509 -inform der` (certificates) \
             or `openssl pkey -inform der` (keys)"
        } else {
            ""
        };
        return format!("is not a PEM file (no -----BEGIN {wanted}----- block){der}");
    }
    format!("has no -----BEGIN {wanted}----- block (is it the wrong file?)")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
        // Commands awaiting the broker's PUBACK. At the default of 100, a burst of `mode`
        // commands (a thousand readers coming online) fills it, the client stops taking
        // requests, and the acknowledgements of incoming events wait behind them: the
        // broker then stops delivering, and everything stalls.
        .set_inflight(4096)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 << 10);
    if let Some(user) = &settings.username {
        options.set_credentials(user, settings.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &settings.tls {
        options.set_transport(tls.transport());
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
            tls: None,
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
