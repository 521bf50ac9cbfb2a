//! Embedded mode: a consumer follows the producer's event log directly (SQLite or
//! PostgreSQL), so one process on one machine needs no broker. The handlers are
//! the same as with JetStream, and so are the payloads: the producer's
//! [`Translate`] turns each stored event into its public form first.
//!
//! Events are applied in log order, up to `max_batch` in one transaction (one
//! commit for the lot), and a failing one undoes only its own effects. The
//! consumer's checkpoint in the source log is saved in the same transaction as the
//! events' effects, and the inbox still records every handled event, so switching
//! between modes never applies twice. Moved only past events the consumer does
//! not want, the checkpoint is saved on its own at most once a second. A failing
//! event ends its batch (what came before it commits) and is retried alone with
//! backoff, in place; after the last attempt it is recorded in the `dead_letters`
//! table and the consumer moves on.

use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::{Checkpoint, EventStore, RecordedEvent};
use tracing::Instrument as _;

use crate::consumer::{AlsoCommit, Handler, RetryPolicy, Subscription, apply, apply_batch};
use crate::envelope::InboundEvent;
use crate::error::{HandlerError, MessagingError};
use crate::inbox::{self, StoredDeadLetter, open_dead_letters};
use crate::relay::{AsStored, Translate};
use crate::trace::{EVENT_LOG, consumer_span};
use aftersales_core::Shutdown;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConsumerSettings {
    pub retry: RetryPolicy,
    pub batch_size: usize,
    /// Events applied in one database transaction at most.
    pub max_batch: usize,
    /// How often the source log is polled for appends from other processes
    /// (appends in this process wake the consumer at once).
    pub poll_interval: Duration,
}

impl Default for LogConsumerSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            batch_size: 500,
            max_batch: 64,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// A checkpoint moved only past events this consumer does not want is saved at
/// most this often, not after each batch: a commit on the consumer's database
/// each time, and all a crash costs is reading those events again.
const PASSED_OVER_SAVED_EVERY: Duration = Duration::from_secs(1);

/// Runs a [`Handler`] on another service's log, read directly.
pub struct LogConsumer<Src, S, H> {
    source: Src,
    store: S,
    subscription: Subscription,
    handler: Arc<H>,
    settings: LogConsumerSettings,
    translate: Arc<dyn Translate>,
}

impl<Src, S, H> std::fmt::Debug for LogConsumer<Src, S, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogConsumer")
            .field("subscription", &self.subscription)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<Src: EventStore, S: EventStore, H: Handler> LogConsumer<Src, S, H> {
    pub fn new(
        source: Src,
        store: S,
        subscription: Subscription,
        handler: Arc<H>,
        settings: LogConsumerSettings,
    ) -> Self {
        Self {
            source,
            store,
            subscription,
            handler,
            settings,
            translate: Arc::new(AsStored),
        }
    }

    /// Delivers what the producer's relay would publish instead of the stored
    /// JSON: the producer's public contract.
    #[must_use]
    pub fn with_translation(mut self, translate: Arc<dyn Translate>) -> Self {
        self.translate = translate;
        self
    }

    /// Follows the source log until `shutdown`, resuming from the checkpoint after
    /// any failure of either database.
    pub async fn run(&self, shutdown: Shutdown) {
        let what = format!("consumer {}", self.subscription.consumer);
        crate::supervise::supervise(shutdown, &what, &self.settings.retry, |shutdown| {
            self.follow(shutdown)
        })
        .await;
    }

    async fn follow(&self, mut shutdown: Shutdown) -> Result<(), MessagingError> {
        let name = self.subscription.checkpoint_name();
        let mut checkpoint = self.store.load_checkpoint(&name).await?;
        let mut saved = checkpoint;
        let mut saved_alone_at = tokio::time::Instant::now();
        let mut wait = aftersales_eventstore::IdleWait::new(self.settings.poll_interval);
        while !shutdown.is_requested() {
            // Registered before the read, so an append in between still wakes us.
            let appended = self.source.appended().notified();
            let batch = self
                .source
                .read_log(checkpoint, self.settings.batch_size)
                .await?;
            // A short batch ends at the log's end as the read saw it. Reading again
            // would mostly find nothing: wait instead, and an append since the read
            // has already woken `appended`.
            let at_end = batch.len() < self.settings.batch_size;
            if !batch.is_empty() {
                wait.busy();
                checkpoint = self
                    .apply_read(&name, checkpoint, batch, &mut saved, &mut shutdown)
                    .await?;
            }
            if at_end && !shutdown.is_requested() {
                if checkpoint != saved && saved_alone_at.elapsed() >= PASSED_OVER_SAVED_EVERY {
                    self.store.save_checkpoint(&name, checkpoint).await?;
                    saved = checkpoint;
                    saved_alone_at = tokio::time::Instant::now();
                }
                tokio::select! {
                    () = appended => {}
                    () = tokio::time::sleep(wait.idle()) => {}
                    () = shutdown.requested() => {}
                }
            }
        }
        if checkpoint != saved {
            self.store.save_checkpoint(&name, checkpoint).await?;
        }
        Ok(())
    }

    /// Applies the wanted events of `batch`, read from the source log after
    /// `from`, in chunks; `saved` follows the checkpoint committed with them.
    /// Where the consumer stands afterwards: the batch's end, or after the last
    /// event applied if shutdown came first.
    async fn apply_read(
        &self,
        name: &str,
        from: Checkpoint,
        batch: Vec<RecordedEvent>,
        saved: &mut Checkpoint,
        shutdown: &mut Shutdown,
    ) -> Result<Checkpoint, MessagingError> {
        let mut end = from;
        let mut wanted = Vec::new();
        for recorded in batch {
            end = recorded.checkpoint;
            if self.subscription.wants(&recorded.event_type)
                && let Some(event) = self.public(recorded)?
            {
                wanted.push((end, event));
            }
        }
        let mut rest = wanted.as_slice();
        while !rest.is_empty() && !shutdown.is_requested() {
            let chunk = &rest[..rest.len().min(self.settings.max_batch.max(1))];
            let (applied, failed) = self.apply_batch(name, chunk).await?;
            if let Some((at, _)) = applied.checked_sub(1).map(|last| &chunk[last]) {
                *saved = *at;
            }
            rest = &rest[applied..];
            // The event that ended the batch, alone and patiently.
            if let (Some(error), Some(next)) = (failed, rest.first()) {
                if !self.retry(name, next, error, shutdown).await? {
                    break;
                }
                *saved = next.0;
                rest = &rest[1..];
            }
        }
        Ok(if rest.is_empty() { end } else { *saved })
    }

    /// Applies `chunk` in one transaction with the checkpoint of its last applied
    /// event, stopping at the first that fails (undone, left to the caller): how
    /// many were applied, and why the next one failed.
    async fn apply_batch(
        &self,
        name: &str,
        chunk: &[(Checkpoint, InboundEvent)],
    ) -> Result<(usize, Option<HandlerError>), MessagingError> {
        let spans: Vec<_> = chunk
            .iter()
            .map(|(_, event)| {
                let span = consumer_span(
                    EVENT_LOG,
                    &self.subscription.source,
                    &self.subscription.consumer,
                    event,
                    1,
                );
                (event, span)
            })
            .collect();
        let (mut tx, outcomes) = apply_batch(
            &self.store,
            &self.subscription.consumer,
            self.handler.as_ref(),
            &spans,
            true,
        )
        .await?;
        let applied = outcomes.iter().take_while(|o| o.is_ok()).count();
        let failed = outcomes.into_iter().find_map(Result::err);
        match applied.checked_sub(1) {
            Some(last) => {
                tx.save_checkpoint(name, chunk[last].0).await?;
                tx.commit().await?;
            }
            None => tx.rollback().await?,
        }
        Ok((applied, failed))
    }

    /// Tries again, alone and in place, an event whose first attempt (in its
    /// batch) failed with `error`, until it is applied or buried. `false` if
    /// shutdown came first.
    async fn retry(
        &self,
        name: &str,
        (at, event): &(Checkpoint, InboundEvent),
        mut error: HandlerError,
        shutdown: &mut Shutdown,
    ) -> Result<bool, MessagingError> {
        let mut attempt = 1u64;
        loop {
            if error.is_permanent() || self.settings.retry.gives_up_after(attempt) {
                self.bury(name, *at, event, &error, attempt).await?;
                return Ok(true);
            }
            // An event of the batch before it moved the same stream: the batch
            // is in now, so go again at once.
            let conflict = attempt == 1 && matches!(error, HandlerError::Conflict(_));
            if !conflict {
                let delay = self.settings.retry.delay(attempt);
                tracing::warn!(%error, attempt, ?delay, consumer = %self.subscription.consumer, "handler failed; will retry");
                if !self.pause(delay, shutdown).await {
                    return Ok(false);
                }
            }
            attempt += 1;
            let span = consumer_span(
                EVENT_LOG,
                &self.subscription.source,
                &self.subscription.consumer,
                event,
                attempt,
            );
            let result = apply(
                &self.store,
                &self.subscription.consumer,
                self.handler.as_ref(),
                event,
                AlsoCommit::Checkpoint(name, *at),
            )
            .instrument(span)
            .await;
            match result {
                Ok(_) => return Ok(true),
                Err(failed) => error = failed,
            }
        }
    }

    /// Records a dead letter and moves the checkpoint past it, together.
    async fn bury(
        &self,
        name: &str,
        at: Checkpoint,
        event: &InboundEvent,
        error: &HandlerError,
        attempts: u64,
    ) -> Result<(), MessagingError> {
        tracing::error!(%error, attempts, event_id = %event.event_id, consumer = %self.subscription.consumer, "gave up on an event; it is in dead_letters");
        #[allow(clippy::disallowed_methods)] // when it failed, for operators
        let failed_at = chrono::Utc::now();
        let mut tx = self.store.begin().await?;
        inbox::record_dead_letter(
            &mut tx,
            &StoredDeadLetter {
                id: 0,
                consumer: self.subscription.consumer.clone(),
                source: self.subscription.source.clone(),
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                position: event.position,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                error: error.to_string(),
                failed_at,
            },
        )
        .await?;
        tx.save_checkpoint(name, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// This consumer's dead letters not yet replayed.
    pub async fn dead_letters(&self) -> Result<Vec<StoredDeadLetter>, MessagingError> {
        Ok(open_dead_letters(&self.store, &self.subscription.consumer).await?)
    }

    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Log positions of the source past this consumer's checkpoint (an upper
    /// bound on the events it has still to apply).
    pub async fn pending(&self) -> Result<u64, MessagingError> {
        let checkpoint = self
            .store
            .load_checkpoint(&self.subscription.checkpoint_name())
            .await?;
        Ok(self
            .source
            .last_position()
            .await?
            .saturating_sub(checkpoint.position))
    }

    /// Applies every open dead letter once more, each through the inbox and
    /// resolved in the same transaction. Returns how many now succeeded; those that
    /// fail again stay open.
    pub async fn replay_dead_letters(&self) -> Result<usize, MessagingError> {
        let mut replayed = 0;
        for letter in self.dead_letters().await? {
            match self.replay(&letter).await? {
                Ok(()) => replayed += 1,
                Err(error) => {
                    tracing::warn!(%error, event_id = %letter.event_id, "replay failed again");
                }
            }
        }
        Ok(replayed)
    }

    /// Applies the open dead letter `id` once more; `Ok(Err(why))` when it failed
    /// again (it stays open). `None` when no such letter is open.
    pub async fn replay_dead_letter(
        &self,
        id: i64,
    ) -> Result<Option<Result<(), String>>, MessagingError> {
        let letters = self.dead_letters().await?;
        let Some(letter) = letters.iter().find(|l| l.id == id) else {
            return Ok(None);
        };
        Ok(Some(self.replay(letter).await?))
    }

    async fn replay(
        &self,
        letter: &StoredDeadLetter,
    ) -> Result<Result<(), String>, MessagingError> {
        let Some(recorded) = self.source.event_by_id(letter.event_id).await? else {
            return Ok(Err(format!(
                "event {} is not in {}'s log",
                letter.event_id, letter.source
            )));
        };
        let Some(event) = self.public(recorded)? else {
            return Ok(Err(format!(
                "event {} is not one {} publishes",
                letter.event_id, letter.source
            )));
        };
        let applied = apply(
            &self.store,
            &self.subscription.consumer,
            self.handler.as_ref(),
            &event,
            AlsoCommit::ResolveDeadLetter(letter.id),
        )
        .await;
        Ok(applied.map(|_| ()).map_err(|e| e.to_string()))
    }

    /// The event as the producer publishes it; `None` for a private one. An
    /// event that cannot be translated stops the consumer (to be retried) rather
    /// than be skipped.
    fn public(&self, recorded: RecordedEvent) -> Result<Option<InboundEvent>, MessagingError> {
        let outbound = self.translate.translate(&recorded).map_err(|reason| {
            MessagingError::Malformed(format!(
                "cannot translate {} {}: {reason}",
                recorded.event_type, recorded.event_id
            ))
        })?;
        Ok(outbound.map(|outbound| {
            let mut event = InboundEvent::from_recorded(&self.subscription.source, recorded);
            event.payload = outbound.payload;
            event.content_type = outbound.content_type;
            event
        }))
    }

    /// Sleeps; `false` if shutdown came first.
    async fn pause(&self, delay: Duration, shutdown: &mut Shutdown) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.requested() => false,
        }
    }
}
