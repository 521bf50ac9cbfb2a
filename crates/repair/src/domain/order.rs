//! The repair order: one stream per order, driven through the state machine in
//! `docs/domain.md` ("Repair"). Every refused transition names the stage the order
//! is in, and writes nothing.

use std::sync::LazyLock;

use aftersales_core::types::DeviceKey;
use aftersales_eventstore::{Decider, DomainEvent, Upcasters};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{DomainError, Money};

/// Where the order is in the state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Walk-in, before check-in.
    Opened,
    /// Mail-in, before the inbound parcel is delivered.
    AwaitingDevice,
    Received,
    Diagnosed,
    Quoted,
    Approved,
    InRepair,
    QcPassed,
    ReadyForReturn,
    Closed,
    Cancelled,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::AwaitingDevice => "awaiting_device",
            Self::Received => "received",
            Self::Diagnosed => "diagnosed",
            Self::Quoted => "quoted",
            Self::Approved => "approved",
            Self::InRepair => "in_repair",
            Self::QcPassed => "qc_passed",
            Self::ReadyForReturn => "ready_for_return",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Every stage, for exhaustive tests.
    pub const ALL: [Self; 11] = [
        Self::Opened,
        Self::AwaitingDevice,
        Self::Received,
        Self::Diagnosed,
        Self::Quoted,
        Self::Approved,
        Self::InRepair,
        Self::QcPassed,
        Self::ReadyForReturn,
        Self::Closed,
        Self::Cancelled,
    ];
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A postal address for a mail-in return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub recipient: String,
    pub lines: Vec<String>,
    pub city: String,
    /// State or province, where the country's addresses have one.
    #[serde(default)]
    pub region: String,
    pub postal_code: String,
    pub country: String,
    /// For the carrier, where the customer gave one.
    #[serde(default)]
    pub phone: String,
}

impl Address {
    /// Held to the rules every service holds an address to, so logistics can
    /// print what repair accepted.
    fn validate(&self) -> Result<(), DomainError> {
        let parts = aftersales_core::address::Parts {
            recipient: &self.recipient,
            lines: &self.lines,
            city: &self.city,
            region: &self.region,
            postal_code: &self.postal_code,
            country: &self.country,
            phone: &self.phone,
        };
        Ok(aftersales_core::address::validate(
            &parts,
            &aftersales_core::address_fields!("contact_address"),
        )?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    WalkIn {
        center_id: String,
        /// The day booked for bringing the phone in; the day it was opened
        /// when none was booked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        visit_on: Option<NaiveDate>,
    },
    MailIn {
        address: Address,
    },
}

/// What warranty answered, as repair recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Coverage {
    Decided {
        covered: bool,
        reason: String,
        policy_id: String,
        policy_version: u32,
    },
    /// Warranty could not be asked; decided at diagnosis.
    Pending { why: String },
}

impl Coverage {
    pub fn is_covered(&self) -> bool {
        matches!(self, Self::Decided { covered: true, .. })
    }
}

/// The device's condition at intake, to settle damage disputes later.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Condition {
    pub notes: String,
    pub photos: Vec<String>,
    pub liquid_indicator_tripped: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Part,
    Labour,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteLine {
    pub description: String,
    pub kind: LineKind,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// 1 for the first quote; a revision needs a new approval.
    pub revision: u32,
    pub lines: Vec<QuoteLine>,
    pub total: Money,
    pub valid_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartReplacement {
    pub part_number: String,
    pub old_serial: String,
    pub new_serial: String,
}

/// A part the diagnosis called for, as the parts service holds it for the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHold {
    pub part_number: String,
    /// In line for a unit not yet in stock at the order's center.
    pub waiting: bool,
    /// While waiting: the day the units on order reach the order's place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_on: Option<NaiveDate>,
    /// A unit was fitted to the device.
    #[serde(default)]
    pub fitted: bool,
}

/// What the parts service gave the diagnosis: the quote from the country's
/// price list, and the parts held at the center.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartsPlan {
    /// Where the parts are held (the service center); empty when nothing is
    /// held there (a mail-in is priced, and stocked by its depot).
    pub location: String,
    pub holds: Vec<PartHold>,
    /// The lines the price list gives for the fault, tax as the country shows it.
    pub proposed: Vec<QuoteLine>,
}

impl PartsPlan {
    /// The parts still awaited, and the last day they are expected (none
    /// when one of them has no date yet).
    pub fn awaited(&self) -> Option<(Vec<String>, Option<NaiveDate>)> {
        let waiting: Vec<&PartHold> = self.holds.iter().filter(|h| h.waiting).collect();
        if waiting.is_empty() {
            return None;
        }
        let expected = waiting
            .iter()
            .map(|h| h.expected_on)
            .collect::<Option<Vec<_>>>()
            .and_then(|days| days.into_iter().max());
        Some((
            waiting.iter().map(|h| h.part_number.clone()).collect(),
            expected,
        ))
    }

    /// The parts held and not fitted: released when the order is done.
    fn unfitted(&self) -> Vec<String> {
        self.holds
            .iter()
            .filter(|h| !h.fitted)
            .map(|h| h.part_number.clone())
            .collect()
    }

    fn validate(&self) -> Result<(), DomainError> {
        optional_text("parts.location", &self.location, 100)?;
        if self.holds.len() > MAX_QUOTE_LINES || self.proposed.len() > MAX_QUOTE_LINES {
            return Err(DomainError::invalid(
                "parts",
                format!("at most {MAX_QUOTE_LINES} parts and lines"),
            ));
        }
        for hold in &self.holds {
            text("parts.part_number", &hold.part_number, 100)?;
        }
        for line in &self.proposed {
            text("parts.proposed.description", &line.description, 200)?;
        }
        Ok(())
    }
}

/// What of a customer's staff can open on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCategory {
    /// What the customer wrote about the fault.
    CustomerWords,
    /// A mail-in's contact address.
    ContactAddress,
    DataProtection,
}

/// Why staff open a customer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessPurpose {
    Diagnosis,
    Repair,
    ReturnShipping,
    CustomerContact,
    Complaint,
}

/// How the workshop gets into a locked device. No passcode is ever kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Passcode {
    NotNeeded,
    CustomerUnlocks,
    ResetAgreed,
}

/// The device's data-protection checklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataProtection {
    pub backup_reminded: bool,
    pub find_my_device_off: bool,
    pub passcode: Passcode,
}

/// A person's latest opening of the customer's data on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub by: String,
    pub categories: Vec<DataCategory>,
    pub purpose: AccessPurpose,
    pub at: DateTime<Utc>,
}

/// The same person opening the same data for the same purpose again within
/// this time is the step already recorded, not a new one.
pub const ACCESS_REPEAT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// A repair order as its history leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub order_id: String,
    pub stage: Stage,
    pub device: DeviceKey,
    pub channel: Channel,
    pub customer_id: String,
    pub symptoms: String,
    pub coverage: Coverage,
    pub condition: Option<Condition>,
    pub fault: Option<String>,
    pub quote: Option<Quote>,
    /// False when the order returns unrepaired (a declined quote).
    pub repaired: bool,
    pub parts: Vec<PartReplacement>,
    pub qc_failures: u32,
    /// The day the fault appeared, as the customer gave it at opening: coverage
    /// is decided for it, however late the device arrives.
    #[serde(default)]
    pub fault_date: Option<NaiveDate>,
    #[serde(default)]
    pub data_protection: Option<DataProtection>,
    /// Each person's latest opening of the customer's data.
    #[serde(default)]
    pub last_accesses: Vec<Access>,
    /// What the parts service gave the diagnosis, as the order has used it since.
    #[serde(default)]
    pub parts_plan: Option<PartsPlan>,
    /// The depot a mail-in phone arrived at, by id, as logistics said.
    #[serde(default)]
    pub depot: Option<String>,
}

impl OrderState {
    pub fn is_mail_in(&self) -> bool {
        matches!(self.channel, Channel::MailIn { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Command {
    Open {
        order_id: String,
        device: DeviceKey,
        channel: Channel,
        customer_id: String,
        symptoms: String,
        coverage: Coverage,
        fault_date: NaiveDate,
        /// The country it is repaired in: the center's, or the mail-in
        /// address's; filled in by the application.
        serviced_in: Option<String>,
    },
    CheckIn {
        condition: Condition,
        accessories: Vec<String>,
    },
    /// Logistics delivered the inbound parcel (mail-in) at `depot`.
    ReceiveDevice {
        shipment_id: String,
        depot: Option<String>,
    },
    Diagnose {
        fault: String,
        fault_codes: Vec<String>,
        technician: String,
        coverage: Coverage,
        /// None where no parts service is configured, or it has nothing for
        /// the model, country or fault.
        parts: Option<PartsPlan>,
    },
    IssueQuote {
        lines: Vec<QuoteLine>,
        valid_until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    ApproveQuote {
        now: DateTime<Utc>,
    },
    DeclineQuote,
    StartRepair {
        technician: String,
    },
    ReplacePart(PartReplacement),
    RecordQc {
        passed: bool,
        notes: String,
    },
    MarkReadyForReturn,
    ConfirmCollected,
    /// Logistics delivered the outbound parcel (mail-in).
    ReturnDelivered {
        shipment_id: String,
    },
    Cancel {
        reason: String,
    },
    /// Staff open the customer's data (`by` is who, as the log names actors).
    OpenPersonalData {
        by: String,
        categories: Vec<DataCategory>,
        purpose: AccessPurpose,
        now: DateTime<Utc>,
    },
    RecordDataProtection(DataProtection),
    /// The parts service reserved a unit the order waited for.
    PartArrived {
        part_number: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(clippy::large_enum_variant)] // short-lived values; boxing buys nothing
pub enum Event {
    /// v2: `device` is a device key; v1 stored it as `imei:…` or `serial:…`.
    RepairOrderOpened {
        order_id: String,
        device: DeviceKey,
        channel: Channel,
        customer_id: String,
        symptoms: String,
        coverage: Coverage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fault_date: Option<NaiveDate>,
        /// The country it is repaired in; absent on orders opened before it
        /// was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        serviced_in: Option<String>,
    },
    DeviceCheckedIn {
        condition: Condition,
        accessories: Vec<String>,
    },
    DeviceReceived {
        shipment_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        depot: Option<String>,
    },
    Diagnosed {
        fault: String,
        fault_codes: Vec<String>,
        technician: String,
        coverage: Coverage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parts: Option<PartsPlan>,
    },
    /// Some part the diagnosis called for is not in stock at the center.
    WaitingForParts {
        part_numbers: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_on: Option<NaiveDate>,
    },
    /// A part waited for is now held for the order.
    PartArrived {
        part_number: String,
        /// No other part is still awaited: the repair can go on.
        #[serde(default)]
        all_arrived: bool,
    },
    /// The order is done with the parts it held and did not fit.
    PartsReleased {
        location: String,
        part_numbers: Vec<String>,
    },
    QuoteIssued {
        quote: Quote,
    },
    QuoteApproved {
        revision: u32,
    },
    QuoteDeclined {
        revision: u32,
    },
    RepairStarted {
        technician: String,
    },
    PartReplaced(PartReplacement),
    QcPassed {
        notes: String,
    },
    QcFailed {
        notes: String,
    },
    ReadyForReturn {
        repaired: bool,
    },
    DeviceCollected,
    ReturnDelivered {
        shipment_id: String,
    },
    RepairCancelled {
        reason: String,
    },
    PersonalDataAccessed {
        by: String,
        categories: Vec<DataCategory>,
        purpose: AccessPurpose,
        at: DateTime<Utc>,
    },
    DataProtectionRecorded {
        checklist: DataProtection,
    },
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::RepairOrderOpened { .. } => "RepairOrderOpened",
            Self::DeviceCheckedIn { .. } => "DeviceCheckedIn",
            Self::DeviceReceived { .. } => "DeviceReceived",
            Self::Diagnosed { .. } => "Diagnosed",
            Self::WaitingForParts { .. } => "WaitingForParts",
            Self::PartArrived { .. } => "PartArrived",
            Self::PartsReleased { .. } => "PartsReleased",
            Self::QuoteIssued { .. } => "QuoteIssued",
            Self::QuoteApproved { .. } => "QuoteApproved",
            Self::QuoteDeclined { .. } => "QuoteDeclined",
            Self::RepairStarted { .. } => "RepairStarted",
            Self::PartReplaced(_) => "PartReplaced",
            Self::QcPassed { .. } => "QcPassed",
            Self::QcFailed { .. } => "QcFailed",
            Self::ReadyForReturn { .. } => "ReadyForReturn",
            Self::DeviceCollected => "DeviceCollected",
            Self::ReturnDelivered { .. } => "ReturnDelivered",
            Self::RepairCancelled { .. } => "RepairCancelled",
            Self::PersonalDataAccessed { .. } => "PersonalDataAccessed",
            Self::DataProtectionRecorded { .. } => "DataProtectionRecorded",
        }
    }

    /// The customer's own words, and a mail-in's address but its country.
    fn personal(&self) -> Option<aftersales_eventstore::PersonalData<'_>> {
        let Self::RepairOrderOpened { customer_id, .. } = self else {
            return None;
        };
        Some(aftersales_eventstore::PersonalData {
            subject: customer_id,
            fields: &[
                "/symptoms",
                "/channel/address/recipient",
                "/channel/address/lines",
                "/channel/address/city",
                "/channel/address/region",
                "/channel/address/postal_code",
                "/channel/address/phone",
            ],
        })
    }

    fn schema_version(&self) -> u32 {
        match self {
            Self::RepairOrderOpened { .. } => 2,
            Self::DeviceCheckedIn { .. }
            | Self::DeviceReceived { .. }
            | Self::Diagnosed { .. }
            | Self::WaitingForParts { .. }
            | Self::PartArrived { .. }
            | Self::PartsReleased { .. }
            | Self::QuoteIssued { .. }
            | Self::QuoteApproved { .. }
            | Self::QuoteDeclined { .. }
            | Self::RepairStarted { .. }
            | Self::PartReplaced(_)
            | Self::QcPassed { .. }
            | Self::QcFailed { .. }
            | Self::ReadyForReturn { .. }
            | Self::DeviceCollected
            | Self::ReturnDelivered { .. }
            | Self::RepairCancelled { .. }
            | Self::PersonalDataAccessed { .. }
            | Self::DataProtectionRecorded { .. } => 1,
        }
    }

    fn upcasters() -> &'static Upcasters {
        static STEPS: LazyLock<Upcasters> = LazyLock::new(|| {
            Upcasters::new().register("RepairOrderOpened", 1, |mut payload| {
                let name = payload
                    .get("device")
                    .and_then(serde_json::Value::as_str)
                    .ok_or("v1 RepairOrderOpened without a device name")?;
                let key = DeviceKey::from_name("device", name).map_err(|e| e.to_string())?;
                payload["device"] = serde_json::to_value(key).map_err(|e| e.to_string())?;
                Ok(payload)
            })
        });
        &STEPS
    }
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if value.len() > max || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {max} bytes of printable text"),
        ));
    }
    Ok(())
}

/// Like [`text`], where nothing at all is allowed too.
fn optional_text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    if value.is_empty() {
        Ok(())
    } else {
        text(field, value, max)
    }
}

/// At most `max_items` entries of [`text`] of at most `max_len` bytes each.
fn list(
    field: &'static str,
    items: &[String],
    max_items: usize,
    max_len: usize,
) -> Result<(), DomainError> {
    if items.len() > max_items {
        return Err(DomainError::invalid(
            field,
            format!("at most {max_items} entries"),
        ));
    }
    items.iter().try_for_each(|item| text(field, item, max_len))
}

/// Photos one check-in names (the photos themselves are kept by `photos`).
pub const MAX_PHOTOS: usize = 8;
/// Lines one quote holds.
pub const MAX_QUOTE_LINES: usize = 50;

/// What a person can do to an order (the parcels' own steps are not theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CheckIn,
    Diagnose,
    IssueQuote,
    ApproveQuote,
    DeclineQuote,
    StartRepair,
    ReplacePart,
    RecordQc,
    MarkReadyForReturn,
    ConfirmCollected,
    Cancel,
}

impl Action {
    pub const ALL: [Self; 11] = [
        Self::CheckIn,
        Self::Diagnose,
        Self::IssueQuote,
        Self::ApproveQuote,
        Self::DeclineQuote,
        Self::StartRepair,
        Self::ReplacePart,
        Self::RecordQc,
        Self::MarkReadyForReturn,
        Self::ConfirmCollected,
        Self::Cancel,
    ];

    /// A command of this kind, valid in content: what the state machine is asked.
    fn probe(self, now: DateTime<Utc>) -> Command {
        let words = || "probe".to_owned();
        match self {
            Self::CheckIn => Command::CheckIn {
                condition: Condition {
                    notes: words(),
                    ..Condition::default()
                },
                accessories: Vec::new(),
            },
            Self::Diagnose => Command::Diagnose {
                fault: words(),
                fault_codes: Vec::new(),
                technician: words(),
                coverage: Coverage::Decided {
                    covered: false,
                    reason: words(),
                    policy_id: words(),
                    policy_version: 1,
                },
                parts: None,
            },
            Self::IssueQuote => Command::IssueQuote {
                lines: Money::new("amount", 1, "EUR")
                    .map(|amount| {
                        vec![QuoteLine {
                            description: words(),
                            kind: LineKind::Part,
                            amount,
                        }]
                    })
                    .unwrap_or_default(),
                valid_until: now + chrono::TimeDelta::days(1),
                now,
            },
            Self::ApproveQuote => Command::ApproveQuote { now },
            Self::DeclineQuote => Command::DeclineQuote,
            Self::StartRepair => Command::StartRepair {
                technician: words(),
            },
            Self::ReplacePart => Command::ReplacePart(PartReplacement {
                part_number: words(),
                old_serial: "old".into(),
                new_serial: "new".into(),
            }),
            Self::RecordQc => Command::RecordQc {
                passed: true,
                notes: String::new(),
            },
            Self::MarkReadyForReturn => Command::MarkReadyForReturn,
            Self::ConfirmCollected => Command::ConfirmCollected,
            Self::Cancel => Command::Cancel { reason: words() },
        }
    }
}

impl OrderState {
    /// The actions the state machine takes now: each asked of [`RepairOrder::decide`]
    /// itself, so a page offers exactly what would be accepted.
    pub fn allowed_actions(&self, now: DateTime<Utc>) -> Vec<Action> {
        let state = Some(self.clone());
        Action::ALL
            .into_iter()
            .filter(|action| RepairOrder::decide(&state, &action.probe(now)).is_ok())
            .collect()
    }
}

/// Refuses `action` unless the order is in one of `allowed`.
fn require_stage(
    order: &OrderState,
    action: &'static str,
    allowed: &[Stage],
) -> Result<(), DomainError> {
    if allowed.contains(&order.stage) {
        Ok(())
    } else {
        Err(DomainError::WrongState {
            action,
            state: order.stage,
        })
    }
}

/// An opening of the customer's data, in any stage: one step per person, data
/// and purpose within [`ACCESS_REPEAT_WINDOW`].
fn open_personal_data(
    order: &OrderState,
    by: &str,
    categories: &[DataCategory],
    purpose: AccessPurpose,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, DomainError> {
    text("actor", by, 200)?;
    let mut asked = categories.to_vec();
    asked.sort_unstable();
    asked.dedup();
    if asked.is_empty() || asked.len() != categories.len() {
        return Err(DomainError::invalid(
            "categories",
            "name at least one, each at most once",
        ));
    }
    if asked.contains(&DataCategory::ContactAddress) && !order.is_mail_in() {
        return Err(DomainError::Precondition(
            "a walk-in order has no contact address".into(),
        ));
    }
    let seen = order.last_accesses.iter().any(|last| {
        last.by == by
            && last.purpose == purpose
            && asked.iter().all(|c| last.categories.contains(c))
            && now >= last.at
            && now - last.at < ACCESS_REPEAT_WINDOW
    });
    if seen {
        return Ok(Vec::new());
    }
    Ok(vec![Event::PersonalDataAccessed {
        by: by.to_owned(),
        categories: asked,
        purpose,
        at: now,
    }])
}

/// The parts the order holds and did not fit, let go when it is done with them.
fn release_parts(order: &OrderState) -> Option<Event> {
    let plan = order.parts_plan.as_ref()?;
    let part_numbers = plan.unfitted();
    (!plan.location.is_empty() && !part_numbers.is_empty()).then(|| Event::PartsReleased {
        location: plan.location.clone(),
        part_numbers,
    })
}

/// The repair order decider.
#[derive(Debug)]
pub struct RepairOrder;

impl Decider for RepairOrder {
    type Command = Command;
    type Event = Event;
    type State = Option<OrderState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        let Some(order) = state else {
            let Command::Open {
                order_id,
                device,
                channel,
                customer_id,
                symptoms,
                coverage,
                fault_date,
                serviced_in,
            } = command
            else {
                if matches!(command, Command::PartArrived { .. }) {
                    return Ok(Vec::new()); // held for no order of ours
                }
                return Err(DomainError::NotFound("repair order".into()));
            };
            text("order_id", order_id, 100)?;
            text("customer_id", customer_id, 100)?;
            text("symptoms", symptoms, 2000)?;
            match channel {
                Channel::WalkIn { center_id, .. } => text("service_center", center_id, 100)?,
                Channel::MailIn { address } => address.validate()?,
            }
            return Ok(vec![Event::RepairOrderOpened {
                order_id: order_id.clone(),
                device: device.clone(),
                channel: channel.clone(),
                customer_id: customer_id.clone(),
                symptoms: symptoms.trim().to_owned(),
                coverage: coverage.clone(),
                fault_date: Some(*fault_date),
                serviced_in: serviced_in.clone(),
            }]);
        };
        use Stage as S;
        match command {
            Command::Open { .. } => Err(DomainError::AlreadyExists(format!(
                "repair order {} exists",
                order.order_id
            ))),
            Command::CheckIn {
                condition,
                accessories,
            } => {
                if order.is_mail_in() {
                    return Err(DomainError::Precondition(
                        "a mail-in device is received from its parcel, not checked in".into(),
                    ));
                }
                require_stage(order, "check-in", &[S::Opened])?;
                text("condition_notes", &condition.notes, 2000)?;
                list("condition.photos", &condition.photos, MAX_PHOTOS, 200)?;
                list("accessories", accessories, 20, 100)?;
                Ok(vec![Event::DeviceCheckedIn {
                    condition: condition.clone(),
                    accessories: accessories.clone(),
                }])
            }
            Command::ReceiveDevice { shipment_id, depot } => {
                if order.stage == S::Received && order.is_mail_in() {
                    return Ok(Vec::new()); // a repeated delivery notice
                }
                require_stage(order, "receiving the device", &[S::AwaitingDevice])?;
                if let Some(depot) = depot {
                    text("depot", depot, 64)?;
                }
                Ok(vec![Event::DeviceReceived {
                    shipment_id: shipment_id.clone(),
                    depot: depot.clone(),
                }])
            }
            Command::Diagnose {
                fault,
                fault_codes,
                technician,
                coverage,
                parts,
            } => {
                require_stage(order, "diagnosis", &[S::Received])?;
                text("fault_category", fault, 50)?;
                text("technician", technician, 100)?;
                list("fault_codes", fault_codes, 20, 32)?;
                if matches!(coverage, Coverage::Pending { .. }) {
                    return Err(DomainError::Precondition(
                        "coverage must be decided at diagnosis".into(),
                    ));
                }
                if let Some(plan) = parts {
                    plan.validate()?;
                }
                let mut events = vec![Event::Diagnosed {
                    fault: fault.clone(),
                    fault_codes: fault_codes.clone(),
                    technician: technician.clone(),
                    coverage: coverage.clone(),
                    parts: parts.clone(),
                }];
                if let Some((part_numbers, expected_on)) =
                    parts.as_ref().and_then(PartsPlan::awaited)
                {
                    events.push(Event::WaitingForParts {
                        part_numbers,
                        expected_on,
                    });
                }
                Ok(events)
            }
            Command::IssueQuote {
                lines,
                valid_until,
                now,
            } => {
                require_stage(order, "a quote", &[S::Diagnosed, S::Quoted])?;
                if order.coverage.is_covered() {
                    return Err(DomainError::Precondition(
                        "the repair is covered: no quote is needed".into(),
                    ));
                }
                let Some(first) = lines.first() else {
                    return Err(DomainError::invalid(
                        "lines",
                        "a quote needs at least one line",
                    ));
                };
                if lines.len() > MAX_QUOTE_LINES {
                    return Err(DomainError::invalid(
                        "lines",
                        format!("a quote has at most {MAX_QUOTE_LINES} lines"),
                    ));
                }
                let currency = first.amount.currency().clone();
                let mut total: i64 = 0;
                for line in lines {
                    text("lines.description", &line.description, 200)?;
                    if *line.amount.currency() != currency {
                        return Err(DomainError::invalid(
                            "lines.amount",
                            "all lines must be in one currency",
                        ));
                    }
                    total = total
                        .checked_add(line.amount.minor_units())
                        .ok_or_else(|| {
                            DomainError::invalid("lines.amount", "total is too large")
                        })?;
                }
                if valid_until <= now {
                    return Err(DomainError::invalid("valid_until", "must be in the future"));
                }
                let revision = order.quote.as_ref().map_or(1, |q| q.revision + 1);
                Ok(vec![Event::QuoteIssued {
                    quote: Quote {
                        revision,
                        lines: lines.clone(),
                        total: Money::new("lines.amount", total, currency.as_str())?,
                        valid_until: *valid_until,
                    },
                }])
            }
            Command::ApproveQuote { now } => {
                require_stage(order, "approving the quote", &[S::Quoted])?;
                let quote = order
                    .quote
                    .as_ref()
                    .ok_or_else(|| DomainError::Precondition("no quote".into()))?;
                if *now > quote.valid_until {
                    return Err(DomainError::Precondition(format!(
                        "quote {} expired at {}",
                        quote.revision, quote.valid_until
                    )));
                }
                Ok(vec![Event::QuoteApproved {
                    revision: quote.revision,
                }])
            }
            Command::DeclineQuote => {
                require_stage(order, "declining the quote", &[S::Quoted])?;
                let revision = order.quote.as_ref().map_or(0, |q| q.revision);
                let mut events = vec![
                    Event::QuoteDeclined { revision },
                    Event::ReadyForReturn { repaired: false },
                ];
                events.extend(release_parts(order));
                Ok(events)
            }
            Command::StartRepair { technician } => {
                text("technician", technician, 100)?;
                if let Some((parts, expected)) =
                    order.parts_plan.as_ref().and_then(PartsPlan::awaited)
                {
                    let when = expected.map_or_else(
                        || "no delivery date yet".to_owned(),
                        |day| format!("expected by {day}"),
                    );
                    return Err(DomainError::Precondition(format!(
                        "waiting for parts: {} ({when})",
                        parts.join(", ")
                    )));
                }
                match order.stage {
                    S::Approved => {}
                    S::Diagnosed if order.coverage.is_covered() => {}
                    S::Diagnosed => {
                        return Err(DomainError::Precondition(
                            "not covered: the repair needs an approved quote".into(),
                        ));
                    }
                    S::Opened
                    | S::AwaitingDevice
                    | S::Received
                    | S::Quoted
                    | S::InRepair
                    | S::QcPassed
                    | S::ReadyForReturn
                    | S::Closed
                    | S::Cancelled => {
                        return Err(DomainError::WrongState {
                            action: "starting the repair",
                            state: order.stage,
                        });
                    }
                }
                Ok(vec![Event::RepairStarted {
                    technician: technician.clone(),
                }])
            }
            Command::ReplacePart(part) => {
                require_stage(order, "replacing a part", &[S::InRepair])?;
                text("part_number", &part.part_number, 100)?;
                text("old_serial", &part.old_serial, 100)?;
                text("new_serial", &part.new_serial, 100)?;
                if part.old_serial == part.new_serial {
                    return Err(DomainError::invalid(
                        "new_serial",
                        "must differ from old_serial",
                    ));
                }
                Ok(vec![Event::PartReplaced(part.clone())])
            }
            Command::RecordQc { passed, notes } => {
                require_stage(order, "a QC result", &[S::InRepair])?;
                if *passed {
                    optional_text("notes", notes, 2000)?;
                } else {
                    text("notes", notes, 2000)?;
                }
                Ok(vec![if *passed {
                    Event::QcPassed {
                        notes: notes.clone(),
                    }
                } else {
                    Event::QcFailed {
                        notes: notes.clone(),
                    }
                }])
            }
            Command::MarkReadyForReturn => {
                require_stage(order, "marking ready for return", &[S::QcPassed])?;
                let mut events = vec![Event::ReadyForReturn { repaired: true }];
                events.extend(release_parts(order));
                Ok(events)
            }
            Command::ConfirmCollected => {
                if order.is_mail_in() {
                    return Err(DomainError::Precondition(
                        "a mail-in device is returned by parcel, not collected".into(),
                    ));
                }
                require_stage(order, "confirming collection", &[S::ReadyForReturn])?;
                Ok(vec![Event::DeviceCollected])
            }
            Command::ReturnDelivered { shipment_id } => {
                if order.stage == S::Closed && order.is_mail_in() {
                    return Ok(Vec::new()); // a repeated delivery notice
                }
                if !order.is_mail_in() {
                    return Err(DomainError::Precondition(
                        "a walk-in order has no return parcel".into(),
                    ));
                }
                require_stage(order, "the return delivery", &[S::ReadyForReturn])?;
                Ok(vec![Event::ReturnDelivered {
                    shipment_id: shipment_id.clone(),
                }])
            }
            Command::Cancel { reason } => {
                require_stage(order, "cancelling", &[S::Opened, S::AwaitingDevice])?;
                text("reason", reason, 500)?;
                Ok(vec![Event::RepairCancelled {
                    reason: reason.clone(),
                }])
            }
            Command::OpenPersonalData {
                by,
                categories,
                purpose,
                now,
            } => open_personal_data(order, by, categories, *purpose, *now),
            Command::RecordDataProtection(checklist) => {
                require_stage(
                    order,
                    "recording data protection",
                    &[
                        S::Opened,
                        S::AwaitingDevice,
                        S::Received,
                        S::Diagnosed,
                        S::Quoted,
                        S::Approved,
                    ],
                )?;
                if order.data_protection.as_ref() == Some(checklist) {
                    return Ok(Vec::new()); // nothing changed
                }
                Ok(vec![Event::DataProtectionRecorded {
                    checklist: *checklist,
                }])
            }
            Command::PartArrived { part_number } => {
                let Some(plan) = &order.parts_plan else {
                    return Ok(Vec::new());
                };
                let awaited = plan.holds.iter().filter(|h| h.waiting);
                let (this, others): (Vec<_>, Vec<_>) =
                    awaited.partition(|h| h.part_number == *part_number);
                Ok(if this.is_empty() {
                    Vec::new() // not waited for here, or told already
                } else {
                    vec![Event::PartArrived {
                        part_number: part_number.clone(),
                        all_arrived: others.is_empty(),
                    }]
                })
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        if let Event::RepairOrderOpened {
            order_id,
            device,
            channel,
            customer_id,
            symptoms,
            coverage,
            fault_date,
            ..
        } = event
        {
            let stage = match channel {
                Channel::WalkIn { .. } => Stage::Opened,
                Channel::MailIn { .. } => Stage::AwaitingDevice,
            };
            return Some(OrderState {
                order_id: order_id.clone(),
                stage,
                device: device.clone(),
                channel: channel.clone(),
                customer_id: customer_id.clone(),
                symptoms: symptoms.clone(),
                coverage: coverage.clone(),
                condition: None,
                fault: None,
                quote: None,
                fault_date: *fault_date,
                repaired: false,
                parts: Vec::new(),
                qc_failures: 0,
                data_protection: None,
                last_accesses: Vec::new(),
                parts_plan: None,
                depot: None,
            });
        }
        let mut order = state?;
        match event {
            Event::RepairOrderOpened { .. } => {}
            Event::DeviceCheckedIn { condition, .. } => {
                order.condition = Some(condition.clone());
                order.stage = Stage::Received;
            }
            Event::DeviceReceived { depot, .. } => {
                order.stage = Stage::Received;
                order.depot.clone_from(depot);
            }
            Event::Diagnosed {
                fault,
                coverage,
                parts,
                ..
            } => {
                order.fault = Some(fault.clone());
                order.coverage = coverage.clone();
                order.parts_plan = parts.clone();
                order.stage = Stage::Diagnosed;
            }
            // Its holds say which parts wait.
            Event::WaitingForParts { .. } => {}
            Event::PartArrived { part_number, .. } => {
                if let Some(hold) = order.parts_plan.as_mut().and_then(|plan| {
                    plan.holds
                        .iter_mut()
                        .find(|h| h.waiting && h.part_number == *part_number)
                }) {
                    hold.waiting = false;
                    hold.expected_on = None;
                }
            }
            Event::PartsReleased { .. } => {
                if let Some(plan) = order.parts_plan.as_mut() {
                    plan.holds.retain(|h| h.fitted);
                }
            }
            Event::QuoteIssued { quote } => {
                order.quote = Some(quote.clone());
                order.stage = Stage::Quoted;
            }
            Event::QuoteApproved { .. } => order.stage = Stage::Approved,
            Event::QuoteDeclined { .. } => {}
            Event::RepairStarted { .. } | Event::QcFailed { .. } => {
                if matches!(event, Event::QcFailed { .. }) {
                    order.qc_failures += 1;
                }
                order.stage = Stage::InRepair;
            }
            Event::PartReplaced(part) => {
                if let Some(hold) = order.parts_plan.as_mut().and_then(|plan| {
                    plan.holds
                        .iter_mut()
                        .find(|h| !h.fitted && h.part_number == part.part_number)
                }) {
                    hold.fitted = true;
                }
                order.parts.push(part.clone());
            }
            Event::QcPassed { .. } => order.stage = Stage::QcPassed,
            Event::ReadyForReturn { repaired } => {
                order.repaired = *repaired;
                order.stage = Stage::ReadyForReturn;
            }
            Event::DeviceCollected | Event::ReturnDelivered { .. } => order.stage = Stage::Closed,
            Event::RepairCancelled { .. } => order.stage = Stage::Cancelled,
            Event::PersonalDataAccessed {
                by,
                categories,
                purpose,
                at,
            } => {
                order.last_accesses.retain(|a| a.by != *by);
                order.last_accesses.push(Access {
                    by: by.clone(),
                    categories: categories.clone(),
                    purpose: *purpose,
                    at: *at,
                });
            }
            Event::DataProtectionRecorded { checklist } => {
                order.data_protection = Some(*checklist);
            }
        }
        Some(order)
    }
}

#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)] // tests single out the cases they look at
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::TimeZone as _;
    use proptest::prelude::*;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, hour, 0, 0).unwrap()
    }

    fn covered(yes: bool) -> Coverage {
        Coverage::Decided {
            covered: yes,
            reason: if yes {
                "within_base_warranty"
            } else {
                "expired"
            }
            .into(),
            policy_id: "de-consumer".into(),
            policy_version: 2,
        }
    }

    fn open(mail_in: bool, coverage: Coverage) -> Command {
        Command::Open {
            serviced_in: None,
            fault_date: "2026-11-30".parse().unwrap(),
            order_id: "r-1".into(),
            device: DeviceKey::imei("490154203237518").unwrap(),
            channel: if mail_in {
                Channel::MailIn {
                    address: Address {
                        recipient: "Ana Lima".into(),
                        lines: vec!["Rua A 1".into()],
                        city: "Lisboa".into(),
                        region: String::new(),
                        postal_code: "1000-001".into(),
                        country: "PT".into(),
                        phone: String::new(),
                    },
                }
            } else {
                Channel::WalkIn {
                    center_id: "sc-berlin-01".into(),
                    visit_on: None,
                }
            },
            customer_id: "cust-1".into(),
            symptoms: "screen flickers".into(),
            coverage,
        }
    }

    /// One command of every kind, valid in content.
    fn every_command() -> Vec<Command> {
        vec![
            open(false, covered(true)),
            Command::CheckIn {
                condition: Condition {
                    notes: "scratch on the back".into(),
                    ..Condition::default()
                },
                accessories: vec![],
            },
            Command::ReceiveDevice {
                shipment_id: "s-1".into(),
                depot: Some("eu-leipzig".into()),
            },
            Command::Diagnose {
                fault: "display".into(),
                fault_codes: vec!["E42".into()],
                technician: "tech-7".into(),
                coverage: covered(false),
                parts: None,
            },
            Command::IssueQuote {
                lines: vec![QuoteLine {
                    description: "display".into(),
                    kind: LineKind::Part,
                    amount: Money::new("amount", 12_900, "EUR").unwrap(),
                }],
                valid_until: at(20),
                now: at(10),
            },
            Command::ApproveQuote { now: at(11) },
            Command::DeclineQuote,
            Command::StartRepair {
                technician: "tech-7".into(),
            },
            Command::ReplacePart(PartReplacement {
                part_number: "DSP-5".into(),
                old_serial: "A1".into(),
                new_serial: "B2".into(),
            }),
            Command::RecordQc {
                passed: true,
                notes: String::new(),
            },
            Command::RecordQc {
                passed: false,
                notes: "dead pixel".into(),
            },
            Command::MarkReadyForReturn,
            Command::ConfirmCollected,
            Command::ReturnDelivered {
                shipment_id: "s-2".into(),
            },
            Command::Cancel {
                reason: "customer changed their mind".into(),
            },
            Command::OpenPersonalData {
                by: "staff:anna".into(),
                categories: vec![DataCategory::CustomerWords],
                purpose: AccessPurpose::Diagnosis,
                now: at(9),
            },
            Command::RecordDataProtection(DataProtection {
                backup_reminded: true,
                find_my_device_off: true,
                passcode: Passcode::CustomerUnlocks,
            }),
            Command::PartArrived {
                part_number: "A5-BAT".into(),
            },
        ]
    }

    fn plan() -> PartsPlan {
        let eur = |minor| Money::new("amount", minor, "EUR").unwrap();
        PartsPlan {
            location: "sc-berlin-01".into(),
            holds: vec![
                PartHold {
                    part_number: "A5-DSP".into(),
                    waiting: false,
                    expected_on: None,
                    fitted: false,
                },
                PartHold {
                    part_number: "A5-BAT".into(),
                    waiting: true,
                    expected_on: "2026-11-16".parse().ok(),
                    fitted: false,
                },
            ],
            proposed: vec![
                QuoteLine {
                    description: "Aurora 5 display assembly".into(),
                    kind: LineKind::Part,
                    amount: eur(18_900),
                },
                QuoteLine {
                    description: "Display replacement (45 min)".into(),
                    kind: LineKind::Labour,
                    amount: eur(5_950),
                },
            ],
        }
    }

    fn diagnosed_with(plan: PartsPlan, coverage: Coverage) -> (Option<OrderState>, Vec<Event>) {
        let mut order = run(None, &open(false, coverage.clone())).unwrap();
        order = run(
            order,
            &Command::CheckIn {
                condition: Condition {
                    notes: "cracked".into(),
                    ..Condition::default()
                },
                accessories: vec![],
            },
        )
        .unwrap();
        let diagnose = Command::Diagnose {
            fault: "display".into(),
            fault_codes: vec![],
            technician: "tech-7".into(),
            coverage,
            parts: Some(plan),
        };
        let events = RepairOrder::decide(&order, &diagnose).unwrap();
        (run(order, &diagnose).unwrap(), events)
    }

    #[test]
    fn a_repair_waits_for_its_parts_and_gives_back_what_it_did_not_fit() {
        let (order, events) = diagnosed_with(plan(), covered(true));
        assert!(matches!(
            &events[..],
            [
                Event::Diagnosed { parts: Some(_), .. },
                Event::WaitingForParts { part_numbers, expected_on: Some(day) },
            ] if part_numbers == &["A5-BAT"] && day.to_string() == "2026-11-16"
        ));
        let start = Command::StartRepair {
            technician: "tech-7".into(),
        };
        let refused = RepairOrder::decide(&order, &start).unwrap_err();
        assert!(
            matches!(&refused, DomainError::Precondition(why) if why.contains("A5-BAT") && why.contains("2026-11-16")),
            "{refused:?}"
        );
        let waiting = order.as_ref().unwrap();
        assert!(
            !waiting
                .allowed_actions(at(10))
                .contains(&Action::StartRepair)
        );

        // A part nobody waits for, or an order that is not ours, changes nothing.
        let other = Command::PartArrived {
            part_number: "A5-DSP".into(),
        };
        assert!(RepairOrder::decide(&order, &other).unwrap().is_empty());
        assert!(RepairOrder::decide(&None, &other).unwrap().is_empty());

        let arrived = Command::PartArrived {
            part_number: "A5-BAT".into(),
        };
        assert!(matches!(
            &RepairOrder::decide(&order, &arrived).unwrap()[..],
            [Event::PartArrived {
                all_arrived: true,
                ..
            }]
        ));
        let order = run(order, &arrived).unwrap();
        assert!(
            RepairOrder::decide(&order, &arrived).unwrap().is_empty(),
            "told once"
        );
        let order = run(order, &start).unwrap();
        let order = run(
            order,
            &Command::ReplacePart(PartReplacement {
                part_number: "A5-DSP".into(),
                old_serial: "OLD-1".into(),
                new_serial: "NEW-1".into(),
            }),
        )
        .unwrap();
        let order = run(
            order,
            &Command::RecordQc {
                passed: true,
                notes: String::new(),
            },
        )
        .unwrap();
        let ready = RepairOrder::decide(&order, &Command::MarkReadyForReturn).unwrap();
        assert!(matches!(
            &ready[..],
            [
                Event::ReadyForReturn { repaired: true },
                Event::PartsReleased { location, part_numbers },
            ] if location == "sc-berlin-01" && part_numbers == &["A5-BAT"]
        ));
    }

    #[test]
    fn a_declined_quote_releases_every_part_held() {
        let mut held = plan();
        held.holds[1].waiting = false;
        held.holds[1].expected_on = None;
        let (order, events) = diagnosed_with(held, covered(false));
        assert_eq!(events.len(), 1, "nothing waits: {events:?}");
        let order = run(
            order,
            &Command::IssueQuote {
                lines: plan().proposed,
                valid_until: at(20),
                now: at(10),
            },
        )
        .unwrap();
        let declined = RepairOrder::decide(&order, &Command::DeclineQuote).unwrap();
        assert!(matches!(
            declined.last(),
            Some(Event::PartsReleased { part_numbers, .. }) if part_numbers == &["A5-BAT", "A5-DSP"] || part_numbers == &["A5-DSP", "A5-BAT"]
        ));
    }

    fn opening(by: &str, categories: &[DataCategory], minute: u32) -> Command {
        Command::OpenPersonalData {
            by: by.into(),
            categories: categories.to_vec(),
            purpose: AccessPurpose::Diagnosis,
            now: at(9) + chrono::TimeDelta::minutes(minute.into()),
        }
    }

    #[test]
    fn each_opening_of_a_customers_data_is_one_step_per_person_and_quarter_hour() {
        use DataCategory as C;
        let order = run(None, &open(true, covered(true))).unwrap();
        let steps = |order: &Option<OrderState>, command: &Command| {
            RepairOrder::decide(order, command).unwrap().len()
        };
        let opened = run(
            order.clone(),
            &opening("staff:anna", &[C::CustomerWords], 0),
        )
        .unwrap();
        let stage = opened.as_ref().map(|o| o.stage);
        assert_eq!(stage, order.as_ref().map(|o| o.stage), "no stage moves");
        // Again within the window: the step already there.
        assert_eq!(
            steps(&opened, &opening("staff:anna", &[C::CustomerWords], 14)),
            0
        );
        // Someone else, more data, or another purpose: a step each.
        assert_eq!(
            steps(&opened, &opening("staff:ben", &[C::CustomerWords], 1)),
            1
        );
        assert_eq!(
            steps(
                &opened,
                &opening("staff:anna", &[C::CustomerWords, C::ContactAddress], 1)
            ),
            1
        );
        let mut shipping = opening("staff:anna", &[C::CustomerWords], 1);
        if let Command::OpenPersonalData { purpose, .. } = &mut shipping {
            *purpose = AccessPurpose::ReturnShipping;
        }
        assert_eq!(steps(&opened, &shipping), 1);
        // After the window, a new step.
        assert_eq!(
            steps(&opened, &opening("staff:anna", &[C::CustomerWords], 15)),
            1
        );
        // Nothing, or the same twice, is refused; a walk-in has no address.
        for bad in [vec![], vec![C::CustomerWords, C::CustomerWords]] {
            assert!(matches!(
                RepairOrder::decide(&opened, &opening("staff:anna", &bad, 20)),
                Err(DomainError::Invalid {
                    field: "categories",
                    ..
                })
            ));
        }
        let walk_in = run(None, &open(false, covered(true))).unwrap();
        assert!(matches!(
            RepairOrder::decide(&walk_in, &opening("staff:anna", &[C::ContactAddress], 0)),
            Err(DomainError::Precondition(_))
        ));
    }

    #[test]
    fn data_protection_is_recorded_before_the_repair_starts_and_only_when_it_changes() {
        let checklist = DataProtection {
            backup_reminded: true,
            find_my_device_off: false,
            passcode: Passcode::ResetAgreed,
        };
        let order = run(None, &open(false, covered(true))).unwrap();
        let recorded = run(order, &Command::RecordDataProtection(checklist)).unwrap();
        assert_eq!(
            recorded.as_ref().and_then(|o| o.data_protection),
            Some(checklist)
        );
        assert_eq!(
            RepairOrder::decide(&recorded, &Command::RecordDataProtection(checklist)).unwrap(),
            Vec::new()
        );
        let mut in_repair = recorded;
        for command in [
            &every_command()[1],
            &Command::Diagnose {
                fault: "display".into(),
                fault_codes: vec![],
                technician: "tech-7".into(),
                coverage: covered(true),
                parts: None,
            },
            &every_command()[7],
        ] {
            in_repair = run(in_repair, command).unwrap();
        }
        let error = RepairOrder::decide(
            &in_repair,
            &Command::RecordDataProtection(DataProtection {
                find_my_device_off: true,
                ..checklist
            }),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "recording data protection is not allowed while the order is in_repair"
        );
    }

    fn run(
        state: Option<OrderState>,
        command: &Command,
    ) -> Result<Option<OrderState>, DomainError> {
        let events = RepairOrder::decide(&state, command)?;
        Ok(events.iter().fold(state, RepairOrder::evolve))
    }

    /// The transitions the design allows: (from, to).
    fn allowed() -> HashSet<(Stage, Stage)> {
        use Stage as S;
        [
            (S::Opened, S::Received),
            (S::AwaitingDevice, S::Received),
            (S::Received, S::Diagnosed),
            (S::Diagnosed, S::InRepair),
            (S::Diagnosed, S::Quoted),
            (S::Quoted, S::Quoted),
            (S::Quoted, S::Approved),
            (S::Quoted, S::ReadyForReturn),
            (S::Approved, S::InRepair),
            (S::InRepair, S::InRepair),
            (S::InRepair, S::QcPassed),
            (S::QcPassed, S::ReadyForReturn),
            (S::ReadyForReturn, S::Closed),
            (S::Opened, S::Cancelled),
            (S::AwaitingDevice, S::Cancelled),
        ]
        .into_iter()
        .collect()
    }

    /// Orders in every stage, walk-in and mail-in, covered and not.
    fn orders_in_every_stage() -> HashMap<Stage, Vec<OrderState>> {
        let mut found: HashMap<Stage, Vec<OrderState>> = HashMap::new();
        for mail_in in [false, true] {
            for cover in [true, false] {
                let mut frontier =
                    vec![run(None, &open(mail_in, covered(cover))).unwrap().unwrap()];
                let mut seen = HashSet::new();
                while let Some(order) = frontier.pop() {
                    if !seen.insert((order.stage, order.quote.is_some(), order.qc_failures.min(1)))
                    {
                        continue;
                    }
                    found.entry(order.stage).or_default().push(order.clone());
                    for command in every_command() {
                        let command = match command {
                            Command::Diagnose {
                                fault,
                                fault_codes,
                                technician,
                                ..
                            } => Command::Diagnose {
                                fault,
                                fault_codes,
                                technician,
                                coverage: covered(cover),
                                parts: None,
                            },
                            other => other,
                        };
                        if let Ok(Some(next)) = run(Some(order.clone()), &command) {
                            frontier.push(next);
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_stage_is_reachable() {
        let found = orders_in_every_stage();
        for stage in Stage::ALL {
            assert!(found.contains_key(&stage), "{stage} is never reached");
        }
    }

    #[test]
    fn every_command_in_every_stage_is_allowed_or_refused_naming_the_stage() {
        let allowed = allowed();
        for (stage, orders) in orders_in_every_stage() {
            for order in orders {
                for command in every_command() {
                    match run(Some(order.clone()), &command) {
                        Ok(Some(next)) => {
                            if next.stage != stage {
                                assert!(
                                    allowed.contains(&(stage, next.stage)),
                                    "{command:?} took {stage} to {}",
                                    next.stage
                                );
                            }
                        }
                        Ok(None) => unreachable!("an order never disappears"),
                        Err(DomainError::WrongState { state, .. }) => assert_eq!(state, stage),
                        Err(DomainError::Precondition(_) | DomainError::AlreadyExists(_)) => {}
                        Err(other) => panic!("{command:?} in {stage}: {other}"),
                    }
                }
            }
        }
    }

    #[test]
    fn the_actions_offered_are_exactly_those_the_state_machine_accepts() {
        for (stage, orders) in orders_in_every_stage() {
            for order in orders {
                let offered = order.allowed_actions(at(12));
                for action in Action::ALL {
                    let accepted = RepairOrder::decide(&Some(order.clone()), &action.probe(at(12)));
                    assert_eq!(
                        offered.contains(&action),
                        accepted.is_ok(),
                        "{action:?} in {stage}"
                    );
                }
                if matches!(stage, Stage::Closed | Stage::Cancelled) {
                    assert!(offered.is_empty(), "{stage}: {offered:?}");
                }
            }
        }
        let opened = run(None, &open(false, covered(true))).unwrap().unwrap();
        assert_eq!(
            opened.allowed_actions(at(12)),
            vec![Action::CheckIn, Action::Cancel]
        );
        let received = run(Some(opened), &every_command()[1]).unwrap().unwrap();
        assert_eq!(received.allowed_actions(at(12)), vec![Action::Diagnose]);
    }

    #[test]
    fn refusals_write_nothing_and_name_the_stage() {
        let order = run(None, &open(false, covered(true))).unwrap();
        let error = RepairOrder::decide(&order, &Command::MarkReadyForReturn).unwrap_err();
        assert_eq!(
            error.to_string(),
            "marking ready for return is not allowed while the order is opened"
        );
        let unknown = RepairOrder::decide(&None, &Command::DeclineQuote).unwrap_err();
        assert!(matches!(unknown, DomainError::NotFound(_)));
    }

    fn quoted(valid_until: DateTime<Utc>) -> Option<OrderState> {
        let mut order = run(None, &open(false, covered(false))).unwrap();
        for command in [
            Command::CheckIn {
                condition: Condition {
                    notes: "ok".into(),
                    ..Condition::default()
                },
                accessories: vec![],
            },
            Command::Diagnose {
                fault: "display".into(),
                fault_codes: vec![],
                technician: "t".into(),
                coverage: covered(false),
                parts: None,
            },
            Command::IssueQuote {
                lines: vec![QuoteLine {
                    description: "display".into(),
                    kind: LineKind::Part,
                    amount: Money::new("amount", 100, "EUR").unwrap(),
                }],
                valid_until,
                now: at(9),
            },
        ] {
            order = run(order, &command).unwrap();
        }
        order
    }

    #[test]
    fn an_expired_quote_cannot_be_approved_and_a_revision_needs_its_own_approval() {
        let order = quoted(at(12));
        assert!(matches!(
            RepairOrder::decide(&order, &Command::ApproveQuote { now: at(13) }),
            Err(DomainError::Precondition(_))
        ));
        let revised = run(
            order,
            &Command::IssueQuote {
                lines: vec![QuoteLine {
                    description: "display and frame".into(),
                    kind: LineKind::Part,
                    amount: Money::new("amount", 150, "EUR").unwrap(),
                }],
                valid_until: at(20),
                now: at(13),
            },
        )
        .unwrap();
        assert_eq!(
            revised.as_ref().unwrap().quote.as_ref().unwrap().revision,
            2
        );
        assert_eq!(revised.as_ref().unwrap().stage, Stage::Quoted);
        let approved = run(revised, &Command::ApproveQuote { now: at(14) }).unwrap();
        assert_eq!(approved.unwrap().stage, Stage::Approved);
    }

    #[test]
    fn a_quote_exactly_when_not_covered() {
        let mut covered_order = run(None, &open(false, covered(true))).unwrap();
        for command in [
            Command::CheckIn {
                condition: Condition {
                    notes: "ok".into(),
                    ..Condition::default()
                },
                accessories: vec![],
            },
            Command::Diagnose {
                fault: "battery".into(),
                fault_codes: vec![],
                technician: "t".into(),
                coverage: covered(true),
                parts: None,
            },
        ] {
            covered_order = run(covered_order, &command).unwrap();
        }
        let quote = Command::IssueQuote {
            lines: vec![QuoteLine {
                description: "battery".into(),
                kind: LineKind::Part,
                amount: Money::new("amount", 100, "EUR").unwrap(),
            }],
            valid_until: at(20),
            now: at(10),
        };
        assert!(matches!(
            RepairOrder::decide(&covered_order, &quote),
            Err(DomainError::Precondition(_))
        ));
        let started = run(
            covered_order,
            &Command::StartRepair {
                technician: "t".into(),
            },
        )
        .unwrap();
        assert_eq!(started.unwrap().stage, Stage::InRepair);

        let uncovered = quoted(at(20));
        let declined = run(uncovered, &Command::DeclineQuote).unwrap().unwrap();
        assert_eq!(
            (declined.stage, declined.repaired),
            (Stage::ReadyForReturn, false)
        );
    }

    #[test]
    fn bad_quote_lines_are_invalid() {
        let order = quoted(at(20));
        let line = |units, currency: &str| QuoteLine {
            description: "x".into(),
            kind: LineKind::Labour,
            amount: Money::new("amount", units, currency).unwrap(),
        };
        for (lines, field) in [
            (vec![], "lines"),
            (vec![line(100, "EUR"), line(100, "USD")], "lines.amount"),
            (vec![line(i64::MAX, "EUR"), line(1, "EUR")], "lines.amount"),
        ] {
            let error = RepairOrder::decide(
                &order,
                &Command::IssueQuote {
                    lines,
                    valid_until: at(20),
                    now: at(10),
                },
            )
            .unwrap_err();
            assert!(
                matches!(error, DomainError::Invalid { field: f, .. } if f == field),
                "{error}"
            );
        }
        let past = RepairOrder::decide(
            &order,
            &Command::IssueQuote {
                lines: vec![line(1, "EUR")],
                valid_until: at(9),
                now: at(10),
            },
        )
        .unwrap_err();
        assert!(matches!(
            past,
            DomainError::Invalid {
                field: "valid_until",
                ..
            }
        ));
    }

    #[test]
    fn opening_needs_symptoms_a_center_or_an_address() {
        let Command::Open {
            order_id,
            device,
            customer_id,
            coverage,
            ..
        } = open(false, covered(true))
        else {
            unreachable!()
        };
        let with = |channel: Channel, symptoms: &str| Command::Open {
            serviced_in: None,
            fault_date: "2026-11-30".parse().unwrap(),
            order_id: order_id.clone(),
            device: device.clone(),
            channel,
            customer_id: customer_id.clone(),
            symptoms: symptoms.into(),
            coverage: coverage.clone(),
        };
        let walk_in = Channel::WalkIn {
            center_id: "sc-1".into(),
            visit_on: None,
        };
        let field = |c: &Command| match RepairOrder::decide(&None, c).unwrap_err() {
            DomainError::Invalid { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(field(&with(walk_in.clone(), "  ")), "symptoms");
        assert_eq!(
            field(&with(
                Channel::WalkIn {
                    center_id: String::new(),
                    visit_on: None,
                },
                "dead"
            )),
            "service_center"
        );
        let no_address = Channel::MailIn {
            address: Address {
                recipient: "A".into(),
                lines: vec![],
                city: "B".into(),
                region: String::new(),
                postal_code: "1".into(),
                country: "PT".into(),
                phone: String::new(),
            },
        };
        assert_eq!(field(&with(no_address, "dead")), "contact_address.lines");
        // The addresses logistics could not put on a label are refused here,
        // before an order waits for a label that never comes.
        let lisbon = Address {
            recipient: "Ana Silva".into(),
            lines: vec!["Rua Augusta 1".into()],
            city: "Lisboa".into(),
            region: String::new(),
            postal_code: "1100-048".into(),
            country: "PT".into(),
            phone: String::new(),
        };
        let mail_in = |address: Address| with(Channel::MailIn { address }, "dead");
        assert!(RepairOrder::decide(&None, &mail_in(lisbon.clone())).is_ok());
        for (address, named) in [
            (
                Address {
                    country: "pt".into(),
                    ..lisbon.clone()
                },
                "contact_address.country",
            ),
            (
                Address {
                    lines: vec!["x".into(); 5],
                    ..lisbon.clone()
                },
                "contact_address.lines",
            ),
            (
                Address {
                    postal_code: "1".repeat(5000),
                    ..lisbon.clone()
                },
                "contact_address.postal_code",
            ),
        ] {
            assert_eq!(field(&mail_in(address)), named);
        }
    }

    #[test]
    fn repeated_delivery_notices_change_nothing() {
        let order = run(None, &open(true, covered(true))).unwrap();
        let receive = Command::ReceiveDevice {
            shipment_id: "s-1".into(),
            depot: None,
        };
        let received = run(order, &receive).unwrap();
        assert!(RepairOrder::decide(&received, &receive).unwrap().is_empty());
        assert!(matches!(
            RepairOrder::decide(&received, &Command::ConfirmCollected),
            Err(DomainError::Precondition(_))
        ));
    }

    proptest! {
        #[test]
        fn random_commands_never_leave_the_machine_and_replay_to_the_same_state(
            mail_in in any::<bool>(),
            cover in any::<bool>(),
            picks in prop::collection::vec(0usize..15, 0..40),
        ) {
            let allowed = allowed();
            let commands = every_command();
            let mut state = run(None, &open(mail_in, covered(cover))).unwrap();
            let mut history = RepairOrder::decide(&None, &open(mail_in, covered(cover))).unwrap();
            for pick in picks {
                let before = state.as_ref().unwrap().stage;
                if let Ok(events) = RepairOrder::decide(&state, &commands[pick]) {
                    state = events.iter().fold(state, RepairOrder::evolve);
                    history.extend(events);
                    let after = state.as_ref().unwrap().stage;
                    prop_assert!(after == before || allowed.contains(&(before, after)), "{before} -> {after}");
                }
            }
            prop_assert_eq!(RepairOrder::fold(&history), state);
        }
    }
}
