//! The warranty binary behind a token issuer, driven by the `aftersales` tool: no
//! token is refused, a staff token registers, and a customer sees their own phone
//! only.

use std::process::{Command, Output};
use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role};
use aftersales_testkit::shared_postgres;

use crate::{Service, binary, imei, keyring_env};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_signs_its_calls_with_the_token_it_is_given() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut env = vec![
        (
            "DATABASE_URL".into(),
            shared_postgres().create_database().unwrap(),
        ),
        ("AFTERSALES_REGION".into(), "e2e".into()),
        ("AFTERSALES_OIDC_ISSUER".into(), issuer.url().to_owned()),
    ];
    env.extend(keyring_env(keys.path()));
    let warranty = Service::spawn("warranty", env);
    let token = |subject: &str, role: Role| {
        let who = Principal::new(subject, role);
        issuer
            .token(&who, "aftersales", Duration::from_secs(900))
            .unwrap()
    };
    let device = imei(950);
    let tool = |token: Option<String>, args: &[&str]| -> Output {
        let mut command = Command::new(binary("aftersales"));
        command
            .args(args)
            .env("AFTERSALES_WARRANTY_URL", warranty.url())
            // Not the signed-in user's tokens, whoever runs the tests.
            .env("AFTERSALES_CONFIG_DIR", "/nonexistent/aftersales-test")
            .env_remove("AFTERSALES_TOKEN");
        if let Some(token) = token {
            command.env("AFTERSALES_TOKEN", token);
        }
        command.output().unwrap()
    };
    let register = [
        "device",
        "register",
        "--imei",
        &device,
        "--model",
        "Aurora 5",
        "--purchased",
        "today",
        "--country",
        "DE",
        "--customer",
        "c-1",
    ];
    let refused = tool(None, &register);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("Unauthenticated"), "{why}");

    let done = tool(Some(token("ops-1", Role::Operator)), &register);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let show = ["device", "show", "--imei", &device];
    let own = tool(Some(token("c-1", Role::Customer)), &show);
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = tool(Some(token("c-2", Role::Customer)), &show);
    assert!(!other.status.success());
    let why = String::from_utf8_lossy(&other.stderr);
    assert!(why.contains("NotFound"), "{why}");
}

/// Every RPC in the policy table (reflection aside) as every role, against the
/// four services as processes: a role the table leaves out is PERMISSION_DENIED
/// and writes nothing; a role it names gets past authorization (the empty request
/// is then the handler's to judge). The table drives the test, so a new RPC or
/// role is covered as soon as it has an entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix_matches_the_policy_table() {
    use aftersales_auth::Policy;
    use tonic::Code;

    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let service = Principal::new("repair", Role::Service);
    issuer.register_client("repair", "repair-secret-0123456789", service, "aftersales");
    let platform = crate::Platform::start_with(
        200,
        &[
            ("AFTERSALES_OIDC_ISSUER", issuer.url().to_owned()),
            ("AFTERSALES_OIDC_CLIENT_ID", "repair".to_owned()),
            (
                "AFTERSALES_OIDC_CLIENT_SECRET",
                "repair-secret-0123456789".to_owned(),
            ),
        ],
    );
    let policy = Policy::builtin().unwrap();
    let server_of = |method: &str| match method.split('.').nth(1) {
        Some("warranty") => Some(platform.warranty.url()),
        Some("repair") => Some(platform.repair.url()),
        Some("logistics") => Some(platform.logistics.url()),
        Some("notification") => Some(platform.notification.url()),
        _ => None,
    };
    let streaming = ["WatchRepair", "WatchNotifications"];
    let call = |url: String, method: String, token: String| async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let mut request = tonic::Request::new(());
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let path: tonic::codegen::http::uri::PathAndQuery = format!("/{method}").parse().unwrap();
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let name = method.rsplit('/').next().unwrap_or_default();
        if streaming.contains(&name) {
            grpc.server_streaming(request, path, codec).await.map(drop)
        } else {
            grpc.unary(request, path, codec).await.map(drop)
        }
    };
    let events = || async {
        let mut total = 0i64;
        for database in &platform.databases {
            let pool = sqlx::PgPool::connect(database).await.unwrap();
            total += sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
                .fetch_one(&pool)
                .await
                .unwrap();
        }
        total
    };
    let before = events().await;
    let (mut allowed, mut denied) = (Vec::new(), Vec::new());
    for method in policy.methods() {
        let Some(url) = server_of(method) else {
            continue;
        };
        let rule = policy.rule(method).unwrap();
        for role in Role::ALL {
            let who = Principal {
                subject: format!("matrix-{role}"),
                role,
                on_behalf_of: None,
                centers: vec!["sc-berlin-01".into()],
            };
            let token = issuer
                .token(&who, "aftersales", Duration::from_secs(900))
                .unwrap();
            let answer = call(url.clone(), method.to_owned(), token).await;
            let code = answer.err().map_or(Code::Ok, |s| s.code());
            if rule.contains_key(&role) {
                allowed.push((method, role, code));
            } else {
                denied.push((method, role, code));
            }
        }
    }
    let cells = allowed.len() + denied.len();
    eprintln!(
        "authorization matrix: {cells} cells, {} allowed, {} denied",
        allowed.len(),
        denied.len()
    );
    assert!(cells >= 50 * Role::ALL.len(), "{cells} cells");
    for (method, role, code) in &denied {
        assert_eq!(*code, Code::PermissionDenied, "{role} on {method}");
    }
    for (method, role, code) in &allowed {
        assert!(
            !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
            "{role} on {method}: {code:?}"
        );
    }
    assert_eq!(events().await, before, "a refused call writes nothing");
}

/// Customer A walks 1,000 guessed device, order and message ids, B's real ones
/// among them: every answer is NOT_FOUND, worded alike but for the id, so B's
/// objects cannot be told from ids that exist nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_for_another_customers_objects_finds_nothing_to_tell_them_apart() {
    use aftersales_proto::common::{DeviceId, device_id};
    use aftersales_proto::notification as npb;
    use aftersales_proto::repair as rpb;
    use aftersales_proto::warranty as wpb;
    use std::collections::BTreeSet;

    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    issuer.register_client(
        "repair",
        "repair-secret-0123456789",
        Principal::new("repair", Role::Service),
        "aftersales",
    );
    let platform = crate::Platform::start_with(
        200,
        &[
            ("AFTERSALES_OIDC_ISSUER", issuer.url().to_owned()),
            ("AFTERSALES_OIDC_CLIENT_ID", "repair".to_owned()),
            (
                "AFTERSALES_OIDC_CLIENT_SECRET",
                "repair-secret-0123456789".to_owned(),
            ),
        ],
    );
    let as_who = |who: Principal, url: String| {
        let token = issuer
            .token(&who, "aftersales", Duration::from_secs(900))
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy();
        let header: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        tonic::service::interceptor::InterceptedService::new(
            channel,
            move |mut request: tonic::Request<()>| {
                request
                    .metadata_mut()
                    .insert("authorization", header.clone());
                Ok(request)
            },
        )
    };
    let agent = || Principal::new("agent-1", Role::SupportAgent);
    let warranty = |who| {
        wpb::warranty_service_client::WarrantyServiceClient::new(as_who(
            who,
            platform.warranty.url(),
        ))
    };
    let repair = |who| {
        rpb::repair_service_client::RepairServiceClient::new(as_who(who, platform.repair.url()))
    };
    let notification = |who| {
        npb::notification_service_client::NotificationServiceClient::new(as_who(
            who,
            platform.notification.url(),
        ))
    };
    let device = |imei: &str| {
        Some(DeviceId {
            kind: Some(device_id::Kind::Imei(imei.to_owned())),
        })
    };

    // B's phone, repair and message, made at the desk.
    let bs_phone = imei(971);
    warranty(agent())
        .register_device(wpb::RegisterDeviceRequest {
            device_id: device(&bs_phone),
            model: "Aurora 5".into(),
            purchase_date: "2026-11-01".into(),
            country_of_purchase: Some(aftersales_proto::common::CountryCode { value: "DE".into() }),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: "cust-b".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let bs_order = repair(agent())
        .open_repair(rpb::OpenRepairRequest {
            channel: rpb::Channel::WalkIn.into(),
            service_center_id: "sc-berlin-01".into(),
            contact_address: None,
            walk_in_day: aftersales_testkit::walk_in_day(),
            ..crate::journey::mail_in(&bs_phone, "cust-b")
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    let bs_message = aftersales_testkit::eventually(
        || async {
            notification(Principal::new("cust-b", Role::Customer))
                .list_notifications(npb::ListNotificationsRequest {
                    customer_id: "cust-b".into(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().notifications)
                .unwrap_or_default()
        },
        |n| !n.is_empty(),
    )
    .await[0]
        .notification_id
        .clone();

    // A probes.
    let a = || Principal::new("cust-a", Role::Customer);
    let (mut w, mut r, mut n) = (warranty(a()), repair(a()), notification(a()));
    let mut answers: [BTreeSet<(i32, String)>; 3] = Default::default();
    for i in 0..1_000_u64 {
        let kind = usize::try_from(i % 3).unwrap();
        let (id, status) = match kind {
            0 => {
                let id = if i == 0 {
                    bs_phone.clone()
                } else {
                    imei(2_000 + i)
                };
                let status = w
                    .get_device(wpb::GetDeviceRequest {
                        device_id: device(&id),
                    })
                    .await
                    .unwrap_err();
                (id, status)
            }
            1 => {
                let id = if i == 1 {
                    bs_order.clone()
                } else {
                    uuid::Uuid::now_v7().to_string()
                };
                let status = r
                    .get_repair(rpb::OrderRef {
                        order_id: id.clone(),
                    })
                    .await
                    .unwrap_err();
                (id, status)
            }
            _ => {
                let id = if i == 2 {
                    bs_message.clone()
                } else {
                    uuid::Uuid::now_v7().to_string()
                };
                let status = n
                    .get_delivery(npb::NotificationRef {
                        notification_id: id.clone(),
                    })
                    .await
                    .unwrap_err();
                (id, status)
            }
        };
        answers[kind].insert((
            i32::from(status.code()),
            status.message().replace(&id, "<id>"),
        ));
    }
    for (kind, seen) in ["device", "repair order", "message"].iter().zip(&answers) {
        assert_eq!(
            seen.len(),
            1,
            "{kind}: B's answer differs from a missing one: {seen:?}"
        );
        let (code, _) = seen.first().unwrap();
        assert_eq!(*code, i32::from(tonic::Code::NotFound), "{kind}: {seen:?}");
    }
}
