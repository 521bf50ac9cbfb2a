//! The device aggregate: registration under a policy, plans, accessories, voiding,
//! ownership and claims. One stream per device.

use std::collections::{BTreeMap, BTreeSet};

use aftersales_eventstore::{Decider, DomainEvent};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::coverage::{self, Decision, Remedy};
use super::forward::RepairStep;
use super::policy::{Plan, PolicyTerms, Refund, TermStart};
use super::programme::{Programme, ProgrammeKind};
use super::{
    AccessoryKind, DeviceKey, DomainError, FaultCategory, SalesChannel, add_days, add_months,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePlan {
    pub plan_id: String,
    pub purchased_on: NaiveDate,
    pub coverage_end: NaiveDate,
    pub price_minor: i64,
    pub currency: String,
    /// The provider's payment it was bought with (plans bought before
    /// payments went through the provider have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

/// A plan that was cancelled: it covered the days before its cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastPlan {
    pub plan_id: String,
    pub coverage_end: NaiveDate,
    pub cancelled_on: NaiveDate,
}

/// A plan ordered and waiting for its payment to settle: not active yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPlan {
    pub plan_id: String,
    pub payment_id: String,
    pub ordered_on: NaiveDate,
    pub coverage_end: NaiveDate,
    pub price_minor: i64,
    pub currency: String,
}

/// How a plan's payment settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Paid,
    Failed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessoryState {
    pub kind: AccessoryKind,
    pub purchase_date: NaiveDate,
    pub coverage_end: NaiveDate,
    /// The faulty unit this one replaced under its warranty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The unit that replaced this one: its cover went with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

/// Where a purchase date comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseProof {
    /// A sales record, or staff who saw the proof of purchase. Registrations
    /// recorded before the distinction count as this.
    #[default]
    Verified,
    /// The customer's word, until staff check the proof: it never locks out a
    /// later verified registration of the same phone.
    CustomerDeclared,
}

/// A registered device, as its history leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    pub key: DeviceKey,
    pub model: String,
    pub purchase_date: NaiveDate,
    pub country: String,
    pub channel: SalesChannel,
    pub customer_id: String,
    /// The policy version in force on the purchase date, as it was then.
    pub terms: PolicyTerms,
    pub base_end: NaiveDate,
    /// Months the legal guarantee was extended by repairs.
    pub legal_extension_months: u32,
    pub plan: Option<ActivePlan>,
    pub voided: Option<String>,
    pub accessories: BTreeMap<String, AccessoryState>,
    pub claims: BTreeSet<String>,
    /// Per fault, until when a part replaced under a claim is covered.
    pub part_cover: BTreeMap<FaultCategory, NaiveDate>,
    #[serde(default)]
    pub proof: PurchaseProof,
    /// A plan whose payment has not settled.
    #[serde(default)]
    pub pending_plan: Option<PendingPlan>,
    /// First activation, where the policy starts the term there.
    #[serde(default)]
    pub activated_on: Option<NaiveDate>,
    #[serde(default)]
    pub past_plans: Vec<PastPlan>,
    /// Decisions recorded on the last day one was: what the daily limit counts.
    #[serde(default)]
    pub decisions_on: DecisionsOn,
    /// The programmes the owner was told the device is in, by id.
    #[serde(default)]
    pub programmes: BTreeSet<String>,
}

/// How many coverage decisions were recorded for a device on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DecisionsOn {
    pub day: Option<NaiveDate>,
    pub count: u32,
}

/// Coverage decisions one device may have recorded per day: diagnoses and
/// claims need a few; more is someone growing its history.
pub const MAX_DECISIONS_PER_DAY: u32 = 50;

/// The day the maker's warranty starts: the purchase, or the first activation
/// where the policy says so, but never later than its limit after purchase.
pub fn term_start(
    terms: &PolicyTerms,
    purchase: NaiveDate,
    activated: Option<NaiveDate>,
) -> NaiveDate {
    match terms.term_starts {
        TermStart::Purchase => purchase,
        TermStart::Activation { within_days } => {
            let latest = add_days(purchase, within_days);
            activated.map_or(latest, |day| day.clamp(purchase, latest))
        }
    }
}

impl DeviceState {
    pub fn term_start(&self) -> NaiveDate {
        term_start(&self.terms, self.purchase_date, self.activated_on)
    }

    /// Until when a plan covered `on`: the active plan, or one cancelled after it.
    pub fn plan_cover_on(&self, on: NaiveDate) -> Option<NaiveDate> {
        let active = self.plan.as_ref().map(|p| p.coverage_end);
        let cancelled = self
            .past_plans
            .iter()
            .filter(|p| on < p.cancelled_on)
            .map(|p| p.coverage_end.min(p.cancelled_on));
        active
            .into_iter()
            .chain(cancelled)
            .filter(|end| self.base_end < on && on <= *end)
            .max()
    }

    pub fn legal_guarantee_end(&self) -> Option<NaiveDate> {
        let months = self.terms.statutory.legal_guarantee_months;
        (months > 0).then(|| add_months(self.purchase_date, months + self.legal_extension_months))
    }

    /// The plans the device can buy on `today`: none while one is active or
    /// being paid, or once voided; each until the end of its window, which
    /// also closes when the maker's warranty ends.
    pub fn plan_offers(&self, today: NaiveDate) -> Vec<PlanOffer<'_>> {
        if self.voided.is_some() || self.plan.is_some() || self.pending_plan.is_some() {
            return Vec::new();
        }
        self.terms
            .plans
            .iter()
            .map(|plan| self.offer(plan))
            .filter(|offer| today <= offer.buy_by)
            .collect()
    }

    fn offer<'a>(&self, plan: &'a Plan) -> PlanOffer<'a> {
        PlanOffer {
            plan,
            buy_by: add_days(self.purchase_date, plan.buy_within_days).min(self.base_end),
            coverage_end: add_months(self.base_end, plan.extra_months),
        }
    }

    /// The last day anything covers the phone: warranty, guarantee or plan.
    pub fn coverage_end(&self) -> NaiveDate {
        [
            Some(self.base_end),
            self.legal_guarantee_end(),
            self.plan.as_ref().map(|p| p.coverage_end),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(self.base_end)
    }
}

/// A plan on offer to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOffer<'a> {
    pub plan: &'a Plan,
    /// The last day it can be bought.
    pub buy_by: NaiveDate,
    /// Until when it would cover the phone.
    pub coverage_end: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Register {
        key: DeviceKey,
        model: String,
        purchase_date: NaiveDate,
        country: String,
        channel: SalesChannel,
        customer_id: String,
        /// Looked up from the policy table for the country and purchase date.
        terms: PolicyTerms,
        proof: PurchaseProof,
        /// First activation, for policies whose term starts there.
        activation_date: Option<NaiveDate>,
        today: NaiveDate,
    },
    /// Orders a plan, paid by `payment_id` (created at the provider first); it
    /// is active once the payment settles.
    PurchasePlan {
        plan_id: String,
        payment_id: String,
        today: NaiveDate,
    },
    /// The provider's answer on a plan's payment.
    SettlePlanPayment {
        payment_id: String,
        settlement: Settlement,
    },
    CancelPlan {
        today: NaiveDate,
        /// The refund asked of the provider for the plan's payment, if any.
        refund_id: Option<String>,
    },
    RegisterAccessory {
        serial: String,
        kind: AccessoryKind,
        purchase_date: NaiveDate,
        /// A faulty unit this one replaces under its warranty: the new unit
        /// keeps the old one's cover, or the policy's minimum for a replaced
        /// part, whichever ends later.
        replaces: Option<String>,
        today: NaiveDate,
    },
    Void {
        reason: String,
        evidence: Vec<String>,
        today: NaiveDate,
    },
    TransferOwnership {
        to: String,
    },
    /// Records a decision made by [`coverage::decide`] for the audit trail.
    RecordDecision {
        fault: FaultCategory,
        decision: Decision,
        today: NaiveDate,
    },
    /// A covered repair used the warranty: decided for the day the fault
    /// appeared; within the legal guarantee it is a remedy under it.
    RecordClaim {
        repair_order_id: String,
        fault: FaultCategory,
        fault_date: NaiveDate,
        today: NaiveDate,
        /// The programmes in the table: a claim may rest on one.
        programmes: Vec<Programme>,
    },
    /// Records that the device is in each of `programmes` that affects it and
    /// was not recorded before: what tells its owner, once.
    Enrol {
        programmes: Vec<Programme>,
        today: NaiveDate,
    },
    /// A repair of the device in `region` moved on a step: its owner is told.
    RecordRepairAbroad {
        repair_order_id: String,
        step: RepairStep,
        walk_in: bool,
        region: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    DeviceRegistered {
        key: DeviceKey,
        model: String,
        purchase_date: NaiveDate,
        country: String,
        channel: SalesChannel,
        customer_id: String,
        terms: PolicyTerms,
        base_end: NaiveDate,
        #[serde(default)]
        proof: PurchaseProof,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activated_on: Option<NaiveDate>,
    },
    /// A customer-declared registration replaced by a verified one: the
    /// purchase as the sales record or the proof of purchase shows it.
    PurchaseVerified {
        model: String,
        purchase_date: NaiveDate,
        country: String,
        channel: SalesChannel,
        customer_id: String,
        terms: PolicyTerms,
        base_end: NaiveDate,
        /// Who had declared it.
        declared_by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        activated_on: Option<NaiveDate>,
    },
    /// A plan ordered; its payment has not settled yet.
    PlanOrdered {
        customer_id: String,
        plan_id: String,
        payment_id: String,
        ordered_on: NaiveDate,
        coverage_end: NaiveDate,
        price_minor: i64,
        currency: String,
    },
    /// A plan's payment failed: the plan never became active.
    PlanPaymentFailed {
        plan_id: String,
        payment_id: String,
        reason: String,
    },
    /// A plan paid for and active.
    ExtendedWarrantyPurchased {
        customer_id: String,
        plan_id: String,
        purchased_on: NaiveDate,
        coverage_end: NaiveDate,
        price_minor: i64,
        currency: String,
    },
    ExtendedWarrantyCancelled {
        customer_id: String,
        plan_id: String,
        cancelled_on: NaiveDate,
        refund_minor: i64,
        currency: String,
        /// The refund at the payment provider, when the plan was paid there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund_id: Option<String>,
    },
    AccessoryRegistered {
        serial: String,
        kind: AccessoryKind,
        purchase_date: NaiveDate,
        coverage_end: NaiveDate,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
    },
    WarrantyVoided {
        customer_id: String,
        reason: String,
        evidence: Vec<String>,
        voided_on: NaiveDate,
    },
    OwnershipTransferred {
        from: String,
        to: String,
    },
    CoverageDecided {
        fault: FaultCategory,
        decision: Decision,
        /// The day it was recorded, which the daily limit counts by.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded_on: Option<NaiveDate>,
    },
    ClaimRecorded {
        repair_order_id: String,
        fault: FaultCategory,
        claimed_on: NaiveDate,
        /// The day the fault appeared, which the claim was decided for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fault_date: Option<NaiveDate>,
        under_legal_guarantee: bool,
        part_covered_until: NaiveDate,
        legal_extension_months: u32,
        /// The legal guarantee's end after this claim, if there is one.
        legal_guarantee_end: Option<NaiveDate>,
        /// The programme the repair is a remedy under, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        programme_id: Option<String>,
    },
    /// The device is one a recall or service programme is offered for.
    EnrolledInProgramme {
        customer_id: String,
        model: String,
        programme_id: String,
        programme_version: u32,
        kind: ProgrammeKind,
        faults: Vec<FaultCategory>,
        remedy: Remedy,
        /// Faults appearing until then are remedied.
        ends: NaiveDate,
        enrolled_on: NaiveDate,
    },
    /// A repair of the device in another region moved on a step; its owner
    /// (known here only) is told.
    RepairProgressedAbroad {
        customer_id: String,
        repair_order_id: String,
        step: RepairStep,
        walk_in: bool,
        region: String,
    },
}

impl Event {
    /// The day the fact takes effect, where it carries one.
    pub fn effective_on(&self) -> Option<NaiveDate> {
        match self {
            Self::DeviceRegistered { purchase_date, .. }
            | Self::PurchaseVerified { purchase_date, .. }
            | Self::AccessoryRegistered { purchase_date, .. } => Some(*purchase_date),
            Self::PlanOrdered { ordered_on, .. } => Some(*ordered_on),
            Self::ExtendedWarrantyPurchased { purchased_on, .. } => Some(*purchased_on),
            Self::ExtendedWarrantyCancelled { cancelled_on, .. } => Some(*cancelled_on),
            Self::WarrantyVoided { voided_on, .. } => Some(*voided_on),
            Self::CoverageDecided { decision, .. } => Some(decision.decided_for),
            Self::ClaimRecorded { claimed_on, .. } => Some(*claimed_on),
            Self::EnrolledInProgramme { enrolled_on, .. } => Some(*enrolled_on),
            Self::PlanPaymentFailed { .. }
            | Self::OwnershipTransferred { .. }
            | Self::RepairProgressedAbroad { .. } => None,
        }
    }
}

impl DomainEvent for Event {
    fn event_type(&self) -> &'static str {
        match self {
            Self::DeviceRegistered { .. } => "DeviceRegistered",
            Self::PurchaseVerified { .. } => "PurchaseVerified",
            Self::PlanOrdered { .. } => "PlanOrdered",
            Self::PlanPaymentFailed { .. } => "PlanPaymentFailed",
            Self::ExtendedWarrantyPurchased { .. } => "ExtendedWarrantyPurchased",
            Self::ExtendedWarrantyCancelled { .. } => "ExtendedWarrantyCancelled",
            Self::AccessoryRegistered { .. } => "AccessoryRegistered",
            Self::WarrantyVoided { .. } => "WarrantyVoided",
            Self::OwnershipTransferred { .. } => "OwnershipTransferred",
            Self::CoverageDecided { .. } => "CoverageDecided",
            Self::ClaimRecorded { .. } => "ClaimRecorded",
            Self::EnrolledInProgramme { .. } => "EnrolledInProgramme",
            Self::RepairProgressedAbroad { .. } => "RepairProgressedAbroad",
        }
    }
}

/// The device decider.
#[derive(Debug)]
pub struct Device;

fn require(state: &Option<DeviceState>) -> Result<&DeviceState, DomainError> {
    state
        .as_ref()
        .ok_or_else(|| DomainError::NotFound("device".into()))
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    aftersales_core::types::printable_text(field, value, max, true)
        .map_err(|e| DomainError::invalid(e.field, e.reason))
}

impl Decider for Device {
    type Command = Command;
    type Event = Event;
    type State = Option<DeviceState>;
    type Error = DomainError;

    fn initial_state() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Command) -> Result<Vec<Event>, DomainError> {
        match command {
            Command::Register {
                key,
                model,
                purchase_date,
                country,
                channel,
                customer_id,
                terms,
                proof,
                activation_date,
                today,
            } => {
                text("model", model, 100)?;
                text("customer_id", customer_id, 100)?;
                if purchase_date > today {
                    return Err(DomainError::invalid("purchase_date", "is in the future"));
                }
                if let Some(activated) = activation_date
                    && (activated < purchase_date || activated > today)
                {
                    return Err(DomainError::invalid(
                        "activation_date",
                        "must be between the purchase date and today",
                    ));
                }
                let activated_on = match terms.term_starts {
                    TermStart::Purchase => None,
                    TermStart::Activation { .. } => *activation_date,
                };
                let base_end = add_months(
                    term_start(terms, *purchase_date, activated_on),
                    terms.phone_months,
                );
                let Some(existing) = state else {
                    return Ok(vec![Event::DeviceRegistered {
                        key: key.clone(),
                        model: model.trim().to_owned(),
                        purchase_date: *purchase_date,
                        country: country.clone(),
                        channel: *channel,
                        customer_id: customer_id.trim().to_owned(),
                        terms: terms.clone(),
                        base_end,
                        proof: *proof,
                        activated_on,
                    }]);
                };
                let same = existing.model == model.trim()
                    && existing.purchase_date == *purchase_date
                    && existing.country == *country
                    && existing.channel == *channel
                    && existing.customer_id == customer_id.trim();
                match (existing.proof, proof) {
                    (PurchaseProof::CustomerDeclared, PurchaseProof::Verified) => {
                        Ok(vec![Event::PurchaseVerified {
                            model: model.trim().to_owned(),
                            purchase_date: *purchase_date,
                            country: country.clone(),
                            channel: *channel,
                            customer_id: customer_id.trim().to_owned(),
                            terms: terms.clone(),
                            base_end,
                            declared_by: existing.customer_id.clone(),
                            activated_on,
                        }])
                    }
                    _ if same => Ok(Vec::new()),
                    (PurchaseProof::Verified | PurchaseProof::CustomerDeclared, _) => {
                        Err(DomainError::AlreadyExists(format!(
                            "{} is registered with other details",
                            existing.key
                        )))
                    }
                }
            }
            Command::PurchasePlan {
                plan_id,
                payment_id,
                today,
            } => {
                let device = require(state)?;
                if device.voided.is_some() {
                    return Err(DomainError::Precondition("the warranty is voided".into()));
                }
                if let Some(plan) = &device.plan {
                    return Err(DomainError::Precondition(format!(
                        "plan {} is active already",
                        plan.plan_id
                    )));
                }
                if let Some(pending) = &device.pending_plan {
                    return if pending.plan_id == *plan_id && pending.payment_id == *payment_id {
                        Ok(Vec::new())
                    } else {
                        Err(DomainError::Precondition(format!(
                            "the payment for plan {} is pending",
                            pending.plan_id
                        )))
                    };
                }
                let Some(plan) = device.terms.plans.iter().find(|p| p.id == *plan_id) else {
                    return Err(DomainError::invalid(
                        "plan",
                        format!(
                            "{plan_id:?} is not offered under policy {} v{}",
                            device.terms.policy_id, device.terms.version
                        ),
                    ));
                };
                let offer = device.offer(plan);
                if *today > offer.buy_by {
                    return Err(DomainError::Precondition(format!(
                        "{} can be bought until {} while the warranty runs",
                        plan.id, offer.buy_by
                    )));
                }
                Ok(vec![Event::PlanOrdered {
                    customer_id: device.customer_id.clone(),
                    plan_id: plan.id.clone(),
                    payment_id: payment_id.clone(),
                    ordered_on: *today,
                    coverage_end: offer.coverage_end,
                    price_minor: plan.price_minor,
                    currency: plan.currency.clone(),
                }])
            }
            Command::SettlePlanPayment {
                payment_id,
                settlement,
            } => {
                let device = require(state)?;
                // Settled already (or another payment's news): nothing to do.
                let Some(pending) = device
                    .pending_plan
                    .as_ref()
                    .filter(|p| p.payment_id == *payment_id)
                else {
                    return Ok(Vec::new());
                };
                Ok(vec![match settlement {
                    Settlement::Paid => Event::ExtendedWarrantyPurchased {
                        customer_id: device.customer_id.clone(),
                        plan_id: pending.plan_id.clone(),
                        purchased_on: pending.ordered_on,
                        coverage_end: pending.coverage_end,
                        price_minor: pending.price_minor,
                        currency: pending.currency.clone(),
                    },
                    Settlement::Failed { reason } => Event::PlanPaymentFailed {
                        plan_id: pending.plan_id.clone(),
                        payment_id: payment_id.clone(),
                        reason: reason.chars().take(200).collect(),
                    },
                }])
            }
            Command::CancelPlan { today, refund_id } => {
                let device = require(state)?;
                let Some(plan) = &device.plan else {
                    return Err(DomainError::Precondition("no plan is active".into()));
                };
                let refund_policy = device
                    .terms
                    .plans
                    .iter()
                    .find(|p| p.id == plan.plan_id)
                    .map_or(Refund::None, |p| p.refund);
                let refund_minor = match refund_policy {
                    Refund::None => 0,
                    Refund::ProRata => pro_rata(plan, device.base_end, *today),
                };
                Ok(vec![Event::ExtendedWarrantyCancelled {
                    customer_id: device.customer_id.clone(),
                    plan_id: plan.plan_id.clone(),
                    cancelled_on: *today,
                    refund_minor,
                    currency: plan.currency.clone(),
                    refund_id: refund_id.clone().filter(|_| refund_minor > 0),
                }])
            }
            Command::RegisterAccessory {
                serial,
                kind,
                purchase_date,
                replaces,
                today,
            } => {
                let device = require(state)?;
                if serial.len() < 4
                    || serial.len() > 40
                    || !serial
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(DomainError::invalid(
                        "accessory_serial",
                        "must be 4 to 40 letters, digits or '-'",
                    ));
                }
                if purchase_date > today {
                    return Err(DomainError::invalid("purchase_date", "is in the future"));
                }
                let months = device
                    .terms
                    .accessory_months
                    .get(kind)
                    .copied()
                    .unwrap_or(0);
                let mut coverage_end = add_months(*purchase_date, months);
                if let Some(old) = replaces {
                    let faulty = device.accessories.get(old).ok_or_else(|| {
                        DomainError::invalid(
                            "replaces_serial",
                            format!("{old} is not an accessory of this phone"),
                        )
                    })?;
                    if faulty.kind != *kind || old == serial {
                        return Err(DomainError::invalid(
                            "replaces_serial",
                            format!("{old} is not a {} this unit can replace", kind.as_str()),
                        ));
                    }
                    if let Some(other) = faulty.replaced_by.as_ref().filter(|o| *o != serial) {
                        return Err(DomainError::Precondition(format!(
                            "{old} was replaced by {other} already"
                        )));
                    }
                    let minimum = add_days(*purchase_date, device.terms.replaced_part.minimum_days);
                    coverage_end = faulty.coverage_end.max(minimum);
                }
                match device.accessories.get(serial) {
                    Some(a)
                        if a.kind == *kind
                            && a.purchase_date == *purchase_date
                            && a.replaces == *replaces =>
                    {
                        Ok(Vec::new())
                    }
                    Some(_) => Err(DomainError::AlreadyExists(format!(
                        "accessory {serial} is registered with other details"
                    ))),
                    None => Ok(vec![Event::AccessoryRegistered {
                        serial: serial.clone(),
                        kind: *kind,
                        purchase_date: *purchase_date,
                        coverage_end,
                        replaces: replaces.clone(),
                    }]),
                }
            }
            Command::Void {
                reason,
                evidence,
                today,
            } => {
                let device = require(state)?;
                text("reason", reason, 500)?;
                for item in evidence {
                    text("evidence", item, 500)?;
                }
                if evidence.len() > 20 {
                    return Err(DomainError::invalid("evidence", "at most 20 items"));
                }
                if device.voided.is_some() {
                    return Err(DomainError::Precondition(
                        "the warranty is voided already".into(),
                    ));
                }
                Ok(vec![Event::WarrantyVoided {
                    customer_id: device.customer_id.clone(),
                    reason: reason.trim().to_owned(),
                    evidence: evidence.clone(),
                    voided_on: *today,
                }])
            }
            Command::TransferOwnership { to } => {
                let device = require(state)?;
                text("new_customer_id", to, 100)?;
                if device.customer_id == to.trim() {
                    return Ok(Vec::new());
                }
                Ok(vec![Event::OwnershipTransferred {
                    from: device.customer_id.clone(),
                    to: to.trim().to_owned(),
                }])
            }
            Command::RecordDecision {
                fault,
                decision,
                today,
            } => {
                let device = require(state)?;
                if device.decisions_on.day == Some(*today)
                    && device.decisions_on.count >= MAX_DECISIONS_PER_DAY
                {
                    return Err(DomainError::Exhausted(format!(
                        "{MAX_DECISIONS_PER_DAY} coverage decisions are recorded for this device \
                         today, its most; ask without recording, or again tomorrow"
                    )));
                }
                Ok(vec![Event::CoverageDecided {
                    fault: *fault,
                    decision: decision.clone(),
                    recorded_on: Some(*today),
                }])
            }
            Command::RecordClaim {
                repair_order_id,
                fault,
                fault_date,
                today,
                programmes,
            } => {
                let device = require(state)?;
                text("repair_order_id", repair_order_id, 100)?;
                if device.claims.contains(repair_order_id) {
                    return Ok(Vec::new());
                }
                if fault_date > today {
                    return Err(DomainError::invalid("fault_date", "is in the future"));
                }
                let decision = coverage::decide(device, *fault, *fault_date, None, programmes);
                if !decision.covered {
                    return Err(DomainError::Precondition(format!(
                        "not covered on {fault_date}: {}",
                        decision.reason.as_str()
                    )));
                }
                let remaining = device.coverage_end();
                let minimum = add_days(*today, device.terms.replaced_part.minimum_days);
                let under_legal_guarantee = decision.under_legal_guarantee;
                let extends = under_legal_guarantee
                    && device.terms.repair_extension.as_ref().is_some_and(|ext| {
                        *today >= ext.applies_from
                            && !(ext.once && device.legal_extension_months > 0)
                    });
                let legal_extension_months = device.legal_extension_months
                    + if extends {
                        device
                            .terms
                            .repair_extension
                            .as_ref()
                            .map_or(0, |e| e.months)
                    } else {
                        0
                    };
                let legal_months = device.terms.statutory.legal_guarantee_months;
                Ok(vec![Event::ClaimRecorded {
                    repair_order_id: repair_order_id.clone(),
                    fault: *fault,
                    claimed_on: *today,
                    fault_date: Some(*fault_date),
                    under_legal_guarantee,
                    part_covered_until: remaining.max(minimum),
                    legal_extension_months,
                    legal_guarantee_end: (legal_months > 0).then(|| {
                        add_months(device.purchase_date, legal_months + legal_extension_months)
                    }),
                    programme_id: decision.programme.map(|p| p.id),
                }])
            }
            Command::RecordRepairAbroad {
                repair_order_id,
                step,
                walk_in,
                region,
            } => {
                let device = require(state)?;
                text("repair_order_id", repair_order_id, 100)?;
                Ok(vec![Event::RepairProgressedAbroad {
                    customer_id: device.customer_id.clone(),
                    repair_order_id: repair_order_id.clone(),
                    step: *step,
                    walk_in: *walk_in,
                    region: region.clone(),
                }])
            }
            Command::Enrol { programmes, today } => {
                let device = require(state)?;
                Ok(programmes
                    .iter()
                    .filter(|p| p.affects(device) && !device.programmes.contains(&p.id))
                    .map(|p| Event::EnrolledInProgramme {
                        customer_id: device.customer_id.clone(),
                        model: device.model.clone(),
                        programme_id: p.id.clone(),
                        programme_version: p.version,
                        kind: p.kind,
                        faults: p.faults.clone(),
                        remedy: p.remedy,
                        ends: p.ends,
                        enrolled_on: *today,
                    })
                    .collect())
            }
        }
    }

    fn evolve(state: Self::State, event: &Event) -> Self::State {
        if let Event::DeviceRegistered {
            key,
            model,
            purchase_date,
            country,
            channel,
            customer_id,
            terms,
            base_end,
            proof,
            activated_on,
        } = event
        {
            return Some(DeviceState {
                key: key.clone(),
                model: model.clone(),
                purchase_date: *purchase_date,
                country: country.clone(),
                channel: *channel,
                customer_id: customer_id.clone(),
                terms: terms.clone(),
                base_end: *base_end,
                legal_extension_months: 0,
                plan: None,
                voided: None,
                accessories: BTreeMap::new(),
                claims: BTreeSet::new(),
                part_cover: BTreeMap::new(),
                proof: *proof,
                pending_plan: None,
                activated_on: *activated_on,
                past_plans: Vec::new(),
                decisions_on: DecisionsOn::default(),
                programmes: BTreeSet::new(),
            });
        }
        let mut device = state?;
        match event {
            Event::DeviceRegistered { .. } => {}
            Event::CoverageDecided { recorded_on, .. } => {
                if let Some(day) = recorded_on {
                    device.decisions_on = if device.decisions_on.day == Some(*day) {
                        DecisionsOn {
                            day: Some(*day),
                            count: device.decisions_on.count.saturating_add(1),
                        }
                    } else {
                        DecisionsOn {
                            day: Some(*day),
                            count: 1,
                        }
                    };
                }
            }
            Event::PurchaseVerified {
                model,
                purchase_date,
                country,
                channel,
                customer_id,
                terms,
                base_end,
                activated_on,
                ..
            } => {
                device.activated_on = *activated_on;
                device.model.clone_from(model);
                device.purchase_date = *purchase_date;
                device.country.clone_from(country);
                device.channel = *channel;
                device.customer_id.clone_from(customer_id);
                device.terms = terms.clone();
                device.base_end = *base_end;
                device.proof = PurchaseProof::Verified;
            }
            Event::ExtendedWarrantyPurchased {
                plan_id,
                purchased_on,
                coverage_end,
                price_minor,
                currency,
                ..
            } => {
                let payment_id = device
                    .pending_plan
                    .as_ref()
                    .filter(|p| p.plan_id == *plan_id)
                    .map(|p| p.payment_id.clone());
                device.plan = Some(ActivePlan {
                    plan_id: plan_id.clone(),
                    purchased_on: *purchased_on,
                    coverage_end: *coverage_end,
                    price_minor: *price_minor,
                    currency: currency.clone(),
                    payment_id,
                });
                device.pending_plan = None;
            }
            Event::PlanOrdered {
                plan_id,
                payment_id,
                ordered_on,
                coverage_end,
                price_minor,
                currency,
                ..
            } => {
                device.pending_plan = Some(PendingPlan {
                    plan_id: plan_id.clone(),
                    payment_id: payment_id.clone(),
                    ordered_on: *ordered_on,
                    coverage_end: *coverage_end,
                    price_minor: *price_minor,
                    currency: currency.clone(),
                });
            }
            Event::PlanPaymentFailed { .. } => device.pending_plan = None,
            Event::ExtendedWarrantyCancelled { cancelled_on, .. } => {
                if let Some(plan) = device.plan.take() {
                    device.past_plans.push(PastPlan {
                        plan_id: plan.plan_id,
                        coverage_end: plan.coverage_end,
                        cancelled_on: *cancelled_on,
                    });
                }
            }
            Event::AccessoryRegistered {
                serial,
                kind,
                purchase_date,
                coverage_end,
                replaces,
            } => {
                if let Some(faulty) = replaces
                    .as_ref()
                    .and_then(|r| device.accessories.get_mut(r))
                {
                    faulty.replaced_by = Some(serial.clone());
                }
                device.accessories.insert(
                    serial.clone(),
                    AccessoryState {
                        kind: *kind,
                        purchase_date: *purchase_date,
                        coverage_end: *coverage_end,
                        replaces: replaces.clone(),
                        replaced_by: None,
                    },
                );
            }
            Event::WarrantyVoided { reason, .. } => device.voided = Some(reason.clone()),
            Event::OwnershipTransferred { to, .. } => device.customer_id = to.clone(),
            Event::EnrolledInProgramme { programme_id, .. } => {
                device.programmes.insert(programme_id.clone());
            }
            Event::ClaimRecorded {
                repair_order_id,
                fault,
                part_covered_until,
                legal_extension_months,
                ..
            } => {
                device.claims.insert(repair_order_id.clone());
                let cover = device
                    .part_cover
                    .entry(*fault)
                    .or_insert(*part_covered_until);
                *cover = (*cover).max(*part_covered_until);
                device.legal_extension_months = *legal_extension_months;
            }
            Event::RepairProgressedAbroad { .. } => {}
        }
        Some(device)
    }
}

/// The unused share of a plan's price: its coverage runs from the end of the
/// maker's warranty to the plan's end.
fn pro_rata(plan: &ActivePlan, base_end: NaiveDate, today: NaiveDate) -> i64 {
    let total = (plan.coverage_end - base_end).num_days().max(1);
    let remaining = (plan.coverage_end - today.max(base_end))
        .num_days()
        .clamp(0, total);
    plan.price_minor.saturating_mul(remaining) / total
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::Decider as _;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::PolicyTable;
    use crate::domain::coverage::decide;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn register(country: &str, purchase: NaiveDate, today: NaiveDate) -> Command {
        let table = PolicyTable::builtin().unwrap();
        Command::Register {
            key: DeviceKey::imei("490154203237518").unwrap(),
            model: "Phone 12".into(),
            purchase_date: purchase,
            country: country.into(),
            channel: SalesChannel::RetailStore,
            customer_id: "c-1".into(),
            terms: table.in_force(country, purchase).unwrap().clone(),
            proof: PurchaseProof::Verified,
            activation_date: None,
            today,
        }
    }

    fn run(
        state: Option<DeviceState>,
        command: &Command,
    ) -> Result<Option<DeviceState>, DomainError> {
        let events = Device::decide(&state, command)?;
        Ok(events.iter().fold(state, Device::evolve))
    }

    #[test]
    fn registration_is_idempotent_and_refuses_other_details() {
        let d = date("2025-01-10");
        let state = run(None, &register("DE", d, d)).unwrap();
        assert!(
            Device::decide(&state, &register("DE", d, d))
                .unwrap()
                .is_empty()
        );
        let other = register("FR", d, d);
        assert!(matches!(
            Device::decide(&state, &other),
            Err(DomainError::AlreadyExists(_))
        ));
        let future = register("DE", date("2025-01-11"), d);
        assert_eq!(
            Device::decide(&None, &future).unwrap_err().field(),
            Some("purchase_date")
        );
    }

    #[test]
    fn a_repair_step_abroad_names_the_owner_known_here_and_changes_nothing_else() {
        let d = date("2025-01-10");
        let step = Command::RecordRepairAbroad {
            repair_order_id: "r-1".into(),
            step: RepairStep::Started,
            walk_in: true,
            region: "ap-south".into(),
        };
        assert!(matches!(
            Device::decide(&None, &step),
            Err(DomainError::NotFound(_))
        ));
        let state = run(None, &register("DE", d, d)).unwrap();
        let events = Device::decide(&state, &step).unwrap();
        assert_eq!(
            events,
            [Event::RepairProgressedAbroad {
                customer_id: "c-1".into(),
                repair_order_id: "r-1".into(),
                step: RepairStep::Started,
                walk_in: true,
                region: "ap-south".into(),
            }]
        );
        assert_eq!(events.iter().fold(state.clone(), Device::evolve), state);
    }

    #[test]
    fn a_device_has_at_most_fifty_decisions_recorded_a_day() {
        let d = date("2025-01-10");
        let mut state = run(None, &register("DE", d, d)).unwrap();
        let decision = decide(
            state.as_ref().unwrap(),
            FaultCategory::Battery,
            d,
            None,
            &[],
        );
        let record = |today: NaiveDate| Command::RecordDecision {
            fault: FaultCategory::Battery,
            decision: decision.clone(),
            today,
        };
        for _ in 0..MAX_DECISIONS_PER_DAY {
            state = run(state, &record(d)).unwrap();
        }
        assert!(
            matches!(
                Device::decide(&state, &record(d)),
                Err(DomainError::Exhausted(_))
            ),
            "the 51st on one day is refused"
        );
        let next_day = date("2025-01-11");
        state = run(state, &record(next_day)).unwrap();
        assert_eq!(
            state.unwrap().decisions_on,
            DecisionsOn {
                day: Some(next_day),
                count: 1
            },
            "the count starts again the next day"
        );
    }

    fn declared(customer: &str, purchase: NaiveDate, today: NaiveDate) -> Command {
        let Command::Register {
            key,
            model,
            purchase_date,
            country,
            channel,
            terms,
            ..
        } = register("DE", purchase, today)
        else {
            unreachable!()
        };
        Command::Register {
            key,
            model,
            purchase_date,
            country,
            channel,
            customer_id: customer.into(),
            terms,
            proof: PurchaseProof::CustomerDeclared,
            activation_date: None,
            today,
        }
    }

    #[test]
    fn a_customer_declared_registration_never_locks_out_a_verified_one() {
        let today = date("2026-12-01");
        // Someone registers the phone first, as theirs, bought in 2020.
        let squatted = run(None, &declared("mallory", date("2020-01-10"), today)).unwrap();
        let device = squatted.as_ref().unwrap();
        assert_eq!(device.proof, PurchaseProof::CustomerDeclared);
        // The real buyer's own declaration cannot override another's ...
        assert!(matches!(
            Device::decide(&squatted, &declared("anna", date("2026-11-20"), today)),
            Err(DomainError::AlreadyExists(_))
        ));
        // ... but the sales record, or staff with the receipt, can.
        let Command::Register {
            key,
            model,
            country,
            channel,
            terms,
            ..
        } = register("DE", date("2026-11-20"), today)
        else {
            unreachable!()
        };
        let verified = Command::Register {
            key,
            model,
            purchase_date: date("2026-11-20"),
            country,
            channel,
            customer_id: "anna".into(),
            terms,
            proof: PurchaseProof::Verified,
            activation_date: None,
            today,
        };
        let events = Device::decide(&squatted, &verified).unwrap();
        assert!(
            matches!(&events[..], [Event::PurchaseVerified { declared_by, .. }] if declared_by == "mallory")
        );
        let fixed = events.iter().fold(squatted, Device::evolve).unwrap();
        assert_eq!(fixed.customer_id, "anna");
        assert_eq!(fixed.purchase_date, date("2026-11-20"));
        assert_eq!(fixed.proof, PurchaseProof::Verified);
        assert_eq!(
            fixed.base_end,
            add_months(date("2026-11-20"), fixed.terms.phone_months)
        );
        // Verified stays: neither a declaration nor another record overrides it.
        let state = Some(fixed);
        assert!(matches!(
            Device::decide(&state, &declared("mallory", date("2020-01-10"), today)),
            Err(DomainError::AlreadyExists(_))
        ));
        assert!(
            Device::decide(&state, &verified).unwrap().is_empty(),
            "idempotent"
        );
    }

    #[test]
    fn plans_only_inside_their_window_and_never_on_a_voided_warranty() {
        let d = date("2025-01-10");
        let state = run(None, &register("DE", d, d)).unwrap();
        let late = Command::PurchasePlan {
            plan_id: "care-12".into(),
            payment_id: "pay-1".into(),
            today: date("2025-03-12"),
        };
        assert!(matches!(
            Device::decide(&state, &late),
            Err(DomainError::Precondition(_))
        ));
        let unknown = Command::PurchasePlan {
            plan_id: "gold".into(),
            payment_id: "pay-1".into(),
            today: d,
        };
        assert_eq!(
            Device::decide(&state, &unknown).unwrap_err().field(),
            Some("plan")
        );
        let voided = run(
            state.clone(),
            &Command::Void {
                reason: "tampering".into(),
                evidence: vec![],
                today: d,
            },
        )
        .unwrap();
        let buy = Command::PurchasePlan {
            plan_id: "care-12".into(),
            payment_id: "pay-1".into(),
            today: d,
        };
        assert!(matches!(
            Device::decide(&voided, &buy),
            Err(DomainError::Precondition(_))
        ));
        let bought = paid(&state, "care-12", d);
        assert!(matches!(
            Device::decide(&bought, &buy),
            Err(DomainError::Precondition(_))
        ));
    }

    #[test]
    fn the_plans_offered_are_exactly_those_a_purchase_would_accept() {
        let d = date("2025-01-10");
        let state = run(None, &register("DE", d, d)).unwrap();
        let device = state.clone().unwrap();
        for today in ["2025-01-10", "2025-03-11", "2025-03-12", "2027-01-11"] {
            let today = date(today);
            let offered: Vec<&str> = device
                .plan_offers(today)
                .iter()
                .map(|o| o.plan.id.as_str())
                .collect();
            for plan in &device.terms.plans {
                let buy = Command::PurchasePlan {
                    plan_id: plan.id.clone(),
                    payment_id: "pay-1".into(),
                    today,
                };
                assert_eq!(
                    offered.contains(&plan.id.as_str()),
                    Device::decide(&state, &buy).is_ok(),
                    "{} on {today}",
                    plan.id
                );
            }
        }
        let offers = device.plan_offers(d);
        assert_eq!(offers.len(), 2);
        assert_eq!(offers[0].buy_by, date("2025-03-11"));
        assert_eq!(offers[0].coverage_end, date("2028-01-10"));
        assert!(
            paid(&state, "care-12", d)
                .unwrap()
                .plan_offers(d)
                .is_empty()
        );
    }

    /// `plan` ordered on `today` and its payment settled.
    fn paid(state: &Option<DeviceState>, plan: &str, today: NaiveDate) -> Option<DeviceState> {
        let ordered = run(
            state.clone(),
            &Command::PurchasePlan {
                plan_id: plan.into(),
                payment_id: format!("pay-{plan}"),
                today,
            },
        )
        .unwrap();
        run(
            ordered,
            &Command::SettlePlanPayment {
                payment_id: format!("pay-{plan}"),
                settlement: Settlement::Paid,
            },
        )
        .unwrap()
    }

    #[test]
    fn a_plan_is_active_only_once_its_payment_settles() {
        let d = date("2025-01-10");
        let state = run(None, &register("DE", d, d)).unwrap();
        let order = |payment: &str| Command::PurchasePlan {
            plan_id: "care-12".into(),
            payment_id: payment.into(),
            today: d,
        };
        let ordered = run(state, &order("pay-1")).unwrap();
        let device = ordered.as_ref().unwrap();
        assert!(device.plan.is_none(), "not before it is paid");
        assert_eq!(
            device.coverage_end(),
            device.legal_guarantee_end().unwrap().max(device.base_end)
        );
        assert!(
            Device::decide(&ordered, &order("pay-1"))
                .unwrap()
                .is_empty(),
            "a retry"
        );
        assert!(matches!(
            Device::decide(&ordered, &order("pay-2")),
            Err(DomainError::Precondition(_))
        ));
        let settle = |payment: &str, settlement| Command::SettlePlanPayment {
            payment_id: payment.into(),
            settlement,
        };
        // Another payment's news changes nothing.
        assert!(
            Device::decide(&ordered, &settle("pay-9", Settlement::Paid))
                .unwrap()
                .is_empty()
        );
        let failed = run(
            ordered.clone(),
            &settle(
                "pay-1",
                Settlement::Failed {
                    reason: "the card was declined".into(),
                },
            ),
        )
        .unwrap();
        assert!(failed.as_ref().unwrap().plan.is_none());
        assert!(
            failed.as_ref().unwrap().pending_plan.is_none(),
            "may order again"
        );
        let active = run(ordered, &settle("pay-1", Settlement::Paid)).unwrap();
        let active = active.as_ref().unwrap();
        assert_eq!(active.plan.as_ref().unwrap().plan_id, "care-12");
        assert!(active.coverage_end() > active.base_end);
    }

    #[test]
    fn cancelling_refunds_the_unused_share() {
        let d = date("2025-01-10");
        let state = run(None, &register("DE", d, d)).unwrap();
        let state = paid(&state, "care-12", d);
        let plan = state.as_ref().unwrap().plan.as_ref().unwrap();
        assert!(
            plan.payment_id.is_some(),
            "bought with its payment: {plan:?}"
        );
        // Before the plan's period starts: all of it back, through the provider.
        let events = Device::decide(
            &state,
            &Command::CancelPlan {
                today: date("2026-01-01"),
                refund_id: Some("re_1".into()),
            },
        )
        .unwrap();
        assert!(matches!(
            &events[0],
            Event::ExtendedWarrantyCancelled {
                refund_minor: 7900,
                refund_id: Some(id),
                ..
            } if id == "re_1"
        ));
        // Halfway through its year: about half.
        let events = Device::decide(
            &state,
            &Command::CancelPlan {
                today: date("2027-07-11"),
                refund_id: None,
            },
        )
        .unwrap();
        let Event::ExtendedWarrantyCancelled { refund_minor, .. } = events[0] else {
            panic!()
        };
        assert!((3900..=4000).contains(&refund_minor), "{refund_minor}");
        // China's plans are not refunded.
        let cn = run(None, &register("CN", d, d)).unwrap();
        let cn = paid(&cn, "care-12", d);
        let events = Device::decide(
            &cn,
            &Command::CancelPlan {
                today: d,
                refund_id: Some("re_2".into()),
            },
        )
        .unwrap();
        assert!(matches!(
            events[0],
            Event::ExtendedWarrantyCancelled {
                refund_minor: 0,
                refund_id: None,
                ..
            }
        ));
    }

    #[test]
    fn commands_on_an_unknown_device_are_not_found() {
        let d = date("2025-01-10");
        for command in [
            Command::CancelPlan {
                today: d,
                refund_id: None,
            },
            Command::TransferOwnership { to: "c-2".into() },
            Command::Void {
                reason: "x".into(),
                evidence: vec![],
                today: d,
            },
        ] {
            assert!(matches!(
                Device::decide(&None, &command),
                Err(DomainError::NotFound(_))
            ));
        }
    }

    #[test]
    fn claims_are_recorded_once_and_only_when_covered() {
        let d = date("2025-01-10");
        let state = run(None, &register("US", d, d)).unwrap();
        let claim = |on: &str| Command::RecordClaim {
            repair_order_id: "r-1".into(),
            fault: FaultCategory::Battery,
            fault_date: date(on),
            today: date(on),
            programmes: Vec::new(),
        };
        let claimed = run(state.clone(), &claim("2025-06-01")).unwrap();
        assert!(
            Device::decide(&claimed, &claim("2025-06-01"))
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            Device::decide(&state, &claim("2026-06-01")),
            Err(DomainError::Precondition(_))
        ));
    }

    fn country() -> impl Strategy<Value = &'static str> {
        prop::sample::select(crate::domain::policy::REQUIRED_COUNTRIES.to_vec())
    }

    fn day(offset: i64) -> NaiveDate {
        date("2024-01-01") + chrono::Duration::days(offset)
    }

    proptest! {
        #[test]
        fn coverage_never_ends_before_purchase(country in country(), bought in 0i64..3000, plan in any::<bool>()) {
            let purchase = day(bought);
            let mut state = run(None, &register(country, purchase, purchase)).unwrap();
            if plan {
                state = paid(&state, "care-24", purchase);
            }
            let device = state.unwrap();
            prop_assert!(device.base_end > purchase);
            prop_assert!(device.coverage_end() >= device.base_end);
            prop_assert!(device.plan.iter().all(|p| p.coverage_end > device.base_end));
        }

        /// The device directory folds a device's history without its decisions.
        #[test]
        fn a_recorded_decision_changes_only_the_days_count(country in country(), bought in 0i64..3000, asked in 0i64..2000, fault in 0usize..13, plan in any::<bool>()) {
            let purchase = day(bought);
            let mut state = run(None, &register(country, purchase, purchase)).unwrap();
            if plan {
                state = paid(&state, "care-24", purchase);
            }
            let before = state.clone().unwrap();
            let (fault, today) = (FaultCategory::ALL[fault], purchase + chrono::Duration::days(asked));
            let decision = decide(&before, fault, today, None, &[]);
            let after = run(state, &Command::RecordDecision { fault, decision, today }).unwrap().unwrap();
            prop_assert_ne!(after.decisions_on, before.decisions_on);
            prop_assert_eq!(DeviceState { decisions_on: before.decisions_on, ..after }, before);
        }

        #[test]
        fn voided_means_never_covered(country in country(), bought in 0i64..3000, asked in -100i64..2000, fault in 0usize..13) {
            let purchase = day(bought);
            let state = run(None, &register(country, purchase, purchase)).unwrap();
            let state = run(state, &Command::Void { reason: "tampering".into(), evidence: vec![], today: purchase }).unwrap();
            let decision = decide(state.as_ref().unwrap(), FaultCategory::ALL[fault], purchase + chrono::Duration::days(asked), None, &[]);
            prop_assert!(!decision.covered);
            prop_assert_eq!(decision.remedy, Remedy::None);
        }

        #[test]
        fn excluded_faults_are_never_covered(country in country(), bought in 0i64..3000, asked in 0i64..2000) {
            let purchase = day(bought);
            let state = run(None, &register(country, purchase, purchase)).unwrap();
            for fault in FaultCategory::ALL.into_iter().filter(|f| f.is_excluded()) {
                prop_assert!(!decide(state.as_ref().unwrap(), fault, purchase + chrono::Duration::days(asked), None, &[]).covered);
            }
        }

        #[test]
        fn extending_never_shortens(country in country(), bought in 0i64..3000, claim_after in 0i64..700, legal in any::<bool>(), plan in any::<bool>()) {
            let purchase = day(bought);
            let mut state = run(None, &register(country, purchase, purchase)).unwrap();
            let before = state.as_ref().unwrap().coverage_end();
            if plan {
                state = paid(&state, "care-12", purchase);
                prop_assert!(state.as_ref().unwrap().coverage_end() >= before);
            }
            let before = state.as_ref().unwrap().coverage_end();
            let claim = Command::RecordClaim {
                repair_order_id: "r-1".into(),
                fault: FaultCategory::Display,
                fault_date: purchase + chrono::Duration::days(claim_after / 2 + i64::from(legal)),
                today: purchase + chrono::Duration::days(claim_after),
                programmes: Vec::new(),
            };
            if let Ok(after) = run(state, &claim) {
                prop_assert!(after.as_ref().unwrap().coverage_end() >= before);
            }
        }

        #[test]
        fn every_date_gets_a_decision_that_explains_itself(country in country(), bought in 0i64..3000, asked in -400i64..4000, fault in 0usize..13) {
            let purchase = day(bought);
            let state = run(None, &register(country, purchase, purchase)).unwrap();
            let decision = decide(state.as_ref().unwrap(), FaultCategory::ALL[fault], purchase + chrono::Duration::days(asked), None, &[]);
            prop_assert_eq!(decision.covered, decision.remedy != Remedy::None);
            prop_assert!(!decision.explanation.is_empty());
        }
    }
}
