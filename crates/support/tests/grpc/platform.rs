//! Cases the platform opens, over a real nats-server: a repair that fails QC
//! twice and a repair's parcel that stalls each open one case for the
//! customer, however often the events come; and support's own public events
//! carry no text.

use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::logistics as lpb;
use aftersales_proto::repair as rpb;
use aftersales_proto::support as pb;
use aftersales_testkit::{eventually, shared_postgres};
use futures::StreamExt as _;
use prost::Message as _;
use uuid::Uuid;

use crate::{Server, clock_at, config, publish};

fn opened(order_id: &str, customer: &str, country: &str) -> rpb::RepairOrderOpened {
    rpb::RepairOrderOpened {
        order_id: order_id.into(),
        device_id: Some(DeviceId {
            kind: Some(device_id::Kind::Imei("490154203237518".into())),
        }),
        channel: rpb::Channel::MailIn.into(),
        customer_id: customer.into(),
        country: country.into(),
        ..Default::default()
    }
}

async fn cases_of(server: &Server, customer: &str) -> Vec<pb::Case> {
    server
        .client
        .clone()
        .list_cases(pb::ListCasesRequest {
            customer_id: customer.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cases
}

#[tokio::test]
async fn qc_failed_twice_and_a_stalled_parcel_each_open_one_case() {
    let (nats, js) = crate::nats_with_sources().await;
    // What support publishes, as any subscriber sees it.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut published = client.subscribe("aftersales.test.support.>").await.unwrap();

    let clock = clock_at("2026-12-01T09:00:00Z");
    let mut cfg = config(shared_postgres().create_database().unwrap(), &clock);
    cfg.common = cfg.common.with_nats(nats.url());
    let server = Server::start_with(cfg).await;

    // A German mail-in repair fails QC twice, then a third time.
    let order = Uuid::new_v4().to_string();
    publish(
        &js,
        "repair",
        "RepairOrderOpened",
        &opened(&order, "cust-de", "DE"),
        Uuid::new_v4(),
    )
    .await;
    let failed = rpb::QcFailed {
        order_id: order.clone(),
        notes: "still leaks".into(),
    };
    let second = Uuid::new_v4();
    publish(&js, "repair", "QcFailed", &failed, Uuid::new_v4()).await;
    publish(&js, "repair", "QcFailed", &failed, second).await;
    // The second failure redelivered: the same event again.
    publish(&js, "repair", "QcFailed", &failed, second).await;
    let cases = eventually(|| cases_of(&server, "cust-de"), |c| !c.is_empty()).await;
    let case = &cases[0];
    assert_eq!(
        (case.channel, case.category, case.priority),
        (
            i32::from(pb::Channel::Platform),
            i32::from(pb::Category::Hardware),
            i32::from(pb::Priority::High)
        )
    );
    assert_eq!(
        (case.team_id.as_str(), case.language.as_str()),
        ("de-front", "de")
    );
    assert_eq!(case.repair_order_id, order);
    assert_eq!(case.device_imei, "490154203237518");
    publish(&js, "repair", "QcFailed", &failed, Uuid::new_v4()).await;

    // An Indian repair's parcel stalls; the carrier's silence is reported twice.
    let indian = Uuid::new_v4().to_string();
    publish(
        &js,
        "repair",
        "RepairOrderOpened",
        &opened(&indian, "cust-in", "IN"),
        Uuid::new_v4(),
    )
    .await;
    let stalled = lpb::ShipmentStalled {
        shipment_id: "shp-1".into(),
        repair_order_id: indian.clone(),
        direction: lpb::Direction::Inbound.into(),
        carrier: "sandbox".into(),
        tracking_number: "SB123".into(),
        silent_seconds: 4 * 86_400,
        ..Default::default()
    };
    publish(
        &js,
        "logistics",
        "ShipmentStalled",
        &stalled,
        Uuid::new_v4(),
    )
    .await;
    publish(
        &js,
        "logistics",
        "ShipmentStalled",
        &stalled,
        Uuid::new_v4(),
    )
    .await;
    let cases = eventually(|| cases_of(&server, "cust-in"), |c| !c.is_empty()).await;
    assert_eq!(cases[0].category, i32::from(pb::Category::Shipping));
    assert_eq!(
        (cases[0].team_id.as_str(), cases[0].language.as_str()),
        ("in-front", "hi")
    );
    let detail = server
        .client
        .clone()
        .get_case(crate::case_ref(&cases[0].case_id))
        .await
        .unwrap()
        .into_inner();
    assert!(
        detail.history[0].text.contains("SB123"),
        "{:?}",
        detail.history[0]
    );

    // Everything consumed (the inbox has each event), and one case each.
    eventually(
        || async {
            aftersales_eventstore::on_read_pool!(&server.running.store, pool => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE event_type = 'QcFailureNoted'")
                    .fetch_one(pool)
                    .await
                    .unwrap()
            })
        },
        |n| *n == 3,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(cases_of(&server, "cust-de").await.len(), 1);
    assert_eq!(cases_of(&server, "cust-in").await.len(), 1);
    assert_eq!(server.events("CaseOpened").await, 2);

    // Support published both openings, with ids and no text.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), published.next())
            .await
            .unwrap()
            .unwrap();
        if message.subject.as_str() == "aftersales.test.support.CaseOpened" {
            let opened = pb::CaseOpened::decode(message.payload.as_ref()).unwrap();
            assert!(!String::from_utf8_lossy(&message.payload).contains("quality control"));
            seen.push(opened.customer_id);
        }
    }
    seen.sort();
    assert_eq!(seen, ["cust-de", "cust-in"]);
    server.stop().await;
}

/// Clocks on repairs, as `legal.toml` sets them: a German repair waiting for
/// parts past 5 working days and unready past 15 days gets a case for each; a
/// repair whose parts, quote and readiness came in time gets none; a repair
/// found not covered drops the guarantee's clock but not its quote's; a French
/// repair runs on the law's 30 days. The clocks start at each event's time and
/// the service's clock then runs 20 days on.
#[tokio::test]
async fn repair_clocks_that_run_out_open_a_case_once() {
    let (nats, js) = crate::nats_with_sources().await;
    // The service's clock is the real one until it is moved on.
    let clock = aftersales_core::ShiftedClock::new();
    let mut cfg = config(shared_postgres().create_database().unwrap(), &clock);
    cfg.common = cfg.common.with_nats(nats.url());
    let server = Server::start_with(cfg).await;
    let order = |customer: &str, country: &str| {
        let id = Uuid::new_v4().to_string();
        (id.clone(), opened(&id, customer, country))
    };
    let (late, late_opened) = order("cust-late", "DE");
    let (fine, fine_opened) = order("cust-fine", "DE");
    let (paid, paid_opened) = order("cust-paid", "DE");
    let (_, french_opened) = order("cust-fr", "FR");
    for opening in [&late_opened, &fine_opened, &paid_opened, &french_opened] {
        publish(&js, "repair", "RepairOrderOpened", opening, Uuid::new_v4()).await;
    }
    let waiting = |order_id: &str| rpb::WaitingForParts {
        order_id: order_id.into(),
        part_numbers: vec!["BAT-A5".into()],
        expected_on: String::new(),
    };
    publish(
        &js,
        "repair",
        "WaitingForParts",
        &waiting(&late),
        Uuid::new_v4(),
    )
    .await;
    publish(
        &js,
        "repair",
        "WaitingForParts",
        &waiting(&fine),
        Uuid::new_v4(),
    )
    .await;
    let arrived = rpb::PartArrived {
        order_id: fine.clone(),
        part_number: "BAT-A5".into(),
        all_arrived: true,
    };
    publish(&js, "repair", "PartArrived", &arrived, Uuid::new_v4()).await;
    for order_id in [&fine, &paid] {
        let issued = rpb::QuoteIssued {
            order_id: order_id.clone(),
            quote: None,
        };
        publish(&js, "repair", "QuoteIssued", &issued, Uuid::new_v4()).await;
    }
    let approved = rpb::QuoteApproved {
        order_id: fine.clone(),
        revision: 1,
    };
    publish(&js, "repair", "QuoteApproved", &approved, Uuid::new_v4()).await;
    let ready = rpb::ReadyForReturn {
        order_id: fine.clone(),
        repaired: true,
    };
    publish(&js, "repair", "ReadyForReturn", &ready, Uuid::new_v4()).await;
    let not_covered = rpb::Diagnosed {
        order_id: paid.clone(),
        fault: "display".into(),
        coverage: Some(rpb::Coverage {
            decided: true,
            covered: false,
            reason: "liquid damage".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    publish(&js, "repair", "Diagnosed", &not_covered, Uuid::new_v4()).await;

    // Every clock started (4 repairs, 2 parts, 2 quotes) and the stopped ones
    // stopped (fine: parts, quote, repair; paid: repair) before time moves on.
    eventually(|| server.events("DeadlineStarted"), |n| *n == 8).await;
    eventually(|| server.events("DeadlineStopped"), |n| *n == 4).await;
    assert!(
        cases_of(&server, "cust-late").await.is_empty(),
        "nothing due yet"
    );
    clock.advance(chrono::Duration::days(20));

    let late_cases = eventually(|| cases_of(&server, "cust-late"), |c| c.len() == 2).await;
    let paid_cases = eventually(|| cases_of(&server, "cust-paid"), |c| c.len() == 1).await;
    eventually(|| server.events("DeadlineMissed"), |n| *n == 3).await;
    // A few more sweeps find nothing more to do.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(cases_of(&server, "cust-late").await.len(), 2);
    assert!(cases_of(&server, "cust-fine").await.is_empty());
    assert!(
        cases_of(&server, "cust-fr").await.is_empty(),
        "France allows 30 days"
    );
    assert_eq!(server.events("DeadlineMissed").await, 3);
    let mut subjects = Vec::new();
    for case in late_cases.iter().chain(&paid_cases) {
        let detail = server
            .client
            .clone()
            .get_case(crate::case_ref(&case.case_id))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(case.channel, i32::from(pb::Channel::Platform));
        subjects.push((
            case.customer_id.clone(),
            detail.subject,
            detail.history[0].text.clone(),
        ));
    }
    subjects.sort();
    let [
        (_, parts, parts_text),
        (_, guarantee, guarantee_text),
        (_, quote, _),
    ] = subjects.as_slice()
    else {
        panic!("{subjects:?}")
    };
    assert_eq!(parts, "A repair has waited too long for spare parts");
    assert!(
        parts_text.contains("5 working days: Regulation (EU) 2023/1670"),
        "{parts_text}"
    );
    assert_eq!(
        guarantee,
        "A repair under the legal guarantee is running late"
    );
    assert!(guarantee_text.contains("15 days"), "{guarantee_text}");
    assert_eq!(quote, "A repair quote is waiting for the customer's answer");
    assert_eq!(french_opened.country, "FR");
    server.stop().await;
}
