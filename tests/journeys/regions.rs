//! Two regions as processes (Germany home for DE, India for IN), each with its
//! own nats-server, linked through a proxy the test cuts, and its own warranty
//! service on its own database; the `aftersales` CLI in India, given the region
//! directory, sends a German phone's writes to Germany and its reads to the
//! nearest region that answers.

use std::path::Path;
use std::time::Duration;

use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_testkit::{NatsServer, shared_postgres};

use crate::{Service, keyring_env};

/// The warranty service of `region`, on its own database and keyring.
fn warranty_in(region: &str, nats: &NatsServer, directory: &Path, keys: &Path) -> Service {
    let keys = keys.join(region);
    std::fs::create_dir_all(&keys).unwrap();
    let mut env = keyring_env(&keys);
    env.extend([
        (
            "DATABASE_URL".to_owned(),
            shared_postgres().create_database().unwrap(),
        ),
        ("NATS_URL".to_owned(), nats.url()),
        ("AFTERSALES_REGION".to_owned(), region.to_owned()),
        (
            "AFTERSALES_REGIONS_FILE".to_owned(),
            directory.display().to_string(),
        ),
        (
            "AFTERSALES_ALLOW_UNAUTHENTICATED".to_owned(),
            "true".to_owned(),
        ),
    ]);
    Service::spawn("warranty", env)
}

/// `aftersales <args> --json` with India's services nearest, routed by
/// `directory` if given; its output as JSON, or its error.
fn in_india(
    india: &str,
    directory: Option<&Path>,
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let mut command = std::process::Command::new(crate::binary("aftersales"));
    command
        .args(args)
        .args(["--json", "--warranty-url", india])
        .env_remove("AFTERSALES_REGIONS_FILE")
        .env("AFTERSALES_TOKEN", "");
    if let Some(directory) = directory {
        command.arg("--regions-file").arg(directory);
    }
    let output = command.output().unwrap();
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(String::from_utf8(output.stderr).unwrap())
    }
}

async fn device_at(url: &str, imei: &str) -> Result<wpb::Device, tonic::Status> {
    WarrantyServiceClient::connect(url.to_owned())
        .await
        .unwrap()
        .get_device(wpb::GetDeviceRequest {
            device_id: Some(DeviceId {
                kind: Some(device_id::Kind::Imei(imei.to_owned())),
            }),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_abroad_writes_a_phone_at_home_and_reads_it_from_the_nearest_region() {
    let (eu_nats, ap_nats, proxy) = NatsServer::linked_regions("eu-central", "ap-south").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let services_directory = dir.path().join("regions.toml");
    std::fs::write(
        &services_directory,
        "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\n\
         [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n",
    )
    .unwrap();
    let mut germany = warranty_in("eu-central", &eu_nats, &services_directory, dir.path());
    let india = warranty_in("ap-south", &ap_nats, &services_directory, dir.path());
    let (germany_url, india_url) = (germany.url(), india.url());
    // The clients' directory: the same homes, and where each region answers.
    let directory = dir.path().join("clients.toml");
    std::fs::write(
        &directory,
        format!(
            "[[region]]\nname = \"eu-central\"\ncountries = [\"DE\"]\n\
             [region.endpoints]\nwarranty = \"{germany_url}\"\n\n\
             [[region]]\nname = \"ap-south\"\ncountries = [\"IN\"]\n\
             [region.endpoints]\nwarranty = \"{india_url}\"\n"
        ),
    )
    .unwrap();
    let routed = |args: &[&str]| in_india(&india_url, Some(&directory), args);

    // Link cut: a phone bought in Germany, registered from India, lands in
    // Germany; India does not know it yet, so the read goes on to Germany.
    proxy.cut();
    let imei = crate::imei(7_420_001);
    #[allow(clippy::disallowed_methods)] // a purchase some days before the test
    let purchased = (chrono::Utc::now().date_naive() - chrono::Days::new(10)).to_string();
    let registered = routed(&[
        "device",
        "register",
        "--imei",
        &imei,
        "--model",
        "AS-1",
        "--purchased",
        &purchased,
        "--country",
        "de",
        "--customer",
        "cust-abroad",
    ])
    .unwrap();
    assert_eq!(
        registered["replica"],
        serde_json::Value::Null,
        "{registered}"
    );
    assert!(
        device_at(&germany_url, &imei)
            .await
            .unwrap()
            .replica
            .is_none()
    );
    assert_eq!(
        device_at(&india_url, &imei).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let shown = routed(&["device", "show", "--imei", &imei]).unwrap();
    assert_eq!(
        (&shown["customer_id"], &shown["replica"]),
        (&serde_json::json!("cust-abroad"), &serde_json::Value::Null),
        "answered by Germany: {shown}"
    );

    // Healed: India's replica has it, and answers first, saying so.
    proxy.heal();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while device_at(&india_url, &imei).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = routed(&["device", "show", "--imei", &imei]).unwrap();
    let replica = shown["replica"].as_str().unwrap_or_default();
    assert!(
        replica.contains("replica of eu-central, as of 20"),
        "{shown}"
    );
    assert_eq!(shown["customer_id"], "", "the owner stays at home: {shown}");

    // A plan and an accessory change the phone: only Germany may, and the CLI
    // sends them there. Unrouted, India refuses and names Germany.
    let unrouted = in_india(
        &india_url,
        None,
        &["warranty", "extend", "--imei", &imei, "--plan", "care-12"],
    )
    .unwrap_err();
    assert!(
        unrouted.contains("FailedPrecondition") && unrouted.contains("eu-central"),
        "{unrouted}"
    );
    let extended = routed(&["warranty", "extend", "--imei", &imei, "--plan", "care-12"]).unwrap();
    assert_eq!(extended["replica"], serde_json::Value::Null, "{extended}");
    assert!(
        extended["pending_plan"]["plan"] == "care-12"
            || extended["extended_plan"]["plan"] == "care-12",
        "{extended}"
    );
    let with_charger = routed(&[
        "device",
        "accessory",
        "--imei",
        &imei,
        "--serial",
        "CHG-7420001",
        "--kind",
        "charger",
    ])
    .unwrap();
    assert!(
        with_charger["accessories"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("CHG-7420001 charger")),
        "{with_charger}"
    );

    // Germany down: India still answers from its replica, under the German
    // policy; a write for the phone cannot be made and says where it failed.
    germany.kill();
    let coverage = routed(&["device", "coverage", "--imei", &imei, "--fault", "display"]).unwrap();
    assert_eq!(coverage["covered"], true, "{coverage}");
    assert!(
        coverage["policy"]
            .as_str()
            .is_some_and(|p| p.starts_with("de-consumer")),
        "{coverage}"
    );
    assert!(
        coverage["replica"]
            .as_str()
            .is_some_and(|r| r.contains("eu-central")),
        "{coverage}"
    );
    let refused = routed(&[
        "device",
        "accessory",
        "--imei",
        &imei,
        "--serial",
        "CBL-7420001",
        "--kind",
        "cable",
    ])
    .unwrap_err();
    assert!(refused.contains(&germany_url), "{refused}");
    drop(india);
}
