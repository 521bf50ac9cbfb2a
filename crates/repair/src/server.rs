//! The repair service as a running process.

use std::net::SocketAddr;
use std::time::Duration;

use aftersales_eventstore::AnyEventStore;
use aftersales_proto::repair::repair_service_server::RepairServiceServer;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::config::Common;
use aftersales_runtime::grpc::{Grpc, bind};
use aftersales_runtime::shutdown::Shutdown;

use crate::api::RepairApi;
use crate::app::Repairs;

pub const GRPC_SERVICE: &str = "aftersales.repair.v1.RepairService";

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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Task(#[from] aftersales_runtime::service::TaskFailed),
    #[error("DATABASE_URL: {0}")]
    Store(#[from] aftersales_eventstore::StoreError),
    #[error("{0}")]
    Config(String),
    #[error("{}", .0.chain())]
    App(#[from] aftersales_core::Error),
    #[error(transparent)]
    Serve(#[from] aftersales_runtime::grpc::ServeError),
    #[error("NATS: {0}")]
    Messaging(#[from] aftersales_messaging::MessagingError),
}

#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    pub store: AnyEventStore,
    background: aftersales_runtime::service::Background<StartError>,
}

impl Running {
    pub async fn stop(self) -> Result<(), StartError> {
        self.background.stop().await
    }
}

pub async fn start(config: Config) -> Result<Running, StartError> {
    if !(config.center_radius_km.is_finite() && config.center_radius_km > 0.0) {
        return Err(StartError::Config(
            "center radius must be a positive number of km".into(),
        ));
    }
    let store = config.common.open_store("repair").await?;
    crate::projections::migrate(&store).await?;
    let warranty = match &config.warranty_url {
        Some(url) => Some(WarrantyServiceClient::new(
            aftersales_runtime::telemetry::traced(
                tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| StartError::Config(format!("AFTERSALES_WARRANTY_URL: {e}")))?
                    .connect_timeout(Duration::from_secs(2))
                    .connect_lazy(),
            ),
        )),
        None => None,
    };
    let app = Repairs::new(store.clone(), warranty, config.center_radius_km).await?;
    let (listener, addr) = bind(config.listen).await?;
    let (grpc, router) = Grpc::new(&[GRPC_SERVICE]).await?;
    let router = router.add_service(RepairServiceServer::new(RepairApi::new(
        app,
        aftersales_runtime::request::Requests::new(
            config.common.region.clone(),
            config.common.clock.clone(),
        ),
    )));
    let (trigger, shutdown) = Shutdown::new();
    let metrics_addr =
        aftersales_runtime::metrics::serve_if(config.metrics_listen, shutdown.stopped())
            .await
            .map_err(StartError::Config)?;
    let drain = Duration::from_secs(config.common.drain_grace_seconds);
    let messaging = match config.common.nats_url() {
        Some(url) => {
            let bus = aftersales_messaging::Bus::connect(
                url,
                &config.common.region,
                "repair",
                aftersales_messaging::StreamSettings::with_replicas(config.common.stream_replicas),
            )
            .await?;
            let relay = bus.relay(
                store.clone(),
                std::sync::Arc::new(crate::integration::RepairEvents),
            )?;
            let consumer = bus.consumer(
                crate::reactions::subscription().map_err(|e| StartError::Config(e.to_string()))?,
                store.clone(),
                std::sync::Arc::new(crate::reactions::LogisticsReactions::new(
                    store.clone(),
                    config.common.region.clone(),
                )),
            )?;
            Some((bus, relay, consumer))
        }
        None => None,
    };
    let projections = crate::projections::all(&store);
    let background = store.clone();
    let background = aftersales_runtime::service::Background::spawn(trigger, async move {
        let projecting = aftersales_eventstore::projection::run_all(
            &background,
            &projections,
            Duration::from_millis(200),
            || shutdown.stopped(),
        );
        let events = async {
            if let Some((bus, relay, consumer)) = &messaging {
                tokio::join!(
                    relay.run(shutdown.clone()),
                    bus.consume(consumer, shutdown.clone())
                );
            }
        };
        let serving = grpc.serve(router, listener, shutdown.stopped(), drain);
        let (served, (), ()) = tokio::join!(serving, projecting, events);
        served.map_err(StartError::from)
    });
    tracing::info!(%addr, "repair service listening");
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
        vec![format!("repair gRPC on {}", self.addr)]
    }

    async fn stop(self) -> Result<(), StartError> {
        Running::stop(self).await
    }
}
