//! The support domain: pure rules, no I/O and no clock (time comes in commands).
//!
//! - [`calendar`]: a team's working hours, time zone and holidays.
//! - [`sla`]: service levels as versioned data, and the clocks that count them.
//! - [`teams`]: teams, their skills, tiers and agents' shifts, and routing.
//! - [`case`]: one case, from its opening to its closing.
//! - [`article`]: a knowledge-base article in one language, versioned.
//! - [`words`]: how knowledge-base text becomes search terms in four languages.
//! - [`updates`]: models' update support windows, releases and the issues
//!   they fix.
//! - [`diagnosis`]: self-diagnosis trees as data, and one walk through one.
//! - [`watch`]: what support keeps of a repair order, to open a case when it
//!   goes wrong and to ask how it went.
//! - [`survey`]: a satisfaction survey, answered once by a signed link.
//! - [`legal`]: clocks on a repair the law sets (spare parts, repair time) or
//!   we promise (a quote's answer), as versioned data.

pub mod article;
pub mod calendar;
pub mod case;
pub mod diagnosis;
pub mod legal;
pub mod sla;
pub mod survey;
pub mod teams;
pub mod updates;
pub mod watch;
pub mod words;

/// Why a command was refused. Each maps to one gRPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// INVALID_ARGUMENT, naming the field.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// NOT_FOUND.
    #[error("{0} not found")]
    NotFound(String),
    /// ALREADY_EXISTS.
    #[error("{0}")]
    AlreadyExists(String),
    /// FAILED_PRECONDITION, saying what state the case is in.
    #[error("{0}")]
    Precondition(String),
    /// RESOURCE_EXHAUSTED: a bound on what one case keeps is reached.
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
            DomainError::AlreadyExists(why) => Self::already_exists(why),
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
