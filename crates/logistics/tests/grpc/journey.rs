//! Warranty, repair and logistics as real servers talking over a real
//! nats-server: a mail-in repair from opening to closing with the sandbox carrier
//! driving every scan, a cancelled mail-in order, and walk-in custody. The test
//! only calls the services' APIs.

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::logistics as pb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::repair as rpb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_testkit::{NatsServer, eventually, shared_postgres};
use tonic::transport::Channel;

use crate::{address, config};

struct Platform {
    warranty: aftersales_warranty::server::Running,
    repair: aftersales_repair::server::Running,
    logistics: aftersales_logistics::server::Running,
    w: WarrantyServiceClient<Channel>,
    r: RepairServiceClient<Channel>,
    l: LogisticsServiceClient<Channel>,
}

impl Platform {
    async fn start(nats: &NatsServer) -> Self {
        let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
            common: Common::test(shared_postgres().create_database().unwrap())
                .with_nats(nats.url()),
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            ..Default::default()
        })
        .await
        .unwrap();
        let repair = aftersales_repair::server::start(aftersales_repair::server::Config {
            common: Common::test(shared_postgres().create_database().unwrap())
                .with_nats(nats.url()),
            listen: "127.0.0.1:0".parse().unwrap(),
            warranty_url: Some(format!("http://{}", warranty.addr)),
            metrics_listen: None,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut logistics_config = config(shared_postgres().create_database().unwrap());
        logistics_config.common = logistics_config.common.with_nats(nats.url());
        let logistics = aftersales_logistics::server::start(logistics_config)
            .await
            .unwrap();
        Self {
            w: WarrantyServiceClient::connect(format!("http://{}", warranty.addr))
                .await
                .unwrap(),
            r: RepairServiceClient::connect(format!("http://{}", repair.addr))
                .await
                .unwrap(),
            l: LogisticsServiceClient::connect(format!("http://{}", logistics.addr))
                .await
                .unwrap(),
            warranty,
            repair,
            logistics,
        }
    }

    async fn stop(self) {
        self.logistics.stop().await.unwrap();
        self.repair.stop().await.unwrap();
        self.warranty.stop().await.unwrap();
    }

    async fn order(&self, id: &str) -> rpb::RepairOrder {
        self.r
            .clone()
            .get_repair(rpb::OrderRef {
                order_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn stage_becomes(&self, id: &str, stage: rpb::Stage) {
        let order = eventually(|| self.order(id), |o| o.stage == i32::from(stage)).await;
        assert_eq!(
            rpb::Stage::try_from(order.stage).unwrap(),
            stage,
            "order {id}"
        );
    }

    async fn shipments(&self, order: &str) -> Vec<pb::Shipment> {
        self.l
            .clone()
            .list_shipments_by_repair(pb::ListShipmentsByRepairRequest {
                repair_order_id: order.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .shipments
    }

    async fn play(&self, shipment: &pb::Shipment, script: &str) {
        self.l
            .clone()
            .play_sandbox_script(pb::PlaySandboxScriptRequest {
                shipment_id: shipment.shipment_id.clone(),
                script: script.into(),
                step_millis: 20,
            })
            .await
            .unwrap();
    }
}

fn imei(n: u64) -> String {
    let body = format!(
        "{:014}",
        37_000_000_000_000 + u64::from(std::process::id()) * 1000 + n
    );
    let check = (0..10)
        .find(|d| aftersales_warranty::domain::ids::luhn_valid(&format!("{body}{d}")))
        .unwrap();
    format!("{body}{check}")
}

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    })
}

async fn register(p: &mut Platform, imei: &str) {
    #[allow(clippy::disallowed_methods)]
    let bought = chrono::Utc::now().date_naive() - chrono::Duration::days(60);
    p.w.register_device(wpb::RegisterDeviceRequest {
        device_id: device(imei),
        model: "Aurora 5".into(),
        purchase_date: bought.to_string(),
        country_of_purchase: Some(CountryCode { value: "DE".into() }),
        channel: wpb::SalesChannel::OnlineStore.into(),
        customer_id: "cust-7".into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

fn mail_in(imei: &str) -> rpb::OpenRepairRequest {
    rpb::OpenRepairRequest {
        device_id: device(imei),
        channel: rpb::Channel::MailIn.into(),
        service_center_id: String::new(),
        customer_id: "cust-7".into(),
        symptoms: "the battery drains in an hour".into(),
        contact_address: Some(address("Ana Weber", "Berlin", "DE")),
        reported_fault: wpb::FaultCategory::Battery.into(),
        walk_in_day: String::new(),
        ..Default::default()
    }
}

async fn repair_it(p: &mut Platform, id: &str) {
    p.r.diagnose(rpb::DiagnoseRequest {
        order_id: id.into(),
        fault_category: wpb::FaultCategory::Battery.into(),
        fault_codes: vec!["BAT-DEGRADED".into()],
        technician: "tech-1".into(),
    })
    .await
    .unwrap();
    p.r.start_repair(rpb::StartRepairRequest {
        order_id: id.into(),
        technician: "tech-1".into(),
    })
    .await
    .unwrap();
    p.r.record_qc_result(rpb::RecordQcResultRequest {
        order_id: id.into(),
        passed: true,
        notes: String::new(),
    })
    .await
    .unwrap();
    p.r.mark_ready_for_return(rpb::OrderRef {
        order_id: id.into(),
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_in_repair_from_open_to_closed_driven_by_the_sandbox_carrier() {
    let nats = NatsServer::start().unwrap();
    let mut p = Platform::start(&nats).await;
    let imei = imei(1);
    register(&mut p, &imei).await;

    let id =
        p.r.open_repair(mail_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    // Logistics creates the inbound parcel and its label from RepairOrderOpened.
    let inbound = eventually(|| p.shipments(&id), |s| s.len() == 1).await;
    assert_eq!(inbound.len(), 1, "one inbound shipment");
    let inbound = inbound[0].clone();
    assert_eq!(inbound.direction, i32::from(pb::Direction::Inbound));
    assert_eq!(
        inbound.to.as_ref().unwrap().city,
        "Leipzig",
        "the depot serving DE"
    );
    assert_eq!(inbound.from.as_ref().unwrap().recipient, "Ana Weber");

    p.play(&inbound, "exception_then_delivered").await;
    p.stage_becomes(&id, rpb::Stage::Received).await;
    repair_it(&mut p, &id).await;

    // Logistics ships it back from ReadyForReturn.
    let both = eventually(|| p.shipments(&id), |s| s.len() == 2).await;
    assert_eq!(both.len(), 2);
    let outbound = both
        .iter()
        .find(|s| s.direction == i32::from(pb::Direction::Outbound))
        .unwrap()
        .clone();
    assert_eq!(outbound.to.as_ref().unwrap().recipient, "Ana Weber");
    assert_eq!(outbound.from.as_ref().unwrap().city, "Leipzig");

    p.play(&outbound, "delivered").await;
    p.stage_becomes(&id, rpb::Stage::Closed).await;

    let custody =
        p.l.get_custody_timeline(pb::CustodyRequest {
            repair_order_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let holders: Vec<_> = custody.steps.iter().map(|s| s.holder.as_str()).collect();
    assert_eq!(
        holders,
        [
            "customer",
            "carrier:sandbox",
            "depot:Aftersales Repair Depot Leipzig",
            "carrier:sandbox",
            "customer"
        ]
    );

    // Every reaction happened once: two shipments, one receipt, one return.
    // The timeline is a read model: it follows the log shortly after.
    let timeline = eventually(
        || {
            let mut r = p.r.clone();
            let id = id.clone();
            async move {
                r.get_repair_timeline(rpb::OrderRef { order_id: id })
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |t| t.steps.iter().any(|s| s.event_type == "ReturnDelivered"),
    )
    .await;
    let steps: Vec<_> = timeline
        .steps
        .iter()
        .map(|s| s.event_type.as_str())
        .collect();
    assert_eq!(
        steps.iter().filter(|s| **s == "DeviceReceived").count(),
        1,
        "{steps:?}"
    );
    assert_eq!(
        steps.iter().filter(|s| **s == "ReturnDelivered").count(),
        1,
        "{steps:?}"
    );
    assert_eq!(p.shipments(&id).await.len(), 2);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_mail_in_order_cancels_its_parcel_and_walk_in_custody_is_kept() {
    let nats = NatsServer::start().unwrap();
    let mut p = Platform::start(&nats).await;
    let imei = imei(2);
    register(&mut p, &imei).await;

    let id =
        p.r.open_repair(mail_in(&imei))
            .await
            .unwrap()
            .into_inner()
            .order_id;
    let inbound = eventually(|| p.shipments(&id), |s| s.len() == 1).await;
    assert_eq!(inbound.len(), 1);
    p.r.cancel_repair(rpb::CancelRepairRequest {
        order_id: id.clone(),
        reason: "found a charger that works".into(),
    })
    .await
    .unwrap();
    let cancelled = eventually(
        || p.shipments(&id),
        |s| s.len() == 1 && s[0].state == i32::from(pb::ShipmentState::Cancelled),
    )
    .await;
    assert_eq!(cancelled[0].state, i32::from(pb::ShipmentState::Cancelled));

    // Walk-in: the center holds the device from check-in to collection.
    let walk_in =
        p.r.open_repair(rpb::OpenRepairRequest {
            channel: rpb::Channel::WalkIn.into(),
            service_center_id: "sc-berlin-01".into(),
            contact_address: None,
            walk_in_day: aftersales_testkit::walk_in_day(),
            ..mail_in(&imei)
        })
        .await
        .unwrap()
        .into_inner()
        .order_id;
    p.r.check_in_device(rpb::CheckInDeviceRequest {
        order_id: walk_in.clone(),
        condition_notes: "scratches on the back".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    repair_it(&mut p, &walk_in).await;
    p.r.confirm_collected(rpb::OrderRef {
        order_id: walk_in.clone(),
    })
    .await
    .unwrap();
    let custody = eventually(
        || {
            let mut l = p.l.clone();
            let id = walk_in.clone();
            async move {
                l.get_custody_timeline(pb::CustodyRequest {
                    repair_order_id: id,
                })
                .await
                .map(|t| t.into_inner().steps)
                .unwrap_or_default()
            }
        },
        |steps| steps.len() == 3,
    )
    .await;
    let holders: Vec<_> = custody.iter().map(|s| s.holder.as_str()).collect();
    assert_eq!(
        holders,
        ["customer", "service_center:sc-berlin-01", "customer"]
    );
    assert!(
        p.shipments(&walk_in).await.is_empty(),
        "no parcel for a walk-in"
    );
    p.stop().await;
}
