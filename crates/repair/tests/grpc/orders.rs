//! Orders from open to closed, refusals, races and idempotent opening.

use aftersales_proto::common::{Address, CountryCode, Money};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_testkit::shared_postgres;
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn a_covered_walk_in_repair_from_open_to_collected() {
    let mut p = Platform::start().await;
    let imei = imei(1);
    register(&mut p, &imei, "DE", 100).await;
    let opened = p.r.open_repair(walk_in(&imei)).await.unwrap().into_inner();
    assert_eq!(opened.stage, i32::from(pb::Stage::Opened));
    let coverage = opened.coverage.clone().unwrap();
    assert!(coverage.decided && coverage.covered, "{coverage:?}");
    assert_eq!(coverage.policy_id, "de-consumer");
    let id = opened.order_id.clone();

    let photo =
        p.r.attach_photo(pb::AttachPhotoRequest {
            order_id: id.clone(),
            content_type: "image/jpeg".into(),
            data: jpeg(1),
        })
        .await
        .unwrap()
        .into_inner();
    let checked_in =
        p.r.check_in_device(pb::CheckInDeviceRequest {
            order_id: id.clone(),
            condition_notes: "hairline scratch on the back".into(),
            photos: vec![photo.photo_id.clone()],
            liquid_indicator_tripped: false,
            accessories_received: vec!["case".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked_in.condition_photos, vec![photo.photo_id]);
    let diagnosed =
        p.r.diagnose(pb::DiagnoseRequest {
            order_id: id.clone(),
            fault_category: wpb::FaultCategory::Display.into(),
            fault_codes: vec!["DSP-17".into()],
            technician: "tech-7".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(diagnosed.coverage.unwrap().covered);
    p.r.start_repair(pb::StartRepairRequest {
        order_id: id.clone(),
        technician: "tech-7".into(),
    })
    .await
    .unwrap();
    // The covered repair recorded its claim with warranty.
    let claimed =
        p.w.get_device(wpb::GetDeviceRequest {
            device_id: device(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(claimed.claims, 1);
    p.r.replace_part(pb::ReplacePartRequest {
        order_id: id.clone(),
        part_number: "DSP-5".into(),
        old_serial: "A1".into(),
        new_serial: "B2".into(),
    })
    .await
    .unwrap();
    let failed =
        p.r.record_qc_result(pb::RecordQcResultRequest {
            order_id: id.clone(),
            passed: false,
            notes: "dead pixel".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (failed.stage, failed.qc_failures),
        (i32::from(pb::Stage::InRepair), 1)
    );
    p.r.record_qc_result(pb::RecordQcResultRequest {
        order_id: id.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    p.r.mark_ready_for_return(order(&id)).await.unwrap();
    let closed =
        p.r.confirm_collected(order(&id))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(closed.stage, i32::from(pb::Stage::Closed));
    assert!(closed.repaired);
    assert_eq!(closed.parts_replaced, 1);
    p.stop().await;
}

/// The fault appeared while the phone was covered, and the phone reached the
/// center after its warranty ended: covered, at opening, at diagnosis and for
/// the claim. The same fault dated today is not; a phone from a country whose
/// warranty does not travel is not covered abroad.
#[tokio::test]
async fn coverage_is_decided_for_the_day_the_fault_appeared() {
    let mut p = Platform::start().await;
    let imei = imei(40);
    // US: 12 months from purchase, which ended four days ago.
    register(&mut p, &imei, "US", 369).await;
    let in_new_york = |fault_date: String| pb::OpenRepairRequest {
        service_center_id: "sc-newyork-01".into(),
        fault_date,
        ..walk_in(&imei)
    };
    let opened =
        p.r.open_repair(in_new_york(days_ago(10)))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(opened.fault_date, days_ago(10));
    assert!(opened.coverage.unwrap().covered);
    let id = opened.order_id;
    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let diagnosed =
        p.r.diagnose(pb::DiagnoseRequest {
            order_id: id.clone(),
            fault_category: wpb::FaultCategory::Display.into(),
            fault_codes: vec![],
            technician: "tech-7".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let coverage = diagnosed.coverage.unwrap();
    assert!(coverage.covered, "{coverage:?}");
    p.r.start_repair(pb::StartRepairRequest {
        order_id: id.clone(),
        technician: "tech-7".into(),
    })
    .await
    .unwrap();
    let device_now =
        p.w.get_device(wpb::GetDeviceRequest {
            device_id: device(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        device_now.claims, 1,
        "the claim was decided for the fault date"
    );

    // Another fault (the display's new part is covered for 90 days), from today.
    let battery = |r: pb::OpenRepairRequest| pb::OpenRepairRequest {
        reported_fault: wpb::FaultCategory::Battery.into(),
        ..r
    };
    let today =
        p.r.open_repair(battery(in_new_york(String::new())))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(today.fault_date, days_ago(0));
    let coverage = today.coverage.unwrap();
    assert!(!coverage.covered);
    assert_eq!(coverage.reason, "expired");

    // The same phone at the Berlin center: a US warranty is honoured in the US only.
    let abroad =
        p.r.open_repair(battery(walk_in(&imei)))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(abroad.coverage.unwrap().reason, "not_honoured_here");

    let before = p.repair_events().await;
    for (date, why) in [
        (days_ago(-1), "future"),
        ("2026-02-30".to_owned(), "YYYY-MM-DD"),
        (days_ago(4000), "ten years"),
    ] {
        let (c, m) = code(p.r.open_repair(in_new_york(date)).await);
        assert_eq!(c, Code::InvalidArgument, "{m}");
        assert!(m.contains("fault_date") && m.contains(why), "{m}");
    }
    assert_eq!(p.repair_events().await, before, "refusals write nothing");
    p.stop().await;
}

/// The bytes of a tiny JPEG (its magic number, then `n`).
fn jpeg(n: u8) -> Vec<u8> {
    vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0, n]
}

#[tokio::test]
async fn check_in_photos_are_images_kept_with_their_order_and_named_by_their_digest() {
    let mut p = Platform::start().await;
    let imei = imei(21);
    register(&mut p, &imei, "DE", 100).await;
    let id =
        p.r.open_repair(walk_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    let attach = |content_type: &str, data: Vec<u8>| pb::AttachPhotoRequest {
        order_id: id.clone(),
        content_type: content_type.into(),
        data,
    };
    let first =
        p.r.attach_photo(attach("image/jpeg", jpeg(0)))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(first.photo_id.len(), 64);
    assert_eq!(first.size, 12);
    let again =
        p.r.attach_photo(attach("image/jpeg", jpeg(0)))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(again, first, "the same photo is kept once");
    let kept =
        p.r.get_photo(pb::PhotoRef {
            order_id: id.clone(),
            photo_id: first.photo_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (kept.data, kept.photo.unwrap().content_type),
        (jpeg(0), "image/jpeg".to_owned())
    );

    // Only images, as their bytes say, and not too large.
    let mut big = jpeg(0);
    big.resize(768 * 1024 + 1, 0);
    for (request, field) in [
        (attach("image/png", jpeg(1)), "content_type"),
        (
            attach("image/svg+xml", b"<svg onload=alert(1)>".to_vec()),
            "data",
        ),
        (attach("image/jpeg", Vec::new()), "data"),
        (attach("image/jpeg", big), "data"),
    ] {
        let (code, message) = code(p.r.attach_photo(request).await);
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.starts_with(field), "{message}");
    }
    // At most eight per order.
    for n in 1..8 {
        p.r.attach_photo(attach("image/jpeg", jpeg(n)))
            .await
            .unwrap();
    }
    assert_eq!(
        code(p.r.attach_photo(attach("image/jpeg", jpeg(9))).await).0,
        Code::ResourceExhausted
    );
    // Check-in names kept photos only; a refused check-in writes nothing.
    let events = p.repair_events().await;
    let (code_, message) = code(
        p.r.check_in_device(pb::CheckInDeviceRequest {
            order_id: id.clone(),
            condition_notes: "ok".into(),
            photos: vec![first.photo_id.clone(), "0".repeat(64)],
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code_, Code::InvalidArgument);
    assert!(message.starts_with("photos[1]"), "{message}");
    assert_eq!(p.repair_events().await, events);
    assert_eq!(
        code(
            p.r.get_photo(pb::PhotoRef {
                order_id: id.clone(),
                photo_id: "0".repeat(64),
            })
            .await
        )
        .0,
        Code::NotFound
    );
    p.r.cancel_repair(pb::CancelRepairRequest {
        order_id: id.clone(),
        reason: "changed her mind".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        code(p.r.attach_photo(attach("image/jpeg", jpeg(42))).await).0,
        Code::FailedPrecondition,
        "an order that is over takes no more photos"
    );
    p.stop().await;
}

#[tokio::test]
async fn out_of_warranty_needs_a_quote_that_has_not_expired() {
    let mut p = Platform::start().await;
    let imei = imei(2);
    register(&mut p, &imei, "US", 500).await;
    let id =
        p.r.open_repair(pb::OpenRepairRequest {
            service_center_id: "sc-newyork-01".into(),
            ..walk_in(&imei)
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let diagnosed =
        p.r.diagnose(pb::DiagnoseRequest {
            order_id: id.clone(),
            fault_category: wpb::FaultCategory::Battery.into(),
            fault_codes: vec![],
            technician: "tech-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!diagnosed.coverage.unwrap().covered);
    let (c, m) = code(
        p.r.start_repair(pb::StartRepairRequest {
            order_id: id.clone(),
            technician: "tech-1".into(),
        })
        .await,
    );
    assert_eq!(c, Code::FailedPrecondition, "{m}");

    let soon = p.clock.now() + chrono::Duration::hours(2);
    let quote = |valid_until: chrono::DateTime<chrono::Utc>| pb::IssueQuoteRequest {
        order_id: id.clone(),
        lines: vec![
            pb::QuoteLine {
                description: "battery".into(),
                is_labour: false,
                amount: Some(Money {
                    minor_units: 4900,
                    currency: "USD".into(),
                }),
            },
            pb::QuoteLine {
                description: "labour".into(),
                is_labour: true,
                amount: Some(Money {
                    minor_units: 2500,
                    currency: "USD".into(),
                }),
            },
        ],
        valid_until: Some(aftersales_runtime::request::timestamp_to_proto(valid_until)),
    };
    let quoted = p.r.issue_quote(quote(soon)).await.unwrap().into_inner();
    assert_eq!(quoted.quote.unwrap().total.unwrap().minor_units, 7400);
    // Three hours on, without waiting them.
    p.clock.advance(chrono::Duration::hours(3));
    let (c, m) = code(p.r.approve_quote(order(&id)).await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("expired"), "{m}");
    let later = p.clock.now() + chrono::Duration::days(7);
    let revised = p.r.issue_quote(quote(later)).await.unwrap().into_inner();
    assert_eq!(revised.quote.unwrap().revision, 2);
    p.r.approve_quote(order(&id)).await.unwrap();
    let started =
        p.r.start_repair(pb::StartRepairRequest {
            order_id: id.clone(),
            technician: "tech-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.stage, i32::from(pb::Stage::InRepair));
    let claims =
        p.w.get_device(wpb::GetDeviceRequest {
            device_id: device(&imei),
        })
        .await
        .unwrap()
        .into_inner()
        .claims;
    assert_eq!(claims, 0, "a paid repair is no warranty claim");
    p.stop().await;
}

#[tokio::test]
async fn illegal_transitions_unknown_orders_and_bad_input_write_nothing() {
    let mut p = Platform::start().await;
    let imei = imei(3);
    register(&mut p, &imei, "FR", 30).await;
    let id =
        p.r.open_repair(walk_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    let before = p.repair_events().await;
    let (c, m) = code(p.r.mark_ready_for_return(order(&id)).await);
    assert_eq!(c, Code::FailedPrecondition);
    assert!(m.contains("opened"), "names the state: {m}");
    let (c, _) = code(
        p.r.get_repair(order("0198f0e8-0000-7000-8000-000000000000"))
            .await,
    );
    assert_eq!(c, Code::NotFound);
    let (c, _) = code(p.r.approve_quote(order("nope")).await);
    assert_eq!(c, Code::NotFound);

    let mut cases: Vec<(pb::OpenRepairRequest, &str)> = Vec::new();
    let mut r = walk_in(&imei);
    r.symptoms = "   ".into();
    cases.push((r, "symptoms"));
    let mut r = walk_in(&imei);
    r.service_center_id = String::new();
    cases.push((r, "service_center"));
    let mut r = walk_in(&imei);
    r.channel = pb::Channel::MailIn.into();
    cases.push((r, "contact_address"));
    let mut r = walk_in(&imei);
    r.channel = pb::Channel::MailIn.into();
    r.contact_address = Some(Address {
        recipient: "Ana".into(),
        lines: vec![],
        city: "Lyon".into(),
        region: String::new(),
        postal_code: "69001".into(),
        country: Some(CountryCode { value: "FR".into() }),
        phone: String::new(),
    });
    cases.push((r, "contact_address.lines"));
    let mut r = walk_in(&imei);
    r.device_id = None;
    cases.push((r, "device_id"));
    let mut r = walk_in(&imei);
    r.channel = 0;
    cases.push((r, "channel"));
    let mut r = walk_in(&imei);
    r.customer_id = "ana lopez".into();
    cases.push((r, "customer_id"));
    let mut r = walk_in(&imei);
    r.service_center_id = "sc/../paris".into();
    cases.push((r, "service_center_id"));
    for (request, field) in cases {
        let (c, m) = code(p.r.open_repair(request).await);
        assert_eq!(c, Code::InvalidArgument, "{field}: {m}");
        assert!(m.starts_with(field), "{field}: {m}");
    }
    let (c, _) = code(
        p.r.open_repair(pb::OpenRepairRequest {
            service_center_id: "sc-nowhere".into(),
            ..walk_in(&imei)
        })
        .await,
    );
    assert_eq!(c, Code::NotFound);
    // Ids parse one way everywhere: the field is named, nothing is looked up.
    let (c, m) = code(
        p.r.get_repair(pb::OrderRef {
            order_id: "no such/order".into(),
        })
        .await,
    );
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(m.starts_with("order_id"), "{m}");

    // A quote's money: never negative, always an ISO 4217 currency.
    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let before_quote = p.repair_events().await;
    for (units, currency, field) in [
        (-1, "EUR", "lines.amount"),
        (100, "EURO", "lines.amount"),
        (100, "ABC", "lines.amount"),
    ] {
        let request = pb::IssueQuoteRequest {
            order_id: id.clone(),
            lines: vec![pb::QuoteLine {
                description: "x".into(),
                is_labour: true,
                amount: Some(Money {
                    minor_units: units,
                    currency: currency.into(),
                }),
            }],
            valid_until: Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: 0,
            }),
        };
        let (c, m) = code(p.r.issue_quote(request).await);
        assert_eq!(c, Code::InvalidArgument, "{m}");
        assert!(m.starts_with(field), "{m}");
    }
    assert_eq!(p.repair_events().await, before_quote);
    assert_eq!(before_quote, before + 1, "only the check-in was written");
    p.stop().await;
}

#[tokio::test]
async fn racing_decisions_on_one_quote_have_one_winner() {
    let mut p = Platform::start().await;
    let imei = imei(4);
    register(&mut p, &imei, "US", 600).await;
    let id =
        p.r.open_repair(pb::OpenRepairRequest {
            service_center_id: "sc-newyork-01".into(),
            ..walk_in(&imei)
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    p.r.diagnose(pb::DiagnoseRequest {
        order_id: id.clone(),
        fault_category: wpb::FaultCategory::Camera.into(),
        fault_codes: vec![],
        technician: "t".into(),
    })
    .await
    .unwrap();
    p.r.issue_quote(pb::IssueQuoteRequest {
        order_id: id.clone(),
        lines: vec![pb::QuoteLine {
            description: "camera".into(),
            is_labour: false,
            amount: Some(Money {
                minor_units: 9900,
                currency: "USD".into(),
            }),
        }],
        valid_until: Some(prost_types::Timestamp {
            seconds: 4_000_000_000,
            nanos: 0,
        }),
    })
    .await
    .unwrap();
    let mut racers = Vec::new();
    for approve in [true, false, true, false, true, false] {
        let mut client = p.r.clone();
        let id = id.clone();
        racers.push(tokio::spawn(async move {
            if approve {
                client.approve_quote(order(&id)).await
            } else {
                client.decline_quote(order(&id)).await
            }
        }));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(s) => assert!(
                matches!(s.code(), Code::FailedPrecondition | Code::Aborted),
                "{s:?}"
            ),
        }
    }
    assert_eq!(won, 1);
    p.stop().await;
}

#[tokio::test]
async fn without_warranty_opening_works_and_coverage_is_decided_at_diagnosis() {
    let database = shared_postgres().create_database().unwrap();
    // Nothing listens on port 9: warranty is unreachable.
    let repair = aftersales_repair::server::start(repair_config(
        database,
        Some("http://127.0.0.1:9".into()),
    ))
    .await
    .unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{}", repair.addr))
        .await
        .unwrap();
    let opened = r.open_repair(walk_in(&imei(5))).await.unwrap().into_inner();
    let coverage = opened.coverage.unwrap();
    assert!(!coverage.decided, "{coverage:?}");
    r.check_in_device(pb::CheckInDeviceRequest {
        order_id: opened.order_id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (c, m) = code(
        r.diagnose(pb::DiagnoseRequest {
            order_id: opened.order_id.clone(),
            fault_category: wpb::FaultCategory::Display.into(),
            fault_codes: vec![],
            technician: "t".into(),
        })
        .await,
    );
    assert_eq!(c, Code::Unavailable, "{m}");
    let still = r
        .get_repair(order(&opened.order_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.stage, i32::from(pb::Stage::Received));
    repair.stop().await.unwrap();
}

#[tokio::test]
async fn open_repair_retried_with_its_command_id_opens_one_order() {
    use aftersales_runtime::request::with_command_id;
    let mut p = Platform::start().await;
    let imei = imei(901);
    register(&mut p, &imei, "DE", 30).await;
    let command_id = uuid::Uuid::new_v4();
    let first =
        p.r.open_repair(with_command_id(walk_in(&imei), command_id))
            .await
            .unwrap()
            .into_inner();
    let events = p.repair_events().await;
    let again =
        p.r.open_repair(with_command_id(walk_in(&imei), command_id))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(
        again.order_id, first.order_id,
        "the retry answers the same order"
    );
    assert_eq!(p.repair_events().await, events, "and writes nothing");

    let mut other = walk_in(&imei);
    other.symptoms = "the battery swells".into();
    let reused =
        p.r.open_repair(with_command_id(other, command_id))
            .await
            .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    assert_eq!(p.repair_events().await, events);
    p.stop().await;
}
