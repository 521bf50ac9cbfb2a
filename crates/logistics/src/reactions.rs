//! What logistics does when repair's events arrive, exactly once each (the inbox
//! row and the new events commit together, and every id is derived from the
//! source event, so a redelivery writes nothing new):
//!
//! - `RepairOrderOpened`, mail-in: the inbound shipment from the customer to the
//!   depot serving their country, with its label; every order: custody starts
//!   with the customer.
//! - `ReadyForReturn`, mail-in: the outbound shipment back to the customer.
//! - `RepairCancelled`, mail-in: the inbound shipment is cancelled if the carrier
//!   does not have the parcel yet.
//! - `DeviceCheckedIn` and `DeviceCollected`: custody at a walk-in center.
//!
//! An order is read through the batch's transaction: a step applied in the same
//! batch as the event that opened its order finds it.

use aftersales_eventstore::{CommandContext, StoreTransaction};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::repair as rpb;
use aftersales_runtime::sealed;
use prost::Name;
use uuid::Uuid;

use crate::app::{Logistics, NewShipment, PHONE_PARCEL, order_stream, shipment_stream};
use crate::convert::address_from_proto;
use crate::domain::DomainError;
use crate::domain::custody::{Command as OrderCommand, MailIn};
use crate::domain::shipment::{Command as ShipmentCommand, Direction, Purpose};

const EVENT_TYPES: [&str; 5] = [
    <rpb::RepairOrderOpened as Name>::NAME,
    <rpb::ReadyForReturn as Name>::NAME,
    <rpb::RepairCancelled as Name>::NAME,
    <rpb::DeviceCheckedIn as Name>::NAME,
    <rpb::DeviceCollected as Name>::NAME,
];

/// The durable consumers of other services' events: repair's.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![Subscription::new(
        "logistics-from-repair",
        "repair",
        EVENT_TYPES,
    )?])
}

#[derive(Debug, Clone)]
pub struct RepairReactions {
    app: Logistics,
    region: String,
}

impl RepairReactions {
    pub fn new(app: Logistics, region: impl Into<String>) -> Self {
        Self {
            app,
            region: region.into(),
        }
    }

    /// The context of a reaction: ids derived from the source event and `what`.
    fn context(&self, event: &InboundEvent, what: &[u8]) -> CommandContext {
        event.reaction_context(what, &self.region)
    }

    async fn on_order(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
        command: &OrderCommand,
        ctx: &CommandContext,
    ) -> Result<(), HandlerError> {
        self.app
            .orders()
            .handle_in(
                tx,
                &order_stream(order_id).map_err(HandlerError::from)?,
                command,
                ctx,
            )
            .await?;
        Ok(())
    }

    async fn opened(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let opened: rpb::RepairOrderOpened = event.proto().map_err(HandlerError::permanent)?;
        let at = event.metadata.recorded_at;
        let customer_id = Some(opened.customer_id.clone()).filter(|c| !c.is_empty());
        let command = match rpb::Channel::try_from(opened.channel) {
            Ok(rpb::Channel::MailIn) => {
                let personal: Option<rpb::RepairOrderPersonal> = match &opened.personal {
                    Some(sealed) => {
                        let keyring = self.app.store().keyring().ok_or_else(|| {
                            HandlerError::permanent("personal data needs a keyring")
                        })?;
                        sealed::open(keyring, sealed)
                            .await
                            .map_err(sealed::handler_error)?
                    }
                    None => None,
                };
                // Erased before the parcel was made: there is nobody to collect from.
                let customer = address_from_proto(
                    personal
                        .and_then(|p| p.contact_address)
                        .or(opened.contact_address)
                        .ok_or_else(|| {
                            HandlerError::permanent("a mail-in order without a contact address")
                        })?,
                );
                let serving = self.app.depots().for_country(&customer.country);
                let (depot, depot_id) = (serving.address(), serving.id.clone());
                let shipment_id = Uuid::new_v5(&event.event_id, b"inbound").to_string();
                let new = NewShipment {
                    customer_id: customer_id.clone(),
                    direction: Direction::Inbound,
                    purpose: Purpose::RepairOrder(opened.order_id.clone()),
                    from: customer.clone(),
                    to: depot.clone(),
                    parcel: PHONE_PARCEL,
                    carrier: None,
                    depot: Some(depot_id.clone()),
                };
                self.app
                    .create_shipment_in(tx, &shipment_id, new, &self.context(event, b"inbound"))
                    .await
                    .map_err(HandlerError::from)?;
                OrderCommand::Opened {
                    customer_id: customer_id.clone(),
                    center_id: None,
                    mail_in: Some(MailIn {
                        customer,
                        depot,
                        inbound_shipment_id: shipment_id,
                        depot_id: Some(depot_id),
                    }),
                    at,
                }
            }
            Ok(rpb::Channel::WalkIn) => OrderCommand::Opened {
                customer_id,
                center_id: Some(opened.service_center_id.clone()),
                mail_in: None,
                at,
            },
            Ok(rpb::Channel::Unspecified) | Err(_) => {
                return Err(HandlerError::permanent("an order without a channel"));
            }
        };
        self.on_order(
            tx,
            &opened.order_id,
            &command,
            &self.context(event, b"order"),
        )
        .await
    }

    async fn ready_for_return(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let ready: rpb::ReadyForReturn = event.proto().map_err(HandlerError::permanent)?;
        let order = self
            .app
            .order_in(tx, &ready.order_id)
            .await
            .map_err(HandlerError::from)?;
        if !order.known {
            return Err(HandlerError::transient(format!(
                "order {} is not known here yet",
                ready.order_id
            )));
        }
        let Some(mail_in) = order.mail_in else {
            return Ok(()); // collected at the center
        };
        let shipment_id = Uuid::new_v5(&event.event_id, b"outbound").to_string();
        let new = NewShipment {
            customer_id: order.customer_id.clone(),
            direction: Direction::Outbound,
            purpose: Purpose::RepairOrder(ready.order_id.clone()),
            from: mail_in.depot,
            to: mail_in.customer,
            parcel: PHONE_PARCEL,
            carrier: None,
            depot: mail_in.depot_id,
        };
        self.app
            .create_shipment_in(tx, &shipment_id, new, &self.context(event, b"outbound"))
            .await
            .map_err(HandlerError::from)?;
        self.on_order(
            tx,
            &ready.order_id,
            &OrderCommand::ReturnShipped { shipment_id },
            &self.context(event, b"order"),
        )
        .await
    }

    async fn cancelled(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let cancelled: rpb::RepairCancelled = event.proto().map_err(HandlerError::permanent)?;
        let order = self
            .app
            .order_in(tx, &cancelled.order_id)
            .await
            .map_err(HandlerError::from)?;
        let Some(mail_in) = order.mail_in else {
            return Ok(());
        };
        let command = ShipmentCommand::Cancel {
            reason: format!("repair order cancelled: {}", cancelled.reason),
        };
        let stream = shipment_stream(&mail_in.inbound_shipment_id).map_err(HandlerError::from)?;
        let ctx = self.context(event, b"cancel");
        match self
            .app
            .shipments()
            .handle_in(tx, &stream, &command, &ctx)
            .await
        {
            Ok(_) => Ok(()),
            // The carrier has it: it arrives, and repair sends it back.
            Err(aftersales_eventstore::HandleError::Domain(DomainError::Precondition(why))) => {
                tracing::info!(order_id = %cancelled.order_id, %why, "inbound parcel not cancelled");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn custody(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let at = event.metadata.recorded_at;
        let (order_id, command) = if event.event_type == <rpb::DeviceCheckedIn as Name>::NAME {
            let e: rpb::DeviceCheckedIn = event.proto().map_err(HandlerError::permanent)?;
            (e.order_id, OrderCommand::CheckedIn { at })
        } else {
            let e: rpb::DeviceCollected = event.proto().map_err(HandlerError::permanent)?;
            (e.order_id, OrderCommand::Collected { at })
        };
        if !self
            .app
            .order_in(tx, &order_id)
            .await
            .map_err(HandlerError::from)?
            .known
        {
            return Err(HandlerError::transient(format!(
                "order {order_id} is not known here yet"
            )));
        }
        self.on_order(tx, &order_id, &command, &self.context(event, b"order"))
            .await
    }
}

impl Handler for RepairReactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            <rpb::RepairOrderOpened as Name>::NAME => self.opened(event, tx).await,
            <rpb::ReadyForReturn as Name>::NAME => self.ready_for_return(event, tx).await,
            <rpb::RepairCancelled as Name>::NAME => self.cancelled(event, tx).await,
            <rpb::DeviceCheckedIn as Name>::NAME | <rpb::DeviceCollected as Name>::NAME => {
                self.custody(event, tx).await
            }
            other => Err(HandlerError::permanent(format!(
                "{other}: not an event this consumer handles"
            ))),
        }
    }
}
