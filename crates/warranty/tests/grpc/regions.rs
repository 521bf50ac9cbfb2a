//! Two regions, each with its own nats-server (linked as leaf nodes through a
//! proxy the test cuts), PostgreSQL database and warranty service: a phone
//! registered in its home region is known in the other from the replica, says
//! so and as of when, and what changes at home while the link is cut arrives
//! once it heals; a phone is registered only in its home region, decided abroad
//! under its home policy, and a claim made abroad reaches home exactly once.

use std::time::Duration;

use aftersales_proto::warranty as pb;
use aftersales_testkit::NatsServer;
use tonic::Code;

use crate::harness::{Server, by_imei, days_ago, fresh_imei, registration};

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

/// Germany (home for DE) and India (home for IN), linked through a proxy.
struct TwoRegions {
    eu: Server,
    ap: Server,
    proxy: aftersales_testkit::TcpProxy,
    _nats: (NatsServer, NatsServer),
    _dir: tempfile::TempDir,
}

async fn two_regions() -> TwoRegions {
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
    TwoRegions {
        eu,
        ap,
        proxy,
        _nats: (eu_nats, ap_nats),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_bought_in_germany_is_known_in_india_from_the_replica() {
    let TwoRegions {
        eu,
        ap,
        proxy,
        _nats: _servers,
        _dir: _directory,
    } = two_regions().await;

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

/// A published warranty event, decoded, as text.
fn published(kind: &str, payload: &[u8]) -> String {
    fn show<M: prost::Message + Default + std::fmt::Debug>(payload: &[u8]) -> String {
        format!("{:?}", M::decode(payload).unwrap())
    }
    match kind {
        "DeviceRegistered" => show::<pb::DeviceRegistered>(payload),
        "ExtendedWarrantyPurchased" => show::<pb::ExtendedWarrantyPurchased>(payload),
        "ExtendedWarrantyCancelled" => show::<pb::ExtendedWarrantyCancelled>(payload),
        "AccessoryRegistered" => show::<pb::AccessoryRegistered>(payload),
        "WarrantyVoided" => show::<pb::WarrantyVoided>(payload),
        "OwnershipTransferred" => show::<pb::OwnershipTransferred>(payload),
        "CoverageDecided" => show::<pb::CoverageDecided>(payload),
        "ClaimRecorded" => show::<pb::ClaimRecorded>(payload),
        "WriteForwarded" => show::<pb::WriteForwarded>(payload),
        "EnrolledInProgramme" => show::<pb::EnrolledInProgramme>(payload),
        "RepairProgressedAbroad" => show::<pb::RepairProgressedAbroad>(payload),
        other => panic!("{other}: not a warranty event"),
    }
}

fn display_fault(imei: &str, record: bool) -> pb::CheckCoverageRequest {
    pb::CheckCoverageRequest {
        device_id: by_imei(imei),
        fault_category: pb::FaultCategory::Display.into(),
        record_decision: record,
        ..Default::default()
    }
}

async fn claims_recorded(server: &Server, imei: &str) -> usize {
    let history = server
        .client
        .clone()
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(imei),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    history
        .events
        .iter()
        .filter(|e| e.event_type == "ClaimRecorded")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_phone_repaired_in_india_is_claimed_in_germany_once_across_a_cut() {
    let TwoRegions {
        eu,
        ap,
        proxy,
        _nats: (eu_nats, ap_nats),
        _dir: _directory,
    } = two_regions().await;
    let store = ap.running.store.clone();
    let clock = ap.clock.clone();
    let queued = || async {
        aftersales_warranty::replica::unsettled_forwards(&store, clock.now())
            .await
            .unwrap()
    };

    // A phone is registered in its home region only.
    let imei = fresh_imei();
    let refused = ap
        .client
        .clone()
        .register_device(registration(&imei, "DE", &days_ago(60), "cust-de-2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("eu-central"), "{refused:?}");
    eu.client
        .clone()
        .register_device(registration(&imei, "DE", &days_ago(60), "cust-de-2"))
        .await
        .unwrap();
    eventually(&ap, &imei, |d| d.replica.is_some()).await;
    let twice = ap
        .client
        .clone()
        .register_device(registration(&imei, "IN", &days_ago(60), "cust-in-2"))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists, "{twice:?}");

    // India decides under the German policy, as Germany does, and says whence.
    let home = eu
        .client
        .clone()
        .check_coverage(display_fault(&imei, false))
        .await
        .unwrap()
        .into_inner();
    let abroad = ap
        .client
        .clone()
        .check_coverage(display_fault(&imei, true))
        .await
        .unwrap()
        .into_inner();
    assert!(home.covered, "{home:?}");
    assert_eq!(home.replica, None);
    let replica = abroad.replica.clone().expect("decided from the replica");
    assert_eq!(replica.home_region, "eu-central");
    assert_eq!(
        pb::CoverageDecision {
            replica: None,
            known_at: None,
            ..abroad.clone()
        },
        pb::CoverageDecision {
            known_at: None,
            ..home.clone()
        },
        "the same decision in both regions"
    );
    // Only the home region writes the device: a plan is bought there.
    let plan = ap
        .client
        .clone()
        .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
            device_id: by_imei(&imei),
            plan_id: "care-12".into(),
            payment_method: "pm_card_visa".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(plan.code(), Code::FailedPrecondition, "{plan:?}");

    // Cut off, India repairs it: the claim is accepted into the forward queue,
    // once however often it is sent.
    proxy.cut();
    let claim = pb::RecordClaimRequest {
        device_id: by_imei(&imei),
        repair_order_id: "r-abroad-1".into(),
        fault_category: pb::FaultCategory::Display.into(),
        ..Default::default()
    };
    let first = ap
        .client
        .clone()
        .record_claim(claim.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    let device = first.device.unwrap();
    assert!(
        device.replica.as_ref().is_some_and(|r| r.write_forwarded),
        "{device:?}"
    );
    let again = ap
        .client
        .clone()
        .record_claim(claim)
        .await
        .unwrap()
        .into_inner();
    assert!(again.duplicate, "a claim is queued once per repair order");
    let waiting = queued().await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!((waiting[0].0.as_str(), waiting[0].1), ("eu-central", 1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        claims_recorded(&eu, &imei).await,
        0,
        "nothing crosses a cut"
    );

    // Healed: Germany records it once, and India's replica and queue follow.
    let healed = std::time::Instant::now();
    proxy.heal();
    let deadline = tokio::time::Instant::now() + WAIT;
    while claims_recorded(&eu, &imei).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claim never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "claim applied at home {:?} after the heal",
        healed.elapsed()
    );
    let copy = eventually(&ap, &imei, |d| d.claims == 1).await;
    assert!(copy.replica.is_some());
    while !queued().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(claims_recorded(&eu, &imei).await, 1, "exactly once");
    let verified = eu
        .client
        .clone()
        .verify_device_history(pb::VerifyDeviceHistoryRequest {
            device_id: by_imei(&imei),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");

    // Staff in India find the warranty void: queued, applied at home, back here.
    let void = ap
        .client
        .clone()
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imei),
            reason: "liquid damage found at the repair".into(),
            evidence: vec!["photo-17".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(void.replica.is_some_and(|r| r.write_forwarded));
    let voided = eventually(&ap, &imei, |d| d.voided).await;
    assert_eq!(voided.void_reason, "liquid damage found at the repair");
    let home = eu
        .client
        .clone()
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(home.voided && home.replica.is_none(), "{home:?}");
    while !queued().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Residency: every message that crossed, either way, holds no contact data.
    let mut crossed = 0;
    for (here, there, url) in [
        ("ap-south", "eu-central", ap_nats.url()),
        ("eu-central", "ap-south", eu_nats.url()),
    ] {
        let names = |r: &str| aftersales_messaging::Names::new(r.to_owned()).unwrap();
        let stream = names(here).replica_stream(&names(there), "warranty");
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let mut mirror = js.get_stream(&stream).await.unwrap();
        let last = mirror.info().await.unwrap().state.last_sequence;
        assert!(last > 0, "{stream} is empty");
        for sequence in 1..=last {
            let message = mirror.get_raw_message(sequence).await.unwrap();
            let kind = message
                .headers
                .get("Aftersales-Event-Type")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let text = format!(
                "{:?} {}",
                message.headers,
                published(&kind, &message.payload)
            );
            assert!(!text.contains('@'), "{stream} #{sequence}: {text}");
            // A phone number as addresses and contacts carry one.
            let phone = text
                .split('+')
                .skip(1)
                .any(|rest| rest.bytes().take_while(u8::is_ascii_digit).count() >= 7);
            assert!(!phone, "{stream} #{sequence}: {text}");
            crossed += 1;
        }
    }
    eprintln!("{crossed} messages crossed between the regions, none personal");
}
