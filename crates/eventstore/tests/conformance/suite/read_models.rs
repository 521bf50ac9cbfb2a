//! Projections and the state cache.

use std::time::Duration;

use aftersales_eventstore::{CommandHandler, EventStore, ExpectedVersion, StoreError};

use crate::counter::{self, Counter};
use crate::harness::{Backend, ctx, events, stream};

/// Counts events per stream into the table it names.
#[derive(Clone)]
struct PerStream(&'static str);

/// The read model most tests here use.
const PER_STREAM: PerStream = PerStream("projected");

impl aftersales_eventstore::Projection for PerStream {
    fn name(&self) -> &'static str {
        self.0
    }

    async fn apply(
        &self,
        event: &aftersales_eventstore::RecordedEvent,
        tx: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), StoreError> {
        use aftersales_eventstore::TransactionConnection;
        let sql = || {
            sqlx::AssertSqlSafe(format!(
                "INSERT INTO {0} (stream_id, n) VALUES ($1, 1) \
                 ON CONFLICT (stream_id) DO UPDATE SET n = {0}.n + 1",
                self.0
            ))
        };
        match tx.connection() {
            TransactionConnection::Postgres(c) => {
                sqlx::query(sql())
                    .bind(event.stream_id.as_str().to_owned())
                    .execute(c)
                    .await?;
            }
            TransactionConnection::Sqlite(c) => {
                sqlx::query(sql())
                    .bind(event.stream_id.as_str().to_owned())
                    .execute(c)
                    .await?;
            }
        }
        Ok(())
    }

    async fn reset(
        &self,
        tx: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), StoreError> {
        tx.empty_tables(&[self.0]).await
    }
}

/// The sum of `n` in a [`PerStream`] table.
async fn total(b: &Backend, table: &str) -> i64 {
    let mut tx = b.store.begin().await.unwrap();
    let sql = || {
        sqlx::AssertSqlSafe(format!(
            "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM {table}"
        ))
    };
    match tx.connection() {
        aftersales_eventstore::TransactionConnection::Postgres(c) => {
            sqlx::query_scalar(sql()).fetch_one(c).await.unwrap()
        }
        aftersales_eventstore::TransactionConnection::Sqlite(c) => {
            sqlx::query_scalar(sql()).fetch_one(c).await.unwrap()
        }
    }
}

pub async fn projections_catch_up_once_and_rebuild_from_the_start(b: Backend) {
    use aftersales_eventstore::projection;
    b.exec("CREATE TABLE projected (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .await;
    // More events than a rebuild reads at once (4,000), so that it takes batches too.
    let streams = ["a", "b", "c", "d", "e", "f"].map(stream);
    for s in &streams {
        b.store
            .append(s, ExpectedVersion::NoStream, events(800))
            .await
            .unwrap();
    }
    // On PostgreSQL a transaction in flight in this database holds new events
    // back for a moment (the follower's horizon), so catch up until everything
    // has been seen.
    async fn settle(store: &aftersales_eventstore::AnyEventStore, expected: u64) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut read = 0;
        let mut reported = Vec::new();
        while read < expected {
            let mut batch = Vec::new();
            read += projection::catch_up(store, &PER_STREAM, |n| batch.push(n))
                .await
                .unwrap();
            reported.extend(batch);
            assert!(
                tokio::time::Instant::now() < deadline,
                "{read} of {expected}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(read, expected, "nothing applied twice");
        reported
    }
    let reported = settle(&b.store, 4800).await;
    assert!(
        reported.len() >= 3,
        "progress after each batch of 1,000: {reported:?}"
    );
    assert!(reported.windows(2).all(|w| w[0] < w[1] || w[1] <= 1000));
    // Nothing new: nothing applied twice.
    assert_eq!(
        projection::catch_up(&b.store, &PER_STREAM, |_| {})
            .await
            .unwrap(),
        0
    );
    b.store
        .append(&streams[0], ExpectedVersion::Exact(800), events(1))
        .await
        .unwrap();
    settle(&b.store, 1).await;
    assert_eq!(total(&b, "projected").await, 4801);
    assert_eq!(
        projection::rebuild(&b.store, &PER_STREAM, |_| {})
            .await
            .unwrap(),
        4801
    );
    assert_eq!(total(&b, "projected").await, 4801);
    // A name that is not a table's is refused, and empties nothing.
    let mut tx = b.store.begin().await.unwrap();
    let refused = tx
        .empty_tables(&["projected; DROP TABLE events"])
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::InvalidInput(_)), "{refused}");
    tx.commit().await.unwrap();
    assert_eq!(total(&b, "projected").await, 4801);

    // Read models rebuilt together: each complete, each at the log's end.
    b.exec("CREATE TABLE projected_too (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .await;
    let both: aftersales_eventstore::Projections = vec![
        std::sync::Arc::new(PER_STREAM),
        std::sync::Arc::new(PerStream("projected_too")),
    ];
    assert_eq!(
        projection::rebuild_together(&b.store, &both, |_| {})
            .await
            .unwrap(),
        4801
    );
    assert_eq!(total(&b, "projected").await, 4801);
    assert_eq!(total(&b, "projected_too").await, 4801);
    for each in &both {
        assert_eq!(
            projection::catch_up(&b.store, each, |_| {}).await.unwrap(),
            0
        );
    }
}

/// Read models that keep up follow the log together. One whose checkpoint was
/// moved behind their back (a rebuild starting: its table emptied, its checkpoint
/// back at the start) is not moved on from where the others stand: it reads the
/// log again from its own place.
pub async fn read_models_follow_together_and_notice_a_moved_checkpoint(b: Backend) {
    use aftersales_eventstore::projection;
    let run = following(&b, &["together_a", "together_b"]).await;
    let s = stream("followed");
    b.store
        .append(&s, ExpectedVersion::NoStream, events(5))
        .await
        .unwrap();
    let totals = || async { (total(&b, "together_a").await, total(&b, "together_b").await) };
    aftersales_testkit::eventually(totals, |t| *t == (5, 5)).await;

    let mut tx = b.store.begin().await.unwrap();
    tx.empty_tables(&["together_a"]).await.unwrap();
    tx.save_checkpoint(
        &projection::checkpoint_of("together_a"),
        aftersales_eventstore::Checkpoint::START,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    b.store
        .append(&s, ExpectedVersion::Exact(5), events(2))
        .await
        .unwrap();
    aftersales_testkit::eventually(totals, |t| *t == (7, 7)).await;
    let end = b.store.read_log(Default::default(), 10).await.unwrap()[6].checkpoint;
    for name in ["together_a", "together_b"] {
        let at = b
            .store
            .load_checkpoint(&projection::checkpoint_of(name))
            .await;
        assert_eq!(at.unwrap(), end, "{name}");
    }
    run.stop().await;
}

/// Checkpoints move together only from where they all stand: one not stored
/// stands at the start, and if any stands elsewhere the move says so.
pub async fn checkpoints_move_together_only_from_where_they_all_stand(b: Backend) {
    use aftersales_eventstore::Checkpoint;
    let at = |position| Checkpoint {
        transaction: 0,
        position,
    };
    let (one, two) = (at(1), at(2));
    let names = ["moved_a", "moved_b", "moved_c"];
    let positions = || checkpoint_positions(&b.store, &names);
    let moves = |from, to| move_checkpoints(&b.store, &names, from, to);
    assert!(!moves(one, two).await, "none stored: none stands at 1");
    assert_eq!(positions().await, [0, 0, 0]);
    assert!(
        moves(Checkpoint::START, one).await,
        "none stored: all at the start"
    );
    assert_eq!(positions().await, [1, 1, 1]);
    assert!(!moves(Checkpoint::START, two).await, "all stand at 1");

    let mut tx = b.store.begin().await.unwrap();
    tx.save_checkpoint("moved_b", two).await.unwrap();
    tx.commit().await.unwrap();
    assert!(!moves(one, two).await, "moved_b stands at 2");
    assert_eq!(positions().await, [1, 2, 1], "nothing moved");
    let mut tx = b.store.begin().await.unwrap();
    tx.save_checkpoint("moved_b", one).await.unwrap();
    tx.commit().await.unwrap();
    assert!(moves(one, two).await);
    assert_eq!(positions().await, [2, 2, 2]);
}

async fn checkpoint_positions(
    store: &aftersales_eventstore::AnyEventStore,
    names: &[&str],
) -> Vec<u64> {
    let mut positions = Vec::new();
    for name in names {
        positions.push(store.load_checkpoint(name).await.unwrap().position);
    }
    positions
}

/// Moves the checkpoints in a transaction of their own, kept if they moved.
async fn move_checkpoints(
    store: &aftersales_eventstore::AnyEventStore,
    names: &[&str],
    from: aftersales_eventstore::Checkpoint,
    to: aftersales_eventstore::Checkpoint,
) -> bool {
    let mut tx = store.begin().await.unwrap();
    let moved = tx.move_checkpoints(names, from, to).await.unwrap();
    if moved {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    moved
}

/// A read model that fails on every event holds none of the others back.
pub async fn a_failing_read_model_holds_the_others_not_back(b: Backend) {
    use aftersales_eventstore::projection;
    // No table for `together_missing`: each of its writes fails.
    let run = following(&b, &["together_a", "together_b", "together_missing"]).await;
    b.store
        .append(&stream("followed"), ExpectedVersion::NoStream, events(5))
        .await
        .unwrap();
    let totals = || async { (total(&b, "together_a").await, total(&b, "together_b").await) };
    aftersales_testkit::eventually(totals, |t| *t == (5, 5)).await;
    let missing = projection::checkpoint_of("together_missing");
    assert_eq!(
        b.store.load_checkpoint(&missing).await.unwrap(),
        aftersales_eventstore::Checkpoint::START
    );
    run.stop().await;
}

/// Three runners of one read model, as three replicas of a service would run it,
/// while the log grows: each event is counted once.
pub async fn runners_of_one_read_model_apply_each_event_once(b: Backend) {
    let runners = [
        following(&b, &["shared_runs"]).await,
        follower(&b, &["shared_runs"]),
        follower(&b, &["shared_runs"]),
    ];
    let appended = grow_the_log(&b, 40).await;
    let counted = || total(&b, "shared_runs");
    aftersales_testkit::eventually(counted, |n| *n >= appended).await;
    for runner in runners {
        runner.stop().await;
    }
    assert_eq!(total(&b, "shared_runs").await, appended);
}

/// A rebuild while the service's runner follows the same read models and the log
/// grows: the two share the work, and every event is counted once in each.
pub async fn a_rebuild_beside_a_runner_applies_each_event_once(b: Backend) {
    use aftersales_eventstore::projection;
    let run = following(&b, &["rebuilt_a", "rebuilt_b"]).await;
    let before = grow_the_log(&b, 10).await;
    let totals = || async { (total(&b, "rebuilt_a").await, total(&b, "rebuilt_b").await) };
    aftersales_testkit::eventually(totals, |t| *t == (before, before)).await;
    let both: aftersales_eventstore::Projections = vec![
        std::sync::Arc::new(PerStream("rebuilt_a")),
        std::sync::Arc::new(PerStream("rebuilt_b")),
    ];
    let (rebuilt, grown) = tokio::join!(
        projection::rebuild_together(&b.store, &both, |_| {}),
        grow_the_log(&b, 10),
    );
    rebuilt.unwrap();
    let appended = before + grown;
    aftersales_testkit::eventually(totals, |t| t.0 >= appended && t.1 >= appended).await;
    run.stop().await;
    assert_eq!(totals().await, (appended, appended));
}

/// Appends `rounds` batches of 50 events to streams of their own, a few at a
/// time; how many events that made.
async fn grow_the_log(b: &Backend, rounds: usize) -> i64 {
    for round in 0..rounds {
        let s = stream(&format!("grown-{}", uuid::Uuid::now_v7().simple()));
        b.store
            .append(&s, ExpectedVersion::NoStream, events(50))
            .await
            .unwrap();
        if round % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    i64::try_from(rounds * 50).unwrap()
}

/// [`aftersales_eventstore::projection::run_all`] over [`PerStream`] read models
/// named `tables` (each made unless its name ends in `_missing`), until stopped.
async fn following(b: &Backend, tables: &[&'static str]) -> Following {
    for table in tables.iter().filter(|t| !t.ends_with("_missing")) {
        b.exec(&format!(
            "CREATE TABLE {table} (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)"
        ))
        .await;
    }
    follower(b, tables)
}

/// [`following`] over tables already made.
fn follower(b: &Backend, tables: &[&'static str]) -> Following {
    let projections: aftersales_eventstore::Projections = tables
        .iter()
        .map(|t| std::sync::Arc::new(PerStream(t)) as _)
        .collect();
    let store = b.store.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        let stop = || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        aftersales_eventstore::projection::run_all(
            &store,
            &projections,
            Duration::from_millis(20),
            stop,
        )
        .await;
    });
    Following { stop, task }
}

struct Following {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Following {
    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap();
    }
}

/// A request that just wrote waits for a read model to read that far, and is
/// told when it does not get there in time.
pub async fn a_request_waits_for_a_projection_to_reach_its_write(b: Backend) {
    use aftersales_eventstore::projection;
    b.exec("CREATE TABLE projected (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .await;
    let name = aftersales_eventstore::Projection::name(&PER_STREAM);
    let wait = |timeout| projection::wait_for(&b.store, name, Duration::from_millis(timeout));
    assert!(
        wait(0).await.unwrap(),
        "an empty log is read as far as it goes"
    );
    b.store
        .append(&stream("a"), ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    assert!(!wait(100).await.unwrap(), "nobody is applying the events");

    let store = b.store.clone();
    let applier = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut read = 0;
        while read < 3 {
            read += projection::catch_up(&store, &PER_STREAM, |_| {})
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(
        wait(20_000).await.unwrap(),
        "it waits until they are applied"
    );
    applier.await.unwrap();
}

pub async fn state_cache_drops_streams_the_log_moves_on(b: Backend) {
    use aftersales_eventstore::StateCache;
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let cache = std::sync::Arc::new(StateCache::<Counter>::new(100));
    let s = stream("cached");
    handler
        .handle(&s, &counter::Command::Add(1), &ctx(1))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let (cache, store) = (cache.clone(), b.store.clone());
        tokio::spawn(async move {
            cache
                .follow(&store, Duration::from_millis(20), async {
                    let _ = stopped.await;
                })
                .await;
        })
    };
    // Let the follower find the log's end before the writes below.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cache.load(&handler, &s).await.unwrap().state.total, 1);

    // A cache nobody invalidates shows that reads are served from memory.
    let unfollowed = StateCache::<Counter>::new(100);
    assert_eq!(unfollowed.load(&handler, &s).await.unwrap().state.total, 1);

    // Another process writes: the cached state is dropped once the log shows it.
    let other = CommandHandler::<Counter, _>::new(b.another_process().await);
    other
        .handle(&s, &counter::Command::Add(2), &ctx(2))
        .await
        .unwrap();
    assert_eq!(unfollowed.load(&handler, &s).await.unwrap().state.total, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let total = cache.load(&handler, &s).await.unwrap().state.total;
        if total == 3 {
            break;
        }
        assert_eq!(total, 1, "either the old state or the new one");
        assert!(tokio::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // This process writes and forgets: the next read is fresh at once.
    handler
        .handle(&s, &counter::Command::Add(4), &ctx(3))
        .await
        .unwrap();
    cache.forget(&s);
    assert_eq!(cache.load(&handler, &s).await.unwrap().state.total, 7);
    // A stream with no events is not kept.
    let empty = stream("empty");
    assert_eq!(cache.load(&handler, &empty).await.unwrap().version, 0);
    handler
        .handle(&empty, &counter::Command::Add(5), &ctx(4))
        .await
        .unwrap();
    assert_eq!(cache.load(&handler, &empty).await.unwrap().version, 1);
    stop.send(()).unwrap();
    follower.await.unwrap();
}

/// A read model folds a stream's history from the batch when the batch holds it
/// all (the very rows a read would return), and reads it otherwise; a stream's
/// events out of order in the batch come back in version order.
pub async fn histories_come_from_the_batch_or_the_store(b: Backend) {
    use aftersales_eventstore::Checkpoint;
    use aftersales_eventstore::projection::Histories;
    let older = stream("hist");
    let begun = stream("hist");
    b.store
        .append(&older, ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    b.store
        .append(&begun, ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    let log = b.store.read_log(Checkpoint::START, 100).await.unwrap();
    assert_eq!(log.len(), 5);
    // The older stream's last event only; the new stream whole, its second first.
    let batch = vec![log[2].clone(), log[4].clone(), log[3].clone()];
    let histories = Histories::gather(&b.store, &batch, [&batch[0], &batch[1]])
        .await
        .unwrap();

    let read = histories.upto(&batch[0]);
    let versions: Vec<u64> = read.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, [1, 2, 3]);
    let ids: Vec<_> = read.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, [log[0].event_id, log[1].event_id, log[2].event_id]);

    let held = histories.upto(&batch[1]);
    assert_eq!(held.len(), 2);
    assert!(std::ptr::eq(held[0], &batch[2]), "version 1 from the batch");
    assert!(std::ptr::eq(held[1], &batch[1]), "version 2 from the batch");

    // Up to an earlier version of a stream read whole: only that far.
    let earlier = histories.upto(&log[1]);
    assert_eq!(earlier.len(), 2);
    assert_eq!(earlier[1].event_id, log[1].event_id);
}
