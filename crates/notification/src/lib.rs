//! The notification service.
//!
//! - [`domain`]: pure rules: the catalog of messages, preferences, the plan
//!   (channels and quiet hours), notifications through their attempts, reminders.
//! - [`templates`]: messages rendered per kind and language (minijinja, strict).
//! - [`channels`]: email over SMTP (lettre), SMS and push over HTTP.
//! - [`app`] and [`api`]: the use cases, over gRPC.
//! - [`convert`]: between domain types and the protobuf contracts.
//! - [`reactions`]: what warranty, repair and logistics events make.
//! - [`dispatch`]: the sender of due notifications and the reminder sweep.
//! - [`projections`]: the inbox and the queues, fed from the log.
//! - [`mask`]: addresses as logs may show them.
//! - [`server`]: the running process.

pub mod api;
pub mod app;
pub mod channels;
pub mod convert;
pub mod dispatch;
pub mod domain;
pub mod mask;
pub mod privacy;
pub mod projections;
pub mod reactions;
pub mod server;
pub mod templates;
