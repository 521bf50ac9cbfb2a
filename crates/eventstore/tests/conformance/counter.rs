//! A small aggregate to drive the command handler in tests.

use std::sync::LazyLock;

use aftersales_eventstore::{Decider, DomainEvent, Upcasters};
use serde::{Deserialize, Serialize};

pub struct Counter;

#[derive(Debug, Clone)]
pub enum Command {
    Add(u32),
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// Version 2 renamed v1's `n` to `amount`; see the upcaster test.
    Added {
        amount: u32,
    },
    Reset,
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Added { .. } => "Added",
            Self::Reset => "Reset",
        }
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::Added { .. } => 2,
            Self::Reset => 1,
        }
    }

    fn upcasters() -> &'static Upcasters {
        static STEPS: LazyLock<Upcasters> = LazyLock::new(|| {
            Upcasters::new().register("Added", 1, |mut value| {
                let n = value
                    .as_object_mut()
                    .and_then(|o| o.remove("n"))
                    .ok_or("v1 Added without n")?;
                value["amount"] = n;
                Ok(value)
            })
        });
        &STEPS
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub total: u64,
    pub additions: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("nothing to add")]
    ZeroAmount,
    #[error("already at zero")]
    AlreadyZero,
}

impl Decider for Counter {
    type Command = Command;
    type Event = Event;
    type State = State;
    type Error = Error;

    fn initial_state() -> State {
        State::default()
    }

    fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
        match command {
            Command::Add(0) => Err(Error::ZeroAmount),
            Command::Add(amount) => Ok(vec![Event::Added { amount: *amount }]),
            Command::Reset if state.total == 0 => Err(Error::AlreadyZero),
            Command::Reset => Ok(vec![Event::Reset]),
        }
    }

    fn evolve(mut state: State, event: &Event) -> State {
        match event {
            Event::Added { amount } => {
                state.total += u64::from(*amount);
                state.additions += 1;
            }
            Event::Reset => state.total = 0,
        }
        state
    }
}
