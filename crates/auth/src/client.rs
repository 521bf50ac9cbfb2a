//! A service's own token, for calling other services: OAuth 2.0 client credentials
//! at the issuer's token endpoint (found by discovery), kept fresh in the
//! background so a call never waits for the issuer.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use crate::verify::AuthError;

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
    /// Starts renewing with `credentials` until `stop` resolves; the first token
    /// is asked for at once.
    pub fn start(
        credentials: ClientCredentials,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Arc<Self> {
        let token = Arc::new(Self::default());
        let renewing = Arc::clone(&token);
        tokio::spawn(async move {
            tokio::select! {
                () = renewing.renew(credentials) => {}
                () = stop => {}
            }
        });
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

    async fn renew(&self, credentials: ClientCredentials) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let mut failures = 0u32;
        loop {
            let wait = match grant(&http, &credentials).await {
                Ok(granted) => {
                    failures = 0;
                    if let Ok(mut current) = self.current.write() {
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
            tokio::time::sleep(wait).await;
        }
    }
}

async fn grant(
    http: &reqwest::Client,
    credentials: &ClientCredentials,
) -> Result<Granted, AuthError> {
    let unavailable = |e: &dyn std::fmt::Display| AuthError::Unavailable(e.to_string());
    let discovery: Discovery = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            credentials.issuer.trim_end_matches('/')
        ))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| unavailable(&e))?
        .bytes()
        .await
        .map_err(|e| unavailable(&e))
        .and_then(|body| serde_json::from_slice(&body).map_err(|e| unavailable(&e)))?;
    let body = http
        .post(&discovery.token_endpoint)
        .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| unavailable(&e))?
        .bytes()
        .await
        .map_err(|e| unavailable(&e))?;
    serde_json::from_slice(&body).map_err(|e| unavailable(&e))
}
