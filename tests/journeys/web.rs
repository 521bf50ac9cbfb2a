//! The web front in the distributed form: the four service binaries on
//! PostgreSQL and NATS, parts (the fifth, for its published prices and what it
//! holds of a customer), the gateway binary, and the identity provider whose
//! sign-in codes go out through the notification service. A customer signs in
//! with the code from her email and follows her repair in headless Chromium,
//! live, while the workshop moves it on; the pages pass axe-core.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aftersales_auth::{Principal, Role};
use aftersales_identity::codes::SendFuture;
use aftersales_identity::{CodeSender, Provider, Store};
use aftersales_proto::common::CountryCode;
use aftersales_proto::notification as npb;
use aftersales_proto::notification::notification_service_client::NotificationServiceClient;
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_testkit::browser::Browser;
use aftersales_testkit::eventually;
use fantoccini::Locator;

use crate::{Platform, Service, imei};

const AUDIENCE: &str = "aftersales";

/// The provider's way to send codes: the notification service, called with the
/// provider's own service token.
#[derive(Debug, Default)]
struct Codes {
    notification: OnceLock<(String, String)>,
}

impl CodeSender for Codes {
    fn send<'a>(&'a self, address: &'a str, code: &'a str, language: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let (url, token) = self
                .notification
                .get()
                .cloned()
                .ok_or("the notification service is starting")?;
            let channel = tonic::transport::Endpoint::from_shared(url)
                .map_err(|e| e.to_string())?
                .connect_lazy();
            let request = bearer(
                npb::SignInCodeRequest {
                    address: address.to_owned(),
                    code: code.to_owned(),
                    language: language.to_owned(),
                },
                &token,
            );
            match NotificationServiceClient::new(channel)
                .send_sign_in_code(request)
                .await
            {
                Ok(sent) => Ok(Some(sent.into_inner().customer_id)),
                Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
                Err(status) => Err(status.message().to_owned()),
            }
        })
    }
}

pub(crate) fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_follows_her_repair_live_through_the_gateway_in_the_distributed_form() {
    let codes = Arc::new(Codes::default());
    let provider = Provider::serve(
        "127.0.0.1:0".parse().unwrap(),
        Store::open("sqlite::memory:").await.unwrap(),
        AUDIENCE,
        codes.clone(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let secret = "e2e-services-secret-of-enough-length";
    provider.issuer().register_client(
        "e2e-services",
        secret,
        Principal::new("e2e-services", Role::Service),
        AUDIENCE,
    );
    let p = Platform::start_with(
        40,
        &[
            ("AFTERSALES_OIDC_ISSUER", provider.url().to_owned()),
            ("AFTERSALES_OIDC_CLIENT_ID", "e2e-services".to_owned()),
            ("AFTERSALES_OIDC_CLIENT_SECRET", secret.to_owned()),
        ],
    );
    let token = |who: Principal| {
        provider
            .issuer()
            .token(&who, AUDIENCE, Duration::from_secs(900))
            .unwrap()
    };
    codes
        .notification
        .set((
            p.notification.url(),
            token(Principal::new("aftersales-identity", Role::Service)),
        ))
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut parts_env = crate::keyring_env(keys.path());
    parts_env.extend([
        (
            "DATABASE_URL".to_owned(),
            aftersales_testkit::shared_postgres()
                .create_database()
                .unwrap(),
        ),
        (
            "AFTERSALES_OIDC_ISSUER".to_owned(),
            provider.url().to_owned(),
        ),
        (
            "AFTERSALES_OIDC_CLIENT_ID".to_owned(),
            "e2e-services".to_owned(),
        ),
        (
            "AFTERSALES_OIDC_CLIENT_SECRET".to_owned(),
            secret.to_owned(),
        ),
    ]);
    let parts = Service::spawn("parts", parts_env.clone());
    // Support on its own database, like parts; its keyring is parts' too.
    let support_env = crate::platform::on_own_database(parts_env);
    let support = Service::spawn("support", support_env);
    let gateway = Service::spawn(
        "gateway",
        vec![
            ("AFTERSALES_PARTS_URL".into(), parts.url()),
            ("AFTERSALES_SUPPORT_URL".into(), support.url()),
            ("AFTERSALES_WARRANTY_URL".into(), p.warranty.url()),
            ("AFTERSALES_REPAIR_URL".into(), p.repair.url()),
            ("AFTERSALES_LOGISTICS_URL".into(), p.logistics.url()),
            ("AFTERSALES_NOTIFICATION_URL".into(), p.notification.url()),
            ("AFTERSALES_ISSUER_URL".into(), provider.url().to_owned()),
        ],
    );
    let web = gateway.url();

    // Her phone, her address for messages, and a walk-in repair at Berlin.
    let customer = "cust-web";
    let agent = token(Principal::new("agent-1", Role::SupportAgent));
    let workshop = token(Principal {
        centers: vec!["sc-berlin-01".into()],
        ..Principal::new("tech-1", Role::Technician)
    });
    let channel = |url: String| {
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy()
    };
    let phone = imei(970);
    WarrantyServiceClient::new(channel(p.warranty.url()))
        .register_device(bearer(
            wpb::RegisterDeviceRequest {
                device_id: crate::journey::device(&phone),
                model: "Aurora 5".into(),
                #[allow(clippy::disallowed_methods)]
                purchase_date: (chrono::Utc::now().date_naive() - chrono::Duration::days(30))
                    .to_string(),
                country_of_purchase: Some(CountryCode { value: "DE".into() }),
                channel: wpb::SalesChannel::OnlineStore.into(),
                customer_id: customer.into(),
                ..Default::default()
            },
            &agent,
        ))
        .await
        .unwrap();
    NotificationServiceClient::new(channel(p.notification.url()))
        .set_preferences(bearer(
            npb::Preferences {
                customer_id: customer.into(),
                email: "web@example.com".into(),
                channels: vec![npb::ChannelKind::Email.into()],
                language: "en".into(),
                ..Default::default()
            },
            &token(Principal::new(customer, Role::Customer)),
        ))
        .await
        .unwrap();
    let mut repair = RepairServiceClient::new(channel(p.repair.url()));
    let order = repair
        .open_repair(bearer(
            rpb::OpenRepairRequest {
                device_id: crate::journey::device(&phone),
                channel: rpb::Channel::WalkIn.into(),
                service_center_id: "sc-berlin-01".into(),
                customer_id: customer.into(),
                symptoms: "battery drains".into(),
                contact_address: None,
                reported_fault: wpb::FaultCategory::Battery.into(),
                walk_in_day: aftersales_testkit::walk_in_day(),
                ..Default::default()
            },
            &agent,
        ))
        .await
        .unwrap()
        .into_inner()
        .order_id;

    // She signs in with the code her email brings.
    let browser = Browser::start().await;
    let b = &browser.client;
    b.goto(&format!("{web}/sign-in?lang=en")).await.unwrap();
    browser.fill("#address", "web@example.com").await;
    browser.submit("main form button").await;
    b.wait().for_element(Locator::Css("#code")).await.unwrap();
    let code = eventually(
        || async {
            p.smtp.messages().iter().find_map(|mail| {
                let mail = crate::readable(mail);
                let line = mail.lines().find(|l| l.contains("sign-in code is"))?;
                line.split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)
                    .map(str::to_owned)
            })
        },
        Option::is_some,
    )
    .await
    .unwrap();
    browser.fill("#code", &code).await;
    browser.submit("main form button").await;
    b.wait().for_element(Locator::Css(".cards")).await.unwrap();
    assert!(browser.text(".cards").await.contains(&phone));

    // Her repair's page follows the workshop's steps, live.
    b.goto(&format!("{web}/repairs/{order}")).await.unwrap();
    b.wait()
        .for_element(Locator::Css("#stepper"))
        .await
        .unwrap();
    browser.js("window.stillThisPage = true; return true").await;
    let stage = || async {
        browser
            .js("return document.getElementById('stage-label').dataset.stage")
            .await
    };
    assert_eq!(stage().await, "STAGE_OPENED");
    repair
        .check_in_device(bearer(
            rpb::CheckInDeviceRequest {
                order_id: order.clone(),
                condition_notes: "scratch on the frame".into(),
                ..Default::default()
            },
            &workshop,
        ))
        .await
        .unwrap();
    eventually(stage, |s| s == "STAGE_RECEIVED").await;
    repair
        .diagnose(bearer(
            rpb::DiagnoseRequest {
                order_id: order.clone(),
                fault_category: wpb::FaultCategory::Battery.into(),
                fault_codes: Vec::new(),
                technician: "tech-1".into(),
            },
            &workshop,
        ))
        .await
        .unwrap();
    eventually(stage, |s| s == "STAGE_DIAGNOSED").await;
    assert_eq!(
        browser.js("return window.stillThisPage === true").await,
        true,
        "followed without a reload"
    );
    // The timeline follows too (its section is fetched anew and swapped in).
    eventually(
        || browser.js("return document.getElementById('timeline').textContent"),
        |t| t.as_str().is_some_and(|t| t.contains("Diagnosed")),
    )
    .await;
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );

    // Her data: a copy to keep, then its erasure, every service answering.
    b.goto(&format!("{web}/preferences")).await.unwrap();
    b.find(Locator::Css("#your-data"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("#data-erase"))
        .await
        .unwrap();
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    let copy = || {
        browser.js("return fetch('/account/data/export', {credentials: 'same-origin'}).then(r => r.json())")
    };
    let before = copy().await;
    let services: Vec<&str> = before["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(
        services,
        [
            "warranty",
            "repair",
            "logistics",
            "notification",
            "parts",
            "support"
        ]
    );
    let orders = before["services"][1]["records"].to_string();
    assert!(orders.contains("battery drains"), "{orders}");
    assert!(
        before["services"][0]["records"]
            .to_string()
            .contains(&phone)
    );
    b.find(Locator::Css("#data-erase input[name=confirm]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.submit("#data-erase button").await;
    b.wait()
        .for_element(Locator::Css("#receipts"))
        .await
        .unwrap();
    let receipts = browser
        .js("return [...document.querySelectorAll('#receipts > li')].map(li => [li.dataset.service, li.dataset.state])")
        .await;
    assert_eq!(
        receipts.as_array().map(Vec::len),
        Some(6),
        "one receipt per service: {receipts}"
    );
    // A walk-in repair has no parcel waiting for her address: done at once.
    assert_eq!(receipts[0], serde_json::json!(["warranty", "done"]));
    assert_eq!(receipts[1], serde_json::json!(["repair", "done"]));
    assert_eq!(receipts[4], serde_json::json!(["parts", "done"]));
    assert_eq!(receipts[5], serde_json::json!(["support", "done"]));
    assert_eq!(
        browser.accessibility_violations().await,
        Vec::<serde_json::Value>::new()
    );
    let after = copy().await;
    let orders = after["services"][1]["records"].to_string();
    assert!(
        !orders.contains("battery drains") && orders.contains("[erased]"),
        "{orders}"
    );
    assert!(
        after["services"][0]["records"].to_string().contains(&phone),
        "the phone and its warranty are kept"
    );
    browser.client.clone().close().await.unwrap();
}
