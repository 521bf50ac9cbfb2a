//! Whether a fault is covered on a date, and why: a pure function of the device's
//! recorded terms and history.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::device::DeviceState;
use super::{FaultCategory, add_days};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remedy {
    None,
    Repair,
    Exchange,
    Refund,
}

/// The reason of a decision, in the order the rules are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Voided,
    ExcludedFault,
    BeforePurchase,
    WithinReturnWindow,
    WithinExchangeWindow,
    WithinBaseWarranty,
    WithinLegalGuarantee,
    WithinReplacedPartWarranty,
    WithinExtendedWarranty,
    Expired,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Voided => "voided",
            Self::ExcludedFault => "excluded_fault",
            Self::BeforePurchase => "before_purchase",
            Self::WithinReturnWindow => "within_return_window",
            Self::WithinExchangeWindow => "within_exchange_window",
            Self::WithinBaseWarranty => "within_base_warranty",
            Self::WithinLegalGuarantee => "within_legal_guarantee",
            Self::WithinReplacedPartWarranty => "within_replaced_part_warranty",
            Self::WithinExtendedWarranty => "within_extended_warranty",
            Self::Expired => "expired",
        }
    }
}

/// A coverage decision with everything needed to explain and reproduce it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub covered: bool,
    pub reason: Reason,
    pub explanation: String,
    pub policy_id: String,
    pub policy_version: u32,
    pub base_end: NaiveDate,
    pub legal_end: Option<NaiveDate>,
    pub extended_end: Option<NaiveDate>,
    pub remedy: Remedy,
    pub decided_for: NaiveDate,
}

/// The refusals every decision starts with: a voided warranty, a fault the user
/// caused, a date before the purchase.
fn refused(
    device: &DeviceState,
    fault: FaultCategory,
    on: NaiveDate,
    bought: NaiveDate,
) -> Option<(Reason, Remedy, String)> {
    if let Some(reason) = &device.voided {
        Some((
            Reason::Voided,
            Remedy::None,
            format!("the warranty was voided: {reason}"),
        ))
    } else if fault.is_excluded() {
        Some((
            Reason::ExcludedFault,
            Remedy::None,
            "accidental damage, liquid damage and unauthorized repair are never covered".into(),
        ))
    } else if on < bought {
        Some((
            Reason::BeforePurchase,
            Remedy::None,
            format!("bought on {bought}"),
        ))
    } else {
        None
    }
}

/// Decides whether `fault` on the phone is covered on `on`.
pub fn decide(device: &DeviceState, fault: FaultCategory, on: NaiveDate) -> Decision {
    let terms = &device.terms;
    let statutory = &terms.statutory;
    let purchase = device.purchase_date;
    let legal_end = device.legal_guarantee_end();
    let extended_end = device.plan.as_ref().map(|p| p.coverage_end);
    let (reason, remedy, explanation) = if let Some(refusal) = refused(device, fault, on, purchase)
    {
        refusal
    } else if statutory.return_days > 0 && on <= add_days(purchase, statutory.return_days) {
        (
            Reason::WithinReturnWindow,
            Remedy::Refund,
            format!("within the {}-day return window", statutory.return_days),
        )
    } else if statutory.exchange_days > 0 && on <= add_days(purchase, statutory.exchange_days) {
        (
            Reason::WithinExchangeWindow,
            Remedy::Exchange,
            format!("within the {}-day exchange window", statutory.exchange_days),
        )
    } else if on <= device.base_end {
        (
            Reason::WithinBaseWarranty,
            Remedy::Repair,
            format!(
                "within the {}-month warranty ending {}",
                terms.phone_months, device.base_end
            ),
        )
    } else if let Some(end) = legal_end.filter(|end| on <= *end) {
        let presumed = super::add_months(purchase, statutory.presumption_months);
        let burden = if on <= presumed {
            "the defect is presumed present at delivery"
        } else {
            "the customer shows the defect was present at delivery"
        };
        (
            Reason::WithinLegalGuarantee,
            Remedy::Repair,
            format!("within the legal guarantee ending {end}; {burden}"),
        )
    } else if let Some(end) = device.part_cover.get(&fault).filter(|end| on <= **end) {
        (
            Reason::WithinReplacedPartWarranty,
            Remedy::Repair,
            format!("the part replaced for this fault is covered until {end}"),
        )
    } else if let Some(end) = extended_end.filter(|end| on <= *end) {
        (
            Reason::WithinExtendedWarranty,
            Remedy::Repair,
            format!("within the extended warranty ending {end}"),
        )
    } else {
        (
            Reason::Expired,
            Remedy::None,
            "no warranty, guarantee or plan covers this date".into(),
        )
    };
    Decision {
        covered: remedy != Remedy::None,
        reason,
        explanation,
        policy_id: terms.policy_id.clone(),
        policy_version: terms.version,
        base_end: device.base_end,
        legal_end,
        extended_end,
        remedy,
        decided_for: on,
    }
}

/// Decides whether a fault of a registered accessory is covered on `on`.
pub fn decide_accessory(
    device: &DeviceState,
    serial: &str,
    fault: FaultCategory,
    on: NaiveDate,
) -> Option<Decision> {
    let accessory = device.accessories.get(serial)?;
    let (reason, remedy, explanation) =
        if let Some(refusal) = refused(device, fault, on, accessory.purchase_date) {
            refusal
        } else if on <= accessory.coverage_end {
            (
                Reason::WithinBaseWarranty,
                Remedy::Exchange,
                format!(
                    "within the accessory warranty ending {}",
                    accessory.coverage_end
                ),
            )
        } else {
            (
                Reason::Expired,
                Remedy::None,
                format!("the accessory warranty ended {}", accessory.coverage_end),
            )
        };
    Some(Decision {
        covered: remedy != Remedy::None,
        reason,
        explanation,
        policy_id: device.terms.policy_id.clone(),
        policy_version: device.terms.version,
        base_end: accessory.coverage_end,
        legal_end: None,
        extended_end: None,
        remedy,
        decided_for: on,
    })
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::Decider as _;

    use super::*;
    use crate::domain::device::{Command, Device};
    use crate::domain::{DeviceKey, PolicyTable, SalesChannel};

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// A device bought in `country` on `purchase`, after `commands` (each at its date).
    fn device(country: &str, purchase: &str, commands: &[Command]) -> DeviceState {
        let table = PolicyTable::builtin().unwrap();
        let purchase = date(purchase);
        let register = Command::Register {
            key: DeviceKey::imei("490154203237518").unwrap(),
            model: "Phone 12".into(),
            purchase_date: purchase,
            country: country.into(),
            channel: SalesChannel::OnlineStore,
            customer_id: "c-1".into(),
            terms: table.in_force(country, purchase).unwrap().clone(),
            proof: crate::domain::PurchaseProof::Verified,
            today: purchase,
        };
        let mut state = None;
        for command in std::iter::once(&register).chain(commands) {
            for event in Device::decide(&state, command).unwrap() {
                state = Device::evolve(state, &event);
            }
            if let Command::PurchasePlan { payment_id, .. } = command {
                let settle = Command::SettlePlanPayment {
                    payment_id: payment_id.clone(),
                    settlement: crate::domain::device::Settlement::Paid,
                };
                for event in Device::decide(&state, &settle).unwrap() {
                    state = Device::evolve(state, &event);
                }
            }
        }
        state.unwrap()
    }

    fn claim(on: &str, fault: FaultCategory, legal: bool) -> Command {
        Command::RecordClaim {
            repair_order_id: format!("r-{on}"),
            fault,
            under_legal_guarantee: legal,
            today: date(on),
        }
    }

    /// A plan ordered on `on` (paid at once: `device` settles it).
    fn plan(id: &str, on: &str) -> Command {
        Command::PurchasePlan {
            plan_id: id.into(),
            payment_id: format!("pay-{id}"),
            today: date(on),
        }
    }

    fn void(on: &str) -> Command {
        Command::Void {
            reason: "tampered bootloader".into(),
            evidence: vec!["photo-1".into()],
            today: date(on),
        }
    }

    use FaultCategory::{AccidentalDamage, Battery, Display, LiquidDamage, UnauthorizedRepair};

    /// (case, country, purchase, history, fault, asked on, covered, reason, remedy,
    /// policy version)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<Command>,
        FaultCategory,
        &'static str,
        bool,
        Reason,
        Remedy,
        u32,
    );

    #[test]
    fn policy_cases_across_countries() {
        let cases: Vec<Case> = vec![
            (
                "CN return window",
                "CN",
                "2025-03-01",
                vec![],
                Display,
                "2025-03-05",
                true,
                Reason::WithinReturnWindow,
                Remedy::Refund,
                1,
            ),
            (
                "CN last return day",
                "CN",
                "2025-03-01",
                vec![],
                Display,
                "2025-03-08",
                true,
                Reason::WithinReturnWindow,
                Remedy::Refund,
                1,
            ),
            (
                "CN exchange window",
                "CN",
                "2025-03-01",
                vec![],
                Battery,
                "2025-03-12",
                true,
                Reason::WithinExchangeWindow,
                Remedy::Exchange,
                1,
            ),
            (
                "CN repair after 15 days",
                "CN",
                "2025-03-01",
                vec![],
                Battery,
                "2025-03-17",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "CN expired after 12 months",
                "CN",
                "2025-03-01",
                vec![],
                Battery,
                "2026-03-02",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "CN liquid in return window",
                "CN",
                "2025-03-01",
                vec![],
                LiquidDamage,
                "2025-03-02",
                false,
                Reason::ExcludedFault,
                Remedy::None,
                1,
            ),
            (
                "IN base warranty",
                "IN",
                "2025-01-10",
                vec![],
                Display,
                "2025-12-01",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "IN expired",
                "IN",
                "2025-01-10",
                vec![],
                Display,
                "2026-01-11",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "IN extended plan",
                "IN",
                "2025-01-10",
                vec![plan("care-12", "2025-01-20")],
                Display,
                "2026-06-01",
                true,
                Reason::WithinExtendedWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "US base warranty",
                "US",
                "2025-05-01",
                vec![],
                Battery,
                "2026-04-30",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "US no statutory term",
                "US",
                "2025-05-01",
                vec![],
                Battery,
                "2026-05-02",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "US care-24 in its second year",
                "US",
                "2025-05-01",
                vec![plan("care-24", "2025-05-02")],
                Battery,
                "2027-12-01",
                true,
                Reason::WithinExtendedWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "US accidental under a plan",
                "US",
                "2025-05-01",
                vec![plan("care-24", "2025-05-02")],
                AccidentalDamage,
                "2025-08-01",
                false,
                Reason::ExcludedFault,
                Remedy::None,
                1,
            ),
            (
                "GB 30-day rejection",
                "GB",
                "2025-02-01",
                vec![],
                Display,
                "2025-02-20",
                true,
                Reason::WithinReturnWindow,
                Remedy::Refund,
                1,
            ),
            (
                "GB repair after 30 days",
                "GB",
                "2025-02-01",
                vec![],
                Display,
                "2025-04-01",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "DE within 24 months",
                "DE",
                "2025-02-01",
                vec![],
                Display,
                "2026-12-31",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "DE expired at 24 months",
                "DE",
                "2025-02-01",
                vec![],
                Display,
                "2027-02-02",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "DE bought under v2",
                "DE",
                "2026-08-01",
                vec![],
                Display,
                "2026-09-01",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                2,
            ),
            (
                "DE v2 legal repair extends the guarantee",
                "DE",
                "2026-08-01",
                vec![claim("2027-06-01", Battery, true)],
                Display,
                "2028-12-01",
                true,
                Reason::WithinLegalGuarantee,
                Remedy::Repair,
                2,
            ),
            (
                "DE v1 repair does not extend",
                "DE",
                "2025-02-01",
                vec![claim("2026-09-01", Display, true)],
                Battery,
                "2027-03-01",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "FR voided",
                "FR",
                "2025-02-01",
                vec![void("2025-03-01")],
                Display,
                "2025-04-01",
                false,
                Reason::Voided,
                Remedy::None,
                1,
            ),
            (
                "FR unauthorized repair",
                "FR",
                "2025-02-01",
                vec![],
                UnauthorizedRepair,
                "2025-04-01",
                false,
                Reason::ExcludedFault,
                Remedy::None,
                1,
            ),
            (
                "ES 36-month legal guarantee",
                "ES",
                "2025-02-01",
                vec![],
                Display,
                "2027-10-01",
                true,
                Reason::WithinLegalGuarantee,
                Remedy::Repair,
                1,
            ),
            (
                "ES expired after 36 months",
                "ES",
                "2025-02-01",
                vec![],
                Display,
                "2028-02-02",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "IT plan after base warranty",
                "IT",
                "2025-02-01",
                vec![plan("care-12", "2025-03-01")],
                Display,
                "2027-06-01",
                true,
                Reason::WithinExtendedWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "AU consumer guarantee after 12 months",
                "AU",
                "2025-02-01",
                vec![],
                Display,
                "2026-06-01",
                true,
                Reason::WithinLegalGuarantee,
                Remedy::Repair,
                1,
            ),
            (
                "AU expired after 24 months",
                "AU",
                "2025-02-01",
                vec![],
                Display,
                "2027-02-02",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "ZA base warranty",
                "ZA",
                "2025-02-01",
                vec![],
                Battery,
                "2025-12-01",
                true,
                Reason::WithinBaseWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "ZA replaced part keeps 90 days",
                "ZA",
                "2025-02-01",
                vec![claim("2026-01-25", Battery, false)],
                Battery,
                "2026-04-20",
                true,
                Reason::WithinReplacedPartWarranty,
                Remedy::Repair,
                1,
            ),
            (
                "ZA other fault not extended by the part",
                "ZA",
                "2025-02-01",
                vec![claim("2026-01-25", Battery, false)],
                Display,
                "2026-04-20",
                false,
                Reason::Expired,
                Remedy::None,
                1,
            ),
            (
                "before purchase",
                "DE",
                "2025-02-01",
                vec![],
                Display,
                "2025-01-31",
                false,
                Reason::BeforePurchase,
                Remedy::None,
                1,
            ),
        ];
        assert!(cases.len() >= 25);
        for (name, country, purchase, history, fault, on, covered, reason, remedy, version) in cases
        {
            let state = device(country, purchase, &history);
            let decision = decide(&state, fault, date(on));
            assert_eq!(
                (
                    decision.covered,
                    decision.reason,
                    decision.remedy,
                    decision.policy_version
                ),
                (covered, reason, remedy, version),
                "{name}: {}",
                decision.explanation
            );
            assert_eq!(
                decision.policy_id,
                format!(
                    "{}-{}",
                    country.to_lowercase(),
                    match country {
                        "US" | "IN" => "limited",
                        "CN" => "sanbao",
                        "AU" => "acl",
                        "ZA" => "cpa",
                        _ => "consumer",
                    }
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn accessories_have_their_own_terms() {
        let state = device(
            "CN",
            "2025-03-01",
            &[Command::RegisterAccessory {
                serial: "EB-77".into(),
                kind: crate::domain::AccessoryKind::Earbuds,
                purchase_date: date("2025-03-01"),
                today: date("2025-03-01"),
            }],
        );
        let within = decide_accessory(&state, "EB-77", Audio, date("2025-05-31")).unwrap();
        assert!(within.covered);
        let after = decide_accessory(&state, "EB-77", Audio, date("2025-06-02")).unwrap();
        assert_eq!(after.reason, Reason::Expired);
        assert!(decide_accessory(&state, "nope", Audio, date("2025-05-01")).is_none());
    }

    use FaultCategory::Audio;
}
