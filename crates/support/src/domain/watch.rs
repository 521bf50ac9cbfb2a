//! What the support desk keeps of one repair order, from repair's and
//! logistics' public events, to open a case on the customer's behalf when the
//! repair goes wrong: QC failed twice, or a parcel stalled. One stream per order
//! (`watch-<order id>`), so it rebuilds from support's own log like the rest.

use aftersales_eventstore::{Decider, DomainEvent};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// QC failures after which the customer is owed a call.
pub const QC_FAILURES_FOR_A_CASE: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The order was opened: whose it is and where it is repaired.
    Note {
        order_id: String,
        customer_id: String,
        country: String,
        device_imei: Option<String>,
    },
    QcFailed,
    /// The order is done with: nothing more will be opened for it.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    RepairNoted {
        order_id: String,
        customer_id: String,
        country: String,
        device_imei: Option<String>,
    },
    QcFailureNoted {
        failures: u32,
    },
    RepairDone,
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RepairNoted { .. } => "RepairNoted",
            Self::QcFailureNoted { .. } => "QcFailureNoted",
            Self::RepairDone => "RepairDone",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchState {
    pub order_id: String,
    pub customer_id: String,
    pub country: String,
    pub device_imei: Option<String>,
    pub qc_failures: u32,
    pub done: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct RepairWatch;

impl Decider for RepairWatch {
    type Command = Command;
    type Event = Event;
    type State = Option<WatchState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (
                None,
                Command::Note {
                    order_id,
                    customer_id,
                    country,
                    device_imei,
                },
            ) => Ok(vec![Event::RepairNoted {
                order_id: order_id.clone(),
                customer_id: customer_id.clone(),
                country: country.clone(),
                device_imei: device_imei.clone(),
            }]),
            (Some(_), Command::Note { .. }) => Ok(vec![]),
            (None, Command::QcFailed | Command::Close) => {
                Err(DomainError::NotFound("the repair order".into()))
            }
            (Some(watch), Command::QcFailed) if !watch.done => Ok(vec![Event::QcFailureNoted {
                failures: watch.qc_failures + 1,
            }]),
            (Some(watch), Command::Close) if !watch.done => Ok(vec![Event::RepairDone]),
            (Some(_), Command::QcFailed | Command::Close) => Ok(vec![]),
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        match (state, event) {
            (
                _,
                Event::RepairNoted {
                    order_id,
                    customer_id,
                    country,
                    device_imei,
                },
            ) => Some(WatchState {
                order_id: order_id.clone(),
                customer_id: customer_id.clone(),
                country: country.clone(),
                device_imei: device_imei.clone(),
                qc_failures: 0,
                done: false,
            }),
            (Some(mut watch), Event::QcFailureNoted { failures }) => {
                watch.qc_failures = *failures;
                Some(watch)
            }
            (Some(mut watch), Event::RepairDone) => {
                watch.done = true;
                Some(watch)
            }
            (None, Event::QcFailureNoted { .. } | Event::RepairDone) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: Option<WatchState>, command: &Command) -> (Option<WatchState>, Vec<Event>) {
        let events = RepairWatch::decide(&state, command).unwrap();
        (events.iter().fold(state, RepairWatch::evolve), events)
    }

    #[test]
    fn failures_count_until_the_repair_is_done() {
        let note = Command::Note {
            order_id: "r-1".into(),
            customer_id: "cust-1".into(),
            country: "DE".into(),
            device_imei: None,
        };
        let (watch, _) = run(None, &note);
        let (watch, again) = run(watch, &note);
        assert!(again.is_empty());
        let (watch, _) = run(watch, &Command::QcFailed);
        let (watch, second) = run(watch, &Command::QcFailed);
        assert_eq!(second, [Event::QcFailureNoted { failures: 2 }]);
        let (watch, _) = run(watch, &Command::Close);
        let (watch, after) = run(watch, &Command::QcFailed);
        assert!(after.is_empty());
        assert_eq!(watch.unwrap().qc_failures, 2);
        assert!(matches!(
            RepairWatch::decide(&None, &Command::QcFailed),
            Err(DomainError::NotFound(_))
        ));
    }
}
