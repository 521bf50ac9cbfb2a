//! Aggregates as pure deciders, and how their events are encoded in the log.
//!
//! A decider is `decide(&state, command) -> events | error` plus
//! `evolve(state, &event) -> state` from an initial state. Both are pure: no I/O and
//! no clock (time comes in the command), so domain tests need no database.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One aggregate's decision logic.
pub trait Decider {
    type Command;
    type Event: DomainEvent;
    type State: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
    type Error: std::error::Error + Send + Sync + 'static;

    /// Version of `State`'s serialized shape. Bump it when the shape changes, and
    /// snapshots taken with another version are ignored (the state is rebuilt from
    /// events).
    const STATE_VERSION: u32 = 1;

    fn initial_state() -> Self::State;

    fn decide(
        state: &Self::State,
        command: &Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The state after `events`, from the initial state.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::initial_state(), |state, event| {
                Self::evolve(state, event)
            })
    }
}

/// An event type stored as JSON in the log.
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync {
    /// The stored type name, e.g. `DeviceRegistered`.
    fn event_type(&self) -> &'static str;

    /// The current schema version of this event's type. Older stored versions are
    /// brought up to date by [`DomainEvent::upcasters`] before decoding.
    fn schema_version(&self) -> u32 {
        1
    }

    /// How stored events of older schema versions become this type. Every reader
    /// (the command handler, projections, the relay's translation, reactions) decodes
    /// through [`crate::RecordedEvent::decode`], which applies them.
    fn upcasters() -> &'static Upcasters
    where
        Self: Sized,
    {
        Upcasters::none()
    }

    /// Whose personal data this event carries, and where: sealed with that
    /// person's key when stored ([`crate::personal`]). `None`: nothing personal.
    fn personal(&self) -> Option<crate::PersonalData<'_>> {
        None
    }
}

/// Why a stored event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("event {event_type} v{schema_version} is not valid JSON for this version")]
    Decode {
        event_type: String,
        schema_version: u32,
        #[source]
        source: serde_json::Error,
    },
    #[error("event could not be encoded")]
    Encode(#[source] serde_json::Error),
    #[error("upcasting {event_type} from v{from} failed: {reason}")]
    Upcast {
        event_type: String,
        from: u32,
        reason: String,
    },
}

type UpcastFn = Box<dyn Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync>;

/// Rewrites of old event payloads into the current shape, applied when reading.
///
/// The log is never rewritten: the hash chain covers the stored bytes, and an
/// auditor must see what was written. Each upcaster lifts one type by one version.
#[derive(Default)]
pub struct Upcasters {
    /// By event type, then the version each step lifts from: looked up by the
    /// stored type without copying it.
    steps: HashMap<String, HashMap<u32, UpcastFn>>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self
            .steps
            .iter()
            .flat_map(|(event_type, steps)| steps.keys().map(move |from| (event_type, from)))
            .collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// No steps: every stored version decodes as it is.
    pub fn none() -> &'static Self {
        static NONE: LazyLock<Upcasters> = LazyLock::new(Upcasters::new);
        &NONE
    }

    /// Registers the step that turns `event_type` at version `from` into `from + 1`.
    pub fn register(
        mut self,
        event_type: &str,
        from: u32,
        step: impl Fn(serde_json::Value) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .entry(event_type.to_owned())
            .or_default()
            .insert(from, Box::new(step));
        self
    }

    /// Decodes a stored payload, upcasting it first as far as the steps go.
    pub fn decode<E: DomainEvent>(
        &self,
        event_type: &str,
        schema_version: u32,
        payload: &[u8],
    ) -> Result<E, CodecError> {
        let decode_error = |source| CodecError::Decode {
            event_type: event_type.to_owned(),
            schema_version,
            source,
        };
        let mut version = schema_version;
        let steps = self.steps.get(event_type);
        let mut step = steps.and_then(|steps| steps.get(&version));
        if step.is_none() {
            return serde_json::from_slice(payload).map_err(decode_error);
        }
        let mut value: serde_json::Value = serde_json::from_slice(payload).map_err(decode_error)?;
        while let Some(upcast) = step {
            value = upcast(value).map_err(|reason| CodecError::Upcast {
                event_type: event_type.to_owned(),
                from: version,
                reason,
            })?;
            version += 1;
            step = steps.and_then(|steps| steps.get(&version));
        }
        serde_json::from_value(value).map_err(decode_error)
    }
}

/// Serializes an event for the log: with personal data, the event with `[erased]`
/// in those fields, and what was there, to be sealed beside it.
pub fn encode<E: DomainEvent>(
    event: &E,
) -> Result<(Vec<u8>, Option<crate::personal::Unsealed>), CodecError> {
    let Some(personal) = event.personal() else {
        return Ok((serde_json::to_vec(event).map_err(CodecError::Encode)?, None));
    };
    let value = serde_json::to_value(event).map_err(CodecError::Encode)?;
    crate::personal::split(value, &personal).map_err(CodecError::Encode)
}
