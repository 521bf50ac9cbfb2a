//! Errors of the store layer.

use uuid::Uuid;

use crate::event::{ExpectedVersion, StreamId};

/// A rejected input, naming the offending field so APIs can report it
/// (gRPC `INVALID_ARGUMENT` with a field violation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct InputError {
    pub field: &'static str,
    pub reason: String,
}

impl InputError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Everything an event store operation can fail with.
///
/// Maps to gRPC as: `InvalidInput` INVALID_ARGUMENT, `WrongExpectedVersion` ABORTED
/// (retry with fresh state), `IdempotencyConflict` ALREADY_EXISTS, the rest
/// UNAVAILABLE or INTERNAL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad input; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InputError),

    /// Optimistic concurrency: the stream moved on. Nothing was written.
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: u64,
    },

    /// An event id is already stored with other content, or only part of a batch is.
    #[error("event {event_id} is already stored with different content")]
    IdempotencyConflict { event_id: Uuid },

    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[source] sqlx::Error),

    /// Schema migration failed at start-up.
    #[error("migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),

    /// A stored row could not be read back into an event.
    #[error("stored row is unreadable: {0}")]
    CorruptRow(String),

    /// The connection URL names no supported backend.
    #[error("unsupported database url {0:?}: use postgres://… or sqlite:…")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}
