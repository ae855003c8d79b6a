//! The embedded MQTT broker (rumqttd), so that a fresh install needs nothing else; the rest
//! of Gatehouse only ever talks MQTT to it, as it would to Mosquitto. Readers reach it
//! through `relay`, which authenticates each one and keeps it to its own topics (rumqttd
//! 0.20 has no per-topic authorization); rumqttd itself listens on loopback only.

mod relay;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use relay::{RELAY_USER, Relay};

/// Larger publishes are refused by the broker. Above PROTOCOL.md's 4 KiB so that
/// oversized events still reach the appliance and are reported as reader faults.
pub const MAX_PAYLOAD: usize = 2 << 20;

/// How long a client may take over its TLS handshake. The same as the broker allows for
/// the MQTT CONNECT that follows.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the broker's threads may take to start listening.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    // The OS's reason is in the message and is not the error's `source`, so that a chain
    // printed whole (`{:#}`) says it once.
    #[error(
        "cannot listen for MQTT on {addr}: {cause}; set [mqtt] listen in the config file or GATEHOUSE_MQTT_LISTEN (or use an external broker)"
    )]
    Listen {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error(
        "cannot listen for MQTT over TLS on {addr}: {cause}; set [mqtt] tls_listen in the config file or GATEHOUSE_MQTT_TLS_LISTEN"
    )]
    ListenTls {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("the embedded MQTT broker could not start: {0}")]
    Start(String),
    /// The TLS listener's certificate chain ([mqtt] tls_cert).
    #[error("certificate {}: {reason}", path.display())]
    TlsCertificate {
        path: std::path::PathBuf,
        reason: String,
    },
    /// The TLS listener's private key ([mqtt] tls_key), including one that does not
    /// belong to the certificate.
    #[error("private key {}: {reason}", path.display())]
    TlsKey {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Whether a reader may connect: (reader id, secret) → allowed. Called for every CONNECT,
/// on the runtime's threads: it must be quick and must not block.
pub type ReaderAuthenticate = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Told of every reader connection refused or cut off (called on the runtime's threads: it
/// must not block; a flood of bad connections calls it as often).
pub type OnRefusal = Arc<dyn Fn(Refusal) + Send + Sync>;

/// A reader connection the broker refused or cut off, for the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A wrong secret, or a username that is no reader's (the broker cannot tell which):
    /// refused with CONNACK "bad user name or password".
    BadCredentials { username: String, peer: SocketAddr },
    /// A reader that gave the appliance's client id: refused with CONNACK "identifier
    /// rejected".
    ApplianceClientId { reader_id: String, peer: SocketAddr },
    /// A reader that published (or set its last will) on a topic not its own, or
    /// subscribed to one: disconnected, and nothing it sent there went further. `topic` is
    /// escaped and cut short.
    ForbiddenTopic {
        reader_id: String,
        peer: SocketAddr,
        topic: String,
        subscribe: bool,
    },
}

impl Refusal {
    /// The reader id the client gave (authenticated for all but `BadCredentials`).
    pub fn reader_id(&self) -> &str {
        match self {
            Refusal::BadCredentials { username, .. } => username,
            Refusal::ApplianceClientId { reader_id, .. }
            | Refusal::ForbiddenTopic { reader_id, .. } => reader_id,
        }
    }

    /// What happened, in words for the event log (no secrets, no payloads).
    pub fn describe(&self) -> String {
        match self {
            Refusal::BadCredentials { peer, .. } => {
                format!("MQTT connection refused: wrong secret (from {peer})")
            }
            Refusal::ApplianceClientId { peer, .. } => {
                format!("MQTT connection refused: it gave the appliance's client id (from {peer})")
            }
            Refusal::ForbiddenTopic {
                peer,
                topic,
                subscribe,
                ..
            } => format!(
                "MQTT connection closed: it tried to {} {topic}, which is not its own topic (from {peer})",
                if *subscribe {
                    "subscribe to"
                } else {
                    "publish on"
                }
            ),
        }
    }
}

/// Who may do what on the embedded broker.
#[derive(Clone)]
pub struct Access {
    /// `{root}` of the reader topics (`gatehouse/v1`).
    pub topic_root: String,
    /// The appliance's own client id, which no reader may use.
    pub appliance_client_id: String,
    pub authenticate: ReaderAuthenticate,
    pub on_refusal: Option<OnRefusal>,
}

/// The appliance's own login at the embedded broker, on `Bound::local`: made at start,
/// random, never written anywhere.
#[derive(Clone)]
pub struct ApplianceLogin {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ApplianceLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplianceLogin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The appliance's username at rumqttd. '@' is not allowed in reader ids, so no reader can
/// take this name (and readers never reach rumqttd but through the relay anyway).
const APPLIANCE_USER: &str = "@gatehouse";

/// The server side of TLS: a certificate chain and its private key, loaded and checked
/// (they must belong together) before anything listens. The broker's MQTT over TLS
/// listener uses it, and through `rustls_config` any other TLS listener that should load
/// and check its files the same way (the appliance's HTTPS listener).
#[derive(Clone)]
pub struct ServerTls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Loads a PEM certificate chain (the server's certificate first, then any
    /// intermediates) and the PEM private key of that certificate.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<ServerTls, BrokerError> {
        let certs = crate::mqtt::read_certificates(cert_path).map_err(|reason| {
            BrokerError::TlsCertificate {
                path: cert_path.to_owned(),
                reason,
            }
        })?;
        let key_error = |reason: String| BrokerError::TlsKey {
            path: key_path.to_owned(),
            reason,
        };
        let key = crate::mqtt::read_private_key(key_path).map_err(key_error)?;
        let config = rustls::ServerConfig::builder_with_provider(crate::mqtt::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| BrokerError::Start(e.to_string()))?
            .with_no_client_auth()
            // Also checks that the key is the certificate's: a mismatch would otherwise
            // only show as failed handshakes at every reader.
            .with_single_cert(certs, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => key_error(format!(
                    "does not belong to the certificate in {} (their public keys differ)",
                    cert_path.display()
                )),
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    BrokerError::TlsCertificate {
                        path: cert_path.to_owned(),
                        reason: format!("cannot be used: {e}"),
                    }
                }
                other => key_error(format!("cannot be used: {other}")),
            })?;
        Ok(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The checked rustls configuration (on ring, like every TLS connection here), for a
    /// listener that runs its own TLS acceptor. A copy: a listener may add its ALPN
    /// protocols without changing this one.
    pub fn rustls_config(&self) -> rustls::ServerConfig {
        self.acceptor.config().as_ref().clone()
    }
}

/// What the broker listens on for readers.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Plain MQTT for readers (on an isolated reader network). `None`: readers must use TLS.
    pub plain: Option<SocketAddr>,
    /// MQTT over TLS for readers.
    pub tls: Option<(SocketAddr, ServerTls)>,
}

/// Where the started broker listens (real ports, where port 0 was asked for).
#[derive(Debug, Clone)]
pub struct Bound {
    /// The plain listener for readers, if any.
    pub plain: Option<SocketAddr>,
    /// The TLS listener for readers, if any.
    pub tls: Option<SocketAddr>,
    /// rumqttd's own listener, on loopback, for the appliance's client (with `appliance`).
    pub local: SocketAddr,
    pub appliance: ApplianceLogin,
}

/// Starts the broker in threads of its own, which run until the process ends, and the
/// readers' listeners on the current Tokio runtime.
///
/// rumqttd listens on loopback only, on a port of its own choosing, and lets in two logins,
/// both random and made here: the appliance's and the relay's. Readers connect to the
/// relay (`relay.rs`), plain or over TLS, which authenticates each CONNECT with `access`,
/// forwards it under the relay's login, and from then on checks every PUBLISH and SUBSCRIBE
/// against that reader's own topics.
///
/// TLS is terminated here too, rather than by rumqttd's own TLS support: rumqttd 0.20 runs
/// each handshake inside its accept loop, with no timeout, so one client that opens a
/// connection and sends nothing stops every reader from connecting (measured); it also
/// rereads the PEM files for every connection and only logs what is wrong with them, and
/// would bring a second rustls (0.22) with x509-parser into the build. Here each handshake
/// runs in a task of its own with a time limit.
pub fn start(listeners: Listeners, access: Access) -> Result<Bound, BrokerError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        BrokerError::Start("the readers' listeners need a Tokio runtime".to_owned())
    })?;
    // rumqttd reports a failed bind only in its log: find out first, with a clear message.
    // Every listener is bound before the probe is let go, so that two of them asking for
    // port 0 cannot be given the same one.
    let plain_listener = match listeners.plain {
        Some(addr) => Some(bind_for_readers(addr, |source| BrokerError::Listen {
            addr,
            cause: source,
        })?),
        None => None,
    };
    let tls_listener = match &listeners.tls {
        Some((addr, _)) => Some(bind_for_readers(*addr, |source| BrokerError::ListenTls {
            addr: *addr,
            cause: source,
        })?),
        None => None,
    };
    let loopback_error =
        |e: std::io::Error| BrokerError::Start(format!("no loopback listener: {e}"));
    let probe = TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .map_err(loopback_error)?;
    let local = probe.local_addr().map_err(loopback_error)?;
    drop(probe);

    let appliance = ApplianceLogin {
        username: APPLIANCE_USER.to_owned(),
        password: random_secret()?,
    };
    let relay_secret = random_secret()?;
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 256,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    {
        let appliance_password = appliance.password.clone();
        let relay_secret = relay_secret.clone();
        connections.set_auth_handler(move |_client_id: String, user: String, pass: String| {
            let allowed = (user == APPLIANCE_USER && constant_time_eq(&pass, &appliance_password))
                || (user == RELAY_USER && constant_time_eq(&pass, &relay_secret));
            async move { allowed }
        });
    }
    let server = ServerSettings {
        name: "gatehouse".to_owned(),
        listen: local,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_000,
            max_outgoing_packet_count: 1_000,
            max_segment_size: 64 << 20,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("gatehouse".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    // rumqttd binds in its own thread, later. Wait for it, so that whoever is told the
    // broker listens can connect at once, and so that a port taken in the meantime is an
    // error here rather than a line in rumqttd's log.
    wait_until_listening(local, BROKER_START_TIMEOUT)?;
    match disable_nagle_on_listener(local) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the embedded broker's listening socket was not found; answers through it take about 40 ms longer (Mosquitto with set_tcp_nodelay avoids this)"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot turn Nagle's algorithm off on the embedded broker's listener (pidfd_getfd needs Linux 5.6 or later and may be blocked by a seccomp filter); answers through it take about 40 ms longer (Mosquitto with set_tcp_nodelay avoids this)"
        ),
    }

    let relay = Arc::new(Relay {
        topic_root: access.topic_root.trim_end_matches('/').to_owned(),
        appliance_client_id: access.appliance_client_id,
        authenticate: access.authenticate,
        on_refusal: access.on_refusal,
        broker: local,
        relay_secret,
    });
    let _entered = runtime.enter();
    let mut plain_addr = None;
    if let Some((listener, bound)) = plain_listener {
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| BrokerError::Listen {
                addr: bound,
                cause: source,
            })?;
        runtime.spawn(serve_plain(listener, relay.clone()));
        plain_addr = Some(bound);
    }
    let mut tls_addr = None;
    if let (Some((listener, bound)), Some((_, tls))) = (tls_listener, listeners.tls) {
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
            BrokerError::ListenTls {
                addr: bound,
                cause: source,
            }
        })?;
        runtime.spawn(serve_tls(listener, tls, relay));
        tls_addr = Some(bound);
    }
    Ok(Bound {
        plain: plain_addr,
        tls: tls_addr,
        local,
        appliance,
    })
}

/// Binds a readers' listener, ready for Tokio; returns it with its real address.
fn bind_for_readers(
    addr: SocketAddr,
    error: impl Fn(std::io::Error) -> BrokerError,
) -> Result<(TcpListener, SocketAddr), BrokerError> {
    let listener = TcpListener::bind(addr).map_err(&error)?;
    listener.set_nonblocking(true).map_err(&error)?;
    let bound = listener.local_addr().map_err(&error)?;
    Ok((listener, bound))
}

/// 32 random bytes from the system's secure source (through the TLS backend), in hex.
fn random_secret() -> Result<String, BrokerError> {
    let mut bytes = [0u8; 32];
    crate::mqtt::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| BrokerError::Start("the system's random source failed".to_owned()))?;
    Ok(hex::encode(bytes))
}

/// Compares two secrets in time that depends on their lengths only.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// rumqttd 0.20 leaves Nagle's algorithm on for the connections it accepts, so it holds a
/// small write (a command right after a PUBACK) until the reader acknowledges the previous
/// one, which a reader's delayed ACK puts off by about 40 ms: every answer would wait that
/// long. rumqttd has no setting for it and takes no listener of ours, but Linux copies
/// TCP_NODELAY from a listening socket to each socket accepted from it, and rumqttd's
/// listener is in this process. So: find it among our descriptors by its address, and set
/// the option through a duplicate (which refers to the same socket). The duplicate comes
/// from `pidfd_getfd` on our own process, which needs no unsafe code. Returns whether the
/// listener was found.
fn disable_nagle_on_listener(addr: SocketAddr) -> std::io::Result<bool> {
    for dup in own_sockets()? {
        let listening = rustix::net::sockopt::socket_acceptconn(&dup).unwrap_or(false);
        if listening && local_address(&dup) == Some(addr) {
            rustix::net::sockopt::set_tcp_nodelay(&dup, true)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Duplicates of this process's socket descriptors.
fn own_sockets() -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};
    let me = pidfd_open(getpid(), PidfdFlags::empty())?;
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if is_socket && let Ok(dup) = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) {
            sockets.push(dup);
        }
    }
    Ok(sockets)
}

fn local_address(socket: &std::os::fd::OwnedFd) -> Option<SocketAddr> {
    rustix::net::getsockname(socket).ok()?.try_into().ok()
}

/// Returns once something accepts connections at `addr`.
fn wait_until_listening(addr: SocketAddr, timeout: Duration) -> Result<(), BrokerError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        // Closed at once: the broker drops a connection that never sends CONNECT.
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(BrokerError::Start(format!(
                "it did not listen on {addr} within {timeout:?} (GATEHOUSE_LOG=info,rumqttd=info shows why)"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Accepts plain reader connections until the process ends, each relayed in a task of its
/// own.
async fn serve_plain(listener: tokio::net::TcpListener, relay: Arc<Relay>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Door traffic is small packets: without TCP_NODELAY each could wait 40 ms.
                let _ = stream.set_nodelay(true);
                tokio::spawn(relay.clone().serve(stream, peer));
            }
            Err(e) => {
                // Out of file descriptors, typically: wait rather than spin.
                tracing::warn!(error = %e, "MQTT: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Accepts TLS clients until the process ends; each one's handshake and relay run in a
/// task of their own, so a slow or silent client holds up nobody else.
async fn serve_tls(listener: tokio::net::TcpListener, tls: ServerTls, relay: Arc<Relay>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(relay_tls(stream, peer, tls.acceptor.clone(), relay.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "MQTT over TLS: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn relay_tls(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    relay: Arc<Relay>,
) {
    let _ = stream.set_nodelay(true);
    let client = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            // What an installer needs when a reader does not trust the certificate.
            tracing::info!(%peer, error = %e, "MQTT over TLS: handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "MQTT over TLS: no handshake within 10 s; closed");
            return;
        }
    };
    relay.serve(client, peer).await;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mqtt::{self, ClientTls, Incoming, MqttSettings};
    use crate::sim::{SimReader, SimSettings};
    use rustls::pki_types::pem::PemObject;
    use std::path::PathBuf;

    /// A folder of throwaway PEM files: a CA, a server certificate it signed for localhost
    /// and 127.0.0.1, the server's key, and a second CA that signed nothing here.
    pub(crate) struct Pki {
        pub dir: PathBuf,
        pub ca: PathBuf,
        pub other_ca: PathBuf,
        pub cert: PathBuf,
        pub key: PathBuf,
    }

    impl Pki {
        pub(crate) fn new() -> Pki {
            use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "gatehouse-drivers-pki-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let ca = |name: &str| {
                let key = KeyPair::generate().unwrap();
                let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.distinguished_name.push(DnType::CommonName, name);
                let cert = params.self_signed(&key).unwrap();
                (cert.pem(), Issuer::new(params, key))
            };
            let (ca_pem, issuer) = ca("Gatehouse test CA");
            let (other_pem, _) = ca("Somebody else's CA");
            let key = KeyPair::generate().unwrap();
            let params =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            let pki = Pki {
                ca: dir.join("ca.pem"),
                other_ca: dir.join("other-ca.pem"),
                cert: dir.join("server.pem"),
                key: dir.join("server.key"),
                dir,
            };
            std::fs::write(&pki.ca, ca_pem).unwrap();
            std::fs::write(&pki.other_ca, other_pem).unwrap();
            std::fs::write(&pki.cert, cert.pem()).unwrap();
            std::fs::write(&pki.key, key.serialize_pem()).unwrap();
            pki
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Readers r1 and r2, with `secret-r1` and `secret-r2`; refusals are sent to `refusals`.
    fn access_with(refusals: Option<std::sync::mpsc::Sender<Refusal>>) -> Access {
        let refusals = refusals.map(std::sync::Mutex::new);
        Access {
            topic_root: "gatehouse/v1".to_owned(),
            appliance_client_id: "gatehouse-appliance".to_owned(),
            authenticate: Arc::new(|user, pass| {
                (user == "r1" && pass == "secret-r1") || (user == "r2" && pass == "secret-r2")
            }),
            on_refusal: Some(Arc::new(move |refusal| {
                if let Some(tx) = &refusals {
                    let _ = tx.lock().unwrap().send(refusal);
                }
            })),
        }
    }

    fn only_r1() -> Access {
        access_with(None)
    }

    fn reader(addr: SocketAddr, password: &str) -> SimSettings {
        SimSettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            reader_id: "r1".to_owned(),
            secret: "secret-r1".to_owned(),
            username: Some("r1".to_owned()),
            password: Some(password.to_owned()),
            topic_root: "gatehouse/v1".to_owned(),
            sign_events: false,
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    fn loopback() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_connect_over_tls_with_their_secret() {
        let pki = Pki::new();
        let tls = ServerTls::load(&pki.cert, &pki.key).unwrap();
        let bound = start(
            Listeners {
                plain: None,
                tls: Some((loopback(), tls)),
            },
            only_r1(),
        )
        .unwrap();
        let tls_addr = bound.tls.unwrap();
        assert_eq!(
            bound.plain, None,
            "no plain listener for readers was asked for"
        );
        assert!(bound.local.ip().is_loopback());
        assert_ne!(tls_addr.port(), 0);

        // A client that connects and never says hello must hold up nobody (rumqttd's own
        // TLS listener stalls every later handshake behind such a client).
        let _silent = tokio::net::TcpStream::connect(tls_addr).await.unwrap();

        let trusted = ClientTls::from_ca_file(&pki.ca).unwrap();
        let connected = SimReader::connect_tls(reader(tls_addr, "secret-r1"), trusted.clone(), 1)
            .await
            .map(|_| ());
        assert!(connected.is_ok(), "{connected:?}");

        // The same authentication as on the plain listener.
        let wrong = SimReader::connect_tls(reader(tls_addr, "not-the-secret"), trusted, 1).await;
        assert!(wrong.is_err(), "a wrong secret was let in over TLS");

        let stranger = ClientTls::from_ca_file(&pki.other_ca).unwrap();
        let untrusted = SimReader::connect_tls(reader(tls_addr, "secret-r1"), stranger, 1)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            untrusted.contains("certificate"),
            "a client that does not trust the CA must fail the handshake: {untrusted:?}"
        );

        // Plain MQTT on the TLS port gets nowhere.
        let plain = SimReader::connect(reader(tls_addr, "secret-r1"), 1).await;
        assert!(plain.is_err());

        // The appliance's MQTT client over TLS, as to an external mqtts:// broker (here it
        // logs in as reader r1).
        let (_link, mut events) = mqtt::connect(&MqttSettings {
            host: "localhost".to_owned(),
            port: tls_addr.port(),
            client_id: "appliance".to_owned(),
            username: Some("r1".to_owned()),
            password: Some("secret-r1".to_owned()),
            topic_root: "gatehouse/v1".to_owned(),
            tls: Some(ClientTls::from_ca_file(&pki.ca).unwrap()),
        });
        let first = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap();
        assert!(matches!(first, Incoming::Connected), "{first:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_and_tls_listen_side_by_side() {
        let pki = Pki::new();
        let bound = start(
            Listeners {
                plain: Some(loopback()),
                tls: Some((loopback(), ServerTls::load(&pki.cert, &pki.key).unwrap())),
            },
            only_r1(),
        )
        .unwrap();
        let plain = bound.plain.unwrap();
        assert!(bound.local.ip().is_loopback());
        assert_ne!(
            bound.local, plain,
            "the appliance has a listener of its own"
        );
        assert_ne!(Some(plain), bound.tls);
        let over_plain = SimReader::connect(reader(plain, "secret-r1"), 1).await;
        assert!(over_plain.is_ok());
        let tls = ClientTls::from_ca_file(&pki.ca).unwrap();
        let over_tls =
            SimReader::connect_tls(reader(bound.tls.unwrap(), "secret-r1"), tls, 1).await;
        assert!(over_tls.is_ok());
    }

    #[tokio::test]
    async fn connections_the_broker_accepts_have_nagle_off() {
        let bound = start(
            Listeners {
                plain: Some(loopback()),
                tls: None,
            },
            only_r1(),
        )
        .unwrap();
        // The relay's listener for readers, and rumqttd's own (where the relay and the
        // appliance connect).
        for listener in [bound.plain.unwrap(), bound.local] {
            let client = tokio::net::TcpStream::connect(listener).await.unwrap();
            let ours = client.local_addr().unwrap();
            // The broker's end of this connection: the socket whose peer is our client.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let accepted = loop {
                let found = own_sockets().unwrap().into_iter().find(|s| {
                    rustix::net::getpeername(s)
                        .ok()
                        .flatten()
                        .and_then(|a| SocketAddr::try_from(a).ok())
                        == Some(ours)
                });
                if let Some(socket) = found {
                    break socket;
                }
                assert!(std::time::Instant::now() < deadline, "not accepted");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            assert_eq!(local_address(&accepted), Some(listener));
            assert!(
                rustix::net::sockopt::tcp_nodelay(&accepted).unwrap(),
                "the socket accepted on {listener} still holds small writes back"
            );
        }
    }

    /// A bare MQTT client: connects and returns its first event (the CONNACK, or why not).
    async fn raw_client(
        addr: SocketAddr,
        client_id: &str,
        login: Option<(&str, &str)>,
        tls: Option<&ClientTls>,
        will: Option<&str>,
    ) -> (
        rumqttc::AsyncClient,
        rumqttc::EventLoop,
        Result<rumqttc::Event, rumqttc::ConnectionError>,
    ) {
        let mut options = rumqttc::MqttOptions::new(client_id, "localhost", addr.port());
        options.set_keep_alive(Duration::from_secs(10));
        if let Some((user, pass)) = login {
            options.set_credentials(user, pass);
        }
        if let Some(tls) = tls {
            options.set_transport(tls.transport());
        }
        if let Some(topic) = will {
            options.set_last_will(rumqttc::LastWill::new(
                topic,
                "offline",
                rumqttc::QoS::AtLeastOnce,
                false,
            ));
        }
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
        let first = tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("an answer to CONNECT");
        (client, eventloop, first)
    }

    /// Polls until the connection ends; returns false if it was still up after `within`.
    async fn cut_off(eventloop: &mut rumqttc::EventLoop, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }

    /// What the appliance hears: every reader's events, through rumqttd's loopback listener.
    async fn appliance(bound: &Bound) -> tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)> {
        let (client, mut eventloop, first) = raw_client(
            bound.local,
            "gatehouse-appliance",
            Some((&bound.appliance.username, &bound.appliance.password)),
            None,
            None,
        )
        .await;
        assert!(first.is_ok(), "{first:?}");
        client
            .subscribe("gatehouse/v1/readers/+/events", rumqttc::QoS::AtLeastOnce)
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        tokio::spawn(async move {
            let _client = client;
            while let Ok(event) = eventloop.poll().await {
                match event {
                    rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    _ => {}
                }
            }
        });
        subscribed.await.unwrap();
        rx
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_is_kept_to_its_own_topics_over_plain_and_tls() {
        let pki = Pki::new();
        let (refusals_tx, refusals) = std::sync::mpsc::channel();
        let bound = start(
            Listeners {
                plain: Some(loopback()),
                tls: Some((loopback(), ServerTls::load(&pki.cert, &pki.key).unwrap())),
            },
            access_with(Some(refusals_tx)),
        )
        .unwrap();
        let mut heard = appliance(&bound).await;
        let trust = ClientTls::from_ca_file(&pki.ca).unwrap();
        let listeners = [
            (bound.plain.unwrap(), None),
            (bound.tls.unwrap(), Some(&trust)),
        ];
        for (n, (addr, tls)) in listeners.into_iter().enumerate() {
            let r1 = Some(("r1", "secret-r1"));
            // r1 on r2's events topic: cut off, and nothing reaches the appliance.
            let (client, mut eventloop, first) = raw_client(addr, "r1", r1, tls, None).await;
            assert!(first.is_ok(), "{first:?}");
            client
                .publish(
                    "gatehouse/v1/readers/r2/events",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    format!("forged {n}"),
                )
                .await
                .unwrap();
            assert!(
                cut_off(&mut eventloop, Duration::from_secs(5)).await,
                "r1 stayed connected after publishing as r2"
            );
            let refusal = refusals.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(
                matches!(&refusal, Refusal::ForbiddenTopic { reader_id, topic, subscribe: false, .. }
                    if reader_id == "r1" && topic.contains("readers/r2/events")),
                "{refusal:?}"
            );
            assert!(
                refusal.describe().contains("publish on") && !refusal.describe().contains("forged"),
                "{}",
                refusal.describe()
            );

            // Subscribing to r2's commands, to every reader's, or to everything: cut off.
            for filter in [
                "gatehouse/v1/readers/r2/commands",
                "gatehouse/v1/readers/+/commands",
                "#",
            ] {
                let (client, mut eventloop, first) = raw_client(addr, "r1", r1, tls, None).await;
                assert!(first.is_ok(), "{first:?}");
                client
                    .subscribe(filter, rumqttc::QoS::AtLeastOnce)
                    .await
                    .unwrap();
                assert!(
                    cut_off(&mut eventloop, Duration::from_secs(5)).await,
                    "r1 subscribed to {filter}"
                );
                let refusal = refusals.recv_timeout(Duration::from_secs(5)).unwrap();
                assert!(
                    matches!(
                        &refusal,
                        Refusal::ForbiddenTopic {
                            subscribe: true,
                            ..
                        }
                    ),
                    "{refusal:?}"
                );
            }

            // A last will on another reader's topic is refused with the CONNECT.
            let (_client, eventloop, first) =
                raw_client(addr, "r1", r1, tls, Some("gatehouse/v1/readers/r2/events")).await;
            assert!(
                matches!(
                    first,
                    Err(rumqttc::ConnectionError::ConnectionRefused(
                        rumqttc::ConnectReturnCode::NotAuthorized
                    ))
                ),
                "a will on r2's topic was let in: {first:?}"
            );
            drop(eventloop);
            let refusal = refusals.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(
                matches!(&refusal, Refusal::ForbiddenTopic { topic, .. } if topic.contains("r2")),
                "{refusal:?}"
            );

            // r1's own traffic goes through: its events reach the appliance, and it may
            // subscribe to its commands.
            let (client, mut eventloop, first) = raw_client(addr, "r1", r1, tls, None).await;
            assert!(first.is_ok(), "{first:?}");
            client
                .subscribe(
                    "gatehouse/v1/readers/r1/commands",
                    rumqttc::QoS::AtLeastOnce,
                )
                .await
                .unwrap();
            client
                .publish(
                    "gatehouse/v1/readers/r1/events",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    format!("genuine {n}"),
                )
                .await
                .unwrap();
            // Driven (and watched) for a moment beyond the event's arrival.
            let driver =
                tokio::spawn(async move { cut_off(&mut eventloop, Duration::from_secs(2)).await });
            let (topic, payload) = tokio::time::timeout(WAIT, heard.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(topic, "gatehouse/v1/readers/r1/events");
            assert_eq!(
                payload,
                format!("genuine {n}").into_bytes(),
                "no forged event came first"
            );
            assert!(!driver.await.unwrap(), "r1 was cut off for its own topics");
            assert!(refusals.try_recv().is_err());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_connections_get_a_connack_saying_why() {
        use rumqttc::{ConnectReturnCode, ConnectionError};
        let (refusals_tx, refusals) = std::sync::mpsc::channel();
        let bound = start(
            Listeners {
                plain: Some(loopback()),
                tls: None,
            },
            access_with(Some(refusals_tx)),
        )
        .unwrap();
        let plain = bound.plain.unwrap();
        let refused = |first: Result<rumqttc::Event, ConnectionError>| match first {
            Err(ConnectionError::ConnectionRefused(code)) => Some(code),
            _ => None,
        };

        let (_, _, first) =
            raw_client(plain, "r1", Some(("r1", "not-the-secret")), None, None).await;
        assert_eq!(refused(first), Some(ConnectReturnCode::BadUserNamePassword));
        let refusal = refusals.recv_timeout(WAIT).unwrap();
        assert!(
            matches!(&refusal, Refusal::BadCredentials { username, .. } if username == "r1"),
            "{refusal:?}"
        );
        assert!(!refusal.describe().contains("not-the-secret"));

        let (_, _, first) = raw_client(plain, "x", None, None, None).await;
        assert_eq!(refused(first), Some(ConnectReturnCode::NotAuthorized));

        // A reader may not take the appliance's client id (the broker would drop the
        // appliance's own connection for it).
        let (_, _, first) = raw_client(
            plain,
            "gatehouse-appliance",
            Some(("r1", "secret-r1")),
            None,
            None,
        )
        .await;
        assert_eq!(refused(first), Some(ConnectReturnCode::BadClientId));
        assert!(matches!(
            refusals.recv_timeout(WAIT).unwrap(),
            Refusal::ApplianceClientId { .. }
        ));

        // Nor can it knock another reader off by using that reader's client id: at the
        // broker each reader's client ids are its own.
        let (_r2, mut r2_loop, first) =
            raw_client(plain, "shared-id", Some(("r2", "secret-r2")), None, None).await;
        assert!(first.is_ok(), "{first:?}");
        let (_r1, mut r1_loop, first) =
            raw_client(plain, "shared-id", Some(("r1", "secret-r1")), None, None).await;
        assert!(first.is_ok(), "{first:?}");
        let r1_driver =
            tokio::spawn(async move { cut_off(&mut r1_loop, Duration::from_secs(2)).await });
        assert!(
            !cut_off(&mut r2_loop, Duration::from_secs(2)).await,
            "r2 was dropped for r1's connection"
        );
        assert!(!r1_driver.await.unwrap());

        // rumqttd's own listener takes no reader: only the relay and the appliance.
        let (_, _, first) =
            raw_client(bound.local, "r1", Some(("r1", "secret-r1")), None, None).await;
        assert!(first.is_err(), "a reader logged in to rumqttd directly");
        let (_, _, first) = raw_client(
            bound.local,
            "gatehouse-appliance",
            Some((&bound.appliance.username, &bound.appliance.password)),
            None,
            None,
        )
        .await;
        assert!(first.is_ok(), "{first:?}");
    }

    #[tokio::test]
    async fn a_busy_tls_port_names_the_setting() {
        let pki = Pki::new();
        let taken = std::net::TcpListener::bind(loopback()).unwrap();
        let busy = taken.local_addr().unwrap();
        let err = start(
            Listeners {
                plain: None,
                tls: Some((busy, ServerTls::load(&pki.cert, &pki.key).unwrap())),
            },
            only_r1(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&busy.to_string()) && err.contains("GATEHOUSE_MQTT_TLS_LISTEN"),
            "{err}"
        );
    }

    #[test]
    fn unusable_tls_files_say_what_is_wrong() {
        let pki = Pki::new();
        let load = |cert: &Path, key: &Path| ServerTls::load(cert, key).unwrap_err().to_string();

        let missing = pki.dir.join("nope.pem");
        let err = load(&missing, &pki.key);
        assert!(
            err.contains("nope.pem") && err.contains("no such file"),
            "{err}"
        );

        // The key where the certificate belongs (the two files swapped).
        let err = load(&pki.key, &pki.cert);
        assert!(
            err.contains("no -----BEGIN CERTIFICATE----- block"),
            "{err}"
        );

        let der = pki.dir.join("server.der");
        let cert_pem = std::fs::read(&pki.cert).unwrap();
        let cert_der = rustls::pki_types::CertificateDer::pem_slice_iter(&cert_pem)
            .next()
            .unwrap()
            .unwrap();
        std::fs::write(&der, cert_der.as_ref()).unwrap();
        let err = load(&der, &pki.key);
        assert!(
            err.contains("not a PEM file") && err.contains("DER"),
            "{err}"
        );

        let other = Pki::new();
        let err = load(&pki.cert, &other.key);
        assert!(
            err.starts_with("private key") && err.contains("does not belong"),
            "{err}"
        );

        let encrypted = pki.dir.join("encrypted.key");
        std::fs::write(
            &encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = load(&pki.cert, &encrypted);
        assert!(err.contains("encrypted"), "{err}");

        let err = ClientTls::from_ca_file(&pki.key).unwrap_err().to_string();
        assert!(
            err.contains("no -----BEGIN CERTIFICATE----- block"),
            "{err}"
        );
    }
}
