//! Running commands against a decider: load the stream, fold it, decide, append with
//! the expected version, and on a lost race try again with fresh state.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::decider::{CodecError, Decider, DomainEvent, encode};
use crate::error::StoreError;
use crate::event::{ExpectedVersion, Metadata, NewEvent, Snapshot, StreamId};
use crate::store::{EventStore, STREAM_PAGE};
use crate::transaction::StoreTransaction;

/// Who sends a command, when, and as part of what.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// Set by callers that may retry: the events of a command with the same id are
    /// written once, and a repeat returns [`Handled::duplicate`].
    pub command_id: Option<Uuid>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub actor: String,
    pub region: String,
    /// The time the command is decided at; deciders never read a clock.
    pub now: DateTime<Utc>,
    /// A digest of the request the command came from. With a `command_id`, the key
    /// is bound to this request: a retry of it finds the earlier result, another
    /// request under the same key is refused ([`StoreError::CommandIdReused`]).
    pub request_fingerprint: Option<[u8; 32]>,
}

impl CommandContext {
    /// A command the service gives itself (a sweep, a scheduled step): no
    /// idempotency key, a correlation of its own, `actor` such as `system:stall-sweep`.
    pub fn system(actor: impl Into<String>, region: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            command_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: actor.into(),
            region: region.into(),
            now,
            request_fingerprint: None,
        }
    }

    /// The id of a `kind` of object this command creates: derived from the command id
    /// when there is one, so a retried create makes the same object, not a second.
    pub fn derived_id(&self, kind: &[u8]) -> Uuid {
        self.command_id
            .map_or_else(Uuid::now_v7, |id| Uuid::new_v5(&id, kind))
    }

    /// The id of the `index`th event this command produces: derived from the command
    /// id when there is one, so a retried command reproduces it.
    pub fn event_id(&self, index: usize) -> Uuid {
        match self.command_id {
            Some(command_id) => Uuid::new_v5(&command_id, &(index as u64).to_be_bytes()),
            None => Uuid::now_v7(),
        }
    }

    fn new_events<E: DomainEvent>(&self, events: &[E]) -> Result<Vec<NewEvent>, CodecError> {
        let metadata = self.metadata();
        events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let (payload, personal) = encode(event)?;
                Ok(NewEvent {
                    event_id: self.event_id(index),
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload,
                    personal,
                    metadata: metadata.clone(),
                })
            })
            .collect()
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.correlation_id,
            causation_id: self.causation_id.or(self.command_id),
            traceparent: self.traceparent.clone(),
            tracestate: self.tracestate.clone(),
            actor: self.actor.clone(),
            region: self.region.clone(),
            recorded_at: self.now,
        }
    }
}

fn expected_after(version: u64) -> ExpectedVersion {
    match version {
        0 => ExpectedVersion::NoStream,
        v => ExpectedVersion::Exact(v),
    }
}

/// A stream's state and the version it was folded up to.
#[derive(Debug, Clone)]
pub struct Loaded<S> {
    pub state: S,
    /// 0 for a stream with no events.
    pub version: u64,
    /// Whether an event folded in carried personal data: such a state holds it
    /// opened, so it is never snapshotted (a snapshot is not sealed per person).
    pub personal: bool,
}

/// The result of a handled command.
#[derive(Debug, Clone)]
pub struct Handled<S, E> {
    /// The state after the command.
    pub state: S,
    pub version: u64,
    /// The events this command appended (empty for a no-op or a duplicate).
    pub events: Vec<E>,
    /// The command id was seen before; nothing was decided or written now.
    pub duplicate: bool,
}

/// Why a command was not carried out. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum HandleError<E: std::error::Error + 'static> {
    /// The decider refused the command.
    #[error(transparent)]
    Domain(E),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Other writers kept winning the race for this stream.
    #[error("stream {stream} kept changing; gave up after {attempts} attempts")]
    Contention { stream: StreamId, attempts: u32 },
}

impl<E> From<HandleError<E>> for aftersales_core::Error
where
    E: std::error::Error + Into<aftersales_core::Error> + 'static,
{
    fn from(error: HandleError<E>) -> Self {
        match error {
            HandleError::Domain(e) => e.into(),
            HandleError::Store(e) => e.into(),
            HandleError::Codec(e) => Self::internal("event codec").with_source(e),
            e @ HandleError::Contention { .. } => Self::conflict(format!("{e}; retry")),
        }
    }
}

/// The state each stream was left in by this handler's last command on it, so
/// the next command there decides without loading. Safe across processes: the
/// append expects the remembered version, and a stream another writer moved on
/// refuses it, whereupon the command loads afresh. A state holding personal data
/// is never kept.
struct RecentStates<S> {
    entries: Mutex<HashMap<StreamId, (S, u64)>>,
    capacity: usize,
}

impl<S: Clone> RecentStates<S> {
    fn get(&self, stream: &StreamId) -> Option<Loaded<S>> {
        let entries = self.entries.lock().ok()?;
        let (state, version) = entries.get(stream)?;
        Some(Loaded {
            state: state.clone(),
            version: *version,
            personal: false,
        })
    }

    fn put(&self, stream: &StreamId, state: S, version: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.capacity && !entries.contains_key(stream) {
                entries.clear();
            }
            entries.insert(stream.clone(), (state, version));
        }
    }

    fn forget(&self, stream: &StreamId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(stream);
        }
    }
}

/// How many streams a service's handler remembers the state of
/// ([`CommandHandler::with_recent_states`]).
pub const RECENT_STREAMS: usize = 4096;

/// How one decision on a loaded state ended.
enum Attempt<S, E> {
    Done(Handled<S, E>),
    /// The state was not the stream's latest: load it and decide again.
    Stale,
}

/// Handles commands for one kind of aggregate over one store.
pub struct CommandHandler<D: Decider, S> {
    store: S,
    max_attempts: u32,
    snapshot_every: Option<u64>,
    recent: Option<Arc<RecentStates<D::State>>>,
    decider: PhantomData<fn() -> D>,
}

impl<D: Decider, S: std::fmt::Debug> std::fmt::Debug for CommandHandler<D, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandler")
            .field("store", &self.store)
            .field("max_attempts", &self.max_attempts)
            .field("snapshot_every", &self.snapshot_every)
            .field("recent_states", &self.recent.as_ref().map(|r| r.capacity))
            .finish()
    }
}

impl<D: Decider, S: Clone> Clone for CommandHandler<D, S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            max_attempts: self.max_attempts,
            snapshot_every: self.snapshot_every,
            recent: self.recent.clone(),
            decider: PhantomData,
        }
    }
}

impl<D: Decider, S: EventStore> CommandHandler<D, S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            max_attempts: 5,
            snapshot_every: None,
            recent: None,
            decider: PhantomData,
        }
    }

    /// Remembers the state each command leaves its stream in (for at most
    /// `streams` streams; past that it starts afresh), so that the next command
    /// on the stream costs one insert: no read. Clones share what is remembered.
    pub fn with_recent_states(mut self, streams: usize) -> Self {
        self.recent = Some(Arc::new(RecentStates {
            entries: Mutex::new(HashMap::new()),
            capacity: streams.max(1),
        }));
        self
    }

    /// The version of `stream` this handler remembers the state of, if any
    /// ([`Self::with_recent_states`]).
    pub fn remembered_version(&self, stream: &StreamId) -> Option<u64> {
        Some(self.recent.as_ref()?.get(stream)?.version)
    }

    /// Attempts per command when other writers win the race (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Saves a snapshot whenever a stream crosses a multiple of `every` events.
    pub fn with_snapshots_every(mut self, every: u64) -> Self {
        self.snapshot_every = Some(every.max(1));
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Decides `command` on the current state of `stream` and appends the events.
    pub async fn handle(
        &self,
        stream: &StreamId,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        let started = std::time::Instant::now();
        let result = self.decide_and_append(stream, None, command, ctx).await;
        record_command::<D>(&result, started);
        result
    }

    /// Like [`Self::handle`], deciding first on `loaded`: the state of `stream`
    /// the caller has just read with [`Self::load`] (to check who may touch it,
    /// say), so that the command reads the stream no second time. It is trusted
    /// as a load made now: the append expects its version, and should the stream
    /// have moved on since, the command is decided again on the stream as stored.
    pub async fn handle_loaded(
        &self,
        stream: &StreamId,
        loaded: Loaded<D::State>,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        let started = std::time::Instant::now();
        let result = self
            .decide_and_append(stream, Some(loaded), command, ctx)
            .await;
        record_command::<D>(&result, started);
        result
    }

    async fn decide_and_append(
        &self,
        stream: &StreamId,
        mut loaded_now: Option<Loaded<D::State>>,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        if let (Some(command_id), Some(fingerprint)) = (ctx.command_id, &ctx.request_fingerprint) {
            let mut tx = self.store.begin().await?;
            tx.claim_command(command_id, fingerprint, stream, ctx.now)
                .await?;
            tx.commit().await?;
        }
        if ctx.command_id.is_some()
            && let Some(first) = self.store.event_by_id(ctx.event_id(0)).await?
        {
            if first.stream_id != *stream {
                return Err(StoreError::IdempotencyConflict {
                    event_id: first.event_id,
                }
                .into());
            }
            return self.already_handled(stream).await;
        }
        let recent = self.recent.as_ref().and_then(|r| r.get(stream));
        if let Some(remembered) = recent.filter(|_| loaded_now.is_none())
            && let Attempt::Done(handled) =
                self.attempt(stream, remembered, true, command, ctx).await?
        {
            return Ok(handled);
        }
        for _ in 0..self.max_attempts {
            let loaded = match loaded_now.take() {
                Some(loaded) => loaded,
                None => self.load(stream).await?,
            };
            match self.attempt(stream, loaded, false, command, ctx).await? {
                Attempt::Done(handled) => return Ok(handled),
                Attempt::Stale => tracing::debug!(
                    stream = aftersales_core::types::masked_stream_id(stream.as_str()),
                    "lost an append race, deciding again"
                ),
            }
        }
        Err(HandleError::Contention {
            stream: stream.clone(),
            attempts: self.max_attempts,
        })
    }

    /// Decides `command` on `loaded` and appends what it decides. A state
    /// `remembered` from an earlier command is only trusted by the append: a
    /// refusal or a no-op decided on it is checked on the stream as stored.
    async fn attempt(
        &self,
        stream: &StreamId,
        loaded: Loaded<D::State>,
        remembered: bool,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Attempt<D::State, D::Event>, HandleError<D::Error>> {
        let events = match D::decide(&loaded.state, command) {
            Ok(events) if !events.is_empty() => events,
            Ok(_) | Err(_) if remembered => return Ok(Attempt::Stale),
            Ok(events) => {
                return Ok(Attempt::Done(Handled {
                    state: loaded.state,
                    version: loaded.version,
                    events,
                    duplicate: false,
                }));
            }
            Err(refused) => return Err(HandleError::Domain(refused)),
        };
        let new_events = ctx.new_events(&events)?;
        let expected = expected_after(loaded.version);
        match self.store.append(stream, expected, new_events).await {
            // A concurrent run of the same command got there first.
            Ok(outcome) if outcome.duplicate => {
                self.already_handled(stream).await.map(Attempt::Done)
            }
            Ok(outcome) => {
                let personal = loaded.personal || events.iter().any(|e| e.personal().is_some());
                let state = events.iter().fold(loaded.state, D::evolve);
                if !personal {
                    self.maybe_snapshot(
                        stream,
                        &state,
                        loaded.version,
                        outcome.stream_version,
                        ctx.now,
                    )
                    .await;
                }
                if let Some(recent) = &self.recent {
                    if personal {
                        recent.forget(stream);
                    } else {
                        recent.put(stream, state.clone(), outcome.stream_version);
                    }
                }
                Ok(Attempt::Done(Handled {
                    state,
                    version: outcome.stream_version,
                    events,
                    duplicate: false,
                }))
            }
            Err(StoreError::WrongExpectedVersion { .. }) => {
                if let Some(recent) = &self.recent {
                    recent.forget(stream);
                }
                Ok(Attempt::Stale)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Like [`Self::handle`], but appends inside `tx`, so the events commit with
    /// the caller's other writes (a reaction's inbox record, for one).
    ///
    /// State is what `tx` sees (see [`Self::load_in`]), so two commands on one
    /// stream in one transaction build on each other. A lost race is not retried
    /// here: the caller rolls back and runs the whole unit again.
    pub async fn handle_in(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        let started = std::time::Instant::now();
        let result = self.decide_and_append_in(tx, stream, command, ctx).await;
        record_command::<D>(&result, started);
        result
    }

    /// Like [`Self::handle_in`], for a stream named afresh (its id derived from
    /// something handled once, such as the event a reaction answers): the command
    /// is decided on the empty state without reading the stream. If the stream
    /// exists after all, its first version is taken, the append says so and
    /// changes nothing, and the command is handled as [`Self::handle_in`] would.
    pub async fn handle_new_in(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        if ctx.request_fingerprint.is_none() {
            let started = std::time::Instant::now();
            if let Some(result) = self
                .append_new_in(tx, stream, command, ctx)
                .await
                .transpose()
            {
                record_command::<D>(&result, started);
                return result;
            }
        }
        self.handle_in(tx, stream, command, ctx).await
    }

    /// [`Self::handle_new_in`]'s append; `None` if the command appends nothing
    /// to an empty stream, or the stream was there already.
    async fn append_new_in(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Option<Handled<D::State, D::Event>>, HandleError<D::Error>> {
        let events = match D::decide(&D::initial_state(), command) {
            Ok(events) if !events.is_empty() => events,
            _ => return Ok(None),
        };
        let new_events = ctx.new_events(&events)?;
        let outcome = match tx
            .append(stream, ExpectedVersion::NoStream, new_events)
            .await
        {
            Ok(outcome) if !outcome.duplicate => outcome,
            Ok(_) | Err(StoreError::WrongExpectedVersion { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let personal = events.iter().any(|e| e.personal().is_some());
        let state = events.iter().fold(D::initial_state(), D::evolve);
        self.remember_once_committed(tx, stream, &state, outcome.stream_version, personal);
        Ok(Some(Handled {
            state,
            version: outcome.stream_version,
            events,
            duplicate: false,
        }))
    }

    /// Remembers `state` at `version` of `stream` once `tx` commits, as a
    /// command outside a transaction does at once; a personal state never.
    fn remember_once_committed(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        state: &D::State,
        version: u64,
        personal: bool,
    ) {
        if let Some(recent) = self.recent.as_ref().filter(|_| !personal) {
            let (recent, stream, state) = (recent.clone(), stream.clone(), state.clone());
            tx.after_commit(move || recent.put(&stream, state, version));
        }
    }

    async fn decide_and_append_in(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        command: &D::Command,
        ctx: &CommandContext,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        // What this transaction appends is not known to be committed, and it
        // makes a remembered state of the stream outdated: taken, not kept.
        let remembered = self.recent.as_ref().and_then(|recent| {
            let remembered = recent.get(stream);
            recent.forget(stream);
            remembered
        });
        if let (Some(command_id), Some(fingerprint)) = (ctx.command_id, &ctx.request_fingerprint) {
            tx.claim_command(command_id, fingerprint, stream, ctx.now)
                .await?;
        }
        let loaded = self.load_in_from(tx, stream, remembered).await?;
        let decided = D::decide(&loaded.state, command);
        // Whether the command ran before. An empty stream holds none of its
        // events, and if another stream does, appending them finds their ids
        // taken: looked up first only when there is no such append.
        let look_up = ctx.command_id.is_some()
            && (loaded.version > 0 || !matches!(&decided, Ok(events) if !events.is_empty()));
        if look_up && let Some(first) = tx.event_by_id(ctx.event_id(0)).await? {
            if first.stream_id != *stream {
                return Err(StoreError::IdempotencyConflict {
                    event_id: first.event_id,
                }
                .into());
            }
            // As it is now, with what that first run appended.
            let loaded = self.load_in(tx, stream).await?;
            return Ok(Handled {
                state: loaded.state,
                version: loaded.version,
                events: Vec::new(),
                duplicate: true,
            });
        }
        let events = decided.map_err(HandleError::Domain)?;
        if events.is_empty() {
            return Ok(Handled {
                state: loaded.state,
                version: loaded.version,
                events,
                duplicate: false,
            });
        }
        let new_events = ctx.new_events(&events)?;
        let outcome = tx
            .append(stream, expected_after(loaded.version), new_events)
            .await?;
        if outcome.duplicate {
            return self.already_handled(stream).await;
        }
        let personal = loaded.personal || events.iter().any(|e| e.personal().is_some());
        let state = events.iter().fold(loaded.state, D::evolve);
        self.remember_once_committed(tx, stream, &state, outcome.stream_version, personal);
        Ok(Handled {
            state,
            version: outcome.stream_version,
            events,
            duplicate: false,
        })
    }

    /// The answer to a command whose events are stored already: the current state.
    async fn already_handled(
        &self,
        stream: &StreamId,
    ) -> Result<Handled<D::State, D::Event>, HandleError<D::Error>> {
        let loaded = self.load(stream).await?;
        Ok(Handled {
            state: loaded.state,
            version: loaded.version,
            events: Vec::new(),
            duplicate: true,
        })
    }

    /// A stream's state before its first event.
    fn empty() -> Loaded<D::State> {
        Loaded {
            state: D::initial_state(),
            version: 0,
            personal: false,
        }
    }

    /// Events read first when snapshots are taken `every` so many: a stream
    /// shorter than that has no snapshot and is read whole in one query.
    fn first_read(every: u64) -> usize {
        usize::try_from(every)
            .unwrap_or(STREAM_PAGE)
            .min(STREAM_PAGE)
    }

    /// The current state of `stream`: from the state this handler remembers of
    /// it, or its newest usable snapshot, on.
    pub async fn load(&self, stream: &StreamId) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        if let Some(remembered) = self.recent.as_ref().and_then(|r| r.get(stream)) {
            // Remembered once committed, so the stream holds it: only what came after is read.
            return self.fold_from(stream, remembered, None).await;
        }
        let mut loaded = Self::empty();
        if let Some(every) = self.snapshot_every {
            // A stream shorter than one snapshot interval has no snapshot: read it
            // whole in one query instead of asking for a snapshot first.
            let limit = Self::first_read(every);
            let head = self.store.read_stream(stream, 1, limit).await?;
            if head.len() < limit {
                self.fold_page(&mut loaded, head, None)?;
                return Ok(loaded);
            }
        }
        if self.snapshot_every.is_some()
            && let Some(snapshot) = self.store.load_snapshot(stream).await?
            && snapshot.schema_version == D::STATE_VERSION
        {
            // Read from the snapshot's own event on: its chain link is the one
            // the snapshot names, or the snapshot is of some other history.
            let page = self
                .store
                .read_stream(stream, snapshot.stream_version, STREAM_PAGE)
                .await?;
            let full = page.len() == STREAM_PAGE;
            if !snapshot.matches(page.first()) {
                tracing::warn!(
                    stream = aftersales_core::types::masked_stream_id(stream.as_str()),
                    version = snapshot.stream_version,
                    "snapshot refused: its seal or its chain link does not match; folding the events"
                );
            } else {
                match serde_json::from_slice(&snapshot.payload) {
                    Ok(state) => {
                        let mut from_snapshot = Loaded {
                            state,
                            version: snapshot.stream_version,
                            personal: false,
                        };
                        self.fold_page(
                            &mut from_snapshot,
                            page.into_iter().skip(1).collect(),
                            None,
                        )?;
                        return if full {
                            self.fold_from(stream, from_snapshot, None).await
                        } else {
                            Ok(from_snapshot)
                        };
                    }
                    Err(error) => {
                        tracing::warn!(stream = aftersales_core::types::masked_stream_id(stream.as_str()), %error, "unreadable snapshot ignored");
                    }
                }
            }
        }
        self.fold_from(stream, loaded, None).await
    }

    /// Checks the stream's snapshot against its events: `Some(version)` when
    /// the state folded from the events up to the snapshot's version is not the
    /// snapshot (edited, or taken of a history that has changed since). A
    /// snapshot of another state shape is not checked: loading ignores it.
    pub async fn verify_snapshot(
        &self,
        stream: &StreamId,
    ) -> Result<Option<u64>, HandleError<D::Error>> {
        let Some(snapshot) = self.store.load_snapshot(stream).await? else {
            return Ok(None);
        };
        if snapshot.schema_version != D::STATE_VERSION {
            return Ok(None);
        }
        let at = self
            .store
            .read_stream(stream, snapshot.stream_version, 1)
            .await?;
        if !snapshot.matches(at.first()) {
            return Ok(Some(snapshot.stream_version));
        }
        let mut loaded = Self::empty();
        while loaded.version < snapshot.stream_version {
            let left = usize::try_from(snapshot.stream_version - loaded.version)
                .unwrap_or(STREAM_PAGE)
                .min(STREAM_PAGE);
            let page = self
                .store
                .read_stream(stream, loaded.version + 1, left)
                .await?;
            if page.is_empty() {
                break;
            }
            self.fold_page(&mut loaded, page, None)?;
        }
        let stored: Option<serde_json::Value> = serde_json::from_slice(&snapshot.payload).ok();
        let folded = serde_json::to_value(&loaded.state).ok();
        let agrees =
            loaded.version == snapshot.stream_version && stored.is_some() && stored == folded;
        Ok((!agrees).then_some(snapshot.stream_version))
    }

    /// The state of `stream` as `tx` sees it, its own uncommitted appends
    /// included. Earlier handlers in one batch see each other.
    ///
    /// A state this handler remembers ([`Self::with_recent_states`]) was
    /// committed, so only the events after it are read, through the
    /// transaction. Otherwise a stream shorter than one snapshot interval (most
    /// that a reaction touches) is read whole through the transaction, in one
    /// query, and a longer one starts from its committed snapshot, the rest
    /// read through the transaction.
    pub async fn load_in(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
    ) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        let remembered = self.recent.as_ref().and_then(|recent| recent.get(stream));
        self.load_in_from(tx, stream, remembered).await
    }

    /// [`Self::load_in`] from `remembered`, a committed state of `stream`.
    async fn load_in_from(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        remembered: Option<Loaded<D::State>>,
    ) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        if let Some(remembered) = remembered {
            return self.fold_rest_in(tx, stream, remembered).await;
        }
        let mut loaded = Self::empty();
        let limit = self.snapshot_every.map_or(STREAM_PAGE, Self::first_read);
        let head = tx.read_stream(stream, 1, limit).await?;
        if head.len() < limit {
            self.fold_page(&mut loaded, head, None)?;
            return Ok(loaded);
        }
        if self.snapshot_every.is_some() {
            loaded = self.load(stream).await?;
        } else {
            self.fold_page(&mut loaded, head, None)?;
        }
        self.fold_rest_in(tx, stream, loaded).await
    }

    /// Folds into `loaded` the events of `stream` after it, read through `tx`.
    async fn fold_rest_in(
        &self,
        tx: &mut StoreTransaction,
        stream: &StreamId,
        mut loaded: Loaded<D::State>,
    ) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        loop {
            let page = tx
                .read_stream(stream, loaded.version + 1, STREAM_PAGE)
                .await?;
            let full = page.len() == STREAM_PAGE;
            self.fold_page(&mut loaded, page, None)?;
            if !full {
                return Ok(loaded);
            }
        }
    }

    /// The state of `stream` as it was at `as_of`: only events recorded by then.
    pub async fn load_as_of(
        &self,
        stream: &StreamId,
        as_of: DateTime<Utc>,
    ) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        self.fold_from(stream, Self::empty(), Some(as_of)).await
    }

    async fn fold_from(
        &self,
        stream: &StreamId,
        mut loaded: Loaded<D::State>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Loaded<D::State>, HandleError<D::Error>> {
        loop {
            let page = self
                .store
                .read_stream(stream, loaded.version + 1, STREAM_PAGE)
                .await?;
            let full = page.len() == STREAM_PAGE;
            let reached_as_of = self.fold_page(&mut loaded, page, as_of)?;
            if !full || reached_as_of {
                return Ok(loaded);
            }
        }
    }

    /// Folds `page` onto `loaded`, stopping before the first event recorded after
    /// `as_of`; `true` if it stopped there.
    fn fold_page(
        &self,
        loaded: &mut Loaded<D::State>,
        page: Vec<crate::event::RecordedEvent>,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<bool, HandleError<D::Error>> {
        for recorded in page {
            if as_of.is_some_and(|t| recorded.metadata.recorded_at > t) {
                return Ok(true);
            }
            let event: D::Event = recorded.decode()?;
            loaded.personal |= !matches!(recorded.personal, crate::personal::Personal::None);
            let state = std::mem::replace(&mut loaded.state, D::initial_state());
            loaded.state = D::evolve(state, &event);
            loaded.version = recorded.stream_version;
        }
        Ok(false)
    }

    async fn maybe_snapshot(
        &self,
        stream: &StreamId,
        state: &D::State,
        before: u64,
        after: u64,
        now: DateTime<Utc>,
    ) {
        let Some(every) = self.snapshot_every else {
            return;
        };
        if before / every == after / every {
            return;
        }
        let payload = match serde_json::to_vec(state) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(stream = aftersales_core::types::masked_stream_id(stream.as_str()), %error, "state not snapshotted");
                return;
            }
        };
        // Sealed to the link of the event it was taken at; if another append
        // came first, the next interval takes one.
        let head = match self.store.stream_head(stream).await {
            Ok(Some(head)) if head.version == after => head,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(stream = aftersales_core::types::masked_stream_id(stream.as_str()), error = %error, "snapshot not taken");
                return;
            }
        };
        let snapshot = Snapshot::new(
            stream.clone(),
            after,
            D::STATE_VERSION,
            payload,
            now,
            head.hash,
        );
        // A snapshot only saves work; the command has already succeeded.
        if let Err(error) = self.store.save_snapshot(&snapshot).await {
            tracing::warn!(stream = aftersales_core::types::masked_stream_id(stream.as_str()), error = %error, "snapshot not saved");
        }
    }
}

/// What [`CommandHandler::handle`] answers.
type HandleResult<D> = Result<
    Handled<<D as Decider>::State, <D as Decider>::Event>,
    HandleError<<D as Decider>::Error>,
>;

/// `aftersales_commands_total{aggregate,outcome}` and the command's duration.
fn record_command<D: Decider>(result: &HandleResult<D>, started: std::time::Instant) {
    let aggregate = std::any::type_name::<D>()
        .rsplit("::")
        .next()
        .unwrap_or_default();
    let outcome = match result {
        Ok(handled) if handled.duplicate => "duplicate",
        Ok(handled) if handled.events.is_empty() => "unchanged",
        Ok(_) => "applied",
        Err(HandleError::Domain(_)) => "rejected",
        Err(
            HandleError::Contention { .. }
            | HandleError::Store(StoreError::WrongExpectedVersion { .. }),
        ) => "conflict",
        Err(HandleError::Store(_) | HandleError::Codec(_)) => "error",
    };
    metrics::counter!("aftersales_commands_total", "aggregate" => aggregate, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("aftersales_command_duration_seconds", "aggregate" => aggregate)
        .record(started.elapsed().as_secs_f64());
}
