//! Between the domain's types and the `aftersales.warranty.v1` contracts, for the
//! API and the relay alike.

use aftersales_eventstore::RecordedEvent;
use aftersales_proto::common::{CountryCode, DeviceId, Money};
use aftersales_proto::warranty as pb;
use aftersales_runtime::errors::{invalid, status};
use aftersales_runtime::request::timestamp_to_proto;
use chrono::{DateTime, NaiveDate, Utc};
use tonic::Status;

use crate::domain::Programme;
use crate::domain::coverage::{Decision, Remedy};
use crate::domain::device::{DeviceState, Event};
use crate::domain::policy::{Source, SourceKind};
use crate::domain::{AccessoryKind, DeviceKey, FaultCategory, SalesChannel};
use crate::projections::DeviceRow;

/// A request's device, or INVALID_ARGUMENT naming what is wrong with it.
pub fn device_key(id: Option<&DeviceId>) -> Result<DeviceKey, Status> {
    DeviceId::parse(id).map_err(|e| status(e.into()))
}

pub fn fault(value: i32) -> Result<FaultCategory, Status> {
    use pb::FaultCategory as P;
    Ok(match P::try_from(value).unwrap_or(P::Unspecified) {
        P::Unspecified => {
            return Err(invalid(
                "fault_category",
                "is required; one of the FaultCategory values",
            ));
        }
        P::Display => FaultCategory::Display,
        P::Battery => FaultCategory::Battery,
        P::Camera => FaultCategory::Camera,
        P::Audio => FaultCategory::Audio,
        P::Connectivity => FaultCategory::Connectivity,
        P::Charging => FaultCategory::Charging,
        P::Buttons => FaultCategory::Buttons,
        P::Sensors => FaultCategory::Sensors,
        P::Software => FaultCategory::Software,
        P::Mainboard => FaultCategory::Mainboard,
        P::AccidentalDamage => FaultCategory::AccidentalDamage,
        P::LiquidDamage => FaultCategory::LiquidDamage,
        P::UnauthorizedRepair => FaultCategory::UnauthorizedRepair,
    })
}

pub fn fault_to_proto(fault: FaultCategory) -> pb::FaultCategory {
    use pb::FaultCategory as P;
    match fault {
        FaultCategory::Display => P::Display,
        FaultCategory::Battery => P::Battery,
        FaultCategory::Camera => P::Camera,
        FaultCategory::Audio => P::Audio,
        FaultCategory::Connectivity => P::Connectivity,
        FaultCategory::Charging => P::Charging,
        FaultCategory::Buttons => P::Buttons,
        FaultCategory::Sensors => P::Sensors,
        FaultCategory::Software => P::Software,
        FaultCategory::Mainboard => P::Mainboard,
        FaultCategory::AccidentalDamage => P::AccidentalDamage,
        FaultCategory::LiquidDamage => P::LiquidDamage,
        FaultCategory::UnauthorizedRepair => P::UnauthorizedRepair,
    }
}

pub fn channel(value: i32) -> Result<SalesChannel, Status> {
    use pb::SalesChannel as P;
    Ok(match P::try_from(value).unwrap_or(P::Unspecified) {
        P::Unspecified => {
            return Err(invalid(
                "channel",
                "is required; one of the SalesChannel values",
            ));
        }
        P::OnlineStore => SalesChannel::OnlineStore,
        P::RetailStore => SalesChannel::RetailStore,
        P::Carrier => SalesChannel::Carrier,
        P::Reseller => SalesChannel::Reseller,
        P::Refurbished => SalesChannel::Refurbished,
    })
}

pub fn channel_to_proto(channel: SalesChannel) -> pb::SalesChannel {
    match channel {
        SalesChannel::OnlineStore => pb::SalesChannel::OnlineStore,
        SalesChannel::RetailStore => pb::SalesChannel::RetailStore,
        SalesChannel::Carrier => pb::SalesChannel::Carrier,
        SalesChannel::Reseller => pb::SalesChannel::Reseller,
        SalesChannel::Refurbished => pb::SalesChannel::Refurbished,
    }
}

pub fn accessory_kind(value: i32) -> Result<AccessoryKind, Status> {
    use pb::AccessoryKind as P;
    Ok(match P::try_from(value).unwrap_or(P::Unspecified) {
        P::Unspecified => {
            return Err(invalid(
                "kind",
                "is required; one of the AccessoryKind values",
            ));
        }
        P::Charger => AccessoryKind::Charger,
        P::Cable => AccessoryKind::Cable,
        P::Case => AccessoryKind::Case,
        P::Earbuds => AccessoryKind::Earbuds,
    })
}

pub fn accessory_kind_to_proto(kind: AccessoryKind) -> pb::AccessoryKind {
    match kind {
        AccessoryKind::Charger => pb::AccessoryKind::Charger,
        AccessoryKind::Cable => pb::AccessoryKind::Cable,
        AccessoryKind::Case => pb::AccessoryKind::Case,
        AccessoryKind::Earbuds => pb::AccessoryKind::Earbuds,
    }
}

pub fn remedy(remedy: Remedy) -> pb::Remedy {
    match remedy {
        Remedy::None => pb::Remedy::None,
        Remedy::Repair => pb::Remedy::Repair,
        Remedy::Exchange => pb::Remedy::Exchange,
        Remedy::Refund => pb::Remedy::Refund,
    }
}

pub fn opt_date(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

pub fn source_to_proto(s: &Source) -> pb::PolicySource {
    pb::PolicySource {
        kind: match s.kind {
            SourceKind::Maker => "maker",
            SourceKind::Statute => "statute",
        }
        .to_owned(),
        title: s.title.clone(),
        reference: s.reference.clone(),
        url: s.url.clone().unwrap_or_default(),
        checked: s.checked.to_string(),
    }
}

/// A programme as the contract has it, with its progress.
pub fn programme_to_proto(p: &Programme, affected: u64, remedied: u64) -> pb::Programme {
    pb::Programme {
        id: p.id.clone(),
        version: p.version,
        kind: p.kind.as_str().to_owned(),
        title: p.title.clone(),
        models: p.models.clone(),
        ranges: p.ranges.iter().map(|r| r.describe()).collect(),
        faults: p.faults.iter().map(|f| fault_to_proto(*f).into()).collect(),
        remedy: remedy(p.remedy).into(),
        countries: p
            .countries
            .iter()
            .map(|c| CountryCode { value: c.clone() })
            .collect(),
        starts: p.starts.to_string(),
        ends: p.ends.to_string(),
        notice: Some(source_to_proto(&p.notice)),
        affected,
        remedied,
    }
}

/// `d` as the contract has it, with the knowledge time it was made on.
pub fn decision_to_proto(d: &Decision, known_at: DateTime<Utc>) -> pb::CoverageDecision {
    pb::CoverageDecision {
        known_at: Some(timestamp_to_proto(known_at)),
        rule: d.rule.as_ref().map(|r| pb::CoverageRule {
            figure: r.figure.clone(),
            starts: opt_date(r.starts),
            ends: r.ends.to_string(),
            source: r.source.as_ref().map(source_to_proto),
        }),
        programme: d.programme.as_ref().map(|p| pb::ProgrammeCited {
            id: p.id.clone(),
            version: p.version,
            kind: p.kind.as_str().to_owned(),
            title: p.title.clone(),
        }),
        under_legal_guarantee: d.under_legal_guarantee,
        covered: d.covered,
        reason: d.reason.as_str().to_owned(),
        explanation: d.explanation.clone(),
        policy_id: d.policy_id.clone(),
        policy_version: d.policy_version,
        base_warranty_end: d.base_end.to_string(),
        legal_guarantee_end: opt_date(d.legal_end),
        extended_warranty_end: opt_date(d.extended_end),
        remedy: remedy(d.remedy).into(),
        decided_for: d.decided_for.to_string(),
        replica: None,
    }
}

/// A device of another region as this region's replica holds it (its owner
/// blank); `forwarded`: this call's write was queued for its home region.
pub fn foreign_device_to_proto(
    d: &crate::replica::ForeignDevice,
    today: NaiveDate,
    forwarded: bool,
) -> pb::Device {
    pb::Device {
        replica: Some(replica_to_proto(d, forwarded)),
        ..device_to_proto(&d.state, 0, today)
    }
}

pub fn replica_to_proto(d: &crate::replica::ForeignDevice, forwarded: bool) -> pb::Replica {
    pb::Replica {
        home_region: d.home_region.clone(),
        as_of: d.as_of.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        write_forwarded: forwarded,
    }
}

/// `d` as the contract has it; `today` decides which plans are on offer.
pub fn device_to_proto(d: &DeviceState, version: u64, today: NaiveDate) -> pb::Device {
    pb::Device {
        device_id: Some(DeviceId::from(&d.key)),
        model: d.model.clone(),
        purchase_date: d.purchase_date.to_string(),
        country_of_purchase: Some(CountryCode {
            value: d.country.clone(),
        }),
        channel: channel_to_proto(d.channel).into(),
        customer_id: d.customer_id.clone(),
        policy_id: d.terms.policy_id.clone(),
        policy_version: d.terms.version,
        base_warranty_end: d.base_end.to_string(),
        legal_guarantee_end: opt_date(d.legal_guarantee_end()),
        extended_plan: d.plan.as_ref().map(|p| pb::ExtendedPlan {
            plan_id: p.plan_id.clone(),
            purchased_on: p.purchased_on.to_string(),
            coverage_end: p.coverage_end.to_string(),
            price: Some(Money {
                minor_units: p.price_minor,
                currency: p.currency.clone(),
            }),
        }),
        voided: d.voided.is_some(),
        void_reason: d.voided.clone().unwrap_or_default(),
        accessories: d
            .accessories
            .iter()
            .map(|(serial, a)| pb::Accessory {
                serial: serial.clone(),
                kind: accessory_kind_to_proto(a.kind).into(),
                purchase_date: a.purchase_date.to_string(),
                coverage_end: a.coverage_end.to_string(),
                replaces_serial: a.replaces.clone().unwrap_or_default(),
                replaced_by: a.replaced_by.clone().unwrap_or_default(),
            })
            .collect(),
        claims: u32::try_from(d.claims.len()).unwrap_or(u32::MAX),
        version,
        purchase_date_declared: d.proof == crate::domain::PurchaseProof::CustomerDeclared,
        warranty_start: d.term_start().to_string(),
        honoured_in: d.terms.honoured_in.as_str().to_owned(),
        programmes: d.programmes.iter().cloned().collect(),
        replica: None,
        plan_offers: d
            .plan_offers(today)
            .into_iter()
            .map(|offer| pb::PlanOffer {
                plan_id: offer.plan.id.clone(),
                extra_months: offer.plan.extra_months,
                price: Some(Money {
                    minor_units: offer.plan.price_minor,
                    currency: offer.plan.currency.clone(),
                }),
                buy_by: offer.buy_by.to_string(),
                coverage_end: offer.coverage_end.to_string(),
            })
            .collect(),
        pending_plan: d.pending_plan.as_ref().map(|p| pb::PendingPlan {
            plan_id: p.plan_id.clone(),
            payment_id: p.payment_id.clone(),
            price: Some(Money {
                minor_units: p.price_minor,
                currency: p.currency.clone(),
            }),
        }),
    }
}

pub fn summary(row: &DeviceRow) -> pb::DeviceSummary {
    pb::DeviceSummary {
        device_id: Some(DeviceId::from(&row.key)),
        model: row.model.clone(),
        purchase_date: row.purchase_date.to_string(),
        warranty_end: row.coverage_end.to_string(),
        voided: row.voided,
    }
}

/// The day a recorded fact takes effect: its own date, or the day it was recorded.
pub fn effective_on(e: &RecordedEvent) -> NaiveDate {
    e.decode::<Event>()
        .ok()
        .and_then(|event| event.effective_on())
        .unwrap_or_else(|| e.metadata.recorded_at.date_naive())
}

pub fn history_event(e: &RecordedEvent) -> pb::HistoryEvent {
    pb::HistoryEvent {
        effective_on: effective_on(e).to_string(),
        version: e.stream_version,
        event_id: e.event_id.to_string(),
        event_type: e.event_type.clone(),
        recorded_at: Some(timestamp_to_proto(e.metadata.recorded_at)),
        actor: e.metadata.actor.clone(),
        correlation_id: e.metadata.correlation_id.to_string(),
        payload_json: String::from_utf8_lossy(&e.payload).into_owned(),
        hash: hex(&e.hash),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
