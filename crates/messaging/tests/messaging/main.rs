//! Messaging against real PostgreSQL, SQLite files and nats-server.
#![allow(clippy::unwrap_used, clippy::wildcard_enum_match_arm)]

mod embedded;
mod harness;
mod jetstream;
mod permissions;
mod regions;
mod relay;
