//! Read models of the warranty log: the device directory (devices by customer, and
//! warranties by end date for reminders) and coverage decisions by policy version.
//! Both are rebuilt from the log with `aftersales_eventstore::projection::rebuild`.

use aftersales_eventstore::{
    AnyEventStore, Decider as _, EventStore as _, Projection, RecordedEvent, StoreError,
    StoreTransaction, TransactionConnection,
};
use std::collections::HashMap;

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
        std::sync::Arc::new(ProgrammeDevices),
    ]
}

/// Devices by recall or service programme: told, and remedied.
#[derive(Debug, Clone, Copy)]
pub struct ProgrammeDevices;

impl Projection for ProgrammeDevices {
    fn name(&self) -> &'static str {
        "warranty-programme-devices"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        // The first day counts: a replay or a second claim changes nothing.
        if !matches!(
            event.event_type.as_str(),
            "EnrolledInProgramme" | "ClaimRecorded"
        ) {
            return Ok(());
        }
        let decoded: Event = event.decode()?;
        let (programme, column, day) = if let Event::EnrolledInProgramme {
            programme_id,
            enrolled_on,
            ..
        } = decoded
        {
            (programme_id, "enrolled_on", enrolled_on)
        } else if let Event::ClaimRecorded {
            programme_id: Some(programme_id),
            claimed_on,
            ..
        } = decoded
        {
            (programme_id, "remedied_on", claimed_on)
        } else {
            return Ok(());
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "INSERT INTO warranty_programme_devices (programme_id, stream_id, {column}) \
             VALUES ($1, $2, $3) ON CONFLICT (programme_id, stream_id) DO UPDATE SET \
             {column} = COALESCE(warranty_programme_devices.{column}, excluded.{column})"
        ));
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query(sql)
                .bind(programme)
                .bind(event.stream_id.as_str().to_owned())
                .bind(day.to_string())
                .execute(c)
                .await?;
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["warranty_programme_devices"]).await
    }
}

/// Plans ordered and not yet paid for, by device: what the settlement sweep
/// asks the payment provider about; and every plan payment by its id, where the
/// provider's webhook finds the device.
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
                    .bind(stream.clone())
                    .bind(payment_id.clone())
                    .bind(ordered_on.to_string())
                    .execute(&mut *c)
                    .await?;
                    sqlx::query(
                        "INSERT INTO warranty_payments (payment_id, stream_id) VALUES ($1, $2) \
                         ON CONFLICT (payment_id) DO NOTHING",
                    )
                    .bind(payment_id)
                    .bind(stream)
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
        tx.empty_tables(&["warranty_pending_payments", "warranty_payments"])
            .await
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

    /// The devices `events` change, each as of its last event among them: folded
    /// from `events` where they hold the stream from its start (a rebuild, a new
    /// device), else from the stream read once (the log, not this transaction:
    /// the events are committed).
    async fn changed_devices(
        &self,
        events: &[RecordedEvent],
    ) -> Result<Vec<(String, DeviceState)>, StoreError> {
        let mut streams: Vec<(&RecordedEvent, Vec<&RecordedEvent>, bool)> = Vec::new();
        let mut index = HashMap::new();
        // The log holds other streams too (a customer's erasure, say).
        let of_devices = events
            .iter()
            .filter(|e| DeviceKey::from_stream_name(e.stream_id.as_str()).is_some());
        for event in of_devices {
            let at = *index.entry(event.stream_id.as_str()).or_insert_with(|| {
                streams.push((event, Vec::new(), false));
                streams.len() - 1
            });
            let (_, of_stream, changed) = &mut streams[at];
            of_stream.push(event);
            // A coverage decision leaves every field the directory lists as it was.
            *changed |= event.event_type != "CoverageDecided";
        }
        let mut devices = Vec::new();
        for (first, mut of_stream, changed) in streams {
            if !changed {
                continue;
            }
            of_stream.sort_by_key(|e| e.stream_version);
            let from_start = of_stream
                .iter()
                .zip(1..)
                .all(|(e, v)| e.stream_version == v);
            let read;
            let history = if from_start {
                of_stream
            } else {
                let last = of_stream.last().map_or(0, |e| e.stream_version);
                read = self
                    .store
                    .read_stream(
                        &first.stream_id,
                        1,
                        usize::try_from(last).unwrap_or(usize::MAX),
                    )
                    .await?;
                read.iter().collect()
            };
            let mut state = None;
            // Decisions are most of a device's log; decoding them would change
            // nothing the directory lists.
            for recorded in history.iter().filter(|e| e.event_type != "CoverageDecided") {
                state = Device::evolve(state, &recorded.decode::<Event>()?);
            }
            if let Some(device) = state {
                devices.push((first.stream_id.as_str().to_owned(), device));
            }
        }
        Ok(devices)
    }
}

/// Upserts directory rows from `$rows`: a `VALUES` row, or on PostgreSQL arrays
/// (one statement whatever the batch's size).
macro_rules! upsert_devices {
    ($rows:literal) => {
        concat!(
            "INSERT INTO warranty_devices (stream_id, id_kind, id_value, customer_id, model, \
             country, purchase_date, coverage_end, voided) ",
            $rows,
            " ON CONFLICT (stream_id) DO UPDATE SET customer_id = excluded.customer_id, \
             model = excluded.model, country = excluded.country, \
             purchase_date = excluded.purchase_date, coverage_end = excluded.coverage_end, \
             voided = excluded.voided"
        )
    };
}

/// Inserts decision rows from `$rows`, as [`upsert_devices`] does. A plain insert:
/// a runner claims each batch before it writes, so no row comes twice, and
/// `ON CONFLICT` would cost half again each row's insert.
macro_rules! insert_decisions {
    ($rows:literal) => {
        concat!(
            "INSERT INTO warranty_coverage_decisions (event_id, stream_id, policy_id, \
             policy_version, fault, covered, reason, decided_for) ",
            $rows
        )
    };
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
        self.apply_batch(std::slice::from_ref(event), tx).await
    }

    async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let devices = self.changed_devices(events).await?;
        if devices.is_empty() {
            return Ok(());
        }
        match tx.connection() {
            TransactionConnection::Postgres(c) => {
                let mut columns: [Vec<String>; 8] = Default::default();
                let mut voided = Vec::with_capacity(devices.len());
                for (stream, device) in devices {
                    let row = [
                        stream,
                        device.key.kind().to_owned(),
                        device.key.value().to_owned(),
                        device.customer_id.clone(),
                        device.model.clone(),
                        device.country.clone(),
                        device.purchase_date.to_string(),
                        device.coverage_end().to_string(),
                    ];
                    for (column, value) in columns.iter_mut().zip(row) {
                        column.push(value);
                    }
                    voided.push(device.voided.is_some());
                }
                let [
                    stream_id,
                    id_kind,
                    id_value,
                    customer_id,
                    model,
                    country,
                    purchase_date,
                    coverage_end,
                ] = columns;
                sqlx::query(upsert_devices!(
                    "SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[])"
                ))
                .bind(stream_id)
                .bind(id_kind)
                .bind(id_value)
                .bind(customer_id)
                .bind(model)
                .bind(country)
                .bind(purchase_date)
                .bind(coverage_end)
                .bind(voided)
                .execute(c)
                .await?;
            }
            TransactionConnection::Sqlite(c) => {
                for (stream, device) in devices {
                    sqlx::query(upsert_devices!(
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    ))
                    .bind(stream)
                    .bind(device.key.kind())
                    .bind(device.key.value().to_owned())
                    .bind(device.customer_id.clone())
                    .bind(device.model.clone())
                    .bind(device.country.clone())
                    .bind(device.purchase_date.to_string())
                    .bind(device.coverage_end().to_string())
                    .bind(device.voided.is_some())
                    .execute(&mut *c)
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["warranty_devices"]).await
    }
}

/// Every recorded coverage decision, by the policy version it used.
#[derive(Debug, Clone, Copy)]
pub struct CoverageDecisions;

/// A coverage decision as its row holds it.
struct DecisionRow {
    event_id: String,
    stream_id: String,
    policy_id: String,
    policy_version: i64,
    fault: String,
    covered: bool,
    reason: &'static str,
    decided_for: String,
}

impl DecisionRow {
    fn of(event: &RecordedEvent) -> Result<Option<Self>, StoreError> {
        if event.event_type != "CoverageDecided" {
            return Ok(None);
        }
        let Event::CoverageDecided {
            fault, decision, ..
        } = event.decode()?
        else {
            return Ok(None);
        };
        let fault = serde_json::to_value(fault)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok(Some(Self {
            event_id: event.event_id.to_string(),
            stream_id: event.stream_id.as_str().to_owned(),
            policy_version: i64::from(decision.policy_version),
            reason: decision.reason.as_str(),
            decided_for: decision.decided_for.to_string(),
            covered: decision.covered,
            policy_id: decision.policy_id,
            fault,
        }))
    }
}

impl Projection for CoverageDecisions {
    fn name(&self) -> &'static str {
        "warranty-coverage-decisions"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        self.apply_batch(std::slice::from_ref(event), tx).await
    }

    async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let mut rows = Vec::new();
        for event in events {
            rows.extend(DecisionRow::of(event)?);
        }
        if rows.is_empty() {
            return Ok(());
        }
        match tx.connection() {
            TransactionConnection::Postgres(c) => {
                let mut texts: [Vec<String>; 6] = Default::default();
                let (mut versions, mut covered) = (Vec::new(), Vec::new());
                for row in rows {
                    let values = [
                        row.event_id,
                        row.stream_id,
                        row.policy_id,
                        row.fault,
                        row.reason.to_owned(),
                        row.decided_for,
                    ];
                    for (column, value) in texts.iter_mut().zip(values) {
                        column.push(value);
                    }
                    versions.push(row.policy_version);
                    covered.push(row.covered);
                }
                let [event_id, stream_id, policy_id, fault, reason, decided_for] = texts;
                sqlx::query(insert_decisions!(
                    "SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], \
                     $5::text[], $6::bool[], $7::text[], $8::text[])"
                ))
                .bind(event_id)
                .bind(stream_id)
                .bind(policy_id)
                .bind(versions)
                .bind(fault)
                .bind(covered)
                .bind(reason)
                .bind(decided_for)
                .execute(c)
                .await?;
            }
            TransactionConnection::Sqlite(c) => {
                for row in rows {
                    sqlx::query(insert_decisions!("VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                        .bind(row.event_id)
                        .bind(row.stream_id)
                        .bind(row.policy_id)
                        .bind(row.policy_version)
                        .bind(row.fault)
                        .bind(row.covered)
                        .bind(row.reason)
                        .bind(row.decided_for)
                        .execute(&mut *c)
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["warranty_coverage_decisions"]).await
    }
}

/// A device as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub stream_id: String,
    pub key: DeviceKey,
    pub customer_id: String,
    pub model: String,
    pub country: String,
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
            country: row.try_get("country")?,
            purchase_date: date("purchase_date")?,
            coverage_end: date("coverage_end")?,
            voided: row.try_get("voided")?,
        }
    }};
}

const DEVICE_COLUMNS: &str = "stream_id, id_kind, id_value, customer_id, model, country, purchase_date, coverage_end, voided";

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

/// Devices of `model` after `after` (a stream id, for paging) the directory has
/// and the programme has not recorded as told, by stream id.
pub async fn not_enrolled(
    store: &AnyEventStore,
    programme_id: &str,
    model: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<DeviceRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {DEVICE_COLUMNS} FROM warranty_devices d WHERE d.model = $1 AND d.stream_id > $2 \
         AND NOT EXISTS (SELECT 1 FROM warranty_programme_devices p WHERE p.programme_id = $3 \
         AND p.stream_id = d.stream_id AND p.enrolled_on IS NOT NULL) \
         ORDER BY d.stream_id LIMIT $4"
    ));
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql)
            .bind(model.to_owned())
            .bind(after.to_owned())
            .bind(programme_id.to_owned())
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| Ok(device_row!(r))).collect()
    })
}

/// Per programme id: devices told or repaired under it (affected), and devices
/// with a claim under it (remedied).
pub async fn programme_progress(
    store: &AnyEventStore,
) -> Result<HashMap<String, (u64, u64)>, StoreError> {
    let sql = "SELECT programme_id, COUNT(*) AS affected, \
               COUNT(remedied_on) AS remedied FROM warranty_programme_devices \
               GROUP BY programme_id";
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql).fetch_all(pool).await?;
        rows.iter()
            .map(|row| {
                let count = |column: &str| -> Result<u64, StoreError> {
                    let n: i64 = row.try_get(column)?;
                    u64::try_from(n).map_err(|_| StoreError::CorruptRow(format!("{column} {n}")))
                };
                Ok((row.try_get("programme_id")?, (count("affected")?, count("remedied")?)))
            })
            .collect()
    })
}

/// The device stream a plan payment was ordered on, once the read model has it.
pub async fn payment_stream(
    store: &AnyEventStore,
    payment_id: &str,
) -> Result<Option<String>, StoreError> {
    aftersales_eventstore::on_read_pool!(store, pool => {
        Ok(sqlx::query_scalar("SELECT stream_id FROM warranty_payments WHERE payment_id = $1")
            .bind(payment_id.to_owned())
            .fetch_optional(pool)
            .await?)
    })
}
