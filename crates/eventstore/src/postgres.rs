//! The PostgreSQL backend.
//!
//! Appends are two statements and no explicit transaction (see [`crate::append`]);
//! those that arrive together commit together (see [`crate::group`]), in one
//! statement.
//! Followers read with a horizon: only events whose writing transaction is older
//! than every transaction of this database in flight when the read began,
//! ordered by (transaction id, position). Nothing can commit below that line any more, so the
//! order is final and a checkpoint never skips a late commit. Transactions of other
//! databases on the same server never write this log, so they do not hold it back.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use sqlx::postgres::{PgConnection, PgExecutor, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row as _, migrate::Migrator};
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

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

macro_rules! columns {
    () => {
        "position, transaction_id::text AS transaction_text, stream_id, stream_version, \
         event_id, event_type, schema_version, payload, correlation_id, causation_id, \
         traceparent, tracestate, actor, region, recorded_at, hash"
    };
}

/// One event's insert; [`bind_row`] gives its parameters.
macro_rules! insert_row {
    () => {
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
         schema_version, payload, correlation_id, causation_id, traceparent, tracestate, \
         actor, region, recorded_at, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    };
}

/// A pooled connection idle at least this long is checked before it is handed
/// out: the server may have closed it meanwhile.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Options for a pool of at most `max_connections`. Only a connection that
/// sat idle is pinged before use: sqlx pings every one by default, a round
/// trip added to each query and transaction of a busy service.
pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
}

/// Groups written at once: two make groups wait for one another, eight crowd
/// out the reads of commands that load their stream (measured, BENCHMARKS.md).
const GROUP_WRITERS: usize = 4;

/// An event store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
    limits: Limits,
    appended: Arc<crate::follow::Appends>,
    heads: Arc<HeadCache>,
    group: Arc<GroupCommit>,
    last_horizon: Arc<tokio::sync::Mutex<Option<Horizon>>>,
    tail: Arc<Tail>,
    keyring: Option<crate::personal::Sealing>,
}

impl PgEventStore {
    /// Connects to `url` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = pool_options(32).connect(url).await?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool, applying pending migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        migrator().run(&pool).await.map_err(StoreError::Migration)?;
        Ok(Self::migrated(pool))
    }

    /// Least privilege: migrates as `owner_url`'s role (the store's tables and
    /// the service's `migrations`), grants the role `url` logs in as only what
    /// a service needs, and connects as that role. The service can then append
    /// to `events` and read it, but not change, delete or truncate a row, nor
    /// drop or disable the triggers that guard it: that is the owner's alone.
    pub async fn connect_as_service(
        url: &str,
        owner_url: &str,
        migrations: &Migrator,
    ) -> Result<Self, StoreError> {
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let role = options.get_username().to_owned();
        let owner = pool_options(1).connect(owner_url).await?;
        let prepared = async {
            migrator()
                .run(&owner)
                .await
                .map_err(StoreError::Migration)?;
            crate::store::shared_migrator(migrations)
                .run(&owner)
                .await
                .map_err(StoreError::Migration)?;
            grant_service_role(&owner, &role).await
        }
        .await;
        owner.close().await;
        prepared?;
        let pool = pool_options(32).connect(url).await?;
        Ok(Self::migrated(pool))
    }

    fn migrated(pool: PgPool) -> Self {
        Self {
            pool,
            limits: Limits::default(),
            appended: Arc::default(),
            heads: Arc::default(),
            last_horizon: Arc::default(),
            tail: Arc::default(),
            group: Arc::new(GroupCommit::new(GROUP_WRITERS)),
            keyring: None,
        }
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

    /// The pool, for projections and inboxes that share the service's database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The oldest transaction of this database that may still commit: every
    /// older one has ended.
    ///
    /// The followers of a process (relay, live feed, read models) all ask after
    /// each append, and one answer serves them all: one asks the server at a
    /// time, and an answer is reused if the server was asked after every append
    /// committed through this store before the caller asked, and at most
    /// [`crate::tail::REUSE`] before it. So a read sees this process's appends as
    /// if it asked itself, and another process's a few milliseconds later at worst.
    async fn horizon(&self) -> Result<Horizon, StoreError> {
        let asked = Seen::now(&self.appended);
        let mut last = self.last_horizon.lock().await;
        if let Some(known) = *last
            && known.seen.serves(&asked)
        {
            return Ok(known);
        }
        let seen = Seen::now(&self.appended);
        let transaction = self.ask_horizon().await?;
        let horizon = Horizon { seen, transaction };
        *last = Some(horizon);
        Ok(horizon)
    }

    /// [`Self::horizon`] from the server. Its snapshot's `xmin` would also wait
    /// for other databases' transactions (another service's long write, a bulk
    /// job), which never write this log. Prepared transactions count too.
    async fn ask_horizon(&self) -> Result<u64, StoreError> {
        // One statement: the snapshot is taken as it starts, the backends are read
        // while it runs, so a transaction not yet holding an id then gets one at or
        // above the snapshot's `xmax`.
        let (next, running): (String, Vec<String>) = sqlx::query_as(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text, ARRAY( \
               SELECT backend_xid::text FROM pg_stat_activity \
                WHERE datname = current_database() AND backend_xid IS NOT NULL \
               UNION ALL \
               SELECT transaction::text FROM pg_prepared_xacts \
                WHERE database = current_database())",
        )
        .fetch_one(&self.pool)
        .await?;
        let corrupt = |text: &str| StoreError::CorruptRow(format!("transaction id {text:?}"));
        let next: u64 = next.parse().map_err(|_| corrupt(&next))?;
        running.iter().try_fold(next, |oldest, xid| {
            let xid: u32 = xid.parse().map_err(|_| corrupt(xid))?;
            Ok(oldest.min(widen(xid, next)))
        })
    }
}

/// A horizon the server gave, and as of when.
#[derive(Debug, Clone, Copy)]
struct Horizon {
    seen: Seen,
    transaction: u64,
}

/// The 64-bit id of a running transaction known by its 32-bit `xid`, given the
/// snapshot's next id `next`: the one at most 2^31 below it. An id at or past
/// `next` was handed out after the snapshot and is `next` as far as the
/// horizon is concerned.
fn widen(xid: u32, next: u64) -> u64 {
    #[allow(clippy::cast_possible_truncation)] // the low 32 bits, on purpose
    let behind = (next as u32).wrapping_sub(xid);
    if behind == 0 || behind > 1 << 31 {
        next
    } else {
        next - u64::from(behind)
    }
}

/// What a service's role may do in its database: read, write and empty its read
/// models, inboxes and checkpoints (a rebuild truncates), but only append to and
/// read `events`, and never touch the migrations' own table. Idempotent: it runs
/// at every start.
async fn grant_service_role(owner: &PgPool, role: &str) -> Result<(), StoreError> {
    let role = format!("\"{}\"", role.replace('"', "\"\""));
    let grants = format!(
        "GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {role};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
         REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON events FROM {role};
         REVOKE ALL ON _sqlx_migrations FROM {role};"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(grants))
        .execute(owner)
        .await?;
    Ok(())
}

/// The event store's migrations. Services add their own with distinct versions to
/// the same database, so migrations applied by others are not an error.
fn migrator() -> Migrator {
    crate::store::shared_migrator(&MIGRATOR)
}

impl AppendBackend for &PgEventStore {
    fn head_cache(&self) -> Option<&HeadCache> {
        Some(&self.heads)
    }

    async fn head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        select_head(&self.pool, stream).await
    }

    async fn insert(
        &mut self,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> Result<Vec<u64>, InsertError> {
        self.group.insert(&self.pool, stream, rows).await
    }

    async fn events_by_ids(&mut self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
        select_by_ids(&self.pool, ids).await
    }
}

/// A stream's events from `from_version` on, through any executor (the pool,
/// or a transaction that must see its own appends).
pub(crate) async fn select_stream<'e, E: PgExecutor<'e>>(
    executor: E,
    stream: &StreamId,
    from_version: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE stream_id = $1 AND stream_version >= $2 \
         ORDER BY stream_version LIMIT $3"
    ))
    .bind(stream.as_str())
    .bind(to_i64(from_version, "from_version")?)
    .bind(sql_limit(limit))
    .fetch_all(executor)
    .await?;
    rows.iter().map(decode).collect()
}

/// Appends inside a caller's transaction. A refused insert would abort the whole
/// transaction in PostgreSQL, so an append's first event is inserted unless its
/// place or id is taken, and the rest only if it was inserted: the transaction
/// stays usable when another writer got there first. What else fails (a later
/// event's id reused) aborts it, and `aborted` says so.
pub(crate) struct PgTransactionBackend<'c> {
    pub connection: &'c mut PgConnection,
    pub aborted: bool,
}

impl AppendBackend for PgTransactionBackend<'_> {
    fn head_cache(&self) -> Option<&HeadCache> {
        None
    }

    async fn head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        select_head(&mut *self.connection, stream).await
    }

    async fn insert(
        &mut self,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> Result<Vec<u64>, InsertError> {
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let inserted = if let [row] = rows {
            bind_row(
                sqlx::query_scalar(concat!(
                    insert_row!(),
                    " ON CONFLICT DO NOTHING RETURNING position"
                )),
                stream,
                row,
            )?
            .fetch_optional(&mut *self.connection)
            .await
            .map(|position: Option<i64>| position.map(|p| to_u64(p, "position").map(|p| vec![p])))
        } else {
            let appends = [(stream, rows)];
            match bind_columns(sqlx::query(INSERT_UNLESS_FIRST_TAKEN), &appends)?
                .fetch_all(&mut *self.connection)
                .await
            {
                Ok(returned) if returned.is_empty() => Ok(None),
                Ok(returned) => Ok(Some(
                    positions_of(&appends, &returned)
                        .map(|mut positions| positions.pop().unwrap_or_default()),
                )),
                Err(error) => Err(error),
            }
        };
        match inserted {
            Ok(Some(positions)) => positions.map_err(InsertError::Store),
            Ok(None) => Err(taken_key(&mut *self.connection, first).await),
            Err(error) => {
                self.aborted = true;
                Err(InsertError::Store(error.into()))
            }
        }
    }

    async fn events_by_ids(&mut self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError> {
        select_by_ids(&mut *self.connection, ids).await
    }
}

/// Which key of `row`, an event the insert did nothing with, was taken.
async fn taken_key(db: &mut PgConnection, row: &ChainedEvent) -> InsertError {
    let id_taken = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)")
        .bind(row.event.event_id)
        .fetch_one(db)
        .await;
    match id_taken {
        Ok(true) => InsertError::DuplicateEventId,
        Ok(false) => InsertError::VersionTaken,
        Err(error) => InsertError::Store(error.into()),
    }
}

async fn select_head<'e>(
    db: impl PgExecutor<'e>,
    stream: &StreamId,
) -> Result<Option<StreamHead>, StoreError> {
    let row = sqlx::query(
        "SELECT stream_version, hash FROM events WHERE stream_id = $1 \
         ORDER BY stream_version DESC LIMIT 1",
    )
    .bind(stream.as_str())
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
    db: impl PgExecutor<'e>,
    stream: &StreamId,
    rows: &[ChainedEvent],
) -> Result<Vec<u64>, InsertError> {
    let mut positions = insert_appends(db, &[(stream, rows)]).await?;
    Ok(positions.pop().unwrap_or_default())
}

/// Inserts the rows of every append in `appends` in one statement, so all or none
/// are written; each append's positions, in its rows' order.
async fn insert_appends<'e>(
    db: impl PgExecutor<'e>,
    appends: &[(&StreamId, &[ChainedEvent])],
) -> Result<Vec<Vec<u64>>, InsertError> {
    if let [(stream, [row])] = appends {
        return Ok(vec![insert_row(db, stream, row).await?]);
    }
    let returned = bind_columns(sqlx::query(INSERT_ALL), appends)?
        .fetch_all(db)
        .await
        .map_err(insert_error)?;
    positions_of(appends, &returned).map_err(InsertError::Store)
}

/// The events table's columns as arrays, one element per row: `$1` to `$14`.
macro_rules! unnest_rows {
    () => {
        "UNNEST($1::text[], $2::int8[], $3::uuid[], $4::text[], $5::int4[], \
         $6::bytea[], $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[], \
         $12::text[], $13::timestamptz[], $14::bytea[])"
    };
}

macro_rules! event_columns {
    () => {
        "stream_id, stream_version, event_id, event_type, schema_version, payload, \
         correlation_id, causation_id, traceparent, tracestate, actor, region, \
         recorded_at, hash"
    };
}

const INSERT_ALL: &str = concat!(
    "INSERT INTO events (",
    event_columns!(),
    ") SELECT * FROM ",
    unnest_rows!(),
    " RETURNING position, stream_id, stream_version"
);

/// One append's rows: the first unless its place or id is taken, the rest only
/// if the first went in (an empty answer: nothing was written). The first is
/// inserted before the rest, which come in their order.
const INSERT_UNLESS_FIRST_TAKEN: &str = concat!(
    "WITH new AS (SELECT * FROM ",
    unnest_rows!(),
    " WITH ORDINALITY AS n (",
    event_columns!(),
    ", place)), \
     first AS (INSERT INTO events (",
    event_columns!(),
    ") SELECT ",
    event_columns!(),
    " FROM new WHERE place = 1 \
     ON CONFLICT DO NOTHING RETURNING position, stream_id, stream_version), \
     rest AS (INSERT INTO events (",
    event_columns!(),
    ") SELECT ",
    event_columns!(),
    " FROM new WHERE place > 1 AND EXISTS (SELECT FROM first) ORDER BY place \
     RETURNING position, stream_id, stream_version) \
     SELECT * FROM first UNION ALL SELECT * FROM rest"
);

/// Binds the rows of `appends` to a statement over [`unnest_rows`].
fn bind_columns<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    appends: &[(&'q StreamId, &'q [ChainedEvent])],
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>, InsertError> {
    let n = appends.iter().map(|(_, rows)| rows.len()).sum();
    let mut streams = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schema_versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut correlations = Vec::with_capacity(n);
    let mut causations = Vec::with_capacity(n);
    let mut traceparents = Vec::with_capacity(n);
    let mut tracestates = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut regions = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for (stream, rows) in appends {
        for row in *rows {
            let e = &row.event;
            let m = &e.metadata;
            streams.push(stream.as_str());
            versions
                .push(to_i64(row.stream_version, "stream_version").map_err(InsertError::Store)?);
            event_ids.push(e.event_id);
            types.push(e.event_type.as_str());
            schema_versions.push(i32::try_from(e.schema_version).unwrap_or(i32::MAX));
            payloads.push(e.payload.as_slice());
            correlations.push(m.correlation_id);
            causations.push(m.causation_id);
            traceparents.push(m.traceparent.as_deref());
            tracestates.push(m.tracestate.as_deref());
            actors.push(m.actor.as_str());
            regions.push(m.region.as_str());
            recorded.push(m.recorded_at);
            hashes.push(row.hash.as_slice());
        }
    }
    Ok(query
        .bind(streams)
        .bind(versions)
        .bind(event_ids)
        .bind(types)
        .bind(schema_versions)
        .bind(payloads)
        .bind(correlations)
        .bind(causations)
        .bind(traceparents)
        .bind(tracestates)
        .bind(actors)
        .bind(regions)
        .bind(recorded)
        .bind(hashes))
}

/// Each append's positions, in its rows' order, from the rows an insert returned
/// (`position, stream_id, stream_version`).
fn positions_of(
    appends: &[(&StreamId, &[ChainedEvent])],
    returned: &[PgRow],
) -> Result<Vec<Vec<u64>>, StoreError> {
    // `RETURNING` does not promise the insert order: find each row by its place.
    let mut positions = std::collections::HashMap::with_capacity(returned.len());
    for row in returned {
        let place = (row.try_get("stream_id")?, row.try_get("stream_version")?);
        positions.insert(place, to_u64(row.try_get("position")?, "position")?);
    }
    appends
        .iter()
        .map(|(stream, rows)| {
            rows.iter()
                .map(|row| {
                    let version = to_i64(row.stream_version, "stream_version")?;
                    positions
                        .get(&(stream.as_str(), version))
                        .copied()
                        .ok_or_else(|| StoreError::CorruptRow("insert returned no row".into()))
                })
                .collect()
        })
        .collect()
}

/// A group is one statement, written whole or not at all: a refused group wrote
/// nothing, and which append it was is found by writing them alone.
impl GroupWrite for PgPool {
    async fn write_together(
        &self,
        appends: &[(&StreamId, &[ChainedEvent])],
    ) -> Option<Vec<Answer>> {
        let positions = insert_appends(self, appends).await.ok()?;
        Some(positions.into_iter().map(Ok).collect())
    }

    async fn write_alone(&self, stream: &StreamId, rows: &[ChainedEvent]) -> Answer {
        insert_rows(self, stream, rows).await
    }
}

/// The common case, one event, as a plain single-row insert: cheaper to plan and
/// run than unnesting arrays of one.
async fn insert_row<'e>(
    db: impl PgExecutor<'e>,
    stream: &StreamId,
    row: &ChainedEvent,
) -> Result<Vec<u64>, InsertError> {
    let position: i64 = bind_row(
        sqlx::query_scalar(concat!(insert_row!(), " RETURNING position")),
        stream,
        row,
    )?
    .fetch_one(db)
    .await
    .map_err(insert_error)?;
    Ok(vec![
        to_u64(position, "position").map_err(InsertError::Store)?,
    ])
}

/// Binds `row` of `stream` to [`insert_row`]'s parameters.
fn bind_row<'q, O>(
    query: sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    stream: &'q StreamId,
    row: &'q ChainedEvent,
) -> Result<sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>, InsertError>
{
    let e = &row.event;
    let m = &e.metadata;
    Ok(query
        .bind(stream.as_str())
        .bind(to_i64(row.stream_version, "stream_version").map_err(InsertError::Store)?)
        .bind(e.event_id)
        .bind(e.event_type.as_str())
        .bind(i32::try_from(e.schema_version).unwrap_or(i32::MAX))
        .bind(e.payload.as_slice())
        .bind(m.correlation_id)
        .bind(m.causation_id)
        .bind(m.traceparent.as_deref())
        .bind(m.tracestate.as_deref())
        .bind(m.actor.as_str())
        .bind(m.region.as_str())
        .bind(m.recorded_at)
        .bind(row.hash.as_slice()))
}

/// A refused insert, by the key it ran into.
fn insert_error(error: sqlx::Error) -> InsertError {
    if let sqlx::Error::Database(db) = &error
        && db.is_unique_violation()
    {
        match db.constraint() {
            Some("events_event_id_key") => return InsertError::DuplicateEventId,
            Some("events_stream_version_key") => return InsertError::VersionTaken,
            _ => {}
        }
    }
    InsertError::Store(error.into())
}

pub(crate) async fn select_by_ids<'e>(
    db: impl PgExecutor<'e>,
    ids: &[Uuid],
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM events WHERE event_id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    rows.iter().map(decode).collect()
}

pub(crate) async fn upsert_checkpoint<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
    checkpoint: Checkpoint,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO checkpoints (name, transaction_id, position) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
           position = EXCLUDED.position, updated_at = now()",
    )
    .bind(name)
    .bind(to_i64(checkpoint.transaction, "transaction")?)
    .bind(to_i64(checkpoint.position, "position")?)
    .execute(db)
    .await?;
    Ok(())
}

/// Moves every checkpoint of `names` that stands at `from` to `to` (one not
/// stored yet stands at [`Checkpoint::START`]); how many it moved.
pub(crate) async fn move_checkpoints(
    db: &mut PgConnection,
    names: &[&str],
    from: Checkpoint,
    to: Checkpoint,
) -> Result<u64, StoreError> {
    let moved = sqlx::query(
        "INSERT INTO checkpoints (name, transaction_id, position) \
         SELECT wanted.name, $2, $3 FROM unnest($1::text[]) AS wanted(name) \
          WHERE ($4, $5) = (0::int8, 0::int8) \
             OR EXISTS (SELECT 1 FROM checkpoints c WHERE c.name = wanted.name) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
           position = EXCLUDED.position, updated_at = now() \
         WHERE (checkpoints.transaction_id, checkpoints.position) = ($4, $5)",
    )
    .bind(names)
    .bind(to_i64(to.transaction, "transaction")?)
    .bind(to_i64(to.position, "position")?)
    .bind(to_i64(from.transaction, "transaction")?)
    .bind(to_i64(from.position, "position")?)
    .execute(db)
    .await?;
    Ok(moved.rows_affected())
}

pub(crate) async fn select_checkpoint<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
) -> Result<Checkpoint, StoreError> {
    let row = sqlx::query("SELECT transaction_id, position FROM checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(db)
        .await?;
    row.map_or(Ok(Checkpoint::START), |row| {
        Ok(Checkpoint {
            transaction: to_u64(row.try_get("transaction_id")?, "transaction_id")?,
            position: to_u64(row.try_get("position")?, "position")?,
        })
    })
}

impl EventStore for PgEventStore {
    async fn begin(&self) -> Result<StoreTransaction, StoreError> {
        Ok(StoreTransaction::postgres(
            self.pool.begin().await?,
            false,
            self.limits,
            Arc::clone(&self.appended),
            self.keyring.clone(),
        ))
    }

    async fn begin_unflushed(&self) -> Result<StoreTransaction, StoreError> {
        // One round trip for both.
        let tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit TO off")
            .await?;
        Ok(StoreTransaction::postgres(
            tx,
            true,
            self.limits,
            Arc::clone(&self.appended),
            self.keyring.clone(),
        ))
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Checkpoint, StoreError> {
        select_checkpoint(&self.pool, name).await
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), StoreError> {
        upsert_checkpoint(&self.pool, name, checkpoint).await
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
        let mut events = select_stream(&self.pool, stream, from_version, limit).await?;
        self.heads.saw(stream, &events, limit);
        crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
        Ok(events)
    }

    async fn stream_head(&self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        select_head(&self.pool, stream).await
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(to_i64(after_position, "after_position")?)
        .bind(sql_limit(limit))
        .fetch_all(&self.pool)
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
        // Followers woken by one append read the same end of the log: the first
        // reads it, and the others are answered from that read while it could
        // serve them (see `horizon`), which is the answer they would get.
        self.tail
            .read(&self.appended, after, limit, || async {
                // The horizon comes from an earlier statement than the scan: every
                // transaction below it had finished when it was taken, so the later
                // scan sees all of their rows, whichever snapshot each part of a
                // single statement would have used.
                let horizon = self.horizon().await?;
                let mut rows = sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM events \
                     WHERE (transaction_id, position) > ($1::text::xid8, $2) \
                       AND transaction_id < $4::text::xid8 \
                     ORDER BY transaction_id, position LIMIT $3"
                ))
                .bind(after.transaction.to_string())
                .bind(to_i64(after.position, "position")?)
                .bind(sql_limit(limit))
                .bind(horizon.transaction.to_string())
                .fetch(&self.pool);
                // Rows decoded as they come, while the server sends the rest: not
                // after the whole page is in, with the server idle meanwhile.
                let mut events = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    events.push(decode(&row)?);
                }
                // Its connection back to the pool before any key is read.
                drop(rows);
                crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
                Ok((horizon.seen, events))
            })
            .await
    }

    async fn log_end(&self) -> Result<Checkpoint, StoreError> {
        // Transactions below the horizon are over; any later one may still commit.
        let horizon = self.horizon().await?.transaction;
        Ok(Checkpoint {
            transaction: horizon.saturating_sub(1),
            position: i64::MAX.unsigned_abs(),
        })
    }

    async fn has_read_up_to(
        &self,
        checkpoint: Checkpoint,
        position: u64,
    ) -> Result<bool, StoreError> {
        let unread: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE position <= $3 \
               AND (transaction_id, position) > ($1::text::xid8, $2))",
        )
        .bind(checkpoint.transaction.to_string())
        .bind(to_i64(checkpoint.position, "position")?)
        .bind(to_i64(position, "position")?)
        .fetch_one(&self.pool)
        .await?;
        Ok(!unread)
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        to_u64(last, "position")
    }

    async fn event_by_id(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        let mut events = select_by_ids(&self.pool, &[event_id]).await?;
        crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
        Ok(events.pop())
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (stream_id, stream_version, schema_version, payload, taken_at, \
               chain_hash, seal) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (stream_id) DO UPDATE SET stream_version = EXCLUDED.stream_version, \
               schema_version = EXCLUDED.schema_version, payload = EXCLUDED.payload, \
               taken_at = EXCLUDED.taken_at, chain_hash = EXCLUDED.chain_hash, \
               seal = EXCLUDED.seal \
             WHERE snapshots.stream_version <= EXCLUDED.stream_version",
        )
        .bind(snapshot.stream_id.as_str())
        .bind(to_i64(snapshot.stream_version, "stream_version")?)
        .bind(i32::try_from(snapshot.schema_version).unwrap_or(i32::MAX))
        .bind(&snapshot.payload)
        .bind(snapshot.taken_at)
        .bind(&snapshot.chain_hash)
        .bind(&snapshot.seal)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT stream_version, schema_version, payload, taken_at, chain_hash, seal \
             FROM snapshots WHERE stream_id = $1",
        )
        .bind(stream.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Snapshot {
                stream_id: stream.clone(),
                stream_version: to_u64(row.try_get("stream_version")?, "stream_version")?,
                schema_version: u32::try_from(row.try_get::<i32, _>("schema_version")?)
                    .map_err(|_| StoreError::CorruptRow("negative schema_version".into()))?,
                payload: row.try_get("payload")?,
                taken_at: row.try_get("taken_at")?,
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

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let transaction: String = row.try_get("transaction_text")?;
    let transaction = transaction
        .parse()
        .map_err(|_| StoreError::CorruptRow(format!("transaction id {transaction:?}")))?;
    let position = to_u64(row.try_get("position")?, "position")?;
    let stream_id: String = row.try_get("stream_id")?;
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
    Ok(RecordedEvent {
        personal: crate::Personal::None,
        position,
        checkpoint: Checkpoint {
            transaction,
            position,
        },
        stream_id: StreamId::parse(stream_id).map_err(|e| StoreError::CorruptRow(e.to_string()))?,
        stream_version: to_u64(row.try_get("stream_version")?, "stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(row.try_get::<i32, _>("schema_version")?)
            .map_err(|_| StoreError::CorruptRow("negative schema_version".into()))?,
        payload: row.try_get("payload")?,
        metadata: Metadata {
            correlation_id: row.try_get("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            traceparent: row.try_get("traceparent")?,
            tracestate: row.try_get("tracestate")?,
            actor: row.try_get("actor")?,
            region: row.try_get("region")?,
            recorded_at,
        },
        hash: hash_from(row.try_get("hash")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::widen;

    #[test]
    fn a_running_transaction_id_is_widened_below_the_next_id_across_epochs() {
        let epoch = 7u64 << 32;
        assert_eq!(widen(100, epoch + 150), epoch + 100);
        assert_eq!(
            widen(u32::MAX - 9, epoch + 5),
            epoch - 10,
            "the previous epoch"
        );
        assert_eq!(
            widen(150, epoch + 150),
            epoch + 150,
            "handed out at the snapshot"
        );
        assert_eq!(widen(160, epoch + 150), epoch + 150, "handed out after it");
    }
}
