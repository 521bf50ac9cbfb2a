//! Read models of the warranty log: the device directory (devices by customer, and
//! warranties by end date for reminders) and coverage decisions by policy version.
//! Both are rebuilt from the log with `aftersales_eventstore::projection::rebuild`.

use aftersales_eventstore::{
    AnyEventStore, Decider as _, EventStore as _, Projection, RecordedEvent, StoreError,
    StoreTransaction,
};
use chrono::NaiveDate;
use sqlx::Row as _;

use crate::domain::{Device, DeviceKey, DeviceState, Event};

/// Every read model of the warranty log: what the service runs and an operator
/// rebuilds.
pub fn all(store: &AnyEventStore) -> aftersales_eventstore::Projections {
    vec![
        std::sync::Arc::new(DeviceDirectory::new(store.clone())),
        std::sync::Arc::new(CoverageDecisions),
        std::sync::Arc::new(PendingPayments),
    ]
}

/// Plans ordered and not yet paid for, by device: what the settlement sweep
/// asks the payment provider about.
#[derive(Debug, Clone, Copy)]
pub struct PendingPayments;

impl Projection for PendingPayments {
    fn name(&self) -> &'static str {
        "warranty-pending-payments"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let stream = event.stream_id.as_str().to_owned();
        match event.event_type.as_str() {
            "PlanOrdered" => {
                let Event::PlanOrdered {
                    payment_id,
                    ordered_on,
                    ..
                } = event.decode()?
                else {
                    return Ok(());
                };
                aftersales_eventstore::on_connection!(tx.connection(), c => {
                    sqlx::query(
                        "INSERT INTO warranty_pending_payments (stream_id, payment_id, ordered_on) \
                         VALUES ($1, $2, $3) ON CONFLICT (stream_id) DO UPDATE SET \
                         payment_id = excluded.payment_id, ordered_on = excluded.ordered_on",
                    )
                    .bind(stream)
                    .bind(payment_id)
                    .bind(ordered_on.to_string())
                    .execute(c)
                    .await?;
                });
            }
            "PlanPaymentFailed" | "ExtendedWarrantyPurchased" => {
                aftersales_eventstore::on_connection!(tx.connection(), c => {
                    sqlx::query("DELETE FROM warranty_pending_payments WHERE stream_id = $1")
                        .bind(stream)
                        .execute(c)
                        .await?;
                });
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query("DELETE FROM warranty_pending_payments").execute(c).await?;
        });
        Ok(())
    }
}

/// The read models' tables, one set for both backends.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Devices by customer, and by the last day anything covers them.
#[derive(Debug, Clone)]
pub struct DeviceDirectory {
    store: AnyEventStore,
}

impl DeviceDirectory {
    pub fn new(store: AnyEventStore) -> Self {
        Self { store }
    }

    /// The device as of `event` (the log is read, not this transaction: the event
    /// is committed).
    async fn state_at(&self, event: &RecordedEvent) -> Result<Option<DeviceState>, StoreError> {
        let events = self
            .store
            .read_stream(
                &event.stream_id,
                1,
                usize::try_from(event.stream_version).unwrap_or(usize::MAX),
            )
            .await?;
        let mut state = None;
        for recorded in &events {
            state = Device::evolve(state, &recorded.decode::<Event>()?);
        }
        Ok(state)
    }
}

impl Projection for DeviceDirectory {
    fn name(&self) -> &'static str {
        "warranty-device-directory"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if matches!(event.event_type.as_str(), "CoverageDecided") {
            return Ok(());
        }
        let Some(device) = self.state_at(event).await? else {
            return Ok(());
        };
        let (kind, value) = (device.key.kind(), device.key.value().to_owned());
        let sql = "INSERT INTO warranty_devices (stream_id, id_kind, id_value, customer_id, model, \
                   country, purchase_date, coverage_end, voided) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                   ON CONFLICT (stream_id) DO UPDATE SET customer_id = excluded.customer_id, \
                   model = excluded.model, country = excluded.country, \
                   purchase_date = excluded.purchase_date, coverage_end = excluded.coverage_end, \
                   voided = excluded.voided";
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query(sql)
                .bind(event.stream_id.as_str().to_owned())
                .bind(kind)
                .bind(value)
                .bind(device.customer_id.clone())
                .bind(device.model.clone())
                .bind(device.country.clone())
                .bind(device.purchase_date.to_string())
                .bind(device.coverage_end().to_string())
                .bind(device.voided.is_some())
                .execute(c)
                .await?;
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query("DELETE FROM warranty_devices").execute(c).await?;
        });
        Ok(())
    }
}

/// Every recorded coverage decision, by the policy version it used.
#[derive(Debug, Clone, Copy)]
pub struct CoverageDecisions;

impl Projection for CoverageDecisions {
    fn name(&self) -> &'static str {
        "warranty-coverage-decisions"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if event.event_type != "CoverageDecided" {
            return Ok(());
        }
        let Event::CoverageDecided {
            fault, decision, ..
        } = event.decode()?
        else {
            return Ok(());
        };
        let fault = serde_json::to_value(fault)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let sql = "INSERT INTO warranty_coverage_decisions (event_id, stream_id, policy_id, \
                   policy_version, fault, covered, reason, decided_for) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING";
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query(sql)
                .bind(event.event_id.to_string())
                .bind(event.stream_id.as_str().to_owned())
                .bind(decision.policy_id.clone())
                .bind(i64::from(decision.policy_version))
                .bind(fault.clone())
                .bind(decision.covered)
                .bind(decision.reason.as_str())
                .bind(decision.decided_for.to_string())
                .execute(c)
                .await?;
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query("DELETE FROM warranty_coverage_decisions").execute(c).await?;
        });
        Ok(())
    }
}

/// A device as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub stream_id: String,
    pub key: DeviceKey,
    pub customer_id: String,
    pub model: String,
    pub purchase_date: NaiveDate,
    pub coverage_end: NaiveDate,
    pub voided: bool,
}

macro_rules! device_row {
    ($row:expr) => {{
        let row = $row;
        let kind: String = row.try_get("id_kind")?;
        let value: String = row.try_get("id_value")?;
        let date = |column: &str| -> Result<NaiveDate, StoreError> {
            let text: String = row.try_get(column)?;
            text.parse()
                .map_err(|_| StoreError::CorruptRow(format!("{column} {text:?}")))
        };
        DeviceRow {
            stream_id: row.try_get("stream_id")?,
            key: DeviceKey::from_parts("id_value", &kind, &value)
                .map_err(|e| StoreError::CorruptRow(format!("warranty_devices: {e}")))?,
            customer_id: row.try_get("customer_id")?,
            model: row.try_get("model")?,
            purchase_date: date("purchase_date")?,
            coverage_end: date("coverage_end")?,
            voided: row.try_get("voided")?,
        }
    }};
}

const DEVICE_COLUMNS: &str =
    "stream_id, id_kind, id_value, customer_id, model, purchase_date, coverage_end, voided";

/// A customer's devices after `after` (a stream id, for paging), by stream id.
pub async fn devices_of_customer(
    store: &AnyEventStore,
    customer_id: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<DeviceRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} FROM warranty_devices WHERE customer_id = $1 AND stream_id > $2 \
         ORDER BY stream_id LIMIT $3"
    ));
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql)
            .bind(customer_id.to_owned())
            .bind(after.to_owned())
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| Ok(device_row!(r))).collect()
    })
}

/// Devices not voided whose coverage ends between `from` and `until`, soonest first.
pub async fn expiring_between(
    store: &AnyEventStore,
    from: NaiveDate,
    until: NaiveDate,
    limit: i64,
) -> Result<Vec<DeviceRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} FROM warranty_devices WHERE coverage_end >= $1 \
         AND coverage_end <= $2 AND NOT voided ORDER BY coverage_end, stream_id LIMIT $3"
    ));
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql)
            .bind(from.to_string())
            .bind(until.to_string())
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| Ok(device_row!(r))).collect()
    })
}

/// How many recorded decisions used each (policy, version), and how many of them
/// said covered.
pub async fn decisions_by_policy(
    store: &AnyEventStore,
) -> Result<Vec<(String, u32, u64, u64)>, StoreError> {
    let sql = "SELECT policy_id, policy_version, COUNT(*) AS decisions, \
               SUM(CASE WHEN covered THEN 1 ELSE 0 END) AS covered \
               FROM warranty_coverage_decisions GROUP BY policy_id, policy_version \
               ORDER BY policy_id, policy_version";
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                let number = |column: &str| -> Result<u64, StoreError> {
                    let n: i64 = row.try_get(column)?;
                    u64::try_from(n).map_err(|_| StoreError::CorruptRow(format!("{column} {n}")))
                };
                Ok((
                    row.try_get("policy_id")?,
                    u32::try_from(number("policy_version")?).unwrap_or(u32::MAX),
                    number("decisions")?,
                    number("covered")?,
                ))
            })
            .collect()
    })
}
