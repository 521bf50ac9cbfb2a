//! Passwords (argon2id, PHC strings) and authenticator codes (RFC 6238 TOTP).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use ring::rand::SecureRandom as _;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::IdentityError;

/// The longest password taken: hashing is costly on purpose, and a megabyte
/// "password" should not make it more so.
pub const MAX_PASSWORD_BYTES: usize = 256;
/// The shortest password an account may be given.
pub const MIN_PASSWORD_CHARS: usize = 12;

fn random<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut bytes = [0_u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IdentityError::Random)?;
    Ok(bytes)
}

/// `password` hashed with argon2id at the OWASP-recommended cost (19 MiB, two
/// passes), in PHC string format.
pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(IdentityError::Invalid(format!(
            "a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let salt =
        SaltString::encode_b64(&random::<16>()?).map_err(|e| IdentityError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| IdentityError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`; false for anything malformed.
pub fn password_matches(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES
        && PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
}

/// A hash no password matches, checked when the username is unknown so that
/// the answer takes as long as for a known one.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-issued").unwrap_or_default())
}

/// A new authenticator secret, base32 as authenticator apps take it.
pub fn new_totp_secret() -> Result<String, IdentityError> {
    Ok(Secret::Raw(random::<20>()?.to_vec())
        .to_encoded()
        .to_string())
}

fn totp(secret: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret.to_owned()).to_bytes().ok()?;
    // Six digits, 30-second steps, one step of drift either way.
    TOTP::new(Algorithm::SHA1, 6, 1, 30, bytes).ok()
}

/// Whether `code` is the authenticator's code for `secret` now (a step either way).
pub fn totp_matches(secret: &str, code: &str) -> bool {
    code.len() == 6 && totp(secret).is_some_and(|t| t.check_current(code).unwrap_or(false))
}

/// The authenticator's current code for `secret`: what a person's app shows,
/// for scripts and tests that hold the secret.
pub fn totp_now(secret: &str) -> Option<String> {
    totp(secret)?.generate_current().ok()
}

/// The `otpauth://` URI an authenticator app scans or imports.
pub fn totp_uri(secret: &str, issuer: &str, username: &str) -> String {
    format!("otpauth://totp/{issuer}:{username}?secret={secret}&issuer={issuer}&digits=6&period=30")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_password_matches_its_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(password_matches("correct horse battery", &hash));
        assert!(!password_matches("correct horse batterY", &hash));
        assert!(!password_matches("correct horse battery", "not a hash"));
        assert!(!password_matches("anything", decoy_hash()));
        assert!(hash_password("short").is_err());
        assert!(hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn the_current_authenticator_code_matches_and_others_do_not() {
        let secret = new_totp_secret().unwrap();
        let now = totp_now(&secret).unwrap();
        assert!(totp_matches(&secret, &now));
        let other = format!("{:06}", (now.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert!(!totp_matches(&secret, &other));
        assert!(!totp_matches(&secret, ""));
        assert!(!totp_matches("not base32!", &now));
        assert!(totp_uri(&secret, "Aftersales", "ops").contains(&secret));
    }
}
