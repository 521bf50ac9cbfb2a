//! Durable reminders: scheduled in the log, fired once when due (by a sweep that
//! survives restarts), cancelled when no longer true. One stream per reminder
//! (`reminder-<kind>-<subject>`); scheduling again after it fired or was
//! cancelled starts a new generation.

use std::collections::BTreeMap;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::catalog::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderStatus {
    Pending,
    Fired,
    Cancelled,
}

impl ReminderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Fired => "fired",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderState {
    pub kind: Kind,
    pub customer_id: String,
    pub due_at: DateTime<Utc>,
    /// The template's variables.
    pub variables: BTreeMap<String, String>,
    pub status: ReminderStatus,
    pub generation: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Schedule {
        kind: Kind,
        customer_id: String,
        due_at: DateTime<Utc>,
        variables: BTreeMap<String, String>,
    },
    Cancel {
        reason: String,
    },
    Fire {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    ReminderScheduled {
        kind: Kind,
        customer_id: String,
        due_at: DateTime<Utc>,
        variables: BTreeMap<String, String>,
        generation: u32,
    },
    ReminderCancelled {
        reason: String,
    },
    ReminderFired {
        generation: u32,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ReminderScheduled { .. } => "ReminderScheduled",
            Self::ReminderCancelled { .. } => "ReminderCancelled",
            Self::ReminderFired { .. } => "ReminderFired",
        }
    }
}

/// The reminder decider.
#[derive(Debug, Clone, Copy)]
pub struct Reminder;

impl Decider for Reminder {
    type Command = Command;
    type Event = Event;
    type State = Option<ReminderState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match (state, command) {
            (
                _,
                Command::Schedule {
                    kind,
                    customer_id,
                    due_at,
                    variables,
                },
            ) => {
                let generation = match state {
                    Some(r) if r.status == ReminderStatus::Pending => {
                        if r.due_at == *due_at && r.variables == *variables {
                            return Ok(vec![]);
                        }
                        r.generation
                    }
                    Some(r) => r.generation + 1,
                    None => 1,
                };
                Ok(vec![Event::ReminderScheduled {
                    kind: *kind,
                    customer_id: customer_id.clone(),
                    due_at: *due_at,
                    variables: variables.clone(),
                    generation,
                }])
            }
            (Some(r), Command::Cancel { reason }) if r.status == ReminderStatus::Pending => {
                Ok(vec![Event::ReminderCancelled {
                    reason: reason.clone(),
                }])
            }
            (_, Command::Cancel { .. }) => Ok(vec![]),
            (Some(r), Command::Fire { now }) if r.status == ReminderStatus::Pending => {
                if r.due_at > *now {
                    return Err(DomainError::Precondition(format!(
                        "the reminder is due at {}",
                        r.due_at
                    )));
                }
                Ok(vec![Event::ReminderFired {
                    generation: r.generation,
                    at: *now,
                }])
            }
            (Some(r), Command::Fire { .. }) => Err(DomainError::Precondition(format!(
                "the reminder is {}",
                r.status.as_str()
            ))),
            (None, Command::Fire { .. }) => Err(DomainError::NotFound("reminder".into())),
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        match event {
            Event::ReminderScheduled {
                kind,
                customer_id,
                due_at,
                variables,
                generation,
            } => Some(ReminderState {
                kind: *kind,
                customer_id: customer_id.clone(),
                due_at: *due_at,
                variables: variables.clone(),
                status: ReminderStatus::Pending,
                generation: *generation,
            }),
            Event::ReminderCancelled { .. } => state.map(|mut r| {
                r.status = ReminderStatus::Cancelled;
                r
            }),
            Event::ReminderFired { .. } => state.map(|mut r| {
                r.status = ReminderStatus::Fired;
                r
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap_or_default()
    }

    fn schedule(due: i64) -> Command {
        Command::Schedule {
            kind: Kind::ReminderQuoteWaiting,
            customer_id: "c-1".into(),
            due_at: at(due),
            variables: BTreeMap::new(),
        }
    }

    fn run(state: Option<ReminderState>, command: &Command) -> (Option<ReminderState>, usize) {
        let events = Reminder::decide(&state, command).expect("accepted");
        let n = events.len();
        (events.iter().fold(state, Reminder::evolve), n)
    }

    #[test]
    fn fires_once_when_due() {
        let (s, _) = run(None, &schedule(100));
        assert!(Reminder::decide(&s, &Command::Fire { now: at(99) }).is_err());
        let (s, n) = run(s, &Command::Fire { now: at(500) });
        assert_eq!(n, 1);
        assert!(
            Reminder::decide(&s, &Command::Fire { now: at(600) }).is_err(),
            "once"
        );
    }

    #[test]
    fn a_cancelled_reminder_never_fires_and_a_new_schedule_is_a_new_generation() {
        let (s, _) = run(None, &schedule(100));
        let (s, _) = run(
            s,
            &Command::Cancel {
                reason: "quote approved".into(),
            },
        );
        assert!(Reminder::decide(&s, &Command::Fire { now: at(500) }).is_err());
        let (_, n) = run(
            s.clone(),
            &Command::Cancel {
                reason: "again".into(),
            },
        );
        assert_eq!(n, 0);
        let (s, _) = run(s, &schedule(900));
        assert_eq!(
            s.map(|r| (r.generation, r.status)),
            Some((2, ReminderStatus::Pending))
        );
    }

    #[test]
    fn scheduling_the_same_again_writes_nothing() {
        let (s, _) = run(None, &schedule(100));
        let (_, n) = run(s, &schedule(100));
        assert_eq!(n, 0);
    }
}
