//! `RegisterDevice` and `CheckCoverage` over gRPC at 50 concurrent clients, next to
//! a trivial tonic service (`grpc.health.v1.Health/Check`) on the same server, in
//! the same run; then `CheckCoverage` with authentication on (a second server on
//! the same database, trusting a token issuer; every call carries a bearer token)
//! next to the same call with it off.
//!
//! `cargo bench -p aftersales-warranty --bench grpc` (a release build). The server
//! runs in this process on a durable PostgreSQL (fsync on) started by the test kit;
//! each client has its own HTTP/2 connection. `BENCH_CLIENTS` (default 50),
//! `BENCH_SECONDS` per phase (default 10), `BENCH_DEVICES` registered (default 5000).

// A benchmark aborts on any failure, and its counts are far below any cast limit.
#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aftersales_proto::common::{CountryCode, DeviceId, device_id};
use aftersales_proto::warranty as pb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::telemetry::TracedChannel;
use aftersales_testkit::{PostgresOptions, PostgresServer};
use aftersales_warranty::server::{Config, start};
use tonic::transport::Channel;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn imei(n: u64) -> String {
    let body = format!("{:014}", 35_000_000_000_000 + n);
    let check = (0..10)
        .find(|d| aftersales_warranty::domain::ids::luhn_valid(&format!("{body}{d}")))
        .unwrap();
    format!("{body}{check}")
}

fn device(n: u64) -> Option<DeviceId> {
    Some(DeviceId {
        kind: Some(device_id::Kind::Imei(imei(n))),
    })
}

struct Phase {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn report(&self, name: &str) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        let at = |q: f64| l[((l.len() as f64 * q) as usize).min(l.len() - 1)].as_secs_f64() * 1e3;
        let rate = self.calls as f64 / self.elapsed.as_secs_f64();
        println!(
            "{name}: {rate:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms ({} calls)",
            at(0.5),
            at(0.99),
            self.calls
        );
        rate
    }
}

/// Runs `call(client, i)` from `clients` tasks until `limit` calls or `duration`.
async fn phase<C, F, Fut>(channels: &[C], duration: Duration, limit: usize, call: F) -> Phase
where
    C: Clone + Send + 'static,
    F: Fn(C, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for channel in channels {
        let (call, next, channel) = (Arc::clone(&call), Arc::clone(&next), channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit || start.elapsed() >= duration {
                    return latencies;
                }
                let began = Instant::now();
                call(channel.clone(), i).await;
                latencies.push(began.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Phase {
        calls: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let clients = env_usize("BENCH_CLIENTS", 50);
    let seconds = Duration::from_secs(env_usize("BENCH_SECONDS", 10) as u64);
    let devices = env_usize("BENCH_DEVICES", 5000);
    let pg = PostgresServer::start(PostgresOptions::Durable).unwrap();
    let database = pg.create_database().unwrap();
    let running = start(Config {
        common: aftersales_runtime::config::Common::test(database.clone()),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..Config::default()
    })
    .await
    .unwrap();
    let url = format!("http://{}", running.addr);
    let mut channels = Vec::new();
    for _ in 0..clients {
        channels.push(aftersales_runtime::telemetry::traced(
            Channel::from_shared(url.clone())
                .unwrap()
                .connect()
                .await
                .unwrap(),
            None,
        ));
    }
    #[allow(clippy::disallowed_methods)]
    let purchase = (chrono::Utc::now().date_naive() - chrono::Duration::days(100)).to_string();
    println!(
        "{clients} clients, {} s per phase, durable PostgreSQL",
        seconds.as_secs()
    );

    let register = phase(
        &channels,
        Duration::from_secs(600),
        devices,
        move |channel: TracedChannel, i| {
            let purchase = purchase.clone();
            async move {
                WarrantyServiceClient::new(channel)
                    .register_device(pb::RegisterDeviceRequest {
                        device_id: device(i as u64),
                        model: "Aurora 5".into(),
                        purchase_date: purchase,
                        country_of_purchase: Some(CountryCode { value: "DE".into() }),
                        channel: pb::SalesChannel::OnlineStore.into(),
                        customer_id: format!("c-{}", i % 1000),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        },
    )
    .await;

    let health = |channel: TracedChannel, _| async move {
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: "aftersales.warranty.v1.WarrantyService".into(),
            })
            .await
            .unwrap();
    };
    let coverage = move |channel: TracedChannel, i: usize| async move {
        WarrantyServiceClient::new(channel)
            .check_coverage(pb::CheckCoverageRequest {
                device_id: device((i * 7919 % devices) as u64),
                fault_category: pb::FaultCategory::Display.into(),
                as_of: None,
                record_decision: false,
                ..Default::default()
            })
            .await
            .unwrap();
    };
    // Warm both paths, then alternate: echo, coverage, coverage, echo.
    phase(&channels, Duration::from_secs(1), usize::MAX, health).await;
    phase(&channels, Duration::from_secs(1), usize::MAX, coverage).await;
    let echo_a = phase(&channels, seconds / 2, usize::MAX, health).await;
    let cover_a = phase(&channels, seconds / 2, usize::MAX, coverage).await;
    let cover_b = phase(&channels, seconds / 2, usize::MAX, coverage).await;
    let echo_b = phase(&channels, seconds / 2, usize::MAX, health).await;
    let merge = |a: Phase, b: Phase| Phase {
        calls: a.calls + b.calls,
        elapsed: a.elapsed + b.elapsed,
        latencies: a.latencies.into_iter().chain(b.latencies).collect(),
    };
    let register_rate = register.report("RegisterDevice");
    let echo_rate = merge(echo_a, echo_b).report("echo (Health/Check)");
    let coverage_rate = merge(cover_a, cover_b).report("CheckCoverage");
    println!(
        "CheckCoverage / echo = {:.2}x; RegisterDevice / echo = {:.2}x",
        coverage_rate / echo_rate,
        register_rate / echo_rate
    );

    // Authentication on: the same database, a server that verifies every call.
    let issuer = aftersales_auth::issuer::Issuer::serve(
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let authenticated = start(Config {
        common: aftersales_runtime::config::Common {
            oidc_issuer: Some(issuer.url().to_owned()),
            allow_unauthenticated: false,
            ..aftersales_runtime::config::Common::test(database)
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: None,
        ..Config::default()
    })
    .await
    .unwrap();
    let token = issuer
        .token(
            &aftersales_auth::Principal::new("bench", aftersales_auth::Role::Technician),
            "aftersales",
            Duration::from_secs(3600),
        )
        .unwrap();
    let mut signed = Vec::new();
    for _ in 0..clients {
        let channel = Channel::from_shared(format!("http://{}", authenticated.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        signed.push(aftersales_runtime::telemetry::traced(
            channel,
            Some(aftersales_auth::ServiceToken::fixed(token.clone())),
        ));
    }
    // Warm both, then alternate: off, on, on, off.
    phase(&channels, Duration::from_secs(1), usize::MAX, coverage).await;
    phase(&signed, Duration::from_secs(1), usize::MAX, coverage).await;
    let off_a = phase(&channels, seconds / 2, usize::MAX, coverage).await;
    let on_a = phase(&signed, seconds / 2, usize::MAX, coverage).await;
    let on_b = phase(&signed, seconds / 2, usize::MAX, coverage).await;
    let off_b = phase(&channels, seconds / 2, usize::MAX, coverage).await;
    let off_rate = merge(off_a, off_b).report("CheckCoverage, authentication off");
    let on_rate = merge(on_a, on_b).report("CheckCoverage, authentication on");
    println!(
        "authentication on / off = {:.2}x; the issuer's keys were fetched {} time(s)",
        on_rate / off_rate,
        issuer.key_fetches()
    );
    authenticated.stop().await.unwrap();
    running.stop().await.unwrap();
}
