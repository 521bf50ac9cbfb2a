//! Where time comes from.
//!
//! Deciders never read a clock: a command carries its time. The edges (the API,
//! background sweeps, consumers) ask a [`Clock`], which is the [`SystemClock`] in a
//! running service. Tests move time by hand with a [`ShiftedClock`]: it runs with
//! the system (retries back off, leases run out) and jumps ahead when told, so a
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

/// The system's time shifted by however far a test has moved it: time goes on as
/// usual (retries back off, leases run out) and a test jumps ahead by days at once.
/// Clones share one shift.
#[derive(Debug, Clone, Default)]
pub struct ShiftedClock(Arc<Mutex<Duration>>);

impl ShiftedClock {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn advance(&self, by: Duration) {
        let mut shift = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *shift += by;
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        ShiftedClock::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shifted_clock_runs_with_the_system_and_jumps_when_told() {
        let clock = ShiftedClock::new();
        let before = SystemClock.now();
        clock.advance(Duration::days(3));
        let shifted = clock.now();
        assert!(shifted >= before + Duration::days(3));
        assert!(shifted < SystemClock.now() + Duration::days(3) + Duration::seconds(1));
    }
}
