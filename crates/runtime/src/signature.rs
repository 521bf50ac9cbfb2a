//! Signed webhook requests, as carriers and payment providers send them:
//! `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<scope>.<body>">`.
//!
//! The scope (a carrier's name, `payments`) is signed with the body, so one
//! sender's secret cannot speak for another; the timestamp is signed too, and a
//! request outside the replay window is refused whatever its MAC.

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The header value a sender with `secret` puts on `body` at `unix_seconds`.
pub fn sign(secret: &[u8], scope: &str, unix_seconds: i64, body: &[u8]) -> String {
    let tag = keyed(secret, scope, unix_seconds, body)
        .finalize()
        .into_bytes();
    format!("t={unix_seconds},v1={}", hex::encode(tag))
}

/// The MAC over `"<t>.<scope>.<body>"`, before finalizing.
fn keyed(secret: &[u8], scope: &str, unix_seconds: i64, body: &[u8]) -> Hmac<Sha256> {
    #[allow(clippy::expect_used)] // HMAC takes keys of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(scope.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header's timestamp and MAC; `None` unless it has both, well formed. Any
/// text is answered, never a panic.
pub fn parse(value: &str) -> Option<(i64, Vec<u8>)> {
    let mut timestamp = None;
    let mut signature = None;
    for part in value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signature = hex::decode(s).ok(),
            _ => {}
        }
    }
    Some((timestamp?, signature?))
}

/// Whether `timestamp` is within `window` of `now`, either side; any pair of
/// numbers is answered, overflow being "no".
pub fn within_window(now: i64, timestamp: i64, window: Duration) -> bool {
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    now.checked_sub(timestamp)
        .and_then(i64::checked_abs)
        .is_some_and(|age| age <= window)
}

/// Checks `header` (the signature header's value, if any) against `body` with
/// each of `secrets` (one, or two while the sender rotates), in constant time.
pub fn verify(
    secrets: &[Vec<u8>],
    scope: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
    window: Duration,
) -> Result<(), &'static str> {
    let (timestamp, signature) =
        parse(header.ok_or("missing signature")?).ok_or("malformed signature")?;
    if !within_window(now, timestamp, window) {
        return Err("signature timestamp outside the replay window");
    }
    // Every secret is tried, so the time taken does not say which matched.
    let matched = secrets.iter().fold(false, |matched, secret| {
        keyed(secret, scope, timestamp, body)
            .verify_slice(&signature)
            .is_ok()
            | matched
    });
    if matched {
        Ok(())
    } else {
        Err("bad signature")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_verifies_for_its_scope_body_and_time_only() {
        let secret = b"a-secret-of-sixteen-bytes".to_vec();
        let header = sign(&secret, "payments", 1_000, b"{}");
        let check = |scope: &str, header: Option<&str>, body: &[u8], now: i64| {
            verify(
                std::slice::from_ref(&secret),
                scope,
                header,
                body,
                now,
                WINDOW,
            )
        };
        assert_eq!(check("payments", Some(&header), b"{}", 1_100), Ok(()));
        assert_eq!(
            check("dhl", Some(&header), b"{}", 1_100),
            Err("bad signature")
        );
        assert_eq!(
            check("payments", Some(&header), b"{ }", 1_100),
            Err("bad signature")
        );
        assert_eq!(
            check("payments", Some(&header), b"{}", 1_400),
            Err("signature timestamp outside the replay window")
        );
        assert_eq!(
            check("payments", None, b"{}", 1_000),
            Err("missing signature")
        );
        assert_eq!(
            check("payments", Some("v1=zz"), b"{}", 1_000),
            Err("malformed signature")
        );
        // A rotation: the old secret and the new both verify.
        let new = b"another-secret-sixteen".to_vec();
        let both = [new.clone(), secret.clone()];
        assert_eq!(
            verify(&both, "payments", Some(&header), b"{}", 1_000, WINDOW),
            Ok(())
        );
        assert!(!within_window(i64::MIN, i64::MAX, WINDOW));
    }
}
