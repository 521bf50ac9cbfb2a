//! The logistics service for real: gRPC and the carrier webhook on PostgreSQL, and
//! the mail-in journey with warranty and repair over a real nats-server.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod auth;
mod journey;
mod reactions;
mod shipments;
mod webhook;

use aftersales_logistics::server::{Config, Running, start};
use aftersales_proto::common::{Address, CountryCode};
use aftersales_proto::logistics as pb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_testkit::shared_postgres;
use tonic::transport::Channel;

pub const SECRET: &str = "test-webhook-secret-0123456789";

pub fn config(database_url: String) -> Config {
    Config {
        common: aftersales_runtime::config::Common::test(database_url),
        listen: "127.0.0.1:0".parse().unwrap(),
        webhook_listen: "127.0.0.1:0".parse().unwrap(),
        webhook_secrets: Some(format!("sandbox={SECRET}").into()),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    }
}

#[derive(Debug)]
pub struct Server {
    pub running: Running,
    pub client: LogisticsServiceClient<Channel>,
}

impl Server {
    pub async fn start_with(config: Config) -> Self {
        let running = start(config).await.unwrap();
        let client = LogisticsServiceClient::connect(format!("http://{}", running.addr))
            .await
            .unwrap();
        Self { running, client }
    }

    pub async fn start() -> Self {
        Self::start_with(config(shared_postgres().create_database().unwrap())).await
    }

    /// Events in the logistics log: what a refused request must not change.
    pub async fn events(&self) -> i64 {
        let aftersales_eventstore::AnyEventStore::Postgres(pg) = &self.running.store else {
            panic!("PostgreSQL expected")
        };
        sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(pg.pool())
            .await
            .unwrap()
    }
}

pub fn address(recipient: &str, city: &str, country: &str) -> Address {
    Address {
        recipient: recipient.into(),
        lines: vec!["12 Example Road".into()],
        city: city.into(),
        region: String::new(),
        postal_code: "10115".into(),
        country: Some(CountryCode {
            value: country.into(),
        }),
        phone: "+49 30 1234567".into(),
    }
}

pub fn new_shipment(order: &str) -> pb::CreateShipmentRequest {
    pb::CreateShipmentRequest {
        direction: pb::Direction::Inbound.into(),
        repair_order_id: order.into(),
        accessory_replacement_id: String::new(),
        from: Some(address("Ana Weber", "Berlin", "DE")),
        to: Some(address("Repair Depot", "Leipzig", "DE")),
        parcel: Some(pb::Parcel {
            weight_grams: 450,
            length_mm: 220,
            width_mm: 140,
            height_mm: 70,
        }),
        carrier: String::new(),
    }
}

pub fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    aftersales_runtime::request::timestamp_to_proto(t)
}

#[allow(clippy::disallowed_methods)] // tests stand in for carriers' clocks
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub fn scan(
    tracking_number: &str,
    id: &str,
    status: pb::TrackingStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> pb::RecordTrackingEventRequest {
    pb::RecordTrackingEventRequest {
        carrier: "sandbox".into(),
        tracking_number: tracking_number.into(),
        status: status.into(),
        location: format!("hub {id}"),
        occurred_at: Some(ts(at)),
        carrier_event_id: id.into(),
        description: String::new(),
    }
}
