//! The time source handed to everything that needs "now", so that decisions and tests can
//! be run at any instant instead of reading the system clock deep inside.

use chrono::{DateTime, Utc};
use gatehouse_drivers::sim::ScaledClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
    /// A simulated day running faster than the wall clock (`gatehouse simulate --day`
    /// runs a private appliance on it; `serve` never does).
    Scaled(ScaledClock),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::Scaled(clock) => clock.now(),
        }
    }
}
