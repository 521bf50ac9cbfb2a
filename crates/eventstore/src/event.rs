//! The records the store takes and gives back.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::InputError;

/// Longest stream id, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 200;
/// Longest event type name, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 100;
/// Longest free-text metadata field (actor, traceparent, tracestate, region), in bytes.
pub const MAX_METADATA_FIELD_LEN: usize = 512;

/// The id of one stream (one aggregate instance), e.g. `device-490154203237518`.
///
/// Printable ASCII without spaces, 1 to [`MAX_STREAM_ID_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

impl StreamId {
    pub fn parse(value: impl Into<String>) -> Result<Self, InputError> {
        let value = value.into();
        if value.is_empty() {
            return Err(InputError::new("stream_id", "must not be empty"));
        }
        if value.len() > MAX_STREAM_ID_LEN {
            return Err(InputError::new(
                "stream_id",
                format!(
                    "is {} bytes, at most {MAX_STREAM_ID_LEN} allowed",
                    value.len()
                ),
            ));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InputError::new(
                "stream_id",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the writer believes the stream's version is. Versions count events in a
/// stream from 1; an empty stream has version 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the version is. Concurrent appends are still never lost.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (0 means empty).
    Exact(u64),
}

impl ExpectedVersion {
    /// Wire encoding used by APIs: `-2` any, `-1` no stream, `n >= 0` exact.
    pub fn from_wire(value: i64) -> Result<Self, InputError> {
        match value {
            -2 => Ok(Self::Any),
            -1 => Ok(Self::NoStream),
            n if n >= 0 => Ok(Self::Exact(n.unsigned_abs())),
            n => Err(InputError::new(
                "expected_version",
                format!("{n} is not a version; use -2 (any), -1 (no stream) or n >= 0"),
            )),
        }
    }

    /// Whether a stream currently at `actual` satisfies this expectation.
    pub fn accepts(self, actual: u64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => actual == v,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// Who and what caused an event, carried with it for its whole life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Shared by everything that one customer or operator action set off.
    pub correlation_id: Uuid,
    /// The command or event that directly caused this one.
    pub causation_id: Option<Uuid>,
    /// W3C trace context.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// e.g. `customer:c-42`, `staff:tech-7`, `system:relay`.
    pub actor: String,
    /// The region whose service wrote the event.
    pub region: String,
    /// When the event was accepted; stored with microsecond precision.
    pub recorded_at: DateTime<Utc>,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique across the log; appending the same id again is a no-op.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// The serialized event (JSON by convention). Stored byte for byte, with the
    /// sealed box of `personal` added.
    pub payload: Vec<u8>,
    /// The event whole, when it carries personal data (`payload` then has
    /// `[erased]` in those fields): sealed into `payload` by the store on append.
    pub personal: Option<crate::personal::Unsealed>,
    pub metadata: Metadata,
}

/// Where a follower of the log has got to.
///
/// PostgreSQL orders the followed log by (transaction id, position): a transaction
/// that commits late keeps its lower position but is read after every transaction
/// that was already settled. SQLite has a single writer, so `transaction` is 0 and
/// the position alone orders the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Checkpoint {
    pub transaction: u64,
    pub position: u64,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Self = Self {
        transaction: 0,
        position: 0,
    };
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position in the service's log, unique and increasing in insert order.
    pub position: u64,
    /// Where a follower stands after delivering this event.
    pub checkpoint: Checkpoint,
    pub stream_id: StreamId,
    /// 1 for the first event of the stream.
    pub stream_version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Vec<u8>,
    pub metadata: Metadata,
    /// This event's link in its stream's hash chain.
    pub hash: [u8; 32],
    /// Its personal data as this reader could open it (the payload keeps it
    /// sealed).
    pub personal: crate::personal::Personal,
}

impl RecordedEvent {
    /// The event as today's code knows it: older schema versions are upcast first
    /// ([`crate::DomainEvent::upcasters`]). The one way every reader decodes.
    /// Opened personal data is in place; erased fields read as
    /// [`crate::personal::ERASED`].
    pub fn decode<E: crate::DomainEvent>(&self) -> Result<E, crate::CodecError> {
        let payload = match &self.personal {
            crate::personal::Personal::Open(opened) => &opened.payload,
            crate::personal::Personal::None
            | crate::personal::Personal::Unopened
            | crate::personal::Personal::Erased { .. } => &self.payload,
        };
        E::upcasters().decode(&self.event_type, self.schema_version, payload)
    }

    /// The key that opened this event's personal data: to seal the same
    /// person's data again (in a public event). `None` when it has none, or it
    /// is erased.
    pub fn personal_key(&self) -> Option<&std::sync::Arc<crate::personal::DataKey>> {
        match &self.personal {
            crate::personal::Personal::Open(opened) => Some(&opened.key),
            crate::personal::Personal::None
            | crate::personal::Personal::Unopened
            | crate::personal::Personal::Erased { .. } => None,
        }
    }
}

/// The result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's version after the append: its last event's version.
    pub stream_version: u64,
    /// Position of the first event written by this append.
    pub first_position: u64,
    /// Position of the last event written by this append.
    pub last_position: u64,
    /// True when every event was already stored: a retried append, written once.
    pub duplicate: bool,
}

/// A stream's latest event: what an external audit anchor records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamHead {
    pub version: u64,
    pub hash: [u8; 32],
}

/// A stored snapshot of an aggregate's state.
///
/// A snapshot is outside the hash chain, so it names the chain link it was
/// taken at and carries a seal over everything it says: loading refuses one
/// whose seal or link does not match, and folds the events instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub stream_id: StreamId,
    /// The stream version the state was folded up to.
    pub stream_version: u64,
    /// Version of the state's serialized shape; a mismatch means "rebuild from events".
    pub schema_version: u32,
    pub payload: Vec<u8>,
    pub taken_at: DateTime<Utc>,
    /// The hash-chain link of the event at `stream_version`.
    pub chain_hash: Vec<u8>,
    /// SHA-256 over the stream, version, shape, link and payload.
    pub seal: Vec<u8>,
}

impl Snapshot {
    /// A sealed snapshot of `payload`, taken at the event whose link is `chain_hash`.
    pub fn new(
        stream_id: StreamId,
        stream_version: u64,
        schema_version: u32,
        payload: Vec<u8>,
        taken_at: DateTime<Utc>,
        chain_hash: [u8; 32],
    ) -> Self {
        let mut snapshot = Self {
            stream_id,
            stream_version,
            schema_version,
            payload,
            taken_at,
            chain_hash: chain_hash.to_vec(),
            seal: Vec::new(),
        };
        snapshot.seal = snapshot.digest().to_vec();
        snapshot
    }

    /// What the seal must be.
    pub fn digest(&self) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"aftersales-snapshot-v1\0");
        let stream = self.stream_id.as_str().as_bytes();
        hasher.update((stream.len() as u64).to_be_bytes());
        hasher.update(stream);
        hasher.update(self.stream_version.to_be_bytes());
        hasher.update(self.schema_version.to_be_bytes());
        hasher.update((self.chain_hash.len() as u64).to_be_bytes());
        hasher.update(&self.chain_hash);
        hasher.update(&self.payload);
        hasher.finalize().into()
    }

    /// Whether it is as it was taken, and taken at the event `at` (the stream's
    /// event at its version, if there is one).
    pub fn matches(&self, at: Option<&RecordedEvent>) -> bool {
        self.seal == self.digest()
            && at.is_some_and(|e| {
                e.stream_version == self.stream_version && e.hash[..] == self.chain_hash[..]
            })
    }
}
