//! The repair service over gRPC with the warranty service running for real, both on
//! PostgreSQL.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod auth;
mod centers;
mod harness;
mod history;
mod network;
mod orders;
mod regions;
