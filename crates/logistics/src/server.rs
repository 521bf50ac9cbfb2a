//! The logistics service as a running process: gRPC, the carrier webhook, the
//! read models, the stall sweep, and (with NATS) the relay and the consumer of
//! repair's events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_eventstore::CommandContext;
use aftersales_proto::logistics::logistics_service_server::LogisticsServiceServer;
use aftersales_runtime::config::{Common, secret};
use aftersales_runtime::request::Requests;
use aftersales_runtime::service::{Assembly, Description, Endpoint, Listen};
pub use aftersales_runtime::service::{Running, StartError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::LogisticsApi;
use crate::app::{Logistics, builtin_carriers};
use crate::domain::depots::Depots;
use crate::webhook::WebhookSettings;

/// The logistics service, as its binary, `aftersales up` and operators see it.
pub static SERVICE: Description = Description {
    name: "logistics",
    grpc_services: &["aftersales.logistics.v1.LogisticsService"],
    migrations: &crate::projections::MIGRATIONS,
    projections: crate::projections::all,
    subscriptions: crate::reactions::subscriptions,
    from_other_regions: || Ok(Vec::new()),
    publishes: Some(|| Arc::new(crate::integration::LogisticsEvents)),
};

/// The name of the carrier webhook's endpoint in [`Running::endpoint`].
pub const WEBHOOK: &str = "webhook";

/// How the service runs; flags and environment variables (see `main.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// What every service binary shares.
    #[command(flatten)]
    pub common: Common,
    /// gRPC address to listen on.
    #[arg(
        long,
        env = "AFTERSALES_LOGISTICS_LISTEN",
        default_value = "127.0.0.1:50053"
    )]
    pub listen: SocketAddr,
    /// The carrier webhook's HTTP address; it runs only with a webhook secret.
    #[arg(
        long,
        env = "AFTERSALES_WEBHOOK_LISTEN",
        default_value = "127.0.0.1:8053"
    )]
    pub webhook_listen: SocketAddr,
    /// Each carrier's webhook signing secret, `carrier=secret` comma-separated
    /// (at least 16 bytes each). A carrier named twice has two secrets at once,
    /// to rotate: the new one added, the carrier moved over, the old one
    /// removed. Unset: no webhook; scans come by gRPC only.
    #[arg(long, env = "AFTERSALES_WEBHOOK_SECRETS", value_parser = secret, hide_env_values = true)]
    pub webhook_secrets: Option<SecretString>,
    /// How far a webhook signature's timestamp may be from now.
    #[arg(
        long,
        env = "AFTERSALES_WEBHOOK_REPLAY_WINDOW_SECONDS",
        default_value_t = 300
    )]
    pub webhook_replay_window_seconds: u64,
    /// A live shipment with no scan for this long is reported stalled.
    #[arg(long, env = "AFTERSALES_STALL_AFTER_SECONDS", default_value_t = 72 * 3600)]
    pub stall_after_seconds: u64,
    /// How often to look for stalled shipments.
    #[arg(long, env = "AFTERSALES_STALL_CHECK_SECONDS", default_value_t = 60)]
    pub stall_check_seconds: u64,
    /// Plays this sandbox script on every new sandbox parcel, so parcels move on
    /// their own (`delivered`, `exception_then_delivered`, `returned`, `lost`).
    /// Unset: scans come from carriers, or `PlaySandboxScript`.
    #[arg(long, env = "AFTERSALES_SANDBOX_AUTOPLAY")]
    pub sandbox_autoplay: Option<String>,
    /// Milliseconds between the scans of an autoplayed script.
    #[arg(long, env = "AFTERSALES_SANDBOX_STEP_MILLIS", default_value_t = 2000)]
    pub sandbox_step_millis: u32,
    /// Digits in a sandbox tracking number (1 to 18).
    #[arg(long, env = "AFTERSALES_SANDBOX_TRACKING_DIGITS", default_value_t = 12)]
    pub sandbox_tracking_digits: u32,
    /// Prometheus metrics on `http://<address>/metrics`.
    #[arg(
        long,
        env = "AFTERSALES_METRICS_LISTEN",
        default_value = "127.0.0.1:9103"
    )]
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for Config {
    /// Every flag at its default.
    fn default() -> Self {
        aftersales_runtime::config::defaults()
    }
}

fn webhook_settings(config: &Config) -> Result<Option<WebhookSettings>, StartError> {
    const VARIABLE: &str = "AFTERSALES_WEBHOOK_SECRETS";
    let Some(secrets) = &config.webhook_secrets else {
        return Ok(None);
    };
    let refuse = |why: String| StartError::Config(format!("{VARIABLE}: {why}"));
    let mut by_carrier: std::collections::BTreeMap<String, Vec<Vec<u8>>> = Default::default();
    for entry in secrets.expose_secret().split(',').map(str::trim) {
        let Some((carrier, secret)) = entry.split_once('=') else {
            return Err(refuse("each entry is carrier=secret".into()));
        };
        aftersales_core::types::CenterId::parse("carrier", carrier)
            .map_err(|_| refuse(format!("{carrier:?} is not a carrier name")))?;
        aftersales_runtime::config::refuse_placeholder(VARIABLE, secret)
            .map_err(StartError::Config)?;
        if secret.len() < 16 {
            return Err(refuse(format!(
                "{carrier}'s secret must be at least 16 bytes"
            )));
        }
        let active = by_carrier.entry(carrier.to_owned()).or_default();
        active.push(secret.as_bytes().to_vec());
        if active.len() > 2 {
            return Err(refuse(format!(
                "{carrier} has more than two secrets (two at once, to rotate)"
            )));
        }
    }
    if config.webhook_replay_window_seconds == 0 {
        return Err(StartError::Config(
            "AFTERSALES_WEBHOOK_REPLAY_WINDOW_SECONDS must be at least 1".into(),
        ));
    }
    Ok(Some(WebhookSettings {
        secrets: by_carrier,
        replay_window: Duration::from_secs(config.webhook_replay_window_seconds),
    }))
}

/// Reports stalled shipments every `every` until shutdown.
async fn sweep(
    app: Logistics,
    region: String,
    silent_for: chrono::Duration,
    every: Duration,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.requested() => return,
        }
        let ctx = CommandContext::system("system:stall-sweep", region.clone(), app.now());
        match app.sweep_stalled(silent_for, &ctx).await {
            Ok(0) => {}
            Ok(raised) => tracing::warn!(raised, "shipments reported stalled"),
            Err(error) => tracing::warn!(%error, "stall sweep failed; retrying"),
        }
    }
}

/// Starts everything and returns once the gRPC port is bound.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let webhook = webhook_settings(&config)?;
    if config.stall_after_seconds == 0 || config.stall_check_seconds == 0 {
        return Err(StartError::Config(
            "stall-after and stall-check seconds must be at least 1".into(),
        ));
    }
    let silent_for = chrono::Duration::seconds(
        i64::try_from(config.stall_after_seconds)
            .map_err(|_| StartError::Config("stall-after seconds out of range".into()))?,
    );
    if let Some(script) = &config.sandbox_autoplay
        && crate::carrier::sandbox::script(script).is_none()
    {
        return Err(StartError::Config(format!(
            "AFTERSALES_SANDBOX_AUTOPLAY: {script:?} is not one of {}",
            crate::carrier::sandbox::SCRIPTS.join(", ")
        )));
    }
    let carriers = builtin_carriers(config.sandbox_tracking_digits).map_err(StartError::Config)?;
    let depots = Depots::builtin().map_err(StartError::Config)?;
    let common = &config.common;
    let store = SERVICE.open(common).await?;
    let app = Logistics::new(store.clone(), carriers, depots, common.clock.clone());
    let requests = Requests::new(common.region.clone(), common.clock.clone())
        .with_live_stream_cap(common.max_live_streams);
    let mut assembly = Assembly::new(
        LogisticsServiceServer::new(LogisticsApi::new(app.clone(), requests))
            .max_decoding_message_size(aftersales_runtime::grpc::MAX_REQUEST_BYTES),
    )
    .consumer(crate::reactions::RepairReactions::new(
        app.clone(),
        common.region.clone(),
    ))
    .privacy(crate::privacy::LogisticsRecords::new(app.clone()));
    match webhook {
        Some(settings) => {
            let (listener, addr) = aftersales_runtime::service::bind_http(config.webhook_listen)
                .await
                .map_err(|e| StartError::Config(format!("webhook: {e}")))?;
            let router = crate::webhook::router(app.clone(), settings, common.region.clone());
            assembly = assembly
                .endpoint(Endpoint {
                    name: WEBHOOK,
                    addr,
                    banner: format!(
                        "carrier webhook on http://{addr}/v1/carriers/{{carrier}}/events"
                    ),
                })
                .task(move |shutdown| async move {
                    let stopped = shutdown.stopped();
                    aftersales_runtime::service::serve_http(
                        listener,
                        router,
                        stopped,
                        "carrier webhook",
                    )
                    .await;
                });
        }
        None => tracing::info!("no AFTERSALES_WEBHOOK_SECRETS: the carrier webhook is off"),
    }
    if let Some(script) = &config.sandbox_autoplay {
        // Scripts cut short by a crash go on; the read model first takes in the
        // whole log so no live parcel is missed.
        let directory = crate::projections::ShipmentDirectory::new(store.clone());
        aftersales_eventstore::projection::catch_up(&store, &directory, |_| {}).await?;
        let ctx = CommandContext::system(
            format!("carrier:{}", crate::carrier::sandbox::NAME),
            common.region.clone(),
            app.now(),
        );
        let resumed = app
            .resume_sandbox(script, config.sandbox_step_millis, &ctx)
            .await
            .map_err(|e| StartError::Config(format!("resuming sandbox parcels: {e}")))?;
        if resumed > 0 {
            tracing::info!(resumed, "sandbox parcels resumed");
        }
        let autoplay = crate::projections::SandboxAutoplay::new(
            app.clone(),
            script.clone(),
            config.sandbox_step_millis,
        );
        let log = store.clone();
        assembly = assembly.task(move |shutdown| async move {
            aftersales_eventstore::projection::run(
                &log,
                &autoplay,
                Duration::from_millis(200),
                shutdown.stopped(),
            )
            .await;
        });
    }
    let region = common.region.clone();
    let every = Duration::from_secs(config.stall_check_seconds);
    let assembly = assembly.task(move |shutdown| sweep(app, region, silent_for, every, shutdown));
    let listen = Listen {
        grpc: config.listen,
        metrics: config.metrics_listen,
    };
    aftersales_runtime::service::run(&SERVICE, common, listen, store, assembly).await
}
