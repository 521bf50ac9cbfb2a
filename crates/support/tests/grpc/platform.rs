//! Cases the platform opens, over a real nats-server: a repair that fails QC
//! twice and a repair's parcel that stalls each open one case for the
//! customer, however often the events come; and support's own public events
//! carry no text.

use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::logistics as lpb;
use aftersales_proto::repair as rpb;
use aftersales_proto::support as pb;
use aftersales_testkit::{NatsServer, eventually, shared_postgres};
use futures::StreamExt as _;
use prost::Message as _;
use uuid::Uuid;

use crate::{Server, clock_at, config};

async fn publish<M: prost::Message>(
    js: &async_nats::jetstream::Context,
    source: &str,
    event_type: &str,
    message: &M,
    event_id: Uuid,
) {
    aftersales_messaging::testing::publish(
        js,
        "test",
        source,
        event_type,
        message,
        event_id,
        &Uuid::new_v4().to_string(),
    )
    .await;
}

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
    let nats = NatsServer::start().unwrap();
    let js = aftersales_messaging::connect(&nats.url(), "test-publisher")
        .await
        .unwrap();
    let names = aftersales_messaging::Names::new("test").unwrap();
    for service in ["repair", "logistics"] {
        aftersales_messaging::ensure_service_stream(
            &js,
            &names,
            service,
            &aftersales_messaging::StreamSettings::default(),
        )
        .await
        .unwrap();
    }
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
