//! The cost of sealing personal data: the event store's workloads with events
//! that carry an email address and a message, sealed per customer, next to the
//! same events stored in the clear, in the same run on the same servers.
//!
//! `cargo bench -p aftersales-eventstore --bench personal` (a release build). It
//! starts its own PostgreSQL (fsync and synchronous_commit on) and SQLite files
//! (WAL, synchronous=FULL), and for each backend measures:
//!
//! - appends: 32 concurrent writers on distinct streams, one event per append, the
//!   events spread over 1,000 customers (each customer's key is made once, then
//!   cached, as in a running service);
//! - replay: `BENCH_REPLAY_EVENTS` (default 200,000) events read from the start of
//!   the log and decoded into the event type, personal fields opened.
//!
//! `BENCH_APPENDS_PER_WRITER` (default 150) sets the append sample size.

// A benchmark aborts on any failure, and its counts are far below any cast limit.
#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::Instant;

use aftersales_eventstore::decider::encode;
use aftersales_eventstore::{
    AnyEventStore, Checkpoint, DomainEvent, EventStore, ExpectedVersion, Keyring, LocalKms,
    Metadata, NewEvent, PersonalData, StreamId,
};
use aftersales_testkit::{PostgresOptions, PostgresServer};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const WRITERS: usize = 32;
const CUSTOMERS: usize = 1000;
const PAGE: usize = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Event {
    NotificationRequested {
        customer_id: String,
        address: String,
        subject: String,
        text: String,
        kind: String,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        "NotificationRequested"
    }

    fn personal(&self) -> Option<PersonalData<'_>> {
        let Self::NotificationRequested { customer_id, .. } = self;
        Some(PersonalData {
            subject: customer_id,
            fields: &["/address", "/subject", "/text"],
        })
    }
}

/// Whether events are stored as the services store them, or in the clear.
#[derive(Clone, Copy)]
enum Mode {
    Sealed,
    Clear,
}

fn new_event(i: usize, mode: Mode) -> NewEvent {
    let customer = i % CUSTOMERS;
    let event = Event::NotificationRequested {
        customer_id: format!("c-{customer}"),
        address: format!("customer{customer}@example.com"),
        subject: "Your phone is ready".into(),
        text: "Your repair is done: collect your phone at the service center.".into(),
        kind: "ready_for_collection".into(),
    };
    let (payload, personal) = match mode {
        Mode::Sealed => encode(&event).unwrap(),
        Mode::Clear => (serde_json::to_vec(&event).unwrap(), None),
    };
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "NotificationRequested".into(),
        schema_version: 1,
        payload,
        personal,
        metadata: Metadata {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "service:notification".into(),
            region: "eu-central".into(),
            recorded_at: DateTime::from_timestamp(1_780_000_000, 0).unwrap(),
        },
    }
}

async fn appends(store: &AnyEventStore, mode: Mode, appends: usize, tag: &str) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let stream = StreamId::parse(format!("bench-{tag}-{w}")).unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..appends {
                let event = new_event(w * appends + i, mode);
                let expected = ExpectedVersion::Exact(i as u64);
                store.append(&stream, expected, vec![event]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (WRITERS * appends) as f64 / start.elapsed().as_secs_f64()
}

async fn fill(store: &AnyEventStore, mode: Mode, total: usize) {
    for (n, first) in (0..total).step_by(PAGE).enumerate() {
        let stream = StreamId::parse(format!("replay-{}", n % 50)).unwrap();
        let events = (first..(first + PAGE).min(total))
            .map(|i| new_event(i, mode))
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
}

/// Reads and decodes the whole log; returns events per second.
async fn replay(store: &AnyEventStore) -> (usize, f64) {
    let start = Instant::now();
    let mut checkpoint = Checkpoint::START;
    let mut count = 0;
    loop {
        let page = store.read_log(checkpoint, PAGE).await.unwrap();
        let Some(last) = page.last() else {
            return (count, count as f64 / start.elapsed().as_secs_f64());
        };
        for event in &page {
            let Event::NotificationRequested { address, .. } = event.decode().unwrap();
            assert!(address.ends_with("@example.com"), "{address}");
        }
        checkpoint = last.checkpoint;
        count += page.len();
    }
}

async fn run(backend: &str, sealed: AnyEventStore, clear: AnyEventStore) {
    let per_writer = env_usize("BENCH_APPENDS_PER_WRITER", 150);
    let total = env_usize("BENCH_REPLAY_EVENTS", 200_000);
    // Warm connections, plans and the customers' keys before timing.
    appends(&sealed, Mode::Sealed, CUSTOMERS / WRITERS + 1, "warm").await;
    appends(&clear, Mode::Clear, CUSTOMERS / WRITERS + 1, "warm").await;
    // Alternate the order so neither side always meets a fuller table.
    let c1 = appends(&clear, Mode::Clear, per_writer / 2, "c1").await;
    let s1 = appends(&sealed, Mode::Sealed, per_writer / 2, "s1").await;
    let s2 = appends(&sealed, Mode::Sealed, per_writer / 2, "s2").await;
    let c2 = appends(&clear, Mode::Clear, per_writer / 2, "c2").await;
    let (s, c) = (f64::midpoint(s1, s2), f64::midpoint(c1, c2));
    println!(
        "| {backend} | append, {WRITERS} writers, 1 event per append | {s:.0} events/s | {c:.0} events/s | {:.2}x |",
        s / c
    );
    fill(&sealed, Mode::Sealed, total).await;
    fill(&clear, Mode::Clear, total).await;
    replay(&sealed).await; // warm the page cache
    replay(&clear).await;
    let width = |store: AnyEventStore| async move {
        let page = store.read_log(Checkpoint::START, PAGE).await.unwrap();
        page.iter().map(|e| e.payload.len()).sum::<usize>() / page.len()
    };
    println!(
        "  stored payload: sealed {} bytes, clear {} bytes an event",
        width(sealed.clone()).await,
        width(clear.clone()).await
    );
    // Alternated like the appends, so neither side always reads second.
    let (n, s1) = replay(&sealed).await;
    let (m, c1) = replay(&clear).await;
    let (_, c2) = replay(&clear).await;
    let (_, s2) = replay(&sealed).await;
    assert_eq!(n, m);
    let (s, c) = (f64::midpoint(s1, s2), f64::midpoint(c1, c2));
    println!("  replay rounds: sealed {s1:.0} / {s2:.0}, clear {c1:.0} / {c2:.0}");
    println!(
        "| {backend} | replay and decode {n} events | {s:.0} events/s | {c:.0} events/s | {:.2}x |",
        s / c
    );
}

#[tokio::main]
async fn main() {
    let server = Arc::new(
        tokio::task::spawn_blocking(|| PostgresServer::start(PostgresOptions::Durable).unwrap())
            .await
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(LocalKms::generate().unwrap());
    let keyring = Arc::new(
        Keyring::connect(
            &format!("sqlite:{}", dir.path().join("keys.db").display()),
            kms,
        )
        .await
        .unwrap(),
    );
    let database = || {
        let server = Arc::clone(&server);
        async move {
            let url = tokio::task::spawn_blocking(move || server.create_database().unwrap())
                .await
                .unwrap();
            AnyEventStore::connect(&url).await.unwrap()
        }
    };
    let sqlite = |name: &str| {
        let url = format!("sqlite:{}", dir.path().join(name).display());
        async move { AnyEventStore::connect(&url).await.unwrap() }
    };

    println!("| backend | workload | personal data sealed | in the clear | ratio |");
    println!("|---|---|---|---|---|");
    run(
        "PostgreSQL",
        database().await.with_keyring(Arc::clone(&keyring), "bench"),
        database().await,
    )
    .await;
    run(
        "SQLite",
        sqlite("sealed.db")
            .await
            .with_keyring(Arc::clone(&keyring), "bench"),
        sqlite("clear.db").await,
    )
    .await;
}
