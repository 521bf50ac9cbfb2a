//! PostgreSQL-specific proof that a follower never skips a late commit.
//!
//! SQLite has one writer at a time, so the hazard cannot arise there.

use std::time::Duration;

use aftersales_eventstore::{
    AnyEventStore, Checkpoint, EventStore, ExpectedVersion, FollowOptions, follow,
};
use futures::StreamExt as _;
use uuid::Uuid;

use crate::harness::{Backend, events, stream};

/// A transaction takes a lower position, then another commits a higher one first.
/// Reading by position would pass the lower one by; the follower must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_waits_for_a_transaction_that_commits_late() {
    let b = Backend::postgres().await;
    let AnyEventStore::Postgres(pg) = &b.store else {
        unreachable!()
    };
    let early = stream("early");
    b.store
        .append(&early, ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    let mut log = Box::pin(follow(
        b.store.clone(),
        Checkpoint::START,
        FollowOptions::default(),
    ));
    let checkpoint = log.next().await.unwrap().unwrap().checkpoint;
    drop(log);

    // The slow writer: inserts (taking the next position) but has not committed.
    let mut slow = pg.pool().begin().await.unwrap();
    let slow_id = Uuid::now_v7();
    let slow_position: i64 = sqlx::query_scalar(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, \
         payload, correlation_id, actor, region, recorded_at, hash) \
         VALUES ('slow', 1, $1, 'Noted', 1, '\\x7b7d', $1, 'test', 'eu', now(), \
         decode(repeat('00', 32), 'hex')) RETURNING position",
    )
    .bind(slow_id)
    .fetch_one(&mut *slow)
    .await
    .unwrap();

    // The fast writer commits a higher position.
    let fast = b
        .store
        .append(&stream("fast"), ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    assert!(fast.first_position > u64::try_from(slow_position).unwrap());

    // Reading by position shows the hazard: the higher event is visible, the lower not yet.
    let by_position = b.store.read_all(checkpoint.position, 10).await.unwrap();
    assert_eq!(by_position.len(), 1);
    assert_eq!(by_position[0].position, fast.first_position);

    // The follower holds back instead of advancing past the gap.
    assert!(b.store.read_log(checkpoint, 10).await.unwrap().is_empty());
    let options = FollowOptions {
        batch_size: 10,
        poll_interval: Duration::from_millis(10),
    };
    let mut log = Box::pin(follow(b.store.clone(), checkpoint, options));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), log.next())
            .await
            .is_err(),
        "nothing is delivered while an older transaction is in flight"
    );

    slow.commit().await.unwrap();
    let first = log.next().await.unwrap().unwrap();
    let second = log.next().await.unwrap().unwrap();
    assert_eq!(
        first.event_id, slow_id,
        "the late commit is delivered, first"
    );
    assert_eq!(second.position, fast.first_position);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), log.next())
            .await
            .is_err(),
        "and nothing twice"
    );
}

/// A long write in another database on the same server (another service, a
/// bulk job) never writes this log, so the follower does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_in_another_database_does_not_hold_the_follower_back() {
    let b = Backend::postgres().await;
    let neighbour = Backend::postgres().await;
    let AnyEventStore::Postgres(other) = &neighbour.store else {
        unreachable!()
    };
    let mut long = other.pool().begin().await.unwrap();
    let long_xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *long)
        .await
        .unwrap();

    let appended = b
        .store
        .append(&stream("here"), ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    let read = b.store.read_log(Checkpoint::START, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![appended.first_position, appended.last_position],
        "both events, while transaction {long_xid} of another database is open"
    );
    let end = b.store.log_end().await.unwrap();
    assert!(
        end.transaction >= read[1].checkpoint.transaction,
        "the log's end is past them too"
    );
    long.rollback().await.unwrap();
}

/// A transaction that rolls back leaves a hole in positions that the follower
/// passes without waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_passes_positions_of_rolled_back_appends() {
    let b = Backend::postgres().await;
    let AnyEventStore::Postgres(pg) = &b.store else {
        unreachable!()
    };
    let mut aborted = pg.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, \
         payload, correlation_id, actor, region, recorded_at, hash) \
         VALUES ('gone', 1, $1, 'Noted', 1, '\\x7b7d', $1, 'test', 'eu', now(), \
         decode(repeat('00', 32), 'hex'))",
    )
    .bind(Uuid::now_v7())
    .execute(&mut *aborted)
    .await
    .unwrap();
    aborted.rollback().await.unwrap();
    let after = b
        .store
        .append(&stream("after"), ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    // Other tests' stores in this database can hold the horizon back for a moment.
    let mut read = Vec::new();
    for _ in 0..1000 {
        read = b.store.read_log(Checkpoint::START, 10).await.unwrap();
        if !read.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(read.len(), 2);
    assert_eq!(read[1].position, after.last_position);
}

/// Least privilege: the role a service runs as appends to and reads its log,
/// checkpoints and snapshots, and is refused by permission (not only by the
/// triggers) every way of changing what is written, and of removing the guard.
#[tokio::test]
async fn the_service_role_appends_and_reads_but_cannot_change_the_log() {
    let roles = aftersales_testkit::shared_postgres()
        .create_database_with_roles()
        .unwrap();
    let no_migrations = sqlx::migrate::Migrator::DEFAULT;
    let store =
        AnyEventStore::connect_as_service(&roles.service_url, &roles.owner_url, &no_migrations)
            .await
            .unwrap();
    let AnyEventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let s = stream("guarded");
    store
        .append(&s, ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    assert_eq!(store.read_stream(&s, 1, 10).await.unwrap().len(), 2);
    store
        .save_checkpoint("reader", Checkpoint::START)
        .await
        .unwrap();

    for change in [
        "UPDATE events SET event_type = 'Forged'",
        "DELETE FROM events",
        "TRUNCATE events",
        "DROP TRIGGER events_append_only ON events",
        "ALTER TABLE events DISABLE TRIGGER USER",
        "DELETE FROM _sqlx_migrations",
        "CREATE TABLE shadow (id int)",
    ] {
        let refused = sqlx::raw_sql(change)
            .execute(pg.pool())
            .await
            .expect_err(change);
        let code = refused
            .as_database_error()
            .and_then(|e| e.code().map(|c| c.into_owned()));
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "{change}: refused by permission, not by a trigger: {refused}"
        );
    }
    assert_eq!(store.read_stream(&s, 1, 10).await.unwrap().len(), 2);

    // A second start grants again and changes nothing.
    let again =
        AnyEventStore::connect_as_service(&roles.service_url, &roles.owner_url, &no_migrations)
            .await
            .unwrap();
    assert_eq!(again.read_stream(&s, 1, 10).await.unwrap().len(), 2);
}

/// Commit order is not position order: a transaction that started first but
/// appended last comes first in the log with the highest position. Whether a
/// follower has read everything up to a position is asked of the log, not of
/// the checkpoint's position (a rebuild waiting on that waited forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_has_read_up_to_a_position_in_commit_order() {
    let b = Backend::postgres().await;
    let mut early = b.store.begin().await.unwrap();
    early
        .save_checkpoint("takes-an-id", Checkpoint::START)
        .await
        .unwrap();
    let later = b
        .store
        .append(&stream("later"), ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    early
        .append(&stream("early"), ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    early.commit().await.unwrap();
    let last = b.store.last_position().await.unwrap();
    assert!(last > later.last_position);

    let mut read = Vec::new();
    for _ in 0..1000 {
        read = b.store.read_log(Checkpoint::START, 10).await.unwrap();
        if read.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![last, later.last_position],
        "the early transaction's event comes first"
    );
    assert!(
        !b.store
            .has_read_up_to(read[0].checkpoint, last)
            .await
            .unwrap(),
        "the later transaction's event, below that position, is still to read"
    );
    assert!(
        b.store
            .has_read_up_to(read[1].checkpoint, last)
            .await
            .unwrap(),
        "past both, though its own position is lower"
    );
    assert!(b.store.has_read_up_to(Checkpoint::START, 0).await.unwrap());
}

/// The server closed the store's pooled connections (a restart, a proxy's idle
/// timeout): once they sat idle, the next read finds them closed before using
/// them and opens fresh ones, instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_are_replaced_once_idle() {
    let b = Backend::postgres().await;
    let neighbour = Backend::postgres().await;
    let (AnyEventStore::Postgres(pg), AnyEventStore::Postgres(other)) =
        (&b.store, &neighbour.store)
    else {
        unreachable!()
    };
    let s = stream("kept");
    b.store
        .append(&s, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    let closed: i64 = sqlx::query_scalar(
        "WITH store AS MATERIALIZED (SELECT pid FROM pg_stat_activity WHERE datname = $1) \
         SELECT COUNT(*) FROM store WHERE pg_terminate_backend(pid)",
    )
    .bind(&database)
    .fetch_one(other.pool())
    .await
    .unwrap();
    assert!(closed >= 1, "the store had pooled connections to close");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.store.read_stream(&s, 1, 10).await.unwrap().len(), 1);
}

/// Another transaction takes the version between this one's head read and its
/// insert: the insert is refused, the append says so, and the transaction goes on.
/// One event and several (the rest inserted only if the first was) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_insert_refused_for_a_version_taken_meanwhile_leaves_the_transaction_usable() {
    let b = Backend::postgres().await;
    for n in [1, 3] {
        let (s, after) = (stream("raced"), stream("after"));
        let mut first = b.store.begin().await.unwrap();
        first
            .append(&s, ExpectedVersion::NoStream, events(1))
            .await
            .unwrap();
        let second = {
            let (store, s, after) = (b.store.clone(), s.clone(), after.clone());
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                // Sees no stream yet, inserts version 1, and waits on the first's key.
                let error = tx
                    .append(&s, ExpectedVersion::NoStream, events(n))
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        error,
                        aftersales_eventstore::StoreError::WrongExpectedVersion { actual: 1, .. }
                    ),
                    "{n} events: {error:?}"
                );
                tx.append(&after, ExpectedVersion::NoStream, events(1))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.is_finished(),
            "the second insert waits on the first"
        );
        first.commit().await.unwrap();
        second.await.unwrap();
        assert_eq!(
            b.store.read_stream(&s, 1, 10).await.unwrap().len(),
            1,
            "{n} events"
        );
        assert_eq!(
            b.store.read_stream(&after, 1, 10).await.unwrap().len(),
            1,
            "{n} events"
        );
    }
}

/// An append refused on a later event's key (its id stored already) fails the
/// statement, and PostgreSQL then aborts the transaction and answers its `COMMIT`
/// with a rollback: the commit must fail, not report what was undone as written.
/// Under a savepoint, rolling back to it makes the transaction usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_aborted_by_a_refused_append_cannot_commit() {
    let b = Backend::postgres().await;
    let stored = stream("stored");
    let taken = events(1);
    b.store
        .append(&stored, ExpectedVersion::NoStream, taken.clone())
        .await
        .unwrap();
    let reusing = |s: &aftersales_eventstore::StreamId| {
        let mut batch = events(2);
        batch[1].event_id = taken[0].event_id;
        (s.clone(), batch)
    };

    let (before, refused) = (stream("before"), stream("refused"));
    let mut tx = b.store.begin().await.unwrap();
    tx.append(&before, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let (s, batch) = reusing(&refused);
    tx.append(&s, ExpectedVersion::NoStream, batch)
        .await
        .unwrap_err();
    let error = tx.commit().await.unwrap_err();
    assert!(
        matches!(error, aftersales_eventstore::StoreError::Aborted),
        "{error:?}"
    );
    for s in [&before, &refused] {
        assert!(
            b.store.read_stream(s, 1, 10).await.unwrap().is_empty(),
            "{s}"
        );
    }

    let (kept, undone) = (stream("kept"), stream("undone"));
    let mut tx = b.store.begin().await.unwrap();
    tx.append(&kept, ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tx.savepoint().await.unwrap();
    let (s, batch) = reusing(&undone);
    tx.append(&s, ExpectedVersion::NoStream, batch)
        .await
        .unwrap_err();
    tx.rollback_to_savepoint().await.unwrap();
    tx.commit().await.unwrap();
    for (s, expected) in [(&kept, 1), (&undone, 0), (&stored, 1)] {
        assert_eq!(
            b.store.read_stream(s, 1, 10).await.unwrap().len(),
            expected,
            "{s}"
        );
    }
}

/// A read model's transaction commits without waiting for the disk, and an
/// ordinary one as the server is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_unflushed_transaction_commits_asynchronously() {
    let b = Backend::postgres().await;
    // The test server runs without durability; this database asks for it.
    b.exec(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = on', \
         current_database()); END $$",
    )
    .await;
    let store = b.another_process().await;
    async fn setting(tx: &mut aftersales_eventstore::StoreTransaction) -> String {
        let aftersales_eventstore::transaction::TransactionConnection::Postgres(conn) =
            tx.connection()
        else {
            unreachable!()
        };
        sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    }
    let mut ordinary = store.begin().await.unwrap();
    assert_eq!(setting(&mut ordinary).await, "on");
    ordinary.rollback().await.unwrap();
    let mut unflushed = store.begin_unflushed().await.unwrap();
    assert_eq!(setting(&mut unflushed).await, "off");
    let moved = Checkpoint {
        transaction: 5,
        position: 7,
    };
    unflushed
        .save_checkpoint("read-model", moved)
        .await
        .unwrap();
    unflushed.commit().await.unwrap();
    assert_eq!(store.load_checkpoint("read-model").await.unwrap(), moved);
}
