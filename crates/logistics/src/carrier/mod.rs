//! Carriers are adapters behind [`Carrier`]: one issues labels and tracking
//! numbers; its scans come back through the webhook or gRPC in the one tracking
//! vocabulary. The built-in [`sandbox::SandboxCarrier`] runs without any network.

pub mod sandbox;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::domain::shipment::{Label, ShipmentInfo};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// The carrier refused the request itself (unservable address…).
    #[error("the carrier refused: {0}")]
    Refused(String),
    /// Worth trying again later.
    #[error("the carrier is unavailable: {0}")]
    Unavailable(String),
}

impl From<CarrierError> for aftersales_core::Error {
    fn from(error: CarrierError) -> Self {
        match error {
            CarrierError::Refused(why) => Self::precondition(format!("the carrier refused: {why}")),
            CarrierError::Unavailable(why) => {
                Self::unavailable(format!("the carrier is unavailable: {why}"))
            }
        }
    }
}

pub type CarrierFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CarrierError>> + Send + 'a>>;

/// One carrier's API.
pub trait Carrier: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;

    /// Issues the label for a shipment. Carriers take the shipment id as an
    /// idempotency key: asking again returns the same label.
    fn issue_label<'a>(&'a self, shipment: &'a ShipmentInfo) -> CarrierFuture<'a, Label>;
}

/// The carriers this deployment can use, by name.
#[derive(Debug, Clone)]
pub struct Carriers {
    by_name: BTreeMap<String, Arc<dyn Carrier>>,
    default: String,
}

impl Carriers {
    /// `default` must be one of `carriers`.
    pub fn new(carriers: Vec<Arc<dyn Carrier>>, default: &str) -> Result<Self, String> {
        let by_name: BTreeMap<_, _> = carriers
            .into_iter()
            .map(|c| (c.name().to_owned(), c))
            .collect();
        if !by_name.contains_key(default) {
            return Err(format!("default carrier {default:?} is not configured"));
        }
        Ok(Self {
            by_name,
            default: default.to_owned(),
        })
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Carrier>> {
        self.by_name.get(name)
    }
}
