//! The per-stream hash chain that makes a history tamper-evident.
//!
//! `hash(n) = SHA-256(hash(n-1) || canonical(event n))`, with 32 zero bytes before the
//! first event. The canonical bytes are a length-prefixed encoding of everything that
//! describes the event except its global position (which depends on other streams):
//! editing any field, removing an event or swapping two changes some hash from that
//! point on. Removing the *last* events leaves a shorter valid chain, so auditors
//! anchor the head ([`crate::StreamHead`]) outside the database and verify against it.

use sha2::{Digest as _, Sha256};

use crate::event::{RecordedEvent, StreamHead, StreamId};

/// The link before a stream's first event.
pub const GENESIS: [u8; 32] = [0; 32];

const DOMAIN_TAG: &[u8] = b"aftersales.event.v1";

/// What goes into an event's hash, borrowed from either a new or a stored event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Canonical<'a> {
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_id: &'a uuid::Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    pub payload: &'a [u8],
    pub metadata: &'a crate::Metadata,
}

impl<'a> Canonical<'a> {
    pub(crate) fn of(event: &'a RecordedEvent) -> Self {
        Self {
            stream_id: event.stream_id.as_str(),
            stream_version: event.stream_version,
            event_id: &event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            payload: &event.payload,
            metadata: &event.metadata,
        }
    }

    pub(crate) fn hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(DOMAIN_TAG);
        let field = |hasher: &mut Sha256, bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        let optional = |hasher: &mut Sha256, value: Option<&[u8]>| match value {
            None => hasher.update([0u8]),
            Some(bytes) => {
                hasher.update([1u8]);
                field(hasher, bytes);
            }
        };
        let m = self.metadata;
        field(&mut hasher, self.stream_id.as_bytes());
        hasher.update(self.stream_version.to_be_bytes());
        hasher.update(self.event_id.as_bytes());
        field(&mut hasher, self.event_type.as_bytes());
        hasher.update(self.schema_version.to_be_bytes());
        field(&mut hasher, self.payload);
        hasher.update(m.correlation_id.as_bytes());
        optional(
            &mut hasher,
            m.causation_id.as_ref().map(|id| &id.as_bytes()[..]),
        );
        optional(&mut hasher, m.traceparent.as_deref().map(str::as_bytes));
        optional(&mut hasher, m.tracestate.as_deref().map(str::as_bytes));
        field(&mut hasher, m.actor.as_bytes());
        field(&mut hasher, m.region.as_bytes());
        hasher.update(m.recorded_at.timestamp_micros().to_be_bytes());
        hasher.finalize().into()
    }
}

/// `event`'s link after `previous` (the link before it, [`GENESIS`] for a
/// stream's first event): what an auditor's own tool recomputes.
pub fn link(previous: &[u8; 32], event: &RecordedEvent) -> [u8; 32] {
    Canonical::of(event).hash(previous)
}

/// Where and how a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The event at `version` is not the one the chain committed to: it or an
    /// earlier event was edited, or events were reordered.
    HashMismatch { version: u64, position: u64 },
    /// The stream jumps from `expected` to `found`: events were removed.
    Gap { expected: u64, found: u64 },
    /// The stream is shorter than, or ends differently from, the trusted head.
    HeadMismatch {
        expected: StreamHead,
        found: Option<StreamHead>,
    },
}

/// The outcome of verifying one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub stream_id: StreamId,
    pub events_checked: u64,
    /// The head the chain ends in, if the stream has events.
    pub head: Option<StreamHead>,
    /// The first break, in stream order; `None` means intact.
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Checks a stream's events, read in stream-version order, against their hashes and,
/// if given, against a head recorded elsewhere.
pub fn verify_events(
    stream_id: &StreamId,
    events: &[RecordedEvent],
    trusted_head: Option<StreamHead>,
) -> VerifyReport {
    let mut previous = GENESIS;
    let mut report = VerifyReport {
        stream_id: stream_id.clone(),
        events_checked: 0,
        head: None,
        first_break: None,
    };
    for (expected_version, event) in (1..).zip(events) {
        report.events_checked += 1;
        if event.stream_version != expected_version {
            report.first_break = Some(ChainBreak::Gap {
                expected: expected_version,
                found: event.stream_version,
            });
            return report;
        }
        let hash = Canonical::of(event).hash(&previous);
        if hash != event.hash {
            report.first_break = Some(ChainBreak::HashMismatch {
                version: event.stream_version,
                position: event.position,
            });
            return report;
        }
        previous = hash;
        report.head = Some(StreamHead {
            version: event.stream_version,
            hash,
        });
    }
    if let Some(expected) = trusted_head {
        // A longer stream is fine: the anchor was taken earlier. The anchored event
        // must still be there, unchanged.
        let anchored = events
            .iter()
            .find(|e| e.stream_version == expected.version)
            .map(|e| StreamHead {
                version: e.stream_version,
                hash: e.hash,
            });
        if anchored != Some(expected) {
            report.first_break = Some(ChainBreak::HeadMismatch {
                expected,
                found: report.head,
            });
        }
    }
    report
}
