//! Devices whose home is another region, as that region published them: every
//! other region's warranty events, read from its replica stream here, applied to
//! `foreign_devices`. Read-only here: only a device's home region writes it. What
//! crosses regions is pseudonymous (no customer id is kept).

use aftersales_eventstore::{AnyEventStore, StoreTransaction, on_connection, on_read_pool};
use aftersales_messaging::{ConfigError, Handler, HandlerError, InboundEvent, Subscription};
use aftersales_proto::warranty as pb;
use chrono::{DateTime, SecondsFormat, Utc};
use prost::Name as _;

use crate::domain::DeviceKey;

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
        ],
    )?])
}

/// A device of another region, as of its latest fact here.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ForeignDevice {
    pub stream_id: String,
    pub home_region: String,
    pub model: String,
    pub purchase_date: String,
    pub country: String,
    pub channel: i32,
    pub policy_id: String,
    pub policy_version: i64,
    pub base_warranty_end: String,
    pub legal_guarantee_end: String,
    pub purchase_declared: bool,
    pub plan_id: String,
    pub plan_coverage_end: String,
    pub voided: bool,
    pub void_reason: String,
    pub claims: i64,
    pub as_of: String,
}

/// The replica's row of `key`, if another region registered it.
pub async fn find(
    store: &AnyEventStore,
    key: &DeviceKey,
) -> Result<Option<ForeignDevice>, sqlx::Error> {
    on_read_pool!(store, pool => {
        sqlx::query_as("SELECT * FROM foreign_devices WHERE stream_id = $1")
            .bind(key.stream_name())
            .fetch_optional(pool)
            .await
    })
}

/// Applies other regions' warranty facts to `foreign_devices`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForeignDevices;

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Handler for ForeignDevices {
    async fn handle(
        &self,
        event: &InboundEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), HandlerError> {
        let key = DeviceKey::from_stream_name(event.stream_id.as_str()).ok_or_else(|| {
            HandlerError::permanent(format!("stream {} is not a device", event.stream_id))
        })?;
        let stream = key.stream_name();
        let as_of = stamp(event.metadata.recorded_at);
        let proto = |e: prost::DecodeError| HandlerError::permanent(e.to_string());
        // Facts after registration update the row the registration made; the
        // replica keeps the home region's order, so one always precedes them.
        let (sql, binds): (&str, Vec<String>) = match event.event_type.as_str() {
            name if name == pb::DeviceRegistered::NAME => {
                let e: pb::DeviceRegistered = event.proto().map_err(proto)?;
                let country = e.country_of_purchase.map(|c| c.value).unwrap_or_default();
                return on_connection!(tx.connection(), c => sqlx::query(
                    "INSERT INTO foreign_devices (stream_id, home_region, model, purchase_date, \
                       country, channel, policy_id, policy_version, base_warranty_end, \
                       legal_guarantee_end, purchase_declared, as_of) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (stream_id) DO UPDATE SET home_region = excluded.home_region, \
                       model = excluded.model, purchase_date = excluded.purchase_date, \
                       country = excluded.country, channel = excluded.channel, \
                       policy_id = excluded.policy_id, policy_version = excluded.policy_version, \
                       base_warranty_end = excluded.base_warranty_end, \
                       legal_guarantee_end = excluded.legal_guarantee_end, \
                       purchase_declared = excluded.purchase_declared, as_of = excluded.as_of",
                )
                .bind(&stream)
                .bind(&event.metadata.region)
                .bind(&e.model)
                .bind(&e.purchase_date)
                .bind(&country)
                .bind(e.channel)
                .bind(&e.policy_id)
                .bind(i64::from(e.policy_version))
                .bind(&e.base_warranty_end)
                .bind(&e.legal_guarantee_end)
                .bind(e.purchase_date_declared)
                .bind(&as_of)
                .execute(c)
                .await
                .map(|_| ())
                .map_err(HandlerError::transient));
            }
            name if name == pb::ExtendedWarrantyPurchased::NAME => {
                let e: pb::ExtendedWarrantyPurchased = event.proto().map_err(proto)?;
                (
                    "UPDATE foreign_devices SET plan_id = $2, plan_coverage_end = $3, as_of = $4 \
                     WHERE stream_id = $1",
                    vec![e.plan_id, e.coverage_end],
                )
            }
            name if name == pb::ExtendedWarrantyCancelled::NAME => (
                "UPDATE foreign_devices SET plan_id = '', plan_coverage_end = '', as_of = $2 \
                 WHERE stream_id = $1",
                vec![],
            ),
            name if name == pb::WarrantyVoided::NAME => {
                let e: pb::WarrantyVoided = event.proto().map_err(proto)?;
                (
                    "UPDATE foreign_devices SET voided = TRUE, void_reason = $2, as_of = $3 \
                     WHERE stream_id = $1",
                    vec![e.reason],
                )
            }
            name if name == pb::ClaimRecorded::NAME => {
                let e: pb::ClaimRecorded = event.proto().map_err(proto)?;
                (
                    "UPDATE foreign_devices SET claims = claims + 1, \
                       legal_guarantee_end = CASE WHEN $2 = '' THEN legal_guarantee_end ELSE $2 END, \
                       as_of = $3 WHERE stream_id = $1",
                    vec![e.legal_guarantee_end],
                )
            }
            other => {
                return Err(HandlerError::permanent(format!(
                    "{other}: not an event the replica applies"
                )));
            }
        };
        on_connection!(tx.connection(), c => {
            let mut query = sqlx::query(sql).bind(&stream);
            for value in &binds {
                query = query.bind(value);
            }
            query.bind(&as_of).execute(c).await.map(|_| ())
        })
        .map_err(HandlerError::transient)
    }
}
