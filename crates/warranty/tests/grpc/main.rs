//! The warranty service over gRPC against a real PostgreSQL (and nats-server for
//! the published events).
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod auth;
mod devices;
mod harness;
mod history;
mod payments;
mod process;
mod programmes;
mod regions;
mod tls;
