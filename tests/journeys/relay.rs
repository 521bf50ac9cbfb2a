//! `aftersales relay`: a service's log drained to JetStream while the service is
//! down, as the public contract the service's own relay publishes.

use aftersales_proto::warranty as wpb;
use aftersales_testkit::{NatsServer, eventually, shared_postgres};
use prost::Message as _;
use std::process::{Command, Stdio};

use crate::{Clients, Service, binary, imei, keyring_env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_alone_publishes_the_public_contract_and_never_private_events() {
    let nats = NatsServer::start().unwrap();
    let database = shared_postgres().create_database().unwrap();
    // The warranty service without NATS: its events wait in its log.
    let keys = tempfile::tempdir().unwrap();
    let keyring = keyring_env(keys.path());
    let mut env = vec![
        ("DATABASE_URL".into(), database.clone()),
        ("AFTERSALES_REGION".into(), "e2e".into()),
        ("AFTERSALES_ALLOW_UNAUTHENTICATED".into(), "true".into()),
    ];
    env.extend(keyring.iter().cloned());
    let mut warranty = Service::spawn("warranty", env);
    let channel = tonic::transport::Endpoint::from_shared(warranty.url())
        .unwrap()
        .connect_lazy();
    let mut clients = Clients {
        warranty: wpb::warranty_service_client::WarrantyServiceClient::new(channel.clone()),
        repair: aftersales_proto::repair::repair_service_client::RepairServiceClient::new(
            channel.clone(),
        ),
        logistics:
            aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient::new(
                channel.clone(),
            ),
        notification:
            aftersales_proto::notification::notification_service_client::NotificationServiceClient::new(
                channel,
            ),
    };
    let device = imei(900);
    crate::journey::register(&mut clients, &device, "customer-relay", 10).await;
    assert!(warranty.terminate().unwrap().success());

    let relay = |service: &str| {
        let mut command = Command::new(binary("aftersales"));
        command
            .args(["relay", service, "--region", "e2e"])
            .env("DATABASE_URL", &database)
            .env("NATS_URL", nats.url())
            .envs(keyring.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };
    // Notification's events carry contact data: it has nothing to relay.
    let refused = relay("notification").output().unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("private"), "{why}");

    let mut child = relay("warranty").spawn().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let message = eventually(
        || {
            let js = js.clone();
            async move {
                let stream = js.get_stream("AFTERSALES_E2E_WARRANTY").await.ok()?;
                stream.get_raw_message(1).await.ok()
            }
        },
        Option::is_some,
    )
    .await
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        message.subject.as_str(),
        "aftersales.e2e.warranty.DeviceRegistered"
    );
    let content_type = message
        .headers
        .get("Content-Type")
        .map(|v| v.as_str().to_owned());
    assert_eq!(
        content_type.as_deref(),
        Some("application/protobuf; proto=aftersales.warranty.v1.DeviceRegistered")
    );
    let registered = wpb::DeviceRegistered::decode(message.payload.as_ref()).unwrap();
    assert_eq!(registered.customer_id, "customer-relay");
}
