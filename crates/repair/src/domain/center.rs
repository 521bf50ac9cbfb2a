//! A service center as an aggregate: one stream per center (`service-center-<id>`),
//! changed by upserts that are validated here and recorded only when they change
//! something. Every replica serves centers from the read model fed by these events.

use std::sync::LazyLock;

use aftersales_eventstore::{Decider, DomainEvent, Upcasters};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::centers::ServiceCenter;

pub const UPSERTED: &str = "ServiceCenterUpserted";

/// The center decider.
#[derive(Debug)]
pub struct Center;

#[derive(Debug, Clone)]
pub enum Command {
    Upsert(ServiceCenter),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// v2. Version 1 lived in one `service-centers` stream for every center and
    /// stored the center itself as the payload; the upcaster wraps it.
    ServiceCenterUpserted { center: ServiceCenter },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ServiceCenterUpserted { .. } => UPSERTED,
        }
    }

    fn schema_version(&self) -> u32 {
        2
    }

    fn upcasters() -> &'static Upcasters {
        static STEPS: LazyLock<Upcasters> = LazyLock::new(|| {
            Upcasters::new().register(UPSERTED, 1, |center| {
                Ok(serde_json::json!({ "type": UPSERTED, "center": center }))
            })
        });
        &STEPS
    }
}

impl Decider for Center {
    type Command = Command;
    type Event = Event;
    type State = Option<ServiceCenter>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match command {
            Command::Upsert(center) => {
                center
                    .validate("center")
                    .map_err(DomainError::InvalidCenter)?;
                if state.as_ref() == Some(center) {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::ServiceCenterUpserted {
                    center: center.clone(),
                }])
            }
        }
    }

    fn evolve(_state: Self::State, event: &Event) -> Self::State {
        match event {
            Event::ServiceCenterUpserted { center } => Some(center.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::testing::given;

    use super::*;
    use crate::domain::centers;

    fn berlin() -> ServiceCenter {
        centers::builtin()
            .unwrap()
            .into_iter()
            .find(|c| c.id == "sc-berlin-01")
            .unwrap()
    }

    fn upserted(center: ServiceCenter) -> Event {
        Event::ServiceCenterUpserted { center }
    }

    #[test]
    fn an_upsert_is_recorded_once_and_an_unchanged_one_not_at_all() {
        given::<Center>([])
            .when(Command::Upsert(berlin()))
            .then([upserted(berlin())]);
        given::<Center>([upserted(berlin())])
            .when(Command::Upsert(berlin()))
            .then([]);
        let mut moved = berlin();
        moved.daily_capacity += 1;
        given::<Center>([upserted(berlin())])
            .when(Command::Upsert(moved.clone()))
            .then([upserted(moved)]);
    }

    #[test]
    fn an_invalid_center_names_its_field() {
        let mut center = berlin();
        center.latitude = 200.0;
        given::<Center>([upserted(berlin())])
            .when(Command::Upsert(center))
            .then_refused(|error| {
                let error = aftersales_core::Error::from(error.clone());
                error.violations()[0].field == "center.location"
            });
    }

    #[test]
    fn a_version_one_payload_reads_as_today_s_event() {
        let center = berlin();
        let v1 = serde_json::to_vec(&center).unwrap();
        let event: Event = Event::upcasters().decode(UPSERTED, 1, &v1).unwrap();
        assert_eq!(event, Event::ServiceCenterUpserted { center });
    }
}
