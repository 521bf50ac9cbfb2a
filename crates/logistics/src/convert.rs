//! Between the domain's types and the `aftersales.logistics.v1` contracts, for the
//! API, the webhook, reactions and the relay alike.

use aftersales_proto::common::{Address as PbAddress, CountryCode};
use aftersales_proto::logistics as pb;
use aftersales_runtime::errors::invalid;
use aftersales_runtime::request::timestamp_to_proto;
use chrono::{DateTime, Utc};
use tonic::Status;

use crate::app::ShipmentView;
use crate::domain::shipment::{Address, Direction};
use crate::domain::tracking::Status as TrackingStatus;

pub fn direction_to_proto(d: Direction) -> pb::Direction {
    match d {
        Direction::Inbound => pb::Direction::Inbound,
        Direction::Outbound => pb::Direction::Outbound,
    }
}

pub fn status_to_proto(s: TrackingStatus) -> pb::TrackingStatus {
    match s {
        TrackingStatus::PreTransit => pb::TrackingStatus::PreTransit,
        TrackingStatus::InTransit => pb::TrackingStatus::InTransit,
        TrackingStatus::OutForDelivery => pb::TrackingStatus::OutForDelivery,
        TrackingStatus::Delivered => pb::TrackingStatus::Delivered,
        TrackingStatus::AvailableForPickup => pb::TrackingStatus::AvailableForPickup,
        TrackingStatus::Exception => pb::TrackingStatus::Exception,
        TrackingStatus::ReturnedToSender => pb::TrackingStatus::ReturnedToSender,
    }
}

pub fn status_from_proto(value: i32) -> Result<TrackingStatus, Status> {
    Ok(
        match pb::TrackingStatus::try_from(value).unwrap_or(pb::TrackingStatus::Unspecified) {
            pb::TrackingStatus::Unspecified => {
                return Err(invalid(
                    "status",
                    "is required: pre_transit, in_transit, out_for_delivery, delivered, \
                     available_for_pickup, exception or returned_to_sender",
                ));
            }
            pb::TrackingStatus::PreTransit => TrackingStatus::PreTransit,
            pb::TrackingStatus::InTransit => TrackingStatus::InTransit,
            pb::TrackingStatus::OutForDelivery => TrackingStatus::OutForDelivery,
            pb::TrackingStatus::Delivered => TrackingStatus::Delivered,
            pb::TrackingStatus::AvailableForPickup => TrackingStatus::AvailableForPickup,
            pb::TrackingStatus::Exception => TrackingStatus::Exception,
            pb::TrackingStatus::ReturnedToSender => TrackingStatus::ReturnedToSender,
        },
    )
}

pub fn address_to_proto(a: &Address) -> PbAddress {
    PbAddress {
        recipient: a.recipient.clone(),
        lines: a.lines.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country: Some(CountryCode {
            value: a.country.clone(),
        }),
        phone: a.phone.clone(),
    }
}

pub fn address_from_proto(a: PbAddress) -> Address {
    Address {
        recipient: a.recipient,
        lines: a.lines,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country.map(|c| c.value).unwrap_or_default(),
        phone: a.phone,
    }
}

pub fn shipment_to_proto(view: &ShipmentView) -> pb::Shipment {
    let s = &view.state;
    let info = &s.info;
    let last = s.tracking.current();
    let state = if s.cancelled.is_some() {
        pb::ShipmentState::Cancelled
    } else {
        match s.tracking.status() {
            Some(TrackingStatus::Delivered) => pb::ShipmentState::Delivered,
            Some(TrackingStatus::ReturnedToSender) => pb::ShipmentState::Returned,
            _ if s.label.is_none() => pb::ShipmentState::LabelPending,
            _ => pb::ShipmentState::Active,
        }
    };
    pb::Shipment {
        shipment_id: info.shipment_id.clone(),
        direction: direction_to_proto(info.direction).into(),
        repair_order_id: info.purpose.repair_order().unwrap_or_default().to_owned(),
        accessory_replacement_id: info
            .purpose
            .accessory_replacement()
            .unwrap_or_default()
            .to_owned(),
        from: Some(address_to_proto(&info.from)),
        to: Some(address_to_proto(&info.to)),
        parcel: Some(pb::Parcel {
            weight_grams: info.parcel.weight_grams,
            length_mm: info.parcel.length_mm,
            width_mm: info.parcel.width_mm,
            height_mm: info.parcel.height_mm,
        }),
        carrier: info.carrier.clone(),
        tracking_number: s
            .label
            .as_ref()
            .map(|l| l.tracking_number.clone())
            .unwrap_or_default(),
        state: state.into(),
        status: s
            .tracking
            .status()
            .map_or(pb::TrackingStatus::Unspecified, status_to_proto)
            .into(),
        last_location: last.map(|l| l.location.clone()).unwrap_or_default(),
        last_scan_at: last.map(|l| timestamp_to_proto(l.occurred_at)),
        stalled: s.is_stalled(),
        scans: u32::try_from(s.tracking.scans().len()).unwrap_or(u32::MAX),
        version: view.version,
    }
}

/// When a request says something happened; for the webhook too.
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{field}: not an RFC 3339 time ({e})"))
}
