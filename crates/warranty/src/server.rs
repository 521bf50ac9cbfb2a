//! The warranty service as a running process: configuration, the gRPC server, the
//! projections and the relay, and an orderly stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::{AnyEventStore, projection};
use aftersales_messaging::{Names, StreamSettings};
use aftersales_proto::warranty::warranty_service_server::WarrantyServiceServer;
use aftersales_runtime::config::Common;
use aftersales_runtime::grpc::{Grpc, bind};
use aftersales_runtime::shutdown::Shutdown;

use crate::api::WarrantyApi;
use crate::app::Warranty;
use crate::domain::PolicyTable;
use crate::domain::policy::REQUIRED_COUNTRIES;
use crate::integration::WarrantyEvents;
use crate::projections;

pub const SERVICE: &str = "warranty";
pub const GRPC_SERVICE: &str = "aftersales.warranty.v1.WarrantyService";

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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Task(#[from] aftersales_runtime::service::TaskFailed),
    #[error("policies: {0}")]
    Policy(#[from] crate::domain::PolicyError),
    #[error("DATABASE_URL: {0}")]
    Store(#[from] aftersales_eventstore::StoreError),
    #[error("{0}")]
    Config(String),
    #[error("NATS: {0}")]
    Messaging(#[from] aftersales_messaging::MessagingError),
    #[error(transparent)]
    Serve(#[from] aftersales_runtime::grpc::ServeError),
}

/// A started service: its address, and how to stop it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    pub store: AnyEventStore,
    background: aftersales_runtime::service::Background<StartError>,
}

impl Running {
    /// Stops as on SIGTERM, and waits until everything has.
    pub async fn stop(self) -> Result<(), StartError> {
        self.background.stop().await
    }
}

/// Starts everything and returns once the gRPC port is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    // A bad region stops the start before anything is touched.
    Names::new(config.common.region.clone()).map_err(|e| StartError::Config(e.to_string()))?;
    let policies = match &config.policies {
        Some(dir) => PolicyTable::load_dir(dir)?,
        None => PolicyTable::builtin()?,
    };
    policies.require(REQUIRED_COUNTRIES)?;
    let store = config.common.open_store("warranty").await?;
    projections::migrate(&store).await?;

    let relay = match config.common.nats_url() {
        Some(url) => {
            let streams = StreamSettings::with_replicas(config.common.stream_replicas);
            let bus =
                aftersales_messaging::Bus::connect(url, &config.common.region, SERVICE, streams)
                    .await?;
            Some(bus.relay(store.clone(), Arc::new(WarrantyEvents))?)
        }
        None => None,
    };

    let (listener, addr) = bind(config.listen).await?;
    let app = Warranty::new(store.clone(), Arc::new(policies));
    let cache = Arc::clone(app.cache());
    let api = WarrantyApi::new(
        app,
        aftersales_runtime::request::Requests::new(
            config.common.region.clone(),
            config.common.clock.clone(),
        ),
    );
    let (grpc, router) = Grpc::new(&[GRPC_SERVICE]).await?;
    let router = router.add_service(WarrantyServiceServer::new(api));
    let (trigger, shutdown) = Shutdown::new();
    let metrics_addr =
        aftersales_runtime::metrics::serve_if(config.metrics_listen, shutdown.stopped())
            .await
            .map_err(StartError::Config)?;
    let drain = Duration::from_secs(config.common.drain_grace_seconds);
    let background_store = store.clone();
    let background = aftersales_runtime::service::Background::spawn(trigger, async move {
        let all = projections::all(&background_store);
        let projections =
            projection::run_all(&background_store, &all, Duration::from_millis(200), || {
                shutdown.stopped()
            });
        let caching = cache.follow(
            &background_store,
            Duration::from_millis(100),
            shutdown.stopped(),
        );
        let relaying = async {
            if let Some(relay) = &relay {
                relay.run(shutdown.clone()).await;
            }
        };
        let serving = grpc.serve(router, listener, shutdown.stopped(), drain);
        let (served, (), (), ()) = tokio::join!(serving, projections, relaying, caching);
        served.map_err(StartError::from)
    });
    tracing::info!(%addr, region = %config.common.region, "warranty service listening");
    Ok(Running {
        addr,
        metrics_addr,
        store,
        background,
    })
}

impl aftersales_runtime::service::Running for Running {
    type Error = StartError;

    fn banner(&self) -> Vec<String> {
        vec![format!("warranty gRPC on {}", self.addr)]
    }

    async fn stop(self) -> Result<(), StartError> {
        Running::stop(self).await
    }
}
