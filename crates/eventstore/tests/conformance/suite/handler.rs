//! The command handler: deciding, retrying lost races, idempotency, upcasting, snapshots.

use aftersales_eventstore::{
    AnyEventStore, CommandHandler, EventStore, ExpectedVersion, HandleError, Snapshot, StoreError,
    StreamId,
};
use uuid::Uuid;

use crate::counter::{self, Counter};
use crate::harness::{Backend, at, ctx, event, stream};

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

/// A handler that remembers states decides the next command on one without
/// loading; when another process moved the stream on, the append refuses it and
/// the command is decided again on the stream as stored, refusals included.
pub async fn remembered_states_are_checked_against_the_stream(b: Backend) {
    let here = CommandHandler::<Counter, _>::new(b.store.clone())
        .with_recent_states(100)
        .with_max_attempts(1);
    let there = CommandHandler::<Counter, _>::new(b.another_process().await)
        .with_recent_states(100)
        .with_max_attempts(1);
    let s = stream("remembered");
    let add = |n| counter::Command::Add(n);
    assert_eq!(here.handle(&s, &add(5), &ctx(1)).await.unwrap().version, 1);
    assert_eq!(there.handle(&s, &add(3), &ctx(2)).await.unwrap().version, 2);

    // `here` remembers version 1: its append is refused, and the command is
    // decided again on version 2 (not counted as a lost attempt).
    let done = here.handle(&s, &add(1), &ctx(3)).await.unwrap();
    assert_eq!((done.version, done.state.total), (3, 9));

    // `there` remembers 8 at version 2; the reset is decided again at version 3.
    let done = there
        .handle(&s, &counter::Command::Reset, &ctx(4))
        .await
        .unwrap();
    assert_eq!((done.version, done.state.total), (4, 0));

    // `here` remembers 9: a reset looks possible, but the stream is at zero.
    let refused = here
        .handle(&s, &counter::Command::Reset, &ctx(5))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        HandleError::Domain(counter::Error::AlreadyZero)
    ));
    let done = here.handle(&s, &add(2), &ctx(6)).await.unwrap();
    assert_eq!((done.version, done.state.total), (5, 2));

    // `there` remembers zero, where a reset is refused; the stream says 2.
    let done = there
        .handle(&s, &counter::Command::Reset, &ctx(7))
        .await
        .unwrap();
    assert_eq!((done.version, done.state.total), (6, 0));
    assert_eq!(b.count().await, 6, "every event written once");
    assert_eq!(here.load(&s).await.unwrap().state.total, 0);
}

/// A state decided inside a transaction is remembered once the transaction
/// commits: never when it rolls back, nor when the savepoint before it is
/// rolled back to, for another writer may then take that version with
/// something else.
pub async fn states_decided_in_a_transaction_are_remembered_once_committed(b: Backend) {
    let here = CommandHandler::<Counter, _>::new(b.store.clone()).with_recent_states(100);
    let there = CommandHandler::<Counter, _>::new(b.another_process().await);
    let add = |n| counter::Command::Add(n);

    let committed = stream("committed");
    let mut tx = b.store.begin().await.unwrap();
    here.handle_in(&mut tx, &committed, &add(5), &ctx(1))
        .await
        .unwrap();
    assert_eq!(
        here.remembered_version(&committed),
        None,
        "not yet committed"
    );
    tx.commit().await.unwrap();
    assert_eq!(here.remembered_version(&committed), Some(1));
    let done = here.handle(&committed, &add(1), &ctx(2)).await.unwrap();
    assert_eq!((done.version, done.state.total), (2, 6));

    let dropped = stream("dropped");
    let mut tx = b.store.begin().await.unwrap();
    here.handle_in(&mut tx, &dropped, &add(5), &ctx(3))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(here.remembered_version(&dropped), None);

    let undone = stream("undone");
    let kept = stream("kept");
    let mut tx = b.store.begin().await.unwrap();
    tx.savepoint().await.unwrap();
    here.handle_in(&mut tx, &undone, &add(5), &ctx(4))
        .await
        .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    here.handle_in(&mut tx, &kept, &add(7), &ctx(5))
        .await
        .unwrap();
    tx.release_savepoint().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(here.remembered_version(&undone), None);
    assert_eq!(here.remembered_version(&kept), Some(1));

    // Version 1 of the undone stream is another writer's 100: a command here
    // decides on that, not on the 5 that was rolled back.
    there.handle(&undone, &add(100), &ctx(6)).await.unwrap();
    let done = here.handle(&undone, &add(1), &ctx(7)).await.unwrap();
    assert_eq!((done.version, done.state.total), (2, 101));
}

/// A handler that remembers a stream at 5 (version 1), which another process
/// then moved to 15 (version 2), and whose first event was then taken away
/// behind the store's back: only a fold of the whole stream would miss it.
async fn remembered_then_cut(b: &Backend) -> (CommandHandler<Counter, AnyEventStore>, StreamId) {
    let here = CommandHandler::<Counter, _>::new(b.store.clone()).with_recent_states(100);
    let there = CommandHandler::<Counter, _>::new(b.another_process().await);
    let s = stream("remembered");
    here.handle(&s, &counter::Command::Add(5), &ctx(1))
        .await
        .unwrap();
    there
        .handle(&s, &counter::Command::Add(10), &ctx(2))
        .await
        .unwrap();
    b.disable_guard().await;
    b.exec(&format!(
        "DELETE FROM events WHERE stream_id = '{s}' AND stream_version = 1"
    ))
    .await;
    (here, s)
}

/// A transaction deciding on a stream this handler remembers starts from that
/// committed state and reads, through the transaction, only the events after
/// it: a hot stream costs the same to a reaction at its millionth event as at
/// its tenth.
pub async fn a_transaction_starts_from_a_remembered_state(b: Backend) {
    let (here, s) = remembered_then_cut(&b).await;
    let add = |n| counter::Command::Add(n);
    let mut tx = b.store.begin().await.unwrap();
    assert_eq!(here.load_in(&mut tx, &s).await.unwrap().state.total, 15);
    let done = here.handle_in(&mut tx, &s, &add(1), &ctx(3)).await.unwrap();
    assert_eq!((done.version, done.state.total), (3, 16));
    tx.commit().await.unwrap();
    assert_eq!(here.remembered_version(&s), Some(3));

    let whole = CommandHandler::<Counter, _>::new(b.store.clone());
    assert_eq!(whole.load(&s).await.unwrap().state.total, 11);
}

/// A load starts from the state the handler remembers: only what came after
/// it is read.
pub async fn a_load_starts_from_a_remembered_state(b: Backend) {
    let (here, s) = remembered_then_cut(&b).await;
    let loaded = here.load(&s).await.unwrap();
    assert_eq!((loaded.version, loaded.state.total), (2, 15));
    let whole = CommandHandler::<Counter, _>::new(b.store.clone())
        .load(&s)
        .await;
    assert_eq!(whole.unwrap().state.total, 10);
}

/// A command handed the state its caller has just read decides on it without
/// reading the stream; should the stream have moved on since, the append
/// refuses it and the command is decided again on the stream as stored. A
/// refusal decided on the state handed in writes nothing.
pub async fn a_command_decides_on_the_state_its_caller_read(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let there = CommandHandler::<Counter, _>::new(b.another_process().await);
    let add = |n| counter::Command::Add(n);
    let s = stream("read-first");
    handler.handle(&s, &add(5), &ctx(1)).await.unwrap();

    // Handed a state that is not what the stream folds to, it is what the
    // command is decided on: nothing read it again.
    let mut read = handler.load(&s).await.unwrap();
    read.state.total = 100;
    let done = handler
        .handle_loaded(&s, read, &add(1), &ctx(2))
        .await
        .unwrap();
    assert_eq!((done.version, done.state.total), (2, 101));

    // Read at version 2; another process appends version 3 meanwhile.
    let read = handler.load(&s).await.unwrap();
    there.handle(&s, &add(10), &ctx(3)).await.unwrap();
    let done = handler
        .handle_loaded(&s, read, &add(1), &ctx(4))
        .await
        .unwrap();
    assert_eq!((done.version, done.state.total), (4, 17));

    // A refusal on the state handed in is the answer, and nothing is written.
    let mut read = handler.load(&s).await.unwrap();
    read.state.total = 0;
    let refused = handler
        .handle_loaded(&s, read, &counter::Command::Reset, &ctx(5))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        HandleError::Domain(counter::Error::AlreadyZero)
    ));
    assert_eq!(
        b.count().await,
        4,
        "every event written once, the refusal none"
    );
}

/// A command on a stream named afresh is appended without reading the stream;
/// on a stream that exists after all it is decided on what is stored, and run
/// again it is known as a repeat.
pub async fn a_command_on_a_stream_named_afresh_defers_to_one_that_exists(b: Backend) {
    let here = CommandHandler::<Counter, _>::new(b.store.clone()).with_recent_states(100);
    let there = CommandHandler::<Counter, _>::new(b.another_process().await);
    let add = |n| counter::Command::Add(n);
    let (fresh, taken) = (stream("fresh"), stream("taken"));
    there.handle(&taken, &add(100), &ctx(1)).await.unwrap();
    let mut once = ctx(2);
    once.command_id = Some(Uuid::now_v7());

    let mut tx = b.store.begin().await.unwrap();
    let done = here
        .handle_new_in(&mut tx, &fresh, &add(5), &once)
        .await
        .unwrap();
    assert_eq!(
        (done.version, done.state.total, done.duplicate),
        (1, 5, false)
    );
    let done = here
        .handle_new_in(&mut tx, &taken, &add(1), &ctx(3))
        .await
        .unwrap();
    assert_eq!(
        (done.version, done.state.total),
        (2, 101),
        "decided on what is stored"
    );
    tx.commit().await.unwrap();
    assert_eq!(here.remembered_version(&fresh), Some(1));

    let mut tx = b.store.begin().await.unwrap();
    let again = here
        .handle_new_in(&mut tx, &fresh, &add(5), &once)
        .await
        .unwrap();
    assert!(again.duplicate && again.events.is_empty());
    assert_eq!(again.state.total, 5);
    tx.commit().await.unwrap();
    assert_eq!(b.count().await, 3, "every event written once");
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

    assert!(snapshot.matches(b.store.read_stream(&s, 20, 1).await.unwrap().first()));

    // Prove the snapshot is what loading starts from: plant a distinguishable one,
    // sealed to the event it claims to be taken at.
    let planted = counter::State {
        total: 1000,
        additions: 20,
    };
    let sealed = |payload: Vec<u8>, chain_hash: &[u8]| {
        Snapshot::new(
            s.clone(),
            20,
            snapshot.schema_version,
            payload,
            snapshot.taken_at,
            chain_hash.try_into().unwrap(),
        )
    };
    b.store
        .save_snapshot(&sealed(
            serde_json::to_vec(&planted).unwrap(),
            &snapshot.chain_hash,
        ))
        .await
        .unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (1005, 25));
    // Inside a transaction too, with what it appended on top.
    let mut tx = b.store.begin().await.unwrap();
    let added = handler
        .handle_in(&mut tx, &s, &counter::Command::Add(1), &ctx(100))
        .await
        .unwrap();
    assert_eq!((added.state.total, added.version), (1006, 26));
    let loaded = handler.load_in(&mut tx, &s).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (1006, 26));
    tx.rollback().await.unwrap();

    // Edited without its seal, or sealed to a link that is not the event's, a
    // snapshot is refused and the events are folded instead.
    b.store
        .save_snapshot(&Snapshot {
            payload: serde_json::to_vec(&planted).unwrap(),
            ..snapshot.clone()
        })
        .await
        .unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!((loaded.state.total, loaded.version), (25, 25), "edited");
    b.store
        .save_snapshot(&sealed(serde_json::to_vec(&planted).unwrap(), &[7; 32]))
        .await
        .unwrap();
    let loaded = handler.load(&s).await.unwrap();
    assert_eq!(
        (loaded.state.total, loaded.version),
        (25, 25),
        "another link"
    );
    b.store.save_snapshot(&snapshot).await.unwrap();

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

pub async fn forgotten_command_keys_still_name_their_first_request(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let s = stream("forgotten");
    let mut old = ctx(0);
    old.command_id = Some(Uuid::new_v4());
    old.request_fingerprint = Some([1; 32]);
    handler
        .handle(&s, &counter::Command::Add(2), &old)
        .await
        .unwrap();
    let mut recent = ctx(100);
    recent.command_id = Some(Uuid::new_v4());
    recent.request_fingerprint = Some([2; 32]);
    handler
        .handle(&s, &counter::Command::Add(3), &recent)
        .await
        .unwrap();

    let mut tx = b.store.begin().await.unwrap();
    assert_eq!(tx.forget_command_keys(at(50)).await.unwrap(), 1);
    tx.commit().await.unwrap();

    // The kept key still refuses another body.
    let mut reused = recent.clone();
    reused.request_fingerprint = Some([9; 32]);
    let error = handler
        .handle(&s, &counter::Command::Add(7), &reused)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        HandleError::Store(StoreError::CommandIdReused { .. })
    ));
    // The forgotten one: its retry still finds its events, and another body under
    // it still cannot write, through the event ids the key derives.
    let retried = handler
        .handle(&s, &counter::Command::Add(2), &old)
        .await
        .unwrap();
    assert!(retried.duplicate, "{retried:?}");
    let mut late = old.clone();
    late.request_fingerprint = Some([8; 32]);
    let error = handler
        .handle(&s, &counter::Command::Add(7), &late)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HandleError::Store(
                StoreError::IdempotencyConflict { .. } | StoreError::CommandIdReused { .. }
            )
        ),
        "{error:?}"
    );
    assert_eq!(b.store.read_stream(&s, 1, 10).await.unwrap().len(), 2);
}
