//! Bearer tokens checked as an OAuth 2.0 resource server does: signed by a key the
//! issuer publishes, with an accepted algorithm, for us, from our issuer, in date.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::principal::{Principal, Role};

/// The claim naming the caller's [`Role`].
pub const ROLE_CLAIM: &str = "aftersales_role";
/// The claim listing a technician's or center manager's centers.
pub const CENTERS_CLAIM: &str = "aftersales_centers";
/// The claim naming the customer a support agent acts for.
pub const ON_BEHALF_OF_CLAIM: &str = "aftersales_on_behalf_of";

/// Signature algorithms accepted: asymmetric only, so no key the issuer
/// publishes can be used as a shared secret, and never `none`.
const ACCEPTED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Tokens verified are remembered for at most this long, or until they expire,
/// so a client presenting the same token again costs a hash, not a signature check.
const REMEMBER_FOR: Duration = Duration::from_secs(60);
/// At most this many tokens are remembered; beyond it the memory starts afresh.
const REMEMBER_AT_MOST: usize = 10_000;

/// A token longer than this is refused unread.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Discovery and key documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token, or one that does not verify: UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token without the right: PERMISSION_DENIED.
    #[error("{0}")]
    PermissionDenied(String),
    /// The issuer's keys cannot be had: UNAVAILABLE.
    #[error("the identity provider cannot be reached: {0}")]
    Unavailable(String),
}

/// Where tokens come from and whom they are for.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// The issuer URL, exactly as tokens name it in `iss`.
    pub issuer: String,
    /// The audience tokens must name in `aud`.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Keys older than this are fetched again.
    pub keys_max_age: Duration,
    /// An unknown `kid` fetches the keys again at most this often.
    pub refetch_interval: Duration,
}

impl VerifierSettings {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            keys_max_age: Duration::from_secs(600),
            refetch_interval: Duration::from_secs(30),
        }
    }
}

/// Verifies tokens against the issuer's published keys, fetched by OpenID Connect
/// discovery on first use and cached; a token is never sent to the issuer.
#[derive(Debug)]
pub struct Verifier {
    settings: VerifierSettings,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    fetching: Mutex<()>,
    /// Tokens verified lately, by their SHA-256: the caller, the token's expiry
    /// (seconds since the epoch) and when it was verified.
    verified: std::sync::Mutex<HashMap<[u8; 32], (Principal, u64, Instant)>>,
}

#[derive(Debug, Default)]
struct Keys {
    jwks_uri: Option<String>,
    by_kid: HashMap<String, Key>,
    fetched_at: Option<Instant>,
}

#[derive(Clone)]
struct Key {
    key: DecodingKey,
    /// The algorithm the issuer declared for the key, if it did.
    algorithm: Option<Algorithm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, rename = "aftersales_role")]
    role: Option<String>,
    #[serde(default, rename = "aftersales_centers")]
    centers: Vec<String>,
    #[serde(default, rename = "aftersales_on_behalf_of")]
    on_behalf_of: Option<String>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl Verifier {
    pub fn new(settings: VerifierSettings) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok(Self {
            settings,
            http,
            keys: RwLock::new(Keys::default()),
            fetching: Mutex::new(()),
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Fetches the issuer's keys now (at start-up, so the first call waits for
    /// nothing); a failure is retried on first use.
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        let _fetching = self.fetching.lock().await;
        self.refresh().await
    }

    /// Who `token` says is calling, if it verifies.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Unauthenticated("the token is too long".into()));
        }
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| AuthError::Unauthenticated("not a signed JWT".into()))?;
        let now = now_seconds();
        if let Some(principal) = self.remembered(&digest, now) {
            return Ok(principal);
        }
        let (principal, expires) = self.verify_signed(token).await?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= REMEMBER_AT_MOST {
                verified.clear();
            }
            verified.insert(digest, (principal.clone(), expires, Instant::now()));
        }
        Ok(principal)
    }

    /// A token verified lately that has not expired since.
    fn remembered(&self, digest: &[u8; 32], now: u64) -> Option<Principal> {
        let verified = self.verified.lock().ok()?;
        let (principal, expires, at) = verified.get(digest)?;
        (*expires + self.settings.leeway.as_secs() > now && at.elapsed() < REMEMBER_FOR)
            .then(|| principal.clone())
    }

    async fn verify_signed(&self, token: &str) -> Result<(Principal, u64), AuthError> {
        let unauthenticated = |why: &str| AuthError::Unauthenticated(why.to_owned());
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthenticated("not a signed JWT"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::Unauthenticated(format!(
                "tokens signed with {:?} are not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| unauthenticated("the token names no key (kid)"))?;
        let key = self.key(&kid).await?;
        if key.algorithm.is_some_and(|declared| declared != header.alg) {
            return Err(unauthenticated("the token's algorithm is not its key's"));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| AuthError::Unauthenticated(format!("the token does not verify: {e}")))?
            .claims;
        let role = claims
            .role
            .as_deref()
            .and_then(Role::parse)
            .ok_or_else(|| {
                AuthError::PermissionDenied(format!(
                    "the token names no Aftersales role ({ROLE_CLAIM})"
                ))
            })?;
        if claims.sub.is_empty() {
            return Err(unauthenticated("the token names no subject"));
        }
        Ok((
            Principal {
                subject: claims.sub,
                role,
                on_behalf_of: claims.on_behalf_of.filter(|c| !c.is_empty()),
                centers: claims.centers,
            },
            claims.exp,
        ))
    }

    /// The key `kid`, fetching the issuer's keys again when they are old or do not
    /// have it (at most every `refetch_interval`, so made-up kids cost nothing).
    async fn key(&self, kid: &str) -> Result<Key, AuthError> {
        {
            let keys = self.keys.read().await;
            if let (Some(key), false) = (keys.by_kid.get(kid), self.stale(&keys)) {
                return Ok(key.clone());
            }
        }
        let _fetching = self.fetching.lock().await;
        let may_fetch = {
            let keys = self.keys.read().await;
            if let (Some(key), false) = (keys.by_kid.get(kid), self.stale(&keys)) {
                return Ok(key.clone());
            }
            self.stale(&keys)
                || keys
                    .fetched_at
                    .is_none_or(|at| at.elapsed() >= self.settings.refetch_interval)
        };
        if may_fetch && let Err(error) = self.refresh().await {
            let keys = self.keys.read().await;
            if keys.fetched_at.is_none() {
                return Err(error);
            }
            // Old keys still verify what they signed while the issuer is away.
            tracing::warn!(%error, "keeping the issuer's keys fetched earlier");
        }
        let keys = self.keys.read().await;
        keys.by_kid.get(kid).cloned().ok_or_else(|| {
            AuthError::Unauthenticated("the token's key is not one the issuer publishes".into())
        })
    }

    fn stale(&self, keys: &Keys) -> bool {
        keys.fetched_at
            .is_none_or(|at| at.elapsed() >= self.settings.keys_max_age)
    }

    /// Discovery (once) and the key set; the caller holds `fetching`.
    async fn refresh(&self) -> Result<(), AuthError> {
        let jwks_uri = match self.keys.read().await.jwks_uri.clone() {
            Some(uri) => uri,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let discovery: Discovery = self.get_json(&url).await?;
                if discovery.issuer != self.settings.issuer {
                    return Err(AuthError::Unavailable(format!(
                        "the discovery document names issuer {:?}, not {:?}",
                        discovery.issuer, self.settings.issuer
                    )));
                }
                discovery.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        let by_kid = usable_keys(&set);
        if by_kid.is_empty() {
            return Err(AuthError::Unavailable(format!(
                "{jwks_uri} publishes no signing key"
            )));
        }
        let mut keys = self.keys.write().await;
        keys.jwks_uri = Some(jwks_uri);
        keys.by_kid = by_kid;
        keys.fetched_at = Some(Instant::now());
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, AuthError> {
        json(url, self.http.get(url)).await
    }
}

/// The JSON document `request` answers, at most [`MAX_DOCUMENT_BYTES`] of it; any
/// failure is the identity provider being unavailable (`what` names it).
pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<T, AuthError> {
    let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(format!("{what}: {e}"));
    let response = request
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| unavailable(&e))?;
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(unavailable(&"the document is too large"));
    }
    let body = response.bytes().await.map_err(|e| unavailable(&e))?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(unavailable(&"the document is too large"));
    }
    serde_json::from_slice(&body).map_err(|e| unavailable(&e))
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The published keys a token may be signed with: asymmetric, for signatures,
/// with a `kid`. Shared secrets (`oct`) and encryption keys are left out.
fn usable_keys(set: &JwkSet) -> HashMap<String, Key> {
    set.keys
        .iter()
        .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            )
        })
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let algorithm = match &jwk.common.key_algorithm {
                Some(declared) => Some(
                    Algorithm::from_str(&format!("{declared:?}"))
                        .ok()
                        .filter(|a| ACCEPTED.contains(a))?,
                ),
                None => None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Key { key, algorithm }))
        })
        .collect()
}
