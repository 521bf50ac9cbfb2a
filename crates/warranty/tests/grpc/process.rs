//! The service as a process: health and reflection, published events, policy files
//! at start-up.

use std::time::Duration;

use aftersales_proto::warranty as pb;

use crate::harness::*;

#[tokio::test]
async fn health_and_reflection_are_served() {
    let s = Server::start(None).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", s.running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aftersales.warranty.v1.WarrantyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        i32::from(tonic_health::pb::health_check_response::ServingStatus::Serving)
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"aftersales.warranty.v1.WarrantyService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    assert!(
        names.contains(&"aftersales.operations.v1.Operations"),
        "every service answers operators: {names:?}"
    );
    assert!(
        names.contains(&"aftersales.privacy.v1.Privacy"),
        "every service answers a customer's rights: {names:?}"
    );
    // Only what this server runs is advertised, not every contract it knows.
    assert!(
        names.iter().all(|n| n.starts_with("grpc.")
            || *n == "aftersales.warranty.v1.WarrantyService"
            || *n == "aftersales.operations.v1.Operations"
            || *n == "aftersales.privacy.v1.Privacy"),
        "{names:?}"
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn events_are_published_as_protobuf() {
    use futures::StreamExt as _;
    use prost::Message as _;
    let nats = aftersales_testkit::NatsServer::start().unwrap();
    let mut s = Server::start(Some(nats.url())).await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut subscription = client
        .subscribe(format!("aftersales.{REGION}.warranty.>"))
        .await
        .unwrap();
    let imei = fresh_imei();
    s.client
        .register_device(registration(&imei, "CN", &days_ago(2), "cust-cn"))
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        format!("aftersales.{REGION}.warranty.DeviceRegistered")
    );
    let headers = message.headers.unwrap();
    assert_eq!(
        headers.get("Content-Type").unwrap().as_str(),
        "application/protobuf; proto=aftersales.warranty.v1.DeviceRegistered"
    );
    assert!(headers.get("Nats-Msg-Id").is_some());
    let event = pb::DeviceRegistered::decode(message.payload).unwrap();
    assert_eq!(event.device_id, by_imei(&imei));
    assert_eq!(event.customer_id, "cust-cn");
    assert_eq!(
        (event.policy_id.as_str(), event.policy_version),
        ("cn-sanbao", 1)
    );
    s.running.stop().await.unwrap();
}

#[tokio::test]
async fn bad_policy_files_stop_the_start_naming_file_and_field() {
    let start = |dir: std::path::PathBuf| async move {
        aftersales_warranty::server::start(aftersales_warranty::server::Config {
            common: aftersales_runtime::config::Common::test("sqlite::memory:"),
            listen: "127.0.0.1:0".parse().unwrap(),
            policies: Some(dir),
            metrics_listen: None,
            ..Default::default()
        })
        .await
        .unwrap_err()
        .to_string()
    };
    let builtin =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("policies");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&builtin).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let fr = dir.path().join("FR.toml");
    let text =
        std::fs::read_to_string(&fr)
            .unwrap()
            .replacen("phone_months = 24", "phone_months = 0", 1);
    std::fs::write(&fr, text).unwrap();
    let error = start(dir.path().to_path_buf()).await;
    assert!(
        error.contains("FR.toml") && error.contains("versions[0].phone_months"),
        "{error}"
    );

    std::fs::remove_file(&fr).unwrap();
    let error = start(dir.path().to_path_buf()).await;
    assert!(
        error.contains("FR"),
        "a country we sell in is missing: {error}"
    );
}

#[tokio::test]
async fn a_changed_policy_file_never_changes_past_decisions() {
    use aftersales_warranty::server::{Config, start};
    let database_url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let config = |policies: Option<std::path::PathBuf>| Config {
        common: aftersales_runtime::config::Common::test(database_url.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        policies,
        metrics_listen: None,
        ..Config::default()
    };
    let imei = fresh_imei();
    let purchase = days_ago(400);
    let running = start(config(None)).await.unwrap();
    let mut client =
        aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient::connect(
            format!("http://{}", running.addr),
        )
        .await
        .unwrap();
    client
        .register_device(registration(&imei, "US", &purchase, "cust-1"))
        .await
        .unwrap();
    let before = client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !before.covered,
        "12 months in the US: {}",
        before.explanation
    );
    running.stop().await.unwrap();

    // The US file now gives 36 months, as the same version: registered devices keep
    // the terms they were registered under.
    let dir = tempfile::tempdir().unwrap();
    let builtin =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("policies");
    for entry in std::fs::read_dir(&builtin).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.ends_with("US.toml") {
            text = text.replacen("phone_months = 12", "phone_months = 36", 1);
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let running = start(config(Some(dir.path().to_path_buf()))).await.unwrap();
    let mut client =
        aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient::connect(
            format!("http://{}", running.addr),
        )
        .await
        .unwrap();
    let after = client
        .check_coverage(coverage(&imei, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after,
        pb::CoverageDecision {
            decided_for: after.decided_for.clone(),
            known_at: after.known_at,
            ..before
        }
    );
    // A device registered now gets the new terms.
    let newer = fresh_imei();
    client
        .register_device(registration(&newer, "US", &purchase, "cust-2"))
        .await
        .unwrap();
    let decision = client
        .check_coverage(coverage(&newer, pb::FaultCategory::Display))
        .await
        .unwrap()
        .into_inner();
    assert!(decision.covered, "{}", decision.explanation);
    running.stop().await.unwrap();
}
