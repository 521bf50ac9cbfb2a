//! The mail-in journey out of warranty (quote, QC failure, return by parcel) and
//! the covered walk-in, across the four processes; every step's email arrives
//! once; the audit passes, then fails after one raw SQL edit.

use std::time::Duration;

use aftersales_proto::common::{Address, CountryCode, DeviceId, device_id};
use aftersales_proto::logistics as lpb;
use aftersales_proto::notification as npb;
use aftersales_proto::operations::{self as opb, operations_client::OperationsClient};
use aftersales_proto::repair as rpb;
use aftersales_proto::warranty as wpb;
use aftersales_testkit::eventually;

use crate::{Clients, Platform, imei};

pub fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    })
}

pub async fn register(c: &mut Clients, imei: &str, customer: &str, days_ago: i64) {
    #[allow(clippy::disallowed_methods)]
    let bought = chrono::Utc::now().date_naive() - chrono::Duration::days(days_ago);
    c.warranty
        .register_device(wpb::RegisterDeviceRequest {
            device_id: device(imei),
            model: "Aurora 5".into(),
            purchase_date: bought.to_string(),
            country_of_purchase: Some(CountryCode { value: "DE".into() }),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: customer.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

pub async fn wants_email(c: &mut Clients, customer: &str) {
    c.notification
        .set_preferences(npb::Preferences {
            customer_id: customer.into(),
            email: format!("{customer}@example.com"),
            channels: vec![npb::ChannelKind::Email.into()],
            language: "en".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

pub fn mail_in(imei: &str, customer: &str) -> rpb::OpenRepairRequest {
    rpb::OpenRepairRequest {
        device_id: device(imei),
        channel: rpb::Channel::MailIn.into(),
        service_center_id: String::new(),
        customer_id: customer.into(),
        symptoms: "battery drains".into(),
        contact_address: Some(Address {
            recipient: "Ana Weber".into(),
            lines: vec!["Torstrasse 1".into()],
            city: "Berlin".into(),
            region: String::new(),
            postal_code: "10119".into(),
            country: Some(CountryCode { value: "DE".into() }),
            phone: String::new(),
        }),
        reported_fault: wpb::FaultCategory::Battery.into(),
        walk_in_day: String::new(),
        ..Default::default()
    }
}

pub async fn stage(c: &Clients, order: &str) -> Option<rpb::Stage> {
    let mut repair = c.repair.clone();
    let order = repair
        .get_repair(rpb::OrderRef {
            order_id: order.into(),
        })
        .await
        .ok()?
        .into_inner();
    rpb::Stage::try_from(order.stage).ok()
}

async fn reaches(c: &Clients, order: &str, wanted: rpb::Stage) {
    let got = eventually(|| stage(c, order), |s| *s == Some(wanted)).await;
    assert_eq!(got, Some(wanted), "order {order}");
}

fn order_ref(order: &str) -> rpb::OrderRef {
    rpb::OrderRef {
        order_id: order.into(),
    }
}

/// Opens a walk-in at `sc-berlin-01` for `customer`'s phone and checks it in.
async fn open_walk_in(c: &mut Clients, imei: &str, customer: &str) -> String {
    let order = c
        .repair
        .open_repair(rpb::OpenRepairRequest {
            channel: rpb::Channel::WalkIn.into(),
            service_center_id: "sc-berlin-01".into(),
            contact_address: None,
            walk_in_day: aftersales_testkit::walk_in_day(),
            ..mail_in(imei, customer)
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    c.repair
        .check_in_device(rpb::CheckInDeviceRequest {
            order_id: order.clone(),
            condition_notes: "as new".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    order
}

/// The workshop's part of a received repair: a battery fault diagnosed, repaired,
/// through QC and ready to go back; the order as diagnosed.
pub async fn workshop(c: &mut Clients, order: &str) -> rpb::RepairOrder {
    let diagnosed = c
        .repair
        .diagnose(rpb::DiagnoseRequest {
            order_id: order.into(),
            fault_category: wpb::FaultCategory::Battery.into(),
            fault_codes: vec![],
            technician: "tech-2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    c.repair
        .start_repair(rpb::StartRepairRequest {
            order_id: order.into(),
            technician: "tech-2".into(),
        })
        .await
        .unwrap();
    c.repair
        .record_qc_result(rpb::RecordQcResultRequest {
            order_id: order.into(),
            passed: true,
            notes: String::new(),
        })
        .await
        .unwrap();
    c.repair
        .mark_ready_for_return(order_ref(order))
        .await
        .unwrap();
    diagnosed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_in_repair_out_of_warranty_and_a_covered_walk_in_across_four_processes() {
    let mut p = Platform::start(40);
    let mut c = p.clients().await;
    let old = imei(1);
    wants_email(&mut c, "cust-mail").await;
    register(&mut c, &old, "cust-mail", 3 * 365).await; // long out of warranty

    let order = c
        .repair
        .open_repair(mail_in(&old, "cust-mail"))
        .await
        .unwrap()
        .into_inner()
        .order_id;
    // A phone whose warranty ended three days ago, for a fault that appeared ten
    // days ago: it arrives after the end, and is covered all the same.
    let late = imei(3);
    register(&mut c, &late, "cust-late", 2 * 365 + 3).await;
    #[allow(clippy::disallowed_methods)]
    let fault_day = chrono::Utc::now().date_naive() - chrono::Duration::days(10);
    let late_order = c
        .repair
        .open_repair(rpb::OpenRepairRequest {
            fault_date: fault_day.to_string(),
            ..mail_in(&late, "cust-late")
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    // Label, inbound scans and delivery: the sandbox carrier does it all.
    reaches(&c, &order, rpb::Stage::Received).await;
    reaches(&c, &late_order, rpb::Stage::Received).await;
    let late_diagnosis = c
        .repair
        .diagnose(rpb::DiagnoseRequest {
            order_id: late_order.clone(),
            fault_category: wpb::FaultCategory::Battery.into(),
            fault_codes: vec![],
            technician: "tech-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let coverage = late_diagnosis.coverage.unwrap();
    assert!(
        coverage.covered,
        "decided for the fault's day: {coverage:?}"
    );
    assert_eq!(late_diagnosis.fault_date, fault_day.to_string());
    let diagnosed = c
        .repair
        .diagnose(rpb::DiagnoseRequest {
            order_id: order.clone(),
            fault_category: wpb::FaultCategory::Battery.into(),
            fault_codes: vec!["BAT-01".into()],
            technician: "tech-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!diagnosed.coverage.unwrap().covered, "out of warranty");
    #[allow(clippy::disallowed_methods)]
    let valid_until = chrono::Utc::now() + chrono::Duration::days(7);
    c.repair
        .issue_quote(rpb::IssueQuoteRequest {
            order_id: order.clone(),
            lines: vec![rpb::QuoteLine {
                description: "battery".into(),
                is_labour: false,
                amount: Some(aftersales_proto::common::Money {
                    minor_units: 8900,
                    currency: "EUR".into(),
                }),
            }],
            valid_until: Some(prost_types_timestamp(valid_until)),
        })
        .await
        .unwrap();
    c.repair.approve_quote(order_ref(&order)).await.unwrap();
    c.repair
        .start_repair(rpb::StartRepairRequest {
            order_id: order.clone(),
            technician: "tech-1".into(),
        })
        .await
        .unwrap();
    for passed in [false, true] {
        c.repair
            .record_qc_result(rpb::RecordQcResultRequest {
                order_id: order.clone(),
                passed,
                notes: if passed {
                    "ok".into()
                } else {
                    "charging port loose".into()
                },
            })
            .await
            .unwrap();
    }
    c.repair
        .mark_ready_for_return(order_ref(&order))
        .await
        .unwrap();
    // Outbound parcel, scans, delivery, closed.
    reaches(&c, &order, rpb::Stage::Closed).await;
    // Listed from a read model, which follows the log shortly after.
    let shipments = eventually(
        || {
            let mut l = c.logistics.clone();
            let order = order.clone();
            async move {
                l.list_shipments_by_repair(lpb::ListShipmentsByRepairRequest {
                    repair_order_id: order,
                })
                .await
                .unwrap()
                .into_inner()
                .shipments
            }
        },
        |s| s.len() == 2,
    )
    .await;
    assert_eq!(shipments.len(), 2);
    assert!(
        shipments
            .iter()
            .all(|s| s.state == i32::from(lpb::ShipmentState::Delivered))
    );

    // Every step the customer cares about arrived by email, once.
    let opened = format!("Your repair {order} is open");
    let subjects = [
        opened.as_str(),
        "Your shipping label is ready",
        "We have received your device",
        "Action needed: approve your repair quote",
        "Your repair has started",
        "Your device passed quality control",
        "Your device is on its way back",
        "Your device has been delivered",
    ];
    eventually(
        || async {
            subjects
                .iter()
                .all(|s| p.emails_containing(&format!("Subject: {s}")) >= 1)
        },
        |all| *all,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for subject in subjects {
        assert_eq!(
            p.emails_containing(&format!("Subject: {subject}")),
            1,
            "{subject}"
        );
    }
    assert!(p.emails_containing("EUR 89.00") >= 1, "the quote's total");

    // The covered walk-in, ending in collection.
    let recent = imei(2);
    wants_email(&mut c, "cust-walk").await;
    register(&mut c, &recent, "cust-walk", 30).await;
    let walk_in = open_walk_in(&mut c, &recent, "cust-walk").await;
    let diagnosed = workshop(&mut c, &walk_in).await;
    assert!(diagnosed.coverage.unwrap().covered);
    c.repair
        .confirm_collected(order_ref(&walk_in))
        .await
        .unwrap();
    assert_eq!(stage(&c, &walk_in).await, Some(rpb::Stage::Closed));
    let told = eventually(
        || async { p.emails_containing("Subject: Your device is ready for pickup") },
        |n| *n >= 1,
    )
    .await;
    assert_eq!(told, 1);
    let claims = c
        .warranty
        .get_device_history(wpb::GetDeviceHistoryRequest {
            device_id: device(&recent),
            as_of: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        claims
            .events
            .iter()
            .any(|e| e.event_type == "ClaimRecorded"),
        "the covered repair's claim"
    );

    // Audit: intact everywhere, then one raw edit in repair's database is caught.
    for id in [&old, &recent] {
        let w = c
            .warranty
            .verify_device_history(wpb::VerifyDeviceHistoryRequest {
                device_id: device(id),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let r = c
            .repair
            .verify_repair_history(rpb::VerifyRepairHistoryRequest {
                device_id: device(id),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(w.intact && r.intact, "{w:?} {r:?}");
    }
    let pool = sqlx::PgPool::connect(&p.databases[1]).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    let edited = sqlx::query(
        "UPDATE events SET payload = convert_to(replace(convert_from(payload, 'UTF8'), \
         'tech-1', 'tech-9'), 'UTF8') WHERE stream_id = $1 AND event_type = 'RepairStarted'",
    )
    .bind(format!("repair-{order}"))
    .execute(&mut *tx)
    .await
    .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    sqlx::raw_sql("ALTER TABLE events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = c
        .repair
        .verify_repair_history(rpb::VerifyRepairHistoryRequest {
            device_id: device(&old),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!r.intact && r.first_bad_order_id == order, "{r:?}");

    // Operators see the streams and an empty dead-letter queue.
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(crate::binary("aftersales"))
            .args(args)
            .args(["--nats-url", &p.nats.url(), "--region", "e2e"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let stats = cli(&["--json", "streams", "stats"]);
    let repair_stream: serde_json::Value = stats
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|s| s["stream"] == "AFTERSALES_E2E_REPAIR")
        .unwrap();
    assert!(
        repair_stream["messages"].as_u64().unwrap() >= 15,
        "{repair_stream}"
    );
    let consumers = repair_stream["consumers"].as_array().unwrap();
    assert!(
        consumers
            .iter()
            .any(|c| c["name"] == "logistics-from-repair" && c["pending"] == 0),
        "{repair_stream}"
    );
    assert_eq!(cli(&["dlq", "list"]), "", "no dead letters");
    // And each service says so itself, over gRPC: its consumers on NATS, its
    // relay and read models caught up, no dead letters.
    for (name, url) in [
        ("warranty", p.warranty.url()),
        ("repair", p.repair.url()),
        ("logistics", p.logistics.url()),
        ("notification", p.notification.url()),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy();
        let ops = OperationsClient::new(channel);
        let backlog = eventually(
            || {
                let mut ops = ops.clone();
                async move {
                    ops.get_backlog(opb::GetBacklogRequest {})
                        .await
                        .unwrap()
                        .into_inner()
                }
            },
            |b| {
                b.projections.iter().all(|l| l.positions_behind == 0)
                    && b.consumers.iter().all(|c| c.pending == 0)
                    && b.relay.as_ref().is_none_or(|r| r.positions_behind == 0)
            },
        )
        .await;
        assert_eq!(backlog.service, name);
        assert_eq!(backlog.transport, "nats");
        assert!(backlog.log_position > 0, "{backlog:?}");
        assert!(!backlog.projections.is_empty(), "{backlog:?}");
        if name == "logistics" {
            assert!(
                backlog
                    .consumers
                    .iter()
                    .any(|c| c.consumer == "logistics-from-repair" && c.source == "repair"),
                "{backlog:?}"
            );
        }
        if name != "notification" {
            assert!(backlog.relay.is_some(), "{name} publishes: {backlog:?}");
        }
        let letters = ops
            .clone()
            .list_dead_letters(opb::ListDeadLettersRequest {
                consumer: String::new(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(letters.dead_letters.is_empty(), "{letters:?}");
        let unknown = ops
            .clone()
            .replay_dead_letter(opb::ReplayDeadLetterRequest {
                consumer: "nobody".into(),
                id: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    }

    // SIGTERM: each process reports NOT_SERVING, drains and exits cleanly.
    for service in [
        &mut p.notification,
        &mut p.logistics,
        &mut p.repair,
        &mut p.warranty,
    ] {
        let status = service.terminate().unwrap();
        assert!(status.success(), "{} exited with {status}", service.name);
    }
}

fn prost_types_timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A customer following their inbox, from just after the repair was opened, sees
/// each later step's message as it is told: the same messages their inbox lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_watching_their_inbox_is_told_each_step_live() {
    let p = Platform::start(40);
    let mut c = p.clients().await;
    let customer = "cust-live";
    c.notification
        .set_preferences(npb::Preferences {
            customer_id: customer.into(),
            channels: vec![npb::ChannelKind::InApp.into()],
            language: "en".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let phone = imei(3);
    register(&mut c, &phone, customer, 30).await;
    let order = open_walk_in(&mut c, &phone, customer).await;
    let mut watch = c
        .notification
        .watch_notifications(npb::CustomerRef {
            customer_id: customer.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let told = tokio::spawn(async move {
        let mut told = Vec::new();
        while let Ok(Ok(Some(message))) =
            tokio::time::timeout(Duration::from_secs(5), watch.message()).await
        {
            told.push(message.kind);
        }
        told
    });
    workshop(&mut c, &order).await;
    // Once nothing more came for five seconds.
    let told = told.await.unwrap();
    let mut listed: Vec<String> = c
        .notification
        .list_notifications(npb::ListNotificationsRequest {
            customer_id: customer.into(),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .notifications
        .into_iter()
        .map(|n| n.kind)
        .collect();
    listed.reverse();
    let later = [
        "diagnosed_covered",
        "repair_started",
        "qc_passed",
        "ready_for_pickup",
    ];
    assert_eq!(&listed[listed.len() - later.len()..], later, "{listed:?}");
    assert_eq!(
        &told[told.len().saturating_sub(later.len())..],
        later,
        "{told:?}"
    );
}
