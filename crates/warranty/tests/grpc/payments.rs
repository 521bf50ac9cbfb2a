//! A plan's payment settled by the provider's signed webhook: redelivered and
//! out of order, applied once; unsigned, refused and recording nothing.

use std::time::Duration;

use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_warranty::server::{Config, PAYMENTS_WEBHOOK, Running, start};
use tonic::transport::Channel;

use crate::harness::{by_imei, days_ago, event_types, fresh_imei, registration};

const SECRET: &str = "provider-secret-0123456789";

/// Warranty with the sandbox posting each event five times, settling after
/// 200 ms, and the reconciliation poll too slow to settle anything here.
async fn up() -> (Running, WarrantyServiceClient<Channel>) {
    let database_url = aftersales_testkit::shared_postgres()
        .create_database()
        .unwrap();
    let running = start(Config {
        common: aftersales_runtime::config::Common::test(database_url),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        payment: aftersales_payments::PaymentArgs {
            payments_webhook_secrets: Some(SECRET.to_owned().into()),
            sandbox_webhook_deliveries: 5,
            sandbox_payment_settle_millis: 200,
            ..Default::default()
        },
        payments_webhook_listen: "127.0.0.1:0".parse().unwrap(),
        payment_poll_millis: 3_600_000,
        ..Config::default()
    })
    .await
    .unwrap();
    let client = WarrantyServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap();
    (running, client)
}

async fn buy(client: &mut WarrantyServiceClient<Channel>, imei: &str, method: &str) {
    client
        .register_device(registration(imei, "DE", &days_ago(3), "cust-pay"))
        .await
        .unwrap();
    client
        .purchase_extended_warranty(pb::PurchaseExtendedWarrantyRequest {
            device_id: by_imei(imei),
            plan_id: "care-12".into(),
            payment_method: method.into(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_plan_is_paid_once_however_often_and_in_whatever_order_the_webhook_comes() {
    let (running, mut client) = up().await;
    let (paid, declined) = (fresh_imei(), fresh_imei());
    buy(&mut client, &paid, "sandbox-ok").await;
    buy(&mut client, &declined, "sandbox-declined").await;
    // Ten deliveries per payment (five of each event, every other round the
    // ending first): one settlement each, by webhook alone.
    let settled = |events: &Vec<String>| {
        events
            .iter()
            .any(|e| e == "ExtendedWarrantyPurchased" || e == "PlanPaymentFailed")
    };
    let mut events = (Vec::new(), Vec::new());
    for _ in 0..200 {
        events = (
            event_types(&mut client, &paid).await,
            event_types(&mut client, &declined).await,
        );
        if settled(&events.0) && settled(&events.1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every redelivery has had time to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (
        event_types(&mut client, &paid).await,
        event_types(&mut client, &declined).await,
    );
    assert_eq!(events, after, "nothing recorded after the first settlement");
    assert_eq!(
        after.0,
        [
            "DeviceRegistered",
            "PlanOrdered",
            "ExtendedWarrantyPurchased"
        ]
    );
    assert_eq!(
        after.1,
        ["DeviceRegistered", "PlanOrdered", "PlanPaymentFailed"]
    );
    let device = client
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&paid),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(device.extended_plan.unwrap().plan_id, "care-12");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_unsigned_stale_or_malformed_webhook_changes_nothing() {
    use aftersales_payments::webhook::{SCOPE, SIGNATURE_HEADER};
    let (running, mut client) = up().await;
    let imei = fresh_imei();
    // Pending for ever at the provider: only a forged webhook could settle it.
    buy(&mut client, &imei, "sandbox-pending").await;
    let pending = client
        .get_device(pb::GetDeviceRequest {
            device_id: by_imei(&imei),
        })
        .await
        .unwrap()
        .into_inner()
        .pending_plan
        .unwrap();
    let (payment_id, price) = (pending.payment_id, pending.price.unwrap());
    let url = format!(
        "http://{}/v1/payments/events",
        running.endpoint(PAYMENTS_WEBHOOK).unwrap()
    );
    let body = serde_json::json!({
        "id": "evt_forged", "type": "payment.succeeded", "payment_id": payment_id,
        "amount_minor": price.minor_units, "currency": price.currency, "created": 0,
    })
    .to_string();
    #[allow(clippy::disallowed_methods)] // the server runs on the real clock here
    let now = chrono::Utc::now().timestamp();
    let post = |signature: Option<String>, body: String| {
        let url = url.clone();
        async move {
            let mut request = reqwest::Client::new().post(url).body(body);
            if let Some(signature) = signature {
                request = request.header(SIGNATURE_HEADER, signature);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    let sign = |secret: &str, t: i64, body: &str| {
        aftersales_runtime::signature::sign(secret.as_bytes(), SCOPE, t, body.as_bytes())
    };
    assert_eq!(post(None, body.clone()).await, 401);
    assert_eq!(
        post(
            Some(sign("not-the-provider-secret", now, &body)),
            body.clone()
        )
        .await,
        401
    );
    assert_eq!(
        post(Some(sign(SECRET, now - 3600, &body)), body.clone()).await,
        401
    );
    let carrier =
        aftersales_runtime::signature::sign(SECRET.as_bytes(), "dhl", now, body.as_bytes());
    assert_eq!(post(Some(carrier), body.clone()).await, 401);
    let junk = "{\"id\": []}".to_owned();
    assert_eq!(post(Some(sign(SECRET, now, &junk)), junk).await, 400);
    let unknown = body.replace(&payment_id, "pay_nobody_made");
    assert_eq!(post(Some(sign(SECRET, now, &unknown)), unknown).await, 503);
    assert_eq!(
        event_types(&mut client, &imei).await,
        ["DeviceRegistered", "PlanOrdered"],
        "nothing recorded"
    );
    // Signed by the provider: applied, once.
    assert_eq!(
        post(Some(sign(SECRET, now, &body)), body.clone()).await,
        200
    );
    assert_eq!(
        post(Some(sign(SECRET, now, &body)), body.clone()).await,
        200
    );
    assert_eq!(
        event_types(&mut client, &imei).await,
        [
            "DeviceRegistered",
            "PlanOrdered",
            "ExtendedWarrantyPurchased"
        ]
    );
    running.stop().await.unwrap();
}
