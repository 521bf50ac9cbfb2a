//! The provider over HTTP: the issuer's discovery and keys, the token endpoint
//! (RFC 6749: client credentials, password, refresh token, one-time codes under
//! their own grant type, and RFC 8693 token exchange for a support agent to act
//! for a customer), one-time code requests, and revocation (RFC 7009).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aftersales_auth::issuer::{ACCESS_TOKEN_LIFETIME, GrantAnswer, grant_error};
use aftersales_auth::{Principal, Role};
use axum::Form;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use serde_json::json;

use crate::codes::{self, CodeSender, Codes, Refusal};
use crate::limits::Limits;
use crate::store::Rotation;
use crate::{CUSTOMER_SESSION, Provider, STAFF_SESSION, secrets};

/// The grant type of a one-time code sent to a customer's email or phone.
pub const ONE_TIME_CODE_GRANT: &str = "urn:aftersales:params:oauth:grant-type:one-time-code";
/// RFC 8693 token exchange: a support agent's access token for one that acts for
/// the customer named in [`ON_BEHALF_OF`].
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The form field naming the customer an exchanged token acts for.
pub const ON_BEHALF_OF: &str = "aftersales_on_behalf_of";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// How long a token that acts for a customer lives: one desk conversation.
const ON_BEHALF_LIFETIME: Duration = Duration::from_secs(300);
/// The longest form a sign-in request may have.
const MAX_BODY_BYTES: usize = 4096;
/// The longest email address (RFC 5321) or phone number.
const MAX_ADDRESS_BYTES: usize = 254;

#[derive(Debug, Clone)]
struct App {
    provider: Provider,
    audience: String,
    sender: Arc<dyn CodeSender>,
    codes: Arc<Codes>,
    limits: Arc<Limits>,
    /// Each account's last accepted authenticator code: taken once only, so a
    /// code seen over someone's shoulder is worth nothing.
    used_totp: Arc<std::sync::Mutex<HashMap<String, (String, Instant)>>>,
    /// This provider's own access tokens, checked as any service checks them.
    verifier: Arc<aftersales_auth::Verifier>,
}

/// What the provider forgets as time passes: expired codes and idle limits.
#[derive(Debug)]
pub struct Sweeper {
    codes: Arc<Codes>,
    limits: Arc<Limits>,
}

impl Sweeper {
    pub fn sweep(&self) {
        self.codes.forget_expired(Instant::now());
        self.limits.forget_idle();
    }
}

pub fn routes(
    provider: Provider,
    audience: String,
    sender: Arc<dyn CodeSender>,
) -> Result<(axum::Router, Sweeper), crate::IdentityError> {
    let url = provider.url().to_owned();
    let published = provider.issuer().published(
        &[
            "client_credentials",
            "password",
            "refresh_token",
            ONE_TIME_CODE_GRANT,
            TOKEN_EXCHANGE_GRANT,
        ],
        json!({
            "revocation_endpoint": format!("{url}/revoke"),
            "one_time_code_endpoint": format!("{url}/one-time-code"),
        }),
    );
    let verifier = aftersales_auth::Verifier::new(aftersales_auth::VerifierSettings::new(
        url.clone(),
        audience.clone(),
    ))
    .map_err(|e| crate::IdentityError::Invalid(e.to_string()))?;
    let app = App {
        provider,
        audience,
        sender,
        codes: Arc::default(),
        limits: Arc::default(),
        used_totp: Arc::default(),
        verifier: Arc::new(verifier),
    };
    let sweeper = Sweeper {
        codes: Arc::clone(&app.codes),
        limits: Arc::clone(&app.limits),
    };
    let service = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .route("/one-time-code", axum::routing::post(one_time_code))
        .route("/revoke", axum::routing::post(revoke))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app);
    Ok((published.merge(service), sweeper))
}

type Fields = HashMap<String, String>;

fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.get(name).map_or("", String::as_str)
}

fn too_many(wait: Duration) -> Response {
    let mut response = grant_error(StatusCode::TOO_MANY_REQUESTS, "slow_down").into_response();
    if let Ok(seconds) = wait.as_secs().max(1).to_string().parse() {
        response.headers_mut().insert("retry-after", seconds);
    }
    response
}

fn invalid_grant(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "invalid_grant", "error_description": description })),
    )
        .into_response()
}

fn server_error(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "the identity provider failed");
    grant_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error").into_response()
}

impl App {
    /// An access token and the refresh token of a new or continued session.
    fn tokens(&self, principal: &Principal, refresh_token: &str) -> Response {
        match self
            .provider
            .issuer()
            .token(principal, &self.audience, ACCESS_TOKEN_LIFETIME)
        {
            Ok(access) => {
                let answer: GrantAnswer = (
                    StatusCode::OK,
                    axum::Json(json!({
                        "access_token": access,
                        "token_type": "Bearer",
                        "expires_in": ACCESS_TOKEN_LIFETIME.as_secs(),
                        "refresh_token": refresh_token,
                    })),
                );
                answer.into_response()
            }
            Err(error) => server_error(&error),
        }
    }

    async fn signed_in(&self, principal: &Principal) -> Response {
        let lifetime = if principal.role == Role::Customer {
            CUSTOMER_SESSION
        } else {
            STAFF_SESSION
        };
        match self.provider.store.start_session(principal, lifetime).await {
            Ok(refresh) => self.tokens(principal, &refresh),
            Err(error) => server_error(&error),
        }
    }

    async fn password(&self, form: &Fields, source: &str) -> Response {
        let (username, password, code) = (
            field(form, "username"),
            field(form, "password"),
            field(form, "totp"),
        );
        if username.is_empty()
            || username.len() > 64
            || password.len() > secrets::MAX_PASSWORD_BYTES
        {
            return invalid_grant("the username, password or authenticator code is wrong");
        }
        if let Err(wait) = self.limits.attempt(&format!("user:{username}"), source) {
            return too_many(wait);
        }
        let account = match self.provider.store.account(username).await {
            Ok(account) => account,
            Err(error) => return server_error(&error),
        };
        let hash = account.as_ref().map_or_else(
            || secrets::decoy_hash().to_owned(),
            |a| a.password_hash.clone(),
        );
        let password = password.to_owned();
        let matches =
            tokio::task::spawn_blocking(move || secrets::password_matches(&password, &hash))
                .await
                .unwrap_or(false);
        let Some(account) = account.filter(|_| matches) else {
            return invalid_grant("the username, password or authenticator code is wrong");
        };
        if let Some(secret) = &account.totp_secret
            && !(secrets::totp_matches(secret, code) && self.first_use_of(username, code))
        {
            return invalid_grant("the username, password or authenticator code is wrong");
        }
        self.signed_in(&account.principal).await
    }

    /// Whether `code` is not the last one `username` used (codes live 90 s at most).
    fn first_use_of(&self, username: &str, code: &str) -> bool {
        let Ok(mut used) = self.used_totp.lock() else {
            return false;
        };
        let now = Instant::now();
        used.retain(|_, (_, at)| now.duration_since(*at) < Duration::from_secs(90));
        if used.get(username).is_some_and(|(last, _)| last == code) {
            return false;
        }
        used.insert(username.to_owned(), (code.to_owned(), now));
        true
    }

    async fn one_time_code(&self, form: &Fields, source: &str) -> Response {
        let address = codes::normalize(field(form, "address"));
        let code = field(form, "code");
        if address.is_empty() || address.len() > MAX_ADDRESS_BYTES || code.len() != 6 {
            return invalid_grant("the code is wrong or has expired");
        }
        if let Err(wait) = self.limits.attempt(&format!("address:{address}"), source) {
            return too_many(wait);
        }
        match self.codes.redeem(&address, code, Instant::now()) {
            Ok(customer) => {
                self.signed_in(&Principal::new(customer, Role::Customer))
                    .await
            }
            Err(Refusal::Wrong) => invalid_grant("the code is wrong or has expired"),
            Err(Refusal::LockedOut(wait)) => too_many(wait),
            Err(Refusal::Busy) => too_many(Duration::from_secs(60)),
        }
    }

    /// A support agent's access token exchanged for a short one that acts for a
    /// customer: services then let the agent do what the customer may, and
    /// record both (`support_agent:agent-7 for customer:c-42`). No refresh
    /// token; no exchange of a token that already acts for someone.
    async fn act_for(&self, form: &Fields) -> Response {
        let customer = field(form, ON_BEHALF_OF);
        let well_formed = !customer.is_empty()
            && customer.len() <= 128
            && customer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
        let subject = field(form, "subject_token");
        if !well_formed
            || subject.is_empty()
            || subject.len() > 4096
            || field(form, "subject_token_type") != ACCESS_TOKEN_TYPE
        {
            return grant_error(StatusCode::BAD_REQUEST, "invalid_request").into_response();
        }
        let agent = match self.verifier.verify(subject).await {
            Ok(agent) => agent,
            Err(aftersales_auth::AuthError::Unavailable(error)) => return server_error(&error),
            Err(_) => return invalid_grant("the subject token is not valid"),
        };
        if agent.role != Role::SupportAgent || agent.on_behalf_of.is_some() {
            return invalid_grant("only a support agent's own token acts for a customer");
        }
        let acting = Principal {
            on_behalf_of: Some(customer.to_owned()),
            centers: Vec::new(),
            ..agent
        };
        match self
            .provider
            .issuer()
            .token(&acting, &self.audience, ON_BEHALF_LIFETIME)
        {
            Ok(access) => {
                tracing::info!(agent = %acting.subject, customer, "a support agent acts for a customer");
                let answer: GrantAnswer = (
                    StatusCode::OK,
                    axum::Json(json!({
                        "access_token": access,
                        "issued_token_type": ACCESS_TOKEN_TYPE,
                        "token_type": "Bearer",
                        "expires_in": ON_BEHALF_LIFETIME.as_secs(),
                    })),
                );
                answer.into_response()
            }
            Err(error) => server_error(&error),
        }
    }

    /// Not rate-limited per account: a refresh token is 256 random bits, never
    /// guessed, and every session's renewals would share one allowance.
    async fn refresh(&self, form: &Fields) -> Response {
        match self
            .provider
            .store
            .rotate(field(form, "refresh_token"))
            .await
        {
            Ok(Rotation::Rotated {
                principal,
                refresh_token,
            }) => self.tokens(&principal, &refresh_token),
            Ok(Rotation::Refused) => invalid_grant("the refresh token is not valid"),
            Err(error) => server_error(&error),
        }
    }
}

/// Whom attempts are counted against: the peer, or, for a proxy on this
/// machine (the web gateway), the address it says the request came from.
fn source(peer: SocketAddr, headers: &HeaderMap) -> String {
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 45);
    match forwarded {
        Some(client) if peer.ip().is_loopback() => client.to_owned(),
        Some(_) | None => peer.ip().to_string(),
    }
}

async fn token(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let source = source(peer, &headers);
    match field(&form, "grant_type") {
        "client_credentials" => app
            .provider
            .issuer()
            .client_credentials(&headers)
            .into_response(),
        "password" => app.password(&form, &source).await,
        "refresh_token" => app.refresh(&form).await,
        ONE_TIME_CODE_GRANT => app.one_time_code(&form, &source).await,
        TOKEN_EXCHANGE_GRANT => app.act_for(&form).await,
        _ => grant_error(StatusCode::BAD_REQUEST, "unsupported_grant_type").into_response(),
    }
}

/// Sends a customer a sign-in code. The answer is the same whether or not the
/// address belongs to anyone.
async fn one_time_code(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let address = codes::normalize(field(&form, "address"));
    let language = field(&form, "language");
    if address.is_empty() || address.len() > MAX_ADDRESS_BYTES || language.len() > 35 {
        return grant_error(StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    if let Err(wait) = app.limits.send(&address, &source(peer, &headers)) {
        return too_many(wait);
    }
    match app.codes.may_send(&address, Instant::now()) {
        Ok(()) => {}
        Err(Refusal::LockedOut(wait)) => return too_many(wait),
        Err(Refusal::Wrong | Refusal::Busy) => return too_many(Duration::from_secs(60)),
    }
    let code = match codes::new_code() {
        Ok(code) => code,
        Err(error) => return server_error(&error),
    };
    let customer = match app.sender.send(&address, &code, language).await {
        Ok(customer) => customer,
        Err(error) => {
            tracing::warn!(%error, "a sign-in code could not be sent");
            return grant_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
                .into_response();
        }
    };
    app.codes.issued(&address, &code, customer, Instant::now());
    (
        StatusCode::OK,
        axum::Json(json!({ "expires_in": codes::CODE_LIFETIME.as_secs() })),
    )
        .into_response()
}

/// RFC 7009: ends the session of a refresh token (sign-out). Always 200, as
/// the RFC asks, so a caller learns nothing about tokens it does not hold.
async fn revoke(State(app): State<App>, Form(form): Form<Fields>) -> Response {
    let token = field(&form, "token");
    if !token.is_empty()
        && token.len() <= 128
        && let Err(error) = app.provider.store.revoke(token).await
    {
        return server_error(&error);
    }
    StatusCode::OK.into_response()
}
