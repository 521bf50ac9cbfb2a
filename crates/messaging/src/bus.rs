//! A service on NATS in a few calls: connect, provision its own stream, relay its
//! log, and consume other services' events. What every service binary does with
//! `NATS_URL` set.

use std::sync::Arc;

use aftersales_eventstore::EventStore;
use async_nats::jetstream;

use crate::consumer::{Handler, Subscription};
use crate::dlq::DeadLetters;
use crate::error::MessagingError;
use crate::jetstream::{ConsumerSettings, JetStreamConsumer};
use crate::names::Names;
use crate::provision::{
    StreamSettings, connect_trusting, ensure_replica_stream, ensure_service_stream,
};
use crate::relay::{Relay, RelaySettings, Translate};
use aftersales_core::Shutdown;

/// How often a replica's lag and contact age are read.
const REPLICA_WATCH: std::time::Duration = std::time::Duration::from_secs(10);

/// One service's connection to JetStream, with its own stream provisioned.
#[derive(Debug, Clone)]
pub struct Bus {
    js: jetstream::Context,
    names: Names,
    service: String,
    streams: StreamSettings,
}

impl Bus {
    /// Connects as `service` (over TLS for `tls://`, trusting `ca` too) and
    /// creates or updates its stream.
    pub async fn connect(
        url: &str,
        ca: Option<&std::path::Path>,
        region: &str,
        service: &str,
        streams: StreamSettings,
    ) -> Result<Self, MessagingError> {
        let names = Names::new(region.to_owned())?;
        let js = connect_trusting(url, service, ca).await?;
        ensure_service_stream(&js, &names, service, &streams).await?;
        Ok(Self {
            js,
            names,
            service: service.to_owned(),
            streams,
        })
    }

    /// The relay of this service's log, publishing what `translate` makes of it.
    pub fn relay<S: EventStore>(
        &self,
        store: S,
        translate: Arc<dyn Translate>,
    ) -> Result<Relay<S>, MessagingError> {
        Ok(Relay::new(
            store,
            self.js.clone(),
            self.names.clone(),
            self.service.clone(),
            RelaySettings::default(),
            &self.streams,
        )?
        .with_translation(translate))
    }

    /// A durable consumer of another service's events.
    pub fn consumer<S: EventStore, H: Handler>(
        &self,
        subscription: Subscription,
        store: S,
        handler: Arc<H>,
    ) -> Result<JetStreamConsumer<S, H>, MessagingError> {
        Ok(JetStreamConsumer::new(
            self.js.clone(),
            self.names.clone(),
            subscription,
            store,
            handler,
            ConsumerSettings::default(),
        )?)
    }

    /// This service's signed chain heads, their stream provisioned.
    pub async fn heads(&self) -> Result<crate::heads::Heads, MessagingError> {
        crate::heads::Heads::provision(
            self.js.clone(),
            self.names.clone(),
            &self.service,
            &self.streams,
        )
        .await
    }

    /// The region's dead letters, to list and replay.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters::new(self.js.clone(), self.names.clone())
    }

    /// Reports this region's replica of `source`'s `service` stream as metrics
    /// until `shutdown` ([`crate::provision::watch_replica`]).
    pub async fn watch_replica(&self, source: Names, service: String, shutdown: Shutdown) {
        crate::provision::watch_replica(
            self.js.clone(),
            self.names.clone(),
            source,
            service,
            REPLICA_WATCH,
            shutdown,
        )
        .await;
    }

    /// Runs `consumer` until `shutdown`. The source's stream is its service's to
    /// create: until it exists the consumer keeps retrying. Another region's
    /// replica is this region's to create, and is created here.
    pub async fn consume<S: EventStore, H: Handler>(
        &self,
        consumer: &JetStreamConsumer<S, H>,
        shutdown: Shutdown,
    ) {
        if let Some(origin) = &consumer.subscription().region {
            let source = &consumer.subscription().source;
            if let Err(error) =
                ensure_replica_stream(&self.js, &self.names, origin, source, &self.streams).await
            {
                tracing::warn!(%error, region = origin.region(), "the replica is not provisioned yet; the consumer retries");
            }
        }
        if let Err(error) = consumer.provision(&self.streams).await {
            tracing::warn!(%error, "source events not provisioned yet; the consumer retries");
        }
        consumer.run(shutdown).await;
    }
}
