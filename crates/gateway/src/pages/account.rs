//! The customer's rights over their data: a copy of what every service holds
//! about them (JSON, machine-readable), and its erasure, with each service's
//! receipt saying what was erased, what is kept and why, and what it waits for.

use aftersales_proto::privacy as ppb;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;

use aftersales_runtime::privacy::data_json;

use super::{App, LangQuery, Visit, authorized, form_field};

/// One service's receipt, as the page shows it. Its words are the service's
/// own (in English), so the page marks their language.
#[derive(Debug, Serialize)]
struct ReceiptView {
    service: String,
    done: bool,
    at: String,
    erased: Vec<String>,
    kept: Vec<(String, String)>,
    waiting_for: Vec<String>,
}

fn receipt_view(app: &App, language: &str, r: &ppb::ErasureReceipt) -> ReceiptView {
    let done = r.state == i32::from(ppb::ErasureState::Done);
    ReceiptView {
        service: r.service.clone(),
        done,
        at: app.moment(
            language,
            if done {
                r.erased_at.as_ref()
            } else {
                r.requested_at.as_ref()
            },
        ),
        erased: r
            .erased
            .iter()
            .map(|e| format!("{} ({})", e.what, e.count))
            .collect(),
        kept: r
            .kept
            .iter()
            .map(|k| (k.what.clone(), k.why.clone()))
            .collect(),
        waiting_for: r
            .waiting_for
            .iter()
            .map(|o| format!("{} {}", o.what, o.id))
            .collect(),
    }
}

/// What every service holds about `customer`, service by service.
async fn exports(
    app: &App,
    customer: &str,
    token: &str,
) -> Result<Vec<ppb::CustomerData>, tonic::Status> {
    let mut all = Vec::with_capacity(app.inner.privacy.len());
    for (_, client) in &app.inner.privacy {
        let request = ppb::ExportCustomerDataRequest {
            customer_id: customer.to_owned(),
        };
        let data = client
            .clone()
            .export_customer_data(authorized(request, token))
            .await?;
        all.push(data.into_inner());
    }
    Ok(all)
}

fn data_page(
    app: &App,
    visit: &Visit,
    status: StatusCode,
    receipts: &[ppb::ErasureReceipt],
    notice: Option<String>,
) -> Response {
    let title = app.t(visit.language, "data-title", &[]);
    let receipts: Vec<_> = receipts
        .iter()
        .map(|r| receipt_view(app, visit.language, r))
        .collect();
    app.page(
        visit,
        status,
        &title,
        "account_data.html",
        minijinja::context! {
            title => &title,
            receipts => receipts,
            notice => notice,
        },
    )
}

pub async fn page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    // An erasure asked for before shows where it stands.
    match exports(&app, &session.person.subject, &token).await {
        Ok(all) => {
            let receipts: Vec<_> = all.into_iter().filter_map(|d| d.erasure).collect();
            data_page(&app, &visit, StatusCode::OK, &receipts, None)
        }
        Err(status) => app.refused(&visit, &status),
    }
}

/// A copy of everything, as one JSON file to keep.
pub async fn export(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let customer = session.person.subject.clone();
    let all = match exports(&app, &customer, &token).await {
        Ok(all) => all,
        Err(status) => return app.refused(&visit, &status),
    };
    #[allow(clippy::disallowed_methods)] // when the copy was made, for its reader
    let now = chrono::Utc::now();
    let services: Vec<serde_json::Value> = all.iter().map(data_json).collect();
    let body = serde_json::json!({
        "customer_id": customer,
        "exported_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "services": services,
    });
    let file = format!(
        "attachment; filename=\"aftersales-data-{}.json\"",
        now.date_naive()
    );
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&file) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Erasure, asked of every service at once: each answers with its receipt.
pub async fn erase(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    if form_field(&form, "confirm") != "yes" {
        let notice = app.t(visit.language, "data-erase-confirm-needed", &[]);
        return data_page(
            &app,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            &[],
            Some(notice),
        );
    }
    let mut receipts = Vec::with_capacity(app.inner.privacy.len());
    for (_, client) in &app.inner.privacy {
        let request = ppb::EraseCustomerRequest {
            customer_id: session.person.subject.clone(),
        };
        match client
            .clone()
            .erase_customer(authorized(request, &token))
            .await
        {
            Ok(receipt) => receipts.push(receipt.into_inner()),
            Err(status) => return app.refused(&visit, &status),
        }
    }
    data_page(&app, &visit, StatusCode::OK, &receipts, None)
}
