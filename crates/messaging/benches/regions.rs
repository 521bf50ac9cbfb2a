//! Replication between two regions on this machine: our replica (a mirror,
//! `ensure_replica_stream`) against raw JetStream sourcing of the same messages
//! (a stream with the origin as its one external source), in the same run.
//!
//! `cargo bench -p aftersales-messaging --bench regions` (a release build). Two
//! nats-servers, each its own JetStream domain, linked as leaf nodes through a
//! TCP proxy the bench cuts.
//!
//! - lag: `BENCH_SECONDS` (default 20) of publishing at `BENCH_RATE` (default 500)
//!   messages per second in `eu-central`; both copies exist in `ap-south` and an
//!   ordered consumer reads each; lag is from before the publish to the message
//!   read from the copy. p50, p99, max.
//! - catch-up: the link is cut, `BENCH_BACKLOG` (default 100,000) messages are
//!   published, the link heals, and the time until the copy holds them all is
//!   taken. One copy at a time, in the order ours, raw, raw, ours.

#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::time::{Duration, Instant};

use aftersales_messaging::{
    Names, StreamSettings, connect, ensure_replica_stream, ensure_service_stream,
};
use aftersales_testkit::{NatsServer, TcpProxy};
use async_nats::jetstream::{self, stream};
use futures::StreamExt as _;

const SERVICE: &str = "warranty";
const IN_FLIGHT: usize = 512;
/// The raw baseline's stream in `ap-south`.
const RAW: &str = "AFTERSALES_AP_SOUTH_SOURCED_EU_CENTRAL_WARRANTY";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A payload of a warranty event's size, carrying its send time.
fn payload(started: Instant) -> bytes::Bytes {
    let sent = started.elapsed().as_micros() as u64;
    format!("{sent:020} {}", "x".repeat(200)).into()
}

fn sent_micros(payload: &[u8]) -> u64 {
    std::str::from_utf8(&payload[..20])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

struct Regions {
    eu: jetstream::Context,
    ap: jetstream::Context,
    eu_names: Names,
    ap_names: Names,
    proxy: TcpProxy,
    _servers: (NatsServer, NatsServer),
}

/// The raw baseline: a stream in `ap-south` sourcing `eu-central`'s stream over
/// the same link, configured by hand.
async fn sourced(r: &Regions, name: &str) -> stream::Stream {
    let config = stream::Config {
        name: name.to_owned(),
        storage: stream::StorageType::File,
        sources: Some(vec![stream::Source {
            name: r.eu_names.service_stream(SERVICE),
            external: Some(stream::External {
                api_prefix: r.eu_names.jetstream_api(),
                delivery_prefix: None,
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    r.ap.create_or_update_stream(config).await.unwrap();
    r.ap.get_stream(name).await.unwrap()
}

async fn mirror(r: &Regions) -> stream::Stream {
    ensure_replica_stream(
        &r.ap,
        &r.ap_names,
        &r.eu_names,
        SERVICE,
        &StreamSettings::default(),
    )
    .await
    .unwrap()
}

async fn origin_count(r: &Regions) -> u64 {
    r.eu.get_stream(r.eu_names.service_stream(SERVICE))
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

async fn held(copy: &mut stream::Stream) -> u64 {
    copy.info().await.unwrap().state.messages
}

/// Publishes `n` messages in `eu-central` as fast as acknowledgements allow.
async fn publish_backlog(r: &Regions, n: usize, started: Instant) {
    let subject = r.eu_names.event_subject(SERVICE, "DeviceRegistered");
    let mut acks = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    for _ in 0..n {
        if acks.len() == IN_FLIGHT {
            let ack: jetstream::context::PublishAckFuture = acks.pop_front().unwrap();
            ack.await.unwrap();
        }
        acks.push_back(
            r.eu.publish(subject.clone(), payload(started))
                .await
                .unwrap(),
        );
    }
    for ack in acks {
        ack.await.unwrap();
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Lag of each copy at a steady rate: every message read from both.
async fn lag(r: &Regions, started: Instant) {
    let rate = env_usize("BENCH_RATE", 500);
    let seconds = env_usize("BENCH_SECONDS", 20);
    let total = rate * seconds;
    let copies = [
        ("ours (mirror)", mirror(r).await),
        ("raw JetStream sourcing", sourced(r, RAW).await),
    ];
    let mut readers = Vec::new();
    for (label, copy) in copies {
        let skip = copy.get_info().await.unwrap().state.last_sequence;
        let consumer = copy
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: skip + 1,
                },
                ..Default::default()
            })
            .await
            .unwrap();
        readers.push(tokio::spawn(async move {
            let mut messages = consumer.messages().await.unwrap();
            let mut lags = Vec::with_capacity(total);
            while lags.len() < total {
                let message = messages.next().await.unwrap().unwrap();
                let now = started.elapsed().as_micros() as u64;
                lags.push(now.saturating_sub(sent_micros(&message.payload)));
            }
            lags.sort_unstable();
            (label, lags)
        }));
    }
    let subject = r.eu_names.event_subject(SERVICE, "DeviceRegistered");
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut acks = std::collections::VecDeque::new();
    for _ in 0..total {
        tick.tick().await;
        acks.push_back(
            r.eu.publish(subject.clone(), payload(started))
                .await
                .unwrap(),
        );
        while acks.len() > IN_FLIGHT {
            acks.pop_front().unwrap().await.unwrap();
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    println!(
        "lag at {rate} messages/s for {seconds} s ({total} messages), publish to read in ap-south:"
    );
    for reader in readers {
        let (label, lags) = reader.await.unwrap();
        println!(
            "  {label:<24} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            percentile(&lags, 0.50),
            percentile(&lags, 0.99),
            percentile(&lags, 1.0)
        );
    }
    for name in [
        r.ap_names.replica_stream(&r.eu_names, SERVICE),
        RAW.to_owned(),
    ] {
        r.ap.delete_stream(name).await.unwrap();
    }
}

/// Cuts the link, publishes the backlog, heals, and times `copy` catching up.
async fn catch_up(r: &Regions, copy: &mut stream::Stream, backlog: usize, started: Instant) -> f64 {
    let before = origin_count(r).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while held(copy).await < before {
        assert!(
            Instant::now() < deadline,
            "the copy never caught up before the cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.proxy.cut();
    publish_backlog(r, backlog, started).await;
    let target = before + backlog as u64;
    let healed = Instant::now();
    r.proxy.heal();
    let deadline = healed + Duration::from_secs(600);
    while held(copy).await < target {
        assert!(Instant::now() < deadline, "no catch-up in ten minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    healed.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (hub, leaf, proxy) = NatsServer::linked_regions("eu-central", "ap-south").unwrap();
    let eu_names = Names::new("eu-central").unwrap();
    let ap_names = Names::new("ap-south").unwrap();
    let eu = connect(&hub.url(), "bench").await.unwrap();
    let ap = connect(&leaf.url(), "bench").await.unwrap();
    ensure_service_stream(&eu, &eu_names, SERVICE, &StreamSettings::default())
        .await
        .unwrap();
    let regions = Regions {
        eu,
        ap,
        eu_names,
        ap_names,
        proxy,
        _servers: (hub, leaf),
    };
    let started = Instant::now();
    lag(&regions, started).await;

    let backlog = env_usize("BENCH_BACKLOG", 100_000);
    println!("catch-up of a {backlog}-message backlog after the link heals:");
    // One copy at a time, each made afresh (its first copy of the origin not
    // timed) and removed after, so they never share the link.
    for ours in [true, false, false, true] {
        let (label, mut copy) = if ours {
            ("ours (mirror)", mirror(&regions).await)
        } else {
            ("raw JetStream sourcing", sourced(&regions, RAW).await)
        };
        let seconds = catch_up(&regions, &mut copy, backlog, started).await;
        println!(
            "  {label:<24} {seconds:>6.2} s  {:>9.0} messages/s",
            backlog as f64 / seconds
        );
        regions
            .ap
            .delete_stream(copy.cached_info().config.name.clone())
            .await
            .unwrap();
    }
}
