//! What the support desk keeps of one repair order, from repair's and
//! logistics' public events, to open a case on the customer's behalf when the
//! repair goes wrong (QC failed twice, a parcel stalled, a legal or promised
//! clock run out) and to ask how the repair went, about its center and
//! technician, once it is done.
//!
//! Deadlines: a clock from [`super::legal`] starts on a step (parts awaited, the
//! order opened, a quote issued), stops on the step it waits for, and, if it
//! runs out first, is recorded as missed once, with the case that follows. One stream per order
//! (`watch-<order id>`), so it rebuilds from support's own log like the rest.

use std::collections::BTreeMap;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::legal::{Basis, DeadlineKind};

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
    /// A clock starts, unless one of its kind already runs.
    StartDeadline(Deadline),
    /// The step a clock waits for came (or it no longer applies).
    StopDeadline {
        kind: DeadlineKind,
        reason: Stopped,
    },
    /// Records a clock that ran out before `now`; nothing if it did not.
    MissDeadline {
        kind: DeadlineKind,
        now: DateTime<Utc>,
    },
    /// The order is done with: nothing more will be opened for it.
    Close,
}

/// One running clock on a repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub kind: DeadlineKind,
    pub started_at: DateTime<Utc>,
    pub due: DateTime<Utc>,
    pub basis: Basis,
    /// The rule, as people read it: "5 working days".
    pub limit: String,
    /// The `legal.toml` version it runs under, and where its figure comes from.
    pub version: u32,
    pub source: String,
}

/// Why a clock stopped before running out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopped {
    /// What it waited for came in time.
    Met,
    /// It no longer applies (a repair found not covered is not under the
    /// legal guarantee's clock).
    NotApplicable,
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
    DeadlineStarted(Deadline),
    DeadlineStopped {
        kind: DeadlineKind,
        reason: Stopped,
    },
    DeadlineMissed {
        kind: DeadlineKind,
        due: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    RepairDone,
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RepairNoted { .. } => "RepairNoted",
            Self::TechnicianNoted { .. } => "TechnicianNoted",
            Self::QcFailureNoted { .. } => "QcFailureNoted",
            Self::DeadlineStarted(_) => "DeadlineStarted",
            Self::DeadlineStopped { .. } => "DeadlineStopped",
            Self::DeadlineMissed { .. } => "DeadlineMissed",
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
    /// The clocks running now, by kind.
    #[serde(default)]
    pub deadlines: BTreeMap<DeadlineKind, Deadline>,
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
            (
                None,
                Command::QcFailed
                | Command::Close
                | Command::NoteTechnician { .. }
                | Command::StartDeadline(_)
                | Command::StopDeadline { .. }
                | Command::MissDeadline { .. },
            ) => Err(DomainError::NotFound("the repair order".into())),
            (Some(watch), Command::StartDeadline(deadline))
                if !watch.done && !watch.deadlines.contains_key(&deadline.kind) =>
            {
                Ok(vec![Event::DeadlineStarted(deadline.clone())])
            }
            (Some(_), Command::StartDeadline(_)) => Ok(vec![]),
            (Some(watch), Command::StopDeadline { kind, reason })
                if watch.deadlines.contains_key(kind) =>
            {
                Ok(vec![Event::DeadlineStopped {
                    kind: *kind,
                    reason: *reason,
                }])
            }
            (Some(_), Command::StopDeadline { .. }) => Ok(vec![]),
            (Some(watch), Command::MissDeadline { kind, now }) => match watch.deadlines.get(kind) {
                Some(deadline) if !watch.done && deadline.due <= *now => {
                    Ok(vec![Event::DeadlineMissed {
                        kind: *kind,
                        due: deadline.due,
                        at: *now,
                    }])
                }
                Some(_) | None => Ok(vec![]),
            },
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
                deadlines: BTreeMap::new(),
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
            (Some(mut watch), Event::DeadlineStarted(deadline)) => {
                watch.deadlines.insert(deadline.kind, deadline.clone());
                Some(watch)
            }
            (
                Some(mut watch),
                Event::DeadlineStopped { kind, .. } | Event::DeadlineMissed { kind, .. },
            ) => {
                watch.deadlines.remove(kind);
                Some(watch)
            }
            (Some(mut watch), Event::RepairDone) => {
                watch.done = true;
                watch.deadlines.clear();
                Some(watch)
            }
            (
                None,
                Event::QcFailureNoted { .. }
                | Event::RepairDone
                | Event::TechnicianNoted { .. }
                | Event::DeadlineStarted(_)
                | Event::DeadlineStopped { .. }
                | Event::DeadlineMissed { .. },
            ) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_deadline_is_missed_once_and_only_when_it_ran_out() {
        let note = Command::Note {
            order_id: "r-2".into(),
            customer_id: "cust-2".into(),
            country: "DE".into(),
            device_imei: None,
            service_center_id: String::new(),
        };
        let (watch, _) = run(None, &note);
        let parts = Deadline {
            kind: DeadlineKind::Parts,
            started_at: at("2026-12-01T10:00:00Z"),
            due: at("2026-12-08T23:00:00Z"),
            basis: Basis::Law,
            limit: "5 working days".into(),
            version: 1,
            source: "Regulation (EU) 2023/1670".into(),
        };
        let (watch, started) = run(watch, &Command::StartDeadline(parts.clone()));
        assert_eq!(started.len(), 1);
        // A second part awaited does not restart the clock.
        let later = Deadline {
            started_at: at("2026-12-03T10:00:00Z"),
            due: at("2026-12-10T23:00:00Z"),
            ..parts.clone()
        };
        let (watch, again) = run(watch, &Command::StartDeadline(later));
        assert!(again.is_empty());
        let miss = |now: &str| Command::MissDeadline {
            kind: DeadlineKind::Parts,
            now: at(now),
        };
        let (watch, early) = run(watch, &miss("2026-12-08T22:59:59Z"));
        assert!(early.is_empty(), "not yet due");
        let (watch, missed) = run(watch, &miss("2026-12-08T23:00:00Z"));
        assert!(matches!(
            &missed[..],
            [Event::DeadlineMissed {
                kind: DeadlineKind::Parts,
                ..
            }]
        ));
        let (watch, twice) = run(watch, &miss("2026-12-09T00:00:00Z"));
        assert!(twice.is_empty(), "missed once");
        // A clock stopped in time is not missed.
        let quote = Deadline {
            kind: DeadlineKind::Quote,
            ..parts
        };
        let (watch, _) = run(watch, &Command::StartDeadline(quote));
        let (watch, stopped) = run(
            watch,
            &Command::StopDeadline {
                kind: DeadlineKind::Quote,
                reason: Stopped::Met,
            },
        );
        assert_eq!(stopped.len(), 1);
        let (_, after) = run(
            watch,
            &Command::MissDeadline {
                kind: DeadlineKind::Quote,
                now: at("2027-01-01T00:00:00Z"),
            },
        );
        assert!(after.is_empty());
    }

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
