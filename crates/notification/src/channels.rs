//! Where messages go out: email over SMTP (lettre), SMS and app push as HTTP calls
//! to the configured providers. The inbox needs no sender.
//!
//! Each call says whether asking again can help: a provider that is down or busy
//! (`Retry`), or one that refused the message itself (`Rejected`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::domain::Channel;

/// One message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The notification id: the provider's idempotency key, the email's Message-ID.
    pub id: String,
    pub address: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Retry(String),
    #[error("rejected: {0}")]
    Rejected(String),
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

pub trait Sender: Send + Sync + std::fmt::Debug {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a>;
}

/// The configured senders by channel.
#[derive(Debug, Clone, Default)]
pub struct Senders {
    pub email: Option<Arc<dyn Sender>>,
    pub sms: Option<Arc<dyn Sender>>,
    pub push: Option<Arc<dyn Sender>>,
}

impl Senders {
    pub fn for_channel(&self, channel: Channel) -> Option<&Arc<dyn Sender>> {
        match channel {
            Channel::Email => self.email.as_ref(),
            Channel::Sms => self.sms.as_ref(),
            Channel::Push => self.push.as_ref(),
            Channel::InApp => None,
        }
    }
}

/// Email over SMTP.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// `url`: `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port`, with `user:password@` if needed.
    pub fn new(url: &str, from: &str) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("AFTERSALES_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        let from = from
            .parse()
            .map_err(|e| format!("AFTERSALES_EMAIL_FROM: {e}"))?;
        Ok(Self { transport, from })
    }
}

impl Sender for Smtp {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let to: Mailbox = message
                .address
                .parse()
                .map_err(|e| SendError::Rejected(format!("address: {e}")))?;
            let email = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(message.subject.clone())
                .message_id(Some(format!("<{}@aftersales>", message.id)))
                .multipart(MultiPart::alternative_plain_html(
                    message.text.clone(),
                    message.html.clone(),
                ))
                .map_err(|e| SendError::Rejected(e.to_string()))?;
            match self.transport.send(email).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(SendError::Rejected(e.to_string())),
                Err(e) => Err(SendError::Retry(e.to_string())),
            }
        })
    }
}

/// SMS or push through a provider's HTTP endpoint: a JSON POST with an
/// `Idempotency-Key`, so asking again after an interrupted call sends once.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    client: reqwest::Client,
    url: reqwest::Url,
    channel: Channel,
}

impl HttpProvider {
    pub fn new(url: &str, channel: Channel) -> Result<Self, String> {
        let url: reqwest::Url = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url}: must be http or https"));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url,
            channel,
        })
    }
}

impl Sender for HttpProvider {
    fn send<'a>(&'a self, message: &'a Outgoing) -> SendFuture<'a> {
        Box::pin(async move {
            let body = match self.channel {
                Channel::Push => serde_json::json!({
                    "token": message.address,
                    "title": message.subject,
                    "body": message.text,
                    "idempotency_key": message.id,
                }),
                Channel::Email | Channel::Sms | Channel::InApp => serde_json::json!({
                    "to": message.address,
                    "text": format!("{}: {}", message.subject, message.text),
                    "idempotency_key": message.id,
                }),
            };
            let response = self
                .client
                .post(self.url.clone())
                .header("Idempotency-Key", &message.id)
                .header("Content-Type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| SendError::Retry(format!("{}: {e}", self.url)))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else if status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT
            {
                Err(SendError::Retry(format!("provider answered {status}")))
            } else {
                Err(SendError::Rejected(format!("provider answered {status}")))
            }
        })
    }
}
