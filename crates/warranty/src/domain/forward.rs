//! Writes for a device whose home is another region. Only the home region
//! appends to a device's stream; a claim or a void arriving elsewhere, or a step
//! of a repair made here for its owner to be told at home, is accepted into the
//! device's forward stream here (`forward-<kind>-<value>`), published like any
//! event, and applied once by the home region.

use std::collections::BTreeSet;

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{DeviceKey, DomainError, FaultCategory};

/// A write the home region applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Write {
    /// A covered repair here used the device's warranty.
    Claim {
        repair_order_id: String,
        fault: FaultCategory,
        fault_date: NaiveDate,
    },
    /// Staff here found the warranty void.
    Void {
        reason: String,
        evidence: Vec<String>,
    },
    /// A repair of the device here moved on a step.
    RepairStep {
        repair_order_id: String,
        step: RepairStep,
        walk_in: bool,
    },
}

impl Write {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Claim { .. } => "claim",
            Self::Void { .. } => "void",
            Self::RepairStep { .. } => "repair_step",
        }
    }
}

/// The steps of a repair abroad its owner is told of at home: what needs no
/// more than the order's id to say (a quote or a parcel is the repairing
/// region's to tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairStep {
    Opened,
    Received,
    Started,
    Ready,
}

impl RepairStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Received => "received",
            Self::Started => "started",
            Self::Ready => "ready",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Opened, Self::Received, Self::Started, Self::Ready]
            .into_iter()
            .find(|step| step.as_str() == value)
    }
}

/// Forwards `write` for `key` to `home_region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub key: DeviceKey,
    pub home_region: String,
    pub write: Write,
    pub today: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    WriteForwarded {
        key: DeviceKey,
        home_region: String,
        write: Write,
        forwarded_on: NaiveDate,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::WriteForwarded { .. } => "WriteForwarded",
        }
    }
}

/// What was forwarded for one device: a claim goes once per repair order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    pub claims: BTreeSet<String>,
    /// Each repair step told once: (order, step).
    #[serde(default)]
    pub repair_steps: BTreeSet<(String, RepairStep)>,
    pub writes: u64,
}

/// The decider of a device's forward stream.
#[derive(Debug)]
pub struct Forwarding;

/// The stream a device's forwarded writes are kept in.
pub fn stream_name(key: &DeviceKey) -> String {
    format!("forward-{}-{}", key.kind(), key.value())
}

/// The inverse of [`stream_name`]; `None` for any other stream.
pub fn key_of(stream: &str) -> Option<DeviceKey> {
    let (kind, value) = stream.strip_prefix("forward-")?.split_once('-')?;
    DeviceKey::from_parts("stream_id", kind, value).ok()
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    aftersales_core::types::printable_text(field, value, max, true)
        .map_err(|e| DomainError::invalid(e.field, e.reason))
}

/// The checks the home region makes of the write itself, made here first, so
/// that what is queued is not refused there for its form.
fn check(write: &Write) -> Result<(), DomainError> {
    match write {
        Write::Claim {
            repair_order_id, ..
        } => text("repair_order_id", repair_order_id, 100),
        Write::Void { reason, evidence } => {
            text("reason", reason, 500)?;
            if evidence.len() > 20 {
                return Err(DomainError::invalid("evidence", "at most 20 items"));
            }
            evidence
                .iter()
                .try_for_each(|item| text("evidence", item, 500))
        }
        Write::RepairStep {
            repair_order_id, ..
        } => text("repair_order_id", repair_order_id, 100),
    }
}

impl Decider for Forwarding {
    type Command = Forward;
    type Event = Event;
    type State = Forwarded;
    type Error = DomainError;

    fn initial_state() -> Forwarded {
        Forwarded::default()
    }

    fn decide(state: &Forwarded, command: &Forward) -> Result<Vec<Event>, DomainError> {
        check(&command.write)?;
        check_region(&command.home_region)?;
        let done = match &command.write {
            Write::Claim {
                repair_order_id, ..
            } => state.claims.contains(repair_order_id.trim()),
            Write::RepairStep {
                repair_order_id,
                step,
                ..
            } => state
                .repair_steps
                .contains(&(repair_order_id.trim().to_owned(), *step)),
            Write::Void { .. } => false,
        };
        if done {
            return Ok(Vec::new());
        }
        let write = match &command.write {
            Write::Claim {
                repair_order_id,
                fault,
                fault_date,
            } => Write::Claim {
                repair_order_id: repair_order_id.trim().to_owned(),
                fault: *fault,
                fault_date: *fault_date,
            },
            Write::Void { reason, evidence } => Write::Void {
                reason: reason.trim().to_owned(),
                evidence: evidence.clone(),
            },
            Write::RepairStep {
                repair_order_id,
                step,
                walk_in,
            } => Write::RepairStep {
                repair_order_id: repair_order_id.trim().to_owned(),
                step: *step,
                walk_in: *walk_in,
            },
        };
        Ok(vec![Event::WriteForwarded {
            key: command.key.clone(),
            home_region: command.home_region.clone(),
            write,
            forwarded_on: command.today,
        }])
    }

    fn evolve(mut state: Forwarded, event: &Event) -> Forwarded {
        let Event::WriteForwarded { write, .. } = event;
        match write {
            Write::Claim {
                repair_order_id, ..
            } => {
                state.claims.insert(repair_order_id.clone());
            }
            Write::RepairStep {
                repair_order_id,
                step,
                ..
            } => {
                state.repair_steps.insert((repair_order_id.clone(), *step));
            }
            Write::Void { .. } => {}
        }
        state.writes += 1;
        state
    }
}

/// A region name is a subject token (letters, digits, `-`, `_`).
fn check_region(region: &str) -> Result<(), DomainError> {
    let fine = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fine {
        Ok(())
    } else {
        Err(DomainError::invalid("home_region", "is not a region name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DeviceKey {
        DeviceKey::from_name("device_id", "imei:490154203237518").expect("imei")
    }

    fn claim(order: &str) -> Forward {
        Forward {
            key: key(),
            home_region: "eu-central".into(),
            write: Write::Claim {
                repair_order_id: order.into(),
                fault: FaultCategory::Display,
                fault_date: NaiveDate::from_ymd_opt(2026, 11, 30).expect("date"),
            },
            today: NaiveDate::from_ymd_opt(2026, 12, 1).expect("date"),
        }
    }

    #[test]
    fn a_claim_is_forwarded_once_per_repair_order() {
        let first = Forwarding::decide(&Forwarded::default(), &claim(" r-1 ")).expect("forwarded");
        assert_eq!(first.len(), 1);
        let state = Forwarding::fold(&first);
        assert!(state.claims.contains("r-1"), "{state:?}");
        assert!(
            Forwarding::decide(&state, &claim("r-1"))
                .expect("duplicate")
                .is_empty()
        );
        assert_eq!(
            Forwarding::decide(&state, &claim("r-2"))
                .expect("another")
                .len(),
            1
        );
    }

    #[test]
    fn each_step_of_a_repair_is_forwarded_once() {
        let step = |order: &str, step| Forward {
            write: Write::RepairStep {
                repair_order_id: order.into(),
                step,
                walk_in: true,
            },
            ..claim(order)
        };
        let opened = Forwarding::decide(&Forwarded::default(), &step("r-1", RepairStep::Opened))
            .expect("forwarded");
        let state = Forwarding::fold(&opened);
        for (order, next, told) in [
            ("r-1", RepairStep::Opened, false),
            ("r-1", RepairStep::Received, true),
            ("r-2", RepairStep::Opened, true),
        ] {
            let events = Forwarding::decide(&state, &step(order, next)).expect("decided");
            assert_eq!(events.len(), usize::from(told), "{order} {next:?}");
        }
        for value in ["opened", "received", "started", "ready"] {
            assert_eq!(
                RepairStep::parse(value).map(RepairStep::as_str),
                Some(value)
            );
        }
        assert_eq!(RepairStep::parse("Opened"), None);
    }

    #[test]
    fn a_malformed_write_or_region_is_refused_here() {
        let mut bad = claim("r\u{7}1");
        assert!(Forwarding::decide(&Forwarded::default(), &bad).is_err());
        bad = claim("r-1");
        bad.home_region = "eu.central".into();
        assert!(Forwarding::decide(&Forwarded::default(), &bad).is_err());
        let void = Forward {
            write: Write::Void {
                reason: "liquid".into(),
                evidence: vec!["x".into(); 21],
            },
            ..claim("r-1")
        };
        assert!(Forwarding::decide(&Forwarded::default(), &void).is_err());
    }

    #[test]
    fn the_forward_stream_names_its_device_and_no_device_stream_is_one() {
        let name = stream_name(&key());
        assert_eq!(key_of(&name), Some(key()));
        assert_eq!(key_of(&key().stream_name()), None);
        assert_eq!(DeviceKey::from_stream_name(&name), None);
    }
}
