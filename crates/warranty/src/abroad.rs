//! Repairs made in this region of devices whose home is another region. The
//! owner's contact details and language are kept at home only, so each step the
//! owner is told of (opened, received, started, ready) is forwarded to the home
//! region like a claim: durably, once, and with nothing but the order's id, the
//! step and the channel. The home region records it on the device, and its
//! notification service tells the owner.

use aftersales_eventstore::{AnyEventStore, CommandHandler, StoreTransaction, on_connection};
use aftersales_messaging::{ConfigError, HandlerError, InboundEvent, Subscription};
use aftersales_proto::repair as rpb;
use prost::Name as _;

use crate::domain::DeviceKey;
use crate::domain::forward::{Forward, Forwarding, RepairStep, Write};

/// This region's repair events that are steps an owner abroad is told of.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![Subscription::new(
        "warranty-from-repair",
        "repair",
        [
            rpb::RepairOrderOpened::NAME,
            rpb::DeviceReceived::NAME,
            rpb::RepairStarted::NAME,
            rpb::ReadyForReturn::NAME,
        ],
    )?])
}

/// Forwards the steps of repairs here of other regions' devices.
#[derive(Debug, Clone)]
pub struct RepairsAbroad {
    region: String,
    forwards: CommandHandler<Forwarding, AnyEventStore>,
}

/// A repair here of another region's device.
#[derive(sqlx::FromRow)]
struct Order {
    stream_id: String,
    home_region: String,
    walk_in: bool,
}

impl RepairsAbroad {
    pub fn new(region: impl Into<String>, store: AnyEventStore) -> Self {
        Self {
            region: region.into(),
            forwards: CommandHandler::new(store),
        }
    }

    pub async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let (order_id, step) = match event.event_type.as_str() {
            name if name == rpb::RepairOrderOpened::NAME => {
                let e: rpb::RepairOrderOpened = event.proto().map_err(HandlerError::permanent)?;
                self.learn(&e, tx).await?;
                (e.order_id, RepairStep::Opened)
            }
            name if name == rpb::DeviceReceived::NAME => (
                event
                    .proto::<rpb::DeviceReceived>()
                    .map_err(HandlerError::permanent)?
                    .order_id,
                RepairStep::Received,
            ),
            name if name == rpb::RepairStarted::NAME => (
                event
                    .proto::<rpb::RepairStarted>()
                    .map_err(HandlerError::permanent)?
                    .order_id,
                RepairStep::Started,
            ),
            name if name == rpb::ReadyForReturn::NAME => (
                event
                    .proto::<rpb::ReadyForReturn>()
                    .map_err(HandlerError::permanent)?
                    .order_id,
                RepairStep::Ready,
            ),
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other}: not an event this consumer handles"
                )));
            }
        };
        let order: Option<Order> = on_connection!(tx.connection(), c => {
            sqlx::query_as(
                "SELECT stream_id, home_region, walk_in FROM warranty_repairs_abroad \
                 WHERE order_id = $1",
            )
            .bind(&order_id)
            .fetch_optional(c)
            .await
        })
        .map_err(HandlerError::transient)?;
        let Some(order) = order else {
            return Ok(()); // a device of this region: its owner is told here
        };
        // A walk-in's "ready" is the one the owner collects; a mail-in's return
        // is told by the parcel, in the region that sends it.
        if step == RepairStep::Ready && !order.walk_in {
            return Ok(());
        }
        let key = DeviceKey::from_stream_name(&order.stream_id).ok_or_else(|| {
            HandlerError::permanent(format!("{} is not a device stream", order.stream_id))
        })?;
        let ctx = event.reaction_context(b"warranty-repair-step", &self.region);
        let command = Forward {
            key,
            home_region: order.home_region,
            write: Write::RepairStep {
                repair_order_id: order_id,
                step,
                walk_in: order.walk_in,
            },
            today: event.metadata.recorded_at.date_naive(),
        };
        crate::replica::forward_in(&self.forwards, tx, &command, &ctx).await?;
        Ok(())
    }

    /// Remembers an order opened here for a device the replica holds.
    async fn learn(
        &self,
        opened: &rpb::RepairOrderOpened,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let Ok(key) = crate::convert::device_key(opened.device_id.as_ref()) else {
            return Ok(()); // not a device the warranty service knows either
        };
        let stream = key.stream_name();
        let walk_in = opened.channel == i32::from(rpb::Channel::WalkIn);
        on_connection!(tx.connection(), c => {
            sqlx::query(
                "INSERT INTO warranty_repairs_abroad (order_id, stream_id, home_region, walk_in) \
                 SELECT $1, stream_id, home_region, $2 FROM warranty_foreign_devices \
                 WHERE stream_id = $3 ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(&opened.order_id)
            .bind(walk_in)
            .bind(&stream)
            .execute(c)
            .await
            .map(|_| ())
        })
        .map_err(HandlerError::transient)
    }
}
