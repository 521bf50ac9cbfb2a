//! Registering devices, bad input, plans, voiding, claims, ownership, races and
//! idempotent commands.

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::warranty as pb;
use tonic::Code;

use crate::harness::*;

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
    // Bought after 31 July 2026: version 3 of the German policy.
    assert_eq!(
        (covered.policy_id.as_str(), covered.policy_version),
        ("de-consumer", 3)
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
    r.customer_id = "ana\nlopez".into();
    cases.push((r, "customer_id"));
    let mut r = good.clone();
    r.model = "x".repeat(5000);
    cases.push((r, "model"));
    for (request, field) in cases {
        let status = s.client.register_device(request).await.unwrap_err();
        let message = status.message();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {message}");
        assert!(message.starts_with(field), "{field}: {message}");
        // The field by machine too, as google.rpc.BadRequest.
        let violations = aftersales_runtime::errors::field_violations(&status);
        assert!(
            violations.iter().any(|(f, _)| f.starts_with(field)),
            "{field}: {violations:?}"
        );
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
                payment_method: "sandbox-ok".into(),
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
                    plan_id: "care-12".into(),
                    payment_method: "sandbox-ok".into(),
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
                    as_of: None,
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
                payment_method: "sandbox-ok".into(),
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
    let ordered = s
        .client
        .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
            device_id: id.clone(),
            plan_id: "care-24".into(),
            payment_method: "sandbox-ok".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ordered.extended_plan.is_none(), "not before it is paid");
    assert_eq!(ordered.pending_plan.unwrap().plan_id, "care-24");
    let device = paid(&s, &imei).await;
    let plan = device.extended_plan.unwrap();
    assert_eq!(plan.plan_id, "care-24");
    assert_eq!(plan.price.unwrap().currency, "USD");

    let claim = pb::RecordClaimRequest {
        device_id: id.clone(),
        repair_order_id: "r-100".into(),
        fault_category: pb::FaultCategory::Battery.into(),
        under_legal_guarantee: false,
        ..Default::default()
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
    assert!(
        cancelled.refund_id.starts_with("re_"),
        "refunded at the provider: {:?}",
        cancelled.refund_id
    );
    assert!(cancelled.device.unwrap().extended_plan.is_none());

    let accessory = s
        .client
        .register_accessory(pb::RegisterAccessoryRequest {
            device_id: id.clone(),
            accessory_serial: "CHG-1".into(),
            kind: pb::AccessoryKind::Charger.into(),
            purchase_date: days_ago(5),
            replaces_serial: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accessory.accessories.len(), 1);
    let charger_on = |fault_date: String| pb::CheckAccessoryCoverageRequest {
        device_id: id.clone(),
        accessory_serial: "CHG-1".into(),
        fault_category: pb::FaultCategory::Charging.into(),
        fault_date,
        ..Default::default()
    };
    let charger = s
        .client
        .check_accessory_coverage(charger_on(String::new()))
        .await
        .unwrap()
        .into_inner();
    assert!(charger.covered);
    let rule = charger.rule.unwrap();
    assert_eq!(
        (rule.figure.as_str(), rule.starts.as_str()),
        ("accessory_months", days_ago(5).as_str())
    );
    // The same two times as the phone's: a day before the charger was bought
    // is not covered, and a fault dated tomorrow is refused.
    let before = s
        .client
        .check_accessory_coverage(charger_on(days_ago(6)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.reason, "before_purchase");
    let (c, m) = code(
        s.client
            .check_accessory_coverage(charger_on(days_ago(-1)))
            .await,
    );
    assert_eq!(
        (c, m.starts_with("fault_date")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    assert_eq!(
        code(
            s.client
                .check_accessory_coverage(pb::CheckAccessoryCoverageRequest {
                    device_id: id.clone(),
                    accessory_serial: "NOPE".into(),
                    fault_category: pb::FaultCategory::Charging.into(),
                    as_of: None,
                    ..Default::default()
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
                payment_method: "sandbox-ok".into(),
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
                    payment_method: "sandbox-ok".into(),
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
    paid(&s, &imei).await;
    let history = client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            as_of: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let count = |kind: &str| {
        history
            .events
            .iter()
            .filter(|e| e.event_type == kind)
            .count()
    };
    assert_eq!(
        (count("PlanOrdered"), count("ExtendedWarrantyPurchased")),
        (1, 1)
    );
    s.running.stop().await.unwrap();
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
            ..Default::default()
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

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_their_days_and_retries_still_write_once() {
    use aftersales_runtime::request::with_command_id;
    let database_url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let clock = aftersales_core::ShiftedClock::new();
    let config = || aftersales_warranty::server::Config {
        common: aftersales_runtime::config::Common {
            clock: clock.shared(),
            ..aftersales_runtime::config::Common::test(database_url.clone())
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..aftersales_warranty::server::Config::default()
    };
    let keys = |running: &aftersales_warranty::server::Running| {
        let aftersales_eventstore::AnyEventStore::Postgres(pg) = &running.store else {
            panic!("PostgreSQL");
        };
        let pool = pg.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM command_keys")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let imei = fresh_imei();
    let command_id = uuid::Uuid::new_v4();
    let request = || {
        with_command_id(
            registration(&imei, "DE", &days_ago(3), "cust-1"),
            command_id,
        )
    };
    let running = aftersales_warranty::server::start(config()).await.unwrap();
    let mut client = pb::warranty_service_client::WarrantyServiceClient::connect(format!(
        "http://{}",
        running.addr
    ))
    .await
    .unwrap();
    let first = client
        .register_device(request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&running).await, 1);
    running.stop().await.unwrap();

    // 31 days on, the next start forgets the key (30 days by default)...
    clock.advance(chrono::Duration::days(31));
    let running = aftersales_warranty::server::start(config()).await.unwrap();
    aftersales_testkit::eventually(|| keys(&running), |n| *n == 0).await;
    // ...and a retry that late is still the same registration, written once.
    let mut client = pb::warranty_service_client::WarrantyServiceClient::connect(format!(
        "http://{}",
        running.addr
    ))
    .await
    .unwrap();
    let again = client
        .register_device(request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &running.store else {
        panic!("PostgreSQL");
    };
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(events, 1);
    running.stop().await.unwrap();
}

/// The device once its pending plan's payment has settled.
async fn paid(s: &Server, imei: &str) -> pb::Device {
    aftersales_testkit::eventually(
        || async {
            s.client
                .clone()
                .get_device(pb::GetDeviceRequest {
                    device_id: by_imei(imei),
                })
                .await
                .unwrap()
                .into_inner()
        },
        |d| d.pending_plan.is_none(),
    )
    .await
}

#[tokio::test]
async fn a_plan_is_in_force_only_once_its_payment_succeeds() {
    // Slow enough that a second order meets the first still pending.
    let s = Server::start_settling_after(None, 1500).await;
    let order = |imei: &str, method: &str| pb::PurchaseExtendedWarrantyRequest {
        device_id: by_imei(imei),
        plan_id: "care-12".into(),
        payment_method: method.into(),
    };
    let declined = fresh_imei();
    s.client
        .clone()
        .register_device(registration(&declined, "DE", &days_ago(3), "cust-1"))
        .await
        .unwrap();
    let (c, m) = code(
        s.client
            .clone()
            .purchase_extended_warranty(order(&declined, ""))
            .await,
    );
    assert_eq!(
        (c, m.starts_with("payment_method")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let (c, m) = code(
        s.client
            .clone()
            .purchase_extended_warranty(order(&declined, "a-stolen-card"))
            .await,
    );
    assert_eq!(
        (c, m.starts_with("payment_method")),
        (Code::InvalidArgument, true),
        "{m}"
    );
    let pending = s
        .client
        .clone()
        .purchase_extended_warranty(order(&declined, "sandbox-declined"))
        .await
        .unwrap()
        .into_inner();
    assert!(pending.pending_plan.is_some());
    let (c, _) = code(
        s.client
            .clone()
            .purchase_extended_warranty(order(&declined, "sandbox-ok"))
            .await,
    );
    assert_eq!(c, Code::FailedPrecondition, "one payment pending at a time");
    let after = paid(&s, &declined).await;
    assert!(
        after.extended_plan.is_none(),
        "a declined payment buys nothing"
    );
    let covered = s
        .client
        .clone()
        .check_coverage(coverage(&declined, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(covered.extended_warranty_end.is_empty(), "{covered:?}");
    // Ordered again, paid: in force.
    s.client
        .clone()
        .purchase_extended_warranty(order(&declined, "sandbox-ok"))
        .await
        .unwrap();
    let bought = paid(&s, &declined).await;
    assert_eq!(bought.extended_plan.unwrap().plan_id, "care-12");
    s.running.stop().await.unwrap();
}
