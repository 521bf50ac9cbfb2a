//! The support desk: find a customer by email, phone or a phone's IMEI; see
//! their phones (each with who did what to it), repairs and messages; and act
//! for them. Acting for a customer uses a short token the identity provider
//! exchanges for the agent's own (RFC 8693): services let the agent do what
//! the customer may, and record it as `support_agent:… for customer:…`.

use aftersales_proto::notification as npb;
use aftersales_proto::repair as rpb;
use aftersales_proto::support as spb;
use aftersales_proto::warranty as wpb;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::devices::{AddForm, COUNTRIES, registration, sales_channels};
use super::{App, LangQuery, Visit, authorized, by_imei, form_field, imei_of, stage_message};

#[derive(Debug, Deserialize)]
pub struct FindQuery {
    q: Option<String>,
    lang: Option<String>,
}

/// Longest search a person types.
const MAX_QUERY: usize = 254;

/// Customer ids as the services take them.
pub(super) fn customer_id(raw: &str) -> Option<&str> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    ok.then_some(raw)
}

pub async fn find(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<FindQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let typed = query.q.unwrap_or_default();
    let typed = typed.trim();
    let title = app.t(visit.language, "support-title", &[]);
    let page = |found: Option<Vec<String>>, notice: Option<String>| {
        app.page(
            &visit,
            StatusCode::OK,
            &title,
            "support.html",
            minijinja::context! { title => &title, q => typed, found => found, notice => notice },
        )
    };
    if typed.is_empty() {
        return page(None, None);
    }
    if typed.len() > MAX_QUERY {
        return page(None, Some(app.t(visit.language, "support-too-long", &[])));
    }
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    let found = if digits.len() == 15 && digits.bytes().all(|b| b.is_ascii_digit()) {
        // An IMEI: the phone's owner.
        let device = app
            .inner
            .warranty
            .clone()
            .get_device(authorized(
                wpb::GetDeviceRequest {
                    device_id: Some(by_imei(&digits)),
                },
                &token,
            ))
            .await;
        match device {
            Ok(device) => vec![device.into_inner().customer_id],
            Err(status) if status.code() == tonic::Code::NotFound => Vec::new(),
            Err(status) if status.code() == tonic::Code::InvalidArgument => {
                return page(None, Some(app.t(visit.language, "add-imei-invalid", &[])));
            }
            Err(status) => return app.refused(&visit, &status),
        }
    } else {
        let found = app
            .inner
            .notification
            .clone()
            .find_customers(authorized(
                npb::FindCustomersRequest {
                    address: typed.to_owned(),
                },
                &token,
            ))
            .await;
        match found {
            Ok(found) => found.into_inner().customer_ids,
            Err(status) => return app.refused(&visit, &status),
        }
    };
    page(Some(found), None)
}

#[derive(Debug, Serialize)]
struct DeviceView {
    imei: String,
    model: String,
    /// Who did what to it, oldest first: the customer, staff, or an agent for them.
    history: Vec<StepView>,
    repairs: Vec<RepairView>,
}

#[derive(Debug, Serialize)]
struct StepView {
    event: String,
    actor: String,
    at: String,
}

#[derive(Debug, Serialize)]
struct RepairView {
    order_id: String,
    stage: String,
    opened_on: String,
}

#[derive(Debug, Serialize)]
struct MessageView {
    id: String,
    subject: String,
    at: String,
    read: bool,
}

pub async fn customer(
    State(app): State<App>,
    headers: HeaderMap,
    Path(customer): Path<String>,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    customer_page(&app, &visit, &customer, StatusCode::OK, None, None).await
}

pub(super) async fn customer_page(
    app: &App,
    visit: &Visit,
    customer: &str,
    status: StatusCode,
    notice: Option<String>,
    typed: Option<&AddForm>,
) -> Response {
    let Some((_, token)) = app.signed_in(visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let Some(customer) = customer_id(customer) else {
        return app.not_found(visit);
    };
    let language = visit.language;
    let mut notification = app.inner.notification.clone();
    let mut messages_of = app.inner.notification.clone();
    let (devices, preferences, messages) = futures::join!(
        app.devices_of(customer, &token),
        notification.get_preferences(authorized(
            npb::CustomerRef {
                customer_id: customer.to_owned(),
            },
            &token,
        )),
        messages_of.list_notifications(authorized(
            npb::ListNotificationsRequest {
                customer_id: customer.to_owned(),
                page_size: 20,
                page_token: String::new(),
            },
            &token,
        )),
    );
    let devices = match devices {
        Ok(devices) => devices,
        Err(status) => return app.refused(visit, &status),
    };
    let devices = futures::future::join_all(devices.iter().map(|d| {
        device_view(
            app,
            language,
            &token,
            imei_of(d.device_id.as_ref()),
            &d.model,
        )
    }))
    .await;
    // The cases the agent's team holds or held for them.
    let cases = app
        .inner
        .support
        .clone()
        .list_cases(authorized(
            spb::ListCasesRequest {
                customer_id: customer.to_owned(),
                limit: 50,
                ..Default::default()
            },
            &token,
        ))
        .await;
    let cases: Vec<_> = cases
        .map(|c| c.into_inner().cases)
        .unwrap_or_default()
        .iter()
        .rev()
        .map(|c| {
            minijinja::context! {
                id => &c.case_id,
                reference => super::care::reference(&c.case_id),
                topic => app.t(language, &format!("care-topic-{}", super::care::category_name(c.category)), &[]),
                status => app.t(language, &format!("care-status-{}", super::care::status_name(c.status())), &[]),
                opened => app.moment(language, c.opened_at.as_ref()),
            }
        })
        .collect();
    // A customer who never set preferences has none: not an error here.
    let preferences = preferences.map(tonic::Response::into_inner).ok();
    let messages: Vec<_> = messages
        .map(|m| m.into_inner().notifications)
        .unwrap_or_default()
        .into_iter()
        .map(|n| MessageView {
            at: app.moment(language, n.created_at.as_ref()),
            id: n.notification_id,
            subject: n.subject,
            read: n.read,
        })
        .collect();
    let title = app.t(language, "support-customer", &[("customer", customer)]);
    app.page(
        visit,
        status,
        &title,
        "support_customer.html",
        minijinja::context! {
            title => &title,
            customer => customer,
            email => preferences.as_ref().map(|p| p.email.clone()),
            phone => preferences.as_ref().map(|p| p.phone.clone()),
            language => preferences.as_ref().map(|p| p.language.clone()),
            devices => devices,
            messages => messages,
            notice => notice,
            refused => status != StatusCode::OK,
            countries => COUNTRIES,
            channels => sales_channels(app, language),
            typed => typed.unwrap_or(&AddForm::default()),
            cases => cases,
            case_form => super::desk::case_form_options(app, language),
            case_country => super::care::country_for(
                preferences.as_ref().map_or(language, |p| p.language.as_str()),
            ),
        },
    )
}

async fn device_view(
    app: &App,
    language: &str,
    token: &str,
    imei: String,
    model: &str,
) -> DeviceView {
    let mut warranty = app.inner.warranty.clone();
    let mut repair = app.inner.repair.clone();
    let (history, repairs) = futures::join!(
        warranty.get_device_history(authorized(
            wpb::GetDeviceHistoryRequest {
                device_id: Some(by_imei(&imei)),
                as_of: None,
                ..Default::default()
            },
            token,
        )),
        repair.list_repairs_by_device(authorized(
            rpb::ListRepairsByDeviceRequest {
                device_id: Some(by_imei(&imei)),
                ..Default::default()
            },
            token,
        )),
    );
    DeviceView {
        history: history
            .map(|h| h.into_inner().events)
            .unwrap_or_default()
            .into_iter()
            .map(|e| StepView {
                at: app.moment(language, e.recorded_at.as_ref()),
                event: e.event_type,
                actor: e.actor,
            })
            .collect(),
        repairs: repairs
            .map(|r| r.into_inner().repairs)
            .unwrap_or_default()
            .into_iter()
            .map(|r| RepairView {
                stage: app.t(
                    language,
                    stage_message(rpb::Stage::try_from(r.stage).unwrap_or_default()),
                    &[],
                ),
                opened_on: app.date(language, &r.opened_on),
                order_id: r.order_id,
            })
            .collect(),
        model: model.to_owned(),
        imei,
    }
}

/// Registers a phone for the customer, as the agent.
pub async fn register_device(
    State(app): State<App>,
    headers: HeaderMap,
    Path(customer): Path<String>,
    Form(form): Form<AddForm>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, &form.csrf).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let Some(customer) = customer_id(&customer) else {
        return app.not_found(&visit);
    };
    let refused = |notice: String| {
        customer_page(
            &app,
            &visit,
            customer,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(notice),
            Some(&form),
        )
    };
    let Some(request) = registration(&form, customer) else {
        return refused(app.t(visit.language, "add-imei-invalid", &[])).await;
    };
    let Ok(acting) = app.inner.identity.act_for(&token, customer).await else {
        return refused(app.t(visit.language, "error-text", &[])).await;
    };
    let home = app
        .inner
        .warranties
        .home_of_country(request.country_of_purchase.as_ref());
    let registered = match home {
        Ok(mut home) => home.register_device(authorized(request, &acting)).await,
        Err(status) => Err(status),
    };
    match registered {
        Ok(_) => Redirect::to(&format!("/staff/support/customers/{customer}")).into_response(),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::AlreadyExists
                    | tonic::Code::FailedPrecondition
            ) =>
        {
            refused(app.not_done(visit.language, &status)).await
        }
        Err(status) => app.refused(&visit, &status),
    }
}

/// Delivers one of the customer's messages once more, as the agent.
pub async fn resend(
    State(app): State<App>,
    headers: HeaderMap,
    Path(customer): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let Some(customer) = customer_id(&customer) else {
        return app.not_found(&visit);
    };
    let id = form_field(&form, "notification_id");
    if id.is_empty() || id.len() > 64 {
        return app.not_found(&visit);
    }
    let resent = app
        .inner
        .notification
        .clone()
        .resend_notification(authorized(
            npb::ResendRequest {
                notification_id: id.to_owned(),
                reason: "asked at the support desk".to_owned(),
            },
            &token,
        ))
        .await;
    match resent {
        Ok(_) => {
            let notice = app.t(visit.language, "support-resent", &[]);
            customer_page(&app, &visit, customer, StatusCode::OK, Some(notice), None).await
        }
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
            ) =>
        {
            let notice = app.not_done(visit.language, &status);
            customer_page(
                &app,
                &visit,
                customer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
                None,
            )
            .await
        }
        Err(status) => app.refused(&visit, &status),
    }
}
