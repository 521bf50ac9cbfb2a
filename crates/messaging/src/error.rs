//! Errors of the messaging layer.

use aftersales_eventstore::{HandleError, StoreError};

/// A setting that cannot work, named so the operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Why talking to NATS or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A background task of ours panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl MessagingError {
    pub(crate) fn nats(error: impl std::fmt::Display) -> Self {
        Self::Nats(error.to_string())
    }
}

/// Why a handler did not apply an event. Its transaction was rolled back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try later (a lost race, a database hiccup, a peer down).
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time (an undecodable payload): straight to the
    /// dead letters, no retries.
    #[error("{0}")]
    Permanent(String),
    /// Another writer moved the same stream first; deciding again at once will
    /// likely succeed. Counts as transient.
    #[error("{0}")]
    Conflict(String),
}

impl HandlerError {
    pub fn transient(error: impl std::fmt::Display) -> Self {
        Self::Transient(error.to_string())
    }

    pub fn permanent(error: impl std::fmt::Display) -> Self {
        Self::Permanent(error.to_string())
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidInput(_) | StoreError::IdempotencyConflict { .. } => {
                Self::Permanent(error.to_string())
            }
            StoreError::WrongExpectedVersion { .. } => Self::Conflict(error.to_string()),
            StoreError::Database(_)
            | StoreError::Migration(_)
            | StoreError::CorruptRow(_)
            | StoreError::UnsupportedUrl(_) => Self::Transient(error.to_string()),
        }
    }
}

/// A command a reaction ran was refused or failed.
impl<E: std::error::Error + 'static> From<HandleError<E>> for HandlerError {
    fn from(error: HandleError<E>) -> Self {
        match error {
            // The domain said no; it will say so again. A reaction that expects a
            // refusal handles it before it gets here.
            HandleError::Domain(e) => Self::Permanent(e.to_string()),
            HandleError::Codec(e) => Self::Permanent(e.to_string()),
            HandleError::Store(e) => e.into(),
            e @ HandleError::Contention { .. } => Self::Conflict(e.to_string()),
        }
    }
}
