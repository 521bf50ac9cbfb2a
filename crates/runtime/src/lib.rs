//! What every service binary shares.
//!
//! - [`auth`]: every call authenticated and checked against the policy table.
//! - [`config`]: the flags every service shares, secrets kept secret, and each
//!   service's defaults read from its own flags.
//! - [`errors`]: a use case's error as a gRPC status, through the one table.
//! - [`grpc`]: a gRPC server with the health service and server reflection, that
//!   reports NOT_SERVING and drains in-flight calls before it stops.
//! - [`metrics`]: Prometheus on `/metrics`, and gRPC calls counted and timed.
//! - [`operations`]: every service's backlogs and dead letters, for operators.
//! - [`privacy`]: a customer's data exported and erased, in every service.
//! - [`regions`]: the region directory: each country's home region, each
//!   region's services, and where a client sends a device's reads and writes.
//! - [`request`]: the command context a gRPC request carries.
//! - [`sealed`]: personal data in public events, sealed and opened.
//! - [`service`]: a service binary's life, from telemetry to a clean stop.
//! - [`signal`]: SIGTERM or Ctrl-C as a future.
//! - [`telemetry`]: logs, and spans exported by OTLP with W3C trace context.

pub mod auth;
pub mod config;
pub mod errors;
pub mod grpc;
pub mod metrics;
pub mod notary;
pub mod operations;
pub mod paging;
pub mod privacy;
pub mod regions;
pub mod request;
pub mod sealed;
pub mod service;
pub mod signal;
pub mod signature;
pub mod telemetry;
pub mod tls;
