//! Recall and service programmes through the running service: the sweep that
//! tells owners once whatever restarts, coverage under a programme, and its
//! progress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_warranty::server::{Config, Running, start};
use tonic::transport::Channel;

use crate::harness::{by_imei, coverage, days_ago, event_types, fresh_imei, registration};

/// A recall of Aurora 4 batteries for the IMEIs from `from` to `to`, offered in
/// Germany from a year ago for two more.
fn programme_file(dir: &Path, from: &str, to: &str) {
    let text = format!(
        r#"
[[programme]]
id = "A4-BAT-TEST"
version = 1
kind = "recall"
title = "Aurora 4 batteries that may swell"
models = ["Aurora 4"]
ranges = [{{ kind = "imei", from = "{from}", to = "{to}" }}]
faults = ["battery"]
remedy = "exchange"
countries = ["DE"]
starts = "{starts}"
ends = "{ends}"
notice = {{ kind = "maker", title = "Recall notice", reference = "RN-TEST", checked = "{starts}" }}
"#,
        starts = days_ago(365),
        ends = days_ago(-730),
    );
    std::fs::write(dir.join("recall.toml"), text).unwrap();
}

async fn up(database_url: &str, programmes: PathBuf) -> (Running, WarrantyServiceClient<Channel>) {
    let running = start(Config {
        common: aftersales_runtime::config::Common::test(database_url.to_owned()),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        programmes: Some(programmes),
        programme_sweep_secs: 1,
        ..Config::default()
    })
    .await
    .unwrap();
    let client = WarrantyServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap();
    (running, client)
}

fn aurora_4(imei: &str, country: &str, customer: &str) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        model: "Aurora 4".into(),
        ..registration(imei, country, &days_ago(4 * 365), customer)
    }
}

async fn enrolments(client: &mut WarrantyServiceClient<Channel>, imei: &str) -> usize {
    event_types(client, imei)
        .await
        .iter()
        .filter(|e| *e == "EnrolledInProgramme")
        .count()
}

/// The programme's (affected, remedied) once they are `expected`, or as they
/// stand after ten seconds.
async fn progress(client: &mut WarrantyServiceClient<Channel>, expected: (u64, u64)) -> (u64, u64) {
    let mut seen = (0, 0);
    for _ in 0..200 {
        let programmes = client
            .list_programmes(pb::ListProgrammesRequest {})
            .await
            .unwrap()
            .into_inner()
            .programmes;
        let p = programmes.iter().find(|p| p.id == "A4-BAT-TEST").unwrap();
        seen = (p.affected, p.remedied);
        if seen == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test]
async fn a_programme_tells_each_owner_once_across_restarts_and_covers_out_of_warranty() {
    let database_url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    // In the range: a German phone, an American one and one registered later;
    // outside it: a German phone of the next number.
    let (german, american, later, outside) =
        (fresh_imei(), fresh_imei(), fresh_imei(), fresh_imei());
    let none = tempfile::tempdir().unwrap();
    let (running, mut client) = up(&database_url, none.path().to_path_buf()).await;
    for (imei, country, customer) in [
        (&german, "DE", "cust-de"),
        (&american, "US", "cust-us"),
        (&outside, "DE", "cust-out"),
    ] {
        client
            .register_device(aurora_4(imei, country, customer))
            .await
            .unwrap();
    }
    let before = client
        .check_coverage(coverage(&german, pb::FaultCategory::Battery))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.reason, "expired", "{}", before.explanation);
    running.stop().await.unwrap();

    // The programme begins: the sweep at start tells the German owner, not the
    // American one (not offered in the US), not the phone outside the range.
    let recall = tempfile::tempdir().unwrap();
    programme_file(recall.path(), &german, &later);
    let (running, mut client) = up(&database_url, recall.path().to_path_buf()).await;
    assert_eq!(progress(&mut client, (1, 0)).await, (1, 0));
    let device = client
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&german),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.programmes, ["A4-BAT-TEST"]);
    assert_eq!(enrolments(&mut client, &american).await, 0);
    assert_eq!(enrolments(&mut client, &outside).await, 0);

    let covered = client
        .check_coverage(coverage(&german, pb::FaultCategory::Battery))
        .await
        .unwrap()
        .into_inner();
    assert!(covered.covered, "{}", covered.explanation);
    assert_eq!(covered.reason, "within_programme");
    assert_eq!(covered.remedy, i32::from(pb::Remedy::Exchange));
    let cited = covered.programme.unwrap();
    assert_eq!(
        (cited.id.as_str(), cited.version, cited.kind.as_str()),
        ("A4-BAT-TEST", 1, "recall")
    );
    let rule = covered.rule.unwrap();
    assert_eq!(rule.figure, "programme");
    assert_eq!(rule.source.unwrap().reference, "RN-TEST");
    for (imei, fault) in [
        (&german, pb::FaultCategory::Display),
        (&outside, pb::FaultCategory::Battery),
    ] {
        let refused = client
            .check_coverage(coverage(imei, fault))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(refused.reason, "expired", "{}", refused.explanation);
        assert!(refused.programme.is_none());
    }

    // A phone registered while the programme runs is told at registration.
    let registered = client
        .register_device(aurora_4(&later, "DE", "cust-later"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(registered.programmes, ["A4-BAT-TEST"]);

    // A repair under the programme is its remedy.
    let claim = client
        .record_claim(pb::RecordClaimRequest {
            device_id: by_imei(&german),
            repair_order_id: "ro-recall-1".into(),
            fault_category: pb::FaultCategory::Battery.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!claim.duplicate);
    assert_eq!(progress(&mut client, (2, 1)).await, (2, 1));
    running.stop().await.unwrap();

    // Started again, and swept again after a second: nobody is told twice.
    let (running, mut client) = up(&database_url, recall.path().to_path_buf()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for imei in [&german, &later] {
        assert_eq!(enrolments(&mut client, imei).await, 1, "{imei}");
    }
    assert_eq!(progress(&mut client, (2, 1)).await, (2, 1));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_programme_file_stops_the_start_naming_file_and_field() {
    let database_url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    programme_file(dir.path(), "352099002000000", "352099002999999");
    let path = dir.path().join("recall.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(r#"faults = ["battery"]"#, r#"faults = ["liquid_damage"]"#),
    )
    .unwrap();
    let error = start(Config {
        common: aftersales_runtime::config::Common::test(database_url),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        programmes: Some(dir.path().to_path_buf()),
        ..Config::default()
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("recall.toml") && error.contains("programme[0].faults"),
        "{error}"
    );
}
