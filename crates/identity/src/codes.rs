//! Customers' one-time sign-in codes: six digits, ten minutes, five tries, then
//! the address is locked out for a while. Who an address belongs to, and how
//! the code reaches them, is the [`CodeSender`]'s business (the notification
//! service, which holds customers' contact details).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::rand::SecureRandom as _;

use crate::IdentityError;
use crate::store::digest;

pub const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
pub const ATTEMPTS: u8 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Outstanding challenges held at most; beyond, new codes wait.
const MAX_CHALLENGES: usize = 100_000;

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>>;

/// Delivers a code to whoever registered an address.
pub trait CodeSender: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `code` in `language` to the customer whose email or phone is
    /// `address`: that customer's id, or `None` if the address is nobody's.
    fn send<'a>(&'a self, address: &'a str, code: &'a str, language: &'a str) -> SendFuture<'a>;
}

/// Why a code was not accepted or not issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong, expired or never sent: all alike to the caller.
    Wrong,
    /// Too many wrong codes: nothing is accepted or sent until then.
    LockedOut(Duration),
    /// Too many codes outstanding on this provider.
    Busy,
}

#[derive(Debug)]
struct Challenge {
    code_digest: String,
    /// `None` when the address is nobody's: tries count all the same, so the
    /// answers never tell a registered address from another.
    customer: Option<String>,
    expires: Instant,
    attempts_left: u8,
    locked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Codes {
    challenges: Mutex<HashMap<String, Challenge>>,
}

pub use aftersales_core::types::sign_in_address as normalize;

/// Six uniformly random digits.
pub fn new_code() -> Result<String, IdentityError> {
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut bytes = [0_u8; 4];
        rng.fill(&mut bytes).map_err(|_| IdentityError::Random)?;
        let n = u32::from_be_bytes(bytes);
        // Rejection sampling: no digit sequence more likely than another.
        if n < 4_000_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

fn code_digest(address: &str, code: &str) -> String {
    digest(&format!("{address}\n{code}"))
}

impl Codes {
    /// Whether `address` may be sent a code now.
    pub fn may_send(&self, address: &str, now: Instant) -> Result<(), Refusal> {
        let challenges = self.challenges.lock().map_err(|_| Refusal::Busy)?;
        match challenges
            .get(&digest(address))
            .and_then(|c| c.locked_until)
        {
            Some(until) if until > now => Err(Refusal::LockedOut(until - now)),
            Some(_) | None if challenges.len() >= MAX_CHALLENGES => Err(Refusal::Busy),
            Some(_) | None => Ok(()),
        }
    }

    /// Remembers that `code` went to `address` (for `customer`), replacing any
    /// earlier code; tries left start again unless the address is locked out.
    pub fn issued(&self, address: &str, code: &str, customer: Option<String>, now: Instant) {
        if let Ok(mut challenges) = self.challenges.lock() {
            let key = digest(address);
            if challenges
                .get(&key)
                .and_then(|c| c.locked_until)
                .is_some_and(|until| until > now)
            {
                return;
            }
            challenges.insert(
                key,
                Challenge {
                    code_digest: code_digest(address, code),
                    customer,
                    expires: now + CODE_LIFETIME,
                    attempts_left: ATTEMPTS,
                    locked_until: None,
                },
            );
        }
    }

    /// The customer `code` signs in, if it is the one sent to `address`. A
    /// code is used once; the fifth wrong one locks the address out.
    pub fn redeem(&self, address: &str, code: &str, now: Instant) -> Result<String, Refusal> {
        let mut challenges = self.challenges.lock().map_err(|_| Refusal::Busy)?;
        let key = digest(address);
        let Some(challenge) = challenges.get_mut(&key) else {
            return Err(Refusal::Wrong);
        };
        if let Some(until) = challenge.locked_until {
            return if until > now {
                Err(Refusal::LockedOut(until - now))
            } else {
                challenges.remove(&key);
                Err(Refusal::Wrong)
            };
        }
        if challenge.expires <= now {
            challenges.remove(&key);
            return Err(Refusal::Wrong);
        }
        if challenge.code_digest == code_digest(address, code)
            && let Some(customer) = challenge.customer.clone()
        {
            challenges.remove(&key);
            return Ok(customer);
        }
        challenge.attempts_left = challenge.attempts_left.saturating_sub(1);
        if challenge.attempts_left == 0 {
            challenge.locked_until = Some(now + LOCKOUT);
            tracing::warn!("five wrong sign-in codes for one address; locked out");
            return Err(Refusal::LockedOut(LOCKOUT));
        }
        Err(Refusal::Wrong)
    }

    /// Drops expired challenges and ended lock-outs.
    pub fn forget_expired(&self, now: Instant) {
        if let Ok(mut challenges) = self.challenges.lock() {
            challenges.retain(|_, c| match c.locked_until {
                Some(until) => until > now,
                None => c.expires > now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn the_right_code_signs_in_once_within_ten_minutes() {
        let codes = Codes::default();
        let t0 = Instant::now();
        codes.issued("a@example.com", "123456", Some("c-1".into()), t0);
        assert_eq!(
            codes.redeem("a@example.com", "123456", t0),
            Ok("c-1".into())
        );
        assert_eq!(
            codes.redeem("a@example.com", "123456", t0),
            Err(Refusal::Wrong)
        );
        codes.issued("a@example.com", "654321", Some("c-1".into()), t0);
        let late = t0 + CODE_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            codes.redeem("a@example.com", "654321", late),
            Err(Refusal::Wrong)
        );
    }

    #[test]
    fn five_wrong_codes_lock_the_address_out_even_for_the_right_one() {
        let codes = Codes::default();
        let t0 = Instant::now();
        codes.issued("a@example.com", "123456", Some("c-1".into()), t0);
        for _ in 0..4 {
            assert_eq!(
                codes.redeem("a@example.com", "000000", t0),
                Err(Refusal::Wrong)
            );
        }
        assert_eq!(
            codes.redeem("a@example.com", "000000", t0),
            Err(Refusal::LockedOut(LOCKOUT))
        );
        assert!(matches!(
            codes.redeem("a@example.com", "123456", t0),
            Err(Refusal::LockedOut(_))
        ));
        assert!(matches!(
            codes.may_send("a@example.com", t0),
            Err(Refusal::LockedOut(_))
        ));
        // A new code cannot lift the lock-out.
        codes.issued("a@example.com", "111111", Some("c-1".into()), t0);
        assert!(matches!(
            codes.redeem("a@example.com", "111111", t0),
            Err(Refusal::LockedOut(_))
        ));
        let after = t0 + LOCKOUT + Duration::from_secs(1);
        assert_eq!(codes.may_send("a@example.com", after), Ok(()));
    }

    #[test]
    fn an_address_that_is_nobodys_answers_like_a_wrong_code_and_locks_alike() {
        let codes = Codes::default();
        let t0 = Instant::now();
        codes.issued("nobody@example.com", "123456", None, t0);
        assert_eq!(
            codes.redeem("nobody@example.com", "123456", t0),
            Err(Refusal::Wrong)
        );
        for _ in 0..3 {
            let _ = codes.redeem("nobody@example.com", "000000", t0);
        }
        assert_eq!(
            codes.redeem("nobody@example.com", "000000", t0),
            Err(Refusal::LockedOut(LOCKOUT))
        );
    }
}
