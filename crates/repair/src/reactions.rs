//! What repair does when other services' events arrive, exactly once each (the
//! inbox and the order's new events commit together).
//!
//! - logistics `Delivered`, inbound: the mail-in device has arrived (`DeviceReceived`);
//! - logistics `Delivered`, outbound: the device is back with its owner, the order
//!   closes (`ReturnDelivered`);
//! - parts `PartReserved` from the line: a part the order waited for is held
//!   for it now (`PartArrived`).

use aftersales_eventstore::{AnyEventStore, CommandHandler, StoreTransaction, StreamId};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::logistics as lpb;
use aftersales_proto::parts as ppb;
use prost::Name;

use crate::domain::order::{Command, RepairOrder};

/// The durable consumers of other services' events: logistics deliveries and
/// parts arriving for orders in line.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![
        Subscription::new(
            "repair-from-logistics",
            "logistics",
            [<lpb::Delivered as Name>::NAME],
        )?,
        Subscription::new(
            "repair-from-parts",
            "parts",
            [<ppb::PartReserved as Name>::NAME],
        )?,
    ])
}

/// Turns logistics deliveries and parts arriving into order transitions.
#[derive(Debug, Clone)]
pub struct OrderReactions {
    orders: CommandHandler<RepairOrder, AnyEventStore>,
    region: String,
}

impl OrderReactions {
    /// `orders` is the service's own handler, so a reaction starts from the
    /// state a command left an order in, and the next command from the
    /// reaction's.
    pub fn new(
        orders: CommandHandler<RepairOrder, AnyEventStore>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            orders,
            region: region.into(),
        }
    }
}

impl Handler for OrderReactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let (order_id, command) = if event.event_type == <lpb::Delivered as Name>::NAME {
            let delivered: lpb::Delivered = event.proto().map_err(HandlerError::permanent)?;
            if delivered.repair_order_id.trim().is_empty() {
                return Ok(()); // an accessory parcel: parts follows those
            }
            let command = match lpb::Direction::try_from(delivered.direction) {
                Ok(lpb::Direction::Inbound) => Command::ReceiveDevice {
                    shipment_id: delivered.shipment_id.clone(),
                    depot: Some(delivered.depot_id.trim().to_owned()).filter(|d| !d.is_empty()),
                },
                Ok(lpb::Direction::Outbound) => Command::ReturnDelivered {
                    shipment_id: delivered.shipment_id.clone(),
                },
                Ok(lpb::Direction::Unspecified) | Err(_) => {
                    return Err(HandlerError::permanent("Delivered without a direction"));
                }
            };
            (delivered.repair_order_id, command)
        } else if event.event_type == <ppb::PartReserved as Name>::NAME {
            let reserved: ppb::PartReserved = event.proto().map_err(HandlerError::permanent)?;
            if !reserved.from_waitlist {
                return Ok(()); // held at once: the diagnosis recorded it
            }
            let command = Command::PartArrived {
                part_number: reserved.part_number,
            };
            (reserved.repair_order_id, command)
        } else {
            return Err(HandlerError::permanent(format!(
                "{}: not an event this consumer handles",
                event.event_type
            )));
        };
        let stream =
            StreamId::parse(format!("repair-{order_id}")).map_err(HandlerError::permanent)?;
        let ctx = event.reaction_context(b"repair", &self.region);
        self.orders.handle_in(tx, &stream, &command, &ctx).await?;
        Ok(())
    }
}
