//! SLA clocks on the injected clock: warnings and breaches recorded once each,
//! by two replicas sweeping one database and across a restart, and a broken
//! resolution promise escalating the case one tier up.

use aftersales_proto::support as pb;
use aftersales_testkit::{eventually, shared_postgres};

use crate::{Server, case_ref, clock_at, config, move_to, not_charging};

async fn counts(server: &Server) -> [i64; 3] {
    [
        server.events("SlaWarningReached").await,
        server.events("SlaBreached").await,
        server.events("CaseEscalated").await,
    ]
}

#[tokio::test]
async fn warnings_and_breaches_are_recorded_once_across_replicas_and_a_restart() {
    // Tuesday 1 December 2026, 10:00 in Berlin.
    let clock = clock_at("2026-12-01T09:00:00Z");
    let url = shared_postgres().create_database().unwrap();
    let mut server = Server::start_with(config(url.clone(), &clock)).await;
    // Urgent in Germany: a first response within 30 working minutes (warning
    // at 24), a resolution within 8 working hours (due 18:00 the same day).
    let mut urgent = not_charging("cust-urgent");
    urgent.priority = pb::Priority::Urgent.into();
    let opened = server.client.open_case(urgent).await.unwrap().into_inner();
    let id = opened.case_id.clone();
    // (Give or take the moments the test itself takes: its clock runs on.)
    let due = crate::instant(opened.clocks[1].due.as_ref());
    let expected: chrono::DateTime<chrono::Utc> = "2026-12-01T17:00:00Z".parse().unwrap();
    assert!((due - expected).num_seconds().abs() <= 5, "{due}");

    // 25 minutes in: the first response's warning, and nothing else.
    move_to(&clock, "2026-12-01T09:25:00Z");
    let mut twin = Server::start_with(config(url.clone(), &clock)).await;
    eventually(|| counts(&server), |c| *c == [1, 0, 0]).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(counts(&server).await, [1, 0, 0]);
    twin.client.get_case(case_ref(&id)).await.unwrap();
    twin.stop().await;
    server.stop().await;

    // While nothing runs, the first response is missed and the day ends: the
    // resolution's warning and breach are due too.
    move_to(&clock, "2026-12-01T17:30:00Z");
    let server = Server::start_with(config(url.clone(), &clock)).await;
    let twin = Server::start_with(config(url, &clock)).await;
    eventually(|| counts(&server), |c| *c == [2, 2, 1]).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(counts(&server).await, [2, 2, 1]);

    // The breach moved it to the experts; at 18:30 in Berlin nobody there is
    // on shift, so it waits in their queue, every clock's breach on record.
    let case = twin
        .client
        .clone()
        .get_case(case_ref(&id))
        .await
        .unwrap()
        .into_inner();
    let state = case.case.unwrap();
    assert_eq!(
        (state.tier, state.team_id.as_str(), state.status),
        (
            i32::from(pb::Tier::Expert),
            "hardware-experts",
            i32::from(pb::Status::New)
        )
    );
    assert!(state.clocks.iter().all(|c| c.warned && c.breached));
    let escalation = case
        .history
        .iter()
        .find(|e| e.event_type == "CaseEscalated")
        .unwrap();
    assert_eq!(
        escalation.escalation_reason,
        i32::from(pb::EscalationReason::SlaBreach)
    );
    twin.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_paused_clock_does_not_breach_while_the_customer_is_away() {
    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut server = Server::start(&clock).await;
    let opened = server
        .client
        .open_case(not_charging("cust-away"))
        .await
        .unwrap()
        .into_inner();
    server
        .client
        .add_entry(crate::entry(
            &opened.case_id,
            pb::EntryKind::AgentReply,
            "Welche Softwareversion ist installiert?",
        ))
        .await
        .unwrap();
    server
        .client
        .wait_on_customer(case_ref(&opened.case_id))
        .await
        .unwrap();
    // Three weeks without an answer: no warning, no breach.
    move_to(&clock, "2026-12-22T09:00:00Z");
    let twin = Server::start(&clock).await; // another database: a sweep that has nothing
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(counts(&server).await, [0, 0, 0]);
    let detail = server
        .client
        .get_case(case_ref(&opened.case_id))
        .await
        .unwrap()
        .into_inner();
    assert!(detail.case.unwrap().clocks[1].paused);
    twin.stop().await;
    server.stop().await;
}
