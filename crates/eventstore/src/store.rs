//! The event store API that every backend implements, and the checks every backend
//! applies to input before touching the database.

use std::future::Future;

use uuid::Uuid;

use crate::chain::{VerifyReport, verify_events};
use crate::error::{InputError, StoreError};
use crate::event::{
    AppendOutcome, Checkpoint, ExpectedVersion, MAX_EVENT_TYPE_LEN, MAX_METADATA_FIELD_LEN,
    NewEvent, RecordedEvent, Snapshot, StreamHead, StreamId,
};
use crate::transaction::StoreTransaction;

/// Size limits enforced on every append, before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Most events in one append.
    pub max_events_per_append: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_events_per_append: 1000,
        }
    }
}

/// An append-only log of events, grouped into streams, with a global order.
///
/// Implemented by [`crate::PgEventStore`], [`crate::SqliteEventStore`] and
/// [`crate::AnyEventStore`], which picks one from a URL at run time.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Opens a transaction on the store's database, for appends that must commit
    /// with other writes (an inbox record, a checkpoint, read-model rows).
    fn begin(&self) -> impl Future<Output = Result<StoreTransaction, StoreError>> + Send;

    /// [`Self::begin`] for writes the log can make again, such as a read model
    /// with its checkpoint: the commit does not wait for the disk (PostgreSQL's
    /// asynchronous commit; SQLite commits as ever) unless the transaction
    /// appended events. A crash may undo the last of them whole, never part of
    /// one, and any later durable commit on the server makes them durable too.
    fn begin_unflushed(&self) -> impl Future<Output = Result<StoreTransaction, StoreError>> + Send {
        self.begin()
    }

    /// The named reader's checkpoint, or [`Checkpoint::START`] if it has none.
    fn load_checkpoint(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// Moves the named reader's checkpoint, on its own.
    fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: Checkpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends `events` to `stream` if its version satisfies `expected`.
    ///
    /// All events are written or none. Re-appending events whose ids are stored
    /// already succeeds with `duplicate: true` and writes nothing.
    fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Up to `limit` events of `stream` with version `>= from_version`, in order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// The stream's last version and hash, or `None` for an empty stream.
    fn stream_head(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<StreamHead>, StoreError>> + Send;

    /// Up to `limit` events with position `> after_position`, by position.
    ///
    /// For history and replay of a settled log. A live follower must use
    /// [`EventStore::read_log`]: on PostgreSQL a transaction still in flight can
    /// commit a lower position after a higher one is visible here.
    fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// Up to `limit` events after `after`, in the order a follower must see them.
    ///
    /// Returns only events that can no longer be preceded by another commit, so
    /// a follower that advances its checkpoint to each returned event's
    /// [`RecordedEvent::checkpoint`] sees every event exactly once.
    fn read_log(
        &self,
        after: Checkpoint,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send;

    /// A checkpoint to follow the log from when only what comes next matters: a
    /// follower starting here sees every event committed from now on (and maybe a
    /// few committed just before).
    fn log_end(&self) -> impl Future<Output = Result<Checkpoint, StoreError>> + Send;

    /// The position of the last stored event, 0 for an empty log: how far a
    /// reader is behind, for operators. A follower must use [`EventStore::read_log`].
    fn last_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether a follower at `checkpoint` has read every stored event at
    /// `position` or before. The log is read in commit order, which on PostgreSQL
    /// is not position order: the checkpoint's own position does not say.
    fn has_read_up_to(
        &self,
        checkpoint: Checkpoint,
        position: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The stored event with this id.
    fn event_by_id(
        &self,
        event_id: Uuid,
    ) -> impl Future<Output = Result<Option<RecordedEvent>, StoreError>> + Send;

    /// Stores `snapshot` unless a newer one for the stream is stored already.
    fn save_snapshot(
        &self,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The newest snapshot of `stream`.
    fn load_snapshot(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Wakes followers in this process after each append.
    fn appended(&self) -> &tokio::sync::Notify;

    /// Recomputes the stream's hash chain and reports the first break, if any.
    /// With `trusted_head`, an anchor kept outside this database, removal of the
    /// stream's last events is detected too.
    fn verify_stream(
        &self,
        stream: &StreamId,
        trusted_head: Option<StreamHead>,
    ) -> impl Future<Output = Result<VerifyReport, StoreError>> + Send {
        async move {
            let events = read_whole_stream(self, stream).await?;
            Ok(verify_events(stream, &events, trusted_head))
        }
    }
}

/// Page size used when a whole stream is read.
pub(crate) const STREAM_PAGE: usize = 1000;

/// Every event of `stream`, in version order.
pub async fn read_whole_stream<S: EventStore>(
    store: &S,
    stream: &StreamId,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let from = events.last().map_or(1, |e| e.stream_version + 1);
        let page = store.read_stream(stream, from, STREAM_PAGE).await?;
        let done = page.len() < STREAM_PAGE;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

/// Rejects a batch that must not reach the database.
pub(crate) fn validate_batch(limits: &Limits, events: &[NewEvent]) -> Result<(), InputError> {
    if events.is_empty() {
        return Err(InputError::new("events", "must not be empty"));
    }
    if events.len() > limits.max_events_per_append {
        return Err(InputError::new(
            "events",
            format!(
                "has {} events, at most {} per append",
                events.len(),
                limits.max_events_per_append
            ),
        ));
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for event in events {
        if !seen.insert(event.event_id) {
            return Err(InputError::new(
                "event_id",
                format!("{} appears twice in one append", event.event_id),
            ));
        }
        validate_event(limits, event)?;
    }
    Ok(())
}

fn validate_event(limits: &Limits, event: &NewEvent) -> Result<(), InputError> {
    if event.event_id.is_nil() {
        return Err(InputError::new("event_id", "must not be the nil uuid"));
    }
    let t = &event.event_type;
    if t.is_empty()
        || t.len() > MAX_EVENT_TYPE_LEN
        || !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(InputError::new(
            "event_type",
            format!("must be 1 to {MAX_EVENT_TYPE_LEN} letters, digits, '.', '_' or '-'"),
        ));
    }
    if event.schema_version == 0 || i32::try_from(event.schema_version).is_err() {
        return Err(InputError::new(
            "schema_version",
            "must be between 1 and 2^31-1",
        ));
    }
    if event.payload.len() > limits.max_payload_bytes {
        return Err(InputError::new(
            "payload",
            format!(
                "is {} bytes, at most {} allowed",
                event.payload.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    let m = &event.metadata;
    let text = |field: &'static str, value: &str, required: bool| {
        if required && value.is_empty() {
            return Err(InputError::new(field, "must not be empty"));
        }
        if value.len() > MAX_METADATA_FIELD_LEN {
            return Err(InputError::new(
                field,
                format!("is longer than {MAX_METADATA_FIELD_LEN} bytes"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(InputError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(())
    };
    text("actor", &m.actor, true)?;
    text("region", &m.region, true)?;
    text("traceparent", m.traceparent.as_deref().unwrap_or(""), false)?;
    text("tracestate", m.tracestate.as_deref().unwrap_or(""), false)?;
    Ok(())
}

/// Converts a stored signed integer, which the schema keeps non-negative.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::CorruptRow(format!("negative {what}: {value}")))
}

/// Reads a stored 32-byte hash.
pub(crate) fn hash_from(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| StoreError::CorruptRow(format!("hash of {} bytes", b.len())))
}

/// Converts a caller's unsigned value into the database's signed integer.
pub(crate) fn to_i64(value: u64, field: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::InvalidInput(InputError::new(field, "is out of range")))
}

/// Converts a caller's limit into a SQL `LIMIT`.
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `migrations` as a migrator that shares its database: migrations applied by the
/// store or by a service's read models (distinct versions) are not an error.
pub fn shared_migrator(migrations: &sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate::Migrator {
        migrations: migrations.migrations.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator
}

#[cfg(test)]
mod tests {

    /// This crate's directory as cargo gives it to the running test (a binary
    /// reused from a checkout elsewhere still reads this checkout's files).
    fn manifest_dir() -> String {
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    }
    use std::collections::BTreeMap;

    /// The store's migrations and every service's share one `_sqlx_migrations`
    /// table, so a version used twice stops a service at start-up.
    #[test]
    fn migration_versions_are_unique_across_the_workspace() {
        let manifest = manifest_dir();
        let crates = std::path::Path::new(&manifest).parent().expect("crates/");
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut dirs = vec![
            crates.join("eventstore/migrations/postgres"),
            crates.join("eventstore/migrations/sqlite"),
        ];
        for entry in
            std::fs::read_dir(crates).unwrap_or_else(|e| panic!("{}: {e}", crates.display()))
        {
            let dir = entry.expect("an entry").path().join("migrations");
            if dir.is_dir() && !dir.ends_with("eventstore/migrations") {
                dirs.push(dir);
            }
        }
        for (i, dir) in dirs.iter().enumerate() {
            for file in std::fs::read_dir(dir).expect("migrations list") {
                let name = file
                    .expect("a file")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                let version = name.split('_').next().unwrap_or_default().to_owned();
                // The store's two backends share versions by design.
                let owner = if i < 2 {
                    "eventstore".to_owned()
                } else {
                    dir.display().to_string()
                };
                if let Some(other) = seen.insert(version.clone(), owner.clone()) {
                    assert_eq!(other, owner, "migration version {version} is used twice");
                }
            }
        }
        assert!(seen.len() > 3, "found the migrations: {seen:?}");
    }
}
