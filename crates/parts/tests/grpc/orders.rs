//! Accessory orders for real: parts with warranty and logistics on PostgreSQL and
//! a real nats-server, the sandbox provider posting each webhook event five
//! times and out of order, and the sandbox carrier delivering the parcel.

use std::time::Duration;

use aftersales_proto::common::{Address, DeviceId, device_id};
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::parts as pb;
use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_testkit::{NatsServer, shared_postgres};
use tonic::Code;
use tonic::transport::Channel;

use crate::{Server, config, country};

const SECRET: &str = "provider-secret-0123456789";

pub struct Platform {
    pub parts: Server,
    pub warranty: WarrantyServiceClient<Channel>,
    pub logistics: LogisticsServiceClient<Channel>,
    _others: Vec<aftersales_runtime::service::Running>,
    _nats: NatsServer,
}

/// With the provider's webhook posting each event five times, or, `webhook`
/// false, none: payments then settle only by the reconciliation's asking.
async fn platform_with(webhook: bool) -> Platform {
    let nats = NatsServer::start().unwrap();
    let common = || Common {
        // A deferred erasure is looked at again every second.
        erasure_sweep_seconds: 1,
        ..Common::test(shared_postgres().create_database().unwrap()).with_nats(nats.url())
    };
    let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
        common: common(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..Default::default()
    })
    .await
    .unwrap();
    let logistics = aftersales_logistics::server::start(aftersales_logistics::server::Config {
        common: common(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        sandbox_autoplay: Some("delivered".into()),
        sandbox_step_millis: 50,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut parts = config(String::new());
    parts.common = common();
    parts.warranty_url = Some(format!("http://{}", warranty.addr));
    parts.logistics_url = Some(format!("http://{}", logistics.addr));
    parts.payment = aftersales_payments::PaymentArgs {
        payments_webhook_secrets: webhook.then(|| SECRET.to_owned().into()),
        sandbox_webhook_deliveries: 5,
        sandbox_payment_settle_millis: 200,
        ..Default::default()
    };
    parts.payments_webhook_listen = "127.0.0.1:0".parse().unwrap();
    // The reconciliation asks rarely beside a webhook, often without one.
    parts.payment_poll_millis = if webhook { 3_600_000 } else { 50 };
    let parts = Server::start_with(parts).await;
    Platform {
        warranty: WarrantyServiceClient::connect(format!("http://{}", warranty.addr))
            .await
            .unwrap(),
        logistics: LogisticsServiceClient::connect(format!("http://{}", logistics.addr))
            .await
            .unwrap(),
        parts,
        _others: vec![warranty, logistics],
        _nats: nats,
    }
}

pub async fn platform() -> Platform {
    platform_with(true).await
}

pub fn phone(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    })
}

pub fn berlin() -> Address {
    Address {
        recipient: "Lena Weber".into(),
        lines: vec!["Invalidenstr. 1".into()],
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: country("DE"),
        ..Default::default()
    }
}

fn line(number: &str, quantity: u32) -> pb::AccessoryLine {
    pb::AccessoryLine {
        number: number.into(),
        quantity,
    }
}

fn order(lines: Vec<pb::AccessoryLine>, method: &str) -> pb::PlaceAccessoryOrderRequest {
    pb::PlaceAccessoryOrderRequest {
        customer_id: "cust-lena".into(),
        device_id: phone("490154203237518"),
        lines,
        address: Some(berlin()),
        payment_method: method.into(),
    }
}

/// The order once `done` says so, or as it stands after fifteen seconds.
pub async fn order_when(
    client: &mut PartsServiceClient<Channel>,
    id: &str,
    done: impl Fn(&pb::AccessoryOrder) -> bool,
) -> pb::AccessoryOrder {
    let mut seen = pb::AccessoryOrder::default();
    for _ in 0..300 {
        seen = client
            .get_accessory_order(pb::AccessoryOrderRef {
                order_id: id.into(),
                customer_id: "cust-lena".into(),
            })
            .await
            .unwrap()
            .into_inner();
        if done(&seen) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

pub fn status(o: &pb::AccessoryOrder) -> pb::AccessoryOrderStatus {
    o.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_paid_once_shipped_once_and_its_units_registered_on_delivery() {
    let mut p = platform().await;
    p.warranty
        .register_device(wpb::RegisterDeviceRequest {
            device_id: phone("490154203237518"),
            model: "Aurora 5".into(),
            purchase_date: "2026-06-01".into(),
            country_of_purchase: country("DE"),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: "cust-lena".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut client = p.parts.client.clone();
    let placed = client
        .place_accessory_order(order(
            vec![line("ACC-CHG-30W", 2), line("ACC-CASE-A5", 1)],
            "sandbox-ok",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&placed), pb::AccessoryOrderStatus::AwaitingPayment);
    // 19 % VAT, included: 2 × 24.90 + 29.90 net.
    let total = placed.total.clone().unwrap();
    assert_eq!(
        (
            total.net.unwrap().minor_units,
            total.tax.unwrap().minor_units,
            total.gross.unwrap().minor_units
        ),
        (7970, 1514, 9484)
    );
    assert_eq!(
        total.shown.unwrap().minor_units,
        9484,
        "Germany shows tax included"
    );
    assert_eq!(placed.tax.unwrap().name, "MwSt.");

    let units = |serials: &[(&str, &str)]| pb::ShipAccessoryOrderRequest {
        order_id: placed.order_id.clone(),
        units: serials
            .iter()
            .map(|(number, serial)| pb::PackedUnit {
                number: (*number).into(),
                serial: (*serial).into(),
            })
            .collect(),
    };
    let packed = [
        ("ACC-CHG-30W", "CHG30-000101"),
        ("ACC-CHG-30W", "CHG30-000102"),
        ("ACC-CASE-A5", "CASEA5-000201"),
    ];
    let early = client
        .ship_accessory_order(units(&packed))
        .await
        .unwrap_err();
    assert_eq!(
        early.code(),
        Code::FailedPrecondition,
        "{}",
        early.message()
    );

    // Ten webhook deliveries for one payment: paid once.
    let paid = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Paid
    })
    .await;
    assert_eq!(status(&paid), pb::AccessoryOrderStatus::Paid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = order_when(&mut client, &placed.order_id, |_| true).await;
    assert_eq!(
        after.version, 2,
        "placed and paid, nothing more however often the webhook came"
    );

    let short = client
        .ship_accessory_order(units(&packed[..2]))
        .await
        .unwrap_err();
    assert_eq!(short.code(), Code::InvalidArgument, "{}", short.message());
    let shipped = client
        .ship_accessory_order(units(&packed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&shipped), pb::AccessoryOrderStatus::Shipped);
    let again = client
        .ship_accessory_order(units(&packed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.shipment_id, shipped.shipment_id, "shipped once");
    assert_eq!(again.version, shipped.version);
    let parcel = p
        .logistics
        .get_shipment(aftersales_proto::logistics::ShipmentRef {
            shipment_id: shipped.shipment_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(parcel.accessory_replacement_id, placed.order_id);
    assert_eq!(parcel.to.unwrap().city, "Berlin");
    assert!(!parcel.from.unwrap().city.is_empty(), "from the depot");

    // The sandbox carrier delivers it; the units join the phone's warranty.
    let delivered = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Delivered
    })
    .await;
    assert_eq!(status(&delivered), pb::AccessoryOrderStatus::Delivered);
    let device = p
        .warranty
        .get_device(wpb::GetDeviceRequest {
            device_id: phone("490154203237518"),
        })
        .await
        .unwrap()
        .into_inner();
    let mut serials: Vec<_> = device
        .accessories
        .iter()
        .map(|a| a.serial.as_str())
        .collect();
    serials.sort_unstable();
    assert_eq!(serials, ["CASEA5-000201", "CHG30-000101", "CHG30-000102"]);
    assert!(
        device
            .accessories
            .iter()
            .all(|a| a.purchase_date == delivered.delivered_on)
    );

    // Withdrawn within Germany's 14 days: a label back to the depot, and the
    // whole payment refunded once the parcel is there, however often the
    // provider says so.
    let delivered_on: chrono::NaiveDate = delivered.delivered_on.parse().unwrap();
    assert_eq!(
        delivered.withdrawal_ends,
        (delivered_on + chrono::Days::new(14)).to_string()
    );
    let back = pb::AccessoryOrderRef {
        order_id: placed.order_id.clone(),
        customer_id: "cust-lena".into(),
    };
    let returning = client
        .return_accessory_order(back.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status(&returning),
        pb::AccessoryOrderStatus::ReturnRequested
    );
    let again = client
        .return_accessory_order(back)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.return_shipment_id, returning.return_shipment_id);
    let label = p
        .logistics
        .get_shipment(aftersales_proto::logistics::ShipmentRef {
            shipment_id: returning.return_shipment_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        label.direction(),
        aftersales_proto::logistics::Direction::Inbound
    );
    assert_eq!(label.from.unwrap().city, "Berlin");
    let refunded = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Refunded
    })
    .await;
    assert_eq!(status(&refunded), pb::AccessoryOrderStatus::Refunded);
    assert!(
        refunded.refund_id.starts_with("re_"),
        "{}",
        refunded.refund_id
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = order_when(&mut client, &placed.order_id, |_| true).await;
    assert_eq!(
        settled.version, 7,
        "placed, paid, shipped, delivered, sent back, returned, refunded: each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_are_refused_with_the_field_named_and_a_declined_payment_ships_nothing() {
    let p = platform().await;
    let mut client = p.parts.client.clone();
    let before = p.parts.events().await;
    let unregistered = client
        .place_accessory_order(order(vec![line("ACC-CHG-30W", 1)], "sandbox-ok"))
        .await
        .unwrap_err();
    assert_eq!(unregistered.code(), Code::InvalidArgument);
    assert!(
        unregistered.message().starts_with("device_id"),
        "{}",
        unregistered.message()
    );
    let anonymous = |lines, method: &str| {
        let mut request = order(lines, method);
        request.device_id = None;
        request
    };
    for (request, field) in [
        (
            anonymous(vec![line("ACC-NOPE", 1)], "sandbox-ok"),
            "lines.number",
        ),
        (
            anonymous(vec![line("A5-DSP", 1)], "sandbox-ok"),
            "lines.number",
        ),
        (
            anonymous(vec![line("ACC-CHG-30W", 0)], "sandbox-ok"),
            "lines.quantity",
        ),
        (anonymous(vec![], "sandbox-ok"), "lines"),
        (
            anonymous(vec![line("ACC-CHG-30W", 1)], "a-stolen-card"),
            "payment_method",
        ),
        (
            pb::PlaceAccessoryOrderRequest {
                address: Some(Address {
                    country: country("JP"),
                    postal_code: "100-0001".into(),
                    ..berlin()
                }),
                ..anonymous(vec![line("ACC-CHG-30W", 1)], "sandbox-ok")
            },
            "address.country",
        ),
        (
            pb::PlaceAccessoryOrderRequest {
                address: Some(Address {
                    postal_code: "1011".into(),
                    ..berlin()
                }),
                ..anonymous(vec![line("ACC-CHG-30W", 1)], "sandbox-ok")
            },
            "address.postal_code",
        ),
    ] {
        let refused = client.place_accessory_order(request).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{field}: {}",
            refused.message()
        );
        assert!(
            refused.message().starts_with(field),
            "{field}: {}",
            refused.message()
        );
    }
    assert_eq!(p.parts.events().await, before, "nothing written");

    let declined = client
        .place_accessory_order(anonymous(vec![line("ACC-BUDS-2", 1)], "sandbox-declined"))
        .await
        .unwrap()
        .into_inner();
    let failed = order_when(&mut client, &declined.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::PaymentFailed
    })
    .await;
    assert_eq!(failed.payment_failure, "the card was declined");
    let refused = client
        .ship_accessory_order(pb::ShipAccessoryOrderRequest {
            order_id: declined.order_id.clone(),
            units: vec![pb::PackedUnit {
                number: "ACC-BUDS-2".into(),
                serial: "BUDS2-0001".into(),
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // Another customer's order is not theirs to see.
    let stranger = client
        .get_accessory_order(pb::AccessoryOrderRef {
            order_id: declined.order_id,
            customer_id: "cust-someone-else".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_webhook_an_order_is_paid_by_asking_the_provider() {
    let p = platform_with(false).await;
    let mut client = p.parts.client.clone();
    let mut request = order(vec![line("ACC-CBL-C1M", 1)], "sandbox-ok");
    request.device_id = None;
    let placed = client
        .place_accessory_order(request)
        .await
        .unwrap()
        .into_inner();
    let paid = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Paid
    })
    .await;
    assert_eq!(status(&paid), pb::AccessoryOrderStatus::Paid);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = order_when(&mut client, &placed.order_id, |_| true).await;
    assert_eq!(after.version, 2, "asked often, paid once");
}
