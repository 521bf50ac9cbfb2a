//! A customer's devices: the list, one device's coverage in plain words (and
//! what a given fault would get), adding a phone by its IMEI, buying a plan
//! on offer, registering an accessory.

use aftersales_proto::common::CountryCode;
use aftersales_proto::repair as rpb;
use aftersales_proto::support as spb;
use aftersales_proto::warranty::{self as wpb, AccessoryKind, Remedy, SalesChannel};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::{
    App, LangQuery, Visit, authorized, by_imei, chrono_today, fault_name, fault_named,
    fault_options, imei_of, stage_message,
};

/// The countries whose terms the platform holds (a phone bought elsewhere
/// cannot be registered).
pub(super) const COUNTRIES: &[&str] = &["AU", "CN", "DE", "ES", "FR", "GB", "IN", "IT", "US", "ZA"];
/// Payment methods the sandbox provider takes (a production checkout hands
/// the page its own method token instead).
const PAYMENT_METHODS: &[&str] = &["sandbox-ok", "sandbox-pending", "sandbox-declined"];

/// The name a proto enum value is shown by: `FAULT_CATEGORY_LIQUID_DAMAGE` is `liquid-damage`.
fn slug(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix)
        .to_ascii_lowercase()
        .replace('_', "-")
}

#[derive(Debug, Serialize)]
struct DeviceCard {
    model: String,
    imei: String,
    coverage: Vec<String>,
    repairs: Vec<RepairLink>,
}

#[derive(Debug, Serialize)]
struct RepairLink {
    order_id: String,
    stage: String,
}

/// Whole months from `from` to `to` (ISO dates), when `to` falls on the same
/// day of the month (as a term counted in months does).
fn months_between(from: &str, to: &str) -> Option<i32> {
    use chrono::Datelike as _;
    let from = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").ok()?;
    let to = chrono::NaiveDate::parse_from_str(to, "%Y-%m-%d").ok()?;
    let months =
        (to.year() - from.year()) * 12 + to.month().cast_signed() - from.month().cast_signed();
    (months > 0).then_some(months)
}

/// The device's coverage in plain words, one sentence per layer, each citing
/// its terms and dates.
fn coverage_words(app: &App, language: &str, d: &wpb::Device) -> Vec<String> {
    let date = |iso: &str| app.date(language, iso);
    let policy = format!("{} v{}", d.policy_id, d.policy_version);
    if d.voided {
        return vec![app.t(language, "device-voided", &[])];
    }
    let mut words = Vec::new();
    let span = |id: &str, end: &str| {
        let months = months_between(&d.purchase_date, end)
            .map(|m| m.to_string())
            .unwrap_or_default();
        app.t(
            language,
            id,
            &[
                ("policy", &policy),
                ("months", &months),
                ("from", &date(&d.purchase_date)),
                ("until", &date(end)),
            ],
        )
    };
    words.push(span("coverage-maker", &d.base_warranty_end));
    if !d.legal_guarantee_end.is_empty() {
        words.push(span("coverage-legal", &d.legal_guarantee_end));
    }
    if let Some(plan) = &d.extended_plan {
        words.push(app.t(
            language,
            "coverage-plan",
            &[
                ("plan", &plan.plan_id),
                ("until", &date(&plan.coverage_end)),
            ],
        ));
    }
    if let Some(pending) = &d.pending_plan {
        words.push(app.t(
            language,
            "coverage-plan-pending",
            &[("plan", &pending.plan_id)],
        ));
    }
    if d.purchase_date_declared {
        words.push(app.t(language, "coverage-declared", &[]));
    }
    words
}

pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let listed = match app.devices_of(&session.person.subject, &token).await {
        Ok(listed) => listed,
        Err(status) => return app.refused(&visit, &status),
    };
    let cards = futures::future::join_all(listed.into_iter().map(|summary| {
        let (app, token, language) = (app.clone(), token.clone(), visit.language);
        async move {
            let mut repair = app.inner.repair.clone();
            let imei = imei_of(summary.device_id.as_ref());
            let (device, repairs) = futures::join!(
                app.inner.warranties.device(&imei, &token),
                repair.list_repairs_by_device(authorized(
                    rpb::ListRepairsByDeviceRequest {
                        device_id: summary.device_id.clone(),
                        ..Default::default()
                    },
                    &token,
                ))
            );
            let coverage = device.map_or_else(
                |_| vec![app.t(language, "error-text", &[])],
                |(d, _)| coverage_words(&app, language, &d),
            );
            DeviceCard {
                model: summary.model,
                imei,
                coverage,
                repairs: repairs
                    .map(|r| r.into_inner().repairs)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| RepairLink {
                        stage: app.t(
                            language,
                            stage_message(rpb::Stage::try_from(r.stage).unwrap_or_default()),
                            &[],
                        ),
                        order_id: r.order_id,
                    })
                    .collect(),
            }
        }
    }))
    .await;
    let title = app.t(visit.language, "devices-title", &[]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "devices.html",
        minijinja::context! { devices => cards },
    )
}

#[derive(Debug, Deserialize)]
pub struct DeviceQuery {
    lang: Option<String>,
    /// A fault to ask about: what would it get?
    fault: Option<String>,
    /// The day it appeared (YYYY-MM-DD); today when empty.
    since: Option<String>,
}

pub async fn device(
    State(app): State<App>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Query(query): Query<DeviceQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let asked = Asked {
        fault: query.fault.as_deref(),
        since: query.since.as_deref().map(str::trim).unwrap_or_default(),
    };
    device_page(&app, &visit, &number, &asked, StatusCode::OK, None).await
}

/// A question about a fault: which, and since when.
#[derive(Debug, Default)]
struct Asked<'a> {
    fault: Option<&'a str>,
    since: &'a str,
}

async fn device_page(
    app: &App,
    visit: &Visit,
    number: &str,
    question: &Asked<'_>,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    let Some((_, token)) = app.signed_in(visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    if number.len() > 32 {
        return app.not_found(visit);
    }
    let language = visit.language;
    let (device, mut answered_by) = match app.inner.warranties.device(number, &token).await {
        Ok(found) => found,
        Err(status) => return app.refused(visit, &status),
    };
    // What the asked-about fault would get on the day it appeared, as known
    // now (not recorded), from the region that knew the device; a refused
    // date is said as such.
    let asked = question.fault.and_then(fault_named);
    let answer = match asked {
        Some(fault) => Some(
            answered_by
                .check_coverage(authorized(
                    wpb::CheckCoverageRequest {
                        device_id: device.device_id.clone(),
                        fault_category: fault.into(),
                        fault_date: question.since.to_owned(),
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .map(|d| decision_words(app, language, &d.into_inner())),
        ),
        None => None,
    };
    let (answer, notice) = match answer {
        Some(Ok(words)) => (Some(words), notice),
        Some(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
            (None, Some(app.not_done(language, &status)))
        }
        Some(Err(_)) | None => (None, notice),
    };
    let offers: Vec<_> = device
        .plan_offers
        .iter()
        .map(|o| {
            minijinja::context! {
                plan_id => &o.plan_id,
                words => app.t(language, "plan-offer", &[
                    ("plan", &o.plan_id),
                    ("months", &o.extra_months.to_string()),
                    ("price", &app.money(language, o.price.as_ref())),
                    ("until", &app.date(language, &o.coverage_end)),
                    ("buyby", &app.date(language, &o.buy_by)),
                ]),
            }
        })
        .collect();
    let accessories: Vec<_> = device
        .accessories
        .iter()
        .map(|a| {
            let kind = AccessoryKind::try_from(a.kind)
                .map(|k| slug(k.as_str_name(), "ACCESSORY_KIND_"))
                .unwrap_or_default();
            minijinja::context! {
                serial => &a.serial,
                kind => app.t(language, &format!("accessory-{kind}"), &[]),
                until => app.date(language, &a.coverage_end),
            }
        })
        .collect();
    let kinds: Vec<_> = (1..=4)
        .filter_map(|v| AccessoryKind::try_from(v).ok())
        .map(|k| {
            let name = slug(k.as_str_name(), "ACCESSORY_KIND_");
            minijinja::context! {
                value => &name,
                label => app.t(language, &format!("accessory-{name}"), &[]),
            }
        })
        .collect();
    let methods: Vec<_> = PAYMENT_METHODS
        .iter()
        .map(|m| minijinja::context! { value => m, label => app.t(language, &format!("payment-{m}"), &[]) })
        .collect();
    let number = imei_of(device.device_id.as_ref());
    let software = software_words(app, language, &number, &token).await;
    let title = device.model.clone();
    app.page(
        visit,
        status,
        &title,
        "device.html",
        minijinja::context! {
            model => &device.model,
            imei => &number,
            coverage => coverage_words(app, language, &device),
            faults => fault_options(app, language),
            asked => asked.map(fault_name),
            since => question.since,
            answer => answer,
            offers => offers,
            methods => methods,
            accessories => accessories,
            kinds => kinds,
            today => chrono_today(),
            notice => notice,
            software => software,
        },
    )
}

/// What the phone's last reported build means: current or the build to
/// install (and what it fixes), and until when the model gets updates. `None`
/// when support cannot say now: the rest of the page does not wait on it.
async fn software_words(
    app: &App,
    language: &str,
    imei: &str,
    token: &str,
) -> Option<minijinja::Value> {
    let asked = app
        .inner
        .support
        .clone()
        .get_software_status(authorized(
            spb::GetSoftwareStatusRequest {
                device_imei: imei.to_owned(),
                language: language.to_owned(),
            },
            token,
        ))
        .await;
    let status = match asked {
        Ok(status) => status.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Some(minijinja::context! {
                lines => vec![app.t(language, "software-unreported", &[])],
            });
        }
        Err(status) => {
            tracing::debug!(code = ?status.code(), "software status unavailable");
            return None;
        }
    };
    let mut lines = vec![if status.current {
        app.t(language, "software-current", &[("build", &status.build)])
    } else {
        app.t(
            language,
            "software-behind",
            &[("build", &status.build), ("latest", &status.latest_build)],
        )
    }];
    lines.extend(status.fixes_waiting.iter().map(|f| {
        app.t(
            language,
            "software-fix",
            &[("issue", &f.title), ("build", &f.build)],
        )
    }));
    lines.push(match (status.supported, status.supported_until.as_str()) {
        (true, "") => app.t(language, "software-supported", &[]),
        (true, until) => app.t(
            language,
            "software-supported-until",
            &[("until", &app.date(language, until))],
        ),
        (false, until) => app.t(
            language,
            "software-unsupported",
            &[("until", &app.date(language, until))],
        ),
    });
    Some(minijinja::context! { lines => lines, current => status.current })
}

/// A coverage decision as the customer reads it.
fn decision_words(app: &App, language: &str, d: &wpb::CoverageDecision) -> minijinja::Value {
    let remedy = Remedy::try_from(d.remedy)
        .ok()
        .filter(|r| !matches!(r, Remedy::Unspecified | Remedy::None))
        .map(|r| {
            app.t(
                language,
                &format!("remedy-{}", slug(r.as_str_name(), "REMEDY_")),
                &[],
            )
        });
    minijinja::context! {
        covered => d.covered,
        headline => app.t(
            language,
            if d.covered { "answer-covered" } else { "answer-not-covered" },
            &[("date", &app.date(language, &d.decided_for))],
        ),
        reason => app.t(language, &format!("reason-{}", d.reason.replace('_', "-")), &[]),
        remedy => remedy,
        policy => format!("{} v{}", d.policy_id, d.policy_version),
        rule => d.rule.as_ref().map(|r| rule_words(app, language, r)),
        source => d.rule.as_ref().and_then(|r| r.source.as_ref()).map(|s| app.t(
            language,
            "answer-source",
            &[
                ("title", &s.title),
                ("reference", &s.reference),
                ("checked", &app.date(language, &s.checked)),
            ],
        )),
        source_url => d.rule.as_ref().and_then(|r| r.source.as_ref()).map(|s| s.url.clone()).filter(|u| u.starts_with("https://")),
        legal => d.under_legal_guarantee.then(|| app.t(language, "answer-legal", &[])),
    }
}

/// "Rule: the legal guarantee, 1 Feb 2025 to 1 Feb 2028."
fn rule_words(app: &App, language: &str, rule: &wpb::CoverageRule) -> String {
    let name = app.t(
        language,
        &format!("rule-{}", rule.figure.replace(['.', '_'], "-")),
        &[],
    );
    let dates = if rule.starts.is_empty() {
        app.t(
            language,
            "rule-until",
            &[("until", &app.date(language, &rule.ends))],
        )
    } else {
        app.t(
            language,
            "rule-span",
            &[
                ("from", &app.date(language, &rule.starts)),
                ("until", &app.date(language, &rule.ends)),
            ],
        )
    };
    app.t(
        language,
        "answer-rule",
        &[("rule", &name), ("dates", &dates)],
    )
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct AddForm {
    #[serde(skip_serializing)]
    pub(super) csrf: String,
    imei: String,
    model: String,
    purchased: String,
    country: String,
    channel: String,
}

/// What the add-a-phone form asks warranty, for `customer_id`; `None` when
/// the IMEI is not one (its check digit is checked here and by warranty).
pub(super) fn registration(
    form: &AddForm,
    customer_id: &str,
) -> Option<wpb::RegisterDeviceRequest> {
    let number: String = form.imei.chars().filter(|c| !c.is_whitespace()).collect();
    aftersales_core::types::Imei::parse("imei", &number).ok()?;
    let channel = SalesChannel::from_str_name(&format!(
        "SALES_CHANNEL_{}",
        form.channel.replace('-', "_").to_ascii_uppercase()
    ))
    .unwrap_or(SalesChannel::Unspecified);
    Some(wpb::RegisterDeviceRequest {
        device_id: Some(by_imei(&number)),
        model: form.model.trim().chars().take(100).collect(),
        purchase_date: form.purchased.trim().chars().take(10).collect(),
        country_of_purchase: Some(CountryCode {
            value: form.country.trim().chars().take(2).collect(),
        }),
        channel: channel.into(),
        customer_id: customer_id.to_owned(),
        ..Default::default()
    })
}

/// The sales channels a phone may be registered under, for a `<select>`.
pub(super) fn sales_channels(app: &App, language: &str) -> Vec<minijinja::Value> {
    (1..=5)
        .filter_map(|v| SalesChannel::try_from(v).ok())
        .map(|c| {
            let name = slug(c.as_str_name(), "SALES_CHANNEL_");
            minijinja::context! {
                value => &name,
                label => app.t(language, &format!("sales-{name}"), &[]),
            }
        })
        .collect()
}

fn add_form(
    app: &App,
    visit: &Visit,
    status: StatusCode,
    notice: Option<String>,
    typed: Option<&AddForm>,
) -> Response {
    let language = visit.language;
    let channels = sales_channels(app, language);
    let title = app.t(language, "add-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "add_device.html",
        minijinja::context! {
            countries => COUNTRIES,
            channels => channels,
            today => chrono_today(),
            notice => notice,
            typed => typed.unwrap_or(&AddForm::default()),
        },
    )
}

pub async fn add_page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    add_form(&app, &visit, StatusCode::OK, None, None)
}

pub async fn add(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, &form.csrf).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let Some(request) = registration(&form, &session.person.subject) else {
        let notice = app.t(visit.language, "add-imei-invalid", &[]);
        return add_form(
            &app,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(notice),
            Some(&form),
        );
    };
    let number = imei_of(request.device_id.as_ref());
    let registered = match app
        .inner
        .warranties
        .home_of_country(request.country_of_purchase.as_ref())
    {
        Ok(mut home) => home.register_device(authorized(request, &token)).await,
        Err(status) => Err(status),
    };
    match registered {
        Ok(_) => Redirect::to(&format!("/devices/{number}")).into_response(),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::AlreadyExists
                    | tonic::Code::FailedPrecondition
            ) =>
        {
            let notice = app.not_done(visit.language, &status);
            add_form(
                &app,
                &visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
                Some(&form),
            )
        }
        Err(status) => app.refused(&visit, &status),
    }
}

#[derive(Debug, Deserialize)]
pub struct PlanForm {
    csrf: String,
    plan_id: String,
    payment_method: String,
}

pub async fn buy_plan(
    State(app): State<App>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Form(form): Form<PlanForm>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, &form.csrf).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    if !PAYMENT_METHODS.contains(&form.payment_method.as_str()) || form.plan_id.len() > 64 {
        return app.not_found(&visit);
    }
    let bought = match app.inner.warranties.home_of(&number, &token).await {
        Ok(mut home) => {
            home.purchase_extended_warranty(authorized(
                wpb::PurchaseExtendedWarrantyRequest {
                    device_id: Some(by_imei(&number)),
                    plan_id: form.plan_id,
                    payment_method: form.payment_method,
                },
                &token,
            ))
            .await
        }
        Err(status) => Err(status),
    };
    after_change(&app, &visit, &number, bought.map(|_| ())).await
}

#[derive(Debug, Deserialize)]
pub struct AccessoryForm {
    csrf: String,
    serial: String,
    kind: String,
    purchased: String,
}

pub async fn register_accessory(
    State(app): State<App>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Form(form): Form<AccessoryForm>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, &form.csrf).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let kind = AccessoryKind::from_str_name(&format!(
        "ACCESSORY_KIND_{}",
        form.kind.to_ascii_uppercase()
    ))
    .unwrap_or(AccessoryKind::Unspecified);
    let registered = match app.inner.warranties.home_of(&number, &token).await {
        Ok(mut home) => {
            home.register_accessory(authorized(
                wpb::RegisterAccessoryRequest {
                    device_id: Some(by_imei(&number)),
                    accessory_serial: form.serial.trim().chars().take(64).collect(),
                    kind: kind.into(),
                    purchase_date: form.purchased.trim().chars().take(10).collect(),
                    replaces_serial: String::new(),
                },
                &token,
            ))
            .await
        }
        Err(status) => Err(status),
    };
    after_change(&app, &visit, &number, registered.map(|_| ())).await
}

/// Back to the device's page, or the page again saying why the change was refused.
async fn after_change(
    app: &App,
    visit: &Visit,
    number: &str,
    result: Result<(), tonic::Status>,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/devices/{number}")).into_response(),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::AlreadyExists
            ) =>
        {
            let notice = app.not_done(visit.language, &status);
            device_page(
                app,
                visit,
                number,
                &Asked::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
            )
            .await
        }
        Err(status) => app.refused(visit, &status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_counted_in_whole_months() {
        assert_eq!(months_between("2025-03-01", "2027-03-01"), Some(24));
        assert_eq!(months_between("2025-03-01", "2025-03-01"), None);
        assert_eq!(months_between("x", "2027-03-01"), None);
        assert_eq!(
            slug("FAULT_CATEGORY_LIQUID_DAMAGE", "FAULT_CATEGORY_"),
            "liquid-damage"
        );
    }
}
