//! The identity provider `aftersales up` runs, so the embedded platform needs
//! nothing more installed. To the services it is an OpenID Connect issuer like
//! any other (discovery, JWKS, ES256 access tokens for 15 minutes); to people
//! it is the sign-in:
//!
//! - staff: username and password (argon2id), plus an authenticator code
//!   (TOTP) where the account has one (operators);
//! - customers: a one-time code sent to the email or phone they registered,
//!   through the notification service;
//! - refresh tokens that rotate on every use (a reused one ends its session)
//!   and are revoked on sign-out;
//! - attempts limited per account and per source, answered 429 with nothing
//!   written.
//!
//! The distributed form uses an external provider (Keycloak, say) instead.

use axum::serve::ListenerExt as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_auth::Principal;
use aftersales_auth::issuer::Issuer;

pub mod codes;
mod http;
mod limits;
pub mod secrets;
pub mod store;

pub use codes::CodeSender;
pub use store::{Account, Store};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the identity database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the identity database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the identity database holds something unreadable: {0}")]
    Corrupt(String),
    #[error("the account {0} exists already")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("hashing a password: {0}")]
    Hash(String),
    #[error("no random numbers")]
    Random,
    #[error("the issuer: {0}")]
    Issuer(#[from] aftersales_auth::issuer::IssuerError),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// How long a sign-in lasts before signing in again: staff every working day,
/// customers every month.
pub const STAFF_SESSION: Duration = Duration::from_secs(12 * 3600);
pub const CUSTOMER_SESSION: Duration = Duration::from_secs(30 * 86_400);

/// A running provider.
#[derive(Debug, Clone)]
pub struct Provider {
    issuer: Issuer,
    store: Store,
}

/// What a new staff account is.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub principal: Principal,
    /// Require an authenticator code at sign-in.
    pub totp: bool,
}

impl Provider {
    /// Serves on `listen` until `stop` resolves, tokens for `audience`, with
    /// what `store` keeps and customers' codes sent by `sender`.
    pub async fn serve(
        listen: SocketAddr,
        store: Store,
        audience: &str,
        sender: Arc<dyn CodeSender>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, IdentityError> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            let key = aftersales_auth::issuer::SigningKey::generate()?;
            store.keep_signing_key(&key).await?;
            keys.push(key);
        }
        let issuer = Issuer::new(format!("http://{}", listener.local_addr()?), keys)?;
        let provider = Self { issuer, store };
        let (app, sweeper) = http::routes(provider.clone(), audience.to_owned(), sender)?;
        let (stop_sweeping, mut sweeping_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(
                listener.tap_io(|stream| {
                    // Small writes (a page's last bytes, a live event) go out at once.
                    let _ = stream.set_nodelay(true);
                }),
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stop)
            .await
            {
                tracing::error!(%error, "the identity provider stopped");
            }
            let _ = stop_sweeping.send(());
        });
        // Expired codes and idle limits every minute, ended sessions every hour.
        let store = provider.store.clone();
        tokio::spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            for minute in 0_u64.. {
                tokio::select! {
                    _ = every_minute.tick() => {}
                    _ = &mut sweeping_stopped => return,
                }
                sweeper.sweep();
                if minute % 60 == 0
                    && let Err(error) = store.forget_ended_sessions().await
                {
                    tracing::warn!(%error, "forgetting ended sessions failed");
                }
            }
        });
        Ok(provider)
    }

    /// The issuer: its URL, clients for services, tokens minted in-process.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    pub fn url(&self) -> &str {
        self.issuer.url()
    }

    /// Adds a staff account; the authenticator secret if it needs one.
    pub async fn add_account(&self, account: NewAccount) -> Result<Option<String>, IdentityError> {
        if account.username.is_empty()
            || account.username.len() > 64
            || !account
                .username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        {
            return Err(IdentityError::Invalid(
                "a username has 1 to 64 of A-Z a-z 0-9 - _ . @".into(),
            ));
        }
        let password = account.password;
        let hash = tokio::task::spawn_blocking(move || secrets::hash_password(&password))
            .await
            .map_err(|e| IdentityError::Hash(e.to_string()))??;
        let totp_secret = account.totp.then(secrets::new_totp_secret).transpose()?;
        self.store
            .add_account(&Account {
                username: account.username,
                principal: account.principal,
                password_hash: hash,
                totp_secret: totp_secret.clone(),
            })
            .await?;
        Ok(totp_secret)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
