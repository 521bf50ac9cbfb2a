//! What every consumer shares, whichever way events reach it: the handler contract,
//! the retry policy, and applying one event exactly once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aftersales_eventstore::{Checkpoint, EventStore, StoreError, StoreTransaction};

use tracing::Instrument as _;

use crate::envelope::InboundEvent;
use crate::error::{ConfigError, HandlerError};
use crate::inbox;
use crate::names::{Names, check_event_type, check_token};

/// Reacts to other services' events.
///
/// Everything a handler changes goes through `tx`: its own appends
/// ([`StoreTransaction::append`], or `CommandHandler::handle_in`) and its own rows
/// ([`StoreTransaction::connection`]). They commit together with the inbox record,
/// so an event is applied once however often it is delivered. A handler must not
/// call outside systems that cannot be undone; it records an event, and a reaction
/// to that event does the outside work.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Any [`Handler`], so that one list holds a service's reactions whatever their
/// types (the service description, embedded mode).
#[derive(Clone)]
pub struct AnyHandler(Arc<dyn ErasedHandler>);

impl AnyHandler {
    pub fn new(handler: impl Handler) -> Self {
        Self(Arc::new(handler))
    }
}

impl std::fmt::Debug for AnyHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnyHandler")
    }
}

type HandleFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// [`Handler`] made object-safe: the future boxed.
trait ErasedHandler: Send + Sync + 'static {
    fn handle_boxed<'a>(
        &'a self,
        event: &'a InboundEvent,
        tx: &'a mut StoreTransaction,
    ) -> HandleFuture<'a>;
}

impl<H: Handler> ErasedHandler for H {
    fn handle_boxed<'a>(
        &'a self,
        event: &'a InboundEvent,
        tx: &'a mut StoreTransaction,
    ) -> HandleFuture<'a> {
        Box::pin(self.handle(event, tx))
    }
}

impl Handler for AnyHandler {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        self.0.handle_boxed(event, tx).await
    }
}

/// One subscription and what handles it: a consumer, before it knows whether its
/// events come from JetStream or straight from the producer's log.
#[derive(Debug, Clone)]
pub struct Reaction {
    pub subscription: Subscription,
    pub handler: AnyHandler,
}

/// Which events a consumer wants, and under what durable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Durable name, unique in the region, e.g. `logistics-from-repair`.
    pub consumer: String,
    /// The producing service, e.g. `repair`.
    pub source: String,
    pub event_types: Vec<String>,
    /// The region whose events these are, read from its replica in this region;
    /// `None`: this region's own.
    pub region: Option<Names>,
}

impl Subscription {
    pub fn new(
        consumer: impl Into<String>,
        source: impl Into<String>,
        event_types: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConfigError> {
        let subscription = Self {
            consumer: consumer.into(),
            source: source.into(),
            event_types: event_types.into_iter().map(Into::into).collect(),
            region: None,
        };
        check_token("consumer", &subscription.consumer)?;
        check_token("source", &subscription.source)?;
        if subscription.event_types.is_empty() {
            return Err(ConfigError::new("event_types", "must name at least one"));
        }
        for event_type in &subscription.event_types {
            check_event_type(event_type)?;
        }
        Ok(subscription)
    }

    /// The same subscription to `region`'s events, as its replica in this region
    /// holds them.
    #[must_use]
    pub fn from_region(self, region: Names) -> Self {
        Self {
            region: Some(region),
            ..self
        }
    }

    /// The stream this subscription reads in region `names`.
    pub fn stream(&self, names: &Names) -> String {
        match &self.region {
            Some(origin) => names.replica_stream(origin, &self.source),
            None => names.service_stream(&self.source),
        }
    }

    /// The subject of one event type it reads in region `names`.
    pub fn subject(&self, names: &Names, event_type: &str) -> String {
        self.region
            .as_ref()
            .unwrap_or(names)
            .event_subject(&self.source, event_type)
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.iter().any(|t| t == event_type)
    }

    /// The checkpoint name of this consumer in embedded mode.
    pub(crate) fn checkpoint_name(&self) -> String {
        format!("consumer:{}:{}", self.consumer, self.source)
    }
}

/// How often, and how patiently, a failing event is tried before it becomes a
/// dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): exponential, capped, with
    /// up to a quarter taken off at random so that failing consumers spread out.
    pub fn delay(&self, attempt: u64) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        let full = self
            .first_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let jitter = full.mul_f64(random_fraction() * 0.25);
        full.saturating_sub(jitter)
    }

    pub fn gives_up_after(&self, attempt: u64) -> bool {
        attempt >= u64::from(self.max_attempts.max(1))
    }
}

/// A fraction in [0, 1) from the random bits of a v4 uuid.
fn random_fraction() -> f64 {
    // Version and variant bits are fixed; xor-ing in random bits hides them.
    let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
    let bits = (high ^ low.rotate_left(17)) >> 11;
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64 exactly
    let fraction = bits as f64 / (1u64 << 53) as f64;
    fraction
}

/// What else commits with a handled event.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AlsoCommit<'a> {
    Nothing,
    /// Embedded mode: the consumer's place in the source log.
    Checkpoint(&'a str, Checkpoint),
    /// Replaying an embedded-mode dead letter: mark it resolved.
    ResolveDeadLetter(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Handled,
    /// The inbox says so: nothing was run.
    AlreadyHandled,
}

/// Applies `event` once: inbox record, the handler's effects and `also` commit
/// together, or none of them do.
pub(crate) async fn apply<S: EventStore, H: Handler>(
    store: &S,
    consumer: &str,
    handler: &H,
    event: &InboundEvent,
    also: AlsoCommit<'_>,
) -> Result<Applied, HandlerError> {
    let mut tx = store.begin().await?;
    let applied = apply_in(&mut tx, consumer, handler, event).await?;
    match also {
        AlsoCommit::Nothing => {}
        AlsoCommit::Checkpoint(name, checkpoint) => tx.save_checkpoint(name, checkpoint).await?,
        AlsoCommit::ResolveDeadLetter(id) => inbox::resolve_dead_letter(&mut tx, id).await?,
    }
    tx.commit().await?;
    Ok(applied)
}

/// Applies a batch's `events` in order in one new transaction of `store`,
/// returned open with each event's outcome for the caller to commit; with
/// `stop_at_failure`, none after the first that fails.
///
/// The events go straight in first. If one fails, it may have left part of its
/// effects or aborted the transaction: the batch starts again, the events before
/// it each under its own savepoint, the failed one with the error it had (not run
/// twice), and any after it under savepoints too, so that a failing event undoes
/// only its own effects. Batches seldom fail, and a savepoint costs two round
/// trips and a subtransaction per event (past 64 in one transaction, every other
/// transaction on the server pays to look them up).
pub(crate) async fn apply_batch<S: EventStore, H: Handler>(
    store: &S,
    consumer: &str,
    handler: &H,
    events: &[(&InboundEvent, tracing::Span)],
    stop_at_failure: bool,
) -> Result<(StoreTransaction, Vec<Result<Applied, HandlerError>>), StoreError> {
    let mut tx = store.begin().await?;
    let mut outcomes = Vec::with_capacity(events.len());
    let mut failed = None;
    for (event, span) in events {
        match apply_in(&mut tx, consumer, handler, event)
            .instrument(span.clone())
            .await
        {
            Ok(applied) => outcomes.push(Ok(applied)),
            Err(error) => {
                failed = Some(error);
                break;
            }
        }
    }
    if failed.is_none() {
        return Ok((tx, outcomes));
    }
    tx.rollback().await?;
    let mut tx = store.begin().await?;
    let failed_at = outcomes.len();
    outcomes.clear();
    for (i, (event, span)) in events.iter().enumerate() {
        let outcome = match failed.take_if(|_| i == failed_at) {
            Some(error) => Err(error),
            None => {
                apply_isolated_in(&mut tx, consumer, handler, event)
                    .instrument(span.clone())
                    .await
            }
        };
        let failed = outcome.is_err();
        outcomes.push(outcome);
        if failed && stop_at_failure {
            break;
        }
    }
    Ok((tx, outcomes))
}

/// The inbox record and the handler's effects of `event`, inside `tx`.
async fn apply_in<H: Handler>(
    tx: &mut StoreTransaction,
    consumer: &str,
    handler: &H,
    event: &InboundEvent,
) -> Result<Applied, HandlerError> {
    if !inbox::record_handled(tx, consumer, event.event_id).await? {
        return Ok(Applied::AlreadyHandled);
    }
    handler.handle(event, tx).await?;
    Ok(Applied::Handled)
}

/// [`apply_in`] under its own savepoint: all of it, or (when it fails) nothing.
async fn apply_isolated_in<H: Handler>(
    tx: &mut StoreTransaction,
    consumer: &str,
    handler: &H,
    event: &InboundEvent,
) -> Result<Applied, HandlerError> {
    tx.savepoint().await?;
    match apply_in(tx, consumer, handler, event).await {
        Ok(applied) => {
            tx.release_savepoint().await?;
            Ok(applied)
        }
        Err(error) => {
            tx.rollback_to_savepoint().await?;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_regions_events_are_read_from_their_replica_here() {
        let here = Names::new("ap-south").expect("region");
        let home = Names::new("eu-central").expect("region");
        let local = Subscription::new("repair-from-warranty", "warranty", ["DeviceRegistered"])
            .expect("subscription");
        assert_eq!(local.stream(&here), "AFTERSALES_AP_SOUTH_WARRANTY");
        assert_eq!(
            local.subject(&here, "DeviceRegistered"),
            "aftersales.ap-south.warranty.DeviceRegistered"
        );
        let foreign = local.from_region(home);
        assert_eq!(
            foreign.stream(&here),
            "AFTERSALES_AP_SOUTH_REPLICA_EU_CENTRAL_WARRANTY"
        );
        assert_eq!(
            foreign.subject(&here, "DeviceRegistered"),
            "aftersales.eu-central.warranty.DeviceRegistered"
        );
    }

    #[test]
    fn delays_grow_to_the_cap_with_bounded_jitter() {
        let policy = RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for (attempt, full_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (60, 1000),
        ] {
            let delay = policy.delay(attempt);
            let full = Duration::from_millis(full_ms);
            assert!(
                delay <= full && delay >= full.mul_f64(0.75),
                "{attempt}: {delay:?}"
            );
        }
        assert!(!policy.gives_up_after(4));
        assert!(policy.gives_up_after(5));
    }

    #[test]
    fn subscriptions_refuse_names_that_break_subjects() {
        assert!(Subscription::new("repair-from-logistics", "logistics", ["Delivered"]).is_ok());
        assert!(Subscription::new("Repair", "logistics", ["Delivered"]).is_err());
        assert!(Subscription::new("repair", "logistics.eu", ["Delivered"]).is_err());
        assert!(Subscription::new("repair", "logistics", ["A.B"]).is_err());
        assert!(Subscription::new("repair", "logistics", Vec::<String>::new()).is_err());
    }
}
