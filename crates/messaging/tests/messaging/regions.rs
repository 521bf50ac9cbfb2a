//! Two regions, each with its own nats-server and JetStream domain, linked as
//! leaf nodes through a proxy the test cuts: each region's stream is mirrored
//! into the other, each keeps serving its own while the link is down, and after
//! it heals every message arrives once, in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aftersales_core::Shutdown;
use aftersales_messaging::{
    JetStreamConsumer, Names, Relay, RelaySettings, StreamSettings, connect, ensure_replica_stream,
    ensure_service_stream, replica_state,
};
use aftersales_testkit::{NatsServer, TcpProxy};
use async_nats::jetstream::{self, stream};

use crate::harness::{
    Effects, SOURCE, append_events, assert_exactly_once, consumer_settings, effect_ids,
    postgres_store, subscription, wait_for_effects,
};

const WAIT: Duration = Duration::from_secs(60);

struct Region {
    names: Names,
    js: jetstream::Context,
    _server: NatsServer,
}

/// Two linked regions: `ap-south` dials `eu-central` through the proxy.
async fn two_regions() -> (Region, Region, TcpProxy) {
    let (hub, leaf, proxy) = NatsServer::linked_regions("eu-central", "ap-south").unwrap();
    let mut regions = Vec::new();
    for (server, region) in [(hub, "eu-central"), (leaf, "ap-south")] {
        let names = Names::new(region).unwrap();
        let js = connect(&server.url(), "test").await.unwrap();
        ensure_service_stream(&js, &names, "warranty", &StreamSettings::default())
            .await
            .unwrap();
        regions.push(Region {
            names,
            js,
            _server: server,
        });
    }
    let leaf = regions.pop().unwrap();
    let hub = regions.pop().unwrap();
    for (here, there) in [(&hub, &leaf), (&leaf, &hub)] {
        ensure_replica_stream(
            &here.js,
            &here.names,
            &there.names,
            "warranty",
            &StreamSettings::default(),
        )
        .await
        .unwrap();
    }
    (hub, leaf, proxy)
}

/// Publishes `ids` in `region`'s own stream; each is acknowledged there.
async fn publish(region: &Region, ids: std::ops::Range<u32>) {
    for id in ids {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}-{id}", region.names.region()).as_str(),
        );
        region
            .js
            .publish_with_headers(
                region.names.event_subject("warranty", "DeviceRegistered"),
                headers,
                id.to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

async fn replica(here: &Region, there: &Region) -> stream::Stream {
    here.js
        .get_stream(here.names.replica_stream(&there.names, "warranty"))
        .await
        .unwrap()
}

async fn held(here: &Region, there: &Region) -> u64 {
    replica(here, there)
        .await
        .info()
        .await
        .unwrap()
        .state
        .messages
}

async fn wait_held(here: &Region, there: &Region, n: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let count = held(here, there).await;
        if count == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {count} of {}'s messages, expected {n}",
            here.names.region(),
            there.names.region()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every message of `there` in `here`'s replica, once, in order, as published.
async fn assert_copied_once_in_order(here: &Region, there: &Region, n: u32) {
    let replica = replica(here, there).await;
    let info = replica.get_info().await.unwrap();
    assert_eq!(
        (info.state.messages, info.state.last_sequence),
        (u64::from(n), u64::from(n))
    );
    for sequence in 1..=n {
        let message = replica.get_raw_message(u64::from(sequence)).await.unwrap();
        assert_eq!(
            message
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned()),
            Some(format!("{}-{}", there.names.region(), sequence - 1))
        );
        assert_eq!(
            message.subject.as_str(),
            there.names.event_subject("warranty", "DeviceRegistered")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_region_mirrors_the_other_and_a_cut_link_loses_nothing() {
    let (eu, ap, proxy) = two_regions().await;
    publish(&eu, 0..50).await;
    publish(&ap, 0..50).await;
    wait_held(&ap, &eu, 50).await;
    wait_held(&eu, &ap, 50).await;

    // The link is cut: each region still takes its own writes.
    proxy.cut();
    publish(&eu, 50..100).await;
    publish(&ap, 50..100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut_off = replica_state(&ap.js, &ap.names, &eu.names, "warranty")
        .await
        .unwrap();
    assert_eq!(cut_off.messages, 50);
    assert!(
        cut_off
            .since_contact
            .is_some_and(|d| d >= Duration::from_secs(1)),
        "a cut replica reports its silence: {cut_off:?}"
    );
    assert_eq!(held(&ap, &eu).await, 50, "nothing crosses a cut link");
    assert_eq!(held(&eu, &ap).await, 50);
    for region in [&eu, &ap] {
        let own = region
            .js
            .get_stream(region.names.service_stream("warranty"))
            .await
            .unwrap()
            .get_info()
            .await
            .unwrap();
        assert_eq!(own.state.messages, 100);
    }

    // Healed: both replicas catch up, each message once, in the origin's order.
    let healed = Instant::now();
    proxy.heal();
    wait_held(&ap, &eu, 100).await;
    wait_held(&eu, &ap, 100).await;
    eprintln!("caught up {:?} after the link healed", healed.elapsed());
    let healed = replica_state(&ap.js, &ap.names, &eu.names, "warranty")
        .await
        .unwrap();
    assert_eq!((healed.messages, healed.lag), (100, 0), "{healed:?}");
    assert!(
        healed.since_contact < cut_off.since_contact,
        "{healed:?} after {cut_off:?}"
    );
    assert_copied_once_in_order(&ap, &eu, 100).await;
    assert_copied_once_in_order(&eu, &ap, 100).await;

    // A quiet origin is not a lost one: the link's heartbeats keep the contact
    // age low while nothing is published (so its alert does not fire).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let quiet = replica_state(&ap.js, &ap.names, &eu.names, "warranty")
        .await
        .unwrap();
    assert!(
        quiet
            .since_contact
            .is_some_and(|d| d < Duration::from_secs(4)),
        "{quiet:?}"
    );
    assert!(proxy.carried() > 0);
}

/// A service's events, relayed from its log in eu-central, reach a consumer in
/// ap-south through ap-south's replica: each applied once, across a cut link,
/// and the consumer's backlog counts what the replica holds for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_applies_another_regions_events_once_across_a_cut() {
    let (eu, ap, proxy) = two_regions().await;
    ensure_service_stream(&eu.js, &eu.names, SOURCE, &StreamSettings::default())
        .await
        .unwrap();
    ensure_replica_stream(
        &ap.js,
        &ap.names,
        &eu.names,
        SOURCE,
        &StreamSettings::default(),
    )
    .await
    .unwrap();
    let producer = postgres_store().await;
    let consumer_store = postgres_store().await;
    Effects::create_table(&consumer_store).await;
    let effects = Effects::new();

    let relay = Relay::new(
        producer.clone(),
        eu.js.clone(),
        eu.names.clone(),
        SOURCE,
        RelaySettings::default(),
        &StreamSettings::default(),
    )
    .unwrap();
    let consumer = JetStreamConsumer::new(
        ap.js.clone(),
        ap.names.clone(),
        subscription().from_region(eu.names.clone()),
        consumer_store.clone(),
        Arc::clone(&effects),
        consumer_settings(),
    )
    .unwrap();
    consumer
        .provision(&StreamSettings::default())
        .await
        .unwrap();
    let (stop, shutdown) = Shutdown::new();
    let relaying = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { relay.run(shutdown).await }
    });

    let mut events = append_events(&producer, 40, 4).await;
    let consuming = tokio::spawn(async move {
        consumer.run(shutdown).await;
    });
    wait_for_effects(&consumer_store, 40, WAIT).await;

    proxy.cut();
    events.extend(append_events(&producer, 60, 4).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        effect_ids(&consumer_store).await.len(),
        40,
        "nothing of the cut-off region's new events arrives"
    );
    proxy.heal();
    wait_for_effects(&consumer_store, 100, WAIT).await;
    assert_exactly_once(&effect_ids(&consumer_store).await, &events);

    stop.trigger();
    relaying.await.unwrap();
    consuming.await.unwrap();
}
