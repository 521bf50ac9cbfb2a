//! Service centers: nearest search, mail-in beyond reach, capacity, and changes
//! every replica serves.

use aftersales_proto::common::{CountryCode, GeoPoint};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_testkit::eventually;
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::*;

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
    // Beside the advice, the nearest center and its distance.
    assert_eq!(far.centers[0].center.as_ref().unwrap().id, "sc-sydney-01");
    assert!(far.centers[0].distance_km > far.radius_km);

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
    // Today: the center opens every day.
    let open = || pb::OpenRepairRequest {
        service_center_id: "sc-tiny-01".into(),
        walk_in_day: String::new(),
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
    let today = chrono::Utc::now().date_naive();
    let tomorrow = (today + chrono::Duration::days(1)).to_string();
    assert!(m.contains(&tomorrow), "{m}");

    // The nearest centers offer that day, and booking it holds it.
    let near =
        p.r.find_nearest_centers(pb::FindNearestCentersRequest {
            point: Some(GeoPoint {
                latitude: 52.5,
                longitude: 13.4,
            }),
            country: Some(CountryCode { value: "DE".into() }),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let tiny = near
        .centers
        .iter()
        .find(|n| n.center.as_ref().is_some_and(|c| c.id == "sc-tiny-01"))
        .expect("the tiny center is near");
    assert_eq!(tiny.next_walk_in_day, tomorrow);
    let book = |day: String| pb::OpenRepairRequest {
        walk_in_day: day,
        ..open()
    };
    let booked =
        p.r.open_repair(book(tomorrow.clone()))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(booked.walk_in_day, tomorrow);
    let day_after = (today + chrono::Duration::days(2)).to_string();
    // (Counted from the order directory, which follows the log: a booking
    // made before it caught up is taken, as for today's walk-ins.)
    let full_tomorrow = eventually(
        || {
            let mut r = p.r.clone();
            let request = book(tomorrow.clone());
            async move { r.open_repair(request).await.map(|_| ()) }
        },
        |answer| {
            answer
                .as_ref()
                .is_err_and(|s| s.code() == Code::ResourceExhausted)
        },
    )
    .await
    .unwrap_err();
    assert!(
        full_tomorrow.message().contains(&day_after),
        "{}",
        full_tomorrow.message()
    );
    // The center's load: today's walk-in and tomorrow's booking, each against one place.
    let stats =
        p.r.get_center_stats(pb::GetCenterStatsRequest {
            service_center_id: "sc-tiny-01".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stats.days.len(), 14);
    let load: Vec<(&str, bool, u32, u32)> = stats.days[..2]
        .iter()
        .map(|d| (d.day.as_str(), d.open, d.booked.min(1), d.capacity))
        .collect();
    assert_eq!(
        load,
        vec![
            (today.to_string().as_str(), true, 1, 1),
            (tomorrow.as_str(), true, 1, 1)
        ]
    );
    for (day, why) in [
        ((today - chrono::Duration::days(1)).to_string(), "yesterday"),
        (
            (today + chrono::Duration::days(61)).to_string(),
            "too far ahead",
        ),
        ("next week".to_owned(), "not a date"),
    ] {
        let (c, m) = code(p.r.open_repair(book(day)).await);
        assert_eq!(c, Code::InvalidArgument, "{why}: {m}");
        assert!(m.contains("walk_in_day"), "{why}: {m}");
    }
    p.stop().await;
}

fn berlin_ref() -> pb::GetServiceCenterRequest {
    pb::GetServiceCenterRequest {
        id: "sc-berlin-01".into(),
    }
}

#[tokio::test]
async fn a_center_changed_through_one_replica_is_served_by_another_within_a_second() {
    let mut p = Platform::start().await;
    let replica = aftersales_repair::server::start(repair_config(
        p.repair_url.clone(),
        Some(format!("http://{}", p.warranty.addr)),
    ))
    .await
    .unwrap();
    let mut other = RepairServiceClient::connect(format!("http://{}", replica.addr))
        .await
        .unwrap();
    let before = other
        .get_service_center(berlin_ref())
        .await
        .unwrap()
        .into_inner();
    let changed = pb::ServiceCenter {
        hours: "08:00-20:00".into(),
        daily_capacity: before.daily_capacity + 5,
        ..before.clone()
    };
    p.r.upsert_service_center(changed.clone()).await.unwrap();
    assert_eq!(
        p.r.get_service_center(berlin_ref())
            .await
            .unwrap()
            .into_inner(),
        changed,
        "the replica that took the change serves it at once"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let seen = other
            .get_service_center(berlin_ref())
            .await
            .unwrap()
            .into_inner();
        if seen == changed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after a second the other replica still serves {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // An unchanged upsert records nothing more.
    let events = p.repair_events().await;
    p.r.upsert_service_center(changed.clone()).await.unwrap();
    assert_eq!(p.repair_events().await, events);
    replica.stop().await.unwrap();
    p.stop().await;
}

#[tokio::test]
async fn centers_recorded_by_the_previous_release_are_still_served() {
    use aftersales_eventstore::{EventStore as _, ExpectedVersion, Metadata, NewEvent, StreamId};
    // The previous release kept every center in one stream, the center itself as
    // the payload (schema version 1).
    let url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let store = aftersales_eventstore::AnyEventStore::connect(&url)
        .await
        .unwrap();
    let mut center = aftersales_repair::domain::centers::builtin()
        .unwrap()
        .into_iter()
        .find(|c| c.id == "sc-berlin-01")
        .unwrap();
    center.id = "sc-potsdam-01".into();
    center.city = "Potsdam".into();
    let old = NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "ServiceCenterUpserted".into(),
        schema_version: 1,
        payload: serde_json::to_vec(&center).unwrap(),
        personal: None,
        metadata: Metadata {
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "staff:admin".into(),
            region: "test".into(),
            recorded_at: chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
        },
    };
    store
        .append(
            &StreamId::parse("service-centers").unwrap(),
            ExpectedVersion::Any,
            vec![old],
        )
        .await
        .unwrap();

    let repair = aftersales_repair::server::start(repair_config(url, None))
        .await
        .unwrap();
    let mut r = RepairServiceClient::connect(format!("http://{}", repair.addr))
        .await
        .unwrap();
    let potsdam = || pb::GetServiceCenterRequest {
        id: "sc-potsdam-01".into(),
    };
    let served = eventually(
        || {
            let mut r = r.clone();
            async move {
                r.get_service_center(potsdam())
                    .await
                    .map(|c| c.into_inner())
            }
        },
        Result::is_ok,
    )
    .await
    .unwrap();
    assert_eq!(served.city, "Potsdam");

    // A change made today supersedes it, in its own stream.
    let moved = pb::ServiceCenter {
        daily_capacity: 3,
        ..served
    };
    r.upsert_service_center(moved.clone()).await.unwrap();
    assert_eq!(
        r.get_service_center(potsdam()).await.unwrap().into_inner(),
        moved
    );
    // Rebuilt from the log, old and new rows together give the same answer.
    aftersales_eventstore::projection::rebuild(
        &repair.store,
        &aftersales_repair::projections::CenterDirectory,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        r.get_service_center(potsdam()).await.unwrap().into_inner(),
        moved
    );
    repair.stop().await.unwrap();
}
