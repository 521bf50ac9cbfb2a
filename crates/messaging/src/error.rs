//! Errors of the messaging layer.

use aftersales_core::Retry;
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

/// The retry decision comes from the one table ([`aftersales_core::ErrorKind::retry`]).
impl From<aftersales_core::Error> for HandlerError {
    fn from(error: aftersales_core::Error) -> Self {
        let text = error.chain();
        match error.kind().retry() {
            Retry::Never => Self::Permanent(text),
            Retry::Later => Self::Transient(text),
            Retry::AtOnce => Self::Conflict(text),
        }
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        aftersales_core::Error::from(error).into()
    }
}

/// A command a reaction ran was refused or failed.
impl<E> From<HandleError<E>> for HandlerError
where
    E: std::error::Error + Into<aftersales_core::Error> + 'static,
{
    fn from(error: HandleError<E>) -> Self {
        aftersales_core::Error::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_retry_by_the_table() {
        use aftersales_core::Error;
        assert!(HandlerError::from(Error::invalid("payload", "not protobuf")).is_permanent());
        assert!(matches!(
            HandlerError::from(Error::unavailable("warranty down")),
            HandlerError::Transient(_)
        ));
        assert!(matches!(
            HandlerError::from(Error::conflict("lost a race")),
            HandlerError::Conflict(_)
        ));
    }
}
