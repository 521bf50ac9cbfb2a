//! Every RPC, every bad input, races, time travel, tampering and the published events.

use std::time::Duration;

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::warranty as pb;
use aftersales_testkit::eventually;
use tonic::Code;

use crate::harness::{REGION, Server, by_imei, days_ago, fresh_imei, registration};

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let status = result.unwrap_err();
    (status.code(), status.message().to_owned())
}

fn coverage(imei: &str, fault: pb::FaultCategory) -> pb::CheckCoverageRequest {
    pb::CheckCoverageRequest {
        device_id: by_imei(imei),
        fault_category: fault.into(),
        as_of: None,
        record_decision: false,
    }
}

#[tokio::test]
async fn registers_a_device_once_and_answers_for_it() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    let request = registration(&imei, "DE", &days_ago(30), "cust-1");
    let device = s
        .client
        .register_device(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.policy_id, "de-consumer");
    assert_eq!(device.customer_id, "cust-1");
    assert_eq!(device.version, 1);
    // Same details: idempotent. Other details: ALREADY_EXISTS, nothing written.
    let again = s
        .client
        .register_device(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.version, 1);
    let mut other = request.clone();
    other.customer_id = "cust-2".into();
    assert_eq!(
        code(s.client.register_device(other).await).0,
        Code::AlreadyExists
    );
    assert_eq!(s.events().await, 1);

    let fetched = s
        .client
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, device);

    let covered = s
        .client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(covered.covered);
    assert_eq!(covered.reason, "within_base_warranty");
    assert_eq!(covered.remedy, i32::from(pb::Remedy::Repair));
    // Bought after 31 July 2026: version 2 of the German policy.
    assert_eq!(
        (covered.policy_id.as_str(), covered.policy_version),
        ("de-consumer", 2)
    );
    for excluded in [
        pb::FaultCategory::LiquidDamage,
        pb::FaultCategory::AccidentalDamage,
        pb::FaultCategory::UnauthorizedRepair,
    ] {
        let decision = s
            .client
            .check_coverage(coverage(&imei, excluded))
            .await
            .unwrap()
            .into_inner();
        assert!(!decision.covered);
        assert_eq!(decision.reason, "excluded_fault");
    }
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_invalid_argument_naming_the_field_and_stores_nothing() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    let good = registration(&imei, "DE", &days_ago(10), "cust-1");
    let mut cases: Vec<(pb::RegisterDeviceRequest, &str)> = Vec::new();
    let mut r = good.clone();
    r.device_id = by_imei("490154203237519");
    cases.push((r, "device_id.imei"));
    let mut r = good.clone();
    r.device_id = by_imei("4901542032375");
    cases.push((r, "device_id.imei"));
    let mut r = good.clone();
    r.device_id = by_imei("49015420323751x");
    cases.push((r, "device_id.imei"));
    let mut r = good.clone();
    r.device_id = None;
    cases.push((r, "device_id"));
    let mut r = good.clone();
    r.device_id = Some(DeviceId {
        kind: Some(device_id::Kind::Serial("ab".into())),
    });
    cases.push((r, "device_id.serial"));
    let mut r = good.clone();
    r.purchase_date = "2025-13-01".into();
    cases.push((r, "purchase_date"));
    let mut r = good.clone();
    r.purchase_date = days_ago(-2);
    cases.push((r, "purchase_date"));
    let mut r = good.clone();
    r.purchase_date = "2019-06-01".into();
    cases.push((r, "purchase_date"));
    let mut r = good.clone();
    r.country_of_purchase = Some(CountryCode { value: "XX".into() });
    cases.push((r, "country_of_purchase"));
    let mut r = good.clone();
    r.country_of_purchase = Some(CountryCode {
        value: "Germany".into(),
    });
    cases.push((r, "country_of_purchase"));
    let mut r = good.clone();
    r.country_of_purchase = None;
    cases.push((r, "country_of_purchase"));
    let mut r = good.clone();
    r.channel = 0;
    cases.push((r, "channel"));
    let mut r = good.clone();
    r.channel = 99;
    cases.push((r, "channel"));
    let mut r = good.clone();
    r.customer_id = "  ".into();
    cases.push((r, "customer_id"));
    let mut r = good.clone();
    r.model = "x".repeat(5000);
    cases.push((r, "model"));
    for (request, field) in cases {
        let (code, message) = code(s.client.register_device(request).await);
        assert_eq!(code, Code::InvalidArgument, "{field}: {message}");
        assert!(message.starts_with(field), "{field}: {message}");
    }
    assert_eq!(s.events().await, 0, "a refused request stores nothing");

    s.client.register_device(good).await.unwrap();
    let (c, m) = code(
        s.client
            .check_coverage(coverage(&imei, pb::FaultCategory::Unspecified))
            .await,
    );
    assert_eq!(
        (c, m.starts_with("fault_category")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let (c, m) = code(
        s.client
            .check_coverage(pb::CheckCoverageRequest {
                fault_category: 77,
                ..coverage(&imei, pb::FaultCategory::Display)
            })
            .await,
    );
    assert_eq!(
        (c, m.starts_with("fault_category")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let (c, m) = code(
        s.client
            .check_coverage(pb::CheckCoverageRequest {
                as_of: Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -5,
                }),
                ..coverage(&imei, pb::FaultCategory::Display)
            })
            .await,
    );
    assert_eq!(
        (c, m.starts_with("as_of")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let (c, m) = code(
        s.client
            .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
                device_id: by_imei(&imei),
                plan_id: "gold".into(),
            })
            .await,
    );
    assert_eq!(
        (c, m.starts_with("plan")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let (c, m) = code(
        s.client
            .verify_device_history(pb::VerifyDeviceHistoryRequest {
                device_id: by_imei(&imei),
                trusted_version: 1,
                trusted_hash: "zz".into(),
            })
            .await,
    );
    assert_eq!(
        (c, m.starts_with("trusted_hash")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let (c, _) = code(
        s.client
            .list_expiring_warranties(pb::ListExpiringWarrantiesRequest {
                days: 0,
                page_size: 10,
            })
            .await,
    );
    assert_eq!(c, Code::InvalidArgument);
    let mut with_bad_header = tonic::Request::new(coverage(&imei, pb::FaultCategory::Display));
    with_bad_header
        .metadata_mut()
        .insert("x-command-id", "not-a-uuid".parse().unwrap());
    assert_eq!(
        code(s.client.check_coverage(with_bad_header).await).0,
        Code::InvalidArgument
    );
    assert_eq!(s.events().await, 1);
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_devices_are_not_found() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    let id = by_imei(&imei);
    assert_eq!(
        code(
            s.client
                .get_device(pb::GetDeviceRequest {
                    device_id: id.clone()
                })
                .await
        )
        .0,
        Code::NotFound
    );
    assert_eq!(
        code(
            s.client
                .check_coverage(coverage(&imei, pb::FaultCategory::Display))
                .await
        )
        .0,
        Code::NotFound
    );
    assert_eq!(
        code(
            s.client
                .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
                    device_id: id.clone(),
                    plan_id: "care-12".into()
                })
                .await
        )
        .0,
        Code::NotFound
    );
    assert_eq!(
        code(
            s.client
                .get_device_history(pb::GetDeviceHistoryRequest {
                    device_id: id.clone(),
                    as_of: None
                })
                .await
        )
        .0,
        Code::NotFound
    );
    assert_eq!(
        code(
            s.client
                .verify_device_history(pb::VerifyDeviceHistoryRequest {
                    device_id: id.clone(),
                    ..Default::default()
                })
                .await
        )
        .0,
        Code::NotFound
    );
    assert_eq!(
        code(
            s.client
                .void_warranty(pb::VoidWarrantyRequest {
                    device_id: id,
                    reason: "tampering".into(),
                    evidence: vec![]
                })
                .await
        )
        .0,
        Code::NotFound
    );
    assert_eq!(s.events().await, 0);
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn plans_voiding_claims_and_ownership() {
    let mut s = Server::start(None).await;
    // Bought 90 days ago: the 60-day plan window has closed.
    let late = fresh_imei();
    s.client
        .register_device(registration(&late, "DE", &days_ago(90), "cust-1"))
        .await
        .unwrap();
    let (c, m) = code(
        s.client
            .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
                device_id: by_imei(&late),
                plan_id: "care-12".into(),
            })
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition, "{m}");

    let imei = fresh_imei();
    let id = by_imei(&imei);
    s.client
        .register_device(registration(&imei, "US", &days_ago(5), "cust-1"))
        .await
        .unwrap();
    let device = s
        .client
        .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
            device_id: id.clone(),
            plan_id: "care-24".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let plan = device.extended_plan.unwrap();
    assert_eq!(plan.plan_id, "care-24");
    assert_eq!(plan.price.unwrap().currency, "USD");

    let claim = pb::RecordClaimRequest {
        device_id: id.clone(),
        repair_order_id: "r-100".into(),
        fault_category: pb::FaultCategory::Battery.into(),
        under_legal_guarantee: false,
    };
    let first = s
        .client
        .record_claim(claim.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert_eq!(first.device.unwrap().claims, 1);
    let repeat = s
        .client
        .record_claim(claim.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(repeat.duplicate);

    let cancelled = s
        .client
        .cancel_extended_warranty(pb::CancelExtendedWarrantyRequest {
            device_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cancelled.refund.unwrap().minor_units,
        14900,
        "not started yet: all back"
    );
    assert!(cancelled.device.unwrap().extended_plan.is_none());

    let accessory = s
        .client
        .register_accessory(pb::RegisterAccessoryRequest {
            device_id: id.clone(),
            accessory_serial: "CHG-1".into(),
            kind: pb::AccessoryKind::Charger.into(),
            purchase_date: days_ago(5),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accessory.accessories.len(), 1);
    let charger = s
        .client
        .check_accessory_coverage(pb::CheckAccessoryCoverageRequest {
            device_id: id.clone(),
            accessory_serial: "CHG-1".into(),
            fault_category: pb::FaultCategory::Charging.into(),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(charger.covered);
    assert_eq!(
        code(
            s.client
                .check_accessory_coverage(pb::CheckAccessoryCoverageRequest {
                    device_id: id.clone(),
                    accessory_serial: "NOPE".into(),
                    fault_category: pb::FaultCategory::Charging.into(),
                    as_of: None,
                })
                .await
        )
        .0,
        Code::NotFound
    );

    let moved = s
        .client
        .transfer_ownership(pb::TransferOwnershipRequest {
            device_id: id.clone(),
            new_customer_id: "cust-9".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.customer_id, "cust-9");

    let voided = s
        .client
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: id.clone(),
            reason: "unauthorized modification of the mainboard".into(),
            evidence: vec!["photo-17".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(voided.voided);
    let decision = s
        .client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (decision.covered, decision.reason.as_str()),
        (false, "voided")
    );
    let (c, _) = code(
        s.client
            .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
                device_id: id.clone(),
                plan_id: "care-12".into(),
            })
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition);
    let (c, _) = code(
        s.client
            .void_warranty(pb::VoidWarrantyRequest {
                device_id: id.clone(),
                reason: "again".into(),
                evidence: vec![],
            })
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition);
    let (c, _) = code(
        s.client
            .record_claim(pb::RecordClaimRequest {
                repair_order_id: "r-101".into(),
                ..claim
            })
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition);
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn racing_plan_purchases_have_one_winner() {
    let s = Server::start(None).await;
    let imei = fresh_imei();
    let mut client = s.client.clone();
    client
        .register_device(registration(&imei, "GB", &days_ago(3), "cust-1"))
        .await
        .unwrap();
    let mut racers = Vec::new();
    for plan in [
        "care-12", "care-24", "care-12", "care-24", "care-12", "care-24",
    ] {
        let mut client = s.client.clone();
        let id = by_imei(&imei);
        racers.push(tokio::spawn(async move {
            client
                .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
                    device_id: id,
                    plan_id: plan.into(),
                })
                .await
        }));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(status) => assert!(
                matches!(status.code(), Code::FailedPrecondition | Code::Aborted),
                "{status:?}"
            ),
        }
    }
    assert_eq!(won, 1);
    let history = client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        history
            .events
            .iter()
            .filter(|e| e.event_type == "ExtendedWarrantyPurchased")
            .count(),
        1
    );
    s.running.stop().await.unwrap();
}

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
    let mut s = Server::start(None).await;
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

    // Rebuilt from the log, the directory is the same.
    let directory = aftersales_warranty::projections::DeviceDirectory::new(store.clone());
    let before = aftersales_warranty::projections::devices_of_customer(&store, &customer, "", 100)
        .await
        .unwrap();
    let read = aftersales_eventstore::projection::rebuild(&store, &directory, |_| {})
        .await
        .unwrap();
    assert!(read >= 6);
    let after = aftersales_warranty::projections::devices_of_customer(&store, &customer, "", 100)
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(after.len(), 4);
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let s = Server::start(None).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aftersales.warranty.v1.WarrantyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"aftersales.warranty.v1.WarrantyService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    // Only what this server runs is advertised, not every contract it knows.
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("grpc.") || *n == "aftersales.warranty.v1.WarrantyService"),
        "{names:?}"
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn events_are_published_as_protobuf() {
    use futures::StreamExt as _;
    use prost::Message as _;
    let nats = aftersales_testkit::NatsServer::start().unwrap();
    let mut s = Server::start(Some(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut subscription = client
        .subscribe(format!("aftersales.{REGION}.warranty.>"))
        .await
        .unwrap();
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "CN", &days_ago(2), "cust-cn"))
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        format!("aftersales.{REGION}.warranty.DeviceRegistered")
    );
    let headers = message.headers.unwrap();
    assert_eq!(
        headers.get("Content-Type").unwrap().as_str(),
        "application/protobuf; proto=aftersales.warranty.v1.DeviceRegistered"
    );
    assert!(headers.get("Nats-Msg-Id").is_some());
    let event = pb::DeviceRegistered::decode(message.payload).unwrap();
    assert_eq!(event.device_id, by_imei(&imei));
    assert_eq!(event.customer_id, "cust-cn");
    assert_eq!(
        (event.policy_id.as_str(), event.policy_version),
        ("cn-sanbao", 1)
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_policy_files_stop_the_start_naming_file_and_field() {
    let start = |dir: std::path::PathBuf| async move {
        aftersales_warranty::server::start(aftersales_warranty::server::Config {
            common: aftersales_runtime::config::Common::test("sqlite::memory:"),
            listen: "127.0.0.1:0".parse().unwrap(),
            policies: Some(dir),
            metrics_listen: None,
        })
        .await
        .unwrap_err()
        .to_string()
    };
    let builtin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&builtin).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let fr = dir.path().join("FR.toml");
    let text =
        std::fs::read_to_string(&fr)
            .unwrap()
            .replacen("phone_months = 24", "phone_months = 0", 1);
    std::fs::write(&fr, text).unwrap();
    let error = start(dir.path().to_path_buf()).await;
    assert!(
        error.contains("FR.toml") && error.contains("versions[0].phone_months"),
        "{error}"
    );

    std::fs::remove_file(&fr).unwrap();
    let error = start(dir.path().to_path_buf()).await;
    assert!(
        error.contains("FR"),
        "a country we sell in is missing: {error}"
    );
}

#[tokio::test]
async fn a_changed_policy_file_never_changes_past_decisions() {
    use aftersales_warranty::server::{Config, start};
    let database_url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let config = |policies: Option<std::path::PathBuf>| Config {
        common: aftersales_runtime::config::Common::test(database_url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        policies,
        metrics_listen: None,
    };
    let imei = fresh_imei();
    let purchase = days_ago(400);
    let running = start(config(None)).await.unwrap();
    let mut client =
        aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient::connect(
            format!("http://{}", running.addr),
        )
        .await
        .unwrap();
    client
        .register_device(registration(&imei, "US", &purchase, "cust-1"))
        .await
        .unwrap();
    let before = client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !before.covered,
        "12 months in the US: {}",
        before.explanation
    );
    running.stop().await.unwrap();

    // The US file now gives 36 months, as the same version: registered devices keep
    // the terms they were registered under.
    let dir = tempfile::tempdir().unwrap();
    let builtin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for entry in std::fs::read_dir(&builtin).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.ends_with("US.toml") {
            text = text.replacen("phone_months = 12", "phone_months = 36", 1);
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let running = start(config(Some(dir.path().to_path_buf()))).await.unwrap();
    let mut client =
        aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient::connect(
            format!("http://{}", running.addr),
        )
        .await
        .unwrap();
    let after = client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after,
        pb::CoverageDecision {
            decided_for: after.decided_for.clone(),
            ..before
        }
    );
    // A device registered now gets the new terms.
    let newer = fresh_imei();
    client
        .register_device(registration(&newer, "US", &purchase, "cust-2"))
        .await
        .unwrap();
    let decision = client
        .check_coverage(coverage(&newer, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(decision.covered, "{}", decision.explanation);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_command_repeated_with_its_command_id_is_applied_once() {
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "DE", &days_ago(3), "cust-1"))
        .await
        .unwrap();
    let command_id = uuid::Uuid::new_v4().to_string();
    let transfer = |to: &str| {
        let mut request = tonic::Request::new(pb::TransferOwnershipRequest {
            device_id: by_imei(&imei),
            new_customer_id: to.into(),
        });
        request
            .metadata_mut()
            .insert("x-command-id", command_id.parse().unwrap());
        request
            .metadata_mut()
            .insert("x-actor", "agent:42".parse().unwrap());
        request
    };
    let first = s
        .client
        .transfer_ownership(transfer("cust-2"))
        .await
        .unwrap()
        .into_inner();
    let again = s
        .client
        .transfer_ownership(transfer("cust-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(s.events().await, 2, "registered, transferred once");
    let history = s
        .client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.events[1].actor, "agent:42");
    // A command id names one request: the same id with another body is refused and
    // nothing more is written.
    let reused = s
        .client
        .transfer_ownership(transfer("cust-3"))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    assert_eq!(s.events().await, 2);
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn register_device_retried_with_its_command_id_registers_once() {
    use aftersales_runtime::request::with_command_id;
    let mut s = Server::start(None).await;
    let imei = fresh_imei();
    let command_id = uuid::Uuid::new_v4();
    let first = s
        .client
        .register_device(with_command_id(
            registration(&imei, "DE", &days_ago(3), "cust-1"),
            command_id,
        ))
        .await
        .unwrap()
        .into_inner();
    let again = s
        .client
        .register_device(with_command_id(
            registration(&imei, "DE", &days_ago(3), "cust-1"),
            command_id,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let events = s.events().await;

    // The same key for another device is refused, and that device is not registered.
    let other = fresh_imei();
    let reused = s
        .client
        .register_device(with_command_id(
            registration(&other, "DE", &days_ago(3), "cust-1"),
            command_id,
        ))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    assert_eq!(s.events().await, events);
    s.running.stop().await.unwrap();
}
