//! Customer care: answers first (the knowledge base searched in the reader's
//! language, and step-by-step self-diagnosis that ends in an article, the
//! update to install or a repair with its fault filled in), then writing to
//! the support desk and following each conversation.

use aftersales_proto::common::CountryCode;
use aftersales_proto::support as spb;
use aftersales_proto::warranty as wpb;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{App, Visit, authorized, by_imei, fault_name, fault_named, form_field, imei_of};
use crate::session::Session;

/// Longest search a person types (the service takes 500 bytes).
const MAX_QUERY: usize = 500;
/// Longest subject and message the service takes.
pub(super) const MAX_SUBJECT: usize = 200;
pub(super) const MAX_TEXT: usize = 10_000;
/// Articles a search shows.
const HITS: u32 = 10;
/// Conversations the page lists (the newest).
const CASES: u32 = 50;
/// The topics a customer writes about, as forms post them.
pub(super) const CATEGORIES: &[(spb::Category, &str)] = &[
    (spb::Category::Hardware, "hardware"),
    (spb::Category::SoftwareAndUpdates, "software"),
    (spb::Category::WarrantyQuestion, "warranty"),
    (spb::Category::Accessory, "accessory"),
    (spb::Category::Shipping, "shipping"),
    (spb::Category::Complaint, "complaint"),
];

pub(super) fn category_name(value: i32) -> &'static str {
    CATEGORIES
        .iter()
        .find(|(c, _)| i32::from(*c) == value)
        .map_or("hardware", |(_, name)| name)
}

pub(super) fn status_name(status: spb::Status) -> &'static str {
    match status {
        spb::Status::New | spb::Status::Unspecified => "new",
        spb::Status::Assigned => "assigned",
        spb::Status::WaitingOnCustomer => "waiting",
        spb::Status::Resolved => "resolved",
        spb::Status::Closed => "closed",
    }
}

/// What a case's state allows now, for the customer's page and the desk's.
pub(super) fn case_flags(case: &spb::Case) -> minijinja::Value {
    let state = case.status();
    let open = matches!(
        state,
        spb::Status::New | spb::Status::Assigned | spb::Status::WaitingOnCustomer
    );
    minijinja::context! {
        open => open,
        waiting => state == spb::Status::WaitingOnCustomer,
        resolved => state == spb::Status::Resolved,
        can_escalate => open && case.tier() != spb::Tier::Engineering,
        max_text => MAX_TEXT,
    }
}

/// A case as people quote it: the first eight characters of its id.
pub(super) fn reference(case_id: &str) -> String {
    case_id.chars().take(8).collect::<String>().to_uppercase()
}

/// Ids as the services make them: anything else is nobody's.
pub(super) fn plausible_id(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The country a case is handled under when no phone names it: the one
/// the page's language is most spoken in.
pub(super) fn country_for(language: &str) -> &'static str {
    match language {
        "de" => "DE",
        "zh-CN" => "CN",
        "hi" => "IN",
        _ => "GB",
    }
}

#[derive(Debug, Deserialize)]
pub struct HomeQuery {
    q: Option<String>,
    lang: Option<String>,
}

/// What a person typed into the write-to-us form, kept when it is refused.
#[derive(Debug, Default, serde::Serialize)]
struct Draft {
    category: String,
    imei: String,
    subject: String,
    text: String,
}

/// `/support`: search, walks, the person's conversations and a form to write.
pub async fn home(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<HomeQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    let typed = query.q.unwrap_or_default();
    home_page(
        &app,
        &visit,
        &session,
        &token,
        typed.trim(),
        (StatusCode::OK, None),
        &Draft::default(),
    )
    .await
}

async fn home_page(
    app: &App,
    visit: &Visit,
    session: &Session,
    token: &str,
    typed: &str,
    (status, notice): (StatusCode, Option<String>),
    draft: &Draft,
) -> Response {
    let language = visit.language;
    let mut support = app.inner.support.clone();
    let (hits, search_notice) = if typed.is_empty() {
        (None, None)
    } else if typed.len() > MAX_QUERY {
        (None, Some(app.t(language, "care-search-too-long", &[])))
    } else {
        let found = support
            .search_articles(authorized(
                spb::SearchArticlesRequest {
                    language: language.to_owned(),
                    query: typed.to_owned(),
                    limit: HITS,
                },
                token,
            ))
            .await;
        match found {
            Ok(found) => {
                let hits: Vec<_> = found
                    .into_inner()
                    .hits
                    .into_iter()
                    .map(|h| minijinja::context! { id => h.article_id, title => h.title })
                    .collect();
                (Some(hits), None)
            }
            Err(status) => return app.refused(visit, &status),
        }
    };
    // The walks, the person's cases and phones: asked at once.
    let customer = &session.person.subject;
    let mut cases_of = app.inner.support.clone();
    let (walks, cases, devices) = futures::join!(
        support.list_self_help(authorized(
            spb::ListSelfHelpRequest {
                language: language.to_owned(),
            },
            token,
        )),
        cases_of.list_cases(authorized(
            spb::ListCasesRequest {
                customer_id: customer.clone(),
                limit: CASES,
                ..Default::default()
            },
            token,
        )),
        app.devices_of(customer, token),
    );
    let walks: Vec<_> = match walks {
        Ok(walks) => walks
            .into_inner()
            .trees
            .into_iter()
            .map(|t| minijinja::context! { id => t.tree_id, title => t.title })
            .collect(),
        Err(status) => return app.refused(visit, &status),
    };
    let mut cases = match cases {
        Ok(cases) => cases.into_inner().cases,
        Err(status) => return app.refused(visit, &status),
    };
    // Listed oldest first; people look for the latest.
    cases.reverse();
    let cases: Vec<_> = cases
        .iter()
        .map(|c| {
            minijinja::context! {
                id => &c.case_id,
                reference => reference(&c.case_id),
                topic => app.t(language, &format!("care-topic-{}", category_name(c.category)), &[]),
                status => app.t(language, &format!("care-status-{}", status_name(c.status())), &[]),
                opened => app.moment(language, c.opened_at.as_ref()),
            }
        })
        .collect();
    let devices: Vec<_> = match devices {
        Ok(devices) => devices
            .iter()
            .map(|d| minijinja::context! { imei => imei_of(d.device_id.as_ref()), model => &d.model })
            .collect(),
        Err(status) => return app.refused(visit, &status),
    };
    let topics: Vec<_> = CATEGORIES
        .iter()
        .map(|(_, name)| {
            minijinja::context! {
                value => name,
                label => app.t(language, &format!("care-topic-{name}"), &[]),
            }
        })
        .collect();
    let title = app.t(language, "care-title", &[]);
    app.page(
        visit,
        status,
        &title,
        "care.html",
        minijinja::context! {
            title => &title,
            q => typed,
            hits => hits,
            search_notice => search_notice,
            walks => walks,
            cases => cases,
            devices => devices,
            topics => topics,
            draft => draft,
            notice => notice,
            // A fresh key per form shown: sent twice, it opens one case.
            form_key => uuid::Uuid::new_v4().to_string(),
            max_subject => MAX_SUBJECT,
            max_text => MAX_TEXT,
        },
    )
}

/// Why a new case cannot be sent as typed, as a message id.
fn draft_error(draft: &Draft) -> Option<&'static str> {
    if !CATEGORIES.iter().any(|(_, name)| *name == draft.category) {
        Some("care-topic-needed")
    } else if draft.subject.is_empty() || draft.subject.len() > MAX_SUBJECT {
        Some("care-subject-needed")
    } else if draft.text.is_empty() || draft.text.len() > MAX_TEXT {
        Some("care-text-needed")
    } else {
        None
    }
}

/// The form: a new case by the web, about one of the person's phones if
/// they chose one (and under that phone's country).
pub async fn open(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let language = visit.language;
    let draft = Draft {
        category: form_field(&form, "category").to_owned(),
        imei: form_field(&form, "imei").to_owned(),
        subject: form_field(&form, "subject").to_owned(),
        text: form_field(&form, "text").to_owned(),
    };
    let refuse = |notice: String| {
        let (app, visit, session, token, draft) = (&app, &visit, &session, &token, &draft);
        async move {
            home_page(
                app,
                visit,
                session,
                token,
                "",
                (StatusCode::UNPROCESSABLE_ENTITY, Some(notice)),
                draft,
            )
            .await
        }
    };
    if let Some(message) = draft_error(&draft) {
        return refuse(app.t(language, message, &[])).await;
    }
    let country = if draft.imei.is_empty() {
        country_for(language).to_owned()
    } else {
        if draft.imei.len() > 32 {
            return app.not_found(&visit);
        }
        let device = app
            .inner
            .warranty
            .clone()
            .get_device(authorized(
                wpb::GetDeviceRequest {
                    device_id: Some(by_imei(&draft.imei)),
                },
                &token,
            ))
            .await;
        match device {
            Ok(device) => device
                .into_inner()
                .country_of_purchase
                .map(|c| c.value)
                .unwrap_or_else(|| country_for(language).to_owned()),
            Err(status) => return app.refused(&visit, &status),
        }
    };
    let category = CATEGORIES
        .iter()
        .find(|(_, name)| *name == draft.category)
        .map_or(spb::Category::Hardware, |(c, _)| *c);
    let mut request = authorized(
        spb::OpenCaseRequest {
            customer_id: session.person.subject.clone(),
            country: Some(CountryCode { value: country }),
            language: language.to_owned(),
            channel: spb::Channel::Web.into(),
            category: category.into(),
            device_imei: draft.imei.clone(),
            subject: draft.subject.clone(),
            text: draft.text.clone(),
            ..Default::default()
        },
        &token,
    );
    if let Ok(key) = form_field(&form, "form_key").parse::<uuid::Uuid>()
        && let Ok(value) = key.to_string().parse()
    {
        request.metadata_mut().insert("x-command-id", value);
    }
    match app.inner.support.clone().open_case(request).await {
        Ok(case) => {
            Redirect::to(&format!("/support/cases/{}", case.into_inner().case_id)).into_response()
        }
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            refuse(app.not_done(language, &status)).await
        }
        Err(status) => app.refused(&visit, &status),
    }
}

#[derive(Debug, Deserialize)]
pub struct ArticleQuery {
    lang: Option<String>,
}

/// An article in the reader's language. Public: links to it are shared.
pub async fn article(
    State(app): State<App>,
    headers: HeaderMap,
    Path(article_id): Path<String>,
    Query(query): Query<ArticleQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    if !plausible_id(&article_id) {
        return app.not_found(&visit);
    }
    let language = visit.language;
    let found = app
        .inner
        .support
        .clone()
        .get_article(tonic::Request::new(spb::GetArticleRequest {
            article_id,
            language: language.to_owned(),
            version: 0,
        }))
        .await;
    let article = match found {
        Ok(article) => article.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let paragraphs: Vec<&str> = article
        .body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let updated = app.moment(language, article.published_at.as_ref());
    app.page(
        &visit,
        StatusCode::OK,
        &article.title,
        "article.html",
        minijinja::context! {
            title => &article.title,
            paragraphs => paragraphs,
            updated => app.t(language, "care-article-updated", &[
                ("when", &updated),
                ("version", &article.version.to_string()),
            ]),
            signed_in => visit.session.is_some(),
        },
    )
}

/// A walk's step: started (`tree_id`, and the phone if one was chosen) or
/// answered (`session_id`, `answer`).
pub async fn walk(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let language = visit.language;
    let mut support = app.inner.support.clone();
    let (session_id, tree_id, imei) = (
        form_field(&form, "session_id"),
        form_field(&form, "tree_id"),
        form_field(&form, "imei"),
    );
    let step = if session_id.is_empty() {
        if !plausible_id(tree_id) || imei.len() > 32 {
            return app.not_found(&visit);
        }
        support
            .start_self_help(authorized(
                spb::StartSelfHelpRequest {
                    tree_id: tree_id.to_owned(),
                    language: language.to_owned(),
                    device_imei: imei.to_owned(),
                },
                &token,
            ))
            .await
    } else {
        let Ok(answer) = form_field(&form, "answer").parse::<u32>() else {
            return app.not_found(&visit);
        };
        if !plausible_id(session_id) {
            return app.not_found(&visit);
        }
        support
            .answer_self_help(authorized(
                spb::AnswerSelfHelpRequest {
                    session_id: session_id.to_owned(),
                    answer,
                },
                &token,
            ))
            .await
    };
    let step = match step {
        Ok(step) => step.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let outcome = step.outcome.as_ref().filter(|_| step.ended).map(|o| {
        // The repair form names faults as warranty's categories do.
        let fault = fault_named(&o.fault).map(fault_name).unwrap_or_default();
        let words = match o.kind.as_str() {
            "update" if !o.build.is_empty() => app.t(
                language,
                "care-outcome-update",
                &[("issue", &o.issue_title), ("build", &o.build)],
            ),
            "update" => app.t(
                language,
                "care-outcome-update-newest",
                &[("issue", &o.issue_title)],
            ),
            "repair" => app.t(language, "care-outcome-repair", &[]),
            _ => app.t(language, "care-outcome-article", &[]),
        };
        minijinja::context! {
            kind => &o.kind,
            words => words,
            article_id => &o.article_id,
            article_title => &o.article_title,
            fault => fault,
        }
    });
    let title = app.t(language, "care-walk-title", &[]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "walk.html",
        minijinja::context! {
            title => &title,
            session_id => &step.session_id,
            question => &step.question,
            answers => &step.answers,
            ended => step.ended,
            outcome => outcome,
            imei => imei,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    lang: Option<String>,
}

/// One conversation: what was said on both sides and what happened to it,
/// with a reply box while it is open, and reopening once resolved.
pub async fn case(
    State(app): State<App>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Query(query): Query<CaseQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((_, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/sign-in").into_response();
    };
    case_page(&app, &visit, &token, &case_id, StatusCode::OK, None).await
}

async fn case_page(
    app: &App,
    visit: &Visit,
    token: &str,
    case_id: &str,
    status: StatusCode,
    notice: Option<String>,
) -> Response {
    if !plausible_id(case_id) {
        return app.not_found(visit);
    }
    let language = visit.language;
    let found = app
        .inner
        .support
        .clone()
        .get_case(authorized(
            spb::CaseRef {
                case_id: case_id.to_owned(),
            },
            token,
        ))
        .await;
    let detail = match found {
        Ok(detail) => detail.into_inner(),
        Err(status) => return app.refused(visit, &status),
    };
    let Some(case) = detail.case else {
        return app.not_found(visit);
    };
    let entries: Vec<_> = detail
        .history
        .iter()
        .filter_map(|e| {
            let (who, text) = match e.event_type.as_str() {
                "CaseOpened" | "EntryAdded" => {
                    let who = match e.kind() {
                        spb::EntryKind::CustomerMessage => "care-you",
                        spb::EntryKind::AgentReply => "care-desk",
                        // Customers are never shown notes; the service
                        // leaves them out, and so does the page.
                        spb::EntryKind::InternalNote | spb::EntryKind::Unspecified => {
                            return None;
                        }
                    };
                    (who, e.text.clone())
                }
                "CaseResolved" => (
                    "care-desk",
                    app.t(language, "care-resolved", &[("summary", &e.text)]),
                ),
                "CaseReopened" => ("care-you", app.t(language, "care-reopened", &[])),
                "CaseEscalated" => ("care-desk", app.t(language, "care-escalated", &[])),
                "WaitingOnCustomer" => ("care-desk", app.t(language, "care-waiting", &[])),
                _ => return None,
            };
            Some(minijinja::context! {
                who => app.t(language, who, &[]),
                mine => who == "care-you",
                at => app.moment(language, e.at.as_ref()),
                text => text,
                attachments => e.attachments.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let title = app.t(
        language,
        "care-case-title",
        &[("reference", &reference(&case.case_id))],
    );
    app.page(
        visit,
        status,
        &title,
        "care_case.html",
        minijinja::context! {
            title => &title,
            case_id => &case.case_id,
            subject => &detail.subject,
            topic => app.t(language, &format!("care-topic-{}", category_name(case.category)), &[]),
            status => app.t(language, &format!("care-status-{}", status_name(case.status())), &[]),
            entries => entries,
            notice => notice,
            ..case_flags(&case)
        },
    )
}

/// A reply, a request to reopen or to hand the case to experts.
pub async fn act(
    State(app): State<App>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    if !plausible_id(&case_id) {
        return app.not_found(&visit);
    }
    let language = visit.language;
    let text = form_field(&form, "text");
    if text.len() > MAX_TEXT {
        let notice = app.t(language, "care-text-needed", &[]);
        return case_page(
            &app,
            &visit,
            &token,
            &case_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(notice),
        )
        .await;
    }
    let mut support = app.inner.support.clone();
    let done = match form_field(&form, "action") {
        "reply" if text.is_empty() => Err(tonic::Status::invalid_argument(app.t(
            language,
            "care-text-needed",
            &[],
        ))),
        "reply" => support
            .add_entry(authorized(
                spb::AddEntryRequest {
                    case_id: case_id.clone(),
                    kind: spb::EntryKind::CustomerMessage.into(),
                    text: text.to_owned(),
                    attachments: Vec::new(),
                },
                &token,
            ))
            .await
            .map(drop),
        "reopen" => support
            .reopen_case(authorized(
                spb::ReopenCaseRequest {
                    case_id: case_id.clone(),
                    reason: text.to_owned(),
                },
                &token,
            ))
            .await
            .map(drop),
        "escalate" => support
            .escalate_case(authorized(
                spb::EscalateCaseRequest {
                    case_id: case_id.clone(),
                    reason: spb::EscalationReason::CustomerRequest.into(),
                    note: text.to_owned(),
                },
                &token,
            ))
            .await
            .map(drop),
        _ => return app.not_found(&visit),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/support/cases/{case_id}")).into_response(),
        // Said why (an empty message, a case closed meanwhile, a reopening
        // window passed), with the conversation as it now is.
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
            ) =>
        {
            let notice = app.not_done(language, &status);
            case_page(
                &app,
                &visit,
                &token,
                &case_id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(notice),
            )
            .await
        }
        Err(status) => app.refused(&visit, &status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_draft_needs_a_known_topic_a_subject_and_a_message_within_limits() {
        let good = Draft {
            category: "software".into(),
            imei: String::new(),
            subject: "Restarts".into(),
            text: "It restarts since the update.".into(),
        };
        assert_eq!(draft_error(&good), None);
        let topic = Draft {
            category: "billing".into(),
            ..Draft::default()
        };
        assert_eq!(draft_error(&topic), Some("care-topic-needed"));
        let long = Draft {
            subject: "x".repeat(MAX_SUBJECT + 1),
            ..Draft {
                category: "hardware".into(),
                ..Draft::default()
            }
        };
        assert_eq!(draft_error(&long), Some("care-subject-needed"));
        let empty = Draft {
            text: String::new(),
            subject: "Hello".into(),
            category: "complaint".into(),
            ..Draft::default()
        };
        assert_eq!(draft_error(&empty), Some("care-text-needed"));
    }

    #[test]
    fn only_ids_the_services_make_reach_them() {
        assert!(plausible_id("not-charging"));
        assert!(plausible_id("0193a0c2-7b1e-7c3a-9d7e-1f2a3b4c5d6e"));
        assert!(!plausible_id(""));
        assert!(!plausible_id("../admin"));
        assert!(!plausible_id(&"a".repeat(65)));
    }

    #[test]
    fn every_topic_and_status_has_a_name_the_pages_translate() {
        for (category, name) in CATEGORIES {
            assert_eq!(category_name(i32::from(*category)), *name);
        }
        assert_eq!(reference("0193a0c2-7b1e"), "0193A0C2");
    }
}
