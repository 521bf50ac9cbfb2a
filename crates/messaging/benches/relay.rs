//! Relay throughput against raw async-nats JetStream publishing, and the latency
//! from append to handler at a steady rate.
//!
//! `cargo bench -p aftersales-messaging --bench relay` (a release build). It starts
//! a durable PostgreSQL (fsync on) and nats-server with `sync_interval: always`,
//! like production, plus one more nats-server with the default sync interval to
//! show what durability costs.
//!
//! - throughput: `BENCH_RELAY_EVENTS` (default 20,000) stored events relayed from
//!   the log to a fresh stream, against publishing the same messages (payloads and
//!   headers, built beforehand) with the same number in flight (512) from memory. Alternating
//!   rounds (raw, relay, relay, raw, …), `BENCH_ROUNDS` (default 3) of each; the
//!   median is reported.
//! - latency: `BENCH_LATENCY_SECONDS` (default 10) of appends at 1,000 events per
//!   second, each relayed and handled by a JetStream consumer whose handler commits
//!   through the inbox; time from before the append to the handler's commit.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aftersales_core::Shutdown;
use aftersales_eventstore::{
    AnyEventStore, Checkpoint, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
    StoreTransaction, StreamId,
};
use aftersales_messaging::envelope::{JSON, headers_for};
use aftersales_messaging::{
    ConsumerSettings, Handler, HandlerError, InboundEvent, JetStreamConsumer, Names, Relay,
    RelaySettings, StreamSettings, Subscription, connect, ensure_service_stream,
};
use aftersales_testkit::{NatsOptions, NatsServer, PostgresOptions, PostgresServer};
use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use uuid::Uuid;

const IN_FLIGHT: usize = 512;
const SERVICE: &str = "repair";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn new_event(i: usize, sent_micros: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "RepairStarted".into(),
        schema_version: 1,
        payload: format!(
            r#"{{"repair_id":"r-{i}","technician":"tech-7","bench":"sc-berlin-01","sent":{sent_micros}}}"#
        )
        .into_bytes(),
        personal: None,
        metadata: Metadata {
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
            actor: "staff:tech-7".into(),
            region: "bench".into(),
            #[allow(clippy::disallowed_methods)]
            recorded_at: chrono::Utc::now(),
        },
    }
}

async fn fill(store: &AnyEventStore, n: usize) -> Vec<RecordedEvent> {
    for chunk in 0..n.div_ceil(100) {
        let stream = StreamId::parse(format!("repair-{chunk}")).unwrap();
        let events = (0..100.min(n - chunk * 100))
            .map(|i| new_event(chunk * 100 + i, 0))
            .collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .unwrap();
    }
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let after = all
            .last()
            .map_or(Checkpoint::START, |e: &RecordedEvent| e.checkpoint);
        all.extend(store.read_log(after, 1000).await.unwrap());
    }
    all
}

async fn fresh_stream(js: &jetstream::Context, names: &Names) {
    let _ = js.delete_stream(names.service_stream(SERVICE)).await;
    ensure_service_stream(js, names, SERVICE, &StreamSettings::default())
        .await
        .unwrap();
}

/// Publishes the events as the relay would, from memory, `IN_FLIGHT` at a time.
async fn raw_publish(js: &jetstream::Context, names: &Names, events: &[RecordedEvent]) -> f64 {
    // The same messages the relay sends, built before the clock starts: the
    // baseline is the client and the broker alone.
    let messages: Vec<(String, PublishMessage)> = events
        .iter()
        .map(|e| {
            (
                names.event_subject(SERVICE, &e.event_type),
                PublishMessage::build()
                    .payload(e.payload.clone().into())
                    .headers(headers_for(SERVICE, e, JSON))
                    .message_id(e.event_id.to_string()),
            )
        })
        .collect();
    let start = Instant::now();
    let mut in_flight: VecDeque<PublishAckFuture> = VecDeque::with_capacity(IN_FLIGHT);
    for (subject, message) in messages {
        if in_flight.len() >= IN_FLIGHT {
            in_flight.pop_front().unwrap().await.unwrap();
        }
        in_flight.push_back(js.send_publish(subject, message).await.unwrap());
    }
    for ack in in_flight {
        ack.await.unwrap();
    }
    events.len() as f64 / start.elapsed().as_secs_f64()
}

async fn relay_all(
    store: &AnyEventStore,
    js: &jetstream::Context,
    names: &Names,
    last: Checkpoint,
    count: usize,
) -> f64 {
    let relay = Relay::new(
        store.clone(),
        js.clone(),
        names.clone(),
        SERVICE,
        RelaySettings {
            max_in_flight: IN_FLIGHT,
            ..RelaySettings::default()
        },
        &StreamSettings::default(),
    )
    .unwrap();
    store
        .save_checkpoint(&relay.checkpoint_name(), Checkpoint::START)
        .await
        .unwrap();
    let name = relay.checkpoint_name();
    let (stop, shutdown) = Shutdown::new();
    let start = Instant::now();
    let task = tokio::spawn(async move { relay.run(shutdown).await });
    // The relay saves its checkpoint as soon as it has caught up.
    while store.load_checkpoint(&name).await.unwrap() != last {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    stop.trigger();
    task.await.unwrap();
    count as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Records how long each event took from before its append to its handler.
struct Latency {
    base: Instant,
    samples: Mutex<Vec<Duration>>,
}

#[derive(serde::Deserialize)]
struct Sent {
    sent: u64,
}

impl Handler for Latency {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let sent: Sent = event.json().map_err(HandlerError::permanent)?;
        // A real effect in the same transaction as the inbox record.
        tx.save_checkpoint(
            "bench-latency",
            Checkpoint {
                transaction: 0,
                position: event.position,
            },
        )
        .await?;
        let elapsed = self
            .base
            .elapsed()
            .saturating_sub(Duration::from_micros(sent.sent));
        self.samples.lock().unwrap().push(elapsed);
        Ok(())
    }
}

async fn latency(
    pg: &PostgresServer,
    js: &jetstream::Context,
    names: &Names,
    seconds: usize,
) -> (Duration, Duration, Duration, usize) {
    let producer = AnyEventStore::connect(&pg.create_database().unwrap())
        .await
        .unwrap();
    let consumer_store = AnyEventStore::connect(&pg.create_database().unwrap())
        .await
        .unwrap();
    fresh_stream(js, names).await;
    let handler = Arc::new(Latency {
        base: Instant::now(),
        samples: Mutex::new(Vec::new()),
    });
    let relay = Relay::new(
        producer.clone(),
        js.clone(),
        names.clone(),
        SERVICE,
        RelaySettings::default(),
        &StreamSettings::default(),
    )
    .unwrap();
    let consumer = JetStreamConsumer::new(
        js.clone(),
        names.clone(),
        Subscription::new("bench-latency", SERVICE, ["RepairStarted"]).unwrap(),
        consumer_store,
        Arc::clone(&handler),
        ConsumerSettings::default(),
    )
    .unwrap();
    consumer
        .provision(&StreamSettings::default())
        .await
        .unwrap();
    let (stop, shutdown) = Shutdown::new();
    let relay_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { relay.run(shutdown).await })
    };
    let consumer_task = tokio::spawn(async move { consumer.run(shutdown).await });

    let total = seconds * 1000;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        tick.tick().await;
        let sent = handler.base.elapsed().as_micros() as u64;
        let stream = StreamId::parse(format!("repair-{}", i % 500)).unwrap();
        producer
            .append(&stream, ExpectedVersion::Any, vec![new_event(i, sent)])
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while handler.samples.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.trigger();
    relay_task.await.unwrap();
    consumer_task.await.unwrap();
    let mut samples = handler.samples.lock().unwrap().clone();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99), *samples.last().unwrap(), samples.len())
}

#[tokio::main]
async fn main() {
    let events = env_usize("BENCH_RELAY_EVENTS", 20_000);
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let seconds = env_usize("BENCH_LATENCY_SECONDS", 10);
    let pg = PostgresServer::start(PostgresOptions::Durable).unwrap();
    let durable_nats = NatsServer::start_with(NatsOptions::Durable).unwrap();
    let default_nats = NatsServer::start_with(NatsOptions::Default).unwrap();
    let names = Names::new("bench").unwrap();
    let store = AnyEventStore::connect(&pg.create_database().unwrap())
        .await
        .unwrap();
    let recorded = fill(&store, events).await;
    let last = recorded.last().unwrap().checkpoint;
    let header_bytes: usize = recorded
        .iter()
        .flat_map(|e| {
            headers_for(SERVICE, e, JSON)
                .iter()
                .map(|(name, values)| {
                    let name: &str = name.as_ref();
                    name.len() + values.iter().map(|v| v.as_str().len() + 4).sum::<usize>()
                })
                .collect::<Vec<_>>()
        })
        .sum();
    println!(
        "{events} events: payload {} bytes, headers about {} bytes on average",
        recorded.iter().map(|e| e.payload.len()).sum::<usize>() / events,
        header_bytes / events
    );

    for (label, nats) in [
        ("sync_interval: always", &durable_nats),
        ("default sync (2 min)", &default_nats),
    ] {
        let js = connect(&nats.url(), "bench").await.unwrap();
        let (mut raw, mut relayed) = (Vec::new(), Vec::new());
        for round in 0..rounds * 2 {
            fresh_stream(&js, &names).await;
            // raw, relay, relay, raw, raw, relay, …
            if matches!(round % 4, 0 | 3) {
                raw.push(raw_publish(&js, &names, &recorded).await);
            } else {
                relayed.push(relay_all(&store, &js, &names, last, events).await);
            }
        }
        let (raw, relayed) = (median(raw), median(relayed));
        println!(
            "throughput [{label}]: relay {relayed:.0} events/s, raw publish {raw:.0} events/s, ratio {:.2}x",
            relayed / raw
        );
    }

    let js = connect(&durable_nats.url(), "bench").await.unwrap();
    let (p50, p99, max, n) = latency(&pg, &js, &names, seconds).await;
    println!(
        "latency append -> handler at 1000 events/s [sync_interval: always]: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({n} events)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}
