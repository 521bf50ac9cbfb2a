//! A case's life over gRPC: routed and assigned on opening, answered, waited
//! on, resolved, closed and reopened; routing by language and by load; bad
//! input refused with the field named and nothing written.

use aftersales_proto::support as pb;
use aftersales_runtime::errors::field_violations;
use aftersales_support::domain::teams::Teams;
use tonic::Code;

use crate::{Server, case_ref, clock_at, config, country, entry, instant, move_to, not_charging};

/// Tuesday 1 December 2026, 10:00 in Berlin, 14:30 in Bengaluru.
const TUESDAY_MORNING: &str = "2026-12-01T09:00:00Z";

async fn a_case_from_hotline_to_closing(
    server: &mut Server,
    clock: &aftersales_core::ShiftedClock,
) {
    let c = &mut server.client;
    let opened = c
        .open_case(not_charging("cust-1"))
        .await
        .unwrap()
        .into_inner();
    // The German front line; of its agents on shift at 10:00 (Anna from 08:00,
    // Jonas from 09:00; Lea starts at 12:00), the first with fewest open cases.
    assert_eq!(opened.team_id, "de-front");
    assert_eq!(opened.tier, i32::from(pb::Tier::FrontLine));
    assert_eq!(opened.status, i32::from(pb::Status::Assigned));
    assert_eq!(opened.agent_id, "agent-de-anna");
    assert_eq!(opened.sla_version, 1);
    // Normal priority: 8 working hours to a first response, 48 to resolution,
    // counted in the German team's hours (08:00-20:00 on weekdays).
    let first = &opened.clocks[0];
    assert_eq!(first.kind, "first_response");
    let opened_at = instant(opened.opened_at.as_ref());
    let team = Teams::builtin().unwrap();
    let calendar = &team.get("de-front").unwrap().calendar;
    assert_eq!(
        instant(first.due.as_ref()),
        calendar
            .after(opened_at, chrono::Duration::hours(8))
            .unwrap()
    );
    let id = opened.case_id.clone();

    // A note does not answer the customer; the reply does.
    c.add_entry(entry(
        &id,
        pb::EntryKind::InternalNote,
        "Kabel prüfen lassen",
    ))
    .await
    .unwrap();
    move_to(clock, "2026-12-01T09:30:00Z");
    let replied = c
        .add_entry(entry(
            &id,
            pb::EntryKind::AgentReply,
            "Bitte ein anderes Kabel versuchen.",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(replied.first_response_at.is_some());
    assert!(!replied.clocks[0].running && replied.clocks[0].stopped_at.is_some());

    // Waiting on the customer stops the resolution clock; their answer starts it.
    let waiting = c
        .wait_on_customer(case_ref(&id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waiting.status, i32::from(pb::Status::WaitingOnCustomer));
    assert!(waiting.clocks[1].paused);
    let left = waiting.clocks[1].paused_seconds_left;
    move_to(clock, "2026-12-03T09:00:00Z");
    let answered = c
        .add_entry(entry(
            &id,
            pb::EntryKind::CustomerMessage,
            "Mit anderem Kabel geht es auch nicht.",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.status, i32::from(pb::Status::Assigned));
    let due = instant(answered.clocks[1].due.as_ref());
    let resumed_at: chrono::DateTime<chrono::Utc> = "2026-12-03T09:00:00Z".parse().unwrap();
    // As many working seconds left as when paused (give or take the test's own time).
    let counted = calendar.elapsed(resumed_at, due).num_seconds();
    assert!((counted - left).abs() <= 5, "{counted} vs {left}");

    let resolved = c
        .resolve_case(pb::ResolveCaseRequest {
            case_id: id.clone(),
            summary: "Ladebuchse defekt: Reparatur in Berlin vereinbart.".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, i32::from(pb::Status::Resolved));
    let closed = c.close_case(case_ref(&id)).await.unwrap().into_inner();
    assert_eq!(closed.status, i32::from(pb::Status::Closed));
    // A closed case takes no more messages, and says why.
    let refused = c
        .add_entry(entry(&id, pb::EntryKind::AgentReply, "Noch etwas?"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("closed"),
        "{}",
        refused.message()
    );

    // Reopened a week later, within the 14-day window.
    move_to(clock, "2026-12-08T09:00:00Z");
    let reopened = c
        .reopen_case(pb::ReopenCaseRequest {
            case_id: id.clone(),
            reason: "Nach der Reparatur lädt es wieder nicht.".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reopened.status, reopened.reopened),
        (i32::from(pb::Status::Assigned), 1)
    );
    assert!(reopened.clocks[1].running);

    let detail = c.get_case(case_ref(&id)).await.unwrap().into_inner();
    assert_eq!(detail.subject, "Lädt nicht");
    let steps: Vec<_> = detail
        .history
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "CaseOpened",
            "CaseAssigned",
            "EntryAdded",
            "EntryAdded",
            "WaitingOnCustomer",
            "EntryAdded",
            "CaseResolved",
            "CaseClosed",
            "CaseReopened",
        ]
    );
    assert_eq!(
        detail.history[2].kind,
        i32::from(pb::EntryKind::InternalNote)
    );
    assert_eq!(
        detail.history[5].text,
        "Mit anderem Kabel geht es auch nicht."
    );
}

#[tokio::test]
async fn a_hotline_case_is_routed_answered_waited_on_resolved_closed_and_reopened() {
    let clock = clock_at(TUESDAY_MORNING);
    let mut server = Server::start(&clock).await;
    a_case_from_hotline_to_closing(&mut server, &clock).await;
    server.stop().await;
}

#[tokio::test]
async fn the_same_case_on_the_embedded_sqlite_default() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(TUESDAY_MORNING);
    let url = format!("sqlite:{}", dir.path().join("support.db").display());
    let mut server = Server::start_with(config(url, &clock)).await;
    a_case_from_hotline_to_closing(&mut server, &clock).await;
    // The queues read the same on SQLite, once the read model has the reopening.
    let listed = aftersales_testkit::eventually(
        || {
            let mut c = server.client.clone();
            async move {
                c.list_cases(pb::ListCasesRequest {
                    team_id: "de-front".into(),
                    open_only: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |l| l.cases.len() == 1,
    )
    .await;
    assert_eq!(listed.cases[0].reopened, 1);
    server.stop().await;
}

#[tokio::test]
async fn cases_go_by_language_and_topic_and_to_the_least_loaded_agent_on_shift() {
    let clock = clock_at(TUESDAY_MORNING);
    let mut server = Server::start(&clock).await;
    let c = &mut server.client;
    // Three Hindi cases from India at 14:30 in Bengaluru: Priya (09-17) and
    // Arjun (13-21) are on shift, and take them in turn by load.
    let mut agents = Vec::new();
    for n in 0..3 {
        let opened = c
            .open_case(pb::OpenCaseRequest {
                customer_id: format!("cust-in-{n}"),
                country: country("IN"),
                language: "hi".into(),
                channel: pb::Channel::Chat.into(),
                category: pb::Category::Shipping.into(),
                subject: "पार्सल".into(),
                text: "मेरा पार्सल कहाँ है?".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(opened.team_id, "in-front");
        agents.push(opened.agent_id);
        // The read model the router counts from has caught up.
        aftersales_testkit::eventually(
            || {
                let mut c = c.clone();
                async move {
                    c.get_workload(pb::GetWorkloadRequest {
                        team_id: "in-front".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
                }
            },
            // Every case counted at its agent: routing counts from there.
            |w| w.agents.iter().map(|a| a.open_cases).sum::<u32>() == n + 1,
        )
        .await;
    }
    assert_eq!(
        agents,
        ["agent-in-arjun", "agent-in-priya", "agent-in-arjun"]
    );
    // Chinese software questions go to the Chinese front line; at 17:00 in
    // Shanghai on a Tuesday, Wei is on shift.
    let cn = c
        .open_case(pb::OpenCaseRequest {
            customer_id: "cust-cn".into(),
            country: country("CN"),
            language: "zh-CN".into(),
            channel: pb::Channel::Web.into(),
            category: pb::Category::SoftwareAndUpdates.into(),
            subject: "更新".into(),
            text: "更新后无法开机".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (cn.team_id.as_str(), cn.agent_id.as_str()),
        ("cn-front", "agent-cn-wei")
    );
    // The workload shows who holds what and who is on shift.
    let load = c
        .get_workload(pb::GetWorkloadRequest::default())
        .await
        .unwrap()
        .into_inner();
    let arjun = load
        .agents
        .iter()
        .find(|a| a.agent_id == "agent-in-arjun")
        .unwrap();
    assert_eq!((arjun.open_cases, arjun.on_shift), (2, true));
    let lea = load
        .agents
        .iter()
        .find(|a| a.agent_id == "agent-de-lea")
        .unwrap();
    assert!(!lea.on_shift);

    // An escalation goes one tier up with the whole history, to the team whose
    // skills match, and its agent on shift takes it.
    let first = c
        .list_cases(pb::ListCasesRequest {
            team_id: "in-front".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cases
        .remove(0);
    c.add_entry(entry(
        &first.case_id,
        pb::EntryKind::InternalNote,
        "Sendungsnummer unbekannt",
    ))
    .await
    .unwrap();
    let escalated = c
        .escalate_case(pb::EscalateCaseRequest {
            case_id: first.case_id.clone(),
            reason: pb::EscalationReason::Agent.into(),
            note: "Parcel lost between hubs".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(escalated.tier, i32::from(pb::Tier::Expert));
    assert_eq!(escalated.team_id, "hardware-experts");
    let history = c
        .get_case(case_ref(&first.case_id))
        .await
        .unwrap()
        .into_inner()
        .history;
    assert!(history.iter().any(|e| e.text == "Sendungsnummer unbekannt"));
    let step = history
        .iter()
        .find(|e| e.event_type == "CaseEscalated")
        .unwrap();
    assert_eq!(
        (step.from_team_id.as_str(), step.team_id.as_str()),
        ("in-front", "hardware-experts")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_case_opened_at_night_waits_in_the_queue_until_an_agent_comes_on_shift() {
    // Sunday 6 December 2026, 22:00 in Berlin: the German front line is closed.
    let clock = clock_at("2026-12-06T21:00:00Z");
    let mut server = Server::start(&clock).await;
    let opened = server
        .client
        .open_case(not_charging("cust-night"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.status, i32::from(pb::Status::New));
    assert!(opened.agent_id.is_empty());
    let queue = aftersales_testkit::eventually(
        || {
            let mut c = server.client.clone();
            async move {
                c.get_workload(pb::GetWorkloadRequest {
                    team_id: "de-front".into(),
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |w| w.teams[0].unassigned == 1,
    )
    .await;
    assert!(queue.teams[0].oldest_unassigned_at.is_some());
    // The first response clock has not run overnight: due at 16:00 Monday.
    let due = instant(opened.clocks[0].due.as_ref());
    assert_eq!(due.to_rfc3339(), "2026-12-07T15:00:00+00:00");
    // Monday 08:00: Anna comes on shift and the sweep gives her the case.
    move_to(&clock, "2026-12-07T07:00:00Z");
    let assigned = aftersales_testkit::eventually(
        || {
            let mut c = server.client.clone();
            let id = opened.case_id.clone();
            async move { c.get_case(case_ref(&id)).await.unwrap().into_inner() }
        },
        |d| d.case.as_ref().is_some_and(|c| !c.agent_id.is_empty()),
    )
    .await;
    assert_eq!(assigned.case.unwrap().agent_id, "agent-de-anna");
    assert_eq!(server.events("CaseAssigned").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let clock = clock_at(TUESDAY_MORNING);
    let mut server = Server::start(&clock).await;
    let opened = server
        .client
        .open_case(not_charging("cust-1"))
        .await
        .unwrap()
        .into_inner();
    let before = server.events("").await;
    let c = &mut server.client;
    let field = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        field_violations(&status)
            .first()
            .map(|(f, _)| f.clone())
            .unwrap_or_default()
    };
    let mut empty = not_charging("cust-1");
    empty.text = "   ".into();
    assert_eq!(field(c.open_case(empty).await.unwrap_err()), "text");
    let mut language = not_charging("cust-1");
    language.language = "fr".into();
    assert_eq!(field(c.open_case(language).await.unwrap_err()), "language");
    let mut no_category = not_charging("cust-1");
    no_category.category = 0;
    assert_eq!(
        field(c.open_case(no_category).await.unwrap_err()),
        "category"
    );
    let mut imei = not_charging("cust-1");
    imei.device_imei = "12345".into();
    assert_eq!(field(c.open_case(imei).await.unwrap_err()), "device_imei");
    let mut huge = not_charging("cust-1");
    huge.attachments = vec![pb::Attachment {
        name: "video.mp4".into(),
        content_type: "video/mp4".into(),
        size_bytes: 26 * 1024 * 1024,
        sha256: "ab".repeat(32),
    }];
    assert_eq!(
        field(c.open_case(huge).await.unwrap_err()),
        "attachments.size_bytes"
    );
    let mut country = not_charging("cust-1");
    country.country = None;
    assert_eq!(field(c.open_case(country).await.unwrap_err()), "country");
    let reply = |text: &str| entry(&opened.case_id, pb::EntryKind::AgentReply, text);
    assert_eq!(field(c.add_entry(reply("")).await.unwrap_err()), "text");
    assert_eq!(
        field(c.add_entry(reply(&"x".repeat(10_001))).await.unwrap_err()),
        "text"
    );
    assert_eq!(
        field(
            c.list_cases(pb::ListCasesRequest {
                team_id: "nobody".into(),
                ..Default::default()
            })
            .await
            .unwrap_err()
        ),
        "team_id"
    );
    assert_eq!(
        field(
            c.get_workload(pb::GetWorkloadRequest {
                team_id: "nobody".into()
            })
            .await
            .unwrap_err()
        ),
        "team_id"
    );
    assert_eq!(
        field(
            c.assign_case(pb::AssignCaseRequest {
                case_id: opened.case_id.clone(),
                agent_id: "agent-in-priya".into(),
            })
            .await
            .unwrap_err()
        ),
        "agent_id"
    );
    assert_eq!(
        field(c.get_case(case_ref("not-a-case")).await.unwrap_err()),
        "case_id"
    );
    let missing = c
        .get_case(case_ref(&uuid::Uuid::new_v4().to_string()))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    // A close before the resolution names the state.
    let early = c.close_case(case_ref(&opened.case_id)).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("assigned"), "{}", early.message());
    assert_eq!(server.events("").await, before);
    server.stop().await;
}

#[tokio::test]
async fn an_opening_retried_with_its_command_id_opens_one_case() {
    let clock = clock_at(TUESDAY_MORNING);
    let mut server = Server::start(&clock).await;
    let command_id = uuid::Uuid::new_v4();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let request =
            aftersales_runtime::request::with_command_id(not_charging("cust-retry"), command_id);
        ids.push(
            server
                .client
                .open_case(request)
                .await
                .unwrap()
                .into_inner()
                .case_id,
        );
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(server.events("CaseOpened").await, 1);
    assert_eq!(server.events("CaseAssigned").await, 1);
    server.stop().await;
}
