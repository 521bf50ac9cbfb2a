//! Consumer behaviour on JetStream: dead letters and replay, progress
//! acknowledgements for slow handlers, and trace continuation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use aftersales_messaging::trace::current_trace_context;
use aftersales_messaging::{ConsumerSettings, DeadLetters, RetryPolicy};

use crate::harness::{
    CONSUMER, Pipeline, SOURCE, append_events, append_events_with, assert_exactly_once,
    consumer_settings, effect_ids, fast_retry, names, wait_for_effects,
};

const WAIT: Duration = Duration::from_secs(60);

async fn wait_for_dead_letters(
    dlq: &DeadLetters,
    n: usize,
) -> Vec<aftersales_messaging::DeadLetter> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let letters = dlq.list(CONSUMER).await.unwrap();
        if letters.len() == n {
            return letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} dead letters, expected {n}",
            letters.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_dead_lettered_after_n_attempts_and_replayed_once() {
    let mut p = Pipeline::postgres().await;
    p.effects.broken.store(true, Ordering::SeqCst);
    p.start_relay();
    p.start_consumer(ConsumerSettings {
        retry: fast_retry(4),
        ..consumer_settings()
    })
    .await;
    let events = append_events(&p.producer, 2, 2).await;
    let dlq = DeadLetters::new(p.js.clone(), names());
    let letters = wait_for_dead_letters(&dlq, 2).await;
    assert_eq!(p.effects.calls.load(Ordering::SeqCst), 8, "4 attempts each");
    assert!(effect_ids(&p.consumer).await.is_empty());
    for letter in &letters {
        assert_eq!(letter.attempts, 4);
        assert_eq!(letter.error, "the handler is broken");
        assert_eq!(letter.event_type.as_deref(), Some("Happened"));
        assert_eq!(letter.subject, names().event_subject(SOURCE, "Happened"));
        assert!(letter.event_id.is_some_and(|id| events.contains(&id)));
    }

    // Fixed: replaying applies each once, even if the operator replays twice.
    p.effects.broken.store(false, Ordering::SeqCst);
    for letter in &letters {
        assert!(dlq.replay(CONSUMER, letter.sequence).await.unwrap());
        // The first may be applied and its letter removed before this one.
        dlq.replay(CONSUMER, letter.sequence).await.unwrap();
    }
    wait_for_effects(&p.consumer, 2, WAIT).await;
    wait_for_dead_letters(&dlq, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(&effect_ids(&p.consumer).await, &events);
    // A replay of a letter that is gone says so and changes nothing.
    assert!(!dlq.replay(CONSUMER, letters[0].sequence).await.unwrap());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_can_never_be_handled_goes_to_the_dead_letters_at_once() {
    let mut p = Pipeline::postgres().await;
    p.start_relay();
    p.start_consumer(consumer_settings()).await;
    crate::harness::append_raw(&p.producer, b"not json").await;
    let dlq = DeadLetters::new(p.js.clone(), names());
    let letters = wait_for_dead_letters(&dlq, 1).await;
    assert_eq!(letters[0].attempts, 1);
    assert!(
        letters[0].error.contains("expected"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].payload, b"not json");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_sends_progress_instead_of_being_redelivered() {
    let mut p = Pipeline::postgres().await;
    *p.effects.slow.lock().unwrap() = Some(Duration::from_millis(1500));
    p.start_relay();
    p.start_consumer(ConsumerSettings {
        ack_wait: Duration::from_millis(500),
        retry: RetryPolicy {
            max_attempts: 1,
            ..fast_retry(1)
        },
        ..consumer_settings()
    })
    .await;
    let events = append_events(&p.producer, 2, 1).await;
    wait_for_effects(&p.consumer, 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut consumer =
        p.js.get_stream(names().service_stream(SOURCE))
            .await
            .unwrap()
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>(CONSUMER)
            .await
            .unwrap();
    let info = consumer.info().await.unwrap();
    // Every delivery, redeliveries included, takes a consumer sequence number.
    assert_eq!(
        info.delivered.consumer_sequence, 2,
        "work in progress was redelivered"
    );
    assert_eq!(p.effects.calls.load(Ordering::SeqCst), 2);
    assert_exactly_once(&effect_ids(&p.consumer).await, &events);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_span_continues_the_producer_trace() {
    let exporter = crate::harness::exported_spans();
    let mut p = Pipeline::postgres().await;
    p.start_relay();
    p.start_consumer(consumer_settings()).await;
    let producer = tracing::info_span!("register device");
    let (traceparent, _) = producer.in_scope(current_trace_context);
    let traceparent = traceparent.expect("the producer span has a context");
    let parts: Vec<&str> = traceparent.split('-').collect();
    let (trace_id, producer_span_id) = (parts[1].to_owned(), parts[2].to_owned());
    append_events_with(&p.producer, 1, 1, Some(traceparent.clone())).await;
    wait_for_effects(&p.consumer, 1, WAIT).await;
    p.stop().await;
    drop(producer);

    let spans = exporter.get_finished_spans().unwrap();
    let subject = names().event_subject(SOURCE, "Happened");
    let process = spans
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == trace_id && s.name != "register device")
        .unwrap_or_else(|| {
            panic!(
                "no span in the producer's trace among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(process.name, format!("process {subject}"));
    assert_eq!(process.parent_span_id.to_string(), producer_span_id);
    assert_eq!(process.span_kind, opentelemetry::trace::SpanKind::Consumer);
    let attribute = |key: &str| {
        process
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attribute("messaging.system").as_deref(), Some("nats"));
    assert_eq!(attribute("messaging.destination.name"), Some(subject));
    assert_eq!(
        attribute("messaging.consumer.group.name").as_deref(),
        Some(CONSUMER)
    );
    assert_eq!(
        attribute("messaging.operation.type").as_deref(),
        Some("process")
    );
}

/// Appends one event per handled event to a single stream, deciding on the
/// committed head like a command handler does.
struct Tally(aftersales_eventstore::AnyEventStore);

impl aftersales_messaging::Handler for Tally {
    async fn handle(
        &self,
        event: &aftersales_messaging::InboundEvent,
        tx: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), aftersales_messaging::HandlerError> {
        use aftersales_eventstore::{EventStore as _, ExpectedVersion, NewEvent, StreamId};
        let stream = StreamId::parse("tally").unwrap();
        let head = self.0.stream_head(&stream).await?.map_or(0, |h| h.version);
        let expected = if head == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(head)
        };
        let counted = NewEvent {
            event_id: uuid::Uuid::new_v5(&event.event_id, b"tally"),
            event_type: "Counted".into(),
            schema_version: 1,
            payload: b"{}".to_vec(),
            personal: None,
            metadata: event.metadata.clone(),
        };
        tx.append(&stream, expected, vec![counted]).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_in_one_batch_that_move_the_same_stream_all_land_once() {
    use aftersales_eventstore::{EventStore as _, StreamId, read_whole_stream};
    let mut p = Pipeline::postgres().await;
    p.start_relay();
    let consumer = aftersales_messaging::JetStreamConsumer::new(
        p.js.clone(),
        names(),
        crate::harness::subscription(),
        p.consumer.clone(),
        std::sync::Arc::new(Tally(p.consumer.clone())),
        consumer_settings(),
    )
    .unwrap();
    consumer
        .provision(&aftersales_messaging::StreamSettings::default())
        .await
        .unwrap();
    // Appended before the consumer starts, so they arrive in full batches.
    let events = append_events(&p.producer, 300, 100).await;
    let (stop, shutdown) = aftersales_core::Shutdown::new();
    let running = tokio::spawn(async move { consumer.run(shutdown).await });
    let tally = StreamId::parse("tally").unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while p
        .consumer
        .stream_head(&tally)
        .await
        .unwrap()
        .map_or(0, |h| h.version)
        < 300
    {
        assert!(tokio::time::Instant::now() < deadline, "tally incomplete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.trigger();
    running.await.unwrap();
    let counted = read_whole_stream(&p.consumer, &tally).await.unwrap();
    assert_eq!(counted.len(), 300);
    let expected: Vec<_> = events
        .iter()
        .map(|id| uuid::Uuid::new_v5(id, b"tally"))
        .collect();
    let mut got: Vec<_> = counted.iter().map(|e| e.event_id).collect();
    got.sort();
    let mut want = expected;
    want.sort();
    assert_eq!(got, want);
    assert!(
        p.consumer
            .verify_stream(&tally, None)
            .await
            .unwrap()
            .is_intact()
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_is_idempotent_and_applies_changed_settings() {
    use aftersales_messaging::{
        JetStreamConsumer, Relay, RelaySettings, StreamSettings, Subscription,
        ensure_service_stream,
    };
    let p = Pipeline::postgres().await;
    let changed = StreamSettings {
        duplicate_window: Duration::from_secs(300),
        ..StreamSettings::default()
    };
    for settings in [&changed, &changed] {
        ensure_service_stream(&p.js, &names(), SOURCE, settings)
            .await
            .unwrap();
    }
    let mut stream =
        p.js.get_stream(names().service_stream(SOURCE))
            .await
            .unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.duplicate_window, Duration::from_secs(300));
    assert_eq!(
        config.storage,
        async_nats::jetstream::stream::StorageType::File
    );
    assert_eq!(config.num_replicas, 1);

    // The consumer's filter follows the event types it is given.
    for types in [vec!["Happened"], vec!["Happened", "AlsoHappened"]] {
        let consumer = JetStreamConsumer::new(
            p.js.clone(),
            names(),
            Subscription::new(CONSUMER, SOURCE, types).unwrap(),
            p.consumer.clone(),
            p.effects.clone(),
            consumer_settings(),
        )
        .unwrap();
        consumer
            .provision(&StreamSettings::default())
            .await
            .unwrap();
        consumer
            .provision(&StreamSettings::default())
            .await
            .unwrap();
    }
    let mut durable = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(CONSUMER)
        .await
        .unwrap();
    let mut filters = durable.info().await.unwrap().config.filter_subjects.clone();
    filters.sort();
    assert_eq!(
        filters,
        vec![
            names().event_subject(SOURCE, "AlsoHappened"),
            names().event_subject(SOURCE, "Happened"),
        ]
    );

    // Settings that cannot work are refused before anything runs.
    let bad = StreamSettings {
        replicas: 0,
        ..StreamSettings::default()
    };
    let error = ensure_service_stream(&p.js, &names(), SOURCE, &bad)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("replicas"), "{error}");
    let short_window = StreamSettings {
        duplicate_window: Duration::from_secs(5),
        ..StreamSettings::default()
    };
    let error = Relay::new(
        p.producer.clone(),
        p.js.clone(),
        names(),
        SOURCE,
        RelaySettings::default(),
        &short_window,
    )
    .unwrap_err();
    assert_eq!(error.field, "duplicate_window");
    let error = JetStreamConsumer::new(
        p.js.clone(),
        names(),
        crate::harness::subscription(),
        p.consumer.clone(),
        p.effects.clone(),
        ConsumerSettings {
            max_in_flight: 0,
            ..consumer_settings()
        },
    )
    .unwrap_err();
    assert_eq!(error.field, "max_in_flight");
    p.stop().await;
}

/// [`Tally`], taking its time: deliveries queue up behind it.
struct SlowTally(Tally);

impl aftersales_messaging::Handler for SlowTally {
    async fn handle(
        &self,
        event: &aftersales_messaging::InboundEvent,
        tx: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), aftersales_messaging::HandlerError> {
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.0.handle(event, tx).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stopped_mid_stream_hands_back_what_waits_for_the_next_at_once() {
    use aftersales_eventstore::{EventStore as _, StreamId, read_whole_stream};
    let mut p = Pipeline::postgres().await;
    p.start_relay();
    let settings = ConsumerSettings {
        max_in_flight: 32,
        max_batch: 4,
        ack_wait: Duration::from_secs(30),
        ..consumer_settings()
    };
    let consumer = || {
        aftersales_messaging::JetStreamConsumer::new(
            p.js.clone(),
            names(),
            crate::harness::subscription(),
            p.consumer.clone(),
            std::sync::Arc::new(SlowTally(Tally(p.consumer.clone()))),
            settings.clone(),
        )
        .unwrap()
    };
    consumer()
        .provision(&aftersales_messaging::StreamSettings::default())
        .await
        .unwrap();
    let events = append_events(&p.producer, 120, 120).await;
    let tally = StreamId::parse("tally").unwrap();
    let counted = || async {
        p.consumer
            .stream_head(&tally)
            .await
            .unwrap()
            .map_or(0, |h| h.version)
    };
    let until = |n: u64| async move {
        let deadline = tokio::time::Instant::now() + WAIT;
        while counted().await < n {
            assert!(tokio::time::Instant::now() < deadline, "tally short of {n}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Stopped with deliveries waiting behind the slow handler, then started
    // again at once: what waited is delivered again now, not once its ack
    // wait (30 s) runs out.
    let first = consumer();
    let (stop, shutdown) = aftersales_core::Shutdown::new();
    let running = tokio::spawn(async move { first.run(shutdown).await });
    until(20).await;
    stop.trigger();
    running.await.unwrap();
    let second = consumer();
    let (stop, shutdown) = aftersales_core::Shutdown::new();
    let running = tokio::spawn(async move { second.run(shutdown).await });
    let started = tokio::time::Instant::now();
    until(120).await;
    assert!(
        started.elapsed() < settings.ack_wait / 2,
        "the handed-back deliveries waited out their ack wait"
    );
    stop.trigger();
    running.await.unwrap();
    // Each once. (Not necessarily in order: a delivery handed back can reach
    // the stopping subscription again and wait out its ack wait after all.)
    let mut applied: Vec<_> = read_whole_stream(&p.consumer, &tally)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    let mut sent: Vec<_> = events
        .iter()
        .map(|id| uuid::Uuid::new_v5(id, b"tally"))
        .collect();
    applied.sort();
    sent.sort();
    assert_eq!(applied, sent);
    p.stop().await;
}

/// In one batch, an event loses a race and a later one needs its effect: after the
/// batch, both go again alone at once, not after the retry delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_after_a_conflict_in_its_batch_goes_again_at_once() {
    let mut p = Pipeline::postgres().await;
    p.effects.conflict_once.lock().unwrap().insert(1);
    p.effects.needs.lock().unwrap().insert(2, 1);
    // The first batch is the first event alone (a batch starts as soon as one
    // waits); while it takes its time, the other two arrive and make the next.
    *p.effects.slow.lock().unwrap() = Some(Duration::from_millis(300));
    let events = append_events(&p.producer, 3, 3).await;
    p.start_relay();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.stream_messages().await.0 < 3 {
        assert!(tokio::time::Instant::now() < deadline, "not published");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let slow_retries = RetryPolicy {
        max_attempts: 5,
        first_delay: Duration::from_secs(30),
        max_delay: Duration::from_secs(60),
    };
    p.start_consumer(ConsumerSettings {
        retry: slow_retries,
        ..consumer_settings()
    })
    .await;
    wait_for_effects(&p.consumer, 3, Duration::from_secs(5)).await;
    assert_exactly_once(&effect_ids(&p.consumer).await, &events);
    p.stop().await;
}
