//! Shared set-up: stores for a producer and a consumer, a NATS server, and a
//! handler whose effects are rows that can be counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aftersales_core::{Shutdown, ShutdownTrigger};
use aftersales_eventstore::{
    AnyEventStore, EventStore, ExpectedVersion, Metadata, NewEvent, StoreTransaction, StreamId,
    TransactionConnection,
};
use aftersales_messaging::{
    ConsumerSettings, Handler, HandlerError, InboundEvent, JetStreamConsumer, Names, Relay,
    RelaySettings, RetryPolicy, StreamSettings, Subscription, connect, ensure_service_stream,
};
use aftersales_testkit::{NatsServer, shared_postgres};
use async_nats::jetstream;
use sqlx::Row as _;
use uuid::Uuid;

pub const REGION: &str = "test-region";
pub const SOURCE: &str = "producer";
pub const CONSUMER: &str = "effects";
pub const EVENT_TYPE: &str = "Happened";

pub fn names() -> Names {
    Names::new(REGION).unwrap()
}

pub fn subscription() -> Subscription {
    Subscription::new(CONSUMER, SOURCE, [EVENT_TYPE]).unwrap()
}

pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    }
}

pub fn consumer_settings() -> ConsumerSettings {
    ConsumerSettings {
        retry: fast_retry(3),
        ack_wait: Duration::from_secs(5),
        ..ConsumerSettings::default()
    }
}

/// A fresh PostgreSQL database with the event store's tables.
pub async fn postgres_store() -> AnyEventStore {
    let url = shared_postgres().create_database().unwrap();
    AnyEventStore::connect(&url).await.unwrap()
}

/// A fresh SQLite file; the directory lives as long as the store is used.
pub async fn sqlite_store(dir: &tempfile::TempDir, name: &str) -> AnyEventStore {
    let url = format!("sqlite:{}", dir.path().join(name).display());
    AnyEventStore::connect(&url).await.unwrap()
}

/// Runs `sql` in a transaction of `store`'s database.
pub async fn exec(store: &AnyEventStore, sql: &'static str) {
    let mut tx = store.begin().await.unwrap();
    match tx.connection() {
        TransactionConnection::Postgres(c) => {
            sqlx::raw_sql(sql).execute(c).await.unwrap();
        }
        TransactionConnection::Sqlite(c) => {
            sqlx::raw_sql(sql).execute(c).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Appends `n` events of [`EVENT_TYPE`], `per_stream` to a stream; their ids in order.
pub async fn append_events(store: &AnyEventStore, n: usize, per_stream: usize) -> Vec<Uuid> {
    append_events_with(store, n, per_stream, None).await
}

pub async fn append_events_with(
    store: &AnyEventStore,
    n: usize,
    per_stream: usize,
    traceparent: Option<String>,
) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    let run = Uuid::now_v7();
    for (chunk_index, chunk) in (0..n).collect::<Vec<_>>().chunks(per_stream).enumerate() {
        let stream = StreamId::parse(format!("thing-{run}-{chunk_index}")).unwrap();
        let events: Vec<NewEvent> = chunk
            .iter()
            .map(|i| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: EVENT_TYPE.into(),
                schema_version: 1,
                payload: format!(r#"{{"n":{i}}}"#).into_bytes(),
                personal: None,
                metadata: Metadata {
                    correlation_id: run,
                    causation_id: None,
                    traceparent: traceparent.clone(),
                    tracestate: None,
                    actor: "test".into(),
                    region: REGION.into(),
                    #[allow(clippy::disallowed_methods)]
                    recorded_at: chrono::Utc::now(),
                },
            })
            .collect();
        ids.extend(events.iter().map(|e| e.event_id));
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .unwrap();
    }
    ids
}

/// Records every event it handles as a row of `effects`; can be told to fail or
/// to take its time.
#[derive(Debug, Default)]
pub struct Effects {
    pub broken: AtomicBool,
    pub calls: AtomicU64,
    pub slow: std::sync::Mutex<Option<Duration>>,
    /// Payloads (`n`) whose first attempt fails, after writing its effect row.
    pub fail_once: std::sync::Mutex<HashSet<i64>>,
    /// Payloads whose first attempt reports a lost race, after writing its row.
    pub conflict_once: std::sync::Mutex<HashSet<i64>>,
    /// Payload `n` fails (transiently) until the effect of payload `needs[n]` is in.
    pub needs: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
}

impl Effects {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub const TABLE_PG: &str = "CREATE TABLE effects (event_id UUID NOT NULL, n BIGINT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())";
    pub const TABLE_SQLITE: &str =
        "CREATE TABLE effects (event_id BLOB NOT NULL, n INTEGER NOT NULL)";

    pub async fn create_table(store: &AnyEventStore) {
        match store {
            AnyEventStore::Postgres(_) => exec(store, Self::TABLE_PG).await,
            AnyEventStore::Sqlite(_) => exec(store, Self::TABLE_SQLITE).await,
        }
    }
}

#[derive(serde::Deserialize)]
struct Payload {
    n: i64,
}

impl Handler for Effects {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let payload: Payload = event.json().map_err(HandlerError::permanent)?;
        let slow = *self.slow.lock().unwrap();
        if let Some(delay) = slow {
            tokio::time::sleep(delay).await;
        }
        if self.broken.load(Ordering::SeqCst) {
            return Err(HandlerError::transient("the handler is broken"));
        }
        let needed = self.needs.lock().unwrap().get(&payload.n).copied();
        if let Some(needed) = needed {
            let TransactionConnection::Postgres(c) = tx.connection() else {
                panic!("`needs` is for PostgreSQL")
            };
            let found: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM effects WHERE n = $1)")
                    .bind(needed)
                    .fetch_one(c)
                    .await
                    .map_err(HandlerError::transient)?;
            if !found {
                return Err(HandlerError::transient(format!("{needed} is not in yet")));
            }
        }
        match tx.connection() {
            TransactionConnection::Postgres(c) => {
                sqlx::query("INSERT INTO effects (event_id, n) VALUES ($1, $2)")
                    .bind(event.event_id)
                    .bind(payload.n)
                    .execute(c)
                    .await
                    .map_err(HandlerError::transient)?;
            }
            TransactionConnection::Sqlite(c) => {
                sqlx::query("INSERT INTO effects (event_id, n) VALUES (?1, ?2)")
                    .bind(event.event_id)
                    .bind(payload.n)
                    .execute(c)
                    .await
                    .map_err(HandlerError::transient)?;
            }
        }
        if self.fail_once.lock().unwrap().remove(&payload.n) {
            return Err(HandlerError::transient("failing once, after writing"));
        }
        if self.conflict_once.lock().unwrap().remove(&payload.n) {
            return Err(HandlerError::Conflict(
                "losing a race once, after writing".into(),
            ));
        }
        Ok(())
    }
}

/// Every effect row's event id, duplicates kept.
pub async fn effect_ids(store: &AnyEventStore) -> Vec<Uuid> {
    let mut tx = store.begin().await.unwrap();
    let ids = match tx.connection() {
        TransactionConnection::Postgres(c) => sqlx::query("SELECT event_id FROM effects")
            .fetch_all(c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<Uuid, _>(0))
            .collect(),
        TransactionConnection::Sqlite(c) => sqlx::query("SELECT event_id FROM effects")
            .fetch_all(c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<Uuid, _>(0))
            .collect(),
    };
    tx.rollback().await.unwrap();
    ids
}

/// Waits until the consumer has at least `n` effects, failing after `timeout`.
pub async fn wait_for_effects(store: &AnyEventStore, n: usize, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let have = effect_ids(store).await.len();
        if have >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {have} of {n} effects after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The effects equal the events exactly: none missing, none twice.
pub fn assert_exactly_once(effects: &[Uuid], events: &[Uuid]) {
    let distinct: HashSet<_> = effects.iter().collect();
    assert_eq!(
        distinct.len(),
        effects.len(),
        "{} events were applied twice",
        effects.len() - distinct.len()
    );
    let expected: HashSet<_> = events.iter().collect();
    let missing = expected.difference(&distinct).count();
    let unexpected = distinct.difference(&expected).count();
    assert_eq!(
        (missing, unexpected),
        (0, 0),
        "missing or unexpected effects"
    );
}

/// A producer with its relay and a consumer with its handler, over one NATS.
pub struct Pipeline {
    pub nats: NatsServer,
    pub js: jetstream::Context,
    pub producer: AnyEventStore,
    pub consumer: AnyEventStore,
    pub effects: Arc<Effects>,
    stop_relay: Option<ShutdownTrigger>,
    stop_consumer: Option<ShutdownTrigger>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Pipeline {
    pub async fn postgres() -> Self {
        exported_spans();
        let nats = NatsServer::start().unwrap();
        let js = connect(&nats.url(), "test").await.unwrap();
        ensure_service_stream(&js, &names(), SOURCE, &StreamSettings::default())
            .await
            .unwrap();
        let producer = postgres_store().await;
        let consumer = postgres_store().await;
        Effects::create_table(&consumer).await;
        Self {
            nats,
            js,
            producer,
            consumer,
            effects: Effects::new(),
            stop_relay: None,
            stop_consumer: None,
            tasks: Vec::new(),
        }
    }

    pub fn start_relay(&mut self) {
        let relay = Relay::new(
            self.producer.clone(),
            self.js.clone(),
            names(),
            SOURCE,
            RelaySettings::default(),
            &StreamSettings::default(),
        )
        .unwrap();
        let (trigger, shutdown) = Shutdown::new();
        self.stop_relay = Some(trigger);
        self.tasks.push(tokio::spawn(async move {
            relay.run(shutdown).await;
        }));
    }

    pub async fn start_consumer(&mut self, settings: ConsumerSettings) {
        let consumer = JetStreamConsumer::new(
            self.js.clone(),
            names(),
            subscription(),
            self.consumer.clone(),
            Arc::clone(&self.effects),
            settings,
        )
        .unwrap();
        consumer
            .provision(&StreamSettings::default())
            .await
            .unwrap();
        let (trigger, shutdown) = Shutdown::new();
        self.stop_consumer = Some(trigger);
        self.tasks.push(tokio::spawn(async move {
            consumer.run(shutdown).await;
        }));
    }

    /// Messages stored in the producer's stream.
    pub async fn stream_messages(&self) -> (u64, u64) {
        let mut stream = self
            .js
            .get_stream(names().service_stream(SOURCE))
            .await
            .unwrap();
        let state = &stream.info().await.unwrap().state;
        (state.messages, state.last_sequence)
    }

    pub async fn stop(mut self) {
        for trigger in [self.stop_relay.take(), self.stop_consumer.take()]
            .into_iter()
            .flatten()
        {
            trigger.trigger();
        }
        for task in self.tasks.drain(..) {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("a task did not stop")
                .unwrap();
        }
    }
}

/// Appends one [`EVENT_TYPE`] event whose payload is `payload` as is.
pub async fn append_raw(store: &AnyEventStore, payload: &[u8]) -> Uuid {
    let id = Uuid::now_v7();
    let event = NewEvent {
        event_id: id,
        event_type: EVENT_TYPE.into(),
        schema_version: 1,
        payload: payload.to_vec(),
        personal: None,
        metadata: Metadata {
            correlation_id: id,
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "test".into(),
            region: REGION.into(),
            #[allow(clippy::disallowed_methods)]
            recorded_at: chrono::Utc::now(),
        },
    };
    store
        .append(
            &StreamId::parse(format!("raw-{id}")).unwrap(),
            ExpectedVersion::NoStream,
            vec![event],
        )
        .await
        .unwrap();
    id
}

/// Spans of this test binary, exported to memory. Installed once, globally: a
/// subscriber set per test is not seen by callsites other tests registered first.
pub fn exported_spans() -> &'static opentelemetry_sdk::trace::InMemorySpanExporter {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    static EXPORTER: std::sync::OnceLock<opentelemetry_sdk::trace::InMemorySpanExporter> =
        std::sync::OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tests")));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        exporter
    })
}
