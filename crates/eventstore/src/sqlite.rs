//! The SQLite backend: the embedded default for one machine.
//!
//! SQLite has one writer at a time, so appends go through a single-connection writer
//! pool (queued fairly in process instead of spinning on `SQLITE_BUSY`; those that
//! wait commit together, see [`crate::group`]), and reads use
//! a separate pool in WAL mode. Positions are handed out under the write lock, in
//! commit order, so followers read by position alone.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteExecutor, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row as _, Sqlite, migrate::Migrator};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::append::{self, AppendBackend, ChainedEvent, HeadCache, InsertError};
use crate::error::StoreError;
use crate::event::{
    AppendOutcome, Checkpoint, ExpectedVersion, Metadata, NewEvent, RecordedEvent, Snapshot,
    StreamHead, StreamId,
};
use crate::group::{Answer, GroupCommit, GroupWrite};
use crate::store::{EventStore, Limits, hash_from, sql_limit, to_i64, to_u64};
use crate::tail::{Seen, Tail};
use crate::transaction::StoreTransaction;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

macro_rules! columns {
    () => {
        "position, stream_id, stream_version, event_id, event_type, schema_version, payload, \
         correlation_id, causation_id, traceparent, tracestate, actor, region, recorded_at, hash"
    };
}

/// Page cache of each reading connection, in KiB (SQLite's default is 2,000).
const READER_CACHE_KIB: u32 = 256;

/// An event store in a SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    writer: SqlitePool,
    reader: SqlitePool,
    limits: Limits,
    appended: Arc<crate::follow::Appends>,
    heads: Arc<HeadCache>,
    group: Arc<GroupCommit>,
    tail: Arc<Tail>,
    keyring: Option<crate::personal::Sealing>,
}

impl SqliteEventStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:path/to/file.db`)
    /// and applies pending migrations. Durable by default: WAL with
    /// `synchronous=FULL`, so an acknowledged append survives a power cut.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        migrator()
            .run(&writer)
            .await
            .map_err(StoreError::Migration)?;
        // A reader's page cache is dropped whenever another connection wrote since
        // its last read, so on a live store it holds little for long; the OS keeps
        // the file's pages either way. Small, and readers not needed for a minute
        // are closed: eight per database, several databases per process.
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .idle_timeout(Duration::from_secs(60))
            .connect_with(
                options
                    .read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        Ok(Self {
            writer,
            reader,
            limits: Limits::default(),
            appended: Arc::default(),
            heads: Arc::default(),
            // One writer connection: one group at a time.
            group: Arc::new(GroupCommit::new(1)),
            tail: Arc::default(),
            keyring: None,
        })
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Seals personal data on append, for subjects named `<scope>/<id>`, and
    /// opens it on read with `keyring`.
    pub fn with_keyring(mut self, keyring: Arc<crate::Keyring>, scope: &str) -> Self {
        self.keyring = Some(crate::personal::Sealing::new(keyring, scope));
        // Reads kept are opened with the keyring they were read with.
        self.tail = Arc::default();
        self
    }

    pub fn sealing(&self) -> Option<&crate::personal::Sealing> {
        self.keyring.as_ref()
    }

    /// The single-connection writer pool, for projections and inboxes that write to
    /// the same file.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The read-only pool.
    pub fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

fn migrator() -> Migrator {
    crate::store::shared_migrator(&MIGRATOR)
}

impl AppendBackend for &SqliteEventStore {
    fn head_cache(&self) -> Option<&HeadCache> {
        Some(&self.heads)
    }

    async fn head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        select_head(&self.reader, stream).await
    }

    async fn insert(
        &mut self,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> Result<Vec<u64>, InsertError> {
        self.group.insert(&self.writer, stream, rows).await
    }

    async fn events_by_ids(&mut self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
        select_by_ids(&self.writer, ids).await
    }
}

/// Appends inside a caller's transaction. A refused statement rolls back only
/// itself in SQLite, so no savepoint is needed.
/// A stream's events from `from_version` on, through any executor (the read
/// pool, or a transaction that must see its own appends).
pub(crate) async fn select_stream<'e, E: SqliteExecutor<'e>>(
    executor: E,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE stream_id = ?1 AND stream_version >= ?2 \
         ORDER BY stream_version LIMIT ?3"
    ))
    .bind(stream.as_str().to_owned())
    .bind(to_i64(from_version, "from_version")?)
    .bind(sql_limit(limit))
    .fetch_all(executor)
    .await?;
    rows.iter().map(decode).collect()
}

pub(crate) struct SqliteTransactionBackend<'c>(pub &'c mut SqliteConnection);

impl AppendBackend for SqliteTransactionBackend<'_> {
    fn head_cache(&self) -> Option<&HeadCache> {
        None
    }

    async fn head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        select_head(&mut *self.0, stream).await
    }

    async fn insert(
        &mut self,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> Result<Vec<u64>, InsertError> {
        insert_rows(&mut *self.0, stream, rows).await
    }

    async fn events_by_ids(&mut self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
        select_by_ids(&mut *self.0, ids).await
    }
}

async fn select_head<'e>(
    db: impl SqliteExecutor<'e>,
    stream: &StreamId,
) -> Result<Option<StreamHead>, StoreError> {
    let row = sqlx::query(
        "SELECT stream_version, hash FROM events WHERE stream_id = ?1 \
         ORDER BY stream_version DESC LIMIT 1",
    )
    .bind(stream.as_str().to_owned())
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        Ok(StreamHead {
            version: to_u64(row.try_get("stream_version")?, "stream_version")?,
            hash: hash_from(row.try_get("hash")?)?,
        })
    })
    .transpose()
}

async fn insert_rows<'e>(
    db: impl SqliteExecutor<'e>,
    stream: &StreamId,
    rows: &[ChainedEvent],
) -> Result<Vec<u64>, InsertError> {
    let mut versions = Vec::with_capacity(rows.len());
    for row in rows {
        versions.push(to_i64(row.stream_version, "stream_version").map_err(InsertError::Store)?);
    }
    let mut query = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
         schema_version, payload, correlation_id, causation_id, traceparent, tracestate, \
         actor, region, recorded_at, hash) ",
    );
    query.push_values(rows.iter().zip(versions), |mut b, (row, version)| {
        let e = &row.event;
        let m = &e.metadata;
        b.push_bind(stream.as_str().to_owned())
            .push_bind(version)
            .push_bind(e.event_id)
            .push_bind(e.event_type.clone())
            .push_bind(i64::from(e.schema_version))
            .push_bind(e.payload.clone())
            .push_bind(m.correlation_id)
            .push_bind(m.causation_id)
            .push_bind(m.traceparent.clone())
            .push_bind(m.tracestate.clone())
            .push_bind(m.actor.clone())
            .push_bind(m.region.clone())
            .push_bind(m.recorded_at.timestamp_micros())
            .push_bind(row.hash.to_vec());
    });
    query.push(" RETURNING position, stream_version");
    let result = query.build().fetch_all(db).await;
    let returned = match result {
        Ok(returned) => returned,
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            let message = db.message();
            return Err(if message.contains("events.event_id") {
                InsertError::DuplicateEventId
            } else if message.contains("events.stream_id") {
                InsertError::VersionTaken
            } else {
                InsertError::Store(StoreError::Database(sqlx::Error::Database(db)))
            });
        }
        Err(error) => return Err(InsertError::Store(error.into())),
    };
    append::positions_in_version_order(&returned)
}

/// A group is one transaction of a statement per append. A refused insert rolls
/// back only its own statement, so the others go on; any other failure may have
/// ended the transaction, so the group is rolled back and written alone.
impl GroupWrite for SqlitePool {
    async fn write_together(
        &self,
        appends: &[(&StreamId, &[ChainedEvent])],
    ) -> Option<Vec<Answer>> {
        let mut tx = self.begin_with("BEGIN IMMEDIATE").await.ok()?;
        let mut answers = Vec::with_capacity(appends.len());
        for (stream, rows) in appends {
            let answer = insert_rows(&mut *tx, stream, rows).await;
            if let Err(InsertError::Store(_)) = answer {
                let _ = tx.rollback().await;
                return None;
            }
            answers.push(answer);
        }
        match tx.commit().await {
            Ok(()) => Some(answers),
            // Whether a failed commit wrote anything is not known: say so to those
            // whose rows it held, as a lone append's failed commit would.
            Err(error) => Some(
                answers
                    .into_iter()
                    .map(|answer| {
                        answer.and_then(|_| {
                            Err(InsertError::Store(StoreError::Database(sqlx::Error::Io(
                                std::io::Error::other(format!("commit failed: {error}")),
                            ))))
                        })
                    })
                    .collect(),
            ),
        }
    }

    async fn write_alone(&self, stream: &StreamId, rows: &[ChainedEvent]) -> Answer {
        insert_rows(self, stream, rows).await
    }
}

pub(crate) async fn select_by_ids<'e>(
    db: impl SqliteExecutor<'e>,
    ids: &[Uuid],
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut query = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE event_id IN "
    ));
    query.push_tuples(ids, |mut b, id| {
        b.push_bind(*id);
    });
    let rows = query.build().fetch_all(db).await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn upsert_checkpoint<'e>(
    db: impl SqliteExecutor<'e>,
    name: &str,
    checkpoint: Checkpoint,
) -> Result<(), StoreError> {
    #[allow(clippy::disallowed_methods)] // bookkeeping time, not a domain decision
    let now = Utc::now().timestamp_micros();
    sqlx::query(
        "INSERT INTO checkpoints (name, transaction_id, position, updated_at) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id, \
           position = excluded.position, updated_at = excluded.updated_at",
    )
    .bind(name.to_owned())
    .bind(to_i64(checkpoint.transaction, "transaction")?)
    .bind(to_i64(checkpoint.position, "position")?)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// Moves every checkpoint of `names` that stands at `from` to `to` (one not
/// stored yet stands at [`Checkpoint::START`]); how many it moved.
pub(crate) async fn move_checkpoints(
    db: &mut SqliteConnection,
    names: &[&str],
    from: Checkpoint,
    to: Checkpoint,
) -> Result<u64, StoreError> {
    #[allow(clippy::disallowed_methods)] // bookkeeping time, not a domain decision
    let now = Utc::now().timestamp_micros();
    // One statement for them all, the names as a JSON array: it runs while the
    // transaction holds the database's one writer.
    let names = serde_json::Value::from(names.to_vec()).to_string();
    let moved = sqlx::query(
        "INSERT INTO checkpoints (name, transaction_id, position, updated_at) \
         SELECT wanted.value, ?2, ?3, ?4 FROM json_each(?1) AS wanted \
          WHERE (?5, ?6) = (0, 0) \
             OR EXISTS (SELECT 1 FROM checkpoints c WHERE c.name = wanted.value) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id, \
           position = excluded.position, updated_at = excluded.updated_at \
         WHERE (checkpoints.transaction_id, checkpoints.position) = (?5, ?6)",
    )
    .bind(names)
    .bind(to_i64(to.transaction, "transaction")?)
    .bind(to_i64(to.position, "position")?)
    .bind(now)
    .bind(to_i64(from.transaction, "transaction")?)
    .bind(to_i64(from.position, "position")?)
    .execute(&mut *db)
    .await?
    .rows_affected();
    Ok(moved)
}

pub(crate) async fn select_checkpoint<'e>(
    db: impl SqliteExecutor<'e>,
    name: &str,
) -> Result<Checkpoint, StoreError> {
    let row = sqlx::query("SELECT transaction_id, position FROM checkpoints WHERE name = ?1")
        .bind(name.to_owned())
        .fetch_optional(db)
        .await?;
    row.map_or(Ok(Checkpoint::START), |row| {
        Ok(Checkpoint {
            transaction: to_u64(row.try_get("transaction_id")?, "transaction_id")?,
            position: to_u64(row.try_get("position")?, "position")?,
        })
    })
}

impl EventStore for SqliteEventStore {
    async fn begin(&self) -> Result<StoreTransaction, StoreError> {
        // Take the write lock up front: a deferred transaction that reads first and
        // writes later can fail with SQLITE_BUSY against another process.
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(StoreTransaction::sqlite(
            tx,
            self.limits,
            Arc::clone(&self.appended),
            self.keyring.clone(),
        ))
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Checkpoint, StoreError> {
        select_checkpoint(&self.reader, name).await
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), StoreError> {
        upsert_checkpoint(&self.writer, name, checkpoint).await
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        crate::personal::seal_all(self.keyring.as_ref(), &mut events).await?;
        let outcome = append::append(&mut &*self, &self.limits, stream, expected, events).await?;
        append::record_appended(stream, &outcome);
        self.appended.committed();
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = select_stream(&self.reader, stream, from_version, limit).await?;
        self.heads.saw(stream, &events, limit);
        crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
        Ok(events)
    }

    async fn stream_head(&self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        select_head(&self.reader, stream).await
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))
        .bind(to_i64(after_position, "after_position")?)
        .bind(sql_limit(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut events = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
        Ok(events)
    }

    async fn read_log(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // One writer at a time: the committed prefix by position is final, and
        // followers woken by one append share one read of its end.
        let after = Checkpoint {
            transaction: 0,
            position: after.position,
        };
        self.tail
            .read(&self.appended, after, limit, || async {
                let seen = Seen::now(&self.appended);
                Ok((seen, self.read_all(after.position, limit).await?))
            })
            .await
    }

    async fn log_end(&self) -> Result<Checkpoint, StoreError> {
        Ok(Checkpoint {
            transaction: 0,
            position: self.last_position().await?,
        })
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.reader)
            .await?;
        to_u64(last, "position")
    }

    async fn has_read_up_to(
        &self,
        checkpoint: Checkpoint,
        position: u64,
    ) -> Result<bool, StoreError> {
        // One writer at a time: the log's order is the positions' order.
        Ok(checkpoint.position >= position)
    }

    async fn event_by_id(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let mut events = select_by_ids(&self.writer, &[event_id]).await?;
        crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
        Ok(events.pop())
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (stream_id, stream_version, schema_version, payload, taken_at, \
               chain_hash, seal) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version, \
               schema_version = excluded.schema_version, payload = excluded.payload, \
               taken_at = excluded.taken_at, chain_hash = excluded.chain_hash, \
               seal = excluded.seal \
             WHERE snapshots.stream_version <= excluded.stream_version",
        )
        .bind(snapshot.stream_id.as_str().to_owned())
        .bind(to_i64(snapshot.stream_version, "stream_version")?)
        .bind(i64::from(snapshot.schema_version))
        .bind(snapshot.payload.clone())
        .bind(snapshot.taken_at.timestamp_micros())
        .bind(snapshot.chain_hash.clone())
        .bind(snapshot.seal.clone())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT stream_version, schema_version, payload, taken_at, chain_hash, seal \
             FROM snapshots WHERE stream_id = ?1",
        )
        .bind(stream.as_str().to_owned())
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(Snapshot {
                stream_id: stream.clone(),
                stream_version: to_u64(row.try_get("stream_version")?, "stream_version")?,
                schema_version: u32::try_from(row.try_get::<i64, _>("schema_version")?)
                    .map_err(|_| StoreError::CorruptRow("schema_version out of range".into()))?,
                payload: row.try_get("payload")?,
                taken_at: micros_to_time(row.try_get("taken_at")?)?,
                chain_hash: row.try_get("chain_hash")?,
                seal: row.try_get("seal")?,
            })
        })
        .transpose()
    }

    fn appended(&self) -> &Notify {
        self.appended.notify()
    }
}

fn micros_to_time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::CorruptRow(format!("timestamp {micros} out of range")))
}

fn decode(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let position = to_u64(row.try_get("position")?, "position")?;
    let stream_id: String = row.try_get("stream_id")?;
    Ok(RecordedEvent {
        personal: crate::Personal::None,
        position,
        checkpoint: Checkpoint {
            transaction: 0,
            position,
        },
        stream_id: StreamId::parse(stream_id).map_err(|e| StoreError::CorruptRow(e.to_string()))?,
        stream_version: to_u64(row.try_get("stream_version")?, "stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(row.try_get::<i64, _>("schema_version")?)
            .map_err(|_| StoreError::CorruptRow("schema_version out of range".into()))?,
        payload: row.try_get("payload")?,
        metadata: Metadata {
            correlation_id: row.try_get("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            traceparent: row.try_get("traceparent")?,
            tracestate: row.try_get("tracestate")?,
            actor: row.try_get("actor")?,
            region: row.try_get("region")?,
            recorded_at: micros_to_time(row.try_get("recorded_at")?)?,
        },
        hash: hash_from(row.try_get("hash")?)?,
    })
}
