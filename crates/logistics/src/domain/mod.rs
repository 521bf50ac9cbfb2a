//! The logistics domain: pure rules, no I/O and no clock (time comes in commands).

pub mod custody;
pub mod depots;
pub mod shipment;
pub mod tracking;

pub use shipment::{Command, Event, Shipment, ShipmentState};
pub use tracking::{Scan, Status};

/// Why a command was refused. Each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// INVALID_ARGUMENT, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// NOT_FOUND.
    #[error("{0} not found")]
    NotFound(String),
    /// FAILED_PRECONDITION, saying what state the shipment is in.
    #[error("{0}")]
    Precondition(String),
    /// ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// RESOURCE_EXHAUSTED: a bound on what one shipment keeps is reached.
    #[error("{0}")]
    Exhausted(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<DomainError> for aftersales_core::Error {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::Invalid { field, reason } => Self::invalid(field, reason),
            DomainError::NotFound(what) => Self::not_found(what),
            DomainError::Precondition(why) => Self::precondition(why),
            DomainError::AlreadyExists(what) => Self::already_exists(what),
            DomainError::Exhausted(why) => Self::exhausted(why),
        }
    }
}

/// Printable text of at most `max` bytes; empty allowed only when `required` is false.
pub(crate) fn text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<(), DomainError> {
    aftersales_core::types::printable_text(field, value, max, required)
        .map_err(|e| DomainError::invalid(e.field, e.reason))
}
