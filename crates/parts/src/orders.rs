//! Accessory orders over the event store: priced and paid at the provider when
//! placed, settled by its webhook, packed and handed to logistics at the depot,
//! delivered when logistics says so (and each unit then registered with the
//! phone's warranty). A faulty accessory's replacement is such an order, judged
//! by warranty first: free of charge when covered, paid like a sale when not.

use std::sync::Arc;

use aftersales_core::Error;
use aftersales_core::address::PostalAddress;
use aftersales_core::types::{CountryCode, DeviceKey};
use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, Decider as _, StoreTransaction, StreamId,
};
use aftersales_payments::webhook::Outcome;
use aftersales_payments::{PaymentProvider, PaymentRequest, PaymentStatus, RefundRequest};
use aftersales_proto::common::DeviceId;
use aftersales_proto::logistics as lpb;
use aftersales_proto::logistics::logistics_service_client::LogisticsServiceClient;
use aftersales_proto::warranty as wpb;
use aftersales_proto::warranty::warranty_service_client::WarrantyServiceClient;
use aftersales_runtime::telemetry::TracedChannel;
use chrono::NaiveDate;
use uuid::Uuid;

use crate::app::{AppResult, Parts};
use crate::domain::DomainError;
use crate::domain::order::{
    self, AccessoryOrder, Command, Label, OrderState, PackedUnit, Replacing, Settlement, Stage,
    Wanted,
};

/// The stream of accessory order `id`.
pub fn order_stream(id: &str) -> AppResult<StreamId> {
    Uuid::parse_str(id).map_err(|_| DomainError::invalid("order_id", "is not an order id"))?;
    StreamId::parse(format!("accessory-order-{id}"))
        .map_err(|e| DomainError::invalid("order_id", e.to_string()).into())
}

/// What a customer orders.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub customer_id: String,
    /// The phone the accessories are for, if any.
    pub device: Option<DeviceKey>,
    pub lines: Vec<Wanted>,
    pub address: PostalAddress,
    pub payment_method: String,
}

/// A customer's claim for a faulty accessory of their phone.
#[derive(Debug, Clone)]
pub struct AccessoryClaim {
    pub customer_id: String,
    pub device: DeviceKey,
    /// The faulty unit, as registered with the phone's warranty.
    pub faulty_serial: String,
    /// As warranty names fault categories: "charging", "audio", …
    pub fault: String,
    /// The catalog accessory sent in its place.
    pub number: String,
    pub address: PostalAddress,
    /// Needed only when warranty does not cover the fault.
    pub payment_method: String,
}

/// The order replacing faulty unit `serial` of `device`: one per unit, so a
/// claim asked twice finds the first.
fn replacement_id(device: &DeviceKey, serial: &str) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("accessory-replacement:{}:{serial}", device.name()).as_bytes(),
    )
    .to_string()
}

/// An amount for a person to read: "29.63 EUR" (every currency sold in has
/// two decimals).
fn amount(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {currency}", minor / 100, (minor % 100).abs())
}

/// An order as its log leaves it.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub order_id: String,
    pub state: OrderState,
    pub version: u64,
}

/// Which way a parcel of an order goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Out,
    /// The order, withdrawn from, back to the depot.
    Back,
    /// A replaced faulty unit back to the depot.
    Faulty,
}

/// How long another service may take to answer.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The accessory order use cases.
#[derive(Debug, Clone)]
pub struct AccessoryOrders {
    parts: Parts,
    orders: CommandHandler<AccessoryOrder, AnyEventStore>,
    payments: Arc<dyn PaymentProvider>,
    logistics: Option<LogisticsServiceClient<TracedChannel>>,
    warranty: Option<WarrantyServiceClient<TracedChannel>>,
}

fn unavailable(what: &str, status: &tonic::Status) -> Error {
    Error::unavailable(format!("{what}: {}", status.message()))
}

impl AccessoryOrders {
    pub fn new(
        parts: Parts,
        payments: Arc<dyn PaymentProvider>,
        logistics: Option<LogisticsServiceClient<TracedChannel>>,
        warranty: Option<WarrantyServiceClient<TracedChannel>>,
    ) -> Self {
        Self {
            orders: CommandHandler::new(parts.store().clone()),
            parts,
            payments,
            logistics,
            warranty,
        }
    }

    /// The parts log the orders are in.
    pub fn store(&self) -> &AnyEventStore {
        self.parts.store()
    }

    /// The time, as this service reads it.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.parts.now()
    }

    /// The phone's model, as warranty has it.
    async fn model_of(&self, device: &DeviceKey, ctx: &CommandContext) -> AppResult<String> {
        Ok(self.device(device, ctx).await?.model)
    }

    /// The phone as warranty has it.
    async fn device(&self, device: &DeviceKey, ctx: &CommandContext) -> AppResult<wpb::Device> {
        let mut warranty = self
            .warranty
            .clone()
            .ok_or_else(|| Error::unavailable("no warranty service configured"))?;
        let request = aftersales_runtime::request::on_behalf(
            wpb::GetDeviceRequest {
                device_id: Some(DeviceId::from(device)),
            },
            ctx,
        );
        match tokio::time::timeout(CALL_TIMEOUT, warranty.get_device(request)).await {
            Ok(Ok(found)) => Ok(found.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
                Err(DomainError::invalid("device_id", "is not a registered phone").into())
            }
            Ok(Err(status)) => Err(unavailable("warranty", &status)),
            Err(_) => Err(Error::unavailable("warranty did not answer in time")),
        }
    }

    /// Prices the order from its delivery country's list and creates its
    /// payment at the provider (once per order: a retried request with the same
    /// command id finds both), then records it waiting for the payment.
    pub async fn place(&self, new: NewOrder, ctx: &CommandContext) -> AppResult<OrderView> {
        let today = ctx.now.date_naive();
        crate::domain::text("payment_method", &new.payment_method, 200, true)?;
        let country = CountryCode::parse("address.country", &new.address.country)?;
        let list = self.parts.price_list(country.as_str()).ok_or_else(|| {
            DomainError::invalid(
                "address.country",
                format!("accessories are not sold in {country}"),
            )
        })?;
        let model = match &new.device {
            Some(device) => Some(self.model_of(device, ctx).await?),
            None => None,
        };
        let lines = order::price(
            self.parts.catalog(),
            list,
            &new.lines,
            model.as_deref(),
            today,
        )?;
        let order_id = ctx.derived_id(b"accessory-order").to_string();
        let mut place = Command::Place {
            customer_id: new.customer_id.trim().to_owned(),
            country: country.as_str().to_owned(),
            currency: list.currency.clone(),
            tax_display: list.tax.display,
            device: new.device.as_ref().map(DeviceKey::name),
            lines,
            address: new.address,
            payment_id: "to be created".into(),
            withdrawal_days: list.withdrawal_days,
            replacing: None,
            today,
        };
        // Decided once before anything is charged, so a bad order costs nothing.
        let Some(order::Event::AccessoryOrderPlaced { total, .. }) =
            AccessoryOrder::decide(&None, &place)?.into_iter().next()
        else {
            return Err(Error::internal("placing an order decided nothing"));
        };
        let payment = self
            .payments
            .create(&PaymentRequest {
                idempotency_key: format!("accessory-order:{order_id}"),
                amount_minor: total.gross,
                currency: list.currency.clone(),
                description: format!("Accessory order {order_id}"),
                method: new.payment_method,
            })
            .await?;
        if let Command::Place { payment_id, .. } = &mut place {
            *payment_id = payment.id;
        }
        let stream = order_stream(&order_id)?;
        let handled = self.orders.handle(&stream, &place, ctx).await?;
        self.view(order_id, handled.state, handled.version)
    }

    /// A faulty accessory of the customer's phone replaced: warranty judges
    /// the fault; covered, the replacement is placed free of charge (its faulty
    /// unit asked back where the catalog says so); not, it is priced from the
    /// delivery country's list and its payment created, as for a sale. A claim
    /// for a unit already being replaced answers with that order.
    pub async fn replace(
        &self,
        claim: AccessoryClaim,
        ctx: &CommandContext,
    ) -> AppResult<OrderView> {
        let today = ctx.now.date_naive();
        let serial = claim.faulty_serial.trim();
        crate::domain::text("accessory_serial", serial, 40, true)?;
        crate::domain::text("number", &claim.number, 100, true)?;
        crate::domain::text("payment_method", &claim.payment_method, 200, false)?;
        let fault = wpb::FaultCategory::from_str_name(&format!(
            "FAULT_CATEGORY_{}",
            claim.fault.trim().to_ascii_uppercase()
        ))
        .filter(|f| *f != wpb::FaultCategory::Unspecified && claim.fault.len() <= 40)
        .ok_or_else(|| DomainError::invalid("fault", "is not a fault category"))?;
        let country = CountryCode::parse("address.country", &claim.address.country)?;
        let list = self.parts.price_list(country.as_str()).ok_or_else(|| {
            DomainError::invalid(
                "address.country",
                format!("accessories are not sent to {country}"),
            )
        })?;
        let phone = self.device(&claim.device, ctx).await?;
        if phone.customer_id != claim.customer_id.trim() {
            return Err(
                DomainError::invalid("device_id", "is not a phone of this customer").into(),
            );
        }
        let faulty = phone
            .accessories
            .iter()
            .find(|a| a.serial == serial)
            .ok_or_else(|| {
                DomainError::invalid(
                    "accessory_serial",
                    "is not an accessory registered with this phone",
                )
            })?;
        let accessory = self
            .parts
            .catalog()
            .accessories()
            .find(|a| a.number == claim.number.trim())
            .ok_or_else(|| DomainError::invalid("number", "is not an accessory in the catalog"))?;
        let faulty_kind = faulty
            .kind()
            .as_str_name()
            .trim_start_matches("ACCESSORY_KIND_")
            .to_ascii_lowercase();
        if accessory.kind != faulty_kind {
            return Err(DomainError::invalid(
                "number",
                format!(
                    "{} is a {}; the faulty unit is a {faulty_kind}",
                    accessory.number, accessory.kind
                ),
            )
            .into());
        }
        let lines = order::price(
            self.parts.catalog(),
            list,
            &[Wanted {
                number: accessory.number.clone(),
                quantity: 1,
            }],
            Some(&phone.model),
            today,
        )?;
        let order_id = replacement_id(&claim.device, serial);
        let stream = order_stream(&order_id)?;
        let existing = self.orders.load(&stream).await?;
        if let Some(state) = &existing.state
            && state.stage() != Stage::PaymentFailed
        {
            return self.view(order_id, existing.state, existing.version);
        }
        let decision = self
            .accessory_coverage(&claim.device, serial, fault, ctx)
            .await?;
        let mut place = Command::Place {
            customer_id: claim.customer_id.trim().to_owned(),
            country: country.as_str().to_owned(),
            currency: list.currency.clone(),
            tax_display: list.tax.display,
            device: Some(claim.device.name()),
            lines,
            address: claim.address,
            payment_id: if decision.covered {
                String::new()
            } else {
                "to be created".into()
            },
            withdrawal_days: list.withdrawal_days,
            replacing: Some(Replacing {
                faulty_serial: serial.to_owned(),
                fault: claim.fault.trim().to_ascii_lowercase(),
                covered: decision.covered,
                reason: decision.reason.chars().take(100).collect(),
                return_faulty: decision.covered && accessory.return_faulty,
            }),
            today,
        };
        // Decided before anything is charged, so a bad claim costs nothing.
        let Some(order::Event::AccessoryOrderPlaced { total, .. }) =
            AccessoryOrder::decide(&existing.state, &place)?
                .into_iter()
                .next()
        else {
            return Err(Error::internal("placing a replacement decided nothing"));
        };
        if !decision.covered {
            let method = claim.payment_method.trim();
            if method.is_empty() {
                return Err(DomainError::Precondition(format!(
                    "{serial} is not covered ({}): its replacement costs {}; give a payment method to order it",
                    decision.explanation,
                    amount(total.gross, &list.currency)
                ))
                .into());
            }
            let payment = self
                .payments
                .create(&PaymentRequest {
                    // One payment per attempt: a new one after a failed payment.
                    idempotency_key: format!(
                        "accessory-replacement:{order_id}:{}",
                        existing.version
                    ),
                    amount_minor: total.gross,
                    currency: list.currency.clone(),
                    description: format!("Accessory replacement {order_id}"),
                    method: method.to_owned(),
                })
                .await?;
            if let Command::Place { payment_id, .. } = &mut place {
                *payment_id = payment.id;
            }
        }
        let handled = self.orders.handle(&stream, &place, ctx).await?;
        self.view(order_id, handled.state, handled.version)
    }

    /// Warranty's judgement of the fault of accessory `serial` today.
    async fn accessory_coverage(
        &self,
        device: &DeviceKey,
        serial: &str,
        fault: wpb::FaultCategory,
        ctx: &CommandContext,
    ) -> AppResult<wpb::CoverageDecision> {
        let mut warranty = self
            .warranty
            .clone()
            .ok_or_else(|| Error::unavailable("no warranty service configured"))?;
        let request = aftersales_runtime::request::on_behalf(
            wpb::CheckAccessoryCoverageRequest {
                device_id: Some(DeviceId::from(device)),
                accessory_serial: serial.to_owned(),
                fault_category: fault.into(),
                ..Default::default()
            },
            ctx,
        );
        match tokio::time::timeout(CALL_TIMEOUT, warranty.check_accessory_coverage(request)).await {
            Ok(Ok(decision)) => Ok(decision.into_inner()),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => Err(DomainError::invalid(
                "accessory_serial",
                "is not registered with this phone",
            )
            .into()),
            Ok(Err(status)) => Err(unavailable("warranty", &status)),
            Err(_) => Err(Error::unavailable("warranty did not answer in time")),
        }
    }

    fn view(
        &self,
        order_id: String,
        state: Option<OrderState>,
        version: u64,
    ) -> AppResult<OrderView> {
        let state =
            state.ok_or_else(|| DomainError::NotFound(format!("accessory order {order_id}")))?;
        Ok(OrderView {
            order_id,
            state,
            version,
        })
    }

    /// The order; NOT_FOUND also when `customer_id` is given and is not its customer.
    pub async fn get(&self, order_id: &str, customer_id: Option<&str>) -> AppResult<OrderView> {
        let loaded = self.orders.load(&order_stream(order_id)?).await?;
        let view = self.view(order_id.to_owned(), loaded.state, loaded.version)?;
        if customer_id.is_some_and(|c| c != view.state.customer_id) {
            return Err(DomainError::NotFound(format!("accessory order {order_id}")).into());
        }
        Ok(view)
    }

    /// Applies what the provider's webhook says about `payment_id` (how it
    /// ended, or a refund on it): `true` if that changed its order now.
    /// NOT_FOUND while the payment is not known yet.
    pub async fn settle_from_webhook(
        &self,
        payment_id: &str,
        outcome: Outcome,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        let command = match outcome {
            Outcome::Settled(PaymentStatus::Pending) => return Ok(false),
            Outcome::Settled(PaymentStatus::Succeeded) => Command::SettlePayment {
                payment_id: payment_id.to_owned(),
                settlement: Settlement::Paid,
            },
            Outcome::Settled(PaymentStatus::Failed { reason }) => Command::SettlePayment {
                payment_id: payment_id.to_owned(),
                settlement: Settlement::Failed { reason },
            },
            Outcome::Refunded { refund_id, .. } => Command::SettleRefund { refund_id },
        };
        let order_id = crate::projections::order_of_payment(self.parts.store(), payment_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("payment {payment_id}")))?;
        let handled = self
            .orders
            .handle(&order_stream(&order_id)?, &command, ctx)
            .await?;
        Ok(!handled.events.is_empty() && !handled.duplicate)
    }

    /// Asks the provider about every order still waiting for its payment, and
    /// settles each that ended: the reconciliation for a webhook that never
    /// came. How many settled now.
    pub async fn reconcile(&self, ctx: &CommandContext) -> AppResult<usize> {
        let pending = crate::projections::pending_payments(self.parts.store(), 500).await?;
        let mut settled = 0;
        for (payment_id, _) in pending {
            let payment = match self.payments.get(&payment_id).await {
                Ok(payment) => payment,
                Err(error) => {
                    tracing::warn!(%error, payment_id, "asking about a payment failed");
                    continue;
                }
            };
            if self
                .settle_from_webhook(&payment_id, Outcome::Settled(payment.status), ctx)
                .await?
            {
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Packs the paid order with `units` and has logistics ship it from the
    /// depot serving its country; the same packing again is the same shipment.
    pub async fn ship(
        &self,
        order_id: &str,
        units: Vec<PackedUnit>,
        ctx: &CommandContext,
    ) -> AppResult<OrderView> {
        let current = self.get(order_id, None).await?;
        let wants_back = current
            .state
            .replacing
            .as_ref()
            .is_some_and(|r| r.return_faulty);
        let (shipment_id, faulty_return) = match &current.state.shipment_id {
            Some(shipped) => (
                shipped.clone(),
                current.state.faulty_back.as_ref().map(|b| b.label.clone()),
            ),
            None => {
                // Refused before logistics is asked for anything.
                AccessoryOrder::decide(
                    &Some(current.state.clone()),
                    &Command::Ship {
                        shipment_id: "to be created".into(),
                        units: units.clone(),
                        faulty_return: wants_back.then(|| Label {
                            shipment_id: "to be created".into(),
                            carrier: String::new(),
                            tracking_number: String::new(),
                        }),
                    },
                )?;
                let address = &current.state.address;
                let out = self
                    .create_shipment(order_id, Direction::Out, address, ctx)
                    .await?;
                let back = if wants_back {
                    Some(
                        self.create_shipment(order_id, Direction::Faulty, address, ctx)
                            .await?,
                    )
                } else {
                    None
                };
                (out.shipment_id, back)
            }
        };
        let command = Command::Ship {
            shipment_id,
            units,
            faulty_return,
        };
        let handled = self
            .orders
            .handle(&order_stream(order_id)?, &command, ctx)
            .await?;
        self.view(order_id.to_owned(), handled.state, handled.version)
    }

    /// The customer withdraws within the period: a parcel back to the depot
    /// (its label from logistics), refunded in full once it arrives.
    pub async fn request_return(
        &self,
        order_id: &str,
        customer_id: Option<&str>,
        ctx: &CommandContext,
    ) -> AppResult<OrderView> {
        let current = self.get(order_id, customer_id).await?;
        let shipment_id = match &current.state.giving_back {
            Some(back) => back.shipment_id.clone(),
            None => {
                // Refused before logistics is asked for a label.
                AccessoryOrder::decide(
                    &Some(current.state.clone()),
                    &Command::RequestReturn {
                        return_shipment_id: "to be created".into(),
                        today: ctx.now.date_naive(),
                    },
                )?;
                self.create_shipment(order_id, Direction::Back, &current.state.address, ctx)
                    .await?
                    .shipment_id
            }
        };
        let command = Command::RequestReturn {
            return_shipment_id: shipment_id,
            today: ctx.now.date_naive(),
        };
        let handled = self
            .orders
            .handle(&order_stream(order_id)?, &command, ctx)
            .await?;
        self.view(order_id.to_owned(), handled.state, handled.version)
    }

    /// A parcel of the order arrived at the depot on `on` (logistics said so,
    /// once), recorded in `tx` with the event that said so: the order withdrawn
    /// from (refunded), or a replaced faulty unit. NOT_FOUND for a parcel of
    /// neither.
    pub async fn back_in(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
        shipment_id: &str,
        on: NaiveDate,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let current = self.get(order_id, None).await?;
        let withdrawn = current
            .state
            .giving_back
            .as_ref()
            .is_some_and(|b| b.shipment_id == shipment_id);
        if withdrawn {
            return self.returned_in(tx, &current, on, ctx).await;
        }
        let command = Command::ReceiveFaulty {
            shipment_id: shipment_id.to_owned(),
            on,
        };
        self.orders
            .handle_in(tx, &order_stream(order_id)?, &command, ctx)
            .await?;
        Ok(())
    }

    /// The order withdrawn from is back: the whole payment is refunded at the
    /// provider (once per order, by its key), and the return recorded.
    async fn returned_in(
        &self,
        tx: &mut StoreTransaction,
        current: &OrderView,
        on: NaiveDate,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let order_id = current.order_id.as_str();
        let order::Payment::Paid { payment_id } = &current.state.payment else {
            return Err(DomainError::Precondition(format!(
                "the order is {}: nothing was paid",
                current.state.stage().describe()
            ))
            .into());
        };
        let refund = self
            .payments
            .refund(&RefundRequest {
                idempotency_key: format!("accessory-order-refund:{order_id}"),
                payment_id: payment_id.clone(),
                amount_minor: current.state.total.gross,
            })
            .await?;
        let command = Command::ReceiveReturn {
            on,
            refund_id: refund.id,
        };
        self.orders
            .handle_in(tx, &order_stream(order_id)?, &command, ctx)
            .await?;
        Ok(())
    }

    /// The order's parcel out, or back, made once each: the command id is the
    /// order's, so a retry after a crash finds the parcel made before. The
    /// depot's end is left to logistics (the depot serving the country).
    async fn create_shipment(
        &self,
        order_id: &str,
        direction: Direction,
        customer: &PostalAddress,
        ctx: &CommandContext,
    ) -> AppResult<Label> {
        let mut logistics = self
            .logistics
            .clone()
            .ok_or_else(|| Error::unavailable("no logistics service configured"))?;
        let (kind, pb_direction, from, to) = match direction {
            Direction::Out => (
                "shipment",
                lpb::Direction::Outbound,
                None,
                Some(customer.into()),
            ),
            Direction::Back => (
                "return",
                lpb::Direction::Inbound,
                Some(customer.into()),
                None,
            ),
            Direction::Faulty => (
                "faulty",
                lpb::Direction::Inbound,
                Some(customer.into()),
                None,
            ),
        };
        let command_id = Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("accessory-order-{kind}:{order_id}").as_bytes(),
        );
        let mut request = aftersales_runtime::request::with_command_id(
            lpb::CreateShipmentRequest {
                direction: pb_direction.into(),
                repair_order_id: String::new(),
                accessory_replacement_id: order_id.to_owned(),
                from,
                to,
                // A boxed accessory.
                parcel: Some(lpb::Parcel {
                    weight_grams: 400,
                    length_mm: 220,
                    width_mm: 160,
                    height_mm: 80,
                }),
                carrier: String::new(),
            },
            command_id,
        );
        if let Ok(actor) = ctx.actor.parse() {
            request
                .metadata_mut()
                .insert(aftersales_runtime::request::END_USER_HEADER, actor);
        }
        match tokio::time::timeout(CALL_TIMEOUT, logistics.create_shipment(request)).await {
            Ok(Ok(shipment)) => {
                let shipment = shipment.into_inner();
                Ok(Label {
                    shipment_id: shipment.shipment_id,
                    carrier: shipment.carrier,
                    tracking_number: shipment.tracking_number,
                })
            }
            Ok(Err(status)) => Err(unavailable("logistics did not ship the order", &status)),
            Err(_) => Err(Error::unavailable("logistics did not answer in time")),
        }
    }

    /// The order's parcel arrived on `on` (logistics said so, once): each unit
    /// is registered with the phone's warranty, then the order is delivered, in
    /// `tx` with the event that said so.
    pub async fn delivered_in(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
        on: NaiveDate,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let current = self.get(order_id, None).await?;
        if current.state.delivered_on.is_none()
            && let Some(device) = &current.state.device
        {
            self.register_units(device, &current.state, on, ctx).await?;
        }
        self.orders
            .handle_in(
                tx,
                &order_stream(order_id)?,
                &Command::MarkDelivered { on },
                ctx,
            )
            .await?;
        Ok(())
    }

    /// Each unit registered with the phone's warranty, bought on the day it
    /// arrived (a replacement under warranty as replacing the faulty unit, so
    /// it keeps that one's cover); registering the same unit again changes
    /// nothing there.
    async fn register_units(
        &self,
        device: &str,
        order: &OrderState,
        on: NaiveDate,
        ctx: &CommandContext,
    ) -> AppResult<()> {
        let Ok(key) = DeviceKey::from_name("device", device) else {
            return Ok(());
        };
        let mut warranty = self
            .warranty
            .clone()
            .ok_or_else(|| Error::unavailable("no warranty service configured"))?;
        let replaces = order
            .replacing
            .as_ref()
            .filter(|r| r.covered)
            .map(|r| r.faulty_serial.clone())
            .unwrap_or_default();
        for unit in &order.units {
            let kind = order
                .lines
                .iter()
                .find(|l| l.number == unit.number)
                .map_or("", |l| l.kind.as_str());
            let kind = wpb::AccessoryKind::from_str_name(&format!(
                "ACCESSORY_KIND_{}",
                kind.to_ascii_uppercase()
            ))
            .unwrap_or(wpb::AccessoryKind::Unspecified);
            let request = aftersales_runtime::request::on_behalf(
                wpb::RegisterAccessoryRequest {
                    device_id: Some(DeviceId::from(&key)),
                    accessory_serial: unit.serial.clone(),
                    kind: kind.into(),
                    purchase_date: on.to_string(),
                    replaces_serial: replaces.clone(),
                },
                ctx,
            );
            match tokio::time::timeout(CALL_TIMEOUT, warranty.register_accessory(request)).await {
                Ok(Ok(_)) => {}
                // Warranty will not take it (a serial known with other details,
                // a voided phone): delivered all the same, and said so.
                Ok(Err(status))
                    if matches!(
                        status.code(),
                        tonic::Code::AlreadyExists
                            | tonic::Code::InvalidArgument
                            | tonic::Code::FailedPrecondition
                            | tonic::Code::NotFound
                    ) =>
                {
                    tracing::warn!(
                        code = ?status.code(),
                        reason = status.message(),
                        "a delivered accessory was not registered with its phone's warranty"
                    );
                }
                Ok(Err(status)) => {
                    return Err(unavailable(
                        "warranty did not register the accessory",
                        &status,
                    ));
                }
                Err(_) => return Err(Error::unavailable("warranty did not answer in time")),
            }
        }
        Ok(())
    }
}

/// Parts as the merchant of accessories: the provider's webhook settles orders.
impl aftersales_payments::webhook::Merchant for AccessoryOrders {
    async fn settle(
        &self,
        payment_id: &str,
        outcome: Outcome,
        ctx: &CommandContext,
    ) -> AppResult<bool> {
        self.settle_from_webhook(payment_id, outcome, ctx).await
    }
}
