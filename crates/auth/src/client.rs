//! A service's own token, for calling other services: OAuth 2.0 client credentials
//! at the issuer's token endpoint (found by discovery), kept fresh in the
//! background so a call never waits for the issuer.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use serde::Deserialize;

use crate::verify::{AuthError, json};

/// Who the service is to the issuer.
#[derive(Clone)]
pub struct ClientCredentials {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The service's current access token, renewed a minute before it expires.
#[derive(Debug, Default)]
pub struct ServiceToken {
    current: RwLock<Option<Arc<str>>>,
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    expires_in: Option<u64>,
}

impl ServiceToken {
    /// Starts renewing with `credentials`, the first token asked for at once,
    /// until the last holder of the token drops it.
    pub fn start(credentials: ClientCredentials) -> Arc<Self> {
        let token = Arc::new(Self::default());
        tokio::spawn(renew(Arc::downgrade(&token), credentials));
        token
    }

    /// Always `token`: a token obtained elsewhere (a person's, a script's).
    pub fn fixed(token: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Some(Arc::from(token.into()))),
        })
    }

    /// The token to present now, once one has been granted.
    pub fn current(&self) -> Option<Arc<str>> {
        self.current.read().ok().and_then(|t| t.clone())
    }
}

/// Keeps `token` fresh while anyone holds it.
async fn renew(token: Weak<ServiceToken>, credentials: ClientCredentials) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut failures = 0u32;
    loop {
        let granted = grant(&http, &credentials).await;
        let Some(token) = token.upgrade() else {
            return;
        };
        let wait = match granted {
            Ok(granted) => {
                failures = 0;
                if let Ok(mut current) = token.current.write() {
                    *current = Some(Arc::from(granted.access_token));
                }
                let lifetime = granted.expires_in.unwrap_or(300);
                Duration::from_secs(lifetime.saturating_sub(60).max(5))
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, "no service token from the identity provider; retrying");
                Duration::from_secs(u64::from(failures.min(5)).pow(2).max(1))
            }
        };
        drop(token);
        tokio::time::sleep(wait).await;
    }
}

/// The token endpoint from discovery, then a client-credentials grant there.
async fn grant(
    http: &reqwest::Client,
    credentials: &ClientCredentials,
) -> Result<Granted, AuthError> {
    let discovery = format!(
        "{}/.well-known/openid-configuration",
        credentials.issuer.trim_end_matches('/')
    );
    let Discovery { token_endpoint } = json(&discovery, http.get(&discovery)).await?;
    let request = http
        .post(&token_endpoint)
        .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
        .form(&[("grant_type", "client_credentials")]);
    json(&token_endpoint, request).await
}
