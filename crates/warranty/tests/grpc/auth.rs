//! The warranty service behind a real token issuer: no token, a forged one or the
//! wrong role is refused and writes nothing; the actor recorded is the token's.

use std::time::Duration;

use aftersales_auth::issuer::{Issuer, SigningKey};
use aftersales_auth::{Principal, Role, ServiceToken};
use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_runtime::request::with_command_id;
use aftersales_runtime::telemetry::{TracedChannel, traced};
use tonic::Code;
use tonic::transport::Channel;

use crate::harness::*;

/// A client presenting `token` (none if empty).
fn client(channel: &Channel, token: String) -> WarrantyServiceClient<TracedChannel> {
    let token = (!token.is_empty()).then(|| ServiceToken::fixed(token));
    WarrantyServiceClient::new(traced(channel.clone(), token))
}

/// A token issuer, and warranty on a fresh database trusting it.
async fn authenticated() -> (Issuer, aftersales_warranty::server::Running, Channel) {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let (running, channel) = trusting(issuer.url()).await;
    (issuer, running, channel)
}

/// Warranty on a fresh database, trusting the tokens of `issuer`.
async fn trusting(issuer: &str) -> (aftersales_warranty::server::Running, Channel) {
    let running = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: Common {
            oidc_issuer: Some(issuer.to_owned()),
            allow_unauthenticated: false,
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
    .unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (running, channel)
}

#[tokio::test]
async fn calls_need_a_valid_token_with_the_right_role_and_record_its_caller() {
    let (issuer, running, channel) = authenticated().await;
    let token = |who: &Principal| {
        issuer
            .token(who, "aftersales", Duration::from_secs(900))
            .unwrap()
    };
    let events = || async {
        let aftersales_eventstore::AnyEventStore::Postgres(pg) = &running.store else {
            panic!("PostgreSQL");
        };
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(pg.pool())
            .await
            .unwrap()
    };
    let imei = fresh_imei();
    let register = || registration(&imei, "DE", &days_ago(3), "c-1");

    // Health needs no token: probes and load balancers call it.
    let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(health.into_inner().status, 1, "SERVING");

    // No token, a token from a key the issuer never published, another audience.
    let stranger = SigningKey::generate().unwrap();
    let forged = stranger
        .sign(&issuer.claims(
            &Principal::new("ops-1", Role::Operator),
            "aftersales",
            Duration::from_secs(900),
        ))
        .unwrap();
    let elsewhere = issuer
        .token(
            &Principal::new("ops-1", Role::Operator),
            "another-api",
            Duration::from_secs(900),
        )
        .unwrap();
    for bad in [String::new(), forged, elsewhere, "not-a-jwt".into()] {
        let refused = client(&channel, bad)
            .register_device(register())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    // A customer may not void a warranty or record a claim, nor register a phone
    // for someone else's account... the role part of that is checked here.
    let mut customer = client(&channel, token(&Principal::new("c-1", Role::Customer)));
    let refused = customer
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imei),
            reason: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = customer
        .record_claim(pb::RecordClaimRequest {
            device_id: by_imei(&imei),
            repair_order_id: "r-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(events().await, 0, "a refused call writes nothing");

    // An operator registers; the history names the token's caller, not x-actor.
    let mut request = tonic::Request::new(register());
    request
        .metadata_mut()
        .insert("x-actor", "staff:auditor-1".parse().unwrap());
    client(&channel, token(&Principal::new("ops-1", Role::Operator)))
        .register_device(request)
        .await
        .unwrap();
    let history = client(&channel, token(&Principal::new("aud-1", Role::Auditor)))
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            as_of: None,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.events[0].actor, "operator:ops-1");

    // An idempotency key is its caller's: another caller reusing it is refused.
    let key = uuid::Uuid::new_v4();
    let other = fresh_imei();
    let mut agent = client(
        &channel,
        token(&Principal::new("agent-7", Role::SupportAgent)),
    );
    agent
        .register_device(with_command_id(
            registration(&other, "DE", &days_ago(3), "c-2"),
            key,
        ))
        .await
        .unwrap();
    let reused = client(&channel, token(&Principal::new("ops-1", Role::Operator)))
        .register_device(with_command_id(
            registration(&other, "DE", &days_ago(3), "c-2"),
            key,
        ))
        .await
        .unwrap_err();
    assert_eq!(reused.code(), Code::AlreadyExists, "{reused:?}");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_service_without_an_identity_provider_refuses_to_start() {
    let refused = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: Common {
            allow_unauthenticated: false,
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
    assert!(
        refused.to_string().contains("AFTERSALES_OIDC_ISSUER"),
        "{refused}"
    );
}

#[tokio::test]
async fn another_customers_device_answers_as_if_it_did_not_exist() {
    let (issuer, running, channel) = authenticated().await;
    let as_customer = |id: &str| {
        client(
            &channel,
            issuer
                .token(
                    &Principal::new(id, Role::Customer),
                    "aftersales",
                    Duration::from_secs(900),
                )
                .unwrap(),
        )
    };
    let (mut anna, mut bob) = (as_customer("anna"), as_customer("bob"));
    let annas: Vec<String> = (0..5).map(|_| fresh_imei()).collect();
    for imei in &annas {
        anna.register_device(registration(imei, "DE", &days_ago(3), "anna"))
            .await
            .unwrap();
    }
    // Bob may not register a phone to Anna's account.
    let refused = bob
        .register_device(registration(&fresh_imei(), "DE", &days_ago(3), "anna"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Bob walks Anna's IMEIs among IMEIs nobody registered: every answer is the
    // one a missing device gets, for every call a customer may make on a device.
    let nobodys: Vec<String> = (0..5).map(|_| fresh_imei()).collect();
    for imei in annas.iter().chain(&nobodys) {
        let expected = format!("IMEI {imei} not found");
        let answers = [
            bob.get_device(pb::GetDeviceRequest {
                device_id: by_imei(imei),
            })
            .await
            .map(drop),
            bob.check_coverage(pb::CheckCoverageRequest {
                device_id: by_imei(imei),
                fault_category: pb::FaultCategory::Display.into(),
                as_of: None,
                record_decision: true,
                ..Default::default()
            })
            .await
            .map(drop),
            bob.transfer_ownership(pb::TransferOwnershipRequest {
                device_id: by_imei(imei),
                new_customer_id: "bob".into(),
            })
            .await
            .map(drop),
            bob.get_device_history(pb::GetDeviceHistoryRequest {
                device_id: by_imei(imei),
                as_of: None,
                ..Default::default()
            })
            .await
            .map(drop),
        ];
        for answer in answers {
            let status = answer.unwrap_err();
            assert_eq!(
                (status.code(), status.message()),
                (Code::NotFound, expected.as_str()),
                "{imei}"
            );
        }
    }
    // Anna sees hers once the read model has them; Bob's list of them, asked
    // after, is as empty as a stranger's.
    let list = |client: &WarrantyServiceClient<TracedChannel>| {
        let mut client = client.clone();
        async move {
            client
                .list_devices_by_customer(pb::ListDevicesByCustomerRequest {
                    customer_id: "anna".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .devices
                .len()
        }
    };
    aftersales_testkit::eventually(|| list(&anna), |n| *n == annas.len()).await;
    assert_eq!(list(&bob).await, 0);
    // Anna may ask about her own phone, but not put a decision on its record:
    // that is the workshop's, and would let anyone grow a history without end.
    let ask = |record_decision| pb::CheckCoverageRequest {
        device_id: by_imei(&annas[0]),
        fault_category: pb::FaultCategory::Display.into(),
        record_decision,
        ..Default::default()
    };
    anna.check_coverage(ask(false)).await.unwrap();
    let refused = anna.check_coverage(ask(true)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &running.store else {
        panic!("PostgreSQL");
    };
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(
        events,
        i64::try_from(annas.len()).unwrap(),
        "only Anna's registrations"
    );
    running.stop().await.unwrap();
}

/// panva's `oidc-provider` (OpenID Certified), run by Node.js from where the test
/// command installs it, with the script in `tests/interop`.
struct ExternalProvider {
    child: std::process::Child,
}

impl Drop for ExternalProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ExternalProvider {
    fn start(port: u16, dir: &std::path::Path, rotate: bool) -> Self {
        use std::io::BufRead as _;
        let module = std::env::var("AFTERSALES_OIDC_PROVIDER_MODULE").unwrap_or_else(|_| {
            format!(
                "{}/.cache/aftersales/node/node_modules/oidc-provider/lib/index.js",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        assert!(
            std::path::Path::new(&module).exists(),
            "oidc-provider is not installed at {module}: ./scripts/test installs it"
        );
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/interop/oidc-provider.mjs"
        );
        let mut child = std::process::Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.join("keys.json"))
            .arg(dir.join("clients.json"))
            .env("OIDC_PROVIDER_MODULE", module)
            .env("ROTATE", if rotate { "1" } else { "0" })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.starts_with("listening"), "{first}");
        std::thread::spawn(move || lines.for_each(drop));
        Self { child }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_certified_external_provider_work_and_its_key_rotation_needs_no_restart() {
    use aftersales_auth::ClientCredentials;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clients.json"),
        r#"[{"client_id":"repair","client_secret":"repair-secret-0123456789","role":"service"},
            {"client_id":"ops-robot","client_secret":"ops-secret-0123456789","role":"operator"}]"#,
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = ExternalProvider::start(port, dir.path(), false);
    let issuer = format!("http://127.0.0.1:{port}");
    let (_running, channel) = trusting(&issuer).await;
    // Our client-credentials client against their token endpoint.
    let token_of = |client_id: &str, secret: &str| {
        let credentials = ClientCredentials {
            issuer: issuer.clone(),
            client_id: client_id.into(),
            client_secret: secret.into(),
        };
        async move {
            let token = ServiceToken::start(credentials);
            aftersales_testkit::eventually(|| async { token.current() }, Option::is_some)
                .await
                .unwrap()
                .to_string()
        }
    };
    let service = token_of("repair", "repair-secret-0123456789").await;
    let operator = token_of("ops-robot", "ops-secret-0123456789").await;

    let imei = fresh_imei();
    let verified_at = std::time::Instant::now();
    client(&channel, service.clone())
        .register_device(registration(&imei, "DE", &days_ago(3), "c-1"))
        .await
        .unwrap();
    let refused = client(&channel, service.clone())
        .void_warranty(pb::VoidWarrantyRequest {
            device_id: by_imei(&imei),
            reason: "tampering".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::PermissionDenied,
        "a service may not void"
    );
    let history = client(&channel, operator.clone())
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(&imei),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        history.events.iter().any(|e| e.actor == "service:repair"),
        "the actor is the external token's subject and role: {:?}",
        history.events
    );

    // The provider rotates its key (restarted with a new signing key first, the
    // old one still published) while warranty runs on.
    drop(provider);
    let _provider = ExternalProvider::start(port, dir.path(), true);
    let rotated = token_of("repair", "repair-secret-0123456789").await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_ne!(kid(&rotated), kid(&service), "signed with the new key");
    // Unknown kids fetch the key set at most every 30 s, so made-up ones cost
    // nothing; after that, the new key is picked up without a restart.
    tokio::time::sleep(Duration::from_secs(31).saturating_sub(verified_at.elapsed())).await;
    client(&channel, rotated)
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&imei),
        })
        .await
        .unwrap();
    client(&channel, service)
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&imei),
        })
        .await
        .expect("a token of the old key is good until it expires");
}

#[tokio::test]
async fn registering_someone_elses_phone_first_does_not_lock_the_real_buyer_out() {
    let (issuer, _running, channel) = authenticated().await;
    let as_who = |who: Principal| {
        client(
            &channel,
            issuer
                .token(&who, "aftersales", Duration::from_secs(900))
                .unwrap(),
        )
    };
    let mallory = || as_who(Principal::new("mallory", Role::Customer));
    let anna = || as_who(Principal::new("anna", Role::Customer));
    let imei = fresh_imei();

    // Mallory registers Anna's new phone as hers, bought in 2020.
    let squatted = mallory()
        .register_device(registration(&imei, "DE", "2020-01-10", "mallory"))
        .await
        .unwrap()
        .into_inner();
    assert!(squatted.purchase_date_declared, "a customer's word only");
    let refused = anna()
        .register_device(registration(&imei, "DE", &days_ago(3), "anna"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);

    // At the desk, with Anna's receipt, the registration is put right.
    let verified = as_who(Principal::new("agent-1", Role::SupportAgent))
        .register_device(registration(&imei, "DE", &days_ago(3), "anna"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(verified.customer_id, "anna");
    assert_eq!(verified.purchase_date, days_ago(3));
    assert!(!verified.purchase_date_declared);
    let get = pb::GetDeviceRequest {
        device_id: by_imei(&imei),
    };
    assert_eq!(
        mallory().get_device(get.clone()).await.unwrap_err().code(),
        Code::NotFound,
        "no longer hers"
    );
    assert_eq!(
        anna()
            .get_device(get)
            .await
            .unwrap()
            .into_inner()
            .customer_id,
        "anna"
    );
    // The directory is a read model: it follows the log a moment later.
    let mine = aftersales_testkit::eventually(
        || async {
            anna()
                .list_devices_by_customer(pb::ListDevicesByCustomerRequest {
                    customer_id: "anna".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .devices
        },
        |devices| !devices.is_empty(),
    )
    .await;
    assert!(
        mine.iter().any(|d| d.purchase_date == days_ago(3)),
        "the directory shows the verified purchase: {mine:?}"
    );
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_anything_runs() {
    let (issuer, running, channel) = authenticated().await;
    let token = issuer
        .token(
            &Principal::new("ops-1", Role::Operator),
            "aftersales",
            Duration::from_secs(900),
        )
        .unwrap();
    let mut huge = registration(&fresh_imei(), "DE", &days_ago(3), "c-1");
    huge.model = "x".repeat(aftersales_runtime::grpc::MAX_REQUEST_BYTES + 1);
    let refused = client(&channel, token)
        .register_device(huge)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &running.store else {
        panic!("PostgreSQL");
    };
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(events, 0, "nothing written");
}
