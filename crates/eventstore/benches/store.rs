//! Event store throughput against a plain-sqlx baseline measured in the same run.
//!
//! `cargo bench -p aftersales-eventstore --bench store` (a release build). It starts
//! its own PostgreSQL with durable settings (fsync and synchronous_commit on) and a
//! SQLite file (WAL, synchronous=FULL), and for each backend measures:
//!
//! - appends: 32 concurrent writers on distinct streams, 1 and then 10 events per
//!   append, against the same INSERT into a table of the same shape (same columns,
//!   constraints and indexes) without the store's head read, hash chain or checks;
//! - replay: following the whole log of `BENCH_REPLAY_EVENTS` (default 1,000,000)
//!   events from the start, against a plain keyset-paged SELECT of the same rows.
//!
//! `BENCH_APPENDS_PER_WRITER` (default 150) sets the append sample size.

// A benchmark aborts on any failure, and its counts are far below any cast limit.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_wrap,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aftersales_eventstore::{
    AnyEventStore, Checkpoint, EventStore, ExpectedVersion, Metadata, NewEvent, StreamId,
};
use aftersales_testkit::{PostgresOptions, PostgresServer};
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Row as _};
use uuid::Uuid;

const WRITERS: usize = 32;
const PAGE: usize = 1000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000, 0).unwrap()
}

fn new_event(i: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "RepairStarted".into(),
        schema_version: 1,
        payload: format!(
            r#"{{"type":"RepairStarted","repair_id":"r-{i}","technician":"tech-7","bench":"sc-berlin-01"}}"#
        )
        .into_bytes(),
        personal: None,
        metadata: Metadata {
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: None,
            actor: "staff:tech-7".into(),
            region: "eu-central".into(),
            recorded_at: now(),
        },
    }
}

/// A plain INSERT of the same rows into `baseline_events`.
#[derive(Clone)]
enum Baseline {
    Postgres(sqlx::PgPool),
    Sqlite {
        writer: sqlx::SqlitePool,
        reader: sqlx::SqlitePool,
    },
}

impl Baseline {
    async fn insert(&self, stream: &str, first_version: i64, events: &[NewEvent]) {
        let hash = vec![7u8; 32];
        match self {
            Self::Postgres(pool) => {
                let versions: Vec<i64> = (0..events.len() as i64)
                    .map(|i| first_version + i)
                    .collect();
                sqlx::query(
                    "INSERT INTO baseline_events (stream_id, stream_version, event_id, event_type, \
                     schema_version, payload, correlation_id, causation_id, traceparent, tracestate, \
                     actor, region, recorded_at, hash) \
                     SELECT $1, * FROM UNNEST($2::int8[], $3::uuid[], $4::text[], $5::int4[], \
                     $6::bytea[], $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[], \
                     $12::text[], $13::timestamptz[], $14::bytea[]) RETURNING position",
                )
                .bind(stream)
                .bind(versions)
                .bind(events.iter().map(|e| e.event_id).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|_| 1i32).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.correlation_id).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.causation_id).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.traceparent.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.tracestate.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.actor.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.region.clone()).collect::<Vec<_>>())
                .bind(events.iter().map(|e| e.metadata.recorded_at).collect::<Vec<_>>())
                .bind(events.iter().map(|_| hash.clone()).collect::<Vec<_>>())
                .fetch_all(pool)
                .await
                .unwrap();
            }
            Self::Sqlite { writer: pool, .. } => {
                let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO baseline_events (stream_id, stream_version, event_id, event_type, \
                     schema_version, payload, correlation_id, causation_id, traceparent, tracestate, \
                     actor, region, recorded_at, hash) ",
                );
                query.push_values(events.iter().enumerate(), |mut b, (i, e)| {
                    b.push_bind(stream.to_owned())
                        .push_bind(first_version + i as i64)
                        .push_bind(e.event_id)
                        .push_bind(e.event_type.clone())
                        .push_bind(1i64)
                        .push_bind(e.payload.clone())
                        .push_bind(e.metadata.correlation_id)
                        .push_bind(e.metadata.causation_id)
                        .push_bind(e.metadata.traceparent.clone())
                        .push_bind(e.metadata.tracestate.clone())
                        .push_bind(e.metadata.actor.clone())
                        .push_bind(e.metadata.region.clone())
                        .push_bind(e.metadata.recorded_at.timestamp_micros())
                        .push_bind(hash.clone());
                });
                query.push(" RETURNING position");
                query.build().fetch_all(pool).await.unwrap();
            }
        }
    }

    /// Reads every baseline row by keyset paging; returns the count.
    async fn replay(&self) -> usize {
        let mut after = 0i64;
        let mut count = 0;
        loop {
            let rows = match self {
                Self::Postgres(pool) => {
                    let rows = sqlx::query(SELECT_BASELINE_PG)
                        .bind(after)
                        .bind(PAGE as i64)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                    rows.iter().map(decode_pg_row).collect::<Vec<_>>()
                }
                Self::Sqlite { reader: pool, .. } => {
                    let rows = sqlx::query(SELECT_BASELINE_SQLITE)
                        .bind(after)
                        .bind(PAGE as i64)
                        .fetch_all(pool)
                        .await
                        .unwrap();
                    rows.iter().map(decode_sqlite_row).collect::<Vec<_>>()
                }
            };
            let Some(last) = rows.last() else {
                return count;
            };
            after = *last;
            count += rows.len();
        }
    }
}

const SELECT_BASELINE_PG: &str = "SELECT position, transaction_id::text AS tx, stream_id, \
    stream_version, event_id, event_type, schema_version, payload, correlation_id, causation_id, \
    traceparent, tracestate, actor, region, recorded_at, hash FROM baseline_events \
    WHERE position > $1 ORDER BY position LIMIT $2";
const SELECT_BASELINE_SQLITE: &str = "SELECT position, stream_id, stream_version, event_id, \
    event_type, schema_version, payload, correlation_id, causation_id, traceparent, tracestate, \
    actor, region, recorded_at, hash FROM baseline_events WHERE position > ?1 \
    ORDER BY position LIMIT ?2";

/// Decodes every column, as the store does, and returns the position.
fn decode_pg_row(row: &sqlx::postgres::PgRow) -> i64 {
    let _: (String, String, i64, Uuid, String, i32, Vec<u8>) = (
        row.get("tx"),
        row.get("stream_id"),
        row.get("stream_version"),
        row.get("event_id"),
        row.get("event_type"),
        row.get("schema_version"),
        row.get("payload"),
    );
    let _: (
        Uuid,
        Option<Uuid>,
        Option<String>,
        Option<String>,
        String,
        String,
    ) = (
        row.get("correlation_id"),
        row.get("causation_id"),
        row.get("traceparent"),
        row.get("tracestate"),
        row.get("actor"),
        row.get("region"),
    );
    let _: (DateTime<Utc>, Vec<u8>) = (row.get("recorded_at"), row.get("hash"));
    row.get("position")
}

fn decode_sqlite_row(row: &sqlx::sqlite::SqliteRow) -> i64 {
    let _: (String, i64, Uuid, String, i64, Vec<u8>) = (
        row.get("stream_id"),
        row.get("stream_version"),
        row.get("event_id"),
        row.get("event_type"),
        row.get("schema_version"),
        row.get("payload"),
    );
    let _: (
        Uuid,
        Option<Uuid>,
        Option<String>,
        Option<String>,
        String,
        String,
    ) = (
        row.get("correlation_id"),
        row.get("causation_id"),
        row.get("traceparent"),
        row.get("tracestate"),
        row.get("actor"),
        row.get("region"),
    );
    let _: (i64, Vec<u8>) = (row.get("recorded_at"), row.get("hash"));
    row.get("position")
}

struct Figure {
    events_per_sec: f64,
    appends_per_sec: f64,
}

async fn store_appends(store: &AnyEventStore, batch: usize, appends: usize, tag: &str) -> Figure {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let stream = StreamId::parse(format!("bench-{tag}-{batch}-{w}")).unwrap();
        tasks.push(tokio::spawn(async move {
            for i in 0..appends {
                let events = (0..batch).map(|j| new_event(i * batch + j)).collect();
                let expected = ExpectedVersion::Exact((i * batch) as u64);
                store.append(&stream, expected, events).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    figure(start.elapsed(), batch, appends)
}

async fn baseline_appends(baseline: &Baseline, batch: usize, appends: usize, tag: &str) -> Figure {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let baseline = baseline.clone();
        let stream = format!("bench-{tag}-{batch}-{w}");
        tasks.push(tokio::spawn(async move {
            for i in 0..appends {
                let events: Vec<_> = (0..batch).map(|j| new_event(i * batch + j)).collect();
                baseline
                    .insert(&stream, (i * batch) as i64 + 1, &events)
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    figure(start.elapsed(), batch, appends)
}

fn figure(elapsed: Duration, batch: usize, appends: usize) -> Figure {
    let total_appends = (WRITERS * appends) as f64;
    let secs = elapsed.as_secs_f64();
    Figure {
        events_per_sec: total_appends * batch as f64 / secs,
        appends_per_sec: total_appends / secs,
    }
}

/// Fills the log with `total` events in large appends, then copies it to the baseline.
async fn fill(store: &AnyEventStore, baseline: &Baseline, total: usize) {
    let per_append = 1000;
    let writers = 4;
    let appends = total.div_ceil(per_append * writers);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..appends {
                let stream = StreamId::parse(format!("replay-{w}-{}", i % 50)).unwrap();
                let events = (0..per_append).map(new_event).collect();
                store
                    .append(&stream, ExpectedVersion::Any, events)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let copy = "INSERT INTO baseline_events SELECT * FROM events";
    match baseline {
        Baseline::Postgres(pool) => {
            sqlx::query("TRUNCATE baseline_events")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO baseline_events OVERRIDING SYSTEM VALUE SELECT * FROM events")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
        }
        Baseline::Sqlite { writer: pool, .. } => {
            sqlx::query("DELETE FROM baseline_events")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query(copy).execute(pool).await.unwrap();
        }
    }
}

async fn store_replay(store: &AnyEventStore) -> usize {
    let mut checkpoint = Checkpoint::START;
    let mut count = 0;
    loop {
        let page = store.read_log(checkpoint, PAGE).await.unwrap();
        let Some(last) = page.last() else {
            return count;
        };
        checkpoint = last.checkpoint;
        count += page.len();
    }
}

struct Report {
    backend: &'static str,
}

impl Report {
    fn append_row(&self, what: &str, store: &Figure, baseline: &Figure) {
        let line = format!(
            "| {} | {what} | {:.0} events/s ({:.0} appends/s) | {:.0} events/s ({:.0} appends/s) | {:.2}x |",
            self.backend,
            store.events_per_sec,
            store.appends_per_sec,
            baseline.events_per_sec,
            baseline.appends_per_sec,
            store.events_per_sec / baseline.events_per_sec
        );
        println!("{line}");
    }

    fn replay_row(&self, events: usize, store: Duration, baseline: Duration) {
        let s = events as f64 / store.as_secs_f64();
        let b = events as f64 / baseline.as_secs_f64();
        let line = format!(
            "| {} | replay {events} events | {s:.0} events/s | {b:.0} events/s | {:.2}x |",
            self.backend,
            s / b
        );
        println!("{line}");
    }
}

async fn run(backend: &'static str, store: AnyEventStore, baseline: Baseline) {
    let appends = env_usize("BENCH_APPENDS_PER_WRITER", 150);
    let replay_events = env_usize("BENCH_REPLAY_EVENTS", 1_000_000);
    let report = Report { backend };
    for batch in [1, 10] {
        // Warm both paths (connections, plans, caches) before timing.
        store_appends(&store, batch, 5, "warm").await;
        baseline_appends(&baseline, batch, 5, "warm").await;
        // Alternate the order so neither side always meets a fuller table.
        let b1 = baseline_appends(&baseline, batch, appends / 2, "b1").await;
        let s1 = store_appends(&store, batch, appends / 2, "s1").await;
        let s2 = store_appends(&store, batch, appends / 2, "s2").await;
        let b2 = baseline_appends(&baseline, batch, appends / 2, "b2").await;
        let mean = |a: Figure, b: Figure| Figure {
            events_per_sec: (a.events_per_sec + b.events_per_sec) / 2.0,
            appends_per_sec: (a.appends_per_sec + b.appends_per_sec) / 2.0,
        };
        report.append_row(
            &format!("append, {WRITERS} writers, {batch} event(s) per append"),
            &mean(s1, s2),
            &mean(b1, b2),
        );
    }
    fill(&store, &baseline, replay_events).await;
    let total = store_replay(&store).await; // warm the cache
    baseline.replay().await;
    let start = Instant::now();
    assert_eq!(store_replay(&store).await, total);
    let store_time = start.elapsed();
    let start = Instant::now();
    assert_eq!(baseline.replay().await, total);
    let baseline_time = start.elapsed();
    report.replay_row(total, store_time, baseline_time);
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let server = Arc::new(
        tokio::task::spawn_blocking(|| PostgresServer::start(PostgresOptions::Durable).unwrap())
            .await
            .unwrap(),
    );
    let url = {
        let server = Arc::clone(&server);
        tokio::task::spawn_blocking(move || server.create_database().unwrap())
            .await
            .unwrap()
    };
    let pg = AnyEventStore::connect(&url).await.unwrap();
    let AnyEventStore::Postgres(pg_store) = &pg else {
        unreachable!()
    };
    sqlx::query("CREATE TABLE baseline_events (LIKE events INCLUDING ALL)")
        .execute(pg_store.pool())
        .await
        .unwrap();
    let pg_baseline = Baseline::Postgres(pg_store.pool().clone());

    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite:{}", dir.path().join("bench.db").display());
    let sqlite = AnyEventStore::connect(&sqlite_url).await.unwrap();
    let AnyEventStore::Sqlite(sqlite_store) = &sqlite else {
        unreachable!()
    };
    let ddl = include_str!("../migrations/sqlite/20261125000001_events.sql");
    let table = ddl
        .split("CREATE TABLE events")
        .nth(1)
        .and_then(|rest| rest.split(");").next())
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE TABLE baseline_events{table});"
    )))
    .execute(sqlite_store.writer())
    .await
    .unwrap();
    let sqlite_baseline = Baseline::Sqlite {
        writer: sqlite_store.writer().clone(),
        reader: sqlite_store.reader().clone(),
    };

    println!("| backend | workload | event store | plain sqlx baseline | ratio |");
    println!("|---|---|---|---|---|");
    run("PostgreSQL", pg, pg_baseline).await;
    run("SQLite", sqlite, sqlite_baseline).await;
}
