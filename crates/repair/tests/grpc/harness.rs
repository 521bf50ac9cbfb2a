//! Repair and warranty running for real on PostgreSQL, and request builders.

use aftersales_core::ShiftedClock;
use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::repair as pb;
use aftersales_proto::repair::repair_service_client::RepairServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_testkit::shared_postgres;
use tonic::Code;
use tonic::transport::Channel;

pub struct Platform {
    pub warranty: aftersales_warranty::server::Running,
    pub repair: aftersales_repair::server::Running,
    pub w: WarrantyServiceClient<Channel>,
    pub r: RepairServiceClient<Channel>,
    pub repair_url: String,
    /// The time both services read; a test moves it instead of sleeping.
    pub clock: ShiftedClock,
}

pub fn repair_config(
    database_url: String,
    warranty_url: Option<String>,
) -> aftersales_repair::server::Config {
    aftersales_repair::server::Config {
        common: Common::test(database_url),
        listen: "127.0.0.1:0".parse().unwrap(),
        warranty_url,
        parts_url: None,
        center_radius_km: 150.0,
        metrics_listen: None,
    }
}

impl Platform {
    pub async fn start() -> Self {
        let clock = ShiftedClock::new();
        let warranty = aftersales_warranty::server::start(aftersales_warranty::server::Config {
            common: Common {
                clock: std::sync::Arc::new(clock.clone()),
                ..Common::test(shared_postgres().create_database().unwrap())
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            ..Default::default()
        })
        .await
        .unwrap();
        let repair_url = shared_postgres().create_database().unwrap();
        let mut config = repair_config(
            repair_url.clone(),
            Some(format!("http://{}", warranty.addr)),
        );
        config.common.clock = std::sync::Arc::new(clock.clone());
        let repair = aftersales_repair::server::start(config).await.unwrap();
        let w = WarrantyServiceClient::connect(format!("http://{}", warranty.addr))
            .await
            .unwrap();
        let r = RepairServiceClient::connect(format!("http://{}", repair.addr))
            .await
            .unwrap();
        Self {
            warranty,
            repair,
            w,
            r,
            repair_url,
            clock,
        }
    }

    pub async fn stop(self) {
        self.repair.stop().await.unwrap();
        self.warranty.stop().await.unwrap();
    }

    /// Events the commands wrote (not the device index, which a projection
    /// appends a moment after an order opens).
    pub async fn repair_events(&self) -> i64 {
        let aftersales_eventstore::AnyEventStore::Postgres(pg) = &self.repair.store else {
            panic!()
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE stream_id NOT LIKE 'device-orders-%'")
            .fetch_one(pg.pool())
            .await
            .unwrap()
    }
}

pub fn imei(n: u64) -> String {
    let body = format!(
        "{:014}",
        36_000_000_000_000 + u64::from(std::process::id()) * 1000 + n
    );
    let check = (0..10)
        .find(|d| aftersales_warranty::domain::ids::luhn_valid(&format!("{body}{d}")))
        .unwrap();
    format!("{body}{check}")
}

pub fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    })
}

pub fn days_ago(days: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Duration::days(days)).to_string()
}

pub async fn register(p: &mut Platform, imei: &str, country: &str, days: i64) {
    p.w.register_device(wpb::RegisterDeviceRequest {
        device_id: device(imei),
        model: "Aurora 5".into(),
        purchase_date: days_ago(days),
        country_of_purchase: Some(CountryCode {
            value: country.into(),
        }),
        channel: wpb::SalesChannel::OnlineStore.into(),
        customer_id: "cust-1".into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

pub fn walk_in(imei: &str) -> pb::OpenRepairRequest {
    pb::OpenRepairRequest {
        device_id: device(imei),
        channel: pb::Channel::WalkIn.into(),
        service_center_id: "sc-berlin-01".into(),
        customer_id: "cust-1".into(),
        symptoms: "the screen flickers".into(),
        contact_address: None,
        reported_fault: wpb::FaultCategory::Display.into(),
        walk_in_day: aftersales_testkit::walk_in_day(),
        ..Default::default()
    }
}

pub fn order(id: &str) -> pb::OrderRef {
    pb::OrderRef {
        order_id: id.into(),
    }
}

pub fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let s = r.unwrap_err();
    (s.code(), s.message().to_owned())
}
