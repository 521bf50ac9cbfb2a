//! Every kind of message the service sends. A kind names its template, the topic
//! a customer can opt out of, whether it interrupts quiet hours (urgent: the
//! customer must act, or something went wrong) and whether the law requires it
//! whatever the opt-outs (transactional).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    RepairUpdates,
    Shipping,
    Warranty,
    Reminders,
    Offers,
    /// Signing in: always sent, whatever the preferences.
    Account,
    /// The customer's support cases.
    Support,
}

impl Topic {
    pub const ALL: [Self; 7] = [
        Self::RepairUpdates,
        Self::Shipping,
        Self::Warranty,
        Self::Reminders,
        Self::Offers,
        Self::Account,
        Self::Support,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RepairUpdates => "repair_updates",
            Self::Shipping => "shipping",
            Self::Warranty => "warranty",
            Self::Reminders => "reminders",
            Self::Offers => "offers",
            Self::Account => "account",
            Self::Support => "support",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    RepairOpened,
    DeviceReceived,
    DiagnosedCovered,
    QuoteIssued,
    /// A part the repair needs is not in stock at the center yet.
    WaitingForParts,
    /// The last part waited for is in: the repair can go on.
    PartsArrived,
    RepairStarted,
    QcPassed,
    ReadyForPickup,
    ShippedBack,
    Delivered,
    RepairCancelled,
    LabelReady,
    ShipmentException,
    ShipmentStalled,
    DeviceRegistered,
    WarrantyExtended,
    WarrantyVoided,
    /// The device is in a recall or service programme: told once, whatever the
    /// opt-outs (a safety notice is owed).
    ProgrammeNotice,
    ReminderWarrantyExpiring,
    ReminderQuoteWaiting,
    ReminderPickupWaiting,
    /// The code that signs a customer in; sent at once, never kept.
    SignInCode,
    /// An accessory order's payment went through: the order confirmation.
    AccessoryOrderPaid,
    AccessoryOrderPaymentFailed,
    AccessoryOrderShipped,
    AccessoryOrderDelivered,
    /// Sent back within the withdrawal period and refunded.
    AccessoryOrderRefunded,
    /// A faulty accessory is covered: its replacement is on us.
    AccessoryReplacementFree,
    /// A faulty accessory is not covered: its replacement is priced.
    AccessoryReplacementQuoted,
    /// The replacement left the depot, with the faulty unit's way back.
    AccessoryReplacementShipped,
    /// The faulty unit arrived back at the depot.
    FaultyAccessoryReceived,
    /// The customer's request reached the support desk.
    SupportCaseOpened,
    /// The platform opened a case for the customer: their repair went wrong.
    SupportCaseOpenedForYou,
    /// An agent answered (the answer is read in the case).
    SupportCaseReplied,
    /// The case went to experts.
    SupportCaseEscalated,
    SupportCaseResolved,
    /// How did we do? A survey's signed link, once per case.
    SupportSurveyCase,
    /// How did the repair go? Once per repair, when the phone is back.
    SupportSurveyRepair,
}

/// What a kind is, for the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub topic: Topic,
    pub urgent: bool,
    pub transactional: bool,
    /// The variables its templates may use; every one is given.
    pub variables: &'static [&'static str],
}

impl Kind {
    pub const ALL: [Self; 39] = [
        Self::RepairOpened,
        Self::DeviceReceived,
        Self::DiagnosedCovered,
        Self::QuoteIssued,
        Self::WaitingForParts,
        Self::PartsArrived,
        Self::RepairStarted,
        Self::QcPassed,
        Self::ReadyForPickup,
        Self::ShippedBack,
        Self::Delivered,
        Self::RepairCancelled,
        Self::LabelReady,
        Self::ShipmentException,
        Self::ShipmentStalled,
        Self::DeviceRegistered,
        Self::WarrantyExtended,
        Self::WarrantyVoided,
        Self::ProgrammeNotice,
        Self::ReminderWarrantyExpiring,
        Self::ReminderQuoteWaiting,
        Self::ReminderPickupWaiting,
        Self::SignInCode,
        Self::AccessoryOrderPaid,
        Self::AccessoryOrderPaymentFailed,
        Self::AccessoryOrderShipped,
        Self::AccessoryOrderDelivered,
        Self::AccessoryOrderRefunded,
        Self::AccessoryReplacementFree,
        Self::AccessoryReplacementQuoted,
        Self::AccessoryReplacementShipped,
        Self::FaultyAccessoryReceived,
        Self::SupportCaseOpened,
        Self::SupportCaseOpenedForYou,
        Self::SupportCaseReplied,
        Self::SupportCaseEscalated,
        Self::SupportCaseResolved,
        Self::SupportSurveyCase,
        Self::SupportSurveyRepair,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RepairOpened => "repair_opened",
            Self::DeviceReceived => "device_received",
            Self::DiagnosedCovered => "diagnosed_covered",
            Self::QuoteIssued => "quote_issued",
            Self::WaitingForParts => "waiting_for_parts",
            Self::PartsArrived => "parts_arrived",
            Self::RepairStarted => "repair_started",
            Self::QcPassed => "qc_passed",
            Self::ReadyForPickup => "ready_for_pickup",
            Self::ShippedBack => "shipped_back",
            Self::Delivered => "delivered",
            Self::RepairCancelled => "repair_cancelled",
            Self::LabelReady => "label_ready",
            Self::ShipmentException => "shipment_exception",
            Self::ShipmentStalled => "shipment_stalled",
            Self::DeviceRegistered => "device_registered",
            Self::WarrantyExtended => "warranty_extended",
            Self::WarrantyVoided => "warranty_voided",
            Self::ProgrammeNotice => "programme_notice",
            Self::ReminderWarrantyExpiring => "reminder_warranty_expiring",
            Self::ReminderQuoteWaiting => "reminder_quote_waiting",
            Self::ReminderPickupWaiting => "reminder_pickup_waiting",
            Self::SignInCode => "sign_in_code",
            Self::AccessoryOrderPaid => "accessory_order_paid",
            Self::AccessoryOrderPaymentFailed => "accessory_order_payment_failed",
            Self::AccessoryOrderShipped => "accessory_order_shipped",
            Self::AccessoryOrderDelivered => "accessory_order_delivered",
            Self::AccessoryOrderRefunded => "accessory_order_refunded",
            Self::AccessoryReplacementFree => "accessory_replacement_free",
            Self::AccessoryReplacementQuoted => "accessory_replacement_quoted",
            Self::AccessoryReplacementShipped => "accessory_replacement_shipped",
            Self::FaultyAccessoryReceived => "faulty_accessory_received",
            Self::SupportCaseOpened => "support_case_opened",
            Self::SupportCaseOpenedForYou => "support_case_opened_for_you",
            Self::SupportCaseReplied => "support_case_replied",
            Self::SupportCaseEscalated => "support_case_escalated",
            Self::SupportCaseResolved => "support_case_resolved",
            Self::SupportSurveyCase => "support_survey_case",
            Self::SupportSurveyRepair => "support_survey_repair",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }

    pub fn spec(self) -> Spec {
        use Topic::{Account, Offers, Reminders, RepairUpdates, Shipping, Support, Warranty};
        let spec = |topic, urgent, transactional, variables| Spec {
            topic,
            urgent,
            transactional,
            variables,
        };
        match self {
            Self::RepairOpened => spec(
                RepairUpdates,
                false,
                false,
                &["order_id", "device", "channel"],
            ),
            Self::DeviceReceived => spec(RepairUpdates, false, false, &["order_id"]),
            Self::DiagnosedCovered => spec(RepairUpdates, false, false, &["order_id", "fault"]),
            Self::QuoteIssued => spec(
                RepairUpdates,
                true,
                true,
                &["order_id", "total", "valid_until"],
            ),
            Self::WaitingForParts => {
                spec(RepairUpdates, false, false, &["order_id", "expected_on"])
            }
            Self::PartsArrived => spec(RepairUpdates, false, false, &["order_id"]),
            Self::RepairStarted => spec(RepairUpdates, false, false, &["order_id"]),
            Self::QcPassed => spec(RepairUpdates, false, false, &["order_id"]),
            Self::ReadyForPickup => spec(RepairUpdates, false, true, &["order_id"]),
            Self::ShippedBack => spec(
                Shipping,
                false,
                false,
                &["order_id", "carrier", "tracking_number"],
            ),
            Self::Delivered => spec(Shipping, false, false, &["order_id"]),
            Self::RepairCancelled => spec(RepairUpdates, false, true, &["order_id", "reason"]),
            Self::LabelReady => spec(
                Shipping,
                false,
                true,
                &["order_id", "carrier", "tracking_number"],
            ),
            Self::ShipmentException => spec(
                Shipping,
                true,
                true,
                &["order_id", "tracking_number", "description"],
            ),
            Self::ShipmentStalled => spec(Shipping, false, false, &["order_id", "tracking_number"]),
            Self::DeviceRegistered => spec(Warranty, false, false, &["model", "warranty_end"]),
            Self::WarrantyExtended => spec(Warranty, false, true, &["plan", "coverage_end"]),
            Self::WarrantyVoided => spec(Warranty, false, true, &["reason"]),
            Self::ProgrammeNotice => spec(
                Warranty,
                false,
                true,
                &["model", "device", "programme", "kind", "faults", "until"],
            ),
            Self::ReminderWarrantyExpiring => {
                spec(Offers, false, false, &["model", "warranty_end"])
            }
            Self::ReminderQuoteWaiting => spec(Reminders, false, false, &["order_id", "total"]),
            Self::ReminderPickupWaiting => spec(Reminders, false, false, &["order_id"]),
            Self::SignInCode => spec(Account, true, true, &["code", "minutes"]),
            // A distance sale is confirmed, and its refund told, on a durable
            // medium whatever the opt-outs (Directive 2011/83/EU art. 8(7)).
            Self::AccessoryOrderPaid => spec(Shipping, false, true, &["order_id", "total"]),
            Self::AccessoryOrderPaymentFailed => {
                spec(Shipping, true, true, &["order_id", "reason"])
            }
            Self::AccessoryOrderShipped => spec(Shipping, false, false, &["order_id"]),
            Self::AccessoryOrderDelivered => spec(Shipping, false, false, &["order_id"]),
            Self::AccessoryOrderRefunded => spec(Shipping, false, true, &["order_id", "total"]),
            // A remedy under the guarantee is told whatever the opt-outs, and
            // a price to pay or a parcel to send back asks the customer to act.
            Self::AccessoryReplacementFree => spec(Warranty, false, true, &["order_id"]),
            Self::AccessoryReplacementQuoted => spec(Warranty, true, true, &["order_id", "total"]),
            Self::AccessoryReplacementShipped => spec(
                Shipping,
                true,
                true,
                &["order_id", "carrier", "tracking_number"],
            ),
            Self::FaultyAccessoryReceived => spec(Shipping, false, false, &["order_id"]),
            // The acknowledgement may be turned off; what answers the
            // customer's own request, or tells them of trouble, may not.
            Self::SupportCaseOpened => spec(Support, false, false, &["case"]),
            Self::SupportCaseOpenedForYou => spec(Support, false, true, &["case", "order_id"]),
            Self::SupportCaseReplied => spec(Support, false, true, &["case"]),
            Self::SupportCaseEscalated => spec(Support, false, true, &["case"]),
            Self::SupportCaseResolved => spec(Support, false, true, &["case"]),
            // Asking is optional: a customer who turned support messages off
            // is not asked either.
            Self::SupportSurveyCase => spec(Support, false, false, &["case", "link"]),
            Self::SupportSurveyRepair => spec(Support, false, false, &["order_id", "link"]),
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        for topic in Topic::ALL {
            assert_eq!(Topic::parse(topic.as_str()), Some(topic));
        }
    }

    #[test]
    fn what_needs_action_or_went_wrong_is_urgent_and_required() {
        for kind in [Kind::QuoteIssued, Kind::ShipmentException] {
            assert!(kind.spec().urgent && kind.spec().transactional, "{kind}");
        }
        assert!(
            !Kind::ReminderWarrantyExpiring.spec().transactional,
            "an offer is never forced"
        );
    }
}
