//! The parts service as a running process: gRPC, the stock levels read model,
//! the sweep for replenishments past their legal delivery day, the payment
//! provider's webhook for accessory orders, and (with NATS) the relay of its
//! public events and the consumers of repair's and logistics'.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_eventstore::CommandContext;
use aftersales_proto::parts::parts_service_server::PartsServiceServer;
use aftersales_runtime::config::Common;
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Listen};
pub use aftersales_runtime::service::{Running, StartError};

use crate::api::PartsApi;
use crate::app::Parts;
use crate::orders::AccessoryOrders;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;

/// The parts service, as its binary, `aftersales up` and operators see it.
pub static SERVICE: Description = Description {
    name: "parts",
    grpc_services: &["aftersales.parts.v1.PartsService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: crate::reactions::subscriptions,
    from_other_regions: || Ok(Vec::new()),
    publishes: Some(|| Arc::new(crate::integration::PartsEvents)),
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
        env = "AFTERSALES_PARTS_LISTEN",
        default_value = "127.0.0.1:50055"
    )]
    pub listen: SocketAddr,
    /// How often to look for replenishments past their legal delivery day.
    #[arg(long, env = "AFTERSALES_OVERDUE_CHECK_SECONDS", default_value_t = 3600)]
    pub overdue_check_seconds: u64,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9105"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// The logistics service, which ships accessory orders; unset, an order
    /// cannot be shipped (UNAVAILABLE).
    #[arg(long, env = "AFTERSALES_LOGISTICS_URL")]
    pub logistics_url: Option<String>,
    /// The warranty service: a phone's model (what fits it) and, on delivery,
    /// its accessories registered; unset, orders naming a phone are UNAVAILABLE.
    #[arg(long, env = "AFTERSALES_WARRANTY_URL")]
    pub warranty_url: Option<String>,
    /// Who takes payment for accessory orders, and how its webhook is checked.
    #[command(flatten)]
    pub payment: aftersales_payments::PaymentArgs,
    /// The payment webhook's HTTP address (with its secret).
    #[arg(
        long,
        env = "AFTERSALES_PAYMENTS_WEBHOOK_LISTEN",
        default_value = "127.0.0.1:8055"
    )]
    pub payments_webhook_listen: SocketAddr,
    /// How often orders still waiting for their payment are asked about: the
    /// reconciliation for a webhook that never came.
    #[arg(long, env = "AFTERSALES_PAYMENT_POLL_MILLIS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub payment_poll_millis: u64,
}

/// Settles orders whose payment ended without a webhook saying so, every `every`.
async fn reconcile(
    orders: AccessoryOrders,
    region: String,
    every: Duration,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.requested() => return,
        }
        let ctx = CommandContext::system("service:payments", region.clone(), orders.now());
        match orders.reconcile(&ctx).await {
            Ok(0) => {}
            Ok(settled) => tracing::info!(settled, "accessory order payments settled by asking"),
            Err(error) => tracing::warn!(%error, "reconciling payments failed; retrying"),
        }
    }
}

impl Default for Config {
    /// Every flag at its default.
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

/// Flags overdue replenishments every `every` until shutdown.
async fn sweep(app: Parts, region: String, every: Duration, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.requested() => return,
        }
        let ctx = CommandContext::system("system:overdue-sweep", region.clone(), app.now());
        match app.flag_overdue(&ctx).await {
            Ok(0) => {}
            Ok(flagged) => tracing::warn!(flagged, "replenishments past their legal delivery day"),
            Err(error) => tracing::warn!(%error, "overdue sweep failed; retrying"),
        }
    }
}

/// Starts everything and returns once the gRPC port is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.overdue_check_seconds == 0 {
        return Err(StartError::Config(
            "AFTERSALES_OVERDUE_CHECK_SECONDS must be at least 1".into(),
        ));
    }
    let common = &config.common;
    let channel = |url: &Option<String>, variable: &str| {
        common
            .service_channel(url.as_deref(), variable)
            .map_err(StartError::Config)
    };
    let logistics = channel(&config.logistics_url, "AFTERSALES_LOGISTICS_URL")?
        .map(LogisticsServiceClient::new);
    let warranty =
        channel(&config.warranty_url, "AFTERSALES_WARRANTY_URL")?.map(WarrantyServiceClient::new);
    let store = SERVICE.open(common).await?;
    let app = Parts::builtin(store.clone(), common.clock.clone()).map_err(StartError::Config)?;
    let (payments, webhook) = config
        .payment
        .start(config.payments_webhook_listen, common.clock.clone())
        .await
        .map_err(StartError::Config)?;
    let orders = AccessoryOrders::new(app.clone(), payments, logistics, warranty);
    let requests = Requests::new(common.region.clone(), common.clock.clone())
        .with_live_stream_cap(common.max_live_streams);
    let region = common.region.clone();
    let every = Duration::from_secs(config.overdue_check_seconds);
    let sweeper = app.clone();
    let stock = app.stock_handler().clone();
    let assembly = Assembly::new(
        PartsServiceServer::new(PartsApi::new(app, orders.clone(), requests))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .consumer(crate::reactions::PartsReactions::new(
        stock,
        orders.clone(),
        common.region.clone(),
    ))
    .privacy(crate::privacy::PartsRecords::new(orders.clone()))
    .task(move |shutdown| sweep(sweeper, region, every, shutdown))
    .task({
        let (orders, region) = (orders.clone(), common.region.clone());
        let every = Duration::from_millis(config.payment_poll_millis);
        move |shutdown| reconcile(orders, region, every, shutdown)
    });
    let assembly = match webhook {
        Some(endpoint) => endpoint.serve(
            assembly,
            orders,
            common.region.clone(),
            common.clock.clone(),
        ),
        None => assembly,
    };
    let listen = Listen {
        grpc: config.listen,
        metrics: config.metrics_listen,
    };
    aftersales_runtime::service::run(&SERVICE, common, listen, store, assembly).await
}
