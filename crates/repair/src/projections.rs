//! Read models of the repair log: every order by device and by center, and the
//! walk-in bookings per center and day. Rebuilt from the log with
//! `aftersales_eventstore::projection::rebuild`.

use std::collections::BTreeMap;

use aftersales_eventstore::projection::Histories;
use aftersales_eventstore::{
    AnyEventStore, Decider as _, Projection, RecordedEvent, StoreError, StoreTransaction,
};
use chrono::NaiveDate;
use sqlx::Row as _;

use crate::domain::center;
use crate::domain::centers::ServiceCenter;
use crate::domain::order::{Channel, Event, OrderState, RepairOrder};

/// The read models' tables, one set for both backends.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Every read model of the repair log: what the service runs and an operator
/// rebuilds.
pub fn all(store: &AnyEventStore) -> aftersales_eventstore::Projections {
    vec![
        std::sync::Arc::new(OrderDirectory::new(store.clone())),
        std::sync::Arc::new(CenterDirectory),
        std::sync::Arc::new(crate::index::DeviceOrderIndex),
        std::sync::Arc::new(crate::network::NetworkFacts),
    ]
}

/// Service centers changed through the API, newest upsert first; every replica
/// reads them from here.
#[derive(Debug, Clone, Copy, Default)]
pub struct CenterDirectory;

impl Projection for CenterDirectory {
    fn name(&self) -> &'static str {
        "repair-center-directory"
    }

    async fn apply(
        &self,
        event: &RecordedEvent,
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        if event.event_type != center::UPSERTED {
            return Ok(());
        }
        let center::Event::ServiceCenterUpserted { center } = event.decode()?;
        let json = serde_json::to_string(&center)
            .map_err(|e| StoreError::CorruptRow(format!("center {}: {e}", center.id)))?;
        let position = i64::try_from(event.position)
            .map_err(|_| StoreError::CorruptRow("position out of range".into()))?;
        let sql = "INSERT INTO service_centers (center_id, center, position) VALUES ($1, $2, $3) \
                   ON CONFLICT (center_id) DO UPDATE SET center = excluded.center, \
                   position = excluded.position WHERE service_centers.position < excluded.position";
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query(sql)
                .bind(center.id.clone())
                .bind(json.clone())
                .bind(position)
                .execute(c)
                .await?;
        });
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["service_centers"]).await
    }
}

/// The centers changed through the API, by id.
pub async fn changed_centers(
    store: &AnyEventStore,
) -> Result<BTreeMap<String, ServiceCenter>, StoreError> {
    let rows: Vec<(String, String)> = aftersales_eventstore::on_read_pool!(store, pool => {
        sqlx::query_as("SELECT center_id, center FROM service_centers")
            .fetch_all(pool)
            .await?
    });
    rows.into_iter()
        .map(|(id, json)| {
            serde_json::from_str(&json)
                .map(|center| (id.clone(), center))
                .map_err(|e| StoreError::CorruptRow(format!("service_centers {id}: {e}")))
        })
        .collect()
}

/// One center changed through the API.
pub async fn changed_center(
    store: &AnyEventStore,
    id: &str,
) -> Result<Option<ServiceCenter>, StoreError> {
    let json: Option<String> = aftersales_eventstore::on_read_pool!(store, pool => {
        sqlx::query_scalar("SELECT center FROM service_centers WHERE center_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    json.map(|json| {
        serde_json::from_str(&json)
            .map_err(|e| StoreError::CorruptRow(format!("service_centers {id}: {e}")))
    })
    .transpose()
}

/// Orders by device and by center.
#[derive(Debug, Clone)]
pub struct OrderDirectory {
    store: AnyEventStore,
}

impl OrderDirectory {
    pub fn new(store: AnyEventStore) -> Self {
        Self { store }
    }
}

impl OrderDirectory {
    /// Its name, whose checkpoint says how far the read model has got.
    pub const NAME: &'static str = "repair-order-directory";
}

impl Projection for OrderDirectory {
    fn name(&self) -> &'static str {
        Self::NAME
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
        // Each order's events in version order, which the log's order (by writing
        // transaction) need not be: the row ends as of the newest.
        let mut orders: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.stream_id.as_str().starts_with("repair-"))
            .collect();
        orders.sort_by(|a, b| {
            (&a.stream_id, a.stream_version).cmp(&(&b.stream_id, b.stream_version))
        });
        let histories = Histories::gather(&self.store, events, orders.iter().copied()).await?;
        for event in orders {
            self.write(event, &histories.upto(event), tx).await?;
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut StoreTransaction) -> Result<(), StoreError> {
        tx.empty_tables(&["repair_orders", "repair_stage_durations"])
            .await
    }
}

impl OrderDirectory {
    /// The order's row as of `event`, and how long it was in the stage `event`
    /// ends; `events` is its stream from the first event to `event`.
    async fn write(
        &self,
        event: &RecordedEvent,
        events: &[&RecordedEvent],
        tx: &mut StoreTransaction,
    ) -> Result<(), StoreError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let opened_at = first.metadata.recorded_at;
        let mut state: Option<OrderState> = None;
        // The stage before this event, and since when the order had been in it.
        let mut before: Option<(crate::domain::order::Stage, chrono::DateTime<chrono::Utc>)> = None;
        for recorded in events {
            let decoded: Event = recorded.decode()?;
            if recorded.stream_version == event.stream_version {
                before = state
                    .as_ref()
                    .map(|s| s.stage)
                    .zip(Some(previous_at(events, recorded)));
            }
            state = RepairOrder::evolve(state, &decoded);
        }
        let Some(order) = state else {
            return Ok(());
        };
        let (channel, center, visit_on) = match &order.channel {
            Channel::WalkIn {
                center_id,
                visit_on,
            } => (
                "walk_in",
                center_id.clone(),
                visit_on.map(|d| d.to_string()),
            ),
            Channel::MailIn { .. } => ("mail_in", String::new(), None),
        };
        let sql = "INSERT INTO repair_orders (order_id, device, channel, center_id, customer_id, \
                   stage, opened_on, opened_at, visit_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                   ON CONFLICT (order_id) DO UPDATE SET stage = excluded.stage";
        if let Some((stage, since)) = before {
            let seconds = (event.metadata.recorded_at - since).num_seconds().max(0);
            let sql = "INSERT INTO repair_stage_durations (order_id, version, center_id, stage, seconds) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (order_id, version) DO NOTHING";
            let version = i64::try_from(event.stream_version)
                .map_err(|_| StoreError::CorruptRow("stream_version out of range".into()))?;
            aftersales_eventstore::on_connection!(tx.connection(), c => {
                sqlx::query(sql)
                    .bind(order.order_id.clone())
                    .bind(version)
                    .bind(center.clone())
                    .bind(stage.as_str())
                    .bind(seconds)
                    .execute(c)
                    .await?;
            });
        }
        aftersales_eventstore::on_connection!(tx.connection(), c => {
            sqlx::query(sql)
                .bind(order.order_id.clone())
                .bind(order.device.name())
                .bind(channel)
                .bind(center.clone())
                .bind(order.customer_id.clone())
                .bind(order.stage.as_str())
                .bind(opened_at.date_naive().to_string())
                .bind(opened_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .bind(visit_on.clone())
                .execute(c)
                .await?;
        });
        Ok(())
    }
}

/// An order as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: String,
    pub device: String,
    pub channel: String,
    pub center_id: String,
    pub customer_id: String,
    pub stage: String,
    pub opened_on: String,
}

macro_rules! order_row {
    ($row:expr) => {{
        let row = $row;
        OrderRow {
            order_id: row.try_get("order_id")?,
            device: row.try_get("device")?,
            channel: row.try_get("channel")?,
            center_id: row.try_get("center_id")?,
            customer_id: row.try_get("customer_id")?,
            stage: row.try_get("stage")?,
            opened_on: row.try_get("opened_on")?,
        }
    }};
}

const COLUMNS: &str = "order_id, device, channel, center_id, customer_id, stage, opened_on";

/// Every order of `device` (`imei:…` or `serial:…`), oldest first.
pub async fn orders_of_device(
    store: &AnyEventStore,
    device: &str,
) -> Result<Vec<OrderRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM repair_orders WHERE device = $1 ORDER BY opened_at, order_id"
    ));
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql).bind(device.to_owned()).fetch_all(pool).await?;
        rows.iter().map(|r| Ok(order_row!(r))).collect()
    })
}

/// A center's orders after `after` (an order id, for paging), in `stage` if given.
pub async fn orders_of_center(
    store: &AnyEventStore,
    center: &str,
    stage: Option<&str>,
    after: &str,
    limit: i64,
) -> Result<Vec<OrderRow>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM repair_orders WHERE center_id = $1 AND ($2 = '' OR stage = $2) \
         AND order_id > $3 ORDER BY order_id LIMIT $4"
    ));
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql)
            .bind(center.to_owned())
            .bind(stage.unwrap_or_default().to_owned())
            .bind(after.to_owned())
            .bind(limit)
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| Ok(order_row!(r))).collect()
    })
}

/// Walk-in orders booked at `center` per day from `from` on, cancelled ones left out.
pub async fn bookings(
    store: &AnyEventStore,
    center: &str,
    from: NaiveDate,
) -> Result<BTreeMap<NaiveDate, u32>, StoreError> {
    let sql = "SELECT COALESCE(visit_on, opened_on) AS day, COUNT(*) AS n FROM repair_orders \
               WHERE center_id = $1 AND COALESCE(visit_on, opened_on) >= $2 \
               AND stage <> 'cancelled' GROUP BY COALESCE(visit_on, opened_on)";
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql)
            .bind(center.to_owned())
            .bind(from.to_string())
            .fetch_all(pool)
            .await?;
        rows.iter()
            .map(|row| {
                let day: String = row.try_get("day")?;
                let n: i64 = row.try_get("n")?;
                Ok((
                    day.parse().map_err(|_| StoreError::CorruptRow(format!("visit day {day:?}")))?,
                    u32::try_from(n).unwrap_or(u32::MAX),
                ))
            })
            .collect()
    })
}

/// When the event before `recorded` was recorded (or `recorded` itself, for the first).
fn previous_at(
    events: &[&RecordedEvent],
    recorded: &RecordedEvent,
) -> chrono::DateTime<chrono::Utc> {
    events
        .iter()
        .rev()
        .find(|e| e.stream_version < recorded.stream_version)
        .map_or(recorded.metadata.recorded_at, |e| e.metadata.recorded_at)
}

/// Per stage: every order's total seconds in it, at `center`.
pub async fn stage_times(
    store: &AnyEventStore,
    center: &str,
) -> Result<BTreeMap<String, Vec<i64>>, StoreError> {
    let sql = "SELECT stage, order_id, CAST(SUM(seconds) AS BIGINT) AS total FROM repair_stage_durations \
               WHERE center_id = $1 GROUP BY stage, order_id";
    aftersales_eventstore::on_read_pool!(store, pool => {
        let rows = sqlx::query(sql).bind(center.to_owned()).fetch_all(pool).await?;
        let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for row in &rows {
            times.entry(row.try_get("stage")?).or_default().push(row.try_get("total")?);
        }
        Ok(times)
    })
}
