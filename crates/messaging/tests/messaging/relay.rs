//! The relay and a JetStream consumer together: every event applied exactly once,
//! through broker crashes and relay crashes.

use std::process::{Child, Command};
use std::time::Duration;

use aftersales_core::Shutdown;
use aftersales_eventstore::{AnyEventStore, Checkpoint, EventStore};
use aftersales_messaging::{Relay, RelaySettings, StreamSettings, connect};
use aftersales_testkit::NatsServer;
use futures::StreamExt as _;

use crate::harness::{
    Pipeline, SOURCE, append_events, assert_exactly_once, consumer_settings, effect_ids, names,
    sqlite_store, wait_for_effects,
};

const EVENTS: usize = 10_000;
const SETTLE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_ten_thousand_events_and_each_is_applied_once() {
    let mut p = Pipeline::postgres().await;
    p.start_relay();
    p.start_consumer(consumer_settings()).await;
    let events = append_events(&p.producer, EVENTS, 50).await;
    wait_for_effects(&p.consumer, EVENTS, SETTLE).await;
    // Anything applied twice would show up shortly after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&effect_ids(&p.consumer).await, &events);
    assert_eq!(p.stream_messages().await, (EVENTS as u64, EVENTS as u64));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_or_doubled_when_nats_server_is_killed_twice() {
    let mut p = Pipeline::postgres().await;
    p.start_relay();
    p.start_consumer(consumer_settings()).await;
    let mut events = Vec::with_capacity(EVENTS);
    for third in 0..3 {
        // Appends continue while the broker is down; the relay catches up later.
        events.extend(append_events(&p.producer, EVENTS / 3 + usize::from(third == 0), 50).await);
        if third < 2 {
            wait_for_effects(&p.consumer, events.len() / 2, SETTLE).await;
            p.nats.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            p.nats.restart().unwrap();
        }
    }
    assert_eq!(events.len(), EVENTS);
    wait_for_effects(&p.consumer, EVENTS, SETTLE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&effect_ids(&p.consumer).await, &events);
    // Acknowledged messages survived the kills, and re-publishes were dropped.
    assert_eq!(p.stream_messages().await, (EVENTS as u64, EVENTS as u64));
    p.stop().await;
}

/// Set in the relay process: the value is `<database url> <nats url>`.
const RELAY_CHILD: &str = "AFTERSALES_TEST_RELAY_CHILD";

/// The relay as a process of its own, killed with SIGKILL when dropped: this test
/// binary again, running only [`relay_process`].
struct RelayProcess(Child);

impl RelayProcess {
    fn start(database_url: &str, nats_url: &str) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "relay::relay_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env(RELAY_CHILD, format!("{database_url} {nats_url}"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

/// The body of [`RelayProcess`]: relays the producer's log until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the relay process the crash tests start and kill; not a test by itself"]
async fn relay_process() {
    let setting = std::env::var(RELAY_CHILD).expect("started by RelayProcess");
    let (database_url, nats_url) = setting.split_once(' ').unwrap();
    let store = AnyEventStore::connect(database_url).await.unwrap();
    let js = connect(nats_url, "test-relay").await.unwrap();
    aftersales_messaging::ensure_service_stream(&js, &names(), SOURCE, &StreamSettings::default())
        .await
        .unwrap();
    source_relay(store, js).run(Shutdown::never()).await;
}

/// `SOURCE`'s relay with the default settings.
fn source_relay(store: AnyEventStore, js: async_nats::jetstream::Context) -> Relay<AnyEventStore> {
    Relay::new(
        store,
        js,
        names(),
        SOURCE,
        RelaySettings::default(),
        &StreamSettings::default(),
    )
    .unwrap()
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_publish_and_checkpoint_causes_no_double_effects() {
    let mut p = Pipeline::postgres().await;
    let database_url = shared_url(&p.producer).await;
    p.start_consumer(consumer_settings()).await;
    let events = append_events(&p.producer, EVENTS, 50).await;
    // The checkpoint name the binary uses.
    let checkpoint_name = source_relay(p.producer.clone(), p.js.clone()).checkpoint_name();

    let mut crashes_in_window = 0;
    for _ in 0..6 {
        let relay = RelayProcess::start(&database_url, &p.nats.url());
        let before = p.stream_messages().await.0;
        // Let it publish a few hundred more, then kill it mid-flight.
        let deadline = tokio::time::Instant::now() + SETTLE;
        while p.stream_messages().await.0 < (before + 300).min(EVENTS as u64) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relay published nothing"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        relay.kill();
        let published = p.stream_messages().await.0;
        let checkpointed = p.producer.load_checkpoint(&checkpoint_name).await.unwrap();
        // Positions are 1..=EVENTS in order: one writer appended them all first.
        if checkpointed.position < published {
            crashes_in_window += 1;
        }
        if published >= EVENTS as u64 {
            break;
        }
    }
    assert!(
        crashes_in_window >= 1,
        "no kill landed between a publish and its checkpoint"
    );
    let relay = RelayProcess::start(&database_url, &p.nats.url());
    wait_for_effects(&p.consumer, EVENTS, SETTLE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(relay);
    assert_exactly_once(&effect_ids(&p.consumer).await, &events);
    // Every re-published event was dropped as a duplicate.
    assert_eq!(p.stream_messages().await, (EVENTS as u64, EVENTS as u64));
    assert_eq!(
        names().service_stream(SOURCE),
        "AFTERSALES_TEST_REGION_PRODUCER"
    );
    p.stop().await;
}

/// On a durable stream each acknowledgement waits for an fsync. An event appended
/// meanwhile is published without waiting for it, and the checkpoint never passes
/// an event whose acknowledgement has not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_published_while_earlier_acknowledgements_are_awaited() {
    let nats = NatsServer::start().unwrap();
    let js = connect(&nats.url(), "test").await.unwrap();
    // No stream holds the subjects: the test answers each publish as JetStream
    // does, when it chooses to.
    let broker = async_nats::connect(nats.url()).await.unwrap();
    let mut publishes = broker
        .subscribe(names().service_subjects(SOURCE))
        .await
        .unwrap();
    broker.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, "producer.db").await;
    let relay = source_relay(store.clone(), js);
    let checkpoint_name = relay.checkpoint_name();
    let (stop, shutdown) = Shutdown::new();
    let running = tokio::spawn(async move { relay.run(shutdown).await });
    let next_publish = async |publishes: &mut async_nats::Subscriber| {
        tokio::time::timeout(Duration::from_secs(2), publishes.next())
            .await
            .ok()
            .flatten()
    };
    let message_id = |message: &async_nats::Message| {
        let headers = message.headers.as_ref().unwrap();
        headers
            .get("Nats-Msg-Id")
            .unwrap()
            .as_str()
            .parse::<uuid::Uuid>()
            .unwrap()
    };
    let acknowledge = async |message: &async_nats::Message, seq: u64| {
        let ack = format!(
            r#"{{"stream":"{}","seq":{seq}}}"#,
            names().service_stream(SOURCE)
        );
        broker
            .publish(message.reply.clone().unwrap(), ack.into())
            .await
            .unwrap();
        broker.flush().await.unwrap();
    };

    let first = append_events(&store, 1, 1).await;
    let first_publish = next_publish(&mut publishes).await.unwrap();
    assert_eq!(message_id(&first_publish), first[0]);
    let second = append_events(&store, 1, 1).await;
    let second_publish = next_publish(&mut publishes)
        .await
        .expect("the second event waited for the first one's acknowledgement");
    assert_eq!(message_id(&second_publish), second[0]);

    acknowledge(&second_publish, 2).await;
    // Longer than the relay's checkpoint interval and its idle wait.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.load_checkpoint(&checkpoint_name).await.unwrap(),
        Checkpoint::START,
        "the checkpoint passed an event whose acknowledgement has not come"
    );
    acknowledge(&first_publish, 1).await;
    let last = store.read_log(Checkpoint::START, 10).await.unwrap()[1].checkpoint;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.load_checkpoint(&checkpoint_name).await.unwrap() != last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the checkpoint did not move past both acknowledged events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.trigger();
    running.await.unwrap();
    // Each event was published once.
    assert!(next_publish(&mut publishes).await.is_none());
}

/// The URL of a PostgreSQL store's database, for another process.
async fn shared_url(store: &AnyEventStore) -> String {
    let AnyEventStore::Postgres(pg) = store else {
        panic!("a PostgreSQL store");
    };
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    aftersales_testkit::shared_postgres().url(&database)
}
