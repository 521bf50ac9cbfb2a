//! A device's history, reactions to logistics, the live watch, turnaround and
//! projections rebuilt from the log.

use std::time::Duration;

use aftersales_proto::common::{Address, CountryCode};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_testkit::eventually;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::*;

#[tokio::test]
async fn a_devices_repair_history_is_listed_and_verifiable() {
    let mut p = Platform::start().await;
    let imei = imei(6);
    register(&mut p, &imei, "DE", 40).await;
    let first =
        p.r.open_repair(walk_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    p.r.cancel_repair(pb::CancelRepairRequest {
        order_id: first.clone(),
        reason: "changed my mind".into(),
    })
    .await
    .unwrap();
    let second =
        p.r.open_repair(walk_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    let list = eventually(
        || {
            let mut r = p.r.clone();
            let imei = imei.clone();
            async move {
                r.list_repairs_by_device(pb::ListRepairsByDeviceRequest {
                    device_id: device(&imei),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |l| l.repairs.len() == 2 && l.repairs[0].stage == i32::from(pb::Stage::Cancelled),
    )
    .await;
    assert_eq!(
        list.repairs
            .iter()
            .map(|r| r.order_id.as_str())
            .collect::<Vec<_>>(),
        [first.as_str(), second.as_str()]
    );
    assert_eq!(list.repairs[0].stage, i32::from(pb::Stage::Cancelled));
    let at_center =
        p.r.list_repairs_by_center(pb::ListRepairsByCenterRequest {
            service_center_id: "sc-berlin-01".into(),
            stage: pb::Stage::Opened.into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(at_center.repairs.iter().any(|r| r.order_id == second));
    assert!(
        !at_center.repairs.iter().any(|r| r.order_id == first),
        "filtered by stage"
    );

    // The log lists the device's orders (its index stream, a projection of
    // the log that appends to it): verification finds both from there.
    let verify = || {
        let mut r = p.r.clone();
        let device_id = device(&imei);
        async move {
            r.verify_repair_history(pb::VerifyRepairHistoryRequest { device_id })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let intact = eventually(verify, |v| v.as_ref().is_ok_and(|v| v.orders_checked == 2))
        .await
        .unwrap();
    assert!(intact.intact, "{}", intact.problem);
    let unknown = self::imei(7);
    assert_eq!((intact.orders_checked, intact.events_checked), (2, 3));
    assert_eq!(
        intact.checked_against.len(),
        3,
        "the index stream and each order: {:?}",
        intact.checked_against
    );

    // Both lists page: a device's orders one at a time, its history two events
    // at a time across its orders, and each token leads on to the next page.
    let orders_page = |page_token: String| {
        let mut r = p.r.clone();
        let device_id = device(&imei);
        async move {
            r.list_repairs_by_device(pb::ListRepairsByDeviceRequest {
                device_id,
                page_size: 1,
                page_token,
            })
            .await
            .map(tonic::Response::into_inner)
        }
    };
    let one = orders_page(String::new()).await.unwrap();
    assert_eq!(one.repairs[0].order_id, first);
    let two = orders_page(one.next_page_token).await.unwrap();
    assert_eq!(
        (
            two.repairs[0].order_id.as_str(),
            two.next_page_token.as_str()
        ),
        (second.as_str(), "")
    );
    let history_page = |page_token: String| {
        let mut r = p.r.clone();
        let device_id = device(&imei);
        async move {
            r.get_repair_history(pb::GetRepairHistoryRequest {
                device_id,
                page_size: 2,
                page_token,
            })
            .await
            .map(tonic::Response::into_inner)
        }
    };
    let head = history_page(String::new()).await.unwrap();
    let tail = history_page(head.next_page_token.clone()).await.unwrap();
    let read: Vec<(String, u64)> = head
        .events
        .iter()
        .chain(&tail.events)
        .map(|e| (e.order_id.clone(), e.version))
        .collect();
    assert_eq!(
        read,
        [(first.clone(), 1), (first.clone(), 2), (second.clone(), 1)]
    );
    assert_eq!(head.next_page_token, format!("{second}@1"));
    assert!(tail.next_page_token.is_empty());
    for forged in ["x", "nobody@1", &format!("{second}@0")] {
        let refused = history_page(forged.to_owned()).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{forged}");
    }
    assert_eq!(
        orders_page("nobody".into()).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &p.repair.store else {
        panic!()
    };
    // A deleted read-model row hides nothing: the export still has the order,
    // and verification names the row that is missing.
    sqlx::query("DELETE FROM repair_orders WHERE order_id = $1")
        .bind(&second)
        .execute(pg.pool())
        .await
        .unwrap();
    let exported =
        p.r.clone()
            .get_repair_history(pb::GetRepairHistoryRequest {
                device_id: device(&imei),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
    assert!(exported.events.iter().any(|e| e.order_id == second));
    let missing = verify().await.unwrap();
    assert!(!missing.intact);
    assert_eq!(missing.first_bad_order_id, second);
    assert!(
        missing.problem.contains("read model"),
        "{}",
        missing.problem
    );

    sqlx::raw_sql("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(pg.pool())
        .await
        .unwrap();
    sqlx::raw_sql("UPDATE events SET payload = convert_to(replace(convert_from(payload, 'UTF8'), 'changed my mind', 'device was fine'), 'UTF8') WHERE event_type = 'RepairCancelled'")
        .execute(pg.pool())
        .await
        .unwrap();
    let tampered =
        p.r.verify_repair_history(pb::VerifyRepairHistoryRequest {
            device_id: device(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!tampered.intact);
    assert_eq!(tampered.first_bad_order_id, first);
    assert_eq!(
        code(
            p.r.verify_repair_history(pb::VerifyRepairHistoryRequest {
                device_id: device(&unknown)
            })
            .await
        )
        .0,
        Code::NotFound
    );
    p.stop().await;
}

/// Publishes a logistics `Delivered` as the logistics relay would, with `msg_id`
/// as the JetStream message id (a redelivery keeps the event id, not always the
/// message id).
async fn publish_delivered(
    js: &async_nats::jetstream::Context,
    event_id: uuid::Uuid,
    msg_id: &str,
    order_id: &str,
    direction: aftersales_proto::logistics::Direction,
) {
    use prost::Message as _;
    let payload = aftersales_proto::logistics::Delivered {
        shipment_id: format!("shp-{order_id}"),
        repair_order_id: order_id.into(),
        direction: direction.into(),
        carrier: "sandbox".into(),
        tracking_number: "SBX123".into(),
        delivered_at: None,
        accessory_replacement_id: String::new(),
        depot_id: "eu-leipzig".into(),
    }
    .encode_to_vec();
    #[allow(clippy::disallowed_methods)]
    let recorded_at = chrono::Utc::now();
    let recorded = aftersales_eventstore::RecordedEvent {
        position: 1,
        checkpoint: aftersales_eventstore::Checkpoint {
            transaction: 0,
            position: 1,
        },
        stream_id: aftersales_eventstore::StreamId::parse(format!("shipment-{order_id}")).unwrap(),
        stream_version: 1,
        event_id,
        event_type: "Delivered".into(),
        schema_version: 1,
        payload: payload.clone(),
        metadata: aftersales_eventstore::Metadata {
            correlation_id: event_id,
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "carrier:sandbox".into(),
            region: "test".into(),
            recorded_at,
        },
        hash: [0; 32],
        personal: Default::default(),
    };
    let mut headers = aftersales_messaging::envelope::headers_for(
        "logistics",
        &recorded,
        &aftersales_messaging::envelope::protobuf("aftersales.logistics.v1.Delivered"),
    );
    headers.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(
        "aftersales.test.logistics.Delivered",
        headers,
        payload.into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

#[tokio::test]
async fn mail_in_orders_react_to_logistics_deliveries_exactly_once() {
    use aftersales_proto::logistics::Direction;
    let nats = aftersales_testkit::NatsServer::start().unwrap();
    let js = aftersales_messaging::connect(&nats.url(), "test-logistics")
        .await
        .unwrap();
    let names = aftersales_messaging::Names::new("test").unwrap();
    aftersales_messaging::ensure_service_stream(
        &js,
        &names,
        "logistics",
        &aftersales_messaging::StreamSettings::default(),
    )
    .await
    .unwrap();
    let mut p = Platform::start().await;
    // This test's repair service listens to NATS.
    p.repair.stop().await.unwrap();
    let mut config = repair_config(
        p.repair_url.clone(),
        Some(format!("http://{}", p.warranty.addr)),
    );
    config.common = config.common.with_nats(nats.url());
    p.repair = aftersales_repair::server::start(config).await.unwrap();
    p.r = RepairServiceClient::connect(format!("http://{}", p.repair.addr))
        .await
        .unwrap();

    let imei = imei(9);
    register(&mut p, &imei, "GB", 60).await;
    let opened =
        p.r.open_repair(pb::OpenRepairRequest {
            channel: pb::Channel::MailIn.into(),
            service_center_id: String::new(),
            contact_address: Some(Address {
                recipient: "Sam Jones".into(),
                lines: vec!["1 High St".into()],
                city: "Leeds".into(),
                region: String::new(),
                postal_code: "LS1 1AA".into(),
                country: Some(CountryCode { value: "GB".into() }),
                phone: String::new(),
            }),
            ..walk_in(&imei)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.stage, i32::from(pb::Stage::AwaitingDevice));
    let id = opened.order_id;

    // The inbound delivery, published twice: once more as a re-publish with
    // another message id (JetStream cannot drop it; the inbox must).
    let inbound = uuid::Uuid::now_v7();
    publish_delivered(&js, inbound, "m-1", &id, Direction::Inbound).await;
    publish_delivered(&js, inbound, "m-2", &id, Direction::Inbound).await;
    let received = eventually(
        || {
            let mut r = p.r.clone();
            let id = id.clone();
            async move { r.get_repair(order(&id)).await.unwrap().into_inner() }
        },
        |o| o.stage == i32::from(pb::Stage::Received),
    )
    .await;
    assert_eq!(received.stage, i32::from(pb::Stage::Received));

    // Through diagnosis and repair to the return parcel.
    p.r.diagnose(pb::DiagnoseRequest {
        order_id: id.clone(),
        fault_category: wpb::FaultCategory::Battery.into(),
        fault_codes: vec![],
        technician: "t".into(),
    })
    .await
    .unwrap();
    p.r.start_repair(pb::StartRepairRequest {
        order_id: id.clone(),
        technician: "t".into(),
    })
    .await
    .unwrap();
    p.r.record_qc_result(pb::RecordQcResultRequest {
        order_id: id.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    p.r.mark_ready_for_return(order(&id)).await.unwrap();
    let outbound = uuid::Uuid::now_v7();
    publish_delivered(&js, outbound, "m-3", &id, Direction::Outbound).await;
    publish_delivered(&js, outbound, "m-3", &id, Direction::Outbound).await;
    let closed = eventually(
        || {
            let mut r = p.r.clone();
            let id = id.clone();
            async move { r.get_repair(order(&id)).await.unwrap().into_inner() }
        },
        |o| o.stage == i32::from(pb::Stage::Closed),
    )
    .await;
    assert_eq!(closed.stage, i32::from(pb::Stage::Closed));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &p.repair.store else {
        panic!()
    };
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_version",
    )
    .bind(format!("repair-{id}"))
    .fetch_all(pg.pool())
    .await
    .unwrap();
    assert_eq!(
        types.iter().filter(|t| *t == "DeviceReceived").count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "ReturnDelivered").count(),
        1,
        "{types:?}"
    );
    let handled: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM inbox WHERE consumer = 'repair-from-logistics'")
            .fetch_one(pg.pool())
            .await
            .unwrap();
    assert_eq!(handled, 2, "one inbox row per delivery event");
    p.stop().await;
}

#[tokio::test]
async fn watch_follows_an_order_live_and_the_timeline_names_who_did_what() {
    let mut p = Platform::start().await;
    let imei = imei(10);
    register(&mut p, &imei, "IT", 20).await;
    let id =
        p.r.open_repair(walk_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    let mut watch = p.r.watch_repair(order(&id)).await.unwrap().into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.stage, i32::from(pb::Stage::Opened));

    let mut check_in = tonic::Request::new(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    });
    check_in
        .metadata_mut()
        .insert("x-actor", "staff:anna".parse().unwrap());
    p.r.check_in_device(check_in).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.stage, i32::from(pb::Stage::Received));

    p.r.diagnose(pb::DiagnoseRequest {
        order_id: id.clone(),
        fault_category: wpb::FaultCategory::Audio.into(),
        fault_codes: vec![],
        technician: "t".into(),
    })
    .await
    .unwrap();
    p.r.start_repair(pb::StartRepairRequest {
        order_id: id.clone(),
        technician: "t".into(),
    })
    .await
    .unwrap();
    p.r.record_qc_result(pb::RecordQcResultRequest {
        order_id: id.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    p.r.mark_ready_for_return(order(&id)).await.unwrap();
    p.r.confirm_collected(order(&id)).await.unwrap();
    let mut seen = Vec::new();
    while let Some(update) = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap()
        .unwrap()
    {
        seen.push(update.stage);
    }
    assert_eq!(
        seen.last(),
        Some(&i32::from(pb::Stage::Closed)),
        "ends when closed: {seen:?}"
    );

    // Read from the order's own stream: every step is there as soon as the
    // command that made it returned.
    let timeline =
        p.r.clone()
            .get_repair_timeline(order(&id))
            .await
            .unwrap()
            .into_inner();
    let kinds: Vec<_> = timeline
        .steps
        .iter()
        .map(|s| s.event_type.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "RepairOrderOpened",
            "DeviceCheckedIn",
            "Diagnosed",
            "RepairStarted",
            "QcPassed",
            "ReadyForReturn",
            "DeviceCollected"
        ]
    );
    assert_eq!(timeline.steps[1].actor, "staff:anna");
    assert_eq!(timeline.steps[1].stage, i32::from(pb::Stage::Received));
    assert!(
        timeline
            .steps
            .windows(2)
            .all(|w| w[0].at.unwrap().seconds <= w[1].at.unwrap().seconds)
    );
    assert_eq!(
        code(p.r.get_repair_timeline(order("no-such-order")).await).0,
        Code::NotFound
    );
    assert_eq!(
        code(p.r.watch_repair(order("no-such-order")).await).0,
        Code::NotFound
    );
    p.stop().await;
}

#[tokio::test]
async fn center_turnaround_and_projections_rebuilt_from_the_log() {
    let mut p = Platform::start().await;
    let imei = imei(11);
    register(&mut p, &imei, "ZA", 20).await;
    let open = || pb::OpenRepairRequest {
        service_center_id: "sc-johannesburg-01".into(),
        ..walk_in(&imei)
    };
    let slow = p.r.open_repair(open()).await.unwrap().into_inner().order_id;
    // One order waits in `opened` for over a second before check-in; another not.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: slow.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let quick = p.r.open_repair(open()).await.unwrap().into_inner().order_id;
    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: quick.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let stats = eventually(
        || {
            let mut r = p.r.clone();
            async move {
                r.get_center_stats(pb::GetCenterStatsRequest {
                    service_center_id: "sc-johannesburg-01".into(),
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |s| {
            s.stages
                .iter()
                .any(|t| t.stage == i32::from(pb::Stage::Opened) && t.orders == 2)
        },
    )
    .await;
    let opened = stats
        .stages
        .iter()
        .find(|t| t.stage == i32::from(pb::Stage::Opened))
        .unwrap();
    assert_eq!(opened.orders, 2);
    assert!(opened.p50_hours < 1.0 / 3600.0, "the quick one: {opened:?}");
    assert!(opened.p90_hours >= 2.0 / 3600.0, "the slow one: {opened:?}");
    assert_eq!(
        code(
            p.r.get_center_stats(pb::GetCenterStatsRequest {
                service_center_id: "sc-nowhere".into()
            })
            .await
        )
        .0,
        Code::NotFound
    );

    // Rebuilt from the log, the projections answer the same.
    let by_device = || {
        let mut r = p.r.clone();
        let imei = imei.clone();
        async move {
            r.list_repairs_by_device(pb::ListRepairsByDeviceRequest {
                device_id: device(&imei),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
        }
    };
    let timeline = |id: String| {
        let mut r = p.r.clone();
        async move {
            r.get_repair_timeline(order(&id))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let before = (
        by_device().await,
        timeline(slow.clone()).await,
        stats.clone(),
    );
    let directory = aftersales_repair::projections::OrderDirectory::new(p.repair.store.clone());
    aftersales_eventstore::projection::rebuild(&p.repair.store, &directory, |_| {})
        .await
        .unwrap();
    let after_stats =
        p.r.clone()
            .get_center_stats(pb::GetCenterStatsRequest {
                service_center_id: "sc-johannesburg-01".into(),
            })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        (by_device().await, timeline(slow).await, after_stats),
        before
    );
    p.stop().await;
}

/// A checked-in, covered order diagnosed, repaired, passed and made ready.
async fn repaired_and_ready(r: &mut RepairServiceClient<Channel>, id: &str) {
    r.diagnose(pb::DiagnoseRequest {
        order_id: id.to_owned(),
        fault_category: wpb::FaultCategory::Display.into(),
        fault_codes: Vec::new(),
        technician: "tech-7".into(),
    })
    .await
    .unwrap();
    r.start_repair(pb::StartRepairRequest {
        order_id: id.to_owned(),
        technician: "tech-7".into(),
    })
    .await
    .unwrap();
    r.record_qc_result(pb::RecordQcResultRequest {
        order_id: id.to_owned(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    r.mark_ready_for_return(order(id)).await.unwrap();
}

#[tokio::test]
async fn an_expected_ready_date_once_the_center_has_history_to_go_by() {
    let mut p = Platform::start().await;
    let imei = imei(12);
    register(&mut p, &imei, "ZA", 20).await;
    let open = || pb::OpenRepairRequest {
        service_center_id: "sc-johannesburg-01".into(),
        ..walk_in(&imei)
    };
    let check_in = |id: &str| pb::CheckInDeviceRequest {
        order_id: id.to_owned(),
        condition_notes: "ok".into(),
        ..Default::default()
    };
    let followed = p.r.open_repair(open()).await.unwrap().into_inner().order_id;
    p.r.check_in_device(check_in(&followed)).await.unwrap();
    let reader = p.r.clone();
    let expected = || {
        let mut r = reader.clone();
        let id = followed.clone();
        async move { r.get_expected_ready(order(&id)).await.unwrap().into_inner() }
    };
    let first = expected().await;
    assert_eq!(first.ready_by, None, "no past orders to go by: {first:?}");
    assert!(first.basis.contains("90th percentile"), "{first:?}");

    // Three covered orders go all the way to ready.
    for _ in 0..3 {
        let id = p.r.open_repair(open()).await.unwrap().into_inner().order_id;
        p.r.check_in_device(check_in(&id)).await.unwrap();
        repaired_and_ready(&mut p.r, &id).await;
    }
    #[allow(clippy::disallowed_methods)]
    let asked = chrono::Utc::now();
    let got = eventually(expected, |e| e.ready_by.is_some()).await;
    let ready_by = got.ready_by.unwrap();
    // The past orders took milliseconds per stage: ready about now.
    assert!(
        (asked.timestamp() - 1..=asked.timestamp() + 60).contains(&ready_by.seconds),
        "{got:?} asked at {asked}"
    );

    // Ready: nothing left to estimate.
    repaired_and_ready(&mut p.r, &followed).await;
    assert_eq!(expected().await.ready_by, None);
    assert_eq!(
        code(p.r.get_expected_ready(order("no-such-order")).await).0,
        Code::NotFound
    );
    p.stop().await;
}

#[tokio::test]
async fn an_order_opened_by_the_previous_release_is_served_listed_and_relayed() {
    use aftersales_eventstore::{EventStore as _, ExpectedVersion, Metadata, NewEvent, StreamId};
    use aftersales_repair::domain::order::{Channel, Coverage, Event};
    use prost::Message as _;

    // Written by the previous release: RepairOrderOpened v1 named the device
    // `imei:<digits>`.
    let imei = imei(31);
    let order_id = uuid::Uuid::now_v7().to_string();
    let today = Event::RepairOrderOpened {
        order_id: order_id.clone(),
        device: aftersales_core::types::DeviceKey::imei(&imei).unwrap(),
        channel: Channel::WalkIn {
            center_id: "sc-berlin-01".into(),
            visit_on: None,
        },
        customer_id: "cust-old".into(),
        symptoms: "flickers".into(),
        coverage: Coverage::Pending {
            why: "warranty did not answer".into(),
        },
        fault_date: None,
        serviced_in: None,
    };
    let mut v1 = serde_json::to_value(&today).unwrap();
    v1["device"] = serde_json::Value::String(format!("imei:{imei}"));
    let url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let store = aftersales_eventstore::AnyEventStore::connect(&url)
        .await
        .unwrap();
    store
        .append(
            &StreamId::parse(format!("repair-{order_id}")).unwrap(),
            ExpectedVersion::NoStream,
            vec![NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "RepairOrderOpened".into(),
                schema_version: 1,
                payload: serde_json::to_vec(&v1).unwrap(),
                personal: None,
                metadata: Metadata {
                    correlation_id: uuid::Uuid::now_v7(),
                    causation_id: None,
                    traceparent: None,
                    tracestate: None,
                    actor: "customer:cust-old".into(),
                    region: "test".into(),
                    recorded_at: aftersales_core::Clock::now(&aftersales_core::SystemClock)
                        - chrono::Duration::hours(1),
                },
            }],
        )
        .await
        .unwrap();

    // Today's release on that log, with NATS.
    let nats = aftersales_testkit::NatsServer::start().unwrap();
    let mut config = repair_config(url, None);
    config.common = config.common.with_nats(nats.url());
    let repair = aftersales_repair::server::start(config).await.unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{}", repair.addr))
        .await
        .unwrap();

    // The handler folds it.
    let order = r.get_repair(order(&order_id)).await.unwrap().into_inner();
    assert_eq!(order.device_id, device(&imei));
    // The projection lists it by device.
    let listed = eventually(
        || {
            let mut r = r.clone();
            let device_id = device(&imei);
            async move {
                r.list_repairs_by_device(pb::ListRepairsByDeviceRequest {
                    device_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .repairs
            }
        },
        |repairs| !repairs.is_empty(),
    )
    .await;
    assert_eq!(listed[0].order_id, order_id);
    // The relay publishes it under today's contract.
    let js = aftersales_messaging::connect(&nats.url(), "test-reader")
        .await
        .unwrap();
    let names = aftersales_messaging::Names::new("test").unwrap();
    let stream = js.get_stream(names.service_stream("repair")).await.unwrap();
    let published = eventually(
        || async {
            stream
                .get_last_raw_message_by_subject("aftersales.test.repair.RepairOrderOpened")
                .await
                .ok()
                .map(|m| m.payload)
        },
        Option::is_some,
    )
    .await
    .unwrap();
    let opened = aftersales_proto::repair::RepairOrderOpened::decode(published).unwrap();
    assert_eq!(
        (opened.order_id, opened.device_id),
        (order_id, device(&imei))
    );
    repair.stop().await.unwrap();
}

/// A process serves at most its configured number of live streams, all callers
/// together: one more is RESOURCE_EXHAUSTED, and a place frees when a stream ends.
#[tokio::test]
async fn live_streams_past_the_process_cap_are_refused() {
    let database = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let mut config = repair_config(database, None);
    config.common.max_live_streams = 3;
    let repair = aftersales_repair::server::start(config).await.unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{}", repair.addr))
        .await
        .unwrap();
    let id = r
        .open_repair(walk_in(&imei(50)))
        .await
        .unwrap()
        .into_inner()
        .order_id;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut watch = r.watch_repair(order(&id)).await.unwrap().into_inner();
        watch.message().await.unwrap().unwrap();
        held.push(watch);
    }
    let (c, m) = code(r.watch_repair(order(&id)).await);
    assert_eq!(c, Code::ResourceExhausted, "{m}");
    assert!(m.contains("live streams"), "{m}");
    drop(held.pop());
    let reopened = eventually(
        || {
            let mut r = r.clone();
            let id = id.clone();
            async move { r.watch_repair(order(&id)).await.is_ok() }
        },
        |ok| *ok,
    )
    .await;
    assert!(reopened, "a place frees when a stream ends");
    repair.stop().await.unwrap();
}
