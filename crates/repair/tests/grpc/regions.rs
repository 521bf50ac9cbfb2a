//! A repair abroad: Germany and India, each with its own nats-server (linked
//! through a proxy the test cuts), databases and warranty service; India's
//! repair service opens, diagnoses and repairs a phone bought in Germany under
//! its German coverage, and the claim reaches Germany exactly once, though the
//! link was down when the repair started.

use std::time::Duration;

use aftersales_proto::repair as pb;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_testkit::{NatsServer, shared_postgres};
use tonic::transport::Channel;

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(60);

/// The built-in policies, but Germany's warranty honoured worldwide (a maker's
/// global warranty; the published German terms are EU-wide, and India would
/// rightly refuse them): the same table in both regions.
fn worldwide_policies(dir: &std::path::Path) -> std::path::PathBuf {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../warranty/policies");
    let target = dir.join("policies");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().is_some_and(|n| n == "DE.toml") {
            assert!(text.contains("honoured_in = \"eu\""));
            text = text.replace("honoured_in = \"eu\"", "honoured_in = \"worldwide\"");
        }
        std::fs::write(target.join(path.file_name().unwrap()), text).unwrap();
    }
    target
}

async fn warranty_in(
    region: &str,
    nats_url: String,
    regions: &std::path::Path,
    policies: &std::path::Path,
) -> (
    aftersales_warranty::server::Running,
    WarrantyServiceClient<Channel>,
) {
    let roles = shared_postgres().create_database_with_roles().unwrap();
    let running = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: Common {
            nats_url: Some(nats_url.into()),
            region: region.into(),
            regions_file: Some(regions.into()),
            database_owner_url: Some(roles.owner_url.into()),
            ..Common::test(roles.service_url)
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        policies: Some(policies.into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = WarrantyServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap();
    (running, client)
}

async fn history(w: &WarrantyServiceClient<Channel>, imei: &str) -> wpb::GetDeviceHistoryResponse {
    w.clone()
        .get_device_history(wpb::GetDeviceHistoryRequest {
            device_id: device(imei),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_phone_is_repaired_in_india_under_its_german_coverage() {
    let (eu_nats, ap_nats, proxy) = NatsServer::linked_regions("eu-central", "ap-south").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let regions = dir.path().join("regions.toml");
    std::fs::write(
        &regions,
        "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\n\
         [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n",
    )
    .unwrap();
    let policies = worldwide_policies(dir.path());
    let (eu, de) = warranty_in("eu-central", eu_nats.url(), &regions, &policies).await;
    let (ap, india) = warranty_in("ap-south", ap_nats.url(), &regions, &policies).await;
    let mut config = repair_config(
        shared_postgres().create_database().unwrap(),
        Some(format!("http://{}", ap.addr)),
    );
    config.common.region = "ap-south".into();
    let repair = aftersales_repair::server::start(config).await.unwrap();
    let mut r = aftersales_proto::repair::repair_service_client::RepairServiceClient::connect(
        format!("http://{}", repair.addr),
    )
    .await
    .unwrap();

    let imei = imei(900);
    de.clone()
        .register_device(wpb::RegisterDeviceRequest {
            device_id: device(&imei),
            model: "Aurora 5".into(),
            purchase_date: days_ago(100),
            country_of_purchase: Some(aftersales_proto::common::CountryCode { value: "DE".into() }),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: "cust-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while india
        .clone()
        .get_device(wpb::GetDeviceRequest {
            device_id: device(&imei),
        })
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Opened and diagnosed in Bengaluru: covered, under the German policy.
    let opened = r
        .open_repair(pb::OpenRepairRequest {
            service_center_id: "sc-bengaluru-01".into(),
            ..walk_in(&imei)
        })
        .await
        .unwrap()
        .into_inner();
    let coverage = opened.coverage.clone().unwrap();
    assert!(coverage.decided && coverage.covered, "{coverage:?}");
    assert_eq!(coverage.policy_id, "de-consumer");
    let id = opened.order_id.clone();
    r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "no visible damage".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let diagnosed = r
        .diagnose(pb::DiagnoseRequest {
            order_id: id.clone(),
            fault_category: wpb::FaultCategory::Display.into(),
            fault_codes: vec!["DSP-17".into()],
            technician: "tech-in-3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(diagnosed.coverage.unwrap().covered);

    // The link is down when the repair starts: the claim is queued in India.
    proxy.cut();
    r.start_repair(pb::StartRepairRequest {
        order_id: id.clone(),
        technician: "tech-in-3".into(),
    })
    .await
    .unwrap();
    r.replace_part(pb::ReplacePartRequest {
        order_id: id.clone(),
        part_number: "DSP-5".into(),
        old_serial: "A1".into(),
        new_serial: "B2".into(),
    })
    .await
    .unwrap();
    r.record_qc_result(pb::RecordQcResultRequest {
        order_id: id.clone(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    r.mark_ready_for_return(order(&id)).await.unwrap();
    let closed = r.confirm_collected(order(&id)).await.unwrap().into_inner();
    assert!(closed.repaired);
    let claims = |h: &wpb::GetDeviceHistoryResponse| {
        h.events
            .iter()
            .filter(|e| e.event_type == "ClaimRecorded")
            .count()
    };
    assert_eq!(
        claims(&history(&de, &imei).await),
        0,
        "nothing crosses a cut"
    );

    // Healed: Germany records the claim once, naming the repair order.
    proxy.heal();
    let home = loop {
        let home = history(&de, &imei).await;
        if claims(&home) > 0 {
            break home;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claim never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let claim = home
        .events
        .iter()
        .find(|e| e.event_type == "ClaimRecorded")
        .unwrap();
    assert!(claim.payload_json.contains(&id), "{}", claim.payload_json);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(claims(&history(&de, &imei).await), 1, "exactly once");
    let verified = de
        .clone()
        .verify_device_history(wpb::VerifyDeviceHistoryRequest {
            device_id: device(&imei),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");
    // And the repair's own history, in India, verifies too.
    let repaired = r
        .verify_repair_history(pb::VerifyRepairHistoryRequest {
            device_id: device(&imei),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        repaired.intact && repaired.orders_checked == 1,
        "{repaired:?}"
    );

    repair.stop().await.unwrap();
    ap.stop().await.unwrap();
    eu.stop().await.unwrap();
}
