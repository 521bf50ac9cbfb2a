//! Crash safety: 50 mail-in repairs in flight while each service is killed with
//! SIGKILL once, at a random point, and started again. Every journey completes,
//! and every effect happens once: each order's receipt and return, its two
//! parcels, and its emails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aftersales_proto::logistics as lpb;
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;

use crate::journey::{mail_in, register, stage, wants_email};
use crate::{Clients, Platform, imei};

const ORDERS: u64 = 50;

/// Moves an order one step if staff have something to do; errors (a service
/// down) are left for the next pass.
async fn push(c: &mut Clients, order: &str, stage: rpb::Stage) {
    let id = || order.to_owned();
    let _ = match stage {
        rpb::Stage::Received => c
            .repair
            .diagnose(rpb::DiagnoseRequest {
                order_id: id(),
                fault_category: wpb::FaultCategory::Battery.into(),
                fault_codes: vec![],
                technician: "tech".into(),
            })
            .await
            .map(drop),
        rpb::Stage::Diagnosed => c
            .repair
            .start_repair(rpb::StartRepairRequest {
                order_id: id(),
                technician: "tech".into(),
            })
            .await
            .map(drop),
        rpb::Stage::InRepair => c
            .repair
            .record_qc_result(rpb::RecordQcResultRequest {
                order_id: id(),
                passed: true,
                notes: String::new(),
            })
            .await
            .map(drop),
        rpb::Stage::QcPassed => c
            .repair
            .mark_ready_for_return(rpb::OrderRef { order_id: id() })
            .await
            .map(drop),
        _ => Ok(()),
    };
}

/// A pseudo-random number from the clock, for when to kill.
fn random_below(n: u64) -> u64 {
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    nanos % n.max(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_journeys_survive_a_kill_of_every_service_with_every_effect_once() {
    let mut p = Platform::start(100);
    let mut c = p.clients().await;
    let mut orders = Vec::new();
    let mut devices = Vec::new();
    for i in 0..ORDERS {
        let customer = format!("cust-crash-{i}");
        let id = imei(100 + i);
        devices.push(id.clone());
        wants_email(&mut c, &customer).await;
        register(&mut c, &id, &customer, 60).await;
        let order = c
            .repair
            .open_repair(mail_in(&id, &customer))
            .await
            .unwrap()
            .into_inner()
            .order_id;
        orders.push(order);
    }
    // Kill each service once, in a random order, at random points of the run.
    let mut victims = vec!["repair", "logistics", "notification", "warranty"];
    let rotate = usize::try_from(random_below(4)).unwrap_or(0);
    victims.rotate_left(rotate);
    let mut next_kill = Instant::now() + Duration::from_millis(500 + random_below(1500));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut stages: BTreeMap<String, rpb::Stage> = BTreeMap::new();
    loop {
        if Instant::now() >= next_kill
            && let Some(victim) = victims.pop()
        {
            let service = match victim {
                "repair" => &mut p.repair,
                "logistics" => &mut p.logistics,
                "notification" => &mut p.notification,
                _ => &mut p.warranty,
            };
            eprintln!("kill -9 {victim}");
            service.kill();
            tokio::time::sleep(Duration::from_millis(300 + random_below(700))).await;
            service.restart();
            next_kill = Instant::now() + Duration::from_millis(1000 + random_below(2000));
        }
        for order in &orders {
            if let Some(s) = stage(&c, order).await {
                stages.insert(order.clone(), s);
                push(&mut c, order, s).await;
            }
        }
        let closed = stages
            .values()
            .filter(|s| **s == rpb::Stage::Closed)
            .count();
        if closed == orders.len() && victims.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{closed} of {} closed; stages: {stages:?}",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every effect once.
    let repair_db = sqlx::PgPool::connect(&p.databases[1]).await.unwrap();
    for order in &orders {
        let types: Vec<String> = sqlx::query_scalar(
            "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_version",
        )
        .bind(format!("repair-{order}"))
        .fetch_all(&repair_db)
        .await
        .unwrap();
        for once in [
            "RepairOrderOpened",
            "DeviceReceived",
            "Diagnosed",
            "RepairStarted",
            "QcPassed",
            "ReadyForReturn",
            "ReturnDelivered",
        ] {
            assert_eq!(
                types.iter().filter(|t| *t == once).count(),
                1,
                "{order}: {once} in {types:?}"
            );
        }
        let shipments = c
            .logistics
            .list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
                repair_order_id: order.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .shipments;
        assert_eq!(shipments.len(), 2, "{order}: one parcel each way");
    }
    // Every device's history is intact in both services.
    for id in &devices {
        let device = Some(aftersales_proto::common::DeviceId {
            kind: Some(aftersales_proto::common::device_id::Kind::Imei(id.clone())),
        });
        let w = c
            .warranty
            .verify_device_history(wpb::VerifyDeviceHistoryRequest {
                device_id: device.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let r = c
            .repair
            .verify_repair_history(rpb::VerifyRepairHistoryRequest { device_id: device })
            .await
            .unwrap()
            .into_inner();
        assert!(w.intact && r.intact, "{id}: {w:?} {r:?}");
    }
    // Emails: one per step and customer, unless a send was cut off by the kill
    // (then marked `unknown`, never sent twice).
    let notification_db = sqlx::PgPool::connect(&p.databases[3]).await.unwrap();
    // Nine messages per customer (registered, opened, label, received, covered,
    // started, QC passed, shipped back, delivered), each in the inbox and by
    // email; emails go one at a time: wait until all are requested and none is
    // waiting or in flight.
    let expected = i64::try_from(9 * ORDERS).unwrap();
    let drained = Instant::now() + Duration::from_secs(120);
    loop {
        let (requested, waiting): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE status IN ('scheduled', 'retrying', 'sending')) \
             FROM notifications WHERE channel = 'email'",
        )
        .fetch_one(&notification_db)
        .await
        .unwrap();
        if requested == expected && waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < drained,
            "{requested} of {expected} emails requested, {waiting} still waiting"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let unknown: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM notifications WHERE channel = 'email' AND status = 'unknown'",
    )
    .fetch_one(&notification_db)
    .await
    .unwrap();
    assert!(
        unknown <= 1,
        "at most the one send the kill cut off: {unknown}"
    );
    let mail = p.smtp.messages();
    for i in 0..ORDERS {
        let to = format!("To: cust-crash-{i}@example.com");
        for subject in [
            "Subject: Your device has been delivered",
            "Subject: We have received your device",
        ] {
            let count = mail
                .iter()
                .filter(|m| m.contains(&to) && crate::readable(m).contains(subject))
                .count();
            assert!(count <= 1, "{to} got {subject} {count} times");
            if unknown == 0 {
                assert_eq!(count, 1, "{to}: {subject}");
            }
        }
    }
}
