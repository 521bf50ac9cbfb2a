//! What parts does when other services' events arrive, exactly once each (the
//! inbox and parts' new events commit together).
//!
//! - repair `PartsReleased`: the order is done with the parts it held and did
//!   not fit (returned unrepaired, or repaired without them); each unit goes
//!   back to the center's stock, or to the next order in line.
//! - logistics `Delivered`, for an accessory order's parcel: the order is
//!   delivered, and its units registered with the phone's warranty; for its
//!   parcel coming back, the return is received and the payment refunded; for
//!   a replaced faulty unit, its arrival at the depot recorded.

use aftersales_eventstore::{AnyEventStore, CommandHandler, StoreTransaction};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::logistics as lpb;
use aftersales_proto::repair as rpb;
use prost::Name;

use crate::app::stock_stream;
use crate::domain::stock::{Command, Stock};
use crate::orders::{AccessoryOrders, order_stream};

/// The durable consumers, one per source service.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![
        Subscription::new(
            "parts-from-repair",
            "repair",
            [<rpb::PartsReleased as Name>::NAME],
        )?,
        Subscription::new(
            "parts-from-logistics",
            "logistics",
            [<lpb::Delivered as Name>::NAME],
        )?,
    ])
}

/// Applies repair's and logistics' events: one handler for every subscription.
#[derive(Debug, Clone)]
pub struct PartsReactions {
    stock: CommandHandler<Stock, AnyEventStore>,
    orders: AccessoryOrders,
    region: String,
}

impl PartsReactions {
    /// `stock` is the service's own handler: a part's stream grows with every
    /// hold and release, and a reaction starts from the state the last command
    /// left it in (or its snapshot), not from its first event.
    pub fn new(
        stock: CommandHandler<Stock, AnyEventStore>,
        orders: AccessoryOrders,
        region: impl Into<String>,
    ) -> Self {
        Self {
            stock,
            orders,
            region: region.into(),
        }
    }

    /// A repair order is done with the parts it held and did not fit.
    async fn released(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let released: rpb::PartsReleased = event.proto().map_err(HandlerError::permanent)?;
        for part_number in &released.part_numbers {
            let stream =
                stock_stream(&released.location, part_number).map_err(HandlerError::permanent)?;
            // The same event always yields the same stock events.
            let ctx = event.reaction_context(part_number.as_bytes(), &self.region);
            let command = Command::Release {
                order: released.order_id.clone(),
                reason: "the repair order is done with it".into(),
            };
            self.stock.handle_in(tx, &stream, &command, &ctx).await?;
        }
        Ok(())
    }

    /// An accessory order's parcel arrived: at the customer's, or back at the depot.
    async fn delivered(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let delivered: lpb::Delivered = event.proto().map_err(HandlerError::permanent)?;
        let order_id = delivered.accessory_replacement_id.trim();
        if order_id.is_empty() {
            return Ok(()); // a repair's parcel
        }
        // A parcel made for an accessory id that is no order here is not ours.
        if order_stream(order_id).is_err() {
            return Ok(());
        }
        let on = aftersales_runtime::request::timestamp_from_proto(
            "delivered_at",
            delivered.delivered_at.as_ref(),
        )
        .map_or(event.metadata.recorded_at.date_naive(), |t| t.date_naive());
        let ctx = event.reaction_context(order_id.as_bytes(), &self.region);
        let applied = match delivered.direction() {
            lpb::Direction::Inbound => {
                self.orders
                    .back_in(tx, order_id, &delivered.shipment_id, on, &ctx)
                    .await
            }
            lpb::Direction::Outbound | lpb::Direction::Unspecified => {
                self.orders.delivered_in(tx, order_id, on, &ctx).await
            }
        };
        match applied {
            Err(error) if error.kind() == aftersales_core::ErrorKind::NotFound => {
                tracing::debug!(order_id, "a delivered accessory parcel of no order here");
                Ok(())
            }
            applied => Ok(applied?),
        }
    }
}

impl Handler for PartsReactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            <rpb::PartsReleased as Name>::NAME => self.released(event, tx).await,
            <lpb::Delivered as Name>::NAME => self.delivered(event, tx).await,
            other => Err(HandlerError::permanent(format!(
                "{other}: not an event this consumer handles"
            ))),
        }
    }
}
