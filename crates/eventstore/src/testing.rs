//! Given/when/then for deciders: given these events happened, when this command
//! arrives, then these events (or this refusal). Pure, so a domain test needs no
//! database.
//!
//! ```ignore
//! given::<Center>([Event::ServiceCenterUpserted { center: berlin() }])
//!     .when(Command::Upsert(berlin()))
//!     .then([]);
//! ```

use std::fmt::Debug;

use crate::Decider;

/// The history a decision is made on.
#[derive(Debug)]
pub struct Given<D: Decider> {
    state: D::State,
}

/// The state after `events`.
pub fn given<D: Decider>(events: impl IntoIterator<Item = D::Event>) -> Given<D> {
    let events: Vec<D::Event> = events.into_iter().collect();
    Given {
        state: D::fold(&events),
    }
}

/// A decision made, to be checked.
#[derive(Debug)]
pub struct When<D: Decider> {
    state: D::State,
    outcome: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> Given<D> {
    pub fn when(self, command: D::Command) -> When<D> {
        let outcome = D::decide(&self.state, &command);
        When {
            state: self.state,
            outcome,
        }
    }
}

impl<D: Decider> When<D>
where
    D::Event: PartialEq + Debug,
    D::Error: Debug,
{
    /// The command was accepted with exactly `expected`; returns the state after them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = D::Event>) -> D::State {
        let expected: Vec<D::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                assert_eq!(events, expected, "the events decided");
                events.iter().fold(self.state, D::evolve)
            }
            Err(error) => panic!("expected {expected:?}, the command was refused: {error:?}"),
        }
    }

    /// The command was refused, and `check` holds of the refusal.
    #[track_caller]
    pub fn then_refused(self, check: impl FnOnce(&D::Error) -> bool) {
        match self.outcome {
            Ok(events) => panic!("expected a refusal, the command decided {events:?}"),
            Err(error) => assert!(check(&error), "not the refusal expected: {error:?}"),
        }
    }
}

/// An event as the log hands it out: `event_type` at `version` of `stream`, with
/// an empty payload. For tests of what reads the log.
///
/// # Panics
/// When `stream` is not a valid stream name.
pub fn recorded(stream: &str, version: u64, event_type: &str) -> crate::RecordedEvent {
    crate::RecordedEvent {
        position: version,
        checkpoint: crate::Checkpoint {
            transaction: version,
            position: version,
        },
        stream_id: crate::StreamId::parse(stream).expect("a stream name"),
        stream_version: version,
        event_id: uuid::Uuid::now_v7(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: Vec::new(),
        metadata: crate::Metadata {
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
            traceparent: None,
            tracestate: None,
            actor: "system:test".into(),
            region: "test".into(),
            recorded_at: chrono::DateTime::UNIX_EPOCH,
        },
        hash: [0; 32],
        personal: crate::personal::Personal::None,
    }
}
