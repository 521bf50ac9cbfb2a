//! The parts domain: pure rules, no I/O and no clock (time comes in commands).
//!
//! - [`catalog`]: parts, accessories and repair operations per model, as data.
//! - [`prices`]: each country's versioned price list, its tax and how it shows it.
//! - [`stock`]: one part's stock at one location, and the repairs holding or
//!   waiting for its units.
//! - [`order`]: an accessory order, from its priced lines to its delivery.

pub mod catalog;
pub mod order;
pub mod prices;
pub mod stock;

/// Why a command was refused. Each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// INVALID_ARGUMENT, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// NOT_FOUND.
    #[error("{0} not found")]
    NotFound(String),
    /// FAILED_PRECONDITION, saying what state the stock or reservation is in.
    #[error("{0}")]
    Precondition(String),
    /// RESOURCE_EXHAUSTED: a bound on what one stock stream keeps is reached.
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
