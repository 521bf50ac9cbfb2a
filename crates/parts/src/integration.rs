//! The public events of the parts service: stored stock events and accessory
//! order steps become the protobuf messages of
//! `proto/aftersales/parts/v1/events.proto`, published by the relay on
//! `aftersales.<region>.parts.<EventType>`. A stock stream's name holds its
//! location and part, an order's its id, so each event translates on its own.
//! Reorder points, a sale's placing and its return's steps before the refund
//! are internal and not published; a replacement's placing is.

use aftersales_eventstore::RecordedEvent;
use aftersales_messaging::envelope::protobuf;
use aftersales_messaging::{Outbound, Translate};
use aftersales_proto::parts as pb;
use aftersales_runtime::request::timestamp_to_proto;
use prost::{Message as _, Name as _};

use crate::app::parse_stock_stream;
use crate::domain::stock::Event;

/// The parts service's [`Translate`] for the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartsEvents;

fn count(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// An accessory order's step as its public message, if it is one.
fn order_step(order_id: &str, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
    use crate::domain::order::Event as Order;
    use aftersales_proto::common::Money;
    let order_id = order_id.to_owned();
    let (name, payload) = match event.decode::<Order>().map_err(|e| e.to_string())? {
        Order::AccessoryOrderPaid {
            customer_id,
            total_minor,
            currency,
            ..
        } => (
            pb::AccessoryOrderPaid::NAME,
            pb::AccessoryOrderPaid {
                order_id,
                customer_id,
                total: Some(Money {
                    minor_units: total_minor,
                    currency,
                }),
            }
            .encode_to_vec(),
        ),
        Order::AccessoryOrderPaymentFailed {
            customer_id,
            reason,
            ..
        } => (
            pb::AccessoryOrderPaymentFailed::NAME,
            pb::AccessoryOrderPaymentFailed {
                order_id,
                customer_id,
                reason,
            }
            .encode_to_vec(),
        ),
        Order::AccessoryOrderShipped {
            shipment_id,
            units,
            customer_id,
            faulty_return,
        } => {
            let back = faulty_return.unwrap_or_default();
            (
                pb::AccessoryOrderShipped::NAME,
                pb::AccessoryOrderShipped {
                    order_id,
                    customer_id,
                    shipment_id,
                    units: i32::try_from(units.len()).unwrap_or(i32::MAX),
                    faulty_return_shipment_id: back.shipment_id,
                    faulty_return_carrier: back.carrier,
                    faulty_return_tracking_number: back.tracking_number,
                }
                .encode_to_vec(),
            )
        }
        Order::AccessoryOrderPlaced {
            customer_id,
            currency,
            total,
            replacing: Some(replacing),
            ..
        } => (
            pb::AccessoryReplacementPlaced::NAME,
            pb::AccessoryReplacementPlaced {
                order_id,
                customer_id,
                covered: replacing.covered,
                price: Some(Money {
                    minor_units: total.gross,
                    currency,
                }),
                return_faulty: replacing.return_faulty,
            }
            .encode_to_vec(),
        ),
        Order::FaultyAccessoryReceived { on, customer_id } => (
            pb::FaultyAccessoryReceived::NAME,
            pb::FaultyAccessoryReceived {
                order_id,
                customer_id,
                received_on: on.to_string(),
            }
            .encode_to_vec(),
        ),
        Order::AccessoryOrderDelivered { on, customer_id } => (
            pb::AccessoryOrderDelivered::NAME,
            pb::AccessoryOrderDelivered {
                order_id,
                customer_id,
                delivered_on: on.to_string(),
            }
            .encode_to_vec(),
        ),
        Order::AccessoryOrderRefunded {
            customer_id,
            amount_minor,
            currency,
            ..
        } => (
            pb::AccessoryOrderRefunded::NAME,
            pb::AccessoryOrderRefunded {
                order_id,
                customer_id,
                amount: Some(Money {
                    minor_units: amount_minor,
                    currency,
                }),
            }
            .encode_to_vec(),
        ),
        Order::AccessoryOrderPlaced {
            replacing: None, ..
        }
        | Order::AccessoryOrderReturnRequested { .. }
        | Order::AccessoryOrderReturned { .. } => return Ok(None),
    };
    Ok(Some(Outbound {
        payload,
        content_type: protobuf(&format!("aftersales.parts.v1.{name}")),
    }))
}

impl Translate for PartsEvents {
    fn translate(&self, event: &RecordedEvent) -> Result<Option<Outbound>, String> {
        if let Some(order_id) = event.stream_id.as_str().strip_prefix("accessory-order-") {
            return order_step(order_id, event);
        }
        let Some((location, part)) = parse_stock_stream(event.stream_id.as_str()) else {
            return Ok(None);
        };
        let (location, part_number) = (location.to_owned(), part.to_owned());
        let domain: Event = event.decode().map_err(|e| e.to_string())?;
        let (name, payload) = match domain {
            Event::StockReceived {
                quantity,
                replenishment_id,
                ..
            } => (
                pb::StockReceived::NAME,
                pb::StockReceived {
                    location,
                    part_number,
                    quantity: count(quantity),
                    replenishment_id: replenishment_id.unwrap_or_default(),
                }
                .encode_to_vec(),
            ),
            Event::ReplenishmentOrdered {
                replenishment_id,
                quantity,
                expected_on,
                due_by,
                ..
            } => (
                pb::ReplenishmentOrdered::NAME,
                pb::ReplenishmentOrdered {
                    location,
                    part_number,
                    replenishment_id,
                    quantity: count(quantity),
                    expected_on: expected_on.to_string(),
                    due_by: due_by.to_string(),
                }
                .encode_to_vec(),
            ),
            Event::ReorderPointSet { .. } => return Ok(None),
            Event::PartReserved {
                order,
                quantity,
                from_waitlist,
            } => (
                pb::PartReserved::NAME,
                pb::PartReserved {
                    location,
                    part_number,
                    repair_order_id: order,
                    quantity: count(quantity),
                    from_waitlist,
                }
                .encode_to_vec(),
            ),
            Event::PartBackordered {
                order,
                quantity,
                expected_on,
            } => (
                pb::PartBackordered::NAME,
                pb::PartBackordered {
                    location,
                    part_number,
                    repair_order_id: order,
                    quantity: count(quantity),
                    expected_on: expected_on.map(|d| d.to_string()).unwrap_or_default(),
                }
                .encode_to_vec(),
            ),
            Event::ReservationReleased {
                order,
                quantity,
                was_waiting,
                reason,
            } => (
                pb::ReservationReleased::NAME,
                pb::ReservationReleased {
                    location,
                    part_number,
                    repair_order_id: order,
                    quantity: count(quantity),
                    was_waiting,
                    reason,
                }
                .encode_to_vec(),
            ),
            Event::PartConsumed { order, serial } => (
                pb::PartConsumed::NAME,
                pb::PartConsumed {
                    location,
                    part_number,
                    repair_order_id: order,
                    serial,
                }
                .encode_to_vec(),
            ),
            Event::StockLow {
                available,
                reorder_point,
                on_order,
            } => (
                pb::StockLow::NAME,
                pb::StockLow {
                    location,
                    part_number,
                    available: count(available),
                    reorder_point: count(reorder_point),
                    on_order: count(on_order),
                }
                .encode_to_vec(),
            ),
            Event::ReplenishmentOverdue {
                replenishment_id,
                ordered_at,
                due_by,
            } => (
                pb::ReplenishmentOverdue::NAME,
                pb::ReplenishmentOverdue {
                    location,
                    part_number,
                    replenishment_id,
                    due_by: due_by.to_string(),
                    ordered_at: Some(timestamp_to_proto(ordered_at)),
                }
                .encode_to_vec(),
            ),
        };
        Ok(Some(Outbound {
            payload,
            content_type: protobuf(&format!("aftersales.parts.v1.{name}")),
        }))
    }
}
