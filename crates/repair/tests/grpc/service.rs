//! Repair journeys, refusals, coverage from warranty, and service centers.

use std::time::Duration;

use aftersales_proto::common::{Address, CountryCode, DeviceId, GeoPoint, Money, device_id};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_testkit::{eventually, shared_postgres};
use tonic::Code;
use tonic::transport::Channel;

struct Platform {
    warranty: aftersales_warranty::server::Running,
    repair: aftersales_repair::server::Running,
    w: WarrantyServiceClient<Channel>,
    r: RepairServiceClient<Channel>,
    repair_url: String,
}

fn repair_config(
    database_url: String,
    warranty_url: Option<String>,
) -> aftersales_repair::server::Config {
    aftersales_repair::server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url,
        warranty_url,
        nats_url: None,
        region: "test".into(),
        center_radius_km: 150.0,
        drain_grace_seconds: 0,
        metrics_listen: None,
        stream_replicas: 1,
    }
}

impl Platform {
    async fn start() -> Self {
        let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: shared_postgres().create_database().unwrap(),
            nats_url: None,
            region: "test".into(),
            policies: None,
            stream_replicas: 1,
            drain_grace_seconds: 0,
            metrics_listen: None,
        })
        .await
        .unwrap();
        let repair_url = shared_postgres().create_database().unwrap();
        let repair = aftersales_repair::server::start(repair_config(
            repair_url.clone(),
            Some(format!("http://{}", warranty.addr)),
        ))
        .await
        .unwrap();
        let w = WarrantyServiceClient::connect(format!("http://{}", warranty.addr))
            .await
            .unwrap();
        let r = RepairServiceClient::connect(format!("http://{}", repair.addr))
            .await
            .unwrap();
        Self {
            warranty,
            repair,
            w,
            r,
            repair_url,
        }
    }

    async fn stop(self) {
        self.repair.stop().await.unwrap();
        self.warranty.stop().await.unwrap();
    }

    async fn repair_events(&self) -> i64 {
        let aftersales_eventstore::AnyEventStore::Postgres(pg) = &self.repair.store else {
            panic!()
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(pg.pool())
            .await
            .unwrap()
    }
}

fn imei(n: u64) -> String {
    let body = format!(
        "{:014}",
        36_000_000_000_000 + u64::from(std::process::id()) * 1000 + n
    );
    let check = (0..10)
        .find(|d| aftersales_warranty::domain::ids::luhn_valid(&format!("{body}{d}")))
        .unwrap();
    format!("{body}{check}")
}

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    })
}

fn days_ago(days: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Duration::days(days)).to_string()
}

async fn register(p: &mut Platform, imei: &str, country: &str, days: i64) {
    p.w.register_device(wpb::RegisterDeviceRequest {
        device_id: device(imei),
        model: "Aurora 5".into(),
        purchase_date: days_ago(days),
        country_of_purchase: Some(CountryCode {
            value: country.into(),
        }),
        channel: wpb::SalesChannel::OnlineStore.into(),
        customer_id: "cust-1".into(),
    })
    .await
    .unwrap();
}

fn walk_in(imei: &str) -> pb::OpenRepairRequest {
    pb::OpenRepairRequest {
        device_id: device(imei),
        channel: pb::Channel::WalkIn.into(),
        service_center_id: "sc-berlin-01".into(),
        customer_id: "cust-1".into(),
        symptoms: "the screen flickers".into(),
        contact_address: None,
        reported_fault: wpb::FaultCategory::Display.into(),
    }
}

fn order(id: &str) -> pb::OrderRef {
    pb::OrderRef {
        order_id: id.into(),
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let s = r.unwrap_err();
    (s.code(), s.message().to_owned())
}

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

    p.r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "hairline scratch on the back".into(),
        photos: vec!["photo-1".into()],
        liquid_indicator_tripped: false,
        accessories_received: vec!["case".into()],
    })
    .await
    .unwrap();
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

#[tokio::test]
async fn out_of_warranty_needs_a_quote_that_has_not_expired() {
    let mut p = Platform::start().await;
    let imei = imei(2);
    register(&mut p, &imei, "US", 500).await;
    let id =
        p.r.open_repair(walk_in(&imei))
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

    #[allow(clippy::disallowed_methods)]
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
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
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (c, m) = code(p.r.approve_quote(order(&id)).await);
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("expired"), "{m}");
    #[allow(clippy::disallowed_methods)]
    let later = chrono::Utc::now() + chrono::Duration::days(7);
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
        p.r.open_repair(walk_in(&imei))
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
async fn nearest_centers_mail_in_beyond_the_radius_and_centers_that_persist() {
    let mut p = Platform::start().await;
    let channel = Channel::from_shared(format!("http://{}", p.repair.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aftersales.repair.v1.RepairService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );
    let potsdam = Some(GeoPoint {
        latitude: 52.3906,
        longitude: 13.0645,
    });
    let near =
        p.r.find_nearest_centers(pb::FindNearestCentersRequest {
            point: potsdam,
            country: None,
            limit: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!near.recommend_mail_in);
    assert_eq!(near.centers[0].center.as_ref().unwrap().id, "sc-berlin-01");
    assert!(near.centers[0].distance_km < 40.0);

    let alice_springs = Some(GeoPoint {
        latitude: -23.698,
        longitude: 133.8807,
    });
    let far =
        p.r.find_nearest_centers(pb::FindNearestCentersRequest {
            point: alice_springs,
            country: Some(CountryCode { value: "AU".into() }),
            limit: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(far.recommend_mail_in);
    assert!(far.centers.is_empty());

    let center = pb::ServiceCenter {
        id: "sc-alice-springs-01".into(),
        name: "Aftersales Alice Springs".into(),
        country: Some(CountryCode { value: "AU".into() }),
        city: "Alice Springs".into(),
        address: vec!["Todd Mall 1".into()],
        location: alice_springs,
        open_days: vec!["mon".into(), "wed".into(), "fri".into()],
        hours: "09:00-17:00".into(),
        capabilities: vec!["battery".into()],
        daily_capacity: 8,
    };
    p.r.upsert_service_center(center.clone()).await.unwrap();
    let bad = pb::ServiceCenter {
        location: Some(GeoPoint {
            latitude: 200.0,
            longitude: 0.0,
        }),
        ..center.clone()
    };
    assert_eq!(
        code(p.r.upsert_service_center(bad).await).0,
        Code::InvalidArgument
    );
    let found =
        p.r.find_nearest_centers(pb::FindNearestCentersRequest {
            point: alice_springs,
            country: None,
            limit: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!found.recommend_mail_in);
    assert_eq!(
        found.centers[0].center.as_ref().unwrap().id,
        "sc-alice-springs-01"
    );

    // Restarted on the same database, the change is still there.
    let url = p.repair_url.clone();
    let warranty_url = format!("http://{}", p.warranty.addr);
    p.repair.stop().await.unwrap();
    let repair = aftersales_repair::server::start(repair_config(url, Some(warranty_url)))
        .await
        .unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{}", repair.addr))
        .await
        .unwrap();
    let stored = r
        .get_service_center(pb::GetServiceCenterRequest {
            id: "sc-alice-springs-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored, center);
    assert_eq!(
        code(
            r.get_service_center(pb::GetServiceCenterRequest {
                id: "sc-nowhere".into()
            })
            .await
        )
        .0,
        Code::NotFound
    );
    repair.stop().await.unwrap();
    p.warranty.stop().await.unwrap();
}

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

    let intact =
        p.r.verify_repair_history(pb::VerifyRepairHistoryRequest {
            device_id: device(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(intact.intact, "{}", intact.problem);
    let unknown = self::imei(7);
    assert_eq!((intact.orders_checked, intact.events_checked), (2, 3));

    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &p.repair.store else {
        panic!()
    };
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

#[tokio::test]
async fn a_full_center_refuses_walk_ins_with_the_next_available_day() {
    let mut p = Platform::start().await;
    let everyday: Vec<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .map(String::from)
        .to_vec();
    p.r.upsert_service_center(pb::ServiceCenter {
        id: "sc-tiny-01".into(),
        name: "Tiny".into(),
        country: Some(CountryCode { value: "DE".into() }),
        city: "Berlin".into(),
        address: vec!["Hof 1".into()],
        location: Some(GeoPoint {
            latitude: 52.5,
            longitude: 13.4,
        }),
        open_days: everyday,
        hours: "09:00-17:00".into(),
        capabilities: vec![],
        daily_capacity: 1,
    })
    .await
    .unwrap();
    let imei = imei(8);
    register(&mut p, &imei, "DE", 10).await;
    let open = || pb::OpenRepairRequest {
        service_center_id: "sc-tiny-01".into(),
        ..walk_in(&imei)
    };
    p.r.open_repair(open()).await.unwrap();
    // Bookings come from the order directory, which follows the log.
    let listed = eventually(
        || {
            let mut r = p.r.clone();
            async move {
                r.list_repairs_by_center(pb::ListRepairsByCenterRequest {
                    service_center_id: "sc-tiny-01".into(),
                    stage: pb::Stage::Unspecified.into(),
                    page_size: 10,
                    page_token: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |l| l.repairs.len() == 1,
    )
    .await;
    assert_eq!(listed.repairs.len(), 1);
    let (c, m) = code(p.r.open_repair(open()).await);
    assert_eq!(c, Code::ResourceExhausted, "{m}");
    #[allow(clippy::disallowed_methods)]
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Duration::days(1)).to_string();
    assert!(m.contains(&tomorrow), "{m}");
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
    config.nats_url = Some(nats.url());
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

    let timeline = eventually(
        || {
            let mut r = p.r.clone();
            let id = id.clone();
            async move {
                r.get_repair_timeline(order(&id))
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |t| t.steps.len() == 7,
    )
    .await;
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
