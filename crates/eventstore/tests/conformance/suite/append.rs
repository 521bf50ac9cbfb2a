//! Appending and reading: versions, races, duplicates, bad input, the log and its followers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aftersales_eventstore::{
    Checkpoint, EventStore, ExpectedVersion, FollowOptions, Limits, NewEvent, StoreError, StreamId,
    follow,
};
use futures::StreamExt as _;
use uuid::Uuid;

use crate::harness::{Backend, at, event, events, stream};

pub async fn appends_and_reads_back_every_field(b: Backend) {
    let s = stream("device");
    let batch = events(3);
    let outcome = b
        .store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 3);
    assert!(!outcome.duplicate);
    assert!(outcome.first_position < outcome.last_position);

    let read = b.store.read_stream(&s, 1, 100).await.unwrap();
    assert_eq!(read.len(), 3);
    for (i, (stored, sent)) in read.iter().zip(&batch).enumerate() {
        assert_eq!(stored.stream_id, s);
        assert_eq!(stored.stream_version, i as u64 + 1);
        assert_eq!(stored.event_id, sent.event_id);
        assert_eq!(stored.event_type, sent.event_type);
        assert_eq!(stored.schema_version, sent.schema_version);
        assert_eq!(stored.payload, sent.payload);
        let mut expected_meta = sent.metadata.clone();
        // Stored with microsecond precision.
        expected_meta.recorded_at = at(0) - chrono::Duration::nanoseconds(789);
        assert_eq!(stored.metadata, expected_meta);
    }
    assert_eq!(read[0].position, outcome.first_position);
    assert_eq!(read[2].position, outcome.last_position);

    let from_two = b.store.read_stream(&s, 2, 100).await.unwrap();
    assert_eq!(from_two.len(), 2);
    assert_eq!(from_two[0].stream_version, 2);

    let head = b.store.stream_head(&s).await.unwrap().unwrap();
    assert_eq!(head.version, 3);
    assert_eq!(head.hash, read[2].hash);
    assert!(
        b.store
            .stream_head(&stream("none"))
            .await
            .unwrap()
            .is_none()
    );

    let by_id = b
        .store
        .event_by_id(batch[1].event_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id, read[1]);
    assert!(b.store.event_by_id(Uuid::now_v7()).await.unwrap().is_none());

    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 3);
}

pub async fn expected_version_is_enforced_and_conflicts_write_nothing(b: Backend) {
    let s = stream("repair");
    b.store
        .append(&s, ExpectedVersion::Exact(0), events(2))
        .await
        .unwrap();

    let error = b
        .store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::WrongExpectedVersion {
                actual: 2,
                expected: ExpectedVersion::NoStream,
                ..
            }
        ),
        "{error:?}"
    );
    for wrong in [0, 1, 3, 99] {
        let error = b
            .store
            .append(&s, ExpectedVersion::Exact(wrong), events(1))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::WrongExpectedVersion { actual: 2, .. }),
            "{error:?}"
        );
    }
    assert_eq!(b.count().await, 2, "refused appends wrote nothing");

    let ok = b
        .store
        .append(&s, ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(ok.stream_version, 3);
    let ok = b
        .store
        .append(&s, ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    assert_eq!(ok.stream_version, 5);
    let fresh = b
        .store
        .append(&stream("new"), ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    assert_eq!(fresh.stream_version, 1);
}

pub async fn racing_exact_appends_have_exactly_one_winner(b: Backend) {
    let s = stream("race");
    b.store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = b.store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            store.append(&s, ExpectedVersion::Exact(1), events(2)).await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(outcome) => {
                winners += 1;
                assert_eq!(outcome.stream_version, 3);
            }
            Err(StoreError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, 3),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(
        b.count().await,
        3,
        "losers wrote nothing, not even part of a batch"
    );
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
}

pub async fn racing_any_appends_all_land_in_order(b: Backend) {
    let s = stream("busy");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = b.store.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let batch = events(2);
            let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
            store
                .append(&s, ExpectedVersion::Any, batch)
                .await
                .map(|_| ids)
        }));
    }
    let mut sent = HashSet::new();
    for task in tasks {
        sent.extend(task.await.unwrap().unwrap());
    }
    let stored = b.store.read_stream(&s, 1, 1000).await.unwrap();
    assert_eq!(stored.len(), 32);
    let versions: Vec<u64> = stored.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=32).collect::<Vec<_>>());
    let stored_ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(stored_ids, sent);
    // A batch stays contiguous within the stream.
    for pair in stored.chunks(2) {
        assert_eq!(pair[0].payload, b"{\"n\":0}");
        assert_eq!(pair[1].payload, b"{\"n\":1}");
    }
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
}

/// Appends to many streams at once (written together where the store groups
/// them), some refused: each gets its own answer, the refused write nothing, and
/// every position a writer is told holds its event.
pub async fn appends_arriving_together_each_get_their_own_answer(b: Backend) {
    let taken = stream("taken");
    b.store
        .append(&taken, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for n in 0..64usize {
        let (store, start) = (b.store.clone(), start.clone());
        let target = if n % 16 == 5 {
            taken.clone()
        } else {
            stream("together")
        };
        tasks.push(tokio::spawn(async move {
            let batch = events(1 + n % 3);
            start.wait().await;
            let outcome = store
                .append(&target, ExpectedVersion::NoStream, batch.clone())
                .await;
            (target, batch, outcome)
        }));
    }
    let (mut written, mut positions) = (1, HashSet::new());
    for task in tasks {
        let (target, batch, outcome) = task.await.unwrap();
        if target == taken {
            match outcome {
                Err(StoreError::WrongExpectedVersion { actual: 1, .. }) => continue,
                other => panic!("a taken stream must refuse, got {other:?}"),
            }
        }
        let outcome = outcome.unwrap();
        assert_eq!(outcome.stream_version, batch.len() as u64);
        let stored = b.store.read_stream(&target, 1, 10).await.unwrap();
        let ids =
            |events: &[_]| -> Vec<Uuid> { events.iter().map(|e: &NewEvent| e.event_id).collect() };
        assert_eq!(
            stored.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            ids(&batch)
        );
        assert_eq!(stored[0].position, outcome.first_position);
        assert_eq!(stored[batch.len() - 1].position, outcome.last_position);
        for event in &stored {
            assert!(positions.insert(event.position), "one position, one event");
        }
        written += i64::try_from(batch.len()).unwrap();
    }
    assert_eq!(
        b.count().await,
        written,
        "the refused appends wrote nothing"
    );
    assert_eq!(b.store.read_stream(&taken, 1, 10).await.unwrap().len(), 1);
}

pub async fn reappending_the_same_events_stores_them_once(b: Backend) {
    let s = stream("idem");
    let batch = events(3);
    let first = b
        .store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // The same call again, as after a timeout: same expected version, now stale.
    let again = b
        .store
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.stream_version, first.stream_version);
    assert_eq!(again.first_position, first.first_position);
    assert_eq!(again.last_position, first.last_position);
    // And with `Any`, where the version check passes and the id check must catch it.
    let any = b
        .store
        .append(&s, ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    assert!(any.duplicate);
    assert_eq!(b.count().await, 3);

    // Concurrent duplicates: all succeed, one write.
    let s2 = stream("idem-race");
    let batch = events(2);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = b.store.clone();
        let (s2, batch) = (s2.clone(), batch.clone());
        tasks.push(tokio::spawn(async move {
            store.append(&s2, ExpectedVersion::Any, batch).await
        }));
    }
    let outcomes: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| !o.duplicate).count(), 1);
    assert_eq!(b.store.read_stream(&s2, 1, 100).await.unwrap().len(), 2);
}

pub async fn reused_event_ids_with_other_content_are_refused(b: Backend) {
    let s = stream("reuse");
    let batch = events(2);
    b.store
        .append(&s, ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();

    // Same id, different payload.
    let mut changed = batch[0].clone();
    changed.payload = b"{\"n\":42}".to_vec();
    let error = b
        .store
        .append(&s, ExpectedVersion::Any, vec![changed])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IdempotencyConflict { .. }),
        "{error:?}"
    );

    // Same id in another stream.
    let error = b
        .store
        .append(
            &stream("other"),
            ExpectedVersion::Any,
            vec![batch[0].clone()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IdempotencyConflict { .. }),
        "{error:?}"
    );

    // A batch that is only partly stored.
    let mut partial = vec![batch[1].clone()];
    partial.extend(events(1));
    let error = b
        .store
        .append(&s, ExpectedVersion::Any, partial)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IdempotencyConflict { .. }),
        "{error:?}"
    );
    assert_eq!(b.count().await, 2, "nothing of a refused batch is stored");
}

pub async fn bad_input_gets_a_typed_error_and_writes_nothing(b: Backend) {
    let field_of = |error: StoreError| match error {
        StoreError::InvalidInput(input) => input.field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    assert_eq!(StreamId::parse("").unwrap_err().field, "stream_id");
    assert_eq!(
        StreamId::parse("x".repeat(201)).unwrap_err().field,
        "stream_id"
    );
    assert_eq!(StreamId::parse("has space").unwrap_err().field, "stream_id");
    assert_eq!(StreamId::parse("tab\there").unwrap_err().field, "stream_id");
    assert_eq!(
        ExpectedVersion::from_wire(-3).unwrap_err().field,
        "expected_version"
    );
    assert_eq!(
        ExpectedVersion::from_wire(-2).unwrap(),
        ExpectedVersion::Any
    );
    assert_eq!(
        ExpectedVersion::from_wire(7).unwrap(),
        ExpectedVersion::Exact(7)
    );

    let s = stream("bad");
    let store = b.store.clone().with_limits(Limits {
        max_payload_bytes: 64,
        max_events_per_append: 5,
    });
    let try_append = |batch: Vec<NewEvent>| {
        let store = store.clone();
        let s = s.clone();
        async move {
            store
                .append(&s, ExpectedVersion::Any, batch)
                .await
                .unwrap_err()
        }
    };
    assert_eq!(field_of(try_append(vec![]).await), "events");
    assert_eq!(field_of(try_append(events(6)).await), "events");
    let mut big = event("Noted", "{}");
    big.payload = vec![b'x'; 65];
    assert_eq!(field_of(try_append(vec![big]).await), "payload");
    let twice = event("Noted", "{}");
    assert_eq!(
        field_of(try_append(vec![twice.clone(), twice]).await),
        "event_id"
    );
    let mut nil = event("Noted", "{}");
    nil.event_id = Uuid::nil();
    assert_eq!(field_of(try_append(vec![nil]).await), "event_id");
    for bad_type in ["", "has space", &"T".repeat(101)] {
        assert_eq!(
            field_of(try_append(vec![event(bad_type, "{}")]).await),
            "event_type"
        );
    }
    let mut zero = event("Noted", "{}");
    zero.schema_version = 0;
    assert_eq!(field_of(try_append(vec![zero]).await), "schema_version");
    let mut no_actor = event("Noted", "{}");
    no_actor.metadata.actor.clear();
    assert_eq!(field_of(try_append(vec![no_actor]).await), "actor");
    let mut control = event("Noted", "{}");
    control.metadata.region = "eu\n".into();
    assert_eq!(field_of(try_append(vec![control]).await), "region");
    // One bad event spoils the whole batch.
    let mut mixed = events(3);
    mixed[2].event_type = String::new();
    assert_eq!(field_of(try_append(mixed).await), "event_type");

    assert_eq!(b.count().await, 0);
    assert!(b.store.stream_head(&s).await.unwrap().is_none());
}

pub async fn reads_the_log_by_position_and_by_checkpoint(b: Backend) {
    let (s1, s2) = (stream("a"), stream("b"));
    assert_eq!(b.store.last_position().await.unwrap(), 0);
    b.store
        .append(&s1, ExpectedVersion::Any, events(3))
        .await
        .unwrap();
    b.store
        .append(&s2, ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    b.store
        .append(&s1, ExpectedVersion::Any, events(1))
        .await
        .unwrap();

    let all = b.store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    assert_eq!(b.store.last_position().await.unwrap(), all[5].position);
    let page = b.store.read_all(all[1].position, 2).await.unwrap();
    assert_eq!(page, all[2..4].to_vec());

    // Paging by checkpoint yields the same settled log, each event once.
    // On PostgreSQL a transaction in flight anywhere in the cluster (other tests
    // run in parallel) holds the horizon back for a moment, so wait for it to pass.
    let mut seen = Vec::new();
    let mut checkpoint = Checkpoint::START;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < all.len() && tokio::time::Instant::now() < deadline {
        let page = b.store.read_log(checkpoint, 4).await.unwrap();
        let Some(last) = page.last() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        checkpoint = last.checkpoint;
        seen.extend(page);
    }
    assert!(b.store.read_log(checkpoint, 4).await.unwrap().is_empty());
    assert_eq!(
        seen.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        all.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
}

pub async fn follower_sees_every_event_once_under_concurrent_writers(b: Backend) {
    const WRITERS: usize = 16;
    const APPENDS: usize = 25;
    let follower = {
        let store = b.store.clone();
        tokio::spawn(async move {
            let options = FollowOptions {
                batch_size: 7,
                poll_interval: Duration::from_millis(5),
            };
            let mut log = Box::pin(follow(store, Checkpoint::START, options));
            let mut seen = Vec::new();
            while let Some(event) = log.next().await {
                let event = event.unwrap();
                let done = event.event_type == "Stop";
                seen.push(event);
                if done {
                    break;
                }
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = b.store.clone();
        writers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..APPENDS {
                // Spread over shared and private streams, 1 to 3 events each.
                let s = StreamId::parse(format!("s-{}", (w * 7 + i) % 11)).unwrap();
                let batch = events(1 + (w + i) % 3);
                sent.extend(batch.iter().map(|e| e.event_id));
                store.append(&s, ExpectedVersion::Any, batch).await.unwrap();
            }
            sent
        }));
    }
    let mut sent = HashSet::new();
    for writer in writers {
        sent.extend(writer.await.unwrap());
    }
    let stop = event("Stop", "{}");
    sent.insert(stop.event_id);
    b.store
        .append(
            &StreamId::parse("control").unwrap(),
            ExpectedVersion::Any,
            vec![stop],
        )
        .await
        .unwrap();

    let seen = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("the follower caught up")
        .unwrap();
    let ids: Vec<Uuid> = seen.iter().map(|e| e.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no event delivered twice");
    let missing = sent.difference(&unique).count();
    let extra = unique.difference(&sent).count();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "every event delivered, nothing else: {} sent, {} seen",
        sent.len(),
        unique.len()
    );
    assert!(seen.windows(2).all(|w| w[0].checkpoint < w[1].checkpoint));
    let mut last_version: HashMap<&StreamId, u64> = HashMap::new();
    for event in &seen {
        let last = last_version.entry(&event.stream_id).or_insert(0);
        assert_eq!(event.stream_version, *last + 1, "stream order kept");
        *last = event.stream_version;
    }
}
