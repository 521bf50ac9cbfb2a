//! How often sign-in may be tried: per account (or address) and per source
//! address, by generic cell rate (governor), so a guesser is slowed to a trickle
//! while a person who mistypes twice notices nothing.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

#[derive(Debug)]
pub struct Limits {
    /// Password, authenticator and code attempts per account or address.
    per_account: DefaultKeyedRateLimiter<String>,
    /// Every sign-in request per source address.
    per_source: DefaultKeyedRateLimiter<String>,
    /// Codes sent per address.
    sends: DefaultKeyedRateLimiter<String>,
}

fn quota(burst: u32, one_every: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(one_every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn check(limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), Duration> {
    limiter
        .check_key(&key.to_owned())
        .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Ten tries, then one a minute.
            per_account: RateLimiter::keyed(quota(10, Duration::from_secs(60))),
            // Fifty requests, then one a second.
            per_source: RateLimiter::keyed(quota(50, Duration::from_secs(1))),
            // Three codes, then one every two minutes.
            sends: RateLimiter::keyed(quota(3, Duration::from_secs(120))),
        }
    }
}

impl Limits {
    /// An attempt to sign in as `account` from `source`; how long to wait if not now.
    pub fn attempt(&self, account: &str, source: &str) -> Result<(), Duration> {
        check(&self.per_source, source)?;
        check(&self.per_account, account)
    }

    /// A code to send to `address` from `source`.
    pub fn send(&self, address: &str, source: &str) -> Result<(), Duration> {
        check(&self.per_source, source)?;
        check(&self.sends, address)
    }

    /// Forgets keys whose allowance is full again.
    pub fn forget_idle(&self) {
        self.per_account.retain_recent();
        self.per_source.retain_recent();
        self.sends.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_quick_attempt_on_one_account_waits_and_others_do_not() {
        let limits = Limits::default();
        for _ in 0..10 {
            assert_eq!(limits.attempt("ops", "10.0.0.1"), Ok(()));
        }
        let wait = limits.attempt("ops", "10.0.0.1").unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert_eq!(limits.attempt("tech", "10.0.0.1"), Ok(()));
    }

    #[test]
    fn one_source_trying_many_accounts_is_slowed_too() {
        let limits = Limits::default();
        let allowed = (0..100)
            .filter(|n| limits.attempt(&format!("user-{n}"), "10.0.0.2").is_ok())
            .count();
        assert_eq!(allowed, 50);
    }
}
