//! The identity provider, as the gateway signs people in there: a customer's
//! one-time code, staff passwords, the refresh token, a support agent's token
//! to act for a customer, sign-out.

use std::time::Duration;

use aftersales_auth::Role;
use serde::Deserialize;

use crate::session::Person;

const ONE_TIME_CODE_GRANT: &str = "urn:aftersales:params:oauth:grant-type:one-time-code";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

#[derive(Debug, Clone)]
pub struct Identity {
    url: String,
    http: reqwest::Client,
}

/// Tokens the provider granted.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: u64,
}

/// Why signing in did not work, as a person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong or expired code (or refresh token).
    Wrong,
    /// Too many attempts: wait.
    SlowDown,
    /// The provider or the message could not be reached.
    Unavailable,
}

impl Identity {
    pub fn new(url: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("the identity provider's client: {e}"))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// `client`: the browser's address, so the provider counts attempts per
    /// person rather than per gateway.
    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        client: Option<std::net::IpAddr>,
    ) -> Result<reqwest::Response, Refusal> {
        let mut request = self.http.post(format!("{}{path}", self.url)).form(form);
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client.to_string());
        }
        request.send().await.map_err(|error| {
            tracing::warn!(%error, "the identity provider cannot be reached");
            Refusal::Unavailable
        })
    }

    fn refusal(status: reqwest::StatusCode) -> Refusal {
        match status.as_u16() {
            429 => Refusal::SlowDown,
            400 | 401 => Refusal::Wrong,
            _ => Refusal::Unavailable,
        }
    }

    /// Sends a sign-in code to `address` (if it is anyone's: the answer is the same).
    pub async fn send_code(
        &self,
        address: &str,
        language: &str,
        client: std::net::IpAddr,
    ) -> Result<(), Refusal> {
        let answer = self
            .post(
                "/one-time-code",
                &[("address", address), ("language", language)],
                Some(client),
            )
            .await?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(Self::refusal(answer.status()))
        }
    }

    async fn grant(
        &self,
        form: &[(&str, &str)],
        client: Option<std::net::IpAddr>,
    ) -> Result<Tokens, Refusal> {
        let answer = self.post("/token", form, client).await?;
        if !answer.status().is_success() {
            return Err(Self::refusal(answer.status()));
        }
        answer.json().await.map_err(|_| Refusal::Unavailable)
    }

    pub async fn redeem(
        &self,
        address: &str,
        code: &str,
        client: std::net::IpAddr,
    ) -> Result<Tokens, Refusal> {
        self.grant(
            &[
                ("grant_type", ONE_TIME_CODE_GRANT),
                ("address", address),
                ("code", code),
            ],
            Some(client),
        )
        .await
    }

    /// A staff member's sign-in: password, and an authenticator code where
    /// their account has one.
    pub async fn password(
        &self,
        username: &str,
        password: &str,
        totp: &str,
        client: std::net::IpAddr,
    ) -> Result<Tokens, Refusal> {
        self.grant(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("totp", totp),
            ],
            Some(client),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, Refusal> {
        self.grant(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            None,
        )
        .await
    }

    /// A short token with which a support agent (signed in with
    /// `access_token`) acts for `customer`: the services let the agent do what
    /// the customer may, and record it as done by the agent for them.
    pub async fn act_for(&self, access_token: &str, customer: &str) -> Result<String, Refusal> {
        self.grant(
            &[
                ("grant_type", TOKEN_EXCHANGE_GRANT),
                ("subject_token", access_token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("aftersales_on_behalf_of", customer),
            ],
            None,
        )
        .await
        .map(|tokens| tokens.access_token)
    }

    /// Ends the session at the provider (sign-out).
    pub async fn revoke(&self, refresh_token: &str) {
        let _ = self
            .post("/revoke", &[("token", refresh_token)], None)
            .await;
    }
}

/// Who an access token is for, read (not verified: the services verify it) to
/// know which pages to show.
pub fn person(access_token: &str) -> Option<Person> {
    use aftersales_auth::verify::{CENTERS_CLAIM, ROLE_CLAIM};
    use base64::Engine as _;
    let claims = access_token.split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    Some(Person {
        subject: claims["sub"].as_str()?.to_owned(),
        role: Role::parse(claims[ROLE_CLAIM].as_str()?)?,
        centers: claims[CENTERS_CLAIM]
            .as_array()
            .map(|centers| {
                centers
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    })
}
