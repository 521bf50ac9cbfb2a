//! The parts service.
//!
//! - [`domain`]: pure rules: the catalog, price lists and stock with its reservations.
//! - [`app`] and [`api`]: the commands and queries, over gRPC.
//! - [`orders`]: accessory orders and replacements, paid through the provider (its
//!   webhook settles them) and shipped by logistics.
//! - [`projections`]: the stock levels read model fed from the log.
//! - [`integration`]: the public protobuf events the relay publishes.
//! - [`privacy`]: a customer's orders exported, and their address erased.
//! - [`reactions`]: what repair's events do to stock, and logistics' to orders.
//! - [`server`]: the running process.

pub mod api;
pub mod app;
pub mod domain;
pub mod integration;
pub mod orders;
pub mod privacy;
pub mod projections;
pub mod reactions;
pub mod server;
