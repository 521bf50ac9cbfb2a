//! NATS as production configures it: one user per service, each allowed its own
//! subjects only (`permissions`). The producer's relay and the consumer run
//! under their users; a third service cannot publish as the producer, read its
//! stream through a consumer of its own, or delete it.

use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_messaging::permissions::{ServiceUser, authorization};
use aftersales_messaging::{
    DeadLetters, JetStreamConsumer, Relay, RelaySettings, StreamSettings, connect,
};
use aftersales_testkit::NatsServer;

use crate::harness::{
    Effects, SOURCE, append_events, assert_exactly_once, consumer_settings, effect_ids, names,
    postgres_store, subscription, wait_for_effects,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_reaches_its_own_subjects_only() {
    let users = [
        ServiceUser {
            service: SOURCE.into(),
            subscriptions: Vec::new(),
        },
        ServiceUser {
            service: "reactor".into(),
            subscriptions: vec![subscription()],
        },
        ServiceUser {
            service: "intruder".into(),
            subscriptions: Vec::new(),
        },
    ];
    let env = ["PRODUCER", "REACTOR", "INTRUDER", "OPERATOR"]
        .map(|u| (format!("{u}_NATS_PASSWORD"), format!("{u}-secret-0123")))
        .to_vec();
    let nats = NatsServer::start_with_config(&authorization(&names(), &users), env).unwrap();
    let url = |user: &str| {
        format!(
            "nats://{user}:{}-secret-0123@127.0.0.1:{}",
            user.to_uppercase(),
            nats.port()
        )
    };
    assert!(
        connect(&format!("nats://127.0.0.1:{}", nats.port()), "anonymous")
            .await
            .is_err(),
        "no user, no connection"
    );

    // The producer's relay creates its stream and publishes under its own user.
    let producer_js = connect(&url("producer"), "producer").await.unwrap();
    aftersales_messaging::ensure_service_stream(
        &producer_js,
        &names(),
        SOURCE,
        &StreamSettings::default(),
    )
    .await
    .unwrap();
    let producer = postgres_store().await;
    let relay = Relay::new(
        producer.clone(),
        producer_js.clone(),
        names(),
        SOURCE,
        RelaySettings::default(),
        &StreamSettings::default(),
    )
    .unwrap();
    let (stop_relay, relay_shutdown) = Shutdown::new();
    let relaying = tokio::spawn(async move { relay.run(relay_shutdown).await });

    // The consumer provisions its durables and the dead-letter stream, and applies.
    let consumer_store = postgres_store().await;
    Effects::create_table(&consumer_store).await;
    let reactor_js = connect(&url("reactor"), "reactor").await.unwrap();
    let events = append_events(&producer, 4, 2).await;
    let consumer = JetStreamConsumer::new(
        reactor_js,
        names(),
        subscription(),
        consumer_store.clone(),
        Effects::new(),
        consumer_settings(),
    )
    .unwrap();
    consumer
        .provision(&StreamSettings::default())
        .await
        .unwrap();
    let (stop_consumer, consumer_shutdown) = Shutdown::new();
    let consuming = tokio::spawn(async move { consumer.run(consumer_shutdown).await });
    wait_for_effects(&consumer_store, events.len(), Duration::from_secs(60)).await;
    assert_exactly_once(&effect_ids(&consumer_store).await, &events);

    // The intruder can neither publish as the producer nor touch its stream.
    let intruder = connect(&url("intruder"), "intruder").await.unwrap();
    let forged = async {
        intruder
            .publish(names().event_subject(SOURCE, "Happened"), "forged".into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    };
    assert!(forged.await.is_err(), "publishing as another service");
    assert!(
        intruder
            .delete_stream(names().service_stream(SOURCE))
            .await
            .is_err(),
        "deleting another's stream"
    );
    let stream_of_another = intruder.get_stream(names().service_stream(SOURCE)).await;
    assert!(stream_of_another.is_err(), "reading another's stream");
    let mut stream = producer_js
        .get_stream(names().service_stream(SOURCE))
        .await
        .unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        events.len() as u64,
        "nothing forged reached the stream"
    );

    // The operator's tools see the dead letters of every consumer.
    let operator = connect(&url("operator"), "operator").await.unwrap();
    assert!(
        DeadLetters::new(operator, names())
            .list("effects")
            .await
            .unwrap()
            .is_empty()
    );

    stop_relay.trigger();
    stop_consumer.trigger();
    relaying.await.unwrap();
    consuming.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_over_tls_serves_clients_that_trust_its_ca_only() {
    use aftersales_messaging::{connect_trusting, ensure_service_stream};

    let pki = aftersales_testkit::pki::TestCa::new();
    let nats = NatsServer::start_with_config(
        &format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n}}\n",
            pki.cert(),
            pki.key()
        ),
        Vec::new(),
    )
    .unwrap();
    let url = format!("tls://localhost:{}", nats.port());
    let js = connect_trusting(&url, "producer", Some(&pki.ca()))
        .await
        .unwrap();
    ensure_service_stream(&js, &names(), SOURCE, &StreamSettings::default())
        .await
        .unwrap();
    assert!(
        connect_trusting(&url, "untrusting", None).await.is_err(),
        "a client without the CA does not trust the server"
    );
    assert!(
        connect(&format!("nats://127.0.0.1:{}", nats.port()), "plain")
            .await
            .is_err(),
        "no plaintext"
    );
}
