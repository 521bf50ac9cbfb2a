//! Satisfaction surveys over a real nats-server: a resolved case and a repair
//! back with its customer each owe one survey, however often asked (a case
//! resolved again, a collection redelivered); its signed link answers it once
//! without signing in; answers and quality figures group by agent, team,
//! center and technician; and the figures of a week count what happened in it.

use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::repair as rpb;
use aftersales_proto::support as pb;
use aftersales_testkit::{eventually, shared_postgres};
use futures::StreamExt as _;
use prost::Message as _;
use tonic::Code;
use uuid::Uuid;

use crate::{Server, clock_at, config, entry, move_to, not_charging, publish, survey_link};

fn answer(link: &pb::SurveyLink, score: u32, comment: &str) -> pb::AnswerSurveyRequest {
    pb::AnswerSurveyRequest {
        survey_id: link.survey_id.clone(),
        token: link.token.clone(),
        score,
        comment: comment.into(),
    }
}

fn figures(group: pb::QualityGroup, from_week: &str, weeks: u32) -> pb::GetQualityFiguresRequest {
    pb::GetQualityFiguresRequest {
        group_by: group.into(),
        from_week: from_week.into(),
        weeks,
    }
}

#[tokio::test]
async fn a_resolved_case_and_a_returned_repair_each_ask_once_and_take_one_answer() {
    let (nats, js) = crate::nats_with_sources().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut published = client
        .subscribe("aftersales.test.support.SurveySent")
        .await
        .unwrap();
    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut cfg = config(shared_postgres().create_database().unwrap(), &clock);
    cfg.common = cfg.common.with_nats(nats.url());
    let server = Server::start_with(cfg).await;
    let mut c = server.client.clone();

    // A hotline case answered once and resolved; reopened and resolved again.
    let case = c
        .open_case(not_charging("cust-s"))
        .await
        .unwrap()
        .into_inner();
    let id = case.case_id.clone();
    c.add_entry(entry(&id, pb::EntryKind::AgentReply, "Bitte neu starten."))
        .await
        .unwrap();
    let resolve = || pb::ResolveCaseRequest {
        case_id: id.clone(),
        summary: "Neustart half.".into(),
    };
    c.resolve_case(resolve()).await.unwrap();
    c.reopen_case(pb::ReopenCaseRequest {
        case_id: id.clone(),
        reason: "Wieder kaputt.".into(),
    })
    .await
    .unwrap();
    c.resolve_case(resolve()).await.unwrap();

    // A walk-in repair in Berlin, by technician 7, collected; the collection
    // comes twice (redelivered) and once more under another id.
    let order = Uuid::new_v4().to_string();
    let opened = rpb::RepairOrderOpened {
        order_id: order.clone(),
        device_id: Some(DeviceId {
            kind: Some(device_id::Kind::Imei("490154203237518".into())),
        }),
        channel: rpb::Channel::WalkIn.into(),
        service_center_id: "berlin-mitte".into(),
        customer_id: "cust-r".into(),
        country: "DE".into(),
        ..Default::default()
    };
    publish(&js, "repair", "RepairOrderOpened", &opened, Uuid::new_v4()).await;
    let started = rpb::RepairStarted {
        order_id: order.clone(),
        technician: "tech-7".into(),
    };
    publish(&js, "repair", "RepairStarted", &started, Uuid::new_v4()).await;
    let collected = rpb::DeviceCollected {
        order_id: order.clone(),
    };
    let once = Uuid::new_v4();
    publish(&js, "repair", "DeviceCollected", &collected, once).await;
    publish(&js, "repair", "DeviceCollected", &collected, once).await;
    publish(&js, "repair", "DeviceCollected", &collected, Uuid::new_v4()).await;

    // One survey each, published with its link.
    let mut links = std::collections::BTreeMap::new();
    while links.len() < 2 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), published.next())
            .await
            .unwrap()
            .unwrap();
        let sent = pb::SurveySent::decode(message.payload.as_ref()).unwrap();
        let subject = pb::SurveySubject::try_from(sent.subject).unwrap();
        match subject {
            pb::SurveySubject::Case => {
                assert_eq!(
                    (sent.case_id.as_str(), sent.customer_id.as_str()),
                    (id.as_str(), "cust-s")
                );
            }
            pb::SurveySubject::Repair => {
                assert_eq!(
                    (sent.repair_order_id.as_str(), sent.customer_id.as_str()),
                    (order.as_str(), "cust-r")
                );
            }
            pb::SurveySubject::Unspecified => panic!("{sent:?}"),
        }
        assert!(
            links
                .insert(subject, survey_link(&sent.answer_link))
                .is_none(),
            "asked twice: {sent:?}"
        );
    }
    eventually(
        || async {
            aftersales_eventstore::on_read_pool!(&server.running.store, pool => {
                sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM events WHERE event_type = 'RepairDone'",
                )
                .fetch_one(pool)
                .await
                .unwrap()
            })
        },
        |n| *n == 1,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.events("SurveySent").await, 2);
    let case_link = &links[&pb::SurveySubject::Case];
    let repair_link = &links[&pb::SurveySubject::Repair];

    // The link shows the survey; any other token, or another survey's, finds nothing.
    let shown = c.get_survey(case_link.clone()).await.unwrap().into_inner();
    assert_eq!(
        (shown.case_id.as_str(), shown.language.as_str()),
        (id.as_str(), "de")
    );
    assert!(!shown.answered);
    let repair_shown = c
        .get_survey(repair_link.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repair_shown.repair_order_id, order);
    for forged in [
        pb::SurveyLink {
            token: repair_link.token.clone(),
            ..case_link.clone()
        },
        pb::SurveyLink {
            token: "AAAA".into(),
            ..case_link.clone()
        },
        pb::SurveyLink {
            token: "not base64 !".into(),
            ..case_link.clone()
        },
        pb::SurveyLink {
            survey_id: "not-a-uuid".into(),
            token: case_link.token.clone(),
        },
    ] {
        let refused = c.get_survey(forged.clone()).await.unwrap_err();
        assert!(
            matches!(refused.code(), Code::NotFound | Code::InvalidArgument),
            "{forged:?}: {refused:?}"
        );
        let refused = c.answer_survey(answer(&forged, 5, "")).await.unwrap_err();
        assert!(matches!(
            refused.code(),
            Code::NotFound | Code::InvalidArgument
        ));
    }

    // Answered once; a bad score changes nothing; a second answer is refused.
    let bad = c.answer_survey(answer(case_link, 6, "")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let answered = c
        .answer_survey(answer(case_link, 4, "Schnell und freundlich"))
        .await
        .unwrap()
        .into_inner();
    assert!(answered.answered);
    assert_eq!(answered.score, 4);
    let again = c.answer_survey(answer(case_link, 1, "")).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert!(again.message().contains("already answered"), "{again:?}");
    c.answer_survey(answer(repair_link, 2, "Took a week"))
        .await
        .unwrap();
    assert_eq!(server.events("SurveyAnswered").await, 2);

    // Answers by agent and by technician, their comments opened.
    let by_agent = eventually(
        || {
            let mut c = c.clone();
            async move {
                c.list_survey_answers(pb::ListSurveyAnswersRequest {
                    group_by: pb::QualityGroup::Agent.into(),
                    group_id: "agent-de-anna".into(),
                    limit: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .answers
            }
        },
        |a| !a.is_empty(),
    )
    .await;
    assert_eq!(
        (by_agent[0].score, by_agent[0].comment.as_str()),
        (4, "Schnell und freundlich")
    );
    // The answers read model catches up on its own: the repair's answer may
    // come after the case's.
    let by_technician = eventually(
        || {
            let mut c = c.clone();
            async move {
                c.list_survey_answers(pb::ListSurveyAnswersRequest {
                    group_by: pb::QualityGroup::Technician.into(),
                    group_id: "tech-7".into(),
                    limit: 10,
                })
                .await
                .unwrap()
                .into_inner()
                .answers
            }
        },
        |a| !a.is_empty(),
    )
    .await;
    assert_eq!(by_technician.len(), 1);
    assert_eq!(by_technician[0].comment, "Took a week");
    assert_eq!(by_technician[0].repair_order_id, order);

    // Satisfaction in the week's figures: the team's, and the center's.
    // (A read model of its own, which may still be catching up.)
    let figures_of = |group: pb::QualityGroup| {
        let mut c = c.clone();
        async move {
            c.get_quality_figures(figures(group, "2026-W49", 1))
                .await
                .unwrap()
                .into_inner()
                .rows
        }
    };
    let answered = |rows: &Vec<pb::QualityRow>| rows.iter().any(|r| r.survey_answers > 0);
    let week = eventually(|| figures_of(pb::QualityGroup::Team), answered).await;
    let team = week.iter().find(|r| r.group_id == "de-front").unwrap();
    assert_eq!((team.cases_resolved, team.survey_answers), (1, 1));
    assert!((team.mean_satisfaction - 4.0).abs() < 1e-9);
    assert!((team.reopen_rate - 1.0).abs() < 1e-9, "{team:?}");
    let centers = eventually(|| figures_of(pb::QualityGroup::Center), answered).await;
    assert_eq!(centers.len(), 1);
    assert_eq!(
        (centers[0].group_id.as_str(), centers[0].survey_answers),
        ("berlin-mitte", 1)
    );
    assert!((centers[0].mean_satisfaction - 2.0).abs() < 1e-9);
    let bad = c
        .get_quality_figures(figures(pb::QualityGroup::Unspecified, "", 0))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    // A collection that arrives more than a survey's life late (the service's
    // clock is five weeks on) asks nothing: it could no longer be answered.
    move_to(&clock, "2027-01-12T09:00:00Z");
    let late = Uuid::new_v4().to_string();
    let opened = rpb::RepairOrderOpened {
        order_id: late.clone(),
        ..opened
    };
    publish(&js, "repair", "RepairOrderOpened", &opened, Uuid::new_v4()).await;
    let collected = rpb::DeviceCollected { order_id: late };
    publish(&js, "repair", "DeviceCollected", &collected, Uuid::new_v4()).await;
    eventually(|| server.events("RepairDone"), |n| *n == 2).await;
    assert_eq!(server.events("SurveySent").await, 2);
    server.stop().await;
}

/// Four German cases over two weeks: one answered at first contact, one that
/// took two replies, one escalated, one whose first response came late (an
/// urgent case, 30 minutes promised), and one resolved the next week.
#[tokio::test]
async fn quality_figures_count_each_week_by_agent_and_team_and_export_as_csv() {
    let clock = clock_at("2026-12-01T09:00:00Z");
    let server = Server::start(&clock).await;
    let mut c = server.client.clone();
    let open = |mut request: pb::OpenCaseRequest, customer: &str| {
        request.customer_id = customer.into();
        request
    };
    let mut ids = Vec::new();
    for customer in ["q-1", "q-2", "q-3"] {
        let case = c
            .open_case(open(not_charging(customer), customer))
            .await
            .unwrap()
            .into_inner();
        ids.push(case.case_id);
    }
    let reply = |id: &str| entry(id, pb::EntryKind::AgentReply, "Antwort");
    let resolve = |id: &str| pb::ResolveCaseRequest {
        case_id: id.into(),
        summary: "Erledigt".into(),
    };
    // First contact.
    c.add_entry(reply(&ids[0])).await.unwrap();
    c.resolve_case(resolve(&ids[0])).await.unwrap();
    // Two replies.
    c.add_entry(reply(&ids[1])).await.unwrap();
    c.add_entry(reply(&ids[1])).await.unwrap();
    c.resolve_case(resolve(&ids[1])).await.unwrap();
    // Escalated to the experts, who resolve it.
    c.add_entry(reply(&ids[2])).await.unwrap();
    c.escalate_case(pb::EscalateCaseRequest {
        case_id: ids[2].clone(),
        reason: pb::EscalationReason::Agent.into(),
        note: "Platine".into(),
    })
    .await
    .unwrap();
    let taken = c
        .assign_case(pb::AssignCaseRequest {
            case_id: ids[2].clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(taken.agent_id, "expert-hw-klaus");
    c.resolve_case(resolve(&ids[2])).await.unwrap();
    // Urgent: the first response is due at 09:30; it comes at 10:30.
    let mut urgent = not_charging("q-4");
    urgent.priority = pb::Priority::Urgent.into();
    let late = c.open_case(urgent).await.unwrap().into_inner();
    move_to(&clock, "2026-12-01T10:30:00Z");
    eventually(|| server.events("SlaBreached"), |n| *n >= 1).await;
    c.add_entry(reply(&late.case_id)).await.unwrap();
    c.resolve_case(resolve(&late.case_id)).await.unwrap();
    // Opened this week, resolved the next, inside its resolution target (14.5
    // of 48 working hours: a breach would escalate it while the test acts).
    move_to(&clock, "2026-12-04T10:00:00Z");
    let next = c.open_case(not_charging("q-5")).await.unwrap().into_inner();
    c.add_entry(reply(&next.case_id)).await.unwrap();
    move_to(&clock, "2026-12-07T07:30:00Z");
    c.resolve_case(resolve(&next.case_id)).await.unwrap();

    let rows = eventually(
        || {
            let mut c = c.clone();
            async move {
                c.get_quality_figures(figures(pb::QualityGroup::Team, "2026-W49", 2))
                    .await
                    .unwrap()
                    .into_inner()
                    .rows
            }
        },
        |rows| rows.iter().map(|r| r.cases_resolved).sum::<u32>() == 5,
    )
    .await;
    let row = |week: &str, team: &str| {
        rows.iter()
            .find(|r| r.week == week && r.group_id == team)
            .unwrap_or_else(|| panic!("{week} {team}: {rows:?}"))
            .clone()
    };
    let front = row("2026-W49", "de-front");
    assert_eq!(front.cases_resolved, 3, "{rows:?}");
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Times: the test's clock runs on between its steps, by milliseconds.
    let about = |a: f64, b: f64| (a - b).abs() < 2.0;
    // Of the front line's three, two were answered at first contact (late is
    // still first contact) and one breached its clock.
    assert!(near(front.first_contact_resolution, 2.0 / 3.0), "{front:?}");
    assert!(near(front.sla_attainment, 2.0 / 3.0), "{front:?}");
    assert!(near(front.escalation_rate, 0.0));
    // The late case's first response took 90 minutes; the others' no time.
    assert!(
        about(front.mean_first_response_seconds, 5400.0 / 3.0),
        "{front:?}"
    );
    let experts = row("2026-W49", "hardware-experts");
    assert_eq!(experts.cases_resolved, 1);
    assert!(near(experts.escalation_rate, 1.0));
    assert!(near(experts.first_contact_resolution, 0.0));
    let following = row("2026-W50", "de-front");
    assert_eq!(following.cases_resolved, 1);
    // Opened on Friday at 10:00, resolved on Monday at 07:30.
    assert!(
        about(following.mean_resolution_seconds, 250_200.0),
        "{following:?}"
    );

    // By agent: the week's cases of whoever held them when resolved (three
    // of the front line's agents, and the expert).
    let agents = c
        .get_quality_figures(figures(pb::QualityGroup::Agent, "2026-W49", 1))
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert_eq!(
        agents.iter().map(|r| r.cases_resolved).sum::<u32>(),
        4,
        "{agents:?}"
    );
    assert!(agents.iter().any(|r| r.group_id == "expert-hw-klaus"));

    // The same figures as CSV, one line per row after the header.
    let csv = c
        .export_quality_figures(figures(pb::QualityGroup::Team, "2026-W49", 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(csv.filename, "support-quality-team-2026-W49-2026-W50.csv");
    let lines: Vec<&str> = csv.content.lines().collect();
    assert_eq!(lines.len(), 1 + rows.len());
    assert!(lines[0].starts_with("week,team,cases_resolved,"));
    // Its times in whole seconds (about 1800, the clock running on), then the shares.
    let front_line = lines
        .iter()
        .find(|l| l.starts_with("2026-W49,de-front,3,"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(
        front_line.ends_with(",0.667,0.667,0.000,0.000,0,0.00"),
        "{front_line}"
    );
    server.stop().await;
}
