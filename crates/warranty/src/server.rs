//! The warranty service as a running process: configuration, the gRPC server, the
//! projections and the relay, and an orderly stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aftersales_messaging::Names;
use aftersales_proto::warranty::warranty_service_server::WarrantyServiceServer;
use aftersales_runtime::config::Common;
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Listen};
pub use aftersales_runtime::service::{Running, StartError};

use crate::api::WarrantyApi;
use crate::app::Warranty;
use crate::domain::PolicyTable;
use crate::domain::policy::REQUIRED_COUNTRIES;

/// The warranty service, as its binary, `aftersales up` and operators see it.
pub static SERVICE: Description = Description {
    name: "warranty",
    grpc_services: &["aftersales.warranty.v1.WarrantyService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: || Ok(Vec::new()),
    publishes: Some(|| Arc::new(crate::integration::WarrantyEvents)),
};

/// How the service runs. Flags and environment variables (see `main.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// What every service binary shares.
    #[command(flatten)]
    pub common: Common,
    /// gRPC address to listen on.
    #[arg(
        long,
        env = "AFTERSALES_WARRANTY_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub listen: SocketAddr,
    /// A directory of policy files to use instead of the built-in ones.
    #[arg(long, env = "AFTERSALES_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9101"
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
    // A bad region stops the start before anything is touched.
    Names::new(config.common.region.clone())?;
    let policies = match &config.policies {
        Some(dir) => PolicyTable::load_dir(dir),
        None => PolicyTable::builtin(),
    }
    .and_then(|policies| policies.require(REQUIRED_COUNTRIES).map(|()| policies))
    .map_err(|e| StartError::Config(format!("policies: {e}")))?;
    let common = &config.common;
    let store = SERVICE.open(common).await?;
    let app = Warranty::new(store.clone(), Arc::new(policies));
    let cache = Arc::clone(app.cache());
    let requests = Requests::new(common.region.clone(), common.clock.clone());
    let follower = store.clone();
    let assembly = Assembly::new(
        WarrantyServiceServer::new(WarrantyApi::new(app, requests))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .task(move |shutdown| async move {
        cache
            .follow(&follower, Duration::from_millis(100), shutdown.stopped())
            .await;
    });
    let listen = Listen {
        grpc: config.listen,
        metrics: config.metrics_listen,
    };
    aftersales_runtime::service::run(&SERVICE, common, listen, store, assembly).await
}
