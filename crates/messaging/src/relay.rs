//! The relay: a service's event log is its outbox. The relay follows it from a
//! stored checkpoint, in log order, and publishes every event to the service's
//! JetStream stream, never from inside a request.
//!
//! Publishes are pipelined: up to `max_in_flight` await their acknowledgement at
//! once, new appends are read and published while they wait, and the checkpoint
//! only moves past events whose acknowledgement came back.
//! After a crash or an error the relay starts again from the checkpoint; events it
//! publishes a second time carry the same `Nats-Msg-Id` (the event id) and
//! JetStream drops them as duplicates within the stream's duplicate window.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::{Checkpoint, EventStore, RecordedEvent, StoreError};
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::consumer::RetryPolicy;
use crate::envelope::{JSON, headers_for};
use crate::error::{ConfigError, MessagingError};
use crate::names::{Names, check_token};
use crate::provision::StreamSettings;
use aftersales_core::Shutdown;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Publishes awaiting their acknowledgement at most.
    pub max_in_flight: usize,
    /// Events read from the log at a time.
    pub batch_size: usize,
    /// How often the checkpoint is saved while events flow.
    pub checkpoint_every: Duration,
    /// How often the log is polled for appends from other processes.
    pub poll_interval: Duration,
    pub first_retry_delay: Duration,
    /// The longest pause between retries; must stay well inside the stream's
    /// duplicate window so that a re-publish is still recognised.
    pub max_retry_delay: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            max_in_flight: 512,
            batch_size: 1000,
            checkpoint_every: Duration::from_millis(200),
            poll_interval: Duration::from_millis(50),
            first_retry_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_secs(10),
        }
    }
}

impl RelaySettings {
    pub fn validate(&self, stream: &StreamSettings) -> Result<(), ConfigError> {
        if self.max_in_flight == 0 || self.batch_size == 0 {
            return Err(ConfigError::new(
                "relay",
                "max_in_flight and batch_size must be positive",
            ));
        }
        // A publish whose ack was lost is repeated after at most one retry pause
        // plus the checkpoint interval; the duplicate window must cover both twice.
        let longest = (self.max_retry_delay + self.checkpoint_every) * 2;
        if stream.duplicate_window <= longest {
            return Err(ConfigError::new(
                "duplicate_window",
                format!(
                    "{:?} must be longer than twice the relay's longest retry ({longest:?})",
                    stream.duplicate_window
                ),
            ));
        }
        Ok(())
    }
}

/// The message a relay publishes for a stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub payload: Vec<u8>,
    pub content_type: String,
}

/// Turns stored events into the public messages other services receive.
pub trait Translate: Send + Sync + 'static {
    /// `None` keeps the event private: it is not published, and the relay moves
    /// on. An error stops the relay (retried with backoff) rather than skip an
    /// event: nothing is published out of order or lost.
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String>;
}

/// Publishes every event as stored (JSON).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsStored;

impl Translate for AsStored {
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
        Ok(Some(Outbound {
            payload: event.payload.clone(),
            content_type: JSON.to_owned(),
        }))
    }
}

/// A publish's acknowledgement, pollable in place.
type PendingAck = <PublishAckFuture as IntoFuture>::IntoFuture;

/// Publishes one service's log to JetStream.
pub struct Relay<S> {
    store: S,
    js: jetstream::Context,
    names: Names,
    service: String,
    settings: RelaySettings,
    translate: Arc<dyn Translate>,
}

impl<S> std::fmt::Debug for Relay<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("service", &self.service)
            .field("names", &self.names)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: EventStore> Relay<S> {
    pub fn new(
        store: S,
        js: jetstream::Context,
        names: Names,
        service: impl Into<String>,
        settings: RelaySettings,
        stream: &StreamSettings,
    ) -> Result<Self, ConfigError> {
        let service = service.into();
        check_token("service", &service)?;
        settings.validate(stream)?;
        Ok(Self {
            store,
            js,
            names,
            service,
            settings,
            translate: Arc::new(AsStored),
        })
    }

    /// Publishes what `translate` makes of each event instead of the stored JSON.
    pub fn with_translation(mut self, translate: Arc<dyn Translate>) -> Self {
        self.translate = translate;
        self
    }

    /// The name the relay's checkpoint is stored under.
    pub fn checkpoint_name(&self) -> String {
        format!("relay:{}", self.names.service_stream(&self.service))
    }

    /// Relays until `shutdown`, resuming from the checkpoint after any failure
    /// with backoff. Before it returns, the acknowledged prefix is checkpointed.
    pub async fn run(&self, shutdown: Shutdown) {
        let retry = RetryPolicy {
            max_attempts: u32::MAX,
            first_delay: self.settings.first_retry_delay,
            max_delay: self.settings.max_retry_delay,
        };
        let what = format!("relay of {}", self.service);
        crate::supervise::supervise(shutdown, &what, &retry, |shutdown| {
            self.relay_until_error(shutdown)
        })
        .await;
    }

    async fn relay_until_error(&self, mut shutdown: Shutdown) -> Result<(), MessagingError> {
        let name = self.checkpoint_name();
        let mut acked = self.store.load_checkpoint(&name).await?;
        let mut saved = acked;
        let mut read_from = acked;
        let mut in_flight: VecDeque<(Checkpoint, Option<PendingAck>)> = VecDeque::new();
        let mut last_save = Instant::now();
        // The previous read found nothing new either.
        let mut idle = false;
        let mut wait = aftersales_eventstore::IdleWait::new(self.settings.poll_interval);
        let mut prefetched: Option<JoinHandle<Result<Vec<RecordedEvent>, StoreError>>> = None;
        let result = 'relay: loop {
            if shutdown.is_requested() {
                break Ok(());
            }
            // Registered before the read: an append between the read and the wait
            // still wakes the relay (notify_waiters reaches futures once created).
            let appended = self.store.appended().notified();
            let read = match prefetched.take() {
                Some(next) => match next.await {
                    Ok(read) => read,
                    Err(error) => break Err(MessagingError::Task(error.to_string())),
                },
                None => {
                    self.store
                        .read_log(read_from, self.settings.batch_size)
                        .await
                }
            };
            let batch = match read {
                Ok(batch) => batch,
                Err(error) => break Err(error.into()),
            };
            if batch.is_empty() {
                // Caught up. Publishes still awaiting their acknowledgement (an
                // fsync each on a durable stream) settle while the relay waits, so
                // an append is read and published without waiting for them.
                let mut appended = std::pin::pin!(appended);
                while !in_flight.is_empty() {
                    tokio::select! {
                        () = &mut appended => continue 'relay,
                        settled = settle_one(&mut in_flight, &mut acked) => {
                            if let Err(error) = settled {
                                break 'relay Err(error);
                            }
                        }
                        () = shutdown.requested() => continue 'relay,
                    }
                }
                metrics::gauge!("aftersales_relay_lag_events", "stream" => name.clone()).set(0.0);
                // Saved when idle or due, not on every catch-up, which at a steady
                // trickle is every event.
                if acked != saved && (idle || last_save.elapsed() >= self.settings.checkpoint_every)
                {
                    self.store.save_checkpoint(&name, acked).await?;
                    saved = acked;
                    last_save = Instant::now();
                }
                idle = true;
                tokio::select! {
                    () = appended => {}
                    () = tokio::time::sleep(wait.idle()) => {}
                    () = shutdown.requested() => {}
                }
                continue;
            }
            idle = false;
            wait.busy();
            if let Some(last) = batch.last() {
                read_from = last.checkpoint;
                // Read but not yet acknowledged: how far the stream is behind.
                #[allow(clippy::cast_precision_loss)] // a gauge
                let behind = last.position.saturating_sub(acked.position) as f64;
                metrics::gauge!("aftersales_relay_lag_events", "stream" => name.clone())
                    .set(behind);
            }
            if batch.len() == self.settings.batch_size {
                // More is likely waiting: read it while this batch is published.
                let store = self.store.clone();
                let (from, limit) = (read_from, self.settings.batch_size);
                prefetched = Some(tokio::spawn(
                    async move { store.read_log(from, limit).await },
                ));
            }
            let mut failed = None;
            for event in &batch {
                while in_flight.len() >= self.settings.max_in_flight {
                    if let Err(error) = settle_one(&mut in_flight, &mut acked).await {
                        failed = Some(error);
                        break;
                    }
                }
                if failed.is_some() {
                    break;
                }
                match self.publish(event).await {
                    Ok(ack) => {
                        if ack.is_some() {
                            metrics::counter!("aftersales_relay_published_total", "stream" => name.clone())
                                .increment(1);
                        }
                        in_flight.push_back((event.checkpoint, ack));
                    }
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            if let Some(error) = failed {
                break Err(error);
            }
            if last_save.elapsed() >= self.settings.checkpoint_every && acked != saved {
                self.store.save_checkpoint(&name, acked).await?;
                saved = acked;
                last_save = Instant::now();
            }
        };
        // Whatever else happened, keep what was acknowledged; the rest is published
        // again on the next run and dropped by JetStream as a duplicate.
        if result.is_ok() {
            drain(&mut in_flight, &mut acked).await?;
        }
        if acked != saved {
            self.store.save_checkpoint(&name, acked).await?;
        }
        result
    }

    /// Publishes the event's public form; `None` for a private event.
    async fn publish(&self, event: &RecordedEvent) -> Result<Option<PendingAck>, MessagingError> {
        let outbound = self.translate.translate(event).map_err(|reason| {
            MessagingError::Malformed(format!(
                "cannot translate {} {} for publishing: {reason}",
                event.event_type, event.event_id
            ))
        })?;
        let Some(outbound) = outbound else {
            return Ok(None);
        };
        let subject = self.names.event_subject(&self.service, &event.event_type);
        let message = PublishMessage::build()
            .headers(headers_for(&self.service, event, &outbound.content_type))
            .payload(Bytes::from(outbound.payload))
            .message_id(event.event_id.to_string());
        self.js
            .send_publish(subject, message)
            .await
            .map(|ack| Some(ack.into_future()))
            .map_err(MessagingError::nats)
    }
}

/// Awaits the oldest publish's acknowledgement and moves `acked` past it.
/// Cancel-safe: the entry stays at the front until its acknowledgement came.
async fn settle_one(
    in_flight: &mut VecDeque<(Checkpoint, Option<PendingAck>)>,
    acked: &mut Checkpoint,
) -> Result<(), MessagingError> {
    let Some((checkpoint, ack)) = in_flight.front_mut() else {
        return Ok(());
    };
    if let Some(ack) = ack {
        ack.await.map_err(MessagingError::nats)?;
    }
    *acked = *checkpoint;
    in_flight.pop_front();
    Ok(())
}

async fn drain(
    in_flight: &mut VecDeque<(Checkpoint, Option<PendingAck>)>,
    acked: &mut Checkpoint,
) -> Result<(), MessagingError> {
    while !in_flight.is_empty() {
        settle_one(in_flight, acked).await?;
    }
    Ok(())
}
