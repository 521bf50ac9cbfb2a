//! The payment provider's webhook: `POST /v1/payments/events`, one event as JSON,
//! signed with the `payments` scope (`aftersales_payments::webhook`).
//!
//! A plan's payment settles once however often, and in whatever order, its
//! events arrive: the device decider applies an outcome only to the payment it
//! is waiting for. Answers: 200 once handled (applied or nothing to do); 401 for
//! a bad, missing or stale signature, recording nothing; 400 for a malformed
//! event; 413 above the body limit; 503 while the payment is not known yet or the
//! store is unavailable, so the provider delivers it again.

use std::time::Duration;

use aftersales_core::{ErrorKind, SharedClock};
use aftersales_eventstore::CommandContext;
use aftersales_payments::webhook::{MAX_BODY_BYTES, SIGNATURE_HEADER, WebhookError, read};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use uuid::Uuid;

use crate::app::Warranty;

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

#[derive(Debug, Clone)]
struct Shared {
    app: Warranty,
    settings: WebhookSettings,
    region: String,
    clock: SharedClock,
}

pub fn router(
    app: Warranty,
    settings: WebhookSettings,
    region: String,
    clock: SharedClock,
) -> Router {
    Router::new()
        .route("/v1/payments/events", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Shared {
            app,
            settings,
            region,
            clock,
        })
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let now = shared.clock.now();
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let event = match read(
        &shared.settings.secrets,
        signature,
        &body,
        now.timestamp(),
        shared.settings.replay_window,
    ) {
        Ok(event) => event,
        Err(WebhookError::Unauthorized(why)) => {
            tracing::warn!(why, "payment webhook refused");
            return (StatusCode::UNAUTHORIZED, why.to_owned());
        }
        Err(error @ WebhookError::Malformed(_)) => {
            return (StatusCode::BAD_REQUEST, error.to_string());
        }
    };
    let Some(outcome) = event.outcome() else {
        return (StatusCode::OK, "under way: nothing to do".into());
    };
    let ctx = CommandContext {
        command_id: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        tracestate: None,
        actor: "service:payments".into(),
        region: shared.region.clone(),
        now,
        request_fingerprint: None,
    };
    match shared
        .app
        .settle_from_webhook(&event.payment_id, outcome, &ctx)
        .await
    {
        Ok(true) => (StatusCode::OK, "settled".into()),
        Ok(false) => (StatusCode::OK, "settled before: nothing to do".into()),
        Err(error) if error.kind() == ErrorKind::NotFound => (
            StatusCode::SERVICE_UNAVAILABLE,
            "payment not known yet; deliver again".into(),
        ),
        Err(error) => {
            tracing::warn!(%error, "a payment webhook was not applied");
            (StatusCode::SERVICE_UNAVAILABLE, "try again".into())
        }
    }
}
