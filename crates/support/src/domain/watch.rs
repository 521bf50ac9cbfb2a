//! What the support desk keeps of one repair order, from repair's and
//! logistics' public events, to open a case on the customer's behalf when the
//! repair goes wrong (QC failed twice, or a parcel stalled) and to ask how the
//! repair went, about its center and technician, once it is done. One stream per order
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
        service_center_id: String,
    },
    /// A technician started the repair.
    NoteTechnician {
        technician: String,
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
        /// Kept since surveys ask about it; empty in older events.
        #[serde(default)]
        service_center_id: String,
    },
    TechnicianNoted {
        technician: String,
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
            Self::TechnicianNoted { .. } => "TechnicianNoted",
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
    #[serde(default)]
    pub service_center_id: String,
    #[serde(default)]
    pub technician: Option<String>,
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
                    service_center_id,
                },
            ) => Ok(vec![Event::RepairNoted {
                order_id: order_id.clone(),
                customer_id: customer_id.clone(),
                country: country.clone(),
                device_imei: device_imei.clone(),
                service_center_id: service_center_id.clone(),
            }]),
            (Some(_), Command::Note { .. }) => Ok(vec![]),
            (None, Command::QcFailed | Command::Close | Command::NoteTechnician { .. }) => {
                Err(DomainError::NotFound("the repair order".into()))
            }
            (Some(watch), Command::NoteTechnician { technician })
                if !watch.done && watch.technician.as_ref() != Some(technician) =>
            {
                Ok(vec![Event::TechnicianNoted {
                    technician: technician.clone(),
                }])
            }
            (Some(_), Command::NoteTechnician { .. }) => Ok(vec![]),
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
                    service_center_id,
                },
            ) => Some(WatchState {
                order_id: order_id.clone(),
                customer_id: customer_id.clone(),
                country: country.clone(),
                device_imei: device_imei.clone(),
                service_center_id: service_center_id.clone(),
                technician: None,
                qc_failures: 0,
                done: false,
            }),
            (Some(mut watch), Event::TechnicianNoted { technician }) => {
                watch.technician = Some(technician.clone());
                Some(watch)
            }
            (Some(mut watch), Event::QcFailureNoted { failures }) => {
                watch.qc_failures = *failures;
                Some(watch)
            }
            (Some(mut watch), Event::RepairDone) => {
                watch.done = true;
                Some(watch)
            }
            (
                None,
                Event::QcFailureNoted { .. } | Event::RepairDone | Event::TechnicianNoted { .. },
            ) => None,
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
            service_center_id: "berlin-mitte".into(),
        };
        let (watch, _) = run(None, &note);
        let (watch, again) = run(watch, &note);
        assert!(again.is_empty());
        let tech = Command::NoteTechnician {
            technician: "tech-7".into(),
        };
        let (watch, _) = run(watch, &tech);
        let (watch, same) = run(watch, &tech);
        assert!(same.is_empty());
        let (watch, _) = run(watch, &Command::QcFailed);
        let (watch, second) = run(watch, &Command::QcFailed);
        assert_eq!(second, [Event::QcFailureNoted { failures: 2 }]);
        let (watch, _) = run(watch, &Command::Close);
        let (watch, after) = run(watch, &Command::QcFailed);
        assert!(after.is_empty());
        let watch = watch.unwrap();
        assert_eq!(watch.qc_failures, 2);
        assert_eq!(watch.technician.as_deref(), Some("tech-7"));
        assert_eq!(watch.service_center_id, "berlin-mitte");
        assert!(matches!(
            RepairWatch::decide(&None, &Command::QcFailed),
            Err(DomainError::NotFound(_))
        ));
    }
}
