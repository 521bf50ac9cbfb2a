//! Coverage as of an earlier time, tamper evidence and the projections.

use std::time::Duration;

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
            effective_until: Default::default(),
            known_at: Default::default(),
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
            effective_until: Default::default(),
            known_at: Default::default(),
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
