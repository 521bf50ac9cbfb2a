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
        SigningKey::load_or_create(path, "audit exports (--export-key-file)")
            .map(Self)
            .map_err(|e| GatewayError::Config(format!("--export-key-file: {e}")))
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
