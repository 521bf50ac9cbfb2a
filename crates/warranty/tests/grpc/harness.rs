//! A warranty server on a fresh PostgreSQL database (or an SQLite file), and a
//! client for it.

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_testkit::shared_postgres;
use aftersales_warranty::server::{Config, Running, start};
use tonic::transport::Channel;

pub const REGION: &str = "test-region";

pub struct Server {
    pub running: Running,
    pub client: WarrantyServiceClient<Channel>,
    /// The server's clock, for a test to move on.
    pub clock: aftersales_core::ShiftedClock,
    /// The database's owner: the server runs as a role that cannot change its log.
    pub owner_url: String,
    /// Where an SQLite server keeps its database.
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub async fn start(nats_url: Option<String>) -> Self {
        Self::start_settling_after(nats_url, 0).await
    }

    /// With sandbox payments that take `settle_millis` to settle.
    pub async fn start_settling_after(nats_url: Option<String>, settle_millis: u64) -> Self {
        let roles = shared_postgres().create_database_with_roles().unwrap();
        Self::start_on(
            roles.service_url,
            Some(roles.owner_url),
            None,
            nats_url,
            settle_millis,
        )
        .await
    }

    /// In `region` of the directory at `regions`, on NATS at `nats_url`.
    pub async fn start_in_region(
        nats_url: String,
        region: &str,
        regions: &std::path::Path,
    ) -> Self {
        let roles = shared_postgres().create_database_with_roles().unwrap();
        Self::start_configured(
            roles.service_url,
            Some(roles.owner_url),
            None,
            Some(nats_url),
            0,
            (region, Some(regions)),
        )
        .await
    }

    /// On an SQLite file of its own, without NATS.
    pub async fn start_on_sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("warranty.db").display());
        Self::start_on(url, None, Some(dir), None, 0).await
    }

    async fn start_on(
        url: String,
        owner_url: Option<String>,
        dir: Option<tempfile::TempDir>,
        nats_url: Option<String>,
        settle_millis: u64,
    ) -> Self {
        Self::start_configured(url, owner_url, dir, nats_url, settle_millis, (REGION, None)).await
    }

    async fn start_configured(
        url: String,
        owner_url: Option<String>,
        dir: Option<tempfile::TempDir>,
        nats_url: Option<String>,
        settle_millis: u64,
        (region, regions): (&str, Option<&std::path::Path>),
    ) -> Self {
        let clock = aftersales_core::ShiftedClock::new();
        let running = start(Config {
            common: Common {
                nats_url: nats_url.map(Into::into),
                region: region.into(),
                regions_file: regions.map(Into::into),
                clock: clock.shared(),
                database_owner_url: owner_url.clone().map(Into::into),
                ..Common::test(url)
            },
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            // Payments settle when told (at once by default) and are asked about often.
            payment: aftersales_payments::PaymentArgs {
                sandbox_payment_settle_millis: settle_millis,
                ..Default::default()
            },
            payment_poll_millis: 20,
            ..Config::default()
        })
        .await
        .unwrap();
        let client = WarrantyServiceClient::connect(format!("http://{}", running.addr))
            .await
            .unwrap();
        Self {
            running,
            client,
            clock,
            owner_url: owner_url.unwrap_or_default(),
            _dir: dir,
        }
    }

    pub async fn events(&self) -> i64 {
        let aftersales_eventstore::AnyEventStore::Postgres(pg) = &self.running.store else {
            panic!("PostgreSQL");
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(pg.pool())
            .await
            .unwrap()
    }

    /// Runs `sql` as the database's owner: someone with more rights than the
    /// service, tampering.
    pub async fn sql(&self, sql: &'static str) {
        let mut owner = <sqlx::PgConnection as sqlx::Connection>::connect(&self.owner_url)
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut owner).await.unwrap();
    }
}

/// A valid IMEI from any number: 14 digits and their Luhn check digit.
pub fn imei(n: u64) -> String {
    let body = format!("{:014}", n % 100_000_000_000_000);
    let check = (0..10)
        .find(|d| aftersales_warranty::domain::ids::luhn_valid(&format!("{body}{d}")))
        .unwrap();
    format!("{body}{check}")
}

/// A fresh IMEI per call within a test binary.
pub fn fresh_imei() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()) * 1_000_000;
    imei(35_000_000_000_000 + seed + NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn by_imei(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.into())),
    })
}

pub fn registration(
    imei: &str,
    country: &str,
    purchase_date: &str,
    customer: &str,
) -> pb::RegisterDeviceRequest {
    pb::RegisterDeviceRequest {
        device_id: by_imei(imei),
        model: "Aurora 5".into(),
        purchase_date: purchase_date.into(),
        country_of_purchase: Some(CountryCode {
            value: country.into(),
        }),
        channel: pb::SalesChannel::OnlineStore.into(),
        customer_id: customer.into(),
        ..Default::default()
    }
}

/// Today and a day `days` ago, as the server sees dates (UTC).
pub fn days_ago(days: i64) -> String {
    #[allow(clippy::disallowed_methods)]
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Duration::days(days)).to_string()
}

pub fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (tonic::Code, String) {
    let status = result.unwrap_err();
    (status.code(), status.message().to_owned())
}

pub fn coverage(imei: &str, fault: pb::FaultCategory) -> pb::CheckCoverageRequest {
    pb::CheckCoverageRequest {
        device_id: by_imei(imei),
        fault_category: fault.into(),
        as_of: None,
        record_decision: false,
        ..Default::default()
    }
}

/// The types of the device's events, in order.
pub async fn event_types(client: &mut WarrantyServiceClient<Channel>, imei: &str) -> Vec<String> {
    client
        .get_device_history(pb::GetDeviceHistoryRequest {
            device_id: by_imei(imei),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}
