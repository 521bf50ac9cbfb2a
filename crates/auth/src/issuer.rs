//! An OpenID Connect issuer's public face: ES256 signing keys, the discovery and
//! JWKS documents served over HTTP, and tokens signed with the newest key. What
//! the embedded platform and the tests issue tokens with; services verify them
//! exactly as they verify an external provider's.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::principal::Principal;
use crate::verify::{CENTERS_CLAIM, ON_BEHALF_OF_CLAIM, ROLE_CLAIM};

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("generating a signing key: {0}")]
    Key(String),
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("serving the issuer: {0}")]
    Io(#[from] std::io::Error),
}

/// A P-256 key pair and its id (the RFC 7638 thumbprint of its public key).
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    x: String,
    y: String,
    /// The private key, PKCS #8 DER: what a provider that keeps its keys stores.
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, IssuerError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|e| IssuerError::Key(e.to_string()))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A key kept earlier ([`SigningKey::pkcs8`]).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, IssuerError> {
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| IssuerError::Key(e.to_string()))?;
        // Uncompressed point: 0x04, then x and y.
        let point = pair.public_key().as_ref();
        let (x, y) = point
            .get(1..33)
            .zip(point.get(33..65))
            .ok_or_else(|| IssuerError::Key("unexpected public key".into()))?;
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, thumbprint.as_bytes()).as_ref());
        Ok(Self {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8),
            x,
            y,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// The private key as PKCS #8 DER, to keep it across restarts.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y, "kid": self.kid, "use": "sig", "alg": "ES256"})
    }

    /// `claims` signed as an ES256 JWT under this key's id.
    pub fn sign(&self, claims: &Value) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// The claims of `token` if this key signed it (ES256; no expiry asked for:
    /// a signed record stays valid).
    pub fn verify(&self, token: &str) -> Result<Value, IssuerError> {
        let key = jsonwebtoken::DecodingKey::from_ec_components(&self.x, &self.y)?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
    }

    /// The id of the key `token` says it is signed with, if it says.
    pub fn key_id_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok()?.kid
    }

    /// The key kept at `path` (PKCS #8 DER), made and kept there (mode 0600)
    /// the first time; without a path, one for this run only, which `what`
    /// (the signer, for the warning) signs with.
    pub fn load_or_create(path: Option<&std::path::Path>, what: &str) -> Result<Self, IssuerError> {
        let Some(path) = path else {
            tracing::warn!("{what}: no key file; signing with a key for this run only");
            return Self::generate();
        };
        match std::fs::read(path) {
            Ok(kept) => {
                let text = String::from_utf8_lossy(&kept);
                if text.contains("CHANGE_ME") {
                    return Err(IssuerError::Key(format!(
                        "{} is still a placeholder: supply the real key",
                        path.display()
                    )));
                }
                // PEM (as a Secret holds it) or DER (as this makes it).
                let der = if text.trim_start().starts_with("-----BEGIN") {
                    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
                    STANDARD
                        .decode(body.trim())
                        .map_err(|e| IssuerError::Key(format!("{}: {e}", path.display())))?
                } else {
                    kept
                };
                Self::from_pkcs8(&der).map_err(|e| {
                    IssuerError::Key(format!(
                        "{}: {e} (a PKCS #8 P-256 key, PEM or DER)",
                        path.display()
                    ))
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write as _;
                use std::os::unix::fs::OpenOptionsExt as _;
                let key = Self::generate()?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(key.pkcs8())?;
                file.sync_all()?;
                Ok(key)
            }
            Err(error) => Err(IssuerError::Key(format!("{}: {error}", path.display()))),
        }
    }
}

/// A token endpoint's answer: the status and its JSON body.
pub type GrantAnswer = (axum::http::StatusCode, axum::Json<Value>);

/// An RFC 6749 5.2 error answer.
pub fn grant_error(status: axum::http::StatusCode, error: &str) -> GrantAnswer {
    (status, axum::Json(json!({ "error": error })))
}

fn digest(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

/// An issuer on an HTTP address: `/.well-known/openid-configuration` and
/// `/jwks.json`, signing with the newest of its keys and publishing them all.
#[derive(Debug, Clone)]
pub struct Issuer {
    url: String,
    keys: Arc<RwLock<Vec<SigningKey>>>,
    clients: Arc<RwLock<Vec<Client>>>,
    /// How often the key set was fetched: verifiers cache it.
    key_fetches: Arc<std::sync::atomic::AtomicUsize>,
}

/// A service allowed the client-credentials grant, and whom its tokens name.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    secret: String,
    principal: Principal,
    audience: String,
}

/// How long an access token lives.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

impl Issuer {
    /// An issuer named `url` that signs with the last of `keys` (a new key if
    /// there are none) and publishes them all.
    pub fn new(url: impl Into<String>, keys: Vec<SigningKey>) -> Result<Self, IssuerError> {
        let keys = if keys.is_empty() {
            vec![SigningKey::generate()?]
        } else {
            keys
        };
        Ok(Self {
            url: url.into(),
            keys: Arc::new(RwLock::new(keys)),
            clients: Arc::new(RwLock::new(Vec::new())),
            key_fetches: Arc::default(),
        })
    }

    /// Serves on `listen` (port 0 picks one) until the process ends or `stop`
    /// resolves: discovery, the key set, and the client-credentials grant.
    pub async fn serve(
        listen: SocketAddr,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, IssuerError> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let issuer = Self::new(format!("http://{}", listener.local_addr()?), Vec::new())?;
        let granting = issuer.clone();
        let app = issuer.published(&["client_credentials"], json!({})).route(
            "/token",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let granting = granting.clone();
                async move {
                    if body
                        .split('&')
                        .any(|pair| pair == "grant_type=client_credentials")
                    {
                        granting.client_credentials(&headers)
                    } else {
                        grant_error(
                            axum::http::StatusCode::BAD_REQUEST,
                            "unsupported_grant_type",
                        )
                    }
                }
            }),
        );
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(%error, "the token issuer stopped");
            }
        });
        Ok(issuer)
    }

    /// What every issuer publishes: `/.well-known/openid-configuration`
    /// (naming `grant_types`, with `extra` fields merged in) and `/jwks.json`.
    /// The caller adds `/token`.
    pub fn published(&self, grant_types: &[&str], extra: Value) -> axum::Router {
        let mut discovery = json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/jwks.json", self.url),
            "token_endpoint": format!("{}/token", self.url),
            "grant_types_supported": grant_types,
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["code"],
        });
        if let (Some(fields), Value::Object(extra)) = (discovery.as_object_mut(), extra) {
            fields.extend(extra);
        }
        let keys = Arc::clone(&self.keys);
        let fetches = Arc::clone(&self.key_fetches);
        axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || {
                    let discovery = discovery.clone();
                    async move { axum::Json(discovery) }
                }),
            )
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let published: Vec<Value> = keys
                        .read()
                        .map(|keys| keys.iter().map(SigningKey::jwk).collect())
                        .unwrap_or_default();
                    async move { axum::Json(json!({ "keys": published })) }
                }),
            )
    }

    /// Lets `client_id` with `secret` take tokens naming `principal` for
    /// `audience` by the client-credentials grant (a service's own identity).
    pub fn register_client(
        &self,
        client_id: &str,
        secret: &str,
        principal: Principal,
        audience: &str,
    ) {
        if let Ok(mut clients) = self.clients.write() {
            clients.retain(|c| c.id != client_id);
            clients.push(Client {
                id: client_id.to_owned(),
                secret: secret.to_owned(),
                principal,
                audience: audience.to_owned(),
            });
        }
    }

    /// The client-credentials grant (RFC 6749 4.4) with HTTP Basic client
    /// authentication, errors as RFC 6749 5.2 says.
    pub fn client_credentials(&self, headers: &axum::http::HeaderMap) -> GrantAnswer {
        use axum::http::StatusCode;
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let client = presented
            .as_deref()
            .and_then(|p| p.split_once(':'))
            .and_then(|(id, secret)| {
                let clients = self.clients.read().ok()?;
                clients
                    .iter()
                    // Digests compared, so the time taken says nothing of the secret.
                    .find(|c| c.id == id && digest(&c.secret) == digest(secret))
                    .cloned()
            });
        let Some(client) = client else {
            return grant_error(StatusCode::UNAUTHORIZED, "invalid_client");
        };
        match self.token(&client.principal, &client.audience, ACCESS_TOKEN_LIFETIME) {
            Ok(token) => (
                StatusCode::OK,
                axum::Json(json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
                })),
            ),
            Err(error) => {
                tracing::error!(%error, "signing a token failed");
                grant_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
            }
        }
    }

    /// How many times the key set has been fetched.
    pub fn key_fetches(&self) -> usize {
        self.key_fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The issuer URL tokens name in `iss`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new signing key; the old ones stay published, so tokens they signed
    /// verify until they expire.
    pub fn rotate(&self) -> Result<(), IssuerError> {
        let key = SigningKey::generate()?;
        if let Ok(mut keys) = self.keys.write() {
            keys.push(key);
        }
        Ok(())
    }

    /// `claims` signed with the newest key.
    pub fn sign(&self, claims: &Value) -> Result<String, IssuerError> {
        let keys = self
            .keys
            .read()
            .map_err(|_| IssuerError::Key("the key list is poisoned".into()))?;
        keys.last()
            .ok_or_else(|| IssuerError::Key("no signing key".into()))?
            .sign(claims)
    }

    /// An access token for `principal`, for `audience`, valid for `lifetime`.
    pub fn token(
        &self,
        principal: &Principal,
        audience: &str,
        lifetime: Duration,
    ) -> Result<String, IssuerError> {
        self.sign(&self.claims(principal, audience, lifetime))
    }

    /// The claims [`Issuer::token`] signs, for a caller that alters them.
    pub fn claims(&self, principal: &Principal, audience: &str, lifetime: Duration) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut claims = json!({
            "iss": self.url,
            "aud": audience,
            "sub": principal.subject,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime.as_secs(),
            ROLE_CLAIM: principal.role.as_str(),
        });
        if !principal.centers.is_empty() {
            claims[CENTERS_CLAIM] = json!(principal.centers);
        }
        if let Some(customer) = &principal.on_behalf_of {
            claims[ON_BEHALF_OF_CLAIM] = json!(customer);
        }
        claims
    }
}
