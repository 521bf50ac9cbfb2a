//! Two regions, each with its own nats-server (linked as leaf nodes through a
//! proxy the test cuts), PostgreSQL database and warranty service: a phone
//! registered in its home region is known in the other from the replica, says
//! so and as of when, and what changes at home while the link is cut arrives
//! once it heals.

use std::time::Duration;

use aftersales_proto::warranty as pb;
use aftersales_testkit::NatsServer;
use tonic::Code;

use crate::harness::{Server, by_imei, fresh_imei, registration};

const WAIT: Duration = Duration::from_secs(60);

/// Asks `server` for `imei` until `done` holds for its answer.
async fn eventually(server: &Server, imei: &str, done: impl Fn(&pb::Device) -> bool) -> pb::Device {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = server
            .client
            .clone()
            .get_device(pb::GetDeviceRequest {
                device_id: by_imei(imei),
            })
            .await;
        match answer {
            Ok(device) if done(device.get_ref()) => return device.into_inner(),
            Ok(_) => {}
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no such answer for {imei}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_bought_in_germany_is_known_in_india_from_the_replica() {
    let (eu_nats, ap_nats, proxy) = NatsServer::linked_regions("eu-central", "ap-south").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let regions = dir.path().join("regions.toml");
    std::fs::write(
        &regions,
        "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\n\
         [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n",
    )
    .unwrap();
    let eu = Server::start_in_region(eu_nats.url(), "eu-central", &regions).await;
    let ap = Server::start_in_region(ap_nats.url(), "ap-south", &regions).await;

    let imei = fresh_imei();
    let home = eu
        .client
        .clone()
        .register_device(registration(&imei, "DE", "2026-03-01", "cust-de-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        home.replica, None,
        "the home region answers from its own log"
    );
    let copy = eventually(&ap, &imei, |d| d.replica.is_some()).await;
    let replica = copy.replica.clone().unwrap();
    assert_eq!(replica.home_region, "eu-central");
    assert!(replica.as_of.starts_with("20"), "{replica:?}");
    assert_eq!(
        (
            &copy.model,
            &copy.purchase_date,
            &copy.policy_id,
            copy.policy_version
        ),
        (
            &home.model,
            &home.purchase_date,
            &home.policy_id,
            home.policy_version
        )
    );
    assert_eq!(
        (&copy.base_warranty_end, &copy.legal_guarantee_end),
        (&home.base_warranty_end, &home.legal_guarantee_end)
    );
    assert_eq!(copy.customer_id, "", "the owner stays at home");
    assert!(!copy.voided);

    // Cut off, Germany voids the warranty; India still answers, from what it had.
    proxy.cut();
    eu.client
        .clone()
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imei),
            reason: "unauthorized modification of the mainboard".into(),
            evidence: vec![],
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stale = eventually(&ap, &imei, |d| d.replica.is_some()).await;
    assert!(!stale.voided, "nothing crosses a cut link");
    assert_eq!(stale.replica, copy.replica);

    // Healed: the void arrives, with a later as-of.
    proxy.heal();
    let caught_up = eventually(&ap, &imei, |d| d.voided).await;
    assert_eq!(
        caught_up.void_reason,
        "unauthorized modification of the mainboard"
    );
    assert!(caught_up.replica.unwrap().as_of > replica.as_of);

    // A phone neither region knows is not found in either.
    let unknown = ap
        .client
        .clone()
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&fresh_imei()),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}
