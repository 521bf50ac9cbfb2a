//! The repair service.
//!
//! - [`domain`]: pure rules: money, the repair order state machine as a decider,
//!   service centers (nearest by great-circle distance, daily capacity).
//!
//! The gRPC API, service centers, reactions to logistics events, projections and the
//! binary are to come (issue "Repair service").

pub mod api;
pub mod app;
pub mod domain;
pub mod projections;
pub mod reactions;
pub mod server;
