//! Signed exports of a device's history. The export is a JSON document (every
//! event of the device's warranty and repair chains, with their hashes and both
//! verdicts) carried as a string beside an ES256 JWS whose claims hold the
//! document's SHA-256: anyone can check it with the gateway's published key
//! (`/.well-known/aftersales-export-keys`), without trusting the file's bearer.

use std::path::Path;

use aftersales_auth::issuer::SigningKey;
use serde_json::{Value, json};

use crate::GatewayError;

/// Who signs: `iss` of every export's signature.
pub const ISSUER: &str = "aftersales-gateway";

#[derive(Debug)]
pub struct ExportKey(SigningKey);

impl ExportKey {
    /// The key kept at `path` (PKCS #8 DER), made and kept there the first
    /// time; without a path, one for this run only (exports it signs can be
    /// checked only while it runs: say so).
    pub fn load_or_create(path: Option<&Path>) -> Result<Self, GatewayError> {
        let key_error =
            |e: aftersales_auth::issuer::IssuerError| GatewayError::Config(e.to_string());
        let Some(path) = path else {
            tracing::warn!(
                "no --export-key-file: audit exports are signed with a key for this run only"
            );
            return SigningKey::generate().map(Self).map_err(key_error);
        };
        match std::fs::read(path) {
            Ok(der) => SigningKey::from_pkcs8(&der).map(Self).map_err(key_error),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let key = SigningKey::generate().map_err(key_error)?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(key.pkcs8())?;
                file.sync_all()?;
                Ok(Self(key))
            }
            Err(error) => Err(GatewayError::Config(format!(
                "--export-key-file {}: {error}",
                path.display()
            ))),
        }
    }

    /// The public key, as a JWK Set.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.0.jwk()] })
    }

    /// The signature over `document`, the export of `device` made by `actor`.
    pub fn sign(&self, device: &str, actor: &str, document: &str) -> Result<String, GatewayError> {
        #[allow(clippy::disallowed_methods)] // the moment of signing
        let now = chrono::Utc::now().timestamp();
        let digest = ring::digest::digest(&ring::digest::SHA256, document.as_bytes());
        self.0
            .sign(&json!({
                "iss": ISSUER,
                "sub": device,
                "iat": now,
                "exported_by": actor,
                "sha256": hex::encode(digest.as_ref()),
            }))
            .map_err(|e| GatewayError::Config(e.to_string()))
    }
}
