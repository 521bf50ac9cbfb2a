//! Coverage as of an earlier time, tamper evidence and the projections.

use std::time::Duration;

use aftersales_eventstore::{EventStore as _, Projection as _};
use aftersales_proto::warranty as pb;
use aftersales_testkit::eventually;

use crate::harness::*;

#[tokio::test]
async fn coverage_and_history_as_of_an_earlier_time() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "FR", &days_ago(20), "cust-1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    #[allow(clippy::disallowed_methods)]
    let before_void = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.client
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imei),
            reason: "tampering".into(),
            evidence: vec![],
        })
        .await
        .unwrap();

    let then = prost_types::Timestamp {
        seconds: before_void.timestamp(),
        nanos: i32::try_from(before_void.timestamp_subsec_nanos()).unwrap(),
    };
    let past = s
        .client
        .check_coverage(pb::CheckCoverageRequest {
            as_of: Some(then),
            ..coverage(&imei, pb::FaultCategory::Display)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(past.covered, "{}", past.explanation);
    let now = s
        .client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(!now.covered);

    let history = s
        .client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            as_of: Some(then),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        history
            .events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["DeviceRegistered"]
    );
    let full = s
        .client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            as_of: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.events.len(), 2);
    assert!(full.events.iter().all(|e| e.hash.len() == 64));
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn an_edited_row_fails_verification() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    let id = by_imei(&imei);
    s.client
        .register_device(registration(&imei, "IT", &days_ago(20), "cust-1"))
        .await
        .unwrap();
    s.client
        .transfer_ownership(pb::TransferOwnershipRequest {
            device_id: id.clone(),
            new_customer_id: "cust-2".into(),
        })
        .await
        .unwrap();
    let intact = s
        .client
        .verify_device_history(pb::VerifyDeviceHistoryRequest {
            device_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(intact.intact);
    assert_eq!(intact.events_checked, 2);
    // A trusted head kept elsewhere also verifies.
    let anchored = s
        .client
        .verify_device_history(pb::VerifyDeviceHistoryRequest {
            device_id: id.clone(),
            trusted_version: 2,
            trusted_hash: intact.head_hash.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(anchored.intact);

    s.sql("ALTER TABLE events DISABLE TRIGGER USER").await;
    s.sql("UPDATE events SET payload = convert_to(replace(convert_from(payload, 'UTF8'), 'cust-2', 'cust-3'), 'UTF8') WHERE event_type = 'OwnershipTransferred'").await;
    let report = s
        .client
        .verify_device_history(pb::VerifyDeviceHistoryRequest {
            device_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!report.intact);
    assert_eq!(report.first_bad_version, 2);
    assert!(report.problem.contains("event 2"), "{}", report.problem);

    // A removed tail only shows against the trusted head.
    s.sql("DELETE FROM events WHERE event_type = 'OwnershipTransferred'")
        .await;
    let truncated = s
        .client
        .verify_device_history(pb::VerifyDeviceHistoryRequest {
            device_id: id,
            trusted_version: 2,
            trusted_hash: intact.head_hash,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!truncated.intact);
    assert!(
        truncated.problem.contains("removed"),
        "{}",
        truncated.problem
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn projections_list_devices_by_customer_and_expiry_and_rebuild() {
    projections_list_and_rebuild(Server::start(None).await).await;
}

#[tokio::test]
async fn projections_list_devices_by_customer_and_expiry_and_rebuild_on_sqlite() {
    projections_list_and_rebuild(Server::start_on_sqlite().await).await;
}

async fn projections_list_and_rebuild(mut s: Server) {
    let customer = format!("cust-{}", fresh_imei());
    let mut imeis = Vec::new();
    for days in [10, 20, 30] {
        let imei = fresh_imei();
        s.client
            .register_device(registration(&imei, "US", &days_ago(days), &customer))
            .await
            .unwrap();
        imeis.push(imei);
    }
    let list =
        |mut client: aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient<
            tonic::transport::Channel,
        >,
         token: String,
         page_size: u32| {
            let customer = customer.clone();
            async move {
                client
                    .list_devices_by_customer(pb::ListDevicesByCustomerRequest {
                        customer_id: customer,
                        page_size,
                        page_token: token,
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
    // The directory follows the log: wait until it has all three.
    eventually(
        || list(s.client.clone(), String::new(), 100),
        |r| r.devices.len() == 3,
    )
    .await;
    let first = list(s.client.clone(), String::new(), 2).await;
    assert_eq!(first.devices.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = list(s.client.clone(), first.next_page_token.clone(), 2).await;
    assert_eq!(second.devices.len(), 1);
    assert!(second.next_page_token.is_empty());

    // Bought 350 days ago in the US: the 12-month warranty ends within 30 days.
    let expiring = fresh_imei();
    s.client
        .register_device(registration(&expiring, "US", &days_ago(350), &customer))
        .await
        .unwrap();
    let soon = eventually(
        || {
            let mut c = s.client.clone();
            async move {
                c.list_expiring_warranties(pb::ListExpiringWarrantiesRequest {
                    days: 30,
                    page_size: 500,
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |r| r.devices.iter().any(|d| d.device_id == by_imei(&expiring)),
    )
    .await;
    assert!(
        soon.devices
            .iter()
            .any(|d| d.device_id == by_imei(&expiring))
    );
    assert!(
        !soon
            .devices
            .iter()
            .any(|d| d.device_id == by_imei(&imeis[0]))
    );

    // Recorded decisions, by policy version.
    let mut record = coverage(&imeis[0], pb::FaultCategory::Display);
    record.record_decision = true;
    s.client.check_coverage(record.clone()).await.unwrap();
    s.client
        .check_coverage(pb::CheckCoverageRequest {
            fault_category: pb::FaultCategory::LiquidDamage.into(),
            ..record
        })
        .await
        .unwrap();
    let store = s.running.store.clone();
    let counts = eventually(
        || aftersales_warranty::projections::decisions_by_policy(&store),
        |r| {
            r.as_ref()
                .is_ok_and(|rows| rows.iter().map(|row| row.2).sum::<u64>() == 2)
        },
    )
    .await
    .unwrap();
    assert_eq!(counts, vec![("us-limited".to_owned(), 1, 2, 1)]);

    // A later event changes what the directory lists.
    s.client
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imeis[2]),
            reason: "unauthorized modification of the mainboard".into(),
            evidence: vec![],
        })
        .await
        .unwrap();
    let listed =
        || aftersales_warranty::projections::devices_of_customer(&store, &customer, "", 100);
    let before = eventually(listed, |r| {
        r.as_ref()
            .is_ok_and(|rows| rows.iter().filter(|d| d.voided).count() == 1)
    })
    .await
    .unwrap();

    // Rebuilt from the log, the directory is the same.
    let directory = aftersales_warranty::projections::DeviceDirectory::new(store.clone());
    let read = aftersales_eventstore::projection::rebuild(&store, &directory, |_| {})
        .await
        .unwrap();
    assert!(read >= 6);
    let after = aftersales_warranty::projections::devices_of_customer(&store, &customer, "", 100)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(after.len(), 4);

    // However the log falls into batches, a device whose history a batch holds
    // only in part is folded from its stream: the same directory.
    let log = store.read_all(0, 10_000).await.unwrap();
    for cut in 0..=log.len() {
        let mut tx = store.begin().await.unwrap();
        directory.reset(&mut tx).await.unwrap();
        directory.apply_batch(&log[..cut], &mut tx).await.unwrap();
        directory.apply_batch(&log[cut..], &mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(listed().await.unwrap(), before, "batches cut at {cut}");
    }
    s.running.stop().await.unwrap();
}

fn stamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap(),
    }
}

#[allow(clippy::disallowed_methods)]
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The valid time (the day of the fault) and the knowledge time (what the log
/// held then) are separate questions: a late registration answers for earlier
/// days, and "as known at" reproduces what was answered then.
#[tokio::test]
async fn coverage_for_the_day_of_the_fault_as_known_at_a_moment() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    let before_registration = now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Bought 369 days ago in the US (12 months), registered only today.
    s.client
        .register_device(registration(&imei, "US", &days_ago(369), "cust-1"))
        .await
        .unwrap();
    let ask =
        |fault_date: String, known_at: Option<prost_types::Timestamp>| pb::CheckCoverageRequest {
            fault_date,
            known_at,
            ..coverage(&imei, pb::FaultCategory::Display)
        };
    let inside = s
        .client
        .check_coverage(ask(days_ago(100), None))
        .await
        .unwrap()
        .into_inner();
    assert!(inside.covered, "{}", inside.explanation);
    assert_eq!(inside.reason, "within_base_warranty");
    assert_eq!(inside.decided_for, days_ago(100));
    assert!(inside.known_at.is_some());
    let rule = inside.rule.unwrap();
    assert_eq!(
        (
            rule.figure.as_str(),
            rule.starts.as_str(),
            rule.ends.as_str()
        ),
        ("phone_months", days_ago(369).as_str(), days_ago(4).as_str())
    );
    let source = rule.source.unwrap();
    assert_eq!(source.kind, "maker");
    assert!(
        source.reference.contains("docs/warranty-terms.md"),
        "{source:?}"
    );
    let after = s
        .client
        .check_coverage(ask(days_ago(2), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((after.covered, after.reason.as_str()), (false, "expired"));
    let before_purchase = s
        .client
        .check_coverage(ask(days_ago(400), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before_purchase.reason, "before_purchase");
    // As known before it was registered: nobody knew the phone.
    let (c, _) = code(
        s.client
            .check_coverage(ask(days_ago(400), Some(stamp(before_registration))))
            .await,
    );
    assert_eq!(c, tonic::Code::NotFound);

    // A recorded decision, reproduced exactly as known then after a void.
    let recorded = s
        .client
        .check_coverage(pb::CheckCoverageRequest {
            record_decision: true,
            ..ask(days_ago(10), None)
        })
        .await
        .unwrap()
        .into_inner();
    assert!(recorded.covered);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after_recording = now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.client
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imei),
            reason: "tampering".into(),
            evidence: vec![],
        })
        .await
        .unwrap();
    let then = s
        .client
        .check_coverage(ask(days_ago(10), Some(stamp(after_recording))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            then.covered,
            &then.reason,
            &then.rule,
            then.decided_for.as_str()
        ),
        (
            recorded.covered,
            &recorded.reason,
            &recorded.rule,
            recorded.decided_for.as_str()
        )
    );
    let voided = s
        .client
        .check_coverage(ask(days_ago(10), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(voided.reason, "voided");

    // The history keeps both times: recorded until `known_at`, in effect until
    // `effective_until`.
    let history = |known_at, effective_until: String| pb::GetDeviceHistoryRequest {
        device_id: by_imei(&imei),
        as_of: None,
        known_at,
        effective_until,
        ..Default::default()
    };
    let all = s
        .client
        .get_device_history(history(None, String::new()))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        all.iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["DeviceRegistered", "CoverageDecided", "WarrantyVoided"]
    );
    assert_eq!(all[0].effective_on, days_ago(369));
    assert_eq!(all[1].effective_on, days_ago(10));
    let known_then = s
        .client
        .get_device_history(history(Some(stamp(after_recording)), String::new()))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(known_then.len(), 2);
    let in_effect_earlier = s
        .client
        .get_device_history(history(None, days_ago(50)))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        in_effect_earlier
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
        ["DeviceRegistered"]
    );

    // Bad times are refused, naming the field, and write nothing.
    let written = all.len();
    let future = stamp(now() + chrono::Duration::hours(1));
    let yesterday = stamp(now() - chrono::Duration::days(1));
    let cases = [
        (ask(days_ago(-1), None), "fault_date"),
        (ask(days_ago(0), Some(yesterday)), "fault_date"),
        (ask(String::new(), Some(future)), "known_at"),
        (ask("2026-13-01".into(), None), "fault_date"),
        (
            pb::CheckCoverageRequest {
                as_of: Some(stamp(now())),
                ..ask(days_ago(1), None)
            },
            "as_of",
        ),
        (
            pb::CheckCoverageRequest {
                record_decision: true,
                ..ask(days_ago(3), Some(stamp(after_recording)))
            },
            "known_at",
        ),
    ];
    for (request, field) in cases {
        let (c, m) = code(s.client.check_coverage(request).await);
        assert_eq!(c, tonic::Code::InvalidArgument, "{m}");
        assert!(m.starts_with(field), "{field}: {m}");
    }
    let unchanged = s
        .client
        .get_device_history(history(None, String::new()))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(unchanged.len(), written);
    s.running.stop().await.unwrap();
}

/// A repair that reached the center after expiry, for a fault that appeared
/// before it, is claimed against the warranty; the same claim dated today is not.
#[tokio::test]
async fn a_claim_is_decided_for_the_day_the_fault_appeared() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "US", &days_ago(369), "cust-1"))
        .await
        .unwrap();
    let claim = |order: &str, fault_date: String| pb::RecordClaimRequest {
        device_id: by_imei(&imei),
        repair_order_id: order.into(),
        fault_category: pb::FaultCategory::Display.into(),
        under_legal_guarantee: false,
        fault_date,
    };
    let (c, m) = code(s.client.record_claim(claim("r-late", String::new())).await);
    assert_eq!(c, tonic::Code::FailedPrecondition, "{m}");
    let (c, m) = code(s.client.record_claim(claim("r-future", days_ago(-1))).await);
    assert_eq!(
        (c, m.starts_with("fault_date")),
        (tonic::Code::InvalidArgument, true),
        "{m}"
    );
    let recorded = s
        .client
        .record_claim(claim("r-1", days_ago(10)))
        .await
        .unwrap()
        .into_inner();
    assert!(!recorded.duplicate);
    assert_eq!(recorded.device.unwrap().claims, 1);

    // Germany, bought under the policy of 31 July 2026: the first repair under
    // the legal guarantee extends it by 12 months, a second does not.
    let german = fresh_imei();
    s.client
        .register_device(registration(&german, "DE", &days_ago(30), "cust-1"))
        .await
        .unwrap();
    let legal_end = |d: Option<pb::Device>| d.unwrap().legal_guarantee_end;
    let first = s
        .client
        .record_claim(pb::RecordClaimRequest {
            device_id: by_imei(&german),
            ..claim("r-de-1", days_ago(3))
        })
        .await
        .unwrap()
        .into_inner();
    let bought: chrono::NaiveDate = days_ago(30).parse().unwrap();
    let extended = bought + chrono::Months::new(36);
    assert_eq!(legal_end(first.device), extended.to_string());
    let second = s
        .client
        .record_claim(pb::RecordClaimRequest {
            device_id: by_imei(&german),
            ..claim("r-de-2", days_ago(1))
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(legal_end(second.device), extended.to_string());
    let history = s
        .client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&german),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let claims: Vec<serde_json::Value> = history
        .events
        .iter()
        .filter(|e| e.event_type == "ClaimRecorded")
        .map(|e| serde_json::from_str(&e.payload_json).unwrap())
        .collect();
    assert_eq!(claims.len(), 2);
    assert!(
        claims.iter().all(|c| c["under_legal_guarantee"] == true),
        "{claims:?}"
    );
    s.running.stop().await.unwrap();
}

/// A history pages by version, and a token it did not give is refused.
#[tokio::test]
async fn a_device_history_is_read_a_page_at_a_time() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "DE", &days_ago(20), "cust-1"))
        .await
        .unwrap();
    for _ in 0..6 {
        s.client
            .check_coverage(pb::CheckCoverageRequest {
                record_decision: true,
                ..coverage(&imei, pb::FaultCategory::Display)
            })
            .await
            .unwrap();
    }
    let page = |page_token: String| {
        let mut client = s.client.clone();
        let device_id = by_imei(&imei);
        async move {
            client
                .get_device_history(pb::GetDeviceHistoryRequest {
                    device_id,
                    page_size: 3,
                    page_token,
                    ..Default::default()
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let mut versions = Vec::new();
    let mut tokens = Vec::new();
    let mut token = String::new();
    loop {
        let read = page(token).await.unwrap();
        versions.extend(read.events.iter().map(|e| e.version));
        if read.next_page_token.is_empty() {
            break;
        }
        tokens.push(read.next_page_token.clone());
        token = read.next_page_token;
    }
    assert_eq!(versions, (1..=7).collect::<Vec<u64>>());
    assert_eq!(tokens, ["4", "7"]);
    for forged in ["0", "x", "-1"] {
        let refused = page(forged.into()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{forged}");
    }
    s.running.stop().await.unwrap();
}

/// A snapshot is outside the hash chain: verification folds the events up to
/// it and names a snapshot that says something else.
#[tokio::test]
async fn an_edited_snapshot_fails_verification() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "DE", &days_ago(20), "cust-1"))
        .await
        .unwrap();
    // 99 recorded decisions over two days (at most 50 a day): the 100th event
    // crosses the snapshot interval.
    for n in 0..99 {
        if n == 50 {
            let refused = s
                .client
                .check_coverage(pb::CheckCoverageRequest {
                    record_decision: true,
                    ..coverage(&imei, pb::FaultCategory::Display)
                })
                .await
                .unwrap_err();
            assert_eq!(
                refused.code(),
                tonic::Code::ResourceExhausted,
                "{refused:?}"
            );
            assert_eq!(s.events().await, 51, "the refused decision wrote nothing");
            s.clock.advance(chrono::Duration::days(1));
        }
        s.client
            .check_coverage(pb::CheckCoverageRequest {
                record_decision: true,
                ..coverage(&imei, pb::FaultCategory::Display)
            })
            .await
            .unwrap();
    }
    let verify =
        |mut client: aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient<
            tonic::transport::Channel,
        >| {
            let id = by_imei(&imei);
            async move {
                client
                    .verify_device_history(pb::VerifyDeviceHistoryRequest {
                        device_id: id,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        };
    let intact = verify(s.client.clone()).await;
    assert!(intact.intact, "{}", intact.problem);
    assert_eq!(intact.events_checked, 100);
    s.sql(
        "UPDATE snapshots SET payload = convert_to(replace(convert_from(payload, 'UTF8'), \
         '\"cust-1\"', '\"cust-evil\"'), 'UTF8')",
    )
    .await;
    let edited = verify(s.client.clone()).await;
    assert!(!edited.intact);
    assert_eq!(edited.first_bad_version, 100);
    assert!(
        edited.problem.contains("snapshot at version 100"),
        "{}",
        edited.problem
    );
    s.running.stop().await.unwrap();
}

/// Someone with the database but not the service's notary key rewrites a
/// history and hashes the chain again: it verifies against its own hashes, but
/// not against the head the service published outside the database. A message
/// on the head's subject that the key did not sign is named as forged.
#[tokio::test]
async fn a_rehashed_history_fails_against_the_head_published_outside_the_database() {
    let nats = aftersales_testkit::NatsServer::start().unwrap();
    let mut s = Server::start(Some(nats.url())).await;
    let imei = fresh_imei();
    let id = by_imei(&imei);
    s.client
        .register_device(registration(&imei, "IT", &days_ago(20), "cust-1"))
        .await
        .unwrap();
    s.client
        .transfer_ownership(pb::TransferOwnershipRequest {
            device_id: id.clone(),
            new_customer_id: "cust-2".into(),
        })
        .await
        .unwrap();
    let verify = || {
        let mut client = s.client.clone();
        let id = id.clone();
        async move {
            client
                .verify_device_history(pb::VerifyDeviceHistoryRequest {
                    device_id: id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let anchored = eventually(verify, |v| {
        v.checked_against.contains("published") && v.checked_against.contains("version 2")
    })
    .await;
    assert!(anchored.intact, "{}", anchored.problem);

    // As the owner: the transfer now names cust-3, and every link is recomputed.
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &s.running.store else {
        panic!("PostgreSQL");
    };
    let stream = aftersales_eventstore::StreamId::parse(format!("device-imei-{imei}")).unwrap();
    let mut events = aftersales_eventstore::EventStore::read_stream(pg, &stream, 1, 10)
        .await
        .unwrap();
    let mut previous = aftersales_eventstore::chain::GENESIS;
    let mut owner = <sqlx::PgConnection as sqlx::Connection>::connect(&s.owner_url)
        .await
        .unwrap();
    sqlx::raw_sql("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(&mut owner)
        .await
        .unwrap();
    for event in &mut events {
        event.payload = String::from_utf8(event.payload.clone())
            .unwrap()
            .replace("cust-2", "cust-3")
            .into_bytes();
        event.hash = aftersales_eventstore::chain::link(&previous, event);
        previous = event.hash;
        sqlx::query("UPDATE events SET payload = $1, hash = $2 WHERE event_id = $3")
            .bind(&event.payload)
            .bind(&event.hash[..])
            .bind(event.event_id)
            .execute(&mut owner)
            .await
            .unwrap();
    }
    let rewritten = aftersales_eventstore::EventStore::verify_stream(pg, &stream, None)
        .await
        .unwrap();
    assert!(rewritten.is_intact(), "the rewritten chain holds by itself");
    let verdict = verify().await;
    assert!(!verdict.intact);
    assert_eq!(verdict.first_bad_version, 2);
    assert!(
        verdict.problem.contains("published") && verdict.problem.contains("hashed again"),
        "{}",
        verdict.problem
    );

    // A head on the stream's subject not signed by the service's key.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let names = aftersales_messaging::Names::new(REGION).unwrap();
    let js = async_nats::jetstream::new(client);
    js.publish(
        names.head_subject("warranty", stream.as_str()),
        "eyJhbGciOiJub25lIn0.e30.".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let forged = verify().await;
    assert!(!forged.intact);
    assert!(
        forged
            .problem
            .contains("not signed by this service's notary key"),
        "{}",
        forged.problem
    );
    // The service appends on top of the rewritten history; the publisher will
    // not sign a head that does not contain the one it published, so the
    // verdict stays broken.
    s.client
        .clone()
        .transfer_ownership(pb::TransferOwnershipRequest {
            device_id: id.clone(),
            new_customer_id: "cust-4".into(),
        })
        .await
        .unwrap();
    for _ in 0..10 {
        let still = verify().await;
        assert!(
            !still.intact,
            "a head over a rewritten history was published"
        );
        assert!(
            !still.checked_against.contains("version 3"),
            "{}",
            still.checked_against
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    s.running.stop().await.unwrap();
}
