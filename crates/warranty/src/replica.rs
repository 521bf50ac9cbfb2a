//! What warranty reads from other regions (each region's warranty events, read
//! from its replica stream here):
//!
//! - their facts, folded into the state of each of their devices in
//!   `warranty_foreign_devices`: read-only here, decided on under the device's
//!   home policy, and pseudonymous (the owner is not kept);
//! - writes they accepted for devices whose home is this region
//!   (`WriteForwarded`): applied here once, as the home region;
//! - and, by the causation id of those facts, which of this region's own
//!   forwarded writes its home region has applied (`warranty_forwards`).

use std::sync::Arc;

use aftersales_eventstore::{
    AnyEventStore, CommandContext, CommandHandler, Decider as _, HandleError, StoreTransaction,
    StreamId, on_connection, on_read_pool,
};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::warranty as pb;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use prost::Name as _;

use crate::domain::device::{Command, Device, DeviceState, Event};
use crate::domain::forward::{self, Forward, Forwarding, RepairStep};
use crate::domain::{DeviceKey, DomainError, PolicyTable, ProgrammeTable, PurchaseProof};

/// Warranty's events from every other region (the runtime names one consumer
/// per region, `warranty-replica-<region>`).
pub fn subscriptions() -> Result<Vec<Subscription>, ConfigError> {
    Ok(vec![Subscription::new(
        "warranty-replica",
        "warranty",
        [
            pb::DeviceRegistered::NAME,
            pb::ExtendedWarrantyPurchased::NAME,
            pb::ExtendedWarrantyCancelled::NAME,
            pb::WarrantyVoided::NAME,
            pb::ClaimRecorded::NAME,
            pb::RepairProgressedAbroad::NAME,
            pb::WriteForwarded::NAME,
        ],
    )?])
}

/// A device of another region, as of its latest fact here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignDevice {
    pub home_region: String,
    /// Its state; the owner is blank.
    pub state: DeviceState,
    /// When its home region recorded the latest fact the replica holds.
    pub as_of: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    home_region: String,
    state: String,
    as_of: String,
}

impl Row {
    fn read(self) -> Result<ForeignDevice, String> {
        Ok(ForeignDevice {
            home_region: self.home_region,
            state: serde_json::from_str(&self.state).map_err(|e| e.to_string())?,
            as_of: DateTime::parse_from_rfc3339(&self.as_of)
                .map_err(|e| e.to_string())?
                .with_timezone(&Utc),
        })
    }
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The replica's device `key`, if another region registered it.
pub async fn find(
    store: &AnyEventStore,
    key: &DeviceKey,
) -> Result<Option<ForeignDevice>, aftersales_eventstore::StoreError> {
    let row: Option<Row> = on_read_pool!(store, pool => {
        sqlx::query_as(
            "SELECT home_region, state, as_of FROM warranty_foreign_devices WHERE stream_id = $1",
        )
        .bind(key.stream_name())
        .fetch_optional(pool)
        .await
    })?;
    row.map(|row| {
        row.read().map_err(|reason| {
            aftersales_eventstore::StoreError::CorruptRow(format!("replica of {key}: {reason}"))
        })
    })
    .transpose()
}

/// The forward queue: writes accepted here that their home region has not
/// applied yet, per home region, with the age of the oldest.
pub async fn unsettled_forwards(
    store: &AnyEventStore,
    now: DateTime<Utc>,
) -> Result<Vec<(String, u64, f64)>, aftersales_eventstore::StoreError> {
    let rows: Vec<(String, i64, String)> = on_read_pool!(store, pool => {
        sqlx::query_as(
            "SELECT home_region, COUNT(*), MIN(forwarded_at) FROM warranty_forwards \
             WHERE applied_at IS NULL GROUP BY home_region",
        )
        .fetch_all(pool)
        .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(region, count, oldest)| {
            let age = DateTime::parse_from_rfc3339(&oldest)
                .map(|t| (now - t.with_timezone(&Utc)).as_seconds_f64().max(0.0))
                .unwrap_or_default();
            (region, u64::try_from(count).unwrap_or_default(), age)
        })
        .collect())
}

/// Queues `command`'s write for its home region in `tx`: the event in the
/// device's forward stream and its entry in the forward queue. `true`: queued
/// before (nothing new).
pub(crate) async fn forward_in(
    forwards: &CommandHandler<Forwarding, AnyEventStore>,
    tx: &mut StoreTransaction,
    command: &Forward,
    ctx: &CommandContext,
) -> Result<bool, HandleError<DomainError>> {
    let stream = StreamId::parse(forward::stream_name(&command.key))
        .map_err(|e| HandleError::Domain(DomainError::invalid("device_id", e.to_string())))?;
    let handled = forwards.handle_in(tx, &stream, command, ctx).await?;
    if handled.events.is_empty() {
        return Ok(true);
    }
    queue_forward(
        tx,
        ctx.event_id(0),
        stream.as_str(),
        &command.home_region,
        command.write.kind(),
        ctx.now,
    )
    .await
    .map_err(|e| HandleError::Store(e.into()))?;
    Ok(handled.duplicate)
}

/// Records, with the forward event in `tx`, that a write waits for its home region.
async fn queue_forward(
    tx: &mut StoreTransaction,
    event_id: uuid::Uuid,
    stream: &str,
    home_region: &str,
    kind: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_connection!(tx.connection(), c => {
        sqlx::query(
            "INSERT INTO warranty_forwards (event_id, stream_id, home_region, kind, forwarded_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id.to_string())
        .bind(stream)
        .bind(home_region)
        .bind(kind)
        .bind(stamp(at))
        .execute(c)
        .await
        .map(|_| ())
    })
}

/// Applies what other regions publish (see the module's summary).
#[derive(Debug, Clone)]
pub struct FromOtherRegions {
    region: String,
    policies: Arc<PolicyTable>,
    programmes: Arc<ProgrammeTable>,
    devices: CommandHandler<Device, AnyEventStore>,
}

impl FromOtherRegions {
    pub fn new(
        region: impl Into<String>,
        store: AnyEventStore,
        policies: Arc<PolicyTable>,
        programmes: Arc<ProgrammeTable>,
    ) -> Self {
        Self {
            region: region.into(),
            policies,
            programmes,
            devices: CommandHandler::new(store),
        }
    }

    /// A write another region accepted for a device whose home is here, applied
    /// as this region's own command: once (the inbox and the device's events
    /// commit together), dated and attributed as it was accepted there.
    async fn apply_forwarded(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let forwarded: pb::WriteForwarded = event.proto().map_err(HandlerError::permanent)?;
        if forwarded.home_region != self.region {
            return Ok(()); // queued for a third region
        }
        let key = crate::convert::device_key(forwarded.device_id.as_ref())
            .map_err(|s| HandlerError::permanent(s.message().to_owned()))?;
        let today = event.metadata.recorded_at.date_naive();
        let command = match forwarded.write {
            Some(pb::write_forwarded::Write::Claim(claim)) => Command::RecordClaim {
                repair_order_id: claim.repair_order_id,
                fault: crate::convert::fault(claim.fault_category)
                    .map_err(|s| HandlerError::permanent(s.message().to_owned()))?,
                fault_date: date(&claim.fault_date)?.unwrap_or(today),
                today,
                programmes: self.programmes.all().to_vec(),
            },
            Some(pb::write_forwarded::Write::Void(void)) => Command::Void {
                reason: void.reason,
                evidence: void.evidence,
                today,
            },
            Some(pb::write_forwarded::Write::RepairStep(step)) => Command::RecordRepairAbroad {
                repair_order_id: step.repair_order_id,
                step: RepairStep::parse(&step.step).ok_or_else(|| {
                    HandlerError::permanent(format!("{:?} is not a repair step", step.step))
                })?,
                walk_in: step.walk_in,
                region: event.metadata.region.clone(),
            },
            None => return Err(HandlerError::permanent("a forwarded write without a write")),
        };
        let stream = StreamId::parse(key.stream_name()).map_err(HandlerError::permanent)?;
        let mut ctx = event.reaction_context(b"warranty-forwarded", &self.region);
        // Whoever made the write abroad made it here; the causation id names
        // the forward event, so both histories point at each other.
        ctx.actor.clone_from(&event.metadata.actor);
        self.devices.handle_in(tx, &stream, &command, &ctx).await?;
        Ok(())
    }

    /// A fact of a device of another region, folded into its state here.
    async fn apply_fact(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let key = DeviceKey::from_stream_name(event.stream_id.as_str()).ok_or_else(|| {
            HandlerError::permanent(format!("stream {} is not a device", event.stream_id))
        })?;
        let stream = key.stream_name();
        let row: Option<Row> = on_connection!(tx.connection(), c => {
            sqlx::query_as(
                "SELECT home_region, state, as_of FROM warranty_foreign_devices \
                 WHERE stream_id = $1",
            )
            .bind(&stream)
            .fetch_optional(c)
            .await
        })
        .map_err(HandlerError::transient)?;
        let state = row
            .map(|row| row.read().map(|device| device.state))
            .transpose()
            .map_err(HandlerError::permanent)?;
        let fact = self.domain_fact(event, &key, state.as_ref())?;
        let Some(state) = Device::evolve(state, &fact) else {
            return Err(HandlerError::permanent(format!(
                "{} for a device the replica has not seen registered",
                event.event_type
            )));
        };
        let json = serde_json::to_string(&state).map_err(HandlerError::permanent)?;
        on_connection!(tx.connection(), c => {
            sqlx::query(
                "INSERT INTO warranty_foreign_devices (stream_id, home_region, state, as_of) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id) DO UPDATE SET \
                 home_region = excluded.home_region, state = excluded.state, as_of = excluded.as_of",
            )
            .bind(&stream)
            .bind(&event.metadata.region)
            .bind(json)
            .bind(stamp(event.metadata.recorded_at))
            .execute(c)
            .await
            .map(|_| ())
        })
        .map_err(HandlerError::transient)?;
        Ok(())
    }

    /// The published fact as the device's own event, with what does not cross
    /// regions left blank (the owner) and the terms from the policy table by
    /// the id and version the home region registered it under.
    fn domain_fact(
        &self,
        event: &InboundEvent,
        key: &DeviceKey,
        state: Option<&DeviceState>,
    ) -> Result<Event, HandlerError> {
        let on = event.metadata.recorded_at.date_naive();
        let refused = |s: tonic::Status| HandlerError::permanent(s.message().to_owned());
        let name = event.event_type.as_str();
        Ok(if name == pb::DeviceRegistered::NAME {
            let e: pb::DeviceRegistered = event.proto().map_err(HandlerError::permanent)?;
            let country = e.country_of_purchase.map(|c| c.value).unwrap_or_default();
            let terms = self
                .policies
                .version(&country, &e.policy_id, e.policy_version)
                .cloned()
                .ok_or_else(|| {
                    HandlerError::permanent(format!(
                        "policy {} version {} of {country} is not in this region's table",
                        e.policy_id, e.policy_version
                    ))
                })?;
            let purchase_date = required_date("purchase_date", &e.purchase_date)?;
            let base_end = required_date("base_warranty_end", &e.base_warranty_end)?;
            let channel = crate::convert::channel(e.channel).map_err(refused)?;
            match state {
                None => Event::DeviceRegistered {
                    key: key.clone(),
                    model: e.model,
                    purchase_date,
                    country,
                    channel,
                    customer_id: String::new(),
                    terms,
                    base_end,
                    proof: if e.purchase_date_declared {
                        PurchaseProof::CustomerDeclared
                    } else {
                        PurchaseProof::Verified
                    },
                    activated_on: None,
                },
                // Published again once the purchase was verified.
                Some(_) => Event::PurchaseVerified {
                    model: e.model,
                    purchase_date,
                    country,
                    channel,
                    customer_id: String::new(),
                    terms,
                    base_end,
                    declared_by: String::new(),
                    activated_on: None,
                },
            }
        } else if name == pb::ExtendedWarrantyPurchased::NAME {
            let e: pb::ExtendedWarrantyPurchased =
                event.proto().map_err(HandlerError::permanent)?;
            let price = e.price.unwrap_or_default();
            Event::ExtendedWarrantyPurchased {
                customer_id: String::new(),
                plan_id: e.plan_id,
                purchased_on: on,
                coverage_end: required_date("coverage_end", &e.coverage_end)?,
                price_minor: price.minor_units,
                currency: price.currency,
            }
        } else if name == pb::ExtendedWarrantyCancelled::NAME {
            let e: pb::ExtendedWarrantyCancelled =
                event.proto().map_err(HandlerError::permanent)?;
            let refund = e.refund.unwrap_or_default();
            Event::ExtendedWarrantyCancelled {
                customer_id: String::new(),
                plan_id: e.plan_id,
                cancelled_on: on,
                refund_minor: refund.minor_units,
                currency: refund.currency,
                refund_id: None,
            }
        } else if name == pb::WarrantyVoided::NAME {
            let e: pb::WarrantyVoided = event.proto().map_err(HandlerError::permanent)?;
            Event::WarrantyVoided {
                customer_id: String::new(),
                reason: e.reason,
                evidence: Vec::new(),
                voided_on: on,
            }
        } else if name == pb::ClaimRecorded::NAME {
            let e: pb::ClaimRecorded = event.proto().map_err(HandlerError::permanent)?;
            Event::ClaimRecorded {
                repair_order_id: e.repair_order_id,
                fault: crate::convert::fault(e.fault_category).map_err(refused)?,
                claimed_on: on,
                fault_date: None,
                under_legal_guarantee: false,
                // Published without one before replicas decided coverage.
                part_covered_until: date(&e.part_covered_until)?.unwrap_or(on),
                legal_extension_months: e.legal_extension_months,
                legal_guarantee_end: date(&e.legal_guarantee_end)?,
                programme_id: Some(e.programme_id).filter(|p| !p.is_empty()),
            }
        } else {
            return Err(HandlerError::permanent(format!(
                "{name}: not an event the replica applies"
            )));
        })
    }
}

fn date(value: &str) -> Result<Option<NaiveDate>, HandlerError> {
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| HandlerError::permanent(format!("{value:?}: {e}")))
}

fn required_date(field: &str, value: &str) -> Result<NaiveDate, HandlerError> {
    date(value)?.ok_or_else(|| HandlerError::permanent(format!("{field} is empty")))
}

impl Handler for FromOtherRegions {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        if event.event_type == pb::WriteForwarded::NAME {
            return self.apply_forwarded(event, tx).await;
        }
        // A step told to the owner at home changes nothing of the device.
        if event.event_type != pb::RepairProgressedAbroad::NAME {
            self.apply_fact(event, tx).await?;
        }
        // A fact the home region wrote for one of this region's forwarded
        // writes settles it.
        if let Some(cause) = event.metadata.causation_id {
            on_connection!(tx.connection(), c => {
                sqlx::query(
                    "UPDATE warranty_forwards SET applied_at = $2 \
                     WHERE event_id = $1 AND applied_at IS NULL",
                )
                .bind(cause.to_string())
                .bind(stamp(event.metadata.recorded_at))
                .execute(c)
                .await
                .map(|_| ())
            })
            .map_err(HandlerError::transient)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use prost_types::{DescriptorProto, FileDescriptorSet};

    /// Field names that would carry contact data, an address or a name.
    const PERSONAL: &[&str] = &[
        "email",
        "phone",
        "address",
        "recipient",
        "lines",
        "street",
        "city",
        "postal_code",
        "name",
        "first_name",
        "last_name",
        "full_name",
    ];

    fn messages(set: &FileDescriptorSet) -> Vec<(String, &DescriptorProto)> {
        fn walk<'a>(
            prefix: &str,
            message: &'a DescriptorProto,
            out: &mut Vec<(String, &'a DescriptorProto)>,
        ) {
            let name = format!("{prefix}.{}", message.name());
            for nested in &message.nested_type {
                walk(&name, nested, out);
            }
            out.push((name, message));
        }
        let mut out = Vec::new();
        for file in &set.file {
            for message in &file.message_type {
                walk(&format!(".{}", file.package()), message, &mut out);
            }
        }
        out
    }

    /// Residency by contract: whatever warranty publishes is what another
    /// region's replica receives, so no message it publishes (nor any message
    /// those contain) has a field for contact data, an address or a name.
    #[test]
    fn nothing_warranty_publishes_has_room_for_contact_data() {
        let set = FileDescriptorSet::decode(aftersales_proto::FILE_DESCRIPTOR_SET).expect("set");
        let all = messages(&set);
        let find = |name: &str| all.iter().find(|(n, _)| n == name).map(|(_, m)| *m);
        let published = set
            .file
            .iter()
            .find(|f| f.name().ends_with("warranty/v1/events.proto"))
            .expect("warranty's events");
        let mut queue: Vec<String> = published
            .message_type
            .iter()
            .map(|m| format!(".aftersales.warranty.v1.{}", m.name()))
            .collect();
        assert!(queue.len() >= 10, "{queue:?}");
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let message = find(&name).unwrap_or_else(|| panic!("{name} is not in the set"));
            for field in &message.field {
                assert!(
                    !PERSONAL.contains(&field.name()),
                    "{name}.{} would carry personal data across regions",
                    field.name()
                );
                assert_ne!(field.type_name(), ".aftersales.common.v1.Address", "{name}");
                if !field.type_name().is_empty() && find(field.type_name()).is_some() {
                    queue.push(field.type_name().to_owned());
                }
            }
        }
        assert!(
            seen.contains(".aftersales.warranty.v1.CoverageDecision"),
            "{seen:?}"
        );
    }
}
