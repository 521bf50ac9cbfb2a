//! The warranty domain: pure rules, no I/O and no clock (dates come in commands).
//!
//! - [`ids`]: IMEI (Luhn-checked) and serial numbers.
//! - [`policy`]: the per-country policy table, loaded from TOML and validated.
//! - [`coverage`]: whether a fault is covered on a date, and why.
//! - [`programme`]: recall and service programmes, loaded from TOML and validated.
//! - [`device`]: the device aggregate as a decider.
//! - [`forward`]: writes for devices whose home is another region, queued for it.

pub mod coverage;
pub mod device;
pub mod forward;
pub mod ids;
pub mod policy;
pub mod programme;

use serde::{Deserialize, Serialize};

pub use coverage::{Decision, Reason, Remedy};
pub use device::{Command, Device, DeviceState, Event, PurchaseProof};
pub use ids::DeviceKey;
pub use policy::{PolicyError, PolicyTable, PolicyTerms};
pub use programme::{Programme, ProgrammeTable};

/// What is wrong with a device; a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultCategory {
    Display,
    Battery,
    Camera,
    Audio,
    Connectivity,
    Charging,
    Buttons,
    Sensors,
    Software,
    Mainboard,
    AccidentalDamage,
    LiquidDamage,
    UnauthorizedRepair,
}

impl FaultCategory {
    /// Faults the user caused: never covered, whatever the policy.
    pub fn is_excluded(self) -> bool {
        matches!(
            self,
            Self::AccidentalDamage | Self::LiquidDamage | Self::UnauthorizedRepair
        )
    }

    pub const ALL: [Self; 13] = [
        Self::Display,
        Self::Battery,
        Self::Camera,
        Self::Audio,
        Self::Connectivity,
        Self::Charging,
        Self::Buttons,
        Self::Sensors,
        Self::Software,
        Self::Mainboard,
        Self::AccidentalDamage,
        Self::LiquidDamage,
        Self::UnauthorizedRepair,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessoryKind {
    Charger,
    Cable,
    Case,
    Earbuds,
}

impl AccessoryKind {
    pub const ALL: [Self; 4] = [Self::Charger, Self::Cable, Self::Case, Self::Earbuds];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Charger => "charger",
            Self::Cable => "cable",
            Self::Case => "case",
            Self::Earbuds => "earbuds",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesChannel {
    OnlineStore,
    RetailStore,
    Carrier,
    Reseller,
    Refurbished,
}

/// Why a command or question was refused. Each maps to one gRPC code.
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
    /// FAILED_PRECONDITION: the device's state refuses it.
    #[error("{0}")]
    Precondition(String),
    /// RESOURCE_EXHAUSTED: a limit on how often, reached for now.
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

    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::NotFound(_)
            | Self::AlreadyExists(_)
            | Self::Precondition(_)
            | Self::Exhausted(_) => None,
        }
    }
}

/// `date` plus `months`, clamped to the month's end (31 Jan + 1 month = 28/29 Feb).
pub fn add_months(date: chrono::NaiveDate, months: u32) -> chrono::NaiveDate {
    date.checked_add_months(chrono::Months::new(months))
        .unwrap_or(chrono::NaiveDate::MAX)
}

pub fn add_days(date: chrono::NaiveDate, days: u32) -> chrono::NaiveDate {
    date.checked_add_days(chrono::Days::new(u64::from(days)))
        .unwrap_or(chrono::NaiveDate::MAX)
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
            DomainError::AlreadyExists(what) => Self::already_exists(what),
            DomainError::Precondition(why) => Self::precondition(why),
            DomainError::Exhausted(why) => Self::exhausted(why),
        }
    }
}
