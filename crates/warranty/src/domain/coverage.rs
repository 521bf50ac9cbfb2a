//! Whether a fault is covered on a date, and why: a pure function of the device's
//! recorded terms and history.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::device::DeviceState;
use super::policy::Source;
use super::programme::{Programme, ProgrammeKind};
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
    /// A recall or service programme remedies the fault, whatever the warranty says.
    WithinProgramme,
    Expired,
    /// Serviced in a country where the home policy is not honoured.
    NotHonouredHere,
    /// An accessory replaced under its warranty: the cover went to its replacement.
    Replaced,
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
            Self::WithinProgramme => "within_programme",
            Self::Expired => "expired",
            Self::NotHonouredHere => "not_honoured_here",
            Self::Replaced => "replaced",
        }
    }
}

/// The rule a decision rests on: the policy figure, the dates it runs between,
/// and where the figure comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// The policy figure, for example `statutory.legal_guarantee_months`.
    pub figure: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<NaiveDate>,
    pub ends: NaiveDate,
    /// The maker's terms or the statute; absent for terms recorded without sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl Rule {
    fn of(device: &DeviceState, figure: &str, starts: Option<NaiveDate>, ends: NaiveDate) -> Self {
        Self {
            figure: figure.to_owned(),
            starts,
            ends,
            source: device.terms.source_of(figure).cloned(),
        }
    }
}

/// The programme a decision rests on, as it stood when decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammeCited {
    pub id: String,
    pub version: u32,
    pub kind: ProgrammeKind,
    pub title: String,
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
    /// The valid time: the day the fault appeared or was reported.
    pub decided_for: NaiveDate,
    /// The rule cited; none for refusals that rest on no figure (a voided
    /// warranty, an excluded fault, a date before purchase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// The day falls within the legal guarantee: a repair is a remedy under it.
    #[serde(default)]
    pub under_legal_guarantee: bool,
    /// The recall or service programme the decision rests on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programme: Option<ProgrammeCited>,
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

/// Decides whether `fault` on the phone is covered on `on` (the day it
/// appeared), serviced in `serviced_in` (the home country when `None`), under
/// its warranty, the law, a plan or one of `programmes`.
///
/// A programme that remedies the fault is cited ahead of the maker's warranty
/// and the legal guarantee (its remedy costs the customer nothing and uses up
/// no guarantee), after the statutory return and exchange windows (which give
/// the customer more). A recall covers a voided device too.
///
/// The state is the device as known at the knowledge time; facts recorded
/// after `on` do not widen its cover for `on` (a plan covers from the end of
/// the maker's warranty, a replaced part from its repair), and a cancelled
/// plan still covers the days before it was cancelled. A void applies to
/// every day: it records that the warranty is forfeit, not when.
pub fn decide(
    device: &DeviceState,
    fault: FaultCategory,
    on: NaiveDate,
    serviced_in: Option<&str>,
    programmes: &[Programme],
) -> Decision {
    let terms = &device.terms;
    let statutory = &terms.statutory;
    let purchase = device.purchase_date;
    let legal_end = device.legal_guarantee_end();
    let extended_end = device.plan.as_ref().map(|p| p.coverage_end);
    let plan_end_on = device.plan_cover_on(on);
    let honoured =
        serviced_in.is_none_or(|country| terms.honoured_in.honours(&device.country, country));
    let programme = programmes
        .iter()
        .find(|p| p.covers(device, fault, on, serviced_in));
    let mut rule = None;
    let (reason, remedy, explanation) = if let Some(refusal) = refused(device, fault, on, purchase)
        .filter(|(reason, ..)| !(*reason == Reason::Voided && programme.is_some()))
    {
        refusal
    } else if honoured
        && statutory.return_days > 0
        && on <= add_days(purchase, statutory.return_days)
    {
        let ends = add_days(purchase, statutory.return_days);
        rule = Some(Rule::of(
            device,
            "statutory.return_days",
            Some(purchase),
            ends,
        ));
        (
            Reason::WithinReturnWindow,
            Remedy::Refund,
            format!("within the {}-day return window", statutory.return_days),
        )
    } else if honoured
        && statutory.exchange_days > 0
        && on <= add_days(purchase, statutory.exchange_days)
    {
        let ends = add_days(purchase, statutory.exchange_days);
        rule = Some(Rule::of(
            device,
            "statutory.exchange_days",
            Some(purchase),
            ends,
        ));
        (
            Reason::WithinExchangeWindow,
            Remedy::Exchange,
            format!("within the {}-day exchange window", statutory.exchange_days),
        )
    } else if let Some(p) = programme {
        rule = Some(Rule {
            figure: "programme".into(),
            starts: Some(p.starts),
            ends: p.ends,
            source: Some(p.notice.clone()),
        });
        (
            Reason::WithinProgramme,
            p.remedy,
            format!(
                "covered under {} programme {} (version {}): {}; for faults appearing until {}",
                p.kind.as_str(),
                p.id,
                p.version,
                p.title,
                p.ends
            ),
        )
    } else if let Some(country) = serviced_in.filter(|_| !honoured) {
        rule = Some(Rule::of(device, "honoured_in", None, device.coverage_end()));
        (
            Reason::NotHonouredHere,
            Remedy::None,
            format!(
                "bought in {}, whose warranty is honoured in {}; not in {country}",
                device.country,
                match terms.honoured_in {
                    super::policy::Travel::Country => "that country only",
                    super::policy::Travel::Eu => "the EU, the EEA and Switzerland",
                    super::policy::Travel::Worldwide => "every country",
                }
            ),
        )
    } else if on <= device.base_end {
        rule = Some(Rule::of(
            device,
            "phone_months",
            Some(device.term_start()),
            device.base_end,
        ));
        (
            Reason::WithinBaseWarranty,
            Remedy::Repair,
            format!(
                "within the {}-month warranty ending {}",
                terms.phone_months, device.base_end
            ),
        )
    } else if let Some(end) = legal_end.filter(|end| on <= *end) {
        rule = Some(Rule::of(
            device,
            "statutory.legal_guarantee_months",
            Some(purchase),
            end,
        ));
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
        rule = Some(Rule::of(device, "replaced_part.minimum_days", None, *end));
        (
            Reason::WithinReplacedPartWarranty,
            Remedy::Repair,
            format!("the part replaced for this fault is covered until {end}"),
        )
    } else if let Some(end) = plan_end_on {
        rule = Some(Rule::of(device, "plans", Some(device.base_end), end));
        (
            Reason::WithinExtendedWarranty,
            Remedy::Repair,
            format!("within the extended warranty ending {end}"),
        )
    } else {
        let (figure, ends) = [
            Some(("phone_months", device.base_end)),
            legal_end.map(|end| ("statutory.legal_guarantee_months", end)),
            extended_end.map(|end| ("plans", end)),
        ]
        .into_iter()
        .flatten()
        .max_by_key(|(_, end)| *end)
        .unwrap_or(("phone_months", device.base_end));
        rule = Some(Rule::of(device, figure, None, ends));
        (
            Reason::Expired,
            Remedy::None,
            format!("no warranty, guarantee or plan covers this date; the last ended {ends}"),
        )
    };
    let covered = remedy != Remedy::None;
    Decision {
        covered,
        reason,
        explanation,
        policy_id: terms.policy_id.clone(),
        policy_version: terms.version,
        base_end: device.base_end,
        legal_end,
        extended_end,
        remedy,
        decided_for: on,
        rule,
        under_legal_guarantee: covered
            && reason != Reason::WithinProgramme
            && remedy == Remedy::Repair
            && legal_end.is_some_and(|end| purchase <= on && on <= end),
        programme: programme
            .filter(|_| reason == Reason::WithinProgramme)
            .map(|p| ProgrammeCited {
                id: p.id.clone(),
                version: p.version,
                kind: p.kind,
                title: p.title.clone(),
            }),
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
    let mut rule = None;
    let (reason, remedy, explanation) =
        if let Some(refusal) = refused(device, fault, on, accessory.purchase_date) {
            refusal
        } else if let Some(replacement) = &accessory.replaced_by {
            (
                Reason::Replaced,
                Remedy::None,
                format!("replaced by {replacement}, which carries the cover"),
            )
        } else if on <= accessory.coverage_end {
            rule = Some(Rule::of(
                device,
                "accessory_months",
                Some(accessory.purchase_date),
                accessory.coverage_end,
            ));
            (
                Reason::WithinBaseWarranty,
                Remedy::Exchange,
                format!(
                    "within the accessory warranty ending {}",
                    accessory.coverage_end
                ),
            )
        } else {
            rule = Some(Rule::of(
                device,
                "accessory_months",
                Some(accessory.purchase_date),
                accessory.coverage_end,
            ));
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
        rule,
        under_legal_guarantee: false,
        programme: None,
    })
}

#[cfg(test)]
mod tests {
    use aftersales_eventstore::Decider as _;

    use super::*;
    use crate::domain::device::Event;
    use crate::domain::device::{Command, Device};
    use crate::domain::policy::Source;
    use crate::domain::{DeviceKey, PolicyTable, Programme, SalesChannel};

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
            activation_date: None,
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

    fn claim(on: &str, fault: FaultCategory) -> Command {
        Command::RecordClaim {
            repair_order_id: format!("r-{on}"),
            fault,
            fault_date: date(on),
            today: date(on),
            programmes: Vec::new(),
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
                2,
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
                2,
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
                3,
            ),
            (
                "DE v2 legal repair extends the guarantee",
                "DE",
                "2026-08-01",
                vec![claim("2027-06-01", Battery)],
                Display,
                "2028-12-01",
                true,
                Reason::WithinLegalGuarantee,
                Remedy::Repair,
                3,
            ),
            (
                "DE v1 repair does not extend",
                "DE",
                "2025-02-01",
                vec![claim("2026-09-01", Display)],
                Battery,
                "2027-03-01",
                false,
                Reason::Expired,
                Remedy::None,
                2,
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
                2,
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
                2,
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
                2,
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
                vec![claim("2026-01-25", Battery)],
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
                vec![claim("2026-01-25", Battery)],
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
                2,
            ),
        ];
        assert!(cases.len() >= 25);
        for (name, country, purchase, history, fault, on, covered, reason, remedy, version) in cases
        {
            let state = device(country, purchase, &history);
            let decision = decide(&state, fault, date(on), None, &[]);
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
                replaces: None,
                today: date("2025-03-01"),
            }],
        );
        let within = decide_accessory(&state, "EB-77", Audio, date("2025-05-31")).unwrap();
        assert!(within.covered);
        let after = decide_accessory(&state, "EB-77", Audio, date("2025-06-02")).unwrap();
        assert_eq!(after.reason, Reason::Expired);
        assert!(decide_accessory(&state, "nope", Audio, date("2025-05-01")).is_none());
    }

    #[test]
    fn a_replaced_accessory_hands_its_cover_to_the_replacement() {
        use crate::domain::AccessoryKind::{Charger, Earbuds};
        let register =
            |serial: &str, kind, on: &str, replaces: Option<&str>| Command::RegisterAccessory {
                serial: serial.into(),
                kind,
                purchase_date: date(on),
                replaces: replaces.map(Into::into),
                today: date(on),
            };
        let bought = register("EB-77", Earbuds, "2025-03-01", None);
        let replaced = register("EB-78", Earbuds, "2025-05-20", Some("EB-77"));
        let state = device("CN", "2025-03-01", &[bought.clone(), replaced.clone()]);
        let old = decide_accessory(&state, "EB-77", Audio, date("2025-05-25")).unwrap();
        assert_eq!((old.covered, old.reason), (false, Reason::Replaced));
        // The old cover ended 2025-06-01; the minimum for a replaced part runs
        // 90 days from the replacement, and is the later of the two.
        let new = decide_accessory(&state, "EB-78", Audio, date("2025-08-18")).unwrap();
        assert!(new.covered, "{new:?}");
        assert_eq!(new.base_end, date("2025-08-18"));
        assert!(
            !decide_accessory(&state, "EB-78", Audio, date("2025-08-19"))
                .unwrap()
                .covered
        );

        let once = Device::decide(&Some(state.clone()), &replaced).unwrap();
        assert!(
            once.is_empty(),
            "the same replacement again changes nothing"
        );
        let twice = Device::decide(
            &Some(state.clone()),
            &register("EB-79", Earbuds, "2025-05-21", Some("EB-77")),
        );
        assert!(
            matches!(twice, Err(crate::domain::DomainError::Precondition(_))),
            "{twice:?}"
        );
        let other_kind = Device::decide(
            &Some(state),
            &register("CH-1", Charger, "2025-05-21", Some("EB-78")),
        );
        assert!(
            matches!(
                &other_kind,
                Err(crate::domain::DomainError::Invalid {
                    field: "replaces_serial",
                    ..
                })
            ),
            "{other_kind:?}"
        );
    }

    use FaultCategory::Audio;

    /// Registered today, bought a year ago: each earlier day is judged under the
    /// purchase date, not unknown.
    #[test]
    fn a_late_registration_is_judged_for_earlier_days() {
        let table = PolicyTable::builtin().unwrap();
        let register = Command::Register {
            key: DeviceKey::imei("490154203237518").unwrap(),
            model: "Phone 12".into(),
            purchase_date: date("2025-11-20"),
            country: "US".into(),
            channel: SalesChannel::OnlineStore,
            customer_id: "c-1".into(),
            terms: table.in_force("US", date("2025-11-20")).unwrap().clone(),
            proof: crate::domain::PurchaseProof::Verified,
            activation_date: None,
            today: date("2026-12-02"),
        };
        let mut state = None;
        for event in Device::decide(&state, &register).unwrap() {
            state = Device::evolve(state, &event);
        }
        let state = state.unwrap();
        let inside = decide(&state, Display, date("2026-03-10"), None, &[]);
        assert_eq!(
            (inside.covered, inside.reason),
            (true, Reason::WithinBaseWarranty)
        );
        assert_eq!(inside.decided_for, date("2026-03-10"));
        let after = decide(&state, Display, date("2026-11-21"), None, &[]);
        assert_eq!((after.covered, after.reason), (false, Reason::Expired));
        let before = decide(&state, Display, date("2025-11-19"), None, &[]);
        assert_eq!(before.reason, Reason::BeforePurchase);
    }

    /// Within an EU legal guarantee a covered repair is a remedy under it: the
    /// first such repair extends it by 12 months, a second does not, and a repair
    /// under a plan after the guarantee ended extends nothing.
    #[test]
    fn an_eu_repair_under_the_legal_guarantee_extends_it_once() {
        let state = device("DE", "2026-08-01", &[]);
        assert_eq!(state.legal_guarantee_end(), Some(date("2028-08-01")));
        let decision = decide(&state, Battery, date("2027-06-01"), None, &[]);
        assert!(decision.under_legal_guarantee, "{decision:?}");
        let once = device("DE", "2026-08-01", &[claim("2027-06-01", Battery)]);
        assert_eq!(once.legal_guarantee_end(), Some(date("2029-08-01")));
        let twice = device(
            "DE",
            "2026-08-01",
            &[claim("2027-06-01", Battery), claim("2028-01-05", Display)],
        );
        assert_eq!(twice.legal_guarantee_end(), Some(date("2029-08-01")));
        // Bought under the 2022 version: no extension whatever the repair.
        let before = device("DE", "2025-02-01", &[claim("2026-09-01", Display)]);
        assert_eq!(before.legal_guarantee_end(), Some(date("2027-02-01")));
        // Spain: maker's 24 months inside a 36-month legal guarantee; a repair in
        // the third year is under the legal guarantee.
        let es = device("ES", "2026-08-01", &[plan("care-24", "2026-08-02")]);
        let third_year = decide(&es, Display, date("2029-02-01"), None, &[]);
        assert_eq!(third_year.reason, Reason::WithinLegalGuarantee);
        assert!(third_year.under_legal_guarantee);
        // After the legal guarantee, under the plan: not a legal remedy.
        let plan_only = decide(&es, Display, date("2029-09-01"), None, &[]);
        assert_eq!(plan_only.reason, Reason::WithinExtendedWarranty);
        assert!(!plan_only.under_legal_guarantee);
        let claimed = device(
            "ES",
            "2026-08-01",
            &[plan("care-24", "2026-08-02"), claim("2029-09-01", Display)],
        );
        assert_eq!(claimed.legal_extension_months, 0);
    }

    #[test]
    fn decisions_cite_their_rule_and_its_source() {
        let es = device("ES", "2025-02-01", &[]);
        let decision = decide(&es, Display, date("2027-10-01"), None, &[]);
        let rule = decision.rule.unwrap();
        assert_eq!(rule.figure, "statutory.legal_guarantee_months");
        assert_eq!(
            (rule.starts, rule.ends),
            (Some(date("2025-02-01")), date("2028-02-01"))
        );
        let source = rule.source.unwrap();
        assert_eq!(source.kind, crate::domain::policy::SourceKind::Statute);
        assert!(source.reference.starts_with("Art. 120"), "{source:?}");
        let cn = device("CN", "2025-03-01", &[]);
        let returned = decide(&cn, Display, date("2025-03-05"), None, &[])
            .rule
            .unwrap();
        assert_eq!(returned.figure, "statutory.return_days");
        assert_eq!(returned.ends, date("2025-03-08"));
        assert!(returned.source.unwrap().title.contains("移动电话机商品"));
        let maker = decide(&cn, Battery, date("2025-05-01"), None, &[])
            .rule
            .unwrap();
        assert_eq!(maker.figure, "phone_months");
        let excluded = decide(&cn, LiquidDamage, date("2025-05-01"), None, &[]);
        assert!(excluded.rule.is_none());
        let expired = decide(&cn, Battery, date("2027-05-01"), None, &[])
            .rule
            .unwrap();
        assert_eq!(
            (expired.figure.as_str(), expired.ends),
            ("phone_months", date("2026-03-01"))
        );
    }

    #[test]
    fn a_warranty_travels_as_its_home_policy_says() {
        let de = device("DE", "2025-02-01", &[]);
        assert!(decide(&de, Display, date("2025-06-01"), Some("FR"), &[]).covered);
        assert!(decide(&de, Display, date("2025-06-01"), Some("DE"), &[]).covered);
        let abroad = decide(&de, Display, date("2025-06-01"), Some("IN"), &[]);
        assert_eq!(
            (abroad.covered, abroad.reason),
            (false, Reason::NotHonouredHere)
        );
        assert_eq!(abroad.rule.unwrap().figure, "honoured_in");
        let india = device("IN", "2025-01-10", &[]);
        assert_eq!(
            decide(&india, Display, date("2025-06-01"), Some("DE"), &[]).reason,
            Reason::NotHonouredHere
        );
        assert!(decide(&india, Display, date("2025-06-01"), Some("IN"), &[]).covered);
    }

    #[test]
    fn a_term_that_starts_at_activation_runs_from_it_within_its_limit() {
        let table = PolicyTable::builtin().unwrap();
        let register = |activated: Option<&str>| {
            let command = Command::Register {
                key: DeviceKey::imei("490154203237518").unwrap(),
                model: "Phone 12".into(),
                purchase_date: date("2025-01-01"),
                country: "VN".into(),
                channel: SalesChannel::RetailStore,
                customer_id: "c-1".into(),
                terms: table.in_force("VN", date("2025-01-01")).unwrap().clone(),
                proof: crate::domain::PurchaseProof::Verified,
                activation_date: activated.map(date),
                today: date("2026-12-02"),
            };
            let mut state = None;
            for event in Device::decide(&state, &command).unwrap() {
                state = Device::evolve(state, &event);
            }
            state.unwrap()
        };
        let soon = register(Some("2025-01-31"));
        assert_eq!(soon.base_end, date("2026-01-31"));
        assert!(decide(&soon, Display, date("2026-01-20"), None, &[]).covered);
        // Activated after its limit, or never reported: the limit counts.
        assert_eq!(register(Some("2025-09-01")).base_end, date("2026-04-01"));
        assert_eq!(register(None).base_end, date("2026-04-01"));
        // A market whose term starts at purchase ignores activation.
        assert_eq!(device("US", "2025-01-01", &[]).base_end, date("2026-01-01"));
    }

    /// A plan cancelled later still covered the days before its cancellation.
    #[test]
    fn a_cancelled_plan_covered_the_days_before_it_was_cancelled() {
        let cancelled = device(
            "US",
            "2025-05-01",
            &[
                plan("care-24", "2025-05-02"),
                Command::CancelPlan {
                    today: date("2026-09-01"),
                    refund_id: None,
                },
            ],
        );
        assert!(cancelled.plan.is_none());
        let before = decide(&cancelled, Battery, date("2026-07-01"), None, &[]);
        assert_eq!(before.reason, Reason::WithinExtendedWarranty);
        let after = decide(&cancelled, Battery, date("2026-10-01"), None, &[]);
        assert_eq!(after.reason, Reason::Expired);
    }

    /// A battery recall for `Phone 12`s in a range holding the test device,
    /// offered in Germany during 2026 and 2027.
    fn recall(kind: ProgrammeKind, from: &str) -> Programme {
        use crate::domain::policy::SourceKind;
        use crate::domain::programme::DeviceRange;
        Programme {
            id: "P12-BAT-2026".into(),
            version: 2,
            kind,
            title: "Phone 12 batteries that may swell".into(),
            models: vec!["Phone 12".into()],
            ranges: vec![DeviceRange::Imei {
                from: from.into(),
                to: "490154203299999".into(),
            }],
            faults: vec![Battery],
            remedy: Remedy::Exchange,
            countries: vec!["DE".into()],
            starts: date("2026-01-01"),
            ends: date("2027-12-31"),
            notice: Source {
                kind: SourceKind::Maker,
                title: "Recall notice".into(),
                reference: "RN-1".into(),
                url: None,
                checked: date("2026-01-01"),
            },
        }
    }

    #[test]
    fn a_programme_covers_a_device_in_its_range_out_of_warranty_and_no_other() {
        use crate::domain::programme::ProgrammeKind::{Recall, Service};
        let old = device("DE", "2022-01-10", &[]);
        let programmes = [recall(Recall, "490154203200000")];
        let covered = decide(&old, Battery, date("2026-06-01"), None, &programmes);
        assert!(covered.covered);
        assert_eq!(covered.reason, Reason::WithinProgramme);
        assert_eq!(covered.remedy, Remedy::Exchange);
        assert!(!covered.under_legal_guarantee);
        let cited = covered.programme.clone().unwrap();
        assert_eq!((cited.id.as_str(), cited.version), ("P12-BAT-2026", 2));
        let rule = covered.rule.unwrap();
        assert_eq!(rule.figure, "programme");
        assert_eq!(rule.ends, date("2027-12-31"));
        assert_eq!(rule.source.unwrap().reference, "RN-1");
        assert!(
            covered.explanation.contains("P12-BAT-2026"),
            "{}",
            covered.explanation
        );

        // Another fault, a day outside the programme, a device outside the range,
        // another model, a country it is not offered in: the warranty alone decides.
        let expired = |d: Decision| {
            assert_eq!(d.reason, Reason::Expired, "{}", d.explanation);
            assert!(d.programme.is_none());
        };
        expired(decide(&old, Display, date("2026-06-01"), None, &programmes));
        expired(decide(&old, Battery, date("2025-12-31"), None, &programmes));
        expired(decide(&old, Battery, date("2028-01-01"), None, &programmes));
        let outside = [recall(Recall, "490154203237519")];
        expired(decide(&old, Battery, date("2026-06-01"), None, &outside));
        let mut other_model = old.clone();
        other_model.model = "Phone 13".into();
        expired(decide(
            &other_model,
            Battery,
            date("2026-06-01"),
            None,
            &programmes,
        ));
        let abroad = decide(&old, Battery, date("2026-06-01"), Some("FR"), &programmes);
        assert_eq!(abroad.reason, Reason::Expired);

        // A recall covers a voided device; a service programme does not.
        let voided = device("DE", "2022-01-10", &[void("2023-01-01")]);
        let recalled = decide(&voided, Battery, date("2026-06-01"), None, &programmes);
        assert_eq!(recalled.reason, Reason::WithinProgramme);
        let service = [recall(Service, "490154203200000")];
        let refused = decide(&voided, Battery, date("2026-06-01"), None, &service);
        assert_eq!(refused.reason, Reason::Voided);
        assert!(decide(&old, Battery, date("2026-06-01"), None, &service).covered);
    }

    #[test]
    fn the_statutory_windows_come_before_a_programme_and_the_programme_before_the_warranty() {
        use crate::domain::programme::ProgrammeKind::Recall;
        let programmes = [recall(Recall, "490154203200000")];
        // Germany has no return window: the programme, ahead of the warranty.
        let de = device("DE", "2026-05-30", &[]);
        let within_warranty = decide(&de, Battery, date("2026-06-01"), None, &programmes);
        assert_eq!(within_warranty.reason, Reason::WithinProgramme);
        // A return window (China's terms) gives the customer more: it comes first.
        let cn_like = {
            let mut d = device("CN", "2026-05-30", &[]);
            d.country = "DE".into();
            d
        };
        let returned = decide(&cn_like, Battery, date("2026-06-01"), None, &programmes);
        assert_eq!(returned.reason, Reason::WithinReturnWindow);
    }

    #[test]
    fn a_claim_under_a_programme_names_it_and_extends_no_guarantee() {
        use crate::domain::programme::ProgrammeKind::Recall;
        let programme = recall(Recall, "490154203200000");
        let state = Some(device("DE", "2025-03-01", &[]));
        let claim = Command::RecordClaim {
            repair_order_id: "r-1".into(),
            fault: Battery,
            fault_date: date("2026-06-01"),
            today: date("2026-06-02"),
            programmes: vec![programme.clone()],
        };
        let events = Device::decide(&state, &claim).unwrap();
        let [
            Event::ClaimRecorded {
                programme_id,
                under_legal_guarantee,
                legal_extension_months,
                ..
            },
        ] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert_eq!(programme_id.as_deref(), Some("P12-BAT-2026"));
        assert!(!under_legal_guarantee);
        assert_eq!(*legal_extension_months, 0);

        // Enrolled once: the second sweep finds it told.
        let enrol = Command::Enrol {
            programmes: vec![programme],
            today: date("2026-06-01"),
        };
        let told = Device::decide(&state, &enrol).unwrap();
        assert_eq!(told.len(), 1);
        let mut after = state;
        for event in &told {
            after = Device::evolve(after, event);
        }
        assert!(after.as_ref().unwrap().programmes.contains("P12-BAT-2026"));
        assert!(Device::decide(&after, &enrol).unwrap().is_empty());
    }
}
