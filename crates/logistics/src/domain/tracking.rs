//! One tracking vocabulary for every carrier, and how a set of scans gives a
//! shipment's status whatever order the scans arrived in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PreTransit,
    InTransit,
    OutForDelivery,
    Delivered,
    AvailableForPickup,
    Exception,
    ReturnedToSender,
}

impl Status {
    pub const ALL: [Self; 7] = [
        Self::PreTransit,
        Self::InTransit,
        Self::OutForDelivery,
        Self::Delivered,
        Self::AvailableForPickup,
        Self::Exception,
        Self::ReturnedToSender,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreTransit => "pre_transit",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::AvailableForPickup => "available_for_pickup",
            Self::Exception => "exception",
            Self::ReturnedToSender => "returned_to_sender",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Nothing moves the parcel after these.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::ReturnedToSender)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One carrier event, as the carrier reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// The carrier's id for this event: a second report of it is a duplicate.
    pub carrier_event_id: String,
    pub status: Status,
    pub location: String,
    pub description: String,
    /// When it happened, by the carrier's clock.
    pub occurred_at: DateTime<Utc>,
    /// When logistics heard of it.
    pub recorded_at: DateTime<Utc>,
}

impl Scan {
    /// The order scans are kept in: when they happened, then the carrier's id, so
    /// equal times still sort the same way every time.
    fn key(&self) -> (DateTime<Utc>, &str) {
        (self.occurred_at, &self.carrier_event_id)
    }
}

/// The scans of one shipment in occurred-at order, duplicates dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tracking {
    scans: Vec<Scan>,
}

impl Tracking {
    pub fn scans(&self) -> &[Scan] {
        &self.scans
    }

    pub fn contains(&self, carrier_event_id: &str) -> bool {
        self.scans
            .iter()
            .any(|s| s.carrier_event_id == carrier_event_id)
    }

    /// Adds a scan in its place; a known carrier event id changes nothing.
    pub fn insert(&mut self, scan: Scan) {
        if self.contains(&scan.carrier_event_id) {
            return;
        }
        let at = self.scans.partition_point(|s| s.key() < scan.key());
        self.scans.insert(at, scan);
    }

    /// The scan that says where the parcel is. A delivery is never undone: once
    /// any scan says delivered, the earliest such scan decides, whatever arrives
    /// later. Next comes a return to the sender, then the latest scan by time.
    pub fn current(&self) -> Option<&Scan> {
        let first = |status| self.scans.iter().find(|s| s.status == status);
        first(Status::Delivered)
            .or_else(|| first(Status::ReturnedToSender))
            .or_else(|| self.scans.last())
    }

    pub fn status(&self) -> Option<Status> {
        self.current().map(|s| s.status)
    }

    /// The parcel has left the sender: a carrier scan beyond pre-transit.
    pub fn picked_up(&self) -> bool {
        self.scans.iter().any(|s| s.status != Status::PreTransit)
    }

    /// When anything was last heard of the parcel.
    pub fn last_heard(&self) -> Option<DateTime<Utc>> {
        self.scans.iter().map(|s| s.recorded_at).max()
    }
}

/// Which shipment a carrier's scan is for when the carrier has used the tracking
/// number more than once: the latest labelled at or before the scan happened,
/// else (a carrier clock behind ours) the first one labelled.
pub fn resolve_tracking_number(
    labelled: &[(String, DateTime<Utc>)],
    occurred_at: DateTime<Utc>,
) -> Option<&str> {
    labelled
        .iter()
        .filter(|(_, issued)| *issued <= occurred_at)
        .max_by_key(|(_, issued)| *issued)
        .or_else(|| labelled.iter().min_by_key(|(_, issued)| *issued))
        .map(|(id, _)| id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 8, minute, 0)
            .single()
            .expect("valid time")
    }

    fn scan(id: &str, status: Status, minute: u32) -> Scan {
        Scan {
            carrier_event_id: id.into(),
            status,
            location: format!("hub {minute}"),
            description: String::new(),
            occurred_at: at(minute),
            recorded_at: at(minute + 1),
        }
    }

    #[test]
    fn scans_are_kept_in_the_order_they_happened() {
        let mut t = Tracking::default();
        t.insert(scan("c", Status::OutForDelivery, 30));
        t.insert(scan("a", Status::PreTransit, 10));
        t.insert(scan("b", Status::InTransit, 20));
        let ids: Vec<_> = t
            .scans()
            .iter()
            .map(|s| s.carrier_event_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(t.status(), Some(Status::OutForDelivery));
    }

    #[test]
    fn a_late_in_transit_does_not_undo_delivery() {
        let mut t = Tracking::default();
        t.insert(scan("d", Status::Delivered, 30));
        t.insert(scan("late", Status::InTransit, 40));
        assert_eq!(t.status(), Some(Status::Delivered));
        assert_eq!(t.scans().len(), 2);
    }

    #[test]
    fn a_duplicate_changes_nothing() {
        let mut t = Tracking::default();
        t.insert(scan("a", Status::InTransit, 10));
        let before = t.clone();
        t.insert(scan("a", Status::Exception, 50));
        assert_eq!(t, before);
    }

    #[test]
    fn every_status_parses_back() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("teleported"), None);
    }

    #[test]
    fn a_reused_tracking_number_finds_the_parcel_of_its_time() {
        let labelled = vec![("old".to_owned(), at(0)), ("new".to_owned(), at(30))];
        assert_eq!(resolve_tracking_number(&labelled, at(10)), Some("old"));
        assert_eq!(resolve_tracking_number(&labelled, at(31)), Some("new"));
        assert_eq!(
            resolve_tracking_number(&[("only".to_owned(), at(30))], at(5)),
            Some("only")
        );
        assert_eq!(resolve_tracking_number(&[], at(5)), None);
    }
}
