//! Per-address throttles of failed attempts (console sign-ins and setup codes, API tokens):
//! an attempt is reserved before it is checked, so a burst sent at once is counted at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Attempts {
    /// When this address failed, within the window.
    failures: Vec<Instant>,
    /// Attempts reserved and not yet settled: each may still turn into a failure.
    in_flight: usize,
}

/// At most `limit` failures per address within `window`; attempts being checked count as
/// failures until they are settled, so 60 wrong passwords sent at once get `limit` checks.
pub struct Throttle {
    limit: usize,
    window: Duration,
    by_address: Arc<Mutex<HashMap<IpAddr, Attempts>>>,
}

/// Addresses remembered at most; past this, addresses with nothing recent are dropped.
const MAX_ADDRESSES: usize = 10_000;

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Throttle {
        Throttle {
            limit,
            window,
            by_address: Arc::default(),
        }
    }

    /// Reserves one attempt for `addr`, or Err(how long to wait) when its failures and the
    /// attempts in flight reach the limit. The reservation counts until it is settled
    /// (`failed`, `succeeded`) or dropped (neither: it was never checked).
    pub fn reserve(&self, addr: IpAddr) -> Result<Reservation, Duration> {
        let Ok(mut by_address) = self.by_address.lock() else {
            return Err(self.window);
        };
        if by_address.len() > MAX_ADDRESSES {
            let window = self.window;
            by_address
                .retain(|_, a| a.in_flight > 0 || a.failures.iter().any(|t| t.elapsed() < window));
        }
        let attempts = by_address.entry(addr).or_default();
        attempts.failures.retain(|t| t.elapsed() < self.window);
        if attempts.failures.len() + attempts.in_flight >= self.limit {
            // Only failures run out; attempts in flight settle within moments.
            let oldest = attempts.failures.iter().map(Instant::elapsed).max();
            return Err(oldest.map_or(Duration::from_secs(1), |age| {
                self.window.saturating_sub(age).max(Duration::from_secs(1))
            }));
        }
        attempts.in_flight += 1;
        Ok(Reservation {
            addr,
            by_address: self.by_address.clone(),
            settled: false,
        })
    }

    /// "Try again in 3 minutes." for a wait.
    pub fn wait_words(wait: Duration) -> String {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        format!(
            "Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )
    }
}

/// One attempt being checked; see [`Throttle::reserve`].
pub struct Reservation {
    addr: IpAddr,
    by_address: Arc<Mutex<HashMap<IpAddr, Attempts>>>,
    settled: bool,
}

impl Reservation {
    /// The attempt failed: it counts against the address for the window.
    pub fn failed(mut self) {
        self.settle(|attempts| attempts.failures.push(Instant::now()));
    }

    /// The attempt succeeded and the address's failures are forgiven (a right password).
    pub fn succeeded(mut self) {
        self.settle(|attempts| attempts.failures.clear());
    }

    fn settle(&mut self, f: impl FnOnce(&mut Attempts)) {
        self.settled = true;
        if let Ok(mut by_address) = self.by_address.lock()
            && let Some(attempts) = by_address.get_mut(&self.addr)
        {
            attempts.in_flight = attempts.in_flight.saturating_sub(1);
            f(attempts);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let throttle = Throttle::new(3, Duration::from_secs(600));
        let held: Vec<_> = (0..3).map(|_| throttle.reserve(addr(1)).unwrap()).collect();
        assert!(
            throttle.reserve(addr(1)).is_err(),
            "three attempts being checked fill the limit"
        );
        assert!(
            throttle.reserve(addr(2)).is_ok(),
            "other addresses are apart"
        );
        let mut held = held.into_iter();
        // Dropped unchecked: the room comes back.
        drop(held.next());
        let again = throttle.reserve(addr(1)).unwrap();
        for r in held {
            r.failed();
        }
        again.failed();
        let wait = throttle.reserve(addr(1)).err().unwrap();
        assert!(wait > Duration::from_secs(590), "{wait:?}");
        assert_eq!(Throttle::wait_words(wait), "Try again in 10 minutes.");
    }

    #[test]
    fn a_success_forgives_the_address() {
        let throttle = Throttle::new(2, Duration::from_secs(600));
        throttle.reserve(addr(1)).unwrap().failed();
        throttle.reserve(addr(1)).unwrap().succeeded();
        throttle.reserve(addr(1)).unwrap().failed();
        assert!(throttle.reserve(addr(1)).is_ok());
    }
}
