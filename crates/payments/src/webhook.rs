//! The provider's webhook: the events it posts to the merchant, signed as
//! [`aftersales_runtime::signature`] describes with the scope `payments`, and
//! the merchant's endpoint for them, `POST /v1/payments/events` ([`router`]).
//! The sandbox's deliveries are here too.
//!
//! The endpoint answers 200 once an event is handled (applied, or nothing to do:
//! a redelivery, news out of order, a payment under way); 401 for a bad, missing
//! or stale signature, doing nothing; 400 for a malformed event; 413 above the
//! body limit; 503 while the payment is not known yet or the merchant's store is
//! unavailable, so the provider delivers it again.

use std::future::Future;
use std::time::Duration;

use aftersales_core::SharedClock;
use aftersales_eventstore::CommandContext;
use serde::{Deserialize, Serialize};

use crate::{Payment, PaymentStatus};

pub const SIGNATURE_HEADER: &str = "x-payments-signature";
/// Signed with every body, so no other sender's secret speaks for payments.
pub const SCOPE: &str = "payments";
/// Far above any real event, far below what could hurt.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// One event about one payment. A redelivery carries the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The refund a `refund.succeeded` is about; its amount is `amount_minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
    /// When the provider created it, in unix milliseconds.
    pub created: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// Under way: the customer or their bank has not answered yet.
    #[serde(rename = "payment.processing")]
    Processing,
    #[serde(rename = "payment.succeeded")]
    Succeeded,
    #[serde(rename = "payment.failed")]
    Failed,
    /// Money given back on the payment.
    #[serde(rename = "refund.succeeded")]
    Refunded,
}

/// What an event tells the merchant about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// How the payment ended.
    Settled(PaymentStatus),
    /// A refund on it went through.
    Refunded {
        refund_id: String,
        amount_minor: i64,
    },
}

impl WebhookEvent {
    /// What the event tells, if anything: a payment under way tells nothing.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.kind {
            EventKind::Processing => None,
            EventKind::Succeeded => Some(Outcome::Settled(PaymentStatus::Succeeded)),
            EventKind::Failed => Some(Outcome::Settled(PaymentStatus::Failed {
                reason: self
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| "the payment failed".into()),
            })),
            EventKind::Refunded => self.refund_id.clone().map(|refund_id| Outcome::Refunded {
                refund_id,
                amount_minor: self.amount_minor,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not signed by the provider (or not now): nothing may be done with it.
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("malformed event: {0}")]
    Malformed(String),
}

/// Reads one delivery: its signature checked against `secrets` (one, or two
/// while they rotate) at `now` (unix seconds), then its event.
pub fn read(
    secrets: &[Vec<u8>],
    signature: Option<&str>,
    body: &[u8],
    now: i64,
    window: Duration,
) -> Result<WebhookEvent, WebhookError> {
    aftersales_runtime::signature::verify(secrets, SCOPE, signature, body, now, window)
        .map_err(WebhookError::Unauthorized)?;
    let event: WebhookEvent =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    if event.id.is_empty()
        || event.id.len() > 200
        || event.payment_id.is_empty()
        || event.payment_id.len() > 200
    {
        return Err(WebhookError::Malformed(
            "id and payment_id are 1 to 200 bytes".into(),
        ));
    }
    Ok(event)
}

/// How deliveries are authenticated.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The provider's signing secrets: one, or two while it rotates.
    pub secrets: Vec<Vec<u8>>,
    /// How old (or how far ahead) a signature's timestamp may be.
    pub replay_window: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("secrets", &self.secrets.len())
            .field("replay_window", &self.replay_window)
            .finish()
    }
}

impl WebhookSettings {
    /// From `variable`'s value: one secret, or two comma-separated while they
    /// rotate, each at least 16 bytes.
    pub fn parse(variable: &str, secrets: &str, replay_window: Duration) -> Result<Self, String> {
        let mut active = Vec::new();
        for secret in secrets.split(',').map(str::trim) {
            aftersales_runtime::config::refuse_placeholder(variable, secret)?;
            if secret.len() < 16 {
                return Err(format!("{variable}: each secret must be at least 16 bytes"));
            }
            active.push(secret.as_bytes().to_vec());
        }
        if active.len() > 2 {
            return Err(format!(
                "{variable}: at most two secrets (two at once, to rotate)"
            ));
        }
        if replay_window.is_zero() {
            return Err(format!(
                "{variable}: the replay window must be at least a second"
            ));
        }
        Ok(Self {
            secrets: active,
            replay_window,
        })
    }

    /// The secret new signatures are made with: the newest.
    pub fn signing_secret(&self) -> Vec<u8> {
        self.secrets.last().cloned().unwrap_or_default()
    }
}

/// What a merchant does with a payment's outcome: settles what the payment
/// pays for, once, whatever comes again.
pub trait Merchant: Clone + Send + Sync + 'static {
    /// `true` if that settled it now, `false` if there was nothing to do
    /// (settled before, or another payment's news). NOT_FOUND while the payment
    /// is not known yet, so the provider delivers it again.
    fn settle(
        &self,
        payment_id: &str,
        outcome: Outcome,
        ctx: &CommandContext,
    ) -> impl Future<Output = Result<bool, aftersales_core::Error>> + Send;
}

#[derive(Debug, Clone)]
struct Endpoint<M> {
    merchant: M,
    settings: WebhookSettings,
    region: String,
    clock: SharedClock,
}

/// The merchant's webhook endpoint, `POST /v1/payments/events`.
pub fn router<M: Merchant>(
    merchant: M,
    settings: WebhookSettings,
    region: String,
    clock: SharedClock,
) -> axum::Router {
    axum::Router::new()
        .route("/v1/payments/events", axum::routing::post(receive::<M>))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Endpoint {
            merchant,
            settings,
            region,
            clock,
        })
}

async fn receive<M: Merchant>(
    axum::extract::State(endpoint): axum::extract::State<Endpoint<M>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, &'static str) {
    use axum::http::StatusCode;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = endpoint.clock.now();
    let event = match read(
        &endpoint.settings.secrets,
        header(SIGNATURE_HEADER),
        &body,
        now.timestamp(),
        endpoint.settings.replay_window,
    ) {
        Ok(event) => event,
        Err(WebhookError::Unauthorized(why)) => {
            tracing::warn!(why, "payment webhook refused");
            return (StatusCode::UNAUTHORIZED, why);
        }
        Err(WebhookError::Malformed(_)) => return (StatusCode::BAD_REQUEST, "malformed event"),
    };
    let Some(outcome) = event.outcome() else {
        return (StatusCode::OK, "under way: nothing to do");
    };
    let ctx = CommandContext {
        command_id: None,
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        traceparent: header("traceparent").map(str::to_owned),
        tracestate: None,
        actor: "service:payments".into(),
        region: endpoint.region.clone(),
        now,
        request_fingerprint: None,
    };
    match endpoint
        .merchant
        .settle(&event.payment_id, outcome, &ctx)
        .await
    {
        Ok(true) => (StatusCode::OK, "settled"),
        Ok(false) => (StatusCode::OK, "settled before: nothing to do"),
        Err(error) if error.kind() == aftersales_core::ErrorKind::NotFound => (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment not known yet; deliver again",
        ),
        Err(error) => {
            tracing::warn!(%error, "a payment webhook was not applied");
            (StatusCode::SERVICE_UNAVAILABLE, "try again")
        }
    }
}

/// Where the sandbox posts its events, and how often each.
#[derive(Clone)]
pub struct SandboxWebhook {
    url: String,
    secret: Vec<u8>,
    deliveries: u32,
    clock: SharedClock,
    client: reqwest::Client,
}

impl std::fmt::Debug for SandboxWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxWebhook")
            .field("url", &self.url)
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

/// Attempts per delivery before the sandbox gives up on it, as a provider does
/// after its retry schedule.
const ATTEMPTS: u32 = 8;

impl SandboxWebhook {
    /// Posts to `url`, signed with `secret` at `clock`'s time, each event
    /// `deliveries` times (at least once).
    pub fn new(url: String, secret: Vec<u8>, deliveries: u32, clock: SharedClock) -> Self {
        Self {
            url,
            secret,
            deliveries: deliveries.max(1),
            clock,
            client: reqwest::Client::new(),
        }
    }

    /// After `after`, posts that `settled` is under way and how it ended;
    /// every other round the ending comes first. A payment that never settles
    /// posts nothing.
    pub(crate) fn settle_later(&self, after: Duration, settled: Payment) {
        let (kind, failure_reason) = match &settled.status {
            PaymentStatus::Pending => return,
            PaymentStatus::Succeeded => (EventKind::Succeeded, None),
            PaymentStatus::Failed { reason } => (EventKind::Failed, Some(reason.clone())),
        };
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let created = this.clock.now().timestamp_millis();
            let event = |kind, suffix: &str, failure_reason| WebhookEvent {
                id: format!("evt_{}_{suffix}", settled.id),
                kind,
                payment_id: settled.id.clone(),
                amount_minor: settled.amount_minor,
                currency: settled.currency.clone(),
                failure_reason,
                refund_id: None,
                created,
            };
            this.deliver(&[
                event(EventKind::Processing, "processing", None),
                event(kind, "outcome", failure_reason),
            ])
            .await;
        });
    }

    /// After `after`, posts that `refund` went through.
    pub(crate) fn refund_later(&self, after: Duration, refund: crate::Refund) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let event = WebhookEvent {
                id: format!("evt_{}", refund.id),
                kind: EventKind::Refunded,
                payment_id: refund.payment_id.clone(),
                amount_minor: refund.amount_minor,
                currency: refund.currency.clone(),
                failure_reason: None,
                refund_id: Some(refund.id.clone()),
                created: this.clock.now().timestamp_millis(),
            };
            this.deliver(&[event]).await;
        });
    }

    /// Posts `events` `deliveries` times, every other round in reverse order.
    async fn deliver(&self, events: &[WebhookEvent]) {
        for round in 0..self.deliveries {
            let order: Vec<&WebhookEvent> = if round % 2 == 0 {
                events.iter().rev().collect()
            } else {
                events.iter().collect()
            };
            for event in order {
                self.post(event).await;
            }
        }
    }

    /// Posts `event` until the merchant answers 2xx, backing off, or gives up.
    async fn post(&self, event: &WebhookEvent) {
        let Ok(body) = serde_json::to_vec(event) else {
            return;
        };
        let mut wait = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            let signature = aftersales_runtime::signature::sign(
                &self.secret,
                SCOPE,
                self.clock.now().timestamp(),
                &body,
            );
            let sent = self
                .client
                .post(&self.url)
                .header(SIGNATURE_HEADER, signature)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(answer) if answer.status().is_success() => return,
                Ok(answer) => {
                    tracing::debug!(status = %answer.status(), attempt, "webhook not accepted");
                }
                Err(error) => tracing::debug!(%error, attempt, "webhook not delivered"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
        tracing::warn!(event = event.id, "the sandbox gave up delivering a webhook");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};

    use super::*;
    use crate::{PaymentProvider as _, PaymentRequest, Sandbox};

    const SECRET: &[u8] = b"payments-secret-0123";

    #[derive(Clone, Default)]
    struct Merchant {
        received: Arc<Mutex<Vec<WebhookEvent>>>,
        refused: Arc<Mutex<u32>>,
    }

    /// A merchant that refuses its first delivery (as a busy one would), then
    /// keeps what the signature lets through.
    async fn serve() -> (String, Merchant) {
        let merchant = Merchant::default();
        let shared = merchant.clone();
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move {
                    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
                    #[allow(clippy::disallowed_methods)] // the test's merchant reads the real clock
                    let now = chrono::Utc::now().timestamp();
                    let Ok(event) = read(
                        &[SECRET.to_vec()],
                        signature,
                        &body,
                        now,
                        Duration::from_secs(300),
                    ) else {
                        return StatusCode::UNAUTHORIZED;
                    };
                    let mut refused = shared.refused.lock().unwrap();
                    if *refused == 0 {
                        *refused += 1;
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    shared.received.lock().unwrap().push(event);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/events"), merchant)
    }

    fn request(key: &str, method: &str) -> PaymentRequest {
        PaymentRequest {
            idempotency_key: key.into(),
            amount_minor: 1999,
            currency: "EUR".into(),
            description: "USB-C cable".into(),
            method: method.into(),
        }
    }

    #[tokio::test]
    async fn the_sandbox_posts_each_event_as_often_as_asked_signed_retried_and_out_of_order() {
        let (url, merchant) = serve().await;
        let webhook = SandboxWebhook::new(
            url,
            SECRET.to_vec(),
            3,
            Arc::new(aftersales_core::SystemClock),
        );
        let sandbox = Sandbox::new(Duration::from_millis(10)).with_webhook(webhook);
        let declined = sandbox
            .create(&request("k1", "sandbox-declined"))
            .await
            .unwrap();
        sandbox
            .create(&request("k2", "sandbox-pending"))
            .await
            .unwrap();
        // The same key again is the same payment: no second set of events.
        sandbox
            .create(&request("k1", "sandbox-declined"))
            .await
            .unwrap();
        let mut received = Vec::new();
        for _ in 0..200 {
            received = merchant.received.lock().unwrap().clone();
            if received.len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let received_then = merchant.received.lock().unwrap().clone();
        assert_eq!(received_then.len(), 6, "{received_then:#?}");
        assert_eq!(received, received_then);
        assert!(received.iter().all(|e| e.payment_id == declined.id));
        // Delivered three times each, and the ending came before the news it was under way.
        assert_eq!(received[0].kind, EventKind::Failed);
        assert_eq!(
            received[0].failure_reason.as_deref(),
            Some("the card was declined")
        );
        assert_eq!(received[1].kind, EventKind::Processing);
        for kind in [EventKind::Processing, EventKind::Failed] {
            let of_kind: Vec<_> = received.iter().filter(|e| e.kind == kind).collect();
            assert_eq!(of_kind.len(), 3);
            assert!(of_kind.iter().all(|e| e.id == of_kind[0].id));
        }
        assert_eq!(
            *merchant.refused.lock().unwrap(),
            1,
            "the refused delivery came again"
        );
    }

    #[test]
    fn a_delivery_is_read_only_when_signed_by_the_provider_and_well_formed() {
        let event = WebhookEvent {
            id: "evt_1".into(),
            kind: EventKind::Succeeded,
            payment_id: "pay_1".into(),
            amount_minor: 100,
            currency: "EUR".into(),
            failure_reason: None,
            refund_id: None,
            created: 0,
        };
        let body = serde_json::to_vec(&event).unwrap();
        let window = Duration::from_secs(300);
        let secrets = [SECRET.to_vec()];
        let signed = aftersales_runtime::signature::sign(SECRET, SCOPE, 1_000, &body);
        assert_eq!(
            read(&secrets, Some(&signed), &body, 1_000, window),
            Ok(event)
        );
        assert_eq!(
            event_outcome(&body),
            Some(Outcome::Settled(PaymentStatus::Succeeded))
        );
        let as_carrier = aftersales_runtime::signature::sign(SECRET, "dhl", 1_000, &body);
        assert_eq!(
            read(&secrets, Some(&as_carrier), &body, 1_000, window),
            Err(WebhookError::Unauthorized("bad signature"))
        );
        let junk = b"{\"id\": 1}";
        let signed_junk = aftersales_runtime::signature::sign(SECRET, SCOPE, 1_000, junk);
        assert!(matches!(
            read(&secrets, Some(&signed_junk), junk, 1_000, window),
            Err(WebhookError::Malformed(_))
        ));
    }

    fn event_outcome(body: &[u8]) -> Option<Outcome> {
        serde_json::from_slice::<WebhookEvent>(body)
            .unwrap()
            .outcome()
    }
}
