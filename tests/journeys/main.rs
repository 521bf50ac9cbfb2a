//! Journeys across the four service binaries, each a separate OS process, on a
//! real PostgreSQL (one database per service), a real nats-server and a real SMTP
//! listener. The test drives only the public gRPC APIs, as staff and customers
//! would; parcels move by the sandbox carrier's autoplay.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod auth;
mod crash;
mod fuzz;
mod journey;
mod platform;
mod privacy;
mod regions;
mod relay;
mod trace;
mod watchers;
mod web;

pub use platform::*;
