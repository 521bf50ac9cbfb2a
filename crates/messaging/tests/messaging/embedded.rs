//! Embedded mode: the same handler following the producer's log directly.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_eventstore::{AnyEventStore, EventStore};
use aftersales_messaging::{LogConsumer, LogConsumerSettings};

use crate::harness::{
    Effects, append_events, assert_exactly_once, effect_ids, fast_retry, postgres_store,
    sqlite_store, subscription, wait_for_effects,
};

const WAIT: Duration = Duration::from_secs(60);

fn settings() -> LogConsumerSettings {
    LogConsumerSettings {
        retry: fast_retry(3),
        batch_size: 100,
        // Small, so that a run spans several transactions.
        max_batch: 4,
        poll_interval: Duration::from_millis(20),
    }
}

async fn applies_each_event_once_across_restarts(source: AnyEventStore, store: AnyEventStore) {
    Effects::create_table(&store).await;
    let effects = Effects::new();
    let consumer = || {
        LogConsumer::new(
            source.clone(),
            store.clone(),
            subscription(),
            Arc::clone(&effects),
            settings(),
        )
    };
    let (stop, shutdown) = Shutdown::new();
    let first = consumer();
    let running = tokio::spawn(async move { first.run(shutdown).await });
    let mut events = append_events(&source, 1000, 20).await;
    wait_for_effects(&store, 500, WAIT).await;
    stop.trigger();
    running.await.unwrap();

    // Appended while no consumer ran; the next one picks up at its checkpoint.
    events.extend(append_events(&source, 1000, 20).await);
    let (stop, shutdown) = Shutdown::new();
    let second = consumer();
    let running = tokio::spawn(async move { second.run(shutdown).await });
    wait_for_effects(&store, 2000, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.trigger();
    running.await.unwrap();
    assert_exactly_once(&effect_ids(&store).await, &events);
    assert_eq!(effects.calls.load(Ordering::SeqCst), 2000);
    let checkpoint = store
        .load_checkpoint("consumer:effects:producer")
        .await
        .unwrap();
    assert_ne!(checkpoint, aftersales_eventstore::Checkpoint::START);
    assert!(
        source.read_log(checkpoint, 1).await.unwrap().is_empty(),
        "checkpoint at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_consumer_applies_each_event_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_store(&dir, "producer.db").await;
    let store = sqlite_store(&dir, "consumer.db").await;
    applies_each_event_once_across_restarts(source, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_consumer_applies_each_event_once_across_restarts() {
    applies_each_event_once_across_restarts(postgres_store().await, postgres_store().await).await;
}

/// Events a consumer does not want move its checkpoint with no transaction of
/// their own each time; it is still saved while the consumer runs, not only
/// when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_passing_over_events_saves_its_checkpoint_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_store(&dir, "producer.db").await;
    let store = sqlite_store(&dir, "consumer.db").await;
    Effects::create_table(&store).await;
    let effects = Effects::new();
    let subscription =
        aftersales_messaging::Subscription::new("passing", "producer", ["SomethingElse"]).unwrap();
    let consumer = LogConsumer::new(
        source.clone(),
        store.clone(),
        subscription,
        Arc::clone(&effects),
        settings(),
    );
    let (stop, shutdown) = Shutdown::new();
    let running = tokio::spawn(async move { consumer.run(shutdown).await });
    append_events(&source, 30, 3).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let checkpoint = store
            .load_checkpoint("consumer:passing:producer")
            .await
            .unwrap();
        if source.read_log(checkpoint, 1).await.unwrap().is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "checkpoint not saved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.trigger();
    running.await.unwrap();
    assert_eq!(effects.calls.load(Ordering::SeqCst), 0);
}

/// A consumer that reached the log's end waits for the next append instead of
/// reading again, so an append made while it handled the last batch must still
/// wake it: each event here is appended while the previous one is being
/// handled (slowly), and the poll interval is too long to hide a missed wake-up.
async fn wakes_for_an_append_made_while_it_handles_the_last(
    source: AnyEventStore,
    store: AnyEventStore,
) {
    Effects::create_table(&store).await;
    let effects = Effects::new();
    *effects.slow.lock().unwrap() = Some(Duration::from_millis(50));
    let consumer = LogConsumer::new(
        source.clone(),
        store.clone(),
        subscription(),
        Arc::clone(&effects),
        LogConsumerSettings {
            poll_interval: Duration::from_secs(600),
            ..settings()
        },
    );
    let (stop, shutdown) = Shutdown::new();
    let running = tokio::spawn(async move { consumer.run(shutdown).await });
    let mut events = Vec::new();
    for i in 1..=20u64 {
        events.extend(append_events(&source, 1, 1).await);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while effects.calls.load(Ordering::SeqCst) < i {
            assert!(
                tokio::time::Instant::now() < deadline,
                "event {i} not handled: the consumer missed its append"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    wait_for_effects(&store, 20, WAIT).await;
    stop.trigger();
    running.await.unwrap();
    assert_exactly_once(&effect_ids(&store).await, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_consumer_wakes_for_an_append_made_while_it_handles_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_store(&dir, "producer.db").await;
    let store = sqlite_store(&dir, "consumer.db").await;
    wakes_for_an_append_made_while_it_handles_the_last(source, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_consumer_wakes_for_an_append_made_while_it_handles_the_last() {
    wakes_for_an_append_made_while_it_handles_the_last(
        postgres_store().await,
        postgres_store().await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_events_become_dead_letters_and_replay_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_store(&dir, "producer.db").await;
    let store = sqlite_store(&dir, "consumer.db").await;
    Effects::create_table(&store).await;
    let effects = Effects::new();
    effects.broken.store(true, Ordering::SeqCst);
    let consumer = Arc::new(LogConsumer::new(
        source.clone(),
        store.clone(),
        subscription(),
        Arc::clone(&effects),
        settings(),
    ));
    let (stop, shutdown) = Shutdown::new();
    let running = {
        let consumer = Arc::clone(&consumer);
        tokio::spawn(async move { consumer.run(shutdown).await })
    };
    let events = append_events(&source, 3, 3).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while consumer.dead_letters().await.unwrap().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no dead letters");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let letters = consumer.dead_letters().await.unwrap();
    assert_eq!(effects.calls.load(Ordering::SeqCst), 9, "3 attempts each");
    assert!(
        letters
            .iter()
            .all(|l| l.attempts == 3 && l.error == "the handler is broken")
    );
    assert_eq!(
        letters.iter().map(|l| l.event_id).collect::<Vec<_>>(),
        events,
        "in log order"
    );
    assert!(effect_ids(&store).await.is_empty());

    // Caught up: the failures are dead letters, not pending.
    assert_eq!(consumer.pending().await.unwrap(), 0);

    // One letter at a time, as an operator would: still broken, it stays.
    let first = letters[0].id;
    let again = consumer.replay_dead_letter(first).await.unwrap();
    assert_eq!(again, Some(Err("the handler is broken".to_owned())));
    assert_eq!(consumer.dead_letters().await.unwrap().len(), 3);
    effects.broken.store(false, Ordering::SeqCst);
    assert_eq!(
        consumer.replay_dead_letter(first).await.unwrap(),
        Some(Ok(()))
    );
    assert_eq!(
        consumer.replay_dead_letter(first).await.unwrap(),
        None,
        "resolved"
    );
    assert_eq!(effect_ids(&store).await, vec![events[0]]);

    assert_eq!(consumer.replay_dead_letters().await.unwrap(), 2);
    assert_eq!(consumer.replay_dead_letters().await.unwrap(), 0);
    assert!(consumer.dead_letters().await.unwrap().is_empty());
    // The consumer moved on past the dead letters meanwhile.
    let later = append_events(&source, 2, 2).await;
    wait_for_effects(&store, 5, WAIT).await;
    stop.trigger();
    running.await.unwrap();
    let all: Vec<_> = events.into_iter().chain(later).collect();
    assert_exactly_once(&effect_ids(&store).await, &all);
}

/// Events fail once in the middle of batches: what came before each commits, the
/// failed one leaves nothing of its first attempt (its batch starts again, with
/// savepoints) and is applied alone on its second, and the rest follow, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_failing_inside_a_batch_is_retried_alone_and_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_store(&dir, "producer.db").await;
    let store = sqlite_store(&dir, "consumer.db").await;
    Effects::create_table(&store).await;
    let effects = Effects::new();
    effects.fail_once.lock().unwrap().extend([2, 5, 6, 17]);
    // Appended before the consumer starts, so that its batches are full.
    let events = append_events(&source, 20, 5).await;
    let consumer = LogConsumer::new(
        source.clone(),
        store.clone(),
        subscription(),
        Arc::clone(&effects),
        settings(),
    );
    let (stop, shutdown) = Shutdown::new();
    let running = tokio::spawn(async move { consumer.run(shutdown).await });
    wait_for_effects(&store, 20, WAIT).await;
    stop.trigger();
    running.await.unwrap();
    assert_exactly_once(&effect_ids(&store).await, &events);
    // Batches of four from event 0, failures starred: [0 1 2*] [3 4 5*] [6*]
    // [7 8 9 10] [11 12 13 14] [15 16 17*] [18 19]. A batch that fails runs the
    // events before the failed one again under savepoints (2 + 2 + 0 + 2), and
    // each failed one goes again alone.
    assert_eq!(
        effects.calls.load(Ordering::SeqCst),
        20 + 6 + 4,
        "the events before each failure again, and one retry for each of four"
    );
    assert!(effects.fail_once.lock().unwrap().is_empty());
    let checkpoint = store
        .load_checkpoint("consumer:effects:producer")
        .await
        .unwrap();
    assert!(source.read_log(checkpoint, 1).await.unwrap().is_empty());
}
