//! A faulty accessory replaced for real: warranty judges the claim, parts
//! places the replacement (free, or paid through the sandbox provider whose
//! webhook posts each event five times and out of order), logistics ships it
//! and brings the faulty unit back, and warranty hands the cover on.

use std::time::Duration;

use aftersales_proto::logistics as lpb;
use aftersales_proto::parts as pb;
use aftersales_proto::warranty as wpb;
use tonic::Code;

use crate::country;
use crate::orders::{Platform, berlin, order_when, phone, platform, status};

const IMEI: &str = "490154203237518";

fn days_ago(days: u64) -> String {
    #[allow(clippy::disallowed_methods)]
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Days::new(days)).to_string()
}

/// Lena's phone, bought `bought` days ago, with charger `serial` from its box.
async fn phone_with_charger(p: &mut Platform, bought: u64, serial: &str) {
    p.warranty
        .register_device(wpb::RegisterDeviceRequest {
            device_id: phone(IMEI),
            model: "Aurora 5".into(),
            purchase_date: days_ago(bought),
            country_of_purchase: country("DE"),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: "cust-lena".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    p.warranty
        .register_accessory(wpb::RegisterAccessoryRequest {
            device_id: phone(IMEI),
            accessory_serial: serial.into(),
            kind: wpb::AccessoryKind::Charger.into(),
            purchase_date: days_ago(bought),
            replaces_serial: String::new(),
        })
        .await
        .unwrap();
}

fn claim(serial: &str, method: &str) -> pb::ReplaceAccessoryRequest {
    pb::ReplaceAccessoryRequest {
        customer_id: "cust-lena".into(),
        device_id: phone(IMEI),
        accessory_serial: serial.into(),
        fault: "charging".into(),
        number: "ACC-CHG-30W".into(),
        address: Some(berlin()),
        payment_method: method.into(),
    }
}

fn ship(order_id: &str, serial: &str) -> pb::ShipAccessoryOrderRequest {
    pb::ShipAccessoryOrderRequest {
        order_id: order_id.into(),
        units: vec![pb::PackedUnit {
            number: "ACC-CHG-30W".into(),
            serial: serial.into(),
        }],
    }
}

async fn accessories(p: &mut Platform) -> Vec<wpb::Accessory> {
    p.warranty
        .get_device(wpb::GetDeviceRequest {
            device_id: phone(IMEI),
        })
        .await
        .unwrap()
        .into_inner()
        .accessories
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covered_charger_is_replaced_free_and_the_faulty_one_comes_back() {
    let mut p = platform().await;
    phone_with_charger(&mut p, 60, "CHG-OLD-0001").await;
    let mut client = p.parts.client.clone();
    let placed = client
        .replace_accessory(claim("CHG-OLD-0001", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status(&placed),
        pb::AccessoryOrderStatus::Paid,
        "nothing to pay: ready to pack"
    );
    assert_eq!(placed.total.unwrap().gross.unwrap().minor_units, 0);
    assert!(placed.payment_id.is_empty());
    let replacement = placed.replacement.clone().unwrap();
    assert!(replacement.covered);
    assert_eq!(replacement.reason, "within_base_warranty");
    assert_eq!(
        replacement.not_charged.unwrap().gross.unwrap().minor_units,
        2963,
        "the list price the customer did not pay"
    );
    let again = client
        .replace_accessory(claim("CHG-OLD-0001", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.order_id.as_str(), again.version),
        (placed.order_id.as_str(), placed.version),
        "claimed twice: one replacement"
    );

    let shipped = client
        .ship_accessory_order(ship(&placed.order_id, "CHG30-REPL-01"))
        .await
        .unwrap()
        .into_inner();
    let back = shipped.replacement.clone().unwrap();
    assert!(!back.faulty_return_shipment_id.is_empty());
    assert!(!back.faulty_return_tracking_number.is_empty());
    let label = p
        .logistics
        .get_shipment(lpb::ShipmentRef {
            shipment_id: back.faulty_return_shipment_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(label.direction(), lpb::Direction::Inbound);
    assert_eq!(label.accessory_replacement_id, placed.order_id);
    assert_eq!(label.from.unwrap().city, "Berlin");
    assert_eq!(label.tracking_number, back.faulty_return_tracking_number);

    // The sandbox carrier delivers both parcels.
    let done = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Delivered
            && o.replacement
                .as_ref()
                .is_some_and(|r| !r.faulty_received_on.is_empty())
    })
    .await;
    assert_eq!(status(&done), pb::AccessoryOrderStatus::Delivered);
    assert!(!done.replacement.unwrap().faulty_received_on.is_empty());
    assert_eq!(
        done.version, 4,
        "placed, shipped, delivered, faulty unit received: each once"
    );
    let held = accessories(&mut p).await;
    let new = held.iter().find(|a| a.serial == "CHG30-REPL-01").unwrap();
    let old = held.iter().find(|a| a.serial == "CHG-OLD-0001").unwrap();
    assert_eq!(new.replaces_serial, "CHG-OLD-0001");
    assert_eq!(old.replaced_by, "CHG30-REPL-01");
    assert_eq!(
        new.coverage_end, old.coverage_end,
        "the replacement keeps the faulty unit's cover, longer than the 90-day minimum"
    );
    let judged = p
        .warranty
        .check_accessory_coverage(wpb::CheckAccessoryCoverageRequest {
            device_id: phone(IMEI),
            accessory_serial: "CHG-OLD-0001".into(),
            fault_category: wpb::FaultCategory::Charging.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (judged.covered, judged.reason.as_str()),
        (false, "replaced")
    );
    let withdraw = client
        .return_accessory_order(pb::AccessoryOrderRef {
            order_id: placed.order_id.clone(),
            customer_id: "cust-lena".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(withdraw.code(), Code::FailedPrecondition);
    assert!(
        withdraw.message().contains("not sold"),
        "{}",
        withdraw.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_charger_is_replaced_for_its_price_paid_once_however_often_the_webhook_comes() {
    let mut p = platform().await;
    // Bought four years ago: the charger's two years are long over.
    phone_with_charger(&mut p, 4 * 365, "CHG-OLD-0002").await;
    let mut client = p.parts.client.clone();
    let before = p.parts.events().await;

    let unpaid = client
        .replace_accessory(claim("CHG-OLD-0002", ""))
        .await
        .unwrap_err();
    assert_eq!(
        unpaid.code(),
        Code::FailedPrecondition,
        "{}",
        unpaid.message()
    );
    assert!(
        unpaid.message().contains("29.63 EUR"),
        "the price is named: {}",
        unpaid.message()
    );
    for (request, field) in [
        (
            pb::ReplaceAccessoryRequest {
                fault: "grumpy".into(),
                ..claim("CHG-OLD-0002", "sandbox-ok")
            },
            "fault",
        ),
        (
            pb::ReplaceAccessoryRequest {
                number: "ACC-CBL-C1M".into(),
                ..claim("CHG-OLD-0002", "sandbox-ok")
            },
            "number",
        ),
        (
            pb::ReplaceAccessoryRequest {
                number: "A5-DSP".into(),
                ..claim("CHG-OLD-0002", "sandbox-ok")
            },
            "number",
        ),
        (claim("CHG-NEVER-SEEN", "sandbox-ok"), "accessory_serial"),
        (
            pb::ReplaceAccessoryRequest {
                customer_id: "cust-someone-else".into(),
                ..claim("CHG-OLD-0002", "sandbox-ok")
            },
            "device_id",
        ),
        (
            pb::ReplaceAccessoryRequest {
                address: None,
                ..claim("CHG-OLD-0002", "sandbox-ok")
            },
            "address",
        ),
    ] {
        let refused = client.replace_accessory(request).await.unwrap_err();
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

    let placed = client
        .replace_accessory(claim("CHG-OLD-0002", "sandbox-ok"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&placed), pb::AccessoryOrderStatus::AwaitingPayment);
    assert_eq!(placed.total.unwrap().gross.unwrap().minor_units, 2963);
    let replacement = placed.replacement.clone().unwrap();
    assert_eq!(
        (replacement.covered, replacement.reason.as_str()),
        (false, "expired")
    );
    assert!(replacement.not_charged.is_none());
    let again = client
        .replace_accessory(claim("CHG-OLD-0002", "sandbox-ok"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.order_id.as_str(), again.payment_id.as_str()),
        (placed.order_id.as_str(), placed.payment_id.as_str()),
        "claimed twice: one order, one charge"
    );

    // Five deliveries of each webhook event, some out of order: paid once.
    let paid = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Paid
    })
    .await;
    assert_eq!(status(&paid), pb::AccessoryOrderStatus::Paid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = order_when(&mut client, &placed.order_id, |_| true).await;
    assert_eq!(
        settled.version, 2,
        "placed and paid, whatever the webhook repeated"
    );

    let shipped = client
        .ship_accessory_order(ship(&placed.order_id, "CHG30-REPL-02"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        shipped
            .replacement
            .unwrap()
            .faulty_return_shipment_id
            .is_empty(),
        "a paid replacement asks nothing back"
    );
    let again = client
        .ship_accessory_order(ship(&placed.order_id, "CHG30-REPL-02"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.shipment_id, shipped.shipment_id, "one parcel");
    let delivered = order_when(&mut client, &placed.order_id, |o| {
        status(o) == pb::AccessoryOrderStatus::Delivered
    })
    .await;
    assert_eq!(status(&delivered), pb::AccessoryOrderStatus::Delivered);
    let held = accessories(&mut p).await;
    let new = held.iter().find(|a| a.serial == "CHG30-REPL-02").unwrap();
    assert!(new.replaces_serial.is_empty(), "bought: a cover of its own");
    assert_eq!(new.purchase_date, delivered.delivered_on);
}
