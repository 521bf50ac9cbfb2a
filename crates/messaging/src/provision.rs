//! Creating or updating the region's JetStream streams at start-up, idempotently.
//!
//! Durability: a stream acknowledges a publish once the message is written, but the
//! server only fsyncs its files every `sync_interval` (two minutes by default). An
//! acknowledged message can then be lost if a machine loses power, even with
//! replicas, if they fail together. Our server configurations set
//! `jetstream { sync_interval: always }` (see `deploy/nats/`), which fsyncs before
//! every acknowledgement; BENCHMARKS.md shows what it costs. Streams here never use
//! the asynchronous persist mode.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::error::{ConfigError, MessagingError};
use crate::names::Names;

/// How a stream stores messages. The defaults are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// Copies kept in the cluster: 1 on one machine, 3 in production.
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a re-publish. Must be
    /// longer than the relay's longest retry pause.
    pub duplicate_window: Duration,
    /// Messages older than this are removed; `None` keeps them all.
    pub max_age: Option<Duration>,
    /// Oldest messages are removed past this size; `None` for no limit.
    pub max_bytes: Option<i64>,
}

impl StreamSettings {
    /// The defaults, with `replicas` copies.
    pub fn with_replicas(replicas: usize) -> Self {
        Self {
            replicas,
            ..Self::default()
        }
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: None,
            max_bytes: None,
        }
    }
}

impl StreamSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=5).contains(&self.replicas) {
            return Err(ConfigError::new(
                "replicas",
                format!("{} must be between 1 and 5", self.replicas),
            ));
        }
        if self.duplicate_window < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "duplicate_window",
                "must be at least one second",
            ));
        }
        if let Some(max_age) = self.max_age
            && max_age < self.duplicate_window
        {
            return Err(ConfigError::new(
                "max_age",
                "must not be shorter than the duplicate window",
            ));
        }
        Ok(())
    }

    fn config(&self, name: String, subjects: Vec<String>, description: &str) -> stream::Config {
        stream::Config {
            name,
            subjects,
            description: Some(description.to_owned()),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age.unwrap_or(Duration::ZERO),
            max_bytes: self.max_bytes.unwrap_or(-1),
            allow_direct: true,
            persist_mode: Some(stream::PersistenceMode::Default),
            ..Default::default()
        }
    }
}

/// Connects to NATS, naming the connection after the service, as the user the
/// URL names (`nats://user:password@host:4222`, the password URL-safe).
/// Reconnects forever.
pub async fn connect(url: &str, name: &str) -> Result<jetstream::Context, MessagingError> {
    connect_trusting(url, name, None).await
}

/// [`connect`], over TLS for a `tls://` URL, trusting the system's roots and
/// `ca` (a PEM file) if given.
pub async fn connect_trusting(
    url: &str,
    name: &str,
    ca: Option<&std::path::Path>,
) -> Result<jetstream::Context, MessagingError> {
    let address: async_nats::ServerAddr = url.parse().map_err(MessagingError::nats)?;
    let mut options = match (address.username(), address.password()) {
        (Some(user), Some(password)) => {
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        }
        _ => async_nats::ConnectOptions::new(),
    };
    if address.tls_required() {
        options = options.require_tls(true);
        if let Some(ca) = ca {
            options = options.add_root_certificates(ca.to_path_buf());
        }
    }
    let client = options
        .name(name)
        .max_reconnects(None)
        .connect(url)
        .await
        .map_err(MessagingError::nats)?;
    Ok(jetstream::new(client))
}

/// `service`'s event stream: `aftersales.<region>.<service>.>`.
pub async fn ensure_service_stream(
    js: &jetstream::Context,
    names: &Names,
    service: &str,
    settings: &StreamSettings,
) -> Result<stream::Stream, MessagingError> {
    settings.validate()?;
    let config = settings.config(
        names.service_stream(service),
        vec![names.service_subjects(service)],
        &format!("Aftersales {service} events, region {}", names.region()),
    );
    js.create_or_update_stream(config)
        .await
        .map_err(MessagingError::nats)?;
    js.get_stream(names.service_stream(service))
        .await
        .map_err(MessagingError::nats)
}

/// A read-only copy in this region of `service`'s stream in the `source` region,
/// whose JetStream is reached as its own domain over the link between the regions
/// (a leaf node connection). A mirror keeps the origin's sequence numbers, so what
/// it lacks is its lag; it keeps what it holds while the link is down and catches
/// up by itself when the link returns, storing each message once.
pub async fn ensure_replica_stream(
    js: &jetstream::Context,
    names: &Names,
    source: &Names,
    service: &str,
    settings: &StreamSettings,
) -> Result<stream::Stream, MessagingError> {
    settings.validate()?;
    if source == names {
        return Err(ConfigError::new("source", "a region does not replicate itself").into());
    }
    let name = names.replica_stream(source, service);
    let mut config = settings.config(
        name.clone(),
        Vec::new(),
        &format!(
            "Aftersales {service} events of region {}, replicated into region {}",
            source.region(),
            names.region()
        ),
    );
    config.mirror = Some(stream::Source {
        name: source.service_stream(service),
        external: Some(stream::External {
            api_prefix: source.jetstream_api(),
            delivery_prefix: None,
        }),
        ..Default::default()
    });
    js.create_or_update_stream(config)
        .await
        .map_err(MessagingError::nats)?;
    js.get_stream(name).await.map_err(MessagingError::nats)
}

/// How far a replica is behind its origin, as its server last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaState {
    /// Messages the replica holds.
    pub messages: u64,
    /// Messages the origin had that the replica lacked, when they last spoke.
    pub lag: u64,
    /// Since the replica last heard from its origin; `None` when it never has.
    pub since_contact: Option<Duration>,
}

/// The state of this region's replica of `service`'s stream in `source`.
pub async fn replica_state(
    js: &jetstream::Context,
    names: &Names,
    source: &Names,
    service: &str,
) -> Result<ReplicaState, MessagingError> {
    // Fetching the stream reads its info: one request.
    let stream = js
        .get_stream(names.replica_stream(source, service))
        .await
        .map_err(MessagingError::nats)?;
    let info = stream.cached_info();
    let mirror = info.mirror.as_ref();
    Ok(ReplicaState {
        messages: info.state.messages,
        lag: mirror.map_or(0, |m| m.lag),
        since_contact: mirror.and_then(|m| m.active),
    })
}

/// Reports `replica_state` every `every` as the gauges
/// `aftersales_replica_lag_messages` and `aftersales_replica_contact_age_seconds`
/// (labels `region`, the origin, and `service`), until `shutdown`. A replica
/// never in contact reports an age of +Inf.
pub async fn watch_replica(
    js: jetstream::Context,
    names: Names,
    source: Names,
    service: String,
    every: Duration,
    mut shutdown: aftersales_core::Shutdown,
) {
    let labels = [
        ("region", source.region().to_owned()),
        ("service", service.clone()),
    ];
    loop {
        match replica_state(&js, &names, &source, &service).await {
            Ok(state) => {
                #[allow(clippy::cast_precision_loss)] // a gauge
                metrics::gauge!("aftersales_replica_lag_messages", &labels).set(state.lag as f64);
                metrics::gauge!("aftersales_replica_contact_age_seconds", &labels).set(
                    state
                        .since_contact
                        .map_or(f64::INFINITY, |d| d.as_secs_f64()),
                );
            }
            Err(error) => {
                tracing::debug!(%error, region = source.region(), "replica state unavailable");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.requested() => return,
        }
    }
}

/// The region's dead-letter stream, which also carries operator replays.
pub async fn ensure_dead_letter_stream(
    js: &jetstream::Context,
    names: &Names,
    settings: &StreamSettings,
) -> Result<stream::Stream, MessagingError> {
    settings.validate()?;
    let config = settings.config(
        names.dead_letter_stream(),
        names.dead_letter_subjects(),
        &format!(
            "Aftersales dead letters and replays, region {}",
            names.region()
        ),
    );
    js.create_or_update_stream(config)
        .await
        .map_err(MessagingError::nats)?;
    js.get_stream(names.dead_letter_stream())
        .await
        .map_err(MessagingError::nats)
}
