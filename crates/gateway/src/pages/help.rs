//! Getting a phone repaired: say what is wrong, then take it to one of the
//! nearest centers (with its next free walk-in day) or send it in by mail,
//! with an address in the country's own format. Mail-in comes first where no
//! center is near, saying why.

use aftersales_core::address::{self, Part};
use aftersales_proto::common::{Address, CountryCode, GeoPoint};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::{
    App, Visit, authorized, by_imei, chrono_today, fault_name, fault_named, fault_options,
    forbidden, imei_of,
};

/// Where distances are measured from when the person does not share their
/// location: the capital of the country the phone was bought in.
const CAPITALS: &[(&str, &str, f64, f64)] = &[
    ("AU", "Canberra", -35.2809, 149.1300),
    ("CN", "北京", 39.9042, 116.4074),
    ("DE", "Berlin", 52.5200, 13.4050),
    ("ES", "Madrid", 40.4168, -3.7038),
    ("FR", "Paris", 48.8566, 2.3522),
    ("GB", "London", 51.5074, -0.1278),
    ("IN", "New Delhi", 28.6139, 77.2090),
    ("IT", "Roma", 41.9028, 12.4964),
    ("US", "Washington", 38.9072, -77.0369),
    ("ZA", "Pretoria", -25.7479, 28.2293),
];
/// Centers shown.
const NEAREST: u32 = 5;
const MAX_SYMPTOMS: usize = 2000;

#[derive(Debug, Deserialize)]
pub struct HelpQuery {
    imei: Option<String>,
    /// Filled in by a self-diagnosis walk that ended in a repair.
    fault: Option<String>,
    lang: Option<String>,
}

/// What the person said is wrong, carried from step to step in the forms.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct Problem {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    imei: String,
    #[serde(default)]
    fault: String,
    #[serde(default)]
    symptoms: String,
    /// The day the fault appeared (YYYY-MM-DD); today when empty.
    #[serde(default)]
    since: String,
    /// Where the person is, if they shared it.
    #[serde(default)]
    lat: String,
    #[serde(default)]
    lon: String,
    /// The country whose address format the mail-in form uses.
    #[serde(default)]
    country: String,
}

/// Step one: which phone, and what is wrong with it.
pub async fn start(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<HelpQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let chosen = Problem {
        imei: query.imei.unwrap_or_default(),
        fault: query
            .fault
            .as_deref()
            .and_then(fault_named)
            .map(fault_name)
            .unwrap_or_default(),
        ..Problem::default()
    };
    problem_page(&app, &visit, StatusCode::OK, &chosen, None).await
}

async fn problem_page(
    app: &App,
    visit: &Visit,
    status: StatusCode,
    problem: &Problem,
    notice: Option<String>,
) -> Response {
    let Some((session, token)) = app.signed_in(visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let listed = app.devices_of(&session.person.subject, &token).await;
    let devices: Vec<_> = match listed {
        Ok(listed) => listed
            .into_iter()
            .map(|d| {
                minijinja::context! {
                    imei => imei_of(d.device_id.as_ref()),
                    model => d.model,
                }
            })
            .collect(),
        Err(status) => return app.refused(visit, &status),
    };
    let language = visit.language;
    let faults = fault_options(app, language);
    let title = app.t(language, "help-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "help.html",
        minijinja::context! {
            devices => devices,
            faults => faults,
            problem => problem,
            notice => notice,
            max_symptoms => MAX_SYMPTOMS,
        },
    )
}

/// Step two: where to have it repaired.
pub async fn choose(
    State(app): State<App>,
    headers: HeaderMap,
    Form(problem): Form<Problem>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !app.form_allowed(&headers, &visit, &problem.csrf) {
        return forbidden(&app, &visit);
    }
    where_page(&app, &visit, StatusCode::OK, &problem, None, None).await
}

/// Why a problem cannot go on as it is, as a message id.
fn problem_error(problem: &Problem) -> Option<&'static str> {
    if fault_named(&problem.fault).is_none() {
        Some("form-fault-unknown")
    } else if problem.symptoms.trim().is_empty() || problem.symptoms.len() > MAX_SYMPTOMS {
        Some("help-symptoms-needed")
    } else if problem.imei.is_empty() || problem.imei.len() > 32 {
        Some("not-found-text")
    } else {
        None
    }
}

async fn where_page(
    app: &App,
    visit: &Visit,
    status: StatusCode,
    problem: &Problem,
    notice: Option<String>,
    address: Option<&AddressForm>,
) -> Response {
    if let Some(message) = problem_error(problem) {
        let notice = app.t(visit.language, message, &[]);
        return problem_page(
            app,
            visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            problem,
            Some(notice),
        )
        .await;
    }
    let Some((_, token)) = app.signed_in(visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let language = visit.language;
    let device = app
        .inner
        .warranty
        .clone()
        .get_device(authorized(
            wpb::GetDeviceRequest {
                device_id: Some(by_imei(&problem.imei)),
            },
            &token,
        ))
        .await;
    let device = match device {
        Ok(device) => device.into_inner(),
        Err(status) => return app.refused(visit, &status),
    };
    let bought_in = device
        .country_of_purchase
        .as_ref()
        .map(|c| c.value.clone())
        .unwrap_or_default();
    let shared = problem
        .lat
        .parse::<f64>()
        .ok()
        .zip(problem.lon.parse::<f64>().ok());
    let capital = CAPITALS.iter().find(|(c, ..)| *c == bought_in);
    let (point, from) = match (shared, capital) {
        (Some((lat, lon)), _) => ((lat, lon), None),
        (None, Some((_, city, lat, lon))) => ((*lat, *lon), Some(*city)),
        (None, None) => ((0.0, 0.0), None),
    };
    let found = app
        .inner
        .repair
        .clone()
        .find_nearest_centers(authorized(
            rpb::FindNearestCentersRequest {
                point: Some(GeoPoint {
                    latitude: point.0,
                    longitude: point.1,
                }),
                country: Some(CountryCode {
                    value: bought_in.clone(),
                }),
                limit: NEAREST,
            },
            &token,
        ))
        .await;
    let found = match found {
        Ok(found) => found.into_inner(),
        Err(status) => return app.refused(visit, &status),
    };
    let today = chrono_today();
    let centers: Vec<_> = found
        .centers
        .iter()
        .filter_map(|near| {
            let c = near.center.as_ref()?;
            let days: Vec<String> = c
                .open_days
                .iter()
                .map(|d| app.t(language, &format!("day-{d}"), &[]))
                .collect();
            let next = if near.next_walk_in_day.is_empty() {
                app.t(language, "help-no-free-day", &[])
            } else if near.next_walk_in_day == today {
                app.t(language, "help-free-today", &[])
            } else {
                app.t(
                    language,
                    "help-free-from",
                    &[("date", &app.date(language, &near.next_walk_in_day))],
                )
            };
            Some(minijinja::context! {
                id => &c.id,
                name => &c.name,
                city => &c.city,
                address => c.address.join(", "),
                distance => app.t(language, "help-distance", &[("km", &format!("{:.0}", near.distance_km))]),
                days => days.join(", "),
                hours => &c.hours,
                next => next,
                today => near.next_walk_in_day == today,
                day => &near.next_walk_in_day,
                book => (!near.next_walk_in_day.is_empty() && near.next_walk_in_day != today).then(|| {
                    app.t(language, "help-book", &[("date", &app.date(language, &near.next_walk_in_day))])
                }),
            })
        })
        .collect();
    let country = if address::format(&problem.country).is_some() {
        problem.country.clone()
    } else {
        bought_in
    };
    let mail_in_first = found.recommend_mail_in || centers.is_empty();
    let why_mail_in = mail_in_first.then(|| {
        app.t(
            language,
            "help-mail-in-why",
            &[("km", &format!("{:.0}", found.radius_km))],
        )
    });
    let title = app.t(language, "help-where-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "help_where.html",
        minijinja::context! {
            problem => problem,
            centers => centers,
            from => from.map(|city| app.t(language, "help-distances-from", &[("city", city)])),
            mail_in_first => mail_in_first,
            why_mail_in => why_mail_in,
            address => address_fields(app, language, &country, address),
            country => &country,
            countries => address::FORMATS.iter().map(|f| f.country).collect::<Vec<_>>(),
            notice => notice,
        },
    )
}

/// The mail-in address form's fields in the country's order, with its names.
fn address_fields(
    app: &App,
    language: &str,
    country: &str,
    typed: Option<&AddressForm>,
) -> Vec<minijinja::Value> {
    let Some(format) = address::format(country) else {
        return Vec::new();
    };
    let typed = typed.cloned().unwrap_or_default();
    let mut fields = Vec::new();
    for part in format.parts {
        let field = |name: &str, label: String, value: &str, required: bool, autocomplete: &str| {
            minijinja::context! {
                name => name,
                label => label,
                value => value,
                required => required,
                autocomplete => autocomplete,
            }
        };
        match part {
            Part::Recipient => fields.push(field(
                "recipient",
                app.t(language, "address-recipient", &[]),
                &typed.recipient,
                true,
                "name",
            )),
            Part::Street => {
                fields.push(field(
                    "line1",
                    app.t(language, "address-line1", &[]),
                    &typed.line1,
                    true,
                    "address-line1",
                ));
                fields.push(field(
                    "line2",
                    app.t(language, "address-line2", &[]),
                    &typed.line2,
                    false,
                    "address-line2",
                ));
            }
            Part::City => fields.push(field(
                "city",
                app.t(language, "address-city", &[]),
                &typed.city,
                true,
                "address-level2",
            )),
            Part::Region => fields.push(field(
                "region",
                app.t(
                    language,
                    &format!("address-region-{}", format.region_name),
                    &[],
                ),
                &typed.region,
                format.region_required,
                "address-level1",
            )),
            Part::PostalCode => fields.push(field(
                "postal_code",
                app.t(
                    language,
                    &format!("address-postal-{}", format.postal_name),
                    &[],
                ),
                &typed.postal_code,
                true,
                "postal-code",
            )),
        }
    }
    fields.push(minijinja::context! {
        name => "phone",
        label => app.t(language, "address-phone", &[]),
        value => typed.phone,
        required => false,
        autocomplete => "tel",
    });
    fields
}

#[derive(Debug, Deserialize)]
pub struct WalkInForm {
    #[serde(flatten)]
    problem: Problem,
    center: String,
    /// The day booked; today when empty.
    #[serde(default)]
    day: String,
}

/// Opens a walk-in repair at the chosen center.
pub async fn walk_in(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<WalkInForm>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !app.form_allowed(&headers, &visit, &form.problem.csrf) {
        return forbidden(&app, &visit);
    }
    if form.center.len() > 100 || form.day.len() > 10 {
        return app.not_found(&visit);
    }
    let walk_in = WalkIn {
        center: &form.center,
        day: &form.day,
    };
    open(&app, &visit, &form.problem, Some(walk_in), None).await
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AddressForm {
    #[serde(default)]
    recipient: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    phone: String,
}

#[derive(Debug, Deserialize)]
pub struct MailInForm {
    #[serde(flatten)]
    problem: Problem,
    #[serde(flatten)]
    address: AddressForm,
}

/// Opens a mail-in repair to the address given, once it fits its country's format.
pub async fn mail_in(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<MailInForm>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !app.form_allowed(&headers, &visit, &form.problem.csrf) {
        return forbidden(&app, &visit);
    }
    let a = &form.address;
    let country = form.problem.country.as_str();
    let lines: Vec<String> = [a.line1.trim(), a.line2.trim()]
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let too_long = [&a.recipient, &a.line1, &a.line2, &a.city]
        .iter()
        .any(|v| v.len() > 200)
        || a.phone.len() > 40;
    let checked = if a.recipient.trim().is_empty() || lines.is_empty() || a.city.trim().is_empty() {
        Err(app.t(visit.language, "address-incomplete", &[]))
    } else if too_long || address::format(country).is_none() {
        Err(app.t(visit.language, "form-too-long", &[]))
    } else {
        address::check(country, a.region.trim(), a.postal_code.trim()).map_err(|e| {
            app.t(
                visit.language,
                "staff-refused",
                &[("reason", &e.to_string())],
            )
        })
    };
    if let Err(notice) = checked {
        return where_page(
            &app,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.problem,
            Some(notice),
            Some(a),
        )
        .await;
    }
    let address = Address {
        recipient: a.recipient.trim().to_owned(),
        lines,
        city: a.city.trim().to_owned(),
        region: a.region.trim().to_owned(),
        postal_code: a.postal_code.trim().to_uppercase(),
        country: Some(CountryCode {
            value: country.to_owned(),
        }),
        phone: a.phone.trim().to_owned(),
    };
    open(&app, &visit, &form.problem, None, Some(address)).await
}

/// A walk-in at `center` on `day` (ISO; today when empty).
struct WalkIn<'a> {
    center: &'a str,
    day: &'a str,
}

/// Opens the repair: a walk-in, or a mail-in to `address`.
async fn open(
    app: &App,
    visit: &Visit,
    problem: &Problem,
    walk_in: Option<WalkIn<'_>>,
    address: Option<Address>,
) -> Response {
    let Some(fault) = fault_named(&problem.fault) else {
        return problem_page(app, visit, StatusCode::UNPROCESSABLE_ENTITY, problem, None).await;
    };
    let Some((session, token)) = app.signed_in(visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let opened = app
        .inner
        .repair
        .clone()
        .open_repair(authorized(
            rpb::OpenRepairRequest {
                device_id: Some(by_imei(&problem.imei)),
                channel: if walk_in.is_some() {
                    rpb::Channel::WalkIn
                } else {
                    rpb::Channel::MailIn
                }
                .into(),
                service_center_id: walk_in
                    .as_ref()
                    .map(|w| w.center.to_owned())
                    .unwrap_or_default(),
                customer_id: session.person.subject.clone(),
                symptoms: problem.symptoms.trim().to_owned(),
                contact_address: address,
                reported_fault: fault.into(),
                fault_date: problem.since.trim().to_owned(),
                walk_in_day: walk_in
                    .as_ref()
                    .map(|w| w.day.to_owned())
                    .unwrap_or_default(),
            },
            &token,
        ))
        .await;
    match opened {
        Ok(order) => {
            Redirect::to(&format!("/repairs/{}", order.into_inner().order_id)).into_response()
        }
        Err(status) if status.code() == tonic::Code::ResourceExhausted => {
            // Filled up since the page was shown: the fresh page has its next free day.
            let notice = app.t(visit.language, "help-full-now", &[]);
            where_page(
                app,
                visit,
                StatusCode::CONFLICT,
                problem,
                Some(notice),
                None,
            )
            .await
        }
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
            ) =>
        {
            let notice = app.not_done(visit.language, &status);
            where_page(
                app,
                visit,
                StatusCode::UNPROCESSABLE_ENTITY,
                problem,
                Some(notice),
                None,
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
    fn a_problem_needs_a_known_fault_words_and_a_phone() {
        let good = Problem {
            imei: "490154203237518".into(),
            fault: "liquid-damage".into(),
            symptoms: "it fell in the sink".into(),
            ..Problem::default()
        };
        assert_eq!(problem_error(&good), None);
        let no_fault = Problem {
            fault: "unspecified".into(),
            ..good.clone()
        };
        assert_eq!(problem_error(&no_fault), Some("form-fault-unknown"));
        let silent = Problem {
            symptoms: "  ".into(),
            ..good.clone()
        };
        assert_eq!(problem_error(&silent), Some("help-symptoms-needed"));
        let essay = Problem {
            symptoms: "x".repeat(MAX_SYMPTOMS + 1),
            ..good
        };
        assert_eq!(problem_error(&essay), Some("help-symptoms-needed"));
    }

    #[test]
    fn every_country_with_an_address_format_has_a_capital_to_measure_from() {
        for format in address::FORMATS {
            assert!(
                CAPITALS.iter().any(|(c, ..)| *c == format.country),
                "{}",
                format.country
            );
        }
    }
}
