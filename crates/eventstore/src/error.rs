//! Errors of the store layer.

use aftersales_core::{Error, ErrorKind};
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
/// [`StoreError::kind`] says what each means to a caller.
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

    /// An `x-command-id` already named another request, or another stream.
    #[error("command id {command_id} was used for another request")]
    CommandIdReused { command_id: Uuid },

    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[source] sqlx::Error),

    /// Schema migration failed at start-up.
    #[error("migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),

    /// A statement failed inside a transaction, which the database then undid
    /// whole: nothing of it was committed.
    #[error("the transaction was aborted by a failed statement; nothing was committed")]
    Aborted,

    /// A stored row could not be read back into an event.
    #[error("stored row is unreadable: {0}")]
    CorruptRow(String),

    /// Personal data could not be sealed or opened; nothing was written.
    #[error("personal data: {0}")]
    Keys(#[from] crate::personal::KeyError),

    /// The connection URL names no supported backend. Only its scheme is kept: the
    /// rest may hold a password.
    #[error("unsupported database url scheme {scheme:?}: use postgres://… or sqlite:…")]
    UnsupportedUrl { scheme: String },
}

impl StoreError {
    /// An unsupported URL, keeping nothing of it but its scheme.
    pub fn unsupported_url(url: &str) -> Self {
        let scheme = url
            .split_once(':')
            .map_or("", |(scheme, _)| scheme)
            .chars()
            .take(32)
            .collect();
        Self::UnsupportedUrl { scheme }
    }

    /// What this failure means to a caller; see [`aftersales_core::ErrorKind`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput(_) => ErrorKind::InvalidArgument,
            Self::WrongExpectedVersion { .. } => ErrorKind::Conflict,
            Self::IdempotencyConflict { .. } | Self::CommandIdReused { .. } => {
                ErrorKind::AlreadyExists
            }
            Self::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
            ) => ErrorKind::Unavailable,
            Self::Keys(keys) => keys.kind(),
            Self::Database(_)
            | Self::Aborted
            | Self::Migration(_)
            | Self::CorruptRow(_)
            | Self::UnsupportedUrl { .. } => ErrorKind::Internal,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match &error {
            StoreError::InvalidInput(input) => Error::invalid(input.field, input.reason.clone()),
            StoreError::IdempotencyConflict { .. } | StoreError::CommandIdReused { .. } => {
                Error::already_exists("this x-command-id was used for another request")
                    .with_source(error)
            }
            StoreError::WrongExpectedVersion { .. } => {
                Error::conflict(format!("{error}; retry")).with_source(error)
            }
            StoreError::Keys(_) => {
                Error::new(error.kind(), "personal data keys").with_source(error)
            }
            StoreError::Database(_)
            | StoreError::Aborted
            | StoreError::Migration(_)
            | StoreError::CorruptRow(_)
            | StoreError::UnsupportedUrl { .. } => {
                Error::new(error.kind(), "event store").with_source(error)
            }
        }
    }
}

/// A stored event today's code cannot read (even after upcasting).
impl From<crate::CodecError> for StoreError {
    fn from(error: crate::CodecError) -> Self {
        Self::CorruptRow(error.to_string())
    }
}

/// The database's files could not be reached.
impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::Database(sqlx::Error::Io(error))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_url_keeps_only_its_scheme() {
        let error = StoreError::unsupported_url("mysql://admin:hunter2@db:3306/warranty");
        let mut shown = format!("{error} {error:?}");
        shown.push_str(&Error::from(error).chain());
        assert!(shown.contains("mysql"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("admin"), "{shown}");
    }

    #[test]
    fn a_database_failure_keeps_its_cause_for_the_log() {
        let error = Error::from(StoreError::Database(sqlx::Error::PoolTimedOut));
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(
            error.chain().contains("pool timed out"),
            "{}",
            error.chain()
        );
    }

    #[test]
    fn a_reused_command_id_is_already_exists() {
        let error = Error::from(StoreError::IdempotencyConflict {
            event_id: Uuid::nil(),
        });
        assert_eq!(error.kind(), ErrorKind::AlreadyExists);
    }
}
