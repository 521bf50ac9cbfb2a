//! The warranty service.
//!
//! - [`domain`]: pure rules (identities, policies, coverage, the device decider).
//! - [`app`]: use cases over the event store: commands, questions, time travel.
//! - [`convert`]: between domain types and the protobuf contracts.
//! - [`api`]: the gRPC service `aftersales.warranty.v1.WarrantyService`.
//! - [`projections`]: read models rebuilt from the log.
//! - [`integration`]: the public events other services receive.
//! - [`replica`]: other regions' devices, and writes forwarded between regions.
//! - [`abroad`]: repairs here of other regions' devices, told to their owners at home.

pub mod abroad;
pub mod api;
pub mod app;
pub mod convert;
pub mod domain;
pub mod integration;
pub mod privacy;
pub mod projections;
pub mod replica;
pub mod server;
