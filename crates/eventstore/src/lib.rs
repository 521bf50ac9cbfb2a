//! The event-sourcing core every Aftersales service stands on.
//!
//! - [`decider`]: aggregates as pure `decide`/`evolve` functions, and how their
//!   events are encoded and upcast.
//! - [`handler`]: load, fold, decide, append with the expected version, retry.
//! - [`store`]: the [`EventStore`] API; [`postgres`] and [`sqlite`] implement it and
//!   [`any`] picks one from a URL. Both share the append algorithm in `append`.
//! - [`chain`]: the per-stream hash chain and its verification.
//! - [`follow`]: following the log live from a checkpoint, never skipping an event.
//! - [`live`]: live watchers of one key each, fed by one follower per process.
//! - [`cache`]: recently read states in memory, dropped as the log moves on.
//! - [`transaction`]: appends that commit together with a checkpoint or a reader's
//!   own rows.
//! - [`projection`]: read models fed from the log, checkpointed in the same
//!   transaction, rebuildable.
//! - [`personal`] and [`keyring`]: personal data sealed per person inside events,
//!   erased by destroying the person's key.
//! - [`testing`]: given/when/then for deciders.

pub mod any;
mod append;
pub mod aws_kms;
pub mod cache;
pub mod chain;
pub mod decider;
pub mod error;
pub mod event;
pub mod follow;
mod group;
pub mod handler;
pub mod keyring;
pub mod live;
pub mod personal;
pub mod postgres;
pub mod projection;
pub mod sqlite;
pub mod store;
mod tail;
pub mod testing;
pub mod transaction;

pub use any::AnyEventStore;
pub use aws_kms::{AwsCredentials, AwsKms};
pub use cache::StateCache;
pub use chain::{ChainBreak, VerifyReport, verify_events};
pub use decider::{CodecError, Decider, DomainEvent, Upcasters};
pub use error::{InputError, StoreError};
pub use event::{
    AppendOutcome, Checkpoint, ExpectedVersion, Metadata, NewEvent, RecordedEvent, Snapshot,
    StreamHead, StreamId,
};
pub use follow::{FollowOptions, IdleWait, follow};
pub use handler::{CommandContext, CommandHandler, HandleError, Handled, Loaded, RECENT_STREAMS};
pub use keyring::{Keyring, Kms, LocalKms};
pub use live::{Live, LiveFeed, Watcher};
pub use personal::{KeyError, Personal, PersonalData};
pub use postgres::PgEventStore;
pub use projection::{AnyProjection, Projection, Projections};
pub use sqlite::SqliteEventStore;
pub use store::{EventStore, Limits, read_whole_stream, shared_migrator};
pub use transaction::{StoreTransaction, TransactionConnection};
