//! The warranty service as a running process: configuration, the gRPC server, the
//! projections and the relay, and an orderly stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::{CommandContext, StoreTransaction};
use aftersales_messaging::Names;
use aftersales_messaging::{Handler, HandlerError, InboundEvent};
use aftersales_payments::PaymentArgs;
use aftersales_proto::warranty::warranty_service_server::WarrantyServiceServer;
use aftersales_runtime::config::Common;
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Listen};
pub use aftersales_runtime::service::{Running, StartError};

use crate::api::WarrantyApi;
use crate::app::Warranty;
use crate::domain::policy::REQUIRED_COUNTRIES;
use crate::domain::{PolicyTable, ProgrammeTable};

/// The warranty service, as its binary, `aftersales up` and operators see it.
pub static SERVICE: Description = Description {
    name: "warranty",
    grpc_services: &["aftersales.warranty.v1.WarrantyService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: crate::abroad::subscriptions,
    from_other_regions: crate::replica::subscriptions,
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
    /// A directory of recall and service programme files to use instead of the
    /// built-in ones.
    #[arg(long, env = "AFTERSALES_PROGRAMMES")]
    pub programmes: Option<PathBuf>,
    /// How often the owners of devices a running programme affects, registered
    /// before it began, are looked for (and once at start).
    #[arg(long, env = "AFTERSALES_PROGRAMME_SWEEP_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub programme_sweep_secs: u64,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9101"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// Who takes payment for extended plans, and how its webhook is checked.
    #[command(flatten)]
    pub payment: PaymentArgs,
    /// How often pending payments are asked about: the reconciliation for a
    /// webhook that never came.
    #[arg(long, env = "AFTERSALES_PAYMENT_POLL_MILLIS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub payment_poll_millis: u64,
    /// The payment webhook's HTTP address (with its secret).
    #[arg(
        long,
        env = "AFTERSALES_PAYMENTS_WEBHOOK_LISTEN",
        default_value = "127.0.0.1:8051"
    )]
    pub payments_webhook_listen: SocketAddr,
}

pub use aftersales_payments::PAYMENTS_WEBHOOK;

impl Default for Config {
    /// Every flag at its default.
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

/// Sets, every 10 seconds, the forward queue's gauges per home region:
/// `aftersales_forward_queue_depth` (writes accepted here and not yet applied
/// there) and `aftersales_forward_queue_oldest_seconds`.
async fn watch_forwards(
    store: aftersales_eventstore::AnyEventStore,
    regions: Arc<aftersales_runtime::regions::Regions>,
    here: String,
    clock: aftersales_core::SharedClock,
    mut shutdown: aftersales_core::Shutdown,
) {
    loop {
        match crate::replica::unsettled_forwards(&store, clock.now()).await {
            Ok(queued) => {
                for region in regions.others(&here) {
                    let (depth, age) = queued
                        .iter()
                        .find(|(home, ..)| *home == region.name)
                        .map_or((0, 0.0), |(_, depth, age)| (*depth, *age));
                    let labels = [("region", region.name.clone())];
                    metrics::gauge!("aftersales_forward_queue_depth", &labels).set(depth as f64);
                    metrics::gauge!("aftersales_forward_queue_oldest_seconds", &labels).set(age);
                }
            }
            Err(error) => tracing::warn!(%error, "reading the forward queue failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
            () = shutdown.requested() => return,
        }
    }
}

/// What warranty consumes: other regions' warranty events, and this region's
/// repairs of their devices.
#[derive(Debug, Clone)]
struct Reactions {
    from_other_regions: crate::replica::FromOtherRegions,
    repairs_abroad: crate::abroad::RepairsAbroad,
}

impl Handler for Reactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        if event.source == "repair" {
            self.repairs_abroad.handle(event, tx).await
        } else {
            self.from_other_regions.handle(event, tx).await
        }
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
    let programmes = match &config.programmes {
        Some(dir) => ProgrammeTable::load_dir(dir),
        None => ProgrammeTable::builtin(),
    }
    .map_err(|e| StartError::Config(format!("programmes: {e}")))?;
    let common = &config.common;
    let store = SERVICE.open(common).await?;
    let (payments, webhook) = config
        .payment
        .start(config.payments_webhook_listen, common.clock.clone())
        .await
        .map_err(StartError::Config)?;
    let regions = Arc::new(common.regions().map_err(StartError::Config)?);
    let policies = Arc::new(policies);
    let programmes = Arc::new(programmes);
    let reactions = Reactions {
        from_other_regions: crate::replica::FromOtherRegions::new(
            common.region.clone(),
            store.clone(),
            Arc::clone(&policies),
            Arc::clone(&programmes),
        ),
        repairs_abroad: crate::abroad::RepairsAbroad::new(common.region.clone(), store.clone()),
    };
    let app = Warranty::new(store.clone(), policies, programmes, payments)
        .in_region(common.region.clone(), Arc::clone(&regions));
    let cache = Arc::clone(app.cache());
    let webhook_app = app.clone();
    let settling = app.clone();
    let region = common.region.clone();
    let clock = common.clock.clone();
    let poll = Duration::from_millis(config.payment_poll_millis);
    let requests = Requests::new(common.region.clone(), common.clock.clone())
        .with_live_stream_cap(common.max_live_streams);
    let follower = store.clone();
    let sweeping = app.clone();
    let sweep_region = common.region.clone();
    let sweep_clock = common.clock.clone();
    let sweep = Duration::from_secs(config.programme_sweep_secs);
    let records = crate::privacy::WarrantyRecords::new(app.clone());
    let notary = aftersales_runtime::notary::Notary::default();
    let assembly = Assembly::new(
        WarrantyServiceServer::new(WarrantyApi::new(app, requests, notary.clone()))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .notary(notary)
    .privacy(records)
    .consumer(reactions)
    .task({
        let (store, region, clock) = (store.clone(), common.region.clone(), common.clock.clone());
        move |shutdown| watch_forwards(store, regions, region, clock, shutdown)
    })
    .task(move |shutdown| async move {
        cache
            .follow(&follower, Duration::from_millis(100), shutdown.stopped())
            .await;
    })
    .task(move |mut shutdown| async move {
        loop {
            let ctx = CommandContext::system(
                "service:programmes",
                sweep_region.clone(),
                sweep_clock.now(),
            );
            match sweeping.enrol_affected(&ctx).await {
                Ok(0) => {}
                Ok(enrolled) => tracing::info!(enrolled, "devices enrolled in programmes"),
                Err(error) => tracing::warn!(%error, "the programme sweep failed; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(sweep) => {}
                () = shutdown.requested() => return,
            }
        }
    })
    .task(move |mut shutdown| async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = shutdown.requested() => return,
            }
            let ctx = CommandContext::system("service:payments", region.clone(), clock.now());
            match settling.settle_payments(&ctx).await {
                Ok(0) => {}
                Ok(settled) => tracing::info!(settled, "plan payments settled"),
                Err(error) => tracing::warn!(%error, "settling plan payments failed; retrying"),
            }
        }
    });
    let assembly = match webhook {
        Some(endpoint) => endpoint.serve(
            assembly,
            webhook_app,
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
