//! Consuming another service's events from JetStream: a durable, explicit-ack pull
//! consumer filtered to the event types the handler wants, with retries, progress
//! acknowledgements for slow handlers, and a dead-letter stream.
//!
//! Each consumer also reads its replay subject on the dead-letter stream, where an
//! operator puts dead letters back ([`crate::DeadLetters::replay`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::EventStore;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt as _;
use tracing::Instrument as _;

use crate::consumer::{
    AlsoCommit, Applied, Handler, RetryPolicy, Subscription, apply, apply_batch,
};
use crate::envelope::InboundEvent;
use crate::error::{ConfigError, HandlerError, MessagingError};
use crate::names::{Names, header};
use crate::provision::{StreamSettings, ensure_dead_letter_stream};
use crate::trace::{NATS, consumer_span};
use aftersales_core::Shutdown;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    pub retry: RetryPolicy,
    /// How long JetStream waits for an acknowledgement before redelivering. A
    /// handler still at work sends progress acknowledgements well inside it.
    pub ack_wait: Duration,
    /// Delivered but unacknowledged messages at most. All of them are held by
    /// the consumer, which keeps each alive with progress acknowledgements while it
    /// waits its turn, so a slow handler never causes redeliveries of the rest.
    pub max_in_flight: usize,
    /// Events applied in one database transaction at most.
    pub max_batch: usize,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            ack_wait: Duration::from_secs(30),
            max_in_flight: 256,
            max_batch: 64,
        }
    }
}

impl ConsumerSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ack_wait < Duration::from_millis(300) {
            return Err(ConfigError::new("ack_wait", "must be at least 300ms"));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::new("max_batch", "must be positive"));
        }
        if !(1..=10_000).contains(&self.max_in_flight) {
            return Err(ConfigError::new(
                "max_in_flight",
                "must be between 1 and 10000",
            ));
        }
        Ok(())
    }

    fn progress_every(&self) -> Duration {
        self.ack_wait / 3
    }
}

/// Runs a [`Handler`] on a source service's JetStream stream.
#[derive(Debug)]
pub struct JetStreamConsumer<S, H> {
    js: jetstream::Context,
    names: Names,
    subscription: Subscription,
    store: S,
    handler: Arc<H>,
    settings: ConsumerSettings,
}

/// A delivery with what was read from it.
#[derive(Debug)]
struct Delivery {
    message: jetstream::Message,
    attempt: u64,
    sequence: u64,
    event: InboundEvent,
    span: tracing::Span,
}

/// Which of a consumer's two inputs a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Events,
    Replays,
}

impl<S: EventStore, H: Handler> JetStreamConsumer<S, H> {
    pub fn new(
        js: jetstream::Context,
        names: Names,
        subscription: Subscription,
        store: S,
        handler: Arc<H>,
        settings: ConsumerSettings,
    ) -> Result<Self, ConfigError> {
        settings.validate()?;
        Ok(Self {
            js,
            names,
            subscription,
            store,
            handler,
            settings,
        })
    }

    /// Creates or updates the durable consumers (events and replays), and the
    /// dead-letter stream. The source's stream is its relay's to create.
    pub async fn provision(&self, dead_letters: &StreamSettings) -> Result<(), MessagingError> {
        ensure_dead_letter_stream(&self.js, &self.names, dead_letters).await?;
        self.durable(Input::Events).await?;
        self.durable(Input::Replays).await?;
        Ok(())
    }

    async fn durable(
        &self,
        input: Input,
    ) -> Result<jetstream::consumer::Consumer<pull::Config>, MessagingError> {
        let (stream, name, filter_subjects) = match input {
            Input::Events => (
                self.subscription.stream(&self.names),
                self.subscription.consumer.clone(),
                self.subscription
                    .event_types
                    .iter()
                    .map(|t| self.subscription.subject(&self.names, t))
                    .collect(),
            ),
            Input::Replays => (
                self.names.dead_letter_stream(),
                format!("{}-replay", self.subscription.consumer),
                vec![self.names.replay_subject(&self.subscription.consumer)],
            ),
        };
        let stream = self
            .js
            .get_stream(&stream)
            .await
            .map_err(MessagingError::nats)?;
        stream
            .create_consumer(pull::Config {
                durable_name: Some(name),
                description: Some(format!(
                    "{} reacting to {}",
                    self.subscription.consumer, self.subscription.source
                )),
                filter_subjects,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: self.settings.ack_wait,
                // Attempts are counted here, so a message is dead-lettered with its
                // error rather than dropped silently by the server.
                max_deliver: -1,
                max_ack_pending: i64::try_from(self.settings.max_in_flight).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .map_err(MessagingError::nats)
    }

    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Events the server holds for this consumer that it has not acknowledged
    /// yet: waiting to be delivered, or delivered and in flight.
    pub async fn pending(&self) -> Result<u64, MessagingError> {
        let stream = match self
            .js
            .get_stream(self.subscription.stream(&self.names))
            .await
        {
            Ok(stream) => stream,
            // The source has not run yet (services deploy on their own): it
            // has published nothing, so nothing waits.
            Err(error)
                if matches!(
                    error.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                return Ok(0);
            }
            Err(error) => return Err(MessagingError::nats(error)),
        };
        let info = stream
            .consumer_info(&self.subscription.consumer)
            .await
            .map_err(MessagingError::nats)?;
        Ok(info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX))
    }

    /// Consumes events and replays until `shutdown`, reconnecting after failures.
    pub async fn run(&self, shutdown: Shutdown) {
        tokio::join!(
            self.consume(Input::Events, shutdown.clone()),
            self.consume(Input::Replays, shutdown),
        );
    }

    async fn consume(&self, input: Input, shutdown: Shutdown) {
        let what = format!("consumer {} ({input:?})", self.subscription.consumer);
        crate::supervise::supervise(shutdown, &what, &self.settings.retry, |shutdown| {
            self.consume_until_error(input, shutdown)
        })
        .await;
    }

    async fn consume_until_error(
        &self,
        input: Input,
        mut shutdown: Shutdown,
    ) -> Result<(), MessagingError> {
        let consumer = self.durable(input).await?;
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.settings.max_in_flight)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(MessagingError::nats)?;
        // Messages are handled in delivery order, a batch at a time. The server sends
        // no more than max_in_flight unacknowledged, and all of them wait here.
        let mut waiting: VecDeque<jetstream::Message> = VecDeque::new();
        let mut working: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
        let mut progress = tokio::time::interval(self.settings.progress_every());
        loop {
            if working.is_none() && !waiting.is_empty() {
                let take = waiting.len().min(self.settings.max_batch);
                let batch: Vec<_> = waiting.drain(..take).collect();
                working = Some(Box::pin(self.process_batch(input, batch)));
            }
            tokio::select! {
                next = messages.next() => {
                    let error = match next {
                        Some(Ok(message)) => {
                            waiting.push_back(message);
                            continue;
                        }
                        Some(Err(error)) => MessagingError::nats(error),
                        None => MessagingError::Nats("message stream ended".into()),
                    };
                    // Finish the batch at hand before subscribing again.
                    if let Some(work) = working.take() {
                        work.await;
                    }
                    drop(messages);
                    hand_back(waiting).await;
                    return Err(error);
                }
                () = async { if let Some(work) = working.as_mut() { work.await } }, if working.is_some() => {
                    working = None;
                }
                _ = progress.tick(), if !waiting.is_empty() => {
                    for message in &waiting {
                        ack(message, AckKind::Progress).await;
                    }
                }
                () = shutdown.requested() => {
                    // Finish the batch at hand; what waits, and what the server
                    // sent meanwhile, goes back to it to be delivered next.
                    if let Some(work) = working.take() {
                        work.await;
                    }
                    while let Ok(Some(Ok(message))) =
                        tokio::time::timeout(HAND_BACK_GRACE, messages.next()).await
                    {
                        waiting.push_back(message);
                    }
                    // Unsubscribed first: the server drops a pull request nobody
                    // listens to, so what is handed back cannot be sent again to
                    // this subscription, to wait out its ack wait unread.
                    drop(messages);
                    hand_back(waiting).await;
                    return Ok(());
                }
            }
        }
    }

    /// Handles a batch of deliveries in one database transaction: one commit (one
    /// fsync) for the lot, and a failing event undoes only its own effects.
    async fn process_batch(&self, input: Input, messages: Vec<jetstream::Message>) {
        let mut deliveries = Vec::with_capacity(messages.len());
        for message in messages {
            let (attempt, sequence) = match message.info() {
                Ok(info) => {
                    let consumer = self.subscription.consumer.clone();
                    #[allow(clippy::cast_precision_loss)] // a gauge
                    metrics::gauge!("aftersales_consumer_pending", "consumer" => consumer.clone())
                        .set(info.pending as f64);
                    if info.delivered > 1 {
                        metrics::counter!("aftersales_consumer_redeliveries_total", "consumer" => consumer)
                            .increment(1);
                    }
                    (info.delivered.unsigned_abs(), info.stream_sequence)
                }
                Err(error) => {
                    tracing::warn!(%error, "delivery without JetStream info; leaving it to redelivery");
                    continue;
                }
            };
            match InboundEvent::from_message(message.headers.as_ref(), &message.payload) {
                Ok(event) => {
                    let span = consumer_span(
                        NATS,
                        message.subject.as_str(),
                        &self.subscription.consumer,
                        &event,
                        attempt,
                    );
                    deliveries.push(Delivery {
                        message,
                        attempt,
                        sequence,
                        event,
                        span,
                    });
                }
                Err(error) => {
                    let error = HandlerError::permanent(error);
                    self.give_up(input, &message, None, &error, attempt, sequence)
                        .await;
                }
            }
        }
        if deliveries.is_empty() {
            return;
        }
        let mut outcomes = self
            .with_progress(&deliveries, self.apply_batch(&deliveries))
            .await;
        // Another event of the batch may have moved the same stream: try once more
        // alone, now that the batch is in. An event after a conflict may have
        // failed only because the conflicting one's effects were undone (a step
        // whose order that one introduced): it goes again too, in order.
        let mut after_conflict = false;
        for (delivery, outcome) in deliveries.iter().zip(&mut outcomes) {
            let again = match outcome {
                Err(HandlerError::Conflict(_)) => true,
                Err(error) => after_conflict && !error.is_permanent(),
                Ok(_) => false,
            };
            after_conflict |= matches!(outcome, Err(HandlerError::Conflict(_)));
            if again && deliveries.len() > 1 {
                *outcome = self
                    .with_progress(
                        &deliveries,
                        apply(
                            &self.store,
                            &self.subscription.consumer,
                            self.handler.as_ref(),
                            &delivery.event,
                            AlsoCommit::Nothing,
                        )
                        .instrument(delivery.span.clone()),
                    )
                    .await;
            }
        }
        for (delivery, outcome) in deliveries.iter().zip(outcomes) {
            self.settle(input, delivery, outcome).await;
        }
    }

    async fn apply_batch(&self, deliveries: &[Delivery]) -> Vec<Result<Applied, HandlerError>> {
        let events: Vec<_> = deliveries
            .iter()
            .map(|d| (&d.event, d.span.clone()))
            .collect();
        let batch = apply_batch(
            &self.store,
            &self.subscription.consumer,
            self.handler.as_ref(),
            &events,
            false,
        )
        .await;
        let (tx, outcomes) = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let error = HandlerError::from(error);
                return deliveries.iter().map(|_| Err(error.clone())).collect();
            }
        };
        match tx.commit().await {
            Ok(()) => outcomes,
            Err(error) => {
                let error = HandlerError::from(error);
                outcomes
                    .into_iter()
                    .map(|outcome| outcome.and(Err(error.clone())))
                    .collect()
            }
        }
    }

    /// Runs `work`, telling JetStream the deliveries are still being worked on.
    async fn with_progress<T>(&self, deliveries: &[Delivery], work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        let mut progress = tokio::time::interval(self.settings.progress_every());
        progress.tick().await;
        loop {
            tokio::select! {
                result = &mut work => return result,
                _ = progress.tick() => {
                    for delivery in deliveries {
                        ack(&delivery.message, AckKind::Progress).await;
                    }
                }
            }
        }
    }

    async fn settle(
        &self,
        input: Input,
        delivery: &Delivery,
        outcome: Result<Applied, HandlerError>,
    ) {
        let Delivery {
            message,
            attempt,
            sequence,
            event,
            span,
        } = delivery;
        let _entered = span.enter();
        let outcome_name = match &outcome {
            Ok(Applied::Handled) => "applied",
            Ok(Applied::AlreadyHandled) => "duplicate",
            Err(error) if error.is_permanent() || self.settings.retry.gives_up_after(*attempt) => {
                "dead_lettered"
            }
            Err(_) => "retried",
        };
        metrics::counter!(
            "aftersales_consumer_events_total",
            "consumer" => self.subscription.consumer.clone(),
            "outcome" => outcome_name
        )
        .increment(1);
        match outcome {
            Ok(applied) => {
                if applied == Applied::AlreadyHandled {
                    tracing::debug!(event_id = %event.event_id, "redelivery of a handled event");
                }
                if input == Input::Replays {
                    self.forget_replay(message, *sequence).await;
                }
                ack(message, AckKind::Ack).await;
            }
            Err(error) if error.is_permanent() || self.settings.retry.gives_up_after(*attempt) => {
                self.give_up(input, message, Some(event), &error, *attempt, *sequence)
                    .await;
            }
            Err(error) => {
                let delay = self.settings.retry.delay(*attempt);
                tracing::warn!(%error, attempt, ?delay, "handler failed; will retry");
                ack(message, AckKind::Nak(Some(delay))).await;
            }
        }
    }

    /// Moves a message to the dead-letter stream, then terminates its delivery. If
    /// the dead letter cannot be stored, the message is retried instead: it is
    /// never dropped.
    async fn give_up(
        &self,
        input: Input,
        message: &jetstream::Message,
        event: Option<&InboundEvent>,
        error: &HandlerError,
        attempt: u64,
        sequence: u64,
    ) {
        let mut headers = message.headers.clone().unwrap_or_default();
        headers.insert(
            header::DLQ_ERROR,
            truncate(&error.to_string(), 2048).as_str(),
        );
        headers.insert(header::DLQ_ATTEMPTS, attempt.to_string().as_str());
        headers.insert(header::DLQ_CONSUMER, self.subscription.consumer.as_str());
        headers.insert(header::DLQ_SUBJECT, message.subject.as_str());
        #[allow(clippy::disallowed_methods)] // when it failed, for operators
        let failed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        headers.insert(header::DLQ_FAILED_AT, failed_at.as_str());
        let stream = message
            .info()
            .map(|i| i.stream.to_owned())
            .unwrap_or_default();
        let id = format!("dlq:{}:{stream}:{sequence}", self.subscription.consumer);
        let publish = jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .headers(headers)
            .message_id(id);
        let stored = match self
            .js
            .send_publish(
                self.names.dead_letter_subject(&self.subscription.consumer),
                publish,
            )
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(MessagingError::nats),
            Err(e) => Err(MessagingError::nats(e)),
        };
        match stored {
            Ok(()) => {
                metrics::counter!("aftersales_dead_letters_total", "consumer" => self.subscription.consumer.clone())
                    .increment(1);
                tracing::error!(%error, attempt, event_id = ?event.map(|e| e.event_id), consumer = %self.subscription.consumer, "gave up on an event; it is in the dead-letter stream");
                if input == Input::Replays {
                    self.forget_replay(message, sequence).await;
                }
                ack(message, AckKind::Term).await;
            }
            Err(dlq_error) => {
                tracing::error!(%dlq_error, %error, "could not store a dead letter; retrying the event");
                ack(message, AckKind::Nak(Some(self.settings.retry.max_delay))).await;
            }
        }
    }

    /// A replay is done (handled, or dead again under a new sequence): remove the
    /// dead letter it came from and the replay message itself.
    async fn forget_replay(&self, message: &jetstream::Message, sequence: u64) {
        let original = message
            .headers
            .as_ref()
            .and_then(|h| h.get(header::REPLAY_OF))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        let Ok(stream) = self.js.get_stream(self.names.dead_letter_stream()).await else {
            return;
        };
        for seq in original.into_iter().chain([sequence]) {
            if let Err(error) = stream.delete_message(seq).await {
                tracing::debug!(%error, seq, "dead letter already removed");
            }
        }
    }
}

/// How long a stopping consumer waits for deliveries still on their way, to
/// hand them back with the rest.
const HAND_BACK_GRACE: Duration = Duration::from_millis(50);

/// Gives deliveries not handled yet back to the server to be delivered again
/// now, so the next subscription (this process's, or the next deployment's)
/// does not wait out their ack wait. Order is not promised. The caller drops
/// its subscription first: a handed-back delivery could otherwise be sent
/// again to the old pull request, still open, and wait there unread.
async fn hand_back(waiting: VecDeque<jetstream::Message>) {
    for message in &waiting {
        ack(message, AckKind::Nak(None)).await;
    }
}

async fn ack(message: &jetstream::Message, kind: AckKind) {
    // A lost acknowledgement means a redelivery, which the inbox absorbs.
    if let Err(error) = message.ack_with(kind).await {
        tracing::debug!(%error, "acknowledgement not sent");
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\r', '\n'], " ")
}
