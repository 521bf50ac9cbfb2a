//! Between the domain's types and the `aftersales.repair.v1` contracts: every
//! conversion in one place, for the API and the relay alike.

use aftersales_core::types::DeviceKey;
use aftersales_proto::common::{CountryCode, DeviceId, GeoPoint as PbPoint, Money as PbMoney};
use aftersales_proto::repair as pb;
use aftersales_runtime::request::timestamp_to_proto;

use crate::app::AppResult;
use crate::domain::Money;
use crate::domain::centers::ServiceCenter;
use chrono::{DateTime, Utc};

use crate::domain::order::{
    AccessPurpose, Action, Address, Channel, Coverage, DataCategory, DataProtection, LineKind,
    OrderState, PartsPlan, Passcode, Quote, QuoteLine, Stage,
};

pub fn stage(s: Stage) -> pb::Stage {
    match s {
        Stage::Opened => pb::Stage::Opened,
        Stage::AwaitingDevice => pb::Stage::AwaitingDevice,
        Stage::Received => pb::Stage::Received,
        Stage::Diagnosed => pb::Stage::Diagnosed,
        Stage::Quoted => pb::Stage::Quoted,
        Stage::Approved => pb::Stage::Approved,
        Stage::InRepair => pb::Stage::InRepair,
        Stage::QcPassed => pb::Stage::QcPassed,
        Stage::ReadyForReturn => pb::Stage::ReadyForReturn,
        Stage::Closed => pb::Stage::Closed,
        Stage::Cancelled => pb::Stage::Cancelled,
    }
}

pub fn money(m: &Money) -> PbMoney {
    PbMoney {
        minor_units: m.minor_units(),
        currency: m.currency().to_string(),
    }
}

pub fn coverage_to_proto(coverage: &Coverage) -> pb::Coverage {
    match coverage {
        Coverage::Decided {
            covered,
            reason,
            policy_id,
            policy_version,
        } => pb::Coverage {
            decided: true,
            covered: *covered,
            reason: reason.clone(),
            policy_id: policy_id.clone(),
            policy_version: *policy_version,
        },
        Coverage::Pending { why } => pb::Coverage {
            decided: false,
            reason: why.clone(),
            ..Default::default()
        },
    }
}

pub fn line_to_proto(l: &QuoteLine) -> pb::QuoteLine {
    pb::QuoteLine {
        description: l.description.clone(),
        is_labour: l.kind == LineKind::Labour,
        amount: Some(money(&l.amount)),
    }
}

pub fn quote_to_proto(q: &Quote) -> pb::Quote {
    pb::Quote {
        revision: q.revision,
        lines: q.lines.iter().map(line_to_proto).collect(),
        total: Some(money(&q.total)),
        valid_until: Some(timestamp_to_proto(q.valid_until)),
    }
}

pub fn address_to_proto(a: &Address) -> aftersales_proto::common::Address {
    aftersales_proto::common::Address {
        recipient: a.recipient.clone(),
        lines: a.lines.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country: Some(CountryCode {
            value: a.country.clone(),
        }),
        phone: a.phone.clone(),
    }
}

pub fn action(a: Action) -> pb::Action {
    match a {
        Action::CheckIn => pb::Action::CheckIn,
        Action::Diagnose => pb::Action::Diagnose,
        Action::IssueQuote => pb::Action::IssueQuote,
        Action::ApproveQuote => pb::Action::ApproveQuote,
        Action::DeclineQuote => pb::Action::DeclineQuote,
        Action::StartRepair => pb::Action::StartRepair,
        Action::ReplacePart => pb::Action::ReplacePart,
        Action::RecordQc => pb::Action::RecordQc,
        Action::MarkReadyForReturn => pb::Action::MarkReadyForReturn,
        Action::ConfirmCollected => pb::Action::ConfirmCollected,
        Action::Cancel => pb::Action::Cancel,
    }
}

/// `o` as the contract has it; `now` decides which actions are open (a quote expires).
pub fn order_to_proto(o: &OrderState, version: u64, now: DateTime<Utc>) -> pb::RepairOrder {
    let (channel, center, walk_in_day) = match &o.channel {
        Channel::WalkIn {
            center_id,
            visit_on,
        } => (
            pb::Channel::WalkIn,
            center_id.clone(),
            visit_on.map(|day| day.to_string()).unwrap_or_default(),
        ),
        Channel::MailIn { .. } => (pb::Channel::MailIn, String::new(), String::new()),
    };
    let awaited = o.parts_plan.as_ref().and_then(PartsPlan::awaited);
    pb::RepairOrder {
        order_id: o.order_id.clone(),
        device_id: Some(DeviceId::from(&o.device)),
        channel: channel.into(),
        service_center_id: center,
        customer_id: o.customer_id.clone(),
        symptoms: o.symptoms.clone(),
        stage: stage(o.stage).into(),
        coverage: Some(coverage_to_proto(&o.coverage)),
        quote: o.quote.as_ref().map(quote_to_proto),
        repaired: o.repaired,
        parts_replaced: u32::try_from(o.parts.len()).unwrap_or(u32::MAX),
        qc_failures: o.qc_failures,
        version,
        walk_in_day,
        fault_date: o.fault_date.map(|d| d.to_string()).unwrap_or_default(),
        condition_photos: o
            .condition
            .as_ref()
            .map(|c| c.photos.clone())
            .unwrap_or_default(),
        allowed_actions: o
            .allowed_actions(now)
            .into_iter()
            .map(|a| action(a).into())
            .collect(),
        personal_withheld: false,
        data_protection: o.data_protection.map(data_protection_to_proto),
        parts: o.parts_plan.as_ref().map_or_else(Vec::new, |plan| {
            plan.holds
                .iter()
                .map(|h| pb::PartHold {
                    part_number: h.part_number.clone(),
                    location: plan.location.clone(),
                    waiting: h.waiting,
                    expected_on: h.expected_on.map(|d| d.to_string()).unwrap_or_default(),
                    fitted: h.fitted,
                })
                .collect()
        }),
        waiting_for_parts: awaited.is_some(),
        parts_expected_on: awaited
            .and_then(|(_, day)| day)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        proposed_lines: o.parts_plan.as_ref().map_or_else(Vec::new, |plan| {
            plan.proposed.iter().map(line_to_proto).collect()
        }),
        proposed_total: o
            .parts_plan
            .as_ref()
            .and_then(|plan| proposed_total(&plan.proposed))
            .map(|m| money(&m)),
        depot: o.depot.clone().unwrap_or_default(),
    }
}

/// The sum of `lines`, where they share one currency.
pub fn proposed_total(lines: &[QuoteLine]) -> Option<Money> {
    let currency = lines.first()?.amount.currency().clone();
    let mut total: i64 = 0;
    for line in lines {
        if *line.amount.currency() != currency {
            return None;
        }
        total = total.checked_add(line.amount.minor_units())?;
    }
    Money::new("amount", total, currency.as_str()).ok()
}

/// `order` as anyone but its customer sees it: what the customer told and the
/// device's checklist are opened on purpose, with `OpenPersonalData`.
pub fn withheld(order: pb::RepairOrder) -> pb::RepairOrder {
    pb::RepairOrder {
        symptoms: String::new(),
        data_protection: None,
        personal_withheld: true,
        ..order
    }
}

pub fn data_protection_to_proto(d: DataProtection) -> pb::DataProtection {
    pb::DataProtection {
        backup_reminded: d.backup_reminded,
        find_my_device_off: d.find_my_device_off,
        passcode: match d.passcode {
            Passcode::NotNeeded => pb::PasscodeHandling::NotNeeded,
            Passcode::CustomerUnlocks => pb::PasscodeHandling::CustomerUnlocks,
            Passcode::ResetAgreed => pb::PasscodeHandling::ResetAgreed,
        }
        .into(),
    }
}

pub fn data_protection_from_proto(
    d: Option<&pb::DataProtection>,
) -> Result<DataProtection, tonic::Status> {
    let d = d.ok_or_else(|| tonic::Status::invalid_argument("data_protection: is required"))?;
    let passcode = match pb::PasscodeHandling::try_from(d.passcode) {
        Ok(pb::PasscodeHandling::NotNeeded) => Passcode::NotNeeded,
        Ok(pb::PasscodeHandling::CustomerUnlocks) => Passcode::CustomerUnlocks,
        Ok(pb::PasscodeHandling::ResetAgreed) => Passcode::ResetAgreed,
        Ok(pb::PasscodeHandling::Unspecified) | Err(_) => {
            return Err(tonic::Status::invalid_argument(
                "data_protection.passcode: must be NOT_NEEDED, CUSTOMER_UNLOCKS or RESET_AGREED",
            ));
        }
    };
    Ok(DataProtection {
        backup_reminded: d.backup_reminded,
        find_my_device_off: d.find_my_device_off,
        passcode,
    })
}

pub fn category_to_proto(c: DataCategory) -> pb::DataCategory {
    match c {
        DataCategory::CustomerWords => pb::DataCategory::CustomerWords,
        DataCategory::ContactAddress => pb::DataCategory::ContactAddress,
        DataCategory::DataProtection => pb::DataCategory::DataProtection,
    }
}

pub fn category_from_proto(c: i32) -> Result<DataCategory, tonic::Status> {
    match pb::DataCategory::try_from(c) {
        Ok(pb::DataCategory::CustomerWords) => Ok(DataCategory::CustomerWords),
        Ok(pb::DataCategory::ContactAddress) => Ok(DataCategory::ContactAddress),
        Ok(pb::DataCategory::DataProtection) => Ok(DataCategory::DataProtection),
        Ok(pb::DataCategory::Unspecified) | Err(_) => Err(tonic::Status::invalid_argument(
            "categories: each must be CUSTOMER_WORDS, CONTACT_ADDRESS or DATA_PROTECTION",
        )),
    }
}

pub fn purpose_to_proto(p: AccessPurpose) -> pb::AccessPurpose {
    match p {
        AccessPurpose::Diagnosis => pb::AccessPurpose::Diagnosis,
        AccessPurpose::Repair => pb::AccessPurpose::Repair,
        AccessPurpose::ReturnShipping => pb::AccessPurpose::ReturnShipping,
        AccessPurpose::CustomerContact => pb::AccessPurpose::CustomerContact,
        AccessPurpose::Complaint => pb::AccessPurpose::Complaint,
    }
}

pub fn purpose_from_proto(p: i32) -> Result<AccessPurpose, tonic::Status> {
    match pb::AccessPurpose::try_from(p) {
        Ok(pb::AccessPurpose::Diagnosis) => Ok(AccessPurpose::Diagnosis),
        Ok(pb::AccessPurpose::Repair) => Ok(AccessPurpose::Repair),
        Ok(pb::AccessPurpose::ReturnShipping) => Ok(AccessPurpose::ReturnShipping),
        Ok(pb::AccessPurpose::CustomerContact) => Ok(AccessPurpose::CustomerContact),
        Ok(pb::AccessPurpose::Complaint) => Ok(AccessPurpose::Complaint),
        Ok(pb::AccessPurpose::Unspecified) | Err(_) => Err(tonic::Status::invalid_argument(
            "purpose: must name why (DIAGNOSIS, REPAIR, RETURN_SHIPPING, CUSTOMER_CONTACT or COMPLAINT)",
        )),
    }
}

pub fn center_to_proto(c: &ServiceCenter) -> pb::ServiceCenter {
    pb::ServiceCenter {
        id: c.id.clone(),
        name: c.name.clone(),
        country: Some(CountryCode {
            value: c.country.clone(),
        }),
        city: c.city.clone(),
        address: c.address.clone(),
        location: Some(PbPoint {
            latitude: c.latitude,
            longitude: c.longitude,
        }),
        open_days: c.open_days.clone(),
        hours: c.hours.clone(),
        capabilities: c.capabilities.clone(),
        daily_capacity: c.daily_capacity,
    }
}

/// The directory's name of a stage.
pub fn stage_name(s: pb::Stage) -> &'static str {
    match s {
        pb::Stage::Unspecified => "",
        pb::Stage::Opened => Stage::Opened.as_str(),
        pb::Stage::AwaitingDevice => Stage::AwaitingDevice.as_str(),
        pb::Stage::Received => Stage::Received.as_str(),
        pb::Stage::Diagnosed => Stage::Diagnosed.as_str(),
        pb::Stage::Quoted => Stage::Quoted.as_str(),
        pb::Stage::Approved => Stage::Approved.as_str(),
        pb::Stage::InRepair => Stage::InRepair.as_str(),
        pb::Stage::QcPassed => Stage::QcPassed.as_str(),
        pb::Stage::ReadyForReturn => Stage::ReadyForReturn.as_str(),
        pb::Stage::Closed => Stage::Closed.as_str(),
        pb::Stage::Cancelled => Stage::Cancelled.as_str(),
    }
}

pub fn summary(row: &crate::projections::OrderRow) -> pb::RepairSummary {
    let stage = Stage::ALL
        .into_iter()
        .find(|s| s.as_str() == row.stage)
        .map_or(pb::Stage::Unspecified, stage);
    pb::RepairSummary {
        order_id: row.order_id.clone(),
        stage: stage.into(),
        channel: if row.channel == "mail_in" {
            pb::Channel::MailIn
        } else {
            pb::Channel::WalkIn
        }
        .into(),
        service_center_id: row.center_id.clone(),
        customer_id: row.customer_id.clone(),
        opened_on: row.opened_on.clone(),
    }
}

/// A request's device, or INVALID_ARGUMENT naming what is wrong with it.
pub fn device_key(id: Option<&DeviceId>) -> AppResult<DeviceKey> {
    Ok(DeviceId::parse(id)?)
}
