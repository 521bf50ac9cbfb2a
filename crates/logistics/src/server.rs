//! The logistics service as a running process: gRPC, the carrier webhook, the
//! read models, the stall sweep, and (with NATS) the relay and the consumer of
//! repair's events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::{AnyEventStore, CommandContext};
use aftersales_proto::logistics::logistics_service_server::LogisticsServiceServer;
use aftersales_runtime::config::{Common, secret};
use aftersales_runtime::grpc::{Grpc, bind};
use aftersales_runtime::shutdown::Shutdown;
use secrecy::{ExposeSecret as _, SecretString};

use crate::api::LogisticsApi;
use crate::app::{Logistics, builtin_carriers};
use crate::domain::depots::Depots;
use crate::webhook::WebhookSettings;

pub const GRPC_SERVICE: &str = "aftersales.logistics.v1.LogisticsService";

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
    /// The secret carriers sign webhook requests with (at least 16 bytes). Unset:
    /// no webhook; scans come by gRPC only.
    #[arg(long, env = "AFTERSALES_WEBHOOK_SECRET", value_parser = secret, hide_env_values = true)]
    pub webhook_secret: Option<SecretString>,
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

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Task(#[from] aftersales_runtime::service::TaskFailed),
    #[error("DATABASE_URL: {0}")]
    Store(#[from] aftersales_eventstore::StoreError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Serve(#[from] aftersales_runtime::grpc::ServeError),
    #[error("NATS: {0}")]
    Messaging(#[from] aftersales_messaging::MessagingError),
    #[error("webhook: {0}")]
    Webhook(#[from] std::io::Error),
}

#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the carrier webhook listens, when it runs.
    pub webhook_addr: Option<SocketAddr>,
    pub store: AnyEventStore,
    /// The use cases, for an embedding process that wires its own consumers.
    pub app: Logistics,
    background: aftersales_runtime::service::Background<StartError>,
}

impl Running {
    pub async fn stop(self) -> Result<(), StartError> {
        self.background.stop().await
    }
}

fn webhook_settings(config: &Config) -> Result<Option<WebhookSettings>, StartError> {
    let Some(secret) = &config.webhook_secret else {
        return Ok(None);
    };
    let secret = secret.expose_secret();
    if secret.len() < 16 {
        return Err(StartError::Config(
            "AFTERSALES_WEBHOOK_SECRET must be at least 16 bytes".into(),
        ));
    }
    if config.webhook_replay_window_seconds == 0 {
        return Err(StartError::Config(
            "AFTERSALES_WEBHOOK_REPLAY_WINDOW_SECONDS must be at least 1".into(),
        ));
    }
    Ok(Some(WebhookSettings {
        secret: secret.as_bytes().to_vec(),
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
    let store = config.common.open_store("logistics").await?;
    crate::projections::migrate(&store).await?;
    let app = Logistics::new(store.clone(), carriers, depots, config.common.clock.clone());

    let (listener, addr) = bind(config.listen).await?;
    let webhook = match webhook {
        Some(settings) => {
            let (listener, addr) = crate::webhook::bind(config.webhook_listen).await?;
            let router =
                crate::webhook::router(app.clone(), settings, config.common.region.clone());
            Some((listener, addr, router))
        }
        None => {
            tracing::info!("no AFTERSALES_WEBHOOK_SECRET: the carrier webhook is off");
            None
        }
    };
    let webhook_addr = webhook.as_ref().map(|(_, addr, _)| *addr);
    let (grpc, router) = Grpc::new(&[GRPC_SERVICE]).await?;
    let router = router.add_service(LogisticsServiceServer::new(LogisticsApi::new(
        app.clone(),
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
                "logistics",
                aftersales_messaging::StreamSettings::with_replicas(config.common.stream_replicas),
            )
            .await?;
            let relay = bus.relay(store.clone(), Arc::new(crate::integration::LogisticsEvents))?;
            let consumer = bus.consumer(
                crate::reactions::subscription().map_err(|e| StartError::Config(e.to_string()))?,
                store.clone(),
                Arc::new(crate::reactions::RepairReactions::new(
                    app.clone(),
                    config.common.region.clone(),
                )),
            )?;
            Some((bus, relay, consumer))
        }
        None => None,
    };
    let directory = crate::projections::ShipmentDirectory::new(store.clone());
    if let Some(script) = &config.sandbox_autoplay {
        // Scripts cut short by a crash go on; the read model first takes in the
        // whole log so no live parcel is missed.
        aftersales_eventstore::projection::catch_up(&store, &directory, |_| {}).await?;
        let ctx = CommandContext::system(
            format!("carrier:{}", crate::carrier::sandbox::NAME),
            config.common.region.clone(),
            app.now(),
        );
        let resumed = app
            .resume_sandbox(script, config.sandbox_step_millis, &ctx)
            .await
            .map_err(|e| StartError::Config(format!("resuming sandbox parcels: {e}")))?;
        if resumed > 0 {
            tracing::info!(resumed, "sandbox parcels resumed");
        }
    }
    let autoplay = config.sandbox_autoplay.clone().map(|script| {
        crate::projections::SandboxAutoplay::new(app.clone(), script, config.sandbox_step_millis)
    });
    let background = store.clone();
    let sweeper = sweep(
        app.clone(),
        config.common.region.clone(),
        silent_for,
        Duration::from_secs(config.stall_check_seconds),
        shutdown.clone(),
    );
    let projections = crate::projections::all(&background);
    let background = aftersales_runtime::service::Background::spawn(trigger, async move {
        let projecting = aftersales_eventstore::projection::run_all(
            &background,
            &projections,
            Duration::from_millis(200),
            || shutdown.stopped(),
        );
        let autoplaying = async {
            if let Some(autoplay) = &autoplay {
                aftersales_eventstore::projection::run(
                    &background,
                    autoplay,
                    Duration::from_millis(200),
                    shutdown.stopped(),
                )
                .await;
            }
        };
        let events = async {
            if let Some((bus, relay, consumer)) = &messaging {
                tokio::join!(
                    relay.run(shutdown.clone()),
                    bus.consume(consumer, shutdown.clone())
                );
            }
        };
        let carrier_webhook = async {
            if let Some((listener, _, router)) = webhook
                && let Err(error) = axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown.stopped())
                    .await
            {
                tracing::error!(%error, "carrier webhook stopped");
            }
        };
        let serving = grpc.serve(router, listener, shutdown.stopped(), drain);
        let (served, (), (), (), (), ()) = tokio::join!(
            serving,
            projecting,
            autoplaying,
            events,
            carrier_webhook,
            sweeper
        );
        served.map_err(StartError::from)
    });
    tracing::info!(%addr, ?webhook_addr, "logistics service listening");
    Ok(Running {
        addr,
        metrics_addr,
        webhook_addr,
        store,
        app,
        background,
    })
}

impl aftersales_runtime::service::Running for Running {
    type Error = StartError;

    fn banner(&self) -> Vec<String> {
        let mut lines = vec![format!("logistics gRPC on {}", self.addr)];
        if let Some(webhook) = self.webhook_addr {
            lines.push(format!(
                "carrier webhook on http://{webhook}/v1/carriers/{{carrier}}/events"
            ));
        }
        lines
    }

    async fn stop(self) -> Result<(), StartError> {
        Running::stop(self).await
    }
}
