//! The support desk's cases: the queue an agent's team holds (or every
//! team's, for operators and auditors) with each team's and agent's load, a
//! case opened for a customer on the phone, and a case's page with its
//! clocks, its whole conversation (internal notes too), the articles that
//! may answer it and what may be done to it now. The support service decides
//! who sees and does what; these pages only show it.

use aftersales_auth::Role;
use aftersales_proto::common::CountryCode;
use aftersales_proto::support as spb;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::care::{
    CATEGORIES, MAX_SUBJECT, MAX_TEXT, case_flags, category_name, plausible_id, reference,
    status_name,
};
use super::{App, Visit, authorized, form_field};
use crate::session::Session;

/// Cases the queue shows.
const QUEUE: u32 = 100;
/// How an agent hears from a customer, as forms post it.
const CHANNELS: &[(spb::Channel, &str)] = &[
    (spb::Channel::Phone, "phone"),
    (spb::Channel::Chat, "chat"),
    (spb::Channel::Email, "email"),
    (spb::Channel::Agent, "agent"),
];
const PRIORITIES: &[(spb::Priority, &str)] = &[
    (spb::Priority::Low, "low"),
    (spb::Priority::Normal, "normal"),
    (spb::Priority::High, "high"),
    (spb::Priority::Urgent, "urgent"),
];
/// The languages cases are written in.
const LANGUAGES: &[&str] = &["en", "de", "zh-CN", "hi"];

fn priority_name(value: i32) -> &'static str {
    PRIORITIES
        .iter()
        .find(|(p, _)| i32::from(*p) == value)
        .map_or("normal", |(_, name)| name)
}

fn tier_name(tier: spb::Tier) -> &'static str {
    match tier {
        spb::Tier::FrontLine | spb::Tier::Unspecified => "front-line",
        spb::Tier::Expert => "expert",
        spb::Tier::Engineering => "engineering",
    }
}

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    /// `open` (the default), `mine` or `all`.
    show: Option<String>,
    lang: Option<String>,
}

/// `/staff/desk`: the cases, oldest first, and the desk's load.
pub async fn queue(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<QueueQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    let language = visit.language;
    let show = match query.show.as_deref() {
        Some("mine") => "mine",
        Some("all") => "all",
        _ => "open",
    };
    let mut support = app.inner.support.clone();
    let mut workload_of = app.inner.support.clone();
    let (cases, workload) = futures::join!(
        support.list_cases(authorized(
            spb::ListCasesRequest {
                agent_id: if show == "mine" {
                    session.person.subject.clone()
                } else {
                    String::new()
                },
                open_only: show != "all",
                limit: QUEUE,
                ..Default::default()
            },
            &token,
        )),
        workload_of.get_workload(authorized(spb::GetWorkloadRequest::default(), &token)),
    );
    let cases = match cases {
        Ok(cases) => cases.into_inner().cases,
        Err(status) => return app.refused(&visit, &status),
    };
    let workload = match workload {
        Ok(workload) => workload.into_inner(),
        Err(status) => return app.refused(&visit, &status),
    };
    let rows: Vec<_> = cases
        .iter()
        .map(|c| {
            let due = c
                .clocks
                .iter()
                .filter(|k| k.running)
                .filter_map(|k| k.due.as_ref())
                .min_by_key(|d| (d.seconds, d.nanos));
            minijinja::context! {
                id => &c.case_id,
                reference => reference(&c.case_id),
                customer => &c.customer_id,
                topic => app.t(language, &format!("care-topic-{}", category_name(c.category)), &[]),
                priority => app.t(language, &format!("desk-priority-{}", priority_name(c.priority)), &[]),
                urgent => c.priority >= i32::from(spb::Priority::High),
                status => app.t(language, &format!("care-status-{}", status_name(c.status())), &[]),
                team => &c.team_id,
                agent => &c.agent_id,
                opened => app.moment(language, c.opened_at.as_ref()),
                due => app.moment(language, due),
                breached => c.clocks.iter().any(|k| k.breached),
            }
        })
        .collect();
    let teams: Vec<_> = workload
        .teams
        .iter()
        .map(|t| {
            minijinja::context! {
                team => &t.team_id,
                unassigned => t.unassigned,
                open => t.open_cases,
                breached => t.breached,
                oldest => app.moment(language, t.oldest_unassigned_at.as_ref()),
            }
        })
        .collect();
    let agents: Vec<_> = workload
        .agents
        .iter()
        .map(|a| {
            minijinja::context! {
                agent => &a.agent_id,
                team => &a.team_id,
                open => a.open_cases,
                on_shift => a.on_shift,
            }
        })
        .collect();
    let title = app.t(language, "desk-title", &[]);
    app.page(
        &visit,
        StatusCode::OK,
        &title,
        "desk.html",
        minijinja::context! {
            title => &title,
            show => show,
            cases => rows,
            teams => teams,
            agents => agents,
        },
    )
}

/// Options of the form an agent opens a case with for a customer.
pub(super) fn case_form_options(app: &App, language: &str) -> minijinja::Value {
    let named = |prefix: &str, names: &mut dyn Iterator<Item = &'static str>| {
        names
            .map(|name| {
                minijinja::context! {
                    value => name,
                    label => app.t(language, &format!("{prefix}{name}"), &[]),
                }
            })
            .collect::<Vec<_>>()
    };
    minijinja::context! {
        channels => named("desk-channel-", &mut CHANNELS.iter().map(|(_, n)| *n)),
        topics => named("care-topic-", &mut CATEGORIES.iter().map(|(_, n)| *n)),
        priorities => named("desk-priority-", &mut PRIORITIES.iter().map(|(_, n)| *n)),
        languages => LANGUAGES,
        countries => super::devices::COUNTRIES,
        max_subject => MAX_SUBJECT,
        max_text => MAX_TEXT,
        form_key => uuid::Uuid::new_v4().to_string(),
    }
}

/// A case an agent opens for a customer (on the phone, from chat or email).
pub async fn open(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, _, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    let field = |name: &str| form_field(&form, name);
    let Some(customer) = super::support::customer_id(field("customer")) else {
        return app.not_found(&visit);
    };
    let chosen = |options: &[(i32, &str)], name: &str| {
        options
            .iter()
            .find(|(_, n)| *n == field(name))
            .map(|(v, _)| *v)
    };
    let channels: Vec<_> = CHANNELS.iter().map(|(c, n)| (i32::from(*c), *n)).collect();
    let topics: Vec<_> = CATEGORIES
        .iter()
        .map(|(c, n)| (i32::from(*c), *n))
        .collect();
    let priorities: Vec<_> = PRIORITIES
        .iter()
        .map(|(p, n)| (i32::from(*p), *n))
        .collect();
    let request = spb::OpenCaseRequest {
        customer_id: customer.to_owned(),
        country: Some(CountryCode {
            value: field("country").to_owned(),
        }),
        language: field("language").to_owned(),
        // Unknown choices reach the service unspecified, which names the field.
        channel: chosen(&channels, "channel").unwrap_or_default(),
        category: chosen(&topics, "category").unwrap_or_default(),
        priority: chosen(&priorities, "priority").unwrap_or_default(),
        device_imei: field("imei").chars().take(32).collect(),
        repair_order_id: field("order").chars().take(64).collect(),
        subject: field("subject").to_owned(),
        text: field("text").to_owned(),
        attachments: Vec::new(),
    };
    let mut request = authorized(request, &token);
    if let Ok(key) = field("form_key").parse::<uuid::Uuid>()
        && let Ok(value) = key.to_string().parse()
    {
        request.metadata_mut().insert("x-command-id", value);
    }
    match app.inner.support.clone().open_case(request).await {
        Ok(case) => Redirect::to(&format!("/staff/desk/cases/{}", case.into_inner().case_id))
            .into_response(),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            let notice = app.not_done(visit.language, &status);
            super::support::customer_page(
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

#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    lang: Option<String>,
}

pub async fn case(
    State(app): State<App>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Query(query): Query<CaseQuery>,
) -> Response {
    let visit = app.visit(&headers, query.lang.as_deref());
    let Some((session, token)) = app.signed_in(&visit).await else {
        return Redirect::to("/staff/sign-in").into_response();
    };
    case_page(
        &app,
        &visit,
        &session,
        &token,
        &case_id,
        (StatusCode::OK, None),
    )
    .await
}

/// One step of a case's history in the desk's words.
fn entry_words(app: &App, language: &str, e: &spb::Entry) -> Option<(String, bool)> {
    let say = |id: &str, args: &[(&str, &str)]| app.t(language, id, args);
    let clock = say(&format!("desk-clock-{}", e.clock.replace('_', "-")), &[]);
    let words = match e.event_type.as_str() {
        "CaseOpened" => say("desk-event-opened", &[("text", &e.text)]),
        "EntryAdded" => match e.kind() {
            spb::EntryKind::CustomerMessage => say("desk-event-customer", &[("text", &e.text)]),
            spb::EntryKind::AgentReply => say("desk-event-reply", &[("text", &e.text)]),
            spb::EntryKind::InternalNote => {
                return Some((say("desk-event-note", &[("text", &e.text)]), true));
            }
            spb::EntryKind::Unspecified => return None,
        },
        "CaseAssigned" => say("desk-event-assigned", &[]),
        "WaitingOnCustomer" => say("care-waiting", &[]),
        "CaseResolved" => say("care-resolved", &[("summary", &e.text)]),
        "CaseClosed" => say("desk-event-closed", &[]),
        "CaseReopened" => say("desk-event-reopened", &[("text", &e.text)]),
        "CaseEscalated" => say(
            "desk-event-escalated",
            &[
                ("from", &e.from_team_id),
                ("to", &e.team_id),
                ("text", &e.text),
            ],
        ),
        "SlaWarningReached" => say("desk-event-warning", &[("clock", &clock)]),
        "SlaBreached" => say("desk-event-breached", &[("clock", &clock)]),
        _ => e.event_type.clone(),
    };
    Some((words, false))
}

async fn case_page(
    app: &App,
    visit: &Visit,
    session: &Session,
    token: &str,
    case_id: &str,
    (status, notice): (StatusCode, Option<String>),
) -> Response {
    if !plausible_id(case_id) {
        return app.not_found(visit);
    }
    let language = visit.language;
    let mut support = app.inner.support.clone();
    let mut suggest = app.inner.support.clone();
    let mut teams_of = app.inner.support.clone();
    let case_ref = || spb::CaseRef {
        case_id: case_id.to_owned(),
    };
    let (detail, suggested, teams) = futures::join!(
        support.get_case(authorized(case_ref(), token)),
        suggest.suggest_articles(authorized(case_ref(), token)),
        teams_of.list_teams(authorized(spb::ListTeamsRequest {}, token)),
    );
    let detail = match detail {
        Ok(detail) => detail.into_inner(),
        Err(status) => return app.refused(visit, &status),
    };
    let Some(case) = detail.case else {
        return app.not_found(visit);
    };
    // Auditors may not ask for suggestions or teams: the page goes without.
    let suggested: Vec<_> = suggested
        .map(|s| s.into_inner().hits)
        .unwrap_or_default()
        .into_iter()
        .map(|h| minijinja::context! { id => h.article_id, title => h.title, language => h.language })
        .collect();
    let team_agents: Vec<String> = teams
        .map(|t| t.into_inner().teams)
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.team_id == case.team_id)
        .map(|t| t.agent_ids)
        .unwrap_or_default();
    let entries: Vec<_> = detail
        .history
        .iter()
        .filter_map(|e| {
            let (words, internal) = entry_words(app, language, e)?;
            Some(minijinja::context! {
                at => app.moment(language, e.at.as_ref()),
                author => &e.author,
                words => words,
                internal => internal,
                attachments => e.attachments.iter().map(|a| format!("{} ({}, {} B)", a.name, a.content_type, a.size_bytes)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let clocks: Vec<_> = case
        .clocks
        .iter()
        .map(|k| {
            let state = if k.breached {
                "breached"
            } else if k.stopped_at.is_some() {
                "stopped"
            } else if k.paused {
                "paused"
            } else if k.warned {
                "warned"
            } else {
                "running"
            };
            minijinja::context! {
                kind => app.t(language, &format!("desk-clock-{}", k.kind.replace('_', "-")), &[]),
                due => app.moment(language, k.due.as_ref()),
                state => app.t(language, &format!("desk-clock-{state}"), &[]),
                late => k.breached,
            }
        })
        .collect();
    let title = app.t(
        language,
        "desk-case-title",
        &[("reference", &reference(&case.case_id))],
    );
    app.page(
        visit,
        status,
        &title,
        "desk_case.html",
        minijinja::context! {
            title => &title,
            notice => notice,
            case_id => &case.case_id,
            subject => &detail.subject,
            customer => &case.customer_id,
            device => &case.device_imei,
            order => &case.repair_order_id,
            channel => &case.channel().as_str_name().trim_start_matches("CHANNEL_").to_ascii_lowercase(),
            topic => app.t(language, &format!("care-topic-{}", category_name(case.category)), &[]),
            priority => app.t(language, &format!("desk-priority-{}", priority_name(case.priority)), &[]),
            status => app.t(language, &format!("care-status-{}", status_name(case.status())), &[]),
            language => &case.language,
            team => &case.team_id,
            tier => app.t(language, &format!("desk-tier-{}", tier_name(case.tier())), &[]),
            agent => &case.agent_id,
            sla_version => case.sla_version,
            clocks => clocks,
            entries => entries,
            suggested => suggested,
            // Auditors read; the service would refuse them anything else.
            can_act => matches!(session.person.role, Role::SupportAgent | Role::Operator),
            agents => team_agents,
            ..case_flags(&case)
        },
    )
}

/// What an agent does to a case: answer, note, take or give it, wait on the
/// customer, resolve, escalate, close or reopen it.
pub async fn act(
    State(app): State<App>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (visit, session, token) = match app.acting(&headers, form_field(&form, "csrf")).await {
        Ok(acting) => acting,
        Err(response) => return response,
    };
    if !plausible_id(&case_id) {
        return app.not_found(&visit);
    }
    let text = form_field(&form, "text");
    if text.len() > MAX_TEXT {
        let notice = app.t(visit.language, "care-text-needed", &[]);
        return case_page(
            &app,
            &visit,
            &session,
            &token,
            &case_id,
            (StatusCode::UNPROCESSABLE_ENTITY, Some(notice)),
        )
        .await;
    }
    let mut support = app.inner.support.clone();
    let case_ref = || spb::CaseRef {
        case_id: case_id.clone(),
    };
    let entry = |kind: spb::EntryKind| spb::AddEntryRequest {
        case_id: case_id.clone(),
        kind: kind.into(),
        text: text.to_owned(),
        attachments: Vec::new(),
    };
    let done = match form_field(&form, "action") {
        "reply" => support
            .add_entry(authorized(entry(spb::EntryKind::AgentReply), &token))
            .await
            .map(drop),
        "note" => support
            .add_entry(authorized(entry(spb::EntryKind::InternalNote), &token))
            .await
            .map(drop),
        "assign" => support
            .assign_case(authorized(
                spb::AssignCaseRequest {
                    case_id: case_id.clone(),
                    agent_id: form_field(&form, "agent").chars().take(128).collect(),
                },
                &token,
            ))
            .await
            .map(drop),
        "wait" => support
            .wait_on_customer(authorized(case_ref(), &token))
            .await
            .map(drop),
        "resolve" => support
            .resolve_case(authorized(
                spb::ResolveCaseRequest {
                    case_id: case_id.clone(),
                    summary: text.to_owned(),
                },
                &token,
            ))
            .await
            .map(drop),
        "escalate" => support
            .escalate_case(authorized(
                spb::EscalateCaseRequest {
                    case_id: case_id.clone(),
                    reason: spb::EscalationReason::Agent.into(),
                    note: text.to_owned(),
                },
                &token,
            ))
            .await
            .map(drop),
        "close" => support
            .close_case(authorized(case_ref(), &token))
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
        _ => return app.not_found(&visit),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/staff/desk/cases/{case_id}")).into_response(),
        // The service's words for why (the field, or the state the case is in).
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::InvalidArgument
                    | tonic::Code::FailedPrecondition
                    | tonic::Code::PermissionDenied
            ) =>
        {
            let notice = app.not_done(visit.language, &status);
            case_page(
                &app,
                &visit,
                &session,
                &token,
                &case_id,
                (StatusCode::UNPROCESSABLE_ENTITY, Some(notice)),
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
    fn every_channel_priority_and_tier_has_a_name() {
        for (priority, name) in PRIORITIES {
            assert_eq!(priority_name(i32::from(*priority)), *name);
        }
        assert_eq!(priority_name(99), "normal");
        assert_eq!(tier_name(spb::Tier::Expert), "expert");
    }
}
