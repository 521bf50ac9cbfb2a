//! Picking a backend from a URL at run time, without `dyn`.

use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::StoreError;
use crate::event::{
    AppendOutcome, Checkpoint, ExpectedVersion, NewEvent, RecordedEvent, Snapshot, StreamHead,
    StreamId,
};
use crate::postgres::PgEventStore;
use crate::sqlite::SqliteEventStore;
use crate::store::{EventStore, Limits};
use crate::transaction::StoreTransaction;

/// Either backend, chosen by [`AnyEventStore::connect`] from the URL scheme.
#[derive(Debug, Clone)]
pub enum AnyEventStore {
    Postgres(PgEventStore),
    Sqlite(SqliteEventStore),
}

impl AnyEventStore {
    /// `postgres://…` or `postgresql://…` for PostgreSQL, `sqlite:…` for SQLite.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PgEventStore::connect(url).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteEventStore::connect(url).await?))
        } else {
            Err(StoreError::unsupported_url(url))
        }
    }

    /// On PostgreSQL, migrates as `owner_url` and runs as the role of `url`
    /// with no more rights than a service needs
    /// ([`PgEventStore::connect_as_service`]). An embedded SQLite file has no
    /// roles: asking for one is an error.
    pub async fn connect_as_service(
        url: &str,
        owner_url: &str,
        migrations: &sqlx::migrate::Migrator,
    ) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(
                PgEventStore::connect_as_service(url, owner_url, migrations).await?,
            ))
        } else {
            Err(StoreError::unsupported_url(url))
        }
    }

    /// Applies a service's own migrations (read models, say) to the store's
    /// database, beside the store's.
    pub async fn run_migrations(
        &self,
        migrations: &sqlx::migrate::Migrator,
    ) -> Result<(), StoreError> {
        let migrator = crate::store::shared_migrator(migrations);
        match self {
            Self::Postgres(s) => migrator.run(s.pool()).await,
            Self::Sqlite(s) => migrator.run(s.writer()).await,
        }
        .map_err(StoreError::Migration)
    }

    /// Seals personal data on append, for subjects named `<scope>/<id>` (a
    /// service's name: each service erases its own), and opens it on read with
    /// `keyring`.
    pub fn with_keyring(self, keyring: std::sync::Arc<crate::Keyring>, scope: &str) -> Self {
        match self {
            Self::Postgres(s) => Self::Postgres(s.with_keyring(keyring, scope)),
            Self::Sqlite(s) => Self::Sqlite(s.with_keyring(keyring, scope)),
        }
    }

    /// How personal data is sealed here, if a keyring is configured.
    pub fn sealing(&self) -> Option<&crate::personal::Sealing> {
        match self {
            Self::Postgres(s) => s.sealing(),
            Self::Sqlite(s) => s.sealing(),
        }
    }

    /// The keyring personal data is sealed with, if one is configured.
    pub fn keyring(&self) -> Option<&std::sync::Arc<crate::Keyring>> {
        self.sealing().map(crate::personal::Sealing::keyring)
    }

    pub fn with_limits(self, limits: Limits) -> Self {
        match self {
            Self::Postgres(s) => Self::Postgres(s.with_limits(limits)),
            Self::Sqlite(s) => Self::Sqlite(s.with_limits(limits)),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyEventStore::Postgres($store) => $call,
            AnyEventStore::Sqlite($store) => $call,
        }
    };
}

impl EventStore for AnyEventStore {
    async fn begin(&self) -> Result<StoreTransaction, StoreError> {
        delegate!(self, s => s.begin().await)
    }

    async fn begin_unflushed(&self) -> Result<StoreTransaction, StoreError> {
        delegate!(self, s => s.begin_unflushed().await)
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Checkpoint, StoreError> {
        delegate!(self, s => s.load_checkpoint(name).await)
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Checkpoint) -> Result<(), StoreError> {
        delegate!(self, s => s.save_checkpoint(name, checkpoint).await)
    }

    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        delegate!(self, s => s.append(stream, expected, events).await)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        delegate!(self, s => s.read_stream(stream, from_version, limit).await)
    }

    async fn stream_head(&self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError> {
        delegate!(self, s => s.stream_head(stream).await)
    }

    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        delegate!(self, s => s.read_all(after_position, limit).await)
    }

    async fn read_log(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        delegate!(self, s => s.read_log(after, limit).await)
    }

    async fn log_end(&self) -> Result<Checkpoint, StoreError> {
        delegate!(self, s => s.log_end().await)
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.last_position().await)
    }

    async fn has_read_up_to(
        &self,
        checkpoint: Checkpoint,
        position: u64,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.has_read_up_to(checkpoint, position).await)
    }

    async fn event_by_id(&self, event_id: Uuid) -> Result<Option<RecordedEvent>, StoreError> {
        delegate!(self, s => s.event_by_id(event_id).await)
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        delegate!(self, s => s.save_snapshot(snapshot).await)
    }

    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        delegate!(self, s => s.load_snapshot(stream).await)
    }

    fn appended(&self) -> &Notify {
        delegate!(self, s => s.appended())
    }
}

/// Runs the same sqlx code on a [`crate::TransactionConnection`], whichever
/// backend it is: `on_connection!(tx.connection(), c => query.execute(c).await?)`.
/// For SQL both backends understand.
#[macro_export]
macro_rules! on_connection {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::TransactionConnection::Postgres($c) => $body,
            $crate::TransactionConnection::Sqlite($c) => $body,
        }
    };
}

/// Runs the same sqlx read on an [`AnyEventStore`]'s pool (SQLite's read-only one).
#[macro_export]
macro_rules! on_read_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::AnyEventStore::Postgres(s) => {
                let $pool = s.pool();
                $body
            }
            $crate::AnyEventStore::Sqlite(s) => {
                let $pool = s.reader();
                $body
            }
        }
    };
}
