//! The warranty service with years of history: `BENCH_EVENTS` events (default
//! 10,000,000) in its log, on PostgreSQL (durable) and on SQLite, release builds.
//!
//! The log is filled with real device histories: one phone registered through the
//! service and four coverage decisions recorded for it, copied for every other
//! phone (its IMEI in the stream and the payloads) and appended through the event
//! store by 32 writers, chained as any append is. Then, per backend:
//! - bytes on disk per million events (the log with its indexes; the database);
//! - the log read through with nothing applied (the baseline of a rebuild), then
//!   `aftersales projections rebuild warranty`: every read model from the start in
//!   one pass, and each read model alone;
//! - `aftersales relay warranty` catching up the whole log into JetStream (for at
//!   most `BENCH_RELAY_SECONDS`, default an hour: its rate, not the whole log,
//!   where the log is long; then the service below starts with the rest to relay);
//! - the service started on it (snapshots and read models as they are): time from
//!   spawning the process to its health check answering SERVING;
//! - `CheckCoverage` on 1,000 phones nobody has asked about since the start (cold),
//!   then on the same phones again (warm), one at a time.
//!
//! `cargo bench -p aftersales-journeys --bench scale`; `BENCH_EVENTS`,
//! `BENCH_BACKENDS` (default `postgres,sqlite`), `BENCH_RELAY_SECONDS`, and
//! `BENCH_REBUILD_BEFORE`: the path of another build's `aftersales`, whose
//! rebuilds are timed on the same log, taking turns with this build's.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[allow(dead_code)] // the journeys' harness; this benchmark uses part of it
#[path = "../journeys/platform.rs"]
mod platform;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aftersales_eventstore::{AnyEventStore, EventStore as _, ExpectedVersion, NewEvent, StreamId};
use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::warranty as wpb;
use aftersales_testkit::{NatsServer, PostgresOptions, PostgresServer};

const WRITERS: u64 = 32;
const SAMPLES: u64 = 1000;
/// The warranty service's read models.
const READ_MODELS: [&str; 3] = [
    "warranty-device-directory",
    "warranty-coverage-decisions",
    "warranty-pending-payments",
];

fn device(imei: &str) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei.to_owned())),
    })
}

/// A phone's history to copy: its stream and its events.
struct Template {
    imei: String,
    stream: String,
    events: Vec<aftersales_eventstore::RecordedEvent>,
}

/// Registers one phone and records four coverage decisions for it through a
/// running warranty service, and reads its stream back.
async fn template(url: String, store: &AnyEventStore) -> Template {
    let imei = platform::imei(0);
    let mut warranty = wpb::warranty_service_client::WarrantyServiceClient::new(
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_lazy(),
    );
    warranty
        .register_device(wpb::RegisterDeviceRequest {
            device_id: device(&imei),
            model: "Aurora 5".into(),
            purchase_date: "2026-06-01".into(),
            country_of_purchase: Some(CountryCode { value: "DE".into() }),
            channel: wpb::SalesChannel::OnlineStore.into(),
            customer_id: "customer-template".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for fault in [
        wpb::FaultCategory::Battery,
        wpb::FaultCategory::Display,
        wpb::FaultCategory::Camera,
        wpb::FaultCategory::Audio,
    ] {
        warranty
            .check_coverage(wpb::CheckCoverageRequest {
                device_id: device(&imei),
                fault_category: fault.into(),
                record_decision: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let all = store.read_all(0, 1000).await.unwrap();
    let stream = all
        .iter()
        .find(|e| e.stream_id.as_str().contains(&imei))
        .unwrap()
        .stream_id
        .clone();
    let events: Vec<_> = all.into_iter().filter(|e| e.stream_id == stream).collect();
    assert_eq!(events.len(), 5, "a registration and four decisions");
    Template {
        imei,
        stream: stream.as_str().to_owned(),
        events,
    }
}

/// Appends copies of the template for phones `1..=phones`, `WRITERS` at a time;
/// events appended per second.
async fn fill(store: &AnyEventStore, template: &Arc<Template>, phones: u64) -> f64 {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (store, template, next) = (store.clone(), Arc::clone(template), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n > phones {
                        return;
                    }
                    let imei = platform::imei(n);
                    let stream =
                        StreamId::parse(template.stream.replace(&template.imei, &imei)).unwrap();
                    let events = template
                        .events
                        .iter()
                        .map(|e| NewEvent {
                            event_id: uuid::Uuid::now_v7(),
                            event_type: e.event_type.clone(),
                            schema_version: e.schema_version,
                            payload: String::from_utf8(e.payload.clone())
                                .unwrap()
                                .replace(&template.imei, &imei)
                                .into_bytes(),
                            personal: None,
                            metadata: e.metadata.clone(),
                        })
                        .collect();
                    store
                        .append(&stream, ExpectedVersion::NoStream, events)
                        .await
                        .unwrap();
                    if n % 100_000 == 0 {
                        eprintln!("  {n} phones appended");
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    (phones * 5) as f64 / started.elapsed().as_secs_f64()
}

/// Bytes of the log (table and indexes) and of the whole database.
async fn sizes(store: &AnyEventStore, sqlite_dir: Option<&std::path::Path>) -> (u64, u64) {
    match store {
        AnyEventStore::Postgres(pg) => {
            let (log, all): (i64, i64) = sqlx::query_as(
                "SELECT pg_total_relation_size('events'), pg_database_size(current_database())",
            )
            .fetch_one(pg.pool())
            .await
            .unwrap();
            (log as u64, all as u64)
        }
        AnyEventStore::Sqlite(sqlite) => {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(sqlite.writer())
                .await
                .unwrap();
            let log: i64 = sqlx::query_scalar(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'events' \
                 OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'events')",
            )
            .fetch_one(sqlite.reader())
            .await
            .unwrap_or(0);
            let all = std::fs::read_dir(sqlite_dir.unwrap())
                .unwrap()
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
            (log as u64, all)
        }
    }
}

/// Runs the CLI `binary` with `args` and `env`; what it printed on stderr.
fn cli(binary: &std::path::Path, args: &[&str], env: &[(String, String)]) -> String {
    let output = Command::new(binary)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{args:?}: {stderr}");
    stderr
}

/// The relay's position in the log, 0 before it has one.
async fn relayed(store: &AnyEventStore) -> u64 {
    let sql = "SELECT COALESCE(MAX(position), 0) FROM checkpoints WHERE name LIKE 'relay:%'";
    count(store, sql).await
}

/// The number `sql` answers with.
async fn count(store: &AnyEventStore, sql: &'static str) -> u64 {
    let n: i64 = match store {
        AnyEventStore::Postgres(pg) => sqlx::query_scalar(sql).fetch_one(pg.pool()).await,
        AnyEventStore::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.reader()).await,
    }
    .unwrap();
    n as u64
}

/// One at a time, `CheckCoverage` for phones `phones` spread over the log; the
/// latencies sorted.
async fn coverage_checks(url: &str, phones: u64) -> Vec<Duration> {
    let mut warranty = wpb::warranty_service_client::WarrantyServiceClient::new(
        tonic::transport::Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut latencies = Vec::new();
    for i in 0..SAMPLES {
        let n = 1 + i * (phones / SAMPLES).max(1) % phones.max(1);
        let started = Instant::now();
        warranty
            .check_coverage(wpb::CheckCoverageRequest {
                device_id: device(&platform::imei(n)),
                fault_category: wpb::FaultCategory::Battery.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn at(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

async fn run(backend: &str, url: String, sqlite_dir: Option<&std::path::Path>, events: u64) {
    let relay_for = Duration::from_secs(
        std::env::var("BENCH_RELAY_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600),
    );
    let phones = events / 5;
    let keys = tempfile::tempdir().unwrap();
    let nats = NatsServer::start().unwrap();
    let mut env: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.clone()),
        ("AFTERSALES_REGION".into(), "bench".into()),
        ("AFTERSALES_ALLOW_UNAUTHENTICATED".into(), "true".into()),
    ];
    env.extend(platform::keyring_env(keys.path()));

    // The template, from the service itself (without NATS: nothing relayed yet).
    let service = platform::Service::spawn("warranty", env.clone());
    let store = AnyEventStore::connect(&url).await.unwrap();
    let template = Arc::new(template(service.url(), &store).await);
    drop(service);

    eprintln!("{backend}: appending {phones} phone histories ({events} events)");
    let fill_rate = fill(&store, &template, phones).await;
    let total = store.last_position().await.unwrap();
    let (log_bytes, all_bytes) = sizes(&store, sqlite_dir).await;
    let per_million = |bytes: u64| bytes as f64 / (total as f64 / 1e6) / 1e6;

    eprintln!("{backend}: reading the log, nothing applied");
    // The first read of freshly written rows sets their hint bits (PostgreSQL): a
    // cost every later read is spared, so it is not timed.
    let read_through = || aftersales_eventstore::projection::rebuild(&store, &Nothing, |_| {});
    read_through().await.unwrap();
    let started = Instant::now();
    let read = read_through().await.unwrap();
    let read_rate = read as f64 / started.elapsed().as_secs_f64();

    eprintln!("{backend}: rebuilding the read models");
    // With `BENCH_REBUILD_BEFORE` (another build's `aftersales`), each rebuild is
    // timed with both builds, taking turns over two rounds: a baseline on the same log.
    let this_build = platform::binary("aftersales");
    let before = std::env::var_os("BENCH_REBUILD_BEFORE").map(std::path::PathBuf::from);
    let rebuild_with = |binary: &std::path::Path, only: Option<&str>| {
        let mut args = vec!["projections", "rebuild", "warranty", "--database-url", &url];
        args.extend(only);
        let started = Instant::now();
        cli(binary, &args, &env);
        total as f64 / started.elapsed().as_secs_f64()
    };
    let rebuild = |only: Option<&str>| match &before {
        None => (rebuild_with(&this_build, only), None),
        Some(before) => {
            let (mut this, mut that) = (0.0, 0.0);
            for _ in 0..2 {
                that += rebuild_with(before, only) / 2.0;
                this += rebuild_with(&this_build, only) / 2.0;
            }
            (this, Some(that))
        }
    };
    let rebuild_rate = rebuild(None);
    let each: Vec<_> = READ_MODELS
        .iter()
        .map(|&name| (name, rebuild(Some(name))))
        .collect();
    // Every decision has its row, however the batches fell: four for each phone.
    let decisions = count(&store, "SELECT COUNT(*) FROM warranty_coverage_decisions").await;
    assert_eq!(decisions, total / 5 * 4, "coverage decision rows");

    eprintln!("{backend}: relaying the log to JetStream");
    let mut relay_env = env.clone();
    relay_env.push(("NATS_URL".into(), nats.url()));
    let mut relay = Command::new(platform::binary("aftersales"))
        .args(["relay", "warranty", "--region", "bench"])
        .envs(relay_env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (mut last, mut moved) = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = relayed(&store).await;
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if now * 100 >= total * 99 && moved.elapsed() > Duration::from_secs(3) {
            break;
        }
        if started.elapsed() >= relay_for {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(60),
            "relay stuck at {now}"
        );
    }
    let relay_seconds = moved.duration_since(started).as_secs_f64();
    let _ = relay.kill();
    let _ = relay.wait();

    // The service on its full log, read models and relay caught up.
    let mut service_env = env.clone();
    service_env.push(("NATS_URL".into(), nats.url()));
    let started = Instant::now();
    let service = platform::Service::spawn("warranty", service_env);
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Endpoint::from_shared(service.url())
            .unwrap()
            .connect_lazy(),
    );
    loop {
        let serving = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok_and(|r| r.into_inner().status == 1);
        if serving {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let serving_seconds = started.elapsed().as_secs_f64();
    let cold = coverage_checks(&service.url(), phones).await;
    let warm = coverage_checks(&service.url(), phones).await;
    drop(service);

    println!("\n## {backend}: {total} events ({phones} phones, 5 events each)\n");
    println!("| measure | figure |");
    println!("|---|---|");
    println!("| filling the log, 32 writers, 5 events per append | {fill_rate:.0} events/s |");
    println!(
        "| the log on disk (table and indexes) | {:.0} MB per million events |",
        per_million(log_bytes)
    );
    println!(
        "| the whole database (log, read models, checkpoints) | {:.0} MB per million events |",
        per_million(all_bytes)
    );
    println!("| reading the log, nothing applied (baseline) | {read_rate:.0} events/s |");
    let rate = |(this, before): (f64, Option<f64>)| match before {
        None => format!("{this:.0} events/s"),
        Some(before) => format!(
            "{this:.0} events/s (the build before: {before:.0}, {:.2}x)",
            this / before
        ),
    };
    println!(
        "| rebuilding every read model, one pass | {} |",
        rate(rebuild_rate)
    );
    for (name, rebuilt) in each {
        println!("| — {name} alone | {} |", rate(rebuilt));
    }
    println!(
        "| relay catching up from the start into JetStream | {last} events in {relay_seconds:.1} s, {:.0} events/s |",
        last as f64 / relay_seconds
    );
    println!("| start to SERVING | {serving_seconds:.2} s |");
    println!(
        "| CheckCoverage, cold phone (p50 / p99 / max) | {:.2} / {:.2} / {:.2} ms |",
        at(&cold, 0.5),
        at(&cold, 0.99),
        at(&cold, 1.0)
    );
    println!(
        "| CheckCoverage, same phones again (p50 / p99 / max) | {:.2} / {:.2} / {:.2} ms |",
        at(&warm, 0.5),
        at(&warm, 0.99),
        at(&warm, 1.0)
    );
}

/// A read model that keeps nothing: a rebuild of it is the log read through.
#[derive(Clone)]
struct Nothing;

impl aftersales_eventstore::Projection for Nothing {
    fn name(&self) -> &'static str {
        "bench-nothing"
    }

    async fn apply(
        &self,
        _: &aftersales_eventstore::RecordedEvent,
        _: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), aftersales_eventstore::StoreError> {
        Ok(())
    }

    async fn reset(
        &self,
        _: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), aftersales_eventstore::StoreError> {
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let backends = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    if backends.contains("postgres") {
        let server = tokio::task::spawn_blocking(|| {
            PostgresServer::start(PostgresOptions::Durable).unwrap()
        })
        .await
        .unwrap();
        let url = server.create_database().unwrap();
        run("PostgreSQL", url, None, events).await;
        drop(server);
    }
    if backends.contains("sqlite") {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("warranty.db").display());
        run("SQLite", url, Some(dir.path()), events).await;
    }
}
