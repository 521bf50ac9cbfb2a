//! The tests every backend must pass. Each takes a fresh, empty backend.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aftersales_eventstore::{
    ChainBreak, Checkpoint, CommandContext, CommandHandler, EventStore, ExpectedVersion,
    FollowOptions, HandleError, Limits, NewEvent, Snapshot, StoreError, StreamId, follow,
};
use futures::StreamExt as _;
use uuid::Uuid;

use crate::counter::{self, Counter};
use crate::harness::{Backend, at, event, events, metadata, stream};

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

async fn tamper_setup(b: &Backend) -> (StreamId, Vec<aftersales_eventstore::RecordedEvent>) {
    let s = stream("audit");
    b.store
        .append(&s, ExpectedVersion::Any, events(5))
        .await
        .unwrap();
    // Another stream's events interleave in the global log and must not matter.
    b.store
        .append(&stream("noise"), ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    let stored = b.store.read_stream(&s, 1, 100).await.unwrap();
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
    b.disable_guard().await;
    (s, stored)
}

pub async fn hash_chain_detects_edited_payload(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    b.exec(&format!(
        "UPDATE events SET payload = payload || payload WHERE position = {}",
        stored[2].position
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 3,
            position: stored[2].position
        })
    );
}

pub async fn hash_chain_detects_edited_metadata(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    b.exec(&format!(
        "UPDATE events SET actor = 'staff:someone-else' WHERE position = {}",
        stored[1].position
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 2,
            position: stored[1].position
        })
    );
}

pub async fn hash_chain_detects_deleted_event(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    b.exec(&format!(
        "DELETE FROM events WHERE position = {}",
        stored[1].position
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::Gap {
            expected: 2,
            found: 3
        })
    );

    // Renumbering to hide the gap breaks the hashes instead.
    for p in &stored[2..] {
        b.exec(&format!(
            "UPDATE events SET stream_version = stream_version - 1 WHERE position = {}",
            p.position
        ))
        .await;
    }
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 2,
            position: stored[2].position
        })
    );
}

pub async fn hash_chain_detects_reordered_events(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    let (p2, p3) = (stored[1].position, stored[2].position);
    b.exec(&format!(
        "UPDATE events SET stream_version = 1000 WHERE position = {p2}"
    ))
    .await;
    b.exec(&format!(
        "UPDATE events SET stream_version = 2 WHERE position = {p3}"
    ))
    .await;
    b.exec(&format!(
        "UPDATE events SET stream_version = 3 WHERE position = {p2}"
    ))
    .await;
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert_eq!(
        report.first_break,
        Some(ChainBreak::HashMismatch {
            version: 2,
            position: p3
        })
    );
}

pub async fn trusted_head_detects_removed_tail(b: Backend) {
    let (s, stored) = tamper_setup(&b).await;
    let anchor = b.store.stream_head(&s).await.unwrap().unwrap();
    assert!(
        b.store
            .verify_stream(&s, Some(anchor))
            .await
            .unwrap()
            .is_intact()
    );
    b.exec(&format!(
        "DELETE FROM events WHERE position = {}",
        stored[4].position
    ))
    .await;
    // The shortened chain is internally consistent...
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
    // ...but not against the anchor kept elsewhere.
    let report = b.store.verify_stream(&s, Some(anchor)).await.unwrap();
    assert!(
        matches!(report.first_break, Some(ChainBreak::HeadMismatch { .. })),
        "{report:?}"
    );
}

pub async fn history_cannot_be_changed_without_disabling_the_guard(b: Backend) {
    let s = stream("guarded");
    let outcome = b
        .store
        .append(&s, ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    let update = format!(
        "UPDATE events SET payload = payload WHERE position = {}",
        outcome.first_position
    );
    let delete = format!(
        "DELETE FROM events WHERE position = {}",
        outcome.first_position
    );
    let error = b.try_exec(&update).await.unwrap_err();
    assert!(error.to_string().contains("append-only"), "{error}");
    let error = b.try_exec(&delete).await.unwrap_err();
    assert!(error.to_string().contains("append-only"), "{error}");
    assert_eq!(b.count().await, 2);
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
}

fn ctx(seconds: i64) -> CommandContext {
    let m = metadata(seconds);
    CommandContext {
        command_id: None,
        correlation_id: m.correlation_id,
        causation_id: None,
        traceparent: m.traceparent,
        tracestate: None,
        actor: m.actor,
        region: m.region,
        now: m.recorded_at,
        request_fingerprint: None,
    }
}

pub async fn handler_decides_appends_and_refuses_without_writing(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("counter");
    let error = handler
        .handle(&s, &counter::Command::Reset, &ctx(0))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        HandleError::Domain(counter::Error::AlreadyZero)
    ));
    let error = handler
        .handle(&s, &counter::Command::Add(0), &ctx(0))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        HandleError::Domain(counter::Error::ZeroAmount)
    ));
    assert_eq!(b.count().await, 0);

    let done = handler
        .handle(&s, &counter::Command::Add(5), &ctx(1))
        .await
        .unwrap();
    assert_eq!(done.version, 1);
    assert_eq!(done.state.total, 5);
    assert_eq!(done.events, vec![counter::Event::Added { amount: 5 }]);
    handler
        .handle(&s, &counter::Command::Add(2), &ctx(2))
        .await
        .unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!(loaded.state.total, 7);
    assert_eq!(loaded.version, 2);

    let stored = b.store.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(stored[0].event_type, "Added");
    assert_eq!(stored[0].schema_version, 2);
    assert_eq!(stored[1].metadata.actor, "staff:tech-7");
}

pub async fn handler_retries_a_lost_race_with_fresh_state(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone()).with_max_attempts(50);
    let s = stream("contended");
    let mut tasks = Vec::new();
    for i in 0..12 {
        let handler = handler.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            handler.handle(&s, &counter::Command::Add(1), &ctx(i)).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!(loaded.state.total, 12, "no command lost to a race");
    assert_eq!(loaded.version, 12);

    // With a single attempt, losers report contention instead of retrying.
    let strict = CommandHandler::<Counter, _>::new(b.store.clone()).with_max_attempts(1);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let handler = strict.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            handler.handle(&s, &counter::Command::Add(1), &ctx(i)).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(HandleError::Contention { attempts: 1, .. }) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(ok >= 1);
    assert_eq!(handler.load(&s).await.unwrap().state.total, 12 + ok);
}

pub async fn handler_writes_a_repeated_command_once(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("retry");
    let mut context = ctx(0);
    context.command_id = Some(Uuid::now_v7());
    let first = handler
        .handle(&s, &counter::Command::Add(3), &context)
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = handler
        .handle(&s, &counter::Command::Add(3), &context)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert!(again.events.is_empty());
    assert_eq!(again.state.total, 3);
    assert_eq!(b.count().await, 1);
    // The same command sent many times at once: written once, every answer the same.
    let raced = stream("retry-race");
    let mut racing = ctx(1);
    racing.command_id = Some(Uuid::now_v7());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (handler, raced, racing) = (handler.clone(), raced.clone(), racing.clone());
        tasks.push(tokio::spawn(async move {
            handler
                .handle(&raced, &counter::Command::Add(4), &racing)
                .await
        }));
    }
    let mut first_runs = 0;
    for task in tasks {
        let done = task.await.unwrap().unwrap();
        assert_eq!((done.state.total, done.version), (4, 1));
        if done.duplicate {
            assert!(done.events.is_empty());
        } else {
            first_runs += 1;
        }
    }
    assert_eq!(first_runs, 1);
    assert_eq!(b.store.read_stream(&raced, 1, 10).await.unwrap().len(), 1);

    // The same command id against another stream is a conflict, not a silent no-op.
    let error = handler
        .handle(&stream("elsewhere"), &counter::Command::Add(3), &context)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        HandleError::Store(StoreError::IdempotencyConflict { .. })
    ));
}

pub async fn handler_loads_state_as_of_a_date(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("history");
    for (day, amount) in [(0, 1), (10, 2), (20, 4)] {
        handler
            .handle(&s, &counter::Command::Add(amount), &ctx(day * 86_400))
            .await
            .unwrap();
    }
    let before = handler.load_as_of(&s, at(-1)).await.unwrap();
    assert_eq!(before.version, 0);
    let mid = handler.load_as_of(&s, at(15 * 86_400)).await.unwrap();
    assert_eq!((mid.state.total, mid.version), (3, 2));
    let exact = handler.load_as_of(&s, at(20 * 86_400)).await.unwrap();
    assert_eq!(exact.state.total, 7);
}

pub async fn a_command_id_names_one_request(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("keyed");
    let mut first = ctx(0);
    first.command_id = Some(Uuid::new_v4());
    first.request_fingerprint = Some([1; 32]);
    let done = handler
        .handle(&s, &counter::Command::Add(2), &first)
        .await
        .unwrap();
    assert!(!done.duplicate);

    // The same request again, a moment later: its earlier result, nothing written.
    let mut retry = first.clone();
    retry.now = at(5);
    let again = handler
        .handle(&s, &counter::Command::Add(2), &retry)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.state.total, 2);

    // Another request under the same key, even to another stream: refused.
    let mut reused = first.clone();
    reused.request_fingerprint = Some([2; 32]);
    for target in [&s, &stream("keyed-elsewhere")] {
        let error = handler
            .handle(target, &counter::Command::Add(5), &reused)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                HandleError::Store(StoreError::CommandIdReused { .. })
            ),
            "{error:?}"
        );
    }
    // The same inside a transaction, as reactions and multi-write commands use it.
    let mut tx = b.store.begin().await.unwrap();
    let error = handler
        .handle_in(&mut tx, &s, &counter::Command::Add(5), &reused)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        HandleError::Store(StoreError::CommandIdReused { .. })
    ));
    let replayed = handler
        .handle_in(&mut tx, &s, &counter::Command::Add(2), &retry)
        .await
        .unwrap();
    assert!(replayed.duplicate);
    tx.commit().await.unwrap();
    assert_eq!(b.store.read_stream(&s, 1, 10).await.unwrap().len(), 1);
    assert!(
        b.store
            .read_stream(&stream("keyed-elsewhere"), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn upcasters_bring_old_events_to_the_current_shape(b: Backend) {
    let s = stream("legacy");
    // Written by an older release: v1 of Added had `n`.
    let mut old = event("Added", r#"{"type":"Added","n":9}"#);
    old.schema_version = 1;
    b.store
        .append(&s, ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();

    // Read as stored, v1 is not today's shape; every reader decodes through the
    // event type's upcasters instead.
    let stored = b.store.read_stream(&s, 1, 10).await.unwrap();
    assert!(serde_json::from_slice::<counter::Event>(&stored[0].payload).is_err());
    assert_eq!(
        stored[0].decode::<counter::Event>().unwrap(),
        counter::Event::Added { amount: 9 }
    );
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!(loaded.state.total, 9);

    // A version no step leads from is refused, never guessed at.
    let mut unknown = event("Added", r#"{"type":"Added","count":1}"#);
    unknown.schema_version = 7;
    let other = stream("legacy-unknown");
    b.store
        .append(&other, ExpectedVersion::NoStream, vec![unknown])
        .await
        .unwrap();
    assert!(matches!(
        handler.load(&other).await.unwrap_err(),
        HandleError::Codec(_)
    ));
    // The stored bytes are untouched: the chain still verifies.
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
}

pub async fn snapshots_are_used_and_ignored_when_outdated(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone()).with_snapshots_every(10);
    let s = stream("long");
    for i in 0..25 {
        handler
            .handle(&s, &counter::Command::Add(1), &ctx(i))
            .await
            .unwrap();
    }
    let snapshot = b.store.load_snapshot(&s).await.unwrap().unwrap();
    assert_eq!(snapshot.stream_version, 20);
    let state: counter::State = serde_json::from_slice(&snapshot.payload).unwrap();
    assert_eq!(state.total, 20);
    assert_eq!(handler.load(&s).await.unwrap().state.total, 25);

    // Prove the snapshot is what loading starts from: plant a distinguishable one.
    let planted = counter::State {
        total: 1000,
        additions: 20,
    };
    b.store
        .save_snapshot(&Snapshot {
            payload: serde_json::to_vec(&planted).unwrap(),
            ..snapshot.clone()
        })
        .await
        .unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (1005, 25));

    // An older snapshot never replaces a newer one.
    b.store
        .save_snapshot(&Snapshot {
            stream_version: 10,
            ..snapshot.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        b.store
            .load_snapshot(&s)
            .await
            .unwrap()
            .unwrap()
            .stream_version,
        20
    );

    // A snapshot of another state shape is ignored: rebuilt from events.
    b.store
        .save_snapshot(&Snapshot {
            schema_version: 99,
            stream_version: 21,
            ..snapshot
        })
        .await
        .unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (25, 25));

    // Handlers without snapshots always fold from the start.
    let plain = CommandHandler::<Counter, _>::new(b.store.clone());
    assert_eq!(plain.load(&s).await.unwrap().state.total, 25);
}

pub async fn stores_in_two_processes_never_overwrite_each_other(b: Backend) {
    let other = b.another_process().await;
    let s = stream("shared");
    // Each store remembers the head it wrote last; the other one moves it on.
    for round in 0..5u64 {
        let (mine, theirs) = if round % 2 == 0 {
            (&b.store, &other)
        } else {
            (&other, &b.store)
        };
        mine.append(&s, ExpectedVersion::Exact(round * 2), events(1))
            .await
            .unwrap();
        let error = theirs
            .append(&s, ExpectedVersion::Exact(round * 2), events(1))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::WrongExpectedVersion { actual, .. } if actual == round * 2 + 1)
        );
        theirs
            .append(&s, ExpectedVersion::Any, events(1))
            .await
            .unwrap();
    }
    let stored = b.store.read_stream(&s, 1, 100).await.unwrap();
    assert_eq!(stored.len(), 10);
    assert!(b.store.verify_stream(&s, None).await.unwrap().is_intact());
}

pub async fn transaction_commits_events_and_checkpoint_together(b: Backend) {
    let s = stream("tx");
    assert_eq!(
        b.store.load_checkpoint("reader").await.unwrap(),
        Checkpoint::START
    );

    let mut tx = b.store.begin().await.unwrap();
    tx.append(&s, ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    let moved = Checkpoint {
        transaction: 7,
        position: 42,
    };
    tx.save_checkpoint("reader", moved).await.unwrap();
    assert_eq!(tx.load_checkpoint("reader").await.unwrap(), moved);
    tx.rollback().await.unwrap();
    assert_eq!(b.count().await, 0, "a rolled back append leaves nothing");
    assert_eq!(
        b.store.load_checkpoint("reader").await.unwrap(),
        Checkpoint::START
    );

    // A dropped transaction rolls back too; the head it wrote is not remembered.
    {
        let mut tx = b.store.begin().await.unwrap();
        tx.append(&s, ExpectedVersion::NoStream, events(3))
            .await
            .unwrap();
    }
    assert_eq!(b.count().await, 0);

    let mut tx = b.store.begin().await.unwrap();
    let outcome = tx
        .append(&s, ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 2);
    tx.save_checkpoint("reader", moved).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.count().await, 2);
    assert_eq!(b.store.load_checkpoint("reader").await.unwrap(), moved);
    let report = b.store.verify_stream(&s, None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");

    // The pool-side append builds on the committed head, not a rolled back one.
    let outcome = b
        .store
        .append(&s, ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(outcome.stream_version, 3);
}

pub async fn refused_append_leaves_the_transaction_usable(b: Backend) {
    let s = stream("tx-conflict");
    b.store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let mut tx = b.store.begin().await.unwrap();
    // Version 1 is taken; the head read says so and nothing is inserted.
    let error = tx
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        StoreError::WrongExpectedVersion { actual: 1, .. }
    ));
    // The same event id as a stored one, as another stream's event: the insert
    // itself is refused inside the transaction.
    let stored = b.store.read_stream(&s, 1, 1).await.unwrap().remove(0);
    let mut reused = event("Reused", "other");
    reused.event_id = stored.event_id;
    let error = tx
        .append(&stream("tx-other"), ExpectedVersion::NoStream, vec![reused])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::IdempotencyConflict { .. }),
        "{error:?}"
    );
    // Still usable after both refusals.
    tx.append(&s, ExpectedVersion::Exact(1), events(1))
        .await
        .unwrap();
    tx.save_checkpoint("after-refusals", Checkpoint::START)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.count().await, 2);
}

pub async fn handler_appends_inside_a_callers_transaction(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("counter-tx");
    let mut tx = b.store.begin().await.unwrap();
    let done = handler
        .handle_in(&mut tx, &s, &counter::Command::Add(4), &ctx(1))
        .await
        .unwrap();
    assert_eq!((done.version, done.state.total), (1, 4));
    tx.rollback().await.unwrap();
    assert_eq!(handler.load(&s).await.unwrap().version, 0);

    let mut tx = b.store.begin().await.unwrap();
    handler
        .handle_in(&mut tx, &s, &counter::Command::Add(4), &ctx(1))
        .await
        .unwrap();
    let refused = handler
        .handle_in(&mut tx, &s, &counter::Command::Add(0), &ctx(2))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        HandleError::Domain(counter::Error::ZeroAmount)
    ));
    tx.commit().await.unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!((loaded.version, loaded.state.total), (1, 4));
}

/// A consumer's batch runs several commands in one transaction: the second must
/// decide on the first's events, not on the committed state alone.
pub async fn commands_in_one_transaction_see_each_others_events(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("counter-batch");
    let mut tx = b.store.begin().await.unwrap();
    handler
        .handle_in(&mut tx, &s, &counter::Command::Add(4), &ctx(1))
        .await
        .unwrap();
    // Deciding on committed state alone, the Reset would expect no stream and be
    // refused as a conflict with the Add above.
    let reset = handler
        .handle_in(&mut tx, &s, &counter::Command::Reset, &ctx(2))
        .await
        .unwrap();
    assert_eq!((reset.version, reset.state.total), (2, 0));
    tx.commit().await.unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!((loaded.version, loaded.state.additions), (2, 1));
}

pub async fn savepoints_undo_part_of_a_transaction(b: Backend) {
    let kept = stream("kept");
    let undone = stream("undone");
    let mut tx = b.store.begin().await.unwrap();
    tx.savepoint().await.unwrap();
    tx.append(&kept, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tx.release_savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    tx.append(&undone, ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    // Usable after going back, and the same stream can be written again.
    tx.append(&undone, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(b.count().await, 2);
    assert_eq!(
        b.store.stream_head(&undone).await.unwrap().unwrap().version,
        1
    );
    assert_eq!(
        b.store.stream_head(&kept).await.unwrap().unwrap().version,
        1
    );
}

/// Counts events per stream into `projected`.
struct PerStream;

impl aftersales_eventstore::Projection for PerStream {
    fn name(&self) -> &'static str {
        "per-stream"
    }

    async fn apply(
        &self,
        event: &aftersales_eventstore::RecordedEvent,
        tx: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), StoreError> {
        use aftersales_eventstore::TransactionConnection;
        let sql = "INSERT INTO projected (stream_id, n) VALUES ($1, 1) \
                   ON CONFLICT (stream_id) DO UPDATE SET n = projected.n + 1";
        match tx.connection() {
            TransactionConnection::Postgres(c) => {
                sqlx::query(sql)
                    .bind(event.stream_id.as_str())
                    .execute(c)
                    .await?;
            }
            TransactionConnection::Sqlite(c) => {
                sqlx::query(sql)
                    .bind(event.stream_id.as_str().to_owned())
                    .execute(c)
                    .await?;
            }
        }
        Ok(())
    }

    async fn reset(
        &self,
        tx: &mut aftersales_eventstore::StoreTransaction,
    ) -> Result<(), StoreError> {
        use aftersales_eventstore::TransactionConnection;
        match tx.connection() {
            TransactionConnection::Postgres(c) => {
                sqlx::query("DELETE FROM projected").execute(c).await?;
            }
            TransactionConnection::Sqlite(c) => {
                sqlx::query("DELETE FROM projected").execute(c).await?;
            }
        }
        Ok(())
    }
}

pub async fn projections_catch_up_once_and_rebuild_from_the_start(b: Backend) {
    use aftersales_eventstore::projection;
    b.exec("CREATE TABLE projected (stream_id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .await;
    let streams = [stream("a"), stream("b"), stream("c")];
    for s in &streams {
        b.store
            .append(s, ExpectedVersion::NoStream, events(400))
            .await
            .unwrap();
    }
    // On PostgreSQL another test's transaction anywhere in the cluster can hold
    // new events back for a moment (the follower's horizon), so catch up until
    // everything has been seen.
    async fn settle(store: &aftersales_eventstore::AnyEventStore, expected: u64) -> Vec<u64> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut read = 0;
        let mut reported = Vec::new();
        while read < expected {
            let mut batch = Vec::new();
            read += projection::catch_up(store, &PerStream, |n| batch.push(n))
                .await
                .unwrap();
            reported.extend(batch);
            assert!(
                tokio::time::Instant::now() < deadline,
                "{read} of {expected}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(read, expected, "nothing applied twice");
        reported
    }
    let reported = settle(&b.store, 1200).await;
    assert!(
        reported.len() >= 3,
        "progress after each batch of 500: {reported:?}"
    );
    assert!(reported.windows(2).all(|w| w[0] < w[1] || w[1] <= 500));
    // Nothing new: nothing applied twice.
    assert_eq!(
        projection::catch_up(&b.store, &PerStream, |_| {})
            .await
            .unwrap(),
        0
    );
    b.store
        .append(&streams[0], ExpectedVersion::Exact(400), events(1))
        .await
        .unwrap();
    settle(&b.store, 1).await;
    let total = |b: &Backend| {
        let store = b.store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let sql = "SELECT CAST(SUM(n) AS BIGINT) FROM projected";
            let n: i64 = match tx.connection() {
                aftersales_eventstore::TransactionConnection::Postgres(c) => {
                    sqlx::query_scalar(sql).fetch_one(c).await.unwrap()
                }
                aftersales_eventstore::TransactionConnection::Sqlite(c) => {
                    sqlx::query_scalar(sql).fetch_one(c).await.unwrap()
                }
            };
            n
        }
    };
    assert_eq!(total(&b).await, 1201);
    assert_eq!(
        projection::rebuild(&b.store, &PerStream, |_| {})
            .await
            .unwrap(),
        1201
    );
    assert_eq!(total(&b).await, 1201);
}

pub async fn state_cache_drops_streams_the_log_moves_on(b: Backend) {
    use aftersales_eventstore::StateCache;
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let cache = std::sync::Arc::new(StateCache::<Counter>::new(100));
    let s = stream("cached");
    handler
        .handle(&s, &counter::Command::Add(1), &ctx(1))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let follower = {
        let (cache, store) = (cache.clone(), b.store.clone());
        tokio::spawn(async move {
            cache
                .follow(&store, Duration::from_millis(20), async {
                    let _ = stopped.await;
                })
                .await;
        })
    };
    // Let the follower find the log's end before the writes below.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cache.load(&handler, &s).await.unwrap().state.total, 1);

    // A cache nobody invalidates shows that reads are served from memory.
    let unfollowed = StateCache::<Counter>::new(100);
    assert_eq!(unfollowed.load(&handler, &s).await.unwrap().state.total, 1);

    // Another process writes: the cached state is dropped once the log shows it.
    let other = CommandHandler::<Counter, _>::new(b.another_process().await);
    other
        .handle(&s, &counter::Command::Add(2), &ctx(2))
        .await
        .unwrap();
    assert_eq!(unfollowed.load(&handler, &s).await.unwrap().state.total, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let total = cache.load(&handler, &s).await.unwrap().state.total;
        if total == 3 {
            break;
        }
        assert_eq!(total, 1, "either the old state or the new one");
        assert!(tokio::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // This process writes and forgets: the next read is fresh at once.
    handler
        .handle(&s, &counter::Command::Add(4), &ctx(3))
        .await
        .unwrap();
    cache.forget(&s);
    assert_eq!(cache.load(&handler, &s).await.unwrap().state.total, 7);
    // A stream with no events is not kept.
    let empty = stream("empty");
    assert_eq!(cache.load(&handler, &empty).await.unwrap().version, 0);
    handler
        .handle(&empty, &counter::Command::Add(5), &ctx(4))
        .await
        .unwrap();
    assert_eq!(cache.load(&handler, &empty).await.unwrap().version, 1);
    stop.send(()).unwrap();
    follower.await.unwrap();
}
