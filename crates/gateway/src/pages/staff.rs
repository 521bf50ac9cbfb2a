//! The staff console: signing in with a password (and an authenticator code
//! where the account has one), the workshop's queue by stage, and an order's
//! page offering exactly the steps its state machine takes now.

use aftersales_proto::common::Money;
use aftersales_proto::repair as rpb;
use axum::Form;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::{
    App, LangQuery, PASSCODES, STAGES, Visit, authorized, chrono_today, fault_named, fault_options,
    forbidden, form_field, imei_of, refusal_text, same_origin, stage_message, stage_name,
};
use crate::session::Person;
use aftersales_auth::Role;

/// An order older than this many days is highlighted in the queue.
const AGING_DAYS: i64 = 3;
/// Quote lines the builder offers (blank ones are left out).
const QUOTE_ROWS: usize = 4;
/// The longest text field of a staff form, as the repair service allows.
const MAX_NOTES: usize = 2000;
/// The currencies the quote builder offers: those of the countries served.
const CURRENCIES: &[&str] = &["EUR", "GBP", "USD", "INR", "CNY"];

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    #[serde(default)]
    totp: String,
}

fn sign_in_form(app: &App, visit: &Visit, status: StatusCode, message: Option<&str>) -> Response {
    let title = app.t(visit.language, "staff-sign-in-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "staff_sign_in.html",
        minijinja::context! { message => message },
    )
}

pub async fn sign_in_page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    sign_in_form(&app, &visit, StatusCode::OK, None)
}

pub async fn sign_in(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !same_origin(&headers, app.inner.secure) {
        return forbidden(&app, &visit);
    }
    let granted = app
        .inner
        .identity
        .password(
            form.username.trim(),
            &form.password,
            form.totp.trim(),
            peer.ip(),
        )
        .await;
    match granted {
        Ok(tokens) => app.start_session(&visit, tokens, Role::Technician),
        Err(refusal) => {
            let message = refusal_text(&app, &visit, refusal);
            sign_in_form(&app, &visit, StatusCode::BAD_REQUEST, Some(&message))
        }
    }
}

/// Each role's first page.
pub async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    let visit = app.visit(&headers, None);
    let Some((_, session)) = &visit.session else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    if matches!(session.person.role, Role::Technician | Role::CenterManager) {
        return Redirect::to("/staff/queue").into_response();
    }
    if session.person.role == Role::Auditor {
        return Redirect::to("/staff/audit").into_response();
    }
    if session.person.role == Role::Operator {
        return Redirect::to("/staff/operations").into_response();
    }
    if session.person.role == Role::SupportAgent {
        return Redirect::to("/staff/desk").into_response();
    }
    let title = app.t(visit.language, "staff-title", &[]);
    let role = app.t(
        visit.language,
        &format!("role-{}", session.person.role),
        &[],
    );
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "staff_home.html",
        minijinja::context! { role => role, who => &session.person.subject },
    )
}

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    center: Option<String>,
    lang: Option<String>,
}

#[derive(Debug, Serialize)]
struct QueueStage {
    label: String,
    orders: Vec<QueueEntry>,
}

#[derive(Debug, Serialize)]
struct QueueEntry {
    order_id: String,
    channel: String,
    opened_on: String,
    age_days: i64,
    aging: bool,
}

/// The center `wanted` if the person works there, else their first.
fn center_of<'a>(person: &'a Person, wanted: Option<&str>) -> Option<&'a str> {
    person
        .centers
        .iter()
        .find(|c| Some(c.as_str()) == wanted)
        .or_else(|| person.centers.first())
        .map(String::as_str)
}

fn days_since(date: &str, today: &str) -> i64 {
    match (
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d"),
        chrono::NaiveDate::parse_from_str(today, "%Y-%m-%d"),
    ) {
        (Ok(then), Ok(now)) => (now - then).num_days().max(0),
        (Err(_), _) | (_, Err(_)) => 0,
    }
}

/// The center's open orders by stage, oldest first in each.
pub async fn queue(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let Some(center) = center_of(&session.person, query.center.as_deref()) else {
        return app.message(&visit, StatusCode::OK, "queue-title", "queue-no-center");
    };
    let open = STAGES
        .iter()
        .filter(|(stage, _)| *stage != rpb::Stage::Closed);
    let listed = futures::future::join_all(open.clone().map(|(stage, _)| {
        let mut repair = app.inner.repair.clone();
        let request = authorized(
            rpb::ListRepairsByCenterRequest {
                service_center_id: center.to_owned(),
                stage: (*stage).into(),
                page_size: 200,
                page_token: String::new(),
            },
            &token,
        );
        async move { repair.list_repairs_by_center(request).await }
    }))
    .await;
    let today = chrono_today();
    let mut stages = Vec::new();
    for ((_, message), listed) in open.zip(listed) {
        let mut repairs = match listed {
            Ok(listed) => listed.into_inner().repairs,
            Err(status) => return app.refused(&visit, &status),
        };
        repairs.sort_by(|a, b| (&a.opened_on, &a.order_id).cmp(&(&b.opened_on, &b.order_id)));
        let orders: Vec<_> = repairs
            .into_iter()
            .map(|r| {
                let age_days = days_since(&r.opened_on, &today);
                QueueEntry {
                    channel: channel_label(&app, visit.language, r.channel),
                    order_id: r.order_id,
                    opened_on: app.date(visit.language, &r.opened_on),
                    age_days,
                    aging: age_days > AGING_DAYS,
                }
            })
            .collect();
        stages.push(QueueStage {
            label: app.t(visit.language, message, &[]),
            orders,
        });
    }
    let title = app.t(visit.language, "queue-title", &[]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "queue.html",
        minijinja::context! {
            center => center,
            centers => &session.person.centers,
            stages => stages,
            aging_days => AGING_DAYS,
            manager => session.person.role == Role::CenterManager,
        },
    )
}

fn channel_label(app: &App, language: &str, channel: i32) -> String {
    let id = if channel == i32::from(rpb::Channel::MailIn) {
        "channel-mail-in"
    } else {
        "channel-walk-in"
    };
    app.t(language, id, &[])
}

pub async fn order(
    State(app): State<App>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    order_page(&app, &visit, &order_id, StatusCode::OK, None, None).await
}

/// What the page offers for one action the state machine takes now.
fn action_name(action: rpb::Action) -> Option<&'static str> {
    Some(match action {
        rpb::Action::CheckIn => "check-in",
        rpb::Action::Diagnose => "diagnose",
        rpb::Action::IssueQuote => "quote",
        rpb::Action::StartRepair => "start",
        rpb::Action::ReplacePart => "part",
        rpb::Action::RecordQc => "qc",
        rpb::Action::MarkReadyForReturn => "ready",
        rpb::Action::ConfirmCollected => "hand-over",
        rpb::Action::Cancel => "cancel",
        // The customer's to give.
        rpb::Action::ApproveQuote | rpb::Action::DeclineQuote | rpb::Action::Unspecified => {
            return None;
        }
    })
}

/// Stages in which the workshop records the data-protection checklist.
const CHECKLIST_STAGES: [rpb::Stage; 6] = [
    rpb::Stage::Opened,
    rpb::Stage::AwaitingDevice,
    rpb::Stage::Received,
    rpb::Stage::Diagnosed,
    rpb::Stage::Quoted,
    rpb::Stage::Approved,
];

/// What of the customer's was opened, as the page shows it.
fn opened_view(app: &App, language: &str, opened: &rpb::PersonalData) -> minijinja::Value {
    let address = opened.contact_address.as_ref().map(|a| {
        let mut lines = vec![a.recipient.clone()];
        lines.extend(a.lines.iter().cloned());
        lines.push(format!("{} {}", a.postal_code, a.city).trim().to_owned());
        let country = a
            .country
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default();
        lines.extend([a.region.clone(), country, a.phone.clone()]);
        lines.retain(|l| !l.is_empty());
        lines
    });
    let checklist = opened
        .data_protection
        .as_ref()
        .map(|d| super::checklist_summary(app, language, d));
    minijinja::context! {
        symptoms => &opened.symptoms,
        address => address,
        checklist => checklist,
    }
}

async fn order_page(
    app: &App,
    visit: &Visit,
    order_id: &str,
    status: StatusCode,
    notice: Option<String>,
    opened: Option<rpb::PersonalData>,
) -> Response {
    let Some((_, token)) = app.signed_in(visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let order = match app.order(order_id, &token).await {
        Ok(order) => order,
        Err(status) => return app.refused(visit, &status),
    };
    let language = visit.language;
    let timeline = app.timeline(&order.order_id, &token, language).await;
    let stage = rpb::Stage::try_from(order.stage).unwrap_or_default();
    let actions: Vec<&str> = order.allowed_actions().filter_map(action_name).collect();
    let faults = fault_options(app, language);
    let coverage = order.coverage.as_ref().map(|c| {
        if !c.decided {
            app.t(language, "coverage-pending", &[])
        } else if c.covered {
            app.t(
                language,
                "coverage-covered",
                &[("policy", &c.policy_id), ("reason", &c.reason)],
            )
        } else {
            app.t(
                language,
                "coverage-not-covered",
                &[("policy", &c.policy_id), ("reason", &c.reason)],
            )
        }
    });
    let title = app.t(language, "repair-title", &[("order", &order.order_id)]);
    app.page(
        visit,
        status,
        &title,
        "staff_order.html",
        minijinja::context! {
            title => &title,
            order_id => &order.order_id,
            stage => stage_name(stage),
            stage_label => app.t(language, stage_message(stage), &[]),
            imei => imei_of(order.device_id.as_ref()),
            channel => channel_label(app, language, order.channel),
            center => &order.service_center_id,
            customer => &order.customer_id,
            coverage => coverage,
            quote => order.quote.as_ref().map(|q| super::quote_view(app, language, q, false)),
            timeline => timeline,
            photos => &order.condition_photos,
            mail_in => order.channel == i32::from(rpb::Channel::MailIn),
            opened => opened.as_ref().map(|o| opened_view(app, language, o)),
            purposes => purpose_options(app, language),
            passcodes => PASSCODES
                .iter()
                .map(|(_, name)| minijinja::context! {
                    value => name,
                    label => app.t(language, &format!("passcode-{name}"), &[]),
                })
                .collect::<Vec<_>>(),
            checklist_open => CHECKLIST_STAGES.contains(&stage),
            actions => actions,
            faults => faults,
            currencies => CURRENCIES,
            rows => (1..=QUOTE_ROWS).collect::<Vec<_>>(),
            notice => notice,
            max_notes => MAX_NOTES,
        },
    )
}

/// `69`, `69.5`, `69.00` or `69,00` as minor units (two decimals).
fn minor_units(amount: &str) -> Option<i64> {
    let amount = amount.trim().replace(',', ".");
    let (whole, fraction) = amount.split_once('.').unwrap_or((&amount, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

/// Why a staff form cannot be sent as it is: shown on the order's page.
#[derive(Debug)]
struct FormError(&'static str);

fn quote_request(
    order_id: &str,
    form: &[(String, String)],
    today: chrono::DateTime<chrono::Utc>,
) -> Result<rpb::IssueQuoteRequest, FormError> {
    let currency = form_field(form, "currency");
    if !CURRENCIES.contains(&currency) {
        return Err(FormError("form-currency"));
    }
    let mut lines = Vec::new();
    for row in 1..=QUOTE_ROWS {
        let description = form_field(form, &format!("description{row}"));
        let amount = form_field(form, &format!("amount{row}"));
        if description.is_empty() && amount.is_empty() {
            continue;
        }
        let minor_units = minor_units(amount).ok_or(FormError("form-amount"))?;
        if description.is_empty() || description.len() > 200 {
            return Err(FormError("form-description"));
        }
        lines.push(rpb::QuoteLine {
            description: description.to_owned(),
            is_labour: form_field(form, &format!("kind{row}")) == "labour",
            amount: Some(Money {
                minor_units,
                currency: currency.to_owned(),
            }),
        });
    }
    if lines.is_empty() {
        return Err(FormError("form-no-lines"));
    }
    let days: i64 = form_field(form, "valid_days")
        .parse()
        .unwrap_or(14)
        .clamp(1, 90);
    let until = today + chrono::TimeDelta::days(days);
    Ok(rpb::IssueQuoteRequest {
        order_id: order_id.to_owned(),
        lines,
        valid_until: Some(prost_types::Timestamp {
            seconds: until.timestamp(),
            nanos: 0,
        }),
    })
}

/// The text of a notes field, if it fits.
fn notes(form: &[(String, String)], name: &str) -> Result<String, FormError> {
    let text = form_field(form, name);
    if text.len() > MAX_NOTES {
        Err(FormError("form-too-long"))
    } else {
        Ok(text.to_owned())
    }
}

/// A list typed as `a, b, c`.
fn list(form: &[(String, String)], name: &str) -> Result<Vec<String>, FormError> {
    let items: Vec<String> = form_field(form, name)
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    if items.len() > 20 || items.iter().any(|item| item.len() > 100) {
        return Err(FormError("form-too-long"));
    }
    Ok(items)
}

/// One step on an order, from its page; back to the page, or the page again
/// with the reason it was refused.
pub async fn act(
    State(app): State<App>,
    headers: HeaderMap,
    Path((order_id, action)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let technician = session.person.subject.clone();
    let reference = || rpb::OrderRef {
        order_id: order_id.clone(),
    };
    let mut repair = app.inner.repair.clone();
    if action == "open-data" {
        return open_data(&app, &visit, &order_id, &form, &token).await;
    }
    #[allow(clippy::disallowed_methods)] // the quote's validity starts now
    let now = chrono::Utc::now();
    let done = async {
        let answer = match action.as_str() {
            "data-protection" => {
                let passcode = PASSCODES
                    .iter()
                    .find(|(_, name)| *name == form_field(&form, "passcode"))
                    .map(|(p, _)| *p)
                    .ok_or(FormError("form-passcode-unknown"))?;
                let request = rpb::RecordDataProtectionRequest {
                    order_id: order_id.clone(),
                    data_protection: Some(rpb::DataProtection {
                        backup_reminded: !form_field(&form, "backup").is_empty(),
                        find_my_device_off: !form_field(&form, "find_my_off").is_empty(),
                        passcode: passcode.into(),
                    }),
                };
                repair
                    .record_data_protection(authorized(request, &token))
                    .await
            }
            "diagnose" => {
                let fault = fault_named(form_field(&form, "fault"))
                    .ok_or(FormError("form-fault-unknown"))?;
                let request = rpb::DiagnoseRequest {
                    order_id: order_id.clone(),
                    fault_category: fault.into(),
                    fault_codes: list(&form, "codes")?,
                    technician: technician.clone(),
                };
                repair.diagnose(authorized(request, &token)).await
            }
            "quote" => {
                let request = quote_request(&order_id, &form, now)?;
                repair.issue_quote(authorized(request, &token)).await
            }
            "start" => {
                let request = rpb::StartRepairRequest {
                    order_id: order_id.clone(),
                    technician: technician.clone(),
                };
                repair.start_repair(authorized(request, &token)).await
            }
            "part" => {
                let request = rpb::ReplacePartRequest {
                    order_id: order_id.clone(),
                    part_number: form_field(&form, "part_number").to_owned(),
                    old_serial: form_field(&form, "old_serial").to_owned(),
                    new_serial: form_field(&form, "new_serial").to_owned(),
                };
                repair.replace_part(authorized(request, &token)).await
            }
            "qc" => {
                let request = rpb::RecordQcResultRequest {
                    order_id: order_id.clone(),
                    passed: form_field(&form, "result") == "passed",
                    notes: notes(&form, "notes")?,
                };
                repair.record_qc_result(authorized(request, &token)).await
            }
            "ready" => {
                repair
                    .mark_ready_for_return(authorized(reference(), &token))
                    .await
            }
            "hand-over" => {
                repair
                    .confirm_collected(authorized(reference(), &token))
                    .await
            }
            "cancel" => {
                let request = rpb::CancelRepairRequest {
                    order_id: order_id.clone(),
                    reason: notes(&form, "reason")?,
                };
                repair.cancel_repair(authorized(request, &token)).await
            }
            _ => return Err(FormError("not-found-text")),
        };
        Ok(answer)
    }
    .await;
    finish(&app, &visit, &order_id, done).await
}

/// The order's page with the customer's words, address (mail-in) and the
/// checklist opened for the purpose the form names: the repair service records
/// the opening as a step the customer sees.
async fn open_data(
    app: &App,
    visit: &Visit,
    order_id: &str,
    form: &[(String, String)],
    token: &str,
) -> Response {
    let Some(purpose) = PURPOSES
        .iter()
        .find(|p| super::purpose_name(**p) == Some(form_field(form, "purpose")))
    else {
        let notice = app.t(visit.language, "form-purpose-unknown", &[]);
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return order_page(app, visit, order_id, status, Some(notice), None).await;
    };
    let mut categories = vec![
        rpb::DataCategory::CustomerWords.into(),
        rpb::DataCategory::DataProtection.into(),
    ];
    if form_field(form, "mail_in") == "yes" {
        categories.push(rpb::DataCategory::ContactAddress.into());
    }
    let request = rpb::OpenPersonalDataRequest {
        order_id: order_id.to_owned(),
        categories,
        purpose: (*purpose).into(),
    };
    match app
        .inner
        .repair
        .clone()
        .open_personal_data(authorized(request, token))
        .await
    {
        Ok(opened) => {
            let opened = Some(opened.into_inner());
            order_page(app, visit, order_id, StatusCode::OK, None, opened).await
        }
        Err(status) => finish(app, visit, order_id, Ok(Err(status))).await,
    }
}

/// Every purpose staff may open a customer's data for, as the form offers them.
const PURPOSES: [rpb::AccessPurpose; 5] = [
    rpb::AccessPurpose::Diagnosis,
    rpb::AccessPurpose::Repair,
    rpb::AccessPurpose::ReturnShipping,
    rpb::AccessPurpose::CustomerContact,
    rpb::AccessPurpose::Complaint,
];

fn purpose_options(app: &App, language: &str) -> Vec<minijinja::Value> {
    PURPOSES
        .iter()
        .filter_map(|p| super::purpose_name(*p))
        .map(|name| {
            minijinja::context! {
                value => name,
                label => app.t(language, &format!("purpose-{name}"), &[]),
            }
        })
        .collect()
}

/// Back to the order's page after a step, or the page again with why the step
/// was refused.
async fn finish(
    app: &App,
    visit: &Visit,
    order_id: &str,
    done: Result<Result<tonic::Response<rpb::RepairOrder>, tonic::Status>, FormError>,
) -> Response {
    match done {
        Ok(Ok(_)) => Redirect::to(&format!("/staff/repairs/{order_id}")).into_response(),
        Ok(Err(status))
            if matches!(
                status.code(),
                tonic::Code::FailedPrecondition
                    | tonic::Code::InvalidArgument
                    | tonic::Code::ResourceExhausted
            ) =>
        {
            // The service's own words: they name the field or the stage.
            let notice = app.not_done(visit.language, &status);
            order_page(
                app,
                visit,
                order_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
                None,
            )
            .await
        }
        Ok(Err(status)) => app.refused(visit, &status),
        Err(FormError(message)) => {
            let notice = app.t(visit.language, message, &[]);
            order_page(
                app,
                visit,
                order_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
                None,
            )
            .await
        }
    }
}

/// The most a check-in form may carry: its photos and a little text.
pub const MAX_CHECK_IN_BYTES: usize = 8 * 768 * 1024 + 64 * 1024;

/// Check-in, with photos of the device's condition: each kept with the order
/// first (the repair service checks what it is), then named by the check-in.
pub async fn check_in(
    State(app): State<App>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    mut multipart: axum::extract::Multipart,
) -> Response {
    let mut form: Vec<(String, String)> = Vec::new();
    let mut photos: Vec<(String, Vec<u8>)> = Vec::new();
    let read = async {
        while let Some(field) = multipart.next_field().await? {
            let name = field.name().unwrap_or_default().to_owned();
            if name == "photo" {
                let content_type = field.content_type().unwrap_or_default().to_owned();
                let data = field.bytes().await?;
                // No file chosen: the browser sends an empty part.
                if !data.is_empty() {
                    photos.push((content_type, data.to_vec()));
                }
            } else {
                form.push((name, field.text().await?));
            }
        }
        Ok::<_, axum::extract::multipart::MultipartError>(())
    };
    if let Err(error) = read.await {
        tracing::info!(%error, "a check-in form could not be read");
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let (visit, _, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let mut repair = app.inner.repair.clone();
    let done = async {
        if photos.len() > 8 {
            return Err(FormError("form-too-many-photos"));
        }
        let mut ids = Vec::new();
        for (content_type, data) in photos {
            let request = rpb::AttachPhotoRequest {
                order_id: order_id.clone(),
                content_type,
                data,
            };
            match repair.attach_photo(authorized(request, &token)).await {
                Ok(photo) => ids.push(photo.into_inner().photo_id),
                Err(status) => return Ok(Err(status)),
            }
        }
        let request = rpb::CheckInDeviceRequest {
            order_id: order_id.clone(),
            condition_notes: notes(&form, "notes")?,
            photos: ids,
            liquid_indicator_tripped: form_field(&form, "liquid") == "on",
            accessories_received: list(&form, "accessories")?,
        };
        Ok(repair.check_in_device(authorized(request, &token)).await)
    }
    .await;
    finish(&app, &visit, &order_id, done).await
}

/// A photo kept with an order, for the staff who may see the order.
pub async fn photo(
    State(app): State<App>,
    headers: HeaderMap,
    Path((order_id, photo_id)): Path<(String, String)>,
) -> Response {
    let visit = app.visit(&headers, None);
    let Some((_, token)) = app.signed_in(&visit).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let request = rpb::PhotoRef { order_id, photo_id };
    match app
        .inner
        .repair
        .clone()
        .get_photo(authorized(request, &token))
        .await
    {
        Ok(photo) => {
            let photo = photo.into_inner();
            let content_type = photo.photo.map(|p| p.content_type).unwrap_or_default();
            // Only what the service sniffed as an image is served as one.
            if !matches!(
                content_type.as_str(),
                "image/jpeg" | "image/png" | "image/webp"
            ) {
                return StatusCode::NOT_FOUND.into_response();
            }
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
                ],
                photo.data,
            )
                .into_response()
        }
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Chart geometry: the width of the longest bar, and each row's height.
const CHART_WIDTH: f64 = 320.0;
/// Where the bars start, after the labels.
const CHART_LEFT: f64 = 200.0;
const ROW: u32 = 28;

/// The center's figures for its manager: walk-ins booked against capacity per
/// day, and the time each stage takes (p50 and p90), as charts with their tables.
pub async fn center(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let Some(center) = center_of(&session.person, query.center.as_deref()) else {
        return app.message(&visit, StatusCode::OK, "queue-title", "queue-no-center");
    };
    let stats = app
        .inner
        .repair
        .clone()
        .get_center_stats(authorized(
            rpb::GetCenterStatsRequest {
                service_center_id: center.to_owned(),
            },
            &token,
        ))
        .await;
    let stats = match stats {
        Ok(stats) => stats.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let language = visit.language;
    let fullest = stats
        .days
        .iter()
        .map(|d| d.capacity.max(d.booked))
        .max()
        .unwrap_or(1)
        .max(1);
    let days: Vec<_> = stats
        .days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let share = f64::from(d.booked) / f64::from(fullest);
            minijinja::context! {
                day => app.date(language, &d.day),
                open => d.open,
                booked => d.booked,
                capacity => d.capacity,
                full => d.open && d.booked >= d.capacity,
                y => u32::try_from(i).unwrap_or(0) * ROW,
                width => format!("{:.1}", share * CHART_WIDTH),
                capacity_x => format!("{:.1}", CHART_LEFT + f64::from(d.capacity) / f64::from(fullest) * CHART_WIDTH),
            }
        })
        .collect();
    let slowest = stats
        .stages
        .iter()
        .map(|s| s.p90_hours.max(s.p50_hours))
        .fold(0.0_f64, f64::max)
        .max(0.01);
    let stages: Vec<_> = stats
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let stage = rpb::Stage::try_from(s.stage).unwrap_or_default();
            minijinja::context! {
                label => app.t(language, stage_message(stage), &[]),
                p50 => format!("{:.1}", s.p50_hours),
                p90 => format!("{:.1}", s.p90_hours),
                orders => s.orders,
                y => u32::try_from(i).unwrap_or(0) * ROW,
                p50_width => format!("{:.1}", s.p50_hours / slowest * CHART_WIDTH),
                p90_width => format!("{:.1}", s.p90_hours / slowest * CHART_WIDTH),
            }
        })
        .collect();
    let quality = center_quality(&app, &token, language, center).await;
    let title = app.t(language, "center-title", &[("center", center)]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "center.html",
        minijinja::context! {
            title => &title,
            center => center,
            centers => &session.person.centers,
            days => days,
            days_height => u32::try_from(stats.days.len()).unwrap_or(0) * ROW,
            stages => stages,
            stages_height => u32::try_from(stats.stages.len()).unwrap_or(0) * ROW,
            chart_width => CHART_WIDTH,
            quality => quality,
        },
    )
}

/// The center's quality over the last eight weeks against the network's
/// medians: its flags, and per week the turnaround p90 as a chart with its
/// table. `None` where the figures cannot be had (the page shows the rest).
async fn center_quality(
    app: &App,
    token: &str,
    language: &str,
    center: &str,
) -> Option<minijinja::Value> {
    let mut repair = app.inner.repair.clone();
    let country = repair
        .get_service_center(authorized(
            rpb::GetServiceCenterRequest {
                id: center.to_owned(),
            },
            token,
        ))
        .await
        .ok()?
        .into_inner()
        .country;
    let quality = repair
        .get_network_quality(authorized(
            rpb::GetNetworkQualityRequest {
                country,
                weeks: QUALITY_WEEKS,
                by_technician: false,
                service_center_id: center.to_owned(),
            },
            token,
        ))
        .await
        .ok()?
        .into_inner();
    let pct = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{:.0}%", v * 100.0));
    let hours = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
    let flags: Vec<String> = quality
        .summary
        .iter()
        .flat_map(|row| &row.flags)
        .map(|flag| {
            let (value, median) = match flag.figure.as_str() {
                "turnaround_p90_hours" => (
                    format!("{:.0}", flag.value),
                    format!("{:.0}", flag.network_median),
                ),
                // Shown as the first-time-fix rate, which is what managers track.
                "repeat_rate" => (
                    pct(Some(1.0 - flag.value)),
                    pct(Some(1.0 - flag.network_median)),
                ),
                _ => (pct(Some(flag.value)), pct(Some(flag.network_median))),
            };
            app.t(
                language,
                &format!("quality-flag-{}", flag.figure.replace('_', "-")),
                &[("value", &value), ("median", &median)],
            )
        })
        .collect();
    let slowest = quality
        .weeks
        .iter()
        .filter_map(|w| w.figures.as_ref()?.turnaround_p90_hours)
        .fold(0.0_f64, f64::max)
        .max(0.01);
    let weeks: Vec<_> = quality
        .weeks
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let f = w.figures.clone().unwrap_or_default();
            minijinja::context! {
                week => app.date(language, &w.week),
                orders => f.orders,
                p50 => hours(f.turnaround_p50_hours),
                p90 => hours(f.turnaround_p90_hours),
                first_time_fix => pct(f.first_time_fix_rate),
                qc_failures => pct(f.qc_failure_rate),
                declined => format!("{} / {}", f.quotes_declined, f.quotes_issued),
                slow => f.parcels_slow_in + f.parcels_slow_out,
                y => u32::try_from(i).unwrap_or(0) * ROW,
                width => format!("{:.1}", f.turnaround_p90_hours.unwrap_or(0.0) / slowest * CHART_WIDTH),
            }
        })
        .collect();
    Some(minijinja::context! {
        flags => flags,
        height => u32::try_from(weeks.len()).unwrap_or(0) * ROW,
        weeks => weeks,
    })
}

/// Weeks of quality figures on a center's page.
const QUALITY_WEEKS: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_minor_units_or_refused() {
        assert_eq!(minor_units("69"), Some(6900));
        assert_eq!(minor_units("69.5"), Some(6950));
        assert_eq!(minor_units("69,05"), Some(6905));
        for bad in [
            "",
            "-1",
            "1.234",
            "abc",
            "1e3",
            ".5",
            "99999999999999999999",
        ] {
            assert_eq!(minor_units(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_quote_is_built_from_its_filled_rows_in_one_currency() {
        let form: Vec<(String, String)> = [
            ("currency", "EUR"),
            ("description1", "Display"),
            ("kind1", "part"),
            ("amount1", "129.00"),
            ("description2", "Labour"),
            ("kind2", "labour"),
            ("amount2", "40"),
            ("description3", ""),
            ("amount3", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let quote = quote_request("r-1", &form, now).map_err(|e| e.0);
        let quote = quote.as_ref().map(|q| {
            q.lines
                .iter()
                .map(|l| {
                    (
                        l.description.as_str(),
                        l.is_labour,
                        l.amount.as_ref().map(|a| a.minor_units),
                    )
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(
            quote,
            Ok(vec![
                ("Display", false, Some(12_900)),
                ("Labour", true, Some(4_000))
            ])
        );
        let mut no_currency = form.clone();
        no_currency[0].1 = "XXX".into();
        assert_eq!(
            quote_request("r-1", &no_currency, now)
                .map(|_| ())
                .map_err(|e| e.0),
            Err("form-currency")
        );
        let empty = vec![("currency".to_owned(), "EUR".to_owned())];
        assert_eq!(
            quote_request("r-1", &empty, now)
                .map(|_| ())
                .map_err(|e| e.0),
            Err("form-no-lines")
        );
    }

    #[test]
    fn a_technician_sees_only_their_own_centers() {
        let person = Person {
            subject: "tech".into(),
            role: Role::Technician,
            centers: vec!["sc-a".into(), "sc-b".into()],
        };
        assert_eq!(center_of(&person, Some("sc-b")), Some("sc-b"));
        assert_eq!(center_of(&person, Some("sc-elsewhere")), Some("sc-a"));
        assert_eq!(center_of(&person, None), Some("sc-a"));
        assert_eq!(days_since("2026-11-28", "2026-12-02"), 4);
        assert_eq!(days_since("garbage", "2026-12-02"), 0);
    }
}
