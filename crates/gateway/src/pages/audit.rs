//! An auditor's view of a device: every event of its warranty history and of
//! its repairs, each with its link in the hash chain, and whether both chains
//! verify; a break is shown plainly, with where it is.

use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

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
    let imei = query.imei.unwrap_or_default();
    let imei = imei.trim();
    if imei.is_empty() || imei.len() > 32 {
        return app.page(
            &visit,
            StatusCode::OK,
            &title,
            "audit.html",
            minijinja::context! { imei => imei },
        );
    }
    let id = || {
        Some(DeviceId {
            kind: Some(device_id::Kind::Imei(imei.to_owned())),
        })
    };
    let (mut warranty, mut history_of) = (app.inner.warranty.clone(), app.inner.warranty.clone());
    let (mut repair, mut repairs_of) = (app.inner.repair.clone(), app.inner.repair.clone());
    let (verified, history) = futures::join!(
        warranty.verify_device_history(authorized(
            wpb::VerifyDeviceHistoryRequest {
                device_id: id(),
                trusted_version: 0,
                trusted_hash: String::new(),
            },
            &token,
        )),
        history_of.get_device_history(authorized(
            wpb::GetDeviceHistoryRequest {
                device_id: id(),
                as_of: None,
            },
            &token,
        ))
    );
    let (verified, history) = match (verified, history) {
        (Ok(v), Ok(h)) => (v.into_inner(), h.into_inner()),
        (Err(status), _) | (_, Err(status)) => return app.refused(&visit, &status),
    };
    let (repairs_verified, repairs) = futures::join!(
        repair.verify_repair_history(authorized(
            rpb::VerifyRepairHistoryRequest { device_id: id() },
            &token,
        )),
        repairs_of.get_repair_history(authorized(
            rpb::VerifyRepairHistoryRequest { device_id: id() },
            &token,
        ))
    );
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
    // A device without repairs has no repair history: nothing to verify.
    let repair_verdict = match &repairs_verified {
        Ok(r) => {
            let r = r.get_ref();
            Some(Verdict {
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
            })
        }
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return app.refused(&visit, status),
    };
    let mut lines: Vec<Line> = history
        .events
        .into_iter()
        .map(|e| Line {
            service: "warranty",
            stream: format!("device-imei-{imei}"),
            version: e.version,
            event_type: e.event_type,
            at: app.moment(language, e.recorded_at.as_ref()),
            actor: e.actor,
            hash: e.hash,
        })
        .collect();
    if let Ok(repairs) = repairs {
        lines.extend(repairs.into_inner().events.into_iter().map(|e| Line {
            service: "repair",
            stream: format!("repair-{}", e.order_id),
            version: e.version,
            event_type: e.event_type,
            at: app.moment(language, e.recorded_at.as_ref()),
            actor: e.actor,
            hash: e.hash,
        }));
    }
    let intact = warranty_verdict.intact && repair_verdict.as_ref().is_none_or(|v| v.intact);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "audit.html",
        minijinja::context! {
            imei => imei,
            searched => true,
            intact => intact,
            warranty => warranty_verdict,
            repair => repair_verdict,
            lines => lines,
            head => verified.head_hash,
        },
    )
}
