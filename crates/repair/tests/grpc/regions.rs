//! A repair abroad: Germany and India, each with its own nats-server (linked
//! through a proxy the test cuts), databases and warranty service; India's
//! repair service opens, diagnoses and repairs a phone bought in Germany under
//! its German coverage, and the claim reaches Germany exactly once, though the
//! link was down when the repair started.

use std::time::Duration;

use aftersales_core::{Clock as _, SystemClock};
use futures::FutureExt as _;

use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
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

/// Germany and India, linked through a proxy; India runs a repair service.
struct Abroad {
    eu: aftersales_warranty::server::Running,
    ap: aftersales_warranty::server::Running,
    repair: aftersales_repair::server::Running,
    de: WarrantyServiceClient<Channel>,
    india: WarrantyServiceClient<Channel>,
    r: RepairServiceClient<Channel>,
    proxy: aftersales_testkit::TcpProxy,
    _nats: (NatsServer, NatsServer),
    _dir: tempfile::TempDir,
}

impl Abroad {
    async fn start() -> Self {
        let (eu_nats, ap_nats, proxy) =
            NatsServer::linked_regions("eu-central", "ap-south").unwrap();
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
        let r = RepairServiceClient::connect(format!("http://{}", repair.addr))
            .await
            .unwrap();
        Self {
            eu,
            ap,
            repair,
            de,
            india,
            r,
            proxy,
            _nats: (eu_nats, ap_nats),
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.repair.stop().await.unwrap();
        self.ap.stop().await.unwrap();
        self.eu.stop().await.unwrap();
    }
}

async fn register_in(w: &WarrantyServiceClient<Channel>, imei: &str, country: &str) {
    w.clone()
        .register_device(wpb::RegisterDeviceRequest {
            device_id: device(imei),
            model: "Aurora 5".into(),
            purchase_date: days_ago(100),
            country_of_purchase: Some(aftersales_proto::common::CountryCode {
                value: country.into(),
            }),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: "cust-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Waits until `w` answers for `imei` (from its replica, for another region's).
async fn known(w: &WarrantyServiceClient<Channel>, imei: &str, claims: u32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = w
            .clone()
            .get_device(wpb::GetDeviceRequest {
                device_id: device(imei),
            })
            .await;
        if answer.is_ok_and(|d| d.get_ref().claims == claims) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{imei} never showed {claims} claims"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn claims(h: &wpb::GetDeviceHistoryResponse) -> usize {
    h.events
        .iter()
        .filter(|e| e.event_type == "ClaimRecorded")
        .count()
}

/// A walk-in repair at Bengaluru from opening to collection; the order id.
async fn repaired_in_bengaluru(mut r: RepairServiceClient<Channel>, imei: String) -> String {
    let opened = r
        .open_repair(pb::OpenRepairRequest {
            service_center_id: "sc-bengaluru-01".into(),
            ..walk_in(&imei)
        })
        .await
        .unwrap()
        .into_inner();
    let coverage = opened.coverage.clone().unwrap();
    assert!(coverage.decided && coverage.covered, "{imei}: {coverage:?}");
    let id = opened.order_id;
    r.check_in_device(pb::CheckInDeviceRequest {
        order_id: id.clone(),
        condition_notes: "no visible damage".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    r.diagnose(pb::DiagnoseRequest {
        order_id: id.clone(),
        fault_category: wpb::FaultCategory::Display.into(),
        fault_codes: vec!["DSP-17".into()],
        technician: "tech-in-3".into(),
    })
    .await
    .unwrap();
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
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_german_phone_is_repaired_in_india_under_its_german_coverage() {
    let Abroad {
        eu,
        ap,
        repair,
        de,
        india,
        mut r,
        proxy,
        _nats,
        _dir,
    } = Abroad::start().await;
    let imei = imei(900);
    register_in(&de, &imei, "DE").await;
    known(&india, &imei, 0).await;
    let deadline = tokio::time::Instant::now() + WAIT;

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

/// Fifty journeys while the link is cut: India repairs 20 German and 20 Indian
/// phones, Germany registers 10 and records their claims. Each region serves its
/// own throughout, India decides German phones from its replica; after the heal
/// every forwarded claim is applied once and both replicas converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_journeys_across_a_cut_link_lose_and_repeat_nothing() {
    let abroad = Abroad::start().await;
    let german: Vec<String> = (0..20).map(|n| imei(1000 + n)).collect();
    let indian: Vec<String> = (0..20).map(|n| imei(1100 + n)).collect();
    let new_german: Vec<String> = (0..10).map(|n| imei(1200 + n)).collect();
    for phone in &german {
        register_in(&abroad.de, phone, "DE").await;
    }
    for phone in &indian {
        register_in(&abroad.india, phone, "IN").await;
    }
    for phone in &german {
        known(&abroad.india, phone, 0).await;
    }

    abroad.proxy.cut();
    let in_india = german
        .iter()
        .chain(&indian)
        .map(|phone| repaired_in_bengaluru(abroad.r.clone(), phone.clone()));
    let in_germany = new_german.iter().map(|phone| {
        let de = abroad.de.clone();
        async move {
            register_in(&de, phone, "DE").await;
            let claimed = de
                .clone()
                .record_claim(wpb::RecordClaimRequest {
                    device_id: device(phone),
                    repair_order_id: format!("r-de-{phone}"),
                    fault_category: wpb::FaultCategory::Battery.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(claimed.device.unwrap().replica.is_none(), "written at home");
        }
    });
    let (orders, ()) = tokio::join!(
        futures::future::join_all(in_india),
        futures::future::join_all(in_germany).map(|_| ())
    );
    assert_eq!(orders.len(), 40);
    for phone in &german {
        assert_eq!(
            claims(&history(&abroad.de, phone).await),
            0,
            "nothing crossed the cut"
        );
    }

    let healed = std::time::Instant::now();
    abroad.proxy.heal();
    for phone in &german {
        let deadline = tokio::time::Instant::now() + WAIT;
        while claims(&history(&abroad.de, phone).await) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{phone}: no claim at home"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let applied = healed.elapsed();
    for phone in german.iter().chain(&new_german) {
        known(&abroad.india, phone, 1).await;
    }
    for phone in &indian {
        known(&abroad.de, phone, 1).await;
    }
    eprintln!(
        "after the heal: 20 forwarded claims applied at home in {applied:?}, \
         both replicas converged in {:?}",
        healed.elapsed()
    );
    let store = abroad.ap.store.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !aftersales_warranty::replica::unsettled_forwards(&store, SystemClock.now())
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the forward queue never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for phone in german.iter().chain(&new_german) {
        assert_eq!(
            claims(&history(&abroad.de, phone).await),
            1,
            "{phone}: once"
        );
    }
    for phone in &indian {
        assert_eq!(
            claims(&history(&abroad.india, phone).await),
            1,
            "{phone}: once"
        );
    }
    abroad.stop().await;
}
