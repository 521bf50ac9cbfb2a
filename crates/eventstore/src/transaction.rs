//! A unit of work in a service's own database: events appended, a checkpoint moved
//! and read-model or inbox rows written, all committed together or not at all.
//!
//! Consumers use it so that a handler's effects and the record that an event was
//! handled cannot be separated by a crash; projections use it to move their
//! checkpoint with the rows they write.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use crate::append;
use crate::error::{InputError, StoreError};
use crate::event::{AppendOutcome, Checkpoint, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use crate::postgres::{self, PgTransactionBackend};
use crate::sqlite::{self, SqliteTransactionBackend};
use crate::store::Limits;

/// An open transaction on an event store's database. Dropping it rolls back.
pub struct StoreTransaction {
    inner: Inner,
    /// Its commit need not wait for the disk, unless it appended events.
    unflushed: bool,
    limits: Limits,
    appended: Arc<crate::follow::Appends>,
    keyring: Option<crate::personal::Sealing>,
    wrote_events: bool,
    /// Counted once committed.
    appends: Vec<(StreamId, AppendOutcome)>,
    /// Run once committed, in order.
    after_commit: Vec<AfterCommit>,
    /// How many appends and after-commit steps came before the savepoint.
    savepoint: Option<(usize, usize)>,
    /// An append's statement failed and PostgreSQL aborted the transaction
    /// (since the savepoint, if one is set): it cannot commit.
    aborted: bool,
}

type AfterCommit = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for StoreTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTransaction")
            .field("inner", &self.inner)
            .field("unflushed", &self.unflushed)
            .field("appends", &self.appends)
            .field("after_commit", &self.after_commit.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Inner {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// The transaction's connection, for writes of a caller's own tables.
#[derive(Debug)]
pub enum TransactionConnection<'t> {
    Postgres(&'t mut PgConnection),
    Sqlite(&'t mut SqliteConnection),
}

impl StoreTransaction {
    /// `unflushed`: the transaction began with asynchronous commit
    /// ([`crate::EventStore::begin_unflushed`]).
    pub(crate) fn postgres(
        tx: sqlx::Transaction<'static, sqlx::Postgres>,
        unflushed: bool,
        limits: Limits,
        appended: Arc<crate::follow::Appends>,
        keyring: Option<crate::personal::Sealing>,
    ) -> Self {
        Self {
            inner: Inner::Postgres(tx),
            unflushed,
            limits,
            appended,
            keyring,
            wrote_events: false,
            appends: Vec::new(),
            after_commit: Vec::new(),
            savepoint: None,
            aborted: false,
        }
    }

    pub(crate) fn sqlite(
        tx: sqlx::Transaction<'static, sqlx::Sqlite>,
        limits: Limits,
        appended: Arc<crate::follow::Appends>,
        keyring: Option<crate::personal::Sealing>,
    ) -> Self {
        Self {
            inner: Inner::Sqlite(tx),
            unflushed: false,
            limits,
            appended,
            keyring,
            wrote_events: false,
            appends: Vec::new(),
            after_commit: Vec::new(),
            savepoint: None,
            aborted: false,
        }
    }

    /// Appends like [`crate::EventStore::append`], visible to others only on commit.
    pub async fn append(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        crate::personal::seal_all(self.keyring.as_ref(), &mut events).await?;
        let outcome = match &mut self.inner {
            Inner::Postgres(tx) => {
                let mut backend = PgTransactionBackend {
                    connection: tx,
                    aborted: false,
                };
                let appended =
                    append::append(&mut backend, &self.limits, stream, expected, events).await;
                self.aborted |= backend.aborted;
                appended?
            }
            Inner::Sqlite(tx) => {
                let mut backend = SqliteTransactionBackend(tx);
                append::append(&mut backend, &self.limits, stream, expected, events).await?
            }
        };
        self.wrote_events |= !outcome.duplicate;
        self.appends.push((stream.clone(), outcome));
        Ok(outcome)
    }

    /// A stream's events from `from_version` on as this transaction sees them:
    /// what others committed and what it appended itself.
    pub async fn read_stream(
        &mut self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = match &mut self.inner {
            Inner::Postgres(tx) => {
                postgres::select_stream(&mut **tx, stream, from_version, limit).await?
            }
            Inner::Sqlite(tx) => {
                sqlite::select_stream(&mut **tx, stream, from_version, limit).await?
            }
        };
        crate::personal::open_all(self.keyring.as_ref(), &mut events).await?;
        Ok(events)
    }

    /// Records that `command_id` is used for the request with `fingerprint` (first
    /// aimed at `stream`), or checks that an earlier use was the same request.
    ///
    /// The key is kept even when the command is then refused, so a key names one
    /// request for good. [`StoreError::CommandIdReused`] when it named another.
    pub async fn claim_command(
        &mut self,
        command_id: Uuid,
        fingerprint: &[u8; 32],
        stream: &StreamId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stored: Vec<u8> = match &mut self.inner {
            Inner::Postgres(tx) => {
                sqlx::query(
                    "INSERT INTO command_keys (command_id, fingerprint, stream_id, recorded_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (command_id) DO NOTHING",
                )
                .bind(command_id)
                .bind(fingerprint.as_slice())
                .bind(stream.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                sqlx::query_scalar("SELECT fingerprint FROM command_keys WHERE command_id = $1")
                    .bind(command_id)
                    .fetch_one(&mut **tx)
                    .await?
            }
            Inner::Sqlite(tx) => {
                sqlx::query(
                    "INSERT INTO command_keys (command_id, fingerprint, stream_id, recorded_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (command_id) DO NOTHING",
                )
                .bind(command_id)
                .bind(fingerprint.as_slice())
                .bind(stream.as_str())
                .bind(now.timestamp_micros())
                .execute(&mut **tx)
                .await?;
                sqlx::query_scalar("SELECT fingerprint FROM command_keys WHERE command_id = ?1")
                    .bind(command_id)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        // The stream explains a key; it is not compared, as one request may write
        // several streams, and the same request always aims at the same ones.
        if stored == fingerprint.as_slice() {
            Ok(())
        } else {
            Err(StoreError::CommandIdReused { command_id })
        }
    }

    /// Forgets the idempotency keys first used before `recorded_before`; how many.
    ///
    /// A retry that late with another body under a forgotten key is still refused:
    /// the ids it derives from the key name events and streams that exist.
    pub async fn forget_command_keys(
        &mut self,
        recorded_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let deleted = match &mut self.inner {
            Inner::Postgres(tx) => sqlx::query("DELETE FROM command_keys WHERE recorded_at < $1")
                .bind(recorded_before)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Inner::Sqlite(tx) => sqlx::query("DELETE FROM command_keys WHERE recorded_at < ?1")
                .bind(recorded_before.timestamp_micros())
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        };
        Ok(deleted)
    }

    /// Forgets that consumers handled events before `handled_before` (a redelivery
    /// that late is no longer possible), and dead letters resolved before
    /// `resolved_before` (open ones wait for an operator). Returns both counts.
    pub async fn forget_handled(
        &mut self,
        handled_before: DateTime<Utc>,
        resolved_before: DateTime<Utc>,
    ) -> Result<(u64, u64), StoreError> {
        let handled = "DELETE FROM inbox WHERE handled_at < $1";
        let resolved =
            "DELETE FROM dead_letters WHERE resolved_at IS NOT NULL AND resolved_at < $1";
        Ok(match &mut self.inner {
            Inner::Postgres(tx) => (
                sqlx::query(handled)
                    .bind(handled_before)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                sqlx::query(resolved)
                    .bind(resolved_before)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
            ),
            Inner::Sqlite(tx) => (
                sqlx::query(handled)
                    .bind(handled_before.timestamp_micros())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
                sqlx::query(resolved)
                    .bind(resolved_before.timestamp_micros())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected(),
            ),
        })
    }

    /// The stored event with this id, as this transaction sees it.
    pub async fn event_by_id(
        &mut self,
        event_id: Uuid,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let mut found = match &mut self.inner {
            Inner::Postgres(tx) => postgres::select_by_ids(&mut **tx, &[event_id]).await?,
            Inner::Sqlite(tx) => sqlite::select_by_ids(&mut **tx, &[event_id]).await?,
        };
        Ok(found.pop())
    }

    /// Moves the named checkpoint, with everything else in this transaction.
    pub async fn save_checkpoint(
        &mut self,
        name: &str,
        checkpoint: Checkpoint,
    ) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Postgres(tx) => postgres::upsert_checkpoint(&mut **tx, name, checkpoint).await,
            Inner::Sqlite(tx) => sqlite::upsert_checkpoint(&mut **tx, name, checkpoint).await,
        }
    }

    /// Moves the checkpoints of `names` from `from` to `to`, if every one of them
    /// stands at `from` (one not stored yet stands at [`Checkpoint::START`]).
    /// `false` if one did not: another reader moved it, and the transaction
    /// may have moved the others, so the caller rolls it back.
    pub async fn move_checkpoints(
        &mut self,
        names: &[&str],
        from: Checkpoint,
        to: Checkpoint,
    ) -> Result<bool, StoreError> {
        let moved = match &mut self.inner {
            Inner::Postgres(tx) => postgres::move_checkpoints(tx, names, from, to).await?,
            Inner::Sqlite(tx) => sqlite::move_checkpoints(tx, names, from, to).await?,
        };
        Ok(moved == names.len() as u64)
    }

    /// The named checkpoint as this transaction sees it.
    pub async fn load_checkpoint(&mut self, name: &str) -> Result<Checkpoint, StoreError> {
        match &mut self.inner {
            Inner::Postgres(tx) => postgres::select_checkpoint(&mut **tx, name).await,
            Inner::Sqlite(tx) => sqlite::select_checkpoint(&mut **tx, name).await,
        }
    }

    /// Marks a point this transaction can go back to with
    /// [`Self::rollback_to_savepoint`], undoing only what came after it. One at a
    /// time: a consumer puts each event of a batch under one.
    pub async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.raw("SAVEPOINT aftersales_unit").await?;
        self.savepoint = Some((self.appends.len(), self.after_commit.len()));
        Ok(())
    }

    /// Undoes everything since [`Self::savepoint`]; the transaction stays usable.
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.raw("ROLLBACK TO SAVEPOINT aftersales_unit").await?;
        self.raw("RELEASE SAVEPOINT aftersales_unit").await?;
        if let Some((appends, after_commit)) = self.savepoint.take() {
            self.appends.truncate(appends);
            self.after_commit.truncate(after_commit);
        }
        self.aborted = false;
        Ok(())
    }

    /// Keeps what came after [`Self::savepoint`] as part of the transaction.
    pub async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.raw("RELEASE SAVEPOINT aftersales_unit").await?;
        self.savepoint = None;
        Ok(())
    }

    /// Runs `step` once this transaction has committed; never if it does not (nor
    /// if what came before it is rolled back to a savepoint).
    pub fn after_commit(&mut self, step: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(step));
    }

    async fn raw(&mut self, sql: &'static str) -> Result<(), StoreError> {
        match &mut self.inner {
            Inner::Postgres(tx) => sqlx::raw_sql(sql).execute(&mut **tx).await.map(drop)?,
            Inner::Sqlite(tx) => sqlx::raw_sql(sql).execute(&mut **tx).await.map(drop)?,
        }
        Ok(())
    }

    /// Empties a read model's `tables`, for a rebuild. On PostgreSQL by `TRUNCATE`:
    /// their space is freed at once, and the rebuild's inserts do not step over
    /// the dead rows a `DELETE` would leave (readers of the tables wait until
    /// this transaction ends). SQLite truncates on a `DELETE` without a filter.
    pub async fn empty_tables(&mut self, tables: &[&'static str]) -> Result<(), StoreError> {
        let is_name = |t: &str| {
            t.starts_with(|c: char| c.is_ascii_lowercase())
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if let Some(bad) = tables.iter().find(|t| !is_name(t)) {
            return Err(InputError::new("table", format!("{bad:?} is not a table name")).into());
        }
        match &mut self.inner {
            Inner::Postgres(tx) if !tables.is_empty() => {
                let sql = format!("TRUNCATE {}", tables.join(", "));
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut **tx)
                    .await?;
            }
            Inner::Postgres(_) => {}
            Inner::Sqlite(tx) => {
                for table in tables {
                    let sql = format!("DELETE FROM {table}");
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut **tx)
                        .await?;
                }
            }
        }
        Ok(())
    }

    pub fn connection(&mut self) -> TransactionConnection<'_> {
        match &mut self.inner {
            Inner::Postgres(tx) => TransactionConnection::Postgres(tx),
            Inner::Sqlite(tx) => TransactionConnection::Sqlite(tx),
        }
    }

    /// Commits, or fails if an append's failed statement aborted the transaction
    /// (PostgreSQL answers such a `COMMIT` with a rollback, not an error).
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.aborted {
            self.rollback().await?;
            return Err(StoreError::Aborted);
        }
        if let (true, true, Inner::Postgres(tx)) =
            (self.unflushed, self.wrote_events, &mut self.inner)
        {
            // Events are never left to a later commit to make durable.
            sqlx::raw_sql("SET LOCAL synchronous_commit TO on")
                .execute(&mut **tx)
                .await?;
        }
        match self.inner {
            Inner::Postgres(tx) => tx.commit().await?,
            Inner::Sqlite(tx) => tx.commit().await?,
        }
        if self.wrote_events {
            self.appended.committed();
        }
        for (stream, outcome) in &self.appends {
            append::record_appended(stream, outcome);
        }
        for step in self.after_commit {
            step();
        }
        Ok(())
    }

    /// Undoes everything; the same as dropping, but waits for the database.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.inner {
            Inner::Postgres(tx) => tx.rollback().await?,
            Inner::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}
