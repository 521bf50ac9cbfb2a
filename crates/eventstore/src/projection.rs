//! Read models fed from a service's own log. Each batch of events and the
//! projection's checkpoint commit in one transaction, so a crash never applies an
//! event twice or skips one; a projection can be reset and rebuilt from the start.

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;
use crate::event::{Checkpoint, RecordedEvent};
use crate::store::EventStore;
use crate::transaction::StoreTransaction;

/// A read model: tables it owns in the service's database.
pub trait Projection: Send + Sync {
    /// Unique per service; its checkpoint is stored as `projection:<name>`.
    fn name(&self) -> &'static str;

    /// Applies one event (it may ignore it) to the projection's tables.
    fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Empties the projection's tables, for a rebuild.
    fn reset(
        &self,
        tx: &mut StoreTransaction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn checkpoint_name<P: Projection>(projection: &P) -> String {
    format!("projection:{}", projection.name())
}

/// Events applied per transaction.
const BATCH: usize = 500;

/// Applies every event the log holds past the projection's checkpoint. Returns how
/// many events were read; `progress` is told the running count after each batch.
pub async fn catch_up<S: EventStore, P: Projection>(
    store: &S,
    projection: &P,
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let name = checkpoint_name(projection);
    let mut checkpoint = store.load_checkpoint(&name).await?;
    let end = store.log_end().await?;
    let lag =
        metrics::gauge!("aftersales_projection_lag_events", "projection" => projection.name());
    let mut read = 0u64;
    loop {
        let batch = store.read_log(checkpoint, BATCH).await?;
        let Some(last) = batch.last().map(|e| e.checkpoint) else {
            lag.set(0.0);
            return Ok(read);
        };
        #[allow(clippy::cast_precision_loss)] // a gauge
        lag.set(end.position.saturating_sub(last.position) as f64);
        let mut tx = store.begin().await?;
        for event in &batch {
            projection.apply(event, &mut tx).await?;
        }
        tx.save_checkpoint(&name, last).await?;
        tx.commit().await?;
        checkpoint = last;
        read += batch.len() as u64;
        progress(read);
    }
}

/// Empties the projection and applies the whole log again.
pub async fn rebuild<S: EventStore, P: Projection>(
    store: &S,
    projection: &P,
    progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let mut tx = store.begin().await?;
    projection.reset(&mut tx).await?;
    tx.save_checkpoint(&checkpoint_name(projection), Checkpoint::START)
        .await?;
    tx.commit().await?;
    catch_up(store, projection, progress).await
}

/// Keeps the projection up to date until `stop` resolves; failures are logged and
/// retried after `poll_interval`.
pub async fn run<S: EventStore, P: Projection>(
    store: &S,
    projection: &P,
    poll_interval: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        // Registered before the read, so an append in between still wakes us.
        let appended = store.appended().notified();
        if let Err(error) = catch_up(store, projection, |_| {}).await {
            tracing::warn!(%error, projection = projection.name(), "projection failed; retrying");
        }
        tokio::select! {
            () = appended => {}
            () = tokio::time::sleep(poll_interval) => {}
            () = &mut stop => return,
        }
    }
}
