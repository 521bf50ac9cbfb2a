//! What parts does when repair's events arrive, exactly once each (the inbox
//! and the stock's new events commit together).
//!
//! - repair `PartsReleased`: the order is done with the parts it held and did
//!   not fit (returned unrepaired, or repaired without them); each unit goes
//!   back to the center's stock, or to the next order in line.

use aftersales_eventstore::{AnyEventStore, CommandHandler, StoreTransaction};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::repair as rpb;
use prost::Name;

use crate::app::stock_stream;
use crate::domain::stock::{Command, Stock};

/// The durable consumer of repair's events.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![Subscription::new(
        "parts-from-repair",
        "repair",
        [<rpb::PartsReleased as Name>::NAME],
    )?])
}

/// Turns repair orders done with their parts into releases.
#[derive(Debug, Clone)]
pub struct RepairReactions {
    stock: CommandHandler<Stock, AnyEventStore>,
    region: String,
}

impl RepairReactions {
    pub fn new(store: AnyEventStore, region: impl Into<String>) -> Self {
        Self {
            stock: CommandHandler::new(store),
            region: region.into(),
        }
    }
}

impl Handler for RepairReactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        if event.event_type != <rpb::PartsReleased as Name>::NAME {
            return Err(HandlerError::permanent(format!(
                "{}: not an event this consumer handles",
                event.event_type
            )));
        }
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
}
