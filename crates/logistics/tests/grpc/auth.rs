//! Logistics behind a real token issuer: a customer follows the parcels of their
//! own orders; another customer's parcel or order answers as one that does not
//! exist.

use std::time::Duration;

use aftersales_auth::issuer::Issuer;
use aftersales_auth::{Principal, Role, ServiceToken};
use aftersales_proto::common::{DeviceId, device_id};
use aftersales_proto::logistics as pb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::repair as rpb;
use aftersales_runtime::telemetry::{TracedChannel, traced};
use aftersales_testkit::{NatsServer, eventually, shared_postgres};
use tonic::Code;
use uuid::Uuid;

use crate::{address, config};

#[tokio::test]
async fn a_customer_follows_their_own_parcels_only() {
    let issuer = Issuer::serve("127.0.0.1:0".parse().unwrap(), std::future::pending())
        .await
        .unwrap();
    let nats = NatsServer::start().unwrap();
    let js = aftersales_messaging::connect(&nats.url(), "test-publisher")
        .await
        .unwrap();
    aftersales_messaging::ensure_service_stream(
        &js,
        &aftersales_messaging::Names::new("test").unwrap(),
        "repair",
        &aftersales_messaging::StreamSettings::default(),
    )
    .await
    .unwrap();
    let mut cfg = config(shared_postgres().create_database().unwrap());
    cfg.common = cfg.common.with_nats(nats.url());
    cfg.common.oidc_issuer = Some(issuer.url().to_owned());
    cfg.common.allow_unauthenticated = false;
    let keyring = cfg.common.keyring.clone().unwrap();
    let running = aftersales_logistics::server::start(cfg).await.unwrap();
    let as_customer = |id: &str| -> LogisticsServiceClient<TracedChannel> {
        let who = Principal::new(id, Role::Customer);
        let token = issuer
            .token(&who, "aftersales", Duration::from_secs(900))
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
            .unwrap()
            .connect_lazy();
        LogisticsServiceClient::new(traced(channel, Some(ServiceToken::fixed(token))))
    };
    let (anna, bob) = (as_customer("anna"), as_customer("bob"));

    // Repair opens Anna's mail-in order; logistics makes its inbound parcel.
    let order = "ord-anna-1";
    let opened = rpb::RepairOrderOpened {
        order_id: order.into(),
        device_id: Some(DeviceId {
            kind: Some(device_id::Kind::Imei("490154203237518".into())),
        }),
        channel: rpb::Channel::MailIn.into(),
        service_center_id: String::new(),
        customer_id: "anna".into(),
        // Repair seals the customer's words and address for them.
        personal: Some(aftersales_runtime::sealed::seal(
            &keyring.for_writing("repair/anna").await.unwrap(),
            &rpb::RepairOrderPersonal {
                symptoms: "no sound".into(),
                contact_address: Some(address("Anna", "Berlin", "DE")),
            },
        )),
        ..rpb::RepairOrderOpened::default()
    };
    aftersales_messaging::testing::publish(
        &js,
        "test",
        "repair",
        "RepairOrderOpened",
        &opened,
        Uuid::now_v7(),
        "opened-1",
    )
    .await;
    let parcels = |client: &LogisticsServiceClient<TracedChannel>| {
        let mut client = client.clone();
        async move {
            client
                .list_shipments_by_repair(pb::ListShipmentsByRepairRequest {
                    repair_order_id: order.into(),
                })
                .await
                .unwrap()
                .into_inner()
                .shipments
        }
    };
    let annas = eventually(|| parcels(&anna), |s| !s.is_empty()).await;
    let parcel = annas[0].shipment_id.clone();
    anna.clone()
        .get_label(pb::ShipmentRef {
            shipment_id: parcel.clone(),
        })
        .await
        .unwrap();

    // Bob sees no parcels of Anna's order, and her parcel and her order's custody
    // answer him as ones that do not exist.
    assert!(parcels(&bob).await.is_empty());
    let made_up = Uuid::now_v7().to_string();
    for id in [&parcel, &made_up] {
        let expected = (Code::NotFound, format!("shipment {id} not found"));
        let shipment = pb::ShipmentRef {
            shipment_id: id.clone(),
        };
        for answer in [
            bob.clone().get_shipment(shipment.clone()).await.map(drop),
            bob.clone().get_label(shipment.clone()).await.map(drop),
            bob.clone().get_tracking_timeline(shipment).await.map(drop),
        ] {
            let status = answer.unwrap_err();
            assert_eq!((status.code(), status.message().to_owned()), expected);
        }
    }
    let status = bob
        .clone()
        .get_custody_timeline(pb::CustodyRequest {
            repair_order_id: order.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::NotFound, "repair order ord-anna-1 not found")
    );
    running.stop().await.unwrap();
}
