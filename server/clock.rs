//! The time source handed to everything that needs "now", so that decisions and tests can
//! be run at any instant instead of reading the system clock deep inside.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Utc};
use gatehouse_drivers::sim::ScaledClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
    /// A simulated day running faster than the wall clock (`gatehouse simulate --day`
    /// runs a private appliance on it; `serve` never does).
    Scaled(ScaledClock),
    /// The system clock moved forward by a shift that can grow while the appliance runs:
    /// tests let time pass with it (a PIN block ending); `serve` never uses it.
    Shifted(&'static ClockShift),
}

/// How far a `Clock::Shifted` is ahead of the system clock.
#[derive(Debug, Default)]
pub struct ClockShift {
    ahead_ms: AtomicI64,
}

impl ClockShift {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        self.ahead_ms
            .fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    pub fn ahead(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.ahead_ms.load(Ordering::SeqCst))
    }
}

/// One shift is one clock: compared by identity.
impl PartialEq for ClockShift {
    fn eq(&self, other: &ClockShift) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ClockShift {}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
            Clock::Scaled(clock) => clock.now(),
            Clock::Shifted(shift) => Utc::now() + shift.ahead(),
        }
    }
}

/// A stored time (UTC, without a zone: how both backends keep it) to an API time.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// An API time to a stored one, to the microsecond that both backends keep.
pub fn stored(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc().trunc_subsecs(6)
}
