//! The public events of the repair service: each stored event becomes the protobuf
//! message of the same name in `proto/aftersales/repair/v1/events.proto`, published
//! by the relay on `aftersales.<region>.repair.<EventType>`.
//!
//! Service-center upserts (stream `service-centers`) stay private.

use aftersales_eventstore::RecordedEvent;
use aftersales_messaging::envelope::protobuf;
use aftersales_messaging::{Outbound, Translate};
use aftersales_proto::common::DeviceId;
use aftersales_proto::repair as pb;
use aftersales_runtime::sealed;
use prost::{Message as _, Name as _};

use crate::convert::{address_to_proto, coverage_to_proto, quote_to_proto};
use crate::domain::order::{Channel, Event};

/// The order a stream belongs to: streams are named `repair-<order id>`.
fn order_of_stream(stream_id: &str) -> Option<&str> {
    stream_id.strip_prefix("repair-")
}

/// Repair's [`Translate`] for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct RepairEvents;

impl Translate for RepairEvents {
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
        let Some(order) = order_of_stream(event.stream_id.as_str()) else {
            return Ok(None);
        };
        let order_id = order.to_owned();
        let domain: Event = event.decode().map_err(|e| e.to_string())?;
        let (name, payload) = match domain {
            // Shown in the order's own timeline; nothing another service acts on.
            Event::PersonalDataAccessed { .. } | Event::DataProtectionRecorded { .. } => {
                return Ok(None);
            }
            Event::RepairOrderOpened {
                device,
                channel,
                customer_id,
                symptoms,
                coverage,
                serviced_in,
                ..
            } => {
                let (kind, center, address) = match &channel {
                    Channel::WalkIn { center_id, .. } => {
                        (pb::Channel::WalkIn, center_id.clone(), None)
                    }
                    Channel::MailIn { address } => (
                        pb::Channel::MailIn,
                        String::new(),
                        Some(address_to_proto(address)),
                    ),
                };
                // Sealed again for the customer; nothing once they are erased.
                let personal = event.personal_key().map(|key| {
                    sealed::seal(
                        key,
                        &pb::RepairOrderPersonal {
                            symptoms,
                            contact_address: address,
                        },
                    )
                });
                (
                    pb::RepairOrderOpened::NAME,
                    pb::RepairOrderOpened {
                        order_id,
                        device_id: Some(DeviceId::from(&device)),
                        channel: kind.into(),
                        service_center_id: center,
                        customer_id,
                        coverage: Some(coverage_to_proto(&coverage)),
                        personal,
                        country: serviced_in.unwrap_or_default(),
                        ..pb::RepairOrderOpened::default()
                    }
                    .encode_to_vec(),
                )
            }
            Event::DeviceCheckedIn {
                condition,
                accessories,
            } => (
                pb::DeviceCheckedIn::NAME,
                pb::DeviceCheckedIn {
                    order_id,
                    condition_notes: condition.notes,
                    liquid_indicator_tripped: condition.liquid_indicator_tripped,
                    accessories,
                }
                .encode_to_vec(),
            ),
            Event::DeviceReceived { shipment_id, .. } => (
                pb::DeviceReceived::NAME,
                pb::DeviceReceived {
                    order_id,
                    shipment_id,
                }
                .encode_to_vec(),
            ),
            Event::Diagnosed {
                fault,
                fault_codes,
                coverage,
                ..
            } => (
                pb::Diagnosed::NAME,
                pb::Diagnosed {
                    order_id,
                    fault,
                    fault_codes,
                    coverage: Some(coverage_to_proto(&coverage)),
                }
                .encode_to_vec(),
            ),
            Event::WaitingForParts {
                part_numbers,
                expected_on,
            } => (
                pb::WaitingForParts::NAME,
                pb::WaitingForParts {
                    order_id,
                    part_numbers,
                    expected_on: expected_on.map(|d| d.to_string()).unwrap_or_default(),
                }
                .encode_to_vec(),
            ),
            Event::PartArrived {
                part_number,
                all_arrived,
            } => (
                pb::PartArrived::NAME,
                pb::PartArrived {
                    order_id,
                    part_number,
                    all_arrived,
                }
                .encode_to_vec(),
            ),
            Event::PartsReleased {
                location,
                part_numbers,
            } => (
                pb::PartsReleased::NAME,
                pb::PartsReleased {
                    order_id,
                    location,
                    part_numbers,
                }
                .encode_to_vec(),
            ),
            Event::QuoteIssued { quote } => (
                pb::QuoteIssued::NAME,
                pb::QuoteIssued {
                    order_id,
                    quote: Some(quote_to_proto(&quote)),
                }
                .encode_to_vec(),
            ),
            Event::QuoteApproved { revision } => (
                pb::QuoteApproved::NAME,
                pb::QuoteApproved { order_id, revision }.encode_to_vec(),
            ),
            Event::QuoteDeclined { revision } => (
                pb::QuoteDeclined::NAME,
                pb::QuoteDeclined { order_id, revision }.encode_to_vec(),
            ),
            Event::RepairStarted { technician } => (
                pb::RepairStarted::NAME,
                pb::RepairStarted {
                    order_id,
                    technician,
                }
                .encode_to_vec(),
            ),
            Event::PartReplaced(part) => (
                pb::PartReplaced::NAME,
                pb::PartReplaced {
                    order_id,
                    part_number: part.part_number,
                    old_serial: part.old_serial,
                    new_serial: part.new_serial,
                }
                .encode_to_vec(),
            ),
            Event::QcPassed { .. } => (
                pb::QcPassed::NAME,
                pb::QcPassed { order_id }.encode_to_vec(),
            ),
            Event::QcFailed { notes } => (
                pb::QcFailed::NAME,
                pb::QcFailed { order_id, notes }.encode_to_vec(),
            ),
            Event::ReadyForReturn { repaired } => (
                pb::ReadyForReturn::NAME,
                pb::ReadyForReturn { order_id, repaired }.encode_to_vec(),
            ),
            Event::DeviceCollected => (
                pb::DeviceCollected::NAME,
                pb::DeviceCollected { order_id }.encode_to_vec(),
            ),
            Event::ReturnDelivered { shipment_id } => (
                pb::ReturnDelivered::NAME,
                pb::ReturnDelivered {
                    order_id,
                    shipment_id,
                }
                .encode_to_vec(),
            ),
            Event::RepairCancelled { reason } => (
                pb::RepairCancelled::NAME,
                pb::RepairCancelled { order_id, reason }.encode_to_vec(),
            ),
        };
        Ok(Some(Outbound {
            payload,
            content_type: protobuf(&format!("aftersales.repair.v1.{name}")),
        }))
    }
}
