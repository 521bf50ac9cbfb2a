//! What the other services' events make here, exactly once each: the inbox row,
//! the messages and the reminders commit together, and every id derives from the
//! source event.
//!
//! - repair: each step that matters to a customer is a message; a quote starts a
//!   reminder that its answer cancels; a walk-in device ready for pickup starts one
//!   that collection cancels. `RepairOrderOpened` also records whose order it is.
//! - logistics: the inbound label (with instructions), the device shipped back and
//!   delivered, exceptions (urgent) and stalled parcels.
//! - warranty: registered, extended and voided; registration starts the reminder
//!   30 days before the warranty ends, an extension moves it, voiding cancels it;
//!   and the steps of a repair abroad, told as a repair here would be.
//! - support: a case acknowledged (or opened for the customer by the platform),
//!   answered, escalated and resolved.

use std::collections::BTreeMap;

use aftersales_eventstore::{CommandContext, StoreTransaction};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::common::{DeviceId, Money, device_id};
use aftersales_proto::logistics as lpb;
use aftersales_proto::parts as ppb;
use aftersales_proto::repair as rpb;
use aftersales_proto::support as spb;
use aftersales_proto::warranty as wpb;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use prost::Name;

use crate::app::Notifications;
use crate::domain::catalog::Kind;
use crate::domain::facts::OrderFacts;
use crate::domain::reminder;

/// The durable consumers, one per source service.
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![
        Subscription::new(
            "notification-from-repair",
            "repair",
            [
                <rpb::RepairOrderOpened as Name>::NAME,
                <rpb::DeviceReceived as Name>::NAME,
                <rpb::Diagnosed as Name>::NAME,
                <rpb::QuoteIssued as Name>::NAME,
                <rpb::WaitingForParts as Name>::NAME,
                <rpb::PartArrived as Name>::NAME,
                <rpb::QuoteApproved as Name>::NAME,
                <rpb::QuoteDeclined as Name>::NAME,
                <rpb::RepairStarted as Name>::NAME,
                <rpb::QcPassed as Name>::NAME,
                <rpb::ReadyForReturn as Name>::NAME,
                <rpb::DeviceCollected as Name>::NAME,
                <rpb::RepairCancelled as Name>::NAME,
            ],
        )?,
        Subscription::new(
            "notification-from-logistics",
            "logistics",
            [
                <lpb::LabelIssued as Name>::NAME,
                <lpb::Delivered as Name>::NAME,
                <lpb::ShipmentException as Name>::NAME,
                <lpb::ShipmentStalled as Name>::NAME,
            ],
        )?,
        Subscription::new(
            "notification-from-warranty",
            "warranty",
            [
                <wpb::DeviceRegistered as Name>::NAME,
                <wpb::ExtendedWarrantyPurchased as Name>::NAME,
                <wpb::WarrantyVoided as Name>::NAME,
                <wpb::EnrolledInProgramme as Name>::NAME,
                <wpb::RepairProgressedAbroad as Name>::NAME,
            ],
        )?,
        Subscription::new(
            "notification-from-parts",
            "parts",
            [
                <ppb::AccessoryOrderPaid as Name>::NAME,
                <ppb::AccessoryOrderPaymentFailed as Name>::NAME,
                <ppb::AccessoryOrderShipped as Name>::NAME,
                <ppb::AccessoryOrderDelivered as Name>::NAME,
                <ppb::AccessoryOrderRefunded as Name>::NAME,
                <ppb::AccessoryReplacementPlaced as Name>::NAME,
                <ppb::FaultyAccessoryReceived as Name>::NAME,
            ],
        )?,
        Subscription::new(
            "notification-from-support",
            "support",
            [
                <spb::CaseOpened as Name>::NAME,
                <spb::CaseReplied as Name>::NAME,
                <spb::CaseEscalated as Name>::NAME,
                <spb::CaseResolved as Name>::NAME,
                <spb::SurveySent as Name>::NAME,
            ],
        )?,
    ])
}

/// How a message names a case: the first block of its id, enough to find it.
fn case_reference(case_id: &str) -> String {
    case_id.split('-').next().unwrap_or(case_id).to_uppercase()
}

/// When reminders fall due.
#[derive(Debug, Clone, Copy)]
pub struct ReminderSettings {
    pub quote_waiting: Duration,
    pub pickup_waiting: Duration,
    pub before_warranty_end: Duration,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self {
            quote_waiting: Duration::hours(48),
            pickup_waiting: Duration::days(7),
            before_warranty_end: Duration::days(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NotificationReactions {
    app: Notifications,
    region: String,
    reminders: ReminderSettings,
}

fn vars<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The last four characters of an IMEI or serial: enough for the owner.
fn device_tail(id: Option<&DeviceId>) -> String {
    let value = match id.and_then(|d| d.kind.as_ref()) {
        Some(device_id::Kind::Imei(v) | device_id::Kind::Serial(v)) => v.as_str(),
        None => "",
    };
    value
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// `imei-…` or `serial-…`, for a reminder's stream.
fn device_key(id: Option<&DeviceId>) -> Option<String> {
    match id?.kind.as_ref()? {
        device_id::Kind::Imei(v) => Some(format!("imei-{v}")),
        device_id::Kind::Serial(v) => Some(format!("serial-{v}")),
    }
}

/// `EUR 129.00`: minor units in the currency's own exponent.
pub fn money(m: Option<&Money>) -> String {
    let Some(m) = m else { return String::new() };
    let exponent = match m.currency.as_str() {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
        _ => 2,
    };
    if exponent == 0 {
        return format!("{} {}", m.currency, m.minor_units);
    }
    let scale = 10i64.pow(exponent);
    let sign = if m.minor_units < 0 { "-" } else { "" };
    let abs = m.minor_units.unsigned_abs();
    let scale_u = scale.unsigned_abs();
    format!(
        "{} {sign}{}.{:0width$}",
        m.currency,
        abs / scale_u,
        abs % scale_u,
        width = exponent as usize
    )
}

fn date(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.date_naive().to_string())
        .unwrap_or_default()
}

fn decode<M: prost::Message + Default>(event: &InboundEvent) -> Result<M, HandlerError> {
    event.proto().map_err(HandlerError::permanent)
}

impl NotificationReactions {
    pub fn new(app: Notifications, region: impl Into<String>, reminders: ReminderSettings) -> Self {
        Self {
            app,
            region: region.into(),
            reminders,
        }
    }

    fn context(&self, event: &InboundEvent, what: &[u8]) -> CommandContext {
        event.reaction_context(what, &self.region)
    }

    async fn notify(
        &self,
        tx: &mut StoreTransaction,
        event: &InboundEvent,
        kind: Kind,
        customer_id: &str,
        variables: BTreeMap<String, String>,
    ) -> Result<(), HandlerError> {
        self.app
            .notify_in(
                tx,
                event.event_id,
                kind,
                customer_id,
                &variables,
                &self.context(event, b"notify"),
            )
            .await
            .map_err(HandlerError::from)?;
        Ok(())
    }

    async fn remind(
        &self,
        tx: &mut StoreTransaction,
        event: &InboundEvent,
        reminder_id: &str,
        command: reminder::Command,
    ) -> Result<(), HandlerError> {
        let ctx = self.context(event, reminder_id.as_bytes());
        self.app
            .remind_in(tx, reminder_id, command, &ctx)
            .await
            .map_err(HandlerError::from)
    }

    async fn cancel(
        &self,
        tx: &mut StoreTransaction,
        event: &InboundEvent,
        reminder_id: &str,
        reason: &str,
    ) -> Result<(), HandlerError> {
        let command = reminder::Command::Cancel {
            reason: reason.to_owned(),
        };
        self.remind(tx, event, reminder_id, command).await
    }

    /// Whose order it is; an order not opened yet here is retried later. Read
    /// through `tx`: the order may have been learned by an earlier event of the
    /// same batch, not committed yet.
    async fn customer_of(
        &self,
        tx: &mut StoreTransaction,
        order_id: &str,
    ) -> Result<OrderFacts, HandlerError> {
        self.app
            .order_in(tx, order_id)
            .await
            .map_err(HandlerError::from)?
            .ok_or_else(|| {
                HandlerError::transient(format!("order {order_id} is not known here yet"))
            })
    }

    async fn repair(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let at = event.metadata.recorded_at;
        if event.event_type == <rpb::RepairOrderOpened as Name>::NAME {
            let e: rpb::RepairOrderOpened = decode(event)?;
            let walk_in = e.channel == i32::from(rpb::Channel::WalkIn);
            let facts = OrderFacts {
                customer_id: e.customer_id.clone(),
                walk_in,
                device: device_tail(e.device_id.as_ref()),
            };
            self.app
                .learn_order_in(
                    tx,
                    &e.order_id,
                    facts.clone(),
                    &self.context(event, b"order"),
                )
                .await
                .map_err(HandlerError::from)?;
            let channel = if walk_in { "walk_in" } else { "mail_in" };
            return self
                .notify(
                    tx,
                    event,
                    Kind::RepairOpened,
                    &e.customer_id,
                    vars([
                        ("order_id", e.order_id),
                        ("device", facts.device),
                        ("channel", channel.to_owned()),
                    ]),
                )
                .await;
        }
        // Every other repair event names its order first (field 1).
        let order_id = match event.event_type.as_str() {
            <rpb::DeviceReceived as Name>::NAME => decode::<rpb::DeviceReceived>(event)?.order_id,
            <rpb::Diagnosed as Name>::NAME => decode::<rpb::Diagnosed>(event)?.order_id,
            <rpb::QuoteIssued as Name>::NAME => decode::<rpb::QuoteIssued>(event)?.order_id,
            <rpb::WaitingForParts as Name>::NAME => decode::<rpb::WaitingForParts>(event)?.order_id,
            <rpb::PartArrived as Name>::NAME => decode::<rpb::PartArrived>(event)?.order_id,
            <rpb::QuoteApproved as Name>::NAME => decode::<rpb::QuoteApproved>(event)?.order_id,
            <rpb::QuoteDeclined as Name>::NAME => decode::<rpb::QuoteDeclined>(event)?.order_id,
            <rpb::RepairStarted as Name>::NAME => decode::<rpb::RepairStarted>(event)?.order_id,
            <rpb::QcPassed as Name>::NAME => decode::<rpb::QcPassed>(event)?.order_id,
            <rpb::ReadyForReturn as Name>::NAME => decode::<rpb::ReadyForReturn>(event)?.order_id,
            <rpb::DeviceCollected as Name>::NAME => decode::<rpb::DeviceCollected>(event)?.order_id,
            <rpb::RepairCancelled as Name>::NAME => decode::<rpb::RepairCancelled>(event)?.order_id,
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other}: not an event this consumer handles"
                )));
            }
        };
        let order = self.customer_of(tx, &order_id).await?;
        let customer = order.customer_id.as_str();
        let quote_reminder = format!("reminder-quote-{order_id}");
        let pickup_reminder = format!("reminder-pickup-{order_id}");
        let just_order = || vars([("order_id", order_id.clone())]);
        match event.event_type.as_str() {
            <rpb::DeviceReceived as Name>::NAME => {
                self.notify(tx, event, Kind::DeviceReceived, customer, just_order())
                    .await
            }
            <rpb::Diagnosed as Name>::NAME => {
                let e: rpb::Diagnosed = decode(event)?;
                if !e.coverage.is_some_and(|c| c.decided && c.covered) {
                    return Ok(()); // a quote follows
                }
                let v = vars([("order_id", order_id.clone()), ("fault", e.fault)]);
                self.notify(tx, event, Kind::DiagnosedCovered, customer, v)
                    .await
            }
            <rpb::QuoteIssued as Name>::NAME => {
                let e: rpb::QuoteIssued = decode(event)?;
                let quote = e.quote.unwrap_or_default();
                let total = money(quote.total.as_ref());
                let v = vars([
                    ("order_id", order_id.clone()),
                    ("total", total.clone()),
                    ("valid_until", date(quote.valid_until.as_ref())),
                ]);
                self.notify(tx, event, Kind::QuoteIssued, customer, v)
                    .await?;
                let schedule = reminder::Command::Schedule {
                    kind: Kind::ReminderQuoteWaiting,
                    customer_id: customer.to_owned(),
                    due_at: at + self.reminders.quote_waiting,
                    variables: vars([("order_id", order_id.clone()), ("total", total)]),
                };
                self.remind(tx, event, &quote_reminder, schedule).await
            }
            <rpb::WaitingForParts as Name>::NAME => {
                let e: rpb::WaitingForParts = decode(event)?;
                let v = vars([
                    ("order_id", order_id.clone()),
                    ("expected_on", e.expected_on),
                ]);
                self.notify(tx, event, Kind::WaitingForParts, customer, v)
                    .await
            }
            <rpb::PartArrived as Name>::NAME => {
                if !decode::<rpb::PartArrived>(event)?.all_arrived {
                    return Ok(()); // told when the last one is in
                }
                self.notify(tx, event, Kind::PartsArrived, customer, just_order())
                    .await
            }
            <rpb::QuoteApproved as Name>::NAME | <rpb::QuoteDeclined as Name>::NAME => {
                self.cancel(tx, event, &quote_reminder, "the quote was answered")
                    .await
            }
            <rpb::RepairStarted as Name>::NAME => {
                self.notify(tx, event, Kind::RepairStarted, customer, just_order())
                    .await
            }
            <rpb::QcPassed as Name>::NAME => {
                self.notify(tx, event, Kind::QcPassed, customer, just_order())
                    .await
            }
            <rpb::ReadyForReturn as Name>::NAME if order.walk_in => {
                self.notify(tx, event, Kind::ReadyForPickup, customer, just_order())
                    .await?;
                let schedule = reminder::Command::Schedule {
                    kind: Kind::ReminderPickupWaiting,
                    customer_id: customer.to_owned(),
                    due_at: at + self.reminders.pickup_waiting,
                    variables: just_order(),
                };
                self.remind(tx, event, &pickup_reminder, schedule).await
            }
            <rpb::DeviceCollected as Name>::NAME => {
                self.cancel(tx, event, &pickup_reminder, "collected").await
            }
            <rpb::RepairCancelled as Name>::NAME => {
                let e: rpb::RepairCancelled = decode(event)?;
                let v = vars([("order_id", order_id.clone()), ("reason", e.reason)]);
                self.notify(tx, event, Kind::RepairCancelled, customer, v)
                    .await?;
                self.cancel(tx, event, &quote_reminder, "the order was cancelled")
                    .await?;
                self.cancel(tx, event, &pickup_reminder, "the order was cancelled")
                    .await
            }
            // Mail-in: "shipped back" comes from logistics.
            <rpb::ReadyForReturn as Name>::NAME => Ok(()),
            other => Err(HandlerError::permanent(format!(
                "{other}: not an event this consumer handles"
            ))),
        }
    }

    /// An accessory order's steps, each told to its customer.
    async fn parts(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let (customer, kind, v) = match event.event_type.as_str() {
            <ppb::AccessoryOrderPaid as Name>::NAME => {
                let e: ppb::AccessoryOrderPaid = decode(event)?;
                let v = vars([("order_id", e.order_id), ("total", money(e.total.as_ref()))]);
                (e.customer_id, Kind::AccessoryOrderPaid, v)
            }
            <ppb::AccessoryOrderPaymentFailed as Name>::NAME => {
                let e: ppb::AccessoryOrderPaymentFailed = decode(event)?;
                let v = vars([("order_id", e.order_id), ("reason", e.reason)]);
                (e.customer_id, Kind::AccessoryOrderPaymentFailed, v)
            }
            <ppb::AccessoryOrderShipped as Name>::NAME => {
                let e: ppb::AccessoryOrderShipped = decode(event)?;
                if e.faulty_return_shipment_id.is_empty() {
                    let v = vars([("order_id", e.order_id)]);
                    (e.customer_id, Kind::AccessoryOrderShipped, v)
                } else {
                    let v = vars([
                        ("order_id", e.order_id),
                        ("carrier", e.faulty_return_carrier),
                        ("tracking_number", e.faulty_return_tracking_number),
                    ]);
                    (e.customer_id, Kind::AccessoryReplacementShipped, v)
                }
            }
            <ppb::AccessoryReplacementPlaced as Name>::NAME => {
                let e: ppb::AccessoryReplacementPlaced = decode(event)?;
                if e.covered {
                    let v = vars([("order_id", e.order_id)]);
                    (e.customer_id, Kind::AccessoryReplacementFree, v)
                } else {
                    let v = vars([("order_id", e.order_id), ("total", money(e.price.as_ref()))]);
                    (e.customer_id, Kind::AccessoryReplacementQuoted, v)
                }
            }
            <ppb::FaultyAccessoryReceived as Name>::NAME => {
                let e: ppb::FaultyAccessoryReceived = decode(event)?;
                let v = vars([("order_id", e.order_id)]);
                (e.customer_id, Kind::FaultyAccessoryReceived, v)
            }
            <ppb::AccessoryOrderDelivered as Name>::NAME => {
                let e: ppb::AccessoryOrderDelivered = decode(event)?;
                let v = vars([("order_id", e.order_id)]);
                (e.customer_id, Kind::AccessoryOrderDelivered, v)
            }
            <ppb::AccessoryOrderRefunded as Name>::NAME => {
                let e: ppb::AccessoryOrderRefunded = decode(event)?;
                let v = vars([
                    ("order_id", e.order_id),
                    ("total", money(e.amount.as_ref())),
                ]);
                (e.customer_id, Kind::AccessoryOrderRefunded, v)
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other}: not an event this consumer handles"
                )));
            }
        };
        self.notify(tx, event, kind, &customer, v).await
    }

    /// A support case's steps the customer is told of; the answers themselves
    /// are read in the case.
    async fn support(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let (customer, kind, v) = match event.event_type.as_str() {
            <spb::CaseOpened as Name>::NAME => {
                let e: spb::CaseOpened = decode(event)?;
                let case = case_reference(&e.case_id);
                match spb::Channel::try_from(e.channel) {
                    // Opened by the platform about a repair gone wrong.
                    Ok(spb::Channel::Platform) => (
                        e.customer_id,
                        Kind::SupportCaseOpenedForYou,
                        vars([("case", case), ("order_id", e.repair_order_id)]),
                    ),
                    // Written down by an agent while the customer was on the phone.
                    Ok(spb::Channel::Phone | spb::Channel::Agent) => return Ok(()),
                    _ => (
                        e.customer_id,
                        Kind::SupportCaseOpened,
                        vars([("case", case)]),
                    ),
                }
            }
            <spb::CaseReplied as Name>::NAME => {
                let e: spb::CaseReplied = decode(event)?;
                let v = vars([("case", case_reference(&e.case_id))]);
                (e.customer_id, Kind::SupportCaseReplied, v)
            }
            <spb::CaseEscalated as Name>::NAME => {
                let e: spb::CaseEscalated = decode(event)?;
                let v = vars([("case", case_reference(&e.case_id))]);
                (e.customer_id, Kind::SupportCaseEscalated, v)
            }
            <spb::CaseResolved as Name>::NAME => {
                let e: spb::CaseResolved = decode(event)?;
                let v = vars([("case", case_reference(&e.case_id))]);
                (e.customer_id, Kind::SupportCaseResolved, v)
            }
            <spb::SurveySent as Name>::NAME => {
                let e: spb::SurveySent = decode(event)?;
                if e.answer_link.is_empty() {
                    return Ok(()); // the customer was erased before it went out
                }
                match spb::SurveySubject::try_from(e.subject) {
                    Ok(spb::SurveySubject::Repair) => (
                        e.customer_id,
                        Kind::SupportSurveyRepair,
                        vars([("order_id", e.repair_order_id), ("link", e.answer_link)]),
                    ),
                    _ => (
                        e.customer_id,
                        Kind::SupportSurveyCase,
                        vars([
                            ("case", case_reference(&e.case_id)),
                            ("link", e.answer_link),
                        ]),
                    ),
                }
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other}: not an event this consumer handles"
                )));
            }
        };
        self.notify(tx, event, kind, &customer, v).await
    }

    async fn logistics(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let inbound = i32::from(lpb::Direction::Inbound);
        let (order_id, kind, v) = match event.event_type.as_str() {
            <lpb::LabelIssued as Name>::NAME => {
                let e: lpb::LabelIssued = decode(event)?;
                let kind = if e.direction == inbound {
                    Kind::LabelReady
                } else {
                    Kind::ShippedBack
                };
                let v = vars([
                    ("order_id", e.repair_order_id.clone()),
                    ("carrier", e.carrier),
                    ("tracking_number", e.tracking_number),
                ]);
                (e.repair_order_id, kind, v)
            }
            <lpb::Delivered as Name>::NAME => {
                let e: lpb::Delivered = decode(event)?;
                if e.direction == inbound {
                    return Ok(()); // repair's DeviceReceived says it
                }
                (
                    e.repair_order_id.clone(),
                    Kind::Delivered,
                    vars([("order_id", e.repair_order_id)]),
                )
            }
            <lpb::ShipmentException as Name>::NAME => {
                let e: lpb::ShipmentException = decode(event)?;
                let v = vars([
                    ("order_id", e.repair_order_id.clone()),
                    ("tracking_number", e.tracking_number),
                    ("description", e.description),
                ]);
                (e.repair_order_id, Kind::ShipmentException, v)
            }
            <lpb::ShipmentStalled as Name>::NAME => {
                let e: lpb::ShipmentStalled = decode(event)?;
                let v = vars([
                    ("order_id", e.repair_order_id.clone()),
                    ("tracking_number", e.tracking_number),
                ]);
                (e.repair_order_id, Kind::ShipmentStalled, v)
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other}: not an event this consumer handles"
                )));
            }
        };
        if order_id.is_empty() {
            return Ok(()); // an accessory replacement: no repair customer to tell
        }
        let order = self.customer_of(tx, &order_id).await?;
        self.notify(tx, event, kind, &order.customer_id, v).await
    }

    async fn warranty(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let now = event.metadata.recorded_at;
        match event.event_type.as_str() {
            <wpb::DeviceRegistered as Name>::NAME => {
                let e: wpb::DeviceRegistered = decode(event)?;
                let v = vars([
                    ("model", e.model.clone()),
                    ("warranty_end", e.base_warranty_end.clone()),
                ]);
                self.notify(tx, event, Kind::DeviceRegistered, &e.customer_id, v)
                    .await?;
                self.expiry_reminder(
                    tx,
                    event,
                    e.device_id.as_ref(),
                    &e.customer_id,
                    &e.model,
                    &e.base_warranty_end,
                    now,
                )
                .await
            }
            <wpb::ExtendedWarrantyPurchased as Name>::NAME => {
                let e: wpb::ExtendedWarrantyPurchased = decode(event)?;
                let v = vars([
                    ("plan", e.plan_id.clone()),
                    ("coverage_end", e.coverage_end.clone()),
                ]);
                self.notify(tx, event, Kind::WarrantyExtended, &e.customer_id, v)
                    .await?;
                let model = match device_key(e.device_id.as_ref()) {
                    Some(key) => self
                        .app
                        .reminder(&format!("reminder-warranty-{key}"))
                        .await
                        .map_err(HandlerError::from)?
                        .and_then(|r| r.variables.get("model").cloned()),
                    None => None,
                }
                .unwrap_or_else(|| "device".into());
                self.expiry_reminder(
                    tx,
                    event,
                    e.device_id.as_ref(),
                    &e.customer_id,
                    &model,
                    &e.coverage_end,
                    now,
                )
                .await
            }
            <wpb::WarrantyVoided as Name>::NAME => {
                let e: wpb::WarrantyVoided = decode(event)?;
                self.notify(
                    tx,
                    event,
                    Kind::WarrantyVoided,
                    &e.customer_id,
                    vars([("reason", e.reason)]),
                )
                .await?;
                match device_key(e.device_id.as_ref()) {
                    Some(key) => {
                        self.cancel(tx, event, &format!("reminder-warranty-{key}"), "voided")
                            .await
                    }
                    None => Ok(()),
                }
            }
            <wpb::EnrolledInProgramme as Name>::NAME => {
                let e: wpb::EnrolledInProgramme = decode(event)?;
                let faults = e
                    .faults()
                    .map(|f| {
                        f.as_str_name()
                            .trim_start_matches("FAULT_CATEGORY_")
                            .to_lowercase()
                            .replace('_', " ")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let v = vars([
                    ("model", e.model.clone()),
                    ("device", device_tail(e.device_id.as_ref())),
                    ("programme", e.programme_id.clone()),
                    ("kind", e.kind.clone()),
                    ("faults", faults),
                    ("until", e.ends.clone()),
                ]);
                self.notify(tx, event, Kind::ProgrammeNotice, &e.customer_id, v)
                    .await
            }
            // A repair abroad: told here, where the owner's details and
            // language are, as the same step of a repair here would be.
            <wpb::RepairProgressedAbroad as Name>::NAME => {
                let e: wpb::RepairProgressedAbroad = decode(event)?;
                let order = ("order_id", e.repair_order_id.clone());
                let (kind, v) = match e.step.as_str() {
                    "opened" => {
                        let channel = if e.walk_in { "walk_in" } else { "mail_in" };
                        let v = vars([
                            order,
                            ("device", device_tail(e.device_id.as_ref())),
                            ("channel", channel.to_owned()),
                        ]);
                        (Kind::RepairOpened, v)
                    }
                    "received" => (Kind::DeviceReceived, vars([order])),
                    "started" => (Kind::RepairStarted, vars([order])),
                    "ready" => (Kind::ReadyForPickup, vars([order])),
                    other => {
                        return Err(HandlerError::permanent(format!(
                            "{other:?} is not a repair step"
                        )));
                    }
                };
                self.notify(tx, event, kind, &e.customer_id, v).await
            }
            other => Err(HandlerError::permanent(format!(
                "{other}: not an event this consumer handles"
            ))),
        }
    }

    /// The reminder before `end` (a date): due `before_warranty_end` earlier at
    /// 09:00 UTC, or now if that is past; none once the warranty has ended.
    #[allow(clippy::too_many_arguments)]
    async fn expiry_reminder(
        &self,
        tx: &mut StoreTransaction,
        event: &InboundEvent,
        device: Option<&DeviceId>,
        customer_id: &str,
        model: &str,
        end: &str,
        now: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let Some(key) = device_key(device) else {
            return Err(HandlerError::permanent("a warranty event without a device"));
        };
        let end_date = NaiveDate::parse_from_str(end, "%Y-%m-%d")
            .map_err(|e| HandlerError::permanent(format!("warranty end {end:?}: {e}")))?;
        let reminder_id = format!("reminder-warranty-{key}");
        if end_date < now.date_naive() {
            return self
                .cancel(tx, event, &reminder_id, "the warranty has ended")
                .await;
        }
        let nine = end_date
            .and_hms_opt(9, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| HandlerError::permanent("warranty end out of range"))?;
        let schedule = reminder::Command::Schedule {
            kind: Kind::ReminderWarrantyExpiring,
            customer_id: customer_id.to_owned(),
            due_at: (nine - self.reminders.before_warranty_end).max(now),
            variables: vars([
                ("model", model.to_owned()),
                ("warranty_end", end.to_owned()),
            ]),
        };
        self.remind(tx, event, &reminder_id, schedule).await
    }
}

impl Handler for NotificationReactions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        match event.source.as_str() {
            "repair" => self.repair(event, tx).await,
            "logistics" => self.logistics(event, tx).await,
            "warranty" => self.warranty(event, tx).await,
            "parts" => self.parts(event, tx).await,
            "support" => self.support(event, tx).await,
            other => Err(HandlerError::permanent(format!(
                "events from {other} are not consumed here"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_written_in_the_currencys_own_units() {
        let m = |minor_units, currency: &str| {
            money(Some(&Money {
                minor_units,
                currency: currency.into(),
            }))
        };
        assert_eq!(m(12900, "EUR"), "EUR 129.00");
        assert_eq!(m(5, "EUR"), "EUR 0.05");
        assert_eq!(m(1500, "JPY"), "JPY 1500");
        assert_eq!(m(1234, "KWD"), "KWD 1.234");
        assert_eq!(m(-250, "USD"), "USD -2.50");
    }

    #[test]
    fn only_the_devices_last_four_characters_are_shown() {
        let id = DeviceId {
            kind: Some(device_id::Kind::Imei("490154203237518".into())),
        };
        assert_eq!(device_tail(Some(&id)), "7518");
    }
}
