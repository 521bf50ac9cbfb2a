//! Demand, the planner and quality figures over orders made through the API,
//! counted by hand, and the same after a rebuild from the log.

use aftersales_proto::common::{Address, CountryCode, Money};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_testkit::eventually;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::*;

const CENTER: &str = "sc-bengaluru-01";

fn india() -> Option<CountryCode> {
    Some(CountryCode { value: "IN".into() })
}

async fn opened(r: &mut RepairServiceClient<Channel>, imei: &str, customer: &str) -> String {
    let id = r
        .open_repair(pb::OpenRepairRequest {
            service_center_id: CENTER.into(),
            customer_id: customer.into(),
            ..walk_in(imei)
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "ok".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    id
}

async fn diagnosed(r: &mut RepairServiceClient<Channel>, id: &str) {
    r.diagnose(pb::DiagnoseRequest {
        order_id: id.to_owned(),
        fault_category: wpb::FaultCategory::Display.into(),
        fault_codes: Vec::new(),
        technician: "tech-9".into(),
    })
    .await
    .unwrap();
}

/// Diagnosed (display), repaired, QC failed `failures` times then passed, ready.
async fn repaired(r: &mut RepairServiceClient<Channel>, id: &str, failures: usize) {
    diagnosed(r, id).await;
    r.start_repair(pb::StartRepairRequest {
        order_id: id.to_owned(),
        technician: "tech-9".into(),
    })
    .await
    .unwrap();
    for passed in std::iter::repeat_n(false, failures).chain([true]) {
        r.record_qc_result(pb::RecordQcResultRequest {
            order_id: id.to_owned(),
            passed,
            notes: if passed {
                String::new()
            } else {
                "the seal leaks".into()
            },
        })
        .await
        .unwrap();
    }
    r.mark_ready_for_return(order(id)).await.unwrap();
}

fn quality_request() -> pb::GetNetworkQualityRequest {
    pb::GetNetworkQualityRequest {
        country: india(),
        weeks: 4,
        ..Default::default()
    }
}

#[tokio::test]
async fn first_time_fixes_qc_and_demand_counted_by_hand_and_after_a_rebuild() {
    let mut p = Platform::start().await;
    let (a, b, c) = (imei(31), imei(32), imei(33));
    for (device, days) in [(&a, 20), (&b, 20), (&c, 900)] {
        register(&mut p, device, "IN", days).await;
    }
    // A: repaired after one QC failure, collected, then back for the same fault.
    let a1 = opened(&mut p.r, &a, "cust-1").await;
    repaired(&mut p.r, &a1, 1).await;
    p.r.confirm_collected(order(&a1)).await.unwrap();
    let a2 = opened(&mut p.r, &a, "cust-1").await;
    diagnosed(&mut p.r, &a2).await;
    // B: repaired, passed at once.
    let b1 = opened(&mut p.r, &b, "cust-2").await;
    repaired(&mut p.r, &b1, 0).await;
    // C: out of warranty, quoted, declined.
    let c1 = opened(&mut p.r, &c, "cust-3").await;
    diagnosed(&mut p.r, &c1).await;
    let valid_until = p.clock.now() + chrono::Duration::days(7);
    p.r.issue_quote(pb::IssueQuoteRequest {
        order_id: c1.clone(),
        lines: vec![pb::QuoteLine {
            description: "display".into(),
            is_labour: false,
            amount: Some(Money {
                minor_units: 900_000,
                currency: "INR".into(),
            }),
        }],
        valid_until: Some(aftersales_runtime::request::timestamp_to_proto(valid_until)),
    })
    .await
    .unwrap();
    p.r.decline_quote(order(&c1)).await.unwrap();
    // A mail-in from Nagpur, written the old way.
    let m = imei(34);
    register(&mut p, &m, "IN", 20).await;
    p.r.open_repair(pb::OpenRepairRequest {
        channel: pb::Channel::MailIn.into(),
        service_center_id: String::new(),
        customer_id: "cust-4".into(),
        contact_address: Some(Address {
            recipient: "Asha Rao".into(),
            lines: vec!["12 Civil Lines".into()],
            city: "NAGPUR".into(),
            region: "Maharashtra".into(),
            postal_code: "440001".into(),
            country: india(),
            phone: String::new(),
        }),
        ..walk_in(&m)
    })
    .await
    .unwrap();

    // E walks in (left checked in), then mails another phone in from Pune:
    // placed at Pune from then on.
    let (e, e2) = (imei(35), imei(36));
    register(&mut p, &e, "IN", 20).await;
    register(&mut p, &e2, "IN", 20).await;
    opened(&mut p.r, &e, "cust-5").await;
    p.r.open_repair(pb::OpenRepairRequest {
        channel: pb::Channel::MailIn.into(),
        service_center_id: String::new(),
        customer_id: "cust-5".into(),
        contact_address: Some(Address {
            recipient: "Ravi Patil".into(),
            lines: vec!["4 FC Road".into()],
            city: "Pune".into(),
            region: "Maharashtra".into(),
            postal_code: "411004".into(),
            country: india(),
            phone: String::new(),
        }),
        ..walk_in(&e2)
    })
    .await
    .unwrap();

    // By hand: at the center 5 orders (E's only checked in); repaired and ready A1 and B1, of which
    // B1 was fixed the first time (A came back for its display): 50%. QC: A1
    // failed once and passed, B1 passed: 1 failure in 3 checks. One quote,
    // declined. The two mail-ins are the depot's, their parcels on their way.
    let quality = eventually(
        || {
            let mut r = p.r.clone();
            async move {
                r.get_network_quality(quality_request())
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |q| {
            q.summary.iter().any(|row| {
                row.service_center_id == CENTER
                    && row.figures.as_ref().is_some_and(|f| {
                        // Stage times are a projection of their own: wait for it too.
                        let opened = f
                            .stages
                            .iter()
                            .find(|s| s.stage == i32::from(pb::Stage::Opened));
                        f.orders == 5
                            && f.quotes_declined == 1
                            && opened.is_some_and(|s| s.orders == 5)
                    })
            }) && q.summary.iter().any(|row| {
                row.service_center_id.is_empty()
                    && row.figures.as_ref().is_some_and(|f| f.orders == 2)
            })
        },
    )
    .await;
    let center = quality
        .summary
        .iter()
        .find(|row| row.service_center_id == CENTER)
        .and_then(|row| row.figures.clone())
        .unwrap();
    assert_eq!(
        (center.repaired, center.first_time_fix_rate),
        (2, Some(0.5))
    );
    assert_eq!(center.qc_failure_rate, Some(1.0 / 3.0));
    assert_eq!((center.quotes_issued, center.quotes_declined), (1, 1));
    assert!(
        center
            .stages
            .iter()
            .any(|s| s.stage == i32::from(pb::Stage::InRepair))
    );
    let weekly: u32 = quality
        .weeks
        .iter()
        .filter(|w| w.service_center_id == CENTER)
        .filter_map(|w| w.figures.as_ref().map(|f| f.orders))
        .sum();
    assert_eq!(weekly, 5);
    // Per technician: every diagnosed order here had tech-9.
    let by_tech =
        p.r.get_network_quality(pb::GetNetworkQualityRequest {
            by_technician: true,
            service_center_id: CENTER.into(),
            ..quality_request()
        })
        .await
        .unwrap()
        .into_inner();
    let techs: Vec<_> = by_tech
        .summary
        .iter()
        .map(|r| r.technician.as_str())
        .collect();
    // E's walk-in is not diagnosed yet: no technician holds it.
    assert_eq!(techs, ["", "tech-9"]);

    // Demand: three customers walked into Bengaluru, one mails in from Nagpur,
    // one from Pune after a walk-in (both of theirs counted at Pune).
    let demand =
        p.r.list_demand_areas(pb::ListDemandAreasRequest { country: india() })
            .await
            .unwrap()
            .into_inner();
    let areas: Vec<_> = demand
        .areas
        .iter()
        .map(|a| (a.city.as_str(), a.customers, a.repairs, a.mail_in_share))
        .collect();
    // Pune before Nagpur: a tie in customers, broken by GeoNames id.
    assert_eq!(
        areas,
        [
            ("Bengaluru", 3, 4, 0.0),
            ("Pune", 1, 2, 0.5),
            ("Nagpur", 1, 1, 1.0)
        ]
    );
    assert_eq!(demand.unplaced_customers, 0);
    assert!(demand.areas.iter().all(|a| a.nearest_center_id == CENTER));

    // The plan reaches Nagpur first: Pune brings as many, and comes second in the list.
    let plan =
        p.r.plan_network(pb::PlanNetworkRequest {
            country: india(),
            new_points: 1,
            within_km: Some(50.0),
            candidates: vec!["Nagpur".into(), "Pune".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.choices[0].city, "Nagpur");
    let (before, after) = (plan.before.unwrap(), plan.after.unwrap());
    assert_eq!(
        (before.customers, before.beyond_reach, after.beyond_reach),
        (5, 2, 1)
    );
    assert!(plan.map_svg.starts_with("<svg"));

    // Rebuilt from the log, the same figures.
    aftersales_eventstore::projection::rebuild(
        &p.repair.store,
        &aftersales_repair::network::NetworkFacts,
        |_| {},
    )
    .await
    .unwrap();
    let again =
        p.r.get_network_quality(quality_request())
            .await
            .unwrap()
            .into_inner();
    assert_eq!(again, quality);
    let demand_again =
        p.r.list_demand_areas(pb::ListDemandAreasRequest { country: india() })
            .await
            .unwrap()
            .into_inner();
    assert_eq!(demand_again, demand);
    p.stop().await;
}

#[tokio::test]
async fn bad_plans_and_quality_requests_name_the_field_and_change_nothing() {
    let mut p = Platform::start().await;
    let plan = |new_points: u32, country: &str, within_km: Option<f64>, candidates: &[&str]| {
        pb::PlanNetworkRequest {
            country: Some(CountryCode {
                value: country.into(),
            }),
            new_points,
            within_km,
            candidates: candidates.iter().map(|c| (*c).to_owned()).collect(),
        }
    };
    let field_of = |status: tonic::Status| {
        let fields = aftersales_runtime::errors::field_violations(&status);
        (
            status.code(),
            fields.first().map(|(f, _)| f.clone()).unwrap_or_default(),
        )
    };
    let events = p.repair_events().await;
    for (request, field) in [
        (plan(0, "IN", None, &[]), "new_points"),
        (plan(3, "IN", None, &["Pune", "Nagpur"]), "new_points"),
        (plan(1, "XX", None, &[]), "country"),
        (plan(1, "in", None, &[]), "country"),
        (plan(1, "IN", Some(-1.0), &[]), "within_km"),
        (plan(1, "IN", Some(f64::NAN), &[]), "within_km"),
        (plan(1, "IN", None, &["Atlantis"]), "candidates"),
    ] {
        let refused = p.r.plan_network(request.clone()).await.unwrap_err();
        assert_eq!(
            field_of(refused),
            (Code::InvalidArgument, field.to_owned()),
            "{request:?}"
        );
    }
    for (request, field) in [
        (
            pb::GetNetworkQualityRequest {
                weeks: 53,
                ..quality_request()
            },
            "weeks",
        ),
        (
            pb::GetNetworkQualityRequest {
                country: None,
                ..quality_request()
            },
            "country",
        ),
    ] {
        let refused = p.r.get_network_quality(request).await.unwrap_err();
        assert_eq!(field_of(refused), (Code::InvalidArgument, field.to_owned()));
    }
    let unknown =
        p.r.get_network_quality(pb::GetNetworkQualityRequest {
            service_center_id: "sc-nowhere".into(),
            ..quality_request()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(p.repair_events().await, events);
    p.stop().await;
}
