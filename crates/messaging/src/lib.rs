//! Events between services.
//!
//! - [`relay`]: each service's event log is its outbox; the relay publishes it to
//!   the service's JetStream stream, in order, at least once, deduplicated by
//!   event id.
//! - [`consumer`]: the [`Handler`] contract and applying an event exactly once
//!   (inbox record and effects in one transaction).
//! - [`jetstream`]: consuming from JetStream with retries, progress acks and a
//!   dead-letter stream; [`dlq`] lists and replays dead letters.
//! - [`log`]: embedded mode, following the producer's log directly.
//! - [`provision`]: streams created or updated at start-up, durable by default.
//! - [`permissions`]: each service's NATS user may touch its own subjects only.
//! - [`trace`]: the producer's trace continued by the consumer.
//! - [`bus`]: all of it for one service: its stream, relay and consumers.
//! - [`testing`]: publishing as another service's relay would, for tests.

pub mod bus;
pub mod consumer;
pub mod dlq;
pub mod envelope;
pub mod error;
pub mod heads;
mod inbox;
pub mod jetstream;
pub mod log;
pub mod names;
pub mod permissions;
pub mod provision;
pub mod relay;
mod supervise;
pub mod testing;
pub mod trace;

pub use bus::Bus;
pub use consumer::{AnyHandler, Handler, Reaction, RetryPolicy, Subscription};
pub use dlq::{DeadLetter, DeadLetters};
pub use envelope::InboundEvent;
pub use error::{ConfigError, HandlerError, MessagingError};
pub use inbox::{StoredDeadLetter, open_dead_letters};
pub use jetstream::{ConsumerSettings, JetStreamConsumer};
pub use log::{LogConsumer, LogConsumerSettings};
pub use names::Names;
pub use provision::{
    ReplicaState, StreamSettings, connect, connect_trusting, ensure_dead_letter_stream,
    ensure_replica_stream, ensure_service_stream, replica_state, watch_replica,
};
pub use relay::{AsStored, Outbound, Relay, RelaySettings, Translate};
