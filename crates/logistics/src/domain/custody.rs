//! Who held a repair's device, from hand-over to return. The evidence comes from
//! two places: repair's own steps (opened, checked in, collected), which logistics
//! records in a `custody-<order>` stream, and the carrier scans of the order's
//! shipments. [`timeline`] merges both.

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;
use super::shipment::{Address, Direction};
use super::tracking::Status;

/// One piece of evidence that someone held the device from `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Custody {
    pub at: DateTime<Utc>,
    /// `customer`, `carrier:<name>`, `service_center:<id>` or `depot:<name>`.
    pub holder: String,
    /// What showed it: a scan status or a repair event type.
    pub evidence: String,
    pub location: String,
    pub shipment_id: Option<String>,
}

/// Who holds a parcel's device after a scan, if the scan says.
pub fn holder_after_scan(
    direction: Direction,
    status: Status,
    carrier: &str,
    destination: &str,
) -> Option<String> {
    match status {
        Status::PreTransit => None,
        Status::InTransit
        | Status::OutForDelivery
        | Status::AvailableForPickup
        | Status::Exception => Some(format!("carrier:{carrier}")),
        Status::Delivered => Some(match direction {
            Direction::Inbound => format!("depot:{destination}"),
            Direction::Outbound => "customer".to_owned(),
        }),
        Status::ReturnedToSender => Some(match direction {
            Direction::Inbound => "customer".to_owned(),
            Direction::Outbound => format!("depot:{destination}"),
        }),
    }
}

/// The steps of custody in time order: each is the first evidence of a new
/// holder; further evidence for the same holder is folded in.
pub fn timeline(mut evidence: Vec<Custody>) -> Vec<Custody> {
    evidence.sort_by_key(|e| e.at);
    let mut steps: Vec<Custody> = Vec::new();
    for item in evidence {
        if steps.last().is_some_and(|last| last.holder == item.holder) {
            continue;
        }
        steps.push(item);
    }
    steps
}

/// A mail-in order's two ends: the customer, and the depot that repairs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailIn {
    pub customer: Address,
    pub depot: Address,
    pub inbound_shipment_id: String,
    /// The depot's id (orders opened before it was recorded have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depot_id: Option<String>,
}

/// What repair's steps told logistics about one order (stream `order-<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderState {
    pub known: bool,
    /// The order's customer, whose shipments these are (unknown for orders
    /// opened before it was recorded).
    pub customer_id: Option<String>,
    /// Walk-in orders.
    pub center_id: Option<String>,
    pub mail_in: Option<MailIn>,
    pub outbound_shipment_id: Option<String>,
    pub evidence: Vec<Custody>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Command {
    /// The order was opened: the customer holds the device.
    Opened {
        customer_id: Option<String>,
        center_id: Option<String>,
        mail_in: Option<MailIn>,
        at: DateTime<Utc>,
    },
    /// The device goes back by parcel.
    ReturnShipped { shipment_id: String },
    /// A walk-in center took the device.
    CheckedIn { at: DateTime<Utc> },
    /// The customer took the device back at the center.
    Collected { at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Event {
    RepairOrderKnown {
        /// Absent from events recorded before it was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer_id: Option<String>,
        center_id: Option<String>,
        mail_in: Option<MailIn>,
        at: DateTime<Utc>,
    },
    ReturnShipmentCreated {
        shipment_id: String,
    },
    CustodyRecorded(Custody),
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RepairOrderKnown { .. } => "RepairOrderKnown",
            Self::ReturnShipmentCreated { .. } => "ReturnShipmentCreated",
            Self::CustodyRecorded(_) => "CustodyRecorded",
        }
    }

    /// The customer's address (but its country), sealed for the customer, or for
    /// the inbound parcel when an older order did not name them.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        match self {
            Self::RepairOrderKnown {
                customer_id,
                mail_in: Some(mail_in),
                ..
            } => Some(aftersales_eventstore::PersonalData {
                subject: customer_id
                    .as_deref()
                    .unwrap_or(&mail_in.inbound_shipment_id),
                fields: &[
                    "/mail_in/customer/recipient",
                    "/mail_in/customer/lines",
                    "/mail_in/customer/city",
                    "/mail_in/customer/region",
                    "/mail_in/customer/postal_code",
                    "/mail_in/customer/phone",
                ],
            }),
            Self::RepairOrderKnown { mail_in: None, .. }
            | Self::ReturnShipmentCreated { .. }
            | Self::CustodyRecorded(_) => None,
        }
    }
}

/// The per-order decider.
#[derive(Debug, Clone, Copy)]
pub struct OrderLogistics;

impl Decider for OrderLogistics {
    type Command = Command;
    type Event = Event;
    type State = OrderState;
    type Error = DomainError;

    fn initial_state() -> OrderState {
        OrderState::default()
    }

    fn decide(state: &OrderState, command: &Command) -> Result<Vec<Event>, DomainError> {
        let custody = |at: DateTime<Utc>, holder: String, evidence: &str| {
            Ok(vec![Event::CustodyRecorded(Custody {
                at,
                holder,
                evidence: evidence.to_owned(),
                location: String::new(),
                shipment_id: None,
            })])
        };
        match command {
            Command::Opened { .. } if state.known => Ok(vec![]),
            Command::Opened {
                customer_id,
                center_id,
                mail_in,
                at,
            } => Ok(vec![Event::RepairOrderKnown {
                customer_id: customer_id.clone(),
                center_id: center_id.clone(),
                mail_in: mail_in.clone(),
                at: *at,
            }]),
            Command::ReturnShipped { shipment_id } => {
                if state.mail_in.is_none() {
                    return Err(DomainError::Precondition(
                        "only a mail-in order goes back by parcel".into(),
                    ));
                }
                match &state.outbound_shipment_id {
                    Some(existing) if existing == shipment_id => Ok(vec![]),
                    Some(existing) => Err(DomainError::AlreadyExists(format!(
                        "the order already goes back in shipment {existing}"
                    ))),
                    None => Ok(vec![Event::ReturnShipmentCreated {
                        shipment_id: shipment_id.clone(),
                    }]),
                }
            }
            Command::CheckedIn { at } => {
                let center = state.center_id.as_deref().ok_or_else(|| {
                    DomainError::Precondition("check-in before the order's opening is known".into())
                })?;
                custody(*at, format!("service_center:{center}"), "DeviceCheckedIn")
            }
            Command::Collected { at } => custody(*at, "customer".into(), "DeviceCollected"),
        }
    }

    fn evolve(mut state: OrderState, event: &Event) -> OrderState {
        match event {
            Event::RepairOrderKnown {
                customer_id,
                center_id,
                mail_in,
                at,
            } => {
                state.known = true;
                state.customer_id.clone_from(customer_id);
                state.center_id.clone_from(center_id);
                state.mail_in.clone_from(mail_in);
                state.evidence.push(Custody {
                    at: *at,
                    holder: "customer".into(),
                    evidence: "RepairOrderOpened".into(),
                    location: String::new(),
                    shipment_id: None,
                });
            }
            Event::ReturnShipmentCreated { shipment_id } => {
                state.outbound_shipment_id = Some(shipment_id.clone());
            }
            Event::CustodyRecorded(custody) => state.evidence.push(custody.clone()),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, hour, 0, 0)
            .single()
            .expect("valid time")
    }

    fn evidence(hour: u32, holder: &str, what: &str) -> Custody {
        Custody {
            at: at(hour),
            holder: holder.into(),
            evidence: what.into(),
            location: String::new(),
            shipment_id: None,
        }
    }

    #[test]
    fn a_mail_in_round_trip_reads_as_five_holders() {
        let steps = timeline(vec![
            evidence(9, "customer", "delivered"),
            evidence(1, "customer", "RepairOrderOpened"),
            evidence(3, "carrier:sandbox", "out_for_delivery"),
            evidence(2, "carrier:sandbox", "in_transit"),
            evidence(4, "depot:Berlin", "delivered"),
            evidence(7, "carrier:sandbox", "in_transit"),
        ]);
        let holders: Vec<_> = steps.iter().map(|s| s.holder.as_str()).collect();
        assert_eq!(
            holders,
            [
                "customer",
                "carrier:sandbox",
                "depot:Berlin",
                "carrier:sandbox",
                "customer"
            ]
        );
        assert_eq!(
            steps[1].evidence, "in_transit",
            "the first evidence of a holder"
        );
    }

    #[test]
    fn scans_name_the_holder() {
        let h = |d, s| holder_after_scan(d, s, "sandbox", "Berlin");
        assert_eq!(h(Direction::Inbound, Status::PreTransit), None);
        assert_eq!(
            h(Direction::Inbound, Status::InTransit).as_deref(),
            Some("carrier:sandbox")
        );
        assert_eq!(
            h(Direction::Inbound, Status::Delivered).as_deref(),
            Some("depot:Berlin")
        );
        assert_eq!(
            h(Direction::Outbound, Status::Delivered).as_deref(),
            Some("customer")
        );
        assert_eq!(
            h(Direction::Inbound, Status::ReturnedToSender).as_deref(),
            Some("customer")
        );
    }

    #[test]
    fn walk_in_check_in_names_the_center() {
        let opened = Command::Opened {
            customer_id: Some("c-1".into()),
            center_id: Some("de-ber-1".into()),
            mail_in: None,
            at: at(1),
        };
        let events = OrderLogistics::decide(&OrderState::default(), &opened).expect("opened");
        let state = OrderLogistics::fold(&events);
        assert!(
            OrderLogistics::decide(&state, &opened)
                .expect("again")
                .is_empty()
        );
        let checked =
            OrderLogistics::decide(&state, &Command::CheckedIn { at: at(2) }).expect("in");
        let Event::CustodyRecorded(custody) = &checked[0] else {
            panic!("custody expected, got {checked:?}");
        };
        assert_eq!(custody.holder, "service_center:de-ber-1");
        assert!(
            OrderLogistics::decide(&OrderState::default(), &Command::CheckedIn { at: at(2) })
                .is_err()
        );
        let ship = Command::ReturnShipped {
            shipment_id: "s-2".into(),
        };
        assert!(
            OrderLogistics::decide(&state, &ship).is_err(),
            "walk-in has no parcel"
        );
    }
}
