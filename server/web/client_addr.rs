//! Whose request this is: the connection's peer address, or, when that peer is a trusted
//! reverse proxy (`[http] trusted_proxies`), the rightmost untrusted hop of X-Forwarded-For.

use std::net::{IpAddr, SocketAddr};

use actix_web::{HttpRequest, web};
use ipnet::IpNet;

use crate::app::state::AppState;

/// The reverse proxies whose X-Forwarded-For is believed: addresses and networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Reads `[http] trusted_proxies`: each entry an address (`10.0.0.5`, `::1`) or a
    /// network (`10.0.0.0/24`); an error names the first entry that is neither.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .or_else(|_| entry.parse::<IpNet>().map(|net| net.trunc()))
                    .map_err(|_| {
                        format!(
                            "'{entry}' is not an IP address or network (like 10.0.0.5 or \
                             10.0.0.0/24)"
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The client's address given the connection's `peer` and the X-Forwarded-For header
    /// values in the order received. Hops are read from the right (each proxy appends the
    /// address it was reached from): the first one not trusted is the client; what lies
    /// left of it was written by the client and proves nothing. From an untrusted peer the
    /// header is ignored, so nobody can choose the address they are throttled and audited
    /// under.
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // A hop that is not an address ends the walk: the last proxy that wrote a
            // readable one answers for the request.
            let Some(addr) = parse_hop(hop) else { break };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }

    /// The entries in words, for `check-config` and the settings page.
    pub fn summary(&self) -> String {
        if self.0.is_empty() {
            return "none: a client's address is its connection's".to_owned();
        }
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        format!(
            "{}: X-Forwarded-For is believed from these",
            list.join(", ")
        )
    }
}

/// An X-Forwarded-For hop: an address, possibly with a port (`192.0.2.1:4711`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|addr| addr.to_canonical())
}

/// The address of the client making `req`, as throttles, audit entries and sign-in
/// records use it; None only when the connection has no peer address (never over TCP).
pub fn client_addr(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Some(peer.to_canonical());
    };
    let forwarded = req
        .headers()
        .get_all("X-Forwarded-For")
        .filter_map(|v| v.to_str().ok());
    Some(state.trusted_proxies.client(peer, forwarded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), ["203.0.113.9"].into_iter()),
            ip("127.0.0.1")
        );
        let trusted = proxies(&["10.0.0.0/24", "::1"]);
        assert_eq!(
            trusted.client(ip("192.0.2.7"), ["203.0.113.9"].into_iter()),
            ip("192.0.2.7"),
            "an untrusted peer cannot name another address"
        );
        assert_eq!(
            trusted.client(ip("10.0.0.5"), ["203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client(ip("::1"), ["203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        // IPv4 peers seen on a dual-stack socket.
        assert_eq!(
            trusted.client(ip("::ffff:10.0.0.5"), ["203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/24"]);
        // The client wrote the first entry itself; the proxies appended the rest.
        let header = ["1.1.1.1, 203.0.113.9", "10.0.0.7"];
        assert_eq!(
            trusted.client(ip("10.0.0.5"), header.into_iter()),
            ip("203.0.113.9")
        );
        // Every hop trusted: the leftmost is where the request came from.
        assert_eq!(
            trusted.client(ip("10.0.0.5"), ["10.0.0.9, 10.0.0.7"].into_iter()),
            ip("10.0.0.9")
        );
        // Garbage ends the walk at the last proxy that wrote an address.
        assert_eq!(
            trusted.client(ip("10.0.0.5"), ["203.0.113.9, junk"].into_iter()),
            ip("10.0.0.5")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.5"), ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            trusted.client(ip("10.0.0.5"), std::iter::empty()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err =
            TrustedProxies::parse(&["10.0.0.1".to_owned(), "10.0.0/8".to_owned()]).unwrap_err();
        assert!(err.contains("'10.0.0/8'"), "{err}");
        assert!(TrustedProxies::parse(&["proxy.local".to_owned()]).is_err());
        let ok = proxies(&["10.0.0.1/8", "fd00::/8"]);
        assert_eq!(
            ok.summary(),
            "10.0.0.0/8, fd00::/8: X-Forwarded-For is believed from these"
        );
    }
}
