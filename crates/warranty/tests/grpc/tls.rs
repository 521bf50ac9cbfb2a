//! gRPC over TLS with a test CA: a client that trusts the CA talks to the
//! service; plaintext and a client that does not trust it get nowhere.

use aftersales_runtime::config::Common;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::harness::*;

async fn serving(endpoint: tonic::transport::Endpoint) -> Result<i32, String> {
    let channel = endpoint
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status)
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn grpc_over_tls_serves_clients_that_trust_its_ca_only() {
    let pki = aftersales_testkit::pki::TestCa::new();
    let common = Common {
        tls_cert: Some(pki.cert()),
        tls_key: Some(pki.key()),
        ..Common::test(
            aftersales_testkit::shared_postgres()
                .create_database()
                .unwrap(),
        )
    };
    let running = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common,
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let port = running.addr.port();
    let url = format!("https://localhost:{port}");
    let ca = pki.ca();

    let trusted = aftersales_runtime::tls::endpoint(&url, Some(&ca)).unwrap();
    assert_eq!(serving(trusted.clone()).await, Ok(1), "SERVING over TLS");
    let channel = trusted.connect().await.unwrap();
    aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient::new(channel)
        .register_device(registration(&fresh_imei(), "DE", &days_ago(3), "c-1"))
        .await
        .unwrap();

    let plaintext =
        aftersales_runtime::tls::endpoint(&format!("http://127.0.0.1:{port}"), None).unwrap();
    assert!(serving(plaintext).await.is_err(), "no plaintext");
    let untrusting = aftersales_runtime::tls::endpoint(&url, None).unwrap();
    let refused = serving(untrusting).await.unwrap_err();
    assert!(
        refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"),
        "{refused}"
    );
    running.stop().await.unwrap();

    // A certificate without its key is a configuration error at start-up.
    let half = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: Common {
            tls_cert: Some(pki.cert()),
            ..Common::test(
                aftersales_testkit::shared_postgres()
                    .create_database()
                    .unwrap(),
            )
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(half.to_string().contains("AFTERSALES_TLS_KEY"), "{half}");
}
