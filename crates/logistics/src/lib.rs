//! The logistics service.
//!
//! - [`domain`]: pure rules: shipments and their tracking, what logistics knows of
//!   each repair order, and the custody timeline.
//! - [`carrier`]: carriers behind a trait, and the built-in sandbox carrier.
//! - [`app`] and [`api`]: the commands and queries, over gRPC.
//! - [`convert`]: between domain types and the protobuf contracts.
//! - [`webhook`]: carrier scans over HTTP, signed with HMAC.
//! - [`reactions`]: what repair's events do here.
//! - [`projections`]: read models fed from the log.
//! - [`integration`]: the public protobuf events the relay publishes.
//! - [`server`]: the running process.

pub mod api;
pub mod app;
pub mod carrier;
pub mod convert;
pub mod domain;
pub mod integration;
pub mod privacy;
pub mod projections;
pub mod reactions;
pub mod server;
pub mod webhook;
