//! The public events of the warranty service: each stored event becomes the
//! protobuf message of the same name in `proto/aftersales/warranty/v1/events.proto`,
//! published by the relay on `aftersales.<region>.warranty.<EventType>`.

use aftersales_eventstore::RecordedEvent;
use aftersales_messaging::envelope::protobuf;
use aftersales_messaging::{Outbound, Translate};
use aftersales_proto::common::{CountryCode, DeviceId, Money};
use aftersales_proto::warranty as pb;
use prost::{Message as _, Name as _};

use crate::convert::{
    accessory_kind_to_proto, channel_to_proto, decision_to_proto, fault_to_proto,
};
use crate::domain::forward::{self, Write};
use crate::domain::{DeviceKey, Event};

/// Warranty's [`Translate`] for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct WarrantyEvents;

impl Translate for WarrantyEvents {
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
        if let Some(key) = forward::key_of(event.stream_id.as_str()) {
            return forwarded(event, &key).map(Some);
        }
        let key = DeviceKey::from_stream_name(event.stream_id.as_str())
            .ok_or_else(|| format!("stream {} is not a device", event.stream_id))?;
        let domain: Event = event.decode().map_err(|e| e.to_string())?;
        let id = Some(DeviceId::from(&key));
        let declared = matches!(
            domain,
            Event::DeviceRegistered {
                proof: crate::domain::PurchaseProof::CustomerDeclared,
                ..
            }
        );
        let (name, payload) = match domain {
            Event::DeviceRegistered {
                model,
                purchase_date,
                country,
                channel,
                customer_id,
                terms,
                base_end,
                ..
            }
            | Event::PurchaseVerified {
                model,
                purchase_date,
                country,
                channel,
                customer_id,
                terms,
                base_end,
                ..
            } => {
                let legal = terms.statutory.legal_guarantee_months;
                (
                    pb::DeviceRegistered::NAME,
                    pb::DeviceRegistered {
                        device_id: id,
                        model,
                        purchase_date: purchase_date.to_string(),
                        country_of_purchase: Some(CountryCode { value: country }),
                        channel: channel_to_proto(channel).into(),
                        customer_id,
                        policy_id: terms.policy_id,
                        policy_version: terms.version,
                        base_warranty_end: base_end.to_string(),
                        legal_guarantee_end: if legal > 0 {
                            crate::domain::add_months(purchase_date, legal).to_string()
                        } else {
                            String::new()
                        },
                        purchase_date_declared: declared,
                    }
                    .encode_to_vec(),
                )
            }
            Event::ExtendedWarrantyPurchased {
                customer_id,
                plan_id,
                coverage_end,
                price_minor,
                currency,
                ..
            } => (
                pb::ExtendedWarrantyPurchased::NAME,
                pb::ExtendedWarrantyPurchased {
                    device_id: id,
                    customer_id,
                    plan_id,
                    coverage_end: coverage_end.to_string(),
                    price: Some(Money {
                        minor_units: price_minor,
                        currency,
                    }),
                }
                .encode_to_vec(),
            ),
            Event::ExtendedWarrantyCancelled {
                customer_id,
                plan_id,
                refund_minor,
                currency,
                ..
            } => (
                pb::ExtendedWarrantyCancelled::NAME,
                pb::ExtendedWarrantyCancelled {
                    device_id: id,
                    customer_id,
                    plan_id,
                    refund: Some(Money {
                        minor_units: refund_minor,
                        currency,
                    }),
                }
                .encode_to_vec(),
            ),
            Event::AccessoryRegistered {
                serial,
                kind,
                coverage_end,
                replaces,
                ..
            } => (
                pb::AccessoryRegistered::NAME,
                pb::AccessoryRegistered {
                    device_id: id,
                    accessory_serial: serial,
                    kind: accessory_kind_to_proto(kind).into(),
                    coverage_end: coverage_end.to_string(),
                    replaces_serial: replaces.unwrap_or_default(),
                }
                .encode_to_vec(),
            ),
            Event::WarrantyVoided {
                customer_id,
                reason,
                ..
            } => (
                pb::WarrantyVoided::NAME,
                pb::WarrantyVoided {
                    device_id: id,
                    customer_id,
                    reason,
                }
                .encode_to_vec(),
            ),
            Event::OwnershipTransferred { from, to } => (
                pb::OwnershipTransferred::NAME,
                pb::OwnershipTransferred {
                    device_id: id,
                    previous_customer_id: from,
                    new_customer_id: to,
                }
                .encode_to_vec(),
            ),
            Event::CoverageDecided {
                fault, decision, ..
            } => (
                pb::CoverageDecided::NAME,
                pb::CoverageDecided {
                    device_id: id,
                    fault_category: fault_to_proto(fault).into(),
                    decision: Some(decision_to_proto(&decision, event.metadata.recorded_at)),
                }
                .encode_to_vec(),
            ),
            Event::ClaimRecorded {
                repair_order_id,
                fault,
                legal_guarantee_end,
                programme_id,
                part_covered_until,
                legal_extension_months,
                ..
            } => (
                pb::ClaimRecorded::NAME,
                pb::ClaimRecorded {
                    device_id: id,
                    repair_order_id,
                    fault_category: fault_to_proto(fault).into(),
                    legal_guarantee_end: legal_guarantee_end
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    programme_id: programme_id.unwrap_or_default(),
                    part_covered_until: part_covered_until.to_string(),
                    legal_extension_months,
                }
                .encode_to_vec(),
            ),
            Event::RepairProgressedAbroad {
                customer_id,
                repair_order_id,
                step,
                walk_in,
                region,
            } => (
                pb::RepairProgressedAbroad::NAME,
                pb::RepairProgressedAbroad {
                    device_id: id,
                    customer_id,
                    repair_order_id,
                    step: step.as_str().to_owned(),
                    region,
                    walk_in,
                }
                .encode_to_vec(),
            ),
            Event::EnrolledInProgramme {
                customer_id,
                model,
                programme_id,
                programme_version,
                kind,
                faults,
                remedy,
                ends,
                ..
            } => (
                pb::EnrolledInProgramme::NAME,
                pb::EnrolledInProgramme {
                    device_id: id,
                    customer_id,
                    model,
                    programme_id,
                    programme_version,
                    kind: kind.as_str().to_owned(),
                    faults: faults
                        .into_iter()
                        .map(|f| fault_to_proto(f).into())
                        .collect(),
                    remedy: crate::convert::remedy(remedy).into(),
                    ends: ends.to_string(),
                }
                .encode_to_vec(),
            ),
            // A plan is news once it is paid for (ExtendedWarrantyPurchased).
            Event::PlanOrdered { .. } | Event::PlanPaymentFailed { .. } => return Ok(None),
        };
        Ok(Some(Outbound {
            payload,
            content_type: protobuf(&format!("aftersales.warranty.v1.{name}")),
        }))
    }
}

/// A write queued for its home region, as that region reads it.
fn forwarded(event: &RecordedEvent, key: &DeviceKey) -> Result<Outbound, String> {
    let forward::Event::WriteForwarded {
        home_region, write, ..
    } = event.decode().map_err(|e| e.to_string())?;
    let write = match write {
        Write::Claim {
            repair_order_id,
            fault,
            fault_date,
        } => pb::write_forwarded::Write::Claim(pb::ForwardedClaim {
            repair_order_id,
            fault_category: fault_to_proto(fault).into(),
            fault_date: fault_date.to_string(),
        }),
        Write::Void { reason, evidence } => {
            pb::write_forwarded::Write::Void(pb::ForwardedVoid { reason, evidence })
        }
        Write::RepairStep {
            repair_order_id,
            step,
            walk_in,
        } => pb::write_forwarded::Write::RepairStep(pb::ForwardedRepairStep {
            repair_order_id,
            step: step.as_str().to_owned(),
            walk_in,
        }),
    };
    Ok(Outbound {
        payload: pb::WriteForwarded {
            device_id: Some(DeviceId::from(key)),
            home_region,
            write: Some(write),
        }
        .encode_to_vec(),
        content_type: protobuf(&format!(
            "aftersales.warranty.v1.{}",
            pb::WriteForwarded::NAME
        )),
    })
}
