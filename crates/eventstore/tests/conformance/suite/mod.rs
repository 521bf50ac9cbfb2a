//! The tests every backend must pass. Each takes a fresh, empty backend.

mod append;
mod chain;
mod handler;
mod personal;
mod read_models;
mod shared_reads;
mod transaction;

pub use append::*;
pub use chain::*;
pub use handler::*;
pub use personal::*;
pub use read_models::*;
pub use shared_reads::*;
pub use transaction::*;
