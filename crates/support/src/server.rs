//! The support service as a running process: gRPC, the cases read model, the
//! sweep that records SLA warnings and breaches as they fall due and gives
//! waiting cases to agents as they come on shift, and (with NATS) the relay of
//! its public events and the consumers of repair's and logistics'.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_eventstore::CommandContext;
use aftersales_proto::support::support_service_server::SupportServiceServer;
use aftersales_runtime::config::Common;
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Listen};
pub use aftersales_runtime::service::{Running, StartError};

use crate::api::SupportApi;
use crate::app::Support;

/// The support service, as its binary, `aftersales up` and operators see it.
pub static SERVICE: Description = Description {
    name: "support",
    grpc_services: &["aftersales.support.v1.SupportService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: crate::reactions::subscriptions,
    from_other_regions: || Ok(Vec::new()),
    publishes: Some(|| Arc::new(crate::integration::SupportEvents)),
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
        env = "AFTERSALES_SUPPORT_LISTEN",
        default_value = "127.0.0.1:50056"
    )]
    pub listen: SocketAddr,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9106"
    )]
    pub metrics_listen: Option<SocketAddr>,
    /// How often the sweep looks for SLA warnings and breaches due and for
    /// cases waiting for an agent: the precision of the SLA timers.
    #[arg(long, env = "AFTERSALES_SLA_SWEEP_MILLIS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub sla_sweep_millis: u64,
    /// The customer-facing site (the gateway) that survey links point at.
    #[arg(
        long,
        env = "AFTERSALES_SITE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub site_url: String,
}

impl Default for Config {
    /// Every flag at its default.
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

/// Between passes while alarms are backed up.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Clocks on repairs one sweep records at most.
const DEADLINES_PER_SWEEP: u32 = 500;

/// Records what falls due every `every` until shutdown: cases' SLA warnings
/// and breaches, and repairs' clocks run out.
async fn sweep(
    app: Support,
    reactions: crate::reactions::SupportReactions,
    region: String,
    every: Duration,
    mut shutdown: Shutdown,
) {
    // A pass that found a full batch due is followed at once by the next: a
    // burst of alarms falling due together is drained, not spread over many
    // intervals.
    let mut busy = false;
    loop {
        if !busy {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.requested() => return,
            }
        } else if shutdown.is_requested() {
            return;
        }
        let ctx = CommandContext::system("system:sla-sweep", region.clone(), app.now());
        let swept = match app.sweep(&ctx).await {
            Ok(swept) => swept,
            Err(error) => {
                tracing::warn!(%error, "the SLA sweep failed; retrying");
                crate::app::Swept {
                    changed: 0,
                    full: false,
                }
            }
        };
        if swept.changed > 0 {
            tracing::debug!(changed = swept.changed, "support cases swept");
        }
        let missed = match reactions
            .sweep_deadlines(app.now(), DEADLINES_PER_SWEEP)
            .await
        {
            Ok(missed) => missed,
            Err(error) => {
                tracing::warn!(?error, "the repair clocks' sweep failed; retrying");
                0
            }
        };
        if missed > 0 {
            tracing::info!(missed, "repair clocks run out: cases opened");
        }
        busy = swept.full || missed >= usize::try_from(DEADLINES_PER_SWEEP).unwrap_or(usize::MAX);
        if busy {
            // Again soon, but not in a spin: the read model may lag behind
            // what this pass recorded.
            tokio::time::sleep(BUSY_PAUSE).await;
        }
    }
}

/// How often each replica looks for changed articles to index.
const INDEX_REFRESH: Duration = Duration::from_secs(2);

/// Keeps the knowledge-base index in step with the articles until shutdown.
async fn index(knowledge: crate::knowledge::KnowledgeBase, mut shutdown: Shutdown) {
    loop {
        match knowledge.refresh().await {
            Ok(false) => {}
            Ok(true) => tracing::info!(articles = knowledge.indexed(), "knowledge base indexed"),
            Err(error) => tracing::warn!(%error, "indexing the knowledge base failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(INDEX_REFRESH) => {}
            () = shutdown.requested() => return,
        }
    }
}

/// Starts everything and returns once the gRPC port is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let common = &config.common;
    let store = SERVICE.open(common).await?;
    let surveys = crate::surveys::Surveys::open(store.clone(), &config.site_url).await?;
    let app = Support::builtin(store.clone(), surveys, common.clock.clone())
        .map_err(StartError::Config)?;
    let requests = Requests::new(common.region.clone(), common.clock.clone())
        .with_live_stream_cap(common.max_live_streams);
    let region = common.region.clone();
    let every = Duration::from_millis(config.sla_sweep_millis);
    let knowledge = crate::knowledge::KnowledgeBase::new(store.clone());
    let builtin = crate::knowledge::builtin().map_err(StartError::Config)?;
    let seeding = CommandContext::system("system:knowledge-seed", common.region.clone(), app.now());
    let seeded = knowledge.seed(builtin, &seeding).await?;
    if seeded > 0 {
        tracing::info!(seeded, "built-in knowledge-base articles published");
    }
    let selfhelp = crate::selfhelp::SelfHelp::builtin(store.clone()).map_err(StartError::Config)?;
    let sweeper = app.clone();
    let reactions =
        crate::reactions::SupportReactions::new(store.clone(), app.clone(), common.region.clone());
    let assembly = Assembly::new(
        SupportServiceServer::new(SupportApi::new(app, knowledge.clone(), selfhelp, requests))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .consumer(reactions.clone())
    .privacy(crate::privacy::SupportRecords::new(sweeper.clone()))
    .task(move |shutdown| sweep(sweeper, reactions, region, every, shutdown))
    .task(move |shutdown| index(knowledge, shutdown));
    let listen = Listen {
        grpc: config.listen,
        metrics: config.metrics_listen,
    };
    aftersales_runtime::service::run(&SERVICE, common, listen, store, assembly).await
}
