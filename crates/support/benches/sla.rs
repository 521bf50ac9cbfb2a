//! SLA timers at scale: 100,000 open cases with running clocks, and how close
//! to its due instant each first-response warning is recorded; next to 100,000
//! tokio timers (in memory, lost on a crash) over the same spread, in the same
//! run.
//!
//! `cargo bench -p aftersales-support --bench sla` (a release build).
//! The support server runs in this process on its own PostgreSQL (fsync on),
//! its sweep every 1,000 ms as deployed. Cases (German, normal priority: a
//! first response within 8 working hours, warned at 80%) are opened over gRPC
//! by 16 clients from Monday 08:00 in Berlin on the service's clock, which
//! runs at real speed, so their warnings fall due as spread out as the openings
//! were. Then the clock jumps to 3 s before the first warning and runs on;
//! each warning's `at` (when the sweep reached that case) minus its `due` is
//! its lateness. Memory is this process's resident set (server and clients)
//! before and after the cases are opened. `BENCH_SLA_CASES` (default 100,000)
//! sets how many; `BENCH_SLA_GAP_MS` (default 0) moves the service's clock on
//! by that much after every 1,000 openings, spreading the warnings wider (a
//! lower rate of alarms falling due) without opening more slowly.

// A benchmark aborts on any failure; its counts are far below any cast limit.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aftersales_core::ShiftedClock;
use aftersales_proto::common::CountryCode;
use aftersales_proto::support as pb;
use aftersales_proto::support::support_service_client::SupportServiceClient;
use aftersales_testkit::{PostgresOptions, PostgresServer, resident_mib};
use chrono::{DateTime, Utc};

const CLIENTS: usize = 16;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut lateness_ms: Vec<f64>) {
    lateness_ms.sort_by(f64::total_cmp);
    println!(
        "{name}: {} fired; lateness p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lateness_ms.len(),
        percentile(&lateness_ms, 50.0),
        percentile(&lateness_ms, 99.0),
        lateness_ms.last().copied().unwrap_or(f64::NAN),
    );
}

fn case(n: usize) -> pb::OpenCaseRequest {
    pb::OpenCaseRequest {
        customer_id: format!("bench-{n}"),
        country: Some(CountryCode { value: "DE".into() }),
        language: "de".into(),
        channel: pb::Channel::Phone.into(),
        category: pb::Category::Hardware.into(),
        priority: pb::Priority::Normal.into(),
        subject: "Akku".into(),
        text: "Der Akku hält nicht mehr.".into(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    let cases: usize = std::env::var("BENCH_SLA_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let gap: i64 = std::env::var("BENCH_SLA_GAP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let me = std::process::id();
    let server =
        tokio::task::spawn_blocking(|| PostgresServer::start(PostgresOptions::Durable).unwrap())
            .await
            .unwrap();
    let url = server.create_database().unwrap();
    let clock = Arc::new(ShiftedClock::new());
    let monday: DateTime<Utc> = "2026-12-07T07:00:00Z".parse().unwrap();
    clock.advance(monday - clock.now());
    let mut common = aftersales_runtime::config::Common::test(url);
    common.clock = clock.shared();
    let config = aftersales_support::server::Config {
        common,
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        sla_sweep_millis: 1000,
        site_url: "http://127.0.0.1:8080".into(),
    };
    let running = aftersales_support::server::start(config).await.unwrap();
    let client = SupportServiceClient::connect(format!("http://{}", running.addr))
        .await
        .unwrap();
    let idle = resident_mib(me);

    // Open the cases, 16 clients at a time.
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (next, mut client, clock) = (Arc::clone(&next), client.clone(), Arc::clone(&clock));
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= cases {
                    return;
                }
                if n % 1000 == 999 && gap > 0 {
                    clock.advance(chrono::Duration::milliseconds(gap));
                }
                client.open_case(case(n)).await.unwrap();
                if n % 10_000 == 0 && n > 0 {
                    eprintln!("{n} cases open");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let opening = started.elapsed();
    println!(
        "{cases} cases opened in {:.0} s ({:.0}/s)",
        opening.as_secs_f64(),
        cases as f64 / opening.as_secs_f64()
    );
    let aftersales_eventstore::AnyEventStore::Postgres(pg) = &running.store else {
        panic!("PostgreSQL expected")
    };
    let pool = pg.pool().clone();
    // The read model has every case (the sweep reads its due instants).
    loop {
        let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM support_cases")
            .fetch_one(&pool)
            .await
            .unwrap();
        if known as usize >= cases {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let loaded = resident_mib(me);
    println!(
        "resident memory: {idle:.0} MiB idle, {loaded:.0} MiB with {cases} open cases \
         (server and clients in one process)"
    );

    // Jump to just before the first warning, then let the clock run.
    let first: String = sqlx::query_scalar("SELECT MIN(next_alarm) FROM support_cases")
        .fetch_one(&pool)
        .await
        .unwrap();
    let first: DateTime<Utc> = first.parse().unwrap();
    let last: String = sqlx::query_scalar("SELECT MAX(next_alarm) FROM support_cases")
        .fetch_one(&pool)
        .await
        .unwrap();
    let last: DateTime<Utc> = last.parse().unwrap();
    let spread = (last - first).to_std().unwrap_or_default();
    println!(
        "warnings due over {:.0} s of the service's clock",
        spread.as_secs_f64()
    );
    clock.advance(first - clock.now() - chrono::Duration::seconds(3));
    let deadline = Instant::now() + spread + Duration::from_secs(600);
    loop {
        let warned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE event_type = 'SlaWarningReached'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if warned as usize >= cases || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM events WHERE event_type = 'SlaWarningReached'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let lateness: Vec<f64> = payloads
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            let at: DateTime<Utc> = v["at"].as_str().unwrap().parse().unwrap();
            let due: DateTime<Utc> = v["due"].as_str().unwrap().parse().unwrap();
            (at - due).num_milliseconds() as f64
        })
        .collect();
    report("durable sweep (1,000 ms interval)", lateness);
    let swept = resident_mib(me);
    println!("resident memory after the warnings: {swept:.0} MiB");
    running.stop().await.unwrap();

    // The baseline: the same number of tokio timers over the same spread.
    let before = resident_mib(me);
    let start = tokio::time::Instant::now() + Duration::from_secs(1);
    let step = spread.as_secs_f64().max(1.0) / cases as f64;
    let timers: Vec<_> = (0..cases)
        .map(|n| {
            let due = start + Duration::from_secs_f64(step * n as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                (tokio::time::Instant::now() - due).as_secs_f64() * 1e3
            })
        })
        .collect();
    let armed = resident_mib(me);
    let mut lateness = Vec::with_capacity(cases);
    for timer in timers {
        lateness.push(timer.await.unwrap());
    }
    report("tokio timers (in memory)", lateness);
    println!(
        "resident memory: {before:.0} MiB before the timers, {armed:.0} MiB with {cases} armed"
    );
}
