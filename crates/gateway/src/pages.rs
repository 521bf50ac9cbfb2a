//! The pages and their routes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aftersales_auth::Role;
use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::logistics as lpb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
use aftersales_proto::operations::operations_client::OperationsClient;
use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_proto::privacy::privacy_client::PrivacyClient;
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::support::support_service_client::SupportServiceClient;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use axum::Form;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use futures::StreamExt as _;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::GatewayError;
use crate::access::{self, Audience, STAFF, WORKSHOP};
use crate::feeds::Change;
use crate::i18n::{LANGUAGES, Translations, negotiate};
use crate::identity::{self, Identity, Refusal, Tokens};
use crate::session::{COOKIE, LANGUAGE_COOKIE, Person, Session, Sessions, cookie};

mod account;
mod audit;
mod care;
mod desk;
mod devices;
mod help;
mod inbox;
mod operations;
mod prices;
mod quality;
mod staff;
mod support;
mod survey;

/// The longest form the pages send.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// What every response carries: scripts and styles from this origin only, no
/// inline code, no framing, no referrer leaving the site.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// The repair stages a customer follows, in order; cancelled is shown on its own.
const STAGES: &[(rpb::Stage, &str)] = &[
    (rpb::Stage::Opened, "stage-opened"),
    (rpb::Stage::AwaitingDevice, "stage-awaiting-device"),
    (rpb::Stage::Received, "stage-received"),
    (rpb::Stage::Diagnosed, "stage-diagnosed"),
    (rpb::Stage::Quoted, "stage-quoted"),
    (rpb::Stage::Approved, "stage-approved"),
    (rpb::Stage::InRepair, "stage-in-repair"),
    (rpb::Stage::QcPassed, "stage-qc-passed"),
    (rpb::Stage::ReadyForReturn, "stage-ready-for-return"),
    (rpb::Stage::Closed, "stage-closed"),
];

fn stage_message(stage: rpb::Stage) -> &'static str {
    match stage {
        rpb::Stage::Cancelled => "stage-cancelled",
        rpb::Stage::Unspecified
        | rpb::Stage::Opened
        | rpb::Stage::AwaitingDevice
        | rpb::Stage::Received
        | rpb::Stage::Diagnosed
        | rpb::Stage::Quoted
        | rpb::Stage::Approved
        | rpb::Stage::InRepair
        | rpb::Stage::QcPassed
        | rpb::Stage::ReadyForReturn
        | rpb::Stage::Closed => STAGES
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or("stage-opened", |(_, m)| m),
    }
}

/// Every page template, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("code.html", include_str!("../templates/code.html")),
    ("devices.html", include_str!("../templates/devices.html")),
    ("device.html", include_str!("../templates/device.html")),
    (
        "add_device.html",
        include_str!("../templates/add_device.html"),
    ),
    ("help.html", include_str!("../templates/help.html")),
    (
        "help_where.html",
        include_str!("../templates/help_where.html"),
    ),
    ("repair.html", include_str!("../templates/repair.html")),
    ("message.html", include_str!("../templates/message.html")),
    (
        "staff_sign_in.html",
        include_str!("../templates/staff_sign_in.html"),
    ),
    (
        "staff_home.html",
        include_str!("../templates/staff_home.html"),
    ),
    ("queue.html", include_str!("../templates/queue.html")),
    ("support.html", include_str!("../templates/support.html")),
    (
        "support_customer.html",
        include_str!("../templates/support_customer.html"),
    ),
    (
        "operations.html",
        include_str!("../templates/operations.html"),
    ),
    ("center.html", include_str!("../templates/center.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    (
        "staff_order.html",
        include_str!("../templates/staff_order.html"),
    ),
    ("inbox.html", include_str!("../templates/inbox.html")),
    (
        "preferences.html",
        include_str!("../templates/preferences.html"),
    ),
    (
        "account_data.html",
        include_str!("../templates/account_data.html"),
    ),
    ("prices.html", include_str!("../templates/prices.html")),
    ("survey.html", include_str!("../templates/survey.html")),
    ("quality.html", include_str!("../templates/quality.html")),
    ("care.html", include_str!("../templates/care.html")),
    (
        "care_case.html",
        include_str!("../templates/care_case.html"),
    ),
    ("walk.html", include_str!("../templates/walk.html")),
    ("article.html", include_str!("../templates/article.html")),
    ("desk.html", include_str!("../templates/desk.html")),
    (
        "desk_case.html",
        include_str!("../templates/desk_case.html"),
    ),
];

#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    templates: Environment<'static>,
    translations: Arc<Translations>,
    /// Each language's messages as templates read them, built once.
    words: std::collections::HashMap<&'static str, minijinja::Value>,
    sessions: Sessions,
    /// The nearest region's warranty service.
    warranty: WarrantyServiceClient<Channel>,
    /// The warranty service of every region, for a device's reads and writes.
    warranties: crate::regional::Warranties,
    repair: RepairServiceClient<Channel>,
    logistics: LogisticsServiceClient<Channel>,
    notification: NotificationServiceClient<Channel>,
    parts: PartsServiceClient<Channel>,
    support: SupportServiceClient<Channel>,
    /// Every service's backlogs and dead letters, by service name.
    operations: Vec<(&'static str, OperationsClient<Channel>)>,
    /// Every service's answer for a customer's data, by service name.
    privacy: Vec<(&'static str, PrivacyClient<Channel>)>,
    identity: Identity,
    export_key: crate::export::ExportKey,
    feeds: crate::feeds::Feeds,
    secure: bool,
}

impl App {
    pub(crate) fn new(
        translations: Arc<Translations>,
        services: crate::Services,
        identity: Identity,
        export_key: crate::export::ExportKey,
        secure: bool,
    ) -> Result<Self, GatewayError> {
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates.add_template(name, source)?;
        }
        let words = LANGUAGES
            .iter()
            .map(|(tag, _)| {
                (
                    *tag,
                    minijinja::Value::from_serialize(translations.all(tag)),
                )
            })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                templates,
                words,
                translations,
                sessions: Sessions::default(),
                warranty: WarrantyServiceClient::new(services.warranty.clone()),
                warranties: crate::regional::Warranties::new(
                    &services.warranty_url,
                    services.warranty.clone(),
                    services.regions.clone(),
                    services.ca.as_deref(),
                )?,
                feeds: crate::feeds::Feeds::new(
                    RepairServiceClient::new(services.repair.clone()),
                    LogisticsServiceClient::new(services.logistics.clone()),
                ),
                repair: RepairServiceClient::new(services.repair.clone()),
                logistics: LogisticsServiceClient::new(services.logistics.clone()),
                notification: NotificationServiceClient::new(services.notification.clone()),
                parts: PartsServiceClient::new(services.parts.clone()),
                support: SupportServiceClient::new(services.support.clone()),
                operations: services
                    .all()
                    .into_iter()
                    .map(|(name, channel)| (name, OperationsClient::new(channel)))
                    .collect(),
                privacy: services
                    .all()
                    .into_iter()
                    .map(|(name, channel)| (name, PrivacyClient::new(channel)))
                    .collect(),
                identity,
                export_key,
                secure,
            }),
        })
    }
}

/// Who reads the desk's and the centers' quality figures.
const QUALITY_READERS: &[Role] = &[
    Role::SupportAgent,
    Role::CenterManager,
    Role::Operator,
    Role::Auditor,
];

/// Who works the support desk's cases, and who reads them besides.
const DESK: &[Role] = &[Role::SupportAgent, Role::Operator];
const DESK_READERS: &[Role] = &[Role::SupportAgent, Role::Operator, Role::Auditor];

/// Every page and who it is for: the gateway's authorization table. A route
/// is added here or nowhere (a test holds to it), so none goes without a rule.
fn routes() -> Vec<(&'static str, Audience, MethodRouter<App>)> {
    use Audience::{Anyone, Customer, Staff};
    vec![
        ("/", Anyone, get(home)),
        ("/sign-in", Anyone, get(sign_in_page).post(send_code)),
        ("/sign-in/code", Anyone, post(redeem_code)),
        ("/sign-out", Anyone, post(sign_out)),
        ("/static/{file}", Anyone, get(asset)),
        ("/manifest.webmanifest", Anyone, get(manifest)),
        ("/sw.js", Anyone, get(service_worker)),
        ("/offline", Anyone, get(offline)),
        ("/prices", Anyone, get(prices::page)),
        ("/devices", Customer, get(devices::list)),
        (
            "/devices/add",
            Customer,
            get(devices::add_page).post(devices::add),
        ),
        ("/devices/{imei}", Customer, get(devices::device)),
        ("/devices/{imei}/plan", Customer, post(devices::buy_plan)),
        (
            "/devices/{imei}/accessories",
            Customer,
            post(devices::register_accessory),
        ),
        ("/repairs/{order_id}", Customer, get(repair_page)),
        ("/repairs/{order_id}/events", Customer, get(repair_events)),
        ("/repairs/{order_id}/quote", Customer, post(decide_quote)),
        ("/help", Customer, get(help::start).post(help::choose)),
        ("/help/walk-in", Customer, post(help::walk_in)),
        ("/help/mail-in", Customer, post(help::mail_in)),
        ("/repairs/{order_id}/label", Customer, get(repair_label)),
        ("/support", Customer, get(care::home).post(care::open)),
        ("/support/articles/{article_id}", Anyone, get(care::article)),
        ("/support/walks", Customer, post(care::walk)),
        (
            "/support/cases/{case_id}",
            Customer,
            get(care::case).post(care::act),
        ),
        ("/inbox", Customer, get(inbox::inbox)),
        ("/inbox/read", Customer, post(inbox::mark_read)),
        ("/inbox/events", Customer, get(inbox::unread_events)),
        (
            "/preferences",
            Customer,
            get(inbox::preferences).post(inbox::save_preferences),
        ),
        ("/account/data", Customer, get(account::page)),
        ("/account/data/export", Customer, get(account::export)),
        ("/account/data/erase", Customer, post(account::erase)),
        (
            "/staff/sign-in",
            Anyone,
            get(staff::sign_in_page).post(staff::sign_in),
        ),
        // A survey's link is its own key: no sign-in.
        (
            "/survey/{survey_id}",
            Anyone,
            get(survey::page).post(survey::answer),
        ),
        ("/staff", Staff(STAFF), get(staff::home)),
        ("/staff/quality", Staff(QUALITY_READERS), get(quality::page)),
        (
            "/staff/quality.csv",
            Staff(QUALITY_READERS),
            get(quality::csv),
        ),
        ("/staff/queue", Staff(WORKSHOP), get(staff::queue)),
        ("/staff/desk", Staff(DESK_READERS), get(desk::queue)),
        ("/staff/desk/cases", Staff(DESK), post(desk::open)),
        (
            "/staff/desk/cases/{case_id}",
            Staff(DESK_READERS),
            get(desk::case),
        ),
        (
            "/staff/desk/cases/{case_id}/act",
            Staff(DESK),
            post(desk::act),
        ),
        (
            "/staff/support",
            Staff(&[Role::SupportAgent]),
            get(support::find),
        ),
        (
            "/staff/support/customers/{customer}",
            Staff(&[Role::SupportAgent]),
            get(support::customer),
        ),
        (
            "/staff/support/customers/{customer}/devices",
            Staff(&[Role::SupportAgent]),
            post(support::register_device),
        ),
        (
            "/staff/support/customers/{customer}/resend",
            Staff(&[Role::SupportAgent]),
            post(support::resend),
        ),
        (
            "/staff/operations",
            Staff(&[Role::Operator]),
            get(operations::overview),
        ),
        (
            "/staff/operations/replay",
            Staff(&[Role::Operator]),
            post(operations::replay),
        ),
        (
            "/staff/audit",
            Staff(&[Role::Auditor, Role::Operator]),
            get(audit::device),
        ),
        (
            "/staff/audit/export",
            Staff(&[Role::Auditor, Role::Operator]),
            get(audit::export),
        ),
        (
            "/.well-known/aftersales-export-keys",
            Anyone,
            get(audit::keys),
        ),
        (
            "/staff/center",
            Staff(&[Role::CenterManager]),
            get(staff::center),
        ),
        (
            "/staff/repairs/{order_id}",
            Staff(WORKSHOP),
            get(staff::order),
        ),
        (
            "/staff/repairs/{order_id}/check-in",
            Staff(WORKSHOP),
            post(staff::check_in).layer(DefaultBodyLimit::max(staff::MAX_CHECK_IN_BYTES)),
        ),
        (
            "/staff/repairs/{order_id}/photos/{photo_id}",
            Staff(WORKSHOP),
            get(staff::photo),
        ),
        (
            "/staff/repairs/{order_id}/{action}",
            Staff(WORKSHOP),
            post(staff::act),
        ),
    ]
}

pub fn router(app: App) -> axum::Router {
    let mut router = axum::Router::new();
    for (path, audience, handler) in routes() {
        let guard = axum::middleware::from_fn_with_state((app.clone(), audience), access::guard);
        router = router.route(path, handler.route_layer(guard));
    }
    router
        .fallback(not_found_anywhere)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        // Not no-referrer: with it, browsers send `Origin: null` on our own forms.
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// What a page needs to know of its request.
pub(crate) struct Visit {
    pub(crate) language: &'static str,
    /// Set-Cookie for a language chosen on this request.
    chosen: Option<&'static str>,
    pub(crate) session: Option<(String, Session)>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LangQuery {
    lang: Option<String>,
}

impl App {
    pub(crate) fn visit(&self, headers: &HeaderMap, lang: Option<&str>) -> Visit {
        let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        let chosen = lang.map(|l| negotiate(Some(l), None));
        let language = negotiate(
            chosen.or_else(|| cookie(cookies, LANGUAGE_COOKIE)),
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        let session = cookie(cookies, COOKIE).and_then(|id| {
            self.inner
                .sessions
                .get(id)
                .map(|session| (id.to_owned(), session))
        });
        Visit {
            language,
            chosen,
            session,
        }
    }

    fn t(&self, language: &str, id: &str, args: &[(&str, &str)]) -> String {
        self.inner.translations.text(language, id, args)
    }

    fn money(&self, language: &str, m: Option<&aftersales_proto::common::Money>) -> String {
        m.map_or_else(String::new, |m| {
            self.inner
                .translations
                .money(language, m.minor_units, &m.currency)
        })
    }

    /// An ISO date as the language writes it.
    fn date(&self, language: &str, iso: &str) -> String {
        self.inner.translations.iso_date(language, iso)
    }

    /// "Not done:" and the service's own words for why (they name the field or
    /// the stage).
    fn not_done(&self, language: &str, status: &tonic::Status) -> String {
        self.t(language, "staff-refused", &[("reason", status.message())])
    }

    /// A timestamp as the language writes a date and a time (UTC).
    fn moment(&self, language: &str, at: Option<&prost_types::Timestamp>) -> String {
        at.and_then(|at| chrono::DateTime::from_timestamp(at.seconds, 0))
            .map(|at| self.inner.translations.moment(language, at))
            .unwrap_or_default()
    }

    /// `template` with `context`, inside the layout.
    fn page(
        &self,
        visit: &Visit,
        status: StatusCode,
        title: &str,
        template: &str,
        context: minijinja::Value,
    ) -> Response {
        let t = self
            .inner
            .words
            .get(visit.language)
            .cloned()
            .unwrap_or_default();
        let languages: Vec<_> = LANGUAGES
            .iter()
            .map(|(tag, name)| minijinja::context! { tag => tag, name => name })
            .collect();
        let rendered = self
            .inner
            .templates
            .get_template(template)
            .and_then(|tpl| {
                tpl.render(minijinja::context! {
                    t => &t,
                    csrf => visit.session.as_ref().map(|(_, s)| s.csrf.clone()),
                    ..context
                })
            })
            .and_then(|content| {
                self.inner
                    .templates
                    .get_template("layout.html")?
                    .render(minijinja::context! {
                        lang => visit.language,
                        title => title,
                        t => &t,
                        languages => languages,
                        signed_in => visit.session.is_some(),
                        staff => visit.session.as_ref().is_some_and(|(_, s)| s.person.role != Role::Customer),
                        csrf => visit.session.as_ref().map(|(_, s)| s.csrf.clone()),
                        content => minijinja::Value::from_safe_string(content),
                    })
            });
        let mut response = match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(error) => {
                tracing::error!(%error, template, "rendering a page failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        };
        if let Some(tag) = visit.chosen
            && let Ok(value) = format!(
                "{LANGUAGE_COOKIE}={tag}; Path=/; Max-Age=31536000; SameSite=Lax{}",
                if self.inner.secure { "; Secure" } else { "" }
            )
            .parse()
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    fn message(&self, visit: &Visit, status: StatusCode, heading: &str, text: &str) -> Response {
        let heading = self.t(visit.language, heading, &[]);
        let text = self.t(visit.language, text, &[]);
        self.page(
            visit,
            status,
            &heading,
            "message.html",
            minijinja::context! { heading => &heading, text => text },
        )
    }

    /// The same page for an object that does not exist and one that is not
    /// the person's: nothing tells them apart.
    pub(crate) fn not_found(&self, visit: &Visit) -> Response {
        self.message(
            visit,
            StatusCode::NOT_FOUND,
            "not-found-title",
            "not-found-text",
        )
    }

    /// The answer to a service's refusal.
    fn refused(&self, visit: &Visit, status: &tonic::Status) -> Response {
        let code = status.code();
        if matches!(
            code,
            tonic::Code::NotFound | tonic::Code::PermissionDenied | tonic::Code::InvalidArgument
        ) {
            self.not_found(visit)
        } else if code == tonic::Code::Unauthenticated {
            let page = visit
                .session
                .as_ref()
                .map_or("/sign-in", |(_, s)| sign_in_for(&s.person));
            Redirect::to(page).into_response()
        } else {
            tracing::warn!(?code, "a service refused a page's call");
            self.message(
                visit,
                StatusCode::SERVICE_UNAVAILABLE,
                "error-title",
                "error-text",
            )
        }
    }

    /// The signed-in person's session and access token, or `None` if nobody is
    /// signed in (or the session can no longer be renewed).
    async fn signed_in(&self, visit: &Visit) -> Option<(Session, String)> {
        let (id, session) = visit.session.as_ref()?;
        let token = self.token(id, session).await?;
        Some((session.clone(), token))
    }

    /// The repair order, as the person whose `token` it is may see it.
    async fn order(&self, order_id: &str, token: &str) -> Result<rpb::RepairOrder, tonic::Status> {
        if order_id.len() > 64 {
            return Err(tonic::Status::not_found("no such order"));
        }
        self.inner
            .repair
            .clone()
            .get_repair(authorized(
                rpb::OrderRef {
                    order_id: order_id.to_owned(),
                },
                token,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// A new session for `tokens` (a new id at every sign-in: an id seen before
    /// cannot be fixed), and on to the person's first page. `role` or staff:
    /// a customer's code does not open the console, nor a password the app.
    fn start_session(&self, visit: &Visit, tokens: Tokens, role: Role) -> Response {
        let Some(person) = identity::person(&tokens.access_token)
            .filter(|p| (p.role == Role::Customer) == (role == Role::Customer))
        else {
            return self.message(visit, StatusCode::BAD_GATEWAY, "error-title", "error-text");
        };
        let landing = if person.role == Role::Customer {
            "/devices"
        } else {
            "/staff"
        };
        let session = Session::new(
            tokens.access_token,
            tokens.refresh_token,
            Duration::from_secs(tokens.expires_in),
            person,
        );
        if let Some((old, _)) = &visit.session {
            self.inner.sessions.remove(old);
        }
        let Some(id) = self.inner.sessions.insert(session) else {
            return self.message(
                visit,
                StatusCode::SERVICE_UNAVAILABLE,
                "error-title",
                "error-text",
            );
        };
        let mut response = Redirect::to(landing).into_response();
        if let Some(value) = session_cookie(&id, self.inner.secure, 12 * 3600) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        response
    }

    /// The devices registered to `customer` (the first 50).
    async fn devices_of(
        &self,
        customer: &str,
        token: &str,
    ) -> Result<Vec<aftersales_proto::warranty::DeviceSummary>, tonic::Status> {
        self.inner.warranties.devices_of(customer, token).await
    }

    /// A signed-in person's form: sent from this site with the session's CSRF
    /// token, then their session and a live access token; or the answer to give.
    async fn acting(
        &self,
        headers: &HeaderMap,
        csrf: &str,
    ) -> Result<(Visit, Session, String), Response> {
        let visit = self.visit(headers, None);
        if !self.form_allowed(headers, &visit, csrf) {
            return Err(forbidden(self, &visit));
        }
        match self.signed_in(&visit).await {
            Some((session, token)) => Ok((visit, session, token)),
            None => Err(Redirect::to("/sign-in").into_response()),
        }
    }

    /// Whether a signed-in person's form may act: sent from this site, with
    /// the session's CSRF token.
    fn form_allowed(&self, headers: &HeaderMap, visit: &Visit, csrf: &str) -> bool {
        same_origin(headers, self.inner.secure)
            && visit
                .session
                .as_ref()
                .is_some_and(|(_, session)| !csrf.is_empty() && csrf == session.csrf)
    }

    /// The session's access token, renewed first if it runs out within a minute.
    async fn token(&self, id: &str, session: &Session) -> Option<String> {
        if session.expires > Instant::now() + Duration::from_secs(60) {
            return Some(session.access_token.clone());
        }
        let renewed = self
            .inner
            .identity
            .refresh(session.refresh_token.as_deref()?)
            .await
            .ok()?;
        let fresh = Session {
            access_token: renewed.access_token.clone(),
            refresh_token: renewed.refresh_token.or(session.refresh_token.clone()),
            expires: Instant::now() + Duration::from_secs(renewed.expires_in),
            ..session.clone()
        };
        self.inner.sessions.replace(id, fresh);
        Some(renewed.access_token)
    }
}

/// A device named by its IMEI.
pub(crate) fn by_imei(value: &str) -> DeviceId {
    DeviceId {
        kind: Some(device_id::Kind::Imei(value.to_owned())),
    }
}

/// A fault category as forms and messages name it: `liquid-damage`.
fn fault_name(fault: aftersales_proto::warranty::FaultCategory) -> String {
    fault
        .as_str_name()
        .trim_start_matches("FAULT_CATEGORY_")
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// The fault a form names, if it names one.
fn fault_named(name: &str) -> Option<aftersales_proto::warranty::FaultCategory> {
    aftersales_proto::warranty::FaultCategory::from_str_name(&format!(
        "FAULT_CATEGORY_{}",
        name.replace('-', "_").to_ascii_uppercase()
    ))
    .filter(|f| *f != aftersales_proto::warranty::FaultCategory::Unspecified)
}

/// Every fault category, as a form's options in `language`.
fn fault_options(app: &App, language: &str) -> Vec<minijinja::Value> {
    (1..=13)
        .filter_map(|v| aftersales_proto::warranty::FaultCategory::try_from(v).ok())
        .map(|fault| {
            let name = fault_name(fault);
            minijinja::context! {
                label => app.t(language, &format!("fault-{name}"), &[]),
                value => name,
            }
        })
        .collect()
}

/// How the passcode is handled, as forms post it and messages name it
/// (`passcode-<name>`).
pub(crate) const PASSCODES: [(rpb::PasscodeHandling, &str); 3] = [
    (rpb::PasscodeHandling::CustomerUnlocks, "customer-unlocks"),
    (rpb::PasscodeHandling::NotNeeded, "not-needed"),
    (rpb::PasscodeHandling::ResetAgreed, "reset-agreed"),
];

/// The phone's data-protection checklist in a sentence.
pub(crate) fn checklist_summary(app: &App, language: &str, d: &rpb::DataProtection) -> String {
    let yes_no = |yes: bool| app.t(language, if yes { "answer-yes" } else { "answer-no" }, &[]);
    let passcode = PASSCODES
        .iter()
        .find(|(p, _)| i32::from(*p) == d.passcode)
        .map(|(_, name)| app.t(language, &format!("passcode-{name}"), &[]))
        .unwrap_or_default();
    app.t(
        language,
        "checklist-summary",
        &[
            ("backup", &yes_no(d.backup_reminded)),
            ("find", &yes_no(d.find_my_device_off)),
            ("passcode", &passcode),
        ],
    )
}

/// A category of a customer's data as messages name it (`data-<name>`).
fn data_category_name(category: rpb::DataCategory) -> Option<&'static str> {
    match category {
        rpb::DataCategory::CustomerWords => Some("customer-words"),
        rpb::DataCategory::ContactAddress => Some("contact-address"),
        rpb::DataCategory::DataProtection => Some("data-protection"),
        rpb::DataCategory::Unspecified => None,
    }
}

/// Why staff open a customer's data, as forms and messages name it (`purpose-<name>`).
fn purpose_name(purpose: rpb::AccessPurpose) -> Option<&'static str> {
    match purpose {
        rpb::AccessPurpose::Diagnosis => Some("diagnosis"),
        rpb::AccessPurpose::Repair => Some("repair"),
        rpb::AccessPurpose::ReturnShipping => Some("return-shipping"),
        rpb::AccessPurpose::CustomerContact => Some("customer-contact"),
        rpb::AccessPurpose::Complaint => Some("complaint"),
        rpb::AccessPurpose::Unspecified => None,
    }
}

/// A field of a posted form, trimmed; empty if absent.
fn form_field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.trim())
}

/// A request carrying `token`.
pub(crate) fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// Whether a form post comes from this site: its `Origin` (or, without one,
/// `Sec-Fetch-Site`) says so. A cross-site post is refused before anything.
fn same_origin(headers: &HeaderMap, secure: bool) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let scheme = if secure { "https" } else { "http" };
    let origin_ok = match (origin, host) {
        (Some(origin), Some(host)) => origin == format!("{scheme}://{host}"),
        (Some(_), None) => false,
        (None, _) => true,
    };
    let fetch_ok = fetch_site.is_none_or(|site| site == "same-origin" || site == "none");
    if !(origin_ok && fetch_ok) {
        tracing::warn!(
            ?origin,
            ?host,
            ?fetch_site,
            "a form from another site was refused"
        );
    }
    origin_ok && fetch_ok
}

fn forbidden(app: &App, visit: &Visit) -> Response {
    app.message(
        visit,
        StatusCode::FORBIDDEN,
        "forbidden-title",
        "forbidden-text",
    )
}

async fn home(State(app): State<App>, headers: HeaderMap) -> Response {
    match app.visit(&headers, None).session {
        Some((_, session)) if session.person.role != Role::Customer => {
            Redirect::to("/staff").into_response()
        }
        Some(_) => Redirect::to("/devices").into_response(),
        None => Redirect::to("/sign-in").into_response(),
    }
}

/// Where `person` signs in again.
fn sign_in_for(person: &Person) -> &'static str {
    if person.role == Role::Customer {
        "/sign-in"
    } else {
        "/staff/sign-in"
    }
}

async fn sign_in_page(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let title = app.t(visit.language, "sign-in-title", &[]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "sign_in.html",
        minijinja::context! { message => None::<String> },
    )
}

#[derive(Debug, Deserialize)]
struct AddressForm {
    address: String,
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    address: String,
    code: String,
}

fn code_page(app: &App, visit: &Visit, address: &str, message: Option<String>) -> Response {
    let title = app.t(visit.language, "sign-in-code-title", &[]);
    let sent = app.t(visit.language, "sign-in-code-sent", &[("address", address)]);
    app.page(
        visit,
        if message.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &title,
        "code.html",
        minijinja::context! { address => address, sent => sent, message => message },
    )
}

fn refusal_text(app: &App, visit: &Visit, refusal: Refusal) -> String {
    let id = match refusal {
        Refusal::Wrong => "sign-in-wrong",
        Refusal::SlowDown => "sign-in-slow-down",
        Refusal::Unavailable => "sign-in-unavailable",
    };
    app.t(visit.language, id, &[])
}

/// The sign-in page again, saying why.
fn sign_in_again(app: &App, visit: &Visit, status: StatusCode, message: &str) -> Response {
    let title = app.t(visit.language, "sign-in-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "sign_in.html",
        minijinja::context! { message => message },
    )
}

async fn send_code(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<AddressForm>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !same_origin(&headers, app.inner.secure) {
        return forbidden(&app, &visit);
    }
    let address = form.address.trim();
    if address.is_empty() || address.len() > 254 {
        let message = app.t(visit.language, "sign-in-wrong", &[]);
        return sign_in_again(&app, &visit, StatusCode::BAD_REQUEST, &message);
    }
    match app
        .inner
        .identity
        .send_code(address, visit.language, peer.ip())
        .await
    {
        Ok(()) => code_page(&app, &visit, address, None),
        Err(refusal) => {
            let message = refusal_text(&app, &visit, refusal);
            sign_in_again(&app, &visit, StatusCode::TOO_MANY_REQUESTS, &message)
        }
    }
}

fn session_cookie(id: &str, secure: bool, max_age: u64) -> Option<HeaderValue> {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
    .parse()
    .ok()
}

async fn redeem_code(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !same_origin(&headers, app.inner.secure) {
        return forbidden(&app, &visit);
    }
    let address = form.address.trim();
    let granted: Result<Tokens, Refusal> = if address.len() > 254 {
        Err(Refusal::Wrong)
    } else {
        app.inner
            .identity
            .redeem(address, form.code.trim(), peer.ip())
            .await
    };
    let tokens = match granted {
        Ok(tokens) => tokens,
        Err(refusal) => {
            let message = refusal_text(&app, &visit, refusal);
            return code_page(&app, &visit, address, Some(message));
        }
    };
    app.start_session(&visit, tokens, Role::Customer)
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let visit = app.visit(&headers, None);
    if !same_origin(&headers, app.inner.secure) {
        return forbidden(&app, &visit);
    }
    let Some((id, session)) = &visit.session else {
        return Redirect::to("/sign-in").into_response();
    };
    if form.csrf != session.csrf {
        return forbidden(&app, &visit);
    }
    app.inner.sessions.remove(id);
    if let Some(refresh) = &session.refresh_token {
        app.inner.identity.revoke(refresh).await;
    }
    let mut response = Redirect::to(sign_in_for(&session.person)).into_response();
    if let Some(value) = session_cookie("", app.inner.secure, 0) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn imei_of(id: Option<&DeviceId>) -> String {
    match id.and_then(|d| d.kind.as_ref()) {
        Some(device_id::Kind::Imei(v) | device_id::Kind::Serial(v)) => v.clone(),
        None => String::new(),
    }
}

/// Today's date, ISO: the system clock is the one the person lives by.
#[allow(clippy::disallowed_methods)]
fn chrono_today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

#[derive(Debug, Serialize)]
struct Step {
    stage: &'static str,
    label: String,
    state: &'static str,
}

fn stage_name(stage: rpb::Stage) -> &'static str {
    stage.as_str_name()
}

fn steps(app: &App, language: &str, current: rpb::Stage) -> Vec<Step> {
    let position = STAGES.iter().position(|(s, _)| *s == current);
    STAGES
        .iter()
        .enumerate()
        .map(|(i, (stage, message))| Step {
            stage: stage_name(*stage),
            label: app.t(language, message, &[]),
            state: match position {
                Some(p) if i < p => "done",
                Some(p) if i == p => "current",
                Some(_) | None => "todo",
            },
        })
        .collect()
}

async fn repair_page(
    State(app): State<App>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    Query(query): Query<LangQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let order = match app.order(&order_id, &token).await {
        Ok(order) => order,
        Err(status) => return app.refused(&visit, &status),
    };
    let stage = rpb::Stage::try_from(order.stage).unwrap_or_default();
    let language = visit.language;
    let title = app.t(language, "repair-title", &[("order", &order.order_id)]);
    // Only a mail-in has parcels and a carrier among its holders; only an open
    // order has a date to expect.
    let mail_in = order.channel == i32::from(rpb::Channel::MailIn);
    let open = !matches!(
        stage,
        rpb::Stage::ReadyForReturn | rpb::Stage::Closed | rpb::Stage::Cancelled
    );
    let logistics = async {
        if mail_in {
            futures::join!(
                app.parcels(&order.order_id, &token, language),
                app.custody(&order.order_id, &token, language)
            )
        } else {
            (Vec::new(), Vec::new())
        }
    };
    let expected = async {
        if !open {
            return None;
        }
        let request = authorized(
            rpb::OrderRef {
                order_id: order.order_id.clone(),
            },
            &token,
        );
        app.inner
            .repair
            .clone()
            .get_expected_ready(request)
            .await
            .ok()
    };
    let (timeline, (parcels, custody), expected) = futures::join!(
        app.timeline(&order.order_id, &token, language),
        logistics,
        expected,
    );
    // Without figures to go by (or an answer), no date is promised.
    let expected = expected
        .and_then(|e| e.into_inner().ready_by)
        .and_then(|at| chrono::DateTime::from_timestamp(at.seconds, 0))
        .map(|at| {
            app.t(
                language,
                "repair-expected",
                &[(
                    "date",
                    &app.inner.translations.date(language, at.date_naive()),
                )],
            )
        });
    let waiting_parts = order.waiting_for_parts.then(|| {
        if order.parts_expected_on.is_empty() {
            app.t(language, "repair-waiting-parts-undated", &[])
        } else {
            app.t(
                language,
                "repair-waiting-parts",
                &[("date", &app.date(language, &order.parts_expected_on))],
            )
        }
    });
    let context = minijinja::context! {
        expected => expected,
        waiting_parts => waiting_parts,
        title => &title,
        order_id => &order.order_id,
        steps => steps(&app, language, stage),
        stage => stage_name(stage),
        stage_label => app.t(language, stage_message(stage), &[]),
        symptoms => &order.symptoms,
        checklist => order.data_protection.as_ref().map(|d| checklist_summary(&app, language, d)),
        quote => order.quote.as_ref().map(|q| quote_view(&app, language, q, stage == rpb::Stage::Quoted)),
        timeline => timeline,
        parcels => parcels,
        custody => custody,
        booked => (!order.walk_in_day.is_empty()).then(|| app.t(language, "repair-booked", &[
            ("date", &app.date(language, &order.walk_in_day)),
            ("center", &order.service_center_id),
        ])),
    };
    app.page(&visit, StatusCode::OK, &title, "repair.html", context)
}

#[derive(Debug, Serialize)]
struct TimelineEntry {
    label: String,
    actor: String,
    at: String,
}

#[derive(Debug, Serialize)]
struct ParcelView {
    shipment_id: String,
    heading: String,
    carrier: String,
    tracking_number: String,
    status: String,
    /// On its way to us: the label and drop-off code are still of use.
    label: bool,
    /// Not handed in yet: say how.
    to_drop_off: bool,
    scans: Vec<ScanView>,
}

#[derive(Debug, Serialize)]
struct ScanView {
    at: String,
    status: String,
    location: String,
}

fn tracking_label(app: &App, language: &str, status: i32) -> String {
    let name = lpb::TrackingStatus::try_from(status)
        .unwrap_or_default()
        .as_str_name()
        .trim_start_matches("TRACKING_STATUS_")
        .to_ascii_lowercase()
        .replace('_', "-");
    app.t(language, &format!("tracking-{name}"), &[])
}

impl App {
    /// The order's steps, who took them and when (the service records the actor).
    async fn timeline(&self, order_id: &str, token: &str, language: &str) -> Vec<TimelineEntry> {
        self.inner
            .repair
            .clone()
            .get_repair_timeline(authorized(
                rpb::OrderRef {
                    order_id: order_id.to_owned(),
                },
                token,
            ))
            .await
            .map(|t| t.into_inner().steps)
            .unwrap_or_default()
            .into_iter()
            .map(|step| TimelineEntry {
                label: self.step_label(language, &step),
                at: self.moment(language, step.at.as_ref()),
                actor: step.actor,
            })
            .collect()
    }

    /// What a step of an order did, in `language`: an opening of the
    /// customer's data says who opened what and why; other steps the stage.
    fn step_label(&self, language: &str, step: &rpb::TimelineStep) -> String {
        if let Some(access) = &step.access {
            let what: Vec<String> = access
                .categories
                .iter()
                .filter_map(|c| rpb::DataCategory::try_from(*c).ok())
                .filter_map(data_category_name)
                .map(|name| self.t(language, &format!("data-{name}"), &[]))
                .collect();
            let purpose = rpb::AccessPurpose::try_from(access.purpose)
                .ok()
                .and_then(purpose_name)
                .map(|name| self.t(language, &format!("purpose-{name}"), &[]))
                .unwrap_or_default();
            return self.t(
                language,
                "timeline-data-opened",
                &[
                    ("who", &step.actor),
                    ("what", &what.join(", ")),
                    ("purpose", &purpose),
                ],
            );
        }
        let own_label = match step.event_type.as_str() {
            "DataProtectionRecorded" => Some("timeline-data-protection"),
            "WaitingForParts" => Some("timeline-waiting-parts"),
            "PartArrived" => Some("timeline-part-arrived"),
            "PartsReleased" => Some("timeline-parts-released"),
            _ => None,
        };
        if let Some(key) = own_label {
            return self.t(language, key, &[]);
        }
        self.t(
            language,
            stage_message(rpb::Stage::try_from(step.stage).unwrap_or_default()),
            &[],
        )
    }

    /// The order's parcels, each with its scans.
    async fn parcels(&self, order_id: &str, token: &str, language: &str) -> Vec<ParcelView> {
        let shipments = self
            .inner
            .logistics
            .clone()
            .list_shipments_by_repair(authorized(
                lpb::ListShipmentsByRepairRequest {
                    repair_order_id: order_id.to_owned(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner().shipments)
            .unwrap_or_default();
        let mut parcels = Vec::with_capacity(shipments.len());
        for shipment in shipments {
            let scans = self
                .inner
                .logistics
                .clone()
                .get_tracking_timeline(authorized(
                    lpb::ShipmentRef {
                        shipment_id: shipment.shipment_id.clone(),
                    },
                    token,
                ))
                .await
                .map(|t| t.into_inner().scans)
                .unwrap_or_default();
            let inbound = shipment.direction == i32::from(lpb::Direction::Inbound);
            let handed_in = scans
                .iter()
                .any(|scan| scan.status != i32::from(lpb::TrackingStatus::PreTransit));
            parcels.push(ParcelView {
                heading: self.t(
                    language,
                    if inbound {
                        "parcel-inbound"
                    } else {
                        "parcel-outbound"
                    },
                    &[],
                ),
                carrier: shipment.carrier,
                status: tracking_label(self, language, shipment.status),
                label: inbound && shipment.state == i32::from(lpb::ShipmentState::Active),
                to_drop_off: inbound
                    && !handed_in
                    && shipment.state == i32::from(lpb::ShipmentState::Active),
                tracking_number: shipment.tracking_number,
                shipment_id: shipment.shipment_id,
                scans: scans
                    .iter()
                    .rev()
                    .map(|scan| ScanView {
                        at: self.moment(language, scan.occurred_at.as_ref()),
                        status: tracking_label(self, language, scan.status),
                        location: scan.location.clone(),
                    })
                    .collect(),
            });
        }
        parcels
    }

    /// Who has held the phone, newest first: the customer, a carrier, a center
    /// or our depot, each with what showed it.
    async fn custody(&self, order_id: &str, token: &str, language: &str) -> Vec<CustodyView> {
        let steps = self
            .inner
            .logistics
            .clone()
            .get_custody_timeline(authorized(
                lpb::CustodyRequest {
                    repair_order_id: order_id.to_owned(),
                },
                token,
            ))
            .await
            .map(|c| c.into_inner().steps)
            .unwrap_or_default();
        steps
            .iter()
            .rev()
            .map(|step| {
                let holder = if step.holder == "customer" {
                    self.t(language, "custody-you", &[])
                } else if let Some(name) = step.holder.strip_prefix("carrier:") {
                    self.t(language, "custody-carrier", &[("name", name)])
                } else if let Some(id) = step.holder.strip_prefix("service_center:") {
                    self.t(language, "custody-center", &[("center", id)])
                } else {
                    self.t(language, "custody-depot", &[])
                };
                CustodyView {
                    holder,
                    at: self.moment(language, step.at.as_ref()),
                    location: step.location.clone(),
                }
            })
            .collect()
    }
}

#[derive(Debug, Serialize)]
struct CustodyView {
    holder: String,
    at: String,
    location: String,
}

#[derive(Debug, Deserialize)]
struct LabelQuery {
    shipment: String,
}

/// The printable label of one of the order's parcels, as the carrier made it.
/// It is shown sandboxed: no script, nothing loaded from anywhere.
async fn repair_label(
    State(app): State<App>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    Query(query): Query<LabelQuery>,
) -> Response {
    const PRINTABLE: &[&str] = &["image/svg+xml", "application/pdf", "image/png"];
    let visit = app.visit(&headers, None);
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    if order_id.len() > 64 || query.shipment.len() > 64 {
        return app.not_found(&visit);
    }
    // The parcel must be one of this order's, which must be the person's.
    let listed = app
        .inner
        .logistics
        .clone()
        .list_shipments_by_repair(authorized(
            lpb::ListShipmentsByRepairRequest {
                repair_order_id: order_id.clone(),
            },
            &token,
        ))
        .await;
    let owned = listed.is_ok_and(|l| {
        l.into_inner()
            .shipments
            .iter()
            .any(|s| s.shipment_id == query.shipment)
    });
    if !owned {
        return app.not_found(&visit);
    }
    let label = app
        .inner
        .logistics
        .clone()
        .get_label(authorized(
            lpb::ShipmentRef {
                shipment_id: query.shipment,
            },
            &token,
        ))
        .await;
    let label = match label {
        Ok(label) => label.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    if !PRINTABLE.contains(&label.content_type.as_str()) {
        return app.not_found(&visit);
    }
    (
        [
            (header::CONTENT_TYPE, label.content_type.as_str()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox",
            ),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        label.document,
    )
        .into_response()
}

#[derive(Debug, Serialize)]
struct QuoteView {
    revision: u32,
    lines: Vec<QuoteLineView>,
    total: String,
    /// Waiting for the customer's answer.
    open: bool,
}

#[derive(Debug, Serialize)]
struct QuoteLineView {
    description: String,
    amount: String,
}

fn quote_view(app: &App, language: &str, q: &rpb::Quote, open: bool) -> QuoteView {
    QuoteView {
        revision: q.revision,
        lines: q
            .lines
            .iter()
            .map(|l| QuoteLineView {
                description: l.description.clone(),
                amount: app.money(language, l.amount.as_ref()),
            })
            .collect(),
        total: app.money(language, q.total.as_ref()),
        open,
    }
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    csrf: String,
    revision: u32,
    decision: String,
}

/// The customer's answer to a quote, one click: the repair service records who
/// answered and when; the revision they saw must still be the current one.
async fn decide_quote(
    State(app): State<App>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, &form.csrf).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let order = match app.order(&order_id, &token).await {
        Ok(order) => order,
        Err(status) => return app.refused(&visit, &status),
    };
    let mut repair = app.inner.repair.clone();
    let reference = rpb::OrderRef {
        order_id: order.order_id.clone(),
    };
    if order.quote.as_ref().map(|q| q.revision) != Some(form.revision) {
        return app.message(&visit, StatusCode::CONFLICT, "quote-title", "quote-changed");
    }
    let answered = match form.decision.as_str() {
        "approve" => repair.approve_quote(authorized(reference, &token)).await,
        "decline" => repair.decline_quote(authorized(reference, &token)).await,
        _ => return app.not_found(&visit),
    };
    match answered {
        Ok(_) => Redirect::to(&format!("/repairs/{}", order.order_id)).into_response(),
        Err(status) => app.refused(&visit, &status),
    }
}

/// The repair's stage as it changes: one `stage` event now and one per change,
/// from the order's shared live stream, once the person may see the order.
async fn repair_events(
    State(app): State<App>,
    headers: HeaderMap,
    Path(order_id): Path<String>,
) -> Response {
    let visit = app.visit(&headers, None);
    let Some((_, token)) = app.signed_in(&visit).await else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(order) = app.order(&order_id, &token).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mail_in = order.channel == i32::from(rpb::Channel::MailIn);
    let changes = app.inner.feeds.join(&order.order_id, &token, mail_in);
    let language = visit.language;
    let now = futures::stream::once(std::future::ready(Change::Stage(order.stage)));
    let later = futures::stream::unfold(changes, |mut changes| async move {
        loop {
            match changes.recv().await {
                Ok(change) => return Some((change, changes)),
                // Fell behind: the page catches up with the newest change.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let events = now.chain(later).map(move |change| {
        let event = match change {
            Change::Stage(stage) => {
                let stage = rpb::Stage::try_from(stage).unwrap_or_default();
                let data = serde_json::json!({
                    "stage": stage_name(stage),
                    "label": app.t(language, stage_message(stage), &[]),
                });
                Event::default().event("stage").data(data.to_string())
            }
            // The page fetches its parcels section anew.
            Change::Parcels => Event::default().event("parcels").data("changed"),
        };
        Ok::<_, Infallible>(event)
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.js" => (
            include_str!("../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "app.css" => (include_str!("../static/app.css"), "text/css; charset=utf-8"),
        "icon.svg" => (include_str!("../static/icon.svg"), "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The service worker, its cache named after what it caches: browsers check
/// it on every visit (no-cache), so a new release's shell replaces the old.
static SERVICE_WORKER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use std::hash::{Hash as _, Hasher as _};
    let mut fingerprint = std::hash::DefaultHasher::new();
    for part in [
        include_str!("../static/app.js"),
        include_str!("../static/app.css"),
        include_str!("../static/icon.svg"),
        include_str!("../templates/layout.html"),
        include_str!("../templates/message.html"),
        include_str!("../locales/en.ftl"),
        include_str!("../locales/de.ftl"),
        include_str!("../locales/zh-CN.ftl"),
        include_str!("../locales/hi.ftl"),
    ] {
        part.hash(&mut fingerprint);
    }
    include_str!("../static/sw.js").replace("VERSION", &format!("{:016x}", fingerprint.finish()))
});

/// Served from the root, so it may look after every page.
async fn service_worker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SERVICE_WORKER.as_str(),
    )
        .into_response()
}

/// What the app shows with no network (cached by the service worker).
async fn offline(State(app): State<App>, headers: HeaderMap) -> Response {
    // Cached for anyone who uses this browser: rendered as for no one signed in.
    let mut visit = app.visit(&headers, None);
    visit.session = None;
    app.message(&visit, StatusCode::OK, "offline-title", "offline-text")
}

async fn manifest() -> Response {
    (
        [(header::CONTENT_TYPE, "application/manifest+json")],
        include_str!("../static/manifest.webmanifest"),
    )
        .into_response()
}

async fn not_found_anywhere(State(app): State<App>, headers: HeaderMap) -> Response {
    let visit = app.visit(&headers, None);
    app.not_found(&visit)
}

#[cfg(test)]
mod tests {

    /// This crate's directory as cargo gives it to the running test (a binary
    /// reused from a checkout elsewhere still reads this checkout's files).
    fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    }
    use super::*;

    #[test]
    fn every_template_file_is_compiled_in_and_parses() {
        let folder = std::path::Path::new(&manifest_dir()).join("templates");
        let mut files: Vec<String> = std::fs::read_dir(folder)
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut known: Vec<String> = TEMPLATES.iter().map(|(n, _)| (*n).to_owned()).collect();
        known.sort();
        assert_eq!(files, known);
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(error) = env.add_template(name, source) {
                panic!("{name}: {error:#}");
            }
        }
    }

    #[test]
    fn only_posts_from_this_origin_pass() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h, false), "no Origin: a same-site navigation");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h, false));
        assert!(!same_origin(&h, true), "https expected");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h, false));
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, false));
    }
}
