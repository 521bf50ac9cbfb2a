//! A customer's rights over what parts holds: their accessory orders exported
//! with the delivery address, the erasure deferred while an order still needs
//! it, then carried out once it is delivered; what an invoice must keep stays.

use aftersales_eventstore::personal::ERASED;
use aftersales_proto::parts as pb;
use aftersales_proto::privacy::{self as ppb, privacy_client::PrivacyClient};
use tonic::transport::Channel;

use crate::orders::{berlin, platform};

/// A customer of this test alone: the keyring is the test process's, and her
/// key is destroyed.
const WHO: &str = "cust-erika";

async fn privacy(p: &crate::orders::Platform) -> PrivacyClient<Channel> {
    PrivacyClient::connect(format!("http://{}", p.parts.running.addr))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_waits_for_the_parcel_then_leaves_the_invoice_without_the_address() {
    let p = platform().await;
    let mut client = p.parts.client.clone();
    let placed = client
        .place_accessory_order(pb::PlaceAccessoryOrderRequest {
            customer_id: WHO.into(),
            device_id: None,
            lines: vec![pb::AccessoryLine {
                number: "ACC-CBL-C1M".into(),
                quantity: 1,
            }],
            address: Some(berlin()),
            payment_method: "sandbox-ok".into(),
        })
        .await
        .unwrap()
        .into_inner();
    aftersales_testkit::eventually(
        || {
            let (mut client, order_id) = (client.clone(), placed.order_id.clone());
            async move {
                client
                    .get_accessory_order(pb::AccessoryOrderRef {
                        order_id,
                        customer_id: WHO.into(),
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |o: &pb::AccessoryOrder| o.status() == pb::AccessoryOrderStatus::Paid,
    )
    .await;
    let mut privacy = privacy(&p).await;
    let exported = privacy
        .export_customer_data(ppb::ExportCustomerDataRequest {
            customer_id: WHO.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exported.service, "parts");
    let [record] = exported.records.as_slice() else {
        panic!("one order: {:?}", exported.records)
    };
    assert_eq!(
        (record.kind.as_str(), record.id.as_str()),
        ("accessory_order", placed.order_id.as_str())
    );
    assert!(record.json.contains("Invalidenstr. 1"), "{}", record.json);

    // Paid, not yet shipped: the parcel still needs the address.
    let erase = ppb::EraseCustomerRequest {
        customer_id: WHO.into(),
    };
    let deferred = privacy
        .erase_customer(erase.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deferred.state(), ppb::ErasureState::Deferred);
    assert_eq!(deferred.waiting_for.len(), 1);
    assert_eq!(deferred.waiting_for[0].id, placed.order_id);

    client
        .ship_accessory_order(pb::ShipAccessoryOrderRequest {
            order_id: placed.order_id.clone(),
            units: vec![pb::PackedUnit {
                number: "ACC-CBL-C1M".into(),
                serial: "CBL-000301".into(),
            }],
        })
        .await
        .unwrap();
    let receipt = aftersales_testkit::eventually(
        || {
            let (mut privacy, erase) = (privacy.clone(), erase.clone());
            async move { privacy.erase_customer(erase).await.unwrap().into_inner() }
        },
        |r: &ppb::ErasureReceipt| r.state() == ppb::ErasureState::Done,
    )
    .await;
    assert!(receipt.waiting_for.is_empty());
    assert!(
        receipt.kept.iter().any(|k| k.why.contains("§147 AO")),
        "{:?}",
        receipt.kept
    );
    assert_eq!(
        receipt.erased.first().map(|e| e.count),
        Some(1),
        "{:?}",
        receipt.erased
    );

    let after = privacy
        .export_customer_data(ppb::ExportCustomerDataRequest {
            customer_id: WHO.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let json = &after.records[0].json;
    assert!(!json.contains("Invalidenstr"), "{json}");
    assert!(!json.contains("Lena Weber"), "{json}");
    assert!(json.contains(ERASED), "{json}");
    assert!(
        json.contains("CBL-000301"),
        "the invoice's serial stays: {json}"
    );
    // The order itself reads on, its address erased.
    let order = client
        .get_accessory_order(pb::AccessoryOrderRef {
            order_id: placed.order_id.clone(),
            customer_id: WHO.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(order.address.unwrap().city, ERASED);
    assert_eq!(order.total.unwrap().gross.unwrap().minor_units, 1773);
}
