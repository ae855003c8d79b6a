//! The embedded MQTT broker (rumqttd), so that a fresh install needs nothing else. It is
//! kept behind this seam: the rest of Gatehouse only ever talks MQTT to it, as it would to
//! Mosquitto. It authenticates every client and refuses anonymous ones, but rumqttd has no
//! per-topic ACL (see docs/readers.md): message MACs protect the doors instead.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Larger publishes are refused by the broker. Above PROTOCOL.md's 4 KiB so that
/// oversized events still reach the appliance and are reported as reader faults.
pub const MAX_PAYLOAD: usize = 2 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot listen for MQTT on {addr}: {source}; set [mqtt] listen in the config file or GATEHOUSE_MQTT_LISTEN (or use an external broker)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the embedded MQTT broker could not start: {0}")]
    Start(String),
}

/// Decides whether a client may connect: (client id, username, password) → allowed.
pub type Authenticate = Arc<dyn Fn(&str, &str, &str) -> bool + Send + Sync>;

/// Starts the broker on `listen` in threads of its own, which run until the process ends.
/// Returns the address it listens on (the real port when `listen` asked for port 0).
pub fn start(listen: SocketAddr, authenticate: Authenticate) -> Result<SocketAddr, BrokerError> {
    // rumqttd reports a failed bind only in its log: find out first, with a clear message.
    let probe = TcpListener::bind(listen).map_err(|source| BrokerError::Listen {
        addr: listen,
        source,
    })?;
    let addr = probe.local_addr().map_err(|source| BrokerError::Listen {
        addr: listen,
        source,
    })?;
    drop(probe);

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
        listen: addr,
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
    Ok(addr)
}
