//! What every service binary shares.
//!
//! - [`grpc`]: a gRPC server with the health service and server reflection, that
//!   reports NOT_SERVING and drains in-flight calls before it stops.
//! - [`logging`]: `tracing` output, human or JSON.
//! - [`metrics`]: Prometheus on `/metrics`, and gRPC calls counted and timed.
//! - [`request`]: the command context a gRPC request carries.
//! - [`signal`]: SIGTERM or Ctrl-C as a future.

pub mod grpc;
pub mod logging;
pub mod metrics;
pub mod request;
pub mod signal;
