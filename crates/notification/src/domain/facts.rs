//! What notification remembers of other services' repair orders, to know whom a
//! later event concerns (stream `order-<id>`): learnt from `RepairOrderOpened`.

use aftersales_eventstore::{Decider, DomainEvent};
use serde::{Deserialize, Serialize};

use super::DomainError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub customer_id: String,
    pub walk_in: bool,
    /// Masked for messages: the last four characters of the IMEI or serial.
    pub device: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Learn(OrderFacts),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    OrderLearnt(OrderFacts),
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::OrderLearnt(_) => "OrderLearnt",
        }
    }
}

/// The decider: the first facts stay.
#[derive(Debug, Clone, Copy)]
pub struct Order;

impl Decider for Order {
    type Command = Command;
    type Event = Event;
    type State = Option<OrderFacts>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Command::Learn(facts) = command;
        if state.is_some() {
            return Ok(vec![]);
        }
        Ok(vec![Event::OrderLearnt(facts.clone())])
    }

    fn evolve(_: Self::State, event: &Event) -> Self::State {
        let Event::OrderLearnt(facts) = event;
        Some(facts.clone())
    }
}
