//! The shared core of every service, with no I/O and no transport.
//!
//! - [`error`]: the kinds of failure, the one table that says what each means to a
//!   gRPC caller and to a consumer deciding whether to retry, and [`Error`], the error
//!   every use case returns.
//! - [`clock`]: where time comes from, so tests move it by hand instead of sleeping.
//! - [`types`]: IMEIs and device keys, countries, currencies and money, each parsed
//!   once and valid by construction.

pub mod clock;
pub mod error;
pub mod types;

pub use clock::{Clock, SharedClock, ShiftedClock, SystemClock};
pub use error::{Error, ErrorKind, FieldViolation, Retry};
