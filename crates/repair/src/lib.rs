//! The repair service.
//!
//! - [`domain`]: pure rules: the repair order state machine as a decider,
//!   service centers (nearest by great-circle distance, daily capacity).
//! - [`app`] and [`api`]: the commands and queries, over gRPC.
//! - [`convert`]: between domain types and the protobuf contracts.
//! - [`projections`]: read models fed from the log.
//! - [`network`]: demand per city, a plan for new service points, quality per
//!   center and technician.
//! - [`reactions`]: what logistics events do to orders.
//! - [`integration`]: the public protobuf events the relay publishes.
//! - [`server`]: the running process.

pub mod api;
pub mod app;
pub mod convert;
pub mod domain;
pub mod index;
pub mod integration;
pub mod network;
pub mod photos;
pub mod privacy;
pub mod projections;
pub mod reactions;
pub mod server;
