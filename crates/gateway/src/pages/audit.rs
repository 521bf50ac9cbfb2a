//! An auditor's view of a device: every event of its warranty history and of
//! its repairs, each with its link in the hash chain, and whether both chains
//! verify; a break is shown plainly, with where it is. The same, signed, as a
//! file to keep (`crate::export`).

use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{App, authorized};

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    imei: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Serialize)]
struct Verdict {
    intact: bool,
    words: String,
}

#[derive(Debug, Serialize)]
struct Line {
    service: &'static str,
    stream: String,
    version: u64,
    event_type: String,
    at: String,
    actor: String,
    hash: String,
}

/// What the services say about a device's two chains.
struct Histories {
    warranty_verified: wpb::VerifyDeviceHistoryResponse,
    warranty: Vec<wpb::HistoryEvent>,
    /// `None`: the device was never repaired.
    repairs_verified: Option<rpb::VerifyRepairHistoryResponse>,
    repairs: Vec<rpb::RepairHistoryEvent>,
}

impl Histories {
    fn intact(&self) -> bool {
        self.warranty_verified.intact && self.repairs_verified.as_ref().is_none_or(|r| r.intact)
    }
}

/// The IMEI asked for, when it could be one.
fn asked(query: &AuditQuery) -> Option<&str> {
    let imei = query.imei.as_deref().unwrap_or_default().trim();
    (!imei.is_empty() && imei.len() <= 32).then_some(imei)
}

/// Every item of a paged list: `page` answers a page token with the page's
/// items and the next token (empty after the last).
async fn every_page<T, F, Fut>(mut page: F) -> Result<Vec<T>, tonic::Status>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let (more, next) = page(token).await?;
        items.extend(more);
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

async fn histories(app: &App, token: &str, imei: &str) -> Result<Histories, tonic::Status> {
    let id = || {
        Some(DeviceId {
            kind: Some(device_id::Kind::Imei(imei.to_owned())),
        })
    };
    let (mut warranty, history_of) = (app.inner.warranty.clone(), app.inner.warranty.clone());
    let (mut repair, repairs_of) = (app.inner.repair.clone(), app.inner.repair.clone());
    let (verified, history, repairs_verified, repairs) = futures::join!(
        warranty.verify_device_history(authorized(
            wpb::VerifyDeviceHistoryRequest {
                device_id: id(),
                trusted_version: 0,
                trusted_hash: String::new(),
            },
            token,
        )),
        every_page(|page_token| {
            let mut history_of = history_of.clone();
            async move {
                let page = history_of
                    .get_device_history(authorized(
                        wpb::GetDeviceHistoryRequest {
                            device_id: id(),
                            page_token,
                            ..Default::default()
                        },
                        token,
                    ))
                    .await?
                    .into_inner();
                Ok((page.events, page.next_page_token))
            }
        }),
        repair.verify_repair_history(authorized(
            rpb::VerifyRepairHistoryRequest { device_id: id() },
            token,
        )),
        every_page(|page_token| {
            let mut repairs_of = repairs_of.clone();
            async move {
                let page = repairs_of
                    .get_repair_history(authorized(
                        rpb::GetRepairHistoryRequest {
                            device_id: id(),
                            page_token,
                            ..Default::default()
                        },
                        token,
                    ))
                    .await?
                    .into_inner();
                Ok((page.events, page.next_page_token))
            }
        }),
    );
    // A device without repairs has no repair history: nothing to verify.
    let never_repaired = |s: &tonic::Status| s.code() == tonic::Code::NotFound;
    let repairs_verified = match repairs_verified {
        Ok(r) => Some(r.into_inner()),
        Err(status) if never_repaired(&status) => None,
        Err(status) => return Err(status),
    };
    let repairs = match repairs {
        Ok(events) => events,
        Err(status) if never_repaired(&status) => Vec::new(),
        Err(status) => return Err(status),
    };
    Ok(Histories {
        warranty_verified: verified?.into_inner(),
        warranty: history?,
        repairs_verified,
        repairs,
    })
}

pub async fn device(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let language = visit.language;
    let title = app.t(language, "audit-title", &[]);
    let Some(imei) = asked(&query) else {
        return app.page(
            &visit,
            StatusCode::OK,
            &title,
            "audit.html",
            minijinja::context! { imei => "" },
        );
    };
    let h = match histories(&app, &token, imei).await {
        Ok(h) => h,
        Err(status) => return app.refused(&visit, &status),
    };
    let verified = &h.warranty_verified;
    let warranty_verdict = Verdict {
        intact: verified.intact,
        words: if verified.intact {
            app.t(
                language,
                "audit-warranty-intact",
                &[("events", &verified.events_checked.to_string())],
            )
        } else {
            app.t(
                language,
                "audit-broken",
                &[
                    ("problem", &verified.problem),
                    ("where", &format!("v{}", verified.first_bad_version)),
                ],
            )
        },
    };
    let repair_verdict = h.repairs_verified.as_ref().map(|r| Verdict {
        intact: r.intact,
        words: if r.intact {
            app.t(
                language,
                "audit-repairs-intact",
                &[
                    ("orders", &r.orders_checked.to_string()),
                    ("events", &r.events_checked.to_string()),
                ],
            )
        } else {
            app.t(
                language,
                "audit-broken",
                &[("problem", &r.problem), ("where", &r.first_bad_order_id)],
            )
        },
    });
    let lines: Vec<Line> = h
        .warranty
        .iter()
        .map(|e| Line {
            service: "warranty",
            stream: format!("device-imei-{imei}"),
            version: e.version,
            event_type: e.event_type.clone(),
            at: app.moment(language, e.recorded_at.as_ref()),
            actor: e.actor.clone(),
            hash: e.hash.clone(),
        })
        .chain(h.repairs.iter().map(|e| Line {
            service: "repair",
            stream: format!("repair-{}", e.order_id),
            version: e.version,
            event_type: e.event_type.clone(),
            at: app.moment(language, e.recorded_at.as_ref()),
            actor: e.actor.clone(),
            hash: e.hash.clone(),
        }))
        .collect();
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "audit.html",
        minijinja::context! {
            imei => imei,
            searched => true,
            intact => h.intact(),
            warranty => warranty_verdict,
            repair => repair_verdict,
            lines => lines,
            head => &verified.head_hash,
        },
    )
}

fn rfc3339(at: Option<&prost_types::Timestamp>) -> String {
    at.and_then(|at| {
        chrono::DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).unwrap_or(0))
    })
    .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    .unwrap_or_default()
}

/// The device's history as a signed file to download: the document the page
/// shows, every event with its payload and hash, and a signature over it.
pub async fn export(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let Some(imei) = asked(&query) else {
        return app.not_found(&visit);
    };
    let h = match histories(&app, &token, imei).await {
        Ok(h) => h,
        Err(status) => return app.refused(&visit, &status),
    };
    let actor = format!("{}:{}", session.person.role, session.person.subject);
    #[allow(clippy::disallowed_methods)] // the moment of the export
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let w = &h.warranty_verified;
    let document = json!({
        "device": { "imei": imei },
        "exported_at": now,
        "exported_by": actor,
        "intact": h.intact(),
        "warranty": {
            "intact": w.intact,
            "events_checked": w.events_checked,
            "problem": w.problem,
            "first_bad_version": w.first_bad_version,
            "head_hash": w.head_hash,
            "checked_against": w.checked_against,
            "events": h.warranty.iter().map(|e| json!({
                "version": e.version,
                "event_id": e.event_id,
                "event_type": e.event_type,
                "recorded_at": rfc3339(e.recorded_at.as_ref()),
                "actor": e.actor,
                "correlation_id": e.correlation_id,
                "payload": serde_json::from_str::<serde_json::Value>(&e.payload_json)
                    .unwrap_or_else(|_| e.payload_json.clone().into()),
                "hash": e.hash,
            })).collect::<Vec<_>>(),
        },
        "repairs": {
            "verified": h.repairs_verified.as_ref().map(|r| json!({
                "intact": r.intact,
                "orders_checked": r.orders_checked,
                "events_checked": r.events_checked,
                "problem": r.problem,
                "first_bad_order_id": r.first_bad_order_id,
                "checked_against": r.checked_against,
            })),
            "events": h.repairs.iter().map(|e| json!({
                "order_id": e.order_id,
                "version": e.version,
                "event_id": e.event_id,
                "event_type": e.event_type,
                "recorded_at": rfc3339(e.recorded_at.as_ref()),
                "actor": e.actor,
                "correlation_id": e.correlation_id,
                "payload": serde_json::from_str::<serde_json::Value>(&e.payload_json)
                    .unwrap_or_else(|_| e.payload_json.clone().into()),
                "hash": e.hash,
            })).collect::<Vec<_>>(),
        },
    })
    .to_string();
    let signature = match app.inner.export_key.sign(imei, &actor, &document) {
        Ok(signature) => signature,
        Err(error) => {
            tracing::error!(%error, "signing an export failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    tracing::info!(actor = %actor, "a device's history was exported");
    let body = json!({
        "document": document,
        "signature": signature,
        "keys": "/.well-known/aftersales-export-keys",
    });
    let disposition = format!(
        "attachment; filename=\"history-{}.json\"",
        imei.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
    );
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The public keys exports are signed with.
pub async fn keys(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        app.inner.export_key.jwks().to_string(),
    )
        .into_response()
}
