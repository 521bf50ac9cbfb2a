//! The repair service as a running process.

use std::net::SocketAddr;
use std::sync::Arc;

use aftersales_proto::parts::parts_service_client::PartsServiceClient;
use aftersales_proto::repair::repair_service_server::RepairServiceServer;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Listen};
pub use aftersales_runtime::service::{Running, StartError};

use crate::api::RepairApi;
use crate::app::Repairs;
use crate::reactions::OrderReactions;

/// The repair service, as its binary, `aftersales up` and operators see it.
pub static SERVICE: Description = Description {
    name: "repair",
    grpc_services: &["aftersales.repair.v1.RepairService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: crate::reactions::subscriptions,
    from_other_regions: || Ok(Vec::new()),
    publishes: Some(|| Arc::new(crate::integration::RepairEvents)),
};

/// How the service runs; flags and environment variables (see `main.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// What every service binary shares.
    #[command(flatten)]
    pub common: Common,
    /// gRPC address to listen on.
    #[arg(
        long,
        env = "AFTERSALES_REPAIR_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub listen: SocketAddr,
    /// The warranty service, e.g. http://127.0.0.1:50051; unset leaves coverage
    /// pending and refuses diagnosis.
    #[arg(long, env = "AFTERSALES_WARRANTY_URL")]
    pub warranty_url: Option<String>,
    /// The parts service, e.g. http://127.0.0.1:50055: diagnoses propose quotes
    /// from its price lists and hold parts at the center; unset, they do neither.
    #[arg(long, env = "AFTERSALES_PARTS_URL")]
    pub parts_url: Option<String>,
    /// How far to look for a service center before recommending mail-in.
    #[arg(long, env = "AFTERSALES_CENTER_RADIUS_KM", default_value_t = 100.0)]
    pub center_radius_km: f64,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9102"
    )]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Config {
    /// Every flag at its default.
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

/// Starts everything and returns once the gRPC port is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if !(config.center_radius_km.is_finite() && config.center_radius_km > 0.0) {
        return Err(StartError::Config(
            "center radius must be a positive number of km".into(),
        ));
    }
    let channel = |url: &Option<String>, variable: &str| {
        config
            .common
            .service_channel(url.as_deref(), variable)
            .map_err(StartError::Config)
    };
    let warranty =
        channel(&config.warranty_url, "AFTERSALES_WARRANTY_URL")?.map(WarrantyServiceClient::new);
    let parts = channel(&config.parts_url, "AFTERSALES_PARTS_URL")?.map(PartsServiceClient::new);
    let common = &config.common;
    let store = SERVICE.open(common).await?;
    let app = Repairs::new(store.clone(), warranty, config.center_radius_km)
        .await?
        .with_parts(parts);
    let requests = Requests::new(common.region.clone(), common.clock.clone())
        .with_live_stream_cap(common.max_live_streams);
    let reactions = OrderReactions::new(app.order_handler().clone(), common.region.clone());
    let watched = app.clone();
    let records = crate::privacy::RepairRecords::new(app.clone());
    let notary = aftersales_runtime::notary::Notary::default();
    let assembly = Assembly::new(
        RepairServiceServer::new(RepairApi::new(app, requests, notary.clone()))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .notary(notary)
    .privacy(records)
    .consumer(reactions)
    .task(move |shutdown| async move { watched.feed_watchers(shutdown.stopped()).await });
    let listen = Listen {
        grpc: config.listen,
        metrics: config.metrics_listen,
    };
    aftersales_runtime::service::run(&SERVICE, common, listen, store, assembly).await
}
