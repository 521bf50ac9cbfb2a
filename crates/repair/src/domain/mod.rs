//! The repair domain: pure rules, no I/O and no clock (time comes in commands).

pub mod center;
pub mod centers;
pub mod estimate;
pub mod order;

pub use aftersales_core::types::Money;
pub use order::{Action, Command, Event, OrderState, RepairOrder, Stage};

/// Why a command was refused. Each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// INVALID_ARGUMENT, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// NOT_FOUND.
    #[error("{0} not found")]
    NotFound(String),
    /// FAILED_PRECONDITION, naming the order's current state.
    #[error("{action} is not allowed while the order is {state}")]
    WrongState { action: &'static str, state: Stage },
    /// FAILED_PRECONDITION for other reasons (an expired quote).
    #[error("{0}")]
    Precondition(String),
    /// ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// INVALID_ARGUMENT: a service center, naming its field (`center.location`).
    #[error(transparent)]
    InvalidCenter(centers::CenterError),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<aftersales_core::types::ParseError> for DomainError {
    fn from(error: aftersales_core::types::ParseError) -> Self {
        Self::Invalid {
            field: error.field,
            reason: error.reason,
        }
    }
}

impl From<DomainError> for aftersales_core::Error {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid { field, reason } => Self::invalid(field, reason),
            DomainError::NotFound(what) => Self::not_found(what),
            e @ DomainError::WrongState { .. } => Self::precondition(e.to_string()),
            DomainError::Precondition(why) => Self::precondition(why),
            DomainError::AlreadyExists(what) => Self::already_exists(what),
            DomainError::InvalidCenter(e) => Self::invalid(e.field, e.reason),
        }
    }
}
