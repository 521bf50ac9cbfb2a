//! Read models fed from a service's own log. Each batch of events and the
//! projection's checkpoint commit in one transaction, so a crash never applies an
//! event twice or skips one (it may undo the last batches, which are applied
//! again: their commits do not wait for the disk); a projection can be reset and
//! rebuilt from the start. A batch is claimed by moving the checkpoint before
//! anything is written: two processes following one read model (two replicas,
//! or an operator's rebuild beside the service) apply each event once, and a
//! read model's writes need not be idempotent.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::StoreError;
use crate::event::{Checkpoint, RecordedEvent, StreamId};
use crate::follow::IdleWait;
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

    /// Applies `events`, in log order, as [`Projection::apply`] would one by one. A
    /// projection overrides it to write a batch's rows in a few statements: what
    /// makes a rebuild fast.
    fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for event in events {
                self.apply(event, tx).await?;
            }
            Ok(())
        }
    }

    /// Empties the projection's tables, for a rebuild.
    fn reset(
        &self,
        tx: &mut StoreTransaction,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn checkpoint_name<P: Projection>(projection: &P) -> String {
    checkpoint_of(projection.name())
}

/// The name the projection called `name` keeps its checkpoint under.
pub fn checkpoint_of(name: &str) -> String {
    format!("projection:{name}")
}

/// Events a follower of the log applies per transaction.
const BATCH: usize = 1_000;

/// Events a rebuild applies per transaction: a bulk job, where each batch's fixed
/// costs (the read's horizon, the claim, the commit) weigh more than the memory
/// of a few larger batches in flight.
const REBUILD_BATCH: usize = 4_000;

/// Batches read ahead of the slowest projection.
const READ_AHEAD: usize = 4;

/// The newest event of each stream in `events`, in log order: all a read model
/// that writes a stream's whole state as of an event needs of a batch. (Usually
/// each stream's last; the log orders events by writing transaction, so one
/// stream's can come out of order.)
pub fn last_of_each_stream(events: &[RecordedEvent]) -> Vec<&RecordedEvent> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let newest = last.entry(event.stream_id.as_str()).or_insert(i);
        if event.stream_version > events[*newest].stream_version {
            *newest = i;
        }
    }
    let mut kept: Vec<usize> = last.into_values().collect();
    kept.sort_unstable();
    kept.into_iter().map(|i| &events[i]).collect()
}

/// Each wanted event's stream from its first event up to it, for read models that
/// fold a stream's whole history. Taken from the batch where it holds all of them
/// (a stream begun in it), otherwise read from the store, each stream once however
/// many of its events the batch holds.
#[derive(Debug)]
pub struct Histories<'a> {
    batch: BatchStreams<'a>,
    /// Streams read, each up to the newest version wanted of it.
    read: HashMap<StreamId, Vec<RecordedEvent>>,
}

impl<'a> Histories<'a> {
    /// The histories up to each of `wanted`, events of `batch`.
    pub async fn gather<S: EventStore>(
        store: &S,
        batch: &'a [RecordedEvent],
        wanted: impl IntoIterator<Item = &RecordedEvent>,
    ) -> Result<Self, StoreError> {
        let batch = BatchStreams::new(batch);
        let mut missing: HashMap<StreamId, u64> = HashMap::new();
        for event in wanted {
            if batch
                .span(&event.stream_id, 1, event.stream_version)
                .is_none()
            {
                let newest = missing.entry(event.stream_id.clone()).or_default();
                *newest = (*newest).max(event.stream_version);
            }
        }
        // One read at a time: eight at once made the inbox no faster under load
        // (decision 0050).
        let mut read = HashMap::with_capacity(missing.len());
        for (stream, version) in missing {
            let limit = usize::try_from(version).unwrap_or(usize::MAX);
            let events = store.read_stream(&stream, 1, limit).await?;
            read.insert(stream, events);
        }
        Ok(Self { batch, read })
    }

    /// `event`'s stream from its first event to `event`, in version order; empty
    /// if `event` was not among the wanted.
    pub fn upto(&self, event: &RecordedEvent) -> Vec<&RecordedEvent> {
        if let Some(events) = self.batch.span(&event.stream_id, 1, event.stream_version) {
            return events.to_vec();
        }
        self.read
            .get(&event.stream_id)
            .map(|events| {
                events
                    .iter()
                    .take_while(|e| e.stream_version <= event.stream_version)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A batch's events by stream, each stream's in version order (the log orders
/// events by writing transaction, so one stream's can come out of order).
#[derive(Debug)]
pub struct BatchStreams<'a> {
    streams: HashMap<&'a str, Vec<&'a RecordedEvent>>,
}

impl<'a> BatchStreams<'a> {
    pub fn new(batch: &'a [RecordedEvent]) -> Self {
        let mut streams: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
        for event in batch {
            streams
                .entry(event.stream_id.as_str())
                .or_default()
                .push(event);
        }
        for events in streams.values_mut() {
            events.sort_by_key(|e| e.stream_version);
            events.dedup_by_key(|e| e.stream_version);
        }
        Self { streams }
    }

    /// The events of `stream` from version `from` to `to`, if the batch holds
    /// every one of them.
    pub fn span(&self, stream: &StreamId, from: u64, to: u64) -> Option<&[&'a RecordedEvent]> {
        let events = self.streams.get(stream.as_str())?;
        let start = events.partition_point(|e| e.stream_version < from);
        let end = events.partition_point(|e| e.stream_version <= to);
        let wanted = usize::try_from(to.checked_sub(from)? + 1).ok()?;
        (end - start == wanted).then(|| &events[start..end])
    }
}

/// Applies every event the log holds past the projection's checkpoint. Returns how
/// many events were read; `progress` is told the running count after each batch.
pub async fn catch_up<S: EventStore, P: Projection + Clone + 'static>(
    store: &S,
    projection: &P,
    progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let from = store.load_checkpoint(&checkpoint_name(projection)).await?;
    catch_up_from(
        store,
        std::slice::from_ref(projection),
        from,
        BATCH,
        progress,
    )
    .await
}

/// Applies every event past `from` to each of `projections`, which all stand at
/// `from`: one read of the log for all of them, each batch of up to `batch_size`
/// events applied to each in its own transaction. The reader keeps a few batches
/// ahead, and each projection takes them on its own task at its own pace: none
/// waits on the slowest at every batch, and decoding spreads over the runtime's
/// threads while rows are written.
/// A failure may leave them at different batches; each resumes from its own
/// checkpoint.
async fn catch_up_from<S: EventStore, P: Projection + Clone + 'static>(
    store: &S,
    projections: &[P],
    from: Checkpoint,
    batch_size: usize,
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let (applied_tx, mut applied_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64)>();
    let mut appliers = tokio::task::JoinSet::new();
    let mut batches = Vec::with_capacity(projections.len());
    for (i, projection) in projections.iter().enumerate() {
        // Each batch with how far the log went when the reading began.
        let (sender, mut receiver) =
            tokio::sync::mpsc::channel::<(Arc<Vec<RecordedEvent>>, u64)>(READ_AHEAD);
        batches.push(sender);
        let (store, projection, applied) = (store.clone(), projection.clone(), applied_tx.clone());
        appliers.spawn(async move {
            let name = checkpoint_name(&projection);
            let lag = metrics::gauge!(
                "aftersales_projection_lag_events", "projection" => projection.name()
            );
            let mut at = from;
            while let Some((batch, end)) = receiver.recv().await {
                let Some(last) = batch.last().map(|e| e.checkpoint) else {
                    continue;
                };
                #[allow(clippy::cast_precision_loss)] // a gauge
                lag.set(end.saturating_sub(last.position) as f64);
                // Read models are made again from the log: no need to wait for the disk.
                let mut tx = store.begin_unflushed().await?;
                if !tx.move_checkpoints(&[&name], at, last).await? {
                    // Another runner applied this batch, or a rebuild began.
                    break;
                }
                projection.apply_batch(&batch, &mut tx).await?;
                tx.commit().await?;
                at = last;
                let _ = applied.send((i, batch.len() as u64));
            }
            lag.set(0.0);
            Ok::<_, StoreError>(())
        });
    }
    drop(applied_tx);
    let read = async move {
        let (mut checkpoint, mut read) = (from, 0u64);
        let mut log_end = None;
        loop {
            let batch = store.read_log(checkpoint, batch_size).await?;
            let Some(last) = batch.last().map(|e| e.checkpoint) else {
                return Ok(read);
            };
            (checkpoint, read) = (last, read + batch.len() as u64);
            // A short batch is all the log held: the usual case when following
            // it, where the next append wakes the follower again.
            let caught_up = batch.len() < batch_size;
            let end = log_end_for_lag(store, &mut log_end, caught_up, last).await?;
            let batch = Arc::new(batch);
            for sender in &batches {
                // A closed channel is a projection that failed (its error is the
                // answer) or found its checkpoint moved: the caller looks again.
                if sender.send((Arc::clone(&batch), end)).await.is_err() {
                    return Ok(read);
                }
            }
            if caught_up {
                return Ok(read);
            }
        }
    };
    // Tells `progress` how far the slowest projection has come.
    let report = async {
        let mut counts = vec![0u64; projections.len()];
        while let Some((i, n)) = applied_rx.recv().await {
            counts[i] += n;
            progress(counts.iter().copied().min().unwrap_or_default());
        }
    };
    let join = async {
        while let Some(done) = appliers.join_next().await {
            match done {
                Ok(applied) => applied?,
                Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
                // Only a runtime shutting down cancels them.
                Err(cancelled) => {
                    return Err(StoreError::Database(sqlx::Error::Io(
                        std::io::Error::other(cancelled),
                    )));
                }
            }
        }
        Ok::<_, StoreError>(())
    };
    let (read, applied, ()) = futures::join!(read, join, report);
    applied?;
    read
}

/// How far the log went, for the lag gauge, once a catch-up read a batch that
/// ends at `last`: asked of the store once, and only after a full batch (a short
/// one was all the log held).
async fn log_end_for_lag<S: EventStore>(
    store: &S,
    asked: &mut Option<u64>,
    caught_up: bool,
    last: Checkpoint,
) -> Result<u64, StoreError> {
    Ok(match *asked {
        Some(end) => end,
        None if caught_up => last.position,
        None => *asked.insert(store.last_position().await?),
    })
}

/// Empties the projection and applies the whole log again: at least every event
/// stored when it was called (on PostgreSQL a transaction in flight elsewhere
/// holds a follower back for a moment; the rebuild waits it out).
pub async fn rebuild<S: EventStore, P: Projection + Clone + 'static>(
    store: &S,
    projection: &P,
    progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    rebuild_together(store, std::slice::from_ref(projection), progress).await
}

/// Rebuilds `projections` as [`rebuild`] does, reading the log once for all of
/// them. Returns how many events were read; `progress` is told the running count.
pub async fn rebuild_together<S: EventStore, P: Projection + Clone + 'static>(
    store: &S,
    projections: &[P],
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let target = store.last_position().await?;
    let mut tx = store.begin().await?;
    // Checkpoints before tables, the order in which a runner claims a batch and
    // then writes it: the two never wait on each other in a cycle.
    for projection in projections {
        tx.save_checkpoint(&checkpoint_name(projection), Checkpoint::START)
            .await?;
    }
    for projection in projections {
        projection.reset(&mut tx).await?;
    }
    tx.commit().await?;
    let (mut read, mut again) = (0, false);
    loop {
        // A pass came short of the target: a transaction in flight held it back.
        if std::mem::replace(&mut again, true) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Each from where it stands: a runner of the service may have taken
        // some batches of some of them meanwhile.
        let mut behind: Vec<(Checkpoint, Vec<P>)> = Vec::new();
        for projection in projections {
            let at = store.load_checkpoint(&checkpoint_name(projection)).await?;
            if store.has_read_up_to(at, target).await? {
                continue;
            }
            match behind.iter_mut().find(|(from, _)| *from == at) {
                Some((_, those)) => those.push(projection.clone()),
                None => behind.push((at, vec![projection.clone()])),
            }
        }
        if behind.is_empty() {
            return Ok(read);
        }
        for (from, those) in behind {
            let before = read;
            read += catch_up_from(store, &those, from, REBUILD_BATCH, |n| {
                progress(before + n);
            })
            .await?;
        }
    }
}

/// Waits, for at most `timeout`, until the projection called `name` has read
/// the log as far as it reached when called (judged as [`rebuild`] judges it):
/// how a request reads a write that was just made. Whether it got there.
pub async fn wait_for<S: EventStore>(
    store: &S,
    name: &str,
    timeout: Duration,
) -> Result<bool, StoreError> {
    let target = store.last_position().await?;
    let checkpoint = checkpoint_of(name);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if store
            .has_read_up_to(store.load_checkpoint(&checkpoint).await?, target)
            .await?
        {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Keeps the projection up to date until `stop` resolves; failures are logged and
/// retried after `poll_interval`.
pub async fn run<S: EventStore, P: Projection + Clone + 'static>(
    store: &S,
    projection: &P,
    poll_interval: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut wait = IdleWait::new(poll_interval);
    loop {
        // Registered before the read, so an append in between still wakes us.
        let appended = store.appended().notified();
        match catch_up(store, projection, |_| {}).await {
            Ok(0) => {}
            Ok(_) => wait.busy(),
            Err(error) => {
                wait.busy();
                tracing::warn!(%error, projection = projection.name(), "projection failed; retrying");
            }
        }
        tokio::select! {
            () = appended => {}
            () = tokio::time::sleep(wait.idle()) => {}
            () = &mut stop => return,
        }
    }
}

/// A service's projections as one list, whatever their types: what its binary
/// runs, what `aftersales up` runs, and what an operator rebuilds.
pub type Projections = Vec<Arc<dyn AnyProjection>>;

/// [`Projection`] behind a pointer, for lists of different projections.
pub trait AnyProjection: Send + Sync {
    fn name(&self) -> &'static str;

    fn apply_boxed<'a>(
        &'a self,
        event: &'a RecordedEvent,
        tx: &'a mut StoreTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    fn apply_batch_boxed<'a>(
        &'a self,
        events: &'a [RecordedEvent],
        tx: &'a mut StoreTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    fn reset_boxed<'a>(
        &'a self,
        tx: &'a mut StoreTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<P: Projection> AnyProjection for P {
    fn name(&self) -> &'static str {
        Projection::name(self)
    }

    fn apply_boxed<'a>(
        &'a self,
        event: &'a RecordedEvent,
        tx: &'a mut StoreTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.apply(event, tx))
    }

    fn apply_batch_boxed<'a>(
        &'a self,
        events: &'a [RecordedEvent],
        tx: &'a mut StoreTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.apply_batch(events, tx))
    }

    fn reset_boxed<'a>(
        &'a self,
        tx: &'a mut StoreTransaction,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.reset(tx))
    }
}

impl Projection for Arc<dyn AnyProjection + '_> {
    fn name(&self) -> &'static str {
        AnyProjection::name(self.as_ref())
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        // Through the pointer: `Arc<dyn …>` is itself an `AnyProjection` (it is a
        // `Projection`), and calling that would come straight back here.
        self.as_ref().apply_boxed(event, tx).await
    }

    async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        self.as_ref().apply_batch_boxed(events, tx).await
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        self.as_ref().reset_boxed(tx).await
    }
}

/// Runs every projection of `projections` until `stop` resolves.
///
/// Standing at one checkpoint, as they do while they keep up, they follow the log
/// together: one read for all of them, and each batch applied to all in one
/// transaction that moves their checkpoints only if each still stands where this
/// runner left it (an operator's rebuild may have moved one). A projection that
/// fails, or a checkpoint moved elsewhere, sends each on its own for that round,
/// as [`run`] would, until they stand together again.
pub async fn run_all<S: EventStore, F: Future<Output = ()>>(
    store: &S,
    projections: &[Arc<dyn AnyProjection>],
    poll_interval: Duration,
    stop: impl Fn() -> F,
) {
    if projections.is_empty() {
        return;
    }
    let stop = stop();
    tokio::pin!(stop);
    let names: Vec<String> = projections.iter().map(checkpoint_name).collect();
    let mut wait = IdleWait::new(poll_interval);
    // Where they all stand, as far as this runner knows; `None` to ask the store.
    let mut together = None;
    loop {
        // Registered before the read, so an append in between still wakes us.
        let appended = store.appended().notified();
        match follow_together(store, projections, &names, &mut together).await {
            Ok(0) => {}
            Ok(_) => wait.busy(),
            Err(error) => {
                wait.busy();
                tracing::warn!(%error, "read models failed; retrying");
            }
        }
        tokio::select! {
            () = appended => {}
            () = tokio::time::sleep(wait.idle()) => {}
            () = &mut stop => return,
        }
    }
}

/// One round of [`run_all`]: how many events were read.
async fn follow_together<S: EventStore>(
    store: &S,
    projections: &[Arc<dyn AnyProjection>],
    names: &[String],
    together: &mut Option<Checkpoint>,
) -> Result<u64, StoreError> {
    let from = match together.take() {
        Some(at) => Some(at),
        None => {
            let mut at = Vec::with_capacity(names.len());
            for name in names {
                at.push(store.load_checkpoint(name).await?);
            }
            at.iter().all(|c| *c == at[0]).then(|| at[0])
        }
    };
    let Some(mut checkpoint) = from else {
        return Ok(each_on_its_own(store, projections).await);
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let lags: Vec<_> = projections
        .iter()
        .map(|p| metrics::gauge!("aftersales_projection_lag_events", "projection" => Projection::name(p)))
        .collect();
    let (mut read, mut log_end) = (0, None);
    loop {
        let batch = store.read_log(checkpoint, BATCH).await?;
        let Some(last) = batch.last().map(|e| e.checkpoint) else {
            break;
        };
        let caught_up = batch.len() < BATCH;
        let end = log_end_for_lag(store, &mut log_end, caught_up, last).await?;
        for lag in &lags {
            #[allow(clippy::cast_precision_loss)] // a gauge
            lag.set(end.saturating_sub(last.position) as f64);
        }
        let mut tx = store.begin_unflushed().await?;
        if !apply_together(&mut tx, projections, &batch, &names, checkpoint, last).await {
            drop(tx);
            return Ok(read + each_on_its_own(store, projections).await);
        }
        tx.commit().await?;
        (checkpoint, read) = (last, read + batch.len() as u64);
        if caught_up {
            break;
        }
    }
    for lag in &lags {
        lag.set(0.0);
    }
    *together = Some(checkpoint);
    Ok(read)
}

/// Applies `batch` to every projection in `tx` and moves their checkpoints from
/// `from` to `to`; `false` if a projection failed or a checkpoint stood elsewhere.
async fn apply_together(
    tx: &mut StoreTransaction,
    projections: &[Arc<dyn AnyProjection>],
    batch: &[RecordedEvent],
    names: &[&str],
    from: Checkpoint,
    to: Checkpoint,
) -> bool {
    // Claimed first: a second runner waits on the checkpoints' rows, then finds
    // them moved, and writes nothing.
    if !tx.move_checkpoints(names, from, to).await.unwrap_or(false) {
        return false;
    }
    for projection in projections {
        if projection.apply_batch(batch, tx).await.is_err() {
            return false;
        }
    }
    true
}

/// Each projection catches up on its own, as [`run`] does: a failing one holds
/// no other back. How many events were read.
async fn each_on_its_own<S: EventStore>(store: &S, projections: &[Arc<dyn AnyProjection>]) -> u64 {
    let rounds = projections.iter().map(|projection| async move {
        catch_up(store, projection, |_| {})
            .await
            .inspect_err(|error| {
                tracing::warn!(%error, projection = Projection::name(projection), "projection failed; retrying");
            })
            .unwrap_or(0)
    });
    futures::future::join_all(rounds).await.into_iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Counting;

    impl Projection for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }

        async fn apply(
            &self,
            _: &RecordedEvent,
            _: &mut StoreTransaction,
        ) -> Result<(), StoreError> {
            Err(StoreError::CorruptRow("applied".into()))
        }

        async fn reset(&self, _: &mut StoreTransaction) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_keeps_the_last_event_of_each_stream_in_log_order() {
        let log: Vec<RecordedEvent> = [
            ("s-a", 1),
            ("s-b", 1),
            ("s-a", 2),
            ("s-c", 1),
            ("s-b", 2),
            ("s-a", 3),
        ]
        .into_iter()
        .map(|(stream, version)| crate::testing::recorded(stream, version, "Tested"))
        .collect();
        let kept: Vec<(&str, u64)> = last_of_each_stream(&log)
            .into_iter()
            .map(|e| (e.stream_id.as_str(), e.stream_version))
            .collect();
        assert_eq!(kept, [("s-c", 1), ("s-b", 2), ("s-a", 3)]);
        assert!(last_of_each_stream(&[]).is_empty());
    }

    fn log(events: &[(&str, u64)]) -> Vec<RecordedEvent> {
        events
            .iter()
            .map(|&(stream, version)| crate::testing::recorded(stream, version, "Tested"))
            .collect()
    }

    /// The log orders events by writing transaction: a stream's newer event can
    /// come before an older one, and the newer is the one kept.
    #[test]
    fn a_batch_keeps_each_streams_newest_event_when_they_come_out_of_order() {
        let log = log(&[("s-a", 2), ("s-b", 1), ("s-a", 1)]);
        let kept: Vec<(&str, u64)> = last_of_each_stream(&log)
            .into_iter()
            .map(|e| (e.stream_id.as_str(), e.stream_version))
            .collect();
        assert_eq!(kept, [("s-a", 2), ("s-b", 1)]);
    }

    #[test]
    fn a_batch_spans_a_stream_only_where_it_holds_every_version() {
        let log = log(&[("s-a", 3), ("s-a", 1), ("s-b", 2), ("s-a", 2), ("s-b", 4)]);
        let held = BatchStreams::new(&log);
        let a = StreamId::parse("s-a").unwrap();
        let b = StreamId::parse("s-b").unwrap();
        let versions = |span: Option<&[&RecordedEvent]>| {
            span.map(|events| events.iter().map(|e| e.stream_version).collect::<Vec<_>>())
        };
        assert_eq!(versions(held.span(&a, 1, 3)), Some(vec![1, 2, 3]));
        assert_eq!(versions(held.span(&a, 2, 3)), Some(vec![2, 3]));
        assert_eq!(versions(held.span(&a, 1, 4)), None, "version 4 is not held");
        assert_eq!(versions(held.span(&b, 2, 4)), None, "version 3 is missing");
        assert_eq!(versions(held.span(&b, 4, 4)), Some(vec![4]));
        assert_eq!(versions(held.span(&b, 3, 2)), None);
        let c = StreamId::parse("s-c").unwrap();
        assert_eq!(versions(held.span(&c, 1, 1)), None);
    }

    /// A listed projection answers as itself (no recursion through the pointer).
    #[tokio::test]
    async fn a_listed_projection_is_the_projection_itself() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("p.db").display());
        let store = crate::AnyEventStore::connect(&url).await.unwrap();
        let listed: Projections = vec![Arc::new(Counting)];
        assert_eq!(Projection::name(&listed[0]), "counting");
        let recorded = [crate::testing::recorded("s-1", 1, "Tested")];
        let mut tx = store.begin().await.unwrap();
        listed[0].reset(&mut tx).await.unwrap();
        let error = listed[0].apply(&recorded[0], &mut tx).await.unwrap_err();
        assert!(error.to_string().contains("applied"), "{error}");
    }
}
