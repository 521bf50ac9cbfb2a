//! A shipment: one stream per parcel, from creation and label through the
//! carrier's scans to delivery, return to sender or cancellation.

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::tracking::{Scan, Status, Tracking};
use super::{DomainError, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer to the service center.
    Inbound,
    /// From the service center back to the customer.
    Outbound,
}

/// What the shipment is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Purpose {
    RepairOrder(String),
    AccessoryReplacement(String),
}

impl Purpose {
    pub fn repair_order(&self) -> Option<&str> {
        match self {
            Self::RepairOrder(id) => Some(id),
            Self::AccessoryReplacement(_) => None,
        }
    }

    pub fn accessory_replacement(&self) -> Option<&str> {
        match self {
            Self::AccessoryReplacement(id) => Some(id),
            Self::RepairOrder(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    pub recipient: String,
    pub lines: Vec<String>,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    pub phone: String,
}

/// The scans one parcel keeps (and its tracking timeline shows).
pub const MAX_SCANS: usize = 200;

impl Address {
    /// Held to the rules every service holds an address to (what repair
    /// accepted, the label takes); `fields` names the parts in the request.
    pub fn validate(&self, fields: &aftersales_core::address::Fields) -> Result<(), DomainError> {
        let parts = aftersales_core::address::Parts {
            recipient: &self.recipient,
            lines: &self.lines,
            city: &self.city,
            region: &self.region,
            postal_code: &self.postal_code,
            country: &self.country,
            phone: &self.phone,
        };
        aftersales_core::address::validate(&parts, fields)
            .map_err(|e| DomainError::invalid(e.field, e.reason))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Parcel {
    pub weight_grams: u32,
    pub length_mm: u32,
    pub width_mm: u32,
    pub height_mm: u32,
}

impl Parcel {
    /// What a phone parcel service takes.
    const MAX_GRAMS: u32 = 30_000;
    const MAX_SIDE_MM: u32 = 1_500;

    fn validate(&self) -> Result<(), DomainError> {
        if self.weight_grams == 0 || self.weight_grams > Self::MAX_GRAMS {
            return Err(DomainError::invalid(
                "parcel.weight_grams",
                format!("must be 1 to {}", Self::MAX_GRAMS),
            ));
        }
        for side in [self.length_mm, self.width_mm, self.height_mm] {
            if side == 0 || side > Self::MAX_SIDE_MM {
                return Err(DomainError::invalid(
                    "parcel",
                    format!("each side must be 1 to {} mm", Self::MAX_SIDE_MM),
                ));
            }
        }
        Ok(())
    }
}

/// A carrier's label, as issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub tracking_number: String,
    pub content_type: String,
    pub document: String,
    /// What the barcode on the label encodes.
    pub barcode: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentInfo {
    /// Whose parcel it is: erasing them erases the parcel's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub shipment_id: String,
    pub direction: Direction,
    pub purpose: Purpose,
    pub from: Address,
    pub to: Address,
    pub parcel: Parcel,
    pub carrier: String,
    /// The depot at the parcel's depot end (a mail-in's, an accessory's), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depot: Option<String>,
}

/// Which parcel an event is about: carried by every event after creation, so
/// each can be read (and published) on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelRef {
    pub shipment_id: String,
    pub direction: Direction,
    pub purpose: Purpose,
    pub carrier: String,
    pub tracking_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentState {
    pub info: ShipmentInfo,
    pub label: Option<Label>,
    pub label_issued_at: Option<DateTime<Utc>>,
    pub tracking: Tracking,
    pub cancelled: Option<String>,
    /// Last-heard time at which the shipment was reported stalled; a newer scan
    /// clears it.
    pub stalled_at: Option<DateTime<Utc>>,
}

impl ShipmentState {
    /// When anything last happened to the parcel: its label, or its latest scan.
    pub fn last_activity(&self) -> Option<DateTime<Utc>> {
        self.tracking.last_heard().max(self.label_issued_at)
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled_at.is_some() && self.stalled_at == self.last_activity()
    }

    pub fn parcel(&self) -> ParcelRef {
        ParcelRef {
            shipment_id: self.info.shipment_id.clone(),
            direction: self.info.direction,
            purpose: self.info.purpose.clone(),
            carrier: self.info.carrier.clone(),
            depot: self.info.depot.clone(),
            tracking_number: self
                .label
                .as_ref()
                .map(|l| l.tracking_number.clone())
                .unwrap_or_default(),
        }
    }

    /// Live: labelled, not cancelled, not delivered or returned.
    pub fn is_active(&self) -> bool {
        self.label.is_some()
            && self.cancelled.is_none()
            && !self.tracking.status().is_some_and(Status::is_final)
    }

    fn describe(&self) -> String {
        if let Some(reason) = &self.cancelled {
            return format!("the shipment is cancelled ({reason})");
        }
        match self.tracking.status() {
            Some(status) => format!("the shipment is {status}"),
            None if self.label.is_some() => "the shipment is waiting for pickup".into(),
            None => "the shipment has no label yet".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Command {
    /// A new shipment with the label its carrier issued for it.
    Create {
        info: ShipmentInfo,
        label: Label,
        now: DateTime<Utc>,
    },
    RecordScan(Scan),
    Cancel {
        reason: String,
    },
    /// Raised by the stall sweeper.
    MarkStalled {
        now: DateTime<Utc>,
        silent_for: chrono::Duration,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Event {
    ShipmentCreated(ShipmentInfo),
    LabelIssued {
        parcel: ParcelRef,
        label: Label,
        issued_at: DateTime<Utc>,
    },
    ScanRecorded(Scan),
    /// The status the scans now give changed.
    TrackingUpdated {
        parcel: ParcelRef,
        status: Status,
        location: String,
        occurred_at: DateTime<Utc>,
    },
    Delivered {
        parcel: ParcelRef,
        delivered_at: DateTime<Utc>,
        location: String,
    },
    ShipmentException {
        parcel: ParcelRef,
        description: String,
        location: String,
        occurred_at: DateTime<Utc>,
    },
    ShipmentStalled {
        parcel: ParcelRef,
        last_activity_at: DateTime<Utc>,
        silent_seconds: u64,
    },
    ShipmentCancelled {
        parcel: ParcelRef,
        reason: String,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ShipmentCreated(_) => "ShipmentCreated",
            Self::LabelIssued { .. } => "LabelIssued",
            Self::ScanRecorded(_) => "ScanRecorded",
            Self::TrackingUpdated { .. } => "TrackingUpdated",
            Self::Delivered { .. } => "Delivered",
            Self::ShipmentException { .. } => "ShipmentException",
            Self::ShipmentStalled { .. } => "ShipmentStalled",
            Self::ShipmentCancelled { .. } => "ShipmentCancelled",
        }
    }

    /// Both addresses (but their countries) and the label that prints them,
    /// sealed per parcel: erasing a customer erases each of their parcels, and a
    /// parcel can be erased on its own once it is past keeping.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        if let Self::ShipmentCreated(info) = self {
            return Some(aftersales_eventstore::PersonalData {
                subject: &info.shipment_id,
                fields: &[
                    "/from/recipient",
                    "/from/lines",
                    "/from/city",
                    "/from/region",
                    "/from/postal_code",
                    "/from/phone",
                    "/to/recipient",
                    "/to/lines",
                    "/to/city",
                    "/to/region",
                    "/to/postal_code",
                    "/to/phone",
                ],
            });
        }
        let Self::LabelIssued { parcel, .. } = self else {
            return None;
        };
        Some(aftersales_eventstore::PersonalData {
            subject: &parcel.shipment_id,
            fields: &["/label/document"],
        })
    }
}

/// Longest clock difference accepted between a carrier and us.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

fn validate_scan(scan: &Scan) -> Result<(), DomainError> {
    text("carrier_event_id", &scan.carrier_event_id, 200, true)?;
    text("location", &scan.location, 200, false)?;
    text("description", &scan.description, 500, false)?;
    if scan.occurred_at > scan.recorded_at + CLOCK_SKEW {
        return Err(DomainError::invalid(
            "occurred_at",
            "is in the future; check the carrier's clock",
        ));
    }
    Ok(())
}

/// The shipment decider.
#[derive(Debug, Clone, Copy)]
pub struct Shipment;

impl Decider for Shipment {
    type Command = Command;
    type Event = Event;
    type State = Option<ShipmentState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Some(shipment) = state else {
            let Command::Create { info, label, now } = command else {
                return Err(DomainError::NotFound("shipment".into()));
            };
            text("shipment_id", &info.shipment_id, 100, true)?;
            let (Purpose::RepairOrder(id) | Purpose::AccessoryReplacement(id)) = &info.purpose;
            text("repair_order_id", id, 100, true)?;
            info.from
                .validate(&aftersales_core::address_fields!("from"))?;
            info.to.validate(&aftersales_core::address_fields!("to"))?;
            info.parcel.validate()?;
            text("carrier", &info.carrier, 50, true)?;
            text("tracking_number", &label.tracking_number, 50, true)?;
            return Ok(vec![
                Event::ShipmentCreated(info.clone()),
                Event::LabelIssued {
                    parcel: ParcelRef {
                        shipment_id: info.shipment_id.clone(),
                        direction: info.direction,
                        purpose: info.purpose.clone(),
                        carrier: info.carrier.clone(),
                        tracking_number: label.tracking_number.clone(),
                        depot: info.depot.clone(),
                    },
                    label: label.clone(),
                    issued_at: *now,
                },
            ]);
        };
        match command {
            Command::Create { .. } => Err(DomainError::AlreadyExists(format!(
                "shipment {} already exists",
                shipment.info.shipment_id
            ))),
            Command::RecordScan(scan) => {
                validate_scan(scan)?;
                if shipment.tracking.contains(&scan.carrier_event_id) {
                    return Ok(vec![]);
                }
                if shipment.label.is_none() || shipment.cancelled.is_some() {
                    return Err(DomainError::Precondition(shipment.describe()));
                }
                // A parcel's journey is a few dozen scans; a carrier sending
                // without end must not grow one shipment (and its timeline) so.
                if shipment.tracking.scans().len() >= MAX_SCANS {
                    return Err(DomainError::Exhausted(format!(
                        "{} has {MAX_SCANS} scans, the most one parcel keeps",
                        shipment.describe()
                    )));
                }
                Ok(scan_events(shipment, scan))
            }
            Command::Cancel { reason } => {
                text("reason", reason, 500, true)?;
                if shipment.cancelled.is_some() {
                    return Ok(vec![]);
                }
                if shipment.tracking.picked_up() {
                    return Err(DomainError::Precondition(format!(
                        "{}: the carrier has the parcel, so it can no longer be cancelled",
                        shipment.describe()
                    )));
                }
                Ok(vec![Event::ShipmentCancelled {
                    parcel: shipment.parcel(),
                    reason: reason.clone(),
                }])
            }
            Command::MarkStalled { now, silent_for } => {
                let Some(last) = shipment.last_activity() else {
                    return Err(DomainError::Precondition(shipment.describe()));
                };
                if !shipment.is_active() {
                    return Err(DomainError::Precondition(shipment.describe()));
                }
                if shipment.is_stalled() {
                    return Ok(vec![]);
                }
                let silent = *now - last;
                if silent < *silent_for {
                    return Err(DomainError::Precondition(format!(
                        "last heard of {} s ago",
                        silent.num_seconds()
                    )));
                }
                Ok(vec![Event::ShipmentStalled {
                    parcel: shipment.parcel(),
                    last_activity_at: last,
                    silent_seconds: u64::try_from(silent.num_seconds()).unwrap_or(0),
                }])
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        if let Event::ShipmentCreated(info) = event {
            return Some(ShipmentState {
                info: info.clone(),
                label: None,
                label_issued_at: None,
                tracking: Tracking::default(),
                cancelled: None,
                stalled_at: None,
            });
        }
        let mut shipment = state?;
        match event {
            Event::ShipmentCreated(_) => {}
            Event::LabelIssued {
                label, issued_at, ..
            } => {
                shipment.label = Some(label.clone());
                shipment.label_issued_at = Some(*issued_at);
            }
            Event::ScanRecorded(scan) => shipment.tracking.insert(scan.clone()),
            Event::ShipmentStalled {
                last_activity_at, ..
            } => shipment.stalled_at = Some(*last_activity_at),
            Event::ShipmentCancelled { reason, .. } => shipment.cancelled = Some(reason.clone()),
            // Derived from the scans; announced for other services.
            Event::TrackingUpdated { .. }
            | Event::Delivered { .. }
            | Event::ShipmentException { .. } => {}
        }
        Some(shipment)
    }
}

/// The scan, and what it changes for everyone else.
fn scan_events(shipment: &ShipmentState, scan: &Scan) -> Vec<Event> {
    let before = shipment.tracking.status();
    let mut after = shipment.tracking.clone();
    after.insert(scan.clone());
    let mut events = vec![Event::ScanRecorded(scan.clone())];
    let Some(current) = after.current() else {
        return events;
    };
    if Some(current.status) != before {
        events.push(Event::TrackingUpdated {
            parcel: shipment.parcel(),
            status: current.status,
            location: current.location.clone(),
            occurred_at: current.occurred_at,
        });
        match current.status {
            Status::Delivered => events.push(Event::Delivered {
                parcel: shipment.parcel(),
                delivered_at: current.occurred_at,
                location: current.location.clone(),
            }),
            Status::Exception => events.push(Event::ShipmentException {
                parcel: shipment.parcel(),
                description: current.description.clone(),
                location: current.location.clone(),
                occurred_at: current.occurred_at,
            }),
            Status::PreTransit
            | Status::InTransit
            | Status::OutForDelivery
            | Status::AvailableForPickup
            | Status::ReturnedToSender => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0)
            .single()
            .expect("valid time")
            + chrono::Duration::minutes(i64::from(minute))
    }

    fn address(name: &str) -> Address {
        Address {
            recipient: name.into(),
            lines: vec!["1 Main Street".into()],
            city: "Berlin".into(),
            postal_code: "10115".into(),
            country: "DE".into(),
            ..Address::default()
        }
    }

    fn info() -> ShipmentInfo {
        ShipmentInfo {
            customer_id: None,
            shipment_id: "s-1".into(),
            direction: Direction::Inbound,
            purpose: Purpose::RepairOrder("r-1".into()),
            from: address("Ana"),
            to: address("Depot"),
            parcel: Parcel {
                weight_grams: 400,
                length_mm: 200,
                width_mm: 120,
                height_mm: 60,
            },
            carrier: "sandbox".into(),
            depot: None,
        }
    }

    fn label() -> Label {
        Label {
            tracking_number: "SB1".into(),
            content_type: "image/svg+xml".into(),
            document: "<svg/>".into(),
            barcode: "SB1".into(),
        }
    }

    fn create(info: ShipmentInfo) -> Command {
        Command::Create {
            info,
            label: label(),
            now: at(0),
        }
    }

    fn labelled() -> Option<ShipmentState> {
        Shipment::fold(&Shipment::decide(&None, &create(info())).expect("created"))
    }

    fn scan(id: &str, status: Status, minute: u32) -> Scan {
        Scan {
            carrier_event_id: id.into(),
            status,
            location: "Leipzig hub".into(),
            description: "scan".into(),
            occurred_at: at(minute),
            recorded_at: at(minute + 1),
        }
    }

    fn apply(
        state: Option<ShipmentState>,
        command: &Command,
    ) -> (Option<ShipmentState>, Vec<Event>) {
        let events = Shipment::decide(&state, command).expect("accepted");
        let state = events.iter().fold(state, Shipment::evolve);
        (state, events)
    }

    fn types(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(DomainEvent::event_type).collect()
    }

    #[test]
    fn creating_validates_every_part() {
        let mut bad = info();
        bad.to.country = "Germany".into();
        assert!(matches!(
            Shipment::decide(&None, &create(bad)),
            Err(DomainError::Invalid {
                field: "to.country",
                ..
            })
        ));
        // What repair would refuse, logistics refuses too, naming the part.
        let mut five_lines = info();
        five_lines.to.lines = vec!["x".into(); 5];
        assert!(matches!(
            Shipment::decide(&None, &create(five_lines)),
            Err(DomainError::Invalid {
                field: "to.lines",
                ..
            })
        ));
        let mut heavy = info();
        heavy.parcel.weight_grams = 90_000;
        assert!(Shipment::decide(&None, &create(heavy)).is_err());
        let mut blank = info();
        blank.purpose = Purpose::RepairOrder(" ".into());
        assert!(Shipment::decide(&None, &create(blank)).is_err());
        assert_eq!(
            Shipment::decide(&labelled(), &create(info())),
            Err(DomainError::AlreadyExists(
                "shipment s-1 already exists".into()
            ))
        );
    }

    #[test]
    fn delivery_is_announced_once_and_never_undone() {
        let (s, e) = apply(
            labelled(),
            &Command::RecordScan(scan("a", Status::InTransit, 5)),
        );
        assert_eq!(types(&e), ["ScanRecorded", "TrackingUpdated"]);
        let (s, e) = apply(s, &Command::RecordScan(scan("b", Status::Delivered, 9)));
        assert_eq!(types(&e), ["ScanRecorded", "TrackingUpdated", "Delivered"]);
        let (s, e) = apply(s, &Command::RecordScan(scan("late", Status::InTransit, 20)));
        assert_eq!(types(&e), ["ScanRecorded"]);
        let (s, e) = apply(s, &Command::RecordScan(scan("b", Status::Delivered, 9)));
        assert!(e.is_empty(), "a duplicate is ignored");
        let s = s.expect("exists");
        assert_eq!(s.tracking.status(), Some(Status::Delivered));
        assert!(!s.is_active());
    }

    #[test]
    fn a_parcel_keeps_at_most_its_share_of_scans() {
        let mut state = labelled();
        for n in 0..MAX_SCANS {
            let (next, _) = apply(
                state,
                &Command::RecordScan(scan(&format!("s-{n}"), Status::InTransit, 5)),
            );
            state = next;
        }
        assert!(matches!(
            Shipment::decide(
                &state,
                &Command::RecordScan(scan("one-more", Status::InTransit, 5))
            ),
            Err(DomainError::Exhausted(_))
        ));
    }

    #[test]
    fn an_exception_is_announced() {
        let (_, e) = apply(
            labelled(),
            &Command::RecordScan(scan("x", Status::Exception, 5)),
        );
        assert_eq!(
            types(&e),
            ["ScanRecorded", "TrackingUpdated", "ShipmentException"]
        );
    }

    #[test]
    fn scans_need_a_live_shipment() {
        let refused =
            Shipment::decide(&None, &Command::RecordScan(scan("a", Status::InTransit, 1)));
        assert!(matches!(refused, Err(DomainError::NotFound(_))));
        let (cancelled, _) = apply(
            labelled(),
            &Command::Cancel {
                reason: "order cancelled".into(),
            },
        );
        let refused = Shipment::decide(
            &cancelled,
            &Command::RecordScan(scan("a", Status::InTransit, 1)),
        );
        assert!(matches!(refused, Err(DomainError::Precondition(m)) if m.contains("cancelled")));
    }

    #[test]
    fn a_scan_from_the_future_is_refused() {
        let mut future = scan("f", Status::InTransit, 1);
        future.occurred_at = future.recorded_at + chrono::Duration::hours(3);
        assert!(matches!(
            Shipment::decide(&labelled(), &Command::RecordScan(future)),
            Err(DomainError::Invalid {
                field: "occurred_at",
                ..
            })
        ));
    }

    #[test]
    fn cancelling_only_before_pickup() {
        let (s, _) = apply(
            labelled(),
            &Command::RecordScan(scan("p", Status::PreTransit, 1)),
        );
        let (s2, e) = apply(
            s.clone(),
            &Command::Cancel {
                reason: "order cancelled".into(),
            },
        );
        assert_eq!(types(&e), ["ShipmentCancelled"]);
        let (_, again) = apply(
            s2,
            &Command::Cancel {
                reason: "order cancelled".into(),
            },
        );
        assert!(again.is_empty(), "cancelling twice is a no-op");
        let (s, _) = apply(s, &Command::RecordScan(scan("t", Status::InTransit, 2)));
        let refused = Shipment::decide(
            &s,
            &Command::Cancel {
                reason: "too late".into(),
            },
        );
        assert!(matches!(refused, Err(DomainError::Precondition(m)) if m.contains("in_transit")));
    }

    #[test]
    fn stalled_once_per_silence() {
        let quiet = chrono::Duration::hours(48);
        let early = Command::MarkStalled {
            now: at(60),
            silent_for: quiet,
        };
        assert!(Shipment::decide(&labelled(), &early).is_err());
        let late = Command::MarkStalled {
            now: at(0) + quiet,
            silent_for: quiet,
        };
        let (s, e) = apply(labelled(), &late);
        assert_eq!(types(&e), ["ShipmentStalled"]);
        let (s, e) = apply(s, &late);
        assert!(e.is_empty(), "already reported for this silence");
        let (s, _) = apply(s, &Command::RecordScan(scan("a", Status::InTransit, 3000)));
        assert!(!s.as_ref().expect("exists").is_stalled());
        let (_, e) = apply(
            s,
            &Command::MarkStalled {
                now: at(3001) + quiet,
                silent_for: quiet,
            },
        );
        assert_eq!(
            types(&e),
            ["ShipmentStalled"],
            "a new silence is reported again"
        );
    }

    fn any_status() -> impl Strategy<Value = Status> {
        proptest::sample::select(Status::ALL.to_vec())
    }

    proptest! {
        /// Any permutation of a shipment's scans, repeats included, gives the same
        /// final state through the decider.
        #[test]
        fn any_permutation_of_scans_gives_the_same_state(
            raw in proptest::collection::vec((any_status(), 0u32..100), 1..10),
            order in any::<u64>(),
        ) {
            let scans: Vec<Scan> = raw
                .iter()
                .enumerate()
                .map(|(i, (status, minute))| scan(&format!("e{i}"), *status, *minute))
                .collect();
            let mut shuffled = scans.clone();
            shuffled.push(scans[0].clone());
            let mut seed = order;
            for i in (1..shuffled.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = usize::try_from(seed >> 33).unwrap_or(0) % (i + 1);
                shuffled.swap(i, j);
            }
            let play = |scans: &[Scan]| {
                let mut announced = 0;
                let state = scans.iter().fold(labelled(), |state, scan| {
                    let (state, events) = apply(state, &Command::RecordScan(scan.clone()));
                    announced += events.iter().filter(|e| matches!(e, Event::Delivered { .. })).count();
                    state
                });
                (state, announced)
            };
            let (in_order, announced) = play(&scans);
            let (other, announced_shuffled) = play(&shuffled);
            prop_assert_eq!(&in_order, &other);
            let delivered = usize::from(scans.iter().any(|s| s.status == Status::Delivered));
            prop_assert_eq!(announced, delivered, "delivery announced exactly once");
            prop_assert_eq!(announced_shuffled, delivered);
            prop_assert_eq!(
                usize::from(in_order.and_then(|s| s.tracking.status()) == Some(Status::Delivered)),
                delivered
            );
        }
    }
}
