//! Where time comes from.
//!
//! Deciders never read a clock: a command carries its time. The edges (the API,
//! background sweeps, consumers) ask a [`Clock`], which is the [`SystemClock`] in a
//! running service and a [`ManualClock`] in a test that moves time by hand, so a
//! reminder due in 48 hours is tested in milliseconds.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};

/// The current time, as a service's edges see it.
pub trait Clock: Debug + Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by every part of one service.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
        Utc::now()
    }
}

/// A clock that moves only when told; clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn at(now: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Starts at the system's time, then moves only by hand.
    pub fn starting_now() -> Self {
        Self::at(SystemClock.now())
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let clock = ManualClock::at(start);
        let shared: SharedClock = Arc::new(clock.clone());
        assert_eq!(shared.now(), start);
        clock.advance(Duration::hours(48));
        assert_eq!(shared.now(), start + Duration::hours(48));
    }
}
