//! Transactions: events, checkpoints and effects commit together, savepoints undo a part.

use aftersales_eventstore::{
    Checkpoint, CommandHandler, EventStore, ExpectedVersion, HandleError, StoreError,
};

use crate::counter::{self, Counter};
use crate::harness::{Backend, ctx, event, events, stream};

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
    let stored = b.store.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(
        (stored[0].position, stored[1].position),
        (outcome.first_position, outcome.last_position),
        "each version's position, in version order"
    );
    assert!(stored[0].position < stored[1].position);
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

/// A command run again inside a transaction, with the same id: a replay on its
/// own stream, and on another stream (empty there, whether it would append or be
/// refused) the id is known as another stream's.
pub async fn a_command_id_is_known_inside_a_transaction(b: Backend) {
    let handler = CommandHandler::<Counter, _>::new(b.store.clone());
    let (s, elsewhere) = (stream("once"), stream("once-elsewhere"));
    let keyed = aftersales_eventstore::CommandContext {
        command_id: Some(uuid::Uuid::now_v7()),
        ..ctx(1)
    };
    let mut tx = b.store.begin().await.unwrap();
    handler
        .handle_in(&mut tx, &s, &counter::Command::Add(3), &keyed)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = b.store.begin().await.unwrap();
    let again = handler
        .handle_in(&mut tx, &s, &counter::Command::Add(3), &keyed)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!((again.version, again.state.total), (1, 3));
    for command in [counter::Command::Add(3), counter::Command::Reset] {
        let error = handler
            .handle_in(&mut tx, &elsewhere, &command, &keyed)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                HandleError::Store(StoreError::IdempotencyConflict { .. })
            ),
            "{command:?}: {error:?}"
        );
    }
    tx.commit().await.unwrap();
    assert_eq!(b.count().await, 1);
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
