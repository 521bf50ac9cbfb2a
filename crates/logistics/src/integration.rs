//! The public events of the logistics service: stored shipment events become the
//! protobuf messages of `proto/aftersales/logistics/v1/events.proto`, published by
//! the relay on `aftersales.<region>.logistics.<EventType>`. Raw scans and the
//! per-order records stay private; what they change is published. Each stored
//! event names its parcel, so it translates on its own.

use aftersales_eventstore::RecordedEvent;
use aftersales_messaging::envelope::protobuf;
use aftersales_messaging::{Outbound, Translate};
use aftersales_proto::logistics as pb;
use aftersales_runtime::request::timestamp_to_proto;
use aftersales_runtime::sealed;
use prost::{Message as _, Name as _};

use crate::convert::{address_to_proto, direction_to_proto, status_to_proto};
use crate::domain::shipment::{Event, ParcelRef};

/// Logistics' [`Translate`] for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogisticsEvents;

/// The shipment's own fields every public event carries.
struct Common {
    shipment_id: String,
    repair_order_id: String,
    accessory_replacement_id: String,
    direction: i32,
    carrier: String,
    tracking_number: String,
}

impl Common {
    fn of(parcel: ParcelRef) -> Self {
        Self {
            repair_order_id: parcel.purpose.repair_order().unwrap_or_default().to_owned(),
            accessory_replacement_id: parcel
                .purpose
                .accessory_replacement()
                .unwrap_or_default()
                .to_owned(),
            shipment_id: parcel.shipment_id,
            direction: direction_to_proto(parcel.direction).into(),
            carrier: parcel.carrier,
            tracking_number: parcel.tracking_number,
        }
    }
}

impl Translate for LogisticsEvents {
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
        if !event.stream_id.as_str().starts_with("shipment-") {
            return Ok(None);
        }
        let domain: Event = event.decode().map_err(|e| e.to_string())?;
        let (name, payload) = match domain {
            Event::ShipmentCreated(info) => {
                let c = Common::of(ParcelRef {
                    shipment_id: info.shipment_id.clone(),
                    direction: info.direction,
                    purpose: info.purpose.clone(),
                    carrier: info.carrier.clone(),
                    tracking_number: String::new(),
                    depot: info.depot.clone(),
                });
                (
                    pb::ShipmentCreated::NAME,
                    pb::ShipmentCreated {
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        accessory_replacement_id: c.accessory_replacement_id,
                        direction: c.direction,
                        carrier: c.carrier,
                        personal: event.personal_key().map(|key| {
                            sealed::seal(
                                key,
                                &pb::ShipmentAddresses {
                                    from: Some(address_to_proto(&info.from)),
                                    to: Some(address_to_proto(&info.to)),
                                },
                            )
                        }),
                        ..pb::ShipmentCreated::default()
                    }
                    .encode_to_vec(),
                )
            }
            Event::LabelIssued { parcel, label, .. } => {
                let c = Common::of(parcel);
                (
                    pb::LabelIssued::NAME,
                    pb::LabelIssued {
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        accessory_replacement_id: c.accessory_replacement_id,
                        direction: c.direction,
                        carrier: c.carrier,
                        tracking_number: c.tracking_number,
                        label_content_type: label.content_type,
                    }
                    .encode_to_vec(),
                )
            }
            Event::ScanRecorded(_) => return Ok(None),
            Event::TrackingUpdated {
                parcel,
                status,
                location,
                occurred_at,
            } => {
                let c = Common::of(parcel);
                (
                    pb::TrackingUpdated::NAME,
                    pb::TrackingUpdated {
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        accessory_replacement_id: c.accessory_replacement_id,
                        direction: c.direction,
                        carrier: c.carrier,
                        tracking_number: c.tracking_number,
                        status: status_to_proto(status).into(),
                        location,
                        occurred_at: Some(timestamp_to_proto(occurred_at)),
                    }
                    .encode_to_vec(),
                )
            }
            Event::Delivered {
                parcel,
                delivered_at,
                ..
            } => {
                let depot_id = parcel.depot.clone().unwrap_or_default();
                let c = Common::of(parcel);
                (
                    pb::Delivered::NAME,
                    pb::Delivered {
                        depot_id,
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        direction: c.direction,
                        carrier: c.carrier,
                        tracking_number: c.tracking_number,
                        delivered_at: Some(timestamp_to_proto(delivered_at)),
                        accessory_replacement_id: c.accessory_replacement_id,
                    }
                    .encode_to_vec(),
                )
            }
            Event::ShipmentException {
                parcel,
                description,
                location,
                occurred_at,
            } => {
                let c = Common::of(parcel);
                (
                    pb::ShipmentException::NAME,
                    pb::ShipmentException {
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        accessory_replacement_id: c.accessory_replacement_id,
                        direction: c.direction,
                        carrier: c.carrier,
                        tracking_number: c.tracking_number,
                        description,
                        location,
                        occurred_at: Some(timestamp_to_proto(occurred_at)),
                    }
                    .encode_to_vec(),
                )
            }
            Event::ShipmentStalled {
                parcel,
                last_activity_at,
                silent_seconds,
            } => {
                let c = Common::of(parcel);
                (
                    pb::ShipmentStalled::NAME,
                    pb::ShipmentStalled {
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        accessory_replacement_id: c.accessory_replacement_id,
                        direction: c.direction,
                        carrier: c.carrier,
                        tracking_number: c.tracking_number,
                        last_activity_at: Some(timestamp_to_proto(last_activity_at)),
                        silent_seconds,
                    }
                    .encode_to_vec(),
                )
            }
            Event::ShipmentCancelled { parcel, reason } => {
                let c = Common::of(parcel);
                (
                    pb::ShipmentCancelled::NAME,
                    pb::ShipmentCancelled {
                        shipment_id: c.shipment_id,
                        repair_order_id: c.repair_order_id,
                        accessory_replacement_id: c.accessory_replacement_id,
                        direction: c.direction,
                        reason,
                    }
                    .encode_to_vec(),
                )
            }
        };
        Ok(Some(Outbound {
            payload,
            content_type: protobuf(&format!("aftersales.logistics.v1.{name}")),
        }))
    }
}
