//! The notification domain: pure rules, no I/O and no clock (time comes in
//! commands).
//!
//! - [`catalog`]: every kind of message, its topic, urgency and whether the law
//!   requires it.
//! - [`preferences`]: a customer's channels, language, quiet hours and opt-outs.
//! - [`plan`]: which channels a message goes to, and when.
//! - [`notification`]: one message on one channel, through its delivery attempts.
//! - [`reminder`]: durable timers that fire once or are cancelled.
//! - [`facts`]: what notification remembers of other services' orders.

pub mod catalog;
pub mod facts;
pub mod notification;
pub mod plan;
pub mod preferences;
pub mod reminder;

pub use catalog::{Kind, Topic};
pub use preferences::{Channel, Preferences};

/// Why a command was refused. Each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// INVALID_ARGUMENT, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// NOT_FOUND.
    #[error("{0} not found")]
    NotFound(String),
    /// FAILED_PRECONDITION.
    #[error("{0}")]
    Precondition(String),
    /// RESOURCE_EXHAUSTED: a limit reached (resends of one message).
    #[error("{0}")]
    Exhausted(String),
}

impl From<DomainError> for aftersales_core::Error {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid { field, reason } => Self::invalid(field, reason),
            DomainError::NotFound(what) => Self::not_found(what),
            DomainError::Precondition(why) => Self::precondition(why),
            DomainError::Exhausted(why) => Self::exhausted(why),
        }
    }
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
