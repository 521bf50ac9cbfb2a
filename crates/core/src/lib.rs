//! The shared core of every service, with no I/O and no transport.
//!
//! - [`error`]: the kinds of failure, the one table that says what each means to a
//!   gRPC caller and to a consumer deciding whether to retry, and [`Error`], the error
//!   every use case returns.
//! - [`clock`]: where time comes from, so tests move it by hand instead of sleeping.
//! - [`types`]: IMEIs and device keys, countries, currencies and money, object ids,
//!   each parsed
//!   once and valid by construction.
//! - [`shutdown`]: one trigger telling every long-running part of a service to stop.

pub mod address;
pub mod clock;
pub mod error;
pub mod shutdown;
pub mod types;

pub use clock::{Clock, SharedClock, ShiftedClock, SystemClock};
pub use error::{Error, ErrorKind, FieldViolation, Retry};
pub use shutdown::{Shutdown, ShutdownTrigger};
