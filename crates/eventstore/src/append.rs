//! The append algorithm both backends share.
//!
//! No explicit transaction and no stream lock: read the stream's head, chain the new
//! events onto it, and insert them all in one statement. The unique key on
//! (stream, version) is the optimistic lock: if another writer got there first the
//! insert fails as a whole and nothing is written. The unique key on the event id
//! makes a retried append a no-op.
//!
//! Each store remembers the heads it wrote last ([`HeadCache`]), so a process that
//! keeps appending to a stream skips the head read. A cached head is always a true
//! fact (events never change); it may only be stale as to being the *last* one, and
//! then the insert fails on the unique key and the head is read again.

use chrono::SubsecRound as _;
use uuid::Uuid;

use crate::chain::{Canonical, GENESIS};
use crate::error::StoreError;
use crate::event::{AppendOutcome, ExpectedVersion, NewEvent, RecordedEvent, StreamHead, StreamId};
use crate::store::{Limits, validate_batch};

/// How often an append with [`ExpectedVersion::Any`] re-reads the head after losing
/// a race before it gives up.
const ANY_VERSION_ATTEMPTS: u32 = 50;

/// A new event with its place in the stream settled.
#[derive(Debug, Clone)]
pub(crate) struct ChainedEvent {
    pub event: NewEvent,
    pub stream_version: u64,
    pub hash: [u8; 32],
}

/// Why an insert was refused.
#[derive(Debug)]
pub(crate) enum InsertError {
    /// Some event id is stored already.
    DuplicateEventId,
    /// Another writer took one of the versions.
    VersionTaken,
    Store(StoreError),
}

/// Most streams whose head a store remembers; past this the cache starts afresh.
const HEAD_CACHE_STREAMS: usize = 16_384;

/// The last head this process wrote, per stream.
#[derive(Debug, Default)]
pub(crate) struct HeadCache(std::sync::Mutex<std::collections::HashMap<StreamId, StreamHead>>);

impl HeadCache {
    fn get(&self, stream: &StreamId) -> Option<StreamHead> {
        self.0.lock().ok()?.get(stream).copied()
    }

    fn put(&self, stream: &StreamId, head: StreamHead) {
        if let Ok(mut heads) = self.0.lock() {
            if heads.len() >= HEAD_CACHE_STREAMS && !heads.contains_key(stream) {
                heads.clear();
            }
            heads.insert(stream.clone(), head);
        }
    }

    /// Remembers where a read of `stream` that reached its end found it: the
    /// last event read. A command that loads a stream and then appends to it
    /// then needs no second read for the head.
    pub(crate) fn saw(&self, stream: &StreamId, read: &[RecordedEvent], limit: usize) {
        if let Some(last) = read.last()
            && read.len() < limit
        {
            self.put(
                stream,
                StreamHead {
                    version: last.stream_version,
                    hash: last.hash,
                },
            );
        }
    }

    fn forget(&self, stream: &StreamId) {
        if let Ok(mut heads) = self.0.lock() {
            heads.remove(stream);
        }
    }
}

/// What a backend provides to the shared algorithm: a pool, or a caller's transaction.
pub(crate) trait AppendBackend {
    /// The heads this process wrote. `None` inside a caller's transaction: a head
    /// written there is not a fact until it commits, and it may roll back.
    fn head_cache(&self) -> Option<&HeadCache>;

    async fn head(&mut self, stream: &StreamId) -> Result<Option<StreamHead>, StoreError>;

    /// Inserts all rows atomically; returns their positions in order. A refused
    /// insert leaves a caller's transaction usable.
    async fn insert(
        &mut self,
        stream: &StreamId,
        rows: &[ChainedEvent],
    ) -> Result<Vec<u64>, InsertError>;

    async fn events_by_ids(&mut self, ids: &[Uuid]) -> Result<Vec<RecordedEvent>, StoreError>;
}

/// The positions an insert returned as (stream version, position) rows, in version
/// order (`RETURNING` does not promise the insert order).
pub(crate) fn positions_in_version_order<R>(rows: &[R]) -> Result<Vec<u64>, InsertError>
where
    R: sqlx::Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    let mut pairs = rows
        .iter()
        .map(|row| -> Result<(i64, u64), StoreError> {
            Ok((
                row.try_get("stream_version")?,
                crate::store::to_u64(row.try_get("position")?, "position")?,
            ))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(InsertError::Store)?;
    pairs.sort_unstable();
    Ok(pairs.into_iter().map(|(_, position)| position).collect())
}

/// Counts committed appends for `aftersales_events_appended_total`, by stream
/// category (the stream id up to its first `-`: `device`, `repair`, …).
pub(crate) fn record_appended(stream: &StreamId, outcome: &AppendOutcome) {
    if outcome.duplicate {
        return;
    }
    let category = stream
        .as_str()
        .split('-')
        .next()
        .unwrap_or_default()
        .to_owned();
    let events = outcome.last_position.saturating_sub(outcome.first_position) + 1;
    metrics::counter!("aftersales_events_appended_total", "category" => category).increment(events);
}

pub(crate) async fn append<B: AppendBackend>(
    backend: &mut B,
    limits: &Limits,
    stream: &StreamId,
    expected: ExpectedVersion,
    mut events: Vec<NewEvent>,
) -> Result<AppendOutcome, StoreError> {
    validate_batch(limits, &events)?;
    // Stored timestamps keep microseconds; hash what will be read back.
    for event in &mut events {
        event.metadata.recorded_at = event.metadata.recorded_at.trunc_subsecs(6);
    }
    let mut attempts = 0;
    let mut trust_cache = true;
    loop {
        attempts += 1;
        let cached = match backend.head_cache() {
            Some(cache) if trust_cache => cache.get(stream),
            _ => None,
        };
        let head = match cached {
            Some(head) => Some(head),
            // A new stream has no head to read; if it exists after all, its
            // version 1 is taken and the insert says so.
            None if expected == ExpectedVersion::NoStream => None,
            None => backend.head(stream).await?,
        };
        let actual = head.map_or(0, |h| h.version);
        if !expected.accepts(actual) {
            if cached.is_some() {
                // Another process may have appended since; judge by the real head.
                trust_cache = false;
                continue;
            }
            return duplicate_or_conflict(backend, stream, expected, actual, &events).await;
        }
        let rows = chain(stream, head, events);
        match backend.insert(stream, &rows).await {
            Ok(positions) => {
                let (Some(first), Some(last), Some(row)) =
                    (positions.first(), positions.last(), rows.last())
                else {
                    return Err(StoreError::CorruptRow("insert returned no rows".into()));
                };
                if let Some(cache) = backend.head_cache() {
                    cache.put(
                        stream,
                        StreamHead {
                            version: row.stream_version,
                            hash: row.hash,
                        },
                    );
                }
                return Ok(AppendOutcome {
                    stream_version: row.stream_version,
                    first_position: *first,
                    last_position: *last,
                    duplicate: false,
                });
            }
            Err(InsertError::Store(error)) => return Err(error),
            Err(InsertError::DuplicateEventId) => {
                events = rows.into_iter().map(|r| r.event).collect();
                return match already_appended(backend, stream, &events).await? {
                    Some(outcome) => Ok(outcome),
                    None => Err(StoreError::IdempotencyConflict {
                        event_id: events[0].event_id,
                    }),
                };
            }
            Err(InsertError::VersionTaken) => {
                if let Some(cache) = backend.head_cache() {
                    cache.forget(stream);
                }
                trust_cache = false;
                events = rows.into_iter().map(|r| r.event).collect();
                if expected != ExpectedVersion::Any || attempts >= ANY_VERSION_ATTEMPTS {
                    let actual = backend.head(stream).await?.map_or(0, |h| h.version);
                    return duplicate_or_conflict(backend, stream, expected, actual, &events).await;
                }
            }
        }
    }
}

fn chain(stream: &StreamId, head: Option<StreamHead>, events: Vec<NewEvent>) -> Vec<ChainedEvent> {
    let (mut version, mut previous) = head.map_or((0, GENESIS), |h| (h.version, h.hash));
    events
        .into_iter()
        .map(|event| {
            version += 1;
            let hash = Canonical {
                stream_id: stream.as_str(),
                stream_version: version,
                event_id: &event.event_id,
                event_type: &event.event_type,
                schema_version: event.schema_version,
                payload: &event.payload,
                metadata: &event.metadata,
            }
            .hash(&previous);
            previous = hash;
            ChainedEvent {
                event,
                stream_version: version,
                hash,
            }
        })
        .collect()
}

/// A refused version check is a retried append if the events are stored already,
/// and a conflict otherwise.
async fn duplicate_or_conflict<B: AppendBackend>(
    backend: &mut B,
    stream: &StreamId,
    expected: ExpectedVersion,
    actual: u64,
    events: &[NewEvent],
) -> Result<AppendOutcome, StoreError> {
    match already_appended(backend, stream, events).await? {
        Some(outcome) => Ok(outcome),
        None => Err(StoreError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual,
        }),
    }
}

/// If every event of the batch is stored already, as this batch in this stream, the
/// outcome of the earlier append; if none is, `None`; anything else is a conflict.
async fn already_appended<B: AppendBackend>(
    backend: &mut B,
    stream: &StreamId,
    events: &[NewEvent],
) -> Result<Option<AppendOutcome>, StoreError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let mut stored = backend.events_by_ids(&ids).await?;
    if stored.is_empty() {
        return Ok(None);
    }
    stored.sort_by_key(|e| e.stream_version);
    for event in events {
        let same = stored
            .iter()
            .find(|s| s.event_id == event.event_id)
            .is_some_and(|s| {
                s.stream_id == *stream
                    && s.event_type == event.event_type
                    && s.schema_version == event.schema_version
                    && s.payload == event.payload
            });
        if !same {
            return Err(StoreError::IdempotencyConflict {
                event_id: event.event_id,
            });
        }
    }
    let (Some(first), Some(last)) = (stored.first(), stored.last()) else {
        return Ok(None);
    };
    Ok(Some(AppendOutcome {
        stream_version: last.stream_version,
        first_position: first.position,
        last_position: last.position,
        duplicate: true,
    }))
}
