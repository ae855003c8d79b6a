//! Address ranges (CIDR) a driver may connect to: a device's host must resolve into one of
//! them, so that a reader's registered host cannot point the appliance anywhere else.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One address range: `10.0.0.0/8`, `fe80::/10`, or a single address (`::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    base: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `addr` is in this range (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, addr) {
            (IpAddr::V4(base), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(base)), self.prefix, 32)
                    == masked(u128::from(u32::from(a)), self.prefix, 32)
            }
            (IpAddr::V6(base), IpAddr::V6(a)) => {
                masked(u128::from(base), self.prefix, 128)
                    == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = addr.trim().parse().map_err(|_| {
            format!("'{text}' is not an address range like 10.0.0.0/8 or fe80::/10")
        })?;
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {width}"))?,
        };
        let network = IpNetwork { base, prefix };
        let bits = match base {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let host_bits = if prefix == width {
            0
        } else {
            bits & (u128::MAX >> (128 - u32::from(width - prefix)))
        };
        if host_bits != 0 {
            return Err(format!(
                "'{text}' has address bits set past its /{prefix}: write the range's first address"
            ));
        }
        Ok(network)
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A list of ranges; an address is allowed when any of them contains it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Networks(pub Vec<IpNetwork>);

impl Networks {
    /// Loopback and the private and link-local ranges (RFC 1918, RFC 4193, RFC 4291): where
    /// a building's I/O modules (and the stand-in devices of `gatehouse simulate`) are.
    pub fn private() -> Networks {
        let ranges = [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
            "fe80::/10",
        ];
        Networks(ranges.iter().filter_map(|r| r.parse().ok()).collect())
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(addr))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges_parse_and_contain_what_they_should() {
        let private = Networks::private();
        for inside in [
            "127.0.0.1",
            "10.20.0.64",
            "172.31.255.1",
            "192.168.1.1",
            "::1",
            "fd00::5",
            "fe80::1",
            "::ffff:10.1.2.3",
        ] {
            assert!(private.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "0.0.0.0",
        ] {
            assert!(!private.contains(outside.parse().unwrap()), "{outside}");
        }
        assert_eq!(
            "10.1.0.0/16".parse::<IpNetwork>().unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!("::1".parse::<IpNetwork>().unwrap().to_string(), "::1/128");
        assert!(
            "0.0.0.0/0"
                .parse::<IpNetwork>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "nowhere",
            "10.0.0.0/x",
            "fe80::1/10",
        ] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }
}
