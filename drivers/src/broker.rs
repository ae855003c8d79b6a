//! The embedded MQTT broker (rumqttd), so that a fresh install needs nothing else. It is
//! kept behind this seam: the rest of Gatehouse only ever talks MQTT to it, as it would to
//! Mosquitto. It authenticates every client and refuses anonymous ones, but rumqttd has no
//! per-topic ACL (see docs/readers.md): message MACs protect the doors instead.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

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
    #[error(
        "cannot listen for MQTT on {addr}: {source}; set [mqtt] listen in the config file or GATEHOUSE_MQTT_LISTEN (or use an external broker)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen for MQTT over TLS on {addr}: {source}; set [mqtt] tls_listen in the config file or GATEHOUSE_MQTT_TLS_LISTEN"
    )]
    ListenTls {
        addr: SocketAddr,
        source: std::io::Error,
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

/// Decides whether a client may connect: (client id, username, password) → allowed.
pub type Authenticate = Arc<dyn Fn(&str, &str, &str) -> bool + Send + Sync>;

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

/// What the broker listens on.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// Plain MQTT for readers (on an isolated reader network). `None`: readers must use
    /// TLS, and the broker keeps a plain listener on loopback only, for the appliance.
    pub plain: Option<SocketAddr>,
    /// MQTT over TLS for readers.
    pub tls: Option<(SocketAddr, ServerTls)>,
}

/// Where the started broker listens (real ports, where port 0 was asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// The plain listener for readers, if any.
    pub plain: Option<SocketAddr>,
    /// The TLS listener for readers, if any.
    pub tls: Option<SocketAddr>,
    /// A plain address on this host for the appliance's own client: the plain listener,
    /// or a loopback-only one when readers must use TLS.
    pub local: SocketAddr,
}

/// Starts the broker in threads of its own, which run until the process ends, and the TLS
/// listener (if any) on the current Tokio runtime.
///
/// TLS is terminated here, in front of a plain rumqttd listener, rather than by rumqttd's
/// own TLS support: rumqttd 0.20 runs each handshake inside its accept loop, with no
/// timeout, so one client that opens a connection and sends nothing stops every reader
/// from connecting (measured); it also rereads the PEM files for every connection and only
/// logs what is wrong with them, and would bring a second rustls (0.22) with x509-parser
/// into the build. Here each handshake runs in a task of its own with a time limit, and
/// the decrypted stream is relayed to the broker's plain listener on this host, where the
/// client authenticates with its id and secret exactly as on the plain listener.
pub fn start(listeners: Listeners, authenticate: Authenticate) -> Result<Bound, BrokerError> {
    let runtime = match &listeners.tls {
        Some(_) => Some(tokio::runtime::Handle::try_current().map_err(|_| {
            BrokerError::Start("the TLS listener needs a Tokio runtime".to_owned())
        })?),
        None => None,
    };
    // rumqttd reports a failed bind only in its log: find out first, with a clear message.
    // Every listener is bound before any is let go, so that two of them asking for port 0
    // cannot be given the same one.
    let (rumqttd_listen, probe) = match listeners.plain {
        Some(listen) => {
            let probe = TcpListener::bind(listen).map_err(|source| BrokerError::Listen {
                addr: listen,
                source,
            })?;
            let addr = probe.local_addr().map_err(|source| BrokerError::Listen {
                addr: listen,
                source,
            })?;
            (addr, probe)
        }
        None => {
            let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
            let probe = TcpListener::bind(loopback)
                .map_err(|e| BrokerError::Start(format!("no loopback listener: {e}")))?;
            let addr = probe
                .local_addr()
                .map_err(|e| BrokerError::Start(format!("no loopback listener: {e}")))?;
            (addr, probe)
        }
    };
    let tls_listener = match &listeners.tls {
        Some((addr, _)) => {
            let tls_error = |source| BrokerError::ListenTls {
                addr: *addr,
                source,
            };
            let listener = TcpListener::bind(addr).map_err(tls_error)?;
            listener.set_nonblocking(true).map_err(tls_error)?;
            let bound = listener.local_addr().map_err(tls_error)?;
            Some((listener, bound))
        }
        None => None,
    };
    drop(probe);
    let local = connectable(rumqttd_listen);

    let mut connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 256,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let allowed = !user.is_empty() && authenticate(&client_id, &user, &pass);
        async move { allowed }
    });
    let server = ServerSettings {
        name: "gatehouse".to_owned(),
        listen: rumqttd_listen,
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
    match disable_nagle_on_listener(rumqttd_listen) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "the embedded broker's listening socket was not found; answers through it take about 40 ms longer (Mosquitto with set_tcp_nodelay avoids this)"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot turn Nagle's algorithm off on the embedded broker's listener (pidfd_getfd needs Linux 5.6 or later and may be blocked by a seccomp filter); answers through it take about 40 ms longer (Mosquitto with set_tcp_nodelay avoids this)"
        ),
    }

    let mut tls_addr = None;
    if let (Some((listener, bound)), Some((_, tls)), Some(runtime)) =
        (tls_listener, listeners.tls, runtime)
    {
        let _entered = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|source| {
            BrokerError::ListenTls {
                addr: bound,
                source,
            }
        })?;
        runtime.spawn(serve_tls(listener, tls, local));
        tls_addr = Some(bound);
    }
    Ok(Bound {
        plain: listeners.plain.map(|_| rumqttd_listen),
        tls: tls_addr,
        local,
    })
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

/// An address a client on this host can connect to for a listener bound to `addr`.
fn connectable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

/// Accepts TLS clients until the process ends; each one's handshake and relay run in a
/// task of their own, so a slow or silent client holds up nobody else.
async fn serve_tls(listener: tokio::net::TcpListener, tls: ServerTls, broker: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(relay_tls(stream, peer, tls.acceptor.clone(), broker));
            }
            Err(e) => {
                // Out of file descriptors, typically: wait rather than spin.
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
    broker: SocketAddr,
) {
    // Door traffic is small packets: without TCP_NODELAY each could wait up to 40 ms.
    let _ = stream.set_nodelay(true);
    let mut client =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
    let mut upstream = match tokio::net::TcpStream::connect(broker).await {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::error!(%peer, error = %e, "MQTT over TLS: the embedded broker cannot be reached");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    // Ends when either side closes; the broker closes clients that fail to authenticate or
    // go quiet past their keep-alive.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
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

    fn only_r1() -> Authenticate {
        Arc::new(|_client, user, pass| user == "r1" && pass == "secret-r1")
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

        // The appliance's own client over TLS, as to an external mqtts:// broker.
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
        assert_eq!(bound.local, plain, "the appliance uses the plain listener");
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
        let plain = bound.plain.unwrap();
        let client = tokio::net::TcpStream::connect(plain).await.unwrap();
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
        assert_eq!(local_address(&accepted), Some(plain));
        assert!(
            rustix::net::sockopt::tcp_nodelay(&accepted).unwrap(),
            "rumqttd's accepted socket still holds small writes back"
        );
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
