//! An accessory order: original accessories sold to a customer, priced from the
//! country's price list with its tax, paid through the payment provider, packed
//! at the depot with each unit's serial, shipped by logistics and delivered. One
//! stream per order (`accessory-order-<id>`).
//!
//! The payment settles once, whatever the provider's webhook repeats or
//! reorders; nothing is packed before it is paid; an order is shipped once.
//! Within the country's withdrawal period after delivery the customer may send
//! it back; once the parcel is back the whole payment is refunded, once.
//!
//! A replacement is an order too: one unit for a faulty accessory of the
//! customer's phone, free of charge when warranty covers the fault (and then,
//! where the catalog asks, the faulty unit comes back with a label sent along),
//! priced and paid like a sale when it does not.

use aftersales_core::address::PostalAddress;
use aftersales_eventstore::{Decider, DomainEvent};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use super::prices::{Price, PriceList, TaxDisplay};
use super::{DomainError, text};

/// Units of one accessory an order may hold, and lines an order may have.
pub const MAX_QUANTITY: u32 = 10;
pub const MAX_LINES: usize = 10;

/// One accessory of an order, as priced when it was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub number: String,
    pub name: String,
    /// As warranty names accessory kinds: charger, cable, case, earbuds.
    pub kind: String,
    pub quantity: u32,
    pub unit: Price,
    pub total: Price,
}

/// What a customer asks for: an accessory number and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub number: String,
    pub quantity: u32,
}

/// The order's lines priced from `list` in force on `today`, for a phone of
/// `model` when the order names one. Bad lines name their field.
pub fn price(
    catalog: &Catalog,
    list: &PriceList,
    wanted: &[Wanted],
    model: Option<&str>,
    today: NaiveDate,
) -> Result<Vec<OrderLine>, DomainError> {
    if wanted.is_empty() || wanted.len() > MAX_LINES {
        return Err(DomainError::invalid(
            "lines",
            format!("an order has 1 to {MAX_LINES} lines"),
        ));
    }
    let version = list.version_on(today).ok_or_else(|| {
        DomainError::Precondition(format!("no price list in force in {}", list.country))
    })?;
    let mut lines: Vec<OrderLine> = Vec::with_capacity(wanted.len());
    for want in wanted {
        let accessory = catalog
            .accessories()
            .find(|a| a.number == want.number)
            .ok_or_else(|| {
                DomainError::invalid(
                    "lines.number",
                    format!("{:?} is not an accessory in the catalog", want.number),
                )
            })?;
        if want.quantity == 0 || want.quantity > MAX_QUANTITY {
            return Err(DomainError::invalid(
                "lines.quantity",
                format!("must be 1 to {MAX_QUANTITY}"),
            ));
        }
        if lines.iter().any(|l| l.number == want.number) {
            return Err(DomainError::invalid(
                "lines.number",
                format!("{} is on two lines", want.number),
            ));
        }
        if let Some(model) = model
            && !accessory.models.is_empty()
            && !accessory.models.iter().any(|m| m == model)
        {
            return Err(DomainError::invalid(
                "lines.number",
                format!("{} does not fit the {model}", accessory.number),
            ));
        }
        let net = version.accessories.get(&accessory.number).ok_or_else(|| {
            DomainError::Precondition(format!(
                "{} is not sold in {}",
                accessory.number, list.country
            ))
        })?;
        lines.push(OrderLine {
            number: accessory.number.clone(),
            name: accessory.name.clone(),
            kind: accessory.kind.clone(),
            quantity: want.quantity,
            unit: Price::of(*net, &list.tax),
            total: Price::of(net * i64::from(want.quantity), &list.tax),
        });
    }
    Ok(lines)
}

/// A unit packed for the order: which accessory, and its serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedUnit {
    pub number: String,
    pub serial: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Payment {
    Pending {
        payment_id: String,
    },
    Paid {
        payment_id: String,
    },
    Failed {
        payment_id: String,
        reason: String,
    },
    /// A replacement under warranty: nothing to pay.
    NotDue,
}

/// The faulty accessory an order replaces, as warranty judged the claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacing {
    pub faulty_serial: String,
    /// As warranty names fault categories: "charging", "audio", …
    pub fault: String,
    /// Covered by the accessory's warranty: sent free of charge.
    pub covered: bool,
    /// Warranty's machine-readable reason ("within_base_warranty", "expired", …).
    pub reason: String,
    /// The faulty unit comes back to the depot (free replacements the catalog
    /// asks back), with a label sent along with the replacement.
    pub return_faulty: bool,
}

/// A parcel's label: its shipment at logistics, the carrier and the number it
/// is handed in with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub shipment_id: String,
    pub carrier: String,
    pub tracking_number: String,
}

/// The faulty unit's way back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultyReturn {
    pub label: Label,
    pub received_on: Option<NaiveDate>,
}

/// An order, as its history leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub customer_id: String,
    pub country: String,
    pub currency: String,
    pub tax_display: TaxDisplay,
    /// The phone the accessories are for, as `imei:<digits>` or `serial:<value>`.
    pub device: Option<String>,
    pub lines: Vec<OrderLine>,
    pub total: Price,
    pub address: PostalAddress,
    pub payment: Payment,
    pub placed_on: NaiveDate,
    pub shipment_id: Option<String>,
    pub units: Vec<PackedUnit>,
    pub delivered_on: Option<NaiveDate>,
    /// Days after delivery the customer may withdraw, as the law stood when
    /// the order was placed; 0 where it gives no such right.
    #[serde(default)]
    pub withdrawal_days: u32,
    #[serde(default)]
    pub giving_back: Option<Return>,
    /// Set when the order replaces a faulty accessory.
    #[serde(default)]
    pub replacing: Option<Replacing>,
    #[serde(default)]
    pub faulty_back: Option<FaultyReturn>,
}

/// An order the customer withdrew from, on its way back and refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Return {
    pub requested_on: NaiveDate,
    /// The parcel coming back to the depot.
    pub shipment_id: String,
    /// The day it arrived, and the refund then asked of the provider.
    pub received_on: Option<NaiveDate>,
    pub refund_id: Option<String>,
    pub refunded: bool,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    AwaitingPayment,
    PaymentFailed,
    /// Paid (or, for a replacement under warranty, nothing to pay), waiting
    /// to be packed.
    Paid,
    Shipped,
    Delivered,
    /// Sent back within the withdrawal period, on its way to the depot.
    ReturnRequested,
    /// Back at the depot, its refund under way.
    Returned,
    Refunded,
}

impl Stage {
    /// In words, for a refusal.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AwaitingPayment => "waiting for its payment",
            Self::PaymentFailed => "unpaid: its payment failed",
            Self::Paid => "paid, waiting to be packed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::ReturnRequested => "on its way back",
            Self::Returned => "returned, its refund under way",
            Self::Refunded => "refunded",
        }
    }
}

impl OrderState {
    /// The last day the customer may withdraw: `None` before delivery, or where
    /// the law gives no such right.
    pub fn withdrawal_ends(&self) -> Option<NaiveDate> {
        let delivered = self.delivered_on?;
        (self.withdrawal_days > 0).then(|| {
            delivered
                .checked_add_days(chrono::Days::new(u64::from(self.withdrawal_days)))
                .unwrap_or(NaiveDate::MAX)
        })
    }

    /// Where the order stands, as its history leaves it.
    pub fn stage(&self) -> Stage {
        if let Some(back) = &self.giving_back {
            return match (back.received_on, back.refunded) {
                (_, true) => Stage::Refunded,
                (Some(_), false) => Stage::Returned,
                (None, false) => Stage::ReturnRequested,
            };
        }
        match (&self.payment, &self.shipment_id, self.delivered_on) {
            (_, _, Some(_)) => Stage::Delivered,
            (_, Some(_), None) => Stage::Shipped,
            (Payment::Pending { .. }, None, None) => Stage::AwaitingPayment,
            (Payment::Failed { .. }, None, None) => Stage::PaymentFailed,
            (Payment::Paid { .. } | Payment::NotDue, None, None) => Stage::Paid,
        }
    }

    /// What the lines are worth at list price: what the customer pays, or for
    /// a replacement under warranty, what they did not.
    pub fn list_value(&self) -> Price {
        self.lines
            .iter()
            .fold(Price::default(), |sum, l| sum + l.total)
    }
}

/// How the provider answered on the order's payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Paid,
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Command {
    Place {
        customer_id: String,
        country: String,
        currency: String,
        tax_display: TaxDisplay,
        device: Option<String>,
        lines: Vec<OrderLine>,
        address: PostalAddress,
        /// Created at the provider for the order's total.
        payment_id: String,
        /// The delivery country's withdrawal period, in days after delivery.
        withdrawal_days: u32,
        /// The faulty accessory this order replaces, if it does.
        replacing: Option<Replacing>,
        today: NaiveDate,
    },
    SettlePayment {
        payment_id: String,
        settlement: Settlement,
    },
    /// Packed at the depot with each unit's serial, and handed to logistics;
    /// with the faulty unit's return label when it must come back.
    Ship {
        shipment_id: String,
        units: Vec<PackedUnit>,
        faulty_return: Option<Label>,
    },
    /// The faulty unit a replacement asked back arrived at the depot.
    ReceiveFaulty {
        shipment_id: String,
        on: NaiveDate,
    },
    MarkDelivered {
        on: NaiveDate,
    },
    /// The customer withdraws: the parcel back is `return_shipment_id`.
    RequestReturn {
        return_shipment_id: String,
        today: NaiveDate,
    },
    /// The parcel came back on `on`; the refund `refund_id` was asked for.
    ReceiveReturn {
        on: NaiveDate,
        refund_id: String,
    },
    /// The provider says the refund went through.
    SettleRefund {
        refund_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Event {
    AccessoryOrderPlaced {
        customer_id: String,
        country: String,
        currency: String,
        tax_display: TaxDisplay,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        lines: Vec<OrderLine>,
        total: Price,
        address: PostalAddress,
        payment_id: String,
        placed_on: NaiveDate,
        #[serde(default)]
        withdrawal_days: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replacing: Option<Replacing>,
    },
    // Each step names the customer, so its public event can tell them.
    AccessoryOrderPaid {
        payment_id: String,
        #[serde(default)]
        customer_id: String,
        #[serde(default)]
        total_minor: i64,
        #[serde(default)]
        currency: String,
    },
    AccessoryOrderPaymentFailed {
        payment_id: String,
        reason: String,
        #[serde(default)]
        customer_id: String,
    },
    AccessoryOrderShipped {
        shipment_id: String,
        units: Vec<PackedUnit>,
        #[serde(default)]
        customer_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        faulty_return: Option<Label>,
    },
    AccessoryOrderDelivered {
        on: NaiveDate,
        #[serde(default)]
        customer_id: String,
    },
    AccessoryOrderReturnRequested {
        return_shipment_id: String,
        requested_on: NaiveDate,
    },
    AccessoryOrderReturned {
        on: NaiveDate,
        refund_id: String,
        /// What is refunded: everything the customer paid.
        amount_minor: i64,
    },
    AccessoryOrderRefunded {
        refund_id: String,
        #[serde(default)]
        customer_id: String,
        #[serde(default)]
        amount_minor: i64,
        #[serde(default)]
        currency: String,
    },
    FaultyAccessoryReceived {
        on: NaiveDate,
        customer_id: String,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            // A replacement's placing has its own name: it is published, a sale's is not.
            Self::AccessoryOrderPlaced {
                replacing: Some(_), ..
            } => "AccessoryReplacementPlaced",
            Self::AccessoryOrderPlaced { .. } => "AccessoryOrderPlaced",
            Self::AccessoryOrderPaid { .. } => "AccessoryOrderPaid",
            Self::AccessoryOrderPaymentFailed { .. } => "AccessoryOrderPaymentFailed",
            Self::AccessoryOrderShipped { .. } => "AccessoryOrderShipped",
            Self::AccessoryOrderDelivered { .. } => "AccessoryOrderDelivered",
            Self::AccessoryOrderReturnRequested { .. } => "AccessoryOrderReturnRequested",
            Self::AccessoryOrderReturned { .. } => "AccessoryOrderReturned",
            Self::AccessoryOrderRefunded { .. } => "AccessoryOrderRefunded",
            Self::FaultyAccessoryReceived { .. } => "FaultyAccessoryReceived",
        }
    }

    /// The delivery address, sealed under the customer's key.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        let Self::AccessoryOrderPlaced { customer_id, .. } = self else {
            return None;
        };
        Some(aftersales_eventstore::PersonalData {
            subject: customer_id,
            fields: &[
                "/address/recipient",
                "/address/lines",
                "/address/city",
                "/address/region",
                "/address/postal_code",
                "/address/phone",
            ],
        })
    }
}

/// The accessory order decider.
#[derive(Debug)]
pub struct AccessoryOrder;

fn require(state: &Option<OrderState>) -> Result<&OrderState, DomainError> {
    state
        .as_ref()
        .ok_or_else(|| DomainError::NotFound("accessory order".into()))
}

fn check_units(order: &OrderState, units: &[PackedUnit]) -> Result<(), DomainError> {
    for line in &order.lines {
        let packed = units.iter().filter(|u| u.number == line.number).count();
        if packed != usize::try_from(line.quantity).unwrap_or(usize::MAX) {
            return Err(DomainError::invalid(
                "units",
                format!(
                    "{} units of {} are ordered, {packed} packed",
                    line.quantity, line.number
                ),
            ));
        }
    }
    if let Some(stray) = units
        .iter()
        .find(|u| !order.lines.iter().any(|l| l.number == u.number))
    {
        return Err(DomainError::invalid(
            "units.number",
            format!("{} is not in the order", stray.number),
        ));
    }
    for (i, unit) in units.iter().enumerate() {
        if !(4..=40).contains(&unit.serial.len())
            || !unit
                .serial
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(DomainError::invalid(
                "units.serial",
                "must be 4 to 40 letters, digits or '-'",
            ));
        }
        if units[..i].iter().any(|u| u.serial == unit.serial) {
            return Err(DomainError::invalid(
                "units.serial",
                format!("{} is packed twice", unit.serial),
            ));
        }
    }
    Ok(())
}

impl Decider for AccessoryOrder {
    type Command = Command;
    type Event = Event;
    type State = Option<OrderState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match command {
            Command::Place {
                customer_id,
                country,
                currency,
                tax_display,
                device,
                lines,
                address,
                payment_id,
                withdrawal_days,
                replacing,
                today,
            } => {
                text("customer_id", customer_id, 100, true)?;
                let free = replacing.as_ref().is_some_and(|r| r.covered);
                if !free {
                    text("payment_id", payment_id, 200, true)?;
                }
                if let Some(replacing) = replacing {
                    text("accessory_serial", &replacing.faulty_serial, 40, true)?;
                    if device.is_none() || lines.len() != 1 || lines[0].quantity != 1 {
                        return Err(DomainError::invalid(
                            "lines",
                            "a replacement is one unit for a phone's accessory",
                        ));
                    }
                }
                address
                    .validate(&aftersales_core::address_fields!("address"))
                    .map_err(|e| DomainError::invalid(e.field, e.reason))?;
                if address.country != *country {
                    return Err(DomainError::invalid(
                        "address.country",
                        format!("the order is priced for delivery in {country}"),
                    ));
                }
                if lines.is_empty() || lines.len() > MAX_LINES {
                    return Err(DomainError::invalid(
                        "lines",
                        format!("an order has 1 to {MAX_LINES} lines"),
                    ));
                }
                let total = if free {
                    Price::default()
                } else {
                    lines.iter().fold(Price::default(), |sum, l| sum + l.total)
                };
                let placed = Event::AccessoryOrderPlaced {
                    customer_id: customer_id.clone(),
                    country: country.clone(),
                    currency: currency.clone(),
                    tax_display: *tax_display,
                    device: device.clone(),
                    lines: lines.clone(),
                    total,
                    address: address.clone(),
                    payment_id: if free {
                        String::new()
                    } else {
                        payment_id.clone()
                    },
                    placed_on: *today,
                    // Nothing was sold when nothing was paid.
                    withdrawal_days: if free { 0 } else { *withdrawal_days },
                    replacing: replacing.clone(),
                };
                match state {
                    None => Ok(vec![placed]),
                    // A replacement whose payment failed is asked for again.
                    Some(existing)
                        if existing.replacing.is_some()
                            && replacing.is_some()
                            && existing.stage() == Stage::PaymentFailed =>
                    {
                        Ok(vec![placed])
                    }
                    // The same order again (a retried request): nothing new.
                    Some(existing)
                        if existing.customer_id == *customer_id
                            && existing.lines == *lines
                            && existing.address == *address =>
                    {
                        Ok(Vec::new())
                    }
                    Some(existing) => Err(DomainError::Precondition(match &existing.replacing {
                        Some(r) => format!(
                            "{} is being replaced already: the replacement is {}",
                            r.faulty_serial,
                            existing.stage().describe()
                        ),
                        None => "this order was placed with other details".into(),
                    })),
                }
            }
            Command::SettlePayment {
                payment_id,
                settlement,
            } => {
                let order = require(state)?;
                // Settled before, or news of another payment: nothing to do.
                let Payment::Pending {
                    payment_id: waiting,
                } = &order.payment
                else {
                    return Ok(Vec::new());
                };
                if waiting != payment_id {
                    return Ok(Vec::new());
                }
                Ok(vec![match settlement {
                    Settlement::Paid => Event::AccessoryOrderPaid {
                        payment_id: payment_id.clone(),
                        customer_id: order.customer_id.clone(),
                        total_minor: order.total.gross,
                        currency: order.currency.clone(),
                    },
                    Settlement::Failed { reason } => Event::AccessoryOrderPaymentFailed {
                        payment_id: payment_id.clone(),
                        reason: reason.chars().take(200).collect(),
                        customer_id: order.customer_id.clone(),
                    },
                }])
            }
            Command::Ship {
                shipment_id,
                units,
                faulty_return,
            } => {
                let order = require(state)?;
                text("shipment_id", shipment_id, 100, true)?;
                if let Some(shipped) = &order.shipment_id {
                    return if shipped == shipment_id && order.units == *units {
                        Ok(Vec::new())
                    } else {
                        Err(DomainError::Precondition(format!(
                            "the order is {}: shipped once",
                            order.stage().describe()
                        )))
                    };
                }
                if !matches!(order.payment, Payment::Paid { .. } | Payment::NotDue) {
                    return Err(DomainError::Precondition(format!(
                        "the order is {}: nothing is packed before it is paid",
                        order.stage().describe()
                    )));
                }
                check_units(order, units)?;
                let wants_back = order.replacing.as_ref().is_some_and(|r| r.return_faulty);
                if wants_back != faulty_return.is_some() {
                    return Err(DomainError::Precondition(if wants_back {
                        "the faulty unit comes back: its label goes with the replacement".into()
                    } else {
                        "no faulty unit comes back for this order".into()
                    }));
                }
                Ok(vec![Event::AccessoryOrderShipped {
                    shipment_id: shipment_id.clone(),
                    units: units.clone(),
                    customer_id: order.customer_id.clone(),
                    faulty_return: faulty_return.clone(),
                }])
            }
            Command::ReceiveFaulty { shipment_id, on } => {
                let order = require(state)?;
                match &order.faulty_back {
                    Some(back) if back.label.shipment_id == *shipment_id => {
                        if back.received_on.is_some() {
                            Ok(Vec::new())
                        } else {
                            Ok(vec![Event::FaultyAccessoryReceived {
                                on: *on,
                                customer_id: order.customer_id.clone(),
                            }])
                        }
                    }
                    Some(_) | None => Err(DomainError::NotFound(format!(
                        "faulty accessory parcel {shipment_id}"
                    ))),
                }
            }
            Command::MarkDelivered { on } => {
                let order = require(state)?;
                if order.delivered_on.is_some() {
                    return Ok(Vec::new());
                }
                if order.shipment_id.is_none() {
                    return Err(DomainError::Precondition(format!(
                        "the order is {}: not shipped",
                        order.stage().describe()
                    )));
                }
                Ok(vec![Event::AccessoryOrderDelivered {
                    on: *on,
                    customer_id: order.customer_id.clone(),
                }])
            }
            Command::RequestReturn {
                return_shipment_id,
                today,
            } => {
                let order = require(state)?;
                text("return_shipment_id", return_shipment_id, 100, true)?;
                if let Some(back) = &order.giving_back {
                    return if back.shipment_id == *return_shipment_id {
                        Ok(Vec::new())
                    } else {
                        Err(DomainError::Precondition(format!(
                            "the order is {}: it is sent back once",
                            order.stage().describe()
                        )))
                    };
                }
                if order.delivered_on.is_none() {
                    return Err(DomainError::Precondition(format!(
                        "the order is {}: a return follows its delivery",
                        order.stage().describe()
                    )));
                }
                if matches!(order.payment, Payment::NotDue) {
                    return Err(DomainError::Precondition(
                        "a replacement sent under warranty was not sold: there is nothing to withdraw from"
                            .into(),
                    ));
                }
                let Some(ends) = order.withdrawal_ends() else {
                    return Err(DomainError::Precondition(format!(
                        "{} gives no right to withdraw from a distance sale",
                        order.country
                    )));
                };
                if *today > ends {
                    return Err(DomainError::Precondition(format!(
                        "the {}-day withdrawal period ended on {ends}",
                        order.withdrawal_days
                    )));
                }
                Ok(vec![Event::AccessoryOrderReturnRequested {
                    return_shipment_id: return_shipment_id.clone(),
                    requested_on: *today,
                }])
            }
            Command::ReceiveReturn { on, refund_id } => {
                let order = require(state)?;
                let Some(back) = &order.giving_back else {
                    return Err(DomainError::Precondition(format!(
                        "the order is {}: no return was asked for",
                        order.stage().describe()
                    )));
                };
                if back.received_on.is_some() {
                    return Ok(Vec::new());
                }
                text("refund_id", refund_id, 200, true)?;
                Ok(vec![Event::AccessoryOrderReturned {
                    on: *on,
                    refund_id: refund_id.clone(),
                    amount_minor: order.total.gross,
                }])
            }
            Command::SettleRefund { refund_id } => {
                let order = require(state)?;
                // Another refund's news, or this one's again: nothing to do.
                match &order.giving_back {
                    Some(back) if back.refund_id.as_ref() == Some(refund_id) && !back.refunded => {
                        Ok(vec![Event::AccessoryOrderRefunded {
                            refund_id: refund_id.clone(),
                            customer_id: order.customer_id.clone(),
                            amount_minor: order.total.gross,
                            currency: order.currency.clone(),
                        }])
                    }
                    Some(_) | None => Ok(Vec::new()),
                }
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        if let Event::AccessoryOrderPlaced {
            customer_id,
            country,
            currency,
            tax_display,
            device,
            lines,
            total,
            address,
            payment_id,
            placed_on,
            withdrawal_days,
            replacing,
        } = event
        {
            let free = replacing.as_ref().is_some_and(|r| r.covered);
            return Some(OrderState {
                customer_id: customer_id.clone(),
                country: country.clone(),
                currency: currency.clone(),
                tax_display: *tax_display,
                device: device.clone(),
                lines: lines.clone(),
                total: *total,
                address: address.clone(),
                payment: if free {
                    Payment::NotDue
                } else {
                    Payment::Pending {
                        payment_id: payment_id.clone(),
                    }
                },
                placed_on: *placed_on,
                shipment_id: None,
                units: Vec::new(),
                delivered_on: None,
                withdrawal_days: *withdrawal_days,
                giving_back: None,
                replacing: replacing.clone(),
                faulty_back: None,
            });
        }
        let mut order = state?;
        match event {
            Event::AccessoryOrderPlaced { .. } => {}
            Event::AccessoryOrderPaid { payment_id, .. } => {
                order.payment = Payment::Paid {
                    payment_id: payment_id.clone(),
                };
            }
            Event::AccessoryOrderPaymentFailed {
                payment_id, reason, ..
            } => {
                order.payment = Payment::Failed {
                    payment_id: payment_id.clone(),
                    reason: reason.clone(),
                };
            }
            Event::AccessoryOrderShipped {
                shipment_id,
                units,
                faulty_return,
                ..
            } => {
                order.shipment_id = Some(shipment_id.clone());
                order.units.clone_from(units);
                order.faulty_back = faulty_return.clone().map(|label| FaultyReturn {
                    label,
                    received_on: None,
                });
            }
            Event::AccessoryOrderDelivered { on, .. } => order.delivered_on = Some(*on),
            Event::AccessoryOrderReturnRequested {
                return_shipment_id,
                requested_on,
            } => {
                order.giving_back = Some(Return {
                    requested_on: *requested_on,
                    shipment_id: return_shipment_id.clone(),
                    received_on: None,
                    refund_id: None,
                    refunded: false,
                });
            }
            Event::AccessoryOrderReturned { on, refund_id, .. } => {
                if let Some(back) = &mut order.giving_back {
                    back.received_on = Some(*on);
                    back.refund_id = Some(refund_id.clone());
                }
            }
            Event::AccessoryOrderRefunded { .. } => {
                if let Some(back) = &mut order.giving_back {
                    back.refunded = true;
                }
            }
            Event::FaultyAccessoryReceived { on, .. } => {
                if let Some(back) = &mut order.faulty_back {
                    back.received_on = Some(*on);
                }
            }
        }
        Some(order)
    }
}

#[cfg(test)]
mod tests;
