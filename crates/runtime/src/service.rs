//! A service as data, started one way everywhere.
//!
//! A service crate says what it is once, in a [`Description`] (its name, gRPC
//! services, migrations, projections, subscriptions and public events), and what
//! it runs once configured, in an [`Assembly`] (its gRPC handlers, the handlers of
//! its subscriptions, its background tasks). [`run`] does the rest for every
//! service alike: gRPC with health and reflection, metrics, the read models, and
//! with NATS the relay of its log and a durable consumer per subscription. Its
//! binary ([`main`]), `aftersales up` ([`Embedded`]) and `aftersales projections
//! rebuild` all start from the same description.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aftersales_core::{Shutdown, ShutdownTrigger};
use aftersales_eventstore::{AnyEventStore, EventStore as _, Projections, StoreError, projection};
use aftersales_messaging::{
    AnyHandler, Bus, ConfigError, Handler, LogConsumer, LogConsumerSettings, MessagingError,
    Reaction, StreamSettings, Subscription, Translate,
};

use secrecy::ExposeSecret as _;

use crate::config::Common;
use crate::grpc::{Grpc, ServeError, bind};
use crate::operations;

/// What a service is, independent of how it is configured.
#[derive(Debug)]
pub struct Description {
    /// Its name: database file, JetStream stream, logs, e.g. `repair`.
    pub name: &'static str,
    /// The gRPC services it serves, fully qualified (reported by health).
    pub grpc_services: &'static [&'static str],
    /// Its read models' tables, next to the event store's.
    pub migrations: &'static sqlx::migrate::Migrator,
    /// Every read model of its log: what it runs and an operator rebuilds.
    pub projections: fn(&AnyEventStore) -> Projections,
    /// The other services' events it consumes.
    pub subscriptions: fn() -> Result<Vec<Subscription>, ConfigError>,
    /// Events it consumes from every other region of the directory, each read
    /// from that region's replica here (on NATS only; one region has none).
    pub from_other_regions: fn() -> Result<Vec<Subscription>, ConfigError>,
    /// Its public events: what its relay publishes (and embedded consumers
    /// receive) instead of the stored JSON. `None`: nothing of its log leaves it.
    pub publishes: Option<fn() -> Arc<dyn Translate>>,
}

impl Description {
    /// Its subscriptions to other regions' events in region `here`: one per
    /// other region of the directory, named `<consumer>-<region>`, reading that
    /// region's replica here.
    pub fn other_region_subscriptions(
        &self,
        regions: &crate::regions::Regions,
        here: &str,
    ) -> Result<Vec<Subscription>, ConfigError> {
        let subscriptions = (self.from_other_regions)()?;
        let mut expanded = Vec::new();
        for region in regions.others(here) {
            let origin = aftersales_messaging::Names::new(region.name.clone())?;
            for subscription in &subscriptions {
                let consumer = format!("{}-{}", subscription.consumer, region.name);
                aftersales_messaging::names::check_token("consumer", &consumer)?;
                expanded.push(
                    Subscription {
                        consumer,
                        ..subscription.clone()
                    }
                    .from_region(origin.clone()),
                );
            }
        }
        Ok(expanded)
    }

    /// Opens the service's store (`DATABASE_URL`, or its own SQLite file) with
    /// the region's keyring and brings its read-model tables up to date; first
    /// refuses a configuration whose secrets are still placeholders, or whose
    /// region directory does not hold.
    pub async fn open(&self, common: &Common) -> Result<AnyEventStore, StartError> {
        common.refuse_placeholders().map_err(StartError::Config)?;
        common.regions().map_err(StartError::Config)?;
        let keyring = common
            .keyring(self.name)
            .await
            .map_err(StartError::Config)?;
        if let Some(owner) = &common.database_owner_url {
            return Ok(AnyEventStore::connect_as_service(
                common.database_url(self.name).expose_secret(),
                owner.expose_secret(),
                self.migrations,
            )
            .await?
            .with_keyring(keyring, self.name));
        }
        let store = common.open_store(self.name).await?;
        self.migrate(&store).await?;
        Ok(store.with_keyring(keyring, self.name))
    }

    pub async fn migrate(&self, store: &AnyEventStore) -> Result<(), StoreError> {
        store.run_migrations(self.migrations).await
    }

    /// The durable names of its consumers.
    pub fn consumers(&self) -> Result<Vec<String>, ConfigError> {
        Ok((self.subscriptions)()?
            .into_iter()
            .map(|s| s.consumer)
            .collect())
    }
}

/// A background task, given the service's shutdown.
type Task = Box<dyn FnOnce(Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// What a configured service runs beside the shared parts.
pub struct Assembly {
    routes: tonic::service::Routes,
    handler: Option<AnyHandler>,
    tasks: Vec<Task>,
    endpoints: Vec<Endpoint>,
    notary: crate::notary::Notary,
    privacy: Option<Arc<dyn crate::privacy::CustomerRecords>>,
}

/// Another address a service serves on (a webhook, say), and its banner line.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub banner: String,
}

impl std::fmt::Debug for Assembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembly")
            .field("tasks", &self.tasks.len())
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Assembly {
    /// Serving `grpc` (one of the description's gRPC services).
    pub fn new<S>(grpc: S) -> Self
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        Self {
            routes: tonic::service::Routes::new(grpc),
            handler: None,
            tasks: Vec::new(),
            endpoints: Vec::new(),
            notary: crate::notary::Notary::default(),
            privacy: None,
        }
    }

    /// What the service holds about customers: exported and erased through
    /// `aftersales.privacy.v1.Privacy`, deferred erasures swept.
    #[must_use]
    pub fn privacy(mut self, records: impl crate::privacy::CustomerRecords) -> Self {
        self.privacy = Some(Arc::new(records));
        self
    }

    /// `handler` applies the events of every subscription of the description.
    #[must_use]
    pub fn consumer(mut self, handler: impl Handler) -> Self {
        self.handler = Some(AnyHandler::new(handler));
        self
    }

    /// A loop that runs until the service stops.
    #[must_use]
    pub fn task<F>(mut self, task: impl FnOnce(Shutdown) -> F + Send + 'static) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .push(Box::new(move |shutdown| Box::pin(task(shutdown))));
        self
    }

    /// The service's API checks histories against the heads `notary` reads.
    #[must_use]
    pub fn notary(mut self, notary: crate::notary::Notary) -> Self {
        self.notary = notary;
        self
    }

    #[must_use]
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoints.push(endpoint);
        self
    }
}

/// Binds an HTTP endpoint's listener; its address (the port chosen, for `:0`).
pub async fn bind_http(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves `router` on `listener` until `stopped`, as a service's HTTP endpoint
/// (a webhook); `what` names it in the log should it stop on an error.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stopped: impl Future<Output = ()> + Send + 'static,
    what: &'static str,
) {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|stream| {
        // Small answers go out at once.
        let _ = stream.set_nodelay(true);
    });
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(%error, what, "an HTTP endpoint stopped");
    }
}

/// Where a service listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub grpc: SocketAddr,
    /// Prometheus `/metrics`; `None` serves none.
    pub metrics: Option<SocketAddr>,
}

/// Why a service did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("DATABASE_URL: {0}")]
    Store(#[from] StoreError),
    #[error("NATS: {0}")]
    Messaging(#[from] MessagingError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
    #[error("{}", .0.chain())]
    App(#[from] aftersales_core::Error),
}

impl From<ConfigError> for StartError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error.to_string())
    }
}

/// A started service.
pub struct Running {
    pub name: &'static str,
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    pub store: AnyEventStore,
    pub endpoints: Vec<Endpoint>,
    reactions: Vec<Reaction>,
    publishes: Option<Arc<dyn Translate>>,
    operations: operations::Service,
    background: Background,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The address of the endpoint `name`, when it runs.
    pub fn endpoint(&self, name: &str) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.addr)
    }

    /// What to print once started, first line `<name> gRPC on <address>`.
    pub fn banner(&self) -> Vec<String> {
        std::iter::once(format!("{} gRPC on {}", self.name, self.addr))
            .chain(self.endpoints.iter().map(|e| e.banner.clone()))
            .chain(
                self.metrics_addr
                    .map(|addr| format!("{} metrics on http://{addr}/metrics", self.name)),
            )
            .collect()
    }

    /// Stops as on SIGTERM, and waits until everything has.
    pub async fn stop(self) -> Result<(), StartError> {
        self.background.stop().await
    }
}

/// Runs `assembly` and everything every service runs, on `store` (opened by
/// [`Description::open`]); returns once the gRPC port is bound.
pub async fn run(
    description: &'static Description,
    common: &Common,
    listen: Listen,
    store: AnyEventStore,
    assembly: Assembly,
) -> Result<Running, StartError> {
    let Assembly {
        routes,
        handler,
        tasks,
        endpoints,
        notary,
        privacy,
    } = assembly;
    let reactions = reactions(description, handler.clone())?;
    let publishes = description.publishes.map(|publishes| publishes());
    let authorization = common.authorization().map_err(StartError::Config)?;
    if let Some(verifier) = authorization.verifier().cloned() {
        // The issuer's keys, before the first call needs them; a failure here is
        // retried on first use.
        tokio::spawn(async move {
            if let Err(error) = verifier.prefetch().await {
                tracing::warn!(%error, "the identity provider's keys are not fetched yet");
            }
        });
    }
    let (listener, addr) = bind(listen.grpc).await?;
    let tls = common.server_tls().map_err(StartError::Config)?;
    let projections = (description.projections)(&store);
    let operations = operations::Service::new(
        description.name,
        store.clone(),
        projections.iter().map(|p| p.name()).collect(),
    );
    let privacy = privacy.map(|records| {
        crate::privacy::Service::new(
            description.name,
            store.clone(),
            records,
            &common.region,
            common.clock.clone(),
        )
    });
    let served: Vec<_> = description
        .grpc_services
        .iter()
        .copied()
        .chain([operations::SERVICE_NAME])
        .chain(privacy.as_ref().map(|_| crate::privacy::SERVICE_NAME))
        .collect();
    let mut routes = routes.add_service(operations.server());
    if let Some(privacy) = &privacy {
        routes = routes.add_service(privacy.server());
    }
    let limits = crate::grpc::Limits::of(common);
    let (grpc, router) = Grpc::new(&served, routes, authorization, tls, limits).await?;
    let (trigger, shutdown) = Shutdown::new();
    let metrics_addr = crate::metrics::serve_if(listen.metrics, shutdown.stopped())
        .await
        .map_err(StartError::Config)?;
    let messaging = match common.nats_url() {
        Some(url) => {
            let bus = bus(description, common, url).await?;
            let relay = publishes
                .clone()
                .map(|translate| bus.relay(store.clone(), translate))
                .transpose()?;
            if let Some(relay) = &relay {
                operations.relaying(relay.checkpoint_name());
            }
            let consumers = reactions
                .iter()
                .chain(&replica_reactions(description, common, handler.as_ref())?)
                .map(|r| {
                    bus.consumer(
                        r.subscription.clone(),
                        store.clone(),
                        Arc::new(r.handler.clone()),
                    )
                    .map(Arc::new)
                })
                .collect::<Result<Vec<_>, _>>()?;
            operations.consuming(operations::Consumers::Nats {
                consumers: consumers.clone(),
                dead_letters: Box::new(bus.dead_letters()),
            });
            let key = aftersales_auth::issuer::SigningKey::load_or_create(
                common.notary_key_file.as_deref(),
                "chain heads (AFTERSALES_NOTARY_KEY_FILE)",
            )
            .map(Arc::new)
            .map_err(|e| StartError::Config(format!("AFTERSALES_NOTARY_KEY_FILE: {e}")))?;
            let heads = bus.heads().await?;
            notary.attach(
                heads.clone(),
                Arc::clone(&key),
                common.notary_key_file.is_some(),
            );
            Some((bus, relay, consumers, (heads, key)))
        }
        None => None,
    };
    let drain = Duration::from_secs(common.drain_grace_seconds);
    let mut tasks: Vec<_> = tasks.into_iter().map(|t| t(shutdown.clone())).collect();
    if let Some(privacy) = privacy {
        tasks.push(Box::pin(privacy.sweeping(
            common.region.clone(),
            Duration::from_secs(common.erasure_sweep_seconds),
            shutdown.clone(),
        )));
    }
    tasks.push(Box::pin(compacting(
        store.clone(),
        common.clone(),
        shutdown.clone(),
    )));
    let background_store = store.clone();
    let background = Background::spawn(trigger, async move {
        let projecting =
            projection::run_all(&background_store, &projections, PROJECTION_POLL, || {
                shutdown.stopped()
            });
        let events = async {
            if let Some((bus, relay, consumers, (heads, key))) = &messaging {
                let relaying = async {
                    if let Some(relay) = relay {
                        relay.run(shutdown.clone()).await;
                    }
                };
                let consuming = futures::future::join_all(
                    consumers.iter().map(|c| bus.consume(c, shutdown.clone())),
                );
                // Each replica read here, once, however many consumers read it.
                let mut replicas: Vec<_> = consumers
                    .iter()
                    .filter_map(|c| {
                        let s = c.subscription();
                        s.region.clone().map(|origin| (origin, s.source.clone()))
                    })
                    .collect();
                replicas.sort_by(|a, b| (a.0.region(), &a.1).cmp(&(b.0.region(), &b.1)));
                replicas.dedup();
                let watching =
                    futures::future::join_all(replicas.into_iter().map(|(origin, service)| {
                        bus.watch_replica(origin, service, shutdown.clone())
                    }));
                let notarising = heads.publish_from(
                    background_store.clone(),
                    crate::notary::Notary::seal(Arc::clone(key)),
                    shutdown.clone(),
                );
                tokio::join!(relaying, consuming, watching, notarising);
            }
        };
        let serving = grpc.serve(router, listener, shutdown.stopped(), drain);
        let (served, (), (), _) = tokio::join!(
            serving,
            projecting,
            events,
            futures::future::join_all(tasks)
        );
        served.map_err(StartError::from)
    });
    tracing::info!(%addr, region = %common.region, "{} service listening", description.name);
    Ok(Running {
        name: description.name,
        addr,
        metrics_addr,
        store,
        endpoints,
        reactions,
        publishes,
        operations,
        background,
    })
}

/// What one compaction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compacted {
    pub command_keys: u64,
    pub handled_events: u64,
    pub dead_letters: u64,
}

/// Removes what is past its retention from the store's bookkeeping (never the
/// log): idempotency keys older than `command_key_days`, handled-event records
/// older than `handled_event_days`, dead letters resolved more than
/// `dead_letter_days` ago. Times are the service's clock's.
pub async fn compact(store: &AnyEventStore, common: &Common) -> Result<Compacted, StoreError> {
    let now = common.clock.now();
    let days = |n: u32| chrono::Duration::days(i64::from(n));
    let mut tx = store.begin().await?;
    let command_keys = tx
        .forget_command_keys(now - days(common.command_key_days))
        .await?;
    let (handled_events, dead_letters) = tx
        .forget_handled(
            now - days(common.handled_event_days),
            now - days(common.dead_letter_days),
        )
        .await?;
    tx.commit().await?;
    Ok(Compacted {
        command_keys,
        handled_events,
        dead_letters,
    })
}

/// [`compact`], hourly.
async fn compacting(store: AnyEventStore, common: Common, mut shutdown: Shutdown) {
    loop {
        match compact(&store, &common).await {
            Ok(compacted) if compacted == Compacted::default() => {}
            Ok(compacted) => tracing::info!(?compacted, "past retention, removed"),
            Err(error) => tracing::warn!(%error, "compaction failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            () = shutdown.requested() => return,
        }
    }
}

/// How often read models look for new events.
const PROJECTION_POLL: Duration = Duration::from_millis(100);

/// The description's subscriptions to other regions, each with the assembly's
/// handler.
fn replica_reactions(
    description: &Description,
    common: &Common,
    handler: Option<&AnyHandler>,
) -> Result<Vec<Reaction>, StartError> {
    let Some(handler) = handler else {
        return Ok(Vec::new());
    };
    let regions = common.regions().map_err(StartError::Config)?;
    Ok(description
        .other_region_subscriptions(&regions, &common.region)?
        .into_iter()
        .map(|subscription| Reaction {
            subscription,
            handler: handler.clone(),
        })
        .collect())
}

/// The description's subscriptions, each with the assembly's handler.
fn reactions(
    description: &Description,
    handler: Option<AnyHandler>,
) -> Result<Vec<Reaction>, StartError> {
    let subscriptions = (description.subscriptions)()?;
    if handler.is_none() && !(description.from_other_regions)()?.is_empty() {
        return Err(StartError::Config(format!(
            "{} subscribes to other regions' events but has no consumer",
            description.name
        )));
    }
    match handler {
        Some(handler) => Ok(subscriptions
            .into_iter()
            .map(|subscription| Reaction {
                subscription,
                handler: handler.clone(),
            })
            .collect()),
        None if subscriptions.is_empty() => Ok(Vec::new()),
        None => Err(StartError::Config(format!(
            "{} subscribes to events but has no consumer",
            description.name
        ))),
    }
}

/// Relays the service's log to JetStream and nothing else until `shutdown`: to
/// drain a log while its service is down. It publishes what the service's own
/// relay does, under the same checkpoint.
pub async fn relay(
    description: &Description,
    common: &Common,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let Some(publishes) = description.publishes else {
        return Err(StartError::Config(format!(
            "{}'s events are private: nothing of its log is relayed",
            description.name
        )));
    };
    let (Some(_), Some(url)) = (&common.database_url, common.nats_url()) else {
        return Err(StartError::Config(
            "the relay needs DATABASE_URL and NATS_URL".into(),
        ));
    };
    let store = description.open(common).await?;
    let bus = bus(description, common, url).await?;
    bus.relay(store, publishes())?.run(shutdown).await;
    Ok(())
}

/// The service's connection to JetStream, its stream provisioned.
async fn bus(description: &Description, common: &Common, url: &str) -> Result<Bus, StartError> {
    Ok(Bus::connect(
        url,
        common.tls_ca.as_deref(),
        &common.region,
        description.name,
        StreamSettings::with_replicas(common.stream_replicas),
    )
    .await?)
}

/// Services in one process without a broker: each one's consumers read the
/// producers' logs directly and receive what the producers' relays would publish.
#[derive(Debug)]
pub struct Embedded {
    services: Vec<Running>,
    consumers: Background,
}

impl Embedded {
    /// Connects `services`' subscriptions to their sources among them.
    pub fn start(services: Vec<Running>) -> Result<Self, StartError> {
        let settings = LogConsumerSettings::default();
        let mut consumers = Vec::new();
        for service in &services {
            let mut own = Vec::new();
            for reaction in &service.reactions {
                let source_name = &reaction.subscription.source;
                let source = services
                    .iter()
                    .find(|s| s.name == source_name)
                    .ok_or_else(|| {
                        StartError::Config(format!(
                            "{} consumes {source_name}, which is not running",
                            service.name
                        ))
                    })?;
                let mut consumer = LogConsumer::new(
                    source.store.clone(),
                    service.store.clone(),
                    reaction.subscription.clone(),
                    Arc::new(reaction.handler.clone()),
                    settings.clone(),
                );
                if let Some(translate) = &source.publishes {
                    consumer = consumer.with_translation(Arc::clone(translate));
                }
                own.push(Arc::new(consumer));
            }
            consumers.extend(own.iter().cloned());
            service
                .operations
                .consuming(operations::Consumers::Embedded(own));
        }
        let (trigger, shutdown) = Shutdown::new();
        let consumers = Background::spawn(trigger, async move {
            futures::future::join_all(consumers.iter().map(|c| c.run(shutdown.clone()))).await;
            Ok(())
        });
        Ok(Self {
            services,
            consumers,
        })
    }

    pub fn services(&self) -> &[Running] {
        &self.services
    }

    /// Stops the consumers, then the services, the last started first.
    pub async fn stop(self) -> Result<(), StartError> {
        self.consumers.stop().await?;
        for service in self.services.into_iter().rev() {
            let name = service.name;
            service
                .stop()
                .await
                .map_err(|e| StartError::Config(format!("{name}: {e}")))?;
        }
        Ok(())
    }
}

/// Runs the service `name` until it is told to stop; the process's exit code.
/// Telemetry first, the signal handlers before start-up, the banner printed (its
/// first line is the gRPC address, which tests and scripts read), then serve until
/// SIGTERM or Ctrl-C, stop cleanly and flush spans. Start-up errors are one line
/// and exit 1.
pub async fn main<E, F>(name: &str, region: &str, log_json: bool, start: F) -> ExitCode
where
    E: Display,
    F: Future<Output = Result<Running, E>>,
{
    let telemetry = crate::telemetry::init(name, region, log_json);
    // Installed before start-up: a SIGTERM during it still stops cleanly.
    let terminate = crate::signal::terminate();
    let running = match start.await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("aftersales-{name}: {error}");
            telemetry.shutdown();
            return ExitCode::FAILURE;
        }
    };
    for line in running.banner() {
        println!("{line}");
    }
    terminate.await;
    let stopped = running.stop().await;
    telemetry.shutdown();
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("aftersales-{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Work stopped by one trigger and awaited as one task.
#[derive(Debug)]
struct Background {
    stop: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), StartError>>,
}

/// The background task itself failed: it panicked or was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("server task failed: {0}")]
pub struct TaskFailed(String);

impl Background {
    fn spawn(
        stop: ShutdownTrigger,
        work: impl Future<Output = Result<(), StartError>> + Send + 'static,
    ) -> Self {
        Self {
            stop,
            task: tokio::spawn(work),
        }
    }

    /// Stops as on SIGTERM, and waits until everything has.
    async fn stop(self) -> Result<(), StartError> {
        self.stop.trigger();
        self.task
            .await
            .map_err(|e| StartError::from(TaskFailed(e.to_string())))?
    }
}

#[cfg(test)]
mod compaction_tests {
    use super::*;

    async fn count(store: &AnyEventStore, table: &str) -> i64 {
        let AnyEventStore::Sqlite(s) = store else {
            unreachable!("a SQLite store")
        };
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(s.reader())
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn bookkeeping_past_its_retention_goes_and_the_rest_stays() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let store = AnyEventStore::connect(&url).await.expect("store");
        let clock = aftersales_core::ShiftedClock::new();
        let common = Common {
            clock: clock.shared(),
            ..Common::default()
        };
        let AnyEventStore::Sqlite(s) = &store else {
            unreachable!()
        };
        let at = |days: i64| (clock.now() - chrono::Duration::days(days)).timestamp_micros();
        for (id, days) in [(1, 40), (2, 1)] {
            sqlx::query("INSERT INTO inbox (consumer, event_id, handled_at) VALUES ('c', ?1, ?2)")
                .bind(uuid::Uuid::from_u128(id))
                .bind(at(days))
                .execute(s.writer())
                .await
                .expect("inbox");
        }
        for (resolved, days) in [(Some(at(100)), 120), (Some(at(10)), 120), (None, 400)] {
            sqlx::query(
                "INSERT INTO dead_letters (consumer, source, event_id, event_type, position, \
                 attempts, error, failed_at, resolved_at) \
                 VALUES ('c', 'repair', ?1, 'X', 1, 5, 'e', ?2, ?3)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(at(days))
            .bind(resolved)
            .execute(s.writer())
            .await
            .expect("dead letter");
        }
        let first = compact(&store, &common).await.expect("compacts");
        assert_eq!((first.handled_events, first.dead_letters), (1, 1));
        assert_eq!(count(&store, "inbox").await, 1);
        assert_eq!(count(&store, "dead_letters").await, 2, "open ones stay");

        // A year on, the rest of what was resolved or handled goes too.
        clock.advance(chrono::Duration::days(365));
        let later = compact(&store, &common).await.expect("compacts");
        assert_eq!((later.handled_events, later.dead_letters), (1, 1));
        assert_eq!(count(&store, "dead_letters").await, 1, "the open one");
    }
}
