//! The parts service for real: gRPC on PostgreSQL (and on SQLite, the embedded
//! default), its price lists, stock and reservations.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod orders;
mod prices;
mod privacy;
mod replacements;
mod stock;

use aftersales_parts::server::{Config, Running, start};
use aftersales_proto::common::CountryCode;
use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_testkit::shared_postgres;
use tonic::transport::Channel;

pub fn config(database_url: String) -> Config {
    Config {
        common: aftersales_runtime::config::Common::test(database_url),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    }
}

#[derive(Debug)]
pub struct Server {
    pub running: Running,
    pub client: PartsServiceClient<Channel>,
}

impl Server {
    pub async fn start_with(config: Config) -> Self {
        let running = start(config).await.unwrap();
        let client = PartsServiceClient::connect(format!("http://{}", running.addr))
            .await
            .unwrap();
        Self { running, client }
    }

    pub async fn start() -> Self {
        Self::start_with(config(shared_postgres().create_database().unwrap())).await
    }

    /// Events in the parts log: what a refused request must not change.
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

pub fn country(code: &str) -> Option<CountryCode> {
    Some(CountryCode { value: code.into() })
}
