//! Carrier scans over HTTP: `POST /v1/carriers/{carrier}/events`.
//!
//! Each carrier signs its requests with its own secret (two may be active at
//! once, while it rotates):
//! `X-Aftersales-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<carrier>.<body>">`.
//! The carrier's name is signed, so one carrier's secret cannot speak for
//! another. A bad or missing signature, a carrier without a secret, or a
//! timestamp outside the replay window is 401 and records nothing. The body is one scan as JSON:
//!
//! ```json
//! {"carrier_event_id": "e-1", "tracking_number": "SB0123", "status": "in_transit",
//!  "location": "Leipzig hub", "description": "Sorted", "occurred_at": "2026-11-25T08:00:00Z"}
//! ```
//!
//! Answers: 202 with the shipment, whether the scan was a duplicate, and the
//! status now; 400 for malformed JSON or fields; 404 for an unknown carrier or
//! tracking number; 409 when the shipment takes no scans (cancelled); 413 above
//! the body limit; 503 when the store is unavailable.

use std::time::Duration;

use aftersales_eventstore::CommandContext;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use uuid::Uuid;

use aftersales_core::ErrorKind;

use crate::app::Logistics;
use crate::domain::tracking::{Scan, Status};

pub const SIGNATURE_HEADER: &str = "x-aftersales-signature";
/// Far above any real scan, far below what could hurt.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How requests are authenticated.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Each carrier's active secrets: one, or two while it rotates.
    pub secrets: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
    /// How old (or how far ahead) a signature's timestamp may be.
    pub replay_window: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("carriers", &self.secrets.keys().collect::<Vec<_>>())
            .field("replay_window", &self.replay_window)
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Shared {
    app: Logistics,
    settings: WebhookSettings,
    region: String,
}

pub use aftersales_runtime::signature::sign;

/// Checks the signature header against the body with each of the carrier's
/// secrets (the carrier's name is the signed scope).
fn verify(
    settings: &WebhookSettings,
    carrier: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let secrets = settings.secrets.get(carrier).map_or(&[][..], Vec::as_slice);
    aftersales_runtime::signature::verify(
        secrets,
        carrier,
        header,
        body,
        now,
        settings.replay_window,
    )
}

#[derive(Debug, Deserialize)]
struct ScanBody {
    carrier_event_id: String,
    tracking_number: String,
    status: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    description: String,
    occurred_at: String,
}

fn json(code: StatusCode, body: serde_json::Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    json(code, serde_json::json!({ "error": message.into() }))
}

async fn receive(
    State(shared): State<Shared>,
    Path(carrier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = shared.app.now();
    if let Err(why) = verify(&shared.settings, &carrier, &headers, &body, now.timestamp()) {
        tracing::warn!(%carrier, why, "webhook refused");
        return error(StatusCode::UNAUTHORIZED, why);
    }
    let scan: ScanBody = match serde_json::from_slice(&body) {
        Ok(scan) => scan,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    };
    let Some(status) = Status::parse(&scan.status) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "status: {:?} is not one of the tracking statuses",
                scan.status
            ),
        );
    };
    let occurred_at = match crate::convert::parse_time("occurred_at", &scan.occurred_at) {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
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
        actor: format!("carrier:{carrier}"),
        region: shared.region.clone(),
        now,
        request_fingerprint: None,
    };
    let scan_record = Scan {
        carrier_event_id: scan.carrier_event_id,
        status,
        location: scan.location,
        description: scan.description,
        occurred_at,
        recorded_at: now,
    };
    match shared
        .app
        .record_scan(&carrier, &scan.tracking_number, scan_record, &ctx)
        .await
    {
        Ok(outcome) => json(
            StatusCode::ACCEPTED,
            serde_json::json!({
                "shipment_id": outcome.shipment_id,
                "duplicate": outcome.duplicate,
                "status": outcome.status.map(Status::as_str),
            }),
        ),
        Err(e) => {
            let code = match e.kind() {
                ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
                ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                ErrorKind::Unavailable | ErrorKind::Internal => {
                    tracing::error!(error = %e.chain(), "webhook scan failed");
                    return error(StatusCode::SERVICE_UNAVAILABLE, "try again later");
                }
            };
            error(code, e.message().to_owned())
        }
    }
}

/// The webhook's routes.
pub fn router(app: Logistics, settings: WebhookSettings, region: String) -> Router {
    Router::new()
        .route("/v1/carriers/{carrier}/events", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Shared {
            app,
            settings,
            region,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123";

    fn settings() -> WebhookSettings {
        WebhookSettings {
            secrets: [
                ("dhl".to_owned(), vec![SECRET.to_vec()]),
                (
                    "ups".to_owned(),
                    vec![
                        b"ups-old-secret-0123".to_vec(),
                        b"ups-new-secret-0123".to_vec(),
                    ],
                ),
            ]
            .into(),
            replay_window: Duration::from_secs(300),
        }
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, value.parse().expect("header"));
        h
    }

    #[test]
    fn a_signed_body_verifies_and_nothing_else_does() {
        let s = settings();
        let body = br#"{"a":1}"#;
        let good = sign(SECRET, "dhl", 1_000, body);
        assert_eq!(verify(&s, "dhl", &headers(&good), body, 1_100), Ok(()));
        assert_eq!(
            verify(&s, "dhl", &headers(&good), br#"{"a":2}"#, 1_100),
            Err("bad signature")
        );
        assert_eq!(
            verify(
                &s,
                "dhl",
                &headers(&sign(b"another secret", "dhl", 1_000, body)),
                body,
                1_100
            ),
            Err("bad signature")
        );
        assert_eq!(
            verify(&s, "dhl", &headers(&good), body, 1_000 + 301),
            Err("signature timestamp outside the replay window")
        );
        assert_eq!(
            verify(&s, "dhl", &HeaderMap::new(), body, 1_000),
            Err("missing signature")
        );
        assert_eq!(
            verify(&s, "dhl", &headers("v1=zz"), body, 1_000),
            Err("malformed signature")
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = good.replace("t=1000", "t=1100");
        assert_eq!(
            verify(&s, "dhl", &headers(&moved), body, 1_100),
            Err("bad signature")
        );
        // Extreme timestamps are outside the window, not an overflow.
        for t in ["t=-9223372036854775808", "t=9223372036854775807"] {
            let extreme = good.replace("t=1000", t);
            assert_eq!(
                verify(&s, "dhl", &headers(&extreme), body, 1_100),
                Err("signature timestamp outside the replay window")
            );
        }
    }

    #[test]
    fn a_carrier_signs_for_itself_only_and_two_secrets_work_while_it_rotates() {
        let s = settings();
        let body = br#"{"a":1}"#;
        // DHL's secret, claiming to be UPS: the carrier's name is signed.
        let as_dhl = sign(SECRET, "dhl", 1_000, body);
        assert_eq!(
            verify(&s, "ups", &headers(&as_dhl), body, 1_000),
            Err("bad signature")
        );
        let as_ups_with_dhls_key = sign(SECRET, "ups", 1_000, body);
        assert_eq!(
            verify(&s, "ups", &headers(&as_ups_with_dhls_key), body, 1_000),
            Err("bad signature")
        );
        for secret in [&b"ups-old-secret-0123"[..], b"ups-new-secret-0123"] {
            let signed = sign(secret, "ups", 1_000, body);
            assert_eq!(verify(&s, "ups", &headers(&signed), body, 1_000), Ok(()));
        }
        // A carrier with no secret configured is refused like a bad signature.
        let stranger = sign(SECRET, "fedex", 1_000, body);
        assert_eq!(
            verify(&s, "fedex", &headers(&stranger), body, 1_000),
            Err("bad signature")
        );
    }
}
